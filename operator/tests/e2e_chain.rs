//! One load history through every disruption the operator handles, end to end:
//! the real control plane with the StatefulSet controller, kube-scheduler and
//! kwok nodes, the pod runner running each broker pod as a local `strom-broker`
//! process, the operator as a process, a 3-broker KafkaCluster and a KafkaTopic
//! with 6 partitions, replication factor 3 and `min.insync.replicas=2`. An
//! idempotent acks=all librdkafka producer and a group consumer (subscribed,
//! committing its offsets) run from the first step to the last.
//!
//! In turn: a static broker setting changes (a rolling restart); the operator
//! is upgraded in place (stopped and started again), which must restart no
//! broker: the StatefulSet's update revision, every pod's UID, broker process
//! and restart count stay the same; a `strom.dev/restart` annotation (another
//! roll); a scale-up to 5 with rebalancing; a scale-down to 3 with draining;
//! a broker crashes (SIGKILL) and its pod is deleted; a second setting
//! change, with the operator killed in the middle of that roll. Each roll
//! restarts every broker once, one at a time, the active controller last —
//! seen from the pods, in the order the operator's status reported, with one
//! `RestartingBroker` event per restart. After each step the group consumer has processed every record
//! acknowledged so far exactly once, at its acknowledged offset, never
//! resuming below a committed offset, and the producer had no send that
//! failed for good. The longest produce stall of each step is printed. At
//! the end the whole topic is read back and the group's committed offsets
//! are those the consumer last committed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kafka_load::load::{GroupConsumer, ProduceLoad, group_consumer_config, producer_config};
use common::kafka_load::{StallMeter, check_consumed_so_far};
use common::pod_runner::PodRunner;
use common::roll::{BrokerPods, analyse, check_roll};
use common::{
    OperatorProcess, create_ready_cluster, create_ready_topic, eventually, operator_admin, plane_with_nodes,
    replicas_per_broker,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};
use strom_operator::admin::ClusterAdmin;

const NS: &str = "chain";
const CLUSTER: &str = "strom";
const TOPIC: &str = "orders";
const GROUP: &str = "chain-orders";
const PARTITIONS: i32 = 6;
const BROKERS: i32 = 3;
const SCALED: i32 = 5;
const WAIT: Duration = Duration::from_secs(240);
/// Upper bound for one whole roll of three brokers.
const ROLL_TIMEOUT: Duration = Duration::from_secs(420);
/// How long the group consumer may take to catch up with the acknowledged records.
const CATCH_UP: Duration = Duration::from_secs(120);

/// What one step of the chain measured.
struct StepReport {
    step: &'static str,
    took: Duration,
    longest_stall: Duration,
    acked: usize,
    consumed: usize,
    redelivered: usize,
}

/// The harness of the chain: the cluster's APIs, the load and the consumer.
struct Chain {
    clusters: Api<KafkaCluster>,
    statefulsets: Api<StatefulSet>,
    pods: BrokerPods,
    admin: ClusterAdmin,
    load: Arc<ProduceLoad>,
    consumer: GroupConsumer,
    reports: Vec<StepReport>,
}

impl Chain {
    async fn patch_cluster(&self, patch: serde_json::Value, what: &str) {
        self.clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap_or_else(|e| {
            panic!("{what}: {e}");
        });
    }

    /// Closes a step: the group consumer has every acknowledged record once,
    /// the producer had no failed send; records what the step measured.
    fn finish_step(&mut self, step: &'static str, took: Duration, longest_stall: Duration) {
        let (summary, consumed) =
            tokio::task::block_in_place(|| check_consumed_so_far(step, &self.load, &self.consumer, CATCH_UP));
        let report = StepReport {
            step,
            took,
            longest_stall,
            acked: summary.acked,
            consumed: consumed.reads.len(),
            redelivered: consumed.redelivered,
        };
        eprintln!(
            "[{step}] done after {took:.1?}; longest produce stall {longest_stall:.2?}; {} acknowledged, {} consumed \
             by the group ({} redelivered and skipped by offset, {} commits, {} failed commits, last: {:?})",
            report.acked,
            report.consumed,
            report.redelivered,
            consumed.commits,
            consumed.failed_commits,
            consumed.last_commit_error
        );
        self.reports.push(report);
    }

    /// A rolling restart started by `change`: every broker restarts once, one
    /// at a time, the controller last; the pods and the operator's events
    /// agree on the order. With `kill_operator`, the operator is killed once
    /// the first broker was replaced and started again.
    async fn roll(
        &mut self,
        step: &'static str,
        change: serde_json::Value,
        operator: Option<&mut OperatorProcess>,
    ) -> Duration {
        let started = Instant::now();
        let announced = self.pods.restart_events().await;
        let before = self.pods.uids().await;
        let watcher = self.pods.watch(self.load.clone());
        let meter = StallMeter::start(self.load.clone());
        self.patch_cluster(change, step).await;
        if let Some(operator) = operator {
            eventually(&format!("{step}: the first broker to be replaced"), ROLL_TIMEOUT, || async {
                let now = self.pods.uids().await;
                before.iter().any(|(o, uid)| now.get(o).is_some_and(|u| u != uid)).then_some(())
            })
            .await;
            operator.kill();
            tokio::time::sleep(Duration::from_secs(2)).await;
            operator.restart();
        }
        self.pods.wait_rolled(&self.admin, &before, BROKERS, ROLL_TIMEOUT, step).await;
        let report = analyse(&watcher.finish().await, BROKERS);
        let stall = meter.finish().await;
        check_roll(step, &report, BROKERS);
        let announced = self.pods.restart_events().await - announced;
        assert_eq!(announced, BROKERS, "{step}: the operator's RestartingBroker events count one restart per broker");
        self.finish_step(step, started.elapsed(), stall);
        stall
    }
}

/// The operator's count of successful KafkaCluster reconciliations, from its `/metrics`.
fn cluster_reconciliations(operator: &OperatorProcess) -> Option<u64> {
    let metrics = operator.http_get("/metrics")?;
    let line = metrics.lines().find(|l| {
        l.starts_with("strom_operator_reconciliations_total")
            && l.contains("controller=\"kafkacluster\"")
            && l.contains("result=\"ok\"")
    })?;
    line.rsplit(' ').next()?.parse::<f64>().ok().map(|v| v as u64)
}

/// Broker process ids by pod name.
fn broker_pids(runner: &PodRunner, brokers: i32) -> BTreeMap<String, Option<u32>> {
    (0..brokers).map(|i| format!("{CLUSTER}-{i}")).map(|pod| (pod.clone(), runner.broker_pid(&pod))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_load_history_through_rolls_upgrade_scaling_and_crashes_loses_nothing() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start(&plane, NS, CLUSTER);
    let admin_override = format!("{NS}/{CLUSTER}={}", runner.admin_addresses(SCALED));
    let operator_args = ["--namespaces", NS, "--no-leader-election", "--admin-override", &admin_override];
    let mut operator = OperatorProcess::start(&plane, &operator_args);

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "replicas": BROKERS,
        // Few group-offset partitions, so that moving replicas on scaling and
        // waiting for every ISR on each roll stay short.
        "config": { "replica.fetch.max.bytes": "1048576", "offsets.topic.num.partitions": "6" },
        "storage": { "size": "1Gi" },
        "rebalance": { "throttleBytesPerSecond": 8388608 },
    });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    let spec = json!({ "clusterRef": CLUSTER, "partitions": PARTITIONS, "replicationFactor": 3,
                       "config": { "min.insync.replicas": "2" } });
    create_ready_topic(&topics, TOPIC, spec, WAIT).await;

    // Brokers 0..3 stay throughout, so they are the clients' bootstrap servers.
    let bootstrap = runner.bootstrap(BROKERS);
    let load = Arc::new(ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, Duration::from_millis(2)));
    let consumer = GroupConsumer::start(group_consumer_config(&bootstrap, GROUP), TOPIC);
    let mut chain = Chain {
        clusters: clusters.clone(),
        statefulsets: Api::namespaced(client.clone(), NS),
        pods: BrokerPods::new(&client, NS, CLUSTER),
        admin: operator_admin(&client, NS, CLUSTER, &runner.admin_addresses(SCALED)).await,
        load,
        consumer,
        reports: Vec::new(),
    };
    tokio::task::block_in_place(|| chain.load.wait_for_progress(PARTITIONS, 200, WAIT));
    let meter = StallMeter::start(chain.load.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stall = meter.finish().await;
    chain.finish_step("steady state (5 s)", Duration::from_secs(5), stall);

    // 1. A static broker setting changes: the config hash on the pod template rolls every broker.
    let change = json!({ "spec": { "config": { "replica.fetch.max.bytes": "2097152" } } });
    chain.roll("config change (rolling restart)", change, None).await;

    // 2. The operator is upgraded in place: it stops and starts again, and its
    //    pod template depends on the spec alone, so no broker restarts.
    let started = Instant::now();
    let meter = StallMeter::start(chain.load.clone());
    let sts = chain.statefulsets.get(CLUSTER).await.expect("the StatefulSet");
    let revision = sts.status.as_ref().and_then(|s| s.update_revision.clone());
    let template = sts.spec.template.clone();
    let uids = chain.pods.uids().await;
    let restarts = chain.pods.restart_counts().await;
    let pids = broker_pids(&runner, BROKERS);
    assert!(pids.values().all(Option::is_some), "every broker process runs: {pids:?}");
    operator.stop();
    operator.restart();
    // The new process has reconciled the cluster (its first pass applies the
    // StatefulSet it renders) and had time to act on anything it would change.
    eventually("the restarted operator to reconcile the KafkaCluster", WAIT, || async {
        cluster_reconciliations(&operator).is_some_and(|n| n >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sts = chain.statefulsets.get(CLUSTER).await.expect("the StatefulSet");
    let status = sts.status.as_ref().expect("the StatefulSet's status");
    assert_eq!(status.update_revision, revision, "the operator's restart changed the StatefulSet's update revision");
    assert_eq!(status.current_revision, status.update_revision, "pods are behind the StatefulSet's template");
    assert_eq!(sts.spec.template, template, "the operator's restart changed the template");
    assert_eq!(chain.pods.uids().await, uids, "the operator's restart replaced a broker pod");
    assert_eq!(chain.pods.restart_counts().await, restarts, "the operator's restart restarted a broker container");
    assert_eq!(broker_pids(&runner, BROKERS), pids, "the operator's restart restarted a broker process");
    let stall = meter.finish().await;
    chain.finish_step("operator upgrade (no broker restarts)", started.elapsed(), stall);

    // 3. A manual restart through the annotation.
    let change = json!({ "metadata": { "annotations": { "strom.dev/restart": "2026-11-26T12:00:00Z" } } });
    chain.roll("manual restart (strom.dev/restart)", change, None).await;

    // 4. Scale up to 5: the new brokers get replicas until every broker holds within one of the others.
    let started = Instant::now();
    let meter = StallMeter::start(chain.load.clone());
    chain.patch_cluster(json!({ "spec": { "replicas": SCALED } }), "scale up").await;
    let balanced = eventually("replicas to spread onto brokers 3 and 4", WAIT, || async {
        let (load, moving) = replicas_per_broker(&chain.admin).await?;
        let (most, least) = (load.values().max()?, load.values().min()?);
        (!moving && load.len() == SCALED as usize && most - least <= 1).then_some(load)
    })
    .await;
    eprintln!("after scaling up: replicas per broker {balanced:?}");
    let stall = meter.finish().await;
    chain.finish_step("scale-up 3 → 5 with rebalancing", started.elapsed(), stall);

    // 5. Scale down to 3: brokers 3 and 4 are drained, then their pods removed.
    let started = Instant::now();
    let meter = StallMeter::start(chain.load.clone());
    chain.patch_cluster(json!({ "spec": { "replicas": BROKERS } }), "scale down").await;
    eventually("the StatefulSet to shrink to 3 after draining", WAIT, || async {
        let sts = chain.statefulsets.get(CLUSTER).await.ok()?;
        let ready = sts.status.as_ref()?.ready_replicas.unwrap_or(0);
        let pods = chain.pods.uids().await;
        (sts.spec.replicas == Some(BROKERS) && ready == BROKERS && pods.len() == BROKERS as usize).then_some(())
    })
    .await;
    let (per_broker, moving) = replicas_per_broker(&chain.admin).await.expect("describe the topics");
    assert!(!moving, "moves still running after the scale-down");
    assert!(per_broker.keys().all(|b| *b < BROKERS), "replicas left on removed brokers: {per_broker:?}");
    let stall = meter.finish().await;
    chain.finish_step("scale-down 5 → 3 with draining", started.elapsed(), stall);

    // 6. A broker crashes and its pod is deleted: SIGKILL (no controlled
    //    shutdown), then the pod object removed at once, as after a node
    //    failure; the StatefulSet makes a new pod on the same claim.
    let started = Instant::now();
    let meter = StallMeter::start(chain.load.clone());
    let victim = format!("{CLUSTER}-1");
    let before = chain.pods.uids().await;
    let pid = runner.broker_pid(&victim).expect("the pid of broker 1");
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill -9 broker 1");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    pod_api
        .delete(&victim, &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
        .await
        .expect("delete the crashed broker's pod");
    let acked_before = chain.load.acked();
    eventually("a new pod of broker 1 to be ready, in every ISR again, and produce to go on", WAIT, || async {
        let now = chain.pods.uids().await;
        let replaced = now.get(&1).is_some_and(|uid| before.get(&1) != Some(uid));
        let running = runner.broker_pid(&victim).is_some_and(|p| p != pid);
        let cluster = chain.clusters.get(CLUSTER).await.ok()?;
        let ready = cluster.status.as_ref().is_some_and(|s| s.ready_brokers == BROKERS);
        let described = chain.admin.describe_cluster().await.ok()?;
        let in_sync = described.under_replicated_partitions.is_empty();
        (replaced && running && ready && in_sync && chain.load.acked() > acked_before + 500).then_some(())
    })
    .await;
    let stall = meter.finish().await;
    chain.finish_step("broker crash and pod deletion", started.elapsed(), stall);

    // 7. Another setting change, with the operator killed in the middle of the roll.
    let change = json!({ "spec": { "config": { "replica.fetch.max.bytes": "4194304" } } });
    chain.roll("config change, operator killed mid-roll", change, Some(&mut operator)).await;

    // The whole topic read back, and the group's offsets as the consumer last committed them.
    let Chain { load, consumer, reports, .. } = chain;
    let consumed = consumer.finish();
    let load = Arc::try_unwrap(load).unwrap_or_else(|_| panic!("the watchers released the load"));
    if consumed.failed_commits > 0 {
        eprintln!("group consumer: {} failed commits, last {:?}", consumed.failed_commits, consumed.last_commit_error);
    }
    common::kafka_load::finish_and_check(load, &bootstrap, TOPIC, PARTITIONS);
    let committed = tokio::task::block_in_place(|| committed_offsets(&bootstrap));
    assert_eq!(committed, consumed.committed, "the group's committed offsets are the consumer's last commit");
    assert_eq!(consumed.committed, consumed.next, "the consumer's last commit covers everything it processed");

    eprintln!("\n| step | took | longest produce stall | acknowledged so far | consumed | redelivered |");
    eprintln!("|---|---|---|---|---|---|");
    for r in &reports {
        eprintln!(
            "| {} | {:.1?} | {:.2?} | {} | {} | {} |",
            r.step, r.took, r.longest_stall, r.acked, r.consumed, r.redelivered
        );
    }
    drop(operator);
    drop(runner);
}

/// The group's committed offsets of `TOPIC`, by partition, as a new member sees them.
fn committed_offsets(bootstrap: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer =
        group_consumer_config(bootstrap, GROUP).create().expect("create a consumer of the group");
    let mut partitions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        partitions.add_partition(TOPIC, p);
    }
    let committed =
        consumer.committed_offsets(partitions, Duration::from_secs(30)).expect("fetch the group's committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}
