//! Transaction markers as partition leader: the one door through which
//! COMMIT/ABORT markers are written — the internal `TxnMarkers` gRPC service
//! (the transaction coordinator on another broker), the Kafka API
//! WriteTxnMarkers (`kafka-transactions.sh abort`) and the coordinator on
//! this broker all call [`write_txn_markers`].
//!
//! Each (marker, partition) is appended as a control batch by this broker
//! as leader (refused when it does not lead, when the ISR is below
//! `min.insync.replicas`, or when the marker's coordinator epoch is older
//! than the partition has seen for the producer), then answered once the
//! high watermark has passed it — committed, so a new leader has it too —
//! or with a Kafka error code. The markers of one call are written
//! concurrently; a partition's markers in request order.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use super::{Partition, ReplicaError, ReplicaManager};
use crate::log::control::EndTxnMarker;
use crate::log::{LogError, TopicPartition};

/// A marker to write for one producer on some partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerWrite {
    /// The producer.
    pub producer_id: i64,
    /// The producer epoch the marker carries.
    pub producer_epoch: i16,
    /// COMMIT (else ABORT).
    pub committed: bool,
    /// The transaction coordinator's epoch.
    pub coordinator_epoch: i32,
    /// The transaction's transaction.version (0 when unknown, as from the
    /// Kafka API WriteTxnMarkers v1): from 2 the marker's epoch is the bumped
    /// one, and the partition refuses it when the producer already has a
    /// transaction open at that epoch.
    pub transaction_version: i16,
    /// Where to write it.
    pub partitions: Vec<TopicPartition>,
}

/// The answer for one partition of a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerOutcome {
    /// The partition.
    pub partition: TopicPartition,
    /// A Kafka error code; 0 when the marker is written and committed.
    pub error_code: i16,
    /// What went wrong (empty on success).
    pub message: String,
}

/// What the door needs from the broker beyond its replicas, and the hook for
/// what a committed marker must set off.
pub trait MarkerContext: Send + Sync {
    /// Whether the partition exists in the cluster metadata (a partition
    /// this broker does not host is then NOT_LEADER_OR_FOLLOWER, else
    /// UNKNOWN_TOPIC_OR_PARTITION).
    fn partition_exists(&self, partition: &TopicPartition) -> bool;

    /// The topic's `min.insync.replicas`.
    fn min_insync_replicas(&self, topic: &str) -> usize;

    /// Called once a marker is committed on `partition` (before it is
    /// answered). A marker on a `__consumer_offsets` partition completes
    /// the producer's pending transactional offset commits there.
    fn marker_committed(&self, _marker: &MarkerWrite, _partition: &TopicPartition) {}
}

/// Writes `markers` to the partitions this broker leads and answers, per
/// marker in request order, per partition in its order: 0 once the marker is
/// committed, else NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
/// TRANSACTION_COORDINATOR_FENCED, INVALID_PRODUCER_EPOCH,
/// NOT_ENOUGH_REPLICAS(_AFTER_APPEND), REQUEST_TIMED_OUT (not committed
/// within `timeout`; the coordinator retries), KAFKA_STORAGE_ERROR.
pub async fn write_txn_markers(
    replicas: &ReplicaManager,
    context: Arc<dyn MarkerContext>,
    markers: Vec<MarkerWrite>,
    timeout: Duration,
) -> Vec<Vec<MarkerOutcome>> {
    // Where each (marker, partition) stands: refused at once, or hosted here.
    let mut targets: Vec<(usize, TopicPartition, Result<Arc<Partition>, MarkerOutcome>)> = Vec::new();
    for (i, marker) in markers.iter().enumerate() {
        for tp in &marker.partitions {
            let target = match replicas.get(tp) {
                Some(partition) => Ok(partition),
                None if context.partition_exists(tp) => Err(outcome(
                    tp,
                    ResponseError::NotLeaderOrFollower,
                    format!("broker {} is not a replica of {tp}; refresh metadata", replicas.node_id()),
                )),
                None => {
                    Err(outcome(tp, ResponseError::UnknownTopicOrPartition, format!("partition {tp} does not exist")))
                }
            };
            targets.push((i, tp.clone(), target));
        }
    }
    // Appends (blocking file I/O) in request order, then one wait for all.
    let appends = {
        let markers = markers.clone();
        let context = context.clone();
        let hosted: Vec<(usize, Option<Arc<Partition>>)> =
            targets.iter().map(|(i, _, t)| (*i, t.as_ref().ok().cloned())).collect();
        let appended = tokio::task::spawn_blocking(move || {
            hosted
                .into_iter()
                .map(|(i, partition)| {
                    let partition = partition?;
                    let m = &markers[i];
                    let marker = EndTxnMarker { committed: m.committed, coordinator_epoch: m.coordinator_epoch };
                    let min_insync = context.min_insync_replicas(&partition.topic_partition().topic);
                    let now = super::now_ms();
                    let append = partition.append_txn_marker(
                        m.producer_id,
                        m.producer_epoch,
                        marker,
                        m.transaction_version,
                        now,
                        min_insync,
                    );
                    Some(append.map(|a| (a, min_insync)))
                })
                .collect::<Vec<_>>()
        })
        .await;
        match appended {
            Ok(appended) => appended,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    };
    let waits = targets.iter().zip(appends).map(|((i, tp, target), append)| {
        let context = context.clone();
        let marker = &markers[*i];
        async move {
            let partition = match target {
                Ok(partition) => partition,
                Err(answer) => return answer.clone(),
            };
            let (append, min_insync) = match append {
                Some(Ok(done)) => done,
                Some(Err(e)) => return refused(tp, &e),
                None => return outcome(tp, ResponseError::UnknownServerError, "no append was attempted".to_owned()),
            };
            let required = append.info.last_offset + 1;
            if let Err(e) = partition.wait_for_commit(required, append.leader_epoch, min_insync, timeout).await {
                return refused(tp, &e);
            }
            context.marker_committed(marker, tp);
            MarkerOutcome { partition: tp.clone(), error_code: 0, message: String::new() }
        }
    });
    let mut results = futures::future::join_all(waits).await.into_iter();
    markers.iter().map(|m| (0..m.partitions.len()).filter_map(|_| results.next()).collect()).collect()
}

fn outcome(tp: &TopicPartition, error: ResponseError, message: String) -> MarkerOutcome {
    MarkerOutcome { partition: tp.clone(), error_code: error.code(), message }
}

/// The answer for a marker the replica refused or could not commit.
fn refused(tp: &TopicPartition, e: &ReplicaError) -> MarkerOutcome {
    tracing::debug!(partition = %tp, error = %e, "transaction marker not written");
    let error = match e {
        ReplicaError::NotLeader { .. } | ReplicaError::StaleFetcher { .. } => ResponseError::NotLeaderOrFollower,
        ReplicaError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        ReplicaError::NotEnoughReplicasAfterAppend { .. } => ResponseError::NotEnoughReplicasAfterAppend,
        ReplicaError::CommitTimeout { .. } => ResponseError::RequestTimedOut,
        ReplicaError::Log(LogError::CoordinatorFenced { .. }) => ResponseError::TransactionCoordinatorFenced,
        ReplicaError::Log(LogError::InvalidProducerEpoch { .. }) => ResponseError::InvalidProducerEpoch,
        ReplicaError::Log(LogError::NotLeader { .. }) => ResponseError::NotLeaderOrFollower,
        ReplicaError::Log(_) => ResponseError::KafkaStorageError,
        // DeleteRecords' refusals: a marker append never meets them.
        ReplicaError::DeleteBeyondHighWatermark { .. }
        | ReplicaError::DeleteOnCompactedTopic { .. }
        | ReplicaError::LowWatermarkTimeout { .. } => ResponseError::UnknownServerError,
    };
    outcome(tp, error, e.to_string())
}
