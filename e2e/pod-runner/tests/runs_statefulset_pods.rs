//! The runner against a real control plane (etcd, kube-apiserver,
//! kube-controller-manager from `e2e/control-plane`), with a stand-in broker:
//! a Python script that serves `/readyz` on its `--http-listen` address, so
//! the test needs neither the broker build nor a quorum. Skipped without
//! python3.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

const FAKE_BROKER: &str = r#"#!/usr/bin/env python3
import http.server, sys
args = sys.argv[1:]
host, port = args[args.index("--http-listen") + 1].rsplit(":", 1)
print("fake broker", " ".join(args), flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.HTTPServer((host, int(port)), H).serve_forever()
"#;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../control-plane/control-plane.sh")
}

/// A control plane in a temp dir, stopped on drop (and by its watchdog if the test is killed).
struct Plane {
    dir: PathBuf,
}

impl Plane {
    fn start(dir: PathBuf) -> Plane {
        let status = Command::new("bash").arg(script()).arg("build").status().expect("control-plane.sh build");
        assert!(status.success(), "control-plane.sh build failed");
        let status = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .env("STROM_CONTROL_PLANE_OWNER", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("control-plane.sh start");
        assert!(status.success(), "control-plane.sh start failed");
        Plane { dir }
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(&self.dir).status();
    }
}

struct Runner(Child);

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ready(pod: &Pod) -> bool {
    pod.status.iter().flat_map(|s| s.conditions.iter().flatten()).any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn ready_pod(pods: &Api<Pod>, name: &str) -> Option<Pod> {
    pods.get_opt(name).await.ok().flatten().filter(|p| ready(p) && p.metadata.deletion_timestamp.is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_pods_run_restart_and_come_back_with_the_same_address_and_claim_or_a_new_empty_one() {
    // The stand-in broker is a Python script; the machines this runs on have python3.
    assert!(Command::new("python3").arg("--version").output().is_ok(), "python3 is needed for the stand-in broker");
    let tmp = tempfile::tempdir().unwrap();
    let plane = Plane::start(tmp.path().join("plane"));
    let kubeconfig = plane.dir.join("kubeconfig");
    let broker = tmp.path().join("fake-broker");
    std::fs::write(&broker, FAKE_BROKER).unwrap();
    std::fs::set_permissions(&broker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let subnet = format!("127.{}", 100 + std::process::id() % 100);
    let run_dir = tmp.path().join("runner");

    let config =
        Config::from_custom_kubeconfig(Kubeconfig::read_from(&kubeconfig).unwrap(), &KubeConfigOptions::default())
            .await
            .unwrap();
    let client = Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());

    let cm = json!({
        "metadata": {"name": "demo-config"},
        "data": {"strom.yaml": "data-dir: /var/lib/strom/data\ninternal-insecure: true\nvoters: 0@demo-0.demo-brokers.default.svc:9093,1@demo-1.demo-brokers.default.svc:9093\n"}
    });
    cms.create(&PostParams::default(), &serde_json::from_value(cm).unwrap()).await.unwrap();
    let sts = json!({
        "metadata": {"name": "demo"},
        "spec": {
            "replicas": 2, "serviceName": "demo-brokers", "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app.kubernetes.io/instance": "demo"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/instance": "demo"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "broker", "image": "strom:test",
                        "args": ["--config", "/etc/strom/strom.yaml"],
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/strom"},
                            {"name": "data", "mountPath": "/var/lib/strom"}
                        ]
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": "demo-config"}}]
                }
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    });
    sets.create(&PostParams::default(), &serde_json::from_value(sts).unwrap()).await.unwrap();

    let _runner = Runner(
        Command::new(env!("CARGO_BIN_EXE_strom-pod-runner"))
            .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "--namespace", "default"])
            .args(["--selector", "app.kubernetes.io/instance=demo", "--subnet", &subnet, "--node-name", "runner-t"])
            .args(["--zone", "zone-a", "--dir", run_dir.to_str().unwrap(), "--broker-bin", broker.to_str().unwrap()])
            .env("STROM_POD_RUNNER_OWNER", std::process::id().to_string())
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Both pods run, ready, at their computed addresses; claims bound; the node is Ready.
    for (name, ip) in [("demo-0", format!("{subnet}.0.10")), ("demo-1", format!("{subnet}.0.11"))] {
        let pod = wait_for(name, Duration::from_secs(60), || ready_pod(&pods, name)).await;
        let status = pod.status.unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some(ip.as_str()));
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("runner-t"));
        let claim = format!("data-{name}");
        wait_for("claim bound", Duration::from_secs(30), || async {
            let c = claims.get(&claim).await.ok()?;
            (c.status?.phase.as_deref() == Some("Bound")).then_some(())
        })
        .await;
    }
    let node = nodes.get("runner-t").await.unwrap();
    assert_eq!(node.metadata.labels.unwrap()["topology.kubernetes.io/zone"], "zone-a");
    let log = std::fs::read_to_string(run_dir.join("logs/demo-1.log")).unwrap();
    assert!(log.contains(&format!("--voters 0@{subnet}.0.10:9093,1@{subnet}.0.11:9093")), "{log}");
    let claim_uid = |c: PersistentVolumeClaim| c.metadata.uid.unwrap();
    let uid1 = claim_uid(claims.get("data-demo-1").await.unwrap());
    let data1 = run_dir.join("pvc/default/data-demo-1").join(&uid1).join("data");
    assert!(log.contains(&format!("--data-dir {}", data1.display())), "{log}");

    // A crashed broker is restarted, and the restart counted.
    let pid = std::fs::read_to_string(run_dir.join("pids/demo-1")).unwrap();
    Command::new("kill").arg("-9").arg(pid.trim()).status().unwrap();
    wait_for("demo-1 restarted", Duration::from_secs(30), || async {
        let pod = ready_pod(&pods, "demo-1").await?;
        let restarts = pod.status?.container_statuses?.first()?.restart_count;
        (restarts == 1).then_some(())
    })
    .await;

    // A deleted pod is stopped, removed, recreated and run again at the same address.
    let old_uid = pods.get("demo-0").await.unwrap().metadata.uid.unwrap();
    let uid0 = claim_uid(claims.get("data-demo-0").await.unwrap());
    let claim0 = run_dir.join("pvc/default/data-demo-0").join(&uid0);
    std::fs::write(claim0.join("data/marker"), "kept").unwrap();
    pods.delete("demo-0", &DeleteParams::default()).await.unwrap();
    let pod = wait_for("demo-0 recreated", Duration::from_secs(60), || async {
        let pod = ready_pod(&pods, "demo-0").await?;
        (pod.metadata.uid.as_deref() != Some(old_uid.as_str())).then_some(pod)
    })
    .await;
    assert_eq!(pod.status.unwrap().pod_ip, Some(format!("{subnet}.0.10")));
    assert_eq!(std::fs::read_to_string(claim0.join("data/marker")).unwrap(), "kept");
    assert!(!run_dir.join("pods").join(&old_uid).exists(), "the old pod's directory is removed");

    // A lost volume: the claim and its pod deleted, the StatefulSet controller
    // recreates both; the new claim is a new, empty directory and the old
    // claim's directory is removed.
    let old_uid = pod.metadata.uid.clone().unwrap();
    claims.delete("data-demo-0", &DeleteParams::default()).await.unwrap();
    pods.delete("demo-0", &DeleteParams::default()).await.unwrap();
    let new_claim = wait_for("data-demo-0 recreated", Duration::from_secs(90), || async {
        let c = claims.get_opt("data-demo-0").await.ok().flatten()?;
        (c.metadata.uid.as_deref() != Some(uid0.as_str()) && c.metadata.deletion_timestamp.is_none()).then_some(c)
    })
    .await;
    wait_for("demo-0 recreated on the new claim", Duration::from_secs(90), || async {
        let pod = ready_pod(&pods, "demo-0").await?;
        (pod.metadata.uid.as_deref() != Some(old_uid.as_str())).then_some(pod)
    })
    .await;
    let fresh = run_dir.join("pvc/default/data-demo-0").join(claim_uid(new_claim)).join("data");
    assert!(fresh.is_dir(), "the new claim's directory {} exists", fresh.display());
    assert!(!fresh.join("marker").exists(), "the new claim's directory is empty");
    assert!(!claim0.exists(), "the deleted claim's directory {} is removed", claim0.display());
    let log = std::fs::read_to_string(run_dir.join("logs/demo-0.log")).unwrap();
    assert!(log.contains(&format!("--data-dir {}", fresh.display())), "{log}");
}
