//! The sparse time index of a segment (`.timeindex`), in Kafka's format:
//! 12-byte entries of (largest timestamp seen so far, i64; offset relative to
//! the segment base of the record carrying it, i32), big-endian, with both
//! fields non-decreasing. An entry is added beside each offset-index entry
//! when the largest timestamp has grown, and when the segment is rolled.
//!
//! Like the offset index it is a cache of the `.log`, rebuilt when damaged.

use std::path::Path;

use super::error::LogError;
use super::index::{IndexFile, read_if_exists};

const ENTRY_SIZE: usize = 12;

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    /// Largest timestamp in the segment up to `relative_offset`.
    pub timestamp: i64,
    /// Offset (relative) of the record with that timestamp.
    pub relative_offset: u32,
}

/// A segment's time index.
#[derive(Debug)]
pub struct TimeIndex {
    entries: Vec<TimeIndexEntry>,
    file: IndexFile,
}

impl TimeIndex {
    /// Creates an empty index, replacing any file at `path`.
    pub fn create(path: &Path) -> Result<TimeIndex, LogError> {
        Ok(TimeIndex { entries: Vec::new(), file: IndexFile::create(path)? })
    }

    /// Loads the time index at `path` if present and sane; `None` to rebuild.
    pub fn load(path: &Path, max_relative_offset: u32) -> Result<Option<TimeIndex>, LogError> {
        let Some(bytes) = read_if_exists(path)? else { return Ok(None) };
        if bytes.len() % ENTRY_SIZE != 0 {
            return Ok(None);
        }
        let entries: Vec<TimeIndexEntry> = bytes
            .chunks_exact(ENTRY_SIZE)
            .map(|c| {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&c[..8]);
                TimeIndexEntry {
                    timestamp: i64::from_be_bytes(ts),
                    relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                }
            })
            .collect();
        let ordered = entries
            .windows(2)
            .all(|w| w[0].timestamp <= w[1].timestamp && w[0].relative_offset <= w[1].relative_offset);
        let within = entries.last().is_none_or(|e| e.relative_offset <= max_relative_offset);
        if !ordered || !within {
            return Ok(None);
        }
        Ok(Some(TimeIndex { entries, file: IndexFile::existing(path) }))
    }

    /// Adds an entry if `timestamp` is larger than the last entry's.
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) -> Result<(), LogError> {
        if let Some(last) = self.entries.last()
            && (timestamp <= last.timestamp || relative_offset < last.relative_offset)
        {
            return Ok(());
        }
        let entry = TimeIndexEntry { timestamp, relative_offset };
        self.entries.push(entry);
        self.file.push(&encode(entry))
    }

    /// The last entry whose timestamp is below `timestamp`: scanning for the
    /// first record at or after `timestamp` may start at its offset.
    pub fn lookup_before(&self, timestamp: i64) -> Option<TimeIndexEntry> {
        let n = self.entries.partition_point(|e| e.timestamp < timestamp);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// The last entry (largest timestamp).
    pub fn last(&self) -> Option<TimeIndexEntry> {
        self.entries.last().copied()
    }

    /// Drops entries at or beyond `relative_offset`.
    pub fn truncate_to(&mut self, relative_offset: u32) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|e| e.relative_offset < relative_offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| encode(*e)).collect();
        self.file.rewrite(&bytes)
    }

    /// All entries.
    pub fn entries(&self) -> &[TimeIndexEntry] {
        &self.entries
    }

    /// Writes buffered entries and optionally syncs.
    pub fn flush(&mut self, sync: bool) -> Result<(), LogError> {
        self.file.flush(sync)
    }
}

fn encode(e: TimeIndexEntry) -> [u8; ENTRY_SIZE] {
    let mut buf = [0u8; ENTRY_SIZE];
    buf[..8].copy_from_slice(&e.timestamp.to_be_bytes());
    buf[8..].copy_from_slice(&e.relative_offset.to_be_bytes());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_only_grow_and_lookups_find_the_last_entry_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut index = TimeIndex::create(&path).unwrap();
        index.maybe_append(100, 0).unwrap();
        index.maybe_append(90, 5).unwrap(); // not larger: skipped
        index.maybe_append(200, 10).unwrap();
        index.flush(false).unwrap();
        assert_eq!(index.entries().len(), 2);
        assert_eq!(index.lookup_before(100), None);
        assert_eq!(index.lookup_before(150).unwrap().relative_offset, 0);
        assert_eq!(index.lookup_before(201).unwrap().relative_offset, 10);
        let reloaded = TimeIndex::load(&path, 10).unwrap().unwrap();
        assert_eq!(reloaded.entries(), index.entries());
        assert!(TimeIndex::load(&path, 9).unwrap().is_none(), "entry beyond the log");
    }
}
