//! An OAuth identity provider for the operator's tests: an ES256 signing key
//! that mints JWTs ([`Issuer`]) and an HTTPS endpoint publishing its JSON Web
//! Key Set ([`JwksEndpoint`]) with a certificate of a test CA, as identity
//! providers publish theirs.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use strom_tls::certs::Ca;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An identity provider's ES256 signing key, named `iss`.
pub struct Issuer {
    pair: EcdsaKeyPair,
    /// The `iss` claim of its tokens.
    pub iss: String,
}

impl Issuer {
    pub fn new(iss: &str) -> Issuer {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("a key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("a key");
        Issuer { pair, iss: iss.to_string() }
    }

    /// The key set publishing the public key (`kid` k1).
    pub fn jwks(&self) -> String {
        let point = self.pair.public_key().as_ref();
        serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}]})
        .to_string()
    }

    /// A JWT for `sub` with audience `aud`, valid `expires_in` seconds from now.
    pub fn token(&self, sub: &str, aud: &str, expires_in: i64) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("the clock").as_secs() as i64;
        let header = B64.encode(r#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#);
        let claims =
            serde_json::json!({"sub": sub, "iss": self.iss, "aud": [aud], "iat": now, "exp": now + expires_in});
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let sig = self.pair.sign(&ring::rand::SystemRandom::new(), input.as_bytes()).expect("sign");
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

/// An HTTPS server on 127.0.0.1 answering every request with a key set;
/// its certificate (SANs `localhost`, 127.0.0.1) is signed by [`JwksEndpoint::ca`].
pub struct JwksEndpoint {
    /// Its port.
    pub port: u16,
    /// The PEM certificate of the CA that signed the server's certificate.
    pub ca: String,
}

impl JwksEndpoint {
    pub fn start(jwks: String) -> JwksEndpoint {
        let ca = Ca::generate("strom test identity provider CA").expect("a CA");
        let ip = [std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)];
        let leaf = ca.issue_named("jwks", None, &["localhost".to_string()], &ip).expect("a server certificate");
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(leaf.cert.as_bytes()).collect::<Result<_, _>>().expect("certificates");
        let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("a key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a server config");
        let config = Arc::new(config);
        let socket = TcpListener::bind("127.0.0.1:0").expect("bind the JWKS endpoint");
        let port = socket.local_addr().expect("its address").port();
        std::thread::spawn(move || {
            for stream in socket.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(connection) = rustls::ServerConnection::new(config.clone()) else { continue };
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{jwks}",
                    jwks.len()
                );
                let _ = tls.write_all(reply.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        JwksEndpoint { port, ca: ca.pem().cert.clone() }
    }

    /// The key set's URL.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/keys", self.port)
    }
}
