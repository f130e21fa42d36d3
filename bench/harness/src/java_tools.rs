//! Apache Kafka's own load generators, the ones every Kafka benchmark
//! quotes: `ProducerPerformance` (kafka-producer-perf-test.sh) and
//! `ConsumerPerformance` (kafka-consumer-perf-test.sh) from the kafka-tools
//! jar, run as `java` processes with the JVM options of those scripts
//! (`-Xmx512M`), and their summary lines parsed. Either tool can take a
//! client config file (`--command-config`: SASL_SSL, see [`crate::secure`]);
//! ProducerPerformance can run transactions and ConsumerPerformance read
//! with `isolation.level=read_committed` (scenario 8).
//!
//! With the broker's classpath as well ([`JavaTools::with_admin_classpath`]),
//! also `kafka-configs.sh`'s `kafka.admin.ConfigCommand`, which creates SCRAM
//! users on both systems the same way.
//!
//! It also compiles and runs the harness's own small Java programs
//! (`bench/java/`) against the same kafka-clients: scenario 9's
//! `GroupJoinSettle` ([`crate::group_join`]).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The tools' classpath, read from the file `run-kafka.sh tools-classpath` printed.
/// Every run's full output goes to `<log_dir>/java-<n>-<tool>.log`.
pub struct JavaTools {
    classpath: String,
    /// The broker's classpath (`run-kafka.sh classpath`), for ConfigCommand.
    admin_classpath: Option<String>,
    log_dir: PathBuf,
    runs: Cell<u32>,
}

/// ProducerPerformance's transactions: `--transactional-id` and
/// `--transaction-duration-ms` (a commit once a transaction is that old).
#[derive(Debug, Clone, Copy)]
pub struct JavaTransactions<'a> {
    pub id: &'a str,
    pub duration_ms: u64,
}

/// One ProducerPerformance run: `records` records of `record_bytes` to
/// `topic`, at `rate` records/s (`None`: as fast as it can). The first
/// `warmup_records` (0: none) are left out of the steady-state summary
/// (`--warmup-records`, Kafka 4.2 and later): the fresh JVM's class loading,
/// JIT and first metadata round trips land in them.
#[derive(Debug, Clone, Copy)]
pub struct JavaProduce<'a> {
    pub bootstrap: &'a str,
    pub topic: &'a str,
    pub records: u64,
    pub record_bytes: usize,
    pub acks: &'a str,
    pub rate: Option<f64>,
    pub warmup_records: u64,
    /// A client config file (`--command-config`), e.g. for SASL_SSL.
    pub config: Option<&'a Path>,
    /// Produce in transactions.
    pub transactions: Option<JavaTransactions<'a>>,
}

/// One ConsumerPerformance run: `records` records of `topic` in the fresh
/// group `group`, with the client config file `config` if any, and
/// `isolation.level=read_committed` if `read_committed`.
#[derive(Debug, Clone, Copy)]
pub struct JavaConsume<'a> {
    pub bootstrap: &'a str,
    pub topic: &'a str,
    pub records: u64,
    pub group: &'a str,
    pub config: Option<&'a Path>,
    pub read_committed: bool,
}

/// What a ProducerPerformance run printed: the summary of the whole run and,
/// with `--warmup-records`, the summary of the records after the warm-up.
#[derive(Debug, Default, Clone)]
pub struct ProducerRun {
    pub all: ProducerSummary,
    /// Present when the run had warm-up records.
    pub steady: Option<ProducerSummary>,
}

impl ProducerRun {
    /// The steady-state summary when there is one, else the whole run's.
    pub fn measured(&self) -> &ProducerSummary {
        self.steady.as_ref().unwrap_or(&self.all)
    }
}

/// One of ProducerPerformance's summary lines.
#[derive(Debug, Default, Clone)]
pub struct ProducerSummary {
    /// Records acknowledged ("records sent" counts successful callbacks only).
    pub records: u64,
    pub records_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// ConsumerPerformance's summary line.
#[derive(Debug, Default, Clone)]
pub struct ConsumerSummary {
    pub records: u64,
    /// Records per second over the fetch time (group join excluded).
    pub fetch_records_per_sec: f64,
}

impl JavaTools {
    pub fn load(classpath_file: &Path, log_dir: &Path) -> Result<JavaTools> {
        let text = std::fs::read_to_string(classpath_file)
            .with_context(|| format!("reading the kafka-tools classpath {}", classpath_file.display()))?;
        let classpath = text.trim().to_owned();
        if classpath.is_empty() {
            bail!("{} is empty: rerun `bench/kafka/run-kafka.sh tools-classpath`", classpath_file.display());
        }
        Ok(JavaTools { classpath, admin_classpath: None, log_dir: log_dir.to_owned(), runs: Cell::new(0) })
    }

    /// Adds the broker's classpath, read from the file `run-kafka.sh
    /// classpath` printed, for [`JavaTools::config_command`].
    pub fn with_admin_classpath(mut self, classpath_file: &Path) -> Result<JavaTools> {
        let text = std::fs::read_to_string(classpath_file)
            .with_context(|| format!("reading Kafka's broker classpath {}", classpath_file.display()))?;
        let classpath = text.trim().to_owned();
        if classpath.is_empty() {
            bail!("{} is empty: rerun `bench/kafka/run-kafka.sh classpath`", classpath_file.display());
        }
        self.admin_classpath = Some(classpath);
        Ok(self)
    }

    fn run(&self, class: &str, args: &[String]) -> Result<(String, String)> {
        self.run_with(&self.classpath, class, args)
    }

    fn run_with(&self, classpath: &str, class: &str, args: &[String]) -> Result<(String, String)> {
        let out = Command::new("java")
            .args(["-Xmx512M", "-cp", classpath, class])
            .args(args)
            .output()
            .with_context(|| format!("running java {class}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let tool = class.rsplit('.').next().unwrap_or(class);
        let log = self.log_dir.join(format!("java-{n:03}-{tool}.log"));
        std::fs::write(&log, format!("{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}", args.join(" ")))
            .with_context(|| format!("writing {}", log.display()))?;
        if !out.status.success() {
            bail!("{class} failed ({}); its output is in {}", out.status, log.display());
        }

        Ok((stdout, stderr))
    }

    /// Runs ProducerPerformance as `spec` says.
    pub fn produce(&self, spec: &JavaProduce) -> Result<ProducerRun> {
        let JavaProduce { bootstrap, topic, records, record_bytes, acks, rate, warmup_records, config, transactions } =
            *spec;
        let mut args: Vec<String> = vec![
            "--topic".into(),
            topic.into(),
            "--num-records".into(),
            records.to_string(),
            "--record-size".into(),
            record_bytes.to_string(),
            "--throughput".into(),
            rate.map(|r| (r.round() as i64).max(1).to_string()).unwrap_or_else(|| "-1".into()),
            "--producer-props".into(),
            format!("bootstrap.servers={bootstrap}"),
            format!("acks={acks}"),
        ];
        if warmup_records > 0 {
            args.extend(["--warmup-records".into(), warmup_records.to_string()]);
        }
        if let Some(config) = config {
            args.extend(["--command-config".into(), config.display().to_string()]);
        }
        if let Some(JavaTransactions { id, duration_ms }) = transactions {
            args.extend([
                "--transactional-id".into(),
                id.into(),
                "--transaction-duration-ms".into(),
                duration_ms.to_string(),
            ]);
        }
        let (stdout, stderr) = self.run("org.apache.kafka.tools.ProducerPerformance", &args)?;
        let run = parse_producer_run(&stdout)
            .with_context(|| format!("no summary line from ProducerPerformance:\n{stdout}\n{stderr}"))?;
        // Only acknowledged sends count as "records sent"; a failed one is
        // printed (retried errors show as WARN lines and are not failures).
        if run.all.records != records {
            bail!(
                "ProducerPerformance: {} of {records} records acknowledged; the failures are in its output in {}",
                run.all.records,
                self.log_dir.display()
            );
        }
        if warmup_records > 0 && run.steady.is_none() {
            bail!(
                "ProducerPerformance printed no steady-state summary despite --warmup-records {warmup_records} \
                 (it needs Kafka 4.2 or later); its output is in {}",
                self.log_dir.display()
            );
        }
        Ok(run)
    }

    /// Runs ConsumerPerformance as `spec` says.
    pub fn consume(&self, spec: &JavaConsume) -> Result<ConsumerSummary> {
        let JavaConsume { bootstrap, topic, records, group, config, read_committed } = *spec;
        let mut args: Vec<String> = vec![
            "--bootstrap-server".into(),
            bootstrap.into(),
            "--topic".into(),
            topic.into(),
            "--messages".into(),
            records.to_string(),
            "--group".into(),
            group.into(),
            "--timeout".into(),
            "60000".into(),
        ];
        if let Some(config) = config {
            args.extend(["--command-config".into(), config.display().to_string()]);
        }
        if read_committed {
            args.extend(["--command-property".into(), "isolation.level=read_committed".into()]);
        }
        let (stdout, stderr) = self.run("org.apache.kafka.tools.ConsumerPerformance", &args)?;
        parse_consumer_summary(&stdout)
            .with_context(|| format!("no summary line from ConsumerPerformance:\n{stdout}\n{stderr}"))
    }

    /// Compiles the one Java file `source` against the tools' classpath
    /// (which holds kafka-clients) into the class directory `classes`.
    pub fn compile(&self, source: &Path, classes: &Path) -> Result<()> {
        let out = Command::new("javac")
            .args(["-d".as_ref(), classes.as_os_str(), "-cp".as_ref(), self.classpath.as_ref(), source.as_os_str()])
            .output()
            .with_context(|| format!("running javac on {}", source.display()))?;
        if !out.status.success() {
            bail!("javac {} failed ({}): {}", source.display(), out.status, String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Runs `class` from the class directory `classes` (see
    /// [`JavaTools::compile`]) with the tools' classpath behind it; its
    /// stdout. A non-zero exit is an error naming the log with its output.
    pub fn run_compiled(&self, classes: &Path, class: &str, args: &[String]) -> Result<String> {
        let classpath = format!("{}:{}", classes.display(), self.classpath);
        let (stdout, _) = self.run_with(&classpath, class, args)?;
        Ok(stdout)
    }

    /// Runs `kafka-configs.sh` (`kafka.admin.ConfigCommand`, from the
    /// broker's jars) with `args`; its stdout. Needs
    /// [`JavaTools::with_admin_classpath`].
    pub fn config_command(&self, args: &[String]) -> Result<String> {
        let classpath = self
            .admin_classpath
            .as_deref()
            .context("ConfigCommand needs Kafka's broker classpath (JavaTools::with_admin_classpath)")?;
        let (stdout, _) = self.run_with(classpath, "kafka.admin.ConfigCommand", args)?;
        Ok(stdout)
    }
}

/// Parses ProducerPerformance's summary lines: the whole run's (required)
/// and the steady state's (`N steady state records sent, ...`, printed after
/// it when the run had warm-up records).
pub fn parse_producer_run(stdout: &str) -> Option<ProducerRun> {
    let summaries = || stdout.lines().filter(|l| l.contains("records sent") && l.contains("99.9th"));
    let all = summaries().rfind(|l| !l.contains("steady state")).and_then(parse_producer_summary)?;
    let steady = summaries().rfind(|l| l.contains("steady state records sent")).and_then(parse_producer_summary);
    Some(ProducerRun { all, steady })
}

/// Parses one summary line, e.g. `1000 records sent, 500.0 records/sec (0.49
/// MB/sec), 3.10 ms avg latency, 9.00 ms max latency, 3 ms 50th, 8 ms 95th, 9
/// ms 99th, 9 ms 99.9th.`
fn parse_producer_summary(line: &str) -> Option<ProducerSummary> {
    let parts: Vec<&str> = line.split(", ").collect();
    let first_number = |s: &str| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok());
    let records = first_number(parts.first()?)? as u64;
    let rate_part = parts.get(1)?;
    let records_per_sec = first_number(rate_part)?;
    let percentile =
        |suffix: &str| parts.iter().find(|p| p.trim_end_matches('.').ends_with(suffix)).and_then(|p| first_number(p));
    Some(ProducerSummary {
        records,
        records_per_sec,
        p50_ms: percentile(" 50th")?,
        p99_ms: percentile(" 99th")?,
        p999_ms: percentile(" 99.9th")?,
    })
}

/// Parses ConsumerPerformance's result line (the one after the header
/// `start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
/// nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec`).
pub fn parse_consumer_summary(stdout: &str) -> Option<ConsumerSummary> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("start.time"));
    let header: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let values: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let get = |name: &str| -> Option<f64> {
        let i = header.iter().position(|h| *h == name)?;
        values.get(i)?.parse().ok()
    };
    Some(ConsumerSummary {
        records: get("data.consumed.in.nMsg")? as u64,
        fetch_records_per_sec: get("fetch.nMsg.sec")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_summary_is_parsed_and_progress_lines_are_not() {
        let out = "\
49123 records sent, 9824.6 records/sec (9.59 MB/sec), 2.5 ms avg latency, 40.0 ms max latency.
100000 records sent, 9990.009990 records/sec (9.76 MB/sec), 2.31 ms avg latency, 41.00 ms max latency, 2 ms 50th, 4 ms 95th, 12 ms 99th, 38 ms 99.9th.
";
        let run = parse_producer_run(out).expect("a summary");
        let s = &run.all;
        assert_eq!(s.records, 100_000);
        assert!((s.records_per_sec - 9990.00999).abs() < 1e-3);
        assert_eq!((s.p50_ms, s.p99_ms, s.p999_ms), (2.0, 12.0, 38.0));
        assert!(run.steady.is_none());
        assert!(parse_producer_run("49123 records sent, 9824.6 records/sec (9.59 MB/sec).").is_none());
    }

    #[test]
    fn steady_state_summary_is_kept_apart_from_the_whole_run() {
        let out = "\
Warmup first 20000 records. Steady state results will print after the complete test summary.
49123 records sent, 9824.6 records/sec (9.59 MB/sec), 2.5 ms avg latency, 300.0 ms max latency.
In steady state.
100000 records sent, 9990.009990 records/sec (9.76 MB/sec), 5.31 ms avg latency, 300.00 ms max latency, 2 ms 50th, 4 ms 95th, 250 ms 99th, 290 ms 99.9th.
80000 steady state records sent, 9999.000000 records/sec (9.76 MB/sec), 1.90 ms avg latency, 15.00 ms max latency, 2 ms 50th, 3 ms 95th, 6 ms 99th, 14 ms 99.9th.
";
        let run = parse_producer_run(out).expect("a summary");
        assert_eq!(run.all.records, 100_000);
        assert_eq!(run.all.p99_ms, 250.0);
        let steady = run.steady.as_ref().expect("a steady-state summary");
        assert_eq!(steady.records, 80_000);
        assert_eq!((steady.p50_ms, steady.p99_ms, steady.p999_ms), (2.0, 6.0, 14.0));
        assert_eq!(run.measured().p99_ms, 6.0);
    }

    #[test]
    fn consumer_summary_is_read_by_column_name() {
        let out = "\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-26 12:00:00:000, 2026-11-26 12:00:04:000, 1953.1250, 488.2812, 2000000, 500000.0000, 120, 3880, 503.3827, 515463.9175
";
        let s = parse_consumer_summary(out).expect("a summary");
        assert_eq!(s.records, 2_000_000);
        assert!((s.fetch_records_per_sec - 515463.9175).abs() < 1e-6);
        assert!(parse_consumer_summary("no header here").is_none());
    }
}
