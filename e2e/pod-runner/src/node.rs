//! The runner's Node objects (one, or one per zone): registered at start,
//! heartbeat every 10 s, or, with kwok running, created for kwok to keep.
//!
//! The Node carries `kubernetes.io/hostname` (and
//! `topology.kubernetes.io/zone` when a zone is given), capacity for far more
//! brokers than will ever run, and a Ready condition kept fresh, so that a
//! real kube-scheduler, when one runs, could place pods on it. On a clean
//! shutdown Ready turns False. The runner never deletes its Node.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::status::HOST_IP;

/// How often the Ready condition's heartbeat is renewed.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Zone label key (also the default rack topology key).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Label naming the runner (its `--node-name`) on each of its nodes: a
/// cluster keeps its pods on its runner's nodes with
/// `spec.template.nodeSelector` on it when several runners share a plane.
pub const RUNNER_LABEL: &str = "strom.dev/pod-runner-name";

/// The labels of node `name` of runner `runner`.
pub fn node_labels(runner: &str, name: &str, zone: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "kubernetes.io/arch".to_string(),
            std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        ),
        ("strom.dev/pod-runner".to_string(), "true".to_string()),
        (RUNNER_LABEL.to_string(), runner.to_string()),
    ]);
    if let Some(zone) = zone {
        labels.insert(ZONE_LABEL.to_string(), zone.to_string());
    }
    labels
}

/// The node's `status`, with Ready `ready` and both condition times at `now`
/// (the heartbeat; transitions are rare enough not to track separately).
pub fn node_status(name: &str, ready: bool, now: Timestamp) -> Value {
    let now = serde_json::to_value(Time(now)).unwrap_or(Value::Null);
    let resources = json!({"cpu": "64", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"});
    let pressure = |type_: &str, reason: &str| {
        json!({"type": type_, "status": "False", "reason": reason, "message": "strom-pod-runner does not measure this",
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": name}],
        "conditions": [
            {
                "type": "Ready",
                "status": if ready { "True" } else { "False" },
                "reason": if ready { "KubeletReady" } else { "RunnerStopped" },
                "message": if ready { "strom-pod-runner is running" } else { "strom-pod-runner stopped" },
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            },
            pressure("MemoryPressure", "KubeletHasSufficientMemory"),
            pressure("DiskPressure", "KubeletHasNoDiskPressure"),
            pressure("PIDPressure", "KubeletHasSufficientPID"),
        ],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "strom-pod-runner",
            "containerRuntimeVersion": "strom-pod-runner://0.1.0", "kubeletVersion": "v1.37.2",
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
        },
    })
}

/// The nodes a runner named `name` plays, with their zones: `name` alone
/// (in `zones[0]` if one is given), or `name-ZONE` for each of two or more.
pub fn nodes_for(name: &str, zones: &[String]) -> Vec<(String, Option<String>)> {
    match zones {
        [] => vec![(name.to_string(), None)],
        [zone] => vec![(name.to_string(), Some(zone.clone()))],
        _ => zones.iter().map(|z| (format!("{name}-{z}"), Some(z.clone()))).collect(),
    }
}

/// Creates (or relabels) node `name` of runner `runner` and marks it Ready.
pub async fn register(nodes: &Api<Node>, runner: &str, name: &str, zone: Option<&str>) -> kube::Result<()> {
    let labels = node_labels(runner, name, zone);
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
    }))
    .map_err(kube::Error::SerdeError)?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            nodes.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": labels}}))).await?;
        }
        Err(e) => return Err(e),
    }
    heartbeat(nodes, name, true).await
}

/// Annotation that hands a Node to kwok (the control plane's kwok manages
/// the nodes that carry it).
pub const KWOK_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// Creates (or relabels) node `name` for kwok: labels as [`register`]'s and
/// the [`KWOK_ANNOTATION`]; kwok initialises its status (Ready, capacity,
/// addresses) and renews its heartbeat.
pub async fn register_for_kwok(nodes: &Api<Node>, runner: &str, name: &str, zone: Option<&str>) -> kube::Result<()> {
    let metadata =
        json!({"name": name, "labels": node_labels(runner, name, zone), "annotations": {KWOK_ANNOTATION: "fake"}});
    let node: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node", "metadata": metadata}))
        .map_err(kube::Error::SerdeError)?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            nodes.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": metadata}))).await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Writes the node's status with Ready `ready`.
pub async fn heartbeat(nodes: &Api<Node>, name: &str, ready: bool) -> kube::Result<()> {
    let status = node_status(name, ready, Timestamp::now());
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await?;
    Ok(())
}

/// Renews the heartbeat until `shutdown`, then marks the node not Ready.
pub async fn keep_alive(nodes: Api<Node>, name: String, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(HEARTBEAT) => {
                if let Err(e) = heartbeat(&nodes, &name, true).await {
                    tracing::warn!(node = %name, error = %e, "node heartbeat failed");
                }
            }
        }
    }
    if let Err(e) = heartbeat(&nodes, &name, false).await {
        tracing::warn!(node = %name, error = %e, "could not mark the node not ready");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_per_zone_from_two_zones_on() {
        let zones = |z: &[&str]| z.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(nodes_for("n", &[]), vec![("n".to_string(), None)]);
        assert_eq!(nodes_for("n", &zones(&["a"])), vec![("n".to_string(), Some("a".to_string()))]);
        let names: Vec<String> = nodes_for("n", &zones(&["a", "b"])).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["n-a", "n-b"]);
    }

    #[test]
    fn node_labels_carry_hostname_and_zone_when_given() {
        let l = node_labels("n", "n-zone-a", Some("zone-a"));
        assert_eq!(l["kubernetes.io/hostname"], "n-zone-a");
        assert_eq!(l[ZONE_LABEL], "zone-a");
        assert_eq!(l[RUNNER_LABEL], "n", "every node of a runner carries its name");
        assert!(!node_labels("n1", "n1", None).contains_key(ZONE_LABEL));
    }

    #[test]
    fn node_status_is_ready_with_schedulable_capacity() {
        let s = node_status("n1", true, Timestamp::from_second(1_800_000_000).unwrap());
        assert_eq!(s["conditions"][0]["type"], "Ready");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["allocatable"]["pods"], "110");
        assert_eq!(s["capacity"]["cpu"], "64");
        assert_eq!(s["capacity"]["memory"], "256Gi");
        assert_eq!(node_status("n1", false, Timestamp::now())["conditions"][0]["status"], "False");
    }
}
