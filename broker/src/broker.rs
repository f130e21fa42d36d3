//! The broker's shared state and the operations that span its parts.
//!
//! [`Broker`] ties the configuration, this node's member of the controller
//! quorum, the metadata view, the hosted partition replicas and the metrics
//! together. Metadata changes (topics, partitions, configs, producer-id
//! blocks) are commands to the controller quorum; once committed and applied
//! here, the [`crate::publisher`] makes the partition replicas follow the
//! image (create, lead, follow, delete). An admin operation returns after
//! this broker has published the change, so a client that created a topic
//! sees it in its next Metadata request.
//!
//! Lifecycle: [`Broker::start`] opens the logs, starts the controller and the
//! internal gRPC server, registers with the active controller (receiving a
//! broker epoch), heartbeats, and waits until it has caught up with the
//! metadata log; [`Broker::controlled_shutdown`] (SIGTERM) moves its
//! leaderships away before it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::controller::image::{Command, CommandError, Outcome, TopicAssignment};
use crate::controller::{Controller, ControllerConfig, ControllerError};
use crate::group::{GroupConfig, GroupCoordinator};
use crate::log::{LogError, LogManager, TopicPartition};
use crate::metadata::{ConfigOp, MetadataError, MetadataView, TopicMetadata};
use crate::metrics::Metrics;
use crate::replica::{Partition, ReplicaConfig, ReplicaManager};

/// An admin operation that was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request was refused before reaching the controller.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The controller refused the change.
    #[error(transparent)]
    Refused(#[from] CommandError),
    /// The controller quorum could not be reached or could not commit.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// A partition log could not be created or deleted.
    #[error(transparent)]
    Log(#[from] LogError),
    /// DeleteTopics while `delete.topic.enable=false`.
    #[error("topic deletion is disabled on this broker (delete.topic.enable=false)")]
    DeletionDisabled,
}

/// What a client asked for when creating a topic.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partition count; -1 for `num.partitions`.
    pub num_partitions: i32,
    /// Replication factor; -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replica lists by partition (replaces the two counts).
    pub assignment: Vec<Vec<i32>>,
    /// Config overrides.
    pub configs: Vec<(String, String)>,
}

/// Producer ids of the block this broker holds: `next .. end`.
#[derive(Debug, Default)]
struct ProducerIdBlock {
    next: i64,
    end: i64,
}

/// Longest a starting broker waits for the metadata image to be published
/// here, which hosts every partition assigned to it.
const START_PUBLISH_TIMEOUT: Duration = Duration::from_secs(600);

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
    /// This node's member of the controller quorum.
    pub controller: Arc<Controller>,
    /// The internal plane's mutual TLS (`None`: plain, see `--internal-insecure`).
    pub internal_tls: Option<Arc<crate::tls::InternalTls>>,
    /// The broker epoch the controller gave this incarnation (-1 before registration).
    broker_epoch: AtomicI64,
    /// Registered, unfenced and caught up with the metadata log.
    ready: AtomicBool,
    producer_ids: tokio::sync::Mutex<ProducerIdBlock>,
    /// Highest metadata log index whose image this broker has published.
    pub(crate) published: watch::Sender<u64>,
    /// The last image published, for the publisher's diff.
    pub(crate) last_image: Mutex<Option<Arc<crate::controller::ClusterImage>>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
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

impl Broker {
    /// Opens the logs (with recovery), starts this node's controller and the
    /// internal gRPC server on `internal`, and joins the cluster: registers,
    /// heartbeats and publishes the metadata image. Returns once this broker
    /// is registered and has caught up; waits for a controller quorum as long
    /// as it takes (until `shutdown` is cancelled).
    pub async fn start(
        config: BrokerConfig,
        internal: tokio::net::TcpListener,
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
        let broker = Arc::new(Broker {
            metrics: Metrics::new(config.settings.bool("metrics.enabled")),
            replicas: Arc::new(ReplicaManager::with_config(
                config.node_id,
                Arc::new(logs),
                ReplicaConfig::from_settings(&config.settings),
            )),
            metadata: RwLock::new(MetadataView::default()),
            shutdown,
            groups: GroupCoordinator::new(GroupConfig::from_settings(&config.settings)),
            controller: Arc::new(controller),
            internal_tls: internal_tls.clone(),
            broker_epoch: AtomicI64::new(-1),
            ready: AtomicBool::new(false),
            producer_ids: tokio::sync::Mutex::new(ProducerIdBlock::default()),
            published: watch::channel(0).0,
            last_image: Mutex::new(None),
            config,
        });
        broker.replicas.set_internal_tls(internal_tls);
        broker.replicas.set_isr_channel(Arc::new(crate::publisher::ControllerIsrChannel::new(&broker)));
        crate::internal::serve(broker.clone(), internal);
        tokio::spawn(crate::publisher::run(broker.clone()));
        tokio::spawn(broker.replicas.clone().run_background(broker.shutdown.clone()));
        broker.join_cluster().await?;
        Ok(broker)
    }

    /// Names the cluster if nobody has, registers, starts heartbeating and
    /// waits until this broker has published the image up to its registration.
    async fn join_cluster(self: &Arc<Broker>) -> anyhow::Result<()> {
        let c = &self.config;
        // A single-node data dir of an older Strom keeps its cluster id and topics.
        let single_voter = self.controller.voters().len() == 1;
        let legacy = if single_voter { crate::metadata::legacy::read(&c.data_dir)? } else { None };
        let cluster_id = legacy.as_ref().map(|l| l.cluster_id.clone()).unwrap_or_else(crate::metadata::new_cluster_id);
        let cluster_id = Command::InitCluster { cluster_id };
        // Only the first proposal counts; a later one is applied as a no-op.
        let _ = self.retry_until_quorum("name the cluster", || self.controller.propose(cluster_id.clone())).await?;
        let register = Command::RegisterBroker {
            broker_id: c.node_id,
            incarnation_id: Uuid::new_v4(),
            advertised_endpoint: c.advertise.to_string(),
            internal_endpoint: c.internal_advertise.to_string(),
            rack: c.rack.clone(),
            max_partitions: Some(crate::open_files::max_broker_partitions(&c.settings)),
        };
        let committed =
            self.retry_until_quorum("register", || self.controller.propose_committed(register.clone())).await?;
        let epoch = match committed.result {
            Ok(Outcome::Registered { broker_epoch }) => broker_epoch,
            other => anyhow::bail!("the controller refused to register broker {}: {other:?}", c.node_id),
        };
        self.broker_epoch.store(epoch, Ordering::Release);
        // The first heartbeat unfences this broker through the log.
        let unfenced = self.heartbeat().await.unwrap_or(0);
        tokio::spawn(heartbeat_loop(self.clone()));
        // Publishing hosts every partition assigned here (a leader-epoch
        // checkpoint fsynced for each it leads): with tens of thousands of
        // partitions that takes longer than a request may wait.
        self.wait_published_within(committed.index.max(unfenced), START_PUBLISH_TIMEOUT).await?;
        if let Some(legacy) = legacy {
            self.import_legacy(legacy).await?;
        }
        // Only now may the publisher delete logs the image does not assign here.
        self.ready.store(true, Ordering::Release);
        tracing::info!(node_id = c.node_id, broker_epoch = epoch, "registered with the controller quorum");
        // On a quorum of one, the broker is the whole cluster: make
        // `__consumer_offsets` now so groups work from the first request.
        if self.controller.voters().len() == 1 {
            self.ensure_offsets_topic().await;
        }
        Ok(())
    }

    /// Creates the topics of an old single-node metadata file (same ids,
    /// replicas and configs) unless the image has them, moves the
    /// producer-id allocator past the old file's, then renames the file.
    async fn import_legacy(&self, legacy: crate::metadata::legacy::LegacyImage) -> anyhow::Result<()> {
        for (name, topic) in &legacy.topics {
            if self.controller.image().topics.contains_key(name) {
                continue;
            }
            let assignment = topic.partitions.iter().map(|p| p.replicas.clone()).collect();
            let command = Command::CreateTopic {
                name: name.clone(),
                topic_id: topic.id,
                assignment: TopicAssignment::Explicit(assignment),
                configs: topic.configs.clone(),
            };
            self.propose_published(command)
                .await
                .with_context(|| format!("cannot import topic `{name}` from the old metadata file"))?;
            tracing::info!(topic = %name, "imported topic from the old single-node metadata file");
        }
        while self.controller.image().producer_id_block_end < legacy.producer_id_block_end {
            let command = Command::AllocateProducerIdBlock { broker_id: self.config.node_id };
            self.controller.propose(command).await?.map_err(AdminError::from)?;
        }
        crate::metadata::legacy::mark_imported(&self.config.data_dir).with_context(|| {
            format!("cannot rename the imported metadata file in {}", self.config.data_dir.display())
        })?;
        Ok(())
    }

    async fn retry_until_quorum<T, F, Fut>(&self, what: &str, mut attempt: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ControllerError>>,
    {
        let mut warned = false;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e @ (ControllerError::NoController(_) | ControllerError::Forward { .. })) => {
                    if !warned {
                        tracing::warn!(error = %e, "waiting for the controller quorum to {what}");
                        warned = true;
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("cannot {what}")),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.shutdown.cancelled() => anyhow::bail!("shut down while waiting for the controller quorum to {what}"),
            }
        }
    }

    /// One heartbeat to the active controller; the log index it was
    /// committed at when it unfenced this broker (0 for a plain renewal).
    ///
    /// It gives up after a third of `broker.session.timeout.ms`: when the
    /// active controller freezes (SIGSTOP, a hung VM), the quorum elects
    /// another, which starts every session afresh; the next heartbeat must
    /// reach it before that session expires.
    async fn heartbeat(&self) -> Option<u64> {
        let broker_epoch = self.broker_epoch.load(Ordering::Acquire);
        let command = Command::BrokerHeartbeat { broker_id: self.config.node_id, broker_epoch };
        let session = self.config.settings.long("broker.session.timeout.ms").max(3) as u64;
        let timeout = Duration::from_millis(session / 3);
        match self.controller.propose_committed_within(command, timeout).await {
            Ok(c) => match c.result {
                Ok(_) => Some(c.index),
                Err(e) => {
                    tracing::error!(error = %e, "the controller refused this broker's heartbeat");
                    None
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat did not reach the controller");
                None
            }
        }
    }

    /// This incarnation's broker epoch.
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    /// Registered and caught up with the metadata log (`/readyz`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutdown.is_cancelled()
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

    /// Proposes `command` and waits until its effect is published on this broker.
    async fn propose_published(&self, command: Command) -> Result<Outcome, AdminError> {
        let committed = self.controller.propose_committed(command).await?;
        let outcome = committed.result?;
        self.wait_published(committed.index).await?;
        Ok(outcome)
    }

    /// Moves this broker's leaderships to other ISR members and takes it out
    /// of every ISR, before it stops (SIGTERM). Best effort: without a
    /// quorum the broker stops anyway and its session expires.
    pub async fn controlled_shutdown(&self) {
        self.ready.store(false, Ordering::Release);
        let command = Command::ControlledShutdown { broker_id: self.config.node_id, broker_epoch: self.broker_epoch() };
        match tokio::time::timeout(Duration::from_secs(10), self.propose_published(command)).await {
            Ok(Ok(_)) => tracing::info!("controlled shutdown: leaderships moved to other replicas"),
            Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown refused; stopping anyway"),
            Err(_) => tracing::warn!("controlled shutdown timed out; stopping anyway"),
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

    /// Creates a topic (or only checks it, when `validate_only`).
    pub async fn create_topic(&self, req: &NewTopic, validate_only: bool) -> Result<TopicMetadata, AdminError> {
        let settings = &self.config.settings;
        let assignment = if !req.assignment.is_empty() {
            if req.num_partitions != -1 || req.replication_factor != -1 {
                return Err(MetadataError::InvalidReplicaAssignment {
                    topic: req.name.clone(),
                    reason: "give either an assignment or counts of partitions and replicas, not both".into(),
                }
                .into());
            }
            TopicAssignment::Explicit(req.assignment.clone())
        } else {
            let partitions =
                if req.num_partitions == -1 { settings.long("num.partitions") as i32 } else { req.num_partitions };
            let replication_factor = if req.replication_factor == -1 {
                settings.long("default.replication.factor") as i32
            } else {
                req.replication_factor as i32
            };
            if partitions < 1 {
                return Err(MetadataError::InvalidPartitions {
                    topic: req.name.clone(),
                    requested: partitions,
                    reason: "a topic needs at least 1 partition".into(),
                }
                .into());
            }
            let live = self.live_brokers().len();
            if replication_factor < 1 || replication_factor as usize > live {
                return Err(MetadataError::InvalidReplicationFactor {
                    topic: req.name.clone(),
                    requested: replication_factor,
                    reason: format!("it must be from 1 to the number of live brokers, {live}"),
                }
                .into());
            }
            TopicAssignment::Computed { partitions, replication_factor }
        };
        let configs = req.configs.iter().cloned().collect();
        let command = Command::CreateTopic { name: req.name.clone(), topic_id: Uuid::new_v4(), assignment, configs };
        if validate_only {
            // Apply to a copy of the image: the controller's own checks, nothing committed.
            let mut image = self.controller.image();
            image.apply(u64::MAX, &command)?;
            let view = MetadataView::from_image(&image, -1);
            return view.topic(&req.name).cloned().ok_or_else(|| MetadataError::UnknownTopic(req.name.clone()).into());
        }
        self.propose_published(command).await?;
        tracing::info!(topic = %req.name, "created topic");
        self.metadata
            .read()
            .topic(&req.name)
            .cloned()
            .ok_or_else(|| MetadataError::UnknownTopic(req.name.clone()).into())
    }

    /// Deletes a topic; its logs go when the deletion is published.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicMetadata, AdminError> {
        if !self.config.settings.bool("delete.topic.enable") {
            return Err(AdminError::DeletionDisabled);
        }
        let topic =
            self.metadata.read().topic(name).cloned().ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        self.propose_published(Command::DeleteTopic { name: name.to_string() }).await?;
        tracing::info!(topic = %name, "deleted topic");
        Ok(topic)
    }

    /// Grows a topic to `total` partitions, with `assignment` for the new ones if given.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignment: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        self.metadata.read().validate_new_partitions(name, total)?;
        let command = Command::CreatePartitions { name: name.to_string(), total, assignment };
        if validate_only {
            self.controller.image().apply(u64::MAX, &command)?;
            return Ok(());
        }
        self.propose_published(command).await?;
        Ok(())
    }

    /// Alters a topic's config overrides; the logs follow when published.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        ops: &[ConfigOp],
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let configs = self.metadata.read().configs_after(name, ops)?;
        if validate_only {
            return Ok(());
        }
        self.propose_published(Command::AlterTopicConfigs { name: name.to_string(), configs }).await?;
        Ok(())
    }

    /// Hands out a producer id never given before in this cluster: from this
    /// broker's block, reserving a new block from the controller when it runs out.
    pub async fn allocate_producer_id(&self) -> Result<i64, AdminError> {
        let mut block = self.producer_ids.lock().await;
        if block.next >= block.end {
            let command = Command::AllocateProducerIdBlock { broker_id: self.config.node_id };
            match self.controller.propose(command).await?? {
                Outcome::ProducerIdBlock { first, size } => *block = ProducerIdBlock { next: first, end: first + size },
                other => {
                    return Err(ControllerError::Commit(format!(
                        "unexpected answer to a producer-id block: {other:?}"
                    ))
                    .into());
                }
            }
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }

    /// Creates `__consumer_offsets` when this node is the active controller,
    /// the topic does not exist, and enough brokers are live for its
    /// replication factor (`offsets.topic.replication.factor`, at most the
    /// number of voters, so a small cluster is not stuck forever).
    pub async fn ensure_offsets_topic(&self) {
        let image = self.controller.image();
        if image.topics.contains_key(crate::group::OFFSETS_TOPIC)
            || self.controller.active_controller() != Some(self.config.node_id as u64)
        {
            return;
        }
        let config = self.groups.config();
        let wanted = (config.offsets_topic_replication_factor as usize).min(self.controller.voters().len()).max(1);
        let live = image.brokers.values().filter(|b| !b.fenced).count();
        if live < wanted {
            return;
        }
        let request = NewTopic {
            name: crate::group::OFFSETS_TOPIC.to_string(),
            num_partitions: config.offsets_topic_partitions,
            replication_factor: wanted as i16,
            assignment: Vec::new(),
            configs: vec![
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), config.offsets_topic_segment_bytes.to_string()),
            ],
        };
        match self.create_topic(&request, false).await {
            Ok(_) | Err(AdminError::Refused(CommandError::TopicAlreadyExists(_))) => {}
            Err(e) => tracing::warn!(error = %e, "cannot create {} yet", crate::group::OFFSETS_TOPIC),
        }
    }
}

/// Heartbeats every `broker.heartbeat.interval.ms` until shutdown; the
/// active controller's duties that need a broker (creating
/// `__consumer_offsets`) ride on the same timer.
async fn heartbeat_loop(broker: Arc<Broker>) {
    let every = Duration::from_millis(broker.config.settings.long("broker.heartbeat.interval.ms").max(1) as u64);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = broker.shutdown.cancelled() => return,
        }
        broker.heartbeat().await;
        broker.ensure_offsets_topic().await;
    }
}
