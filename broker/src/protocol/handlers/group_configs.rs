//! The GROUP config resource (type 32) of DescribeConfigs and
//! IncrementalAlterConfigs: Kafka 4's group configs
//! ([`crate::group::configs`]), stored in the controller's metadata per
//! group like topic configs and described with every config, an override's
//! source DYNAMIC_GROUP_CONFIG and a default's DEFAULT_CONFIG, as Kafka
//! does. A group need not exist to have configs (Kafka's rule too).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::configs::ConfigEntry;
use crate::admin::Change;
use crate::broker::Broker;
use crate::group::configs::{GROUP_CONFIGS, find, value};
use crate::protocol::errors::KafkaError;

/// The resource type of a group in the config APIs.
pub const RESOURCE_GROUP: i8 = 32;
const SOURCE_DYNAMIC_GROUP_CONFIG: i8 = 8;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's config type INT.
const CONFIG_TYPE_INT: i8 = 3;

/// Refuses an empty group name, as Kafka does.
fn check_name(group: &str) -> Result<(), KafkaError> {
    if group.is_empty() {
        return Err(KafkaError::new(ResponseError::InvalidRequest, "group name must not be empty"));
    }
    Ok(())
}

/// The described configs of `group`, optionally only `keys`.
pub fn entries(broker: &Broker, group: &str, keys: Option<&[String]>) -> Result<Vec<ConfigEntry>, KafkaError> {
    check_name(group)?;
    let overrides = broker.metadata.read().group_configs(group);
    Ok(GROUP_CONFIGS
        .iter()
        .filter(|d| keys.is_none_or(|k| k.iter().any(|k| k == d.name)))
        .map(|def| {
            let overridden = overrides.contains_key(def.name);
            let source = if overridden { SOURCE_DYNAMIC_GROUP_CONFIG } else { SOURCE_DEFAULT };
            let mut synonyms = Vec::new();
            if overridden {
                synonyms.push((def.name.to_string(), value(def, &overrides).to_string(), SOURCE_DYNAMIC_GROUP_CONFIG));
            }
            synonyms.push((format!("group.{}", def.name), def.default.to_string(), SOURCE_DEFAULT));
            ConfigEntry {
                name: def.name.to_string(),
                value: value(def, &overrides).to_string(),
                source,
                config_type: CONFIG_TYPE_INT,
                doc: def.doc,
                synonyms,
            }
        })
        .collect())
}

/// IncrementalAlterConfigs of `group`: SET and DELETE (APPEND and SUBTRACT
/// need a list config, and no group config is one), then the whole set is
/// checked by the controller. Runs on a blocking-pool thread, which may wait
/// for the controller.
pub fn incremental_alter(
    broker: &Broker,
    group: &str,
    ops: &[(String, i8, Option<String>)],
    validate_only: bool,
) -> Result<(), KafkaError> {
    check_name(group)?;
    let invalid = |m: String| KafkaError::new(ResponseError::InvalidConfig, m);
    let mut configs: BTreeMap<String, String> = broker.metadata.read().group_configs(group);
    for (name, op, v) in ops {
        if find(name).is_none() {
            return Err(invalid(format!(
                "unknown group config `{name}`; accepted: consumer.session.timeout.ms, \
                 consumer.heartbeat.interval.ms (Strom has no share or streams groups)"
            )));
        }
        match op {
            0 => {
                configs.insert(name.clone(), v.clone().unwrap_or_default());
            }
            1 => {
                configs.remove(name);
            }
            2 | 3 => {
                return Err(invalid(format!("APPEND/SUBTRACT need a list setting and `{name}` is not one")));
            }
            other => {
                return Err(KafkaError::new(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other}"),
                ));
            }
        }
    }
    let change = Change::ReplaceGroupConfigs { group: group.to_string(), configs };
    tokio::runtime::Handle::current()
        .block_on(crate::admin::apply(broker, change, validate_only))
        .map(|_| ())
        .map_err(|e| KafkaError::from(&e))
}
