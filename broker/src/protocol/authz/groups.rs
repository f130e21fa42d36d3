//! Consumer groups as Kafka authorizes them: FindCoordinator (DESCRIBE on
//! the group or transactional id), JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and OffsetCommit (READ on the group; OffsetCommit also READ
//! on each topic), OffsetFetch (DESCRIBE on the group and on each topic),
//! DescribeGroups (DESCRIBE), ListGroups (every group with DESCRIBE on the
//! cluster, else the groups the principal may DESCRIBE), DeleteGroups
//! (DELETE), OffsetDelete (DELETE on the group, READ on each topic),
//! ConsumerGroupHeartbeat (READ on the group, DESCRIBE on each subscribed
//! topic) and ConsumerGroupDescribe (DESCRIBE on the group, and on every
//! topic its members subscribe to or are assigned, else TOPIC_AUTHORIZATION_FAILED).

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as ConsumerDescribedGroup;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerGroupHeartbeatResponse, FindCoordinatorResponse, GroupId, HeartbeatResponse, JoinGroupResponse,
    LeaveGroupResponse, OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse, RequestKind, ResponseKind,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Gate, code, denied_message};
use crate::auth::access::Access;
use crate::auth::acl::{AclOperation, ResourceType};

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// Topics left out, with their partitions.
type Topics = Vec<(TopicName, Vec<i32>)>;

/// What [`after`] adds or filters.
#[derive(Debug)]
pub enum Patch {
    /// FindCoordinator v4+: refused keys and their error.
    Coordinators(Vec<(String, ResponseError)>),
    /// OffsetCommit / OffsetDelete: refused topics.
    Topics(Topics),
    /// OffsetFetch v1-7: refused topics, or `None` to filter all topics.
    OffsetFetch(Option<Topics>),
    /// OffsetFetch v8+: refused groups, and per passed group its refused
    /// topics (`None`: all topics asked for, filter them).
    OffsetFetchGroups { refused: Vec<String>, topics: HashMap<String, Option<Topics>> },
    /// DescribeGroups: refused groups; whether to fill in authorized operations.
    DescribeGroups { refused: Vec<String>, operations: bool },
    /// ListGroups: keep only the groups the principal may describe.
    ListGroups,
    /// DeleteGroups: refused groups.
    DeleteGroups(Vec<String>),
    /// ConsumerGroupDescribe: refused groups.
    ConsumerGroupDescribe(Vec<String>),
}

fn pass(request: RequestKind, patch: Patch) -> Gate {
    Gate::Pass(request, super::Patch::Groups(patch))
}

fn refuse(body: ResponseKind) -> Gate {
    Gate::Refuse(body)
}

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

/// Splits `topics` by `allowed`, returning the kept ones and the refused names and partitions.
fn split<T>(
    topics: Vec<T>,
    allowed: impl Fn(&T) -> bool,
    describe: impl Fn(&T) -> (TopicName, Vec<i32>),
) -> (Vec<T>, Topics) {
    let (ok, no): (Vec<T>, Vec<T>) = topics.into_iter().partition(|t| allowed(t));
    (ok, no.iter().map(describe).collect())
}

pub fn before(access: &Access<'_>, request: RequestKind, version: i16) -> Gate {
    let group_error = code(ResponseError::GroupAuthorizationFailed);
    match request {
        RequestKind::FindCoordinator(mut r) => {
            let check = |key: &str| match r.key_type {
                KEY_GROUP => {
                    (!access.group(key, AclOperation::Describe)).then_some(ResponseError::GroupAuthorizationFailed)
                }
                KEY_TRANSACTION => (!access.allows(ResourceType::TransactionalId, key, AclOperation::Describe))
                    .then_some(ResponseError::TransactionalIdAuthorizationFailed),
                _ => None,
            };
            if version < 4 {
                return match check(&r.key) {
                    Some(e) => refuse(ResponseKind::FindCoordinator(
                        FindCoordinatorResponse::default()
                            .with_error_code(code(e))
                            .with_error_message(
                                (version >= 1).then(|| s(denied_message(access, "find this coordinator (DESCRIBE)"))),
                            )
                            .with_node_id(BrokerId(-1))
                            .with_port(-1),
                    )),
                    None => Gate::Pass(RequestKind::FindCoordinator(r), super::Patch::None),
                };
            }
            let mut refused = Vec::new();
            let keys = std::mem::take(&mut r.coordinator_keys);
            for key in keys {
                match check(&key) {
                    Some(e) => refused.push((key.to_string(), e)),
                    None => r.coordinator_keys.push(key),
                }
            }
            pass(RequestKind::FindCoordinator(r), Patch::Coordinators(refused))
        }
        RequestKind::JoinGroup(r) if !access.group(&r.group_id, AclOperation::Read) => refuse(ResponseKind::JoinGroup(
            JoinGroupResponse::default().with_error_code(group_error).with_generation_id(-1),
        )),
        RequestKind::SyncGroup(r) if !access.group(&r.group_id, AclOperation::Read) => {
            refuse(ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(group_error)))
        }
        RequestKind::Heartbeat(r) if !access.group(&r.group_id, AclOperation::Read) => {
            refuse(ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(group_error)))
        }
        RequestKind::LeaveGroup(r) if !access.group(&r.group_id, AclOperation::Read) => {
            refuse(ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(group_error)))
        }
        RequestKind::OffsetCommit(mut r) => {
            let group_ok = access.group(&r.group_id, AclOperation::Read);
            if !group_ok {
                let topics = r
                    .topics
                    .iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(group_error)
                                })
                                .collect(),
                        )
                    })
                    .collect();
                return refuse(ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics)));
            }
            let (ok, no) = split(
                r.topics,
                |t| access.topic(&t.name, AclOperation::Read),
                |t| (t.name.clone(), t.partitions.iter().map(|p| p.partition_index).collect()),
            );
            r.topics = ok;
            pass(RequestKind::OffsetCommit(r), Patch::Topics(no))
        }
        RequestKind::OffsetFetch(mut r) if version < 8 => {
            if !access.group(&r.group_id, AclOperation::Describe) {
                let topics = r
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        OffsetFetchResponseTopic::default().with_name(t.name.clone()).with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(-1)
                                        .with_error_code(group_error)
                                })
                                .collect(),
                        )
                    })
                    .collect();
                // The top-level error code exists from v2.
                let top = if version >= 2 { group_error } else { 0 };
                let body = OffsetFetchResponse::default().with_error_code(top).with_topics(topics);
                return refuse(ResponseKind::OffsetFetch(body));
            }
            let refused = r.topics.take().map(|topics| {
                let (ok, no) = split(
                    topics,
                    |t| access.topic(&t.name, AclOperation::Describe),
                    |t| (t.name.clone(), t.partition_indexes.clone()),
                );
                r.topics = Some(ok);
                no
            });
            pass(RequestKind::OffsetFetch(r), Patch::OffsetFetch(refused))
        }
        RequestKind::OffsetFetch(mut r) => {
            let mut refused = Vec::new();
            let mut topics = HashMap::new();
            let groups = std::mem::take(&mut r.groups);
            for mut g in groups {
                if !access.group(&g.group_id, AclOperation::Describe) {
                    refused.push(g.group_id.to_string());
                    continue;
                }
                let no = g.topics.take().map(|list| {
                    let (ok, no) = split(
                        list,
                        |t| access.topic(&t.name, AclOperation::Describe),
                        |t| (t.name.clone(), t.partition_indexes.clone()),
                    );
                    g.topics = Some(ok);
                    no
                });
                topics.insert(g.group_id.to_string(), no);
                r.groups.push(g);
            }
            pass(RequestKind::OffsetFetch(r), Patch::OffsetFetchGroups { refused, topics })
        }
        RequestKind::DescribeGroups(mut r) => {
            let operations = r.include_authorized_operations;
            let (ok, no): (Vec<GroupId>, Vec<GroupId>) =
                r.groups.into_iter().partition(|g| access.group(g, AclOperation::Describe));
            r.groups = ok;
            let refused = no.into_iter().map(|g| g.to_string()).collect();
            pass(RequestKind::DescribeGroups(r), Patch::DescribeGroups { refused, operations })
        }
        RequestKind::ListGroups(r) => {
            if access.cluster(AclOperation::Describe) {
                Gate::Pass(RequestKind::ListGroups(r), super::Patch::None)
            } else {
                pass(RequestKind::ListGroups(r), Patch::ListGroups)
            }
        }
        RequestKind::DeleteGroups(mut r) => {
            let (ok, no): (Vec<GroupId>, Vec<GroupId>) =
                r.groups_names.into_iter().partition(|g| access.group(g, AclOperation::Delete));
            r.groups_names = ok;
            pass(RequestKind::DeleteGroups(r), Patch::DeleteGroups(no.into_iter().map(|g| g.to_string()).collect()))
        }
        RequestKind::OffsetDelete(mut r) => {
            if !access.group(&r.group_id, AclOperation::Delete) {
                return refuse(ResponseKind::OffsetDelete(
                    OffsetDeleteResponse::default().with_error_code(group_error),
                ));
            }
            let (ok, no) = split(
                r.topics,
                |t| access.topic(&t.name, AclOperation::Read),
                |t| (t.name.clone(), t.partitions.iter().map(|p| p.partition_index).collect()),
            );
            r.topics = ok;
            pass(RequestKind::OffsetDelete(r), Patch::Topics(no))
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            if !access.group(&r.group_id, AclOperation::Read) {
                return refuse(ResponseKind::ConsumerGroupHeartbeat(
                    ConsumerGroupHeartbeatResponse::default()
                        .with_error_code(group_error)
                        .with_error_message(Some(s(denied_message(access, "join this group (READ on it)")))),
                ));
            }
            let denied: Vec<String> = r
                .subscribed_topic_names
                .iter()
                .flatten()
                .filter(|t| !access.topic(t, AclOperation::Describe))
                .map(|t| t.to_string())
                .collect();
            if !denied.is_empty() {
                let what = format!("subscribe to topics {denied:?} (DESCRIBE on each)");
                return refuse(ResponseKind::ConsumerGroupHeartbeat(
                    ConsumerGroupHeartbeatResponse::default()
                        .with_error_code(code(ResponseError::TopicAuthorizationFailed))
                        .with_error_message(Some(s(denied_message(access, &what)))),
                ));
            }
            Gate::Pass(RequestKind::ConsumerGroupHeartbeat(r), super::Patch::None)
        }
        RequestKind::ConsumerGroupDescribe(mut r) => {
            let (ok, no): (Vec<GroupId>, Vec<GroupId>) =
                r.group_ids.into_iter().partition(|g| access.group(g, AclOperation::Describe));
            r.group_ids = ok;
            let refused = no.into_iter().map(|g| g.to_string()).collect();
            pass(RequestKind::ConsumerGroupDescribe(r), Patch::ConsumerGroupDescribe(refused))
        }
        // READ on the group was checked by the guarded arms above.
        r @ (RequestKind::JoinGroup(_)
        | RequestKind::SyncGroup(_)
        | RequestKind::Heartbeat(_)
        | RequestKind::LeaveGroup(_)) => Gate::Pass(r, super::Patch::None),
        other => super::unrouted(other),
    }
}

pub fn after(access: &Access<'_>, patch: Patch, body: &mut ResponseKind, version: i16) {
    let topic_error = code(ResponseError::TopicAuthorizationFailed);
    let group_error = code(ResponseError::GroupAuthorizationFailed);
    match (patch, body) {
        (Patch::Coordinators(refused), ResponseKind::FindCoordinator(r)) => {
            r.coordinators.extend(refused.into_iter().map(|(key, e)| {
                Coordinator::default()
                    .with_key(s(key))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(code(e))
                    .with_error_message(Some(s(denied_message(access, "find this coordinator (DESCRIBE)"))))
            }));
        }
        (Patch::Topics(refused), ResponseKind::OffsetCommit(r)) => {
            r.topics.extend(refused.into_iter().map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(topic_error)
                    })
                    .collect();
                OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
            }));
        }
        (Patch::Topics(refused), ResponseKind::OffsetDelete(r)) => {
            r.topics.extend(refused.into_iter().map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        OffsetDeleteResponsePartition::default().with_partition_index(p).with_error_code(topic_error)
                    })
                    .collect();
                OffsetDeleteResponseTopic::default().with_name(name).with_partitions(partitions)
            }));
        }
        (Patch::OffsetFetch(refused), ResponseKind::OffsetFetch(r)) => match refused {
            None => r.topics.retain(|t| access.topic(&t.name, AclOperation::Describe)),
            Some(refused) => r.topics.extend(refused.into_iter().map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(-1)
                            .with_error_code(topic_error)
                    })
                    .collect();
                OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions)
            })),
        },
        (Patch::OffsetFetchGroups { refused, topics }, ResponseKind::OffsetFetch(r)) => {
            for g in &mut r.groups {
                // Always: a group named twice in one request (once with all
                // topics, once with a list) must not answer offsets of a
                // topic the principal may not describe.
                g.topics.retain(|t| access.topic(&t.name, AclOperation::Describe));
                match topics.get(g.group_id.as_str()) {
                    Some(None) => {}
                    Some(Some(no)) => g.topics.extend(no.iter().map(|(name, partitions)| {
                        let partitions = partitions
                            .iter()
                            .map(|p| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(-1)
                                    .with_error_code(topic_error)
                            })
                            .collect();
                        OffsetFetchResponseTopics::default().with_name(name.clone()).with_partitions(partitions)
                    })),
                    None => {}
                }
            }
            r.groups.extend(refused.into_iter().map(|g| {
                OffsetFetchResponseGroup::default().with_group_id(GroupId(s(g))).with_error_code(group_error)
            }));
        }
        (Patch::DescribeGroups { refused, operations }, ResponseKind::DescribeGroups(r)) => {
            if operations {
                for g in &mut r.groups {
                    g.authorized_operations = access.operations(true, ResourceType::Group, &g.group_id);
                }
            }
            r.groups.extend(refused.into_iter().map(|g| {
                DescribedGroup::default()
                    .with_group_id(GroupId(s(g)))
                    .with_error_code(group_error)
                    .with_error_message(
                        (version >= 6).then(|| s(denied_message(access, "describe this group (DESCRIBE on it)"))),
                    )
                    .with_authorized_operations(i32::MIN)
            }));
        }
        (Patch::ConsumerGroupDescribe(refused), ResponseKind::ConsumerGroupDescribe(r)) => {
            // As Kafka: a group naming a topic (subscribed, assigned or
            // target) the principal may not DESCRIBE is refused whole, so
            // topic names do not leak through another member's assignment.
            for g in r.groups.iter_mut().filter(|g| g.error_code == 0) {
                let hidden = g.members.iter().any(|m| {
                    let assigned = [&m.assignment, &m.target_assignment]
                        .into_iter()
                        .flat_map(|a| a.topic_partitions.iter().map(|t| &t.topic_name));
                    m.subscribed_topic_names.iter().chain(assigned).any(|t| !access.topic(t, AclOperation::Describe))
                });
                if hidden {
                    g.error_code = topic_error;
                    g.error_message =
                        Some(s("the group has described topics that the client is not authorized to describe"));
                    g.members.clear();
                }
            }
            r.groups.extend(refused.into_iter().map(|g| {
                ConsumerDescribedGroup::default()
                    .with_group_id(GroupId(s(g)))
                    .with_error_code(group_error)
                    .with_error_message(Some(s(denied_message(access, "describe this group (DESCRIBE on it)"))))
                    .with_authorized_operations(i32::MIN)
            }));
        }
        (Patch::ListGroups, ResponseKind::ListGroups(r)) => {
            r.groups.retain(|g| access.group(&g.group_id, AclOperation::Describe));
        }
        (Patch::DeleteGroups(refused), ResponseKind::DeleteGroups(r)) => {
            r.results.extend(
                refused
                    .into_iter()
                    .map(|g| DeletableGroupResult::default().with_group_id(GroupId(s(g))).with_error_code(group_error)),
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest};

    use super::*;
    use crate::auth::Principal;
    use crate::auth::acl::{AclBinding, AclPermission, PatternType};
    use crate::auth::authorizer::AuthorizerConfig;

    fn membership_requests(group: &str) -> Vec<RequestKind> {
        let id = GroupId(s(group));
        vec![
            RequestKind::JoinGroup(JoinGroupRequest::default().with_group_id(id.clone())),
            RequestKind::SyncGroup(SyncGroupRequest::default().with_group_id(id.clone())),
            RequestKind::Heartbeat(HeartbeatRequest::default().with_group_id(id.clone())),
            RequestKind::LeaveGroup(LeaveGroupRequest::default().with_group_id(id)),
        ]
    }

    #[test]
    fn membership_requests_pass_with_read_on_the_group_and_are_refused_without() {
        let config = AuthorizerConfig { enabled: true, super_users: vec![], allow_if_no_acl: false };
        let read_g = AclBinding {
            resource_type: ResourceType::Group,
            name: "g".into(),
            pattern: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        };
        let access = Access::new(&config, vec![read_g], Principal::user("alice"), "10.0.0.1");
        for request in membership_requests("g") {
            let what = format!("{request:?}");
            assert!(matches!(before(&access, request, 5), Gate::Pass(_, _)), "allowed: {what}");
        }
        for request in membership_requests("other") {
            let what = format!("{request:?}");
            assert!(matches!(before(&access, request, 5), Gate::Refuse(_)), "refused: {what}");
        }
    }

    #[test]
    fn consumer_group_heartbeat_needs_read_on_the_group_and_describe_on_each_topic() {
        let config = AuthorizerConfig { enabled: true, super_users: vec![], allow_if_no_acl: false };
        let acl = |resource_type, name: &str, operation| AclBinding {
            resource_type,
            name: name.into(),
            pattern: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation,
            permission: AclPermission::Allow,
        };
        let acls = vec![
            acl(ResourceType::Group, "g", AclOperation::Read),
            acl(ResourceType::Topic, "t", AclOperation::Describe),
        ];
        let access = Access::new(&config, acls, Principal::user("alice"), "10.0.0.1");
        let heartbeat = |group: &str, topics: &[&str]| {
            RequestKind::ConsumerGroupHeartbeat(
                kafka_protocol::messages::ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(s(*t))).collect())),
            )
        };
        let refused_code = |gate: Gate| match gate {
            Gate::Refuse(ResponseKind::ConsumerGroupHeartbeat(r)) => Some(r.error_code),
            _ => None,
        };
        assert!(matches!(before(&access, heartbeat("g", &["t"]), 1), Gate::Pass(_, _)));
        assert_eq!(
            refused_code(before(&access, heartbeat("other", &["t"]), 1)),
            Some(ResponseError::GroupAuthorizationFailed.code())
        );
        assert_eq!(
            refused_code(before(&access, heartbeat("g", &["t", "secret"]), 1)),
            Some(ResponseError::TopicAuthorizationFailed.code())
        );
    }

    #[test]
    fn consumer_group_describe_hides_a_group_naming_a_topic_the_principal_may_not_describe() {
        use kafka_protocol::messages::consumer_group_describe_response::{
            Assignment, DescribedGroup, Member, TopicPartitions,
        };
        let config = AuthorizerConfig { enabled: true, super_users: vec![], allow_if_no_acl: false };
        let acl = |resource_type, name: &str| AclBinding {
            resource_type,
            name: name.into(),
            pattern: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Describe,
            permission: AclPermission::Allow,
        };
        let acls = vec![acl(ResourceType::Group, "g"), acl(ResourceType::Topic, "t")];
        let access = Access::new(&config, acls, Principal::user("alice"), "10.0.0.1");
        let group = |assigned: &str| {
            let tp = TopicPartitions::default().with_topic_name(TopicName(s(assigned))).with_partitions(vec![0]);
            let member = Member::default()
                .with_subscribed_topic_names(vec![TopicName(s("t"))])
                .with_assignment(Assignment::default().with_topic_partitions(vec![tp]));
            DescribedGroup::default().with_group_id(GroupId(s("g"))).with_members(vec![member])
        };
        let mut body = ResponseKind::ConsumerGroupDescribe(
            kafka_protocol::messages::ConsumerGroupDescribeResponse::default()
                .with_groups(vec![group("t"), group("secret")]),
        );
        after(&access, Patch::ConsumerGroupDescribe(vec![]), &mut body, 0);
        let ResponseKind::ConsumerGroupDescribe(r) = body else { panic!("a ConsumerGroupDescribe answer") };
        assert_eq!((r.groups[0].error_code, r.groups[0].members.len()), (0, 1), "only topics it may describe");
        assert_eq!(r.groups[1].error_code, ResponseError::TopicAuthorizationFailed.code());
        assert!(r.groups[1].members.is_empty(), "no member, so no topic name, is shown");
    }
}
