//! The history checker: what a producer sent and had acknowledged, against
//! what a consumer read back from the beginning.
//!
//! A pure function over plain data, so it is tested on crafted histories
//! (see the `history_checker_*` tests in `cluster_failover.rs`). Values are
//! unique per send; a send that failed is never re-sent with the same value,
//! so a failed send may legitimately be present once or be absent.

use std::collections::{BTreeMap, HashMap};

/// A record handed to the producer: its send order, partition and unique value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub seq: u64,
    pub partition: i32,
    pub value: Vec<u8>,
}

/// The broker acknowledged send `seq` at `partition`/`offset` (offset -1 if the client did not learn it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub seq: u64,
    pub partition: i32,
    pub offset: i64,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub value: Vec<u8>,
}

/// Counts of a history that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub sent: usize,
    pub acked: usize,
    pub consumed: usize,
    /// Sends without an acknowledgement (failed or never reported) that were read back anyway.
    pub unacked_present: usize,
}

/// At most this many violations are listed.
const MAX_VIOLATIONS: usize = 20;

/// Checks a history: every acknowledged value read exactly once, in the
/// partition and at the offset acknowledged; per partition, acknowledged
/// values read in send order (offsets increasing); nothing read more than
/// once or that was never sent; offsets of each partition strictly
/// increasing as read. `Err` lists the violations found.
pub fn check(sent: &[Sent], acked: &[Ack], consumed: &[Read]) -> Result<Summary, Vec<String>> {
    let mut violations = Vec::new();
    let mut by_value: HashMap<&[u8], &Sent> = HashMap::with_capacity(sent.len());
    let mut by_seq: HashMap<u64, &Sent> = HashMap::with_capacity(sent.len());
    for s in sent {
        if by_value.insert(&s.value, s).is_some() {
            violations.push(format!("the test sent value {:?} twice; values must be unique", show(&s.value)));
        }
        by_seq.insert(s.seq, s);
    }

    // What was read: where each value is, once.
    let mut found: HashMap<&[u8], (i32, i64)> = HashMap::with_capacity(consumed.len());
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for r in consumed {
        if let Some(prev) = last_offset.insert(r.partition, r.offset)
            && r.offset <= prev
        {
            violations.push(format!("partition {} was read at offset {} after offset {prev}", r.partition, r.offset));
        }
        match by_value.get(&r.value[..]) {
            None => violations.push(format!(
                "partition {} offset {} holds {:?}, which was never sent",
                r.partition,
                r.offset,
                show(&r.value)
            )),
            Some(s) if s.partition != r.partition => violations.push(format!(
                "send #{} ({:?}) went to partition {} but was read from partition {} offset {}",
                s.seq,
                show(&s.value),
                s.partition,
                r.partition,
                r.offset
            )),
            Some(_) => {}
        }
        if let Some((p, o)) = found.insert(&r.value, (r.partition, r.offset)) {
            violations.push(format!(
                "{:?} was read twice: partition {p} offset {o} and partition {} offset {}",
                show(&r.value),
                r.partition,
                r.offset
            ));
        }
    }

    // Every acknowledgement: present, where acknowledged, and in send order.
    let mut acked_seqs: HashMap<u64, ()> = HashMap::with_capacity(acked.len());
    let mut in_send_order: BTreeMap<i32, Vec<(u64, i64)>> = BTreeMap::new();
    for a in acked {
        if acked_seqs.insert(a.seq, ()).is_some() {
            violations.push(format!("send #{} was acknowledged twice", a.seq));
            continue;
        }
        let Some(s) = by_seq.get(&a.seq) else {
            violations.push(format!("acknowledgement of send #{}, which was never sent", a.seq));
            continue;
        };
        match found.get(&s.value[..]) {
            None => violations.push(format!(
                "LOST: send #{} ({:?}) was acknowledged at partition {} offset {} but was not read back",
                a.seq,
                show(&s.value),
                a.partition,
                a.offset
            )),
            Some(&(p, o)) => {
                if p != a.partition || (a.offset >= 0 && o != a.offset) {
                    violations.push(format!(
                        "send #{} ({:?}) was acknowledged at partition {} offset {} but read at partition {p} offset {o}",
                        a.seq,
                        show(&s.value),
                        a.partition,
                        a.offset
                    ));
                }
                in_send_order.entry(p).or_default().push((a.seq, o));
            }
        }
    }
    for (partition, mut reads) in in_send_order {
        reads.sort_unstable();
        for pair in reads.windows(2) {
            let ((seq_a, off_a), (seq_b, off_b)) = (pair[0], pair[1]);
            if off_b <= off_a {
                violations.push(format!(
                    "partition {partition}: send #{seq_a} is at offset {off_a} but the later send #{seq_b} is at {off_b}"
                ));
            }
        }
    }

    if violations.is_empty() {
        let unacked_present =
            sent.iter().filter(|s| !acked_seqs.contains_key(&s.seq) && found.contains_key(&s.value[..])).count();
        Ok(Summary { sent: sent.len(), acked: acked_seqs.len(), consumed: consumed.len(), unacked_present })
    } else {
        let total = violations.len();
        violations.truncate(MAX_VIOLATIONS);
        if total > MAX_VIOLATIONS {
            violations.push(format!("... and {} more", total - MAX_VIOLATIONS));
        }
        Err(violations)
    }
}

fn show(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}
