//! The external listener's Services: with `spec.listeners.external`, the
//! Service `<cluster>-external` spreads over all brokers and
//! broker `n` gets `<cluster>-external-<n>` selecting only its own pod (the
//! StatefulSet's `statefulset.kubernetes.io/pod-name` label), both of the
//! listener's type (NodePort or LoadBalancer). They expose only the
//! external listener's port: the other listeners are in-cluster ones, on
//! the ClusterIP `<cluster>-bootstrap`. With `nodePortBase`, the external
//! bootstrap Service takes `nodePortBase` and broker `n` takes
//! `nodePortBase + 1 + n`; every node port is then the operator's choice,
//! so none Kubernetes picks can take a broker's.
//!
//! Which Services exist is planned here, purely; the reconciler deletes
//! what [`stale_services`] names (brokers gone after a scale-down, or the
//! external listener removed), then applies [`external_services`] in the
//! order [`apply_order`] gives, so that a changed `nodePortBase` never asks
//! for a node port another of the cluster's Services still holds (raising
//! it by one moves each port onto the next Service's). Every Service also
//! has the cluster as owner, so deleting the cluster collects them.

use std::collections::{BTreeMap, BTreeSet};

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

/// The external bootstrap Service's name.
pub fn bootstrap_service_name(names: &ClusterNames) -> String {
    format!("{}-external", names.name)
}

/// The external bootstrap Service, then the per-broker Services of brokers
/// `0..replicas` (none without an external listener).
pub fn external_services(cluster: &KafkaCluster, replicas: i32) -> Vec<Service> {
    let Some(external) = &cluster.spec.listeners.external else { return Vec::new() };
    let names = ClusterNames::of(cluster);
    // Only the external listener: the in-cluster listeners (9092 and the
    // additional ones, all of type internal) stay off the outside-facing
    // Services.
    let service = |name: String, selector: BTreeMap<String, String>, node_port: Option<i32>| {
        let mut meta = metadata(cluster, &names, name);
        if !external.annotations.is_empty() {
            meta.annotations = Some(external.annotations.clone());
        }
        let mut external_port = port(crate::listeners::EXTERNAL_PORT_NAME, crate::listeners::EXTERNAL_LISTENER_PORT);
        external_port.node_port = node_port;
        let service_type = match external.r#type {
            ExternalListenerType::NodePort => "NodePort",
            ExternalListenerType::LoadBalancer => "LoadBalancer",
        };
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
    };
    let bootstrap_port = external.node_port_base.filter(|_| external.r#type == ExternalListenerType::NodePort);
    let bootstrap = service(bootstrap_service_name(&names), selector_labels(&names), bootstrap_port);
    let brokers = (0..replicas.max(0)).map(|id| {
        let mut selector = selector_labels(&names);
        selector.insert(POD_NAME_LABEL.into(), format!("{}-{id}", names.name));
        let mut service = service(broker_service_name(&names, id), selector, broker_node_port(cluster, id));
        service.metadata.labels.get_or_insert_with(BTreeMap::new).insert(BROKER_LABEL.into(), id.to_string());
        service
    });
    std::iter::once(bootstrap).chain(brokers).collect()
}

/// Which of the cluster's `existing` Services (name, broker label value if
/// it has the label) must go when brokers `0..replicas` keep theirs: with
/// the broker label, every one of a broker past `replicas`, all of them
/// without an external listener, and any whose label is not a broker id;
/// the external bootstrap Service without an external listener. The
/// cluster's other Services (headless, bootstrap) are not this module's.
pub fn stale_services(
    existing: &[(String, Option<String>)],
    names: &ClusterNames,
    replicas: i32,
    external: bool,
) -> Vec<String> {
    let bootstrap = bootstrap_service_name(names);
    existing
        .iter()
        .filter(|(name, broker)| match broker {
            Some(id) => {
                let id = id.parse::<i32>().ok();
                !external || id.is_none_or(|id| id < 0 || id >= replicas)
            }
            None => !external && *name == bootstrap,
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The node ports a Service asks for (or holds).
fn node_ports(service: &Service) -> BTreeSet<i32> {
    service.spec.iter().flat_map(|s| s.ports.iter().flatten()).filter_map(|p| p.node_port).collect()
}

/// The order in which to apply `wanted` when `held` gives the node ports
/// the cluster's Services hold now, by Service name: each Service comes
/// after those holding a port it asks for have let go of it. Shifting the
/// ports (a changed `nodePortBase`) always has such an order; a cycle
/// (which nothing here plans) keeps the given order for what is left, and
/// the apply that collides fails and is retried.
pub fn apply_order(wanted: &[Service], held: &BTreeMap<String, BTreeSet<i32>>) -> Vec<usize> {
    let mut held = held.clone();
    let mut left: Vec<usize> = (0..wanted.len()).collect();
    let mut order = Vec::with_capacity(wanted.len());
    while !left.is_empty() {
        let free = |i: &usize| {
            let name = wanted[*i].name_any();
            let ports = node_ports(&wanted[*i]);
            held.iter().all(|(holder, theirs)| *holder == name || theirs.is_disjoint(&ports))
        };
        let next = left.iter().position(free).unwrap_or(0);
        let i = left.remove(next);
        held.insert(wanted[i].name_any(), node_ports(&wanted[i]));
        order.push(i);
    }
    order
}

/// Deletes the stale external Services this cluster owns (found by
/// listing, the verb the chart grants beside create, patch and delete),
/// then applies the external bootstrap Service and the per-broker Services
/// of brokers `0..replicas` in [`apply_order`].
pub async fn reconcile(client: &kube::Client, cluster: &KafkaCluster, replicas: i32) -> Result<(), ClusterError> {
    let names = ClusterNames::of(cluster);
    let api: Api<Service> = Api::namespaced(client.clone(), &names.namespace);
    let selector = format!("app.kubernetes.io/instance={}", names.name);
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
    let stale = stale_services(&ours, &names, replicas, external);
    for name in &stale {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(cluster = %names.name, service = %name, "deleted an external listener's Service"),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(ClusterError::Kube {
                    action: "delete",
                    kind: "Service".into(),
                    name: name.clone(),
                    source,
                });
            }
        }
    }
    let held: BTreeMap<String, BTreeSet<i32>> =
        list.items.iter().filter(|s| !stale.contains(&s.name_any())).map(|s| (s.name_any(), node_ports(s))).collect();
    let wanted = external_services(cluster, replicas);
    for i in apply_order(&wanted, &held) {
        apply::<Service>(client, &names.namespace, &wanted[i]).await?;
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
        let services = external_services(&c, 3);
        assert_eq!(services.len(), 4);
        let bootstrap = &services[0];
        assert_eq!(bootstrap.metadata.name.as_deref(), Some("demo-external"));
        let spec = bootstrap.spec.as_ref().expect("a spec");
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        let ports: Vec<(i32, Option<i32>)> = spec.ports.iter().flatten().map(|p| (p.port, p.node_port)).collect();
        assert_eq!(ports, [(9099, Some(31000))], "outside clients bootstrap at the base, on the external listener");
        assert!(!spec.selector.as_ref().expect("a selector").contains_key(POD_NAME_LABEL), "every broker");
        assert!(bootstrap.metadata.labels.as_ref().is_some_and(|l| !l.contains_key(BROKER_LABEL)));
        let s = &services[3];
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
        let services = external_services(&c, 2);
        assert_eq!(services.len(), 3, "the external bootstrap and one per broker");
        for service in &services {
            let spec = service.spec.as_ref().expect("a spec");
            assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
            let ports: Vec<(i32, Option<i32>)> = spec.ports.iter().flatten().map(|p| (p.port, p.node_port)).collect();
            assert_eq!(ports, [(9099, None)]);
            assert_eq!(service.metadata.annotations.as_ref().and_then(|a| a.get("a")).map(String::as_str), Some("b"));
        }
        assert!(external_services(&cluster(serde_json::json!({})), 3).is_empty());
    }

    fn names_in(order: &[usize], services: &[Service]) -> Vec<String> {
        order.iter().map(|i| services[*i].name_any()).collect()
    }

    #[test]
    fn a_changed_node_port_base_is_applied_in_an_order_where_every_port_is_free() {
        let at = |base: i32| {
            external_services(&cluster(serde_json::json!({"external": {"type": "NodePort", "nodePortBase": base}})), 2)
        };
        let held = |services: &[Service]| -> BTreeMap<String, BTreeSet<i32>> {
            services.iter().map(|s| (s.name_any(), node_ports(s))).collect()
        };
        let (old, up, down) = (at(31000), at(31001), at(30999));
        // Raised by one: each Service asks for the next one's port.
        let order = names_in(&apply_order(&up, &held(&old)), &up);
        assert_eq!(order, ["demo-external-1", "demo-external-0", "demo-external"]);
        // Lowered by one: each asks for the previous one's.
        assert_eq!(
            names_in(&apply_order(&down, &held(&old)), &down),
            ["demo-external", "demo-external-0", "demo-external-1"]
        );
        // Unchanged, new, or far away: the planned order.
        let planned = ["demo-external", "demo-external-0", "demo-external-1"];
        assert_eq!(names_in(&apply_order(&old, &held(&old)), &old), planned);
        assert_eq!(names_in(&apply_order(&old, &BTreeMap::new()), &old), planned);
        assert_eq!(names_in(&apply_order(&at(32000), &held(&old)), &old), planned);
        // Another Service of the cluster holding a wanted port goes first
        // when it is wanted too, and a swap (no order frees it) keeps the plan.
        let mut swapped = held(&old);
        swapped.insert("demo-external".into(), BTreeSet::from([31001]));
        swapped.insert("demo-external-0".into(), BTreeSet::from([31000]));
        assert_eq!(
            names_in(&apply_order(&old, &swapped), &old),
            ["demo-external-1", "demo-external", "demo-external-0"]
        );
    }

    #[test]
    fn services_of_brokers_gone_or_of_a_removed_listener_are_stale() {
        let names = ClusterNames { name: "x".into(), namespace: "ns".into() };
        let existing: Vec<(String, Option<String>)> = [("x-0", Some("0")), ("x-1", Some("1")), ("x-2", Some("2"))]
            .into_iter()
            .chain([("odd", Some("two")), ("x-external", None), ("x-bootstrap", None), ("x-brokers", None)])
            .map(|(n, id)| (n.to_string(), id.map(str::to_string)))
            .collect();
        assert_eq!(stale_services(&existing, &names, 2, true), ["x-2", "odd"]);
        assert_eq!(stale_services(&existing, &names, 3, true), ["odd"]);
        assert_eq!(
            stale_services(&existing, &names, 3, false),
            ["x-0", "x-1", "x-2", "odd", "x-external"],
            "no external listener: all its Services go, the in-cluster ones stay"
        );
    }
}
