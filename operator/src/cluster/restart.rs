//! Carrying out a rolling restart and leader balancing for one reconcile pass.
//!
//! [`Roll::step`] lists the cluster's broker pods, asks
//! [`crate::rolling::next_step`] what to do, and when it is a restart: asks
//! the Admin API whether the broker may stop (`IsSafeToRestart`), moves its
//! leaderships away (`ControlledShutdown`, repeated on later passes until it
//! leads nothing), then deletes its pod — with a UID precondition, so a pod
//! recreated meanwhile is never deleted by mistake. The StatefulSet controller
//! recreates the pod from the current template. Progress goes to
//! `status.rollingRestart` and an Event per restarted broker.
//!
//! With `spec.rack.batchedRestarts`, a restart step first asks
//! [`crate::rack_batch::next_batch`] whether a whole rack may go: then every
//! outdated broker of that rack hands its leaderships over and their pods are
//! deleted together (the batch check stands in for `IsSafeToRestart`).
//!
//! [`balance_leaders`] runs when no roll is in progress and every broker is
//! ready: a preferred-leader election when [`crate::leaders::plan`] finds
//! leadership skewed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use strom_crds::{KafkaCluster, RollingRestartStatus};

use super::{ClusterError, Observed};
use crate::admin::ClusterAdmin;
use crate::builders::{self, ClusterNames};
use crate::context::Context;
use crate::leaders;
use crate::rack_batch::{self, BatchInput, PartitionIsr, RackBatch};
use crate::rolling::{
    self, BROKER_RESTART_TIMEOUT, BrokerPod, ClusterHealth, RESTART_ANNOTATION, REVISION_LABEL, RollStep,
};

/// Broker pods, their UIDs by pod name, and their creation times by pod name.
type BrokerPods = (Vec<BrokerPod>, BTreeMap<String, String>, BTreeMap<String, Timestamp>);

/// Label with the pod's ordinal, set by the StatefulSet controller.
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What one pass of the roll did and found.
#[derive(Debug, Default)]
pub struct RollOutcome {
    /// Brokers on an older pod template.
    pub outdated: i32,
    /// `status.rollingRestart`; `None` when no broker is outdated.
    pub status: Option<RollingRestartStatus>,
    /// A pod was deleted in this pass.
    pub restarted: bool,
    /// The last restarted broker has not come back within the timeout.
    pub timed_out: Option<String>,
    /// The next broker may never stop safely (the Admin API refused while
    /// every broker is ready and in sync): the roll is stuck until the
    /// topics or the cluster change.
    pub blocked: Option<String>,
}

/// What the checks before a restart decided.
enum Prepared {
    /// Stop the broker now.
    Go,
    /// Ask again on a later pass (leaderships still moving, the API failed).
    Wait(String),
    /// Refused although the cluster is healthy: waiting will not help.
    Refused(String),
}

/// One cluster's roll, for one pass.
pub struct Roll<'a> {
    pub cluster: &'a KafkaCluster,
    pub names: &'a ClusterNames,
    pub ctx: &'a Context,
    pub admin: &'a ClusterAdmin,
    /// `status.rollingRestart` as the last pass wrote it.
    pub previous: Option<&'a RollingRestartStatus>,
}

impl Roll<'_> {
    /// Decides and, when the cluster is ready for it, restarts the next broker.
    /// `template_seen`: the StatefulSet controller has observed the current
    /// template (until then its update revision is the old one).
    pub async fn step(
        &self,
        update_revision: Option<&str>,
        template_seen: bool,
        observed: &Observed,
    ) -> Result<RollOutcome, ClusterError> {
        if !template_seen {
            let status = self.previous.cloned().unwrap_or_else(|| RollingRestartStatus {
                message: "waiting: the StatefulSet controller has not seen the new pod template yet".into(),
                ..RollingRestartStatus::default()
            });
            return Ok(RollOutcome { outdated: status.brokers_left, status: Some(status), ..RollOutcome::default() });
        }
        let (pods, uids, created) = self.broker_pods().await?;
        let health = ClusterHealth {
            controller_id: observed.controller_id,
            under_replicated: observed.under_replicated,
            offline: observed.offline,
        };
        let replicas = self.cluster.spec.replicas;
        // The broker restarted last in this roll: the one whose pod is going or
        // gone, else the newest pod on the update revision (read from the
        // pods, not from a status that may be stale).
        let (newest_updated, newest_at) = pods
            .iter()
            .filter(|p| p.revision.is_some() && p.revision.as_deref() == update_revision)
            .filter_map(|p| Some((created.get(&p.name)?, p.ordinal)))
            .max()
            .map_or((None, None), |(at, ordinal)| (Some(ordinal), Some(at.to_string())));
        let mut current_broker = rolling::restarting_broker(replicas, &pods, newest_updated);
        let mut restarted_at = if current_broker == newest_updated {
            newest_at
        } else {
            // Its restart began when the pass that deleted its pod said so.
            self.previous.filter(|p| p.current_broker == current_broker).and_then(|p| p.restarted_at.clone())
        };
        let mut outcome = RollOutcome::default();
        let (outdated, message) = match rolling::next_step(replicas, &pods, update_revision, health) {
            RollStep::Idle => {
                // Every pod is on the current template; the roll is over once
                // the broker restarted last is back and in every ISR.
                let Some((broker, reason)) = self.previous.and_then(|_| rolling::not_settled(replicas, &pods, health))
                else {
                    return Ok(outcome);
                };
                outcome.timed_out = timed_out(broker, current_broker, restarted_at.as_deref());
                (0, format!("waiting for the last restarted broker to settle: {reason}"))
            }
            RollStep::Wait { outdated, broker, reason } => {
                outcome.timed_out = timed_out(broker, current_broker, restarted_at.as_deref());
                (outdated, format!("waiting: {reason}"))
            }
            RollStep::Restart { outdated, broker, pod } => {
                let batch = self.rack_batch(&pods, update_revision).await;
                let targets: Vec<(i32, String)> = match &batch {
                    Some(b) => pods
                        .iter()
                        .filter(|p| b.brokers.contains(&p.ordinal))
                        .map(|p| (p.ordinal, p.name.clone()))
                        .collect(),
                    None => vec![(broker, pod.clone())],
                };
                let prepared = match &batch {
                    Some(b) => self.prepare_rack(b).await,
                    None => self.prepare(broker).await,
                };
                match prepared {
                    Prepared::Go => {
                        let requested =
                            batch.is_none() && pods.iter().any(|p| p.ordinal == broker && p.restart_requested);
                        let deleted = self.delete_pods(&targets, &uids, batch.as_ref(), outdated, requested).await?;
                        let Some((first, note)) = deleted else {
                            let note = format!("waiting: pod {pod} was replaced meanwhile; looking again");
                            return Ok(RollOutcome {
                                outdated,
                                status: Some(RollingRestartStatus {
                                    brokers_left: outdated,
                                    current_broker,
                                    restarted_at,
                                    message: note,
                                }),
                                ..outcome
                            });
                        };
                        outcome.restarted = true;
                        current_broker = Some(first);
                        restarted_at = Some(Timestamp::now().to_string());
                        (outdated, note)
                    }
                    Prepared::Wait(wait) => (outdated, format!("waiting: {wait}")),
                    Prepared::Refused(reason) => {
                        outcome.blocked = Some(reason.clone());
                        (outdated, format!("blocked: {reason}"))
                    }
                }
            }
        };
        if self.previous.map(|p| p.message.as_str()) != Some(message.as_str()) && !outcome.restarted {
            tracing::info!(cluster = %builders::object_key(self.cluster), outdated, %message, "rolling restart");
        }
        outcome.outdated = outdated;
        outcome.status = Some(RollingRestartStatus { brokers_left: outdated, current_broker, restarted_at, message });
        Ok(outcome)
    }

    /// The checks before a broker stops (called only when every broker is
    /// ready and no partition is under-replicated).
    async fn prepare(&self, broker: i32) -> Prepared {
        let spec = &self.cluster.spec;
        if spec.replicas == 1 {
            // A single broker cannot hand anything over: its restart is an outage.
            return Prepared::Go;
        }
        // The only controller voter is never "safe" to stop (no majority stays
        // up); a one-voter quorum accepts that outage by design, so its
        // restart is not gated on the check. Leadership still moves away first.
        if !(spec.voters() == 1 && broker == 0) {
            match self.admin.is_safe_to_restart(broker).await {
                Ok(safety) if !safety.safe => {
                    return Prepared::Refused(format!("broker {broker} may not stop: {}", safety.reason));
                }
                Ok(_) => {}
                Err(e) => return Prepared::Wait(format!("the admin API failed: {e}")),
            }
        }
        match self.admin.controlled_shutdown(broker).await {
            Ok(remaining) if remaining.is_empty() => Prepared::Go,
            Ok(remaining) => {
                Prepared::Wait(format!("moving {} leadership(s) off broker {broker} before it stops", remaining.len()))
            }
            Err(e) => Prepared::Wait(format!("the admin API failed: {e}")),
        }
    }

    /// Deletes the pods of `targets` (one broker, or a rack's `batch`), each
    /// with its UID precondition, with an Event and a log line per broker.
    /// The first broker deleted and the status message; `None` when every
    /// pod was gone or replaced meanwhile.
    async fn delete_pods(
        &self,
        targets: &[(i32, String)],
        uids: &BTreeMap<String, String>,
        batch: Option<&RackBatch>,
        outdated: i32,
        requested: bool,
    ) -> Result<Option<(i32, String)>, ClusterError> {
        let mut deleted = Vec::new();
        for (ordinal, name) in targets {
            if self.delete_pod(name, uids.get(name).cloned()).await? {
                deleted.push((*ordinal, name));
            }
        }
        let left = outdated - deleted.len() as i32;
        let mut first = None;
        for (ordinal, name) in deleted {
            let note = match batch {
                Some(b) => format!(
                    "restarting broker {ordinal} (pod {name}) with the rest of rack {} (brokers {:?}) on the current \
                     pod template; {left} left after them",
                    b.rack, b.brokers
                ),
                None if requested => format!(
                    "restarting broker {ordinal} (pod {name}) as its {RESTART_ANNOTATION} annotation asks; \
                     {left} left after it"
                ),
                None => format!(
                    "restarting broker {ordinal} (pod {name}) on the current pod template; {left} left after it"
                ),
            };
            tracing::info!(cluster = %builders::object_key(self.cluster), broker = ordinal, pod = %name, outdated, "restarting broker");
            self.ctx.event(&self.cluster.object_ref(&()), false, "RestartingBroker", "Restart", note.clone()).await;
            first.get_or_insert((ordinal, note));
        }
        Ok(first)
    }

    /// The rack to restart as a whole this step, when `spec.rack.batchedRestarts`
    /// is on and [`rack_batch::next_batch`] finds one; `None` means one broker.
    async fn rack_batch(&self, pods: &[BrokerPod], update_revision: Option<&str>) -> Option<RackBatch> {
        let spec = &self.cluster.spec;
        if !spec.rack.as_ref().is_some_and(|r| r.batched_restarts) {
            return None;
        }
        let key = builders::object_key(self.cluster);
        let outdated: Vec<i32> = pods
            .iter()
            .filter(|p| p.ordinal < spec.replicas && p.revision.as_deref() != update_revision)
            .map(|p| p.ordinal)
            .collect();
        let (cluster, topics) = match (self.admin.describe_cluster().await, self.admin.describe_topics(&[]).await) {
            (Ok(c), Ok(t)) => (c, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(cluster = %key, error = %e, "cannot read racks and ISRs; restarting one broker");
                return None;
            }
        };
        let racks: BTreeMap<i32, String> =
            cluster.brokers.iter().filter_map(|b| Some((b.broker_id, b.rack.clone()?))).collect();
        // A topic's own setting, else the cluster's, else Kafka's default of 1.
        let min_insync = |topic_setting: Option<&String>| {
            topic_setting
                .or_else(|| spec.config.get("min.insync.replicas"))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(1)
        };
        let partitions: Vec<PartitionIsr> = topics
            .iter()
            .flat_map(|t| {
                let min_insync = min_insync(t.configs.get("min.insync.replicas"));
                t.partitions.iter().map(move |p| PartitionIsr {
                    name: format!("{}-{}", t.name, p.partition),
                    isr: p.isr.clone(),
                    min_insync,
                })
            })
            .collect();
        let voters: Vec<i32> = (0..spec.voters()).collect();
        let input = BatchInput {
            outdated: &outdated,
            racks: &racks,
            partitions: &partitions,
            voters: &voters,
            controller: (cluster.controller_id >= 0).then_some(cluster.controller_id),
        };
        match rack_batch::next_batch(&input) {
            Ok(batch) => Some(batch),
            Err(reasons) => {
                if !reasons.is_empty() {
                    tracing::info!(cluster = %key, reasons = %reasons.join("; "), "restarting one broker at a time");
                }
                None
            }
        }
    }

    /// The checks before a rack's brokers stop together: each hands its
    /// leaderships over (to brokers outside the rack, which
    /// [`rack_batch::next_batch`] made sure keep enough in-sync replicas).
    async fn prepare_rack(&self, batch: &RackBatch) -> Prepared {
        let mut moving = 0;
        for broker in &batch.brokers {
            match self.admin.controlled_shutdown(*broker).await {
                Ok(remaining) => moving += remaining.len(),
                Err(e) => return Prepared::Wait(format!("the admin API failed: {e}")),
            }
        }
        if moving == 0 {
            Prepared::Go
        } else {
            Prepared::Wait(format!(
                "moving {moving} leadership(s) off rack {} (brokers {:?}) before it stops",
                batch.rack, batch.brokers
            ))
        }
    }

    /// The broker pods, their UIDs and creation times by name.
    async fn broker_pods(&self) -> Result<BrokerPods, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.names.namespace);
        let selector =
            builders::selector_labels(self.names).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let list = api.list(&ListParams::default().labels(&selector)).await.map_err(|source| ClusterError::Kube {
            action: "list",
            kind: "Pod".into(),
            name: selector.clone(),
            source,
        })?;
        let mut pods = Vec::new();
        let mut uids = BTreeMap::new();
        let mut created = BTreeMap::new();
        for pod in list.items {
            let cluster_restart =
                self.cluster.metadata.annotations.as_ref().and_then(|a| a.get(RESTART_ANNOTATION)).map(String::as_str);
            let Some(view) = broker_pod(&pod, &self.names.name, cluster_restart) else { continue };
            if let Some(uid) = pod.metadata.uid.clone() {
                uids.insert(view.name.clone(), uid);
            }
            if let Some(time) = pod.metadata.creation_timestamp.clone() {
                created.insert(view.name.clone(), time.0);
            }
            pods.push(view);
        }
        Ok((pods, uids, created))
    }

    /// Deletes the pod if it is still the one with `uid`; `false` when it was
    /// gone or replaced meanwhile.
    async fn delete_pod(&self, name: &str, uid: Option<String>) -> Result<bool, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.names.namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid, resource_version: None }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(true),
            // Already gone, or recreated meanwhile: the next pass sees what runs.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
            Err(source) => Err(ClusterError::Kube { action: "delete", kind: "Pod".into(), name: name.into(), source }),
        }
    }
}

/// Whether `pod` asks for its broker alone to restart: its
/// `strom.dev/restart` annotation differs from the cluster's, which the pod
/// template copies onto every pod (`cluster_restart`).
fn restart_requested(pod: &Pod, cluster_restart: Option<&str>) -> bool {
    let own = pod.metadata.annotations.as_ref().and_then(|a| a.get(RESTART_ANNOTATION));
    own.is_some_and(|value| Some(value.as_str()) != cluster_restart)
}

/// The planner's view of a pod of StatefulSet `sts`; `None` for a pod that
/// is not one of its ordinals. `cluster_restart`: the cluster's own
/// `strom.dev/restart` annotation.
fn broker_pod(pod: &Pod, sts: &str, cluster_restart: Option<&str>) -> Option<BrokerPod> {
    let name = pod.metadata.name.clone()?;
    let labels = pod.metadata.labels.as_ref();
    let ordinal = labels
        .and_then(|l| l.get(POD_INDEX_LABEL))
        .and_then(|i| i.parse().ok())
        .or_else(|| name.strip_prefix(sts)?.strip_prefix('-')?.parse().ok())?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(BrokerPod {
        ordinal,
        name,
        revision: labels.and_then(|l| l.get(REVISION_LABEL)).cloned(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        restart_requested: restart_requested(pod, cluster_restart),
    })
}

/// The Degraded message when the roll waits on the broker it restarted last
/// for longer than [`BROKER_RESTART_TIMEOUT`].
fn timed_out(waiting_on: Option<i32>, current: Option<i32>, restarted_at: Option<&str>) -> Option<String> {
    let broker = waiting_on.filter(|b| Some(*b) == current)?;
    let since: Timestamp = restarted_at?.parse().ok()?;
    // A clock behind the API server's (negative elapsed time) counts as no time.
    let elapsed = Timestamp::now().duration_since(since).try_into().unwrap_or(std::time::Duration::ZERO);
    (elapsed > BROKER_RESTART_TIMEOUT).then(|| {
        format!(
            "broker {broker} was restarted {}s ago and is not back (timeout {}s); the rolling restart is paused",
            elapsed.as_secs(),
            BROKER_RESTART_TIMEOUT.as_secs()
        )
    })
}

/// Elects preferred leaders when leadership is skewed (best effort: a failure
/// is logged and retried on the next pass).
pub async fn balance_leaders(cluster: &KafkaCluster, ctx: &Context, admin: &ClusterAdmin, observed: &Observed) {
    if observed.under_replicated != Some(0) || observed.offline != Some(0) {
        return;
    }
    let key = builders::object_key(cluster);
    let topics = match admin.describe_topics(&[]).await {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(cluster = %key, error = %e, "cannot read topics for leader balancing");
            return;
        }
    };
    let balance = leaders::plan(&topics, leaders::DEFAULT_IMBALANCE_PERCENT);
    if balance.to_elect.is_empty() {
        return;
    }
    let skew: Vec<String> = balance
        .imbalanced
        .iter()
        .map(|(b, (preferred, elsewhere))| format!("broker {b}: {elsewhere}/{preferred}"))
        .collect();
    match admin.elect_preferred_leaders(balance.to_elect.clone()).await {
        Ok(0) => tracing::debug!(cluster = %key, "no preferred leader could be elected yet"),
        Ok(moved) => {
            let note = format!(
                "leadership was skewed (preferred partitions led elsewhere: {}); {moved} of {} preferred-leader \
                 elections done",
                skew.join(", "),
                balance.to_elect.len()
            );
            tracing::info!(cluster = %key, moved, "preferred leaders elected");
            ctx.event(&cluster.object_ref(&()), false, "LeadersRebalanced", "ElectLeaders", note).await;
        }
        Err(e) => tracing::warn!(cluster = %key, error = %e, "preferred-leader election failed; retrying later"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use kube::api::ObjectMeta;

    #[test]
    fn pods_map_to_brokers_by_index_label_or_name() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("strom-2".into()),
                labels: Some(BTreeMap::from([(REVISION_LABEL.to_string(), "strom-abc".to_string())])),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        };
        let view = broker_pod(&pod, "strom", None).expect("a broker pod");
        assert_eq!((view.ordinal, view.ready, view.revision.as_deref()), (2, true, Some("strom-abc")));
        assert!(!view.restart_requested);
        assert!(broker_pod(&pod, "other", None).is_none());

        // The cluster's annotation, copied onto the pod by its template, asks
        // nothing of this pod; a value of the pod's own does.
        let mut annotated = pod.clone();
        annotated.metadata.annotations = Some(BTreeMap::from([(RESTART_ANNOTATION.to_string(), "t1".to_string())]));
        assert!(!broker_pod(&annotated, "strom", Some("t1")).unwrap().restart_requested);
        assert!(broker_pod(&annotated, "strom", Some("t0")).unwrap().restart_requested);
        assert!(broker_pod(&annotated, "strom", None).unwrap().restart_requested);
    }

    #[test]
    fn only_the_restarted_broker_times_out() {
        let long_ago = "2020-01-01T00:00:00Z";
        let message = timed_out(Some(1), Some(1), Some(long_ago)).expect("timed out");
        assert!(message.starts_with("broker 1 was restarted"), "{message}");
        assert_eq!(timed_out(Some(2), Some(1), Some(long_ago)), None);
        assert_eq!(timed_out(Some(1), Some(1), Some(&Timestamp::now().to_string())), None);
        assert_eq!(timed_out(None, Some(1), Some(long_ago)), None);
    }
}
