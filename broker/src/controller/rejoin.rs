//! A voter's identity and its safe return after losing its controller log
//! (KIP-853's idea, kept small).
//!
//! # Identity
//!
//! A voter's controller dir holds `meta.json` (its node id and a random
//! directory id), written once its log is non-empty. A dir with `meta.json`
//! but no log lost its log; a dir of another node id is refused.
//!
//! # Bootstrap of an empty voter
//!
//! An empty voter cannot tell by itself whether the cluster is brand-new or
//! whether it lost its disk, so it asks every other voter over the `Status`
//! RPC (see [`decide`]):
//!
//! - some voter has a log beyond the bootstrap entry (index 0): a quorum
//!   exists — **rejoin**;
//! - every other voter answered and none has one: nothing was ever
//!   committed — **initialize** (identical bootstrap memberships everywhere,
//!   as before);
//! - otherwise **wait** and ask again.
//!
//! Which nodes vote is the membership in the log, not `--voters` (voters
//! change after bootstrap, see [`super::voters`]), so every empty node asks,
//! configured voter or not, and also asks the voters the answers name. Once
//! any node has data, the active controller's own answer decides: a voter of
//! its membership **rejoins** (a voter added after bootstrap that lost its
//! disk included), any other node is a **learner** (a configured voter that
//! was removed never bootstraps). With no data anywhere, a node outside the
//! configured voters is a learner once every configured voter answered.
//!
//! A brand-new cluster therefore forms once every voter has started once (in
//! any order). Waiting for all of them, not a majority, is what makes the
//! rule safe: an entry committed on {A, B} with B wiped, A down and C behind
//! must not let B and C start afresh. A voter that answers before it has a
//! log says so, so voters deciding at the same time never wait on each other.
//! A voter of a new cluster whose first question comes after the others
//! have already elected a leader cannot be told from one that lost its disk;
//! it rejoins too, which is safe, only slower. Every node counts a
//! rejoining node in the quorum's size meanwhile
//! ([`super::Controller::quorum_size`], from the record below), so an
//! internal topic created in that window gets a replica per voter still.
//!
//! # Rejoin
//!
//! While it bootstraps and rejoins, the node's [`Gate`] decides which Raft
//! RPCs it takes part in:
//!
//! 1. [`Stage::Closed`]: no Raft RPC at all (the peers see it unreachable). It
//!    asks the active controller to remove it from the voters (kept as a
//!    learner); the removal is committed by the other voters alone. The
//!    controller removes only a member that, asked at the address the quorum
//!    knows it by, says it is in this stage, so a stray call removes nobody.
//!    It first commits a record that the node is rejoining
//!    ([`super::Command::VoterRejoining`]).
//! 2. [`Stage::Learner`]: it takes the log from the leader but grants no vote.
//!    It asks the active controller to make it a voter again; the controller
//!    waits until its replication has caught up with the leader's log, then
//!    commits the membership change and forgets the record
//!    ([`super::Command::VoterRejoined`]). Only a recorded node is made a
//!    voter again, by whichever leader: every broker is a Raft learner, and
//!    a broker that asks without a record (or one a voter change left out
//!    meanwhile, which forgets the record) is told to stay a learner, and
//!    does. Only the active controller proposes either record.
//! 3. [`Stage::Open`] once its own log holds the membership that made it a
//!    voter again.
//!
//! Why this is safe: a node that lost its log also lost its votes and what it
//! acknowledged. In stage 1 it neither votes nor acknowledges, so every
//! election and commit in the meantime needs a majority of the voters that
//! kept their logs — which intersects every earlier commit quorum minus the
//! lost node, so nothing committed is lost (an entry only the lost node and a
//! voter that is down held makes the cluster wait for that voter, not lose
//! the entry). Its acknowledgements count again only in stage 2, after the
//! committed removal: a stale leader of an older term cannot get a majority
//! any more, because the voters that committed the removal have seen a newer
//! term. It votes again only after it is a voter again with a log at least
//! that long, in a term newer than the re-adding leader's, and every term the
//! lost node had voted in is at most the removal's term.
//!
//! The leader keeps its replication progress for the node across the removal
//! (it stays a learner), so it sees that node's log "revert" when stage 2
//! begins; openraft's `loosen-follower-log-revert` feature lets the leader
//! restart the search from the beginning instead of asserting. That is safe
//! here: it only changes the leader's bookkeeping to the truth, and the
//! reverted node counts in no quorum until it is a voter again. Without the
//! feature a debug build panics the leader on a peer's message and a release
//! build keeps a matching index the node no longer has.
//!
//! Limits: with two voters the other voter alone is not a majority, so a lost
//! voter cannot be removed (the quorum waits); run one, three or five voters.
//! Two voters that lose their disks at once while the others are down wait
//! for those.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use super::image::Command;
use super::log_store::{read_json, write_atomically};
use super::network::{ActiveController, PeerClient, ProposeError};
use super::{NodeId, Raft};
use crate::tls::InternalTls;

/// How long the active controller waits for a rejoining node to catch up before it gives up (the node asks again).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two rounds of asking the peers.
const RETRY: Duration = Duration::from_millis(200);

/// `meta.json`: whose controller dir this is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirMeta {
    /// The node this dir belongs to.
    pub node_id: NodeId,
    /// Random id of this dir, new each time a voter starts from an empty one.
    pub directory_id: uuid::Uuid,
}

impl DirMeta {
    fn path(dir: &Path) -> PathBuf {
        dir.join("meta.json")
    }

    /// Reads `<dir>/meta.json`, `None` when there is none.
    pub fn read(dir: &Path) -> std::io::Result<Option<DirMeta>> {
        read_json(&DirMeta::path(dir))
    }

    /// Writes `<dir>/meta.json` atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        write_atomically(&DirMeta::path(dir), self)
    }
}

/// Which Raft RPCs this node takes part in (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// None: deciding how to start, or waiting to be removed from the voters.
    Closed,
    /// Replication only: catching up as a learner, granting no vote.
    Learner,
    /// All: a full member.
    Open,
}

/// The node's [`Stage`], shared by its `Raft` service and its bootstrap task.
#[derive(Debug, Clone)]
pub struct Gate(Arc<AtomicU8>);

impl Gate {
    /// A gate at `stage`.
    pub fn new(stage: Stage) -> Gate {
        let gate = Gate(Arc::default());
        gate.set(stage);
        gate
    }

    /// The current stage.
    pub fn stage(&self) -> Stage {
        match self.0.load(Ordering::Acquire) {
            0 => Stage::Closed,
            1 => Stage::Learner,
            _ => Stage::Open,
        }
    }

    /// Moves to `stage`.
    pub fn set(&self, stage: Stage) {
        let v = match stage {
            Stage::Closed => 0,
            Stage::Learner => 1,
            Stage::Open => 2,
        };
        self.0.store(v, Ordering::Release);
    }

    /// Whether AppendEntries and InstallSnapshot are taken.
    pub fn takes_replication(&self) -> bool {
        self.stage() != Stage::Closed
    }

    /// Whether vote requests are answered.
    pub fn takes_votes(&self) -> bool {
        self.stage() == Stage::Open
    }
}

/// A peer's answer to `Status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The index of the last entry in its log, `None` when empty.
    pub last_log_index: Option<u64>,
    /// The active controller it knows of.
    pub leader: Option<NodeId>,
    /// Its own gate.
    pub stage: Stage,
    /// The voters of the membership its log holds, with their internal
    /// addresses (`None` from a node of an older Strom).
    #[serde(default)]
    pub voters: Option<BTreeMap<NodeId, String>>,
    /// The log id of that membership (`None`: none, or a node of an older Strom).
    #[serde(default)]
    pub membership: Option<openraft::LogId<NodeId>>,
}

impl PeerStatus {
    /// Whether it holds anything beyond the bootstrap membership (index 0):
    /// a quorum has formed and may have committed entries.
    pub fn has_data(&self) -> bool {
        self.last_log_index.is_some_and(|i| i > 0)
    }
}

/// What an empty voter does (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// Initialize the quorum with the configured voters.
    Initialize,
    /// A quorum exists, or this dir was a voter's: rejoin through membership changes.
    Rejoin,
    /// This node is no voter (of a new cluster, or of the committed
    /// membership): it takes the log as a learner once it registers.
    Learner,
    /// Ask again: these voters did not answer and none that did has data.
    Wait {
        /// Voters that did not answer.
        missing: Vec<NodeId>,
    },
}

/// Decides how an empty node `me` starts, from the answers of the other
/// nodes it asked (the configured voters, and the voters they named), the
/// configured voter set, and whether its dir says it was a voter before.
///
/// Once any node has data, the active controller's own answer decides: a
/// node that is a voter of the membership its log holds (the newest there
/// is) rejoins; any other is a learner. Before that, only a configured voter
/// may form the quorum, and only once every configured voter answered.
pub fn decide(
    me: NodeId,
    configured: &BTreeSet<NodeId>,
    dir_was_voter: bool,
    answers: &BTreeMap<NodeId, PeerStatus>,
) -> Bootstrap {
    let configured_voter = configured.contains(&me);
    let others: Vec<NodeId> = configured.iter().copied().filter(|v| *v != me).collect();
    if configured_voter && others.is_empty() {
        return Bootstrap::Initialize;
    }
    if answers.values().any(PeerStatus::has_data) {
        let leader = answers.iter().find(|(id, s)| s.leader == Some(**id) && s.has_data());
        return match leader.map(|(_, s)| &s.voters) {
            Some(Some(voters)) if voters.contains_key(&me) => Bootstrap::Rejoin,
            Some(Some(_)) => Bootstrap::Learner,
            // An older leader does not say: the configuration does.
            Some(None) if configured_voter => Bootstrap::Rejoin,
            Some(None) => Bootstrap::Learner,
            None => {
                let named: BTreeSet<NodeId> = answers.values().filter_map(|s| s.leader).collect();
                Bootstrap::Wait { missing: named.into_iter().filter(|l| !answers.contains_key(l)).collect() }
            }
        };
    }
    if configured_voter && dir_was_voter {
        return Bootstrap::Rejoin;
    }
    let missing: Vec<NodeId> = others.into_iter().filter(|v| !answers.contains_key(v)).collect();
    match (missing.is_empty(), configured_voter) {
        (true, true) => Bootstrap::Initialize,
        (true, false) => Bootstrap::Learner,
        (false, _) => Bootstrap::Wait { missing },
    }
}

/// A rejoining node's request to the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejoinRequest {
    /// The rejoining node.
    pub node_id: NodeId,
    /// Its new directory id (for the logs).
    pub directory_id: uuid::Uuid,
    /// Its stage: `Closed` asks to be removed from the voters, `Learner` to be made a voter again.
    pub stage: Stage,
}

/// What the active controller did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejoinStep {
    /// The node is no voter in the committed membership (a learner or absent).
    Removed,
    /// The node is a voter again, by the membership at this log index.
    Voter {
        /// Log index of that membership.
        index: u64,
    },
    /// The node is no voter rejoining (never recorded as one, or a voter
    /// change left it out): it stays a learner, as any broker.
    Learner,
}

/// The answer to a `Rejoin` call.
pub type RejoinReply = Result<RejoinStep, ProposeError>;

fn write_error(node: NodeId, what: &str, e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            ProposeError::ForwardToLeader { leader: f.leader_id }
        }
        e => ProposeError::Raft(format!("cannot {what} node {node}: {e}")),
    }
}

/// The active controller's side of `Rejoin`. A voter's removal is recorded
/// in the metadata log first ([`Command::VoterRejoining`]), and only a node
/// recorded there is made a voter again, whichever leader removed it: a
/// broker (every broker is a Raft learner) cannot make itself a voter.
pub async fn handle_rejoin(
    raft: &Raft,
    request: RejoinRequest,
    tls: Option<Arc<InternalTls>>,
    active: &ActiveController,
) -> RejoinReply {
    let node = request.node_id;
    let m = raft.metrics().borrow().clone();
    if m.current_leader != Some(m.id) {
        return Err(ProposeError::ForwardToLeader { leader: m.current_leader });
    }
    if !super::voters::leads_as_member(&m) {
        return Err(ProposeError::ForwardToLeader { leader: None });
    }
    if node == m.id {
        return Err(ProposeError::Raft(format!("node {node} cannot rejoin through itself")));
    }
    let membership = m.membership_config.membership();
    // Only a member, at the address the quorum knows it by: a stray caller
    // cannot add a node, and the removal below is confirmed by the node itself.
    let Some(member) = membership.get_node(&node).cloned() else {
        return Err(ProposeError::Raft(format!("node {node} is not a member of this controller quorum")));
    };
    let is_voter = membership.voter_ids().any(|v| v == node);
    // Applied up to the membership: the image holds every record before it.
    let settled = m.membership_config.log_id().is_none_or(|l| m.last_applied.is_some_and(|a| a.index >= l.index));
    let recorded = active.state.read().image.rejoining_voters.contains(&node);
    match request.stage {
        Stage::Closed | Stage::Open => {
            if is_voter {
                let stage = PeerClient::new(node, member.clone(), tls.clone()).status().await.map(|s| s.stage);
                if !matches!(stage, Ok(Stage::Closed)) {
                    return Err(ProposeError::Raft(format!(
                        "node {node} at {} does not say it is rejoining ({stage:?}); not removing it",
                        member.addr
                    )));
                }
                tracing::warn!(
                    node, directory_id = %request.directory_id,
                    "controller voter came back without its log; removing it from the voters until it has caught up"
                );
                // Not inside a voter change's step (it read the rejoining voters).
                let _serial = active.voter_changes.lock().await;
                record(raft, Command::VoterRejoining { node_id: node }).await?;
                raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([node])), true)
                    .await
                    .map_err(|e| write_error(node, "remove from the voters", e))?;
            } else if !settled {
                return Err(ProposeError::Raft("a membership change is in progress; ask again".into()));
            }
            Ok(RejoinStep::Removed)
        }
        Stage::Learner => {
            if !settled {
                return Err(ProposeError::Raft("a membership change is in progress; ask again".into()));
            }
            if is_voter {
                if recorded {
                    // A leader that made it a voter again stopped before forgetting it.
                    record(raft, Command::VoterRejoined { node_id: node }).await?;
                }
                let index = m.membership_config.log_id().map(|l| l.index).unwrap_or(0);
                return Ok(RejoinStep::Voter { index });
            }
            if !recorded {
                // No voter removed after losing its log: a broker becomes a
                // voter only through a controller voter change.
                tracing::warn!(
                    node,
                    "a node that is no voter rejoining the quorum asked to be a voter; it stays a learner"
                );
                return Ok(RejoinStep::Learner);
            }
            let target = m.last_log_index.unwrap_or(0);
            let caught_up = raft
                .wait(Some(CATCH_UP_TIMEOUT))
                .metrics(
                    |m| {
                        m.replication
                            .as_ref()
                            .and_then(|r| r.get(&node).copied().flatten())
                            .is_some_and(|l| l.index >= target)
                    },
                    "rejoining voter catching up",
                )
                .await;
            if caught_up.is_err() {
                return Err(ProposeError::Raft(format!(
                    "node {node} did not catch up to index {target} within {CATCH_UP_TIMEOUT:?}; ask again"
                )));
            }
            // A voter change may have left it out while it caught up.
            let _serial = active.voter_changes.lock().await;
            if !active.state.read().image.rejoining_voters.contains(&node) {
                return Ok(RejoinStep::Learner);
            }
            let written = raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node])), true)
                .await
                .map_err(|e| write_error(node, "make a voter again", e))?;
            // A voter now; if this fails, its next call forgets it (above).
            record(raft, Command::VoterRejoined { node_id: node }).await?;
            tracing::info!(node, index = written.log_id.index, "controller voter caught up and is a voter again");
            Ok(RejoinStep::Voter { index: written.log_id.index })
        }
    }
}

/// Commits a record of a rejoin through this node, the active controller.
async fn record(raft: &Raft, command: Command) -> Result<(), ProposeError> {
    super::network::propose_locally(raft, command).await.map(|_| ())
}

/// What the bootstrap task of an empty voter needs.
pub(crate) struct Bootstrapper {
    pub raft: Raft,
    pub me: NodeId,
    pub voters: BTreeMap<NodeId, BasicNode>,
    pub gate: Gate,
    pub dir: PathBuf,
    /// `meta.json` as found at start (`Some` with an empty log: this dir lost its log).
    pub meta: Option<DirMeta>,
    /// This node's internal TLS, for its calls to the other voters.
    pub tls: Option<Arc<InternalTls>>,
    /// The configured voters and the voters their answers named, by address.
    pub known: parking_lot::Mutex<BTreeMap<NodeId, BasicNode>>,
    /// Set when the quorum says this node is no voter ([`Bootstrap::Learner`]),
    /// whatever the configured voters say.
    pub learner: Arc<AtomicBool>,
}

impl Bootstrapper {
    async fn ask_peers(&self) -> BTreeMap<NodeId, PeerStatus> {
        let known: Vec<(NodeId, BasicNode)> =
            self.known.lock().iter().filter(|(id, _)| **id != self.me).map(|(id, n)| (*id, n.clone())).collect();
        let calls = known.into_iter().map(|(id, node)| async move {
            let mut peer = PeerClient::new(id, node, self.tls.clone());
            (id, peer.status().await)
        });
        let mut answers = BTreeMap::new();
        for (id, answer) in futures::future::join_all(calls).await {
            match answer {
                Ok(status) => {
                    // Voters the quorum added after bootstrap are asked from the next round on.
                    let mut known = self.known.lock();
                    for (voter, addr) in status.voters.iter().flatten() {
                        known.entry(*voter).or_insert_with(|| BasicNode::new(addr.clone()));
                    }
                    answers.insert(id, status);
                }
                Err(e) => tracing::debug!(peer = id, error = %e, "controller voter did not answer Status"),
            }
        }
        answers
    }

    fn write_meta(&self, meta: &DirMeta) {
        if let Err(e) = meta.write(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the controller dir's meta.json");
        }
    }

    /// Decides how to start, then initializes or rejoins; opens the gate when done.
    pub async fn run(self) {
        let voter_ids: BTreeSet<NodeId> = self.voters.keys().copied().collect();
        let meta = DirMeta { node_id: self.me, directory_id: uuid::Uuid::new_v4() };
        let mut rounds = 0u64;
        let decision = loop {
            let answers = self.ask_peers().await;
            match decide(self.me, &voter_ids, self.meta.is_some(), &answers) {
                Bootstrap::Wait { missing } => {
                    if rounds % 25 == 0 {
                        tracing::info!(
                            ?missing,
                            "empty controller voter waiting for every voter to answer before forming a new quorum"
                        );
                    }
                }
                decision => break decision,
            }
            rounds += 1;
            tokio::time::sleep(RETRY).await;
        };
        if decision == Bootstrap::Learner {
            self.learner.store(true, Ordering::Release);
            tracing::info!(
                node = self.me,
                "this node is no controller voter; it takes the metadata log as a learner once it registers"
            );
            self.gate.set(Stage::Open);
            return;
        }
        if decision == Bootstrap::Initialize {
            match self.raft.initialize(self.voters.clone()).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                    self.write_meta(&meta);
                    self.gate.set(Stage::Open);
                }
                Err(e) => tracing::error!(error = %e, "cannot initialize the controller quorum"),
            }
            return;
        }
        tracing::warn!(
            node = self.me, directory_id = %meta.directory_id,
            "this controller voter has an empty log but a quorum exists (its disk was replaced or wiped); \
             rejoining: removed from the voters, caught up as a learner, then a voter again"
        );
        let Some(index) = self.rejoin(&meta).await else {
            // Left out while it rejoined (or removed without a record by an
            // older Strom): a learner now, as a broker that is no voter.
            self.learner.store(true, Ordering::Release);
            tracing::warn!(
                node = self.me,
                "the active controller says this node is no voter rejoining the quorum; it stays a learner \
                 until a controller voter change makes it a voter"
            );
            self.gate.set(Stage::Open);
            return;
        };
        let me = self.me;
        let joined = self
            .raft
            .wait(None)
            .metrics(
                |m| {
                    m.membership_config.log_id().is_some_and(|l| l.index >= index)
                        && m.membership_config.membership().voter_ids().any(|v| v == me)
                },
                "own log holds the membership that re-adds this voter",
            )
            .await;
        if joined.is_ok() {
            self.write_meta(&meta);
            self.gate.set(Stage::Open);
            tracing::info!(node = self.me, "controller voter rejoined the quorum");
        }
    }

    /// Asks the active controller to remove this node, then to add it back;
    /// returns the index of the membership that made it a voter again, or
    /// `None` when the controller says it is to stay a learner.
    async fn rejoin(&self, meta: &DirMeta) -> Option<u64> {
        let mut hint: Option<NodeId> = None;
        let mut failures = 0u64;
        loop {
            let stage = self.gate.stage();
            let leader = match hint.take() {
                Some(l) => Some(l),
                None => self.ask_peers().await.values().find_map(|s| s.leader).filter(|l| *l != self.me),
            };
            let Some(node) = leader.and_then(|l| self.known.lock().get(&l).map(|n| (l, n.clone()))) else {
                tokio::time::sleep(RETRY).await;
                continue;
            };
            let request = RejoinRequest { node_id: self.me, directory_id: meta.directory_id, stage };
            let mut peer = PeerClient::new(node.0, node.1, self.tls.clone());
            match peer.rejoin(&request).await {
                Ok(Ok(RejoinStep::Removed)) if stage == Stage::Closed => {
                    tracing::info!(leader = node.0, "removed from the controller voters; catching up as a learner");
                    self.gate.set(Stage::Learner);
                    continue;
                }
                Ok(Ok(RejoinStep::Voter { index })) if stage == Stage::Learner => return Some(index),
                Ok(Ok(RejoinStep::Learner)) if stage == Stage::Learner => return None,
                Ok(Ok(step)) => tracing::debug!(?step, ?stage, "unexpected rejoin step; asking again"),
                Ok(Err(ProposeError::ForwardToLeader { leader })) => hint = leader,
                Ok(Err(e)) => failed(&mut failures, node.0, &e),
                Err(e) => failed(&mut failures, node.0, &e),
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Logs every tenth failed rejoin call.
fn failed(failures: &mut u64, leader: NodeId, error: &dyn std::fmt::Display) {
    *failures += 1;
    if *failures % 10 == 1 {
        tracing::warn!(leader, %error, "rejoining the controller quorum failed; retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(last: Option<u64>) -> PeerStatus {
        PeerStatus { last_log_index: last, leader: None, stage: Stage::Open, voters: None, membership: None }
    }

    /// The answer of the active controller `id` whose membership has `voters`.
    fn leader(id: NodeId, voters: &[NodeId]) -> PeerStatus {
        let voters = voters.iter().map(|v| (*v, format!("node-{v}:9093"))).collect();
        PeerStatus {
            last_log_index: Some(9),
            leader: Some(id),
            stage: Stage::Open,
            voters: Some(voters),
            membership: None,
        }
    }

    #[test]
    fn an_empty_voter_initializes_only_when_every_voter_answered_empty() {
        let voters = BTreeSet::from([0, 1, 2]);
        let all_empty = BTreeMap::from([(1, status(None)), (2, status(Some(0)))]);
        assert_eq!(decide(0, &voters, false, &all_empty), Bootstrap::Initialize);
        let one_missing = BTreeMap::from([(1, status(None))]);
        assert_eq!(decide(0, &voters, false, &one_missing), Bootstrap::Wait { missing: vec![2] });
        assert_eq!(decide(0, &voters, false, &BTreeMap::new()), Bootstrap::Wait { missing: vec![1, 2] });
    }

    #[test]
    fn an_empty_voter_rejoins_when_any_voter_has_data_or_its_dir_was_a_voters() {
        let voters = BTreeSet::from([0, 1, 2]);
        // The case that lost data before: C (no entry) answers, A (with the entry) is down.
        let one_with_data = BTreeMap::from([(1, leader(1, &[0, 1, 2]))]);
        assert_eq!(decide(0, &voters, false, &one_with_data), Bootstrap::Rejoin);
        // An older leader names no voters: the configuration decides.
        let older = BTreeMap::from([(1, PeerStatus { voters: None, ..leader(1, &[]) })]);
        assert_eq!(decide(0, &voters, false, &older), Bootstrap::Rejoin);
        let behind_only = BTreeMap::from([(2, status(Some(0)))]);
        assert_eq!(decide(0, &voters, false, &behind_only), Bootstrap::Wait { missing: vec![1] });
        let all_empty = BTreeMap::from([(1, status(None)), (2, status(None))]);
        assert_eq!(decide(0, &voters, true, &all_empty), Bootstrap::Rejoin);
    }

    #[test]
    fn with_data_the_active_controllers_membership_decides() {
        let configured = BTreeSet::from([0, 1, 2]);
        // Broker 4, added as a voter after bootstrap, lost its disk: it rejoins.
        let grown = BTreeMap::from([(1, leader(1, &[0, 1, 2, 3, 4]))]);
        assert_eq!(decide(4, &configured, false, &grown), Bootstrap::Rejoin);
        // Broker 2, configured but removed from the voters: a learner, never a new quorum.
        let shrunk = BTreeMap::from([(1, leader(1, &[0, 1, 3]))]);
        assert_eq!(decide(2, &configured, false, &shrunk), Bootstrap::Learner);
        assert_eq!(decide(2, &configured, true, &shrunk), Bootstrap::Learner);
        // A follower with data names a leader that has not answered yet: wait for it.
        let follower = BTreeMap::from([(0, PeerStatus { leader: Some(3), ..status(Some(9)) })]);
        assert_eq!(decide(4, &configured, false, &follower), Bootstrap::Wait { missing: vec![3] });
    }

    #[test]
    fn a_node_outside_the_configured_voters_of_a_new_cluster_is_a_learner() {
        let configured = BTreeSet::from([0, 1, 2]);
        let all_empty = BTreeMap::from([(0, status(None)), (1, status(Some(0))), (2, status(None))]);
        assert_eq!(decide(5, &configured, false, &all_empty), Bootstrap::Learner);
        let one_missing = BTreeMap::from([(0, status(None)), (1, status(None))]);
        assert_eq!(decide(5, &configured, false, &one_missing), Bootstrap::Wait { missing: vec![2] });
    }

    #[test]
    fn a_single_voter_always_initializes() {
        assert_eq!(decide(3, &BTreeSet::from([3]), true, &BTreeMap::new()), Bootstrap::Initialize);
    }

    #[test]
    fn the_gate_takes_replication_before_votes() {
        let gate = Gate::new(Stage::Closed);
        assert!(!gate.takes_replication() && !gate.takes_votes());
        gate.set(Stage::Learner);
        assert!(gate.takes_replication() && !gate.takes_votes());
        gate.set(Stage::Open);
        assert!(gate.takes_replication() && gate.takes_votes());
    }
}
