//! The internal `TxnMarkers` gRPC service (`strom.transactions.v1`): a
//! transaction coordinator on another broker asks this one, as partition
//! leader, to write COMMIT/ABORT markers. It and the Kafka API
//! WriteTxnMarkers both go through [`write_markers`], which hands the broker
//! to the replica layer's single door
//! ([`crate::replica::txn_markers::write_txn_markers`]).
//!
//! With internal TLS only brokers may call (their certificate names a
//! broker id); the operator or an unidentified caller gets
//! PERMISSION_DENIED and nothing is written. On an insecure internal
//! listener nobody is authenticated, as for the other internal services.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use strom_proto::transactions::txn_markers_server::{TxnMarkers, TxnMarkersServer};
use strom_proto::transactions::{MarkerResult, PartitionResult, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use tonic::{Request, Response, Status};

use crate::broker::Broker;
use crate::log::TopicPartition;
use crate::replica::txn_markers::{MarkerContext, MarkerOutcome, MarkerWrite, write_txn_markers};
use crate::tls::{Caller, Identity};

/// How long a marker may take to be committed before it is answered
/// REQUEST_TIMED_OUT (the coordinator then retries).
pub const MARKER_COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

impl MarkerContext for Broker {
    fn partition_exists(&self, tp: &TopicPartition) -> bool {
        self.metadata
            .read()
            .topic(&tp.topic)
            .is_some_and(|t| tp.partition >= 0 && (tp.partition as usize) < t.partitions.len())
    }

    fn min_insync_replicas(&self, topic: &str) -> usize {
        crate::admin::topic_min_insync_replicas(self, topic)
    }

    fn marker_committed(&self, marker: &MarkerWrite, partition: &TopicPartition) {
        if partition.topic == crate::group::OFFSETS_TOPIC && partition.partition >= 0 {
            self.groups.end_transaction(partition.partition as usize, marker.producer_id, marker.committed);
        }
    }
}

/// Writes `markers` on the partitions this broker leads (see
/// [`write_txn_markers`]): per marker, per partition, in request order.
pub async fn write_markers(broker: &Arc<Broker>, markers: Vec<MarkerWrite>) -> Vec<Vec<MarkerOutcome>> {
    write_txn_markers(&broker.replicas, broker.clone(), markers, MARKER_COMMIT_TIMEOUT).await
}

/// The `TxnMarkers` service of one broker.
pub struct TxnMarkersService {
    broker: Arc<Broker>,
}

impl TxnMarkersService {
    /// The service, as a tonic server.
    pub fn server(broker: Arc<Broker>) -> TxnMarkersServer<TxnMarkersService> {
        TxnMarkersServer::new(TxnMarkersService { broker })
    }
}

/// Admits brokers only (anyone on an insecure listener).
#[allow(clippy::result_large_err)] // tonic's Status
fn authorize(caller: &Caller) -> Result<(), Status> {
    match caller {
        Caller::Insecure | Caller::Authenticated(Identity::Broker(_)) => Ok(()),
        Caller::Authenticated(identity) => {
            tracing::warn!(%identity, "refused a WriteTxnMarkers call from a non-broker");
            Err(Status::permission_denied(format!(
                "{identity} may not write transaction markers: only brokers (transaction coordinators) may"
            )))
        }
        Caller::Unidentified(reason) => Err(Status::permission_denied(format!("unidentified caller: {reason}"))),
    }
}

#[tonic::async_trait]
impl TxnMarkers for TxnMarkersService {
    async fn write_txn_markers(
        &self,
        request: Request<WriteTxnMarkersRequest>,
    ) -> Result<Response<WriteTxnMarkersResponse>, Status> {
        authorize(&crate::tls::caller(&request))?;
        let request = request.into_inner();
        // Markers whose producer epoch does not fit Kafka's i16 are refused
        // per partition; the others are written.
        let mut writes = Vec::new();
        let mut answers: Vec<Option<MarkerResult>> = Vec::new();
        for m in &request.markers {
            let partitions: Vec<TopicPartition> = m
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.topic.clone(), *p)))
                .collect();
            match i16::try_from(m.producer_epoch) {
                Ok(producer_epoch) => {
                    writes.push(MarkerWrite {
                        producer_id: m.producer_id,
                        producer_epoch,
                        committed: m.committed,
                        coordinator_epoch: m.coordinator_epoch,
                        transaction_version: i16::try_from(m.transaction_version).unwrap_or(0),
                        partitions,
                    });
                    answers.push(None);
                }
                Err(_) => answers.push(Some(MarkerResult {
                    producer_id: m.producer_id,
                    partitions: partitions
                        .iter()
                        .map(|tp| PartitionResult {
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            error_code: i32::from(ResponseError::InvalidRequest.code()),
                            error_message: format!(
                                "producer epoch {} is outside Kafka's range 0..={}",
                                m.producer_epoch,
                                i16::MAX
                            ),
                        })
                        .collect(),
                })),
            }
        }
        let ids: Vec<i64> = writes.iter().map(|w| w.producer_id).collect();
        let mut written = write_markers(&self.broker, writes).await.into_iter().zip(ids);
        let markers = answers
            .into_iter()
            .filter_map(|answer| {
                answer.or_else(|| {
                    written.next().map(|(outcomes, producer_id)| MarkerResult {
                        producer_id,
                        partitions: outcomes
                            .into_iter()
                            .map(|o| PartitionResult {
                                topic: o.partition.topic,
                                partition: o.partition.partition,
                                error_code: i32::from(o.error_code),
                                error_message: o.message,
                            })
                            .collect(),
                    })
                })
            })
            .collect();
        Ok(Response::new(WriteTxnMarkersResponse { markers }))
    }
}
