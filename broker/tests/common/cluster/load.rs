//! A producer under test: one librdkafka producer (acks=all, idempotent by
//! default) on its own thread, sending unique values round-robin over a
//! topic's partitions until stopped, and recording each send, each
//! acknowledgement (partition, offset) and each failure for the
//! [`super::history`] checker.
//!
//! A failed send is not re-sent with the same value: production simply goes
//! on with new values, so a value is never written twice on purpose and any
//! duplicate read back is the system's fault.
//!
//! Beside it, [`GroupConsumer`]: a consumer in a consumer group on its own
//! thread, committing its offsets, that records every record it processes
//! for the same checker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::history::{Ack, Read, Sent};
use super::wait_until;

/// Sends awaiting an acknowledgement before the producer thread holds back.
const MAX_IN_FLIGHT: usize = 2_000;
/// How long `finish` waits for outstanding acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(180);

/// A send that failed, with librdkafka's reason.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seq: u64,
    pub partition: i32,
    pub error: String,
}

/// Everything the producer did.
#[derive(Debug, Default)]
pub struct LoadLog {
    pub sent: Vec<Sent>,
    pub acked: Vec<Ack>,
    pub failed: Vec<Failure>,
    /// When each partition last had a send acknowledged.
    pub last_ack: BTreeMap<i32, Instant>,
    /// Acknowledgements per partition.
    pub acks_per_partition: BTreeMap<i32, usize>,
    /// Per acknowledged send: when it was acknowledged, and how long after it was handed to the client.
    pub latencies: Vec<(Instant, Duration)>,
}

struct Recorder {
    log: Arc<Mutex<LoadLog>>,
    /// Sends in flight: partition and when each was handed to the client.
    partitions: Arc<Mutex<BTreeMap<u64, (i32, Instant)>>>,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        let seq = *seq;
        let sent = self.partitions.lock().get(&seq).copied();
        let now = Instant::now();
        let mut log = self.log.lock();
        match result {
            Ok(m) => {
                log.acked.push(Ack { seq, partition: m.partition(), offset: m.offset() });
                log.last_ack.insert(m.partition(), now);
                if let Some((_, at)) = sent {
                    log.latencies.push((now, now - at));
                }
                *log.acks_per_partition.entry(m.partition()).or_default() += 1;
            }
            Err((e, m)) => {
                let partition = sent.map_or(m.partition(), |(p, _)| p);
                log.failed.push(Failure { seq, partition, error: e.to_string() });
            }
        }
        self.partitions.lock().remove(&seq);
    }
}

/// A running producer; [`ProduceLoad::finish`] stops it and hands back its log.
pub struct ProduceLoad {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<LoadLog>>,
    thread: Option<JoinHandle<()>>,
}

/// The librdkafka settings of the producer under test: acks=all, idempotent,
/// retrying for long enough to ride out a leader failover.
///
/// One request in flight per connection: with several, a leader move lets a
/// later batch reach the new leader before an earlier one is retried there;
/// the new leader answers OUT_OF_ORDER_SEQUENCE (as Kafka does), librdkafka
/// treats that as skipped sequence numbers and bumps its producer epoch for
/// every partition, then re-sends under the new epoch batches the old leader
/// had appended and replicated but answered NOT_LEADER for — a duplicate no
/// broker can detect (librdkafka issue 4953; seen here in the voter and
/// rolling-restart tests). The broker's own idempotence is what these tests
/// check.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("max.in.flight.requests.per.connection", "1")
        .set("message.timeout.ms", "180000")
        .set("request.timeout.ms", "10000")
        .set("retry.backoff.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("linger.ms", "5");
    config
}

impl ProduceLoad {
    /// Starts sending to partitions `0..partitions` of `topic`, one record
    /// every `interval`, with `config` (see [`producer_config`]).
    pub fn start(config: ClientConfig, topic: &str, partitions: i32, interval: Duration) -> ProduceLoad {
        let log = Arc::new(Mutex::new(LoadLog::default()));
        let in_flight = Arc::new(Mutex::new(BTreeMap::new()));
        let recorder = Recorder { log: log.clone(), partitions: in_flight.clone() };
        let producer: ThreadedProducer<Recorder> =
            config.create_with_context(recorder).expect("create the rdkafka producer under test");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, log, topic) = (stop.clone(), log.clone(), topic.to_string());
            let tag = format!("{:x}", std::process::id());
            std::thread::Builder::new()
                .name("produce-load".into())
                .spawn(move || {
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let outstanding = {
                            let log = log.lock();
                            log.sent.len() - log.acked.len() - log.failed.len()
                        };
                        if outstanding >= MAX_IN_FLIGHT {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        let partition = (seq % partitions as u64) as i32;
                        let value = format!("{topic}-{tag}-{seq:010}").into_bytes();
                        in_flight.lock().insert(seq, (partition, Instant::now()));
                        log.lock().sent.push(Sent { seq, partition, value: value.clone() });
                        let mut record = BaseRecord::<(), [u8], Box<u64>>::with_opaque_to(&topic, Box::new(seq))
                            .partition(partition)
                            .payload(&value[..]);
                        loop {
                            match producer.send(record) {
                                Ok(()) => break,
                                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                                    record = back;
                                    std::thread::sleep(Duration::from_millis(5));
                                }
                                Err((e, _)) => {
                                    in_flight.lock().remove(&seq);
                                    log.lock().failed.push(Failure { seq, partition, error: format!("enqueue: {e}") });
                                    break;
                                }
                            }
                        }
                        seq += 1;
                        std::thread::sleep(interval);
                    }
                    if let Err(e) = producer.flush(FLUSH_TIMEOUT) {
                        eprintln!("[load] flush after {FLUSH_TIMEOUT:?}: {e}");
                    }
                })
                .expect("spawn the producer thread")
        };
        ProduceLoad { stop, log, thread: Some(thread) }
    }

    /// Acknowledged sends so far.
    pub fn acked(&self) -> usize {
        self.log.lock().acked.len()
    }

    /// Acknowledged sends to `partition` so far.
    pub fn acked_on(&self, partition: i32) -> usize {
        self.log.lock().acks_per_partition.get(&partition).copied().unwrap_or(0)
    }

    /// Failed sends so far.
    pub fn failed(&self) -> usize {
        self.log.lock().failed.len()
    }

    /// The sends, acknowledgements and failures so far (copies; the load goes on).
    pub fn snapshot(&self) -> (Vec<Sent>, Vec<Ack>, Vec<Failure>) {
        let log = self.log.lock();
        (log.sent.clone(), log.acked.clone(), log.failed.clone())
    }

    /// Waits until `partition` has more than `count` acknowledgements; returns how long that took.
    pub fn wait_for_acks_on(&self, partition: i32, count: usize, timeout: Duration) -> Duration {
        let started = Instant::now();
        wait_until(
            &format!(
                "more than {count} acknowledged sends to partition {partition} (failed so far: {})",
                self.failed()
            ),
            timeout,
            || (self.acked_on(partition) > count).then_some(()),
        );
        started.elapsed()
    }

    /// Waits until every partition `0..partitions` gets `more` acknowledgements beyond now.
    pub fn wait_for_progress(&self, partitions: i32, more: usize, timeout: Duration) -> Duration {
        let started = Instant::now();
        let base: Vec<usize> = (0..partitions).map(|p| self.acked_on(p)).collect();
        for p in 0..partitions {
            let left = timeout.saturating_sub(started.elapsed());
            self.wait_for_acks_on(p, base[p as usize] + more - 1, left);
        }
        started.elapsed()
    }

    /// Stops sending, waits for every outstanding acknowledgement, and returns the log.
    pub fn finish(mut self) -> LoadLog {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the producer thread panicked");
        }
        std::mem::take(&mut *self.log.lock())
    }
}

impl Drop for ProduceLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a [`GroupConsumer`] did.
#[derive(Debug, Default, Clone)]
pub struct ConsumeLog {
    /// Every record processed, each (partition, offset) once, in the order processed.
    pub reads: Vec<Read>,
    /// Records delivered again after a rebalance or a coordinator change,
    /// between the last confirmed commit and what was already processed
    /// (Kafka's at-least-once window); skipped by offset, their value compared.
    pub redelivered: usize,
    /// Redeliveries that break the contract: below an offset whose commit the
    /// coordinator had confirmed, or a different value at an offset already read.
    pub violations: Vec<String>,
    /// Commits that failed (retried with the next batch) and the last reason.
    pub failed_commits: usize,
    pub last_commit_error: Option<String>,
    /// Successful commits.
    pub commits: usize,
    /// Per partition: the next offset to process.
    pub next: BTreeMap<i32, i64>,
    /// Per partition: the highest offset the coordinator confirmed as committed.
    pub committed: BTreeMap<i32, i64>,
}

/// The librdkafka settings of the group consumer under test: manual commits,
/// from the earliest offset when the group has none.
pub fn group_consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "2000");
    config
}

/// A consumer in a consumer group, subscribed to one topic, on its own thread.
///
/// It processes a record by recording it, then commits the next offset of
/// every partition synchronously after each batch; a failed commit is
/// counted and retried with the next one. A record delivered again (the
/// group rejoined and resumed from its committed offsets) is processed only
/// once, by offset — what an application that keeps its position does — and
/// checked against the first delivery.
pub struct GroupConsumer {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ConsumeLog>>,
    thread: Option<JoinHandle<()>>,
}

/// At most this many records are processed between two commits.
const MAX_BATCH: usize = 500;

impl GroupConsumer {
    /// Subscribes to `topic` with `config` (see [`group_consumer_config`]) and starts consuming.
    pub fn start(config: ClientConfig, topic: &str) -> GroupConsumer {
        let consumer: BaseConsumer = config.create().expect("create the rdkafka group consumer under test");
        consumer.subscribe(&[topic]).expect("subscribe the group consumer");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(ConsumeLog::default()));
        let thread = {
            let (stop, log, topic) = (stop.clone(), log.clone(), topic.to_string());
            std::thread::Builder::new()
                .name("group-consumer".into())
                .spawn(move || consume(consumer, &topic, &stop, &log))
                .expect("spawn the consumer thread")
        };
        GroupConsumer { stop, log, thread: Some(thread) }
    }

    /// Records processed so far.
    pub fn consumed(&self) -> usize {
        self.log.lock().reads.len()
    }

    /// What the consumer did so far (a copy; it goes on).
    pub fn snapshot(&self) -> ConsumeLog {
        self.log.lock().clone()
    }

    /// Waits until every partition's next offset to process is past `ends`
    /// (partition → highest offset that must be processed).
    pub fn wait_for(&self, ends: &BTreeMap<i32, i64>, timeout: Duration) {
        wait_until("the group consumer to catch up with the acknowledged records", timeout, || {
            let log = self.log.lock();
            ends.iter().all(|(p, end)| log.next.get(p).is_some_and(|next| next > end)).then_some(())
        });
    }

    /// Stops consuming (after a last commit) and returns the log.
    pub fn finish(mut self) -> ConsumeLog {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the consumer thread panicked");
        }
        std::mem::take(&mut *self.log.lock())
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn consume(consumer: BaseConsumer, topic: &str, stop: &AtomicBool, log: &Mutex<ConsumeLog>) {
    // (partition, offset) → value, for comparing a redelivery with the first delivery.
    let mut seen: std::collections::HashMap<(i32, i64), Vec<u8>> = std::collections::HashMap::new();
    let mut dirty = false;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = 0;
        let mut wait = Duration::from_millis(200);
        while batch < MAX_BATCH {
            let Some(result) = consumer.poll(wait) else { break };
            wait = Duration::ZERO;
            let m = match result {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("[group consumer] {e}");
                    break;
                }
            };
            batch += 1;
            let (partition, offset) = (m.partition(), m.offset());
            let value = m.payload().unwrap_or_default().to_vec();
            let mut log = log.lock();
            let next = log.next.get(&partition).copied().unwrap_or(0);
            if offset < next {
                log.redelivered += 1;
                let committed = log.committed.get(&partition).copied().unwrap_or(0);
                if offset < committed {
                    log.violations.push(format!(
                        "partition {partition} offset {offset} delivered again although offset {committed} was \
                         committed"
                    ));
                }
                if seen.get(&(partition, offset)).is_some_and(|v| *v != value) {
                    log.violations.push(format!("partition {partition} offset {offset} changed value"));
                }
                continue;
            }
            seen.insert((partition, offset), value.clone());
            log.reads.push(Read { partition, offset, value });
            log.next.insert(partition, offset + 1);
            dirty = true;
        }
        if dirty {
            dirty = !commit(&consumer, topic, log);
        }
    }
    // The last commit, retried a few times: what it records is what the group resumes from.
    for _ in 0..5 {
        if !dirty || commit(&consumer, topic, log) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Commits the next offset of every partition processed; whether it succeeded.
fn commit(consumer: &BaseConsumer, topic: &str, log: &Mutex<ConsumeLog>) -> bool {
    let next = log.lock().next.clone();
    let mut offsets = TopicPartitionList::new();
    for (p, o) in &next {
        if offsets.add_partition_offset(topic, *p, Offset::Offset(*o)).is_err() {
            return false;
        }
    }
    // A partition's own error is reported in its entry of the list.
    let result = consumer.commit(&offsets, CommitMode::Sync).and_then(|()| {
        match offsets.elements().iter().find_map(|e| e.error().err()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    let mut log = log.lock();
    match result {
        Ok(()) => {
            log.commits += 1;
            log.committed = next;
            true
        }
        Err(e) => {
            log.failed_commits += 1;
            log.last_commit_error = Some(e.to_string());
            false
        }
    }
}
