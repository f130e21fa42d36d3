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
//! [`super::network`]) must be a voter of this node's effective membership,
//! either half of a joint one. A node with no membership yet (a broker
//! waiting to be added as a learner, a voter that lost its log) takes any
//! member: it has nothing to protect, and its gate decides (see
//! [`super::rejoin`]).
//!
//! # A node that lags
//!
//! A node that is behind may not know yet that the sender became a voter
//! (added while this node was down, then elected). Refusing it forever would
//! keep this node behind forever, so before refusing, the node asks the
//! voters it knows (`Status`, over the internal TLS that authenticates each
//! of them) whether the sender is a voter; one that says so vouches for the
//! sender for that term. The answers are cached per (sender, term), and a
//! sender is looked up at most once per [`LOOKUP_INTERVAL`]: a refused
//! broker cannot make this node call the voters on every request. The
//! lookup runs as its own task, so it finishes (and is remembered) even when
//! the RPC that started it is given up by its sender.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::BasicNode;
use parking_lot::Mutex;
use tonic::Status;

use super::network::PeerClient;
use super::{NodeId, Raft};
use crate::tls::InternalTls;

/// How often one sender may make this node ask the voters about it.
pub const LOOKUP_INTERVAL: Duration = Duration::from_secs(1);
/// How long an RPC waits for the lookup it started (the lookup goes on).
const LOOKUP_WAIT: Duration = Duration::from_millis(1500);
/// Vouched (sender, term) pairs remembered.
const VOUCHES_KEPT: usize = 16;
/// Senders whose last lookup time is remembered; beyond this the oldest are forgotten.
const LOOKUPS_KEPT: usize = 256;

#[derive(Debug, Default)]
struct Vouches {
    /// (sender, term) pairs a voter has vouched for, oldest first.
    admitted: VecDeque<(NodeId, u64)>,
    /// When each sender was last looked up.
    looked_up: HashMap<NodeId, Instant>,
}

/// Admits Raft's leader and candidate RPCs from voters only (see the module docs).
#[derive(Clone)]
pub struct Admission {
    raft: Raft,
    tls: Option<Arc<InternalTls>>,
    vouches: Arc<Mutex<Vouches>>,
}

impl Admission {
    /// Checks senders against `raft`'s membership, asking the voters it
    /// knows over `tls` when the membership does not name the sender.
    pub fn new(raft: Raft, tls: Option<Arc<InternalTls>>) -> Admission {
        Admission { raft, tls, vouches: Arc::default() }
    }

    /// Admits an RPC from `sender`, leading or campaigning in `term`, or
    /// refuses it as PERMISSION_DENIED.
    pub async fn admit(&self, sender: NodeId, term: u64) -> Result<(), Status> {
        let (me, voters, nodes) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let nodes: Vec<(NodeId, BasicNode)> =
                voters.iter().filter_map(|id| membership.get_node(id).map(|n| (*id, n.clone()))).collect();
            (m.id, voters, nodes)
        };
        if voters.is_empty() || voters.contains(&sender) || self.vouched(sender, term) {
            return Ok(());
        }
        let asked: Vec<(NodeId, BasicNode)> = nodes.into_iter().filter(|(id, _)| *id != me && *id != sender).collect();
        if !asked.is_empty() && self.may_look_up(sender) {
            let lookup = tokio::spawn(self.clone().look_up(sender, term, asked));
            if let Ok(Ok(true)) = tokio::time::timeout(LOOKUP_WAIT, lookup).await {
                return Ok(());
            }
        }
        tracing::warn!(sender, term, ?voters, "refused a Raft leader or candidate RPC from a node that is no voter");
        Err(Status::permission_denied(format!(
            "node {sender} is not a voter of this controller quorum (voters: {voters:?}) and no voter this node \
             asked says it is one: only a voter may send AppendEntries, InstallSnapshot or Vote"
        )))
    }

    fn vouched(&self, sender: NodeId, term: u64) -> bool {
        self.vouches.lock().admitted.contains(&(sender, term))
    }

    /// Whether `sender` may be looked up now; records the lookup if so.
    fn may_look_up(&self, sender: NodeId) -> bool {
        let now = Instant::now();
        let mut vouches = self.vouches.lock();
        if vouches.looked_up.get(&sender).is_some_and(|at| now.duration_since(*at) < LOOKUP_INTERVAL) {
            return false;
        }
        if vouches.looked_up.len() >= LOOKUPS_KEPT {
            vouches.looked_up.retain(|_, at| now.duration_since(*at) < LOOKUP_INTERVAL);
        }
        if vouches.looked_up.len() >= LOOKUPS_KEPT {
            return false;
        }
        vouches.looked_up.insert(sender, now);
        true
    }

    /// Asks each of `voters` whether `sender` is a voter; remembers a yes for `term`.
    async fn look_up(self, sender: NodeId, term: u64, voters: Vec<(NodeId, BasicNode)>) -> bool {
        let asks = voters.into_iter().map(|(id, node)| {
            let tls = self.tls.clone();
            async move {
                let status = PeerClient::new(id, node, tls).status().await;
                match status {
                    Ok(status) if status.voters.as_ref().is_some_and(|v| v.contains_key(&sender)) => Some(id),
                    _ => None,
                }
            }
        });
        let voucher = futures::future::join_all(asks).await.into_iter().flatten().next();
        let Some(voucher) = voucher else {
            return false;
        };
        tracing::info!(sender, term, voucher, "a voter says a node this one does not know as a voter is one");
        let mut vouches = self.vouches.lock();
        if vouches.admitted.len() >= VOUCHES_KEPT {
            vouches.admitted.pop_front();
        }
        vouches.admitted.push_back((sender, term));
        true
    }
}
