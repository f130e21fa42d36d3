//! Produce: validates and appends each partition's record batches as leader.
//!
//! Only the partition's leader takes records; a replica that follows (or a
//! broker that does not host the partition) answers NOT_LEADER_OR_FOLLOWER
//! so the client refreshes its metadata. A partition's batches are appended
//! all or nothing (the log validates every batch before writing any).
//!
//! acks=0 gets no response; acks=1 answers once the batches are in the
//! leader's log; acks=-1 first requires an ISR of at least
//! `min.insync.replicas` (NOT_ENOUGH_REPLICAS, nothing written), then waits
//! — without holding a thread — until the high watermark covers the
//! batches, for at most the request's `timeout_ms` (REQUEST_TIMED_OUT). If
//! leadership moves meanwhile the answer is NOT_LEADER_OR_FOLLOWER; if the
//! ISR shrank below `min.insync.replicas` by the time the batches are
//! committed, NOT_ENOUGH_REPLICAS_AFTER_APPEND. A retried idempotent batch
//! already in the log is answered with its original offsets (after the same
//! wait for acks=-1). Keyless records sent to a compacted topic are refused
//! with INVALID_RECORD, one `record_errors` entry per record (Produce v8+).
//!
//! Transactional batches are taken when the request carries a
//! `transactional_id` (a transactional batch without one is refused with
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka does); the log opens the
//! producer's transaction on its first one, and refuses a non-transactional
//! batch while one is open (INVALID_TXN_STATE). The first transactional
//! batch of a producer's transaction on a partition is verified first
//! (KIP-890 part 1, see [`verify`]): the transaction coordinator must
//! confirm the partition is in the producer's ongoing transaction, else
//! the partition is refused and nothing written.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::str_bytes;
use crate::broker::{Broker, now_ms};
use crate::log::LogError;
use crate::log::TopicPartition;
use crate::log::batch::BatchHeader;
use crate::log::error::RecordError;
use crate::log_lines::LineLimit;
use crate::protocol::errors::KafkaError;
use crate::replica::{Partition, ReplicaError};

mod verify;

/// A client sending bad batches must not get a line per partition per request.
static REFUSED_PRODUCE_LOG: LineLimit = LineLimit::new(10);

pub async fn handle(broker: &Arc<Broker>, request: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    // A request refused whole (bad acks) starts no verification.
    let verified = if matches!(acks, -1..=1) {
        verify::verify(broker, &request, version).await
    } else {
        verify::Verified::default()
    };
    let b = broker.clone();
    let key = writer_key(&request);
    let bytes = (request.topic_data.iter().flat_map(|t| &t.partition_data))
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let writer = broker.replicas.writer();
    let (mut responses, commits) = writer.run_or_resume(key, bytes, move || append_all(&b, request, verified)).await;
    if acks == 0 {
        return None;
    }
    if !commits.is_empty() {
        let _waiting = broker.metrics.enter_purgatory(crate::metrics::Purgatory::Produce);
        let waits =
            commits.iter().map(|c| c.partition.wait_for_commit(c.required, c.leader_epoch, c.min_insync, timeout));
        let results = futures::future::join_all(waits).await;
        for (commit, result) in commits.iter().zip(results) {
            let Err(e) = result else { continue };
            tracing::debug!(partition = %commit.partition.topic_partition(), error = %e, "acks=all produce not committed");
            let k = replica_error(&e);
            let response: &mut PartitionProduceResponse =
                &mut responses[commit.topic].partition_responses[commit.index];
            response.error_code = k.code();
            response.error_message = Some(str_bytes(k.message));
            response.base_offset = -1;
            response.log_append_time_ms = -1;
        }
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// Which log writer thread appends `request`: by its first partition, so
/// one client's requests for the same partitions queue on one thread.
fn writer_key(request: &ProduceRequest) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Some(topic) = request.topic_data.first() {
        topic.name.as_str().hash(&mut h);
        topic.partition_data.first().map(|p| p.index).hash(&mut h);
    }
    h.finish()
}

/// An acks=all append that must be committed before the answer.
struct PendingCommit {
    topic: usize,
    index: usize,
    partition: Arc<Partition>,
    required: i64,
    leader_epoch: i32,
    min_insync: usize,
}

fn append_all(
    broker: &Broker,
    request: ProduceRequest,
    mut verified: verify::Verified,
) -> (Vec<TopicProduceResponse>, Vec<PendingCommit>) {
    let acks_valid = matches!(request.acks, -1..=1);
    let acks_all = request.acks == -1;
    let transactional = request.transactional_id.is_some();
    // Kafka refuses the whole request when a batch is transactional and the
    // request names no transactional id.
    let transactional_records = request
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .any(|p| p.records.as_deref().is_some_and(has_transactional_batch));
    let mut commits = Vec::new();
    let responses = request
        .topic_data
        .into_iter()
        .enumerate()
        .map(|(topic_index, topic)| {
            let name = topic.name.to_string();
            let min_insync = acks_all.then(|| crate::admin::topic_min_insync_replicas(broker, &name));
            let partitions = topic
                .partition_data
                .into_iter()
                .enumerate()
                .map(|(index, p)| {
                    let base = PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1);
                    let fail = |e: KafkaError| {
                        base.clone().with_error_code(e.code()).with_error_message(Some(str_bytes(e.message)))
                    };
                    if !acks_valid {
                        return fail(KafkaError::new(
                            ResponseError::InvalidRequiredAcks,
                            format!("acks={} is invalid; use -1 (all), 0 or 1", request.acks),
                        ));
                    }
                    if transactional_records && !transactional {
                        return fail(KafkaError::new(
                            ResponseError::TransactionalIdAuthorizationFailed,
                            "transactional record batches need the request's transactional_id",
                        ));
                    }
                    if name == crate::group::OFFSETS_TOPIC || name == crate::txn::TXN_STATE_TOPIC {
                        // Only the coordinators write there, as in Kafka.
                        return fail(KafkaError::new(
                            ResponseError::InvalidTopicException,
                            format!("clients cannot produce to the internal topic {name}"),
                        ));
                    }
                    let tp = TopicPartition { topic: name.clone(), partition: p.index };
                    let Some(partition) = broker.partition(&tp) else {
                        return fail(not_hosted(broker, &tp));
                    };
                    let guard = match verified.take(&tp, &partition) {
                        Ok(guard) => guard,
                        Err(e) => return fail(e),
                    };
                    let records = p.records.unwrap_or_default();
                    if records.is_empty() {
                        return fail(KafkaError::new(
                            ResponseError::InvalidRecord,
                            "produce request carries no record batch",
                        ));
                    }
                    match partition.append_client_records(&records, now_ms(), min_insync, guard) {
                        Ok(append) => {
                            let info = &append.info;
                            broker.metrics.record_produce(&name, info.bytes as u64, info.record_count as u64);
                            if let Some(min_insync) = min_insync {
                                commits.push(PendingCommit {
                                    topic: topic_index,
                                    index,
                                    partition: partition.clone(),
                                    required: info.last_offset + 1,
                                    leader_epoch: append.leader_epoch,
                                    min_insync,
                                });
                            }
                            let log_start = partition.log().read().log_start_offset();
                            base.with_base_offset(info.base_offset)
                                .with_log_append_time_ms(info.log_append_time.unwrap_or(-1))
                                .with_log_start_offset(log_start)
                        }
                        Err(e) => {
                            if let Some(left_out) = REFUSED_PRODUCE_LOG.admit() {
                                tracing::warn!(partition = %tp, error = %e, left_out_since_last_line = left_out, "refused produce");
                            }
                            broker.metrics.record_produce_error(&name);
                            let refused = fail(replica_error(&e));
                            match &e {
                                ReplicaError::Log(LogError::InvalidRecords { record_errors }) => {
                                    refused.with_record_errors(record_errors.iter().map(batch_index_error).collect())
                                }
                                _ => refused,
                            }
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partitions)
        })
        .collect();
    (responses, commits)
}

/// Whether any record batch in `records` has the transactional bit (the
/// batches are validated later; this only reads their headers).
fn has_transactional_batch(records: &[u8]) -> bool {
    transactional_batches(records).next().is_some()
}

/// The headers of the v2 transactional batches in `records`, as far as
/// they parse (the batches are validated at the append).
pub(super) fn transactional_batches(records: &[u8]) -> impl Iterator<Item = BatchHeader> + '_ {
    let mut position = Some(0usize);
    std::iter::from_fn(move || {
        let at = position?;
        let header = BatchHeader::parse(records.get(at..)?).ok()?;
        position = match at.checked_add(header.size()) {
            Some(next) if header.batch_length > 0 && next < records.len() => Some(next),
            _ => None,
        };
        Some(header)
    })
    .filter(|h| h.magic == crate::log::batch::MAGIC_V2 && h.is_transactional())
}

/// One refused record as Produce v8+ reports it.
fn batch_index_error(e: &RecordError) -> BatchIndexAndErrorMessage {
    BatchIndexAndErrorMessage::default()
        .with_batch_index(e.batch_index)
        .with_batch_index_error_message(Some(str_bytes(e.message.clone())))
}

/// The error for a partition this broker does not host: unknown to the
/// metadata, or hosted elsewhere (then the client's metadata is stale).
pub(super) fn not_hosted(broker: &Broker, tp: &TopicPartition) -> KafkaError {
    let known = broker
        .metadata
        .read()
        .topic(&tp.topic)
        .is_some_and(|t| tp.partition >= 0 && (tp.partition as usize) < t.partitions.len());
    if known {
        KafkaError::new(
            ResponseError::NotLeaderOrFollower,
            format!("broker {} is not a replica of {tp}; refresh metadata", broker.config.node_id),
        )
    } else {
        KafkaError::new(ResponseError::UnknownTopicOrPartition, format!("partition {tp} does not exist"))
    }
}

/// The Kafka error for a replica's refusal.
pub(super) fn replica_error(e: &ReplicaError) -> KafkaError {
    let error = match e {
        ReplicaError::NotLeader { .. } | ReplicaError::StaleFetcher { .. } => ResponseError::NotLeaderOrFollower,
        ReplicaError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        ReplicaError::NotEnoughReplicasAfterAppend { .. } => ResponseError::NotEnoughReplicasAfterAppend,
        ReplicaError::CommitTimeout { .. } | ReplicaError::LowWatermarkTimeout { .. } => ResponseError::RequestTimedOut,
        ReplicaError::DeleteBeyondHighWatermark { .. } => ResponseError::OffsetOutOfRange,
        ReplicaError::DeleteOnCompactedTopic { .. } => ResponseError::PolicyViolation,
        ReplicaError::Log(log) => return KafkaError::from(log),
    };
    KafkaError::new(error, e.to_string())
}
