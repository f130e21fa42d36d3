//! The sparse offset index of a segment (`.index`), in Kafka's format: 8-byte
//! entries of (offset relative to the segment's base offset, i32; byte
//! position of the batch in the `.log` file, i32), both big-endian and
//! strictly increasing. An entry is added every `index.interval.bytes` of log.
//!
//! Entries live in memory; new ones are buffered and written to the file in
//! one short open–write–close when the buffer fills or the segment is
//! flushed, so an index holds no file open between writes (the log's
//! open-file budget, [`file_cache`](super::file_cache), covers only `.log`
//! files). The file is only a cache of what a scan of the `.log` gives, so a
//! missing, short or damaged one is rebuilt (or completed) on recovery.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::error::LogError;

const ENTRY_SIZE: usize = 8;

/// One index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Offset relative to the segment base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment's `.log`.
    pub position: u32,
}

/// Bytes of new entries buffered before they are written out.
const PENDING_BYTES: usize = 4096;

/// An index file written without holding it open: entries not yet in the
/// file, and whether the file has writes not yet fsynced.
#[derive(Debug)]
pub(super) struct IndexFile {
    path: PathBuf,
    pending: Vec<u8>,
    unsynced: bool,
}

impl IndexFile {
    /// An empty file at `path` (created, or emptied).
    pub(super) fn create(path: &Path) -> Result<IndexFile, LogError> {
        OpenOptions::new().create(true).write(true).truncate(true).open(path).map_err(LogError::io(path))?;
        Ok(IndexFile { path: path.to_owned(), pending: Vec::new(), unsynced: true })
    }

    /// The existing file at `path`, all of whose entries are written.
    pub(super) fn existing(path: &Path) -> IndexFile {
        IndexFile { path: path.to_owned(), pending: Vec::new(), unsynced: false }
    }

    /// Buffers an entry's bytes, writing the buffer out when it is full.
    pub(super) fn push(&mut self, entry: &[u8]) -> Result<(), LogError> {
        self.pending.extend_from_slice(entry);
        if self.pending.len() >= PENDING_BYTES {
            self.flush(false)?;
        }
        Ok(())
    }

    /// Writes buffered entries at the end of the file; fsyncs it when `sync`
    /// and anything was written since the last fsync. Opens the file only
    /// when there is something to do.
    pub(super) fn flush(&mut self, sync: bool) -> Result<(), LogError> {
        if self.pending.is_empty() && !(sync && self.unsynced) {
            return Ok(());
        }
        let mut file =
            OpenOptions::new().create(true).append(true).open(&self.path).map_err(LogError::io(&self.path))?;
        if !self.pending.is_empty() {
            file.write_all(&self.pending).map_err(LogError::io(&self.path))?;
            self.pending.clear();
            self.unsynced = true;
        }
        if sync {
            file.sync_data().map_err(LogError::io(&self.path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Replaces the file's contents with `bytes` (truncation), dropping
    /// anything buffered.
    pub(super) fn rewrite(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
            .map_err(LogError::io(&self.path))?;
        file.write_all(bytes).map_err(LogError::io(&self.path))?;
        self.pending.clear();
        self.unsynced = true;
        Ok(())
    }
}

/// A segment's offset index.
#[derive(Debug)]
pub struct OffsetIndex {
    entries: Vec<IndexEntry>,
    file: IndexFile,
}

impl OffsetIndex {
    /// Creates an empty index, replacing any file at `path`.
    pub fn create(path: &Path) -> Result<OffsetIndex, LogError> {
        Ok(OffsetIndex { entries: Vec::new(), file: IndexFile::create(path)? })
    }

    /// Loads the index at `path` if it is present and sane for a log of
    /// `log_size` bytes; `None` when it must be rebuilt.
    pub fn load(path: &Path, log_size: u64) -> Result<Option<OffsetIndex>, LogError> {
        let Some(bytes) = read_if_exists(path)? else { return Ok(None) };
        if bytes.len() % ENTRY_SIZE != 0 {
            return Ok(None);
        }
        let entries: Vec<IndexEntry> = bytes
            .chunks_exact(ENTRY_SIZE)
            .map(|c| IndexEntry {
                relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let increasing =
            entries.windows(2).all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
        let within_log = entries.last().is_none_or(|e| u64::from(e.position) < log_size);
        if !increasing || !within_log {
            return Ok(None);
        }
        Ok(Some(OffsetIndex { entries, file: IndexFile::existing(path) }))
    }

    /// Adds an entry; it must be beyond the last one.
    pub fn append(&mut self, relative_offset: u32, position: u32) -> Result<(), LogError> {
        if let Some(last) = self.entries.last()
            && (relative_offset <= last.relative_offset || position <= last.position)
        {
            return Ok(());
        }
        let entry = IndexEntry { relative_offset, position };
        self.entries.push(entry);
        self.file.push(&encode(entry))
    }

    /// The last entry at or before `relative_offset`, if any.
    pub fn lookup(&self, relative_offset: u32) -> Option<IndexEntry> {
        let n = self.entries.partition_point(|e| e.relative_offset <= relative_offset);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops entries at or beyond `relative_offset` (for log truncation).
    pub fn truncate_to(&mut self, relative_offset: u32) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|e| e.relative_offset < relative_offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| encode(*e)).collect();
        self.file.rewrite(&bytes)
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Writes buffered entries to the file, and fsyncs it when `sync`.
    pub fn flush(&mut self, sync: bool) -> Result<(), LogError> {
        self.file.flush(sync)
    }
}

fn encode(e: IndexEntry) -> [u8; ENTRY_SIZE] {
    let mut buf = [0u8; ENTRY_SIZE];
    buf[..4].copy_from_slice(&e.relative_offset.to_be_bytes());
    buf[4..].copy_from_slice(&e.position.to_be_bytes());
    buf
}

/// Reads a whole file, or `None` if it does not exist.
pub(super) fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(LogError::io(path))?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::Io { path: path.to_owned(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_the_floor_entry_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::create(&path).unwrap();
        for (o, p) in [(0, 0), (10, 4096), (25, 8200)] {
            index.append(o, p).unwrap();
        }
        index.flush(false).unwrap();
        assert_eq!(index.lookup(9), Some(IndexEntry { relative_offset: 0, position: 0 }));
        assert_eq!(index.lookup(10).unwrap().position, 4096);
        assert_eq!(index.lookup(1000).unwrap().position, 8200);
        let reloaded = OffsetIndex::load(&path, 9000).unwrap().unwrap();
        assert_eq!(reloaded.entries(), index.entries());
        assert_eq!(std::fs::read(&path).unwrap()[8..16], [0, 0, 0, 10, 0, 0, 16, 0]);
    }

    #[test]
    fn damaged_files_are_refused_for_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0u8; 7]).unwrap();
        assert!(OffsetIndex::load(&path, 100).unwrap().is_none(), "size not a multiple of 8");
        std::fs::write(&path, [0, 0, 0, 5, 0, 0, 0, 50, 0, 0, 0, 4, 0, 0, 0, 60]).unwrap();
        assert!(OffsetIndex::load(&path, 100).unwrap().is_none(), "offsets going backwards");
        std::fs::write(&path, [0, 0, 0, 5, 0, 0, 0, 200]).unwrap();
        assert!(OffsetIndex::load(&path, 100).unwrap().is_none(), "position past the log");
        assert!(OffsetIndex::load(&dir.path().join("missing.index"), 100).unwrap().is_none());
    }

    #[test]
    fn truncation_drops_entries_at_and_after_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::create(&path).unwrap();
        index.append(0, 0).unwrap();
        index.append(10, 100).unwrap();
        index.append(20, 200).unwrap();
        index.truncate_to(10).unwrap();
        index.flush(false).unwrap();
        assert_eq!(index.entries().len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
    }
}
