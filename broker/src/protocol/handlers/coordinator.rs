//! FindCoordinator: which broker coordinates a group (or a transactional id).
//!
//! The coordinator of a group is the leader of its `__consumer_offsets`
//! partition; on a single node that is always this broker. Transaction
//! coordinators are not served yet: COORDINATOR_NOT_AVAILABLE with a message.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::Broker;

const KEY_TYPE_GROUP: i8 = 0;

pub fn find(broker: &Arc<Broker>, request: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let lookup = |key: StrBytes| -> Coordinator {
        let c = &broker.config;
        if request.key_type != KEY_TYPE_GROUP {
            return Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes("transaction coordinators are not supported yet")));
        }
        Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(c.node_id))
            .with_host(str_bytes(c.advertise.host.clone()))
            .with_port(c.advertise.port as i32)
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
