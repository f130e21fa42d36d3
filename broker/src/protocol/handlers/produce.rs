//! Produce: validates and appends each partition's record batches as leader.
//!
//! A partition's batches are appended all or nothing (the log validates every
//! batch before writing any). acks=0 gets no response; acks=1 and acks=-1
//! answer once the batches are in the log and (for -1) committed, which on a
//! single node is the same moment.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{blocking, str_bytes};
use crate::broker::{Broker, now_ms};
use crate::log::TopicPartition;
use crate::protocol::errors::KafkaError;

pub async fn handle(broker: &Arc<Broker>, request: ProduceRequest, _version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let b = broker.clone();
    let responses = blocking(move || append_all(&b, request)).await;
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

fn append_all(broker: &Broker, request: ProduceRequest) -> Vec<TopicProduceResponse> {
    let acks_valid = matches!(request.acks, -1..=1);
    let transactional = request.transactional_id.is_some();
    request
        .topic_data
        .into_iter()
        .map(|topic| {
            let name = topic.name.to_string();
            let partitions = topic
                .partition_data
                .into_iter()
                .map(|p| {
                    let base = PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1);
                    let fail = |e: KafkaError| {
                        base.clone().with_error_code(e.code()).with_error_message(Some(str_bytes(e.message)))
                    };
                    if !acks_valid {
                        return fail(KafkaError::new(
                            ResponseError::InvalidRequiredAcks,
                            format!("acks={} is invalid; use -1 (all), 0 or 1", request.acks),
                        ));
                    }
                    if transactional {
                        return fail(KafkaError::new(
                            ResponseError::TransactionalIdAuthorizationFailed,
                            "transactions are not supported yet",
                        ));
                    }
                    if name == crate::group::OFFSETS_TOPIC {
                        // Only the group coordinator writes there, as in Kafka.
                        return fail(KafkaError::new(
                            ResponseError::InvalidTopicException,
                            format!("clients cannot produce to the internal topic {name}"),
                        ));
                    }
                    let tp = TopicPartition { topic: name.clone(), partition: p.index };
                    let Some(partition) = broker.partition(&tp) else {
                        return fail(KafkaError::new(
                            ResponseError::UnknownTopicOrPartition,
                            format!("this broker does not host partition {tp}"),
                        ));
                    };
                    let records = p.records.unwrap_or_default();
                    if records.is_empty() {
                        return fail(KafkaError::new(
                            ResponseError::InvalidRecord,
                            "produce request carries no record batch",
                        ));
                    }
                    match partition.append_as_leader(&records, now_ms()) {
                        Ok(info) => {
                            broker.metrics.record_produce(&name, info.bytes as u64, info.record_count as u64);
                            let log_start = partition.log().read().log_start_offset();
                            base.with_base_offset(info.base_offset)
                                .with_log_append_time_ms(info.log_append_time.unwrap_or(-1))
                                .with_log_start_offset(log_start)
                        }
                        Err(e) => {
                            tracing::warn!(partition = %tp, error = %e, "refused produce");
                            broker.metrics.record_produce_error(&name);
                            fail(KafkaError::from(&e))
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partitions)
        })
        .collect()
}
