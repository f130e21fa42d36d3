//! Consumer-protocol group tests: plain calls with explicit times; a property
//! test drives random joins, leaves, heartbeats and expiries against the
//! single-owner invariant.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::assignor::{self, AssignorMember};
use super::*;

fn topic(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn meta(topics: &[(&str, u128, i32)]) -> BTreeMap<String, TopicMeta> {
    topics.iter().map(|(n, id, p)| (n.to_string(), TopicMeta { id: topic(*id), partitions: *p })).collect()
}

fn join(member: &str, topics: &[&str]) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 60_000,
        subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: Some(vec![]),
        ..Heartbeat::default()
    }
}

/// A heartbeat of `member` at `epoch` listing `owned` (shared by the consumer-group tests).
pub(super) fn beat(member: &str, epoch: i32, owned: &Assignment) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.iter().map(|(id, ps)| (*id, ps.iter().copied().collect())).collect()),
        ..Heartbeat::default()
    }
}

/// A client: what it owns and its epoch, following the broker's answers.
#[derive(Default, Clone)]
struct Client {
    epoch: i32,
    owned: Assignment,
    topics: Vec<String>,
}

/// A fenced or unknown client drops all its partitions and rejoins with epoch 0, as the Java client does.
fn rejoin(g: &mut ConsumerGroup, id: &str, c: &mut Client, md: &BTreeMap<String, TopicMeta>, now: u64) {
    c.owned.clear();
    let topics: Vec<&str> = c.topics.iter().map(String::as_str).collect();
    let a = g.heartbeat(join(id, &topics), md, now).expect("rejoin");
    c.apply(&a);
}

impl Client {
    fn apply(&mut self, a: &HeartbeatAnswer) {
        self.epoch = a.member_epoch;
        if let Some(asg) = &a.assignment {
            // The Java client revokes what is gone and adds what is new: it then owns exactly `asg`.
            self.owned = asg.clone();
        }
    }
}

fn total(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Heartbeats every client until the group is stable (bounded rounds).
fn settle(g: &mut ConsumerGroup, clients: &mut BTreeMap<String, Client>, md: &BTreeMap<String, TopicMeta>) {
    for _ in 0..10 {
        for (id, c) in clients.iter_mut() {
            let a = g.heartbeat(beat(id, c.epoch, &c.owned), md, 0).expect("heartbeat");
            c.apply(&a);
        }
        if g.state() == ConsumerGroupState::Stable {
            return;
        }
    }
    panic!("group did not stabilise: {:?}", g.state());
}

#[test]
fn three_members_on_six_partitions_get_two_each() {
    let md = meta(&[("t", 1, 6)]);
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let mut clients = BTreeMap::new();
    for id in ["a", "b", "c"] {
        let a = g.heartbeat(join(id, &["t"]), &md, 0).expect("join");
        let mut c = Client::default();
        c.apply(&a);
        clients.insert(id.to_string(), c);
    }
    settle(&mut g, &mut clients, &md);
    let mut all = BTreeSet::new();
    for c in clients.values() {
        assert_eq!(total(&c.owned), 2, "each member owns two partitions");
        for p in &c.owned[&topic(1)] {
            assert!(all.insert(*p), "partition {p} owned twice");
        }
        assert_eq!(c.epoch, g.group_epoch());
    }
    assert_eq!(all, (0..6).collect());
}

#[test]
fn a_moved_partition_waits_for_its_revocation() {
    let md = meta(&[("t", 1, 2)]);
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let a = g.heartbeat(join("a", &["t"]), &md, 0).expect("join a");
    assert_eq!(a.member_epoch, 1);
    let a_owned = a.assignment.expect("a's assignment");
    assert_eq!(total(&a_owned), 2);
    // b joins: its target has one of a's partitions, which a still owns.
    let b = g.heartbeat(join("b", &["t"]), &md, 0).expect("join b");
    assert_eq!(b.member_epoch, 2);
    assert_eq!(b.assignment.as_ref().map(total), Some(0), "nothing is free yet");
    // a is told to revoke one partition; its epoch stays until it does.
    let a2 = g.heartbeat(beat("a", 1, &a_owned), &md, 0).expect("a heartbeat");
    assert_eq!(a2.member_epoch, 1);
    let a_kept = a2.assignment.expect("a's reduced assignment");
    assert_eq!(total(&a_kept), 1);
    // Still owned by a (not acknowledged): b gets nothing.
    let b2 = g.heartbeat(Heartbeat { owned: None, ..beat("b", 2, &Assignment::new()) }, &md, 0).expect("b heartbeat");
    assert_eq!(b2.assignment, None);
    // a acknowledges; it advances; then b gets the partition.
    let a3 = g.heartbeat(beat("a", 1, &a_kept), &md, 0).expect("a acknowledges");
    assert_eq!(a3.member_epoch, 2);
    let b3 = g.heartbeat(beat("b", 2, &Assignment::new()), &md, 0).expect("b heartbeat");
    assert_eq!(b3.assignment.as_ref().map(total), Some(1));
    assert_eq!(g.state(), ConsumerGroupState::Stable);
}

#[test]
fn a_stale_epoch_is_fenced_and_an_unknown_member_refused() {
    let md = meta(&[("t", 1, 1)]);
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let a = g.heartbeat(join("a", &["t"]), &md, 0).expect("join");
    let e = g.heartbeat(beat("a", a.member_epoch + 5, &Assignment::new()), &md, 0).unwrap_err();
    assert!(matches!(e, ConsumerGroupError::FencedMemberEpoch { got: 6, current: 1, .. }), "{e:?}");
    let e = g.heartbeat(beat("x", 3, &Assignment::new()), &md, 0).unwrap_err();
    assert_eq!(e, ConsumerGroupError::UnknownMemberId("x".into()));
    assert_eq!(g.validate_offset_commit("a", 1), Ok(()));
    assert_eq!(g.validate_offset_commit("a", 0), Err(group::OffsetCommitRefusal::StaleMemberEpoch));
    assert_eq!(g.validate_offset_commit("x", 1), Err(group::OffsetCommitRefusal::UnknownMemberId));
}

#[test]
fn bad_input_is_refused_naming_the_field() {
    let md = meta(&[("t", 1, 1)]);
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig { max_size: 1, ..ConsumerGroupConfig::default() });
    let mut regex = join("a", &[]);
    regex.subscribed_topic_regex = Some("t.*(".into());
    let e = g.heartbeat(regex, &md, 0).unwrap_err();
    assert!(e.to_string().contains("SubscribedTopicRegex \"t.*(\""), "{e}");
    let mut bad = join("a", &["t"]);
    bad.rebalance_timeout_ms = 0;
    assert!(g.heartbeat(bad, &md, 0).unwrap_err().to_string().contains("RebalanceTimeoutMs 0"));
    let mut bad = join("a", &["t"]);
    bad.rack_id = Some("r".repeat(256));
    assert!(g.heartbeat(bad, &md, 0).unwrap_err().to_string().contains("RackId"));
    let mut bad = join("a", &["t"]);
    bad.server_assignor = Some("sticky".into());
    assert_eq!(g.heartbeat(bad, &md, 0).unwrap_err(), ConsumerGroupError::UnsupportedAssignor("sticky".into()));
    g.heartbeat(join("a", &["t"]), &md, 0).expect("first member");
    assert_eq!(g.heartbeat(join("b", &["t"]), &md, 0).unwrap_err(), ConsumerGroupError::GroupMaxSizeReached(1));
}

#[test]
fn a_leave_or_session_expiry_frees_partitions_at_once() {
    let md = meta(&[("t", 1, 4)]);
    let cfg = ConsumerGroupConfig { session_timeout_ms: 1000, ..ConsumerGroupConfig::default() };
    let mut g = ConsumerGroup::new("g", cfg);
    let mut clients = BTreeMap::new();
    for id in ["a", "b", "c"] {
        let a = g.heartbeat(join(id, &["t"]), &md, 0).expect("join");
        let mut c = Client::default();
        c.apply(&a);
        clients.insert(id.to_string(), c);
    }
    settle(&mut g, &mut clients, &md);
    // a leaves.
    let a = clients.remove("a").expect("a");
    let left = g.heartbeat(Heartbeat { member_epoch: -1, ..beat("a", a.epoch, &a.owned) }, &md, 0).expect("leave");
    assert_eq!(left.member_epoch, -1);
    settle(&mut g, &mut clients, &md);
    assert_eq!(clients.values().map(|c| total(&c.owned)).sum::<usize>(), 4);
    // b goes silent: after its session timeout c takes everything.
    assert_eq!(g.expire(999), Vec::<String>::new());
    let c = clients.get("c").cloned().expect("c");
    g.heartbeat(beat("c", c.epoch, &c.owned), &md, 900).expect("c stays alive");
    assert_eq!(g.expire(1000), vec!["b".to_string()]);
    clients.remove("b");
    settle(&mut g, &mut clients, &md);
    assert_eq!(total(&clients["c"].owned), 4);
}

#[test]
fn range_gives_contiguous_ranges_per_topic() {
    let md = meta(&[("t", 1, 5)]);
    let topics: BTreeSet<String> = ["t".to_string()].into();
    let members = [
        AssignorMember { member_id: "a", topics: &topics, previous: None },
        AssignorMember { member_id: "b", topics: &topics, previous: None },
    ];
    let out = assignor::range(&members, &md);
    assert_eq!(out["a"][&topic(1)], (0..3).collect());
    assert_eq!(out["b"][&topic(1)], (3..5).collect());
}

#[test]
fn uniform_keeps_partitions_with_their_owner() {
    let md = meta(&[("t", 1, 6)]);
    let topics: BTreeSet<String> = ["t".to_string()].into();
    let two = [
        AssignorMember { member_id: "a", topics: &topics, previous: None },
        AssignorMember { member_id: "b", topics: &topics, previous: None },
    ];
    let before = assignor::uniform(&two, &md);
    let three = [
        AssignorMember { member_id: "a", topics: &topics, previous: before.get("a") },
        AssignorMember { member_id: "b", topics: &topics, previous: before.get("b") },
        AssignorMember { member_id: "c", topics: &topics, previous: None },
    ];
    let after = assignor::uniform(&three, &md);
    for m in ["a", "b"] {
        assert_eq!(total(&after[m]), 2);
        assert!(after[m][&topic(1)].is_subset(&before[m][&topic(1)]), "{m} keeps its partitions");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Join(u8, bool),
    Leave(u8),
    Beat(u8),
    /// The member heartbeats but its answer is lost.
    LostAnswer(u8),
    Expire(u8),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..5, any::<bool>()).prop_map(|(m, both)| Op::Join(m, both)),
        (0u8..5).prop_map(Op::Leave),
        (0u8..5).prop_map(Op::Beat),
        (0u8..5).prop_map(Op::Beat),
        (0u8..5).prop_map(Op::Beat),
        (0u8..5).prop_map(Op::LostAnswer),
        (0u8..5).prop_map(Op::Expire),
        Just(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the order of joins, leaves, heartbeats, lost answers and
    /// expiries, no partition is ever owned by two clients at once (what each
    /// client believes it owns), and a quiet group settles to a target that
    /// covers every subscribed partition once.
    #[test]
    fn no_partition_is_ever_owned_by_two_members(ops in proptest::collection::vec(op(), 1..80), range in any::<bool>()) {
        let md = meta(&[("t", 1, 6), ("u", 2, 3)]);
        let mut g = ConsumerGroup::new("g", ConsumerGroupConfig {
            session_timeout_ms: 1000,
            default_assignor: if range { "range" } else { "uniform" },
            ..ConsumerGroupConfig::default()
        });
        let mut clients: BTreeMap<String, Client> = BTreeMap::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Join(m, both) => {
                    let id = format!("m{m}");
                    if clients.contains_key(&id) { continue; }
                    let topics: &[&str] = if both { &["t", "u"] } else { &["t"] };
                    let a = g.heartbeat(join(&id, topics), &md, now).expect("join");
                    let mut c = Client { topics: topics.iter().map(|t| t.to_string()).collect(), ..Client::default() };
                    c.apply(&a);
                    clients.insert(id, c);
                }
                Op::Leave(m) => {
                    let id = format!("m{m}");
                    if let Some(c) = clients.remove(&id) {
                        g.heartbeat(Heartbeat { member_epoch: -1, ..beat(&id, c.epoch, &c.owned) }, &md, now).expect("leave");
                    }
                }
                Op::Beat(m) | Op::LostAnswer(m) => {
                    let id = format!("m{m}");
                    let Some(c) = clients.get_mut(&id) else { continue };
                    match g.heartbeat(beat(&id, c.epoch, &c.owned), &md, now) {
                        Ok(a) => if matches!(op, Op::Beat(_)) { c.apply(&a) },
                        Err(ConsumerGroupError::UnknownMemberId(_) | ConsumerGroupError::FencedMemberEpoch { .. }) => {
                            rejoin(&mut g, &id, c, &md, now);
                        }
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                Op::Expire(m) => {
                    // Every member but m heartbeats (answers lost); then time passes beyond m's session.
                    now += 1001;
                    let others: Vec<String> = clients.keys().filter(|k| **k != format!("m{m}")).cloned().collect();
                    for id in others {
                        let Some(c) = clients.get_mut(&id) else { continue };
                        if g.heartbeat(beat(&id, c.epoch, &c.owned), &md, now - 1).is_err() {
                            rejoin(&mut g, &id, c, &md, now - 1);
                        }
                    }
                    for gone in g.expire(now) {
                        // An expired client is fenced: it loses its partitions before it could consume more.
                        clients.remove(&gone);
                    }
                }
                Op::Tick => { now += 10; }
            }
            let mut seen = BTreeSet::new();
            for (id, c) in &clients {
                for (t, ps) in &c.owned {
                    for p in ps {
                        prop_assert!(seen.insert((*t, *p)), "partition {t}:{p} owned twice (again by {id})");
                        prop_assert_eq!(g.owner_of(*t, *p), Some(id.as_str()));
                    }
                }
            }
        }
        if !clients.is_empty() {
            for _ in 0..12 {
                for (id, c) in clients.iter_mut() {
                    match g.heartbeat(beat(id, c.epoch, &c.owned), &md, now) {
                        Ok(a) => c.apply(&a),
                        Err(_) => rejoin(&mut g, id, c, &md, now),
                    }
                }
            }
            prop_assert_eq!(g.state(), ConsumerGroupState::Stable);
            let subscribed_u = g.members().values().any(|m| m.subscribed_topics.contains("u"));
            let owned: usize = clients.values().map(|c| total(&c.owned)).sum();
            prop_assert_eq!(owned, 6 + if subscribed_u { 3 } else { 0 });
        }
    }
}
