//! The log manager: every partition log of the broker, under one data dir.
//!
//! Partition directories are `<data-dir>/<topic>-<partition>`; on open every
//! such directory is recovered. A deleted partition's directory is first
//! renamed to `<topic>-<partition>.<id>-delete` (so a crash mid-delete never
//! resurrects it) and then removed; leftovers are removed on the next open.
//!
//! A clean shutdown ([`LogManager::close`]) leaves a `clean-shutdown` file in
//! the data dir after every log is flushed (Kafka's `.kafka_cleanshutdown`);
//! the next open then skips reading the older segments' `.log` files, and
//! removes the file before anything is written, so a later crash is never
//! taken for a clean stop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use super::config::LogConfig;
use super::error::LogError;
use super::partition_log::PartitionLog;
use super::{SharedLog, TopicPartition};

const DELETE_SUFFIX: &str = "-delete";

/// Written to the data dir once every log is flushed at shutdown.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

/// All partition logs of this broker.
#[derive(Debug)]
pub struct LogManager {
    data_dir: PathBuf,
    default_config: LogConfig,
    logs: RwLock<HashMap<TopicPartition, SharedLog>>,
}

impl LogManager {
    /// Opens the data dir (creating it), recovering every partition log in it.
    pub fn open(data_dir: &Path, default_config: LogConfig) -> Result<LogManager, LogError> {
        std::fs::create_dir_all(data_dir).map_err(LogError::io(data_dir))?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_shutdown = marker.exists();
        let mut logs = HashMap::new();
        for entry in std::fs::read_dir(data_dir).map_err(LogError::io(data_dir))? {
            let entry = entry.map_err(LogError::io(data_dir))?;
            let path = entry.path();
            if !entry.file_type().map_err(LogError::io(&path))?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(DELETE_SUFFIX) {
                // Deleted before the broker stopped, not yet removed.
                super::reaper::remove_dir_all(path);
                continue;
            }
            let Some(tp) = parse_dir_name(&name) else {
                tracing::debug!(dir = %path.display(), "not a partition directory; left alone");
                continue;
            };
            let log = PartitionLog::open_after_shutdown(&path, tp.clone(), default_config.clone(), clean_shutdown)?;
            logs.insert(tp, Arc::new(RwLock::new(log)));
        }
        if clean_shutdown {
            std::fs::remove_file(&marker).map_err(LogError::io(&marker))?;
        }
        tracing::info!(data_dir = %data_dir.display(), partitions = logs.len(), clean_shutdown, "opened logs");
        Ok(LogManager { data_dir: data_dir.to_owned(), default_config, logs: RwLock::new(logs) })
    }

    /// The log of `tp`, if present.
    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        self.logs.read().get(tp).cloned()
    }

    /// The log of `tp` with `config` applied, created if absent.
    pub fn get_or_create(&self, tp: &TopicPartition, config: LogConfig) -> Result<SharedLog, LogError> {
        if let Some(log) = self.get(tp) {
            log.write().set_config(config);
            return Ok(log);
        }
        let mut logs = self.logs.write();
        if let Some(log) = logs.get(tp) {
            return Ok(log.clone());
        }
        let log = PartitionLog::open(&self.partition_dir(tp), tp.clone(), config)?;
        let log = Arc::new(RwLock::new(log));
        logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// Deletes the log of `tp` from memory and disk.
    pub fn remove(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let Some(log) = self.logs.write().remove(tp) else { return Ok(()) };
        // Hold the write lock so no append is in flight while files go.
        let _guard = log.write();
        let dir = self.partition_dir(tp);
        let doomed = self.data_dir.join(format!("{tp}.{}{DELETE_SUFFIX}", uuid::Uuid::new_v4().simple()));
        std::fs::rename(&dir, &doomed).map_err(LogError::io(&dir))?;
        // Freeing the files' blocks can take long (see the reaper): not here.
        super::reaper::remove_dir_all(doomed);
        Ok(())
    }

    /// Every partition with a log here.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut tps: Vec<_> = self.logs.read().keys().cloned().collect();
        tps.sort();
        tps
    }

    /// Applies `config` to every partition log of `topic`.
    pub fn set_topic_config(&self, topic: &str, config: LogConfig) {
        for (tp, log) in self.logs.read().iter() {
            if tp.topic == topic {
                log.write().set_config(config.clone());
            }
        }
    }

    /// Runs retention on every log; returns how many segments were deleted.
    /// A failing log is logged and skipped, so one bad disk file does not
    /// stop retention elsewhere.
    pub fn enforce_retention_all(&self, now_ms: i64) -> usize {
        let mut deleted = 0;
        for log in self.snapshot() {
            let mut log = log.write();
            match log.enforce_retention(now_ms) {
                Ok(n) => deleted += n,
                Err(e) => tracing::error!(partition = %log.topic_partition(), "retention failed: {e}"),
            }
        }
        deleted
    }

    /// Compacts every log whose cleanup policy compacts; returns records removed.
    pub fn compact_all(&self, now_ms: i64) -> u64 {
        let mut removed = 0;
        for log in self.snapshot() {
            let mut log = log.write();
            match log.compact(now_ms) {
                Ok(stats) => removed += stats.records_removed,
                Err(e) => tracing::error!(partition = %log.topic_partition(), "compaction failed: {e}"),
            }
        }
        removed
    }

    /// Fsyncs logs whose `flush.ms` has passed.
    pub fn flush_due_all(&self, now_ms: i64) {
        for log in self.snapshot() {
            let mut log = log.write();
            if let Err(e) = log.flush_if_due(now_ms) {
                tracing::error!(partition = %log.topic_partition(), "flush failed: {e}");
            }
        }
    }

    /// Flushes every log to disk (at shutdown).
    pub fn flush_all(&self) -> Result<(), LogError> {
        for log in self.snapshot() {
            log.write().flush()?;
        }
        Ok(())
    }

    /// Flushes every log and then marks the data dir as cleanly shut down;
    /// nothing may write to a log afterwards.
    pub fn close(&self) -> Result<(), LogError> {
        self.flush_all()?;
        let marker = self.data_dir.join(CLEAN_SHUTDOWN_FILE);
        let file = std::fs::File::create(&marker).map_err(LogError::io(&marker))?;
        file.sync_all().map_err(LogError::io(&marker))
    }

    /// The default log settings for partitions opened from disk.
    pub fn default_config(&self) -> &LogConfig {
        &self.default_config
    }

    fn snapshot(&self) -> Vec<SharedLog> {
        self.logs.read().values().cloned().collect()
    }

    fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        self.data_dir.join(tp.to_string())
    }
}

/// `<topic>-<partition>` to a topic-partition (topic names may contain '-').
fn parse_dir_name(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    let partition: i32 = partition.parse().ok()?;
    (!topic.is_empty() && partition >= 0).then(|| TopicPartition { topic: topic.to_owned(), partition })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_parse_like_kafkas() {
        assert_eq!(parse_dir_name("orders-3"), Some(TopicPartition { topic: "orders".into(), partition: 3 }));
        assert_eq!(parse_dir_name("my-topic-12"), Some(TopicPartition { topic: "my-topic".into(), partition: 12 }));
        assert_eq!(parse_dir_name("orders"), None);
        assert_eq!(parse_dir_name("-1"), None);
    }

    /// After a clean shutdown older segments open from their indexes alone;
    /// reads, time lookups, a truncation into them and later appends give
    /// what a full recovery gives, and a crash afterwards is not taken for a
    /// clean stop.
    #[test]
    fn a_clean_shutdown_reopens_older_segments_lazily_and_exactly() {
        use crate::log::batch::tests::encode_batch;
        use kafka_protocol::records::Compression;

        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 300, index_interval_bytes: 64, ..LogConfig::default() };
        let tp = TopicPartition::new("t", 0);
        let manager = LogManager::open(dir.path(), config.clone()).unwrap();
        let log = manager.get_or_create(&tp, config.clone()).unwrap();
        for i in 0..12 {
            log.write().append_as_leader(&encode_batch(3, 20, 1000 + i * 10, Compression::None), 0, 0).unwrap();
        }
        let read = |log: &SharedLog| log.read().read_up_to(0, 1 << 20, i64::MAX).unwrap().records;
        let whole = |log: &SharedLog| {
            let log = log.read();
            let mut out = Vec::new();
            for segment in log.segments() {
                out.extend(segment.read_all().unwrap());
            }
            (out, log.log_end_offset(), log.offset_for_timestamp(1055).unwrap(), log.segment_count())
        };
        let before = whole(&log);
        assert!(before.3 >= 4, "several segments");
        let first_read = read(&log);
        drop(log);
        manager.close().unwrap();
        drop(manager);
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());

        let manager = LogManager::open(dir.path(), config.clone()).unwrap();
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists(), "the marker goes before anything is written");
        let log = manager.get(&tp).unwrap();
        assert_eq!(whole(&log), before);
        assert_eq!(read(&log), first_read);

        // A follower truncation into a lazily opened segment makes it active.
        log.write().truncate_to(10).unwrap();
        let end = log.read().log_end_offset();
        assert!(end <= 10 && end > 5, "cut at a batch boundary: {end}");
        let info = log.write().append_as_leader(&encode_batch(2, 20, 5000, Compression::None), 1, 0).unwrap();
        assert_eq!(info.base_offset, end);
        let after = whole(&log);
        drop(log);
        drop(manager); // a crash: no marker

        let manager = LogManager::open(dir.path(), config).unwrap();
        let log = manager.get(&tp).unwrap();
        assert_eq!(whole(&log), after);
    }

    /// A time index without the segment's largest timestamp (as compaction
    /// left them before it sealed its output) is completed by the first
    /// start that walks the segment, so a later lazy open still knows it.
    #[test]
    fn a_time_index_missing_its_largest_timestamp_is_completed_before_a_lazy_open() {
        use crate::log::batch::tests::encode_batch;
        use kafka_protocol::records::Compression;

        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 300, ..LogConfig::default() };
        let tp = TopicPartition::new("t", 0);
        let first_max =
            |manager: &LogManager| manager.get(&tp).unwrap().read().segments().next().unwrap().max_timestamp();
        let manager = LogManager::open(dir.path(), config.clone()).unwrap();
        let log = manager.get_or_create(&tp, config.clone()).unwrap();
        for i in 0..6 {
            log.write().append_as_leader(&encode_batch(3, 20, 1000 + i * 10, Compression::None), 0, 0).unwrap();
        }
        drop(log);
        let expected = first_max(&manager);
        assert!(expected.is_some());
        manager.close().unwrap();
        drop(manager);
        let time_index = dir.path().join("t-0").join("00000000000000000000.timeindex");
        std::fs::write(&time_index, []).unwrap();
        std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();

        let manager = LogManager::open(dir.path(), config.clone()).unwrap();
        assert_eq!(first_max(&manager), expected, "found by walking the batches");
        manager.close().unwrap();
        drop(manager);
        assert!(std::fs::metadata(&time_index).unwrap().len() > 0, "written back to the time index");
        let manager = LogManager::open(dir.path(), config).unwrap();
        assert_eq!(first_max(&manager), expected, "known to a lazy open");
    }
}
