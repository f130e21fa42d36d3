//! `strom-broker`: run a Strom broker.
//!
//! With no arguments this is a complete single-node cluster: node 0, Kafka on
//! 0.0.0.0:9092 advertised as localhost:9092, data in `./data`. Settings come
//! from flags, then `STROM_*` environment variables, then `--config FILE`.
//!
//! `strom-broker certs --out DIR --brokers 0,1,2` writes a CA and
//! certificates for the internal plane's mutual TLS (see `strom_broker::tls`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::Parser;
use strom_broker::broker::Broker;
use strom_broker::config::{BrokerConfig, ConfigLayer, split_setting};
use strom_broker::server;

/// A Kafka-compatible streaming broker.
#[derive(Debug, Parser)]
#[command(name = "strom-broker", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Subcommand>,
    /// YAML config file (fields as the flags below, plus `settings:`).
    #[arg(long, env = "STROM_CONFIG")]
    config: Option<PathBuf>,
    /// Broker id [default: 0].
    #[arg(long)]
    node_id: Option<String>,
    /// Data directory [default: ./data].
    #[arg(long)]
    data_dir: Option<String>,
    /// Kafka listener, IP:PORT [default: 0.0.0.0:9092].
    #[arg(long)]
    listen: Option<String>,
    /// Address given to clients, HOST:PORT [default: localhost:<listen port>].
    #[arg(long)]
    advertise: Option<String>,
    /// Internal gRPC listener [default: 0.0.0.0:9093 with internal TLS or
    /// --internal-insecure, else 127.0.0.1:9093].
    #[arg(long)]
    internal_listen: Option<String>,
    /// Internal address other brokers use [default: <advertise host>:<internal port>].
    #[arg(long)]
    internal_advertise: Option<String>,
    /// Metrics and health listener [default: 0.0.0.0:9094].
    #[arg(long)]
    http_listen: Option<String>,
    /// Controller quorum voters, ID@HOST:PORT,... [default: this broker alone].
    #[arg(long)]
    voters: Option<String>,
    /// Rack name for rack-aware replica placement.
    #[arg(long)]
    rack: Option<String>,
    /// CA bundle (PEM) that signs the certificates of brokers and the
    /// operator on the internal plane; enables mutual TLS there.
    #[arg(long)]
    internal_tls_ca: Option<String>,
    /// This broker's certificate (PEM, URI SAN strom://broker/<node-id>).
    #[arg(long)]
    internal_tls_cert: Option<String>,
    /// This broker's private key (PEM).
    #[arg(long)]
    internal_tls_key: Option<String>,
    /// Run the internal plane without TLS beyond loopback or with other
    /// brokers: anyone reaching it can forge replication, Raft and admin calls.
    #[arg(long)]
    internal_insecure: bool,
    /// Listeners advertised at the addresses a file gives, NAME[,NAME...]=FILE
    /// (file: `advertised.listeners=NAME://HOST:PORT,...`, re-read while
    /// running); a named listener the file gives no address is not advertised.
    #[arg(long, value_name = "NAMES=FILE")]
    advertised_overrides: Option<String>,
    /// A broker setting by its Kafka name, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Log output: text or json [env: STROM_LOG_FORMAT].
    #[arg(long, env = "STROM_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Threads that run the broker's async work: connections, replication,
    /// the controller [env: STROM_WORKER_THREADS] [default: the CPUs this
    /// process may use, its cgroup quota included]. File writes and cold
    /// reads run on a separate pool.
    #[arg(long, env = "STROM_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

/// Other things the binary does.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Write a new CA and, signed by it, a certificate and key per broker
    /// (URI SAN strom://broker/<id>) and for the operator (strom://operator).
    Certs {
        /// Output directory (created if missing; files of the same names are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Broker ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        brokers: Vec<i32>,
        /// Also write the operator's certificate.
        #[arg(long)]
        operator: bool,
        /// IP SANs on every broker certificate (repeatable or comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
        ip: Vec<std::net::IpAddr>,
        /// DNS SANs on every broker certificate (repeatable or comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "localhost")]
        dns: Vec<String>,
    },
}

fn certs(out: &std::path::Path, request: &strom_broker::tls::certs::CertsRequest) -> ExitCode {
    match strom_broker::tls::certs::write(out, request) {
        Ok(written) => {
            println!("CA: {}", written.ca.display());
            for pair in &written.pairs {
                println!("{}: {} {}", pair.identity, pair.cert.display(), pair.key.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("strom-broker certs: {e}");
            ExitCode::from(2)
        }
    }
}

impl Cli {
    fn layer(&self) -> anyhow::Result<ConfigLayer> {
        let mut settings = std::collections::BTreeMap::new();
        for item in &self.set {
            let (k, v) = split_setting(item, "--set")?;
            settings.insert(k, v);
        }
        Ok(ConfigLayer {
            node_id: self.node_id.clone(),
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            advertise: self.advertise.clone(),
            internal_listen: self.internal_listen.clone(),
            internal_advertise: self.internal_advertise.clone(),
            http_listen: self.http_listen.clone(),
            voters: self.voters.clone(),
            rack: self.rack.clone(),
            internal_tls_ca: self.internal_tls_ca.clone(),
            internal_tls_cert: self.internal_tls_cert.clone(),
            internal_tls_key: self.internal_tls_key.clone(),
            internal_insecure: self.internal_insecure.then(|| "true".to_string()),
            advertised_overrides: self.advertised_overrides.clone(),
            settings,
        })
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // openraft logs every failed RPC to an unreachable voter at ERROR,
        // several times a second while a broker is down; the controller's own
        // fencing and election messages say what matters. RUST_LOG overrides.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,openraft::replication=off"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<BrokerConfig> {
    let file = match &cli.config {
        Some(path) => ConfigLayer::from_file(path)?,
        None => ConfigLayer::default(),
    };
    let env = ConfigLayer::from_env(std::env::vars())?;
    let origin = match &cli.config {
        Some(p) => format!("flags, STROM_* environment or {}", p.display()),
        None => "flags or STROM_* environment".to_string(),
    };
    Ok(BrokerConfig::resolve(cli.layer()?.over(env.over(file)), &origin)?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    let open_files = strom_broker::open_files::open_file_limit();
    let log_files = strom_broker::open_files::log_file_budget(&config.settings, open_files);
    strom_broker::log::file_cache::FileCache::global().set_budget(log_files);
    tracing::info!(open_files, log_files, "open-file limit and the log's share of it");
    let internal = server::bind_internal(&config).await?;
    let http = server::bind_http(&config).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started: Arc<OnceLock<Arc<Broker>>> = Arc::new(OnceLock::new());
    // Live from the start: /healthz answers while the logs open and the quorum forms.
    let http_task = server::serve_http(started.clone(), http, shutdown.clone());
    {
        let (shutdown, started) = (shutdown.clone(), started.clone());
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            if let Some(broker) = started.get() {
                strom_broker::membership::controlled_shutdown(broker).await;
            }
            shutdown.cancel();
        });
    }
    let broker = server::start(config, internal, shutdown).await?;
    // Every Kafka listener is bound before /readyz can say ready: a broker
    // that cannot bind one exits without ever having looked ready.
    let kafka = server::bind_kafka(&broker).await?;
    let _ = started.set(broker.clone());
    tracing::info!(
        node_id = broker.config.node_id,
        listen = %broker.config.listen,
        advertise = %broker.config.advertise,
        internal = %broker.config.internal_listen,
        http = %broker.config.http_listen,
        data_dir = %broker.config.data_dir.display(),
        cluster_id = broker.metadata.read().cluster_id(),
        "strom broker serving"
    );
    server::serve(broker, kafka, http_task).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Subcommand::Certs { out, brokers, operator, ip, dns }) = &cli.command {
        let request = strom_broker::tls::certs::CertsRequest {
            brokers: brokers.clone(),
            operator: *operator,
            ips: ip.clone(),
            dns: dns.clone(),
        };
        return certs(out, &request);
    }
    init_tracing(&cli.log_format);
    // Before any thread or file: the limit every later derivation reads.
    strom_broker::open_files::raise_open_file_limit();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strom-broker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("strom-broker: {e:#}");
            ExitCode::from(2)
        }
    }
}
