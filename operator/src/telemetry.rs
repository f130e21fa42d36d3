//! Prometheus metrics of the operator and its HTTP endpoints:
//! `/metrics` (text format), `/healthz` (the process serves), `/readyz`
//! (the operator has started: it leads and runs its controllers, or stands
//! by for the Lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciliations: IntCounterVec,
    reconcile_seconds: HistogramVec,
    /// 1 while this replica holds the leader Lease.
    pub leader: IntGauge,
    ready: Arc<AtomicBool>,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let reconciliations = IntCounterVec::new(
            Opts::new("strom_operator_reconciliations_total", "Reconciliations by controller and result"),
            &["controller", "result"],
        )?;
        let reconcile_seconds = HistogramVec::new(
            HistogramOpts::new("strom_operator_reconcile_duration_seconds", "Time spent in one reconciliation")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["controller"],
        )?;
        let leader = IntGauge::new("strom_operator_leader", "1 while this replica holds the leader Lease")?;
        registry.register(Box::new(reconciliations.clone()))?;
        registry.register(Box::new(reconcile_seconds.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(Metrics { registry, reconciliations, reconcile_seconds, leader, ready: Arc::default() })
    }

    /// Counts one reconciliation of `controller` that took `elapsed`.
    pub fn observe(&self, controller: &str, ok: bool, elapsed: Duration) {
        self.reconciliations.with_label_values(&[controller, if ok { "ok" } else { "error" }]).inc();
        self.reconcile_seconds.with_label_values(&[controller]).observe(elapsed.as_secs_f64());
    }

    /// Marks the operator started (`/readyz` answers 200 from now on).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    fn render(&self) -> String {
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
