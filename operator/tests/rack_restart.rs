//! Rack-batched rolling restarts end to end, under load: six brokers on three
//! nodes in zones a, b and c (kwok keeps the three nodes, kube-scheduler
//! places the pods by the operator's zone spread constraint, the API server
//! copies each node's zone label onto the pods it binds, and the brokers take
//! it as their rack), `spec.rack.batchedRestarts` on, topics
//! with one replica per rack and `min.insync.replicas=2`, and an idempotent
//! acks=all producer writing throughout.
//!
//! A `strom.dev/restart` roll must restart every broker once, whole racks at
//! a time where that is safe (two brokers down together, never more), the
//! active controller's rack last; every partition's ISR must stay at or above
//! `min.insync.replicas` throughout (sampled from the Admin API), and every
//! acknowledged record is read back exactly once, in order, with no failed
//! send.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::kafka_load::load::{ProduceLoad, producer_config};
use common::pod_runner::PodRunner;
use common::roll::{BrokerPods, analyse};
use common::{OperatorProcess, create_ready_cluster, create_ready_topic, operator_admin, plane_with_nodes};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};
use strom_operator::admin::ClusterAdmin;

const NS: &str = "racks";
const CLUSTER: &str = "strom";
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
const BROKERS: i32 = 6;
const ZONES: [&str; 3] = ["a", "b", "c"];
const MIN_INSYNC: usize = 2;
const WAIT: Duration = Duration::from_secs(240);
const ROLL_TIMEOUT: Duration = Duration::from_secs(600);

/// Zone label the API server copies from a pod's node onto the pod.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Samples every partition's ISR until stopped; the smallest ISR seen per partition.
struct IsrSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeMap<String, usize>>,
}

impl IsrSampler {
    fn start(admin: ClusterAdmin) -> IsrSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut smallest: BTreeMap<String, usize> = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(topics) = admin.describe_topics(&[]).await {
                        for t in &topics {
                            for p in &t.partitions {
                                let seen = smallest.entry(format!("{}-{}", t.name, p.partition)).or_insert(usize::MAX);
                                *seen = (*seen).min(p.isr.len());
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                smallest
            }
        });
        IsrSampler { stop, task }
    }

    async fn finish(self) -> BTreeMap<String, usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the ISR sampler")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rack_batched_restarts_keep_min_isr_and_lose_nothing() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start_in_zones(&plane, NS, CLUSTER, &ZONES);
    let operator = OperatorProcess::for_runner(&plane, &runner, NS, CLUSTER, BROKERS, &[]);

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "replicas": BROKERS,
        "config": { "min.insync.replicas": MIN_INSYNC.to_string() },
        "storage": { "size": "1Gi" },
        "rack": { "batchedRestarts": true },
    });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    let spec = json!({ "clusterRef": CLUSTER, "partitions": PARTITIONS, "replicationFactor": 3 });
    create_ready_topic(&topics, TOPIC, spec, WAIT).await;

    let admin = operator_admin(&client, NS, CLUSTER, &runner.admin_addresses(BROKERS)).await;
    // The scheduler spread the brokers evenly over the zones; each broker
    // registered with its node's zone as its rack, and the topic has one
    // replica per rack.
    let pods = BrokerPods::new(&client, NS, CLUSTER);
    let pod_zones = pods.label(ZONE_LABEL).await;
    let zone_of = |broker: i32| pod_zones.get(&broker).map_or("none", String::as_str);
    for zone in ZONES {
        let brokers: Vec<i32> = pod_zones.iter().filter(|(_, z)| *z == zone).map(|(b, _)| *b).collect();
        assert_eq!(brokers.len(), BROKERS as usize / ZONES.len(), "brokers in zone {zone}: {pod_zones:?}");
    }
    let described = admin.describe_cluster().await.expect("describe the cluster");
    let racks: BTreeMap<i32, Option<String>> =
        described.brokers.iter().map(|b| (b.broker_id, b.rack.clone())).collect();
    let expected: BTreeMap<i32, Option<String>> = (0..BROKERS).map(|b| (b, Some(zone_of(b).to_string()))).collect();
    assert_eq!(racks, expected, "every broker's rack is its node's zone");
    let topic = admin.describe_topic(TOPIC).await.expect("describe the topic").expect("the topic exists");
    for p in &topic.partitions {
        let mut zones: Vec<&str> = p.replicas.iter().map(|b| zone_of(*b)).collect();
        zones.sort_unstable();
        assert_eq!(zones, ZONES, "partition {} has one replica per rack: {:?}", p.partition, p.replicas);
    }

    let bootstrap = runner.bootstrap(BROKERS);
    // One request in flight per connection: see producer_config.
    let config = producer_config(&bootstrap);
    let load = Arc::new(ProduceLoad::start(config, TOPIC, PARTITIONS, Duration::from_millis(2)));
    load.wait_for_progress(PARTITIONS, 200, WAIT);
    // Batching needs every partition fully in sync (`__consumer_offsets`
    // included, created with the load's group): a roll that starts while a
    // follower catches up goes one broker at a time, which is right but is
    // not what this test is about.
    common::eventually("every partition in sync before the roll", WAIT, || async {
        let described = admin.describe_cluster().await.ok()?;
        described.under_replicated_partitions.is_empty().then_some(())
    })
    .await;

    let before = pods.uids().await;
    let events_before = pods.restart_events().await;
    let watcher = pods.watch(load.clone());
    let isr = IsrSampler::start(admin.clone());
    let patch = json!({ "metadata": { "annotations": { "strom.dev/restart": "2026-11-26T12:00:00Z" } } });
    clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate for a restart");
    pods.wait_rolled(&admin, &before, BROKERS, ROLL_TIMEOUT, "rack-batched restart").await;
    let report = analyse(&watcher.finish().await, BROKERS);
    let smallest_isr = isr.finish().await;
    eprintln!("rack-batched restart: {report:?}; smallest ISR seen: {:?}", smallest_isr.values().min());

    assert_eq!(report.order.len(), BROKERS as usize, "every broker restarted once: {report:?}");
    assert_eq!(pods.restart_events().await - events_before, BROKERS, "one RestartingBroker event per broker");
    assert!(report.most_down >= 2, "no rack restarted as a whole: {report:?}");
    assert!(report.most_down <= 2, "more than one rack's brokers were down at once: {report:?}");
    let below: Vec<(&String, &usize)> = smallest_isr.iter().filter(|(_, n)| **n < MIN_INSYNC).collect();
    assert!(!smallest_isr.is_empty(), "the ISR sampler saw partitions");
    assert!(below.is_empty(), "partitions whose ISR fell below min.insync.replicas={MIN_INSYNC}: {below:?}");
    if let (Some(controller), false) = (report.controller_at_start, report.controller_moved) {
        let last_rack = zone_of(*report.order.last().expect("an order"));
        assert_eq!(zone_of(controller), last_rack, "the active controller's rack restarts last: {report:?}");
    }

    let load = Arc::try_unwrap(load).unwrap_or_else(|_| panic!("the watchers released the load"));
    common::kafka_load::finish_and_check(load, &bootstrap, TOPIC, PARTITIONS);
    drop(operator);
    drop(runner);
}
