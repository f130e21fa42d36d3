//! SASL/OAUTHBEARER (RFC 7628) as Kafka brokers validate it: the client
//! sends a JWT (`n,,\x01auth=Bearer <jwt>\x01\x01`); its signature must
//! verify with a key of the configured JWKS (ES256 or RS256, by `kid`), it
//! must not have expired (nor be used before `nbf`), within the clock skew,
//! and name the expected issuer and an expected audience when those are
//! set. The principal is the `sub` claim (`sasl.oauthbearer.sub.claim.name`).
//!
//! The token's `exp` bounds the session (KIP-368): the connection must
//! re-authenticate before it, or is closed.
//!
//! Pure: the parsed JWKS, the token and the time come in (the file is read
//! by [`super::jwks`]); signatures are verified with `ring`. Errors say what was wrong for the broker's log
//! and tests; clients only ever see the generic failure message.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::signature;
use serde_json::Value;

/// OAUTHBEARER settings of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// `sasl.oauthbearer.jwks.endpoint.url`: where the key set comes from.
    pub jwks: super::jwks::JwksSource,
    /// `sasl.oauthbearer.expected.issuer`.
    pub issuer: Option<String>,
    /// `sasl.oauthbearer.expected.audience`: one of these must be in `aud`.
    pub audience: Vec<String>,
    /// `sasl.oauthbearer.sub.claim.name`.
    pub sub_claim: String,
    /// `sasl.oauthbearer.clock.skew.seconds`.
    pub clock_skew_s: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The SASL message is not `n,,\x01auth=Bearer <token>\x01\x01`.
    #[error("malformed OAUTHBEARER client message")]
    Message,
    /// The token is not three base64url parts with JSON header and claims.
    #[error("malformed JWT: {0}")]
    Token(&'static str),
    /// The JWKS could not be read or holds no usable key for the token.
    #[error("no usable key: {0}")]
    Key(String),
    /// The signature does not verify.
    #[error("the JWT signature does not verify")]
    Signature,
    /// A claim check failed.
    #[error("claim check failed: {0}")]
    Claim(&'static str),
}

/// The bearer token of an OAUTHBEARER client-first message.
pub fn bearer_token(message: &[u8]) -> Result<&str, OAuthError> {
    let text = std::str::from_utf8(message).map_err(|_| OAuthError::Message)?;
    let (gs2, rest) = text.split_once('\x01').ok_or(OAuthError::Message)?;
    if !gs2.starts_with("n,") && !gs2.starts_with("y,") {
        return Err(OAuthError::Message);
    }
    let rest = rest.strip_suffix("\x01\x01").ok_or(OAuthError::Message)?;
    for pair in rest.split('\x01') {
        if let Some(value) = pair.strip_prefix("auth=") {
            let token = value.strip_prefix("Bearer ").ok_or(OAuthError::Message)?;
            return if token.is_empty() { Err(OAuthError::Message) } else { Ok(token) };
        }
    }
    Err(OAuthError::Message)
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, OAuthError> {
    B64URL.decode(part.trim_end_matches('=')).map_err(|_| OAuthError::Token(what))
}

/// Finds the key for `alg`/`kid` in `jwks` and verifies `signature` over `signed`.
fn verify(jwks: &Value, alg: &str, kid: Option<&str>, signed: &[u8], sig: &[u8]) -> Result<(), OAuthError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| OAuthError::Key("the JWKS has no `keys` array".into()))?;
    let candidates: Vec<&Value> =
        keys.iter().filter(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid).collect();
    let key = match candidates.as_slice() {
        [one] => *one,
        [] => return Err(OAuthError::Key(format!("no key with kid {kid:?}"))),
        _ => return Err(OAuthError::Key("several keys match and the token names no kid".into())),
    };
    let field = |name: &str| -> Result<Vec<u8>, OAuthError> {
        let text =
            key.get(name).and_then(Value::as_str).ok_or_else(|| OAuthError::Key(format!("key lacks `{name}`")))?;
        B64URL.decode(text.trim_end_matches('=')).map_err(|_| OAuthError::Key(format!("key `{name}` is not base64url")))
    };
    match (alg, key.get("kty").and_then(Value::as_str)) {
        ("ES256", Some("EC")) => {
            let mut point = vec![4u8];
            point.extend(field("x")?);
            point.extend(field("y")?);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, sig)
                .map_err(|_| OAuthError::Signature)
        }
        ("RS256", Some("RSA")) => signature::RsaPublicKeyComponents { n: field("n")?, e: field("e")? }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, sig)
            .map_err(|_| OAuthError::Signature),
        (alg, kty) => {
            Err(OAuthError::Key(format!("alg {alg} with key type {kty:?} is not supported (ES256/EC, RS256/RSA)")))
        }
    }
}

/// Longest token accepted (real JWTs are a few KiB).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// A token that validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The principal name (the subject claim).
    pub subject: String,
    /// When the token expires (its `exp`, Unix seconds).
    pub expires_s: i64,
}

/// Validates `token` against the key set `jwks` and `config` at `now_s`
/// (Unix seconds): the principal name it carries and its expiry.
pub fn validate(token: &str, jwks: &Value, config: &OAuthConfig, now_s: i64) -> Result<Validated, OAuthError> {
    // Nothing of a token is decoded before its size is known to be sane:
    // parsing attacker-sized JSON costs far more memory than its bytes.
    if token.len() > MAX_TOKEN_BYTES {
        return Err(OAuthError::Token("longer than 64 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(OAuthError::Token("not three parts"));
    };
    let header_json: Value =
        serde_json::from_slice(&b64(header, "header")?).map_err(|_| OAuthError::Token("header"))?;
    let claims_json: Value =
        serde_json::from_slice(&b64(claims, "claims")?).map_err(|_| OAuthError::Token("claims"))?;
    let alg = header_json.get("alg").and_then(Value::as_str).ok_or(OAuthError::Token("no alg"))?;
    let kid = header_json.get("kid").and_then(Value::as_str);
    let signed = &token.as_bytes()[..header.len() + 1 + claims.len()];
    verify(jwks, alg, kid, signed, &b64(sig, "signature")?)?;
    let number = |name: &str| claims_json.get(name).and_then(Value::as_i64);
    let exp = number("exp").ok_or(OAuthError::Claim("no exp"))?;
    if now_s > exp + config.clock_skew_s {
        return Err(OAuthError::Claim("expired"));
    }
    if number("nbf").is_some_and(|nbf| now_s + config.clock_skew_s < nbf) {
        return Err(OAuthError::Claim("not valid yet (nbf)"));
    }
    if let Some(issuer) = &config.issuer
        && claims_json.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
    {
        return Err(OAuthError::Claim("issuer"));
    }
    if !config.audience.is_empty() {
        let aud: Vec<&str> = match claims_json.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !aud.iter().any(|a| config.audience.iter().any(|e| e == a)) {
            return Err(OAuthError::Claim("audience"));
        }
    }
    let subject = claims_json
        .get(&config.sub_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or(OAuthError::Claim("no subject"))?;
    Ok(Validated { subject, expires_s: exp })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    /// A signing key and its JWKS, for tests.
    pub(crate) fn key(kid: &str) -> (EcdsaKeyPair, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65])}]});
        (pair, jwks.to_string())
    }

    fn validate(token: &str, jwks: &str, config: &OAuthConfig, now_s: i64) -> Result<String, OAuthError> {
        let jwks: Value = serde_json::from_str(jwks).unwrap();
        super::validate(token, &jwks, config, now_s).map(|v| v.subject)
    }

    pub(crate) fn sign(pair: &EcdsaKeyPair, kid: &str, claims: &Value) -> String {
        let header = B64URL.encode(serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid}).to_string());
        let body = B64URL.encode(claims.to_string());
        let input = format!("{header}.{body}");
        let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", B64URL.encode(sig.as_ref()))
    }

    fn config() -> OAuthConfig {
        OAuthConfig {
            jwks: super::super::jwks::JwksSource::File("/unused".into()),
            issuer: Some("https://issuer".into()),
            audience: vec!["kafka".into()],
            sub_claim: "sub".into(),
            clock_skew_s: 30,
        }
    }

    #[test]
    fn a_signed_current_token_names_its_subject_and_anything_else_is_refused() {
        let (pair, jwks) = key("k1");
        let claims = serde_json::json!({"sub": "alice", "iss": "https://issuer", "aud": ["kafka"], "exp": 2000});
        let token = sign(&pair, "k1", &claims);
        assert_eq!(validate(&token, &jwks, &config(), 1000), Ok("alice".to_string()));
        let keys: Value = serde_json::from_str(&jwks).unwrap();
        assert_eq!(super::validate(&token, &keys, &config(), 1000).map(|v| v.expires_s), Ok(2000));
        assert_eq!(validate(&token, &jwks, &config(), 2100), Err(OAuthError::Claim("expired")));
        let (other, _) = key("k1");
        assert_eq!(validate(&sign(&other, "k1", &claims), &jwks, &config(), 1000), Err(OAuthError::Signature));
        assert!(matches!(validate(&sign(&pair, "k2", &claims), &jwks, &config(), 1000), Err(OAuthError::Key(_))));
        let wrong_aud = serde_json::json!({"sub": "alice", "iss": "https://issuer", "aud": "other", "exp": 2000});
        assert_eq!(
            validate(&sign(&pair, "k1", &wrong_aud), &jwks, &config(), 1000),
            Err(OAuthError::Claim("audience"))
        );
        // Another subject with the original signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mallory = serde_json::json!({"sub": "mallory", "iss": "https://issuer", "aud": ["kafka"], "exp": 2000});
        let forged = format!("{}.{}.{}", parts[0], B64URL.encode(mallory.to_string()), parts[2]);
        assert_eq!(validate(&forged, &jwks, &config(), 1000), Err(OAuthError::Signature));
        assert!(validate("a.b", &jwks, &config(), 1000).is_err());
        // An oversized token is refused before any of it is decoded.
        let huge = format!("{}.{}.{}", parts[0], "W".repeat(MAX_TOKEN_BYTES), parts[2]);
        assert_eq!(validate(&huge, &jwks, &config(), 1000), Err(OAuthError::Token("longer than 64 KiB")));
    }

    #[test]
    fn the_client_message_carries_the_bearer_token() {
        assert_eq!(bearer_token(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01"), Ok("abc.def.ghi"));
        assert_eq!(bearer_token(b"n,a=alice,\x01host=x\x01auth=Bearer t\x01\x01"), Ok("t"));
        for bad in
            [&b""[..], b"n,,\x01auth=Bearer t", b"n,,\x01auth=Basic t\x01\x01", b"\x01\x01", b"n,,\x01x=y\x01\x01"]
        {
            assert_eq!(bearer_token(bad), Err(OAuthError::Message), "{bad:?}");
        }
    }
}
