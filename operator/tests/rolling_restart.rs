//! Rolling restarts end to end, under load: the real control plane with the
//! StatefulSet controller, the pod runner running each broker pod as a local
//! `strom-broker` process (its data on a per-claim directory that survives
//! the pod), the operator as a process, and an idempotent acks=all librdkafka
//! producer writing unique values throughout.
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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::kafka_load::history;
use common::kafka_load::load::{ProduceLoad, producer_config};
use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, create_ready_topic, eventually, plane_with_namespace};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};
use strom_operator::admin::ClusterAdmin;

const NS: &str = "roll";
const CLUSTER: &str = "strom";
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
const BROKERS: i32 = 3;
const WAIT: Duration = Duration::from_secs(180);
/// Upper bound for one whole roll of three brokers.
const ROLL_TIMEOUT: Duration = Duration::from_secs(420);

/// What the watcher saw at one instant.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    /// Pod UIDs by ordinal, for pods that exist and are not terminating.
    uids: BTreeMap<i32, String>,
    /// Ordinals whose pod is Ready.
    ready: BTreeSet<i32>,
    /// The active controller as the operator last reported it.
    controller: Option<i32>,
    /// Records acknowledged so far.
    acked: usize,
}

/// Samples pods, status and acknowledgements every 200 ms until stopped.
struct Watcher {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Watcher {
    fn start(client: &kube::Client, load: Arc<ProduceLoad>) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut samples = Vec::new();
                let selector = format!("app.kubernetes.io/instance={CLUSTER}");
                while !stop.load(Ordering::Relaxed) {
                    if let (Ok(list), Ok(cluster)) =
                        (pods.list(&ListParams::default().labels(&selector)).await, clusters.get(CLUSTER).await)
                    {
                        let mut sample = Sample {
                            at: Instant::now(),
                            uids: BTreeMap::new(),
                            ready: BTreeSet::new(),
                            controller: cluster.status.and_then(|s| s.controller_id),
                            acked: load.acked(),
                        };
                        for pod in list.items {
                            let Some(ordinal) = ordinal(&pod) else { continue };
                            if pod.metadata.deletion_timestamp.is_none() {
                                sample.uids.insert(ordinal, pod.metadata.uid.clone().unwrap_or_default());
                            }
                            if is_ready(&pod) && pod.metadata.deletion_timestamp.is_none() {
                                sample.ready.insert(ordinal);
                            }
                        }
                        samples.push(sample);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                samples
            }
        });
        Watcher { stop, task }
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the watcher task")
    }
}

fn ordinal(pod: &Pod) -> Option<i32> {
    pod.metadata.name.as_deref()?.strip_prefix(&format!("{CLUSTER}-"))?.parse().ok()
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What one roll looked like, from the samples taken during it.
#[derive(Debug)]
struct RollReport {
    /// Ordinals in the order their pod was replaced.
    order: Vec<i32>,
    /// The most brokers not ready at one instant.
    most_down: usize,
    /// The active controller when the roll began.
    controller_at_start: Option<i32>,
    /// Whether the controller changed during the roll (other than by its own restart).
    controller_moved: bool,
    /// The longest time without a new acknowledgement.
    longest_stall: Duration,
}

fn analyse(samples: &[Sample]) -> RollReport {
    let first = samples.first().expect("samples of the roll");
    let mut order = Vec::new();
    let mut most_down = 0;
    let mut longest_stall = Duration::ZERO;
    let mut last_progress = (first.at, first.acked);
    let controller_at_start = first.controller;
    let mut controller_moved = false;
    for s in samples {
        most_down = most_down.max((BROKERS as usize).saturating_sub(s.ready.len()));
        for (ordinal, uid) in &s.uids {
            if first.uids.get(ordinal) != Some(uid) && !order.contains(ordinal) {
                order.push(*ordinal);
            }
        }
        // The gap since the last sample with progress, measured at this one
        // (so a steady load shows the sampling interval, not zero).
        longest_stall = longest_stall.max(s.at - last_progress.0);
        if s.acked > last_progress.1 {
            last_progress = (s.at, s.acked);
        }
        let controller_restarted = controller_at_start.is_some_and(|c| order.contains(&c));
        if !controller_restarted && s.controller.is_some() && s.controller != controller_at_start {
            controller_moved = true;
        }
    }
    RollReport { order, most_down, controller_at_start, controller_moved, longest_stall }
}

/// Waits until every broker pod was replaced since `before`, is Ready, and
/// the operator reports no roll in progress; on timeout, fails with the last
/// status seen.
async fn wait_rolled(client: &kube::Client, admin: &ClusterAdmin, before: &BTreeMap<i32, String>, what: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let deadline = Instant::now() + ROLL_TIMEOUT;
    let mut last_status = None;
    loop {
        let selector = format!("app.kubernetes.io/instance={CLUSTER}");
        if let (Ok(list), Ok(cluster)) =
            (pods.list(&ListParams::default().labels(&selector)).await, clusters.get(CLUSTER).await)
        {
            let replaced = list
                .items
                .iter()
                .filter(|p| is_ready(p) && ordinal(p).is_some_and(|o| before.get(&o) != p.metadata.uid.as_ref()))
                .count();
            if let Some(status) = cluster.status {
                if replaced == BROKERS as usize && status.rolling_restart.is_none() && status.ready_brokers == BROKERS {
                    return;
                }
                last_status = Some(status);
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: the roll did not finish within {ROLL_TIMEOUT:?}; last status: {last_status:#?}\n{}",
                under_replicated(admin).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The under-replicated partitions with their replicas, ISR and leader, for a failure message.
async fn under_replicated(admin: &ClusterAdmin) -> String {
    let cluster = match admin.describe_cluster().await {
        Ok(c) => c,
        Err(e) => return format!("describe cluster failed: {e}"),
    };
    let topics = admin.describe_topics(&[]).await.unwrap_or_default();
    let mut out = format!("controller {}; under-replicated:", cluster.controller_id);
    for r in &cluster.under_replicated_partitions {
        let p = topics
            .iter()
            .filter(|t| t.name == r.topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition == r.partition);
        out.push_str(&format!("\n  {}-{}: {p:?}", r.topic, r.partition));
    }
    out
}

async fn pod_uids(client: &kube::Client) -> BTreeMap<i32, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let list = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={CLUSTER}")))
        .await
        .expect("list the broker pods");
    list.items.iter().filter_map(|p| Some((ordinal(p)?, p.metadata.uid.clone()?))).collect()
}

fn check_roll(what: &str, report: &RollReport) {
    eprintln!("{what}: {report:?}");
    assert_eq!(report.order.len(), BROKERS as usize, "{what}: every broker restarted once: {report:?}");
    assert!(report.most_down <= 1, "{what}: two brokers were down at once: {report:?}");
    if let (Some(controller), false) = (report.controller_at_start, report.controller_moved) {
        assert_eq!(report.order.last(), Some(&controller), "{what}: the active controller restarts last: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restarts_under_load_lose_nothing_and_restart_one_broker_at_a_time() {
    let (plane, client) = plane_with_namespace(NS).await;
    let runner = PodRunner::start(&plane, NS, CLUSTER);
    let admin_override = format!("{NS}/{CLUSTER}={}", runner.admin_addresses(BROKERS));
    let mut operator = OperatorProcess::start(
        &plane,
        &["--namespaces", NS, "--no-leader-election", "--admin-override", &admin_override],
    );

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
    let admin = ClusterAdmin::new(runner.admin_addresses(BROKERS).split(',').map(String::from).collect());
    let load = Arc::new(ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, Duration::from_millis(2)));
    load.wait_for_progress(PARTITIONS, 200, WAIT);
    let steady = Watcher::start(&client, load.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let steady_stall = analyse(&steady.finish().await).longest_stall;
    eprintln!("steady state: longest time without an acknowledgement {steady_stall:?}");

    // 0. A dynamic broker setting changes: every broker applies it, no pod restarts.
    let before = pod_uids(&client).await;
    let patch = json!({ "spec": { "config": { "log.retention.ms": "7200000" } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change a dynamic setting");
    for address in runner.admin_addresses(BROKERS).split(',') {
        let one = ClusterAdmin::new(vec![address.to_string()]);
        eventually(&format!("broker at {address} to apply log.retention.ms=7200000"), WAIT, || async {
            let described = one.describe_cluster().await.ok()?;
            (described.broker_configs.get("log.retention.ms").map(String::as_str) == Some("7200000")).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pod_uids(&client).await, before, "a dynamic setting change restarted a broker");
    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), NS);
    let sts = sts.get(CLUSTER).await.expect("the StatefulSet");
    let status = sts.status.expect("StatefulSet status");
    assert_eq!(status.current_revision, status.update_revision, "the pod template changed for a dynamic setting");

    // 1. A static broker setting changes: the config hash on the pod template rolls every broker.
    let before = pod_uids(&client).await;
    let watcher = Watcher::start(&client, load.clone());
    let patch = json!({ "spec": { "config": { "replica.fetch.max.bytes": "2097152" } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("change a broker setting");
    wait_rolled(&client, &admin, &before, "config change").await;
    check_roll("config change", &analyse(&watcher.finish().await));

    // 2. A manual restart, with the operator killed after the first broker restarted.
    let before = pod_uids(&client).await;
    let watcher = Watcher::start(&client, load.clone());
    let patch = json!({ "metadata": { "annotations": { "strom.dev/restart": "2026-11-26T00:00:00Z" } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate for a restart");
    eventually("the first broker of the manual restart to be replaced", ROLL_TIMEOUT, || async {
        let now = pod_uids(&client).await;
        before.iter().any(|(o, uid)| now.get(o).is_some_and(|u| u != uid)).then_some(())
    })
    .await;
    operator.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    operator.restart();
    wait_rolled(&client, &admin, &before, "manual restart").await;
    check_roll("manual restart (operator restarted mid-roll)", &analyse(&watcher.finish().await));

    // 3. A broker crashes: the pod runner restarts the process, like a kubelet.
    let victim = format!("{CLUSTER}-1");
    let pid = runner.broker_pid(&victim).expect("the pid of broker 1");
    let acked_before = load.acked();
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill -9 broker 1");
    eventually("broker 1 to run again and produce to go on", WAIT, || async {
        (runner.broker_pid(&victim).is_some_and(|p| p != pid) && load.acked() > acked_before + 500).then_some(())
    })
    .await;

    let load = Arc::try_unwrap(load).unwrap_or_else(|_| panic!("the watchers released the load"));
    let log = load.finish();
    assert!(log.failed.is_empty(), "the producer saw failed sends: {:?}", &log.failed[..log.failed.len().min(5)]);
    let reads = common::kafka_load::read_all(&bootstrap, TOPIC, PARTITIONS);
    match history::check(&log.sent, &log.acked, &reads) {
        Ok(summary) => eprintln!("history: {summary:?}"),
        Err(violations) => panic!("history check failed:\n  {}", violations.join("\n  ")),
    }
    drop(operator);
    drop(runner);
}
