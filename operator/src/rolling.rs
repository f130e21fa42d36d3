//! Rolling restarts: which broker to restart next, and when.
//!
//! The StatefulSet uses the `OnDelete` update strategy, so a change of the pod
//! template (image, broker config through the config hash, resources, or the
//! `strom.dev/restart` annotation of the KafkaCluster copied onto the
//! template) only gives the
//! StatefulSet a new update revision; pods keep running on the old one until
//! the operator deletes them. Each pass derives the roll from what runs — the
//! pods' `controller-revision-hash` labels against the StatefulSet's update
//! revision — so an operator restarted in the middle of a roll resumes it.
//!
//! [`next_step`] is the decision, a pure function: one broker at a time, only
//! when every broker is ready and the cluster reports no under-replicated or
//! offline partition (a broker restarted before is back in every ISR), the
//! active controller last. The reconciler then asks the Admin API whether the
//! broker may stop, moves its leaderships away (controlled shutdown) and
//! deletes its pod.
//!
//! The same annotation on one broker pod, with a value other than the
//! cluster's (which the template copies onto every pod), asks for that
//! broker alone to be restarted, under the same rules; its replacement,
//! made from the template, carries the cluster's value again.

use std::time::Duration;

/// Annotation on a KafkaCluster asking for a rolling restart: any new value
/// (a timestamp, a counter) restarts every broker once. On a broker pod,
/// with a value other than the cluster's: restart that broker alone, safely.
pub const RESTART_ANNOTATION: &str = "strom.dev/restart";

/// Label the StatefulSet controller puts on each pod: the revision it was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// How long a restarted broker may take to be ready and back in its ISRs
/// before the cluster is reported Degraded (the roll stays paused).
pub const BROKER_RESTART_TIMEOUT: Duration = Duration::from_secs(600);

/// One broker pod as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPod {
    /// Pod ordinal, which is the broker's node id.
    pub ordinal: i32,
    /// Pod name.
    pub name: String,
    /// The StatefulSet revision the pod was created from.
    pub revision: Option<String>,
    /// The pod's Ready condition.
    pub ready: bool,
    /// The pod is being deleted.
    pub terminating: bool,
    /// The pod carries its own [`RESTART_ANNOTATION`] value: restart this broker.
    pub restart_requested: bool,
}

/// What the Admin API reported of the cluster; `None` when it did not answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterHealth {
    /// The active controller's node id.
    pub controller_id: Option<i32>,
    /// Under-replicated partitions.
    pub under_replicated: Option<i32>,
    /// Partitions without a leader.
    pub offline: Option<i32>,
}

/// The planner's answer for one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollStep {
    /// Every broker runs the current pod template.
    Idle,
    /// Brokers are outdated but the cluster is not ready for the next restart.
    Wait {
        /// Brokers still on an older template.
        outdated: i32,
        /// The broker the wait is about, when it is one broker.
        broker: Option<i32>,
        /// Why, for status and logs.
        reason: String,
    },
    /// Restart this broker now (after the Admin API's checks).
    Restart {
        /// Brokers still on an older template, this one included.
        outdated: i32,
        /// The broker's node id.
        broker: i32,
        /// Its pod.
        pod: String,
    },
}

/// Why the cluster is not ready for a broker to stop — a broker pod missing,
/// stopping or not ready, replication not healthy or unknown, no active
/// controller known — with the broker concerned; `None` when it is (pure).
/// A roll also uses it to decide when it is over: the last restarted broker
/// is back and in every ISR.
pub fn not_settled(replicas: i32, pods: &[BrokerPod], health: ClusterHealth) -> Option<(Option<i32>, String)> {
    if let Some(p) = pods.iter().find(|p| p.terminating) {
        return Some((Some(p.ordinal), format!("broker {} (pod {}) is stopping", p.ordinal, p.name)));
    }
    if let Some(missing) = (0..replicas).find(|o| !pods.iter().any(|p| p.ordinal == *o)) {
        return Some((Some(missing), format!("broker {missing} has no pod yet")));
    }
    if let Some(p) = pods.iter().filter(|p| p.ordinal < replicas).find(|p| !p.ready) {
        return Some((Some(p.ordinal), format!("broker {} (pod {}) is not ready", p.ordinal, p.name)));
    }
    match (health.under_replicated, health.offline) {
        (Some(urp), Some(offline)) if urp > 0 || offline > 0 => {
            return Some((None, format!("{urp} under-replicated and {offline} offline partition(s)")));
        }
        (Some(_), Some(_)) => {}
        _ => return Some((None, "the admin API does not answer; cannot check replication".to_string())),
    }
    if health.controller_id.is_none() {
        return Some((None, "no active controller is known".to_string()));
    }
    None
}

/// The broker a roll restarted last, given `newest_updated`, the ordinal of
/// the newest pod on the update revision: while a broker's pod is being
/// deleted or not yet recreated, that broker (the newest updated pod is then
/// the one restarted before it), else `newest_updated`.
pub fn restarting_broker(replicas: i32, pods: &[BrokerPod], newest_updated: Option<i32>) -> Option<i32> {
    let going = pods.iter().filter(|p| p.ordinal < replicas && p.terminating).map(|p| p.ordinal).min();
    let gone = (0..replicas).find(|o| !pods.iter().any(|p| p.ordinal == *o));
    going.or(gone).or(newest_updated)
}

/// Decides the next step of a roll (pure; see the module docs for the rules).
pub fn next_step(replicas: i32, pods: &[BrokerPod], update_revision: Option<&str>, health: ClusterHealth) -> RollStep {
    let needs_restart = |p: &&BrokerPod| {
        p.ordinal < replicas
            && (p.restart_requested || update_revision.is_some_and(|r| p.revision.as_deref() != Some(r)))
    };
    let mut outdated: Vec<&BrokerPod> = pods.iter().filter(needs_restart).collect();
    if outdated.is_empty() {
        return RollStep::Idle;
    }
    let count = outdated.len() as i32;
    if let Some((broker, reason)) = not_settled(replicas, pods, health) {
        return RollStep::Wait { outdated: count, broker, reason };
    }
    // Followers first, in ordinal order; the active controller last, so the
    // quorum elects a new leader once rather than after every restart.
    outdated.sort_by_key(|p| (Some(p.ordinal) == health.controller_id, p.ordinal));
    let next = outdated[0];
    RollStep::Restart { outdated: count, broker: next.ordinal, pod: next.name.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ordinal: i32, revision: &str) -> BrokerPod {
        BrokerPod {
            ordinal,
            name: format!("strom-{ordinal}"),
            revision: Some(revision.to_string()),
            ready: true,
            terminating: false,
            restart_requested: false,
        }
    }

    const HEALTHY: ClusterHealth =
        ClusterHealth { controller_id: Some(0), under_replicated: Some(0), offline: Some(0) };

    #[test]
    fn nothing_to_do_when_every_pod_is_current() {
        let pods = [pod(0, "new"), pod(1, "new"), pod(2, "new")];
        assert_eq!(next_step(3, &pods, Some("new"), HEALTHY), RollStep::Idle);
        assert_eq!(next_step(3, &pods, None, HEALTHY), RollStep::Idle);
    }

    #[test]
    fn followers_first_and_the_controller_last() {
        let mut pods = vec![pod(0, "old"), pod(1, "old"), pod(2, "old")];
        let health = ClusterHealth { controller_id: Some(1), ..HEALTHY };
        let mut order = Vec::new();
        while let RollStep::Restart { broker, outdated, .. } = next_step(3, &pods, Some("new"), health) {
            assert_eq!(outdated, 3 - order.len() as i32);
            order.push(broker);
            pods[broker as usize].revision = Some("new".into());
        }
        assert_eq!(order, vec![0, 2, 1]);
    }

    #[test]
    fn one_broker_at_a_time() {
        let mut pods = vec![pod(0, "new"), pod(1, "old"), pod(2, "old")];
        pods[0].ready = false;
        let step = next_step(3, &pods, Some("new"), HEALTHY);
        assert_eq!(
            step,
            RollStep::Wait { outdated: 2, broker: Some(0), reason: "broker 0 (pod strom-0) is not ready".into() }
        );
        pods[0].ready = true;
        pods[0].terminating = true;
        assert!(matches!(next_step(3, &pods, Some("new"), HEALTHY), RollStep::Wait { broker: Some(0), .. }));
        let without_pod = [pod(1, "old"), pod(2, "old")];
        assert!(matches!(next_step(3, &without_pod, Some("new"), HEALTHY), RollStep::Wait { broker: Some(0), .. }));
    }

    #[test]
    fn paused_while_partitions_are_under_replicated_or_unknown() {
        let pods = [pod(0, "new"), pod(1, "old"), pod(2, "old")];
        let health = ClusterHealth { under_replicated: Some(4), ..HEALTHY };
        let RollStep::Wait { reason, broker: None, .. } = next_step(3, &pods, Some("new"), health) else {
            panic!("an under-replicated cluster must pause the roll");
        };
        assert_eq!(reason, "4 under-replicated and 0 offline partition(s)");
        let unknown = ClusterHealth { controller_id: None, under_replicated: None, offline: None };
        assert!(matches!(next_step(3, &pods, Some("new"), unknown), RollStep::Wait { broker: None, .. }));
        let no_controller = ClusterHealth { controller_id: None, ..HEALTHY };
        let RollStep::Wait { reason, .. } = next_step(3, &pods, Some("new"), no_controller) else {
            panic!("without a known controller, the controller-last rule cannot hold");
        };
        assert_eq!(reason, "no active controller is known");
        let offline = ClusterHealth { offline: Some(1), ..HEALTHY };
        assert!(matches!(next_step(3, &pods, Some("new"), offline), RollStep::Wait { .. }));
    }

    #[test]
    fn the_broker_whose_pod_is_going_or_gone_is_the_one_restarting() {
        // Broker 0 restarted first; now broker 1's pod is being deleted, then gone.
        let mut pods = vec![pod(0, "new"), pod(1, "old"), pod(2, "old")];
        assert_eq!(restarting_broker(3, &pods, Some(0)), Some(0));
        pods[1].terminating = true;
        assert_eq!(restarting_broker(3, &pods, Some(0)), Some(1));
        pods.remove(1);
        assert_eq!(restarting_broker(3, &pods, Some(0)), Some(1));
        // Back on the new revision: the newest updated pod again.
        pods.insert(1, pod(1, "new"));
        assert_eq!(restarting_broker(3, &pods, Some(1)), Some(1));
        assert_eq!(restarting_broker(3, &[], None), Some(0));
    }

    #[test]
    fn a_pod_without_a_revision_is_outdated() {
        let mut pods = vec![pod(0, "new"), pod(1, "new")];
        pods[1].revision = None;
        assert!(matches!(next_step(2, &pods, Some("new"), HEALTHY), RollStep::Restart { broker: 1, outdated: 1, .. }));
    }

    #[test]
    fn an_annotated_pod_restarts_alone_under_the_same_rules() {
        let mut pods = vec![pod(0, "new"), pod(1, "new"), pod(2, "new")];
        pods[2].restart_requested = true;
        let step = next_step(3, &pods, Some("new"), HEALTHY);
        assert_eq!(step, RollStep::Restart { outdated: 1, broker: 2, pod: "strom-2".into() });
        assert!(matches!(next_step(3, &pods, None, HEALTHY), RollStep::Restart { broker: 2, .. }));
        pods[0].ready = false;
        assert!(matches!(next_step(3, &pods, Some("new"), HEALTHY), RollStep::Wait { broker: Some(0), .. }));
        // Its replacement comes without the annotation: nothing left to do.
        pods[0].ready = true;
        pods[2].restart_requested = false;
        assert_eq!(next_step(3, &pods, Some("new"), HEALTHY), RollStep::Idle);
    }
}
