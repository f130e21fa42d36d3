//! One connection's SASL state, Kafka's way: SaslHandshake names a
//! mechanism, then SaslAuthenticate requests (or, after a v0 handshake, raw
//! size-prefixed tokens) carry the mechanism's messages until it succeeds
//! or fails. Pure: the connection feeds it requests and user lookups and
//! sends what it answers.
//!
//! Re-authentication (KIP-368): with `connections.max.reauth.ms` set, or
//! after a credential that expires (an OAUTHBEARER token), an authenticated
//! connection may run the exchange again (a new handshake naming the same
//! mechanism); it must end as the same principal.
//!
//! Failure answers never say which part was wrong: an unknown user, a wrong
//! password and a malformed message give the same text.

use std::sync::Arc;

use super::Principal;
use super::scram::{ScramCredential, ScramServer, Step};
use crate::config::listeners::{ListenerSasl, Mechanism};

/// Kafka's answer to a failed authentication, the same for every cause.
pub fn failure_message(mechanism: Mechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

/// Where a connection's SASL exchange stands.
#[derive(Debug)]
enum Phase {
    /// No handshake yet.
    Handshake,
    /// A mechanism was chosen; tokens are expected.
    Exchange {
        mechanism: Mechanism,
        raw_tokens: bool,
        scram: Option<Box<ScramServer>>,
        /// Re-authenticating: the principal and mechanism of the session being renewed.
        renewing: Option<(Principal, Mechanism)>,
    },
    /// Authenticated as `principal` with `mechanism`, with a credential
    /// valid until `expires_ms` (Unix ms) if it expires.
    Done { principal: Principal, mechanism: Mechanism, expires_ms: Option<i64> },
    /// Failed; the connection closes.
    Failed,
}

/// Why a SaslHandshake was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeRefused {
    /// Kafka: UNSUPPORTED_SASL_MECHANISM; the list of enabled ones is answered.
    Unsupported,
    /// Kafka: ILLEGAL_SASL_STATE (a second handshake).
    IllegalState,
}

/// What an authentication step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send this token; the exchange goes on.
    Continue(Vec<u8>),
    /// Authenticated: send this token; the connection is now `principal`,
    /// until `expires_ms` (Unix ms) when its credential expires.
    Done { principal: Principal, token: Vec<u8>, expires_ms: Option<i64> },
    /// Failed: answer SASL_AUTHENTICATION_FAILED with this message and close.
    Failed { mechanism: Mechanism, message: String },
    /// A token out of order (no handshake yet): ILLEGAL_SASL_STATE, then close.
    IllegalState,
}

/// One connection's SASL state.
#[derive(Debug)]
pub struct SaslSession {
    config: Arc<ListenerSasl>,
    phase: Phase,
    reauthentication: bool,
}

impl SaslSession {
    /// A connection on a listener with `config`; `reauthentication`
    /// lets an authenticated connection run the exchange again.
    pub fn new(config: Arc<ListenerSasl>, reauthentication: bool) -> SaslSession {
        SaslSession { config, phase: Phase::Handshake, reauthentication }
    }

    /// The mechanisms enabled, by Kafka name.
    pub fn enabled(&self) -> Vec<&'static str> {
        self.config.mechanisms.iter().map(|m| m.name()).collect()
    }

    /// Whether the client has authenticated.
    pub fn authenticated(&self) -> bool {
        matches!(self.phase, Phase::Done { .. })
    }

    /// Whether the next frame is a raw token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.phase, Phase::Exchange { raw_tokens: true, .. })
    }

    /// Whether a SaslAuthenticate request is expected now.
    pub fn expects_authenticate(&self) -> bool {
        matches!(self.phase, Phase::Exchange { raw_tokens: false, .. })
    }

    /// SaslHandshake naming `mechanism`; `raw_tokens` for v0 (tokens follow
    /// as bare frames instead of SaslAuthenticate requests).
    pub fn handshake(&mut self, mechanism: &str, raw_tokens: bool) -> Result<(), HandshakeRefused> {
        let renewing = match &self.phase {
            Phase::Handshake => None,
            Phase::Done { principal, mechanism, expires_ms }
                if (self.reauthentication || expires_ms.is_some()) && !raw_tokens =>
            {
                Some((principal.clone(), *mechanism))
            }
            _ => return Err(HandshakeRefused::IllegalState),
        };
        let mechanism = Mechanism::parse(mechanism)
            .filter(|m| self.config.mechanisms.contains(m))
            .filter(|m| renewing.as_ref().is_none_or(|(_, was)| was == m))
            .ok_or(HandshakeRefused::Unsupported)?;
        let scram = matches!(mechanism, Mechanism::ScramSha256 | Mechanism::ScramSha512)
            .then(|| Box::new(ScramServer::new(mechanism)));
        self.phase = Phase::Exchange { mechanism, raw_tokens, scram, renewing };
        Ok(())
    }

    /// The listener's SASL settings.
    pub fn config(&self) -> &ListenerSasl {
        &self.config
    }

    /// The next token of the exchange. `scram_lookup` finds a user's SCRAM
    /// credential for a mechanism; `random` fills bytes with randomness
    /// (false if the source failed: the exchange then fails).
    /// OAUTHBEARER tokens are checked by [`Self::authenticate_with`].
    pub fn authenticate(
        &mut self,
        token: &[u8],
        scram_lookup: impl FnOnce(&str, Mechanism) -> Option<ScramCredential>,
        random: impl Fn(&mut [u8]) -> bool,
    ) -> AuthStep {
        self.authenticate_with(token, scram_lookup, random, |_| None)
    }

    /// As [`Self::authenticate`], with `oauth` validating an OAUTHBEARER
    /// client message (the principal name and when its token expires, in
    /// Unix ms, or `None` to refuse it).
    pub fn authenticate_with(
        &mut self,
        token: &[u8],
        scram_lookup: impl FnOnce(&str, Mechanism) -> Option<ScramCredential>,
        random: impl Fn(&mut [u8]) -> bool,
        oauth: impl FnOnce(&[u8]) -> Option<(String, i64)>,
    ) -> AuthStep {
        let Phase::Exchange { mechanism, scram, renewing, .. } = &mut self.phase else {
            self.phase = Phase::Failed;
            return AuthStep::IllegalState;
        };
        let mechanism = *mechanism;
        let result = match scram {
            None if mechanism == Mechanism::OAuthBearer => {
                oauth(token).map(|(user, expires)| (user, Vec::new(), Some(expires))).ok_or(())
            }
            None => plain(&self.config, token).map(|user| (user, Vec::new(), None)).ok_or(()),
            Some(server) => match server.step(token, |user| scram_lookup(user, mechanism), random) {
                Ok(Step::Continue(out)) => return AuthStep::Continue(out),
                Ok(Step::Success { user, server_final }) => Ok((user, server_final, None)),
                Err(_) => Err(()),
            },
        };
        let renewing = renewing.take();
        match result {
            // A renewed session must stay the same principal (Kafka's rule).
            Ok((user, token, expires_ms)) if renewing.as_ref().is_none_or(|(p, _)| p.name == user) => {
                let principal = Principal::user(user);
                self.phase = Phase::Done { principal: principal.clone(), mechanism, expires_ms };
                AuthStep::Done { principal, token, expires_ms }
            }
            _ => {
                self.phase = Phase::Failed;
                AuthStep::Failed { mechanism, message: failure_message(mechanism) }
            }
        }
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL password`; the user if the
/// password is right and the authzid empty or the user itself.
fn plain(config: &ListenerSasl, token: &[u8]) -> Option<String> {
    let mut parts = token.split(|b| *b == 0);
    let (authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() || (!authzid.is_empty() && authzid != user) {
        return None;
    }
    let user = std::str::from_utf8(user).ok()?;
    let expected = config.plain_users.get(user)?;
    super::scram::constant_time_eq(expected.as_bytes(), password).then(|| user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random source that fills with `byte`.
    fn fill(byte: u8) -> impl Fn(&mut [u8]) -> bool {
        move |b| {
            b.fill(byte);
            true
        }
    }

    fn session(mechanisms: &[Mechanism]) -> SaslSession {
        SaslSession::new(
            Arc::new(ListenerSasl {
                mechanisms: mechanisms.to_vec(),
                plain_users: [("alice".to_string(), "alice-secret".to_string()), ("bob".to_string(), "b".to_string())]
                    .into_iter()
                    .collect(),
                oauth: None,
            }),
            true,
        )
    }

    proptest::proptest! {
        /// Whatever tokens arrive, the exchange answers, refuses or fails;
        /// it never authenticates without the password.
        #[test]
        fn arbitrary_tokens_never_authenticate(mechanism in 0usize..3, tokens in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 1..4)) {
            let name = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"][mechanism];
            let mut s = session(&[Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512]);
            s.handshake(name, false).unwrap();
            let credential = |_: &str, m| ScramCredential::from_salted_password(m, b"salt", 4096, b"salted");
            for token in &tokens {
                match s.authenticate(token, credential, fill(9)) {
                    AuthStep::Continue(_) => {}
                    AuthStep::Done { .. } => proptest::prop_assert!(false, "authenticated with {tokens:?}"),
                    AuthStep::Failed { .. } | AuthStep::IllegalState => break,
                }
            }
        }
    }

    #[test]
    fn a_session_renews_as_the_same_principal_with_the_same_mechanism_only() {
        let mut s = session(&[Mechanism::Plain, Mechanism::ScramSha256]);
        s.handshake("PLAIN", false).unwrap();
        assert!(matches!(s.authenticate(b"\0alice\0alice-secret", |_, _| None, |_| true), AuthStep::Done { .. }));
        assert_eq!(s.handshake("SCRAM-SHA-256", false), Err(HandshakeRefused::Unsupported));
        let mut s = session(&[Mechanism::Plain]);
        s.handshake("PLAIN", false).unwrap();
        assert!(matches!(s.authenticate(b"\0alice\0alice-secret", |_, _| None, |_| true), AuthStep::Done { .. }));
        s.handshake("PLAIN", false).unwrap();
        assert!(!s.authenticated(), "re-authenticating");
        assert!(matches!(s.authenticate(b"\0alice\0alice-secret", |_, _| None, |_| true), AuthStep::Done { .. }));
        s.handshake("PLAIN", false).unwrap();
        assert!(
            matches!(s.authenticate(b"\0bob\0b", |_, _| None, |_| true), AuthStep::Failed { .. }),
            "another principal"
        );
        let mut once = SaslSession::new(
            Arc::new(ListenerSasl { mechanisms: vec![Mechanism::Plain], plain_users: Default::default(), oauth: None }),
            false,
        );
        once.handshake("PLAIN", false).unwrap();
        assert!(matches!(once.authenticate(b"\0x\0y", |_, _| None, |_| true), AuthStep::Failed { .. }));
        assert_eq!(once.handshake("PLAIN", false), Err(HandshakeRefused::IllegalState));
    }

    #[test]
    fn plain_accepts_the_configured_password_only() {
        let mut s = session(&[Mechanism::Plain]);
        s.handshake("PLAIN", false).unwrap();
        let step = s.authenticate(b"\0alice\0alice-secret", |_, _| None, |_| true);
        assert_eq!(step, AuthStep::Done { principal: Principal::user("alice"), token: Vec::new(), expires_ms: None });
        assert!(s.authenticated());
        for bad in [&b"\0alice\0wrong"[..], b"\0bob\0alice-secret", b"alice-secret", b"mallory\0alice\0alice-secret"] {
            let mut s = session(&[Mechanism::Plain]);
            s.handshake("PLAIN", false).unwrap();
            let step = s.authenticate(bad, |_, _| None, |_| true);
            assert_eq!(
                step,
                AuthStep::Failed { mechanism: Mechanism::Plain, message: failure_message(Mechanism::Plain) }
            );
            assert!(!s.authenticated());
        }
    }

    #[test]
    fn handshakes_name_an_enabled_mechanism_once_and_come_first() {
        let mut s = session(&[Mechanism::ScramSha512]);
        assert_eq!(s.authenticate(b"n,,n=a,r=b", |_, _| None, |_| true), AuthStep::IllegalState);
        let mut s = session(&[Mechanism::ScramSha512]);
        assert_eq!(s.handshake("PLAIN", false), Err(HandshakeRefused::Unsupported));
        assert_eq!(s.handshake("GSSAPI", false), Err(HandshakeRefused::Unsupported));
        s.handshake("SCRAM-SHA-512", true).unwrap();
        assert!(s.expects_raw_token());
        assert_eq!(s.handshake("SCRAM-SHA-512", false), Err(HandshakeRefused::IllegalState));
        assert!(matches!(s.authenticate(b"n,,n=a,r=b", |_, _| None, fill(3)), AuthStep::Continue(_)));
        assert!(matches!(s.authenticate(b"truncated", |_, _| None, |_| true), AuthStep::Failed { .. }));
    }
}
