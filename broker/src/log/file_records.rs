//! Record batches located in a segment file rather than copied out of it.
//!
//! A consumer fetch is answered with [`FileRecords`]: the open `.log` file,
//! a byte range of whole batches and how many records they hold. The
//! connection writer hands the range to the kernel (`sendfile`), so the
//! bytes go from the page cache to the socket without passing through the
//! broker's memory, as Kafka's `FileRecords.writeTo` does.
//!
//! Invariant: the range held whole batches when it was taken (the log's read
//! lock was held), CRC-checked then unless the log held them for sound
//! already (`verify.reads=once`, see [`super::scrub`]). The file can still
//! shrink later (a follower truncating its log after a leader change);
//! readers of the range get an end-of-file error then, never other bytes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::error::LogError;

/// Whole record batches at `position..position + len` of a segment's `.log`.
#[derive(Debug, Clone)]
pub struct FileRecords {
    file: Arc<File>,
    path: PathBuf,
    position: u64,
    len: usize,
    record_count: u64,
    end_offset: Option<i64>,
}

impl FileRecords {
    /// The range `position..position + len` of `file` (at `path`), holding
    /// `record_count` records in whole batches.
    pub(crate) fn new(file: Arc<File>, path: PathBuf, position: u64, len: usize, record_count: u64) -> Self {
        FileRecords { file, path, position, len, record_count, end_offset: None }
    }

    /// The same range, knowing the offset after its last batch.
    pub(crate) fn with_end_offset(self, end_offset: i64) -> Self {
        FileRecords { end_offset: Some(end_offset), ..self }
    }

    /// The offset after the range's last batch, when known (a prefix keeps
    /// the whole range's, an upper bound).
    pub fn end_offset(&self) -> Option<i64> {
        self.end_offset
    }

    /// The open segment file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The segment file's path, for error messages.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Where the first batch starts in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes in the range.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records in the range's batches.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// The first `len` bytes of the range, holding `record_count` records
    /// in whole batches (a read cut before a damaged batch).
    pub fn prefix(&self, len: usize, record_count: u64) -> FileRecords {
        FileRecords { len: len.min(self.len), record_count, ..self.clone() }
    }

    /// Copies the range into memory (for callers that need the bytes
    /// themselves rather than a socket to send them to).
    pub fn read_to_bytes(&self) -> Result<Bytes, LogError> {
        let mut buf = vec![0u8; self.len];
        self.file.read_exact_at(&mut buf, self.position).map_err(LogError::io(&self.path))?;
        Ok(Bytes::from(buf))
    }
}
