//! KIP-848 consumer groups (`group.protocol=consumer`): the pure state
//! machine behind ConsumerGroupHeartbeat, with server-side assignment.
//!
//! - [`assignor`] — the `uniform` (default) and `range` assignors: plain
//!   functions from members' subscriptions and topic metadata to a target
//!   assignment.
//! - [`group`] — one consumer group: its epoch, members, target assignment
//!   and each member's reconciliation towards its target.
//! - [`static_member`] — `group.instance.id`: a temporary leave (-2) keeps
//!   the assignment for the member's return; one holder per instance id.
//! - [`topic_regex`] — regex subscriptions: bounded compilation and
//!   resolution against the topics a member may describe.
//! - [`classic`] — members that speak the classic protocol, and the online
//!   upgrade from and downgrade to a classic group
//!   (`group.consumer.migration.policy`).
//!
//! Invariants: the group epoch bumps whenever membership, a subscription or
//! the metadata of a subscribed topic changes; a partition is owned by at most
//! one member at a time — a partition moving from A to B is given to B only
//! after A has acknowledged revoking it (its heartbeat's owned partitions no
//! longer list it), or after A left or was fenced; a member's epoch advances
//! only when it holds nothing its target no longer contains. This module does
//! no I/O and reads no clock: times are milliseconds passed in by the caller.
//!
//! What it leaves out: rack-aware assignment, and the downgrade Kafka does
//! when a classic static member replaces the last consumer-protocol member.
//! Membership and epochs are not written to `__consumer_offsets`:
//! after a coordinator failover members get UNKNOWN_MEMBER_ID, rejoin with
//! epoch 0 and resume from their committed offsets, which do persist.

pub mod assignor;
pub mod classic;
pub mod group;
pub mod static_member;
pub mod topic_regex;

#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod regex_tests;
#[cfg(test)]
mod static_tests;
#[cfg(test)]
mod tests;

pub use assignor::{Assignment, TopicMeta};
pub use group::{ConsumerGroup, ConsumerGroupState, Heartbeat, HeartbeatAnswer, MemberState};

/// The consumer-protocol settings, by their Kafka names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.consumer.max.size`.
    pub max_size: usize,
    /// The assignor used when a member names none (the first of `group.consumer.assignors`).
    pub default_assignor: &'static str,
    /// The largest number of topics one member may subscribe to.
    pub max_subscribed_topics: usize,
    /// `group.consumer.migration.policy`.
    pub migration: MigrationPolicy,
}

/// `group.consumer.migration.policy`: which online conversions between a
/// classic group and a consumer group with members are allowed (an empty
/// group converts either way whatever the policy, as Kafka does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    /// Both ways (Kafka's default).
    Bidirectional,
    /// Classic to consumer only.
    Upgrade,
    /// Consumer to classic only.
    Downgrade,
    /// Neither.
    Disabled,
}

impl MigrationPolicy {
    /// The policy named `name` (case-insensitive), or `None`.
    pub fn parse(name: &str) -> Option<MigrationPolicy> {
        match name.trim().to_ascii_lowercase().as_str() {
            "bidirectional" => Some(MigrationPolicy::Bidirectional),
            "upgrade" => Some(MigrationPolicy::Upgrade),
            "downgrade" => Some(MigrationPolicy::Downgrade),
            "disabled" => Some(MigrationPolicy::Disabled),
            _ => None,
        }
    }

    /// Whether a classic group with members may become a consumer group.
    pub fn upgrade_enabled(self) -> bool {
        matches!(self, MigrationPolicy::Bidirectional | MigrationPolicy::Upgrade)
    }

    /// Whether a consumer group left with only classic members may become a classic group.
    pub fn downgrade_enabled(self) -> bool {
        matches!(self, MigrationPolicy::Bidirectional | MigrationPolicy::Downgrade)
    }
}

impl Default for ConsumerGroupConfig {
    fn default() -> ConsumerGroupConfig {
        ConsumerGroupConfig {
            heartbeat_interval_ms: 5000,
            session_timeout_ms: 45_000,
            max_size: i32::MAX as usize,
            default_assignor: assignor::UNIFORM,
            max_subscribed_topics: 10_000,
            migration: MigrationPolicy::Bidirectional,
        }
    }
}

impl ConsumerGroupConfig {
    /// Reads the `group.consumer.*` settings; one the table lacks keeps Kafka's default.
    pub fn from_settings(s: &crate::config::Settings) -> ConsumerGroupConfig {
        let d = ConsumerGroupConfig::default();
        let table = s.table();
        let get = |name: &str, default: i64| -> i64 {
            if crate::config::settings::find(table, name).is_some() { s.long(name) } else { default }
        };
        let first = if crate::config::settings::find(table, "group.consumer.assignors").is_some() {
            s.get("group.consumer.assignors").split(',').next().unwrap_or_default().trim().to_string()
        } else {
            d.default_assignor.to_string()
        };
        ConsumerGroupConfig {
            heartbeat_interval_ms: get("group.consumer.heartbeat.interval.ms", i64::from(d.heartbeat_interval_ms))
                .clamp(1, i64::from(i32::MAX)) as i32,
            session_timeout_ms: get("group.consumer.session.timeout.ms", i64::from(d.session_timeout_ms))
                .clamp(1, i64::from(i32::MAX)) as i32,
            max_size: get("group.consumer.max.size", d.max_size as i64).max(1) as usize,
            default_assignor: if first == assignor::RANGE { assignor::RANGE } else { assignor::UNIFORM },
            max_subscribed_topics: d.max_subscribed_topics,
            migration: if crate::config::settings::find(table, "group.consumer.migration.policy").is_some() {
                MigrationPolicy::parse(s.get("group.consumer.migration.policy")).unwrap_or(d.migration)
            } else {
                d.migration
            },
        }
    }
}

/// A refused heartbeat; mapped to a Kafka error code at the protocol edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerGroupError {
    /// A malformed request: the message names the field and value (INVALID_REQUEST).
    #[error("{0}")]
    InvalidRequest(String),
    /// The member id is not in the group (UNKNOWN_MEMBER_ID): rejoin with epoch 0.
    #[error("member {0} is not in the group (its session may have expired); rejoin with member epoch 0")]
    UnknownMemberId(String),
    /// The member's epoch is not its current one (FENCED_MEMBER_EPOCH): rejoin with epoch 0.
    #[error("member epoch {got} of member {member_id} is not its current epoch {current}; rejoin with member epoch 0")]
    FencedMemberEpoch { member_id: String, got: i32, current: i32 },
    /// The group has `group.consumer.max.size` members (GROUP_MAX_SIZE_REACHED).
    #[error("the group has reached group.consumer.max.size ({0}) members")]
    GroupMaxSizeReached(usize),
    /// The named server assignor is not one this broker has (UNSUPPORTED_ASSIGNOR).
    #[error("server assignor {0:?} is not supported; use \"uniform\" or \"range\" (group.remote.assignor)")]
    UnsupportedAssignor(String),
    /// Another live member holds the `group.instance.id` (UNRELEASED_INSTANCE_ID).
    #[error("group.instance.id {0:?} is held by another live member of the group")]
    UnreleasedInstanceId(String),
    /// The `group.instance.id` is held by another member id (FENCED_INSTANCE_ID).
    #[error("member {member_id} is fenced: group.instance.id {instance_id:?} is held by member {holder}")]
    FencedInstanceId { instance_id: String, member_id: String, holder: String },
    /// `SubscribedTopicRegex` does not compile or is too big (INVALID_REGULAR_EXPRESSION).
    #[error("SubscribedTopicRegex {pattern:?} is not a valid RE2 regular expression: {why}")]
    InvalidRegularExpression { pattern: String, why: String },
}
