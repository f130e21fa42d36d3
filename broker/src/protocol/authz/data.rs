//! Produce (WRITE on the topic; WRITE on the transactional id if any),
//! Fetch (READ on the topic; CLUSTER_ACTION on the cluster for a replica),
//! ListOffsets (DESCRIBE on the topic), OffsetForLeaderEpoch (DESCRIBE on
//! the topic or CLUSTER_ACTION on the cluster) and Metadata (only topics the
//! principal may DESCRIBE; auto-creation needs CREATE on the cluster or the
//! topic).

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{Gate, code};
use crate::auth::access::Access;
use crate::auth::acl::{AclOperation, ResourceType};
use crate::broker::Broker;

/// Topics (with their partitions) left out of a request, and the error they get.
#[derive(Debug)]
pub struct Denied {
    topics: Vec<(TopicName, Vec<i32>)>,
    error: ResponseError,
}

/// What [`after`] adds or filters.
#[derive(Debug)]
pub enum Patch {
    /// Produce: denied topics.
    Produce(Denied),
    /// Fetch: denied topics.
    Fetch(Denied),
    /// ListOffsets: denied topics.
    ListOffsets(Denied),
    /// OffsetForLeaderEpoch: denied topics.
    OffsetForLeaderEpoch(Denied),
    /// Metadata: which topics to answer and which are denied.
    Metadata {
        /// `None`: all topics were asked for; else the names and ids passed on.
        passed: Option<(HashSet<String>, HashSet<Uuid>)>,
        /// Named topics refused.
        denied: Vec<String>,
        /// Fill in topic authorized operations.
        topic_ops: bool,
        /// Fill in cluster authorized operations.
        cluster_ops: bool,
    },
}

fn pass(request: RequestKind, patch: Patch) -> Gate {
    Gate::Pass(request, super::Patch::Data(patch))
}

pub fn before(broker: &Broker, access: &Access<'_>, request: RequestKind, version: i16) -> Gate {
    match request {
        RequestKind::Produce(mut r) => {
            let txn_allowed = r
                .transactional_id
                .as_ref()
                .is_none_or(|id| access.allows(ResourceType::TransactionalId, id, AclOperation::Write));
            let (ok, no): (Vec<_>, Vec<_>) =
                r.topic_data.into_iter().partition(|t| txn_allowed && access.topic(&t.name, AclOperation::Write));
            r.topic_data = ok;
            let error = if txn_allowed {
                ResponseError::TopicAuthorizationFailed
            } else {
                ResponseError::TransactionalIdAuthorizationFailed
            };
            let topics = no.into_iter().map(|t| (t.name, t.partition_data.iter().map(|p| p.index).collect())).collect();
            pass(RequestKind::Produce(r), Patch::Produce(Denied { topics, error }))
        }
        RequestKind::Fetch(mut r) => {
            let replica = r.replica_id.0 >= 0 || r.replica_state.replica_id.0 >= 0;
            let cluster_ok = !replica || access.cluster(AclOperation::ClusterAction);
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| cluster_ok && (replica || access.topic(&t.topic, AclOperation::Read)));
            r.topics = ok;
            let topics =
                no.into_iter().map(|t| (t.topic, t.partitions.iter().map(|p| p.partition).collect())).collect();
            pass(RequestKind::Fetch(r), Patch::Fetch(Denied { topics, error: ResponseError::TopicAuthorizationFailed }))
        }
        RequestKind::ListOffsets(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) =
                r.topics.into_iter().partition(|t| access.topic(&t.name, AclOperation::Describe));
            r.topics = ok;
            let topics =
                no.into_iter().map(|t| (t.name, t.partitions.iter().map(|p| p.partition_index).collect())).collect();
            let denied = Denied { topics, error: ResponseError::TopicAuthorizationFailed };
            pass(RequestKind::ListOffsets(r), Patch::ListOffsets(denied))
        }
        RequestKind::OffsetForLeaderEpoch(mut r) => {
            // As Kafka: CLUSTER_ACTION on the cluster, or DESCRIBE on the topic.
            let cluster_action = access.cluster(AclOperation::ClusterAction);
            let (ok, no): (Vec<_>, Vec<_>) =
                r.topics.into_iter().partition(|t| cluster_action || access.topic(&t.topic, AclOperation::Describe));
            r.topics = ok;
            let topics =
                no.into_iter().map(|t| (t.topic, t.partitions.iter().map(|p| p.partition).collect())).collect();
            let denied = Denied { topics, error: ResponseError::TopicAuthorizationFailed };
            pass(RequestKind::OffsetForLeaderEpoch(r), Patch::OffsetForLeaderEpoch(denied))
        }
        RequestKind::Metadata(mut r) => {
            let topic_ops = version >= 8 && r.include_topic_authorized_operations;
            let cluster_ops = (8..=10).contains(&version) && r.include_cluster_authorized_operations;
            let all = match &r.topics {
                None => true,
                Some(list) => list.is_empty() && version == 0,
            };
            if all {
                return pass(
                    RequestKind::Metadata(r),
                    Patch::Metadata { passed: None, denied: vec![], topic_ops, cluster_ops },
                );
            }
            let auto_create = (version < 4 || r.allow_auto_topic_creation)
                && broker.config.settings.bool("auto.create.topics.enable");
            let may_create_any = auto_create && access.cluster(AclOperation::Create);
            let mut names = HashSet::new();
            let mut ids = HashSet::new();
            let mut denied = Vec::new();
            let list = r.topics.take().unwrap_or_default();
            let mut kept = Vec::with_capacity(list.len());
            {
                let view = broker.metadata.read();
                for t in list {
                    // A lookup by id may carry the name "" (as the Java client sends it).
                    let by_id = t.name.as_ref().is_none_or(|n| n.is_empty()) && !t.topic_id.is_nil();
                    let Some(name) = t.name.as_ref().map(|n| n.to_string()).filter(|_| !by_id) else {
                        ids.insert(t.topic_id);
                        kept.push(t);
                        continue;
                    };
                    let would_create = auto_create && view.topic(&name).is_none();
                    let allowed = access.topic(&name, AclOperation::Describe)
                        && (!would_create || may_create_any || access.topic(&name, AclOperation::Create));
                    if allowed {
                        names.insert(name);
                        kept.push(t);
                    } else {
                        denied.push(name);
                    }
                }
            }
            r.topics = Some(kept);
            pass(
                RequestKind::Metadata(r),
                Patch::Metadata { passed: Some((names, ids)), denied, topic_ops, cluster_ops },
            )
        }
        other => super::unrouted(other),
    }
}

pub fn after(
    access: &Access<'_>,
    patch: Patch,
    body: &mut ResponseKind,
    file_records: &mut Vec<Option<crate::log::FileRecords>>,
) {
    match (patch, body) {
        (Patch::Produce(d), ResponseKind::Produce(r)) => {
            r.responses.extend(d.topics.into_iter().map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|index| {
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_error_code(code(d.error))
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                    })
                    .collect();
                TopicProduceResponse::default().with_name(name).with_partition_responses(partitions)
            }));
        }
        (Patch::Fetch(d), ResponseKind::Fetch(r)) => {
            let keep_files_aligned = !file_records.is_empty();
            for (name, partitions) in d.topics {
                let partitions: Vec<PartitionData> = partitions
                    .into_iter()
                    .map(|index| {
                        PartitionData::default()
                            .with_partition_index(index)
                            .with_error_code(code(d.error))
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1)
                    })
                    .collect();
                if keep_files_aligned {
                    file_records.extend(partitions.iter().map(|_| None));
                }
                r.responses.push(FetchableTopicResponse::default().with_topic(name).with_partitions(partitions));
            }
        }
        (Patch::ListOffsets(d), ResponseKind::ListOffsets(r)) => {
            r.topics.extend(d.topics.into_iter().map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|index| {
                        ListOffsetsPartitionResponse::default()
                            .with_partition_index(index)
                            .with_error_code(code(d.error))
                            .with_timestamp(-1)
                            .with_offset(-1)
                    })
                    .collect();
                ListOffsetsTopicResponse::default().with_name(name).with_partitions(partitions)
            }));
        }
        (Patch::OffsetForLeaderEpoch(d), ResponseKind::OffsetForLeaderEpoch(r)) => {
            r.topics.extend(d.topics.into_iter().map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|index| {
                        EpochEndOffset::default()
                            .with_partition(index)
                            .with_error_code(code(d.error))
                            .with_leader_epoch(-1)
                            .with_end_offset(-1)
                    })
                    .collect();
                OffsetForLeaderTopicResult::default().with_topic(topic).with_partitions(partitions)
            }));
        }
        (Patch::Metadata { passed, denied, topic_ops, cluster_ops }, ResponseKind::Metadata(r)) => {
            let all = passed.is_none();
            let topics = std::mem::take(&mut r.topics);
            for mut t in topics {
                let name = t.name.as_ref().map(|n| n.to_string());
                if let Some((names, ids)) = &passed {
                    let asked = name.as_ref().is_some_and(|n| names.contains(n)) || ids.contains(&t.topic_id);
                    if !asked {
                        continue; // v0 with every named topic refused answers all topics; drop them
                    }
                }
                match name {
                    Some(n) if !access.topic(&n, AclOperation::Describe) => {
                        if !all {
                            // Asked for by id: answer with the id alone, as
                            // Kafka does, so the name stays hidden.
                            let by_id = !t.topic_id.is_nil()
                                && passed.as_ref().is_some_and(|(_, ids)| ids.contains(&t.topic_id));
                            r.topics.push(if by_id { refused_id(t.topic_id) } else { refused_topic(&n, Uuid::nil()) });
                        }
                    }
                    Some(n) => {
                        if topic_ops {
                            t.topic_authorized_operations = access.operations(true, ResourceType::Topic, &n);
                        }
                        r.topics.push(t);
                    }
                    None => r.topics.push(t),
                }
            }
            r.topics.extend(denied.iter().map(|n| refused_topic(n, Uuid::nil())));
            if cluster_ops {
                // As Kafka: none at all without DESCRIBE on the cluster.
                r.cluster_authorized_operations = if access.cluster(AclOperation::Describe) {
                    access.operations(true, ResourceType::Cluster, crate::auth::acl::CLUSTER_NAME)
                } else {
                    0
                };
            }
        }
        _ => {}
    }
}

fn refused_id(id: Uuid) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(None)
        .with_topic_id(id)
        .with_error_code(code(ResponseError::TopicAuthorizationFailed))
        .with_topic_authorized_operations(i32::MIN)
}

fn refused_topic(name: &str, id: Uuid) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_id(id)
        .with_error_code(code(ResponseError::TopicAuthorizationFailed))
        .with_topic_authorized_operations(i32::MIN)
}
