//! The storage engine: partition logs made of Kafka-format segments.
//!
//! - [`batch`]: RecordBatch v2 bytes — header parsing, validation, patching.
//! - [`decompress`]: bounded decompression for looking inside stored batches.
//! - [`cleaner`]: log compaction, the latest record per key.
//! - [`convert`]: keyless records refused in compacted logs, recompression
//!   to a topic's `compression.type`.
//! - [`file_records`]: batches located in a segment file, for zero-copy sends.
//! - [`file_cache`]: the open-file budget — segment files opened on demand
//!   through one bounded, least-recently-used cache of handles.
//! - [`segment`]: one `.log` with its `.index` and `.timeindex`.
//! - [`index`], [`time_index`]: the sparse indexes, in Kafka's file formats.
//! - [`epoch`]: the leader epoch cache (`leader-epoch-checkpoint`).
//! - [`producer_state`]: idempotent producers' sequences, for deduplication,
//!   and their ongoing transactions.
//! - [`control`]: transaction markers (COMMIT/ABORT control batches).
//! - [`txn_index`]: the per-segment aborted-transaction index (`.txnindex`).
//! - [`partition_log`]: a partition's segments — append, read, roll,
//!   retention, recovery.
//! - [`manager`]: all partition logs of the broker under its data dir.
//! - [`reaper`]: the background thread that finishes deleting files (their
//!   last close and unlink free their blocks), off every lock and the runtime.
//! - [`scrub`]: verification of stored batches on disk — sealed segments
//!   not verified since they changed, at open; every batch served — and
//!   repair by truncation below the first damaged one.
//!
//! Durability and consistency rules: a batch is appended whole or not at all
//! (validation happens before any write); recovery on open CRC-checks the
//! active segment and truncates a torn tail, and verifies sealed segments
//! not verified since they last changed (see [`scrub`]); batches are
//! verified again as they are served, so a corrupt byte is never served; the indexes are caches of the `.log` and are rebuilt when damaged.

pub mod batch;
pub mod cleaner;
pub mod config;
pub mod control;
pub mod convert;
pub mod decompress;
pub mod epoch;
pub mod error;
pub mod file_cache;
pub mod file_records;
pub mod index;
pub mod manager;
pub mod partition_log;
pub mod producer_state;
pub mod reaper;
pub mod scrub;
pub mod segment;
pub mod time_index;
pub mod txn_index;

use std::sync::Arc;

pub use config::{CleanupPolicy, LogConfig};
pub use error::LogError;
pub use file_records::FileRecords;
pub use manager::LogManager;
pub use partition_log::PartitionLog;

/// A partition log shared between the writer and readers.
pub type SharedLog = Arc<parking_lot::RwLock<PartitionLog>>;

/// A topic name and partition index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    /// `<topic>-<partition>`, which is also the partition's directory name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first appended record.
    pub base_offset: i64,
    /// Offset of the last appended record.
    pub last_offset: i64,
    /// Number of records appended.
    pub record_count: i64,
    /// Largest timestamp among the appended batches.
    pub max_timestamp: i64,
    /// The broker time stamped on the batches, with `LogAppendTime`.
    pub log_append_time: Option<i64>,
    /// Bytes appended.
    pub bytes: usize,
}

/// Batches read from a log, with the log's bounds at the time.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole record batches, as stored.
    pub records: bytes::Bytes,
    /// First offset in the log.
    pub log_start_offset: i64,
    /// Offset after the last record in the log.
    pub log_end_offset: i64,
}

/// Batches located in a log (see [`file_records`]), with the log's bounds
/// at the time.
#[derive(Debug, Clone)]
pub struct FileSlice {
    /// Whole record batches; `None` when there is nothing to read.
    pub records: Option<file_records::FileRecords>,
    /// First offset in the log.
    pub log_start_offset: i64,
    /// Offset after the last record in the log.
    pub log_end_offset: i64,
}

/// A record found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The record's timestamp.
    pub timestamp: i64,
    /// Its offset.
    pub offset: i64,
    /// Leader epoch it was written under, if known.
    pub leader_epoch: Option<i32>,
}

#[cfg(test)]
mod follower_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
pub(crate) mod txn_tests;
