//! FindCoordinator: which broker coordinates a group (or a transactional id).
//!
//! The coordinator of a group is the leader of its `__consumer_offsets`
//! partition (Kafka's hash of the group id); while that topic does not exist
//! yet or the partition has no leader, the answer is COORDINATOR_NOT_AVAILABLE
//! and clients retry. Transaction
//! coordinators are not served yet: COORDINATOR_NOT_AVAILABLE with a message.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::Broker;
use crate::group::{OFFSETS_TOPIC, partition_for};

const KEY_TYPE_GROUP: i8 = 0;

pub fn find(broker: &Arc<Broker>, request: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let lookup = |key: StrBytes| -> Coordinator {
        if request.key_type != KEY_TYPE_GROUP {
            return Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes("transaction coordinators are not supported yet")));
        }
        let view = broker.metadata.read();
        let leader = view.topic(OFFSETS_TOPIC).and_then(|t| {
            let p = partition_for(key.as_str(), t.partitions.len());
            let leader = t.partitions.get(p)?.leader;
            view.brokers().iter().find(|b| b.id == leader).cloned()
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
                    "the group's {OFFSETS_TOPIC} partition has no leader yet; retry"
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
