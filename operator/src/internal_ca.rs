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
//! [`broker_certs_data`] is the pure part; the rest reads and writes Secrets.
//! Validity and renewal are the operator-security issue's (certificates do
//! not expire in practice yet).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use strom_crds::KafkaCluster;
use strom_tls::certs::{Ca, PemPair, signed_by};
use strom_tls::{Identity, InternalTls, TlsError};

use crate::builders::{CA_CERT, ClusterNames, owner_reference};
use crate::context::Context;

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

/// Makes sure the cluster's CA exists and every broker `0..replicas` has a
/// certificate of it in `<cluster>-broker-certs`.
pub async fn ensure(ctx: &Context, cluster: &KafkaCluster, replicas: i32) -> Result<(), CaError> {
    let names = ClusterNames::of(cluster);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let ca_name = names.cluster_ca_secret();
    let ca = match api.get_opt(&ca_name).await.map_err(kube_err("read", &ca_name))? {
        Some(existing) => ca_from_secret(&ca_name, &existing)?,
        None => {
            let ca = Ca::generate(&format!("Strom cluster CA {}/{}", names.namespace, names.name))?;
            let data = BTreeMap::from([
                (CA_CERT.to_string(), ca.pem().cert.clone()),
                (CA_KEY.to_string(), ca.pem().key.clone()),
            ]);
            let params = PostParams { field_manager: Some(crate::FIELD_MANAGER.into()), ..PostParams::default() };
            match api.create(&params, &secret(cluster, &names, ca_name.clone(), &data)).await {
                Ok(_) => {
                    tracing::info!(cluster = %names.name, namespace = %names.namespace, "created the cluster CA");
                    ca
                }
                // Another writer was first (a previous operator instance): use its CA.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let existing = api.get(&ca_name).await.map_err(kube_err("read", &ca_name))?;
                    ca_from_secret(&ca_name, &existing)?
                }
                Err(e) => return Err(kube_err("create", &ca_name)(e)),
            }
        }
    };
    let certs_name = names.broker_certs_secret();
    let existing = api.get_opt(&certs_name).await.map_err(kube_err("read", &certs_name))?;
    let current = existing.as_ref().map(text_data).unwrap_or_default();
    let wanted = broker_certs_data(&ca, &current, replicas, |id| broker_dns(&names, id))?;
    if wanted != current {
        let object = secret(cluster, &names, certs_name.clone(), &wanted);
        let params = PatchParams::apply(crate::FIELD_MANAGER).force();
        api.patch(&certs_name, &params, &Patch::Apply(&object)).await.map_err(kube_err("apply", &certs_name))?;
        tracing::info!(cluster = %names.name, namespace = %names.namespace, "issued broker certificates");
    }
    Ok(())
}

/// The operator's client identity for `names`' internal plane: a certificate
/// issued from the cluster CA, cached until the CA changes.
pub async fn operator_tls(ctx: &Context, names: &ClusterNames) -> Result<Arc<InternalTls>, CaError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let ca_name = names.cluster_ca_secret();
    let secret =
        api.get_opt(&ca_name).await.map_err(kube_err("read", &ca_name))?.ok_or(CaError::Missing(ca_name.clone()))?;
    let ca_cert = text_data(&secret).remove(CA_CERT).unwrap_or_default();
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
    Ok(InternalTls::from_pem(&ca.pem().cert, &pair)?)
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
