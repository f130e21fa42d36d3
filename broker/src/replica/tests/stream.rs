//! `FetchStream` between in-process brokers (the parent module's harness):
//! one stream carries a session's rounds, `replica.fetch.stream=false`
//! goes back to calls, a leader without the stream (the previous version)
//! is fetched from by calls until it is upgraded, every request on a stream
//! is authorized by the caller's certificate, and the leader's task for a
//! stream ends when the follower goes, breaks the one-request rule, or the
//! leader stops.

use strom_proto::replication::{FetchPartitionsRequest, FetchPartitionsResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

use super::*;
use crate::tls::certs::Ca;
use crate::tls::{Identity, InternalTls};

impl Cluster {
    /// Crashes broker `id` and starts it again on the same data dir and
    /// address, serving as `serving` says (a rolling upgrade's restart).
    async fn restart_in_place(&mut self, id: i32, serving: Serving) {
        let addr = self.node(id).addr.clone();
        self.node(id).crash();
        self.controller.set_reachable(id, false);
        let (dir, config) = (self.dirs[id as usize].path(), self.config.clone());
        let node = Node::start_serving(id, dir, config, &self.controller, serving, &addr).await;
        self.controller.register(id, &node);
        self.nodes[id as usize] = node;
        let state = self.controller.current();
        self.controller.publish(state);
    }
}

fn counts(node: &Node) -> FetchTransportCounts {
    node.manager.fetch_transport_stats().counts()
}

/// Produces a batch on broker 0 and waits until broker 1 has it.
async fn produce_and_copy(cluster: &Cluster, i: usize) {
    produce(cluster.node(0), batch(i)).await.unwrap();
    let end = leo(cluster.node(0));
    eventually("broker 1 copies the new batch", || leo(cluster.node(1)) == end).await;
}

/// A fetch of `orders-0` as `replica_id` from `fetch_offset`, as a follower
/// at the leader's epoch sends it.
fn fetch_as(replica_id: i32, fetch_offset: i64, epoch: i32, high_watermark: i64) -> FetchPartitionsRequest {
    FetchPartitionsRequest {
        replica_id,
        partitions: vec![FetchRecordsRequest {
            topic: tp().topic,
            partition: 0,
            fetch_offset,
            last_fetched_epoch: if fetch_offset == 0 { -1 } else { epoch },
            replica_id,
            max_bytes: 1 << 20,
            current_leader_epoch: epoch,
            high_watermark: Some(high_watermark),
            log_start_offset: None,
        }],
        max_bytes: 1 << 20,
    }
}

/// A stream opened by hand: requests in, answers out.
struct RawStream {
    requests: mpsc::Sender<FetchPartitionsRequest>,
    answers: Streaming<FetchPartitionsResponse>,
}

impl RawStream {
    /// Opens a stream on `channel` with `first` as its first request.
    async fn open(channel: tonic::transport::Channel, first: FetchPartitionsRequest) -> Result<RawStream, Status> {
        let (requests, receiver) = mpsc::channel(2);
        requests.send(first).await.expect("the stream takes its first request");
        let mut client = ReplicationClient::new(channel);
        let answers = client.fetch_stream(ReceiverStream::new(receiver)).await?.into_inner();
        Ok(RawStream { requests, answers })
    }

    async fn send(&self, request: FetchPartitionsRequest) {
        self.requests.send(request).await.expect("the stream takes a request");
    }

    async fn answer(&mut self) -> Result<Option<FetchPartitionsResponse>, Status> {
        self.answers.message().await
    }
}

fn plain_channel(addr: &str) -> tonic::transport::Channel {
    crate::tls::channel(None, addr, None, None).expect("a channel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_stream_carries_every_round_of_a_session_until_the_setting_turns_it_off() {
    let cluster = Cluster::start(2, fast_config(60_000)).await;
    produce_and_copy(&cluster, 0).await;
    let before = counts(cluster.node(0));
    assert_eq!((before.streams_opened, before.streams_open, before.unary_requests), (1, 1, 0), "{before:?}");
    // Each batch needs a round of its own after the previous one's.
    for i in 1..=5 {
        produce_and_copy(&cluster, i).await;
    }
    let after = counts(cluster.node(0));
    assert_eq!(after.streams_opened, 1, "every round went over the one stream: {after:?}");
    assert!(after.stream_requests >= before.stream_requests + 4, "{before:?} -> {after:?}");
    assert_eq!(after.unary_requests, 0, "{after:?}");
    assert_eq!(counts(cluster.node(1)).stream_attempts, 1, "the follower opened one stream");
    assert_eq!(log_bytes(cluster.node(1)), log_bytes(cluster.node(0)));

    // replica.fetch.stream=false: the follower drops its stream (the
    // leader's task ends) and fetches by calls.
    let mut calls = cluster.config.clone();
    calls.fetch_stream = false;
    cluster.node(1).manager.set_replica_config(calls);
    eventually("the leader's stream task ends", || counts(cluster.node(0)).streams_open == 0).await;
    let switched = counts(cluster.node(0));
    for i in 6..=8 {
        produce_and_copy(&cluster, i).await;
    }
    let by_calls = counts(cluster.node(0));
    assert!(by_calls.unary_requests >= switched.unary_requests + 2, "{switched:?} -> {by_calls:?}");
    assert_eq!(
        (by_calls.streams_opened, by_calls.stream_requests),
        (switched.streams_opened, switched.stream_requests),
        "no stream since"
    );
    assert_eq!(log_bytes(cluster.node(1)), log_bytes(cluster.node(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_fetches_by_calls_from_a_leader_without_the_stream_and_streams_once_it_is_upgraded() {
    let serving = |id| if id == 0 { Serving::WithoutStream } else { Serving::Plain };
    let mut cluster = Cluster::start_serving(2, fast_config(60_000), serving).await;
    for i in 0..5 {
        produce_and_copy(&cluster, i).await;
    }
    assert_eq!(log_bytes(cluster.node(1)), log_bytes(cluster.node(0)));
    let follower = counts(cluster.node(1));
    assert_eq!(
        (follower.stream_attempts, follower.stream_fallbacks),
        (1, 1),
        "one try, then calls for the session: {follower:?}"
    );
    let old = counts(cluster.node(0));
    assert_eq!(old.streams_opened, 0, "{old:?}");
    assert!(old.unary_requests >= 5, "{old:?}");

    // The leader goes down for its upgrade: once a call fails the follower
    // tries the stream again, and gets it from the upgraded leader at the
    // same address.
    let attempts = follower.stream_attempts;
    cluster.node(0).crash();
    eventually("the follower tries the stream again after a failed call", || {
        counts(cluster.node(1)).stream_attempts > attempts
    })
    .await;
    cluster.restart_in_place(0, Serving::Plain).await;
    cluster.controller.set_reachable(0, true);
    let state = cluster.controller.current();
    cluster.controller.publish(state);
    for i in 5..8 {
        produce_and_copy(&cluster, i).await;
    }
    let upgraded = counts(cluster.node(0));
    assert_eq!((upgraded.streams_opened, upgraded.unary_requests), (1, 0), "{upgraded:?}");
    assert!(upgraded.stream_requests >= 3, "{upgraded:?}");
    assert_eq!(counts(cluster.node(1)).stream_fallbacks, 1, "no fallback from the upgraded leader");
    assert_eq!(log_bytes(cluster.node(1)), log_bytes(cluster.node(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_on_a_stream_must_name_the_replica_of_the_callers_certificate() {
    let ca = Ca::generate("strom-test-ca").unwrap();
    let tls = |id: i32| {
        let pair = ca.issue(Identity::Broker(id), &[], &[]).unwrap();
        InternalTls::from_pem(&ca.pem().cert, &pair).unwrap()
    };
    let cluster = Cluster::start_serving(2, fast_config(60_000), |id| Serving::Tls(tls(id))).await;
    produce_and_copy(&cluster, 0).await;
    assert_eq!(counts(cluster.node(0)).streams_opened, 1, "the follower fetches over a stream, over TLS");
    let leader = cluster.node(0).partition();
    eventually("the high watermark covers the log", || leader.high_watermark() == leo(cluster.node(0))).await;

    // Broker 1 stops; still in the ISR, it holds the high watermark back.
    cluster.node(1).crash();
    cluster.controller.set_reachable(1, false);
    eventually("broker 1's stream ends at the leader", || counts(cluster.node(0)).streams_open == 0).await;
    let hw = leader.high_watermark();
    for i in 1..4 {
        produce(cluster.node(0), batch(i)).await.unwrap();
    }
    let (end, epoch) = (leo(cluster.node(0)), leader.leader_epoch());
    assert!(hw < end && leader.isr() == vec![0, 1], "hw {hw}, end {end}, isr {:?}", leader.isr());

    let to_leader =
        |tls: Arc<InternalTls>| crate::tls::channel(Some(&tls), &cluster.node(0).addr, Some(0), None).unwrap();
    // Broker 2's certificate: a fetch as replica 2 is served (2 is no
    // replica: refused by the partition, but answered), then one as
    // replica 1 on the same stream ends it, nothing recorded.
    let mut forged = RawStream::open(to_leader(tls(2)), fetch_as(2, end, epoch, end)).await.unwrap();
    let own = forged.answer().await.unwrap().expect("an answer to a fetch naming the caller");
    assert_eq!(own.partitions[0].error_code, error_codes::NOT_LEADER_OR_FOLLOWER, "{own:?}");
    forged.send(fetch_as(1, end, epoch, end)).await;
    let denied = forged.answer().await;
    assert!(matches!(&denied, Err(s) if s.code() == Code::PermissionDenied), "{denied:?}");
    assert!(!matches!(forged.answer().await, Ok(Some(_))), "nothing more on the stream");
    // As the first request of a stream too.
    let opened = RawStream::open(to_leader(tls(2)), fetch_as(1, end, epoch, end)).await;
    let denied = match opened {
        Ok(mut stream) => stream.answer().await.map(|_| ()),
        Err(status) => Err(status),
    };
    assert!(matches!(&denied, Err(s) if s.code() == Code::PermissionDenied), "{denied:?}");
    assert_eq!(leader.high_watermark(), hw, "the forged fetches at the log end moved the high watermark");
    assert_eq!(leader.isr(), vec![0, 1]);

    // Broker 1's own certificate: the same fetch counts.
    let mut real = RawStream::open(to_leader(tls(1)), fetch_as(1, end, epoch, end)).await.unwrap();
    let answer = real.answer().await.unwrap().expect("an answer");
    assert_eq!(answer.partitions[0].error_code, error_codes::NONE, "{answer:?}");
    eventually("broker 1's fetch moves the high watermark", || leader.high_watermark() == end).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leaders_stream_task_ends_when_the_follower_goes_breaks_the_rules_or_the_leader_stops() {
    let cluster = leader_alone_in_the_isr().await;
    produce(cluster.node(0), batch(0)).await.unwrap();
    let leader = cluster.node(0).partition();
    let (end, epoch) = (leo(cluster.node(0)), leader.leader_epoch());
    eventually("broker 1's stream ends at the leader (it crashed)", || counts(cluster.node(0)).streams_open == 0).await;
    let opened = counts(cluster.node(0)).streams_opened;

    // Through a TCP relay: two rounds on one stream, then the connection drops.
    let (relay_addr, relay) = relay_once(cluster.node(0).addr.clone()).await;
    let mut stream = RawStream::open(plain_channel(&relay_addr), fetch_as(1, 0, epoch, 0)).await.unwrap();
    let first = stream.answer().await.unwrap().expect("an answer");
    assert!(!first.partitions[0].records.is_empty(), "{first:?}");
    stream.send(fetch_as(1, 0, epoch, 0)).await;
    stream.answer().await.unwrap().expect("a second answer on the same stream");
    let now = counts(cluster.node(0));
    assert_eq!((now.streams_opened, now.streams_open), (opened + 1, 1), "{now:?}");
    relay.abort();
    eventually("the task ends with the connection", || counts(cluster.node(0)).streams_open == 0).await;
    drop(stream);

    // A second request before the answer to the first (a long poll here).
    let mut slow = cluster.config.clone();
    slow.fetch_wait_max = Duration::from_secs(30);
    cluster.node(0).manager.set_replica_config(slow);
    let mut eager = RawStream::open(plain_channel(&cluster.node(0).addr), fetch_as(1, end, epoch, end)).await.unwrap();
    eager.send(fetch_as(1, end, epoch, end)).await;
    let refused = eager.answer().await;
    assert!(matches!(&refused, Err(s) if s.code() == Code::FailedPrecondition), "{refused:?}");
    eventually("the task ends on the protocol error", || counts(cluster.node(0)).streams_open == 0).await;
    cluster.node(0).manager.set_replica_config(cluster.config.clone());

    // The leader stops replicating (shutdown) while a stream waits for its next request.
    let mut waiting = RawStream::open(plain_channel(&cluster.node(0).addr), fetch_as(1, 0, epoch, 0)).await.unwrap();
    waiting.answer().await.unwrap().expect("an answer");
    assert_eq!(counts(cluster.node(0)).streams_open, 1);
    cluster.node(0).manager.shutdown();
    let ended = waiting.answer().await;
    assert!(matches!(&ended, Err(s) if s.code() == Code::Unavailable), "{ended:?}");
    eventually("the task ends at shutdown", || counts(cluster.node(0)).streams_open == 0).await;
}

/// A relay on a free port to `to` for one connection; aborting its task
/// drops both sides at once (a network failure, no HTTP/2 goodbye).
async fn relay_once(to: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut inbound, _) = listener.accept().await.expect("the client connects");
        let mut outbound = tokio::net::TcpStream::connect(&to).await.expect("the leader accepts");
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    });
    (addr, task)
}
