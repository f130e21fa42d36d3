//! rdkafka (librdkafka) helpers: topic creation with the AdminClient,
//! producing with a `FutureProducer` and collecting delivery reports, and
//! reading partitions back with an assigned (group-less) `BaseConsumer`.
//!
//! Everything here is synchronous: rdkafka's futures complete on its own
//! background threads, so they are simply blocked on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

/// Upper bound for reading a topic back (a hang guard, not a performance check).
const CONSUME_TIMEOUT: Duration = Duration::from_secs(120);
/// Upper bound for enqueueing one record while librdkafka's queue is full.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// A record as the test produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// CreateTime, milliseconds.
    pub timestamp: i64,
}

/// Where the broker said a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// A record as a consumer read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Timestamp,
}

impl ConsumedRecord {
    /// Whether this is exactly `expected`: key, value, headers in order and CreateTime timestamp.
    pub fn matches(&self, expected: &TestRecord) -> bool {
        let headers: Vec<(String, Option<Vec<u8>>)> =
            expected.headers.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        self.key.as_deref() == Some(&expected.key[..])
            && self.value.as_deref() == Some(&expected.value[..])
            && self.headers == headers
            && self.timestamp == Timestamp::CreateTime(expected.timestamp)
    }
}

/// Creates a topic with the AdminClient (replication factor 1) and asserts it worked.
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("create an rdkafka AdminClient");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = block_on(admin.create_topics([&topic], &options))
        .unwrap_or_else(|e| panic!("CreateTopics request for {name} failed: {e}"));
    assert_eq!(results.len(), 1, "one result per topic");
    if let Err((topic, code)) = &results[0] {
        panic!("creating topic {topic} with {partitions} partitions failed: {code:?}");
    }
}

/// A `FutureProducer` with acks=all, no idempotence (the broker does not serve
/// InitProducerId yet) and the given extra settings.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("create an rdkafka FutureProducer")
}

/// Hands one record to librdkafka, retrying while its local queue is full;
/// the returned future resolves with the broker's delivery report.
pub fn enqueue(producer: &FutureProducer, topic: &str, record: &TestRecord) -> DeliveryFuture {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in &record.headers {
        headers = headers.insert(Header { key: key.as_str(), value: Some(value) });
    }
    let mut message =
        FutureRecord::to(topic).key(&record.key).payload(&record.value).timestamp(record.timestamp).headers(headers);
    let deadline = Instant::now() + ENQUEUE_TIMEOUT;
    loop {
        match producer.send_result(message) {
            Ok(delivery) => return delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                assert!(Instant::now() < deadline, "librdkafka's queue stayed full for {ENQUEUE_TIMEOUT:?}");
                message = returned;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => panic!("librdkafka refused to enqueue a record for {topic}: {e}"),
        }
    }
}

/// Waits for one delivery report; `Err` with the reason when delivery failed.
pub fn delivery_result(delivery: DeliveryFuture) -> Result<Delivered, String> {
    match block_on(delivery) {
        Ok(Ok(d)) => Ok(Delivered { partition: d.partition, offset: d.offset }),
        Ok(Err((e, _))) => Err(e.to_string()),
        Err(_) => Err("delivery future cancelled (producer dropped)".to_string()),
    }
}

/// Produces every record (pipelined) and returns the delivery reports in
/// produce order; panics if any record is not delivered.
pub fn produce_all(producer: &FutureProducer, topic: &str, records: &[TestRecord]) -> Vec<Delivered> {
    let pending: Vec<DeliveryFuture> = records.iter().map(|r| enqueue(producer, topic, r)).collect();
    pending
        .into_iter()
        .enumerate()
        .map(|(i, delivery)| {
            delivery_result(delivery).unwrap_or_else(|e| panic!("record #{i} to {topic} was not delivered: {e}"))
        })
        .collect()
}

/// Reads partitions `0..partitions` of `topic` from the beginning to their
/// end (librdkafka's partition EOF) with an assigned consumer (no group).
pub fn consume_to_end(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<ConsumedRecord>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka refuses assign() without a group.id ("Unknown group"); the
        // consumer never joins the group nor commits, it only reads assigned partitions.
        .set("group.id", "strom-test-reader")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("create an rdkafka BaseConsumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap_or_else(|e| panic!("add {topic}-{p} to the assignment: {e}"));
    }
    consumer.assign(&assignment).expect("assign the consumer its partitions");

    let mut records: BTreeMap<i32, Vec<ConsumedRecord>> = (0..partitions).map(|p| (p, Vec::new())).collect();
    let mut at_end = vec![false; partitions as usize];
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    while at_end.iter().any(|done| !done) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} did not reach the end within {CONSUME_TIMEOUT:?}; read so far per partition: {:?}",
            records.iter().map(|(p, r)| (*p, r.len())).collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => at_end[p as usize] = true,
            Some(Err(e)) => panic!("consumer error while reading {topic}: {e}"),
            Some(Ok(m)) => {
                assert_eq!(m.topic(), topic, "message from an unassigned topic");
                let p = m.partition();
                at_end[p as usize] = false;
                let headers = m
                    .headers()
                    .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
                    .unwrap_or_default();
                records.get_mut(&p).unwrap_or_else(|| panic!("message from unassigned partition {p}")).push(
                    ConsumedRecord {
                        partition: p,
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        headers,
                        timestamp: m.timestamp(),
                    },
                );
            }
        }
    }
    records
}

/// The (low, high) watermarks of each partition `0..partitions`.
pub fn watermarks(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("create an rdkafka BaseConsumer");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("fetch watermarks of {topic}-{p}: {e}"))
        })
        .collect()
}

/// Asserts that the offsets read from one partition are exactly `0..n`, in order.
pub fn assert_dense_from_zero(what: &str, partition: i32, offsets: impl IntoIterator<Item = i64>) {
    for (expected, actual) in offsets.into_iter().enumerate() {
        assert_eq!(actual, expected as i64, "{what}: partition {partition} offsets must run 0,1,2,... without gaps");
    }
}

/// Test records `first..first+count`: key `key-<i>`, a compressible value of
/// about 100 bytes naming `i`, two headers and timestamp `base_timestamp + i`.
pub fn numbered_records(first: usize, count: usize, base_timestamp: i64) -> Vec<TestRecord> {
    (first..first + count)
        .map(|i| TestRecord {
            key: format!("key-{i}").into_bytes(),
            value: format!("value-{i:08}-{}", "abcdefghij".repeat(8 + i % 5)).into_bytes(),
            headers: vec![
                ("seq".to_string(), i.to_string().into_bytes()),
                ("origin".to_string(), b"strom-integration-test".to_vec()),
            ],
            timestamp: base_timestamp + i as i64,
        })
        .collect()
}
