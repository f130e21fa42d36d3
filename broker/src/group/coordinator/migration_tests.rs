//! The coordinator shell routing a group through Kafka 4's online
//! migration: a classic group upgraded by a consumer-protocol member, its
//! classic members answered by the consumer group, the downgrade when the
//! last consumer-protocol member leaves, and the policy's refusal.

use std::collections::BTreeMap;
use std::time::Duration;

use uuid::Uuid;

use super::consumer::HeartbeatError;
use super::*;
use crate::group::consumer::classic::{decode_assignment, encode_assignment};
use crate::group::consumer::{Heartbeat, MigrationPolicy, TopicMeta};
use crate::group::state::GroupState;
use crate::group::store::MemoryOffsetsLog;

const PARTITIONS: usize = 4;

fn config(policy: MigrationPolicy) -> GroupConfig {
    let mut c = GroupConfig {
        initial_rebalance_delay_ms: 50,
        min_session_timeout_ms: 10,
        offsets_topic_partitions: PARTITIONS as i32,
        ..GroupConfig::default()
    };
    c.consumer.migration = policy;
    c
}

fn started(policy: MigrationPolicy) -> Arc<GroupCoordinator> {
    started_on(&Arc::new(MemoryOffsetsLog::default()), policy)
}

fn started_on(store: &Arc<MemoryOffsetsLog>, policy: MigrationPolicy) -> Arc<GroupCoordinator> {
    let c = GroupCoordinator::new(config(policy));
    c.attach(store.clone(), PARTITIONS);
    c.load_all();
    c
}

fn md() -> BTreeMap<String, TopicMeta> {
    [("orders".to_string(), TopicMeta { id: Uuid::from_u128(9), partitions: 4 })].into()
}

/// The broker's topics among `names`, as the JoinGroup handler looks them up.
fn lookup(names: &std::collections::BTreeSet<String>) -> BTreeMap<String, TopicMeta> {
    md().into_iter().filter(|(n, _)| names.contains(n)).collect()
}

/// A classic JoinGroup of `member_id` for `orders` (session 30 s).
fn join_req(member_id: &str) -> JoinRequest {
    super::tests::join_req(member_id, 30_000)
}

fn sync_req(member_id: &str, generation_id: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.unwrap_or_else(|_| panic!("{what} timed out"))
}

/// A Stable classic group of two whose leader assigned partitions 0-1 and 2-3 of `orders`.
async fn classic_pair(c: &Arc<GroupCoordinator>) -> (Vec<String>, i32) {
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let first = c.join_group("g", join_req("")).await;
            assert_eq!(first.error, Some(GroupError::MemberIdRequired));
            c.join_group("g", join_req(&first.member_id)).await
        }));
    }
    let mut joined = Vec::new();
    for t in tasks {
        joined.push(within("join", t).await.expect("join task"));
    }
    let generation = joined[0].generation_id;
    let leader = joined[0].leader.clone();
    let mut ids: Vec<String> = joined.iter().map(|r| r.member_id.clone()).collect();
    ids.sort_by_key(|id| *id != leader);
    let plan: Vec<(String, Bytes)> = ids
        .iter()
        .zip([[0, 1], [2, 3]])
        .map(|(id, ps)| (id.clone(), encode_assignment(0, &[("orders".into(), ps.to_vec())])))
        .collect();
    let follower = {
        let (c, id) = (c.clone(), ids[1].clone());
        tokio::spawn(async move { c.sync_group("g", sync_req(&id, generation, vec![])).await })
    };
    assert_eq!(within("leader sync", c.sync_group("g", sync_req(&ids[0], generation, plan))).await.error, None);
    assert_eq!(within("follower sync", follower).await.expect("sync task").error, None);
    (ids, generation)
}

fn consumer_join(member: &str) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 5000,
        subscribed_topic_names: Some(vec!["orders".into()]),
        owned: Some(vec![]),
        ..Heartbeat::default()
    }
}

#[tokio::test]
async fn a_live_classic_group_is_upgraded_by_a_consumer_member_and_downgraded_when_it_leaves() {
    let c = started(MigrationPolicy::Bidirectional);
    let (ids, generation) = classic_pair(&c).await;
    let joined = c.consumer_group_heartbeat("g", consumer_join("k"), &md(), &|_| true).expect("upgrade");
    assert_eq!(joined.assignment.map(|a| a.len()), Some(0), "every partition is still owned by a classic member");
    let described = c.describe_consumer_group("g").expect("a consumer group").expect("exists");
    assert_eq!(described.members.len(), 3);
    assert!(c.describe_group("g").expect("served").is_none(), "no longer a classic group");
    // The classic members are answered by the consumer group: rejoin, then sync.
    assert_eq!(c.heartbeat("g", &ids[0], None, generation), Err(GroupError::RebalanceInProgress));
    let rejoined = within("classic rejoin", c.join_group_with("g", join_req(&ids[0]), Some(&lookup))).await;
    assert_eq!((rejoined.error.as_ref(), rejoined.leader.as_str()), (None, ""));
    let synced = within("classic sync", c.sync_group("g", sync_req(&ids[0], rejoined.generation_id, vec![]))).await;
    assert_eq!(synced.error, None);
    let owned: Vec<i32> = decode_assignment(&synced.assignment)
        .expect("a ConsumerProtocolAssignment")
        .into_iter()
        .flat_map(|(_, ps)| ps)
        .collect();
    // It keeps what it had and its target still holds; the rest is being revoked, not yet given to k.
    let described = c.describe_consumer_group("g").expect("a consumer group").expect("exists");
    let target_of = |id: &str| -> Vec<i32> {
        let m = described.members.iter().find(|m| m.member.member_id == id).expect("member");
        m.target.values().flat_map(|ps| ps.iter().copied()).collect()
    };
    let kept: Vec<i32> = [0, 1].into_iter().filter(|p| target_of(&ids[0]).contains(p)).collect();
    assert_eq!(owned, kept);
    let k_target = target_of("k");
    assert!(!k_target.is_empty(), "uniform gives k some of the 4 partitions");
    assert!(k_target.iter().all(|p| !owned.contains(p)), "k's target {k_target:?} vs {owned:?}");
    let k = described.members.iter().find(|m| m.member.member_id == "k").expect("k");
    assert!(k.member.assigned.is_empty(), "k gets nothing before the classic members release it");

    // The consumer-protocol member leaves: only classic members remain, so the group is classic again,
    // at the members' newest epoch as its generation.
    let epochs: Vec<i32> = ids
        .iter()
        .map(|id| described.members.iter().find(|m| m.member.member_id == *id).expect("member").member.member_epoch)
        .collect();
    let newest = *epochs.iter().max().expect("two members");
    let leave = Heartbeat { member_epoch: -1, ..consumer_join("k") };
    c.consumer_group_heartbeat("g", leave, &md(), &|_| true).expect("leave");
    assert!(matches!(c.describe_consumer_group("g"), Err(GroupError::WrongGroupType { .. })));
    let classic = c.describe_group("g").expect("served").expect("a classic group");
    assert_eq!((classic.state, classic.members.len()), (GroupState::PreparingRebalance, 2));
    for (id, epoch) in ids.iter().zip(epochs) {
        // A member at the newest epoch is told to rejoin; one behind it, that its generation is gone (as Kafka).
        let expected = if epoch == newest { GroupError::RebalanceInProgress } else { GroupError::IllegalGeneration };
        assert_eq!(c.heartbeat("g", id, None, epoch), Err(expected), "{id} at epoch {epoch}");
    }
    assert!(newest >= generation);
}

#[tokio::test]
async fn the_migration_policy_and_non_consumer_groups_refuse_the_online_upgrade() {
    for policy in [MigrationPolicy::Disabled, MigrationPolicy::Downgrade] {
        let c = started(policy);
        let (ids, generation) = classic_pair(&c).await;
        let refused = c.consumer_group_heartbeat("g", consumer_join("k"), &md(), &|_| true);
        assert!(
            matches!(refused, Err(HeartbeatError::Group(GroupError::WrongGroupType { .. }))),
            "{policy:?}: {refused:?}"
        );
        assert_eq!(c.heartbeat("g", &ids[0], None, generation), Ok(()), "{policy:?}: the classic group is untouched");
    }
    // A classic group whose assignments are not ConsumerProtocol bytes cannot be converted.
    let c = started(MigrationPolicy::Bidirectional);
    let (ids, generation) = classic_pair(&c).await;
    let first = within("rejoin", c.join_group("g", join_req(&ids[0])));
    let second = within("rejoin", c.join_group("g", join_req(&ids[1])));
    let (a, b) = tokio::join!(first, second);
    assert_eq!((a.error, b.error), (None, None));
    let leader = if a.leader == ids[0] { &ids[0] } else { &ids[1] };
    let other = if leader == &ids[0] { &ids[1] } else { &ids[0] };
    let garbage = vec![(ids[0].clone(), Bytes::from_static(b"\x00\x00\x7f")), (ids[1].clone(), Bytes::new())];
    let follower = {
        let (c, id, g) = (c.clone(), other.clone(), a.generation_id);
        tokio::spawn(async move { c.sync_group("g", sync_req(&id, g, vec![])).await })
    };
    assert_eq!(c.sync_group("g", sync_req(leader, a.generation_id, garbage)).await.error, None);
    within("follower", follower).await.expect("sync task");
    assert!(a.generation_id > generation);
    let refused = c.consumer_group_heartbeat("g", consumer_join("k"), &md(), &|_| true);
    assert!(matches!(refused, Err(HeartbeatError::Group(GroupError::WrongGroupType { .. }))), "{refused:?}");
}

/// After an online upgrade the log no longer holds the classic members: a
/// coordinator loading it finds an empty classic group (its members, whose
/// consumer-group membership is not persisted, rejoin and convert it offline).
#[tokio::test]
async fn an_upgraded_group_reloads_without_its_classic_members() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started_on(&store, MigrationPolicy::Bidirectional);
    classic_pair(&c).await;
    c.consumer_group_heartbeat("g", consumer_join("k"), &md(), &|_| true).expect("upgrade");
    let flushed = started_on(&store, MigrationPolicy::Bidirectional);
    let reloaded = async {
        loop {
            match flushed.describe_group("g") {
                Ok(Some(d)) if d.members.is_empty() => return d,
                _ => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    flushed.load_all();
                }
            }
        }
    };
    let d = within("the upgraded group's record", reloaded).await;
    assert_eq!(d.state, GroupState::Empty);
}

/// A consumer-protocol joiner the converted group would refuse (here an
/// unknown server assignor) upgrades nothing: the classic group, its
/// members and their generation stay as they were.
#[tokio::test]
async fn a_refused_joiner_leaves_the_classic_group_as_it_was() {
    let c = started(MigrationPolicy::Bidirectional);
    let (ids, generation) = classic_pair(&c).await;
    let bad = Heartbeat { server_assignor: Some("no-such-assignor".into()), ..consumer_join("k") };
    let refused = c.consumer_group_heartbeat("g", bad, &md(), &|_| true);
    assert!(matches!(refused, Err(HeartbeatError::Consumer(_))), "{refused:?}");
    assert!(matches!(c.describe_consumer_group("g"), Err(GroupError::WrongGroupType { .. })), "still classic");
    let classic = c.describe_group("g").expect("served").expect("a classic group");
    assert_eq!((classic.state, classic.members.len()), (GroupState::Stable, 2));
    for id in &ids {
        assert_eq!(c.heartbeat("g", id, None, generation), Ok(()), "{id} is untouched");
    }
}

/// The downgrade writes the classic group back to the log: a coordinator
/// loading it after a failover finds the classic members, not the empty
/// group the upgrade recorded.
#[tokio::test]
async fn a_downgraded_group_reloads_with_its_classic_members() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started_on(&store, MigrationPolicy::Bidirectional);
    let (ids, _) = classic_pair(&c).await;
    c.consumer_group_heartbeat("g", consumer_join("k"), &md(), &|_| true).expect("upgrade");
    let flushed = started_on(&store, MigrationPolicy::Bidirectional);
    let reload_until = |members: fn(usize) -> bool| {
        let flushed = flushed.clone();
        async move {
            loop {
                flushed.load_all();
                match flushed.describe_group("g") {
                    Ok(Some(d)) if members(d.members.len()) => return d,
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    };
    // The upgrade's record (no members) is in the log first.
    within("the upgraded group's record", reload_until(|n| n == 0)).await;
    let leave = Heartbeat { member_epoch: -1, ..consumer_join("k") };
    c.consumer_group_heartbeat("g", leave, &md(), &|_| true).expect("leave");
    assert_eq!(c.describe_group("g").expect("served").expect("classic again").members.len(), 2);
    let d = within("the downgraded group's record", reload_until(|n| n > 0)).await;
    let mut reloaded_ids: Vec<String> = d.members.iter().map(|m| m.member_id.clone()).collect();
    let mut expected = ids.clone();
    reloaded_ids.sort();
    expected.sort();
    assert_eq!(reloaded_ids, expected);
}

/// A JoinGroup looks topics up only for a consumer group, and only the
/// names the group subscribes to: a plain classic group never pays for the
/// broker's whole topic list.
#[tokio::test]
async fn joins_look_up_only_the_topics_a_consumer_group_needs() {
    use std::sync::Mutex as StdMutex;
    let c = started(MigrationPolicy::Bidirectional);
    let asked: StdMutex<Vec<Vec<String>>> = StdMutex::new(Vec::new());
    let counting = |names: &std::collections::BTreeSet<String>| {
        asked.lock().expect("lock").push(names.iter().cloned().collect());
        lookup(names)
    };
    let (ids, _) = classic_pair(&c).await;
    let again = within("classic rejoin", c.join_group_with("g", join_req(&ids[0]), Some(&counting)));
    let other = within("classic rejoin", c.join_group_with("g", join_req(&ids[1]), Some(&counting)));
    let (a, b) = tokio::join!(again, other);
    assert_eq!((a.error, b.error), (None, None));
    assert!(asked.lock().expect("lock").is_empty(), "a classic group looks nothing up");
    c.consumer_group_heartbeat("g", consumer_join("k"), &md(), &|_| true).expect("upgrade");
    let rejoined = within("classic rejoin", c.join_group_with("g", join_req(&ids[0]), Some(&counting))).await;
    assert_eq!(rejoined.error, None);
    assert_eq!(*asked.lock().expect("lock"), vec![vec!["orders".to_string()]], "only the subscribed topic");
}
