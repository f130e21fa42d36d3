//! Two pod runners on one plane with kube-scheduler and kwok, each running
//! one cluster: with `spec.template.nodeSelector` on the runner's
//! `strom.dev/pod-runner-name` label every pod lands on its own runner's
//! node (without it the scheduler may bind a pod to the other runner's node,
//! where nothing runs it) and both clusters become Ready, the operator
//! reaching each at its pods' IPs (`--admin-via-pod-ip`, no per-cluster flag).

mod common;

use std::time::Duration;

use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, plane_with_nodes};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;
use strom_crds::KafkaCluster;

const NS: &str = "pair";
const BROKERS: i32 = 2;
const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_keep_their_clusters_on_their_own_nodes() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runners = [("alpha", PodRunner::start(&plane, NS, "alpha")), ("beta", PodRunner::start(&plane, NS, "beta"))];
    let _operator = OperatorProcess::start(&plane, &["--lease-duration-seconds", "4", "--admin-via-pod-ip"]);
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    for (name, runner) in &runners {
        let node = format!("local-{}", runner.subnet);
        let spec = json!({
            "replicas": BROKERS,
            "storage": { "type": "Ephemeral" },
            "template": { "nodeSelector": { "strom.dev/pod-runner-name": node } },
        });
        create_ready_cluster(&clusters, name, spec, WAIT).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for (name, runner) in &runners {
        let node = format!("local-{}", runner.subnet);
        let list = pods
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
            .await
            .expect("list the pods");
        assert_eq!(list.items.len(), BROKERS as usize, "{name}'s pods");
        for pod in list.items {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let bound = pod.spec.and_then(|s| s.node_name);
            assert_eq!(bound.as_deref(), Some(node.as_str()), "{pod_name} is on its runner's node");
            let ip = pod.status.and_then(|s| s.pod_ip).unwrap_or_default();
            assert!(ip.starts_with(&format!("127.{}.", runner.subnet)), "{pod_name} has its runner's address: {ip}");
        }
    }
}
