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
//! The state is rebuilt from batch headers on open, starting from the latest
//! snapshot (`<offset>.snapshot`, JSON, written at segment roll and on flush)
//! so a restart only rescans the log written after it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::batch::BatchHeader;
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
}

/// What to do with a producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next in sequence: append it.
    Append,
    /// A retry of a batch already in the log: answer with these offsets.
    Duplicate(ProducerBatch),
}

/// Producer state of a partition.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
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
        Ok(SequenceCheck::Append)
    }

    /// Records a batch now in the log (with its final offsets).
    pub fn update(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry { epoch: header.producer_epoch, batches: VecDeque::new() });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
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
    }

    /// Forgets batches at or after `offset` (log truncated there); producers
    /// left with no batch are dropped.
    pub fn truncate_to(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
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
                    return Ok((ProducerStates { producers: s.producers }, Some(*offset)));
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

    #[test]
    fn sequences_must_follow_on_and_retries_are_duplicates() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(&header(7, 0, 0, 3, 0)).unwrap(), SequenceCheck::Append);
        s.update(&header(7, 0, 0, 3, 0));
        s.update(&header(7, 0, 3, 2, 3));
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
        s.update(&header(7, 1, 0, 1, 0));
        assert!(matches!(s.check(&header(7, 0, 1, 1, 1)), Err(LogError::InvalidProducerEpoch { current: 1, .. })));
        assert!(matches!(s.check(&header(7, 2, 5, 1, 1)), Err(LogError::OutOfOrderSequence { expected: 0, .. })));
        assert_eq!(s.check(&header(7, 2, 0, 1, 1)).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn sequences_wrap_and_only_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        s.update(&header(1, 0, i32::MAX - 1, 2, 0));
        assert_eq!(s.check(&header(1, 0, 0, 1, 2)).unwrap(), SequenceCheck::Append);
        for i in 0..6 {
            s.update(&header(1, 0, i, 1, 2 + i64::from(i)));
        }
        assert_eq!(s.get(1).unwrap().batches.len(), 5);
    }

    #[test]
    fn snapshots_round_trip_and_ones_past_the_log_end_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStates::default();
        s.update(&header(7, 0, 0, 3, 0));
        s.write_snapshot(dir.path(), 3).unwrap();
        s.update(&header(7, 0, 3, 3, 3));
        s.write_snapshot(dir.path(), 6).unwrap();
        s.write_snapshot(dir.path(), 9).unwrap();
        assert_eq!(list_snapshots(dir.path()).unwrap().len(), 2, "only the newest two kept");
        let (loaded, from) = ProducerStates::load_snapshot(dir.path(), 8).unwrap();
        assert_eq!(from, Some(6));
        assert_eq!(loaded, s);
        assert!(!snapshot_path(dir.path(), 9).exists());
    }
}
