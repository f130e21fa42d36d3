//! Test harness: a real `strom-broker` process on free loopback ports.
//!
//! [`BrokerProcess`] starts the binary Cargo built for this package with its
//! own temporary data dir, Kafka port and HTTP port, waits until `/readyz`
//! answers 200 and the Kafka port accepts connections, and kills the process
//! when dropped. It can stop the broker with SIGTERM (asserting a clean exit),
//! kill it with SIGKILL, and restart it on the same data dir and ports.
//!
//! The broker's stdout and stderr go to `broker.log` in the temp dir; when a
//! test panics while a broker is alive or being dropped, that log is printed
//! so the failure shows what the broker said.
//!
//! Submodules: [`clients`] (rdkafka producers, consumers and admin helpers),
//! [`wire`] (a raw Kafka protocol client for requests no client library
//! would send), [`e2e`] (the Python, Go and Java client programs under
//! `e2e/`, run as child processes), [`consumer_groups`] (group checks
//! written once for all of those clients) and [`metrics`] (scraping and
//! strictly parsing `/metrics`, `/readyz`), [`security`] (certificates
//! and secured listeners), [`txn`] (raw transactional requests) and
//! [`txn_history`] (the transactional history checker).

// Every test crate compiles this module but uses only some of its helpers.
#![allow(dead_code)]

pub mod clients;
pub mod cluster;
pub mod consumer_groups;
pub mod e2e;
pub mod metrics;
pub mod security;
pub mod txn;
pub mod txn_history;
pub mod wire;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a broker may take to become ready (debug build, log recovery).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a broker may take to exit after SIGTERM (it drains for up to 10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at a first start when a freshly picked port turns out to be taken.
const PORT_ATTEMPTS: usize = 5;

/// Polls `condition` every 20 ms until it returns `Some`, panicking with
/// `what` after `timeout`. Used instead of bare sleeps.
pub fn wait_for<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Adds `--set` for each of `settings` to a strom-broker command, keeps the
/// runner's `STROM_*` variables out (settings come only from the flags), and
/// sends stdout and stderr to `log`.
pub fn finish_broker_command(command: &mut Command, settings: &[String], log: File) {
    for setting in settings {
        command.arg("--set").arg(setting);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("STROM_") {
            command.env_remove(key);
        }
    }
    let stdout = log.try_clone().expect("clone the broker log handle");
    command
        .env("RUST_LOG", std::env::var("STROM_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()))
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(log));
}

/// How many extra ports a broker's settings may name (`{PORT_0}`..).
pub const EXTRA_PORTS: usize = 3;

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local address of a bound listener").port()
}

/// A running (or stopped, restartable) broker process with its own data dir.
pub struct BrokerProcess {
    dir: TempDir,
    kafka_port: u16,
    http_port: u16,
    internal_port: u16,
    /// Ports for the listeners a test adds: `{PORT_0}`.. in its settings.
    extra_ports: [u16; EXTRA_PORTS],
    settings: Vec<String>,
    /// Open-file limit (soft and hard) the broker runs under, if set.
    open_file_limit: Option<u64>,
    /// How long a (re)start may take to become ready.
    ready_timeout: Duration,
    /// How long a SIGTERM may take to end the process.
    stop_timeout: Duration,
    child: Option<Child>,
}

impl BrokerProcess {
    /// Starts a broker with default settings and waits until it is ready.
    pub fn start() -> BrokerProcess {
        BrokerProcess::start_with(&[])
    }

    /// Starts a broker with extra `--set KEY=VALUE` settings and waits until it is ready.
    pub fn start_with(settings: &[&str]) -> BrokerProcess {
        BrokerProcess::start_with_open_file_limit(settings, None)
    }

    /// Starts a broker whose open-file limit, soft and hard, is `limit`
    /// (set in the child before exec, so the broker cannot raise it), with
    /// extra settings, and waits until it is ready.
    pub fn start_with_open_file_limit(settings: &[&str], limit: Option<u64>) -> BrokerProcess {
        let dir = tempfile::Builder::new().prefix("strom-it-").tempdir().expect("create a temp dir for the broker");
        let mut broker = BrokerProcess {
            dir,
            kafka_port: 0,
            http_port: 0,
            internal_port: 0,
            extra_ports: [0; EXTRA_PORTS],
            settings: settings.iter().map(|s| s.to_string()).collect(),
            open_file_limit: limit,
            ready_timeout: READY_TIMEOUT,
            stop_timeout: STOP_TIMEOUT,
            child: None,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            broker.kafka_port = free_port();
            broker.http_port = free_port();
            broker.internal_port = free_port();
            broker.extra_ports = std::array::from_fn(|_| free_port());
            broker.spawn();
            match broker.wait_ready() {
                Ok(()) => return broker,
                Err(exit) if attempt < PORT_ATTEMPTS && broker.log().contains("cannot listen") => {
                    eprintln!("broker could not bind its ports ({exit}); retrying with new ports");
                }
                Err(exit) => broker.fail(&format!("broker exited before becoming ready: {exit}")),
            }
        }
        unreachable!("the last attempt either returns or fails");
    }

    /// The internal (gRPC) address: loopback, plain (the single-node default).
    pub fn internal_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.internal_port))
    }

    /// Gives later restarts `ready` to become ready and later stops `stop`
    /// to exit (a broker with very many partitions needs longer).
    pub fn set_timeouts(&mut self, ready: Duration, stop: Duration) {
        self.ready_timeout = ready;
        self.stop_timeout = stop;
    }

    /// `127.0.0.1:<kafka port>`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    /// The Kafka listener address.
    pub fn kafka_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.kafka_port))
    }

    /// The HTTP listener address (`/metrics`, `/healthz`, `/readyz`).
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    /// The Kafka listener port.
    pub fn kafka_port(&self) -> u16 {
        self.kafka_port
    }

    /// The ports picked for `{PORT_0}`, `{PORT_1}`.. in the settings (a
    /// test's own listeners): picked again, with the harness's, when a
    /// start fails to bind one.
    pub fn extra_ports(&self) -> [u16; EXTRA_PORTS] {
        self.extra_ports
    }

    /// The broker's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A partition's log directory, `<data-dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{partition}"))
    }

    /// The partition's segment `.log` files, by base offset.
    pub fn segment_files(&self, topic: &str, partition: i32) -> Vec<PathBuf> {
        let dir = self.partition_dir(topic, partition);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("list partition dir {}: {e}", dir.display()));
        let mut logs: Vec<PathBuf> = entries
            .map(|e| e.unwrap_or_else(|e| panic!("read an entry of {}: {e}", dir.display())).path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "log"))
            .collect();
        // 20-digit zero-padded base offsets sort lexically in offset order.
        logs.sort();
        logs
    }

    /// The active (highest base offset) segment `.log` file of a partition.
    pub fn active_segment(&self, topic: &str, partition: i32) -> PathBuf {
        let logs = self.segment_files(topic, partition);
        logs.last()
            .cloned()
            .unwrap_or_else(|| panic!("no .log segment in {}", self.partition_dir(topic, partition).display()))
    }

    /// The process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is not running").id()
    }

    /// Everything the broker wrote to stdout and stderr so far, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit; asserts it exited 0.
    pub fn stop_gracefully(&mut self) {
        let pid = self.pid();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run `kill -TERM` (procps/coreutils kill on PATH)");
        assert!(status.success(), "`kill -TERM {pid}` failed: {status}");
        let exit = self.wait_exit(self.stop_timeout);
        if !exit.success() {
            self.fail(&format!("broker did not exit cleanly after SIGTERM: {exit}"));
        }
    }

    /// Kills the broker with SIGKILL (no shutdown work at all) and reaps it.
    pub fn kill_hard(&mut self) {
        let mut child = self.child.take().expect("the broker is not running");
        child.kill().expect("send SIGKILL to the broker");
        child.wait().expect("reap the killed broker");
    }

    /// Starts the broker again on the same data dir, ports and settings.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() needs a stopped broker; stop or kill it first");
        self.spawn();
        if let Err(exit) = self.wait_ready() {
            self.fail(&format!("restarted broker exited before becoming ready: {exit}"));
        }
    }

    /// Panics with `message` and the broker's log.
    pub fn fail(&self, message: &str) -> ! {
        panic!("{message}\n----- broker log ({}) -----\n{}", self.log_path().display(), self.log());
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn spawn(&mut self) {
        let path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open broker log {}: {e}", path.display()));
        writeln!(log, "===== starting strom-broker (kafka port {}) =====", self.kafka_port)
            .expect("write to the broker log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_strom-broker"));
        command
            .arg("--node-id")
            .arg("0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.kafka_port))
            .arg("--advertise")
            .arg(format!("127.0.0.1:{}", self.kafka_port))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .arg("--internal-listen")
            .arg(format!("127.0.0.1:{}", self.internal_port));
        // `{KAFKA_PORT}` in a setting is the port picked for this broker
        // (a `listeners` setting naming the harness's own listener), and
        // `{PORT_n}` the n-th of its extra ports (listeners a test adds).
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|s| {
                let mut s = s.replace("{KAFKA_PORT}", &self.kafka_port.to_string());
                for (i, port) in self.extra_ports.iter().enumerate() {
                    s = s.replace(&format!("{{PORT_{i}}}"), &port.to_string());
                }
                s
            })
            .collect();
        finish_broker_command(&mut command, &settings, log);
        if let Some(limit) = self.open_file_limit {
            use std::os::unix::process::CommandExt;
            let rlimit = rustix::process::Rlimit { current: Some(limit), maximum: Some(limit) };
            // SAFETY: setrlimit is a single system call, safe between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, rlimit).map_err(std::io::Error::from)
                });
            }
        }
        let child = command.spawn().expect("spawn the strom-broker binary");
        self.child = Some(child);
    }

    /// Waits until `/readyz` answers 200 and the Kafka port accepts a
    /// connection; `Err` with the exit status if the process exits first.
    fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            let child = self.child.as_mut().expect("the broker was spawned");
            if let Some(exit) = child.try_wait().expect("poll the broker process") {
                self.child = None;
                return Err(exit);
            }
            if http_get_status(self.http_port, "/readyz") == Some(200)
                && TcpStream::connect_timeout(&self.kafka_addr(), Duration::from_secs(1)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.fail(&format!("broker not ready after {:?}", self.ready_timeout));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("the broker is not running");
            if let Some(exit) = child.try_wait().expect("poll the broker process") {
                self.child = None;
                return exit;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("broker still running {timeout:?} after SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- broker log ({}) -----\n{}", self.log_path().display(), self.log());
        }
    }
}

/// The status code of `GET path` on the broker's HTTP port, or `None` if
/// it cannot be had (not listening yet, connection closed early).
pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let body = http_get(port, path)?;
    let status_line = body.lines().next()?;
    status_line.split_whitespace().nth(1)?.parse().ok()
}

/// The whole HTTP/1.1 response to `GET path`, or `None` if it cannot be had.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Appends `bytes` to the end of `path` (for simulating a torn write).
pub fn append_to_file(path: &Path, bytes: &[u8]) {
    let mut file =
        OpenOptions::new().append(true).open(path).unwrap_or_else(|e| panic!("open {} to append: {e}", path.display()));
    file.write_all(bytes).unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
    file.sync_all().unwrap_or_else(|e| panic!("fsync {}: {e}", path.display()));
}

/// The size of a file in bytes.
pub fn file_len(path: &Path) -> u64 {
    File::open(path).and_then(|f| f.metadata()).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).len()
}

/// The resident memory (VmRSS) of process `pid`, from /proc.
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}
