//! The user's path on the local control plane: `helm install` of the chart,
//! then `kubectl apply -f examples/kind-cluster.yaml` (the README's quick
//! start: three brokers on persistent volumes and a topic), gives a Ready
//! cluster and a working topic.
//!
//! The chart's Deployment cannot run here (no container runtime; the plane
//! runs no Deployment controller, so its pod is never even created). The
//! operator runs out of cluster instead, with the Deployment's own arguments
//! and authenticated as the chart's ServiceAccount, so every call it makes is
//! checked against the chart's RBAC; the pod runner runs the broker pods as
//! local processes. A second test removes one verb from the chart's
//! ClusterRole and checks the operator says which permission it lacks.

mod common;

use std::time::Duration;

use common::helm::{self, OPERATOR_NS, RELEASE, example, kubectl, operator_args, service_account_kubeconfig};
use common::kafka_load::read_all;
use common::pod_runner::PodRunner;
use common::{ControlPlane, OperatorProcess, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use strom_crds::{KafkaCluster, KafkaTopic};

const NS: &str = "team";
/// The cluster of examples/kind-cluster.yaml.
const QUICK_START_CLUSTER: &str = "demo";
const BROKERS: i32 = 3;
/// The cluster of examples/dev-cluster.yaml.
const DEV_CLUSTER: &str = "dev";
const TOPIC: &str = "greetings";
const WAIT: Duration = Duration::from_secs(180);

fn condition(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition], kind: &str) -> Option<String> {
    conditions.iter().find(|c| c.type_ == kind).map(|c| format!("{} {} {}", c.status, c.reason, c.message))
}

/// Installs the chart with its defaults and returns the operator's arguments
/// from the rendered Deployment, plus a kubeconfig of the chart's ServiceAccount.
fn install_chart(plane: &ControlPlane) -> (Vec<String>, std::path::PathBuf) {
    helm::install(plane, &[]);
    let manifest = helm::run_ok(
        &helm::tool("helm"),
        &["get", "manifest", RELEASE, "--namespace", OPERATOR_NS],
        Some(&plane.kubeconfig_path()),
        None,
    );
    let args = operator_args(&manifest);
    kubectl(plane, &["create", "namespace", NS], None);
    (args, service_account_kubeconfig(plane, OPERATOR_NS, RELEASE))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_and_the_quick_start_example_give_a_ready_cluster_and_a_working_topic() {
    const CLUSTER: &str = QUICK_START_CLUSTER;
    let plane = ControlPlane::start_with_nodes();
    let client = common::client(&plane).await;
    let (mut args, kubeconfig) = install_chart(&plane);
    let runner = PodRunner::start(&plane, NS, CLUSTER);
    args.extend(["--admin-override".to_string(), format!("{NS}/{CLUSTER}={}", runner.admin_addresses(BROKERS))]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let operator = OperatorProcess::start_with_kubeconfig(kubeconfig, &args);

    let example = example("kind-cluster.yaml");
    kubectl(&plane, &["apply", "-n", NS, "-f", example.to_str().expect("UTF-8")], None);

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let status = eventually("KafkaCluster demo to be Ready", WAIT, || async {
        let status = clusters.get(CLUSTER).await.ok()?.status?;
        (condition(&status.conditions, "Ready")?.starts_with("True")).then_some(status)
    })
    .await;
    assert_eq!(status.ready_brokers, BROKERS, "{status:?}");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let bound = claims
        .list(&Default::default())
        .await
        .expect("list the claims")
        .items
        .into_iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"));
    assert_eq!(bound.count(), BROKERS as usize, "one bound volume claim per broker");
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    let topic = eventually("KafkaTopic greetings to be Ready", WAIT, || async {
        let status = topics.get(TOPIC).await.ok()?.status?;
        (condition(&status.conditions, "Ready")?.starts_with("True")).then_some(status)
    })
    .await;
    assert_eq!(topic.partitions.len(), 3, "{topic:?}");

    // The operator holds the chart's Lease in the release namespace, under its own identity.
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    let lease = leases.get("strom-operator").await.expect("the operator's Lease in strom-system");
    assert!(lease.spec.and_then(|s| s.holder_identity).is_some(), "the Lease has a holder");

    // A Kafka client writes to the topic and reads the records back.
    let bootstrap = runner.bootstrap(BROKERS);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("a producer");
    for (key, value) in [("k1", "hello"), ("k2", "strom"), ("k3", "from-helm")] {
        producer
            .send(FutureRecord::to(TOPIC).key(key).payload(value), Duration::from_secs(30))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {key}: {e}"));
    }
    let mut values: Vec<String> =
        read_all(&bootstrap, TOPIC, 3).into_iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
    values.sort();
    assert_eq!(values, ["from-helm", "hello", "strom"]);
    assert!(!operator.log().contains("forbidden"), "the chart's RBAC refused a call:\n{}", operator.log_tail());
    drop(operator);
    drop(runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_missing_from_the_chart_is_named_in_the_status_and_the_log() {
    const CLUSTER: &str = DEV_CLUSTER;
    let plane = ControlPlane::start();
    let client = common::client(&plane).await;
    let (args, kubeconfig) = install_chart(&plane);

    // Take `patch` away from the PodDisruptionBudget rule of the chart's ClusterRole.
    let role = kubectl(&plane, &["get", "clusterrole", RELEASE, "-o", "json"], None);
    let mut role: serde_json::Value = serde_json::from_str(&role).expect("the ClusterRole as JSON");
    let rules = role["rules"].as_array_mut().expect("rules");
    let pdb = rules
        .iter_mut()
        .find(|r| r["resources"].as_array().is_some_and(|a| a.iter().any(|x| x == "poddisruptionbudgets")))
        .expect("the chart grants something on poddisruptionbudgets");
    let verbs = pdb["verbs"].as_array_mut().expect("verbs");
    let before = verbs.len();
    verbs.retain(|v| v != "patch");
    assert_eq!(verbs.len(), before - 1, "the chart grants patch on poddisruptionbudgets");
    kubectl(&plane, &["replace", "-f", "-"], Some(&role.to_string()));

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let operator = OperatorProcess::start_with_kubeconfig(kubeconfig, &args);
    let example = example("dev-cluster.yaml");
    kubectl(&plane, &["apply", "-n", NS, "-f", example.to_str().expect("UTF-8")], None);

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let degraded = eventually("KafkaCluster dev to report the missing permission", WAIT, || async {
        let status = clusters.get(CLUSTER).await.ok()?.status?;
        condition(&status.conditions, "Degraded").filter(|d| d.contains("ApplyFailed"))
    })
    .await;
    for needle in
        ["cannot patch resource \"poddisruptionbudgets\"", "system:serviceaccount:strom-system:strom-operator"]
    {
        assert!(degraded.contains(needle), "Degraded does not say `{needle}`: {degraded}");
    }
    let log = eventually("the operator to log the refusal", Duration::from_secs(30), || async {
        let log = operator.log();
        log.contains("cannot patch resource \\\"poddisruptionbudgets\\\"").then_some(log)
    })
    .await;
    assert!(log.contains("reconcile failed"), "{}", operator.log_tail());
}
