//! The controller quorum as Kafka's DescribeQuorum tells it
//! (`kafka-metadata-quorum.sh describe`): a pure function of the active
//! controller's openraft metrics, so every number can be checked in a unit
//! test; asking the active controller for it is [`super::Controller::describe_quorum`].
//!
//! Kafka's metadata log is `__cluster_metadata` partition 0; Strom's is the
//! openraft log, whose entries are numbered from 0. An offset here is
//! therefore a log index plus one, exclusive as Kafka's offsets are:
//!
//! - leader epoch: the Raft term of the active controller;
//! - high watermark: one past the last entry the active controller applied
//!   (it applies only committed entries, so this never overstates the commit
//!   point; it trails it by the entries being applied);
//! - log end offset: one past the last entry a member holds — the leader's
//!   own log, or the highest entry the leader knows replicated on a
//!   follower; -1 when the leader knows none (as Kafka reports an unknown one);
//! - voters: the voters of the effective membership (both halves of a joint
//!   one); observers: its learners (brokers that take the metadata log but
//!   do not vote);
//! - timestamps: openraft records no time per follower, so a follower's last
//!   fetch is -1 (unknown); it is caught up "now" when the leader knows it
//!   holds every entry up to the high watermark, else unknown (-1); the
//!   leader reports now for both, as Kafka does;
//! - directory ids: none (Strom's voters are keyed by node id only), Kafka's
//!   zero uuid;
//! - nodes: each member's internal (controller) endpoint from the membership,
//!   named [`LISTENER`].

use std::collections::BTreeSet;

use openraft::{BasicNode, RaftMetrics};
use serde::{Deserialize, Serialize};

use super::NodeId;

/// The listener name the members' internal endpoints are reported under.
pub const LISTENER: &str = "INTERNAL";

/// One member of the quorum (a voter or an observer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// The node (broker) id.
    pub id: i32,
    /// One past the last entry it holds, -1 when unknown.
    pub log_end_offset: i64,
    /// When it last fetched, in ms since the epoch, -1 when unknown.
    pub last_fetch_ms: i64,
    /// When it was last known to hold every entry of the leader, -1 when unknown.
    pub last_caught_up_ms: i64,
}

/// A member's controller endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEndpoint {
    /// The node (broker) id.
    pub id: i32,
    /// Its host (an IPv6 address without brackets).
    pub host: String,
    /// Its port.
    pub port: u16,
}

/// The quorum as the active controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    /// The active controller.
    pub leader_id: i32,
    /// Its Raft term.
    pub leader_epoch: i32,
    /// One past the last entry it applied.
    pub high_watermark: i64,
    /// The voters, by id.
    pub voters: Vec<ReplicaView>,
    /// The learners, by id.
    pub observers: Vec<ReplicaView>,
    /// The members' endpoints whose address parses as `host:port`, by id.
    pub nodes: Vec<NodeEndpoint>,
}

/// Why a node cannot describe the quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DescribeQuorumError {
    /// This node is not the active controller (or leads outside its own
    /// membership, stepping down); `leader` is the one it knows of.
    #[error("node is not the active controller; the leader is {leader:?}")]
    NotLeader {
        /// The leader it knows of, if any.
        leader: Option<NodeId>,
    },
}

/// Describes the quorum from the metrics of the active controller, at
/// wall-clock time `now_ms`.
pub fn describe(m: &RaftMetrics<NodeId, BasicNode>, now_ms: i64) -> Result<QuorumDescription, DescribeQuorumError> {
    let membership = m.membership_config.membership();
    if m.current_leader != Some(m.id) || membership.get_node(&m.id).is_none() {
        return Err(DescribeQuorumError::NotLeader { leader: m.current_leader.filter(|l| *l != m.id) });
    }
    let Some(leader_id) = node_id(m.id) else {
        return Err(DescribeQuorumError::NotLeader { leader: None });
    };
    let leader_end = offset_after(m.last_log_index);
    let high_watermark = offset_after(m.last_applied.map(|l| l.index));
    let replica = |id: NodeId| -> Option<ReplicaView> {
        let id32 = node_id(id)?;
        if id == m.id {
            return Some(ReplicaView {
                id: id32,
                log_end_offset: leader_end,
                last_fetch_ms: now_ms,
                last_caught_up_ms: now_ms,
            });
        }
        let matched = m.replication.as_ref().and_then(|r| r.get(&id)).and_then(|l| l.map(|l| l.index));
        let log_end_offset = offset_after(matched);
        // Caught up: it holds every committed entry (the high watermark), so
        // a healthy follower of a busy quorum is not reported as never caught up.
        let caught_up = log_end_offset >= 0 && log_end_offset >= high_watermark;
        Some(ReplicaView {
            id: id32,
            log_end_offset,
            last_fetch_ms: -1,
            last_caught_up_ms: if caught_up { now_ms } else { -1 },
        })
    };
    let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
    let learner_ids: BTreeSet<NodeId> = membership.learner_ids().filter(|id| !voter_ids.contains(id)).collect();
    let nodes = membership
        .nodes()
        .filter_map(|(id, node)| {
            let (host, port) = split_host_port(&node.addr)?;
            Some(NodeEndpoint { id: node_id(*id)?, host, port })
        })
        .collect();
    Ok(QuorumDescription {
        leader_id,
        leader_epoch: i32::try_from(m.current_term).unwrap_or(i32::MAX),
        high_watermark,
        voters: voter_ids.into_iter().filter_map(replica).collect(),
        observers: learner_ids.into_iter().filter_map(replica).collect(),
        nodes,
    })
}

/// One past `index` as a Kafka offset; -1 for none.
fn offset_after(index: Option<u64>) -> i64 {
    index.map_or(-1, |i| i64::try_from(i).map_or(i64::MAX, |i| i.saturating_add(1)))
}

fn node_id(id: NodeId) -> Option<i32> {
    i32::try_from(id).ok()
}

/// `host:port` or `[v6]:port`; `None` when it does not parse.
fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let addr = addr.strip_prefix("http://").or_else(|| addr.strip_prefix("https://")).unwrap_or(addr);
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use openraft::{CommittedLeaderId, LogId, Membership, ServerState, StoredMembership};

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn log_id(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(3, 0), index)
    }

    /// Metrics of node `me` in a quorum of `voters` and `learners` led by
    /// `leader`, term 7, 41 entries (index 0..=40), 38 applied.
    fn metrics(
        me: NodeId,
        leader: Option<NodeId>,
        voters: &[NodeId],
        learners: &[NodeId],
        matched: &[(NodeId, Option<u64>)],
    ) -> RaftMetrics<NodeId, BasicNode> {
        let nodes: BTreeMap<NodeId, BasicNode> = voters
            .iter()
            .chain(learners)
            .map(|id| (*id, BasicNode::new(format!("127.0.0.{}:{}", id + 1, 9093 + id))))
            .collect();
        let membership = Membership::new(vec![voters.iter().copied().collect::<BTreeSet<_>>()], nodes);
        let mut m = RaftMetrics::new_initial(me);
        m.current_term = 7;
        m.current_leader = leader;
        m.state = if leader == Some(me) { ServerState::Leader } else { ServerState::Follower };
        m.last_log_index = Some(40);
        m.last_applied = Some(log_id(37));
        m.membership_config = Arc::new(StoredMembership::new(Some(log_id(1)), membership));
        m.replication = (leader == Some(me)).then(|| {
            let mut r: BTreeMap<NodeId, Option<LogId<NodeId>>> =
                matched.iter().map(|(id, i)| (*id, i.map(log_id))).collect();
            r.insert(me, Some(log_id(40)));
            r
        });
        m
    }

    #[test]
    fn the_leader_describes_voters_observers_epoch_and_high_watermark() {
        let m = metrics(1, Some(1), &[0, 1, 2], &[3, 4], &[(0, Some(40)), (2, Some(30)), (3, None), (4, Some(37))]);
        let d = describe(&m, NOW).expect("the leader describes");
        assert_eq!((d.leader_id, d.leader_epoch, d.high_watermark), (1, 7, 38));
        let replica = |id, log_end_offset, last_fetch_ms, last_caught_up_ms| ReplicaView {
            id,
            log_end_offset,
            last_fetch_ms,
            last_caught_up_ms,
        };
        assert_eq!(
            d.voters,
            [replica(0, 41, -1, NOW), replica(1, 41, NOW, NOW), replica(2, 31, -1, -1)],
            "a caught-up follower is caught up now, one behind the high watermark is unknown, the leader reports now"
        );
        assert_eq!(
            d.observers,
            [replica(3, -1, -1, -1), replica(4, 38, -1, NOW)],
            "a learner the leader knows nothing of: -1; one holding the high watermark but not the leader's end is caught up"
        );
        assert_eq!(d.nodes.len(), 5);
        assert_eq!(d.nodes[2], NodeEndpoint { id: 2, host: "127.0.0.3".into(), port: 9095 });
    }

    #[test]
    fn a_follower_names_the_leader_it_knows_instead() {
        let m = metrics(0, Some(2), &[0, 1, 2], &[], &[]);
        assert_eq!(describe(&m, NOW), Err(DescribeQuorumError::NotLeader { leader: Some(2) }));
        let m = metrics(0, None, &[0, 1, 2], &[], &[]);
        assert_eq!(describe(&m, NOW), Err(DescribeQuorumError::NotLeader { leader: None }));
    }

    #[test]
    fn a_leader_outside_its_own_membership_does_not_describe() {
        // It removed its own node and is stepping down.
        let m = metrics(5, Some(5), &[0, 1, 2], &[], &[]);
        assert_eq!(describe(&m, NOW), Err(DescribeQuorumError::NotLeader { leader: None }));
    }

    #[test]
    fn an_empty_log_has_no_offsets() {
        let mut m = metrics(0, Some(0), &[0], &[], &[]);
        m.last_log_index = None;
        m.last_applied = None;
        let d = describe(&m, NOW).expect("the leader describes");
        assert_eq!((d.high_watermark, d.voters[0].log_end_offset), (-1, -1));
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_host_port("strom-0.strom:9093"), Some(("strom-0.strom".into(), 9093)));
        assert_eq!(split_host_port("[::1]:9093"), Some(("::1".into(), 9093)));
        assert_eq!(split_host_port("http://10.0.0.1:19093"), Some(("10.0.0.1".into(), 19093)));
        assert_eq!(split_host_port("no-port"), None);
        assert_eq!(split_host_port(":9093"), None);
        assert_eq!(split_host_port("h:99999"), None);
    }
}
