//! The log writer: the threads that run this broker's partition appends —
//! client produce and follower fetch answers — off the async runtime.
//!
//! A runtime thread must never wait on a file write (a write can sleep in
//! the kernel's dirty-page throttling), so appends run elsewhere. Before
//! this writer they went to tokio's blocking pool: one task per request,
//! each waking an idle pool thread or starting a new one, so under load
//! several pool threads appended at once and took turns at the partitions'
//! locks on cores the runtime also needs. The writer instead owns a fixed
//! number of threads (`--log-writer-threads`, one by default: one per data
//! directory, and a broker has one), each with its own queue. A thread that
//! is busy takes the next job from its queue without sleeping, so appends
//! queued by many requests meanwhile run back to back on one thread
//! (group-commit style: one wake-up for all of them) instead of one thread
//! hand-off each; the job's caller gets its result through a oneshot.
//!
//! With `threads = 0` jobs go to tokio's blocking pool as before (kept to
//! measure one against the other, see bench/RESULTS.md).
//!
//! Jobs queued on one thread run in the order they were queued. A job that
//! panics does not take the thread with it: the panic is caught and handed
//! to the job's caller, which resumes it (as a blocking-pool task's panic
//! is). Dropping the writer ends its threads once their queues are empty.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use tokio::sync::oneshot;

/// A unit of work for a writer thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// What a job's caller gets back: its value, or the panic it raised.
pub type Outcome<T> = Result<T, Box<dyn Any + Send + 'static>>;

/// The broker's writer threads (see the module docs).
#[derive(Debug)]
pub struct LogWriter {
    /// One queue per thread; empty: jobs go to tokio's blocking pool.
    queues: Vec<mpsc::Sender<Job>>,
}

impl LogWriter {
    /// Starts `threads` writer threads (0: none, jobs go to the blocking pool).
    pub fn start(threads: usize) -> std::io::Result<LogWriter> {
        let mut queues = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new().name(format!("strom-log-writer-{i}")).spawn(move || {
                // Ends when every sender is gone and the queue is empty.
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
            queues.push(tx);
        }
        Ok(LogWriter { queues })
    }

    /// A writer without threads of its own: jobs go to tokio's blocking pool.
    pub fn blocking_pool() -> LogWriter {
        LogWriter { queues: Vec::new() }
    }

    /// How many threads of its own the writer runs.
    pub fn threads(&self) -> usize {
        self.queues.len()
    }

    /// Runs `f` on the writer thread chosen by `key` (jobs with the same
    /// key run in order on one thread) and waits for it without holding a
    /// runtime thread. A panic in `f` comes back as `Err`.
    pub async fn run<T: Send + 'static>(&self, key: u64, f: impl FnOnce() -> T + Send + 'static) -> Outcome<T> {
        if self.queues.is_empty() {
            return tokio::task::spawn_blocking(f).await.map_err(|e| match e.try_into_panic() {
                Ok(panic) => panic,
                Err(e) => Box::new(format!("the blocking task was cancelled: {e}")) as Box<dyn Any + Send>,
            });
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(f));
            // The caller may be gone (its client left): the work is done anyway.
            let _ = tx.send(outcome);
        });
        let queue = &self.queues[(key % self.queues.len() as u64) as usize];
        if let Err(mpsc::SendError(job)) = queue.send(job) {
            // The thread is gone (it cannot be while the writer lives, but
            // a job must never be lost): run it on the blocking pool.
            let _ = tokio::task::spawn_blocking(job).await;
        }
        rx.await.unwrap_or_else(|_| Err(Box::new("the log writer dropped the job") as Box<dyn Any + Send>))
    }

    /// [`LogWriter::run`], resuming a panic of `f` in the caller.
    pub async fn run_or_resume<T: Send + 'static>(&self, key: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        match self.run(key, f).await {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn jobs_of_one_key_run_in_order_on_one_named_thread() {
        let writer = LogWriter::start(2).unwrap();
        let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let jobs = (0..50).map(|i| {
            let order = order.clone();
            writer.run(7, move || {
                order.lock().push(i);
                std::thread::current().name().map(str::to_owned)
            })
        });
        let names: Vec<_> = futures::future::join_all(jobs).await.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(*order.lock(), (0..50).collect::<Vec<_>>(), "queued order kept");
        let first = names[0].clone().expect("writer threads are named");
        assert!(first.starts_with("strom-log-writer-"), "{first}");
        assert!(names.iter().all(|n| n.as_deref() == Some(first.as_str())), "one key, one thread: {names:?}");
    }

    #[tokio::test]
    async fn a_panicking_job_reaches_its_caller_and_the_thread_goes_on() {
        let writer = LogWriter::start(1).unwrap();
        let panicked = writer.run(0, || -> u32 { panic!("boom") }).await;
        let message = panicked.expect_err("the panic comes back");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"boom"));
        assert_eq!(writer.run(0, || 41 + 1).await.unwrap(), 42, "the thread still runs jobs");
    }

    #[tokio::test]
    async fn without_threads_jobs_run_on_the_blocking_pool() {
        let writer = LogWriter::blocking_pool();
        assert_eq!(writer.threads(), 0);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let name = writer.run(3, move || {
            r.fetch_add(1, Ordering::SeqCst);
            std::thread::current().name().map(str::to_owned)
        });
        let name = name.await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert!(!name.unwrap_or_default().starts_with("strom-log-writer"), "not a writer thread");
        assert!(writer.run(0, || -> () { panic!("pool panic") }).await.is_err());
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_still_runs() {
        let writer = LogWriter::start(1).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        // Hold the thread, queue a job behind it, then drop that job's
        // caller: a queued job is not lost.
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g = gate.clone();
        let mut blocker = Box::pin(writer.run(0, move || {
            g.wait();
        }));
        assert!(futures::poll!(blocker.as_mut()).is_pending());
        let mut dropped = Box::pin(writer.run(0, move || {
            r.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(futures::poll!(dropped.as_mut()).is_pending());
        drop(dropped);
        gate.wait();
        blocker.await.unwrap();
        writer.run(0, || ()).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1, "the dropped caller's job ran before the next one");
    }
}
