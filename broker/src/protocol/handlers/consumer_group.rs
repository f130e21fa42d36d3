//! The consumer group protocol (KIP-848) on the wire: ConsumerGroupHeartbeat
//! and ConsumerGroupDescribe.
//!
//! Turns the typed requests into calls on the coordinator
//! ([`crate::group::coordinator`]) with topic ids resolved from the metadata
//! image, and maps refusals to Kafka's error codes with a message.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use uuid::Uuid;

use super::str_bytes;
use crate::auth::access::Access;
use crate::auth::acl::AclOperation;
use crate::broker::Broker;
use crate::group::consumer::{self, ConsumerGroupError, Heartbeat, TopicMeta};
use crate::group::coordinator::consumer::HeartbeatError;
use crate::protocol::codec::RequestContext;
use crate::protocol::errors::KafkaError;

impl From<&ConsumerGroupError> for KafkaError {
    fn from(e: &ConsumerGroupError) -> KafkaError {
        let error = match e {
            ConsumerGroupError::InvalidRequest(_) => ResponseError::InvalidRequest,
            ConsumerGroupError::UnknownMemberId(_) => ResponseError::UnknownMemberId,
            ConsumerGroupError::FencedMemberEpoch { .. } => ResponseError::FencedMemberEpoch,
            ConsumerGroupError::GroupMaxSizeReached(_) => ResponseError::GroupMaxSizeReached,
            ConsumerGroupError::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
            ConsumerGroupError::UnreleasedInstanceId(_) => ResponseError::UnreleasedInstanceId,
            ConsumerGroupError::InvalidRegularExpression { .. } => ResponseError::InvalidRegularExpression,
            ConsumerGroupError::FencedInstanceId { .. } => ResponseError::FencedInstanceId,
        };
        KafkaError::new(error, e.to_string())
    }
}

fn heartbeat_error(e: &HeartbeatError) -> KafkaError {
    match e {
        HeartbeatError::Group(g) => KafkaError::from(g),
        HeartbeatError::Consumer(c) => KafkaError::from(c),
    }
}

/// The metadata image's topics, by name, as the group sees them.
pub(super) fn topic_metadata(broker: &Broker) -> BTreeMap<String, TopicMeta> {
    let image = broker.metadata.read();
    image.topics().map(|t| (t.name.clone(), TopicMeta { id: t.id, partitions: t.partitions.len() as i32 })).collect()
}

/// The broker's topics among `names` (the rest are unknown to it).
pub(super) fn topics_named(broker: &Broker, names: &BTreeSet<String>) -> BTreeMap<String, TopicMeta> {
    let image = broker.metadata.read();
    names
        .iter()
        .filter_map(|n| {
            image.topic(n).map(|t| (n.clone(), TopicMeta { id: t.id, partitions: t.partitions.len() as i32 }))
        })
        .collect()
}

pub fn heartbeat(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    let mut member_id = request.member_id.to_string();
    if version == 0 && request.member_epoch == 0 && member_id.is_empty() {
        // v0: the coordinator names new members; v1 clients name themselves.
        member_id = Uuid::new_v4().simple().to_string();
    }
    let hb = Heartbeat {
        member_id,
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|s| s.to_string()),
        rack_id: request.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|v| v.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: request.server_assignor.map(|s| s.to_string()),
        owned: request.topic_partitions.map(|v| v.into_iter().map(|t| (t.topic_id, t.partitions)).collect()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
    };
    let metadata = topic_metadata(broker);
    // A regex matches only topics the member may describe, as Kafka filters it.
    let access = Access::of(broker, ctx);
    let may_describe = |topic: &str| !access.enabled() || access.topic(topic, AclOperation::Describe);
    match broker.groups.consumer_group_heartbeat(&request.group_id, hb, &metadata, &may_describe) {
        Ok(answer) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
            .with_assignment(answer.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, ps)| {
                            TopicPartitions::default().with_topic_id(id).with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => {
            let k = heartbeat_error(&e);
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(k.code())
                .with_error_message(Some(str_bytes(e.to_string())))
        }
    }
}

fn described(a: &consumer::Assignment, names: &BTreeMap<Uuid, String>) -> DescribedAssignment {
    DescribedAssignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, ps)| {
                DescribedTopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(str_bytes(names.get(id).cloned().unwrap_or_default())))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub fn describe(
    broker: &Arc<Broker>,
    request: ConsumerGroupDescribeRequest,
    _version: i16,
) -> ConsumerGroupDescribeResponse {
    let names: BTreeMap<Uuid, String> = topic_metadata(broker).into_iter().map(|(n, m)| (m.id, n)).collect();
    let groups = request
        .group_ids
        .into_iter()
        .map(|group_id| {
            let base = DescribedGroup::default().with_group_id(group_id.clone());
            match broker.groups.describe_consumer_group(&group_id) {
                Ok(Some(d)) => base
                    .with_group_state(str_bytes(d.state))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(str_bytes(d.assignor))
                    .with_authorized_operations(i32::MIN)
                    .with_members(
                        d.members
                            .iter()
                            .map(|m| {
                                let mm = &m.member;
                                Member::default()
                                    .with_member_id(str_bytes(mm.member_id.clone()))
                                    .with_instance_id(mm.instance_id.clone().map(str_bytes))
                                    .with_rack_id(mm.rack_id.clone().map(str_bytes))
                                    .with_member_epoch(mm.member_epoch)
                                    .with_client_id(str_bytes(mm.client_id.clone()))
                                    .with_client_host(str_bytes(mm.client_host.clone()))
                                    .with_subscribed_topic_names(
                                        mm.subscribed_topics.iter().map(|t| TopicName(str_bytes(t.clone()))).collect(),
                                    )
                                    .with_subscribed_topic_regex(mm.subscribed_regex.clone().map(str_bytes))
                                    .with_assignment(described(&mm.assigned, &names))
                                    .with_target_assignment(described(&m.target, &names))
                                    // KIP-848 v1: 0 for a member using the classic protocol, 1 for a consumer one.
                                    .with_member_type(if mm.classic.is_some() { 0 } else { 1 })
                            })
                            .collect(),
                    ),
                Ok(None) => base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!("group {} does not exist", group_id.0)))),
                Err(e) => {
                    let k = KafkaError::from(&e);
                    base.with_error_code(k.code()).with_error_message(Some(str_bytes(e.to_string())))
                }
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
