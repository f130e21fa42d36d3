//! What every reconciliation shares: the Kubernetes client, the event
//! recorder, metrics, and where each cluster's Admin API is reached.
//!
//! In a Kubernetes cluster the operator reaches brokers at their pod DNS
//! names under the headless Service. For tests and out-of-cluster
//! development an override maps `namespace/name` of a KafkaCluster to broker
//! addresses the operator can reach (e.g. brokers running as local processes),
//! and `--admin-via-pod-ip` dials every broker at its pod's `status.podIP`
//! (an operator outside the cluster network that reaches the pods' addresses
//! but not their DNS names, as with `scripts/local-k8s.sh`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::reflector::Store;
use strom_crds::KafkaTopic;

use crate::admin::{AdminError, ClusterAdmin};
use crate::builders::ClusterNames;
use crate::events::EventPublisher;
use crate::internal_ca::{IdentityCache, operator_tls};
use crate::telemetry::Metrics;

/// Shared state of the controllers.
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// Publishes Kubernetes Events about the resources.
    pub events: EventPublisher,
    /// Reconciliation metrics.
    pub metrics: Metrics,
    /// `namespace/name` → broker internal addresses, replacing pod DNS names.
    pub admin_overrides: BTreeMap<String, Vec<String>>,
    /// Dial brokers at their pods' `status.podIP` rather than their DNS names.
    pub admin_via_pod_ip: bool,
    /// How often a settled resource is compared with the cluster again (drift).
    pub resync: std::time::Duration,
    /// The topic controllers' caches of KafkaTopics (one per watched scope).
    topic_stores: Mutex<Vec<Store<KafkaTopic>>>,
    /// The operator's client identity per cluster (see `internal_ca`).
    pub operator_identities: IdentityCache,
    /// Where the operator's pods run (the NetworkPolicies let them in).
    pub operator_pods: crate::builders::OperatorPods,
}

/// A malformed `--admin-override` value.
#[derive(Debug, thiserror::Error)]
#[error("invalid --admin-override `{value}`: {reason}; expected NAMESPACE/NAME=HOST:PORT[,HOST:PORT...]")]
pub struct OverrideError {
    value: String,
    reason: &'static str,
}

/// Parses `NAMESPACE/NAME=HOST:PORT[,HOST:PORT...]`.
pub fn parse_admin_override(value: &str) -> Result<(String, Vec<String>), OverrideError> {
    let err = |reason| OverrideError { value: value.to_string(), reason };
    let (cluster, addresses) = value.split_once('=').ok_or_else(|| err("no `=`"))?;
    let (namespace, name) = cluster.split_once('/').ok_or_else(|| err("the cluster is not NAMESPACE/NAME"))?;
    if namespace.is_empty() || name.is_empty() {
        return Err(err("empty namespace or name"));
    }
    let addresses: Vec<String> = addresses.split(',').map(|a| a.trim().to_string()).collect();
    for a in &addresses {
        match a.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(err("an address is not HOST:PORT")),
        }
    }
    Ok((cluster.to_string(), addresses))
}

/// Internal addresses of brokers `0..replicas` at their pods' IPs, a pod
/// without one at its DNS name (pure).
pub fn pod_ip_addresses(names: &ClusterNames, replicas: i32, ips: &BTreeMap<String, String>) -> Vec<String> {
    let port = crate::builders::INTERNAL_PORT;
    let dns = names.internal_addresses(replicas);
    (0..replicas)
        .zip(dns)
        .map(|(ordinal, dns)| match ips.get(&format!("{}-{ordinal}", names.name)) {
            // An IPv6 address needs brackets before the port.
            Some(ip) if ip.contains(':') => format!("[{ip}]:{port}"),
            Some(ip) => format!("{ip}:{port}"),
            None => dns,
        })
        .collect()
}

impl Context {
    /// A context with `client`, reporting events as `strom-operator` / `instance`.
    pub fn new(
        client: kube::Client,
        instance: String,
        metrics: Metrics,
        admin_overrides: BTreeMap<String, Vec<String>>,
        admin_via_pod_ip: bool,
        resync: std::time::Duration,
        operator_pods: crate::builders::OperatorPods,
    ) -> Context {
        Context {
            events: EventPublisher::new(client.clone(), crate::FIELD_MANAGER.into(), instance),
            client,
            metrics,
            admin_overrides,
            admin_via_pod_ip,
            resync,
            topic_stores: Mutex::default(),
            operator_identities: IdentityCache::default(),
            operator_pods,
        }
    }

    /// Registers a topic controller's cache of KafkaTopics.
    pub fn add_topic_store(&self, store: Store<KafkaTopic>) {
        self.topic_stores.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(store);
    }

    /// Every cached KafkaTopic in `namespace`, once the caches hold a first complete list.
    pub async fn cached_topics(&self, namespace: &str) -> Vec<Arc<KafkaTopic>> {
        let stores: Vec<Store<KafkaTopic>> =
            self.topic_stores.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let mut topics = Vec::new();
        for store in stores {
            // Only fails when the controller (the writer) is gone, i.e. during shutdown.
            if store.wait_until_ready().await.is_ok() {
                topics.extend(store.state().into_iter().filter(|t| t.metadata.namespace.as_deref() == Some(namespace)));
            }
        }
        topics
    }

    /// The Admin API client of a cluster with `replicas` brokers, calling
    /// with the operator's identity of that cluster's CA.
    pub async fn admin_for(&self, names: &ClusterNames, replicas: i32) -> Result<ClusterAdmin, AdminError> {
        let tls = operator_tls(self, names).await.map_err(|e| AdminError::NoIdentity(e.to_string()))?;
        let key = format!("{}/{}", names.namespace, names.name);
        Ok(match self.admin_overrides.get(&key) {
            Some(addresses) => ClusterAdmin::new(addresses.clone(), tls),
            None if self.admin_via_pod_ip => {
                ClusterAdmin::new(pod_ip_addresses(names, replicas, &self.pod_ips(names).await), tls)
            }
            None => ClusterAdmin::new(names.internal_addresses(replicas), tls),
        })
    }

    /// Pod name → `status.podIP` of the cluster's broker pods (none when
    /// the list fails: the DNS names are dialled then, and fail visibly).
    async fn pod_ips(&self, names: &ClusterNames) -> BTreeMap<String, String> {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), &names.namespace);
        let selector = crate::builders::selector_labels(names)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        match pods.list(&kube::api::ListParams::default().labels(&selector)).await {
            Ok(list) => list
                .items
                .into_iter()
                .filter_map(|p| Some((p.metadata.name?, p.status?.pod_ip.filter(|ip| !ip.is_empty())?)))
                .collect(),
            Err(e) => {
                tracing::warn!(namespace = %names.namespace, cluster = %names.name, error = %e, "cannot list broker pods for their addresses");
                BTreeMap::new()
            }
        }
    }

    /// Publishes an Event about `object`; failing to publish is logged, never fatal.
    pub async fn event(&self, object: &ObjectReference, warning: bool, reason: &str, action: &str, note: String) {
        if let Err(e) = self.events.publish(object, warning, reason, action, &note).await {
            tracing::warn!(reason, error = %e, "cannot publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ips_replace_the_dns_names_of_pods_that_have_one() {
        let names = ClusterNames { name: "demo".into(), namespace: "team".into() };
        let ips = BTreeMap::from([
            ("demo-0".to_string(), "127.100.0.10".to_string()),
            ("demo-2".to_string(), "fd00::7".to_string()),
            ("other-1".to_string(), "127.9.9.9".to_string()),
        ]);
        assert_eq!(
            pod_ip_addresses(&names, 3, &ips),
            vec!["127.100.0.10:9093", "demo-1.demo-brokers.team.svc:9093", "[fd00::7]:9093"]
        );
    }

    #[test]
    fn admin_override_parses_and_names_its_mistakes() {
        assert_eq!(
            parse_admin_override("team/events=127.0.0.1:19093,127.0.0.1:19193").unwrap(),
            ("team/events".to_string(), vec!["127.0.0.1:19093".to_string(), "127.0.0.1:19193".to_string()])
        );
        for bad in ["events=127.0.0.1:1", "team/events", "team/events=localhost", "/x=h:1", "a/b=h:99999"] {
            let e = parse_admin_override(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("NAMESPACE/NAME=HOST:PORT"), "{e}");
        }
    }
}
