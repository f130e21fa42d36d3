//! Transactions at the wire level: transactional record batches, Produce
//! with a transactional id, WriteTxnMarkers, Fetch and ListOffsets with an
//! isolation level, DescribeProducers — and what a read_committed consumer
//! makes of a fetch (Kafka's consumer rule: records of an aborted
//! transaction are dropped from its first offset to its ABORT marker;
//! control records are never shown).

use std::collections::{BTreeSet, HashSet};
use std::net::ToSocketAddrs;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::PartitionResponse as ProducersPartition;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, BrokerId, DescribeProducersRequest, DescribeTransactionsRequest, EndTxnRequest,
    FetchRequest, FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest, ProducerId,
    TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::wait_for;
use super::wire::{WireClient, topic_name};

/// `isolation_level` values.
pub const READ_UNCOMMITTED: i8 = 0;
pub const READ_COMMITTED: i8 = 1;

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 11;
const LIST_OFFSETS_VERSION: i16 = 5;
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
const DESCRIBE_PRODUCERS_VERSION: i16 = 0;

/// One uncompressed transactional RecordBatch v2 of `values` (keys `key-<i>`).
pub fn txn_batch(values: &[&str], producer_id: i64, epoch: i16, base_sequence: i32) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_sequence + i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("encode a transactional batch");
    buf.freeze()
}

/// Produces `records` to one partition with acks=all, under
/// `transactional_id` if any; returns the partition's response.
pub fn produce_as(
    client: &mut WireClient,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    produce_at(client, PRODUCE_VERSION, transactional_id, topic, partition, records)
}

/// [`produce_as`] at Produce `version` (12: transaction.version 2, the
/// partition is added to the transaction by the produce).
pub fn produce_at(
    client: &mut WireClient,
    version: i16,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let request = ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|id| TransactionalId(StrBytes::from_string(id.to_owned()))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![
            PartitionProduceData::default().with_index(partition).with_records(Some(records)),
        ])]);
    let response = client.send(&request, version);
    response
        .responses
        .into_iter()
        .next()
        .and_then(|t| t.partition_responses.into_iter().next())
        .expect("Produce answered the partition")
}

/// A marker for WriteTxnMarkers: (producer id, epoch, commit?, coordinator epoch, topic, partitions).
pub fn marker(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    topic: &str,
    partitions: &[i32],
) -> WritableTxnMarker {
    WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_transaction_result(commit)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(vec![
            WritableTxnMarkerTopic::default().with_name(topic_name(topic)).with_partition_indexes(partitions.to_vec()),
        ])
}

/// WriteTxnMarkers; returns per marker, per partition, (partition, error code).
pub fn write_txn_markers(client: &mut WireClient, markers: Vec<WritableTxnMarker>) -> Vec<Vec<(i32, i16)>> {
    let response = client.send(&WriteTxnMarkersRequest::default().with_markers(markers), WRITE_TXN_MARKERS_VERSION);
    response
        .markers
        .iter()
        .map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.error_code))).collect())
        .collect()
}

/// FindCoordinator(TRANSACTION) for `id` through `client`, then
/// InitProducerId (v4) with a transaction timeout of `timeout_ms` at the
/// coordinator, retried while it is being created or loaded: a client of
/// the coordinator (for AddPartitionsToTxn and EndTxn) and the (producer
/// id, epoch).
pub fn init_transactional(client: &mut WireClient, id: &str, timeout_ms: i32) -> (WireClient, (i64, i16)) {
    let retriable = [
        ResponseError::CoordinatorNotAvailable.code(),
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::NotCoordinator.code(),
        ResponseError::ConcurrentTransactions.code(),
    ];
    wait_for("the transaction coordinator to answer InitProducerId", Duration::from_secs(120), || {
        let find = FindCoordinatorRequest::default().with_key(StrBytes::from_string(id.to_owned())).with_key_type(1);
        let found = client.send(&find, 3);
        if found.error_code != 0 {
            return None;
        }
        let port = u16::try_from(found.port).expect("a coordinator port");
        let addr = (found.host.as_str(), port).to_socket_addrs().ok()?.next()?;
        let mut coordinator = WireClient::connect(addr);
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(transactional_id(id)))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = coordinator.send(&request, 4);
        if retriable.contains(&r.error_code) {
            return None;
        }
        assert_eq!(r.error_code, 0, "InitProducerId for {id}");
        Some((coordinator, (r.producer_id.0, r.producer_epoch)))
    })
}

/// AddPartitionsToTxn (v3, the client form) of `topic`'s `partitions`: the
/// error code per partition, in the order asked.
pub fn add_partitions_to_txn(
    client: &mut WireClient,
    id: &str,
    (producer_id, epoch): (i64, i16),
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(transactional_id(id))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default().with_name(topic_name(topic)).with_partitions(partitions.to_vec()),
        ]);
    let r = client.send(&request, 3);
    partitions
        .iter()
        .map(|p| {
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| t.results_by_partition.iter())
                .find(|x| x.partition_index == *p)
                .map_or(-1, |x| x.partition_error_code)
        })
        .collect()
}

/// EndTxn (v3): the error code.
pub fn end_txn(client: &mut WireClient, id: &str, (producer_id, epoch): (i64, i16), commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(transactional_id(id))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    client.send(&request, 3).error_code
}

/// The state DescribeTransactions reports for `id` ("" when refused).
pub fn txn_state(client: &mut WireClient, id: &str) -> String {
    let r = client.send(&DescribeTransactionsRequest::default().with_transactional_ids(vec![transactional_id(id)]), 0);
    r.transaction_states
        .first()
        .filter(|s| s.error_code == 0)
        .map_or(String::new(), |s| s.transaction_state.to_string())
}

fn transactional_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_owned()))
}

/// One Fetch of a partition from `offset` with `isolation_level`, not waiting.
pub fn fetch_with(client: &mut WireClient, topic: &str, partition: i32, offset: i64, isolation: i8) -> PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(16 << 20)
        .with_isolation_level(isolation)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 << 20),
            ])]);
    let response = client.send(&request, FETCH_VERSION);
    assert_eq!(response.error_code, 0, "Fetch top-level error");
    response.responses.into_iter().next().and_then(|t| t.partitions.into_iter().next()).expect("Fetch answered")
}

/// A fetched record: offset, producer id, value; control records are marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub offset: i64,
    pub producer_id: i64,
    pub control: bool,
    pub value: String,
}

/// The records of a fetch response, decoded.
pub fn decode(data: &PartitionData) -> Vec<Fetched> {
    let mut bytes = data.records.clone().unwrap_or_default();
    if bytes.is_empty() {
        return Vec::new();
    }
    let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("fetched batches decode");
    sets.iter()
        .flat_map(|s| s.records.iter())
        .map(|r| Fetched {
            offset: r.offset,
            producer_id: r.producer_id,
            control: r.control,
            value: r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default(),
        })
        .collect()
}

/// A partition read from offset 0 to its end for one isolation level, in
/// as many fetches as it takes (a fetch stops at a segment's end).
#[derive(Debug, Clone)]
pub struct PartitionRead {
    /// Every record returned, in offset order.
    pub records: Vec<Fetched>,
    /// The aborted transactions listed, as (producer id, first offset).
    pub aborted: Vec<(i64, i64)>,
    /// The last stable offset and high watermark of the last fetch.
    pub last_stable_offset: i64,
    pub high_watermark: i64,
}

/// Reads a partition from 0 until the LSO (read_committed) or the high
/// watermark (read_uncommitted).
pub fn read_partition(client: &mut WireClient, topic: &str, partition: i32, isolation: i8) -> PartitionRead {
    try_read_partition(client, topic, partition, isolation)
        .unwrap_or_else(|code| panic!("Fetch {topic}-{partition} failed with error code {code}"))
}

/// [`read_partition`], giving the first fetch error code instead of panicking.
pub fn try_read_partition(
    client: &mut WireClient,
    topic: &str,
    partition: i32,
    isolation: i8,
) -> Result<PartitionRead, i16> {
    let mut read =
        PartitionRead { records: Vec::new(), aborted: Vec::new(), last_stable_offset: -1, high_watermark: -1 };
    let mut next = 0;
    loop {
        let data = fetch_with(client, topic, partition, next, isolation);
        if data.error_code != 0 {
            return Err(data.error_code);
        }
        read.last_stable_offset = data.last_stable_offset;
        read.high_watermark = data.high_watermark;
        for t in aborted_list(&data) {
            if !read.aborted.contains(&t) {
                read.aborted.push(t);
            }
        }
        let records = decode(&data);
        let end = if isolation == READ_COMMITTED { data.last_stable_offset } else { data.high_watermark };
        for r in records {
            if r.offset >= next {
                next = r.offset + 1;
                read.records.push(r);
            }
        }
        if next >= end {
            return Ok(read);
        }
        assert!(
            !data.records.as_ref().is_none_or(|r| r.is_empty()),
            "Fetch {topic}-{partition} at {next} below {end} was empty"
        );
    }
}

impl PartitionRead {
    /// What a read_committed consumer shows: Kafka's rule — a producer
    /// listed in `aborted_transactions` has its records dropped from the
    /// listed first offset until its next control record; control records
    /// are never shown.
    pub fn committed_view(&self) -> Vec<String> {
        let mut pending: Vec<(i64, i64)> =
            self.aborted.iter().map(|(pid, first)| (*first, *pid)).collect::<BTreeSet<_>>().into_iter().collect();
        let mut dropping: HashSet<i64> = HashSet::new();
        let mut out = Vec::new();
        for r in &self.records {
            while let Some(&(first, pid)) = pending.first() {
                if first > r.offset {
                    break;
                }
                dropping.insert(pid);
                pending.remove(0);
            }
            if r.control {
                dropping.remove(&r.producer_id);
                continue;
            }
            if !dropping.contains(&r.producer_id) {
                out.push(r.value.clone());
            }
        }
        out
    }

    /// Every data record's value, control records left out.
    pub fn all_values(&self) -> Vec<String> {
        self.records.iter().filter(|r| !r.control).map(|r| r.value.clone()).collect()
    }
}

/// The aborted transactions of a fetch response as (producer id, first offset).
pub fn aborted_list(data: &PartitionData) -> Vec<(i64, i64)> {
    data.aborted_transactions.iter().flatten().map(|t| (t.producer_id.0, t.first_offset)).collect()
}

/// ListOffsets latest with `isolation_level`: (error code, offset).
pub fn latest_with(client: &mut WireClient, topic: &str, partition: i32, isolation: i8) -> (i16, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![
            ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(-1),
        ])]);
    let response = client.send(&request, LIST_OFFSETS_VERSION);
    let p = response.topics.first().and_then(|t| t.partitions.first()).expect("ListOffsets answered");
    (p.error_code, p.offset)
}

/// DescribeProducers of one partition.
pub fn describe_producers(client: &mut WireClient, topic: &str, partition: i32) -> ProducersPartition {
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default().with_name(topic_name(topic)).with_partition_indexes(vec![partition]),
    ]);
    let response = client.send(&request, DESCRIBE_PRODUCERS_VERSION);
    response
        .topics
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .expect("DescribeProducers answered")
}
