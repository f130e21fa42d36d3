//! Starts the broker's parts and runs them: listeners, background
//! housekeeping and shutdown.
//!
//! [`start`] is the one place a broker's parts are started: it opens the
//! logs (with recovery), starts this node's controller and the log writer
//! threads ([`crate::replica::writer`]), builds the shared
//! [`Broker`] state, starts the internal gRPC server, the publisher and the
//! replica manager's background work, and joins the cluster
//! ([`crate::membership::join`]).
//!
//! The HTTP listener is bound and served first, before the broker opens
//! its logs and joins the cluster ([`bind_http`], [`serve_http`]): `/healthz`
//! (the process answers) works from the start, so a broker recovering a
//! large log or waiting for its controller quorum is not taken for dead;
//! `/readyz` says it is starting (see [`crate::readiness`]), and `/metrics`
//! (see [`crate::metrics`]) answers 503 until the broker is up.
//!
//! [`bind_kafka`] binds every named Kafka listener (`listeners`, or
//! `--listen` alone) and loads its TLS files; [`serve`] then serves them until the broker's shutdown
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
use crate::config::BrokerConfig;
use crate::controller::{Controller, ControllerConfig};
use crate::log::LogManager;
use crate::protocol::connection::serve_connection;
use crate::protocol::limits::{ConnectionCounts, RefusalLog, RequestMemory};
use crate::protocol::listener::ClientListener;
use crate::protocol::versions::SUPPORTED_APIS;
use crate::readiness::{NotReady, Readiness};

/// The addresses a started broker listens on.
#[derive(Debug, Clone, Copy)]
pub struct BoundAddresses {
    /// Kafka listener.
    pub kafka: SocketAddr,
    /// HTTP listener.
    pub http: SocketAddr,
}

/// Opens the logs, starts this node's controller, the internal gRPC server
/// on `internal`, the publisher and the replicas' background work, and joins
/// the cluster. Returns once this broker is registered and has caught up;
/// waits for a controller quorum as long as it takes (until `shutdown` is
/// cancelled).
pub async fn start(
    config: BrokerConfig,
    internal: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<Broker>> {
    let internal_tls = load_internal_tls(&config)?;
    let data_dir = config.data_dir.clone();
    let default_log_config = config.log_config(&crate::config::Settings::topic_overrides());
    let logs = tokio::task::spawn_blocking(move || LogManager::open(&data_dir, default_log_config))
        .await
        .context("opening the logs panicked")?
        .with_context(|| format!("cannot open the logs in {}", config.data_dir.display()))?;
    let controller = Controller::start_unserved(controller_config(&config, internal_tls.clone()))
        .await
        .context("cannot start this node's controller")?;
    let metrics = crate::metrics::Metrics::new(config.settings.bool("metrics.enabled"), SUPPORTED_APIS);
    crate::log::segment::set_reserve_max(config.settings.long("log.segment.reserve.bytes").max(0) as u64);
    let writer_threads = config.settings.long("log.writer.threads").clamp(0, 64) as usize;
    let writer_room = config.settings.long("queued.max.request.bytes").max(1) as usize;
    let writer =
        crate::replica::LogWriter::start(writer_threads, writer_room).context("cannot start the log writer threads")?;
    let broker = Broker::new(config, logs, controller, metrics, internal_tls, writer, shutdown);
    broker.replicas.set_isr_channel(Arc::new(crate::publisher::ControllerIsrChannel::new(&broker)));
    crate::internal::serve(broker.clone(), internal);
    tokio::spawn(crate::publisher::run(broker.clone()));
    tokio::spawn(broker.replicas.clone().run_background(broker.shutdown.clone()));
    crate::membership::join(&broker).await?;
    Ok(broker)
}

/// The controller settings of a broker configuration.
fn controller_config(config: &BrokerConfig, tls: Option<Arc<crate::tls::InternalTls>>) -> ControllerConfig {
    let voters = if config.voters.is_empty() {
        [(config.node_id as u64, config.internal_advertise.to_string())].into_iter().collect()
    } else {
        config.voters.iter().map(|v| (v.node_id as u64, v.address.to_string())).collect()
    };
    let mut c = ControllerConfig::new(config.node_id as u64, voters, &config.data_dir);
    c.session_timeout = Duration::from_millis(config.settings.long("broker.session.timeout.ms").max(1) as u64);
    c.internal_tls = tls;
    c
}

/// Loads the internal TLS files, checking that the certificate is this broker's.
fn load_internal_tls(config: &BrokerConfig) -> anyhow::Result<Option<Arc<crate::tls::InternalTls>>> {
    let Some(files) = &config.internal_tls else {
        return Ok(None);
    };
    let tls = crate::tls::InternalTls::load(files.clone())?;
    let identity = tls.identity();
    if identity != crate::tls::Identity::Broker(config.node_id) {
        anyhow::bail!(
            "the internal TLS certificate {} names {identity}, but this is broker {} (expected URI SAN {}{})",
            files.cert.display(),
            config.node_id,
            crate::tls::BROKER_URI_PREFIX,
            config.node_id
        );
    }
    Ok(Some(tls))
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

/// The bound Kafka listeners of a broker, each with its settings.
pub type KafkaListeners = Vec<(Arc<ClientListener>, TcpListener)>;

/// Binds the Kafka listeners of a started broker (loading their TLS
/// files); they then serve with [`serve`].
pub async fn bind_kafka(broker: &Broker) -> anyhow::Result<KafkaListeners> {
    let mut bound = Vec::new();
    for config in &broker.config.listeners {
        let listener = ClientListener::new(config)?;
        let socket = TcpListener::bind(config.bind).await.with_context(|| {
            format!(
                "cannot listen for Kafka clients on {} (listener {}; listeners or --listen)",
                config.bind, config.name
            )
        })?;
        bound.push((listener, socket));
    }
    Ok(bound)
}

/// Accepts the next connection on any of `listeners`.
async fn accept_any(
    listeners: &KafkaListeners,
) -> (&Arc<ClientListener>, std::io::Result<(tokio::net::TcpStream, SocketAddr)>) {
    let accepts = listeners.iter().map(|(l, socket)| Box::pin(async move { (l, socket.accept().await) }));
    futures::future::select_all(accepts).await.0
}

/// Serves Kafka clients on `kafka` until `broker.shutdown` is cancelled,
/// then drains connections, stops the HTTP server (`http_task`, from
/// [`serve_http`]) and flushes the logs.
pub async fn serve(broker: Arc<Broker>, kafka: KafkaListeners, http_task: JoinHandle<()>) -> anyhow::Result<()> {
    let housekeeping = tokio::spawn(housekeeping(broker.clone()));
    crate::auth::jwks_fetch::spawn_refreshers(&broker.config.listeners, &broker.shutdown);
    let groups = tokio::spawn(broker.groups.clone().run(broker.shutdown.clone()));
    let txns = tokio::spawn(broker.txns.clone().run(broker.shutdown.clone()));
    let counts = ConnectionCounts::from_settings(&broker.config.settings);
    let memory = RequestMemory::from_settings(&broker.config.settings);
    let mut refused_connections = RefusalLog::default();
    let mut connections = JoinSet::new();
    loop {
        let (listener, accepted) = tokio::select! {
            a = accept_any(&kafka) => a,
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
        let throttle = broker.quotas.record_connection(peer.ip());
        if !throttle.is_zero() {
            // KIP-612: a connection over its ip's connection_creation_rate is
            // closed after the throttle, holding its slot meanwhile.
            broker.metrics.record_quota_throttle("connection", throttle);
            let shutdown = broker.shutdown.clone();
            connections.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(throttle) => {}
                    _ = shutdown.cancelled() => {}
                }
                drop((stream, slot));
            });
            continue;
        }
        let (b, memory, listener) = (broker.clone(), memory.clone(), listener.clone());
        connections.spawn(async move {
            b.metrics.connections().inc();
            serve_connection(stream, peer, b.clone(), memory, listener).await;
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
    let _ = txns.await;
    http_task.abort();
    let b = broker.clone();
    tokio::task::spawn_blocking(move || {
        b.replicas.shutdown();
        // Appends still queued (fetch sessions just stopped; connections
        // aborted after the drain) run, or are dropped, before the flush.
        b.replicas.writer().close();
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
    match tokio::task::spawn_blocking(move || crate::scrape::render(&broker)).await {
        Ok(text) => (StatusCode::OK, text),
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering metrics failed\n".to_string())
        }
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until
/// `shutdown` is cancelled; `started` holds the broker once
/// [`start`] has returned it.
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
