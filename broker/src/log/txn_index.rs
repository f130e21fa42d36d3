//! The aborted-transaction index of a segment (`<base>.txnindex`), in
//! Kafka's file format: one 34-byte entry per transaction whose ABORT marker
//! lies in the segment — `version: i16 = 0, producer_id: i64, first_offset:
//! i64, last_offset: i64, last_stable_offset: i64` — in marker order.
//! `last_offset` is the marker's offset, `last_stable_offset` the partition's
//! first unstable offset once the transaction ended.
//!
//! A read_committed fetch lists the aborted transactions overlapping the
//! range it returns from these entries (see [`collect`]). The file is a
//! cache of the log: entries past the producer state snapshot are rebuilt by
//! replaying the log on open, and an unreadable tail is dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::LogError;

/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 34;
const VERSION: i16 = 0;

/// An aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of its first record in the partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// The partition's first unstable offset after it ended.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut out = [0u8; ENTRY_SIZE];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(i64::from_be_bytes);
        let version = i16::from_be_bytes(b.get(0..2)?.try_into().ok()?);
        if version != VERSION {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2)?,
            first_offset: i64_at(10)?,
            last_offset: i64_at(18)?,
            last_stable_offset: i64_at(26)?,
        })
    }
}

/// The path of the index of the segment at `base_offset` in `dir`.
pub fn path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.txnindex", super::segment::file_stem(base_offset)))
}

/// One segment's aborted-transaction index: its entries in memory, the file
/// written through (created on the first entry).
#[derive(Debug)]
pub struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
    unsynced: bool,
}

impl TxnIndex {
    /// Opens the index of the segment at `base_offset` (empty when there is
    /// no file). Entries from the first unreadable one on are dropped (and
    /// cut from the file).
    pub fn open(dir: &Path, base_offset: i64) -> Result<TxnIndex, LogError> {
        let path = path(dir, base_offset);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(LogError::Io { path, source: e }),
        };
        let mut entries = Vec::with_capacity(bytes.len() / ENTRY_SIZE);
        for chunk in bytes.chunks(ENTRY_SIZE) {
            match (chunk.len() == ENTRY_SIZE).then(|| AbortedTxn::decode(chunk)).flatten() {
                Some(entry) => entries.push(entry),
                None => break,
            }
        }
        let mut index = TxnIndex { path, entries, unsynced: false };
        if index.entries.len() * ENTRY_SIZE != bytes.len() {
            tracing::warn!(path = %index.path.display(), "dropping an unreadable tail of a transaction index");
            index.rewrite()?;
        }
        Ok(index)
    }

    /// The index of a segment known to have no file yet (no I/O).
    pub fn empty(dir: &Path, base_offset: i64) -> TxnIndex {
        TxnIndex { path: path(dir, base_offset), entries: Vec::new(), unsynced: false }
    }

    /// The index of a new segment: empty, a file left at its path by an
    /// earlier segment with the same base removed.
    pub fn fresh(dir: &Path, base_offset: i64) -> Result<TxnIndex, LogError> {
        let index = TxnIndex::empty(dir, base_offset);
        remove_if_exists(&index.path)?;
        Ok(index)
    }

    /// Appends an entry (written to the file at once; fsynced by [`TxnIndex::sync`]).
    pub fn append(&mut self, entry: AbortedTxn) -> Result<(), LogError> {
        let mut file =
            OpenOptions::new().create(true).append(true).open(&self.path).map_err(LogError::io(&self.path))?;
        file.write_all(&entry.encode()).map_err(LogError::io(&self.path))?;
        self.entries.push(entry);
        self.unsynced = true;
        Ok(())
    }

    /// Drops the entries whose marker is at or after `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let keep = self.entries.iter().take_while(|e| e.last_offset < offset).count();
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.rewrite()
    }

    /// Fsyncs the file if entries were appended since the last sync.
    pub fn sync(&mut self) -> Result<(), LogError> {
        if !self.unsynced {
            return Ok(());
        }
        match File::open(&self.path) {
            Ok(f) => f.sync_all().map_err(LogError::io(&self.path))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::Io { path: self.path.clone(), source: e }),
        }
        self.unsynced = false;
        Ok(())
    }

    /// The entries, in marker order.
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Deletes the file.
    pub fn delete(self) -> Result<(), LogError> {
        remove_if_exists(&self.path)
    }

    fn rewrite(&mut self) -> Result<(), LogError> {
        if self.entries.is_empty() {
            return remove_if_exists(&self.path);
        }
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.encode()).collect();
        let tmp = self.path.with_extension("txnindex.tmp");
        std::fs::write(&tmp, bytes).map_err(LogError::io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(LogError::io(&self.path))?;
        self.unsynced = true;
        Ok(())
    }
}

/// The aborted transactions overlapping `[from, upper_bound)`, from the
/// indexes of the segments that may hold their markers (the segment holding
/// `from` and those after it, in order). Stops, as Kafka does, at the first
/// entry whose `last_stable_offset` reaches `upper_bound`: every transaction
/// ending after it started at or above that offset.
pub fn collect<'a>(indexes: impl Iterator<Item = &'a TxnIndex>, from: i64, upper_bound: i64) -> Vec<AbortedTxn> {
    let mut out = Vec::new();
    for index in indexes {
        for entry in &index.entries {
            if entry.last_offset >= from && entry.first_offset < upper_bound {
                out.push(*entry);
            }
            if entry.last_stable_offset >= upper_bound {
                return out;
            }
        }
    }
    out
}

fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::Io { path: path.to_owned(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: lso }
    }

    #[test]
    fn entries_are_kafkas_34_bytes_and_survive_reopen_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::open(dir.path(), 100).unwrap();
        index.append(txn(7, 100, 105, 106)).unwrap();
        index.append(txn(8, 103, 110, 111)).unwrap();
        let bytes = std::fs::read(path(dir.path(), 100)).unwrap();
        assert_eq!(bytes.len(), 2 * ENTRY_SIZE);
        assert_eq!(
            &bytes[..ENTRY_SIZE],
            &[
                0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 105, 0, 0, 0, 0, 0, 0, 0,
                106
            ][..]
        );
        // A torn tail is dropped on open.
        std::fs::OpenOptions::new().append(true).open(path(dir.path(), 100)).unwrap().write_all(&[0, 0, 1]).unwrap();
        let mut index = TxnIndex::open(dir.path(), 100).unwrap();
        assert_eq!(index.entries(), &[txn(7, 100, 105, 106), txn(8, 103, 110, 111)]);
        assert_eq!(std::fs::metadata(path(dir.path(), 100)).unwrap().len(), 2 * ENTRY_SIZE as u64);
        index.truncate_to(110).unwrap();
        assert_eq!(TxnIndex::open(dir.path(), 100).unwrap().entries(), &[txn(7, 100, 105, 106)]);
    }

    #[test]
    fn collect_finds_overlapping_transactions_and_stops_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = TxnIndex::open(dir.path(), 0).unwrap();
        a.append(txn(1, 0, 4, 5)).unwrap();
        a.append(txn(2, 6, 9, 10)).unwrap();
        let mut b = TxnIndex::open(dir.path(), 10).unwrap();
        b.append(txn(3, 8, 12, 13)).unwrap();
        // Producer 5's transaction (from 15) was still open when 4's aborted.
        b.append(txn(4, 20, 25, 15)).unwrap();
        b.append(txn(5, 15, 30, 31)).unwrap();
        assert_eq!(collect([&a, &b].into_iter(), 5, 14), vec![txn(2, 6, 9, 10), txn(3, 8, 12, 13)]);
        assert_eq!(collect([&a, &b].into_iter(), 0, 100).len(), 5);
        assert_eq!(collect([&a, &b].into_iter(), 13, 21), vec![txn(4, 20, 25, 15), txn(5, 15, 30, 31)]);
        assert_eq!(collect([&a, &b].into_iter(), 0, 5), vec![txn(1, 0, 4, 5)], "stops at the first entry reaching 5");
    }
}
