//! Authorization of Kafka requests: the one place that decides, per API,
//! which parts of a request its principal may do, as Kafka's `KafkaApis`
//! does, so the handlers stay unaware of ACLs.
//!
//! [`before`] looks at a request with the request's [`Access`] and either
//! refuses it whole (an answer built here, the handler not called) or passes
//! it on, narrowed to what is allowed, with a [`Patch`]; [`after`] applies
//! the patch to the handler's answer: the entries left out come back with
//! Kafka's error (TOPIC_AUTHORIZATION_FAILED per partition,
//! GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED,
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED), and listings drop what the
//! principal may not describe. With the authorizer off every request passes
//! untouched.
//!
//! The per-API rules are in [`data`] (produce, fetch, offsets, metadata),
//! [`admin`] (topics, configs, records, SCRAM users, client quotas,
//! cluster, producer ids), [`groups`] and [`txn`]. Every served API is listed in exactly one
//! of [`ROUTES`] (a test checks it against the versions table); a request of
//! an API no rule covers is refused without an answer (fail closed), never
//! passed unchecked. Requests of the internal gRPC plane never come here:
//! its callers are brokers and the operator.

mod admin;
mod data;
mod groups;
mod txn;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::auth::access::Access;
use crate::broker::Broker;

/// What to do with a request.
#[derive(Debug)]
pub enum Gate {
    /// Answer this; the handler is not called.
    Refuse(ResponseKind),
    /// Hand the (possibly narrowed) request to its handler, then apply the patch.
    Pass(RequestKind, Patch),
    /// No rule covers this API: the request is dropped unanswered (a bug
    /// the routing test guards against; failing closed is the safe side).
    Drop,
}

/// The rules that decide an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// [`data`].
    Data,
    /// [`admin`].
    Admin,
    /// [`groups`].
    Groups,
    /// [`txn`].
    Txn,
    /// No authority needed (version negotiation and authentication), or the
    /// handler checks its own (the ACL APIs need ALTER/DESCRIBE on the
    /// cluster, see `handlers::acls`).
    Unchecked,
}

/// Which rules decide each API.
pub const ROUTES: &[(Rules, &[ApiKey])] = &[
    (
        Rules::Data,
        &[ApiKey::Produce, ApiKey::Fetch, ApiKey::ListOffsets, ApiKey::OffsetForLeaderEpoch, ApiKey::Metadata],
    ),
    (
        Rules::Admin,
        &[
            ApiKey::CreateTopics,
            ApiKey::DeleteTopics,
            ApiKey::CreatePartitions,
            ApiKey::DescribeConfigs,
            ApiKey::IncrementalAlterConfigs,
            ApiKey::AlterConfigs,
            ApiKey::DeleteRecords,
            ApiKey::InitProducerId,
            ApiKey::DescribeCluster,
            ApiKey::DescribeLogDirs,
            ApiKey::DescribeQuorum,
            ApiKey::AlterUserScramCredentials,
            ApiKey::DescribeUserScramCredentials,
            ApiKey::AlterClientQuotas,
            ApiKey::DescribeClientQuotas,
        ],
    ),
    (
        Rules::Groups,
        &[
            ApiKey::FindCoordinator,
            ApiKey::JoinGroup,
            ApiKey::SyncGroup,
            ApiKey::Heartbeat,
            ApiKey::LeaveGroup,
            ApiKey::OffsetCommit,
            ApiKey::OffsetFetch,
            ApiKey::DescribeGroups,
            ApiKey::ListGroups,
            ApiKey::DeleteGroups,
            ApiKey::OffsetDelete,
            ApiKey::ConsumerGroupHeartbeat,
            ApiKey::ConsumerGroupDescribe,
        ],
    ),
    (
        Rules::Txn,
        &[
            ApiKey::AddPartitionsToTxn,
            ApiKey::AddOffsetsToTxn,
            ApiKey::EndTxn,
            ApiKey::TxnOffsetCommit,
            ApiKey::DescribeTransactions,
            ApiKey::ListTransactions,
            ApiKey::DescribeProducers,
            ApiKey::WriteTxnMarkers,
        ],
    ),
    (
        Rules::Unchecked,
        &[
            ApiKey::ApiVersions,
            ApiKey::SaslHandshake,
            ApiKey::SaslAuthenticate,
            ApiKey::CreateAcls,
            ApiKey::DescribeAcls,
            ApiKey::DeleteAcls,
        ],
    ),
];

/// The module whose rules decide `api`, if any.
fn route(api: ApiKey) -> Option<Rules> {
    ROUTES.iter().find(|(_, apis)| apis.contains(&api)).map(|(rules, _)| *rules)
}

/// A request that reached rules that do not cover it.
fn unrouted(request: RequestKind) -> Gate {
    tracing::error!("no authorization rule covers this request; dropping it: {request:?}");
    Gate::Drop
}

/// What to add to or remove from a handler's answer.
#[derive(Debug, Default)]
pub enum Patch {
    /// Nothing.
    #[default]
    None,
    /// Per-API entries to add or filter.
    Data(data::Patch),
    /// Per-API entries to add or filter.
    Admin(admin::Patch),
    /// Per-API entries to add or filter.
    Groups(groups::Patch),
    /// Per-API entries to add or filter.
    Txn(txn::Patch),
}

/// Decides what of `request` (of API `api`) its principal may do.
pub fn before(broker: &Broker, access: &Access<'_>, api: ApiKey, request: RequestKind, version: i16) -> Gate {
    if !access.enabled() {
        return Gate::Pass(request, Patch::None);
    }
    match route(api) {
        Some(Rules::Data) => data::before(broker, access, request, version),
        Some(Rules::Admin) => admin::before(broker, access, request, version),
        Some(Rules::Groups) => groups::before(access, request, version),
        Some(Rules::Txn) => txn::before(access, request),
        Some(Rules::Unchecked) => Gate::Pass(request, Patch::None),
        None => unrouted(request),
    }
}

/// Applies `patch` to the handler's answer (and its file-backed records, one
/// per fetch partition); fields the answer's `version` lacks are left unset.
pub fn after(
    access: &Access<'_>,
    version: i16,
    patch: Patch,
    body: &mut ResponseKind,
    file_records: &mut Vec<Option<crate::log::FileRecords>>,
) {
    match patch {
        Patch::None => {}
        Patch::Data(p) => data::after(access, p, body, file_records),
        Patch::Admin(p) => admin::after(p, body, version),
        Patch::Groups(p) => groups::after(access, p, body, version),
        Patch::Txn(p) => txn::after(access, p, body),
    }
}

/// The message Kafka clients log with an authorization error.
fn denied_message(access: &Access<'_>, what: &str) -> String {
    format!("{} is not authorized to {what}", access.principal())
}

/// The code of an error.
fn code(e: ResponseError) -> i16 {
    e.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::versions::SUPPORTED_APIS;

    #[test]
    fn every_served_api_has_exactly_one_authorization_rule() {
        for (api, _, _) in SUPPORTED_APIS {
            let modules: Vec<Rules> =
                ROUTES.iter().filter(|(_, apis)| apis.contains(api)).map(|(rules, _)| *rules).collect();
            assert_eq!(modules.len(), 1, "{api:?} is routed to {modules:?}: a served API needs exactly one rule");
        }
    }
}
