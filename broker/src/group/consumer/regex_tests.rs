//! Regex subscriptions in a group: resolution over the topics the member may
//! describe, the epoch bump when a new topic matches, a switch between names
//! and a regex, and a refused pattern that changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::tests::beat;
use super::*;

fn meta(topics: &[(&str, u128, i32)]) -> BTreeMap<String, TopicMeta> {
    topics.iter().map(|(n, id, p)| (n.to_string(), TopicMeta { id: Uuid::from_u128(*id), partitions: *p })).collect()
}

fn join_regex(member: &str, regex: &str) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 60_000,
        subscribed_topic_regex: Some(regex.into()),
        owned: Some(vec![]),
        ..Heartbeat::default()
    }
}

fn topics(ids: &Assignment) -> BTreeSet<u128> {
    ids.keys().map(|id| id.as_u128()).collect()
}

#[test]
fn a_regex_member_gets_the_matching_topics_and_a_new_match_bumps_the_epoch() {
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let md = meta(&[("pay-eu", 1, 2), ("pay-us", 2, 2), ("orders", 3, 2)]);
    let a = g.heartbeat(join_regex("m", "pay-.*"), &md, 0).expect("join");
    let owned = a.assignment.expect("assignment");
    assert_eq!(topics(&owned), [1, 2].into(), "only the two pay-* topics");
    assert_eq!(g.members()["m"].regex_topics, ["pay-eu", "pay-us"].map(String::from).into());
    let epoch = g.group_epoch();

    // Nothing new: a heartbeat changes nothing.
    let quiet = Heartbeat { owned: None, ..beat("m", a.member_epoch, &owned) };
    let same = g.heartbeat(quiet, &md, 0).expect("heartbeat");
    assert_eq!((g.group_epoch(), same.assignment), (epoch, None));

    // A topic created later that matches bumps the epoch and is assigned.
    let more = meta(&[("pay-eu", 1, 2), ("pay-us", 2, 2), ("orders", 3, 2), ("pay-asia", 4, 1)]);
    let b = g.heartbeat(beat("m", a.member_epoch, &owned), &more, 0).expect("heartbeat");
    assert_eq!(g.group_epoch(), epoch + 1);
    assert_eq!(b.member_epoch, epoch + 1);
    assert_eq!(topics(&b.assignment.expect("new assignment")), [1, 2, 4].into());
}

#[test]
fn a_regex_matches_only_topics_the_member_may_describe() {
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let md = meta(&[("pay-eu", 1, 1), ("pay-secret", 2, 1)]);
    let a = g.heartbeat_with(join_regex("m", "pay-.*"), &md, &|t| t != "pay-secret", 0).expect("join");
    assert_eq!(topics(&a.assignment.expect("assignment")), [1].into());
}

#[test]
fn names_and_a_regex_combine_and_an_empty_regex_drops_it() {
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let md = meta(&[("pay-eu", 1, 1), ("orders", 2, 1)]);
    let hb = Heartbeat { subscribed_topic_names: Some(vec!["orders".into()]), ..join_regex("m", "pay-.*") };
    let a = g.heartbeat(hb, &md, 0).expect("join");
    let owned = a.assignment.expect("assignment");
    assert_eq!(topics(&owned), [1, 2].into());
    let drop = Heartbeat { subscribed_topic_regex: Some(String::new()), ..beat("m", a.member_epoch, &owned) };
    let b = g.heartbeat(drop, &md, 0).expect("drop the regex");
    assert_eq!(g.members()["m"].subscribed_regex, None);
    // pay-eu is to be revoked; once acknowledged only orders remain.
    let kept = b.assignment.expect("revocation");
    assert_eq!(topics(&kept), [2].into());
    let c = g.heartbeat(beat("m", b.member_epoch, &kept), &md, 0).expect("acknowledge");
    assert_eq!(c.member_epoch, g.group_epoch());
}

#[test]
fn a_bad_regex_is_refused_and_changes_nothing() {
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let md = meta(&[("t", 1, 1)]);
    let e = g.heartbeat(join_regex("m", "pay-(.*"), &md, 0).expect_err("unclosed group");
    assert!(matches!(e, ConsumerGroupError::InvalidRegularExpression { ref pattern, .. } if pattern == "pay-(.*"));
    assert!(g.members().is_empty());
    assert_eq!(g.group_epoch(), 0);
    let none = Heartbeat { subscribed_topic_regex: Some(String::new()), ..join_regex("m", "") };
    let e = g.heartbeat(none, &md, 0).expect_err("neither names nor a regex");
    assert!(e.to_string().contains("SubscribedTopicNames or SubscribedTopicRegex"), "{e}");
}
