//! A Kafka Streams application with `processing.guarantee=exactly_once_v2`
//! (org.apache.kafka:kafka-streams 4.x, from Maven Central) on 3 brokers,
//! through a kill -9 of a broker and of a Streams instance.
//!
//! The application (e2e/java/.../StreamsEos.java) counts input records per
//! user: it regroups them by a key other than the input's (a repartition
//! topic), counts in a state store (a changelog topic), and writes each new
//! count to the output. Two instances run it in separate JVMs. An idempotent
//! producer writes a known input at a steady pace; meanwhile the test kills
//! (SIGKILL) the broker coordinating the application's group, then one
//! Streams instance, waits each time until every user's count moves on
//! without them, and restarts both.
//!
//! Proves, as a `read_committed` consumer of the output sees it, that every
//! user's final count is exactly the number of input records for that user,
//! and that the counts of each user come as 1, 2, 3, … with none repeated,
//! none missing and none out of order: every update the application made
//! was committed exactly once — none lost with the killed broker, none
//! duplicated by the killed instance's tasks being processed again from
//! their committed offsets and restored state elsewhere, none from an
//! aborted transaction shown to the reader. That takes the transaction
//! coordinator (transactions per commit interval, fencing of the killed
//! instance's producer, failover of the coordinators on the killed broker),
//! `read_committed` fetch on three topics, TxnOffsetCommit with the group's
//! generation, OffsetFetch with `require_stable`, and group rebalances.
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) to have resolved
//! the classpath and compiled e2e/java; fails, saying so, when it has not.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, GROUP_KEY, coordinator_of, create_topic, transactional_settings, wait_until};
use common::e2e::{ClientProcess, ClientState, E2eTools};

const APPLICATION_ID: &str = "counts-app";
/// Input records, and the users they are spread over (record i is user i % USERS).
const RECORDS: usize = 2400;
const USERS: usize = 20;
/// The producer's pace: the input takes RECORDS / PER_SECOND seconds to write,
/// long enough for both kills to land while it is still coming.
const PER_SECOND: usize = 80;
const PARTITIONS: i32 = 3;
/// Waits on the cluster and the clients: generous, for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(150);

fn streams_instance(tools: &E2eTools, bootstrap: &str, name: &str, state_dir: &Path) -> ClientProcess {
    let mut command = tools.java_main("dev.strom.e2e.StreamsEos");
    command.arg("run").args(["--bootstrap", bootstrap, "--application-id", APPLICATION_ID]).args([
        "--input",
        "input",
        "--output",
        "output",
        "--state-dir",
        state_dir.to_str().expect("a UTF-8 temp path"),
    ]);
    ClientProcess::spawn(name, command)
}

/// The state a Streams instance last reported (RUNNING, REBALANCING, ...).
fn streams_state(state: &ClientState) -> Option<String> {
    state.events.iter().rev().find_map(|line| {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        (event["event"] == "state").then(|| event["state"].as_str().unwrap_or_default().to_string())
    })
}

/// How many input records the producer reported acknowledged so far.
fn acked(state: &ClientState) -> usize {
    if let Some(n) = state.produced {
        return n as usize;
    }
    state
        .events
        .iter()
        .rev()
        .find_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            (event["event"] == "acked").then(|| event["count"].as_u64().unwrap_or(0) as usize)
        })
        .unwrap_or(0)
}

/// Each user's counts in the order the reader saw them (one user's updates
/// all go to one output partition, so this is that partition's order).
fn counts_by_user(state: &ClientState) -> BTreeMap<String, Vec<u64>> {
    let mut by_user: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &state.records {
        let user = r.key.clone().unwrap_or_else(|| panic!("an output record without a key: {r:?}"));
        let count = r.value.parse().unwrap_or_else(|e| panic!("output value {:?} of {user}: {e}", r.value));
        by_user.entry(user).or_default().push(count);
    }
    by_user
}

/// Each user's latest count.
fn latest(state: &ClientState) -> BTreeMap<String, u64> {
    counts_by_user(state)
        .into_iter()
        .map(|(user, counts)| (user, *counts.last().expect("one count at least")))
        .collect()
}

fn expected_counts() -> BTreeMap<String, u64> {
    let mut expected = BTreeMap::new();
    for i in 0..RECORDS {
        *expected.entry(format!("user-{}", i % USERS)).or_insert(0) += 1;
    }
    expected
}

/// Whether every user's count is past its count in `before`, or final.
fn moved_on(state: &ClientState, before: &BTreeMap<String, u64>, expected: &BTreeMap<String, u64>) -> bool {
    let now = latest(state);
    expected.iter().all(|(user, &final_count)| {
        let count = now.get(user).copied().unwrap_or(0);
        count == final_count || count > before.get(user).copied().unwrap_or(0)
    })
}

#[test]
fn streams_exactly_once_v2_counts_each_record_once_through_a_broker_and_an_instance_kill() {
    let tools = E2eTools::load();
    let mut cluster = Cluster::start(3, "streams-eos", &transactional_settings());
    let bootstrap = cluster.bootstrap();
    let topic_configs = [("min.insync.replicas", "2")];
    create_topic(&bootstrap, "input", PARTITIONS, 3, None, &topic_configs);
    create_topic(&bootstrap, "output", PARTITIONS, 3, None, &topic_configs);
    let state_dirs = tempfile::Builder::new().prefix("strom-streams-eos-").tempdir().expect("create a temp dir");
    let (dir_a, dir_b) = (state_dirs.path().join("a"), state_dirs.path().join("b"));
    let started = Instant::now();

    let mut watch = tools.java_main("dev.strom.e2e.StreamsEos");
    watch.args(["watch", "--bootstrap", &bootstrap, "--topic", "output"]);
    let mut reader = ClientProcess::spawn("read-committed-output", watch);
    let mut a = streams_instance(&tools, &bootstrap, "streams-a", &dir_a);
    let mut b = streams_instance(&tools, &bootstrap, "streams-b", &dir_b);
    ClientProcess::wait_all(&[&a, &b], "both Streams instances RUNNING", WAIT, |states| {
        states.iter().all(|s| streams_state(s).as_deref() == Some("RUNNING")).then_some(())
    });
    eprintln!("[test] both instances running after {:?}", started.elapsed());

    let mut produce = tools.java_main("dev.strom.e2e.StreamsEos");
    produce.args(["produce", "--bootstrap", &bootstrap, "--topic", "input"]).args([
        "--count",
        &RECORDS.to_string(),
        "--users",
        &USERS.to_string(),
        "--per-second",
        &PER_SECOND.to_string(),
    ]);
    let mut producer = ClientProcess::spawn("input-producer", produce);

    // Counts flow end to end; then the group's coordinator dies.
    ClientProcess::wait_all(&[&reader, &a, &b], "the first committed counts", WAIT, |s| {
        (s[0].records.len() >= RECORDS / 8).then_some(())
    });
    let victim =
        wait_until("the application's group coordinator", WAIT, || coordinator_of(&cluster, APPLICATION_ID, GROUP_KEY));
    cluster.kill(victim);
    let at_broker_kill = reader.with_state(latest);
    eprintln!(
        "[test] killed broker {victim} (group coordinator) after {:?}: {} input records acked, {} counts read",
        started.elapsed(),
        producer.with_state(acked),
        reader.with_state(|s| s.records.len())
    );

    // Every task goes on with the broker down (the group and its offsets on a new coordinator);
    // then instance A dies mid-run.
    let expected = expected_counts();
    ClientProcess::wait_all(&[&reader, &a, &b], "every user's count to move on with a broker down", WAIT, |s| {
        moved_on(s[0], &at_broker_kill, &expected).then_some(())
    });
    a.kill_hard();
    let at_kill = reader.with_state(latest);
    eprintln!(
        "[test] killed Streams instance A after {:?}: {} input records acked, {} counts read",
        started.elapsed(),
        producer.with_state(acked),
        reader.with_state(|s| s.records.len())
    );

    // Instance B takes over A's tasks: every user's count moves on (or is already final).
    ClientProcess::wait_all(&[&reader, &b], "every user's count to move on with instance A dead", WAIT, |s| {
        moved_on(s[0], &at_kill, &expected).then_some(())
    });
    eprintln!("[test] instance B carries every task after {:?}", started.elapsed());

    cluster.restart(victim);
    let mut a = streams_instance(&tools, &bootstrap, "streams-a-again", &dir_a);
    ClientProcess::wait_all(&[&a, &b, &reader], "the restarted instance A RUNNING", WAIT, |s| {
        (streams_state(s[0]).as_deref() == Some("RUNNING")).then_some(())
    });
    eprintln!("[test] broker {victim} and instance A back after {:?}", started.elapsed());

    let produced = producer.wait_exit_success();
    assert_eq!(produced.produced, Some(RECORDS as u64), "the producer's report");
    // Until every count is final — or one went past it, which the history check below reports.
    let deadline = Instant::now() + WAIT;
    loop {
        let now = reader.with_state(latest);
        if now == expected || now.iter().any(|(user, count)| expected.get(user).is_none_or(|e| count > e)) {
            break;
        }
        if let Some(ended) = [&reader, &a, &b].iter().find(|c| c.with_state(|s| s.ended)) {
            ended.fail("exited before every count was final");
        }
        if Instant::now() > deadline {
            let behind: BTreeMap<&String, (u64, u64)> = expected
                .iter()
                .map(|(user, e)| (user, (now.get(user).copied().unwrap_or(0), *e)))
                .filter(|(_, (count, e))| count != e)
                .collect();
            reader.fail(&format!("counts not final after {WAIT:?}; (latest, expected) of those behind: {behind:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("[test] all counts final after {:?}", started.elapsed());

    // The whole history: each user's counts are 1, 2, ..., final — each committed update once, in order.
    let history = reader.with_state(counts_by_user);
    for (user, counts) in &history {
        let final_count = expected.get(user).unwrap_or_else(|| panic!("a count for an unknown user {user}"));
        let want: Vec<u64> = (1..=*final_count).collect();
        if counts != &want {
            let wrong = counts.iter().zip(1..).find(|(c, i)| **c != *i).map(|(c, i)| (i, *c));
            reader.fail(&format!(
                "{user}'s counts are not 1..={final_count} once each, in order: {} updates, first wrong \
                 (position, count): {wrong:?}; all: {counts:?}",
                counts.len()
            ));
        }
    }
    assert_eq!(history.len(), USERS, "every user has counts");

    for streams in [&mut a, &mut b] {
        let errors = streams.with_state(|s| s.client_errors.clone());
        if !errors.is_empty() {
            eprintln!("[test] {} reported (and recovered from): {errors:?}", streams.name());
        }
        streams.kill_hard();
    }
    reader.stop();
    eprintln!("[test] done after {:?}", started.elapsed());
}
