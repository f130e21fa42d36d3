//! DescribeQuorum (`kafka-metadata-quorum.sh describe`, AdminClient
//! `describeMetadataQuorum`): the controller quorum as the active controller
//! sees it ([`crate::controller::describe`]), asked of it by any broker, as a
//! Kafka broker forwards the request to the active controller.
//!
//! The request must name exactly `__cluster_metadata` partition 0, else each
//! partition it names is answered UNKNOWN_TOPIC_OR_PARTITION (as Kafka). When
//! no active controller answers in time the partition is answered
//! NOT_LEADER_OR_FOLLOWER.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};

use super::str_bytes;
use crate::broker::Broker;
use crate::controller::describe::{LISTENER, QuorumDescription, ReplicaView};

/// Kafka's name of the metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(broker: &Arc<Broker>, request: DescribeQuorumRequest, version: i16) -> DescribeQuorumResponse {
    let ok_message = (version >= 2).then(|| str_bytes(""));
    if !names_the_metadata_partition(&request) {
        return unknown_partitions(request, version);
    }
    let (partition, nodes) = match broker.controller.describe_quorum().await {
        Ok(q) => {
            let nodes = if version >= 2 { nodes(&q) } else { Vec::new() };
            (described(q, version).with_error_message(ok_message.clone()), nodes)
        }
        Err(e) => {
            let partition = PartitionData::default()
                .with_error_code(ResponseError::NotLeaderOrFollower.code())
                .with_error_message((version >= 2).then(|| str_bytes(e.to_string())))
                .with_leader_id(BrokerId(-1))
                .with_leader_epoch(-1)
                .with_high_watermark(-1);
            (partition, Vec::new())
        }
    };
    DescribeQuorumResponse::default()
        .with_error_message(ok_message)
        .with_topics(vec![TopicData::default().with_topic_name(metadata_topic()).with_partitions(vec![partition])])
        .with_nodes(nodes)
}

/// Exactly one topic, `__cluster_metadata`, with exactly partition 0.
fn names_the_metadata_partition(request: &DescribeQuorumRequest) -> bool {
    matches!(request.topics.as_slice(), [t] if t.topic_name.0.as_str() == METADATA_TOPIC
        && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0))
}

/// Each partition named answered UNKNOWN_TOPIC_OR_PARTITION.
fn unknown_partitions(request: DescribeQuorumRequest, version: i16) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message((version >= 2).then(|| {
                            str_bytes(format!(
                                "only {METADATA_TOPIC} partition 0 has a quorum; asked for {} {}",
                                t.topic_name.0.as_str(),
                                p.partition_index
                            ))
                        }))
                })
                .collect();
            TopicData::default().with_topic_name(t.topic_name).with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default().with_error_message((version >= 2).then(|| str_bytes(""))).with_topics(topics)
}

fn described(q: QuorumDescription, version: i16) -> PartitionData {
    let state = |r: ReplicaView| {
        let state = ReplicaState::default().with_replica_id(BrokerId(r.id)).with_log_end_offset(r.log_end_offset);
        if version >= 1 {
            state.with_last_fetch_timestamp(r.last_fetch_ms).with_last_caught_up_timestamp(r.last_caught_up_ms)
        } else {
            state
        }
    };
    PartitionData::default()
        .with_leader_id(BrokerId(q.leader_id))
        .with_leader_epoch(q.leader_epoch)
        .with_high_watermark(q.high_watermark)
        .with_current_voters(q.voters.into_iter().map(state).collect())
        .with_observers(q.observers.into_iter().map(state).collect())
}

/// Each member's internal endpoint (v2).
fn nodes(q: &QuorumDescription) -> Vec<Node> {
    q.nodes
        .iter()
        .map(|n| {
            let listener = Listener::default()
                .with_name(str_bytes(LISTENER))
                .with_host(str_bytes(n.host.clone()))
                .with_port(n.port);
            Node::default().with_node_id(BrokerId(n.id)).with_listeners(vec![listener])
        })
        .collect()
}

fn metadata_topic() -> TopicName {
    TopicName(str_bytes(METADATA_TOPIC))
}
