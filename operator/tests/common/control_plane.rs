//! A real Kubernetes control plane for the operator's integration tests: etcd,
//! kube-apiserver and kube-controller-manager as plain local processes, in the
//! spirit of controller-runtime's envtest; [`ControlPlane::start_with_nodes`]
//! adds kube-scheduler and kwok, for tests that run pods.
//!
//! The work is done by `e2e/control-plane/control-plane.sh` (see its README):
//! `build` compiles the binaries from Go modules once into `~/.cache/strom`
//! (minutes the first time, instant afterwards) and `start DIR` brings up a
//! fresh plane on free 127.0.0.1 ports with its state, logs and an admin
//! kubeconfig in DIR. This module only drives the script:
//!
//! ```ignore
//! let plane = ControlPlane::start();
//! let kubeconfig = plane.kubeconfig_path(); // admin (system:masters), certs embedded
//! // ... point a client at it; on drop the plane is stopped and its dir removed.
//! ```
//!
//! Each plane gets its own temporary directory, so tests may run several at once.
//! If the test process dies without dropping the plane (SIGKILL, abort), the
//! script's watchdog notices within a second and stops it. Set
//! `STROM_KEEP_CONTROL_PLANE=1` to keep the directory (logs, etcd data) after a run.
//!
//! Plain `std`, no crates: include it with `mod control_plane;` from a test's
//! `common` module.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A running control plane; stopped (and its directory removed) on drop.
pub struct ControlPlane {
    /// The plane's directory: `kubeconfig`, `pids`, `endpoints`, `*.log`, `pki/`, `etcd/`.
    dir: PathBuf,
    /// Whether kube-scheduler and kwok run too.
    nodes: bool,
}

impl ControlPlane {
    /// Builds the binaries if needed (once per test process), then starts a
    /// plane in a fresh directory under [`std::env::temp_dir`] and waits until
    /// the apiserver is ready and `default/default` service account exists.
    ///
    /// Panics with the script's output, which ends with the components' log tails, on failure.
    pub fn start() -> ControlPlane {
        ControlPlane::start_with(false)
    }

    /// [`ControlPlane::start`] plus kube-scheduler, which binds pods to nodes,
    /// and kwok, which keeps the Nodes annotated `kwok.x-k8s.io/node=fake`
    /// Ready (the pod runner creates them; `STROM_CONTROL_PLANE_NODES=kwok`).
    pub fn start_with_nodes() -> ControlPlane {
        ControlPlane::start_with(true)
    }

    /// Whether kube-scheduler and kwok run in this plane.
    pub fn has_nodes(&self) -> bool {
        self.nodes
    }

    fn start_with(nodes: bool) -> ControlPlane {
        if let Err(e) = build_once() {
            panic!("{e}");
        }
        let dir = fresh_dir();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .env("STROM_CONTROL_PLANE_NODES", if nodes { "kwok" } else { "" })
            // The script's watchdog stops the plane when this process is gone.
            .env("STROM_CONTROL_PLANE_OWNER", std::process::id().to_string())
            .stdin(Stdio::null())
            .output()
            .expect("running bash control-plane.sh start");
        let plane = ControlPlane { dir, nodes };
        if !out.status.success() {
            // The script's stderr ends with each component's log tail, taken before it
            // stopped them; dropping `plane` removes the dir (STROM_KEEP_CONTROL_PLANE=1 keeps it).
            panic!(
                "control-plane.sh start {} failed ({}):\n{}{}",
                plane.dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
        }
        plane
    }

    /// The plane's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig (`https://127.0.0.1:PORT`, CA and client cert embedded).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The apiserver's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        let endpoints = fs::read_to_string(self.dir.join("endpoints")).unwrap_or_default();
        endpoints.lines().find_map(|l| l.strip_prefix("APISERVER=")).unwrap_or_default().to_string()
    }

    /// The last 40 lines of each component's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut logs: Vec<PathBuf> =
            fs::read_dir(&self.dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|x| x == "log"));
        logs.sort();
        let mut out = String::new();
        for log in logs {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let name = log.file_name().unwrap_or_default().to_string_lossy();
            out += &format!("----- {name} (last 40 lines) -----\n");
            for line in &lines[lines.len().saturating_sub(40)..] {
                out += line;
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let stopped = Command::new("bash").arg(script()).arg("stop").arg(&self.dir).stdin(Stdio::null()).status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!("control-plane.sh stop {} failed: {stopped:?}", self.dir.display());
        }
    }
}

/// `e2e/control-plane/control-plane.sh`, found from the operator crate's manifest dir.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/control-plane/control-plane.sh")
}

/// Runs `control-plane.sh build` once per process; the other tests wait for it.
/// Its output is passed on to stderr as it comes (a first build takes many
/// minutes), and its tail is kept for the error.
fn build_once() -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut child = Command::new("bash")
                .arg("-c")
                .arg(r#"exec bash "$0" build kube-apiserver kube-controller-manager etcd kube-scheduler kwok 2>&1"#)
                .arg(script())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("running bash control-plane.sh build: {e}"))?;
            let mut tail: Vec<String> = Vec::new();
            for line in BufReader::new(child.stdout.take().unwrap()).lines() {
                let Ok(line) = line else { break };
                // Straight to the process's stderr: not held back by the test harness.
                let _ = writeln!(std::io::stderr().lock(), "{line}");
                tail.push(line);
                if tail.len() > 40 {
                    tail.remove(0);
                }
            }
            let status = child.wait().map_err(|e| format!("waiting for control-plane.sh build: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("control-plane.sh build failed ({status}):\n{}", tail.join("\n")))
            }
        })
        .clone()
}

/// A new, empty directory under the system temp dir, unique per process, call and time.
fn fresh_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = format!("strom-cp-{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let dir = std::env::temp_dir().join(name);
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    // The script identifies the plane's processes by this path: give it the real one.
    fs::canonicalize(&dir).unwrap_or(dir)
}
