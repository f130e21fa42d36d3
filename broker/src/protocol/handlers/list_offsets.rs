//! ListOffsets: earliest, latest, max-timestamp and by-timestamp offsets,
//! answered by the partition's leader only (NOT_LEADER_OR_FOLLOWER
//! elsewhere). "Latest" is the high watermark, and a lookup by timestamp
//! never returns an offset at or above it: consumers see committed records
//! only. With `isolation_level=1` (read_committed) the bound is the last
//! stable offset instead: "latest" is the LSO.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::blocking;
use crate::broker::Broker;
use crate::log::TopicPartition;
use crate::protocol::errors::KafkaError;

/// Special timestamps of ListOffsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// `isolation_level` of a read_committed lookup.
const READ_COMMITTED: i8 = 1;

pub async fn handle(broker: &Arc<Broker>, request: ListOffsetsRequest, _version: i16) -> ListOffsetsResponse {
    let b = broker.clone();
    let read_committed = request.isolation_level == READ_COMMITTED;
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let name = topic.name.to_string();
                let partitions = topic
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let tp = TopicPartition { topic: name.clone(), partition: p.partition_index };
                        lookup(&b, &tp, p.timestamp, p.current_leader_epoch, read_committed)
                            .with_partition_index(p.partition_index)
                    })
                    .collect();
                ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
            })
            .collect()
    })
    .await;
    ListOffsetsResponse::default().with_topics(topics)
}

fn lookup(
    broker: &Broker,
    tp: &TopicPartition,
    timestamp: i64,
    current_leader_epoch: i32,
    read_committed: bool,
) -> ListOffsetsPartitionResponse {
    let base = ListOffsetsPartitionResponse::default().with_timestamp(-1).with_offset(-1).with_leader_epoch(-1);
    let Some(partition) = broker.partition(tp) else {
        return base.with_error_code(super::produce::not_hosted(broker, tp).code());
    };
    if !partition.is_leader() {
        return base.with_error_code(ResponseError::NotLeaderOrFollower.code());
    }
    let epoch = partition.leader_epoch();
    if current_leader_epoch >= 0 && current_leader_epoch != epoch {
        let error = if current_leader_epoch > epoch {
            ResponseError::UnknownLeaderEpoch
        } else {
            ResponseError::FencedLeaderEpoch
        };
        return base.with_error_code(error.code());
    }
    // read_committed sees up to the last stable offset.
    let hw = if read_committed { partition.last_stable_offset() } else { partition.high_watermark() };
    let log = partition.log().read();
    let found = match timestamp {
        LATEST => Ok(Some((-1, hw, Some(epoch)))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, log.log_start_offset(), None))),
        MAX_TIMESTAMP => log.max_timestamp_offset().map(|o| o.map(|t| (t.timestamp, t.offset, t.leader_epoch))),
        ts if ts >= 0 => log
            .offset_for_timestamp(ts)
            .map(|o| o.filter(|t| t.offset < hw).map(|t| (t.timestamp, t.offset, t.leader_epoch))),
        other => {
            return base.with_error_code(ResponseError::InvalidRequest.code()).with_timestamp(other);
        }
    };
    match found {
        Ok(Some((ts, offset, leader_epoch))) => {
            base.with_timestamp(ts).with_offset(offset).with_leader_epoch(leader_epoch.unwrap_or(-1))
        }
        Ok(None) => base,
        Err(e) => base.with_error_code(KafkaError::from(&e).code()),
    }
}
