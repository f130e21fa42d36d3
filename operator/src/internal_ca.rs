//! Each KafkaCluster's internal plane CA, and the certificates it signs.
//!
//! The brokers' port 9093 (Raft, follower fetches, the Admin API) runs
//! mutual TLS; identities come from URI SANs (`strom://broker/<id>`,
//! `strom://operator`, see the `strom-tls` crate). For every cluster the
//! operator keeps two Secrets, both owned by the KafkaCluster:
//!
//! - `<cluster>-cluster-ca`: `ca.crt` and `ca.key`. Read only by the
//!   operator. Created when missing; one the user created beforehand under
//!   that name is used as it is (bring your own CA).
//! - `<cluster>-broker-certs`: `ca.crt` (the bundle brokers trust) and
//!   `broker-<id>.crt` / `broker-<id>.key` for every broker, mounted in each
//!   broker pod at [`crate::builders::TLS_DIR`]. A pair not signed by the current CA is
//!   issued again; pairs of brokers beyond `replicas` are kept (a broker
//!   being removed keeps working until it is gone).
//!
//! The operator's own client certificate is issued from the CA in memory
//! (never stored) and cached per cluster until the CA changes.
//!
//! - with a TLS listener, also `listener.keystore.pem` (the Kafka
//!   listeners' key and certificate, see [`crate::listeners`]) and
//!   `clients-ca.crt` (the clients CA's trust bundle).
//!
//! The CAs themselves (creation, renewal, the trust bundle of current and
//! previous CA) are [`crate::ca_secrets`]'. [`broker_certs_data`] is the
//! pure part; the rest reads and writes Secrets. Internal plane pairs carry
//! no expiry of their own: they are issued again whenever the CA changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use strom_crds::KafkaCluster;
use strom_tls::certs::{Ca, PemPair, Validity, not_after, signed_by};
use strom_tls::{Identity, InternalTls, TlsError};

use crate::builders::{CA_CERT, ClusterNames, owner_reference};
use crate::ca_plan::{Leaf, leaf_needs_issue, leaf_not_after};
use crate::ca_secrets::{CaKind, CaMaterial, ensure_ca};
use crate::context::Context;
use crate::listeners::{CLIENTS_CA_CERT, LISTENER_KEYSTORE};

/// The CA private key's key in `<cluster>-cluster-ca`.
pub const CA_KEY: &str = "ca.key";

/// Broker `id`'s certificate key in `<cluster>-broker-certs`.
pub fn broker_cert(id: i32) -> String {
    format!("broker-{id}.crt")
}

/// Broker `id`'s private key's key in `<cluster>-broker-certs`.
pub fn broker_key(id: i32) -> String {
    format!("broker-{id}.key")
}

/// Why a cluster's CA or certificates could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A Kubernetes API call failed.
    #[error("{action} Secret {name}: {source}")]
    Kube {
        action: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The CA Secret does not exist (yet): the cluster reconciler creates it.
    #[error("Secret {0} does not exist yet (the KafkaCluster's reconciler creates it)")]
    Missing(String),
    /// A Secret lacks a key or holds something unusable there.
    #[error("Secret {name}, key {key}: {reason}")]
    Unusable { name: String, key: &'static str, reason: String },
    /// Generating or loading TLS material failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The DNS names broker `id`'s certificate carries (for other tools; Strom
/// peers check the URI SAN).
fn broker_dns(names: &ClusterNames, id: i32) -> Vec<String> {
    let host = names.pod_host(id);
    vec![format!("{host}.cluster.local"), host]
}

/// The data `<cluster>-broker-certs` should hold: the CA certificate and a
/// pair signed by `ca` for every broker `0..replicas`, keeping the valid
/// pairs of `existing` (pure apart from key generation).
pub fn broker_certs_data(
    ca: &Ca,
    existing: &BTreeMap<String, String>,
    replicas: i32,
    dns: impl Fn(i32) -> Vec<String>,
) -> Result<BTreeMap<String, String>, TlsError> {
    let ca_cert = &ca.pem().cert;
    let mut data = BTreeMap::from([(CA_CERT.to_string(), ca_cert.clone())]);
    let mut ids: Vec<i32> = existing
        .keys()
        .filter_map(|k| k.strip_prefix("broker-")?.strip_suffix(".crt")?.parse().ok())
        .filter(|id| *id >= 0)
        .collect();
    ids.extend(0..replicas);
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let (cert_key, key_key) = (broker_cert(id), broker_key(id));
        let valid = match (existing.get(&cert_key), existing.get(&key_key)) {
            (Some(cert), Some(key)) if signed_by(cert, ca_cert) => {
                Some(PemPair { cert: cert.clone(), key: key.clone() })
            }
            _ => None,
        };
        let pair = match valid {
            Some(pair) => pair,
            None if id < replicas => ca.issue(Identity::Broker(id), &dns(id), &[])?,
            // A removed broker's pair from another CA: dropped.
            None => continue,
        };
        data.insert(cert_key, pair.cert);
        data.insert(key_key, pair.key);
    }
    Ok(data)
}

fn text_data(secret: &Secret) -> BTreeMap<String, String> {
    let data = secret.data.clone().unwrap_or_default();
    data.into_iter().filter_map(|(k, v)| Some((k, String::from_utf8(v.0).ok()?))).collect()
}

fn secret(cluster: &KafkaCluster, names: &ClusterNames, name: String, data: &BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: Some(names.namespace.clone()),
            labels: Some(crate::builders::labels(names)),
            owner_references: owner_reference(cluster).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect()),
        ..Secret::default()
    }
}

fn kube_err<'a>(action: &'static str, name: &'a str) -> impl FnOnce(kube::Error) -> CaError + 'a {
    move |source| CaError::Kube { action, name: name.to_string(), source }
}

/// The CA in `<cluster>-cluster-ca`, read from the Secret.
fn ca_from_secret(name: &str, secret: &Secret) -> Result<Ca, CaError> {
    let data = text_data(secret);
    let get = |key: &'static str| {
        data.get(key).cloned().ok_or_else(|| CaError::Unusable {
            name: name.to_string(),
            key,
            reason: "missing (or not UTF-8 PEM)".into(),
        })
    };
    let pem = PemPair { cert: get(CA_CERT)?, key: get(CA_KEY)? };
    Ca::from_pem(&pem).map_err(|e| CaError::Unusable { name: name.to_string(), key: CA_KEY, reason: e.to_string() })
}

/// What [`ensure`] leaves in force: the CAs' expiry (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaExpiry {
    /// The cluster CA's.
    pub cluster: i64,
    /// The clients CA's.
    pub clients: i64,
}

/// The DNS names of the Kafka listeners' certificate: every pod (wildcard
/// under the headless Service), the bootstrap Service and, with an external
/// listener (`external_brokers` > 0), the external bootstrap Service and the
/// per-broker Services of brokers `0..external_brokers` (see
/// [`crate::external`]), short and long.
pub fn listener_dns(names: &ClusterNames, external_brokers: i32) -> Vec<String> {
    let ns = &names.namespace;
    let headless = names.headless_service();
    let mut dns = vec![
        format!("*.{headless}.{ns}.svc"),
        format!("*.{headless}.{ns}.svc.cluster.local"),
        format!("{headless}.{ns}.svc"),
        format!("{headless}.{ns}.svc.cluster.local"),
    ];
    let external_bootstrap = (external_brokers > 0).then(|| crate::external::bootstrap_service_name(names));
    let services = std::iter::once(names.bootstrap_service())
        .chain(external_bootstrap)
        .chain((0..external_brokers).map(|id| crate::external::broker_service_name(names, id)));
    for service in services {
        dns.extend([
            service.clone(),
            format!("{service}.{ns}"),
            format!("{service}.{ns}.svc"),
            format!("{service}.{ns}.svc.cluster.local"),
        ]);
    }
    dns
}

/// The DNS SANs of the first certificate in `pem` (a keystore: key, then
/// certificates), sorted; `None` when there is none or it does not parse.
fn leaf_dns(pem: &str) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let block = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|block| block.label == "CERTIFICATE")?;
    let cert = block.parse_x509().ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut dns: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    dns.sort();
    Some(dns)
}

/// Whether every certificate in `data` (a `<cluster>-broker-certs`) is of `ca`.
fn leaves_of(data: &BTreeMap<String, String>, ca: &Ca) -> bool {
    data.iter()
        .filter(|(k, _)| k.ends_with(".crt") && k.starts_with("broker-") || k.as_str() == LISTENER_KEYSTORE)
        .all(|(_, cert)| signed_by(cert, &ca.pem().cert))
}

/// The listeners' keystore (key, then certificate) in `existing`, or a new
/// one from `ca` when missing, of another CA or inside its renewal window.
fn listener_keystore(
    ca: &CaMaterial,
    existing: Option<&String>,
    dns: &[String],
    names: &ClusterNames,
    policy: crate::ca_plan::CaPolicy,
    now: i64,
) -> Result<String, TlsError> {
    let leaf = existing
        .and_then(|text| Some(Leaf { of_current_ca: signed_by(text, &ca.ca.pem().cert), not_after: not_after(text)? }));
    let mut wanted_dns = dns.to_vec();
    wanted_dns.sort();
    // A name added or gone (per-broker Services) issues a new certificate.
    let same_names = |text: &String| leaf_dns(text).is_some_and(|have| have == wanted_dns);
    match existing {
        Some(text) if !leaf_needs_issue(now, policy.renewal_days, leaf) && same_names(text) => Ok(text.clone()),
        _ => {
            let validity =
                Validity { not_before: now - 3600, not_after: leaf_not_after(now, policy.validity_days, ca.not_after) };
            let cn = format!("{}.{}", names.name, names.namespace);
            let pair = ca.ca.issue_named_valid(&cn, None, dns, &[], Some(validity))?;
            // Key, leaf, then the cross-signed CA during a renewal (Kafka's
            // PEM keystore: the chain after the key, leaf first).
            Ok(format!("{}{}{}", pair.key, pair.cert, ca.chain))
        }
    }
}

/// Makes sure the cluster CA and the clients CA exist (created or renewed
/// as [`crate::ca_plan`] decides), every broker `0..replicas` has an
/// internal plane certificate of the cluster CA in `<cluster>-broker-certs`,
/// and, with a TLS listener, the listeners' keystore and the clients CA's
/// trust bundle are there too.
pub async fn ensure(ctx: &Context, cluster: &KafkaCluster, replicas: i32) -> Result<CaExpiry, CaError> {
    let names = ClusterNames::of(cluster);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let certs_name = names.broker_certs_secret();
    let existing = api.get_opt(&certs_name).await.map_err(kube_err("read", &certs_name))?;
    let current = existing.as_ref().map(text_data).unwrap_or_default();
    let cluster_ca = ensure_ca(ctx, cluster, CaKind::Cluster, |ca| leaves_of(&current, ca)).await?;
    // Client certificates are issued again by the KafkaUser reconciler, but
    // applications load theirs when they start and keep it: the operator
    // cannot see when the last one has moved on, so the previous clients CA
    // stays trusted until it expires (as Strimzi keeps it).
    let clients_ca = ensure_ca(ctx, cluster, CaKind::Clients, |_| false).await?;
    let mut wanted = broker_certs_data(&cluster_ca.ca, &current, replicas, |id| broker_dns(&names, id))?;
    wanted.insert(CA_CERT.to_string(), cluster_ca.bundle.clone());
    if crate::listeners::any_tls(&cluster.spec) {
        let policy = crate::ca_secrets::policy(cluster);
        let now = crate::ca_secrets::unix_now();
        let external_brokers = if cluster.spec.listeners.external.is_some() { replicas } else { 0 };
        let dns = listener_dns(&names, external_brokers);
        let keystore = listener_keystore(&cluster_ca, current.get(LISTENER_KEYSTORE), &dns, &names, policy, now)?;
        wanted.insert(LISTENER_KEYSTORE.to_string(), keystore);
        wanted.insert(CLIENTS_CA_CERT.to_string(), clients_ca.bundle.clone());
    }
    if wanted != current {
        let object = secret(cluster, &names, certs_name.clone(), &wanted);
        let params = PatchParams::apply(crate::FIELD_MANAGER).force();
        api.patch(&certs_name, &params, &Patch::Apply(&object)).await.map_err(kube_err("apply", &certs_name))?;
        tracing::info!(cluster = %names.name, namespace = %names.namespace, "issued broker certificates");
    }
    Ok(CaExpiry { cluster: cluster_ca.not_after, clients: clients_ca.not_after })
}

/// The operator's client identity for `names`' internal plane: a certificate
/// issued from the cluster CA, cached until the CA changes.
pub async fn operator_tls(ctx: &Context, names: &ClusterNames) -> Result<Arc<InternalTls>, CaError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let ca_name = names.cluster_ca_secret();
    let secret =
        api.get_opt(&ca_name).await.map_err(kube_err("read", &ca_name))?.ok_or(CaError::Missing(ca_name.clone()))?;
    let data = text_data(&secret);
    let ca_cert = format!(
        "{}{}",
        data.get(CA_CERT).map_or("", String::as_str),
        data.get(crate::ca_secrets::PREVIOUS_CERTS).map_or("", String::as_str)
    );
    let key = format!("{}/{}", names.namespace, names.name);
    if let Some(tls) = ctx.operator_identities.get(&key, &ca_cert) {
        return Ok(tls);
    }
    let tls = operator_identity(&ca_name, &secret)?;
    ctx.operator_identities.put(key, ca_cert, tls.clone());
    Ok(tls)
}

/// A new operator identity issued from the CA in `secret` (a
/// `<cluster>-cluster-ca` Secret named `name`).
pub fn operator_identity(name: &str, secret: &Secret) -> Result<Arc<InternalTls>, CaError> {
    let ca = ca_from_secret(name, secret)?;
    let pair = ca.issue(Identity::Operator, &[], &[])?;
    // Trust the previous CA too: brokers may still serve its certificates
    // until their Secret volume refreshes after a renewal.
    let data = text_data(secret);
    let bundle = format!("{}{}", ca.pem().cert, data.get(crate::ca_secrets::PREVIOUS_CERTS).map_or("", String::as_str));
    Ok(InternalTls::from_pem(&bundle, &pair)?)
}

/// The operator's client identities, one per cluster, with the CA
/// certificate each was issued from.
#[derive(Default)]
pub struct IdentityCache {
    entries: std::sync::Mutex<BTreeMap<String, (String, Arc<InternalTls>)>>,
}

impl IdentityCache {
    fn get(&self, cluster: &str, ca_cert: &str) -> Option<Arc<InternalTls>> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(cluster).filter(|(ca, _)| ca == ca_cert).map(|(_, tls)| tls.clone())
    }

    fn put(&self, cluster: String, ca_cert: String, tls: Arc<InternalTls>) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.insert(cluster, (ca_cert, tls));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(id: i32) -> Vec<String> {
        vec![format!("b{id}.example")]
    }

    #[test]
    fn every_broker_gets_a_pair_of_the_ca_and_valid_pairs_are_kept() {
        let ca = Ca::generate("test").unwrap();
        let first = broker_certs_data(&ca, &BTreeMap::new(), 3, dns).unwrap();
        assert_eq!(first.len(), 1 + 2 * 3, "{:?}", first.keys());
        for id in 0..3 {
            assert!(signed_by(&first[&broker_cert(id)], &ca.pem().cert));
        }
        // Nothing changes on the next pass: no needless Secret writes.
        assert_eq!(broker_certs_data(&ca, &first, 3, dns).unwrap(), first);
        // Scaling up adds pairs, scaling down keeps the ones still valid.
        let grown = broker_certs_data(&ca, &first, 4, dns).unwrap();
        assert_eq!(grown[&broker_cert(1)], first[&broker_cert(1)]);
        assert!(grown.contains_key(&broker_key(3)));
        assert_eq!(broker_certs_data(&ca, &grown, 2, dns).unwrap(), grown);
    }

    fn material(cn: &str, not_after: i64) -> CaMaterial {
        let ca = Ca::generate_valid(cn, Some(Validity { not_before: 0, not_after })).unwrap();
        CaMaterial { bundle: ca.pem().cert.clone(), ca, not_after, chain: String::new() }
    }

    #[test]
    fn the_listener_keystore_is_kept_until_its_ca_changes_or_it_nears_expiry() {
        let now = 1_800_000_000;
        let names = ClusterNames { name: "demo".into(), namespace: "ns".into() };
        let policy = crate::ca_plan::CaPolicy { validity_days: 365, renewal_days: 30, generate: true };
        let ca = material("one", now + 400 * 86_400);
        let plain = listener_dns(&names, 0);
        let first = listener_keystore(&ca, None, &plain, &names, policy, now).unwrap();
        assert!(first.starts_with("-----BEGIN PRIVATE KEY-----"), "key first, as Kafka's PEM keystore");
        assert!(signed_by(&first, &ca.ca.pem().cert));
        assert_eq!(not_after(&first), Some(now + 365 * 86_400));
        assert_eq!(listener_keystore(&ca, Some(&first), &plain, &names, policy, now).unwrap(), first);
        let later = now + 340 * 86_400;
        let renewed = listener_keystore(&ca, Some(&first), &plain, &names, policy, later).unwrap();
        assert_ne!(renewed, first, "renewal window");
        let other = material("two", now + 400 * 86_400);
        let again = listener_keystore(&other, Some(&first), &plain, &names, policy, now).unwrap();
        assert!(signed_by(&again, &other.ca.pem().cert), "issued again from the new CA");
        assert!(plain.contains(&"*.demo-brokers.ns.svc".to_string()), "{plain:?}");
        assert!(!plain.iter().any(|n| n.starts_with("demo-external")), "no external listener: {plain:?}");
        // Per-broker external Services: a certificate naming them, and again
        // when a broker is added.
        let two = listener_dns(&names, 2);
        let external = listener_keystore(&ca, Some(&first), &two, &names, policy, now).unwrap();
        assert_ne!(external, first, "new names, new certificate");
        let have = leaf_dns(&external).expect("DNS SANs");
        let names_wanted =
            ["demo-external-1", "demo-external-1.ns.svc", "demo-external.ns.svc", "demo-bootstrap.ns.svc"];
        for name in names_wanted.into_iter().chain(["*.demo-brokers.ns.svc"]) {
            assert!(have.contains(&name.to_string()), "{name} in {have:?}");
        }
        assert!(!have.iter().any(|n| n.starts_with("demo-external-2")), "{have:?}");
        assert_eq!(listener_keystore(&ca, Some(&external), &two, &names, policy, now).unwrap(), external);
        let three = listener_keystore(&ca, Some(&external), &listener_dns(&names, 3), &names, policy, now).unwrap();
        assert!(leaf_dns(&three).expect("DNS SANs").contains(&"demo-external-2.ns.svc".to_string()));
    }

    #[test]
    fn pairs_of_another_ca_are_issued_again_or_dropped() {
        let old = Ca::generate("old").unwrap();
        let new = Ca::generate("new").unwrap();
        let before = broker_certs_data(&old, &BTreeMap::new(), 3, dns).unwrap();
        let after = broker_certs_data(&new, &before, 2, dns).unwrap();
        assert_eq!(after[CA_CERT], new.pem().cert);
        for id in 0..2 {
            assert!(signed_by(&after[&broker_cert(id)], &new.pem().cert), "broker {id} reissued");
        }
        assert!(!after.contains_key(&broker_cert(2)), "a removed broker's stale pair is dropped");
    }
}
