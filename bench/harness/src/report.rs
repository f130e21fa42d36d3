//! What a run measured, and the Markdown report: per metric the median and
//! spread (min–max) of each system's runs, the Strom/Kafka ratio of the
//! medians and, where the issue sets one, whether the target is met; then
//! the correctness checks (records consumed = records acknowledged).

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
    pub name: String,
    pub unit: &'static str,
    pub better: Better,
    pub target: Option<Target>,
    pub strom: Vec<f64>,
    pub kafka: Vec<f64>,
}

impl Metric {
    pub fn new(scenario: u8, name: impl Into<String>, unit: &'static str, better: Better) -> Metric {
        Metric { scenario, name: name.into(), unit, better, target: None, strom: Vec::new(), kafka: Vec::new() }
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
        5 => "5. 1,000 partitions (single broker): memory and produce throughput",
        6 => "6. Resident memory idle and loaded; start-up time to the first successful produce",
        7 => "7. Restart after kill -9 with a large log: time until serving again",
        _ => "other",
    }
}

impl Report {
    pub fn metric(&mut self, metric: Metric) {
        self.metrics.push(metric);
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
            let _ = writeln!(
                out,
                "| metric | Strom median (min–max) | Kafka median (min–max) | Strom/Kafka | better | target |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|");
            for m in self.metrics.iter().filter(|m| m.scenario == s) {
                let ratio = m.ratio();
                let target = match (m.target, ratio) {
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
                };
                let _ = writeln!(
                    out,
                    "| {} ({}) | {} | {} | {} | {} | {} |",
                    m.name,
                    m.unit,
                    spread(&m.strom),
                    spread(&m.kafka),
                    ratio.map(|r| format!("**{r:.2}**")).unwrap_or_else(|| "—".into()),
                    match m.better {
                        Better::Higher => "higher",
                        Better::Lower => "lower",
                    },
                    target
                );
            }
            out.push('\n');
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
}
