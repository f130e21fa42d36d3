//! Fetches OAUTHBEARER key sets from HTTPS endpoints
//! (`sasl.oauthbearer.jwks.endpoint.url=https://...`) in the background and
//! hands them to [`super::jwks`], which authentication attempts read.
//!
//! One task per endpoint: it fetches at start, then every
//! `sasl.oauthbearer.jwks.endpoint.refresh.ms`; a failed fetch is retried
//! with a backoff from 100 ms to 10 s (the last good key set keeps serving
//! meanwhile). A fetch is one HTTP/1.1 GET over TLS (rustls, trusting the
//! PEM CAs of the JAAS option `ssl.truststore.location`, else the system's
//! roots), bounded: 10 s for the whole exchange, 1 MiB of body, status 200.
//!
//! Must never: follow a redirect, accept plaintext HTTP, or let a slow or
//! hostile endpoint hold more than one connection and 1 MiB.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::jwks::{JwksSource, MAX_JWKS_BYTES};
use crate::config::listeners::Listener;
use crate::log_lines::LineLimit;

/// The longest one fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The first and the longest wait before retrying a failed fetch.
const RETRY_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

/// Failed fetches, logged a line a second at most.
static FAILED_LOG: LineLimit = LineLimit::new(1);

/// Starts one refresh task per distinct HTTPS endpoint among `listeners`;
/// they stop when `shutdown` is cancelled.
pub fn spawn_refreshers(listeners: &[Listener], shutdown: &CancellationToken) {
    let mut started = std::collections::BTreeSet::new();
    for listener in listeners {
        let Some(oauth) = listener.sasl.as_ref().and_then(|s| s.oauth.as_ref()) else { continue };
        let JwksSource::Https { url, trust, refresh } = &oauth.jwks else { continue };
        if !started.insert(url.clone()) {
            continue;
        }
        let (url, trust, refresh, shutdown) = (url.clone(), trust.clone(), *refresh, shutdown.clone());
        tokio::spawn(async move {
            let mut backoff = RETRY_BACKOFF.0;
            loop {
                let outcome = fetch(&url, trust.as_deref()).await;
                let wait = match &outcome {
                    Ok(_) => {
                        tracing::debug!(%url, "fetched the OAUTHBEARER key set");
                        backoff = RETRY_BACKOFF.0;
                        refresh
                    }
                    Err(why) => {
                        if let Some(left_out) = FAILED_LOG.admit() {
                            tracing::warn!(%url, error = %why, failed_since_last_line = left_out, "cannot fetch the OAUTHBEARER key set (sasl.oauthbearer.jwks.endpoint.url); retrying");
                        }
                        let wait = backoff;
                        backoff = (backoff * 2).min(RETRY_BACKOFF.1);
                        wait
                    }
                };
                super::jwks::record_fetch(&url, outcome);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }
}

/// Fetches and parses the key set at `url` (https only), trusting the CAs
/// in the PEM file `trust` or else the system's roots.
pub async fn fetch(url: &str, trust: Option<&Path>) -> Result<Value, String> {
    match tokio::time::timeout(FETCH_TIMEOUT, fetch_unbounded(url, trust)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {FETCH_TIMEOUT:?}")),
    }
}

async fn fetch_unbounded(url: &str, trust: Option<&Path>) -> Result<Value, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err("only https:// endpoints are fetched".to_string());
    }
    let host = uri.host().ok_or("the URL names no host")?.to_string();
    let port = uri.port_u16().unwrap_or(443);
    let config = client_config(trust)?;
    let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
        .map_err(|e| format!("host {host}: {e}"))?;
    let tcp = tokio::net::TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP with {host}:{port}: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(&host);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("build the request: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    if status != hyper::StatusCode::OK {
        driver.abort();
        return Err(format!("GET {url} answered {status}"));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES as usize)
        .collect()
        .await
        .map_err(|e| format!("read the body of {url} (at most {MAX_JWKS_BYTES} bytes): {e}"))?
        .to_bytes();
    driver.abort();
    super::jwks::parse(&body, url)
}

/// The TLS client configuration: the PEM CAs in `trust`, or the system's roots.
fn client_config(trust: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("read the truststore {}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("the truststore {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("the truststore {}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert); // a system root rustls cannot use is skipped, as browsers do
            }
        }
    }
    if roots.is_empty() {
        return Err("no CA certificate to trust (ssl.truststore.location, or the system's roots)".to_string());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
