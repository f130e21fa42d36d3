//! WriteTxnMarkers (ApiKey 27): COMMIT/ABORT markers written by this broker
//! as partition leader — what a transaction coordinator sends, and what
//! `kafka-transactions.sh abort` sends to end a hanging transaction. The
//! markers go through the same door as the internal `TxnMarkers` service
//! ([`crate::txn_markers_service::write_markers`]); each partition is
//! answered once its marker is committed, or with its Kafka error code.
//!
//! Kafka requires CLUSTER_ACTION on the cluster for this API; the request
//! gate (`protocol::authz`) checks it before this handler runs.

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::log::TopicPartition;
use crate::replica::txn_markers::MarkerWrite;

pub async fn handle(broker: &Arc<Broker>, request: WriteTxnMarkersRequest, _version: i16) -> WriteTxnMarkersResponse {
    let writes: Vec<MarkerWrite> = request
        .markers
        .iter()
        .map(|m| MarkerWrite {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            committed: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
            // WriteTxnMarkers v1 does not say (v2 adds it): the older rules.
            transaction_version: 0,
            partitions: m
                .topics
                .iter()
                .flat_map(|t| t.partition_indexes.iter().map(|p| TopicPartition::new(t.name.to_string(), *p)))
                .collect(),
        })
        .collect();
    let outcomes = crate::txn_markers_service::write_markers(broker, writes).await;
    let markers = request
        .markers
        .into_iter()
        .zip(outcomes)
        .map(|(m, outcomes)| {
            // Answered topic by topic, as asked (outcomes are in that order).
            let mut outcomes = outcomes.into_iter();
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .filter_map(|_| outcomes.next())
                        .map(|o| {
                            if o.error_code != 0 {
                                tracing::debug!(partition = %o.partition, code = o.error_code, message = %o.message, "WriteTxnMarkers refused");
                            }
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(o.partition.partition)
                                .with_error_code(o.error_code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default().with_name(TopicName(str_bytes(t.name.to_string()))).with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
