//! The broker's shared state: what every part of a running broker reads,
//! and the few operations on that state alone.
//!
//! [`Broker`] ties the configuration, this node's member of the controller
//! quorum, the metadata view, the hosted partition replicas, the group
//! coordinator and the metrics together. It starts nothing: [`crate::server`]
//! builds it ([`Broker::new`]) from opened logs and a started controller,
//! starts the tasks around it, and joins the cluster ([`crate::membership`]).
//! Cluster changes go through [`crate::admin`]; once committed and applied
//! here, the [`crate::publisher`] makes the partition replicas follow the
//! image (create, lead, follow, delete).
//!
//! Must never: start a task, or depend on the modules that serve or change
//! it (server, membership, admin, protocol, internal, publisher) — they
//! depend on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::controller::image::{Command, Outcome};
use crate::controller::{Controller, ControllerError};
use crate::group::{GroupConfig, GroupCoordinator};
use crate::log::{LogManager, TopicPartition};
use crate::metadata::MetadataView;
use crate::metrics::Metrics;
use crate::replica::{Partition, ReplicaConfig, ReplicaManager};
use crate::txn::{TxnConfig, TxnCoordinator};

pub use crate::clock::now_ms;

/// Producer ids of the block this broker holds: `next .. end`.
#[derive(Debug, Default)]
struct ProducerIdBlock {
    next: i64,
    end: i64,
}

/// Longest a starting broker waits for the metadata image to be published
/// here, which hosts every partition assigned to it.
pub const START_PUBLISH_TIMEOUT: Duration = Duration::from_secs(600);

/// The broker's shared state.
#[derive(Debug)]
pub struct Broker {
    /// Validated configuration.
    pub config: BrokerConfig,
    /// The metadata this broker serves, rebuilt from the controller's image.
    pub metadata: RwLock<MetadataView>,
    /// Hosted partition replicas.
    pub replicas: Arc<ReplicaManager>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Cancelled when the broker shuts down.
    pub shutdown: CancellationToken,
    /// The consumer group coordinator.
    pub groups: Arc<GroupCoordinator>,
    /// The transaction coordinator.
    pub txns: Arc<TxnCoordinator>,
    /// This node's member of the controller quorum.
    pub controller: Arc<Controller>,
    /// Whether and how Kafka requests are authorized (`authorizer.class.name`, `super.users`, ...).
    pub authorizer: crate::auth::authorizer::AuthorizerConfig,
    /// Client quotas in force here and the rates measured against them.
    pub quotas: crate::quota::QuotaManager,
    /// The internal plane's mutual TLS (`None`: plain, see `--internal-insecure`).
    pub internal_tls: Option<Arc<crate::tls::InternalTls>>,
    /// The broker epoch the controller gave this incarnation (-1 before registration).
    broker_epoch: AtomicI64,
    /// Registered, unfenced and caught up with the metadata log.
    ready: AtomicBool,
    producer_ids: tokio::sync::Mutex<ProducerIdBlock>,
    /// Held while a heartbeat is proposed; `true` once this broker stopped
    /// heartbeating for its controlled shutdown (see [`crate::membership`]).
    pub(crate) heartbeats_stopped: tokio::sync::Mutex<bool>,
    /// Highest metadata log index whose image this broker has published.
    pub(crate) published: watch::Sender<u64>,
    /// The last image published, for the publisher's diff.
    pub(crate) last_image: Mutex<Option<Arc<crate::controller::ClusterImage>>>,
}

impl Broker {
    /// The shared state over opened `logs`, a started `controller` and `metrics`;
    /// nothing runs yet (see [`crate::server::start`]).
    pub fn new(
        config: BrokerConfig,
        logs: LogManager,
        controller: Controller,
        metrics: Metrics,
        internal_tls: Option<Arc<crate::tls::InternalTls>>,
        writer: crate::replica::LogWriter,
        shutdown: CancellationToken,
    ) -> Arc<Broker> {
        let broker = Arc::new(Broker {
            metrics,
            replicas: Arc::new(
                ReplicaManager::with_config(
                    config.node_id,
                    Arc::new(logs),
                    ReplicaConfig::from_settings(&config.settings),
                )
                .with_writer(writer),
            ),
            metadata: RwLock::new(MetadataView::default()),
            shutdown,
            groups: GroupCoordinator::new(GroupConfig::from_settings(&config.settings)),
            txns: TxnCoordinator::new(TxnConfig::from_settings(&config.settings)),
            controller: Arc::new(controller),
            authorizer: crate::auth::authorizer::AuthorizerConfig::from_settings(&config.settings),
            quotas: crate::quota::QuotaManager::new(
                config.settings.long("quota.window.num"),
                config.settings.long("quota.window.size.seconds"),
            ),
            internal_tls: internal_tls.clone(),
            broker_epoch: AtomicI64::new(-1),
            ready: AtomicBool::new(false),
            producer_ids: tokio::sync::Mutex::new(ProducerIdBlock::default()),
            heartbeats_stopped: tokio::sync::Mutex::new(false),
            published: watch::channel(0).0,
            last_image: Mutex::new(None),
            config,
        });
        broker.replicas.set_internal_tls(internal_tls);
        broker
    }

    /// This incarnation's broker epoch (-1 before registration).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    /// Records the broker epoch the controller gave this incarnation.
    pub(crate) fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::Release);
    }

    /// Registered and caught up with the metadata log (`/readyz`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutdown.is_cancelled()
    }

    /// Marks the broker joined (or leaving, with `false`).
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Waits until the image up to log index `index` is published here.
    pub async fn wait_published(&self, index: u64) -> Result<(), ControllerError> {
        self.wait_published_within(index, Duration::from_secs(30)).await
    }

    /// [`Broker::wait_published`] with its own timeout.
    pub async fn wait_published_within(&self, index: u64, timeout: Duration) -> Result<(), ControllerError> {
        let mut rx = self.published.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|&published| published >= index)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ControllerError::NoController(timeout)),
        }
    }

    /// The hosted partition `tp`, if this broker hosts it.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.replicas.get(tp)
    }

    /// Node ids of the live (unfenced) brokers.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.metadata.read().live_broker_ids()
    }

    /// Hands out a producer id never given before in this cluster: from this
    /// broker's block, reserving a new block from the controller when it runs out.
    pub async fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        let mut block = self.producer_ids.lock().await;
        if block.next >= block.end {
            let command = Command::AllocateProducerIdBlock { broker_id: self.config.node_id };
            match self.controller.propose(command).await? {
                Ok(Outcome::ProducerIdBlock { first, size }) => {
                    *block = ProducerIdBlock { next: first, end: first + size }
                }
                other => {
                    return Err(ControllerError::Commit(format!(
                        "unexpected answer to a producer-id block: {other:?}"
                    )));
                }
            }
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}
