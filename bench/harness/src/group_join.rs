//! Scenario 9, group join settle time (issue 23): on a single broker of each
//! system, a consumer group of [`MEMBERS`] Java consumers, stable on a topic
//! of [`PARTITIONS`] partitions, takes one more member; measured is the time
//! from the new member's `subscribe()` until every member's assignment is
//! stable again (no revocation, assignment or loss any more), with the Java
//! client's classic protocol (`group.protocol=classic`, the client's default
//! assignors: range first, eager) and with KIP-848's consumer protocol
//! (`group.protocol=consumer`, the broker's default assignor, uniform on
//! both).
//!
//! The measuring program is `bench/java/GroupJoinSettle.java`, compiled once
//! per run against the tools' kafka-clients: all members run in one JVM, one
//! thread each, and the settle time is taken from their rebalance listeners'
//! timestamps, so JVM start-up is outside it. Each round runs both systems
//! (alternating which goes first) and both protocols, each in a fresh group.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::client;
use crate::process::{Security, System};
use crate::report::{Better, Metric};
use crate::scenarios::{Bench, pick, stop_both};

/// The measuring program's class (bench/java/GroupJoinSettle.java).
const CLASS: &str = "dev.strom.bench.GroupJoinSettle";
/// Members of the group before the join.
pub const MEMBERS: usize = 3;
/// Partitions of the topic the group consumes.
pub const PARTITIONS: i32 = 12;
/// How long no listener event may happen before the group counts as stable.
const QUIET_MS: u64 = 3_000;
/// Longest wait for each phase (forming, then the join) to settle.
const PHASE_TIMEOUT_MS: u64 = 60_000;
/// The two protocols, by their `group.protocol` value.
const PROTOCOLS: [&str; 2] = ["classic", "consumer"];

/// What one GroupJoinSettle run printed.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinRun {
    /// From the first member's start until the first members were stable.
    pub initial_ms: f64,
    /// From the new member's subscribe to the last listener event.
    pub settle_ms: f64,
    /// Non-empty listener events (revoked, assigned, lost) during the join.
    pub events: f64,
}

/// Parses GroupJoinSettle's line `initial_ms=.. settle_ms=.. events=.. owned=..`.
pub fn parse_join_run(stdout: &str) -> Option<JoinRun> {
    let line = stdout.lines().rev().find(|l| l.starts_with("initial_ms="))?;
    let field = |name: &str| -> Option<f64> {
        line.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?.parse().ok()
    };
    Some(JoinRun { initial_ms: field("initial_ms")?, settle_ms: field("settle_ms")?, events: field("events")? })
}

impl Bench {
    /// Scenario 9; `source` is bench/java/GroupJoinSettle.java.
    pub fn scenario9(&mut self, source: &Path) -> Result<()> {
        let classes = self.run_dir.join("s9-classes");
        std::fs::create_dir_all(&classes).with_context(|| format!("creating {}", classes.display()))?;
        self.tools.compile(source, &classes)?;
        let rounds = self.plan.rounds;
        self.report.note(
            9,
            format!(
                "single broker per system; a topic of {PARTITIONS} partitions (RF 1, empty); per run a fresh group of {MEMBERS} Java consumers (kafka-clients {}, one JVM, a thread each, client defaults but auto-commit off) waits until stable, then a {}th subscribes; settle time = from its subscribe() to the last non-empty revoke/assign/lost callback of any member, once the group is stable again (every member owns 3 partitions, none twice, no callback for {} s)",
                std::env::var("KAFKA_VERSION").unwrap_or_else(|_| "4.3.1".into()),
                MEMBERS + 1,
                QUIET_MS / 1000
            ),
        );
        self.report.note(
            9,
            "classic: the client's default assignors (range, eager: every member revokes all and rejoins) and its heartbeat.interval.ms 3000, through which the stable members learn of the rebalance; consumer (KIP-848): the broker's default assignor (uniform) and group.consumer.heartbeat.interval.ms 5000 (the default on both), incremental: only the moved partitions are revoked, each at its owner's next heartbeat",
        );
        let mut clusters = self.start_both(9, 1, Security::Plain, &[], None)?;
        let topic = "s9-join";
        for system in System::order(0) {
            client::create_topic(&pick(&mut clusters, system).bootstrap(), topic, PARTITIONS, 1, &[])?;
        }
        let mut settle = PROTOCOLS.map(|p| {
            Metric::new(9, format!("join settle time, {MEMBERS} + 1 members, group.protocol={p}"), "ms", Better::Lower)
        });
        let mut initial = PROTOCOLS.map(|p| {
            Metric::new(9, format!("first {MEMBERS} members stable, group.protocol={p}"), "ms", Better::Lower)
        });
        let mut events = PROTOCOLS
            .map(|p| Metric::new(9, format!("rebalance callbacks during the join, {p}"), "count", Better::Lower));
        for round in 0..rounds {
            for system in System::order(round) {
                let cluster = pick(&mut clusters, system);
                let bootstrap = cluster.bootstrap();
                for (i, protocol) in PROTOCOLS.into_iter().enumerate() {
                    let group = format!("s9-{protocol}-{round}");
                    let args: Vec<String> = vec![
                        bootstrap.clone(),
                        topic.into(),
                        group,
                        protocol.into(),
                        MEMBERS.to_string(),
                        PARTITIONS.to_string(),
                        QUIET_MS.to_string(),
                        PHASE_TIMEOUT_MS.to_string(),
                    ];
                    let stdout = self
                        .tools
                        .run_compiled(&classes, CLASS, &args)
                        .with_context(|| format!("GroupJoinSettle ({protocol}) on {}", system.name()))?;
                    let Some(run) = parse_join_run(&stdout) else {
                        bail!("GroupJoinSettle ({protocol}) on {} printed no result: {stdout}", system.name());
                    };
                    eprintln!(
                        "strom-bench: scenario 9 round {round} {} {protocol}: settled in {} ms ({} callbacks)",
                        system.name(),
                        run.settle_ms,
                        run.events
                    );
                    settle[i].push(system, run.settle_ms);
                    initial[i].push(system, run.initial_ms);
                    events[i].push(system, run.events);
                }
                cluster.check_alive()?;
            }
        }
        stop_both(&self.run_dir, &mut clusters)?;
        settle.into_iter().chain(initial).chain(events).for_each(|m| self.report.metric(m));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_result_line() {
        let out = "some log\ninitial_ms=5851 settle_ms=3037 events=7 owned=3,3,3,3\n";
        assert_eq!(parse_join_run(out), Some(JoinRun { initial_ms: 5851.0, settle_ms: 3037.0, events: 7.0 }));
        assert_eq!(parse_join_run("initial_ms=1 settle_ms=x events=2"), None);
        assert_eq!(parse_join_run(""), None);
    }
}
