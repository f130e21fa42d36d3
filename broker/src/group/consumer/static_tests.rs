//! Static membership: a temporary leave (-2) keeps the assignment for the
//! returning instance without a rebalance; one holder per instance id; a
//! member that does not return within its session is removed.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::static_member::LEFT_STATIC_EPOCH;
use super::tests::beat;
use super::*;

fn meta(partitions: i32) -> BTreeMap<String, TopicMeta> {
    [("t".to_string(), TopicMeta { id: Uuid::from_u128(1), partitions })].into()
}

fn join(member: &str, instance: Option<&str>) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: 0,
        instance_id: instance.map(String::from),
        rebalance_timeout_ms: 60_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(vec![]),
        ..Heartbeat::default()
    }
}

fn leave(member: &str, instance: &str, epoch: i32) -> Heartbeat {
    Heartbeat { instance_id: Some(instance.into()), ..beat(member, epoch, &Assignment::new()) }
}

/// Joins static `a` (instance "i-a") and dynamic `b` on 4 partitions and settles them.
fn settled_pair(g: &mut ConsumerGroup, md: &BTreeMap<String, TopicMeta>) -> (Assignment, Assignment) {
    let a = g.heartbeat(join("a", Some("i-a")), md, 0).expect("join a");
    let b = g.heartbeat(join("b", None), md, 0).expect("join b");
    let (mut a_owned, mut b_owned) = (a.assignment.expect("a"), b.assignment.expect("b"));
    let (mut a_epoch, mut b_epoch) = (a.member_epoch, b.member_epoch);
    for _ in 0..5 {
        let x = g.heartbeat(beat("a", a_epoch, &a_owned), md, 0).expect("a");
        a_epoch = x.member_epoch;
        a_owned = x.assignment.unwrap_or(a_owned);
        let y = g.heartbeat(beat("b", b_epoch, &b_owned), md, 0).expect("b");
        b_epoch = y.member_epoch;
        b_owned = y.assignment.unwrap_or(b_owned);
    }
    assert_eq!(g.state(), ConsumerGroupState::Stable);
    (a_owned, b_owned)
}

#[test]
fn a_static_member_that_returns_gets_its_partitions_back_without_a_rebalance() {
    let md = meta(4);
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig { session_timeout_ms: 1000, ..Default::default() });
    let (a_owned, b_owned) = settled_pair(&mut g, &md);
    assert_eq!((a_owned.values().map(|p| p.len()).sum::<usize>(), b_owned.values().map(|p| p.len()).sum()), (2, 2));
    let epoch = g.group_epoch();

    let left = g.heartbeat(leave("a", "i-a", LEFT_STATIC_EPOCH), &md, 100).expect("temporary leave");
    assert_eq!(left.member_epoch, LEFT_STATIC_EPOCH);
    assert_eq!(g.group_epoch(), epoch, "no rebalance");
    assert_eq!(g.members()["a"].member_epoch, LEFT_STATIC_EPOCH);
    // b keeps its two partitions: a's wait for it.
    let b = g.heartbeat(beat("b", epoch, &b_owned), &md, 200).expect("b heartbeat");
    assert_eq!(b.assignment.as_ref(), Some(&b_owned));
    for (id, ps) in &a_owned {
        for p in ps {
            assert_eq!(g.owner_of(*id, *p), Some("a"), "partition {p} still a's");
        }
    }

    // The instance comes back under a new member id, before its session ends.
    let back = g.heartbeat(join("a2", Some("i-a")), &md, 900).expect("rejoin");
    assert_eq!(back.assignment.as_ref(), Some(&a_owned), "same partitions");
    assert_eq!(back.member_epoch, epoch);
    assert_eq!(g.group_epoch(), epoch, "still no rebalance");
    assert!(!g.members().contains_key("a"));
    assert_eq!(g.state(), ConsumerGroupState::Stable);
    // At a's old session deadline (1100) nothing expires: a2's session started at its join.
    assert!(g.expire(1100).is_empty());
    assert_eq!(g.expire(1200), vec!["b".to_string()], "b's own session (last heartbeat at 200)");
}

#[test]
fn an_instance_id_has_one_holder() {
    let md = meta(2);
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let a = g.heartbeat(join("a", Some("i-a")), &md, 0).expect("join a");
    let e = g.heartbeat(join("x", Some("i-a")), &md, 0).expect_err("a is live");
    assert_eq!(e, ConsumerGroupError::UnreleasedInstanceId("i-a".into()));
    let hb = Heartbeat { instance_id: Some("i-a".into()), ..beat("x", a.member_epoch, &Assignment::new()) };
    let e = g.heartbeat(hb, &md, 0).expect_err("x is not i-a's holder");
    assert!(matches!(e, ConsumerGroupError::FencedInstanceId { ref holder, .. } if holder == "a"), "{e}");
    let e = g.heartbeat(leave("x", "i-b", LEFT_STATIC_EPOCH), &md, 0).expect_err("nobody holds i-b");
    assert_eq!(e, ConsumerGroupError::UnknownMemberId("x".into()));
    assert_eq!(g.members().len(), 1);
    // A permanent leave (-1) of a static member frees the instance id at once.
    g.heartbeat(leave("a", "i-a", -1), &md, 0).expect("leave");
    assert!(g.members().is_empty());
    g.heartbeat(join("x", Some("i-a")), &md, 0).expect("i-a is free");
}

#[test]
fn a_static_member_that_does_not_return_is_removed_after_its_session() {
    let md = meta(4);
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig { session_timeout_ms: 1000, ..Default::default() });
    let (_, b_owned) = settled_pair(&mut g, &md);
    let epoch = g.group_epoch();
    g.heartbeat(leave("a", "i-a", LEFT_STATIC_EPOCH), &md, 100).expect("temporary leave");
    // b heartbeats to keep its own session alive; a's runs out at 1100.
    let b = g.heartbeat(beat("b", epoch, &b_owned), &md, 1000).expect("b");
    assert_eq!(b.member_epoch, epoch);
    assert!(g.expire(1099).is_empty());
    assert_eq!(g.expire(1100), vec!["a".to_string()]);
    assert!(g.group_epoch() > epoch);
    let b = g.heartbeat(beat("b", epoch, &b_owned), &md, 1100).expect("b takes over");
    assert_eq!(b.assignment.map(|a| a.values().map(|p| p.len()).sum::<usize>()), Some(4));
}

#[test]
fn a_live_member_rejoining_under_a_departed_static_instance_leaves_no_partition_stuck() {
    let md = meta(4);
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig { session_timeout_ms: 1000, ..Default::default() });
    let (_, b_owned) = settled_pair(&mut g, &md);
    let epoch = g.group_epoch();
    g.heartbeat(leave("a", "i-a", LEFT_STATIC_EPOCH), &md, 100).expect("temporary leave");
    // Live dynamic member b re-sends epoch 0 naming a's instance id.
    let b = g.heartbeat(join("b", Some("i-a")), &md, 200).expect("b takes over i-a");
    assert!(g.group_epoch() > epoch, "b lost what it had: a rebalance");
    assert_eq!(g.members().len(), 1, "a's entry became b's");
    // b ends up owning all four partitions: none stays with a gone entry.
    let (mut owned, mut member_epoch) = (b.assignment.unwrap_or_default(), b.member_epoch);
    for _ in 0..5 {
        let x = g.heartbeat(beat("b", member_epoch, &owned), &md, 300).expect("b");
        member_epoch = x.member_epoch;
        owned = x.assignment.unwrap_or(owned);
    }
    assert_eq!(owned.values().map(|p| p.len()).sum::<usize>(), 4, "{owned:?} (b had {b_owned:?})");
    for p in 0..4 {
        assert_eq!(g.owner_of(Uuid::from_u128(1), p), Some("b"), "partition {p}");
    }
}
