//! Apache Kafka's own load generators, the ones every Kafka benchmark
//! quotes: `ProducerPerformance` (kafka-producer-perf-test.sh) and
//! `ConsumerPerformance` (kafka-consumer-perf-test.sh) from the kafka-tools
//! jar, run as `java` processes with the JVM options of those scripts
//! (`-Xmx512M`), and their summary lines parsed.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The tools' classpath, read from the file `run-kafka.sh tools-classpath` printed.
/// Every run's full output goes to `<log_dir>/java-<n>-<tool>.log`.
pub struct JavaTools {
    classpath: String,
    log_dir: PathBuf,
    runs: Cell<u32>,
}

/// ProducerPerformance's summary line.
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
        Ok(JavaTools { classpath, log_dir: log_dir.to_owned(), runs: Cell::new(0) })
    }

    fn run(&self, class: &str, args: &[String]) -> Result<(String, String)> {
        let out = Command::new("java")
            .args(["-Xmx512M", "-cp", &self.classpath, class])
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

    /// Runs ProducerPerformance: `records` records of `record_bytes` to
    /// `topic`, at `rate` records/s (`None`: as fast as it can).
    pub fn produce(
        &self,
        bootstrap: &str,
        topic: &str,
        records: u64,
        record_bytes: usize,
        acks: &str,
        rate: Option<f64>,
    ) -> Result<ProducerSummary> {
        let args: Vec<String> = vec![
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
        let (stdout, stderr) = self.run("org.apache.kafka.tools.ProducerPerformance", &args)?;
        let summary = parse_producer_summary(&stdout)
            .with_context(|| format!("no summary line from ProducerPerformance:\n{stdout}\n{stderr}"))?;
        // Only acknowledged sends count as "records sent"; a failed one is
        // printed (retried errors show as WARN lines and are not failures).
        if summary.records != records {
            bail!(
                "ProducerPerformance: {} of {records} records acknowledged; the failures are in its output in {}",
                summary.records,
                self.log_dir.display()
            );
        }
        Ok(summary)
    }

    /// Runs ConsumerPerformance: reads `records` records of `topic` in a fresh group.
    pub fn consume(&self, bootstrap: &str, topic: &str, records: u64, group: &str) -> Result<ConsumerSummary> {
        let args: Vec<String> = vec![
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
        let (stdout, stderr) = self.run("org.apache.kafka.tools.ConsumerPerformance", &args)?;
        parse_consumer_summary(&stdout)
            .with_context(|| format!("no summary line from ConsumerPerformance:\n{stdout}\n{stderr}"))
    }
}

/// Parses ProducerPerformance's final line, e.g. `1000 records sent, 500.0
/// records/sec (0.49 MB/sec), 3.10 ms avg latency, 9.00 ms max latency, 3 ms
/// 50th, 8 ms 95th, 9 ms 99th, 9 ms 99.9th.`
pub fn parse_producer_summary(stdout: &str) -> Option<ProducerSummary> {
    let line = stdout.lines().rev().find(|l| l.contains("records sent") && l.contains("99.9th"))?;
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
        let s = parse_producer_summary(out).expect("a summary");
        assert_eq!(s.records, 100_000);
        assert!((s.records_per_sec - 9990.00999).abs() < 1e-3);
        assert_eq!((s.p50_ms, s.p99_ms, s.p999_ms), (2.0, 12.0, 38.0));
        assert!(parse_producer_summary("49123 records sent, 9824.6 records/sec (9.59 MB/sec).").is_none());
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
