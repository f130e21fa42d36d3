//! The Java client's transactions (org.apache.kafka:kafka-clients 4.x, from
//! Maven Central) against a 3-broker cluster.
//!
//! Proves that a transactional KafkaProducer commits across three partitions
//! of two topics, that an aborted transaction is invisible to a
//! `read_committed` consumer while a `read_uncommitted` one sees its records,
//! that every committed record is seen exactly once, and that a second
//! producer with the same transactional.id fences the first (its commit fails
//! with ProducerFencedException, its open transaction is aborted) and then
//! commits on its own; that `kafka-transactions.sh list` and `describe`
//! show the transactional id; and that a consume-transform-produce loop (a
//! read_committed group member whose producer commits the consumed
//! positions with `sendOffsetsToTransaction`) writes every output record
//! exactly once, its aborted first transaction leaving neither output nor
//! committed offsets behind, and ends with the group's committed offsets at
//! the input's end. And that the client runs transaction.version 2 (KIP-890
//! part 2) against Strom: one producer's successive transactions each end
//! with the producer epoch one higher (seen with DescribeTransactions),
//! which only EndTxn v5's per-transaction bump does.
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) to have resolved
//! the classpath and compiled e2e/java; fails, saying so, when it has not.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{Cluster, create_topic};
use common::e2e::{Client, E2eTools, run_with_input};

/// Fast failure detection, and small internal topics for a quick start.
const SETTINGS: &[&str] = &[
    "broker.session.timeout.ms=3000",
    "broker.heartbeat.interval.ms=500",
    "offsets.topic.num.partitions=3",
    "transaction.state.log.num.partitions=3",
];
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
const PER_PARTITION: usize = 5;
const MIN_ISR_2: &[(&str, &str)] = &[("min.insync.replicas", "2")];

/// Runs `dev.strom.e2e.Transactions <args>`; asserts it exits 0; returns its JSON lines.
fn java(tools: &E2eTools, args: &[&str]) -> Vec<String> {
    let mut command = tools.java_main("dev.strom.e2e.Transactions");
    command.args(args);
    let (status, stdout, stderr) = run_with_input(&mut command, "", RUN_TIMEOUT);
    assert!(
        status.success(),
        "Transactions {args:?} exited with {status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    stdout.lines().map(str::to_string).collect()
}

/// Runs Kafka's `kafka-transactions.sh` (TransactionsCommand); asserts it exits 0; returns its stdout.
fn transactions_cli(tools: &E2eTools, args: &[&str]) -> String {
    let mut command = tools.java_main("org.apache.kafka.tools.TransactionsCommand");
    command.args(args);
    let (status, stdout, stderr) = run_with_input(&mut command, "", RUN_TIMEOUT);
    assert!(status.success(), "kafka-transactions {args:?} exited with {status}\n{stdout}\n{stderr}");
    stdout
}

/// The string field `name` of a JSON line written by Transactions.java (no escapes in our values).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let at = line.find(&key)? + key.len();
    line[at..].split('"').next()
}

/// Every record value a consumer at `isolation` reads from `topics`, with how often it was seen.
fn read(tools: &E2eTools, bootstrap: &str, topics: &str, isolation: &str) -> BTreeMap<String, usize> {
    let lines = java(tools, &["read", "--bootstrap", bootstrap, "--topics", topics, "--isolation", isolation]);
    let mut seen = BTreeMap::new();
    for line in lines.iter().filter(|l| l.contains("\"event\":\"record\"")) {
        let value = field(line, "value").unwrap_or_else(|| panic!("a record line without a value: {line}"));
        *seen.entry(value.to_string()).or_insert(0) += 1;
    }
    seen
}

fn transaction(tools: &E2eTools, bootstrap: &str, id: &str, prefix: &str, end: &str) {
    let targets = "payments:0,payments:1,ledger:0";
    let count = PER_PARTITION.to_string();
    let lines = java(
        tools,
        &[
            "txn",
            "--bootstrap",
            bootstrap,
            "--transactional-id",
            id,
            "--targets",
            targets,
            "--count",
            &count,
            "--prefix",
            prefix,
            "--end",
            end,
        ],
    );
    assert!(lines.iter().any(|l| l.contains("\"event\":\"ended\"")), "the {prefix} transaction did not end: {lines:?}");
}

/// The values a transaction with `prefix` wrote.
fn values(prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (topic, partition) in [("payments", 0), ("payments", 1), ("ledger", 0)] {
        for i in 0..PER_PARTITION {
            out.push(format!("{prefix}-{topic}-{partition}-{i}"));
        }
    }
    out
}

#[test]
fn java_transactions_commit_abort_read_committed_and_fence_zombies_on_three_brokers() {
    let tools = E2eTools::load();
    let cluster = Cluster::start(3, "java-transactions", SETTINGS);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "payments", 2, 3, None, MIN_ISR_2);
    create_topic(&bootstrap, "ledger", 1, 3, None, MIN_ISR_2);

    transaction(&tools, &bootstrap, "payments-app", "c1", "commit");
    transaction(&tools, &bootstrap, "payments-app", "a1", "abort");
    transaction(&tools, &bootstrap, "payments-app", "c2", "commit");

    let committed = read(&tools, &bootstrap, "payments,ledger", "read_committed");
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for v in values("c1").into_iter().chain(values("c2")) {
        expected.insert(v, 1);
    }
    assert_eq!(committed, expected, "read_committed: both committed transactions whole, once, nothing aborted");

    let uncommitted = read(&tools, &bootstrap, "payments,ledger", "read_uncommitted");
    let mut all = expected.clone();
    for v in values("a1") {
        all.insert(v, 1);
    }
    assert_eq!(uncommitted, all, "read_uncommitted also sees the aborted transaction's records");

    // kafka-transactions.sh list / describe.
    let list = transactions_cli(&tools, &["--bootstrap-server", &bootstrap, "list"]);
    assert!(
        list.lines().any(|l| l.split_whitespace().next() == Some("payments-app") && l.contains("CompleteCommit")),
        "kafka-transactions list:\n{list}"
    );
    let describe =
        transactions_cli(&tools, &["--bootstrap-server", &bootstrap, "describe", "--transactional-id", "payments-app"]);
    let row = describe.lines().find(|l| l.contains("payments-app")).unwrap_or_else(|| panic!("describe:\n{describe}"));
    assert!(row.contains("CompleteCommit"), "kafka-transactions describe:\n{describe}");

    // Zombie fencing: the successor's InitProducerId fences the first producer.
    let lines =
        java(&tools, &["fence", "--bootstrap", &bootstrap, "--transactional-id", "fence-app", "--topic", "ledger"]);
    let fenced = lines.iter().find_map(|l| field(l, "exception")).unwrap_or("none").to_string();
    assert!(
        fenced == "ProducerFencedException" || fenced == "InvalidProducerEpochException",
        "the zombie's commit must fail as fenced, got {fenced}: {lines:?}"
    );
    let ledger = read(&tools, &bootstrap, "ledger", "read_committed");
    assert_eq!(ledger.get("successor-0"), Some(&1), "the successor's commit is visible: {ledger:?}");
    assert!(!ledger.contains_key("zombie-0") && !ledger.contains_key("zombie-1"), "nothing of the zombie: {ledger:?}");

    // transaction.version 2: every EndTxn of the same producer bumps its epoch.
    let lines = java(
        &tools,
        &[
            "epochs",
            "--bootstrap",
            &bootstrap,
            "--transactional-id",
            "tv2-app",
            "--topic",
            "ledger",
            "--transactions",
            "4",
        ],
    );
    let number = |line: &str, name: &str| -> i64 {
        let key = format!("\"{name}\":");
        let at = line.find(&key).unwrap_or_else(|| panic!("no {name} in {line}")) + key.len();
        line[at..].split([',', '}']).next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let observed: Vec<(i64, i64)> = lines
        .iter()
        .filter(|l| l.contains("\"event\":\"epoch\""))
        .map(|l| (number(l, "producerId"), number(l, "producerEpoch")))
        .collect();
    assert_eq!(observed.len(), 4, "{lines:?}");
    for pair in observed.windows(2) {
        assert_eq!(pair[1].0, pair[0].0, "one producer id throughout: {observed:?}");
        assert_eq!(
            pair[1].1,
            pair[0].1 + 1,
            "each transaction's end bumps the epoch (transaction.version 2): {observed:?}"
        );
    }
    let ledger = read(&tools, &bootstrap, "ledger", "read_committed");
    for (i, committed) in [(0, true), (1, false), (2, true), (3, false)] {
        let value = format!("tv2-app-{i}");
        assert_eq!(ledger.get(&value).copied(), committed.then_some(1), "{value} at its bumped epoch: {ledger:?}");
    }
}

#[test]
fn java_consume_transform_produce_commits_offsets_in_the_transaction() {
    const RECORDS: usize = 300;
    let tools = E2eTools::load();
    let cluster = Cluster::start(3, "java-ctp", SETTINGS);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "input", 2, 3, None, MIN_ISR_2);
    create_topic(&bootstrap, "output", 1, 3, None, MIN_ISR_2);
    Client::Java.produce(&tools, &bootstrap, "input", 0, RECORDS, RECORDS);

    let count = RECORDS.to_string();
    let lines = java(
        &tools,
        &[
            "ctp",
            "--bootstrap",
            &bootstrap,
            "--input",
            "input",
            "--output",
            "output",
            "--group",
            "ctp-group",
            "--transactional-id",
            "ctp-app",
            "--count",
            &count,
        ],
    );
    let done = lines.iter().find(|l| l.contains("\"event\":\"ctp-done\"")).unwrap_or_else(|| panic!("{lines:?}"));
    assert!(done.contains("\"aborted\":1"), "the first transaction was aborted: {done}");
    assert!(done.contains(&format!("\"committed\":{RECORDS}")), "every input record committed once: {done}");

    let output = read(&tools, &bootstrap, "output", "read_committed");
    let expected: BTreeMap<String, usize> = (0..RECORDS).map(|i| (format!("out-value-{i}"), 1)).collect();
    assert_eq!(output, expected, "read_committed output: every input record transformed exactly once");

    let committed = Client::Java.committed(&tools, &bootstrap, "input", "ctp-group", 2);
    let total: i64 = committed.values().sum();
    assert_eq!(
        total, RECORDS as i64,
        "the group's committed offsets (from the transactions) reach the input's end: {committed:?}"
    );
}
