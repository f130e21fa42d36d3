//! Per-log settings: the topic-level Kafka settings that shape a partition log.

use kafka_protocol::records::Compression;

/// What happens to old data: `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Delete whole segments past `retention.ms` / `retention.bytes`.
    Delete,
    /// Keep the last record per key (log compaction).
    Compact,
    /// Both: compact, and delete segments past retention.
    DeleteAndCompact,
}

impl CleanupPolicy {
    /// Whether retention deletes segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::DeleteAndCompact)
    }

    /// Whether the log is compacted.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::DeleteAndCompact)
    }
}

/// The codec a `compression.type` value stores batches with; `None` for
/// `producer` (and anything unknown, which validation never lets through).
pub fn compression_for(compression_type: &str) -> Option<Compression> {
    match compression_type {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// The settings of one partition log, resolved from broker defaults and topic overrides.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment when it would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment once its first record is this old.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 is unlimited.
    pub retention_bytes: i64,
    /// `delete.retention.ms`: how long compaction keeps tombstones.
    pub delete_retention_ms: i64,
    /// `index.interval.bytes`: log bytes between two offset-index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest record batch accepted.
    pub max_message_bytes: u32,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `flush.messages`: fsync after this many records.
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the last fsync is this old.
    pub flush_ms: i64,
    /// `message.timestamp.type=LogAppendTime`: stamp batches with the broker's clock.
    pub message_timestamp_type_log_append: bool,
    /// `compression.type`: the codec batches are stored with (the leader
    /// recompresses a batch sent with another); `None` is `producer`, which
    /// stores batches as sent.
    pub compression: Option<Compression>,
    /// `min.compaction.lag.ms`: compaction leaves a segment alone until its
    /// newest record is this old.
    pub min_compaction_lag_ms: i64,
    /// `segment.index.bytes`: roll the active segment before its offset or
    /// time index would grow past this.
    pub segment_index_bytes: u32,
    /// `verify.reads=always`: every batch read for a consumer is verified
    /// before it is sent; `false` (`once`) skips bytes this process already
    /// holds for sound ([`Segment::verified_to`](super::segment::Segment::verified_to)).
    pub verify_every_read: bool,
}

impl Default for LogConfig {
    /// Kafka's defaults.
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            max_message_bytes: 1024 * 1024 + 12,
            cleanup_policy: CleanupPolicy::Delete,
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
            message_timestamp_type_log_append: false,
            compression: None,
            min_compaction_lag_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            verify_every_read: false,
        }
    }
}
