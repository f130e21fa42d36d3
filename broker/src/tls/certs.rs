//! Certificates for the internal plane, for tests, local clusters and
//! `strom-broker certs`: a fresh CA and, signed by it, one certificate and
//! key per identity (see [`super::Identity`] for the URI SANs).
//!
//! Files written to the output directory (PEM):
//! `ca.pem`, `ca-key.pem`, `broker-<id>.pem`, `broker-<id>-key.pem`,
//! `operator.pem`, `operator-key.pem`. Keys are ECDSA P-256. Leaf
//! certificates are usable as both TLS server and client.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;

use super::{Identity, TlsError, TlsFiles};

/// What to generate.
#[derive(Debug, Clone, Default)]
pub struct CertsRequest {
    /// Broker ids to write a certificate for.
    pub brokers: Vec<i32>,
    /// Whether to write the operator's certificate.
    pub operator: bool,
    /// IP SANs on every broker certificate (the addresses peers dial).
    pub ips: Vec<IpAddr>,
    /// DNS SANs on every broker certificate.
    pub dns: Vec<String>,
}

/// One identity's certificate and key files.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Its identity.
    pub identity: Identity,
    /// Certificate PEM.
    pub cert: PathBuf,
    /// Private key PEM.
    pub key: PathBuf,
}

impl Pair {
    /// The TLS files of this identity with `ca` as the CA bundle.
    pub fn files(&self, ca: &Path) -> TlsFiles {
        TlsFiles { ca: ca.to_path_buf(), cert: self.cert.clone(), key: self.key.clone() }
    }
}

/// What [`write`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The CA's private key.
    pub ca_key: PathBuf,
    /// One pair per identity.
    pub pairs: Vec<Pair>,
}

impl Written {
    /// Broker `id`'s pair.
    ///
    /// # Panics
    /// When no certificate was written for broker `id` (a caller's bug).
    pub fn broker(&self, id: i32) -> &Pair {
        self.pairs
            .iter()
            .find(|p| p.identity == Identity::Broker(id))
            .unwrap_or_else(|| panic!("no certificate was written for broker {id}"))
    }

    /// The operator's pair, if one was written.
    pub fn operator(&self) -> Option<&Pair> {
        self.pairs.iter().find(|p| p.identity == Identity::Operator)
    }
}

fn rcgen_error(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |e| TlsError::Config(format!("cannot generate {what}: {e}"))
}

fn write_file(path: &Path, text: &str) -> Result<(), TlsError> {
    std::fs::write(path, text).map_err(|e| TlsError::File {
        what: "a generated certificate or key",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn uri(identity: Identity) -> Result<SanType, TlsError> {
    let text = identity.to_string();
    Ia5String::try_from(text.as_str()).map(SanType::URI).map_err(rcgen_error("a URI SAN"))
}

/// Writes a new CA and a certificate per requested identity into `dir`
/// (created if missing), replacing files of the same names.
pub fn write(dir: &Path, request: &CertsRequest) -> Result<Written, TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::File {
        what: "the output directory",
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params.distinguished_name.push(DnType::CommonName, "Strom internal CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().map_err(rcgen_error("the CA key"))?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rcgen_error("the CA certificate"))?;
    let ca_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca-key.pem");
    write_file(&ca_path, &ca_cert.pem())?;
    write_file(&ca_key_path, &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut identities: Vec<Identity> = request.brokers.iter().map(|id| Identity::Broker(*id)).collect();
    if request.operator {
        identities.push(Identity::Operator);
    }
    let mut pairs = Vec::new();
    for identity in identities {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, identity.to_string());
        params.subject_alt_names.push(uri(identity)?);
        if let Identity::Broker(_) = identity {
            for ip in &request.ips {
                params.subject_alt_names.push(SanType::IpAddress(*ip));
            }
            for name in &request.dns {
                let dns = Ia5String::try_from(name.as_str()).map_err(rcgen_error("a DNS SAN"))?;
                params.subject_alt_names.push(SanType::DnsName(dns));
            }
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(rcgen_error("a key"))?;
        let cert = params.signed_by(&key, &issuer).map_err(rcgen_error("a certificate"))?;
        let stem = match identity {
            Identity::Broker(id) => format!("broker-{id}"),
            Identity::Operator => "operator".to_string(),
        };
        let (cert_path, key_path) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}-key.pem")));
        write_file(&cert_path, &cert.pem())?;
        write_file(&key_path, &key.serialize_pem())?;
        pairs.push(Pair { identity, cert: cert_path, key: key_path });
    }
    Ok(Written { ca: ca_path, ca_key: ca_key_path, pairs })
}

/// A self-signed certificate with these URI SANs (for identity parsing tests).
pub fn self_signed_with_uris(uris: &[&str]) -> Result<CertificateDer<'static>, TlsError> {
    let mut params = CertificateParams::default();
    for u in uris {
        params.subject_alt_names.push(SanType::URI(Ia5String::try_from(*u).map_err(rcgen_error("a URI SAN"))?));
    }
    let key = KeyPair::generate().map_err(rcgen_error("a key"))?;
    Ok(params.self_signed(&key).map_err(rcgen_error("a certificate"))?.der().clone())
}
