//! One module per Kafka API: each turns a typed request into a typed response
//! against the broker's state. Handlers know nothing of sockets or framing.

mod acls;
mod alter_configs;
mod api_versions;
mod client_quotas;
mod cluster;
mod configs;
mod consumer_group;
mod coordinator;
mod delete_records;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod fetch;
mod group;
mod group_configs;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod producer_id;
mod scram;
mod topics;
mod txn;
mod txn_markers;

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::authz::{self, Gate};
use super::codec::RequestContext;
use crate::auth::access::Access;
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
/// The request is first authorized ([`authz`]): refused whole, or narrowed
/// to what its principal may do and the refused parts added to the answer.
pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: RequestKind) -> Option<Response> {
    let access = Access::of(broker, ctx);
    let (request, patch) = match authz::before(broker, &access, ctx.api_key, request, ctx.api_version) {
        Gate::Refuse(body) => return Some(body.into()),
        Gate::Pass(request, patch) => (request, patch),
        Gate::Drop => return None,
    };
    let mut response = dispatch(broker, ctx, &access, request).await?;
    authz::after(&access, ctx.api_version, patch, &mut response.body, &mut response.file_records);
    Some(response)
}

async fn dispatch(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    access: &Access<'_>,
    request: RequestKind,
) -> Option<Response> {
    let v = ctx.api_version;
    let response = match request {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(api_versions_response(0, broker.txns.config().transaction_version))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, ctx, r, v).await),
        RequestKind::Produce(r) => return produce::handle(broker, r, v).await.map(|r| ResponseKind::Produce(r).into()),
        RequestKind::Fetch(r) => {
            let (body, file_records) = fetch::handle(broker, r, v).await;
            return Some(Response { body: ResponseKind::Fetch(body), file_records });
        }
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(broker, r, v).await),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r, v).await)
        }
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create_topics(broker, ctx, r, v).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(topics::delete_topics(broker, ctx, r, v).await),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::handle(broker, r, v).await),
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(describe_log_dirs::handle(broker, r, v).await),
        RequestKind::DescribeQuorum(r) => ResponseKind::DescribeQuorum(describe_quorum::handle(broker, r, v).await),
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(topics::create_partitions(broker, ctx, r, v).await)
        }
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(configs::describe(broker, r, v)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(alter_configs::handle(broker, r, v).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(broker, r, v).await)
        }
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(producer_id::handle(broker, r, v).await),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(cluster::describe(broker, ctx, r, v)),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(group::find_coordinator(broker, ctx, r, v)),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(group::join_group(broker, ctx, r, v).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(group::sync_group(broker, r, v).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(group::heartbeat(broker, r, v)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(group::leave_group(broker, r, v)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(group::offset_commit(broker, r, v).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(group::offset_fetch(broker, r, v)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(group::describe_groups(broker, r, v)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(group::list_groups(broker, r, v)),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_group::heartbeat(broker, ctx, r, v))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group::describe(broker, r, v))
        }
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(group::delete_groups(broker, r, v).await),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(group::offset_delete(broker, r, v).await),
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(txn::add_partitions(broker, r, v).await),
        RequestKind::AddOffsetsToTxn(r) => ResponseKind::AddOffsetsToTxn(txn::add_offsets(broker, r, v).await),
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(broker, r, v).await),
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(txn::describe(broker, r, v)),
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(txn::list(broker, r, v)),
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(broker, r, v).await),
        RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(describe_producers::handle(broker, r, v)),
        RequestKind::WriteTxnMarkers(r) => ResponseKind::WriteTxnMarkers(txn_markers::handle(broker, r, v).await),
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(scram::alter(broker, r, v).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(scram::describe(broker, r, v))
        }
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create(broker, access, r).await),
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe(access, r)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete(broker, access, r).await),
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(client_quotas::describe(broker, r, v))
        }
        RequestKind::AlterClientQuotas(r) => ResponseKind::AlterClientQuotas(client_quotas::alter(broker, r, v).await),
        other => {
            // The codec only lets served APIs through; this is a bug, not input.
            tracing::error!(api = ?ctx.api_key, "no handler for a served API: {other:?}");
            return None;
        }
    };
    Some(response.into())
}

/// Owned string to the crate's string type.
pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Runs blocking file work off the reactor threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
