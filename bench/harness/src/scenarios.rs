//! Scenarios 1 to 7 of the side-by-side benchmark (8, transactions, is in
//! [`crate::txn_scenario`]). Each starts its
//! clusters of both systems, runs `rounds` rounds alternating which system
//! goes first (the maximum-throughput scenarios after unmeasured warm-up
//! rounds), records every run's value in the report, and ends each
//! producing run by reading the topic back: the records consumed must equal
//! the records acknowledged. Once a scenario is done with a cluster, it keeps
//! the cluster's node logs in the run directory ([`crate::broker_logs`]) and
//! deletes the cluster's directory.
//!
//! With `--internal-tls`, scenario 2 runs on four clusters at once: both
//! systems with plain and with TLS traffic between their brokers, in
//! [`crate::process::run_order`]; scenario 2's Strom/Kafka table stays the plain
//! pair's, and the TLS/plain ratios go to [`TlsMetric`]s.
//!
//! With `--strom-variant`, extra Strom clusters (each with its own
//! arguments, [`crate::variants`]) join scenario 2's rounds the same way, in
//! [`crate::process::run_order`] beside the base Strom, and their values go
//! to [`VariantMetric`]s; scenario 10 ([`crate::scaling`]) runs on them too.
//!
//! With `--client-sasl-ssl`, the single brokers of scenarios 1 and 4 also
//! serve clients on SASL_SSL ([`crate::secure`]), and each round runs the
//! Java tools over both listeners of the same broker, in [`Listener::order`];
//! the Strom/Kafka tables stay the plaintext runs', and the SASL_SSL ones go
//! to [`TlsMetric`]s of kind [`Secured::ClientSaslSsl`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::broker_logs;
use crate::client::{self, ProduceSpec};
use crate::java_tools::{JavaConsume, JavaProduce, JavaTools};
use crate::process::{self, Cluster, Programs, Security, System, VariantTag, run_order};
use crate::report::{Better, Check, Metric, Report, Secured, Target, TlsMetric, VariantMetric, quantile_ms};
use crate::secure::{Listener, SaslSsl};
use crate::variants::StromVariant;

pub(crate) const MIB: f64 = 1024.0 * 1024.0;

/// Seconds of each generator's records in scenario 3 sent before its
/// latencies count (ProducerPerformance's `--warmup-records`; the harness's
/// own for librdkafka): a fresh JVM's class loading and JIT, and either
/// client's first connections and metadata round trips, put the run's
/// slowest sends there on both systems (librdkafka's first half second
/// reached 350–700 ms on both, run 20261207-192448).
const S3_WARMUP_SECONDS: f64 = 3.0;

/// Sizes of the workloads; [`Plan::full`] is what the documented command runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub rounds: usize,
    /// Unmeasured rounds each system takes before scenarios 1 and 2's
    /// measured ones (see [`Bench::warm_up`]).
    pub warmup_rounds: usize,
    pub record_bytes: usize,
    /// Partitions of the throughput topics.
    pub partitions: i32,
    pub s1_records: u64,
    pub s2_records: u64,
    pub s3_seconds: f64,
    pub s4_backlog_bytes: u64,
    pub s5_partitions: i32,
    pub s5_records: u64,
    pub s6_idle: Duration,
    pub s6_load_records: u64,
    pub s7_log_bytes: u64,
    /// Records of each scenario-10 run (shared by its producers).
    pub s10_records: u64,
    /// Records of each measured transactional run in scenario 8.
    pub s8_records: u64,
    /// Records of scenario 8's unmeasured warm-up run per system.
    pub s8_warmup_records: u64,
    /// ProducerPerformance's `--transaction-duration-ms` in scenario 8.
    pub s8_transaction_ms: u64,
}

impl Plan {
    pub fn full(rounds: usize) -> Plan {
        Plan {
            rounds,
            warmup_rounds: 2,
            record_bytes: 1024,
            partitions: 8,
            s1_records: 1_000_000,
            s2_records: 1_000_000,
            s3_seconds: 20.0,
            s4_backlog_bytes: 2 << 30,
            s5_partitions: 1000,
            s5_records: 200_000,
            s6_idle: Duration::from_secs(10),
            s6_load_records: 200_000,
            s7_log_bytes: 10 << 30,
            s10_records: 300_000,
            s8_records: 1_000_000,
            s8_warmup_records: 250_000,
            s8_transaction_ms: 100,
        }
    }

    /// Every workload multiplied by `factor` (partition counts kept), for a
    /// quick run while working on the harness.
    pub fn scaled(mut self, factor: f64) -> Plan {
        let scale = |v: u64| ((v as f64 * factor) as u64).max(1000);
        self.s1_records = scale(self.s1_records);
        self.s2_records = scale(self.s2_records);
        self.s3_seconds = (self.s3_seconds * factor).max(2.0);
        self.s4_backlog_bytes = scale(self.s4_backlog_bytes);
        self.s5_records = scale(self.s5_records);
        self.s6_idle = self.s6_idle.mul_f64(factor).max(Duration::from_secs(1));
        self.s6_load_records = scale(self.s6_load_records);
        self.s7_log_bytes = scale(self.s7_log_bytes);
        self.s8_records = scale(self.s8_records);
        self.s10_records = scale(self.s10_records);
        self.s8_warmup_records = scale(self.s8_warmup_records);
        self
    }
}

/// What every run of a maximum-throughput scenario (1 and 2) produces:
/// `records` into a topic of `replication` replicas, with `acks`.
#[derive(Clone, Copy, Debug)]
struct ThroughputRuns {
    scenario: u8,
    records: u64,
    replication: i32,
    acks: &'static str,
}

/// Which load generator a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generator {
    /// Kafka's ProducerPerformance / ConsumerPerformance (Java client).
    Java,
    /// The harness's own librdkafka client.
    Librdkafka,
}

impl Generator {
    const ALL: [Generator; 2] = [Generator::Java, Generator::Librdkafka];

    fn producer_name(self) -> &'static str {
        match self {
            Generator::Java => "ProducerPerformance",
            Generator::Librdkafka => "librdkafka",
        }
    }

    fn consumer_name(self) -> &'static str {
        match self {
            Generator::Java => "ConsumerPerformance",
            Generator::Librdkafka => "librdkafka",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Generator::Java => "java",
            Generator::Librdkafka => "rdk",
        }
    }
}

/// What the scenarios share.
pub struct Bench {
    pub programs: Programs,
    pub tools: JavaTools,
    pub plan: Plan,
    pub run_dir: PathBuf,
    pub report: Report,
    /// Origin of the due-time stamps in records (end-to-end latency).
    pub epoch: Instant,
    /// Kafka's median maximum in scenario 2, records/s, per generator
    /// (scenario 3 runs at half of it).
    s2_kafka_max: Option<[f64; 2]>,
    /// Whether to profile Strom with `perf` during scenario 1.
    pub profile: bool,
    /// Whether scenario 2 also runs on clusters with TLS between brokers.
    pub internal_tls: bool,
    /// Whether scenarios 1 and 4 also run over SASL_SSL listeners.
    pub client_sasl_ssl: bool,
    /// The SASL_SSL material, once scenarios 1 and 4 have written it.
    sasl_ssl: Option<SaslSsl>,
    /// `--strom-variant`s: extra Strom clusters in scenarios 2 and 10.
    pub variants: Vec<StromVariant>,
}

/// One producing run's results.
struct Produced {
    acked: u64,
    mib_per_sec: f64,
    records_per_sec: f64,
    broker_cpu: Duration,
}

/// One run of a maximum-throughput round: where, how, and what it did.
struct RoundRun {
    system: System,
    security: Security,
    /// Index into [`Bench::variants`] for a variant cluster's run.
    variant: Option<usize>,
    listener: Listener,
    /// Index into [`Generator::ALL`].
    generator: usize,
    produced: Produced,
}

impl Bench {
    pub fn new(
        programs: Programs,
        tools: JavaTools,
        plan: Plan,
        run_dir: PathBuf,
        profile: bool,
        internal_tls: bool,
        client_sasl_ssl: bool,
    ) -> Bench {
        Bench {
            programs,
            tools,
            plan,
            run_dir,
            report: Report::default(),
            epoch: Instant::now(),
            s2_kafka_max: None,
            profile,
            internal_tls,
            client_sasl_ssl,
            sasl_ssl: None,
            variants: Vec::new(),
        }
    }

    /// Starts a cluster of each system for `scenario`; with
    /// `sasl_ssl_keystore`, each also serves clients on SASL_SSL.
    pub(crate) fn start_both(
        &self,
        scenario: u8,
        nodes: usize,
        security: Security,
        settings: &[(&str, &str)],
        sasl_ssl_keystore: Option<&Path>,
    ) -> Result<[Cluster; 2]> {
        let start = |system: System| {
            let dir =
                self.run_dir.join(format!("s{scenario}-{}{}", system.name().to_lowercase(), security.dir_suffix()));
            Cluster::start_with_clients(system, security, &self.programs, &dir, nodes, settings, sasl_ssl_keystore)
                .with_context(|| {
                    format!("starting {} for scenario {scenario}", crate::process::label(system, security))
                })
        };
        Ok([start(System::Strom)?, start(System::Kafka)?])
    }

    /// Starts a 3-node Strom cluster per `--strom-variant` for `scenario`,
    /// each with `settings` and its own arguments (not `--strom-args`).
    pub(crate) fn start_variants(&self, scenario: u8, settings: &[(&str, &str)]) -> Result<Vec<Cluster>> {
        let mut all = Vec::new();
        for (index, v) in self.variants.iter().enumerate() {
            let programs = Programs { strom_args: v.args.clone(), ..self.programs.clone() };
            let dir = self.run_dir.join(format!("s{scenario}-strom-v-{}", v.name));
            let mut cluster = Cluster::start(System::Strom, Security::Plain, &programs, &dir, 3, settings)
                .with_context(|| format!("starting Strom variant {} ({:?}) for scenario {scenario}", v.name, v.args))?;
            cluster.variant = Some(VariantTag { index, name: v.name.clone() });
            all.push(cluster);
        }
        Ok(all)
    }

    /// The bootstrap list and the client config file `listener` of
    /// `cluster` takes.
    fn via(&self, cluster: &Cluster, listener: Listener) -> Result<(String, Option<&Path>)> {
        match listener {
            Listener::Plaintext => Ok((cluster.bootstrap(), None)),
            Listener::SaslSsl => {
                let material = self.sasl_ssl.as_ref().context("no SASL_SSL material written")?;
                let bootstrap = cluster
                    .sasl_ssl_bootstrap()
                    .with_context(|| format!("{} has no SASL_SSL listener", cluster.name()))?;
                Ok((bootstrap, Some(material.client_config.as_path())))
            }
        }
    }

    /// Produces `records` records with `generator` into `topic` through
    /// `listener`, then reads the topic back (through PLAINTEXT) and records
    /// the check.
    #[allow(clippy::too_many_arguments)]
    fn produce_run(
        &mut self,
        scenario: u8,
        cluster: &mut Cluster,
        generator: Generator,
        listener: Listener,
        topic: &str,
        records: u64,
        acks: &'static str,
    ) -> Result<Produced> {
        let plain = cluster.bootstrap();
        let (bootstrap, config) = self.via(cluster, listener)?;
        let cpu_before = cluster.stats()?.cpu;
        let (acked, elapsed_rate) = match (generator, listener) {
            (Generator::Java, _) => {
                let run = self.tools.produce(&JavaProduce {
                    bootstrap: &bootstrap,
                    topic,
                    records,
                    record_bytes: self.plan.record_bytes,
                    acks,
                    rate: None,
                    warmup_records: 0,
                    config,
                    transactions: None,
                })?;
                (run.all.records, run.all.records_per_sec)
            }
            (Generator::Librdkafka, Listener::SaslSsl) => {
                bail!("librdkafka over SASL_SSL: the harness's rdkafka is built without SSL")
            }
            (Generator::Librdkafka, Listener::Plaintext) => {
                let spec = ProduceSpec::full_speed(topic, records, self.plan.record_bytes, acks);
                let o = client::produce(&bootstrap, &spec, self.epoch)?;
                if o.failed > 0 {
                    bail!(
                        "{} of {records} records failed on {}: {}",
                        o.failed,
                        cluster.name(),
                        o.first_error.unwrap_or_default()
                    );
                }
                (o.acked, o.acked as f64 / o.elapsed.as_secs_f64())
            }
        };
        let broker_cpu = cluster.stats()?.cpu.saturating_sub(cpu_before);
        cluster.check_alive()?;
        let consumed = client::consume_all(&plain, topic)?;
        let tls = match (cluster.security, listener, &cluster.variant) {
            (_, Listener::SaslSsl, _) => " (over SASL_SSL)".to_owned(),
            (Security::Plain, Listener::Plaintext, None) => String::new(),
            (Security::Plain, Listener::Plaintext, Some(v)) => format!(" (variant {})", v.name),
            (Security::InternalTls, Listener::Plaintext, _) => " (TLS between brokers)".to_owned(),
        };
        self.report.checks.push(Check {
            scenario,
            system: cluster.system,
            what: format!("{} → {topic}{tls}", generator.producer_name()),
            acknowledged: acked,
            consumed: consumed.records,
        });
        Ok(Produced {
            acked,
            mib_per_sec: elapsed_rate * self.plan.record_bytes as f64 / MIB,
            records_per_sec: elapsed_rate,
            broker_cpu,
        })
    }

    fn cpu_ms_per_mib(&self, p: &Produced) -> f64 {
        p.broker_cpu.as_secs_f64() * 1000.0 / (p.acked as f64 * self.plan.record_bytes as f64 / MIB)
    }

    /// Scenarios 1 and 4 share the single-broker clusters. With
    /// `--client-sasl-ssl`, those also serve clients on SASL_SSL, with the
    /// SCRAM user created on both before the first run.
    pub fn single_broker_throughput(&mut self, run_s1: bool, run_s4: bool) -> Result<()> {
        if self.client_sasl_ssl && self.sasl_ssl.is_none() {
            self.sasl_ssl = Some(SaslSsl::prepare(&self.programs, &self.run_dir.join("sasl-ssl"))?);
        }
        let keystore = self.sasl_ssl.as_ref().map(|m| m.keystore.clone());
        let mut clusters = self.start_both(1, 1, Security::Plain, &[], keystore.as_deref())?;
        if let Some(material) = &self.sasl_ssl {
            for cluster in &clusters {
                material.add_user(&self.tools, cluster)?;
            }
            // The whole story once, on the first of the two scenarios run.
            if run_s1 {
                self.report.note(1, crate::secure::setup_note());
                if run_s4 {
                    self.report.note(4, crate::secure::S4_NOTE);
                }
            } else {
                self.report.note(4, crate::secure::setup_note());
            }
        }
        if run_s1 {
            self.scenario1(&mut clusters)?;
        }
        if run_s4 {
            self.scenario4(&mut clusters)?;
        }
        stop_both(&self.run_dir, &mut clusters)?;
        Ok(())
    }

    fn scenario1(&mut self, clusters: &mut [Cluster; 2]) -> Result<()> {
        let plan = self.plan.clone();
        self.report.note(
            1,
            format!(
                "{} records of {} B per run into a fresh topic of {} partitions; both generators with their client defaults and acks=1",
                plan.s1_records, plan.record_bytes, plan.partitions
            ),
        );
        let runs = ThroughputRuns { scenario: 1, records: plan.s1_records, replication: 1, acks: "1" };
        self.max_throughput(runs, clusters, None, &mut [], "broker CPU per MiB")?;
        if self.profile {
            self.profile_strom(pick(clusters, System::Strom))?;
        }
        Ok(())
    }

    /// The rounds of a maximum-throughput scenario (1 and 2), after its
    /// warm-up: each run produces into a fresh topic with every generator,
    /// then reads it back. Records the throughput and the brokers' CPU per
    /// MiB; returns Kafka's median records/s per generator (plain clusters).
    /// With `tls` (the systems' clusters with TLS between brokers), those
    /// run in the same rounds and the same quantities also go to
    /// [`TlsMetric`]s over all four clusters. The `variants`' runs (Strom
    /// clusters of `--strom-variant`) go to [`VariantMetric`]s.
    fn max_throughput(
        &mut self,
        runs: ThroughputRuns,
        clusters: &mut [Cluster; 2],
        mut tls: Option<&mut [Cluster; 2]>,
        variants: &mut [Cluster],
        cpu_name: &str,
    ) -> Result<[f64; 2]> {
        let scenario = runs.scenario;
        let mut tput = Generator::ALL.map(|g| {
            Metric::new(scenario, format!("throughput, {}", g.producer_name()), "MiB/s", Better::Higher)
                .with_target(Target::AtLeast(1.0))
        });
        let mut cpu = Generator::ALL
            .map(|g| Metric::new(scenario, format!("{cpu_name}, {}", g.producer_name()), "ms/MiB", Better::Lower));
        // The target: at most 10 % of Strom's throughput lost to mTLS (issue 18).
        let mut tls_tput = Generator::ALL.map(|g| {
            TlsMetric::new(
                scenario,
                Secured::InternalTls,
                format!("throughput, {}", g.producer_name()),
                "MiB/s",
                Better::Higher,
            )
            .with_target(Target::AtLeast(0.9))
        });
        let mut tls_cpu = Generator::ALL.map(|g| {
            TlsMetric::new(
                scenario,
                Secured::InternalTls,
                format!("{cpu_name}, {}", g.producer_name()),
                "ms/MiB",
                Better::Lower,
            )
        });
        // Clients over SASL_SSL (`--client-sasl-ssl`, scenario 1): the Java
        // runs over both listeners; the target is Strom's over Kafka's.
        let java = Generator::Java.producer_name();
        let mut sasl_tput =
            TlsMetric::new(scenario, Secured::ClientSaslSsl, format!("throughput, {java}"), "MiB/s", Better::Higher)
                .with_target(Target::AtLeast(1.0));
        let mut sasl_cpu =
            TlsMetric::new(scenario, Secured::ClientSaslSsl, format!("{cpu_name}, {java}"), "ms/MiB", Better::Lower);
        let sasl_ssl = clusters.iter().all(|c| c.sasl_ssl_bootstrap().is_some());
        let mut kafka_rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        // Per variant: throughput per generator, then CPU per generator.
        let mut variant_metrics: Vec<Vec<VariantMetric>> = variants
            .iter()
            .map(|c| {
                let name = c.variant.as_ref().map(|v| v.name.as_str()).unwrap_or("?");
                tput.iter().chain(&cpu).map(|m| VariantMetric::like(m, name)).collect()
            })
            .collect();
        self.warm_up(runs, clusters, tls.as_deref_mut(), variants)?;
        for round in 0..self.plan.rounds {
            for run in self.produce_round(runs, clusters, tls.as_deref_mut(), variants, round, &round.to_string())? {
                let RoundRun { system, security, variant, listener, generator: i, produced: p } = run;
                let cpu_ms_per_mib = self.cpu_ms_per_mib(&p);
                if let Some(v) = variant.and_then(|v| variant_metrics.get_mut(v)) {
                    v[i].values.push(p.mib_per_sec);
                    v[Generator::ALL.len() + i].values.push(cpu_ms_per_mib);
                    continue;
                }
                if Generator::ALL[i] == Generator::Java {
                    sasl_tput.push(system, listener == Listener::SaslSsl, p.mib_per_sec);
                    sasl_cpu.push(system, listener == Listener::SaslSsl, cpu_ms_per_mib);
                }
                if listener == Listener::SaslSsl {
                    continue;
                }
                tls_tput[i].push(system, security != Security::Plain, p.mib_per_sec);
                tls_cpu[i].push(system, security != Security::Plain, cpu_ms_per_mib);
                if security != Security::Plain {
                    continue;
                }
                tput[i].push(system, p.mib_per_sec);
                cpu[i].push(system, cpu_ms_per_mib);
                if system == System::Kafka {
                    kafka_rates[i].push(p.records_per_sec);
                }
            }
        }
        tput.into_iter().chain(cpu).for_each(|m| self.report.metric(m));
        if tls.is_some() {
            tls_tput.into_iter().chain(tls_cpu).for_each(|m| self.report.tls_metric(m));
        }
        if sasl_ssl {
            [sasl_tput, sasl_cpu].into_iter().for_each(|m| self.report.tls_metric(m));
        }
        variant_metrics.into_iter().flatten().for_each(|m| self.report.variant_metric(m));
        let median = |v: &Vec<f64>| crate::report::median(v).unwrap_or(1000.0);
        Ok([median(&kafka_rates[0]), median(&kafka_rates[1])])
    }

    /// Unmeasured rounds before a maximum-throughput scenario's measured
    /// ones: the same runs, read back and checked like them, and nothing
    /// recorded. Kafka's brokers are JVMs that compile their hot paths as
    /// they run: without this, Kafka's throughput rose round over round
    /// (scenario 2, ProducerPerformance: 24, 44, 64 MiB/s), and the median
    /// measured its warm-up rather than its steady state.
    fn warm_up(
        &mut self,
        runs: ThroughputRuns,
        clusters: &mut [Cluster; 2],
        mut tls: Option<&mut [Cluster; 2]>,
        variants: &mut [Cluster],
    ) -> Result<()> {
        let warmup_rounds = self.plan.warmup_rounds;
        if warmup_rounds == 0 {
            return Ok(());
        }
        self.report.note(
            runs.scenario,
            format!(
                "before the measured rounds, each system takes {warmup_rounds} unmeasured warm-up round(s) of the same runs (both generators, {} records each, read back and checked), so that Kafka's JVM has compiled its hot paths; without it Kafka's throughput rose round over round",
                runs.records
            ),
        );
        for round in 0..warmup_rounds {
            self.produce_round(runs, clusters, tls.as_deref_mut(), variants, round, &format!("warmup-{round}"))?;
        }
        Ok(())
    }

    /// One round of maximum-throughput runs: each system, in `round`'s
    /// order, produces with every generator into a fresh topic
    /// (`s<scenario>-<generator>-<label>`, deleted once read back); with
    /// `tls` and `variants`, all of them in [`run_order`]. A cluster with a
    /// SASL_SSL listener also takes a Java run over it
    /// (`s<scenario>-java-<label>-sasl`), in [`Listener::order`]. Returns
    /// every run.
    fn produce_round(
        &mut self,
        runs: ThroughputRuns,
        clusters: &mut [Cluster; 2],
        tls: Option<&mut [Cluster; 2]>,
        variants: &mut [Cluster],
        round: usize,
        label: &str,
    ) -> Result<Vec<RoundRun>> {
        let ThroughputRuns { scenario, records, replication, acks } = runs;
        let partitions = self.plan.partitions;
        let topic_configs: &[(&str, &str)] = if replication > 1 { &[("min.insync.replicas", "2")] } else { &[] };
        let mut in_order: Vec<&mut Cluster> =
            clusters.iter_mut().chain(tls.into_iter().flatten()).chain(variants.iter_mut()).collect();
        run_order(&mut in_order, |c| (c.system, c.security, c.variant.as_ref().map(|v| v.index)), round);
        let mut results = Vec::new();
        for cluster in in_order {
            for listener in Listener::order(round, cluster.sasl_ssl_bootstrap().is_some()) {
                for (i, g) in Generator::ALL.into_iter().enumerate() {
                    let topic = match listener {
                        Listener::Plaintext => format!("s{scenario}-{}-{label}", g.slug()),
                        Listener::SaslSsl if g == Generator::Java => format!("s{scenario}-{}-{label}-sasl", g.slug()),
                        Listener::SaslSsl => continue,
                    };
                    client::create_topic(&cluster.bootstrap(), &topic, partitions, replication, topic_configs)?;
                    let produced = self.produce_run(scenario, cluster, g, listener, &topic, records, acks)?;
                    results.push(RoundRun {
                        system: cluster.system,
                        security: cluster.security,
                        variant: cluster.variant.as_ref().map(|v| v.index),
                        listener,
                        generator: i,
                        produced,
                    });
                    client::delete_topic(&cluster.bootstrap(), &topic)?;
                }
            }
        }
        Ok(results)
    }

    /// One more scenario-1 run on Strom under `perf record`; the hottest
    /// symbols go to the run directory and the report.
    fn profile_strom(&mut self, cluster: &mut Cluster) -> Result<()> {
        let topic = "s1-profile";
        client::create_topic(&cluster.bootstrap(), topic, self.plan.partitions, 1, &[])?;
        let (p, top) = self.under_perf(cluster, 1, |bench, cluster| {
            bench.produce_run(1, cluster, Generator::Librdkafka, Listener::Plaintext, topic, bench.plan.s1_records, "1")
        })?;
        client::delete_topic(&cluster.bootstrap(), topic)?;
        self.report.note(
            1,
            format!(
                "profile (perf, cpu-clock, one extra librdkafka run on Strom at {:.0} MiB/s): hottest symbols by self time: {top}",
                p.mib_per_sec
            ),
        );
        Ok(())
    }

    /// Runs `work` while `perf record` samples Strom's process; returns what
    /// `work` returned and the hottest symbols (the whole report goes to
    /// `profile-s<scenario>-strom.txt` in the run directory).
    fn under_perf<T>(
        &mut self,
        cluster: &mut Cluster,
        scenario: u8,
        work: impl FnOnce(&mut Bench, &mut Cluster) -> Result<T>,
    ) -> Result<(T, String)> {
        let pid = cluster.pid(0).context("Strom is not running")?;
        let data = self.run_dir.join(format!("perf-s{scenario}-strom.data"));
        let mut perf = std::process::Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-g", "-F", "499", "-p", &pid.to_string(), "-o"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting perf record")?;
        std::thread::sleep(Duration::from_millis(500));
        let result = work(self, cluster);
        let _ = std::process::Command::new("kill").args(["-INT", &perf.id().to_string()]).status();
        perf.wait().context("waiting for perf")?;
        let result = result?;
        let out = std::process::Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
                "-g",
                "none",
                "--percent-limit",
                "1",
                "-i",
            ])
            .arg(&data)
            .output()
            .context("running perf report")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let top: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('%'))
            .take(12)
            .map(|l| l.split_whitespace().filter(|w| *w != "-").collect::<Vec<_>>().join(" "))
            .collect();
        std::fs::write(self.run_dir.join(format!("profile-s{scenario}-strom.txt")), text.as_bytes())?;
        let _ = std::fs::remove_file(&data);
        let top = if top.is_empty() { "none (perf report gave nothing)".to_owned() } else { top.join("; ") };
        Ok((result, top))
    }

    fn scenario4(&mut self, clusters: &mut [Cluster; 2]) -> Result<()> {
        let plan = self.plan.clone();
        let records = plan.s4_backlog_bytes / plan.record_bytes as u64;
        let topic = "s4-backlog";
        self.report.note(
            4,
            format!(
                "backlog: {records} records of {} B ({:.2} GiB) in {} partitions, written once per system with librdkafka (acks=1); then every round reads it all from the start (from the page cache: the machine's RAM holds both backlogs). ConsumerPerformance's rate is over its fetch time (group join excluded), in a fresh group each run; librdkafka's assigns the partitions without a group",
                plan.record_bytes,
                plan.s4_backlog_bytes as f64 / (1u64 << 30) as f64,
                plan.partitions
            ),
        );
        let mut acked = [0u64; 2];
        for system in System::order(0) {
            let cluster = pick(clusters, system);
            client::create_topic(&cluster.bootstrap(), topic, plan.partitions, 1, &[])?;
            let spec = ProduceSpec::full_speed(topic, records, plan.record_bytes, "1");
            let o = client::produce(&cluster.bootstrap(), &spec, self.epoch)?;
            if o.failed > 0 {
                bail!("filling the backlog on {}: {} records failed", system.name(), o.failed);
            }
            acked[system as usize] = o.acked;
        }
        let mut tput = Generator::ALL.map(|g| {
            Metric::new(4, format!("consumer throughput, {}", g.consumer_name()), "MiB/s", Better::Higher)
                .with_target(Target::AtLeast(1.0))
        });
        // The broker's CPU per MiB read: steadier than throughput on 2 cores,
        // where the consumer takes most of the machine.
        let mut cpu = Generator::ALL
            .map(|g| Metric::new(4, format!("broker CPU per MiB, {}", g.consumer_name()), "ms/MiB", Better::Lower));
        let backlog_mib = |records: u64| records as f64 * plan.record_bytes as f64 / MIB;
        // Clients over SASL_SSL (`--client-sasl-ssl`): ConsumerPerformance
        // over both listeners, reading the same backlog.
        let mut sasl_tput = TlsMetric::new(
            4,
            Secured::ClientSaslSsl,
            format!("consumer throughput, {}", Generator::Java.consumer_name()),
            "MiB/s",
            Better::Higher,
        )
        .with_target(Target::AtLeast(1.2));
        let sasl_ssl = clusters.iter().all(|c| c.sasl_ssl_bootstrap().is_some());
        for round in 0..plan.rounds {
            for system in System::order(round) {
                for listener in Listener::order(round, sasl_ssl) {
                    let cluster = pick(clusters, system);
                    let (bootstrap, config) = self.via(cluster, listener)?;
                    let secured = listener == Listener::SaslSsl;
                    let suffix = if secured { "-sasl" } else { "" };
                    let cpu_before = cluster.stats()?.cpu;
                    let java = self.tools.consume(&JavaConsume {
                        bootstrap: &bootstrap,
                        topic,
                        records: acked[system as usize],
                        group: &format!("s4-{round}{suffix}"),
                        config,
                        read_committed: false,
                    })?;
                    let mib_per_sec = java.fetch_records_per_sec * plan.record_bytes as f64 / MIB;
                    sasl_tput.push(system, secured, mib_per_sec);
                    self.report.checks.push(Check {
                        scenario: 4,
                        system,
                        what: format!(
                            "ConsumerPerformance round {round}{}",
                            if secured { " over SASL_SSL" } else { "" }
                        ),
                        acknowledged: acked[system as usize],
                        consumed: java.records,
                    });
                    if secured {
                        continue;
                    }
                    let cpu_after = cluster.stats()?.cpu;
                    let java_cpu = cpu_after.saturating_sub(cpu_before);
                    tput[0].push(system, mib_per_sec);
                    cpu[0].push(system, java_cpu.as_secs_f64() * 1000.0 / backlog_mib(java.records));
                    let rdk = client::consume_all(&bootstrap, topic)?;
                    let rdk_cpu = cluster.stats()?.cpu.saturating_sub(cpu_after);
                    tput[1].push(system, backlog_mib(rdk.records) / rdk.elapsed.as_secs_f64());
                    cpu[1].push(system, rdk_cpu.as_secs_f64() * 1000.0 / backlog_mib(rdk.records));
                    self.report.checks.push(Check {
                        scenario: 4,
                        system,
                        what: format!("librdkafka round {round}"),
                        acknowledged: acked[system as usize],
                        consumed: rdk.records,
                    });
                }
                pick(clusters, system).check_alive()?;
            }
        }
        if self.profile {
            let cluster = pick(clusters, System::Strom);
            let (read, top) =
                self.under_perf(cluster, 4, |_, cluster| client::consume_all(&cluster.bootstrap(), topic))?;
            self.report.note(
                4,
                format!(
                    "profile (perf, cpu-clock, one extra librdkafka read on Strom at {:.0} MiB/s): hottest symbols by self time: {top}",
                    read.records as f64 * plan.record_bytes as f64 / MIB / read.elapsed.as_secs_f64()
                ),
            );
        }
        tput.into_iter().chain(cpu).for_each(|m| self.report.metric(m));
        if sasl_ssl {
            self.report.tls_metric(sasl_tput);
        }
        Ok(())
    }

    /// Scenarios 2, 3, 8 and 10 share the three-broker clusters; scenario 2
    /// runs whenever 3 does, since scenario 3's rate is half of Kafka's
    /// maximum in it. `--strom-variant` clusters run in scenarios 2 and 10,
    /// which come first; scenario 8 runs last.
    pub fn cluster_scenarios(&mut self, run_s2: bool, run_s3: bool, run_s8: bool, run_s10: bool) -> Result<()> {
        let settings = [("default.replication.factor", "3"), ("min.insync.replicas", "2")];
        let first = if run_s2 || run_s3 {
            2
        } else if run_s10 {
            10
        } else {
            8
        };
        let mut clusters = self.start_both(first, 3, Security::Plain, &settings, None)?;
        let mut variants =
            if run_s2 || run_s3 || run_s10 { self.start_variants(first, &settings)? } else { Vec::new() };
        if run_s2 || run_s3 {
            let mut tls = if self.internal_tls {
                Some(self.start_both(2, 3, Security::InternalTls, &settings, None)?)
            } else {
                None
            };
            self.scenario2(&mut clusters, tls.as_mut(), &mut variants)?;
            // Scenarios 3 and 10 measure the plain pair (and the variants),
            // without two more clusters running beside them.
            if let Some(tls) = tls.as_mut() {
                stop_both(&self.run_dir, tls)?;
            }
            drop(tls);
        }
        if run_s10 {
            self.scenario10(&mut clusters, &mut variants, first)?;
        }
        // Scenarios 3 and 8 measure the plain pair alone.
        stop_both(&self.run_dir, &mut variants)?;
        drop(variants);
        if run_s3 {
            self.scenario3(&mut clusters)?;
        }
        if run_s8 {
            self.scenario8(&mut clusters, first)?;
        }
        stop_both(&self.run_dir, &mut clusters)?;
        Ok(())
    }

    fn scenario2(
        &mut self,
        clusters: &mut [Cluster; 2],
        tls: Option<&mut [Cluster; 2]>,
        variants: &mut [Cluster],
    ) -> Result<()> {
        let plan = self.plan.clone();
        self.report.note(
            2,
            format!(
                "3 nodes per system, every node a broker and a controller voter; {} records of {} B per run into a fresh topic of {} partitions, replication factor 3, min.insync.replicas=2, acks=all; broker CPU summed over the 3 nodes",
                plan.s2_records, plan.record_bytes, plan.partitions
            ),
        );
        if tls.is_some() {
            self.report.note(
                2,
                "TLS between brokers (`--internal-tls`): two more clusters like these run beside them, certificates from `strom-broker certs` (CA, one ECDSA P-256 certificate per node, IP SAN 127.0.0.1). Strom mTLS: the internal plane (replication, Raft, Admin) on mutual TLS (`--internal-tls-ca/-cert/-key`, rustls). Kafka TLS: inter-broker traffic on an SSL listener and the KRaft controller listener on SSL, `ssl.client.auth=required`, PEM stores, hostname verification on (JDK TLS). Each side's default TLS version and cipher suites; clients connect in plaintext on all four. Each round runs the four clusters with each system's two back to back, every round in the reverse order of the one before. The Strom/Kafka table is the plain pair's; the one after it compares all four",
            );
        }
        if !variants.is_empty() {
            self.report.note(2, variants_note(&self.variants, "every generator"));
        }
        let runs = ThroughputRuns { scenario: 2, records: plan.s2_records, replication: 3, acks: "all" };
        let kafka_max = self.max_throughput(runs, clusters, tls, variants, "brokers' CPU per MiB")?;
        self.s2_kafka_max = Some(kafka_max);
        Ok(())
    }

    fn scenario3(&mut self, clusters: &mut [Cluster; 2]) -> Result<()> {
        let plan = self.plan.clone();
        let max = self.s2_kafka_max.context("scenario 3 needs scenario 2's Kafka maximum")?;
        let rates = max.map(|m| m / 2.0);
        self.report.note(
            3,
            format!(
                "the scenario-2 clusters; each generator sends at half of *its own* median maximum on Kafka in scenario 2: ProducerPerformance {:.0} records/s, librdkafka {:.0} records/s, for {} s per run measured, after {} s of warm-up records at the rate left out of the percentiles (ProducerPerformance's `--warmup-records`; the harness's own for librdkafka), acks=all, into a fresh topic like scenario 2's",
                rates[0], rates[1], plan.s3_seconds, S3_WARMUP_SECONDS
            ),
        );
        self.report.note(
            3,
            format!(
                "produce latency: ProducerPerformance's own steady-state percentiles (send() to callback, warm-up records excluded); librdkafka's from each record's *due* time to its delivery report (no coordinated omission), over the records after its first {S3_WARMUP_SECONDS} s at the rate (its warm-up: connections and metadata; the worst latency among them is reported on its own row). End to end: due time to arrival at a consumer reading the topic throughout (librdkafka, fetch.wait.max.ms=100, on the same machine), the same records. Before each run the disk is settled: 2 s (Kafka deletes a deleted topic's files 1 s later), then `sync`, so no run inherits another's writeback or file deletions"
            ),
        );
        let names = ["p50", "p99", "p99.9"];
        let quantiles = [0.5, 0.99, 0.999];
        let mut java: Vec<Metric> = names
            .iter()
            .map(|n| {
                let m = Metric::new(3, format!("produce latency {n}, ProducerPerformance"), "ms", Better::Lower);
                if *n == "p99" { m.with_target(Target::AtMost(0.5)) } else { m }
            })
            .collect();
        let mut rdk: Vec<Metric> = names
            .iter()
            .map(|n| {
                let m = Metric::new(3, format!("produce latency {n}, librdkafka"), "ms", Better::Lower);
                if *n == "p99" { m.with_target(Target::AtMost(0.5)) } else { m }
            })
            .collect();
        let mut e2e: Vec<Metric> = names
            .iter()
            .map(|n| Metric::new(3, format!("end-to-end latency {n}, librdkafka"), "ms", Better::Lower))
            .collect();
        let mut rdk_warmup = Metric::new(3, "produce latency, worst of the warm-up, librdkafka", "ms", Better::Lower);
        for round in 0..plan.rounds {
            for system in System::order(round) {
                let cluster = pick(clusters, system);
                let bootstrap = cluster.bootstrap();
                // ProducerPerformance at a fixed rate.
                let topic = format!("s3-java-{round}");
                process::settle_disk()?;
                client::create_topic(&bootstrap, &topic, plan.partitions, 3, &[("min.insync.replicas", "2")])?;
                let warmup = (rates[0] * S3_WARMUP_SECONDS) as u64;
                let records = (rates[0] * plan.s3_seconds) as u64 + warmup;
                let run = self.tools.produce(&JavaProduce {
                    bootstrap: &bootstrap,
                    topic: &topic,
                    records,
                    record_bytes: plan.record_bytes,
                    acks: "all",
                    rate: Some(rates[0]),
                    warmup_records: warmup,
                    config: None,
                    transactions: None,
                })?;
                let s = run.measured();
                for (m, v) in java.iter_mut().zip([s.p50_ms, s.p99_ms, s.p999_ms]) {
                    m.push(system, v);
                }
                let consumed = client::consume_all(&bootstrap, &topic)?;
                self.report.checks.push(Check {
                    scenario: 3,
                    system,
                    what: format!("ProducerPerformance → {topic}"),
                    acknowledged: run.all.records,
                    consumed: consumed.records,
                });
                client::delete_topic(&bootstrap, &topic)?;

                // librdkafka at a fixed rate, with the end-to-end probe.
                let topic = format!("s3-rdk-{round}");
                process::settle_disk()?;
                client::create_topic(&bootstrap, &topic, plan.partitions, 3, &[("min.insync.replicas", "2")])?;
                let probe = client::LatencyProbe::start(&bootstrap, &topic, plan.partitions, self.epoch)?;
                let warmup_records = (rates[1] * S3_WARMUP_SECONDS) as u64;
                let spec = ProduceSpec {
                    topic: topic.clone(),
                    records: (rates[1] * plan.s3_seconds) as u64 + warmup_records,
                    record_bytes: plan.record_bytes,
                    acks: "all",
                    rate: Some(rates[1]),
                    warmup_records,
                };
                let mut o = client::produce(&bootstrap, &spec, self.epoch)?;
                if o.failed > 0 {
                    bail!("{} records failed on {}", o.failed, system.name());
                }
                let mut arrivals = probe.finish(o.acked, o.measured_from_ns)?;
                rdk_warmup.push(system, o.warmup_max_us as f64 / 1000.0);
                for (i, q) in quantiles.iter().enumerate() {
                    rdk[i].push(system, quantile_ms(&mut o.latencies_us, *q).unwrap_or(f64::NAN));
                    e2e[i].push(system, quantile_ms(&mut arrivals, *q).unwrap_or(f64::NAN));
                }
                let consumed = client::consume_all(&bootstrap, &topic)?;
                self.report.checks.push(Check {
                    scenario: 3,
                    system,
                    what: format!("librdkafka → {topic} (probe measured {} after the warm-up)", arrivals.len()),
                    acknowledged: o.acked,
                    consumed: consumed.records,
                });
                client::delete_topic(&bootstrap, &topic)?;
                cluster.check_alive()?;
            }
        }
        java.into_iter().chain(rdk).chain([rdk_warmup]).chain(e2e).for_each(|m| self.report.metric(m));
        Ok(())
    }

    pub fn scenario5(&mut self) -> Result<()> {
        let plan = self.plan.clone();
        let mut clusters = self.start_both(5, 1, Security::Plain, &[], None)?;
        let topic = "s5-many";
        self.report.note(
            5,
            format!(
                "one topic of {} partitions (RF 1) per system, created after start; resident memory 5 s after creation, then {} records of {} B per run (client defaults, acks=1: ProducerPerformance's sticky partitioner, librdkafka's random one), all into that topic",
                plan.s5_partitions, plan.s5_records, plan.record_bytes
            ),
        );
        let mut created_rss = Metric::new(5, "resident memory with the partitions created", "MiB", Better::Lower);
        let mut loaded_rss = Metric::new(5, "resident memory after the load", "MiB", Better::Lower);
        let mut tput = Generator::ALL
            .map(|g| Metric::new(5, format!("produce throughput, {}", g.producer_name()), "MiB/s", Better::Higher));
        let mut total = [0u64; 2];
        for system in System::order(0) {
            let cluster = pick(&mut clusters, system);
            client::create_topic(&cluster.bootstrap(), topic, plan.s5_partitions, 1, &[])?;
            std::thread::sleep(Duration::from_secs(5));
            created_rss.push(system, cluster.stats()?.rss_kib as f64 / 1024.0);
        }
        for round in 0..plan.rounds {
            for system in System::order(round) {
                let cluster = pick(&mut clusters, system);
                let bootstrap = cluster.bootstrap();
                for (i, g) in Generator::ALL.into_iter().enumerate() {
                    let (acked, rate) = match g {
                        Generator::Java => {
                            let run = self.tools.produce(&JavaProduce {
                                bootstrap: &bootstrap,
                                topic,
                                records: plan.s5_records,
                                record_bytes: plan.record_bytes,
                                acks: "1",
                                rate: None,
                                warmup_records: 0,
                                config: None,
                                transactions: None,
                            })?;
                            (run.all.records, run.all.records_per_sec)
                        }
                        Generator::Librdkafka => {
                            let spec = ProduceSpec::full_speed(topic, plan.s5_records, plan.record_bytes, "1");
                            let o = client::produce(&bootstrap, &spec, self.epoch)?;
                            if o.failed > 0 {
                                bail!("{} records failed on {}", o.failed, system.name());
                            }
                            (o.acked, o.acked as f64 / o.elapsed.as_secs_f64())
                        }
                    };
                    total[system as usize] += acked;
                    tput[i].push(system, rate * plan.record_bytes as f64 / MIB);
                }
                cluster.check_alive()?;
            }
        }
        for system in System::order(0) {
            let cluster = pick(&mut clusters, system);
            loaded_rss.push(system, cluster.stats()?.rss_kib as f64 / 1024.0);
            let consumed = client::consume_all(&cluster.bootstrap(), topic)?;
            self.report.checks.push(Check {
                scenario: 5,
                system,
                what: format!("all runs → {topic}"),
                acknowledged: total[system as usize],
                consumed: consumed.records,
            });
        }
        stop_both(&self.run_dir, &mut clusters)?;
        tput.into_iter().chain([created_rss, loaded_rss]).for_each(|m| self.report.metric(m));
        Ok(())
    }

    pub fn scenario6(&mut self) -> Result<()> {
        let plan = self.plan.clone();
        self.report.note(
            6,
            format!(
                "each round, per system: a fresh node is started once to initialise its data directory (Kafka: `kafka-storage format`) and create a 1-partition topic, then stopped with SIGTERM; the timed start runs from spawning the process to the first acknowledged produce (acks=1) to that topic. Idle: resident memory {} s after that produce. Loaded: after {} records of {} B with librdkafka at full speed (acks=1). Kafka runs with its stock heap (-Xmx1G -Xms1G, as kafka-server-start.sh sets)",
                plan.s6_idle.as_secs(),
                plan.s6_load_records,
                plan.record_bytes
            ),
        );
        let mut startup = Metric::new(6, "start-up to first acknowledged produce", "s", Better::Lower);
        let mut idle = Metric::new(6, "resident memory, idle", "MiB", Better::Lower).with_target(Target::AtMost(0.2));
        let mut loaded =
            Metric::new(6, "resident memory, loaded", "MiB", Better::Lower).with_target(Target::AtMost(0.2));
        let mut peak = Metric::new(6, "peak resident memory (VmHWM)", "MiB", Better::Lower);
        for round in 0..plan.rounds {
            for system in System::order(round) {
                let dir = self.run_dir.join(format!("s6-{}-{round}", system.name().to_lowercase()));
                let mut cluster = Cluster::start(system, Security::Plain, &self.programs, &dir, 1, &[])?;
                client::create_topic(&cluster.bootstrap(), "s6-first", 1, 1, &[])?;
                cluster.stop(Duration::from_secs(60))?;
                let began = Instant::now();
                cluster.spawn_all()?;
                client::probe_produce(&cluster.bootstrap(), "s6-first", 1, Duration::from_secs(180))
                    .with_context(|| format!("{} after its start (round {round})", system.name()))?;
                startup.push(system, began.elapsed().as_secs_f64());
                cluster.check_alive()?;
                std::thread::sleep(plan.s6_idle);
                idle.push(system, cluster.stats()?.rss_kib as f64 / 1024.0);
                let topic = "s6-load";
                client::create_topic(&cluster.bootstrap(), topic, plan.partitions, 1, &[])?;
                let spec = ProduceSpec::full_speed(topic, plan.s6_load_records, plan.record_bytes, "1");
                let o = client::produce(&cluster.bootstrap(), &spec, self.epoch)?;
                let stats = cluster.stats()?;
                loaded.push(system, stats.rss_kib as f64 / 1024.0);
                peak.push(system, stats.hwm_kib as f64 / 1024.0);
                let consumed = client::consume_all(&cluster.bootstrap(), topic)?;
                self.report.checks.push(Check {
                    scenario: 6,
                    system,
                    what: format!("round {round} load"),
                    acknowledged: o.acked,
                    consumed: consumed.records,
                });
                cluster.stop(Duration::from_secs(60))?;
                broker_logs::keep(&self.run_dir, &cluster);
                drop(cluster);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        [startup, idle, loaded, peak].into_iter().for_each(|m| self.report.metric(m));
        Ok(())
    }

    pub fn scenario7(&mut self) -> Result<()> {
        let plan = self.plan.clone();
        let records = plan.s7_log_bytes / plan.record_bytes as u64;
        let topic = "s7-big";
        self.report.note(
            7,
            format!(
                "per system in turn (the disk holds one such log at a time): one node, a topic of {} partitions filled with {records} records of {} B ({:.1} GiB) by librdkafka (acks=1), then {} times: kill -9, restart on the same data, time from spawn until every partition takes a produce (acks=1) and the last acknowledged record of every partition can be fetched. No fsync on either side (both brokers' defaults), so the log is in the page cache when the process dies",
                plan.partitions,
                plan.record_bytes,
                plan.s7_log_bytes as f64 / (1u64 << 30) as f64,
                plan.rounds
            ),
        );
        let mut serving =
            Metric::new(7, "restart after kill -9 until serving", "s", Better::Lower).with_target(Target::AtMost(0.5));
        let mut produce_only = Metric::new(7, "… of which until every partition takes a produce", "s", Better::Lower);
        let free = crate::process::free_bytes(&self.run_dir)?;
        if free < plan.s7_log_bytes + plan.s7_log_bytes / 4 {
            bail!(
                "scenario 7 needs {:.1} GiB free under {} for its log (and a quarter more for indexes and slack); {:.1} GiB are free",
                plan.s7_log_bytes as f64 / (1u64 << 30) as f64 * 1.25,
                self.run_dir.display(),
                free as f64 / (1u64 << 30) as f64
            );
        }
        for system in System::order(0) {
            let dir = self.run_dir.join(format!("s7-{}", system.name().to_lowercase()));
            let mut cluster = Cluster::start(system, Security::Plain, &self.programs, &dir, 1, &[])?;
            let bootstrap = cluster.bootstrap();
            client::create_topic(&bootstrap, topic, plan.partitions, 1, &[])?;
            let spec = ProduceSpec::full_speed(topic, records, plan.record_bytes, "1");
            let o = client::produce(&bootstrap, &spec, self.epoch)?;
            if o.failed > 0 {
                bail!("filling the log on {}: {} records failed", system.name(), o.failed);
            }
            let mut acked = o.acked;
            for round in 0..plan.rounds {
                let last: Vec<i64> = client::end_offsets(&bootstrap, topic)?.iter().map(|e| e - 1).collect();
                cluster.kill9()?;
                let began = Instant::now();
                cluster.spawn_all()?;
                client::probe_produce(&bootstrap, topic, plan.partitions, Duration::from_secs(600))
                    .with_context(|| format!("{} after kill -9 (round {round})", system.name()))?;
                let took_produce = began.elapsed();
                cluster.check_alive()?;
                client::probe_fetch(&bootstrap, topic, &last, Duration::from_secs(600))?;
                let took_fetch = began.elapsed();
                acked += plan.partitions as u64;
                serving.push(system, took_fetch.as_secs_f64());
                produce_only.push(system, took_produce.as_secs_f64());
            }
            let consumed = client::consume_all(&bootstrap, topic)?;
            self.report.checks.push(Check {
                scenario: 7,
                system,
                what: format!("{topic} after {} restarts (fill + probes)", plan.rounds),
                acknowledged: acked,
                consumed: consumed.records,
            });
            cluster.stop(Duration::from_secs(120))?;
            broker_logs::keep(&self.run_dir, &cluster);
            drop(cluster);
            let _ = std::fs::remove_dir_all(&dir);
        }
        [serving, produce_only].into_iter().for_each(|m| self.report.metric(m));
        Ok(())
    }
}

/// The report's note on `--strom-variant` clusters; `runs` says what each
/// round runs on every cluster ("every generator", "every point").
pub(crate) fn variants_note(variants: &[StromVariant], runs: &str) -> String {
    let list: Vec<String> = variants
        .iter()
        .map(|v| {
            if v.args.is_empty() {
                format!("`{}`: no extra arguments", v.name)
            } else {
                format!("`{}`: `{}`", v.name, v.args.join(" "))
            }
        })
        .collect();
    format!(
        "Strom variants (`--strom-variant`): one more 3-node Strom cluster each, like the base Strom's but with these arguments appended to every node's command line (and not `--strom-args`): {}. Every round runs {runs} on every cluster, each system's clusters back to back (the variants right after the base Strom), every round in the reverse order of the one before; the Strom/Kafka table is the base pair's, and a table per variant follows",
        list.join("; ")
    )
}

pub(crate) fn pick(clusters: &mut [Cluster; 2], system: System) -> &mut Cluster {
    &mut clusters[system as usize]
}

/// Stops the clusters (SIGTERM, then SIGKILL after 60 s), keeps their node
/// logs under `run_dir`'s `logs/` and removes their directories.
pub(crate) fn stop_both(run_dir: &Path, clusters: &mut [Cluster]) -> Result<()> {
    for c in clusters.iter_mut() {
        c.stop(Duration::from_secs(60))?;
    }
    for c in clusters.iter() {
        broker_logs::keep(run_dir, c);
        let _ = std::fs::remove_dir_all(&c.dir);
    }
    Ok(())
}
