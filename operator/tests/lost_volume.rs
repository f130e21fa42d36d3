//! A controller voter that loses its volume, end to end, under load: the
//! real control plane with the StatefulSet controller, kube-scheduler, kwok
//! nodes and pvc-protection, the pod runner running each broker pod as a
//! local `strom-broker` process on a directory per claim object, the
//! operator as a process, and an idempotent acks=all librdkafka producer
//! writing to a `min.insync.replicas=2` topic throughout.
//!
//! On a Persistent 3-broker cluster with 3 controller voters, broker 1's
//! claim and pod are deleted: the StatefulSet controller recreates the
//! claim (a new uid, so a new, empty directory; the old one is removed) and
//! the pod. The broker finds an empty controller log while a quorum exists,
//! so it rejoins through two membership changes (removed, caught up as a
//! learner, a voter again) before it is ready; the operator takes no step
//! of its own. The producer keeps getting acknowledgements, the committed
//! voters are 0, 1 and 2 again, the cluster ends Ready with nothing
//! under-replicated, and every acknowledged record is read back exactly
//! once, in order.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::kafka_load::load::{ProduceLoad, producer_config};
use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, create_ready_topic, eventually, operator_admin, plane_with_nodes};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};

const NS: &str = "lostvol";
const CLUSTER: &str = "strom";
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;
const BROKERS: i32 = 3;
const WAIT: Duration = Duration::from_secs(180);
/// What broker 1 logs once it is a voter again after an empty start.
const REJOINED: &str = "controller voter rejoined the quorum";

fn condition(status: Option<&strom_crds::KafkaClusterStatus>, kind: &str) -> Option<String> {
    status?.conditions.iter().find(|c| c.type_ == kind).map(|c| c.status.clone())
}

/// How often pod `pod`'s broker logged `what` (its log spans every process of the pod name).
fn log_count(runner: &PodRunner, pod: &str, what: &str) -> usize {
    let log = std::fs::read_to_string(runner.dir.join("logs").join(format!("{pod}.log"))).unwrap_or_default();
    log.matches(what).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_whose_claim_is_recreated_empty_rejoins_and_the_cluster_stays_available() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start(&plane, NS, CLUSTER);
    let operator = OperatorProcess::for_runner(&plane, &runner, NS, CLUSTER, BROKERS, &[]);
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let spec = json!({ "replicas": BROKERS, "controllerVoters": 3, "storage": { "size": "1Gi" } });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    let spec = json!({ "clusterRef": CLUSTER, "partitions": PARTITIONS, "replicationFactor": 3,
                       "config": { "min.insync.replicas": "2" } });
    create_ready_topic(&topics, TOPIC, spec, WAIT).await;
    let admin = operator_admin(&client, NS, CLUSTER, &runner.admin_addresses(BROKERS)).await;

    let bootstrap = runner.bootstrap(BROKERS);
    let load = Arc::new(ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, Duration::from_millis(2)));
    load.wait_for_progress(PARTITIONS, 200, WAIT);

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let claim_name = format!("data-{CLUSTER}-1");
    let pod_name = format!("{CLUSTER}-1");
    let claim_dir = |uid: &str| -> PathBuf { runner.dir.join("pvc").join(NS).join(&claim_name).join(uid) };
    let old_claim = claims.get(&claim_name).await.expect("broker 1's claim").metadata.uid.expect("a claim uid");
    let old_pod = pods.get(&pod_name).await.expect("broker 1's pod").metadata.uid.expect("a pod uid");
    let old_dir = claim_dir(&old_claim);
    assert!(old_dir.join("data").is_dir(), "broker 1's data is in {}", old_dir.display());
    // A voter of a new cluster that starts last may rejoin at creation already.
    let rejoined_before = log_count(&runner, &pod_name, REJOINED);

    // The volume is lost: the claim (held by pvc-protection while the pod
    // uses it) and the pod are deleted; the StatefulSet controller recreates both.
    claims.delete(&claim_name, &DeleteParams::default()).await.expect("delete broker 1's claim");
    pods.delete(&pod_name, &DeleteParams::default()).await.expect("delete broker 1's pod");
    load.wait_for_progress(PARTITIONS, 100, WAIT);
    let new_claim = eventually("broker 1's claim to be recreated", WAIT, || async {
        let claim = claims.get_opt(&claim_name).await.ok().flatten()?;
        let uid = claim.metadata.uid.filter(|u| *u != old_claim)?;
        claim.metadata.deletion_timestamp.is_none().then_some(uid)
    })
    .await;
    eventually("broker 1's new pod to be Ready (a voter again) and the old claim's data removed", WAIT, || async {
        let pod = pods.get_opt(&pod_name).await.ok().flatten()?;
        let ready = pod.status?.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        let new = pod.metadata.uid.is_some_and(|u| u != old_pod);
        (ready && new && !old_dir.exists()).then_some(())
    })
    .await;
    assert!(claim_dir(&new_claim).join("data").is_dir(), "broker 1 runs on the new claim's directory");
    let rejoined = log_count(&runner, &pod_name, REJOINED);
    assert_eq!(rejoined, rejoined_before + 1, "broker 1 rejoined the quorum from an empty log once");
    load.wait_for_progress(PARTITIONS, 100, WAIT);

    eventually(
        "voters 0, 1, 2 committed, nothing under-replicated, the cluster Ready and not Degraded",
        WAIT,
        || async {
            let described = admin.describe_cluster().await.ok()?;
            let mut voters = described.controller_voters.clone();
            voters.sort_unstable();
            let cluster = clusters.get(CLUSTER).await.ok()?;
            let status = cluster.status.as_ref();
            let ready = condition(status, "Ready")? == "True" && condition(status, "Degraded")? == "False";
            (voters == [0, 1, 2] && described.under_replicated_partitions.is_empty() && ready).then_some(())
        },
    )
    .await;
    load.wait_for_progress(PARTITIONS, 100, WAIT);
    for broker in 0..BROKERS {
        let changes = log_count(&runner, &format!("{CLUSTER}-{broker}"), "changing the controller voters");
        assert_eq!(changes, 0, "broker {broker} was asked for a voter change: the rejoin needs none from the operator");
    }

    let load = Arc::try_unwrap(load).unwrap_or_else(|_| panic!("nothing else holds the load"));
    common::kafka_load::finish_and_check(load, &bootstrap, TOPIC, PARTITIONS);
    eprintln!("operator log tail:\n{}", operator.log_tail());
    drop(operator);
    drop(runner);
}
