//! Each broker's external address, as the brokers advertise it on the
//! external listener: the ConfigMap `<cluster>-advertised` holds
//! `broker-<n>.properties` for every broker `n` (the file the broker's
//! `--advertised-overrides` names, mounted at [`ADVERTISED_DIR`]; the
//! kubelet updates the mounted files when the ConfigMap changes and the
//! broker applies them without a restart).
//!
//! Where the address comes from:
//!
//! - NodePort: the node broker `n` runs on, its `ExternalIP` else its
//!   `InternalIP` (the pod's `status.hostIP` when the Node cannot be read,
//!   e.g. an operator limited to namespaces), and the node port of the
//!   `external` port of `<cluster>-external-<n>` (`nodePortBase + 1 + n`
//!   when set, else the one Kubernetes picked);
//! - LoadBalancer: the first `status.loadBalancer.ingress` entry of
//!   `<cluster>-external-<n>` (its IP, else its hostname) and the external
//!   listener's port.
//!
//! Until a broker's address is known its file says so and names none: the
//! broker is then not advertised on the external listener at all, never
//! advertised at a wrong host.
//!
//! [`address_file`] and [`config_map`] are pure; [`reconcile`] reads the
//! Services, pods and nodes and applies the ConfigMap.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Node, NodeAddress, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use strom_crds::{ExternalListenerType, KafkaCluster};

use crate::builders::{ClusterNames, metadata};
use crate::cluster::{ClusterError, apply};
use crate::listeners::{EXTERNAL_LISTENER, EXTERNAL_LISTENER_PORT, EXTERNAL_PORT_NAME};

/// Where the broker pods see `<cluster>-advertised`.
pub const ADVERTISED_DIR: &str = "/etc/strom-advertised";
/// The pod volume showing `<cluster>-advertised`.
pub const ADVERTISED_VOLUME: &str = "advertised";

/// The ConfigMap of cluster `names`' external addresses.
pub fn config_map_name(names: &ClusterNames) -> String {
    format!("{}-advertised", names.name)
}

/// Broker `id`'s key in the ConfigMap (its file name).
pub fn file_name(id: i32) -> String {
    format!("broker-{id}.properties")
}

/// The brokers' `--advertised-overrides` value (the kubelet expands
/// `$(STROM_NODE_ID)` in container arguments).
pub fn overrides_flag() -> String {
    format!("{EXTERNAL_LISTENER}={ADVERTISED_DIR}/broker-$(STROM_NODE_ID).properties")
}

/// The text of a broker's file: its external address, or none yet.
pub fn address_file(address: Option<&str>) -> String {
    match address {
        Some(a) => format!("advertised.listeners={EXTERNAL_LISTENER}://{a}\n"),
        None => "# no external address known yet: not advertised on the external listener\nadvertised.listeners=\n"
            .to_string(),
    }
}

/// `host:port` of a NodePort broker: the node's ExternalIP, else its
/// InternalIP, else `host_ip`; `None` without a host or a node port.
pub fn node_port_address(
    node: Option<&[NodeAddress]>,
    host_ip: Option<&str>,
    node_port: Option<i32>,
) -> Option<String> {
    let of = |kind: &str| node?.iter().find(|a| a.type_ == kind && !a.address.is_empty()).map(|a| a.address.clone());
    let host = of("ExternalIP").or_else(|| of("InternalIP")).or_else(|| host_ip.map(str::to_string))?;
    let port = node_port.filter(|p| (1..=65535).contains(p))?;
    Some(join(&host, port))
}

/// `host:port` of a LoadBalancer broker: its Service's first ingress (IP,
/// else hostname) and the external listener's port.
pub fn load_balancer_address(service: &Service) -> Option<String> {
    let ingress = service.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?;
    let host = ingress.ip.clone().filter(|h| !h.is_empty()).or_else(|| ingress.hostname.clone())?;
    (!host.is_empty()).then(|| join(&host, EXTERNAL_LISTENER_PORT))
}

/// The node port of a Service's external listener port.
pub fn external_node_port(service: &Service) -> Option<i32> {
    let ports = service.spec.as_ref()?.ports.as_ref()?;
    ports.iter().find(|p| p.name.as_deref() == Some(EXTERNAL_PORT_NAME))?.node_port
}

/// `host:port`, an IPv6 address in brackets.
fn join(host: &str, port: i32) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The ConfigMap of every broker's file, `addresses[n]` broker `n`'s.
pub fn config_map(cluster: &KafkaCluster, addresses: &[Option<String>]) -> ConfigMap {
    let names = ClusterNames::of(cluster);
    let data = addresses.iter().enumerate().map(|(id, a)| (file_name(id as i32), address_file(a.as_deref())));
    ConfigMap {
        metadata: metadata(cluster, &names, config_map_name(&names)),
        data: Some(data.collect()),
        ..ConfigMap::default()
    }
}

fn kube_err(action: &'static str, kind: &str, name: String) -> impl FnOnce(kube::Error) -> ClusterError {
    let kind = kind.to_string();
    move |source| ClusterError::Kube { action, kind, name, source }
}

/// Finds each broker's external address and applies `<cluster>-advertised`
/// for brokers `0..replicas`. Nothing without an external listener (the
/// ConfigMap, unused then, goes with the cluster).
pub async fn reconcile(client: &kube::Client, cluster: &KafkaCluster, replicas: i32) -> Result<(), ClusterError> {
    let Some(external) = &cluster.spec.listeners.external else { return Ok(()) };
    let names = ClusterNames::of(cluster);
    let ns = &names.namespace;
    let selector = format!("app.kubernetes.io/instance={}", names.name);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let services = services
        .list(&ListParams::default().labels(&format!("{selector},{}", crate::external::BROKER_LABEL)))
        .await
        .map_err(kube_err("list", "Service", selector.clone()))?;
    let service_of: BTreeMap<String, &Service> = services.items.iter().map(|s| (s.name_any(), s)).collect();
    let pods: BTreeMap<String, Pod> = match external.r#type {
        ExternalListenerType::LoadBalancer => BTreeMap::new(),
        ExternalListenerType::NodePort => {
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            let list = api.list(&ListParams::default().labels(&selector)).await;
            list.map_err(kube_err("list", "Pod", selector.clone()))?
                .items
                .into_iter()
                .map(|p| (p.name_any(), p))
                .collect()
        }
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let mut addresses = Vec::new();
    for id in 0..replicas.max(0) {
        let service = service_of.get(&crate::external::broker_service_name(&names, id)).copied();
        let address = match external.r#type {
            ExternalListenerType::LoadBalancer => service.and_then(load_balancer_address),
            ExternalListenerType::NodePort => {
                let pod = pods.get(&format!("{}-{id}", names.name));
                let node_name = pod.and_then(|p| p.spec.as_ref()?.node_name.clone());
                let host_ip = pod.and_then(|p| p.status.as_ref()?.host_ip.clone());
                let node = match &node_name {
                    Some(n) => match nodes.get_opt(n).await {
                        Ok(node) => node,
                        Err(e) => {
                            tracing::debug!(node = %n, error = %e, "cannot read the node; using the pod's hostIP");
                            None
                        }
                    },
                    None => None,
                };
                let node_addresses = node.as_ref().and_then(|n| n.status.as_ref()?.addresses.as_deref());
                node_port_address(node_addresses, host_ip.as_deref(), service.and_then(external_node_port))
            }
        };
        addresses.push(address);
    }
    apply::<ConfigMap>(client, ns, &config_map(cluster, &addresses)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(kind: &str, a: &str) -> NodeAddress {
        NodeAddress { type_: kind.into(), address: a.into() }
    }

    #[test]
    fn a_node_port_broker_is_at_its_nodes_external_else_internal_address() {
        let both = [address("InternalIP", "10.0.0.5"), address("ExternalIP", "203.0.113.5")];
        assert_eq!(node_port_address(Some(&both), Some("10.0.0.5"), Some(31001)).as_deref(), Some("203.0.113.5:31001"));
        let internal = [address("Hostname", "n1"), address("InternalIP", "10.0.0.5")];
        assert_eq!(node_port_address(Some(&internal), None, Some(31001)).as_deref(), Some("10.0.0.5:31001"));
        assert_eq!(node_port_address(None, Some("fd00::5"), Some(31001)).as_deref(), Some("[fd00::5]:31001"));
        assert_eq!(node_port_address(None, None, Some(31001)), None, "not scheduled yet");
        assert_eq!(node_port_address(Some(&both), None, None), None, "no node port yet");
    }

    #[test]
    fn a_load_balancer_broker_is_at_its_ingress_once_set() {
        let mut service: Service = serde_json::from_value(serde_json::json!({"metadata": {"name": "s"}})).unwrap();
        assert_eq!(load_balancer_address(&service), None);
        service = serde_json::from_value(serde_json::json!({"metadata": {"name": "s"},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb-1.example.com"}]}}}))
        .unwrap();
        assert_eq!(load_balancer_address(&service).as_deref(), Some("lb-1.example.com:9099"));
        service = serde_json::from_value(serde_json::json!({"metadata": {"name": "s"},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "hostname": "x"}]}}}))
        .unwrap();
        assert_eq!(load_balancer_address(&service).as_deref(), Some("198.51.100.7:9099"));
    }

    #[test]
    fn every_broker_gets_a_file_naming_its_address_or_none() {
        let cluster: KafkaCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "u1"},
            "spec": {"replicas": 2, "listeners": {"external": {"type": "NodePort"}}},
        }))
        .unwrap();
        let cm = config_map(&cluster, &[Some("203.0.113.5:31001".into()), None]);
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-advertised"));
        assert!(cm.metadata.owner_references.as_ref().is_some_and(|o| o[0].uid == "u1"), "owned by the cluster");
        let data = cm.data.expect("data");
        assert_eq!(data["broker-0.properties"], "advertised.listeners=K8S_EXTERNAL://203.0.113.5:31001\n");
        assert!(data["broker-1.properties"].ends_with("\nadvertised.listeners=\n"), "{}", data["broker-1.properties"]);
        assert_eq!(overrides_flag(), "K8S_EXTERNAL=/etc/strom-advertised/broker-$(STROM_NODE_ID).properties");
    }
}
