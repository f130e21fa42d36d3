//! The transaction coordinator's APIs: AddPartitionsToTxn (the client form,
//! v0-3), AddOffsetsToTxn, EndTxn, DescribeTransactions, ListTransactions;
//! and the group coordinator's TxnOffsetCommit.
//! Each turns the request into a call on [`crate::txn::TxnCoordinator`] and
//! its error into Kafka's code (INVALID_PRODUCER_EPOCH for the versions that
//! predate PRODUCER_FENCED, as Kafka answers them). With transaction.version
//! 2 finalized, EndTxn v5 bumps the epoch and TxnOffsetCommit v5 adds the
//! group to the transaction (KIP-890 part 2).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState as DescribedTxn};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use super::str_bytes;
use crate::broker::Broker;
use crate::group::coordinator::{OffsetCommit, PartitionCommit};
use crate::group::{GroupError, OFFSETS_TOPIC, partition_for};
use crate::protocol::errors::KafkaError;
use crate::txn::TxnError;
use crate::txn::state::{TxnPartition, TxnState};

/// The first version of AddPartitionsToTxn, AddOffsetsToTxn and EndTxn that knows PRODUCER_FENCED.
const FENCED_SINCE: i16 = 2;

/// AddPartitionsToTxn v0-3: adds the partitions to the producer's transaction.
/// A partition that does not exist fails with UNKNOWN_TOPIC_OR_PARTITION and
/// the others with OPERATION_NOT_ATTEMPTED, nothing written (as Kafka).
pub async fn add_partitions(
    broker: &Arc<Broker>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let id = request.v3_and_below_transactional_id.0.to_string();
    let asked: Vec<TxnPartition> = request
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let missing: Vec<bool> = {
        let view = broker.metadata.read();
        asked.iter().map(|(t, p)| view.topic(t).is_none_or(|m| *p < 0 || *p as usize >= m.partitions.len())).collect()
    };
    let outcome: Vec<Result<(), TxnError>> = if missing.iter().any(|m| *m) {
        asked
            .iter()
            .zip(&missing)
            .map(|((t, p), m)| {
                if *m {
                    Err(TxnError::UnknownTopicOrPartition { topic: t.clone(), partition: *p })
                } else {
                    Err(TxnError::OperationNotAttempted)
                }
            })
            .collect()
    } else {
        let result = broker
            .txns
            .add_partitions_at(&id, request.v3_and_below_producer_id.0, request.v3_and_below_producer_epoch, &asked, 0)
            .await;
        asked.iter().map(|_| result.clone()).collect()
    };
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), result) in asked.into_iter().zip(outcome) {
        let code = match &result {
            Ok(()) => 0,
            Err(e) => {
                let k = KafkaError::for_txn(e, version, FENCED_SINCE);
                tracing::debug!(transactional_id = %id, %topic, partition, error = %k.message, "AddPartitionsToTxn refused");
                k.code()
            }
        };
        let r = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(partition)
            .with_partition_error_code(code);
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(r),
            None => topics.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_results_by_partition(vec![r]),
            ),
        }
    }
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
}

/// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the transaction.
pub async fn add_offsets(
    broker: &Arc<Broker>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let group = request.group_id.0.to_string();
    let partitions = broker.metadata.read().topic(OFFSETS_TOPIC).map(|t| t.partitions.len());
    let result = match partitions {
        None => Err(TxnError::CoordinatorNotAvailable),
        Some(_) if group.is_empty() => Err(TxnError::InvalidRequest("the group id must not be empty".to_string())),
        Some(n) => {
            let tp = (OFFSETS_TOPIC.to_string(), partition_for(&group, n) as i32);
            broker
                .txns
                .add_partitions_at(
                    request.transactional_id.0.as_str(),
                    request.producer_id.0,
                    request.producer_epoch,
                    &[tp],
                    0,
                )
                .await
        }
    };
    let code = result.err().map_or(0, |e| KafkaError::for_txn(&e, version, FENCED_SINCE).code());
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

/// The first EndTxn version of transaction.version 2 (the epoch bumps per
/// transaction and the answer carries the producer id and epoch to continue with).
const END_TXN_BUMP_SINCE: i16 = 5;
/// The first TxnOffsetCommit version of transaction.version 2 (it adds the
/// group to the transaction; no AddOffsetsToTxn comes before it).
const TXN_OFFSET_COMMIT_ADDS_SINCE: i16 = 5;

/// EndTxn: commits or aborts the producer's transaction (answered once the
/// decision is in `__transaction_state`; the markers follow). From v5, with
/// transaction.version 2 finalized, the epoch is bumped and the answer
/// carries the producer id and epoch the client continues with.
pub async fn end_txn(broker: &Arc<Broker>, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = request.transactional_id.0.to_string();
    let client_version = if version >= END_TXN_BUMP_SINCE && broker.txns.config().tv2() { 2 } else { 0 };
    let allocate = || async { broker.allocate_producer_id().await.map_err(|e| e.to_string()) };
    let result = broker
        .txns
        .end_transaction(
            &id,
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
            client_version,
            allocate,
        )
        .await;
    match result {
        Ok((producer_id, producer_epoch)) => {
            EndTxnResponse::default().with_producer_id(ProducerId(producer_id)).with_producer_epoch(producer_epoch)
        }
        Err(e) => {
            let k = KafkaError::for_txn(&e, version, FENCED_SINCE);
            tracing::debug!(transactional_id = %id, error = %k.message, "EndTxn refused");
            EndTxnResponse::default().with_error_code(k.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
        }
    }
}

/// DescribeTransactions: the state of each id this broker coordinates.
pub fn describe(
    broker: &Arc<Broker>,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let base = DescribedTxn::default().with_transactional_id(id.clone()).with_producer_id(ProducerId(-1));
            match broker.txns.describe(id.0.as_str()) {
                Ok(d) => base
                    .with_transaction_state(str_bytes(d.state.name()))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.start_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(
                        d.partitions
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(t)))
                                    .with_partitions(ps.into_iter().collect())
                            })
                            .collect(),
                    ),
                Err(e) => base.with_error_code(KafkaError::from(&e).code()).with_producer_epoch(-1),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions: the ids this broker coordinates, filtered.
pub fn list(broker: &Arc<Broker>, request: ListTransactionsRequest, _version: i16) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in request.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(s) => states.push(s),
            None => unknown.push(name),
        }
    }
    let producer_ids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let response = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    // Only unknown names were given: nothing can match (as Kafka answers).
    if states.is_empty() && !response.unknown_state_filters.is_empty() {
        return response;
    }
    match broker.txns.list(&states, &producer_ids, request.duration_filter) {
        Ok(listed) => response.with_transaction_states(
            listed
                .into_iter()
                .map(|l| {
                    ListedTxn::default()
                        .with_transactional_id(kafka_protocol::messages::TransactionalId(str_bytes(l.transactional_id)))
                        .with_producer_id(ProducerId(l.producer_id))
                        .with_transaction_state(str_bytes(l.state.name()))
                })
                .collect(),
        ),
        Err(e) => response.with_error_code(KafkaError::from(&e).code()),
    }
}

/// TxnOffsetCommit: the group coordinator writes the offsets as a
/// transactional batch of the producer and holds them until the
/// transaction's marker reaches the group's `__consumer_offsets` partition.
/// A producer with an older epoch there is refused with
/// INVALID_PRODUCER_EPOCH (PRODUCER_FENCED from v3, as Kafka's clients expect).
pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let commit = OffsetCommit {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        generation_id: request.generation_id,
        retention_time_ms: None,
        topics: request
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| PartitionCommit {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    })
                    .collect();
                (t.name.0.to_string(), partitions)
            })
            .collect(),
    };
    let asked: Vec<(String, i32)> =
        commit.topics.iter().flat_map(|(t, ps)| ps.iter().map(|p| (t.clone(), p.partition))).collect();
    // As Kafka (KIP-890 part 1 for offsets): the producer must own the
    // transactional id at this epoch, with the group's partition added
    // (AddOffsetsToTxn) — asked of the transaction coordinator. From v5
    // (transaction.version 2) the coordinator adds it instead.
    let add = version >= TXN_OFFSET_COMMIT_ADDS_SINCE && broker.txns.config().tv2();
    let offsets_partition =
        broker.metadata.read().topic(OFFSETS_TOPIC).map(|t| partition_for(&group, t.partitions.len()));
    let verified = match offsets_partition {
        Some(p) => {
            let tp = vec![(OFFSETS_TOPIC.to_string(), p as i32)];
            let id = request.transactional_id.0.as_str();
            crate::txn::service::verify_anywhere(broker, id, request.producer_id.0, request.producer_epoch, &tp, add)
                .await
        }
        None => vec![ResponseError::CoordinatorNotAvailable.code()],
    };
    if let Some(&code) = verified.iter().find(|c| **c != 0) {
        let code = if code == ResponseError::ProducerFenced.code() && version < 3 {
            ResponseError::InvalidProducerEpoch.code()
        } else {
            code
        };
        tracing::debug!(group = %group, code, "TxnOffsetCommit refused by the transaction coordinator");
        return txn_offset_response(asked.into_iter().map(|(t, p)| (t, p, code)).collect());
    }
    let results: Vec<(String, i32, i16)> =
        match broker.groups.txn_commit_offsets(&group, request.producer_id.0, request.producer_epoch, commit).await {
            Ok(results) => results
                .into_iter()
                .map(|(t, p, r)| {
                    let code = match r {
                        Ok(()) => 0,
                        Err(GroupError::InvalidProducerEpoch) if version >= 3 => ResponseError::ProducerFenced.code(),
                        Err(e) => KafkaError::from(&e).code(),
                    };
                    (t, p, code)
                })
                .collect(),
            Err(e) => {
                let code = KafkaError::from(&e).code();
                asked.into_iter().map(|(t, p)| (t, p, code)).collect()
            }
        };
    txn_offset_response(results)
}

fn txn_offset_response(results: Vec<(String, i32, i16)>) -> TxnOffsetCommitResponse {
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for (topic, partition, code) in results {
        let r = TxnOffsetCommitResponsePartition::default().with_partition_index(partition).with_error_code(code);
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(r),
            None => topics.push(
                TxnOffsetCommitResponseTopic::default().with_name(TopicName(str_bytes(topic))).with_partitions(vec![r]),
            ),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_versions_get_invalid_producer_epoch_for_a_fence() {
        let e = TxnError::ProducerFenced;
        assert_eq!(KafkaError::for_txn(&e, 1, FENCED_SINCE).error, ResponseError::InvalidProducerEpoch);
        assert_eq!(KafkaError::for_txn(&e, 2, FENCED_SINCE).error, ResponseError::ProducerFenced);
        let e = TxnError::ConcurrentTransactions;
        assert_eq!(KafkaError::for_txn(&e, 0, FENCED_SINCE).error, ResponseError::ConcurrentTransactions);
    }
}
