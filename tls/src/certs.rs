//! Certificates for the internal plane: a certificate authority and, signed
//! by it, one certificate and key per identity (see [`super::Identity`] for
//! the URI SANs). The operator keeps its clusters' CAs in Secrets with
//! [`Ca`]; tests, local clusters and `strom-broker certs` write files with
//! [`write`].
//!
//! Files written by [`write`] to the output directory (PEM):
//! `ca.pem`, `ca-key.pem`, `broker-<id>.pem`, `broker-<id>-key.pem`,
//! `operator.pem`, `operator-key.pem`. Keys are ECDSA P-256. Leaf
//! certificates are usable as both TLS server and client.
//!
//! Validity is rcgen's default (no practical expiry) unless a [`Validity`]
//! is given: the operator issues its clusters' CAs and the Kafka listeners'
//! and users' certificates with one and renews them before [`not_after`].

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

/// A certificate and its private key, PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair").field("cert", &self.cert).field("key", &"<redacted>").finish()
    }
}

/// When a certificate is valid, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First second of validity.
    pub not_before: i64,
    /// Last second of validity.
    pub not_after: i64,
}

impl Validity {
    /// Valid from `now` (less an hour, for clocks behind ours) for `days` days.
    pub fn days_from(now: i64, days: u32) -> Validity {
        Validity { not_before: now.saturating_sub(3600), not_after: now.saturating_add(i64::from(days) * 86_400) }
    }

    fn apply(self, params: &mut CertificateParams) -> Result<(), TlsError> {
        let at = |s: i64| {
            time::OffsetDateTime::from_unix_timestamp(s)
                .map_err(|e| TlsError::Config(format!("validity bound {s} (Unix seconds) is out of range: {e}")))
        };
        params.not_before = at(self.not_before)?;
        params.not_after = at(self.not_after)?;
        Ok(())
    }
}

/// A certificate authority that signs the internal plane's certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: PemPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert", &self.pem.cert).finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA named `common_name`, with a new ECDSA P-256 key.
    pub fn generate(common_name: &str) -> Result<Ca, TlsError> {
        Ca::generate_valid(common_name, None)
    }

    /// [`Ca::generate`] valid for `validity` (rcgen's default when `None`).
    pub fn generate_valid(common_name: &str, validity: Option<Validity>) -> Result<Ca, TlsError> {
        let mut params = ca_params(common_name);
        if let Some(validity) = validity {
            validity.apply(&mut params)?;
        }
        let key = KeyPair::generate().map_err(rcgen_error("the CA key"))?;
        let cert = params.self_signed(&key).map_err(rcgen_error("the CA certificate"))?;
        let pem = PemPair { cert: cert.pem(), key: key.serialize_pem() };
        Ok(Ca { issuer: Issuer::new(params, key), pem })
    }

    /// A CA from its certificate and key (as [`Ca::pem`] gave them).
    pub fn from_pem(pem: &PemPair) -> Result<Ca, TlsError> {
        let key = KeyPair::from_pem(&pem.key).map_err(rcgen_error("the CA key from PEM"))?;
        let issuer = Issuer::from_ca_cert_pem(&pem.cert, key).map_err(rcgen_error("the CA from PEM"))?;
        Ok(Ca { issuer, pem: pem.clone() })
    }

    /// The CA's certificate and key.
    pub fn pem(&self) -> &PemPair {
        &self.pem
    }

    /// `other`'s CA certificate signed by this CA (a cross-signed
    /// intermediate): served after a leaf of `other`, it lets peers that
    /// trust only this CA verify that leaf while they learn to trust `other`.
    pub fn cross_sign(&self, other: &Ca) -> Result<String, TlsError> {
        let der = first_der(&other.pem.cert)
            .ok_or_else(|| TlsError::Config("the CA to cross-sign: no PEM certificate".into()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| TlsError::Config(format!("the CA to cross-sign does not parse: {e}")))?;
        let common_name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .ok_or_else(|| TlsError::Config("the CA to cross-sign has no common name".into()))?;
        // The same subject and key as `other` (Strom's CAs carry only a CN),
        // so a chain can go through either certificate.
        let mut params = ca_params(common_name);
        Validity {
            not_before: parsed.validity().not_before.timestamp(),
            not_after: parsed.validity().not_after.timestamp(),
        }
        .apply(&mut params)?;
        let key = KeyPair::from_pem(&other.pem.key).map_err(rcgen_error("the key of the CA to cross-sign"))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_error("a cross-signed CA certificate"))?;
        Ok(cert.pem())
    }

    /// A new certificate and key for `identity`, signed by this CA. Broker
    /// certificates also carry `dns` and `ips` as SANs (for other tools;
    /// Strom's peers check the URI SAN).
    pub fn issue(&self, identity: Identity, dns: &[String], ips: &[IpAddr]) -> Result<PemPair, TlsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, identity.to_string());
        params.subject_alt_names.push(uri(identity)?);
        if let Identity::Broker(_) = identity {
            for ip in ips {
                params.subject_alt_names.push(SanType::IpAddress(*ip));
            }
            for name in dns {
                let dns = Ia5String::try_from(name.as_str()).map_err(rcgen_error("a DNS SAN"))?;
                params.subject_alt_names.push(SanType::DnsName(dns));
            }
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(rcgen_error("a key"))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_error("a certificate"))?;
        Ok(PemPair { cert: cert.pem(), key: key.serialize_pem() })
    }
}

impl Ca {
    /// A new certificate and key for a Kafka client listener or client:
    /// subject `CN=<common_name>` (and `O=<organization>` if given), the
    /// DNS and IP SANs given, usable for server and client authentication.
    pub fn issue_named(
        &self,
        common_name: &str,
        organization: Option<&str>,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<PemPair, TlsError> {
        self.issue_named_valid(common_name, organization, dns, ips, None)
    }

    /// [`Ca::issue_named`] valid for `validity` (rcgen's default when `None`).
    pub fn issue_named_valid(
        &self,
        common_name: &str,
        organization: Option<&str>,
        dns: &[String],
        ips: &[IpAddr],
        validity: Option<Validity>,
    ) -> Result<PemPair, TlsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(o) = organization {
            params.distinguished_name.push(DnType::OrganizationName, o);
        }
        params.distinguished_name.push(DnType::CommonName, common_name);
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for name in dns {
            let dns = Ia5String::try_from(name.as_str()).map_err(rcgen_error("a DNS SAN"))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        if let Some(validity) = validity {
            validity.apply(&mut params)?;
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(rcgen_error("a key"))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_error("a certificate"))?;
        Ok(PemPair { cert: cert.pem(), key: key.serialize_pem() })
    }
}

/// The last second (Unix time) the first certificate of `pem` is valid;
/// `None` when it does not parse.
pub fn not_after(pem: &str) -> Option<i64> {
    let der = first_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The subject of the first certificate of `pem` as RFC 4514 text
/// (`CN=alice`); `None` when it does not parse.
pub fn subject(pem: &str) -> Option<String> {
    let der = first_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.subject().to_string())
}

/// Whether `cert` (PEM, leaf first) was signed by the CA `ca` (PEM): its
/// chain verifies against `ca` alone. False when either does not parse.
pub fn signed_by(cert: &str, ca: &str) -> bool {
    let Some(leaf) = first_der(cert) else { return false };
    let Some(root) = first_der(ca) else { return false };
    let (Ok((_, leaf)), Ok((_, root))) =
        (x509_parser::parse_x509_certificate(leaf.as_ref()), x509_parser::parse_x509_certificate(root.as_ref()))
    else {
        return false;
    };
    leaf.issuer() == root.subject() && leaf.verify_signature(Some(root.public_key())).is_ok()
}

/// The identity the first certificate of `pem` names.
pub fn identity_of_pem(pem: &str) -> Result<Identity, TlsError> {
    let der = first_der(pem).ok_or_else(|| TlsError::Identity("no PEM certificate".into()))?;
    crate::identity_of(&der)
}

fn first_der(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()
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

/// A CA certificate's parameters: subject `CN=<common_name>`, any path length.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
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
    let ca = Ca::generate("Strom internal CA")?;
    let ca_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca-key.pem");
    write_file(&ca_path, &ca.pem().cert)?;
    write_file(&ca_key_path, &ca.pem().key)?;

    let mut identities: Vec<Identity> = request.brokers.iter().map(|id| Identity::Broker(*id)).collect();
    if request.operator {
        identities.push(Identity::Operator);
    }
    let mut pairs = Vec::new();
    for identity in identities {
        let issued = ca.issue(identity, &request.dns, &request.ips)?;
        let stem = match identity {
            Identity::Broker(id) => format!("broker-{id}"),
            Identity::Operator => "operator".to_string(),
        };
        let (cert_path, key_path) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}-key.pem")));
        write_file(&cert_path, &issued.cert)?;
        write_file(&key_path, &issued.key)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_read_back_from_pem_signs_certificates_its_bundle_verifies() {
        let ca = Ca::generate("test CA").unwrap();
        let again = Ca::from_pem(ca.pem()).unwrap();
        let issued = again.issue(Identity::Broker(7), &["b7.example".into()], &[]).unwrap();
        assert!(signed_by(&issued.cert, &ca.pem().cert));
        let other = Ca::generate("test CA").unwrap();
        assert!(!signed_by(&issued.cert, &other.pem().cert), "same name, other key");
        assert!(!signed_by("not pem", &ca.pem().cert));
        assert_eq!(identity_of_pem(&issued.cert).unwrap(), Identity::Broker(7));
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"), "keys stay out of Debug");
    }

    #[test]
    fn a_cross_signed_ca_links_the_new_ca_to_the_old_one() {
        let old = Ca::generate("old CA").unwrap();
        let new = Ca::generate("new CA").unwrap();
        let cross = old.cross_sign(&new).unwrap();
        assert!(signed_by(&cross, &old.pem().cert), "the cross certificate is the old CA's");
        assert_eq!(subject(&cross), subject(&new.pem().cert), "and names the new CA");
        let leaf = new.issue_named("broker", None, &[], &[]).unwrap();
        assert!(signed_by(&leaf.cert, &cross), "so it verifies the new CA's leaves");
    }

    #[test]
    fn validity_is_written_into_ca_and_leaf_certificates() {
        let now = 1_800_000_000;
        let ca = Ca::generate_valid("dated CA", Some(Validity::days_from(now, 365))).unwrap();
        assert_eq!(not_after(&ca.pem().cert), Some(now + 365 * 86_400));
        let leaf = ca.issue_named_valid("alice", None, &[], &[], Some(Validity::days_from(now, 30))).unwrap();
        assert_eq!(not_after(&leaf.cert), Some(now + 30 * 86_400));
        assert!(signed_by(&leaf.cert, &ca.pem().cert));
        assert_eq!(not_after("no certificate"), None);
    }
}
