//! Prometheus metrics of the broker, served as text on the HTTP port.
//!
//! Names follow Prometheus conventions (base units, `_total`, `_seconds`,
//! `_bytes`). Recording never fails and never blocks on I/O.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The broker's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    bad_requests: IntCounterVec,
    bytes_in: IntCounterVec,
    records_in: IntCounterVec,
    produce_errors: IntCounterVec,
    bytes_out: IntCounter,
    connections: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // Construction only fails on invalid names/labels, which are constants here.
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let requests = counter_vec("strom_requests_total", "Requests handled, by Kafka API.", &["api"]);
        let bad_requests = counter_vec(
            "strom_bad_requests_total",
            "Connections closed for a malformed request, by stage.",
            &["stage"],
        );
        let bytes_in = counter_vec("strom_topic_bytes_in_total", "Record batch bytes appended, by topic.", &["topic"]);
        let records_in = counter_vec("strom_topic_records_in_total", "Records appended, by topic.", &["topic"]);
        let produce_errors =
            counter_vec("strom_produce_errors_total", "Partition appends refused, by topic.", &["topic"]);
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "strom_request_duration_seconds",
                "Time from request decoded to response ready, by API.",
            )
            .buckets(vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            &["api"],
        )
        .expect("valid metric definition");
        registry.register(Box::new(request_seconds.clone())).expect("metric registered once");
        let bytes_out = IntCounter::new("strom_fetch_bytes_out_total", "Record bytes returned to fetchers.")
            .expect("valid metric definition");
        registry.register(Box::new(bytes_out.clone())).expect("metric registered once");
        let connections =
            IntGauge::new("strom_connections", "Open client connections.").expect("valid metric definition");
        registry.register(Box::new(connections.clone())).expect("metric registered once");
        Metrics {
            registry,
            requests,
            request_seconds,
            bad_requests,
            bytes_in,
            records_in,
            produce_errors,
            bytes_out,
            connections,
        }
    }

    /// Counts one handled request and its duration.
    pub fn record_request(&self, api: ApiKey, took: Duration) {
        let label = format!("{api:?}");
        self.requests.with_label_values(&[&label]).inc();
        self.request_seconds.with_label_values(&[&label]).observe(took.as_secs_f64());
    }

    /// Counts a connection closed for a bad request.
    pub fn record_bad_request(&self, stage: &str) {
        self.bad_requests.with_label_values(&[stage]).inc();
    }

    /// Counts an append.
    pub fn record_produce(&self, topic: &str, bytes: u64, records: u64) {
        self.bytes_in.with_label_values(&[topic]).inc_by(bytes);
        self.records_in.with_label_values(&[topic]).inc_by(records);
    }

    /// Counts a refused append.
    pub fn record_produce_error(&self, topic: &str) {
        self.produce_errors.with_label_values(&[topic]).inc();
    }

    /// Counts bytes served to fetchers.
    pub fn record_fetch(&self, bytes: u64) {
        self.bytes_out.inc_by(bytes);
    }

    /// The open-connections gauge.
    pub fn connections(&self) -> &IntGauge {
        &self.connections
    }

    /// Renders all metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "could not render metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
