//! What a run measured, and the Markdown report: per metric the median and
//! spread (min–max) of each system's runs, the Strom/Kafka ratio of the
//! medians and, where the issue sets one, whether the target is met; then
//! the correctness checks (records consumed = records acknowledged).
//!
//! With `--internal-tls`, scenario 2 also has [`TlsMetric`]s: the same
//! quantity on four clusters (each system with plain and with TLS traffic
//! between its brokers), reported as the ratios TLS/plain per system and
//! Strom mTLS/Kafka TLS. With `--client-sasl-ssl`, scenarios 1 and 4 have
//! them too, of kind [`Secured::ClientSaslSsl`]: the Java tools' runs over
//! each system's PLAINTEXT and SASL_SSL listeners, with the target on Strom
//! SASL_SSL/Kafka SASL_SSL.
//!
//! A [`Metric`] may belong to a point of a scenario (scenario 10's partition
//! and producer counts): those render as one wide table, a row per point.
//! With `--strom-variant`, [`VariantMetric`]s hold a variant cluster's
//! values of a metric, rendered per variant beside the base Strom's and
//! Kafka's values of the same metric, with variant/base and variant/Kafka.

use std::fmt::Write as _;

use serde::Serialize;

use crate::process::System;

/// Whether a bigger number is better for a metric.
#[derive(Clone, Copy, Debug, Serialize)]
pub enum Better {
    Higher,
    Lower,
}

/// A bound on the Strom/Kafka ratio of a metric.
#[derive(Clone, Copy, Debug, Serialize)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(t) => ratio >= t,
            Target::AtMost(t) => ratio <= t,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtLeast(t) => format!("≥ {t}"),
            Target::AtMost(t) => format!("≤ {t}"),
        }
    }
}

/// One measured quantity with every run's value on both systems.
#[derive(Debug, Serialize)]
pub struct Metric {
    pub scenario: u8,
    /// The point of the scenario (e.g. "64 partitions, 1 producer"), if it
    /// has several.
    pub point: Option<String>,
    pub name: String,
    pub unit: &'static str,
    pub better: Better,
    pub target: Option<Target>,
    pub strom: Vec<f64>,
    pub kafka: Vec<f64>,
}

impl Metric {
    pub fn new(scenario: u8, name: impl Into<String>, unit: &'static str, better: Better) -> Metric {
        Metric {
            scenario,
            point: None,
            name: name.into(),
            unit,
            better,
            target: None,
            strom: Vec::new(),
            kafka: Vec::new(),
        }
    }

    pub fn with_point(mut self, point: impl Into<String>) -> Metric {
        self.point = Some(point.into());
        self
    }

    /// How tables name it: "name (unit)", after "point: " if it has one.
    fn label(&self) -> String {
        match &self.point {
            Some(p) => format!("{p}: {} ({})", self.name, self.unit),
            None => format!("{} ({})", self.name, self.unit),
        }
    }

    pub fn with_target(mut self, target: Target) -> Metric {
        self.target = Some(target);
        self
    }

    pub fn push(&mut self, system: System, value: f64) {
        match system {
            System::Strom => self.strom.push(value),
            System::Kafka => self.kafka.push(value),
        }
    }

    /// Strom's median over Kafka's.
    pub fn ratio(&self) -> Option<f64> {
        let (s, k) = (median(&self.strom)?, median(&self.kafka)?);
        (k != 0.0).then_some(s / k)
    }
}

/// A `--strom-variant` cluster's values of the [`Metric`] with the same
/// scenario, point and name (which holds the base Strom's and Kafka's).
#[derive(Debug, Serialize)]
pub struct VariantMetric {
    pub scenario: u8,
    pub variant: String,
    pub point: Option<String>,
    pub name: String,
    pub values: Vec<f64>,
}

impl VariantMetric {
    /// An empty one for `variant`, keyed like `of`.
    pub fn like(of: &Metric, variant: &str) -> VariantMetric {
        VariantMetric {
            scenario: of.scenario,
            variant: variant.to_owned(),
            point: of.point.clone(),
            name: of.name.clone(),
            values: Vec::new(),
        }
    }

    fn is_of(&self, m: &Metric) -> bool {
        self.scenario == m.scenario && self.point == m.point && self.name == m.name
    }
}

/// What a [`TlsMetric`] compares with plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Secured {
    /// TLS between brokers (`--internal-tls`), on clusters of their own.
    /// The target bounds Strom mTLS/Strom plain.
    InternalTls,
    /// Clients on a SASL_SSL listener with SCRAM-SHA-512
    /// (`--client-sasl-ssl`). The target bounds Strom SASL_SSL/Kafka SASL_SSL.
    ClientSaslSsl,
}

impl Secured {
    const ALL: [Secured; 2] = [Secured::InternalTls, Secured::ClientSaslSsl];

    /// How the table names each system's secured runs.
    fn labels(self) -> [&'static str; 2] {
        match self {
            Secured::InternalTls => ["Strom mTLS", "Kafka TLS"],
            Secured::ClientSaslSsl => ["Strom SASL_SSL", "Kafka SASL_SSL"],
        }
    }

    fn title(self) -> &'static str {
        match self {
            Secured::InternalTls => "The cost of TLS between brokers, same run",
            Secured::ClientSaslSsl => "Clients over SASL_SSL (SCRAM-SHA-512) against plaintext, same brokers, same run",
        }
    }
}

/// One measured quantity on four clusters or listeners: both systems, each
/// plain and secured (as [`Secured`] says). The target, if any, bounds the
/// ratio [`TlsMetric::target_ratio`] picks.
#[derive(Debug, Serialize)]
pub struct TlsMetric {
    pub scenario: u8,
    pub kind: Secured,
    pub name: String,
    pub unit: &'static str,
    pub better: Better,
    pub target: Option<Target>,
    pub strom_plain: Vec<f64>,
    pub strom_tls: Vec<f64>,
    pub kafka_plain: Vec<f64>,
    pub kafka_tls: Vec<f64>,
}

impl TlsMetric {
    pub fn new(scenario: u8, kind: Secured, name: impl Into<String>, unit: &'static str, better: Better) -> TlsMetric {
        TlsMetric {
            scenario,
            kind,
            name: name.into(),
            unit,
            better,
            target: None,
            strom_plain: Vec::new(),
            strom_tls: Vec::new(),
            kafka_plain: Vec::new(),
            kafka_tls: Vec::new(),
        }
    }

    pub fn with_target(mut self, target: Target) -> TlsMetric {
        self.target = Some(target);
        self
    }

    /// Adds a run of `system`, `secured` or plain.
    pub fn push(&mut self, system: System, secured: bool, value: f64) {
        match (system, secured) {
            (System::Strom, false) => self.strom_plain.push(value),
            (System::Strom, true) => self.strom_tls.push(value),
            (System::Kafka, false) => self.kafka_plain.push(value),
            (System::Kafka, true) => self.kafka_tls.push(value),
        }
    }

    /// The ratio the target bounds: Strom secured/plain for
    /// [`Secured::InternalTls`], Strom secured/Kafka secured for
    /// [`Secured::ClientSaslSsl`].
    pub fn target_ratio(&self) -> Option<f64> {
        match self.kind {
            Secured::InternalTls => self.strom_ratio(),
            Secured::ClientSaslSsl => self.tls_ratio(),
        }
    }

    /// Strom mTLS's median over Strom plain's.
    pub fn strom_ratio(&self) -> Option<f64> {
        ratio_of_medians(&self.strom_tls, &self.strom_plain)
    }

    /// Kafka TLS's median over Kafka plain's.
    pub fn kafka_ratio(&self) -> Option<f64> {
        ratio_of_medians(&self.kafka_tls, &self.kafka_plain)
    }

    /// Strom mTLS's median over Kafka TLS's.
    pub fn tls_ratio(&self) -> Option<f64> {
        ratio_of_medians(&self.strom_tls, &self.kafka_tls)
    }
}

fn ratio_of_medians(over: &[f64], under: &[f64]) -> Option<f64> {
    let (a, b) = (median(over)?, median(under)?);
    (b != 0.0).then_some(a / b)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The `q` quantile (0..=1) of latencies in microseconds, in milliseconds.
pub fn quantile_ms(latencies_us: &mut [u32], q: f64) -> Option<f64> {
    if latencies_us.is_empty() {
        return None;
    }
    latencies_us.sort_unstable();
    let rank = ((q * latencies_us.len() as f64).ceil() as usize).clamp(1, latencies_us.len());
    Some(latencies_us[rank - 1] as f64 / 1000.0)
}

/// A correctness check: what the producer had acknowledged against what a
/// consumer read back.
#[derive(Debug, Serialize)]
pub struct Check {
    pub scenario: u8,
    pub system: System,
    pub what: String,
    pub acknowledged: u64,
    pub consumed: u64,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.acknowledged == self.consumed
    }
}

/// Everything a run produced.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub metrics: Vec<Metric>,
    pub checks: Vec<Check>,
    /// Quantities measured with and without TLS between brokers.
    pub tls_metrics: Vec<TlsMetric>,
    /// Quantities measured on `--strom-variant` clusters.
    pub variant_metrics: Vec<VariantMetric>,
    /// Free-form lines per scenario (settings used, rates chosen).
    pub notes: Vec<(u8, String)>,
}

/// Scenario titles, by number.
pub fn scenario_title(n: u8) -> &'static str {
    match n {
        1 => "1. Single broker, RF 1, 1 KiB records, acks=1, maximum throughput",
        2 => "2. Three brokers, RF 3, min.insync.replicas 2, acks=all, maximum throughput",
        3 => "3. Three brokers, acks=all, fixed rate at half of Kafka's maximum from (2): latency",
        4 => "4. Consumer throughput reading a backlog (single broker)",
        8 => {
            "8. Three brokers, transactions: transactional produce (acks=all, 100 ms transactions), then a read_committed consume of it"
        }
        5 => "5. 1,000 partitions (single broker): memory and produce throughput",
        6 => "6. Resident memory idle and loaded; start-up time to the first successful produce",
        7 => "7. Restart after kill -9 with a large log: time until serving again",
        10 => {
            "10. Scaling: three brokers, RF 3, acks=all, librdkafka at maximum throughput over partition and producer counts"
        }
        9 => {
            "9. Group join settle time: a 4th Java consumer joins a stable group of 3 (12 partitions), classic vs KIP-848 consumer protocol"
        }
        _ => "other",
    }
}

impl Report {
    pub fn metric(&mut self, metric: Metric) {
        self.metrics.push(metric);
    }

    pub fn tls_metric(&mut self, metric: TlsMetric) {
        self.tls_metrics.push(metric);
    }

    pub fn variant_metric(&mut self, metric: VariantMetric) {
        self.variant_metrics.push(metric);
    }

    pub fn note(&mut self, scenario: u8, text: impl Into<String>) {
        self.notes.push((scenario, text.into()));
    }

    /// True when every correctness check passed.
    pub fn checks_passed(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }

    /// The Markdown tables (without the run's header).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let mut scenarios: Vec<u8> = self.metrics.iter().map(|m| m.scenario).collect();
        scenarios.dedup();
        for s in scenarios {
            let _ = writeln!(out, "### {}\n", scenario_title(s));
            for (_, note) in self.notes.iter().filter(|(n, _)| *n == s) {
                let _ = writeln!(out, "- {note}");
            }
            if self.notes.iter().any(|(n, _)| *n == s) {
                out.push('\n');
            }
            let plain: Vec<&Metric> = self.metrics.iter().filter(|m| m.scenario == s && m.point.is_none()).collect();
            if !plain.is_empty() {
                let _ = writeln!(
                    out,
                    "| metric | Strom median (min–max) | Kafka median (min–max) | Strom/Kafka | better | target |"
                );
                let _ = writeln!(out, "|---|---|---|---|---|---|");
                for m in plain {
                    let ratio = m.ratio();
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} |",
                        m.label(),
                        spread(&m.strom),
                        spread(&m.kafka),
                        ratio_cell(ratio),
                        better(m.better),
                        target_cell(m.target, ratio)
                    );
                }
                out.push('\n');
            }
            self.points_markdown(s, &mut out);
            self.tls_markdown(s, &mut out);
            self.variants_markdown(s, &mut out);
        }
        let _ = writeln!(out, "### Correctness: records consumed = records acknowledged\n");
        let _ = writeln!(out, "| scenario | system | run | acknowledged | consumed | |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for c in &self.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                c.scenario,
                c.system.name(),
                c.what,
                c.acknowledged,
                c.consumed,
                if c.passed() { "ok" } else { "**MISMATCH**" }
            );
        }
        out
    }
}

impl Report {
    /// Scenario `s`'s metrics with points, as one table: a row per point,
    /// per metric name Strom's and Kafka's median (min–max) and Strom/Kafka.
    fn points_markdown(&self, s: u8, out: &mut String) {
        let metrics: Vec<&Metric> = self.metrics.iter().filter(|m| m.scenario == s && m.point.is_some()).collect();
        let mut points: Vec<&str> = Vec::new();
        let mut names: Vec<(&str, &str, Better)> = Vec::new();
        for m in &metrics {
            let p = m.point.as_deref().unwrap_or_default();
            if !points.contains(&p) {
                points.push(p);
            }
            if !names.iter().any(|(n, _, _)| *n == m.name) {
                names.push((&m.name, m.unit, m.better));
            }
        }
        if points.is_empty() {
            return;
        }
        let mut header = "| point |".to_owned();
        for (name, unit, b) in &names {
            let _ = write!(header, " {name} ({unit}), Strom | Kafka | Strom/Kafka ({} is better) |", better(*b));
        }
        let _ = writeln!(out, "{header}");
        let _ = writeln!(out, "|---|{}", "---|---|---|".repeat(names.len()));
        for p in points {
            let mut row = format!("| {p} |");
            for (name, _, _) in &names {
                match metrics.iter().find(|m| m.point.as_deref() == Some(p) && m.name == *name) {
                    Some(m) => {
                        let _ =
                            write!(row, " {} | {} | {} |", spread(&m.strom), spread(&m.kafka), ratio_cell(m.ratio()));
                    }
                    None => row.push_str(" — | — | — |"),
                }
            }
            let _ = writeln!(out, "{row}");
        }
        out.push('\n');
    }

    /// Scenario `s`'s tables of [`VariantMetric`]s, one per variant: the
    /// variant beside the base Strom and Kafka.
    fn variants_markdown(&self, s: u8, out: &mut String) {
        let mut variants: Vec<&str> = Vec::new();
        for v in self.variant_metrics.iter().filter(|v| v.scenario == s) {
            if !variants.contains(&v.variant.as_str()) {
                variants.push(&v.variant);
            }
        }
        for name in variants {
            let _ = writeln!(out, "#### Strom variant `{name}` against the base Strom, same run\n");
            let _ =
                writeln!(out, "| metric | Strom (base) | Strom {name} | {name}/base | Kafka | {name}/Kafka | better |");
            let _ = writeln!(out, "|---|---|---|---|---|---|---|");
            for v in self.variant_metrics.iter().filter(|v| v.scenario == s && v.variant == name) {
                let Some(m) = self.metrics.iter().find(|m| v.is_of(m)) else { continue };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    m.label(),
                    spread(&m.strom),
                    spread(&v.values),
                    ratio_cell(ratio_of_medians(&v.values, &m.strom)),
                    spread(&m.kafka),
                    ratio_cell(ratio_of_medians(&v.values, &m.kafka)),
                    better(m.better)
                );
            }
            out.push('\n');
        }
    }

    /// Scenario `s`'s tables of [`TlsMetric`]s, one per [`Secured`] kind it has.
    fn tls_markdown(&self, s: u8, out: &mut String) {
        for kind in Secured::ALL {
            self.secured_markdown(s, kind, out);
        }
    }

    fn secured_markdown(&self, s: u8, kind: Secured, out: &mut String) {
        let metrics: Vec<&TlsMetric> = self.tls_metrics.iter().filter(|m| m.scenario == s && m.kind == kind).collect();
        if metrics.is_empty() {
            return;
        }
        let [st, kt] = kind.labels();
        let target = match kind {
            Secured::InternalTls => format!("{st}/plain"),
            Secured::ClientSaslSsl => format!("{st}/{kt}"),
        };
        let _ = writeln!(out, "#### {}\n", kind.title());
        let _ = writeln!(
            out,
            "| metric | Strom plain | {st} | {st}/plain | Kafka plain | {kt} | {kt}/plain | {st}/{kt} | better | target ({target}) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for m in metrics {
            let strom = m.strom_ratio();
            let _ = writeln!(
                out,
                "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.name,
                m.unit,
                spread(&m.strom_plain),
                spread(&m.strom_tls),
                ratio_cell(strom),
                spread(&m.kafka_plain),
                spread(&m.kafka_tls),
                ratio_cell(m.kafka_ratio()),
                ratio_cell(m.tls_ratio()),
                better(m.better),
                target_cell(m.target, m.target_ratio())
            );
        }
        out.push('\n');
    }
}

fn ratio_cell(ratio: Option<f64>) -> String {
    ratio.map(|r| format!("**{r:.2}**")).unwrap_or_else(|| "—".into())
}

fn better(b: Better) -> &'static str {
    match b {
        Better::Higher => "higher",
        Better::Lower => "lower",
    }
}

/// Whether `ratio` meets `target`, and by how much it misses.
fn target_cell(target: Option<Target>, ratio: Option<f64>) -> String {
    match (target, ratio) {
        (Some(t), Some(r)) if t.met(r) => format!("{} met", t.describe()),
        (Some(t), Some(r)) => {
            let by = match t {
                Target::AtLeast(x) => format!("{:.0} % short", (1.0 - r / x) * 100.0),
                Target::AtMost(x) => format!("{:.2}× over", r / x),
            };
            format!("{} **missed** ({by})", t.describe())
        }
        (Some(t), None) => format!("{} (no data)", t.describe()),
        (None, _) => String::new(),
    }
}

fn spread(values: &[f64]) -> String {
    let Some(m) = median(values) else { return "—".into() };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() == 1 { number(m) } else { format!("{} ({}–{})", number(m), number(min), number(max)) }
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quantiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let mut l: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        assert_eq!(quantile_ms(&mut l, 0.5), Some(500.0));
        assert_eq!(quantile_ms(&mut l, 0.99), Some(990.0));
        assert_eq!(quantile_ms(&mut l, 0.999), Some(999.0));
        assert_eq!(quantile_ms(&mut [], 0.5), None);
    }

    #[test]
    fn targets_are_judged_on_the_ratio_of_medians() {
        let mut m = Metric::new(1, "throughput", "MB/s", Better::Higher).with_target(Target::AtLeast(1.0));
        for (s, k) in [(90.0, 100.0), (95.0, 100.0), (99.0, 100.0)] {
            m.push(System::Strom, s);
            m.push(System::Kafka, k);
        }
        assert_eq!(m.ratio(), Some(0.95));
        let mut report = Report::default();
        report.metric(m);
        report.checks.push(Check {
            scenario: 1,
            system: System::Strom,
            what: "x".into(),
            acknowledged: 5,
            consumed: 4,
        });
        let md = report.markdown();
        assert!(md.contains("**missed** (5 % short)"), "{md}");
        assert!(md.contains("**MISMATCH**"), "{md}");
        assert!(!report.checks_passed());
    }

    #[test]
    fn tls_cost_is_the_ratio_of_medians_per_system_and_between_tls_clusters() {
        let mut m = TlsMetric::new(2, Secured::InternalTls, "throughput", "MiB/s", Better::Higher)
            .with_target(Target::AtLeast(0.9));
        for (sp, st, kp, kt) in [(100.0, 80.0, 50.0, 40.0), (110.0, 85.0, 60.0, 45.0), (90.0, 70.0, 55.0, 50.0)] {
            m.push(System::Strom, false, sp);
            m.push(System::Strom, true, st);
            m.push(System::Kafka, false, kp);
            m.push(System::Kafka, true, kt);
        }
        assert_eq!(m.strom_ratio(), Some(0.8));
        assert_eq!(m.kafka_ratio(), Some(45.0 / 55.0));
        assert_eq!(m.tls_ratio(), Some(80.0 / 45.0));
        let mut report = Report::default();
        report.metric(Metric::new(2, "throughput", "MiB/s", Better::Higher));
        report.tls_metric(m);
        let md = report.markdown();
        assert!(md.contains("#### The cost of TLS between brokers"), "{md}");
        assert!(md.contains("≥ 0.9 **missed** (11 % short)"), "{md}");
        assert!(md.contains("| throughput (MiB/s) | 100 (90.0–110) | 80.0 (70.0–85.0) | **0.80** |"), "{md}");
    }

    #[test]
    fn client_sasl_ssl_table_judges_strom_over_kafka_on_sasl_ssl() {
        let mut m = TlsMetric::new(4, Secured::ClientSaslSsl, "consumer throughput", "MiB/s", Better::Higher)
            .with_target(Target::AtLeast(1.2));
        for (sp, ss, kp, ks) in [(900.0, 600.0, 1000.0, 400.0), (950.0, 650.0, 1100.0, 450.0)] {
            m.push(System::Strom, false, sp);
            m.push(System::Strom, true, ss);
            m.push(System::Kafka, false, kp);
            m.push(System::Kafka, true, ks);
        }
        assert_eq!(m.target_ratio(), Some(625.0 / 425.0));
        let mut report = Report::default();
        report.metric(Metric::new(4, "consumer throughput", "MiB/s", Better::Higher));
        report.tls_metric(m);
        let md = report.markdown();
        assert!(md.contains("#### Clients over SASL_SSL"), "{md}");
        assert!(!md.contains("#### The cost of TLS between brokers"), "{md}");
        assert!(
            md.contains("| Strom SASL_SSL/Kafka SASL_SSL | better | target (Strom SASL_SSL/Kafka SASL_SSL) |"),
            "{md}"
        );
        assert!(md.contains("≥ 1.2 met"), "{md}");
    }

    #[test]
    fn points_make_one_row_each_and_variants_compare_with_base_and_kafka() {
        let mut report = Report::default();
        let mut tput = Metric::new(10, "throughput", "MiB/s", Better::Higher).with_point("8 partitions, 1 producer");
        let mut p99 =
            Metric::new(10, "produce latency p99", "ms", Better::Lower).with_point("8 partitions, 1 producer");
        let mut variant = VariantMetric::like(&tput, "unary");
        for (s, k, v) in [(100.0, 50.0, 80.0), (120.0, 60.0, 90.0)] {
            tput.push(System::Strom, s);
            tput.push(System::Kafka, k);
            p99.push(System::Strom, s / 10.0);
            p99.push(System::Kafka, k / 10.0);
            variant.values.push(v);
        }
        let other = Metric::new(10, "throughput", "MiB/s", Better::Higher).with_point("64 partitions, 1 producer");
        report.variant_metric(variant);
        [tput, p99, other].into_iter().for_each(|m| report.metric(m));
        let md = report.markdown();
        assert!(md.contains("| point | throughput (MiB/s), Strom | Kafka | Strom/Kafka (higher is better) | produce latency p99 (ms), Strom |"), "{md}");
        assert!(md.contains("| 8 partitions, 1 producer | 110 (100–120) | 55.0 (50.0–60.0) | **2.00** | 11.0 (10.0–12.0) | 5.50 (5.00–6.00) | **2.00** |"), "{md}");
        assert!(md.contains("| 64 partitions, 1 producer | — | — | — | — | — | — |"), "{md}");
        assert!(!md.contains("| metric | Strom median (min–max)"), "no long table without plain metrics: {md}");
        assert!(md.contains("#### Strom variant `unary` against the base Strom, same run"), "{md}");
        assert!(
            md.contains("| 8 partitions, 1 producer: throughput (MiB/s) | 110 (100–120) | 85.0 (80.0–90.0) | **0.77** | 55.0 (50.0–60.0) | **1.55** | higher |"),
            "{md}"
        );
    }
}
