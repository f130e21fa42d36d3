//! InitProducerId: gives an idempotent producer its id and epoch.
//!
//! Ids come from blocks the controller quorum reserves for this broker, so an
//! id is never handed out twice in the cluster, even across restarts. A producer that asks again with
//! its current id and epoch (KIP-360, after a sequence error) gets the same
//! id with the next epoch, which fences its older incarnation. Transactional
//! ids are refused: transactions are not supported yet, and FindCoordinator
//! already answers COORDINATOR_NOT_AVAILABLE for transaction coordinators.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;
use crate::protocol::errors::KafkaError;

pub async fn handle(broker: &Arc<Broker>, request: InitProducerIdRequest, _version: i16) -> InitProducerIdResponse {
    let fail = |e: KafkaError| {
        tracing::warn!(error = %e.message, "refused InitProducerId");
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return fail(KafkaError::new(
            ResponseError::CoordinatorNotAvailable,
            "transactional producers are not supported yet; use an idempotent producer without transactional.id",
        ));
    }
    let (current_id, current_epoch) = (request.producer_id.0, request.producer_epoch);
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
