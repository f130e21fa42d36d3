//! OffsetForLeaderEpoch from consumers (KIP-320): for a partition and a
//! leader epoch the consumer last saw, the largest epoch at or below it that
//! the leader's log knows and the offset where that epoch ends (the log end
//! for the current epoch). A consumer compares that end with its position
//! after a leader change: an end below its position means the log was
//! truncated under it, and it resets as `auto.offset.reset` says.
//!
//! Answered by the partition's leader only (NOT_LEADER_OR_FOLLOWER
//! elsewhere), fenced by `current_leader_epoch` as Fetch is
//! (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH); an epoch older than every
//! epoch the log holds gets the first epoch and its start offset, and a log
//! that knows no epoch (-1, -1), without an error, as in Kafka. Replicas
//! never send it here: followers use the internal plane.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::blocking;
use crate::broker::Broker;
use crate::log::TopicPartition;

pub async fn handle(
    broker: &Arc<Broker>,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let b = broker.clone();
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let tp = TopicPartition { topic: topic.topic.to_string(), partition: p.partition };
                        end_of_epoch(&b, &tp, p.current_leader_epoch, p.leader_epoch).with_partition(p.partition)
                    })
                    .collect();
                OffsetForLeaderTopicResult::default().with_topic(topic.topic).with_partitions(partitions)
            })
            .collect()
    })
    .await;
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn end_of_epoch(broker: &Broker, tp: &TopicPartition, current_leader_epoch: i32, epoch: i32) -> EpochEndOffset {
    let base = EpochEndOffset::default().with_leader_epoch(-1).with_end_offset(-1);
    let Some(partition) = broker.partition(tp) else {
        return base.with_error_code(super::produce::not_hosted(broker, tp).code());
    };
    match partition.offset_for_leader_epoch(current_leader_epoch, epoch) {
        Ok((leader_epoch, end_offset)) => base.with_leader_epoch(leader_epoch).with_end_offset(end_offset),
        Err((code, _message)) => base.with_error_code(code as i16),
    }
}
