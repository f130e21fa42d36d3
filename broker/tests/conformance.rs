//! Kafka wire behaviours checked against Apache Kafka's semantics with raw
//! requests (issue 23's conformance bugs), on a real broker process.
//!
//! Proves that a Fetch's `max_bytes` bounds the response except for the
//! first batch of the first partition with data (KIP-74), and that
//! ListOffsets MAX_TIMESTAMP answers the first record holding the largest
//! timestamp, not its batch's last offset; and that a compacted topic
//! refuses keyless records with INVALID_RECORD, per-record `record_errors`
//! and an `error_message`, writing nothing.

mod common;

use bytes::{Bytes, BytesMut};
use common::BrokerProcess;
use common::wire::{WireClient, create_topic_ok, latest_offset, produce, record_batch};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

const BASE_TIMESTAMP: i64 = 1_700_000_000_000;
const MIB: usize = 1 << 20;

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One batch of `records` (key, timestamp) with 8-byte values, encoded with `compression`.
fn batch_of(records: &[(Option<&str>, i64)], compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, timestamp))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: *timestamp,
            key: key.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from(format!("value-{i:02}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression })
        .expect("encode a record batch");
    buf.freeze()
}

#[test]
fn fetch_max_bytes_bounds_the_response_after_the_first_partition_with_data() {
    const PARTITIONS: i32 = 8;
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    let topic = "fetch-max-bytes";
    create_topic_ok(&mut client, topic, PARTITIONS, &[]);
    // Each partition: two batches of ~900 KiB (ten 90 KiB records each).
    let values: Vec<Vec<u8>> = (0..10).map(|i| vec![b'a' + i as u8; 90 * 1024]).collect();
    for p in 0..PARTITIONS {
        for _ in 0..2 {
            let response = produce(&mut client, topic, p, record_batch(&values, BASE_TIMESTAMP));
            assert_eq!(response.error_code, 0, "produce to {topic}-{p}: {:?}", response.error_message);
        }
    }
    let batch_size = record_batch(&values, BASE_TIMESTAMP).len();
    assert!(batch_size > 900 * 1024 && batch_size < MIB, "a batch is {batch_size} bytes");

    let fetch_all_partitions = |client: &mut WireClient, max_bytes: i32, partition_max_bytes: i32, offsets: &[i64]| {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![
                FetchTopic::default().with_topic(TopicName(name(topic))).with_partitions(
                    (0..PARTITIONS)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offsets[p as usize])
                                .with_partition_max_bytes(partition_max_bytes)
                        })
                        .collect(),
                ),
            ]);
        let response = client.send(&request, 11);
        assert_eq!(response.error_code, 0, "Fetch top-level error");
        let partitions = &response.responses[0].partitions;
        assert_eq!(partitions.len(), PARTITIONS as usize);
        partitions
            .iter()
            .map(|p| {
                assert_eq!(p.error_code, 0, "Fetch of partition {}", p.partition_index);
                p.records.as_ref().map_or(0, Bytes::len)
            })
            .collect::<Vec<usize>>()
    };

    // 1 MiB over eight partitions of 900 KiB batches: one batch, from the first partition.
    let sizes = fetch_all_partitions(&mut client, MIB as i32, MIB as i32, &[0; 8]);
    assert!(sizes.iter().sum::<usize>() <= MIB, "a 1 MiB fetch answered {sizes:?} bytes of records");
    assert_eq!(sizes[0], batch_size, "the first partition gets its first batch: {sizes:?}");
    assert!(sizes[1..].iter().all(|s| *s == 0), "no later partition's batch fits what is left: {sizes:?}");

    // A budget for two batches gives the first two partitions one each.
    let sizes = fetch_all_partitions(&mut client, (2 * batch_size + 100) as i32, MIB as i32, &[0; 8]);
    assert_eq!(sizes, [vec![batch_size; 2], vec![0; 6]].concat());

    // The first partition with data may exceed both limits, by one batch only;
    // partition_max_bytes holds for the partitions after it.
    let sizes = fetch_all_partitions(&mut client, 10 * MIB as i32, 1000, &[0; 8]);
    assert_eq!(sizes, [vec![batch_size], vec![0; 7]].concat(), "only the first batch exceeds partition_max_bytes");

    // A partition with nothing to give does not count as the first: the next
    // partition with data gets its batch even above the limit.
    let mut offsets = [0; 8];
    offsets[0] = latest_offset(&mut client, topic, 0);
    let sizes = fetch_all_partitions(&mut client, 1000, 1000, &offsets);
    assert_eq!(sizes, [vec![0, batch_size], vec![0; 6]].concat());
}

#[test]
fn list_offsets_max_timestamp_names_the_first_record_holding_it() {
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    let topic = "max-timestamp";
    create_topic_ok(&mut client, topic, 1, &[]);
    let t = BASE_TIMESTAMP;
    let first = batch_of(&[(Some("a"), t), (Some("b"), t + 100)], Compression::None);
    // Offsets 2..=6: the largest timestamp first at offset 3, again at 5, not last.
    let second = batch_of(
        &[(Some("c"), t + 300), (Some("d"), t + 900), (Some("e"), t + 200), (Some("f"), t + 900), (Some("g"), t + 50)],
        Compression::Gzip,
    );
    let third = batch_of(&[(Some("h"), t + 800)], Compression::None);
    for batch in [first, second, third] {
        let response = produce(&mut client, topic, 0, batch);
        assert_eq!(response.error_code, 0, "produce: {:?}", response.error_message);
    }
    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(TopicName(name(topic)))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-3)]),
    ]);
    // MAX_TIMESTAMP needs ListOffsets v7 (KIP-734).
    let response = client.send(&request, 7);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets MAX_TIMESTAMP");
    assert_eq!((p.offset, p.timestamp), (3, t + 900), "the record with the largest timestamp, first of two");
}

#[test]
fn keyless_records_to_a_compacted_topic_are_refused_per_record() {
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    let topic = "compacted-keys";
    create_topic_ok(&mut client, topic, 1, &[("cleanup.policy", "compact")]);
    let keyed = batch_of(&[(Some("a"), BASE_TIMESTAMP)], Compression::None);
    assert_eq!(produce(&mut client, topic, 0, keyed).error_code, 0, "keyed records are taken");
    let end = latest_offset(&mut client, topic, 0);

    for compression in [Compression::None, Compression::Lz4] {
        let mixed = batch_of(
            &[(Some("k"), BASE_TIMESTAMP), (None, BASE_TIMESTAMP), (Some("k"), BASE_TIMESTAMP), (None, BASE_TIMESTAMP)],
            compression,
        );
        let response = produce(&mut client, topic, 0, mixed);
        assert_eq!(response.error_code, ResponseError::InvalidRecord.code(), "{compression:?}");
        assert_eq!(response.base_offset, -1);
        let errors: Vec<(i32, String)> = response
            .record_errors
            .iter()
            .map(|e| (e.batch_index, e.batch_index_error_message.as_deref().unwrap_or_default().to_string()))
            .collect();
        assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 3], "{compression:?}: {errors:?}");
        for (_, message) in &errors {
            assert!(message.contains("Compacted topic cannot accept message without key"), "{message}");
        }
        let message = response.error_message.as_deref().unwrap_or_default();
        assert!(message.contains("2 record errors"), "{compression:?}: error_message {message:?}");
        assert_eq!(latest_offset(&mut client, topic, 0), end, "{compression:?}: nothing was appended");
    }

    // Versions before record_errors get the error code alone.
    let keyless = batch_of(&[(None, BASE_TIMESTAMP)], Compression::None);
    assert_eq!(produce_v3(&mut client, topic, keyless), ResponseError::InvalidRecord.code(), "Produce v3");
    assert_eq!(latest_offset(&mut client, topic, 0), end, "Produce v3: nothing was appended");

    // A topic that deletes takes the same records.
    create_topic_ok(&mut client, "deleting-keys", 1, &[]);
    let keyless = batch_of(&[(None, BASE_TIMESTAMP)], Compression::None);
    assert_eq!(produce(&mut client, "deleting-keys", 0, keyless).error_code, 0);
}

/// A Produce of `batch` to partition 0 at v3 (before record_errors); its error code.
fn produce_v3(client: &mut WireClient, topic: &str, batch: Bytes) -> i16 {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(name(topic)))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch))]),
    ]);
    client.send(&request, 3).responses[0].partition_responses[0].error_code
}
