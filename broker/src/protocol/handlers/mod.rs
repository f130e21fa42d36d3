//! One module per Kafka API: each turns a typed request into a typed response
//! against the broker's state. Handlers know nothing of sockets or framing.

mod api_versions;
mod cluster;
mod configs;
mod coordinator;
mod fetch;
mod group;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;
mod topics;

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::codec::RequestContext;
use crate::broker::Broker;
use crate::log::FileRecords;

pub use api_versions::api_versions_response;

/// A handler's answer.
#[derive(Debug)]
pub struct Response {
    /// The typed body.
    pub body: ResponseKind,
    /// For a fetch: per partition, in the body's order, the batches to send
    /// from their segment file in place of that partition's `records` field.
    /// Empty for every other API.
    pub file_records: Vec<Option<FileRecords>>,
}

impl From<ResponseKind> for Response {
    fn from(body: ResponseKind) -> Self {
        Response { body, file_records: Vec::new() }
    }
}

/// Answers one request; `None` when the API sends no response (acks=0 produce).
pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: RequestKind) -> Option<Response> {
    let v = ctx.api_version;
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions_response(0)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, r, v).await),
        RequestKind::Produce(r) => return produce::handle(broker, r, v).await.map(|r| ResponseKind::Produce(r).into()),
        RequestKind::Fetch(r) => {
            let (body, file_records) = fetch::handle(broker, r, v).await;
            return Some(Response { body: ResponseKind::Fetch(body), file_records });
        }
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(broker, r, v).await),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create_topics(broker, r, v).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(topics::delete_topics(broker, r, v).await),
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(topics::create_partitions(broker, r, v).await)
        }
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(configs::describe(broker, r, v)),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(broker, r, v).await)
        }
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(producer_id::handle(broker, r, v).await),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(cluster::describe(broker, r, v)),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(group::find_coordinator(broker, r, v)),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(group::join_group(broker, ctx, r, v).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(group::sync_group(broker, r, v).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(group::heartbeat(broker, r, v)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(group::leave_group(broker, r, v)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(group::offset_commit(broker, r, v).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(group::offset_fetch(broker, r, v)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(group::describe_groups(broker, r, v)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(group::list_groups(broker, r, v)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(group::delete_groups(broker, r, v).await),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(group::offset_delete(broker, r, v).await),
        other => {
            // The codec only lets served APIs through; this is a bug, not input.
            tracing::error!(api = ?ctx.api_key, "no handler for a served API: {other:?}");
            return None;
        }
    };
    Some(response.into())
}

/// Owned string to the crate's string type.
fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Runs blocking file work off the reactor threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
