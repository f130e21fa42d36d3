//! Errors of the storage engine.
//!
//! Two kinds: input errors (a producer's batch that is corrupt, too large or
//! of an old format; an offset outside the log), which the protocol layer
//! turns into Kafka error codes and which never change the log; and I/O
//! errors, which carry the file they happened on.

use std::path::PathBuf;

/// What went wrong in the log, with the context a reader needs.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record batch is structurally invalid (sizes, counts, offsets).
    #[error("corrupt record batch: {reason}")]
    CorruptBatch {
        /// What exactly is wrong.
        reason: String,
    },
    /// A record batch's CRC-32C does not match its bytes.
    #[error("record batch CRC mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch {
        /// CRC stored in the batch header.
        expected: u32,
        /// CRC computed over the batch.
        actual: u32,
    },
    /// The batch is not RecordBatch v2 (magic 2), the only format stored.
    #[error("unsupported record batch magic {magic}: only magic 2 (Kafka 0.11+ record batches) is accepted")]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// One batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes={max}")]
    RecordBatchTooLarge {
        /// Size of the batch in bytes.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// An idempotent producer's batch does not follow its previous one.
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// The sequence the next batch must start at.
        expected: i32,
        /// The batch's base sequence.
        got: i32,
    },
    /// An idempotent producer writes with an epoch older than the current one (fenced).
    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer id.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The epoch the partition has seen.
        current: i16,
    },
    /// A transaction marker from an older transaction coordinator epoch than
    /// the producer's last marker carried (Kafka's
    /// TRANSACTION_COORDINATOR_FENCED): a stale coordinator, refused.
    #[error(
        "producer {producer_id}: transaction marker from coordinator epoch {coordinator_epoch}, older than the \
         epoch {current} this partition has seen"
    )]
    CoordinatorFenced {
        /// The producer id.
        producer_id: i64,
        /// The marker's coordinator epoch.
        coordinator_epoch: i32,
        /// The latest coordinator epoch seen for the producer.
        current: i32,
    },
    /// A non-transactional batch from a producer with an ongoing
    /// transaction (Kafka's INVALID_TXN_STATE).
    #[error(
        "producer {producer_id} sent a non-transactional batch while its transaction from offset {first_offset} is \
         open; end the transaction first"
    )]
    InvalidTxnState {
        /// The producer id.
        producer_id: i64,
        /// First offset of its ongoing transaction.
        first_offset: i64,
    },
    /// A producer's transactional batch neither continues its ongoing
    /// transaction here nor was verified with its transaction coordinator
    /// (KIP-890), or a marker ended the transaction since.
    #[error(
        "record was not part of an ongoing transaction: producer {producer_id} (epoch {epoch}) has no verified \
         transaction on this partition; add the partition to the transaction first"
    )]
    TxnNotVerified {
        /// The producer id.
        producer_id: i64,
        /// The batch's producer epoch.
        epoch: i16,
    },
    /// The requested offset is not in the log.
    #[error("offset {offset} is out of range: the log holds [{log_start_offset}, {log_end_offset})")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// First offset in the log.
        log_start_offset: i64,
        /// Offset the next record will get.
        log_end_offset: i64,
    },
    /// Replicated batches do not continue the log: a gap or an overlap
    /// between the follower's log and what its leader sent.
    #[error(
        "replicated batch at offset {found} does not continue the log at offset {expected}: \
         a follower appends only the batches that follow its log end (gap or overlap with the leader's log)"
    )]
    UnexpectedAppendOffset {
        /// The offset the batch had to start at.
        expected: i64,
        /// The batch's base offset.
        found: i64,
    },
    /// Records the topic does not accept (keyless records in a compacted
    /// topic): Kafka's INVALID_RECORD with one error per record.
    #[error(
        "One or more records have been rejected due to {} record errors in total, and only showing the first \
         three errors at most: [{}]",
        record_errors.len(),
        record_errors.iter().take(3).map(|e| format!("RecordError(batchIndex={}, message='{}')", e.batch_index, e.message)).collect::<Vec<_>>().join(", ")
    )]
    InvalidRecords {
        /// Each refused record.
        record_errors: Vec<RecordError>,
    },
    /// A batch stored in this broker's own log fails verification (CRC-32C
    /// or framing): the disk holds damaged bytes, which are never served.
    /// Kafka's KAFKA_STORAGE_ERROR.
    #[error("stored record batch of {partition} at offset {offset} is damaged on disk: {reason}")]
    StoredBatchCorrupt {
        /// `<topic>-<partition>`.
        partition: String,
        /// Offset of the first damaged batch (the log is good below it).
        offset: i64,
        /// What verification found.
        reason: String,
    },
    /// An append as leader on a replica that does not lead the partition.
    #[error("this broker does not lead partition {partition} ({reason}); refresh metadata and retry on the leader")]
    NotLeader {
        /// `<topic>-<partition>`.
        partition: String,
        /// Its current role.
        reason: String,
    },
}

/// Why one record of a produced batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The record's index among the records of the partition's batches.
    pub batch_index: i32,
    /// What is wrong with it.
    pub message: String,
}

impl LogError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io { path, source }
    }

    /// A corrupt-batch error with a formatted reason.
    pub fn corrupt(reason: impl Into<String>) -> LogError {
        LogError::CorruptBatch { reason: reason.into() }
    }
}
