//! AlterConfigs (ApiKey 33, v0–2), the legacy, non-incremental form that
//! older tools and librdkafka's `AlterConfigs` send: each resource's listed
//! configs replace its whole set of dynamic configs — a topic override not
//! listed is removed, as in Kafka — through the same admin path as
//! IncrementalAlterConfigs ([`crate::admin::Change::ReplaceTopicConfigs`]),
//! `validate_only` included. Errors are per resource: an unknown topic
//! UNKNOWN_TOPIC_OR_PARTITION, an unknown setting or a value the setting
//! refuses INVALID_CONFIG, a null value or a name listed twice
//! INVALID_REQUEST (Kafka's answers); broker settings are static here and
//! refused as IncrementalAlterConfigs refuses them.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{blocking, str_bytes};
use crate::admin::Change;
use crate::broker::Broker;
use crate::config::settings::{TOPIC_SETTINGS, find};
use crate::protocol::errors::KafkaError;

pub async fn handle(broker: &Arc<Broker>, request: AlterConfigsRequest, _version: i16) -> AlterConfigsResponse {
    let b = broker.clone();
    let validate_only = request.validate_only;
    let responses = blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                let base = AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                match alter(&b, &r, validate_only) {
                    Ok(()) => base,
                    Err(k) => base.with_error_code(k.code()).with_error_message(Some(str_bytes(k.message))),
                }
            })
            .collect()
    })
    .await;
    AlterConfigsResponse::default().with_responses(responses)
}

/// One resource's replacement. Runs on a blocking-pool thread, which may
/// wait for the controller.
fn alter(broker: &Broker, r: &AlterConfigsResource, validate_only: bool) -> Result<(), KafkaError> {
    match r.resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err(KafkaError::new(
                ResponseError::InvalidRequest,
                "broker settings are static in this version: restart the broker with --set KEY=VALUE",
            ));
        }
        other => {
            return Err(KafkaError::new(
                ResponseError::InvalidRequest,
                format!("resource type {other} is not supported by AlterConfigs; use 2 (topic)"),
            ));
        }
    }
    let name = r.resource_name.to_string();
    let configs = replacement(&r.configs)?;
    let change = Change::ReplaceTopicConfigs { name, configs };
    tokio::runtime::Handle::current()
        .block_on(crate::admin::apply(broker, change, validate_only))
        .map(|_| ())
        .map_err(|e| KafkaError::from(&e))
}

/// The new set of topic overrides the request lists, checked by name.
fn replacement(
    configs: &[kafka_protocol::messages::alter_configs_request::AlterableConfig],
) -> Result<BTreeMap<String, String>, KafkaError> {
    let mut out = BTreeMap::new();
    for c in configs {
        let name = c.name.to_string();
        if find(TOPIC_SETTINGS, &name).is_none() {
            return Err(KafkaError::new(ResponseError::InvalidConfig, format!("unknown topic setting `{name}`")));
        }
        let Some(value) = &c.value else {
            return Err(KafkaError::new(
                ResponseError::InvalidRequest,
                format!(
                    "null value for topic setting `{name}`: AlterConfigs replaces every override, so leave it out to remove it"
                ),
            ));
        };
        if out.insert(name.clone(), value.to_string()).is_some() {
            return Err(KafkaError::new(
                ResponseError::InvalidRequest,
                format!("topic setting `{name}` is listed more than once"),
            ));
        }
    }
    Ok(out)
}
