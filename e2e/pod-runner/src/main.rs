//! `strom-pod-runner`: run the broker pods of one Strom cluster as local
//! processes, in place of a kubelet (see README.md).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use k8s_openapi::api::core::v1::Node;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio_util::sync::CancellationToken;

use strom_pod_runner::address::Subnet;
use strom_pod_runner::context::Context;
use strom_pod_runner::runner::{Addresses, Runner};
use strom_pod_runner::subnets::SubnetPool;
use strom_pod_runner::{node, owner, process};

/// A stand-in kubelet: runs the matching pods as strom-broker processes on 127.X.Y.Z addresses.
#[derive(Debug, Parser)]
#[command(name = "strom-pod-runner", version, about)]
struct Cli {
    /// Kubeconfig of the control plane.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Namespace of the pods to run.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Label selector of the pods to run (e.g. app.kubernetes.io/instance=demo).
    #[arg(long)]
    selector: String,
    /// Loopback /16 for pod addresses, 127.X: pod <set>-<n> gets 127.X.<n/200>.<n%200+10>
    /// (one StatefulSet).
    #[arg(long, required_unless_present = "subnet_pool", conflicts_with = "subnet_pool")]
    subnet: Option<Subnet>,
    /// Loopback /16s for any number of StatefulSets, 127.A-127.B: each set the
    /// runner meets gets the lowest free 127.X of it (kept in DIR/subnets).
    #[arg(long)]
    subnet_pool: Option<SubnetPool>,
    /// Name of the Node this runner registers and binds pods to.
    #[arg(long)]
    node_name: String,
    /// Working directory: pods/, pvc/, logs/, pids/.
    #[arg(long)]
    dir: PathBuf,
    /// The strom-broker binary.
    #[arg(long)]
    broker_bin: PathBuf,
    /// Zone label (topology.kubernetes.io/zone) of the node. The API server's
    /// PodTopologyLabels admission copies it onto the pods bound here, and a
    /// broker whose `STROM_RACK` comes from that label takes it as its rack.
    /// Given more than once, the runner plays one node per zone
    /// (`NODE_NAME-ZONE`) and spreads the pods over them by ordinal.
    #[arg(long)]
    zone: Vec<String>,
    /// A kube-scheduler binds the pods (it must be running): the runner only
    /// provisions the volumes of pending pods' claims, as a storage
    /// provisioner would, so that the scheduler's volume binding can go on.
    /// Without it the runner binds pods itself.
    #[arg(long)]
    external_scheduler: bool,
    /// kwok keeps the nodes (it must be running, managing nodes annotated
    /// `kwok.x-k8s.io/node=fake`): the runner creates them with that
    /// annotation and leaves their status and heartbeats to kwok. Without it
    /// the runner reports the nodes' status itself.
    #[arg(long)]
    kwok: bool,
    /// Exit (killing the brokers) when this process is gone.
    #[arg(long, env = "STROM_POD_RUNNER_OWNER")]
    owner: Option<u32>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,hyper=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();

    let shutdown = CancellationToken::new();
    if let Some(pid) = cli.owner {
        let started = owner::start_time(pid).with_context(|| format!("owner process {pid} is not running"))?;
        tokio::spawn(owner::watch_owner(pid, started, shutdown.clone()));
    }
    anyhow::ensure!(cli.broker_bin.is_file(), "--broker-bin {}: no such file", cli.broker_bin.display());
    let broker_bin = std::fs::canonicalize(&cli.broker_bin).context("resolving --broker-bin")?;
    std::fs::create_dir_all(&cli.dir).with_context(|| format!("creating {}", cli.dir.display()))?;
    let dir = std::fs::canonicalize(&cli.dir).context("resolving --dir")?;

    let kubeconfig = Kubeconfig::read_from(&cli.kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", cli.kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading the kubeconfig")?;
    let client = Client::try_from(config).context("building the Kubernetes client")?;

    let ctx = Arc::new(Context {
        client: client.clone(),
        namespace: cli.namespace.clone(),
        selector: cli.selector.clone(),
        nodes: node::nodes_for(&cli.node_name, &cli.zone).into_iter().map(|(name, _)| name).collect(),
        dir: dir.clone(),
        broker_bin,
        external_scheduler: cli.external_scheduler,
    });
    ctx.create_dirs().with_context(|| format!("creating the layout under {}", dir.display()))?;
    let addresses = match (cli.subnet, cli.subnet_pool.clone()) {
        (Some(subnet), _) => Addresses::Subnet(subnet),
        (None, Some(mut pool)) => {
            match std::fs::read_to_string(ctx.subnets_file()) {
                Ok(text) => {
                    for line in pool.restore(&text) {
                        tracing::warn!(line, pool = %pool, "ignoring a line of DIR/subnets");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context("reading DIR/subnets"),
            }
            Addresses::Pool(pool)
        }
        (None, None) => anyhow::bail!("one of --subnet and --subnet-pool is needed"),
    };
    let leftovers = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || process::kill_leftovers(&dir.join("pids"), &dir)).await?
    };
    if leftovers > 0 {
        tracing::warn!(leftovers, "killed brokers of an earlier runner");
    }

    let nodes: Api<Node> = Api::all(client);
    let mut heartbeats = Vec::new();
    for (name, zone) in node::nodes_for(&cli.node_name, &cli.zone) {
        if cli.kwok {
            node::register_for_kwok(&nodes, &cli.node_name, &name, zone.as_deref())
                .await
                .with_context(|| format!("registering node {name} for kwok"))?;
            continue;
        }
        node::register(&nodes, &cli.node_name, &name, zone.as_deref())
            .await
            .with_context(|| format!("registering node {name}"))?;
        heartbeats.push(tokio::spawn(node::keep_alive(nodes.clone(), name, shutdown.clone())));
    }
    tracing::info!(
        nodes = ?ctx.nodes, namespace = %cli.namespace, selector = %cli.selector,
        subnet = ?cli.subnet, subnet_pool = ?cli.subnet_pool.as_ref().map(ToString::to_string), dir = %dir.display(), external_scheduler = cli.external_scheduler,
        kwok = cli.kwok, "pod runner started"
    );

    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            tracing::info!(signal, "signal received; stopping");
            shutdown.cancel();
        });
    }
    Runner::new(ctx, addresses).run(shutdown.clone()).await;
    shutdown.cancel();
    futures::future::join_all(heartbeats).await;
    tracing::info!("pod runner stopped");
    Ok(())
}

/// SIGTERM or SIGINT, whichever comes first.
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
