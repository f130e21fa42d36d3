//! Prometheus metrics of the operator and its HTTP endpoints:
//! `/metrics` (text format), `/healthz` (the process serves), `/readyz`
//! (the operator has started: it leads and runs its controllers, or stands
//! by for the Lease).
//!
//! Recorded: reconciliations and their errors by controller (resource kind),
//! their duration, leadership, and each cluster's rolling-restart progress
//! (set by the cluster reconciler). Computed at scrape time: the objects the
//! controllers hold in their caches, from counting functions registered with
//! [`Metrics::count_objects`]. Every metric is listed in docs/METRICS.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use kube::ResourceExt;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use strom_crds::KafkaCluster;
use tokio_util::sync::CancellationToken;

/// Counts the objects of one kind in a controller's cache.
type ObjectCounter = Box<dyn Fn() -> usize + Send + Sync>;

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciliations: IntCounterVec,
    reconcile_seconds: HistogramVec,
    /// 1 while this replica holds the leader Lease.
    pub leader: IntGauge,
    managed: IntGaugeVec,
    object_counters: Arc<Mutex<Vec<(&'static str, ObjectCounter)>>>,
    restart_left: IntGaugeVec,
    ready: Arc<AtomicBool>,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let reconciliations = IntCounterVec::new(
            Opts::new(
                "strom_operator_reconciliations_total",
                "Reconciliations by controller (resource kind) and result (ok or error)",
            ),
            &["controller", "result"],
        )?;
        let reconcile_seconds = HistogramVec::new(
            HistogramOpts::new("strom_operator_reconcile_duration_seconds", "Time spent in one reconciliation")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["controller"],
        )?;
        let leader = IntGauge::new("strom_operator_leader", "1 while this replica holds the leader Lease")?;
        let managed = IntGaugeVec::new(
            Opts::new("strom_operator_managed_objects", "Objects in the controllers' caches, by kind"),
            &["kind"],
        )?;
        let restart_left = IntGaugeVec::new(
            Opts::new(
                "strom_operator_rolling_restart_brokers_left",
                "Brokers of a KafkaCluster still to restart onto the current pod template (0 when none)",
            ),
            &["namespace", "cluster"],
        )?;
        registry.register(Box::new(reconciliations.clone()))?;
        registry.register(Box::new(reconcile_seconds.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(managed.clone()))?;
        registry.register(Box::new(restart_left.clone()))?;
        for controller in [crate::cluster::CONTROLLER, crate::topic::CONTROLLER] {
            for result in ["ok", "error"] {
                reconciliations.with_label_values(&[controller, result]);
            }
        }
        for kind in ["KafkaCluster", "KafkaTopic"] {
            managed.with_label_values(&[kind]);
        }
        Ok(Metrics {
            registry,
            reconciliations,
            reconcile_seconds,
            leader,
            managed,
            object_counters: Arc::default(),
            restart_left,
            ready: Arc::default(),
        })
    }

    /// Counts one reconciliation of `controller` that took `elapsed`.
    pub fn observe(&self, controller: &str, ok: bool, elapsed: Duration) {
        self.reconciliations.with_label_values(&[controller, if ok { "ok" } else { "error" }]).inc();
        self.reconcile_seconds.with_label_values(&[controller]).observe(elapsed.as_secs_f64());
    }

    /// Registers a count of `kind` objects (e.g. the size of a controller's
    /// cache), summed with the other counts of that kind at each scrape.
    pub fn count_objects(&self, kind: &'static str, count: impl Fn() -> usize + Send + Sync + 'static) {
        if let Ok(mut counters) = self.object_counters.lock() {
            counters.push((kind, Box::new(count)));
        }
    }

    /// Sets the brokers of `cluster` still to restart in its rolling restart (0: none).
    pub fn set_restart_brokers_left(&self, cluster: &KafkaCluster, brokers_left: i32) {
        let namespace = cluster.namespace().unwrap_or_default();
        self.restart_left.with_label_values(&[namespace.as_str(), &cluster.name_any()]).set(brokers_left.into());
    }

    /// Marks the operator started (`/readyz` answers 200 from now on).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        if let Ok(counters) = self.object_counters.lock() {
            let mut totals: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
            for (kind, count) in counters.iter() {
                *totals.entry(kind).or_default() += count();
            }
            for (kind, total) in totals {
                self.managed.with_label_values(&[kind]).set(i64::try_from(total).unwrap_or(i64::MAX));
            }
        }
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which registration prevents.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

async fn metrics(State(m): State<Metrics>) -> String {
    m.render()
}

async fn readyz(State(m): State<Metrics>) -> (StatusCode, &'static str) {
    if m.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Serves the HTTP endpoints on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics_state: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(metrics_state);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

#[cfg(test)]
mod tests {
    use strom_crds::KafkaClusterSpec;

    use super::*;

    fn test_cluster() -> KafkaCluster {
        let spec: KafkaClusterSpec =
            serde_json::from_value(serde_json::json!({"replicas": 3})).expect("a minimal spec");
        let mut cluster = KafkaCluster::new("prod", spec);
        cluster.metadata.namespace = Some("kafka".into());
        cluster
    }

    #[test]
    fn render_shows_reconciles_objects_and_restart_progress() {
        let m = Metrics::new().expect("metrics register");
        m.observe(crate::cluster::CONTROLLER, true, Duration::from_millis(30));
        m.observe(crate::cluster::CONTROLLER, false, Duration::from_millis(30));
        m.observe(crate::topic::CONTROLLER, true, Duration::from_millis(5));
        m.count_objects("KafkaTopic", || 2);
        m.count_objects("KafkaTopic", || 3);
        m.count_objects("KafkaCluster", || 1);
        let spec: KafkaClusterSpec =
            serde_json::from_value(serde_json::json!({"replicas": 3})).expect("a minimal spec");
        let mut cluster = KafkaCluster::new("prod", spec);
        cluster.metadata.namespace = Some("kafka".into());
        m.set_restart_brokers_left(&cluster, 2);
        let text = m.render();
        for line in [
            "strom_operator_reconciliations_total{controller=\"kafkacluster\",result=\"ok\"} 1",
            "strom_operator_reconciliations_total{controller=\"kafkacluster\",result=\"error\"} 1",
            "strom_operator_reconciliations_total{controller=\"kafkatopic\",result=\"error\"} 0",
            "strom_operator_reconcile_duration_seconds_count{controller=\"kafkacluster\"} 2",
            "strom_operator_managed_objects{kind=\"KafkaTopic\"} 5",
            "strom_operator_managed_objects{kind=\"KafkaCluster\"} 1",
            "strom_operator_rolling_restart_brokers_left{cluster=\"prod\",namespace=\"kafka\"} 2",
            "strom_operator_leader 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        m.set_restart_brokers_left(&cluster, 0);
        assert!(
            m.render().contains("strom_operator_rolling_restart_brokers_left{cluster=\"prod\",namespace=\"kafka\"} 0")
        );
    }

    /// Every operator metric the Grafana dashboard queries exists in a scrape.
    #[test]
    fn dashboard_queries_only_operator_metrics_that_exist() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../charts/strom-operator/dashboards/strom-overview.json"))
                .expect("the dashboard is valid JSON");
        let m = Metrics::new().expect("metrics register");
        // As an operator that has reconciled one cluster.
        m.observe(crate::cluster::CONTROLLER, true, Duration::from_millis(30));
        m.set_restart_brokers_left(&test_cluster(), 0);
        let text = m.render();
        let names = crate::telemetry::tests::queried_metrics(&dashboard);
        let operator: Vec<&String> = names.iter().filter(|n| n.starts_with("strom_operator_")).collect();
        assert!(!operator.is_empty(), "the dashboard queries no operator metric");
        for name in operator {
            assert!(
                text.lines().any(|l| !l.starts_with('#') && l.starts_with(name.as_str())),
                "the dashboard queries `{name}`, which the operator does not export:\n{text}"
            );
        }
    }

    /// Metric names in the PromQL `expr` fields of a Grafana dashboard:
    /// identifiers starting with `strom_`.
    pub(crate) fn queried_metrics(dashboard: &serde_json::Value) -> std::collections::BTreeSet<String> {
        let mut exprs = Vec::new();
        collect_exprs(dashboard, &mut exprs);
        let mut names = std::collections::BTreeSet::new();
        for expr in exprs {
            let mut rest = expr.as_str();
            while let Some(at) = rest.find("strom_") {
                let tail = &rest[at..];
                let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
                names.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
        names
    }

    fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => collect_exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
            _ => {}
        }
    }
}
