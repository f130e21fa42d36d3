//! InitProducerId: gives an idempotent producer its id and epoch.
//!
//! Ids come from blocks the controller quorum reserves for this broker, so an
//! id is never handed out twice in the cluster, even across restarts. A producer that asks again with
//! its current id and epoch (KIP-360, after a sequence error) gets the same
//! id with the next epoch, which fences its older incarnation. A
//! transactional producer is answered by the transaction coordinator
//! ([`crate::txn`]), which keeps its id and bumps its epoch.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;
use crate::protocol::errors::KafkaError;

pub async fn handle(broker: &Arc<Broker>, request: InitProducerIdRequest, version: i16) -> InitProducerIdResponse {
    let fail = |e: KafkaError| {
        tracing::warn!(error = %e.message, "refused InitProducerId");
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let (current_id, current_epoch) = (request.producer_id.0, request.producer_epoch);
    if let Some(id) = request.transactional_id.as_ref() {
        let expected = (current_id >= 0).then_some((current_id, current_epoch));
        let allocate = || async { broker.allocate_producer_id().await.map_err(|e| e.to_string()) };
        return match broker.txns.init_producer_id(id.as_str(), request.transaction_timeout_ms, expected, allocate).await
        {
            Ok((pid, epoch)) => {
                InitProducerIdResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch)
            }
            Err(e) => {
                let k = KafkaError::for_txn(&e, version, 4);
                tracing::debug!(transactional_id = %id.as_str(), error = %k.message, "InitProducerId refused");
                InitProducerIdResponse::default()
                    .with_error_code(k.code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
            }
        };
    }
    if current_id >= 0 && (0..i16::MAX - 1).contains(&current_epoch) {
        return InitProducerIdResponse::default()
            .with_producer_id(ProducerId(current_id))
            .with_producer_epoch(current_epoch + 1);
    }
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => fail(KafkaError::from(&crate::admin::AdminError::from(e))),
    }
}
