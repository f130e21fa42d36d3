//! One client connection: read frames, answer requests one at a time, in order.
//!
//! Kafka's rule, which clients rely on (asynchronous offset commits, ordered
//! produce): the requests of one connection are processed one at a time, in
//! the order they were sent, and answered in that order. Three tasks share a
//! connection:
//!
//! - the reader (this function's own loop) reads the next frame only once
//!   the previous request has been handled (Kafka mutes the channel the
//!   same way), so one connection holds at most one request, whose frame
//!   bytes are counted in the broker's request memory pool
//!   ([`super::limits::RequestMemory`]) until it has been handled; while it
//!   waits it watches for the client closing the connection;
//! - the handler runs each request to its end before the next is read — so
//!   a later request never observes less than an earlier one did, and two
//!   OffsetCommits are applied in the order sent;
//! - the writer sends the responses in the same order, overlapping the
//!   sending of one response with the reading and handling of the next.
//!
//! Limits (see [`super::limits`]): a connection with no request in flight
//! and nothing read for `connections.max.idle.ms` is closed, and so is one
//! whose client takes no byte of a response for that long; a frame whose
//! first byte has arrived must arrive whole within `request.frame.timeout.ms`.
//! When the client goes, the Fetch being handled — the one request that
//! waits on its own, up to its `max_wait_ms` — is abandoned at once; other
//! requests, which may be changing state, run to their end and their answers
//! are dropped. A response that cannot be encoded closes the connection
//! (the client would otherwise pair later responses with the wrong request).
//! The handler and writer end with the connection's task.
//!
//! On an SSL or SASL_SSL listener the connection starts with a TLS
//! handshake (within `request.frame.timeout.ms`); a client certificate sets
//! the principal (see [`crate::auth::client_tls`]). On a SASL listener the
//! SASL requests are answered here, before the handler, and nothing but
//! ApiVersions is served until the client has authenticated (see
//! [`super::sasl`]).
//!
//! A client over one of its quotas is answered at once, with the throttle
//! in the response's `throttle_time_ms`; the handler then keeps the request
//! open (so the reader reads nothing more) until the throttle has passed —
//! Kafka's muting of a throttled channel (KIP-219, see [`super::throttle`]).
//!
//! A framing or decoding error closes this connection (after the responses
//! already due are written) and is logged, one line a second at most; it
//! never affects others. So does a request naming more topics and partitions
//! than `max.request.partitions`, refused before its body is decoded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::codec::{DecodeError, RequestContext, decode_request, encode_response};
use super::frame::{FrameError, read_frame_within};
use super::handlers::{Response, api_versions_response, handle};
use super::limits::{Activity, ConnectionLimits, PoolPermit, RequestMemory};
use super::listener::ClientListener;
use super::outgoing::Outgoing;
use super::sasl::Gate;
use super::stream::{ConnReader, ConnWriter, split_plain, split_tls};
use crate::auth::Principal;
use crate::auth::sasl::SaslSession;
use crate::broker::Broker;
use crate::log_lines::LineLimit;

/// Lines about refused requests: a client opening connections must not get one each.
static TOO_MANY_ENTRIES_LOG: LineLimit = LineLimit::new(1);
static BAD_REQUEST_LOG: LineLimit = LineLimit::new(1);
static STALLED_LOG: LineLimit = LineLimit::new(1);
static TLS_LOG: LineLimit = LineLimit::new(1);

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

/// Aborts a task when dropped: a connection's handler and writer end with it.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The TLS handshake of a connection on `listener`, if it uses TLS: the
/// split stream and the principal its client certificate names; `None`
/// when the handshake failed (counted and logged here).
async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    broker: &Broker,
    listener: &ClientListener,
    limits: &ConnectionLimits,
) -> Option<(ConnReader, ConnWriter, Arc<Principal>)> {
    let Some(tls) = &listener.tls else {
        let (r, w) = split_plain(stream);
        return Some((r, w, Principal::anonymous()));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let accepted = tokio::select! {
        a = tokio::time::timeout(limits.frame_timeout, acceptor.accept(stream)) => a,
        _ = broker.shutdown.cancelled() => return None,
    };
    let error = match accepted {
        Ok(Ok(stream)) => {
            let chain = stream.get_ref().1.peer_certificates();
            let principal = crate::auth::client_tls::principal_of(chain, &listener.principal_rules)
                .map(Arc::new)
                .unwrap_or_else(Principal::anonymous);
            let (r, w) = split_tls(stream);
            return Some((r, w, principal));
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no TLS handshake within {:?} (request.frame.timeout.ms)", limits.frame_timeout),
    };
    broker.metrics.record_authentication_failure(&listener.name, "TLS");
    if let Some(left_out) = TLS_LOG.admit() {
        tracing::warn!(%peer, listener = %listener.name, error, failed_since_last_line = left_out, "closing connection: TLS handshake failed");
    }
    None
}

/// Serves one client connection on `listener` until it closes or the
/// broker shuts down. `memory` is the listener's request memory pool.
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    memory: RequestMemory,
    listener: Arc<ClientListener>,
) {
    let _ = stream.set_nodelay(true);
    let limits = ConnectionLimits::from_settings(&broker.config.settings);
    let max_entries = broker.config.settings.long("max.request.partitions").max(1) as u64;
    let Some((mut reader, writer, mut principal)) = open(stream, peer, &broker, &listener, &limits).await else {
        return;
    };
    let mut sasl = listener.sasl.clone().map(|config| SaslSession::new(config, listener.max_reauth_ms > 0));
    // Before a SASL connection has authenticated, its frames are bounded by
    // sasl.server.max.receive.size: an anonymous peer must not hold the
    // shared request pool (or the heap, through a huge token) with one frame.
    let settings = &broker.config.settings;
    let pre_auth_max = settings.long("sasl.server.max.receive.size").max(1) as usize;
    let pre_auth_limits = ConnectionLimits { max_frame_bytes: limits.max_frame_bytes.min(pre_auth_max), ..limits };
    let failed_auth_delay =
        Duration::from_millis(settings.long("connection.failed.authentication.delay.ms").max(0) as u64);
    // A SASL connection must have authenticated by then.
    let authenticate_by = tokio::time::Instant::now()
        + Duration::from_millis(settings.long("sasl.authentication.timeout.ms").max(1) as u64);
    // When the SASL session ends (connections.max.reauth.ms after it began,
    // or earlier when its credential expires).
    let mut session_ends: Option<Instant> = None;
    // Whether the connection has authenticated (renewals are not held to
    // sasl.authentication.timeout.ms).
    let mut authenticated_once = false;
    let (requests, incoming) = mpsc::channel::<Incoming>(1);
    let (responses, outgoing) = mpsc::channel::<Outgoing>(WRITE_AHEAD);
    let activity = Arc::new(Activity::default());
    // Cancelled when the connection must end: the client went, a response
    // could not be encoded, or the writer stopped.
    let stop = CancellationToken::new();
    let mut writer_task = AbortOnDrop(tokio::spawn(write_responses(writer, outgoing, peer, limits.idle)));
    let mut handler_task =
        AbortOnDrop(tokio::spawn(handle_in_order(broker.clone(), incoming, responses, activity.clone(), stop.clone())));
    loop {
        // Kafka's rule: the next request is read once the previous one has
        // been handled, so no request runs before an earlier one has finished
        // and one connection holds at most one request's bytes.
        let handled = tokio::select! {
            h = until_handled(&mut reader, &activity) => h,
            _ = stop.cancelled() => break,
            _ = broker.shutdown.cancelled() => break,
        };
        if !handled {
            stop.cancel(); // the client went while a request was being handled
            break;
        }
        let unauthenticated = sasl.as_ref().is_some_and(|s| !s.authenticated());
        let frame_limits = if unauthenticated { &pre_auth_limits } else { &limits };
        // The deadline is for the first authentication only: a renewal
        // (KIP-368) is bounded by the session's end instead.
        let first_authentication = unauthenticated && !authenticated_once;
        let frame = tokio::select! {
            f = read_frame_within(&mut reader, frame_limits, &memory, || activity.quiet_since()) => f,
            _ = tokio::time::sleep_until(authenticate_by), if first_authentication => {
                broker.metrics.record_authentication_failure(&listener.name, "timeout");
                tracing::debug!(%peer, listener = %listener.name, "closing connection: not authenticated within sasl.authentication.timeout.ms");
                break;
            }
            _ = stop.cancelled() => break,
            _ = broker.shutdown.cancelled() => break,
        };
        let (frame, memory) = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameError::Idle(idle)) => {
                tracing::debug!(%peer, ?idle, "closing idle connection (connections.max.idle.ms)");
                break;
            }
            Err(e) => {
                if let Some(left_out) = BAD_REQUEST_LOG.admit() {
                    tracing::warn!(%peer, error = %e, refused_since_last_line = left_out, "closing connection: bad request frame");
                }
                broker.metrics.record_bad_request(e.stage());
                break;
            }
        };
        if let Some(session) = sasl.as_mut()
            && session.expects_raw_token()
        {
            // After a v0 SaslHandshake the tokens come as bare frames.
            let raw = super::sasl::raw_token(session, &broker, &frame, peer, &listener.name, listener.max_reauth_ms);
            let Some((answer, authenticated)) = raw else {
                tokio::time::sleep(failed_auth_delay).await; // slows down password guessing, as Kafka does
                break;
            };
            if let Some(a) = authenticated {
                principal = Arc::new(a.principal);
                session_ends = session_end(a.session_ms);
                authenticated_once = true;
            }
            activity.request_read();
            if requests.send(Incoming::Answered(Some(answer))).await.is_err() {
                break;
            }
            continue;
        }
        let mut close_after = false;
        let incoming = match decode_request(frame.freeze(), max_entries) {
            Ok((mut ctx, request)) => {
                ctx.peer = Some(peer);
                ctx.principal = principal.clone();
                ctx.listener = Some(listener.name.clone());
                let renewing = matches!(request, RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_));
                if !renewing && session_ends.is_some_and(|end| Instant::now() >= end) {
                    // Kafka's rule: a session past its lifetime that did not re-authenticate is closed.
                    broker.metrics.record_authentication_failure(&listener.name, "expired");
                    tracing::debug!(%peer, listener = %listener.name, "closing connection: the SASL session ended (connections.max.reauth.ms or the credential's expiry)");
                    break;
                }
                match super::sasl::gate(sasl.as_mut(), &broker, &ctx, &request, &listener.name, listener.max_reauth_ms)
                {
                    Gate::Pass => Incoming::Request(Box::new(Queued { ctx, request, _memory: memory })),
                    Gate::Close => break,
                    Gate::Answer { response, authenticated, close } => {
                        if let Some(a) = authenticated {
                            principal = Arc::new(a.principal);
                            session_ends = session_end(a.session_ms);
                            authenticated_once = true;
                        } else if close {
                            // A refusal: slows down password guessing, as Kafka does.
                            tokio::time::sleep(failed_auth_delay).await;
                        }
                        close_after = close;
                        match encode_or_log(ctx.correlation_id, ctx.api_key, ctx.api_version, &(*response).into()) {
                            Ok(answer) => Incoming::Answered(answer),
                            Err(EncodeFailed) => break,
                        }
                    }
                }
            }
            Err(DecodeError::UnsupportedVersion { api: ApiKey::ApiVersions, version, correlation_id, .. }) => {
                // KIP-511: answer at v0 with UNSUPPORTED_VERSION and our ranges;
                // the client retries at the highest version we serve.
                tracing::debug!(%peer, version, "ApiVersions at an unserved version; answering at v0");
                let body = ResponseKind::ApiVersions(api_versions_response(
                    ResponseError::UnsupportedVersion.code(),
                    broker.txns.config().transaction_version,
                ));
                match encode_or_log(correlation_id, ApiKey::ApiVersions, 0, &body.into()) {
                    Ok(answer) => Incoming::Answered(answer),
                    Err(EncodeFailed) => break,
                }
            }
            Err(e @ DecodeError::TooManyEntries { .. }) => {
                // No response shape of these APIs carries a request-wide
                // error with a message, so the connection closes, as Kafka
                // does with a request it cannot take.
                if let Some(left_out) = TOO_MANY_ENTRIES_LOG.admit() {
                    tracing::warn!(%peer, error = %e, refused_since_last_line = left_out, "closing connection: request too large");
                }
                broker.metrics.record_bad_request("entries");
                break;
            }
            Err(e) => {
                if let Some(left_out) = BAD_REQUEST_LOG.admit() {
                    tracing::warn!(%peer, error = %e, refused_since_last_line = left_out, "closing connection: request not understood");
                }
                broker.metrics.record_bad_request("decode");
                break;
            }
        };
        activity.request_read();
        if requests.send(incoming).await.is_err() || close_after {
            break; // the handler stopped, or a refused authentication ends the connection
        }
    }
    drop(requests);
    // The handler finishes the request it has (a Fetch is abandoned once
    // `stop` is cancelled), then the writer sends what is due.
    for (task, name) in [(&mut handler_task.0, "request handler"), (&mut writer_task.0, "response writer")] {
        if let Err(e) = task.await
            && e.is_panic()
        {
            tracing::error!(%peer, error = %e, "connection {name} panicked");
        }
    }
}

/// When a SASL session that begins now and lasts `session_ms` ends: `None`
/// when nothing bounds it.
fn session_end(session_ms: Option<i64>) -> Option<Instant> {
    // A token expiring centuries ahead must not overflow the clock: such a
    // session has no end the clock can hold, so nothing bounds it.
    session_ms.and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms.max(0) as u64)))
}

/// Waits until the request being handled (if any) is done. Watches for the
/// client leaving meanwhile: `false` when it closed the connection (a
/// request it pipelined behind is then read, and its end seen, later).
async fn until_handled(reader: &mut ConnReader, activity: &Activity) -> bool {
    let mut watch_eof = true;
    loop {
        let done = activity.handled();
        if activity.quiet_since().is_some() {
            return true;
        }
        if !watch_eof {
            done.await;
            continue;
        }
        tokio::select! {
            _ = done => {}
            readable = reader.wait_readable() => match readable {
                false => return false,
                // The next request is already here: wait for the handler alone.
                true => watch_eof = false,
            },
        }
    }
}

/// Handles the connection's requests one at a time, in the order read, and
/// queues their responses for the writer.
async fn handle_in_order(
    broker: Arc<Broker>,
    mut incoming: mpsc::Receiver<Incoming>,
    responses: mpsc::Sender<Outgoing>,
    activity: Arc<Activity>,
    stop: CancellationToken,
) {
    while let Some(next) = incoming.recv().await {
        if broker.shutdown.is_cancelled() {
            break;
        }
        let (response, throttle) = match next {
            Incoming::Answered(response) => (Ok(response), Duration::ZERO),
            Incoming::Request(queued) => {
                let Queued { ctx, request, _memory } = *queued;
                if ctx.api_key == ApiKey::Fetch {
                    // A fetch only reads: abandoning it when its client goes loses nothing.
                    tokio::select! {
                        r = answer(&broker, ctx, request) => r,
                        _ = stop.cancelled() => break,
                    }
                } else {
                    answer(&broker, ctx, request).await
                }
            }
        };
        if throttle.is_zero() {
            activity.request_done();
        }
        let Ok(response) = response else {
            break; // a response that cannot be sent ends the connection: later ones must not overtake it
        };
        if let Some(response) = response
            && responses.send(response).await.is_err()
        {
            break; // the writer stopped: the peer is gone
        }
        if !throttle.is_zero() {
            // KIP-219: the answer (with its throttle_time_ms) is out; the
            // connection stays muted — its next request is not read — until
            // the throttle has passed. The reader still sees the client leave.
            tokio::select! {
                _ = tokio::time::sleep(throttle) => {}
                _ = stop.cancelled() => break,
                _ = broker.shutdown.cancelled() => break,
            }
            activity.request_done();
        }
    }
    stop.cancel();
}

/// A response could not be encoded; the connection must close (the client
/// would otherwise match later responses to this request).
#[derive(Debug)]
struct EncodeFailed;

/// Handles one request: its response frame, `None` when it gets none
/// (acks=0), and how long the connection stays muted after it for the
/// client's quotas (see [`super::throttle`]).
async fn answer(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    request: RequestKind,
) -> (Result<Option<Outgoing>, EncodeFailed>, Duration) {
    let started = Instant::now();
    tracing::debug!(api = ?ctx.api_key, version = ctx.api_version, correlation_id = ctx.correlation_id, client_id = ?ctx.client_id, "request");
    let produce_bytes = super::throttle::produce_bytes(broker, &request);
    let mut response = handle(broker, &ctx, request).await;
    let took = started.elapsed();
    let throttle = super::throttle::enforce(broker, &ctx, produce_bytes, took, response.as_mut());
    if let Some(Response { body: ResponseKind::Fetch(fetched), file_records, .. }) = &response {
        broker.metrics.record_fetch(&fetched.responses, file_records);
    }
    broker.metrics.record_request(ctx.api_key, ctx.api_version, took, response.as_ref().map(|r| &r.body));
    let Some(response) = response else {
        return (Ok(None), throttle);
    };
    (encode_or_log(ctx.correlation_id, ctx.api_key, ctx.api_version, &response), throttle)
}

fn encode_or_log(
    correlation_id: i32,
    api: ApiKey,
    version: i16,
    response: &Response,
) -> Result<Option<Outgoing>, EncodeFailed> {
    match encode_response(correlation_id, api, version, response) {
        Ok(frame) => Ok(Some(frame)),
        Err(e) => {
            tracing::error!(?api, version, error = %e, "could not encode response; closing the connection");
            Err(EncodeFailed)
        }
    }
}

/// Writes the responses in order; a response the client does not take in
/// `stall` (it stopped reading) ends the connection.
async fn write_responses(
    mut writer: ConnWriter,
    mut responses: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
    stall: Duration,
) {
    while let Some(frame) = responses.recv().await {
        let written = match tokio::time::timeout(stall, writer.write(&frame)).await {
            Ok(written) => written,
            Err(_) => {
                if let Some(left_out) = STALLED_LOG.admit() {
                    tracing::warn!(%peer, ?stall, closed_since_last_line = left_out, "closing connection: the client took no response for connections.max.idle.ms");
                }
                break;
            }
        };
        if let Err(e) = written {
            match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    if let Some(left_out) = STALLED_LOG.admit() {
                        tracing::warn!(%peer, error = %e, closed_since_last_line = left_out, "closing connection");
                    }
                }
                _ => tracing::debug!(%peer, error = %e, "client went away"),
            }
            break;
        }
    }
    writer.shutdown().await;
}
