//! The broker tests' producer under load, group consumer and history
//! checker, shared with the operator's end-to-end tests (the same files, not
//! a copy), plus reading a topic back from the beginning, the end-of-run
//! check every test under load ends with ([`finish_and_check`]), the same
//! check in the middle of a run against the group consumer
//! ([`check_consumed_so_far`]), and a meter of produce stalls ([`StallMeter`]).

#![allow(dead_code)]

#[path = "../../../broker/tests/common/cluster/history.rs"]
pub mod history;
#[path = "../../../broker/tests/common/cluster/load.rs"]
pub mod load;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// Polls `condition` every 100 ms until it returns `Some`, for at most `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = condition() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads partitions `0..partitions` of `topic` from the beginning up to their
/// high watermarks (read-committed by nature: consumers see only acknowledged data).
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<history::Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("read-all-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("create the read-back consumer");
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let (_, high) = wait_until(&format!("the watermarks of {topic}-{p}"), Duration::from_secs(60), || {
            consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).ok()
        });
        ends.insert(p, high);
    }
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("assign a partition");
    }
    consumer.assign(&assignment).expect("assign the partitions");
    let mut reads = Vec::new();
    let mut next: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    while next.iter().any(|(p, offset)| *offset < ends[p]) {
        assert!(Instant::now() < deadline, "reading {topic} back stalled at {next:?}, ends {ends:?}");
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                reads.push(history::Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    value: m.payload().unwrap_or_default().to_vec(),
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => eprintln!("read-back consumer: {e}"),
        }
    }
    reads
}

/// Stops `load` and checks the whole run: the producer had no send that
/// failed for good (librdkafka retries through leader changes; what lands in
/// `failed` did not get through), and reading `topic` back from the beginning
/// finds every acknowledged record exactly once, where acknowledged, in send
/// order. Returns the producer's log and the checker's summary.
pub fn finish_and_check(
    load: load::ProduceLoad,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> (load::LoadLog, history::Summary) {
    let log = load.finish();
    assert!(log.failed.is_empty(), "the producer saw failed sends: {:?}", &log.failed[..log.failed.len().min(5)]);
    let reads = read_all(bootstrap, topic, partitions);
    match history::check(&log.sent, &log.acked, &reads) {
        Ok(summary) => {
            eprintln!("history: {summary:?}");
            (log, summary)
        }
        Err(violations) => panic!("history check failed:\n  {}", violations.join("\n  ")),
    }
}

/// The same check in the middle of a run, against a group consumer: waits
/// until `consumer` has processed everything `load` had acknowledged when
/// called, then checks that no send failed, that every acknowledged record
/// was processed exactly once (at its acknowledged offset, in order), and
/// that no redelivery went below a committed offset. `what` names the step.
pub fn check_consumed_so_far(
    what: &str,
    load: &load::ProduceLoad,
    consumer: &load::GroupConsumer,
    timeout: Duration,
) -> (history::Summary, load::ConsumeLog) {
    let (_, acked, failed) = load.snapshot();
    assert!(failed.is_empty(), "{what}: the producer saw failed sends: {:?}", &failed[..failed.len().min(5)]);
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for a in acked.iter().filter(|a| a.offset >= 0) {
        let end = ends.entry(a.partition).or_insert(a.offset);
        *end = (*end).max(a.offset);
    }
    consumer.wait_for(&ends, timeout);
    let consumed = consumer.snapshot();
    // Taken after the reads, so every value read was sent by then.
    let (sent, _, _) = load.snapshot();
    assert!(consumed.violations.is_empty(), "{what}: the group consumer: {:?}", consumed.violations);
    match history::check(&sent, &acked, &consumed.reads) {
        Ok(summary) => (summary, consumed),
        Err(violations) => panic!("{what}: history check of the group consumer failed:\n  {}", violations.join("\n  ")),
    }
}

/// The longest time without a new acknowledgement while a step runs.
pub struct StallMeter {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl StallMeter {
    /// Starts measuring `load`'s acknowledgements every 50 ms.
    pub fn start(load: Arc<load::ProduceLoad>) -> StallMeter {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let (mut last_at, mut last_acked, mut longest) = (Instant::now(), load.acked(), Duration::ZERO);
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let now = Instant::now();
                    longest = longest.max(now - last_at);
                    if load.acked() > last_acked {
                        (last_at, last_acked) = (now, load.acked());
                    }
                }
                longest
            }
        });
        StallMeter { stop, task }
    }

    /// Stops measuring; the longest stall seen.
    pub async fn finish(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the stall meter")
    }
}
