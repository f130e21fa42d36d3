//! DescribeCluster: brokers, controller and cluster id (KIP-700).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::broker::Broker;

/// Endpoint type for brokers (1); controllers (2) are not exposed to clients.
const ENDPOINT_BROKERS: i8 = 1;

pub fn describe(
    broker: &Arc<Broker>,
    ctx: &crate::protocol::codec::RequestContext,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let view = broker.metadata.read();
    let response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(view.cluster_id().to_string()))
        .with_controller_id(BrokerId(view.controller_id()))
        .with_cluster_authorized_operations(i32::MIN);
    if version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        return response
            .with_endpoint_type(request.endpoint_type)
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("only broker endpoints (type 1) are served")));
    }
    let brokers = view
        .brokers_on(ctx.listener.as_deref())
        .iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host.clone()))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect();
    response.with_brokers(brokers)
}
