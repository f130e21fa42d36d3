//! One client connection: read frames, answer requests one at a time, in order.
//!
//! Kafka's rule, which clients rely on (asynchronous offset commits, ordered
//! produce): the requests of one connection are processed one at a time, in
//! the order they were sent, and answered in that order. Three tasks share a
//! connection:
//!
//! - the reader (this function's own loop) cuts frames and decodes them,
//!   reading at most [`READ_AHEAD`] requests ahead of the one being handled,
//!   each frame's bytes counted in the broker's request memory pool
//!   ([`super::limits::RequestMemory`]) until its request has been handled;
//! - the handler takes the decoded requests in order and runs each to its
//!   end before the next starts — so a later request never observes less
//!   than an earlier one did, and two OffsetCommits are applied in the order
//!   sent;
//! - the writer sends the responses, in the same order, overlapping the
//!   sending of one response with the handling of the next request.
//!
//! Limits (see [`super::limits`]): a connection with no request in flight
//! and nothing read for `connections.max.idle.ms` is closed; a frame whose
//! first byte has arrived must arrive whole within `request.frame.timeout.ms`.
//! When the client goes (end of stream or a read error), the Fetch being
//! handled — the one request that waits on its own, up to its `max_wait_ms` —
//! is abandoned at once; other requests, which may be changing state, run to
//! their end and their answers are dropped.
//!
//! A framing or decoding error closes this connection (after the responses
//! already due are written) and is logged; it never affects others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::codec::{DecodeError, RequestContext, decode_request, encode_response};
use super::frame::{FrameError, read_frame_within};
use super::handlers::{Response, api_versions_response, handle};
use super::limits::{Activity, ConnectionLimits, PoolPermit, RequestMemory};
use super::outgoing::Outgoing;
use crate::broker::Broker;

/// Requests read and decoded ahead of the one being handled.
const READ_AHEAD: usize = 8;

/// Responses encoded ahead of the one being written.
const WRITE_AHEAD: usize = 8;

/// A decoded request, with the pool bytes its frame holds.
struct Queued {
    ctx: RequestContext,
    request: RequestKind,
    _memory: PoolPermit,
}

/// What the reader hands the handler.
enum Incoming {
    /// A decoded request (boxed: a request is far larger than an answer).
    Request(Box<Queued>),
    /// An answer that needs no handler (ApiVersions at an unserved version).
    Answered(Option<Outgoing>),
}

/// Serves one client connection until it closes or the broker shuts down.
/// `memory` is the listener's request memory pool.
pub async fn serve_connection(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>, memory: RequestMemory) {
    let _ = stream.set_nodelay(true);
    let limits = ConnectionLimits::from_settings(&broker.config.settings);
    let (mut reader, writer) = stream.into_split();
    let (requests, incoming) = mpsc::channel::<Incoming>(READ_AHEAD);
    let (responses, outgoing) = mpsc::channel::<Outgoing>(WRITE_AHEAD);
    let activity = Arc::new(Activity::default());
    let client_gone = CancellationToken::new();
    let writer_task = tokio::spawn(write_responses(writer, outgoing, peer));
    let handler_task =
        tokio::spawn(handle_in_order(broker.clone(), incoming, responses, activity.clone(), client_gone.clone()));
    loop {
        let frame = tokio::select! {
            f = read_frame_within(&mut reader, &limits, &memory, || activity.quiet_since()) => f,
            _ = broker.shutdown.cancelled() => break,
        };
        let (frame, memory) = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                client_gone.cancel();
                break;
            }
            Err(FrameError::Idle(idle)) => {
                tracing::debug!(%peer, ?idle, "closing idle connection (connections.max.idle.ms)");
                break;
            }
            Err(e) => {
                client_gone.cancel();
                tracing::warn!(%peer, error = %e, "closing connection: bad request frame");
                broker.metrics.record_bad_request(e.stage());
                break;
            }
        };
        let incoming = match decode_request(frame.freeze()) {
            Ok((mut ctx, request)) => {
                ctx.peer = Some(peer);
                Incoming::Request(Box::new(Queued { ctx, request, _memory: memory }))
            }
            Err(DecodeError::UnsupportedVersion { api: ApiKey::ApiVersions, version, correlation_id, .. }) => {
                // KIP-511: answer at v0 with UNSUPPORTED_VERSION and our ranges;
                // the client retries at the highest version we serve.
                tracing::debug!(%peer, version, "ApiVersions at an unserved version; answering at v0");
                let body = ResponseKind::ApiVersions(api_versions_response(ResponseError::UnsupportedVersion.code()));
                Incoming::Answered(encode_or_log(correlation_id, ApiKey::ApiVersions, 0, &body.into()))
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: request not understood");
                broker.metrics.record_bad_request("decode");
                break;
            }
        };
        activity.request_read();
        if requests.send(incoming).await.is_err() {
            break; // the handler or writer stopped: the peer is gone
        }
    }
    drop(requests);
    let _ = handler_task.await;
    let _ = writer_task.await;
}

/// Handles the connection's requests one at a time, in the order read, and
/// queues their responses for the writer.
async fn handle_in_order(
    broker: Arc<Broker>,
    mut incoming: mpsc::Receiver<Incoming>,
    responses: mpsc::Sender<Outgoing>,
    activity: Arc<Activity>,
    client_gone: CancellationToken,
) {
    while let Some(next) = incoming.recv().await {
        let response = match next {
            Incoming::Answered(response) => response,
            Incoming::Request(queued) => {
                let Queued { ctx, request, _memory } = *queued;
                if ctx.api_key == ApiKey::Fetch {
                    // A fetch only reads: abandoning it when its client goes loses nothing.
                    tokio::select! {
                        r = answer(&broker, ctx, request) => r,
                        _ = client_gone.cancelled() => break,
                    }
                } else {
                    answer(&broker, ctx, request).await
                }
            }
        };
        activity.request_done();
        if let Some(response) = response
            && responses.send(response).await.is_err()
        {
            break; // the writer stopped: the peer is gone
        }
    }
}

async fn answer(broker: &Arc<Broker>, ctx: RequestContext, request: RequestKind) -> Option<Outgoing> {
    let started = Instant::now();
    tracing::debug!(api = ?ctx.api_key, version = ctx.api_version, correlation_id = ctx.correlation_id, client_id = ?ctx.client_id, "request");
    let response = handle(broker, &ctx, request).await;
    broker.metrics.record_request(ctx.api_key, ctx.api_version, started.elapsed(), response.as_ref().map(|r| &r.body));
    let response = response?;
    encode_or_log(ctx.correlation_id, ctx.api_key, ctx.api_version, &response)
}

fn encode_or_log(correlation_id: i32, api: ApiKey, version: i16, response: &Response) -> Option<Outgoing> {
    match encode_response(correlation_id, api, version, response) {
        Ok(frame) => Some(frame),
        Err(e) => {
            tracing::error!(?api, version, error = %e, "could not encode response; the client will time out");
            None
        }
    }
}

async fn write_responses(mut writer: OwnedWriteHalf, mut responses: mpsc::Receiver<Outgoing>, peer: SocketAddr) {
    while let Some(frame) = responses.recv().await {
        if let Err(e) = frame.write_to(writer.as_ref()).await {
            match e.kind() {
                std::io::ErrorKind::UnexpectedEof => tracing::warn!(%peer, error = %e, "closing connection"),
                _ => tracing::debug!(%peer, error = %e, "client went away"),
            }
            break;
        }
    }
    let _ = writer.shutdown().await;
}
