//! Classic ↔ consumer group migration tests: the ConsumerProtocol codecs,
//! the upgrade and downgrade rules and their refusals, and classic members
//! of a consumer group moving partitions with consumer-protocol members
//! without a partition ever having two owners. Plain calls, explicit times.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tokio::time::Instant;
use uuid::Uuid;

use super::classic;
use super::group::MemberState;
use super::*;
use crate::group::codec::{GroupMetadataValue, MemberMetadata};
use crate::group::member::Protocol;
use crate::group::state::{Group, JoinRequest, LeavingMember, SyncRequest};
use crate::group::{GroupConfig, GroupError, Time};

const T: u128 = 7;
const PARTITIONS: i32 = 6;

fn md() -> BTreeMap<String, TopicMeta> {
    [("t".to_string(), TopicMeta { id: Uuid::from_u128(T), partitions: PARTITIONS })].into()
}

/// The broker's topics among `names`, as the JoinGroup handler looks them up.
fn lookup(names: &BTreeSet<String>) -> BTreeMap<String, TopicMeta> {
    md().into_iter().filter(|(n, _)| names.contains(n)).collect()
}

fn now() -> Time {
    Time { now: Instant::now(), wall_ms: 1_000 }
}

/// A ConsumerProtocolSubscription v1 of topic `t` owning `owned`.
fn subscription(owned: &[i32]) -> Bytes {
    let mut b = vec![0, 1, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
    if owned.is_empty() {
        b.extend_from_slice(&0i32.to_be_bytes());
    } else {
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&[0, 1, b't']);
        b.extend_from_slice(&(owned.len() as i32).to_be_bytes());
        for p in owned {
            b.extend_from_slice(&p.to_be_bytes());
        }
    }
    Bytes::from(b)
}

fn assignment(ps: &[i32]) -> Bytes {
    classic::encode_assignment(1, &[("t".to_string(), ps.to_vec())])
}

/// A Stable classic group at generation 5: member "c<i>" owns `owned[i]` of topic `t`.
fn classic_group(protocol_type: &str, owned: &[&[i32]]) -> Group {
    let value = GroupMetadataValue {
        protocol_type: protocol_type.to_string(),
        generation: 5,
        protocol: Some("range".into()),
        leader: Some("c0".into()),
        current_state_timestamp: 0,
        members: owned
            .iter()
            .enumerate()
            .map(|(i, ps)| MemberMetadata {
                member_id: format!("c{i}"),
                group_instance_id: None,
                client_id: "app".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 60_000,
                session_timeout: 10_000,
                subscription: subscription(&[]),
                assignment: assignment(ps),
            })
            .collect(),
    };
    Group::from_record("g", value, GroupConfig::default(), now())
}

fn join_req(member_id: &str, owned: &[i32]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "app".into(),
        client_host: "/127.0.0.1".into(),
        protocol_type: "consumer".into(),
        protocols: vec![Protocol { name: "range".into(), metadata: subscription(owned) }],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 60_000,
        require_known_member_id: true,
        supports_skip_assignment: false,
        reason: None,
    }
}

fn sync_req(member_id: &str, generation_id: i32) -> SyncRequest {
    SyncRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: vec![],
    }
}

fn consumer_join(member: &str) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 60_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(vec![]),
        ..Heartbeat::default()
    }
}

fn consumer_beat(member: &str, epoch: i32, owned: &BTreeSet<i32>) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(vec![(Uuid::from_u128(T), owned.iter().copied().collect())]),
        ..Heartbeat::default()
    }
}

fn parts(a: &Assignment) -> BTreeSet<i32> {
    a.get(&Uuid::from_u128(T)).cloned().unwrap_or_default()
}

/// Every partition is held (assigned or pending revocation) by at most one member.
fn assert_single_owner(g: &ConsumerGroup) {
    let mut seen = BTreeMap::new();
    for m in g.members().values() {
        for p in parts(&m.assigned).into_iter().chain(parts(&m.pending_revocation)) {
            if let Some(other) = seen.insert(p, m.member_id.clone()) {
                panic!("partition {p} held by {other} and {}", m.member_id);
            }
        }
    }
}

/// The partitions a SyncGroup answer assigns.
fn synced(r: &crate::group::member::SyncResult) -> BTreeSet<i32> {
    assert_eq!(r.error, None, "{r:?}");
    classic::decode_assignment(&r.assignment).expect("assignment").into_iter().flat_map(|(_, ps)| ps).collect()
}

#[test]
fn subscriptions_of_every_version_decode_and_malformed_ones_are_refused_without_panicking() {
    let s = classic::decode_subscription(&subscription(&[2, 4])).expect("v1");
    assert_eq!((s.version, s.topics, s.owned), (1, vec!["t".to_string()], vec![("t".to_string(), vec![2, 4])]));
    // v0: topics and user data only.
    let v0 = classic::decode_subscription(&[0, 0, 0, 0, 0, 1, 0, 1, b'x', 0, 0, 0, 2, 9, 9]).expect("v0");
    assert_eq!((v0.topics, v0.owned), (vec!["x".to_string()], vec![]));
    // v3 with a generation and a rack; a later version reads as v3.
    let mut v3 = subscription(&[]).to_vec();
    v3[1] = 7;
    v3.extend_from_slice(&[0, 0, 0, 9, 0, 2, b'r', b'1']);
    assert_eq!(classic::decode_subscription(&v3).expect("v7").rack_id.as_deref(), Some("r1"));
    // A topic count far beyond the bytes, a truncated string, a negative version.
    let huge = [0, 0, 0x7f, 0xff, 0xff, 0xff];
    let err = classic::decode_subscription(&huge).unwrap_err();
    assert!(err.contains("ConsumerProtocolSubscription") && err.contains("Topics"), "{err}");
    assert!(classic::decode_subscription(&[0, 0, 0, 0, 0, 1, 0, 9, b'x']).is_err());
    assert!(classic::decode_subscription(&[0xff, 0xff]).unwrap_err().contains("negative"));
    assert!(classic::decode_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_err());
    let encoded = classic::encode_assignment(9, &[("t".into(), vec![1, 3])]);
    assert_eq!(&encoded[..2], &[0, 3], "versions past 3 are written as 3");
    assert_eq!(classic::decode_assignment(&encoded), Ok(vec![("t".to_string(), vec![1, 3])]));
}

#[test]
fn the_policy_and_the_group_decide_whether_a_classic_group_can_be_upgraded() {
    let config = ConsumerGroupConfig::default();
    let g = classic_group("consumer", &[&[0, 1, 2], &[3, 4, 5]]);
    assert_eq!(classic::upgrade_refusal(&g, &config), None);
    for policy in [MigrationPolicy::Disabled, MigrationPolicy::Downgrade] {
        let why = classic::upgrade_refusal(&g, &ConsumerGroupConfig { migration: policy, ..config }).expect("refused");
        assert!(why.contains("group.consumer.migration.policy"), "{why}");
    }
    assert!(
        classic::upgrade_refusal(&g, &ConsumerGroupConfig { migration: MigrationPolicy::Upgrade, ..config }).is_none()
    );
    let connect = classic_group("connect", &[&[0]]);
    assert!(classic::upgrade_refusal(&connect, &config).expect("refused").contains("\"connect\""));
    let small = ConsumerGroupConfig { max_size: 2, ..config };
    // Two members and the joining one exceed 2 (Kafka's validateOnlineUpgrade).
    assert!(classic::upgrade_refusal(&g, &small).expect("refused").contains("group.consumer.max.size"));
    assert_eq!(classic::upgrade_refusal(&g, &ConsumerGroupConfig { max_size: 3, ..config }), None);
    assert_eq!(MigrationPolicy::parse("UPGRADE"), Some(MigrationPolicy::Upgrade));
    assert_eq!(MigrationPolicy::parse("sideways"), None);
}

#[test]
fn a_classic_group_with_a_malformed_assignment_is_not_converted() {
    let mut g = classic_group("consumer", &[&[0]]);
    let mut value = g.metadata_value(&Default::default());
    value.members[0].assignment = Bytes::from_static(&[0, 0, 0x7f, 0, 0, 0]);
    g = Group::from_record("g", value, GroupConfig::default(), now());
    let err = ConsumerGroup::from_classic(&g, ConsumerGroupConfig::default(), &md(), 0).unwrap_err();
    assert!(err.contains("member c0") && err.contains("assignment"), "{err}");
}

/// The online upgrade, step by step: the classic members keep what they own
/// until they give it up by rejoining; the consumer-protocol member gets a
/// partition only once it is free; at no step does a partition have two owners.
#[test]
fn online_upgrade_moves_partitions_from_classic_members_only_after_they_rejoin() {
    let classic = classic_group("consumer", &[&[0, 1, 2], &[3, 4, 5]]);
    let mut g = ConsumerGroup::from_classic(&classic, ConsumerGroupConfig::default(), &md(), 0).expect("convert");
    assert_eq!((g.group_epoch(), g.assignment_epoch()), (5, 5));
    assert_eq!(parts(&g.members()["c0"].assigned), BTreeSet::from([0, 1, 2]));
    assert_eq!(g.owner_of(Uuid::from_u128(T), 4), Some("c1"));
    assert!(g.members()["c1"].classic.is_some());
    // The classic members are in step until something changes.
    assert_eq!(g.classic_heartbeat("c0", None, 5, 1), Ok(()));

    // A consumer-protocol member joins: a new epoch, but everything is still owned.
    let a = g.heartbeat(consumer_join("k"), &md(), 10).expect("join");
    assert_eq!(g.group_epoch(), 6);
    assert_eq!(a.assignment.as_ref().map(parts), Some(BTreeSet::new()), "nothing is free yet");
    assert_single_owner(&g);
    let k_target = parts(g.target_of("k").expect("k has a target"));
    assert_eq!(k_target.len(), 2, "uniform: 2 of 6 for each of 3 members");

    // Classic members are told to rejoin; a stale SyncGroup is refused.
    assert_eq!(g.classic_heartbeat("c0", None, 5, 20), Err(GroupError::RebalanceInProgress));
    assert_eq!(g.classic_sync(&sync_req("c0", 5), 20).error, Some(GroupError::RebalanceInProgress));
    assert_eq!(g.classic_heartbeat("c0", None, 4, 20), Err(GroupError::IllegalGeneration));

    for c in ["c0", "c1"] {
        // An eager member revoked everything before rejoining (owned = []);
        // the server still counted them as its until this JoinGroup.
        let mut gen_and_owned = (0, BTreeSet::new());
        for round in 0..3 {
            let r =
                g.classic_join(&join_req(c, &gen_and_owned.1.iter().copied().collect::<Vec<_>>()), Some(&lookup), 30);
            assert_eq!(r.error, None, "{c} round {round}: {r:?}");
            assert_eq!(r.leader, "", "the server assigns: no leader");
            assert_eq!(r.protocol_name.as_deref(), Some("range"));
            let owned = synced(&g.classic_sync(&sync_req(c, r.generation_id), 31));
            gen_and_owned = (r.generation_id, owned);
            assert_single_owner(&g);
            if g.classic_heartbeat(c, None, r.generation_id, 32).is_ok() {
                break;
            }
        }
        assert_eq!(gen_and_owned.0, 6, "{c} caught up with the group epoch");
        assert_eq!(gen_and_owned.1, parts(g.target_of(c).expect("target")), "{c} owns its target");
        assert_eq!(g.members()[c].state, MemberState::Stable);
    }
    // The consumer member now gets what the classic members released.
    let a = g.heartbeat(consumer_beat("k", 6, &BTreeSet::new()), &md(), 40).expect("heartbeat");
    assert_eq!(a.assignment.as_ref().map(parts), Some(k_target));
    assert_single_owner(&g);
    let all: BTreeSet<i32> = g.members().values().flat_map(|m| parts(&m.assigned)).collect();
    assert_eq!(all, (0..PARTITIONS).collect());
    // A classic member's offset commits use its generation; classic leaves leave.
    assert_eq!(g.classic_leave(&[leaving("c1")]), vec![Ok(())]);
    assert_eq!(g.classic_leave(&[leaving("k")]), vec![Err(GroupError::UnknownMemberId)], "k is not classic");
    assert!(!g.members().contains_key("c1"));
}

fn leaving(member_id: &str) -> LeavingMember {
    LeavingMember { member_id: member_id.into(), group_instance_id: None, reason: None }
}

#[test]
fn classic_joins_to_a_consumer_group_follow_kafkas_rules() {
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig { max_size: 2, ..ConsumerGroupConfig::default() });
    g.heartbeat(consumer_join("k"), &md(), 0).expect("join");
    // A first join gets a member id to rejoin with.
    let first = g.classic_join(&join_req("", &[]), Some(&lookup), 1);
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    assert!(Uuid::parse_str(&first.member_id).is_ok(), "a bare UUID: {}", first.member_id);
    assert_eq!(g.members().len(), 1, "not a member until it rejoins");
    let mut wrong = join_req(&first.member_id, &[]);
    wrong.protocol_type = "connect".into();
    assert_eq!(g.classic_join(&wrong, Some(&lookup), 2).error, Some(GroupError::InconsistentGroupProtocol));
    let mut garbage = join_req(&first.member_id, &[]);
    garbage.protocols[0].metadata = Bytes::from_static(&[0, 0, 0x7f]);
    assert_eq!(g.classic_join(&garbage, Some(&lookup), 2).error, Some(GroupError::InconsistentGroupProtocol));
    let joined = g.classic_join(&join_req(&first.member_id, &[]), Some(&lookup), 3);
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation_id, g.group_epoch());
    assert_eq!(
        g.classic_join(&join_req("k", &[]), Some(&lookup), 3).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    // group.consumer.max.size counts classic members too.
    assert_eq!(g.classic_join(&join_req("third", &[]), Some(&lookup), 4).error, Some(GroupError::GroupMaxSizeReached));
    // SyncGroup checks the member, the generation and the protocol.
    assert_eq!(g.classic_sync(&sync_req("nobody", 1), 5).error, Some(GroupError::UnknownMemberId));
    assert_eq!(g.classic_sync(&sync_req("k", 1), 5).error, Some(GroupError::UnknownMemberId), "k is not classic");
    let mut other = sync_req(&first.member_id, joined.generation_id);
    other.protocol_name = Some("roundrobin".into());
    assert_eq!(g.classic_sync(&other, 5).error, Some(GroupError::InconsistentGroupProtocol));
    assert_eq!(g.classic_sync(&sync_req(&first.member_id, 99), 5).error, Some(GroupError::IllegalGeneration));
    // A silent classic member expires after its own session timeout (10 s).
    assert_eq!(g.expire(3 + 9_999), Vec::<String>::new());
    assert_eq!(g.expire(3 + 10_000), vec![first.member_id.clone()]);
}

#[test]
fn a_group_left_with_only_classic_members_downgrades_when_the_policy_allows() {
    let classic = classic_group("consumer", &[&[0, 1, 2], &[3, 4, 5]]);
    let mut g = ConsumerGroup::from_classic(&classic, ConsumerGroupConfig::default(), &md(), 0).expect("convert");
    g.heartbeat(consumer_join("k"), &md(), 1).expect("join");
    assert!(!g.can_downgrade(100), "a consumer-protocol member is still there");
    assert!(g.downgrade_record(100, 0).is_none());
    g.heartbeat(Heartbeat { member_epoch: -1, ..consumer_join("k") }, &md(), 2).expect("leave");
    assert!(g.can_downgrade(100));
    assert!(!g.can_downgrade(1), "group.max.size 1 < 2 members");
    let record = g.downgrade_record(100, 7).expect("downgrade");
    assert_eq!((record.generation, record.protocol.as_deref(), record.members.len()), (5, Some("range"), 2));
    let owned: Vec<Vec<(String, Vec<i32>)>> =
        record.members.iter().map(|m| classic::decode_assignment(&m.assignment).expect("assignment")).collect();
    assert_eq!(owned, vec![vec![("t".to_string(), vec![0, 1, 2])], vec![("t".to_string(), vec![3, 4, 5])]]);
    // The classic group built from it rebalances at the members' generation.
    let mut back = Group::from_record("g", record, GroupConfig::default(), now());
    back.request_rebalance("downgrade", now());
    assert_eq!(back.heartbeat("c0", None, 5, now()), Err(GroupError::RebalanceInProgress));
    for policy in [MigrationPolicy::Upgrade, MigrationPolicy::Disabled] {
        let mut g2 = g.clone();
        g2.config.migration = policy;
        assert!(g2.downgrade_record(100, 0).is_none(), "{policy:?}");
    }
    let empty = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    assert!(!empty.can_downgrade(100), "an empty group converts offline, not here");
}

/// Static members across protocols (Kafka's rules): a classic JoinGroup
/// with a held `group.instance.id` replaces the holder, keeping its
/// partitions (no partition moves, the old id is fenced); a consumer-protocol
/// join replaces a classic holder at once.
#[test]
fn static_members_are_replaced_across_protocols_without_moving_partitions() {
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let static_join = |id: &str| Heartbeat { instance_id: Some("i-1".into()), ..consumer_join(id) };
    g.heartbeat(static_join("k1"), &md(), 0).expect("join");
    let held = parts(&g.members()["k1"].assigned);
    assert_eq!(held, (0..PARTITIONS).collect());
    // The application restarts with the classic protocol under the same instance id.
    let mut req = join_req("", &[]);
    req.group_instance_id = Some("i-1".into());
    let r = g.classic_join(&req, Some(&lookup), 1);
    assert_eq!(r.error, None, "{r:?}");
    let c_new = r.member_id.as_str();
    assert!(!g.members().contains_key("k1"));
    assert_eq!(parts(&g.members()[c_new].assigned), held, "it took over the partitions it had");
    assert_single_owner(&g);
    let mut sync = sync_req(c_new, r.generation_id);
    sync.group_instance_id = Some("i-1".into());
    assert_eq!(synced(&g.classic_sync(&sync, 2)), held);
    // The old incarnation is fenced; an unknown one is unknown.
    assert_eq!(g.classic_heartbeat("k1", Some("i-1"), r.generation_id, 3), Err(GroupError::FencedInstanceId));
    assert_eq!(g.classic_heartbeat("nobody", None, r.generation_id, 3), Err(GroupError::UnknownMemberId));
    // Back to the consumer protocol: the classic holder is replaced at once.
    let a = g.heartbeat(static_join("k2"), &md(), 4).expect("consumer rejoin replaces the classic holder");
    assert!(!g.members().contains_key(c_new));
    assert!(g.members()["k2"].classic.is_none());
    assert_eq!(a.assignment.as_ref().map(parts), Some(held));
    assert_single_owner(&g);
}

/// A classic JoinGroup naming a member id can never replace another
/// member's instance: only an empty member id replaces the holder (Kafka's
/// FENCED_INSTANCE_ID), so no client deletes a victim still consuming.
#[test]
fn a_known_member_id_cannot_take_over_another_members_instance() {
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    g.heartbeat(Heartbeat { instance_id: Some("i-1".into()), ..consumer_join("k1") }, &md(), 0).expect("join");
    let held = parts(&g.members()["k1"].assigned);
    assert_eq!(g.classic_join(&join_req("c1", &[]), Some(&lookup), 1).error, None);
    for id in ["c1", "stranger"] {
        let mut req = join_req(id, &[]);
        req.group_instance_id = Some("i-1".into());
        assert_eq!(g.classic_join(&req, Some(&lookup), 2).error, Some(GroupError::FencedInstanceId), "{id}");
    }
    assert!(g.members().contains_key("k1") && g.members().contains_key("c1"));
    assert_eq!(g.static_member("i-1").map(|m| m.member_id.as_str()), Some("k1"));
    assert_eq!(parts(&g.members()["k1"].assigned), held, "the holder keeps its partitions");
    // A known member id with an instance id nobody holds is unknown (Kafka's throwIfStaticMemberIsUnknown).
    let mut req = join_req("c1", &[]);
    req.group_instance_id = Some("i-2".into());
    assert_eq!(g.classic_join(&req, Some(&lookup), 3).error, Some(GroupError::UnknownMemberId));
    assert_single_owner(&g);
}

/// Static classic joiners are not asked for a known member id, every
/// generated id is a bare UUID whatever the client.id, and a rejoin without
/// an instance id keeps the member's.
#[test]
fn static_classic_joiners_get_a_bounded_id_at_once_and_keep_their_instance() {
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let mut req = join_req("", &[]);
    req.client_id = "x".repeat(300);
    req.group_instance_id = Some("i-1".into());
    let r = g.classic_join(&req, Some(&lookup), 0);
    assert_eq!(r.error, None, "no MEMBER_ID_REQUIRED with an instance id");
    assert_eq!(r.member_id.len(), 36, "{}", r.member_id);
    assert!(g.members().contains_key(&r.member_id));
    let mut dynamic = join_req("", &[]);
    dynamic.client_id = "y".repeat(300);
    let d = g.classic_join(&dynamic, Some(&lookup), 1);
    assert_eq!(d.error, Some(GroupError::MemberIdRequired));
    assert!(Uuid::parse_str(&d.member_id).is_ok(), "{}", d.member_id);
    // The static member rejoins with its id but no instance id: the instance stays its own.
    assert_eq!(g.classic_join(&join_req(&r.member_id, &[]), Some(&lookup), 2).error, None);
    assert_eq!(g.static_member("i-1").map(|m| m.member_id.clone()), Some(r.member_id));
}

/// A ConsumerProtocolSubscription v0 of topic `t` (different bytes from [`subscription`]).
fn subscription_v0() -> Bytes {
    Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff])
}

/// Classic protocols across members (Kafka's supportsClassicProtocols and
/// ClassicGroup.selectProtocol): a joiner must share a protocol with every
/// classic member, and the downgrade picks a protocol all support, writing
/// each member's own metadata for it.
#[test]
fn classic_members_must_share_a_protocol_and_the_downgrade_picks_a_common_one() {
    let mut g = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let mut a = join_req("a", &[]);
    a.protocols.insert(0, Protocol { name: "roundrobin".into(), metadata: subscription_v0() });
    assert_eq!(g.classic_join(&a, Some(&lookup), 0).error, None);
    assert_eq!(g.classic_join(&join_req("b", &[]), Some(&lookup), 1).error, None, "shares range with a");
    let mut sticky = join_req("c", &[]);
    sticky.protocols[0].name = "sticky".into();
    assert_eq!(g.classic_join(&sticky, Some(&lookup), 2).error, Some(GroupError::InconsistentGroupProtocol));
    assert!(!g.members().contains_key("c"));
    let record = g.downgrade_record(100, 0).expect("downgrade");
    assert_eq!(record.protocol.as_deref(), Some("range"), "the only protocol every member supports");
    for m in &record.members {
        assert_eq!(m.subscription, subscription(&[]), "{}: its range metadata", m.member_id);
    }
}
