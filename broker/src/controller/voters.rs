//! Changing the controller voters after bootstrap (KIP-853's idea): the
//! operator asks for a voter set, and the active controller moves the
//! committed Raft membership towards it one voter at a time.
//!
//! # The truth about who votes
//!
//! `controller.quorum.voters` (`--voters`) is the *bootstrap* voter set of
//! a brand-new cluster and the contact points of a starting node. Once a
//! node has a log, the membership committed in it is the truth:
//! [`super::Controller::voters`] answers from it, a forwarded proposal finds
//! the active controller at the address the membership holds, and an empty
//! node asks the quorum whether it is a voter before it takes any part in
//! Raft (see [`super::rejoin`]).
//!
//! # One call, one step
//!
//! [`plan`] is pure: from the active controller's view of the quorum
//! ([`QuorumView`]) and the wanted set it picks the next step — add one
//! learner that has caught up, or remove one voter (kept as a learner) — or
//! says what it waits for, or that the set is reached. [`change_voters`]
//! takes that step with one openraft membership change (joint consensus:
//! the joint config is committed by majorities of the old and the new set,
//! then the new set alone) and answers with the progress; the caller calls
//! again until it is done. Voters are added before any is removed, so a
//! change to a disjoint set never passes through a smaller quorum; voters
//! that are behind (down) are removed first, the active controller's node
//! last.
//!
//! # Why it is safe
//!
//! - Raft's joint consensus keeps every committed entry: each membership
//!   change is committed by a majority of the old and of the new voters,
//!   and openraft refuses a change while another is uncommitted (the plan
//!   also waits while one is in flight, and [`change_voters`] maps openraft's
//!   refusal to "in progress").
//! - A voter is added only once it is a learner whose replication is within
//!   [`MAX_LAG`] entries of the leader's log, and a step is taken only if the
//!   resulting set still has a majority of caught-up voters (the leader
//!   counts itself): no change stalls the quorum on nodes that are behind or
//!   down. A node's log is honest whenever it takes replication (a wiped
//!   node's [`super::rejoin::Gate`] refuses replication and votes until the
//!   quorum has been asked), so a node added while it still catches up
//!   cannot acknowledge entries it does not hold.
//! - Only brokers registered and unfenced in the image can be added; the
//!   request names broker ids, never addresses: addresses come from the
//!   membership the brokers' own registrations put there, so no caller can
//!   point the quorum at another endpoint.
//! - Leadership moves off a removed active controller: openraft lets a
//!   learner lead (it steps down only once the committed membership no
//!   longer holds it at all), so the active controller's own node is removed
//!   from the membership entirely, not kept as a learner. It keeps leading
//!   until that membership is committed and applied, then steps down, and
//!   the remaining voters elect a new controller; the next call makes the
//!   node a learner again ([`Step::AddLearner`], at the internal address its
//!   own registration put in the image), so it takes the metadata log again.
//!   Until then its heartbeats are refused (it is no member); the operator's
//!   next call comes well within a broker session. Between the commit and
//!   its step-down the old leader changes no membership ([`leads_as_member`]):
//!   no voter change, rejoin or new learner goes through it (openraft
//!   asserts in a debug build when a leader outside its membership appends
//!   one); callers ask again.
//!
//! Limits: a quorum grown from a single configured voter must have its
//! `--voters` updated too, or that node, wiped, would bootstrap a new
//! quorum alone (a single configured voter never asks anybody).

use std::collections::{BTreeMap, BTreeSet};

use openraft::ChangeMembers;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};

use super::image::Command;
use super::{ClusterImage, NodeId, Raft};

/// Most voters a set may have.
pub const MAX_VOTERS: usize = 7;
/// How far (in log entries) behind the leader a learner may be and still be made a voter.
pub const MAX_LAG: u64 = 50;

/// A request to move the voters to `voters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterChangeRequest {
    /// The wanted voter set (broker ids).
    pub voters: BTreeSet<NodeId>,
}

/// Where a voter change stands after one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterProgress {
    /// Whether the committed voters are the wanted set.
    pub done: bool,
    /// The voters after this call (the membership this node's log holds).
    pub voters: BTreeSet<NodeId>,
    /// Members that replicate the log without voting.
    pub learners: BTreeSet<NodeId>,
    /// What this call did, or what it waits for.
    pub detail: String,
}

/// A voter set that cannot be asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum VoterChangeError {
    /// The set has no voter or too many.
    #[error("voters {voters:?}: {count} voters asked; allowed: an odd number from 1 to {MAX_VOTERS}")]
    BadSize {
        /// The set asked for.
        voters: BTreeSet<NodeId>,
        /// Its size.
        count: usize,
    },
    /// Some ids name no registered broker.
    #[error(
        "voters {voters:?}: brokers {unknown:?} are not registered with the controller; only registered brokers can be voters"
    )]
    Unknown {
        /// The set asked for.
        voters: BTreeSet<NodeId>,
        /// The ids of no registered broker.
        unknown: Vec<NodeId>,
    },
    /// Some brokers to add are fenced (their sessions expired).
    #[error(
        "voters {voters:?}: brokers {fenced:?} are fenced (not heartbeating); only live brokers can be added as voters"
    )]
    Fenced {
        /// The set asked for.
        voters: BTreeSet<NodeId>,
        /// The fenced brokers the change would add.
        fenced: Vec<NodeId>,
    },
    /// This node is not the active controller.
    #[error("this node is not the active controller; the leader is {leader:?}")]
    NotLeader {
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The quorum could not commit the change.
    #[error("the controller quorum could not change its voters: {0}")]
    Raft(String),
}

/// The active controller's view of the quorum, as [`plan`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    /// The active controller (this node).
    pub leader: NodeId,
    /// Voters of the effective membership (both halves of a joint one).
    pub voters: BTreeSet<NodeId>,
    /// Learners of the effective membership.
    pub learners: BTreeSet<NodeId>,
    /// Whether a membership change is in flight (a joint config).
    pub changing: bool,
    /// Index of the leader's last log entry.
    pub last_log_index: u64,
    /// Highest index known replicated on each other member.
    pub matched: BTreeMap<NodeId, u64>,
    /// Registered brokers, and whether each is fenced.
    pub brokers: BTreeMap<NodeId, bool>,
}

impl QuorumView {
    /// Reads the view from openraft's metrics and the applied image.
    pub fn of(raft: &Raft, image: &ClusterImage) -> Result<QuorumView, VoterChangeError> {
        let m = raft.metrics().borrow().clone();
        if m.current_leader != Some(m.id) {
            return Err(VoterChangeError::NotLeader { leader: m.current_leader });
        }
        if !leads_as_member(&m) {
            return Err(VoterChangeError::NotLeader { leader: None });
        }
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        // A joint config is a change in flight; whether the last membership
        // is committed is openraft's own check (it refuses with InProgress).
        let joint = membership.get_joint_config().len() > 1;
        let matched = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index).unwrap_or(0))).collect())
            .unwrap_or_default();
        let brokers = image
            .brokers
            .values()
            .filter_map(|b| NodeId::try_from(b.broker_id).ok().map(|id| (id, b.fenced)))
            .collect();
        Ok(QuorumView {
            leader: m.id,
            voters,
            learners,
            changing: joint,
            last_log_index: m.last_log_index.unwrap_or(0),
            matched,
            brokers,
        })
    }

    fn caught_up(&self, id: NodeId) -> bool {
        id == self.leader || self.matched.get(&id).is_some_and(|m| m.saturating_add(MAX_LAG) >= self.last_log_index)
    }

    /// Whether `set` has a majority of caught-up voters.
    fn majority_caught_up(&self, set: &BTreeSet<NodeId>) -> bool {
        set.iter().filter(|id| self.caught_up(**id)).count() > set.len() / 2
    }
}

/// Whether this node leads as a member of its own membership. A leader that
/// removed its own node keeps leading until it steps down, but must change
/// no membership meanwhile (openraft asserts on it in a debug build): it
/// answers as a node that knows no leader, and the caller asks again.
pub fn leads_as_member(m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>) -> bool {
    m.current_leader == Some(m.id) && m.membership_config.membership().get_node(&m.id).is_some()
}

/// The next step towards the wanted voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The voters are the wanted set.
    Done,
    /// Nothing to do now; ask again (the reason says what is awaited).
    Wait(String),
    /// Make this learner a voter.
    Add(NodeId),
    /// Make this voter a learner.
    Remove(NodeId),
    /// Make this voter, the active controller's own node, no member at all,
    /// so that it steps down.
    RemoveLeader(NodeId),
    /// Make this registered broker, no member, a learner again.
    AddLearner(NodeId),
}

/// Checks the wanted set against the registered brokers.
pub fn check(wanted: &BTreeSet<NodeId>, view: &QuorumView) -> Result<(), VoterChangeError> {
    let voters = wanted.clone();
    if wanted.is_empty() || wanted.len() > MAX_VOTERS || wanted.len() % 2 == 0 {
        return Err(VoterChangeError::BadSize { count: wanted.len(), voters });
    }
    let unknown: Vec<NodeId> = wanted.iter().copied().filter(|id| !view.brokers.contains_key(id)).collect();
    if !unknown.is_empty() {
        return Err(VoterChangeError::Unknown { voters, unknown });
    }
    let fenced: Vec<NodeId> =
        wanted.iter().copied().filter(|id| !view.voters.contains(id) && view.brokers.get(id) == Some(&true)).collect();
    if !fenced.is_empty() {
        return Err(VoterChangeError::Fenced { voters, fenced });
    }
    Ok(())
}

/// Picks the next step from `view` towards `wanted` (already [`check`]ed).
pub fn plan(wanted: &BTreeSet<NodeId>, view: &QuorumView) -> Step {
    if view.changing {
        return Step::Wait(format!("a membership change is in progress (seen by controller {})", view.leader));
    }
    if &view.voters == wanted {
        // A removed active controller's node takes the log again.
        let outside = view.brokers.keys().copied().find(|id| !view.voters.contains(id) && !view.learners.contains(id));
        return outside.map_or(Step::Done, Step::AddLearner);
    }
    if let Some(add) = wanted.iter().copied().find(|id| !view.voters.contains(id)) {
        if !view.learners.contains(&add) {
            return Step::Wait(format!("broker {add} is not a learner of the metadata log yet (it registers first)"));
        }
        if !view.caught_up(add) {
            let at = view.matched.get(&add).copied().unwrap_or(0);
            return Step::Wait(format!(
                "learner {add} is catching up: at index {at} of {}; it becomes a voter within {MAX_LAG} entries",
                view.last_log_index
            ));
        }
        let mut next = view.voters.clone();
        next.insert(add);
        if !view.majority_caught_up(&next) {
            return Step::Wait(format!("adding {add} would leave voters {next:?} without a caught-up majority"));
        }
        return Step::Add(add);
    }
    // Only removals remain: voters behind (down) first, then the others,
    // the active controller last.
    let mut extra: Vec<NodeId> = view.voters.iter().copied().filter(|id| !wanted.contains(id)).collect();
    extra.sort_by_key(|id| (*id == view.leader, view.caught_up(*id)));
    let Some(remove) = extra.first().copied() else {
        return Step::Done;
    };
    let mut next = view.voters.clone();
    next.remove(&remove);
    if !view.majority_caught_up(&next) {
        return Step::Wait(format!("removing {remove} would leave voters {next:?} without a caught-up majority"));
    }
    if remove == view.leader { Step::RemoveLeader(remove) } else { Step::Remove(remove) }
}

/// The active controller's side of a voter change: checks the set, takes
/// at most one step and answers with the progress.
pub async fn change_voters(
    raft: &Raft,
    image: &ClusterImage,
    request: &VoterChangeRequest,
) -> Result<VoterProgress, VoterChangeError> {
    let view = QuorumView::of(raft, image)?;
    check(&request.voters, &view)?;
    // A rejoining voter the new set leaves out is no longer meant to vote:
    // forgotten, it is not made a voter again and counts in no quorum size.
    for node_id in image.rejoining_voters.iter().filter(|id| !request.voters.contains(id)) {
        match raft.client_write(Command::VoterRejoined { node_id: *node_id }).await {
            Ok(_) => tracing::info!(node_id, "forgot a rejoining voter the new voters leave out"),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                return Err(VoterChangeError::NotLeader { leader: f.leader_id });
            }
            Err(e) => return Err(VoterChangeError::Raft(e.to_string())),
        }
    }
    let step = plan(&request.voters, &view);
    let (change, detail) = match &step {
        Step::Done => return Ok(progress(&view, true, "the voters are the wanted set".into())),
        Step::Wait(reason) => return Ok(progress(&view, false, reason.clone())),
        Step::Add(id) => (ChangeMembers::AddVoterIds(BTreeSet::from([*id])), format!("made broker {id} a voter")),
        Step::Remove(id) => (ChangeMembers::RemoveVoters(BTreeSet::from([*id])), format!("removed voter {id}")),
        Step::RemoveLeader(id) => (
            ChangeMembers::RemoveVoters(BTreeSet::from([*id])),
            format!("removed voter {id}, the active controller's node, which steps down"),
        ),
        Step::AddLearner(id) => {
            let endpoint =
                i32::try_from(*id).ok().and_then(|b| image.brokers.get(&b)).map(|b| b.internal_endpoint.clone());
            let Some(endpoint) = endpoint else {
                return Ok(progress(&view, false, format!("broker {id} is no longer registered")));
            };
            (
                ChangeMembers::AddNodes(BTreeMap::from([(*id, openraft::BasicNode::new(endpoint))])),
                format!("made broker {id} a learner again"),
            )
        }
    };
    // Only the active controller's node leaves the membership entirely.
    let retain = !matches!(step, Step::RemoveLeader(_));
    tracing::info!(?step, wanted = ?request.voters, "changing the controller voters");
    match raft.change_membership(change, retain).await {
        Ok(_) => {}
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            return Err(VoterChangeError::NotLeader { leader: f.leader_id });
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(_)))) => {
            return Ok(progress(&view, false, "a membership change is in progress (openraft)".into()));
        }
        Err(e) => return Err(VoterChangeError::Raft(e.to_string())),
    }
    // Answer from the membership after the step; this node may have stepped down.
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let learners = membership.learner_ids().collect();
    tracing::info!(?voters, "{detail}");
    // Done only when a call finds nothing left to do (a removed active
    // controller's node still has to become a learner again).
    Ok(VoterProgress { done: false, voters, learners, detail })
}

fn progress(view: &QuorumView, done: bool, detail: String) -> VoterProgress {
    VoterProgress { done, voters: view.voters.clone(), learners: view.learners.clone(), detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(voters: &[NodeId], learners: &[NodeId], leader: NodeId) -> QuorumView {
        let members = voters.iter().chain(learners).copied();
        QuorumView {
            leader,
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
            changing: false,
            last_log_index: 1000,
            matched: members.clone().filter(|id| *id != leader).map(|id| (id, 1000)).collect(),
            brokers: members.map(|id| (id, false)).collect(),
        }
    }

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn grows_one_caught_up_learner_at_a_time() {
        let v = view(&[0, 1, 2], &[3, 4], 0);
        assert_eq!(plan(&set(&[0, 1, 2, 3, 4]), &v), Step::Add(3));
        let v = view(&[0, 1, 2, 3], &[4], 0);
        assert_eq!(plan(&set(&[0, 1, 2, 3, 4]), &v), Step::Add(4));
        let v = view(&[0, 1, 2, 3, 4], &[], 0);
        assert_eq!(plan(&set(&[0, 1, 2, 3, 4]), &v), Step::Done);
    }

    #[test]
    fn a_learner_behind_is_waited_for() {
        let mut v = view(&[0, 1, 2], &[3], 0);
        v.matched.insert(3, 10);
        assert!(matches!(plan(&set(&[0, 1, 2, 3, 4]), &v), Step::Wait(r) if r.contains("learner 3 is catching up")));
        v.matched.insert(3, 1000 - MAX_LAG);
        assert_eq!(plan(&set(&[0, 1, 2, 3, 4]), &v), Step::Add(3));
    }

    #[test]
    fn a_registered_broker_not_yet_a_learner_is_waited_for() {
        let mut v = view(&[0], &[], 0);
        v.brokers.insert(1, false);
        assert!(matches!(plan(&set(&[0, 1, 2]), &v), Step::Wait(r) if r.contains("broker 1 is not a learner")));
    }

    #[test]
    fn shrinks_others_before_the_leader() {
        let v = view(&[0, 1, 2, 3, 4], &[], 3);
        assert_eq!(plan(&set(&[0, 1, 2]), &v), Step::Remove(4));
        let v = view(&[0, 1, 2, 3], &[4], 3);
        assert_eq!(plan(&set(&[0, 1, 2]), &v), Step::RemoveLeader(3));
        // Once removed it is no member: the next step makes it a learner again.
        let mut v = view(&[0, 1, 2], &[4], 0);
        v.brokers.insert(3, false);
        assert_eq!(plan(&set(&[0, 1, 2]), &v), Step::AddLearner(3));
    }

    #[test]
    fn adds_before_removing_for_a_disjoint_set() {
        let v = view(&[0, 1, 2], &[3, 4, 5], 1);
        assert_eq!(plan(&set(&[3, 4, 5]), &v), Step::Add(3));
        let v = view(&[0, 1, 2, 3, 4, 5], &[], 1);
        assert_eq!(plan(&set(&[3, 4, 5]), &v), Step::Remove(0));
    }

    #[test]
    fn never_leaves_a_set_without_a_caught_up_majority() {
        // 5 voters, 3 and 4 down (behind): removing 1 leaves {0,2,3,4}, only 0 and 2 caught up.
        let mut v = view(&[0, 1, 2, 3, 4], &[], 0);
        v.matched.insert(3, 0);
        v.matched.insert(4, 0);
        assert!(matches!(plan(&set(&[0, 3, 4]), &v), Step::Wait(r) if r.contains("without a caught-up majority")));
        // Voters that are down go first: removing 3 leaves {0,1,2,4}, 3 of 4 caught up.
        assert_eq!(plan(&set(&[0, 1, 2]), &v), Step::Remove(3));
        v.matched.insert(3, 1000);
        assert_eq!(plan(&set(&[0, 1, 2]), &v), Step::Remove(4));
    }

    #[test]
    fn waits_while_a_change_is_in_flight() {
        let mut v = view(&[0, 1, 2], &[3], 0);
        v.changing = true;
        assert!(matches!(plan(&set(&[0, 1, 2, 3, 4]), &v), Step::Wait(r) if r.contains("in progress")));
    }

    #[test]
    fn refuses_bad_sets_naming_them() {
        let mut v = view(&[0, 1, 2], &[3, 4], 0);
        v.brokers.insert(4, true);
        let e = check(&set(&[]), &v).unwrap_err();
        assert!(matches!(e, VoterChangeError::BadSize { count: 0, .. }), "{e}");
        let e = check(&set(&[0, 1]), &v).unwrap_err();
        assert!(e.to_string().contains("an odd number from 1 to 7"), "{e}");
        let e = check(&set(&[0, 1, 9]), &v).unwrap_err();
        assert_eq!(e, VoterChangeError::Unknown { voters: set(&[0, 1, 9]), unknown: vec![9] });
        let e = check(&set(&[0, 1, 2, 3, 4]), &v).unwrap_err();
        assert_eq!(e, VoterChangeError::Fenced { voters: set(&[0, 1, 2, 3, 4]), fenced: vec![4] });
        // A fenced broker that already votes may stay.
        v.brokers.insert(2, true);
        assert_eq!(check(&set(&[0, 1, 2]), &v), Ok(()));
        let big: Vec<NodeId> = (0..9).collect();
        assert!(check(&set(&big), &v).is_err());
    }
}
