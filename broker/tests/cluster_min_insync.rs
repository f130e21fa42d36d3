//! `min.insync.replicas` and clean leader election on a 3-broker cluster.
//!
//! With two of three brokers down, an acks=all produce to a partition whose
//! ISR shrank to one fails with NOT_ENOUGH_REPLICAS while acks=1 succeeds;
//! a partition whose only ISR member is down stays offline even when another
//! of its replicas comes back (unclean election is off by default), and
//! comes back online with its ISR member.
//!
//! Combined mode: every broker is a controller voter, so the two brokers are
//! not simply killed — that would lose the Raft majority before the ISRs
//! could shrink. One is killed and waited out until fenced; the other stops
//! with SIGTERM (controlled shutdown) while the quorum still has a majority.
//! The active controller is the broker left running, so its image holds
//! every committed change.

mod common;

use std::time::{Duration, Instant};

use futures::executor::block_on;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use common::cluster::{Cluster, FAST_FAILOVER, PartitionView, create_topic, wait_until};

const GUARDED: &str = "guarded";
const PAIR: &str = "pair";
const TIMEOUT: Duration = Duration::from_secs(120);

/// One record with the given acks and no retries; the broker's error code on failure.
fn produce_once(bootstrap: &str, topic: &str, acks: &str) -> Result<(i32, i64), RDKafkaErrorCode> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("create an rdkafka producer");
    let delivery = block_on(producer.send(
        FutureRecord::<str, str>::to(topic).partition(0).payload("probe"),
        Timeout::After(Duration::from_secs(30)),
    ));
    match delivery {
        Ok(d) => Ok((d.partition, d.offset)),
        Err((e, _)) => Err(e.rdkafka_error_code().unwrap_or_else(|| panic!("produce to {topic} failed: {e}"))),
    }
}

fn view(cluster: &Cluster, topic: &str) -> Option<PartitionView> {
    cluster.partition(topic, 0)
}

#[test]
fn acks_all_needs_min_insync_replicas_and_offline_partitions_stay_offline() {
    let mut cluster = Cluster::start(3, "min-insync", FAST_FAILOVER);
    let bootstrap = cluster.bootstrap();
    let controller = cluster.wait_for_controller(&[], TIMEOUT);
    let others: Vec<i32> = (0..3).filter(|b| *b != controller).collect();
    let (killed, stopped) = (others[0], others[1]);
    create_topic(&bootstrap, GUARDED, 1, 3, None, &[("min.insync.replicas", "2")]);
    // The pair's ISR member of last resort is `stopped`; `killed` drops out of the ISR first.
    create_topic(&bootstrap, PAIR, 1, 2, Some(&[&[killed, stopped]]), &[]);
    cluster.wait_for_full_isr(GUARDED, 1, TIMEOUT);
    cluster.wait_for_full_isr(PAIR, 1, TIMEOUT);
    assert!(produce_once(&bootstrap, GUARDED, "all").is_ok(), "acks=all with the full ISR");

    cluster.kill(killed);
    wait_until(&format!("broker {killed} to be fenced and out of every ISR"), TIMEOUT, || {
        let (g, p) = (view(&cluster, GUARDED)?, view(&cluster, PAIR)?);
        (!g.isr.contains(&killed) && p.isr == [stopped] && p.leader == stopped).then_some(())
    });
    assert_eq!(
        cluster.wait_for_controller(&[], TIMEOUT),
        controller,
        "killing a follower voter must not move the active controller"
    );
    cluster.stop(stopped);
    let guarded = wait_until(&format!("{GUARDED}-0 to shrink to the ISR [{controller}]"), TIMEOUT, || {
        view(&cluster, GUARDED).filter(|g| g.isr == [controller] && g.leader == controller)
    });
    let pair = wait_until(&format!("{PAIR}-0 to go offline with ISR [{stopped}]"), TIMEOUT, || {
        view(&cluster, PAIR).filter(|p| p.leader < 0)
    });
    assert_eq!(pair.isr, vec![stopped], "the last ISR member stays in the ISR, to lead again when it returns");
    eprintln!("with brokers {killed} and {stopped} down: {GUARDED}-0 {guarded:?}, {PAIR}-0 {pair:?}");

    assert_eq!(
        produce_once(&bootstrap, GUARDED, "all"),
        Err(RDKafkaErrorCode::NotEnoughReplicas),
        "acks=all with ISR [{controller}] below min.insync.replicas=2"
    );
    let (_, offset) = produce_once(&bootstrap, GUARDED, "1").expect("acks=1 needs only the leader");
    assert!(offset >= 1, "acks=1 record written after the first one, at {offset}");

    // `killed` returns: a replica of the pair, but not in its ISR, so it must not lead it.
    cluster.restart(killed);
    wait_until(&format!("broker {killed} to rejoin the ISR of {GUARDED}-0"), TIMEOUT, || {
        view(&cluster, GUARDED).filter(|g| g.isr.contains(&killed))
    });
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(10) {
        if let Some(p) = view(&cluster, PAIR) {
            assert!(
                p.leader < 0,
                "{PAIR}-0 got leader {} although its only ISR member {stopped} is down (unclean election is off)",
                p.leader
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(produce_once(&bootstrap, GUARDED, "all").is_ok(), "acks=all again with ISR of 2");

    cluster.restart(stopped);
    let pair = wait_until(&format!("{PAIR}-0 to come back with leader {stopped}"), TIMEOUT, || {
        view(&cluster, PAIR).filter(|p| p.leader == stopped)
    });
    eprintln!("{PAIR}-0 back online: {pair:?}");
}
