//! The external listener's per-broker Services: with
//! `spec.listeners.external`, broker `n` gets the Service
//! `<cluster>-external-<n>` of the listener's type (NodePort or
//! LoadBalancer) selecting only its own pod (the StatefulSet's
//! `statefulset.kubernetes.io/pod-name` label), beside the bootstrap
//! Service that spreads over all brokers. A broker's Service exposes only
//! the external listener's port (the other listeners are in-cluster ones).
//! With `nodePortBase`, the bootstrap Service takes `nodePortBase` for the
//! external port and broker `n` takes `nodePortBase + 1 + n`.
//!
//! Which Services exist is planned here, purely; the reconciler applies
//! [`broker_services`] and deletes what [`stale_broker_services`] names
//! (brokers gone after a scale-down, or the external listener removed).
//! Every Service also has the cluster as owner, so deleting the cluster
//! collects them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use strom_crds::{ExternalListenerType, KafkaCluster};

use crate::builders::{ClusterNames, metadata, port, selector_labels};
use crate::cluster::{ClusterError, apply};

/// The label naming the broker a per-broker Service reaches.
pub const BROKER_LABEL: &str = "strom.dev/external-broker";
/// The StatefulSet controller's label holding each pod's name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// The per-broker Service of broker `id`.
pub fn broker_service_name(names: &ClusterNames, id: i32) -> String {
    format!("{}-external-{id}", names.name)
}

/// The node port of broker `id`'s Kafka port, when `nodePortBase` is set.
pub fn broker_node_port(cluster: &KafkaCluster, id: i32) -> Option<i32> {
    let external = cluster.spec.listeners.external.as_ref()?;
    (external.r#type == ExternalListenerType::NodePort).then_some(external.node_port_base? + 1 + id)
}

/// The per-broker Services of brokers `0..replicas` (none without an
/// external listener).
pub fn broker_services(cluster: &KafkaCluster, replicas: i32) -> Vec<Service> {
    let Some(external) = &cluster.spec.listeners.external else { return Vec::new() };
    let names = ClusterNames::of(cluster);
    let service_type = match external.r#type {
        ExternalListenerType::NodePort => "NodePort",
        ExternalListenerType::LoadBalancer => "LoadBalancer",
    };
    (0..replicas.max(0))
        .map(|id| {
            let mut meta = metadata(cluster, &names, broker_service_name(&names, id));
            meta.labels.get_or_insert_with(BTreeMap::new).insert(BROKER_LABEL.into(), id.to_string());
            if !external.annotations.is_empty() {
                meta.annotations = Some(external.annotations.clone());
            }
            let mut selector = selector_labels(&names);
            selector.insert(POD_NAME_LABEL.into(), format!("{}-{id}", names.name));
            // Only the external listener: the in-cluster listeners (9092 and
            // the additional ones, all of type internal) stay off the
            // outside-facing Service.
            let mut external_port =
                port(crate::listeners::EXTERNAL_PORT_NAME, crate::listeners::EXTERNAL_LISTENER_PORT);
            external_port.node_port = broker_node_port(cluster, id);
            Service {
                metadata: meta,
                spec: Some(ServiceSpec {
                    type_: Some(service_type.into()),
                    selector: Some(selector),
                    ports: Some(vec![external_port]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            }
        })
        .collect()
}

/// Which of the `existing` per-broker Services (name, broker label value)
/// must go when brokers `0..replicas` keep theirs: every one of a broker
/// past `replicas`, all of them without an external listener, and any whose
/// label is not a broker id.
pub fn stale_broker_services(existing: &[(String, Option<String>)], replicas: i32, external: bool) -> Vec<String> {
    existing
        .iter()
        .filter(|(_, id)| {
            let id = id.as_deref().and_then(|v| v.parse::<i32>().ok());
            !external || id.is_none_or(|id| id < 0 || id >= replicas)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Applies the per-broker Services of brokers `0..replicas` and deletes the
/// stale ones this cluster owns.
pub async fn reconcile(client: &kube::Client, cluster: &KafkaCluster, replicas: i32) -> Result<(), ClusterError> {
    let names = ClusterNames::of(cluster);
    let api: Api<Service> = Api::namespaced(client.clone(), &names.namespace);
    for service in broker_services(cluster, replicas) {
        apply::<Service>(client, &names.namespace, &service).await?;
    }
    let selector = format!("app.kubernetes.io/instance={},{BROKER_LABEL}", names.name);
    let list = api.list(&ListParams::default().labels(&selector)).await.map_err(|source| ClusterError::Kube {
        action: "list",
        kind: "Service".into(),
        name: selector.clone(),
        source,
    })?;
    let uid = cluster.metadata.uid.as_deref();
    let ours: Vec<(String, Option<String>)> = list
        .items
        .iter()
        .filter(|s| s.owner_references().iter().any(|o| Some(o.uid.as_str()) == uid))
        .map(|s| (s.name_any(), s.labels().get(BROKER_LABEL).cloned()))
        .collect();
    let external = cluster.spec.listeners.external.is_some();
    for name in stale_broker_services(&ours, replicas, external) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(cluster = %names.name, service = %name, "deleted a per-broker Service"),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(ClusterError::Kube { action: "delete", kind: "Service".into(), name, source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(listeners: serde_json::Value) -> KafkaCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "u1"},
            "spec": {"replicas": 3, "listeners": listeners},
        }))
        .expect("a KafkaCluster")
    }

    #[test]
    fn node_port_brokers_get_their_own_service_and_node_port() {
        let c = cluster(serde_json::json!({"external": {"type": "NodePort", "nodePortBase": 31000},
            "additional": [{"name": "tls", "port": 9095, "tls": true}]}));
        let services = broker_services(&c, 3);
        assert_eq!(services.len(), 3);
        let s = &services[2];
        assert_eq!(s.metadata.name.as_deref(), Some("demo-external-2"));
        assert_eq!(s.metadata.labels.as_ref().and_then(|l| l.get(BROKER_LABEL)).map(String::as_str), Some("2"));
        assert!(s.metadata.owner_references.as_ref().is_some_and(|o| o[0].uid == "u1"), "owned by the cluster");
        let spec = s.spec.as_ref().expect("a spec");
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        let selector = spec.selector.as_ref().expect("a selector");
        assert_eq!(selector.get(POD_NAME_LABEL).map(String::as_str), Some("demo-2"));
        assert_eq!(selector.get("app.kubernetes.io/instance").map(String::as_str), Some("demo"));
        let ports = spec.ports.as_ref().expect("ports");
        let node_ports: Vec<(&str, i32, Option<i32>)> =
            ports.iter().map(|p| (p.name.as_deref().unwrap_or(""), p.port, p.node_port)).collect();
        assert_eq!(
            node_ports,
            [("external", 9099, Some(31003))],
            "only the external listener, at base + 1 + id: base is the bootstrap's; the internal listeners stay inside"
        );
        assert_eq!(broker_node_port(&c, 0), Some(31001));
    }

    #[test]
    fn load_balancer_brokers_get_a_load_balancer_each_and_no_listener_none() {
        let c = cluster(serde_json::json!({"external": {"type": "LoadBalancer", "annotations": {"a": "b"}}}));
        let services = broker_services(&c, 2);
        assert_eq!(services.len(), 2);
        let spec = services[1].spec.as_ref().expect("a spec");
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert!(spec.ports.as_ref().expect("ports").iter().all(|p| p.node_port.is_none()));
        assert_eq!(services[1].metadata.annotations.as_ref().and_then(|a| a.get("a")).map(String::as_str), Some("b"));
        assert!(broker_services(&cluster(serde_json::json!({})), 3).is_empty());
    }

    #[test]
    fn services_of_brokers_gone_or_of_a_removed_listener_are_stale() {
        let existing: Vec<(String, Option<String>)> = [("x-0", Some("0")), ("x-1", Some("1")), ("x-2", Some("2"))]
            .into_iter()
            .chain([("odd", Some("two")), ("bare", None)])
            .map(|(n, id)| (n.to_string(), id.map(str::to_string)))
            .collect();
        assert_eq!(stale_broker_services(&existing, 2, true), ["x-2", "odd", "bare"]);
        assert_eq!(stale_broker_services(&existing, 3, true), ["odd", "bare"]);
        assert_eq!(stale_broker_services(&existing, 3, false).len(), 5, "no external listener: all go");
    }
}
