//! Partition replicas hosted by this broker, and the leader/follower
//! replication between brokers.
//!
//! - [`partition`]: one replica — its role, leader epoch, ISR and high
//!   watermark; appends as leader and as follower.
//! - [`leader`]: a leader's follower tracking and its decisions (high
//!   watermark, ISR expand and shrink), as pure functions.
//! - [`fetcher`]: the follower's fetch sessions, one task per leader followed.
//! - [`transport`]: how a session sends its rounds: one `FetchStream` per
//!   leader, or `FetchPartitions` calls.
//! - [`service`]: the `Replication` gRPC service, the leader's side of fetch;
//!   [`stream`]: its `FetchStream` tasks and the transports' counters.
//! - [`error`]: what a replica refuses and why.
//!
//! The [`ReplicaManager`] owns the replicas. The controller's image drives it
//! through [`ReplicaManager::apply_leader_and_isr`]; leaders ask the
//! controller for ISR changes through an [`IsrChannel`]; the periodic ISR
//! check runs in [`ReplicaManager::run_background`].
//!
//! Ownership: a partition's log has one writer at a time — the produce path
//! while this broker leads, the partition's fetcher while it follows — and a
//! change of role holds the log's write lock, so the two never overlap. The
//! manager owns the fetcher tasks and cancels them on a new leader epoch,
//! deletion or shutdown.
//!
//! Damaged logs (see [`crate::log::scrub`]): a leader never serves a batch
//! that fails verification (KAFKA_STORAGE_ERROR) and steps aside for another
//! in-sync replica; a replica that knows of damage (found at open, while
//! serving, or by the background scrub in [`ReplicaManager::run_background`])
//! cuts its log below it once it follows a leader, and fetches the rest
//! again; a leader drops a follower whose log went back from the ISR at once.
//!
//! Invariants: consumers never see bytes at or above the high watermark, nor
//! a damaged batch, nor records past a damaged batch they have not got past;
//! the high watermark never goes backwards while this broker leads; a
//! follower truncates only where its log diverges from its leader's (by
//! leader epoch, KIP-101/KIP-279/KIP-320) or below a damaged batch, never by
//! high watermark.

pub mod error;
pub mod fetcher;
pub mod leader;
pub mod partition;
pub mod service;
pub mod stream;
pub mod throttle;
pub mod transport;
pub mod txn_markers;
pub mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use strom_proto::replication::replication_client::ReplicationClient;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub use error::ReplicaError;
pub use partition::{ConsumerRead, IsrProposal, LeaderAppend, Partition, Transition};
pub use stream::{FetchTransportCounts, FetchTransportStats};
pub use throttle::ReplicationThrottle;
pub use writer::LogWriter;

use crate::config::settings::Settings;
use crate::log::{LogConfig, LogError, LogManager, TopicPartition};
use fetcher::{FetchSession, Follow, SessionSetup};

/// How often high watermarks are checkpointed.
const HIGH_WATERMARK_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// Pause between two passes of the background scrub.
const SCRUB_PASS_PAUSE: Duration = Duration::from_secs(5);

/// Kafka error codes used between replicas.
pub mod error_codes {
    /// No error.
    pub const NONE: i32 = 0;
    /// The offset is outside the log.
    pub const OFFSET_OUT_OF_RANGE: i32 = 1;
    /// This broker does not lead (or host) the partition, or the asker is not a follower.
    pub const NOT_LEADER_OR_FOLLOWER: i32 = 6;
    /// The log failed on disk.
    pub const KAFKA_STORAGE_ERROR: i32 = 56;
    /// The asker's leader epoch is older than this replica's.
    pub const FENCED_LEADER_EPOCH: i32 = 74;
    /// The asker's leader epoch is newer than this replica's.
    pub const UNKNOWN_LEADER_EPOCH: i32 = 75;
}

/// A partition's leadership and ISR as the controller's image states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAndIsr {
    /// Leader broker id, -1 when the partition is offline.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch (changes with leader or ISR).
    pub partition_epoch: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// How a partition leader asks the controller to change its ISR (Kafka's
/// AlterPartition). Returns the new partition epoch once committed.
pub trait IsrChannel: Send + Sync + std::fmt::Debug {
    /// Proposes `new_isr` for `tp`, built on (`leader_epoch`, `partition_epoch`).
    fn alter_isr(
        &self,
        tp: TopicPartition,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, String>> + Send>>;
}

/// Replication settings (Kafka's `replica.*` broker settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// `replica.lag.time.max.ms`: a follower lagging this long leaves the ISR.
    pub lag_time_max: Duration,
    /// `replica.fetch.max.bytes`: bytes of records per partition and follower fetch.
    pub fetch_max_bytes: usize,
    /// `replica.fetch.response.max.bytes`: bytes of records per follower
    /// fetch, across the partitions it asks for.
    pub fetch_response_max_bytes: usize,
    /// `replica.fetch.wait.max.ms`: longest wait of a caught-up follower's fetch.
    pub fetch_wait_max: Duration,
    /// `replica.fetch.backoff.ms`: pause before retrying a failed fetch.
    pub fetch_backoff: Duration,
    /// `replica.socket.timeout.ms`: how long a fetch may take beyond its wait.
    pub socket_timeout: Duration,
    /// `replica.fetch.stream` (Strom's own, kept for measuring): fetch over
    /// one persistent `FetchStream` per leader; `false`, one
    /// `FetchPartitions` call per round.
    pub fetch_stream: bool,
    /// `log.scrub.bytes.per.second`: pace of the background scrub of sealed
    /// segments (0: off).
    pub scrub_bytes_per_sec: u64,
}

impl Default for ReplicaConfig {
    /// Kafka's defaults.
    fn default() -> ReplicaConfig {
        ReplicaConfig {
            lag_time_max: Duration::from_millis(30_000),
            fetch_max_bytes: 1024 * 1024,
            fetch_response_max_bytes: 10 * 1024 * 1024,
            fetch_wait_max: Duration::from_millis(500),
            fetch_backoff: Duration::from_millis(1000),
            socket_timeout: Duration::from_millis(30_000),
            fetch_stream: true,
            scrub_bytes_per_sec: 10 * 1024 * 1024,
        }
    }
}

impl ReplicaConfig {
    /// The replication settings of a broker's settings.
    pub fn from_settings(settings: &Settings) -> ReplicaConfig {
        let ms = |name: &str| Duration::from_millis(settings.long(name).max(0) as u64);
        ReplicaConfig {
            lag_time_max: ms("replica.lag.time.max.ms"),
            fetch_max_bytes: settings.long("replica.fetch.max.bytes").max(0) as usize,
            fetch_response_max_bytes: settings.long("replica.fetch.response.max.bytes").max(0) as usize,
            fetch_wait_max: ms("replica.fetch.wait.max.ms"),
            fetch_backoff: ms("replica.fetch.backoff.ms"),
            socket_timeout: ms("replica.socket.timeout.ms"),
            fetch_stream: settings.bool("replica.fetch.stream"),
            scrub_bytes_per_sec: settings.long("log.scrub.bytes.per.second").max(0) as u64,
        }
    }
}

/// A partition this broker fetches: at which epoch, from where; its token
/// is cancelled once it no longer fetches (stopped here or by its session).
#[derive(Debug)]
struct FetcherHandle {
    leader_epoch: i32,
    leader: LeaderAddress,
    cancel: CancellationToken,
}

/// A leader as a follower reaches it: its broker id and internal address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LeaderAddress {
    id: i32,
    endpoint: String,
}

/// All partition replicas of this broker, by topic-partition.
#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    logs: Arc<LogManager>,
    config: Arc<RwLock<ReplicaConfig>>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    isr_channel: RwLock<Option<Arc<dyn IsrChannel>>>,
    fetchers: Mutex<HashMap<TopicPartition, FetcherHandle>>,
    /// Fetch sessions by leader.
    sessions: Mutex<HashMap<LeaderAddress, FetchSession>>,
    /// Channels by leader: over mutual TLS, the leader's certificate must
    /// name the broker id the channel was opened for.
    channels: Mutex<HashMap<LeaderAddress, Channel>>,
    /// Mutual TLS for fetches from leaders (`None`: plain).
    internal_tls: RwLock<Option<Arc<crate::tls::InternalTls>>>,
    throttle: Arc<ReplicationThrottle>,
    /// Runs the appends of client produce and follower fetch (`log.writer.threads`).
    writer: Arc<LogWriter>,
    /// Follower fetches by transport, as leader and as follower.
    transport_stats: Arc<FetchTransportStats>,
    stop: CancellationToken,
}

impl ReplicaManager {
    /// Creates a manager over the broker's log manager for broker `node_id`,
    /// with Kafka's default replication settings.
    pub fn new(node_id: i32, logs: Arc<LogManager>) -> ReplicaManager {
        ReplicaManager::with_config(node_id, logs, ReplicaConfig::default())
    }

    /// Creates a manager with the given replication settings.
    pub fn with_config(node_id: i32, logs: Arc<LogManager>, config: ReplicaConfig) -> ReplicaManager {
        ReplicaManager {
            node_id,
            logs,
            config: Arc::new(RwLock::new(config)),
            partitions: RwLock::new(HashMap::new()),
            isr_channel: RwLock::new(None),
            fetchers: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            internal_tls: RwLock::new(None),
            throttle: Arc::new(ReplicationThrottle::default()),
            writer: Arc::new(LogWriter::blocking_pool()),
            transport_stats: Arc::new(FetchTransportStats::default()),
            stop: CancellationToken::new(),
        }
    }

    /// The manager with `writer` running its appends (a new manager's go
    /// to tokio's blocking pool).
    pub fn with_writer(mut self, writer: LogWriter) -> ReplicaManager {
        self.writer = Arc::new(writer);
        self
    }

    /// The threads that run appends to this broker's logs.
    pub fn writer(&self) -> &Arc<LogWriter> {
        &self.writer
    }

    /// Fetches from leaders go over mutual TLS with `tls` (set before the
    /// first follower starts; channels opened before keep their transport).
    pub fn set_internal_tls(&self, tls: Option<Arc<crate::tls::InternalTls>>) {
        *self.internal_tls.write() = tls;
    }

    /// This broker's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Where leaders send ISR changes (set once the controller is up).
    pub fn set_isr_channel(&self, channel: Arc<dyn IsrChannel>) {
        *self.isr_channel.write() = Some(channel);
    }

    /// The replication settings.
    pub fn replica_config(&self) -> ReplicaConfig {
        self.config.read().clone()
    }

    /// Replaces the replication settings (fetch sessions take them up at
    /// their next round).
    pub fn set_replica_config(&self, config: ReplicaConfig) {
        *self.config.write() = config;
    }

    /// Makes this broker host `tp` (opening or creating its log) in the role
    /// `state` gives it: leader when `state.leader` is this broker, else a
    /// follower fetching from `leader_endpoint` (the leader's internal
    /// address, `host:port`; `None` when the partition has no leader).
    ///
    /// Idempotent for an unchanged state; a state older than the applied one
    /// (lower leader epoch, or same epoch and lower partition epoch) is
    /// ignored. A new leader epoch restarts the follower's fetcher. Must run
    /// inside a tokio runtime (it spawns the fetcher), and may block briefly
    /// on file I/O (a new leader records its epoch).
    pub fn apply_leader_and_isr(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
        state: &LeaderAndIsr,
        leader_endpoint: Option<String>,
    ) -> Result<Arc<Partition>, LogError> {
        let partition = self.host(tp, config)?;
        let transition = partition.apply_state(state, now_ms())?;
        if transition != Transition::Stale {
            self.sync_fetcher(&partition, leader_endpoint);
        }
        Ok(partition)
    }

    /// The throttle on fetches of replicas catching up outside the ISR (see [`throttle`]).
    pub fn replication_throttle(&self) -> &ReplicationThrottle {
        &self.throttle
    }

    /// Follower fetches by transport (streams, calls, fallbacks; see [`stream`]).
    pub fn fetch_transport_stats(&self) -> &Arc<FetchTransportStats> {
        &self.transport_stats
    }

    /// The broker's log manager.
    pub fn logs(&self) -> &Arc<LogManager> {
        &self.logs
    }

    /// Makes this broker host `tp` as the only replica and leader at
    /// `leader_epoch` (single-node clusters, before the controller drives
    /// replicas through [`ReplicaManager::apply_leader_and_isr`]).
    pub fn become_leader(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
        leader_epoch: i32,
    ) -> Result<Arc<Partition>, LogError> {
        let partition_epoch = self.get(tp).map_or(0, |p| p.leader_and_isr().partition_epoch.max(0));
        let state = LeaderAndIsr {
            leader: self.node_id,
            leader_epoch,
            partition_epoch,
            replicas: vec![self.node_id],
            isr: vec![self.node_id],
        };
        self.apply_leader_and_isr(tp, config, &state, None)
    }

    /// The hosted partition, if any.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    /// Every hosted partition.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Stops hosting `tp`: stops its fetcher and deletes its log.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), LogError> {
        self.stop_fetcher(tp);
        // Damage its log had at open must not follow a new partition of the same name.
        let _ = crate::log::scrub::take_damage_found_at_open(tp);
        self.throttle.set(tp, None);
        if let Some(partition) = self.partitions.write().remove(tp) {
            partition.make_offline();
        }
        if self.logs.get(tp).is_some() {
            self.logs.remove(tp)?;
        }
        Ok(())
    }

    /// Applies a topic's (new) log configuration to all its hosted partitions.
    pub fn set_topic_config(&self, topic: &str, config: LogConfig) {
        self.logs.set_topic_config(topic, config);
    }

    /// Periodic replication work until `shutdown` is cancelled: leaders
    /// check for followers that lagged out of the ISR (every half
    /// `replica.lag.time.max.ms`, as Kafka), and step aside if their log is
    /// damaged; the background scrub runs on a thread of its own meanwhile
    /// (`log.scrub.bytes.per.second`). On shutdown every fetcher stops.
    ///
    /// High watermarks are checkpointed every five seconds (Kafka's
    /// `replica.high.watermark.checkpoint.interval.ms` default) and once more
    /// on shutdown.
    pub async fn run_background(self: Arc<Self>, shutdown: CancellationToken) {
        // The background scrub, on a blocking thread of its own; it stops
        // when this task ends or is dropped.
        let scrub_stop = CancellationToken::new();
        let _stop_scrub = scrub_stop.clone().drop_guard();
        let scrub = {
            let manager = self.clone();
            tokio::task::spawn_blocking(move || manager.run_scrub(&scrub_stop))
        };
        let mut last_checkpoint = tokio::time::Instant::now();
        loop {
            let lag = self.config.read().lag_time_max;
            let period = (lag / 2).clamp(Duration::from_millis(10), HIGH_WATERMARK_CHECKPOINT_INTERVAL);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
            self.check_isr(now_ms());
            if last_checkpoint.elapsed() >= HIGH_WATERMARK_CHECKPOINT_INTERVAL {
                last_checkpoint = tokio::time::Instant::now();
                let manager = self.clone();
                let _ = tokio::task::spawn_blocking(move || manager.checkpoint_high_watermarks()).await;
            }
        }
        self.shutdown();
        drop(_stop_scrub);
        let _ = scrub.await;
        let manager = self.clone();
        let _ = tokio::task::spawn_blocking(move || manager.checkpoint_high_watermarks()).await;
    }

    /// The background scrub (see [`crate::log::scrub`]): pass after pass,
    /// reads every segment of every hosted partition (the active one up to
    /// its size when the pass reaches it) at
    /// `log.scrub.bytes.per.second` and verifies its batches; damage goes to
    /// the partition ([`Partition::scrub_found`]). Returns once `stop` is
    /// cancelled.
    ///
    /// Blocking: runs on a thread of its own.
    fn run_scrub(&self, stop: &CancellationToken) {
        let mut pacer = ScrubPacer { config: self.config.clone(), owed: Duration::ZERO };
        while !stop.is_cancelled() {
            if self.config.read().scrub_bytes_per_sec == 0 {
                // Off: look again later.
                if !sleep_unless_stopped(Duration::from_secs(1), stop) {
                    return;
                }
                continue;
            }
            let mut partitions = self.partitions();
            partitions.sort_by(|a, b| a.topic_partition().cmp(b.topic_partition()));
            for partition in partitions {
                if !self.scrub_partition(&partition, &mut pacer, stop) {
                    return;
                }
            }
            if !sleep_unless_stopped(SCRUB_PASS_PAUSE, stop) {
                return;
            }
        }
    }

    /// Scrubs `partition`'s segments, each (the active one too) up to its
    /// size when the pass reaches the partition (appended batches are whole
    /// once the log's lock is released); `false` once stopped.
    fn scrub_partition(&self, partition: &Arc<Partition>, pacer: &mut ScrubPacer, stop: &CancellationToken) -> bool {
        let segments: Vec<(i64, std::path::PathBuf, u64, (u64, u64))> = {
            let log = partition.log().read();
            log.segments().map(|s| (s.base_offset(), s.log_path().to_owned(), s.size(), s.trust())).collect()
        };
        for (base, path, size, trust) in segments {
            // Gone meanwhile (retention, compaction, truncation): nothing to verify.
            let Ok(file) = std::fs::File::open(&path) else { continue };
            let scan = crate::log::scrub::scan_segment_paced(&file, &path, size, base, |bytes| pacer.pace(bytes, stop));
            let damage = match scan {
                Ok(Some(scan)) => match scan.damage {
                    Some(damage) => damage,
                    None => {
                        // Sound as scanned: consumer reads of it need no
                        // check (verify.reads=once), unless the bytes or
                        // the marks changed meanwhile.
                        let log = partition.log().read();
                        if let Some(s) = log.segments().find(|s| s.base_offset() == base && s.trust() == trust) {
                            s.mark_verified(0, size);
                        }
                        continue;
                    }
                },
                Ok(None) => return false,
                Err(e) => {
                    // Truncated meanwhile (a new lineage): nothing to say.
                    let log = partition.log().read();
                    if log.segments().any(|s| s.base_offset() == base && s.lineage() == trust.0) {
                        tracing::warn!(partition = %partition.topic_partition(), segment = %path.display(), "scrub could not read a segment: {e}");
                    }
                    continue;
                }
            };
            match partition.scrub_found(base, trust.0, &damage) {
                Ok(true) => {
                    // Its fetcher starts again from the new log end.
                    let tp = partition.topic_partition();
                    let endpoint = self.fetchers.lock().remove(tp).map(|old| {
                        old.cancel.cancel();
                        old.leader.endpoint
                    });
                    self.sync_fetcher(partition, endpoint);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(partition = %partition.topic_partition(), "repairing a damaged log failed: {e}")
                }
            }
            break;
        }
        true
    }

    /// Checkpoints every hosted partition's high watermark that moved (for
    /// shutdown, next to flushing the logs). A failure is logged and the
    /// other partitions go on.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub fn checkpoint_high_watermarks(&self) {
        for partition in self.partitions() {
            if let Err(e) = partition.checkpoint_high_watermark() {
                tracing::warn!(partition = %partition.topic_partition(), "high watermark checkpoint failed: {e}");
            }
        }
    }

    /// One ISR check over the partitions this broker leads: a leader that
    /// found its log damaged steps aside, others drop lagging followers.
    pub fn check_isr(&self, now_ms: i64) {
        let lag_ms = self.config.read().lag_time_max.as_millis() as i64;
        for partition in self.partitions() {
            if let Some(proposal) = partition.maybe_resign(now_ms) {
                self.send_isr_proposal(partition, proposal);
            } else if let Some(proposal) = partition.maybe_shrink_isr(now_ms, lag_ms) {
                self.send_isr_proposal(partition, proposal);
            }
        }
    }

    /// Stops every fetcher; no new one starts afterwards.
    pub fn shutdown(&self) {
        self.stop.cancel();
        for (_, fetcher) in self.fetchers.lock().drain() {
            fetcher.cancel.cancel();
        }
    }

    /// Resolves once [`ReplicaManager::shutdown`] was called.
    pub(crate) async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Sends a leader's ISR change to the controller in the background; its
    /// answer goes back to the partition.
    pub(crate) fn send_isr_proposal(&self, partition: Arc<Partition>, proposal: IsrProposal) {
        let channel = self.isr_channel.read().clone();
        let (Some(channel), Ok(runtime)) = (channel, tokio::runtime::Handle::try_current()) else {
            partition.complete_isr_proposal(
                &proposal,
                Err("no controller channel for ISR changes yet".into()),
                now_ms(),
            );
            return;
        };
        runtime.spawn(async move {
            let tp = partition.topic_partition().clone();
            let result =
                channel.alter_isr(tp, proposal.leader_epoch, proposal.partition_epoch, proposal.isr.clone()).await;
            partition.complete_isr_proposal(&proposal, result, now_ms());
        });
    }

    /// The replica of `tp`, created (with its log) if absent.
    fn host(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<Partition>, LogError> {
        if let Some(p) = self.get(tp) {
            p.log().write().set_config(config);
            return Ok(p);
        }
        let log = self.logs.get_or_create(tp, config)?;
        let mut partitions = self.partitions.write();
        let partition = partitions
            .entry(tp.clone())
            .or_insert_with(|| Arc::new(Partition::new(tp.clone(), self.node_id, log)))
            .clone();
        Ok(partition)
    }

    /// Starts, keeps or stops `partition`'s fetcher to match its role.
    fn sync_fetcher(&self, partition: &Arc<Partition>, endpoint: Option<String>) {
        let tp = partition.topic_partition();
        let current = partition.leader_and_isr();
        let follows = current.leader >= 0 && current.leader != self.node_id;
        let Some(endpoint) = endpoint.filter(|_| follows) else {
            if follows {
                tracing::warn!(partition = %tp, leader = current.leader, "no address for the leader: not fetching");
            }
            self.stop_fetcher(tp);
            return;
        };
        let leader = LeaderAddress { id: current.leader, endpoint };
        let mut fetchers = self.fetchers.lock();
        if let Some(running) = fetchers.get(tp)
            && running.leader_epoch == current.leader_epoch
            && running.leader == leader
            && !running.cancel.is_cancelled()
        {
            return;
        }
        if let Some(old) = fetchers.remove(tp) {
            old.cancel.cancel();
        }
        if self.stop.is_cancelled() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(partition = %tp, "apply_leader_and_isr ran outside a tokio runtime: cannot start the fetcher");
            return;
        };
        let mut sessions = self.sessions.lock();
        let session = match sessions.get(&leader) {
            Some(session) if session.is_running() => session,
            _ => {
                let client = match self.client_for(&leader) {
                    Ok(client) => client,
                    Err(e) => {
                        tracing::error!(partition = %tp, endpoint = leader.endpoint, "cannot fetch from the leader's address: {e}");
                        return;
                    }
                };
                let setup = SessionSetup {
                    node_id: self.node_id,
                    endpoint: leader.endpoint.clone(),
                    client,
                    config: self.config.clone(),
                    throttle: self.throttle.clone(),
                    writer: self.writer.clone(),
                    leader_id: leader.id,
                    stats: self.transport_stats.clone(),
                    stop: self.stop.child_token(),
                };
                sessions.insert(leader.clone(), FetchSession::start(&runtime, setup));
                &sessions[&leader]
            }
        };
        let cancel = self.stop.child_token();
        session.join(Follow {
            partition: partition.clone(),
            leader: current.leader,
            leader_epoch: current.leader_epoch,
            cancel: cancel.clone(),
        });
        fetchers.insert(tp.clone(), FetcherHandle { leader_epoch: current.leader_epoch, leader, cancel });
    }

    fn stop_fetcher(&self, tp: &TopicPartition) {
        if let Some(old) = self.fetchers.lock().remove(tp) {
            old.cancel.cancel();
        }
    }

    /// A client on the (cached, lazily connected) channel to `leader`:
    /// over mutual TLS, only a certificate naming the leader's broker id is
    /// accepted at its address (another broker of the cluster cannot pose
    /// as the leader).
    fn client_for(&self, leader: &LeaderAddress) -> Result<ReplicationClient<Channel>, tonic::transport::Error> {
        let mut channels = self.channels.lock();
        let channel = match channels.get(leader) {
            Some(c) => c.clone(),
            None => {
                let connect_timeout = self.config.read().socket_timeout;
                let tls = self.internal_tls.read().clone();
                let channel =
                    crate::tls::channel(tls.as_ref(), &leader.endpoint, Some(leader.id), Some(connect_timeout))?;
                channels.insert(leader.clone(), channel.clone());
                channel
            }
        };
        Ok(ReplicationClient::new(channel).max_decoding_message_size(usize::MAX))
    }
}

/// Keeps the background scrub at `log.scrub.bytes.per.second`.
#[derive(Debug)]
struct ScrubPacer {
    config: Arc<RwLock<ReplicaConfig>>,
    /// Time owed for bytes read and not yet slept for.
    owed: Duration,
}

impl ScrubPacer {
    /// Accounts for `bytes` read, sleeping to keep the rate (waiting while
    /// the rate is 0, the scrub being off); `false` once `stop` is cancelled.
    fn pace(&mut self, bytes: u64, stop: &CancellationToken) -> bool {
        let rate = loop {
            match self.config.read().scrub_bytes_per_sec {
                0 if !sleep_unless_stopped(Duration::from_secs(1), stop) => return false,
                0 => {}
                rate => break rate,
            }
        };
        self.owed += Duration::from_secs_f64(bytes as f64 / rate as f64);
        if self.owed >= Duration::from_millis(50) {
            let owed = std::mem::take(&mut self.owed);
            return sleep_unless_stopped(owed, stop);
        }
        !stop.is_cancelled()
    }
}

/// Sleeps for `duration` in short steps; `false` once `stop` is cancelled.
fn sleep_unless_stopped(duration: Duration, stop: &CancellationToken) -> bool {
    let deadline = std::time::Instant::now() + duration;
    while !stop.is_cancelled() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    false
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
