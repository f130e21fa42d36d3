//! A frozen leader (SIGSTOP: a long GC pause, a hung VM) under load: the
//! controller fences it once its heartbeats stop and elects a new leader from
//! the ISR; after SIGCONT the old leader learns it was replaced, truncates
//! whatever it appended but never committed, rejoins as a follower, and no
//! acknowledged record is lost.
//!
//! The frozen broker is the active controller too, the harder case: the
//! quorum elects another controller while the other brokers' heartbeats may
//! still be waiting on the frozen one, and the new controller must fence
//! only the frozen broker, never the live ones.

mod common;

use std::time::{Duration, Instant};

use common::cluster::load::{ProduceLoad, producer_config};
use common::cluster::{Cluster, FAST_FAILOVER, batches_dropped, create_topic, read_log, verify_history_and_replicas};

const TOPIC: &str = "events";
const PARTITIONS: i32 = 3;
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(120);
const REJOIN_TIMEOUT: Duration = Duration::from_secs(240);

#[test]
fn acked_records_survive_a_paused_leader() {
    let mut settings = FAST_FAILOVER.to_vec();
    settings.push("min.insync.replicas=2");
    let mut cluster = Cluster::start(3, "pause", &settings);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, PARTITIONS, 3, None, &[]);
    let before = cluster.wait_for_full_isr(TOPIC, PARTITIONS, Duration::from_secs(60));

    let load = ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, Duration::from_millis(2));
    load.wait_for_progress(PARTITIONS, 200, FAILOVER_TIMEOUT);

    let leader = cluster.wait_for_controller(&[], FAILOVER_TIMEOUT);
    let Some(partition) = before.iter().position(|view| view.leader == leader) else {
        cluster.fail(&format!("the active controller {leader} leads no partition of {TOPIC}: {before:?}"))
    };
    let partition = partition as i32;
    let paused_at = Instant::now();
    cluster.pause(leader);
    let new_leader = cluster.wait_for_new_leader(TOPIC, partition, leader, FAILOVER_TIMEOUT);
    let elected_after = paused_at.elapsed();
    load.wait_for_progress(PARTITIONS, 50, FAILOVER_TIMEOUT);
    let serving_after = paused_at.elapsed();
    // Keep it frozen a while longer, with writes flowing past it.
    load.wait_for_progress(PARTITIONS, 200, FAILOVER_TIMEOUT);
    // What the old leader holds before it learns it was replaced.
    let old_log = read_log(&cluster.broker(leader).partition_dir(TOPIC, partition));
    cluster.resume(leader);
    let after = cluster.wait_for_full_isr(TOPIC, PARTITIONS, REJOIN_TIMEOUT);
    let i = partition as usize;
    assert!(
        after[i].leader_epoch > before[i].leader_epoch,
        "partition {partition} changed leaders, so its leader epoch must have grown: {:?} -> {:?}",
        before[i],
        after[i]
    );
    // Only the frozen broker lost its session: a live broker that the new
    // controller fenced would have been logged so.
    for b in cluster.brokers() {
        let fenced_live = b
            .log()
            .lines()
            .any(|line| line.contains("broker session expired") && !line.contains(&format!("broker_id={leader} ")));
        assert!(!fenced_live, "broker {}'s log shows a live broker fenced:\n{}", b.id, cluster.log_tails());
    }
    load.wait_for_progress(PARTITIONS, 100, FAILOVER_TIMEOUT);

    let log = load.finish();
    let summary = verify_history_and_replicas(&cluster, TOPIC, PARTITIONS, &log);
    let truncated = batches_dropped(&old_log, &read_log(&cluster.broker(leader).partition_dir(TOPIC, partition)));
    eprintln!(
        "the paused leader had appended {truncated} batches of partition {partition} that it truncated when it rejoined"
    );
    eprintln!(
        "pause: broker {leader} (active controller, leader of partition {partition}) frozen; broker {new_leader} led after {elected_after:.1?}, \
         writes acknowledged again after {serving_after:.1?}; {} sent, {} acknowledged, {} failed, {} read back",
        summary.sent,
        summary.acked,
        log.failed.len(),
        summary.consumed
    );
}
