//! The principal of a TLS client certificate: its subject DN (as Kafka
//! prints it) mapped by the listener's `ssl.principal.mapping.rules`.

use rustls::pki_types::CertificateDer;

use super::Principal;
use super::principal_rules::{self, Rule};

/// The principal the client's certificate chain (leaf first) names, or
/// `None` without a certificate (the connection stays ANONYMOUS unless SASL
/// follows).
pub fn principal_of(chain: Option<&[CertificateDer<'_>]>, rules: &[Rule]) -> Option<Principal> {
    let leaf = chain?.first()?;
    let dn = strom_tls::listener::subject_dn(leaf).ok()?;
    Some(Principal::user(principal_rules::apply(rules, &dn)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn a_client_certificate_names_its_mapped_subject() {
        let ca = strom_tls::certs::Ca::generate("test CA").unwrap();
        let pair = ca.issue_named("Alice", Some("Acme"), &[], &[]).unwrap();
        let chain = vec![CertificateDer::from_pem_slice(pair.cert.as_bytes()).unwrap()];
        let default = principal_rules::parse("DEFAULT").unwrap();
        assert_eq!(principal_of(Some(&chain), &default), Some(Principal::user("CN=Alice,O=Acme")));
        let rules = principal_rules::parse("RULE:^CN=([^,]*),O=Acme$/$1/L,DEFAULT").unwrap();
        assert_eq!(principal_of(Some(&chain), &rules), Some(Principal::user("alice")));
        assert_eq!(principal_of(None, &rules), None, "no certificate: no principal from TLS");
    }
}
