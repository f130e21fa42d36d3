//! FindCoordinator: which broker coordinates a group (or a transactional id).
//!
//! The coordinator of a group is the leader of its `__consumer_offsets`
//! partition (Kafka's hash of the group id), and that of a transactional id
//! the leader of its `__transaction_state` partition (the same hash); while
//! the topic does not exist yet or the partition has no leader, the answer is
//! COORDINATOR_NOT_AVAILABLE and clients retry. The first lookup of a
//! transactional id creates `__transaction_state`, as in Kafka. The address
//! answered is the coordinator's on the listener the client connected to.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::Broker;
use crate::group::{OFFSETS_TOPIC, partition_for};
use crate::txn::TXN_STATE_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn find(
    broker: &Arc<Broker>,
    listener: Option<&str>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (topic, what) = match request.key_type {
        KEY_TYPE_GROUP => (OFFSETS_TOPIC, "group"),
        KEY_TYPE_TRANSACTION => {
            crate::txn::ensure_topic(broker);
            (TXN_STATE_TOPIC, "transactional id")
        }
        other => {
            let c = Coordinator::default()
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(format!(
                    "unknown coordinator key type {other} (0: group, 1: transaction)"
                ))));
            let keys = if version >= 4 { request.coordinator_keys.clone() } else { vec![request.key.clone()] };
            let coordinators: Vec<Coordinator> = keys.into_iter().map(|k| c.clone().with_key(k)).collect();
            if version >= 4 {
                return FindCoordinatorResponse::default().with_coordinators(coordinators);
            }
            return FindCoordinatorResponse::default()
                .with_error_code(c.error_code)
                .with_error_message(c.error_message)
                .with_node_id(c.node_id)
                .with_port(-1);
        }
    };
    let lookup = |key: StrBytes| -> Coordinator {
        let view = broker.metadata.read();
        let leader = view.topic(topic).and_then(|t| {
            let p = partition_for(key.as_str(), t.partitions.len());
            let leader = t.partitions.get(p)?.leader;
            view.brokers_on(listener).iter().find(|b| b.id == leader).cloned()
        });
        match leader {
            Some(b) => Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port),
            None => Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes(format!(
                    "the {what}'s {topic} partition has no leader yet; retry"
                )))),
        }
    };
    if version >= 4 {
        let coordinators = request.coordinator_keys.iter().cloned().map(lookup).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = lookup(request.key.clone());
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
