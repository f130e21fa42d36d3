//! Coordinator tests over an in-memory `__consumer_offsets`, and one over the
//! broker's real log. Timeouts are short and real; waits poll a condition
//! with a deadline.

use std::future::Future;
use std::time::Duration;

use super::*;
use crate::group::member::Protocol;
use crate::group::store::MemoryOffsetsLog;

const PARTITIONS: usize = 4;

fn fast() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 200,
        min_session_timeout_ms: 10,
        offsets_topic_partitions: PARTITIONS as i32,
        ..GroupConfig::default()
    }
}

fn started(store: &Arc<MemoryOffsetsLog>, config: GroupConfig) -> Arc<GroupCoordinator> {
    let c = GroupCoordinator::new(config);
    c.attach(store.clone(), PARTITIONS);
    c.load_all();
    c
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

/// A classic JoinGroup of `member_id` subscribing to `orders` with the range assignor.
pub(super) fn join_req(member_id: &str, session_timeout_ms: i32) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: String::new(),
        protocol_type: "consumer".into(),
        protocols: vec![Protocol { name: "range".into(), metadata: subscription(&["orders"]) }],
        session_timeout_ms,
        rebalance_timeout_ms: 5000,
        require_known_member_id: true,
        supports_skip_assignment: false,
        reason: None,
    }
}

fn simple_commit(topic: &str, partitions: &[(i32, i64)]) -> OffsetCommit {
    OffsetCommit {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        retention_time_ms: None,
        topics: vec![(
            topic.to_string(),
            partitions
                .iter()
                .map(|(p, o)| PartitionCommit {
                    partition: *p,
                    offset: *o,
                    leader_epoch: 5,
                    metadata: Some(format!("m{o}")),
                })
                .collect(),
        )],
    }
}

fn fetched(c: &GroupCoordinator, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let topics = c.fetch_offsets(group, Some(vec![(topic.to_string(), vec![partition])])).unwrap();
    topics[0].1[0].1.as_ref().map(|o| o.offset)
}

/// Polls `condition` every 10 ms until it holds or 5 s pass.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Joins `n` members (KIP-394 dance included), syncs them, and returns the
/// member ids with the leader first and the generation.
async fn form_group(c: &Arc<GroupCoordinator>, group: &str, n: usize, session_timeout_ms: i32) -> (Vec<String>, i32) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let c = c.clone();
        let group = group.to_string();
        tasks.push(tokio::spawn(async move {
            let first = c.join_group(&group, join_req("", session_timeout_ms)).await;
            assert_eq!(first.error, Some(GroupError::MemberIdRequired));
            c.join_group(&group, join_req(&first.member_id, session_timeout_ms)).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(within("join", t).await.unwrap());
    }
    let leader = results[0].leader.clone();
    let generation = results[0].generation_id;
    let mut ids: Vec<String> = results.iter().map(|r| r.member_id.clone()).collect();
    ids.sort_by_key(|id| *id != leader);
    let mut syncs = Vec::new();
    for id in &ids {
        let assignments = if *id == leader {
            ids.iter().map(|m| (m.clone(), Bytes::from(format!("assigned-{m}")))).collect()
        } else {
            Vec::new()
        };
        let req = SyncRequest {
            member_id: id.clone(),
            group_instance_id: None,
            generation_id: generation,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        };
        let (c, group) = (c.clone(), group.to_string());
        syncs.push(tokio::spawn(async move { c.sync_group(&group, req).await }));
    }
    for (id, s) in ids.iter().zip(syncs) {
        let r = within("sync", s).await.unwrap();
        assert_eq!(r.error, None);
        assert_eq!(r.assignment, Bytes::from(format!("assigned-{id}")));
    }
    (ids, generation)
}

#[tokio::test]
async fn committed_offsets_are_fetched_and_loaded_back_from_the_log() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    let results = c.commit_offsets("g", simple_commit("orders", &[(0, 10), (1, 20)]), 9).await.unwrap();
    assert!(results.iter().all(|r| r.2.is_ok()), "{results:?}");
    assert_eq!(fetched(&c, "g", "orders", 0), Some(10));
    assert_eq!(fetched(&c, "g", "orders", 2), None);
    assert_eq!(fetched(&c, "unknown-group", "orders", 0), None);
    let all = c.fetch_offsets("g", None).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1.len(), 2);
    let o = all[0].1[1].1.clone().unwrap();
    assert_eq!((o.offset, o.leader_epoch, o.metadata.as_str()), (20, Some(5), "m20"));
    // A second commit of the same partition wins.
    c.commit_offsets("g", simple_commit("orders", &[(0, 11)]), 9).await.unwrap();

    let restarted = started(&store, fast());
    assert_eq!(fetched(&restarted, "g", "orders", 0), Some(11));
    assert_eq!(fetched(&restarted, "g", "orders", 1), Some(20));
    let listed = restarted.list_groups().unwrap();
    assert_eq!(
        listed,
        vec![GroupListing {
            group_id: "g".into(),
            protocol_type: String::new(),
            state: GroupState::Empty,
            group_type: "classic",
            consumer_state: None,
        }]
    );
    // Records are Kafka's: OffsetCommitKey in the group's partition.
    let p = partition_for("g", PARTITIONS) as i32;
    let records = store.records(p);
    assert_eq!(records.len(), 3);
    assert_eq!(
        RecordKey::decode(&records[0].key).unwrap(),
        RecordKey::OffsetCommit { group: "g".into(), topic: "orders".into(), partition: 0 }
    );
}

#[tokio::test]
async fn a_group_forms_through_the_coordinator_and_its_members_expire_after_a_restart() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    let (ids, generation) = form_group(&c, "g", 2, 400).await;
    assert_eq!(generation, 1);
    let d = c.describe_group("g").unwrap().unwrap();
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.members.len(), 2);
    assert_eq!(c.heartbeat("g", &ids[1], None, generation), Ok(()));
    assert_eq!(c.heartbeat("g", &ids[1], None, generation + 1), Err(GroupError::IllegalGeneration));
    assert_eq!(c.heartbeat("g", "stranger", None, generation), Err(GroupError::UnknownMemberId));

    // A restarted coordinator loads the Stable group with its members and assignments ...
    let restarted = started(&store, fast());
    let shutdown = CancellationToken::new();
    tokio::spawn(restarted.clone().run(shutdown.clone()));
    let d = restarted.describe_group("g").unwrap().unwrap();
    assert_eq!((d.state, d.members.len(), d.protocol_data.as_str()), (GroupState::Stable, 2, "range"));
    assert!(d.members.iter().any(|m| m.assignment == format!("assigned-{}", ids[0]).as_bytes()));
    // ... and, with nobody heartbeating, the members' sessions run out.
    eventually("the loaded group is empty", || {
        restarted.describe_group("g").unwrap().is_some_and(|d| d.state == GroupState::Empty)
    })
    .await;
    shutdown.cancel();
}

#[tokio::test]
async fn a_member_leaving_rebalances_the_rest() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    let (ids, generation) = form_group(&c, "g", 2, 10_000).await;
    let leaving = vec![LeavingMember { member_id: ids[1].clone(), group_instance_id: None, reason: None }];
    assert_eq!(c.leave_group("g", &leaving), Ok(vec![Ok(())]));
    assert_eq!(c.heartbeat("g", &ids[0], None, generation), Err(GroupError::RebalanceInProgress));
    let rejoined = within("rejoin", c.join_group("g", join_req(&ids[0], 10_000))).await;
    assert_eq!((rejoined.error, rejoined.generation_id, rejoined.members.len()), (None, 2, 1));
    assert_eq!(c.leave_group("nope", &leaving), Err(GroupError::UnknownMemberId));
}

#[tokio::test]
async fn deleting_a_group_tombstones_its_offsets_and_metadata() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    c.commit_offsets("g", simple_commit("orders", &[(0, 10)]), 9).await.unwrap();
    assert_eq!(c.delete_group("missing").await, Err(GroupError::GroupIdNotFound));
    assert_eq!(c.delete_group("").await, Err(GroupError::InvalidGroupId));
    assert_eq!(c.delete_group("g").await, Ok(()));
    assert_eq!(fetched(&c, "g", "orders", 0), None);
    assert!(c.list_groups().unwrap().is_empty());
    let p = partition_for("g", PARTITIONS) as i32;
    let tombstones: Vec<RecordKey> =
        store.records(p).iter().filter(|r| r.value.is_none()).map(|r| RecordKey::decode(&r.key).unwrap()).collect();
    assert_eq!(
        tombstones,
        vec![
            RecordKey::OffsetCommit { group: "g".into(), topic: "orders".into(), partition: 0 },
            RecordKey::GroupMetadata { group: "g".into() }
        ]
    );
    let restarted = started(&store, fast());
    assert!(restarted.list_groups().unwrap().is_empty());

    // A group with members cannot be deleted.
    form_group(&c, "busy", 1, 10_000).await;
    assert_eq!(c.delete_group("busy").await, Err(GroupError::NonEmptyGroup));
}

#[tokio::test]
async fn expired_offsets_are_tombstoned_and_the_empty_group_goes() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, GroupConfig { offsets_retention_ms: 50, ..fast() });
    c.commit_offsets("g", simple_commit("orders", &[(0, 10)]), 9).await.unwrap();
    assert_eq!(c.expire_offsets(), 0, "not yet");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(c.expire_offsets(), 1);
    // The group is Dead at once, and gone once its tombstones are in the log.
    assert!(c.list_groups().unwrap().is_empty());
    assert_eq!(fetched(&c, "g", "orders", 0), None);
    let p = partition_for("g", PARTITIONS) as i32;
    eventually("the tombstones are written", || store.records(p).len() == 3).await;
    let tombstones: Vec<RecordKey> =
        store.records(p).iter().filter(|r| r.value.is_none()).map(|r| RecordKey::decode(&r.key).unwrap()).collect();
    assert_eq!(
        tombstones,
        vec![
            RecordKey::OffsetCommit { group: "g".into(), topic: "orders".into(), partition: 0 },
            RecordKey::GroupMetadata { group: "g".into() }
        ]
    );
    assert!(started(&store, fast()).list_groups().unwrap().is_empty(), "also after a restart");
}

#[tokio::test]
async fn nothing_is_served_before_the_partition_is_loaded() {
    let c = GroupCoordinator::new(fast());
    let r = c.join_group("g", join_req("", 1000)).await;
    assert_eq!(r.error, Some(GroupError::CoordinatorNotAvailable));
    c.attach(Arc::new(MemoryOffsetsLog::default()), PARTITIONS);
    // Attached but leading no partition: clients are sent to find the coordinator again.
    assert_eq!(c.heartbeat("g", "m", None, 1), Err(GroupError::NotCoordinator));
    assert_eq!(c.fetch_offsets("g", None), Err(GroupError::NotCoordinator));
    c.load_all();
    assert_eq!(c.fetch_offsets("g", None), Ok(Vec::new()));
    assert_eq!(c.fetch_offsets("", None), Err(GroupError::InvalidGroupId));
    let r = c.join_group("", join_req("", 1000)).await;
    assert_eq!(r.error, Some(GroupError::InvalidGroupId));
    let r = c.join_group("g", join_req("", 5)).await;
    assert_eq!(r.error, Some(GroupError::InvalidSessionTimeout { requested: 5, min: 10, max: 1_800_000 }));
}

#[tokio::test]
async fn a_failed_append_fails_the_commit_and_keeps_nothing() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, GroupConfig { offsets_retention_ms: 1, ..fast() });
    store.fail_appends(true);
    let results = c.commit_offsets("g", simple_commit("orders", &[(0, 10)]), 9).await.unwrap();
    assert!(matches!(results[0].2, Err(GroupError::Storage(_))), "{results:?}");
    assert_eq!(fetched(&c, "g", "orders", 0), None);
    store.fail_appends(false);
    // Nothing stays pending: the group (with no offsets) can be cleaned up.
    tokio::time::sleep(Duration::from_millis(5)).await;
    c.expire_offsets();
    eventually("the group is gone", || c.list_groups().unwrap().is_empty()).await;
}

#[tokio::test]
async fn oversized_offset_metadata_is_refused_per_partition() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, GroupConfig { offset_metadata_max_bytes: 3, ..fast() });
    // simple_commit's metadata is "m" + offset: "m10" fits, "m100" does not.
    let mut commit = simple_commit("orders", &[(0, 10), (1, 100)]);
    commit.topics[0].1[1].metadata = Some("m100".into());
    let results = c.commit_offsets("g", commit, 9).await.unwrap();
    assert_eq!(results[0].2, Ok(()));
    assert_eq!(results[1].2, Err(GroupError::OffsetMetadataTooLarge { size: 4, max: 3 }));
    assert_eq!(fetched(&c, "g", "orders", 1), None);
}

#[tokio::test]
async fn member_commits_to_an_unknown_group_are_refused_by_version() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    let commit = OffsetCommit { generation_id: 1, member_id: "m".into(), ..simple_commit("orders", &[(0, 1)]) };
    assert_eq!(c.commit_offsets("g", commit.clone(), 8).await, Err(GroupError::IllegalGeneration));
    assert_eq!(c.commit_offsets("g", commit, 9).await, Err(GroupError::GroupIdNotFound));
}

#[tokio::test]
async fn members_commit_and_offsets_of_subscribed_topics_cannot_be_deleted() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    let (ids, generation) = form_group(&c, "g", 1, 10_000).await;
    let mut commit = simple_commit("orders", &[(0, 7)]);
    commit
        .topics
        .push(("other".into(), vec![PartitionCommit { partition: 0, offset: 3, leader_epoch: -1, metadata: None }]));
    let stale = OffsetCommit { member_id: ids[0].clone(), generation_id: generation + 1, ..commit.clone() };
    assert_eq!(c.commit_offsets("g", stale, 9).await, Err(GroupError::IllegalGeneration));
    let commit = OffsetCommit { member_id: ids[0].clone(), generation_id: generation, ..commit };
    let results = c.commit_offsets("g", commit, 9).await.unwrap();
    assert!(results.iter().all(|r| r.2.is_ok()));
    let deleted = c.delete_offsets("g", vec![("orders".into(), vec![0]), ("other".into(), vec![0])]).await.unwrap();
    assert_eq!(deleted[0].2, Err(GroupError::GroupSubscribedToTopic));
    assert_eq!(deleted[1].2, Ok(()));
    assert_eq!(fetched(&c, "g", "orders", 0), Some(7));
    assert_eq!(fetched(&c, "g", "other", 0), None);
    assert_eq!(c.delete_offsets("missing", vec![]).await, Err(GroupError::GroupIdNotFound));
}

#[tokio::test]
async fn shutdown_answers_waiting_joins_with_not_coordinator() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, GroupConfig { initial_rebalance_delay_ms: 60_000, ..fast() });
    let first = c.join_group("g", join_req("", 1000)).await;
    let waiting = {
        let c = c.clone();
        tokio::spawn(async move { c.join_group("g", join_req(&first.member_id, 1000)).await })
    };
    eventually("the join waits", || {
        c.describe_group("g").unwrap().is_some_and(|d| d.state == GroupState::PreparingRebalance)
    })
    .await;
    c.shutdown();
    let r = within("join after shutdown", waiting).await.unwrap();
    assert_eq!(r.error, Some(GroupError::NotCoordinator));
    assert_eq!(c.heartbeat("g", "m", None, 1), Err(GroupError::CoordinatorNotAvailable));
}

/// Offsets and group metadata written through the broker's real log come
/// back when the broker and its coordinator are opened again.
#[tokio::test]
async fn offsets_and_groups_survive_a_broker_restart() {
    use crate::config::{BrokerConfig, ConfigLayer};

    let dir = tempfile::tempdir().unwrap();
    let settings = [
        ("offsets.topic.num.partitions", PARTITIONS.to_string()),
        ("group.initial.rebalance.delay.ms", "200".to_owned()),
    ];
    let layer = ConfigLayer {
        data_dir: Some(dir.path().display().to_string()),
        settings: settings.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ..Default::default()
    };
    let layer = ConfigLayer {
        internal_listen: Some("127.0.0.1:0".into()),
        internal_advertise: Some("127.0.0.1:1".into()),
        ..layer
    };
    let config = BrokerConfig::resolve(layer, "test").unwrap();
    // A single-node broker creates its offsets topic before server::start
    // returns; the coordinator loads the partitions in the background (and
    // answers COORDINATOR_LOAD_IN_PROGRESS meanwhile, as Kafka), so wait.
    let open = |config: BrokerConfig| async move {
        let internal = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let broker = crate::server::start(config, internal, Default::default()).await.unwrap();
        let c = broker.groups.clone();
        eventually("the groups' offsets partitions to load", || c.check("g").is_ok() && c.check("consumers").is_ok())
            .await;
        (broker, c)
    };
    {
        let (broker, c) = open(config.clone()).await;
        let topic = broker.metadata.read().topic(crate::group::OFFSETS_TOPIC).cloned().unwrap();
        assert_eq!(topic.partitions.len(), PARTITIONS);
        assert_eq!(topic.configs.get("cleanup.policy"), "compact");
        let results = c.commit_offsets("g", simple_commit("orders", &[(0, 42), (3, 7)]), 9).await.unwrap();
        assert!(results.iter().all(|r| r.2.is_ok()), "{results:?}");
        form_group(&c, "consumers", 1, 30_000).await;
        c.shutdown();
        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.replicas.logs().flush_all()).await.unwrap().unwrap();
        broker.shutdown.cancel();
        broker.controller.shutdown().await;
    }
    let (_broker, c) = open(config).await;
    assert_eq!(fetched(&c, "g", "orders", 0), Some(42));
    assert_eq!(fetched(&c, "g", "orders", 3), Some(7));
    let d = c.describe_group("consumers").unwrap().unwrap();
    assert_eq!((d.state, d.members.len()), (GroupState::Stable, 1));
    c.shutdown();
}

#[tokio::test]
async fn rebalances_are_counted_and_groups_are_listed_for_the_metrics() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    assert_eq!(c.rebalances_total(), 0);
    let (ids, _) = form_group(&c, "g", 2, 10_000).await;
    assert_eq!(c.rebalances_total(), 1, "forming the group completed one rebalance");
    c.commit_offsets("simple", simple_commit("orders", &[(0, 10)]), 9).await.unwrap();
    let mut view = c.metrics_view();
    view.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    assert_eq!(view.len(), 2, "{view:?}");
    assert_eq!((view[0].group_id.as_str(), view[0].state, view[0].offsets.len()), ("g", GroupState::Stable, 0));
    assert_eq!((view[1].group_id.as_str(), view[1].state), ("simple", GroupState::Empty));
    assert_eq!(view[1].offsets, vec![("orders".to_string(), 0, 10)]);
    let leaving = vec![LeavingMember { member_id: ids[1].clone(), group_instance_id: None, reason: None }];
    assert_eq!(c.leave_group("g", &leaving), Ok(vec![Ok(())]));
    within("rejoin", c.join_group("g", join_req(&ids[0], 10_000))).await;
    assert_eq!(c.rebalances_total(), 2, "the leave caused a second rebalance");
}

#[tokio::test]
async fn a_marker_arriving_while_the_partition_loads_is_applied_once_loaded() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    c.txn_commit_offsets("g-load", 77, 0, simple_commit("in", &[(0, 10)])).await.unwrap();
    let p = c.partition_of("g-load").unwrap();
    // A new coordinator loads the partition; the COMMIT marker is written
    // after its read passed that point, before the groups are in place.
    let again = GroupCoordinator::new(fast());
    again.attach(store.clone(), PARTITIONS);
    let (late, log) = (again.clone(), store.clone());
    store.after_next_read(move || {
        log.append_marker(p as i32, 77, true);
        late.end_transaction(p, 77, true);
    });
    again.load_partition(p).unwrap();
    assert_eq!(fetched(&again, "g-load", "in", 0), Some(10), "the marker that came during the load committed it");
    assert!(again.unstable_offsets("g-load", &[("in".into(), 0)]).is_empty());
}

#[tokio::test]
async fn transactional_offsets_wait_for_their_marker_and_load_back_the_same_way() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    let results = c.txn_commit_offsets("g-txn", 77, 0, simple_commit("in", &[(0, 10), (1, 20)])).await.unwrap();
    assert!(results.iter().all(|r| r.2.is_ok()), "{results:?}");
    // Held: not visible, and unstable for require_stable.
    assert_eq!(fetched(&c, "g-txn", "in", 0), None);
    assert_eq!(c.unstable_offsets("g-txn", &[("in".into(), 0), ("in".into(), 2)]), vec![("in".to_string(), 0)]);
    // Another producer's marker changes nothing; the producer's COMMIT makes them committed.
    let p = c.partition_of("g-txn").unwrap();
    c.end_transaction(p, 78, true);
    assert_eq!(fetched(&c, "g-txn", "in", 0), None);
    store.append_marker(p as i32, 77, true);
    c.end_transaction(p, 77, true);
    assert_eq!(fetched(&c, "g-txn", "in", 0), Some(10));
    assert!(c.unstable_offsets("g-txn", &[("in".into(), 0)]).is_empty());
    // An aborted transaction's offsets are dropped.
    c.txn_commit_offsets("g-txn", 77, 0, simple_commit("in", &[(0, 99)])).await.unwrap();
    store.append_marker(p as i32, 77, false);
    c.end_transaction(p, 77, false);
    assert_eq!(fetched(&c, "g-txn", "in", 0), Some(10));
    // One still open when the coordinator restarts stays held.
    c.txn_commit_offsets("g-txn", 80, 0, simple_commit("in", &[(1, 50)])).await.unwrap();

    let again = started(&store, fast());
    assert_eq!(fetched(&again, "g-txn", "in", 0), Some(10), "committed by its marker, not the aborted 99");
    assert_eq!(fetched(&again, "g-txn", "in", 1), Some(20));
    assert_eq!(again.unstable_offsets("g-txn", &[("in".into(), 1)]), vec![("in".to_string(), 1)]);
    again.end_transaction(p, 80, true);
    assert_eq!(fetched(&again, "g-txn", "in", 1), Some(50));
}

#[tokio::test]
async fn a_member_commits_transactional_offsets_of_its_generation_while_the_group_awaits_its_sync() {
    let store = Arc::new(MemoryOffsetsLog::default());
    let c = started(&store, fast());
    let (ids, first) = form_group(&c, "g", 1, 10_000).await;
    // The member joins again: the group completes the join and waits for the leader's SyncGroup.
    let rejoined = within("rejoin", c.join_group("g", join_req(&ids[0], 10_000))).await;
    assert_eq!(rejoined.error, None);
    let generation = rejoined.generation_id;
    assert_eq!(generation, first + 1);
    let as_member =
        |generation_id| OffsetCommit { member_id: ids[0].clone(), generation_id, ..simple_commit("orders", &[(0, 5)]) };
    assert_eq!(c.commit_offsets("g", as_member(generation), 9).await, Err(GroupError::RebalanceInProgress));
    let results = c.txn_commit_offsets("g", 77, 0, as_member(generation)).await.unwrap();
    assert!(results.iter().all(|r| r.2.is_ok()), "TxnOffsetCommit is taken mid-rebalance, as in Kafka: {results:?}");
    assert_eq!(
        c.txn_commit_offsets("g", 77, 0, as_member(first)).await,
        Err(GroupError::IllegalGeneration),
        "the previous generation is fenced"
    );
}
