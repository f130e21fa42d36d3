//! The Raft log, the vote and the commit point, persisted as simple files.
//!
//! Layout under the store's directory:
//! - `vote.json`, `committed.json`, `purged.json` — one value each, replaced
//!   atomically (written to a temp file, fsynced, renamed, directory fsynced);
//! - `log/<index, 20 digits>.json` — one entry per file.
//!
//! The metadata log is small and snapshots purge it, so one file per entry
//! keeps truncation and purging trivially crash-safe: truncation deletes from
//! the highest index down and purging records the purge point before deleting
//! from the lowest up, so a crash never leaves a hole in the log.
//!
//! Ownership: openraft calls the write methods one at a time from its core
//! task; the in-memory copy behind the mutex serves readers. The mutex is
//! never held across an `.await` or during file I/O, which runs on the
//! blocking pool, tracked by the node's [`TaskTracker`] so that shutting the
//! node down waits for a write already under way.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::task::TaskTracker;

use super::{NodeId, TypeConfig};

/// The Raft log store of one controller node. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct LogStore {
    dir: PathBuf,
    inner: Arc<Mutex<Inner>>,
    io: TaskTracker,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

fn io_error(e: impl std::error::Error + 'static) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Writes `value` as JSON to `path` atomically.
pub(crate) fn write_atomically(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io_error)?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Reads a JSON value, `None` when the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn entry_path(log_dir: &Path, index: u64) -> PathBuf {
    log_dir.join(format!("{index:020}.json"))
}

/// Runs file I/O on the blocking pool, tracked by `io`.
pub(crate) async fn blocking<T: Send + 'static>(
    io: &TaskTracker,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    io.spawn_blocking(f).await.map_err(io_error)?
}

impl LogStore {
    /// Opens (or creates) the store in `dir`, loading what a previous run kept;
    /// its writes are tracked by `io`. Blocking: call it before starting Raft,
    /// off the reactor.
    pub fn open(dir: &Path, io: TaskTracker) -> std::io::Result<LogStore> {
        let log_dir = dir.join("log");
        std::fs::create_dir_all(&log_dir)?;
        let vote = read_json(&dir.join("vote.json"))?;
        let committed = read_json(&dir.join("committed.json"))?;
        let last_purged: Option<LogId<NodeId>> = read_json(&dir.join("purged.json"))?;
        let mut entries = BTreeMap::new();
        for file in std::fs::read_dir(&log_dir)? {
            let path = file?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                // A temp file of a write that crashed: the entry was never acknowledged.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            // Entries are written whole (temp file, fsync, rename), so a damaged
            // one was damaged outside Strom. Dropping it could lose a committed
            // entry this node acknowledged, so the node refuses to start.
            let entry = read_json::<Entry<TypeConfig>>(&path).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "controller log entry {} is damaged ({e}); this voter cannot safely start with it — \
                         restore the controller directory from a backup",
                        path.display()
                    ),
                )
            })?;
            let Some(entry) = entry else { continue };
            if last_purged.is_some_and(|p| entry.log_id.index <= p.index) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            entries.insert(entry.log_id.index, entry);
        }
        let mut expected = last_purged.map(|p| p.index + 1);
        for &index in entries.keys() {
            if let Some(e) = expected
                && index != e
            {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("controller log in {} has a hole: entry {e} is missing before {index}", log_dir.display()),
                ));
            }
            expected = Some(index + 1);
        }
        Ok(LogStore {
            dir: dir.to_path_buf(),
            inner: Arc::new(Mutex::new(Inner { entries, last_purged, vote, committed })),
            io,
        })
    }
}

impl LogStore {
    /// Whether nothing was ever stored: no vote and no log.
    pub fn is_empty(&self) -> bool {
        let inner = self.inner.lock();
        inner.vote.is_none() && inner.entries.is_empty() && inner.last_purged.is_none()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.inner.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let path = self.dir.join("vote.json");
        let v = *vote;
        blocking(&self.io, move || write_atomically(&path, &v))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        self.inner.lock().vote = Some(v);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        let path = self.dir.join("committed.json");
        blocking(&self.io, move || write_atomically(&path, &committed))
            .await
            .map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        self.inner.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let log_dir = self.dir.join("log");
        let to_write = entries.clone();
        let written = blocking(&self.io, move || {
            for entry in &to_write {
                let path = entry_path(&log_dir, entry.log_id.index);
                let bytes = serde_json::to_vec(entry).map_err(io_error)?;
                let tmp = path.with_extension("tmp");
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
            }
            match to_write.first() {
                Some(e) => sync_dir(&entry_path(&log_dir, e.log_id.index)),
                None => Ok(()),
            }
        })
        .await;
        if let Err(e) = &written {
            let err = StorageIOError::write_logs(AnyError::new(e));
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(err.into());
        }
        {
            let mut inner = self.inner.lock();
            for entry in entries {
                inner.entries.insert(entry.log_id.index, entry);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let removed: Vec<u64> = {
            let mut inner = self.inner.lock();
            let gone = inner.entries.split_off(&log_id.index);
            gone.into_keys().collect()
        };
        let log_dir = self.dir.join("log");
        blocking(&self.io, move || {
            // Highest first: a crash midway leaves a shorter log, never a hole.
            for index in removed.into_iter().rev() {
                match std::fs::remove_file(entry_path(&log_dir, index)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            sync_dir(&entry_path(&log_dir, 0))
        })
        .await
        .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let purged_path = self.dir.join("purged.json");
        let value = Some(log_id);
        blocking(&self.io, move || write_atomically(&purged_path, &value))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        let removed: Vec<u64> = {
            let mut inner = self.inner.lock();
            inner.last_purged = Some(log_id);
            let keep = inner.entries.split_off(&(log_id.index + 1));
            std::mem::replace(&mut inner.entries, keep).into_keys().collect()
        };
        let log_dir = self.dir.join("log");
        // The purge point is durable: a leftover file is ignored and removed on open.
        blocking(&self.io, move || {
            for index in removed {
                let _ = std::fs::remove_file(entry_path(&log_dir, index));
            }
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        Ok(())
    }
}
