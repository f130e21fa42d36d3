//! Watching a KafkaCluster's broker pods through a rolling restart, for the
//! end-to-end tests: a [`Watcher`] samples pods, the reported controller and
//! the producer's acknowledgements; [`analyse`] turns the samples into the
//! restart order, the most brokers down at once and the longest produce
//! stall; [`check_roll`] asserts one broker at a time, each once, the active
//! controller last, and that the order the operator reported in its status
//! (`rollingRestart.currentBroker`) is the order the pods were replaced. Its
//! `RestartingBroker` events count the restarts it carried out
//! ([`BrokerPods::restart_events`]; the event recorder folds repeats of one
//! reason into a series, so they give a count, not an order).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use strom_crds::KafkaCluster;
use strom_operator::admin::ClusterAdmin;

use super::kafka_load::load::ProduceLoad;

/// What the watcher saw at one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    /// Pod UIDs by ordinal, for pods that exist and are not terminating.
    pub uids: BTreeMap<i32, String>,
    /// Ordinals whose pod is Ready.
    pub ready: BTreeSet<i32>,
    /// The active controller as the operator last reported it.
    pub controller: Option<i32>,
    /// The broker the operator reported restarting last (`rollingRestart.currentBroker`).
    pub restarting: Option<i32>,
    /// Records acknowledged so far.
    pub acked: usize,
}

/// The broker pods and status of one KafkaCluster.
#[derive(Clone)]
pub struct BrokerPods {
    pods: Api<Pod>,
    clusters: Api<KafkaCluster>,
    events: Api<Event>,
    cluster: String,
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl BrokerPods {
    /// The pods of KafkaCluster `cluster` in `namespace`.
    pub fn new(client: &kube::Client, namespace: &str, cluster: &str) -> BrokerPods {
        BrokerPods {
            pods: Api::namespaced(client.clone(), namespace),
            clusters: Api::namespaced(client.clone(), namespace),
            events: Api::namespaced(client.clone(), namespace),
            cluster: cluster.to_string(),
        }
    }

    fn ordinal(&self, pod: &Pod) -> Option<i32> {
        pod.metadata.name.as_deref()?.strip_prefix(&format!("{}-", self.cluster))?.parse().ok()
    }

    async fn list(&self) -> kube::Result<Vec<Pod>> {
        let selector = format!("app.kubernetes.io/instance={}", self.cluster);
        Ok(self.pods.list(&ListParams::default().labels(&selector)).await?.items)
    }

    /// Pod UIDs by ordinal.
    pub async fn uids(&self) -> BTreeMap<i32, String> {
        let pods = self.list().await.expect("list the broker pods");
        pods.iter().filter_map(|p| Some((self.ordinal(p)?, p.metadata.uid.clone()?))).collect()
    }

    /// Label `key` of each pod by ordinal (pods without it are left out).
    pub async fn label(&self, key: &str) -> BTreeMap<i32, String> {
        let pods = self.list().await.expect("list the broker pods");
        pods.iter().filter_map(|p| Some((self.ordinal(p)?, p.metadata.labels.as_ref()?.get(key)?.clone()))).collect()
    }

    /// Container restart counts by ordinal (a broker process restarted in place).
    pub async fn restart_counts(&self) -> BTreeMap<i32, i32> {
        let pods = self.list().await.expect("list the broker pods");
        pods.iter()
            .filter_map(|p| {
                let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
                Some((self.ordinal(p)?, statuses.iter().map(|c| c.restart_count).sum()))
            })
            .collect()
    }

    /// Starts sampling pods, status and `load`'s acknowledgements every 200 ms.
    pub fn watch(&self, load: Arc<ProduceLoad>) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (stop, this) = (stop.clone(), self.clone());
            async move {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let (Ok(list), Ok(cluster)) = (this.list().await, this.clusters.get(&this.cluster).await) {
                        let status = cluster.status.as_ref();
                        let mut sample = Sample {
                            at: Instant::now(),
                            uids: BTreeMap::new(),
                            ready: BTreeSet::new(),
                            controller: status.and_then(|s| s.controller_id),
                            restarting: status.and_then(|s| s.rolling_restart.as_ref()?.current_broker),
                            acked: load.acked(),
                        };
                        for pod in list {
                            let Some(ordinal) = this.ordinal(&pod) else { continue };
                            if pod.metadata.deletion_timestamp.is_none() {
                                sample.uids.insert(ordinal, pod.metadata.uid.clone().unwrap_or_default());
                                if is_ready(&pod) {
                                    sample.ready.insert(ordinal);
                                }
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

    /// Waits until every one of `brokers` pods was replaced since `before`, is
    /// Ready, and the operator reports no roll in progress; on timeout, fails
    /// with the last status seen and the under-replicated partitions.
    pub async fn wait_rolled(
        &self,
        admin: &ClusterAdmin,
        before: &BTreeMap<i32, String>,
        brokers: i32,
        timeout: Duration,
        what: &str,
    ) {
        let deadline = Instant::now() + timeout;
        let mut last_status = None;
        loop {
            if let (Ok(list), Ok(cluster)) = (self.list().await, self.clusters.get(&self.cluster).await) {
                let replaced = list
                    .iter()
                    .filter(|p| {
                        is_ready(p) && self.ordinal(p).is_some_and(|o| before.get(&o) != p.metadata.uid.as_ref())
                    })
                    .count();
                if let Some(status) = cluster.status {
                    if replaced == brokers as usize
                        && status.rolling_restart.is_none()
                        && status.ready_brokers == brokers
                    {
                        return;
                    }
                    last_status = Some(status);
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: the roll did not finish within {timeout:?}; last status: {last_status:#?}\n{}",
                    under_replicated(admin).await
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// How many times the operator announced restarting a broker of the
    /// cluster (`RestartingBroker` events, each series counted in full).
    pub async fn restart_events(&self) -> i32 {
        let events = self.events.list(&ListParams::default()).await.expect("list the events");
        events
            .items
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some("RestartingBroker")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(self.cluster.as_str())
            })
            .map(|e| e.series.as_ref().map_or(1, |s| s.count))
            .sum()
    }
}

/// Samples taken until [`Watcher::finish`].
pub struct Watcher {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Watcher {
    /// Stops sampling; the samples taken.
    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the watcher task")
    }
}

/// What one roll looked like, from the samples taken during it.
#[derive(Debug)]
pub struct RollReport {
    /// Ordinals in the order their pod was replaced.
    pub order: Vec<i32>,
    /// Brokers in the order the operator's status named them as restarting.
    pub reported: Vec<i32>,
    /// The most brokers not ready at one instant.
    pub most_down: usize,
    /// The active controller when the roll began.
    pub controller_at_start: Option<i32>,
    /// Whether the controller changed during the roll (other than by its own restart).
    pub controller_moved: bool,
    /// The longest time without a new acknowledgement.
    pub longest_stall: Duration,
}

/// The report of a roll of a cluster of `brokers` from its samples.
pub fn analyse(samples: &[Sample], brokers: i32) -> RollReport {
    let first = samples.first().expect("samples of the roll");
    let mut order = Vec::new();
    let mut reported = Vec::new();
    let mut most_down = 0;
    let mut longest_stall = Duration::ZERO;
    let mut last_progress = (first.at, first.acked);
    let controller_at_start = first.controller;
    let mut controller_moved = false;
    for s in samples {
        most_down = most_down.max((brokers as usize).saturating_sub(s.ready.len()));
        for (ordinal, uid) in &s.uids {
            if first.uids.get(ordinal) != Some(uid) && !order.contains(ordinal) {
                order.push(*ordinal);
            }
        }
        if let Some(broker) = s.restarting
            && reported.last() != Some(&broker)
        {
            reported.push(broker);
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
    RollReport { order, reported, most_down, controller_at_start, controller_moved, longest_stall }
}

/// Asserts a roll of `brokers`: each restarted once, never two down at once,
/// the active controller last (unless it moved by itself during the roll).
pub fn check_roll(what: &str, report: &RollReport, brokers: i32) {
    eprintln!("{what}: {report:?}");
    assert_eq!(report.order.len(), brokers as usize, "{what}: every broker restarted once: {report:?}");
    assert!(report.most_down <= 1, "{what}: two brokers were down at once: {report:?}");
    assert_eq!(report.reported, report.order, "{what}: the status names the brokers in the order they restarted");
    if let (Some(controller), false) = (report.controller_at_start, report.controller_moved) {
        assert_eq!(report.order.last(), Some(&controller), "{what}: the active controller restarts last: {report:?}");
    }
}

/// The under-replicated partitions with their replicas, ISR and leader, for a failure message.
pub async fn under_replicated(admin: &ClusterAdmin) -> String {
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
