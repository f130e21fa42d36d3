//! The internal `TxnCoordinator` gRPC service (`strom.transactions.v1`): a
//! partition leader asks the coordinator of a transactional id whether the
//! partitions of a transactional produce are part of the producer's open
//! transaction (KIP-890 verification), so no produce outside a transaction
//! can hold a partition's last stable offset. With `add` (transaction.version
//! 2: Produce v12+, TxnOffsetCommit v5+, whose clients send no
//! AddPartitionsToTxn/AddOffsetsToTxn) the coordinator adds them instead,
//! as Kafka's AddPartitionsToTxn v5 from a broker does.
//!
//! Per partition: 0 when it is in the open transaction; else Kafka's code —
//! INVALID_TXN_STATE (not added), PRODUCER_FENCED (stale epoch),
//! INVALID_PRODUCER_ID_MAPPING (unknown id or producer), CONCURRENT_TRANSACTIONS
//! (the transaction is ending), NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS
//! / COORDINATOR_NOT_AVAILABLE (ask again, after finding the coordinator).
//!
//! With internal TLS only brokers may call; on an insecure internal listener
//! nobody is authenticated, as for the other internal services.

use std::sync::Arc;

use strom_proto::transactions::txn_coordinator_server::{TxnCoordinator as TxnCoordinatorRpc, TxnCoordinatorServer};
use strom_proto::transactions::{PartitionResult, VerifyTxnPartitionsRequest, VerifyTxnPartitionsResponse};
use tonic::{Request, Response, Status};

use super::TxnCoordinator;
use super::state::TxnPartition;
use crate::protocol::errors::KafkaError;
use crate::tls::{Caller, Identity};

/// The `TxnCoordinator` service of one broker.
pub struct TxnCoordinatorService {
    txns: Arc<TxnCoordinator>,
}

impl TxnCoordinatorService {
    /// The service, as a tonic server.
    pub fn server(txns: Arc<TxnCoordinator>) -> TxnCoordinatorServer<TxnCoordinatorService> {
        TxnCoordinatorServer::new(TxnCoordinatorService { txns })
    }
}

/// Admits brokers only (anyone on an insecure listener).
#[allow(clippy::result_large_err)] // tonic's Status
fn authorize(caller: &Caller) -> Result<(), Status> {
    match caller {
        Caller::Insecure | Caller::Authenticated(Identity::Broker(_)) => Ok(()),
        Caller::Authenticated(identity) => Err(Status::permission_denied(format!(
            "{identity} may not verify transactional partitions: only brokers (partition leaders) may"
        ))),
        Caller::Unidentified(reason) => Err(Status::permission_denied(format!("unidentified caller: {reason}"))),
    }
}

/// Answers a verification (or an add): one result per partition asked, in order.
pub async fn verify(txns: &TxnCoordinator, request: &VerifyTxnPartitionsRequest) -> VerifyTxnPartitionsResponse {
    let partitions: Vec<TxnPartition> =
        request.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p))).collect();
    let epoch = i16::try_from(request.producer_epoch).unwrap_or(-1);
    let results = if request.add {
        let added = txns.add_partitions_at(&request.transactional_id, request.producer_id, epoch, &partitions, 2).await;
        partitions.iter().map(|_| added.clone()).collect()
    } else {
        match txns.verify(&request.transactional_id, request.producer_id, epoch, &partitions) {
            Ok(per_partition) => per_partition,
            Err(e) => partitions.iter().map(|_| Err(e.clone())).collect(),
        }
    };
    VerifyTxnPartitionsResponse {
        partitions: partitions
            .into_iter()
            .zip(results)
            .map(|((topic, partition), result)| {
                let (error_code, error_message) = match result {
                    Ok(()) => (0, String::new()),
                    Err(e) => {
                        let k = KafkaError::from(&e);
                        (i32::from(k.code()), k.message)
                    }
                };
                PartitionResult { topic, partition, error_code, error_message }
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl TxnCoordinatorRpc for TxnCoordinatorService {
    async fn verify_txn_partitions(
        &self,
        request: Request<VerifyTxnPartitionsRequest>,
    ) -> Result<Response<VerifyTxnPartitionsResponse>, Status> {
        authorize(&crate::tls::caller(&request))?;
        Ok(Response::new(verify(&self.txns, request.get_ref()).await))
    }
}

/// Asks the coordinator of `transactional_id` — this broker's, or another's
/// over the internal `TxnCoordinator` service — whether `partitions` are in
/// the producer's open transaction or, with `add`, to add them. One Kafka
/// error code per partition (0: yes, or added); a coordinator that cannot
/// be found or reached answers COORDINATOR_NOT_AVAILABLE (retriable).
pub async fn verify_anywhere(
    broker: &Arc<crate::broker::Broker>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TxnPartition],
    add: bool,
) -> Vec<i16> {
    use kafka_protocol::error::ResponseError;
    use strom_proto::transactions::TopicPartitions;
    use strom_proto::transactions::txn_coordinator_client::TxnCoordinatorClient;

    let unavailable = || partitions.iter().map(|_| ResponseError::CoordinatorNotAvailable.code()).collect::<Vec<_>>();
    let leader = {
        let view = broker.metadata.read();
        view.topic(super::TXN_STATE_TOPIC).and_then(|t| {
            let p = super::partition_for(transactional_id, t.partitions.len());
            t.partitions.get(p).map(|m| m.leader).filter(|l| *l >= 0)
        })
    };
    let Some(leader) = leader else {
        return unavailable();
    };
    let mut topics: Vec<TopicPartitions> = Vec::new();
    for (t, p) in partitions {
        match topics.iter_mut().find(|x| x.topic == *t) {
            Some(x) => x.partitions.push(*p),
            None => topics.push(TopicPartitions { topic: t.clone(), partitions: vec![*p] }),
        }
    }
    let request = VerifyTxnPartitionsRequest {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch: i32::from(producer_epoch),
        topics,
        add,
    };
    let response = if leader == broker.config.node_id {
        verify(&broker.txns, &request).await
    } else {
        let Some(endpoint) = broker.controller.image().brokers.get(&leader).map(|b| b.internal_endpoint.clone()) else {
            return unavailable();
        };
        let timeout = std::time::Duration::from_secs(10);
        let channel = match crate::tls::channel(broker.internal_tls.as_ref(), &endpoint, Some(leader), Some(timeout)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(leader, error = %e, "cannot reach the transaction coordinator to verify");
                return unavailable();
            }
        };
        let mut client = TxnCoordinatorClient::new(channel);
        match tokio::time::timeout(timeout, client.verify_txn_partitions(request)).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => {
                tracing::warn!(leader, %status, "the transaction coordinator refused a verification");
                return unavailable();
            }
            Err(_) => return unavailable(),
        }
    };
    partitions
        .iter()
        .map(|(t, p)| {
            response
                .partitions
                .iter()
                .find(|r| r.topic == *t && r.partition == *p)
                .map_or(ResponseError::CoordinatorNotAvailable.code(), |r| {
                    i16::try_from(r.error_code).unwrap_or(ResponseError::UnknownServerError.code())
                })
        })
        .collect()
}
