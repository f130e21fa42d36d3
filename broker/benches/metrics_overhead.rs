//! What recording metrics costs the produce path: produce throughput of a
//! broker with `metrics.enabled=true` beside one with `metrics.enabled=false`,
//! in one run.
//!
//! The bench starts two release `strom-broker` processes on free loopback
//! ports with data dirs under `target/bench-scratch`, identical but for
//! `metrics.enabled`. On each it creates a 6-partition topic. Then, for each
//! of two workloads, in paired rounds that alternate which broker goes first
//! (round 0 warms both up and is not counted), an rdkafka producer sends the
//! same 100-byte records to each, round-robin over the partitions, acks=1,
//! and waits for every delivery report; timed from the first send to the
//! last report:
//!
//! - **batched**: 3 000 000 records, librdkafka's default batching
//!   (`linger.ms=5`): the throughput case;
//! - **small requests**: 40 000 records, one record per batch
//!   (`batch.num.messages=1`, `linger.ms=0`): many small produce requests,
//!   the worst case for per-request and per-partition recording.
//!
//! Reported: for each workload, the medians over rounds of two per-round
//! ratios, metrics on / metrics off: throughput (1.00 means recording costs
//! nothing measurable; the target is ≥ 0.97), and the broker's CPU time per
//! record (user + system of the whole process from `/proc/<pid>/stat`, less
//! disturbed than wall-clock throughput by other work on a shared machine;
//! target ≤ 1.03). A scrape of each broker's
//! `/metrics` afterwards checks that the "on" broker counted every record and
//! the "off" one none.
//!
//! The same run also times the recording calls a one-batch produce request
//! makes (`record_request` with its response, `record_produce`) in a loop on
//! one thread, metrics on and off, and sets them beside the broker's CPU per
//! record in the small-requests workload: an upper bound of the share of
//! broker CPU that recording takes, free of the noise of a shared machine.
//!
//! Environment: `STROM_BENCH_ROUNDS` (7), `STROM_BENCH_SCALE` (1; multiplies
//! the record counts).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceResponse, ResponseKind};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use strom_broker::metrics::Metrics;

const TOPIC: &str = "metrics-overhead";
const PARTITIONS: usize = 6;
const RECORD_BYTES: usize = 100;
/// Hang guard for any single wait.
const GUARD: Duration = Duration::from_secs(120);

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

/// A strom-broker process with its own data dir, killed on drop.
struct Broker {
    name: &'static str,
    child: Child,
    bootstrap: String,
    http: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start(name: &'static str, metrics_enabled: bool) -> Broker {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_strom-broker"));
        let dir = tempfile::Builder::new().prefix("strom-metrics-").tempdir_in(scratch_root()).expect("scratch dir");
        let (kafka, internal, http) = (free_port(), free_port(), free_port());
        let log = dir.path().join("broker.log");
        let out = File::create(&log).expect("broker log file");
        let err = out.try_clone().expect("broker log handle");
        let child = Command::new(bin)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{kafka}"), "--advertise", &format!("127.0.0.1:{kafka}")])
            .args(["--internal-listen", &format!("127.0.0.1:{internal}")])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .args(["--set", &format!("metrics.enabled={metrics_enabled}")])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let broker = Broker {
            name,
            child,
            bootstrap: format!("127.0.0.1:{kafka}"),
            http: SocketAddr::from(([127, 0, 0, 1], http)),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + GUARD;
        while http_get(broker.http, "/readyz").is_none_or(|(status, _)| status != 200) {
            assert!(Instant::now() < deadline, "{name} not ready after {GUARD:?}\n{}", broker.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The value of an unlabelled-by-anything-else series line `prefix VALUE` in `/metrics`.
    fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = http_get(self.http, "/metrics")?;
        body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, response))
}

fn create_topic(broker: &Broker) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &broker.bootstrap).create().expect("admin client");
    let topic = NewTopic::new(TOPIC, PARTITIONS as i32, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = block_on(admin.create_topics([&topic], &options)).expect("CreateTopics");
    if let Err((topic, code)) = &results[0] {
        panic!("creating {topic} on {} failed: {code:?}", broker.name);
    }
}

/// One producer workload.
struct Workload {
    name: &'static str,
    records: usize,
    /// Producer settings beyond acks=1.
    settings: &'static [(&'static str, &'static str)],
}

/// Clock ticks per second in `/proc/<pid>/stat` (Linux's USER_HZ, 100 on every architecture's ABI).
const USER_HZ: f64 = 100.0;

/// CPU time the broker process has used so far (user + system, all
/// threads), from `/proc/<pid>/stat`.
fn cpu_seconds(broker: &Broker) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", broker.child.id())).expect("read /proc/<pid>/stat");
    // After the parenthesised command: field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks =
        |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).expect("utime and stime in /proc/<pid>/stat");
    (ticks(11) + ticks(12)) / USER_HZ
}

/// What one round measured on one broker.
struct Round {
    /// Records per second, first send to last delivery report.
    rate: f64,
    /// Broker CPU seconds per million records.
    cpu_per_million: f64,
}

/// Sends the workload's records round-robin and waits for every delivery.
fn produce_round(broker: &Broker, workload: &Workload) -> Round {
    let records = workload.records;
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &broker.bootstrap).set("acks", "1").set("queue.buffering.max.kbytes", "65536");
    for (k, v) in workload.settings {
        config.set(*k, *v);
    }
    let producer: BaseProducer = config.create().expect("producer");
    let value = [b'x'; RECORD_BYTES];
    // Connect and learn the leaders before the clock starts.
    producer.client().fetch_metadata(Some(TOPIC), Duration::from_secs(10)).expect("metadata before the round");
    let cpu_before = cpu_seconds(broker);
    let started = Instant::now();
    for i in 0..records {
        let mut record = BaseRecord::<(), [u8]>::to(TOPIC).partition((i % PARTITIONS) as i32).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                    assert!(started.elapsed() < GUARD, "{}: producing took over {GUARD:?}", broker.name);
                }
                Err((e, _)) => panic!("{}: produce failed: {e}", broker.name),
            }
        }
    }
    producer.flush(GUARD).expect("flushing the producer");
    let rate = records as f64 / started.elapsed().as_secs_f64();
    let cpu_per_million = (cpu_seconds(broker) - cpu_before) * 1e6 / records as f64;
    Round { rate, cpu_per_million }
}

/// Nanoseconds per one-batch produce request of the recording calls the
/// broker makes for it, with metrics `enabled` or not.
fn recording_ns_per_request(enabled: bool) -> f64 {
    const CALLS: u32 = 2_000_000;
    let metrics = Metrics::new(enabled, strom_broker::protocol::versions::SUPPORTED_APIS);
    let response = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
        TopicProduceResponse::default().with_partition_responses(vec![PartitionProduceResponse::default()]),
    ]));
    let took = Duration::from_micros(40);
    let started = Instant::now();
    for _ in 0..CALLS {
        metrics.record_produce(std::hint::black_box(TOPIC), 161, 1);
        metrics.record_request(ApiKey::Produce, 9, took, Some(std::hint::black_box(&response)));
    }
    started.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_of(v: &[f64]) -> f64 {
    median(v.to_vec())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that names another bench skips this one.
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"metrics_overhead".contains(a.as_str())) {
        return;
    }
    let scale = env_usize("STROM_BENCH_SCALE", 1);
    let rounds = env_usize("STROM_BENCH_ROUNDS", 7);
    let workloads = [
        Workload { name: "batched", records: 3_000_000 * scale, settings: &[("linger.ms", "5")] },
        Workload {
            name: "small requests",
            records: 40_000 * scale,
            settings: &[("linger.ms", "0"), ("batch.num.messages", "1")],
        },
    ];
    let on = Broker::start("metrics on", true);
    let off = Broker::start("metrics off", false);
    create_topic(&on);
    create_topic(&off);
    let mut rows = Vec::new();
    let mut small_cpu_ns_per_record = f64::NAN;
    for workload in &workloads {
        let (mut rate_ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
        let (mut on_all, mut off_all, mut on_cpu) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..=rounds {
            let (a, b) = if round % 2 == 0 {
                let a = produce_round(&on, workload);
                (a, produce_round(&off, workload))
            } else {
                let b = produce_round(&off, workload);
                (produce_round(&on, workload), b)
            };
            println!(
                "{} round {round}: metrics on {:.0} records/s ({:.2} CPU s/M records), off {:.0} records/s ({:.2} CPU s/M records)",
                workload.name, a.rate, a.cpu_per_million, b.rate, b.cpu_per_million
            );
            if round > 0 {
                rate_ratios.push(a.rate / b.rate);
                cpu_ratios.push(a.cpu_per_million / b.cpu_per_million);
                on_cpu.push(a.cpu_per_million);
                on_all.push(a.rate);
                off_all.push(b.rate);
            }
        }
        if workload.name == "small requests" {
            small_cpu_ns_per_record = median_of(&on_cpu) * 1e3;
        }
        rows.push(format!(
            "| {} ({} x {RECORD_BYTES} B) | {:.0} rec/s | {:.0} rec/s | {:.3} | {:.3} |",
            workload.name,
            workload.records,
            median(on_all),
            median(off_all),
            median(rate_ratios),
            median(cpu_ratios)
        ));
    }
    let produced: usize = workloads.iter().map(|w| w.records * (rounds + 1)).sum();
    let counted = on.metric(&format!("strom_topic_records_in_total{{topic=\"{TOPIC}\"}}")).unwrap_or(0.0);
    assert_eq!(counted, produced as f64, "the metrics-on broker counted every record");
    assert_eq!(
        off.metric(&format!("strom_topic_records_in_total{{topic=\"{TOPIC}\"}}")),
        None,
        "the metrics-off broker recorded nothing"
    );
    println!();
    println!(
        "| workload (acks=1, {PARTITIONS} partitions) | metrics on | metrics off | on/off throughput | on/off broker CPU per record |"
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    let (rec_on, rec_off) = (
        median((0..5).map(|_| recording_ns_per_request(true)).collect()),
        median((0..5).map(|_| recording_ns_per_request(false)).collect()),
    );
    println!();
    println!(
        "recording per one-batch produce request: {rec_on:.0} ns with metrics on, {rec_off:.1} ns off; \
         broker CPU per record in small requests: {small_cpu_ns_per_record:.0} ns; \
         recording share at most {:.2}%",
        100.0 * (rec_on - rec_off) / small_cpu_ns_per_record
    );
}
