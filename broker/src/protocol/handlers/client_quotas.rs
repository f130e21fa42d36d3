//! DescribeClientQuotas and AlterClientQuotas (KIP-546): what
//! `kafka-configs.sh --describe/--alter --entity-type users|clients|ips`
//! sends. Quotas are controller metadata: alterations go through the admin
//! door ([`admin::alter_client_quotas`]) and are answered once this broker
//! has published them, so every broker enforces the same quotas.
//!
//! Kafka's checks, one result per entity: known entity types, each once,
//! `ip` alone; known keys that apply to the entity; finite values, not
//! negative, integral for the byte rates; each key and each entity once per
//! request (INVALID_REQUEST, with a message naming the field and value).
//! Valid entities are applied together even when others are refused.
//! Authorization (ALTER_CONFIGS / DESCRIBE_CONFIGS on the cluster) is
//! decided before, in `protocol::authz::admin`.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData as AlterEntity, EntryData as AlterEntry};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};

use super::str_bytes;
use crate::admin;
use crate::broker::Broker;
use crate::protocol::errors::KafkaError;
use crate::quota::config::{
    EntityType, FilterComponent, MAX_ENTITIES_PER_REQUEST, NameMatch, QuotaEntity, QuotaError, QuotaOp,
    parse_alteration,
};

/// DescribeClientQuotas: the entities the filter matches, with their values.
pub fn describe(broker: &Broker, request: DescribeClientQuotasRequest, _version: i16) -> DescribeClientQuotasResponse {
    let filter: Result<Vec<FilterComponent>, QuotaError> = request
        .components
        .iter()
        .map(|c| {
            Ok(FilterComponent {
                entity_type: EntityType::parse(&c.entity_type)?,
                name: NameMatch::from_wire(c.match_type, c._match.as_deref())?,
            })
        })
        .collect();
    let quotas = broker.quotas.quotas();
    let found = filter.and_then(|f| quotas.describe(&f, request.strict));
    match found {
        Ok(found) => {
            let entries = found
                .into_iter()
                .map(|(entity, values)| {
                    EntryData::default()
                        .with_entity(
                            entity
                                .parts()
                                .map(|(kind, name)| {
                                    EntityData::default()
                                        .with_entity_type(str_bytes(kind.name()))
                                        .with_entity_name(name.wire().map(str_bytes))
                                })
                                .collect(),
                        )
                        .with_values(
                            values
                                .iter()
                                .map(|(k, v)| ValueData::default().with_key(str_bytes(k.name())).with_value(v.0))
                                .collect(),
                        )
                })
                .collect();
            DescribeClientQuotasResponse::default().with_entries(Some(entries))
        }
        Err(e) => DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(e.to_string())))
            .with_entries(None),
    }
}

/// AlterClientQuotas: each entity checked on its own; the valid ones
/// applied in one controller command (or only checked, `validate_only`).
pub async fn alter(broker: &Broker, request: AlterClientQuotasRequest, _version: i16) -> AlterClientQuotasResponse {
    let too_many = request.entries.len() > MAX_ENTITIES_PER_REQUEST;
    let mut seen = BTreeSet::new();
    let parsed: Vec<Result<(QuotaEntity, Vec<QuotaOp>), QuotaError>> = request
        .entries
        .iter()
        .map(|entry| {
            if too_many {
                return Err(QuotaError::TooManyEntities {
                    count: request.entries.len(),
                    limit: MAX_ENTITIES_PER_REQUEST,
                });
            }
            let (entity, ops) = parse_alteration(
                entry.entity.iter().map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
                entry.ops.iter().map(|op| (op.key.as_str(), op.value, op.remove)),
            )?;
            if !seen.insert(entity.clone()) {
                return Err(QuotaError::DuplicateEntity(entity.to_string()));
            }
            Ok((entity, ops))
        })
        .collect();
    let valid: Vec<(QuotaEntity, Vec<QuotaOp>)> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let applied = if valid.is_empty() {
        Ok(())
    } else {
        admin::alter_client_quotas(broker, valid, request.validate_only).await.map_err(|e| KafkaError::from(&e))
    };
    let entries = request
        .entries
        .iter()
        .zip(&parsed)
        .map(|(entry, parsed)| {
            let error = match (parsed, &applied) {
                (Err(e), _) => Some(KafkaError::new(ResponseError::InvalidRequest, e.to_string())),
                (Ok(_), Err(e)) => Some(e.clone()),
                (Ok(_), Ok(())) => None,
            };
            AlterEntry::default()
                .with_error_code(error.as_ref().map_or(0, KafkaError::code))
                .with_error_message(error.map(|e| str_bytes(e.message)))
                .with_entity(
                    entry
                        .entity
                        .iter()
                        .map(|e| {
                            AlterEntity::default()
                                .with_entity_type(e.entity_type.clone())
                                .with_entity_name(e.entity_name.clone())
                        })
                        .collect(),
                )
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
