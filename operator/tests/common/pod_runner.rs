//! The pod runner (`e2e/pod-runner`) as a test fixture: a stand-in kubelet
//! that runs the operator's broker pods as local `strom-broker` processes,
//! each on its own loopback address `127.X.<n/200>.<n%200+10>` with the
//! standard ports.

#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};

use super::{ControlPlane, broker_binary, unique_dir};

/// A running pod runner; killed (with its brokers) on drop.
pub struct PodRunner {
    child: Option<Child>,
    /// The runner's directory: `logs/`, `pids/`, `pods/`, `pvc/`, `runner.log`.
    pub dir: PathBuf,
    /// The second octet of every pod address.
    pub subnet: u8,
}

/// A loopback /16 whose first pod addresses have nothing listening on 9092.
fn free_subnet() -> u8 {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let seed = (std::process::id() % 97) as u8;
    for _ in 0..200 {
        let x = 20 + (seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 200);
        if (10..16).all(|host| TcpListener::bind((Ipv4Addr::new(127, x, 0, host), 9092)).is_ok()) {
            return x;
        }
    }
    panic!("no free loopback subnet for pod addresses")
}

/// The `strom-pod-runner` binary of this workspace, built if missing.
pub fn pod_runner_binary() -> PathBuf {
    super::workspace_binary("strom-pod-runner")
}

impl PodRunner {
    /// Runs the pods of KafkaCluster `cluster` in `namespace`.
    pub fn start(plane: &ControlPlane, namespace: &str, cluster: &str) -> PodRunner {
        PodRunner::start_in_zones(plane, namespace, cluster, &[])
    }

    /// [`PodRunner::start`] on nodes labelled `topology.kubernetes.io/zone`:
    /// one node in `zones[0]`, or one node per zone (pods spread by ordinal,
    /// pod `n` in `zones[n % zones.len()]`).
    pub fn start_in_zones(plane: &ControlPlane, namespace: &str, cluster: &str, zones: &[&str]) -> PodRunner {
        let dir = unique_dir("pod-runner");
        let subnet = free_subnet();
        let log = std::fs::File::create(dir.join("runner.log")).expect("create the pod runner's log");
        let child = Command::new(pod_runner_binary())
            .arg("--kubeconfig")
            .arg(plane.kubeconfig_path())
            .args(["--namespace", namespace])
            .args(["--selector", &format!("app.kubernetes.io/instance={cluster}")])
            .args(["--subnet", &format!("127.{subnet}")])
            .args(["--node-name", &format!("local-{subnet}")])
            .arg("--dir")
            .arg(&dir)
            .arg("--broker-bin")
            .arg(broker_binary())
            .args(zones.iter().flat_map(|z| ["--zone", z]))
            // With kube-scheduler and kwok in the plane, they bind the pods and keep the nodes.
            .args(if plane.has_nodes() { &["--external-scheduler", "--kwok"][..] } else { &[] })
            .env("STROM_POD_RUNNER_OWNER", std::process::id().to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().expect("clone the log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start strom-pod-runner");
        PodRunner { child: Some(child), dir, subnet }
    }

    /// The address of pod ordinal `n`.
    pub fn pod_ip(&self, n: i32) -> String {
        format!("127.{}.{}.{}", self.subnet, n / 200, n % 200 + 10)
    }

    /// Kafka bootstrap servers of pods `0..n`.
    pub fn bootstrap(&self, n: i32) -> String {
        (0..n).map(|i| format!("{}:9092", self.pod_ip(i))).collect::<Vec<_>>().join(",")
    }

    /// Admin API addresses of pods `0..n`, for the operator's `--admin-override`.
    pub fn admin_addresses(&self, n: i32) -> String {
        (0..n).map(|i| format!("{}:9093", self.pod_ip(i))).collect::<Vec<_>>().join(",")
    }

    /// The broker process of `pod`, when it runs.
    pub fn broker_pid(&self, pod: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pids").join(pod)).ok()?.trim().parse().ok()
    }

    /// The end of the runner's log and of each broker's log.
    pub fn log_tails(&self) -> String {
        let mut out = format!(
            "----- pod runner ({}) -----\n{}",
            self.dir.display(),
            super::tail(&self.dir.join("runner.log"), 40)
        );
        if let Ok(entries) = std::fs::read_dir(self.dir.join("logs")) {
            for entry in entries.flatten() {
                let path: &Path = &entry.path();
                out.push_str(&format!("\n----- {} -----\n{}", path.display(), super::tail(path, 25)));
            }
        }
        out
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails());
        }
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the runner stops its brokers before it exits.
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
