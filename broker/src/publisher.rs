//! The metadata publisher: makes this broker follow the controller's image.
//!
//! Whenever this node applies new metadata log entries (or learns of a new
//! active controller), [`run`] publishes the image: it rebuilds the
//! [`crate::metadata::MetadataView`] the Kafka handlers answer from, and
//! diffs the image against the last one published to tell the replica
//! manager which partitions to lead, follow, reconfigure or delete, and the
//! group coordinator which `__consumer_offsets` partitions it now leads.
//! It plays the role of Kafka's BrokerMetadataPublisher.
//!
//! Invariants: a partition is told its new leadership only after the image
//! that carries it is committed; logs of partitions the image does not assign
//! here are deleted only once this broker has joined the cluster — caught
//! up with the metadata log past its own registration and done importing an
//! old single-node metadata file (an image replayed from an old snapshot at
//! start must never delete a live topic's data); `Broker::published` only
//! moves forward, after the image is fully applied.
//!
//! This broker takes up a partition's leadership only from an image that
//! holds its own registration (this process's broker epoch). An image
//! replayed before that may still name an earlier incarnation of this broker
//! as the leader; taking that up with a log that lost data (a replaced disk)
//! would make the followers, still following that epoch, truncate to it. Once
//! registered, the controller has moved every leadership of the earlier
//! incarnation away, and the first image with the registration applies every
//! partition afresh.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::controller::image::{ClusterImage, Command, NO_LEADER, Outcome, PartitionState};
use crate::controller::{Controller, MetadataSnapshot};
use crate::group::OFFSETS_TOPIC;
use crate::log::TopicPartition;
use crate::metadata::MetadataView;
use crate::replica::{IsrChannel, LeaderAndIsr};

/// Publishes every new image until the broker shuts down.
pub async fn run(broker: Arc<Broker>) {
    let mut metrics = broker.controller.raft().metrics();
    let mut published_leader = None;
    let mut registered = false;
    loop {
        let snapshot = broker.controller.snapshot();
        let leader = broker.controller.active_controller();
        let behind = snapshot.index > *broker.published.borrow();
        if behind || leader != published_leader || broker.last_image.lock().is_none() {
            let b = broker.clone();
            let index = snapshot.index;
            let was_registered = registered;
            let result = tokio::task::spawn_blocking(move || publish(&b, snapshot, leader, was_registered)).await;
            match result {
                Ok(now_registered) => {
                    registered = now_registered;
                    published_leader = leader;
                    broker.published.send_if_modified(|p| {
                        let moved = index > *p;
                        *p = (*p).max(index);
                        moved
                    });
                }
                Err(e) => tracing::error!(error = %e, "publishing the metadata image panicked"),
            }
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = broker.shutdown.cancelled() => return,
        }
    }
}

/// Applies one image to the broker; returns whether the image holds this
/// process's registration (`was_registered`: whether the last one did).
/// Blocking (opens and deletes logs, loads groups).
fn publish(broker: &Arc<Broker>, snapshot: MetadataSnapshot, leader: Option<u64>, was_registered: bool) -> bool {
    let image = Arc::new(snapshot.image);
    let controller_id = leader.map(|l| l as i32).unwrap_or(NO_LEADER);
    *broker.metadata.write() = MetadataView::from_image(&image, controller_id);
    broker.quotas.update(&image.client_quotas);
    let previous = broker.last_image.lock().clone();
    let me = broker.config.node_id;
    // The image is complete enough to delete by once this broker has joined
    // (registered, caught up past its registration, old metadata imported).
    let caught_up = broker.is_ready();
    let epoch = broker.broker_epoch();
    let registered = epoch >= 0 && image.brokers.get(&me).is_some_and(|b| b.broker_epoch == epoch);
    // Partitions whose leadership was held back are applied with the first image holding the registration.
    let apply_all = registered && !was_registered;

    // Dynamic broker settings first: topics' log configs read them.
    let dynamic_changed = broker.config.dynamic.replace(&image.broker_configs);
    if dynamic_changed {
        tracing::info!(settings = ?image.broker_configs, "applying new dynamic broker settings");
    }
    let follower_throttled_rate = broker.config.settings.long("follower.replication.throttled.rate");
    let mut assigned = HashSet::new();
    for (name, topic) in &image.topics {
        let before = previous.as_ref().and_then(|p| p.topics.get(name));
        let recreated = before.is_some_and(|b| b.topic_id != topic.topic_id);
        let configs_changed = dynamic_changed || before.is_none_or(|b| b.configs != topic.configs);
        let log_config = broker.config.log_config(&crate::metadata::topic_settings(name, &topic.configs));
        if configs_changed {
            broker.replicas.set_topic_config(name, log_config.clone());
        }
        for (index, p) in topic.partitions.iter().enumerate() {
            if !p.replicas.contains(&me) {
                continue;
            }
            let tp = TopicPartition { topic: name.clone(), partition: index as i32 };
            assigned.insert(tp.clone());
            let throttled_replicas = topic.configs.get(THROTTLED_REPLICAS).map(String::as_str);
            let rate = catch_up_rate(p, index as i32, me, throttled_replicas, follower_throttled_rate);
            broker.replicas.replication_throttle().set(&tp, rate);
            if recreated && let Err(e) = broker.replicas.delete(&tp) {
                tracing::error!(partition = %tp, error = %e, "cannot delete the log of a deleted topic");
            }
            let old = if recreated { None } else { before.and_then(|b| b.partitions.get(index)) };
            let leader_endpoint = endpoint(&image, p.leader);
            let endpoint_moved = previous.as_ref().is_some_and(|prev| endpoint(prev, p.leader) != leader_endpoint);
            if old == Some(p) && !endpoint_moved && !apply_all && broker.replicas.get(&tp).is_some() {
                continue;
            }
            if p.leader == me && !registered {
                tracing::debug!(partition = %tp, "not leading before this broker's registration is in the image");
                continue;
            }
            let state = LeaderAndIsr {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
            };
            if let Err(e) = broker.replicas.apply_leader_and_isr(&tp, log_config.clone(), &state, leader_endpoint) {
                tracing::error!(partition = %tp, error = %e, "cannot take up the partition's new role");
            }
        }
        if name == OFFSETS_TOPIC {
            follow_offsets_leadership(broker, &topic.partitions, me, registered);
        }
        if name == crate::txn::TXN_STATE_TOPIC {
            crate::txn::follow_leadership(broker, &topic.partitions, me, registered);
        }
    }
    if caught_up {
        for tp in broker.replicas.logs().partitions() {
            if !assigned.contains(&tp) {
                tracing::warn!(partition = %tp, "deleting the log of a partition the metadata does not assign to this broker");
                if let Err(e) = broker.replicas.delete(&tp) {
                    tracing::error!(partition = %tp, error = %e, "cannot delete the log");
                }
            }
        }
    }
    *broker.last_image.lock() = Some(image);
    registered
}

/// The topic setting naming replicas whose catch-up is throttled.
const THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";

/// The rate (bytes/s) `me`'s replica of partition `index` copies the log
/// at, if throttled. Only a follower outside the ISR is throttled: in the
/// ISR, its fetches hold back the high watermark. A replica a reassignment
/// adds goes at the reassignment's rate; another one at the broker's
/// `follower.replication.throttled.rate` when the topic's
/// `follower.replication.throttled.replicas` names it (`i64::MAX`, the
/// default rate, does not throttle).
fn catch_up_rate(
    p: &PartitionState,
    index: i32,
    me: i32,
    throttled_replicas: Option<&str>,
    follower_throttled_rate: i64,
) -> Option<u64> {
    if p.leader == me || p.isr.contains(&me) {
        return None;
    }
    if let Some(r) = p.reassignment.as_ref().filter(|r| r.adding.contains(&me)) {
        return Some(r.throttle_bytes_per_sec);
    }
    let listed = throttled_replicas.is_some_and(|list| crate::config::settings::replica_list_contains(list, index, me));
    (listed && follower_throttled_rate < i64::MAX).then_some(follower_throttled_rate.max(0) as u64)
}

/// Tells the group coordinator which `__consumer_offsets` partitions this broker leads (none before its registration is in the image).
fn follow_offsets_leadership(broker: &Arc<Broker>, partitions: &[PartitionState], me: i32, registered: bool) {
    crate::group::attach(&broker.groups, &broker.replicas, partitions.len());
    for (index, p) in partitions.iter().enumerate() {
        broker.groups.set_leadership(index, registered && p.leader == me);
    }
}

/// The internal endpoint of broker `id` in `image`.
fn endpoint(image: &ClusterImage, id: i32) -> Option<String> {
    image.brokers.get(&id).map(|b| b.internal_endpoint.clone())
}

/// Partition leaders' ISR changes, proposed to the controller quorum as
/// `AlterIsr` commands.
#[derive(Debug)]
pub struct ControllerIsrChannel {
    controller: Arc<Controller>,
    node_id: i32,
    /// For the ISR before a change (the published image) and the ISR change counters.
    broker: std::sync::Weak<Broker>,
    isr_changes: crate::metrics::IsrChangeCounters,
}

impl ControllerIsrChannel {
    /// ISR changes by `broker` as leader.
    pub fn new(broker: &Arc<Broker>) -> ControllerIsrChannel {
        ControllerIsrChannel {
            controller: broker.controller.clone(),
            node_id: broker.config.node_id,
            broker: Arc::downgrade(broker),
            isr_changes: broker.metrics.isr_changes(),
        }
    }
}

impl IsrChannel for ControllerIsrChannel {
    fn alter_isr(
        &self,
        tp: TopicPartition,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send>> {
        let controller = self.controller.clone();
        let isr_changes = self.isr_changes.clone();
        // The ISR this change builds on, if the published image is at its partition epoch.
        let published = self.broker.upgrade().and_then(|b| b.last_image.lock().clone());
        let old_len = published.as_ref().and_then(|image| {
            let topic = image.topics.get(&tp.topic)?;
            let p = topic.partitions.get(usize::try_from(tp.partition).ok()?)?;
            (p.partition_epoch == partition_epoch).then_some(p.isr.len())
        });
        let new_len = new_isr.len();
        let command = Command::AlterIsr {
            topic: tp.topic,
            partition: tp.partition,
            leader_id: self.node_id,
            leader_epoch,
            partition_epoch,
            new_isr,
        };
        Box::pin(async move {
            match controller.propose(command).await {
                Ok(Ok(Outcome::IsrAltered { partition_epoch })) => {
                    isr_changes.record(old_len.unwrap_or(new_len), new_len);
                    Ok(partition_epoch)
                }
                Ok(Ok(other)) => Err(format!("unexpected answer to an ISR change: {other:?}")),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::image::Reassignment;

    fn partition(isr: &[i32], reassignment: Option<Reassignment>) -> PartitionState {
        PartitionState {
            replicas: vec![0, 1, 2],
            isr: isr.to_vec(),
            leader: 0,
            leader_epoch: 1,
            partition_epoch: 1,
            reassignment,
        }
    }

    #[test]
    fn only_listed_or_added_replicas_outside_the_isr_are_throttled() {
        let out_of_isr = partition(&[0, 1], None);
        assert_eq!(catch_up_rate(&out_of_isr, 3, 2, Some("*"), 1000), Some(1000));
        assert_eq!(catch_up_rate(&out_of_isr, 3, 2, Some("3:2"), 1000), Some(1000));
        assert_eq!(catch_up_rate(&out_of_isr, 3, 2, Some("3:1,4:2"), 1000), None, "another replica is listed");
        assert_eq!(catch_up_rate(&out_of_isr, 3, 2, None, 1000), None, "no list, no throttle");
        assert_eq!(catch_up_rate(&out_of_isr, 3, 2, Some("*"), i64::MAX), None, "the default rate does not throttle");
        assert_eq!(catch_up_rate(&partition(&[0, 1, 2], None), 3, 2, Some("*"), 1000), None, "in the ISR");
        assert_eq!(catch_up_rate(&out_of_isr, 3, 0, Some("*"), 1000), None, "the leader is never throttled");

        let adding = Reassignment { adding: vec![2], removing: vec![1], throttle_bytes_per_sec: 500 };
        let moving = partition(&[0, 1], Some(adding));
        assert_eq!(catch_up_rate(&moving, 3, 2, Some("*"), 1000), Some(500), "a reassignment's own rate wins");
        assert_eq!(catch_up_rate(&moving, 3, 2, None, i64::MAX), Some(500));
    }
}
