//! The internal plane under attack, on a 3-broker cluster running mutual
//! TLS (the harness's default): the forged calls of issue 18 are refused.
//!
//! - A fetch without a client certificate never gets past TLS; one with
//!   broker X's certificate claiming to be replica Y is PERMISSION_DENIED
//!   (as a call or on a FetchStream),
//!   so with both followers frozen an acks=all record stays unacknowledged
//!   and the high watermark does not move.
//! - A Raft AppendEntries or Vote with a huge term naming another voter than
//!   its certificate is refused, as is one without a certificate or from a
//!   broker outside the quorum; the active controller stays.
//! - Admin (DeleteTopic) without a certificate, or with one the cluster CA
//!   did not sign, is refused and the topic stays.
//! - Raft.Propose from a broker that is not a member is refused.
//! - A broker that is a controller learner (every broker is one) cannot make
//!   itself a voter through Rejoin: only a voter removed after losing its
//!   log (recorded so by the active controller, which alone may propose
//!   that record) is made one again. Nor can it act as a Raft leader or
//!   candidate with its own certificate: AppendEntries and Vote in a huge
//!   term naming itself are refused by the voter and by another learner
//!   (which asks the voter it knows), and the active controller stays.
//! - Throughout, an idempotent acks=all producer writes another topic; after
//!   the attacks a leader is killed (-9) and every acknowledged record is
//!   read back once, in order (the history checker).
//! - Certificates are rotated on disk (a new CA trusted alongside the old,
//!   new leaf certificates, the old CA removed) while an idempotent producer
//!   runs: no send fails and no broker restarts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use openraft::Vote;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use strom_broker::controller::rejoin::{PeerStatus, RejoinReply, RejoinRequest, RejoinStep, Stage};
use strom_broker::controller::{Command, TypeConfig};
use strom_broker::tls::{Identity, InternalTls, TlsFiles};
use strom_proto::admin::admin_client::AdminClient;
use strom_proto::admin::{DeleteTopicRequest, DescribeTopicsRequest};
use strom_proto::raft::RaftMessage;
use strom_proto::raft::raft_client::RaftClient;
use strom_proto::replication::replication_client::ReplicationClient;
use strom_proto::replication::{FetchPartitionsRequest, FetchRecordsRequest};
use tonic::transport::Channel;

use common::cluster::load::{ProduceLoad, producer_config};
use common::cluster::{Cluster, FAST_FAILOVER, SPARE_BROKER_ID, create_topic, verify_history_and_replicas, wait_until};

const TOPIC: &str = "guarded";
/// The topic an idempotent acks=all producer writes to through every attack.
const HISTORY: &str = "history";
const HISTORY_PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(120);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// One record, acks=all, no retries, giving up after `timeout`.
fn produce_once(bootstrap: &str, timeout: Duration) -> Result<i64, String> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("message.timeout.ms", timeout.as_millis().to_string())
        .set("request.timeout.ms", timeout.as_millis().to_string())
        .create()
        .expect("create an rdkafka producer");
    block_on(producer.send(FutureRecord::<str, str>::to(TOPIC).partition(0).payload("probe"), Timeout::After(timeout)))
        .map(|d| d.offset)
        .map_err(|(e, _)| e.to_string())
}

fn fetch(replica_id: i32, fetch_offset: i64) -> FetchRecordsRequest {
    FetchRecordsRequest {
        topic: TOPIC.into(),
        partition: 0,
        fetch_offset,
        last_fetched_epoch: -1,
        replica_id,
        max_bytes: 1 << 20,
        current_leader_epoch: -1,
        high_watermark: None,
        log_start_offset: None,
    }
}

fn raft_message<T: serde::Serialize>(message: &T) -> RaftMessage {
    RaftMessage { payload: serde_json::to_vec(message).expect("encode a Raft message") }
}

/// A forged AppendEntries: leader `named`, term 1,000,000.
fn forged_append(named: i32) -> RaftMessage {
    let request = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1_000_000, named as u64),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    };
    raft_message(&request)
}

/// A forged vote request: candidate `named`, term 1,000,000.
fn forged_vote(named: i32) -> RaftMessage {
    raft_message(&VoteRequest::<u64>::new(Vote::new(1_000_000, named as u64), None))
}

fn assert_denied<T: std::fmt::Debug>(what: &str, result: Result<T, tonic::Status>) {
    match result {
        Err(status) if status.code() == tonic::Code::PermissionDenied => {}
        other => panic!("{what}: expected PERMISSION_DENIED, got {other:?}"),
    }
}

/// A call that must fail below gRPC (no TLS session could be set up), so
/// no service ever saw it.
fn assert_refused_at_transport<T: std::fmt::Debug>(what: &str, result: Result<T, tonic::Status>) {
    match result {
        Err(status) if status.code() != tonic::Code::PermissionDenied && status.code() != tonic::Code::Ok => {}
        other => panic!("{what}: expected a transport failure, got {other:?}"),
    }
}

/// TLS material with the cluster CA as trust but `cert`/`key` from elsewhere.
fn tls_with(ca: &std::path::Path, pair: &strom_broker::tls::certs::Pair) -> Arc<InternalTls> {
    InternalTls::load(TlsFiles { ca: ca.to_path_buf(), cert: pair.cert.clone(), key: pair.key.clone() })
        .expect("load TLS files")
}

/// A raw TLS connection that trusts the cluster CA but presents no client
/// certificate: the server ends it before any application data.
async fn tls_without_client_certificate(cluster: &Cluster, id: i32) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pem = std::fs::read(&cluster.certs().ca).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = cluster.broker(id).internal_addr();
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut stream = match tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await {
        Ok(s) => s,
        Err(e) => return Err(format!("handshake: {e}")),
    };
    // TLS 1.3: the server checks the client's (missing) certificate after
    // the client considers the handshake done; its refusal comes as an alert.
    let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
        Ok(Ok(0)) => Err("closed".into()),
        Ok(Err(e)) => Err(format!("read: {e}")),
        Ok(Ok(n)) => panic!("the server answered {n} bytes to a client without a certificate"),
        Err(_) => panic!("the server neither answered nor closed a connection without a client certificate"),
    }
}

#[test]
fn a_learner_can_neither_make_itself_a_voter_nor_lead() {
    // Broker 0 alone votes; brokers 1 and 2 follow the metadata log as learners.
    let cluster = Cluster::start_with_voters(3, 1, "learner-rejoin", FAST_FAILOVER);
    assert_eq!(cluster.wait_for_controller(&[], TIMEOUT), 0);
    let rt = runtime();
    rt.block_on(async {
        // Leading or campaigning with its own certificate, naming itself:
        // refused by the voter, and by another learner after asking the voter.
        for target in [0, 1] {
            let mut raft =
                RaftClient::new(cluster.internal_channel(target, Some(&cluster.tls_as(Identity::Broker(2)))));
            assert_denied(
                &format!("AppendEntries from learner 2 to {target}"),
                raft.append_entries(forged_append(2)).await,
            );
            assert_denied(&format!("Vote from learner 2 to {target}"), raft.vote(forged_vote(2)).await);
        }
        // Learner 1 still follows broker 0 (a forged leader would have
        // taken its vote), and broker 0 still leads.
        let mut raft = RaftClient::new(cluster.internal_channel(1, Some(&cluster.tls_as(Identity::Broker(2)))));
        let status = raft.status(raft_message(&())).await.expect("Status is answered").into_inner();
        let status: PeerStatus = serde_json::from_slice(&status.payload).expect("a Status reply");
        assert_eq!(status.leader, Some(0), "learner 1 follows another leader");
    });
    assert_eq!(cluster.wait_for_controller(&[], TIMEOUT), 0);
    rt.block_on(async {
        // Broker 1's own certificate, so the identity check passes.
        let mut raft = RaftClient::new(cluster.internal_channel(0, Some(&cluster.tls_as(Identity::Broker(1)))));
        let rejoin = |stage| raft_message(&RejoinRequest { node_id: 1, directory_id: uuid::Uuid::new_v4(), stage });
        // Once it is a learner, "remove me" is a no-op for a node that is no voter.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let reply = raft.rejoin(rejoin(Stage::Closed)).await.expect("Rejoin is answered");
            let reply: RejoinReply = serde_json::from_slice(&reply.into_inner().payload).expect("a Rejoin reply");
            match reply {
                Ok(RejoinStep::Removed) => break,
                other => assert!(Instant::now() < deadline, "broker 1 never became a learner: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Nor can it record itself as a rejoining voter: only the active controller does.
        let record = raft_message(&Command::VoterRejoining { node_id: 1 });
        assert_denied("Propose VoterRejoining from a learner", raft.propose(record).await);
        // "Make me a voter again" is answered "stay a learner": it never was
        // a voter that lost its log.
        let reply = raft.rejoin(rejoin(Stage::Learner)).await.expect("Rejoin is answered");
        let reply: RejoinReply = serde_json::from_slice(&reply.into_inner().payload).expect("a Rejoin reply");
        assert!(
            matches!(reply, Ok(RejoinStep::Learner)),
            "a learner's Rejoin(Learner) must not make it a voter: {reply:?}"
        );
        let status = raft.status(raft_message(&())).await.expect("Status is answered").into_inner();
        let status: PeerStatus = serde_json::from_slice(&status.payload).expect("a Status reply");
        let voters: Vec<u64> = status.voters.expect("the voters").into_keys().collect();
        assert_eq!(voters, vec![0], "the voters changed");
    });
}

#[test]
fn forged_internal_calls_are_refused() {
    let mut cluster = Cluster::start(3, "internal-security", FAST_FAILOVER);
    let bootstrap = cluster.bootstrap();
    let rt = runtime();
    let controller = cluster.wait_for_controller(&[], TIMEOUT);
    create_topic(&bootstrap, TOPIC, 1, 3, None, &[("min.insync.replicas", "2")]);
    let view = cluster.wait_for_full_isr(TOPIC, 1, TIMEOUT).remove(0);
    produce_once(&bootstrap, Duration::from_secs(30)).expect("a first acks=all record with every replica up");
    // An idempotent acks=all producer writes throughout the attacks; its
    // history is checked after the leader's kill -9 at the end.
    create_topic(&bootstrap, HISTORY, HISTORY_PARTITIONS, 3, None, &[("min.insync.replicas", "2")]);
    cluster.wait_for_full_isr(HISTORY, HISTORY_PARTITIONS, TIMEOUT);
    let load = ProduceLoad::start(producer_config(&bootstrap), HISTORY, HISTORY_PARTITIONS, Duration::from_millis(5));
    load.wait_for_progress(HISTORY_PARTITIONS, 20, TIMEOUT);
    let leader = view.leader;
    let followers: Vec<i32> = view.replicas.iter().copied().filter(|r| *r != leader).collect();
    let (f1, f2) = (followers[0], followers[1]);

    // --- Raft: forged AppendEntries and Vote, huge term.
    let others: Vec<i32> = (0..3).filter(|b| *b != controller).collect();
    let (target, signer) = (others[0], others[1]);
    rt.block_on(async {
        // Signed by a voter's certificate, naming the controller (another voter).
        let mut raft =
            RaftClient::new(cluster.internal_channel(target, Some(&cluster.tls_as(Identity::Broker(signer)))));
        assert_denied("AppendEntries naming another voter", raft.append_entries(forged_append(controller)).await);
        assert_denied("Vote naming another voter", raft.vote(forged_vote(controller)).await);
        // From a broker of the CA that is no member, naming itself.
        let spare = cluster.tls_as(Identity::Broker(SPARE_BROKER_ID));
        let mut raft = RaftClient::new(cluster.internal_channel(target, Some(&spare)));
        assert_denied("AppendEntries from a non-member", raft.append_entries(forged_append(SPARE_BROKER_ID)).await);
        assert_denied("Vote from a non-member", raft.vote(forged_vote(SPARE_BROKER_ID)).await);
        // From the operator.
        let mut raft = RaftClient::new(cluster.operator_channel(target));
        assert_denied("AppendEntries from the operator", raft.append_entries(forged_append(controller)).await);
        // Without TLS at all.
        let mut raft = RaftClient::new(cluster.internal_channel(target, None));
        assert_refused_at_transport("AppendEntries without TLS", raft.append_entries(forged_append(controller)).await);
        assert_refused_at_transport("Vote without TLS", raft.vote(forged_vote(controller)).await);

        // --- Raft.Propose from a broker that is not a member: FenceBroker.
        let mut raft = RaftClient::new(cluster.internal_channel(controller, Some(&spare)));
        let fence = raft_message(&Command::FenceBroker { broker_id: leader });
        assert_denied("Propose from a non-member", raft.propose(fence).await);
    });
    assert_eq!(cluster.wait_for_controller(&[], TIMEOUT), controller, "the active controller stayed");
    let fenced = cluster.partition(TOPIC, 0).expect("the partition").leader;
    assert_eq!(fenced, leader, "the leader was not fenced by the refused proposal");

    // --- Admin: DeleteTopic without a certificate and with a foreign CA's certificate.
    let foreign = strom_broker::tls::certs::write(
        &cluster.root().join("foreign-certs"),
        &strom_broker::tls::certs::CertsRequest { brokers: vec![controller], operator: true, ..Default::default() },
    )
    .expect("write a foreign CA's certificates");
    rt.block_on(async {
        let delete = || DeleteTopicRequest { name: TOPIC.into() };
        let mut admin = AdminClient::new(cluster.internal_channel(leader, None));
        assert_refused_at_transport("DeleteTopic without TLS", admin.delete_topic(delete()).await);
        for pair in &foreign.pairs {
            let tls = tls_with(&cluster.certs().ca, pair);
            let mut admin = AdminClient::new(cluster.internal_channel(leader, Some(&tls)));
            assert_refused_at_transport(
                "DeleteTopic with a foreign CA's certificate",
                admin.delete_topic(delete()).await,
            );
        }
        let refused = tls_without_client_certificate(&cluster, leader).await;
        assert!(refused.is_err(), "a TLS client without a certificate was served");
        // The operator may describe it: the topic is still there.
        let mut admin: AdminClient<Channel> = AdminClient::new(cluster.operator_channel(leader));
        let described = admin
            .describe_topics(DescribeTopicsRequest { names: vec![TOPIC.into()] })
            .await
            .expect("DescribeTopics as the operator")
            .into_inner();
        assert_eq!(described.topics.len(), 1, "{described:?}");
        assert_eq!(described.topics[0].error_code, 0, "the topic still exists: {described:?}");
    });

    // --- Replication: both followers frozen, forged fetches claiming them.
    let hw_before = cluster.high_watermark(TOPIC, 0).expect("the high watermark");
    cluster.pause(f1);
    cluster.pause(f2);
    let stop = Arc::new(AtomicBool::new(false));
    let forger = {
        let stop = stop.clone();
        let f2_tls = cluster.tls_as(Identity::Broker(f2));
        let spare = cluster.tls_as(Identity::Broker(SPARE_BROKER_ID));
        let to_leader = |tls: Option<&Arc<InternalTls>>| {
            strom_broker::tls::channel(tls, &cluster.broker(leader).internal_addr().to_string(), Some(leader), None)
                .expect("a channel to the leader")
        };
        let rt_handle = rt.handle().clone();
        let (as_f2, as_spare, plain) =
            rt.block_on(async { (to_leader(Some(&f2_tls)), to_leader(Some(&spare)), to_leader(None)) });
        std::thread::spawn(move || {
            let mut forged = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rt_handle.block_on(async {
                    for offset in [hw_before + 1, hw_before + 1000] {
                        let mut client = ReplicationClient::new(as_f2.clone());
                        // Broker f2's certificate claiming to be f1.
                        assert_denied("fetch as another replica", client.fetch_records(fetch(f1, offset)).await);
                        let many = FetchPartitionsRequest {
                            replica_id: f1,
                            partitions: vec![fetch(f1, offset)],
                            max_bytes: 1 << 20,
                        };
                        let stream = futures::stream::iter([many.clone()]);
                        let answered = match client.fetch_stream(stream).await {
                            Ok(answers) => answers.into_inner().message().await,
                            Err(status) => Err(status),
                        };
                        assert_denied("FetchStream as another replica", answered);
                        assert_denied("FetchPartitions as another replica", client.fetch_partitions(many).await);
                        let mut client = ReplicationClient::new(as_spare.clone());
                        assert_denied("fetch from a non-member as f2", client.fetch_records(fetch(f2, offset)).await);
                        let mut client = ReplicationClient::new(plain.clone());
                        assert_refused_at_transport("fetch without TLS", client.fetch_records(fetch(f1, offset)).await);
                    }
                });
                forged += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            forged
        })
    };
    let produced = produce_once(&bootstrap, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let rounds = forger.join().unwrap_or_else(|_| cluster.fail("a forged fetch was not refused (see the panic above)"));
    assert!(rounds > 0, "no forged fetch was sent");
    assert!(produced.is_err(), "an acks=all record was acknowledged with both followers frozen: {produced:?}");
    assert_eq!(cluster.high_watermark(TOPIC, 0), Some(hw_before), "the forged fetches moved the high watermark");
    cluster.resume(f1);
    cluster.resume(f2);

    // (Two of three voters were frozen: the controller may have moved
    // since, for that reason alone.)
    cluster.wait_for_controller(&[], TIMEOUT);
    cluster.wait_for_full_isr(TOPIC, 1, TIMEOUT);
    // The record that timed out is now replicated and committed, like any other.
    wait_until("the high watermark to pass the unacknowledged record", TIMEOUT, || {
        cluster.high_watermark(TOPIC, 0).filter(|hw| *hw > hw_before)
    });

    // --- History: every record acknowledged through the attacks survives
    // the kill -9 of a leader, read back once and in order.
    cluster.wait_for_full_isr(HISTORY, HISTORY_PARTITIONS, TIMEOUT);
    load.wait_for_progress(HISTORY_PARTITIONS, 20, TIMEOUT);
    let history_leader = cluster.partition(HISTORY, 0).expect("metadata of the history topic").leader;
    cluster.kill(history_leader);
    cluster.wait_for_new_leader(HISTORY, 0, history_leader, TIMEOUT);
    load.wait_for_progress(HISTORY_PARTITIONS, 20, TIMEOUT);
    let log = load.finish();
    cluster.restart(history_leader);
    let summary = verify_history_and_replicas(&cluster, HISTORY, HISTORY_PARTITIONS, &log);
    eprintln!(
        "history through the attacks and the kill -9 of broker {history_leader}: {} sent, {} acknowledged, {} read back",
        summary.sent, summary.acked, summary.consumed
    );
}

/// Rewrites the cluster's certificate files in place: `ca_bundle` as the CA
/// file, and each broker's (and the operator's) certificate and key from `from`.
fn install(cluster: &Cluster, ca_bundle: &str, from: &strom_broker::tls::certs::Written) {
    // Each file is replaced by a rename, so a broker never reads half a file.
    let replace = |to: &std::path::Path, text: &[u8]| {
        let tmp = to.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write a certificate file");
        std::fs::rename(&tmp, to).expect("rename a certificate file into place");
    };
    replace(&cluster.certs().ca, ca_bundle.as_bytes());
    for pair in &cluster.certs().pairs {
        let new = from.pairs.iter().find(|p| p.identity == pair.identity).expect("a new pair per identity");
        // Key first: the files are read together at the next handshake, and
        // a key that does not match its certificate is refused and retried.
        replace(&pair.key, &std::fs::read(&new.key).expect("read a new key"));
        replace(&pair.cert, &std::fs::read(&new.cert).expect("read a new certificate"));
    }
}

#[test]
fn certificates_rotate_on_disk_under_an_idempotent_producer() {
    let cluster = Cluster::start(3, "cert-rotation", FAST_FAILOVER);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, 3, 3, None, &[("min.insync.replicas", "2")]);
    cluster.wait_for_full_isr(TOPIC, 3, TIMEOUT);
    let starts: Vec<_> = cluster.brokers().iter().map(|b| b.log().matches("===== starting").count()).collect();

    // An idempotent acks=all producer, one record at a time, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (stop, bootstrap) = (stop.clone(), bootstrap.clone());
        std::thread::spawn(move || {
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("message.timeout.ms", "60000")
                .create()
                .expect("create an rdkafka producer");
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = sent.to_string();
                let record = FutureRecord::<str, str>::to(TOPIC).key(&key).payload(&key);
                block_on(producer.send(record, Timeout::After(Duration::from_secs(60))))
                    .unwrap_or_else(|(e, _)| panic!("send {sent} failed during the rotation: {e}"));
                sent += 1;
            }
            sent
        })
    };
    let acked_until = |n: i64| {
        let start = (0..3).map(|p| cluster.high_watermark(TOPIC, p).unwrap_or(0)).sum::<i64>();
        wait_until("the producer to make progress", TIMEOUT, || {
            let now = (0..3).map(|p| cluster.high_watermark(TOPIC, p).unwrap_or(0)).sum::<i64>();
            (now >= start + n).then_some(())
        })
    };
    acked_until(20);

    let new = strom_broker::tls::certs::write(
        &cluster.root().join("new-certs"),
        &strom_broker::tls::certs::CertsRequest {
            brokers: (0..3).chain([SPARE_BROKER_ID]).collect(),
            operator: true,
            ips: cluster.brokers().iter().map(|b| b.internal_addr().ip()).collect(),
            dns: vec!["localhost".into()],
        },
    )
    .expect("write the new CA and certificates");
    let old_ca = std::fs::read_to_string(&cluster.certs().ca).expect("read the old CA");
    // The old operator identity, kept aside to show the old CA is dropped.
    let old_operator_files = {
        let pair = cluster.certs().operator().expect("the operator pair");
        let keep = |from: &std::path::Path, name: &str| {
            let to = cluster.root().join(name);
            std::fs::copy(from, &to).expect("keep an old file");
            to
        };
        TlsFiles {
            ca: keep(&cluster.certs().ca, "old-ca.pem"),
            cert: keep(&pair.cert, "old-operator.pem"),
            key: keep(&pair.key, "old-operator-key.pem"),
        }
    };
    let new_ca = std::fs::read_to_string(&new.ca).expect("read the new CA");

    // 1. Trust both CAs, keep the old leaves.
    let both = format!("{old_ca}{new_ca}");
    std::fs::write(cluster.certs().ca.with_extension("both"), &both).expect("write the bundle");
    std::fs::rename(cluster.certs().ca.with_extension("both"), &cluster.certs().ca).expect("install the bundle");
    // 2. New leaves (signed by the new CA), both CAs still trusted.
    install(&cluster, &both, &new);
    // New connections now use the new leaves: the operator, trusting only the
    // new CA, is served, and so is the old-CA-only client (both are trusted).
    let rt = runtime();
    let new_operator = tls_with(&new.ca, new.operator().expect("the new operator pair"));
    rt.block_on(async {
        for id in 0..3 {
            let mut admin = AdminClient::new(cluster.internal_channel(id, Some(&new_operator)));
            wait_until_async(&format!("broker {id} to serve with its new certificate"), &mut admin).await;
        }
    });
    acked_until(20);
    // 3. Drop the old CA.
    install(&cluster, &new_ca, &new);
    let old_operator = InternalTls::load(old_operator_files).expect("load the old operator's files");
    rt.block_on(async {
        for id in 0..3 {
            let mut admin = AdminClient::new(cluster.internal_channel(id, Some(&new_operator)));
            wait_until_async(&format!("broker {id} to serve with the new CA alone"), &mut admin).await;
            // The old operator certificate is no longer admitted.
            let mut admin = AdminClient::new(cluster.internal_channel(id, Some(&old_operator)));
            assert_refused_at_transport(
                "DescribeTopics with the old operator certificate",
                admin.describe_topics(DescribeTopicsRequest { names: vec![] }).await,
            );
        }
    });
    acked_until(20);
    stop.store(true, Ordering::Relaxed);
    let sent = producer.join().unwrap_or_else(|_| cluster.fail("a send failed during the rotation"));
    assert!(sent > 0);
    let restarts: Vec<_> = cluster.brokers().iter().map(|b| b.log().matches("===== starting").count()).collect();
    assert_eq!(restarts, starts, "no broker restarted");
    assert_eq!(cluster.running(), vec![0, 1, 2], "every broker still runs");
    for b in cluster.brokers() {
        assert!(
            b.log().contains("reloaded the internal TLS certificates"),
            "broker {} reloaded its certificates",
            b.id
        );
    }
}

/// Polls DescribeTopics until it answers (a call on a connection opened
/// before the change may still use the old certificates until it reconnects).
async fn wait_until_async(what: &str, admin: &mut AdminClient<Channel>) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match admin.describe_topics(DescribeTopicsRequest { names: vec![] }).await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for {what}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("timed out waiting for {what}: {e}"),
        }
    }
}
