//! The leader's side of `FetchStream`: one task per stream a follower
//! opens, serving its requests one after another through the same door as
//! `FetchPartitions` ([`ReplicationService::serve_fetch`]: the caller
//! check, then the fetch), and the counters of both transports.
//!
//! A stream's task takes a request, serves it (a long poll when the
//! follower is caught up) and sends the answer, then takes the next. The
//! rules, each ending the stream:
//!
//! - One request in flight: a second request arriving before the first is
//!   answered is a protocol error (FAILED_PRECONDITION), so a caller cannot
//!   queue work behind a long poll. The task keeps reading the stream while
//!   it serves, which is also how it learns that the follower went away.
//! - Every request is authorized on its own (with internal TLS, only broker
//!   N may fetch as replica N): one naming another replica ends the stream
//!   with PERMISSION_DENIED before anything is served or recorded.
//! - The follower closing the stream, its connection dropping (the answer's
//!   receiver goes), or this broker stopping replication
//!   ([`ReplicaManager::stopped`], UNAVAILABLE) ends the task; a fetch in
//!   flight is dropped then, as tonic drops a unary handler whose caller
//!   went (its ISR change, if any, was already sent).
//!
//! A request is bounded as a `FetchPartitions` request is: the same message
//! size limit of the server, the same `max_bytes` rules. Invariant: at most
//! one fetch per stream is served at a time, and no answer is sent after a
//! refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use strom_proto::replication::{FetchPartitionsRequest, FetchPartitionsResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::service::ReplicationService;
use crate::tls::Caller;

/// What a stream's task sends tonic: answers, or the status ending the stream.
pub type Answers = ReceiverStream<Result<FetchPartitionsResponse, Status>>;

/// Counters of follower fetches by transport, on both sides (the
/// `strom_replication_fetch_*` metrics).
#[derive(Debug, Default)]
pub struct FetchTransportStats {
    streams_opened: AtomicU64,
    streams_open: AtomicI64,
    stream_requests: AtomicU64,
    unary_requests: AtomicU64,
    stream_attempts: AtomicU64,
    stream_fallbacks: AtomicU64,
}

/// A snapshot of [`FetchTransportStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchTransportCounts {
    /// As leader: `FetchStream` streams accepted since start.
    pub streams_opened: u64,
    /// As leader: streams whose task runs now.
    pub streams_open: i64,
    /// As leader: fetches served over streams.
    pub stream_requests: u64,
    /// As leader: `FetchPartitions` and `FetchRecords` calls served.
    pub unary_requests: u64,
    /// As follower: streams this broker's fetch sessions tried to open.
    pub stream_attempts: u64,
    /// As follower: times a leader answered `FetchStream` with UNIMPLEMENTED
    /// (an older version) and the session fell back to `FetchPartitions`.
    pub stream_fallbacks: u64,
}

impl FetchTransportStats {
    /// The counts now.
    pub fn counts(&self) -> FetchTransportCounts {
        FetchTransportCounts {
            streams_opened: self.streams_opened.load(Ordering::Relaxed),
            streams_open: self.streams_open.load(Ordering::Relaxed),
            stream_requests: self.stream_requests.load(Ordering::Relaxed),
            unary_requests: self.unary_requests.load(Ordering::Relaxed),
            stream_attempts: self.stream_attempts.load(Ordering::Relaxed),
            stream_fallbacks: self.stream_fallbacks.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn unary_request(&self) {
        self.unary_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_attempt(&self) {
        self.stream_attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_fallback(&self) {
        self.stream_fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stream opened and open until the guard drops.
    fn open(self: &Arc<Self>) -> OpenStream {
        self.streams_opened.fetch_add(1, Ordering::Relaxed);
        self.streams_open.fetch_add(1, Ordering::Relaxed);
        OpenStream(self.clone())
    }
}

/// A stream counted as open.
struct OpenStream(Arc<FetchTransportStats>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts the task serving `requests` from `caller` and returns its answers.
pub(crate) fn serve(
    service: ReplicationService,
    caller: Caller,
    requests: Streaming<FetchPartitionsRequest>,
) -> Answers {
    // One answer at a time is all a stream ever holds.
    let (answers, receiver) = mpsc::channel(1);
    let open = service.manager().fetch_transport_stats().open();
    tokio::spawn(async move {
        let _open = open;
        run(service, caller, requests, answers).await;
    });
    ReceiverStream::new(receiver)
}

/// Serves the stream's requests in turn until one of the rules ends it.
async fn run(
    service: ReplicationService,
    caller: Caller,
    mut requests: Streaming<FetchPartitionsRequest>,
    answers: mpsc::Sender<Result<FetchPartitionsResponse, Status>>,
) {
    let manager = service.manager().clone();
    let stats = manager.fetch_transport_stats().clone();
    loop {
        // A live follower asks again as soon as it has applied the answer;
        // one that vanished (host gone, no reset) must not hold this task
        // and its connection forever.
        let config = manager.replica_config();
        let idle_limit = config.fetch_wait_max + config.socket_timeout;
        let next = tokio::select! {
            next = requests.message() => next,
            _ = tokio::time::sleep(idle_limit) => {
                tracing::debug!(?idle_limit, "a fetch stream sent no request in time: ending it");
                let _ = answers.try_send(Err(Status::deadline_exceeded("no fetch request within replica.fetch.wait.max.ms + replica.socket.timeout.ms")));
                return;
            }
            _ = answers.closed() => return,
            _ = manager.stopped() => {
                let _ = answers.try_send(Err(Status::unavailable("the broker is shutting down")));
                return;
            }
        };
        let request = match next {
            Ok(Some(request)) => request,
            // The follower closed its side.
            Ok(None) => return,
            Err(status) => {
                tracing::debug!(%status, "a fetch stream ended");
                return;
            }
        };
        stats.stream_requests.fetch_add(1, Ordering::Relaxed);
        let serve = service.serve_fetch(&caller, request);
        tokio::pin!(serve);
        let mut more_may_come = true;
        let answer = loop {
            tokio::select! {
                answer = &mut serve => break answer,
                next = requests.message(), if more_may_come => match next {
                    Ok(Some(_)) => {
                        let refusal = "FetchStream: a second request before the answer to the first (one at a time)";
                        tracing::warn!("{refusal}: ending the stream");
                        let _ = answers.try_send(Err(Status::failed_precondition(refusal)));
                        return;
                    }
                    // Half closed: the answer is still sent.
                    Ok(None) => more_may_come = false,
                    Err(_) => return,
                },
                _ = answers.closed() => return,
            }
        };
        let refused = answer.is_err();
        // The channel holds the previous answer only if the follower sent
        // this request without reading it: then this waits (flow control
        // bounds what a caller that does not read can make us hold).
        let sent = tokio::select! {
            sent = answers.send(answer) => sent.is_ok(),
            _ = manager.stopped() => false,
        };
        if !sent || refused || !more_may_come {
            return;
        }
    }
}
