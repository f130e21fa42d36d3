//! One segment of a partition log: the `.log` file of record batches from a
//! base offset, with its `.index` and `.timeindex`.
//!
//! Invariants: batches in the file are whole, CRC-valid and in increasing
//! offset order (recovery truncates anything else at the tail); `size` is
//! the file length; `next_offset` is one past the last record (the base
//! offset when empty). Only the owning [`PartitionLog`](super::PartitionLog)
//! writes, under its write lock; reads use positional I/O and only `&self`.
//!
//! The `.log` is held through the log's open-file budget
//! ([`SegmentFile`]): each operation takes the open handle once (reopening
//! the file if it was closed to make room) and uses that handle throughout,
//! so an operation never mixes two opens of the file.
//!
//! Each segment knows how much of its file this process holds for sound
//! ([`Segment::verified_to`]: appended by it after validation, checked by
//! recovery, or checked by an earlier read) and has a [`Segment::lineage`]
//! that changes whenever bytes already in the file may change (a
//! truncation; compaction makes a new segment), so a check made outside the
//! log's lock can tell whether it still speaks for the file.
//!
//! Block reservation: before an append passes the end of what is reserved,
//! the segment reserves the file's blocks ahead of it (`fallocate` keeping
//! the file's size, so the size is still the log's end and recovery sees
//! nothing new): as much again as the file holds, from [`RESERVE_MIN`] up
//! to `log.segment.reserve.bytes` ([`set_reserve_max`], 8 MiB by default),
//! never past `segment.bytes`. Without it, ext4 allocates a file's blocks
//! only when the kernel writes its dirty pages back, holding the file's
//! block map while it does; an append to the same file waits for that, and
//! every append queued behind it on the writer thread waits too (measured
//! here: stalls of 0.2–0.9 s once background writeback starts, gone with
//! the blocks reserved; see bench/RESULTS.md). A segment keeps what it
//! reserved and did not use (at most the larger of its size and
//! [`RESERVE_MIN`], and the maximum) until it is deleted, truncated or compacted:
//! disk space that `retention.bytes` and the log's reported sizes, which
//! count the records, do not see. A truncation frees it with the cut, on
//! the caller's thread. A filesystem that cannot reserve writes as before.

use std::fs::File;
use std::io::{IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::batch::{BatchHeader, HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2};
use super::error::LogError;
use super::file_cache::SegmentFile;
use super::file_records::FileRecords;
use super::index::OffsetIndex;
use super::reaper;
use super::time_index::TimeIndex;

/// File name stem of a segment: its base offset in 20 digits, as Kafka names them.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// One batch to append: its patched header and its records, borrowed from
/// the producer's request.
#[derive(Debug)]
pub struct BatchParts<'a> {
    /// The first [`HEADER_SIZE`] bytes, with base offset and epoch patched.
    pub head: [u8; HEADER_SIZE],
    /// The rest of the batch, as sent.
    pub body: &'a [u8],
    /// `head` parsed.
    pub header: BatchHeader,
}

/// Most bytes one read takes from a segment (beyond one whole batch), whatever
/// a fetch asks for: Kafka's default `fetch.max.bytes` is 50 MiB.
pub const MAX_READ_BYTES: usize = 64 << 20;

/// The first blocks a segment reserves ahead of its appends (see the module docs).
pub const RESERVE_MIN: u64 = 64 << 10;

/// The most a segment reserves ahead of its appends at once, until
/// [`set_reserve_max`] (`log.segment.reserve.bytes`).
pub const DEFAULT_RESERVE_MAX: u64 = 8 << 20;

static RESERVE_MAX: AtomicU64 = AtomicU64::new(DEFAULT_RESERVE_MAX);

/// Sets the most a segment reserves ahead of its appends at once, for the
/// whole process (`log.segment.reserve.bytes`, read at start); 0 reserves
/// nothing.
pub fn set_reserve_max(bytes: u64) {
    RESERVE_MAX.store(bytes, Ordering::Relaxed);
}

/// Extension of a cleaned segment before it is swapped in.
pub const CLEANED_EXTENSION: &str = "log.cleaned";

/// Where a scan for an offset landed.
#[derive(Debug, Clone, Copy)]
pub struct BatchPosition {
    /// Byte position of the batch in the segment.
    pub position: u64,
    /// The batch's header.
    pub header: BatchHeader,
}

/// What recovery did to a segment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from a torn or corrupt tail.
    pub truncated_bytes: u64,
    /// Whether the indexes were rebuilt from the log.
    pub rebuilt_indexes: bool,
}

/// Source of [`Segment::lineage`] values, unique within the process.
static NEXT_LINEAGE: AtomicU64 = AtomicU64::new(1);

fn new_lineage() -> u64 {
    NEXT_LINEAGE.fetch_add(1, Ordering::Relaxed)
}

/// A segment and its indexes.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    /// Opened on demand; the handles it gives are shared with the
    /// [`FileRecords`] of fetches in flight, which keep reading the file
    /// after the segment is deleted or replaced, or the handle evicted.
    log: SegmentFile,
    /// Whether appends or a truncation have not been fsynced yet.
    unsynced: bool,
    size: u64,
    /// The end of the file's blocks reserved ahead of its appends (at least
    /// `size`; see the module docs).
    reserved: u64,
    index: OffsetIndex,
    time_index: TimeIndex,
    next_offset: i64,
    /// Opened by [`Segment::open_sealed`] without reading the `.log`:
    /// `next_offset` is then the next segment's base offset, an upper bound
    /// (exact unless compaction removed the segment's last records) until a
    /// truncation walks the batches.
    tail_unverified: bool,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    rolling_base_ms: Option<i64>,
    bytes_since_index_entry: u64,
    /// Bytes from the start of the file known sound in this process (see
    /// [`Segment::verified_to`]); advanced by reads under the log's read
    /// lock, hence atomic.
    verified_to: AtomicU64,
    /// Where this process's present run of appends began: the bytes from
    /// here to `size` were validated before they were written, so a mark
    /// reaching here covers the whole file. `u64::MAX` once an append left
    /// bytes it could not cut (nothing appended is held for sound then).
    appended_from: u64,
    /// Times [`Segment::forget_verified`] ran (see [`Segment::trust`]).
    forgotten: u64,
    /// See [`Segment::lineage`].
    lineage: u64,
}

impl Segment {
    /// Creates an empty segment at `base_offset` in `dir`.
    pub fn create(dir: &Path, base_offset: i64) -> Result<Segment, LogError> {
        let (log_path, index_path, time_path) = paths(dir, base_offset);
        let log = SegmentFile::create(&log_path)?;
        Segment::with_fresh_indexes(base_offset, log, 0, &index_path, &time_path)
    }

    /// A segment over an open `.log` of `size` bytes with new, empty indexes
    /// (to be filled by appends or by [`Segment::recover`]).
    fn with_fresh_indexes(
        base_offset: i64,
        log: SegmentFile,
        size: u64,
        index_path: &Path,
        time_path: &Path,
    ) -> Result<Segment, LogError> {
        Ok(Segment {
            base_offset,
            log,
            unsynced: true,
            size,
            index: OffsetIndex::create(index_path)?,
            time_index: TimeIndex::create(time_path)?,
            next_offset: base_offset,
            tail_unverified: false,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            rolling_base_ms: None,
            bytes_since_index_entry: 0,
            // What recovery walks, or appends, makes sound.
            verified_to: AtomicU64::new(0),
            appended_from: size,
            reserved: size,
            forgotten: 0,
            lineage: new_lineage(),
        })
    }

    /// Opens an existing segment. With `full_recovery` (the active segment,
    /// or any whose indexes are unusable) every batch is CRC-checked, a torn
    /// or corrupt tail is truncated, and the indexes are rebuilt.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        full_recovery: bool,
        index_interval_bytes: u32,
    ) -> Result<(Segment, Recovery), LogError> {
        let (log_path, index_path, time_path) = paths(dir, base_offset);
        let log = SegmentFile::existing(&log_path);
        let file = log.get()?;
        let size = file.metadata().map_err(LogError::io(&log_path))?.len();
        let loaded = if full_recovery {
            None
        } else {
            load_indexes(&file, &log_path, size, base_offset, &index_path, &time_path)?
        };
        drop(file);
        if let Some(clean) = loaded {
            let mut segment = Segment {
                base_offset,
                log,
                unsynced: false,
                size,
                index: clean.index,
                time_index: clean.time_index,
                next_offset: clean.next_offset,
                tail_unverified: false,
                max_timestamp: clean.max_timestamp,
                offset_of_max_timestamp: clean.offset_of_max_timestamp,
                rolling_base_ms: clean.rolling_base_ms,
                bytes_since_index_entry: 0,
                verified_to: AtomicU64::new(0),
                appended_from: size,
                reserved: size,
                forgotten: 0,
                lineage: new_lineage(),
            };
            // A segment cleaned before compaction sealed its result may have
            // its largest timestamp only in the batches walked: record it,
            // as a seal does, so a later start can trust the time index
            // alone ([`Segment::open_sealed`]).
            if segment.max_timestamp >= 0
                && segment.time_index.last().is_none_or(|t| t.timestamp < segment.max_timestamp)
            {
                let rel = segment.relative(segment.offset_of_max_timestamp);
                segment.time_index.maybe_append(segment.max_timestamp, rel)?;
                segment.time_index.flush(true)?;
            }
            return Ok((segment, Recovery::default()));
        }
        let mut segment = Segment::with_fresh_indexes(base_offset, log, size, &index_path, &time_path)?;
        let recovery = segment.recover(index_interval_bytes)?;
        Ok((segment, recovery))
    }

    /// Opens a sealed segment (not the active one) after a clean shutdown
    /// without opening its `.log`: its indexes were completed and fsynced
    /// when it was sealed, and its time index ends with its largest
    /// timestamp. `next_base` is the next segment's base offset. `None` when
    /// an index is missing or fails its sanity checks (then
    /// [`Segment::open`] must walk the log).
    pub fn open_sealed(dir: &Path, base_offset: i64, next_base: i64) -> Result<Option<Segment>, LogError> {
        let (log_path, index_path, time_path) = paths(dir, base_offset);
        let size = std::fs::metadata(&log_path).map_err(LogError::io(&log_path))?.len();
        let Some(index) = OffsetIndex::load(&index_path, size)? else { return Ok(None) };
        let max_relative = (next_base - 1 - base_offset).clamp(0, u32::MAX as i64) as u32;
        let Some(time_index) = TimeIndex::load(&time_path, max_relative)? else { return Ok(None) };
        let (max_timestamp, offset_of_max_timestamp) =
            time_index.last().map_or((-1, -1), |t| (t.timestamp, base_offset + i64::from(t.relative_offset)));
        Ok(Some(Segment {
            base_offset,
            log: SegmentFile::existing(&log_path),
            unsynced: false,
            size,
            index,
            time_index,
            next_offset: if size == 0 { base_offset } else { next_base },
            tail_unverified: size > 0,
            max_timestamp,
            offset_of_max_timestamp,
            rolling_base_ms: None,
            bytes_since_index_entry: 0,
            verified_to: AtomicU64::new(0),
            appended_from: size,
            reserved: size,
            forgotten: 0,
            lineage: new_lineage(),
        }))
    }

    /// Scans every batch, truncates at the first bad one, rebuilds indexes.
    fn recover(&mut self, interval: u32) -> Result<Recovery, LogError> {
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.rolling_base_ms = None;
        self.bytes_since_index_entry = 0;
        let file_size = self.size;
        let mut position = 0u64;
        let mut buf = Vec::new();
        let log = self.log.get()?;
        while position < file_size {
            let Some(header) = self.valid_batch_at(&log, position, file_size, &mut buf) else { break };
            self.track_appended(position, &header, interval)?;
            position += header.size() as u64;
        }
        let truncated_bytes = file_size - position;
        if truncated_bytes > 0 {
            tracing::warn!(
                segment = %self.log.path().display(),
                position,
                truncated_bytes,
                "truncating a torn or corrupt tail found by recovery"
            );
            log.set_len(position).map_err(LogError::io(self.log.path()))?;
            log.sync_all().map_err(LogError::io(self.log.path()))?;
        }
        self.size = position;
        self.reserved = position;
        // Every batch left was just CRC-checked.
        *self.verified_to.get_mut() = position;
        self.appended_from = position;
        self.index.flush(false)?;
        self.time_index.flush(false)?;
        Ok(Recovery { truncated_bytes, rebuilt_indexes: true })
    }

    /// The header of the batch at `position` if the whole batch is present,
    /// magic 2, CRC-valid, and continues the offsets; `None` otherwise.
    fn valid_batch_at(&self, log: &File, position: u64, file_size: u64, buf: &mut Vec<u8>) -> Option<BatchHeader> {
        let header = read_header(log, self.log.path(), position).ok()?;
        if header.magic != MAGIC_V2
            || header.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32
            || position + header.size() as u64 > file_size
            || header.base_offset < self.next_offset
            || header.last_offset_delta < 0
            // The base offset is outside the CRC: keep it within the range a
            // segment can address, as Kafka does.
            || header.base_offset.checked_add(i64::from(header.last_offset_delta)).is_none()
            || header.base_offset - self.base_offset > i64::from(i32::MAX)
        {
            return None;
        }
        buf.resize(header.size(), 0);
        log.read_exact_at(buf, position).ok()?;
        (crc32c::crc32c(&buf[21..]) == header.crc).then_some(header)
    }

    /// Updates offsets, timestamps and indexes for a batch now at `position`.
    fn track_appended(&mut self, position: u64, header: &BatchHeader, interval: u32) -> Result<(), LogError> {
        if self.bytes_since_index_entry > u64::from(interval) {
            let rel = self.relative(header.base_offset);
            self.index.append(rel, position as u32)?;
            if self.max_timestamp >= 0 {
                self.time_index.maybe_append(self.max_timestamp, self.relative(self.offset_of_max_timestamp))?;
            }
            self.bytes_since_index_entry = 0;
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.rolling_base_ms.is_none() {
            self.rolling_base_ms = Some(header.max_timestamp);
        }
        self.next_offset = header.next_offset();
        self.bytes_since_index_entry += header.size() as u64;
        Ok(())
    }

    fn relative(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32
    }

    /// Appends batches already validated, with their patched headers, in
    /// one vectored write.
    pub fn append(&mut self, batches: &[BatchParts<'_>], interval: u32, segment_bytes: u64) -> Result<(), LogError> {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batches.len() * 2);
        for b in batches {
            slices.push(IoSlice::new(&b.head));
            slices.push(IoSlice::new(b.body));
        }
        let total: usize = batches.iter().map(|b| b.head.len() + b.body.len()).sum();
        let log = self.log.get()?;
        self.unsynced = true;
        self.reserve_ahead(&log, self.size + total as u64, segment_bytes);
        if let Err(e) = write_all_vectored(&log, &mut slices) {
            // Cut what part of the write reached the file, so the next append
            // does not land behind torn bytes. If that fails too, appends may
            // no longer land where `size` says: hold nothing for sound.
            if log.set_len(self.size).is_err() {
                *self.verified_to.get_mut() = 0;
                self.appended_from = u64::MAX;
            }
            // The cut freed the blocks reserved past it.
            self.reserved = self.size;
            return Err(LogError::Io { path: self.log.path().to_owned(), source: e });
        }
        let start = self.size;
        // The bytes are in the file: account for them before index upkeep,
        // which can fail without making the batches any less written.
        self.size += total as u64;
        // Validated before they were written: sound, if what precedes is.
        let verified = self.verified_to.get_mut();
        if *verified >= self.appended_from {
            *verified = self.size;
        }
        let mut position = start;
        for b in batches {
            self.track_appended(position, &b.header, interval)?;
            position += b.header.size() as u64;
        }
        Ok(())
    }

    /// Reserves the file's blocks ahead of a write ending at `end`, unless
    /// they are: as much again as the file will hold, from [`RESERVE_MIN`]
    /// up to the process's maximum ([`set_reserve_max`]), never past
    /// `segment_bytes` (see the module docs). A failure (a filesystem
    /// without `fallocate`, a full disk) is not the append's: the write then
    /// allocates as it would have, and reports a full disk itself.
    fn reserve_ahead(&mut self, log: &File, end: u64, segment_bytes: u64) {
        let max = RESERVE_MAX.load(Ordering::Relaxed);
        if end <= self.reserved || max == 0 {
            return;
        }
        let from = self.reserved.max(self.size);
        let ahead = end.clamp(RESERVE_MIN.min(max), max);
        let target = end.saturating_add(ahead).min(segment_bytes.max(end));
        if target > from
            && let Err(e) = rustix::fs::fallocate(log, rustix::fs::FallocateFlags::KEEP_SIZE, from, target - from)
        {
            tracing::debug!(segment = %self.log.path().display(), "cannot reserve blocks ahead of appends: {e}");
        }
        // Tried once per range either way.
        self.reserved = target;
    }

    /// Reads the header of the batch at `position`.
    pub fn header_at(&self, position: u64) -> Result<BatchHeader, LogError> {
        read_header(&*self.log.get()?, self.log.path(), position)
    }

    /// The first batch whose last offset is at or after `offset`, if any.
    pub fn find_batch(&self, offset: i64) -> Result<Option<BatchPosition>, LogError> {
        if self.size == 0 {
            return Ok(None);
        }
        self.find_batch_in(&*self.log.get()?, offset)
    }

    fn find_batch_in(&self, log: &File, offset: i64) -> Result<Option<BatchPosition>, LogError> {
        let mut position = self.index.lookup(self.relative(offset)).map_or(0, |e| u64::from(e.position));
        while position < self.size {
            let header = read_header(log, self.log.path(), position)?;
            if header.last_offset() >= offset {
                return Ok(Some(BatchPosition { position, header }));
            }
            position += header.size() as u64;
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch from the one holding `offset` on.
    pub fn for_each_header_from(&self, offset: i64, mut f: impl FnMut(&BatchHeader)) -> Result<(), LogError> {
        if self.size == 0 {
            return Ok(());
        }
        let log = self.log.get()?;
        let Some(first) = self.find_batch_in(&log, offset)? else { return Ok(()) };
        let mut position = first.position;
        while position < self.size {
            let header = read_header(&log, self.log.path(), position)?;
            f(&header);
            position += header.size() as u64;
        }
        Ok(())
    }

    /// Calls `f` with the header of every batch from the one holding
    /// `offset` on, and — for control batches, which are small — the whole
    /// batch's bytes (to read their marker).
    pub fn for_each_batch_from(
        &self,
        offset: i64,
        mut f: impl FnMut(&BatchHeader, Option<&[u8]>) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        if self.size == 0 {
            return Ok(());
        }
        let log = self.log.get()?;
        let Some(first) = self.find_batch_in(&log, offset)? else { return Ok(()) };
        let mut position = first.position;
        while position < self.size {
            let header = read_header(&log, self.log.path(), position)?;
            if header.is_control() {
                let mut bytes = vec![0u8; header.size()];
                log.read_exact_at(&mut bytes, position).map_err(LogError::io(self.log.path()))?;
                f(&header, Some(&bytes))?;
            } else {
                f(&header, None)?;
            }
            position += header.size() as u64;
        }
        Ok(())
    }

    /// Locates whole batches starting with `first` (found by
    /// [`Segment::find_batch`]): as many as fit in `max_bytes` — but at least
    /// `first` when `min_one_batch` — and none ending at or past
    /// `max_offset_exclusive`. `None` when `first` itself is held back (or
    /// does not fit). Only batch headers are read.
    pub fn slice_from(
        &self,
        first: BatchPosition,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_batch: bool,
    ) -> Result<Option<FileRecords>, LogError> {
        if first.header.next_offset() > max_offset_exclusive {
            return Ok(None);
        }
        let start = first.position;
        let at_least = if min_one_batch { first.header.size() as u64 } else { 0 };
        let budget = (max_bytes.min(MAX_READ_BYTES) as u64).max(at_least).min(self.size - start);
        let (mut end, mut records, mut end_offset) = (start, 0u64, first.header.base_offset);
        let mut header = first.header;
        let log = self.log.get()?;
        loop {
            if end - start + header.size() as u64 > budget || header.next_offset() > max_offset_exclusive {
                break;
            }
            end += header.size() as u64;
            records += header.records_count.max(0) as u64;
            end_offset = header.next_offset();
            if end - start + HEADER_SIZE as u64 > budget {
                break;
            }
            header = read_header(&log, self.log.path(), end)?;
        }
        let len = (end - start) as usize;
        Ok((len > 0).then(|| {
            FileRecords::new(log, self.log.path().to_owned(), start, len, records).with_end_offset(end_offset)
        }))
    }

    /// The whole `.log` file.
    pub fn read_all(&self) -> Result<Vec<u8>, LogError> {
        let mut bytes = vec![0u8; self.size as usize];
        if self.size > 0 {
            self.log.get()?.read_exact_at(&mut bytes, 0).map_err(LogError::io(self.log.path()))?;
        }
        Ok(bytes)
    }

    /// Replaces the segment's batches with `bytes` (a cleaned copy): written
    /// to `<stem>.log.cleaned` and synced, the indexes set aside for the
    /// reaper, then renamed over the `.log` and reopened with rebuilt
    /// indexes. The old `.log` first gets a second, set-aside name (a hard
    /// link) that the reaper removes, so the rename frees nothing here. A
    /// crash leaves either the old segment (a stray `.cleaned` file is
    /// removed on open) or the new one with indexes to rebuild, and perhaps
    /// a set-aside name, removed on open.
    pub fn replace_contents(self, bytes: &[u8], index_interval_bytes: u32) -> Result<Segment, LogError> {
        let dir = self.log.path().parent().map(Path::to_path_buf).unwrap_or_default();
        let (log_path, index_path, time_path) = paths(&dir, self.base_offset);
        let cleaned = log_path.with_extension(CLEANED_EXTENSION);
        {
            let mut f = File::create(&cleaned).map_err(LogError::io(&cleaned))?;
            f.write_all(bytes).map_err(LogError::io(&cleaned))?;
            f.sync_all().map_err(LogError::io(&cleaned))?;
        }
        let base_offset = self.base_offset;
        // Hands the cached handle to the reaper: nothing may reopen the old
        // file by its path once the cleaned one is renamed over it.
        drop(self);
        for path in [&index_path, &time_path] {
            reaper::set_aside(path)?;
        }
        let old = reaper::aside_path(&log_path);
        std::fs::hard_link(&log_path, &old).map_err(LogError::io(&old))?;
        let renamed = std::fs::rename(&cleaned, &log_path).map_err(LogError::io(&log_path));
        // Renamed or not, the second name goes (the old file keeps its own
        // if the rename failed).
        reaper::remove_file(old);
        renamed?;
        let (mut segment, _) = Segment::open(&dir, base_offset, true, index_interval_bytes)?;
        // Like a roll: the time index ends with the largest timestamp and
        // everything is on disk, so the segment can be opened sealed later.
        segment.seal()?;
        Ok(segment)
    }

    /// Truncates the segment so its last record is below `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset >= self.next_offset && !self.tail_unverified {
            return Ok(());
        }
        // The batch holding `offset` goes whole: index entries from its base on go too.
        let log = self.log.get()?;
        let (position, cut_at) = self
            .find_batch_in(&log, offset)?
            .map_or((self.size, offset), |b| (b.position, b.header.base_offset.min(offset)));
        log.set_len(position).map_err(LogError::io(self.log.path()))?;
        self.unsynced = true;
        self.size = position;
        // The truncation freed the blocks reserved past it.
        self.reserved = position;
        self.lineage = new_lineage();
        let verified = self.verified_to.get_mut();
        *verified = (*verified).min(position);
        self.appended_from = self.appended_from.min(position);
        self.bytes_since_index_entry = 0;
        let rel = self.relative(cut_at);
        self.index.truncate_to(rel)?;
        self.time_index.truncate_to(rel)?;
        // Recompute what the tail tells us.
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.rolling_base_ms = None;
        self.tail_unverified = false;
        let mut position = 0;
        while position < self.size {
            let h = read_header(&log, self.log.path(), position)?;
            self.rolling_base_ms.get_or_insert(h.max_timestamp);
            self.next_offset = h.next_offset();
            if h.max_timestamp > self.max_timestamp {
                self.max_timestamp = h.max_timestamp;
                self.offset_of_max_timestamp = h.last_offset();
            }
            position += h.size() as u64;
        }
        Ok(())
    }

    /// The first record at or after `timestamp` with offset at least
    /// `min_offset`: (its timestamp, its offset).
    pub fn find_by_timestamp(&self, timestamp: i64, min_offset: i64) -> Result<Option<(i64, i64)>, LogError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let from_offset = self
            .time_index
            .lookup_before(timestamp)
            .map_or(self.base_offset, |e| self.base_offset + i64::from(e.relative_offset))
            .max(min_offset);
        let log = self.log.get()?;
        let Some(mut batch) = self.find_batch_in(&log, from_offset)? else { return Ok(None) };
        loop {
            if batch.header.max_timestamp >= timestamp && batch.header.last_offset() >= min_offset {
                let mut bytes = vec![0u8; batch.header.size()];
                log.read_exact_at(&mut bytes, batch.position).map_err(LogError::io(self.log.path()))?;
                if let Some(found) = first_record_at_or_after(&bytes, &batch.header, timestamp, min_offset)? {
                    return Ok(Some(found));
                }
            }
            let next = batch.position + batch.header.size() as u64;
            if next >= self.size {
                return Ok(None);
            }
            batch = BatchPosition { position: next, header: read_header(&log, self.log.path(), next)? };
        }
    }

    /// Writes index buffers out; fsyncs everything written since the last
    /// fsync when `sync` (a segment with nothing new is not even opened).
    pub fn flush(&mut self, sync: bool) -> Result<(), LogError> {
        if sync && self.unsynced {
            self.log.get()?.sync_data().map_err(LogError::io(self.log.path()))?;
            self.unsynced = false;
        }
        self.index.flush(sync)?;
        self.time_index.flush(sync)
    }

    /// Called when a newer segment takes over: records the final largest
    /// timestamp in the time index and flushes.
    pub fn seal(&mut self) -> Result<(), LogError> {
        if self.max_timestamp >= 0 {
            let rel = self.relative(self.offset_of_max_timestamp);
            self.time_index.maybe_append(self.max_timestamp, rel)?;
        }
        self.flush(true)
    }

    /// Deletes the segment's files: renames them out of the log's way now
    /// and leaves their removal to the [`reaper`](super::reaper), so that
    /// freeing their blocks does not happen under the caller's locks.
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.log.path().parent().map(Path::to_path_buf).unwrap_or_default();
        let base_offset = self.base_offset;
        // Hands the cached handle to the reaper first (reads in flight keep theirs).
        drop(self);
        let (log, index, time) = paths(&dir, base_offset);
        for path in [log, index, time, super::txn_index::path(&dir, base_offset)] {
            reaper::set_aside(&path)?;
        }
        Ok(())
    }

    /// First offset the segment may hold.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// One past the last offset in the segment.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Bytes in the `.log` file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes from the start of the `.log` this process holds for sound:
    /// checked by recovery or by a read or scrub ([`Segment::mark_verified`]),
    /// and the batches it appended since (validated before they were
    /// written) once the checked prefix reaches them. Bytes a previous
    /// process verified, or that the file held when opened from its indexes
    /// alone, are not counted.
    pub fn verified_to(&self) -> u64 {
        self.verified_to.load(Ordering::Acquire)
    }

    /// Records that bytes `from..to` of the `.log` were checked sound: the
    /// verified prefix grows to `to` if it reached `from` — to the whole
    /// file if that reaches what this process appended since.
    pub fn mark_verified(&self, from: u64, to: u64) {
        let to = to.min(self.size);
        let to = if to >= self.appended_from { self.size } else { to };
        let _ =
            self.verified_to.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| (v >= from && to > v).then_some(to));
    }

    /// Holds nothing of the file for sound any more: the next reads check
    /// (appends from now on count once a check reaches them).
    pub fn forget_verified(&mut self) {
        *self.verified_to.get_mut() = 0;
        self.appended_from = self.appended_from.max(self.size);
        self.forgotten += 1;
    }

    /// What a check made without the log's lock must still match for its
    /// result to count: the [`Segment::lineage`] (the bytes are the same)
    /// and how often the marks were forgotten (a scan begun before a
    /// [`Segment::forget_verified`] does not restore what it forgot).
    pub fn trust(&self) -> (u64, u64) {
        (self.lineage, self.forgotten)
    }

    /// Identifies the bytes the file holds: changes whenever bytes already
    /// written may change (a truncation), never on an append, and is never
    /// reused by another segment of this process. Two looks at a segment
    /// with the same lineage saw the same bytes up to the smaller size.
    pub fn lineage(&self) -> u64 {
        self.lineage
    }

    /// Whether the segment holds no batch.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Largest record timestamp and its offset, if any record.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        (self.offset_of_max_timestamp >= 0).then_some((self.max_timestamp, self.offset_of_max_timestamp))
    }

    /// Time the segment's age is measured from, as Kafka does: the max
    /// timestamp of its first batch (so the same after a restart).
    pub fn rolling_base_ms(&self) -> Option<i64> {
        self.rolling_base_ms
    }

    /// The `.log` path.
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// The offset index (for tests and diagnostics).
    pub fn offset_index(&self) -> &OffsetIndex {
        &self.index
    }

    /// The time index (for tests and diagnostics).
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }
}

/// Writes all of `slices` at the end of an append-mode file.
fn write_all_vectored(mut file: &File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        let n = file.write_vectored(slices)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "log file accepted no bytes"));
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Reads the batch header at `position` of a `.log` file.
fn read_header(log: &File, path: &Path, position: u64) -> Result<BatchHeader, LogError> {
    let mut buf = [0u8; HEADER_SIZE];
    log.read_exact_at(&mut buf, position).map_err(LogError::io(path))?;
    BatchHeader::parse(&buf)
}

/// What a segment's sane index files tell without scanning the whole log.
struct CleanIndexes {
    index: OffsetIndex,
    time_index: TimeIndex,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    rolling_base_ms: Option<i64>,
}

/// Loads both indexes if present and consistent with the log, walking batch
/// headers from the last indexed position to confirm the log ends on a batch
/// boundary; `None` means the segment needs a full recovery.
fn load_indexes(
    log: &File,
    log_path: &Path,
    size: u64,
    base_offset: i64,
    index_path: &Path,
    time_path: &Path,
) -> Result<Option<CleanIndexes>, LogError> {
    let Some(index) = OffsetIndex::load(index_path, size)? else { return Ok(None) };
    let mut position = index.entries().last().map_or(0, |e| u64::from(e.position));
    let mut last: Option<BatchHeader> = None;
    // The largest timestamp among the batches walked (the time index may not
    // have an entry for them).
    let mut walked_max: Option<(i64, i64)> = None;
    while position < size {
        match read_header(log, log_path, position) {
            Ok(h) if h.magic == MAGIC_V2 && h.batch_length >= (HEADER_SIZE - LOG_OVERHEAD) as i32 => {
                position += h.size() as u64;
                if walked_max.is_none_or(|(ts, _)| h.max_timestamp > ts) {
                    walked_max = Some((h.max_timestamp, h.last_offset()));
                }
                last = Some(h);
            }
            _ => return Ok(None),
        }
    }
    if position != size {
        return Ok(None);
    }
    let max_relative = last.map_or(0, |h| (h.last_offset() - base_offset).clamp(0, u32::MAX as i64) as u32);
    let Some(time_index) = TimeIndex::load(time_path, max_relative)? else { return Ok(None) };
    let (mut max_timestamp, mut offset_of_max_timestamp) =
        time_index.last().map_or((-1, -1), |t| (t.timestamp, base_offset + i64::from(t.relative_offset)));
    if let Some((ts, offset)) = walked_max
        && ts > max_timestamp
    {
        max_timestamp = ts;
        offset_of_max_timestamp = offset;
    }
    let rolling_base_ms = if size > 0 { Some(read_header(log, log_path, 0)?.max_timestamp) } else { None };
    Ok(Some(CleanIndexes {
        index,
        time_index,
        next_offset: last.map_or(base_offset, |h| h.next_offset()),
        max_timestamp,
        offset_of_max_timestamp,
        rolling_base_ms,
    }))
}

fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
    let stem = file_stem(base_offset);
    (dir.join(format!("{stem}.log")), dir.join(format!("{stem}.index")), dir.join(format!("{stem}.timeindex")))
}

/// Decodes a batch (decompressing if needed) to find the first record with
/// timestamp ≥ `timestamp` and offset ≥ `min_offset`.
fn first_record_at_or_after(
    bytes: &[u8],
    header: &BatchHeader,
    timestamp: i64,
    min_offset: i64,
) -> Result<Option<(i64, i64)>, LogError> {
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    let set = super::decompress::decode_batch(&mut buf)
        .map_err(|e| LogError::corrupt(format!("decoding stored batch at offset {}: {e}", header.base_offset)))?;
    let log_append = header.attributes & 0x08 != 0;
    Ok(set.records.iter().find_map(|r| {
        let ts = if log_append { header.max_timestamp } else { r.timestamp };
        (ts >= timestamp && r.offset >= min_offset).then_some((ts, r.offset))
    }))
}
