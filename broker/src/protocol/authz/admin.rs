//! CreateTopics (CREATE on the cluster or the topic), DeleteTopics (DELETE),
//! CreatePartitions (ALTER), DescribeConfigs (DESCRIBE_CONFIGS) and
//! IncrementalAlterConfigs (ALTER_CONFIGS) on the topic, on the group for
//! group resources, or on the cluster for broker resources; InitProducerId (IDEMPOTENT_WRITE on the cluster or
//! WRITE on some topic; WRITE on the transactional id if any);
//! DescribeCluster, DescribeLogDirs and DescribeQuorum (DESCRIBE on the cluster); DeleteRecords (DELETE on the
//! topic); AlterConfigs (ALTER_CONFIGS, as IncrementalAlterConfigs);
//! AlterUserScramCredentials (ALTER on the cluster) and
//! DescribeUserScramCredentials (DESCRIBE on the cluster); AlterClientQuotas
//! (ALTER_CONFIGS on the cluster) and DescribeClientQuotas (DESCRIBE_CONFIGS
//! on the cluster).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData as QuotaEntityData, EntryData as QuotaEntry};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as LegacyAlterConfigsResourceResponse;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterClientQuotasResponse, AlterUserScramCredentialsResponse, DescribeClientQuotasResponse,
    DescribeClusterResponse, DescribeLogDirsResponse, DescribeQuorumResponse, DescribeUserScramCredentialsResponse,
    InitProducerIdResponse, ProducerId, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{Gate, code, denied_message};
use crate::auth::access::Access;
use crate::auth::acl::{AclOperation, CLUSTER_NAME, ResourceType};
use crate::broker::Broker;

/// DescribeConfigs / IncrementalAlterConfigs resource types (Kafka's `ConfigResource.Type`).
const CONFIG_TOPIC: i8 = 2;
const CONFIG_BROKER: i8 = 4;
const CONFIG_BROKER_LOGGER: i8 = 8;
const CONFIG_GROUP: i8 = 32;

/// What [`after`] adds.
#[derive(Debug)]
pub enum Patch {
    /// CreateTopics / CreatePartitions / DeleteTopics: refused topics (name, id, message).
    Topics(Vec<(Option<String>, Uuid, String)>),
    /// CreateTopics: refused topics (as `Topics`), and created ones whose
    /// configs the principal may not see (no DESCRIBE_CONFIGS).
    CreateTopics { refused: Vec<(Option<String>, Uuid, String)>, hide_configs: Vec<String> },
    /// DescribeConfigs / IncrementalAlterConfigs: refused resources (type, name, error, message).
    Configs(Vec<(i8, String, ResponseError, String)>),
    /// DescribeCluster: the cluster's authorized operations.
    ClusterOperations(i32),
    /// DeleteRecords: refused topics and their partitions.
    DeleteRecords(Vec<(TopicName, Vec<i32>)>),
}

fn pass(request: RequestKind, patch: Patch) -> Gate {
    Gate::Pass(request, super::Patch::Admin(patch))
}

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

/// Whether a config resource may get `operation`, and the error if not.
fn config_resource(
    access: &Access<'_>,
    resource_type: i8,
    name: &str,
    operation: AclOperation,
) -> Option<ResponseError> {
    match resource_type {
        CONFIG_TOPIC => (!access.topic(name, operation)).then_some(ResponseError::TopicAuthorizationFailed),
        CONFIG_BROKER | CONFIG_BROKER_LOGGER => {
            (!access.cluster(operation)).then_some(ResponseError::ClusterAuthorizationFailed)
        }
        CONFIG_GROUP => (!access.group(name, operation)).then_some(ResponseError::GroupAuthorizationFailed),
        // Other types are refused by the handlers (INVALID_REQUEST).
        _ => None,
    }
}

/// Keeps the config resources the principal may give `operation`; the
/// others as (type, name, error, message) for [`after`].
fn narrow_configs<T>(
    access: &Access<'_>,
    resources: &mut Vec<T>,
    resource: impl Fn(&T) -> (i8, &StrBytes),
    operation: AclOperation,
) -> Vec<(i8, String, ResponseError, String)> {
    let what = match operation {
        AclOperation::DescribeConfigs => "describe these configs (DESCRIBE_CONFIGS)",
        _ => "alter these configs (ALTER_CONFIGS)",
    };
    let mut refused = Vec::new();
    resources.retain(|c| {
        let (resource_type, name) = resource(c);
        match config_resource(access, resource_type, name, operation) {
            Some(e) => {
                refused.push((resource_type, name.to_string(), e, denied_message(access, what)));
                false
            }
            None => true,
        }
    });
    refused
}

pub fn before(broker: &Broker, access: &Access<'_>, request: RequestKind, version: i16) -> Gate {
    match request {
        RequestKind::CreateTopics(mut r) => {
            let cluster = access.cluster(AclOperation::Create);
            let (ok, no): (Vec<_>, Vec<_>) =
                r.topics.into_iter().partition(|t| cluster || access.topic(&t.name, AclOperation::Create));
            let hide_configs = ok
                .iter()
                .filter(|t| !access.topic(&t.name, AclOperation::DescribeConfigs))
                .map(|t| t.name.to_string())
                .collect();
            r.topics = ok;
            let msg = denied_message(access, "create this topic (CREATE on it or on the cluster)");
            let refused = no.into_iter().map(|t| (Some(t.name.to_string()), Uuid::nil(), msg.clone())).collect();
            pass(RequestKind::CreateTopics(r), Patch::CreateTopics { refused, hide_configs })
        }
        RequestKind::DeleteTopics(mut r) => {
            let msg = denied_message(access, "delete this topic (DELETE on it)");
            let mut refused = Vec::new();
            if version >= 6 {
                let view = broker.metadata.read();
                r.topics.retain(|t| {
                    let name = t
                        .name
                        .as_ref()
                        .map(|n| n.to_string())
                        .or_else(|| view.topic_by_id(t.topic_id).map(|m| m.name.clone()));
                    match name {
                        Some(n) if !access.topic(&n, AclOperation::Delete) => {
                            refused.push((t.name.as_ref().map(|n| n.to_string()), t.topic_id, msg.clone()));
                            false
                        }
                        _ => true,
                    }
                });
            } else {
                r.topic_names.retain(|n| {
                    let ok = access.topic(n, AclOperation::Delete);
                    if !ok {
                        refused.push((Some(n.to_string()), Uuid::nil(), msg.clone()));
                    }
                    ok
                });
            }
            pass(RequestKind::DeleteTopics(r), Patch::Topics(refused))
        }
        RequestKind::CreatePartitions(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) =
                r.topics.into_iter().partition(|t| access.topic(&t.name, AclOperation::Alter));
            r.topics = ok;
            let msg = denied_message(access, "add partitions to this topic (ALTER on it)");
            let refused = no.into_iter().map(|t| (Some(t.name.to_string()), Uuid::nil(), msg.clone())).collect();
            pass(RequestKind::CreatePartitions(r), Patch::Topics(refused))
        }
        RequestKind::DescribeConfigs(mut r) => {
            let refused = narrow_configs(
                access,
                &mut r.resources,
                |c| (c.resource_type, &c.resource_name),
                AclOperation::DescribeConfigs,
            );
            pass(RequestKind::DescribeConfigs(r), Patch::Configs(refused))
        }
        RequestKind::IncrementalAlterConfigs(mut r) => {
            let refused = narrow_configs(
                access,
                &mut r.resources,
                |c| (c.resource_type, &c.resource_name),
                AclOperation::AlterConfigs,
            );
            pass(RequestKind::IncrementalAlterConfigs(r), Patch::Configs(refused))
        }
        RequestKind::InitProducerId(r) => {
            let error = match &r.transactional_id {
                Some(id) => (!access.allows(ResourceType::TransactionalId, id, AclOperation::Write))
                    .then_some(ResponseError::TransactionalIdAuthorizationFailed),
                None => (!access.cluster(AclOperation::IdempotentWrite)
                    && !access.any(ResourceType::Topic, AclOperation::Write))
                .then_some(ResponseError::ClusterAuthorizationFailed),
            };
            match error {
                Some(e) => Gate::Refuse(ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(code(e))
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                )),
                None => Gate::Pass(RequestKind::InitProducerId(r), super::Patch::None),
            }
        }
        RequestKind::DescribeLogDirs(r) => {
            if !access.cluster(AclOperation::Describe) {
                // Kafka answers an empty list (v3+ with the error code).
                return Gate::Refuse(ResponseKind::DescribeLogDirs(
                    DescribeLogDirsResponse::default().with_error_code(code(ResponseError::ClusterAuthorizationFailed)),
                ));
            }
            Gate::Pass(RequestKind::DescribeLogDirs(r), super::Patch::None)
        }
        RequestKind::DescribeQuorum(r) => {
            if !access.cluster(AclOperation::Describe) {
                // Kafka answers the top-level error alone.
                return Gate::Refuse(ResponseKind::DescribeQuorum(
                    DescribeQuorumResponse::default().with_error_code(code(ResponseError::ClusterAuthorizationFailed)),
                ));
            }
            Gate::Pass(RequestKind::DescribeQuorum(r), super::Patch::None)
        }
        RequestKind::DescribeCluster(r) => {
            if !access.cluster(AclOperation::Describe) {
                return Gate::Refuse(ResponseKind::DescribeCluster(
                    DescribeClusterResponse::default()
                        .with_error_code(code(ResponseError::ClusterAuthorizationFailed))
                        .with_error_message(Some(s(denied_message(access, "describe the cluster (DESCRIBE on it)"))))
                        .with_cluster_authorized_operations(i32::MIN),
                ));
            }
            let ops = access.operations(r.include_cluster_authorized_operations, ResourceType::Cluster, CLUSTER_NAME);
            pass(RequestKind::DescribeCluster(r), Patch::ClusterOperations(ops))
        }
        RequestKind::AlterConfigs(mut r) => {
            let refused = narrow_configs(
                access,
                &mut r.resources,
                |c| (c.resource_type, &c.resource_name),
                AclOperation::AlterConfigs,
            );
            pass(RequestKind::AlterConfigs(r), Patch::Configs(refused))
        }
        RequestKind::DeleteRecords(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) =
                r.topics.into_iter().partition(|t| access.topic(&t.name, AclOperation::Delete));
            r.topics = ok;
            let refused =
                no.into_iter().map(|t| (t.name, t.partitions.iter().map(|p| p.partition_index).collect())).collect();
            pass(RequestKind::DeleteRecords(r), Patch::DeleteRecords(refused))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            if access.cluster(AclOperation::Alter) {
                return Gate::Pass(RequestKind::AlterUserScramCredentials(r), super::Patch::None);
            }
            let msg = denied_message(access, "alter SCRAM credentials (ALTER on the cluster)");
            let users: std::collections::BTreeSet<String> = r
                .upsertions
                .iter()
                .map(|u| u.name.to_string())
                .chain(r.deletions.iter().map(|d| d.name.to_string()))
                .collect();
            let results = users
                .into_iter()
                .map(|user| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(s(user))
                        .with_error_code(code(ResponseError::ClusterAuthorizationFailed))
                        .with_error_message(Some(s(msg.clone())))
                })
                .collect();
            Gate::Refuse(ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(results),
            ))
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            if access.cluster(AclOperation::Describe) {
                return Gate::Pass(RequestKind::DescribeUserScramCredentials(r), super::Patch::None);
            }
            Gate::Refuse(ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(code(ResponseError::ClusterAuthorizationFailed))
                    .with_error_message(Some(s(denied_message(
                        access,
                        "describe SCRAM credentials (DESCRIBE on the cluster)",
                    )))),
            ))
        }
        RequestKind::AlterClientQuotas(r) => {
            if access.cluster(AclOperation::AlterConfigs) {
                return Gate::Pass(RequestKind::AlterClientQuotas(r), super::Patch::None);
            }
            let msg = denied_message(access, "alter client quotas (ALTER_CONFIGS on the cluster)");
            let entries = r
                .entries
                .into_iter()
                .map(|e| {
                    let entity = e
                        .entity
                        .into_iter()
                        .map(|p| {
                            QuotaEntityData::default().with_entity_type(p.entity_type).with_entity_name(p.entity_name)
                        })
                        .collect();
                    QuotaEntry::default()
                        .with_error_code(code(ResponseError::ClusterAuthorizationFailed))
                        .with_error_message(Some(s(msg.clone())))
                        .with_entity(entity)
                })
                .collect();
            Gate::Refuse(ResponseKind::AlterClientQuotas(AlterClientQuotasResponse::default().with_entries(entries)))
        }
        RequestKind::DescribeClientQuotas(r) => {
            if access.cluster(AclOperation::DescribeConfigs) {
                return Gate::Pass(RequestKind::DescribeClientQuotas(r), super::Patch::None);
            }
            Gate::Refuse(ResponseKind::DescribeClientQuotas(
                DescribeClientQuotasResponse::default()
                    .with_error_code(code(ResponseError::ClusterAuthorizationFailed))
                    .with_error_message(Some(s(denied_message(
                        access,
                        "describe client quotas (DESCRIBE_CONFIGS on the cluster)",
                    ))))
                    .with_entries(None),
            ))
        }
        other => super::unrouted(other),
    }
}

pub fn after(patch: Patch, body: &mut ResponseKind, version: i16) {
    let topic_error = code(ResponseError::TopicAuthorizationFailed);
    match (patch, body) {
        (Patch::CreateTopics { refused, hide_configs }, ResponseKind::CreateTopics(r)) => {
            // As Kafka: a topic created without DESCRIBE_CONFIGS on it is answered without its configs.
            // (Configs are answered from v5.)
            let hidden = |t: &CreatableTopicResult| hide_configs.iter().any(|h| h.as_str() == t.name.as_str());
            for t in r.topics.iter_mut().filter(|t| version >= 5 && hidden(t)) {
                t.configs = None;
                t.topic_config_error_code = topic_error;
            }
            r.topics.extend(refused.into_iter().map(|(name, _, msg)| {
                CreatableTopicResult::default()
                    .with_name(TopicName(s(name.unwrap_or_default())))
                    .with_error_code(topic_error)
                    .with_error_message(Some(s(msg)))
                    .with_topic_config_error_code(if version >= 5 { topic_error } else { 0 })
            }));
        }
        (Patch::Topics(refused), ResponseKind::DeleteTopics(r)) => {
            r.responses.extend(refused.into_iter().map(|(name, id, msg)| {
                DeletableTopicResult::default()
                    .with_name(name.map(|n| TopicName(s(n))))
                    .with_topic_id(id)
                    .with_error_code(topic_error)
                    .with_error_message((version >= 5).then(|| s(msg)))
            }));
        }
        (Patch::Topics(refused), ResponseKind::CreatePartitions(r)) => {
            r.results.extend(refused.into_iter().map(|(name, _, msg)| {
                CreatePartitionsTopicResult::default()
                    .with_name(TopicName(s(name.unwrap_or_default())))
                    .with_error_code(topic_error)
                    .with_error_message(Some(s(msg)))
            }));
        }
        (Patch::Configs(refused), ResponseKind::DescribeConfigs(r)) => {
            r.results.extend(refused.into_iter().map(|(rt, name, e, msg)| {
                DescribeConfigsResult::default()
                    .with_resource_type(rt)
                    .with_resource_name(s(name))
                    .with_error_code(code(e))
                    .with_error_message(Some(s(msg)))
            }));
        }
        (Patch::Configs(refused), ResponseKind::IncrementalAlterConfigs(r)) => {
            r.responses.extend(refused.into_iter().map(|(rt, name, e, msg)| {
                AlterConfigsResourceResponse::default()
                    .with_resource_type(rt)
                    .with_resource_name(s(name))
                    .with_error_code(code(e))
                    .with_error_message(Some(s(msg)))
            }));
        }
        (Patch::Configs(refused), ResponseKind::AlterConfigs(r)) => {
            r.responses.extend(refused.into_iter().map(|(rt, name, e, msg)| {
                LegacyAlterConfigsResourceResponse::default()
                    .with_resource_type(rt)
                    .with_resource_name(s(name))
                    .with_error_code(code(e))
                    .with_error_message(Some(s(msg)))
            }));
        }
        (Patch::DeleteRecords(refused), ResponseKind::DeleteRecords(r)) => {
            r.topics.extend(refused.into_iter().map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        DeleteRecordsPartitionResult::default()
                            .with_partition_index(p)
                            .with_low_watermark(-1)
                            .with_error_code(topic_error)
                    })
                    .collect();
                DeleteRecordsTopicResult::default().with_name(name).with_partitions(partitions)
            }));
        }
        (Patch::ClusterOperations(ops), ResponseKind::DescribeCluster(r)) => r.cluster_authorized_operations = ops,
        _ => {}
    }
}
