//! `strom-bench`: Strom and Apache Kafka side by side on one machine, with
//! the same load generators, in the same run (issue 9's scenarios 1–7,
//! scenario 8, transactions, scenario 9, group join settle time, and
//! scenario 10, scaling over partition and producer counts), optionally
//! with extra Strom clusters (`--strom-variant`) for A/B comparisons.
//!
//! Normally started by `bench/run.sh`, which builds the release broker and
//! this binary and resolves Kafka's jars first. Writes `report.md` (and
//! `report.json`) into the run directory, keeps every broker's log under its
//! `logs/`, and prints the report; exits non-zero if a scenario failed or a
//! correctness check found a mismatch.

mod broker_logs;
mod client;
mod group_join;
mod java_tools;
mod process;
mod report;
mod scaling;
mod scenarios;
mod secure;
mod txn_scenario;
mod variants;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::java_tools::JavaTools;
use crate::process::{COMMON_SETTINGS, KAFKA_ONLY_SETTINGS, Programs};
use crate::scenarios::{Bench, Plan};

#[derive(Parser, Debug)]
#[command(version, about = "Strom vs Apache Kafka, side by side: throughput, latency, memory, recovery")]
struct Args {
    /// The release strom-broker binary.
    #[arg(long)]
    strom_broker: PathBuf,
    /// bench/kafka/run-kafka.sh.
    #[arg(long)]
    run_kafka: PathBuf,
    /// The file `run-kafka.sh tools-classpath` printed.
    #[arg(long)]
    tools_classpath: PathBuf,
    /// Run directory: data directories, logs, the report. Must not exist yet.
    #[arg(long)]
    out: PathBuf,
    /// Scenarios to run, e.g. 1,4,6 (default: 1 to 7; 8, transactions, 9,
    /// group join settle time, and 10, scaling over partitions and
    /// producers, are opt-in: `--scenarios 8`, or add them to a list).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6,7")]
    scenarios: Vec<u8>,
    /// Rounds per scenario (each round runs both systems, alternating which goes first).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Unmeasured warm-up rounds each system takes before scenarios 1 and
    /// 2's measured ones (and before scenario 10's first point). One was too
    /// few on a slow host: Kafka's JVM still sped up through the measured
    /// rounds (run 20261207-021633).
    #[arg(long, default_value_t = 2)]
    warmup_rounds: usize,
    /// Multiply every workload size by this (1 = the documented run; e.g.
    /// 0.05 for a quick check of the harness).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Profile Strom with `perf record` during one extra scenario-1 run.
    #[arg(long)]
    profile: bool,
    /// Also run scenario 2 on a Strom cluster with internal mutual TLS and a
    /// Kafka cluster with inter-broker and controller TLS, beside and in the
    /// same rounds as the plain ones, and report what TLS costs each system
    /// (needs scenario 2).
    #[arg(long)]
    internal_tls: bool,
    /// Also run scenarios 1 and 4 over a SASL_SSL client listener with
    /// SCRAM-SHA-512 on the same single brokers (a second listener beside
    /// PLAINTEXT; the same certificate and settings on both systems; the
    /// user made with kafka-configs.sh), in the same rounds, with the Java
    /// tools (librdkafka here has no SSL), and report SASL_SSL against
    /// plaintext and Strom against Kafka (needs scenario 1 or 4).
    #[arg(long)]
    client_sasl_ssl: bool,
    /// A Strom variant for an A/B comparison in the same run, NAME=ARGS
    /// (repeatable, at most 4): one more 3-node Strom cluster in scenarios 2
    /// and 10, in the same rounds, whose every node gets ARGS (split like a
    /// shell word list) appended to its strom-broker command line, e.g.
    /// `--strom-variant unary='--set replica.fetch.stream=false'`. The
    /// report adds a table per variant: variant against the base Strom and
    /// Kafka. Variants do not get `--strom-args`.
    #[arg(long = "strom-variant", value_name = "NAME=ARGS")]
    strom_variant: Vec<String>,
    /// Extra strom-broker arguments for the base Strom's every node, in
    /// every scenario (e.g. `--strom-args '--set replica.fetch.stream=false'`
    /// to make the base the old path against a variant).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    strom_args: Option<String>,
    /// The Java program scenario 9 compiles and runs (GroupJoinSettle.java).
    #[arg(long, default_value = "bench/java/GroupJoinSettle.java")]
    group_join_source: PathBuf,
    /// Kafka version (for the report; run-kafka.sh reads KAFKA_VERSION).
    #[arg(long, env = "KAFKA_VERSION", default_value = "4.3.1")]
    kafka_version: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(bad) = args.scenarios.iter().find(|s| !(1..=10).contains(*s)) {
        bail!("--scenarios: {bad} is not a scenario; allowed are 1 to 10");
    }
    let variants = variants::parse_all(&args.strom_variant)?;
    if !variants.is_empty() && !args.scenarios.iter().any(|s| [2, 10].contains(s)) {
        bail!("--strom-variant runs in scenarios 2 and 10; add 2 or 10 to --scenarios");
    }
    let strom_args = match &args.strom_args {
        Some(a) => variants::split_args(a).map_err(|e| anyhow::anyhow!("--strom-args: {e}"))?,
        None => Vec::new(),
    };
    if args.scenarios.contains(&9) && !args.group_join_source.is_file() {
        bail!("--group-join-source {}: no such file (scenario 9 needs it)", args.group_join_source.display());
    }
    if args.internal_tls && !args.scenarios.contains(&2) {
        bail!("--internal-tls measures scenario 2 with TLS between brokers; add 2 to --scenarios");
    }
    if args.client_sasl_ssl && !args.scenarios.iter().any(|s| [1, 4].contains(s)) {
        bail!("--client-sasl-ssl measures scenarios 1 and 4 with clients on SASL_SSL; add 1 or 4 to --scenarios");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if !(args.scale > 0.0 && args.scale <= 10.0) {
        bail!("--scale {} is out of range; allowed is (0, 10]", args.scale);
    }
    for (flag, path) in [("--strom-broker", &args.strom_broker), ("--run-kafka", &args.run_kafka)] {
        if !path.is_file() {
            bail!("{flag} {}: no such file", path.display());
        }
    }
    if args.out.exists() {
        bail!("--out {}: already exists; give a fresh run directory", args.out.display());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let programs = Programs {
        strom_broker: args.strom_broker.canonicalize()?,
        run_kafka: args.run_kafka.canonicalize()?,
        strom_args,
    };
    let mut tools = JavaTools::load(&args.tools_classpath, &out)?;
    if args.client_sasl_ssl {
        tools = tools.with_admin_classpath(&broker_classpath(&programs.run_kafka)?)?;
    }
    let plan = Plan { warmup_rounds: args.warmup_rounds, ..Plan::full(args.rounds) }.scaled(args.scale);
    let mut bench =
        Bench::new(programs, tools, plan.clone(), out.clone(), args.profile, args.internal_tls, args.client_sasl_ssl);
    bench.variants = variants;

    let began = Instant::now();
    let has = |n: u8| args.scenarios.contains(&n);
    let mut failures = Vec::new();
    let mut step = |name: &str, result: Result<()>| {
        eprintln!("strom-bench: {name} done after {:.0} s", began.elapsed().as_secs_f64());
        if let Err(e) = result {
            eprintln!("strom-bench: {name} FAILED: {e:#}");
            failures.push(format!("{name}: {e:#}"));
        }
    };
    if has(1) || has(4) {
        let r = bench.single_broker_throughput(has(1), has(4));
        step("scenarios 1 and 4", r);
    }
    if has(2) || has(3) || has(8) || has(10) {
        let r = bench.cluster_scenarios(has(2) || has(3), has(3), has(8), has(10));
        let names: Vec<String> = [2, 3, 8, 10].into_iter().filter(|s| has(*s)).map(|s| s.to_string()).collect();
        step(&format!("scenario(s) {} (three brokers)", names.join(", ")), r);
    }
    if has(5) {
        let r = bench.scenario5();
        step("scenario 5", r);
    }
    if has(6) {
        let r = bench.scenario6();
        step("scenario 6", r);
    }
    if has(7) {
        let r = bench.scenario7();
        step("scenario 7", r);
    }
    if has(9) {
        let r = bench.scenario9(&args.group_join_source);
        step("scenario 9", r);
    }

    let mut md = header(&args, &plan, began.elapsed().as_secs_f64());
    md.push_str(&bench.report.markdown());
    if !failures.is_empty() {
        md.push_str("\n### Failures\n\n");
        for f in &failures {
            md.push_str(&format!("- {}\n", f.replace('\n', " ")));
        }
    }
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&bench.report)?)?;
    println!("{md}");
    eprintln!("strom-bench: report written to {}", out.join("report.md").display());
    if !failures.is_empty() {
        bail!("{} scenario group(s) failed", failures.len());
    }
    if !bench.report.checks_passed() {
        bail!("a correctness check failed: records consumed differ from records acknowledged");
    }
    Ok(())
}

/// The run's header: when, on what, with which versions and settings.
fn header(args: &Args, plan: &Plan, seconds: f64) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:")).map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let kernel = command_output("uname", &["-r"]);
    let java = command_output("java", &["-version"]);
    let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
    let date = command_output("date", &["-u", "+%F %T UTC"]);
    let rev = std::env::var("STROM_BENCH_REV").unwrap_or_else(|_| "unknown".into());
    let settings =
        |list: &[(&str, &str)]| list.iter().map(|(k, v)| format!("`{k}={v}`")).collect::<Vec<_>>().join(", ");
    let internal = if args.internal_tls {
        "scenario 2 also on both systems with TLS between brokers (Strom: internal plane on mutual TLS; Kafka: inter-broker and controller listeners on SSL with client auth); all other clusters plain (Strom multi-broker: `--internal-insecure`)"
    } else {
        "plain (Strom multi-broker: `--internal-insecure`; Kafka: PLAINTEXT inter-broker and controller listeners)"
    };
    let mut strom_args = match &args.strom_args {
        Some(a) => format!("; base Strom nodes also get `{}` (`--strom-args`)", a.trim()),
        None => String::new(),
    };
    for v in &args.strom_variant {
        let _ = write!(strom_args, "; variant `{v}` (`--strom-variant`)");
    }
    let clients = if args.client_sasl_ssl {
        "plaintext, and in scenarios 1 and 4 also the Java tools over a second SASL_SSL listener (SCRAM-SHA-512) of the same brokers"
    } else {
        "always plaintext"
    };
    format!(
        "## Strom vs Apache Kafka {kafka}, side by side\n\n\
         - run: {date}, {seconds:.0} s, {rounds} rounds per scenario (alternating which system goes first), scale {scale}\n\
         - machine: {cores} cores ({cpu}), {mem} RAM, Linux {kernel}; brokers, clients and tools all on this machine, loopback network, data on the same disk\n\
         - Strom: `strom-broker` release build of {rev}{strom_args}\n\
         - Apache Kafka {kafka}: KRaft, broker and controller in one JVM per node, {java}, stock JVM options of kafka-server-start.sh (`-Xmx1G -Xms1G`, G1)\n\
         - clients: Apache Kafka {kafka}'s ProducerPerformance/ConsumerPerformance (Java, `-Xmx512M`), librdkafka {librdkafka} (this harness)\n\
         - durability: neither broker fsyncs on produce (`log.flush.interval.messages` and `log.flush.interval.ms` at their default, Long.MAX, on both); acknowledged data is durable by replication (scenarios 2–3) or, on one node, by the page cache\n\
         - settings on both: {common}; on Kafka only: {kafka_only} (frees deleted topics' disk between runs as Strom does)\n\
         - traffic between brokers: {internal}; clients {clients}\n\
         - workload sizes: {plan:?}\n\n",
        kafka = args.kafka_version,
        rounds = args.rounds,
        scale = args.scale,
        common = settings(COMMON_SETTINGS),
        kafka_only = settings(KAFKA_ONLY_SETTINGS),
    )
}

/// The file `run-kafka.sh classpath` names: Kafka's broker jars (for
/// kafka-configs.sh's ConfigCommand).
fn broker_classpath(run_kafka: &std::path::Path) -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(run_kafka)
        .arg("classpath")
        .output()
        .with_context(|| format!("running {} classpath", run_kafka.display()))?;
    if !out.status.success() {
        bail!(
            "{} classpath failed ({}): {}",
            run_kafka.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or_default().trim().to_owned()
        })
        .unwrap_or_else(|_| format!("{program} unavailable"))
}
