//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side,
//! as Kafka speaks it: no channel binding, the `tokenauth` extension
//! ignored.
//!
//! [`ScramCredential`] is what the controller keeps per user and mechanism:
//! salt, iterations, stored key and server key — never the password, and
//! nothing that lets one log in (the stored key is a hash of the client
//! key). [`ScramServer`] runs one exchange: client-first in, server-first
//! out; client-final in, server-final out or a failure.
//!
//! Hashes, HMAC and randomness come from `ring`; comparisons of secrets are
//! constant-time. Parsing is pure and refuses anything malformed with a
//! [`ScramError`] that says what was wrong in the message's shape — never
//! whether the user exists or the proof was close.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac};
use serde::{Deserialize, Serialize};

use crate::config::listeners::Mechanism;

/// Kafka's bounds on SCRAM iterations.
pub const MIN_ITERATIONS: i32 = 4096;
/// Kafka's bounds on SCRAM iterations.
pub const MAX_ITERATIONS: i32 = 16384;

/// One user's credential for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt the password was salted with.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

fn algorithms(mechanism: Mechanism) -> Option<(hmac::Algorithm, &'static digest::Algorithm)> {
    match mechanism {
        Mechanism::ScramSha256 => Some((hmac::HMAC_SHA256, &digest::SHA256)),
        Mechanism::ScramSha512 => Some((hmac::HMAC_SHA512, &digest::SHA512)),
        Mechanism::Plain | Mechanism::OAuthBearer => None,
    }
}

/// The salt shown for a user with no credential: the same for a name at
/// every attempt (as a real user's is), so comparing two attempts does not
/// tell whether the user exists. Keyed by a secret drawn once per process.
fn unknown_user_salt(
    mechanism: Mechanism,
    user: &str,
    random: &impl Fn(&mut [u8]) -> bool,
) -> Result<Vec<u8>, ScramError> {
    static SECRET: std::sync::OnceLock<Option<[u8; 32]>> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).ok().map(|()| key)
    });
    match secret {
        Some(key) => {
            let mut data = mechanism.name().as_bytes().to_vec();
            data.push(0);
            data.extend_from_slice(user.as_bytes());
            Ok(mac(hmac::HMAC_SHA256, key, &data))
        }
        None => {
            let mut salt = vec![0u8; 32];
            if !random(&mut salt) {
                return Err(ScramError::NoRandomness);
            }
            Ok(salt)
        }
    }
}

fn mac(alg: hmac::Algorithm, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(alg, key), data).as_ref().to_vec()
}

impl ScramCredential {
    /// The credential of a salted password (what AlterUserScramCredentials
    /// carries: the client salts the password itself). `None` for PLAIN.
    pub fn from_salted_password(
        mechanism: Mechanism,
        salt: &[u8],
        iterations: i32,
        salted: &[u8],
    ) -> Option<ScramCredential> {
        let (alg, hash) = algorithms(mechanism)?;
        let client_key = mac(alg, salted, b"Client Key");
        Some(ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: digest::digest(hash, &client_key).as_ref().to_vec(),
            server_key: mac(alg, salted, b"Server Key"),
        })
    }
}

impl ScramCredential {
    /// The credential of `password` salted with `salt` over `iterations`
    /// (what the gRPC Admin API stores: the operator sends the password over
    /// the mutual-TLS internal plane and the broker salts it). `None` for a
    /// mechanism that is not SCRAM or iterations below 1.
    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: i32,
    ) -> Option<ScramCredential> {
        let rounds = std::num::NonZeroU32::new(u32::try_from(iterations).ok()?)?;
        let (pbkdf2, len) = match mechanism {
            Mechanism::ScramSha256 => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
            Mechanism::ScramSha512 => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
            Mechanism::Plain | Mechanism::OAuthBearer => return None,
        };
        let mut salted = vec![0u8; len];
        ring::pbkdf2::derive(pbkdf2, rounds, salt, password.as_bytes(), &mut salted);
        ScramCredential::from_salted_password(mechanism, salt, iterations, &salted)
    }

    /// Whether `password` is this credential's password (constant-time
    /// comparison of the stored keys).
    pub fn matches_password(&self, mechanism: Mechanism, password: &str) -> bool {
        ScramCredential::from_password(mechanism, password, &self.salt, self.iterations)
            .is_some_and(|c| constant_time_eq(&c.stored_key, &self.stored_key))
    }
}

/// A SCRAM message that does not parse, or an exchange that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// Not UTF-8, or a field missing or out of place.
    #[error("malformed SCRAM {0} message")]
    Malformed(&'static str),
    /// The client asked for channel binding, which Kafka does not use.
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    /// The final message's nonce or channel-binding echo does not match.
    #[error("SCRAM client-final message does not match the exchange")]
    Mismatch,
    /// Unknown user or wrong password; deliberately the same error.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A message after the exchange ended.
    #[error("unexpected SCRAM message after the exchange ended")]
    Finished,
    /// The operating system's random source failed: no nonce can be drawn,
    /// so the exchange is refused rather than run with a predictable one.
    #[error("no randomness for the SCRAM server nonce")]
    NoRandomness,
}

/// The client-first message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The GS2 header as sent (`n,,` or `n,a=<authzid>,`).
    pub gs2_header: String,
    /// The authorization id, if given.
    pub authzid: Option<String>,
    /// The user name, `=2C`/`=3D` decoded.
    pub user: String,
    /// The client's nonce.
    pub nonce: String,
    /// The message less the GS2 header.
    pub bare: String,
}

/// Decodes a SCRAM `saslname` (`=2C` is `,`, `=3D` is `=`; a lone `=` is invalid).
fn decode_name(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn printable_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Parses a client-first message.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    const WHAT: &str = "client-first";
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed(WHAT))?;
    let mut parts = text.splitn(3, ',');
    let cb = parts.next().ok_or(ScramError::Malformed(WHAT))?;
    let authz = parts.next().ok_or(ScramError::Malformed(WHAT))?;
    let bare = parts.next().ok_or(ScramError::Malformed(WHAT))?;
    match cb {
        "n" | "y" => {}
        c if c.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed(WHAT)),
    }
    let authzid = match authz {
        "" => None,
        a => Some(
            decode_name(a.strip_prefix("a=").ok_or(ScramError::Malformed(WHAT))?).ok_or(ScramError::Malformed(WHAT))?,
        ),
    };
    let mut fields = bare.split(',');
    let user = fields.next().and_then(|f| f.strip_prefix("n=")).ok_or(ScramError::Malformed(WHAT))?;
    let user = decode_name(user).filter(|u| !u.is_empty()).ok_or(ScramError::Malformed(WHAT))?;
    let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(ScramError::Malformed(WHAT))?;
    if !printable_nonce(nonce) {
        return Err(ScramError::Malformed(WHAT));
    }
    // Extensions (Kafka's `tokenauth=true`, ...) are key=value; anything else is malformed.
    if fields.any(|f| !f.contains('=')) {
        return Err(ScramError::Malformed(WHAT));
    }
    Ok(ClientFirst {
        gs2_header: format!("{cb},{authz},"),
        authzid,
        user,
        nonce: nonce.to_string(),
        bare: bare.to_string(),
    })
}

/// The client-final message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    /// The channel-binding field, base64-decoded.
    pub channel_binding: Vec<u8>,
    /// The combined nonce.
    pub nonce: String,
    /// The client proof.
    pub proof: Vec<u8>,
    /// The message up to (not including) `,p=`.
    pub without_proof: String,
}

/// Parses a client-final message.
pub fn parse_client_final(message: &[u8]) -> Result<ClientFinal, ScramError> {
    const WHAT: &str = "client-final";
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed(WHAT))?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed(WHAT))?;
    let mut fields = without_proof.split(',');
    let cb = fields.next().and_then(|f| f.strip_prefix("c=")).ok_or(ScramError::Malformed(WHAT))?;
    let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(ScramError::Malformed(WHAT))?;
    if fields.any(|f| !f.contains('=')) || !printable_nonce(nonce) {
        return Err(ScramError::Malformed(WHAT));
    }
    Ok(ClientFinal {
        channel_binding: B64.decode(cb).map_err(|_| ScramError::Malformed(WHAT))?,
        nonce: nonce.to_string(),
        proof: B64.decode(proof).map_err(|_| ScramError::Malformed(WHAT))?,
        without_proof: without_proof.to_string(),
    })
}

/// Where an exchange stands.
#[derive(Debug)]
enum Stage {
    /// Waiting for client-first.
    First,
    /// Server-first sent; waiting for client-final.
    Final {
        first: Box<ClientFirst>,
        server_first: String,
        nonce: String,
        /// `None`: unknown user (the exchange runs on with a made-up salt and fails at the end).
        credential: Option<ScramCredential>,
    },
    /// Ended (succeeded or failed).
    Done,
}

/// What a step of the exchange produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this and wait for the next client message.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send the server-final message.
    Success { user: String, server_final: Vec<u8> },
}

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: Mechanism,
    stage: Stage,
}

impl ScramServer {
    /// A new exchange for `mechanism` (a SCRAM one; PLAIN is refused at
    /// every step).
    pub fn new(mechanism: Mechanism) -> ScramServer {
        ScramServer { mechanism, stage: Stage::First }
    }

    /// Takes the next client message. `lookup` finds a user's credential
    /// for this mechanism; `random` fills bytes for the server nonce (and
    /// a made-up salt for an unknown user), false if it could not. Any
    /// error ends the exchange.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        random: impl Fn(&mut [u8]) -> bool,
    ) -> Result<Step, ScramError> {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        match stage {
            Stage::First => {
                let first = parse_client_first(message)?;
                let credential = lookup(&first.user);
                let mut server_nonce = [0u8; 24];
                if !random(&mut server_nonce) {
                    return Err(ScramError::NoRandomness);
                }
                let nonce = format!("{}{}", first.nonce, B64.encode(server_nonce));
                let (salt, iterations) = match &credential {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (unknown_user_salt(self.mechanism, &first.user, &random)?, MIN_ITERATIONS),
                };
                let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
                let out = server_first.clone().into_bytes();
                self.stage = Stage::Final { first: Box::new(first), server_first, nonce, credential };
                Ok(Step::Continue(out))
            }
            Stage::Final { first, server_first, nonce, credential } => {
                let fin = parse_client_final(message)?;
                if fin.nonce != nonce || fin.channel_binding != first.gs2_header.as_bytes() {
                    return Err(ScramError::Mismatch);
                }
                let (alg, hash) = algorithms(self.mechanism).ok_or(ScramError::InvalidCredentials)?;
                let credential = credential.ok_or(ScramError::InvalidCredentials)?;
                let auth_message = format!("{},{},{}", first.bare, server_first, fin.without_proof);
                let signature = mac(alg, &credential.stored_key, auth_message.as_bytes());
                if fin.proof.len() != signature.len() {
                    return Err(ScramError::InvalidCredentials);
                }
                let client_key: Vec<u8> = fin.proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
                let computed = digest::digest(hash, &client_key);
                if !constant_time_eq(computed.as_ref(), &credential.stored_key) {
                    return Err(ScramError::InvalidCredentials);
                }
                // Kafka takes no authorization id other than the user itself.
                if first.authzid.as_ref().is_some_and(|a| *a != first.user) {
                    return Err(ScramError::InvalidCredentials);
                }
                let server_signature = mac(alg, &credential.server_key, auth_message.as_bytes());
                Ok(Step::Success {
                    user: first.user,
                    server_final: format!("v={}", B64.encode(server_signature)).into_bytes(),
                })
            }
            Stage::Done => Err(ScramError::Finished),
        }
    }
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    use std::num::NonZeroU32;

    fn salted(mechanism: Mechanism, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let (alg, len) = match mechanism {
            Mechanism::ScramSha256 => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
            _ => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
        };
        let mut out = vec![0u8; len];
        ring::pbkdf2::derive(alg, NonZeroU32::new(iterations).unwrap(), salt, password.as_bytes(), &mut out);
        out
    }

    #[test]
    fn a_credential_from_a_password_matches_that_password_only() {
        let salt = b"0123456789abcdef";
        for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let c = ScramCredential::from_password(m, "pencil", salt, 4096).unwrap();
            let by_client = ScramCredential::from_salted_password(m, salt, 4096, &salted(m, "pencil", salt, 4096));
            assert_eq!(Some(c.clone()), by_client, "the broker salts as a client would");
            assert!(c.matches_password(m, "pencil"));
            assert!(!c.matches_password(m, "pencil2"));
        }
        assert_eq!(ScramCredential::from_password(Mechanism::Plain, "x", salt, 4096), None);
        assert_eq!(ScramCredential::from_password(Mechanism::ScramSha512, "x", salt, 0), None);
    }

    /// A client following RFC 5802, for the server to talk to.
    fn client_final(mechanism: Mechanism, password: &str, client_first_bare: &str, server_first: &str) -> String {
        let (alg, hash) = algorithms(mechanism).unwrap();
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = fields[0].strip_prefix("r=").unwrap();
        let salt = B64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
        let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
        let salted = salted(mechanism, password, &salt, iterations);
        let client_key = mac(alg, &salted, b"Client Key");
        let stored = digest::digest(hash, &client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode("n,,"));
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = mac(alg, stored.as_ref(), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn credential(mechanism: Mechanism, password: &str) -> ScramCredential {
        let salt = b"0123456789abcdef";
        ScramCredential::from_salted_password(mechanism, salt, 4096, &salted(mechanism, password, salt, 4096)).unwrap()
    }

    fn exchange(mechanism: Mechanism, stored_password: Option<&str>, password: &str) -> Result<Step, ScramError> {
        let mut server = ScramServer::new(mechanism);
        let first = "n,,n=alice,r=clientnonce";
        let Step::Continue(server_first) = server
            .step(
                first.as_bytes(),
                |u| stored_password.filter(|_| u == "alice").map(|p| credential(mechanism, p)),
                fill(7),
            )
            .unwrap()
        else {
            panic!("the first step continues");
        };
        let server_first = String::from_utf8(server_first).unwrap();
        assert!(server_first.starts_with("r=clientnonce"), "{server_first}");
        let fin = client_final(mechanism, password, "n=alice,r=clientnonce", &server_first);
        server.step(fin.as_bytes(), |_| None, fill(7))
    }

    #[test]
    fn the_right_password_authenticates_with_either_hash() {
        for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let step = exchange(mechanism, Some("secret"), "secret").unwrap();
            assert!(matches!(step, Step::Success { ref user, .. } if user == "alice"), "{step:?}");
        }
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_fail_alike() {
        assert_eq!(exchange(Mechanism::ScramSha512, Some("secret"), "guess"), Err(ScramError::InvalidCredentials));
        assert_eq!(exchange(Mechanism::ScramSha512, None, "secret"), Err(ScramError::InvalidCredentials));
    }

    #[test]
    fn an_unknown_user_gets_the_same_salt_at_every_attempt() {
        // A real user's salt never changes; a made-up one that changed would
        // tell an observer the user does not exist.
        let salt_of = |user: &str, byte: u8| {
            let mut server = ScramServer::new(Mechanism::ScramSha512);
            let first = format!("n,,n={user},r=nonce");
            let Ok(Step::Continue(out)) = server.step(first.as_bytes(), |_| None, fill(byte)) else {
                panic!("the first step continues");
            };
            let text = String::from_utf8(out).unwrap();
            text.split(',').find_map(|p| p.strip_prefix("s=")).unwrap().to_string()
        };
        assert_eq!(salt_of("mallory", 1), salt_of("mallory", 2), "stable whatever the random bytes");
        assert_ne!(salt_of("mallory", 1), salt_of("trudy", 1), "distinct per user");
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in ["", "n,,", "x,,n=a,r=b", "n,,n=,r=b", "n,,r=b,n=a", "n,,n=a=,r=b", "n,,n=a,r=", "n,,n=a,r=b,junk"] {
            assert!(parse_client_first(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert_eq!(parse_client_first(b"p=tls-unique,,n=a,r=b"), Err(ScramError::ChannelBinding));
        let first = parse_client_first(b"n,,n=a=2Cb=3Dc,r=xyz,tokenauth=true").unwrap();
        assert_eq!(first.user, "a,b=c");
        for bad in ["", "c=biws,r=x", "c=biws,p=AAAA", "c=!!,r=x,p=AAAA", "c=biws,r=x,p=!!"] {
            assert!(parse_client_final(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let mut server = ScramServer::new(Mechanism::ScramSha256);
        assert!(server.step(b"garbage", |_| None, fill(1)).is_err());
        assert_eq!(server.step(b"n,,n=a,r=b", |_| None, fill(1)), Err(ScramError::Finished));
    }

    #[test]
    fn a_failed_random_source_refuses_the_exchange_instead_of_a_guessable_nonce() {
        let mut server = ScramServer::new(Mechanism::ScramSha512);
        assert_eq!(server.step(b"n,,n=alice,r=abc", |_| None, |_| false), Err(ScramError::NoRandomness));
    }
}
