//! Consuming through a consumer group beside a plain assigned consumer, and
//! the rebalance after a member leaves: Strom beside Apache Kafka, one run.
//!
//! The bench starts the release `strom-broker` binary Cargo built for it and,
//! unless `STROM_BENCH_KAFKA=0`, Apache Kafka 4.x in KRaft combined mode as a
//! local JVM process (`bench/kafka/run-kafka.sh`: jars from Maven Central
//! cached under `~/.cache/strom/`, Kafka's stock JVM options), both on free
//! loopback ports with data dirs under `target/bench-scratch`, both with
//! `group.initial.rebalance.delay.ms=0` and otherwise default settings. On
//! each it creates a 6-partition topic and produces the same records
//! (default 500 000 of 1 KiB, spread evenly, uncompressed). Then, in paired
//! rounds that alternate which broker goes first (round 0 warms both up and
//! is not counted), each broker gets:
//!
//! - **assigned**: one rdkafka `BaseConsumer` (outside any group) that has
//!   fetched metadata assigns all six partitions from the beginning and reads
//!   to the end; timed from `assign` to the last record;
//! - **group**: three `BaseConsumer`s of a fresh group, each in its own
//!   thread, subscribe. Each pauses what it is assigned until the group is
//!   stable (every member holds partitions, together all six, none twice),
//!   then all resume and read to the end, timed from the resume signal to the
//!   last record. Every record is checked off in a per-offset bitmap: none
//!   may arrive before the signal, twice, or not at all;
//! - **leave**: one member closes (a graceful LeaveGroup), timed from the
//!   start of its `close` until the two left have been assigned all six
//!   partitions (the instant of the later rebalance callback). Six leaves
//!   per round: the original third member, then five times a newcomer that
//!   joins and, once the group of three is stable again, leaves. Each leave
//!   waits a random 0–1 s after the group settles, so that it falls at a
//!   random point of the heartbeat cycle.
//!
//! Consumers on both brokers use the same settings: `heartbeat.interval.ms`
//! 500 (librdkafka checks its heartbeat timer on a ~500 ms cadence, so a
//! shorter interval would not be honoured), `session.timeout.ms` 10 000,
//! librdkafka's default eager range/round-robin assignors and auto commit.
//! The members that stay learn of a rebalance from their next heartbeat, so
//! the heartbeat interval is the protocol's own limit on the rebalance time
//! on any broker: each broker's median is also given as a multiple of it.
//! The part after both heard of it (from librdkafka's `cgrp` debug log,
//! always on for members: the heartbeat answered "rebalance in progress")
//! is reported too: their JoinGroup and SyncGroup round trips, the broker's
//! share of the work.
//!
//! Reported (a markdown table printed at the end): Strom/Kafka throughput of
//! the assigned consumer and of the group, and group/assigned on each broker
//! (medians of per-round paired ratios); Strom/Kafka rebalance time after a
//! leave, whole and after heard (ratios of the medians over all leaves: the
//! heartbeat phase dominates them and pairing would not cancel it); and
//! Strom/Kafka broker resident memory (`VmRSS`, and the peak `VmHWM`) after
//! the workload. Per-round absolute figures go to stdout only as a
//! diagnostic log, with the time each group took to form (it mostly shows
//! librdkafka's join back-offs, so it is not compared).
//!
//! Environment: `STROM_BENCH_RECORDS` (500000), `STROM_BENCH_ROUNDS` (9),
//! `STROM_BENCH_KAFKA` (1; 0 skips Apache Kafka: the table then gives
//! Strom's own ratios only), `KAFKA_VERSION` (4.3.1), `STROM_BENCH_DEBUG`
//! (extra librdkafka debug contexts for the members, printed to stderr).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const TOPIC: &str = "group-consume";
const PARTITIONS: usize = 6;
const RECORD_BYTES: usize = 1024;
const MEMBERS: usize = 3;
const LEAVES_PER_ROUND: usize = 6;
const HEARTBEAT_MS: u64 = 500;
const SESSION_TIMEOUT_MS: u64 = 10_000;
/// Hang guard for any single wait (start-up, a read to the end, a rebalance).
const GUARD: Duration = Duration::from_secs(120);
/// Group settings given to both brokers.
const GROUP_SETTINGS: &[&str] = &["group.initial.rebalance.delay.ms=0"];

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a positive integer")),
        Err(_) => default,
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// A scratch directory on the same file system as the build (not tmpfs).
fn scratch_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch");
    std::fs::create_dir_all(&root).expect("creating bench scratch dir");
    root
}

// ---------------------------------------------------------------------------
// Broker processes

/// A broker process (Strom or Apache Kafka) with its own data dir, killed on drop.
struct Broker {
    name: String,
    child: Child,
    bootstrap: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start_strom(root: &Path) -> Broker {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_strom-broker"));
        assert!(
            bin.is_file(),
            "strom-broker binary not found at {}; build it with `cargo build --release -p strom-broker`",
            bin.display()
        );
        let dir = tempfile::Builder::new().prefix("strom-").tempdir_in(root).expect("scratch dir");
        let port = free_port();
        let mut command = Command::new(&bin);
        command
            .args(["--node-id", "0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--advertise", &format!("127.0.0.1:{port}")])
            .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--internal-listen", &format!("127.0.0.1:{}", free_port())]);
        for setting in GROUP_SETTINGS {
            command.args(["--set", setting]);
        }
        for (key, _) in std::env::vars() {
            if key.starts_with("STROM_") {
                command.env_remove(key);
            }
        }
        command.env("RUST_LOG", "info");
        let broker = Broker::spawn("Strom".into(), command, dir, port);
        broker.wait_ready().unwrap_or_else(|e| panic!("{e}"));
        broker
    }

    /// Apache Kafka through `bench/kafka/run-kafka.sh`; `Err` says why it cannot run.
    fn start_kafka(root: &Path, version: &str) -> Result<Broker, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/kafka/run-kafka.sh");
        // Resolve the jars first (a download on the first run), outside the start-up guard.
        let resolved = Command::new("bash")
            .arg(&script)
            .arg("classpath")
            .env("KAFKA_VERSION", version)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !resolved.status.success() {
            return Err(format!(
                "{} classpath failed: {}",
                script.display(),
                String::from_utf8_lossy(&resolved.stderr).trim()
            ));
        }
        let dir = tempfile::Builder::new().prefix("kafka-").tempdir_in(root).expect("scratch dir");
        let (port, controller_port) = (free_port(), free_port());
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .arg(controller_port.to_string())
            .args(GROUP_SETTINGS)
            .env("KAFKA_VERSION", version);
        let broker = Broker::spawn(format!("Apache Kafka {version}"), command, dir, port);
        broker.wait_ready()?;
        Ok(broker)
    }

    fn spawn(name: String, mut command: Command, dir: tempfile::TempDir, port: u16) -> Broker {
        let log = dir.path().join("broker.log");
        let out = File::create(&log).expect("broker log file");
        let err = out.try_clone().expect("broker log handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Broker { name, child, bootstrap: format!("127.0.0.1:{port}"), log, _dir: dir }
    }

    /// Waits until the Kafka port answers Metadata with one broker.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + GUARD;
        let addr: SocketAddr = self.bootstrap.parse().expect("bootstrap address");
        loop {
            self.check_alive()?;
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                let consumer: BaseConsumer =
                    ClientConfig::new().set("bootstrap.servers", &self.bootstrap).create().expect("metadata client");
                if consumer.fetch_metadata(None, Duration::from_secs(5)).is_ok_and(|m| m.brokers().len() == 1) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{} not ready after {GUARD:?}\n{}", self.name, self.log_tail(40)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn check_alive(&self) -> Result<(), String> {
        // `try_wait` needs `&mut`; /proc tells the same without it.
        let status = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let state = status.rsplit(')').next().and_then(|s| s.split_whitespace().next());
        if matches!(state, None | Some("Z") | Some("X")) {
            return Err(format!("{} exited\n{}", self.name, self.log_tail(40)));
        }
        Ok(())
    }

    fn assert_alive(&self) {
        if let Err(e) = self.check_alive() {
            panic!("{e}");
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        format!("--- last lines of {} ---\n{}", self.log.display(), all[all.len().saturating_sub(lines)..].join("\n"))
    }

    /// The lines of the broker's log at WARN or ERROR level.
    fn warnings(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).map(str::to_owned).collect()
    }

    /// (`VmRSS`, `VmHWM`) of the broker process in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("broker /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in /proc/{}/status", self.child.id()))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Topic and records

fn create_topic(broker: &Broker) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &broker.bootstrap).create().expect("admin client");
    let topic = NewTopic::new(TOPIC, PARTITIONS as i32, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = block_on(admin.create_topics([&topic], &options)).expect("CreateTopics");
    if let Err((topic, code)) = &results[0] {
        panic!("creating {topic} on {} failed: {code:?}", broker.name);
    }
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &broker.bootstrap).create().expect("metadata client");
    let deadline = Instant::now() + GUARD;
    loop {
        let led = consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(5)).ok().is_some_and(|m| {
            m.topics().first().is_some_and(|t| {
                t.error().is_none()
                    && t.partitions().len() == PARTITIONS
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            })
        });
        if led {
            return;
        }
        assert!(Instant::now() < deadline, "{}: topic {TOPIC} has no leaders after {GUARD:?}", broker.name);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Produces `records` 1 KiB records round-robin over the partitions; the
/// end offset of each partition afterwards.
fn produce(broker: &Broker, records: usize) -> Vec<i64> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.kbytes", "65536")
        .create()
        .expect("producer");
    let value: Vec<u8> = (0..RECORD_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let deadline = Instant::now() + GUARD;
    for i in 0..records {
        let mut record = BaseRecord::<(), [u8]>::to(TOPIC).partition((i % PARTITIONS) as i32).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                    assert!(Instant::now() < deadline, "{}: producing took over {GUARD:?}", broker.name);
                }
                Err((e, _)) => panic!("{}: produce failed: {e}", broker.name),
            }
        }
    }
    producer.flush(GUARD).expect("flushing the producer");
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &broker.bootstrap).create().expect("watermark client");
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| consumer.fetch_watermarks(TOPIC, p as i32, Duration::from_secs(10)).expect("watermarks").1)
        .collect();
    assert_eq!(ends.iter().sum::<i64>(), records as i64, "{}: every record was written once", broker.name);
    ends
}

fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    config
}

// ---------------------------------------------------------------------------
// (a) the plain assigned consumer

/// Reads every partition from the beginning to `ends`; the time from `assign`.
fn consume_assigned(broker: &Broker, ends: &[i64]) -> Duration {
    let consumer: BaseConsumer = consumer_config(&broker.bootstrap)
        // librdkafka refuses assign() without a group.id; this consumer never
        // joins that group nor commits, it only reads its assigned partitions.
        .set("group.id", "bench-assigned-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("assigned consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p as i32, Offset::Beginning).expect("partition list");
    }
    let total: i64 = ends.iter().sum();
    let mut next = [0i64; PARTITIONS];
    let (mut seen, mut bytes) = (0i64, 0usize);
    // Connect and learn the partition leaders before the clock starts, as the
    // group's members have by the time they resume (librdkafka otherwise
    // retries the offset lookup of a leaderless partition only after 500 ms).
    consumer.fetch_metadata(Some(TOPIC), GUARD).expect("metadata for the assigned consumer");
    let start = Instant::now();
    consumer.assign(&tpl).expect("assign");
    while seen < total {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                assert_eq!(m.offset(), next[p], "{}: assigned consumer, partition {p}: out of order", broker.name);
                next[p] += 1;
                seen += 1;
                bytes += m.payload_len();
            }
            Some(Err(e)) => panic!("{}: assigned consumer: {e}", broker.name),
            None => assert!(start.elapsed() < GUARD, "{}: assigned consumer stuck at {seen}/{total}", broker.name),
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(bytes, total as usize * RECORD_BYTES);
    elapsed
}

// ---------------------------------------------------------------------------
// (b), (c) the group

/// What all members of one round's group share.
struct Shared {
    /// Set when the group is stable: members resume and the clock runs.
    go: AtomicBool,
    /// One bit per offset per partition: which records arrived.
    seen: Vec<Vec<AtomicU64>>,
    total: usize,
    unique: AtomicUsize,
    duplicates: AtomicUsize,
    /// Records that arrived before `go` (paused partitions must deliver none).
    early: AtomicUsize,
    errors: AtomicUsize,
    last_record_at: Mutex<Option<Instant>>,
}

impl Shared {
    fn new(ends: &[i64]) -> Shared {
        Shared {
            go: AtomicBool::new(false),
            seen: ends
                .iter()
                .map(|&end| (0..(end as usize).div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            total: ends.iter().sum::<i64>() as usize,
            unique: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
            early: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
            last_record_at: Mutex::new(None),
        }
    }

    fn record(&self, partition: usize, offset: i64) {
        if !self.go.load(Ordering::Acquire) {
            self.early.fetch_add(1, Ordering::Relaxed);
        }
        let bit = 1u64 << (offset % 64);
        let previous = self.seen[partition][offset as usize / 64].fetch_or(bit, Ordering::Relaxed);
        if previous & bit != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        } else if self.unique.fetch_add(1, Ordering::AcqRel) + 1 == self.total {
            *self.last_record_at.lock().unwrap() = Some(Instant::now());
        }
    }
}

/// One member's state as its thread and rebalance callbacks publish it.
struct MemberState {
    /// Partitions assigned now, and when that changed (in the rebalance callback).
    assignment: Mutex<(Vec<i32>, Instant)>,
    leave: AtomicBool,
    /// When the member began to close, on a leave.
    left_at: Mutex<Option<Instant>>,
    /// When a heartbeat last told the member a rebalance is in progress.
    heard_rebalance_at: Mutex<Option<Instant>>,
}

struct MemberContext {
    shared: Arc<Shared>,
    me: Arc<MemberState>,
    index: usize,
}

/// The instant diagnostic lines are timed from.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// With `STROM_BENCH_DEBUG=<librdkafka debug contexts>` (e.g. `cgrp`), members
/// print librdkafka's debug log and the bench its own events to stderr, each
/// with milliseconds since the start: for diagnosing a slow rebalance.
fn debug_contexts() -> Option<&'static str> {
    static CONTEXTS: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CONTEXTS.get_or_init(|| std::env::var("STROM_BENCH_DEBUG").ok().filter(|v| !v.is_empty())).as_deref()
}

fn debug_line(what: &str) {
    if debug_contexts().is_some() {
        eprintln!("{:>8} {what}", EPOCH.get_or_init(Instant::now).elapsed().as_millis());
    }
}

impl ClientContext for MemberContext {
    /// librdkafka's `cgrp` debug log, always on for members: the heartbeat
    /// that reports a rebalance marks when the member heard of it.
    fn log(&self, _level: RDKafkaLogLevel, facility: &str, message: &str) {
        if facility == "HEARTBEAT" && message.contains("rebalance in progress") {
            *self.me.heard_rebalance_at.lock().unwrap() = Some(Instant::now());
        }
        debug_line(&format!("member-{} {facility} {message}", self.index));
    }
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let now = Instant::now();
        match rebalance {
            Rebalance::Assign(tpl) => {
                if !self.shared.go.load(Ordering::Acquire) {
                    consumer.pause(tpl).expect("pausing the assigned partitions");
                }
                let partitions = tpl.elements().iter().map(|e| e.partition()).collect();
                debug_line(&format!("bench: member-{} assigned {partitions:?}", self.index));
                *self.me.assignment.lock().unwrap() = (partitions, now);
            }
            Rebalance::Revoke(_) => *self.me.assignment.lock().unwrap() = (Vec::new(), now),
            Rebalance::Error(e) => {
                eprintln!("rebalance error: {e}");
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct Member {
    state: Arc<MemberState>,
    thread: JoinHandle<()>,
}

impl Member {
    fn spawn(bootstrap: &str, group: &str, index: usize, shared: &Arc<Shared>) -> Member {
        let state = Arc::new(MemberState {
            assignment: Mutex::new((Vec::new(), Instant::now())),
            leave: AtomicBool::new(false),
            left_at: Mutex::new(None),
            heard_rebalance_at: Mutex::new(None),
        });
        let context = MemberContext { shared: shared.clone(), me: state.clone(), index };
        let mut config = consumer_config(bootstrap);
        config
            .set("group.id", group)
            .set("client.id", format!("member-{index}"))
            .set("heartbeat.interval.ms", HEARTBEAT_MS.to_string())
            .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
            .set("debug", debug_contexts().map_or("cgrp".into(), |c| format!("cgrp,{c}")))
            .set_log_level(RDKafkaLogLevel::Debug);
        let consumer: BaseConsumer<MemberContext> = config.create_with_context(context).expect("group consumer");
        consumer.subscribe(&[TOPIC]).expect("subscribe");
        let (shared, me) = (shared.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            let mut resumed = false;
            loop {
                if me.leave.load(Ordering::Acquire) {
                    *me.left_at.lock().unwrap() = Some(Instant::now());
                    debug_line(&format!("bench: member-{index} closes"));
                    // Dropping a group consumer closes it: revoke, commit, LeaveGroup.
                    drop(consumer);
                    return;
                }
                if !resumed && shared.go.load(Ordering::Acquire) {
                    consumer.resume(&consumer.assignment().expect("assignment")).expect("resume");
                    resumed = true;
                }
                // Short polls, so that the start signal and a leave take effect at once.
                match consumer.poll(Duration::from_millis(2)) {
                    Some(Ok(m)) => shared.record(m.partition() as usize, m.offset()),
                    Some(Err(e)) => {
                        // Print the first few; the count goes into the table.
                        let earlier = shared.errors.fetch_add(1, Ordering::Relaxed);
                        if earlier < 5 {
                            eprintln!("member-{index}: {e}");
                        }
                    }
                    None => {}
                }
            }
        });
        Member { state, thread }
    }

    /// Closes the member (LeaveGroup) and waits for its thread; when the close began.
    fn leave(self) -> Instant {
        self.state.leave.store(true, Ordering::Release);
        self.thread.join().expect("member thread");
        self.state.left_at.lock().unwrap().expect("left_at is set before closing")
    }
}

/// When the members hold all partitions between them, each some, none twice,
/// every assignment made after `after`: the instant of the last assignment.
fn stable_since(members: &[Member], after: Instant) -> Option<Instant> {
    let mut all = BTreeSet::new();
    let mut last = after;
    for member in members {
        let (partitions, at) = member.state.assignment.lock().unwrap().clone();
        if partitions.is_empty() || at < after {
            return None;
        }
        for p in partitions {
            if !all.insert(p) {
                return None;
            }
        }
        last = last.max(at);
    }
    (all.len() == PARTITIONS).then_some(last)
}

fn wait_stable(broker: &Broker, members: &[Member], after: Instant, what: &str) -> Instant {
    let deadline = Instant::now() + GUARD;
    loop {
        if let Some(at) = stable_since(members, after) {
            return at;
        }
        broker.assert_alive();
        assert!(Instant::now() < deadline, "{}: group not stable after {GUARD:?} ({what})", broker.name);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A small xorshift generator for leave delays (no `rand` dependency).
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Jitter {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
        Jitter(nanos as u64 | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One leave: from the start of the leaving member's close until the two
/// left hold all partitions; and the part of that after the later of them
/// heard of the rebalance from a heartbeat (their JoinGroup and SyncGroup
/// round trips and the assignment), when both did.
struct Leave {
    total: Duration,
    after_heard: Option<Duration>,
}

struct GroupRound {
    formation: Duration,
    consume: Duration,
    leaves: Vec<Leave>,
    early: usize,
    duplicates: usize,
    errors: usize,
}

fn group_round(broker: &Broker, ends: &[i64], group: &str) -> GroupRound {
    let shared = Arc::new(Shared::new(ends));
    let start = Instant::now();
    let mut members: Vec<Member> = (0..MEMBERS).map(|i| Member::spawn(&broker.bootstrap, group, i, &shared)).collect();
    let stable = wait_stable(broker, &members, start, "forming");
    let formation = stable - start;

    let go = Instant::now();
    shared.go.store(true, Ordering::Release);
    let deadline = go + GUARD;
    let consume = loop {
        if let Some(at) = *shared.last_record_at.lock().unwrap() {
            break at - go;
        }
        broker.assert_alive();
        assert!(
            Instant::now() < deadline,
            "{}: group stuck at {}/{} records",
            broker.name,
            shared.unique.load(Ordering::Relaxed),
            shared.total
        );
        std::thread::sleep(Duration::from_millis(1));
    };

    let mut jitter = Jitter::seeded();
    let mut leaves = Vec::with_capacity(LEAVES_PER_ROUND);
    for i in 0..LEAVES_PER_ROUND {
        if i > 0 {
            let joined = Instant::now();
            members.push(Member::spawn(&broker.bootstrap, group, MEMBERS + i, &shared));
            wait_stable(broker, &members, joined, "a newcomer joining");
        }
        // Leave at a random point of the heartbeat cycle: the remaining members
        // hear of the rebalance at their next heartbeat, whose phase would
        // otherwise be locked to the join that just completed.
        std::thread::sleep(Duration::from_millis(jitter.next() % (2 * HEARTBEAT_MS)));
        debug_line("bench: a member leaves");
        let left_at = members.pop().expect("a member to leave").leave();
        let done = wait_stable(broker, &members, left_at, "after a leave");
        let heard: Option<Vec<Instant>> =
            members.iter().map(|m| m.state.heard_rebalance_at.lock().unwrap().filter(|&t| t > left_at)).collect();
        let after_heard = heard.and_then(|h| h.into_iter().max()).map(|t| done.saturating_duration_since(t));
        debug_line(&format!("bench: rebalanced {:?} after the leave ({after_heard:?} after heard)", done - left_at));
        leaves.push(Leave { total: done - left_at, after_heard });
    }
    for member in members {
        member.leave();
    }
    assert_eq!(shared.unique.load(Ordering::Relaxed), shared.total, "{}: every record consumed", broker.name);
    GroupRound {
        formation,
        consume,
        leaves,
        early: shared.early.load(Ordering::Relaxed),
        duplicates: shared.duplicates.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
    }
}

// ---------------------------------------------------------------------------
// The run

/// Everything measured on one broker over the counted rounds.
#[derive(Default)]
struct Samples {
    assigned: Vec<Duration>,
    group: Vec<Duration>,
    leaves: Vec<Duration>,
    after_heard: Vec<Duration>,
    early: usize,
    duplicates: usize,
    errors: usize,
}

impl Samples {
    /// Group/assigned throughput: the median of assigned time / group time.
    fn group_vs_assigned(&self) -> f64 {
        median(self.assigned.iter().zip(&self.group).map(|(a, g)| a.as_secs_f64() / g.as_secs_f64()).collect())
    }

    /// The median rebalance time after a leave, in heartbeat intervals.
    fn leave_in_heartbeats(&self) -> f64 {
        median_secs(&self.leaves) / (HEARTBEAT_MS as f64 / 1000.0)
    }

    fn checks(&self) -> String {
        format!("{} / {} / {}", self.early, self.duplicates, self.errors)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "a median of no samples");
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn median_secs(v: &[Duration]) -> f64 {
    median(v.iter().map(Duration::as_secs_f64).collect())
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn run_round(broker: &Broker, ends: &[i64], round: usize, samples: Option<&mut Samples>) {
    let group = format!("bench-{}-{round}", broker.name.replace(' ', "-"));
    // Alternate which goes first, so neither always runs on a warmer cache.
    let (assigned, group_round) = if round % 2 == 0 {
        let a = consume_assigned(broker, ends);
        (a, group_round(broker, ends, &group))
    } else {
        let g = group_round(broker, ends, &group);
        (consume_assigned(broker, ends), g)
    };
    broker.assert_alive();
    let leaves: Vec<String> = group_round
        .leaves
        .iter()
        .map(|l| format!("{}/{}", ms(l.total), l.after_heard.map_or("-".into(), ms)))
        .collect();
    println!(
        "round {round} {:<18} assigned {:>5} ms | group {:>5} ms (formed in {:>4} ms) | leaves (total/after heard) \
         {} ms | early {} dup {} errors {}",
        broker.name,
        ms(assigned),
        ms(group_round.consume),
        ms(group_round.formation),
        leaves.join(" "),
        group_round.early,
        group_round.duplicates,
        group_round.errors,
    );
    if let Some(s) = samples {
        s.assigned.push(assigned);
        s.group.push(group_round.consume);
        s.leaves.extend(group_round.leaves.iter().map(|l| l.total));
        s.after_heard.extend(group_round.leaves.iter().filter_map(|l| l.after_heard));
        s.early += group_round.early;
        s.duplicates += group_round.duplicates;
        s.errors += group_round.errors;
    }
}

fn main() {
    let records = env_usize("STROM_BENCH_RECORDS", 500_000);
    let rounds = env_usize("STROM_BENCH_ROUNDS", 9).max(1);
    let want_kafka = std::env::var("STROM_BENCH_KAFKA").map_or(true, |v| v != "0");
    let kafka_version = std::env::var("KAFKA_VERSION").unwrap_or_else(|_| "4.3.1".into());
    let root = scratch_root();

    let strom = Broker::start_strom(&root);
    let kafka = if want_kafka {
        match Broker::start_kafka(&root, &kafka_version) {
            Ok(k) => Some(k),
            Err(why) => {
                println!("Apache Kafka is not measured: {why}");
                None
            }
        }
    } else {
        println!("Apache Kafka is not measured: STROM_BENCH_KAFKA=0");
        None
    };
    let brokers: Vec<&Broker> = std::iter::once(&strom).chain(kafka.as_ref()).collect();
    println!(
        "{records} records of {RECORD_BYTES} B in {PARTITIONS} partitions; {rounds} counted rounds after one warm-up, \
         {LEAVES_PER_ROUND} leaves each; brokers: {}",
        brokers.iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ")
    );

    let ends: Vec<Vec<i64>> = brokers
        .iter()
        .map(|b| {
            create_topic(b);
            produce(b, records)
        })
        .collect();

    let mut samples: Vec<Samples> = brokers.iter().map(|_| Samples::default()).collect();
    for round in 0..=rounds {
        let mut order: Vec<usize> = (0..brokers.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            run_round(brokers[i], &ends[i], round, (round > 0).then_some(&mut samples[i]));
        }
    }
    let memory: Vec<(u64, u64)> = brokers.iter().map(|b| b.memory_kib()).collect();
    for (b, (rss, hwm)) in brokers.iter().zip(&memory) {
        println!("{}: VmRSS {} MiB, VmHWM {} MiB after the workload", b.name, rss / 1024, hwm / 1024);
        let warnings = b.warnings();
        println!("{}: {} WARN/ERROR lines in its log", b.name, warnings.len());
        for line in warnings.iter().take(3) {
            println!("    {line}");
        }
    }

    println!();
    println!(
        "Consumers: heartbeat.interval.ms={HEARTBEAT_MS}, session.timeout.ms={SESSION_TIMEOUT_MS}; brokers: {}; \
         {rounds} paired rounds, {} leaves per broker. Checks are records delivered before the resume / twice / \
         client errors.",
        GROUP_SETTINGS.join(", "),
        samples[0].leaves.len()
    );
    println!();
    let s = &samples[0];
    if let (Some(k), Some(ks)) = (kafka.as_ref(), samples.get(1)) {
        // Throughput ratio Strom/Kafka = Kafka time / Strom time, per round.
        let paired = |strom: &[Duration], kafka: &[Duration]| {
            median(strom.iter().zip(kafka).map(|(s, k)| k.as_secs_f64() / s.as_secs_f64()).collect())
        };
        let after_heard = if s.after_heard.is_empty() || ks.after_heard.is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.2}", median_secs(&s.after_heard) / median_secs(&ks.after_heard))
        };
        println!("| measurement | Strom vs {} | Strom | {} |", k.name, k.name);
        println!("|---|---|---|---|");
        println!(
            "| assigned consumer: throughput, Strom/Kafka (median of paired rounds) | {:.2} | | |",
            paired(&s.assigned, &ks.assigned)
        );
        println!(
            "| group of 3: throughput, Strom/Kafka (median of paired rounds) | {:.2} | | |",
            paired(&s.group, &ks.group)
        );
        println!(
            "| group of 3 / assigned consumer: throughput (median of paired rounds) | | {:.2} | {:.2} |",
            s.group_vs_assigned(),
            ks.group_vs_assigned()
        );
        println!(
            "| 1 of 3 leaves: time until the 2 left hold all 6 partitions, Strom/Kafka (ratio of medians; per \
             broker: median / heartbeat.interval.ms) | {:.2} | {:.2} | {:.2} |",
            median_secs(&s.leaves) / median_secs(&ks.leaves),
            s.leave_in_heartbeats(),
            ks.leave_in_heartbeats()
        );
        println!(
            "| … of which after the members heard of it (JoinGroup, SyncGroup, assignment), Strom/Kafka (ratio of \
             medians) | {after_heard} | | |"
        );
        println!(
            "| broker resident memory after the workload (VmRSS), Strom/Kafka | {:.3} | | |",
            memory[0].0 as f64 / memory[1].0 as f64
        );
        println!(
            "| broker peak resident memory (VmHWM), Strom/Kafka | {:.3} | | |",
            memory[0].1 as f64 / memory[1].1 as f64
        );
        println!("| checks: early / duplicates / errors | | {} | {} |", s.checks(), ks.checks());
    } else {
        println!("| measurement | Strom |");
        println!("|---|---|");
        println!(
            "| group of 3 / assigned consumer: throughput (median of paired rounds) | {:.2} |",
            s.group_vs_assigned()
        );
        println!(
            "| 1 of 3 leaves: time until the 2 left hold all 6 partitions / heartbeat.interval.ms (median) | {:.2} |",
            s.leave_in_heartbeats()
        );
        println!("| checks: early / duplicates / errors | {} |", s.checks());
    }
}
