//! DeleteRecords (`kafka-delete-records.sh`, Kafka Streams purging its
//! repartition topics): moves each partition's log start offset on its
//! leader (see [`Partition::delete_records_to`]), then waits — without
//! holding a thread — until every in-sync replica's log start offset
//! reaches it (the low watermark) for at most the request's `timeout_ms`
//! (REQUEST_TIMED_OUT), as Kafka's delayed DeleteRecords does. Kafka waits
//! for the replicas on every live broker; Strom for the in-sync ones, which
//! are the replicas it knows to be live and following.
//!
//! Refused per partition: a broker not leading it NOT_LEADER_OR_FOLLOWER,
//! an unknown one UNKNOWN_TOPIC_OR_PARTITION, an internal topic
//! INVALID_TOPIC_EXCEPTION, a compacted one POLICY_VIOLATION, an offset
//! beyond the high watermark OFFSET_OUT_OF_RANGE.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::blocking;
use super::produce::{not_hosted, replica_error};
use crate::broker::Broker;
use crate::log::TopicPartition;
use crate::replica::Partition;
use crate::replica::partition::DeletedTo;

pub async fn handle(broker: &Arc<Broker>, request: DeleteRecordsRequest, _version: i16) -> DeleteRecordsResponse {
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let b = broker.clone();
    let (mut topics, waits) = blocking(move || delete_all(&b, request)).await;
    let results =
        futures::future::join_all(waits.iter().map(|w| w.partition.wait_for_low_watermark(&w.deleted, timeout))).await;
    for (wait, result) in waits.iter().zip(results) {
        let p = &mut topics[wait.topic].partitions[wait.index];
        match result {
            Ok(low_watermark) => p.low_watermark = low_watermark,
            Err(e) => {
                tracing::debug!(partition = %wait.partition.topic_partition(), error = %e, "DeleteRecords not completed");
                p.error_code = replica_error(&e).code();
            }
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// A partition whose leader moved its start, waiting for the low watermark.
struct Wait {
    topic: usize,
    index: usize,
    partition: Arc<Partition>,
    deleted: DeletedTo,
}

fn delete_all(broker: &Broker, request: DeleteRecordsRequest) -> (Vec<DeleteRecordsTopicResult>, Vec<Wait>) {
    let mut waits = Vec::new();
    let topics = request
        .topics
        .into_iter()
        .enumerate()
        .map(|(topic_index, topic)| {
            let name = topic.name.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .enumerate()
                .map(|(index, p)| {
                    let base = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let tp = TopicPartition { topic: name.clone(), partition: p.partition_index };
                    if name == crate::group::OFFSETS_TOPIC {
                        return base.with_error_code(ResponseError::InvalidTopicException.code());
                    }
                    let Some(partition) = broker.partition(&tp) else {
                        return base.with_error_code(not_hosted(broker, &tp).code());
                    };
                    match partition.delete_records_to(p.offset) {
                        Ok(deleted) => {
                            waits.push(Wait { topic: topic_index, index, partition, deleted });
                            base
                        }
                        Err(e) => {
                            tracing::debug!(partition = %tp, offset = p.offset, error = %e, "DeleteRecords refused");
                            base.with_error_code(replica_error(&e).code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    (topics, waits)
}
