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
use super::str_bytes;
use crate::admin::{self, Change, NewTopic};
use crate::broker::Broker;
use crate::log_lines::LineLimit;
use crate::protocol::errors::KafkaError;

/// One line per topic a client names would let it fill the log.
static REFUSED_LOG: LineLimit = LineLimit::new(10);

pub async fn create_topics(broker: &Arc<Broker>, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let b = broker;
    let mut seen = std::collections::HashSet::new();
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.to_string();
        let base = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if !seen.insert(name.clone()) {
            results.push(
                base.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(str_bytes(
                    format!("topic `{name}` appears more than once in the request"),
                ))),
            );
            continue;
        }
        let mut configs = Vec::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => configs.push((c.name.to_string(), v.to_string())),
                None => null_config = Some(c.name.to_string()),
            }
        }
        if let Some(config) = null_config {
            results.push(
                base.with_error_code(ResponseError::InvalidConfig.code())
                    .with_error_message(Some(str_bytes(format!("config `{config}` has a null value")))),
            );
            continue;
        }
        let req = NewTopic {
            name: name.clone(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignment: t.assignments.iter().map(|a| a.broker_ids.iter().map(|id| id.0).collect()).collect(),
            configs,
        };
        let result = match admin::create_topic(b, req, request.validate_only).await {
            Ok(topic) => {
                let configs = (version >= 5).then(|| {
                    topic_config_entries(b, &topic.configs, None)
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
                if let Some(left_out) = REFUSED_LOG.admit() {
                    tracing::info!(topic = %name, error = %e, left_out_since_last_line = left_out, "refused CreateTopics");
                }
                base.with_error_code(k.code()).with_error_message(Some(str_bytes(k.message)))
            }
        };
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(broker: &Arc<Broker>, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    // v6 names topics by name or id in `topics`; earlier versions in `topic_names`.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request.topics.into_iter().map(|t| (t.name.map(|n| n.to_string()), t.topic_id)).collect()
    } else {
        request.topic_names.into_iter().map(|n| (Some(n.to_string()), uuid::Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let name = name.or_else(|| broker.metadata.read().topic_by_id(id).map(|t| t.name.clone()));
        let Some(name) = name else {
            responses.push(
                DeletableTopicResult::default().with_topic_id(id).with_error_code(ResponseError::UnknownTopicId.code()),
            );
            continue;
        };
        let base = DeletableTopicResult::default().with_name(Some(TopicName(str_bytes(name.clone()))));
        responses.push(match admin::delete_topic(broker, &name).await {
            Ok(t) => base.with_topic_id(t.id),
            Err(e) => {
                let k = KafkaError::from(&e);
                base.with_topic_id(id).with_error_code(k.code()).with_error_message(Some(str_bytes(k.message)))
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let base = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let name = t.name.to_string();
        let assignment =
            t.assignments.as_ref().map(|a| a.iter().map(|a| a.broker_ids.iter().map(|id| id.0).collect()).collect());
        let change = Change::CreatePartitions { name, total: t.count, assignment };
        results.push(match admin::apply(broker, change, request.validate_only).await {
            Ok(_) => base,
            Err(e) => {
                let k = KafkaError::from(&e);
                base.with_error_code(k.code()).with_error_message(Some(str_bytes(k.message)))
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
