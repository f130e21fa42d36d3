//! The consumer group coordinator: Kafka's classic group protocol and
//! committed offsets.
//!
//! A group is coordinated by the leader of its `__consumer_offsets` partition
//! (Java's `String.hashCode` of the group id, made non-negative, modulo the
//! partition count — as Kafka does). The pieces:
//!
//! - [`state`] — the group state machine (Empty, PreparingRebalance,
//!   CompletingRebalance, Stable, Dead): joins, syncs, heartbeats, leaves,
//!   session, rebalance and sync timeouts, static membership. Plain data and
//!   plain functions of (request, time); tested without I/O.
//! - [`member`] — one member, and the join/sync answers handed to waiting requests.
//! - [`offsets`] — a group's committed offsets and Kafka's expiry rules.
//! - [`codec`] — Kafka's `__consumer_offsets` key and value formats
//!   (OffsetCommitKey/Value, GroupMetadataKey/Value), byte for byte.
//! - [`store`] — where records go: the [`store::OffsetsLog`] trait, its
//!   implementation over the broker's partitions, and a record batch codec.
//! - [`coordinator`] — the async shell: group lookup, timers, the ordered
//!   writer per `__consumer_offsets` partition, loading, offset expiry.
//!
//! - [`consumer`] — KIP-848 groups (`group.protocol=consumer`): the pure state
//!   machine behind ConsumerGroupHeartbeat with server-side assignment, and
//!   the migration between the protocols ([`consumer::classic`]) that
//!   `group.consumer.migration.policy` allows (`bidirectional` by default,
//!   `upgrade`, `downgrade`, `disabled`): an empty group changes type freely;
//!   a consumer-protocol member joining a live classic group converts it, its
//!   classic members staying as members of the consumer group that answers
//!   their JoinGroup/SyncGroup/Heartbeat/LeaveGroup; a consumer group left
//!   with only classic members becomes classic again. Consumer groups'
//!   membership lives in memory only (see the module doc).
//!
//! Invariants: committed offsets and group metadata change in memory in the
//! order their records reach the log (each partition has one ordered writer),
//! so what a restart loads equals what was served; a JoinGroup or SyncGroup
//! waits at most the group's rebalance timeout; no lock is held across an
//! `.await`.

pub mod codec;
pub mod configs;
pub mod consumer;
pub mod coordinator;
pub mod member;
pub mod offsets;
pub mod state;
pub mod store;

use std::sync::Arc;

use crate::replica::ReplicaManager;

use tokio::time::Instant;

use crate::config::Settings;
use crate::config::settings;
pub use coordinator::GroupCoordinator;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A group operation that was refused; mapped to a Kafka error code at the protocol edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The coordinator has not loaded the group's `__consumer_offsets` partition yet.
    #[error("the group coordinator is not available yet (loading {OFFSETS_TOPIC}); retry")]
    CoordinatorNotAvailable,
    /// This broker leads the group's `__consumer_offsets` partition but is still loading it.
    #[error("the group coordinator is loading the group's {OFFSETS_TOPIC} partition; retry")]
    CoordinatorLoadInProgress,
    /// This broker stopped coordinating the group (shutting down).
    #[error("this broker is no longer the group's coordinator; find the coordinator again")]
    NotCoordinator,
    /// An empty group id.
    #[error("the group id must not be empty")]
    InvalidGroupId,
    /// The session timeout is outside the broker's allowed range.
    #[error(
        "session timeout {requested} ms is outside {min}..={max} ms \
         (group.min.session.timeout.ms / group.max.session.timeout.ms); change session.timeout.ms"
    )]
    InvalidSessionTimeout { requested: i32, min: i32, max: i32 },
    /// The member id is not (or no longer) in the group.
    #[error("the member id is not in the group (its session may have expired); rejoin")]
    UnknownMemberId,
    /// A first JoinGroup (v4+) must be repeated with the member id the coordinator assigned.
    #[error("the coordinator assigned a member id; rejoin with it")]
    MemberIdRequired,
    /// The generation is not the group's current one.
    #[error("the generation id is not the group's current generation; rejoin")]
    IllegalGeneration,
    /// The group is rebalancing.
    #[error("the group is rebalancing; rejoin")]
    RebalanceInProgress,
    /// The protocol type or protocols do not match the group's.
    #[error("the protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    /// Another instance with the same `group.instance.id` replaced this member.
    #[error("a newer member with the same group.instance.id replaced this one")]
    FencedInstanceId,
    /// The group has `group.max.size` members.
    #[error("the group has reached group.max.size members")]
    GroupMaxSizeReached,
    /// The group does not exist.
    #[error("the group does not exist")]
    GroupIdNotFound,
    /// The group has members, so it cannot be deleted.
    #[error("the group still has members; stop them before deleting the group")]
    NonEmptyGroup,
    /// Offset metadata longer than `offset.metadata.max.bytes`.
    #[error("offset metadata of {size} characters exceeds offset.metadata.max.bytes ({max})")]
    OffsetMetadataTooLarge { size: usize, max: usize },
    /// OffsetDelete of a topic the group is subscribed to.
    #[error("the group is subscribed to the topic; its offsets cannot be deleted")]
    GroupSubscribedToTopic,
    /// The commit does not fit into one record batch of `__consumer_offsets`.
    #[error("the offset commit is too large for one {OFFSETS_TOPIC} batch; commit fewer partitions at once")]
    InvalidCommitOffsetSize,
    /// A TxnOffsetCommit from an older epoch of its producer (a newer one took over).
    #[error("the producer's epoch is older than its current one on {OFFSETS_TOPIC}: it was fenced")]
    InvalidProducerEpoch,
    /// An OffsetCommit from a consumer-protocol member with an epoch that is not its current one.
    #[error("member epoch {got} is not the member's current epoch {current}; the member must catch up or rejoin")]
    StaleMemberEpoch { got: i32, current: i32 },
    /// A classic-protocol request for a consumer-protocol group, or the reverse.
    #[error("group {group_id} is a {actual} group, not a {wanted} group")]
    WrongGroupType { group_id: String, actual: &'static str, wanted: &'static str },
    /// Writing to `__consumer_offsets` failed.
    #[error("writing to {OFFSETS_TOPIC} failed: {0}")]
    Storage(String),
}

/// Coordinator settings, by their Kafka names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits for more members.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub max_size: usize,
    /// How long a new member's JoinGroup may wait before the member is dropped (Kafka: 5 minutes, fixed).
    pub new_member_join_timeout_ms: u64,
    /// `offsets.topic.num.partitions`, used when `__consumer_offsets` is created.
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.replication.factor`, capped to the live brokers when the topic is created.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// The `group.consumer.*` settings of consumer-protocol (KIP-848) groups.
    pub consumer: consumer::ConsumerGroupConfig,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            new_member_join_timeout_ms: 300_000,
            offsets_topic_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 104_857_600,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 10080 * 60_000,
            offsets_retention_check_interval_ms: 600_000,
            consumer: consumer::ConsumerGroupConfig::default(),
        }
    }
}

impl GroupConfig {
    /// Reads the coordinator settings from broker settings; a setting the
    /// broker's table does not define yet keeps Kafka's default.
    pub fn from_settings(s: &Settings) -> GroupConfig {
        let d = GroupConfig::default();
        let get = |name: &str, default: i64| -> i64 {
            if settings::find(s.table(), name).is_some() { s.long(name) } else { default }
        };
        let clamp_i32 = |v: i64| v.clamp(0, i32::MAX as i64) as i32;
        GroupConfig {
            initial_rebalance_delay_ms: get("group.initial.rebalance.delay.ms", d.initial_rebalance_delay_ms as i64)
                .max(0) as u64,
            min_session_timeout_ms: clamp_i32(get("group.min.session.timeout.ms", d.min_session_timeout_ms as i64)),
            max_session_timeout_ms: clamp_i32(get("group.max.session.timeout.ms", d.max_session_timeout_ms as i64)),
            max_size: get("group.max.size", d.max_size as i64).max(1) as usize,
            new_member_join_timeout_ms: d.new_member_join_timeout_ms,
            offsets_topic_partitions: clamp_i32(get("offsets.topic.num.partitions", d.offsets_topic_partitions as i64))
                .max(1),
            offsets_topic_replication_factor: get(
                "offsets.topic.replication.factor",
                d.offsets_topic_replication_factor as i64,
            )
            .clamp(1, i16::MAX as i64) as i16,
            offsets_topic_segment_bytes: get("offsets.topic.segment.bytes", d.offsets_topic_segment_bytes).max(14),
            offset_metadata_max_bytes: get("offset.metadata.max.bytes", d.offset_metadata_max_bytes as i64).max(0)
                as usize,
            offsets_retention_ms: get("offsets.retention.minutes", d.offsets_retention_ms / 60_000)
                .max(1)
                .saturating_mul(60_000),
            offsets_retention_check_interval_ms: get(
                "offsets.retention.check.interval.ms",
                d.offsets_retention_check_interval_ms as i64,
            )
            .max(1) as u64,
            consumer: consumer::ConsumerGroupConfig::from_settings(s),
        }
    }
}

/// Kafka's `partitionFor(groupId)`: `Utils.abs(groupId.hashCode()) % partitions`.
pub fn partition_for(group_id: &str, partitions: usize) -> usize {
    let hash = java_string_hash(group_id);
    // Utils.abs maps Integer.MIN_VALUE to 0 rather than overflowing.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive as usize % partitions.max(1)
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32))
}

/// A moment on two clocks: the monotonic one for timeouts and the wall clock
/// (milliseconds since the epoch) for what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Monotonic time, for session, rebalance and join timeouts.
    pub now: Instant,
    /// Wall-clock milliseconds, for commit timestamps and state timestamps.
    pub wall_ms: i64,
}

/// The wall clock derived from tokio's monotonic clock, so paused-time tests
/// move both together.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_wall_ms: i64,
}

impl Clock {
    /// A clock reading the system time once, now.
    pub fn new() -> Clock {
        Clock { base: Instant::now(), base_wall_ms: crate::clock::now_ms() }
    }

    /// Milliseconds from this clock's start to `at`: the time line of consumer-protocol groups.
    pub fn mono_ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_millis() as u64
    }

    /// The instant `ms` milliseconds after this clock's start.
    pub fn instant_of(&self, ms: u64) -> Instant {
        self.base + std::time::Duration::from_millis(ms)
    }

    /// The current time.
    pub fn time(&self) -> Time {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.base).as_millis() as i64;
        Time { now, wall_ms: self.base_wall_ms.saturating_add(elapsed) }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// Gives `coordinator` its storage on the hosted partitions of `replicas` once
/// `__consumer_offsets` exists, with the topic's partition count; which
/// partitions it serves then follows their leadership
/// ([`GroupCoordinator::set_leadership`]).
pub fn attach(coordinator: &Arc<GroupCoordinator>, replicas: &Arc<ReplicaManager>, partitions: usize) {
    if coordinator.partition_count().is_none() {
        let store = Arc::new(store::BrokerOffsetsLog::new(Arc::downgrade(replicas)));
        coordinator.attach(store, partitions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash_matches_java() {
        // Values from java.lang.String#hashCode.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash("my-group"), -1906497762);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(java_string_hash("ü"), 252);
    }

    #[test]
    fn group_partition_is_kafkas() {
        // Utils.abs(Integer.MIN_VALUE) is 0, not an overflow.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99162322 % 50);
        // A negative hash is made positive before the modulo.
        assert_eq!(partition_for("my-group", 50), 1906497762 % 50);
        for id in ["a", "b", "group-1", "ü-grüße"] {
            assert!(partition_for(id, 7) < 7);
        }
    }

    #[test]
    fn settings_absent_from_the_table_keep_kafka_defaults() {
        let c = GroupConfig::from_settings(&Settings::broker_defaults());
        assert_eq!(c, GroupConfig::default());
        assert_eq!(c.offsets_retention_ms, 7 * 24 * 3_600_000);
    }
}
