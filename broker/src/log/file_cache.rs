//! The log's open-file budget: one process-wide, bounded cache of open
//! segment `.log` files, least recently used evicted first.
//!
//! A [`SegmentFile`] names a segment's `.log` by path and opens it only when
//! a read or write needs it ([`SegmentFile::get`]); the open handle stays in
//! the cache for the next use until [`FileCache::budget`] other files push it
//! out, and is closed when its segment is dropped (deleted by retention,
//! truncation or replaced by compaction). So a broker hosting many partitions
//! keeps at most `budget` segment files open, however many segments it has;
//! the active segment of a partition being written is simply the most
//! recently used entry and stays open while it is used. The indexes hold no
//! file open at all (see [`index`](super::index)). No handle is closed
//! under the cache's lock: a dropped segment's handle, and an evicted one
//! whose file has no name left, are closed by the [`reaper`](super::reaper).
//!
//! Invariants:
//! - handles are `Arc<File>`: evicting one drops only the cache's reference,
//!   so a read (or a fetch's [`FileRecords`](super::FileRecords)) that holds
//!   it keeps a valid descriptor to the same inode until it is done; such a
//!   handle is counted in [`FileCache::open_files`] until it goes;
//! - a handle is reopened by path, which is only correct while the path names
//!   the same file: the segment's owner (under the partition log's write lock)
//!   drops the segment before renaming or deleting its file, and dropping a
//!   [`SegmentFile`] removes its entry, so a reopen never finds a replaced
//!   file under an old identity;
//! - no lock is held while a file is opened; two readers missing at once both
//!   open and the second keeps the first's handle.
//!
//! Never imports anything above the log module.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use super::error::LogError;

/// Budget until [`FileCache::set_budget`] is called (unit tests, tools).
pub const DEFAULT_BUDGET: usize = 1024;

/// The smallest budget accepted: a handful of partitions being written and
/// read at once must not thrash.
pub const MIN_BUDGET: usize = 16;

/// The process-wide cache of open segment files.
#[derive(Debug)]
pub struct FileCache {
    budget: AtomicUsize,
    inner: Mutex<Lru>,
    opened: AtomicU64,
    evicted: AtomicU64,
}

#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    /// Segment file id → (handle, last use).
    entries: HashMap<u64, (Arc<File>, u64)>,
    /// Last use → segment file id, oldest first.
    order: BTreeMap<u64, u64>,
    /// Handles pushed out while still referenced by a read, until it ends.
    evicted_in_use: Vec<Weak<File>>,
}

impl Lru {
    fn touch(&mut self, id: u64) -> Option<Arc<File>> {
        self.tick += 1;
        let tick = self.tick;
        let (file, last) = self.entries.get_mut(&id)?;
        self.order.remove(last);
        *last = tick;
        self.order.insert(tick, id);
        Some(file.clone())
    }

    fn remove(&mut self, id: u64) -> Option<Arc<File>> {
        let (file, last) = self.entries.remove(&id)?;
        self.order.remove(&last);
        Some(file)
    }

    fn prune_evicted(&mut self) {
        self.evicted_in_use.retain(|w| w.strong_count() > 0);
    }
}

impl FileCache {
    /// The cache of this process.
    pub fn global() -> &'static FileCache {
        static CACHE: OnceLock<FileCache> = OnceLock::new();
        CACHE.get_or_init(|| FileCache::new(DEFAULT_BUDGET))
    }

    /// An empty cache keeping at most `budget` files open (at least [`MIN_BUDGET`]).
    pub fn new(budget: usize) -> FileCache {
        FileCache {
            budget: AtomicUsize::new(budget.max(MIN_BUDGET)),
            inner: Mutex::new(Lru::default()),
            opened: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// Sets the budget (at least [`MIN_BUDGET`]); files over it are closed now.
    pub fn set_budget(&self, budget: usize) {
        self.budget.store(budget.max(MIN_BUDGET), Ordering::Relaxed);
        let evicted = self.evict_over_budget(&mut self.inner.lock());
        close_later(evicted);
    }

    /// Most segment files the cache keeps open.
    pub fn budget(&self) -> usize {
        self.budget.load(Ordering::Relaxed)
    }

    /// Segment files open now: those cached plus evicted ones a read still holds.
    pub fn open_files(&self) -> usize {
        let mut lru = self.inner.lock();
        lru.prune_evicted();
        lru.entries.len() + lru.evicted_in_use.len()
    }

    /// Segment files opened since start (first opens and reopens).
    pub fn opened_total(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Segment files closed to stay within the budget since start.
    pub fn evicted_total(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn lookup(&self, id: u64) -> Option<Arc<File>> {
        self.inner.lock().touch(id)
    }

    /// Caches `file` for `id` (or returns the handle another thread cached
    /// first), closing the least recently used files over the budget.
    fn insert(&self, id: u64, file: File) -> Arc<File> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        let (file, evicted) = {
            let mut lru = self.inner.lock();
            if let Some(existing) = lru.touch(id) {
                return existing;
            }
            let file = Arc::new(file);
            lru.tick += 1;
            let tick = lru.tick;
            lru.entries.insert(id, (file.clone(), tick));
            lru.order.insert(tick, id);
            (file, self.evict_over_budget(&mut lru))
        };
        close_later(evicted);
        file
    }

    /// Takes the least recently used handles over the budget out of the
    /// cache; the caller closes them through [`close_later`] once the lock
    /// is released.
    fn evict_over_budget(&self, lru: &mut Lru) -> Vec<Arc<File>> {
        let budget = self.budget();
        let mut evicted = Vec::new();
        while lru.entries.len() > budget {
            let Some((_, oldest)) = lru.order.pop_first() else { break };
            if let Some((file, _)) = lru.entries.remove(&oldest) {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                // Still referenced (a read in flight, or the caller that just
                // inserted it when the budget is tiny): counted until it goes.
                if Arc::strong_count(&file) > 1 {
                    lru.evicted_in_use.push(Arc::downgrade(&file));
                }
                evicted.push(file);
            }
        }
        if lru.evicted_in_use.len() > 64 {
            lru.prune_evicted();
        }
        evicted
    }

    /// Drops `id`'s entry; its handle goes to the [`reaper`](super::reaper),
    /// which closes it once no read holds it: the segment is being deleted,
    /// and the last close of a deleted file frees its blocks, which must not
    /// happen under this cache's lock or on the caller's thread.
    fn forget(&self, id: u64) {
        let file = {
            let mut lru = self.inner.lock();
            let file = lru.remove(id);
            if let Some(file) = &file {
                // Counted as open until the reaper closes it.
                lru.evicted_in_use.push(Arc::downgrade(file));
                if lru.evicted_in_use.len() > 64 {
                    lru.prune_evicted();
                }
            }
            file
        };
        if let Some(file) = file {
            super::reaper::close(file);
        }
    }
}

/// Lets go of evicted handles outside the cache's lock. A file that still
/// has a name frees nothing when closed: the cache's reference goes here
/// (a read holding the handle closes it when done). One whose last name a
/// topic deletion already removed frees its blocks at its last close, so
/// it goes to the [`reaper`](super::reaper). Not everything goes there: its
/// queue can wait behind a deleted topic's directory, and evicted handles
/// must not pile up open meanwhile.
fn close_later(evicted: Vec<Arc<File>>) {
    use std::os::unix::fs::MetadataExt;
    for file in evicted {
        if !file.metadata().is_ok_and(|m| m.nlink() > 0) {
            super::reaper::close(file);
        }
    }
}

/// A segment's `.log` file, opened on demand through [`FileCache::global`].
/// Opened for reading and appending (appends go to the end of the file
/// whichever handle makes them). Dropping it closes the cached handle.
#[derive(Debug)]
pub struct SegmentFile {
    id: u64,
    path: PathBuf,
}

impl SegmentFile {
    fn next_id() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Creates the file at `path`, a new empty one even if a file was
    /// there, and caches it open, as a new segment is about to be written.
    ///
    /// A file left at `path` is unlinked, never emptied in place: on ext4,
    /// truncating a file to zero (even an empty one) marks it so that its
    /// next close writes back every dirty page it then has (`auto_da_alloc`,
    /// meant for files rewritten after a truncation). A segment's file is
    /// often first closed when it is deleted, so a deleted topic's fresh
    /// data was written to disk first, stalling the thread that closed it
    /// and every writer queued behind the disk; never truncated, its dirty
    /// pages are dropped unwritten. Reads in flight of the old file keep
    /// their own handle.
    pub fn create(path: &Path) -> Result<SegmentFile, LogError> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::Io { path: path.to_owned(), source: e }),
        }
        let file =
            OpenOptions::new().create_new(true).read(true).append(true).open(path).map_err(LogError::io(path))?;
        let segment_file = SegmentFile { id: SegmentFile::next_id(), path: path.to_owned() };
        FileCache::global().insert(segment_file.id, file);
        Ok(segment_file)
    }

    /// An existing file at `path`, not opened until used.
    pub fn existing(path: &Path) -> SegmentFile {
        SegmentFile { id: SegmentFile::next_id(), path: path.to_owned() }
    }

    /// The open file: cached, or opened now (which may close the least
    /// recently used one). The handle stays valid as long as it is held.
    pub fn get(&self) -> Result<Arc<File>, LogError> {
        let cache = FileCache::global();
        if let Some(file) = cache.lookup(self.id) {
            return Ok(file);
        }
        let file = OpenOptions::new().read(true).append(true).open(&self.path).map_err(LogError::io(&self.path))?;
        Ok(cache.insert(self.id, file))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        FileCache::global().forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_file_is_closed_and_a_held_handle_stays_valid() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(MIN_BUDGET);
        let mut held = Vec::new();
        for id in 0..MIN_BUDGET as u64 {
            let path = dir.path().join(format!("{id}.log"));
            std::fs::write(&path, id.to_be_bytes()).unwrap();
            let file = cache.insert(id, File::open(&path).unwrap());
            if id == 0 {
                held.push(file);
            }
        }
        assert_eq!(cache.open_files(), MIN_BUDGET);
        // Use 1 so that 0 is the oldest, then push one more in: 0 goes.
        assert!(cache.lookup(1).is_some());
        let path = dir.path().join("extra.log");
        std::fs::write(&path, b"x").unwrap();
        cache.insert(1000, File::open(&path).unwrap());
        assert!(cache.lookup(0).is_none(), "the least recently used file was evicted");
        assert!(cache.lookup(1).is_some(), "a recently used file stays");
        assert_eq!(cache.evicted_total(), 1);
        assert_eq!(cache.open_files(), MIN_BUDGET + 1, "the evicted handle is still held by a read");
        let mut buf = [0u8; 8];
        std::os::unix::fs::FileExt::read_exact_at(&*held[0], &mut buf, 0).unwrap();
        assert_eq!(u64::from_be_bytes(buf), 0, "an evicted handle still reads its file");
        held.clear();
        // Counted until the reaper has closed it, which it does unasked.
        wait_for_open_files(&cache, MIN_BUDGET, "released once the read is done");
        cache.forget(1000);
        wait_for_open_files(&cache, MIN_BUDGET - 1, "a forgotten handle is closed");
    }

    fn wait_for_open_files(cache: &FileCache, open: usize, what: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while cache.open_files() != open {
            assert!(std::time::Instant::now() < deadline, "{what}: {} files open, not {open}", cache.open_files());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_segment_file_reopens_after_eviction_and_closes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let segment = SegmentFile::create(&path).unwrap();
        {
            use std::io::Write;
            (&*segment.get().unwrap()).write_all(b"abc").unwrap();
        }
        FileCache::global().forget(segment.id); // as if evicted
        let file = segment.get().unwrap();
        let mut buf = [0u8; 3];
        std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"abc");
        let id = segment.id;
        drop(segment);
        assert!(FileCache::global().lookup(id).is_none(), "dropping the segment file closes its cached handle");
    }

    /// A segment re-created at a path that still holds a file starts empty,
    /// as a new file: the old one is unlinked, not truncated in place (see
    /// [`SegmentFile::create`]), so a read holding the old handle still
    /// reads what it located.
    #[test]
    fn a_segment_created_over_an_old_file_is_a_new_empty_file_and_the_old_one_stays_readable() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.log");
        let old = SegmentFile::create(&path).unwrap();
        {
            use std::io::Write;
            (&*old.get().unwrap()).write_all(b"old batches").unwrap();
        }
        let held = old.get().unwrap();
        let old_inode = held.metadata().unwrap().ino();
        drop(old);

        let new = SegmentFile::create(&path).unwrap();
        let file = new.get().unwrap();
        assert_eq!(file.metadata().unwrap().len(), 0, "the new segment's file starts empty");
        assert_ne!(file.metadata().unwrap().ino(), old_inode, "a new file, not the old one emptied");
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), file.metadata().unwrap().ino());
        let mut buf = [0u8; 11];
        std::os::unix::fs::FileExt::read_exact_at(&*held, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"old batches", "a read in flight of the old file still reads it whole");
    }

    /// Every record of `log` from its start, as (offset, key).
    fn read_keys(log: &crate::log::PartitionLog) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        loop {
            let r = log.read_up_to(offset, 1 << 20, i64::MAX).unwrap();
            if r.records.is_empty() {
                return out;
            }
            let mut buf = r.records.clone();
            let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap();
            for rec in sets.iter().flat_map(|s| s.records.iter()).filter(|rec| rec.offset >= offset) {
                let key = rec.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                out.push((rec.offset, key));
            }
            offset = out.last().map_or(offset, |(o, _)| o + 1);
        }
    }

    /// Many partition logs with far more segments than the budget: appends,
    /// reads, a read holding a handle across evictions, truncation,
    /// retention, compaction and reopening all give what a log with every
    /// file open gives.
    #[test]
    fn logs_with_more_segments_than_the_budget_lose_and_misserve_nothing() {
        use crate::log::batch::tests::encode_batch;
        use crate::log::{CleanupPolicy, LogConfig, PartitionLog, TopicPartition};
        use kafka_protocol::records::Compression;

        let cache = FileCache::global();
        cache.set_budget(MIN_BUDGET);
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 300, index_interval_bytes: 64, ..LogConfig::default() };
        let compacted = LogConfig { cleanup_policy: CleanupPolicy::Compact, ..config.clone() };
        let configs = |i: usize| if i == 3 { compacted.clone() } else { config.clone() };
        let open = |i: usize| {
            let tp = TopicPartition::new("t", i as i32);
            PartitionLog::open(&dir.path().join(tp.to_string()), tp, configs(i)).unwrap()
        };
        let mut logs: Vec<PartitionLog> = (0..12).map(open).collect();
        let mut model: Vec<Vec<(i64, String)>> = vec![Vec::new(); logs.len()];
        let evicted_before = cache.evicted_total();
        for round in 0..10 {
            for (log, model) in logs.iter_mut().zip(&mut model) {
                let info = log.append_as_leader(&encode_batch(3, 20, 1000 + round, Compression::None), 0, 0).unwrap();
                model.extend((0..3).map(|i| (info.base_offset + i, format!("k{i}"))));
            }
        }
        assert!(logs.iter().all(|l| l.segment_count() >= 3), "small segments roll");
        assert!(cache.evicted_total() > evicted_before, "more segment files than the budget");
        for (log, model) in logs.iter().zip(&model) {
            assert_eq!(&read_keys(log), model);
        }

        // A fetch's slice of log 0's first segment survives eviction of its handle.
        let held = logs[0].slice_up_to(0, 1 << 20, i64::MAX, true).unwrap().records.unwrap();
        for log in &logs[1..] {
            read_keys(log);
        }
        let mut bytes = held.read_to_bytes().unwrap();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        assert_eq!(sets[0].records[0].offset, 0);

        // Truncation (a follower diverging), then appends on top.
        logs[1].truncate_to(7).unwrap();
        let end = logs[1].log_end_offset();
        model[1].retain(|(o, _)| *o < end);
        let info = logs[1].append_as_leader(&encode_batch(2, 20, 5000, Compression::None), 1, 0).unwrap();
        assert_eq!(info.base_offset, end);
        model[1].extend((0..2).map(|i| (end + i, format!("k{i}"))));

        // Retention by size.
        logs[2].set_config(LogConfig { retention_bytes: 400, ..config.clone() });
        assert!(logs[2].enforce_retention(0).unwrap() > 0);
        let start = logs[2].log_start_offset();
        model[2].retain(|(o, _)| *o >= start);

        // Compaction swaps segment files under their paths.
        logs[3].compact(i64::MAX / 2).unwrap();
        let compacted_read = read_keys(&logs[3]);
        assert!(compacted_read.len() < model[3].len(), "compaction removed superseded keys");
        assert_eq!(compacted_read.last(), model[3].last(), "the latest record stays");
        model[3] = compacted_read;

        for (log, model) in logs.iter().zip(&model) {
            assert_eq!(&read_keys(log), model, "{}", log.topic_partition());
        }
        for log in &mut logs {
            log.flush().unwrap();
        }
        drop(logs);
        let logs: Vec<PartitionLog> = (0..12).map(open).collect();
        for (log, model) in logs.iter().zip(&model) {
            assert_eq!(&read_keys(log), model, "{} after reopening", log.topic_partition());
        }
        drop(logs);
        cache.set_budget(DEFAULT_BUDGET);
    }
}
