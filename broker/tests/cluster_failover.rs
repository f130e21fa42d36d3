//! Failover under load on a 3-broker cluster (every broker a controller
//! voter), with a real idempotent acks=all librdkafka producer running
//! throughout: the leader of a partition, then the active controller, then a
//! follower are killed with SIGKILL and restarted. Afterwards every replica
//! is back in the ISR, every acknowledged record is read back exactly once
//! and in order, nothing is read that was never sent, and all replicas hold
//! the same bytes below the high watermark.
//!
//! The history checker itself is tested here on crafted histories.

mod common;

use std::time::{Duration, Instant};

use common::cluster::history::{self, Ack, Read, Sent};
use common::cluster::load::{ProduceLoad, producer_config};
use common::cluster::{Cluster, FAST_FAILOVER, create_topic, verify_history_and_replicas};

const TOPIC: &str = "payments";
const PARTITIONS: i32 = 3;
/// Upper bound for a failover: fencing (6 s) plus election, client metadata refresh and retries.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(120);
/// Upper bound for a restarted broker to catch up and rejoin every ISR.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(240);
/// Pause between two sends of the producer under test.
const SEND_INTERVAL: Duration = Duration::from_millis(2);

/// An outage: what failed, when a new leader (or controller) was known, when writes flowed again.
struct Outage {
    what: String,
    elected_after: Option<Duration>,
    serving_after: Duration,
}

#[test]
fn acked_records_survive_leader_controller_and_follower_kills() {
    let mut settings = FAST_FAILOVER.to_vec();
    settings.push("min.insync.replicas=2");
    let mut cluster = Cluster::start(3, "failover", &settings);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, PARTITIONS, 3, None, &[("min.insync.replicas", "2")]);
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, Duration::from_secs(60));

    let started = Instant::now();
    let load = ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, SEND_INTERVAL);
    load.wait_for_progress(PARTITIONS, 200, FAILOVER_TIMEOUT);
    let mut outages = Vec::new();

    // 1. The leader of partition 0.
    let leader = cluster.partition(TOPIC, 0).expect("metadata of partition 0").leader;
    let acked_before = load.acked_on(0);
    let killed_at = Instant::now();
    cluster.kill(leader);
    let new_leader = cluster.wait_for_new_leader(TOPIC, 0, leader, FAILOVER_TIMEOUT);
    let elected_after = killed_at.elapsed();
    load.wait_for_acks_on(0, acked_before + 50, FAILOVER_TIMEOUT);
    outages.push(Outage {
        what: format!("leader of partition 0 (broker {leader}) killed; broker {new_leader} took over"),
        elected_after: Some(elected_after),
        serving_after: killed_at.elapsed(),
    });
    cluster.restart(leader);
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, REJOIN_TIMEOUT);
    load.wait_for_progress(PARTITIONS, 50, FAILOVER_TIMEOUT);

    // 2. The active controller (also a broker leading partitions).
    let controller = cluster.wait_for_controller(&[], FAILOVER_TIMEOUT);
    let killed_at = Instant::now();
    cluster.kill(controller);
    let new_controller = cluster.wait_for_controller(&[controller], FAILOVER_TIMEOUT);
    let elected_after = killed_at.elapsed();
    load.wait_for_progress(PARTITIONS, 50, FAILOVER_TIMEOUT);
    outages.push(Outage {
        what: format!("active controller (broker {controller}) killed; broker {new_controller} took over"),
        elected_after: Some(elected_after),
        serving_after: killed_at.elapsed(),
    });
    cluster.restart(controller);
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, REJOIN_TIMEOUT);
    load.wait_for_progress(PARTITIONS, 50, FAILOVER_TIMEOUT);

    // 3. A follower of partition 0.
    let view = cluster.partition(TOPIC, 0).expect("metadata of partition 0");
    let follower = *view.replicas.iter().find(|r| **r != view.leader).expect("partition 0 has a follower");
    let killed_at = Instant::now();
    cluster.kill(follower);
    load.wait_for_progress(PARTITIONS, 50, FAILOVER_TIMEOUT);
    outages.push(Outage {
        what: format!("follower of partition 0 (broker {follower}) killed"),
        elected_after: None,
        serving_after: killed_at.elapsed(),
    });
    cluster.restart(follower);
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, REJOIN_TIMEOUT);
    load.wait_for_progress(PARTITIONS, 100, FAILOVER_TIMEOUT);

    let log = load.finish();
    let produced_for = started.elapsed();
    let summary = verify_history_and_replicas(&cluster, TOPIC, PARTITIONS, &log);
    eprintln!(
        "failover: {} sent, {} acknowledged, {} failed (not re-sent; {} of the unacknowledged were written anyway), \
         {} read back, over {produced_for:.1?}",
        summary.sent,
        summary.acked,
        log.failed.len(),
        summary.unacked_present,
        summary.consumed
    );
    for o in &outages {
        let elected =
            o.elected_after.map_or("no election needed".to_string(), |d| format!("successor known after {d:.1?}"));
        eprintln!(
            "  {}: {elected}, writes to every partition acknowledged again after {:.1?}",
            o.what, o.serving_after
        );
    }
    if let Some(f) = log.failed.first() {
        eprintln!("  first failure: send #{} to partition {}: {}", f.seq, f.partition, f.error);
    }
}

fn sent(seq: u64, partition: i32) -> Sent {
    Sent { seq, partition, value: format!("v{seq}").into_bytes() }
}

fn read(partition: i32, offset: i64, seq: u64) -> Read {
    Read { partition, offset, value: format!("v{seq}").into_bytes() }
}

fn ack(seq: u64, partition: i32, offset: i64) -> Ack {
    Ack { seq, partition, offset }
}

/// Sends 0..6 alternating over partitions 0 and 1; all but #5 acknowledged.
fn good_history() -> (Vec<Sent>, Vec<Ack>, Vec<Read>) {
    let sent: Vec<Sent> = (0..6).map(|s| sent(s, (s % 2) as i32)).collect();
    let acked = vec![ack(0, 0, 0), ack(1, 1, 0), ack(2, 0, 1), ack(3, 1, 1), ack(4, 0, 2)];
    let reads = vec![read(0, 0, 0), read(0, 1, 2), read(0, 2, 4), read(1, 0, 1), read(1, 1, 3)];
    (sent, acked, reads)
}

fn violations(sent: &[Sent], acked: &[Ack], reads: &[Read]) -> String {
    history::check(sent, acked, reads).expect_err("the history must be refused").join("\n")
}

#[test]
fn history_checker_accepts_a_correct_history() {
    let (sent, acked, mut reads) = good_history();
    let summary = history::check(&sent, &acked, &reads).expect("a correct history");
    assert_eq!((summary.sent, summary.acked, summary.consumed, summary.unacked_present), (6, 5, 5, 0));
    // An unacknowledged send may be present (its acknowledgement was lost), once.
    reads.push(read(1, 2, 5));
    assert_eq!(history::check(&sent, &acked, &reads).expect("unacked but present").unacked_present, 1);
    // An acknowledgement without a known offset is checked for presence and order only.
    let mut acked = acked;
    acked[2].offset = -1;
    history::check(&sent, &acked, &reads).expect("offset -1 acknowledgement");
}

#[test]
fn history_checker_finds_a_lost_acknowledged_record() {
    let (sent, acked, mut reads) = good_history();
    reads.retain(|r| r.value != b"v2");
    reads.iter_mut().filter(|r| r.partition == 0 && r.offset == 2).for_each(|r| r.offset = 1);
    let v = violations(&sent, &acked, &reads);
    assert!(v.contains("LOST: send #2"), "{v}");
}

#[test]
fn history_checker_finds_duplicates() {
    let (sent, acked, mut reads) = good_history();
    reads.push(read(0, 3, 4));
    let v = violations(&sent, &acked, &reads);
    assert!(v.contains("\"v4\" was read twice"), "{v}");
}

#[test]
fn history_checker_finds_reordering_and_moved_offsets() {
    let (sent, acked, _) = good_history();
    // Partition 0 holds #4 before #2: send order broken, and offsets differ from the acknowledgements.
    let reads = vec![read(0, 0, 0), read(0, 1, 4), read(0, 2, 2), read(1, 0, 1), read(1, 1, 3)];
    let v = violations(&sent, &acked, &reads);
    assert!(v.contains("the later send #4 is at 1"), "{v}");
    assert!(
        v.contains("send #2 (\"v2\") was acknowledged at partition 0 offset 1 but read at partition 0 offset 2"),
        "{v}"
    );
}

#[test]
fn history_checker_finds_invented_and_misplaced_records() {
    let (sent, acked, mut reads) = good_history();
    reads.push(Read { partition: 1, offset: 2, value: b"never-sent".to_vec() });
    reads.push(read(1, 3, 4).clone());
    reads.retain(|r| !(r.partition == 0 && r.offset == 2));
    let v = violations(&sent, &acked, &reads);
    assert!(v.contains("\"never-sent\", which was never sent"), "{v}");
    assert!(v.contains("send #4 (\"v4\") went to partition 0 but was read from partition 1"), "{v}");
}

#[test]
fn history_checker_finds_offsets_going_backwards() {
    let (sent, acked, mut reads) = good_history();
    reads.swap(0, 1);
    let v = violations(&sent, &acked, &reads);
    assert!(v.contains("partition 0 was read at offset 0 after offset 1"), "{v}");
}
