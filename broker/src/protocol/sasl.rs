//! The SASL requests of a connection, answered by the connection itself
//! (they change who the connection is, so they cannot wait in the handler
//! queue behind requests that would run as the wrong principal).
//!
//! Kafka's rules: on a SASL listener, before authentication completes only
//! ApiVersions, SaslHandshake and SaslAuthenticate are served; any other
//! request closes the connection, and so does a SASL token before the
//! handshake (it does not even decode as a request). A failed
//! authentication answers SASL_AUTHENTICATION_FAILED with a message that
//! does not say which part was wrong, is counted
//! (`strom_authentication_failures_total`) and logged (a line a second at
//! most), and closes the connection.
//!
//! With `connections.max.reauth.ms` set, or a credential that expires (an
//! OAUTHBEARER token's `exp`), a successful SaslAuthenticate (v1+) tells
//! the client its session lifetime (the earlier of the two); the client
//! re-authenticates on the same connection before it ends, and the
//! connection closes a session that ended (see `serve_connection`).

use bytes::{BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse};
use ring::rand::SecureRandom;

use super::codec::RequestContext;
use super::handlers::str_bytes;
use super::outgoing::Outgoing;
use crate::auth::Principal;
use crate::auth::sasl::{AuthStep, HandshakeRefused, SaslSession};
use crate::broker::Broker;
use crate::log_lines::LineLimit;

/// Failed authentications, logged a line a second at most.
static FAILED_LOG: LineLimit = LineLimit::new(1);

/// A completed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Who the connection is from now on.
    pub principal: Principal,
    /// How long the session lasts before the client must re-authenticate
    /// (KIP-368), if it ends.
    pub session_ms: Option<i64>,
}

/// The session lifetime of an authentication completed at `now_ms`, as
/// Kafka computes it: `connections.max.reauth.ms` (0 = unset) and the
/// credential's expiry (an OAUTHBEARER token's `exp`), whichever comes
/// first; `None` when neither bounds it. A credential already at its expiry
/// (accepted within the clock skew) gets 1 ms, so the next request must
/// re-authenticate.
pub fn session_lifetime_ms(max_reauth_ms: i64, expires_ms: Option<i64>, now_ms: i64) -> Option<i64> {
    let reauth = (max_reauth_ms > 0).then_some(max_reauth_ms);
    let credential = expires_ms.map(|at| at.saturating_sub(now_ms).max(1));
    match (reauth, credential) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the connection does with a request.
#[derive(Debug)]
pub enum Gate {
    /// Serve it as usual.
    Pass,
    /// Answer it with `response`; the connection is authenticated from now
    /// on if set, and closes after the answer if `close`.
    Answer { response: Box<ResponseKind>, authenticated: Option<Authenticated>, close: bool },
    /// Close the connection without an answer.
    Close,
}

/// Fills `bytes` from the OS source; false (and an error line) if it
/// failed, which fails the authentication instead of using a guessable nonce.
fn fill_random(bytes: &mut [u8]) -> bool {
    let filled = ring::rand::SystemRandom::new().fill(bytes).is_ok();
    if !filled {
        tracing::error!("the operating system's random source failed; refusing the SCRAM exchange");
    }
    filled
}

fn failed(broker: &Broker, ctx: &RequestContext, listener: &str, mechanism: &str) {
    broker.metrics.record_authentication_failure(listener, mechanism);
    if let Some(left_out) = FAILED_LOG.admit() {
        tracing::warn!(peer = ?ctx.peer, listener, mechanism, failed_since_last_line = left_out, "client failed SASL authentication; closing the connection");
    }
}

/// Runs one step of the exchange: the answer token, and who the client is
/// once authenticated, or `Err(mechanism)` when it failed.
fn step(
    session: &mut SaslSession,
    broker: &Broker,
    token: &[u8],
    max_reauth_ms: i64,
) -> Result<(Vec<u8>, Option<Authenticated>), String> {
    let lookup = |user: &str, mechanism| broker.metadata.read().scram_credential(user, mechanism);
    let oauth_config = session.config().oauth.clone();
    let oauth = |message: &[u8]| -> Option<(String, i64)> {
        let config = oauth_config?;
        let checked = crate::auth::oauth::bearer_token(message).and_then(|token| {
            let keys = crate::auth::jwks::key_set(&config.jwks)?;
            crate::auth::oauth::validate(token, &keys, &config, crate::broker::now_ms() / 1000)
        });
        match checked {
            Ok(valid) => Some((valid.subject, valid.expires_s.saturating_mul(1000))),
            Err(e) => {
                tracing::debug!(error = %e, "OAUTHBEARER token refused");
                None
            }
        }
    };
    match session.authenticate_with(token, lookup, fill_random, oauth) {
        AuthStep::Continue(t) => Ok((t, None)),
        AuthStep::Done { principal, token, expires_ms } => {
            let session_ms = session_lifetime_ms(max_reauth_ms, expires_ms, crate::broker::now_ms());
            Ok((token, Some(Authenticated { principal, session_ms })))
        }
        AuthStep::Failed { mechanism, .. } => Err(mechanism.name().to_string()),
        AuthStep::IllegalState => Err("none".to_string()),
    }
}

/// Decides what to do with a decoded request. `session` is `None` on a
/// listener without SASL; `max_reauth_ms` is `connections.max.reauth.ms`.
pub fn gate(
    session: Option<&mut SaslSession>,
    broker: &Broker,
    ctx: &RequestContext,
    request: &RequestKind,
    listener: &str,
    max_reauth_ms: i64,
) -> Gate {
    let illegal = |message: &str, close: bool| Gate::Answer {
        response: Box::new(match ctx.api_key {
            ApiKey::SaslHandshake => ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code()),
            ),
            _ => ResponseKind::SaslAuthenticate(
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(str_bytes(message.to_string()))),
            ),
        }),
        authenticated: None,
        close,
    };
    match (request, session) {
        (RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_), None) => {
            illegal("this listener does not use SASL", false)
        }
        (RequestKind::SaslAuthenticate(_), Some(s)) if s.authenticated() => {
            illegal("the connection has already authenticated; re-authentication starts with a SaslHandshake", true)
        }
        (RequestKind::SaslHandshake(r), Some(s)) => {
            let outcome = s.handshake(r.mechanism.as_str(), ctx.api_version == 0);
            let mechanisms = s.enabled().into_iter().map(|m| str_bytes(m.to_string())).collect();
            let code = match outcome {
                Ok(()) => 0,
                Err(HandshakeRefused::Unsupported) => ResponseError::UnsupportedSaslMechanism.code(),
                Err(HandshakeRefused::IllegalState) => ResponseError::IllegalSaslState.code(),
            };
            Gate::Answer {
                response: Box::new(ResponseKind::SaslHandshake(
                    SaslHandshakeResponse::default().with_error_code(code).with_mechanisms(mechanisms),
                )),
                authenticated: None,
                close: code != 0,
            }
        }
        (RequestKind::SaslAuthenticate(r), Some(s)) => {
            if !s.expects_authenticate() {
                return illegal("SaslAuthenticate before a SaslHandshake naming the mechanism", true);
            }
            match step(s, broker, &r.auth_bytes, max_reauth_ms) {
                Ok((token, authenticated)) => {
                    let lifetime = authenticated.as_ref().and_then(|a| a.session_ms).filter(|_| ctx.api_version >= 1);
                    Gate::Answer {
                        response: Box::new(ResponseKind::SaslAuthenticate(
                            SaslAuthenticateResponse::default()
                                .with_auth_bytes(token.into())
                                .with_session_lifetime_ms(lifetime.unwrap_or(0)),
                        )),
                        authenticated,
                        close: false,
                    }
                }
                Err(mechanism) => {
                    failed(broker, ctx, listener, &mechanism);
                    let message = crate::config::listeners::Mechanism::parse(&mechanism)
                        .map(crate::auth::sasl::failure_message)
                        .unwrap_or_else(|| "Authentication failed".to_string());
                    Gate::Answer {
                        response: Box::new(ResponseKind::SaslAuthenticate(
                            SaslAuthenticateResponse::default()
                                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                                .with_error_message(Some(str_bytes(message))),
                        )),
                        authenticated: None,
                        close: true,
                    }
                }
            }
        }
        (_, None) => Gate::Pass,
        (_, Some(s)) if s.authenticated() => Gate::Pass,
        (RequestKind::ApiVersions(_), Some(_)) => Gate::Pass,
        (_, Some(_)) => {
            if let Some(left_out) = FAILED_LOG.admit() {
                tracing::warn!(peer = ?ctx.peer, listener, api = ?ctx.api_key, failed_since_last_line = left_out, "closing connection: request before SASL authentication");
            }
            broker.metrics.record_authentication_failure(listener, "none");
            Gate::Close
        }
    }
}

/// After a v0 SaslHandshake, the next frame is a bare token: the answer
/// frame (a size-prefixed token) and who the client is once authenticated,
/// or `None` to close (a failed v0 exchange just closes, as in Kafka). A v0
/// client cannot be told its session lifetime, but the session still ends.
pub fn raw_token(
    session: &mut SaslSession,
    broker: &Broker,
    token: &[u8],
    peer: std::net::SocketAddr,
    listener: &str,
    max_reauth_ms: i64,
) -> Option<(Outgoing, Option<Authenticated>)> {
    match step(session, broker, token, max_reauth_ms) {
        Ok((answer, authenticated)) => {
            let mut frame = BytesMut::with_capacity(4 + answer.len());
            frame.put_u32(answer.len() as u32);
            frame.put_slice(&answer);
            Some((Outgoing::from(frame.freeze()), authenticated))
        }
        Err(mechanism) => {
            broker.metrics.record_authentication_failure(listener, &mechanism);
            if let Some(left_out) = FAILED_LOG.admit() {
                tracing::warn!(%peer, listener, mechanism, failed_since_last_line = left_out, "client failed SASL authentication; closing the connection");
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::session_lifetime_ms;

    #[test]
    fn a_session_ends_at_the_reauth_limit_or_the_credential_expiry_whichever_is_first() {
        assert_eq!(session_lifetime_ms(0, None, 1_000), None, "nothing bounds it");
        assert_eq!(session_lifetime_ms(60_000, None, 1_000), Some(60_000));
        assert_eq!(session_lifetime_ms(0, Some(31_000), 1_000), Some(30_000), "a token bounds it without reauth");
        assert_eq!(session_lifetime_ms(60_000, Some(31_000), 1_000), Some(30_000));
        assert_eq!(session_lifetime_ms(10_000, Some(31_000), 1_000), Some(10_000));
        assert_eq!(session_lifetime_ms(0, Some(900), 1_000), Some(1), "expired within the skew: renew at once");
    }
}
