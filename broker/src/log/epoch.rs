//! The leader epoch cache and its `leader-epoch-checkpoint` file: for each
//! leader epoch, the first offset written under it (Kafka's KIP-101). A
//! follower uses it to find where its log diverges from a new leader's.
//!
//! File format, as Kafka writes it: a version line (`0`), a count line, then
//! one `epoch start_offset` line per entry. Written to a temporary file and
//! renamed into place, so a crash leaves the old or the new file, never half.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::LogError;

/// File name of the checkpoint in a partition directory.
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// One (epoch, start offset) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// First offset appended under it.
    pub start_offset: i64,
}

/// Epochs and their start offsets, strictly increasing in both.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir`; a missing or unreadable file gives an
    /// empty cache (it is rebuilt from batches as they are appended).
    pub fn load(dir: &Path) -> Result<LeaderEpochCache, LogError> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(LogError::Io { path, source: e }),
        };
        let entries = parse(&text).unwrap_or_else(|| {
            if !text.is_empty() {
                tracing::warn!(path = %path.display(), "ignoring an unreadable leader-epoch-checkpoint");
            }
            Vec::new()
        });
        Ok(LeaderEpochCache { path, entries })
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<(), LogError> {
        if epoch < 0 || self.entries.last().is_some_and(|e| e.epoch >= epoch) {
            return Ok(());
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry { epoch, start_offset });
        self.write()
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The epoch the record at `offset` was written under.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let n = self.entries.partition_point(|e| e.start_offset <= offset);
        n.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// For a follower asking about `epoch`: (the largest epoch ≤ it, and the
    /// offset where that epoch ends), with `log_end_offset` for the latest.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let n = self.entries.partition_point(|e| e.epoch <= epoch);
        let i = n.checked_sub(1)?;
        let end = self.entries.get(i + 1).map_or(log_end_offset, |next| next.start_offset);
        Some((self.entries[i].epoch, end))
    }

    /// Drops entries starting at or after `offset` (log truncated there).
    pub fn truncate_from_end(&mut self, offset: i64) -> Result<(), LogError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < offset);
        if self.entries.len() != before { self.write() } else { Ok(()) }
    }

    /// Moves entries below the new log start offset up to it (retention).
    pub fn truncate_from_start(&mut self, log_start_offset: i64) -> Result<(), LogError> {
        let below = self.entries.partition_point(|e| e.start_offset < log_start_offset);
        if below == 0 {
            return Ok(());
        }
        let keep_epoch = self.entries[below - 1].epoch;
        let replaced_is_next = self.entries.get(below).is_some_and(|e| e.start_offset == log_start_offset);
        self.entries.drain(..below);
        if !replaced_is_next {
            self.entries.insert(0, EpochEntry { epoch: keep_epoch, start_offset: log_start_offset });
        }
        self.write()
    }

    /// All entries.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    fn write(&self) -> Result<(), LogError> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(LogError::io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(LogError::io(&tmp))?;
        f.sync_all().map_err(LogError::io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(LogError::io(&self.path))
    }
}

fn parse(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let mut parts = lines.next()?.split_whitespace();
        let epoch = parts.next()?.parse().ok()?;
        let start_offset = parts.next()?.parse().ok()?;
        entries.push(EpochEntry { epoch, start_offset });
    }
    let increasing = entries.windows(2).all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
    increasing.then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_persist_in_kafkas_format_and_answer_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(dir.path()).unwrap();
        cache.assign(0, 0).unwrap();
        cache.assign(0, 5).unwrap(); // same epoch: no new entry
        cache.assign(2, 10).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap(), "0\n2\n0 0\n2 10\n");
        let cache = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(cache.epoch_for_offset(9), Some(0));
        assert_eq!(cache.epoch_for_offset(10), Some(2));
        assert_eq!(cache.end_offset_for(1, 50), Some((0, 10)));
        assert_eq!(cache.end_offset_for(2, 50), Some((2, 50)));
        assert_eq!(cache.end_offset_for(-1, 50), None);
    }

    #[test]
    fn truncation_from_either_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(dir.path()).unwrap();
        cache.assign(0, 0).unwrap();
        cache.assign(1, 10).unwrap();
        cache.assign(2, 20).unwrap();
        cache.truncate_from_start(15).unwrap();
        assert_eq!(
            cache.entries(),
            &[EpochEntry { epoch: 1, start_offset: 15 }, EpochEntry { epoch: 2, start_offset: 20 }]
        );
        cache.truncate_from_end(20).unwrap();
        assert_eq!(cache.latest_epoch(), Some(1));
    }

    #[test]
    fn a_garbled_checkpoint_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "0\n3\n1 x\n").unwrap();
        assert!(LeaderEpochCache::load(dir.path()).unwrap().entries().is_empty());
    }
}
