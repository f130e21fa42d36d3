//! One partition's log: an ordered set of segments, the last of which is
//! active and takes appends.
//!
//! Invariants: there is always at least one segment; segment base offsets
//! increase and each segment's records lie below the next one's base;
//! `log_start_offset` is the larger of the first segment's base offset
//! (retention deletes whole segments) and the start DeleteRecords recorded
//! (checkpointed in [`LOG_START_OFFSET_FILE`], as Kafka's
//! `log-start-offset-checkpoint`; no segment lies wholly below it); the log
//! end offset is the active segment's next offset. Only one writer (the
//! holder of the `RwLock` write guard) mutates.
//!
//! Transactions: every appended batch — as leader, as follower, or replayed
//! on open — goes through the producer state, so a transaction marker ends
//! its producer's ongoing transaction the same way on every replica, and an
//! ABORT adds an entry to the `.txnindex` of the segment holding it (see
//! [`super::txn_index`]). The first offset of the oldest ongoing transaction
//! ([`PartitionLog::first_unstable_offset`]) bounds the last stable offset.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::batch::{self, BatchHeader};
use super::cleaner::{self, CleanStats, KeyOffsets};
use super::config::LogConfig;
use super::control::{self, EndTxnMarker};
use super::convert;
use super::epoch::LeaderEpochCache;
use super::error::LogError;
use super::file_records::FileRecords;
use super::producer_state::{CompletedTxn, ProducerStates, SequenceCheck, VerificationGuard};
use super::segment::{BatchParts, Recovery, Segment};
use super::txn_index::{self, AbortedTxn, TxnIndex};
use super::{AppendInfo, FileSlice, ReadResult, TimestampOffset, TopicPartition};

/// File name of the high watermark checkpoint in a partition directory:
/// a version line (`0`) and the high watermark.
pub const HIGH_WATERMARK_FILE: &str = "high-watermark-checkpoint";

/// File name of the log start offset checkpoint in a partition directory: a
/// version line (`0`) and the log start offset DeleteRecords (or a leader's
/// DeleteRecords, on a follower) moved the log to.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";

/// A partition's log on disk.
#[derive(Debug)]
pub struct PartitionLog {
    tp: TopicPartition,
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    /// The start DeleteRecords moved the log to; below it, records of the
    /// first segment are no longer served (see [`PartitionLog::log_start_offset`]).
    recorded_start: i64,
    epochs: LeaderEpochCache,
    producers: ProducerStates,
    /// Aborted-transaction indexes by segment base offset (opened on demand).
    txn_indexes: BTreeMap<i64, TxnIndex>,
    cleaned_up_to: i64,
    unflushed_records: u64,
    last_flush_ms: i64,
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering its segments:
    /// the active one is CRC-checked end to end and a torn tail truncated;
    /// older ones not verified since they last changed are verified first,
    /// and the log cut below a damaged batch (see [`super::scrub`]).
    pub fn open(dir: &Path, tp: TopicPartition, config: LogConfig) -> Result<PartitionLog, LogError> {
        PartitionLog::open_after_shutdown(dir, tp, config, false)
    }

    /// [`PartitionLog::open`], knowing whether the broker last shut down
    /// cleanly (every log flushed, see [`LogManager`](super::LogManager)):
    /// then the older segments are opened from their indexes alone, without
    /// opening their `.log` files ([`Segment::open_sealed`]); the active one
    /// is recovered all the same.
    pub fn open_after_shutdown(
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<PartitionLog, LogError> {
        std::fs::create_dir_all(dir).map_err(LogError::io(dir))?;
        super::scrub::verify_unverified_segments(dir, &tp)?;
        let mut bases = Vec::new();
        let mut txn_index_bases = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).map_err(LogError::io(dir))? {
            let entry = entry.map_err(LogError::io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".cleaned") || name.ends_with(".tmp") {
                // An interrupted compaction or checkpoint write: the original stands.
                std::fs::remove_file(entry.path()).map_err(LogError::io(entry.path()))?;
                continue;
            }
            if super::reaper::is_set_aside(&name) {
                // Deleted before the broker stopped, not yet removed.
                super::reaper::remove_file(entry.path());
                continue;
            }
            if let Some(base) = name.strip_suffix(".txnindex").and_then(|stem| stem.parse::<i64>().ok()) {
                txn_index_bases.insert(base);
            }
            if let Some(stem) = name.strip_suffix(".log") {
                match stem.parse::<i64>() {
                    Ok(base) if stem.len() == 20 && base >= 0 => bases.push(base),
                    _ => {
                        tracing::warn!(file = %entry.path().display(), "ignoring a .log file not named by a base offset")
                    }
                }
            }
        }
        bases.sort_unstable();
        let mut segments = BTreeMap::new();
        let last = bases.len().saturating_sub(1);
        for (i, base) in bases.iter().enumerate() {
            if clean_shutdown
                && i < last
                && let Some(segment) = Segment::open_sealed(dir, *base, bases[i + 1])?
            {
                segments.insert(*base, segment);
                continue;
            }
            let (segment, recovery) = Segment::open(dir, *base, i == last, config.index_interval_bytes)?;
            if recovery != Recovery::default() {
                tracing::info!(partition = %tp, base_offset = base, ?recovery, "recovered segment");
            }
            segments.insert(*base, segment);
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0)?);
        }
        let epochs = LeaderEpochCache::load(dir)?;
        let mut txn_indexes = BTreeMap::new();
        for base in segments.keys() {
            let index = match txn_index_bases.remove(base) {
                true => TxnIndex::open(dir, *base)?,
                false => TxnIndex::empty(dir, *base),
            };
            txn_indexes.insert(*base, index);
        }
        // Left by a segment deleted in a crash: a segment created later at
        // that base must not inherit its entries.
        for base in txn_index_bases {
            TxnIndex::empty(dir, base).delete()?;
        }
        let mut log = PartitionLog {
            tp,
            dir: dir.to_owned(),
            config,
            segments,
            recorded_start: read_checkpoint(&dir.join(LOG_START_OFFSET_FILE)).unwrap_or(0),
            epochs,
            producers: ProducerStates::default(),
            txn_indexes,
            cleaned_up_to: 0,
            unflushed_records: 0,
            last_flush_ms: 0,
        };
        // The checkpoint may be ahead of a truncated tail or behind retention.
        log.recorded_start = log.recorded_start.min(log.log_end_offset());
        // A crash may have come between a start's checkpoint and the deletion
        // of the segments below it.
        log.delete_segments_below_start()?;
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        log.epochs.truncate_from_end(end)?;
        log.epochs.truncate_from_start(start)?;
        log.rebuild_producer_state()?;
        Ok(log)
    }

    /// Loads the latest producer snapshot and replays the batches written
    /// after it; the aborted-transaction indexes are rebuilt from there too
    /// (their entries for markers at or past it dropped, then written again).
    fn rebuild_producer_state(&mut self) -> Result<(), LogError> {
        let (producers, from) = ProducerStates::load_snapshot(&self.dir, self.log_end_offset())?;
        let from = from.unwrap_or(0).max(self.log_start_offset());
        self.producers = producers;
        for index in self.txn_indexes.values_mut() {
            index.truncate_to(from)?;
        }
        let PartitionLog { segments, producers, txn_indexes, dir, .. } = self;
        for (base, segment) in segments.iter().filter(|(_, s)| s.next_offset() > from) {
            segment.for_each_batch_from(from, |header, control_batch| {
                let marker = control_batch.map(control::parse_marker_batch).transpose()?.flatten();
                track_batch(producers, txn_indexes, dir, *base, header, marker, 0)
            })?;
        }
        Ok(())
    }

    /// Appends a transaction marker (a control batch, see [`control`]) for
    /// a producer as leader, ending its ongoing transaction. Refused with
    /// [`LogError::CoordinatorFenced`] when the producer's last marker came
    /// from a newer coordinator epoch, and with
    /// [`LogError::InvalidProducerEpoch`] when the producer has a newer epoch.
    #[cfg(test)]
    pub fn append_txn_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_txn_marker_at(producer_id, producer_epoch, marker, 0, leader_epoch, now_ms)
    }

    /// [`PartitionLog::append_txn_marker`] for a transaction at
    /// `transaction_version`: from 2 a marker is also refused (writing
    /// nothing) when the producer has a transaction open at the marker's
    /// epoch — a delayed marker of an earlier transaction.
    pub fn append_txn_marker_at(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
        transaction_version: i16,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.producers.check_marker(producer_id, producer_epoch, marker.coordinator_epoch, transaction_version)?;
        let mut bytes = control::encode_marker_batch(producer_id, producer_epoch, marker, now_ms)?;
        let offset = self.log_end_offset();
        batch::set_base_offset(&mut bytes, offset);
        batch::set_partition_leader_epoch(&mut bytes, leader_epoch);
        let (head_bytes, body) = bytes.split_at(batch::HEADER_SIZE);
        let mut head = [0u8; batch::HEADER_SIZE];
        head.copy_from_slice(head_bytes);
        let header = BatchHeader::parse(&head)?;
        self.maybe_roll(bytes.len() as u64, offset, header.max_timestamp)?;
        let (interval, segment_bytes) = (self.config.index_interval_bytes, self.config.segment_bytes);
        self.active_mut().append(&[BatchParts { head, body, header }], interval, segment_bytes)?;
        let base = self.active().base_offset();
        let (producers, indexes) = (&mut self.producers, &mut self.txn_indexes);
        track_batch(producers, indexes, &self.dir, base, &header, Some(marker), transaction_version)?;
        self.epochs.assign(leader_epoch, offset)?;
        self.unflushed_records += 1;
        Ok(AppendInfo {
            base_offset: offset,
            last_offset: offset,
            record_count: 1,
            max_timestamp: header.max_timestamp,
            log_append_time: None,
            bytes: bytes.len(),
        })
    }

    /// The first offset of the oldest ongoing transaction, if any: the last
    /// stable offset is the smaller of it and the high watermark.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.first_unstable_offset()
    }

    /// The aborted transactions overlapping `[from, upper_bound)` (for a
    /// read_committed fetch from `from`), oldest marker first.
    pub fn aborted_transactions(&self, from: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        let first = self.segments.range(..=from).next_back().map_or(i64::MIN, |(base, _)| *base);
        txn_index::collect(self.txn_indexes.range(first..).map(|(_, i)| i), from, upper_bound)
    }

    /// Validates producer batches, refuses keyless records in a compacted
    /// log, recompresses to `compression.type` (see [`convert`]), assigns
    /// them offsets from the log end, stamps `leader_epoch` (and log-append
    /// time if configured), and appends them. Nothing is written unless
    /// every batch is valid.
    pub fn append_as_leader(&mut self, batches: &[u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo, LogError> {
        self.append_leader(batches, leader_epoch, now_ms, None)
    }

    /// [`append_as_leader`](Self::append_as_leader) for a client's produce:
    /// each transactional batch must continue its producer's ongoing
    /// transaction or come with the producer's current verification
    /// `guard` (see [`ProducerStates::check_verified`]); nothing is written
    /// otherwise ([`LogError::TxnNotVerified`]).
    pub fn append_as_leader_verified(
        &mut self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        guard: Option<VerificationGuard>,
    ) -> Result<AppendInfo, LogError> {
        self.append_leader(batches, leader_epoch, now_ms, Some(guard))
    }

    /// Starts verifying a producer's transactional batch starting at
    /// `base_sequence` (see [`ProducerStates::start_verification`]).
    pub fn start_txn_verification(
        &mut self,
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
    ) -> Option<VerificationGuard> {
        self.producers.start_verification(producer_id, epoch, base_sequence)
    }

    /// Drops a verification the coordinator refused (`retriable`: the
    /// producer will retry; see [`ProducerStates::abandon_verification`]).
    pub fn abandon_txn_verification(&mut self, producer_id: i64, guard: VerificationGuard, retriable: bool) {
        self.producers.abandon_verification(producer_id, guard, retriable);
    }

    /// A leader append; `verify` holds the client's verification guard when
    /// its transactional batches must be checked.
    fn append_leader(
        &mut self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        verify: Option<Option<VerificationGuard>>,
    ) -> Result<AppendInfo, LogError> {
        let refs = batch::validate_batches(batches, self.config.max_message_bytes)?;
        if let Some(duplicate) = self.check_sequences(&refs)? {
            return Ok(duplicate);
        }
        if let Some(guard) = verify {
            let mut seen: Vec<i64> = Vec::new();
            for r in &refs {
                // Only transactional batches are checked (and a request
                // carries one producer's): `seen` stays tiny.
                let first = r.header.is_transactional() && !seen.contains(&r.header.producer_id);
                if first {
                    seen.push(r.header.producer_id);
                }
                self.producers.check_verified(&r.header, guard, first)?;
            }
        }
        let compacts = self.config.cleanup_policy.compacts();
        let converted = convert::convert(batches, &refs, compacts, self.config.compression, &self.tp)?;
        let (batches, refs) = match &converted {
            // Recompressed batches are checked again, their size limit included.
            Some(stored) => (&stored[..], batch::validate_batches(stored, self.config.max_message_bytes)?),
            None => (batches, refs),
        };
        let base_offset = self.log_end_offset();
        let log_append = self.config.message_timestamp_type_log_append;
        let mut next = base_offset;
        let mut max_timestamp = -1;
        // Only the 61-byte headers are patched (in copies); the records are
        // written straight from the request buffer.
        let mut parts = Vec::with_capacity(refs.len());
        for r in &refs {
            let whole = &batches[r.position..r.position + r.header.size()];
            let (head_bytes, body) = whole.split_at(batch::HEADER_SIZE);
            let mut head = [0u8; batch::HEADER_SIZE];
            head.copy_from_slice(head_bytes);
            batch::set_base_offset(&mut head, next);
            batch::set_partition_leader_epoch(&mut head, leader_epoch);
            if log_append {
                batch::set_log_append_time(&mut head, body, now_ms);
            }
            let header = BatchHeader::parse(&head)?;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            next = header.next_offset();
            parts.push(BatchParts { head, body, header });
        }
        let record_count = next - base_offset;
        self.maybe_roll(batches.len() as u64, next - 1, max_timestamp)?;
        let (interval, segment_bytes) = (self.config.index_interval_bytes, self.config.segment_bytes);
        self.active_mut().append(&parts, interval, segment_bytes)?;
        // The batches are in the log: producer state first, so a failure in
        // what follows cannot let a retry be appended twice. (Producers send
        // no control batches.)
        let active = self.active().base_offset();
        for part in &parts {
            track_batch(&mut self.producers, &mut self.txn_indexes, &self.dir, active, &part.header, None, 0)?;
        }
        self.epochs.assign(leader_epoch, base_offset)?;
        self.unflushed_records += record_count as u64;
        if self.unflushed_records >= self.config.flush_messages {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            record_count,
            max_timestamp,
            log_append_time: log_append.then_some(now_ms),
            bytes: batches.len(),
        })
    }

    /// Appends batches exactly as the leader stored them (offsets and
    /// partition leader epochs already set), as a follower does. Every batch
    /// is validated first (CRC-32C and structure, as for a producer's, but
    /// with no size limit and with the sparse offsets compaction leaves), and
    /// the batches must continue the log: the first starts at the log end
    /// offset and each next one right after the previous, or — in a
    /// compacted log, whose leader may have cleaned records away — anywhere
    /// after it. Nothing is written unless all of that holds.
    ///
    /// The leader epoch cache learns each batch's epoch, and the producer
    /// state each idempotent batch (unchecked: the leader checked it), so
    /// this replica deduplicates correctly if it becomes leader.
    pub fn append_as_follower(&mut self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        let refs = batch::validate_replicated_batches(batches)?;
        let allow_gaps = self.config.cleanup_policy.compacts();
        let mut expected = self.log_end_offset();
        for r in &refs {
            let found = r.header.base_offset;
            if found < expected || found > expected && !allow_gaps {
                return Err(LogError::UnexpectedAppendOffset { expected, found });
            }
            expected = r.header.next_offset();
        }
        let (Some(first), Some(last)) = (refs.first(), refs.last()) else {
            return Err(LogError::corrupt("no record batch to replicate"));
        };
        let base_offset = first.header.base_offset;
        let next = last.header.next_offset();
        let max_timestamp = refs.iter().map(|r| r.header.max_timestamp).max().unwrap_or(-1);
        let parts: Vec<BatchParts<'_>> = refs
            .iter()
            .map(|r| {
                let whole = &batches[r.position..r.position + r.header.size()];
                let (head_bytes, body) = whole.split_at(batch::HEADER_SIZE);
                let mut head = [0u8; batch::HEADER_SIZE];
                head.copy_from_slice(head_bytes);
                BatchParts { head, body, header: r.header }
            })
            .collect();
        // Transaction markers are read before anything is written: a marker
        // that does not parse refuses the whole append.
        let markers = refs
            .iter()
            .map(|r| match r.header.is_control() {
                true => control::parse_marker_batch(&batches[r.position..r.position + r.header.size()]),
                false => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.maybe_roll(batches.len() as u64, next - 1, max_timestamp)?;
        let (interval, segment_bytes) = (self.config.index_interval_bytes, self.config.segment_bytes);
        self.active_mut().append(&parts, interval, segment_bytes)?;
        let record_count: i64 = refs.iter().map(|r| i64::from(r.header.records_count)).sum();
        let active = self.active().base_offset();
        for (part, marker) in parts.iter().zip(markers) {
            track_batch(&mut self.producers, &mut self.txn_indexes, &self.dir, active, &part.header, marker, 0)?;
        }
        for part in &parts {
            self.epochs.assign(part.header.partition_leader_epoch, part.header.base_offset)?;
        }
        self.unflushed_records += record_count as u64;
        if self.unflushed_records >= self.config.flush_messages {
            self.flush()?;
            self.last_flush_ms = wall_clock_ms();
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            record_count,
            max_timestamp,
            log_append_time: None,
            bytes: batches.len(),
        })
    }

    /// Records that leader epoch `epoch` starts at the log end offset (a
    /// replica becoming leader does this before any append, so followers can
    /// find where they diverge from it at once).
    pub fn assign_epoch_start(&mut self, epoch: i32) -> Result<(), LogError> {
        let end = self.log_end_offset();
        self.epochs.assign(epoch, end)
    }

    /// For a follower that last fetched under `epoch`: the largest epoch
    /// this log knows that is ≤ `epoch`, and the offset where it ends (the
    /// next epoch's start, or the log end offset for the latest). When every
    /// known epoch is newer, `epoch` itself and the first known epoch's start
    /// (Kafka's answer); `None` when the log knows no epoch at all.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        let end = self.log_end_offset();
        self.epochs
            .end_offset_for(epoch, end)
            .or_else(|| self.epochs.entries().first().map(|e| (epoch, e.start_offset)))
    }

    /// Checks idempotent producers' sequences for batches about to be
    /// appended. A lone batch that retries one already in the log gives the
    /// original append's result, to be answered without writing again.
    fn check_sequences(&self, refs: &[batch::BatchRef]) -> Result<Option<AppendInfo>, LogError> {
        if refs.iter().all(|r| !r.header.has_producer_id()) {
            return Ok(None);
        }
        if let [only] = refs {
            return match self.producers.check(&only.header)? {
                SequenceCheck::Append => Ok(None),
                SequenceCheck::Duplicate(original) => {
                    tracing::debug!(partition = %self.tp, producer_id = only.header.producer_id, "duplicate batch");
                    Ok(Some(AppendInfo {
                        base_offset: original.first_offset,
                        last_offset: original.last_offset,
                        record_count: original.last_offset - original.first_offset + 1,
                        max_timestamp: original.max_timestamp,
                        log_append_time: None,
                        bytes: 0,
                    }))
                }
            };
        }
        // Several batches: check each against the state the earlier ones leave.
        let mut staged = self.producers.clone();
        let mut next = self.log_end_offset();
        for r in refs {
            if let SequenceCheck::Duplicate(_) = staged.check(&r.header)? {
                return Err(LogError::corrupt("a retried idempotent batch must be sent alone, not with other batches"));
            }
            let mut header = r.header;
            header.base_offset = next;
            next = header.next_offset();
            staged.update(&header, None);
        }
        Ok(None)
    }

    /// Rolls a new active segment if the append would overflow the current
    /// one's size or relative offsets, if its offset or time index is full
    /// (`segment.index.bytes`, counting one more entry each), or if the
    /// incoming batches' timestamp is `segment.ms` past the segment's first
    /// batch (Kafka's rule, which gives the same answer before and after a
    /// restart).
    fn maybe_roll(&mut self, append_bytes: u64, last_offset: i64, incoming_max_timestamp: i64) -> Result<(), LogError> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let index_bytes = self.config.segment_index_bytes as usize;
        let index_full = (active.offset_index().entries().len() + 1) * 8 > index_bytes
            || (active.time_index().entries().len() + 1) * 12 > index_bytes;
        let too_big = active.size() + append_bytes > self.config.segment_bytes || index_full;
        let offsets_overflow = last_offset - active.base_offset() > i64::from(i32::MAX);
        let too_old =
            active.rolling_base_ms().is_some_and(|t| incoming_max_timestamp.saturating_sub(t) > self.config.segment_ms);
        if too_big || offsets_overflow || too_old {
            self.roll()?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset.
    pub fn roll(&mut self) -> Result<(), LogError> {
        let next = self.log_end_offset();
        if self.active().base_offset() == next {
            return Ok(());
        }
        self.active_mut().seal()?;
        self.sync_txn_indexes()?;
        self.producers.write_snapshot(&self.dir, next)?;
        let segment = Segment::create(&self.dir, next)?;
        self.segments.insert(next, segment);
        self.txn_indexes.insert(next, TxnIndex::fresh(&self.dir, next)?);
        tracing::debug!(partition = %self.tp, base_offset = next, "rolled a new segment");
        Ok(())
    }

    /// Fsyncs the log if `flush.ms` has passed since the last fsync, for the
    /// housekeeping loop.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self.unflushed_records > 0 && now_ms - self.last_flush_ms >= self.config.flush_ms {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Reads whole batches from `fetch_offset`, at most `max_bytes` (but at
    /// least one batch, as Kafka does, so a large batch is never stuck),
    /// none reaching `max_offset_exclusive` (the high watermark).
    pub fn read_up_to(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
    ) -> Result<ReadResult, LogError> {
        let slice = self.slice_up_to(fetch_offset, max_bytes, max_offset_exclusive, true)?;
        let records = match &slice.records {
            Some(file) => file.read_to_bytes()?,
            None => bytes::Bytes::new(),
        };
        Ok(ReadResult { records, log_start_offset: slice.log_start_offset, log_end_offset: slice.log_end_offset })
    }

    /// Locates the batches [`PartitionLog::read_up_to`] would read, without
    /// reading them: a fetch sends them from the file to the socket. Without
    /// `min_one_batch`, `max_bytes` is strict: a first batch larger than it
    /// gives nothing (a fetch's later partitions, as in Kafka).
    pub fn slice_up_to(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_batch: bool,
    ) -> Result<FileSlice, LogError> {
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if fetch_offset < start || fetch_offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        let mut records = None;
        if fetch_offset < max_offset_exclusive.min(end) {
            let first = self.segments.range(..=fetch_offset).next_back().map_or(start, |(base, _)| *base);
            // Segments emptied by compaction, or whose records all lie below
            // the fetch offset, are skipped; the first segment holding a batch
            // at or past it answers (possibly nothing, if held back by
            // max_offset_exclusive).
            for segment in self.segments.range(first..).map(|(_, s)| s) {
                if let Some(first) = segment.find_batch(fetch_offset)? {
                    records = segment.slice_from(first, max_bytes, max_offset_exclusive, min_one_batch)?;
                    break;
                }
            }
        }
        Ok(FileSlice { records, log_start_offset: start, log_end_offset: end })
    }

    /// Whether `records` (a read of this log) must be verified before it is
    /// sent to a consumer: always with `verify.reads=always`; otherwise only
    /// if it reaches past the bytes its segment holds for sound
    /// ([`Segment::verified_to`]). A read of another log's file, or of a
    /// segment since replaced, is always verified.
    pub fn read_needs_check(&self, records: &FileRecords) -> bool {
        if self.config.verify_every_read {
            return true;
        }
        self.segment_of(records).is_none_or(|s| records.position() + records.len() as u64 > s.verified_to())
    }

    /// Holds none of the log for sound any more, so the next consumer reads
    /// of every byte are checked (see [`PartitionLog::read_needs_check`]).
    pub fn forget_verified(&mut self) {
        self.segments.values_mut().for_each(Segment::forget_verified);
    }

    /// Records that `records`, a read of this log, was verified whole.
    pub fn read_checked(&self, records: &FileRecords) {
        if let Some(segment) = self.segment_of(records) {
            segment.mark_verified(records.position(), records.position() + records.len() as u64);
        }
    }

    /// The segment `records` was read from (its last batch lies below the
    /// read's end offset, so in the last segment based below it), if that is
    /// still the file read.
    fn segment_of(&self, records: &FileRecords) -> Option<&Segment> {
        let end = records.end_offset()?;
        let (_, segment) = self.segments.range(..end).next_back()?;
        (segment.log_path() == records.path()).then_some(segment)
    }

    /// The first record with timestamp at or after `timestamp`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>, LogError> {
        let start = self.log_start_offset();
        for segment in self.segments.values() {
            if segment.max_timestamp().is_some_and(|(max, _)| max >= timestamp)
                && let Some((ts, offset)) = segment.find_by_timestamp(timestamp, start)?
            {
                return Ok(Some(TimestampOffset {
                    timestamp: ts,
                    offset,
                    leader_epoch: self.epochs.epoch_for_offset(offset),
                }));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the earliest if tied), as
    /// Kafka answers ListOffsets MAX_TIMESTAMP: the segments only know the
    /// batch holding it, so that batch is decoded to find the record (in a
    /// batch stamped with log-append time, its first record).
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampOffset>, LogError> {
        let mut best: Option<(i64, &Segment)> = None;
        for segment in self.segments.values() {
            if let Some((ts, _)) = segment.max_timestamp()
                && best.is_none_or(|(b, _)| ts > b)
            {
                best = Some((ts, segment));
            }
        }
        let Some((timestamp, segment)) = best else { return Ok(None) };
        let offset = match segment.find_by_timestamp(timestamp, segment.base_offset())? {
            Some((_, offset)) => offset,
            // The segment's own bookkeeping, should the batch no longer say so.
            None => segment.max_timestamp().map_or(segment.base_offset(), |(_, offset)| offset),
        };
        Ok(Some(TimestampOffset { timestamp, offset, leader_epoch: self.epochs.epoch_for_offset(offset) }))
    }

    /// Deletes whole segments past `retention.ms` / `retention.bytes` (when
    /// the cleanup policy deletes). An expired active segment is rolled first
    /// so it can go too. Returns how many segments were deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        if !self.config.cleanup_policy.deletes() {
            return Ok(0);
        }
        let retention_ms = self.config.retention_ms;
        let expired = |s: &Segment| {
            retention_ms >= 0 && s.max_timestamp().is_some_and(|(ts, _)| now_ms.saturating_sub(ts) > retention_ms)
        };
        if expired(self.active()) {
            self.roll()?;
        }
        let mut doomed = Vec::new();
        let mut size: i64 = self.size_bytes() as i64;
        let active_base = self.active().base_offset();
        // Segments holding records of an ongoing transaction stay.
        let unstable = self.first_unstable_offset().unwrap_or(i64::MAX);
        for (base, segment) in self.segments.range(..active_base).take_while(|(_, s)| s.next_offset() <= unstable) {
            let over_size =
                self.config.retention_bytes >= 0 && size - segment.size() as i64 >= self.config.retention_bytes;
            if expired(segment) || over_size {
                doomed.push(*base);
                size -= segment.size() as i64;
            } else {
                break; // only a prefix of segments is ever deleted
            }
        }
        for base in &doomed {
            self.remove_segment(*base)?;
        }
        if !doomed.is_empty() {
            let start = self.log_start_offset();
            self.epochs.truncate_from_start(start)?;
            tracing::info!(partition = %self.tp, deleted = doomed.len(), log_start_offset = start, "retention deleted segments");
        }
        Ok(doomed.len())
    }

    /// Compacts the segments below the active one — and below the first one
    /// holding a record younger than `min.compaction.lag.ms` — when the
    /// cleanup policy compacts and that bound has moved since the last run:
    /// keeps the latest record per key (keys seen anywhere in the log, active
    /// segment included), drops tombstones older than `delete.retention.ms`.
    pub fn compact(&mut self, now_ms: i64) -> Result<CleanStats, LogError> {
        let mut total = CleanStats::default();
        // Segments from the first one with a record newer than
        // `min.compaction.lag.ms` on wait, as does the active one (Kafka's
        // first uncleanable offset).
        let lag = self.config.min_compaction_lag_ms;
        let clean_below = self
            .segments
            .iter()
            .find(|(_, s)| lag > 0 && s.max_timestamp().is_some_and(|(ts, _)| now_ms.saturating_sub(ts) < lag))
            .map_or(self.active().base_offset(), |(base, _)| *base)
            .min(self.active().base_offset());
        // Nor is a segment holding records of an ongoing transaction cleaned
        // (Kafka's first unstable offset bounds the cleaner too).
        let unstable = self.first_unstable_offset();
        let clean_below = match unstable.and_then(|u| self.segments.range(..=u).next_back()) {
            Some((base, _)) => clean_below.min(*base),
            None => clean_below,
        };
        if !self.config.cleanup_policy.compacts() || clean_below <= self.cleaned_up_to {
            return Ok(total);
        }
        // Records of aborted transactions, and everything from the first
        // unstable offset on, never count as a key's latest value: an
        // aborted (or possibly aborted) write must not make the committed
        // value before it look superseded. The aborted records themselves
        // are then not the latest for their key, and are cleaned away.
        let mut aborted: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in self.aborted_transactions(i64::MIN, i64::MAX) {
            aborted.entry(t.producer_id).or_default().push((t.first_offset, t.last_offset));
        }
        let skip = |h: &BatchHeader| {
            unstable.is_some_and(|u| h.last_offset() >= u)
                || h.is_transactional()
                    && aborted
                        .get(&h.producer_id)
                        .is_some_and(|ranges| ranges.iter().any(|(f, l)| (*f..=*l).contains(&h.base_offset)))
        };
        let mut latest = KeyOffsets::new();
        for segment in self.segments.values() {
            cleaner::collect_key_offsets(&segment.read_all()?, &mut latest, skip)?;
        }
        let bases: Vec<i64> = self.segments.range(..clean_below).map(|(b, _)| *b).collect();
        let first = bases.first().copied();
        for base in bases {
            let Some(segment) = self.segments.get(&base) else { continue };
            if segment.is_empty() && Some(base) != first {
                // Emptied by an earlier run: nothing to keep it for.
                self.remove_segment(base)?;
                continue;
            }
            let drop_tombstones = segment
                .max_timestamp()
                .is_some_and(|(ts, _)| now_ms.saturating_sub(ts) > self.config.delete_retention_ms);
            let (cleaned, stats) = cleaner::clean_segment(&segment.read_all()?, &latest, drop_tombstones)?;
            total.records_read += stats.records_read;
            total.records_removed += stats.records_removed;
            // Nothing removed: the segment stays as it is (taken out of the
            // map only when it is replaced).
            let Some(cleaned) = cleaned else { continue };
            let Some(segment) = self.segments.remove(&base) else { continue };
            let interval = self.config.index_interval_bytes;
            let segment = match segment.replace_contents(&cleaned, interval) {
                Ok(segment) => segment,
                Err(e) => {
                    // Whatever step failed, the segment on disk is whole (old or
                    // new): put it back before reporting.
                    let (segment, _) = Segment::open(&self.dir, base, true, interval)?;
                    self.segments.insert(base, segment);
                    return Err(e);
                }
            };
            if segment.is_empty() && Some(base) != first {
                segment.delete()?;
                self.txn_indexes.remove(&base);
            } else {
                self.segments.insert(base, segment);
            }
        }
        self.cleaned_up_to = clean_below;
        if total.records_removed > 0 {
            tracing::info!(partition = %self.tp, removed = total.records_removed, "compacted log");
        }
        Ok(total)
    }

    /// Moves the log start offset up to `offset` (DeleteRecords on a
    /// leader, or a follower following its leader's start), at most to the
    /// log end: checkpoints it first, then deletes the segments wholly below
    /// it (the next segment starts at or below it) and the leader epoch
    /// entries below it. Records of the first remaining segment below the
    /// new start stay on disk but are no longer served. Returns whether the
    /// start moved.
    pub fn advance_log_start(&mut self, offset: i64) -> Result<bool, LogError> {
        let offset = offset.min(self.log_end_offset());
        if offset <= self.log_start_offset() {
            return Ok(false);
        }
        write_checkpoint(&self.dir.join(LOG_START_OFFSET_FILE), offset)?;
        self.recorded_start = offset;
        self.delete_segments_below_start()?;
        self.epochs.truncate_from_start(offset)?;
        tracing::info!(partition = %self.tp, log_start_offset = offset, "log start offset moved");
        Ok(true)
    }

    /// Deletes the segments (never the active one) whose records all lie
    /// below the recorded start.
    fn delete_segments_below_start(&mut self) -> Result<(), LogError> {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let doomed: Vec<i64> = bases.windows(2).take_while(|w| w[1] <= self.recorded_start).map(|w| w[0]).collect();
        for base in doomed {
            self.remove_segment(base)?;
        }
        Ok(())
    }

    /// Removes every record at or after `offset` (a follower diverging from
    /// its new leader); deletes segments wholly above it. A batch holding
    /// `offset` goes whole, so the new log end may be below `offset`.
    ///
    /// Whatever the log end, leader epoch entries starting at or after it are
    /// dropped — even when nothing is truncated: a replica that became leader
    /// and appended nothing before losing leadership has such an entry, and
    /// it would otherwise name an epoch this log holds no record of (Kafka
    /// does the same). Producer state is rebuilt from the newest snapshot at
    /// or below the new end (newer ones are deleted), so producers whose last
    /// batches were cut are known again by their earlier ones.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset >= self.log_end_offset() {
            let end = self.log_end_offset();
            return self.epochs.truncate_from_end(end);
        }
        let offset = offset.max(self.log_start_offset());
        let above: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in above {
            self.remove_segment(base)?;
        }
        self.active_mut().truncate_to(offset)?;
        let end = self.log_end_offset();
        self.cleaned_up_to = self.cleaned_up_to.min(self.active().base_offset());
        self.epochs.truncate_from_end(end)?;
        self.rebuild_producer_state()?;
        tracing::info!(partition = %self.tp, requested = offset, log_end_offset = end, "truncated log");
        Ok(())
    }

    /// Empties the log and restarts it at `offset` (a follower whose log lies
    /// wholly below its leader's log start offset, which retention moved):
    /// every segment, epoch entry and producer snapshot goes.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        let offset = offset.max(0);
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for base in bases {
            self.remove_segment(base)?;
        }
        self.segments.insert(offset, Segment::create(&self.dir, offset)?);
        self.recorded_start = offset;
        self.txn_indexes.insert(offset, TxnIndex::fresh(&self.dir, offset)?);
        self.cleaned_up_to = offset;
        self.epochs.truncate_from_end(i64::MIN)?;
        // Deletes every snapshot (all are above -1) and starts empty.
        let (producers, _) = ProducerStates::load_snapshot(&self.dir, -1)?;
        self.producers = producers;
        self.unflushed_records = 0;
        tracing::info!(partition = %self.tp, log_start_offset = offset, "emptied log to restart at the leader's start");
        Ok(())
    }

    /// The high watermark last checkpointed in this partition's directory
    /// (Kafka's `replication-offset-checkpoint`, one file per partition
    /// here), kept within the log's bounds; `None` when there is none or it
    /// is unreadable.
    pub fn high_watermark_checkpoint(&self) -> Option<i64> {
        let hw = read_checkpoint(&self.dir.join(HIGH_WATERMARK_FILE))?;
        Some(hw.clamp(self.log_start_offset(), self.log_end_offset()))
    }

    /// Checkpoints `high_watermark` (written to a temporary file, synced and
    /// renamed into place, so a crash leaves the old or the new value).
    pub fn write_high_watermark_checkpoint(&self, high_watermark: i64) -> Result<(), LogError> {
        write_checkpoint(&self.dir.join(HIGH_WATERMARK_FILE), high_watermark)
    }

    /// Writes buffered index entries and fsyncs the active segment.
    pub fn flush(&mut self) -> Result<(), LogError> {
        for segment in self.segments.values_mut() {
            segment.flush(true)?;
        }
        self.sync_txn_indexes()?;
        let end = self.log_end_offset();
        self.producers.write_snapshot(&self.dir, end)?;
        self.unflushed_records = 0;
        Ok(())
    }

    /// Replaces the log's settings (topic config change).
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// First offset still in the log: the first segment's base, or the
    /// start DeleteRecords recorded if higher.
    pub fn log_start_offset(&self) -> i64 {
        self.segments.keys().next().copied().unwrap_or(0).max(self.recorded_start)
    }

    /// Offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Total bytes of all `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.values()
    }

    /// Latest leader epoch appended under.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// The leader epoch cache.
    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Idempotent producers' state.
    pub fn producer_states(&self) -> &ProducerStates {
        &self.producers
    }

    /// Which partition this is.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes a segment's files (its `.txnindex` with them) and forgets it.
    fn remove_segment(&mut self, base: i64) -> Result<(), LogError> {
        self.txn_indexes.remove(&base);
        match self.segments.remove(&base) {
            Some(segment) => segment.delete(),
            None => Ok(()),
        }
    }

    /// Fsyncs the aborted-transaction indexes written since the last sync
    /// (before a producer state snapshot, which vouches for them).
    fn sync_txn_indexes(&mut self) -> Result<(), LogError> {
        for index in self.txn_indexes.values_mut() {
            index.sync()?;
        }
        Ok(())
    }

    fn active(&self) -> &Segment {
        match self.segments.values().next_back() {
            Some(s) => s,
            None => unreachable!("a partition log always has a segment"),
        }
    }

    fn active_mut(&mut self) -> &mut Segment {
        match self.segments.values_mut().next_back() {
            Some(s) => s,
            None => unreachable!("a partition log always has a segment"),
        }
    }
}

/// A checkpoint file's offset (a version line `0`, then the offset); `None`
/// when there is none or it is unreadable.
fn read_checkpoint(path: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        tracing::warn!(path = %path.display(), "ignoring a checkpoint of an unknown version");
        return None;
    }
    lines.next()?.trim().parse().ok()
}

/// Writes a checkpoint file: to a temporary file, synced and renamed into
/// place, so a crash leaves the old or the new value.
fn write_checkpoint(path: &Path, offset: i64) -> Result<(), LogError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(LogError::io(&tmp))?;
    f.write_all(format!("0\n{offset}\n").as_bytes()).map_err(LogError::io(&tmp))?;
    f.sync_all().map_err(LogError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(LogError::io(path))
}

/// Records a batch now in the log in the producer state; a marker ending an
/// aborted transaction adds its entry to the `.txnindex` of the segment
/// holding it (at `segment_base`), with the first unstable offset after it.
/// `transaction_version`: the marker's transaction's, when this leader wrote
/// it (0 when unknown: replayed or replicated; see [`ProducerStates::update_at`]).
fn track_batch(
    producers: &mut ProducerStates,
    txn_indexes: &mut BTreeMap<i64, TxnIndex>,
    dir: &Path,
    segment_base: i64,
    header: &BatchHeader,
    marker: Option<EndTxnMarker>,
    transaction_version: i16,
) -> Result<(), LogError> {
    let completed = producers.update_at(header, marker, transaction_version);
    let Some(CompletedTxn { producer_id, first_offset, last_offset, committed }) = completed else {
        return Ok(());
    };
    if committed {
        return Ok(());
    }
    let last_stable_offset = producers.first_unstable_offset().unwrap_or(last_offset + 1);
    let index = match txn_indexes.entry(segment_base) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => e.insert(TxnIndex::open(dir, segment_base)?),
    };
    index.append(AbortedTxn { producer_id, first_offset, last_offset, last_stable_offset })
}

/// Milliseconds since the Unix epoch, for flush bookkeeping on follower appends.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
