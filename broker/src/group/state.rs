//! The classic group state machine, as Kafka's `ClassicGroup` and the
//! classic half of its `GroupMetadataManager` run it.
//!
//! States: Empty → PreparingRebalance → CompletingRebalance → Stable, back to
//! PreparingRebalance on any membership or metadata change, Empty when the
//! last member goes, Dead when the group is deleted. A rebalance's join phase
//! ends when every known member has rejoined, or at the rebalance timeout
//! (the largest of the members'), when dynamic members that did not rejoin
//! are dropped; an empty group's first rebalance waits
//! `group.initial.rebalance.delay.ms` more per newly joined member, up to the
//! rebalance timeout. The generation id goes up by one per join phase. The
//! leader (the first member, or another one that rejoined in time) gets every
//! member's metadata and sends the assignment in its SyncGroup; the
//! assignment is written to `__consumer_offsets` and only then handed out and
//! the group made Stable. Members that do not send SyncGroup within the
//! rebalance timeout are dropped.
//!
//! Everything here is plain data and plain functions of (request, [`Time`]):
//! no I/O, no clock reads, no tasks. Waiting requests are oneshot senders
//! kept on their [`Member`]. Records that must be written are queued in an
//! outbox ([`Group::take_writes`]) for the coordinator, which reports the
//! outcome back through [`Group::on_assignment_stored`] and
//! [`Group::on_static_member_stored`]. Timeouts are deadlines the coordinator
//! sleeps until ([`Group::next_deadline`]) before calling [`Group::on_timer`].
//!
//! Invariants: `leader_id` is a member whenever there are members; every
//! static member's instance id maps to its current member id; `pending_sync`
//! only holds members; a deadline is never at or before the time it was set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::codec::{GroupMetadataValue, MemberMetadata};
use super::member::{JoinResult, JoinedMember, Member, Protocol, SyncResult, consumer_subscription_topics};
use super::{GroupConfig, GroupError, Time};

/// The state of a classic group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// A rebalance is waiting for members to (re)join.
    PreparingRebalance,
    /// Members have joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignment and heartbeat.
    Stable,
    /// The group is deleted or no longer coordinated here.
    Dead,
}

impl GroupState {
    /// Kafka's name of the state, as DescribeGroups and ListGroups report it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// States a group may enter this one from.
    fn valid_previous(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }
}

/// A JoinGroup, as the state machine needs it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// "" for a member joining for the first time.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// The client's id.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// Protocol type, e.g. "consumer".
    pub protocol_type: String,
    /// Supported protocols, most preferred first.
    pub protocols: Vec<Protocol>,
    /// Session timeout (ms), already checked against the broker's range.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED and a member id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader may be told to skip assignment.
    pub supports_skip_assignment: bool,
    /// The client's reason (v8+), for logs.
    pub reason: Option<String>,
}

/// A SyncGroup, as the state machine needs it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// The generation the member joined.
    pub generation_id: i32,
    /// Protocol type (v5+).
    pub protocol_type: Option<String>,
    /// Protocol name (v5+).
    pub protocol_name: Option<String>,
    /// The leader's assignment, by member id.
    pub assignments: Vec<(String, Bytes)>,
}

/// A member leaving (LeaveGroup).
#[derive(Debug, Clone)]
pub struct LeavingMember {
    /// Member id; "" to remove a static member by its instance id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// The client's reason, for logs.
    pub reason: Option<String>,
}

/// A join answered now, or one that waits for the rebalance.
#[derive(Debug)]
pub enum JoinOutcome {
    /// Answered.
    Done(JoinResult),
    /// Answered when the join phase ends.
    Waiting(oneshot::Receiver<JoinResult>),
}

/// A sync answered now, or one that waits for the leader's assignment.
#[derive(Debug)]
pub enum SyncOutcome {
    /// Answered.
    Done(SyncResult),
    /// Answered when the assignment is stored.
    Waiting(oneshot::Receiver<SyncResult>),
}

/// A group metadata record the coordinator must write, and what to do after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingWrite {
    /// The group as it is now (e.g. after it became Empty); nothing waits on it.
    Metadata(GroupMetadataValue),
    /// The leader's assignment for `generation`; report with [`Group::on_assignment_stored`].
    Assignment { generation: i32, value: GroupMetadataValue, assignment: HashMap<String, Bytes> },
    /// A static member's new member id; report with [`Group::on_static_member_stored`].
    StaticMember { value: GroupMetadataValue, replacement: StaticReplacement },
}

impl PendingWrite {
    /// The record's value.
    pub fn value(&self) -> &GroupMetadataValue {
        match self {
            PendingWrite::Metadata(v)
            | PendingWrite::Assignment { value: v, .. }
            | PendingWrite::StaticMember { value: v, .. } => v,
        }
    }
}

/// What is needed to finish (or undo) a static member's replacement in a Stable group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticReplacement {
    generation: i32,
    instance_id: String,
    old_member_id: String,
    new_member_id: String,
    old_protocols: Vec<Protocol>,
    old_rebalance_timeout_ms: i32,
    old_session_timeout_ms: i32,
    leader_before: Option<String>,
    supports_skip_assignment: bool,
}

/// What a join-phase deadline does when it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinTimer {
    /// An empty group's first rebalance, waiting for more members.
    InitialDelay { delay_ms: u64, remaining_ms: u64 },
    /// The rebalance timeout.
    Rebalance,
}

/// Everything DescribeGroups shows of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The state's name.
    pub state: GroupState,
    /// Protocol type, "" for none.
    pub protocol_type: String,
    /// The selected protocol when Stable, else "".
    pub protocol_data: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// One member in a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the selected protocol (Stable groups only).
    pub metadata: Bytes,
    /// Assignment (Stable groups only).
    pub assignment: Bytes,
}

/// A classic consumer group.
#[derive(Debug)]
pub struct Group {
    group_id: String,
    config: GroupConfig,
    state: GroupState,
    previous_state: GroupState,
    state_timestamp_ms: Option<i64>,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    static_members: HashMap<String, String>,
    /// Members told MEMBER_ID_REQUIRED, with the deadline to rejoin by.
    pending_members: HashMap<String, Instant>,
    /// Members that have not sent SyncGroup for the current generation.
    pending_sync: BTreeSet<String>,
    new_member_added: bool,
    join_timer: Option<(Instant, JoinTimer)>,
    sync_deadline: Option<Instant>,
    subscribed_topics: Option<BTreeSet<String>>,
    outbox: Vec<PendingWrite>,
}

fn after(t: Time, ms: u64) -> Instant {
    // At least 1 ms, so a timer never fires again in the pass that set it.
    t.now + Duration::from_millis(ms.max(1))
}

fn positive_ms(ms: i32) -> u64 {
    ms.max(0) as u64
}

impl Group {
    /// A new, Empty group.
    pub fn new(group_id: impl Into<String>, config: GroupConfig, t: Time) -> Group {
        Group {
            group_id: group_id.into(),
            config,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: Some(t.wall_ms),
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            join_timer: None,
            sync_deadline: None,
            subscribed_topics: None,
            outbox: Vec::new(),
        }
    }

    /// A group as its `__consumer_offsets` record describes it: Empty without
    /// members, else Stable with every member expected to heartbeat within
    /// its session timeout from `t`.
    pub fn from_record(group_id: impl Into<String>, value: GroupMetadataValue, config: GroupConfig, t: Time) -> Group {
        let mut group = Group::new(group_id, config, t);
        group.protocol_type = Some(value.protocol_type).filter(|p| !p.is_empty());
        group.generation_id = value.generation;
        group.protocol_name = value.protocol;
        group.state_timestamp_ms = (value.current_state_timestamp >= 0).then_some(value.current_state_timestamp);
        for m in value.members {
            let protocols = match &group.protocol_name {
                Some(name) => vec![Protocol { name: name.clone(), metadata: m.subscription }],
                None => Vec::new(),
            };
            if let Some(instance) = &m.group_instance_id {
                group.static_members.insert(instance.clone(), m.member_id.clone());
            }
            let member = Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout,
                session_timeout_ms: m.session_timeout,
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                protocols,
                assignment: m.assignment,
                is_new: false,
                awaiting_join: None,
                awaiting_sync: None,
                heartbeat_deadline: Some(after(t, positive_ms(m.session_timeout))),
            };
            group.members.insert(m.member_id, member);
        }
        if !group.members.is_empty() {
            group.leader_id =
                value.leader.filter(|l| group.members.contains_key(l)).or_else(|| group.members.keys().next().cloned());
            group.state = GroupState::Stable;
            group.previous_state = GroupState::CompletingRebalance;
        }
        group.subscribed_topics = group.compute_subscribed_topics();
        group
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The current state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The current generation id.
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// The protocol type, if any member ever joined.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The selected protocol of the current generation.
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// The leader's member id.
    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    /// When the group entered its current state (wall-clock ms).
    pub fn state_timestamp_ms(&self) -> Option<i64> {
        self.state_timestamp_ms
    }

    /// The topics the members subscribe to, for "consumer" groups.
    pub fn subscribed_topics(&self) -> Option<&BTreeSet<String>> {
        self.subscribed_topics.as_ref()
    }

    /// Whether the group's members subscribe to `topic`.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed_topics.as_ref().is_some_and(|t| t.contains(topic))
    }

    /// The members, by member id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Whether `member_id` is a member.
    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// Whether the group has neither members nor members about to join.
    pub fn has_no_members(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    /// Whether the group is Dead.
    pub fn is_dead(&self) -> bool {
        self.state == GroupState::Dead
    }

    /// Records the coordinator must write, in order.
    pub fn take_writes(&mut self) -> Vec<PendingWrite> {
        std::mem::take(&mut self.outbox)
    }

    fn transition_to(&mut self, state: GroupState, t: Time) {
        if !state.valid_previous().contains(&self.state) {
            // A bug, not input: log it loudly and go on (Kafka throws).
            tracing::error!(group = %self.group_id, from = self.state.as_str(), to = state.as_str(), "invalid group state transition");
        }
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp_ms = Some(t.wall_ms);
    }

    /// Marks the group deleted; answers and drops any waiting requests.
    pub fn mark_dead(&mut self, t: Time) -> GroupState {
        let before = self.state;
        for member in self.members.values_mut() {
            member.complete_join(JoinResult::error(GroupError::CoordinatorNotAvailable, member.member_id.clone()));
            member.complete_sync(SyncResult::error(GroupError::CoordinatorNotAvailable));
        }
        self.transition_to(GroupState::Dead, t);
        self.join_timer = None;
        self.sync_deadline = None;
        before
    }

    /// Undoes [`Group::mark_dead`] after its tombstone could not be written.
    pub fn undo_dead(&mut self, before: GroupState, t: Time) {
        if self.state == GroupState::Dead {
            self.previous_state = GroupState::Dead;
            self.state = before;
            self.state_timestamp_ms = Some(t.wall_ms);
        }
    }

    /// Starts a rebalance: every member must rejoin (a group just converted
    /// from a consumer group, whose members' generations are their epochs).
    pub fn request_rebalance(&mut self, reason: &str, t: Time) {
        self.maybe_prepare_rebalance_or_complete_join(reason, t);
    }

    /// Queues a record of the group as it is now, its members' current
    /// assignments included: after an online upgrade replaced a classic group
    /// by this empty one, a reload must not bring back the classic members;
    /// after a downgrade, a reload must find them.
    pub fn record_now(&mut self) {
        self.outbox.push(PendingWrite::Metadata(self.metadata_value(&self.current_assignment())));
    }

    /// Answers every waiting request with `error` (the coordinator is going away).
    pub fn fail_waiting(&mut self, error: GroupError) {
        for member in self.members.values_mut() {
            member.complete_join(JoinResult::error(error.clone(), member.member_id.clone()));
            member.complete_sync(SyncResult::error(error.clone()));
        }
    }

    /// The largest rebalance timeout of the members.
    fn rebalance_timeout_ms(&self) -> u64 {
        self.members.values().map(|m| positive_ms(m.rebalance_timeout_ms)).max().unwrap_or(0)
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.values().all(Member::is_awaiting_join) && self.pending_members.is_empty()
    }

    fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance.valid_previous().contains(&self.state)
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let n = self.members.len();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| self.members.values().filter(|m| m.supports(&p.name)).count() == n)
    }

    fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(GroupError::UnknownMemberId),
                Some(current) if current != member_id => Err(GroupError::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if !self.members.contains_key(member_id) => Err(GroupError::UnknownMemberId),
            None => Ok(()),
        }
    }

    /// Kafka's `acceptJoiningMember`: `group.max.size` counts waiting members
    /// during a join phase and all members otherwise.
    fn accepts_joining_member(&self, member_id: &str) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members.get(member_id).is_some_and(Member::is_awaiting_join)
                    || self.members.values().filter(|m| m.is_awaiting_join()).count() < self.config.max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < self.config.max_size
            }
        }
    }

    /// The protocol every member supports that most members prefer (ties go
    /// to the leader's preference).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: BTreeSet<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for member in self.members.values() {
            if let Some(vote) = member.vote(&candidates) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        let most = votes.values().copied().max()?;
        let preference = self.leader_id.as_ref().and_then(|l| self.members.get(l)).unwrap_or(first);
        preference
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| votes.get(name) == Some(&most))
            .map(str::to_string)
    }

    fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            topics.extend(consumer_subscription_topics(member.metadata(protocol)?)?);
        }
        Some(topics)
    }

    fn current_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn join_answer(&self, member_id: &str, members: Vec<JoinedMember>, leader: Option<&str>) -> JoinResult {
        JoinResult {
            error: None,
            member_id: member_id.to_string(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: leader.unwrap_or_default().to_string(),
            skip_assignment: false,
            members,
        }
    }

    /// The group's metadata record with `assignment` (by member id; members missing from it get none).
    pub fn metadata_value(&self, assignment: &HashMap<String, Bytes>) -> GroupMetadataValue {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp: self.state_timestamp_ms.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata(protocol).cloned().unwrap_or_default(),
                    assignment: assignment.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    fn current_assignment(&self) -> HashMap<String, Bytes> {
        self.members.values().map(|m| (m.member_id.clone(), m.assignment.clone())).collect()
    }

    fn reschedule_heartbeat(&mut self, member_id: &str, timeout_ms: Option<u64>, t: Time) {
        if let Some(m) = self.members.get_mut(member_id) {
            let ms = timeout_ms.unwrap_or_else(|| positive_ms(m.session_timeout_ms));
            m.heartbeat_deadline = Some(after(t, ms));
        }
    }

    fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members.insert(instance.clone(), member.member_id.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let mut removed = self.members.remove(member_id);
        if let Some(m) = &mut removed {
            if let Some(instance) = &m.group_instance_id
                && self.static_members.get(instance).is_some_and(|id| id == member_id)
            {
                self.static_members.remove(instance);
            }
            m.complete_sync(SyncResult::error(GroupError::UnknownMemberId));
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    fn generate_member_id(client_id: &str, instance_id: Option<&str>) -> String {
        format!("{}-{}", instance_id.unwrap_or(client_id), uuid::Uuid::new_v4())
    }

    // ----- JoinGroup -----

    /// Handles a JoinGroup (Kafka's `classicGroupJoin`).
    pub fn join(&mut self, req: JoinRequest, t: Time) -> JoinOutcome {
        if !self.accepts_joining_member(&req.member_id) {
            return JoinOutcome::Done(JoinResult::error(GroupError::GroupMaxSizeReached, req.member_id));
        }
        if req.member_id.is_empty() { self.join_new_member(req, t) } else { self.join_existing_member(req, t) }
    }

    fn join_new_member(&mut self, req: JoinRequest, t: Time) -> JoinOutcome {
        if self.state == GroupState::Dead {
            return JoinOutcome::Done(JoinResult::error(GroupError::CoordinatorNotAvailable, req.member_id));
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return JoinOutcome::Done(JoinResult::error(GroupError::InconsistentGroupProtocol, req.member_id));
        }
        let new_id = Self::generate_member_id(&req.client_id, req.group_instance_id.as_deref());
        if let Some(instance) = req.group_instance_id.clone() {
            return match self.static_members.get(&instance).cloned() {
                Some(old_id) => {
                    tracing::info!(group = %self.group_id, instance = %instance, old = %old_id, new = %new_id, state = self.state.as_str(), "static member rejoined with an unknown member id; replacing its old member id");
                    self.replace_static_member_then_rebalance_or_complete_join(req, &old_id, new_id, t)
                }
                None => self.add_member_then_rebalance_or_complete_join(req, new_id, t),
            };
        }
        if req.require_known_member_id {
            // KIP-394: the member must come back with this id; until then it is
            // pending, and dropped if it does not return within its session timeout.
            self.pending_members.insert(new_id.clone(), after(t, positive_ms(req.session_timeout_ms)));
            return JoinOutcome::Done(JoinResult::error(GroupError::MemberIdRequired, new_id));
        }
        self.add_member_then_rebalance_or_complete_join(req, new_id, t)
    }

    fn join_existing_member(&mut self, req: JoinRequest, t: Time) -> JoinOutcome {
        let member_id = req.member_id.clone();
        if self.state == GroupState::Dead {
            return JoinOutcome::Done(JoinResult::error(GroupError::CoordinatorNotAvailable, member_id));
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return JoinOutcome::Done(JoinResult::error(GroupError::InconsistentGroupProtocol, member_id));
        }
        if self.pending_members.contains_key(&member_id) {
            if req.group_instance_id.is_some() {
                // Pending members are dynamic by construction.
                return JoinOutcome::Done(JoinResult::error(GroupError::UnknownMemberId, member_id));
            }
            return self.add_member_then_rebalance_or_complete_join(req, member_id, t);
        }
        if let Err(e) = self.validate_member(&member_id, req.group_instance_id.as_deref()) {
            return JoinOutcome::Done(JoinResult::error(e, member_id));
        }
        let (is_leader, matches) = match self.members.get(&member_id) {
            Some(m) => (self.leader_id.as_deref() == Some(member_id.as_str()), m.matches(&req.protocols)),
            None => return JoinOutcome::Done(JoinResult::error(GroupError::UnknownMemberId, member_id)),
        };
        match self.state {
            GroupState::PreparingRebalance => self.update_member_then_rebalance_or_complete_join(req, t),
            GroupState::CompletingRebalance if matches => {
                // The member lost our answer and asks again: same generation, same answer.
                let members = if is_leader { self.current_members() } else { Vec::new() };
                JoinOutcome::Done(self.join_answer(&member_id, members, self.leader_id.as_deref()))
            }
            GroupState::CompletingRebalance => self.update_member_then_rebalance_or_complete_join(req, t),
            // A leader's join forces a rebalance (its assignment may depend on
            // more than member metadata, e.g. topic metadata).
            GroupState::Stable if is_leader || !matches => self.update_member_then_rebalance_or_complete_join(req, t),
            GroupState::Stable => {
                JoinOutcome::Done(self.join_answer(&member_id, Vec::new(), self.leader_id.as_deref()))
            }
            GroupState::Empty | GroupState::Dead => {
                tracing::warn!(group = %self.group_id, member = %member_id, state = self.state.as_str(), "member rejoining a group in an unexpected state");
                JoinOutcome::Done(JoinResult::error(GroupError::UnknownMemberId, member_id))
            }
        }
    }

    fn add_member_then_rebalance_or_complete_join(
        &mut self,
        req: JoinRequest,
        member_id: String,
        t: Time,
    ) -> JoinOutcome {
        let (tx, rx) = oneshot::channel();
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols,
            assignment: Bytes::new(),
            is_new: true,
            awaiting_join: Some(tx),
            awaiting_sync: None,
            heartbeat_deadline: None,
        };
        if self.state == GroupState::PreparingRebalance && self.previous_state == GroupState::Empty {
            self.new_member_added = true;
        }
        self.add_member(member);
        // A new member cannot heartbeat before it has its member id; drop it
        // if its join is still waiting after the new-member join timeout.
        self.reschedule_heartbeat(&member_id, Some(self.config.new_member_join_timeout_ms), t);
        let reason =
            format!("adding new member {member_id}; client reason: {}", req.reason.as_deref().unwrap_or("none"));
        self.maybe_prepare_rebalance_or_complete_join(&reason, t);
        JoinOutcome::Waiting(rx)
    }

    fn update_member_then_rebalance_or_complete_join(&mut self, req: JoinRequest, t: Time) -> JoinOutcome {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&req.member_id) {
            m.protocols = req.protocols;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.session_timeout_ms = req.session_timeout_ms;
            // A join superseding an earlier waiting one: the earlier sender is
            // dropped and that request answers COORDINATOR_NOT_AVAILABLE.
            m.awaiting_join = Some(tx);
        }
        let reason = format!(
            "member {} rejoined during {}; client reason: {}",
            req.member_id,
            self.state.as_str(),
            req.reason.as_deref().unwrap_or("none")
        );
        self.maybe_prepare_rebalance_or_complete_join(&reason, t);
        JoinOutcome::Waiting(rx)
    }

    fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) -> bool {
        let Some(mut old) = self.members.remove(old_id) else {
            return false;
        };
        // Fence whatever the old member id is still waiting on.
        old.complete_join(JoinResult::error(GroupError::FencedInstanceId, old_id));
        old.complete_sync(SyncResult::error(GroupError::FencedInstanceId));
        let new = Member {
            member_id: new_id.to_string(),
            group_instance_id: old.group_instance_id.clone(),
            client_id: old.client_id.clone(),
            client_host: old.client_host.clone(),
            rebalance_timeout_ms: old.rebalance_timeout_ms,
            session_timeout_ms: old.session_timeout_ms,
            protocol_type: old.protocol_type.clone(),
            protocols: old.protocols.clone(),
            assignment: old.assignment.clone(),
            is_new: false,
            awaiting_join: None,
            awaiting_sync: None,
            heartbeat_deadline: None,
        };
        self.members.insert(new_id.to_string(), new);
        if self.leader_id.as_deref() == Some(old_id) {
            self.leader_id = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
        self.static_members.insert(instance_id.to_string(), new_id.to_string());
        true
    }

    fn replace_static_member_then_rebalance_or_complete_join(
        &mut self,
        req: JoinRequest,
        old_id: &str,
        new_id: String,
        t: Time,
    ) -> JoinOutcome {
        let instance_id = req.group_instance_id.clone().unwrap_or_default();
        let leader_before = self.leader_id.clone();
        if !self.replace_static_member(&instance_id, old_id, &new_id) {
            return self.add_member_then_rebalance_or_complete_join(req, new_id, t);
        }
        self.reschedule_heartbeat(&new_id, None, t);
        let (tx, rx) = oneshot::channel();
        let Some(member) = self.members.get_mut(&new_id) else {
            return JoinOutcome::Done(JoinResult::error(GroupError::UnknownMemberId, new_id));
        };
        let old_protocols = std::mem::replace(&mut member.protocols, req.protocols.clone());
        let old_rebalance_timeout_ms = std::mem::replace(&mut member.rebalance_timeout_ms, req.rebalance_timeout_ms);
        let old_session_timeout_ms = std::mem::replace(&mut member.session_timeout_ms, req.session_timeout_ms);
        member.awaiting_join = Some(tx);
        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol_name {
                    // Same protocol: no rebalance; persist the new member id, then answer.
                    tracing::info!(group = %self.group_id, instance = %instance_id, "static member rejoined without changing the selected protocol; no rebalance");
                    let value = self.metadata_value(&self.current_assignment());
                    self.outbox.push(PendingWrite::StaticMember {
                        value,
                        replacement: StaticReplacement {
                            generation: self.generation_id,
                            instance_id,
                            old_member_id: old_id.to_string(),
                            new_member_id: new_id,
                            old_protocols,
                            old_rebalance_timeout_ms,
                            old_session_timeout_ms,
                            leader_before,
                            supports_skip_assignment: req.supports_skip_assignment,
                        },
                    });
                } else {
                    let reason = format!("static member {instance_id} rejoined with a change of protocol");
                    self.maybe_prepare_rebalance_or_complete_join(&reason, t);
                }
            }
            GroupState::CompletingRebalance => {
                // The leader may already be assigning to the old member id; rebalance
                // so the new id gets an assignment.
                let reason = format!("static member {instance_id} rejoined during CompletingRebalance");
                self.prepare_rebalance(&reason, t);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(t),
            GroupState::Empty | GroupState::Dead => {
                tracing::error!(group = %self.group_id, state = self.state.as_str(), "static member replaced in a group without members");
            }
        }
        JoinOutcome::Waiting(rx)
    }

    /// Reports whether a static member's new member id reached the log.
    pub fn on_static_member_stored(&mut self, r: StaticReplacement, result: Result<(), GroupError>, t: Time) {
        match result {
            Ok(()) => {
                let is_leader = self.leader_id.as_deref() == Some(r.new_member_id.as_str());
                let answer = if r.supports_skip_assignment {
                    let members = if is_leader { self.current_members() } else { Vec::new() };
                    JoinResult {
                        skip_assignment: is_leader,
                        ..self.join_answer(&r.new_member_id, members, self.leader_id.as_deref())
                    }
                } else {
                    // Older clients cannot skip assignment: name the old leader id
                    // so the rejoined member acts as a follower.
                    self.join_answer(&r.new_member_id, Vec::new(), r.leader_before.as_deref())
                };
                if let Some(m) = self.members.get_mut(&r.new_member_id) {
                    m.complete_join(answer);
                }
            }
            Err(e) => {
                tracing::warn!(group = %self.group_id, instance = %r.instance_id, error = %e, "could not persist a static member's new member id; reverting to the old one");
                let Some(member) = self.members.get_mut(&r.new_member_id) else {
                    return;
                };
                let waiting = member.awaiting_join.take();
                if self.state == GroupState::Stable && self.generation_id == r.generation {
                    member.protocols = r.old_protocols;
                    member.rebalance_timeout_ms = r.old_rebalance_timeout_ms;
                    member.session_timeout_ms = r.old_session_timeout_ms;
                    if self.replace_static_member(&r.instance_id, &r.new_member_id, &r.old_member_id) {
                        self.reschedule_heartbeat(&r.old_member_id, None, t);
                    }
                }
                if let Some(tx) = waiting {
                    let _ = tx.send(JoinResult {
                        error: Some(e),
                        member_id: String::new(),
                        ..self.join_answer("", Vec::new(), r.leader_before.as_deref())
                    });
                }
            }
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, reason: &str, t: Time) {
        if self.can_rebalance() {
            self.prepare_rebalance(reason, t);
        } else {
            self.maybe_complete_join_phase(t);
        }
    }

    fn prepare_rebalance(&mut self, reason: &str, t: Time) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_with_error(GroupError::RebalanceInProgress, t);
        }
        self.sync_deadline = None;
        let initial = self.state == GroupState::Empty;
        if initial {
            let delay_ms = self.config.initial_rebalance_delay_ms;
            let remaining_ms = self.rebalance_timeout_ms().saturating_sub(delay_ms);
            self.join_timer = Some((after(t, delay_ms), JoinTimer::InitialDelay { delay_ms, remaining_ms }));
        }
        tracing::info!(group = %self.group_id, state = self.state.as_str(), generation = self.generation_id, %reason, "preparing to rebalance group");
        self.transition_to(GroupState::PreparingRebalance, t);
        if !initial {
            self.maybe_complete_join_else_schedule(t);
        }
    }

    fn maybe_complete_join_else_schedule(&mut self, t: Time) {
        if self.has_all_members_joined() {
            self.complete_join(t);
        } else {
            self.join_timer = Some((after(t, self.rebalance_timeout_ms()), JoinTimer::Rebalance));
        }
    }

    /// Ends the join phase early when everyone is in (but never during an
    /// empty group's initial delay).
    fn maybe_complete_join_phase(&mut self, t: Time) {
        if self.state == GroupState::PreparingRebalance
            && self.has_all_members_joined()
            && self.previous_state != GroupState::Empty
        {
            self.complete_join(t);
        }
    }

    fn complete_join(&mut self, t: Time) {
        self.join_timer = None;
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        if !not_rejoined.is_empty() {
            tracing::info!(group = %self.group_id, members = ?not_rejoined, "removing dynamic members that did not rejoin in time");
            for id in &not_rejoined {
                self.remove_member(id);
            }
        }
        if self.state == GroupState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait another
            // rebalance timeout (their sessions may expire meanwhile).
            tracing::warn!(group = %self.group_id, "no member rejoined in time; extending the join phase");
            self.join_timer = Some((after(t, self.rebalance_timeout_ms()), JoinTimer::Rebalance));
            return;
        }
        self.init_next_generation(t);
        if self.state == GroupState::Empty {
            tracing::info!(group = %self.group_id, generation = self.generation_id, "group is now empty");
            self.outbox.push(PendingWrite::Metadata(self.metadata_value(&HashMap::new())));
            return;
        }
        tracing::info!(group = %self.group_id, generation = self.generation_id, members = self.members.len(), protocol = ?self.protocol_name, "group stabilized its generation; waiting for the leader's assignment");
        let all = self.current_members();
        let leader = self.leader_id.clone();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let members = if leader.as_deref() == Some(id.as_str()) { all.clone() } else { Vec::new() };
            let answer = self.join_answer(&id, members, leader.as_deref());
            if let Some(m) = self.members.get_mut(&id) {
                m.complete_join(answer);
                m.is_new = false;
            }
            self.reschedule_heartbeat(&id, None, t);
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some(after(t, self.rebalance_timeout_ms()));
    }

    /// Keeps the leader if it rejoined, else picks a member that did; false
    /// when nobody rejoined (or there are no members).
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self.members.get(&leader).is_some_and(Member::is_awaiting_join) {
            return true;
        }
        match self.members.values().find(|m| m.is_awaiting_join()) {
            Some(m) => {
                tracing::info!(group = %self.group_id, old = %leader, new = %m.member_id, "group leader did not rejoin in time; elected a new leader");
                self.leader_id = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, t: Time) {
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::Empty, t);
        } else {
            self.protocol_name = self.select_protocol().or_else(|| {
                tracing::error!(group = %self.group_id, "no protocol supported by every member; using the first member's first");
                self.members.values().next().and_then(|m| m.protocols.first()).map(|p| p.name.clone())
            });
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::CompletingRebalance, t);
        }
        self.pending_sync.clear();
    }

    fn reset_and_propagate_assignment_with_error(&mut self, error: GroupError, t: Time) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.propagate_assignment(Some(error), t);
    }

    fn propagate_assignment(&mut self, error: Option<GroupError>, t: Time) {
        let (protocol_type, protocol_name) = (self.protocol_type.clone(), self.protocol_name.clone());
        let mut answered = Vec::new();
        for m in self.members.values_mut() {
            let result = SyncResult {
                error: error.clone(),
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment: m.assignment.clone(),
            };
            if m.complete_sync(result) {
                answered.push(m.member_id.clone());
            }
        }
        // Heartbeat expectations start again from the answer.
        for id in answered {
            self.reschedule_heartbeat(&id, None, t);
        }
    }

    // ----- SyncGroup -----

    /// Handles a SyncGroup (Kafka's `classicGroupSync`).
    pub fn sync(&mut self, req: SyncRequest) -> SyncOutcome {
        if self.state == GroupState::Dead {
            return SyncOutcome::Done(SyncResult::error(GroupError::CoordinatorNotAvailable));
        }
        if let Err(e) = self.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
            return SyncOutcome::Done(SyncResult::error(e));
        }
        if req.generation_id != self.generation_id {
            return SyncOutcome::Done(SyncResult::error(GroupError::IllegalGeneration));
        }
        let inconsistent =
            |asked: &Option<String>, ours: &Option<String>| matches!((asked, ours), (Some(a), Some(o)) if a != o);
        if inconsistent(&req.protocol_type, &self.protocol_type)
            || inconsistent(&req.protocol_name, &self.protocol_name)
        {
            return SyncOutcome::Done(SyncResult::error(GroupError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty => SyncOutcome::Done(SyncResult::error(GroupError::UnknownMemberId)),
            GroupState::PreparingRebalance => SyncOutcome::Done(SyncResult::error(GroupError::RebalanceInProgress)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.awaiting_sync = Some(tx);
                }
                self.remove_pending_sync_member(&req.member_id);
                if self.leader_id.as_deref() == Some(req.member_id.as_str()) {
                    let mut assignment: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    let missing: Vec<String> =
                        self.members.keys().filter(|id| !assignment.contains_key(*id)).cloned().collect();
                    if !missing.is_empty() {
                        tracing::warn!(group = %self.group_id, members = ?missing, "the leader's assignment leaves members out; they get an empty assignment");
                    }
                    for id in missing {
                        assignment.insert(id, Bytes::new());
                    }
                    tracing::info!(group = %self.group_id, generation = self.generation_id, members = self.members.len(), "assignment received from the leader");
                    let value = self.metadata_value(&assignment);
                    self.outbox.push(PendingWrite::Assignment { generation: self.generation_id, value, assignment });
                }
                SyncOutcome::Waiting(rx)
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(&req.member_id);
                let assignment = self.members.get(&req.member_id).map(|m| m.assignment.clone()).unwrap_or_default();
                SyncOutcome::Done(SyncResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment,
                })
            }
            GroupState::Dead => SyncOutcome::Done(SyncResult::error(GroupError::CoordinatorNotAvailable)),
        }
    }

    fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        let done = match self.state {
            GroupState::Dead | GroupState::Empty | GroupState::PreparingRebalance => true,
            GroupState::CompletingRebalance | GroupState::Stable => self.pending_sync.is_empty(),
        };
        if done {
            self.sync_deadline = None;
        }
    }

    /// Reports whether the leader's assignment for `generation` reached the log:
    /// on success the members get it and the group is Stable; on failure they
    /// get the error and the group rebalances.
    pub fn on_assignment_stored(
        &mut self,
        generation: i32,
        assignment: HashMap<String, Bytes>,
        result: Result<(), GroupError>,
        t: Time,
    ) {
        if self.state != GroupState::CompletingRebalance || self.generation_id != generation {
            // The group moved on while the record was written; its answer is stale.
            return;
        }
        match result {
            Ok(()) => {
                for m in self.members.values_mut() {
                    m.assignment = assignment.get(&m.member_id).cloned().unwrap_or_default();
                }
                self.propagate_assignment(None, t);
                self.transition_to(GroupState::Stable, t);
                tracing::info!(group = %self.group_id, generation, "group is stable");
            }
            Err(e) => {
                tracing::warn!(group = %self.group_id, generation, error = %e, "could not store the group's assignment; rebalancing");
                self.reset_and_propagate_assignment_with_error(e.clone(), t);
                self.maybe_prepare_rebalance_or_complete_join(&format!("error {e} when storing the assignment"), t);
            }
        }
    }

    // ----- Heartbeat, LeaveGroup -----

    /// Handles a Heartbeat (Kafka's `classicGroupHeartbeat`).
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        t: Time,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.reschedule_heartbeat(member_id, None, t);
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.reschedule_heartbeat(member_id, None, t);
                Ok(())
            }
        }
    }

    /// Handles a LeaveGroup: one result per member, in order.
    pub fn leave(&mut self, leaving: &[LeavingMember], t: Time) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(leaving.len());
        let mut left = Vec::new();
        for m in leaving {
            let reason = m.reason.as_deref().unwrap_or("not provided");
            let result = if m.member_id.is_empty() {
                // Administrative removal of a static member by its instance id.
                match m.group_instance_id.as_deref().and_then(|i| self.static_members.get(i)).cloned() {
                    Some(id) => {
                        self.remove_current_member(&id, reason);
                        left.push(id);
                        Ok(())
                    }
                    None => Err(GroupError::UnknownMemberId),
                }
            } else if self.pending_members.remove(&m.member_id).is_some() {
                left.push(m.member_id.clone());
                Ok(())
            } else {
                match self.validate_member(&m.member_id, m.group_instance_id.as_deref()) {
                    Ok(()) => {
                        self.remove_current_member(&m.member_id, reason);
                        left.push(m.member_id.clone());
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            };
            results.push(result);
        }
        if !left.is_empty() {
            let reason = format!("explicit LeaveGroup of {}", left.join(", "));
            match self.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(&reason, t)
                }
                GroupState::PreparingRebalance => self.maybe_complete_join_phase(t),
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        Ok(results)
    }

    fn remove_current_member(&mut self, member_id: &str, reason: &str) {
        tracing::info!(group = %self.group_id, member = %member_id, %reason, "member left the group");
        if let Some(m) = self.members.get_mut(member_id) {
            m.complete_join(JoinResult::error(GroupError::UnknownMemberId, ""));
        }
        self.remove_member(member_id);
    }

    // ----- Offsets -----

    /// Kafka's `validateOffsetCommit` for a non-transactional commit (OffsetCommit).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        self.validate_commit(member_id, instance_id, generation_id, false)
    }

    /// Kafka's `validateOffsetCommit` for a transactional commit (TxnOffsetCommit,
    /// KIP-447): a member's generation is checked — that fences a zombie — but
    /// neither is the commit refused while the group completes a rebalance
    /// (the Java producer takes REBALANCE_IN_PROGRESS there as fatal), nor
    /// is one without member id and generation (a producer outside the group,
    /// as before KIP-447) refused because the group has members.
    pub fn validate_txn_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        self.validate_commit(member_id, instance_id, generation_id, true)
    }

    fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        transactional: bool,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            // A simple consumer or an admin client: allowed while nobody is a member.
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation_id != self.generation_id {
                return Err(GroupError::IllegalGeneration);
            }
        } else if !transactional && self.state != GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if !transactional && self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// An offset commit keeps a member's session alive in Stable and PreparingRebalance.
    pub fn on_offset_commit(&mut self, member_id: &str, t: Time) {
        if matches!(self.state, GroupState::Stable | GroupState::PreparingRebalance) {
            self.reschedule_heartbeat(member_id, None, t);
        }
    }

    /// Kafka's `validateOffsetDelete`.
    pub fn validate_offset_delete(&self) -> Result<(), GroupError> {
        match self.state {
            GroupState::Dead => Err(GroupError::GroupIdNotFound),
            GroupState::Stable | GroupState::PreparingRebalance | GroupState::CompletingRebalance
                if self.protocol_type.as_deref() != Some("consumer") =>
            {
                Err(GroupError::NonEmptyGroup)
            }
            _ => Ok(()),
        }
    }

    /// Kafka's `validateDeleteGroup`.
    pub fn validate_delete(&self) -> Result<(), GroupError> {
        match self.state {
            GroupState::Dead => Err(GroupError::GroupIdNotFound),
            GroupState::Empty if self.pending_members.is_empty() => Ok(()),
            _ => Err(GroupError::NonEmptyGroup),
        }
    }

    /// What DescribeGroups shows.
    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable { protocol.clone() } else { String::new() },
            members: self
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&protocol).cloned().unwrap_or_default() } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    // ----- Timers -----

    /// The earliest deadline of the group, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().filter_map(|m| m.heartbeat_deadline);
        let pending = self.pending_members.values().copied();
        let join = self.join_timer.map(|(d, _)| d);
        members.chain(pending).chain(join).chain(self.sync_deadline).min()
    }

    /// Fires every deadline at or before `t.now`, earliest first.
    pub fn on_timer(&mut self, t: Time) {
        // Each step clears or moves its deadline past `t.now`; the bound only
        // guards against a bug turning this into a busy loop.
        for _ in 0..100_000 {
            if !self.fire_earliest(t) {
                return;
            }
        }
        tracing::error!(group = %self.group_id, "group timers did not settle; will retry");
    }

    fn fire_earliest(&mut self, t: Time) -> bool {
        enum Due {
            Join(JoinTimer),
            Sync,
            Member(String),
            Pending(String),
        }
        let mut due: Option<(Instant, Due)> = None;
        let mut consider = |deadline: Instant, what: Due| {
            if deadline <= t.now && due.as_ref().is_none_or(|(d, _)| deadline < *d) {
                due = Some((deadline, what));
            }
        };
        if let Some((d, kind)) = self.join_timer {
            consider(d, Due::Join(kind));
        }
        if let Some(d) = self.sync_deadline {
            consider(d, Due::Sync);
        }
        for m in self.members.values() {
            if let Some(d) = m.heartbeat_deadline {
                consider(d, Due::Member(m.member_id.clone()));
            }
        }
        for (id, d) in &self.pending_members {
            consider(*d, Due::Pending(id.clone()));
        }
        let Some((_, what)) = due else {
            return false;
        };
        match what {
            Due::Join(kind) => {
                self.join_timer = None;
                self.on_join_timer(kind, t);
            }
            Due::Sync => {
                self.sync_deadline = None;
                self.on_sync_timeout(t);
            }
            Due::Member(id) => self.on_heartbeat_expired(&id, t),
            Due::Pending(id) => {
                tracing::info!(group = %self.group_id, member = %id, "pending member did not rejoin within its session timeout");
                self.pending_members.remove(&id);
                self.maybe_complete_join_phase(t);
            }
        }
        true
    }

    fn on_join_timer(&mut self, kind: JoinTimer, t: Time) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        match kind {
            JoinTimer::InitialDelay { delay_ms, remaining_ms } if self.new_member_added && remaining_ms != 0 => {
                // More members arrived during the delay: wait again, within the rebalance timeout.
                self.new_member_added = false;
                let next_delay = self.config.initial_rebalance_delay_ms.min(remaining_ms);
                let next_remaining = remaining_ms.saturating_sub(delay_ms);
                self.join_timer = Some((
                    after(t, next_delay),
                    JoinTimer::InitialDelay { delay_ms: next_delay, remaining_ms: next_remaining },
                ));
            }
            JoinTimer::InitialDelay { .. } | JoinTimer::Rebalance => self.complete_join(t),
        }
    }

    fn on_sync_timeout(&mut self, t: Time) {
        if !matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable) {
            return;
        }
        let late: Vec<String> = self.pending_sync.iter().cloned().collect();
        if late.is_empty() {
            return;
        }
        tracing::info!(group = %self.group_id, members = ?late, "removing members that did not send SyncGroup in time");
        for id in &late {
            self.remove_member(id);
        }
        self.prepare_rebalance(&format!("removing {late:?} on pending sync expiration"), t);
    }

    fn on_heartbeat_expired(&mut self, member_id: &str, t: Time) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        member.heartbeat_deadline = None;
        if self.state == GroupState::Dead || member.has_satisfied_heartbeat() {
            return;
        }
        tracing::info!(group = %self.group_id, member = %member_id, "member session expired; removing it from the group");
        member.complete_join(JoinResult::error(GroupError::UnknownMemberId, ""));
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.maybe_prepare_rebalance_or_complete_join(
                &format!("removing member {member_id} on heartbeat expiration"),
                t,
            ),
            GroupState::PreparingRebalance if self.has_all_members_joined() => self.complete_join(t),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
