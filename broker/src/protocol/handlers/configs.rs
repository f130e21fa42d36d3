//! DescribeConfigs and IncrementalAlterConfigs for topics, brokers and
//! groups (the last in [`super::group_configs`]).
//!
//! Topic configs are described with every setting, defaults included and
//! flagged by their source (topic override, static broker setting, default),
//! as Kafka does; a null or empty key list asks for every config (Kafka's
//! rule). Broker settings are static in this version: described, but
//! altering them is refused with a message saying to restart with `--set`.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::group_configs::{self, RESOURCE_GROUP};
use super::{blocking, str_bytes};
use crate::broker::Broker;
use crate::config::Settings;
use crate::config::settings::{BROKER_SETTINGS, SettingKind, TOPIC_SETTINGS, find};
use crate::metadata::ConfigOp;
use crate::protocol::errors::KafkaError;

pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// One described config entry.
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub config_type: i8,
    pub doc: &'static str,
    pub synonyms: Vec<(String, String, i8)>,
}

/// The entries of a topic with `overrides`, optionally only `keys`.
pub fn topic_config_entries(broker: &Broker, overrides: &Settings, keys: Option<&[String]>) -> Vec<ConfigEntry> {
    TOPIC_SETTINGS
        .iter()
        .filter(|d| keys.is_none_or(|k| k.iter().any(|k| k == d.name)))
        .map(|def| {
            let (value, overridden) = broker.config.topic_value(overrides, def.name);
            let mut synonyms = Vec::new();
            if overridden {
                synonyms.push((def.name.to_string(), value.clone(), SOURCE_TOPIC));
            }
            let dynamic = def.broker_synonym.and_then(|s| Some((s, broker.config.dynamic.get(s)?)));
            if let Some((syn, v)) = &dynamic {
                synonyms.push((syn.to_string(), v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER));
            }
            let broker_explicit = def.broker_synonym.filter(|s| broker.config.settings.explicit(s).is_some());
            if let Some(syn) = broker_explicit {
                synonyms.push((syn.to_string(), broker.config.settings.get(syn).to_string(), SOURCE_STATIC_BROKER));
            }
            synonyms.push((
                def.broker_synonym.unwrap_or(def.name).to_string(),
                def.default.to_string(),
                SOURCE_DEFAULT,
            ));
            let source = if overridden {
                SOURCE_TOPIC
            } else if dynamic.is_some() {
                SOURCE_DYNAMIC_DEFAULT_BROKER
            } else if broker_explicit.is_some() {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            ConfigEntry {
                name: def.name.to_string(),
                value,
                source,
                config_type: def.kind.kafka_config_type(),
                doc: def.doc,
                synonyms,
            }
        })
        .collect()
}

fn broker_config_entries(broker: &Broker, keys: Option<&[String]>) -> Vec<ConfigEntry> {
    BROKER_SETTINGS
        .iter()
        .filter(|d| keys.is_none_or(|k| k.iter().any(|k| k == d.name)))
        .map(|def| {
            let explicit = broker.config.settings.explicit(def.name);
            let source = if explicit.is_some() { SOURCE_STATIC_BROKER } else { SOURCE_DEFAULT };
            let value = broker.config.settings.get(def.name).to_string();
            ConfigEntry {
                name: def.name.to_string(),
                synonyms: vec![(def.name.to_string(), value.clone(), source)],
                value,
                source,
                config_type: def.kind.kafka_config_type(),
                doc: def.doc,
            }
        })
        .collect()
}

pub fn describe(broker: &Arc<Broker>, request: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            // Null or empty: every config, as in Kafka.
            let keys: Option<Vec<String>> =
                r.configuration_keys.filter(|k| !k.is_empty()).map(|k| k.iter().map(|s| s.to_string()).collect());
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match broker.metadata.read().topic(&name) {
                    Some(t) => topic_config_entries(broker, &t.configs, keys.as_deref()),
                    None => {
                        return base
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(format!("topic `{name}` does not exist"))));
                    }
                },
                RESOURCE_BROKER => {
                    if !name.is_empty() && name != broker.config.node_id.to_string() {
                        return base.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(
                            str_bytes(format!("broker `{name}` is not this broker ({})", broker.config.node_id)),
                        ));
                    }
                    broker_config_entries(broker, keys.as_deref())
                }
                RESOURCE_GROUP => match group_configs::entries(broker, &name, keys.as_deref()) {
                    Ok(entries) => entries,
                    Err(k) => {
                        return base.with_error_code(k.code()).with_error_message(Some(str_bytes(k.message)));
                    }
                },
                other => {
                    return base.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(
                        str_bytes(format!(
                            "resource type {other} is not supported; use 2 (topic), 4 (broker) or 32 (group)"
                        )),
                    ));
                }
            };
            let read_only = r.resource_type == RESOURCE_BROKER;
            let configs = entries
                .into_iter()
                .map(|e| {
                    let synonyms = if request.include_synonyms {
                        e.synonyms
                            .into_iter()
                            .map(|(n, v, s)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(str_bytes(n))
                                    .with_value(Some(str_bytes(v)))
                                    .with_source(s)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(e.name))
                        .with_value(Some(str_bytes(e.value)))
                        .with_read_only(read_only)
                        .with_config_source(e.source)
                        .with_is_sensitive(false)
                        .with_synonyms(synonyms)
                        .with_config_type(if version >= 3 { e.config_type } else { 0 })
                        .with_documentation((version >= 3 && request.include_documentation).then(|| str_bytes(e.doc)))
                })
                .collect();
            base.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Turns IncrementalAlterConfigs operations into set/delete operations.
fn to_ops(current: &Settings, configs: &[(String, i8, Option<String>)]) -> Result<Vec<ConfigOp>, KafkaError> {
    let invalid = |m: String| KafkaError::new(ResponseError::InvalidConfig, m);
    let mut ops = Vec::new();
    for (name, op, value) in configs {
        let def = find(TOPIC_SETTINGS, name).ok_or_else(|| invalid(format!("unknown topic setting `{name}`")))?;
        let value = value.clone().unwrap_or_default();
        match op {
            0 => ops.push(ConfigOp::Set(name.clone(), value)),
            1 => ops.push(ConfigOp::Delete(name.clone())),
            2 | 3 => {
                if !matches!(def.kind, SettingKind::List(_) | SettingKind::ReplicaList) {
                    return Err(invalid(format!("APPEND/SUBTRACT need a list setting and `{name}` is not one")));
                }
                let mut items: Vec<String> =
                    current.get(name).split(',').filter(|s| !s.is_empty()).map(String::from).collect();
                for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if *op == 2 && !items.iter().any(|i| i == v) {
                        items.push(v.to_string());
                    } else if *op == 3 {
                        items.retain(|i| i != v);
                    }
                }
                ops.push(ConfigOp::Set(name.clone(), items.join(",")));
            }
            other => {
                return Err(KafkaError::new(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other}"),
                ));
            }
        }
    }
    Ok(ops)
}

pub async fn incremental_alter(
    broker: &Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let b = broker.clone();
    let responses = blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                let name = r.resource_name.to_string();
                let base = AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name);
                let fail = |k: KafkaError| {
                    base.clone().with_error_code(k.code()).with_error_message(Some(str_bytes(k.message)))
                };
                let configs: Vec<(String, i8, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.config_operation, c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                match r.resource_type {
                    RESOURCE_TOPIC => {}
                    RESOURCE_GROUP => {
                        return match group_configs::incremental_alter(&b, &name, &configs, request.validate_only) {
                            Ok(()) => base,
                            Err(k) => fail(k),
                        };
                    }
                    RESOURCE_BROKER => {
                        return fail(KafkaError::new(
                            ResponseError::InvalidRequest,
                            "broker settings are static in this version: restart the broker with --set KEY=VALUE",
                        ));
                    }
                    other => {
                        return fail(KafkaError::new(
                            ResponseError::InvalidRequest,
                            format!("resource type {other} is not supported; use 2 (topic) or 32 (group)"),
                        ));
                    }
                }
                let Some(current) = b.metadata.read().topic(&name).map(|t| t.configs.clone()) else {
                    return fail(KafkaError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic `{name}` does not exist"),
                    ));
                };
                let result = to_ops(&current, &configs).and_then(|ops| {
                    // A blocking-pool thread: waiting here for the controller is fine.
                    tokio::runtime::Handle::current()
                        .block_on(crate::admin::apply(
                            &b,
                            crate::admin::Change::AlterTopicConfigs { name: name.clone(), ops },
                            request.validate_only,
                        ))
                        .map(|_| ())
                        .map_err(|e| KafkaError::from(&e))
                });
                match result {
                    Ok(()) => base,
                    Err(k) => fail(k),
                }
            })
            .collect()
    })
    .await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
