//! Mutual TLS on the internal gRPC plane: who is calling, proven by a
//! certificate signed by the cluster CA.
//!
//! Identity scheme: a broker's certificate carries the URI SAN
//! `strom://broker/<id>`, the operator's `strom://operator` (see
//! [`Identity`]). The identity of a caller is read from the certificate it
//! presented in the TLS handshake — never from a payload field — and handed
//! to the services in the request's extensions as a [`PeerInfo`]
//! (see [`caller`]).
//!
//! Both sides verify the other's chain against the CA bundle
//! (`--internal-tls-ca`, which may hold several CAs while one is rotated
//! out). A client does not check the server's host name: it checks that the
//! server's certificate names the broker it meant to call
//! (`strom://broker/<id>`), or any broker when it dials an address without
//! knowing the id. Broker certificates may still carry DNS/IP SANs for other
//! tools.
//!
//! Reload: [`InternalTls`] looks at the files' modification times and sizes
//! before each handshake (three `stat`s per new connection) and rebuilds its
//! configurations when one changed, so new connections use the new files
//! without a restart; a set of files that does not load is logged and the
//! previous one kept.

pub mod certs;
pub mod listener;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::{Channel, Endpoint};

/// The URI SAN prefix of a broker's certificate; the broker id follows.
pub const BROKER_URI_PREFIX: &str = "strom://broker/";
/// The URI SAN of the operator's certificate.
pub const OPERATOR_URI: &str = "strom://operator";

/// How long a TLS handshake on the internal listener may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a certificate says its holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A broker: URI SAN `strom://broker/<id>`.
    Broker(i32),
    /// The operator: URI SAN `strom://operator`.
    Operator,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Broker(id) => write!(f, "{BROKER_URI_PREFIX}{id}"),
            Identity::Operator => f.write_str(OPERATOR_URI),
        }
    }
}

/// Why the internal TLS files or a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("cannot load {what} from {path}: {reason}")]
    File { what: &'static str, path: PathBuf, reason: String },
    /// rustls refused the certificates or key.
    #[error("cannot build the internal TLS configuration: {0}")]
    Config(String),
    /// A certificate names no Strom identity.
    #[error("certificate names no Strom identity: {0}")]
    Identity(String),
}

/// Parses one URI SAN value as an identity; `None` for other URIs.
fn parse_uri(uri: &str) -> Option<Identity> {
    if uri == OPERATOR_URI {
        return Some(Identity::Operator);
    }
    let id = uri.strip_prefix(BROKER_URI_PREFIX)?;
    // Digits only: no sign, no whitespace, no leading `+`.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse::<i32>().ok().map(Identity::Broker)
}

/// The identity a certificate's URI SANs name. A certificate naming two
/// different identities is refused (a broker's certificate must not also
/// be the operator's).
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<Identity, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::Identity(format!("not an X.509 certificate: {e}")))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| TlsError::Identity(format!("bad subjectAltName extension: {e}")))?
        .ok_or_else(|| TlsError::Identity(format!("no subjectAltName (subject {})", parsed.subject())))?;
    let mut found: Option<Identity> = None;
    for name in &san.value.general_names {
        if let x509_parser::extensions::GeneralName::URI(uri) = name
            && let Some(identity) = parse_uri(uri)
        {
            match found {
                Some(other) if other != identity => {
                    return Err(TlsError::Identity(format!("it names both {other} and {identity}")));
                }
                _ => found = Some(identity),
            }
        }
    }
    found.ok_or_else(|| {
        TlsError::Identity(format!(
            "no URI SAN `{BROKER_URI_PREFIX}<id>` or `{OPERATOR_URI}` (subject {})",
            parsed.subject()
        ))
    })
}

/// The three PEM files of the internal plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA bundle: one or more CA certificates that sign peers' certificates.
    pub ca: PathBuf,
    /// This process's certificate chain (leaf first).
    pub cert: PathBuf,
    /// This process's private key.
    pub key: PathBuf,
}

/// Where the material comes from.
#[derive(Debug)]
enum Source {
    /// PEM files, reloaded when they change.
    Files(TlsFiles),
    /// PEM text held in memory (the operator's client identity); never reloaded.
    Pem { ca: String, pair: certs::PemPair },
}

/// What identifies one version of the files: each file's mtime, size and
/// inode (a file replaced by a rename has a new inode).
type Stamp = [Option<(SystemTime, u64, u64)>; 3];

fn stamp(source: &Source) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let Source::Files(files) = source else { return [None; 3] };
    let one = |p: &Path| {
        std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), m.ino()))
    };
    [one(&files.ca), one(&files.cert), one(&files.key)]
}

/// One loaded version of the files.
struct Loaded {
    stamp: Stamp,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    server: Arc<ServerConfig>,
    identity: Identity,
}

/// The internal plane's TLS material, reloaded when the files change.
pub struct InternalTls {
    source: Source,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Arc<Loaded>>,
}

impl std::fmt::Debug for InternalTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalTls").field("source", &self.source).finish_non_exhaustive()
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File { what, path: path.to_path_buf(), reason: e.to_string() })
}

/// The three PEM texts of `source`, each with what to call it in errors.
fn read_source(source: &Source) -> Result<[(Vec<u8>, Origin); 3], TlsError> {
    match source {
        Source::Files(files) => Ok([
            (read_file(CA_WHAT, &files.ca)?, Origin::File(files.ca.clone())),
            (read_file(CERT_WHAT, &files.cert)?, Origin::File(files.cert.clone())),
            (read_file(KEY_WHAT, &files.key)?, Origin::File(files.key.clone())),
        ]),
        Source::Pem { ca, pair } => Ok([
            (ca.clone().into_bytes(), Origin::Memory),
            (pair.cert.clone().into_bytes(), Origin::Memory),
            (pair.key.clone().into_bytes(), Origin::Memory),
        ]),
    }
}

const CA_WHAT: &str = "the CA bundle (--internal-tls-ca)";
const CERT_WHAT: &str = "the certificate (--internal-tls-cert)";
const KEY_WHAT: &str = "the private key (--internal-tls-key)";

/// Where a PEM text was read from, for errors.
enum Origin {
    File(PathBuf),
    Memory,
}

impl Origin {
    fn error(&self, what: &'static str, reason: String) -> TlsError {
        match self {
            Origin::File(path) => TlsError::File { what, path: path.clone(), reason },
            Origin::Memory => TlsError::Config(format!("{what} held in memory: {reason}")),
        }
    }
}

fn certs_in(what: &'static str, pem: &[u8], origin: &Origin) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| origin.error(what, e.to_string()))?;
    if certs.is_empty() {
        return Err(origin.error(what, "no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn load(source: &Source, provider: &Arc<CryptoProvider>) -> Result<Loaded, TlsError> {
    // Stamp before reading: a change during the read is seen next time.
    let stamp = stamp(source);
    let [(ca_pem, ca_origin), (cert_pem, cert_origin), (key_pem, key_origin)] = read_source(source)?;
    let mut roots = RootCertStore::empty();
    for ca in certs_in(CA_WHAT, &ca_pem, &ca_origin)? {
        roots.add(ca).map_err(|e| ca_origin.error(CA_WHAT, e.to_string()))?;
    }
    let roots = Arc::new(roots);
    let chain = certs_in(CERT_WHAT, &cert_pem, &cert_origin)?;
    let identity = identity_of(&chain[0]).map_err(|e| cert_origin.error(CERT_WHAT, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| key_origin.error(KEY_WHAT, e.to_string()))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded { stamp, roots, chain, key: Arc::new(key), server: Arc::new(server), identity })
}

impl InternalTls {
    /// Loads `files`; fails with the file and the reason when one is unusable.
    pub fn load(files: TlsFiles) -> Result<Arc<InternalTls>, TlsError> {
        InternalTls::from_source(Source::Files(files))
    }

    /// Material held in memory: the CA bundle `ca` and this process's
    /// certificate and key (never reloaded; build a new one to rotate).
    pub fn from_pem(ca: &str, pair: &certs::PemPair) -> Result<Arc<InternalTls>, TlsError> {
        InternalTls::from_source(Source::Pem { ca: ca.to_string(), pair: pair.clone() })
    }

    fn from_source(source: Source) -> Result<Arc<InternalTls>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(&source, &provider)?;
        Ok(Arc::new(InternalTls { source, provider, loaded: Mutex::new(Arc::new(loaded)) }))
    }

    /// The identity this process's own certificate names.
    pub fn identity(&self) -> Identity {
        self.current().identity
    }

    /// The current files, reloaded first if any changed on disk.
    fn current(&self) -> Arc<Loaded> {
        let mut loaded = self.loaded.lock();
        let now = stamp(&self.source);
        if now != loaded.stamp {
            match load(&self.source, &self.provider) {
                Ok(new) => {
                    tracing::info!(identity = %new.identity, "reloaded the internal TLS certificates");
                    *loaded = Arc::new(new);
                }
                Err(e) => {
                    // Keep serving with the previous files; try again on the
                    // next handshake once the files change again.
                    tracing::warn!(error = %e, "the changed internal TLS files do not load; keeping the previous ones");
                    let mut kept = Loaded::clone_with_stamp(&loaded, now);
                    std::mem::swap(&mut *loaded, &mut kept);
                }
            }
        }
        loaded.clone()
    }

    /// The server configuration for a new connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current().server.clone()
    }

    /// A client configuration for a new connection to a broker: `expected`
    /// is the broker id the server's certificate must name (`None`: any broker).
    pub fn client_config(&self, expected: Option<i32>) -> Result<Arc<ClientConfig>, TlsError> {
        let loaded = self.current();
        let verifier = PeerServerVerifier { roots: loaded.roots.clone(), provider: self.provider.clone(), expected };
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(loaded.chain.clone(), loaded.key.clone_key())
            .map_err(|e| TlsError::Config(format!("client certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

impl Loaded {
    /// The same material under a new stamp (files that failed to load are
    /// not retried until they change again).
    fn clone_with_stamp(this: &Arc<Loaded>, stamp: Stamp) -> Arc<Loaded> {
        Arc::new(Loaded {
            stamp,
            roots: this.roots.clone(),
            chain: this.chain.clone(),
            key: this.key.clone(),
            server: this.server.clone(),
            identity: this.identity,
        })
    }
}

/// Verifies a server's chain against the CA bundle and that its certificate
/// names the broker the client meant to call, instead of its host name.
#[derive(Debug)]
struct PeerServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    expected: Option<i32>,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let refused = |reason: String| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                TlsError::Identity(reason),
            ))))
        };
        match (identity_of(end_entity), self.expected) {
            (Ok(Identity::Broker(id)), Some(expected)) if id == expected => Ok(ServerCertVerified::assertion()),
            (Ok(Identity::Broker(_)), None) => Ok(ServerCertVerified::assertion()),
            (Ok(other), expected) => Err(refused(format!(
                "the server is {other}, not {}",
                expected.map_or("a broker".to_string(), |id| format!("{BROKER_URI_PREFIX}{id}"))
            ))),
            (Err(e), _) => Err(refused(e.to_string())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// What the internal services know of a caller (a request extension on
/// connections accepted through [`tls_incoming`]).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The caller's address.
    pub remote: Option<SocketAddr>,
    /// What its certificate names; `Err` with the reason when it names no identity.
    pub identity: Result<Identity, String>,
}

/// Who is calling an internal service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The listener runs without TLS (`--internal-insecure`, or loopback
    /// only): nobody is authenticated, and payload ids are taken as given.
    Insecure,
    /// Authenticated by a certificate of the cluster CA.
    Authenticated(Identity),
    /// A certificate of the cluster CA that names no Strom identity.
    Unidentified(String),
}

/// The caller of `request`: from the certificate of its connection when the
/// listener runs TLS, else [`Caller::Insecure`].
pub fn caller<T>(request: &tonic::Request<T>) -> Caller {
    match request.extensions().get::<PeerInfo>() {
        Some(PeerInfo { identity: Ok(identity), .. }) => Caller::Authenticated(*identity),
        Some(PeerInfo { identity: Err(reason), .. }) => Caller::Unidentified(reason.clone()),
        None => Caller::Insecure,
    }
}

/// A TLS connection accepted on the internal listener.
pub struct TlsIo {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts on `listener` and yields each connection once its TLS handshake
/// (client certificate required, see [`InternalTls`]) has completed.
/// Handshakes run concurrently, each within a deadline; a failed one is
/// logged and dropped, never yielded.
pub fn tls_incoming(
    listener: TcpListener,
    tls: Arc<InternalTls>,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsIo>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "internal listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // See internal::serve on TCP_NODELAY.
            let _ = stream.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
            let tx = tx.clone();
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::warn!(%remote, error = %e, "internal listener: TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%remote, "internal listener: TLS handshake timed out");
                        return;
                    }
                };
                let identity = match stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    Some(cert) => identity_of(cert).map_err(|e| e.to_string()),
                    None => Err("no client certificate".to_string()),
                };
                let info = PeerInfo { remote: Some(remote), identity };
                let _ = tx.send(Ok(TlsIo { inner: stream, info })).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A lazily connected channel to a peer's internal address (`HOST:PORT`):
/// over mutual TLS when `tls` is given — presenting this process's
/// certificate and requiring the server's to name broker `expected` (any
/// broker when `None`) — else plain HTTP/2. Each new connection reads the
/// current files, so a reconnect picks up rotated certificates.
pub fn channel(
    tls: Option<&Arc<InternalTls>>,
    address: &str,
    expected: Option<i32>,
    connect_timeout: Option<Duration>,
) -> Result<Channel, tonic::transport::Error> {
    let mut endpoint = Endpoint::from_shared(format!("http://{address}"))?.tcp_nodelay(true);
    if let Some(t) = connect_timeout {
        endpoint = endpoint.connect_timeout(t);
    }
    let Some(tls) = tls else {
        return Ok(endpoint.connect_lazy());
    };
    let tls = tls.clone();
    let connector = tower::service_fn(move |uri: tonic::codegen::http::Uri| {
        let tls = tls.clone();
        async move {
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(80);
            let config = tls.client_config(expected)?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            // The server's name is not checked (see PeerServerVerifier), but
            // rustls needs one for the handshake.
            let name = ServerName::try_from(host.clone())
                .unwrap_or_else(|_| ServerName::try_from("strom-broker").expect("a valid DNS name"));
            let stream = tokio_rustls::TlsConnector::from(config).connect(name.to_owned(), tcp).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_sans_parse_to_identities() {
        assert_eq!(parse_uri("strom://broker/0"), Some(Identity::Broker(0)));
        assert_eq!(parse_uri("strom://broker/2147483647"), Some(Identity::Broker(i32::MAX)));
        assert_eq!(parse_uri("strom://operator"), Some(Identity::Operator));
        for other in [
            "strom://broker/",
            "strom://broker/-1",
            "strom://broker/+1",
            "strom://broker/1 ",
            "strom://broker/9999999999",
            "strom://operator/x",
            "spiffe://x",
            "strom://Broker/1",
        ] {
            assert_eq!(parse_uri(other), None, "{other}");
        }
    }

    #[test]
    fn identity_comes_from_the_certificates_uri_san() {
        let dir = tempfile::tempdir().unwrap();
        let written = certs::write(
            dir.path(),
            &certs::CertsRequest {
                brokers: vec![3],
                operator: true,
                ips: vec!["127.0.0.1".parse().unwrap()],
                dns: vec!["localhost".into()],
            },
        )
        .unwrap();
        let der = |path: &Path| certs_in("test", &std::fs::read(path).unwrap(), &Origin::Memory).unwrap().remove(0);
        assert_eq!(identity_of(&der(&written.broker(3).cert)).unwrap(), Identity::Broker(3));
        assert_eq!(identity_of(&der(&written.operator().unwrap().cert)).unwrap(), Identity::Operator);
        // The CA names nobody.
        assert!(identity_of(&der(&written.ca)).is_err());
        let tls = InternalTls::load(written.broker(3).files(&written.ca)).unwrap();
        assert_eq!(tls.identity(), Identity::Broker(3));
    }

    /// A follower opening a channel to leader 1 accepts only a server
    /// certificate naming broker 1: another broker of the same CA cannot
    /// answer in its place.
    #[tokio::test]
    async fn a_client_expecting_one_broker_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let request = certs::CertsRequest {
            brokers: vec![1, 2],
            operator: false,
            ips: vec!["127.0.0.1".parse().unwrap()],
            dns: vec![],
        };
        let written = certs::write(dir.path(), &request).unwrap();
        let follower = InternalTls::load(written.broker(1).files(&written.ca)).unwrap();
        let impostor = InternalTls::load(written.broker(2).files(&written.ca)).unwrap();
        let handshake = |expected: Option<i32>| {
            let (follower, impostor) = (follower.clone(), impostor.clone());
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let address = listener.local_addr().unwrap();
                let server = tokio::spawn(async move {
                    let (tcp, _) = listener.accept().await.unwrap();
                    tokio_rustls::TlsAcceptor::from(impostor.server_config()).accept(tcp).await.map(|_| ())
                });
                let tcp = TcpStream::connect(address).await.unwrap();
                let name = ServerName::try_from("strom-broker").unwrap();
                let client = tokio_rustls::TlsConnector::from(follower.client_config(expected).unwrap());
                let outcome = client.connect(name, tcp).await.map(|_| ());
                let _ = server.await;
                outcome
            }
        };
        let refused = handshake(Some(1)).await.expect_err("broker 2 posing as broker 1");
        assert!(refused.to_string().contains("strom://broker/1"), "{refused}");
        handshake(Some(2)).await.expect("broker 2 where broker 2 is expected");
        handshake(None).await.expect("any broker when none is named");
    }

    #[test]
    fn a_certificate_naming_two_identities_is_refused() {
        let der = certs::self_signed_with_uris(&["strom://broker/1", "strom://operator"]).unwrap();
        let e = identity_of(&der).unwrap_err();
        assert!(e.to_string().contains("both"), "{e}");
        let der = certs::self_signed_with_uris(&["strom://broker/1", "https://example.invalid"]).unwrap();
        assert_eq!(identity_of(&der).unwrap(), Identity::Broker(1));
        let der = certs::self_signed_with_uris(&[]).unwrap();
        assert!(identity_of(&der).is_err());
    }
}
