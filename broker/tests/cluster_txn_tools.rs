//! Kafka's own transaction tooling against a 3-broker Strom cluster:
//! `kafka-transactions.sh` (`list`, `describe`, `describe-producers`, and
//! `abort` of a hanging transaction) and `kafka-consumer-groups.sh
//! --describe` showing the lag of a read_committed group.
//!
//! A librdkafka producer commits a transaction, another begins one, writes
//! and is killed (its transaction.timeout.ms is the maximum, so the
//! coordinator leaves it open), and a third commits after it. A
//! read_committed group member stops at the open transaction: the group's
//! offset stays at or below its first offset and the tool shows the lag. The
//! tools list and describe the open transaction, `describe-producers` names
//! its start offset, and `abort --start-offset` ends it: the last stable
//! offset reaches the high watermark, the member reads the later commit (and
//! never the aborted values), and its group offset moves past the
//! transaction.
//!
//! The tools are Kafka 4.3's (`bench/kafka/run-kafka.sh tools-classpath`);
//! the clients need `bash scripts/e2e-deps.sh`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, FAST_FAILOVER, create_topic, wait_until};
use common::e2e::{ClientProcess, E2eTools, run_to_completion, run_with_input, workspace_root};
use common::txn::{READ_COMMITTED, READ_UNCOMMITTED, latest_with};
use common::wire::WireClient;

const TOPIC: &str = "payments";
const GROUP: &str = "ledger";
const WAIT: Duration = Duration::from_secs(120);
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// `java -cp <Kafka's tools jars> <main_class> args...`.
fn kafka_tool(main_class: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(workspace_root().join("bench/kafka/run-kafka.sh"))
        .arg("tools-classpath")
        .output()
        .expect("run bench/kafka/run-kafka.sh tools-classpath");
    assert!(out.status.success(), "run-kafka.sh tools-classpath failed: {}", String::from_utf8_lossy(&out.stderr));
    let file = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let classpath = std::fs::read_to_string(&file).expect("read the tools classpath file");
    let java = std::env::var("STROM_E2E_JAVA").unwrap_or_else(|_| "java".to_string());
    let mut command = Command::new(java);
    command.args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", classpath.trim(), main_class]).args(args);
    let (status, stdout, stderr) = run_with_input(&mut command, "", TOOL_TIMEOUT);
    assert!(status.success(), "{main_class} {args:?} exited with {status}\n{stdout}\n{stderr}");
    eprintln!("[tool] {main_class} {args:?}:\n{stdout}");
    stdout
}

fn transactions(bootstrap: &str, args: &[&str]) -> String {
    let mut all = vec!["--bootstrap-server", bootstrap];
    all.extend(args);
    kafka_tool("org.apache.kafka.tools.TransactionsCommand", &all)
}

fn consumer_groups(bootstrap: &str) -> String {
    kafka_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &["--bootstrap-server", bootstrap, "--describe", "--group", GROUP],
    )
}

/// The rows of a tool's table (after its header line), split on whitespace.
fn rows(output: &str, header_starts: &str) -> Vec<Vec<String>> {
    let mut lines = output.lines().skip_while(|l| !l.trim_start().starts_with(header_starts));
    lines.next().unwrap_or_else(|| panic!("no header {header_starts:?} in:\n{output}"));
    lines.filter(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

/// The column `name` of a table whose header starts with `header_starts`, per row.
fn column(output: &str, header_starts: &str, name: &str) -> Vec<String> {
    let header = output
        .lines()
        .find(|l| l.trim_start().starts_with(header_starts))
        .unwrap_or_else(|| panic!("no header {header_starts:?} in:\n{output}"));
    let i =
        header.split_whitespace().position(|c| c == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    rows(output, header_starts).into_iter().map(|r| r.get(i).cloned().unwrap_or_default()).collect()
}

fn txn(tools: &E2eTools, bootstrap: &str, id: &str, values: &str, end: &str) -> Command {
    let mut command = tools.python();
    command.arg("-u").arg(workspace_root().join("e2e/python/strom_txn_history.py")).args([
        "txn",
        "--bootstrap",
        bootstrap,
        "--topic",
        TOPIC,
        "--partition",
        "0",
        "--transactional-id",
        id,
        "--values",
        values,
        end,
    ]);
    command
}

/// The (last stable offset, high watermark) of partition 0, from its leader.
fn stable_and_high(cluster: &Cluster) -> Option<(i64, i64)> {
    let leader = cluster.partition(TOPIC, 0)?.leader;
    let mut c = WireClient::connect(cluster.broker(leader).kafka_addr());
    let (e1, stable) = latest_with(&mut c, TOPIC, 0, READ_COMMITTED);
    let (e2, high) = latest_with(&mut c, TOPIC, 0, READ_UNCOMMITTED);
    (e1 == 0 && e2 == 0).then_some((stable, high))
}

#[test]
fn kafka_transactions_tool_aborts_a_hanging_transaction_and_consumer_groups_shows_read_committed_lag() {
    let tools = E2eTools::load();
    let cluster = Cluster::start(3, "txn-tools", FAST_FAILOVER);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, 1, 3, None, &[("min.insync.replicas", "2")]);

    run_to_completion("commit-before", txn(&tools, &bootstrap, "before", "b0,b1,b2", "--commit"), WAIT);
    let mut hanging = ClientProcess::spawn("hanging", txn(&tools, &bootstrap, "stuck", "s0,s1,s2", "--hang"));
    hanging.wait_for("the open transaction written", WAIT, |s| {
        s.other.iter().any(|e| e["event"] == "written").then_some(())
    });
    hanging.kill_hard();
    run_to_completion("commit-after", txn(&tools, &bootstrap, "after", "a0,a1", "--commit"), WAIT);

    // Before (3 values + a marker), then the open transaction from offset 4.
    let start = 4;
    let (stable, high) = wait_until("partition 0's offsets", WAIT, || stable_and_high(&cluster));
    assert_eq!((stable, high), (start, 4 + 3 + 2 + 1), "the open transaction holds the LSO at its first offset");

    let mut member = tools.python();
    member.arg("-u").arg(workspace_root().join("e2e/python/strom_txn_history.py")).args([
        "read",
        "--bootstrap",
        &bootstrap,
        "--topics",
        TOPIC,
        "--partitions",
        "1",
        "--group",
        GROUP,
    ]);
    let mut member = ClientProcess::spawn("read-committed-member", member);
    let values = |s: &common::e2e::ClientState| -> Vec<String> {
        s.other
            .iter()
            .filter(|e| e["event"] == "read")
            .filter_map(|e| e["value"].as_str().map(str::to_string))
            .collect()
    };
    member.wait_for("the member read the first commit and committed its offset", WAIT, |s| {
        (values(s).len() == 3 && !s.commits.is_empty()).then_some(())
    });

    // The group's lag, as kafka-consumer-groups.sh shows it: stopped at the open transaction.
    let described = consumer_groups(&bootstrap);
    let current: Vec<i64> =
        column(&described, "GROUP", "CURRENT-OFFSET").iter().map(|o| o.parse().expect("offset")).collect();
    let end: Vec<i64> =
        column(&described, "GROUP", "LOG-END-OFFSET").iter().map(|o| o.parse().expect("offset")).collect();
    let lag: Vec<i64> = column(&described, "GROUP", "LAG").iter().map(|o| o.parse().expect("lag")).collect();
    assert_eq!(current.len(), 1, "{described}");
    assert!(current[0] <= start && current[0] >= 3, "the group stopped at the open transaction:\n{described}");
    assert_eq!((end[0], lag[0]), (high, high - current[0]), "{described}");

    // kafka-transactions.sh list / describe / describe-producers.
    let listed = transactions(&bootstrap, &["list"]);
    let ids = column(&listed, "TransactionalId", "TransactionalId");
    let states = column(&listed, "TransactionalId", "TransactionState");
    for (id, state) in [("before", "CompleteCommit"), ("stuck", "Ongoing"), ("after", "CompleteCommit")] {
        let i = ids.iter().position(|x| x == id).unwrap_or_else(|| panic!("{id} not listed:\n{listed}"));
        assert_eq!(states[i], state, "{listed}");
    }
    let described = transactions(&bootstrap, &["describe", "--transactional-id", "stuck"]);
    assert_eq!(column(&described, "CoordinatorId", "TransactionState"), ["Ongoing"], "{described}");
    assert!(described.contains(&format!("{TOPIC}-0")), "the open transaction names its partition:\n{described}");
    let producers = transactions(&bootstrap, &["describe-producers", "--topic", TOPIC, "--partition", "0"]);
    let starts = column(&producers, "ProducerId", "CurrentTransactionStartOffset");
    assert_eq!(starts.iter().filter(|s| **s == start.to_string()).count(), 1, "{producers}");

    // kafka-transactions.sh abort: the partition's LSO reaches its high watermark, the member reads on.
    transactions(&bootstrap, &["abort", "--topic", TOPIC, "--partition", "0", "--start-offset", &start.to_string()]);
    let (_, high) = wait_until("the LSO past the aborted transaction", WAIT, || {
        stable_and_high(&cluster).filter(|(stable, high)| stable == high)
    });
    assert_eq!(high, 4 + 3 + 2 + 1 + 1, "the abort wrote one marker");
    member.wait_for("the member read the later commit", WAIT, |s| (values(s).len() == 5).then_some(()));
    let read = member.with_state(values);
    assert_eq!(read, ["b0", "b1", "b2", "a0", "a1"], "read_committed shows both commits and nothing aborted");
    let producers = transactions(&bootstrap, &["describe-producers", "--topic", TOPIC, "--partition", "0"]);
    let starts = column(&producers, "ProducerId", "CurrentTransactionStartOffset");
    assert!(starts.iter().all(|s| s == "None" || s == "-1"), "no transaction open any more:\n{producers}");
    let described = wait_until("the group's offset past the aborted transaction", WAIT, || {
        let described = consumer_groups(&bootstrap);
        let current: Vec<i64> =
            column(&described, "GROUP", "CURRENT-OFFSET").iter().map(|o| o.parse().expect("offset")).collect();
        (current.first().is_some_and(|c| *c > start + 3)).then_some(described)
    });
    let lag: Vec<i64> = column(&described, "GROUP", "LAG").iter().map(|o| o.parse().expect("lag")).collect();
    assert!(
        lag[0] <= 2,
        "only the two markers (commit, abort) may stay ahead of a read_committed member:\n{described}"
    );
    member.stop();
}
