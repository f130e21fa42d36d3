//! Broker processes under test: a Strom or Apache Kafka cluster of one or
//! three nodes on loopback, each node with its own data directory under the
//! run's scratch directory and its log beside it (`node-<i>.log`), started,
//! measured (resident memory and CPU time from `/proc`), killed with SIGKILL
//! or stopped with SIGTERM, and restarted on the same data.
//!
//! Every node of both systems is a broker and a controller voter (Strom's
//! embedded quorum; Kafka's KRaft combined mode), so a cluster of N nodes is N
//! processes on either side.
//!
//! A cluster's [`Security`] says whether the brokers' own traffic (Strom's
//! internal plane: replication, Raft, Admin; Kafka's inter-broker and
//! controller listeners) is plain or on mutual TLS. Clients connect in
//! plaintext on every node's PLAINTEXT listener; a cluster started with a
//! key store ([`Cluster::start_with_clients`]) also serves clients on a
//! second listener, [`SASL_SSL_LISTENER`], SASL_SSL with SCRAM-SHA-512
//! ([`sasl_ssl_settings`], the same on both systems), while the PLAINTEXT
//! one stays for setup, readiness and the read-back checks.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// Which broker a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum System {
    Strom,
    Kafka,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Strom => "Strom",
            System::Kafka => "Kafka",
        }
    }

    /// Both systems in the order round `round` runs them: alternating, so
    /// neither always runs on a warmer (or more fragmented) machine.
    pub fn order(round: usize) -> [System; 2] {
        if round % 2 == 0 { [System::Strom, System::Kafka] } else { [System::Kafka, System::Strom] }
    }
}

/// How the brokers of a cluster talk to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Security {
    /// Plaintext (Strom: `--internal-insecure` with more than one node).
    Plain,
    /// Mutual TLS with certificates from `strom-broker certs`. Strom: the
    /// internal plane with `--internal-tls-ca/-cert/-key`. Kafka: an SSL
    /// listener INTERNAL for inter-broker traffic and the CONTROLLER listener
    /// on SSL, client certificates required (`run-kafka.sh --internal-tls`).
    InternalTls,
}

impl Security {
    /// Suffix of a cluster's directory: empty for plain, `-tls` for TLS.
    pub fn dir_suffix(self) -> &'static str {
        match self {
            Security::Plain => "",
            Security::InternalTls => "-tls",
        }
    }
}

/// Where the programs under test are.
#[derive(Clone, Debug)]
pub struct Programs {
    /// The release `strom-broker` binary.
    pub strom_broker: PathBuf,
    /// `bench/kafka/run-kafka.sh`.
    pub run_kafka: PathBuf,
    /// Extra arguments appended to every Strom node's command line
    /// (`--strom-args` for the base Strom, a variant's own for a
    /// `--strom-variant` cluster).
    pub strom_args: Vec<String>,
}

/// A `--strom-variant` cluster's place among the run's variants, and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantTag {
    pub index: usize,
    pub name: String,
}

/// Sorts the clusters a round runs into its order: each system's clusters
/// back to back (plain, then TLS between brokers, then the Strom variants,
/// so a variant or TLS cluster runs next to its plain neighbour in time),
/// Strom first; every odd round in the reverse order. So every round runs
/// in the reverse order of the one before, and the systems alternate which
/// goes first as [`System::order`] has them.
pub fn run_order<T>(items: &mut [T], key: impl Fn(&T) -> (System, Security, Option<usize>), round: usize) {
    items.sort_by_key(|item| {
        let (system, security, variant) = key(item);
        let flavour = match (security, variant) {
            (Security::Plain, None) => 0,
            (Security::InternalTls, _) => 1,
            (Security::Plain, Some(i)) => 2 + i,
        };
        (system as usize, flavour)
    });
    if round % 2 == 1 {
        items.reverse();
    }
}

/// Broker settings both systems get, by their (shared) Kafka names.
pub const COMMON_SETTINGS: &[(&str, &str)] = &[
    // Consumer groups form at once on both (Kafka's default delays 3 s).
    ("group.initial.rebalance.delay.ms", "0"),
];

/// Settings only Kafka gets, and why.
pub const KAFKA_ONLY_SETTINGS: &[(&str, &str)] = &[
    // Deleted topics' files go after 1 s instead of 60 s, so the disk holds
    // one run's data at a time, as on Strom (which deletes at once).
    ("log.segment.delete.delay.ms", "1000"),
];

struct Node {
    id: usize,
    command: Vec<String>,
    env: Vec<(String, String)>,
    bootstrap: String,
    /// The SASL_SSL listener's address, if the cluster has one.
    sasl_ssl: Option<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn spawn(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let err = log.try_clone().context("duplicating the log handle")?;
        let mut command = Command::new(&self.command[0]);
        command.args(&self.command[1..]).stdin(Stdio::null()).stdout(log).stderr(err);
        for (key, _) in std::env::vars() {
            if key.starts_with("STROM_") {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        // If the harness dies (Ctrl-C, a crash), its brokers die with it
        // instead of running on: SIGKILL when the parent goes. The setting
        // survives run-kafka.sh's exec of the JVM.
        // SAFETY: the closure runs between fork and exec and only makes the
        // prctl system call, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                    .map_err(std::io::Error::from)
            });
        }
        let child = command.spawn().with_context(|| format!("starting {}", self.command.join(" ")))?;
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn check_alive(&mut self) -> Result<()> {
        match self.child.as_mut().map(Child::try_wait) {
            None => bail!("node {} is not running", self.id),
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(status))) => {
                bail!("node {} exited ({status})\n{}", self.id, log_tail(&self.log, 30))
            }
            Some(Err(e)) => bail!("node {}: waiting for it failed: {e}", self.id),
        }
    }

    fn signal(&mut self, signal: &str) -> Result<()> {
        if let Some(pid) = self.pid() {
            let status = Command::new("kill").args([signal, &pid.to_string()]).status().context("running kill")?;
            if !status.success() {
                bail!("kill {signal} {pid} failed");
            }
        }
        Ok(())
    }

    fn wait_exit(&mut self, within: Duration) -> Result<bool> {
        let deadline = Instant::now() + within;
        while let Some(child) = self.child.as_mut() {
            if child.try_wait()?.is_some() {
                self.child = None;
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(true)
    }
}

/// A running cluster of one system.
pub struct Cluster {
    pub system: System,
    pub security: Security,
    /// Set on a `--strom-variant` cluster (by whoever started it).
    pub variant: Option<VariantTag>,
    nodes: Vec<Node>,
    pub dir: PathBuf,
}

/// `VmRSS` and `VmHWM` of a process, and its CPU time so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessStats {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub cpu: Duration,
}

impl Cluster {
    /// Starts `nodes` nodes of `system` in a fresh directory `dir` with
    /// `settings` (Kafka names) on top of [`COMMON_SETTINGS`], the brokers
    /// talking to each other as `security` says (certificates, if any, go to
    /// `dir/certs`); returns once every node answers Metadata listing all of
    /// them.
    pub fn start(
        system: System,
        security: Security,
        programs: &Programs,
        dir: &Path,
        nodes: usize,
        settings: &[(&str, &str)],
    ) -> Result<Cluster> {
        Cluster::start_with_clients(system, security, programs, dir, nodes, settings, None)
    }

    /// [`Cluster::start`], and with `sasl_ssl_keystore` (a PEM key store:
    /// unencrypted private key, then the certificate chain) every node also
    /// serves clients on a listener [`SASL_SSL_LISTENER`] with
    /// [`sasl_ssl_settings`]. Its SCRAM users are the caller's to create
    /// (through the PLAINTEXT listener).
    pub fn start_with_clients(
        system: System,
        security: Security,
        programs: &Programs,
        dir: &Path,
        nodes: usize,
        settings: &[(&str, &str)],
        sasl_ssl_keystore: Option<&Path>,
    ) -> Result<Cluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut all: Vec<(String, String)> =
            COMMON_SETTINGS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        if let Some(keystore) = sasl_ssl_keystore {
            all.extend(sasl_ssl_settings(keystore));
        }
        // Client, internal (Strom) or controller (Kafka), HTTP (Strom), for
        // Kafka with internal TLS its inter-broker listener, and the SASL_SSL
        // client listener (used only with a key store).
        let ports: Vec<[u16; 5]> = (0..nodes)
            .map(|_| Ok([free_port()?, free_port()?, free_port()?, free_port()?, free_port()?]))
            .collect::<Result<_>>()?;
        let voters =
            ports.iter().enumerate().map(|(i, p)| format!("{i}@127.0.0.1:{}", p[1])).collect::<Vec<_>>().join(",");
        let cluster_id = match system {
            System::Kafka => {
                let out = Command::new("bash").arg(&programs.run_kafka).arg("cluster-id").output()?;
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
            System::Strom => String::new(),
        };
        let certs = dir.join("certs");
        if security == Security::InternalTls {
            write_certs(programs, &certs, nodes)?;
        }
        let mut list = Vec::new();
        for (i, [port, quorum, http, kafka_internal, sasl_ssl_port]) in ports.into_iter().enumerate() {
            let node_dir = dir.join(format!("node-{i}"));
            let sasl_ssl = sasl_ssl_keystore.map(|_| format!("127.0.0.1:{sasl_ssl_port}"));
            let (command, env) = match system {
                System::Strom => {
                    let mut c = vec![
                        programs.strom_broker.display().to_string(),
                        "--node-id".into(),
                        i.to_string(),
                        "--data-dir".into(),
                        node_dir.display().to_string(),
                    ];
                    match &sasl_ssl {
                        // Kafka's named listeners, as run-kafka.sh
                        // --sasl-ssl-port writes them for Kafka.
                        Some(secure) => {
                            let listeners = format!("PLAINTEXT://127.0.0.1:{port},{SASL_SSL_LISTENER}://{secure}");
                            c.extend([
                                "--set".into(),
                                format!("listeners={listeners}"),
                                "--set".into(),
                                format!("advertised.listeners={listeners}"),
                                "--set".into(),
                                format!(
                                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,{SASL_SSL_LISTENER}:SASL_SSL"
                                ),
                            ]);
                        }
                        None => c.extend([
                            "--listen".into(),
                            format!("127.0.0.1:{port}"),
                            "--advertise".into(),
                            format!("127.0.0.1:{port}"),
                        ]),
                    }
                    c.extend([
                        "--internal-listen".into(),
                        format!("127.0.0.1:{quorum}"),
                        "--internal-advertise".into(),
                        format!("127.0.0.1:{quorum}"),
                        "--http-listen".into(),
                        format!("127.0.0.1:{http}"),
                    ]);
                    if nodes > 1 {
                        c.extend(["--voters".into(), voters.clone()]);
                    }
                    match security {
                        Security::InternalTls => c.extend([
                            "--internal-tls-ca".into(),
                            certs.join("ca.pem").display().to_string(),
                            "--internal-tls-cert".into(),
                            certs.join(format!("broker-{i}.pem")).display().to_string(),
                            "--internal-tls-key".into(),
                            certs.join(format!("broker-{i}-key.pem")).display().to_string(),
                        ]),
                        // A multi-broker Strom refuses a plain internal
                        // plane unless told so.
                        Security::Plain if nodes > 1 => c.push("--internal-insecure".into()),
                        Security::Plain => {}
                    }
                    for (k, v) in &all {
                        c.extend(["--set".into(), format!("{k}={v}")]);
                    }
                    c.extend(programs.strom_args.iter().cloned());
                    (c, vec![("RUST_LOG".to_owned(), "info".to_owned())])
                }
                System::Kafka => {
                    let mut c = vec!["bash".to_owned(), programs.run_kafka.display().to_string(), "start".into()];
                    if nodes > 1 {
                        c.extend([
                            "--node-id".into(),
                            i.to_string(),
                            "--voters".into(),
                            voters.clone(),
                            "--cluster-id".into(),
                            cluster_id.clone(),
                        ]);
                    }
                    if security == Security::InternalTls {
                        c.extend([
                            "--internal-tls".into(),
                            certs.display().to_string(),
                            "--internal-port".into(),
                            kafka_internal.to_string(),
                        ]);
                    }
                    if sasl_ssl.is_some() {
                        c.extend(["--sasl-ssl-port".into(), sasl_ssl_port.to_string()]);
                    }
                    c.extend([node_dir.display().to_string(), port.to_string(), quorum.to_string()]);
                    c.extend(all.iter().map(|(k, v)| format!("{k}={v}")));
                    c.extend(KAFKA_ONLY_SETTINGS.iter().map(|(k, v)| format!("{k}={v}")));
                    (c, Vec::new())
                }
            };
            list.push(Node {
                id: i,
                command,
                env,
                bootstrap: format!("127.0.0.1:{port}"),
                sasl_ssl,
                log: dir.join(format!("node-{i}.log")),
                child: None,
            });
        }
        let mut cluster = Cluster { system, security, variant: None, nodes: list, dir: dir.to_owned() };
        cluster.spawn_all()?;
        cluster.wait_ready(Duration::from_secs(180))?;
        Ok(cluster)
    }

    /// The system's name, with " mTLS" (Strom) or " TLS" (Kafka) when the
    /// brokers talk over TLS: "Strom", "Strom mTLS", "Kafka", "Kafka TLS";
    /// a variant's "Strom <name>".
    pub fn name(&self) -> String {
        match &self.variant {
            Some(v) => format!("{} {}", label(self.system, self.security), v.name),
            None => label(self.system, self.security),
        }
    }

    /// Starts every node that is not running, without waiting.
    pub fn spawn_all(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            if node.child.is_none() {
                node.spawn()?;
            }
        }
        Ok(())
    }

    /// The `bootstrap.servers` list.
    pub fn bootstrap(&self) -> String {
        self.nodes.iter().map(|n| n.bootstrap.as_str()).collect::<Vec<_>>().join(",")
    }

    /// The `bootstrap.servers` list of the SASL_SSL listener, if the cluster
    /// has one.
    pub fn sasl_ssl_bootstrap(&self) -> Option<String> {
        let all: Option<Vec<&str>> = self.nodes.iter().map(|n| n.sasl_ssl.as_deref()).collect();
        all.map(|a| a.join(","))
    }

    /// Waits until every node is up and Metadata lists all of them.
    pub fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let want = self.nodes.len();
        for i in 0..self.nodes.len() {
            let addr: SocketAddr = self.nodes[i].bootstrap.parse().context("node address")?;
            loop {
                self.nodes[i].check_alive()?;
                if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                    let client: BaseConsumer =
                        ClientConfig::new().set("bootstrap.servers", &self.nodes[i].bootstrap).create()?;
                    if client.fetch_metadata(None, Duration::from_secs(3)).is_ok_and(|m| m.brokers().len() == want) {
                        break;
                    }
                }
                if Instant::now() > deadline {
                    bail!("{} node {i} not ready after {within:?}\n{}", self.name(), log_tail(&self.nodes[i].log, 30));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Fails if any node has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        self.nodes.iter_mut().try_for_each(Node::check_alive)
    }

    /// Memory and CPU of every node, summed.
    pub fn stats(&self) -> Result<ProcessStats> {
        let mut total = ProcessStats::default();
        for node in &self.nodes {
            let pid = node.pid().with_context(|| format!("node {} is not running", node.id))?;
            let s = process_stats(pid)?;
            total.rss_kib += s.rss_kib;
            total.hwm_kib += s.hwm_kib;
            total.cpu += s.cpu;
        }
        Ok(total)
    }

    /// Every node's log file, `<dir>/node-<i>.log`: the broker's stdout and
    /// stderr (for Kafka, its log4j2 log, after `kafka-storage format`'s output).
    pub fn log_files(&self) -> impl Iterator<Item = &Path> {
        self.nodes.iter().map(|n| n.log.as_path())
    }

    /// The pid of node `i` (the broker process itself: run-kafka.sh execs the JVM).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes.get(i).and_then(Node::pid)
    }

    /// SIGKILL to every node; returns once they are gone.
    pub fn kill9(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.signal("-KILL")?;
            if !node.wait_exit(Duration::from_secs(30))? {
                bail!("node {} survived SIGKILL for 30 s", node.id);
            }
        }
        Ok(())
    }

    /// SIGTERM to every node (a controlled shutdown); SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<()> {
        for node in &mut self.nodes {
            node.signal("-TERM")?;
        }
        for node in &mut self.nodes {
            if !node.wait_exit(grace)? {
                node.signal("-KILL")?;
                node.wait_exit(Duration::from_secs(30))?;
            }
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// How the report and messages name a cluster of `system` with `security`.
pub fn label(system: System, security: Security) -> String {
    match (system, security) {
        (_, Security::Plain) => system.name().to_owned(),
        (System::Strom, Security::InternalTls) => "Strom mTLS".to_owned(),
        (System::Kafka, Security::InternalTls) => "Kafka TLS".to_owned(),
    }
}

/// The name of the SASL_SSL client listener on both systems (its settings
/// are `listener.name.sasl_ssl.*`).
pub const SASL_SSL_LISTENER: &str = "SASL_SSL";

/// The SCRAM mechanism the SASL_SSL listener serves, the only one enabled.
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-512";

/// The settings of the SASL_SSL client listener, given alike to Strom
/// (`--set`) and Kafka (appended to its server.properties): the server's
/// certificate from the PEM key store `keystore` (Kafka's KIP-651 format,
/// which Strom reads too), no client certificates (`ssl.client.auth` left at
/// `none` on both), each side's default TLS versions (TLSv1.2 and TLSv1.3)
/// and cipher suites, and SCRAM-SHA-512 as the only SASL mechanism. Kafka
/// needs a JAAS login module for a SASL listener; Strom accepts the same
/// line and ignores it (its SCRAM users live in the metadata, as Kafka's do).
pub fn sasl_ssl_settings(keystore: &Path) -> Vec<(String, String)> {
    let prefix = format!("listener.name.{}.", SASL_SSL_LISTENER.to_lowercase());
    let mechanism = SCRAM_MECHANISM.to_lowercase();
    [
        ("ssl.keystore.type".to_owned(), "PEM".to_owned()),
        ("ssl.keystore.location".to_owned(), keystore.display().to_string()),
        ("sasl.enabled.mechanisms".to_owned(), SCRAM_MECHANISM.to_owned()),
        (
            format!("{mechanism}.sasl.jaas.config"),
            "org.apache.kafka.common.security.scram.ScramLoginModule required;".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{prefix}{k}"), v))
    .collect()
}

/// Writes a CA and a certificate per node (ids 0..nodes, IP SAN 127.0.0.1)
/// into `dir` with `strom-broker certs`; Kafka's nodes use the same files.
pub fn write_certs(programs: &Programs, dir: &Path, nodes: usize) -> Result<()> {
    let ids = (0..nodes).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let out = Command::new(&programs.strom_broker)
        .arg("certs")
        .arg("--out")
        .arg(dir)
        .args(["--brokers", &ids, "--ip", "127.0.0.1"])
        .output()
        .context("running strom-broker certs")?;
    if !out.status.success() {
        bail!(
            "strom-broker certs --out {} --brokers {ids} failed ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Lets the disk settle before a latency run: waits 2 s (Kafka deletes a
/// deleted topic's files `log.segment.delete.delay.ms` later, 1 s here,
/// see [`KAFKA_ONLY_SETTINGS`]), then writes back every dirty page
/// (`sync`). A run then starts with no other run's writeback or file
/// deletions pending: on the project's test machines either stalls appends
/// for hundreds of milliseconds, on both systems.
pub fn settle_disk() -> Result<()> {
    std::thread::sleep(Duration::from_secs(2));
    let status = Command::new("sync").status().context("running sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

/// A port on 127.0.0.1 free right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).context("finding a free loopback port")?.port())
}

/// Memory and CPU time of process `pid`, from `/proc`.
pub fn process_stats(pid: u32) -> Result<ProcessStats> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces, hence the last ')'):
    // state is field 3, utime 14 and stime 15.
    let rest: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| -> Result<u64> {
        rest.get(i - 3).and_then(|v| v.parse().ok()).with_context(|| format!("field {i} of /proc/{pid}/stat"))
    };
    let cpu_ticks = ticks(14)? + ticks(15)?;
    Ok(ProcessStats {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        cpu: Duration::from_secs_f64(cpu_ticks as f64 / clock_ticks_per_second()),
    })
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Bytes free on the file system holding `dir` (from `df`).
pub fn free_bytes(dir: &Path) -> Result<u64> {
    let out = Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output().context("running df")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("df gave no free space for {}", dir.display()))
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    format!("--- last lines of {} ---\n{}", path.display(), all[all.len().saturating_sub(lines)..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_run_the_clusters_in_reverse_order_of_the_round_before() {
        use Security::{InternalTls, Plain};
        use System::{Kafka, Strom};
        let order = |round: usize| {
            let mut all =
                vec![(Kafka, InternalTls, None), (Strom, Plain, Some(1)), (Kafka, Plain, None), (Strom, Plain, None)];
            all.extend([(Strom, InternalTls, None), (Strom, Plain, Some(0))]);
            run_order(&mut all, |c| *c, round);
            all
        };
        assert_eq!(
            order(0),
            [
                (Strom, Plain, None),
                (Strom, InternalTls, None),
                (Strom, Plain, Some(0)),
                (Strom, Plain, Some(1)),
                (Kafka, Plain, None),
                (Kafka, InternalTls, None)
            ]
        );
        for round in 0..4 {
            let mut next = order(round + 1);
            next.reverse();
            assert_eq!(order(round), next, "round {round}");
        }
        // The four clusters of --internal-tls: each system's two back to
        // back, the systems and the settings alternating as before.
        let mut four =
            [(Kafka, InternalTls, None), (Strom, Plain, None), (Kafka, Plain, None), (Strom, InternalTls, None)];
        run_order(&mut four, |c| *c, 1);
        assert_eq!(
            four,
            [(Kafka, InternalTls, None), (Kafka, Plain, None), (Strom, InternalTls, None), (Strom, Plain, None)]
        );
    }

    #[test]
    fn the_sasl_ssl_listener_settings_are_its_own_and_scram_sha_512_only() {
        let settings = sasl_ssl_settings(Path::new("/run/sasl-ssl/keystore.pem"));
        assert!(settings.iter().all(|(k, _)| k.starts_with("listener.name.sasl_ssl.")), "{settings:?}");
        let get = |key: &str| {
            settings.iter().find(|(k, _)| k == &format!("listener.name.sasl_ssl.{key}")).map(|(_, v)| v.as_str())
        };
        assert_eq!(get("ssl.keystore.type"), Some("PEM"));
        assert_eq!(get("ssl.keystore.location"), Some("/run/sasl-ssl/keystore.pem"));
        assert_eq!(get("sasl.enabled.mechanisms"), Some("SCRAM-SHA-512"));
        assert!(get("scram-sha-512.sasl.jaas.config").is_some_and(|v| v.ends_with("ScramLoginModule required;")));
    }

    #[test]
    fn clusters_are_named_by_system_and_security() {
        assert_eq!(label(System::Strom, Security::Plain), "Strom");
        assert_eq!(label(System::Strom, Security::InternalTls), "Strom mTLS");
        assert_eq!(label(System::Kafka, Security::InternalTls), "Kafka TLS");
    }
}
