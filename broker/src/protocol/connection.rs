//! One client connection: read frames, answer requests, keep response order.
//!
//! Requests are pipelined: the reader hands each request's response future to
//! the writer through a bounded queue, and the writer sends responses strictly
//! in request order. Produce requests are appended by the reader itself before
//! the next request is read, so batches from one connection reach a partition
//! in the order they were sent (what idempotent and ordered producers rely
//! on); every other request runs as its own task, so a long-polling fetch
//! does not hold up the requests behind it.
//!
//! A framing or decoding error closes this connection (after the responses
//! already queued are written) and is logged; it never affects others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::codec::{DecodeError, RequestContext, decode_request, encode_response};
use super::frame::read_frame;
use super::handlers::{Response, api_versions_response, handle};
use super::outgoing::Outgoing;
use crate::broker::Broker;

/// Requests read ahead of the oldest unanswered one on a connection.
const PIPELINE_DEPTH: usize = 32;

/// A response on its way: a ready frame, or a task producing one.
/// `None` means the request gets no response (acks=0).
enum Pending {
    Ready(Option<Outgoing>),
    Task(JoinHandle<Option<Outgoing>>),
}

/// Serves one client connection until it closes or the broker shuts down.
pub async fn serve_connection(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>) {
    let _ = stream.set_nodelay(true);
    let max_frame = broker.config.settings.long("socket.request.max.bytes").max(1) as usize;
    let (mut reader, writer) = stream.into_split();
    let (queue, responses) = mpsc::channel::<Pending>(PIPELINE_DEPTH);
    let writer_task = tokio::spawn(write_responses(writer, responses, peer));
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut reader, max_frame) => f,
            _ = broker.shutdown.cancelled() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame.freeze(),
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad request frame");
                broker.metrics.record_bad_request("frame");
                break;
            }
        };
        let pending = match decode_request(frame) {
            Ok((mut ctx, request)) => {
                ctx.peer = Some(peer);
                let is_produce = ctx.api_key == ApiKey::Produce;
                let b = broker.clone();
                let answer = async move { answer(&b, ctx, request).await };
                if is_produce { Pending::Ready(answer.await) } else { Pending::Task(tokio::spawn(answer)) }
            }
            Err(DecodeError::UnsupportedVersion { api: ApiKey::ApiVersions, version, correlation_id, .. }) => {
                // KIP-511: answer at v0 with UNSUPPORTED_VERSION and our ranges;
                // the client retries at the highest version we serve.
                tracing::debug!(%peer, version, "ApiVersions at an unserved version; answering at v0");
                let body = ResponseKind::ApiVersions(api_versions_response(ResponseError::UnsupportedVersion.code()));
                Pending::Ready(encode_or_log(correlation_id, ApiKey::ApiVersions, 0, &body.into()))
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: request not understood");
                broker.metrics.record_bad_request("decode");
                break;
            }
        };
        if queue.send(pending).await.is_err() {
            break; // the writer stopped: the peer is gone
        }
    }
    drop(queue);
    let _ = writer_task.await;
}

async fn answer(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    request: kafka_protocol::messages::RequestKind,
) -> Option<Outgoing> {
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

async fn write_responses(mut writer: OwnedWriteHalf, mut responses: mpsc::Receiver<Pending>, peer: SocketAddr) {
    while let Some(pending) = responses.recv().await {
        let frame = match pending {
            Pending::Ready(frame) => frame,
            Pending::Task(task) => match task.await {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "request task failed; closing connection");
                    break;
                }
            },
        };
        if let Some(frame) = frame
            && let Err(e) = frame.write_to(writer.as_ref()).await
        {
            match e.kind() {
                std::io::ErrorKind::UnexpectedEof => tracing::warn!(%peer, error = %e, "closing connection"),
                _ => tracing::debug!(%peer, error = %e, "client went away"),
            }
            break;
        }
    }
    let _ = writer.shutdown().await;
}
