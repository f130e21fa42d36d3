//! Scaling a cluster and keeping its replicas balanced: how many pods the
//! StatefulSet runs, and which partitions to move (through the Admin API's
//! reassignments, throttled) so that
//! - after a scale-up, replicas and preferred leaders spread onto the new
//!   brokers (when `spec.rebalance.enabled`);
//! - before a scale-down, the brokers that go hold no replica: the
//!   StatefulSet keeps its pods until they are drained, and a topic whose
//!   replication factor exceeds the remaining brokers blocks the scale-down
//!   (reported as Degraded `ScaleDownBlocked`) without touching anything.
//!
//! Before any move, the controller voters are brought to what the spec asks
//! ([`super::voters`]), one membership change per pass.
//!
//! Moves start only when the cluster is settled (every pod ready, no roll,
//! no under-replicated or offline partition, no reassignment running) and
//! every broker that stays is registered and unfenced; each pass recomputes
//! the plan from what the brokers report ([`crate::rebalance`] plans nothing
//! for a placement it produced), so an operator restart loses nothing.

use std::collections::BTreeSet;

use kube::Resource;
use strom_crds::KafkaCluster;

use crate::admin::{ClusterAdmin, REASSIGNMENT_IN_PROGRESS};
use crate::context::Context;
use crate::rebalance::{self, PlanError, placements};

/// What the scaling step decided.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScaleOutcome {
    /// Pods the StatefulSet should run now.
    pub statefulset_replicas: i32,
    /// Moves running or just started (Progressing).
    pub message: Option<String>,
    /// Why a scale-down cannot proceed (Degraded).
    pub blocked: Option<String>,
}

/// Decides the StatefulSet's size and starts the moves the cluster needs.
/// `current` is the StatefulSet's size now (None before it exists);
/// `settled` whether moves may start.
pub async fn step(
    cluster: &KafkaCluster,
    ctx: &Context,
    admin: &ClusterAdmin,
    current: Option<i32>,
    settled: bool,
) -> ScaleOutcome {
    let desired = cluster.spec.replicas;
    let current = current.unwrap_or(desired);
    let shrinking = desired < current;
    let mut outcome = ScaleOutcome { statefulset_replicas: desired.max(current), ..ScaleOutcome::default() };
    if !shrinking {
        outcome.statefulset_replicas = desired;
    }
    let waiting = |what: &str| {
        if shrinking { Some(format!("scaling down from {current} to {desired} brokers: {what}")) } else { None }
    };
    if !settled {
        outcome.message = waiting("waiting for the cluster to settle before moving replicas");
        return outcome;
    }
    let described = match admin.describe_cluster().await {
        Ok(d) => d,
        Err(e) => {
            outcome.message = waiting(&format!("cannot describe the cluster: {e}"));
            return outcome;
        }
    };
    if !described.reassigning_partitions.is_empty() {
        let n = described.reassigning_partitions.len();
        outcome.message = Some(match waiting(&format!("{n} partition(s) moving off the leaving brokers")) {
            Some(m) => m,
            None => format!("{n} partition(s) moving to their new replicas"),
        });
        return outcome;
    }
    let live: BTreeSet<i32> =
        described.brokers.iter().filter(|b| !b.fenced && !b.in_controlled_shutdown).map(|b| b.broker_id).collect();
    let staying: Vec<i32> = (0..desired).collect();
    if let Some(missing) = staying.iter().find(|b| !live.contains(b)) {
        outcome.message = waiting(&format!("broker {missing} is not registered and unfenced yet"));
        return outcome;
    }
    // The voters first: a scale-down removes no pod of a voter.
    if let Some(voters) = super::voters::wanted(cluster.spec.voters(), &described.controller_voters) {
        outcome.message = Some(super::voters::step(admin, &voters).await);
        return outcome;
    }
    let topics = match admin.describe_topics(&[]).await {
        Ok(t) => t,
        Err(e) => {
            outcome.message = waiting(&format!("cannot describe the topics: {e}"));
            return outcome;
        }
    };
    let placements = placements(&topics);
    let moves = match rebalance::plan(&placements, &staying, cluster.spec.rebalance.enabled) {
        Ok(m) => m,
        Err(e @ PlanError::ReplicationFactorTooLarge { .. }) => {
            if shrinking {
                outcome.blocked = Some(format!("cannot scale down from {current} to {desired} brokers: {e}"));
            } else {
                tracing::warn!(cluster = %crate::builders::object_key(cluster), error = %e, "no balanced placement");
            }
            return outcome;
        }
    };
    let reference = cluster.object_ref(&());
    if moves.is_empty() {
        if shrinking {
            outcome.statefulset_replicas = desired;
            let note = format!("brokers {desired}..{} hold no replica; removing their pods", current - 1);
            ctx.event(&reference, false, "BrokersDrained", "Scale", note).await;
        }
        return outcome;
    }
    let throttle = u64::try_from(cluster.spec.rebalance.throttle_bytes_per_second).unwrap_or(0);
    let requests: Vec<(String, i32, Vec<i32>)> =
        moves.iter().map(|m| (m.topic.clone(), m.partition, m.to.clone())).collect();
    match admin.reassign(&requests, throttle).await {
        Ok(()) => {}
        Err(e) if e.code() == Some(REASSIGNMENT_IN_PROGRESS) => {}
        Err(e) => {
            tracing::warn!(cluster = %crate::builders::object_key(cluster), error = %e, "reassignment refused");
            outcome.message = waiting(&format!("moving replicas failed: {e}"));
            return outcome;
        }
    }
    let why = if shrinking {
        format!("draining brokers {desired}..{} before scaling down", current - 1)
    } else {
        "spreading replicas and preferred leaders over the brokers".to_string()
    };
    let note = format!("moving {} partition(s) ({why}), throttled at {throttle} B/s per broker", moves.len());
    ctx.event(&reference, false, "ReassigningPartitions", "Rebalance", note.clone()).await;
    outcome.message = Some(note);
    outcome
}
