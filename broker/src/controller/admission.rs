//! Who may lead or campaign towards this node: Raft's AppendEntries,
//! InstallSnapshot and Vote are taken only from a voter.
//!
//! openraft itself does not check that the sender of an AppendEntries is a
//! voter. Every broker is a member of the quorum (a learner at least), so
//! without this check a broker could send AppendEntries in a newer term
//! naming itself, carrying entries of its choosing (a membership that makes
//! it a voter, a forged image), and the followers would take them; or ask
//! for votes and depose the active controller.
//!
//! # The rule
//!
//! The sender (already authenticated as the node its vote names, see
//! [`super::network`]) is admitted if it is:
//!
//! - a voter of this node's effective membership, either half of a joint one;
//! - while this node holds no membership yet (a broker waiting to be added
//!   as a learner, a voter that lost its log), one of the configured
//!   (`--voters`) voters, which bootstrap the quorum;
//! - the leader this node already follows in that term, while it is a voter
//!   of the membership this node has applied (a leader that removed its own
//!   node keeps sending the new membership until it is committed; refusing
//!   it would keep it leading forever);
//! - or a voter by the word of another node, see below.
//!
//! A term beyond [`MAX_TERM`] is refused whoever sends it: an election's
//! `term + 1` must never overflow (openraft panics in a debug build and
//! wraps to term 0 in a release one).
//!
//! # A node that lags
//!
//! A node that is behind may not know yet that the sender became a voter
//! (added while this node was down, then elected). Refusing it forever would
//! keep this node behind forever, so before refusing, the node asks the
//! voters it knows (the configured ones while it knows none) whether the
//! sender is a voter (`Status`, over the internal TLS that authenticates
//! each of them). A yes counts only from a node whose (effective)
//! membership is at least as new as the one this node has applied: a voter
//! that is itself behind could name a voter removed since. A node of an
//! older Strom does not say which membership it has, so its yes counts only
//! for a node that has applied none. A vouched sender is remembered until
//! this node's effective or applied membership changes. One sender is looked up once at a time, at most once
//! per [`LOOKUP_INTERVAL`], each question bounded by [`ASK_TIMEOUT`]: a
//! refused broker cannot make this node call the voters on every request.
//! The lookup runs as its own task, so it finishes (and is remembered) even
//! when the RPC that started it is given up by its sender.
//!
//! On a listener without TLS nobody is authenticated, so anyone may name a
//! voter as the sender: this protects only a cluster with internal TLS.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use openraft::{BasicNode, LogId, Vote};
use parking_lot::{Mutex, RwLock};
use tonic::Status;

use super::network::PeerClient;
use super::state_machine::AppliedState;
use super::{NodeId, Raft};
use crate::tls::InternalTls;

/// The highest term taken from anyone: far beyond any real election count,
/// far below the overflow of `term + 1`.
pub const MAX_TERM: u64 = 1 << 48;
/// How often one sender may make this node ask the voters about it.
pub const LOOKUP_INTERVAL: Duration = Duration::from_secs(1);
/// How long one question to one node may take, connecting included.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an RPC waits for the lookup it started (the lookup goes on).
const LOOKUP_WAIT: Duration = Duration::from_millis(1500);
/// Vouched senders remembered.
const VOUCHES_KEPT: usize = 16;
/// Senders whose last lookup time is remembered; beyond this the oldest are forgotten.
const LOOKUPS_KEPT: usize = 256;

/// A membership's log id.
type MembershipId = Option<LogId<NodeId>>;
/// This node's effective and applied memberships: what a vouch is remembered under.
type Memberships = (MembershipId, MembershipId);

#[derive(Debug, Default)]
struct Vouches {
    /// Senders a voter has vouched for, under this node's memberships then, oldest first.
    admitted: VecDeque<(NodeId, Memberships)>,
    /// When each sender was last looked up.
    looked_up: HashMap<NodeId, Instant>,
    /// Senders being looked up now.
    in_flight: HashSet<NodeId>,
}

/// Admits Raft's leader and candidate RPCs from voters only (see the module docs).
#[derive(Clone)]
pub struct Admission {
    raft: Raft,
    /// The applied state: its membership is the committed one.
    state: Arc<RwLock<AppliedState>>,
    tls: Option<Arc<InternalTls>>,
    /// The configured (`--voters`) voters and their addresses.
    configured: BTreeMap<NodeId, BasicNode>,
    vouches: Arc<Mutex<Vouches>>,
}

/// What the node knows when an RPC comes.
struct View {
    me: NodeId,
    /// Voters of the effective membership, with their addresses.
    voters: BTreeMap<NodeId, BasicNode>,
    membership: MembershipId,
    vote: Vote<NodeId>,
    /// The applied membership's log id and voters.
    applied: MembershipId,
    applied_voters: BTreeSet<NodeId>,
}

impl Admission {
    /// Checks senders against `raft`'s membership (committed membership in
    /// `state`), asking the voters it knows and the `configured` ones over
    /// `tls` when the membership does not name the sender.
    pub fn new(
        raft: Raft,
        state: Arc<RwLock<AppliedState>>,
        tls: Option<Arc<InternalTls>>,
        configured: BTreeMap<NodeId, BasicNode>,
    ) -> Admission {
        Admission { raft, state, tls, configured, vouches: Arc::default() }
    }

    fn view(&self) -> View {
        let (applied, applied_voters) = {
            let state = self.state.read();
            (*state.membership.log_id(), state.membership.membership().voter_ids().collect())
        };
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voters =
            membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone()))).collect();
        View { me: m.id, voters, membership: *m.membership_config.log_id(), vote: m.vote, applied, applied_voters }
    }

    /// Admits an RPC whose vote names `sender` as leader or candidate, or
    /// refuses it (PERMISSION_DENIED; INVALID_ARGUMENT for an absurd term).
    pub async fn admit(&self, sender: NodeId, vote: &Vote<NodeId>) -> Result<(), Status> {
        let term = vote.leader_id().term;
        if term > MAX_TERM {
            tracing::warn!(sender, term, "refused a Raft RPC with an absurd term");
            return Err(Status::invalid_argument(format!("term {term} is beyond the highest taken, {MAX_TERM}")));
        }
        let view = self.view();
        let known = if view.voters.is_empty() {
            self.configured.contains_key(&sender)
        } else {
            view.voters.contains_key(&sender)
        };
        let followed = view.vote.is_committed()
            && view.vote.leader_id() == vote.leader_id()
            && view.applied_voters.contains(&sender);
        let memberships = (view.membership, view.applied);
        if known || followed || self.vouched(sender, memberships) {
            return Ok(());
        }
        // The voters this node knows; the configured ones only while it
        // knows none (a configured voter may have been removed since).
        let mut asked = view.voters.clone();
        if asked.is_empty() {
            asked.extend(self.configured.iter().map(|(id, node)| (*id, node.clone())));
        }
        asked.retain(|id, _| *id != view.me && *id != sender);
        if !asked.is_empty()
            && let Some(lookup) = self.start_look_up(sender)
        {
            let task = tokio::spawn(self.clone().look_up(lookup, memberships, asked));
            if let Ok(Ok(true)) = tokio::time::timeout(LOOKUP_WAIT, task).await {
                return Ok(());
            }
            tracing::warn!(sender, term, voters = ?view.voters.keys().collect::<Vec<_>>(), "refused a Raft leader or candidate RPC from a node no voter vouches for");
        } else {
            tracing::debug!(sender, term, voters = ?view.voters.keys().collect::<Vec<_>>(), "refused a Raft leader or candidate RPC from a node that is no voter");
        }
        Err(Status::permission_denied(format!(
            "node {sender} is not a voter of this controller quorum (voters: {:?}) and no voter this node asked \
             says it is one: only a voter may send AppendEntries, InstallSnapshot or Vote",
            view.voters.keys().collect::<Vec<_>>()
        )))
    }

    fn vouched(&self, sender: NodeId, memberships: Memberships) -> bool {
        self.vouches.lock().admitted.contains(&(sender, memberships))
    }

    /// A lookup of `sender` if one may start now (none under way, none
    /// within [`LOOKUP_INTERVAL`]).
    fn start_look_up(&self, sender: NodeId) -> Option<Lookup> {
        let now = Instant::now();
        let mut vouches = self.vouches.lock();
        if vouches.in_flight.contains(&sender)
            || vouches.looked_up.get(&sender).is_some_and(|at| now.duration_since(*at) < LOOKUP_INTERVAL)
        {
            return None;
        }
        if vouches.looked_up.len() >= LOOKUPS_KEPT {
            vouches.looked_up.retain(|_, at| now.duration_since(*at) < LOOKUP_INTERVAL);
        }
        if vouches.looked_up.len() >= LOOKUPS_KEPT {
            return None;
        }
        vouches.looked_up.insert(sender, now);
        vouches.in_flight.insert(sender);
        Some(Lookup { sender, vouches: self.vouches.clone() })
    }

    /// Asks each of `nodes` whether the looked-up sender is a voter; the
    /// first yes from a node whose membership is at least this node's
    /// applied one is remembered under `memberships`.
    async fn look_up(self, lookup: Lookup, memberships: Memberships, nodes: BTreeMap<NodeId, BasicNode>) -> bool {
        let (sender, applied) = (lookup.sender, memberships.1);
        let mut asks: FuturesUnordered<_> = nodes
            .into_iter()
            .map(|(id, node)| {
                let tls = self.tls.clone();
                async move {
                    let status = tokio::time::timeout(ASK_TIMEOUT, PeerClient::new(id, node, tls).status()).await;
                    match status {
                        Ok(Ok(status))
                            if status.membership >= applied
                                && status.voters.as_ref().is_some_and(|v| v.contains_key(&sender)) =>
                        {
                            Some(id)
                        }
                        _ => None,
                    }
                }
            })
            .collect();
        let mut voucher = None;
        while let Some(answer) = asks.next().await {
            if answer.is_some() {
                voucher = answer;
                break;
            }
        }
        let Some(voucher) = voucher else {
            return false;
        };
        tracing::info!(sender, voucher, "a voter says a node this one does not know as a voter is one");
        let mut vouches = self.vouches.lock();
        if vouches.admitted.len() >= VOUCHES_KEPT {
            vouches.admitted.pop_front();
        }
        vouches.admitted.push_back((sender, memberships));
        true
    }
}

/// A lookup under way: the sender is marked in flight until it is dropped
/// (when the lookup ends, panics or is cancelled).
struct Lookup {
    sender: NodeId,
    vouches: Arc<Mutex<Vouches>>,
}

impl Drop for Lookup {
    fn drop(&mut self) {
        self.vouches.lock().in_flight.remove(&self.sender);
    }
}
