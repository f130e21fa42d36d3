//! Group state machine tests: plain calls with explicit times, no runtime.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;
use tokio::time::Instant;

use super::*;
use crate::group::member::Protocol;

/// Times relative to a fixed start.
struct Clock(Instant);

impl Clock {
    fn new() -> Clock {
        Clock(Instant::now())
    }

    fn at(&self, ms: u64) -> Time {
        Time { now: self.0 + Duration::from_millis(ms), wall_ms: 1_000_000 + ms as i64 }
    }
}

fn config() -> GroupConfig {
    GroupConfig { initial_rebalance_delay_ms: 3000, ..GroupConfig::default() }
}

/// A ConsumerProtocolSubscription v0 of `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names.iter().map(|n| Protocol { name: n.to_string(), metadata: subscription(&["orders"]) }).collect()
}

/// A JoinGroup of a dynamic consumer: session 10 s, rebalance 30 s, "range".
fn req(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        protocol_type: "consumer".to_string(),
        protocols: protocols(&["range"]),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        require_known_member_id: false,
        supports_skip_assignment: false,
        reason: None,
    }
}

fn sync_req(member_id: &str, generation_id: i32) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    }
}

fn waiting(o: JoinOutcome) -> oneshot::Receiver<JoinResult> {
    match o {
        JoinOutcome::Waiting(rx) => rx,
        JoinOutcome::Done(r) => panic!("expected the join to wait, it was answered: {r:?}"),
    }
}

fn done(o: JoinOutcome) -> JoinResult {
    match o {
        JoinOutcome::Done(r) => r,
        JoinOutcome::Waiting(_) => panic!("expected an answer at once, the join waits"),
    }
}

fn sync_waiting(o: SyncOutcome) -> oneshot::Receiver<SyncResult> {
    match o {
        SyncOutcome::Waiting(rx) => rx,
        SyncOutcome::Done(r) => panic!("expected the sync to wait, it was answered: {r:?}"),
    }
}

fn sync_done(o: SyncOutcome) -> SyncResult {
    match o {
        SyncOutcome::Done(r) => r,
        SyncOutcome::Waiting(_) => panic!("expected an answer at once, the sync waits"),
    }
}

fn answered<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("the request should have been answered")
}

fn still_waiting<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) {
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty, "the request should still wait");
}

/// Stores the leader's assignment the state machine asked to write.
fn store_assignment(g: &mut Group, result: Result<(), GroupError>, t: Time) {
    let writes = g.take_writes();
    let [PendingWrite::Assignment { generation, assignment, .. }] = &writes[..] else {
        panic!("expected one assignment write, got {writes:?}");
    };
    g.on_assignment_stored(*generation, assignment.clone(), result, t);
}

/// Ends the join phase of members that all joined at 0: each member after the
/// first extends the initial delay once (to 6000 ms, within the rebalance timeout).
fn end_initial_join(g: &mut Group, c: &Clock) {
    g.on_timer(c.at(3000));
    g.on_timer(c.at(6000));
}

/// A Stable group of `n` dynamic members at `c.at(6000)`; returns the member
/// ids, leader first. Their sessions run to 16000.
fn stable_group(c: &Clock, n: usize) -> (Group, Vec<String>) {
    let mut g = Group::new("g", config(), c.at(0));
    let mut joins: Vec<_> = (0..n).map(|_| waiting(g.join(req(""), c.at(0)))).collect();
    end_initial_join(&mut g, c);
    let results: Vec<JoinResult> = joins.iter_mut().map(answered).collect();
    let leader = results[0].leader.clone();
    let mut ids: Vec<String> = results.iter().map(|r| r.member_id.clone()).collect();
    ids.sort_by_key(|id| *id != leader);
    let mut follower_syncs: Vec<_> =
        ids[1..].iter().map(|id| sync_waiting(g.sync(sync_req(id, results[0].generation_id)))).collect();
    let assignments = ids.iter().map(|id| (id.clone(), Bytes::from(format!("assignment-{id}")))).collect();
    let mut leader_sync =
        sync_waiting(g.sync(SyncRequest { assignments, ..sync_req(&leader, results[0].generation_id) }));
    store_assignment(&mut g, Ok(()), c.at(6000));
    assert_eq!(answered(&mut leader_sync).assignment, Bytes::from(format!("assignment-{leader}")));
    for rx in &mut follower_syncs {
        assert!(answered(rx).error.is_none());
    }
    assert_eq!(g.state(), GroupState::Stable);
    (g, ids)
}

#[test]
fn first_join_gets_a_member_id_then_the_group_stabilises() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    // KIP-394: a v4+ first join is told its member id and must come back with it.
    let first = done(g.join(JoinRequest { require_known_member_id: true, ..req("") }, c.at(0)));
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    assert!(first.member_id.starts_with("client-"), "{}", first.member_id);
    assert_eq!(g.state(), GroupState::Empty);
    let mut join = waiting(g.join(req(&first.member_id), c.at(10)));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // The initial rebalance delay holds the join phase open for more members.
    g.on_timer(c.at(3009));
    still_waiting(&mut join);
    g.on_timer(c.at(3010));
    let joined = answered(&mut join);
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, first.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(joined.members.len(), 1, "the leader gets every member's metadata");
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let assignments = vec![(first.member_id.clone(), Bytes::from_static(b"a"))];
    let mut sync = sync_waiting(g.sync(SyncRequest { assignments, ..sync_req(&first.member_id, 1) }));
    // The assignment is handed out only once it is in the log.
    still_waiting(&mut sync);
    store_assignment(&mut g, Ok(()), c.at(3020));
    assert_eq!(answered(&mut sync).assignment, Bytes::from_static(b"a"));
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.heartbeat(&first.member_id, None, 1, c.at(4000)), Ok(()));
    assert_eq!(g.subscribed_topics().map(|t| t.len()), Some(1));
}

#[test]
fn initial_delay_extends_while_members_keep_arriving() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let mut a = waiting(g.join(req(""), c.at(0)));
    let mut b = waiting(g.join(req(""), c.at(2000)));
    // A member arrived during the delay: wait another delay.
    g.on_timer(c.at(3000));
    still_waiting(&mut a);
    g.on_timer(c.at(5999));
    still_waiting(&mut a);
    g.on_timer(c.at(6000));
    let (a, b) = (answered(&mut a), answered(&mut b));
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(a.leader, a.member_id);
    assert_eq!(a.members.len(), 2);
    assert!(b.members.is_empty(), "followers do not get member metadata");
}

#[test]
fn initial_delay_never_exceeds_the_rebalance_timeout() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let short = JoinRequest { rebalance_timeout_ms: 4000, ..req("") };
    let mut a = waiting(g.join(short.clone(), c.at(0)));
    let _b = waiting(g.join(short, c.at(1000)));
    g.on_timer(c.at(3000));
    still_waiting(&mut a);
    // 1000 ms remained of the 4000 ms rebalance timeout.
    g.on_timer(c.at(4000));
    assert_eq!(answered(&mut a).generation_id, 1);
}

#[test]
fn a_rebalance_completes_as_soon_as_every_member_rejoined() {
    let c = Clock::new();
    let (mut g, ids) = stable_group(&c, 2);
    let mut first = waiting(g.join(req(&ids[0]), c.at(7000)));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.heartbeat(&ids[1], None, 1, c.at(7100)), Err(GroupError::RebalanceInProgress));
    still_waiting(&mut first);
    let mut second = waiting(g.join(req(&ids[1]), c.at(7200)));
    let (first, second) = (answered(&mut first), answered(&mut second));
    assert_eq!((first.generation_id, second.generation_id), (2, 2));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn members_that_do_not_rejoin_in_time_are_dropped() {
    let c = Clock::new();
    let (mut g, ids) = stable_group(&c, 2);
    let mut first = waiting(g.join(req(&ids[0]), c.at(7000)));
    // The other member keeps heartbeating but never rejoins.
    for at in [11_000, 15_000, 19_000, 23_000, 27_000, 31_000, 35_000] {
        g.on_timer(c.at(at));
        let _ = g.heartbeat(&ids[1], None, 1, c.at(at));
    }
    still_waiting(&mut first);
    // The rebalance timeout (30 s) ends the join phase.
    g.on_timer(c.at(37_000));
    let joined = answered(&mut first);
    assert_eq!(joined.generation_id, 2);
    assert_eq!(joined.members.len(), 1);
    assert!(!g.has_member(&ids[1]));
    assert_eq!(g.heartbeat(&ids[1], None, 2, c.at(37_001)), Err(GroupError::UnknownMemberId));
}

#[test]
fn a_silent_member_is_removed_at_its_session_timeout() {
    let c = Clock::new();
    let (mut g, ids) = stable_group(&c, 2);
    // Heartbeat deadlines start at the sync answer (6000) + 10 s.
    assert_eq!(g.heartbeat(&ids[0], None, 1, c.at(12_000)), Ok(()));
    g.on_timer(c.at(15_999));
    assert_eq!(g.state(), GroupState::Stable);
    g.on_timer(c.at(16_000));
    assert!(!g.has_member(&ids[1]));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.heartbeat(&ids[0], None, 1, c.at(17_000)), Err(GroupError::RebalanceInProgress));
    let mut rejoin = waiting(g.join(req(&ids[0]), c.at(17_100)));
    let r = answered(&mut rejoin);
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

#[test]
fn members_waiting_in_a_rebalance_need_no_heartbeat() {
    let c = Clock::new();
    let (mut g, ids) = stable_group(&c, 2);
    let mut a = waiting(g.join(req(&ids[0]), c.at(7000)));
    // Member 0 waits in JoinGroup past its session timeout (16000): it is not removed.
    assert_eq!(g.heartbeat(&ids[1], None, 1, c.at(15_000)), Err(GroupError::RebalanceInProgress));
    g.on_timer(c.at(16_000));
    assert!(g.has_member(&ids[0]));
    let mut b = waiting(g.join(req(&ids[1]), c.at(18_000)));
    assert_eq!((answered(&mut a).generation_id, answered(&mut b).generation_id), (2, 2));
}

#[test]
fn the_protocol_is_the_one_most_members_prefer_among_those_all_support() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let with = |names: &[&str]| JoinRequest { protocols: protocols(names), ..req("") };
    let mut a = waiting(g.join(with(&["sticky", "range", "roundrobin"]), c.at(0)));
    let _b = waiting(g.join(with(&["roundrobin", "range"]), c.at(0)));
    let _c = waiting(g.join(with(&["roundrobin", "range", "sticky"]), c.at(0)));
    end_initial_join(&mut g, &c);
    // "sticky" is not supported by every member; "roundrobin" has two votes.
    assert_eq!(answered(&mut a).protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn incompatible_protocols_are_refused() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let empty = done(g.join(JoinRequest { protocols: Vec::new(), ..req("") }, c.at(0)));
    assert_eq!(empty.error, Some(GroupError::InconsistentGroupProtocol));
    let _a = waiting(g.join(req(""), c.at(0)));
    let other = done(g.join(JoinRequest { protocols: protocols(&["roundrobin"]), ..req("") }, c.at(1)));
    assert_eq!(other.error, Some(GroupError::InconsistentGroupProtocol));
    let connect = done(g.join(JoinRequest { protocol_type: "connect".into(), ..req("") }, c.at(1)));
    assert_eq!(connect.error, Some(GroupError::InconsistentGroupProtocol));
}

#[test]
fn sync_checks_member_generation_and_state() {
    let c = Clock::new();
    let (mut g, ids) = stable_group(&c, 1);
    let r = sync_done(g.sync(sync_req("nobody", 1)));
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
    let r = sync_done(g.sync(sync_req(&ids[0], 7)));
    assert_eq!(r.error, Some(GroupError::IllegalGeneration));
    let r = sync_done(g.sync(SyncRequest { protocol_name: Some("roundrobin".into()), ..sync_req(&ids[0], 1) }));
    assert_eq!(r.error, Some(GroupError::InconsistentGroupProtocol));
    // In Stable a late sync gets the stored assignment.
    let r = sync_done(g.sync(sync_req(&ids[0], 1)));
    assert_eq!(r.assignment, Bytes::from(format!("assignment-{}", ids[0])));
    let _rejoin =
        waiting(g.join(JoinRequest { protocols: protocols(&["range", "roundrobin"]), ..req(&ids[0]) }, c.at(7000)));
    // A single member's rejoin completes the join at once; a new sync is needed.
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(sync_done(g.sync(sync_req(&ids[0], 1))).error, Some(GroupError::IllegalGeneration));
}

#[test]
fn a_join_during_completing_rebalance_sends_waiting_syncs_back_to_join() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let mut a = waiting(g.join(req(""), c.at(0)));
    let mut b = waiting(g.join(req(""), c.at(0)));
    end_initial_join(&mut g, &c);
    let (a, b) = (answered(&mut a), answered(&mut b));
    let follower = if a.leader == a.member_id { b } else { a };
    let mut follower_sync = sync_waiting(g.sync(sync_req(&follower.member_id, 1)));
    let _newcomer = waiting(g.join(req(""), c.at(6100)));
    assert_eq!(answered(&mut follower_sync).error, Some(GroupError::RebalanceInProgress));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn members_that_never_sync_are_dropped_after_the_rebalance_timeout() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let mut a = waiting(g.join(req(""), c.at(0)));
    let mut b = waiting(g.join(req(""), c.at(0)));
    end_initial_join(&mut g, &c);
    let (a, b) = (answered(&mut a), answered(&mut b));
    let (leader, follower) = if a.leader == a.member_id { (a, b) } else { (b, a) };
    let mut leader_sync = sync_waiting(g.sync(sync_req(&leader.member_id, 1)));
    store_assignment(&mut g, Ok(()), c.at(6100));
    assert!(answered(&mut leader_sync).error.is_none());
    // The follower heartbeats but never syncs; the sync deadline is 6000 + 30 s.
    for at in [12_000, 18_000, 24_000, 30_000] {
        assert_eq!(g.heartbeat(&follower.member_id, None, 1, c.at(at)), Ok(()));
        assert_eq!(g.heartbeat(&leader.member_id, None, 1, c.at(at)), Ok(()));
        g.on_timer(c.at(at));
    }
    g.on_timer(c.at(35_999));
    assert!(g.has_member(&follower.member_id));
    g.on_timer(c.at(36_000));
    assert!(!g.has_member(&follower.member_id));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_failed_assignment_write_fails_the_syncs_and_rebalances() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let mut a = waiting(g.join(req(""), c.at(0)));
    g.on_timer(c.at(3000));
    let a = answered(&mut a);
    let mut sync = sync_waiting(g.sync(sync_req(&a.member_id, 1)));
    store_assignment(&mut g, Err(GroupError::Storage("disk full".into())), c.at(3001));
    assert_eq!(answered(&mut sync).error, Some(GroupError::Storage("disk full".into())));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn leaving_rebalances_and_the_last_leave_empties_the_group() {
    let c = Clock::new();
    let (mut g, ids) = stable_group(&c, 2);
    let left =
        g.leave(&[LeavingMember { member_id: ids[1].clone(), group_instance_id: None, reason: None }], c.at(7000));
    assert_eq!(left, Ok(vec![Ok(())]));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let mut rejoin = waiting(g.join(req(&ids[0]), c.at(7100)));
    assert_eq!(answered(&mut rejoin).generation_id, 2);
    let unknown =
        g.leave(&[LeavingMember { member_id: "x".into(), group_instance_id: None, reason: None }], c.at(7200));
    assert_eq!(unknown, Ok(vec![Err(GroupError::UnknownMemberId)]));
    g.take_writes();
    g.leave(&[LeavingMember { member_id: ids[0].clone(), group_instance_id: None, reason: None }], c.at(7300)).unwrap();
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation_id(), 3);
    // Becoming Empty is written, with no members.
    let writes = g.take_writes();
    let [PendingWrite::Metadata(value)] = &writes[..] else { panic!("{writes:?}") };
    assert_eq!((value.generation, value.members.len(), value.protocol.as_deref()), (3, 0, None));
    assert_eq!(value.protocol_type, "consumer");
}

#[test]
fn a_static_member_rejoining_replaces_its_old_member_id_without_a_rebalance() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let static_req = |member_id: &str| JoinRequest { group_instance_id: Some("instance-1".into()), ..req(member_id) };
    let mut s = waiting(g.join(static_req(""), c.at(0)));
    let mut d = waiting(g.join(req(""), c.at(0)));
    end_initial_join(&mut g, &c);
    let (s, d) = (answered(&mut s), answered(&mut d));
    assert!(s.member_id.starts_with("instance-1-"), "{}", s.member_id);
    let mut syncs = vec![sync_waiting(g.sync(sync_req(&d.member_id, 1)))];
    syncs.push(sync_waiting(g.sync(SyncRequest {
        group_instance_id: Some("instance-1".into()),
        assignments: vec![
            (s.member_id.clone(), Bytes::from_static(b"s")),
            (d.member_id.clone(), Bytes::from_static(b"d")),
        ],
        ..sync_req(&s.member_id, 1)
    })));
    store_assignment(&mut g, Ok(()), c.at(6000));
    assert_eq!(g.state(), GroupState::Stable);
    // The static member restarts: same instance id, no member id.
    let mut rejoin = waiting(g.join(static_req(""), c.at(7000)));
    assert_eq!(g.state(), GroupState::Stable, "no rebalance");
    let writes = g.take_writes();
    let [PendingWrite::StaticMember { value, replacement }] = &writes[..] else { panic!("{writes:?}") };
    let new_id = value.members.iter().find(|m| m.group_instance_id.is_some()).map(|m| m.member_id.clone()).unwrap();
    assert_ne!(new_id, s.member_id);
    still_waiting(&mut rejoin);
    g.on_static_member_stored(replacement.clone(), Ok(()), c.at(7001));
    let r = answered(&mut rejoin);
    assert_eq!((r.error, r.member_id.as_str(), r.generation_id), (None, new_id.as_str(), 1));
    // Pre-v9 clients are told the old leader id, so the new id acts as a follower.
    assert_eq!(r.leader, s.member_id);
    // It keeps its assignment.
    let synced =
        sync_done(g.sync(SyncRequest { group_instance_id: Some("instance-1".into()), ..sync_req(&new_id, 1) }));
    assert_eq!(synced.assignment, Bytes::from_static(b"s"));
    // The old member id is fenced.
    let stale = g.heartbeat(&s.member_id, Some("instance-1"), 1, c.at(7100));
    assert_eq!(stale, Err(GroupError::FencedInstanceId));
    assert_eq!(g.heartbeat(&new_id, Some("instance-1"), 1, c.at(7100)), Ok(()));
    assert_eq!(g.heartbeat(&d.member_id, None, 1, c.at(7100)), Ok(()));
}

#[test]
fn a_static_leader_rejoining_at_v9_is_told_to_skip_assignment() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let static_req = JoinRequest { group_instance_id: Some("i".into()), supports_skip_assignment: true, ..req("") };
    let mut s = waiting(g.join(static_req.clone(), c.at(0)));
    g.on_timer(c.at(3000));
    let s = answered(&mut s);
    let _sync = sync_waiting(g.sync(SyncRequest { group_instance_id: Some("i".into()), ..sync_req(&s.member_id, 1) }));
    store_assignment(&mut g, Ok(()), c.at(3000));
    let mut rejoin = waiting(g.join(static_req, c.at(4000)));
    let writes = g.take_writes();
    let [PendingWrite::StaticMember { replacement, .. }] = &writes[..] else { panic!("{writes:?}") };
    g.on_static_member_stored(replacement.clone(), Ok(()), c.at(4001));
    let r = answered(&mut rejoin);
    assert!(r.skip_assignment);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn a_static_replacement_that_cannot_be_stored_is_undone() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let static_req = JoinRequest { group_instance_id: Some("i".into()), ..req("") };
    let mut s = waiting(g.join(static_req.clone(), c.at(0)));
    g.on_timer(c.at(3000));
    let s = answered(&mut s);
    let _sync = sync_waiting(g.sync(SyncRequest { group_instance_id: Some("i".into()), ..sync_req(&s.member_id, 1) }));
    store_assignment(&mut g, Ok(()), c.at(3000));
    let mut rejoin = waiting(g.join(static_req, c.at(4000)));
    let writes = g.take_writes();
    let [PendingWrite::StaticMember { replacement, .. }] = &writes[..] else { panic!("{writes:?}") };
    g.on_static_member_stored(replacement.clone(), Err(GroupError::Storage("x".into())), c.at(4001));
    let r = answered(&mut rejoin);
    assert_eq!(r.error, Some(GroupError::Storage("x".into())));
    assert_eq!(r.member_id, "");
    assert_eq!(g.heartbeat(&s.member_id, Some("i"), 1, c.at(4002)), Ok(()), "the old member id is back");
}

#[test]
fn a_static_member_removed_by_instance_id_leaves() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let mut s = waiting(g.join(JoinRequest { group_instance_id: Some("i".into()), ..req("") }, c.at(0)));
    g.on_timer(c.at(3000));
    let _ = answered(&mut s);
    let r = g.leave(
        &[LeavingMember { member_id: String::new(), group_instance_id: Some("i".into()), reason: None }],
        c.at(3001),
    );
    assert_eq!(r, Ok(vec![Ok(())]));
    assert!(g.has_no_members());
}

#[test]
fn offset_commits_are_checked_against_membership() {
    let c = Clock::new();
    let empty = Group::new("g", config(), c.at(0));
    assert_eq!(empty.validate_offset_commit("", None, -1), Ok(()), "simple consumers commit to an Empty group");
    assert_eq!(empty.validate_offset_commit("m", None, 1), Err(GroupError::UnknownMemberId));
    let (g, ids) = stable_group(&c, 1);
    assert_eq!(g.validate_offset_commit("", None, -1), Err(GroupError::UnknownMemberId));
    assert_eq!(g.validate_offset_commit(&ids[0], None, 2), Err(GroupError::IllegalGeneration));
    assert_eq!(g.validate_offset_commit(&ids[0], None, 1), Ok(()));
    let mut g = Group::new("g", config(), c.at(0));
    let mut a = waiting(g.join(req(""), c.at(0)));
    g.on_timer(c.at(3000));
    let a = answered(&mut a);
    assert_eq!(g.validate_offset_commit(&a.member_id, None, 1), Err(GroupError::RebalanceInProgress));
}

#[test]
fn transactional_offset_commits_are_checked_against_the_generation_but_not_refused_mid_rebalance() {
    let c = Clock::new();
    let (g, ids) = stable_group(&c, 1);
    assert_eq!(g.validate_txn_offset_commit(&ids[0], None, 1), Ok(()));
    assert_eq!(g.validate_txn_offset_commit(&ids[0], None, 0), Err(GroupError::IllegalGeneration), "a zombie");
    assert_eq!(g.validate_txn_offset_commit("gone", None, 1), Err(GroupError::UnknownMemberId));
    assert_eq!(
        g.validate_txn_offset_commit("", None, -1),
        Ok(()),
        "a producer outside the group (no member id, no generation) commits while it has members"
    );
    // CompletingRebalance: joined at generation 1, SyncGroup not yet answered.
    let mut g = Group::new("g", config(), c.at(0));
    let mut a = waiting(g.join(req(""), c.at(0)));
    g.on_timer(c.at(3000));
    let a = answered(&mut a);
    assert_eq!(g.validate_offset_commit(&a.member_id, None, 1), Err(GroupError::RebalanceInProgress));
    assert_eq!(
        g.validate_txn_offset_commit(&a.member_id, None, 1),
        Ok(()),
        "TxnOffsetCommit of the current generation is taken mid-rebalance, as Kafka does"
    );
    assert_eq!(g.validate_txn_offset_commit(&a.member_id, None, 0), Err(GroupError::IllegalGeneration));
}

#[test]
fn group_max_size_is_enforced() {
    let c = Clock::new();
    let mut g = Group::new("g", GroupConfig { max_size: 1, ..config() }, c.at(0));
    let _a = waiting(g.join(req(""), c.at(0)));
    let b = done(g.join(req(""), c.at(0)));
    assert_eq!(b.error, Some(GroupError::GroupMaxSizeReached));
}

#[test]
fn a_pending_member_that_never_returns_is_forgotten() {
    let c = Clock::new();
    let mut g = Group::new("g", config(), c.at(0));
    let first = done(g.join(JoinRequest { require_known_member_id: true, ..req("") }, c.at(0)));
    assert!(!g.has_no_members());
    assert_eq!(g.validate_delete(), Err(GroupError::NonEmptyGroup));
    g.on_timer(c.at(10_000));
    assert!(g.has_no_members());
    // Coming back after that is an unknown member.
    let late = done(g.join(req(&first.member_id), c.at(10_001)));
    assert_eq!(late.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn a_new_member_whose_join_never_completes_is_dropped() {
    let c = Clock::new();
    // Rebalance timeouts (max.poll.interval.ms) of 10 minutes.
    let slow = |id: &str| JoinRequest { rebalance_timeout_ms: 600_000, ..req(id) };
    let mut g = Group::new("g", config(), c.at(0));
    let mut old = waiting(g.join(slow(""), c.at(0)));
    g.on_timer(c.at(3000));
    let old = answered(&mut old);
    let _sync = sync_waiting(g.sync(sync_req(&old.member_id, 1)));
    store_assignment(&mut g, Ok(()), c.at(3000));
    // A newcomer starts a rebalance the old member never rejoins (it only heartbeats).
    let mut newcomer = waiting(g.join(slow(""), c.at(4000)));
    let mut at = 5000;
    while at < 304_000 {
        assert_eq!(g.heartbeat(&old.member_id, None, 1, c.at(at)), Err(GroupError::RebalanceInProgress));
        g.on_timer(c.at(at));
        at += 5000;
    }
    still_waiting(&mut newcomer);
    // New members may wait 5 minutes for their first join phase, then go.
    g.on_timer(c.at(304_000));
    let r = answered(&mut newcomer);
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
    assert_eq!(g.members().count(), 1);
}

#[test]
fn a_record_describes_the_group_it_came_from() {
    let c = Clock::new();
    let (g, ids) = stable_group(&c, 2);
    let value = g.metadata_value(&g.current_assignment());
    let loaded = Group::from_record("g", value.clone(), config(), c.at(10_000));
    assert_eq!(loaded.state(), GroupState::Stable);
    assert_eq!(loaded.generation_id(), 1);
    assert_eq!(loaded.leader_id(), Some(ids[0].as_str()));
    assert_eq!(loaded.protocol_name(), Some("range"));
    assert_eq!(loaded.metadata_value(&loaded.current_assignment()), value);
    assert!(loaded.is_subscribed_to("orders"));
    // Loaded members must heartbeat within their session timeout.
    assert_eq!(loaded.next_deadline(), Some(c.at(20_000).now));
    let empty = Group::from_record(
        "g",
        GroupMetadataValue {
            generation: 4,
            protocol_type: "consumer".into(),
            current_state_timestamp: 7,
            ..Default::default()
        },
        config(),
        c.at(0),
    );
    assert_eq!((empty.state(), empty.generation_id(), empty.state_timestamp_ms()), (GroupState::Empty, 4, Some(7)));
}

#[test]
fn describe_shows_metadata_and_assignment_only_when_stable() {
    let c = Clock::new();
    let (mut g, ids) = stable_group(&c, 1);
    let d = g.describe();
    assert_eq!(
        (d.state, d.protocol_type.as_str(), d.protocol_data.as_str()),
        (GroupState::Stable, "consumer", "range")
    );
    assert_eq!(d.members[0].assignment, Bytes::from(format!("assignment-{}", ids[0])));
    assert!(!d.members[0].metadata.is_empty());
    let _join = waiting(g.join(req(&ids[0]), c.at(7000)));
    let d = g.describe();
    assert_eq!(d.state, GroupState::CompletingRebalance);
    assert!(d.members[0].assignment.is_empty() && d.protocol_data.is_empty());
}

#[test]
fn a_dead_group_refuses_everything() {
    let c = Clock::new();
    let (mut g, ids) = stable_group(&c, 1);
    let before = g.mark_dead(c.at(7000));
    assert_eq!(before, GroupState::Stable);
    assert_eq!(done(g.join(req(""), c.at(7001))).error, Some(GroupError::CoordinatorNotAvailable));
    assert_eq!(g.heartbeat(&ids[0], None, 1, c.at(7001)), Err(GroupError::CoordinatorNotAvailable));
    assert_eq!(g.validate_delete(), Err(GroupError::GroupIdNotFound));
    g.undo_dead(before, c.at(7002));
    assert_eq!(g.heartbeat(&ids[0], None, 1, c.at(7003)), Ok(()));
}
