//! Client quota enforcement on the request path (KIP-219): what a request
//! cost is recorded against the quota of its connection's user and its
//! client id ([`crate::quota::QuotaManager`]), and the throttle it earned is
//! returned to the connection, which answers at once with that
//! `throttle_time_ms` and then reads nothing more from the client until the
//! throttle has passed.
//!
//! - Produce: the bytes of the request's record sets (`producer_byte_rate`);
//!   the records are appended either way, as in Kafka.
//! - Fetch: the bytes of the response's records (`consumer_byte_rate`); a
//!   fetch over the quota is answered empty, its bytes taken back, as
//!   Kafka answers it.
//! - CreateTopics, DeleteTopics, CreatePartitions: the partitions they
//!   created or deleted, counted by their handlers (`controller_mutation_rate`).
//! - Every other API: its handling time (`request_percentage`). Produce and
//!   Fetch are left out of it: their time is mostly waiting in a purgatory
//!   (replication, long polls), which is not handling, and their bytes have
//!   their own quotas.
//!
//! Must never: cost more than one atomic load per quota type when no quota
//! of that type is configured.

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use super::codec::RequestContext;
use super::handlers::Response;
use crate::broker::Broker;
use crate::quota::QuotaType;
use crate::quota::manager::request_time_value;

/// The bytes of a Produce request's record sets, when a producer quota is
/// configured (0 otherwise: nothing is measured).
pub fn produce_bytes(broker: &Broker, request: &RequestKind) -> u64 {
    let RequestKind::Produce(r) = request else { return 0 };
    if !broker.quotas.enabled(QuotaType::Produce) {
        return 0;
    }
    r.topic_data.iter().flat_map(|t| &t.partition_data).map(|p| p.records.as_ref().map_or(0, |b| b.len() as u64)).sum()
}

/// The bytes of a Fetch response's records.
fn fetch_bytes(response: &Response) -> u64 {
    let ResponseKind::Fetch(body) = &response.body else { return 0 };
    let inline: u64 = body
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |b| b.len() as u64))
        .sum();
    let files: u64 = response.file_records.iter().flatten().map(|f| f.len() as u64).sum();
    inline + files
}

/// Records what the request `ctx` cost — `produce_bytes` appended, the
/// records in `response`, `took` of handling — and returns the throttle it
/// earned (the longest of its quotas'), written into the response's
/// `throttle_time_ms` where the API has one. A throttled Fetch is emptied.
pub fn enforce(
    broker: &Broker,
    ctx: &RequestContext,
    produce_bytes: u64,
    took: Duration,
    response: Option<&mut Response>,
) -> Duration {
    let quotas = &broker.quotas;
    let fetch = ctx.api_key == ApiKey::Fetch && quotas.enabled(QuotaType::Fetch);
    let request = !matches!(ctx.api_key, ApiKey::Fetch | ApiKey::Produce) && quotas.enabled(QuotaType::Request);
    let mutation = matches!(ctx.api_key, ApiKey::CreateTopics | ApiKey::DeleteTopics | ApiKey::CreatePartitions)
        && quotas.enabled(QuotaType::ControllerMutation);
    if produce_bytes == 0 && !fetch && !request && !mutation {
        return Duration::ZERO;
    }
    let user = ctx.principal.name.as_str();
    let client_id = ctx.client_id.as_deref().unwrap_or("");
    let mut throttle = Duration::ZERO;
    let mut note = |t: QuotaType, wait: Duration| {
        if !wait.is_zero() {
            broker.metrics.record_quota_throttle(t.label(), wait);
            throttle = throttle.max(wait);
        }
    };
    if produce_bytes > 0 {
        note(QuotaType::Produce, quotas.record(QuotaType::Produce, user, client_id, produce_bytes as f64));
    }
    let mut response = response;
    if fetch && let Some(r) = response.as_deref_mut() {
        let bytes = fetch_bytes(r);
        let wait = quotas.record(QuotaType::Fetch, user, client_id, bytes as f64);
        if !wait.is_zero() {
            // As Kafka: the data is not sent, so it does not count; the
            // client fetches it again once the throttle has passed.
            quotas.unrecord(QuotaType::Fetch, user, client_id, bytes as f64);
            if let ResponseKind::Fetch(body) = &mut r.body {
                body.responses.clear();
            }
            r.file_records.clear();
        }
        note(QuotaType::Fetch, wait);
    }
    if mutation {
        // The handler counted the partitions; the throttle is what brings the rate back to the quota.
        note(QuotaType::ControllerMutation, quotas.record(QuotaType::ControllerMutation, user, client_id, 0.0));
    }
    if request {
        note(QuotaType::Request, quotas.record(QuotaType::Request, user, client_id, request_time_value(took)));
    }
    if let Some(r) = response {
        set_throttle_time(&mut r.body, ctx.api_version, throttle);
    }
    throttle
}

/// Writes `throttle` into a response's `throttle_time_ms`, for the APIs
/// and versions that have one among those clients send most (others are
/// muted all the same, their answer just does not say so).
fn set_throttle_time(body: &mut ResponseKind, version: i16, throttle: Duration) {
    let ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
    if ms == 0 {
        return;
    }
    let field = match body {
        ResponseKind::Produce(r) if version >= 1 => &mut r.throttle_time_ms,
        ResponseKind::Fetch(r) => &mut r.throttle_time_ms,
        ResponseKind::Metadata(r) if version >= 3 => &mut r.throttle_time_ms,
        ResponseKind::ListOffsets(r) if version >= 2 => &mut r.throttle_time_ms,
        ResponseKind::OffsetForLeaderEpoch(r) if version >= 2 => &mut r.throttle_time_ms,
        ResponseKind::ApiVersions(r) if version >= 1 => &mut r.throttle_time_ms,
        ResponseKind::FindCoordinator(r) if version >= 1 => &mut r.throttle_time_ms,
        ResponseKind::JoinGroup(r) if version >= 2 => &mut r.throttle_time_ms,
        ResponseKind::SyncGroup(r) if version >= 1 => &mut r.throttle_time_ms,
        ResponseKind::Heartbeat(r) if version >= 1 => &mut r.throttle_time_ms,
        ResponseKind::OffsetCommit(r) if version >= 3 => &mut r.throttle_time_ms,
        ResponseKind::OffsetFetch(r) if version >= 3 => &mut r.throttle_time_ms,
        ResponseKind::CreateTopics(r) if version >= 2 => &mut r.throttle_time_ms,
        ResponseKind::DeleteTopics(r) if version >= 1 => &mut r.throttle_time_ms,
        ResponseKind::CreatePartitions(r) => &mut r.throttle_time_ms,
        ResponseKind::DescribeConfigs(r) => &mut r.throttle_time_ms,
        ResponseKind::DescribeCluster(r) => &mut r.throttle_time_ms,
        ResponseKind::DescribeLogDirs(r) => &mut r.throttle_time_ms,
        _ => return,
    };
    *field = (*field).max(ms);
}
