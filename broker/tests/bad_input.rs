//! Untrusted input on the Kafka port, sent as raw bytes or hand-made requests.
//!
//! Proves that a frame over `socket.request.max.bytes`, a negative size, a
//! truncated frame, an unknown API key and an unserved version close only
//! that connection; that a Produce whose batch fails its CRC is refused with
//! CORRUPT_MESSAGE and writes nothing (not even the valid batches sent with
//! it); that a batch over `max.message.bytes` is refused with
//! MESSAGE_TOO_LARGE; that CreateTopics refuses invalid names with
//! INVALID_TOPIC_EXCEPTION (as does Metadata auto-creation) and creates
//! nothing on disk; that a CreateTopics past the broker's partition limit
//! (`max.broker.partitions`) is refused with POLICY_VIOLATION naming it; that
//! a Metadata request of thousands of invalid names is answered without a
//! log line per name; and
//! that after each of these the broker still answers ApiVersions and
//! Metadata on a new connection.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::BrokerProcess;
use common::wire::{
    WireClient, assert_broker_still_serves, create_topic, create_topic_ok, fetch, latest_offset, produce, record_batch,
    with_corrupted_payload,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataRequest, MetadataResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;

const MAX_REQUEST_BYTES: usize = 1_048_576;
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

/// A request header v1 (api key, version, correlation id, client id) and nothing else.
fn bare_request_header(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i16(api_key);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    buf.put_i16(4);
    buf.put_slice(b"test");
    buf.to_vec()
}

/// `count` values of `size` bytes each.
fn values(count: usize, size: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| vec![b'a' + (i % 26) as u8; size]).collect()
}

/// The value bytes of every record fetched from `offset` on, with their offsets.
fn fetched_values(client: &mut WireClient, topic: &str, offset: i64) -> Vec<(i64, Bytes)> {
    let data = fetch(client, topic, 0, offset);
    assert_eq!(data.error_code, 0, "fetch {topic} from {offset}");
    let mut bytes = data.records.unwrap_or_default();
    let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decode fetched batches");
    sets.iter().flat_map(|s| s.records.iter().map(|r| (r.offset, r.value.clone().unwrap_or_default()))).collect()
}

#[test]
fn frame_over_socket_request_max_bytes_closes_the_connection() {
    let broker = BrokerProcess::start_with(&[&format!("socket.request.max.bytes={MAX_REQUEST_BYTES}")]);

    let mut client = WireClient::connect(broker.kafka_addr());
    client.write_raw(&((MAX_REQUEST_BYTES + 1) as i32).to_be_bytes());
    client.write_raw(&bare_request_header(ApiKey::Metadata as i16, 12, 1));
    client.assert_closed_by_broker("a frame size one byte over socket.request.max.bytes");
    assert_broker_still_serves(broker.kafka_addr(), "an oversized frame");

    let mut client = WireClient::connect(broker.kafka_addr());
    client.write_raw(&i32::MAX.to_be_bytes());
    client.assert_closed_by_broker("a 2 GiB frame size");
    assert_broker_still_serves(broker.kafka_addr(), "a 2 GiB frame size");

    let mut client = WireClient::connect(broker.kafka_addr());
    client.write_raw(&(-1i32).to_be_bytes());
    client.assert_closed_by_broker("a negative frame size");
    assert_broker_still_serves(broker.kafka_addr(), "a negative frame size");

    // A request within the limit is served on a connection that sent nothing bad.
    let mut client = WireClient::connect(broker.kafka_addr());
    let metadata: MetadataResponse = client.send(&MetadataRequest::default().with_topics(None), 12);
    assert_eq!(metadata.brokers.len(), 1, "Metadata within the limit");
}

#[test]
fn truncated_frame_closes_only_that_connection() {
    let broker = BrokerProcess::start();
    let mut bystander = WireClient::connect(broker.kafka_addr());

    let mut client = WireClient::connect(broker.kafka_addr());
    client.write_raw(&100i32.to_be_bytes());
    client.write_raw(&bare_request_header(ApiKey::Metadata as i16, 12, 1)[..10]);
    client.shutdown_write();
    client.assert_closed_by_broker("10 of 100 announced bytes, then end of stream");
    assert_broker_still_serves(broker.kafka_addr(), "a truncated frame");

    // A size prefix cut short (2 of 4 bytes).
    let mut client = WireClient::connect(broker.kafka_addr());
    client.write_raw(&[0, 0]);
    client.shutdown_write();
    client.assert_closed_by_broker("half a size prefix, then end of stream");

    // A connection opened before the bad ones is unaffected.
    let metadata: MetadataResponse = bystander.send(&MetadataRequest::default().with_topics(None), 12);
    assert_eq!(metadata.brokers.len(), 1, "Metadata on a connection opened before the bad ones");
}

#[test]
fn unknown_api_key_and_unserved_version_close_the_connection() {
    let broker = BrokerProcess::start();

    let mut client = WireClient::connect(broker.kafka_addr());
    client.write_frame(&bare_request_header(9999, 0, 7));
    client.assert_closed_by_broker("a request with API key 9999");
    assert_broker_still_serves(broker.kafka_addr(), "an unknown API key");

    // A real API the broker does not serve at all.
    let mut client = WireClient::connect(broker.kafka_addr());
    client.write_frame(&bare_request_header(ApiKey::AlterPartitionReassignments as i16, 0, 8));
    client.assert_closed_by_broker("a request for an unserved API (AlterPartitionReassignments)");
    assert_broker_still_serves(broker.kafka_addr(), "an unserved API");

    let mut client = WireClient::connect(broker.kafka_addr());
    client.write_frame(&bare_request_header(ApiKey::Metadata as i16, 99, 9));
    client.assert_closed_by_broker("Metadata v99");
    assert_broker_still_serves(broker.kafka_addr(), "an unserved Metadata version");

    // A body that does not parse at its version.
    let mut client = WireClient::connect(broker.kafka_addr());
    let mut garbage_body = bare_request_header(ApiKey::Metadata as i16, 12, 10);
    garbage_body.extend_from_slice(&[0xff; 3]);
    client.write_frame(&garbage_body);
    client.assert_closed_by_broker("a Metadata v12 body that does not parse");
    assert_broker_still_serves(broker.kafka_addr(), "a malformed body");

    // An array length of 2^31-1 in a 5-byte body: a decoder that sized its
    // Vec from it would abort the process on a machine of this size.
    let mut client = WireClient::connect(broker.kafka_addr());
    let mut huge_array = bare_request_header(ApiKey::Metadata as i16, 0, 11);
    huge_array.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0xb6]);
    client.write_frame(&huge_array);
    client.assert_closed_by_broker("a Metadata v0 body claiming 2^31-1 topics");
    assert_broker_still_serves(broker.kafka_addr(), "an absurd array length");
}

#[test]
fn api_versions_at_an_unserved_version_is_answered_with_unsupported_version() {
    // KIP-511: the broker answers at v0 with error 35 and its ranges, and keeps the connection.
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    client.write_frame(&bare_request_header(ApiKey::ApiVersions as i16, 99, 11));
    let mut response = client.read_frame().expect("an ApiVersions answer, not a closed connection");
    let header = ResponseHeader::decode(&mut response, 0).expect("decode the response header v0");
    assert_eq!(header.correlation_id, 11, "correlation id echoed");
    let body = ApiVersionsResponse::decode(&mut response, 0).expect("decode ApiVersions v0");
    assert_eq!(body.error_code, ResponseError::UnsupportedVersion.code(), "error code");
    let range = body.api_keys.iter().find(|k| k.api_key == ApiKey::ApiVersions as i16);
    assert!(range.is_some_and(|r| r.max_version >= 3), "ApiVersions range advertised: {range:?}");

    // The client retries at a served version on the same connection.
    let retried: ApiVersionsResponse = client.send(&kafka_protocol::messages::ApiVersionsRequest::default(), 3);
    assert_eq!(retried.error_code, 0, "ApiVersions v3 on the same connection");
}

#[test]
fn produce_with_bad_crc_is_refused_as_corrupt_message_and_writes_nothing() {
    let broker = BrokerProcess::start();
    let topic = "bad-crc";
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, topic, 1, &[]);

    let good = record_batch(&values(3, 10), BASE_TIMESTAMP);
    let first = produce(&mut client, topic, 0, good.clone());
    assert_eq!((first.error_code, first.base_offset), (0, 0), "a valid batch: {:?}", first.error_message);
    assert_eq!(latest_offset(&mut client, topic, 0), 3, "latest offset after 3 records");

    let corrupt = with_corrupted_payload(&good);
    let refused = produce(&mut client, topic, 0, corrupt.clone());
    assert_eq!(refused.error_code, ResponseError::CorruptMessage.code(), "bad CRC: {:?}", refused.error_message);
    assert_eq!(latest_offset(&mut client, topic, 0), 3, "a refused batch must not be written");

    // A valid batch sent together with a corrupt one is not written either.
    let mut both = BytesMut::from(&good[..]);
    both.extend_from_slice(&corrupt);
    let refused = produce(&mut client, topic, 0, both.freeze());
    assert_eq!(
        refused.error_code,
        ResponseError::CorruptMessage.code(),
        "valid + corrupt batch: {:?}",
        refused.error_message
    );
    assert_eq!(latest_offset(&mut client, topic, 0), 3, "batches of a refused request must not be written");

    // The connection is still usable, and the log holds exactly the good records.
    let next = produce(&mut client, topic, 0, record_batch(&[b"next".to_vec()], BASE_TIMESTAMP));
    assert_eq!((next.error_code, next.base_offset), (0, 3), "next valid batch: {:?}", next.error_message);
    let stored = fetched_values(&mut client, topic, 0);
    let offsets: Vec<i64> = stored.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3], "records stored");
    assert_eq!(stored[3].1, Bytes::from_static(b"next"), "record at offset 3");
    assert_broker_still_serves(broker.kafka_addr(), "a corrupt batch");

    // Clients may not write to the internal offsets topic.
    let internal = produce(&mut client, "__consumer_offsets", 0, record_batch(&values(1, 10), BASE_TIMESTAMP));
    assert_eq!(internal.error_code, ResponseError::InvalidTopicException.code(), "produce to __consumer_offsets");
    assert_eq!(latest_offset(&mut client, "__consumer_offsets", 0), 0, "nothing written to __consumer_offsets-0");
}

#[test]
fn batch_over_max_message_bytes_is_refused_as_message_too_large() {
    let broker = BrokerProcess::start_with(&["message.max.bytes=4096"]);
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, "small-max", 1, &[("max.message.bytes", "1024")]);
    create_topic_ok(&mut client, "broker-max", 1, &[]);

    let two_kib = record_batch(&values(1, 2000), BASE_TIMESTAMP);
    let eight_kib = record_batch(&values(1, 8000), BASE_TIMESTAMP);
    let small = record_batch(&values(1, 100), BASE_TIMESTAMP);

    // Topic override: 1024 bytes.
    let refused = produce(&mut client, "small-max", 0, two_kib.clone());
    assert_eq!(
        refused.error_code,
        ResponseError::MessageTooLarge.code(),
        "2 KB batch, topic max.message.bytes=1024: {:?}",
        refused.error_message
    );
    assert_eq!(latest_offset(&mut client, "small-max", 0), 0, "nothing written to small-max");
    let accepted = produce(&mut client, "small-max", 0, small);
    assert_eq!((accepted.error_code, accepted.base_offset), (0, 0), "small batch: {:?}", accepted.error_message);

    // Broker default (message.max.bytes=4096) for a topic without an override.
    let accepted = produce(&mut client, "broker-max", 0, two_kib);
    assert_eq!((accepted.error_code, accepted.base_offset), (0, 0), "2 KB batch: {:?}", accepted.error_message);
    let refused = produce(&mut client, "broker-max", 0, eight_kib);
    assert_eq!(
        refused.error_code,
        ResponseError::MessageTooLarge.code(),
        "8 KB batch, message.max.bytes=4096: {:?}",
        refused.error_message
    );
    assert_eq!(latest_offset(&mut client, "broker-max", 0), 1, "only the 2 KB record in broker-max");
    assert_broker_still_serves(broker.kafka_addr(), "oversized batches");
}

#[test]
fn create_topics_with_invalid_name_is_refused_as_invalid_topic() {
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    for name in ["bad/name", "../escape", "..", "has space", &"x".repeat(250)] {
        let result = create_topic(&mut client, name, 1, &[]);
        assert_eq!(
            result.error_code,
            ResponseError::InvalidTopicException.code(),
            "CreateTopics {name:?}: {:?}",
            result.error_message
        );
    }
    // Auto-creation through Metadata refuses the same names.
    let request = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("bad/name")))),
    ]));
    let metadata: MetadataResponse = client.send(&request, 12);
    let entry = metadata.topics.first().expect("Metadata answers for the topic asked for");
    assert_eq!(entry.error_code, ResponseError::InvalidTopicException.code(), "Metadata auto-create of bad/name");

    let metadata: MetadataResponse = client.send(&MetadataRequest::default().with_topics(None), 12);
    // Only the internal __consumer_offsets, which the broker creates at start.
    let names: Vec<String> = metadata
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert!(names.is_empty(), "no topic may exist after refused creations: {names:?}");

    // Nothing was created on disk, inside the data dir or next to it.
    let data_dir = broker.data_dir();
    assert!(!data_dir.join("bad").exists(), "a directory for `bad/name` was created");
    let parent = data_dir.parent().expect("the data dir has a parent");
    assert!(!parent.join("escape-0").exists(), "`../escape` created a log outside the data dir");
    let directories: Vec<String> = std::fs::read_dir(&data_dir)
        .expect("list the data dir")
        .map(|e| e.expect("data dir entry").path())
        .filter(|path| path.is_dir())
        .map(|path| path.display().to_string())
        .filter(|path| !path.contains("__consumer_offsets-") && !path.ends_with("/controller"))
        .collect();
    assert!(directories.is_empty(), "partition directories after refused creations: {directories:?}");
    assert_broker_still_serves(broker.kafka_addr(), "invalid topic names");
}

#[test]
fn create_topics_past_the_brokers_partition_limit_is_refused_naming_the_limit() {
    let broker = BrokerProcess::start_with(&["max.broker.partitions=200"]);
    let mut client = WireClient::connect(broker.kafka_addr());
    let refused = create_topic(&mut client, "flood", 100_000, &[]);
    assert_eq!(refused.error_code, ResponseError::PolicyViolation.code(), "{:?}", refused.error_message);
    let message = refused.error_message.map(|m| m.to_string()).unwrap_or_default();
    assert!(message.contains("max.broker.partitions") && message.contains("200"), "{message}");
    // 50 __consumer_offsets partitions may already be hosted; 100 more still fit.
    create_topic_ok(&mut client, "fits", 100, &[]);
    assert_broker_still_serves(broker.kafka_addr(), "a refused 100,000-partition CreateTopics");
}

#[test]
fn a_metadata_request_of_many_invalid_names_is_answered_without_a_log_line_each() {
    const NAMES: usize = 5_000;
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    let topics = (0..NAMES)
        .map(|i| {
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(format!("bad name {i}")))))
        })
        .collect();
    let request = MetadataRequest::default().with_topics(Some(topics)).with_allow_auto_topic_creation(true);
    let response: MetadataResponse = client.send(&request, common::wire::METADATA_VERSION);
    assert_eq!(response.topics.len(), NAMES);
    assert!(
        response.topics.iter().all(|t| t.error_code == ResponseError::InvalidTopicException.code()),
        "every invalid name is refused as INVALID_TOPIC_EXCEPTION"
    );
    let lines = broker.log().matches("did not auto-create topic").count();
    assert!(lines > 0 && lines < 100, "{lines} log lines for {NAMES} refused names: rate-limited, not one each");
    assert_broker_still_serves(broker.kafka_addr(), "a Metadata request of 5,000 invalid names");
}
