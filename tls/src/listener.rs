//! TLS on the Kafka client listeners (SSL and SASL_SSL), apart from the
//! internal plane's identities: a PEM keystore (private key and certificate
//! chain in one file, Kafka's `ssl.keystore.type=PEM`), an optional PEM
//! trust store of the CAs that sign client certificates, the client
//! authentication mode and the TLS versions.
//!
//! Reload: [`ListenerTls`] stats its files before each handshake (two
//! `stat`s per new connection) and rebuilds its configuration when one
//! changed, so new connections use the new files without a restart; files
//! that do not load are logged and the previous ones kept.
//!
//! [`subject_dn`] prints a certificate's subject as Java's
//! `X500Principal.getName()` does (RFC 2253: most specific first,
//! `CN=alice,OU=eng,O=Acme,C=US`), the text Kafka's principal mapping rules
//! match.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::TlsError;

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Asked for; a client may go without one.
    Requested,
    /// A trusted client certificate is required.
    Required,
}

/// What a client listener's TLS is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTlsFiles {
    /// PEM: the private key and the certificate chain, leaf first.
    pub keystore: PathBuf,
    /// PEM: CA certificates that sign client certificates.
    pub truststore: Option<PathBuf>,
    /// Client authentication.
    pub client_auth: ClientAuth,
    /// TLSv1.2 enabled.
    pub tls12: bool,
    /// TLSv1.3 enabled.
    pub tls13: bool,
}

type Stamp = [Option<(SystemTime, u64, u64)>; 2];

fn stamp(files: &ListenerTlsFiles) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| {
        std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), m.ino()))
    };
    [one(&files.keystore), files.truststore.as_deref().and_then(one)]
}

struct Loaded {
    stamp: Stamp,
    config: Arc<ServerConfig>,
}

/// A client listener's TLS, reloaded when its files change.
pub struct ListenerTls {
    files: ListenerTlsFiles,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls").field("files", &self.files).finish_non_exhaustive()
    }
}

const KEYSTORE: &str = "the keystore (ssl.keystore.location)";
const TRUSTSTORE: &str = "the trust store (ssl.truststore.location)";

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File { what, path: path.to_path_buf(), reason: e.to_string() })
}

fn load(files: &ListenerTlsFiles, provider: &Arc<CryptoProvider>) -> Result<Loaded, TlsError> {
    let stamp = stamp(files);
    let file_err = |what, path: &Path, reason: String| TlsError::File { what, path: path.to_path_buf(), reason };
    let pem = read(KEYSTORE, &files.keystore)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(KEYSTORE, &files.keystore, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(KEYSTORE, &files.keystore, "no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| file_err(KEYSTORE, &files.keystore, format!("no unencrypted private key: {e}")))?;
    let mut versions = Vec::new();
    if files.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if files.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (files.client_auth, &files.truststore) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::Config("client authentication needs a trust store (ssl.truststore.location)".into()));
        }
        (auth, Some(path)) => {
            let pem = read(TRUSTSTORE, path)?;
            let mut roots = RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(&pem) {
                let ca = ca.map_err(|e| file_err(TRUSTSTORE, path, e.to_string()))?;
                roots.add(ca).map_err(|e| file_err(TRUSTSTORE, path, e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(file_err(TRUSTSTORE, path, "no CERTIFICATE block".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = match auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier.build().map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| file_err(KEYSTORE, &files.keystore, format!("certificate and key: {e}")))?;
    Ok(Loaded { stamp, config: Arc::new(config) })
}

impl ListenerTls {
    /// Loads `files`; fails naming the file and the reason when one is unusable.
    pub fn load(files: ListenerTlsFiles) -> Result<Arc<ListenerTls>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(&files, &provider)?;
        Ok(Arc::new(ListenerTls { files, provider, loaded: Mutex::new(loaded) }))
    }

    /// The server configuration for a new connection, reloaded first if a
    /// file changed on disk.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let mut loaded = self.loaded.lock();
        let now = stamp(&self.files);
        if now != loaded.stamp {
            match load(&self.files, &self.provider) {
                Ok(new) => {
                    tracing::info!(keystore = %self.files.keystore.display(), "reloaded a client listener's TLS files");
                    *loaded = new;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the changed client listener TLS files do not load; keeping the previous ones");
                    loaded.stamp = now;
                }
            }
        }
        loaded.config.clone()
    }
}

/// RFC 2253 short names Java prints; other attributes print as their OID.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// Escapes an attribute value as RFC 2253 asks.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A certificate's subject as Java's `X500Principal.getName()` prints it.
pub fn subject_dn(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::Identity(format!("not an X.509 certificate: {e}")))?;
    let rdns: Vec<String> = parsed
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let value = match attr.as_str() {
                        Ok(s) => escape(s),
                        Err(_) => format!(
                            "#{}",
                            attr.attr_value().data.iter().map(|b| format!("{b:02x}")).collect::<String>()
                        ),
                    };
                    match short_name(&oid) {
                        Some(name) => format!("{name}={value}"),
                        None => format!("{oid}={value}"),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Ok(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert_with(subject: &[(DnType, &str)]) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn subjects_print_most_specific_first_with_escapes() {
        let (pem, _) = cert_with(&[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Acme, Inc"),
            (DnType::CommonName, "alice"),
        ]);
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(subject_dn(&der).unwrap(), r"CN=alice,O=Acme\, Inc,C=US");
    }

    #[test]
    fn loads_a_keystore_and_reloads_it_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = dir.path().join("keystore.pem");
        let (cert, key) = cert_with(&[(DnType::CommonName, "one")]);
        std::fs::write(&keystore, format!("{key}{cert}")).unwrap();
        let files = ListenerTlsFiles {
            keystore: keystore.clone(),
            truststore: None,
            client_auth: ClientAuth::None,
            tls12: true,
            tls13: true,
        };
        let tls = ListenerTls::load(files.clone()).unwrap();
        let first = tls.server_config();
        assert!(Arc::ptr_eq(&first, &tls.server_config()), "unchanged files: the same configuration");
        let (cert, key) = cert_with(&[(DnType::CommonName, "two, longer")]);
        std::fs::write(&keystore, format!("{cert}{key}")).unwrap();
        assert!(!Arc::ptr_eq(&first, &tls.server_config()), "changed files: a new configuration");
        std::fs::write(&keystore, "garbage").unwrap();
        let kept = tls.server_config();
        assert!(ListenerTls::load(files.clone()).is_err());
        assert!(Arc::ptr_eq(&kept, &tls.server_config()), "broken files keep the previous configuration");
        std::fs::write(&keystore, format!("{cert}{key}")).unwrap();
        let e = ListenerTls::load(ListenerTlsFiles { client_auth: ClientAuth::Required, ..files }).unwrap_err();
        assert!(e.to_string().contains("trust store"), "{e}");
    }
}
