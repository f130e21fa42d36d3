//! The status a kubelet would report for a broker pod, built from what the
//! runner knows about its process.
//!
//! [`ContainerRuntime`] is the runner's record of one pod's container (when
//! it started, whether it is running, ready, how often it restarted, how it
//! last ended); [`pod_status`] turns it into the `status` of a merge patch on
//! the pod's status subresource. Lists (conditions, containerStatuses,
//! podIPs) are always sent whole, since a JSON merge patch replaces lists.
//!
//! Pure functions; the caller patches.

use std::net::Ipv4Addr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// The address reported as the pods' host (the node is this machine).
pub const HOST_IP: &str = "127.0.0.1";

/// How the container last ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// Exit code, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// When the process started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
}

/// The runner's record of a pod's broker container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRuntime {
    /// Container name.
    pub name: String,
    /// Image of the spec (not pulled: the broker binary runs instead).
    pub image: String,
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// When the runner took the pod on (the pod's startTime).
    pub pod_started_at: Timestamp,
    /// When the current process started, while one runs.
    pub running_since: Option<Timestamp>,
    /// The current process id, while one runs.
    pub pid: Option<u32>,
    /// Whether the readiness probe passes.
    pub ready: bool,
    /// When `ready` last changed.
    pub ready_since: Timestamp,
    /// Times the process was restarted.
    pub restart_count: i32,
    /// How the previous process ended.
    pub last_termination: Option<Termination>,
    /// Why the container is not running, when it is not (e.g. CrashLoopBackOff).
    pub waiting_reason: Option<(String, String)>,
}

impl ContainerRuntime {
    /// A container not started yet.
    pub fn new(name: String, image: String, ip: Ipv4Addr, now: Timestamp) -> ContainerRuntime {
        ContainerRuntime {
            name,
            image,
            ip,
            pod_started_at: now,
            running_since: None,
            pid: None,
            ready: false,
            ready_since: now,
            restart_count: 0,
            last_termination: None,
            waiting_reason: Some(("ContainerCreating".into(), String::new())),
        }
    }

    /// Records readiness; true when it changed.
    pub fn set_ready(&mut self, ready: bool, now: Timestamp) -> bool {
        if self.ready == ready {
            return false;
        }
        self.ready = ready;
        self.ready_since = now;
        true
    }

    /// Records a new process.
    pub fn started(&mut self, pid: Option<u32>, now: Timestamp) {
        self.running_since = Some(now);
        self.pid = pid;
        self.waiting_reason = None;
        self.set_ready(false, now);
    }

    /// Records the process's end; it will be restarted after a back-off.
    pub fn exited(&mut self, exit_code: i32, now: Timestamp, message: String) {
        let started_at = self.running_since.take().unwrap_or(now);
        self.pid = None;
        self.last_termination = Some(Termination { exit_code, started_at, finished_at: now });
        self.waiting_reason = Some(("CrashLoopBackOff".into(), message));
        self.set_ready(false, now);
    }
}

fn time(t: Timestamp) -> Value {
    serde_json::to_value(Time(t)).unwrap_or(Value::Null)
}

fn condition(type_: &str, status: bool, since: Timestamp) -> Value {
    json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": time(since),
    })
}

/// The pod's phase, as the kubelet derives it for restartPolicy Always:
/// Pending while the container has never run (still being created, or
/// waiting on a volume or ConfigMap), Running once it has.
pub fn phase(c: &ContainerRuntime) -> &'static str {
    if c.running_since.is_none() && c.last_termination.is_none() { "Pending" } else { "Running" }
}

/// The pod `status` for `c`: its [`phase`], the pod's address, the
/// container's state and the conditions (Ready only while the probe passes).
pub fn pod_status(c: &ContainerRuntime) -> Value {
    let ip = c.ip.to_string();
    let state = match (c.running_since, &c.waiting_reason) {
        (Some(since), _) => json!({"running": {"startedAt": time(since)}}),
        (None, Some((reason, message))) => json!({"waiting": {"reason": reason, "message": message}}),
        (None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
    };
    let last_state = match &c.last_termination {
        Some(t) => json!({"terminated": {
            "exitCode": t.exit_code,
            "reason": if t.exit_code == 0 { "Completed" } else { "Error" },
            "startedAt": time(t.started_at),
            "finishedAt": time(t.finished_at),
        }}),
        None => json!({}),
    };
    let mut container = json!({
        "name": c.name,
        "image": c.image,
        "imageID": format!("strom-pod-runner://{}", c.image),
        "ready": c.ready,
        "started": c.running_since.is_some(),
        "restartCount": c.restart_count,
        "state": state,
        "lastState": last_state,
    });
    if let Some(pid) = c.pid {
        container["containerID"] = json!(format!("strom-pod-runner://{pid}"));
    }
    json!({
        "phase": phase(c),
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": time(c.pod_started_at),
        "conditions": [
            condition("PodReadyToStartContainers", true, c.pod_started_at),
            condition("Initialized", true, c.pod_started_at),
            condition("ContainersReady", c.ready, c.ready_since),
            condition("Ready", c.ready, c.ready_since),
            condition("PodScheduled", true, c.pod_started_at),
        ],
        "containerStatuses": [container],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn condition_status(status: &Value, type_: &str) -> String {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap()
    }

    #[test]
    fn a_container_that_never_ran_leaves_the_pod_pending() {
        // The StatefulSet controller recreates a deleted claim only for a
        // Pending pod: a pod waiting on a claim being deleted must say so.
        let mut c = ContainerRuntime::new("broker".into(), "strom:dev".into(), Ipv4Addr::new(127, 9, 0, 10), at(0));
        assert_eq!(pod_status(&c)["phase"], "Pending");
        c.waiting_reason = Some(("CreateContainerError".into(), "claim data-0 is being deleted".into()));
        assert_eq!(pod_status(&c)["phase"], "Pending");
        c.started(Some(1), at(1));
        assert_eq!(pod_status(&c)["phase"], "Running");
        c.exited(1, at(2), "broker exited".into());
        assert_eq!(pod_status(&c)["phase"], "Running", "a crash loop stays Running");
    }

    #[test]
    fn running_ready_container_reports_ready_conditions_and_pod_ip() {
        let mut c = ContainerRuntime::new("broker".into(), "strom:dev".into(), Ipv4Addr::new(127, 9, 0, 10), at(0));
        c.started(Some(4242), at(1));
        assert!(c.set_ready(true, at(2)));
        assert!(!c.set_ready(true, at(3)));
        let s = pod_status(&c);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "127.9.0.10");
        assert_eq!(s["podIPs"][0]["ip"], "127.9.0.10");
        assert_eq!(condition_status(&s, "Ready"), "True");
        assert_eq!(condition_status(&s, "ContainersReady"), "True");
        assert_eq!(condition_status(&s, "PodScheduled"), "True");
        let cs = &s["containerStatuses"][0];
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["started"], true);
        assert_eq!(cs["containerID"], "strom-pod-runner://4242");
        assert!(cs["state"]["running"]["startedAt"].is_string());
    }

    #[test]
    fn exited_container_is_not_ready_and_reports_its_termination() {
        let mut c = ContainerRuntime::new("broker".into(), "strom:dev".into(), Ipv4Addr::new(127, 9, 0, 11), at(0));
        c.started(Some(1), at(1));
        c.set_ready(true, at(2));
        c.exited(137, at(5), "killed by signal 9".into());
        c.restart_count += 1;
        let s = pod_status(&c);
        assert_eq!(condition_status(&s, "Ready"), "False");
        let cs = &s["containerStatuses"][0];
        assert_eq!(cs["restartCount"], 1);
        assert_eq!(cs["started"], false);
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137);
        assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
        assert!(cs.get("containerID").is_none());
    }
}
