//! Idempotent producer state of one partition: per producer id, its epoch and
//! the last five batches' sequence ranges and offsets (as many as a producer
//! may have in flight), so a retried batch is recognised and answered with
//! its original offsets instead of being written twice.
//!
//! Rules, as Kafka's: an unknown producer may start at any sequence; with a
//! known one, an older epoch is fenced (INVALID_PRODUCER_EPOCH), a newer
//! epoch must start at sequence 0, and within an epoch each batch must start
//! right after the previous one (OUT_OF_ORDER_SEQUENCE_NUMBER otherwise);
//! sequences wrap from `i32::MAX` to 0.
//!
//! Transactions: a producer's first transactional batch opens its ongoing
//! transaction (its first offset holds the last stable offset back), and a
//! control batch (COMMIT/ABORT marker) closes it and records the
//! coordinator epoch it carried; a marker from an older coordinator epoch is
//! refused (TRANSACTION_COORDINATOR_FENCED).
//!
//! Verification (KIP-890 part 1): a producer's first transactional batch
//! on this partition is appended only after its transaction coordinator
//! confirmed the partition is in the producer's ongoing transaction. The
//! leader starts a verification here first and gets a
//! [`VerificationGuard`]; any transactional batch or marker of that
//! producer written meanwhile (a marker ending the transaction) clears it,
//! and a batch is appended only if it continues the producer's ongoing
//! transaction at its epoch or holds the guard still current — so a
//! verification that an abort overtook cannot open a transaction no
//! coordinator will ever end. A verification also remembers the lowest
//! sequence it has seen (Kafka's `VerificationStateEntry.lowestSequence`):
//! when pipelined first batches are verified concurrently and the earliest
//! is refused for a while (CONCURRENT_TRANSACTIONS, retriable), a later one
//! is refused OUT_OF_ORDER_SEQUENCE_NUMBER until the earliest is appended,
//! instead of being appended first and leaving the retried earliest batch
//! out of order for good. A verification the coordinator refused for a
//! retriable reason is kept until the producer's batch is appended or a
//! marker of a newer epoch is written (a marker at or below its epoch only
//! makes its guard stale: at transaction.version 2 the previous
//! transaction's markers carry the next one's epoch). At most [`MAX_VERIFICATIONS`] are kept per partition
//! (past it the oldest are forgotten: a client naming made-up producer ids
//! cannot grow them without bound). Verifications live in memory only.
//!
//! The state is rebuilt from batch headers on open, starting from the latest
//! snapshot (`<offset>.snapshot`, JSON, written at segment roll and on flush)
//! so a restart only rescans the log written after it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::batch::BatchHeader;
use super::control::EndTxnMarker;
use super::error::LogError;

/// Batches remembered per producer: Kafka's max in-flight requests.
const REMEMBERED_BATCHES: usize = 5;
const SNAPSHOT_SUFFIX: &str = ".snapshot";
const SNAPSHOTS_KEPT: usize = 2;

/// A batch of a producer, as remembered for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    /// Sequence of the first record.
    pub first_sequence: i32,
    /// Sequence of the last record.
    pub last_sequence: i32,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub max_timestamp: i64,
}

/// One producer's state in this partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// Latest batches, oldest first.
    pub batches: VecDeque<ProducerBatch>,
    /// Epoch of the transaction coordinator that wrote its latest marker
    /// (-1 before any).
    #[serde(default = "no_coordinator_epoch")]
    pub coordinator_epoch: i32,
    /// First offset of its ongoing transaction, if one is open.
    #[serde(default)]
    pub txn_first_offset: Option<i64>,
}

fn no_coordinator_epoch() -> i32 {
    -1
}

/// A transaction a marker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of the transaction's first record.
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    /// Whether it committed (else aborted).
    pub committed: bool,
}

/// What to do with a producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next in sequence: append it.
    Append,
    /// A retry of a batch already in the log: answer with these offsets.
    Duplicate(ProducerBatch),
}

/// Proof that a verification of a producer's transactional batch was
/// started, to be shown at the append; unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationGuard(u64);

/// Source of unique guards: a guard outlives the state that issued it (a
/// log reload replaces the state), so a counter per state could repeat one.
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

impl VerificationGuard {
    fn fresh() -> VerificationGuard {
        VerificationGuard(NEXT_GUARD.fetch_add(1, Ordering::Relaxed))
    }
}

/// Most verifications kept per partition; past it the oldest quarter is
/// forgotten (their appends are refused INVALID_TXN_STATE, their producers'
/// retries start afresh).
pub const MAX_VERIFICATIONS: usize = 4096;

/// A verification under way (or refused, awaiting the producer's retry) of
/// a producer's first transactional batches on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verifying {
    /// The guard the verified append must hold.
    guard: VerificationGuard,
    /// The producer epoch being verified.
    epoch: i16,
    /// The lowest base sequence of the batches verified at that epoch.
    lowest_sequence: i32,
    /// The coordinator refused it (retriable) and no request started it since.
    abandoned: bool,
}

/// Producer state of a partition.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// (first offset, producer id) of every ongoing transaction, oldest
    /// first: derived from `producers`.
    #[serde(skip)]
    ongoing: BTreeSet<(i64, i64)>,
    /// The current verification per producer id whose transaction on this
    /// partition is being verified.
    #[serde(skip)]
    verifying: HashMap<i64, Verifying>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u8,
    offset: i64,
    producers: HashMap<i64, ProducerEntry>,
}

/// The last sequence of a batch, wrapping at `i32::MAX`.
fn last_sequence(header: &BatchHeader) -> i32 {
    ((i64::from(header.base_sequence) + i64::from(header.last_offset_delta)) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX { 0 } else { sequence + 1 }
}

impl ProducerStates {
    /// Checks a producer batch against the state (no change is made).
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, LogError> {
        if !header.has_producer_id() {
            return Ok(SequenceCheck::Append);
        }
        let pid = header.producer_id;
        let Some(entry) = self.producers.get(&pid) else { return Ok(SequenceCheck::Append) };
        if header.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: pid,
                epoch: header.producer_epoch,
                current: entry.epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            if header.base_sequence != 0 {
                return Err(LogError::OutOfOrderSequence { producer_id: pid, expected: 0, got: header.base_sequence });
            }
            return Ok(SequenceCheck::Append);
        }
        let last = last_sequence(header);
        if let Some(dup) =
            entry.batches.iter().find(|b| b.first_sequence == header.base_sequence && b.last_sequence == last)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let expected = entry.batches.back().map_or(header.base_sequence, |b| next_sequence(b.last_sequence));
        if header.base_sequence != expected {
            return Err(LogError::OutOfOrderSequence { producer_id: pid, expected, got: header.base_sequence });
        }
        if let Some(first_offset) = entry.txn_first_offset
            && !header.is_transactional()
        {
            return Err(LogError::InvalidTxnState { producer_id: pid, first_offset });
        }
        Ok(SequenceCheck::Append)
    }

    /// Whether `producer_id` has an ongoing transaction here at `epoch`: its
    /// further transactional batches need no verification.
    pub fn has_ongoing_txn(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers.get(&producer_id).is_some_and(|e| e.epoch == epoch && e.txn_first_offset.is_some())
    }

    /// Starts verifying a transactional batch of `producer_id` at `epoch`
    /// whose first batch here starts at `base_sequence`: `None` when its
    /// transaction is already ongoing here (append without asking the
    /// coordinator), else the guard to append with once the coordinator
    /// confirmed — the current one if a verification at that epoch is
    /// already under way (concurrent first batches share it, and the lowest
    /// sequence is kept). A batch of an older epoch than the verification
    /// under way gets a guard that is never current (the coordinator fences
    /// it anyway); a newer epoch starts a new verification.
    pub fn start_verification(
        &mut self,
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
    ) -> Option<VerificationGuard> {
        if self.has_ongoing_txn(producer_id, epoch) {
            return None;
        }
        match self.verifying.get_mut(&producer_id) {
            Some(v) if v.epoch == epoch => {
                v.lowest_sequence = v.lowest_sequence.min(base_sequence);
                v.abandoned = false;
                Some(v.guard)
            }
            Some(v) if v.epoch > epoch => Some(VerificationGuard::fresh()),
            _ => {
                if self.verifying.len() >= MAX_VERIFICATIONS {
                    self.forget_oldest_verifications();
                }
                let guard = VerificationGuard::fresh();
                let v = Verifying { guard, epoch, lowest_sequence: base_sequence, abandoned: false };
                self.verifying.insert(producer_id, v);
                Some(guard)
            }
        }
    }

    /// The coordinator refused a request's verification under `guard`, so
    /// that request appends nothing. When the refusal is `retriable` (the
    /// coordinator busy or moving) the verification stays as it is, as
    /// Kafka's does: concurrent requests sharing the guard that the
    /// coordinator confirmed still append, and the producer's retry finds
    /// the lowest sequence seen; otherwise (fenced, not in the transaction)
    /// the verification is dropped and its guard stops being current.
    pub fn abandon_verification(&mut self, producer_id: i64, guard: VerificationGuard, retriable: bool) {
        let Some(v) = self.verifying.get_mut(&producer_id).filter(|v| v.guard == guard) else { return };
        if !retriable {
            self.verifying.remove(&producer_id);
            return;
        }
        v.abandoned = true;
    }

    /// Forgets the oldest quarter of the verifications (guards are issued
    /// in order), refused ones first.
    fn forget_oldest_verifications(&mut self) {
        let mut oldest: Vec<(bool, u64, i64)> =
            self.verifying.iter().map(|(pid, v)| (!v.abandoned, v.guard.0, *pid)).collect();
        oldest.sort_unstable();
        for (_, _, pid) in oldest.into_iter().take(MAX_VERIFICATIONS / 4) {
            self.verifying.remove(&pid);
        }
    }

    /// Checks that a transactional batch from a client may be appended:
    /// it continues its producer's ongoing transaction at its epoch, or
    /// `guard` is the producer's current verification guard. Other batches
    /// pass. Refused with [`LogError::TxnNotVerified`] (INVALID_TXN_STATE),
    /// or — for the producer's `first` batch of the request — with
    /// [`LogError::OutOfOrderSequence`] while a batch with a lower sequence,
    /// seen in the verification, is not appended yet.
    pub fn check_verified(
        &self,
        header: &BatchHeader,
        guard: Option<VerificationGuard>,
        first: bool,
    ) -> Result<(), LogError> {
        if !header.is_transactional() || header.is_control() || !header.has_producer_id() {
            return Ok(());
        }
        let pid = header.producer_id;
        if self.has_ongoing_txn(pid, header.producer_epoch) {
            return Ok(());
        }
        match (guard, self.verifying.get(&pid)) {
            (Some(g), Some(v)) if v.guard == g => {
                if first && v.epoch == header.producer_epoch && header.base_sequence > v.lowest_sequence {
                    return Err(LogError::OutOfOrderSequence {
                        producer_id: pid,
                        expected: v.lowest_sequence,
                        got: header.base_sequence,
                    });
                }
                Ok(())
            }
            _ => Err(LogError::TxnNotVerified { producer_id: pid, epoch: header.producer_epoch }),
        }
    }

    /// Checks a transaction marker for a producer against the state (no
    /// change is made): refused when an older coordinator epoch than the
    /// producer's last marker carried wrote it, or when the producer has a
    /// newer epoch. At `transaction_version` 2 the marker's epoch is the
    /// one the coordinator bumped to at EndTxn, above any of its
    /// transaction's data: a transaction open at that very epoch is a later
    /// one, and the marker (delayed, of an earlier transaction) is refused.
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        transaction_version: i16,
    ) -> Result<(), LogError> {
        let Some(entry) = self.producers.get(&producer_id) else { return Ok(()) };
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(LogError::CoordinatorFenced {
                producer_id,
                coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        let later_txn_open = transaction_version >= 2 && entry.txn_first_offset.is_some();
        if producer_epoch < entry.epoch || (producer_epoch == entry.epoch && later_txn_open) {
            return Err(LogError::InvalidProducerEpoch { producer_id, epoch: producer_epoch, current: entry.epoch });
        }
        Ok(())
    }

    /// Records a batch now in the log (with its final offsets). A control
    /// batch comes with the marker it holds, ends the producer's ongoing
    /// transaction, and returns it (`None` when none was open). A marker
    /// recorded here is taken as one of a transaction before
    /// transaction.version 2 (see [`ProducerStates::update_at`]).
    pub fn update(&mut self, header: &BatchHeader, marker: Option<EndTxnMarker>) -> Option<CompletedTxn> {
        self.update_at(header, marker, 0)
    }

    /// [`ProducerStates::update`] for a marker the leader wrote for a
    /// transaction at `transaction_version`. From 2 the marker carries the
    /// epoch the coordinator bumped to, so it ends the transaction *before*
    /// that epoch: a verification at the marker's epoch is of the next
    /// transaction, which the coordinator opened only once this marker's
    /// transaction had completed (its markers written), and its guard stays
    /// current, as Kafka's does. Refusing it would fail a produce the
    /// coordinator accepted with INVALID_TXN_STATE, which clients do not
    /// retry.
    pub fn update_at(
        &mut self,
        header: &BatchHeader,
        marker: Option<EndTxnMarker>,
        transaction_version: i16,
    ) -> Option<CompletedTxn> {
        if !header.has_producer_id() {
            return None;
        }
        if header.is_transactional() {
            let pid = header.producer_id;
            match self.verifying.get_mut(&pid) {
                Some(v) if header.is_control() && transaction_version >= 2 && header.producer_epoch == v.epoch => {}
                // A marker at or below the verified epoch: the guard stops
                // being current (a verification started before must not open
                // a transaction the marker may have ended), but the lowest
                // sequence stays for the producer's retries — at
                // transaction.version 2 the previous transaction's markers
                // carry the next one's epoch and land while its first batches
                // are being verified.
                Some(v) if header.is_control() && header.producer_epoch <= v.epoch => {
                    v.guard = VerificationGuard::fresh();
                }
                // A data batch: the transaction now has a first offset here
                // (its next batches need no verification); or a newer marker.
                Some(_) => {
                    self.verifying.remove(&pid);
                }
                None => {}
            }
        }
        let entry = self.producers.entry(header.producer_id).or_insert_with(|| ProducerEntry {
            epoch: header.producer_epoch,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            txn_first_offset: None,
        });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if header.is_control() {
            let marker = marker?;
            entry.coordinator_epoch = marker.coordinator_epoch;
            let first_offset = entry.txn_first_offset.take()?;
            self.ongoing.remove(&(first_offset, header.producer_id));
            return Some(CompletedTxn {
                producer_id: header.producer_id,
                first_offset,
                last_offset: header.base_offset,
                committed: marker.committed,
            });
        }
        if header.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(header.base_offset);
            self.ongoing.insert((header.base_offset, header.producer_id));
        }
        entry.batches.push_back(ProducerBatch {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        None
    }

    /// The first offset of the oldest ongoing transaction: the last stable
    /// offset cannot pass it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.first().map(|(first, _)| *first)
    }

    /// Every producer tracked, by id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// The state of one producer.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Writes `<offset>.snapshot` in `dir` (atomically) and keeps only the
    /// newest few snapshots.
    /// Nothing is written for a partition that never saw an idempotent producer.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> Result<(), LogError> {
        if self.producers.is_empty() && list_snapshots(dir)?.is_empty() {
            return Ok(());
        }
        let path = snapshot_path(dir, offset);
        let snapshot = Snapshot { version: 1, offset, producers: self.producers.clone() };
        let json = serde_json::to_vec(&snapshot)
            .map_err(|e| LogError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
        let tmp = path.with_extension("snapshot.tmp");
        std::fs::write(&tmp, json).map_err(LogError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(LogError::io(&path))?;
        let mut offsets = list_snapshots(dir)?;
        offsets.sort_unstable();
        let excess = offsets.len().saturating_sub(SNAPSHOTS_KEPT);
        for old in &offsets[..excess] {
            remove_if_exists(&snapshot_path(dir, *old))?;
        }
        Ok(())
    }

    /// Loads the newest readable snapshot at or below `max_offset`, deleting
    /// those above it (their log was truncated). Returns the state and the
    /// offset the log must be rescanned from.
    pub fn load_snapshot(dir: &Path, max_offset: i64) -> Result<(ProducerStates, Option<i64>), LogError> {
        let mut offsets = list_snapshots(dir)?;
        offsets.sort_unstable();
        for offset in offsets.iter().rev() {
            let path = snapshot_path(dir, *offset);
            if *offset > max_offset {
                remove_if_exists(&path)?;
                continue;
            }
            let bytes = std::fs::read(&path).map_err(LogError::io(&path))?;
            match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(s) if s.version == 1 && s.offset == *offset => {
                    let ongoing =
                        s.producers.iter().filter_map(|(id, e)| e.txn_first_offset.map(|first| (first, *id))).collect();
                    let producers = s.producers;
                    return Ok((ProducerStates { producers, ongoing, verifying: HashMap::new() }, Some(*offset)));
                }
                _ => tracing::warn!(path = %path.display(), "ignoring an unreadable producer state snapshot"),
            }
        }
        Ok((ProducerStates::default(), None))
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

fn list_snapshots(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(LogError::io(dir))? {
        let entry = entry.map_err(LogError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(SNAPSHOT_SUFFIX)
            && let Ok(offset) = stem.parse::<i64>()
        {
            offsets.push(offset);
        }
    }
    Ok(offsets)
}

fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::Io { path: path.to_owned(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, base_sequence: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence,
            records_count: count,
        }
    }

    fn txn_header(pid: i64, epoch: i16, base_sequence: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader { attributes: 0x10, ..header(pid, epoch, base_sequence, count, base_offset) }
    }

    fn marker_header(pid: i64, epoch: i16, offset: i64) -> BatchHeader {
        BatchHeader { attributes: 0x30, base_sequence: -1, ..header(pid, epoch, -1, 1, offset) }
    }

    #[test]
    fn transactions_hold_the_first_unstable_offset_until_their_marker() {
        let mut s = ProducerStates::default();
        s.update(&header(1, 0, 0, 2, 0), None);
        assert_eq!(s.first_unstable_offset(), None, "idempotent batches open no transaction");
        s.update(&txn_header(7, 0, 0, 2, 2), None);
        s.update(&txn_header(8, 0, 0, 1, 4), None);
        s.update(&txn_header(7, 0, 2, 1, 5), None);
        assert_eq!(s.first_unstable_offset(), Some(2));
        let commit = EndTxnMarker { committed: true, coordinator_epoch: 3 };
        let done = s.update(&marker_header(7, 0, 6), Some(commit)).unwrap();
        assert_eq!(done, CompletedTxn { producer_id: 7, first_offset: 2, last_offset: 6, committed: true });
        assert_eq!(s.first_unstable_offset(), Some(4));
        // The marker does not count as a sequence: the producer goes on from 3.
        assert_eq!(s.check(&txn_header(7, 0, 3, 1, 7)).unwrap(), SequenceCheck::Append);
        assert!(
            matches!(s.check(&header(8, 0, 1, 1, 7)), Err(LogError::InvalidTxnState { first_offset: 4, .. })),
            "a non-transactional batch inside producer 8's transaction"
        );
        assert!(matches!(s.check_marker(7, 0, 2, 0), Err(LogError::CoordinatorFenced { current: 3, .. })));
        assert!(s.check_marker(7, 0, 3, 0).is_ok());
        let abort = EndTxnMarker { committed: false, coordinator_epoch: 3 };
        assert!(!s.update(&marker_header(8, 0, 7), Some(abort)).unwrap().committed);
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(s.update(&marker_header(8, 0, 8), Some(abort)), None, "no transaction open");
    }

    #[test]
    fn only_a_verified_first_transactional_batch_is_appended() {
        let mut s = ProducerStates::default();
        let first = txn_header(7, 0, 0, 2, 0);
        assert!(
            matches!(s.check_verified(&first, None, true), Err(LogError::TxnNotVerified { producer_id: 7, epoch: 0 })),
            "no verification started"
        );
        let guard = s.start_verification(7, 0, 0).expect("no transaction open: verify");
        assert_eq!(s.start_verification(7, 0, 0), Some(guard), "concurrent first batches share the guard");
        assert!(s.check_verified(&first, Some(guard), true).is_ok());
        assert!(
            s.check_verified(&header(7, 0, 0, 2, 0), None, true).is_ok(),
            "idempotent batches need no verification"
        );
        s.update(&first, None);
        // The transaction is ongoing: no verification, no guard needed.
        assert_eq!(s.start_verification(7, 0, 0), None);
        assert!(s.check_verified(&txn_header(7, 0, 2, 1, 2), None, true).is_ok());
        assert!(s.check_verified(&txn_header(7, 0, 2, 1, 2), Some(guard), true).is_ok());
        // The old guard was used up: a later verification gets a new one.
        s.update(&marker_header(7, 0, 2), Some(EndTxnMarker { committed: true, coordinator_epoch: 0 }));
        let next = s.start_verification(7, 0, 0).unwrap();
        assert_ne!(next, guard);
        assert!(matches!(
            s.check_verified(&txn_header(7, 0, 2, 1, 3), Some(guard), true),
            Err(LogError::TxnNotVerified { .. })
        ));
        // A newer epoch is not the ongoing transaction of the older one.
        s.update(&txn_header(7, 0, 2, 1, 3), None);
        assert!(s.start_verification(7, 1, 0).is_some());
    }

    #[test]
    fn a_v2_marker_never_ends_a_later_transaction_at_its_epoch() {
        let mut s = ProducerStates::default();
        let commit = EndTxnMarker { committed: true, coordinator_epoch: 0 };
        // T1 writes at epoch 0; its markers carry the bumped epoch 1.
        s.update(&txn_header(7, 0, 0, 2, 0), None);
        assert!(s.check_marker(7, 1, 0, 2).is_ok());
        s.update(&marker_header(7, 1, 2), Some(commit));
        // A duplicate of T1's marker while nothing is open changes nothing: allowed.
        assert!(s.check_marker(7, 1, 0, 2).is_ok());
        // T2 writes at epoch 1 (sequences restart with the epoch).
        assert_eq!(s.check(&txn_header(7, 1, 0, 1, 3)).unwrap(), SequenceCheck::Append);
        s.update(&txn_header(7, 1, 0, 1, 3), None);
        // T1's delayed marker (epoch 1) must not end T2; an older one neither;
        // T2's own marker (epoch 2) may.
        assert!(matches!(s.check_marker(7, 1, 0, 2), Err(LogError::InvalidProducerEpoch { epoch: 1, current: 1, .. })));
        assert!(matches!(s.check_marker(7, 0, 0, 2), Err(LogError::InvalidProducerEpoch { .. })));
        assert!(s.check_marker(7, 2, 0, 2).is_ok());
        // Before v2 a marker at the current epoch is the transaction's own.
        assert!(s.check_marker(7, 1, 0, 0).is_ok());
        // A delayed data batch of T1 (epoch 0) is refused.
        assert!(matches!(s.check(&txn_header(7, 0, 2, 1, 4)), Err(LogError::InvalidProducerEpoch { .. })));
    }

    #[test]
    fn a_marker_between_verification_and_append_refuses_the_append() {
        let mut s = ProducerStates::default();
        let guard = s.start_verification(7, 0, 0).unwrap();
        // The coordinator said yes, but the transaction aborts before the
        // append: its marker (written to every partition in it) clears the guard.
        s.update(&marker_header(7, 0, 0), Some(EndTxnMarker { committed: false, coordinator_epoch: 0 }));
        assert!(
            matches!(
                s.check_verified(&txn_header(7, 0, 0, 1, 1), Some(guard), true),
                Err(LogError::TxnNotVerified { .. })
            ),
            "a verified append after the abort marker is refused"
        );
        assert_eq!(s.first_unstable_offset(), None, "no transaction was opened");
        // A refused verification is dropped; another producer's guard stays.
        let other = s.start_verification(8, 0, 0).unwrap();
        let mine = s.start_verification(7, 0, 0).unwrap();
        s.abandon_verification(7, other, false);
        assert!(s.check_verified(&txn_header(7, 0, 0, 1, 1), Some(mine), true).is_ok(), "not its guard: kept");
        s.abandon_verification(7, mine, false);
        assert!(s.check_verified(&txn_header(7, 0, 0, 1, 1), Some(mine), true).is_err());
        assert!(s.check_verified(&txn_header(8, 0, 0, 1, 1), Some(other), true).is_ok());
    }

    #[test]
    fn a_v2_marker_landing_during_the_next_transactions_verification_keeps_its_guard() {
        let mut s = ProducerStates::default();
        let commit = EndTxnMarker { committed: true, coordinator_epoch: 0 };
        // T1 wrote at epoch 0; EndTxn bumped the epoch to 1, and the client's
        // first produce of T2 (epoch 1) starts its verification while T1's
        // markers (epoch 1) are still being written.
        s.update(&txn_header(7, 0, 0, 2, 0), None);
        let guard = s.start_verification(7, 1, 0).unwrap();
        s.update_at(&marker_header(7, 1, 2), Some(commit), 2);
        // The coordinator adds the partition to T2 once T1 completed: the
        // append goes through.
        assert!(s.check_verified(&txn_header(7, 1, 0, 1, 3), Some(guard), true).is_ok());
        s.update(&txn_header(7, 1, 0, 1, 3), None);
        assert_eq!(s.first_unstable_offset(), Some(3), "T2 is open");

        // Before v2 the same marker may end the transaction the coordinator
        // confirmed (both at epoch 1): the guard stops being current.
        let mut s = ProducerStates::default();
        let guard = s.start_verification(8, 1, 0).unwrap();
        s.update_at(&marker_header(8, 1, 0), Some(commit), 1);
        assert!(matches!(
            s.check_verified(&txn_header(8, 1, 0, 1, 1), Some(guard), true),
            Err(LogError::TxnNotVerified { .. })
        ));
        // At v2, a marker of a later epoch (an abort that fenced the
        // verified epoch) still ends the verification.
        let guard = s.start_verification(8, 1, 0).unwrap();
        s.update_at(&marker_header(8, 2, 1), Some(commit), 2);
        assert!(matches!(
            s.check_verified(&txn_header(8, 1, 0, 1, 2), Some(guard), true),
            Err(LogError::TxnNotVerified { .. })
        ));
    }

    #[test]
    fn refused_retriable_verifications_keep_their_lowest_sequence_within_a_bound() {
        let mut s = ProducerStates::default();
        let count = MAX_VERIFICATIONS as i64 + 10;
        for pid in 0..count {
            let g = s.start_verification(pid, 0, 0).unwrap();
            s.abandon_verification(pid, g, true);
        }
        assert!(s.verifying.len() <= MAX_VERIFICATIONS, "bounded: {}", s.verifying.len());
        assert!(!s.verifying.contains_key(&0) && s.verifying.contains_key(&(count - 1)), "the oldest are forgotten");
        // A later batch of a kept one is held back; of a forgotten one, not.
        let kept = count - 1;
        let g = s.start_verification(kept, 0, 4).unwrap();
        assert!(matches!(
            s.check_verified(&txn_header(kept, 0, 4, 1, 0), Some(g), true),
            Err(LogError::OutOfOrderSequence { expected: 0, got: 4, .. })
        ));
        assert!(
            s.check_verified(&txn_header(kept, 0, 4, 1, 0), Some(g), false).is_ok(),
            "not the first of its request"
        );
        let g = s.start_verification(0, 0, 4).unwrap();
        assert!(s.check_verified(&txn_header(0, 0, 4, 1, 0), Some(g), true).is_ok());
        // An older epoch than the verification under way never gets its guard.
        let stale = s.start_verification(kept, -1, 0).unwrap();
        assert!(matches!(
            s.check_verified(&txn_header(kept, -1, 0, 1, 0), Some(stale), true),
            Err(LogError::TxnNotVerified { .. })
        ));
    }

    #[test]
    fn sequences_must_follow_on_and_retries_are_duplicates() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(&header(7, 0, 0, 3, 0)).unwrap(), SequenceCheck::Append);
        s.update(&header(7, 0, 0, 3, 0), None);
        s.update(&header(7, 0, 3, 2, 3), None);
        let SequenceCheck::Duplicate(dup) = s.check(&header(7, 0, 0, 3, 99)).unwrap() else {
            panic!("not a duplicate")
        };
        assert_eq!((dup.first_offset, dup.last_offset), (0, 2));
        assert!(matches!(
            s.check(&header(7, 0, 6, 1, 99)),
            Err(LogError::OutOfOrderSequence { expected: 5, got: 6, .. })
        ));
        assert_eq!(s.check(&header(7, 0, 5, 1, 99)).unwrap(), SequenceCheck::Append);
        assert_eq!(s.check(&header(8, 0, 42, 1, 99)).unwrap(), SequenceCheck::Append, "unknown producer");
    }

    #[test]
    fn epochs_fence_older_producers_and_restart_sequences() {
        let mut s = ProducerStates::default();
        s.update(&header(7, 1, 0, 1, 0), None);
        assert!(matches!(s.check(&header(7, 0, 1, 1, 1)), Err(LogError::InvalidProducerEpoch { current: 1, .. })));
        assert!(matches!(s.check(&header(7, 2, 5, 1, 1)), Err(LogError::OutOfOrderSequence { expected: 0, .. })));
        assert_eq!(s.check(&header(7, 2, 0, 1, 1)).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn sequences_wrap_and_only_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        s.update(&header(1, 0, i32::MAX - 1, 2, 0), None);
        assert_eq!(s.check(&header(1, 0, 0, 1, 2)).unwrap(), SequenceCheck::Append);
        for i in 0..6 {
            s.update(&header(1, 0, i, 1, 2 + i64::from(i)), None);
        }
        assert_eq!(s.get(1).unwrap().batches.len(), 5);
    }

    #[test]
    fn snapshots_round_trip_and_ones_past_the_log_end_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStates::default();
        s.update(&header(7, 0, 0, 3, 0), None);
        s.write_snapshot(dir.path(), 3).unwrap();
        s.update(&header(7, 0, 3, 3, 3), None);
        s.write_snapshot(dir.path(), 6).unwrap();
        s.write_snapshot(dir.path(), 9).unwrap();
        assert_eq!(list_snapshots(dir.path()).unwrap().len(), 2, "only the newest two kept");
        let (loaded, from) = ProducerStates::load_snapshot(dir.path(), 8).unwrap();
        assert_eq!(from, Some(6));
        assert_eq!(loaded, s);
        assert!(!snapshot_path(dir.path(), 9).exists());
    }
}
