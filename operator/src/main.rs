//! `strom-operator`: reconciles `KafkaCluster`, `KafkaTopic` and `KafkaUser` resources.
//!
//! Connects with the in-cluster service account, or `$KUBECONFIG` /
//! `~/.kube/config` outside a cluster. See `strom-operator --help`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use strom_operator::builders::{OperatorPods, parse_pod_labels};
use strom_operator::context::parse_admin_override;
use strom_operator::leader_election::LeaseConfig;
use strom_operator::run::{OperatorConfig, run};
use tokio_util::sync::CancellationToken;

/// The Strom operator: brokers as a StatefulSet per KafkaCluster, topics per KafkaTopic, users per KafkaUser.
#[derive(Debug, Parser)]
#[command(name = "strom-operator", version)]
struct Args {
    /// Namespaces to watch, comma-separated; every namespace when unset.
    #[arg(long, env = "STROM_OPERATOR_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "STROM_OPERATOR_HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    http_listen: SocketAddr,

    /// Run without leader election (only when exactly one replica runs).
    #[arg(long, env = "STROM_OPERATOR_NO_LEADER_ELECTION")]
    no_leader_election: bool,

    /// Namespace of the leader Lease (default: the pod's namespace, else "default").
    #[arg(long, env = "STROM_OPERATOR_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,

    /// Name of the leader Lease.
    #[arg(long, env = "STROM_OPERATOR_LEASE_NAME", default_value = "strom-operator")]
    lease_name: String,

    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "STROM_OPERATOR_LEASE_DURATION_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(2..=300))]
    lease_duration_seconds: u64,

    /// This replica's identity (default: $POD_NAME, else the host name and pid).
    #[arg(long, env = "STROM_OPERATOR_IDENTITY")]
    identity: Option<String>,

    /// For tests and out-of-cluster development: reach the cluster NAMESPACE/NAME's
    /// Admin API at these broker addresses instead of its pod DNS names
    /// (NAMESPACE/NAME=HOST:PORT[,HOST:PORT...]); repeatable.
    #[arg(long = "admin-override", value_name = "NAMESPACE/NAME=ADDRESSES")]
    admin_overrides: Vec<String>,

    /// For an operator outside the cluster network that reaches the pods but not
    /// their DNS names (scripts/local-k8s.sh): dial each broker's Admin API at its
    /// pod's status.podIP (a pod without one at its DNS name).
    #[arg(long, env = "STROM_OPERATOR_ADMIN_VIA_POD_IP")]
    admin_via_pod_ip: bool,

    /// Do not apply the KafkaCluster, KafkaTopic and KafkaUser CRDs at start (by default the
    /// operator installs and upgrades them with server-side apply).
    #[arg(long, env = "STROM_OPERATOR_NO_INSTALL_CRDS")]
    no_install_crds: bool,

    /// Seconds between two comparisons of a settled KafkaTopic or KafkaUser with
    /// the cluster (and re-reads of a KafkaUser's referenced password Secret); a
    /// change made behind the operator's back is set back then.
    #[arg(long, env = "STROM_OPERATOR_RESYNC_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    resync_seconds: u64,

    /// Namespace of the operator's pods, let through the clusters'
    /// NetworkPolicies to the brokers' internal port (default: $POD_NAMESPACE;
    /// unset outside a cluster: pods with the labels below in any namespace).
    #[arg(long, env = "STROM_OPERATOR_NAMESPACE")]
    operator_namespace: Option<String>,

    /// Labels of the operator's pods (KEY=VALUE[,KEY=VALUE...]), let through the
    /// clusters' NetworkPolicies to the brokers' internal port; the Helm chart
    /// passes its pods' labels.
    #[arg(long, env = "STROM_OPERATOR_POD_LABELS", default_value = strom_operator::builders::DEFAULT_OPERATOR_POD_LABELS)]
    operator_pod_labels: String,

    /// Log output: text or json.
    #[arg(long, env = "STROM_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn identity(args: &Args) -> String {
    args.identity.clone().or_else(|| std::env::var("POD_NAME").ok()).unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_runtime=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" { builder.json().init() } else { builder.init() }
}

async fn main_async(args: Args) -> anyhow::Result<()> {
    let mut admin_overrides = BTreeMap::new();
    for value in &args.admin_overrides {
        let (cluster, addresses) = parse_admin_override(value)?;
        admin_overrides.insert(cluster, addresses);
    }
    let operator_pods = OperatorPods {
        namespace: args.operator_namespace.clone().or_else(|| std::env::var("POD_NAMESPACE").ok()),
        labels: parse_pod_labels(&args.operator_pod_labels)?,
    };
    let identity = identity(&args);
    let lease = (!args.no_leader_election).then(|| {
        let duration = Duration::from_secs(args.lease_duration_seconds);
        LeaseConfig {
            namespace: args
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".into()),
            name: args.lease_name.clone(),
            identity: identity.clone(),
            lease_duration: duration,
            renew_period: duration / 3,
        }
    });
    let client = kube::Client::try_default()
        .await
        .context("cannot connect to Kubernetes (in-cluster service account or $KUBECONFIG)")?;
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        signals.cancel();
    });
    tracing::info!(%identity, namespaces = ?args.namespaces, "strom-operator starting");
    let config = OperatorConfig {
        namespaces: args.namespaces.clone(),
        http_listen: args.http_listen,
        lease,
        identity,
        admin_overrides,
        admin_via_pod_ip: args.admin_via_pod_ip,
        install_crds: !args.no_install_crds,
        resync: std::time::Duration::from_secs(args.resync_seconds),
        operator_pods,
    };
    run(client, config, shutdown).await
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strom-operator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("strom-operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
