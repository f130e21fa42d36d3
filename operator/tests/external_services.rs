//! The external listener's Services against the real control plane, with
//! the pod runner running the broker pods as local processes and the
//! operator as a process: a two-broker cluster with a NodePort external
//! listener gets `<cluster>-external` (node port `nodePortBase`)
//! and `<cluster>-external-<n>` per broker (node port `nodePortBase + 1 +
//! n`), all of type NodePort with only the external listener's port 9099,
//! owned by the cluster, each broker's selecting exactly that broker's pod;
//! `<cluster>-bootstrap` stays ClusterIP, so no Service of the cluster has
//! a node port the operator did not choose (one Kubernetes picked for an
//! in-cluster port could take a broker's); the listener certificate names
//! them; each broker is advertised on the external listener at its node's
//! address and node port (`<cluster>-advertised`, then Metadata on 9099);
//! raising `nodePortBase` by one (each Service's new port is the next
//! one's old) moves every node port; removing the external listener
//! deletes the external Services. (Which
//! Services a scale-down deletes is `external::stale_services`'s
//! unit test: here the scale-down would wait for the StatefulSet to settle,
//! which it does not after the roll this cluster gets at creation.) The
//! namespace starts with a bootstrap Service as an older operator left it
//! (NodePort, the base on 9099): the upgrade makes it ClusterIP.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, eventually, plane_with_nodes};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use strom_crds::KafkaCluster;

const NS: &str = "external";
const CLUSTER: &str = "events";
const WAIT: Duration = Duration::from_secs(180);
const BASE: i32 = 31500;
const TLS_PORT: i32 = 9095;

/// The node ports of all the cluster's Services, sorted.
async fn cluster_node_ports(services: &Api<Service>) -> Option<Vec<i32>> {
    let list = services.list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={CLUSTER}"))).await;
    let mut ports: Vec<i32> = list
        .ok()?
        .items
        .into_iter()
        .flat_map(|s| s.spec.and_then(|s| s.ports).unwrap_or_default())
        .filter_map(|p| p.node_port)
        .collect();
    ports.sort_unstable();
    Some(ports)
}

/// The DNS SANs of the listener certificate in `<cluster>-broker-certs`.
async fn listener_sans(secrets: &Api<Secret>) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let secret = secrets.get_opt(&format!("{CLUSTER}-broker-certs")).await.ok()??;
    let pem = secret.data?.remove("listener.keystore.pem")?.0;
    let block =
        x509_parser::pem::Pem::iter_from_buffer(&pem).filter_map(Result::ok).find(|b| b.label == "CERTIFICATE")?;
    let cert = block.parse_x509().ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let names = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::DNSName(d) => Some(d.to_string()),
        _ => None,
    });
    Some(names.collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broker_gets_its_own_external_service_while_the_listener_exists() {
    let (plane, client) = plane_with_nodes(NS).await;
    let _runner = PodRunner::start(&plane, NS, CLUSTER);
    let _operator = OperatorProcess::for_runner(&plane, &_runner, NS, CLUSTER, 2, &["--resync-seconds", "2"]);
    // The bootstrap Service as an operator before this one left it: of the
    // external type, the external port at the base and 9092 at a node port
    // Kubernetes picked. The upgrade must free the base for `-external`.
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let old = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": format!("{CLUSTER}-bootstrap"), "labels": { "app.kubernetes.io/instance": CLUSTER } },
        "spec": {
            "type": "NodePort",
            "selector": { "app.kubernetes.io/instance": CLUSTER },
            "ports": [
                { "name": "kafka", "port": 9092, "targetPort": 9092, "protocol": "TCP" },
                { "name": "external", "port": 9099, "targetPort": 9099, "protocol": "TCP", "nodePort": BASE },
            ],
        },
    });
    let params = PatchParams::apply(strom_operator::FIELD_MANAGER).force();
    services.patch(&format!("{CLUSTER}-bootstrap"), &params, &Patch::Apply(&old)).await.expect("an old bootstrap");
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "replicas": 2,
        "storage": { "size": "1Gi" },
        "listeners": {
            "external": { "type": "NodePort", "nodePortBase": BASE, "annotations": { "example.com/lb": "x" } },
            "additional": [{ "name": "tls", "port": TLS_PORT, "tls": true }],
        },
    });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;
    let uid = clusters.get(CLUSTER).await.expect("the cluster").metadata.uid.expect("a uid");

    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let bootstrap = services.get(&format!("{CLUSTER}-bootstrap")).await.expect("the bootstrap Service");
    let spec = bootstrap.spec.expect("a spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"), "in-cluster clients' Service");
    assert!(spec.ports.iter().flatten().all(|p| p.node_port.is_none()), "{:?}", spec.ports);
    let name = format!("{CLUSTER}-external");
    let external_bootstrap =
        eventually(&format!("Service {name}"), WAIT, || async { services.get_opt(&name).await.ok().flatten() }).await;
    assert!(external_bootstrap.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true)));
    let spec = external_bootstrap.spec.expect("a spec");
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let ports: Vec<(i32, Option<i32>)> = spec.ports.expect("ports").iter().map(|p| (p.port, p.node_port)).collect();
    assert_eq!(ports, [(9099, Some(BASE))], "outside clients bootstrap at the base, on the external listener alone");
    for id in 0..2 {
        let name = format!("{CLUSTER}-external-{id}");
        let service =
            eventually(&format!("Service {name}"), WAIT, || async { services.get_opt(&name).await.ok().flatten() })
                .await;
        assert!(service.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true)), "owned");
        assert_eq!(service.annotations().get("example.com/lb").map(String::as_str), Some("x"));
        let spec = service.spec.expect("a spec");
        assert_eq!(spec.type_.as_deref(), Some("NodePort"), "{name}");
        let ports: Vec<(i32, Option<i32>)> = spec.ports.expect("ports").iter().map(|p| (p.port, p.node_port)).collect();
        assert_eq!(ports, [(9099, Some(BASE + 1 + id))], "{name}: only the external listener's port: {ports:?}");
        let selector = spec.selector.expect("a selector");
        let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let selected = pods.list(&ListParams::default().labels(&labels.join(","))).await.expect("list pods");
        let selected: Vec<String> = selected.items.iter().map(|p| p.name_any()).collect();
        assert_eq!(selected, [format!("{CLUSTER}-{id}")], "{name} selects its broker's pod alone");
    }
    // Every node port of the cluster's Services is one the operator chose.
    let node_ports = cluster_node_ports(&services).await.expect("list Services");
    assert_eq!(node_ports, [BASE, BASE + 1, BASE + 2], "no node port Kubernetes picked");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let sans = eventually("the listener certificate to name the per-broker Services", WAIT, || async {
        let sans = listener_sans(&secrets).await?;
        sans.contains(&format!("{CLUSTER}-external-1.{NS}.svc")).then_some(sans)
    })
    .await;
    assert!(sans.contains(&format!("{CLUSTER}-external-0.{NS}.svc.cluster.local")), "{sans:?}");
    assert!(sans.contains(&format!("{CLUSTER}-bootstrap.{NS}.svc")), "{sans:?}");
    assert!(sans.contains(&format!("{CLUSTER}-external.{NS}.svc")), "{sans:?}");

    // Each broker is advertised at its node's address (the pod runner's
    // nodes have InternalIP 127.0.0.1) and its own node port.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let want: BTreeMap<i32, String> = (0..2).map(|id| (id, format!("127.0.0.1:{}", BASE + 1 + id))).collect();
    eventually("each broker's file to name its node and node port", WAIT, || async {
        let files = config_maps.get_opt(&format!("{CLUSTER}-advertised")).await.ok()??.data?;
        want.iter()
            .all(|(id, a)| {
                files.get(&format!("broker-{id}.properties"))
                    == Some(&format!("advertised.listeners=K8S_EXTERNAL://{a}\n"))
            })
            .then_some(())
    })
    .await;
    let external = format!("{}:9099", _runner.pod_ip(0));
    eventually("the external listener to list the brokers at their node ports", WAIT, || async {
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &external).create().ok()?;
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(5)).ok()?;
        let seen: BTreeMap<i32, String> =
            metadata.brokers().iter().map(|b| (b.id(), format!("{}:{}", b.host(), b.port()))).collect();
        (seen == want).then_some(())
    })
    .await;

    // Raising the base by one: each Service asks for a port the next one
    // holds, so the operator applies them last first.
    let patch = json!({ "spec": { "listeners": { "external": { "nodePortBase": BASE + 1 } } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("raise the base");
    eventually("every node port to move up by one", WAIT, || async {
        (cluster_node_ports(&services).await? == [BASE + 1, BASE + 2, BASE + 3]).then_some(())
    })
    .await;

    // No external listener: no external Service; the bootstrap stays.
    let patch = json!({ "spec": { "listeners": { "external": null } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("remove the listener");
    for name in [format!("{CLUSTER}-external"), format!("{CLUSTER}-external-0")] {
        eventually(&format!("{name} to go with the external listener"), WAIT, || async {
            services.get_opt(&name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    let bootstrap = services.get(&format!("{CLUSTER}-bootstrap")).await.expect("the bootstrap Service");
    assert_eq!(bootstrap.spec.and_then(|s| s.type_).as_deref(), Some("ClusterIP"));
}
