//! A group's committed offsets and Kafka's rules for expiring them.
//!
//! Offsets are keyed by (topic, partition). A commit counts as *pending*
//! from the moment its record is queued for `__consumer_offsets` until the
//! append returns; pending partitions are never expired, and deletions
//! tombstone them too, so the log and this map agree after every append.
//!
//! Expiry (`offsets.retention.minutes`), as in Kafka: a group with a protocol
//! type that is Empty expires offsets a retention period after it became
//! Empty; a Stable "consumer" group expires offsets of topics it no longer
//! subscribes to a retention period after their commit; a group without a
//! protocol type (simple consumers) expires offsets a retention period after
//! their commit; an offset committed with an explicit expiry (OffsetCommit
//! v2-v4 `retention_time_ms`) expires then.
//!
//! Transactional offsets (TxnOffsetCommit) are held per producer id apart
//! from the committed ones until the producer's transaction ends: a COMMIT
//! marker makes them committed, an ABORT drops them.

use std::collections::{BTreeMap, HashMap};

use super::codec::OffsetCommitValue;
use super::state::{Group, GroupState};

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The committed offset.
    pub offset: i64,
    /// Leader epoch of the last consumed record, if known.
    pub leader_epoch: Option<i32>,
    /// Client metadata.
    pub metadata: String,
    /// Commit time (wall-clock ms).
    pub commit_timestamp_ms: i64,
    /// Explicit expiry time, from OffsetCommit v2-v4.
    pub expire_timestamp_ms: Option<i64>,
}

impl OffsetAndMetadata {
    /// The `__consumer_offsets` value for this offset.
    pub fn to_value(&self) -> OffsetCommitValue {
        OffsetCommitValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch.unwrap_or(-1),
            metadata: self.metadata.clone(),
            commit_timestamp: self.commit_timestamp_ms,
            expire_timestamp: self.expire_timestamp_ms,
        }
    }

    /// The offset a `__consumer_offsets` value holds.
    pub fn from_value(v: OffsetCommitValue) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset: v.offset,
            leader_epoch: (v.leader_epoch >= 0).then_some(v.leader_epoch),
            metadata: v.metadata,
            commit_timestamp_ms: v.commit_timestamp,
            expire_timestamp_ms: v.expire_timestamp,
        }
    }
}

/// (topic, partition).
pub type TopicPartitionKey = (String, i32);

/// One group's committed offsets, plus the commits on their way to the log.
#[derive(Debug, Default)]
pub struct GroupOffsets {
    committed: BTreeMap<String, BTreeMap<i32, OffsetAndMetadata>>,
    pending: HashMap<TopicPartitionKey, u32>,
    /// Offsets of open transactions, by producer id.
    transactional: HashMap<i64, BTreeMap<TopicPartitionKey, OffsetAndMetadata>>,
}

impl GroupOffsets {
    /// The committed offset of a partition.
    pub fn get(&self, topic: &str, partition: i32) -> Option<&OffsetAndMetadata> {
        self.committed.get(topic)?.get(&partition)
    }

    /// Sets a committed offset (a commit's record reached the log).
    pub fn set(&mut self, topic: &str, partition: i32, offset: OffsetAndMetadata) {
        self.committed.entry(topic.to_string()).or_default().insert(partition, offset);
    }

    /// Removes a committed offset (its tombstone reached the log).
    pub fn remove(&mut self, topic: &str, partition: i32) -> Option<OffsetAndMetadata> {
        let partitions = self.committed.get_mut(topic)?;
        let removed = partitions.remove(&partition);
        if partitions.is_empty() {
            self.committed.remove(topic);
        }
        removed
    }

    /// Every committed offset, by topic then partition.
    pub fn all(&self) -> impl Iterator<Item = (&str, i32, &OffsetAndMetadata)> {
        self.committed.iter().flat_map(|(t, ps)| ps.iter().map(move |(p, o)| (t.as_str(), *p, o)))
    }

    /// Whether no offset is committed or pending.
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.pending.is_empty() && self.transactional.is_empty()
    }

    /// Holds a transactional offset of `producer_id` until its transaction ends.
    pub fn add_transactional(&mut self, producer_id: i64, key: TopicPartitionKey, offset: OffsetAndMetadata) {
        self.transactional.entry(producer_id).or_default().insert(key, offset);
    }

    /// The transaction of `producer_id` ended: its offsets become committed
    /// (`committed`) or are dropped. Whether it had any.
    pub fn end_transaction(&mut self, producer_id: i64, committed: bool) -> bool {
        let Some(offsets) = self.transactional.remove(&producer_id) else {
            return false;
        };
        if committed {
            for ((topic, partition), offset) in offsets {
                self.set(&topic, partition, offset);
            }
        }
        true
    }

    /// Whether an open transaction holds an offset of the partition
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_transactional(&self, topic: &str, partition: i32) -> bool {
        self.transactional.values().any(|o| o.keys().any(|(t, p)| t == topic && *p == partition))
    }

    /// Whether the partition has a committed or pending offset.
    pub fn contains(&self, topic: &str, partition: i32) -> bool {
        self.get(topic, partition).is_some() || self.pending.contains_key(&(topic.to_string(), partition))
    }

    /// Every partition with a committed or pending offset.
    pub fn keys_with_pending(&self) -> Vec<TopicPartitionKey> {
        let mut keys: Vec<TopicPartitionKey> = self.all().map(|(t, p, _)| (t.to_string(), p)).collect();
        for k in self.pending.keys() {
            if self.get(&k.0, k.1).is_none() {
                keys.push(k.clone());
            }
        }
        keys
    }

    /// Marks a commit of the partition as on its way to the log.
    pub fn add_pending(&mut self, key: &TopicPartitionKey) {
        *self.pending.entry(key.clone()).or_default() += 1;
    }

    /// A pending commit of the partition reached the log (or failed).
    pub fn remove_pending(&mut self, key: &TopicPartitionKey) {
        if let Some(n) = self.pending.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(key);
            }
        }
    }

    /// The partitions whose offsets have expired at `now_ms`, and whether that
    /// is every offset of the group (then an Empty group may be deleted).
    pub fn expired(&self, group: &Group, now_ms: i64, retention_ms: i64) -> (Vec<TopicPartitionKey>, bool) {
        let Some(base) = expiration_base(group) else {
            return (Vec::new(), self.is_empty());
        };
        let mut expired = Vec::new();
        let mut all_expired = self.pending.is_empty();
        for (topic, partitions) in &self.committed {
            if group.is_subscribed_to(topic) {
                all_expired = false;
                continue;
            }
            for (partition, offset) in partitions {
                let is_expired = match offset.expire_timestamp_ms {
                    Some(expire) => now_ms >= expire,
                    None => {
                        let since = match base {
                            ExpirationBase::StateChange(Some(ts)) => ts,
                            ExpirationBase::StateChange(None) | ExpirationBase::Commit => offset.commit_timestamp_ms,
                        };
                        now_ms.saturating_sub(since) >= retention_ms
                    }
                };
                let key = (topic.clone(), *partition);
                if is_expired && !self.pending.contains_key(&key) {
                    expired.push(key);
                } else {
                    all_expired = false;
                }
            }
        }
        (expired, all_expired)
    }
}

/// What an offset's age is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpirationBase {
    /// Since the group became Empty (falling back to the commit time when unknown).
    StateChange(Option<i64>),
    /// Since the commit.
    Commit,
}

/// Kafka's `ClassicGroup.offsetExpirationCondition`.
fn expiration_base(group: &Group) -> Option<ExpirationBase> {
    match group.protocol_type() {
        Some(protocol_type) => {
            if group.state() == GroupState::Empty {
                Some(ExpirationBase::StateChange(group.state_timestamp_ms()))
            } else if protocol_type == "consumer"
                && group.subscribed_topics().is_some()
                && group.state() == GroupState::Stable
            {
                Some(ExpirationBase::Commit)
            } else {
                None
            }
        }
        None => Some(ExpirationBase::Commit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{GroupConfig, Time};
    use tokio::time::Instant;

    fn at(wall_ms: i64) -> Time {
        Time { now: Instant::now(), wall_ms }
    }

    fn offset(commit: i64) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset: 1,
            leader_epoch: None,
            metadata: String::new(),
            commit_timestamp_ms: commit,
            expire_timestamp_ms: None,
        }
    }

    #[test]
    fn simple_group_offsets_expire_a_retention_after_their_commit() {
        let group = Group::new("g", GroupConfig::default(), at(0));
        let mut offsets = GroupOffsets::default();
        offsets.set("t", 0, offset(100));
        offsets.set("t", 1, offset(500));
        assert_eq!(offsets.expired(&group, 1099, 1000).0, vec![]);
        let (expired, all) = offsets.expired(&group, 1100, 1000);
        assert_eq!(expired, vec![("t".to_string(), 0)]);
        assert!(!all);
        let (expired, all) = offsets.expired(&group, 1500, 1000);
        assert_eq!(expired.len(), 2);
        assert!(all);
    }

    #[test]
    fn pending_commits_never_expire() {
        let group = Group::new("g", GroupConfig::default(), at(0));
        let mut offsets = GroupOffsets::default();
        offsets.set("t", 0, offset(0));
        offsets.add_pending(&("t".to_string(), 0));
        let (expired, all) = offsets.expired(&group, 10_000, 1000);
        assert!(expired.is_empty());
        assert!(!all);
        offsets.remove_pending(&("t".to_string(), 0));
        assert_eq!(offsets.expired(&group, 10_000, 1000).0.len(), 1);
    }

    #[test]
    fn explicit_expiry_wins() {
        let group = Group::new("g", GroupConfig::default(), at(0));
        let mut offsets = GroupOffsets::default();
        offsets.set("t", 0, OffsetAndMetadata { expire_timestamp_ms: Some(50), ..offset(0) });
        assert_eq!(offsets.expired(&group, 49, 1_000_000).0.len(), 0);
        assert_eq!(offsets.expired(&group, 50, 1_000_000).0.len(), 1);
    }

    #[test]
    fn removing_the_last_partition_forgets_the_topic() {
        let mut offsets = GroupOffsets::default();
        offsets.set("t", 0, offset(0));
        assert!(offsets.contains("t", 0));
        assert_eq!(offsets.remove("t", 0), Some(offset(0)));
        assert!(offsets.is_empty());
        assert_eq!(offsets.all().count(), 0);
    }
}
