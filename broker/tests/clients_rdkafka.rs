//! librdkafka (through the `rdkafka` crate) against a real broker process.
//!
//! Proves that a mainstream client can create a topic, produce a large keyed,
//! compressed stream with headers and explicit timestamps at acks=all, and
//! read every record back unchanged: per partition in produce order, at the
//! offsets the delivery reports named, with offsets dense from 0. A second
//! test does the same for each compression codec the client is built with. A
//! third shows a consumer whose `fetch.max.bytes` is smaller than one
//! partition's batches still reading every partition to its end (the broker
//! keeps responses within the limit, as Kafka does).

mod common;

use std::collections::BTreeMap;

use common::BrokerProcess;
use common::clients::{
    ConsumedRecord, Delivered, TestRecord, assert_dense_from_zero, consume_to_end, create_topic, numbered_records,
    produce_all, producer, watermarks,
};

const PARTITIONS: i32 = 3;
/// 2023-11-14T22:13:20Z: far from "now", so a broker that replaced CreateTime would be caught.
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

/// Checks everything a round trip must preserve; returns the record count per partition.
fn assert_round_trip(
    label: &str,
    produced: &[TestRecord],
    delivered: &[Delivered],
    consumed: &BTreeMap<i32, Vec<ConsumedRecord>>,
) -> BTreeMap<i32, usize> {
    assert_eq!(produced.len(), delivered.len(), "{label}: one delivery report per record");

    // Delivery reports: per partition, produce order gets offsets 0, 1, 2, ...
    let mut by_partition: BTreeMap<i32, Vec<(usize, i64)>> = BTreeMap::new();
    for (i, d) in delivered.iter().enumerate() {
        assert!((0..PARTITIONS).contains(&d.partition), "{label}: record #{i} delivered to partition {}", d.partition);
        by_partition.entry(d.partition).or_default().push((i, d.offset));
    }
    for (p, reports) in &by_partition {
        assert_dense_from_zero(&format!("{label}: delivery reports"), *p, reports.iter().map(|(_, o)| *o));
    }

    // Read back: the same records, in produce order, at the reported offsets.
    for p in 0..PARTITIONS {
        let expected = by_partition.get(&p).map(Vec::as_slice).unwrap_or_default();
        let read = consumed.get(&p).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(read.len(), expected.len(), "{label}: records read from partition {p} vs delivered there");
        assert_dense_from_zero(&format!("{label}: consumed"), p, read.iter().map(|r| r.offset));
        for (got, (index, offset)) in read.iter().zip(expected) {
            assert_eq!(got.offset, *offset, "{label}: partition {p} order differs from produce order");
            assert!(
                got.matches(&produced[*index]),
                "{label}: partition {p} offset {offset} holds {got:?}, expected record #{index} {:?}",
                produced[*index]
            );
        }
    }
    by_partition.into_iter().map(|(p, r)| (p, r.len())).collect()
}

#[test]
fn hundred_thousand_keyed_lz4_records_round_trip_in_order_with_headers_and_timestamps() {
    const RECORDS: usize = 100_000;
    let broker = BrokerProcess::start();
    let topic = "rdkafka-round-trip";
    create_topic(&broker.bootstrap(), topic, PARTITIONS, &[]);

    let records = numbered_records(0, RECORDS, BASE_TIMESTAMP);
    let producer = producer(&broker.bootstrap(), &[("compression.type", "lz4")]);
    let delivered = produce_all(&producer, topic, &records);
    drop(producer);

    let consumed = consume_to_end(&broker.bootstrap(), topic, PARTITIONS);
    let counts = assert_round_trip("lz4", &records, &delivered, &consumed);

    // Keyed records spread over every partition (the default partitioner hashes keys).
    assert_eq!(counts.len(), PARTITIONS as usize, "records landed in partitions {counts:?}");
    assert!(counts.values().all(|n| *n > 0), "every partition received records: {counts:?}");

    // Same key, same partition: the partition is a function of the key.
    let mut partition_of_key: BTreeMap<&[u8], i32> = BTreeMap::new();
    for (record, d) in records.iter().zip(&delivered) {
        let first = *partition_of_key.entry(&record.key).or_insert(d.partition);
        assert_eq!(first, d.partition, "key {:?} went to two partitions", String::from_utf8_lossy(&record.key));
    }

    // The high watermarks agree with what was read.
    let marks = watermarks(&broker.bootstrap(), topic, PARTITIONS);
    for (p, (low, high)) in marks.iter().enumerate() {
        assert_eq!(*low, 0, "log start offset of partition {p}");
        assert_eq!(*high, counts[&(p as i32)] as i64, "high watermark of partition {p}");
    }
}

#[test]
fn every_built_in_compression_codec_round_trips() {
    // librdkafka as built here has gzip (libz), snappy and lz4 (built in); zstd is not compiled in.
    const RECORDS: usize = 2_000;
    let broker = BrokerProcess::start();
    for codec in ["none", "gzip", "snappy", "lz4"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker.bootstrap(), &topic, PARTITIONS, &[]);
        let records = numbered_records(0, RECORDS, BASE_TIMESTAMP);
        let producer = producer(&broker.bootstrap(), &[("compression.type", codec)]);
        let delivered = produce_all(&producer, &topic, &records);
        drop(producer);
        let consumed = consume_to_end(&broker.bootstrap(), &topic, PARTITIONS);
        let counts = assert_round_trip(codec, &records, &delivered, &consumed);
        assert_eq!(counts.values().sum::<usize>(), RECORDS, "{codec}: records read in all");
    }
}

#[test]
fn a_consumer_with_a_small_fetch_max_bytes_reads_every_partition_to_the_end() {
    use std::time::{Duration, Instant};

    use common::wire::{WireClient, create_topic_ok, produce, record_batch};
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::{Message, Offset, TopicPartitionList};

    const TOPIC_PARTITIONS: i32 = 4;
    const BATCHES: usize = 4;
    const RECORDS_PER_BATCH: usize = 10;
    let broker = BrokerProcess::start();
    let topic = "small-fetch-max-bytes";
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, topic, TOPIC_PARTITIONS, &[]);
    // Batches of ~150 KB: every partition holds more than one fetch.max.bytes.
    let values: Vec<Vec<u8>> = (0..RECORDS_PER_BATCH).map(|i| vec![b'a' + i as u8; 15_000]).collect();
    for p in 0..TOPIC_PARTITIONS {
        for _ in 0..BATCHES {
            let response = produce(&mut client, topic, p, record_batch(&values, BASE_TIMESTAMP));
            assert_eq!(response.error_code, 0, "produce to {topic}-{p}");
        }
    }

    // librdkafka refuses a response larger than receive.message.max.bytes
    // ("Invalid response size"), which it keeps at fetch.max.bytes + 512 here.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "strom-small-fetch")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("message.max.bytes", "100000")
        .set("fetch.max.bytes", "200000")
        .set("receive.message.max.bytes", "200512")
        .create()
        .expect("create an rdkafka BaseConsumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..TOPIC_PARTITIONS {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("add a partition to the assignment");
    }
    consumer.assign(&assignment).expect("assign the consumer its partitions");

    let expected = (BATCHES * RECORDS_PER_BATCH) as i64;
    let mut next = vec![0i64; TOPIC_PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().any(|n| *n < expected) {
        assert!(Instant::now() < deadline, "the consumer stalled: next offset per partition {next:?} of {expected}");
        match consumer.poll(Duration::from_millis(100)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => panic!("consumer error with fetch.max.bytes=200000: {e}"),
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                assert_eq!(m.offset(), next[p], "partition {p} read in order");
                assert_eq!(m.payload().map(<[u8]>::len), Some(15_000));
                next[p] += 1;
            }
        }
    }
}
