//! The Admin service's judgements, pure: what the cluster looks like
//! (describe), which elections to run, whether a broker may restart — plain
//! functions over a [`ClusterImage`], tested without a quorum.
//!
//! Must never: change anything; changes go through [`crate::admin::apply`].

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use strom_proto::admin::{
    BrokerInfo, DescribeClusterResponse, DescribeTopicsResponse, ElectionType, IsSafeToRestartResponse,
    PartitionDescription, PartitionRef, TopicDescription,
};

use crate::admin::{self, Change};
use crate::config::Settings;
use crate::controller::ClusterImage;
use crate::controller::image::{NO_LEADER, PartitionState};
use crate::protocol::errors::KafkaError;

/// Reasons listed in an IsSafeToRestart answer before "and N more".
const MAX_REASONS: usize = 5;

fn partition_ref(topic: &str, partition: usize) -> PartitionRef {
    PartitionRef { topic: topic.to_string(), partition: partition as i32 }
}

fn all_partitions(image: &ClusterImage) -> impl Iterator<Item = (&str, usize, &PartitionState)> {
    image.topics.iter().flat_map(|(name, t)| t.partitions.iter().enumerate().map(move |(i, p)| (name.as_str(), i, p)))
}

/// Partitions `broker_id` leads.
pub fn leaderships(image: &ClusterImage, broker_id: i32) -> Vec<PartitionRef> {
    all_partitions(image).filter(|(_, _, p)| p.leader == broker_id).map(|(t, i, _)| partition_ref(t, i)).collect()
}

/// Whether `p` has fewer in-sync replicas than it should: as Kafka, the
/// replicas a reassignment is adding do not count until they are in sync.
pub fn is_under_replicated(p: &PartitionState) -> bool {
    let adding = p.reassignment.as_ref().map_or(0, |r| r.adding.len());
    p.isr.len() < p.replicas.len().saturating_sub(adding)
}

/// DescribeCluster from an image and the active controller (if known).
pub fn describe_cluster(image: &ClusterImage, controller: Option<i32>) -> DescribeClusterResponse {
    let brokers = image
        .brokers
        .values()
        .map(|b| BrokerInfo {
            broker_id: b.broker_id,
            advertised_endpoint: b.advertised_endpoint.clone(),
            internal_endpoint: b.internal_endpoint.clone(),
            rack: b.rack.clone(),
            fenced: b.fenced,
            in_controlled_shutdown: b.in_controlled_shutdown,
            broker_epoch: b.broker_epoch,
        })
        .collect();
    let under_replicated_partitions =
        all_partitions(image).filter(|(_, _, p)| is_under_replicated(p)).map(|(t, i, _)| partition_ref(t, i)).collect();
    let reassigning_partitions = all_partitions(image)
        .filter(|(_, _, p)| p.reassignment.is_some())
        .map(|(t, i, _)| partition_ref(t, i))
        .collect();
    let offline_partitions =
        all_partitions(image).filter(|(_, _, p)| p.leader == NO_LEADER).map(|(t, i, _)| partition_ref(t, i)).collect();
    DescribeClusterResponse {
        cluster_id: image.cluster_id.clone(),
        controller_id: controller.unwrap_or(-1),
        brokers,
        under_replicated_partitions,
        offline_partitions,
        reassigning_partitions,
        broker_configs: image.broker_configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        // Not in the image: the service fills it from the Raft membership.
        controller_voters: Vec::new(),
    }
}

/// DescribeTopics: the named topics (every topic when `names` is empty).
pub fn describe_topics(image: &ClusterImage, names: &[String]) -> DescribeTopicsResponse {
    let names: Vec<&str> = if names.is_empty() {
        image.topics.keys().map(String::as_str).collect()
    } else {
        names.iter().map(String::as_str).collect()
    };
    let topics = names
        .into_iter()
        .map(|name| match image.topics.get(name) {
            Some(t) => TopicDescription {
                name: name.to_string(),
                error_code: 0,
                error_message: String::new(),
                topic_id: t.topic_id.as_bytes().to_vec(),
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| PartitionDescription {
                        partition: i as i32,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        adding_replicas: p.reassignment.as_ref().map(|r| r.adding.clone()).unwrap_or_default(),
                        removing_replicas: p.reassignment.as_ref().map(|r| r.removing.clone()).unwrap_or_default(),
                    })
                    .collect(),
                configs: t.configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            },
            None => TopicDescription {
                name: name.to_string(),
                error_code: ResponseError::UnknownTopicOrPartition.code().into(),
                error_message: format!("topic `{name}` does not exist"),
                ..Default::default()
            },
        })
        .collect();
    DescribeTopicsResponse { topics }
}

/// For each requested partition (every partition when `partitions` is
/// empty), the election command to propose or why none is needed or possible.
///
/// Preferred: only when the preferred (first) replica is an unfenced ISR
/// member and not already leader — [`Change::ElectLeader`] then picks it.
/// Unclean: only for a partition without a leader; it may pick a replica
/// outside the ISR.
pub fn plan_elections(
    image: &ClusterImage,
    election: ElectionType,
    partitions: &[PartitionRef],
) -> Vec<(PartitionRef, Result<Change, KafkaError>)> {
    let refs: Vec<PartitionRef> = if partitions.is_empty() {
        all_partitions(image).map(|(t, i, _)| partition_ref(t, i)).collect()
    } else {
        partitions.to_vec()
    };
    let live: BTreeSet<i32> = image.brokers.values().filter(|b| !b.fenced).map(|b| b.broker_id).collect();
    refs.into_iter()
        .map(|r| {
            let step = plan_election(image.partition(&r.topic, r.partition), &r, election, &live);
            (r, step)
        })
        .collect()
}

fn plan_election(
    state: Option<&PartitionState>,
    r: &PartitionRef,
    election: ElectionType,
    live: &BTreeSet<i32>,
) -> Result<Change, KafkaError> {
    let name = format!("`{}`-{}", r.topic, r.partition);
    let Some(p) = state else {
        return Err(KafkaError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("partition {name} does not exist"),
        ));
    };
    let elect = |allow_unclean| Change::ElectLeader { topic: r.topic.clone(), partition: r.partition, allow_unclean };
    match election {
        ElectionType::Preferred => {
            let Some(&preferred) = p.replicas.first() else {
                return Err(KafkaError::new(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("{name} has no replicas"),
                ));
            };
            if p.leader == preferred {
                Err(KafkaError::new(
                    ResponseError::ElectionNotNeeded,
                    format!("{name}: the preferred replica {preferred} already leads"),
                ))
            } else if !p.isr.contains(&preferred) {
                Err(KafkaError::new(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("{name}: the preferred replica {preferred} is not in the ISR {:?}", p.isr),
                ))
            } else if !live.contains(&preferred) {
                Err(KafkaError::new(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("{name}: the preferred replica {preferred} is fenced (not heartbeating)"),
                ))
            } else {
                Ok(elect(false))
            }
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER {
                Err(KafkaError::new(
                    ResponseError::ElectionNotNeeded,
                    format!("{name} has a leader ({}); unclean election is only for offline partitions", p.leader),
                ))
            } else {
                Ok(elect(true))
            }
        }
    }
}

/// The effective `min.insync.replicas` of `topic` in `image` (see [`admin::min_insync_replicas`]).
fn image_min_insync_replicas(image: &ClusterImage, topic: &str, settings: &Settings) -> i64 {
    let key = "min.insync.replicas";
    let topic_override = image.topics.get(topic).and_then(|t| t.configs.get(key)).map(String::as_str);
    admin::min_insync_replicas(topic_override, image.broker_configs.get(key).map(String::as_str), settings) as i64
}

/// Whether stopping `broker_id` now keeps every partition writable with
/// acks=all and the controller quorum alive.
///
/// Unsafe when: a partition whose ISR holds the broker would, without it,
/// fall below its `min.insync.replicas` (this includes a partition with
/// replication factor 1 on that broker, which has no other replica to fail
/// over to); the broker leads a partition whose ISR is only itself; or the
/// broker is a controller voter and the other live voters (unfenced brokers
/// among `voters`) are not a majority of `voters`.
pub fn safe_to_restart(
    image: &ClusterImage,
    broker_id: i32,
    settings: &Settings,
    voters: &[i32],
) -> IsSafeToRestartResponse {
    let mut reasons = Vec::new();
    let mut at_risk_partitions = Vec::new();
    for (topic, i, p) in all_partitions(image) {
        if !p.isr.contains(&broker_id) {
            continue;
        }
        let min_isr = image_min_insync_replicas(image, topic, settings);
        let remaining = p.isr.len() as i64 - 1;
        let reason = if p.leader == broker_id && p.isr == [broker_id] {
            Some(format!(
                "broker {broker_id} leads `{topic}`-{i} and is its only in-sync replica (replicas {:?}); \
                 stopping it takes the partition offline",
                p.replicas
            ))
        } else if remaining < min_isr {
            Some(format!(
                "`{topic}`-{i} has ISR {:?}; without broker {broker_id} it would have {remaining}, \
                 below min.insync.replicas={min_isr}",
                p.isr
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            reasons.push(reason);
            at_risk_partitions.push(partition_ref(topic, i));
        }
    }
    if voters.contains(&broker_id) {
        let live_others: Vec<i32> = voters
            .iter()
            .copied()
            .filter(|v| *v != broker_id && image.brokers.get(v).is_some_and(|b| !b.fenced))
            .collect();
        let majority = voters.len() / 2 + 1;
        if live_others.len() < majority {
            reasons.insert(
                0,
                format!(
                    "broker {broker_id} is a controller voter; of the voters {voters:?} only {live_others:?} would \
                     stay up, fewer than the majority of {majority} the quorum needs"
                ),
            );
        }
    }
    let safe = reasons.is_empty();
    let reason = if safe {
        match image.brokers.get(&broker_id) {
            Some(_) => String::new(),
            None => format!("broker {broker_id} is not registered; it holds no partition"),
        }
    } else if reasons.len() > MAX_REASONS {
        let more = reasons.len() - MAX_REASONS;
        format!("{}; and {more} more", reasons[..MAX_REASONS].join("; "))
    } else {
        reasons.join("; ")
    };
    IsSafeToRestartResponse { safe, reason, at_risk_partitions }
}
