//! Errors of the replication layer: a replica asked to do what its role does
//! not allow, an acks=all produce that could not be committed, or the log's
//! own errors. The protocol edge maps each to its Kafka error code.

use crate::log::{LogError, TopicPartition};

/// What went wrong in a partition replica.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// This broker does not lead the partition (it follows, or no leader is known).
    #[error("this broker does not lead partition {partition} ({reason}); refresh metadata and retry on the leader")]
    NotLeader {
        /// The partition.
        partition: TopicPartition,
        /// Its role here.
        reason: String,
    },
    /// The ISR is smaller than `min.insync.replicas`: nothing was written.
    #[error(
        "partition {partition} has {isr} in-sync replicas, fewer than min.insync.replicas={min}; \
         the records were not written (wait for followers to catch up, or lower min.insync.replicas)"
    )]
    NotEnoughReplicas {
        /// The partition.
        partition: TopicPartition,
        /// In-sync replicas now.
        isr: usize,
        /// `min.insync.replicas`.
        min: usize,
    },
    /// The records were written but the ISR shrank below `min.insync.replicas`
    /// before they were committed.
    #[error(
        "the records were written to {partition} but its ISR shrank to {isr}, below min.insync.replicas={min}, \
         before they were committed"
    )]
    NotEnoughReplicasAfterAppend {
        /// The partition.
        partition: TopicPartition,
        /// In-sync replicas when the records were committed.
        isr: usize,
        /// `min.insync.replicas`.
        min: usize,
    },
    /// The records were written but the ISR did not have them all within the
    /// produce request's timeout.
    #[error("the records were written to {partition} but not replicated to the whole ISR within {timeout_ms} ms")]
    CommitTimeout {
        /// The partition.
        partition: TopicPartition,
        /// The request's timeout.
        timeout_ms: u64,
    },
    /// DeleteRecords asked for an offset beyond the high watermark (or negative).
    #[error(
        "cannot delete the records of {partition} below offset {offset}: it must lie between 0 and the \
         high watermark {high_watermark} (or be -1 for the high watermark)"
    )]
    DeleteBeyondHighWatermark {
        /// The partition.
        partition: TopicPartition,
        /// The offset asked for.
        offset: i64,
        /// The high watermark.
        high_watermark: i64,
    },
    /// DeleteRecords on a topic whose cleanup policy does not delete.
    #[error("records of {partition} cannot be deleted: its topic's cleanup.policy is compact without delete")]
    DeleteOnCompactedTopic {
        /// The partition.
        partition: TopicPartition,
    },
    /// DeleteRecords moved the leader's log start offset, but not every
    /// in-sync follower's within the request's timeout.
    #[error(
        "the log start offset of {partition} moved to {offset} on the leader, but not on every in-sync \
         replica within {timeout_ms} ms"
    )]
    LowWatermarkTimeout {
        /// The partition.
        partition: TopicPartition,
        /// The deleted-to offset.
        offset: i64,
        /// The request's timeout.
        timeout_ms: u64,
    },
    /// A follower's fetcher acted for a leader epoch the replica has left.
    #[error("partition {partition} no longer follows at leader epoch {leader_epoch}")]
    StaleFetcher {
        /// The partition.
        partition: TopicPartition,
        /// The epoch the fetcher was started for.
        leader_epoch: i32,
    },
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
}
