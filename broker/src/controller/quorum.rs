//! [`Controller`]: one node of the controller quorum — its Raft instance, its
//! stores under `<data-dir>/controller/`, and its `Raft` gRPC service.
//!
//! Bootstrap: a node whose log and vote are empty (configured voter or not,
//! as voters change after bootstrap, see [`super::voters`]) first finds out
//! whether a quorum already exists and whether it votes in it (see
//! [`super::rejoin`]); a configured voter of a new cluster asks every other voter,
//! and initializes the quorum with the configured voters only once all of
//! them answered and none has a log beyond the bootstrap entry. Every voter
//! of a new cluster does so with the same voter set; openraft accepts that
//! (identical membership at log index 0 everywhere) and refuses it once a
//! node has a log, which is then ignored — so starting every voter, in any
//! order, forms one quorum. A one-voter quorum initializes at once.
//!
//! A voter that lost its data dir (a replaced disk, an `Ephemeral` pod
//! restarted) finds a peer with a log and rejoins instead of bootstrapping
//! again: it takes no part in Raft until the active controller has removed
//! it from the voters, catches up as a learner, and is made a voter again
//! by a second membership change; only then does it vote. Until then it is
//! not ready (`/readyz`). Why that is safe, and why the leader is built with
//! openraft's `loosen-follower-log-revert`, is in [`super::rejoin`].
//!
//! Proposals go to the active controller: applied locally if this node leads,
//! forwarded over `Propose` otherwise. A proposal is retried only while no
//! leader is known or the called node says it is not the leader (the command
//! was then certainly not appended); any other failure is returned, because
//! the command may or may not have been committed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use parking_lot::RwLock;
use strom_proto::raft::raft_server::RaftServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use super::describe::{DescribeQuorumError, QuorumDescription, describe};
use super::image::{ClusterImage, Command, CommandResult};
use super::log_store::LogStore;
use super::network::{
    ActiveController, Committed, NetworkFactory, PeerClient, ProposeError, RaftService, propose_locally,
};
use super::rejoin::{Bootstrapper, DirMeta, Gate, Stage};
use super::state_machine::{AppliedState, StateMachine};
use super::voters::{VoterChangeError, VoterChangeRequest, VoterProgress};
use super::{NodeId, Raft};

/// A controller node failed to start or to get a command committed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The `--voters` value cannot be used.
    #[error("invalid controller voters `{value}`: {reason}; expected ID@HOST:PORT,... e.g. 0@strom-0:9093")]
    InvalidVoters { value: String, reason: String },
    /// The controller's files cannot be read or written.
    #[error("controller storage in {dir}: {source}")]
    Storage { dir: PathBuf, source: std::io::Error },
    /// openraft refused to start or initialize.
    #[error("controller quorum failed to start: {0}")]
    Start(String),
    /// No active controller is known, or none answered in time.
    #[error("no active controller after {0:?}; is a majority of voters up and reachable?")]
    NoController(Duration),
    /// The active controller could not be reached or failed; the command may or may not be committed.
    #[error("forwarding to the active controller {leader} failed: {reason}")]
    Forward { leader: NodeId, reason: String },
    /// The quorum could not commit the command.
    #[error("the controller quorum could not commit the command: {0}")]
    Commit(String),
    /// Only the active controller takes this request, and this node is not it.
    #[error("this broker is not the active controller; broker {leader} is: send the request there")]
    NotActive { leader: NodeId },
    /// The controller dir belongs to another node.
    #[error(
        "controller dir {dir} belongs to node {found}, not to this node {expected}; \
         point --data-dir at this node's own dir, or at an empty one to rejoin as node {expected}"
    )]
    ForeignDir { dir: PathBuf, found: NodeId, expected: NodeId },
}

/// Settings of one controller node.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This node's id (its broker id).
    pub node_id: NodeId,
    /// Voter ids and their internal (gRPC) addresses.
    pub voters: BTreeMap<NodeId, String>,
    /// The broker's data dir; the controller keeps its files in `controller/` inside it.
    pub data_dir: PathBuf,
    /// Leader heartbeat period.
    pub heartbeat_interval: Duration,
    /// A follower without heartbeats for a random time in this range starts an election.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is taken after this many entries since the last one, and the log before it purged.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot, so a briefly lagging follower
    /// catches up from the log rather than from a whole snapshot.
    pub log_kept_after_snapshot: u64,
    /// How long a proposal may wait for a leader and a commit.
    pub propose_timeout: Duration,
    /// A broker without heartbeats for this long is fenced (`broker.session.timeout.ms`).
    pub session_timeout: Duration,
    /// Mutual TLS to the other nodes (`None`: plain).
    pub internal_tls: Option<Arc<crate::tls::InternalTls>>,
}

impl ControllerConfig {
    /// A node of the quorum `voters`, with production timings.
    pub fn new(node_id: NodeId, voters: BTreeMap<NodeId, String>, data_dir: impl Into<PathBuf>) -> ControllerConfig {
        ControllerConfig {
            node_id,
            voters,
            data_dir: data_dir.into(),
            // openraft waits out a leader lease (about the longest election
            // timeout) before its own election timeout starts, so these are
            // kept short for a controller failover near KRaft's ~2 s.
            heartbeat_interval: Duration::from_millis(200),
            election_timeout: (Duration::from_millis(800), Duration::from_millis(1400)),
            snapshot_every: 5000,
            log_kept_after_snapshot: 1000,
            propose_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(9),
            internal_tls: None,
        }
    }

    /// The single-node default: a one-voter quorum of this node.
    pub fn single_node(node_id: NodeId, internal_addr: &str, data_dir: impl Into<PathBuf>) -> ControllerConfig {
        ControllerConfig::new(node_id, BTreeMap::from([(node_id, internal_addr.to_string())]), data_dir)
    }
}

/// Parses `--voters`: `ID@HOST:PORT,...`.
pub fn parse_voters(value: &str) -> Result<BTreeMap<NodeId, String>, ControllerError> {
    let invalid = |reason: String| ControllerError::InvalidVoters { value: value.to_string(), reason };
    let mut voters = BTreeMap::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('@').ok_or_else(|| invalid(format!("`{part}` has no `@`")))?;
        let id: NodeId = id.parse().map_err(|_| invalid(format!("`{id}` is not a node id")))?;
        // A node id is a broker id: its certificate names an i32.
        if i32::try_from(id).is_err() {
            return Err(invalid(format!("node id {id} is beyond {}, the highest broker id", i32::MAX)));
        }
        if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            return Err(invalid(format!("`{addr}` is not HOST:PORT")));
        }
        if voters.insert(id, addr.to_string()).is_some() {
            return Err(invalid(format!("node {id} is listed twice")));
        }
    }
    if voters.is_empty() {
        return Err(invalid("no voters".into()));
    }
    Ok(voters)
}

/// The image applied on a node and the log index it is at.
#[derive(Debug, Clone)]
pub struct MetadataSnapshot {
    /// Index of the last entry applied.
    pub index: u64,
    /// The image after it.
    pub image: ClusterImage,
}

/// A running controller node.
pub struct Controller {
    node_id: NodeId,
    raft: Raft,
    state: Arc<RwLock<AppliedState>>,
    voters: BTreeMap<NodeId, BasicNode>,
    propose_timeout: Duration,
    active: ActiveController,
    server: parking_lot::Mutex<Option<JoinHandle<()>>>,
    liveness: JoinHandle<()>,
    gate: Gate,
    /// The quorum told this empty node it is no voter (it may be a
    /// configured one: the configuration names voters not added yet).
    learner: Arc<AtomicBool>,
    bootstrap: parking_lot::Mutex<Option<JoinHandle<()>>>,
    internal_tls: Option<Arc<crate::tls::InternalTls>>,
    /// The storage's file writes on the blocking pool, waited for at shutdown.
    io: TaskTracker,
}

/// The voters an empty node goes by while its log holds no membership: the
/// configured ones, less itself once the quorum said it is no voter (a
/// broker started with a `voters` line that already names it, before the
/// voter change that adds it, must ask the others for the active
/// controller instead of waiting to be elected).
fn fallback_voters(configured: &BTreeMap<NodeId, BasicNode>, me: NodeId, learner: bool) -> Vec<NodeId> {
    configured.keys().copied().filter(|id| !(learner && *id == me)).collect()
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

fn storage_error(dir: &Path) -> impl FnOnce(std::io::Error) -> ControllerError + '_ {
    move |source| ControllerError::Storage { dir: dir.to_path_buf(), source }
}

impl Controller {
    /// Starts the node, serving the `Raft` service on `listener` (the
    /// internal address the other voters know it by).
    pub async fn start(config: ControllerConfig, listener: TcpListener) -> Result<Controller, ControllerError> {
        let controller = Controller::start_unserved(config).await?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let service = controller.raft_service();
        let node_id = controller.node_id;
        *controller.server.lock() = Some(tokio::spawn(async move {
            if let Err(e) = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await
            {
                tracing::error!(node_id, error = %e, "controller gRPC server stopped");
            }
        }));
        Ok(controller)
    }

    /// Starts the node without serving it: the caller mounts
    /// [`Controller::raft_service`] on its own gRPC server (the broker's
    /// internal listener), which must be up for the quorum to form.
    pub async fn start_unserved(config: ControllerConfig) -> Result<Controller, ControllerError> {
        let dir = config.data_dir.join("controller");
        let open_dir = dir.clone();
        let io = TaskTracker::new();
        let store_io = io.clone();
        let (log_store, state_machine, meta) = tokio::task::spawn_blocking(move || {
            let log_store = LogStore::open(&open_dir, store_io.clone())?;
            let state_machine = StateMachine::open(&open_dir, store_io)?;
            Ok::<_, std::io::Error>((log_store, state_machine, DirMeta::read(&open_dir)?))
        })
        .await
        .map_err(|e| ControllerError::Start(e.to_string()))?
        .map_err(storage_error(&dir))?;
        let fresh = log_store.is_empty();
        if let Some(meta) = &meta
            && meta.node_id != config.node_id
        {
            return Err(ControllerError::ForeignDir { dir, found: meta.node_id, expected: config.node_id });
        }
        if !fresh && meta.is_none() {
            // A dir of an older Strom, or a crash right after the first write: name it now.
            let meta = DirMeta { node_id: config.node_id, directory_id: uuid::Uuid::new_v4() };
            let meta_dir = dir.clone();
            tokio::task::spawn_blocking(move || meta.write(&meta_dir))
                .await
                .map_err(|e| ControllerError::Start(e.to_string()))?
                .map_err(storage_error(&dir))?;
        }
        let state = state_machine.state();

        let ms = |d: Duration| d.as_millis().max(1) as u64;
        let raft_config = openraft::Config {
            cluster_name: "strom-controller".into(),
            heartbeat_interval: ms(config.heartbeat_interval),
            election_timeout_min: ms(config.election_timeout.0),
            election_timeout_max: ms(config.election_timeout.1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.log_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::Start(e.to_string()))?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            NetworkFactory::new(config.internal_tls.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ControllerError::Start(e.to_string()))?;

        let node_id = config.node_id;
        let voters: BTreeMap<NodeId, BasicNode> =
            config.voters.iter().map(|(id, addr)| (*id, BasicNode::new(addr.clone()))).collect();
        // A voter bootstraps the quorum (a single voter at once; one of several
        // once it knows no quorum exists, or it rejoins one); any other node
        // waits to be added as a learner by the active controller when it
        // registers.
        let gate = Gate::new(Stage::Open);
        let learner = Arc::new(AtomicBool::new(false));
        let mut bootstrap = None;
        if fresh && voters.len() == 1 && voters.contains_key(&node_id) {
            match raft.initialize(voters.clone()).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    let _ = raft.shutdown().await;
                    return Err(ControllerError::Start(e.to_string()));
                }
            }
        } else if fresh {
            // Voter or not by the configuration, an empty node asks the
            // quorum first: it may be a voter added after bootstrap.
            gate.set(Stage::Closed);
            let bootstrapper = Bootstrapper {
                raft: raft.clone(),
                me: node_id,
                voters: voters.clone(),
                known: parking_lot::Mutex::new(voters.clone()),
                gate: gate.clone(),
                learner: learner.clone(),
                dir,
                meta,
                tls: config.internal_tls.clone(),
            };
            bootstrap = Some(tokio::spawn(bootstrapper.run()));
        }
        let active = ActiveController { state: state.clone(), ..Default::default() };
        let liveness = tokio::spawn(fence_silent_brokers(
            raft.clone(),
            active.clone(),
            config.session_timeout,
            config.heartbeat_interval,
        ));
        Ok(Controller {
            node_id,
            raft,
            state,
            voters,
            propose_timeout: config.propose_timeout,
            active,
            server: Default::default(),
            liveness,
            gate,
            learner,
            bootstrap: parking_lot::Mutex::new(bootstrap),
            internal_tls: config.internal_tls.clone(),
            io,
        })
    }

    /// The `Raft` gRPC service of this node, to mount on a server.
    pub fn raft_service(&self) -> RaftServer<RaftService> {
        RaftServer::new(
            RaftService::new(self.raft.clone(), self.active.clone())
                .with_gate(self.gate.clone())
                .with_peers(self.internal_tls.clone(), self.voters.clone()),
        )
    }

    /// Whether this node is a voter still deciding how to start, or rejoining
    /// after losing its log (it takes no full part in the quorum yet).
    pub fn rejoining(&self) -> bool {
        self.gate.stage() != Stage::Open
    }

    /// Whether this node is a full voter: a voter in the membership its log
    /// holds, not rejoining.
    pub fn is_voter(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        !self.rejoining() && m.membership_config.membership().voter_ids().any(|v| v == self.node_id)
    }

    /// Why this node's view of the quorum is unhealthy, `None` when it is
    /// healthy: a voter rejoining, or Raft stopped by a fatal error.
    pub fn unhealthy(&self) -> Option<String> {
        if self.rejoining() {
            return Some(format!("controller node {} is rejoining the quorum ({:?})", self.node_id, self.gate.stage()));
        }
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        match &m.running_state {
            Ok(()) => None,
            Err(fatal) => Some(format!("controller node {} stopped: {fatal}", self.node_id)),
        }
    }

    /// The voters: those of the membership this node's log holds, or the
    /// configured (bootstrap) voters while it holds none (less this node
    /// once the quorum said it is no voter).
    pub fn voters(&self) -> Vec<NodeId> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        if voters.is_empty() {
            fallback_voters(&self.voters, self.node_id, self.learner.load(Ordering::Acquire))
        } else {
            voters
        }
    }

    /// How many voters the quorum is meant to have: the voters, and those
    /// rejoining after losing their log (no voters until they caught up; a
    /// voter of a new cluster that started after the others formed the
    /// quorum is one, see [`super::rejoin`]). Read from the applied state
    /// alone, where a node is recorded as rejoining before its removal and
    /// forgotten after it is a voter again, so no read counts it out.
    pub fn quorum_size(&self) -> usize {
        let state = self.state.read();
        let members = state.membership.membership();
        let voters: BTreeSet<NodeId> = members.voter_ids().collect();
        if voters.is_empty() {
            return fallback_voters(&self.voters, self.node_id, self.learner.load(Ordering::Acquire)).len();
        }
        let rejoining = state.image.rejoining_voters.iter();
        voters.len() + rejoining.filter(|id| members.get_node(id).is_some() && !voters.contains(id)).count()
    }

    /// Waits until an empty node has decided how to start (form a quorum,
    /// rejoin it, or wait to be a learner); at once for a node with a log.
    pub async fn wait_start_decided(&self) {
        while self.bootstrap.lock().as_ref().is_some_and(|b| !b.is_finished())
            && self.gate.stage() == Stage::Closed
            && !self.learner.load(Ordering::Acquire)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The internal address of node `id`: from the membership this node's
    /// log holds, else from the configured voters.
    fn address_of(&self, id: NodeId) -> Option<BasicNode> {
        let known = self.raft.metrics().borrow().membership_config.membership().get_node(&id).cloned();
        known.or_else(|| self.voters.get(&id).cloned())
    }

    /// Waits until this node has applied the log up to `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), ControllerError> {
        if self.applied_index().is_some_and(|i| i >= index) {
            return Ok(());
        }
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "metadata catch-up")
            .await
            .map(|_| ())
            .map_err(|_| ControllerError::NoController(timeout))
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The active controller as this node knows it.
    pub fn active_controller(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// A copy of the metadata image as applied on this node.
    pub fn image(&self) -> ClusterImage {
        self.state.read().image.clone()
    }

    /// The image as applied on this node, with the index of the last entry applied.
    pub fn snapshot(&self) -> MetadataSnapshot {
        let state = self.state.read();
        MetadataSnapshot { index: state.last_applied.map(|l| l.index).unwrap_or(0), image: state.image.clone() }
    }

    /// The log index of the last entry applied on this node.
    pub fn applied_index(&self) -> Option<u64> {
        self.state.read().last_applied.map(|l| l.index)
    }

    /// The openraft handle, for metrics and membership changes.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Gets `command` committed by the quorum and returns what applying it
    /// produced (`Err` inside when the state machine refused it).
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ControllerError> {
        Ok(self.propose_committed(command).await?.result)
    }

    /// Like [`Controller::propose`], and also waits until this node has
    /// applied the entry, so its image shows the change.
    pub async fn propose_and_apply(&self, command: Command) -> Result<CommandResult, ControllerError> {
        let committed = self.propose_committed(command).await?;
        self.wait_applied(committed.index, self.propose_timeout).await?;
        Ok(committed.result)
    }

    /// [`Controller::propose`] with the entry's log index.
    pub async fn propose_committed(&self, command: Command) -> Result<Committed, ControllerError> {
        self.propose_committed_within(command, self.propose_timeout).await
    }

    /// [`Controller::propose_committed`], giving up after `timeout`. A broker
    /// heartbeat uses a timeout well inside its session: a heartbeat stuck on
    /// a controller that froze must end in time for the next one to reach
    /// the controller elected in its place, or that one fences the broker.
    pub async fn propose_committed_within(
        &self,
        command: Command,
        timeout: Duration,
    ) -> Result<Committed, ControllerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // A learner that was never added knows no leader: it asks the voters
        // in turn, following the leader they name.
        let mut hint: Option<NodeId> = None;
        let mut next_voter = 0usize;
        // Addresses of voters added after bootstrap, learned from the configured ones.
        let mut learned: BTreeMap<NodeId, BasicNode> = BTreeMap::new();
        loop {
            let leader = self.active_controller().or(hint).or_else(|| {
                if self.voters().contains(&self.node_id) {
                    return None;
                }
                let others: Vec<NodeId> = self.voters.keys().copied().filter(|id| *id != self.node_id).collect();
                let voter = others.get(next_voter % others.len().max(1)).copied();
                next_voter += 1;
                voter
            });
            let attempt = match leader {
                Some(id) if id == self.node_id => {
                    tokio::time::timeout_at(deadline, self.active.propose(&self.raft, command.clone())).await.ok()
                }
                Some(id) => match self.address_of(id).or_else(|| learned.get(&id).cloned()) {
                    Some(node) => {
                        let mut peer = PeerClient::new(id, node, self.internal_tls.clone());
                        match tokio::time::timeout_at(deadline, peer.propose(&command)).await {
                            Ok(Ok(reply)) => Some(reply),
                            Ok(Err(e)) => return Err(ControllerError::Forward { leader: id, reason: e.to_string() }),
                            Err(_) => None,
                        }
                    }
                    None => {
                        learned = self.learn_voters().await;
                        None
                    }
                },
                None => None,
            };
            match attempt {
                Some(Ok(committed)) => return Ok(committed),
                Some(Err(ProposeError::Raft(reason))) => return Err(ControllerError::Commit(reason)),
                Some(Err(ProposeError::ForwardToLeader { leader })) => hint = leader,
                None => hint = None,
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControllerError::NoController(timeout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Takes one step of a voter change (see [`super::voters`]) if this node
    /// is the active controller; `Ok(Err)`: the set is refused. A voter
    /// change is not forwarded: the active controller must see the
    /// operator's own certificate (a forwarding broker's cannot stand for
    /// it, or any broker could change the voters). Elsewhere the answer is
    /// [`ControllerError::NotActive`], naming the active controller; while
    /// none is known this waits for one, for at most the propose timeout.
    pub async fn change_voters(
        &self,
        request: &VoterChangeRequest,
    ) -> Result<Result<VoterProgress, VoterChangeError>, ControllerError> {
        let deadline = tokio::time::Instant::now() + self.propose_timeout;
        loop {
            match self.active_controller() {
                Some(id) if id == self.node_id => {
                    let _serial = self.active.voter_changes.lock().await;
                    let image = self.state.read().image.clone();
                    match super::voters::change_voters(&self.raft, &image, request).await {
                        Err(VoterChangeError::NotLeader { leader: Some(leader) }) if leader != self.node_id => {
                            return Err(ControllerError::NotActive { leader });
                        }
                        Err(VoterChangeError::NotLeader { .. }) => {}
                        answer => return Ok(answer),
                    }
                }
                Some(leader) => return Err(ControllerError::NotActive { leader }),
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControllerError::NoController(self.propose_timeout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The quorum as the active controller describes it (DescribeQuorum):
    /// here if this node leads, else asked of the leader it knows, following
    /// the leader a node names and waiting out an election, for at most the
    /// propose timeout.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, ControllerError> {
        let deadline = tokio::time::Instant::now() + self.propose_timeout;
        let mut hint: Option<NodeId> = None;
        loop {
            // A leader named by the node asked last is newer than this node's view.
            let leader = hint.take().or_else(|| self.active_controller());
            let answer = match leader {
                Some(id) if id == self.node_id => {
                    let metrics = self.raft.metrics().borrow().clone();
                    Some(describe(&metrics, crate::clock::now_ms()))
                }
                Some(id) => match self.address_of(id) {
                    Some(node) => {
                        let mut peer = PeerClient::new(id, node, self.internal_tls.clone());
                        // An unreachable leader (killed, partitioned) is waited
                        // out: the survivors elect another.
                        tokio::time::timeout_at(deadline, peer.describe_quorum()).await.ok().and_then(Result::ok)
                    }
                    None => None,
                },
                None => None,
            };
            match answer {
                Some(Ok(description)) => return Ok(description),
                Some(Err(DescribeQuorumError::NotLeader { leader: named })) => {
                    hint = named.filter(|n| Some(*n) != leader)
                }
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControllerError::NoController(self.propose_timeout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The voters' addresses as the configured voters' logs hold them.
    async fn learn_voters(&self) -> BTreeMap<NodeId, BasicNode> {
        let mut learned = BTreeMap::new();
        for (id, node) in &self.voters {
            if *id == self.node_id {
                continue;
            }
            let mut peer = PeerClient::new(*id, node.clone(), self.internal_tls.clone());
            if let Ok(status) = peer.status().await {
                for (voter, addr) in status.voters.into_iter().flatten() {
                    learned.insert(voter, BasicNode::new(addr));
                }
            }
        }
        learned
    }

    /// Stops Raft and the gRPC server; the files stay for the next start.
    pub async fn shutdown(&self) {
        self.liveness.abort();
        let bootstrap = self.bootstrap.lock().take();
        if let Some(bootstrap) = bootstrap {
            bootstrap.abort();
            // It may be writing this node's meta.json on another worker.
            let _ = bootstrap.await;
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(node_id = self.node_id, error = %e, "controller raft shutdown failed");
        }
        let server = self.server.lock().take();
        if let Some(server) = server {
            server.abort();
            let _ = server.await;
        }
        // Raft's tasks are gone, but a file write they started on the
        // blocking pool runs to its end: the directory is ours until then.
        self.io.close();
        self.io.wait().await;
    }
}

/// The active controller's session timer: a node that becomes the active
/// controller starts every unfenced broker's session afresh, then fences the
/// brokers whose heartbeats stop for `timeout`.
///
/// A timer that stalled (this process frozen by SIGSTOP or a hung VM) also
/// starts the sessions afresh: heartbeats sent meanwhile were never read, so
/// their absence says nothing about the brokers. (A controller frozen long
/// enough to be replaced learns so from the quorum and stops leading.)
async fn fence_silent_brokers(raft: Raft, active: ActiveController, timeout: Duration, tick: Duration) {
    let me = raft.metrics().borrow().id;
    let mut leading = false;
    let tick = tick.min(Duration::from_millis(500));
    let stall = (tick * 4).max(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = std::time::Instant::now();
    loop {
        ticker.tick().await;
        let now_leading = raft.metrics().borrow().current_leader == Some(me);
        let live: Vec<i32> = {
            let state = active.state.read();
            state.image.brokers.values().filter(|b| !b.fenced).map(|b| b.broker_id).collect()
        };
        let now = std::time::Instant::now();
        let gap = now.saturating_duration_since(last_tick);
        last_tick = now;
        let stalled = gap > stall;
        if now_leading && stalled {
            tracing::warn!(?gap, "the controller's session timer stalled; starting every broker session afresh");
        }
        if now_leading && (!leading || stalled) {
            let mut sessions = active.sessions.lock();
            *sessions = Default::default();
            for id in &live {
                sessions.heartbeat(*id, now);
            }
        }
        leading = now_leading;
        if !leading {
            continue;
        }
        let expired = active.sessions.lock().expired(now, timeout);
        for broker_id in expired {
            if !live.contains(&broker_id) {
                active.sessions.lock().remove(broker_id);
                continue;
            }
            tracing::warn!(broker_id, ?timeout, "broker session expired; fencing it");
            match propose_locally(&raft, Command::FenceBroker { broker_id }).await {
                Ok(_) => active.sessions.lock().remove(broker_id),
                Err(e) => tracing::warn!(broker_id, error = %e, "could not fence broker"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_node_told_it_is_no_voter_leaves_itself_out_of_the_configured_voters() {
        let configured: BTreeMap<NodeId, BasicNode> =
            (0..5).map(|id| (id, BasicNode::new(format!("127.0.0.1:{}", 9000 + id)))).collect();
        assert_eq!(fallback_voters(&configured, 3, false), vec![0, 1, 2, 3, 4], "before the quorum answered");
        assert_eq!(fallback_voters(&configured, 3, true), vec![0, 1, 2, 4], "a learner by the quorum's word");
        assert_eq!(fallback_voters(&configured, 7, true), vec![0, 1, 2, 3, 4], "a node not configured at all");
    }
}
