//! Scaling end to end, under load: the real control plane with the StatefulSet
//! controller, kube-scheduler and kwok nodes, the pod runner running each
//! broker pod as a local `strom-broker` process, the operator as a process, and
//! an idempotent acks=all librdkafka producer writing unique values throughout.
//!
//! In turn: a KafkaTopic's replication factor goes from 2 to 3 (replicas
//! move, throttled); the cluster scales from 3 to 5 brokers and replicas
//! spread onto the new ones; a scale-down to 3 is refused while a topic has
//! 4 replicas (Degraded `ScaleDownBlocked`, no pod removed, topics still
//! reconciled); once that topic goes to 3 replicas the brokers that go are
//! drained and their pods removed. Afterwards every acknowledged record is
//! read back exactly once, in order, and the producer had no failed send.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kafka_load::StallMeter;
use common::kafka_load::load::{ProduceLoad, producer_config};
use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, create_ready_topic, eventually, operator_admin, plane_with_nodes};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};
use strom_operator::admin::ClusterAdmin;

const NS: &str = "scale";
const CLUSTER: &str = "strom";
const TOPIC: &str = "orders";
const WIDE: &str = "wide";
/// The zone label of the pod runner's node, which becomes every broker's rack.
const ZONE: &str = "zone-a";
const PARTITIONS: i32 = 6;
const WAIT: Duration = Duration::from_secs(240);

fn condition(status: Option<&strom_crds::KafkaClusterStatus>, kind: &str) -> Option<(String, String, String)> {
    let c = status?.conditions.iter().find(|c| c.type_ == kind)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until every partition of `topic` has `rf` replicas and none is moving.
async fn wait_for_replication_factor(admin: &ClusterAdmin, topic: &str, rf: usize) {
    eventually(&format!("{topic} to have {rf} replicas per partition"), WAIT, || async {
        let t = admin.describe_topic(topic).await.ok()??;
        let done = !t.partitions.is_empty()
            && t.partitions.iter().all(|p| {
                p.replicas.len() == rf
                    && p.isr.len() == rf
                    && p.adding_replicas.is_empty()
                    && p.removing_replicas.is_empty()
            });
        done.then_some(())
    })
    .await;
}

async fn create_topic(topics: &Api<KafkaTopic>, name: &str, partitions: i32, rf: i32) {
    let spec = json!({ "clusterRef": CLUSTER, "partitions": partitions, "replicationFactor": rf });
    create_ready_topic(topics, name, spec, WAIT).await;
}

async fn set_replication_factor(topics: &Api<KafkaTopic>, name: &str, rf: i32) {
    let patch = json!({ "spec": { "replicationFactor": rf } });
    topics.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change the replication factor");
}

async fn scale(clusters: &Api<KafkaCluster>, replicas: i32) {
    let patch = json!({ "spec": { "replicas": replicas } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("scale the KafkaCluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_and_replication_factor_changes_under_load_lose_nothing() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start_in_zones(&plane, NS, CLUSTER, &[ZONE]);
    let operator = OperatorProcess::for_runner(&plane, &runner, NS, CLUSTER, 5, &[]);

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "replicas": 3,
        "storage": { "size": "1Gi" },
        "rebalance": { "throttleBytesPerSecond": 8388608 },
        "rack": {},
    });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;

    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    create_topic(&topics, TOPIC, PARTITIONS, 2).await;
    let bootstrap = runner.bootstrap(3);
    let admin = operator_admin(&client, NS, CLUSTER, &runner.admin_addresses(5)).await;
    let load = Arc::new(ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, Duration::from_millis(2)));
    load.wait_for_progress(PARTITIONS, 200, WAIT);
    let mut durations = Vec::new();
    let steady = StallMeter::start(load.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    durations.push(("steady state (5 s)", Duration::from_secs(5), steady.finish().await));

    // 1. Replication factor 2 → 3 under load.
    let started = Instant::now();
    let meter = StallMeter::start(load.clone());
    set_replication_factor(&topics, TOPIC, 3).await;
    wait_for_replication_factor(&admin, TOPIC, 3).await;
    durations.push(("replication factor 2 → 3", started.elapsed(), meter.finish().await));
    load.wait_for_progress(PARTITIONS, 100, WAIT);

    // 2. Scale up to 5: the new brokers get replicas until every broker holds within one of the others.
    let started = Instant::now();
    let meter = StallMeter::start(load.clone());
    scale(&clusters, 5).await;
    let balanced = eventually("replicas to spread onto brokers 3 and 4", WAIT, || async {
        let (load, moving) = common::replicas_per_broker(&admin).await?;
        let (most, least) = (load.values().max()?, load.values().min()?);
        (!moving && load.len() == 5 && most - least <= 1).then_some(load)
    })
    .await;
    eprintln!("after scaling up: replicas per broker {balanced:?}");
    // Every broker, the new ones too, took its node's zone as its rack: the
    // API server copied the label onto the pod at binding, the downward API
    // handed it to the broker.
    let described = admin.describe_cluster().await.expect("describe the cluster");
    let racks: BTreeMap<i32, Option<String>> =
        described.brokers.iter().filter(|b| !b.fenced).map(|b| (b.broker_id, b.rack.clone())).collect();
    assert_eq!(racks.len(), 5, "{racks:?}");
    assert!(racks.values().all(|r| r.as_deref() == Some(ZONE)), "every broker's rack is {ZONE}: {racks:?}");
    durations.push(("scale-up 3 → 5 with rebalancing", started.elapsed(), meter.finish().await));
    load.wait_for_progress(PARTITIONS, 100, WAIT);

    // 3. A scale-down below a topic's replication factor is refused, and nothing is removed.
    create_topic(&topics, WIDE, 1, 4).await;
    scale(&clusters, 3).await;
    let deadline = Instant::now() + WAIT;
    let (reason, message) = loop {
        let status = clusters.get(CLUSTER).await.ok().and_then(|c| c.status);
        let degraded = condition(status.as_ref(), "Degraded");
        if let Some((s, r, m)) = &degraded
            && s == "True"
            && r == "ScaleDownBlocked"
        {
            break (r.clone(), m.clone());
        }
        assert!(
            Instant::now() < deadline,
            "the scale-down was not refused within {WAIT:?}; last status: {status:#?}\n{}",
            operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(message.contains("topic wide needs 4 replicas"), "{reason}: {message}");
    let sts = statefulsets.get(CLUSTER).await.expect("the StatefulSet");
    assert_eq!(sts.spec.replicas, Some(5), "no broker may go while the scale-down is refused");
    // The rest of the reconciliation proceeds: a topic change is still applied.
    let patch = json!({ "spec": { "config": { "retention.ms": "3600000" } } });
    topics.patch(TOPIC, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change a topic setting");
    eventually("the topic setting to reach the brokers", WAIT, || async {
        let t = admin.describe_topic(TOPIC).await.ok()??;
        (t.configs.get("retention.ms").map(String::as_str) == Some("3600000")).then_some(())
    })
    .await;

    // 4. Once that topic needs only 3 replicas, brokers 3 and 4 are drained and their pods removed.
    let started = Instant::now();
    let meter = StallMeter::start(load.clone());
    set_replication_factor(&topics, WIDE, 3).await;
    eventually("the StatefulSet to shrink to 3 after draining", WAIT, || async {
        let sts = statefulsets.get(CLUSTER).await.ok()?;
        let ready = sts.status.as_ref()?.ready_replicas.unwrap_or(0);
        (sts.spec.replicas == Some(3) && ready == 3).then_some(())
    })
    .await;
    let (load_after, moving) = common::replicas_per_broker(&admin).await.expect("describe the topics");
    assert!(!moving, "moves still running after the scale-down");
    assert!(load_after.keys().all(|b| *b < 3), "replicas left on removed brokers: {load_after:?}");
    wait_for_replication_factor(&admin, WIDE, 3).await;
    durations.push(("scale-down 5 → 3 with draining", started.elapsed(), meter.finish().await));
    eventually("the cluster to be Ready and not Degraded", WAIT, || async {
        let cluster = clusters.get(CLUSTER).await.ok()?;
        let status = cluster.status.as_ref();
        let ready = condition(status, "Ready")?.0 == "True";
        let degraded = condition(status, "Degraded")?.0 == "True";
        (ready && !degraded).then_some(())
    })
    .await;
    load.wait_for_progress(PARTITIONS, 100, WAIT);

    let load = Arc::try_unwrap(load).unwrap_or_else(|_| panic!("the stall meters released the load"));
    common::kafka_load::finish_and_check(load, &bootstrap, TOPIC, PARTITIONS);
    for (step, took, stall) in durations {
        eprintln!("{step}: done after {took:.1?}, longest time without an acknowledgement {stall:.2?}");
    }
    drop(operator);
    drop(runner);
}
