//! Changing `controllerVoters` after creation, end to end, under load: the
//! real control plane with the StatefulSet controller, kube-scheduler and
//! kwok nodes, the pod runner running each broker pod as a local
//! `strom-broker` process, the operator as a process, and an idempotent
//! acks=all librdkafka producer writing unique values throughout.
//!
//! A 5-broker cluster created with 3 voters goes to 5 voters, then back to 3:
//! each time the operator moves the committed Raft membership (as the
//! brokers report it) to brokers 0..controllerVoters, no pod is rolled (the
//! StatefulSet's pod template keeps its config hash), and the cluster ends
//! Ready and not Degraded. Afterwards every acknowledged record is read back
//! exactly once, in order.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::kafka_load::load::{ProduceLoad, producer_config};
use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, eventually, operator_admin, plane_with_nodes, wait_for_voters};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};

const NS: &str = "voters";
const CLUSTER: &str = "strom";
const TOPIC: &str = "orders";
const ZONE: &str = "zone-a";
const PARTITIONS: i32 = 3;
const WAIT: Duration = Duration::from_secs(240);

fn condition(status: Option<&strom_crds::KafkaClusterStatus>, kind: &str) -> Option<String> {
    status?.conditions.iter().find(|c| c.type_ == kind).map(|c| c.status.clone())
}

async fn set_voters(clusters: &Api<KafkaCluster>, voters: i32) {
    let patch = json!({ "spec": { "controllerVoters": voters } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change controllerVoters");
}

async fn config_hash(statefulsets: &Api<StatefulSet>) -> Option<String> {
    let sts = statefulsets.get(CLUSTER).await.expect("the StatefulSet");
    sts.spec.template.metadata.and_then(|m| m.annotations).and_then(|a| a.get("strom.dev/config-hash").cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_voters_go_from_three_to_five_and_back_without_a_roll_or_a_lost_record() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start_in_zones(&plane, NS, CLUSTER, &[ZONE]);
    let operator = OperatorProcess::for_runner(&plane, &runner, NS, CLUSTER, 5, &[]);
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let spec = json!({ "replicas": 5, "controllerVoters": 3, "storage": { "size": "1Gi" }, "rack": {} });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;
    let admin = operator_admin(&client, NS, CLUSTER, &runner.admin_addresses(5)).await;
    wait_for_voters(&admin, &[0, 1, 2], WAIT).await;
    let hash = config_hash(&statefulsets).await;
    assert!(hash.is_some(), "the pod template carries a config hash");

    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    let spec = json!({ "clusterRef": CLUSTER, "partitions": PARTITIONS, "replicationFactor": 3,
                       "config": { "min.insync.replicas": "2" } });
    common::create_ready_topic(&topics, TOPIC, spec, WAIT).await;
    let bootstrap = runner.bootstrap(5);
    let load = Arc::new(ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, Duration::from_millis(2)));
    load.wait_for_progress(PARTITIONS, 200, WAIT);

    // 3 -> 5 voters.
    set_voters(&clusters, 5).await;
    wait_for_voters(&admin, &[0, 1, 2, 3, 4], WAIT).await;
    load.wait_for_progress(PARTITIONS, 100, WAIT);

    // 5 -> 3 voters.
    set_voters(&clusters, 3).await;
    wait_for_voters(&admin, &[0, 1, 2], WAIT).await;
    load.wait_for_progress(PARTITIONS, 100, WAIT);

    assert_eq!(config_hash(&statefulsets).await, hash, "a voter change must not roll the brokers");
    eventually("the cluster to be Ready and not Degraded, its status naming voters 0..3", WAIT, || async {
        let cluster = clusters.get(CLUSTER).await.ok()?;
        let status = cluster.status.as_ref();
        let ready = condition(status, "Ready")? == "True";
        let degraded = condition(status, "Degraded")? == "True";
        let voters = status?.controller_voters == [0, 1, 2];
        (ready && !degraded && voters).then_some(())
    })
    .await;
    let load = Arc::try_unwrap(load).unwrap_or_else(|_| panic!("nothing else holds the load"));
    common::kafka_load::finish_and_check(load, &bootstrap, TOPIC, PARTITIONS);
    eprintln!("operator log tail:\n{}", operator.log_tail());
    drop(operator);
    drop(runner);
}
