//! DescribeProducers (ApiKey 61, `kafka-transactions.sh describe-producers`):
//! the producers a partition leader tracks — id, epoch, last sequence and
//! timestamp, the coordinator epoch of their last marker and the first
//! offset of their ongoing transaction (-1 when none) — from the log's
//! producer state. Answered by the leader only (NOT_LEADER_OR_FOLLOWER
//! elsewhere, UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::str_bytes;
use crate::broker::Broker;
use crate::log::TopicPartition;

pub fn handle(broker: &Arc<Broker>, request: DescribeProducersRequest, _version: i16) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| describe(broker, &TopicPartition::new(t.name.to_string(), *p)))
                .collect();
            TopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn describe(broker: &Broker, tp: &TopicPartition) -> PartitionResponse {
    let base = PartitionResponse::default().with_partition_index(tp.partition);
    let partition = match broker.partition(tp) {
        Some(p) if p.is_leader() => p,
        Some(_) => {
            return base
                .with_error_code(ResponseError::NotLeaderOrFollower.code())
                .with_error_message(Some(str_bytes(format!("broker {} does not lead {tp}", broker.config.node_id))));
        }
        None => {
            let e = super::produce::not_hosted(broker, tp);
            return base.with_error_code(e.code()).with_error_message(Some(str_bytes(e.message)));
        }
    };
    let log = partition.log().read();
    let mut producers: Vec<ProducerState> = log
        .producer_states()
        .iter()
        .map(|(id, entry)| {
            let last = entry.batches.back();
            ProducerState::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(i32::from(entry.epoch))
                .with_last_sequence(last.map_or(-1, |b| b.last_sequence))
                .with_last_timestamp(last.map_or(-1, |b| b.max_timestamp))
                .with_coordinator_epoch(entry.coordinator_epoch)
                .with_current_txn_start_offset(entry.txn_first_offset.unwrap_or(-1))
        })
        .collect();
    producers.sort_by_key(|p| p.producer_id.0);
    base.with_active_producers(producers)
}
