//! The `KafkaTopic` reconciler: the topic in the brokers follows the resource.
//!
//! Apply: find the cluster named by `clusterRef`; create the topic with an
//! assignment from [`crate::assignment`] (balanced against every topic the
//! cluster already has), grow its partitions, replace its config overrides
//! with `spec.config`; then write the status with each partition's leader,
//! replicas and ISR. A topic that already exists when its KafkaTopic appears
//! (created by a client) is adopted: configured and grown, but never deleted
//! by the operator. Topics without a KafkaTopic are never touched.
//!
//! Delete (the `strom.dev/topic` finalizer): with `deletionPolicy: Delete`
//! the topic is deleted when the operator created it; with `Retain`, or when
//! it was adopted, it is left in the cluster. When the cluster is gone
//! there is nothing to delete and the finalizer is removed.
//!
//! Before the topic is created, the status records `createdByOperator:
//! true`, so an operator restarted between the two steps still knows the
//! topic is its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use strom_crds::conditions::{DEGRADED, READY, set_condition};
use strom_crds::{DeletionPolicy, KafkaCluster, KafkaTopic, KafkaTopicStatus, PartitionStatus};
use strom_proto::admin::{PartitionDescription, TopicDescription};

use crate::admin::{AdminError, ClusterAdmin, REASSIGNMENT_IN_PROGRESS, TOPIC_ALREADY_EXISTS, TOPIC_DELETION_DISABLED};
use crate::assignment::{self, Load, Placeable};
use crate::builders::ClusterNames;
use crate::context::Context;
use crate::rebalance;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "kafkatopic";
/// The finalizer that deletes the topic before its KafkaTopic goes away.
pub const FINALIZER: &str = "strom.dev/topic";

/// A failed topic reconciliation.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// The cluster's Admin API failed or refused.
    #[error("topic {topic}: {source}")]
    Admin {
        topic: String,
        #[source]
        source: AdminError,
    },
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> TopicError {
    let action = action.into();
    move |source| TopicError::Kube { action, source }
}

fn admin_err(topic: &str) -> impl FnOnce(AdminError) -> TopicError + '_ {
    move |source| TopicError::Admin { topic: topic.to_string(), source }
}

/// Reconciles one `KafkaTopic` (apply or, when deleted, cleanup).
pub async fn reconcile(topic: Arc<KafkaTopic>, ctx: Arc<Context>) -> Result<Action, TopicError> {
    let started = Instant::now();
    let namespace = topic.namespace().unwrap_or_else(|| "default".into());
    let api: Api<KafkaTopic> = Api::namespaced(ctx.client.clone(), &namespace);
    let reference = topic.object_ref(&());
    let result = finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            FinalizerEvent::Apply(t) => apply(&t, &ctx).await,
            FinalizerEvent::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => TopicError::Finalizer(other.to_string()),
    });
    ctx.metrics.observe(CONTROLLER, result.is_ok(), started.elapsed());
    if let Err(e) = &result {
        ctx.event(&reference, true, "ReconcileFailed", "Reconcile", e.to_string()).await;
    }
    result
}

/// Requeues a failed reconciliation with backoff (never a crash loop).
pub fn error_policy(topic: Arc<KafkaTopic>, error: &TopicError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(topic = %topic.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

/// The cluster a topic belongs to, if it exists and is not being deleted.
async fn cluster_of(topic: &KafkaTopic, ctx: &Context) -> Result<Option<KafkaCluster>, TopicError> {
    let namespace = topic.namespace().unwrap_or_default();
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let cluster = api
        .get_opt(&topic.spec.cluster_ref)
        .await
        .map_err(kube_err(format!("read KafkaCluster {namespace}/{}", topic.spec.cluster_ref)))?;
    Ok(cluster.filter(|c| c.meta().deletion_timestamp.is_none()))
}

/// The KafkaTopic that owns `topic_name` in `cluster` when several name it:
/// the oldest. Read from the controller's cache, not by listing every pass.
async fn conflicting_owner(topic: &KafkaTopic, ctx: &Context) -> Result<Option<String>, TopicError> {
    let namespace = topic.namespace().unwrap_or_default();
    let all = ctx.cached_topics(&namespace).await;
    let name = topic.topic_name();
    let age = |t: &KafkaTopic| (t.creation_timestamp().map(|c| c.0), t.name_any());
    let owner = all
        .iter()
        .map(Arc::as_ref)
        .filter(|t| t.spec.cluster_ref == topic.spec.cluster_ref && t.topic_name() == name)
        .filter(|t| t.meta().deletion_timestamp.is_none())
        .min_by_key(|t| age(t));
    Ok(owner.map(|t| t.name_any()).filter(|owner| *owner != topic.name_any()))
}

/// The status for what the Admin API describes (pure).
pub fn partition_status(description: &TopicDescription) -> Vec<PartitionStatus> {
    let mut partitions: Vec<PartitionStatus> = description
        .partitions
        .iter()
        .map(|p| PartitionStatus {
            partition: p.partition,
            leader: p.leader,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    partitions
}

/// What differs between the spec and the topic in the cluster (pure).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TopicDrift {
    /// Partitions to add.
    pub add_partitions: usize,
    /// The topic has more partitions than the spec (Kafka cannot remove them).
    pub extra_partitions: usize,
    /// The topic's replication factor, when it differs from the spec's.
    pub replication_factor: Option<usize>,
    /// The config overrides differ.
    pub config: bool,
}

/// What differs, in words, when the topic's config changed behind the
/// operator's back; `None` when it matches the spec. (A replication factor
/// that differs is moved back too, but not reported: it also differs while
/// the operator's own change of it is under way.)
pub fn drift_report(drift: &TopicDrift, spec: &BTreeMap<String, String>, topic: &TopicDescription) -> Option<String> {
    let mut parts = Vec::new();
    if drift.config {
        let current: BTreeMap<&str, &str> = topic.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let keys: std::collections::BTreeSet<&str> =
            current.keys().copied().chain(spec.keys().map(String::as_str)).collect();
        for key in keys {
            match (current.get(key), spec.get(key)) {
                (Some(now), Some(want)) if now != want => parts.push(format!("{key} was {now} (spec {want})")),
                (Some(now), None) => parts.push(format!("{key} was {now} (not in the spec)")),
                (None, Some(want)) => parts.push(format!("{key} was unset (spec {want})")),
                _ => {}
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Compares `spec` (partitions, replication factor, config) with the cluster's topic.
pub fn drift(
    partitions: i32,
    replication_factor: i32,
    config: &BTreeMap<String, String>,
    topic: &TopicDescription,
) -> TopicDrift {
    let have = topic.partitions.len();
    let want = partitions.max(0) as usize;
    // A running reassignment counts by its target: the replicas that stay or join.
    let target_rf = |p: &PartitionDescription| p.replicas.len() - p.removing_replicas.len();
    let want_rf = replication_factor.max(0) as usize;
    let actual_rf = topic.partitions.iter().map(target_rf).find(|rf| *rf != want_rf).unwrap_or(want_rf);
    let current: BTreeMap<String, String> = topic.configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    TopicDrift {
        add_partitions: want.saturating_sub(have),
        extra_partitions: have.saturating_sub(want),
        replication_factor: (actual_rf != want_rf).then_some(actual_rf),
        config: current != *config,
    }
}

async fn write_status(topic: &KafkaTopic, ctx: &Context, status: &KafkaTopicStatus) -> Result<(), TopicError> {
    if topic.status.as_ref() == Some(status) {
        return Ok(());
    }
    let namespace = topic.namespace().unwrap_or_default();
    let api: Api<KafkaTopic> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&topic.name_any(), &PatchParams::apply(crate::FIELD_MANAGER), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!("write status of KafkaTopic {namespace}/{}", topic.name_any())))?;
    Ok(())
}

/// Sets Ready and Degraded on `status`; returns whether Ready changed.
fn set_health(
    status: &mut KafkaTopicStatus,
    generation: Option<i64>,
    ready: (bool, &str, String),
    degraded: (bool, &str, String),
) -> bool {
    let now = Time(Timestamp::now());
    let changed = set_condition(&mut status.conditions, READY, ready.0, ready.1, &ready.2, generation, now.clone());
    set_condition(&mut status.conditions, DEGRADED, degraded.0, degraded.1, &degraded.2, generation, now);
    status.observed_generation = generation;
    changed
}

/// Ends a pass that cannot proceed: Ready false with `reason`, an event when
/// that is news (not on every retry), a requeue.
async fn not_ready(
    topic: &KafkaTopic,
    ctx: &Context,
    mut status: KafkaTopicStatus,
    reason: &str,
    message: String,
    retry: Duration,
) -> Result<Action, TopicError> {
    let generation = topic.metadata.generation;
    let changed =
        set_health(&mut status, generation, (false, reason, message.clone()), (true, reason, message.clone()));
    write_status(topic, ctx, &status).await?;
    if changed {
        ctx.event(&topic.object_ref(&()), true, reason, "Reconcile", message).await;
    }
    Ok(Action::requeue(retry))
}

async fn apply(topic: &KafkaTopic, ctx: &Context) -> Result<Action, TopicError> {
    let name = topic.topic_name();
    let generation = topic.metadata.generation;
    let mut status = topic.status.clone().unwrap_or_default();
    status.topic_name = Some(name.clone());
    if let Err(e) = topic.validated_topic_name() {
        return not_ready(topic, ctx, status, "InvalidSpec", e.to_string(), Duration::from_secs(300)).await;
    }
    let Some(cluster) = cluster_of(topic, ctx).await? else {
        let message = format!("KafkaCluster {} does not exist in this namespace", topic.spec.cluster_ref);
        return not_ready(topic, ctx, status, "ClusterNotFound", message, Duration::from_secs(30)).await;
    };
    if let Some(owner) = conflicting_owner(topic, ctx).await? {
        let message = format!("topic {name} is already managed by KafkaTopic {owner}; this one is ignored");
        return not_ready(topic, ctx, status, "Conflict", message, Duration::from_secs(60)).await;
    }
    let names = ClusterNames::of(&cluster);
    // Until the cluster answers, the status says so (Ready=False) instead of
    // staying empty; the controller's retry is this requeue.
    let unreachable = |e: AdminError| format!("the cluster's admin API cannot be reached: {e}");
    let admin = match ctx.admin_for(&names, cluster.spec.replicas).await {
        Ok(admin) => admin,
        Err(e) => {
            return not_ready(topic, ctx, status, "ClusterUnreachable", unreachable(e), Duration::from_secs(10)).await;
        }
    };
    let reference = topic.object_ref(&());

    let existing = match admin.describe_topic(&name).await {
        Ok(existing) => existing,
        Err(e @ (AdminError::Unreachable { .. } | AdminError::NoIdentity(_))) => {
            return not_ready(topic, ctx, status, "ClusterUnreachable", unreachable(e), Duration::from_secs(10)).await;
        }
        Err(e) => return Err(admin_err(&name)(e)),
    };
    let description = match existing {
        None => {
            let assignments = match place_new_partitions(
                &admin,
                &name,
                topic.spec.partitions as usize,
                topic.spec.replication_factor,
            )
            .await?
            {
                Ok(a) => a,
                Err(e) => {
                    return not_ready(topic, ctx, status, "NotEnoughBrokers", e.to_string(), Duration::from_secs(30))
                        .await;
                }
            };
            // Recorded before the create, so a restart in between still knows the topic is ours.
            if status.created_by_operator != Some(true) {
                status.created_by_operator = Some(true);
                write_status(topic, ctx, &status).await?;
            }
            match admin.create_topic(&name, assignments, topic.spec.config.clone()).await {
                Ok(()) => {}
                Err(e) if e.code() == Some(TOPIC_ALREADY_EXISTS) => return Ok(Action::requeue(Duration::from_secs(1))),
                Err(e) if e.code().is_some() => {
                    return not_ready(topic, ctx, status, "CreateRefused", e.to_string(), Duration::from_secs(60))
                        .await;
                }
                Err(e) => return Err(admin_err(&name)(e)),
            }
            let note = format!("created topic {name} with {} partitions", topic.spec.partitions);
            ctx.event(&reference, false, "TopicCreated", "Create", note).await;
            admin.describe_topic(&name).await.map_err(admin_err(&name))?
        }
        Some(description) => {
            if status.created_by_operator.is_none() {
                status.created_by_operator = Some(false);
                let note = format!("topic {name} already existed; adopted (it will not be deleted with this resource)");
                ctx.event(&reference, false, "TopicAdopted", "Adopt", note).await;
            }
            let drift = drift(topic.spec.partitions, topic.spec.replication_factor, &topic.spec.config, &description);
            // The spec was already in force: any difference now was made behind the operator's back.
            let spec_in_force = status.observed_generation == generation && status.topic_id.is_some();
            if spec_in_force && let Some(what) = drift_report(&drift, &topic.spec.config, &description) {
                let message = format!("set back to the spec: {what}");
                status.last_drift_correction = Some(format!("{}: {what}", Timestamp::now()));
                ctx.event(&reference, true, "DriftCorrected", "Reconcile", message).await;
            }
            let mut changed = false;
            if drift.add_partitions > 0 {
                let rf = description.partitions.iter().map(|p| p.replicas.len()).max().unwrap_or(1) as i32;
                let assignments = match place_new_partitions(&admin, &name, drift.add_partitions, rf).await? {
                    Ok(a) => a,
                    Err(e) => {
                        return not_ready(
                            topic,
                            ctx,
                            status,
                            "NotEnoughBrokers",
                            e.to_string(),
                            Duration::from_secs(30),
                        )
                        .await;
                    }
                };
                if let Err(e) = admin.create_partitions(&name, topic.spec.partitions, assignments).await {
                    if e.code().is_none() {
                        return Err(admin_err(&name)(e));
                    }
                    return not_ready(topic, ctx, status, "GrowRefused", e.to_string(), Duration::from_secs(60)).await;
                }
                let note = format!("grew topic {name} to {} partitions", topic.spec.partitions);
                ctx.event(&reference, false, "PartitionsAdded", "Grow", note).await;
                changed = true;
            }
            if drift.config {
                if let Err(e) = admin.alter_topic_configs(&name, topic.spec.config.clone()).await {
                    if e.code().is_none() {
                        return Err(admin_err(&name)(e));
                    }
                    return not_ready(topic, ctx, status, "ConfigRefused", e.to_string(), Duration::from_secs(60))
                        .await;
                }
                ctx.event(&reference, false, "ConfigUpdated", "Configure", format!("set the config of topic {name}"))
                    .await;
                changed = true;
            }
            let moving =
                description.partitions.iter().any(|p| !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty());
            if drift.replication_factor.is_some() && !moving {
                let want = topic.spec.replication_factor.max(0) as usize;
                match change_replication_factor(&admin, &description, want, &cluster).await.map_err(admin_err(&name))? {
                    Ok(moved) => {
                        let note =
                            format!("changing the replication factor of {name} to {want}: moving {moved} partition(s)");
                        ctx.event(&reference, false, "ReplicationFactorChanging", "Reassign", note).await;
                        changed = true;
                    }
                    Err(e) => {
                        return not_ready(
                            topic,
                            ctx,
                            status,
                            "NotEnoughBrokers",
                            e.to_string(),
                            Duration::from_secs(30),
                        )
                        .await;
                    }
                }
            }
            if changed { admin.describe_topic(&name).await.map_err(admin_err(&name))? } else { Some(description) }
        }
    };
    let Some(description) = description else {
        let message = format!("topic {name} is not visible in the cluster yet");
        return not_ready(topic, ctx, status, "TopicMissing", message, Duration::from_secs(5)).await;
    };

    status.topic_id = (!description.topic_id.is_empty()).then(|| hex(&description.topic_id));
    status.partitions = partition_status(&description);
    let drift = drift(topic.spec.partitions, topic.spec.replication_factor, &topic.spec.config, &description);
    let leaderless = status.partitions.iter().filter(|p| p.leader < 0).count();
    // Replicas a reassignment adds are not in the ISR yet: they do not count as missing (as in Kafka).
    let under_replicated =
        description.partitions.iter().filter(|p| p.isr.len() < p.replicas.len() - p.adding_replicas.len()).count();
    let degraded = if let Some(rf) = drift.replication_factor {
        (
            false,
            "ChangingReplicationFactor",
            format!(
                "moving replicas from replication factor {rf} to {}; new replicas copy the log before old ones leave",
                topic.spec.replication_factor
            ),
        )
    } else if drift.extra_partitions > 0 {
        (
            true,
            "ExtraPartitions",
            format!(
                "the topic has {} partitions, more than the spec's {}; Kafka cannot remove partitions",
                description.partitions.len(),
                topic.spec.partitions
            ),
        )
    } else if leaderless > 0 {
        (true, "OfflinePartitions", format!("{leaderless} partition(s) have no leader"))
    } else if under_replicated > 0 {
        (true, "UnderReplicated", format!("{under_replicated} partition(s) are under-replicated"))
    } else {
        (false, "Healthy", "every partition has a leader and a full ISR".to_string())
    };
    let ready = if leaderless > 0 || drift.add_partitions > 0 {
        (false, "Reconciling", "waiting for every partition to have a leader".to_string())
    } else {
        (true, "TopicReady", format!("{} partitions, every one with a leader", status.partitions.len()))
    };
    let settled = ready.0 && !degraded.0 && drift.replication_factor.is_none();
    let requeue = if settled { ctx.resync } else { Duration::from_secs(5) };
    set_health(&mut status, generation, ready, degraded);
    write_status(topic, ctx, &status).await?;
    Ok(Action::requeue(requeue))
}

/// Starts moving `topic`'s partitions to `replication_factor` replicas on
/// the live brokers, throttled as the cluster's `rebalance` says. Returns
/// how many partitions move; the inner error means too few live brokers.
async fn change_replication_factor(
    admin: &ClusterAdmin,
    topic: &TopicDescription,
    replication_factor: usize,
    cluster: &KafkaCluster,
) -> Result<Result<usize, rebalance::PlanError>, AdminError> {
    let described = admin.describe_cluster().await?;
    let brokers: Vec<i32> =
        described.brokers.iter().filter(|b| !b.fenced && !b.in_controlled_shutdown).map(|b| b.broker_id).collect();
    let placements: Vec<rebalance::Placement> = rebalance::placements(std::slice::from_ref(topic))
        .into_iter()
        .map(|p| rebalance::Placement { replication_factor, ..p })
        .collect();
    let moves = match rebalance::plan(&placements, &brokers, false) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let requests: Vec<(String, i32, Vec<i32>)> =
        moves.iter().map(|m| (m.topic.clone(), m.partition, m.to.clone())).collect();
    let throttle = u64::try_from(cluster.spec.rebalance.throttle_bytes_per_second).unwrap_or(0);
    match admin.reassign(&requests, throttle).await {
        Ok(()) => Ok(Ok(moves.len())),
        Err(e) if e.code() == Some(REASSIGNMENT_IN_PROGRESS) => Ok(Ok(moves.len())),
        Err(e) => Err(e),
    }
}

/// Places `count` new partitions of `topic`, balanced first within the topic
/// (its existing partitions), then against the whole cluster. The outer error
/// is the Admin API; the inner one means too few live brokers.
async fn place_new_partitions(
    admin: &ClusterAdmin,
    topic: &str,
    count: usize,
    replication_factor: i32,
) -> Result<Result<Vec<Vec<i32>>, assignment::AssignmentError>, TopicError> {
    let cluster = admin.describe_cluster().await.map_err(admin_err(topic))?;
    let brokers: Vec<Placeable> = cluster
        .brokers
        .iter()
        .filter(|b| !b.fenced && !b.in_controlled_shutdown)
        .map(|b| Placeable { id: b.broker_id, rack: b.rack.clone() })
        .collect();
    let topics = admin.describe_topics(&[]).await.map_err(admin_err(topic))?;
    let replicas_of = |t: &TopicDescription| t.partitions.iter().map(|p| p.replicas.clone()).collect::<Vec<_>>();
    let own: Vec<Vec<i32>> = topics.iter().filter(|t| t.name == topic).flat_map(replicas_of).collect();
    let all: Vec<Vec<i32>> = topics.iter().flat_map(replicas_of).collect();
    let mut topic_load = Load::of(own.iter().map(Vec::as_slice));
    let mut cluster_load = Load::of(all.iter().map(Vec::as_slice));
    Ok(assignment::assign(&brokers, count, replication_factor, &mut topic_load, &mut cluster_load))
}

async fn cleanup(topic: &KafkaTopic, ctx: &Context) -> Result<Action, TopicError> {
    let name = topic.topic_name();
    let reference = topic.object_ref(&());
    let created = topic.status.as_ref().and_then(|s| s.created_by_operator) == Some(true);
    if topic.spec.deletion_policy == DeletionPolicy::Retain || !created {
        let why = if created { "deletionPolicy is Retain" } else { "the operator did not create it" };
        ctx.event(&reference, false, "TopicRetained", "Delete", format!("kept topic {name} in the cluster: {why}"))
            .await;
        return Ok(Action::await_change());
    }
    let Some(cluster) = cluster_of(topic, ctx).await? else {
        tracing::info!(topic = %name, "the cluster is gone; nothing to delete");
        return Ok(Action::await_change());
    };
    if conflicting_owner(topic, ctx).await?.is_some() {
        return Ok(Action::await_change());
    }
    let admin = ctx.admin_for(&ClusterNames::of(&cluster), cluster.spec.replicas).await.map_err(admin_err(&name))?;
    match admin.delete_topic(&name).await {
        Ok(()) => ctx.event(&reference, false, "TopicDeleted", "Delete", format!("deleted topic {name}")).await,
        Err(e) if e.code() == Some(TOPIC_DELETION_DISABLED) => {
            // The cluster forbids deletion (delete.topic.enable=false): keep the topic, let the resource go.
            let note = format!("kept topic {name}: the cluster has topic deletion disabled ({e})");
            ctx.event(&reference, true, "TopicRetained", "Delete", note).await;
        }
        Err(e) => return Err(admin_err(&name)(e)),
    }
    Ok(Action::await_change())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strom_proto::admin::PartitionDescription;

    /// A described topic `orders` with (replicas, isr, leader) per partition.
    pub(crate) fn described(partitions: &[(&[i32], &[i32], i32)], configs: &[(&str, &str)]) -> TopicDescription {
        TopicDescription {
            name: "orders".into(),
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(i, (replicas, isr, leader))| PartitionDescription {
                    partition: i as i32,
                    replicas: replicas.to_vec(),
                    isr: isr.to_vec(),
                    leader: *leader,
                    ..PartitionDescription::default()
                })
                .collect(),
            configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..TopicDescription::default()
        }
    }

    #[test]
    fn drift_finds_missing_partitions_config_and_replication_changes() {
        let t = described(&[(&[0, 1], &[0, 1], 0), (&[1, 2], &[1, 2], 1)], &[("retention.ms", "1000")]);
        let config = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        assert_eq!(drift(2, 2, &config, &t), TopicDrift::default());
        assert_eq!(drift(5, 2, &config, &t).add_partitions, 3);
        assert_eq!(drift(1, 2, &config, &t).extra_partitions, 1);
        assert_eq!(drift(2, 3, &config, &t).replication_factor, Some(2));
        assert!(drift(2, 2, &BTreeMap::new(), &t).config, "removing an override is a change");
    }

    #[test]
    fn partition_status_is_sorted_and_complete() {
        let mut t = described(&[(&[0, 1], &[0], 0), (&[1, 2], &[1, 2], 1)], &[]);
        t.partitions.reverse();
        let s = partition_status(&t);
        assert_eq!(s.iter().map(|p| p.partition).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!((s[0].leader, s[0].replicas.clone(), s[0].isr.clone()), (0, vec![0, 1], vec![0]));
    }

    #[test]
    fn drift_reports_name_each_changed_setting() {
        let spec = BTreeMap::from([("retention.ms".to_string(), "7200000".to_string())]);
        let t = described(&[(&[0, 1], &[0, 1], 0)], &[("retention.ms", "1000"), ("cleanup.policy", "compact")]);
        let d = drift(1, 2, &spec, &t);
        let report = drift_report(&d, &spec, &t).expect("a drift");
        assert_eq!(report, "cleanup.policy was compact (not in the spec), retention.ms was 1000 (spec 7200000)");
        let same = described(&[(&[0, 1], &[0, 1], 0)], &[("retention.ms", "7200000")]);
        assert_eq!(drift_report(&drift(1, 2, &spec, &same), &spec, &same), None);
    }
}
