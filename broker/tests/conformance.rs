//! Kafka wire behaviours checked against Apache Kafka's semantics with raw
//! requests (issue 23's conformance bugs), on a real broker process.
//!
//! Proves that a Fetch's `max_bytes` bounds the response except for the
//! first batch of the first partition with data (KIP-74); that ListOffsets
//! MAX_TIMESTAMP answers the first record holding the largest timestamp,
//! not its batch's last offset; that a compacted topic refuses keyless
//! records with INVALID_RECORD, per-record `record_errors` and an
//! `error_message`, writing nothing; that every topic setting Kafka accepts
//! is accepted, stored and described back; and that a topic with a
//! `compression.type` codec stores batches recompressed to it, with offsets,
//! timestamps and the idempotent producer's fields (and so its
//! deduplication) unchanged; and that OffsetForLeaderEpoch tells a consumer
//! where each leader epoch ends; and that DescribeQuorum describes
//! `__cluster_metadata` partition 0 at every version and answers any other
//! partition UNKNOWN_TOPIC_OR_PARTITION.

mod common;

use bytes::{Bytes, BytesMut};
use common::BrokerProcess;
use common::wire::{
    WireClient, batch_layout, create_topic_ok, fetch, fetch_all, idempotent_batch, init_producer_id, latest_offset,
    produce, record_batch,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_quorum_request;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, DescribeConfigsRequest, DescribeQuorumRequest, DescribeQuorumResponse, FetchRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

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

/// The codec id (attributes & 7) of every batch in `bytes`.
fn codecs(bytes: &[u8]) -> Vec<i16> {
    let mut out = Vec::new();
    let mut position = 0;
    while position + batch_layout::HEADER_SIZE <= bytes.len() {
        let at = |i: usize| position + i;
        let length = i32::from_be_bytes(bytes[at(8)..at(12)].try_into().expect("4 bytes")) as usize;
        let attributes = i16::from_be_bytes(bytes[at(21)..at(23)].try_into().expect("2 bytes"));
        out.push(attributes & 7);
        position += 12 + length;
    }
    out
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

/// Every topic setting of issue 23 with a non-default value Kafka accepts.
const KAFKA_TOPIC_SETTINGS: &[(&str, &str)] = &[
    ("compression.type", "zstd"),
    ("file.delete.delay.ms", "30000"),
    ("min.cleanable.dirty.ratio", "0.3"),
    ("min.compaction.lag.ms", "1000"),
    ("max.compaction.lag.ms", "86400000"),
    ("segment.index.bytes", "1048576"),
    ("preallocate", "true"),
];

/// DescribeConfigs of a topic: its settings as (name, value, config_source).
fn describe(client: &mut WireClient, topic: &str) -> Vec<(String, String, i8)> {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(name(topic))
            .with_configuration_keys(None),
    ]);
    let response = client.send(&request, 4);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "DescribeConfigs {topic}: {:?}", result.error_message);
    result
        .configs
        .iter()
        .map(|c| (c.name.to_string(), c.value.as_deref().unwrap_or_default().to_string(), c.config_source))
        .collect()
}

#[test]
fn every_topic_setting_kafka_accepts_is_accepted_and_described_back() {
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, "copied-configs", 1, KAFKA_TOPIC_SETTINGS);
    let described = describe(&mut client, "copied-configs");
    for (setting, value) in KAFKA_TOPIC_SETTINGS {
        assert!(
            described.iter().any(|(n, v, source)| n == setting && v == value && *source == 1),
            "{setting}={value} is described back as a topic override: {described:?}"
        );
    }

    // The same settings set later, by IncrementalAlterConfigs, on a topic created without them.
    create_topic_ok(&mut client, "altered-configs", 1, &[]);
    let described = describe(&mut client, "altered-configs");
    for (setting, default) in [
        ("compression.type", "producer"),
        ("file.delete.delay.ms", "60000"),
        ("min.cleanable.dirty.ratio", "0.5"),
        ("min.compaction.lag.ms", "0"),
        ("max.compaction.lag.ms", "9223372036854775807"),
        ("segment.index.bytes", "10485760"),
        ("preallocate", "false"),
    ] {
        assert!(
            described.iter().any(|(n, v, source)| n == setting && v == default && *source != 1),
            "{setting} is described with Kafka's default {default}: {described:?}"
        );
    }
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default().with_resource_type(2).with_resource_name(name("altered-configs")).with_configs(
            KAFKA_TOPIC_SETTINGS
                .iter()
                .map(|(n, v)| {
                    AlterableConfig::default().with_name(name(n)).with_config_operation(0).with_value(Some(name(v)))
                })
                .collect(),
        ),
    ]);
    let response = client.send(&request, 1);
    let result = &response.responses[0];
    assert_eq!(result.error_code, 0, "IncrementalAlterConfigs: {:?}", result.error_message);
    let described = describe(&mut client, "altered-configs");
    for (setting, value) in KAFKA_TOPIC_SETTINGS {
        assert!(
            described.iter().any(|(n, v, source)| n == setting && v == value && *source == 1),
            "{setting}={value} is described back after the alter: {described:?}"
        );
    }
    // Each codec Kafka names is a valid compression.type.
    for codec in ["uncompressed", "gzip", "snappy", "lz4", "zstd", "producer"] {
        let topic = format!("codec-{codec}");
        create_topic_ok(&mut client, &topic, 1, &[("compression.type", codec)]);
    }
}

#[test]
fn a_topic_codec_stores_batches_recompressed_to_it() {
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    for (codec, id) in [("lz4", 3), ("zstd", 4), ("uncompressed", 0)] {
        let topic = format!("recompressed-{codec}");
        create_topic_ok(&mut client, &topic, 1, &[("compression.type", codec)]);
        let mut expected = Vec::new();
        for (i, sent) in
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4].iter().enumerate()
        {
            let timestamps = [BASE_TIMESTAMP + 10 * i as i64, BASE_TIMESTAMP + 10 * i as i64 + 7];
            let batch = batch_of(&[(Some("x"), timestamps[0]), (Some("y"), timestamps[1])], *sent);
            let response = produce(&mut client, &topic, 0, batch);
            assert_eq!(response.error_code, 0, "{codec} topic, {sent:?} batch: {:?}", response.error_message);
            assert_eq!(response.base_offset, 2 * i as i64, "{codec} topic, {sent:?} batch offset");
            expected.extend(timestamps);
        }
        let data = fetch(&mut client, &topic, 0, 0);
        let stored = data.records.clone().unwrap_or_default();
        assert_eq!(codecs(&stored), vec![id; 4], "{codec} topic: the codec of every stored batch");
        // The records are those sent: offsets, timestamps, values.
        let mut buf = stored.clone();
        let sets = RecordBatchDecoder::decode_all(&mut buf).expect("stored batches decode");
        let records: Vec<&Record> = sets.iter().flat_map(|s| s.records.iter()).collect();
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        assert_eq!(records.iter().map(|r| r.timestamp).collect::<Vec<_>>(), expected, "{codec} topic timestamps");
        assert!(records.iter().all(|r| r.value.as_deref().is_some_and(|v| v.starts_with(b"value-"))));
    }

    // An idempotent producer's batch keeps its producer fields, so a retry is
    // recognised (same offsets, nothing written twice) and the next sequence follows.
    let topic = "recompressed-idempotent";
    create_topic_ok(&mut client, topic, 1, &[("compression.type", "lz4")]);
    let (error, producer_id, epoch) = init_producer_id(&mut client, None);
    assert_eq!(error, 0, "InitProducerId");
    let values = vec![b"one".to_vec(), b"two".to_vec()];
    let first = idempotent_batch(&values, producer_id, epoch, 0, BASE_TIMESTAMP);
    let sent = produce(&mut client, topic, 0, first.clone());
    assert_eq!((sent.error_code, sent.base_offset), (0, 0));
    let retried = produce(&mut client, topic, 0, first);
    assert_eq!((retried.error_code, retried.base_offset), (0, 0), "a retry answers the original offsets");
    let next = produce(&mut client, topic, 0, idempotent_batch(&values, producer_id, epoch, 2, BASE_TIMESTAMP));
    assert_eq!((next.error_code, next.base_offset), (0, 2), "the next sequence follows");
    let records = fetch_all(&mut client, topic, 0, 0);
    assert_eq!(
        records.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        (0..4).map(|o| (o, producer_id)).collect::<Vec<_>>()
    );
    let stored = fetch(&mut client, topic, 0, 0).records.unwrap_or_default();
    assert_eq!(codecs(&stored), vec![3, 3]);
    // Base sequences stayed 0 and 2.
    let sequences: Vec<i32> = {
        let mut buf = stored.clone();
        RecordBatchDecoder::decode_all(&mut buf).unwrap().iter().map(|s| s.records[0].sequence).collect()
    };
    assert_eq!(sequences, vec![0, 2]);
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

/// OffsetForLeaderEpoch v4 for `topic`-0: (error code, leader epoch, end offset).
fn end_of_epoch(client: &mut WireClient, topic: &str, current_leader_epoch: i32, epoch: i32) -> (i16, i32, i64) {
    use kafka_protocol::messages::OffsetForLeaderEpochRequest;
    use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        OffsetForLeaderTopic::default().with_topic(TopicName(name(topic))).with_partitions(vec![
            OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(epoch),
        ]),
    ]);
    let response = client.send(&request, 4);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// The leader epoch of `topic`-0 in Metadata.
fn leader_epoch(client: &mut WireClient, topic: &str) -> i32 {
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(name(topic))))]));
    let response = client.send(&request, 9);
    response.topics[0].partitions[0].leader_epoch
}

#[test]
fn offset_for_leader_epoch_answers_where_each_epoch_ends_for_consumers() {
    let mut broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    let topic = "epochs";
    create_topic_ok(&mut client, topic, 1, &[]);
    let first = leader_epoch(&mut client, topic);
    for value in [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()] {
        assert_eq!(produce(&mut client, topic, 0, record_batch(&[value], BASE_TIMESTAMP)).error_code, 0);
    }
    assert_eq!(end_of_epoch(&mut client, topic, first, first), (0, first, 3), "the current epoch ends at the log end");
    assert_eq!(end_of_epoch(&mut client, topic, -1, first + 7), (0, first, 3), "the largest epoch at or below");
    let unknown = ResponseError::UnknownLeaderEpoch.code();
    assert_eq!(end_of_epoch(&mut client, topic, first + 1, first).0, unknown, "a current epoch from the future");
    let missing = end_of_epoch(&mut client, "no-such-topic", -1, 0).0;
    assert_eq!(missing, ResponseError::UnknownTopicOrPartition.code());

    // A restart elects the broker again under a new epoch.
    broker.stop_gracefully();
    broker.restart();
    let mut client = WireClient::connect(broker.kafka_addr());
    let second = common::wait_for("a new leader epoch", std::time::Duration::from_secs(60), || {
        Some(leader_epoch(&mut client, topic)).filter(|e| *e > first)
    });
    assert_eq!(produce(&mut client, topic, 0, record_batch(&[b"d".to_vec()], BASE_TIMESTAMP)).error_code, 0);
    assert_eq!(
        end_of_epoch(&mut client, topic, second, first),
        (0, first, 3),
        "the old epoch ends where the new began"
    );
    assert_eq!(end_of_epoch(&mut client, topic, second, second), (0, second, 4));
    let fenced = ResponseError::FencedLeaderEpoch.code();
    assert_eq!(end_of_epoch(&mut client, topic, first, first).0, fenced, "a consumer with a stale current epoch");
}

fn describe_quorum(client: &mut WireClient, topic: &str, partitions: &[i32], version: i16) -> DescribeQuorumResponse {
    let partitions =
        partitions.iter().map(|p| describe_quorum_request::PartitionData::default().with_partition_index(*p));
    let topic = describe_quorum_request::TopicData::default()
        .with_topic_name(TopicName(name(topic)))
        .with_partitions(partitions.collect());
    client.send(&DescribeQuorumRequest::default().with_topics(vec![topic]), version)
}

#[test]
fn describe_quorum_describes_the_metadata_partition_and_refuses_any_other() {
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    for version in 0..=2 {
        let r = describe_quorum(&mut client, "__cluster_metadata", &[0], version);
        assert_eq!(r.error_code, 0, "v{version}: {r:?}");
        assert_eq!(r.topics.len(), 1, "v{version}: {r:?}");
        assert_eq!(r.topics[0].topic_name.0.as_str(), "__cluster_metadata");
        let [p] = r.topics[0].partitions.as_slice() else { panic!("one partition: {r:?}") };
        assert_eq!((p.partition_index, p.error_code, p.leader_id.0), (0, 0, 0), "v{version}: {p:?}");
        assert!(p.leader_epoch > 0 && p.high_watermark > 0, "v{version}: {p:?}");
        let [voter] = p.current_voters.as_slice() else { panic!("the one voter: {p:?}") };
        assert_eq!(voter.replica_id.0, 0);
        assert!(voter.log_end_offset >= p.high_watermark, "the leader holds what is committed: {p:?}");
        assert!(p.observers.is_empty(), "{p:?}");
        if version >= 1 {
            assert!(voter.last_caught_up_timestamp > BASE_TIMESTAMP, "the leader is caught up now: {voter:?}");
        } else {
            assert_eq!(voter.last_caught_up_timestamp, -1, "v0 carries no timestamps: {voter:?}");
        }
        if version >= 2 {
            assert_eq!(r.error_message.as_ref().map(|m| m.as_str()), Some(""), "{r:?}");
            let [node] = r.nodes.as_slice() else { panic!("the one node: {r:?}") };
            let [listener] = node.listeners.as_slice() else { panic!("one listener: {node:?}") };
            assert_eq!((node.node_id.0, listener.name.as_str()), (0, "INTERNAL"), "{node:?}");
            assert_eq!(listener.port, broker.internal_addr().port(), "{node:?}");
        } else {
            assert!(r.nodes.is_empty(), "v{version}: {r:?}");
        }
    }
    // Kafka answers each partition named UNKNOWN_TOPIC_OR_PARTITION unless
    // the request is exactly __cluster_metadata-0.
    for (topic, partitions) in [("other", vec![0]), ("__cluster_metadata", vec![1]), ("__cluster_metadata", vec![0, 0])]
    {
        let r = describe_quorum(&mut client, topic, &partitions, 2);
        assert_eq!(r.error_code, 0, "{topic} {partitions:?}: {r:?}");
        assert_eq!(r.topics[0].topic_name.0.as_str(), topic);
        let answered: Vec<(i32, i16)> =
            r.topics[0].partitions.iter().map(|p| (p.partition_index, p.error_code)).collect();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(answered, partitions.iter().map(|p| (*p, unknown)).collect::<Vec<_>>(), "{r:?}");
    }
}
