//! Transactions as Kafka authorizes them: AddPartitionsToTxn (WRITE on the
//! transactional id and on each topic; when anything is refused nothing is
//! added, the rest answering OPERATION_NOT_ATTEMPTED), AddOffsetsToTxn
//! (WRITE on the transactional id, READ on the group), EndTxn (WRITE on the
//! transactional id), TxnOffsetCommit (WRITE on the transactional id, READ on
//! the group, READ on each topic), DescribeTransactions and ListTransactions
//! (DESCRIBE on each transactional id; a transaction's partitions shown only
//! for topics the principal may DESCRIBE), DescribeProducers (READ on each
//! topic) and WriteTxnMarkers (CLUSTER_ACTION on the cluster: only brokers
//! and the operator's tools write markers).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, EndTxnResponse, ProducerId, RequestKind, ResponseKind,
    TopicName, TransactionalId, TxnOffsetCommitResponse, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Gate, code, denied_message};
use crate::auth::access::Access;
use crate::auth::acl::{AclOperation, ResourceType};

/// Topics left out, with their partitions.
type Topics = Vec<(TopicName, Vec<i32>)>;

/// What [`after`] adds or filters.
#[derive(Debug)]
pub enum Patch {
    /// TxnOffsetCommit: topics refused (no READ).
    TxnOffsetCommit(Topics),
    /// DescribeTransactions: transactional ids refused.
    DescribeTransactions(Vec<TransactionalId>),
    /// ListTransactions: keep only the ids the principal may describe.
    ListTransactions,
    /// DescribeProducers: topics refused (no READ).
    DescribeProducers(Topics),
}

fn pass(request: RequestKind, patch: Patch) -> Gate {
    Gate::Pass(request, super::Patch::Txn(patch))
}

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

fn may_write_txn(access: &Access<'_>, id: &str) -> bool {
    access.allows(ResourceType::TransactionalId, id, AclOperation::Write)
}

pub fn before(access: &Access<'_>, request: RequestKind) -> Gate {
    match request {
        RequestKind::AddPartitionsToTxn(r) => {
            let txn_ok = may_write_txn(access, &r.v3_and_below_transactional_id);
            let topic_ok = |name: &TopicName| access.topic(name, AclOperation::Write);
            if txn_ok && r.v3_and_below_topics.iter().all(|t| topic_ok(&t.name)) {
                return Gate::Pass(RequestKind::AddPartitionsToTxn(r), super::Patch::None);
            }
            let results = r
                .v3_and_below_topics
                .iter()
                .map(|t| {
                    let error = match (txn_ok, topic_ok(&t.name)) {
                        (false, _) => ResponseError::TransactionalIdAuthorizationFailed,
                        (true, false) => ResponseError::TopicAuthorizationFailed,
                        (true, true) => ResponseError::OperationNotAttempted,
                    };
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code(error))
                        })
                        .collect();
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name.clone())
                        .with_results_by_partition(partitions)
                })
                .collect();
            Gate::Refuse(ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
            ))
        }
        RequestKind::AddOffsetsToTxn(r) => {
            let error = if !may_write_txn(access, &r.transactional_id) {
                Some(ResponseError::TransactionalIdAuthorizationFailed)
            } else if !access.group(&r.group_id, AclOperation::Read) {
                Some(ResponseError::GroupAuthorizationFailed)
            } else {
                None
            };
            match error {
                Some(e) => Gate::Refuse(ResponseKind::AddOffsetsToTxn(
                    AddOffsetsToTxnResponse::default().with_error_code(code(e)),
                )),
                None => Gate::Pass(RequestKind::AddOffsetsToTxn(r), super::Patch::None),
            }
        }
        RequestKind::EndTxn(r) => {
            if may_write_txn(access, &r.transactional_id) {
                return Gate::Pass(RequestKind::EndTxn(r), super::Patch::None);
            }
            Gate::Refuse(ResponseKind::EndTxn(
                EndTxnResponse::default()
                    .with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            ))
        }
        RequestKind::TxnOffsetCommit(mut r) => {
            let whole = if !may_write_txn(access, &r.transactional_id) {
                Some(ResponseError::TransactionalIdAuthorizationFailed)
            } else if !access.group(&r.group_id, AclOperation::Read) {
                Some(ResponseError::GroupAuthorizationFailed)
            } else {
                None
            };
            if let Some(e) = whole {
                let topics = r
                    .topics
                    .iter()
                    .map(|t| (t.name.clone(), t.partitions.iter().map(|p| p.partition_index).collect()))
                    .collect();
                return Gate::Refuse(ResponseKind::TxnOffsetCommit(txn_offset_commit_errors(topics, e)));
            }
            let (ok, no): (Vec<_>, Vec<_>) =
                r.topics.into_iter().partition(|t| access.topic(&t.name, AclOperation::Read));
            r.topics = ok;
            let refused =
                no.into_iter().map(|t| (t.name, t.partitions.iter().map(|p| p.partition_index).collect())).collect();
            pass(RequestKind::TxnOffsetCommit(r), Patch::TxnOffsetCommit(refused))
        }
        RequestKind::DescribeTransactions(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .transactional_ids
                .into_iter()
                .partition(|id| access.allows(ResourceType::TransactionalId, id, AclOperation::Describe));
            r.transactional_ids = ok;
            pass(RequestKind::DescribeTransactions(r), Patch::DescribeTransactions(no))
        }
        r @ RequestKind::ListTransactions(_) => pass(r, Patch::ListTransactions),
        RequestKind::DescribeProducers(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) =
                r.topics.into_iter().partition(|t| access.topic(&t.name, AclOperation::Read));
            r.topics = ok;
            let refused = no.into_iter().map(|t| (t.name, t.partition_indexes)).collect();
            pass(RequestKind::DescribeProducers(r), Patch::DescribeProducers(refused))
        }
        RequestKind::WriteTxnMarkers(r) => {
            if access.cluster(AclOperation::ClusterAction) {
                return Gate::Pass(RequestKind::WriteTxnMarkers(r), super::Patch::None);
            }
            let error = code(ResponseError::ClusterAuthorizationFailed);
            let markers = r
                .markers
                .iter()
                .map(|m| {
                    let topics = m
                        .topics
                        .iter()
                        .map(|t| {
                            let partitions = t
                                .partition_indexes
                                .iter()
                                .map(|p| {
                                    WritableTxnMarkerPartitionResult::default()
                                        .with_partition_index(*p)
                                        .with_error_code(error)
                                })
                                .collect();
                            WritableTxnMarkerTopicResult::default()
                                .with_name(t.name.clone())
                                .with_partitions(partitions)
                        })
                        .collect();
                    WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics)
                })
                .collect();
            Gate::Refuse(ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(markers)))
        }
        other => super::unrouted(other),
    }
}

fn txn_offset_commit_errors(topics: Topics, error: ResponseError) -> TxnOffsetCommitResponse {
    TxnOffsetCommitResponse::default().with_topics(txn_offset_commit_topics(topics, error))
}

fn txn_offset_commit_topics(topics: Topics, error: ResponseError) -> Vec<TxnOffsetCommitResponseTopic> {
    topics
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(code(error))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect()
}

pub fn after(access: &Access<'_>, patch: Patch, body: &mut ResponseKind) {
    match (patch, body) {
        (Patch::TxnOffsetCommit(refused), ResponseKind::TxnOffsetCommit(r)) => {
            r.topics.extend(txn_offset_commit_topics(refused, ResponseError::TopicAuthorizationFailed));
        }
        (Patch::DescribeTransactions(refused), ResponseKind::DescribeTransactions(r)) => {
            // As Kafka: a transaction's partitions only of topics the principal may describe.
            for state in &mut r.transaction_states {
                state.topics.retain(|t| access.topic(&t.topic, AclOperation::Describe));
            }
            r.transaction_states.extend(refused.into_iter().map(|id| {
                TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed))
                    .with_transaction_state(s(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
            }));
        }
        (Patch::ListTransactions, ResponseKind::ListTransactions(r)) => {
            r.transaction_states
                .retain(|t| access.allows(ResourceType::TransactionalId, &t.transactional_id, AclOperation::Describe));
        }
        (Patch::DescribeProducers(refused), ResponseKind::DescribeProducers(r)) => {
            let message = denied_message(access, "describe this topic's producers (READ on it)");
            r.topics.extend(refused.into_iter().map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        PartitionResponse::default()
                            .with_partition_index(p)
                            .with_error_code(code(ResponseError::TopicAuthorizationFailed))
                            .with_error_message(Some(s(message.clone())))
                    })
                    .collect();
                TopicResponse::default().with_name(name).with_partitions(partitions)
            }));
        }
        _ => {}
    }
}
