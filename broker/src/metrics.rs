//! Prometheus metrics of the broker, served as text on the HTTP port.
//!
//! Two kinds of metrics live here:
//!
//! - *recorded* ones — counters and histograms of events (requests, errors,
//!   bytes and records in and out, ISR changes) and gauges of requests in
//!   flight (connections, purgatories) — kept in [`Metrics`] and moved by the
//!   code paths where the events happen;
//! - *state* ones — gauges of what the broker holds (log sizes, offsets,
//!   partition health, controller, groups, consumer lag) — computed from the
//!   broker's state at scrape time by [`crate::scrape`], so the write paths
//!   never pay for them.
//!
//! [`crate::scrape::render`] encodes both. This module knows nothing of the
//! broker: it is part of the broker's shared state. Every metric is listed in docs/METRICS.md.
//!
//! Cost on the hot paths: the series of each served (API, version) and of
//! each API's latency histogram are resolved once, at start, so a request
//! costs a few atomic adds and no allocation; per-topic series are looked up
//! once per topic of a request (a read lock on a small map), never per
//! record. With `metrics.enabled=false` every recording call returns at
//! once (state gauges are still rendered). Recording never fails and never
//! blocks on I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use parking_lot::RwLock;
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::log::FileRecords;

/// Buckets of the request latency histograms, in seconds.
const LATENCY_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Size of a RecordBatch v2 header up to and including its record count.
const BATCH_HEADER_RECORDS_END: usize = 61;

/// Where a request waits for something to happen (Kafka's purgatories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purgatory {
    /// acks=all produce requests waiting for the high watermark.
    Produce,
    /// Fetch requests long-polling for `min_bytes`.
    Fetch,
}

/// The series of one served API, resolved at start.
#[derive(Debug)]
struct ApiSeries {
    /// `strom_requests_total{api, version}`, indexed by version.
    requests: Vec<IntCounter>,
    /// `strom_request_duration_seconds{api}`.
    duration: Histogram,
    /// The `api` label value.
    label: String,
}

/// The per-topic series, resolved once per topic and cached.
#[derive(Debug)]
struct TopicSeries {
    bytes_in: IntCounter,
    records_in: IntCounter,
    bytes_out: IntCounter,
    records_out: IntCounter,
    produce_errors: IntCounter,
}

/// ISR change counters, handed to whoever commits a leader's ISR change.
#[derive(Debug, Clone)]
pub struct IsrChangeCounters {
    shrinks: IntCounter,
    expands: IntCounter,
    enabled: bool,
}

impl IsrChangeCounters {
    /// Counts one committed ISR change from `old_len` to `new_len` members.
    pub fn record(&self, old_len: usize, new_len: usize) {
        if !self.enabled {
            return;
        }
        if new_len < old_len {
            self.shrinks.inc();
        } else if new_len > old_len {
            self.expands.inc();
        }
    }
}

/// Decrements a purgatory gauge when the waiting request leaves it (also
/// when its future is dropped).
#[derive(Debug)]
pub struct PurgatoryGuard(Option<IntGauge>);

impl Drop for PurgatoryGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

/// The broker's recorded metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    enabled: bool,
    registry: Registry,
    /// By API key.
    apis: Vec<Option<ApiSeries>>,
    requests: IntCounterVec,
    request_errors: IntCounterVec,
    bad_requests: IntCounterVec,
    /// Refused TLS handshakes and SASL authentications, by listener and mechanism.
    authentication_failures: IntCounterVec,
    /// Throttle time and throttled requests, by quota type.
    quota_throttle_ms: IntCounterVec,
    quota_throttled: IntCounterVec,
    bytes_in: IntCounterVec,
    records_in: IntCounterVec,
    bytes_out: IntCounterVec,
    records_out: IntCounterVec,
    produce_errors: IntCounterVec,
    topics: RwLock<HashMap<String, Arc<TopicSeries>>>,
    connections: IntGauge,
    purgatory_produce: IntGauge,
    purgatory_fetch: IntGauge,
    isr_changes: IsrChangeCounters,
}

/// Registers `c` in `registry`. Names and labels are constants of this
/// module, so registration fails only on a bug (a duplicate name).
fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"))
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect("valid metric definition"))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid metric definition"))
}

impl Metrics {
    /// Registers every metric in a fresh registry, with the request series
    /// of every (API, lowest, highest version) in `served` (the served ones,
    /// `protocol::versions::SUPPORTED_APIS`); with `enabled` false,
    /// recording calls do nothing (`metrics.enabled=false`).
    pub fn new(enabled: bool, served: &[(ApiKey, i16, i16)]) -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let requests =
            counter_vec(r, "strom_requests_total", "Requests handled, by Kafka API and version.", &["api", "version"]);
        let request_errors = counter_vec(
            r,
            "strom_request_errors_total",
            "Error codes in responses (one per erroring topic, partition or group), by API, version and error.",
            &["api", "version", "error"],
        );
        let bad_requests = counter_vec(
            r,
            "strom_bad_requests_total",
            "Connections closed for a malformed request, by stage.",
            &["stage"],
        );
        let authentication_failures = counter_vec(
            r,
            "strom_authentication_failures_total",
            "Client connections refused at authentication (a failed TLS handshake or SASL exchange), by listener and mechanism.",
            &["listener", "mechanism"],
        );
        let quota_throttle_ms = counter_vec(
            r,
            "strom_client_quota_throttle_time_ms_total",
            "Milliseconds of throttle given to clients over a quota, by quota type (produce, fetch, request).",
            &["quota_type"],
        );
        let quota_throttled = counter_vec(
            r,
            "strom_client_quota_throttled_requests_total",
            "Requests that earned a throttle for a client quota, by quota type (produce, fetch, request).",
            &["quota_type"],
        );
        // Every quota type's series is present from the start, at 0.
        for quota_type in ["produce", "fetch", "request", "connection", "controller_mutation"] {
            quota_throttle_ms.with_label_values(&[quota_type]);
            quota_throttled.with_label_values(&[quota_type]);
        }
        let bytes_in = counter_vec(
            r,
            "strom_topic_bytes_in_total",
            "Record batch bytes appended by producers (as stored, headers included), by topic.",
            &["topic"],
        );
        let records_in =
            counter_vec(r, "strom_topic_records_in_total", "Records appended by producers, by topic.", &["topic"]);
        let bytes_out = counter_vec(
            r,
            "strom_topic_bytes_out_total",
            "Record batch bytes returned to consumers by Fetch, by topic.",
            &["topic"],
        );
        let records_out = counter_vec(
            r,
            "strom_topic_records_out_total",
            "Records in the batches returned to consumers by Fetch, by topic.",
            &["topic"],
        );
        let produce_errors =
            counter_vec(r, "strom_produce_errors_total", "Partition appends refused, by topic.", &["topic"]);
        let request_seconds = register(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "strom_request_duration_seconds",
                    "Time from request decoded to response ready, by API.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["api"],
            )
            .expect("valid metric definition"),
        );
        let connections = gauge(r, "strom_connections", "Open client connections.");
        let purgatory = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "strom_purgatory_requests",
                    "Requests waiting in a purgatory: acks=all produces for the high watermark, fetches for data.",
                ),
                &["operation"],
            )
            .expect("valid metric definition"),
        );
        let isr_changes = IsrChangeCounters {
            shrinks: counter(r, "strom_isr_shrinks_total", "ISR shrinks committed for partitions this broker leads."),
            expands: counter(
                r,
                "strom_isr_expands_total",
                "ISR expansions committed for partitions this broker leads.",
            ),
            enabled,
        };
        let mut apis: Vec<Option<ApiSeries>> = Vec::new();
        for &(api, lo, hi) in served {
            let label = format!("{api:?}");
            let index = api as i16 as usize;
            if apis.len() <= index {
                apis.resize_with(index + 1, || None);
            }
            let requests_by_version = (0..=hi.max(0))
                .map(|v| requests.with_label_values(&[label.as_str(), &v.to_string()]))
                .collect::<Vec<_>>();
            // Only advertised versions show up as series before their first request.
            for v in 0..lo.max(0) {
                let _ = requests.remove_label_values(&[label.as_str(), &v.to_string()]);
            }
            apis[index] = Some(ApiSeries {
                requests: requests_by_version,
                duration: request_seconds.with_label_values(&[label.as_str()]),
                label,
            });
        }
        Metrics {
            enabled,
            registry,
            apis,
            requests,
            request_errors,
            bad_requests,
            authentication_failures,
            quota_throttle_ms,
            quota_throttled,
            bytes_in,
            records_in,
            bytes_out,
            records_out,
            produce_errors,
            topics: RwLock::new(HashMap::new()),
            connections,
            purgatory_produce: purgatory.with_label_values(&["produce"]),
            purgatory_fetch: purgatory.with_label_values(&["fetch"]),
            isr_changes,
        }
    }

    /// Whether recording is on (`metrics.enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Counts one handled request at `version`, its duration, and the error
    /// codes its response carries.
    pub fn record_request(&self, api: ApiKey, version: i16, took: Duration, response: Option<&ResponseKind>) {
        if !self.enabled {
            return;
        }
        let Some(series) = self.apis.get(api as i16 as usize).and_then(Option::as_ref) else {
            // Not a served API: the codec refuses those, so this is not reached by input.
            return;
        };
        match usize::try_from(version).ok().and_then(|v| series.requests.get(v)) {
            Some(counter) => counter.inc(),
            None => self.requests.with_label_values(&[series.label.as_str(), &version.to_string()]).inc(),
        }
        series.duration.observe(took.as_secs_f64());
        if let Some(response) = response {
            for_each_error_code(response, |code| {
                let error = match ResponseError::try_from_code(code) {
                    Some(e) => format!("{e:?}"),
                    None => format!("code_{code}"),
                };
                self.request_errors.with_label_values(&[series.label.as_str(), &version.to_string(), &error]).inc();
            });
        }
    }

    /// Counts a connection closed for a bad request.
    pub fn record_bad_request(&self, stage: &str) {
        if self.enabled {
            self.bad_requests.with_label_values(&[stage]).inc();
        }
    }

    /// Counts a client refused at authentication on `listener`: `mechanism`
    /// is `TLS` for a failed handshake, else the SASL mechanism.
    pub fn record_authentication_failure(&self, listener: &str, mechanism: &str) {
        if self.enabled {
            self.authentication_failures.with_label_values(&[listener, mechanism]).inc();
        }
    }

    /// Counts one request throttled `wait` for a quota of `quota_type`.
    pub fn record_quota_throttle(&self, quota_type: &str, wait: Duration) {
        if self.enabled {
            let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            self.quota_throttle_ms.with_label_values(&[quota_type]).inc_by(ms);
            self.quota_throttled.with_label_values(&[quota_type]).inc();
        }
    }

    /// The cached series of `topic`.
    fn topic(&self, topic: &str) -> Arc<TopicSeries> {
        if let Some(series) = self.topics.read().get(topic) {
            return series.clone();
        }
        let series = Arc::new(TopicSeries {
            bytes_in: self.bytes_in.with_label_values(&[topic]),
            records_in: self.records_in.with_label_values(&[topic]),
            bytes_out: self.bytes_out.with_label_values(&[topic]),
            records_out: self.records_out.with_label_values(&[topic]),
            produce_errors: self.produce_errors.with_label_values(&[topic]),
        });
        self.topics.write().entry(topic.to_string()).or_insert(series).clone()
    }

    /// Counts an append of `records` records in `bytes` bytes of batches.
    /// An idempotent retry answered from the log wrote nothing (0 bytes) and
    /// is not counted.
    pub fn record_produce(&self, topic: &str, bytes: u64, records: u64) {
        if self.enabled && bytes > 0 {
            let series = self.topic(topic);
            series.bytes_in.inc_by(bytes);
            series.records_in.inc_by(records);
        }
    }

    /// Counts a refused append.
    pub fn record_produce_error(&self, topic: &str) {
        if self.enabled {
            self.topic(topic).produce_errors.inc();
        }
    }

    /// Counts the bytes and records of a Fetch response's batches, by topic:
    /// those in `files` (one entry per partition, in order) as located, the
    /// others by walking their batch headers.
    pub fn record_fetch(&self, responses: &[FetchableTopicResponse], files: &[Option<FileRecords>]) {
        if !self.enabled {
            return;
        }
        let mut files = files.iter();
        for topic in responses {
            let (mut bytes, mut records) = (0u64, 0u64);
            for p in &topic.partitions {
                match (files.next().and_then(Option::as_ref), &p.records) {
                    (Some(file), _) => {
                        bytes += file.len() as u64;
                        records += file.record_count();
                    }
                    (None, Some(data)) => {
                        bytes += data.len() as u64;
                        records += count_records(data);
                    }
                    (None, None) => {}
                }
            }
            if bytes > 0 {
                let series = self.topic(topic.topic.as_str());
                series.bytes_out.inc_by(bytes);
                series.records_out.inc_by(records);
            }
        }
    }

    /// Forgets the per-topic series of topics not in `keep` (deleted topics).
    pub(crate) fn retain_topics(&self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.topics.read().keys().filter(|t| !keep(t)).cloned().collect();
        if gone.is_empty() {
            return;
        }
        let mut topics = self.topics.write();
        for topic in gone {
            topics.remove(&topic);
            for vec in [&self.bytes_in, &self.records_in, &self.bytes_out, &self.records_out, &self.produce_errors] {
                let _ = vec.remove_label_values(&[topic.as_str()]);
            }
        }
    }

    /// The open-connections gauge.
    pub fn connections(&self) -> &IntGauge {
        &self.connections
    }

    /// Counts a request into `purgatory` until the guard is dropped.
    pub fn enter_purgatory(&self, purgatory: Purgatory) -> PurgatoryGuard {
        if !self.enabled {
            return PurgatoryGuard(None);
        }
        let gauge = match purgatory {
            Purgatory::Produce => &self.purgatory_produce,
            Purgatory::Fetch => &self.purgatory_fetch,
        };
        gauge.inc();
        PurgatoryGuard(Some(gauge.clone()))
    }

    /// The ISR change counters, for the channel that commits ISR changes.
    pub fn isr_changes(&self) -> IsrChangeCounters {
        self.isr_changes.clone()
    }

    /// The recorded metrics only.
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}

/// Encodes metric families in the Prometheus text format.
pub fn encode(families: &[MetricFamily]) -> String {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(families, &mut out) {
        tracing::error!(error = %e, "could not render metrics");
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records in the whole RecordBatch v2 batches of `data` (a trailing partial
/// batch, which a fetch may return, is not counted).
pub fn count_records(data: &[u8]) -> u64 {
    let mut records = 0u64;
    let mut pos = 0usize;
    while let Some(header) = data.get(pos..pos + BATCH_HEADER_RECORDS_END) {
        let length = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let Ok(length) = usize::try_from(length) else { break };
        let end = pos + 12 + length;
        if length < BATCH_HEADER_RECORDS_END - 12 || end > data.len() {
            break;
        }
        let count = i32::from_be_bytes([header[57], header[58], header[59], header[60]]);
        records += count.max(0) as u64;
        pos = end;
    }
    records
}

/// Calls `f` with every non-zero error code of `response`: the top-level
/// code and each topic's, partition's, group's or member's.
pub fn for_each_error_code(response: &ResponseKind, mut f: impl FnMut(i16)) {
    let mut check = |code: i16| {
        if code != 0 {
            f(code)
        }
    };
    match response {
        ResponseKind::Produce(r) => {
            r.responses.iter().flat_map(|t| &t.partition_responses).for_each(|p| check(p.error_code));
        }
        ResponseKind::Fetch(r) => {
            check(r.error_code);
            r.responses.iter().flat_map(|t| &t.partitions).for_each(|p| check(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| check(p.error_code)),
        ResponseKind::Metadata(r) => {
            for t in &r.topics {
                check(t.error_code);
                t.partitions.iter().for_each(|p| check(p.error_code));
            }
        }
        ResponseKind::ApiVersions(r) => check(r.error_code),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| check(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| check(t.error_code)),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|t| check(t.error_code)),
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| check(t.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => r.responses.iter().for_each(|t| check(t.error_code)),
        ResponseKind::DescribeCluster(r) => check(r.error_code),
        ResponseKind::InitProducerId(r) => check(r.error_code),
        ResponseKind::FindCoordinator(r) => {
            check(r.error_code);
            r.coordinators.iter().for_each(|c| check(c.error_code));
        }
        ResponseKind::JoinGroup(r) => check(r.error_code),
        ResponseKind::SyncGroup(r) => check(r.error_code),
        ResponseKind::Heartbeat(r) => check(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            check(r.error_code);
            r.members.iter().for_each(|m| check(m.error_code));
        }
        ResponseKind::OffsetCommit(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| check(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            check(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| check(p.error_code));
            for g in &r.groups {
                check(g.error_code);
                g.topics.iter().flat_map(|t| &t.partitions).for_each(|p| check(p.error_code));
            }
        }
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| check(g.error_code)),
        ResponseKind::ListGroups(r) => check(r.error_code),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| check(g.error_code)),
        ResponseKind::OffsetDelete(r) => {
            check(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| check(p.error_code));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ProduceResponse;
    use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};

    use super::*;

    /// A RecordBatch v2 header claiming `records` records and `body` bytes after it.
    fn batch(records: i32, body: usize) -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_RECORDS_END + body];
        let length = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[16] = 2;
        b[57..61].copy_from_slice(&records.to_be_bytes());
        b
    }

    #[test]
    fn counts_records_of_whole_batches_only() {
        let mut data = batch(3, 40);
        data.extend(batch(5, 10));
        assert_eq!(count_records(&data), 8);
        let mut truncated = data.clone();
        truncated.extend(&batch(7, 100)[..80]);
        assert_eq!(count_records(&truncated), 8, "a partial trailing batch is not counted");
        assert_eq!(count_records(&[]), 0);
        assert_eq!(count_records(&data[..30]), 0);
    }

    #[test]
    fn requests_count_by_api_and_version_and_errors_by_code() {
        let m = Metrics::new(true, crate::protocol::versions::SUPPORTED_APIS);
        let ok = PartitionProduceResponse::default();
        let bad = PartitionProduceResponse::default().with_error_code(ResponseError::NotLeaderOrFollower.code());
        let response = ResponseKind::Produce(
            ProduceResponse::default()
                .with_responses(vec![TopicProduceResponse::default().with_partition_responses(vec![ok, bad])]),
        );
        m.record_request(ApiKey::Produce, 9, Duration::from_millis(2), Some(&response));
        m.record_request(ApiKey::Produce, 9, Duration::from_millis(2), None);
        let text = encode(&m.gather());
        assert!(text.contains("strom_requests_total{api=\"Produce\",version=\"9\"} 2"), "{text}");
        assert!(
            text.contains("strom_request_errors_total{api=\"Produce\",error=\"NotLeaderOrFollower\",version=\"9\"} 1"),
            "{text}"
        );
        assert!(text.contains("strom_request_duration_seconds_count{api=\"Produce\"} 2"), "{text}");
        // Served versions exist from the start; unserved ones (Produce v0-2 are advertised) do not.
        assert!(text.contains("strom_requests_total{api=\"Fetch\",version=\"12\"} 0"), "{text}");
        assert!(!text.contains("strom_requests_total{api=\"Fetch\",version=\"3\"}"), "{text}");
    }

    #[test]
    fn disabled_metrics_record_nothing() {
        let m = Metrics::new(false, crate::protocol::versions::SUPPORTED_APIS);
        m.record_request(ApiKey::Fetch, 12, Duration::from_millis(1), None);
        m.record_produce("t", 100, 3);
        let guard = m.enter_purgatory(Purgatory::Produce);
        let text = encode(&m.gather());
        drop(guard);
        assert!(text.contains("strom_requests_total{api=\"Fetch\",version=\"12\"} 0"), "{text}");
        assert!(!text.contains("strom_topic_bytes_in_total{topic=\"t\"}"), "{text}");
        assert!(text.contains("strom_purgatory_requests{operation=\"produce\"} 0"), "{text}");
    }

    #[test]
    fn purgatory_gauge_follows_its_guards_and_deleted_topics_are_forgotten() {
        let m = Metrics::new(true, crate::protocol::versions::SUPPORTED_APIS);
        let a = m.enter_purgatory(Purgatory::Fetch);
        let b = m.enter_purgatory(Purgatory::Fetch);
        assert_eq!(m.purgatory_fetch.get(), 2);
        drop(a);
        drop(b);
        assert_eq!(m.purgatory_fetch.get(), 0);
        m.record_produce("kept", 10, 1);
        m.record_produce("gone", 10, 1);
        m.retain_topics(|t| t == "kept");
        // An idempotent duplicate answered from the log wrote nothing.
        m.record_produce("kept", 0, 7);
        let text = encode(&m.gather());
        assert!(text.contains("strom_topic_records_in_total{topic=\"kept\"} 1"), "{text}");
        assert!(!text.contains("topic=\"gone\""), "{text}");
    }

    #[test]
    fn isr_changes_count_by_direction() {
        let m = Metrics::new(true, crate::protocol::versions::SUPPORTED_APIS);
        let c = m.isr_changes();
        c.record(3, 2);
        c.record(2, 3);
        c.record(2, 3);
        c.record(3, 3);
        let text = encode(&m.gather());
        assert!(text.contains("strom_isr_shrinks_total 1"), "{text}");
        assert!(text.contains("strom_isr_expands_total 2"), "{text}");
    }
}
