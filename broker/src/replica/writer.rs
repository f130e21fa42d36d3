//! The log writer: the threads that run this broker's partition appends —
//! client produce and follower fetch answers — off the async runtime.
//!
//! A runtime thread must never wait on a file write (a write can sleep in
//! the kernel's dirty-page throttling), so appends run elsewhere. Before
//! this writer they went to tokio's blocking pool: one task per request,
//! each waking an idle pool thread or starting a new one, so under load
//! several pool threads appended at once and took turns at the partitions'
//! locks on cores the runtime also needs. The writer instead owns a fixed
//! number of threads (`log.writer.threads`, one by default), each with its
//! own queue. A thread that
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
//! is).
//!
//! Bounds: a job waits for room before it is queued, so the bytes of jobs
//! queued or running stay within `queued.max.request.bytes` (a client that
//! sends a produce and leaves cannot pile requests up behind a slow disk);
//! a job whose caller is gone before its turn is dropped unrun (its client
//! left, so nothing was answered for it). [`LogWriter::close`], at
//! shutdown before the logs are flushed and closed, takes no more jobs and
//! waits for the queued ones.
//!
//! Known limit: a job that sleeps in the kernel holds its thread, and the
//! appends queued behind it wait: one that fsyncs (a topic's
//! `flush.messages`, a segment roll's snapshot), or a write that waits in
//! the filesystem (on ext4, a delayed allocation waited for hundreds of
//! milliseconds while the writeback of the same file allocated its blocks,
//! until segments reserved their blocks ahead: see the log's segment
//! module). With one thread that is every append of the broker; with more,
//! only those keyed to the stalled thread, at some CPU per MiB
//! (bench/RESULTS.md, measured before block reservation: 4 threads against
//! 1 cut produce p99 to 0.43× at a fixed rate, and cost 1.06–1.10× the CPU
//! per MiB at full speed). Kafka's request handler threads (8) share the
//! same fate less visibly.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// A unit of work for a writer thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// What a job's caller gets back: its value, or the panic it raised.
pub type Outcome<T> = Result<T, Box<dyn Any + Send + 'static>>;

/// The unit of the bound on queued bytes (a semaphore counts permits in u32).
const PERMIT_BYTES: usize = 1024;

/// The broker's writer threads (see the module docs).
#[derive(Debug)]
pub struct LogWriter {
    /// Whether jobs go to tokio's blocking pool (`log.writer.threads=0`).
    pool: bool,
    /// One queue per thread; emptied by [`LogWriter::close`].
    queues: RwLock<Vec<mpsc::Sender<Job>>>,
    /// The threads, joined by [`LogWriter::close`].
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Bytes of jobs queued or running, in [`PERMIT_BYTES`] units.
    room: Arc<Semaphore>,
    /// `room`'s size in permits (a larger job takes all of it).
    capacity: u32,
}

impl LogWriter {
    /// Starts `threads` writer threads (0: none, jobs go to the blocking
    /// pool) holding at most `max_queued_bytes` of jobs queued or running.
    pub fn start(threads: usize, max_queued_bytes: usize) -> std::io::Result<LogWriter> {
        let mut queues = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = mpsc::channel::<Job>();
            let handle = std::thread::Builder::new().name(format!("strom-log-writer-{i}")).spawn(move || {
                // Ends when every sender is gone and the queue is empty.
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
            queues.push(tx);
            handles.push(handle);
        }
        let capacity = (max_queued_bytes / PERMIT_BYTES).clamp(1, u32::MAX as usize) as u32;
        Ok(LogWriter {
            pool: threads == 0,
            queues: RwLock::new(queues),
            threads: Mutex::new(handles),
            room: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
        })
    }

    /// A writer without threads of its own: jobs go to tokio's blocking pool.
    pub fn blocking_pool() -> LogWriter {
        LogWriter::start(0, usize::MAX).expect("starting no thread cannot fail")
    }

    /// How many threads of its own the writer runs.
    pub fn threads(&self) -> usize {
        self.queues.read().len()
    }

    /// Runs `f`, a job of `bytes` bytes, on the writer thread chosen by
    /// `key` (jobs with the same key run in order on one thread) and waits
    /// for it without holding a runtime thread. First waits for room: at
    /// most the writer's `max_queued_bytes` are queued or running. A job
    /// whose caller is gone before its turn (its client left: nothing was
    /// answered) is dropped unrun. A panic in `f` comes back as `Err`, and
    /// so does a job sent after [`LogWriter::close`].
    pub async fn run<T: Send + 'static>(
        &self,
        key: u64,
        bytes: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Outcome<T> {
        let permits = bytes.div_ceil(PERMIT_BYTES).clamp(1, self.capacity as usize) as u32;
        let room = match self.room.clone().acquire_many_owned(permits).await {
            Ok(room) => room,
            Err(_) => return Err(Box::new("the log writer is closed")),
        };
        if self.pool {
            let job = move || {
                let _room = room;
                f()
            };
            return tokio::task::spawn_blocking(job).await.map_err(|e| match e.try_into_panic() {
                Ok(panic) => panic,
                Err(e) => Box::new(format!("the blocking task was cancelled: {e}")) as Box<dyn Any + Send>,
            });
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || run_job(tx, room, f));
        {
            let queues = self.queues.read();
            if queues.is_empty() {
                return Err(Box::new("the log writer is closed"));
            }
            // A thread ends only when its sender is dropped (by `close`),
            // so the send cannot fail while the sender is in `queues`.
            let _ = queues[(key % queues.len() as u64) as usize].send(job);
        }
        rx.await.unwrap_or_else(|_| Err(Box::new("the log writer dropped the job") as Box<dyn Any + Send>))
    }

    /// [`LogWriter::run`], resuming a panic of `f` in the caller.
    pub async fn run_or_resume<T: Send + 'static>(
        &self,
        key: u64,
        bytes: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        match self.run(key, bytes, f).await {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Takes no more jobs and waits until the threads have run every job
    /// already queued (blocking: call it off the runtime, before the logs
    /// are closed).
    pub fn close(&self) {
        self.room.close();
        drop(std::mem::take(&mut *self.queues.write()));
        for handle in std::mem::take(&mut *self.threads.lock()) {
            let _ = handle.join();
        }
    }
}

/// Runs one job on a writer thread: `f` unless its caller is gone, its
/// outcome to the caller, its room given back.
fn run_job<T>(tx: oneshot::Sender<Outcome<T>>, room: OwnedSemaphorePermit, f: impl FnOnce() -> T) {
    if tx.is_closed() {
        return;
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(f));
    drop(room);
    let _ = tx.send(outcome);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn jobs_of_one_key_run_in_order_on_one_named_thread() {
        let writer = LogWriter::start(2, 1 << 20).unwrap();
        let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let jobs = (0..50).map(|i| {
            let order = order.clone();
            writer.run(7, 1, move || {
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
        let writer = LogWriter::start(1, 1 << 20).unwrap();
        let panicked = writer.run(0, 1, || -> u32 { panic!("boom") }).await;
        let message = panicked.expect_err("the panic comes back");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"boom"));
        assert_eq!(writer.run(0, 1, || 41 + 1).await.unwrap(), 42, "the thread still runs jobs");
    }

    #[tokio::test]
    async fn without_threads_jobs_run_on_the_blocking_pool() {
        let writer = LogWriter::blocking_pool();
        assert_eq!(writer.threads(), 0);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let name = writer.run(3, 1, move || {
            r.fetch_add(1, Ordering::SeqCst);
            std::thread::current().name().map(str::to_owned)
        });
        let name = name.await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert!(!name.unwrap_or_default().starts_with("strom-log-writer"), "not a writer thread");
        assert!(writer.run(0, 1, || -> () { panic!("pool panic") }).await.is_err());
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_before_its_turn_is_dropped_unrun() {
        let writer = LogWriter::start(1, 1 << 20).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        // Hold the thread, queue a job behind it, then drop that job's caller.
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g = gate.clone();
        let mut blocker = Box::pin(writer.run(0, 1, move || {
            g.wait();
        }));
        assert!(futures::poll!(blocker.as_mut()).is_pending());
        let mut dropped = Box::pin(writer.run(0, 1, move || {
            r.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(futures::poll!(dropped.as_mut()).is_pending());
        drop(dropped);
        gate.wait();
        blocker.await.unwrap();
        writer.run(0, 1, || ()).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the abandoned job did not run");
        assert_eq!(writer.room.available_permits(), writer.capacity as usize, "all room given back");
    }

    #[tokio::test]
    async fn jobs_wait_for_room_within_the_byte_bound() {
        // Room for 2 KiB; two threads, so only the bound can hold the second job.
        let writer = Arc::new(LogWriter::start(2, 2 * PERMIT_BYTES).unwrap());
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g = gate.clone();
        let mut big = Box::pin(writer.run(0, 2 * PERMIT_BYTES, move || {
            g.wait();
        }));
        assert!(futures::poll!(big.as_mut()).is_pending());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let w = writer.clone();
        let small = tokio::spawn(async move {
            w.run(1, 10, move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(ran.load(Ordering::SeqCst), 0, "no room while the big job holds it all");
        assert_eq!(writer.room.available_permits(), 0);
        gate.wait();
        big.await.unwrap();
        small.await.unwrap().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        // A job larger than the whole bound still runs (it takes all the room).
        writer.run(0, 10 * PERMIT_BYTES, || ()).await.unwrap();
    }

    #[tokio::test]
    async fn close_runs_what_is_queued_and_refuses_the_rest() {
        let writer = Arc::new(LogWriter::start(1, 1 << 20).unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let w = writer.clone();
        let queued = tokio::spawn(async move {
            w.run(0, 1, move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                r.fetch_add(1, Ordering::SeqCst);
            })
            .await
        });
        // Let the job be queued, then close from a blocking thread.
        while writer.room.available_permits() == writer.capacity as usize {
            tokio::task::yield_now().await;
        }
        let w = writer.clone();
        tokio::task::spawn_blocking(move || w.close()).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1, "close waited for the queued job");
        queued.await.unwrap().unwrap();
        assert!(writer.run(0, 1, || ()).await.is_err(), "closed: no more jobs");
        assert_eq!(writer.threads(), 0);
    }
}
