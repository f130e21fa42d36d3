//! A `tls` KafkaUser's client certificate, pure: whether the one in its
//! Secret still serves, and the Secret's data.
//!
//! The certificate is issued by the cluster's clients CA with subject
//! `CN=<user name>` only, so the brokers' principal mapping
//! (`RULE:^CN=(.*)$/$1/`) makes it `User:<name>`, the principal the user's
//! ACLs name. It is issued again when missing, not of the current clients
//! CA, or inside its renewal window ([`crate::ca_plan::leaf_needs_issue`]).
//! The Secret also holds `ca.crt`: the cluster CA's trust bundle, for the
//! client to check the brokers.
//!
//!
//! For Java clients that want a keystore file, as Strimzi's user Secrets do,
//! it also holds `user.p12`: a PKCS#12 keystore (crate `p12-keystore`;
//! PBES2 with AES-256-CBC and an HMAC-SHA256 MAC, which Java reads since
//! 8u301 / 11.0.12) of the key, the certificate and the clients CA's
//! certificate, under the password in `user.password`. The keystore is made
//! again with the certificate; the password stays.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use strom_tls::TlsError;
use strom_tls::certs::{Ca, PemPair, Validity, not_after, signed_by};

use crate::ca_plan::{CaPolicy, Leaf, leaf_needs_issue, leaf_not_after};
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, Pkcs12ImportPolicy, PrivateKey, PrivateKeyChain};

/// The Secret key of the user's certificate (PEM).
pub const USER_CERT: &str = "user.crt";
/// The Secret key of the user's private key (PEM, PKCS#8).
pub const USER_KEY: &str = "user.key";
/// The Secret key of the cluster CA's trust bundle (PEM).
pub const CA_CERT: &str = "ca.crt";
/// The Secret key of the PKCS#12 keystore (key, certificate, clients CA).
pub const USER_P12: &str = "user.p12";
/// The Secret key of the keystore's password.
pub const USER_PASSWORD: &str = "user.password";
/// The keystore entry's alias (Java's `ssl.key.alias` needs none: one entry).
const ALIAS: &str = "user";

/// The user's PKCS#12 keystore and its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Keystore {
    /// The PKCS#12 file.
    pub p12: Vec<u8>,
    /// Its password (letters and digits).
    pub password: String,
}

/// Never prints the password (nor the key inside the file).
impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystore").field("p12_bytes", &self.p12.len()).finish_non_exhaustive()
    }
}

/// Why the keystore could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// A PEM input without the expected block.
    #[error("{what} is not PEM with a {label} block")]
    Pem { what: &'static str, label: &'static str },
    /// The PKCS#12 writer refused the key or a certificate.
    #[error("PKCS#12 keystore: {0}")]
    Pkcs12(#[from] p12_keystore::error::Error),
    /// The OS's random generator failed (the password).
    #[error("keystore password: {0}")]
    Password(String),
}

/// The DER contents of the PEM blocks labelled `label` in `pem`, in order.
fn pem_blocks(pem: &str, label: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|block| block.label == label)
        .map(|block| block.contents)
        .collect()
}

/// A PKCS#12 keystore of `pair` with the chain `chain_pem` (the issuing
/// CA's certificates, PEM), under `password`.
pub fn keystore_file(pair: &PemPair, chain_pem: &str, password: &str) -> Result<Vec<u8>, KeystoreError> {
    let key = pem_blocks(&pair.key, "PRIVATE KEY");
    let key = key.first().ok_or(KeystoreError::Pem { what: "the user's key", label: "PRIVATE KEY" })?;
    let leaf = pem_blocks(&pair.cert, "CERTIFICATE");
    let leaf = leaf.first().ok_or(KeystoreError::Pem { what: "the user's certificate", label: "CERTIFICATE" })?;
    let mut certs = vec![Certificate::from_der(leaf)?];
    for der in pem_blocks(chain_pem, "CERTIFICATE") {
        certs.push(Certificate::from_der(&der)?);
    }
    let chain = PrivateKeyChain::new(ALIAS.as_bytes().to_vec(), PrivateKey::from_der(key)?, certs);
    let mut store = KeyStore::new();
    store.add_entry(ALIAS, KeyStoreEntry::PrivateKeyChain(chain));
    Ok(store.writer(password).write()?)
}

/// The certificate (DER) of the key entry in `p12`, when it opens with `password`.
pub fn keystore_certificate(p12: &[u8], password: &str) -> Option<Vec<u8>> {
    let store = KeyStore::from_pkcs12(p12, password, Pkcs12ImportPolicy::Strict).ok()?;
    let (_, chain) = store.private_key_chain()?;
    chain.certs().first().map(|c| c.as_der().to_vec())
}

/// The user's keystore: the one in `own` (its Secret's data) while it opens
/// with its password and holds `pair`'s certificate, else a new one (the
/// password kept when `own` has one).
pub fn keystore(
    pair: &PemPair,
    chain_pem: &str,
    own: &BTreeMap<String, ByteString>,
) -> Result<Keystore, KeystoreError> {
    let password = own.get(USER_PASSWORD).and_then(|p| String::from_utf8(p.0.clone()).ok()).filter(|p| !p.is_empty());
    if let (Some(p12), Some(password)) = (own.get(USER_P12), &password) {
        let leaf = pem_blocks(&pair.cert, "CERTIFICATE");
        if !leaf.is_empty() && keystore_certificate(&p12.0, password).as_ref() == leaf.first() {
            return Ok(Keystore { p12: p12.0.clone(), password: password.clone() });
        }
    }
    let password = match password {
        Some(p) => p,
        None => crate::user_plan::generate_password().map_err(|e| KeystoreError::Password(e.to_string()))?,
    };
    Ok(Keystore { p12: keystore_file(pair, chain_pem, &password)?, password })
}

/// The user's pair in `own` (its Secret's text data) when it is still good:
/// of the clients CA `clients_ca` and outside its renewal window.
pub fn pair_to_keep(now: i64, policy: CaPolicy, own: &BTreeMap<String, String>, clients_ca: &str) -> Option<PemPair> {
    let cert = own.get(USER_CERT)?;
    let key = own.get(USER_KEY)?;
    let leaf = Leaf { of_current_ca: signed_by(cert, clients_ca), not_after: not_after(cert)? };
    (!leaf_needs_issue(now, policy.renewal_days, Some(leaf))).then(|| PemPair { cert: cert.clone(), key: key.clone() })
}

/// A new certificate for user `name` from the clients CA.
pub fn issue(now: i64, policy: CaPolicy, clients_ca: &Ca, ca_not_after: i64, name: &str) -> Result<PemPair, TlsError> {
    let validity =
        Validity { not_before: now - 3600, not_after: leaf_not_after(now, policy.validity_days, ca_not_after) };
    clients_ca.issue_named_valid(name, None, &[], &[], Some(validity))
}

/// The data of a `tls` user's Secret.
pub fn secret_data(pair: &PemPair, cluster_ca_bundle: &str, keystore: &Keystore) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        (USER_CERT.to_string(), ByteString(pair.cert.clone().into_bytes())),
        (USER_KEY.to_string(), ByteString(pair.key.clone().into_bytes())),
        (CA_CERT.to_string(), ByteString(cluster_ca_bundle.as_bytes().to_vec())),
        (USER_P12.to_string(), ByteString(keystore.p12.clone())),
        (USER_PASSWORD.to_string(), ByteString(keystore.password.clone().into_bytes())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const POLICY: CaPolicy = CaPolicy { validity_days: 365, renewal_days: 30, generate: true };

    fn text(data: &BTreeMap<String, ByteString>) -> BTreeMap<String, String> {
        data.iter().filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?))).collect()
    }

    #[test]
    fn a_user_certificate_is_kept_until_its_ca_changes_or_it_nears_expiry() {
        let ca_expiry = NOW + 400 * 86_400;
        let ca = Ca::generate_valid("clients", Some(Validity { not_before: 0, not_after: ca_expiry })).unwrap();
        let pair = issue(NOW, POLICY, &ca, ca_expiry, "alice").unwrap();
        let store = Keystore { p12: vec![1], password: "p".into() };
        let own = text(&secret_data(&pair, "cluster-ca-bundle", &store));
        assert_eq!(own[CA_CERT], "cluster-ca-bundle");
        assert_eq!(pair_to_keep(NOW, POLICY, &own, &ca.pem().cert), Some(pair.clone()));
        assert_eq!(pair_to_keep(NOW + 340 * 86_400, POLICY, &own, &ca.pem().cert), None, "renewal window");
        let renewed = Ca::generate("clients").unwrap();
        assert_eq!(pair_to_keep(NOW, POLICY, &own, &renewed.pem().cert), None, "another clients CA");
        assert_eq!(pair_to_keep(NOW, POLICY, &BTreeMap::new(), &ca.pem().cert), None);
    }

    #[test]
    fn the_certificate_names_the_user_and_never_outlives_its_ca() {
        let ca_expiry = NOW + 10 * 86_400;
        let ca = Ca::generate_valid("clients", Some(Validity { not_before: 0, not_after: ca_expiry })).unwrap();
        let pair = issue(NOW, POLICY, &ca, ca_expiry, "bob").unwrap();
        assert_eq!(not_after(&pair.cert), Some(ca_expiry));
        assert_eq!(strom_tls::certs::subject(&pair.cert).as_deref(), Some("CN=bob"));
    }

    #[test]
    fn the_keystore_parses_back_to_the_users_certificate_and_is_kept_until_it_is_reissued() {
        let ca_expiry = NOW + 400 * 86_400;
        let ca = Ca::generate_valid("clients", Some(Validity { not_before: 0, not_after: ca_expiry })).unwrap();
        let pair = issue(NOW, POLICY, &ca, ca_expiry, "alice").unwrap();
        let store = keystore(&pair, &ca.pem().cert, &BTreeMap::new()).unwrap();
        assert_eq!(store.password.len(), crate::user_plan::PASSWORD_LENGTH);
        assert!(store.password.chars().all(|c| c.is_ascii_alphanumeric()), "{}", store.password);

        // Parsed back with the same crate: the key entry holds the certificate, then the clients CA.
        let parsed = KeyStore::from_pkcs12(&store.p12, &store.password, Pkcs12ImportPolicy::Strict).unwrap();
        let (alias, chain) = parsed.private_key_chain().expect("a key entry");
        assert_eq!(alias, ALIAS);
        let der = |pem: &str| pem_blocks(pem, "CERTIFICATE").remove(0);
        let certs: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
        assert_eq!(certs, vec![der(&pair.cert).as_slice(), der(&ca.pem().cert).as_slice()]);
        assert_eq!(chain.certs()[0].subject(), "CN=alice");
        assert_eq!(chain.key().as_der(), pem_blocks(&pair.key, "PRIVATE KEY")[0].as_slice(), "the user's key");
        assert!(
            KeyStore::from_pkcs12(&store.p12, "wrong", Pkcs12ImportPolicy::Strict).is_err(),
            "the password protects it"
        );

        // Reconciled again with the same certificate: the same bytes (no Secret write).
        let data = secret_data(&pair, "bundle", &store);
        assert_eq!(String::from_utf8(data[USER_PASSWORD].0.clone()).unwrap(), store.password);
        assert_eq!(keystore(&pair, &ca.pem().cert, &data).unwrap(), store);

        // Re-issued: a new keystore of the new certificate, the password kept.
        let reissued = issue(NOW + 1, POLICY, &ca, ca_expiry, "alice").unwrap();
        let again = keystore(&reissued, &ca.pem().cert, &data).unwrap();
        assert_eq!(again.password, store.password, "the password stays");
        assert_ne!(again.p12, store.p12);
        assert_eq!(keystore_certificate(&again.p12, &again.password), Some(der(&reissued.cert)));

        // A keystore that does not open (edited, or no password) is made again.
        let mut broken = data.clone();
        broken.insert(USER_P12.into(), ByteString(b"junk".to_vec()));
        let remade = keystore(&pair, &ca.pem().cert, &broken).unwrap();
        assert_eq!(keystore_certificate(&remade.p12, &store.password), Some(der(&pair.cert)));
        let bad = PemPair { cert: pair.cert.clone(), key: "not PEM".into() };
        let e = keystore_file(&bad, &ca.pem().cert, "pw").unwrap_err().to_string();
        assert!(e.contains("user's key") && e.contains("PRIVATE KEY"), "{e}");
    }
}
