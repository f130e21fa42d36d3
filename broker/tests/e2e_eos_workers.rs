//! Transactions in a consume-transform-produce loop on 3 brokers, through a
//! kill -9 of a broker and of a worker, with two real clients' transaction
//! APIs: librdkafka's (confluent-kafka from PyPI, e2e/python/strom_eos.py,
//! `send_offsets_to_transaction` with the group's metadata) and franz-go's
//! `GroupTransactSession` (e2e/go, `ctp`).
//!
//! Two workers, members of one group with their own transactional ids, copy
//! each input record to the same partition of the output, in a transaction
//! per batch that also commits the consumed positions. An idempotent Java
//! producer writes the input at a steady pace; meanwhile the test kills
//! (SIGKILL) the broker coordinating worker A's transactions, waits until
//! both workers copy on (A through its new coordinator), then kills worker A
//! itself, waits until worker B copies every partition, and restarts both
//! (A with its transactional id, which aborts what it left open).
//!
//! Proves, as a `read_committed` consumer of the output sees it, that each
//! output partition is its input partition copied exactly once and in order:
//! no input record lost, none copied twice (a killed worker's partitions
//! resume at the offsets its committed transactions recorded, its open
//! transaction aborted and invisible), none out of order. The two clients
//! run one after the other (each test takes the whole machine).
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) to have set up
//! the Python and Go clients and compiled e2e/java; fails, saying so, when
//! it has not.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::clients::consume_to_end;
use common::cluster::{Cluster, TRANSACTION_KEY, coordinator_of, create_topic, transactional_settings, wait_until};
use common::e2e::{ClientProcess, ClientState, E2eTools, workspace_root};

const GROUP: &str = "copy-group";
const RECORDS: usize = 3000;
/// The producer's pace: the input takes RECORDS / PER_SECOND seconds to write.
const PER_SECOND: usize = 100;
const PARTITIONS: i32 = 3;
/// Waits on the cluster and the clients: generous, for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(150);

/// The client library a worker runs.
#[derive(Debug, Clone, Copy)]
enum Worker {
    Librdkafka,
    FranzGo,
}

/// The two tests share the machine badly: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn worker(kind: Worker, tools: &E2eTools, bootstrap: &str, name: &str, transactional_id: &str) -> ClientProcess {
    let mut command = match kind {
        Worker::Librdkafka => {
            let mut c = tools.python();
            c.arg("-u").arg(workspace_root().join("e2e").join("python").join("strom_eos.py"));
            c
        }
        Worker::FranzGo => tools.go_client(),
    };
    command.args([
        "ctp",
        "--bootstrap",
        bootstrap,
        "--input",
        "input",
        "--output",
        "output",
        "--group",
        GROUP,
        "--transactional-id",
        transactional_id,
    ]);
    ClientProcess::spawn(name, command)
}

/// The input (partition, offset) each output record names, per output partition, in order.
fn copies(state: &ClientState) -> BTreeMap<i32, Vec<String>> {
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for r in &state.records {
        by_partition.entry(r.partition).or_default().push(r.value.clone());
    }
    by_partition
}

/// How many copies the reader saw in each output partition.
fn copied_per_partition(state: &ClientState) -> BTreeMap<i32, usize> {
    copies(state).into_iter().map(|(p, c)| (p, c.len())).collect()
}

/// Whether every output partition holds more copies than `before` — or the whole input is copied.
fn moved_on(state: &ClientState, before: &BTreeMap<i32, usize>) -> bool {
    let now = copied_per_partition(state);
    now.values().sum::<usize>() >= RECORDS
        || (0..PARTITIONS).all(|p| now.get(&p).copied().unwrap_or(0) > before.get(&p).copied().unwrap_or(0))
}

#[test]
fn librdkafka_consume_transform_produce_copies_each_record_once_through_a_broker_and_a_worker_kill() {
    copies_each_record_once_through_a_broker_and_a_worker_kill(Worker::Librdkafka);
}

#[test]
fn franz_go_group_transact_session_copies_each_record_once_through_a_broker_and_a_worker_kill() {
    copies_each_record_once_through_a_broker_and_a_worker_kill(Worker::FranzGo);
}

fn copies_each_record_once_through_a_broker_and_a_worker_kill(kind: Worker) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let tools = E2eTools::load();
    let mut cluster = Cluster::start(3, &format!("{kind:?}-eos").to_lowercase(), &transactional_settings());
    let bootstrap = cluster.bootstrap();
    let topic_configs = [("min.insync.replicas", "2")];
    create_topic(&bootstrap, "input", PARTITIONS, 3, None, &topic_configs);
    create_topic(&bootstrap, "output", PARTITIONS, 3, None, &topic_configs);
    let started = Instant::now();

    let mut watch = tools.java_main("dev.strom.e2e.StreamsEos");
    watch.args(["watch", "--bootstrap", &bootstrap, "--topic", "output"]);
    let mut reader = ClientProcess::spawn("read-committed-output", watch);
    let mut a = worker(kind, &tools, &bootstrap, "worker-a", "copier-a");
    let mut b = worker(kind, &tools, &bootstrap, "worker-b", "copier-b");
    ClientProcess::wait_all(&[&a, &b], "both workers assigned partitions", WAIT, |states| {
        states.iter().all(|s| !s.assignment.is_empty()).then_some(())
    });
    eprintln!("[test] both workers assigned after {:?}", started.elapsed());

    let mut produce = tools.java_main("dev.strom.e2e.StreamsEos");
    produce.args(["produce", "--bootstrap", &bootstrap, "--topic", "input"]).args([
        "--count",
        &RECORDS.to_string(),
        "--users",
        "10",
        "--per-second",
        &PER_SECOND.to_string(),
    ]);
    let mut producer = ClientProcess::spawn("input-producer", produce);

    // Copies flow; then the broker coordinating worker A's transactions dies.
    ClientProcess::wait_all(&[&reader, &a, &b], "the first committed copies", WAIT, |s| {
        (s[0].records.len() >= RECORDS / 8).then_some(())
    });
    let victim = wait_until("worker A's transaction coordinator", WAIT, || {
        coordinator_of(&cluster, "copier-a", TRANSACTION_KEY)
    });
    cluster.kill(victim);
    let at_broker_kill = reader.with_state(copied_per_partition);
    eprintln!(
        "[test] killed broker {victim} (transaction coordinator of copier-a) after {:?}; {} copies read",
        started.elapsed(),
        reader.with_state(|s| s.records.len())
    );

    // Both workers copy on with the broker down (A through its new coordinator); then worker A dies mid-run.
    ClientProcess::wait_all(&[&reader, &a, &b], "every partition copied on with a broker down", WAIT, |s| {
        moved_on(s[0], &at_broker_kill).then_some(())
    });
    a.kill_hard();
    let at_kill = reader.with_state(copied_per_partition);
    eprintln!("[test] killed worker A after {:?}; copies per partition {at_kill:?}", started.elapsed());

    // Worker B takes over A's partitions: every output partition grows (or the input is all copied).
    ClientProcess::wait_all(&[&reader, &b], "every partition copied on with worker A dead", WAIT, |s| {
        moved_on(s[0], &at_kill).then_some(())
    });
    eprintln!("[test] worker B copies every partition after {:?}", started.elapsed());

    cluster.restart(victim);
    let mut a = worker(kind, &tools, &bootstrap, "worker-a-again", "copier-a");
    ClientProcess::wait_all(&[&a, &b, &reader], "the restarted worker A assigned partitions", WAIT, |s| {
        (!s[0].assignment.is_empty()).then_some(())
    });
    eprintln!("[test] broker {victim} and worker A back after {:?}", started.elapsed());

    let produced = producer.wait_exit_success();
    assert_eq!(produced.produced, Some(RECORDS as u64), "the producer's report");
    ClientProcess::wait_all(&[&reader, &a, &b], "every input record copied (or more)", WAIT, |s| {
        (s[0].records.len() >= RECORDS).then_some(())
    });
    eprintln!("[test] all copied after {:?}", started.elapsed());

    // Each output partition is its input partition, once, in order.
    let input = consume_to_end(&bootstrap, "input", PARTITIONS);
    let output = reader.with_state(copies);
    for p in 0..PARTITIONS {
        let want: Vec<String> = input[&p].iter().map(|r| format!("{p}:{}", r.offset)).collect();
        let got = output.get(&p).cloned().unwrap_or_default();
        if got != want {
            let first = got.iter().zip(&want).position(|(g, w)| g != w);
            reader.fail(&format!(
                "output-{p} is not input-{p} copied once in order: {} copies of {} records; first difference at \
                 {first:?}: got {:?}, want {:?}",
                got.len(),
                want.len(),
                first.map(|i| &got[i.saturating_sub(2)..(i + 3).min(got.len())]),
                first.map(|i| &want[i.saturating_sub(2)..(i + 3).min(want.len())]),
            ));
        }
    }
    assert_eq!(input.values().map(Vec::len).sum::<usize>(), RECORDS, "the input holds every produced record once");

    for worker in [&mut a, &mut b] {
        let recoveries: Vec<String> = worker.with_state(|s| {
            s.client_errors
                .iter()
                .filter(|e| e.starts_with("aborting") || e.starts_with("recreating"))
                .cloned()
                .collect()
        });
        if !recoveries.is_empty() {
            eprintln!("[test] {} recovered from: {recoveries:?}", worker.name());
        }
        worker.kill_hard();
    }
    reader.stop();
    eprintln!("[test] done after {:?}", started.elapsed());
}
