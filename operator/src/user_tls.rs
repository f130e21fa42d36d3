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
//! No PKCS#12 keystore: Kafka clients (Java since 2.7, librdkafka) read PEM
//! directly, and no maintained pure-Rust PKCS#12 writer is among our
//! dependencies' reach.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use strom_tls::TlsError;
use strom_tls::certs::{Ca, PemPair, Validity, not_after, signed_by};

use crate::ca_plan::{CaPolicy, Leaf, leaf_needs_issue, leaf_not_after};

/// The Secret key of the user's certificate (PEM).
pub const USER_CERT: &str = "user.crt";
/// The Secret key of the user's private key (PEM, PKCS#8).
pub const USER_KEY: &str = "user.key";
/// The Secret key of the cluster CA's trust bundle (PEM).
pub const CA_CERT: &str = "ca.crt";

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
pub fn secret_data(pair: &PemPair, cluster_ca_bundle: &str) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        (USER_CERT.to_string(), ByteString(pair.cert.clone().into_bytes())),
        (USER_KEY.to_string(), ByteString(pair.key.clone().into_bytes())),
        (CA_CERT.to_string(), ByteString(cluster_ca_bundle.as_bytes().to_vec())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const POLICY: CaPolicy = CaPolicy { validity_days: 365, renewal_days: 30, generate: true };

    fn text(data: &BTreeMap<String, ByteString>) -> BTreeMap<String, String> {
        data.iter().map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap())).collect()
    }

    #[test]
    fn a_user_certificate_is_kept_until_its_ca_changes_or_it_nears_expiry() {
        let ca_expiry = NOW + 400 * 86_400;
        let ca = Ca::generate_valid("clients", Some(Validity { not_before: 0, not_after: ca_expiry })).unwrap();
        let pair = issue(NOW, POLICY, &ca, ca_expiry, "alice").unwrap();
        let own = text(&secret_data(&pair, "cluster-ca-bundle"));
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
}
