//! OAUTHBEARER with the key set fetched from an HTTPS endpoint
//! (`sasl.oauthbearer.jwks.endpoint.url=https://...`), as identity providers
//! publish it.
//!
//! Proves that the broker fetches the key set in the background over TLS,
//! trusting the CA named by the JAAS option `ssl.truststore.location`; that
//! tokens signed with it authenticate; that a rotated key set is picked up
//! at the next refresh (`sasl.oauthbearer.jwks.endpoint.refresh.ms`), the
//! retired key's tokens then refused; and that while the endpoint fails the
//! last key set fetched goes on serving.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::BrokerProcess;
use common::security::{Issuer, Pki, settings};
use common::wire::WireClient;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the endpoint answers: a status and a body.
type Answer = Arc<Mutex<(u16, String)>>;

/// A minimal HTTPS server answering every GET with the current answer;
/// counts the requests it served.
struct JwksEndpoint {
    port: u16,
    answer: Answer,
    served: Arc<AtomicUsize>,
}

impl JwksEndpoint {
    fn start(pki: &Pki, body: String) -> JwksEndpoint {
        let pem = std::fs::read(pki.path("keystore.pem")).expect("the server's PEM");
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().expect("certificates");
        let key = PrivateKeyDer::from_pem_slice(&pem).expect("a key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a server config");
        let config = Arc::new(config);
        let socket = TcpListener::bind("127.0.0.1:0").expect("bind the endpoint");
        let port = socket.local_addr().expect("its address").port();
        let answer: Answer = Arc::new(Mutex::new((200, body)));
        let served = Arc::new(AtomicUsize::new(0));
        let (shared, count) = (answer.clone(), served.clone());
        std::thread::spawn(move || {
            for stream in socket.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(connection) = rustls::ServerConnection::new(config.clone()) else { continue };
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) = shared.lock().clone();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if tls.write_all(reply.as_bytes()).is_ok() {
                    let _ = tls.flush();
                    count.fetch_add(1, Ordering::Relaxed);
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        JwksEndpoint { port, answer, served }
    }

    fn serve(&self, status: u16, body: String) {
        *self.answer.lock() = (status, body);
    }
}

/// SaslHandshake v1 then SaslAuthenticate v2 with `token` on a new
/// connection: the authentication's error code.
fn authenticate(sasl: SocketAddr, token: &str) -> i16 {
    let mut client = WireClient::connect(sasl);
    let handshake: SaslHandshakeResponse =
        client.send(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("OAUTHBEARER")), 1);
    assert_eq!(handshake.error_code, 0, "OAUTHBEARER is enabled");
    let message = format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes();
    let answer: SaslAuthenticateResponse =
        client.send(&SaslAuthenticateRequest::default().with_auth_bytes(message.into()), 2);
    answer.error_code
}

#[test]
fn the_key_set_is_fetched_over_https_refreshed_and_kept_through_an_outage() {
    let pki = Pki::new();
    let first = Issuer::new();
    let endpoint = JwksEndpoint::start(&pki, first.jwks());
    let mut settings = settings(&pki);
    settings.extend([
        "listener.name.sasl.sasl.enabled.mechanisms=PLAIN,OAUTHBEARER".to_string(),
        format!("listener.name.sasl.sasl.oauthbearer.jwks.endpoint.url=https://localhost:{}/keys", endpoint.port),
        "listener.name.sasl.sasl.oauthbearer.jwks.endpoint.refresh.ms=1000".to_string(),
        format!(
            "listener.name.sasl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ssl.truststore.location=\"{}\" ssl.truststore.type=\"PEM\";",
            pki.path("ca.pem")
        ),
        "listener.name.sasl.sasl.oauthbearer.expected.issuer=https://idp.test".to_string(),
        "listener.name.sasl.sasl.oauthbearer.expected.audience=kafka".to_string(),
    ]);
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let _broker = BrokerProcess::start_with(&refs);
    let ports = _broker.extra_ports();
    let sasl: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().expect("an address");
    let wait = Duration::from_secs(30);

    common::wait_for("a token of the fetched key set to authenticate", wait, || {
        (authenticate(sasl, &first.token("alice", 600)) == 0).then_some(())
    });
    assert!(endpoint.served.load(Ordering::Relaxed) >= 1);
    let forger = Issuer::new();
    assert_eq!(authenticate(sasl, &forger.token("alice", 600)), 58, "a key the endpoint does not publish");

    // Rotation: the endpoint publishes a new key set.
    let second = Issuer::new();
    endpoint.serve(200, second.jwks());
    common::wait_for("the rotated key set to be fetched", wait, || {
        (authenticate(sasl, &second.token("bob", 600)) == 0).then_some(())
    });
    assert_eq!(authenticate(sasl, &first.token("alice", 600)), 58, "the retired key");

    // An outage of the endpoint: the last key set keeps serving.
    let before = endpoint.served.load(Ordering::Relaxed);
    endpoint.serve(503, "unavailable".to_string());
    common::wait_for("a few failed refreshes", wait, || {
        (endpoint.served.load(Ordering::Relaxed) >= before + 2).then_some(())
    });
    assert_eq!(authenticate(sasl, &second.token("bob", 600)), 0, "the last key set fetched");
}
