//! KIP-890 part 1 for Produce: before a producer's first transactional
//! batch of a transaction is appended to a partition, its transaction
//! coordinator confirms the partition is in the producer's ongoing
//! transaction, so no produce outside a transaction can hold the
//! partition's last stable offset forever.
//!
//! Per partition led here with transactional batches, the log starts a
//! verification ([`PartitionLog::start_txn_verification`]): none is needed
//! when the producer's transaction is already ongoing there at its epoch
//! (no RPC and, when the log is not busy, no blocking step: the common
//! case). The others are asked of the coordinator in
//! one call ([`crate::txn::service::verify_anywhere`]); the append then
//! holds the verification guard, which a marker written meanwhile
//! invalidates (the log refuses with INVALID_TXN_STATE).
//!
//! From Produce v12 (transaction.version 2, whose clients send no
//! AddPartitionsToTxn) the coordinator is asked to add the partitions to
//! the transaction, opening it if needed, instead of only checking them.
//!
//! The coordinator's refusals are answered as Kafka does to Produce v11
//! clients: INVALID_TXN_STATE for a partition not in the transaction,
//! INVALID_PRODUCER_EPOCH for a fenced producer, NOT_ENOUGH_REPLICAS
//! (retriable, no metadata refresh) when the coordinator is busy or
//! unreachable, the coordinator's code otherwise. A request whose
//! transactional batches come from more than one producer is refused
//! whole with INVALID_PRODUCER_ID_MAPPING.
//!
//! [`PartitionLog::start_txn_verification`]: crate::log::PartitionLog::start_txn_verification

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceRequest;

use super::super::blocking;
use super::transactional_batches;
use crate::broker::Broker;
use crate::log::TopicPartition;
use crate::log::producer_state::VerificationGuard;
use crate::protocol::errors::KafkaError;
use crate::replica::Partition;

/// The first Produce version whose transactional batches add their partition
/// to the transaction (transaction.version 2).
const ADD_PARTITIONS_SINCE: i16 = 12;

/// The outcome of a request's verifications, taken partition by partition
/// at the append.
#[derive(Default)]
pub struct Verified {
    /// Refuses every partition (transactional batches of several producers).
    whole: Option<KafkaError>,
    /// Partitions verified (the guard to append with) or refused; a
    /// partition absent needs no guard.
    partitions: HashMap<TopicPartition, (i64, VerificationGuard, Option<KafkaError>)>,
}

impl Verified {
    /// The guard to append `tp`'s batches with, or the refusal. A refused
    /// verification is dropped from the log's producer state.
    pub fn take(
        &mut self,
        tp: &TopicPartition,
        partition: &Partition,
    ) -> Result<Option<VerificationGuard>, KafkaError> {
        if let Some(e) = &self.whole {
            return Err(e.clone());
        }
        match self.partitions.remove(tp) {
            None => Ok(None),
            Some((_, guard, None)) => Ok(Some(guard)),
            Some((producer_id, guard, Some(e))) => {
                // The retriable refusals (the coordinator busy or moving) come
                // back as NOT_ENOUGH_REPLICAS: the producer will send again.
                let retriable = e.code() == ResponseError::NotEnoughReplicas.code();
                partition.log().write().abandon_txn_verification(producer_id, guard, retriable);
                Err(e)
            }
        }
    }
}

/// Verifies the request's transactional partitions that need it.
pub async fn verify(broker: &Arc<Broker>, request: &ProduceRequest, version: i16) -> Verified {
    let Some(transactional_id) = request.transactional_id.as_ref().map(|id| id.to_string()) else {
        // Transactional batches without a transactional id are refused at the append.
        return Verified::default();
    };
    let mut producers: Vec<(i64, i16)> = Vec::new();
    // Each partition with transactional batches, and the base sequence of its first.
    let mut wanted: Vec<(TopicPartition, i32)> = Vec::new();
    for topic in &request.topic_data {
        for p in &topic.partition_data {
            let Some(records) = p.records.as_deref() else { continue };
            if topic.name.as_str() == crate::group::OFFSETS_TOPIC || topic.name.as_str() == crate::txn::TXN_STATE_TOPIC
            {
                continue; // refused at the append, verified never
            }
            let mut first_sequence = None;
            for header in transactional_batches(records) {
                first_sequence.get_or_insert(header.base_sequence);
                if !producers.contains(&(header.producer_id, header.producer_epoch)) {
                    producers.push((header.producer_id, header.producer_epoch));
                }
            }
            if let Some(sequence) = first_sequence {
                wanted.push((TopicPartition { topic: topic.name.to_string(), partition: p.index }, sequence));
            }
        }
    }
    let (producer_id, epoch) = match producers.as_slice() {
        [] => return Verified::default(),
        [one] => *one,
        _ => {
            let e = KafkaError::new(
                ResponseError::InvalidProducerIdMapping,
                format!(
                    "transactional records of {} producer ids or epochs in one request; one is allowed",
                    producers.len()
                ),
            );
            return Verified { whole: Some(e), partitions: HashMap::new() };
        }
    };
    // The common case, without leaving this thread: every partition's
    // transaction is already ongoing (a log busy appending is left to the
    // blocking step below).
    wanted.retain(|(tp, _)| {
        let Some(partition) = broker.partition(tp) else { return false };
        partition.log().try_read().is_none_or(|log| !log.producer_states().has_ongoing_txn(producer_id, epoch))
    });
    if wanted.is_empty() {
        return Verified::default();
    }
    let b = broker.clone();
    let started: Vec<(TopicPartition, VerificationGuard)> = blocking(move || {
        wanted
            .into_iter()
            .filter_map(|(tp, sequence)| {
                let partition = b.partition(&tp).filter(|p| p.is_leader())?;
                let guard = partition.log().write().start_txn_verification(producer_id, epoch, sequence)?;
                Some((tp, guard))
            })
            .collect()
    })
    .await;
    if started.is_empty() {
        return Verified::default();
    }
    let asked: Vec<(String, i32)> = started.iter().map(|(tp, _)| (tp.topic.clone(), tp.partition)).collect();
    let add = version >= ADD_PARTITIONS_SINCE && broker.txns.config().tv2();
    let codes = crate::txn::service::verify_anywhere(broker, &transactional_id, producer_id, epoch, &asked, add).await;
    let partitions = started
        .into_iter()
        .zip(codes)
        .map(|((tp, guard), code)| {
            let refused = (code != 0).then(|| refusal(code));
            if let Some(e) = &refused {
                tracing::debug!(partition = %tp, producer_id, error = %e.message, "transactional produce not verified");
            }
            (tp, (producer_id, guard, refused))
        })
        .collect();
    Verified { whole: None, partitions }
}

/// The Produce error for a coordinator's refusal code, as Kafka answers
/// Produce v11 clients.
fn refusal(code: i16) -> KafkaError {
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
    match error {
        ResponseError::InvalidTxnState | ResponseError::TransactionAbortable => {
            KafkaError::new(ResponseError::InvalidTxnState, "partition was not added to the transaction")
        }
        ResponseError::ProducerFenced => KafkaError::new(
            ResponseError::InvalidProducerEpoch,
            "the transaction coordinator fenced this producer epoch",
        ),
        ResponseError::ConcurrentTransactions
        | ResponseError::NetworkException
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::CoordinatorNotAvailable
        | ResponseError::NotCoordinator => KafkaError::new(
            ResponseError::NotEnoughReplicas,
            format!("unable to verify the partition has been added to the transaction; underlying error: {error:?}"),
        ),
        other => KafkaError::new(other, "the transaction coordinator refused the partition"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_refusals_become_the_codes_produce_v11_clients_handle() {
        let code = |e: ResponseError| refusal(e.code()).code();
        assert_eq!(code(ResponseError::InvalidTxnState), ResponseError::InvalidTxnState.code());
        assert_eq!(code(ResponseError::TransactionAbortable), ResponseError::InvalidTxnState.code());
        assert_eq!(code(ResponseError::ProducerFenced), ResponseError::InvalidProducerEpoch.code());
        for retriable in [
            ResponseError::ConcurrentTransactions,
            ResponseError::CoordinatorLoadInProgress,
            ResponseError::CoordinatorNotAvailable,
            ResponseError::NotCoordinator,
        ] {
            assert_eq!(code(retriable), ResponseError::NotEnoughReplicas.code(), "{retriable:?}");
        }
        assert_eq!(code(ResponseError::InvalidProducerIdMapping), ResponseError::InvalidProducerIdMapping.code());
    }
}
