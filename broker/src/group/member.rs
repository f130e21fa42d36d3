//! One member of a classic group, and the answers its waiting requests get.
//!
//! A member holds at most one waiting JoinGroup and one waiting SyncGroup
//! (tokio oneshot senders). Invariant: a waiting request is answered exactly
//! once — by completing its sender, or, when the member or group goes away,
//! by dropping it (the request then answers COORDINATOR_NOT_AVAILABLE).

use std::collections::BTreeSet;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::GroupError;

/// One protocol a member supports (for consumers: an assignor) with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// Protocol name, e.g. "range", "cooperative-sticky".
    pub name: String,
    /// Protocol metadata (for consumers: the subscription).
    pub metadata: Bytes,
}

/// A member as the leader sees it in its JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    /// Why the join failed, if it did.
    pub error: Option<GroupError>,
    /// The member's id (the assigned one for MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// The generation joined, -1 on error.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id, "" on error.
    pub leader: String,
    /// The leader need not compute an assignment (static leader rejoin, v9+).
    pub skip_assignment: bool,
    /// All members with their metadata; only for the leader.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    /// A failed join.
    pub fn error(error: GroupError, member_id: impl Into<String>) -> JoinResult {
        JoinResult {
            error: Some(error),
            member_id: member_id.into(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// Why the sync failed, if it did.
    pub error: Option<GroupError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    /// A failed sync.
    pub fn error(error: GroupError) -> SyncResult {
        SyncResult { error: Some(error), protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// A member of a classic group.
#[derive(Debug)]
pub struct Member {
    /// Member id, assigned by the coordinator.
    pub member_id: String,
    /// Static membership id (`group.instance.id`).
    pub group_instance_id: Option<String>,
    /// Client id of the member's first join.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout (ms): how long a rebalance waits for this member to rejoin.
    pub rebalance_timeout_ms: i32,
    /// Session timeout (ms): how long the member lives without a heartbeat.
    pub session_timeout_ms: i32,
    /// Protocol type ("consumer", ...).
    pub protocol_type: String,
    /// Supported protocols, most preferred first.
    pub protocols: Vec<Protocol>,
    /// The current assignment.
    pub assignment: Bytes,
    /// Joined in the current rebalance and not yet through a join phase.
    pub(crate) is_new: bool,
    pub(crate) awaiting_join: Option<oneshot::Sender<JoinResult>>,
    pub(crate) awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    /// When the member is removed unless it heartbeats (or is waiting in a rebalance).
    pub(crate) heartbeat_deadline: Option<Instant>,
}

impl Member {
    /// The member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| &p.metadata)
    }

    /// Same protocols with the same metadata in the same order.
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// Whether the member supports `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// The member's most preferred protocol among `candidates`.
    pub fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols.iter().map(|p| p.name.as_str()).find(|n| candidates.contains(n))
    }

    /// Whether a JoinGroup of this member is waiting.
    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    /// Whether a SyncGroup of this member is waiting.
    pub fn is_awaiting_sync(&self) -> bool {
        self.awaiting_sync.is_some()
    }

    /// Kafka's rule: a new member must finish its first join phase in time; a
    /// member waiting in a rebalance needs no heartbeat; otherwise it does.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.is_awaiting_join() || self.is_awaiting_sync())
    }

    /// Answers the waiting JoinGroup, if any; true when there was one.
    pub(crate) fn complete_join(&mut self, result: JoinResult) -> bool {
        match self.awaiting_join.take() {
            Some(tx) => {
                // The requester may be gone (connection closed); nothing to do then.
                let _ = tx.send(result);
                true
            }
            None => false,
        }
    }

    /// Answers the waiting SyncGroup, if any; true when there was one.
    pub(crate) fn complete_sync(&mut self, result: SyncResult) -> bool {
        match self.awaiting_sync.take() {
            Some(tx) => {
                let _ = tx.send(result);
                true
            }
            None => false,
        }
    }
}

/// The topics of a consumer protocol subscription (ConsumerProtocolSubscription,
/// read with its v0 prefix, which every version starts with), or `None` when
/// the bytes are not one.
pub fn consumer_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = metadata;
    let mut take = |n: usize| -> Option<&[u8]> {
        if r.len() < n {
            return None;
        }
        let (head, tail) = r.split_at(n);
        r = tail;
        Some(head)
    };
    let version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
    if count < 0 {
        return None;
    }
    let mut topics = Vec::new();
    for _ in 0..count {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        if len < 0 {
            return None;
        }
        let name = std::str::from_utf8(take(len as usize)?).ok()?;
        topics.push(name.to_string());
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ConsumerProtocolSubscription v0: topics, no user data.
    pub(crate) fn subscription(topics: &[&str]) -> Bytes {
        let mut b = vec![0, 0];
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        b.extend_from_slice(&(-1i32).to_be_bytes());
        Bytes::from(b)
    }

    #[test]
    fn consumer_subscriptions_are_read_by_their_v0_prefix() {
        assert_eq!(
            consumer_subscription_topics(&subscription(&["a", "orders"])),
            Some(vec!["a".into(), "orders".into()])
        );
        // A later version with more fields after the topics reads the same.
        let mut v3 = subscription(&["x"]).to_vec();
        v3[1] = 3;
        v3.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(consumer_subscription_topics(&v3), Some(vec!["x".into()]));
        assert_eq!(consumer_subscription_topics(&[0, 0, 0, 0, 0, 2, 0, 1, b'a']), None);
        assert_eq!(consumer_subscription_topics(b""), None);
    }
}
