//! Consumer group checks written once and run with every real client
//! ([`Client::Python`], [`Client::Go`], [`Client::Java`]) against a broker
//! process: how a group shares partitions, consumes each record once, takes
//! over a killed member's partitions, resumes at committed offsets across
//! client and broker restarts, and how two groups each see every record.
//!
//! Each check starts its own broker and clients and asserts on what the
//! clients reported (see [`super::e2e`]) and on what the broker holds (high
//! watermarks, committed offsets, record batches) read over the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::BrokerProcess;
use super::e2e::{
    Client, ClientProcess, ClientState, E2eTools, SESSION_TIMEOUT_MS, assert_each_consumed_once,
    assert_partition_and_key_order, is_balanced_cover,
};
use super::wire::{WireClient, create_topic_ok, fetch_all, latest_offset, offset_fetch};

/// Upper bound for a group to settle (initial rebalance delay, joins, syncs).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Upper bound for consuming what a test produced (a hang guard).
const CONSUME_TIMEOUT: Duration = Duration::from_secs(180);

/// The high watermark of each partition `0..partitions`.
pub fn high_watermarks(broker: &BrokerProcess, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let mut wire = WireClient::connect(broker.kafka_addr());
    (0..partitions).map(|p| (p, latest_offset(&mut wire, topic, p))).collect()
}

/// Asserts that every record stored in `topic` carries a producer id, i.e.
/// the client's producer ran idempotent.
pub fn assert_written_by_idempotent_producer(broker: &BrokerProcess, topic: &str, partitions: i32, who: &str) {
    let mut wire = WireClient::connect(broker.kafka_addr());
    for p in 0..partitions {
        let records = fetch_all(&mut wire, topic, p, 0);
        let without: Vec<i64> = records.iter().filter(|(_, pid, _)| *pid < 0).map(|(o, _, _)| *o).take(5).collect();
        assert!(
            without.is_empty(),
            "{who}'s producer should be idempotent by default, but records of {topic}-{p} at offsets {without:?} \
             carry no producer id"
        );
    }
}

/// Three members of one group on a 6-partition topic: they settle on
/// disjoint assignments that together cover all partitions; 30,000 keyed
/// records are consumed exactly once across the group, in offset order per
/// partition and produce order per key; after a commit, one member is killed
/// with SIGKILL and the other two take over its partitions (after the session
/// timeout) and consume 3,000 more records exactly once, starting at the
/// committed offsets (nothing old is read again).
pub fn group_shares_partitions_consumes_once_and_survives_a_killed_member(client: Client) {
    shares_consumes_once_and_survives_a_killed_member(client, BrokerProcess::start(), &[]);
}

/// The broker settings that time consumer-protocol (KIP-848) sessions as
/// [`SESSION_TIMEOUT_MS`] times classic ones (the client cannot choose).
pub fn consumer_protocol_settings() -> [String; 2] {
    [
        format!("group.consumer.session.timeout.ms={SESSION_TIMEOUT_MS}"),
        format!("group.consumer.heartbeat.interval.ms={}", SESSION_TIMEOUT_MS / 6),
    ]
}

/// As [`group_shares_partitions_consumes_once_and_survives_a_killed_member`],
/// with `group.protocol=consumer` (KIP-848): the broker assigns, and a
/// partition moves only after its previous owner revoked it.
pub fn consumer_protocol_group_shares_partitions_consumes_once_and_survives_a_killed_member(client: Client) {
    let settings = consumer_protocol_settings();
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start_with(&settings);
    shares_consumes_once_and_survives_a_killed_member(client, broker, &["--group-protocol", "consumer"]);
}

fn shares_consumes_once_and_survives_a_killed_member(client: Client, broker: BrokerProcess, consumer_args: &[&str]) {
    const PARTITIONS: i32 = 6;
    const RECORDS: usize = 30_000;
    const MORE: usize = 3_000;
    const KEYS: usize = 1_000;
    let tools = E2eTools::load();
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("orders", "order-processors");
    create_topic_ok(&mut WireClient::connect(broker.kafka_addr()), topic, PARTITIONS, &[]);

    let mut members: Vec<ClientProcess> = (0..3)
        .map(|i| client.consumer(&tools, &format!("member-{i}"), &bootstrap, topic, group, consumer_args))
        .collect();
    let settled: Vec<(BTreeSet<i32>, usize)> = ClientProcess::wait_all(
        &members.iter().collect::<Vec<_>>(),
        "3 members to settle on disjoint, balanced assignments covering all 6 partitions",
        SETTLE_TIMEOUT,
        |states| {
            let assignments: Vec<&BTreeSet<i32>> = states.iter().map(|s| &s.assignment).collect();
            is_balanced_cover(&assignments, PARTITIONS)
                .then(|| states.iter().map(|s| (s.assignment.clone(), s.assignment_events)).collect())
        },
    );

    client.produce(&tools, &bootstrap, topic, 0, RECORDS, KEYS);
    ClientProcess::wait_all(
        &members.iter().collect::<Vec<_>>(),
        &format!("the group to consume {RECORDS} records"),
        CONSUME_TIMEOUT,
        |states| (states.iter().map(|s| s.records.len()).sum::<usize>() >= RECORDS).then_some(()),
    );
    let commits: Vec<BTreeMap<i32, i64>> = members.iter_mut().map(|m| m.commit()).collect();
    let states: Vec<ClientState> = members.iter().map(|m| m.state()).collect();

    for (i, (state, (assignment, events))) in states.iter().zip(&settled).enumerate() {
        assert_eq!(
            state.assignment_events, *events,
            "member-{i}'s assignment changed while the group was consuming (a rebalance without a membership \
             change); events: {:?}",
            state.events
        );
        let foreign: Vec<i32> = state.records.iter().map(|r| r.partition).filter(|p| !assignment.contains(p)).collect();
        assert!(foreign.is_empty(), "member-{i} (assigned {assignment:?}) consumed from partitions {foreign:?}");
    }
    let consumed: Vec<(String, &[_])> =
        states.iter().enumerate().map(|(i, s)| (format!("member-{i}"), &s.records[..])).collect();
    let consumed: Vec<(&str, &[_])> = consumed.iter().map(|(n, r)| (n.as_str(), *r)).collect();
    assert_each_consumed_once(&format!("{} group of 3", client.name()), &consumed, 0..RECORDS);
    assert_partition_and_key_order(&format!("{} group of 3", client.name()), &consumed);

    let hw = high_watermarks(&broker, topic, PARTITIONS);
    assert_eq!(hw.values().sum::<i64>(), RECORDS as i64, "high watermarks {hw:?}");
    for (i, ((assignment, _), commit)) in settled.iter().zip(&commits).enumerate() {
        let expected: BTreeMap<i32, i64> = assignment.iter().map(|p| (*p, hw[p])).collect();
        assert_eq!(commit, &expected, "member-{i} committed the end of each partition it owns");
    }
    let mut wire = WireClient::connect(broker.kafka_addr());
    let stored: BTreeMap<i32, i64> =
        offset_fetch(&mut wire, group, topic, PARTITIONS).into_iter().map(|(p, (o, _))| (p, o)).collect();
    assert_eq!(stored, hw, "OffsetFetch after every member committed");

    // SIGKILL one member: no LeaveGroup, so only its session timeout frees its partitions.
    let victim_partitions = settled[1].0.clone();
    let seen_before: Vec<usize> = states.iter().map(|s| s.records.len()).collect();
    members[1].kill_hard();
    let killed_at = Instant::now();
    let survivors = [&members[0], &members[2]];
    let taken_over: Vec<BTreeSet<i32>> = ClientProcess::wait_all(
        &survivors,
        &format!("the 2 survivors to take over partitions {victim_partitions:?} of the killed member"),
        Duration::from_millis(SESSION_TIMEOUT_MS) + SETTLE_TIMEOUT,
        |states| {
            let assignments: Vec<&BTreeSet<i32>> = states.iter().map(|s| &s.assignment).collect();
            is_balanced_cover(&assignments, PARTITIONS).then(|| states.iter().map(|s| s.assignment.clone()).collect())
        },
    );
    eprintln!(
        "{}: the survivors own {taken_over:?} {:?} after the SIGKILL (session timeout {SESSION_TIMEOUT_MS} ms)",
        client.name(),
        killed_at.elapsed()
    );

    client.produce(&tools, &bootstrap, topic, RECORDS, MORE, KEYS);
    ClientProcess::wait_all(
        &survivors,
        &format!("the survivors to consume the {MORE} records produced after the takeover"),
        CONSUME_TIMEOUT,
        |states| {
            let new: usize =
                states.iter().zip([seen_before[0], seen_before[2]]).map(|(s, n)| s.records.len() - n).sum();
            (new >= MORE).then_some(())
        },
    );
    // Commit, then take what the survivors consumed before either stops: once
    // one leaves, the other is given its partitions too.
    let commits_after = [members[0].commit(), members[2].commit()];
    let finals = [members[0].state(), members[2].state()];
    members[0].stop();
    members[2].stop();
    let hw_after = high_watermarks(&broker, topic, PARTITIONS);
    let mut committed_after: BTreeMap<i32, i64> = BTreeMap::new();
    for (commit, assignment) in commits_after.iter().zip(&taken_over) {
        assert_eq!(commit.keys().copied().collect::<BTreeSet<i32>>(), *assignment, "a survivor commits what it owns");
        committed_after.extend(commit);
    }
    assert_eq!(committed_after, hw_after, "the survivors' commits reach the end of every partition");
    let after: Vec<(&str, &[_])> = vec![
        ("member-0 after the takeover", &finals[0].records[seen_before[0]..]),
        ("member-2 after the takeover", &finals[1].records[seen_before[2]..]),
    ];
    for ((name, records), assignment) in after.iter().zip(&taken_over) {
        let foreign: Vec<i32> = records.iter().map(|r| r.partition).filter(|p| !assignment.contains(p)).collect();
        assert!(foreign.is_empty(), "{name} (assigned {assignment:?}) consumed from partitions {foreign:?}");
    }
    // Anything from 0..RECORDS here means a survivor did not start at the committed offsets.
    assert_each_consumed_once(
        &format!("{} survivors after the takeover (records below {RECORDS} were already committed)", client.name()),
        &after,
        RECORDS..RECORDS + MORE,
    );
    assert_partition_and_key_order(&format!("{} survivors", client.name()), &after);
}

/// A member consumes 1,000 of 3,000 records, commits exactly what it
/// processed and leaves; the broker is killed with SIGKILL and restarted; the
/// committed offsets are still there (through the client's API and through
/// OffsetFetch); a new member of the group resumes exactly at them, so the
/// two runs together consume every record once. With `idempotent_producer`,
/// also asserts that the client's producer (default settings) wrote every
/// record with a producer id.
pub fn consumer_resumes_at_committed_offsets_across_a_broker_kill(client: Client, idempotent_producer: bool) {
    const PARTITIONS: i32 = 3;
    const RECORDS: usize = 3_000;
    const FIRST: usize = 1_000;
    let tools = E2eTools::load();
    let mut broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("payments", "payment-processors");
    create_topic_ok(&mut WireClient::connect(broker.kafka_addr()), topic, PARTITIONS, &[]);
    client.produce(&tools, &bootstrap, topic, 0, RECORDS, 300);
    if idempotent_producer {
        assert_written_by_idempotent_producer(&broker, topic, PARTITIONS, client.name());
    }
    let hw = high_watermarks(&broker, topic, PARTITIONS);
    assert_eq!(hw.values().sum::<i64>(), RECORDS as i64, "high watermarks after producing: {hw:?}");

    let mut first = client.consumer(
        &tools,
        "first",
        &bootstrap,
        topic,
        group,
        &["--max-records", &FIRST.to_string(), "--commit-on-stop"],
    );
    let run1 = first.wait_exit_success();
    assert_eq!(run1.records.len(), FIRST, "the first member processes exactly --max-records records");
    assert!(run1.closed, "the first member closed cleanly");
    let mut processed: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &run1.records {
        processed.insert(r.partition, r.offset + 1);
    }
    let committed = run1.commits.last().cloned().unwrap_or_else(|| first.fail("no commit reported"));
    assert_eq!(committed, processed, "the first member commits one past the last record it processed per partition");
    let expected: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, committed.get(&p).copied().unwrap_or(-1))).collect();

    broker.kill_hard();
    broker.restart();
    let mut wire = WireClient::connect(broker.kafka_addr());
    let stored: BTreeMap<i32, i64> =
        offset_fetch(&mut wire, group, topic, PARTITIONS).into_iter().map(|(p, (o, _))| (p, o)).collect();
    assert_eq!(stored, expected, "OffsetFetch after the broker was killed with SIGKILL and restarted");
    let via_client = client.committed(&tools, &bootstrap, topic, group, PARTITIONS);
    assert_eq!(via_client, expected, "the {} client's committed offsets after the broker restart", client.name());

    let mut second = client.consumer(&tools, "second", &bootstrap, topic, group, &["--commit-on-stop"]);
    second.wait_for(&format!("the other {} records", RECORDS - FIRST), CONSUME_TIMEOUT, |s| {
        (s.records.len() >= RECORDS - FIRST).then_some(())
    });
    let run2 = second.stop();
    let mut first_offsets: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &run2.records {
        first_offsets.entry(r.partition).or_insert(r.offset);
    }
    for (p, offset) in &first_offsets {
        let resume_at = committed.get(p).copied().unwrap_or(0);
        assert_eq!(*offset, resume_at, "the restarted member's first record of partition {p}");
    }
    let both: Vec<(&str, &[_])> = vec![("first run", &run1.records[..]), ("second run", &run2.records[..])];
    assert_each_consumed_once(&format!("{} first and second run", client.name()), &both, 0..RECORDS);
    assert_partition_and_key_order(&format!("{} runs", client.name()), &both);
    // The second member commits the partitions it read from; with the first
    // member's commits that is the end of every partition.
    let mut merged = committed.clone();
    merged.extend(run2.commits.last().cloned().unwrap_or_else(|| second.fail("no commit reported")));
    assert_eq!(merged, hw, "the two members' commits together reach the end of every partition");
    let stored: BTreeMap<i32, i64> =
        offset_fetch(&mut wire, group, topic, PARTITIONS).into_iter().map(|(p, (o, _))| (p, o)).collect();
    assert_eq!(stored, hw, "OffsetFetch after the second member left");
}

/// Two groups on one topic, one member each, running at the same time: each
/// group consumes every record exactly once, and each keeps its own
/// committed offsets.
pub fn two_groups_each_consume_every_record(client: Client) {
    const PARTITIONS: i32 = 4;
    const RECORDS: usize = 5_000;
    let tools = E2eTools::load();
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let topic = "events";
    create_topic_ok(&mut WireClient::connect(broker.kafka_addr()), topic, PARTITIONS, &[]);
    client.produce(&tools, &bootstrap, topic, 0, RECORDS, 500);

    let mut auditors = client.consumer(&tools, "auditors", &bootstrap, topic, "auditors", &["--commit-on-stop"]);
    let mut indexers = client.consumer(&tools, "indexers", &bootstrap, topic, "indexers", &["--commit-on-stop"]);
    ClientProcess::wait_all(&[&auditors, &indexers], "both groups to consume every record", CONSUME_TIMEOUT, |s| {
        s.iter().all(|s| s.records.len() >= RECORDS).then_some(())
    });
    let hw = high_watermarks(&broker, topic, PARTITIONS);
    for (group, member) in [("auditors", &mut auditors), ("indexers", &mut indexers)] {
        let state = member.stop();
        assert!(state.assignment_events > 0 && state.closed, "{group}: the member was assigned partitions and closed");
        assert_each_consumed_once(&format!("{} group {group}", client.name()), &[(group, &state.records)], 0..RECORDS);
        assert_eq!(state.commits.last(), Some(&hw), "{group}'s commit on leaving");
        let mut wire = WireClient::connect(broker.kafka_addr());
        let stored: BTreeMap<i32, i64> =
            offset_fetch(&mut wire, group, topic, PARTITIONS).into_iter().map(|(p, (o, _))| (p, o)).collect();
        assert_eq!(stored, hw, "{group}'s committed offsets");
    }
}
