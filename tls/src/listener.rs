//! TLS on the Kafka client listeners (SSL and SASL_SSL), apart from the
//! internal plane's identities: a keystore (private key and certificate
//! chain), an optional trust store of the CAs that sign client
//! certificates, the client authentication mode and the TLS versions.
//!
//! Stores are PEM (Kafka's `ssl.keystore.type=PEM`: key and chain in one
//! file, leaf first) or PKCS#12 (`PKCS12`, with its password, as `keytool`
//! and `openssl pkcs12 -export` write them; read with the `p12-keystore`
//! crate, PBES2 only — the legacy RC2/3DES encryptions are refused). A
//! PKCS#12 keystore holds exactly one private key entry; a PKCS#12 trust
//! store holds no private key (a keystore given as one is refused), and
//! every certificate in it is trusted, with or without Java's trust
//! attribute.
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

/// The format of a keystore or trust store file (`ssl.keystore.type`,
/// `ssl.truststore.type`).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreFormat {
    /// PEM blocks.
    Pem,
    /// PKCS#12, opened with this password.
    Pkcs12 {
        /// The store's password (never printed).
        password: String,
    },
}

impl std::fmt::Debug for StoreFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreFormat::Pem => f.write_str("Pem"),
            StoreFormat::Pkcs12 { .. } => f.write_str("Pkcs12 { password: <hidden> }"),
        }
    }
}

/// What a client listener's TLS is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTlsFiles {
    /// The private key and the certificate chain (leaf first in PEM).
    pub keystore: PathBuf,
    /// The keystore's format.
    pub keystore_format: StoreFormat,
    /// CA certificates that sign client certificates.
    pub truststore: Option<PathBuf>,
    /// The trust store's format.
    pub truststore_format: StoreFormat,
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

/// The certificate chain and private key of a keystore.
type KeyChain = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn pem_keystore(bytes: &[u8]) -> Result<KeyChain, String> {
    let chain = CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    let key = PrivateKeyDer::from_pem_slice(bytes).map_err(|e| format!("no unencrypted private key: {e}"))?;
    Ok((chain, key))
}

fn pkcs12_error(setting: &str, e: p12_keystore::error::Error) -> String {
    format!("not a PKCS#12 store this password opens ({setting}): {e}")
}

fn pkcs12_keystore(bytes: &[u8], password: &str) -> Result<KeyChain, String> {
    use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
    let store = KeyStore::from_pkcs12(bytes, password, Pkcs12ImportPolicy::Strict)
        .map_err(|e| pkcs12_error("ssl.keystore.password", e))?;
    let mut chains = store.entries().filter_map(|(alias, entry)| match entry {
        KeyStoreEntry::PrivateKeyChain(chain) => Some((alias, chain)),
        _ => None,
    });
    let (alias, chain) = chains.next().ok_or("no private key entry with its certificate")?;
    if let Some((other, _)) = chains.next() {
        return Err(format!("more than one private key entry ({alias}, {other}); a listener's keystore holds one"));
    }
    if chain.certs().is_empty() {
        return Err(format!("private key entry {alias} has no certificate"));
    }
    let certs = chain.certs().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
    let key = PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into());
    Ok((certs, key))
}

fn trust_anchors(bytes: &[u8], format: &StoreFormat) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = match format {
        StoreFormat::Pem => {
            CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?
        }
        StoreFormat::Pkcs12 { password } => {
            let archive = p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password)
                .map_err(|e| pkcs12_error("ssl.truststore.password", e))?;
            // A keystore given as a trust store would make its own chain's
            // issuers trusted for client certificates: refused.
            if !archive.keys.is_empty() {
                return Err("holds a private key: a trust store holds CA certificates only (is it a keystore?)".into());
            }
            archive.certs.into_iter().map(|bag| CertificateDer::from(bag.cert.as_der().to_vec())).collect()
        }
    };
    if certs.is_empty() {
        return Err("no certificate".into());
    }
    Ok(certs)
}

fn load(files: &ListenerTlsFiles, provider: &Arc<CryptoProvider>) -> Result<Loaded, TlsError> {
    let stamp = stamp(files);
    let file_err = |what, path: &Path, reason: String| TlsError::File { what, path: path.to_path_buf(), reason };
    let bytes = read(KEYSTORE, &files.keystore)?;
    let (chain, key) = match &files.keystore_format {
        StoreFormat::Pem => pem_keystore(&bytes),
        StoreFormat::Pkcs12 { password } => pkcs12_keystore(&bytes, password),
    }
    .map_err(|reason| file_err(KEYSTORE, &files.keystore, reason))?;
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
            let bytes = read(TRUSTSTORE, path)?;
            let mut roots = RootCertStore::empty();
            for ca in trust_anchors(&bytes, &files.truststore_format).map_err(|e| file_err(TRUSTSTORE, path, e))? {
                roots.add(ca).map_err(|e| file_err(TRUSTSTORE, path, e.to_string()))?;
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
            keystore_format: StoreFormat::Pem,
            truststore: None,
            truststore_format: StoreFormat::Pem,
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

    fn pkcs12(entries: Vec<(&str, p12_keystore::KeyStoreEntry)>, password: &str) -> Vec<u8> {
        let mut store = p12_keystore::KeyStore::new();
        for (alias, entry) in entries {
            store.add_entry(alias, entry);
        }
        store.writer(password).write().unwrap()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }

    #[test]
    fn loads_pkcs12_stores_and_names_the_password_setting_when_one_does_not_open() {
        use p12_keystore::{Certificate, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_with(&[(DnType::CommonName, "broker")]);
        let key_der = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap().secret_der().to_vec();
        let chain = PrivateKeyChain::new(
            b"k".to_vec(),
            PrivateKey::from_der(&key_der).unwrap(),
            [Certificate::from_der(&der(&cert)).unwrap()],
        );
        let keystore = dir.path().join("keystore.p12");
        std::fs::write(&keystore, pkcs12(vec![("broker", KeyStoreEntry::PrivateKeyChain(chain.clone()))], "ks-pw"))
            .unwrap();
        let (ca, _) = cert_with(&[(DnType::CommonName, "clients ca")]);
        let truststore = dir.path().join("truststore.p12");
        let ca_entry = KeyStoreEntry::Certificate(Certificate::from_der(&der(&ca)).unwrap());
        std::fs::write(&truststore, pkcs12(vec![("ca", ca_entry)], "ts-pw")).unwrap();
        let files = ListenerTlsFiles {
            keystore: keystore.clone(),
            keystore_format: StoreFormat::Pkcs12 { password: "ks-pw".into() },
            truststore: Some(truststore),
            truststore_format: StoreFormat::Pkcs12 { password: "ts-pw".into() },
            client_auth: ClientAuth::Required,
            tls12: true,
            tls13: true,
        };
        ListenerTls::load(files.clone()).unwrap();
        assert!(!format!("{files:?}").contains("ks-pw"), "passwords are never printed");

        let wrong =
            ListenerTlsFiles { keystore_format: StoreFormat::Pkcs12 { password: "nope".into() }, ..files.clone() };
        let e = ListenerTls::load(wrong).unwrap_err().to_string();
        assert!(e.contains("ssl.keystore.password") && e.contains("keystore.p12"), "{e}");
        let wrong =
            ListenerTlsFiles { truststore_format: StoreFormat::Pkcs12 { password: "nope".into() }, ..files.clone() };
        let e = ListenerTls::load(wrong).unwrap_err().to_string();
        assert!(e.contains("ssl.truststore.password"), "{e}");
        let keystore_as_truststore = ListenerTlsFiles {
            truststore: Some(keystore.clone()),
            truststore_format: StoreFormat::Pkcs12 { password: "ks-pw".into() },
            ..files.clone()
        };
        let e = ListenerTls::load(keystore_as_truststore).unwrap_err().to_string();
        assert!(e.contains("holds a private key"), "{e}");

        let two = pkcs12(
            vec![
                ("a", KeyStoreEntry::PrivateKeyChain(chain.clone())),
                (
                    "b",
                    KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
                        b"l".to_vec(),
                        chain.key().clone(),
                        chain.certs().to_vec(),
                    )),
                ),
            ],
            "ks-pw",
        );
        std::fs::write(&keystore, two).unwrap();
        let e = ListenerTls::load(files).unwrap_err().to_string();
        assert!(e.contains("more than one private key entry"), "{e}");
    }
}
