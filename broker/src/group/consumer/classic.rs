//! Members of a consumer group that speak the classic protocol, and the
//! conversions between a classic group and a consumer group (Kafka 4's
//! `group.consumer.migration.policy`).
//!
//! - Online upgrade ([`ConsumerGroup::from_classic`]): a classic group whose
//!   protocol type is `consumer` becomes a consumer group when a
//!   consumer-protocol member joins it. Its members stay, each "using the
//!   classic protocol": epoch = the classic generation, assignment = what the
//!   leader gave it (decoded from its ConsumerProtocolAssignment), so nothing
//!   it owns can be handed to another member before it gives it up.
//! - Classic members of a consumer group ([`ConsumerGroup::classic_join`],
//!   [`ConsumerGroup::classic_sync`], [`ConsumerGroup::classic_heartbeat`],
//!   [`ConsumerGroup::classic_leave`]): a JoinGroup is a full heartbeat (the
//!   subscription and the owned partitions come from its ConsumerProtocol
//!   subscription), answered at once with the member epoch as generation and
//!   no leader; SyncGroup hands over the member's assigned partitions;
//!   Heartbeat answers REBALANCE_IN_PROGRESS when the member must rejoin to
//!   revoke, to catch up with the group epoch, or to collect released
//!   partitions. The server-side assignor assigns every member.
//! - Online downgrade ([`ConsumerGroup::downgrade_record`]): when only
//!   classic members remain, the group becomes a classic group in a new
//!   rebalance.
//!
//! Plain data in, plain data out: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use uuid::Uuid;

use super::ConsumerGroupConfig;
use super::assignor::{Assignment, TopicMeta};
use super::group::{ConsumerGroup, ConsumerMember, MemberState};
use crate::coordinator_codec::{FieldError, Reader};
use crate::group::GroupError;
use crate::group::codec::{GroupMetadataValue, MemberMetadata};
use crate::group::member::{JoinResult, Protocol, SyncResult};
use crate::group::state::{Group, JoinRequest, LeavingMember, SyncRequest};

/// The classic protocol type every convertible group uses.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The newest ConsumerProtocol version this broker reads and writes.
const MAX_PROTOCOL_VERSION: i16 = 3;

/// Looks up the broker's topics by name (its metadata image): a classic join
/// to a consumer group resolves only the topics the group needs, and only
/// when the group is a consumer group.
pub type TopicLookup<'a> = &'a (dyn Fn(&BTreeSet<String>) -> BTreeMap<String, TopicMeta> + Sync);

/// What a classic member told the coordinator in its last JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMeta {
    /// Its session timeout (ms).
    pub session_timeout_ms: i32,
    /// Its protocols (assignor names with ConsumerProtocol subscriptions), most preferred first.
    pub protocols: Vec<Protocol>,
}

/// A ConsumerProtocolSubscription (versions 0 to 3; a later version is read as 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Its version.
    pub version: i16,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Owned partitions (v1+), by topic name.
    pub owned: Vec<(String, Vec<i32>)>,
    /// `client.rack` (v3+).
    pub rack_id: Option<String>,
}

/// Reads an array of (topic, partitions), as ConsumerProtocol writes owned and assigned partitions.
fn topic_partitions(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<(String, Vec<i32>)>, FieldError> {
    // A topic takes at least its string length (2) and its partition count (4).
    let n = r.bounded_count(field, 6)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let topic = r.string(field)?;
        let k = r.bounded_count(field, 4)?;
        let mut ps = Vec::with_capacity(k);
        for _ in 0..k {
            ps.push(r.i32(field)?);
        }
        out.push((topic, ps));
    }
    Ok(out)
}

/// Reads a ConsumerProtocolSubscription; the error names the field.
pub fn decode_subscription(b: &[u8]) -> Result<Subscription, String> {
    let mut r = Reader::new(b, "ConsumerProtocolSubscription");
    let version = r.i16("Version").map_err(|e| e.to_string())?;
    if version < 0 {
        return Err(format!("ConsumerProtocolSubscription Version {version} is negative"));
    }
    read_subscription(&mut r, version).map_err(|e| e.to_string())
}

fn read_subscription(r: &mut Reader<'_>, version: i16) -> Result<Subscription, FieldError> {
    let v = version.min(MAX_PROTOCOL_VERSION);
    let n = r.bounded_count("Topics", 2)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(r.string("Topics")?);
    }
    if let Some(len) = r.len_i32("UserData")? {
        r.take(len, "UserData")?;
    }
    let owned = if v >= 1 { topic_partitions(r, "OwnedPartitions")? } else { Vec::new() };
    if v >= 2 {
        r.i32("GenerationId")?;
    }
    let rack_id = if v >= 3 { r.nullable_string("RackId")? } else { None };
    Ok(Subscription { version, topics, owned, rack_id })
}

/// Reads a ConsumerProtocolAssignment's partitions, by topic name.
pub fn decode_assignment(b: &[u8]) -> Result<Vec<(String, Vec<i32>)>, String> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader::new(b, "ConsumerProtocolAssignment");
    let version = r.i16("Version").map_err(|e| e.to_string())?;
    if version < 0 {
        return Err(format!("ConsumerProtocolAssignment Version {version} is negative"));
    }
    topic_partitions(&mut r, "AssignedPartitions").map_err(|e| e.to_string())
}

/// Writes a ConsumerProtocolAssignment of `version` (capped to 3; every version has the same fields).
pub fn encode_assignment(version: i16, partitions: &[(String, Vec<i32>)]) -> Bytes {
    let mut b = Vec::new();
    b.extend_from_slice(&version.clamp(0, MAX_PROTOCOL_VERSION).to_be_bytes());
    b.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for (topic, ps) in partitions {
        b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&(ps.len() as i32).to_be_bytes());
        for p in ps {
            b.extend_from_slice(&p.to_be_bytes());
        }
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

/// Why a classic group may not become a consumer group now.
pub fn upgrade_refusal(classic: &Group, config: &ConsumerGroupConfig) -> Option<String> {
    let n = classic.members().count();
    if !config.migration.upgrade_enabled() {
        Some(format!(
            "group.consumer.migration.policy={:?} forbids upgrading the classic group with {n} members",
            config.migration
        ))
    } else if classic.protocol_type() != Some(CONSUMER_PROTOCOL_TYPE) {
        Some(format!(
            "its protocol type is {:?}, not \"consumer\": only consumer groups can be upgraded",
            classic.protocol_type().unwrap_or_default()
        ))
    } else if n >= config.max_size {
        // The joining member makes one more (Kafka's validateOnlineUpgrade).
        Some(format!("its {n} members and the joining one exceed group.consumer.max.size ({})", config.max_size))
    } else {
        None
    }
}

fn to_ids(owned: &[(String, Vec<i32>)], metadata: &BTreeMap<String, TopicMeta>) -> Vec<(Uuid, Vec<i32>)> {
    owned.iter().filter_map(|(t, ps)| metadata.get(t).map(|m| (m.id, ps.clone()))).collect()
}

fn protocol_version(meta: &ClassicMeta) -> i16 {
    meta.protocols.first().and_then(|p| decode_subscription(&p.metadata).ok()).map_or(0, |s| s.version)
}

impl ConsumerGroup {
    /// The online upgrade: a consumer group holding the classic group's
    /// members as they are (epoch = generation, assignment = their current
    /// one), with `metadata` the broker's topics. Call only when
    /// [`upgrade_refusal`] is `None`; an undecodable subscription or
    /// assignment is refused, naming the member.
    pub fn from_classic(
        classic: &Group,
        config: ConsumerGroupConfig,
        metadata: &BTreeMap<String, TopicMeta>,
        now_ms: u64,
    ) -> Result<ConsumerGroup, String> {
        let mut g = ConsumerGroup::new(classic.group_id(), config);
        let generation = classic.generation_id().max(0);
        g.group_epoch = generation;
        g.assignment_epoch = generation;
        for m in classic.members() {
            let protocol = classic
                .protocol_name()
                .and_then(|name| m.protocols.iter().find(|p| p.name == name))
                .or(m.protocols.first())
                .ok_or_else(|| format!("member {} has no protocol", m.member_id))?;
            let sub = decode_subscription(&protocol.metadata)
                .map_err(|e| format!("member {}: malformed subscription: {e}", m.member_id))?;
            let owned = decode_assignment(&m.assignment)
                .map_err(|e| format!("member {}: malformed assignment: {e}", m.member_id))?;
            let mut assigned = Assignment::new();
            for (id, ps) in to_ids(&owned, metadata) {
                for p in ps {
                    // A partition the leader gave twice stays with its first owner.
                    if g.owners.contains_key(&(id, p)) {
                        continue;
                    }
                    g.owners.insert((id, p), m.member_id.clone());
                    assigned.entry(id).or_default().insert(p);
                }
            }
            g.target.insert(m.member_id.clone(), assigned.clone());
            let mut protocols = m.protocols.clone();
            // The group's protocol first: it is the one its SyncGroup answers are encoded for.
            protocols.sort_by_key(|p| p.name != protocol.name);
            g.members.insert(
                m.member_id.clone(),
                ConsumerMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    rack_id: sub.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topics: sub.topics.iter().cloned().collect(),
                    subscribed_regex: None,
                    regex_topics: BTreeSet::new(),
                    server_assignor: None,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    member_epoch: generation,
                    previous_member_epoch: generation,
                    state: MemberState::Stable,
                    assigned,
                    pending_revocation: Assignment::new(),
                    classic: Some(ClassicMeta { session_timeout_ms: m.session_timeout_ms, protocols }),
                    session_deadline_ms: now_ms.saturating_add(m.session_timeout_ms.max(0) as u64),
                    revocation_deadline_ms: None,
                    send_assignment: false,
                },
            );
        }
        // The subscribed topics' metadata as of the conversion, without an epoch bump.
        g.refresh_metadata(metadata);
        Ok(g)
    }

    /// Whether every member speaks the classic protocol and the policy and
    /// `classic_max_size` (`group.max.size`) allow turning the group classic.
    pub fn can_downgrade(&self, classic_max_size: usize) -> bool {
        !self.members.is_empty()
            && self.members.values().all(|m| m.classic.is_some())
            && self.config.migration.downgrade_enabled()
            && self.members.len() <= classic_max_size
    }

    /// The online downgrade: the group's classic members as a classic
    /// group's metadata (generation = their newest epoch; each member's assignment
    /// encoded for its protocol), from which the caller builds the classic
    /// group and starts a rebalance. `None` unless [`Self::can_downgrade`].
    pub fn downgrade_record(&self, classic_max_size: usize, wall_ms: i64) -> Option<GroupMetadataValue> {
        if !self.can_downgrade(classic_max_size) {
            return None;
        }
        let protocol = self.select_protocol()?;
        let members = self
            .members
            .values()
            .map(|m| {
                let meta = m.classic.as_ref()?;
                // Every member supports the selected protocol: its own metadata for it.
                let subscription = meta.protocols.iter().find(|p| p.name == protocol)?.metadata.clone();
                Some(MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: meta.session_timeout_ms,
                    subscription,
                    assignment: encode_assignment(protocol_version(meta), &self.named(&m.assigned)),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        // The members' newest epoch, not the group epoch the leave just bumped:
        // reconciled members then heartbeat with the classic generation and are
        // told to rejoin (revoking first) rather than that their generation is gone.
        let generation = self.members.values().map(|m| m.member_epoch).max().unwrap_or(self.group_epoch);
        Some(GroupMetadataValue {
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
            generation,
            protocol: Some(protocol),
            leader: None,
            current_state_timestamp: wall_ms,
            members,
        })
    }

    /// The classic protocol the members would agree on (Kafka's
    /// `ClassicGroup.selectProtocol`): among the protocols every member
    /// supports, the one most members prefer (each votes for its first such
    /// protocol; a tie goes to the greatest name). `None` when none is common.
    fn select_protocol(&self) -> Option<String> {
        let metas: Vec<&ClassicMeta> = self.members.values().filter_map(|m| m.classic.as_ref()).collect();
        let candidates: BTreeSet<&str> = metas
            .first()?
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| metas.iter().all(|m| m.protocols.iter().any(|p| p.name == *name)))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for meta in &metas {
            if let Some(p) = meta.protocols.iter().find(|p| candidates.contains(p.name.as_str())) {
                *votes.entry(p.name.as_str()).or_default() += 1;
            }
        }
        votes.into_iter().max_by_key(|(_, n)| *n).map(|(name, _)| name.to_string())
    }

    /// An assignment by topic name (partitions of topics no longer known are left out).
    fn named(&self, a: &Assignment) -> Vec<(String, Vec<i32>)> {
        let names: BTreeMap<Uuid, &str> = self.metadata.iter().map(|(n, m)| (m.id, n.as_str())).collect();
        a.iter().filter_map(|(id, ps)| names.get(id).map(|n| (n.to_string(), ps.iter().copied().collect()))).collect()
    }

    fn classic_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<&ConsumerMember, GroupError> {
        if let Some(holder) = instance_id.and_then(|i| self.static_member(i))
            && holder.member_id != member_id
        {
            // Another member took over this group.instance.id.
            return Err(GroupError::FencedInstanceId);
        }
        let m = self.members.get(member_id).filter(|m| m.classic.is_some()).ok_or(GroupError::UnknownMemberId)?;
        if let Some(i) = instance_id
            && m.instance_id.as_deref() != Some(i)
        {
            return Err(GroupError::FencedInstanceId);
        }
        Ok(m)
    }

    /// Whether one of `protocols` is supported by every classic member other
    /// than `member_id` (Kafka's `supportsClassicProtocols`).
    fn shares_classic_protocol(&self, member_id: &str, protocols: &[Protocol]) -> bool {
        let others: Vec<&ClassicMeta> =
            self.members.values().filter(|m| m.member_id != member_id).filter_map(|m| m.classic.as_ref()).collect();
        if others.is_empty() {
            return true;
        }
        let mut candidates: BTreeSet<&str> = protocols.iter().map(|p| p.name.as_str()).collect();
        for meta in others {
            candidates.retain(|name| meta.protocols.iter().any(|p| p.name == *name));
        }
        !candidates.is_empty()
    }

    /// A classic JoinGroup to this consumer group at `now_ms`; `lookup`
    /// resolves the broker's topics the group subscribes to and the member
    /// owns (`None`: keep the group's view). Answered at once: generation =
    /// the member's epoch, no leader (the server assigns).
    pub fn classic_join(&mut self, req: &JoinRequest, lookup: Option<TopicLookup<'_>>, now_ms: u64) -> JoinResult {
        match self.classic_join_inner(req, lookup, now_ms) {
            Ok(r) => r,
            Err((e, id)) => JoinResult::error(e, id),
        }
    }

    fn classic_join_inner(
        &mut self,
        req: &JoinRequest,
        lookup: Option<TopicLookup<'_>>,
        now_ms: u64,
    ) -> Result<JoinResult, (GroupError, String)> {
        let fail = |e: GroupError| (e, req.member_id.clone());
        if req.protocol_type != CONSUMER_PROTOCOL_TYPE || req.protocols.is_empty() {
            return Err(fail(GroupError::InconsistentGroupProtocol));
        }
        let sub = decode_subscription(&req.protocols[0].metadata).map_err(|e| {
            tracing::info!(group = %self.group_id, error = %e, "classic JoinGroup with a malformed consumer subscription");
            fail(GroupError::InconsistentGroupProtocol)
        })?;
        if sub.topics.len() > self.config.max_subscribed_topics {
            return Err(fail(GroupError::InconsistentGroupProtocol));
        }
        if !self.shares_classic_protocol(&req.member_id, &req.protocols) {
            return Err(fail(GroupError::InconsistentGroupProtocol));
        }
        let member_id = if req.member_id.is_empty() {
            // A bare UUID as Kafka's consumer groups: 36 bytes whatever the client.id.
            let member_id = Uuid::new_v4().to_string();
            match req.group_instance_id.as_deref().and_then(|i| self.static_member(i)) {
                // A static member rejoining with the classic protocol replaces the
                // instance's previous member, whatever its protocol (as Kafka): same
                // assignment, epoch 0, so nothing moves and the old id is fenced.
                Some(holder) => {
                    let old_id = holder.member_id.clone();
                    self.rename_member(&old_id, &member_id, |m| {
                        m.member_epoch = 0;
                        m.previous_member_epoch = 0;
                        m.classic = Some(ClassicMeta {
                            session_timeout_ms: req.session_timeout_ms,
                            protocols: req.protocols.clone(),
                        });
                    });
                }
                // KIP-394 applies to dynamic members only (Kafka's requiresKnownMemberId).
                None if req.group_instance_id.is_none() && req.require_known_member_id => {
                    return Err((GroupError::MemberIdRequired, member_id));
                }
                None => {}
            }
            member_id
        } else {
            if req.member_id.len() > 255 {
                return Err(fail(GroupError::UnknownMemberId));
            }
            if let Some(instance) = &req.group_instance_id {
                // A known member id must be the instance's holder (Kafka's
                // throwIfStaticMemberIsUnknown / throwIfInstanceIdIsFenced):
                // only an empty member id replaces a holder.
                match self.static_member(instance) {
                    None => return Err(fail(GroupError::UnknownMemberId)),
                    Some(holder) if holder.member_id != req.member_id => {
                        return Err(fail(GroupError::FencedInstanceId));
                    }
                    Some(_) => {}
                }
            }
            req.member_id.clone()
        };
        let mut bump = false;
        match self.members.get(&member_id) {
            Some(m) if m.classic.is_none() => return Err(fail(GroupError::InconsistentGroupProtocol)),
            Some(_) => {}
            None => {
                if self.members.len() >= self.config.max_size {
                    return Err((GroupError::GroupMaxSizeReached, member_id));
                }
                self.members.insert(member_id.clone(), new_classic_member(&member_id));
                bump = true;
            }
        }
        let topics: BTreeSet<String> = sub.topics.iter().cloned().collect();
        let m = self.members.get_mut(&member_id).ok_or_else(|| fail(GroupError::UnknownMemberId))?;
        if m.subscribed_topics != topics {
            m.subscribed_topics = topics;
            bump = true;
        }
        if let Some(instance) = &req.group_instance_id {
            // A join without an instance id keeps the member's (as Kafka).
            m.instance_id = Some(instance.clone());
        }
        m.rack_id = sub.rack_id.clone();
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        if req.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        m.classic = Some(ClassicMeta { session_timeout_ms: req.session_timeout_ms, protocols: req.protocols.clone() });
        m.session_deadline_ms = now_ms.saturating_add(req.session_timeout_ms.max(0) as u64);
        // Only the topics the group subscribes to and the joiner owns (each
        // member's subscription is capped by max_subscribed_topics).
        let metadata = lookup.map(|lookup| {
            let mut names: BTreeSet<String> = self.members.values().flat_map(ConsumerMember::topics).collect();
            names.extend(sub.owned.iter().map(|(t, _)| t.clone()));
            lookup(&names)
        });
        if let Some(md) = &metadata {
            bump |= self.refresh_metadata(md);
        }
        if bump {
            self.group_epoch += 1;
        }
        if self.assignment_epoch < self.group_epoch {
            self.compute_target();
        }
        let owned = to_ids(&sub.owned, metadata.as_ref().unwrap_or(&self.metadata));
        self.acknowledge(&member_id, &owned);
        self.reconcile(&member_id, now_ms);
        let m = self.members.get_mut(&member_id).ok_or_else(|| fail(GroupError::UnknownMemberId))?;
        m.send_assignment = false;
        Ok(JoinResult {
            error: None,
            member_id: member_id.clone(),
            generation_id: m.member_epoch,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
            protocol_name: Some(req.protocols[0].name.clone()),
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        })
    }

    /// A classic SyncGroup at `now_ms`: the member's assigned partitions, encoded for its protocol.
    pub fn classic_sync(&mut self, req: &SyncRequest, now_ms: u64) -> SyncResult {
        let group_epoch = self.group_epoch;
        let m = match self.classic_member(&req.member_id, req.group_instance_id.as_deref()) {
            Ok(m) => m,
            Err(e) => return SyncResult::error(e),
        };
        let Some(meta) = m.classic.clone() else { return SyncResult::error(GroupError::UnknownMemberId) };
        if req.generation_id != m.member_epoch {
            return SyncResult::error(GroupError::IllegalGeneration);
        }
        let name = meta.protocols.first().map(|p| p.name.clone()).unwrap_or_default();
        if req.protocol_type.as_deref().is_some_and(|t| t != CONSUMER_PROTOCOL_TYPE)
            || req.protocol_name.as_deref().is_some_and(|n| n != name)
        {
            return SyncResult::error(GroupError::InconsistentGroupProtocol);
        }
        if group_epoch > m.member_epoch && m.state != MemberState::UnrevokedPartitions {
            return SyncResult::error(GroupError::RebalanceInProgress);
        }
        let assignment = encode_assignment(protocol_version(&meta), &self.named(&m.assigned));
        if let Some(m) = self.members.get_mut(&req.member_id) {
            m.session_deadline_ms = now_ms.saturating_add(meta.session_timeout_ms.max(0) as u64);
        }
        SyncResult {
            error: None,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
            protocol_name: Some(name),
            assignment,
        }
    }

    /// A classic Heartbeat at `now_ms`: REBALANCE_IN_PROGRESS when the
    /// member must rejoin — the group epoch moved past it, it has partitions
    /// to revoke, or partitions it waits for were released.
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let m = self.classic_member(member_id, instance_id)?;
        if generation_id != m.member_epoch {
            return Err(GroupError::IllegalGeneration);
        }
        let waiting = self.waiting_on_unreleased(m);
        let rejoin = m.member_epoch < self.group_epoch
            || m.state == MemberState::UnrevokedPartitions
            || (m.state == MemberState::UnreleasedPartitions && !waiting);
        let session = m.classic.as_ref().map_or(0, |c| c.session_timeout_ms.max(0) as u64);
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline_ms = now_ms.saturating_add(session);
        }
        if rejoin { Err(GroupError::RebalanceInProgress) } else { Ok(()) }
    }

    /// Whether some partition of the member's target is still owned by another member.
    fn waiting_on_unreleased(&self, m: &ConsumerMember) -> bool {
        self.target.get(&m.member_id).is_some_and(|t| {
            t.iter().any(|(id, ps)| ps.iter().any(|p| self.owners.get(&(*id, *p)).is_some_and(|o| *o != m.member_id)))
        })
    }

    /// A classic LeaveGroup: one result per leaving member (by member id, or
    /// by instance id when the member id is empty).
    pub fn classic_leave(&mut self, leaving: &[LeavingMember]) -> Vec<Result<(), GroupError>> {
        leaving
            .iter()
            .map(|l| {
                let id = if l.member_id.is_empty() {
                    let instance = l.group_instance_id.as_deref().ok_or(GroupError::UnknownMemberId)?;
                    self.members
                        .values()
                        .find(|m| m.instance_id.as_deref() == Some(instance))
                        .map(|m| m.member_id.clone())
                        .ok_or(GroupError::UnknownMemberId)?
                } else {
                    l.member_id.clone()
                };
                self.classic_member(&id, l.group_instance_id.as_deref())?;
                self.remove_member(&id);
                Ok(())
            })
            .collect()
    }
}

fn new_classic_member(member_id: &str) -> ConsumerMember {
    ConsumerMember {
        member_id: member_id.to_string(),
        instance_id: None,
        rack_id: None,
        client_id: String::new(),
        client_host: String::new(),
        subscribed_topics: BTreeSet::new(),
        subscribed_regex: None,
        regex_topics: BTreeSet::new(),
        server_assignor: None,
        rebalance_timeout_ms: 0,
        member_epoch: 0,
        previous_member_epoch: 0,
        state: MemberState::Stable,
        assigned: Assignment::new(),
        pending_revocation: Assignment::new(),
        classic: None,
        session_deadline_ms: 0,
        revocation_deadline_ms: None,
        send_assignment: false,
    }
}
