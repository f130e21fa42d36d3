//! How a follower's fetch session sends its rounds to one leader: over one
//! persistent `FetchStream` (the default), or one `FetchPartitions` call per
//! round (`replica.fetch.stream=false`, or a leader that does not offer the
//! stream). Both carry the same request and get the same answer; the stream
//! saves each round a new HTTP/2 stream and the leader a handler task.
//!
//! The stream carries one request at a time: the next is sent once the
//! answer to the previous one was read (the leader ends a stream that breaks
//! this). So an answer in flight cannot be abandoned and the stream reused —
//! it would arrive later, taken for the next round's. When the session
//! interrupts a round (a partition joins, or one left out may fetch again;
//! it drops [`FetchTransport::round`]'s future), the round is marked
//! unfinished and the next round drops that stream and opens a new one: a
//! new HTTP/2 stream on the same connection, what a unary call costs every
//! round, and only on interruptions. The leader's task of the dropped stream
//! ends when the stream is reset.
//!
//! A stream that fails or ends fails the round (the session backs off as
//! for a failed call) and the next round opens a new one. A leader of the
//! previous version answers UNIMPLEMENTED (a rolling upgrade): the same
//! round is sent as a `FetchPartitions` call at once, and the session keeps
//! to calls for [`STREAM_RETRY_AFTER`], or until a call fails (the leader
//! may be restarting, upgraded), then tries the stream again.

use std::sync::Arc;
use std::time::Duration;

use strom_proto::replication::replication_client::ReplicationClient;
use strom_proto::replication::{FetchPartitionsRequest, FetchPartitionsResponse};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use super::{FetchTransportStats, ReplicaConfig};

/// How long a session keeps to `FetchPartitions` calls after a leader
/// answered `FetchStream` with UNIMPLEMENTED (unless a call fails first).
pub const STREAM_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A session's way to its leader.
#[derive(Debug)]
pub(crate) struct FetchTransport {
    client: ReplicationClient<Channel>,
    /// The leader's address (for logs).
    endpoint: String,
    stats: Arc<FetchTransportStats>,
    /// The stream, once opened and while it works.
    stream: Option<OpenStream>,
    /// A round on `stream` started and never finished: its answer may still come.
    unfinished: bool,
    /// Calls rather than the stream until then: the leader does not offer it.
    calls_until: Option<Instant>,
}

/// An open `FetchStream`: where requests go and answers come from.
#[derive(Debug)]
struct OpenStream {
    requests: mpsc::Sender<FetchPartitionsRequest>,
    answers: Streaming<FetchPartitionsResponse>,
}

impl FetchTransport {
    /// A transport over `client`, opening no stream before the first round.
    pub(crate) fn new(
        client: ReplicationClient<Channel>,
        endpoint: String,
        stats: Arc<FetchTransportStats>,
    ) -> FetchTransport {
        FetchTransport { client, endpoint, stats, stream: None, unfinished: false, calls_until: None }
    }

    /// Sends the round's request (built by `request`, at most twice: again as
    /// a call when the leader lacks the stream) and returns the leader's
    /// answer; an error status when the round failed. Each round is bounded
    /// by `replica.fetch.wait.max.ms` + `replica.socket.timeout.ms`.
    ///
    /// Cancel safe: dropped before it returns, the stream it used is
    /// dropped at the next round, never used again.
    pub(crate) async fn round(
        &mut self,
        request: impl Fn() -> FetchPartitionsRequest,
        config: &ReplicaConfig,
    ) -> Result<FetchPartitionsResponse, Status> {
        if std::mem::take(&mut self.unfinished) {
            self.stream = None;
        }
        let limit = config.fetch_wait_max + config.socket_timeout;
        let by_calls = self.calls_until.is_some_and(|until| Instant::now() < until);
        if !config.fetch_stream || by_calls {
            self.stream = None;
            let answer = self.call(request(), limit).await;
            if answer.is_err() && by_calls {
                // The leader may be restarting, perhaps upgraded: try the stream next.
                self.calls_until = None;
            }
            return answer;
        }
        self.calls_until = None;
        self.unfinished = true;
        let answer = match tokio::time::timeout(limit, self.on_stream(request())).await {
            Ok(answer) => answer,
            Err(_) => Err(Status::deadline_exceeded(format!("no answer on the fetch stream within {limit:?}"))),
        };
        self.unfinished = false;
        match answer {
            Ok(answer) => Ok(answer),
            Err(status) if status.code() == Code::Unimplemented => {
                self.stream = None;
                self.stats.stream_fallback();
                self.calls_until = Some(Instant::now() + STREAM_RETRY_AFTER);
                tracing::info!(
                    endpoint = %self.endpoint,
                    "the leader does not serve FetchStream (an older version): fetching with FetchPartitions calls"
                );
                self.call(request(), limit).await
            }
            Err(status) => {
                self.stream = None;
                Err(status)
            }
        }
    }

    /// One round on the stream, opening it first if there is none.
    async fn on_stream(&mut self, request: FetchPartitionsRequest) -> Result<FetchPartitionsResponse, Status> {
        let open = match self.stream.take() {
            Some(open) => {
                let closed = |_| Status::unavailable("the fetch stream to the leader closed");
                open.requests.send(request).await.map_err(closed)?;
                open
            }
            None => {
                // The first request goes out with the stream's headers.
                self.stats.stream_attempt();
                let (requests, receiver) = mpsc::channel(1);
                let queued = |_| Status::internal("a new fetch stream refused its first request");
                requests.try_send(request).map_err(queued)?;
                let answers = self.client.fetch_stream(ReceiverStream::new(receiver)).await?.into_inner();
                OpenStream { requests, answers }
            }
        };
        let open = self.stream.insert(open);
        match open.answers.message().await? {
            Some(answer) => Ok(answer),
            None => Err(Status::unavailable("the leader ended the fetch stream")),
        }
    }

    /// One round as a `FetchPartitions` call.
    async fn call(
        &mut self,
        request: FetchPartitionsRequest,
        limit: Duration,
    ) -> Result<FetchPartitionsResponse, Status> {
        let mut request = tonic::Request::new(request);
        request.set_timeout(limit);
        Ok(self.client.fetch_partitions(request).await?.into_inner())
    }
}
