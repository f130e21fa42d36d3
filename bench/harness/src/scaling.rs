//! Scenario 10, scaling (issue 22): on the three-broker clusters of
//! scenario 2 (RF 3, min.insync.replicas 2, acks=all), librdkafka producers
//! from the harness at maximum throughput, 1 KiB records, over
//! [`POINTS`]: 8, 64 and 512 partitions with one producer, and 1, 8 and 64
//! producers into 8 partitions (the point of 8 partitions and 1 producer is
//! shared). Producers are independent librdkafka instances, each with its
//! own connections, on threads of this process, sharing the run's record
//! total.
//!
//! Each point, per cluster, is one run into a fresh topic: aggregate
//! throughput over the wall time from the first producer's creation to the
//! last one's flush, produce latency p50 and p99 from send() to delivery
//! report over every record of every producer (the same measurement as
//! scenario 3's librdkafka latency; at full speed it includes the time a
//! record waits in the client's queue), and the brokers' CPU per MiB
//! (summed over the 3 nodes). The topic is read back: records consumed must
//! equal records acknowledged. `--strom-variant` clusters run every point
//! too, in [`run_order`] beside the base Strom.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::client::{self, ProduceSpec};
use crate::process::{Cluster, run_order};
use crate::report::{Better, Check, Metric, VariantMetric, quantile_ms};
use crate::scenarios::{Bench, MIB, variants_note};

/// (partitions, producers) of every point, in the report's order.
pub const POINTS: [(i32, usize); 5] = [(8, 1), (64, 1), (512, 1), (8, 8), (8, 64)];

/// What one scenario-10 run measured.
struct ScalingRun {
    mib_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_mib: f64,
}

impl ScalingRun {
    /// The values in the order of [`point_metrics`].
    fn values(&self) -> [f64; 4] {
        [self.mib_per_sec, self.p50_ms, self.p99_ms, self.cpu_ms_per_mib]
    }
}

/// How the report names a point.
fn point_name(partitions: i32, producers: usize) -> String {
    let s = if producers == 1 { "" } else { "s" };
    format!("{partitions} partitions, {producers} producer{s}")
}

/// The metrics of one point: throughput, p50, p99, CPU per MiB.
fn point_metrics(partitions: i32, producers: usize) -> [Metric; 4] {
    let point = point_name(partitions, producers);
    [
        Metric::new(10, "throughput", "MiB/s", Better::Higher),
        Metric::new(10, "produce latency p50", "ms", Better::Lower),
        Metric::new(10, "produce latency p99", "ms", Better::Lower),
        Metric::new(10, "brokers' CPU per MiB", "ms/MiB", Better::Lower),
    ]
    .map(|m| m.with_point(point.clone()))
}

/// `total` records split over `producers`: as even as can be, the first
/// ones taking one more.
fn shares(total: u64, producers: usize) -> Vec<u64> {
    let n = producers.max(1) as u64;
    (0..n).map(|i| total / n + u64::from(i < total % n)).collect()
}

impl Bench {
    /// Scenario 10 on `clusters` (three nodes each; scenario 2's when it ran,
    /// as `started_for` says) and the `--strom-variant` clusters.
    pub fn scenario10(&mut self, clusters: &mut [Cluster; 2], variants: &mut [Cluster], started_for: u8) -> Result<()> {
        let plan = self.plan.clone();
        let shared =
            if started_for == 10 { "fresh clusters like scenario 2's" } else { "scenario 2's clusters, after it" };
        self.report.note(
            10,
            format!(
                "{shared}: 3 nodes per system, every node a broker and a controller voter; per point and cluster one run into a fresh topic (replication factor 3, min.insync.replicas=2), {} records of {} B in all with acks=all, split evenly over the producers: independent librdkafka producers (each its own connections; the harness's client settings, linger.ms=5), one thread each, at full speed",
                plan.s10_records, plan.record_bytes
            ),
        );
        self.report.note(
            10,
            "throughput: records acknowledged over the wall time from creating the first producer to the last one's flush; produce latency: send() to delivery report over every record of every producer (as scenario 3's librdkafka latency, but at full speed, so it includes the time a record waits in the client's queue); brokers' CPU summed over the 3 nodes, per MiB produced. Each run is read back and checked",
        );
        if !variants.is_empty() {
            self.report.note(10, variants_note(&self.variants, "every point"));
        }
        if started_for == 10 && plan.warmup_rounds > 0 {
            self.report.note(
                10,
                format!(
                    "before the measured rounds, each cluster takes {} unmeasured warm-up run(s) of the first point (read back and checked), so that Kafka's JVM has compiled its hot paths",
                    plan.warmup_rounds
                ),
            );
            for round in 0..plan.warmup_rounds {
                let mut order: Vec<&mut Cluster> = clusters.iter_mut().chain(variants.iter_mut()).collect();
                run_order(&mut order, |c| (c.system, c.security, c.variant.as_ref().map(|v| v.index)), round);
                let (partitions, producers) = POINTS[0];
                for cluster in order {
                    self.scaling_run(cluster, partitions, producers, &format!("s10-warmup-{round}"))?;
                }
            }
        }
        let mut metrics: Vec<[Metric; 4]> = POINTS.iter().map(|&(p, c)| point_metrics(p, c)).collect();
        let mut variant_metrics: Vec<Vec<VariantMetric>> = variants
            .iter()
            .map(|c| {
                let name = c.variant.as_ref().map(|v| v.name.as_str()).unwrap_or("?");
                metrics.iter().flatten().map(|m| VariantMetric::like(m, name)).collect()
            })
            .collect();
        for round in 0..plan.rounds {
            for (i, &(partitions, producers)) in POINTS.iter().enumerate() {
                let mut order: Vec<&mut Cluster> = clusters.iter_mut().chain(variants.iter_mut()).collect();
                run_order(&mut order, |c| (c.system, c.security, c.variant.as_ref().map(|v| v.index)), round);
                for cluster in order {
                    let topic = format!("s10-p{partitions}-c{producers}-{round}");
                    let run = self.scaling_run(cluster, partitions, producers, &topic)?;
                    let values = run.values();
                    match cluster.variant.as_ref().and_then(|v| variant_metrics.get_mut(v.index)) {
                        Some(v) => {
                            for (m, value) in v[i * 4..i * 4 + 4].iter_mut().zip(values) {
                                m.values.push(value);
                            }
                        }
                        None => {
                            for (m, value) in metrics[i].iter_mut().zip(values) {
                                m.push(cluster.system, value);
                            }
                        }
                    }
                }
            }
        }
        metrics.into_iter().flatten().for_each(|m| self.report.metric(m));
        variant_metrics.into_iter().flatten().for_each(|m| self.report.variant_metric(m));
        Ok(())
    }

    /// One run of a point on `cluster`: creates `topic`, produces with
    /// `producers` librdkafka producers at once, reads the topic back,
    /// records the check and deletes the topic.
    fn scaling_run(
        &mut self,
        cluster: &mut Cluster,
        partitions: i32,
        producers: usize,
        topic: &str,
    ) -> Result<ScalingRun> {
        let bootstrap = cluster.bootstrap();
        client::create_topic(&bootstrap, topic, partitions, 3, &[("min.insync.replicas", "2")])?;
        let cpu_before = cluster.stats()?.cpu;
        let epoch = self.epoch;
        let record_bytes = self.plan.record_bytes;
        let began = Instant::now();
        let outcomes: Vec<Result<client::ProduceOutcome>> = std::thread::scope(|scope| {
            let handles: Vec<_> = shares(self.plan.s10_records, producers)
                .into_iter()
                .map(|records| {
                    let spec = ProduceSpec::full_speed(topic, records, record_bytes, "all");
                    let bootstrap = &bootstrap;
                    scope.spawn(move || client::produce(bootstrap, &spec, epoch))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a producer thread panicked"))))
                .collect()
        });
        let wall = began.elapsed();
        let broker_cpu = cluster.stats()?.cpu.saturating_sub(cpu_before);
        let (mut acked, mut latencies) = (0u64, Vec::new());
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let o = outcome.with_context(|| format!("producer {i} of {producers} on {}, {topic}", cluster.name()))?;
            if o.failed > 0 {
                bail!(
                    "{} records of producer {i} of {producers} failed on {}, {topic}: {}",
                    o.failed,
                    cluster.name(),
                    o.first_error.unwrap_or_default()
                );
            }
            acked += o.acked;
            latencies.extend(o.latencies_us);
        }
        cluster.check_alive()?;
        let consumed = client::consume_all(&bootstrap, topic)?;
        let variant = cluster.variant.as_ref().map(|v| format!(" (variant {})", v.name)).unwrap_or_default();
        self.report.checks.push(Check {
            scenario: 10,
            system: cluster.system,
            what: format!("{producers} × librdkafka → {topic}{variant}"),
            acknowledged: acked,
            consumed: consumed.records,
        });
        client::delete_topic(&bootstrap, topic)?;
        let mib = acked as f64 * record_bytes as f64 / MIB;
        Ok(ScalingRun {
            mib_per_sec: mib / wall.max(Duration::from_micros(1)).as_secs_f64(),
            p50_ms: quantile_ms(&mut latencies, 0.5).unwrap_or(f64::NAN),
            p99_ms: quantile_ms(&mut latencies, 0.99).unwrap_or(f64::NAN),
            cpu_ms_per_mib: if mib > 0.0 { broker_cpu.as_secs_f64() * 1000.0 / mib } else { f64::NAN },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_total_is_shared_evenly_and_wholly() {
        assert_eq!(shares(10, 3), [4, 3, 3]);
        assert_eq!(shares(15_000, 64).iter().sum::<u64>(), 15_000);
        assert!(shares(15_000, 64).iter().all(|s| (234..=235).contains(s)));
        assert_eq!(shares(7, 1), [7]);
    }

    #[test]
    fn points_cover_partitions_with_one_producer_and_producers_into_eight_partitions() {
        for p in [8, 64, 512] {
            assert!(POINTS.contains(&(p, 1)), "{p} partitions");
        }
        for c in [1, 8, 64] {
            assert!(POINTS.contains(&(8, c)), "{c} producers");
        }
        assert_eq!(point_name(8, 1), "8 partitions, 1 producer");
        assert_eq!(point_name(8, 64), "8 partitions, 64 producers");
    }
}
