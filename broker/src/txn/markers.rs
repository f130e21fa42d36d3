//! Sending COMMIT/ABORT markers to partition leaders: the client side of the
//! internal `TxnMarkers` service (proto/proto/transactions.proto), which
//! every broker serves for the partitions it leads.
//!
//! [`MarkerSender`] is what the coordinator is given; [`GrpcMarkers`] is its
//! implementation. It groups a marker's partitions by their current leader
//! and calls each leader once: this broker through the replica layer's
//! marker door directly ([`crate::txn_markers_service::write_markers`]),
//! another over the internal plane (mutual TLS when the broker has it,
//! requiring the peer's certificate to name the leader's broker id, as the
//! replication client does). It reports a Kafka error code per partition; a
//! leader that cannot be reached gives every one of its partitions a
//! retriable code. Retrying is the coordinator's business.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use strom_proto::transactions::txn_markers_client::TxnMarkersClient;
use strom_proto::transactions::{TopicPartitions, TxnMarker, WriteTxnMarkersRequest};
use tonic::transport::Channel;

use super::state::TxnPartition;
use crate::broker::Broker;
use crate::log::TopicPartition;
use crate::replica::txn_markers::MarkerWrite;

/// One marker to write: the transaction's producer, its outcome, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerRequest {
    /// Producer id.
    pub producer_id: i64,
    /// The epoch the marker carries.
    pub producer_epoch: i16,
    /// COMMIT (true) or ABORT.
    pub committed: bool,
    /// The coordinator's epoch (leader epoch of its `__transaction_state` partition).
    pub coordinator_epoch: i32,
    /// The partitions.
    pub partitions: Vec<TxnPartition>,
    /// The transaction's transaction.version: from 2 the marker's epoch is
    /// the bumped one, and a partition whose producer already has a
    /// transaction open at that epoch refuses it (it cannot be this one's).
    pub transaction_version: i16,
}

/// The outcome per partition: (topic, partition, Kafka error code; 0 = written).
pub type MarkerResults = Vec<(String, i32, i16)>;

/// Writes markers to partition leaders.
pub trait MarkerSender: Send + Sync + std::fmt::Debug + 'static {
    /// Writes `marker` to each of its partitions' leaders; one result per partition.
    fn send(&self, marker: MarkerRequest) -> BoxFuture<'static, MarkerResults>;
}

/// What a marker result means for the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// Written (or the partition is gone, as Kafka treats a deleted topic).
    Done,
    /// A newer coordinator owns the transaction: stop sending.
    Fenced,
    /// Try again (leader moved, not replicated yet, unreachable, ...).
    Retry,
}

/// Classifies a partition's marker error code.
pub fn outcome(code: i16) -> MarkerOutcome {
    if code == 0 || code == ResponseError::UnknownTopicOrPartition.code() {
        MarkerOutcome::Done
    } else if code == ResponseError::TransactionCoordinatorFenced.code()
        || code == ResponseError::InvalidProducerEpoch.code()
    {
        // As Kafka: the producer or coordinator epoch moved on; this
        // coordinator's markers for the transaction are obsolete.
        MarkerOutcome::Fenced
    } else {
        MarkerOutcome::Retry
    }
}

/// How long one call to a leader may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// [`MarkerSender`] over the internal `TxnMarkers` gRPC service.
#[derive(Debug)]
pub struct GrpcMarkers {
    broker: Weak<Broker>,
    channels: Mutex<HashMap<(String, i32), Channel>>,
}

impl GrpcMarkers {
    /// A sender that finds leaders in `broker`'s metadata (held weakly: the broker owns the coordinator).
    pub fn new(broker: Weak<Broker>) -> Arc<GrpcMarkers> {
        Arc::new(GrpcMarkers { broker, channels: Mutex::new(HashMap::new()) })
    }

    fn client(&self, broker: &Broker, endpoint: &str, id: i32) -> Result<TxnMarkersClient<Channel>, String> {
        let key = (endpoint.to_string(), id);
        let mut channels = self.channels.lock();
        let channel = match channels.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = crate::tls::channel(broker.internal_tls.as_ref(), endpoint, Some(id), Some(CALL_TIMEOUT))
                    .map_err(|e| format!("cannot make a channel to broker {id} at {endpoint}: {e}"))?;
                channels.insert(key, c.clone());
                c
            }
        };
        Ok(TxnMarkersClient::new(channel))
    }
}

impl MarkerSender for GrpcMarkers {
    fn send(&self, marker: MarkerRequest) -> BoxFuture<'static, MarkerResults> {
        let not_leader = ResponseError::NotLeaderOrFollower.code();
        let Some(broker) = self.broker.upgrade() else {
            let all = marker.partitions.iter().map(|(t, p)| (t.clone(), *p, not_leader)).collect();
            return Box::pin(std::future::ready(all));
        };
        // Leaders from the published metadata; endpoints from the image.
        let mut results: MarkerResults = Vec::new();
        let mut by_leader: BTreeMap<i32, Vec<TxnPartition>> = BTreeMap::new();
        {
            let view = broker.metadata.read();
            for (topic, p) in &marker.partitions {
                match view.topic(topic) {
                    None => results.push((topic.clone(), *p, ResponseError::UnknownTopicOrPartition.code())),
                    Some(t) => match t.partitions.get(*p as usize).map(|m| m.leader) {
                        Some(leader) if leader >= 0 => by_leader.entry(leader).or_default().push((topic.clone(), *p)),
                        Some(_) => results.push((topic.clone(), *p, ResponseError::LeaderNotAvailable.code())),
                        None => results.push((topic.clone(), *p, ResponseError::UnknownTopicOrPartition.code())),
                    },
                }
            }
        }
        let image = broker.controller.image();
        let mut calls: Vec<BoxFuture<'static, MarkerResults>> = Vec::new();
        if let Some(local) = by_leader.remove(&broker.config.node_id) {
            let write = MarkerWrite {
                producer_id: marker.producer_id,
                producer_epoch: marker.producer_epoch,
                committed: marker.committed,
                coordinator_epoch: marker.coordinator_epoch,
                transaction_version: marker.transaction_version,
                partitions: local.iter().map(|(t, p)| TopicPartition::new(t.clone(), *p)).collect(),
            };
            let broker = broker.clone();
            calls.push(Box::pin(async move {
                crate::txn_markers_service::write_markers(&broker, vec![write])
                    .await
                    .into_iter()
                    .flatten()
                    .map(|o| (o.partition.topic, o.partition.partition, o.error_code))
                    .collect()
            }));
        }
        for (leader, partitions) in by_leader {
            let endpoint = image.brokers.get(&leader).map(|b| b.internal_endpoint.clone());
            let client = endpoint
                .ok_or_else(|| format!("broker {leader} is not in the metadata"))
                .and_then(|e| self.client(&broker, &e, leader));
            let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (t, p) in &partitions {
                topics.entry(t.clone()).or_default().push(*p);
            }
            let request = WriteTxnMarkersRequest {
                markers: vec![TxnMarker {
                    producer_id: marker.producer_id,
                    producer_epoch: marker.producer_epoch as i32,
                    committed: marker.committed,
                    coordinator_epoch: marker.coordinator_epoch,
                    transaction_version: i32::from(marker.transaction_version),
                    topics: topics
                        .into_iter()
                        .map(|(topic, partitions)| TopicPartitions { topic, partitions })
                        .collect(),
                }],
            };
            calls.push(Box::pin(async move {
                let answer = match client {
                    Ok(mut c) => match tokio::time::timeout(CALL_TIMEOUT, c.write_txn_markers(request)).await {
                        Ok(Ok(r)) => Ok(r.into_inner()),
                        Ok(Err(status)) => Err(format!("{}: {}", status.code(), status.message())),
                        Err(_) => Err("timed out".to_string()),
                    },
                    Err(e) => Err(e),
                };
                match answer {
                    Ok(r) => {
                        let mut out: MarkerResults = r
                            .markers
                            .into_iter()
                            .flat_map(|m| m.partitions)
                            .map(|p| (p.topic, p.partition, i16::try_from(p.error_code).unwrap_or(-1)))
                            .collect();
                        // A partition the leader did not answer for is retried.
                        for (t, p) in &partitions {
                            if !out.iter().any(|(ot, op, _)| ot == t && op == p) {
                                out.push((t.clone(), *p, not_leader));
                            }
                        }
                        out
                    }
                    Err(e) => {
                        tracing::warn!(leader, error = %e, "cannot write transaction markers; retrying");
                        partitions.into_iter().map(|(t, p)| (t, p, not_leader)).collect()
                    }
                }
            }));
        }
        Box::pin(async move {
            for answered in futures::future::join_all(calls).await {
                results.extend(answered);
            }
            results
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_codes_are_classified_as_kafka_does() {
        assert_eq!(outcome(0), MarkerOutcome::Done);
        assert_eq!(outcome(ResponseError::UnknownTopicOrPartition.code()), MarkerOutcome::Done);
        assert_eq!(outcome(ResponseError::TransactionCoordinatorFenced.code()), MarkerOutcome::Fenced);
        assert_eq!(outcome(ResponseError::InvalidProducerEpoch.code()), MarkerOutcome::Fenced);
        assert_eq!(outcome(ResponseError::NotLeaderOrFollower.code()), MarkerOutcome::Retry);
        assert_eq!(outcome(ResponseError::NotEnoughReplicas.code()), MarkerOutcome::Retry);
        assert_eq!(outcome(-1), MarkerOutcome::Retry);
    }
}
