//! `scripts/local-k8s.sh`, the playground of the README's quick start, as a
//! user runs it: `up` (control plane, `helm install` of the chart, the
//! operator as the chart's ServiceAccount, the pod runner), the chart's NOTES
//! command `kubectl rollout status`, `kubectl apply -f
//! examples/kind-cluster.yaml` to a Ready cluster and topic that a Kafka
//! client writes to and reads from at the pods' addresses, a second cluster
//! Ready without restarting anything, a deleted cluster's claims gone (not
//! left Terminating), then `down`, after which nothing runs.
//!
//! Also checks that a new cluster's events and conditions claim no roll: no
//! `RestartingBroker` or `RollingRestartDone` event, `Progressing` never
//! `RollingRestart`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::helm::{example, root, tool};
use common::kafka_load::read_all;
use common::{broker_binary, eventually, unique_dir, workspace_binary};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use strom_crds::{KafkaCluster, KafkaTopic};

const WAIT: Duration = Duration::from_secs(120);
/// The cluster and topic of examples/kind-cluster.yaml.
const CLUSTER: &str = "demo";
const TOPIC: &str = "greetings";
const BROKERS: usize = 3;

const SECOND: &str = r#"
apiVersion: strom.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: second
spec:
  replicas: 1
  storage: { type: Ephemeral }
---
apiVersion: strom.dev/v1alpha1
kind: KafkaTopic
metadata:
  name: second-events
spec:
  clusterRef: second
  partitions: 1
  replicationFactor: 1
"#;

/// `scripts/local-k8s.sh ARGS --dir DIR` with the binaries this test was built with.
fn script(dir: &Path, args: &[&str]) -> Output {
    let bin_dir = broker_binary().parent().expect("target/<profile>").to_path_buf();
    // The operator and the pod runner next to the broker, built if missing.
    workspace_binary("strom-operator");
    workspace_binary("strom-pod-runner");
    Command::new("bash")
        .arg(root().join("scripts/local-k8s.sh"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("STROM_BIN_DIR", bin_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/local-k8s.sh")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn kubectl(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(tool("kubectl"))
        .args(args)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .current_dir(root())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(input.as_bytes()).expect("write kubectl's stdin");
    }
    let output = child.wait_with_output().expect("kubectl's output");
    assert!(output.status.success(), "kubectl {args:?} failed:\n{}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Processes whose command line names `dir` (brokers, runner, operator, plane).
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Stops the playground if the test fails before its own `down`.
struct Playground(PathBuf);

impl Drop for Playground {
    fn drop(&mut self) {
        if self.0.exists() {
            let output = script(&self.0, &["down"]);
            if !output.status.success() {
                eprintln!("local-k8s.sh down failed:\n{}", text(&output));
            }
        }
    }
}

async fn client(dir: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(dir.join("kubeconfig")).expect("read the playground's kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration");
    kube::Client::try_from(config).expect("a Kubernetes client")
}

fn ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Bootstrap servers of a cluster's brokers at their pods' addresses.
async fn bootstrap(pods: &Api<Pod>, cluster: &str, brokers: usize) -> String {
    let mut ips = Vec::new();
    for i in 0..brokers {
        let pod = pods.get(&format!("{cluster}-{i}")).await.expect("a broker pod");
        ips.push(pod.status.and_then(|s| s.pod_ip).unwrap_or_else(|| panic!("pod {cluster}-{i} has no IP")));
    }
    let distinct: std::collections::BTreeSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), brokers, "each pod has its own address: {ips:?}");
    ips.iter().map(|ip| format!("{ip}:9092")).collect::<Vec<_>>().join(",")
}

async fn write_and_read(bootstrap: &str, topic: &str, partitions: i32, values: &[&str]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("a producer");
    for (i, value) in values.iter().enumerate() {
        producer
            .send(FutureRecord::to(topic).key(&format!("k{i}")).payload(*value), Duration::from_secs(30))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {value} to {topic}: {e}"));
    }
    let mut read: Vec<String> = read_all(bootstrap, topic, partitions)
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    read.sort();
    let mut expected: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    expected.sort();
    assert_eq!(read, expected, "what {topic} holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_k8s_up_gives_the_quick_start_with_any_number_of_clusters_and_down_leaves_nothing() {
    let dir = unique_dir("local-k8s").join("playground");
    let started = Instant::now();
    // Bad input is refused before anything starts, naming the value.
    let bad = script(&dir, &["up", "--namespace", "Not_A_Namespace"]);
    assert!(!bad.status.success() && text(&bad).contains("--namespace 'Not_A_Namespace'"), "{}", text(&bad));
    assert!(!dir.exists(), "a refused up creates nothing");

    // Set first: a failed `up` leaves processes that `down` stops.
    let guard = Playground(dir.clone());
    let up = script(&dir, &["up"]);
    assert!(up.status.success(), "local-k8s.sh up failed:\n{}", text(&up));
    let printed = text(&up);
    assert!(printed.contains(&format!("export KUBECONFIG={}/kubeconfig", dir.display())), "{printed}");
    eprintln!("up took {:?}", started.elapsed());

    // The chart's NOTES say where the operator runs, and their command returns
    // (the Deployment controller runs).
    let notes = std::fs::read_to_string(dir.join("helm-install.txt")).expect("helm install's output");
    assert!(notes.contains("replicaCount is 0: the Deployment runs no operator pod"), "{notes}");
    let rollout =
        kubectl(&dir, &["-n", "strom-system", "rollout", "status", "deployment/strom-operator", "--timeout=60s"], None);
    assert!(rollout.contains("successfully rolled out"), "{rollout}");

    let example = example("kind-cluster.yaml");
    kubectl(&dir, &["apply", "-f", example.to_str().expect("UTF-8")], None);
    let client = client(&dir).await;
    let clusters: Api<KafkaCluster> = Api::default_namespaced(client.clone());
    let topics: Api<KafkaTopic> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let progressing = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let status = eventually("KafkaCluster demo to be Ready", WAIT, || async {
        let status = clusters.get(CLUSTER).await.ok()?.status?;
        if let Some(c) = status.conditions.iter().find(|c| c.type_ == "Progressing") {
            progressing.lock().expect("not poisoned").insert(c.reason.clone());
        }
        ready(&status.conditions).then_some(status)
    })
    .await;
    assert_eq!(status.ready_brokers, BROKERS as i32, "{status:?}");
    eventually("KafkaTopic greetings to be Ready", WAIT, || async {
        ready(&topics.get(TOPIC).await.ok()?.status?.conditions).then_some(())
    })
    .await;
    eprintln!("demo and its topic Ready after {:?}", started.elapsed());

    // A new cluster rolled nothing, and says so.
    let progressing = progressing.into_inner().expect("not poisoned");
    assert!(!progressing.contains("RollingRestart"), "a new cluster claimed a roll: {progressing:?}");
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("list the events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(CLUSTER))
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.iter().any(|r| r == "Created"), "{reasons:?}");
    for claimed in ["RestartingBroker", "RollingRestartDone"] {
        assert!(!reasons.iter().any(|r| r == claimed), "a new cluster got a {claimed} event: {reasons:?}");
    }

    // A Kafka client (librdkafka) at the pods' addresses.
    let demo = bootstrap(&pods, CLUSTER, BROKERS).await;
    write_and_read(&demo, TOPIC, 3, &["hello", "from", "local-k8s"]).await;

    // deleteClaim: the claims go with the cluster (pvc-protection lets them
    // go once the pods are gone; checked below, while the second cluster starts).
    clusters.delete(CLUSTER, &DeleteParams::default()).await.expect("delete demo");

    // A second cluster, with the operator and the pod runner as they are.
    kubectl(&dir, &["apply", "-f", "-"], Some(SECOND));
    eventually("KafkaCluster second to be Ready", WAIT, || async {
        ready(&clusters.get("second").await.ok()?.status?.conditions).then_some(())
    })
    .await;
    eventually("KafkaTopic second-events to be Ready", WAIT, || async {
        ready(&topics.get("second-events").await.ok()?.status?.conditions).then_some(())
    })
    .await;
    let second = bootstrap(&pods, "second", 1).await;
    assert!(!demo.contains(second.split(':').next().unwrap_or_default()), "{demo} vs {second}");
    write_and_read(&second, "second-events", 1, &["two", "clusters"]).await;
    eprintln!("second cluster Ready and written after {:?}", started.elapsed());

    // demo's claims, deleted with it (not left Terminating).
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    eventually("demo's claims to be deleted", WAIT, || async {
        let left = claims.list(&ListParams::default()).await.ok()?.items;
        left.is_empty().then_some(())
    })
    .await;
    eprintln!("demo's claims gone after {:?}", started.elapsed());

    // The operator's command line does not name the directory: its pid is checked.
    let pids: Vec<(String, String)> = ["operator", "pod-runner"]
        .iter()
        .map(|name| {
            let recorded = std::fs::read_to_string(dir.join(format!("{name}.pid"))).expect("a pid file");
            (name.to_string(), recorded.split_whitespace().next().unwrap_or_default().to_string())
        })
        .collect();
    let down = script(&dir, &["down"]);
    assert!(down.status.success(), "local-k8s.sh down failed:\n{}", text(&down));
    assert!(!dir.exists(), "down removes {}", dir.display());
    for (name, pid) in &pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "{name} (pid {pid}) still runs after down");
    }
    let left = processes_naming(&dir);
    assert!(left.is_empty(), "still running after down:\n{}", left.join("\n"));
    drop(guard);
    eprintln!("whole flow took {:?}", started.elapsed());
}
