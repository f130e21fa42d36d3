//! The running broker: listeners, background housekeeping and shutdown.
//!
//! The HTTP listener is bound and served first, before the broker opens
//! its logs and joins the cluster ([`bind_http`], [`serve_http`]): `/healthz`
//! (the process answers) works from the start, so a broker recovering a
//! large log or waiting for its controller quorum is not taken for dead;
//! `/readyz` says it is starting (see [`crate::readiness`]), and `/metrics`
//! (see [`crate::metrics`]) answers 503 until the broker is up.
//!
//! [`serve`] then serves the Kafka listener until the broker's shutdown
//! token is cancelled, stops accepting, lets open connections finish their
//! queued responses, and flushes every log before returning. Connections
//! beyond `max.connections` are closed at accept.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, now_ms};
use crate::protocol::connection::serve_connection;
use crate::protocol::limits::{ConnectionCounts, RefusalLog, RequestMemory};
use crate::readiness::{NotReady, Readiness};

/// The addresses a started broker listens on.
#[derive(Debug, Clone, Copy)]
pub struct BoundAddresses {
    /// Kafka listener.
    pub kafka: SocketAddr,
    /// HTTP listener.
    pub http: SocketAddr,
}

/// Binds the internal gRPC listener, before the broker starts (the
/// controller quorum needs it to form).
pub async fn bind_internal(config: &crate::config::BrokerConfig) -> anyhow::Result<TcpListener> {
    TcpListener::bind(config.internal_listen)
        .await
        .with_context(|| format!("cannot listen for internal gRPC on {} (--internal-listen)", config.internal_listen))
}

/// Binds the HTTP listener, before the broker starts (see the module doc).
pub async fn bind_http(config: &crate::config::BrokerConfig) -> anyhow::Result<TcpListener> {
    TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {} (--http-listen)", config.http_listen))
}

/// Binds the Kafka listener of a started broker; it then serves with [`serve`].
pub async fn bind_kafka(broker: &Broker) -> anyhow::Result<TcpListener> {
    TcpListener::bind(broker.config.listen)
        .await
        .with_context(|| format!("cannot listen for Kafka clients on {} (--listen)", broker.config.listen))
}

/// Serves Kafka clients on `kafka` until `broker.shutdown` is cancelled,
/// then drains connections, stops the HTTP server (`http_task`, from
/// [`serve_http`]) and flushes the logs.
pub async fn serve(broker: Arc<Broker>, kafka: TcpListener, http_task: JoinHandle<()>) -> anyhow::Result<()> {
    let housekeeping = tokio::spawn(housekeeping(broker.clone()));
    let groups = tokio::spawn(broker.groups.clone().run(broker.shutdown.clone()));
    let counts = ConnectionCounts::from_settings(&broker.config.settings);
    let memory = RequestMemory::from_settings(&broker.config.settings);
    let mut refused_connections = RefusalLog::default();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = kafka.accept() => a,
            _ = broker.shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match counts.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                refused_connections.note(peer, refused);
                drop(stream);
                continue;
            }
        };
        let (b, memory) = (broker.clone(), memory.clone());
        connections.spawn(async move {
            b.metrics.connections().inc();
            serve_connection(stream, peer, b.clone(), memory).await;
            b.metrics.connections().dec();
            drop(slot);
        });
    }
    tracing::info!(open = connections.len(), "shutting down: draining connections");
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain).await.is_err() {
        tracing::warn!("connections did not close within 10s; closing them");
        connections.abort_all();
    }
    housekeeping.abort();
    // On shutdown the coordinator answers waiting joins and syncs with NOT_COORDINATOR.
    let _ = groups.await;
    http_task.abort();
    let b = broker.clone();
    tokio::task::spawn_blocking(move || {
        b.replicas.shutdown();
        b.replicas.checkpoint_high_watermarks();
        b.replicas.logs().close()
    })
    .await
    .context("flush task panicked")?
    .context("flushing logs at shutdown")?;
    broker.controller.shutdown().await;
    tracing::info!("all logs flushed; broker stopped");
    Ok(())
}

/// Retention and `flush.ms` fsyncs every `log.retention.check.interval.ms`;
/// compaction of compacted topics every `log.cleaner.backoff.ms`.
async fn housekeeping(broker: Arc<Broker>) {
    let millis = |name: &str| Duration::from_millis(broker.config.settings.long(name).max(1) as u64);
    let mut retention = tokio::time::interval(millis("log.retention.check.interval.ms"));
    let mut cleaner = tokio::time::interval(millis("log.cleaner.backoff.ms"));
    retention.tick().await;
    cleaner.tick().await;
    loop {
        let compact = tokio::select! {
            _ = retention.tick() => false,
            _ = cleaner.tick() => true,
            _ = broker.shutdown.cancelled() => return,
        };
        let b = broker.clone();
        let result = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let logs = b.replicas.logs();
            if compact {
                logs.compact_all(now);
                0
            } else {
                logs.flush_due_all(now);
                logs.enforce_retention_all(now)
            }
        })
        .await;
        match result {
            Ok(deleted) if deleted > 0 => tracing::info!(segments = deleted, "retention deleted segments"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "log housekeeping task failed"),
        }
    }
}

/// What the HTTP handlers share: the broker once started, and its readiness latch.
#[derive(Clone)]
struct HttpState {
    started: Arc<OnceLock<Arc<Broker>>>,
    readiness: Arc<Readiness>,
}

/// `/readyz`: 200 once ready (see [`crate::readiness`]), else 503 with the reason.
async fn readyz(State(s): State<HttpState>) -> (StatusCode, String) {
    let checked = match s.started.get() {
        Some(broker) => s.readiness.check(broker),
        None => Err(NotReady::Starting),
    };
    match checked {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
    }
}

/// `/metrics`: recorded and state metrics in the Prometheus text format,
/// rendered off the reactor (it takes partition log locks); 503 while the
/// broker is starting.
async fn metrics(State(s): State<HttpState>) -> (StatusCode, String) {
    let Some(broker) = s.started.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", NotReady::Starting));
    };
    match tokio::task::spawn_blocking(move || crate::metrics::render(&broker)).await {
        Ok(text) => (StatusCode::OK, text),
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering metrics failed\n".to_string())
        }
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until
/// `shutdown` is cancelled; `started` holds the broker once
/// [`Broker::start`] has returned it.
pub fn serve_http(
    started: Arc<OnceLock<Arc<Broker>>>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let state = HttpState { started, readiness: Arc::new(Readiness::default()) };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    tokio::spawn(async move {
        let stopped = async move { shutdown.cancelled().await };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })
}
