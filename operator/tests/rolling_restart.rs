//! Rolling restarts end to end, under load: the real control plane with the
//! StatefulSet controller, kube-scheduler and kwok nodes, the pod runner
//! running each broker pod as a local `strom-broker` process (its data on a
//! per-claim directory that survives the pod), the operator as a process, and
//! an idempotent acks=all librdkafka producer writing unique values throughout.
//!
//! In turn: a dynamic broker setting changes (every broker applies it through
//! the metadata, no pod restarts), a static broker setting changes (the
//! config hash rolls every broker), a
//! `strom.dev/restart` annotation asks for a restart and the operator itself
//! is killed in the middle of that roll (the new process resumes from the
//! pods' revisions), and a broker process crashes. Each roll must restart
//! every broker exactly once, never have two brokers down at once, and
//! restart the active controller last; afterwards every acknowledged record
//! is read back exactly once, in order, and the producer had no failed send.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::kafka_load::load::{ProduceLoad, producer_config};
use common::pod_runner::PodRunner;
use common::roll::{BrokerPods, analyse, check_roll};
use common::{OperatorProcess, create_ready_cluster, create_ready_topic, eventually, operator_admin, plane_with_nodes};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};

const NS: &str = "roll";
const CLUSTER: &str = "strom";
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
const BROKERS: i32 = 3;
const WAIT: Duration = Duration::from_secs(180);
/// Upper bound for one whole roll of three brokers.
const ROLL_TIMEOUT: Duration = Duration::from_secs(420);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restarts_under_load_lose_nothing_and_restart_one_broker_at_a_time() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start(&plane, NS, CLUSTER);
    let mut operator = OperatorProcess::for_runner(&plane, &runner, NS, CLUSTER, BROKERS, &[]);

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "replicas": BROKERS,
        "config": { "replica.fetch.max.bytes": "1048576", "log.retention.ms": "3600000" },
        "storage": { "size": "1Gi" },
    });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    let spec = json!({ "clusterRef": CLUSTER, "partitions": PARTITIONS, "replicationFactor": 3,
                       "config": { "min.insync.replicas": "2" } });
    create_ready_topic(&topics, TOPIC, spec, WAIT).await;

    let bootstrap = runner.bootstrap(BROKERS);
    let admin = operator_admin(&client, NS, CLUSTER, &runner.admin_addresses(BROKERS)).await;
    let pods = BrokerPods::new(&client, NS, CLUSTER);
    let load = Arc::new(ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, Duration::from_millis(2)));
    load.wait_for_progress(PARTITIONS, 200, WAIT);
    let steady = pods.watch(load.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let steady_stall = analyse(&steady.finish().await, BROKERS).longest_stall;
    eprintln!("steady state: longest time without an acknowledgement {steady_stall:?}");

    // 0. A dynamic broker setting changes: every broker applies it, no pod restarts.
    let before = pods.uids().await;
    let patch = json!({ "spec": { "config": { "log.retention.ms": "7200000" } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change a dynamic setting");
    for address in runner.admin_addresses(BROKERS).split(',') {
        let one = operator_admin(&client, NS, CLUSTER, address).await;
        eventually(&format!("broker at {address} to apply log.retention.ms=7200000"), WAIT, || async {
            let described = one.describe_cluster().await.ok()?;
            (described.broker_configs.get("log.retention.ms").map(String::as_str) == Some("7200000")).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pods.uids().await, before, "a dynamic setting change restarted a broker");
    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), NS);
    let sts = sts.get(CLUSTER).await.expect("the StatefulSet");
    let status = sts.status.expect("StatefulSet status");
    assert_eq!(status.current_revision, status.update_revision, "the pod template changed for a dynamic setting");

    // 1. A static broker setting changes: the config hash on the pod template rolls every broker.
    let before = pods.uids().await;
    let watcher = pods.watch(load.clone());
    let patch = json!({ "spec": { "config": { "replica.fetch.max.bytes": "2097152" } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change a broker setting");
    pods.wait_rolled(&admin, &before, BROKERS, ROLL_TIMEOUT, "config change").await;
    check_roll("config change", &analyse(&watcher.finish().await, BROKERS), BROKERS);

    // 2. A manual restart, with the operator killed after the first broker restarted.
    let before = pods.uids().await;
    let watcher = pods.watch(load.clone());
    let patch = json!({ "metadata": { "annotations": { "strom.dev/restart": "2026-11-26T00:00:00Z" } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate for a restart");
    eventually("the first broker of the manual restart to be replaced", ROLL_TIMEOUT, || async {
        let now = pods.uids().await;
        before.iter().any(|(o, uid)| now.get(o).is_some_and(|u| u != uid)).then_some(())
    })
    .await;
    operator.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    operator.restart();
    pods.wait_rolled(&admin, &before, BROKERS, ROLL_TIMEOUT, "manual restart").await;
    check_roll("manual restart (operator restarted mid-roll)", &analyse(&watcher.finish().await, BROKERS), BROKERS);

    // The roll's events are one per broker, each naming its own.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    let notes: std::collections::BTreeSet<String> = events
        .list(&Default::default())
        .await
        .expect("list the events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RestartingBroker"))
        .filter_map(|e| e.note)
        .collect();
    for broker in 0..BROKERS {
        let named = format!("restarting broker {broker} (pod {CLUSTER}-{broker})");
        assert!(notes.iter().any(|n| n.starts_with(&named)), "no event says {named:?}: {notes:?}");
    }

    // 3. One broker restarted by annotating its pod: that broker alone, safely.
    let before = pods.uids().await;
    let watcher = pods.watch(load.clone());
    let pod_api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), NS);
    let patch = json!({ "metadata": { "annotations": { "strom.dev/restart": "now" } } });
    pod_api
        .patch(&format!("{CLUSTER}-1"), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate pod 1");
    let after = eventually("broker 1 to be replaced and every broker ready again", ROLL_TIMEOUT, || async {
        let now = pods.uids().await;
        let status = clusters.get(CLUSTER).await.ok()?.status?;
        let settled = status.ready_brokers == BROKERS && status.rolling_restart.is_none();
        (now.len() == before.len() && now.get(&1) != before.get(&1) && settled).then_some(now)
    })
    .await;
    for broker in [0, 2] {
        assert_eq!(after.get(&broker), before.get(&broker), "broker {broker} was restarted too");
    }
    let replaced = pod_api.get(&format!("{CLUSTER}-1")).await.expect("pod 1");
    assert_eq!(
        replaced.metadata.annotations.unwrap_or_default().get("strom.dev/restart").map(String::as_str),
        Some("2026-11-26T00:00:00Z"),
        "the replacement carries the cluster's value again, asking for no other restart"
    );
    let report = analyse(&watcher.finish().await, BROKERS);
    assert_eq!(report.order, vec![1], "per-pod restart: broker 1 alone restarted: {report:?}");
    assert!(report.most_down <= 1, "per-pod restart: {report:?}");

    // 4. A broker crashes: the pod runner restarts the process, like a kubelet.
    let victim = format!("{CLUSTER}-1");
    let pid = runner.broker_pid(&victim).expect("the pid of broker 1");
    let acked_before = load.acked();
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill -9 broker 1");
    eventually("broker 1 to run again and produce to go on", WAIT, || async {
        (runner.broker_pid(&victim).is_some_and(|p| p != pid) && load.acked() > acked_before + 500).then_some(())
    })
    .await;

    let load = Arc::try_unwrap(load).unwrap_or_else(|_| panic!("the watchers released the load"));
    common::kafka_load::finish_and_check(load, &bootstrap, TOPIC, PARTITIONS);
    drop(operator);
    drop(runner);
}
