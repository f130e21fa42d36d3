//! Quorums of real controller nodes in one process, on loopback ports and
//! temp dirs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use uuid::Uuid;

use super::image::{Command, Outcome, TopicAssignment};
use super::network::{PeerClient, ProposeError};
use super::quorum::parse_voters;
use super::rejoin::{RejoinRequest, Stage};
use super::{ClusterImage, Controller, ControllerConfig, NodeId};

fn fast_config(node_id: NodeId, voters: &BTreeMap<NodeId, String>, dir: &Path) -> ControllerConfig {
    ControllerConfig {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: (Duration::from_millis(200), Duration::from_millis(400)),
        snapshot_every: 10,
        log_kept_after_snapshot: 0,
        propose_timeout: Duration::from_secs(5),
        ..ControllerConfig::new(node_id, voters.clone(), dir)
    }
}

async fn start(node_id: NodeId, voters: &BTreeMap<NodeId, String>, dir: &Path) -> Controller {
    let listener = TcpListener::bind(&voters[&node_id]).await.unwrap();
    Controller::start(fast_config(node_id, voters, dir), listener).await.unwrap()
}

/// Polls `check` until it returns `Some`, failing the test after 60 s (an
/// election takes well under a second here; the bound is for a loaded CI
/// machine running the whole suite beside it).
async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

fn register(id: i32) -> Command {
    Command::RegisterBroker {
        broker_id: id,
        incarnation_id: Uuid::new_v4(),
        advertised_endpoint: format!("127.0.0.1:{}", 9092 + id),
        internal_endpoint: format!("127.0.0.1:{}", 9093 + id),
        listeners: Default::default(),
        rack: Some(format!("rack-{id}")),
        max_partitions: None,
    }
}

async fn register_and_unfence(controller: &Controller, id: i32) {
    let Ok(Ok(Outcome::Registered { broker_epoch })) = controller.propose(register(id)).await else {
        panic!("broker {id} did not register")
    };
    controller.propose(Command::BrokerHeartbeat { broker_id: id, broker_epoch }).await.unwrap().unwrap();
}

fn create_topic(name: &str, partitions: i32, replication_factor: i32) -> Command {
    Command::CreateTopic {
        name: name.into(),
        topic_id: Uuid::new_v4(),
        assignment: TopicAssignment::Computed { partitions, replication_factor },
        configs: BTreeMap::new(),
    }
}

#[tokio::test]
async fn single_node_quorum_commits_and_keeps_its_image_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let voters = BTreeMap::from([(0, free_addr().await.to_string())]);
    let node = start(0, &voters, dir.path()).await;
    register_and_unfence(&node, 0).await;
    let created = node.propose(create_topic("orders", 3, 1)).await.unwrap().unwrap();
    assert!(matches!(created, Outcome::TopicCreated { ref assignment, .. } if assignment.len() == 3));
    // Enough entries to take a snapshot and purge the log before it.
    for _ in 0..12 {
        node.propose(Command::AllocateProducerIdBlock { broker_id: 0 }).await.unwrap().unwrap();
    }
    let snapshot = dir.path().join("controller").join("snapshot.json");
    wait_for("a snapshot", || snapshot.exists().then_some(())).await;
    let refused = node.propose(create_topic("orders", 1, 1)).await.unwrap();
    assert!(refused.is_err());
    let before = node.image();
    node.shutdown().await;

    let node = start(0, &voters, dir.path()).await;
    wait_for("the image to be restored", || (node.image() == before).then_some(())).await;
    let next = node.propose(Command::AllocateProducerIdBlock { broker_id: 0 }).await.unwrap().unwrap();
    assert_eq!(next, Outcome::ProducerIdBlock { first: 12 * 1000, size: 1000 }, "a block was handed out twice");
    node.shutdown().await;
}

/// The leader all running nodes agree on.
/// The leader all `nodes` name, once none of them is still bootstrapping or
/// rejoining (a voter that starts after the others formed the quorum joins
/// through membership changes).
fn agreed_leader(nodes: &[Controller]) -> Option<NodeId> {
    let first = nodes.first()?.active_controller()?;
    nodes.iter().all(|n| n.active_controller() == Some(first) && !n.rejoining()).then_some(first)
}

fn same_image(nodes: &[Controller]) -> Option<ClusterImage> {
    let first = nodes.first()?.image();
    nodes.iter().all(|n| n.image() == first).then_some(first)
}

#[tokio::test]
async fn three_voters_elect_replicate_fail_over_and_catch_up_a_restarted_node() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut voters = BTreeMap::new();
    for id in 0..3 {
        voters.insert(id, free_addr().await.to_string());
    }
    let mut nodes = Vec::new();
    for id in 0..3 {
        nodes.push(start(id, &voters, dirs[id as usize].path()).await);
    }
    let leader = wait_for("a leader", || agreed_leader(&nodes)).await;

    // Propose through a follower: it forwards to the active controller.
    let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();
    for id in 0..3 {
        register_and_unfence(follower, id).await;
    }
    let Outcome::TopicCreated { assignment, .. } = follower.propose(create_topic("t", 3, 3)).await.unwrap().unwrap()
    else {
        panic!("topic not created")
    };
    let leaders: std::collections::BTreeSet<i32> = assignment.iter().map(|r| r[0]).collect();
    assert_eq!(leaders.len(), 3, "leaders not spread: {assignment:?}");
    for _ in 0..10 {
        follower.propose(Command::AllocateProducerIdBlock { broker_id: 1 }).await.unwrap().unwrap();
    }
    let committed = wait_for("all nodes to apply", || same_image(&nodes).filter(|i| i.topics.contains_key("t"))).await;

    // Stop the leader: the other two elect a new one and keep every commit.
    let position = nodes.iter().position(|n| n.node_id() == leader).unwrap();
    let old = nodes.remove(position);
    old.shutdown().await;
    let new_leader = wait_for("a new leader", || agreed_leader(&nodes).filter(|&l| l != leader)).await;
    assert_ne!(new_leader, leader);
    assert_eq!(nodes[0].image(), committed);

    let fenced = leader as i32;
    nodes[0].propose(Command::FenceBroker { broker_id: fenced }).await.unwrap().unwrap();
    nodes[1].propose(create_topic("after", 2, 2)).await.unwrap().unwrap();
    let image =
        wait_for("the survivors to apply", || same_image(&nodes).filter(|i| i.topics.contains_key("after"))).await;
    for p in &image.topics["t"].partitions {
        assert_ne!(p.leader, fenced, "the fenced broker still leads");
        assert!(!p.isr.contains(&fenced));
    }
    assert_eq!(image.producer_id_block_end, committed.producer_id_block_end);
    // More than a snapshot's worth of entries while the old leader is down:
    // the log it lacks is purged, so it must catch up from a snapshot.
    for _ in 0..12 {
        nodes[1].propose(Command::AllocateProducerIdBlock { broker_id: 2 }).await.unwrap().unwrap();
    }
    let image = wait_for("the survivors to apply", || {
        same_image(&nodes).filter(|i| i.producer_id_block_end == committed.producer_id_block_end + 12 * 1000)
    })
    .await;

    // Restart the old leader from its data dir: it catches up.
    let restarted = start(leader, &voters, dirs[leader as usize].path()).await;
    let target = image.clone();
    wait_for("the restarted node to catch up", || (restarted.image() == target).then_some(())).await;
    nodes.push(restarted);
    wait_for("one leader for all three", || agreed_leader(&nodes)).await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[test]
fn voters_parse_and_bad_ones_are_named() {
    let voters = parse_voters("0@strom-0:9093, 1@strom-1:9093").unwrap();
    assert_eq!(voters[&1], "strom-1:9093");
    for bad in ["", "x@h:1", "0@h", "0@h:1,0@g:2", "0h:1", "2147483648@h:1"] {
        let err = parse_voters(bad).unwrap_err().to_string();
        assert!(err.contains("ID@HOST:PORT"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_broker_that_is_not_a_voter_registers_and_follows_the_log_as_a_learner() {
    let (voter_dir, learner_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let voters = BTreeMap::from([(0, free_addr().await.to_string())]);
    let voter = start(0, &voters, voter_dir.path()).await;
    register_and_unfence(&voter, 0).await;

    let learner_addr = free_addr().await;
    let listener = TcpListener::bind(learner_addr).await.unwrap();
    let learner = Controller::start(fast_config(5, &voters, learner_dir.path()), listener).await.unwrap();
    // The learner knows no leader yet: its registration goes through the voters.
    let registration = Command::RegisterBroker {
        broker_id: 5,
        incarnation_id: Uuid::new_v4(),
        advertised_endpoint: "127.0.0.1:9097".into(),
        internal_endpoint: learner_addr.to_string(),
        listeners: Default::default(),
        rack: None,
        max_partitions: None,
    };
    let committed = learner.propose_committed(registration).await.unwrap();
    assert!(matches!(committed.result, Ok(Outcome::Registered { .. })), "{committed:?}");
    voter.propose(create_topic("after-learner", 2, 1)).await.unwrap().unwrap();

    // The learner receives the metadata log, including what came after it joined.
    wait_for("the learner to apply the topic", || learner.image().topics.contains_key("after-learner").then_some(()))
        .await;
    assert_eq!(learner.image(), voter.image());
    let membership = voter.raft().metrics().borrow().membership_config.membership().clone();
    assert!(membership.get_node(&5).is_some() && !membership.voter_ids().any(|v| v == 5), "{membership:?}");
    assert_eq!(learner.active_controller(), Some(0));
    learner.shutdown().await;
    voter.shutdown().await;
}

#[tokio::test]
async fn a_damaged_metadata_log_entry_stops_the_node_and_is_never_applied() {
    let dir = tempfile::tempdir().unwrap();
    let voters = BTreeMap::from([(0, free_addr().await.to_string())]);
    let node = start(0, &voters, dir.path()).await;
    register_and_unfence(&node, 0).await;
    node.propose(create_topic("kept", 1, 1)).await.unwrap().unwrap();
    node.shutdown().await;

    let log_dir = dir.path().join("controller").join("log");
    let mut files: Vec<_> = std::fs::read_dir(&log_dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let last = files.last().unwrap().clone();
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() / 2]).unwrap();

    let listener = TcpListener::bind(&voters[&0]).await.unwrap();
    let err = Controller::start(fast_config(0, &voters, dir.path()), listener).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&last.display().to_string()) && message.contains("damaged"), "{message}");
}

#[tokio::test]
async fn raft_rpcs_from_a_node_outside_the_quorum_are_refused() {
    use openraft::raft::VoteRequest;
    use strom_proto::raft::RaftMessage;
    use strom_proto::raft::raft_client::RaftClient;

    let dir = tempfile::tempdir().unwrap();
    let voters = BTreeMap::from([(0, free_addr().await.to_string())]);
    let node = start(0, &voters, dir.path()).await;
    register_and_unfence(&node, 0).await;
    let before = node.raft().metrics().borrow().current_term;

    let mut client = RaftClient::connect(format!("http://{}", voters[&0])).await.unwrap();
    // A stranger (node 7) asks for votes in a much later term.
    let request = VoteRequest::<NodeId>::new(openraft::Vote::new(before + 100, 7), None);
    let payload = serde_json::to_vec(&request).unwrap();
    let status = client.vote(RaftMessage { payload }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("node 7"), "{status:?}");
    // Garbage is refused too, and neither changed the node's term or leadership.
    let status = client.vote(RaftMessage { payload: b"{not a vote".to_vec() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(node.raft().metrics().borrow().current_term, before);
    assert_eq!(node.active_controller(), Some(0));
    node.shutdown().await;
}

/// A learner that was down while a broker it knew only as a learner became
/// a voter and then the active controller: its membership does not name
/// the new leader as a voter, so it asks the voter it knows, which vouches,
/// and it catches up (from a snapshot: the log it lacks is purged).
#[tokio::test]
async fn a_lagging_learner_takes_a_leader_it_does_not_know_as_a_voter_once_a_voter_vouches() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs = [free_addr().await, free_addr().await, free_addr().await];
    let voters = BTreeMap::from([(0, addrs[0].to_string())]);
    // Sessions outlive the test: no broker is fenced while it is down.
    let config = |id: NodeId| ControllerConfig {
        session_timeout: Duration::from_secs(600),
        ..fast_config(id, &voters, dirs[id as usize].path())
    };
    let listen = |id: usize| TcpListener::bind(addrs[id]);
    // Each broker registers itself at its real internal address: it is
    // where the quorum reaches it as a learner.
    let join = |node: Controller, id: NodeId| async move {
        let registration = Command::RegisterBroker {
            broker_id: id as i32,
            incarnation_id: Uuid::new_v4(),
            advertised_endpoint: format!("127.0.0.1:{}", 9092 + id),
            internal_endpoint: addrs[id as usize].to_string(),
            listeners: Default::default(),
            rack: None,
            max_partitions: None,
        };
        let Ok(Outcome::Registered { broker_epoch }) = node.propose_committed(registration).await.unwrap().result
        else {
            panic!("broker {id} did not register")
        };
        node.propose(Command::BrokerHeartbeat { broker_id: id as i32, broker_epoch }).await.unwrap().unwrap();
        node
    };
    let voter = join(Controller::start(config(0), listen(0).await.unwrap()).await.unwrap(), 0).await;
    let mut learners = Vec::new();
    for id in 1..3 {
        learners.push(join(Controller::start(config(id), listen(id as usize).await.unwrap()).await.unwrap(), id).await);
    }
    let lagging = learners.pop().unwrap();
    let learner = learners.pop().unwrap();
    wait_for("the learners to apply", || (lagging.image() == voter.image()).then_some(())).await;
    let stale = lagging.raft().metrics().borrow().membership_config.membership().clone();
    assert_eq!(stale.voter_ids().collect::<Vec<_>>(), vec![0], "{stale:?}");
    lagging.shutdown().await;

    // Broker 1 becomes a voter and then leads; broker 2 is down throughout.
    let request = super::voters::VoterChangeRequest { voters: std::collections::BTreeSet::from([1]) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Broker 0 takes the steps until it has removed its own node.
    loop {
        if let Ok(Ok(progress)) = voter.change_voters(&request).await
            && progress.voters == std::collections::BTreeSet::from([1])
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out removing broker 0 from the voters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It commits its own removal and steps down by itself (it still names
    // itself the leader of its last term until it hears of a newer one).
    wait_for("broker 0 to step down", || {
        (voter.raft().metrics().borrow().state != openraft::ServerState::Leader).then_some(())
    })
    .await;
    wait_for("broker 1 to lead", || (learner.active_controller() == Some(1)).then_some(())).await;
    loop {
        if let Ok(Ok(progress)) = learner.change_voters(&request).await
            && progress.done
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out making broker 0 a learner again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("broker 1 to lead", || (learner.active_controller() == Some(1)).then_some(())).await;
    for _ in 0..12 {
        learner.propose(create_topic(&Uuid::new_v4().to_string(), 1, 1)).await.unwrap().unwrap();
    }
    learner.propose(create_topic("after-the-change", 1, 1)).await.unwrap().unwrap();

    // Broker 0 restarts too: as the removed leader it may still replicate
    // its own log (the new membership in it) to broker 2, which knows it as
    // a voter. Restarted, it is a learner that knows broker 1 as the voter.
    voter.shutdown().await;
    let voter = Controller::start(config(0), listen(0).await.unwrap()).await.unwrap();
    wait_for("broker 0 to follow broker 1", || (voter.active_controller() == Some(1)).then_some(())).await;

    // Broker 2 restarts from its directory, knowing only broker 0 as a voter.
    let restarted = Controller::start(config(2), listen(2).await.unwrap()).await.unwrap();
    wait_for("the restarted learner to catch up", || {
        restarted.image().topics.contains_key("after-the-change").then_some(())
    })
    .await;
    assert_eq!(restarted.active_controller(), Some(1));
    assert_eq!(restarted.voters(), vec![1]);
    restarted.shutdown().await;
    learner.shutdown().await;
    voter.shutdown().await;
}

/// A node with no membership yet (a broker not yet added as a learner)
/// takes leader and candidate RPCs only from the configured voters: a
/// broker cannot hand it a forged log. A term beyond any real election is
/// refused from anyone (an election's `term + 1` must never overflow).
#[tokio::test]
async fn a_node_without_membership_takes_raft_rpcs_only_from_the_configured_voters() {
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    use strom_proto::raft::RaftMessage;
    use strom_proto::raft::raft_client::RaftClient;

    let (voter_dir, fresh_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let voters = BTreeMap::from([(0, free_addr().await.to_string())]);
    let voter = start(0, &voters, voter_dir.path()).await;
    register_and_unfence(&voter, 0).await;
    let fresh_addr = free_addr().await;
    let fresh =
        Controller::start(fast_config(5, &voters, fresh_dir.path()), TcpListener::bind(fresh_addr).await.unwrap())
            .await
            .unwrap();
    fresh.wait_start_decided().await;
    assert!(fresh.raft().metrics().borrow().membership_config.membership().voter_ids().next().is_none());

    let mut client = RaftClient::connect(format!("http://{fresh_addr}")).await.unwrap();
    let append = |term: u64, leader: NodeId| {
        let request = AppendEntriesRequest::<super::TypeConfig> {
            vote: openraft::Vote::new_committed(term, leader),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        RaftMessage { payload: serde_json::to_vec(&request).unwrap() }
    };
    // Broker 7 is no configured voter, and the voter says it is none.
    let status = client.append_entries(append(1_000, 7)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("node 7"), "{status:?}");
    let vote = VoteRequest::<NodeId>::new(openraft::Vote::new(1_000, 7), None);
    let status = client.vote(RaftMessage { payload: serde_json::to_vec(&vote).unwrap() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // An overflowing term, even naming the voter.
    let status = client.append_entries(append(u64::MAX, 0)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(fresh.raft().metrics().borrow().current_term, 0, "a refused RPC changed the term");
    fresh.shutdown().await;
    voter.shutdown().await;
}

fn node(nodes: &[Option<Controller>], id: NodeId) -> &Controller {
    nodes[id as usize].as_ref().unwrap()
}

fn wipe(dir: &Path) {
    std::fs::remove_dir_all(dir.join("controller")).unwrap();
}

#[tokio::test]
async fn a_voter_that_lost_its_log_rejoins_as_a_voter_and_never_helps_elect_a_node_missing_commits() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut voters = BTreeMap::new();
    for id in 0..3 {
        voters.insert(id, free_addr().await.to_string());
    }
    let mut nodes = Vec::new();
    for id in 0..3 {
        nodes.push(Some(start(id, &voters, dirs[id as usize].path()).await));
    }
    let running = |nodes: &Vec<Option<Controller>>| -> Vec<NodeId> {
        nodes.iter().flatten().map(|n| n.node_id()).collect::<Vec<_>>()
    };
    let leader_of = |nodes: &[Option<Controller>]| {
        let live: Vec<&Controller> = nodes.iter().flatten().collect();
        let first = live[0].active_controller()?;
        live.iter().all(|n| n.active_controller() == Some(first) && !n.rejoining()).then_some(first)
    };
    let leader = wait_for("a leader", || leader_of(&nodes)).await;
    for id in 0..3 {
        register_and_unfence(node(&nodes, leader), id).await;
    }
    node(&nodes, leader).propose(create_topic("t", 3, 3)).await.unwrap().unwrap();

    // 1. A follower loses its log: it rejoins, first removed, then a voter again.
    let follower = (0..3).find(|id| *id != leader).unwrap();
    let keepers: Vec<NodeId> = (0..3).filter(|id| *id != follower).collect();
    nodes[follower as usize].take().unwrap().shutdown().await;
    wipe(dirs[follower as usize].path());
    // While it rejoins it is briefly no voter, but every node still counts
    // it in the quorum's size (internal topics keep their replicas). The
    // test wakes on every change of the other two nodes' metrics (watch
    // channels keep only the latest value, but catching up takes network
    // round trips while the membership without the node stands).
    let mut watch_a = node(&nodes, keepers[0]).raft().metrics();
    let mut watch_b = node(&nodes, keepers[1]).raft().metrics();
    nodes[follower as usize] = Some(start(follower, &voters, dirs[follower as usize].path()).await);
    let mut seen_removed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        for id in &keepers {
            let n = node(&nodes, *id);
            assert_eq!(n.quorum_size(), 3, "node {id}, voters {:?}", n.voters());
            if !n.voters().contains(&follower) {
                seen_removed += 1;
            }
        }
        if node(&nodes, follower).is_voter() && seen_removed > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the wiped follower to be removed ({seen_removed} times seen) and a voter again"
        );
        tokio::select! {
            _ = watch_a.changed() => {}
            _ = watch_b.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let leader = wait_for("a leader", || leader_of(&nodes)).await;
    assert_eq!(node(&nodes, leader).quorum_size(), 3, "once it is a voter again");
    wait_for("the rejoin to be forgotten", || node(&nodes, leader).image().rejoining_voters.is_empty().then_some(()))
        .await;
    let members = node(&nodes, follower).raft().metrics().borrow().membership_config.membership().clone();
    assert_eq!(members.voter_ids().collect::<Vec<_>>(), vec![0, 1, 2]);
    let image = node(&nodes, leader).image();
    assert!(image.topics.contains_key("t"));
    wait_for("the wiped follower to have the image", || (node(&nodes, follower).image() == image).then_some(())).await;
    assert_eq!(running(&nodes).len(), 3);

    // A stray Rejoin call removes nobody: the node must say it is rejoining, and be a member.
    let leader = wait_for("a leader", || leader_of(&nodes)).await;
    let other = (0..3).find(|id| *id != leader).unwrap();
    let mut client = PeerClient::new(leader, openraft::BasicNode::new(voters[&leader].clone()), None);
    for (node_id, why) in [(other, "does not say it is rejoining"), (7, "not a member")] {
        let request = RejoinRequest { node_id, directory_id: Uuid::new_v4(), stage: Stage::Closed };
        let reply = client.rejoin(&request).await.unwrap();
        assert!(matches!(&reply, Err(ProposeError::Raft(e)) if e.contains(why)), "{reply:?}");
    }
    assert!(node(&nodes, other).is_voter(), "a stray Rejoin removed a voter");

    // 2. An entry committed on {A, B} while C is down; B loses its log and A
    //    goes down. C (without the entry) and the empty B must not elect C.
    let a = wait_for("a leader", || leader_of(&nodes)).await;
    let b = (0..3).find(|id| *id != a).unwrap();
    let c = (0..3).find(|id| *id != a && *id != b).unwrap();
    nodes[c as usize].take().unwrap().shutdown().await;
    node(&nodes, a).propose(create_topic("only-on-a-and-b", 1, 1)).await.unwrap().unwrap();
    nodes[b as usize].take().unwrap().shutdown().await;
    wipe(dirs[b as usize].path());
    nodes[a as usize].take().unwrap().shutdown().await;
    nodes[c as usize] = Some(start(c, &voters, dirs[c as usize].path()).await);
    nodes[b as usize] = Some(start(b, &voters, dirs[b as usize].path()).await);
    let term = node(&nodes, c).raft().metrics().borrow().current_term;
    wait_for("C to campaign several times", || {
        (node(&nodes, c).raft().metrics().borrow().current_term >= term + 3).then_some(())
    })
    .await;
    assert_eq!(node(&nodes, c).active_controller(), None, "C was elected without the entry A holds");
    assert!(node(&nodes, b).rejoining(), "the wiped voter took part before A came back");

    // A comes back: the quorum forms again with the entry, and B rejoins.
    nodes[a as usize] = Some(start(a, &voters, dirs[a as usize].path()).await);
    wait_for("B to be a voter again", || node(&nodes, b).is_voter().then_some(())).await;
    let image = wait_for("all three to apply the same image", || {
        let images: Vec<ClusterImage> = nodes.iter().flatten().map(|n| n.image()).collect();
        images.iter().all(|i| *i == images[0]).then(|| images[0].clone())
    })
    .await;
    assert!(image.topics.contains_key("only-on-a-and-b"), "a committed entry was lost");
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}
