//! CreateTopics, DeleteTopics and CreatePartitions.
//!
//! Each topic's partitions created or deleted count against the client's
//! `controller_mutation_rate` (KIP-599): from CreateTopics v6, DeleteTopics
//! v5 and CreatePartitions v3 a topic asked for while the client's rate is
//! already above its quota is refused with THROTTLING_QUOTA_EXCEEDED (one
//! within it may overshoot it); older versions are never refused, only
//! throttled (see `protocol::throttle`). validate_only counts nothing.

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
use crate::protocol::codec::RequestContext;
use crate::protocol::errors::KafkaError;
use crate::quota::QuotaType;

/// The client's controller mutation quota, as the topic handlers use it.
struct Mutations<'a> {
    broker: &'a Broker,
    user: &'a str,
    client_id: &'a str,
    /// Refuse mutations while over the quota (the versions that know THROTTLING_QUOTA_EXCEEDED).
    strict: bool,
    /// validate_only: nothing is counted or refused.
    counted: bool,
}

impl<'a> Mutations<'a> {
    fn new(broker: &'a Broker, ctx: &'a RequestContext, strict: bool, validate_only: bool) -> Self {
        let client_id = ctx.client_id.as_deref().unwrap_or("");
        Mutations { broker, user: &ctx.principal.name, client_id, strict, counted: !validate_only }
    }

    /// THROTTLING_QUOTA_EXCEEDED when the next mutation must be refused.
    fn refusal(&self) -> Option<KafkaError> {
        (self.counted
            && self.strict
            && self.broker.quotas.exceeded(QuotaType::ControllerMutation, self.user, self.client_id))
        .then(|| {
            KafkaError::new(
                ResponseError::ThrottlingQuotaExceeded,
                "The throttling quota has been exceeded (controller_mutation_rate); retry after throttle_time_ms",
            )
        })
    }

    /// Counts `partitions` created or deleted.
    fn record(&self, partitions: usize) {
        if self.counted && partitions > 0 {
            self.broker.quotas.record(QuotaType::ControllerMutation, self.user, self.client_id, partitions as f64);
        }
    }
}

/// One line per topic a client names would let it fill the log.
static REFUSED_LOG: LineLimit = LineLimit::new(10);

pub async fn create_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let b = broker;
    let mutations = Mutations::new(broker, ctx, version >= 6, request.validate_only);
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
        if let Some(k) = mutations.refusal() {
            results.push(base.with_error_code(k.code()).with_error_message(Some(str_bytes(k.message))));
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
                mutations.record(topic.partitions.len());
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

pub async fn delete_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let mutations = Mutations::new(broker, ctx, version >= 5, false);
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
        if let Some(k) = mutations.refusal() {
            responses
                .push(base.with_topic_id(id).with_error_code(k.code()).with_error_message(Some(str_bytes(k.message))));
            continue;
        }
        responses.push(match admin::delete_topic(broker, &name).await {
            Ok(t) => {
                mutations.record(t.partitions.len());
                base.with_topic_id(t.id)
            }
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
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
    version: i16,
) -> CreatePartitionsResponse {
    let mutations = Mutations::new(broker, ctx, version >= 3, request.validate_only);
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let base = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if let Some(k) = mutations.refusal() {
            results.push(base.with_error_code(k.code()).with_error_message(Some(str_bytes(k.message))));
            continue;
        }
        let name = t.name.to_string();
        let before = broker.metadata.read().topic(&name).map_or(0, |t| t.partitions.len());
        let assignment =
            t.assignments.as_ref().map(|a| a.iter().map(|a| a.broker_ids.iter().map(|id| id.0).collect()).collect());
        let change = Change::CreatePartitions { name, total: t.count, assignment };
        results.push(match admin::apply(broker, change, request.validate_only).await {
            Ok(_) => {
                mutations.record((t.count.max(0) as usize).saturating_sub(before));
                base
            }
            Err(e) => {
                let k = KafkaError::from(&e);
                base.with_error_code(k.code()).with_error_message(Some(str_bytes(k.message)))
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
