//! The librdkafka-based load generator (through the `rdkafka` crate): topic
//! administration, a producer at full speed or at a fixed rate, a consumer
//! that reads a topic to its end (and a read_committed one that counts the
//! committed records of a transactional topic), and the end-to-end latency
//! probe.
//!
//! The same client settings go to both systems. At a fixed rate, latency is
//! measured from the moment a record was *due* to be sent, not from when the
//! client got round to it, so a stalled client does not hide a slow broker
//! (no coordinated omission).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// The longest any single client step may take before the run is called failed.
pub const GUARD: Duration = Duration::from_secs(300);

/// Creates `topic` and waits until every partition has a leader and a full ISR.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().context("admin client")?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
    let results = block_on(admin.create_topics([&new], &options)).context("CreateTopics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => bail!("creating topic {t}: {code:?}"),
        }
    }
    let client: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let deadline = Instant::now() + GUARD;
    loop {
        let ready = client.fetch_metadata(Some(topic), Duration::from_secs(5)).ok().is_some_and(|m| {
            m.topics().first().is_some_and(|t| {
                t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| p.leader() >= 0 && p.isr().len() == replication as usize)
            })
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("topic {topic}: not every partition has a leader and {replication} in-sync replicas after {GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes `topic` (frees the disk between runs).
pub fn delete_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().context("admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
    let results = block_on(admin.delete_topics(&[topic], &options)).context("DeleteTopics")?;
    for result in results {
        if let Err((t, code)) = result {
            bail!("deleting topic {t}: {code:?}");
        }
    }
    Ok(())
}

/// What a producer run should do.
#[derive(Clone, Debug)]
pub struct ProduceSpec {
    pub topic: String,
    pub records: u64,
    pub record_bytes: usize,
    /// `acks`: "1" or "all".
    pub acks: &'static str,
    /// Records per second; `None` sends as fast as the client can.
    pub rate: Option<f64>,
    /// Of `records`, how many are sent first as a warm-up (the client's
    /// connections and metadata): acknowledged and checked like the others,
    /// left out of the latencies. Only with a `rate`.
    pub warmup_records: u64,
}

impl ProduceSpec {
    /// `records` of `record_bytes` into `topic`, as fast as the client can.
    pub fn full_speed(topic: &str, records: u64, record_bytes: usize, acks: &'static str) -> ProduceSpec {
        ProduceSpec { topic: topic.to_owned(), records, record_bytes, acks, rate: None, warmup_records: 0 }
    }
}

/// What a producer run did.
#[derive(Debug, Default)]
pub struct ProduceOutcome {
    pub acked: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Per acknowledged record after the warm-up: due time (or send time at
    /// full speed) to delivery report, in microseconds.
    pub latencies_us: Vec<u32>,
    /// The highest latency among the warm-up records (microseconds).
    pub warmup_max_us: u64,
    /// Nanoseconds since the run's `start` at which the first measured
    /// record was due: an end-to-end probe leaves out what was due before.
    pub measured_from_ns: u64,
}

struct DeliveryCounter {
    start: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    latencies_us: std::sync::Mutex<Vec<u32>>,
    /// Records due before this (ns since `start`) are the warm-up.
    measured_from_ns: AtomicU64,
    warmup_max_us: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    /// Nanoseconds since `start` at which the record was due.
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, due_ns: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                let now = self.start.elapsed().as_nanos() as u64;
                let us = now.saturating_sub(*due_ns) / 1000;
                if *due_ns < self.measured_from_ns.load(Ordering::Relaxed) {
                    self.warmup_max_us.fetch_max(us, Ordering::Relaxed);
                } else if let Ok(mut l) = self.latencies_us.lock() {
                    l.push(us.min(u32::MAX as u64) as u32);
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// The producer settings both systems get: librdkafka's defaults except a
/// larger send queue (so full speed is not capped by it) and `acks`.
fn producer_config(bootstrap: &str, acks: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("queue.buffering.max.kbytes", "262144")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000");
    config
}

/// A record payload: 8 bytes of due time (ns since `start`, for end-to-end
/// latency) followed by filler up to `bytes`.
fn payload(bytes: usize) -> Vec<u8> {
    (0..bytes.max(8)).map(|i| (i * 31 % 251) as u8).collect()
}

/// Produces `spec.records` records; returns once each has been acknowledged
/// or failed.
pub fn produce(bootstrap: &str, spec: &ProduceSpec, start: Instant) -> Result<ProduceOutcome> {
    let context = DeliveryCounter {
        start,
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
        latencies_us: std::sync::Mutex::new(Vec::with_capacity(spec.records as usize)),
        measured_from_ns: AtomicU64::new(0),
        warmup_max_us: AtomicU64::new(0),
    };
    let producer: BaseProducer<DeliveryCounter> =
        producer_config(bootstrap, spec.acks).create_with_context(context).context("producer")?;
    let mut value = payload(spec.record_bytes);
    let began = Instant::now();
    let deadline = began + GUARD;
    let measured_from = match spec.rate {
        Some(rate) if spec.warmup_records > 0 => began + Duration::from_secs_f64(spec.warmup_records as f64 / rate),
        _ => began,
    };
    let measured_from_ns = measured_from.saturating_duration_since(start).as_nanos() as u64;
    producer.context().measured_from_ns.store(measured_from_ns, Ordering::Relaxed);
    for i in 0..spec.records {
        let due = match spec.rate {
            Some(rate) => {
                let due = began + Duration::from_secs_f64(i as f64 / rate);
                while Instant::now() < due {
                    producer.poll(Duration::ZERO);
                    let left = due.saturating_duration_since(Instant::now());
                    if left > Duration::from_micros(200) {
                        std::thread::sleep(left.min(Duration::from_millis(1)));
                    }
                }
                due
            }
            None => Instant::now(),
        };
        let due_ns = due.saturating_duration_since(start).as_nanos() as u64;
        value[..8].copy_from_slice(&due_ns.to_be_bytes());
        let mut record = BaseRecord::with_opaque_to(&spec.topic, Box::new(due_ns)).payload(&value[..]);
        loop {
            match producer.send::<(), [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                    if Instant::now() > deadline {
                        bail!("producing {} records took over {GUARD:?}", spec.records);
                    }
                }
                Err((e, _)) => bail!("produce failed: {e}"),
            }
        }
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(GUARD).context("flushing the producer")?;
    let elapsed = began.elapsed();
    let context = producer.context();
    let latencies = context.latencies_us.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
    Ok(ProduceOutcome {
        acked: context.acked.load(Ordering::Relaxed),
        failed: context.failed.load(Ordering::Relaxed),
        first_error: context.first_error.lock().ok().and_then(|e| e.clone()),
        elapsed,
        latencies_us: latencies,
        warmup_max_us: context.warmup_max_us.load(Ordering::Relaxed),
        measured_from_ns,
    })
}

/// The consumer settings both systems get: librdkafka's defaults, no group.
fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "strom-bench-unused")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    config
}

/// Each partition's high watermark.
pub fn end_offsets(bootstrap: &str, topic: &str) -> Result<Vec<i64>> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).context("Metadata")?;
    let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
    (0..partitions as i32)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, high)| high)
                .with_context(|| format!("watermarks of {topic}-{p}"))
        })
        .collect()
}

/// What reading a topic to its end found.
#[derive(Debug, Default)]
pub struct ConsumeOutcome {
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Reads every partition of `topic` from the start to the high watermarks
/// it has now, with one assigned consumer; counts records and bytes.
pub fn consume_all(bootstrap: &str, topic: &str) -> Result<ConsumeOutcome> {
    let ends = end_offsets(bootstrap, topic)?;
    let consumer: BaseConsumer = consumer_config(bootstrap).create()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..ends.len() as i32 {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut next: Vec<i64> = vec![0; ends.len()];
    let want: i64 = ends.iter().sum();
    let mut outcome = ConsumeOutcome::default();
    let began = Instant::now();
    let mut last_progress = Instant::now();
    while (outcome.records as i64) < want {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let p = message.partition() as usize;
                if message.offset() < next[p] {
                    bail!("{topic}-{p}: offset {} read twice", message.offset());
                }
                next[p] = message.offset() + 1;
                outcome.records += 1;
                outcome.bytes += message.payload_len() as u64;
                last_progress = Instant::now();
            }
            Some(Err(e)) => bail!("consuming {topic}: {e}"),
            None => {
                if last_progress.elapsed() > Duration::from_secs(60) {
                    bail!("consuming {topic}: stuck at {} of {want} records for 60 s", outcome.records);
                }
            }
        }
    }
    outcome.elapsed = began.elapsed();
    Ok(outcome)
}

/// Counts the records a `read_committed` consumer reads from every
/// partition of `topic`, from the start to each partition's end: the
/// committed records of a topic written in transactions (its offsets also
/// hold the transaction markers, so the high watermarks do not say how many
/// records there are, and [`consume_all`] does not apply). Reads on until
/// every partition has reported its end after its last record and at least
/// `expected` records came, or until nothing came for 10 s with every
/// partition at its end (a shortfall, which the caller's check reports);
/// more than `expected` shows as more. Checks that no offset is read twice.
pub fn consume_committed(bootstrap: &str, topic: &str, expected: u64) -> Result<ConsumeOutcome> {
    let partitions = end_offsets(bootstrap, topic)?.len();
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut next: Vec<i64> = vec![0; partitions];
    let mut at_end = vec![false; partitions];
    let mut outcome = ConsumeOutcome::default();
    let began = Instant::now();
    let mut last_progress = Instant::now();
    loop {
        let all_at_end = at_end.iter().all(|e| *e);
        if all_at_end && (outcome.records >= expected || last_progress.elapsed() > Duration::from_secs(10)) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let p = usize::try_from(message.partition()).ok().filter(|p| *p < partitions).with_context(|| {
                    format!("{topic}: a record from partition {} of {partitions}", message.partition())
                })?;
                if message.offset() < next[p] {
                    bail!("{topic}-{p}: offset {} read twice", message.offset());
                }
                next[p] = message.offset() + 1;
                at_end[p] = false;
                outcome.records += 1;
                outcome.bytes += message.payload_len() as u64;
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if let Some(end) = usize::try_from(p).ok().and_then(|p| at_end.get_mut(p)) {
                    *end = true;
                }
            }
            Some(Err(e)) => bail!("consuming {topic} read_committed: {e}"),
            None => {
                if last_progress.elapsed() > Duration::from_secs(60) {
                    bail!(
                        "consuming {topic} read_committed: stuck at {} of {expected} records for 60 s",
                        outcome.records
                    );
                }
            }
        }
    }
    outcome.elapsed = began.elapsed();
    Ok(outcome)
}

/// A consumer thread that reads `topic` from the start and records, for
/// each record, how long after its due time (stamped by [`produce`]) it
/// arrived: end-to-end latency.
pub struct LatencyProbe {
    /// Records to wait for before stopping; `u64::MAX` until [`LatencyProbe::finish`].
    expected: Arc<AtomicU64>,
    /// Per record read: its due time (ns since `start`) and latency (µs).
    handle: std::thread::JoinHandle<Result<Vec<(u64, u32)>>>,
}

impl LatencyProbe {
    pub fn start(bootstrap: &str, topic: &str, partitions: i32, start: Instant) -> Result<LatencyProbe> {
        let consumer: BaseConsumer = consumer_config(bootstrap).set("fetch.wait.max.ms", "100").create()?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let expected = Arc::new(AtomicU64::new(u64::MAX));
        let target = expected.clone();
        let handle = std::thread::spawn(move || -> Result<Vec<(u64, u32)>> {
            let mut latencies = Vec::new();
            let mut last_progress = Instant::now();
            while (latencies.len() as u64) < target.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let now = start.elapsed().as_nanos() as u64;
                        let due = m
                            .payload()
                            .and_then(|p| p.get(..8))
                            .and_then(|b| <[u8; 8]>::try_from(b).ok())
                            .map(u64::from_be_bytes)
                            .context("a record without the due-time stamp")?;
                        latencies.push((due, (now.saturating_sub(due) / 1000).min(u32::MAX as u64) as u32));
                        last_progress = Instant::now();
                    }
                    Some(Err(e)) => bail!("end-to-end probe: {e}"),
                    None => {
                        if last_progress.elapsed() > Duration::from_secs(60) {
                            bail!("end-to-end probe: no record for 60 s after {}", latencies.len());
                        }
                    }
                }
            }
            Ok(latencies)
        });
        Ok(LatencyProbe { expected, handle })
    }

    /// Waits until the probe has read `expected` records; the latencies of
    /// those due from `measured_from_ns` on (the producer's warm-up left out).
    pub fn finish(self, expected: u64, measured_from_ns: u64) -> Result<Vec<u32>> {
        self.expected.store(expected, Ordering::Relaxed);
        match self.handle.join() {
            Ok(result) => {
                Ok(result?.into_iter().filter(|(due, _)| *due >= measured_from_ns).map(|(_, us)| us).collect())
            }
            Err(_) => bail!("the end-to-end probe thread panicked"),
        }
    }
}

/// Sends one record with acks=1 to each partition of `topic`; `Ok` once all
/// were acknowledged, `Err` if any failed or `timeout` passed. Meant for a
/// broker that is (re)starting: the client retries connections and
/// retriable errors every 10–50 ms (not librdkafka's default backoff of up
/// to 10 s), so the time it returns after is the broker's, within ~50 ms.
pub fn probe_produce(bootstrap: &str, topic: &str, partitions: i32, timeout: Duration) -> Result<()> {
    let context = DeliveryCounter {
        start: Instant::now(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
        latencies_us: std::sync::Mutex::new(Vec::new()),
        measured_from_ns: AtomicU64::new(0),
        warmup_max_us: AtomicU64::new(0),
    };
    let producer: BaseProducer<DeliveryCounter> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("message.timeout.ms", timeout.as_millis().max(1).to_string())
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "50")
        .set("retry.backoff.ms", "10")
        .set("retry.backoff.max.ms", "50")
        .set("topic.metadata.refresh.interval.ms", "200")
        .create_with_context(context)?;
    for p in 0..partitions {
        producer
            .send(
                BaseRecord::<(), [u8], Box<u64>>::with_opaque_to(topic, Box::new(0))
                    .partition(p)
                    .payload(&b"probe"[..]),
            )
            .map_err(|(e, _)| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(timeout + Duration::from_secs(1)).context("probe not acknowledged")?;
    let context = producer.context();
    let acked = context.acked.load(Ordering::Relaxed);
    if acked != partitions as u64 {
        let why = context.first_error.lock().ok().and_then(|e| e.clone()).unwrap_or_default();
        bail!("{acked} of {partitions} probes acknowledged: {why}");
    }
    Ok(())
}

/// Reads the record at `offset` of every partition (the last acknowledged
/// ones); `Ok` once each came back.
pub fn probe_fetch(bootstrap: &str, topic: &str, offsets: &[i64], timeout: Duration) -> Result<()> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create()?;
    let mut assignment = TopicPartitionList::new();
    for (p, offset) in offsets.iter().enumerate() {
        assignment.add_partition_offset(topic, p as i32, Offset::Offset(*offset))?;
    }
    consumer.assign(&assignment)?;
    let mut seen = vec![false; offsets.len()];
    let deadline = Instant::now() + timeout;
    while seen.iter().any(|s| !s) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) if m.offset() == offsets[m.partition() as usize] => seen[m.partition() as usize] = true,
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("fetching the last records: {e}"),
            None => {}
        }
        if Instant::now() > deadline {
            bail!("the last records were not fetched within {timeout:?}");
        }
    }
    Ok(())
}
