//! The coordinator's shell around consumer-protocol (KIP-848) groups:
//! ConsumerGroupHeartbeat and ConsumerGroupDescribe under the group's slot
//! lock, their session timers, and the routing of Kafka 4's group migration:
//! the online upgrade of a classic group on a consumer-protocol join, classic
//! requests answered by a consumer group's classic members, and the downgrade
//! when the last consumer-protocol member leaves (the rules are pure, in
//! [`crate::group::consumer::classic`]).
//!
//! A consumer group lives in the same [`GroupSlot`] as a classic one would
//! (so its committed offsets are the same records), with the classic state
//! machine left Empty. Membership is kept in memory only: a new coordinator
//! answers a member it does not know with UNKNOWN_MEMBER_ID, and the member
//! rejoins with epoch 0.

use std::collections::BTreeMap;

use super::{GroupCoordinator, GroupEntry};
use crate::group::consumer::classic;
use crate::group::consumer::group::{ConsumerMember, OffsetCommitRefusal};
use crate::group::consumer::{Assignment, ConsumerGroup, ConsumerGroupError, Heartbeat, HeartbeatAnswer, TopicMeta};
use crate::group::member::JoinResult;
use crate::group::state::GroupState;
use crate::group::state::{Group, JoinRequest};
use crate::group::{GroupConfig, GroupError, Time};

/// Why a ConsumerGroupHeartbeat was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    /// The coordinator cannot serve the group (loading, not coordinator, wrong group type).
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The group refused the heartbeat.
    #[error(transparent)]
    Consumer(#[from] ConsumerGroupError),
}

/// One member, as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct DescribedMember {
    /// The member.
    pub member: ConsumerMember,
    /// Its target assignment.
    pub target: Assignment,
}

/// A consumer group, as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    /// Empty, Assigning, Reconciling or Stable.
    pub state: &'static str,
    /// The group epoch.
    pub group_epoch: i32,
    /// The target assignment's epoch.
    pub assignment_epoch: i32,
    /// The assignor in use.
    pub assignor: String,
    /// The members.
    pub members: Vec<DescribedMember>,
}

/// Whether a classic JoinGroup may use this slot: it is not a consumer group
/// with members. An empty consumer group turns classic (as Kafka converts it).
pub(super) fn admit_classic(entry: &mut GroupEntry) -> bool {
    match &entry.consumer {
        Some(c) if !c.members().is_empty() => false,
        Some(_) => {
            entry.consumer = None;
            true
        }
        None => true,
    }
}

/// A classic JoinGroup to a consumer group with members: the member joins
/// it as a member using the classic protocol.
pub(super) fn classic_join(
    entry: &mut GroupEntry,
    req: &JoinRequest,
    lookup: Option<classic::TopicLookup<'_>>,
    now_ms: u64,
) -> JoinResult {
    match entry.consumer.as_mut() {
        Some(c) => c.classic_join(req, lookup, now_ms),
        None => JoinResult::error(GroupError::CoordinatorNotAvailable, req.member_id.clone()),
    }
}

/// The online upgrade of the entry's classic group, for a consumer-protocol
/// member joining it: refused (GROUP_ID_NOT_FOUND, as Kafka) when the policy
/// forbids it or the group is not convertible; otherwise the consumer group
/// its members would form. Nothing in `entry` changes: the caller commits it
/// with [`commit_upgrade`] only once the joiner's heartbeat was accepted.
fn convert(
    entry: &GroupEntry,
    group_id: &str,
    config: GroupConfig,
    metadata: &BTreeMap<String, TopicMeta>,
    now_ms: u64,
) -> Result<ConsumerGroup, GroupError> {
    let refused =
        || GroupError::WrongGroupType { group_id: group_id.to_string(), actual: "classic", wanted: "consumer" };
    if let Some(why) = classic::upgrade_refusal(&entry.group, &config.consumer) {
        tracing::info!(group = %group_id, reason = %why, "classic group not upgraded to a consumer group");
        return Err(refused());
    }
    ConsumerGroup::from_classic(&entry.group, config.consumer, metadata, now_ms).map_err(|why| {
        tracing::info!(group = %group_id, reason = %why, "classic group not upgraded to a consumer group");
        refused()
    })
}

/// Replaces the entry's classic group by `converted`: its waiting joins and
/// syncs are told to rejoin, and the log records the classic group empty.
/// A failed write of that record is logged only, as every group metadata
/// write is (`queue_group_writes`): the log then still holds the classic
/// group, which a new coordinator reloads with its members (they rejoin it,
/// and the next consumer-protocol join upgrades it again).
fn commit_upgrade(entry: &mut GroupEntry, group_id: &str, config: GroupConfig, t: Time, converted: ConsumerGroup) {
    entry.group.fail_waiting(GroupError::RebalanceInProgress);
    entry.group = Group::new(group_id, config, t);
    // Its classic members are the consumer group's now: the log says so (no members).
    entry.group.record_now();
    tracing::info!(group = %group_id, members = converted.members().len(), epoch = converted.group_epoch(),
        "classic group upgraded to a consumer group (online)");
    entry.consumer = Some(converted);
}

/// The online downgrade: after a consumer-protocol member left or was
/// removed, a group left with only classic members becomes classic again (if
/// the policy and `group.max.size` allow), in a rebalance its members join.
pub(super) fn maybe_downgrade(entry: &mut GroupEntry, group_id: &str, config: GroupConfig, t: Time) {
    let Some(record) = entry.consumer.as_ref().and_then(|c| c.downgrade_record(config.max_size, t.wall_ms)) else {
        return;
    };
    let members = record.members.len();
    entry.group = Group::from_record(group_id, record, config, t);
    entry.group.request_rebalance("downgrade from a consumer group", t);
    // The log holds the classic group again (not the empty one the upgrade
    // wrote): a new coordinator reloads its members.
    entry.group.record_now();
    entry.consumer = None;
    tracing::info!(group = %group_id, members, "consumer group downgraded to a classic group (online)");
}

/// Kafka's OffsetCommit rules for a consumer group: a commit with no member
/// id and a negative epoch is an admin's; otherwise the member must exist
/// (UNKNOWN_MEMBER_ID) and carry its current epoch (STALE_MEMBER_EPOCH).
pub(super) fn validate_commit(group: &ConsumerGroup, member_id: &str, member_epoch: i32) -> Result<(), GroupError> {
    if member_id.is_empty() && member_epoch < 0 {
        return Ok(());
    }
    let classic = group.members().get(member_id).is_some_and(|m| m.classic.is_some());
    group.validate_offset_commit(member_id, member_epoch).map_err(|e| match e {
        OffsetCommitRefusal::UnknownMemberId => GroupError::UnknownMemberId,
        // A classic member's epoch is its generation (as Kafka answers it).
        OffsetCommitRefusal::StaleMemberEpoch if classic => GroupError::IllegalGeneration,
        OffsetCommitRefusal::StaleMemberEpoch => GroupError::StaleMemberEpoch {
            got: member_epoch,
            current: group.members().get(member_id).map_or(-1, |m| m.member_epoch),
        },
    })
}

/// TxnOffsetCommit in a consumer group (KIP-447 with KIP-848 members): as an
/// OffsetCommit, but a wrong epoch is ILLEGAL_GENERATION, which transactional
/// producers understand (as Kafka answers).
pub(super) fn validate_txn_commit(group: &ConsumerGroup, member_id: &str, member_epoch: i32) -> Result<(), GroupError> {
    match validate_commit(group, member_id, member_epoch) {
        Err(GroupError::StaleMemberEpoch { .. }) => Err(GroupError::IllegalGeneration),
        other => other,
    }
}

/// Expires the consumer group's silent members at `now_ms`.
pub(super) fn on_timer(entry: &mut GroupEntry, group_id: &str, config: GroupConfig, t: Time, now_ms: u64) {
    if let Some(c) = entry.consumer.as_mut() {
        let gone = c.expire(now_ms);
        for id in &gone {
            tracing::info!(group = %group_id, member = %id, "consumer group member removed: session or rebalance timeout");
        }
        if !gone.is_empty() {
            maybe_downgrade(entry, group_id, config, t);
        }
    }
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat: joins, heartbeats and leaves of a consumer
    /// group. `metadata` holds the broker's topics by name; `may_describe`
    /// says which of them the member's regex subscription may match.
    pub fn consumer_group_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
        metadata: &BTreeMap<String, TopicMeta>,
        may_describe: &dyn Fn(&str) -> bool,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        let partition = self.check(group_id)?;
        let slot = if hb.member_epoch == 0 {
            self.get_or_create(group_id, partition)
        } else {
            // Membership is not persisted: after a failover the member is unknown and rejoins.
            self.get(group_id).ok_or_else(|| ConsumerGroupError::UnknownMemberId(hb.member_id.clone()))?
        };
        let config = self.config;
        let clock = self.clock;
        self.with_group(&slot, |e, t| {
            if e.group.is_dead() {
                return Err(HeartbeatError::Group(GroupError::CoordinatorNotAvailable));
            }
            let now_ms = clock.mono_ms(t.now);
            if e.consumer.is_none() {
                if hb.member_epoch != 0 {
                    return Err(ConsumerGroupError::UnknownMemberId(hb.member_id.clone()).into());
                }
                // The joiner is validated against the group it would form before
                // anything changes: a refused join leaves the classic group as it was.
                if e.group.state() == GroupState::Empty && e.group.has_no_members() {
                    // The offline upgrade: an empty classic group (committed offsets only).
                    let mut c = ConsumerGroup::new(group_id, config.consumer);
                    let answer = c.heartbeat_with(hb, metadata, may_describe, now_ms)?;
                    e.consumer = Some(c);
                    return Ok(answer);
                }
                let mut c = convert(e, group_id, config, metadata, now_ms)?;
                let answer = c.heartbeat_with(hb, metadata, may_describe, now_ms)?;
                commit_upgrade(e, group_id, config, t, c);
                return Ok(answer);
            }
            let c = e.consumer.as_mut().ok_or(HeartbeatError::Group(GroupError::CoordinatorNotAvailable))?;
            let leaving = hb.member_epoch < 0;
            let answer = c.heartbeat_with(hb, metadata, may_describe, now_ms)?;
            if leaving {
                maybe_downgrade(e, group_id, config, t);
            }
            Ok(answer)
        })
    }

    /// ConsumerGroupDescribe for one group: `Ok(None)` when it does not
    /// exist; a classic group is GROUP_ID_NOT_FOUND ("not a consumer group").
    pub fn describe_consumer_group(&self, group_id: &str) -> Result<Option<ConsumerGroupDescription>, GroupError> {
        self.check(group_id)?;
        let Some(slot) = self.get(group_id) else {
            return Ok(None);
        };
        let entry = slot.entry.lock();
        if entry.group.is_dead() {
            return Ok(None);
        }
        let Some(c) = &entry.consumer else {
            return Err(GroupError::WrongGroupType {
                group_id: group_id.to_string(),
                actual: "classic",
                wanted: "consumer",
            });
        };
        Ok(Some(describe(c)))
    }

    /// OffsetFetch v9 from a consumer-protocol member: as an OffsetCommit, the
    /// member must exist and carry its current epoch; no member id and epoch
    /// -1 (an admin), a classic group or an unknown group are not checked here.
    pub fn validate_offset_fetch(&self, group_id: &str, member_id: &str, member_epoch: i32) -> Result<(), GroupError> {
        let Some(slot) = self.get(group_id) else {
            return Ok(());
        };
        let entry = slot.entry.lock();
        match &entry.consumer {
            Some(c) => validate_commit(c, member_id, member_epoch),
            None => Ok(()),
        }
    }
}

fn describe(c: &ConsumerGroup) -> ConsumerGroupDescription {
    ConsumerGroupDescription {
        state: c.state().name(),
        group_epoch: c.group_epoch(),
        assignment_epoch: c.assignment_epoch(),
        assignor: c.assignor(),
        members: c
            .members()
            .values()
            .map(|m| DescribedMember {
                member: m.clone(),
                target: c.target_of(&m.member_id).cloned().unwrap_or_default(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::group::consumer::ConsumerGroupConfig;

    #[test]
    fn commits_of_consumer_group_members_need_the_current_epoch() {
        let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
        let md: BTreeMap<String, TopicMeta> =
            [("t".to_string(), TopicMeta { id: Uuid::from_u128(1), partitions: 1 })].into();
        let hb = Heartbeat {
            member_id: "m".into(),
            member_epoch: 0,
            rebalance_timeout_ms: 1000,
            subscribed_topic_names: Some(vec!["t".into()]),
            ..Heartbeat::default()
        };
        let epoch = g.heartbeat(hb, &md, 0).expect("join").member_epoch;
        assert_eq!(validate_commit(&g, "m", epoch), Ok(()));
        assert_eq!(validate_commit(&g, "", -1), Ok(()), "an admin's commit");
        assert_eq!(
            validate_commit(&g, "m", epoch - 1),
            Err(GroupError::StaleMemberEpoch { got: epoch - 1, current: epoch })
        );
        assert_eq!(validate_commit(&g, "x", epoch), Err(GroupError::UnknownMemberId));
        assert_eq!(validate_txn_commit(&g, "m", epoch - 1), Err(GroupError::IllegalGeneration));
        assert_eq!(validate_txn_commit(&g, "m", epoch), Ok(()));
    }
}
