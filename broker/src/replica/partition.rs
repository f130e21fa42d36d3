//! One partition replica on this broker: its log, its role (leader,
//! follower, or no leader known), its leader epoch, ISR and high watermark.
//!
//! As leader it stamps appends with its leader epoch, tracks each follower's
//! position from its fetches, moves the high watermark by the ISR (see
//! [`super::leader`]) and decides ISR changes for the controller. As
//! follower it appends what its fetcher brings, truncates where its log
//! diverges from the leader's, and keeps its high watermark at
//! min(leader's high watermark, own log end offset).
//!
//! Locking: the log's `RwLock` is taken before the state `Mutex`, never the
//! other way round. Role changes hold the log's write lock, so no append as
//! leader runs across a change of role or epoch, and a stale fetcher cannot
//! append after its epoch ended. The high watermark, the cached log end
//! offset and a state version live in watch channels, so waiters (acks=all
//! produces, long-polling fetches) wake without polling.
//!
//! Invariants: consumers are served only below the high watermark; the high
//! watermark never goes backwards while this broker leads and never exceeds
//! the log end offset; a leader's epoch is in its epoch cache (from the
//! moment it leads) before any record is appended under it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::ReplicaError;
use super::fetcher::follower_truncation_offset;
use super::leader::{self, FollowerState, PendingIsr};
use super::{LeaderAndIsr, error_codes};
use crate::log::control::EndTxnMarker;
use crate::log::producer_state::VerificationGuard;
use crate::log::txn_index::AbortedTxn;
use crate::log::{AppendInfo, FileSlice, LogError, PartitionLog, SharedLog, TopicPartition, scrub};

/// How long a leader waits before proposing an ISR change again after the
/// controller refused or failed one.
const ISR_RETRY_MS: i64 = 500;

/// How long a leader that stepped aside for a damaged log waits for the
/// controller's new state before proposing again.
const RESIGN_WAIT_MS: i64 = 5_000;

/// No damage known (see [`Partition::damaged_from`]).
const NO_DAMAGE: i64 = i64::MAX;

/// One partition replica on this broker.
#[derive(Debug)]
pub struct Partition {
    tp: TopicPartition,
    node_id: i32,
    log: SharedLog,
    leader_epoch: AtomicI32,
    state: Mutex<PartitionState>,
    high_watermark: watch::Sender<i64>,
    checkpointed_high_watermark: AtomicI64,
    /// Held while the high watermark checkpoint is written: the periodic
    /// task and shutdown may both checkpoint, and they share one `.tmp` file.
    checkpoint_writer: parking_lot::Mutex<()>,
    log_end_offset: watch::Sender<i64>,
    state_version: watch::Sender<u64>,
    /// Bumped when a follower's fetch states a new log start offset (what a
    /// DeleteRecords waits for).
    follower_starts: watch::Sender<u64>,
    /// The offset of the first damaged batch this replica knows of — found
    /// at open, while serving or by the scrub ([`NO_DAMAGE`] when none): as
    /// leader it steps aside, and once it no longer leads it truncates its
    /// log here and fetches the rest again.
    damaged_from: AtomicI64,
}

#[derive(Debug)]
struct PartitionState {
    role: Role,
    /// Whether it followed a leader since it last became leader (or was
    /// opened): a new leader then forgets what its log held for sound.
    followed: bool,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

#[derive(Debug)]
enum Role {
    Leader(LeaderState),
    Follower { leader: i32 },
    NoLeader,
}

#[derive(Debug)]
struct LeaderState {
    followers: HashMap<i32, FollowerState>,
    pending: Option<PendingIsr>,
    retry_after_ms: i64,
    epoch_start_offset: i64,
}

/// What a consumer's fetch reads from a leader (see
/// [`Partition::read_for_consumer`]).
#[derive(Debug)]
pub struct ConsumerRead {
    /// The batches located.
    pub slice: FileSlice,
    /// The high watermark when read.
    pub high_watermark: i64,
    /// The last stable offset when read.
    pub last_stable_offset: i64,
    /// With read_committed: the aborted transactions overlapping the batches.
    pub aborted: Vec<AbortedTxn>,
}

/// What applying a controller state did to a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed (the same state again).
    Unchanged,
    /// The state is older than the one applied; ignored.
    Stale,
    /// This replica now leads at a new leader epoch.
    BecameLeader,
    /// Still leader at the same epoch; ISR or replicas changed.
    LeaderUpdated,
    /// This replica now follows at a new leader epoch (or a new leader).
    BecameFollower,
    /// Still following at the same epoch; ISR or replicas changed.
    FollowerUpdated,
    /// No leader: hosted, not fetching.
    NoLeader,
}

/// An ISR change a leader sends to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The leader epoch it is made under.
    pub leader_epoch: i32,
    /// The partition epoch it builds on.
    pub partition_epoch: i32,
    /// The proposed ISR.
    pub isr: Vec<i32>,
}

/// An append as leader, with the epoch it was made under.
#[derive(Debug, Clone)]
pub struct LeaderAppend {
    /// What the log did.
    pub info: AppendInfo,
    /// The leader epoch stamped on the batches.
    pub leader_epoch: i32,
}

/// A follower's fetch as the leader receives it.
#[derive(Debug, Clone)]
pub struct FollowerFetch {
    /// The follower's broker id.
    pub replica_id: i32,
    /// Its log end offset.
    pub fetch_offset: i64,
    /// Epoch of its last record, -1 when its log is empty.
    pub last_fetched_epoch: i32,
    /// The leader epoch it believes current, -1 to skip the check.
    pub current_leader_epoch: i32,
    /// Bytes of records wanted (at least one batch is sent).
    pub max_bytes: usize,
    /// Its high watermark, when it says.
    pub high_watermark: Option<i64>,
    /// Its log start offset, when it says.
    pub log_start_offset: Option<i64>,
}

/// The leader's answer to a follower's fetch.
#[derive(Debug, Clone)]
pub enum FetchOutcome {
    /// Refused with a Kafka error code.
    Refused {
        /// Kafka error code.
        code: i32,
        /// Why.
        message: String,
    },
    /// The follower's log diverges: truncate, then fetch again.
    Diverging {
        /// The largest leader epoch ≤ the follower's last fetched one.
        epoch: i32,
        /// Where that epoch ends on the leader.
        end_offset: i64,
    },
    /// Records from the fetch offset (possibly none).
    Records(Bytes),
    /// The follower is caught up and knows the high watermark: nothing to
    /// send until the log or high watermark moves.
    CaughtUp,
}

/// The leader's whole answer to a follower's fetch: the outcome, an ISR
/// change it led to, and the partition's offsets at the time.
#[derive(Debug, Clone)]
pub struct FetchReply {
    /// What the follower gets.
    pub outcome: FetchOutcome,
    /// An ISR expansion to send to the controller.
    pub proposal: Option<IsrProposal>,
    /// The leader's high watermark.
    pub high_watermark: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// The leader's log end offset.
    pub log_end_offset: i64,
    /// The leader epoch of this replica.
    pub leader_epoch: i32,
}

/// Where a leader's DeleteRecords moved its log start offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedTo {
    /// The offset asked for (the high watermark for -1).
    pub target: i64,
    /// The leader's log start offset after it (at least `target`).
    pub leader_start: i64,
    /// The leader epoch it was done under.
    pub leader_epoch: i32,
}

/// A follower's log position, as its next fetch states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    /// The log end offset: the next fetch offset.
    pub fetch_offset: i64,
    /// The latest epoch in the epoch cache, -1 when none.
    pub last_fetched_epoch: i32,
    /// The follower's high watermark.
    pub high_watermark: i64,
    /// The follower's log start offset.
    pub log_start_offset: i64,
}

impl Partition {
    /// A replica over `log` with no role yet: not leader, not fetching.
    pub(crate) fn new(tp: TopicPartition, node_id: i32, log: SharedLog) -> Partition {
        let (leo, hw) = {
            let log = log.read();
            // Without a checkpoint the committed point is unknown: start from
            // the log start; a leader moves it up as the ISR proves what it holds.
            (log.log_end_offset(), log.high_watermark_checkpoint().unwrap_or_else(|| log.log_start_offset()))
        };
        let (high_watermark, _) = watch::channel(hw);
        let (log_end_offset, _) = watch::channel(leo);
        let (state_version, _) = watch::channel(0);
        let (follower_starts, _) = watch::channel(0);
        let state = PartitionState {
            role: Role::NoLeader,
            followed: false,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
        };
        // Damage the log's verification at open found (see crate::log::scrub).
        let damaged_from = scrub::take_damage_found_at_open(&tp).unwrap_or(NO_DAMAGE);
        Partition {
            tp,
            node_id,
            log,
            leader_epoch: AtomicI32::new(-1),
            state: Mutex::new(state),
            high_watermark,
            checkpointed_high_watermark: AtomicI64::new(hw),
            checkpoint_writer: parking_lot::Mutex::new(()),
            log_end_offset,
            state_version,
            follower_starts,
            damaged_from: AtomicI64::new(damaged_from),
        }
    }

    /// Which partition this is.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The current leader epoch (the one appends are stamped with when leading).
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        matches!(self.state.lock().role, Role::Leader(_))
    }

    /// The leader's broker id as this replica knows it, -1 when none.
    pub fn leader_id(&self) -> i32 {
        match self.state.lock().role {
            Role::Leader(_) => self.node_id,
            Role::Follower { leader } => leader,
            Role::NoLeader => -1,
        }
    }

    /// Leadership, epochs, replicas and ISR as this replica holds them (a
    /// leader's committed ISR changes show here before the controller's
    /// image reaches it).
    pub fn leader_and_isr(&self) -> LeaderAndIsr {
        let s = self.state.lock();
        LeaderAndIsr {
            leader: match s.role {
                Role::Leader(_) => self.node_id,
                Role::Follower { leader } => leader,
                Role::NoLeader => -1,
            },
            leader_epoch: s.leader_epoch,
            partition_epoch: s.partition_epoch,
            replicas: s.replicas.clone(),
            isr: s.isr.clone(),
        }
    }

    /// The in-sync replicas.
    pub fn isr(&self) -> Vec<i32> {
        self.state.lock().isr.clone()
    }

    /// Offset below which records are committed.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver woken whenever the high watermark moves (for long-polling fetches).
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// The log end offset as last appended or truncated (no lock taken).
    pub fn log_end_offset(&self) -> i64 {
        *self.log_end_offset.borrow()
    }

    /// Writes the high watermark to the partition's checkpoint file if it
    /// moved since the last one, so a restarted broker does not start from
    /// the log start.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub fn checkpoint_high_watermark(&self) -> Result<(), LogError> {
        let _writer = self.checkpoint_writer.lock();
        let hw = self.high_watermark();
        if self.checkpointed_high_watermark.load(Ordering::Acquire) == hw {
            return Ok(());
        }
        self.log.read().write_high_watermark_checkpoint(hw)?;
        self.checkpointed_high_watermark.store(hw, Ordering::Release);
        Ok(())
    }

    /// The underlying log.
    pub fn log(&self) -> &SharedLog {
        &self.log
    }

    /// Appends producer batches as leader, and advances the high watermark
    /// if the leader is the whole ISR. Refused when this broker does not lead.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub fn append_as_leader(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        match self.append_records(batches, now_ms, None) {
            Ok(append) => Ok(append.info),
            Err(ReplicaError::Log(e)) => Err(e),
            Err(e) => Err(LogError::NotLeader { partition: self.tp.to_string(), reason: e.to_string() }),
        }
    }

    /// Appends producer batches as leader. With `min_insync`, refuses
    /// (writing nothing) when the ISR is smaller — acks=all's precondition.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub fn append_records(
        &self,
        batches: &[u8],
        now_ms: i64,
        min_insync: Option<usize>,
    ) -> Result<LeaderAppend, ReplicaError> {
        self.append_with(min_insync, |log, leader_epoch| log.append_as_leader(batches, leader_epoch, now_ms))
    }

    /// [`append_records`](Self::append_records) for a client's produce,
    /// checking transactional batches against the producer's ongoing
    /// transaction or verification `guard` (see
    /// [`PartitionLog::append_as_leader_verified`]).
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub fn append_client_records(
        &self,
        batches: &[u8],
        now_ms: i64,
        min_insync: Option<usize>,
        guard: Option<VerificationGuard>,
    ) -> Result<LeaderAppend, ReplicaError> {
        self.append_with(min_insync, |log, leader_epoch| {
            log.append_as_leader_verified(batches, leader_epoch, now_ms, guard)
        })
    }

    /// Appends a transaction marker for a producer as leader (see
    /// [`PartitionLog::append_txn_marker`]), refusing (writing nothing) when
    /// the ISR is smaller than `min_insync`, as for an acks=all produce.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub fn append_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
        transaction_version: i16,
        now_ms: i64,
        min_insync: usize,
    ) -> Result<LeaderAppend, ReplicaError> {
        self.append_with(Some(min_insync), |log, leader_epoch| {
            log.append_txn_marker_at(producer_id, producer_epoch, marker, transaction_version, leader_epoch, now_ms)
        })
    }

    /// The last stable offset: the high watermark, held back to the first
    /// offset of the oldest ongoing transaction. A read_committed consumer
    /// reads below it.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        let log = self.log.read();
        // Never below the log start: DeleteRecords may pass an open
        // transaction's first offset (Kafka clamps the same way).
        log.first_unstable_offset().map_or(hw, |first| first.min(hw).max(log.log_start_offset().min(hw)))
    }

    /// Appends with `append` as leader under the log's write lock, then
    /// moves the high watermark if the leader is the whole ISR.
    fn append_with(
        &self,
        min_insync: Option<usize>,
        append: impl FnOnce(&mut PartitionLog, i32) -> Result<AppendInfo, LogError>,
    ) -> Result<LeaderAppend, ReplicaError> {
        let mut log = self.log.write();
        let leader_epoch = {
            let s = self.state.lock();
            let Role::Leader(l) = &s.role else { return Err(self.not_leader(&s)) };
            if let Some(min) = min_insync {
                let isr = leader::minimal_isr(&s.isr, l.pending.as_ref()).len();
                if isr < min {
                    return Err(ReplicaError::NotEnoughReplicas { partition: self.tp.clone(), isr, min });
                }
            }
            s.leader_epoch
        };
        let info = append(&mut log, leader_epoch)?;
        let leo = log.log_end_offset();
        self.log_end_offset.send_if_modified(|v| std::mem::replace(v, leo) != leo);
        let mut s = self.state.lock();
        self.maybe_advance_high_watermark(&mut s, leo);
        Ok(LeaderAppend { info, leader_epoch })
    }

    /// Waits until the high watermark reaches `required` (an acks=all
    /// produce's last offset + 1), for at most `timeout`. Fails when
    /// leadership moves on from `leader_epoch`, and — once committed — when
    /// the ISR is smaller than `min_insync` (Kafka's
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    pub async fn wait_for_commit(
        &self,
        required: i64,
        leader_epoch: i32,
        min_insync: usize,
        timeout: Duration,
    ) -> Result<(), ReplicaError> {
        let deadline = Instant::now() + timeout;
        let mut hw = self.high_watermark.subscribe();
        let mut version = self.state_version.subscribe();
        loop {
            hw.mark_unchanged();
            version.mark_unchanged();
            {
                let s = self.state.lock();
                let Role::Leader(l) = &s.role else { return Err(self.not_leader(&s)) };
                if s.leader_epoch != leader_epoch {
                    return Err(ReplicaError::NotLeader {
                        partition: self.tp.clone(),
                        reason: format!("leader epoch moved from {leader_epoch} to {}", s.leader_epoch),
                    });
                }
                if self.high_watermark() >= required {
                    let isr = leader::minimal_isr(&s.isr, l.pending.as_ref()).len();
                    if isr < min_insync {
                        return Err(ReplicaError::NotEnoughReplicasAfterAppend {
                            partition: self.tp.clone(),
                            isr,
                            min: min_insync,
                        });
                    }
                    return Ok(());
                }
            }
            tokio::select! {
                _ = hw.changed() => {}
                _ = version.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ReplicaError::CommitTimeout {
                        partition: self.tp.clone(),
                        timeout_ms: timeout.as_millis() as u64,
                    });
                }
            }
        }
    }

    /// DeleteRecords as leader, its first step: moves the log start offset
    /// to `offset` (-1: the high watermark), which must lie within the log
    /// start and the high watermark (else OFFSET_OUT_OF_RANGE, as Kafka),
    /// in a topic whose cleanup policy deletes (else POLICY_VIOLATION).
    /// Moving backwards changes nothing and succeeds. Long-polling followers
    /// are woken to learn the new start.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub fn delete_records_to(&self, offset: i64) -> Result<DeletedTo, ReplicaError> {
        let mut log = self.log.write();
        let leader_epoch = {
            let s = self.state.lock();
            if !matches!(s.role, Role::Leader(_)) {
                return Err(self.not_leader(&s));
            }
            s.leader_epoch
        };
        if !log.config().cleanup_policy.deletes() {
            return Err(ReplicaError::DeleteOnCompactedTopic { partition: self.tp.clone() });
        }
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(ReplicaError::DeleteBeyondHighWatermark {
                partition: self.tp.clone(),
                offset,
                high_watermark: hw,
            });
        }
        if log.advance_log_start(target)? {
            self.log_end_offset.send_modify(|_| {});
        }
        Ok(DeletedTo { target, leader_start: log.log_start_offset(), leader_epoch })
    }

    /// DeleteRecords as leader, its second step: waits until every in-sync
    /// replica's log start offset reaches the deleted-to offset (the low
    /// watermark, see [`leader::low_watermark`]), for at most `timeout`.
    /// Returns the low watermark.
    pub async fn wait_for_low_watermark(&self, deleted: &DeletedTo, timeout: Duration) -> Result<i64, ReplicaError> {
        let deadline = Instant::now() + timeout;
        let mut starts = self.follower_starts.subscribe();
        let mut version = self.state_version.subscribe();
        loop {
            starts.mark_unchanged();
            version.mark_unchanged();
            {
                let s = self.state.lock();
                let Role::Leader(l) = &s.role else { return Err(self.not_leader(&s)) };
                if s.leader_epoch != deleted.leader_epoch {
                    return Err(ReplicaError::NotLeader {
                        partition: self.tp.clone(),
                        reason: format!("leader epoch moved from {} to {}", deleted.leader_epoch, s.leader_epoch),
                    });
                }
                let low = leader::low_watermark(self.node_id, deleted.leader_start, &s.isr, &l.followers);
                if low >= deleted.target {
                    return Ok(low);
                }
            }
            tokio::select! {
                _ = starts.changed() => {}
                _ = version.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ReplicaError::LowWatermarkTimeout {
                        partition: self.tp.clone(),
                        offset: deleted.target,
                        timeout_ms: timeout.as_millis() as u64,
                    });
                }
            }
        }
    }

    /// Locates whole batches from `offset`, never at or above the high
    /// watermark, within `max_bytes` (but at least one when `min_one_batch`).
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<(FileSlice, i64), LogError> {
        let read = self.read_for_consumer(offset, max_bytes, min_one_batch, false)?;
        Ok((read.slice, read.high_watermark))
    }

    /// Locates whole batches from `offset` for a consumer, within
    /// `max_bytes` (but at least one when `min_one_batch`): below the high
    /// watermark (read_uncommitted), or below the last stable offset with
    /// the aborted transactions overlapping them (`read_committed`).
    pub fn read_for_consumer(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        read_committed: bool,
    ) -> Result<ConsumerRead, LogError> {
        let hw = self.high_watermark();
        let log = self.log.read();
        let lso = log.first_unstable_offset().map_or(hw, |first| first.min(hw));
        let bound = if read_committed { lso } else { hw };
        let slice = log.slice_up_to(offset, max_bytes, bound, min_one_batch)?;
        // The batches go from the file to the socket: verify them first
        // (they are in the page cache for the send that follows), unless
        // this process already holds them for sound (`verify.reads=once`)
        // and no damage is known. Sound batches before a damaged one are
        // served; the damaged one never.
        let mut slice = slice;
        let known_damage = self.damaged_from();
        if let Some(records) = &slice.records
            && (known_damage.is_some() || log.read_needs_check(records))
        {
            let check = scrub::check_file_records(&self.tp, records, offset, known_damage)?;
            match check.damage {
                None => log.read_checked(records),
                Some(e) => {
                    self.note_damage(&e);
                    if check.sound_bytes == 0 {
                        return Err(e);
                    }
                    slice.records = Some(records.prefix(check.sound_bytes, check.sound_records));
                }
            }
        }
        // The aborted transactions overlapping what is returned (not the
        // whole range to the LSO: a consumer catching up fetches many times).
        let aborted = match (&slice.records, read_committed) {
            (Some(records), true) => {
                log.aborted_transactions(offset, records.end_offset().map_or(bound, |end| end.min(bound)))
            }
            _ => Vec::new(),
        };
        Ok(ConsumerRead { slice, high_watermark: hw, last_stable_offset: lso, aborted })
    }

    /// Records damage found while serving (a
    /// [`LogError::StoredBatchCorrupt`]): logged and counted the first time
    /// an offset is found (later hits of the same damage only at debug
    /// level), and acted on — a leader steps aside at its next ISR check
    /// ([`Partition::maybe_resign`]), and the log is truncated there once
    /// it no longer leads.
    pub(crate) fn note_damage(&self, e: &LogError) {
        let LogError::StoredBatchCorrupt { offset, .. } = e else { return };
        let before = self.damaged_from.fetch_min(*offset, Ordering::AcqRel);
        if *offset < before {
            scrub::count_corrupt_batch();
            tracing::error!(partition = %self.tp, offset, error = %e, "damaged batch found while serving or scrubbing: never served (KAFKA_STORAGE_ERROR); a leader hands leadership to another in-sync replica, and the log is repaired from the leader");
        } else {
            tracing::debug!(partition = %self.tp, offset, "damaged batch refused again");
        }
    }

    /// Takes damage the background scrub found in segment `segment_base`
    /// (scanned at lineage `scanned_lineage`, see
    /// [`Segment::lineage`](crate::log::segment::Segment::lineage)), unless
    /// the bytes scanned changed since (compacted, deleted,
    /// truncated: the next pass verifies what is there then; appends to the
    /// active segment change nothing scanned). A leader refuses the damaged
    /// batches from now on and steps aside ([`Partition::maybe_resign`]), a
    /// replica with no leader keeps them until it follows one; a follower
    /// truncates its log below the damage at once and fetches the rest
    /// again (its leader, seeing its fetch offset go back, drops it from the
    /// ISR until it has caught up). Returns whether it truncated (then its
    /// fetcher must start again from the new log end).
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub(crate) fn scrub_found(
        &self,
        segment_base: i64,
        scanned_lineage: u64,
        damage: &scrub::Damage,
    ) -> Result<bool, LogError> {
        let mut log = self.log.write();
        // The same lineage holds every byte scanned (only a truncation cuts).
        let unchanged = log.segments().any(|s| s.base_offset() == segment_base && s.lineage() == scanned_lineage);
        if !unchanged {
            return Ok(false);
        }
        let e = LogError::StoredBatchCorrupt {
            partition: self.tp.to_string(),
            offset: damage.offset,
            reason: format!("{} (byte {} of segment {segment_base}, background scrub)", damage.reason, damage.position),
        };
        self.note_damage(&e);
        // Only a follower cuts its log now: it has a leader to fetch the rest
        // from. A leader steps aside first; with no leader, the log may hold
        // the only copy of what follows the damage (cut once it follows).
        if !matches!(self.state.lock().role, Role::Follower { .. }) {
            return Ok(false);
        }
        let size = log.size_bytes();
        log.truncate_to(damage.offset)?;
        scrub::count_repaired_bytes(size.saturating_sub(log.size_bytes()));
        self.damaged_from.store(NO_DAMAGE, Ordering::Release);
        tracing::warn!(partition = %self.tp, offset = damage.offset, log_end_offset = log.log_end_offset(), "truncated the damaged log: fetching the rest again from the leader");
        self.follower_updated(&log, None);
        Ok(true)
    }

    /// The offset of the first damaged batch this replica knows of, if any.
    pub fn damaged_from(&self) -> Option<i64> {
        let d = self.damaged_from.load(Ordering::Acquire);
        (d != NO_DAMAGE).then_some(d)
    }

    /// Applies the controller's state for this partition (see
    /// [`super::ReplicaManager::apply_leader_and_isr`]).
    ///
    /// Blocking file I/O (a new leader writes its epoch to the checkpoint).
    pub(crate) fn apply_state(&self, state: &LeaderAndIsr, now_ms: i64) -> Result<Transition, LogError> {
        let mut log = self.log.write();
        let mut guard = self.state.lock();
        let s = &mut *guard;
        if state.leader_epoch < s.leader_epoch
            || state.leader_epoch == s.leader_epoch && state.partition_epoch < s.partition_epoch
        {
            tracing::debug!(partition = %self.tp, ?state, current_epoch = s.leader_epoch, "ignoring an older partition state");
            return Ok(Transition::Stale);
        }
        let same_leader = match s.role {
            Role::Leader(_) => state.leader == self.node_id,
            Role::Follower { leader } => state.leader == leader,
            Role::NoLeader => state.leader < 0,
        };
        let same_epoch = same_leader && state.leader_epoch == s.leader_epoch;
        if same_epoch
            && state.partition_epoch == s.partition_epoch
            && state.replicas == s.replicas
            && state.isr == s.isr
        {
            return Ok(Transition::Unchanged);
        }
        if state.leader >= 0
            && state.leader != self.node_id
            && let Some(damaged) = self.damaged_from()
        {
            // Following a leader (which has every batch): what was damaged
            // goes, to be fetched again. Without a leader it stays, since it
            // may hold the only copy of what follows the damage.
            let size = log.size_bytes();
            log.truncate_to(damaged)?;
            scrub::count_repaired_bytes(size.saturating_sub(log.size_bytes()));
            self.damaged_from.store(NO_DAMAGE, Ordering::Release);
            tracing::warn!(partition = %self.tp, offset = damaged, log_end_offset = log.log_end_offset(), "truncated the damaged log after leaving leadership: fetching the rest again");
        }
        let leo = log.log_end_offset();
        let transition = if state.leader == self.node_id {
            if same_epoch {
                if let Role::Leader(l) = &mut s.role {
                    l.pending = None;
                    l.followers.retain(|id, _| state.replicas.contains(id));
                    for id in state.replicas.iter().filter(|id| **id != self.node_id) {
                        l.followers.entry(*id).or_insert_with(|| FollowerState::new(false, now_ms));
                    }
                }
                Transition::LeaderUpdated
            } else {
                log.assign_epoch_start(state.leader_epoch)?;
                // A leader that was a follower checks once more each byte
                // it serves to consumers (verify.reads=once): a failover is
                // when bytes a replica kept unread are first served. (One
                // just opened keeps what its recovery walked.)
                if std::mem::take(&mut s.followed) {
                    log.forget_verified();
                }
                let followers = state
                    .replicas
                    .iter()
                    .filter(|id| **id != self.node_id)
                    .map(|id| (*id, FollowerState::new(state.isr.contains(id), now_ms)))
                    .collect();
                s.role =
                    Role::Leader(LeaderState { followers, pending: None, retry_after_ms: 0, epoch_start_offset: leo });
                tracing::info!(partition = %self.tp, leader_epoch = state.leader_epoch, isr = ?state.isr, log_end_offset = leo, "became leader");
                Transition::BecameLeader
            }
        } else if state.leader >= 0 {
            if same_epoch {
                Transition::FollowerUpdated
            } else {
                s.role = Role::Follower { leader: state.leader };
                s.followed = true;
                tracing::info!(partition = %self.tp, leader = state.leader, leader_epoch = state.leader_epoch, log_end_offset = leo, "became follower");
                Transition::BecameFollower
            }
        } else {
            if !matches!(s.role, Role::NoLeader) {
                tracing::info!(partition = %self.tp, leader_epoch = state.leader_epoch, "partition has no leader");
            }
            s.role = Role::NoLeader;
            Transition::NoLeader
        };
        s.leader_epoch = state.leader_epoch;
        s.partition_epoch = state.partition_epoch;
        s.replicas = state.replicas.clone();
        s.isr = state.isr.clone();
        self.leader_epoch.store(state.leader_epoch, Ordering::Release);
        self.log_end_offset.send_if_modified(|v| std::mem::replace(v, leo) != leo);
        // Whatever the role, the high watermark never exceeds the log end.
        self.high_watermark.send_if_modified(|hw| {
            let capped = (*hw).min(leo);
            std::mem::replace(hw, capped) != capped
        });
        self.maybe_advance_high_watermark(s, leo);
        self.bump_version();
        Ok(transition)
    }

    /// Drops any role (the partition is being deleted): appends as leader
    /// and a fetcher's appends are refused from now on.
    pub(crate) fn make_offline(&self) {
        let _log = self.log.write();
        let mut s = self.state.lock();
        s.role = Role::NoLeader;
        // An epoch no state can match, so a running fetcher's appends fail.
        s.leader_epoch = i32::MAX;
        self.leader_epoch.store(i32::MAX, Ordering::Release);
        self.bump_version();
    }

    /// Answers a follower's fetch as leader: checks who asks and under which
    /// epoch, finds a divergence from the follower's last fetched epoch,
    /// records the follower's position (moving the high watermark and
    /// perhaps proposing it for the ISR), then reads records from the fetch
    /// offset up to the log end. With `may_wait`, a caught-up follower that
    /// knows the high watermark gets [`FetchOutcome::CaughtUp`] instead of an
    /// empty read.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub(crate) fn serve_follower_fetch(&self, fetch: &FollowerFetch, now_ms: i64, may_wait: bool) -> FetchReply {
        self.serve_follower_fetch_with(&self.log.read(), fetch, now_ms, may_wait)
    }

    /// [`Partition::serve_follower_fetch`] if the log is not being written
    /// right now; `None` (nothing done) if an append or truncation holds it.
    /// For async callers: an append can sit in the kernel for a long time
    /// (dirty-page throttling), and a runtime thread must never wait on it.
    pub(crate) fn try_serve_follower_fetch(
        &self,
        fetch: &FollowerFetch,
        now_ms: i64,
        may_wait: bool,
    ) -> Option<FetchReply> {
        let log = self.log.try_read()?;
        Some(self.serve_follower_fetch_with(&log, fetch, now_ms, may_wait))
    }

    fn serve_follower_fetch_with(
        &self,
        log: &crate::log::PartitionLog,
        fetch: &FollowerFetch,
        now_ms: i64,
        may_wait: bool,
    ) -> FetchReply {
        let leo = log.log_end_offset();
        let start = log.log_start_offset();
        let mut guard = self.state.lock();
        let leader_epoch = guard.leader_epoch;
        let (outcome, proposal) = self.serve_locked(log, &mut guard, fetch, now_ms, may_wait);
        FetchReply {
            outcome,
            proposal,
            high_watermark: self.high_watermark(),
            log_start_offset: start,
            log_end_offset: leo,
            leader_epoch,
        }
    }

    fn serve_locked(
        &self,
        log: &crate::log::PartitionLog,
        s: &mut PartitionState,
        fetch: &FollowerFetch,
        now_ms: i64,
        may_wait: bool,
    ) -> (FetchOutcome, Option<IsrProposal>) {
        let leo = log.log_end_offset();
        let start = log.log_start_offset();
        if let Err(refusal) = self.check_fetch_from_follower(s, fetch) {
            return (refusal, None);
        }
        if fetch.last_fetched_epoch >= 0 {
            match log.end_offset_for_epoch(fetch.last_fetched_epoch) {
                Some((epoch, end_offset)) if epoch < fetch.last_fetched_epoch || end_offset < fetch.fetch_offset => {
                    return (FetchOutcome::Diverging { epoch, end_offset }, None);
                }
                Some(_) => {}
                None => {
                    let message = format!(
                        "the leader of {} knows no leader epoch to compare the follower's last fetched epoch {} with",
                        self.tp, fetch.last_fetched_epoch
                    );
                    return (FetchOutcome::Refused { code: error_codes::OFFSET_OUT_OF_RANGE, message }, None);
                }
            }
        }
        if fetch.fetch_offset < start || fetch.fetch_offset > leo {
            let message = format!(
                "fetch offset {} is outside the leader's log [{start}, {leo}) of {}",
                fetch.fetch_offset, self.tp
            );
            return (FetchOutcome::Refused { code: error_codes::OFFSET_OUT_OF_RANGE, message }, None);
        }
        let proposal = self.record_follower_fetch(s, fetch, leo, now_ms);
        let hw = self.high_watermark();
        let knows_hw = fetch.high_watermark.is_none_or(|f| f >= hw);
        let knows_start = fetch.log_start_offset.is_none_or(|f| f >= start);
        if may_wait && fetch.fetch_offset == leo && knows_hw && knows_start {
            return (FetchOutcome::CaughtUp, proposal);
        }
        let read = log.read_up_to(fetch.fetch_offset, fetch.max_bytes, i64::MAX).and_then(|read| {
            // Sound batches before a damaged one are sent; the damaged one never.
            let check = scrub::check_read(&self.tp, &read.records, fetch.fetch_offset, self.damaged_from());
            match check.damage {
                None => Ok(read.records),
                Some(e) => {
                    self.note_damage(&e);
                    if check.sound_bytes == 0 { Err(e) } else { Ok(read.records.slice(..check.sound_bytes)) }
                }
            }
        });
        let outcome = match read {
            Ok(records) => FetchOutcome::Records(records),
            Err(e @ LogError::StoredBatchCorrupt { .. }) => {
                FetchOutcome::Refused { code: error_codes::KAFKA_STORAGE_ERROR, message: e.to_string() }
            }
            Err(e) => {
                let code = match e {
                    LogError::OffsetOutOfRange { .. } => error_codes::OFFSET_OUT_OF_RANGE,
                    _ => error_codes::KAFKA_STORAGE_ERROR,
                };
                tracing::warn!(partition = %self.tp, replica = fetch.replica_id, error = %e, "follower fetch read failed");
                FetchOutcome::Refused { code, message: e.to_string() }
            }
        };
        (outcome, proposal)
    }

    /// As leader: the largest epoch ≤ `epoch` and where it ends, for
    /// OffsetForLeaderEpoch; (-1, -1) when no such epoch is known. Refused
    /// (Kafka error code, message) when not leading or under another epoch.
    pub(crate) fn offset_for_leader_epoch(
        &self,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), (i32, String)> {
        let log = self.log.read();
        let s = self.state.lock();
        if !matches!(s.role, Role::Leader(_)) {
            return Err((error_codes::NOT_LEADER_OR_FOLLOWER, self.not_leader(&s).to_string()));
        }
        if current_leader_epoch >= 0 && current_leader_epoch != s.leader_epoch {
            let code = if current_leader_epoch < s.leader_epoch {
                error_codes::FENCED_LEADER_EPOCH
            } else {
                error_codes::UNKNOWN_LEADER_EPOCH
            };
            return Err((
                code,
                format!("leader epoch {current_leader_epoch} is not {}'s current {}", self.tp, s.leader_epoch),
            ));
        }
        Ok(log.end_offset_for_epoch(epoch).unwrap_or((-1, -1)))
    }

    /// Receivers that wake a long-polling follower fetch: the log end offset
    /// and the high watermark. Take them before [`Partition::serve_follower_fetch`].
    pub(crate) fn watch_for_follower(&self) -> (watch::Receiver<i64>, watch::Receiver<i64>) {
        (self.log_end_offset.subscribe(), self.high_watermark.subscribe())
    }

    /// Who may fetch, under which epoch.
    fn check_fetch_from_follower(&self, s: &PartitionState, fetch: &FollowerFetch) -> Result<(), FetchOutcome> {
        let refuse = |code, message| Err(FetchOutcome::Refused { code, message });
        if !matches!(s.role, Role::Leader(_)) {
            return refuse(error_codes::NOT_LEADER_OR_FOLLOWER, self.not_leader(s).to_string());
        }
        if fetch.current_leader_epoch >= 0 && fetch.current_leader_epoch < s.leader_epoch {
            let message = format!(
                "follower {} fetches {} at leader epoch {}, older than the current {}",
                fetch.replica_id, self.tp, fetch.current_leader_epoch, s.leader_epoch
            );
            return refuse(error_codes::FENCED_LEADER_EPOCH, message);
        }
        if fetch.current_leader_epoch > s.leader_epoch {
            let message = format!(
                "follower {} fetches {} at leader epoch {}, newer than this leader's {}",
                fetch.replica_id, self.tp, fetch.current_leader_epoch, s.leader_epoch
            );
            return refuse(error_codes::UNKNOWN_LEADER_EPOCH, message);
        }
        if fetch.replica_id == self.node_id || !s.replicas.contains(&fetch.replica_id) {
            let message = format!(
                "broker {} is not a follower of {} (replicas {:?}, leader {})",
                fetch.replica_id, self.tp, s.replicas, self.node_id
            );
            return refuse(error_codes::NOT_LEADER_OR_FOLLOWER, message);
        }
        Ok(())
    }

    /// Records a follower's position; returns an ISR expansion to propose.
    fn record_follower_fetch(
        &self,
        s: &mut PartitionState,
        fetch: &FollowerFetch,
        leo: i64,
        now_ms: i64,
    ) -> Option<IsrProposal> {
        let Role::Leader(l) = &mut s.role else { return None };
        let follower = l.followers.entry(fetch.replica_id).or_insert_with(|| FollowerState::new(false, now_ms));
        let went_back = follower.record_fetch(fetch.fetch_offset, leo, now_ms);
        let follower_leo = follower.log_end_offset;
        if let Some(start) = fetch.log_start_offset
            && std::mem::replace(&mut follower.log_start_offset, start) != start
        {
            self.follower_starts.send_modify(|v| *v += 1);
        }
        self.maybe_advance_high_watermark(s, leo);
        let hw = self.high_watermark();
        let (leader_epoch, partition_epoch) = (s.leader_epoch, s.partition_epoch);
        let Role::Leader(l) = &mut s.role else { return None };
        if went_back
            && s.isr.contains(&fetch.replica_id)
            && !l.pending.as_ref().is_some_and(|p| p.awaiting(now_ms))
            && now_ms >= l.retry_after_ms
        {
            // It no longer holds records it had (its log was repaired): out
            // of the ISR now, not after replica.lag.time.max.ms.
            let isr: Vec<i32> = s.isr.iter().copied().filter(|id| *id != fetch.replica_id).collect();
            tracing::warn!(partition = %self.tp, replica = fetch.replica_id, fetch_offset = fetch.fetch_offset, ?isr, "an in-sync follower's log went back: proposing it out of the ISR");
            l.pending = Some(PendingIsr { isr: isr.clone(), proposed_at_ms: now_ms });
            return Some(IsrProposal { leader_epoch, partition_epoch, isr });
        }
        if s.isr.contains(&fetch.replica_id)
            || l.pending.as_ref().is_some_and(|p| p.awaiting(now_ms))
            || now_ms < l.retry_after_ms
            || !leader::can_join_isr(follower_leo, hw, l.epoch_start_offset)
        {
            return None;
        }
        let mut isr = s.isr.clone();
        isr.push(fetch.replica_id);
        tracing::info!(partition = %self.tp, replica = fetch.replica_id, ?isr, "follower caught up: proposing it for the ISR");
        l.pending = Some(PendingIsr { isr: isr.clone(), proposed_at_ms: now_ms });
        Some(IsrProposal { leader_epoch, partition_epoch, isr })
    }

    /// As leader with a damaged log (see [`Partition::note_damage`]):
    /// proposes the ISR without this broker, which the controller commits
    /// with a new leader elected from the rest (Kafka's equivalent is an
    /// offline log dir). `None` when nothing is damaged, a proposal is in
    /// flight, or no other replica is in sync (then this one keeps leading
    /// and keeps refusing the damaged batches: no in-sync copy to move to).
    pub(crate) fn maybe_resign(&self, now_ms: i64) -> Option<IsrProposal> {
        let damaged = self.damaged_from()?;
        let mut guard = self.state.lock();
        let s = &mut *guard;
        let (leader_epoch, partition_epoch) = (s.leader_epoch, s.partition_epoch);
        let isr: Vec<i32> = s.isr.iter().copied().filter(|id| *id != self.node_id).collect();
        let Role::Leader(l) = &mut s.role else { return None };
        if l.pending.as_ref().is_some_and(|p| p.awaiting(now_ms)) || now_ms < l.retry_after_ms {
            return None;
        }
        if isr.is_empty() {
            // (Said at debug level: the damage itself was logged when found.)
            tracing::debug!(partition = %self.tp, offset = damaged, "damaged log, but no other replica is in sync: still leading, refusing the damaged batches");
            l.retry_after_ms = now_ms + RESIGN_WAIT_MS;
            return None;
        }
        tracing::warn!(partition = %self.tp, offset = damaged, ?isr, "damaged log: proposing to leave the ISR so another in-sync replica leads");
        l.pending = Some(PendingIsr { isr: isr.clone(), proposed_at_ms: now_ms });
        Some(IsrProposal { leader_epoch, partition_epoch, isr })
    }

    /// As leader, proposes removing followers that lagged for longer than `lag_ms`.
    pub(crate) fn maybe_shrink_isr(&self, now_ms: i64, lag_ms: i64) -> Option<IsrProposal> {
        let leo = self.log_end_offset();
        let mut guard = self.state.lock();
        let s = &mut *guard;
        let (leader_epoch, partition_epoch) = (s.leader_epoch, s.partition_epoch);
        let current = s.isr.clone();
        let Role::Leader(l) = &mut s.role else { return None };
        if l.pending.as_ref().is_some_and(|p| p.awaiting(now_ms)) || now_ms < l.retry_after_ms {
            return None;
        }
        let out = leader::out_of_sync_followers(self.node_id, leo, &current, &l.followers, now_ms, lag_ms);
        if out.is_empty() {
            return None;
        }
        let isr: Vec<i32> = current.iter().copied().filter(|id| !out.contains(id)).collect();
        tracing::info!(partition = %self.tp, lagging = ?out, ?isr, lag_ms, "followers lagged: proposing a smaller ISR");
        l.pending = Some(PendingIsr { isr: isr.clone(), proposed_at_ms: now_ms });
        Some(IsrProposal { leader_epoch, partition_epoch, isr })
    }

    /// Takes the controller's answer to `proposal`: the committed partition
    /// epoch (applied here at once if nothing newer came), or an error (the
    /// proposal is dropped and retried after a pause).
    pub(crate) fn complete_isr_proposal(&self, proposal: &IsrProposal, result: Result<i32, String>, now_ms: i64) {
        let leo = self.log_end_offset();
        let mut guard = self.state.lock();
        let s = &mut *guard;
        let unchanged = s.leader_epoch == proposal.leader_epoch && s.partition_epoch == proposal.partition_epoch;
        let Role::Leader(l) = &mut s.role else { return };
        let ours = l.pending.as_ref().is_some_and(|p| p.isr == proposal.isr);
        let resigning = !proposal.isr.contains(&self.node_id);
        match result {
            // Stepping aside: the controller elected another leader; its
            // state reaches this replica through the image.
            Ok(partition_epoch) if resigning => {
                tracing::info!(partition = %self.tp, isr = ?proposal.isr, partition_epoch, "left the ISR of a damaged log; awaiting the new leader");
                if ours {
                    l.pending = None;
                    l.retry_after_ms = now_ms + RESIGN_WAIT_MS;
                }
            }
            Ok(partition_epoch) if unchanged && ours && partition_epoch > s.partition_epoch => {
                l.pending = None;
                s.isr = proposal.isr.clone();
                s.partition_epoch = partition_epoch;
                tracing::info!(partition = %self.tp, isr = ?s.isr, partition_epoch, "ISR change committed");
                self.maybe_advance_high_watermark(s, leo);
                self.bump_version();
            }
            Ok(_) => {
                if ours && unchanged {
                    l.pending = None;
                }
            }
            Err(e) => {
                tracing::warn!(partition = %self.tp, proposed = ?proposal.isr, error = %e, "the controller did not take the ISR change; retrying later");
                if ours {
                    l.pending = None;
                    l.retry_after_ms = now_ms + ISR_RETRY_MS;
                }
            }
        }
    }

    /// The follower's position for its next fetch.
    ///
    /// Takes the log's read lock: call from a blocking-capable context.
    pub(crate) fn follower_position(&self) -> FollowerPosition {
        let log = self.log.read();
        FollowerPosition {
            fetch_offset: log.log_end_offset(),
            last_fetched_epoch: log.latest_epoch().unwrap_or(-1),
            high_watermark: self.high_watermark(),
            log_start_offset: log.log_start_offset(),
        }
    }

    /// Appends what the leader sent (if anything) as follower at
    /// `leader_epoch`, moves the log start offset up to the leader's (a
    /// DeleteRecords there; at most to the own log end), then sets the high
    /// watermark to min(leader's, own log end offset).
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub(crate) fn append_as_follower(
        &self,
        leader_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start: i64,
    ) -> Result<FollowerPosition, ReplicaError> {
        let mut log = self.log.write();
        self.check_follower(leader_epoch)?;
        if !records.is_empty() {
            log.append_as_follower(records)?;
        }
        if leader_log_start > log.log_start_offset() {
            log.advance_log_start(leader_log_start)?;
        }
        Ok(self.follower_updated(&log, Some(leader_high_watermark)))
    }

    /// Truncates where the follower's log diverges from the leader's, given
    /// the leader's (epoch, end offset) for the follower's last fetched epoch.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub(crate) fn truncate_on_divergence(
        &self,
        leader_epoch: i32,
        diverging_epoch: i32,
        diverging_end_offset: i64,
    ) -> Result<FollowerPosition, ReplicaError> {
        let mut log = self.log.write();
        self.check_follower(leader_epoch)?;
        let own = log.end_offset_for_epoch(diverging_epoch);
        let target = follower_truncation_offset(diverging_end_offset, own, log.log_end_offset());
        tracing::info!(
            partition = %self.tp,
            diverging_epoch,
            diverging_end_offset,
            own_end = ?own,
            truncate_to = target,
            "log diverges from the leader's: truncating"
        );
        log.truncate_to(target)?;
        Ok(self.follower_updated(&log, None))
    }

    /// Handles a fetch the leader found out of its log's range: below its
    /// start, the follower's log restarts there; beyond its end, the
    /// follower truncates to it.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub(crate) fn reset_out_of_range(
        &self,
        leader_epoch: i32,
        leader_log_start: i64,
        leader_log_end: i64,
    ) -> Result<FollowerPosition, ReplicaError> {
        let mut log = self.log.write();
        self.check_follower(leader_epoch)?;
        let leo = log.log_end_offset();
        if leo < leader_log_start {
            tracing::warn!(partition = %self.tp, log_end_offset = leo, leader_log_start, "follower is below the leader's log start: restarting its log there");
            log.truncate_fully_and_start_at(leader_log_start)?;
        } else if leo > leader_log_end {
            tracing::warn!(partition = %self.tp, log_end_offset = leo, leader_log_end, "follower is ahead of the leader's log end: truncating to it");
            log.truncate_to(leader_log_end)?;
        }
        Ok(self.follower_updated(&log, None))
    }

    fn follower_updated(&self, log: &crate::log::PartitionLog, leader_hw: Option<i64>) -> FollowerPosition {
        let leo = log.log_end_offset();
        self.log_end_offset.send_if_modified(|v| std::mem::replace(v, leo) != leo);
        self.high_watermark.send_if_modified(|hw| {
            let new = leader_hw.unwrap_or(*hw).min(leo);
            std::mem::replace(hw, new) != new
        });
        FollowerPosition {
            fetch_offset: leo,
            last_fetched_epoch: log.latest_epoch().unwrap_or(-1),
            high_watermark: self.high_watermark(),
            log_start_offset: log.log_start_offset(),
        }
    }

    fn check_follower(&self, leader_epoch: i32) -> Result<(), ReplicaError> {
        let s = self.state.lock();
        if matches!(s.role, Role::Follower { .. }) && s.leader_epoch == leader_epoch {
            Ok(())
        } else {
            Err(ReplicaError::StaleFetcher { partition: self.tp.clone(), leader_epoch })
        }
    }

    fn maybe_advance_high_watermark(&self, s: &mut PartitionState, leader_leo: i64) {
        let Role::Leader(l) = &s.role else { return };
        let isr = leader::maximal_isr(&s.isr, l.pending.as_ref());
        let current = self.high_watermark();
        let hw = leader::high_watermark(current, self.node_id, leader_leo, &isr, &l.followers).min(leader_leo);
        if hw > current {
            self.high_watermark.send_replace(hw);
        }
    }

    fn bump_version(&self) {
        self.state_version.send_modify(|v| *v += 1);
    }

    fn not_leader(&self, s: &PartitionState) -> ReplicaError {
        let reason = match s.role {
            Role::Leader(_) => format!("it leads at epoch {}", s.leader_epoch),
            Role::Follower { leader } => format!("broker {leader} leads at epoch {}", s.leader_epoch),
            Role::NoLeader => "the partition has no leader here".to_string(),
        };
        ReplicaError::NotLeader { partition: self.tp.clone(), reason }
    }
}
