//! A producer under test: one librdkafka producer (acks=all, idempotent by
//! default) on its own thread, sending unique values round-robin over a
//! topic's partitions until stopped, and recording each send, each
//! acknowledgement (partition, offset) and each failure for the
//! [`super::history`] checker.
//!
//! A failed send is not re-sent with the same value: production simply goes
//! on with new values, so a value is never written twice on purpose and any
//! duplicate read back is the system's fault.

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

use super::history::{Ack, Sent};
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
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
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
