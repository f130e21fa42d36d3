//! The reaper: one background thread that finishes deleting the log's files,
//! so that freeing their blocks never stalls an append, a read or the async
//! runtime.
//!
//! Why a thread: a file's blocks are freed when its last name and its last
//! open handle are both gone, by whichever thread drops the last one. With
//! ext4 mounted `discard` (this project's test machines) that thread then
//! waits for the device to discard every block: measured at 0.1–0.5 s for
//! the segments of one deleted topic, on a runtime thread closing the last
//! handle, on the open-file cache's lock (which every append and read takes)
//! or under a partition's write lock. Without `discard` freeing is cheaper
//! but still proportional to the file's extents.
//!
//! How callers use it:
//! - a deleted segment's handle goes to [`close`] (from the open-file
//!   cache, as does an evicted handle whose file has no name left): the
//!   reaper keeps it until no read holds a clone any more (checking every
//!   [`POLL`]), then closes it, so the last close is its;
//! - what is deleted is first renamed out of the log's way by its owner,
//!   under the partition's lock ([`set_aside`]: `<file>.<unique>.deleted`; a deleted
//!   partition's directory gets its `-delete` name in the log manager), then
//!   handed to [`remove_file`] or [`remove_dir_all`]. The rename is a
//!   directory entry change and frees nothing. A crash before the reaper
//!   gets to it loses nothing and resurrects nothing: opening the log
//!   removes what is left under those names.
//!
//! Deletion is not delayed further (Kafka waits `file.delete.delay.ms`,
//! which Strom accepts without effect): a read that already has a handle
//! keeps reading the file, and one that has none gets a clear error.
//!
//! Jobs run in the order they are queued. Should the thread not start, each
//! job runs on its caller's thread, as before the reaper. Never imports
//! anything above the log module.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::error::LogError;

/// How often the reaper looks whether the reads holding a handle are done.
pub const POLL: Duration = Duration::from_millis(100);

/// The suffix of a file set aside for the reaper.
pub const DELETED_SUFFIX: &str = ".deleted";

enum Job {
    Close(Arc<File>),
    RemoveFile(PathBuf),
    RemoveDir(PathBuf),
    /// Answered once every job queued before it has run.
    Idle(mpsc::Sender<()>),
}

/// The reaper's queue, or `None` if its thread could not start.
fn queue() -> Option<&'static mpsc::Sender<Job>> {
    static QUEUE: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            match std::thread::Builder::new().name("strom-log-reaper".into()).spawn(move || run(rx)) {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!("cannot start the log reaper thread, deleting files inline: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// Runs `job` on the reaper, or here if it has no thread.
fn submit(job: Job) {
    let job = match queue() {
        Some(tx) => match tx.send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    let mut held = Vec::new();
    run_job(job, &mut held);
}

/// Closes `file` on the reaper once it holds the last reference to it.
pub fn close(file: Arc<File>) {
    submit(Job::Close(file));
}

/// Removes the file at `path` on the reaper (already gone is fine).
pub fn remove_file(path: PathBuf) {
    submit(Job::RemoveFile(path));
}

/// Removes the directory at `path` and everything in it on the reaper.
pub fn remove_dir_all(path: PathBuf) {
    submit(Job::RemoveDir(path));
}

/// Renames `path` to a name of its own ending in `.deleted` and has the
/// reaper remove it. A missing file is fine (nothing to delete).
pub fn set_aside(path: &Path) -> Result<(), LogError> {
    let aside = aside_path(path);
    match std::fs::rename(path, &aside) {
        Ok(()) => {
            remove_file(aside);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::Io { path: path.to_owned(), source: e }),
    }
}

/// A new name for `path` to be deleted under: `<path>.<unique>.deleted`.
/// Unique, so a second file set aside from the same path never replaces
/// the first (which would free its blocks on the caller's thread).
pub fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}{DELETED_SUFFIX}", uuid::Uuid::new_v4().simple()));
    PathBuf::from(name)
}

/// Whether `name` is one [`aside_path`] gives.
pub fn is_set_aside(name: &str) -> bool {
    name.ends_with(DELETED_SUFFIX)
}

/// Waits until every job queued before this call has run (handles still
/// shared with a read may stay held).
pub fn idle() {
    let (tx, rx) = mpsc::channel();
    submit(Job::Idle(tx));
    let _ = rx.recv();
}

fn run(rx: mpsc::Receiver<Job>) {
    let mut held: Vec<Arc<File>> = Vec::new();
    loop {
        let job = if held.is_empty() {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        } else {
            match rx.recv_timeout(POLL) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        if let Some(job) = job {
            run_job(job, &mut held);
        }
        // Closes the handles no read holds any more.
        held.retain(|file| Arc::strong_count(file) > 1);
    }
}

fn run_job(job: Job, held: &mut Vec<Arc<File>>) {
    match job {
        Job::Close(file) => held.push(file),
        Job::RemoveFile(path) => match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %path.display(), "cannot remove a deleted log file: {e}"),
        },
        Job::RemoveDir(path) => match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(dir = %path.display(), "cannot remove a deleted partition directory: {e}"),
        },
        Job::Idle(done) => {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_handle_shared_with_a_read_is_closed_by_the_reaper_after_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment.log");
        let file = Arc::new(File::create(&path).unwrap());
        let read = file.clone();
        let watch = Arc::downgrade(&file);
        close(file);
        idle();
        // The reaper keeps its reference while the read holds one.
        assert_eq!(watch.strong_count(), 2, "the reaper let go of a handle a read still holds");
        drop(read);
        // The read's reference was not the last: the reaper's goes after it.
        wait_until("the reaper closes the handle", || watch.strong_count() == 0);
    }

    fn names(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn a_file_set_aside_leaves_its_name_at_once_and_is_removed_by_the_reaper() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        for _ in 0..2 {
            std::fs::write(&path, b"records").unwrap();
            set_aside(&path).unwrap();
            assert!(!path.exists(), "the file kept its name");
        }
        idle();
        assert_eq!(names(dir.path()), Vec::<String>::new(), "set-aside files are still there");
        // Nothing to set aside is fine.
        set_aside(&path).unwrap();
        let aside = aside_path(&path);
        assert!(is_set_aside(&aside.file_name().unwrap().to_string_lossy()));
        assert_ne!(aside, aside_path(&path), "two files set aside from one path get one name");
    }

    #[test]
    fn a_directory_is_removed_with_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let doomed = dir.path().join("t-0.abc-delete");
        std::fs::create_dir(&doomed).unwrap();
        std::fs::write(doomed.join("00000000000000000000.log"), b"records").unwrap();
        remove_dir_all(doomed.clone());
        idle();
        assert!(!doomed.exists(), "the directory is still there");
    }
}
