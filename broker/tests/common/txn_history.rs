//! The transactional history checker: what transactional producers wrote and
//! how each transaction ended as the client saw it, against what
//! read_committed consumers read, during the run and after it.
//!
//! A pure function over plain data, tested on crafted histories (the
//! `txn_history_checker_*` tests in `cluster_txn_history.rs`). Values are
//! unique per send. A transaction's outcome is the client's: `Committed`
//! (commit returned), `Aborted` (the client aborted, or an error aborted it
//! before any commit call) or `Unknown` (the commit call itself failed, so
//! the transaction may have committed or not — but never in part).
//! Times are one monotonic clock shared by every process of the machine.

use std::collections::{BTreeMap, HashMap};

/// How a transaction ended, as its producer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    Aborted,
    Unknown,
}

/// One transaction: its values in send order and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Txn {
    pub producer: String,
    /// The producer's count of its transactions, increasing.
    pub txn: u64,
    /// (topic, partition, value), in the order the producer sent them.
    pub values: Vec<(String, i32, String)>,
    pub outcome: Outcome,
    /// When the producer called commit (or abort); no value may be read before.
    pub ending_at: f64,
}

/// One record a read_committed consumer returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
    /// When the consumer returned it.
    pub at: f64,
}

/// Everything one read_committed consumer read, and whether it read every
/// partition to its end after every transaction had ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Reader {
    pub name: String,
    pub reads: Vec<Read>,
    pub complete: bool,
}

/// Counts of a history that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub committed: usize,
    pub aborted: usize,
    pub unknown: usize,
    /// Unknown-outcome transactions whose values were read (whole).
    pub unknown_visible: usize,
    pub reads: usize,
}

/// At most this many violations are listed.
const MAX_VIOLATIONS: usize = 30;

/// Checks a transactional history. Any reader: no value of an aborted
/// transaction, none of a transaction before its commit call, none never
/// written, none at another partition than sent, none at two offsets, no two
/// values at one offset, and per partition each producer's values in send
/// order. A complete reader also: every committed transaction's values all
/// present, and an unknown one's all or none. `Err` lists the violations.
pub fn check(txns: &[Txn], readers: &[Reader]) -> Result<Summary, Vec<String>> {
    let mut violations = Vec::new();
    // value -> (transaction index, position in it)
    let mut written: HashMap<&str, (usize, usize)> = HashMap::new();
    for (t, txn) in txns.iter().enumerate() {
        for (i, (_, _, value)) in txn.values.iter().enumerate() {
            if written.insert(value.as_str(), (t, i)).is_some() {
                violations.push(format!("the test wrote value {value:?} twice; values must be unique"));
            }
        }
    }
    let mut summary = Summary::default();
    for txn in txns {
        match txn.outcome {
            Outcome::Committed => summary.committed += 1,
            Outcome::Aborted => summary.aborted += 1,
            Outcome::Unknown => summary.unknown += 1,
        }
    }
    let mut unknown_visible = vec![false; txns.len()];
    for reader in readers {
        summary.reads += reader.reads.len();
        check_reader(txns, &written, reader, &mut unknown_visible, &mut violations);
    }
    summary.unknown_visible = unknown_visible.iter().filter(|v| **v).count();
    if violations.is_empty() {
        Ok(summary)
    } else {
        let total = violations.len();
        violations.truncate(MAX_VIOLATIONS);
        if total > MAX_VIOLATIONS {
            violations.push(format!("... and {} more", total - MAX_VIOLATIONS));
        }
        Err(violations)
    }
}

fn check_reader(
    txns: &[Txn],
    written: &HashMap<&str, (usize, usize)>,
    reader: &Reader,
    unknown_visible: &mut [bool],
    violations: &mut Vec<String>,
) {
    let name = &reader.name;
    // Per partition: offset -> value, deduplicating re-reads of one offset.
    let mut logs: BTreeMap<(&str, i32), BTreeMap<i64, &str>> = BTreeMap::new();
    let mut offset_of: HashMap<&str, (&str, i32, i64)> = HashMap::new();
    for r in &reader.reads {
        let here = (r.topic.as_str(), r.partition, r.offset);
        let Some(&(t, i)) = written.get(r.value.as_str()) else {
            violations
                .push(format!("{name} read {:?} at {}-{}@{}, a value never written", r.value, here.0, here.1, here.2));
            continue;
        };
        let txn = &txns[t];
        let (topic, partition, _) = &txn.values[i];
        if (topic.as_str(), *partition) != (here.0, here.1) {
            violations.push(format!(
                "{name} read {:?} at {}-{}@{}, but it was sent to {topic}-{partition}",
                r.value, here.0, here.1, here.2
            ));
        }
        if txn.outcome == Outcome::Aborted {
            violations.push(format!(
                "{name} read {:?} at {}-{}@{} of {}'s transaction {}, which aborted",
                r.value, here.0, here.1, here.2, txn.producer, txn.txn
            ));
        }
        if r.at < txn.ending_at {
            violations.push(format!(
                "{name} read {:?} of {}'s transaction {} {:.3} s before its producer called commit",
                r.value,
                txn.producer,
                txn.txn,
                txn.ending_at - r.at
            ));
        }
        match logs.entry((here.0, here.1)).or_default().insert(r.offset, r.value.as_str()) {
            Some(other) if other != r.value => violations.push(format!(
                "{name} read two values at {}-{}@{}: {other:?} and {:?}",
                here.0, here.1, here.2, r.value
            )),
            _ => {}
        }
        match offset_of.insert(r.value.as_str(), here) {
            Some(first) if first != here => violations.push(format!(
                "{name} read {:?} twice: at {}-{}@{} and at {}-{}@{}",
                r.value, first.0, first.1, first.2, here.0, here.1, here.2
            )),
            _ => {}
        }
    }
    // Per partition, each producer's values in the order it sent them.
    for ((topic, partition), log) in &logs {
        let mut last: HashMap<&str, (u64, usize, i64, &str)> = HashMap::new();
        for (&offset, &value) in log {
            let Some(&(t, i)) = written.get(value) else { continue };
            let txn = &txns[t];
            let key = (txn.txn, i);
            if let Some(&(pt, pi, po, pv)) = last.get(txn.producer.as_str())
                && (pt, pi) >= key
            {
                violations.push(format!(
                    "{name}: {topic}-{partition} holds {pv:?}@{po} before {value:?}@{offset}, but {} sent them the \
                     other way round",
                    txn.producer
                ));
            }
            last.insert(txn.producer.as_str(), (key.0, key.1, offset, value));
        }
    }
    if !reader.complete {
        return;
    }
    for (t, txn) in txns.iter().enumerate() {
        let missing: Vec<&str> =
            txn.values.iter().map(|(_, _, v)| v.as_str()).filter(|v| !offset_of.contains_key(v)).collect();
        let present = txn.values.len() - missing.len();
        match txn.outcome {
            Outcome::Committed if !missing.is_empty() => violations.push(format!(
                "{name} misses {missing:?} of {}'s committed transaction {} ({present} of {} values read)",
                txn.producer,
                txn.txn,
                txn.values.len()
            )),
            Outcome::Unknown if present > 0 && !missing.is_empty() => violations.push(format!(
                "{name} read {}'s unknown-outcome transaction {} in part: {present} of {} values, missing {missing:?}",
                txn.producer,
                txn.txn,
                txn.values.len()
            )),
            Outcome::Unknown if present > 0 => unknown_visible[t] = true,
            _ => {}
        }
    }
}
