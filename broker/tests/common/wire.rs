//! A raw Kafka protocol client over a blocking `TcpStream`, encoding and
//! decoding with the `kafka-protocol` crate.
//!
//! Used where a client library cannot help: sending malformed, oversized or
//! unknown requests, and checking exact error codes of single requests. Reads
//! have a generous timeout so a broker that never answers fails the test
//! instead of hanging it.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest, FetchRequest,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, InitProducerIdRequest, JoinGroupRequest, JoinGroupResponse,
    ListOffsetsRequest, MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest,
    ProducerId, RequestHeader, ResponseHeader, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// How long to wait for a response (or for the broker to close) before failing.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Versions used for the typed requests below (all inside the served ranges).
pub const API_VERSIONS_VERSION: i16 = 3;
pub const METADATA_VERSION: i16 = 12;
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 11;
pub const LIST_OFFSETS_VERSION: i16 = 5;

/// ListOffsets timestamp meaning "the latest offset" (the high watermark).
pub const LATEST_TIMESTAMP: i64 = -1;

/// One connection speaking the Kafka protocol.
pub struct WireClient {
    stream: TcpStream,
    next_correlation_id: i32,
    /// The request header's client id.
    client_id: String,
}

impl WireClient {
    /// Connects to the broker's Kafka listener.
    pub fn connect(addr: SocketAddr) -> WireClient {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to the broker at {addr}: {e}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).expect("set a read timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        WireClient { stream, next_correlation_id: 1, client_id: DEFAULT_CLIENT_ID.to_string() }
    }

    /// Connects with `client_id` in every request header (what client quotas key on).
    pub fn connect_as(addr: SocketAddr, client_id: &str) -> WireClient {
        let mut client = WireClient::connect(addr);
        client.client_id = client_id.to_string();
        client
    }

    /// Sends a typed request at `version` and decodes its response.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let body = encode_request_as(request, version, correlation_id, &self.client_id);
        self.write_frame(&body);
        let mut response = self.read_frame().unwrap_or_else(|| {
            panic!("broker closed the connection instead of answering API key {} v{version}", R::KEY)
        });
        let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
            .unwrap_or_else(|e| panic!("decode the response header of API key {} v{version}: {e}", R::KEY));
        assert_eq!(header.correlation_id, correlation_id, "response correlation id of API key {}", R::KEY);
        R::Response::decode(&mut response, version)
            .unwrap_or_else(|e| panic!("decode the response body of API key {} v{version}: {e}", R::KEY))
    }

    /// Sends `requests` back to back in one write, before reading any
    /// response, then reads and decodes their responses, asserting they come
    /// back in request order.
    pub fn send_pipelined<R: Request>(&mut self, requests: &[R], version: i16) -> Vec<R::Response> {
        let mut bytes = Vec::new();
        let first = self.next_correlation_id;
        for request in requests {
            let body = encode_request(request, version, self.next_correlation_id);
            self.next_correlation_id += 1;
            bytes.extend_from_slice(&(body.len() as i32).to_be_bytes());
            bytes.extend_from_slice(&body);
        }
        self.write_raw(&bytes);
        (0..requests.len() as i32)
            .map(|i| {
                let mut response = self.read_frame().unwrap_or_else(|| {
                    panic!("broker closed the connection before answering pipelined request {i} (API key {})", R::KEY)
                });
                let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
                    .unwrap_or_else(|e| panic!("decode the response header of API key {} v{version}: {e}", R::KEY));
                assert_eq!(header.correlation_id, first + i, "pipelined response {i} answers out of order");
                R::Response::decode(&mut response, version)
                    .unwrap_or_else(|e| panic!("decode the response body of API key {} v{version}: {e}", R::KEY))
            })
            .collect()
    }

    /// Writes a 4-byte big-endian size prefix and then `body`.
    pub fn write_frame(&mut self, body: &[u8]) {
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(body);
        self.write_raw(&frame);
    }

    /// Writes bytes as they are, with no framing.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the broker");
        self.stream.flush().expect("flush to the broker");
    }

    /// Closes our sending side (the broker sees end of stream), keeping the
    /// receiving side open to observe what the broker does.
    pub fn shutdown_write(&mut self) {
        self.stream.shutdown(Shutdown::Write).expect("half-close the connection");
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        match self.stream.read_exact(&mut size) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return None,
            Err(e) => panic!("read a response size from the broker: {e}"),
        }
        let size = i32::from_be_bytes(size);
        assert!(size >= 0, "broker sent a negative response size {size}");
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body).unwrap_or_else(|e| panic!("read a {size}-byte response body: {e}"));
        Some(Bytes::from(body))
    }

    /// Asserts that the broker closes this connection without sending any
    /// further byte (end of stream or reset), rather than answering or
    /// leaving it open.
    pub fn assert_closed_by_broker(&mut self, after: &str) {
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("after {after}, the broker sent {n} bytes ({:?}) instead of closing", &buf[..n]),
            Err(e) if is_closed(&e) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("after {after}, the broker kept the connection open for {READ_TIMEOUT:?}")
            }
            Err(e) => panic!("after {after}, reading from the broker failed unexpectedly: {e}"),
        }
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted)
}

/// A request frame body (header + body, without the size prefix).
pub fn encode_request<R: Request>(request: &R, version: i16, correlation_id: i32) -> BytesMut {
    encode_request_as(request, version, correlation_id, DEFAULT_CLIENT_ID)
}

/// The client id of requests that name none.
const DEFAULT_CLIENT_ID: &str = "strom-integration-test";

/// A request frame body whose header carries `client_id`.
pub fn encode_request_as<R: Request>(request: &R, version: i16, correlation_id: i32, client_id: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut buf, R::header_version(version))
        .unwrap_or_else(|e| panic!("encode a request header for API key {}: {e}", R::KEY));
    request.encode(&mut buf, version).unwrap_or_else(|e| panic!("encode API key {} v{version}: {e}", R::KEY));
    buf
}

/// A topic name as the protocol types carry it.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Asserts, on a fresh connection, that the broker still answers ApiVersions
/// (with Produce and Fetch served) and Metadata (naming itself as broker 0).
pub fn assert_broker_still_serves(addr: SocketAddr, after: &str) {
    let mut client = WireClient::connect(addr);
    let versions: ApiVersionsResponse = client.send(&ApiVersionsRequest::default(), API_VERSIONS_VERSION);
    assert_eq!(versions.error_code, 0, "ApiVersions error after {after}");
    for api in [ApiKey::Produce, ApiKey::Fetch, ApiKey::Metadata] {
        assert!(
            versions.api_keys.iter().any(|k| k.api_key == api as i16),
            "ApiVersions after {after} does not list {api:?}"
        );
    }
    let metadata: MetadataResponse = client.send(&MetadataRequest::default().with_topics(None), METADATA_VERSION);
    assert_eq!(metadata.brokers.len(), 1, "Metadata after {after}: brokers {:?}", metadata.brokers);
    assert_eq!(metadata.brokers[0].node_id, BrokerId(0), "Metadata after {after}: broker id");
    assert_eq!(metadata.brokers[0].port, i32::from(addr.port()), "Metadata after {after}: advertised port");
}

/// CreateTopics for one topic with `partitions` partitions, replication
/// factor 1 and the given config overrides; returns the topic's result.
pub fn create_topic(
    client: &mut WireClient,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreatableTopicResult {
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
    let mut response = client.send(&request, CREATE_TOPICS_VERSION);
    assert_eq!(response.topics.len(), 1, "CreateTopics answered for {} topics", response.topics.len());
    response.topics.remove(0)
}

/// Creates a topic and asserts that it worked.
pub fn create_topic_ok(client: &mut WireClient, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let result = create_topic(client, name, partitions, configs);
    assert_eq!(result.error_code, 0, "CreateTopics {name}: {:?}", result.error_message);
}

/// Produces raw record-batch bytes to one partition with acks=all; returns
/// the partition's response.
pub fn produce(client: &mut WireClient, topic: &str, partition: i32, records: Bytes) -> PartitionProduceResponse {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![
            PartitionProduceData::default().with_index(partition).with_records(Some(records)),
        ]),
    ]);
    let mut response = client.send(&request, PRODUCE_VERSION);
    assert_eq!(response.responses.len(), 1, "Produce answered for {} topics", response.responses.len());
    let mut topic_response = response.responses.remove(0);
    assert_eq!(topic_response.partition_responses.len(), 1, "Produce answered for several partitions");
    topic_response.partition_responses.remove(0)
}

/// The latest offset (high watermark) of a partition, by ListOffsets.
pub fn latest_offset(client: &mut WireClient, topic: &str, partition: i32) -> i64 {
    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![
            ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(LATEST_TIMESTAMP),
        ]),
    ]);
    let response = client.send(&request, LIST_OFFSETS_VERSION);
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .unwrap_or_else(|| panic!("ListOffsets for {topic}-{partition} answered no partition"));
    assert_eq!(p.error_code, 0, "ListOffsets latest for {topic}-{partition}");
    p.offset
}

/// One Fetch of a partition from `offset`, not waiting for data.
pub fn fetch(client: &mut WireClient, topic: &str, partition: i32, offset: i64) -> PartitionData {
    let request = FetchRequest::default().with_max_wait_ms(0).with_min_bytes(0).with_topics(vec![
        FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1024 * 1024),
        ]),
    ]);
    let response = client.send(&request, FETCH_VERSION);
    assert_eq!(response.error_code, 0, "Fetch top-level error for {topic}-{partition}");
    response
        .responses
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .unwrap_or_else(|| panic!("Fetch for {topic}-{partition} answered no partition"))
}

/// Exactly one uncompressed RecordBatch v2 holding `values` as records
/// (keys `key-<i>`), with CreateTime timestamps from `timestamp`.
pub fn record_batch(values: &[Vec<u8>], timestamp: i64) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while offset - sequence
            // stays constant; the batch's base sequence is still -1 (no producer id).
            sequence: i as i32 - 1,
            timestamp: timestamp + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(value.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("encode a record batch");
    let batch_length = i32::from_be_bytes(
        buf[batch_layout::BATCH_LENGTH..batch_layout::BATCH_LENGTH + 4].try_into().expect("4 bytes"),
    );
    assert_eq!(batch_length as usize + 12, buf.len(), "the records were encoded as exactly one batch");
    buf.freeze()
}

/// Byte offsets inside a RecordBatch v2 header (Kafka's DefaultRecordBatch).
pub mod batch_layout {
    /// baseOffset: int64.
    pub const BASE_OFFSET: usize = 0;
    /// batchLength: int32, bytes after this field.
    pub const BATCH_LENGTH: usize = 8;
    /// magic: int8 (2).
    pub const MAGIC: usize = 16;
    /// crc: uint32, CRC-32C of everything from attributes to the end.
    pub const CRC: usize = 17;
    /// attributes: int16, the first byte the CRC covers.
    pub const ATTRIBUTES: usize = 21;
    /// Size of the fixed header, up to and including the record count.
    pub const HEADER_SIZE: usize = 61;
}

/// A copy of a [`record_batch`] with one byte of its last record's value
/// flipped: the batch still parses record by record, and only its CRC-32C
/// tells it was damaged.
pub fn with_corrupted_payload(batch: &Bytes) -> Bytes {
    assert!(batch.len() > batch_layout::HEADER_SIZE + 2, "batch of {} bytes has no records to corrupt", batch.len());
    let mut corrupt = batch.to_vec();
    // The last record ends with its value and then a header count of 0 (one byte).
    let headers_count = corrupt.len() - 1;
    assert_eq!(corrupt[headers_count], 0, "the last record of the batch has no headers");
    corrupt[headers_count - 1] ^= 0x55;
    Bytes::from(corrupt)
}

/// Versions used by the group and producer-id helpers below.
pub const INIT_PRODUCER_ID_VERSION: i16 = 4;
pub const JOIN_GROUP_VERSION: i16 = 5;
pub const SYNC_GROUP_VERSION: i16 = 3;
pub const HEARTBEAT_VERSION: i16 = 3;
pub const OFFSET_COMMIT_VERSION: i16 = 8;
pub const OFFSET_FETCH_VERSION: i16 = 7;

/// InitProducerId for an idempotent (non-transactional) producer; `current`
/// is the producer's (id, epoch) when it asks again (KIP-360), else `None`.
/// Returns (error code, producer id, epoch).
pub fn init_producer_id(client: &mut WireClient, current: Option<(i64, i16)>) -> (i16, i64, i16) {
    let (id, epoch) = current.unwrap_or((-1, -1));
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch);
    let response = client.send(&request, INIT_PRODUCER_ID_VERSION);
    (response.error_code, response.producer_id.0, response.producer_epoch)
}

/// One uncompressed RecordBatch v2 from an idempotent producer: `values` as
/// records (keys `key-<i>`) with producer id, epoch and base sequence set.
pub fn idempotent_batch(values: &[Vec<u8>], producer_id: i64, epoch: i16, base_sequence: i32, timestamp: i64) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_sequence + i as i32,
            timestamp: timestamp + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(value.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("encode an idempotent record batch");
    let batch_length = i32::from_be_bytes(
        buf[batch_layout::BATCH_LENGTH..batch_layout::BATCH_LENGTH + 4].try_into().expect("4 bytes"),
    );
    assert_eq!(batch_length as usize + 12, buf.len(), "the records were encoded as exactly one batch");
    buf.freeze()
}

/// Every record of a partition from `offset` to the end, decoded, as
/// (offset, producer id, value), following fetches until the high watermark.
pub fn fetch_all(client: &mut WireClient, topic: &str, partition: i32, offset: i64) -> Vec<(i64, i64, Bytes)> {
    let end = latest_offset(client, topic, partition);
    let mut out = Vec::new();
    let mut next = offset;
    while next < end {
        let data = fetch(client, topic, partition, next);
        assert_eq!(data.error_code, 0, "Fetch {topic}-{partition} at {next}");
        let mut bytes = data.records.unwrap_or_default();
        assert!(!bytes.is_empty(), "Fetch {topic}-{partition} at {next} (below the high watermark {end}) was empty");
        let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decode fetched batches");
        for record in sets.iter().flat_map(|s| s.records.iter()) {
            if record.offset >= next {
                out.push((record.offset, record.producer_id, record.value.clone().unwrap_or_default()));
                next = record.offset + 1;
            }
        }
    }
    out
}

/// FindCoordinator (v3) for a group; returns (error code, node id, port).
pub fn find_group_coordinator(client: &mut WireClient, group: &str) -> (i16, i32, i32) {
    let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())).with_key_type(0);
    let response = client.send(&request, 3);
    (response.error_code, response.node_id.0, response.port)
}

/// Waits until the coordinator of `group` is found and has loaded the group's
/// `__consumer_offsets` partition (an OffsetFetch of the group succeeds).
pub fn wait_for_group_coordinator(addr: SocketAddr, group: &str) {
    let mut client = WireClient::connect(addr);
    super::wait_for("the group coordinator to be available", Duration::from_secs(60), || {
        let (error, _, _) = find_group_coordinator(&mut client, group);
        (error == 0 && try_offset_fetch(&mut client, group, "coordinator-probe", 0).is_ok()).then_some(())
    });
}

/// A JoinGroup (v5) of a consumer-type member; blocks until the broker answers
/// (a rebalance completes or the join is refused).
pub fn join_group(
    client: &mut WireClient,
    group: &str,
    member_id: &str,
    protocol_type: &str,
    protocols: &[&str],
) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_protocol_type(StrBytes::from_string(protocol_type.to_string()))
        .with_protocols(
            protocols
                .iter()
                .map(|name| {
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_string(name.to_string()))
                        .with_metadata(Bytes::from_static(b"\x00\x01"))
                })
                .collect(),
        );
    client.send(&request, JOIN_GROUP_VERSION)
}

/// Joins `group` as its only member: the first JoinGroup gets MEMBER_ID_REQUIRED
/// and a member id, the second completes the rebalance. Returns (member id, generation).
pub fn join_group_as_leader(client: &mut WireClient, group: &str) -> (String, i32) {
    let first = join_group(client, group, "", "consumer", &["range"]);
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code(), "first JoinGroup of {group} (v5)");
    let member_id = first.member_id.to_string();
    assert!(!member_id.is_empty(), "MEMBER_ID_REQUIRED comes with a member id");
    let second = join_group(client, group, &member_id, "consumer", &["range"]);
    assert_eq!(second.error_code, 0, "JoinGroup of {group} with the assigned member id");
    assert_eq!(second.leader.to_string(), member_id, "the only member leads the group");
    (member_id, second.generation_id)
}

/// SyncGroup (v3) as the leader, giving itself `assignment`; returns (error code, its assignment).
pub fn sync_group(
    client: &mut WireClient,
    group: &str,
    member_id: &str,
    generation: i32,
    assignment: &[u8],
) -> (i16, Bytes) {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member_id.to_string()))
                .with_assignment(Bytes::copy_from_slice(assignment)),
        ]);
    let response = client.send(&request, SYNC_GROUP_VERSION);
    (response.error_code, response.assignment)
}

/// Heartbeat (v3); returns its error code.
pub fn heartbeat(client: &mut WireClient, group: &str, member_id: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member_id.to_string()));
    client.send(&request, HEARTBEAT_VERSION).error_code
}

/// An OffsetCommit of one partition's offset with `metadata`, as `member`
/// (member id, generation; `("", -1)` commits for a group with no members).
pub fn offset_commit_request(
    group: &str,
    (member_id, generation): (&str, i32),
    topic: &str,
    partition: i32,
    (offset, metadata): (i64, &str),
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(topic_name(topic)).with_partitions(vec![
            OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(StrBytes::from_string(metadata.to_string()))),
        ])])
}

/// OffsetCommit (v8) of one partition's offset with `metadata`, as `member`
/// (member id, generation); returns the partition's error code.
pub fn offset_commit(
    client: &mut WireClient,
    group: &str,
    member: (&str, i32),
    topic: &str,
    partition: i32,
    (offset, metadata): (i64, &str),
) -> i16 {
    let request = offset_commit_request(group, member, topic, partition, (offset, metadata));
    let response = client.send(&request, OFFSET_COMMIT_VERSION);
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .unwrap_or_else(|| panic!("OffsetCommit for {group} answered no partition"));
    p.error_code
}

/// OffsetFetch (v7) of partitions `0..partitions`: (offset, metadata) each,
/// offset -1 when nothing is committed; `Err` with the first error code.
pub fn try_offset_fetch(
    client: &mut WireClient,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<BTreeMap<i32, (i64, String)>, i16> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes((0..partitions).collect()),
        ]));
    let response = client.send(&request, OFFSET_FETCH_VERSION);
    if response.error_code != 0 {
        return Err(response.error_code);
    }
    let mut out = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(p.error_code);
            }
            out.insert(
                p.partition_index,
                (p.committed_offset, p.metadata.as_ref().map(|m| m.to_string()).unwrap_or_default()),
            );
        }
    }
    Ok(out)
}

/// [`try_offset_fetch`], retried while the coordinator is loading or not yet
/// available (as clients do); panics on any other error.
pub fn offset_fetch(
    client: &mut WireClient,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, (i64, String)> {
    let retriable = [
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::CoordinatorNotAvailable.code(),
        ResponseError::NotCoordinator.code(),
    ];
    super::wait_for(&format!("OffsetFetch of {group} to be answered"), Duration::from_secs(60), || {
        match try_offset_fetch(client, group, topic, partitions) {
            Ok(offsets) => Some(offsets),
            Err(code) if retriable.contains(&code) => None,
            Err(code) => panic!("OffsetFetch of {group} {topic}: error code {code}"),
        }
    })
}
