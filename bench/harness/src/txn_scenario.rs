//! Scenario 8, transactions, on the three-broker clusters of scenario 2 (RF
//! 3, min.insync.replicas 2): ProducerPerformance produces into a fresh
//! topic in transactions (`--transactional-id`, `--transaction-duration-ms
//! 100`, acks=all, idempotence on as the Java producer has it by default),
//! then ConsumerPerformance reads that backlog with
//! `isolation.level=read_committed` in a fresh group. Each round runs both
//! systems, alternating which goes first, after one unmeasured warm-up run
//! per system (which also creates `__transaction_state`, 50 partitions at
//! RF 3 on both, and lets Kafka's JVM compile the transactional paths).
//!
//! Every run is checked twice: ConsumerPerformance must read every record
//! ProducerPerformance had acknowledged, and a librdkafka `read_committed`
//! consumer reading every partition to its end must count exactly as many
//! (so neither a lost nor an aborted or duplicated record goes unseen).
//!
//! A run that fails (a transaction that cannot commit fails the tool) takes
//! its system out of the remaining rounds, while the other system goes on,
//! so the report still shows what did run; the scenario then fails, naming
//! the first error of each system that failed.

use anyhow::{Context, Result, bail};

use crate::client;
use crate::java_tools::{JavaConsume, JavaProduce, JavaTransactions};
use crate::process::{Cluster, System};
use crate::report::{Better, Check, Metric, Target};
use crate::scenarios::{Bench, MIB, pick};

/// What one scenario-8 run measured.
struct TxnRun {
    produce_mib_per_sec: f64,
    consume_mib_per_sec: f64,
    produce_cpu_ms_per_mib: f64,
    consume_cpu_ms_per_mib: f64,
}

impl Bench {
    /// Scenario 8 on `clusters` (three nodes each), which scenario
    /// `started_for` started (2, or 8 when it runs alone).
    pub fn scenario8(&mut self, clusters: &mut [Cluster; 2], started_for: u8) -> Result<()> {
        let plan = self.plan.clone();
        let shared =
            if started_for == 8 { "fresh clusters like scenario 2's" } else { "scenario 2's clusters, after it" };
        self.report.note(
            8,
            format!(
                "{shared}: 3 nodes per system, every node a broker and a controller voter; per run a fresh topic of {} partitions, replication factor 3, min.insync.replicas=2; ProducerPerformance sends {} records of {} B with `--transactional-id <fresh id> --transaction-duration-ms {}` (a commit every {} ms), acks=all, idempotence on (the Java producer's default), then ConsumerPerformance reads them all with `isolation.level=read_committed` in a fresh group (rate over its fetch time, group join excluded). Brokers' CPU summed over the 3 nodes, per MiB produced or consumed",
                plan.partitions, plan.s8_records, plan.record_bytes, plan.s8_transaction_ms, plan.s8_transaction_ms
            ),
        );
        self.report.note(
            8,
            format!(
                "before the measured rounds, each system takes one unmeasured warm-up run of {} records (produce, consume, checks), which also creates `__transaction_state` (50 partitions, RF 3, min.insync.replicas 2 on both) and lets Kafka's JVM compile the transactional paths",
                plan.s8_warmup_records
            ),
        );
        let mut produce =
            Metric::new(8, "transactional produce throughput, ProducerPerformance", "MiB/s", Better::Higher)
                .with_target(Target::AtLeast(1.0));
        let mut consume =
            Metric::new(8, "read_committed consumer throughput, ConsumerPerformance", "MiB/s", Better::Higher)
                .with_target(Target::AtLeast(1.0));
        let mut produce_cpu = Metric::new(8, "brokers' CPU per MiB, transactional produce", "ms/MiB", Better::Lower);
        let mut consume_cpu = Metric::new(8, "brokers' CPU per MiB, read_committed consume", "ms/MiB", Better::Lower);
        // Each system's first error; a system that failed runs no more.
        let mut failed: [Option<anyhow::Error>; 2] = [None, None];
        for system in System::order(0) {
            if let Err(e) = self.txn_run(pick(clusters, system), "warmup", plan.s8_warmup_records) {
                eprintln!("strom-bench: scenario 8 on {} failed, leaving it out: {e:#}", system.name());
                failed[system as usize] = Some(e);
            }
        }
        for round in 0..plan.rounds {
            for system in System::order(round) {
                if failed[system as usize].is_some() {
                    continue;
                }
                match self.txn_run(pick(clusters, system), &round.to_string(), plan.s8_records) {
                    Ok(run) => {
                        produce.push(system, run.produce_mib_per_sec);
                        consume.push(system, run.consume_mib_per_sec);
                        produce_cpu.push(system, run.produce_cpu_ms_per_mib);
                        consume_cpu.push(system, run.consume_cpu_ms_per_mib);
                    }
                    Err(e) => {
                        eprintln!("strom-bench: scenario 8 on {} failed, leaving it out: {e:#}", system.name());
                        failed[system as usize] = Some(e);
                    }
                }
            }
        }
        [produce, consume, produce_cpu, consume_cpu].into_iter().for_each(|m| self.report.metric(m));
        let errors: Vec<String> = System::order(0)
            .into_iter()
            .filter_map(|system| failed[system as usize].as_ref().map(|e| format!("{}: {e:#}", system.name())))
            .collect();
        if !errors.is_empty() {
            bail!("scenario 8 failed on {}", errors.join("; "));
        }
        Ok(())
    }

    /// One transactional produce of `records` records into the fresh topic
    /// `s8-<label>` and its read_committed consume, both checked; the topic
    /// is deleted afterwards.
    fn txn_run(&mut self, cluster: &mut Cluster, label: &str, records: u64) -> Result<TxnRun> {
        let plan = self.plan.clone();
        let bootstrap = cluster.bootstrap();
        let system = cluster.system;
        let topic = format!("s8-{label}");
        client::create_topic(&bootstrap, &topic, plan.partitions, 3, &[("min.insync.replicas", "2")])?;
        let transactional_id = format!("strom-bench-s8-{}-{label}", system.name().to_lowercase());
        let cpu_start = cluster.stats()?.cpu;
        let produced = self
            .tools
            .produce(&JavaProduce {
                bootstrap: &bootstrap,
                topic: &topic,
                records,
                record_bytes: plan.record_bytes,
                acks: "all",
                rate: None,
                warmup_records: 0,
                config: None,
                transactions: Some(JavaTransactions { id: &transactional_id, duration_ms: plan.s8_transaction_ms }),
            })
            .with_context(|| format!("transactional ProducerPerformance on {} ({topic})", system.name()))?;
        let cpu_produced = cluster.stats()?.cpu;
        cluster.check_alive()?;
        let acked = produced.all.records;
        let consumed = self
            .tools
            .consume(&JavaConsume {
                bootstrap: &bootstrap,
                topic: &topic,
                records: acked,
                group: &format!("s8-{label}"),
                config: None,
                read_committed: true,
            })
            .with_context(|| format!("read_committed ConsumerPerformance on {} ({topic})", system.name()))?;
        let cpu_consumed = cluster.stats()?.cpu;
        cluster.check_alive()?;
        self.report.checks.push(Check {
            scenario: 8,
            system,
            what: format!("ProducerPerformance in transactions → {topic}, ConsumerPerformance read_committed"),
            acknowledged: acked,
            consumed: consumed.records,
        });
        let committed = client::consume_committed(&bootstrap, &topic, acked)?;
        self.report.checks.push(Check {
            scenario: 8,
            system,
            what: format!("… librdkafka read_committed, every partition to its end ({topic})"),
            acknowledged: acked,
            consumed: committed.records,
        });
        client::delete_topic(&bootstrap, &topic)?;
        let mib = acked as f64 * plan.record_bytes as f64 / MIB;
        let cpu_ms_per_mib = |cpu: std::time::Duration| cpu.as_secs_f64() * 1000.0 / mib;
        Ok(TxnRun {
            produce_mib_per_sec: produced.all.records_per_sec * plan.record_bytes as f64 / MIB,
            consume_mib_per_sec: consumed.fetch_records_per_sec * plan.record_bytes as f64 / MIB,
            produce_cpu_ms_per_mib: cpu_ms_per_mib(cpu_produced.saturating_sub(cpu_start)),
            consume_cpu_ms_per_mib: cpu_ms_per_mib(cpu_consumed.saturating_sub(cpu_produced)),
        })
    }
}
