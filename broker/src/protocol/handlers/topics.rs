//! CreateTopics, DeleteTopics and CreatePartitions.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, TopicName,
};

use super::configs::topic_config_entries;
use super::{blocking, str_bytes};
use crate::broker::{Broker, NewTopic};
use crate::protocol::errors::KafkaError;

pub async fn create_topics(broker: &Arc<Broker>, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let b = broker.clone();
    let results = blocking(move || {
        let mut seen = std::collections::HashSet::new();
        request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.to_string();
                let base = CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
                if !seen.insert(name.clone()) {
                    return base.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(
                        str_bytes(format!("topic `{name}` appears more than once in the request")),
                    ));
                }
                let mut configs = Vec::new();
                for c in &t.configs {
                    match &c.value {
                        Some(v) => configs.push((c.name.to_string(), v.to_string())),
                        None => {
                            return base.with_error_code(ResponseError::InvalidConfig.code()).with_error_message(Some(
                                str_bytes(format!("config `{}` has a null value", c.name.as_str())),
                            ));
                        }
                    }
                }
                let req = NewTopic {
                    name: name.clone(),
                    num_partitions: t.num_partitions,
                    replication_factor: t.replication_factor,
                    assignment: t.assignments.iter().map(|a| a.broker_ids.iter().map(|id| id.0).collect()).collect(),
                    configs,
                };
                match b.create_topic(&req, request.validate_only) {
                    Ok(topic) => {
                        let configs = (version >= 5).then(|| {
                            topic_config_entries(&b, &topic.configs, None)
                                .into_iter()
                                .map(|e| {
                                    CreatableTopicConfigs::default()
                                        .with_name(str_bytes(e.name))
                                        .with_value(Some(str_bytes(e.value)))
                                        .with_read_only(false)
                                        .with_config_source(e.source)
                                        .with_is_sensitive(false)
                                })
                                .collect()
                        });
                        base.with_topic_id(topic.id)
                            .with_num_partitions(topic.partitions.len() as i32)
                            .with_replication_factor(topic.replication_factor())
                            .with_configs(configs)
                    }
                    Err(e) => {
                        let k = KafkaError::from(&e);
                        tracing::info!(topic = %name, error = %e, "refused CreateTopics");
                        base.with_error_code(k.code()).with_error_message(Some(str_bytes(k.message)))
                    }
                }
            })
            .collect()
    })
    .await;
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(broker: &Arc<Broker>, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let b = broker.clone();
    let responses = blocking(move || {
        // v6 names topics by name or id in `topics`; earlier versions in `topic_names`.
        let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
            request.topics.into_iter().map(|t| (t.name.map(|n| n.to_string()), t.topic_id)).collect()
        } else {
            request.topic_names.into_iter().map(|n| (Some(n.to_string()), uuid::Uuid::nil())).collect()
        };
        targets
            .into_iter()
            .map(|(name, id)| {
                let name = name.or_else(|| b.metadata.read().topic_by_id(id).map(|t| t.name.clone()));
                let Some(name) = name else {
                    return DeletableTopicResult::default()
                        .with_topic_id(id)
                        .with_error_code(ResponseError::UnknownTopicId.code());
                };
                let base = DeletableTopicResult::default().with_name(Some(TopicName(str_bytes(name.clone()))));
                match b.delete_topic(&name) {
                    Ok(t) => base.with_topic_id(t.id),
                    Err(e) => {
                        let k = KafkaError::from(&e);
                        base.with_topic_id(id).with_error_code(k.code()).with_error_message(Some(str_bytes(k.message)))
                    }
                }
            })
            .collect()
    })
    .await;
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let b = broker.clone();
    let results = blocking(move || {
        let live = b.live_brokers();
        request
            .topics
            .into_iter()
            .map(|t| {
                let base = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                let name = t.name.to_string();
                if let Some(assignments) = &t.assignments
                    && let Some(bad) =
                        assignments.iter().flat_map(|a| a.broker_ids.iter()).find(|id| !live.contains(&id.0))
                {
                    return base.with_error_code(ResponseError::InvalidReplicaAssignment.code()).with_error_message(
                        Some(str_bytes(format!("broker {} is not a live broker; live brokers: {live:?}", bad.0))),
                    );
                }
                match b.create_partitions(&name, t.count, request.validate_only) {
                    Ok(()) => base,
                    Err(e) => {
                        let k = KafkaError::from(&e);
                        base.with_error_code(k.code()).with_error_message(Some(str_bytes(k.message)))
                    }
                }
            })
            .collect()
    })
    .await;
    CreatePartitionsResponse::default().with_results(results)
}
