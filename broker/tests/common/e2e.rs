//! Real Kafka client programs as child processes: the confluent-kafka script
//! (e2e/python), the franz-go program (e2e/go) and the Java client program
//! and Kafka's CLI tools (e2e/java).
//!
//! `scripts/e2e-deps.sh` installs and builds them into `$HOME/.cache/strom`
//! and writes their paths to `target/e2e.env`; [`E2eTools::load`] reads that
//! file (any `STROM_E2E_*` variable in the environment wins over it, and
//! `STROM_E2E_ENV` names another file) and fails the test, naming the fix,
//! when something is missing or was built from other sources.
//!
//! The three client programs share one command line and one output shape, so
//! a test is written once for all of them ([`Client`]): they print JSON lines
//! (`assigned`, `revoked`, `lost`, `record`, `committed`, `produced`, `closed`,
//! `error`, `client_error`), and a group member takes `commit` and `stop`
//! commands on stdin. [`ClientProcess`] collects the lines into a
//! [`ClientState`] as they come, so a test waits on conditions over it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// `session.timeout.ms` of every group member: the broker's minimum
/// (`group.min.session.timeout.ms`), so a killed member is noticed quickly.
pub const SESSION_TIMEOUT_MS: u64 = 6000;
/// How long a client may take to exit once told to stop (JVM start-up, LeaveGroup).
const EXIT_TIMEOUT: Duration = Duration::from_secs(90);
/// Event lines kept for a failure message.
const EVENTS_KEPT: usize = 60;

/// What to tell a developer when a client is missing.
const FIX: &str = "run `bash scripts/e2e-deps.sh` (or the whole `bash .ci/run`), which installs \
                   confluent-kafka, builds e2e/go and resolves e2e/java into $HOME/.cache/strom";

/// The workspace root (the directory holding `Cargo.lock`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the broker crate lives inside the workspace").to_path_buf()
}

/// Paths of the client programs, from `target/e2e.env` or `STROM_E2E_*` variables.
#[derive(Debug, Clone)]
pub struct E2eTools {
    values: HashMap<String, String>,
    source: String,
}

impl E2eTools {
    /// Reads the env file written by `scripts/e2e-deps.sh`; panics with the fix when it is missing.
    pub fn load() -> E2eTools {
        let path = std::env::var_os("STROM_E2E_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target").join("e2e.env"));
        let mut values: HashMap<String, String> =
            std::env::vars().filter(|(key, _)| key.starts_with("STROM_E2E_") && key != "STROM_E2E_ENV").collect();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                    if let Some((key, value)) = line.split_once('=') {
                        // The environment wins over the file.
                        values.entry(key.to_string()).or_insert_with(|| value.to_string());
                    }
                }
            }
            Err(e) if values.is_empty() => {
                panic!("the e2e clients are not set up: cannot read {} ({e}); {FIX}", path.display())
            }
            Err(_) => {}
        }
        E2eTools { values, source: path.display().to_string() }
    }

    fn get(&self, key: &str) -> &str {
        self.values.get(key).map(String::as_str).unwrap_or_else(|| panic!("{key} is not set in {}; {FIX}", self.source))
    }

    fn existing_file(&self, key: &str) -> PathBuf {
        let path = PathBuf::from(self.get(key));
        assert!(path.is_file(), "{key}={} does not exist; {FIX}", path.display());
        path
    }

    /// Fails when `program`'s sources changed since `scripts/e2e-deps.sh` built them.
    fn check_sources(&self, program: &str, key: &str) {
        let output = Command::new("bash")
            .arg(workspace_root().join("scripts").join("e2e-deps.sh"))
            .args(["--source-hash", program])
            .output()
            .unwrap_or_else(|e| panic!("run scripts/e2e-deps.sh --source-hash {program}: {e}"));
        assert!(output.status.success(), "scripts/e2e-deps.sh --source-hash {program} failed: {output:?}");
        let current = String::from_utf8_lossy(&output.stdout).trim().to_string();
        assert_eq!(
            self.get(key),
            current,
            "e2e/{program} changed since it was last built ({key} in {}); {FIX}",
            self.source
        );
    }

    /// `python strom_client.py` in the confluent-kafka venv.
    pub fn python_client(&self) -> Command {
        let mut command = Command::new(self.existing_file("STROM_E2E_PYTHON"));
        command.arg("-u").arg(workspace_root().join("e2e").join("python").join("strom_client.py"));
        command
    }

    /// The confluent-kafka venv's `python`, for a script of the test's own.
    pub fn python(&self) -> Command {
        Command::new(self.existing_file("STROM_E2E_PYTHON"))
    }

    /// The franz-go program.
    pub fn go_client(&self) -> Command {
        self.check_sources("go", "STROM_E2E_GO_SOURCES");
        Command::new(self.existing_file("STROM_E2E_GO_BIN"))
    }

    /// `java -cp <kafka-clients, kafka-tools, e2e classes> <main_class>`, with client logs at WARN on stderr.
    pub fn java_main(&self, main_class: &str) -> Command {
        self.check_sources("java", "STROM_E2E_JAVA_SOURCES");
        let classpath = self.get("STROM_E2E_JAVA_CLASSPATH");
        for entry in classpath.split(':') {
            assert!(Path::new(entry).exists(), "classpath entry {entry} does not exist; {FIX}");
        }
        let mut command = Command::new(self.existing_file("STROM_E2E_JAVA"));
        command
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .arg("-XX:+UseSerialGC")
            .arg("-XX:TieredStopAtLevel=1")
            .arg("-cp")
            .arg(classpath)
            .arg(main_class);
        command
    }

    /// The Java client program (kafka-clients).
    pub fn java_client(&self) -> Command {
        self.java_main("dev.strom.e2e.Main")
    }

    /// The Kafka version of the Java client and tools.
    pub fn kafka_version(&self) -> String {
        self.get("STROM_E2E_KAFKA_VERSION").to_string()
    }
}

/// Which client program a test drives; all three take the same arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// confluent-kafka (librdkafka), e2e/python/strom_client.py.
    Python,
    /// franz-go, e2e/go.
    Go,
    /// kafka-clients, e2e/java.
    Java,
}

impl Client {
    /// The program, ready for its subcommand.
    pub fn command(self, tools: &E2eTools) -> Command {
        match self {
            Client::Python => tools.python_client(),
            Client::Go => tools.go_client(),
            Client::Java => tools.java_client(),
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Client::Python => "python",
            Client::Go => "go",
            Client::Java => "java",
        }
    }

    /// Produces records `value-<start..start+count>` (keys `key-<i % keys>`)
    /// and waits until every one is acknowledged.
    pub fn produce(self, tools: &E2eTools, bootstrap: &str, topic: &str, start: usize, count: usize, keys: usize) {
        let mut command = self.command(tools);
        command.args(["produce", "--bootstrap", bootstrap, "--topic", topic]).args([
            "--start",
            &start.to_string(),
            "--count",
            &count.to_string(),
            "--keys",
            &keys.to_string(),
        ]);
        let state = run_to_completion(&format!("{}-producer", self.name()), command, Duration::from_secs(180));
        assert_eq!(state.produced, Some(count as u64), "{} producer's report", self.name());
    }

    /// Starts a member of `group` consuming `topic` (session timeout [`SESSION_TIMEOUT_MS`]).
    pub fn consumer(
        self,
        tools: &E2eTools,
        name: &str,
        bootstrap: &str,
        topic: &str,
        group: &str,
        extra: &[&str],
    ) -> ClientProcess {
        let mut command = self.command(tools);
        command
            .args(["consume", "--bootstrap", bootstrap, "--topic", topic, "--group", group])
            .args(["--session-timeout-ms", &SESSION_TIMEOUT_MS.to_string()])
            .args(extra);
        ClientProcess::spawn(&format!("{}-{name}", self.name()), command)
    }

    /// The group's committed offsets of `topic`'s partitions as the client's API reports them (-1: none).
    pub fn committed(
        self,
        tools: &E2eTools,
        bootstrap: &str,
        topic: &str,
        group: &str,
        partitions: i32,
    ) -> BTreeMap<i32, i64> {
        let mut command = self.command(tools);
        command
            .args(["committed", "--bootstrap", bootstrap, "--topic", topic, "--group", group])
            .args(["--partitions", &partitions.to_string()]);
        let state = run_to_completion(&format!("{}-committed", self.name()), command, Duration::from_secs(120));
        state.commits.last().cloned().unwrap_or_else(|| panic!("{} committed printed no offsets", self.name()))
    }
}

/// One record as a client consumed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
}

/// Everything a client reported so far.
#[derive(Debug, Clone, Default)]
pub struct ClientState {
    /// Partitions currently assigned (assigned adds, revoked and lost remove).
    pub assignment: BTreeSet<i32>,
    /// Number of assigned/revoked/lost events so far.
    pub assignment_events: usize,
    /// Records in the order they were consumed.
    pub records: Vec<Consumed>,
    /// Offsets of each successful commit, in order.
    pub commits: Vec<BTreeMap<i32, i64>>,
    /// The count a producer reported when all its records were acknowledged.
    pub produced: Option<u64>,
    /// Fatal errors the client reported before exiting.
    pub errors: Vec<String>,
    /// Non-fatal errors the client library reported.
    pub client_errors: Vec<String>,
    /// The client closed (left its group) cleanly.
    pub closed: bool,
    /// The client's stdout ended (it exited or was killed).
    pub ended: bool,
    /// The latest non-record lines, for failure messages.
    pub events: Vec<String>,
    /// Every event of a kind not listed above (a program's own events), in
    /// order; the latest are in `events` too.
    pub other: Vec<Value>,
}

impl ClientState {
    fn apply(&mut self, line: &str) {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            self.keep(format!("(not JSON) {line}"));
            return;
        };
        let kind = event["event"].as_str().unwrap_or_default();
        let partitions = || -> Vec<i32> {
            event["partitions"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p.as_i64()).map(|p| p as i32).collect())
                .unwrap_or_default()
        };
        match kind {
            "record" => {
                self.records.push(Consumed {
                    partition: event["partition"].as_i64().expect("record partition") as i32,
                    offset: event["offset"].as_i64().expect("record offset"),
                    key: event["key"].as_str().map(str::to_string),
                    value: event["value"].as_str().expect("record value").to_string(),
                });
                return;
            }
            "assigned" => {
                self.assignment.extend(partitions());
                self.assignment_events += 1;
            }
            "revoked" | "lost" => {
                for p in partitions() {
                    self.assignment.remove(&p);
                }
                self.assignment_events += 1;
            }
            "committed" => {
                let offsets = event["offsets"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(p, off)| {
                                (p.parse::<i32>().expect("partition number"), off.as_i64().expect("committed offset"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.commits.push(offsets);
            }
            "produced" => self.produced = event["count"].as_u64(),
            "error" => self.errors.push(event["message"].as_str().unwrap_or(line).to_string()),
            "client_error" => self.client_errors.push(event["message"].as_str().unwrap_or(line).to_string()),
            "closed" => self.closed = true,
            _ => self.other.push(event.clone()),
        }
        self.keep(line.to_string());
    }

    fn keep(&mut self, line: String) {
        if self.events.len() == EVENTS_KEPT {
            self.events.remove(0);
        }
        self.events.push(line);
    }

    /// Values of the consumed records.
    pub fn values(&self) -> Vec<String> {
        self.records.iter().map(|r| r.value.clone()).collect()
    }
}

/// A client program running as a child process, its stdout parsed as it comes.
pub struct ClientProcess {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    state: Arc<Mutex<ClientState>>,
    reader: Option<JoinHandle<()>>,
    exit: Option<ExitStatus>,
    dir: TempDir,
}

impl ClientProcess {
    /// Starts `command` with piped stdin/stdout; stderr goes to a file shown on failure.
    pub fn spawn(name: &str, mut command: Command) -> ClientProcess {
        let dir = tempfile::Builder::new().prefix("strom-e2e-client-").tempdir().expect("create a temp dir");
        let stderr = File::create(dir.path().join("stderr")).expect("create the client's stderr file");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("start client {name} ({command:?}): {e}; {FIX}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let state = Arc::new(Mutex::new(ClientState::default()));
        let shared = state.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lock(&shared).apply(&line);
            }
            lock(&shared).ended = true;
        });
        ClientProcess {
            name: name.to_string(),
            child: Some(child),
            stdin,
            state,
            reader: Some(reader),
            exit: None,
            dir,
        }
    }

    /// The client's name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A copy of everything reported so far.
    pub fn state(&self) -> ClientState {
        lock(&self.state).clone()
    }

    /// Applies `f` to the current state.
    pub fn with_state<T>(&self, f: impl FnOnce(&ClientState) -> T) -> T {
        f(&lock(&self.state))
    }

    /// Sends one command line (`commit`, `stop`) to the client's stdin.
    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap_or_else(|| panic!("{}: stdin already closed", self.name));
        if let Err(e) = writeln!(stdin, "{command}").and_then(|()| stdin.flush()) {
            self.fail(&format!("cannot send {command:?}: {e}"));
        }
    }

    /// Asks the client to commit the positions of what it processed; returns the committed offsets.
    pub fn commit(&mut self) -> BTreeMap<i32, i64> {
        let before = self.with_state(|s| s.commits.len());
        self.send("commit");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (commits, ended) = self.with_state(|s| (s.commits.clone(), s.ended));
            if commits.len() > before {
                return commits[before].clone();
            }
            if ended || Instant::now() > deadline {
                self.fail("did not report a commit after the commit command");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `condition` over the states of every client in `group` until it
    /// returns `Some`; fails (with every client's diagnostics) after
    /// `timeout` or when a client's output ends first.
    pub fn wait_all<T>(
        group: &[&ClientProcess],
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&[&ClientState]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let (result, ended) = {
                let guards: Vec<MutexGuard<'_, ClientState>> = group.iter().map(|c| lock(&c.state)).collect();
                let states: Vec<&ClientState> = guards.iter().map(|g| &**g).collect();
                let ended: Vec<String> =
                    group.iter().zip(&states).filter(|(_, s)| s.ended).map(|(c, _)| c.name.clone()).collect();
                (condition(&states), ended)
            };
            if let Some(value) = result {
                return value;
            }
            if !ended.is_empty() || Instant::now() > deadline {
                let reason =
                    if ended.is_empty() { format!("timed out after {timeout:?}") } else { format!("{ended:?} exited") };
                let details: Vec<String> = group.iter().map(|c| c.diagnostics()).collect();
                panic!("waiting for {what}: {reason}\n{}", details.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Like [`ClientProcess::wait_all`] for this client alone.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&ClientState) -> Option<T>,
    ) -> T {
        ClientProcess::wait_all(&[self], what, timeout, |states| condition(states[0]))
    }

    /// Tells the client to stop (it leaves its group), waits for a clean
    /// exit and returns its final state.
    pub fn stop(&mut self) -> ClientState {
        if let Some(mut stdin) = self.stdin.take() {
            // It may have stopped by itself already (--max-records); then the pipe is closed.
            let _ = writeln!(stdin, "stop");
        }
        self.wait_exit_success()
    }

    /// Waits for the client to exit by itself (stdin stays open: closing it
    /// would tell a consumer to stop) and asserts it exited 0 with no error reported.
    pub fn wait_exit_success(&mut self) -> ClientState {
        let status = self.wait_exit(EXIT_TIMEOUT);
        self.stdin.take();
        if !status.success() {
            self.fail(&format!("exited with {status}"));
        }
        let state = self.state();
        if !state.errors.is_empty() {
            self.fail("reported errors");
        }
        state
    }

    /// Kills the client with SIGKILL (no LeaveGroup, no commit) and reaps it.
    pub fn kill_hard(&mut self) {
        let mut child = self.child.take().unwrap_or_else(|| panic!("{} is not running", self.name));
        child.kill().unwrap_or_else(|e| panic!("SIGKILL {}: {e}", self.name));
        self.exit = Some(child.wait().unwrap_or_else(|e| panic!("reap {}: {e}", self.name)));
        self.stdin.take();
        self.join_reader();
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let deadline = Instant::now() + timeout;
        let status = loop {
            let child = self.child.as_mut().expect("a spawned child");
            if let Some(status) = child.try_wait().expect("poll the client process") {
                break status;
            }
            if Instant::now() > deadline {
                self.fail(&format!("still running {timeout:?} after it was told to stop"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.child = None;
        self.exit = Some(status);
        self.join_reader();
        status
    }

    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stdout reader thread does not panic");
        }
    }

    /// The client's name, exit status, latest events, errors and stderr tail.
    pub fn diagnostics(&self) -> String {
        let state = self.state();
        let stderr = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        let stderr_lines: Vec<&str> = stderr.lines().collect();
        let tail = &stderr_lines[stderr_lines.len().saturating_sub(80)..];
        format!(
            "----- client {} (exit: {:?}) -----\nassignment: {:?}; records: {}; commits: {:?}\nerrors: {:?}\n\
             client errors (last 10): {:?}\nlatest events:\n  {}\nstderr (last {} lines):\n  {}",
            self.name,
            self.exit,
            state.assignment,
            state.records.len(),
            state.commits.last(),
            state.errors,
            &state.client_errors[state.client_errors.len().saturating_sub(10)..],
            state.events.join("\n  "),
            tail.len(),
            tail.join("\n  ")
        )
    }

    /// Panics with `message` and the client's diagnostics.
    pub fn fail(&self, message: &str) -> ! {
        panic!("client {}: {message}\n{}", self.name, self.diagnostics())
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
    }
}

fn lock(state: &Mutex<ClientState>) -> MutexGuard<'_, ClientState> {
    // A panic in the reader thread leaves the data usable for diagnostics.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a one-shot client (produce, committed) with stdin closed; asserts a
/// clean exit within `timeout` and returns what it reported.
pub fn run_to_completion(name: &str, command: Command, timeout: Duration) -> ClientState {
    let mut client = ClientProcess::spawn(name, command);
    client.stdin.take();
    let status = client.wait_exit(timeout);
    if !status.success() {
        client.fail(&format!("exited with {status}"));
    }
    let state = client.state();
    if !state.errors.is_empty() {
        client.fail("reported errors");
    }
    state
}

/// Runs a command to completion with stdin from `input`; returns (status, stdout, stderr).
pub fn run_with_input(command: &mut Command, input: &str, timeout: Duration) -> (ExitStatus, String, String) {
    let dir = tempfile::Builder::new().prefix("strom-e2e-run-").tempdir().expect("create a temp dir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::from(File::create(&out_path).expect("create stdout file")))
        .stderr(Stdio::from(File::create(&err_path).expect("create stderr file")))
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}; {FIX}"));
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).unwrap_or_else(|e| panic!("write the input of {command:?}: {e}"));
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the process") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} still running after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

/// Whether `assignments` are pairwise disjoint, cover `0..partitions` and are
/// balanced (sizes differ by at most one) — a settled group's assignment.
pub fn is_balanced_cover(assignments: &[&BTreeSet<i32>], partitions: i32) -> bool {
    let total: usize = assignments.iter().map(|a| a.len()).sum();
    let union: BTreeSet<i32> = assignments.iter().flat_map(|a| a.iter().copied()).collect();
    let (min, max) = (
        assignments.iter().map(|a| a.len()).min().unwrap_or(0),
        assignments.iter().map(|a| a.len()).max().unwrap_or(0),
    );
    total == union.len() && union == (0..partitions).collect() && max - min <= 1 && min > 0
}

/// The record number `i` of a `value-<i>` value.
pub fn value_index(value: &str) -> usize {
    value
        .strip_prefix("value-")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("consumed a value that no test producer wrote: {value:?}"))
}

/// Waits until a group's members have seen `total` distinct record values
/// between them: what the stopped ones (`gone`) consumed and what the
/// running ones (`live`) consume meanwhile.
pub fn wait_group_consumed(live: &[&ClientProcess], gone: &[(String, ClientState)], total: usize, timeout: Duration) {
    let before: HashSet<&str> = gone.iter().flat_map(|(_, s)| s.records.iter().map(|r| r.value.as_str())).collect();
    ClientProcess::wait_all(live, &format!("the group to consume {total} records"), timeout, |s| {
        let seen: HashSet<&str> =
            before.iter().copied().chain(s.iter().flat_map(|s| s.records.iter().map(|r| r.value.as_str()))).collect();
        (seen.len() >= total).then_some(())
    });
}

/// Asserts that `consumed` (by member name) holds exactly the records
/// `value-<expected>`, each once across all members.
pub fn assert_each_consumed_once(what: &str, consumed: &[(&str, &[Consumed])], expected: std::ops::Range<usize>) {
    let mut seen: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (member, records) in consumed {
        for r in records.iter() {
            seen.entry(value_index(&r.value)).or_default().push(format!("{member}@{}:{}", r.partition, r.offset));
        }
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).take(10).collect();
    let total_duplicates = seen.values().filter(|at| at.len() > 1).count();
    assert!(
        duplicates.is_empty(),
        "{what}: {total_duplicates} records were consumed more than once, e.g. {duplicates:?}"
    );
    let unexpected: Vec<_> = seen.keys().filter(|i| !expected.contains(i)).take(10).collect();
    assert!(unexpected.is_empty(), "{what}: consumed records outside {expected:?}: value-{unexpected:?}");
    let missing: Vec<usize> = expected.clone().filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} records were never consumed, e.g. value-{:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(10)]
    );
}

/// Asserts, for each member, that each partition's records came in strictly
/// increasing offset order and each key's records in produce order; and,
/// across members, that every key stayed on one partition (keyed
/// partitioning, which is what keeps per-key order).
pub fn assert_partition_and_key_order(what: &str, consumed: &[(&str, &[Consumed])]) {
    let mut key_partition: HashMap<&str, i32> = HashMap::new();
    for (member, records) in consumed {
        let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
        let mut last_index: HashMap<&str, usize> = HashMap::new();
        for r in records.iter() {
            if let Some(prev) = last_offset.insert(r.partition, r.offset) {
                assert!(
                    r.offset > prev,
                    "{what}: {member} read partition {} at offset {} after {prev}",
                    r.partition,
                    r.offset
                );
            }
            let key = r.key.as_deref().unwrap_or_else(|| panic!("{what}: record {} has no key", r.value));
            let index = value_index(&r.value);
            if let Some(prev) = last_index.insert(key, index) {
                assert!(index > prev, "{what}: {member} read key {key}'s value-{index} after value-{prev}");
            }
            if let Some(partition) = key_partition.insert(key, r.partition) {
                assert_eq!(partition, r.partition, "{what}: key {key} was written to two partitions");
            }
        }
    }
}
