//! The transaction coordinator: Kafka's transactional ids, their producer
//! ids and epochs, and the two-phase end of a transaction.
//!
//! A transactional id is coordinated by the leader of its
//! `__transaction_state` partition (Java's `String.hashCode` of the id,
//! made non-negative, modulo the partition count — as Kafka does, and as
//! groups are placed on `__consumer_offsets`). The pieces, shaped like the
//! group coordinator's:
//!
//! - [`state`] — the state machine of one id (Empty, Ongoing, PrepareCommit,
//!   PrepareAbort, CompleteCommit, CompleteAbort, PrepareEpochFence, Dead),
//!   epochs, fencing, timeouts. Plain data and functions; tested without I/O.
//! - [`codec`] — Kafka's `__transaction_state` key and value formats
//!   (TransactionLogKey, TransactionLogValue v0/v1), byte for byte.
//! - [`coordinator`] — the async shell: the ids of the partitions this
//!   broker leads, loading on leadership, writing transits to the log, and
//!   sending markers to partition leaders until every one is written.
//! - [`markers`] — the client side of the internal `TxnMarkers` service.
//! - [`service`] — the internal `TxnCoordinator` service: KIP-890
//!   verification of a transactional produce for partition leaders, and at
//!   transaction.version 2 the implicit add of Produce v12 / TxnOffsetCommit v5.
//!
//! Invariants: the in-memory state of an id only changes once its record is
//! replicated (a transit is pending until then, and a concurrent request
//! gets CONCURRENT_TRANSACTIONS); a transaction in PrepareCommit or
//! PrepareAbort always reaches CompleteCommit/CompleteAbort — its markers are
//! retried until written, by this coordinator or, after a failover, by the
//! next one, which finds the Prepare* record on load; no lock is held across
//! an `.await`.

pub mod codec;
pub mod coordinator;
pub mod markers;
pub mod service;
pub mod state;

use crate::config::Settings;
use crate::config::settings;
pub use coordinator::TxnCoordinator;
use state::TxnState;

/// The internal topic holding transaction state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

/// A transactional request that was refused; mapped to a Kafka error code at the protocol edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// An empty transactional id, or a request that makes no sense.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The requested transaction timeout is outside 1..=`transaction.max.timeout.ms`.
    #[error(
        "transaction.timeout.ms {requested} is outside 1..={max} ms (the broker's transaction.max.timeout.ms); \
         lower the producer's transaction.timeout.ms"
    )]
    InvalidTransactionTimeout { requested: i32, max: i32 },
    /// `__transaction_state` does not exist yet, its partition has no
    /// leader, or a write to it was not replicated in time.
    #[error(
        "the transaction coordinator is not available ({TXN_STATE_TOPIC} is being created, has no leader, or a \
         write to it was not confirmed by its in-sync replicas in time); retry"
    )]
    CoordinatorNotAvailable,
    /// This broker leads the id's partition and is loading it.
    #[error("the transaction coordinator is loading the id's {TXN_STATE_TOPIC} partition; retry")]
    CoordinatorLoadInProgress,
    /// This broker does not lead the id's partition.
    #[error("this broker is not the transaction coordinator of this id; find the coordinator again")]
    NotCoordinator,
    /// Another change of the id is being written, or its last transaction is completing.
    #[error("another operation on this transactional id is in progress; retry")]
    ConcurrentTransactions,
    /// The producer's epoch is not the id's current one: a newer producer took over.
    #[error("the producer was fenced: a newer producer with the same transactional.id has a higher epoch")]
    ProducerFenced,
    /// The producer id does not own the transactional id (or the id is unknown).
    #[error("the producer id does not match the transactional id's producer id (or the id is unknown)")]
    InvalidProducerIdMapping,
    /// The request does not fit the transaction's state.
    #[error("{action} is not valid in transaction state {}", state.name())]
    InvalidTxnState { state: TxnState, action: &'static str },
    /// DescribeTransactions of an id the coordinator does not know.
    #[error("the transactional id is not known to its coordinator")]
    TransactionalIdNotFound,
    /// A partition of AddPartitionsToTxn that does not exist.
    #[error("topic partition {topic}-{partition} does not exist")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    /// The request failed because another partition of it failed (Kafka's OPERATION_NOT_ATTEMPTED).
    #[error("not attempted: another partition of the request failed")]
    OperationNotAttempted,
    /// No producer id could be allocated, or `__transaction_state` could not be written.
    #[error("{0}")]
    Storage(String),
}

/// Coordinator settings, by their Kafka names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`.
    pub partitions: i32,
    /// `transaction.state.log.replication.factor` (capped to the controller quorum's size when created).
    pub replication_factor: i16,
    /// `transaction.state.log.min.isr`.
    pub min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub segment_bytes: i64,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_interval_ms: u64,
    /// The finalized `transaction.version` feature level (0..=2).
    pub transaction_version: i16,
}

impl Default for TxnConfig {
    fn default() -> TxnConfig {
        TxnConfig {
            partitions: 50,
            replication_factor: 3,
            min_isr: 2,
            segment_bytes: 104_857_600,
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
            transaction_version: 2,
        }
    }
}

impl TxnConfig {
    /// Reads the settings; one the broker's table does not define keeps Kafka's default.
    pub fn from_settings(s: &Settings) -> TxnConfig {
        let d = TxnConfig::default();
        let get = |name: &str, default: i64| -> i64 {
            if settings::find(s.table(), name).is_some() { s.long(name) } else { default }
        };
        let clamp_i32 = |v: i64| v.clamp(1, i32::MAX as i64) as i32;
        TxnConfig {
            partitions: clamp_i32(get("transaction.state.log.num.partitions", d.partitions as i64)),
            replication_factor: get("transaction.state.log.replication.factor", d.replication_factor as i64)
                .clamp(1, i16::MAX as i64) as i16,
            min_isr: clamp_i32(get("transaction.state.log.min.isr", d.min_isr as i64)),
            segment_bytes: get("transaction.state.log.segment.bytes", d.segment_bytes).max(14),
            max_timeout_ms: clamp_i32(get("transaction.max.timeout.ms", d.max_timeout_ms as i64)),
            id_expiration_ms: get("transactional.id.expiration.ms", d.id_expiration_ms).max(1),
            abort_timed_out_interval_ms: get(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                d.abort_timed_out_interval_ms as i64,
            )
            .max(1) as u64,
            remove_expired_interval_ms: get(
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                d.remove_expired_interval_ms as i64,
            )
            .max(1) as u64,
            transaction_version: get("transaction.version", d.transaction_version as i64).clamp(0, 2) as i16,
        }
    }

    /// KIP-890 part 2 (an epoch bump per transaction, partitions added by
    /// Produce v12 and TxnOffsetCommit v5) is finalized.
    pub fn tv2(&self) -> bool {
        self.transaction_version >= 2
    }
}

/// Follows leadership of the `__transaction_state` partitions (called by the
/// publisher whenever the topic's image changes): attaches the coordinator
/// to its storage and marker sender on first sight of the topic, then loads
/// the partitions this broker leads (none before its registration is in the
/// image) and drops the others. Blocking.
pub fn follow_leadership(
    broker: &std::sync::Arc<crate::broker::Broker>,
    partitions: &[crate::controller::image::PartitionState],
    me: i32,
    registered: bool,
) {
    let txns = &broker.txns;
    if txns.partition_count().is_none() {
        // Coordinator writes need the topic's min.insync.replicas
        // (transaction.state.log.min.isr, capped by its replication factor).
        let min_insync = crate::admin::topic_min_insync_replicas(broker, TXN_STATE_TOPIC);
        let store = std::sync::Arc::new(
            crate::group::store::BrokerOffsetsLog::for_topic(
                std::sync::Arc::downgrade(&broker.replicas),
                TXN_STATE_TOPIC,
            )
            .with_min_insync(min_insync),
        );
        txns.attach(store, partitions.len(), markers::GrpcMarkers::new(std::sync::Arc::downgrade(broker)));
    }
    for (index, p) in partitions.iter().enumerate() {
        txns.set_leadership(index, registered && p.leader == me, p.leader_epoch);
    }
}

/// Creates `__transaction_state` (compacted, `transaction.state.log.*`) in
/// the background unless it exists or a creation is already under way, as
/// Kafka does on the first FindCoordinator for a transactional id. The
/// replication factor is capped to the controller quorum's size
/// ([`crate::membership::internal_topic_replication`]), and the creation
/// waits until that many brokers are live (like `__consumer_offsets`).
pub fn ensure_topic(broker: &std::sync::Arc<crate::broker::Broker>) {
    use std::sync::atomic::Ordering;
    if broker.metadata.read().topic(TXN_STATE_TOPIC).is_some()
        || broker.txns.creating_topic.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let broker = broker.clone();
    tokio::spawn(async move {
        let config = *broker.txns.config();
        let wanted = crate::membership::internal_topic_replication(&broker, config.replication_factor);
        let live = broker.controller.image().brokers.values().filter(|b| !b.fenced).count();
        if live >= wanted {
            let request = crate::admin::NewTopic {
                name: TXN_STATE_TOPIC.to_string(),
                num_partitions: config.partitions,
                replication_factor: wanted as i16,
                assignment: Vec::new(),
                configs: vec![
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    ("compression.type".to_string(), "uncompressed".to_string()),
                    ("unclean.leader.election.enable".to_string(), "false".to_string()),
                    ("min.insync.replicas".to_string(), (config.min_isr as usize).min(wanted).to_string()),
                    ("segment.bytes".to_string(), config.segment_bytes.to_string()),
                ],
            };
            match crate::admin::create_topic(&broker, request, false).await {
                Ok(_) => tracing::info!("created {TXN_STATE_TOPIC}"),
                Err(crate::admin::AdminError::Refused(crate::controller::CommandError::TopicAlreadyExists(_))) => {}
                Err(e) => tracing::warn!(error = %e, "cannot create {TXN_STATE_TOPIC} yet"),
            }
        }
        broker.txns.creating_topic.store(false, Ordering::Release);
    });
}

/// Kafka's `partitionFor(transactionalId)`: `Utils.abs(id.hashCode()) % partitions`.
pub fn partition_for(transactional_id: &str, partitions: usize) -> usize {
    crate::group::partition_for(transactional_id, partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_have_kafkas_defaults() {
        assert_eq!(TxnConfig::from_settings(&Settings::broker_defaults()), TxnConfig::default());
    }

    #[test]
    fn id_partition_is_kafkas() {
        // Same hash as groups: "hello".hashCode() = 99162322.
        assert_eq!(partition_for("hello", 50), 99162322 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
