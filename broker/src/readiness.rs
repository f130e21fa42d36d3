//! `/readyz`: when a broker may take traffic and count as a healthy replica.
//!
//! A broker is ready when
//!
//! 1. it has joined the cluster — registered with the active controller,
//!    unfenced, and caught up with the metadata log past its registration
//!    ([`Broker::is_ready`]); and
//! 2. since this process started, it has once been back in the ISR of every
//!    partition it follows whose leader is live — registered, unfenced and
//!    not in controlled shutdown — in the image it has published.
//!
//! The second condition is what makes a restarted broker of a replicated
//! cluster report "not ready" while it catches up: the controller takes a
//! new incarnation out of every ISR, and its leaders put it back once its log
//! reaches their high watermark. A partition this broker leads, a partition
//! without a leader (offline), and one whose leader is fenced or shutting
//! down never hold readiness back, so a single-node cluster, a broker that
//! is the only replica of its partitions, and a broker whose leaders are
//! gone all become ready. A live leader that this broker cannot reach holds
//! it back until the leader is fenced or reachable again.
//!
//! Independently of both, a broker whose controller node is unhealthy is not
//! ready: a voter rejoining the quorum after losing its log (it becomes ready
//! once it is a voter again), or a controller whose Raft stopped on a fatal
//! error.
//!
//! The second condition latches: once met, later ISR shrinks (a slow disk, a
//! network blip) show in `strom_under_replicated_partitions` on the leader,
//! not as this broker flapping out of its Service. Shutdown makes the broker
//! not ready at once.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::broker::Broker;
use crate::controller::ClusterImage;
use crate::controller::image::NO_LEADER;

/// Why a broker is not ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The process is opening its logs or joining the cluster (waiting for
    /// its controller quorum, registering).
    #[error("starting: opening the logs and joining the cluster (waiting for a controller quorum and registering)")]
    Starting,
    /// Not registered, fenced, behind on the metadata log, or shutting down.
    #[error("not registered with the controller or not caught up with the metadata log")]
    NotJoined,
    /// Some followed partitions do not have this broker in their ISR yet.
    #[error(
        "catching up: not yet in the ISR of {count} partition(s) whose leader is live (first: {first}); \
         the leaders add this broker once its log reaches their high watermark"
    )]
    CatchingUp {
        /// Partitions still waiting.
        count: usize,
        /// One of them, `topic-partition`.
        first: String,
    },
    /// This broker's controller node is rejoining the quorum or stopped.
    #[error("controller quorum unhealthy here: {0}")]
    Controller(String),
}

/// Partitions `me` replicates as a follower of a live leader without being
/// in their ISR, as `topic-partition` names.
pub fn partitions_out_of_isr(image: &ClusterImage, me: i32) -> Vec<String> {
    let leader_live = |id: i32| image.brokers.get(&id).is_some_and(|b| !b.fenced && !b.in_controlled_shutdown);
    image
        .topics
        .iter()
        .flat_map(|(name, topic)| topic.partitions.iter().enumerate().map(move |(i, p)| (name, i, p)))
        .filter(|(_, _, p)| {
            p.replicas.contains(&me)
                && p.leader != me
                && p.leader != NO_LEADER
                && leader_live(p.leader)
                && !p.isr.contains(&me)
                // A replica a reassignment is adding copies the log (maybe throttled) before it joins.
                && p.reassignment.as_ref().is_none_or(|r| !r.adding.contains(&me))
        })
        .map(|(name, i, _)| format!("{name}-{i}"))
        .collect()
}

/// The readiness of one broker process, with its catch-up latch.
#[derive(Debug, Default)]
pub struct Readiness {
    caught_up: AtomicBool,
}

impl Readiness {
    /// `Ok` when `broker` is ready (see the module doc).
    pub fn check(&self, broker: &Broker) -> Result<(), NotReady> {
        if let Some(reason) = broker.controller.unhealthy() {
            return Err(NotReady::Controller(reason));
        }
        if !broker.is_ready() {
            return Err(NotReady::NotJoined);
        }
        if self.caught_up.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(image) = broker.last_image.lock().clone() else {
            return Err(NotReady::NotJoined);
        };
        let waiting = partitions_out_of_isr(&image, broker.config.node_id);
        match waiting.first() {
            None => {
                self.caught_up.store(true, Ordering::Release);
                tracing::info!("back in the ISR of every followed partition with a live leader: ready");
                Ok(())
            }
            Some(first) => Err(NotReady::CatchingUp { count: waiting.len(), first: first.clone() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::controller::image::{BrokerRegistration, PartitionState, TopicImage};

    fn broker(id: i32, fenced: bool) -> (i32, BrokerRegistration) {
        let registration = BrokerRegistration {
            broker_id: id,
            incarnation_id: Uuid::nil(),
            broker_epoch: 1,
            advertised_endpoint: String::new(),
            internal_endpoint: String::new(),
            listeners: Default::default(),
            rack: None,
            fenced,
            in_controlled_shutdown: false,
            max_partitions: None,
        };
        (id, registration)
    }

    fn partition(replicas: &[i32], leader: i32, isr: &[i32]) -> PartitionState {
        PartitionState {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 1,
            partition_epoch: 1,
            reassignment: None,
        }
    }

    fn image(brokers: Vec<(i32, BrokerRegistration)>, partitions: Vec<PartitionState>) -> ClusterImage {
        let topic = TopicImage { topic_id: Uuid::nil(), partitions, configs: BTreeMap::new() };
        ClusterImage {
            cluster_id: "c".into(),
            brokers: brokers.into_iter().collect(),
            topics: [("t".to_string(), topic)].into_iter().collect(),
            producer_id_block_end: 0,
            ..Default::default()
        }
    }

    #[test]
    fn a_follower_outside_the_isr_of_a_live_leader_is_not_caught_up() {
        let img = image(
            vec![broker(0, false), broker(1, false)],
            vec![partition(&[0, 1], 0, &[0]), partition(&[0, 1], 0, &[0, 1])],
        );
        assert_eq!(partitions_out_of_isr(&img, 1), vec!["t-0".to_string()]);
        assert!(partitions_out_of_isr(&img, 0).is_empty(), "a leader is never waiting on itself");
    }

    #[test]
    fn sole_replicas_offline_partitions_and_fenced_leaders_do_not_block() {
        let img = image(
            vec![broker(0, false), broker(1, true), broker(2, false)],
            vec![
                // The only replica: leads it.
                partition(&[0], 0, &[0]),
                // Offline: no leader at all.
                partition(&[0, 2], NO_LEADER, &[2]),
                // Leader fenced (down): nothing to catch up from.
                partition(&[0, 1], 1, &[1]),
                // Leader unknown to the image.
                partition(&[0, 7], 7, &[7]),
            ],
        );
        assert!(partitions_out_of_isr(&img, 0).is_empty());
        // Broker 2 is a follower of nobody live either.
        assert!(partitions_out_of_isr(&img, 2).is_empty());
    }

    #[test]
    fn a_leader_in_controlled_shutdown_does_not_block() {
        let mut img = image(vec![broker(0, false), broker(1, false)], vec![partition(&[0, 1], 1, &[1])]);
        assert_eq!(partitions_out_of_isr(&img, 0).len(), 1);
        if let Some(b) = img.brokers.get_mut(&1) {
            b.in_controlled_shutdown = true;
        }
        assert!(partitions_out_of_isr(&img, 0).is_empty());
    }
}
