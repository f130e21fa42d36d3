//! Shared harness of the operator's integration tests: a real control plane
//! ([`control_plane`]), the CRDs installed into it, the operator binary run
//! as a process, and Strom brokers run as local processes.

#![allow(dead_code)]

pub mod control_plane;
pub mod helm;
pub mod kafka_load;
pub mod kafka_tools;
pub mod oauth;
pub mod pod_runner;
pub mod roll;

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use control_plane::ControlPlane;

/// An Admin API client of `cluster` at `addresses`, with an operator
/// identity issued from the cluster's CA Secret (as the operator's own).
pub async fn operator_admin(
    client: &kube::Client,
    namespace: &str,
    cluster: &str,
    addresses: &str,
) -> strom_operator::admin::ClusterAdmin {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    let name = format!("{cluster}-cluster-ca");
    let secret = secrets.get(&name).await.expect("the cluster CA Secret");
    let tls = strom_operator::internal_ca::operator_identity(&name, &secret).expect("an operator identity");
    strom_operator::admin::ClusterAdmin::new(addresses.split(',').map(String::from).collect(), tls)
}

/// Polls `condition` every 200 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = condition().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the cluster's committed controller voters are `voters` (sorted).
pub async fn wait_for_voters(admin: &strom_operator::admin::ClusterAdmin, voters: &[i32], timeout: Duration) {
    eventually(&format!("the committed controller voters to be {voters:?}"), timeout, || async {
        let mut committed = admin.describe_cluster().await.ok()?.controller_voters;
        committed.sort_unstable();
        (committed == voters).then_some(())
    })
    .await;
}

/// A client of the control plane.
pub async fn client(plane: &ControlPlane) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(plane.kubeconfig_path()).expect("read the control plane's kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client config from the kubeconfig");
    kube::Client::try_from(config).expect("a Kubernetes client")
}

/// Installs the generated CRDs and waits until the API server serves them.
pub async fn install_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in strom_crds::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &crd).await.unwrap_or_else(|e| panic!("create CRD {name}: {e}"));
        eventually(&format!("CRD {name} to be established"), Duration::from_secs(30), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                let conditions = crd.status?.conditions?;
                conditions.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
            }
        })
        .await;
    }
}

/// Creates namespace `name`.
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns =
        Namespace { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, ..Namespace::default() };
    api.create(&PostParams::default(), &ns).await.unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// A started control plane with the CRDs installed and namespace `namespace` created.
pub async fn plane_with_namespace(namespace: &str) -> (ControlPlane, kube::Client) {
    prepare_plane(ControlPlane::start(), namespace).await
}

/// [`plane_with_namespace`] with kube-scheduler and kwok running too: the
/// whole local environment, for tests that run broker pods.
pub async fn plane_with_nodes(namespace: &str) -> (ControlPlane, kube::Client) {
    prepare_plane(ControlPlane::start_with_nodes(), namespace).await
}

async fn prepare_plane(plane: ControlPlane, namespace: &str) -> (ControlPlane, kube::Client) {
    let client = client(&plane).await;
    install_crds(&client).await;
    create_namespace(&client, namespace).await;
    (plane, client)
}

/// Creates the KafkaCluster `name` with `spec` and waits until it is Ready.
pub async fn create_ready_cluster(
    api: &Api<strom_crds::KafkaCluster>,
    name: &str,
    spec: serde_json::Value,
    timeout: Duration,
) {
    let cluster: strom_crds::KafkaCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster", "metadata": { "name": name }, "spec": spec,
    }))
    .expect("a KafkaCluster");
    api.create(&PostParams::default(), &cluster).await.expect("create the KafkaCluster");
    eventually(&format!("KafkaCluster {name} to be Ready"), timeout, || async {
        let status = api.get(name).await.ok()?.status?;
        status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
    })
    .await;
}

/// Creates the KafkaTopic `name` with `spec` and waits until it is Ready.
pub async fn create_ready_topic(
    api: &Api<strom_crds::KafkaTopic>,
    name: &str,
    spec: serde_json::Value,
    timeout: Duration,
) {
    let topic: strom_crds::KafkaTopic = serde_json::from_value(serde_json::json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaTopic", "metadata": { "name": name }, "spec": spec,
    }))
    .expect("a KafkaTopic");
    api.create(&PostParams::default(), &topic).await.expect("create the KafkaTopic");
    eventually(&format!("KafkaTopic {name} to be Ready"), timeout, || async {
        let status = api.get(name).await.ok()?.status?;
        status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
    })
    .await;
}

/// Replicas per broker over every topic, and whether any partition is moving
/// (has replicas being added or removed).
pub async fn replicas_per_broker(
    admin: &strom_operator::admin::ClusterAdmin,
) -> Option<(std::collections::BTreeMap<i32, usize>, bool)> {
    let topics = admin.describe_topics(&[]).await.ok()?;
    let mut load = std::collections::BTreeMap::new();
    let mut moving = false;
    for p in topics.iter().flat_map(|t| &t.partitions) {
        moving |= !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty();
        for r in &p.replicas {
            *load.entry(*r).or_insert(0) += 1;
        }
    }
    Some((load, moving))
}

/// A free TCP port on loopback, below the kernel's ephemeral range (32768+) so
/// that no outgoing connection takes it between now and the server's bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    for _ in 0..1000 {
        let port = 20000 + (seed.wrapping_add(NEXT.fetch_add(7, Ordering::Relaxed)) % 12000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000..32000")
}

pub fn unique_dir(what: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "strom-op-{what}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a test directory");
    dir
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The operator binary running as a process against the control plane.
pub struct OperatorProcess {
    child: Option<Child>,
    args: Vec<String>,
    kubeconfig: PathBuf,
    log: PathBuf,
    /// Port of `/metrics`, `/healthz`, `/readyz`.
    pub http_port: u16,
}

impl OperatorProcess {
    /// Starts `strom-operator` with `args` (plus `--http-listen` on a free port).
    pub fn start(plane: &ControlPlane, args: &[&str]) -> OperatorProcess {
        OperatorProcess::start_with_kubeconfig(plane.kubeconfig_path(), args)
    }

    /// Starts `strom-operator` watching `namespace` only, without leader
    /// election, reaching the Admin API of `cluster`'s first `brokers` pods
    /// where `runner` runs them; `extra` arguments after those.
    pub fn for_runner(
        plane: &ControlPlane,
        runner: &pod_runner::PodRunner,
        namespace: &str,
        cluster: &str,
        brokers: i32,
        extra: &[&str],
    ) -> OperatorProcess {
        let admin_override = format!("{namespace}/{cluster}={}", runner.admin_addresses(brokers));
        let mut args = vec!["--namespaces", namespace, "--no-leader-election", "--admin-override", &admin_override];
        args.extend_from_slice(extra);
        OperatorProcess::start(plane, &args)
    }

    /// Starts `strom-operator` with `args`, authenticated by `kubeconfig`
    /// (e.g. a ServiceAccount token, to run under that account's RBAC).
    pub fn start_with_kubeconfig(kubeconfig: PathBuf, args: &[&str]) -> OperatorProcess {
        let dir = unique_dir("operator");
        let mut op = OperatorProcess {
            child: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            kubeconfig,
            log: dir.join("operator.log"),
            http_port: free_port(),
        };
        op.spawn();
        op
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open operator log");
        let child = Command::new(env!("CARGO_BIN_EXE_strom-operator"))
            .args(&self.args)
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info,strom_operator=debug")
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start strom-operator");
        self.child = Some(child);
    }

    /// Kills the operator with SIGKILL (no lease release, no cleanup).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the operator with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the operator again with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The end of the operator's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 60)
    }

    /// The operator's whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The body of `GET path` on the operator's HTTP port.
    pub fn http_get(&self, path: &str) -> Option<String> {
        http_get(SocketAddr::from(([127, 0, 0, 1], self.http_port)), path)
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- operator log ({}) -----\n{}", self.log.display(), self.log_tail());
        }
        self.kill();
    }
}

/// `GET path` over plain HTTP/1.0; the body when the status is 200.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

/// The `strom-broker` binary of this workspace, built if missing.
pub fn broker_binary() -> PathBuf {
    workspace_binary("strom-broker")
}

/// Binary `name` of the workspace package of the same name (next to the
/// test executables), built if missing.
pub fn workspace_binary(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let binary = profile_dir.join(name);
    if !binary.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", name, "--bin", name])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .unwrap_or_else(|e| panic!("run cargo build -p {name}: {e}"));
        assert!(status.success(), "cargo build -p {name} failed");
    }
    binary
}

/// One local broker of a [`LocalBrokers`] cluster.
pub struct LocalBroker {
    /// Node id.
    pub id: i32,
    /// Kafka listener.
    pub kafka: SocketAddr,
    /// Internal gRPC listener (admin API).
    pub internal: SocketAddr,
    /// HTTP listener.
    pub http: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
}

/// Strom brokers as local processes on loopback, every one a controller
/// voter, their internal plane on mutual TLS with a CA of their own.
pub struct LocalBrokers {
    /// The brokers, by node id.
    pub brokers: Vec<LocalBroker>,
    dir: PathBuf,
    certs: strom_tls::certs::Written,
}

impl LocalBrokers {
    /// Starts `n` brokers and waits until every one is ready.
    pub fn start(n: usize) -> LocalBrokers {
        LocalBrokers::start_with(n, &[])
    }

    /// [`LocalBrokers::start`] with extra `--set KEY=VALUE` settings; `{KAFKA}`
    /// in one stands for the broker's own Kafka address (e.g. in `listeners`).
    pub fn start_with(n: usize, settings: &[&str]) -> LocalBrokers {
        let binary = broker_binary();
        let dir = unique_dir("brokers");
        let brokers: Vec<LocalBroker> = (0..n)
            .map(|i| {
                let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
                LocalBroker {
                    id: i as i32,
                    kafka: addr(free_port()),
                    internal: addr(free_port()),
                    http: addr(free_port()),
                    child: None,
                    log: dir.join(format!("broker-{i}.log")),
                }
            })
            .collect();
        let voters: Vec<String> = brokers.iter().map(|b| format!("{}@{}", b.id, b.internal)).collect();
        // The internal plane runs mutual TLS with a CA of the test's own,
        // handed to the operator as the cluster's CA Secret (install_ca).
        let request = strom_tls::certs::CertsRequest {
            brokers: (0..n as i32).collect(),
            ips: vec![[127, 0, 0, 1].into()],
            ..Default::default()
        };
        let certs = strom_tls::certs::write(&dir.join("certs"), &request).expect("write the brokers' certificates");
        // Owned by the cluster before any spawn, so a failure kills those already started.
        let mut cluster = LocalBrokers { brokers, dir: dir.clone(), certs: certs.clone() };
        for b in &mut cluster.brokers {
            let log = std::fs::File::create(&b.log).expect("create broker log");
            let pair = certs.broker(b.id);
            let child = Command::new(&binary)
                .arg("--node-id")
                .arg(b.id.to_string())
                .arg("--data-dir")
                .arg(dir.join(format!("broker-{}", b.id)))
                .arg("--listen")
                .arg(b.kafka.to_string())
                .arg("--advertise")
                .arg(b.kafka.to_string())
                .arg("--internal-listen")
                .arg(b.internal.to_string())
                .arg("--internal-advertise")
                .arg(b.internal.to_string())
                .arg("--http-listen")
                .arg(b.http.to_string())
                .arg("--voters")
                .arg(voters.join(","))
                .arg("--internal-tls-ca")
                .arg(&certs.ca)
                .arg("--internal-tls-cert")
                .arg(&pair.cert)
                .arg("--internal-tls-key")
                .arg(&pair.key)
                .args(settings.iter().flat_map(|s| ["--set".to_string(), s.replace("{KAFKA}", &b.kafka.to_string())]))
                .env("RUST_LOG", "info")
                .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start strom-broker");
            b.child = Some(child);
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        for i in 0..cluster.brokers.len() {
            while http_get(cluster.brokers[i].http, "/readyz").is_none() {
                let exited = cluster.brokers[i].child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited || Instant::now() > deadline {
                    let why = if exited { "exited" } else { "not ready after 90 s" };
                    panic!("broker {i} {why}:\n{}", cluster.log_tails());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        cluster
    }

    /// Kafka bootstrap list.
    pub fn bootstrap(&self) -> String {
        self.brokers.iter().map(|b| b.kafka.to_string()).collect::<Vec<_>>().join(",")
    }

    /// Internal (admin API) addresses, comma-separated.
    pub fn admin_addresses(&self) -> String {
        self.brokers.iter().map(|b| b.internal.to_string()).collect::<Vec<_>>().join(",")
    }

    /// Creates `<cluster>-cluster-ca` in `namespace` with these brokers' CA,
    /// so the operator calls them with an identity they trust (a CA the user
    /// brings, as the operator documents).
    pub async fn install_ca(&self, client: &kube::Client, namespace: &str, cluster: &str) {
        let read = |path: &Path| k8s_openapi::ByteString(std::fs::read(path).expect("read a CA file"));
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: ObjectMeta {
                name: Some(format!("{cluster}-cluster-ca")),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            data: Some(
                [("ca.crt".to_string(), read(&self.certs.ca)), ("ca.key".to_string(), read(&self.certs.ca_key))].into(),
            ),
            ..Default::default()
        };
        let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
        api.create(&PostParams::default(), &secret).await.expect("create the cluster CA Secret");
    }

    /// The end of every broker's log.
    pub fn log_tails(&self) -> String {
        self.brokers
            .iter()
            .map(|b| format!("----- broker {} ({}) -----\n{}", b.id, b.log.display(), tail(&b.log, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for LocalBrokers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails());
        }
        for b in &mut self.brokers {
            if let Some(mut child) = b.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
