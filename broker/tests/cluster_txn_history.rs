//! Transactions under faults, checked as a history (Jepsen's Kafka workload
//! in spirit), on 3 brokers (RF 3, min.insync.replicas 2).
//!
//! Three librdkafka transactional producers (e2e/python/strom_txn_history.py)
//! each run transactions over random partitions of two topics with unique
//! values, committing or aborting at random, and report each transaction's
//! values and outcome as the client saw it (committed, aborted, unknown). A
//! read_committed consumer reads all along. Meanwhile the test kills (-9)
//! the transaction coordinator of one producer and restarts it, kills a
//! partition leader and restarts it, freezes (SIGSTOP) the active
//! controller until another is elected and every producer commits again, and
//! kills (-9) a producer in its transaction, whose successor with the same
//! transactional id fences it (the killed transaction's outcome is unknown to
//! the test: it began, and may have committed). After the producers stop, every partition's last stable offset must reach
//! its high watermark (no transaction left hanging), and a second
//! read_committed consumer reads everything from the beginning.
//!
//! The checker ([`common::txn_history::check`]) proves, over both readers: no
//! aborted value read; no value read before its producer called commit; each
//! committed transaction read whole and each value exactly once; an
//! unknown-outcome transaction read whole or not at all; per partition, each
//! producer's values in the order it sent them. Its own unit tests below
//! feed it histories with an aborted read, a torn transaction, a duplicate,
//! a reorder and an early read, each of which it must catch.
//!
//! Needs `bash scripts/e2e-deps.sh` to have set up the Python client.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, TRANSACTION_KEY, coordinator_of, create_topic, transactional_settings, wait_until};
use common::e2e::{ClientProcess, ClientState, E2eTools, workspace_root};
use common::txn::{READ_COMMITTED, READ_UNCOMMITTED, latest_with};
use common::txn_history::{Outcome, Read, Reader, Txn, check};
use common::wire::WireClient;
use serde_json::Value;

const TOPICS: [&str; 2] = ["ledger-a", "ledger-b"];
const PARTITIONS: i32 = 3;
const PRODUCERS: usize = 3;
/// Transactions each producer ends (any outcome) between two steps of the test.
const PROGRESS: usize = 3;
/// The producers' transaction.timeout.ms.
const TRANSACTION_TIMEOUT_MS: u64 = 10_000;
/// Waits on the cluster and the clients: generous, for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(120);

fn settings() -> Vec<&'static str> {
    let mut settings = transactional_settings();
    settings.push("min.insync.replicas=2");
    settings
}

fn transactional_id(p: usize) -> String {
    format!("history-{p}")
}

fn script(tools: &E2eTools) -> std::process::Command {
    let mut command = tools.python();
    command.arg("-u").arg(workspace_root().join("e2e").join("python").join("strom_txn_history.py"));
    command
}

/// Producer `p` (transactional id `history-<p>`) as `name`, its values `<name>-<txn>-<i>`.
fn producer(tools: &E2eTools, bootstrap: &str, p: usize, name: &str) -> ClientProcess {
    let mut command = script(tools);
    command.args(["produce", "--bootstrap", bootstrap, "--topics", &TOPICS.join(",")]).args([
        "--partitions".to_string(),
        PARTITIONS.to_string(),
        "--transactional-id".to_string(),
        transactional_id(p),
        "--producer".to_string(),
        name.to_string(),
        "--seed".to_string(),
        (7 + p).to_string(),
        "--transaction-timeout-ms".to_string(),
        TRANSACTION_TIMEOUT_MS.to_string(),
    ]);
    ClientProcess::spawn(name, command)
}

fn reader(tools: &E2eTools, bootstrap: &str, name: &str, until_end: bool) -> ClientProcess {
    let mut command = script(tools);
    command.args(["read", "--bootstrap", bootstrap, "--topics", &TOPICS.join(","), "--partitions"]);
    command.arg(PARTITIONS.to_string());
    if until_end {
        command.arg("--until-end");
    }
    ClientProcess::spawn(name, command)
}

/// The transactions a producer reported; one it began but never reported
/// the end of (it was killed) has an unknown outcome.
fn transactions(state: &ClientState) -> Vec<Txn> {
    let mut txns: Vec<Txn> = state
        .other
        .iter()
        .filter(|e| e["event"] == "transaction")
        .map(|e| Txn {
            producer: e["producer"].as_str().expect("producer").to_string(),
            txn: e["txn"].as_u64().expect("txn"),
            values: values_of(&e["values"]),
            outcome: match e["outcome"].as_str() {
                Some("committed") => Outcome::Committed,
                Some("aborted") => Outcome::Aborted,
                Some("unknown") => Outcome::Unknown,
                other => panic!("unknown outcome {other:?} in {e}"),
            },
            ending_at: e["ending_at"].as_f64().expect("ending_at"),
        })
        .collect();
    let last_begun = state.other.iter().rev().find(|e| e["event"] == "begin");
    if let Some(begun) = last_begun.filter(|b| txns.last().is_none_or(|t| Some(t.txn) != b["txn"].as_u64())) {
        txns.push(Txn {
            producer: begun["producer"].as_str().expect("producer").to_string(),
            txn: begun["txn"].as_u64().expect("txn"),
            values: values_of(&begun["values"]),
            outcome: Outcome::Unknown,
            ending_at: begun["at"].as_f64().expect("at"),
        });
    }
    txns
}

fn values_of(values: &Value) -> Vec<(String, i32, String)> {
    values
        .as_array()
        .expect("values")
        .iter()
        .map(|v| {
            (
                v[0].as_str().expect("topic").to_string(),
                v[1].as_i64().expect("partition") as i32,
                v[2].as_str().expect("value").to_string(),
            )
        })
        .collect()
}

/// The records a reader reported.
fn reads(state: &ClientState) -> Vec<Read> {
    state.other.iter().filter(|e| e["event"] == "read").map(read_of).collect()
}

fn read_of(e: &Value) -> Read {
    Read {
        topic: e["topic"].as_str().expect("topic").to_string(),
        partition: e["partition"].as_i64().expect("partition") as i32,
        offset: e["offset"].as_i64().expect("offset"),
        value: e["value"].as_str().expect("value").to_string(),
        at: e["at"].as_f64().expect("at"),
    }
}

fn ended(state: &ClientState) -> usize {
    state.other.iter().filter(|e| e["event"] == "transaction").count()
}

fn committed(state: &ClientState) -> usize {
    state.other.iter().filter(|e| e["event"] == "transaction" && e["outcome"] == "committed").count()
}

/// Waits until every producer committed at least `more` transactions beyond `before`.
fn wait_commits(producers: &[ClientProcess], what: &str, more: usize) -> Vec<usize> {
    let before: Vec<usize> = producers.iter().map(|p| p.with_state(committed)).collect();
    let group: Vec<&ClientProcess> = producers.iter().collect();
    ClientProcess::wait_all(&group, what, WAIT, |states| {
        states.iter().zip(&before).all(|(s, b)| committed(s) >= b + more).then_some(())
    });
    producers.iter().map(|p| p.with_state(committed)).collect()
}

/// The (read_committed, read_uncommitted) end offsets of a partition, from its leader.
fn stable_and_high(cluster: &Cluster, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let leader = cluster.partition(topic, partition)?.leader;
    if leader < 0 || !cluster.running().contains(&leader) {
        return None;
    }
    let mut c = WireClient::connect(cluster.broker(leader).kafka_addr());
    let (e1, stable) = latest_with(&mut c, topic, partition, READ_COMMITTED);
    let (e2, high) = latest_with(&mut c, topic, partition, READ_UNCOMMITTED);
    (e1 == 0 && e2 == 0).then_some((stable, high))
}

#[test]
fn transactional_history_under_coordinator_leader_and_controller_faults() {
    let tools = E2eTools::load();
    let mut cluster = Cluster::start(3, "txn-history", &settings());
    let bootstrap = cluster.bootstrap();
    for topic in TOPICS {
        create_topic(&bootstrap, topic, PARTITIONS, 3, None, &[("min.insync.replicas", "2")]);
    }
    let started = Instant::now();
    let mut watcher = reader(&tools, &bootstrap, "reader-during", false);
    let mut producers: Vec<ClientProcess> =
        (0..PRODUCERS).map(|p| producer(&tools, &bootstrap, p, &format!("p{p}"))).collect();
    let mut all: Vec<&ClientProcess> = producers.iter().collect();
    all.push(&watcher);
    ClientProcess::wait_all(&all, "every producer's first transactions", WAIT, |s| {
        s[..PRODUCERS].iter().all(|s| ended(s) >= PROGRESS).then_some(())
    });
    wait_commits(&producers, "a commit by every producer", 1);
    eprintln!("[test] every producer committed after {:?}", started.elapsed());

    // Fault 1: kill -9 the transaction coordinator of producer 0, and restart it.
    let coordinator = wait_until("producer 0's transaction coordinator", WAIT, || {
        coordinator_of(&cluster, &transactional_id(0), TRANSACTION_KEY)
    });
    cluster.kill(coordinator);
    wait_commits(&producers, "commits with producer 0's coordinator killed", PROGRESS);
    cluster.restart(coordinator);
    for topic in TOPICS {
        cluster.wait_for_full_isr(topic, PARTITIONS, WAIT);
    }
    eprintln!("[test] killed and restarted coordinator {coordinator}; {:?} s", started.elapsed().as_secs());

    // Fault 2: kill -9 the leader of ledger-a partition 0, and restart it.
    let leader = wait_until("ledger-a-0's leader", WAIT, || cluster.partition(TOPICS[0], 0).map(|v| v.leader));
    cluster.kill(leader);
    cluster.wait_for_new_leader(TOPICS[0], 0, leader, WAIT);
    wait_commits(&producers, "commits with a partition leader killed", PROGRESS);
    cluster.restart(leader);
    for topic in TOPICS {
        cluster.wait_for_full_isr(topic, PARTITIONS, WAIT);
    }
    eprintln!("[test] killed and restarted leader {leader}; {:?} s", started.elapsed().as_secs());

    // Fault 3: freeze the active controller until another is elected and every producer commits.
    let controller = cluster.wait_for_controller(&[], WAIT);
    cluster.pause(controller);
    let elected = cluster.wait_for_controller(&[controller], WAIT);
    wait_commits(&producers, "commits with the controller frozen", 1);
    cluster.resume(controller);
    for topic in TOPICS {
        cluster.wait_for_full_isr(topic, PARTITIONS, WAIT);
    }
    eprintln!(
        "[test] froze controller {controller} ({elected} took over) and resumed it; {:?} s",
        started.elapsed().as_secs()
    );

    // Fault 4: kill -9 producer 1 mid-transaction; its successor (same
    // transactional id) fences it and aborts what it left open.
    wait_commits(&producers, "commits with the cluster whole", 1);
    producers[1].kill_hard();
    let mut txns = producers[1].with_state(transactions);
    producers[1] = producer(&tools, &bootstrap, 1, "p1-again");
    eprintln!("[test] killed producer 1; its last transaction: {:?}", txns.last().map(|t| (t.txn, t.outcome)));

    // Every producer commits on; then they stop.
    let last = wait_commits(&producers, "commits after the faults", PROGRESS);
    txns.extend(producers.iter_mut().flat_map(|p| {
        let state = p.stop();
        if !state.closed {
            p.fail("stopped without closing");
        }
        // Why transactions failed (an abort's purged messages left out).
        let failed: Vec<&String> = state
            .client_errors
            .iter()
            .filter(|e| e.starts_with("transaction ") || (e.starts_with("delivery ") && !e.contains("_PURGE_QUEUE")))
            .collect();
        eprintln!("[test] {}'s failed transactions: {failed:?}", p.name());
        transactions(&state)
    }));
    eprintln!("[test] producers stopped after {:?} s; commits per producer {last:?}", started.elapsed().as_secs());

    // No transaction left hanging: every partition's LSO reaches its high watermark.
    for topic in TOPICS {
        for p in 0..PARTITIONS {
            wait_until(&format!("{topic}-{p}'s last stable offset at its high watermark"), WAIT, || {
                stable_and_high(&cluster, topic, p).filter(|(stable, high)| stable == high)
            });
        }
    }

    // A reader from the beginning after the end; the reader all along catches up with it.
    let mut last_reader = reader(&tools, &bootstrap, "reader-after", true);
    let after = last_reader.wait_exit_success();
    let after_reads = reads(&after);
    let distinct = after_reads.len();
    watcher.wait_for("the reader all along caught up", WAIT, |s| {
        let mut seen: Vec<&str> =
            s.other.iter().filter(|e| e["event"] == "read").filter_map(|e| e["value"].as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        (seen.len() >= distinct).then_some(())
    });
    let during = watcher.stop();
    let readers = [
        Reader { name: "reader-during".to_string(), reads: reads(&during), complete: true },
        Reader { name: "reader-after".to_string(), reads: after_reads, complete: true },
    ];
    match check(&txns, &readers) {
        Ok(summary) => {
            eprintln!("[test] history passed in {:?} s: {summary:?}", started.elapsed().as_secs());
            assert!(summary.committed > 0 && summary.aborted > 0, "both outcomes were exercised: {summary:?}");
        }
        Err(violations) => cluster.fail(&format!(
            "the transactional history has {} violation(s):\n  {}",
            violations.len(),
            violations.join("\n  ")
        )),
    }
}

// --- The checker's own tests: each violation it exists for must be caught. ---

fn txn(producer: &str, n: u64, values: &[(&str, i32)], outcome: Outcome, ending_at: f64) -> Txn {
    Txn {
        producer: producer.to_string(),
        txn: n,
        values: values
            .iter()
            .enumerate()
            .map(|(i, (topic, p))| (topic.to_string(), *p, format!("{producer}-{n}-{i}")))
            .collect(),
        outcome,
        ending_at,
    }
}

fn read(topic: &str, partition: i32, offset: i64, value: &str, at: f64) -> Read {
    Read { topic: topic.to_string(), partition, offset, value: value.to_string(), at }
}

fn complete(reads: Vec<Read>) -> Vec<Reader> {
    vec![Reader { name: "final".to_string(), reads, complete: true }]
}

/// Two committed transactions and an aborted one, read correctly.
fn sample() -> (Vec<Txn>, Vec<Read>) {
    let txns = vec![
        txn("p0", 1, &[("a", 0), ("b", 1)], Outcome::Committed, 1.0),
        txn("p0", 2, &[("a", 0)], Outcome::Aborted, 2.0),
        txn("p0", 3, &[("a", 0), ("a", 0)], Outcome::Committed, 3.0),
    ];
    let reads = vec![
        read("a", 0, 0, "p0-1-0", 1.5),
        read("b", 1, 0, "p0-1-1", 1.5),
        read("a", 0, 4, "p0-3-0", 3.5),
        read("a", 0, 5, "p0-3-1", 3.5),
    ];
    (txns, reads)
}

fn violations(txns: &[Txn], readers: &[Reader]) -> String {
    check(txns, readers).expect_err("the checker must find a violation").join("\n")
}

#[test]
fn txn_history_checker_passes_a_correct_history() {
    let (txns, reads) = sample();
    let summary = check(&txns, &complete(reads)).expect("a correct history passes");
    assert_eq!((summary.committed, summary.aborted, summary.unknown, summary.reads), (2, 1, 0, 4));
}

#[test]
fn txn_history_checker_catches_an_aborted_read() {
    let (txns, mut reads) = sample();
    reads.insert(1, read("a", 0, 2, "p0-2-0", 2.5));
    let found = violations(&txns, &complete(reads));
    assert!(found.contains("\"p0-2-0\"") && found.contains("which aborted"), "{found}");
}

#[test]
fn txn_history_checker_catches_a_torn_transaction() {
    let (txns, mut reads) = sample();
    reads.remove(3);
    let found = violations(&txns, &complete(reads));
    assert!(found.contains("misses [\"p0-3-1\"]") && found.contains("committed transaction 3"), "{found}");
}

#[test]
fn txn_history_checker_catches_a_torn_unknown_transaction_but_not_a_whole_or_absent_one() {
    let (mut txns, reads) = sample();
    txns[2].outcome = Outcome::Unknown;
    let whole = check(&txns, &complete(reads.clone())).expect("an unknown transaction read whole passes");
    assert_eq!(whole.unknown_visible, 1);
    let absent: Vec<Read> = reads.iter().filter(|r| !r.value.starts_with("p0-3-")).cloned().collect();
    assert_eq!(check(&txns, &complete(absent)).expect("an unknown transaction absent passes").unknown_visible, 0);
    let mut torn = reads;
    torn.remove(2);
    let found = violations(&txns, &complete(torn));
    assert!(found.contains("unknown-outcome transaction 3 in part"), "{found}");
}

#[test]
fn txn_history_checker_catches_a_duplicate() {
    let (txns, mut reads) = sample();
    reads.push(read("a", 0, 6, "p0-3-1", 3.6));
    let found = violations(&txns, &complete(reads));
    assert!(found.contains("read \"p0-3-1\" twice"), "{found}");
}

#[test]
fn txn_history_checker_catches_a_read_before_the_commit() {
    let (txns, mut reads) = sample();
    reads[2].at = 2.9;
    let found = violations(&txns, &complete(reads));
    assert!(found.contains("before its producer called commit"), "{found}");
}

#[test]
fn txn_history_checker_catches_values_out_of_send_order() {
    let (txns, mut reads) = sample();
    reads[2].offset = 5;
    reads[3].offset = 4;
    let found = violations(&txns, &complete(reads));
    assert!(found.contains("other way round"), "{found}");
}

#[test]
fn txn_history_checker_tolerates_a_partial_reader_and_a_reread_offset() {
    let (txns, reads) = sample();
    let partial = Reader { name: "during".to_string(), reads: reads[..3].to_vec(), complete: false };
    let mut reread = reads.clone();
    reread.push(reads[0].clone());
    let readers = vec![partial, Reader { name: "final".to_string(), reads: reread, complete: true }];
    check(&txns, &readers).expect("a reader stopped early and one re-reading an offset pass");
}
