//! The group coordinator's APIs on the wire: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
//! DeleteGroups, OffsetDelete (and FindCoordinator, which starts the
//! coordinator on first use).
//!
//! Each handler turns the typed request of its version into a plain call on
//! [`crate::group::GroupCoordinator`] and the answer into the typed response
//! of that version; this is where [`GroupError`]s become Kafka error codes.
//! JoinGroup and SyncGroup may wait up to the group's rebalance timeout.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::Broker;
use crate::group::GroupError;
use crate::group::coordinator::{FetchedTopic, OffsetCommit, PartitionCommit, PartitionResult};
use crate::group::member::Protocol;
use crate::group::state::{JoinRequest, LeavingMember, SyncRequest};
use crate::protocol::codec::RequestContext;
use crate::protocol::errors::KafkaError;

impl From<&GroupError> for KafkaError {
    fn from(e: &GroupError) -> KafkaError {
        let error = match e {
            GroupError::CoordinatorNotAvailable | GroupError::Storage(_) => ResponseError::CoordinatorNotAvailable,
            GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
            GroupError::NotCoordinator => ResponseError::NotCoordinator,
            GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
            GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
            GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
            GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
            GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
            GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
            GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
            GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
            GroupError::OffsetMetadataTooLarge { .. } => ResponseError::OffsetMetadataTooLarge,
            GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
            GroupError::InvalidCommitOffsetSize => ResponseError::InvalidCommitOffsetSize,
            GroupError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
            GroupError::StaleMemberEpoch { .. } => ResponseError::StaleMemberEpoch,
            GroupError::WrongGroupType { .. } => ResponseError::GroupIdNotFound,
        };
        KafkaError::new(error, e.to_string())
    }
}

/// The Kafka error code of a result.
fn code(result: &Result<(), GroupError>) -> i16 {
    match result {
        Ok(()) => 0,
        Err(e) => KafkaError::from(e).code(),
    }
}

fn error_code(error: Option<&GroupError>) -> i16 {
    error.map(|e| KafkaError::from(e).code()).unwrap_or(0)
}

fn opt_str(s: Option<String>) -> Option<StrBytes> {
    s.map(str_bytes)
}

/// FindCoordinator; also starts the group coordinator on first use.
pub fn find_coordinator(
    broker: &Arc<Broker>,
    ctx: &crate::protocol::codec::RequestContext,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let _ = broker.groups.clone();
    super::coordinator::find(broker, ctx.listener.as_deref(), request, version)
}

pub async fn join_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let coordinator = broker.groups.clone();
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        // Kafka shows the member's host as "/<ip>".
        client_host: ctx.peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol { name: p.name.to_string(), metadata: p.metadata })
            .collect(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 { request.session_timeout_ms } else { request.rebalance_timeout_ms },
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        reason: request.reason.map(|s| s.to_string()),
    };
    // Resolved only if the group is a consumer group, and dropped before the join waits.
    let lookup = |names: &BTreeSet<String>| super::consumer_group::topics_named(broker, names);
    let r = coordinator.join_group_with(&request.group_id, join, Some(&lookup)).await;
    let protocol_name = match r.protocol_name {
        // Before v7 the protocol name is not nullable.
        None if version < 7 => Some(StrBytes::default()),
        other => opt_str(other),
    };
    JoinGroupResponse::default()
        .with_error_code(error_code(r.error.as_ref()))
        .with_generation_id(r.generation_id)
        .with_protocol_type(opt_str(r.protocol_type))
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(r.leader))
        .with_skip_assignment(r.skip_assignment && version >= 9)
        .with_member_id(str_bytes(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(opt_str(m.group_instance_id))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub async fn sync_group(broker: &Arc<Broker>, request: SyncGroupRequest, _version: i16) -> SyncGroupResponse {
    let coordinator = broker.groups.clone();
    let sync = SyncRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.map(|s| s.to_string()),
        protocol_name: request.protocol_name.map(|s| s.to_string()),
        assignments: request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    let r = coordinator.sync_group(&request.group_id, sync).await;
    SyncGroupResponse::default()
        .with_error_code(error_code(r.error.as_ref()))
        .with_protocol_type(opt_str(r.protocol_type))
        .with_protocol_name(opt_str(r.protocol_name))
        .with_assignment(r.assignment)
}

pub fn heartbeat(broker: &Arc<Broker>, request: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    let coordinator = broker.groups.clone();
    let instance = request.group_instance_id.as_ref().map(|s| s.as_str());
    let result = coordinator.heartbeat(&request.group_id, &request.member_id, instance, request.generation_id);
    HeartbeatResponse::default().with_error_code(code(&result))
}

pub fn leave_group(broker: &Arc<Broker>, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let coordinator = broker.groups.clone();
    let leaving: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                reason: m.reason.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember { member_id: request.member_id.to_string(), group_instance_id: None, reason: None }]
    };
    match coordinator.leave_group(&request.group_id, &leaving) {
        Err(e) => LeaveGroupResponse::default().with_error_code(KafkaError::from(&e).code()),
        Ok(results) if version < 3 => {
            // One member, answered at the top level.
            let first = results.into_iter().next().unwrap_or(Ok(()));
            LeaveGroupResponse::default().with_error_code(code(&first))
        }
        Ok(results) => LeaveGroupResponse::default().with_members(
            leaving
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(opt_str(m.group_instance_id))
                        .with_error_code(code(&r))
                })
                .collect(),
        ),
    }
}

/// Whether the metadata image has `topic` with a partition `partition`.
fn partition_exists(broker: &Broker, topic: &str, partition: i32) -> bool {
    let metadata = broker.metadata.read();
    metadata.topic(topic).is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len())
}

pub async fn offset_commit(broker: &Arc<Broker>, request: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let coordinator = broker.groups.clone();
    // Partitions that do not exist are refused here, the rest go to the coordinator.
    let mut results: HashMap<(String, i32), i16> = HashMap::new();
    let mut topics = Vec::new();
    for topic in &request.topics {
        let name = topic.name.to_string();
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            if partition_exists(broker, &name, p.partition_index) {
                partitions.push(PartitionCommit {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                });
            } else {
                results.insert((name.clone(), p.partition_index), ResponseError::UnknownTopicOrPartition.code());
            }
        }
        if !partitions.is_empty() {
            topics.push((name, partitions));
        }
    }
    let commit = OffsetCommit {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        generation_id: request.generation_id_or_member_epoch,
        retention_time_ms: (version <= 4 && request.retention_time_ms != -1).then_some(request.retention_time_ms),
        topics,
    };
    let group_error = if commit.topics.is_empty() && request.group_id.is_empty() {
        Some(KafkaError::from(&GroupError::InvalidGroupId).code())
    } else if commit.topics.is_empty() {
        None
    } else {
        match coordinator.commit_offsets(&request.group_id, commit, version).await {
            Ok(partition_results) => {
                for (topic, partition, r) in partition_results {
                    results.insert((topic, partition), code(&r));
                }
                None
            }
            Err(e) => Some(KafkaError::from(&e).code()),
        }
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.to_string();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let key = (name.clone(), p.partition_index);
                    // A refused partition keeps its own error; the rest share the group's.
                    let code = match (results.get(&key), group_error) {
                        (Some(&c), _) if c == ResponseError::UnknownTopicOrPartition.code() => c,
                        (_, Some(g)) => g,
                        (Some(&c), None) => c,
                        (None, None) => 0,
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's answer to OffsetFetch: committed offsets or a group-level error.
/// A fetched topic: per partition its offset and whether an open transaction
/// holds an offset for it (asked with `require_stable`: UNSTABLE_OFFSET_COMMIT).
type FetchedWithStability = (String, Vec<(i32, Option<crate::group::offsets::OffsetAndMetadata>, bool)>);

fn fetch_group(
    broker: &Arc<Broker>,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<FetchedWithStability>, GroupError> {
    let fetched: Vec<FetchedTopic> = broker.groups.clone().fetch_offsets(group_id, topics)?;
    let unstable = if require_stable {
        let asked: Vec<(String, i32)> =
            fetched.iter().flat_map(|(t, ps)| ps.iter().map(move |(p, _)| (t.clone(), *p))).collect();
        broker.groups.unstable_offsets(group_id, &asked)
    } else {
        Vec::new()
    };
    Ok(fetched
        .into_iter()
        .map(|(t, ps)| {
            let ps =
                ps.into_iter().map(|(p, o)| (p, o, unstable.iter().any(|(ut, up)| *ut == t && *up == p))).collect();
            (t, ps)
        })
        .collect())
}

fn stability_code(unstable: bool) -> i16 {
    if unstable { ResponseError::UnstableOffsetCommit.code() } else { 0 }
}

/// (offset, leader epoch, metadata) of a fetched partition: -1, -1, "" when none.
fn fetched_fields(offset: Option<crate::group::offsets::OffsetAndMetadata>) -> (i64, i32, StrBytes) {
    match offset {
        Some(o) => (o.offset, o.leader_epoch.unwrap_or(-1), str_bytes(o.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

pub fn offset_fetch(broker: &Arc<Broker>, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g
                    .topics
                    .map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect::<Vec<_>>());
                let base = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                // v9: a consumer-protocol member's fetch carries its member id and epoch (KIP-848).
                let member = g.member_id.as_deref().unwrap_or_default();
                let checked = broker.groups.validate_offset_fetch(&g.group_id, member, g.member_epoch);
                match checked.and_then(|()| fetch_group(broker, &g.group_id, topics, request.require_stable)) {
                    Err(e) => base.with_error_code(KafkaError::from(&e).code()),
                    Ok(fetched) => base.with_topics(
                        fetched
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(topic)))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(p, o, unstable)| {
                                                let (offset, epoch, metadata) = fetched_fields(o);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_error_code(stability_code(unstable))
                                                    .with_partition_index(p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(metadata))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let requested: Option<Vec<(String, Vec<i32>)>> = request
        .topics
        .as_ref()
        .map(|ts| ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect());
    let partition = |p: i32, offset, epoch, metadata, error: i16| {
        OffsetFetchResponsePartition::default()
            .with_partition_index(p)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(epoch)
            .with_metadata(Some(metadata))
            .with_error_code(error)
    };
    match fetch_group(broker, &request.group_id, requested.clone(), request.require_stable) {
        Ok(fetched) => OffsetFetchResponse::default().with_topics(
            fetched
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(topic))).with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, o, unstable)| {
                                let (offset, epoch, metadata) = fetched_fields(o);
                                partition(p, offset, epoch, metadata, stability_code(unstable))
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
        Err(e) => {
            let error = KafkaError::from(&e).code();
            // v1 has no top-level error: every requested partition carries it.
            let topics = requested
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(topic))).with_partitions(
                        partitions.into_iter().map(|p| partition(p, -1, -1, StrBytes::default(), error)).collect(),
                    )
                })
                .collect();
            let response = OffsetFetchResponse::default().with_topics(topics);
            if version >= 2 { response.with_error_code(error) } else { response }
        }
    }
}

pub fn describe_groups(broker: &Arc<Broker>, request: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let coordinator = broker.groups.clone();
    // Without an authorizer every operation is allowed: READ, DELETE, DESCRIBE,
    // DESCRIBE_CONFIGS and ALTER_CONFIGS (AclOperation codes 3, 6, 8, 10, 11).
    let authorized = if request.include_authorized_operations && version >= 3 {
        (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)
    } else {
        i32::MIN
    };
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let base = DescribedGroup::default().with_group_id(group_id.clone()).with_authorized_operations(authorized);
            let fail = |base: DescribedGroup, e: &GroupError| {
                let k = KafkaError::from(e);
                let base = base.with_error_code(k.code()).with_group_state(str_bytes(""));
                if version >= 6 { base.with_error_message(Some(str_bytes(k.message))) } else { base }
            };
            match coordinator.describe_group(&group_id) {
                Err(e) => fail(base, &e),
                // Before v6 an unknown group is described as Dead, without an error.
                Ok(None) if version < 6 => base.with_group_state(str_bytes("Dead")),
                Ok(None) => fail(base, &GroupError::GroupIdNotFound)
                    .with_error_message(Some(str_bytes(format!("group {} not found", group_id.as_str())))),
                Ok(Some(d)) => base
                    .with_group_state(str_bytes(d.state.as_str()))
                    .with_protocol_type(str_bytes(d.protocol_type))
                    .with_protocol_data(str_bytes(d.protocol_data))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(opt_str(m.group_instance_id))
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn list_groups(broker: &Arc<Broker>, request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let coordinator = broker.groups.clone();
    let listings = match coordinator.list_groups() {
        Ok(l) => l,
        Err(e) => return ListGroupsResponse::default().with_error_code(KafkaError::from(&e).code()),
    };
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = listings
        .into_iter()
        .filter(|g| {
            let state = g.consumer_state.unwrap_or(g.state.as_str());
            states.is_empty() || states.contains(&state.to_lowercase())
        })
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let state = g.consumer_state.unwrap_or(g.state.as_str());
            let listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(state));
            if version >= 5 { listed.with_group_type(str_bytes(g.group_type)) } else { listed }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(broker: &Arc<Broker>, request: DeleteGroupsRequest, _version: i16) -> DeleteGroupsResponse {
    let coordinator = broker.groups.clone();
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let result = coordinator.delete_group(&group_id).await;
        results.push(DeletableGroupResult::default().with_group_id(group_id).with_error_code(code(&result)));
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub async fn offset_delete(broker: &Arc<Broker>, request: OffsetDeleteRequest, _version: i16) -> OffsetDeleteResponse {
    let coordinator = broker.groups.clone();
    let topics: Vec<(String, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions.iter().map(|p| p.partition_index).collect()))
        .collect();
    match coordinator.delete_offsets(&request.group_id, topics).await {
        Err(e) => OffsetDeleteResponse::default().with_error_code(KafkaError::from(&e).code()),
        Ok(results) => OffsetDeleteResponse::default().with_topics(group_by_topic(results)),
    }
}

fn group_by_topic(results: Vec<PartitionResult>) -> Vec<OffsetDeleteResponseTopic> {
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for (topic, partition, r) in results {
        let p = OffsetDeleteResponsePartition::default().with_partition_index(partition).with_error_code(code(&r));
        match topics.last_mut() {
            Some(t) if t.name.as_str() == topic => t.partitions.push(p),
            _ => topics.push(
                OffsetDeleteResponseTopic::default().with_name(TopicName(str_bytes(topic))).with_partitions(vec![p]),
            ),
        }
    }
    topics
}
