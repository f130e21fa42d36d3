//! Test harness for multi-broker clusters: `n` real `strom-broker`
//! processes forming one controller quorum (every broker a voter).
//!
//! [`Cluster::start`] gives each broker its own loopback address
//! `127.A.B.(i+1)` — one random `A.B` per cluster — with fixed ports on it, so
//! brokers never race other tests for ephemeral ports and a restarted broker
//! gets its own address back. Brokers can be killed (SIGKILL), stopped
//! (SIGTERM, a controlled shutdown; one that does not exit in time has its
//! threads' stacks taken with gdb, then is killed), paused (SIGSTOP),
//! resumed (SIGCONT) and restarted on the same address and data dir. Each
//! broker's stdout and stderr go to `broker-<i>.log` in the cluster's temp
//! dir; when the test panics, the temp dir is kept and its path printed, with
//! the tail of every log.
//!
//! Observation goes through the Kafka protocol, as a client sees it:
//! [`Cluster::metadata`] sends a Metadata request (leaders, ISRs, the active
//! controller) to whichever broker answers; [`Cluster::high_watermark`] asks
//! a partition's leader. Every wait polls a condition against a deadline.
//!
//! [`read_log`] parses a partition replica's segment files into RecordBatch v2
//! batches, so tests can compare replicas byte for byte. [`history`] checks a
//! produce/consume history for lost, duplicated, reordered or invented records.
//!
//! The internal plane runs mutual TLS: the harness writes a CA and a
//! certificate per broker (plus the operator's and a spare broker id's,
//! [`SPARE_BROKER_ID`], that is no member) to `certs/` in the temp dir, and
//! [`Cluster::internal_channel`] dials a broker's internal port as one of
//! those identities.
//!
//! A [`NetnsLayout`] runs each broker in its own network namespace instead,
//! joined by a bridge, so a test can cut the network between brokers.

pub mod history;
pub mod load;

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::describe_quorum_request;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, Request, StrBytes};

use super::clients::consume_to_end;
use super::wire::encode_request;
use history::Summary;
use load::LoadLog;

/// Settings that make failure detection fast enough for tests without
/// being twitchy on a loaded 2-core machine: a broker is fenced after 6 s
/// without heartbeats (sent every 0.5 s), a follower leaves the ISR after
/// 5 s behind, a follower gives up on a silent leader after 5 s.
pub const FAST_FAILOVER: &[&str] = &[
    "broker.session.timeout.ms=6000",
    "broker.heartbeat.interval.ms=500",
    "replica.lag.time.max.ms=5000",
    "replica.socket.timeout.ms=5000",
    "replica.fetch.backoff.ms=200",
];

/// [`FAST_FAILOVER`] plus small internal topics and a prompt abort of a
/// transaction left open by a killed client: the transactional end-to-end
/// tests' settings.
pub fn transactional_settings() -> Vec<&'static str> {
    let mut settings = FAST_FAILOVER.to_vec();
    settings.extend([
        "offsets.topic.num.partitions=3",
        "transaction.state.log.num.partitions=3",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
    ]);
    settings
}

/// FindCoordinator's key types.
pub const GROUP_KEY: i8 = 0;
/// A transactional id.
pub const TRANSACTION_KEY: i8 = 1;

/// The broker coordinating `key` (a group, or a transactional id with
/// [`TRANSACTION_KEY`]), as a running broker names it.
pub fn coordinator_of(cluster: &Cluster, key: &str, key_type: i8) -> Option<i32> {
    cluster.brokers().iter().filter(|b| cluster.running().contains(&b.id)).find_map(|b| {
        let mut c = super::wire::WireClient::connect(b.kafka_addr());
        let request = kafka_protocol::messages::FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(key.to_string()))
            .with_key_type(key_type);
        let r = c.send(&request, 3);
        (r.error_code == 0 && r.node_id.0 >= 0).then_some(r.node_id.0)
    })
}

/// How long a broker may take to become ready (debug build, quorum forming, log recovery).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a broker may take to exit after SIGTERM (controlled shutdown, then draining).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Socket timeout of one Metadata or ListOffsets request (a paused broker must not hang a test).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Kafka, internal and HTTP ports on each broker's own address.
const KAFKA_PORT: u16 = 29092;
const INTERNAL_PORT: u16 = 29093;
const HTTP_PORT: u16 = 29094;
/// A broker id with a certificate of the cluster CA that is never a member.
pub const SPARE_BROKER_ID: i32 = 99;
/// Lines of each broker log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

/// Polls `condition` every 50 ms until it returns `Some`, panicking with
/// `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where a broker runs: its address and, for network tests, its namespace.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The address the broker listens on and advertises (all three ports).
    pub ip: Ipv4Addr,
    /// Network namespace to run the broker in (`ip netns exec NS ...`), if any.
    pub netns: Option<String>,
}

/// What a broker process is doing, as far as the harness knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    Running,
    /// SIGSTOPped.
    Paused,
    Down,
}

/// One broker of a [`Cluster`].
#[derive(Debug)]
pub struct ClusterBroker {
    /// Broker (and controller node) id.
    pub id: i32,
    placement: Placement,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl ClusterBroker {
    /// The Kafka listener address.
    pub fn kafka_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.placement.ip), KAFKA_PORT)
    }

    /// The internal (gRPC) address: controller quorum, replication, admin.
    pub fn internal_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.placement.ip), INTERNAL_PORT)
    }

    /// The HTTP address (`/metrics`, `/healthz`, `/readyz`).
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.placement.ip), HTTP_PORT)
    }

    /// The broker's `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A partition replica's directory, `<data-dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Running, paused or down.
    pub fn state(&self) -> BrokerState {
        match (&self.child, self.paused) {
            (None, _) => BrokerState::Down,
            (Some(_), true) => BrokerState::Paused,
            (Some(_), false) => BrokerState::Running,
        }
    }

    /// Everything the broker wrote over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap_or_else(|| panic!("broker {} is not running", self.id)).id()
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("run `kill -{signal} {pid}` for broker {}: {e}", self.id));
        assert!(status.success(), "`kill -{signal} {pid}` (broker {}) failed: {status}", self.id);
    }

    /// `Ok` once `/readyz` answers 200 and the Kafka port accepts a
    /// connection; `Err` with the exit status if the process exits first.
    fn poll_ready(&mut self) -> Result<bool, ExitStatus> {
        let child = self.child.as_mut().expect("the broker was spawned");
        if let Some(exit) = child.try_wait().expect("poll the broker process") {
            self.child = None;
            return Err(exit);
        }
        Ok(http_status(self.http_addr(), "/readyz") == Some(200)
            && TcpStream::connect_timeout(&self.kafka_addr(), Duration::from_secs(1)).is_ok())
    }
}

/// `n` brokers forming one cluster, in a temp dir kept when the test fails.
pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    brokers: Vec<ClusterBroker>,
    settings: Vec<String>,
    certs: strom_broker::tls::certs::Written,
    /// Brokers 0..voters are the configured (bootstrap) controller voters.
    voters: usize,
    /// Extra flags every broker starts with.
    args: Vec<String>,
}

impl Cluster {
    /// Starts `n` brokers on loopback, each a controller voter, with extra
    /// `--set KEY=VALUE` settings, and waits until every one is ready.
    /// `name` prefixes the temp dir, to find a failed test's logs.
    pub fn start(n: usize, name: &str, settings: &[&str]) -> Cluster {
        let placements = loopback_placements(n);
        Cluster::start_placed(placements, name, settings)
    }

    /// As [`Cluster::start`], with only brokers `0..voters` configured as
    /// the controller's bootstrap voters (`--voters`); the others start as
    /// learners.
    pub fn start_with_voters(n: usize, voters: usize, name: &str, settings: &[&str]) -> Cluster {
        Cluster::start_inner(loopback_placements(n), voters, name, settings, &[])
    }

    /// As [`Cluster::start`], with extra flags for every broker; in the
    /// settings and the flags `{IP}` is the broker's address and `{ID}` its id.
    pub fn start_with_args(n: usize, name: &str, settings: &[&str], args: &[&str]) -> Cluster {
        Cluster::start_inner(loopback_placements(n), n, name, settings, args)
    }

    /// As [`Cluster::start`], with each broker at the given placement.
    pub fn start_placed(placements: Vec<Placement>, name: &str, settings: &[&str]) -> Cluster {
        let voters = placements.len();
        Cluster::start_inner(placements, voters, name, settings, &[])
    }

    fn start_inner(placements: Vec<Placement>, voters: usize, name: &str, settings: &[&str], args: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix(&format!("strom-cluster-{name}-"))
            .tempdir()
            .expect("create a temp dir for the cluster");
        let root = dir.path().to_path_buf();
        let request = strom_broker::tls::certs::CertsRequest {
            brokers: (0..placements.len() as i32).chain([SPARE_BROKER_ID]).collect(),
            operator: true,
            ips: placements.iter().map(|p| IpAddr::V4(p.ip)).collect(),
            dns: vec!["localhost".into()],
        };
        let certs = strom_broker::tls::certs::write(&root.join("certs"), &request)
            .unwrap_or_else(|e| panic!("write the cluster's certificates: {e}"));
        let brokers = placements
            .into_iter()
            .enumerate()
            .map(|(i, placement)| ClusterBroker {
                id: i as i32,
                placement,
                data_dir: root.join(format!("broker-{i}")),
                log_path: root.join(format!("broker-{i}.log")),
                child: None,
                paused: false,
            })
            .collect();
        let mut cluster = Cluster {
            dir: Some(dir),
            root,
            brokers,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            certs,
            voters,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..cluster.brokers.len() {
            cluster.spawn(i);
        }
        for i in 0..cluster.brokers.len() {
            cluster.wait_ready(i);
        }
        eprintln!(
            "cluster of {} brokers up in {}; bootstrap {}",
            cluster.len(),
            cluster.root.display(),
            cluster.bootstrap()
        );
        cluster
    }

    /// The certificates the brokers run with (rewrite them in place to rotate).
    pub fn certs(&self) -> &strom_broker::tls::certs::Written {
        &self.certs
    }

    /// TLS material presenting `identity`'s certificate of the cluster CA.
    pub fn tls_as(&self, identity: strom_broker::tls::Identity) -> std::sync::Arc<strom_broker::tls::InternalTls> {
        let pair = self
            .certs
            .pairs
            .iter()
            .find(|p| p.identity == identity)
            .unwrap_or_else(|| panic!("the cluster has no certificate for {identity}"));
        strom_broker::tls::InternalTls::load(pair.files(&self.certs.ca))
            .unwrap_or_else(|e| panic!("load {identity}'s certificate: {e}"))
    }

    /// A lazily connected channel to broker `id`'s internal port, over
    /// mutual TLS as `tls` (plain when `None`). Call inside a tokio runtime.
    pub fn internal_channel(
        &self,
        id: i32,
        tls: Option<&std::sync::Arc<strom_broker::tls::InternalTls>>,
    ) -> tonic::transport::Channel {
        strom_broker::tls::channel(tls, &self.broker(id).internal_addr().to_string(), Some(id), None)
            .unwrap_or_else(|e| panic!("a channel to broker {id}: {e}"))
    }

    /// [`Cluster::internal_channel`] as the operator.
    pub fn operator_channel(&self, id: i32) -> tonic::transport::Channel {
        self.internal_channel(id, Some(&self.tls_as(strom_broker::tls::Identity::Operator)))
    }

    /// Number of brokers (running or not).
    pub fn len(&self) -> usize {
        self.brokers.len()
    }

    /// Broker `id`.
    pub fn broker(&self, id: i32) -> &ClusterBroker {
        &self.brokers[id as usize]
    }

    /// Every broker.
    pub fn brokers(&self) -> &[ClusterBroker] {
        &self.brokers
    }

    /// The cluster's temp dir (data dirs and logs).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `bootstrap.servers` naming every broker.
    pub fn bootstrap(&self) -> String {
        self.brokers.iter().map(|b| b.kafka_addr().to_string()).collect::<Vec<_>>().join(",")
    }

    /// The `--voters` value: every broker, or the first as many as configured.
    pub fn voters(&self) -> String {
        self.brokers
            .iter()
            .take(self.voters)
            .map(|b| format!("{}@{}", b.id, b.internal_addr()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Ids of brokers whose process runs and is not paused.
    pub fn running(&self) -> Vec<i32> {
        self.brokers.iter().filter(|b| b.state() == BrokerState::Running).map(|b| b.id).collect()
    }

    /// Kills broker `id` with SIGKILL (no shutdown work at all) and reaps it.
    pub fn kill(&mut self, id: i32) {
        let broker = &mut self.brokers[id as usize];
        let mut child = broker.child.take().unwrap_or_else(|| panic!("broker {id} is not running"));
        child.kill().unwrap_or_else(|e| panic!("SIGKILL broker {id}: {e}"));
        child.wait().unwrap_or_else(|e| panic!("reap broker {id}: {e}"));
        broker.paused = false;
        eprintln!("[cluster] broker {id} killed (SIGKILL)");
    }

    /// Sends SIGTERM (controlled shutdown) and waits for the process to exit; asserts it exited 0.
    pub fn stop(&mut self, id: i32) {
        if let Err(e) = self.stop_within(id, STOP_TIMEOUT) {
            self.fail(&e);
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit. A broker
    /// still running then is killed (SIGKILL) after its threads' stacks are
    /// taken with gdb, if installed; `Err` says what happened, stacks included.
    pub fn stop_within(&mut self, id: i32, timeout: Duration) -> Result<(), String> {
        self.brokers[id as usize].signal("TERM");
        let deadline = Instant::now() + timeout;
        loop {
            let broker = &mut self.brokers[id as usize];
            let child = broker.child.as_mut().expect("the broker runs");
            if let Some(exit) = child.try_wait().expect("poll the broker process") {
                broker.child = None;
                if !exit.success() {
                    return Err(format!("broker {id} did not exit cleanly after SIGTERM: {exit}"));
                }
                eprintln!("[cluster] broker {id} stopped (SIGTERM)");
                return Ok(());
            }
            if Instant::now() >= deadline {
                let stacks = thread_stacks(child.id());
                let _ = child.kill();
                let _ = child.wait();
                broker.child = None;
                broker.paused = false;
                return Err(format!("broker {id} still running {timeout:?} after SIGTERM; its threads:\n{stacks}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether broker `id`'s `/readyz` answers 200 right now.
    pub fn is_ready(&self, id: i32) -> bool {
        http_status(self.brokers[id as usize].http_addr(), "/readyz") == Some(200)
    }

    /// Freezes broker `id` (SIGSTOP), as a long GC pause or a hung host would.
    pub fn pause(&mut self, id: i32) {
        self.brokers[id as usize].signal("STOP");
        self.brokers[id as usize].paused = true;
        eprintln!("[cluster] broker {id} paused (SIGSTOP)");
    }

    /// Resumes a paused broker (SIGCONT).
    pub fn resume(&mut self, id: i32) {
        self.brokers[id as usize].signal("CONT");
        self.brokers[id as usize].paused = false;
        eprintln!("[cluster] broker {id} resumed (SIGCONT)");
    }

    /// Starts a stopped or killed broker again on its address and data dir,
    /// and waits until it is ready.
    pub fn restart(&mut self, id: i32) {
        assert!(self.brokers[id as usize].child.is_none(), "restart needs broker {id} down; stop or kill it first");
        self.spawn(id as usize);
        self.wait_ready(id as usize);
        eprintln!("[cluster] broker {id} restarted");
    }

    /// Replaces the extra `--set KEY=VALUE` settings brokers start with from
    /// now on; a restart applies them.
    pub fn set_settings(&mut self, settings: &[&str]) {
        self.settings = settings.iter().map(|s| s.to_string()).collect();
    }

    /// Starts every stopped or killed broker at once (a full cluster restart:
    /// none is ready before a quorum of voters runs) and waits until all are ready.
    pub fn restart_all(&mut self) {
        let down: Vec<usize> = (0..self.brokers.len()).filter(|&i| self.brokers[i].child.is_none()).collect();
        for &i in &down {
            self.spawn(i);
        }
        for &i in &down {
            self.wait_ready(i);
        }
        eprintln!("[cluster] brokers {down:?} restarted");
    }

    /// Starts a stopped or killed broker again on its address and data dir,
    /// without waiting for it to become ready (to watch it get there).
    pub fn start_again(&mut self, id: i32) {
        assert!(self.brokers[id as usize].child.is_none(), "start_again needs broker {id} down; stop or kill it first");
        self.spawn(id as usize);
        eprintln!("[cluster] broker {id} started again (not waiting for ready)");
    }

    /// Panics with `message` and the tail of every broker's log; the temp dir is kept.
    pub fn fail(&self, message: &str) -> ! {
        panic!("{message}\n{}", self.log_tails());
    }

    /// The last lines of every broker's log, with where the whole logs are.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for b in &self.brokers {
            let log = b.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            let _ =
                writeln!(out, "----- broker {} log, last {} lines ({}) -----", b.id, tail.len(), b.log_path.display());
            for line in tail {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    fn spawn(&mut self, i: usize) {
        let voters = self.voters();
        let broker = &mut self.brokers[i];
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&broker.log_path)
            .unwrap_or_else(|e| panic!("open broker log {}: {e}", broker.log_path.display()));
        writeln!(log, "===== starting strom-broker {} at {:?} =====", broker.id, broker.placement)
            .expect("write the log");
        let exe = env!("CARGO_BIN_EXE_strom-broker");
        let mut command = match &broker.placement.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, exe]);
                c
            }
            None => Command::new(exe),
        };
        let kafka = broker.kafka_addr().to_string();
        let internal = broker.internal_addr().to_string();
        command
            .arg("--node-id")
            .arg(broker.id.to_string())
            .arg("--data-dir")
            .arg(&broker.data_dir)
            .args(["--listen", &kafka, "--advertise", &kafka])
            .args(["--internal-listen", &internal, "--internal-advertise", &internal])
            .args(["--http-listen", &broker.http_addr().to_string()])
            .args(["--voters", &voters]);
        let pair = self.certs.broker(broker.id);
        command
            .arg("--internal-tls-ca")
            .arg(&self.certs.ca)
            .arg("--internal-tls-cert")
            .arg(&pair.cert)
            .arg("--internal-tls-key")
            .arg(&pair.key);
        let ip = broker.placement.ip.to_string();
        let expand = |s: &String| s.replace("{IP}", &ip).replace("{ID}", &broker.id.to_string());
        command.args(self.args.iter().map(expand));
        let settings: Vec<String> = self.settings.iter().map(expand).collect();
        super::finish_broker_command(&mut command, &settings, log);
        broker.child = Some(command.spawn().unwrap_or_else(|e| panic!("spawn strom-broker {}: {e}", broker.id)));
        broker.paused = false;
    }

    fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.brokers[i].poll_ready() {
                Ok(true) => return,
                Ok(false) => {}
                Err(exit) => self.fail(&format!("broker {i} exited before becoming ready: {exit}")),
            }
            if Instant::now() >= deadline {
                self.fail(&format!("broker {i} not ready after {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A Metadata response for `topics` (all topics when empty) from the
    /// first running broker that answers, skipping `exclude`.
    pub fn metadata_excluding(&self, topics: &[&str], exclude: &[i32]) -> Option<MetadataResponse> {
        self.brokers
            .iter()
            .filter(|b| b.state() == BrokerState::Running && !exclude.contains(&b.id))
            .find_map(|b| metadata(b.kafka_addr(), topics).ok())
    }

    /// A Metadata response for `topics` from the first running broker that answers.
    pub fn metadata(&self, topics: &[&str]) -> Option<MetadataResponse> {
        self.metadata_excluding(topics, &[])
    }

    /// Partitions `0..partitions` of `topic` as every running broker not in
    /// `exclude` reports them — `None` unless all answer and agree, so a
    /// broker with a stale image (just resumed, just restarted) is not
    /// mistaken for the cluster's view.
    pub fn agreed_partitions_excluding(
        &self,
        topic: &str,
        partitions: i32,
        exclude: &[i32],
    ) -> Option<Vec<PartitionView>> {
        let mut agreed: Option<Vec<PartitionView>> = None;
        for b in self.brokers.iter().filter(|b| b.state() == BrokerState::Running && !exclude.contains(&b.id)) {
            let response = metadata(b.kafka_addr(), &[topic]).ok()?;
            let views: Vec<PartitionView> =
                (0..partitions).map(|p| partition_view(&response, topic, p)).collect::<Option<_>>()?;
            if agreed.as_ref().is_some_and(|a| *a != views) {
                return None;
            }
            agreed = Some(views);
        }
        agreed
    }

    /// One partition as every running broker not in `exclude` reports it, when they agree.
    pub fn partition_excluding(&self, topic: &str, partition: i32, exclude: &[i32]) -> Option<PartitionView> {
        let response = self.agreed_partitions_excluding(topic, partition + 1, exclude)?;
        response.into_iter().nth(partition as usize)
    }

    /// One partition as every running broker reports it, when they agree.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<PartitionView> {
        self.partition_excluding(topic, partition, &[])
    }

    /// Waits until a running broker other than `old` reports a leader for
    /// the partition that is not `old` and is running, and returns it.
    pub fn wait_for_new_leader(&self, topic: &str, partition: i32, old: i32, timeout: Duration) -> i32 {
        wait_until(&format!("a new leader of {topic}-{partition} replacing broker {old}"), timeout, || {
            let view = self.partition_excluding(topic, partition, &[old])?;
            (view.leader >= 0 && view.leader != old && self.running().contains(&view.leader)).then_some(view.leader)
        })
    }

    /// The active controller as the running brokers (not in `exclude`) agree on it.
    pub fn active_controller_excluding(&self, exclude: &[i32]) -> Option<i32> {
        let mut seen = None;
        for b in self.brokers.iter().filter(|b| b.state() == BrokerState::Running && !exclude.contains(&b.id)) {
            let id = metadata(b.kafka_addr(), &[]).ok()?.controller_id.0;
            if id < 0 || seen.is_some_and(|s| s != id) {
                return None;
            }
            seen = Some(id);
        }
        seen
    }

    /// Waits until every running broker names the same running active
    /// controller and each of them, asked DescribeQuorum, names it as the
    /// quorum's leader too:
    /// while no controller is known, Metadata names a live broker as a
    /// stand-in (as Kafka's does), which must not pass for the controller
    /// right after a kill.
    pub fn wait_for_controller(&self, exclude: &[i32], timeout: Duration) -> i32 {
        wait_until("the running brokers and the quorum to agree on a running active controller", timeout, || {
            let id = self
                .active_controller_excluding(exclude)
                .filter(|id| self.running().contains(id) && !exclude.contains(id))?;
            let asked = self.brokers.iter().filter(|b| b.state() == BrokerState::Running && !exclude.contains(&b.id));
            asked.map(|b| quorum_leader(b.kafka_addr()).ok()).all(|leader| leader == Some(id)).then_some(id)
        })
    }

    /// Waits until every running broker agrees that every partition of
    /// `topic` (with `partitions` partitions) has a running leader and its
    /// whole replica set in the ISR.
    pub fn wait_for_full_isr(&self, topic: &str, partitions: i32, timeout: Duration) -> Vec<PartitionView> {
        wait_until(&format!("every partition of {topic} to have a leader and all replicas in the ISR"), timeout, || {
            let views = self.agreed_partitions_excluding(topic, partitions, &[])?;
            let running = self.running();
            views
                .iter()
                .all(|v| {
                    v.leader >= 0
                        && running.contains(&v.leader)
                        && sorted(&v.isr) == sorted(&v.replicas)
                        && !v.replicas.is_empty()
                })
                .then_some(views)
        })
    }

    /// The high watermark of a partition, asked of its current leader.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        let view = self.partition(topic, partition)?;
        let leader = self.brokers.get(usize::try_from(view.leader).ok()?)?;
        list_latest_offset(leader.kafka_addr(), topic, partition).ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for b in &mut self.brokers {
            if let Some(mut child) = b.child.take() {
                if b.paused {
                    let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            let dir = self.dir.take().map(|d| d.keep());
            eprintln!("{}", self.log_tails());
            eprintln!("cluster temp dir kept for inspection: {}", dir.unwrap_or_else(|| self.root.clone()).display());
        }
    }
}

fn sorted(ids: &[i32]) -> Vec<i32> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v
}

/// `n` placements on one random loopback block `127.A.B.0/24`, checked free.
fn loopback_placements(n: usize) -> Vec<Placement> {
    for _ in 0..50 {
        let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64 ^ random_u64();
        let (a, b) = (1 + (seed % 254) as u8, 1 + ((seed >> 8) % 254) as u8);
        let ips: Vec<Ipv4Addr> = (0..n).map(|i| Ipv4Addr::new(127, a, b, 1 + i as u8)).collect();
        let free = ips.iter().all(|ip| {
            [KAFKA_PORT, INTERNAL_PORT, HTTP_PORT].iter().all(|port| TcpListener::bind((*ip, *port)).is_ok())
        });
        if free {
            return ips.into_iter().map(|ip| Placement { ip, netns: None }).collect();
        }
    }
    panic!("found no free loopback block 127.A.B.0/24 with ports {KAFKA_PORT}-{HTTP_PORT} free");
}

/// A random number without a random crate: the std hasher's random keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// One partition as a Metadata response describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Partition `partition` of `topic` in a Metadata response, if listed.
pub fn partition_view(response: &MetadataResponse, topic: &str, partition: i32) -> Option<PartitionView> {
    let t = response.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))?;
    let p = t.partitions.iter().find(|p| p.partition_index == partition)?;
    Some(PartitionView {
        error_code: p.error_code,
        leader: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
    })
}

/// The status code of `GET path` at `addr`, or `None`.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.lines().next()?.split_whitespace().nth(1)?.parse().ok()
}

/// Every thread's stack of process `pid`, from gdb (or why there are none).
fn thread_stacks(pid: u32) -> String {
    match Command::new("gdb").args(["-p", &pid.to_string(), "-batch", "-ex", "thread apply all bt"]).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("(no stacks: cannot run gdb: {e})"),
    }
}

/// Sends one request with socket timeouts, so a dead or paused broker gives
/// `Err` instead of hanging the test.
pub fn try_send<R: Request>(addr: SocketAddr, request: &R, version: i16) -> Result<R::Response, String> {
    let mut stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(|e| e.to_string())?;
    let body = encode_request(request, version, 1);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).map_err(|e| format!("write to {addr}: {e}"))?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(|e| format!("read from {addr}: {e}"))?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).map_err(|e| format!("read from {addr}: {e}"))?;
    let mut bytes = Bytes::from(body);
    let header = ResponseHeader::decode(&mut bytes, R::Response::header_version(version)).map_err(|e| e.to_string())?;
    if header.correlation_id != 1 {
        return Err(format!("correlation id {} from {addr}", header.correlation_id));
    }
    R::Response::decode(&mut bytes, version).map_err(|e| e.to_string())
}

/// A Metadata request (v12) for `topics` (all when empty) to one broker.
pub fn metadata(addr: SocketAddr, topics: &[&str]) -> Result<MetadataResponse, String> {
    let topics = (!topics.is_empty()).then(|| {
        topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.to_string())))))
            .collect()
    });
    let request = MetadataRequest::default().with_topics(topics).with_allow_auto_topic_creation(false);
    try_send(addr, &request, 12)
}

/// The controller quorum's leader as DescribeQuorum tells it, asked of one broker.
pub fn quorum_leader(addr: SocketAddr) -> Result<i32, String> {
    let partition = describe_quorum_request::PartitionData::default().with_partition_index(0);
    let topic = describe_quorum_request::TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![partition]);
    let response = try_send(addr, &DescribeQuorumRequest::default().with_topics(vec![topic]), 1)?;
    let partition = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| format!("DescribeQuorum from {addr} names no partition"))?;
    match partition.error_code {
        0 => Ok(partition.leader_id.0),
        code => Err(format!("DescribeQuorum from {addr}: error {code}")),
    }
}

/// ListOffsets latest (the high watermark) of a partition, asked of one broker.
pub fn list_latest_offset(addr: SocketAddr, topic: &str, partition: i32) -> Result<i64, String> {
    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(-1)]),
    ]);
    let response: ListOffsetsResponse = try_send(addr, &request, 5)?;
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| format!("empty ListOffsets answer from {addr}"))?;
    if p.error_code != 0 {
        return Err(format!("ListOffsets {topic}-{partition} at {addr}: error {}", p.error_code));
    }
    Ok(p.offset)
}

/// One RecordBatch (v2) as stored in a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub producer_id: i64,
    pub base_sequence: i32,
    pub records: i32,
    /// The whole batch, header included.
    pub bytes: Vec<u8>,
}

/// Size of the RecordBatch v2 header before the records.
pub const BATCH_HEADER_LEN: usize = 61;

/// Parses concatenated RecordBatch v2 bytes; stops at a torn or zeroed tail,
/// returning the batches before it and how many bytes were left over.
pub fn parse_batches(data: &[u8]) -> (Vec<StoredBatch>, usize) {
    let be_i64 = |b: &[u8]| i64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
    let be_i32 = |b: &[u8]| i32::from_be_bytes(b[..4].try_into().expect("4 bytes"));
    let mut batches = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= BATCH_HEADER_LEN {
        let h = &data[pos..];
        let batch_length = be_i32(&h[8..]);
        let total = 12 + batch_length.max(0) as usize;
        if batch_length < (BATCH_HEADER_LEN - 12) as i32 || pos + total > data.len() {
            break;
        }
        let base_offset = be_i64(h);
        batches.push(StoredBatch {
            base_offset,
            last_offset: base_offset + be_i32(&h[23..]) as i64,
            partition_leader_epoch: be_i32(&h[12..]),
            magic: h[16] as i8,
            crc: u32::from_be_bytes(h[17..21].try_into().expect("4 bytes")),
            producer_id: be_i64(&h[43..]),
            base_sequence: be_i32(&h[53..]),
            records: be_i32(&h[57..]),
            bytes: h[..total].to_vec(),
        });
        pos += total;
    }
    (batches, data.len() - pos)
}

/// Every batch of a partition replica, over all its `.log` segments in
/// offset order. Panics on a segment that cannot be read.
pub fn read_log(partition_dir: &Path) -> Vec<StoredBatch> {
    let entries = match std::fs::read_dir(partition_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("list {}: {e}", partition_dir.display()),
    };
    let mut logs: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("read an entry of {}: {e}", partition_dir.display())).path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    let mut batches = Vec::new();
    for log in logs {
        let data = std::fs::read(&log).unwrap_or_else(|e| panic!("read {}: {e}", log.display()));
        batches.extend(parse_batches(&data).0);
    }
    batches
}

/// How many of the batches in `before` are gone from `after` (by their
/// bytes): what a replica truncated in between.
pub fn batches_dropped(before: &[StoredBatch], after: &[StoredBatch]) -> usize {
    let kept: std::collections::HashSet<&[u8]> = after.iter().map(|b| b.bytes.as_slice()).collect();
    before.iter().filter(|b| !kept.contains(b.bytes.as_slice())).count()
}

/// Compares the batches below `high_watermark` of every replica's log;
/// `Err` describes the first difference (or a replica that lacks batches).
pub fn compare_replica_logs(replicas: &[(i32, Vec<StoredBatch>)], high_watermark: i64) -> Result<usize, String> {
    let below = |batches: &[StoredBatch]| -> Vec<StoredBatch> {
        batches.iter().filter(|b| b.base_offset < high_watermark).cloned().collect()
    };
    let Some((first_id, first)) = replicas.first() else { return Ok(0) };
    let reference = below(first);
    for (id, batches) in replicas {
        let mine = below(batches);
        let end = mine.last().map_or(0, |b| b.last_offset + 1);
        if end < high_watermark {
            return Err(format!("broker {id}'s log ends at offset {end}, below the high watermark {high_watermark}"));
        }
        for (i, (a, b)) in reference.iter().zip(&mine).enumerate() {
            if a.bytes != b.bytes {
                return Err(format!(
                    "batch #{i} differs: broker {first_id} has offsets {}..={} (epoch {}, crc {:08x}), broker {id} has \
                     {}..={} (epoch {}, crc {:08x})",
                    a.base_offset,
                    a.last_offset,
                    a.partition_leader_epoch,
                    a.crc,
                    b.base_offset,
                    b.last_offset,
                    b.partition_leader_epoch,
                    b.crc
                ));
            }
        }
        if mine.len() != reference.len() {
            return Err(format!(
                "broker {first_id} has {} batches below the high watermark {high_watermark}, broker {id} has {}",
                reference.len(),
                mine.len()
            ));
        }
    }
    Ok(reference.len())
}

/// Network namespaces joined by a bridge, one per broker: the way to cut a
/// broker off from the others while the test process (in the host
/// namespace) still reaches every broker. Removed on drop, also when the
/// test fails.
pub struct NetnsLayout {
    prefix: String,
    bridge: String,
    /// Per broker: namespace name and address.
    pub nodes: Vec<(String, Ipv4Addr)>,
}

impl NetnsLayout {
    /// Creates `n` namespaces `<prefix>-<i>` with addresses `10.<net>.0.<i+2>/24`
    /// on a bridge that has `10.<net>.0.1` in the host namespace.
    pub fn create(n: usize) -> Result<NetnsLayout, String> {
        let tag = format!("{:04x}", random_u64() & 0xffff);
        let prefix = format!("strom{tag}");
        let net = 100 + (random_u64() % 100) as u8;
        let mut layout = NetnsLayout { prefix: prefix.clone(), bridge: format!("{prefix}br"), nodes: Vec::new() };
        ip(&["link", "add", &layout.bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.{net}.0.1/24"), "dev", &layout.bridge])?;
        ip(&["link", "set", &layout.bridge, "up"])?;
        for i in 0..n {
            let ns = format!("{prefix}-{i}");
            let (host_end, ns_end) = (format!("{prefix}h{i}"), format!("{prefix}n{i}"));
            let addr = Ipv4Addr::new(10, net, 0, 2 + i as u8);
            ip(&["netns", "add", &ns])?;
            layout.nodes.push((ns.clone(), addr));
            ip(&["link", "add", &host_end, "type", "veth", "peer", "name", &ns_end])?;
            ip(&["link", "set", &ns_end, "netns", &ns])?;
            ip(&["link", "set", &host_end, "master", &layout.bridge])?;
            ip(&["link", "set", &host_end, "up"])?;
            ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{addr}/24"), "dev", &ns_end])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", &ns_end, "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(layout)
    }

    /// Placements for [`Cluster::start_placed`].
    pub fn placements(&self) -> Vec<Placement> {
        self.nodes.iter().map(|(ns, ip)| Placement { ip: *ip, netns: Some(ns.clone()) }).collect()
    }

    /// Cuts broker `a` off from broker `b` in both directions (blackhole
    /// routes in both namespaces); the host still reaches both.
    pub fn cut(&self, a: usize, b: usize) {
        let (ns_a, ip_a) = &self.nodes[a];
        let (ns_b, ip_b) = &self.nodes[b];
        ip(&["netns", "exec", ns_a, "ip", "route", "add", "blackhole", &format!("{ip_b}/32")]).expect("cut a->b");
        ip(&["netns", "exec", ns_b, "ip", "route", "add", "blackhole", &format!("{ip_a}/32")]).expect("cut b->a");
    }

    /// Undoes [`NetnsLayout::cut`].
    pub fn heal(&self, a: usize, b: usize) {
        let (ns_a, ip_a) = &self.nodes[a];
        let (ns_b, ip_b) = &self.nodes[b];
        ip(&["netns", "exec", ns_a, "ip", "route", "del", "blackhole", &format!("{ip_b}/32")]).expect("heal a->b");
        ip(&["netns", "exec", ns_b, "ip", "route", "del", "blackhole", &format!("{ip_a}/32")]).expect("heal b->a");
    }

    /// Whether this machine lets us create namespaces, veth pairs and bridges
    /// (root, or CAP_NET_ADMIN); `Err` says why not.
    pub fn supported() -> Result<(), String> {
        let probe = NetnsLayout::create(1)?;
        drop(probe);
        Ok(())
    }
}

impl Drop for NetnsLayout {
    fn drop(&mut self) {
        for (ns, _) in &self.nodes {
            let _ = ip(&["netns", "del", ns]);
        }
        // Deleting a namespace deletes its veth end and with it the host end.
        for i in 0..self.nodes.len() {
            let _ = ip(&["link", "del", &format!("{}h{i}", self.prefix)]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Creates a topic with the rdkafka AdminClient: `partitions` partitions of
/// `replication_factor` replicas placed by the controller, or the explicit
/// `assignment` (replica lists by partition) when given.
pub fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    assignment: Option<&[&[i32]]>,
    configs: &[(&str, &str)],
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create an rdkafka AdminClient");
    let replication = match assignment {
        Some(lists) => TopicReplication::Variable(lists),
        None => TopicReplication::Fixed(replication_factor),
    };
    let count = assignment.map_or(partitions, |a| a.len() as i32);
    let mut topic = NewTopic::new(name, count, replication);
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    // A broker fenced for a moment (a heartbeat late on a loaded machine)
    // makes the controller refuse the replication factor: asked again
    // until every broker is live, for a minute at most.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let results = futures::executor::block_on(admin.create_topics([&topic], &options))
            .unwrap_or_else(|e| panic!("CreateTopics request for {name} failed: {e}"));
        match &results[0] {
            Ok(_) => return,
            Err((_, rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err((topic, code)) => {
                panic!("creating topic {topic} ({count} partitions, replication {replication_factor}) failed: {code:?}")
            }
        }
    }
}

/// After a chaos run: waits until every replica of every partition of
/// `topic` is back in the ISR, reads the topic from the beginning and runs
/// the history checker on what `log` recorded, then checks that every
/// replica holds the same batches, byte for byte, below the high watermark.
/// Fails the test (keeping the logs) on any violation.
pub fn verify_history_and_replicas(cluster: &Cluster, topic: &str, partitions: i32, log: &LoadLog) -> Summary {
    let views = cluster.wait_for_full_isr(topic, partitions, Duration::from_secs(240));
    let consumed = consume_to_end(&cluster.bootstrap(), topic, partitions);
    let reads: Vec<history::Read> = consumed
        .values()
        .flatten()
        .map(|r| history::Read { partition: r.partition, offset: r.offset, value: r.value.clone().unwrap_or_default() })
        .collect();
    let summary = match history::check(&log.sent, &log.acked, &reads) {
        Ok(summary) => summary,
        Err(violations) => cluster.fail(&format!("history check of {topic} failed:\n  {}", violations.join("\n  "))),
    };
    for (p, view) in views.iter().enumerate() {
        let p = p as i32;
        let hw = wait_until(&format!("the high watermark of {topic}-{p}"), Duration::from_secs(60), || {
            cluster.high_watermark(topic, p)
        });
        let read = consumed.get(&p).map_or(0, Vec::len) as i64;
        if read != hw {
            cluster.fail(&format!("read {read} records from {topic}-{p} but its high watermark is {hw}"));
        }
        // Followers may still be fetching the last batches; give them time, then compare.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let replicas: Vec<(i32, Vec<StoredBatch>)> =
                view.replicas.iter().map(|r| (*r, read_log(&cluster.broker(*r).partition_dir(topic, p)))).collect();
            match compare_replica_logs(&replicas, hw) {
                Ok(batches) => {
                    eprintln!(
                        "{topic}-{p}: {hw} records in {batches} batches, identical on replicas {:?}",
                        view.replicas
                    );
                    break;
                }
                Err(e) if Instant::now() >= deadline => {
                    cluster.fail(&format!("replicas of {topic}-{p} differ below the high watermark {hw}: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
    summary
}
