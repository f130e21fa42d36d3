//! Replication between in-process brokers: each [`ReplicaManager`] has its
//! own data dir and serves the `Replication` service on a real tonic server
//! on 127.0.0.1; a test controller applies ISR changes and publishes every
//! partition state to all reachable brokers, as the controller quorum does.
//! Waits poll a condition with a deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kafka_protocol::records::Compression;
use parking_lot::Mutex;
use strom_proto::replication::FetchRecordsRequest;
use strom_proto::replication::replication_client::ReplicationClient;
use tokio_util::sync::CancellationToken;

use super::service::ReplicationService;
use super::*;
use crate::log::batch::tests::encode_batch;
use crate::log::{LogConfig, LogManager, TopicPartition};

mod stream;

const DEADLINE: Duration = Duration::from_secs(20);

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

fn fast_config(lag_ms: u64) -> ReplicaConfig {
    ReplicaConfig {
        lag_time_max: Duration::from_millis(lag_ms),
        fetch_max_bytes: 4096,
        fetch_response_max_bytes: 8192,
        fetch_wait_max: Duration::from_millis(200),
        fetch_backoff: Duration::from_millis(50),
        socket_timeout: Duration::from_secs(5),
        fetch_stream: true,
        scrub_bytes_per_sec: 64 * 1024 * 1024,
    }
}

/// Polls `condition` every 10 ms until it holds; panics naming `what` after the deadline.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One broker: its replica manager, served on a loopback port.
struct Node {
    manager: Arc<ReplicaManager>,
    addr: String,
    stop: CancellationToken,
}

/// How a test broker serves the internal plane.
#[derive(Debug, Clone, Default)]
enum Serving {
    /// Plain, every method.
    #[default]
    Plain,
    /// Plain, without `FetchStream`: a broker of the previous version.
    WithoutStream,
    /// Mutual TLS with this broker's certificate, also to its leaders.
    Tls(Arc<crate::tls::InternalTls>),
}

impl Node {
    async fn start(id: i32, dir: &std::path::Path, config: ReplicaConfig, controller: &Arc<Controller>) -> Node {
        Node::start_serving(id, dir, config, controller, Serving::Plain, "127.0.0.1:0").await
    }

    /// A broker serving as `serving` says on `addr` (port 0: a free one;
    /// a given port is retried until free, for a restart in place).
    async fn start_serving(
        id: i32,
        dir: &std::path::Path,
        config: ReplicaConfig,
        controller: &Arc<Controller>,
        serving: Serving,
        addr: &str,
    ) -> Node {
        let logs = Arc::new(LogManager::open(dir, LogConfig::default()).unwrap());
        let manager = Arc::new(ReplicaManager::with_config(id, logs, config));
        manager.set_isr_channel(Arc::new(TestIsrChannel(controller.clone())));
        let stop = CancellationToken::new();
        tokio::spawn(manager.clone().run_background(stop.clone()));
        let listener = bind(addr).await;
        let addr = listener.local_addr().unwrap().to_string();
        let service = match serving {
            Serving::WithoutStream => ReplicationService::without_stream(manager.clone()),
            _ => ReplicationService::new(manager.clone()),
        };
        let router = tonic::transport::Server::builder().add_service(service.into_server());
        let stopped = {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        };
        match serving {
            Serving::Tls(tls) => {
                manager.set_internal_tls(Some(tls.clone()));
                let incoming = crate::tls::tls_incoming(listener, tls, stop.clone());
                tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped));
            }
            _ => {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped));
            }
        }
        Node { manager, addr, stop }
    }

    /// Stops everything this broker runs, as a crash would (no flush).
    fn crash(&self) {
        self.stop.cancel();
        self.manager.shutdown();
    }

    fn partition(&self) -> Arc<Partition> {
        self.manager.get(&tp()).expect("partition hosted")
    }
}

/// The test's controller: the partition state, the brokers and which of them it reaches.
#[derive(Debug, Default)]
struct Controller {
    state: Mutex<HashMap<TopicPartition, LeaderAndIsr>>,
    brokers: Mutex<HashMap<i32, Registered>>,
    isr_changes: AtomicUsize,
}

/// A broker as the controller knows it.
#[derive(Debug, Clone)]
struct Registered {
    manager: Arc<ReplicaManager>,
    addr: String,
    reachable: bool,
}

impl Controller {
    fn register(&self, id: i32, node: &Node) {
        self.brokers
            .lock()
            .insert(id, Registered { manager: node.manager.clone(), addr: node.addr.clone(), reachable: true });
    }

    fn set_reachable(&self, id: i32, reachable: bool) {
        if let Some(b) = self.brokers.lock().get_mut(&id) {
            b.reachable = reachable;
        }
    }

    /// Sets the state and applies it on every reachable broker hosting a replica.
    fn publish(&self, state: LeaderAndIsr) {
        self.state.lock().insert(tp(), state.clone());
        let brokers: Vec<_> = self.brokers.lock().iter().map(|(id, b)| (*id, b.clone())).collect();
        let endpoint = brokers.iter().find(|(id, _)| *id == state.leader).map(|(_, b)| b.addr.clone());
        for (id, b) in brokers {
            if b.reachable && state.replicas.contains(&id) {
                b.manager.apply_leader_and_isr(&tp(), LogConfig::default(), &state, endpoint.clone()).unwrap();
            }
        }
    }

    /// Elects `leader` with `isr`, bumping both epochs.
    fn elect(&self, leader: i32, isr: Vec<i32>) {
        let mut state = self.current();
        state.leader = leader;
        state.leader_epoch += 1;
        state.partition_epoch += 1;
        state.isr = isr;
        self.publish(state);
    }

    fn current(&self) -> LeaderAndIsr {
        self.state.lock().get(&tp()).cloned().expect("partition created")
    }
}

#[derive(Debug)]
struct TestIsrChannel(Arc<Controller>);

impl IsrChannel for TestIsrChannel {
    fn alter_isr(
        &self,
        tp: TopicPartition,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, String>> + Send>> {
        let controller = self.0.clone();
        Box::pin(async move {
            let mut state = controller.state.lock().get(&tp).cloned().ok_or("unknown partition")?;
            if state.leader_epoch != leader_epoch || state.partition_epoch != partition_epoch {
                return Err(format!("stale: state is at {}/{}", state.leader_epoch, state.partition_epoch));
            }
            if !new_isr.contains(&state.leader) {
                // The leader steps aside: the first remaining member leads (as the controller elects).
                state.leader = *new_isr.first().ok_or("no ISR member left to lead")?;
                state.leader_epoch += 1;
            }
            state.isr = new_isr;
            state.partition_epoch += 1;
            controller.isr_changes.fetch_add(1, Ordering::SeqCst);
            let epoch = state.partition_epoch;
            controller.publish(state);
            Ok(epoch)
        })
    }
}

/// A listener on `addr`; a busy given port is retried until the deadline.
async fn bind(addr: &str) -> tokio::net::TcpListener {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("binding {addr}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Node>,
    controller: Arc<Controller>,
    config: ReplicaConfig,
}

impl Cluster {
    /// `n` brokers; partition `orders-0` on all of them, led by 0 at epoch 1 with the full ISR.
    async fn start(n: i32, config: ReplicaConfig) -> Cluster {
        Cluster::start_serving(n, config, |_| Serving::Plain).await
    }

    /// As [`Cluster::start`], broker `id` serving as `serving(id)` says.
    async fn start_serving(n: i32, config: ReplicaConfig, serving: impl Fn(i32) -> Serving) -> Cluster {
        let controller = Arc::new(Controller::default());
        let mut cluster = Cluster { dirs: Vec::new(), nodes: Vec::new(), controller, config };
        for id in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let (config, controller) = (cluster.config.clone(), &cluster.controller);
            let node = Node::start_serving(id, dir.path(), config, controller, serving(id), "127.0.0.1:0").await;
            cluster.controller.register(id, &node);
            cluster.dirs.push(dir);
            cluster.nodes.push(node);
        }
        let all: Vec<i32> = (0..n).collect();
        cluster.controller.publish(LeaderAndIsr {
            leader: 0,
            leader_epoch: 1,
            partition_epoch: 0,
            replicas: all.clone(),
            isr: all,
        });
        cluster
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[id as usize]
    }

    /// Crashes broker `id` and starts it again on the same data dir (the
    /// controller does not reach it until `set_reachable`).
    async fn restart(&mut self, id: i32) {
        self.node(id).crash();
        self.controller.set_reachable(id, false);
        let node = Node::start(id, self.dirs[id as usize].path(), self.config.clone(), &self.controller).await;
        self.controller.register(id, &node);
        self.controller.set_reachable(id, false);
        self.nodes[id as usize] = node;
    }
}

/// Appends `batch` on `node`'s replica as leader (acks=1).
/// Two brokers, broker 0 leading; broker 1 is a replica but crashed,
/// unreachable and out of the ISR.
async fn leader_alone_in_the_isr() -> Cluster {
    let cluster = Cluster::start(2, fast_config(60_000)).await;
    cluster.node(1).crash();
    cluster.controller.set_reachable(1, false);
    // A crash here leaves broker 1's connection to the leader open: a fetch
    // it sent just before could still be served after the ISR change below
    // and bring it back into the ISR. Once its sessions have ended, their
    // calls are cancelled; a long poll the leader already holds ends within
    // replica.fetch.wait.max.ms.
    eventually("broker 1's fetch sessions end", || {
        cluster.node(1).manager.sessions.lock().values().all(|s| !s.is_running())
    })
    .await;
    tokio::time::sleep(cluster.config.fetch_wait_max + Duration::from_millis(100)).await;
    let mut state = cluster.controller.current();
    state.isr = vec![0];
    state.partition_epoch += 1;
    cluster.controller.publish(state);
    // Publishing is asynchronous: until the leader applies it, broker 1 still
    // counts for the high watermark.
    eventually("the leader applies an ISR of itself alone", || cluster.node(0).partition().isr() == vec![0]).await;
    cluster
}

async fn produce(node: &Node, batch: Vec<u8>) -> Result<LeaderAppend, ReplicaError> {
    let p = node.partition();
    tokio::task::spawn_blocking(move || p.append_records(&batch, now_ms(), None)).await.unwrap()
}

/// Every byte of a replica's log.
fn log_bytes(node: &Node) -> Vec<u8> {
    let p = node.partition();
    let log = p.log().read();
    log.segments().flat_map(|s| s.read_all().unwrap()).collect()
}

fn leo(node: &Node) -> i64 {
    node.partition().log().read().log_end_offset()
}

fn batch(i: usize) -> Vec<u8> {
    encode_batch(1 + i % 4, 100 + 37 * (i % 5), 1000 + i as i64, Compression::None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_copy_the_leader_byte_for_byte_and_the_hw_waits_for_the_isr() {
    let mut cluster = Cluster::start(3, fast_config(1500)).await;
    for i in 0..30 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let end = leo(cluster.node(0));
    eventually("both followers have the leader's log and the HW covers it", || {
        leo(cluster.node(1)) == end
            && leo(cluster.node(2)) == end
            && cluster.node(0).partition().high_watermark() == end
    })
    .await;
    let leader_bytes = log_bytes(cluster.node(0));
    assert_eq!(log_bytes(cluster.node(1)), leader_bytes, "follower 1 byte for byte");
    assert_eq!(log_bytes(cluster.node(2)), leader_bytes, "follower 2 byte for byte");
    let leader_epochs = cluster.node(0).partition().log().read().epochs().entries().to_vec();
    assert_eq!(cluster.node(1).partition().log().read().epochs().entries(), leader_epochs.as_slice());
    eventually("followers learn the high watermark", || {
        cluster.node(1).partition().high_watermark() == end && cluster.node(2).partition().high_watermark() == end
    })
    .await;

    // Broker 2 stops: what follower 1 has is not committed while 2, in the ISR, lacks it.
    cluster.node(2).crash();
    cluster.controller.set_reachable(2, false);
    for i in 30..40 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let end2 = leo(cluster.node(0));
    eventually("follower 1 has the new records", || leo(cluster.node(1)) == end2).await;
    let leader = cluster.node(0).partition();
    if leader.isr().contains(&2) {
        assert_eq!(leader.high_watermark(), end, "the HW waits for every ISR member");
    }
    // After replica.lag.time.max.ms the leader drops 2 from the ISR; then the HW moves.
    eventually("broker 2 leaves the ISR", || cluster.controller.current().isr == vec![0, 1]).await;
    eventually("the HW covers what the smaller ISR has", || leader.high_watermark() == end2).await;
    assert_eq!(leader.isr(), vec![0, 1]);

    // Broker 2 comes back, catches up and is proposed for the ISR again.
    cluster.restart(2).await;
    cluster.controller.set_reachable(2, true);
    let state = cluster.controller.current();
    cluster.controller.publish(state);
    eventually("broker 2 rejoins the ISR", || cluster.controller.current().isr.contains(&2)).await;
    assert!(leo(cluster.node(2)) >= end2, "it joined only after reaching the HW");
    eventually("broker 2 is identical again", || log_bytes(cluster.node(2)) == log_bytes(cluster.node(0))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_waits_for_replication_and_fails_as_kafka_does() {
    let cluster = Cluster::start(2, fast_config(60_000)).await;
    let leader = cluster.node(0).partition();

    // Committed only once the follower has the records.
    let append = produce(cluster.node(0), batch(1)).await.unwrap();
    let required = append.info.last_offset + 1;
    leader.wait_for_commit(required, append.leader_epoch, 2, Duration::from_secs(10)).await.unwrap();
    assert!(leo(cluster.node(1)) >= required, "the follower had the records when acks=all answered");

    // The follower stops (the controller does not notice): the wait times out.
    cluster.node(1).crash();
    let append = produce(cluster.node(0), batch(2)).await.unwrap();
    let required = append.info.last_offset + 1;
    let timed_out = leader.wait_for_commit(required, append.leader_epoch, 1, Duration::from_millis(200)).await;
    assert!(matches!(timed_out, Err(ReplicaError::CommitTimeout { .. })), "{timed_out:?}");

    // The ISR shrinks below min.insync.replicas=2 while another write waits:
    // committed, but with too few replicas.
    let append = produce(cluster.node(0), batch(3)).await.unwrap();
    let waiting = {
        let leader = leader.clone();
        let (required, epoch) = (append.info.last_offset + 1, append.leader_epoch);
        tokio::spawn(async move { leader.wait_for_commit(required, epoch, 2, Duration::from_secs(10)).await })
    };
    let mut state = cluster.controller.current();
    state.isr = vec![0];
    state.partition_epoch += 1;
    cluster.controller.publish(state);
    let after = waiting.await.unwrap();
    assert!(matches!(after, Err(ReplicaError::NotEnoughReplicasAfterAppend { isr: 1, min: 2, .. })), "{after:?}");

    // With the ISR below min.insync.replicas an acks=all append writes nothing.
    let before = leo(cluster.node(0));
    let p = leader.clone();
    let refused = tokio::task::spawn_blocking(move || p.append_records(&batch(4), now_ms(), Some(2))).await.unwrap();
    assert!(matches!(refused, Err(ReplicaError::NotEnoughReplicas { isr: 1, min: 2, .. })), "{refused:?}");
    assert_eq!(leo(cluster.node(0)), before);

    // Leadership moves while a write waits: the producer must go to the new leader.
    let append = produce(cluster.node(0), encode_batch(1, 10, 5, Compression::None)).await.unwrap();
    let mut state = cluster.controller.current();
    state.isr = vec![0, 1];
    state.partition_epoch += 1;
    cluster.controller.state.lock().insert(tp(), state);
    let waiting = {
        let leader = leader.clone();
        let (required, epoch) = (append.info.last_offset + 1, append.leader_epoch);
        tokio::spawn(async move { leader.wait_for_commit(required + 100, epoch, 1, Duration::from_secs(10)).await })
    };
    cluster.controller.set_reachable(1, false);
    cluster.controller.elect(1, vec![1]);
    let moved = waiting.await.unwrap();
    assert!(matches!(moved, Err(ReplicaError::NotLeader { .. })), "{moved:?}");
    assert!(matches!(produce(cluster.node(0), batch(6)).await, Err(ReplicaError::NotLeader { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_leaders_unreplicated_tail_is_truncated_and_producer_state_carries_over() {
    let mut cluster = Cluster::start(2, fast_config(60_000)).await;
    let idempotent = crate::log::tests::idempotent_batch(3, 0, 0);
    for i in 0..5 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let first = produce(cluster.node(0), idempotent.clone()).await.unwrap();
    let replicated = leo(cluster.node(0));
    eventually("broker 1 has everything so far", || leo(cluster.node(1)) == replicated).await;

    // Broker 1 is cut off; broker 0 takes more writes it will never replicate.
    cluster.restart(1).await;
    for i in 10..14 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let old_leader_end = leo(cluster.node(0));
    assert!(old_leader_end > replicated);

    // Broker 0 is cut off in turn; broker 1 (in the ISR) is elected and takes writes of epoch 2.
    cluster.controller.set_reachable(0, false);
    cluster.controller.set_reachable(1, true);
    cluster.controller.elect(1, vec![1]);
    let new_leader = cluster.node(1).partition();
    assert!(new_leader.is_leader());
    // The producer's retry of a batch the old leader wrote is recognised by the new one.
    let retry = produce(cluster.node(1), idempotent.clone()).await.unwrap();
    assert_eq!((retry.info.base_offset, retry.info.last_offset), (first.info.base_offset, first.info.last_offset));
    assert_eq!(leo(cluster.node(1)), replicated, "the duplicate was not written again");
    for i in 20..23 {
        produce(cluster.node(1), batch(i)).await.unwrap();
    }
    let new_end = leo(cluster.node(1));
    assert_ne!(new_end, old_leader_end, "the test needs logs of different lengths");

    // Broker 0 returns as follower: it cuts its tail where epoch 1 ended on broker 1.
    cluster.controller.set_reachable(0, true);
    let state = cluster.controller.current();
    cluster.controller.publish(state);
    eventually("broker 0's log equals broker 1's", || {
        leo(cluster.node(0)) == new_end && log_bytes(cluster.node(0)) == log_bytes(cluster.node(1))
    })
    .await;
    let epochs = |n: &Node| n.partition().log().read().epochs().entries().to_vec();
    assert_eq!(epochs(cluster.node(0)), epochs(cluster.node(1)));
    assert_eq!(
        cluster.node(0).partition().log().read().producer_states(),
        new_leader.log().read().producer_states(),
        "producer state follows the truncation"
    );
    eventually("broker 0 rejoins the ISR", || cluster.controller.current().isr.contains(&0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fetches_from_strangers_or_other_epochs_are_refused_and_change_nothing() {
    let cluster = leader_alone_in_the_isr().await;
    for i in 0..3 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let leader = cluster.node(0).partition();
    let end = leo(cluster.node(0));
    let epoch = leader.leader_epoch();
    assert_eq!(
        leader.high_watermark(),
        end,
        "state {:?}, controller's {:?}",
        leader.leader_and_isr(),
        cluster.controller.current()
    );
    let changes_before = cluster.controller.isr_changes.load(Ordering::SeqCst);

    let mut client = ReplicationClient::connect(format!("http://{}", cluster.node(0).addr)).await.unwrap();
    let request = |replica_id, current_leader_epoch, fetch_offset| FetchRecordsRequest {
        topic: "orders".into(),
        partition: 0,
        fetch_offset,
        last_fetched_epoch: -1,
        replica_id,
        max_bytes: 1 << 20,
        current_leader_epoch,
        high_watermark: Some(end),
        log_start_offset: None,
    };
    let refusals = [
        (request(7, epoch, end), error_codes::NOT_LEADER_OR_FOLLOWER, "a broker that is no replica"),
        (request(0, epoch, end), error_codes::NOT_LEADER_OR_FOLLOWER, "the leader itself"),
        (request(1, epoch - 1, end), error_codes::FENCED_LEADER_EPOCH, "an older epoch"),
        (request(1, epoch + 1, end), error_codes::UNKNOWN_LEADER_EPOCH, "a newer epoch"),
        (
            FetchRecordsRequest { partition: 9, ..request(1, epoch, end) },
            error_codes::NOT_LEADER_OR_FOLLOWER,
            "no such partition",
        ),
    ];
    for (req, code, what) in refusals {
        let r = client.fetch_records(req).await.unwrap().into_inner();
        assert_eq!(r.error_code, code, "{what}: {}", r.error_message);
        assert!(!r.error_message.is_empty(), "{what} says why");
        assert!(r.records.is_empty() && r.diverging_epoch.is_none(), "{what} gets no data");
    }
    // Had any refused fetch counted, broker 1 at the log end would have been proposed for the ISR.
    assert_eq!(cluster.controller.isr_changes.load(Ordering::SeqCst), changes_before);
    assert_eq!(leader.isr(), vec![0]);

    // A follower whose last epoch ends earlier on the leader is told where.
    let mut diverging = request(1, epoch, end + 5);
    diverging.last_fetched_epoch = 0;
    let r = client.fetch_records(diverging).await.unwrap().into_inner();
    assert_eq!(r.error_code, 0, "{}", r.error_message);
    let d = r.diverging_epoch.expect("diverging epoch");
    assert_eq!((d.epoch, d.end_offset), (0, 0), "epoch 0 is older than any here: it ends at the first epoch's start");
    assert!(r.records.is_empty());

    // OffsetForLeaderEpoch answers with the largest epoch at or below the one asked for.
    let asked = strom_proto::replication::OffsetForLeaderEpochRequest {
        topic: "orders".into(),
        partition: 0,
        leader_epoch: epoch + 5,
        current_leader_epoch: epoch,
        replica_id: 1,
    };
    let r = client.offset_for_leader_epoch(asked.clone()).await.unwrap().into_inner();
    let e = r.end.expect("an end offset");
    assert_eq!((r.error_code, e.epoch, e.end_offset), (0, epoch, end));
    let fenced = strom_proto::replication::OffsetForLeaderEpochRequest { current_leader_epoch: epoch - 1, ..asked };
    let r = client.offset_for_leader_epoch(fenced).await.unwrap().into_inner();
    assert_eq!(r.error_code, error_codes::FENCED_LEADER_EPOCH, "{}", r.error_message);

    // A caught-up follower's fetch waits for records rather than answering empty at once...
    let started = std::time::Instant::now();
    let mut caught_up = request(1, epoch, end);
    caught_up.last_fetched_epoch = epoch;
    let r = client.fetch_records(caught_up.clone()).await.unwrap().into_inner();
    assert_eq!((r.error_code, r.records.len()), (0, 0));
    assert!(started.elapsed() >= Duration::from_millis(150), "waited about replica.fetch.wait.max.ms");
    // ...and a real follower's fetch counts: broker 1 at the log end joins the ISR.
    assert_eq!(cluster.controller.current().isr, vec![0, 1]);
    // New records end the wait.
    let waiting = tokio::spawn({
        let mut client = client.clone();
        async move { client.fetch_records(caught_up).await.unwrap().into_inner() }
    });
    produce(cluster.node(0), batch(9)).await.unwrap();
    let r = waiting.await.unwrap();
    assert_eq!(r.error_code, 0);
    assert!(!r.records.is_empty(), "the new batch is sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_demoted_partition_stops_its_fetcher() {
    let cluster = Cluster::start(2, fast_config(60_000)).await;
    produce(cluster.node(0), batch(0)).await.unwrap();
    eventually("follower caught up", || leo(cluster.node(1)) == leo(cluster.node(0))).await;
    assert_eq!(cluster.node(1).manager.fetchers.lock().len(), 1);
    // Same state again: idempotent, the fetcher keeps running.
    let state = cluster.controller.current();
    cluster.controller.publish(state.clone());
    assert!(cluster.node(1).manager.fetchers.lock().get(&tp()).is_some_and(|f| !f.cancel.is_cancelled()));
    // An older state is ignored.
    let mut old = state.clone();
    old.leader_epoch -= 1;
    cluster.node(1).manager.apply_leader_and_isr(&tp(), LogConfig::default(), &old, None).unwrap();
    assert_eq!(cluster.node(1).partition().leader_epoch(), state.leader_epoch);
    // Deletion stops the fetcher and removes the log.
    cluster.node(1).manager.delete(&tp()).unwrap();
    assert!(cluster.node(1).manager.fetchers.lock().is_empty());
    assert!(cluster.node(1).manager.get(&tp()).is_none());
    assert!(cluster.node(1).manager.logs().get(&tp()).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_starts_from_its_checkpointed_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (checkpointed, end) = {
        let logs = Arc::new(LogManager::open(dir.path(), LogConfig::default()).unwrap());
        let manager = ReplicaManager::new(0, logs);
        let p = manager.become_leader(&tp(), LogConfig::default(), 1).unwrap();
        for i in 0..3 {
            p.append_records(&batch(i), now_ms(), None).unwrap();
        }
        assert_eq!(p.high_watermark(), p.log_end_offset(), "a lone leader commits at once");
        manager.checkpoint_high_watermarks();
        let checkpointed = p.high_watermark();
        p.append_records(&batch(3), now_ms(), None).unwrap();
        (checkpointed, p.log_end_offset())
    };
    // Back with a follower in the ISR that has not fetched yet: the HW cannot
    // move, and starts where it was checkpointed rather than at 0.
    let logs = Arc::new(LogManager::open(dir.path(), LogConfig::default()).unwrap());
    let manager = ReplicaManager::new(0, logs);
    let state = LeaderAndIsr { leader: 0, leader_epoch: 2, partition_epoch: 1, replicas: vec![0, 1], isr: vec![0, 1] };
    let p = manager.apply_leader_and_isr(&tp(), LogConfig::default(), &state, None).unwrap();
    assert!(checkpointed > 0 && checkpointed < end);
    assert_eq!(p.high_watermark(), checkpointed);
}

/// A leader alone in its ISR holding one batch, and broker 1's fetch from its log end.
async fn leader_with_one_record_and_a_fetch_at_its_end() -> (Cluster, partition::FollowerFetch) {
    let cluster = leader_alone_in_the_isr().await;
    produce(cluster.node(0), batch(0)).await.unwrap();
    let fetch = partition::FollowerFetch {
        replica_id: 1,
        fetch_offset: leo(cluster.node(0)),
        last_fetched_epoch: -1,
        current_leader_epoch: cluster.node(0).partition().leader_epoch(),
        max_bytes: 1 << 20,
        high_watermark: None,
        log_start_offset: None,
    };
    (cluster, fetch)
}

#[tokio::test]
async fn an_unanswered_isr_proposal_expires_so_the_isr_can_still_grow() {
    let (cluster, caught_up) = leader_with_one_record_and_a_fetch_at_its_end().await;
    let leader = cluster.node(0).partition();
    let now = now_ms();
    // The first caught-up fetch proposes broker 1; the proposal is lost (as when
    // the fetching broker disconnects before its handler could send it).
    let lost = leader.serve_follower_fetch(&caught_up, now, false).proposal;
    assert_eq!(lost.map(|p| p.isr), Some(vec![0, 1]));
    assert!(
        leader.serve_follower_fetch(&caught_up, now + 1_000, false).proposal.is_none(),
        "while a proposal awaits its answer, no second one is made"
    );
    let again = leader.serve_follower_fetch(&caught_up, now + leader::PENDING_ISR_EXPIRY_MS + 1, false).proposal;
    assert_eq!(again.map(|p| p.isr), Some(vec![0, 1]), "an expired proposal is made again");
}

#[tokio::test]
async fn a_fetch_served_inline_steps_aside_while_an_append_holds_the_log() {
    let (cluster, at_end) = leader_with_one_record_and_a_fetch_at_its_end().await;
    let leader = cluster.node(0).partition();
    {
        // As an append does for its write: the log held exclusively.
        let _writing = leader.log().write();
        assert!(
            leader.try_serve_follower_fetch(&at_end, now_ms(), true).is_none(),
            "an async caller must not wait behind a write"
        );
    }
    let reply = leader.try_serve_follower_fetch(&at_end, now_ms(), true).expect("the log is free again");
    assert_eq!(reply.log_end_offset, at_end.fetch_offset);
    assert_eq!(reply.proposal.map(|p| p.isr), Some(vec![0, 1]), "the follower's position was recorded");
}

/// Appends `batch` to `tp` on `node` as leader (acks=1).
async fn produce_to(node: &Node, tp: &TopicPartition, batch: Vec<u8>) {
    let p = node.manager.get(tp).expect("partition hosted");
    tokio::task::spawn_blocking(move || p.append_records(&batch, now_ms(), None)).await.unwrap().unwrap();
}

/// Every byte of `tp`'s log on `node`.
fn log_bytes_of(node: &Node, tp: &TopicPartition) -> Vec<u8> {
    let p = node.manager.get(tp).expect("partition hosted");
    let log = p.log().read();
    log.segments().flat_map(|s| s.read_all().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fetch_session_copies_every_partition_a_leader_leads_within_the_answer_limit() {
    let cluster = Cluster::start(2, fast_config(60_000)).await;
    // Two more partitions led by broker 0 and followed by broker 1 (the
    // test controller only drives orders-0, so these keep this state).
    let others = [TopicPartition::new("orders", 1), TopicPartition::new("payments", 0)];
    let state = LeaderAndIsr { leader: 0, leader_epoch: 1, partition_epoch: 0, replicas: vec![0, 1], isr: vec![0, 1] };
    for tp in &others {
        for id in [0, 1] {
            let endpoint = Some(cluster.node(0).addr.clone());
            cluster.node(id).manager.apply_leader_and_isr(tp, LogConfig::default(), &state, endpoint).unwrap();
        }
    }
    let all: Vec<TopicPartition> = std::iter::once(tp()).chain(others).collect();
    // About 15 KiB per partition: with 4 KiB per partition and 8 KiB per
    // answer, copying takes many rounds, each serving only some partitions.
    for i in 0..24 {
        for tp in &all {
            produce_to(cluster.node(0), tp, batch(i)).await;
        }
    }
    eventually("broker 1 holds every partition's log byte for byte", || {
        all.iter().all(|tp| log_bytes_of(cluster.node(1), tp) == log_bytes_of(cluster.node(0), tp))
    })
    .await;
    assert!(log_bytes_of(cluster.node(0), &all[2]).len() > 8192, "more than one answer's worth per partition");
    let follower = &cluster.node(1).manager;
    assert_eq!(follower.sessions.lock().len(), 1, "one session with broker 0 for all three partitions");
    let fetching = follower.fetchers.lock().values().filter(|f| !f.cancel.is_cancelled()).count();
    assert_eq!(fetching, 3);
    // The high watermark follows too (the ISR is both brokers).
    for tp in &all {
        let end = follower.get(tp).unwrap().log().read().log_end_offset();
        eventually("the follower's high watermark reaches the log end", || {
            follower.get(tp).unwrap().high_watermark() == end
        })
        .await;
    }

    // Deleting one partition on the follower takes it out of the session;
    // the others keep copying.
    follower.delete(&all[1]).unwrap();
    produce_to(cluster.node(0), &all[2], batch(99)).await;
    eventually("the remaining partitions still copy", || {
        log_bytes_of(cluster.node(1), &all[2]) == log_bytes_of(cluster.node(0), &all[2])
    })
    .await;
    assert_eq!(follower.fetchers.lock().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multi_partition_fetch_answers_each_partition_in_order_within_its_byte_limit() {
    let cluster = leader_alone_in_the_isr().await;
    for i in 0..3 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let end = leo(cluster.node(0));
    let epoch = cluster.node(0).partition().leader_epoch();
    let first_batch_len = batch(0).len();
    let fetch = |partition, fetch_offset, last_fetched_epoch| FetchRecordsRequest {
        topic: "orders".into(),
        partition,
        fetch_offset,
        last_fetched_epoch,
        replica_id: 1,
        max_bytes: 1 << 20,
        current_leader_epoch: epoch,
        high_watermark: Some(end),
        log_start_offset: None,
    };
    let mut client = ReplicationClient::connect(format!("http://{}", cluster.node(0).addr)).await.unwrap();

    // One byte for the whole answer: the first partition still gets its first
    // batch, an unknown partition is refused, and the repeat of the first
    // one is not served this time (no records, high watermark -1).
    let request = strom_proto::replication::FetchPartitionsRequest {
        replica_id: 1,
        partitions: vec![fetch(0, 0, -1), fetch(9, 0, -1), fetch(0, 0, -1)],
        max_bytes: 1,
    };
    let answers = client.fetch_partitions(request).await.unwrap().into_inner().partitions;
    assert_eq!(answers.len(), 3, "one answer per partition asked for");
    assert_eq!(answers[0].error_code, 0, "{}", answers[0].error_message);
    assert_eq!(answers[0].records.len(), first_batch_len, "exactly the first batch");
    assert_eq!(answers[0].high_watermark, end);
    assert_eq!(answers[1].error_code, error_codes::NOT_LEADER_OR_FOLLOWER);
    assert!(answers[1].error_message.contains("does not host"), "{}", answers[1].error_message);
    assert_eq!((answers[2].error_code, answers[2].records.len(), answers[2].high_watermark), (0, 0, -1));

    // All partitions caught up: the fetch waits, and new records in any of them end the wait.
    let caught_up = strom_proto::replication::FetchPartitionsRequest {
        replica_id: 1,
        partitions: vec![fetch(0, end, epoch)],
        max_bytes: 1 << 20,
    };
    let started = std::time::Instant::now();
    let answers = client.fetch_partitions(caught_up.clone()).await.unwrap().into_inner().partitions;
    assert_eq!((answers[0].error_code, answers[0].records.len()), (0, 0));
    assert!(started.elapsed() >= Duration::from_millis(150), "waited about replica.fetch.wait.max.ms");
    let waiting = tokio::spawn({
        let mut client = client.clone();
        async move { client.fetch_partitions(caught_up).await.unwrap().into_inner().partitions }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    produce(cluster.node(0), batch(7)).await.unwrap();
    let answers = waiting.await.unwrap();
    assert_eq!(answers[0].records.len(), batch(7).len(), "the new batch is sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_finding_a_damaged_batch_refuses_it_steps_aside_and_repairs_from_the_new_leader() {
    leader_with_a_damaged_batch(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_background_scrub_finds_a_leaders_damaged_active_segment_and_it_steps_aside() {
    leader_with_a_damaged_batch(false).await;
}

/// A byte of a running leader's active segment rots on disk. With
/// `verify.reads=always` (and no scrub) the next consumer read finds it and
/// refuses it; with `once` the bytes the leader appended are not read
/// again, and the background scrub finds it. Either way the leader steps
/// aside for an in-sync replica and repairs its log from the new leader.
async fn leader_with_a_damaged_batch(verify_every_read: bool) {
    use std::os::unix::fs::FileExt;
    let scrub_bytes_per_sec = if verify_every_read { 0 } else { 64 * 1024 * 1024 };
    let cluster = Cluster::start(3, ReplicaConfig { scrub_bytes_per_sec, ..fast_config(2000) }).await;
    let leader = cluster.node(0).partition();
    leader.log().write().set_config(LogConfig { verify_every_read, ..LogConfig::default() });
    for i in 0..20 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let end = leo(cluster.node(0));
    eventually("the followers have everything and the HW covers it", || {
        leo(cluster.node(1)) == end
            && leo(cluster.node(2)) == end
            && cluster.node(0).partition().high_watermark() == end
    })
    .await;
    let good = log_bytes(cluster.node(1));
    // Flip a byte inside the records of the leader's 6th batch, on disk.
    let (path, position, damaged_offset) = {
        let log = leader.log().read();
        assert_eq!(log.segment_count(), 1, "the damage is in the active segment");
        let segment = log.segments().next().unwrap();
        let mut position = 0;
        for _ in 0..5 {
            position += segment.header_at(position).unwrap().size() as u64;
        }
        (segment.log_path().to_owned(), position, segment.header_at(position).unwrap().base_offset)
    };
    let before = crate::log::scrub::corrupt_batches_total();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position + 70).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], position + 70).unwrap();

    if verify_every_read {
        leader_refuses_the_damage(&cluster, &leader, damaged_offset).await;
    } else {
        // (Found, the leader may step aside and repair its log at once.)
        eventually("the scrub found the damage", || {
            leader.damaged_from() == Some(damaged_offset) || cluster.controller.current().leader != 0
        })
        .await;
    }
    assert!(crate::log::scrub::corrupt_batches_total() > before, "counted");

    // The leader steps aside for an in-sync replica, then truncates and
    // fetches the rest again (it may be back in the ISR by the next look).
    eventually("another in-sync replica leads", || cluster.controller.current().leader != 0).await;
    eventually("the old leader repaired its log from the new one", || {
        leader.damaged_from().is_none() && log_bytes(cluster.node(0)) == good
    })
    .await;
    eventually("and rejoins the ISR", || cluster.controller.current().isr.contains(&0)).await;
}

/// A consumer read and a follower fetch through the batch damaged at
/// `damaged_offset` of `leader`'s log are refused, never served; the
/// batches below it still are.
async fn leader_refuses_the_damage(cluster: &Cluster, leader: &Arc<Partition>, damaged_offset: i64) {
    match leader.read_committed(damaged_offset, 1 << 20, true) {
        Err(LogError::StoredBatchCorrupt { offset, .. }) => assert_eq!(offset, damaged_offset),
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert_eq!(leader.damaged_from(), Some(damaged_offset));
    // The sound batches below the damage are still served, up to it.
    let (below, _) = leader.read_committed(0, 1 << 20, true).unwrap();
    let served = below.records.expect("the batches before the damage").read_to_bytes().unwrap();
    crate::log::scrub::verify_read(&tp(), &served, 0).unwrap();
    assert_eq!(crate::log::batch::validate_replicated_batches(&served).unwrap().len(), 5);
    // A follower fetch through it gets KAFKA_STORAGE_ERROR.
    let fetch = partition::FollowerFetch {
        replica_id: 2,
        fetch_offset: damaged_offset,
        last_fetched_epoch: -1,
        current_leader_epoch: -1,
        max_bytes: 1 << 20,
        high_watermark: None,
        log_start_offset: None,
    };
    let mut reply = leader.serve_follower_fetch(&fetch, now_ms(), false);
    // (Its fetch offset went back, so it is proposed out of the ISR, as the service would.)
    if let Some(proposal) = reply.proposal.take() {
        cluster.node(0).manager.send_isr_proposal(leader.clone(), proposal);
    }
    assert!(
        matches!(reply.outcome, partition::FetchOutcome::Refused { code: error_codes::KAFKA_STORAGE_ERROR, .. }),
        "{:?}",
        reply.outcome
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_background_scrub_finds_a_followers_damaged_sealed_segment_and_it_is_repaired_from_the_leader() {
    use std::os::unix::fs::FileExt;
    let cluster = Cluster::start(3, fast_config(2000)).await;
    for i in 0..10 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let end = leo(cluster.node(0));
    eventually("follower 1 has everything", || leo(cluster.node(1)) == end).await;
    // Seal follower 1's segment, so the scrub reads it; more records follow.
    let follower = cluster.node(1).partition();
    follower.log().write().roll().unwrap();
    for i in 10..20 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let end = leo(cluster.node(0));
    eventually("follower 1 has everything again", || leo(cluster.node(1)) == end).await;
    let good = log_bytes(cluster.node(0));
    let before = crate::log::scrub::corrupt_batches_total();
    // A byte of its 4th batch rots on disk, size and time kept as they are.
    {
        let log = follower.log().read();
        let segment = log.segments().next().unwrap();
        let mut position = 0;
        for _ in 0..3 {
            position += segment.header_at(position).unwrap().size() as u64;
        }
        let file = std::fs::OpenOptions::new().read(true).write(true).open(segment.log_path()).unwrap();
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, position + 65).unwrap();
        file.write_all_at(&[byte[0] ^ 0x08], position + 65).unwrap();
    }
    eventually("the scrub found the damage", || crate::log::scrub::corrupt_batches_total() > before).await;
    eventually("follower 1 is repaired from the leader", || log_bytes(cluster.node(1)) == good).await;
    eventually("and in the ISR", || cluster.controller.current().isr.contains(&1)).await;
    assert!(cluster.controller.isr_changes.load(Ordering::SeqCst) >= 1, "it left the ISR meanwhile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_records_moves_every_replicas_log_start_and_waits_for_the_isr() {
    let cluster = Cluster::start(3, fast_config(60_000)).await;
    for i in 0..20 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let end = leo(cluster.node(0));
    let leader = cluster.node(0).partition();
    eventually("the HW covers the log", || leader.high_watermark() == end).await;
    let delete = |offset| {
        let p = leader.clone();
        async move { tokio::task::spawn_blocking(move || p.delete_records_to(offset)).await.unwrap() }
    };
    // Beyond the high watermark: refused, nothing moves.
    let beyond = delete(end + 1).await;
    assert!(matches!(beyond, Err(ReplicaError::DeleteBeyondHighWatermark { .. })), "{beyond:?}");
    assert!(matches!(delete(-2).await, Err(ReplicaError::DeleteBeyondHighWatermark { .. })));
    // Answered once every in-sync replica's log starts there.
    let target = end / 2;
    let deleted = delete(target).await.unwrap();
    assert_eq!(deleted.target, target);
    let low = leader.wait_for_low_watermark(&deleted, Duration::from_secs(10)).await.unwrap();
    assert!(low >= target);
    for n in 0..3 {
        assert_eq!(cluster.node(n).partition().log().read().log_start_offset(), target, "replica {n}");
    }
    // A follower that stopped (the controller does not notice): the wait times out.
    cluster.node(2).crash();
    let deleted = delete(-1).await.unwrap();
    assert_eq!(deleted.target, end, "-1 is the high watermark");
    let timed_out = leader.wait_for_low_watermark(&deleted, Duration::from_millis(300)).await;
    assert!(matches!(timed_out, Err(ReplicaError::LowWatermarkTimeout { .. })), "{timed_out:?}");
    eventually("the live follower follows", || cluster.node(1).partition().log().read().log_start_offset() == end)
        .await;
    // A follower on the followers' side does not take DeleteRecords.
    let p = cluster.node(1).partition().clone();
    let refused = tokio::task::spawn_blocking(move || p.delete_records_to(end)).await.unwrap();
    assert!(matches!(refused, Err(ReplicaError::NotLeader { .. })), "{refused:?}");
}

/// The marker door's view of the cluster for these tests: every partition
/// named `orders-*` exists, min.insync.replicas is 2, and committed markers
/// are recorded.
#[derive(Default)]
struct MarkerLog {
    committed: Mutex<Vec<(i64, TopicPartition)>>,
}

impl txn_markers::MarkerContext for MarkerLog {
    fn partition_exists(&self, partition: &TopicPartition) -> bool {
        partition.topic == "orders"
    }

    fn min_insync_replicas(&self, _topic: &str) -> usize {
        2
    }

    fn marker_committed(&self, marker: &txn_markers::MarkerWrite, partition: &TopicPartition) {
        self.committed.lock().push((marker.producer_id, partition.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transaction_markers_are_committed_through_the_door_and_replicated() {
    use txn_markers::{MarkerWrite, write_txn_markers};
    let cluster = Cluster::start(2, fast_config(60_000)).await;
    eventually("both replicas in the ISR", || cluster.node(0).partition().isr() == vec![0, 1]).await;
    let p = cluster.node(0).partition();
    let batch = crate::log::txn_tests::txn_batch(7, 0, 3);
    tokio::task::spawn_blocking(move || p.append_records(&batch, now_ms(), None)).await.unwrap().unwrap();
    let context = Arc::new(MarkerLog::default());
    let abort = |partitions: Vec<TopicPartition>| MarkerWrite {
        producer_id: 7,
        producer_epoch: 0,
        committed: false,
        coordinator_epoch: 2,
        transaction_version: 0,
        partitions,
    };
    let missing = TopicPartition::new("missing", 0);
    let elsewhere = TopicPartition::new("orders", 9);
    let answers = write_txn_markers(
        &cluster.node(0).manager,
        context.clone(),
        vec![abort(vec![tp(), missing.clone(), elsewhere.clone()])],
        DEADLINE,
    )
    .await;
    let codes: Vec<(TopicPartition, i16)> = answers[0].iter().map(|o| (o.partition.clone(), o.error_code)).collect();
    use kafka_protocol::error::ResponseError as E;
    assert_eq!(
        codes,
        vec![(tp(), 0), (missing, E::UnknownTopicOrPartition.code()), (elsewhere, E::NotLeaderOrFollower.code())]
    );
    assert_eq!(*context.committed.lock(), vec![(7, tp())], "the hook saw the committed marker only");
    assert!(cluster.node(0).partition().high_watermark() >= 4, "answered once committed");
    // The follower has it, with the same transaction state.
    eventually("the follower has the marker", || leo(cluster.node(1)) == 4).await;
    let state = |id: i32| {
        let p = cluster.node(id).partition();
        let log = p.log().read();
        (log.first_unstable_offset(), log.aborted_transactions(0, i64::MAX), log.producer_states().clone())
    };
    assert_eq!(state(1), state(0));
    assert_eq!(state(0).1.len(), 1);
    // A second aborted transaction after it: a read_committed fetch of the
    // first batch alone lists only the transaction it overlaps.
    let p = cluster.node(0).partition();
    let batch = crate::log::txn_tests::txn_batch(8, 0, 2);
    tokio::task::spawn_blocking(move || p.append_records(&batch, now_ms(), None)).await.unwrap().unwrap();
    let second = MarkerWrite { producer_id: 8, ..abort(vec![tp()]) };
    let answers = write_txn_markers(&cluster.node(0).manager, context.clone(), vec![second], DEADLINE).await;
    assert_eq!(answers[0][0].error_code, 0);
    let leader = cluster.node(0).partition();
    let first_batch = leader.read_for_consumer(0, 1, true, true).unwrap();
    let listed: Vec<(i64, i64)> = first_batch.aborted.iter().map(|t| (t.producer_id, t.first_offset)).collect();
    assert_eq!(listed, vec![(7, 0)]);
    let whole = leader.read_for_consumer(4, 1 << 20, true, true).unwrap();
    let listed: Vec<(i64, i64)> = whole.aborted.iter().map(|t| (t.producer_id, t.first_offset)).collect();
    assert_eq!(listed, vec![(8, 4)], "from offset 4, the first transaction has ended");
    assert_eq!((whole.last_stable_offset, whole.high_watermark), (7, 7));

    // A follower refuses; a stale coordinator is fenced.
    let on_follower =
        write_txn_markers(&cluster.node(1).manager, context.clone(), vec![abort(vec![tp()])], DEADLINE).await;
    assert_eq!(on_follower[0][0].error_code, E::NotLeaderOrFollower.code());
    let stale = MarkerWrite { coordinator_epoch: 1, ..abort(vec![tp()]) };
    let fenced = write_txn_markers(&cluster.node(0).manager, context, vec![stale], DEADLINE).await;
    assert_eq!(fenced[0][0].error_code, E::TransactionCoordinatorFenced.code());
}

/// The coordinators' storage refuses writes while fewer than its minimum of
/// replicas are in sync (`transaction.state.log.min.isr`): a transaction's
/// state is never acknowledged from the leader's copy alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_storage_refuses_writes_with_too_few_in_sync_replicas() {
    use crate::group::store::{BrokerOffsetsLog, LogRecord, OffsetsLog, StoreError};
    let cluster = leader_alone_in_the_isr().await;
    let record =
        || vec![LogRecord { key: bytes::Bytes::from_static(b"k"), value: Some(bytes::Bytes::from_static(b"v")) }];
    let strict =
        Arc::new(BrokerOffsetsLog::for_topic(Arc::downgrade(&cluster.node(0).manager), "orders").with_min_insync(2));
    let s = strict.clone();
    let before = leo(cluster.node(0));
    let refused = tokio::task::spawn_blocking(move || s.append(0, &record())).await.unwrap();
    assert!(matches!(refused, Err(StoreError::NotReplicated { topic: "orders", partition: 0, .. })), "{refused:?}");
    let message = refused.as_ref().map_err(ToString::to_string).unwrap_err();
    assert!(message.starts_with("orders partition 0 was not replicated"), "names the storage's own topic: {message}");
    assert_eq!(leo(cluster.node(0)), before, "a refused write leaves nothing in the log");
    // One in-sync replica is enough for storage that asks for one.
    let lenient = Arc::new(BrokerOffsetsLog::for_topic(Arc::downgrade(&cluster.node(0).manager), "orders"));
    let l = lenient.clone();
    tokio::task::spawn_blocking(move || l.append(0, &record())).await.unwrap().expect("appended with one in sync");
    assert!(leo(cluster.node(0)) > before, "the lenient write is in the log");
    lenient.replicated(0).await.expect("replicated to the ISR of one");
}
