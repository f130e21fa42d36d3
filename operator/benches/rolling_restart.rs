//! Benchmark: a rolling restart of a 3-broker cluster under produce load,
//! driven by the operator on the local end-to-end environment (real control
//! plane with kube-scheduler and kwok nodes, the pod runner running release
//! `strom-broker` processes).
//!
//! One run measures, side by side: produce latency (p50, p99, max; idempotent
//! acks=all librdkafka producer, one record every 2 ms over 6 partitions with
//! replication factor 3 and min.insync.replicas 2) in a steady window before
//! the roll and during the roll; and the roll's wall time against the sum of
//! the three brokers' own restart times (pod deleted → new pod Ready), which
//! shows what the operator's gating adds. Every acknowledged record is read
//! back exactly once at the end.
//!
//! Run: `cargo bench -p strom-operator --bench rolling_restart` (needs the
//! control plane built by `e2e/control-plane/control-plane.sh build
//! kube-apiserver kube-controller-manager etcd kube-scheduler kwok`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::kafka_load::load::{ProduceLoad, producer_config};
use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, create_ready_topic, plane_with_nodes};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};

const NS: &str = "bench";
const CLUSTER: &str = "strom";
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
const BROKERS: i32 = 3;
const STEADY: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(300);

fn main() {
    // The pod runner starts whatever `strom-broker` sits beside the bench: build the release ones.
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "strom-broker", "-p", "strom-pod-runner", "-p", "strom-operator"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("run cargo build --release");
    assert!(status.success(), "cargo build --release failed");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    runtime.block_on(run());
}

/// Pod UID and readiness by ordinal.
async fn pods(api: &Api<Pod>) -> BTreeMap<i32, (String, bool)> {
    let selector = format!("app.kubernetes.io/instance={CLUSTER}");
    let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else { return BTreeMap::new() };
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let ordinal = p.metadata.name.as_deref()?.strip_prefix(&format!("{CLUSTER}-"))?.parse().ok()?;
            let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
            let ready = conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            Some((ordinal, (p.metadata.uid.clone()?, ready)))
        })
        .collect()
}

/// p50, p99 and max of the latencies acknowledged within `[from, to)`.
fn percentiles(latencies: &[(Instant, Duration)], from: Instant, to: Instant) -> (Duration, Duration, Duration, usize) {
    let mut window: Vec<Duration> =
        latencies.iter().filter(|(at, _)| *at >= from && *at < to).map(|(_, l)| *l).collect();
    window.sort_unstable();
    let at = |q: f64| window.get(((window.len() as f64 * q) as usize).min(window.len().saturating_sub(1))).copied();
    (
        at(0.5).unwrap_or_default(),
        at(0.99).unwrap_or_default(),
        window.last().copied().unwrap_or_default(),
        window.len(),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn run() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start(&plane, NS, CLUSTER);
    let admin_override = format!("{NS}/{CLUSTER}={}", runner.admin_addresses(BROKERS));
    let operator = OperatorProcess::start(
        &plane,
        &["--namespaces", NS, "--no-leader-election", "--admin-override", &admin_override],
    );
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    create_ready_cluster(&clusters, CLUSTER, json!({ "replicas": BROKERS, "storage": { "size": "1Gi" } }), WAIT).await;
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    let spec = json!({ "clusterRef": CLUSTER, "partitions": PARTITIONS, "replicationFactor": 3,
                       "config": { "min.insync.replicas": "2" } });
    create_ready_topic(&topics, TOPIC, spec, WAIT).await;

    let bootstrap = runner.bootstrap(BROKERS);
    let load = ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, Duration::from_millis(2));
    load.wait_for_progress(PARTITIONS, 500, WAIT);
    let steady_from = Instant::now();
    tokio::time::sleep(STEADY).await;

    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let before = pods(&pod_api).await;
    let roll_from = Instant::now();
    let patch = json!({ "metadata": { "annotations": { "strom.dev/restart": "bench" } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate for a restart");
    // Per ordinal: when its old pod went away, and when its new pod was Ready.
    let mut gone: BTreeMap<i32, Instant> = BTreeMap::new();
    let mut back: BTreeMap<i32, Instant> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let now_pods = pods(&pod_api).await;
        let now = Instant::now();
        for (ordinal, (uid, _)) in &before {
            match now_pods.get(ordinal) {
                Some((new, ready)) if new != uid => {
                    gone.entry(*ordinal).or_insert(now);
                    if *ready {
                        back.entry(*ordinal).or_insert(now);
                    }
                }
                None => {
                    gone.entry(*ordinal).or_insert(now);
                }
                _ => {}
            }
        }
        let done = back.len() == before.len()
            && clusters.get(CLUSTER).await.ok().and_then(|c| c.status).is_some_and(|s| s.rolling_restart.is_none());
        if done {
            break;
        }
        assert!(now < deadline, "the roll did not finish within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let roll_to = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (log, summary) = common::kafka_load::finish_and_check(load, &bootstrap, TOPIC, PARTITIONS);
    let (s50, s99, smax, sn) = percentiles(&log.latencies, steady_from, roll_from);
    let (r50, r99, rmax, rn) = percentiles(&log.latencies, roll_from, roll_to);
    let restarts: Duration = before.keys().filter_map(|o| Some(*back.get(o)? - *gone.get(o)?)).sum();
    let wall = roll_to - roll_from;
    println!("rolling restart of {BROKERS} brokers under load ({} records acknowledged and read back)", summary.acked);
    println!("| produce latency | steady ({sn} acks) | during the roll ({rn} acks) | during / steady |");
    println!("|---|---|---|---|");
    for (name, s, r) in [("p50", s50, r50), ("p99", s99, r99), ("max", smax, rmax)] {
        println!("| {name} | {} | {} | {:.2} |", ms(s), ms(r), r.as_secs_f64() / s.as_secs_f64().max(1e-9));
    }
    println!(
        "roll wall time / sum of the brokers' own restart times (pod gone → Ready): {:.2} ({:.1?} / {:.1?})",
        wall.as_secs_f64() / restarts.as_secs_f64().max(1e-9),
        wall,
        restarts
    );
    drop(operator);
    drop(runner);
}
