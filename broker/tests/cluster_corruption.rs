//! A damaged byte in a replica's older (sealed) segment, on a 3-broker
//! cluster (RF 3, min.insync.replicas 2) under an idempotent acks=all
//! librdkafka producer: the finding, where such a replica rejoined
//! the ISR and, once leader, served a CRC error and then "offset out of
//! range" (17,706 records skipped).
//!
//! - A follower stopped, damaged on disk and started again finds the damage
//!   before it registers (counted, logged), cuts its log below it and
//!   re-fetches the rest from the leader; made leader afterwards, it serves
//!   every acknowledged record once, in order, and its files match the
//!   others'.
//! - A follower whose older segment rots while it runs (no restart) has it
//!   found by the background scrub, leaves the ISR, repairs from the leader,
//!   and, made leader afterwards, serves every acknowledged record.
//! - A single broker (no other copy) with a damaged older segment keeps the
//!   sound records after it: it serves them, refusing only the damaged batch.
//! - A leader whose older segment is damaged while it runs, on a topic with
//!   `verify.reads=always`, answers a fetch reaching the damage with
//!   KAFKA_STORAGE_ERROR (56), never the bytes; leadership moves to an
//!   in-sync replica, the old leader repairs its log from it, and every
//!   acknowledged record is read back. (With the default, `once`, the
//!   leader does not read again what it appended itself: the background
//!   scrub finds such damage, as the replica tests show.)

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::BrokerProcess;
use std::time::Duration;

use common::clients::{consume_to_end, create_topic as create_solo_topic, numbered_records, produce_all, producer};
use common::cluster::history;
use common::cluster::load::{ProduceLoad, producer_config};
use common::cluster::{
    BATCH_HEADER_LEN, Cluster, FAST_FAILOVER, create_topic, parse_batches, verify_history_and_replicas, wait_until,
};
use common::metrics::Scrape;
use common::wire::{WireClient, fetch};

const TOPIC: &str = "ledger";
/// Small segments, so a replica soon has several sealed ones.
const SEGMENT_BYTES: &str = "8192";
const TIMEOUT: Duration = Duration::from_secs(120);
const SEND_INTERVAL: Duration = Duration::from_millis(2);
/// Kafka's KAFKA_STORAGE_ERROR.
const KAFKA_STORAGE_ERROR: i16 = 56;

/// Starts three brokers and creates [`TOPIC`] with small segments and
/// `topic_configs` besides.
fn start_cluster(name: &str, topic_configs: &[(&str, &str)]) -> Cluster {
    let mut settings = FAST_FAILOVER.to_vec();
    settings.push("min.insync.replicas=2");
    let cluster = Cluster::start(3, name, &settings);
    let mut configs = vec![("segment.bytes", SEGMENT_BYTES), ("min.insync.replicas", "2")];
    configs.extend_from_slice(topic_configs);
    // Broker 0 is the preferred leader, then 1, then 2.
    create_topic(&cluster.bootstrap(), TOPIC, 1, 3, Some(&[&[0, 1, 2]]), &configs);
    cluster.wait_for_full_isr(TOPIC, 1, TIMEOUT);
    cluster
}

/// The `.log` files of a partition directory, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
    logs.sort();
    logs
}

/// Flips one byte inside the records of the middle batch of the second
/// segment (sealed: at least two more follow) in `dir`; returns the batch's
/// base offset and the offset after it.
fn damage_an_older_segment(dir: &Path) -> (i64, i64) {
    let logs = segments(dir);
    assert!(logs.len() >= 4, "expected several segments in {}: {logs:?}", dir.display());
    let path = logs[1].clone();
    let bytes = std::fs::read(&path).unwrap();
    let (batches, _) = parse_batches(&bytes);
    let middle = batches.len() / 2;
    let position: usize = batches[..middle].iter().map(|b| b.bytes.len()).sum();
    let at = (position + BATCH_HEADER_LEN + 3) as u64;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
    file.sync_all().unwrap();
    eprintln!(
        "[test] flipped the byte at {at} of {} (batch at offset {})",
        path.display(),
        batches[middle].base_offset
    );
    (batches[middle].base_offset, batches[middle].last_offset + 1)
}

/// Reads the topic from the leader while broker `down` is down: once the
/// metadata no longer lists it (a consumer told of a dead broker reports a
/// transport failure), from the other brokers only.
fn read_without(cluster: &Cluster, down: i32) -> Vec<history::Read> {
    wait_until(&format!("broker {down} leaves the metadata"), TIMEOUT, || {
        let m = cluster.metadata_excluding(&[TOPIC], &[down])?;
        m.brokers.iter().all(|b| b.node_id.0 != down).then_some(())
    });
    let bootstrap: Vec<String> =
        cluster.brokers().iter().filter(|b| b.id != down).map(|b| b.kafka_addr().to_string()).collect();
    let consumed = consume_to_end(&bootstrap.join(","), TOPIC, 1);
    consumed
        .values()
        .flatten()
        .map(|r| history::Read { partition: r.partition, offset: r.offset, value: r.value.clone().unwrap_or_default() })
        .collect()
}

fn corrupt_batches(cluster: &Cluster, id: i32) -> f64 {
    Scrape::fetch(cluster.broker(id).http_addr()).value_or_zero("strom_log_corrupt_batches_total", &[])
}

/// Produces until `broker`'s replica has at least four segments.
fn produce_segments(cluster: &Cluster, load: &ProduceLoad, broker: i32) {
    let dir = cluster.broker(broker).partition_dir(TOPIC, 0);
    wait_until(&format!("broker {broker} holds four segments"), Duration::from_secs(240), || {
        (segments(&dir).len() >= 4).then_some(())
    });
    load.wait_for_progress(1, 20, TIMEOUT);
}

#[test]
fn a_follower_repairs_a_damaged_older_segment_from_the_leader_and_serves_every_record_as_leader() {
    let mut cluster = start_cluster("corrupt-follower", &[]);
    let load = ProduceLoad::start(producer_config(&cluster.bootstrap()), TOPIC, 1, SEND_INTERVAL);
    produce_segments(&cluster, &load, 1);

    // Broker 1, a follower, stops; a byte of an older segment flips on disk.
    cluster.stop(1);
    let dir = cluster.broker(1).partition_dir(TOPIC, 0);
    let (damaged_offset, _) = damage_an_older_segment(&dir);
    load.wait_for_progress(1, 50, TIMEOUT);
    cluster.restart(1);

    // Found before it registered: counted, logged, the log cut below the damage.
    assert!(corrupt_batches(&cluster, 1) >= 1.0, "broker 1 counts the damaged batch");
    let log = cluster.broker(1).log();
    assert!(log.contains("damaged record batch on disk"), "broker 1 says what it found");
    // It catches up from the leader and rejoins the ISR.
    cluster.wait_for_full_isr(TOPIC, 1, Duration::from_secs(240));
    load.wait_for_progress(1, 50, TIMEOUT);
    let repaired = common::cluster::read_log(&dir);
    assert!(
        repaired.iter().any(|b| b.base_offset <= damaged_offset && damaged_offset <= b.last_offset),
        "the damaged batch was fetched again"
    );

    // Broker 1 leads once 0 is gone (the next in replica order, in sync).
    cluster.kill(0);
    let leader = cluster.wait_for_new_leader(TOPIC, 0, 0, TIMEOUT);
    assert_eq!(leader, 1, "the repaired replica leads");
    load.wait_for_progress(1, 50, TIMEOUT);
    let log = load.finish();

    // Read from broker 1 as leader: every acknowledged record once, in order.
    let reads = read_without(&cluster, 0);
    let summary = history::check(&log.sent, &log.acked, &reads)
        .unwrap_or_else(|v| cluster.fail(&format!("history from the repaired leader:\n  {}", v.join("\n  "))));
    assert_eq!(corrupt_batches(&cluster, 1), 1.0, "nothing else was found damaged");
    eprintln!(
        "repaired follower led: {} sent, {} acknowledged, {} read back from it",
        summary.sent, summary.acked, summary.consumed
    );

    // Broker 0 returns; all three hold the same bytes below the high watermark.
    cluster.restart(0);
    verify_history_and_replicas(&cluster, TOPIC, 1, &log);
}

#[test]
fn a_leader_refuses_a_damaged_batch_with_a_storage_error_and_hands_leadership_to_an_in_sync_replica() {
    let cluster = start_cluster("corrupt-leader", &[("verify.reads", "always")]);
    let load = ProduceLoad::start(producer_config(&cluster.bootstrap()), TOPIC, 1, SEND_INTERVAL);
    produce_segments(&cluster, &load, 0);
    cluster.wait_for_full_isr(TOPIC, 1, TIMEOUT);
    assert_eq!(cluster.partition(TOPIC, 0).expect("metadata").leader, 0);

    // A byte of the running leader's older segment flips.
    let (damaged_offset, _) = damage_an_older_segment(&cluster.broker(0).partition_dir(TOPIC, 0));
    let mut client = WireClient::connect(cluster.broker(0).kafka_addr());
    let answer = fetch(&mut client, TOPIC, 0, damaged_offset);
    assert_eq!(answer.error_code, KAFKA_STORAGE_ERROR, "the damaged batch is refused, not served");
    assert!(answer.records.as_ref().is_none_or(|r| r.is_empty()), "no bytes handed out");
    // Below the damage, records are still served.
    let below = fetch(&mut client, TOPIC, 0, 0);
    assert_eq!(below.error_code, 0);
    assert!(corrupt_batches(&cluster, 0) >= 1.0, "counted");

    // Leadership moves to an in-sync replica; the producer carries on.
    let leader = cluster.wait_for_new_leader(TOPIC, 0, 0, TIMEOUT);
    assert_eq!(leader, 1, "the first in-sync replica in order leads");
    load.wait_for_progress(1, 50, TIMEOUT);
    let log = cluster.broker(0).log();
    assert!(log.contains("damaged batch found while serving"), "broker 0 says what it found");
    assert!(log.contains("truncated the damaged log"), "broker 0 repairs its log");

    // Broker 0 rejoins with a repaired log; everything acknowledged is read
    // back, and all replicas hold the same bytes.
    let log = load.finish();
    let summary = verify_history_and_replicas(&cluster, TOPIC, 1, &log);
    eprintln!(
        "damaged leader stepped aside: {} sent, {} acknowledged, {} read back",
        summary.sent, summary.acked, summary.consumed
    );
}

#[test]
fn the_background_scrub_finds_a_running_followers_damaged_segment_before_it_can_lead() {
    let mut cluster = start_cluster("corrupt-scrub", &[]);
    let load = ProduceLoad::start(producer_config(&cluster.bootstrap()), TOPIC, 1, SEND_INTERVAL);
    produce_segments(&cluster, &load, 1);
    cluster.wait_for_full_isr(TOPIC, 1, TIMEOUT);

    // A byte of running follower 1's older segment flips; nothing restarts.
    let dir = cluster.broker(1).partition_dir(TOPIC, 0);
    damage_an_older_segment(&dir);
    wait_until("broker 1's scrub finds the damage", TIMEOUT, || (corrupt_batches(&cluster, 1) >= 1.0).then_some(()));
    assert!(cluster.broker(1).log().contains("background scrub"), "broker 1 says the scrub found it");
    cluster.wait_for_full_isr(TOPIC, 1, Duration::from_secs(240));
    load.wait_for_progress(1, 50, TIMEOUT);

    // Made leader, it serves every acknowledged record; all replicas agree.
    cluster.kill(0);
    let leader = cluster.wait_for_new_leader(TOPIC, 0, 0, TIMEOUT);
    assert_eq!(leader, 1, "the repaired replica leads");
    load.wait_for_progress(1, 50, TIMEOUT);
    let log = load.finish();
    let reads = read_without(&cluster, 0);
    history::check(&log.sent, &log.acked, &reads)
        .unwrap_or_else(|v| cluster.fail(&format!("history from the scrubbed leader:\n  {}", v.join("\n  "))));
    cluster.restart(0);
    let summary = verify_history_and_replicas(&cluster, TOPIC, 1, &log);
    eprintln!(
        "scrubbed follower led: {} sent, {} acknowledged, {} read back",
        summary.sent, summary.acked, summary.consumed
    );
}

#[test]
fn a_single_replica_keeps_the_records_after_a_damaged_batch_and_refuses_only_that_batch() {
    let mut broker = BrokerProcess::start();
    let topic = "solo";
    create_solo_topic(&broker.bootstrap(), topic, 1, &[("segment.bytes", SEGMENT_BYTES)]);
    let records = numbered_records(0, 2_000, 1_700_000_000_000);
    produce_all(&producer(&broker.bootstrap(), &[("batch.num.messages", "20")]), topic, &records);
    broker.stop_gracefully();
    let (damaged, after) = damage_an_older_segment(&broker.partition_dir(topic, 0));
    broker.restart();
    assert!(broker.log().contains("damaged record batch on disk"), "found at start");
    let found = Scrape::fetch(broker.http_addr()).value_or_zero("strom_log_corrupt_batches_total", &[]);
    assert!(found >= 1.0, "counted");

    let mut client = WireClient::connect(broker.kafka_addr());
    let at = fetch(&mut client, topic, 0, damaged);
    assert_eq!(
        at.error_code,
        KAFKA_STORAGE_ERROR,
        "the damaged batch at {damaged} is refused: {at:?}\n{}",
        broker.log()
    );
    assert!(at.records.as_ref().is_none_or(|r| r.is_empty()), "no bytes handed out");
    for (from, what) in [(0, "before the damage"), (after, "after the damage")] {
        let answer = fetch(&mut client, topic, 0, from);
        assert_eq!(answer.error_code, 0, "records {what} are served");
        assert!(answer.records.as_ref().is_some_and(|r| !r.is_empty()), "records {what} are kept");
    }
    assert_eq!(common::wire::latest_offset(&mut client, topic, 0), 2_000, "nothing was cut");
}
