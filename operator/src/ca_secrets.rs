//! The cluster CA and the clients CA of a KafkaCluster, kept in Secrets and
//! renewed as [`crate::ca_plan`] decides.
//!
//! `<cluster>-cluster-ca` signs the brokers' certificates (the internal
//! plane's and the Kafka listeners'); `<cluster>-clients-ca` signs
//! KafkaUsers' client certificates. Each Secret holds:
//!
//! - `ca.crt`, `ca.key`: the current CA (PEM);
//! - `previous.crt`: earlier CA certificates still trusted after a renewal;
//! - `cross.crt`: the current CA certificate signed by the previous CA
//!   (until that one is retired): brokers serve it after their certificate,
//!   so a client that trusts only the previous CA still verifies them;
//! - annotation `strom.dev/ca-renewed-at`: when the current CA replaced the
//!   previous one (Unix seconds).
//!
//! The trust bundle handed to brokers and clients is `ca.crt` followed by
//! `previous.crt`. A renewal replaces the whole Secret (so a
//! `strom.dev/force-renew` annotation put on it is consumed); the same
//! annotation on the KafkaCluster renews both CAs once per distinct value
//! (the value acted on is kept in `strom.dev/force-renew-done`).
//!
//! With `spec.certificateAuthorities.generate: false` the user creates both
//! Secrets (`ca.crt`, `ca.key`); the operator never replaces them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use strom_crds::KafkaCluster;
use strom_tls::certs::{Ca, PemPair, Validity, not_after};

use crate::builders::{CA_CERT, ClusterNames, owner_reference};
use crate::ca_plan::{CaAction, CaPolicy, CaState, ca_action, previous_to_keep};
use crate::context::Context;
use crate::internal_ca::{CA_KEY, CaError};

/// Earlier CA certificates still trusted, in a CA Secret.
pub const PREVIOUS_CERTS: &str = "previous.crt";
/// The current CA's certificate signed by the previous CA, while that one is
/// still trusted: served after the leaf, so clients that only trust the
/// previous CA keep verifying the brokers through a renewal.
pub const CROSS_CERT: &str = "cross.crt";
/// Annotation (on a CA Secret or the KafkaCluster) asking for a renewal now.
pub const FORCE_RENEW: &str = "strom.dev/force-renew";
/// Annotation on a CA Secret: the KafkaCluster's `strom.dev/force-renew` value acted on.
const FORCE_RENEW_DONE: &str = "strom.dev/force-renew-done";
/// Annotation on a CA Secret: when its CA replaced the previous one.
const RENEWED_AT: &str = "strom.dev/ca-renewed-at";
/// How long a previous CA stays trusted after its leaves were issued again:
/// the kubelet's Secret volume refresh (up to a minute or so) and the
/// brokers' reload, with room to spare.
pub const RETIRE_GRACE_SECONDS: i64 = 600;

/// Which of the two CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKind {
    /// Signs the brokers' certificates.
    Cluster,
    /// Signs the KafkaUsers' certificates.
    Clients,
}

impl CaKind {
    /// The Secret's name.
    pub fn secret_name(self, names: &ClusterNames) -> String {
        match self {
            CaKind::Cluster => names.cluster_ca_secret(),
            CaKind::Clients => format!("{}-clients-ca", names.name),
        }
    }

    fn label(self) -> &'static str {
        match self {
            CaKind::Cluster => "cluster",
            CaKind::Clients => "clients",
        }
    }
}

/// A CA ready to sign, with what to trust.
pub struct CaMaterial {
    /// The current CA.
    pub ca: Ca,
    /// The current CA certificate followed by the previous ones still trusted.
    pub bundle: String,
    /// The current CA certificate's expiry (Unix seconds).
    pub not_after: i64,
    /// The cross-signed current CA certificate, to serve after a leaf (empty
    /// when there is no previous CA).
    pub chain: String,
}

/// The PEM blocks of `text`, each ending with its END line.
pub fn pem_blocks(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    text.split_inclusive(END)
        .map(str::trim)
        .filter(|block| block.ends_with(END))
        .map(|block| format!("{block}\n"))
        .collect()
}

fn text_data(secret: &Secret) -> BTreeMap<String, String> {
    let data = secret.data.clone().unwrap_or_default();
    data.into_iter().filter_map(|(k, v)| Some((k, String::from_utf8(v.0).ok()?))).collect()
}

fn unusable(name: &str, key: &'static str, reason: impl ToString) -> CaError {
    CaError::Unusable { name: name.to_string(), key, reason: reason.to_string() }
}

fn kube_err<'a>(action: &'static str, name: &'a str) -> impl FnOnce(kube::Error) -> CaError + 'a {
    move |source| CaError::Kube { action, name: name.to_string(), source }
}

/// The policy of `cluster`'s CAs.
pub fn policy(cluster: &KafkaCluster) -> CaPolicy {
    let cas = &cluster.spec.certificate_authorities;
    // The CRD keeps both in 1..=36500; a hand-edited negative value counts as 1 day.
    let days = |d: i32| u32::try_from(d).unwrap_or(0).max(1);
    CaPolicy { validity_days: days(cas.validity_days), renewal_days: days(cas.renewal_days), generate: cas.generate }
}

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Reads, creates or renews `cluster`'s CA of `kind`; retires previous CA
/// certificates once `leaves_current` (every leaf it signed is of the
/// current CA) and the grace period allow.
pub async fn ensure_ca(
    ctx: &Context,
    cluster: &KafkaCluster,
    kind: CaKind,
    leaves_current: impl FnOnce(&Ca) -> bool,
) -> Result<CaMaterial, CaError> {
    let names = ClusterNames::of(cluster);
    let name = kind.secret_name(&names);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let now = unix_now();
    let policy = policy(cluster);
    let existing = api.get_opt(&name).await.map_err(kube_err("read", &name))?;
    let cluster_force = cluster.annotations().get(FORCE_RENEW).cloned();
    let state = match &existing {
        Some(secret) => {
            let data = text_data(secret);
            let cert = data.get(CA_CERT).ok_or_else(|| unusable(&name, CA_CERT, "missing (or not UTF-8 PEM)"))?;
            let expiry = not_after(cert).ok_or_else(|| unusable(&name, CA_CERT, "not a PEM certificate"))?;
            let done = annotation(&secret.metadata, FORCE_RENEW_DONE);
            let force_renew = annotation(&secret.metadata, FORCE_RENEW).is_some()
                || cluster_force.as_deref().is_some_and(|v| Some(v) != done);
            Some(CaState {
                not_after: expiry,
                previous: pem_blocks(data.get(PREVIOUS_CERTS).map_or("", String::as_str))
                    .iter()
                    .filter_map(|b| not_after(b))
                    .collect(),
                renewed_at: annotation(&secret.metadata, RENEWED_AT).and_then(|v| v.parse().ok()),
                force_renew,
            })
        }
        None => None,
    };
    let common_name = format!("Strom {} CA {}/{} {now}", kind.label(), names.namespace, names.name);
    let validity = Some(Validity::days_from(now, policy.validity_days));
    let secret = match (ca_action(now, policy, state.as_ref()), existing) {
        (CaAction::AwaitUserCa, _) => return Err(CaError::Missing(name)),
        (CaAction::Create, _) => {
            let ca = Ca::generate_valid(&common_name, validity)?;
            let object = ca_secret(cluster, &names, &name, ca.pem(), "", None, cluster_force.as_deref());
            let params = PostParams { field_manager: Some(crate::FIELD_MANAGER.into()), ..PostParams::default() };
            match api.create(&params, &object).await {
                Ok(created) => {
                    tracing::info!(cluster = %names.name, namespace = %names.namespace, ca = kind.label(), "created a CA");
                    created
                }
                // Another writer was first (a previous operator instance): use its CA.
                Err(kube::Error::Api(e)) if e.code == 409 => api.get(&name).await.map_err(kube_err("read", &name))?,
                Err(e) => return Err(kube_err("create", &name)(e)),
            }
        }
        (CaAction::Renew(reason), Some(old)) => {
            let data = text_data(&old);
            let kept = state.as_ref().map(|s| previous_to_keep(now, s, false, 0)).unwrap_or_default();
            let previous_blocks = pem_blocks(data.get(PREVIOUS_CERTS).map_or("", String::as_str));
            let mut previous = data.get(CA_CERT).cloned().unwrap_or_default();
            for i in kept {
                if let Some(block) = previous_blocks.get(i) {
                    previous.push_str(block);
                }
            }
            let ca = Ca::generate_valid(&common_name, validity)?;
            let old_pem = PemPair {
                cert: data.get(CA_CERT).cloned().unwrap_or_default(),
                key: data.get(CA_KEY).cloned().unwrap_or_default(),
            };
            let cross = Ca::from_pem(&old_pem).and_then(|old| old.cross_sign(&ca));
            let mut object =
                ca_secret(cluster, &names, &name, ca.pem(), &previous, Some(now), cluster_force.as_deref());
            match (cross, object.data.as_mut()) {
                (Ok(cross), Some(data)) => {
                    data.insert(CROSS_CERT.to_string(), ByteString(cross.into_bytes()));
                }
                (Err(e), _) => tracing::warn!(cluster = %names.name, ca = kind.label(), error = %e,
                    "cannot cross-sign the new CA: clients trusting only the previous CA fail on new connections"),
                _ => {}
            }
            object.metadata.resource_version = old.metadata.resource_version.clone();
            let replaced =
                api.replace(&name, &PostParams::default(), &object).await.map_err(kube_err("replace", &name))?;
            tracing::info!(cluster = %names.name, namespace = %names.namespace, ca = kind.label(), ?reason, "renewed a CA");
            replaced
        }
        (CaAction::UserCaExpiring { not_after }, Some(secret)) => {
            tracing::warn!(cluster = %names.name, namespace = %names.namespace, ca = kind.label(), not_after,
                "the user-provided CA is inside its renewal window: replace its Secret");
            secret
        }
        (_, Some(secret)) => secret,
        (_, None) => return Err(CaError::Missing(name)),
    };
    let data = text_data(&secret);
    let get =
        |key: &'static str| data.get(key).cloned().ok_or_else(|| unusable(&name, key, "missing (or not UTF-8 PEM)"));
    let pem = PemPair { cert: get(CA_CERT)?, key: get(CA_KEY)? };
    let ca = Ca::from_pem(&pem).map_err(|e| unusable(&name, CA_KEY, e))?;
    let expiry = not_after(&pem.cert).ok_or_else(|| unusable(&name, CA_CERT, "not a PEM certificate"))?;
    let previous_text = data.get(PREVIOUS_CERTS).cloned().unwrap_or_default();
    let previous = pem_blocks(&previous_text);
    let mut bundle = pem.cert.clone();
    let mut chain = String::new();
    if !previous.is_empty() {
        let state = CaState {
            not_after: expiry,
            previous: previous.iter().map(|b| not_after(b).unwrap_or(0)).collect(),
            renewed_at: annotation(&secret.metadata, RENEWED_AT).and_then(|v| v.parse().ok()),
            force_renew: false,
        };
        let keep = previous_to_keep(now, &state, leaves_current(&ca), RETIRE_GRACE_SECONDS);
        let kept: String = keep.iter().filter_map(|i| previous.get(*i)).map(String::as_str).collect();
        if kept != previous_text {
            let mut object = secret.clone();
            let mut data = data.clone();
            data.insert(PREVIOUS_CERTS.to_string(), kept.clone());
            if kept.is_empty() {
                data.remove(CROSS_CERT);
            }
            object.data = Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect());
            api.replace(&name, &PostParams::default(), &object).await.map_err(kube_err("replace", &name))?;
            tracing::info!(cluster = %names.name, namespace = %names.namespace, ca = kind.label(), "retired previous CA certificates");
        }
        bundle.push_str(&kept);
        if !kept.is_empty() {
            chain = data.get(CROSS_CERT).cloned().unwrap_or_default();
        }
    }
    Ok(CaMaterial { ca, bundle, not_after: expiry, chain })
}

/// The CA of `kind` of the cluster `names`, as its Secret holds it now
/// (none while the cluster reconciler has not created it); never writes.
pub async fn read_ca(ctx: &Context, names: &ClusterNames, kind: CaKind) -> Result<Option<CaMaterial>, CaError> {
    let name = kind.secret_name(names);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let Some(secret) = api.get_opt(&name).await.map_err(kube_err("read", &name))? else {
        return Ok(None);
    };
    let data = text_data(&secret);
    let get =
        |key: &'static str| data.get(key).cloned().ok_or_else(|| unusable(&name, key, "missing (or not UTF-8 PEM)"));
    let pem = PemPair { cert: get(CA_CERT)?, key: get(CA_KEY)? };
    let ca = Ca::from_pem(&pem).map_err(|e| unusable(&name, CA_KEY, e))?;
    let expiry = not_after(&pem.cert).ok_or_else(|| unusable(&name, CA_CERT, "not a PEM certificate"))?;
    let previous = data.get(PREVIOUS_CERTS).map_or("", String::as_str);
    let bundle = format!("{}{previous}", pem.cert);
    let chain = if previous.is_empty() { String::new() } else { data.get(CROSS_CERT).cloned().unwrap_or_default() };
    Ok(Some(CaMaterial { ca, bundle, not_after: expiry, chain }))
}

fn ca_secret(
    cluster: &KafkaCluster,
    names: &ClusterNames,
    name: &str,
    pem: &PemPair,
    previous: &str,
    renewed_at: Option<i64>,
    force_done: Option<&str>,
) -> Secret {
    let mut annotations = BTreeMap::new();
    if let Some(at) = renewed_at {
        annotations.insert(RENEWED_AT.to_string(), at.to_string());
    }
    if let Some(value) = force_done {
        annotations.insert(FORCE_RENEW_DONE.to_string(), value.to_string());
    }
    let mut data = BTreeMap::from([
        (CA_CERT.to_string(), ByteString(pem.cert.clone().into_bytes())),
        (CA_KEY.to_string(), ByteString(pem.key.clone().into_bytes())),
    ]);
    if !previous.is_empty() {
        data.insert(PREVIOUS_CERTS.to_string(), ByteString(previous.as_bytes().to_vec()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(names.namespace.clone()),
            labels: Some(crate::builders::labels(names)),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: owner_reference(cluster).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_split_a_bundle_into_certificates() {
        let a = Ca::generate("a").unwrap().pem().cert.clone();
        let b = Ca::generate("b").unwrap().pem().cert.clone();
        let blocks = pem_blocks(&format!("{a}{b}"));
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].trim(), a.trim());
        assert_eq!(blocks[1].trim(), b.trim());
        assert!(pem_blocks("").is_empty());
    }
}
