//! Static membership (`group.instance.id`) in a consumer-protocol group, as
//! Kafka's group coordinator treats it (KIP-848 with KIP-345 semantics).
//!
//! A static member that leaves with epoch -2 (a restart, not a departure)
//! stays in the group with epoch -2: its target and owned partitions are
//! kept for it (nobody else gets them) until its session timeout runs out.
//! A join with the same instance id within that time replaces it: the new
//! member id takes over the old member's assignment, target and subscription
//! without a group epoch bump (so no rebalance), and is told its whole
//! assignment. While the instance id's holder is live (epoch ≠ -2), another
//! join with it is UNRELEASED_INSTANCE_ID; a heartbeat or leave naming an
//! instance id held by a different member id is FENCED_INSTANCE_ID, and one
//! naming an instance id nobody holds UNKNOWN_MEMBER_ID.

use super::ConsumerGroupError;
use super::group::{ConsumerGroup, ConsumerMember, Heartbeat, MemberState};

/// The member epoch of a static member that left temporarily.
pub const LEFT_STATIC_EPOCH: i32 = -2;

impl ConsumerGroup {
    /// The member holding `instance_id`, if any.
    pub fn static_member(&self, instance_id: &str) -> Option<&ConsumerMember> {
        self.members().values().find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// A heartbeat (epoch > 0) or leave (-1, -2) naming `instance_id`: the
    /// instance must be held, and by this member id.
    pub(super) fn check_static(&self, member_id: &str, instance_id: &str) -> Result<(), ConsumerGroupError> {
        let holder =
            self.static_member(instance_id).ok_or_else(|| ConsumerGroupError::UnknownMemberId(member_id.into()))?;
        if holder.member_id != member_id {
            return Err(ConsumerGroupError::FencedInstanceId {
                instance_id: instance_id.to_string(),
                member_id: member_id.to_string(),
                holder: holder.member_id.clone(),
            });
        }
        Ok(())
    }

    /// Epoch -2: the member keeps its assignment (less what it was revoking)
    /// until `session_deadline_ms`; only its epoch changes.
    pub(super) fn leave_static(&mut self, member_id: &str, session_deadline_ms: u64) {
        let released = {
            let Some(m) = self.member_mut(member_id) else { return };
            m.member_epoch = LEFT_STATIC_EPOCH;
            m.previous_member_epoch = LEFT_STATIC_EPOCH;
            m.state = MemberState::Stable;
            m.set_session_deadline(session_deadline_ms);
            m.clear_revocation_deadline();
            std::mem::take(&mut m.pending_revocation)
        };
        self.release(member_id, &released);
    }

    /// A join (epoch 0) with `hb.instance_id`: when a member that left with
    /// -2 (or a member using the classic protocol) holds it, the joining member id replaces it (true; a live member
    /// of that id is removed first, with an epoch bump); when a live
    /// member holds it, UNRELEASED_INSTANCE_ID; false when nobody else does.
    pub(super) fn replace_static(&mut self, hb: &Heartbeat) -> Result<bool, ConsumerGroupError> {
        let Some(instance) = &hb.instance_id else { return Ok(false) };
        let Some(holder) = self.static_member(instance) else { return Ok(false) };
        if holder.member_id == hb.member_id {
            return Ok(false);
        }
        // A classic-protocol holder is replaced at once (as Kafka): it cannot send a -2 leave.
        if holder.member_epoch != LEFT_STATIC_EPOCH && holder.classic.is_none() {
            return Err(ConsumerGroupError::UnreleasedInstanceId(instance.clone()));
        }
        let old_id = holder.member_id.clone();
        // A live member rejoining (epoch 0) under this instance id loses
        // what it had first, as any rejoin does (an epoch bump): renaming
        // over it would leave its partitions owned by an entry nobody
        // revokes.
        self.remove_member(&hb.member_id);
        self.rename_member(&old_id, &hb.member_id, |m| {
            m.member_epoch = 0;
            m.previous_member_epoch = 0;
            m.client_id = hb.client_id.clone();
            m.client_host = hb.client_host.clone();
            // It speaks the consumer protocol now.
            m.classic = None;
        });
        Ok(true)
    }
}
