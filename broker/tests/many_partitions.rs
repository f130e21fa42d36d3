//! A broker hosting far more partitions than it may keep files open for.
//!
//! Proves that a single broker started under a 4,096 open-file limit (soft
//! and hard, so it cannot raise it):
//! - creates 20,000 partitions (20 topics × 1,000) with the default
//!   `max.broker.partitions`, which no longer derives from the open-file limit;
//! - takes acks=all records on every partition — three batches each, and in
//!   two topics a segment per batch (tiny `segment.bytes`), so about 26,000
//!   segments, more than twelve times the log's open-file budget (fewer
//!   multi-segment topics than that only cost test time: the budget is
//!   exceeded either way);
//! - serves a reader every acknowledged record, exactly, at its offset;
//! - after SIGTERM and a restart, and again after `kill -9` and a restart,
//!   serves every acknowledged record again;
//! - keeps an ordinary librdkafka producer and consumer working throughout;
//! - never has 4,096 files open (sampled from /proc/<pid>/fd all along), and
//!   reports its log files open and the budget on /metrics.
//!
//! It also prints the resident memory one idle partition costs, the figure
//! `max.broker.partitions`'s default is derived from.
//!
//! Run time (debug build, 2 shared cores): 9–13 minutes, almost all of it
//! fsyncs outside the log's file handling — every partition that becomes
//! leader fsyncs its leader-epoch checkpoint (at creation, at each start,
//! and again during a single node's controlled shutdown), shutdown fsyncs a
//! high-watermark checkpoint and producer snapshot per partition, and the
//! temp dir of ~130,000 files is removed at the end. Opening the 20,000 logs
//! themselves takes 8–10 s.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::clients::{consume_to_end, create_topic, numbered_records, produce_all, producer};
use common::metrics::Scrape;
use common::wire::{FETCH_VERSION, PRODUCE_VERSION, WireClient, create_topic_ok, record_batch, topic_name};
use common::{BrokerProcess, wait_for};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use kafka_protocol::records::RecordBatchDecoder;

const OPEN_FILE_LIMIT: u64 = 4096;
const TOPICS: usize = 20;
const PARTITIONS: i32 = 1000;
const ROUNDS: usize = 3;
const RECORDS_PER_BATCH: usize = 3;
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;
/// How long a phase may retry partitions that are not served yet (leaders
/// being elected after a restart).
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Acknowledged records: (topic index, partition) → (offset, value), in offset order.
type Acked = BTreeMap<(usize, i32), Vec<(i64, Bytes)>>;

fn topic(t: usize) -> String {
    format!("many-{t:02}")
}

/// Counts the broker's open file descriptors in the background and keeps the largest count seen.
struct FdSampler {
    pid: Arc<AtomicU32>,
    max: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FdSampler {
    fn start(pid: u32) -> FdSampler {
        let pid = Arc::new(AtomicU32::new(pid));
        let max = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pid, max, stop) = (pid.clone(), max.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(n) = open_fds(pid.load(Ordering::Relaxed)) {
                        max.fetch_max(n, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        FdSampler { pid, max, stop, thread: Some(thread) }
    }

    fn follow(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for FdSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Partition errors a restarted broker answers while it takes leadership back.
fn retriable(code: i16) -> bool {
    // UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT
    matches!(code, 3 | 5 | 6 | 7)
}

/// Produces batch `round` to every partition of every topic (one request per
/// topic, acks=all), retrying partitions not served yet; records what was acknowledged.
fn produce_round(client: &mut WireClient, round: usize, acked: &mut Acked) {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    for t in 0..TOPICS {
        let mut pending: Vec<i32> = (0..PARTITIONS).collect();
        while !pending.is_empty() {
            assert!(Instant::now() < deadline, "{}: partitions {pending:?} never took round {round}", topic(t));
            let values = |p: i32| -> Vec<Vec<u8>> {
                (0..RECORDS_PER_BATCH).map(|i| format!("{}/{p}/{round}/{i}", topic(t)).into_bytes()).collect()
            };
            let partition_data = pending
                .iter()
                .map(|&p| {
                    PartitionProduceData::default()
                        .with_index(p)
                        .with_records(Some(record_batch(&values(p), BASE_TIMESTAMP + round as i64)))
                })
                .collect();
            let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
                TopicProduceData::default().with_name(topic_name(&topic(t))).with_partition_data(partition_data),
            ]);
            let response = client.send(&request, PRODUCE_VERSION);
            let mut retry = Vec::new();
            for p in response.responses.iter().flat_map(|r| r.partition_responses.iter()) {
                if retriable(p.error_code) {
                    retry.push(p.index);
                    continue;
                }
                assert_eq!(p.error_code, 0, "produce {}-{} round {round}", topic(t), p.index);
                let records = acked.entry((t, p.index)).or_default();
                for (i, value) in values(p.index).into_iter().enumerate() {
                    records.push((p.base_offset + i as i64, Bytes::from(value)));
                }
            }
            if !retry.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
            pending = retry;
        }
    }
}

/// Reads every partition of every topic from offset 0 up to its last
/// acknowledged record and asserts the reader gets exactly the acknowledged
/// records, at their offsets.
fn read_back_everything(client: &mut WireClient, acked: &Acked, what: &str) {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let mut read: Acked = BTreeMap::new();
    for t in 0..TOPICS {
        let end = |p: i32| acked.get(&(t, p)).and_then(|r| r.last()).map_or(0, |(o, _)| o + 1);
        let mut next: BTreeMap<i32, i64> = (0..PARTITIONS).filter(|&p| end(p) > 0).map(|p| (p, 0)).collect();
        while !next.is_empty() {
            assert!(Instant::now() < deadline, "{what}: {} partitions of {} not read to the end", next.len(), topic(t));
            let partitions = next
                .iter()
                .map(|(&p, &offset)| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(64 * 1024)
                })
                .collect();
            let request =
                FetchRequest::default().with_max_wait_ms(0).with_min_bytes(0).with_max_bytes(64 << 20).with_topics(
                    vec![FetchTopic::default().with_topic(topic_name(&topic(t))).with_partitions(partitions)],
                );
            let response = client.send(&request, FETCH_VERSION);
            assert_eq!(response.error_code, 0, "{what}: Fetch of {}", topic(t));
            let mut waiting = false;
            for data in response.responses.into_iter().flat_map(|r| r.partitions) {
                let p = data.partition_index;
                if retriable(data.error_code) {
                    waiting = true;
                    continue;
                }
                assert_eq!(data.error_code, 0, "{what}: Fetch {}-{p}", topic(t));
                let mut bytes = data.records.unwrap_or_default();
                let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decode fetched batches");
                let Some(offset) = next.get_mut(&p) else { continue };
                for record in sets.iter().flat_map(|s| s.records.iter()) {
                    if record.offset >= *offset {
                        read.entry((t, p)).or_default().push((record.offset, record.value.clone().unwrap_or_default()));
                        *offset = record.offset + 1;
                    }
                }
                if *offset >= end(p) {
                    next.remove(&p);
                }
            }
            if waiting {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    assert_eq!(read.len(), acked.len(), "{what}: partitions read");
    for (key, records) in acked {
        assert_eq!(read.get(key), Some(records), "{what}: {}-{} served other records", topic(key.0), key.1);
    }
}

/// An ordinary librdkafka producer and reader on their own topic: `count`
/// more records go in and everything produced so far reads back.
fn ordinary_clients_work(broker: &BrokerProcess, produced: &mut usize, count: usize, what: &str) {
    let records = numbered_records(*produced, count, BASE_TIMESTAMP);
    let producer = producer(&broker.bootstrap(), &[]);
    let delivered = produce_all(&producer, "ordinary", &records);
    assert!(delivered.iter().all(|d| d.partition == 0), "{what}: one partition");
    *produced += count;
    let read = consume_to_end(&broker.bootstrap(), "ordinary", 1);
    let values: Vec<Vec<u8>> = read[&0].iter().map(|r| r.value.clone().unwrap_or_default()).collect();
    let expected: Vec<Vec<u8>> = numbered_records(0, *produced, BASE_TIMESTAMP).into_iter().map(|r| r.value).collect();
    assert_eq!(values, expected, "{what}: the ordinary consumer reads every record in order");
}

/// The log's open files and budget from /metrics.
fn log_file_gauges(broker: &BrokerProcess) -> (f64, f64) {
    let scrape = Scrape::fetch(broker.http_addr());
    let open = scrape.value("strom_log_open_files", &[]).expect("strom_log_open_files on /metrics");
    let budget = scrape.value("strom_log_open_files_budget", &[]).expect("strom_log_open_files_budget on /metrics");
    (open, budget)
}

fn assert_within_budget(broker: &BrokerProcess, sampler: &FdSampler, what: &str) {
    let now = open_fds(broker.pid()).expect("count /proc/<pid>/fd");
    let (open, budget) = log_file_gauges(broker);
    eprintln!("{what}: {now} fds open (most seen {}), log files open {open} of {budget}", sampler.max());
    assert_eq!(budget, (OPEN_FILE_LIMIT / 2) as f64, "{what}: the log's budget is half the open-file limit");
    assert!(open <= budget, "{what}: {open} log files open, over the budget of {budget}");
    assert!(sampler.max() < OPEN_FILE_LIMIT as usize, "{what}: {} fds open at once", sampler.max());
}

#[test]
fn twenty_thousand_partitions_under_a_4096_file_limit_serve_and_restart() {
    let started = Instant::now();
    let mut broker = BrokerProcess::start_with_open_file_limit(&[], Some(OPEN_FILE_LIMIT));
    // Stopping re-elects and checkpoints every partition, and starting
    // recovers them all: longer than the harness's defaults in a debug build.
    broker.set_timeouts(Duration::from_secs(240), Duration::from_secs(240));
    let sampler = FdSampler::start(broker.pid());
    create_topic(&broker.bootstrap(), "ordinary", 1, &[]);
    let mut ordinary = 0;
    ordinary_clients_work(&broker, &mut ordinary, 20, "before the partitions");
    let rss_before = common::resident_bytes(broker.pid());

    let mut client = WireClient::connect(broker.kafka_addr());
    for t in 0..TOPICS {
        // Two topics get a segment per batch: many more segments than files the log may keep open.
        let configs: &[(&str, &str)] = if t < 2 { &[("segment.bytes", "100")] } else { &[] };
        create_topic_ok(&mut client, &topic(t), PARTITIONS, configs);
    }
    let partitions = TOPICS * PARTITIONS as usize;
    wait_for("every partition directory", Duration::from_secs(120), || {
        let dirs = std::fs::read_dir(broker.data_dir()).ok()?.filter_map(Result::ok);
        (dirs.filter(|e| e.file_name().to_string_lossy().starts_with("many-")).count() >= partitions).then_some(())
    });
    let rss_after = common::resident_bytes(broker.pid());
    eprintln!(
        "created {partitions} partitions after {:?}: resident {} MiB -> {} MiB, {} bytes per idle partition",
        started.elapsed(),
        rss_before >> 20,
        rss_after >> 20,
        rss_after.saturating_sub(rss_before) / partitions as u64
    );
    assert_within_budget(&broker, &sampler, "after creating the partitions");

    let mut acked = Acked::new();
    for round in 0..ROUNDS {
        produce_round(&mut client, round, &mut acked);
    }
    eprintln!(
        "produced {} batches after {:?}: resident {} MiB",
        partitions * ROUNDS,
        started.elapsed(),
        common::resident_bytes(broker.pid()) >> 20
    );
    let segments: usize = (0..PARTITIONS).map(|p| broker.segment_files(&topic(0), p).len()).sum();
    assert_eq!(segments, PARTITIONS as usize * ROUNDS, "a segment per batch in the small-segment topics");
    ordinary_clients_work(&broker, &mut ordinary, 20, "after producing");
    read_back_everything(&mut client, &acked, "before any restart");
    eprintln!("read everything back after {:?}", started.elapsed());
    assert_within_budget(&broker, &sampler, "after reading everything");

    let stopping = Instant::now();
    broker.stop_gracefully();
    eprintln!("stopped by SIGTERM in {:?}", stopping.elapsed());
    let starting = Instant::now();
    broker.restart();
    eprintln!("ready again in {:?}", starting.elapsed());
    sampler.follow(broker.pid());
    eprintln!("restarted after SIGTERM at {:?}", started.elapsed());
    let mut client = WireClient::connect(broker.kafka_addr());
    read_back_everything(&mut client, &acked, "after SIGTERM and a restart");
    ordinary_clients_work(&broker, &mut ordinary, 20, "after SIGTERM and a restart");
    // One more round, so the kill -9 below finds freshly written tails.
    produce_round(&mut client, ROUNDS, &mut acked);
    assert_within_budget(&broker, &sampler, "after a restart and more writes");

    broker.kill_hard();
    let starting = Instant::now();
    broker.restart();
    eprintln!("ready again after kill -9 in {:?}", starting.elapsed());
    sampler.follow(broker.pid());
    eprintln!("restarted after kill -9 at {:?}", started.elapsed());
    let mut client = WireClient::connect(broker.kafka_addr());
    read_back_everything(&mut client, &acked, "after kill -9 and a restart");
    ordinary_clients_work(&broker, &mut ordinary, 20, "after kill -9 and a restart");
    assert_within_budget(&broker, &sampler, "at the end");
    eprintln!("done after {:?}; most fds open at once: {}", started.elapsed(), sampler.max());
}
