//! Kafka's transaction state machine for one transactional id, as plain data
//! and plain functions of (request, time): no I/O, no clock, no locks.
//!
//! Every change is two steps, as in Kafka: a `prepare_*` function checks the
//! request against the current state and returns the [`Transit`] to write to
//! `__transaction_state`, marking it pending (so a concurrent request gets
//! CONCURRENT_TRANSACTIONS); once the record is replicated the shell calls
//! [`TxnMetadata::complete`], or [`TxnMetadata::fail_pending`] when the
//! write failed. The in-memory state therefore only ever equals something
//! that is in the log.
//!
//! States and their moves (Kafka's `TransactionState`):
//!
//! ```text
//! Empty ──AddPartitions──▶ Ongoing ──EndTxn──▶ PrepareCommit ──markers──▶ CompleteCommit
//!   ▲                        │  └──EndTxn / timeout / fence──▶ PrepareAbort ──markers──▶ CompleteAbort
//!   └──InitProducerId── Complete* ◀──────────────────────────────────────────────────────┘
//! ```
//!
//! PrepareEpochFence exists in the record format; Kafka never writes it (it
//! is a pending state on the way to PrepareAbort), and neither do we: a fence
//! ([`TxnMetadata::prepare_fence_abort`]) goes straight to PrepareAbort with
//! the epoch bumped, which is what Kafka writes. Dead is the state of an
//! expired id (`transactional.id.expiration.ms`), written as a tombstone.
//!
//! Epochs: InitProducerId bumps the epoch; a client that passes its current
//! id and epoch (KIP-360) bumps it again or, retrying a bump whose answer it
//! lost, gets the same epoch back; an exhausted epoch (`i16::MAX - 1`)
//! rotates to a fresh producer id.
//!
//! transaction.version 2 (KIP-890 part 2; the record's
//! `client_transaction_version`, set by the request that last changed the
//! id): every EndTxn bumps the epoch, so the markers carry an epoch higher
//! than any of the transaction's data and the client continues at the new
//! one. A retried EndTxn is recognised by its epoch being one below the
//! current one (or, after a rollover to a fresh producer id, by the previous
//! id at the last epoch) and answered with the current id and epoch; any
//! other epoch but the current one is fenced. A bump past `i16::MAX - 1`
//! writes the fresh producer id as `next_producer_id` in the Prepare*
//! record, and it becomes the producer id with Complete*. An abort of an
//! empty transaction (the client sent nothing that arrived) still bumps the
//! epoch, with no markers.

use std::collections::{BTreeMap, BTreeSet};

use super::TxnError;
use super::codec::TxnRecord;

/// No producer epoch (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_EPOCH: i16 = -1;
/// No producer id.
pub const NO_PRODUCER_ID: i64 = -1;

/// Kafka's transaction states, with their record ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    /// No transaction open.
    Empty,
    /// Partitions have been added; the transaction is open.
    Ongoing,
    /// EndTxn(commit) is logged; markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fence is logged; markers are being written.
    PrepareAbort,
    /// Every COMMIT marker is written.
    CompleteCommit,
    /// Every ABORT marker is written.
    CompleteAbort,
    /// The id expired and is being removed.
    Dead,
    /// Kafka's pending state on the way from Ongoing to PrepareAbort when a producer is fenced.
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, in id order.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The id stored in `TransactionLogValue.TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state of a stored id; `None` outside 0-7.
    pub fn from_id(id: i8) -> Option<TxnState> {
        usize::try_from(id).ok().and_then(|i| TxnState::ALL.get(i).copied())
    }

    /// Kafka's name (DescribeTransactions, ListTransactions' state filter).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state named `name` (Kafka's spelling).
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The states a transition into `self` may start from (Kafka's `validPreviousStates`).
    pub fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteCommit, CompleteAbort],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Markers are owed to the transaction's partitions.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// CompleteCommit or CompleteAbort.
    pub fn is_complete(self) -> bool {
        matches!(self, TxnState::CompleteCommit | TxnState::CompleteAbort)
    }

    /// The id may expire in this state (nothing is open).
    pub fn expiration_allowed(self) -> bool {
        matches!(self, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
    }
}

/// Kafka never hands out epoch `i16::MAX`, so a fence can always bump once more.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// A topic partition in a transaction.
pub type TxnPartition = (String, i32);

/// A prepared change: the record to write, and the in-memory epoch memory
/// that goes with it (not stored in a v0 record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transit {
    /// The record to append to `__transaction_state`.
    pub record: TxnRecord,
    /// The producer epoch a KIP-360 retry may still present.
    pub last_producer_epoch: i16,
}

impl Transit {
    /// The producer id and epoch the client continues with once this
    /// transit is written: the fresh producer id at epoch 0 after a
    /// rollover, else the record's.
    pub fn continue_with(&self) -> (i64, i16) {
        if self.record.next_producer_id != NO_PRODUCER_ID {
            (self.record.next_producer_id, 0)
        } else {
            (self.record.producer_id, self.record.producer_epoch)
        }
    }
}

/// What InitProducerId must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Write this transit, then answer with its producer id and epoch.
    Write(Transit),
    /// The epoch is exhausted: call again with a fresh producer id.
    NeedProducerId,
    /// An open transaction must be aborted first (with this PrepareAbort at
    /// a bumped epoch); the client gets CONCURRENT_TRANSACTIONS and retries.
    AbortOngoing(Transit),
}

/// What EndTxn must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// Write this transit (Prepare*), then answer with the producer id and
    /// epoch the client continues with ([`Transit::continue_with`]).
    Write(Transit),
    /// Nothing to write (a retry of a completed end): answer with this producer id and epoch.
    Answered { producer_id: i64, producer_epoch: i16 },
    /// The epoch is exhausted: call again with a fresh producer id.
    NeedProducerId,
}

/// DescribeTransactions' view of one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    /// State.
    pub state: TxnState,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Transaction timeout (ms).
    pub timeout_ms: i32,
    /// When the open transaction started (wall-clock ms), -1 when none.
    pub start_ms: i64,
    /// Partitions in the transaction.
    pub partitions: BTreeMap<String, BTreeSet<i32>>,
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    transactional_id: String,
    record: TxnRecord,
    last_producer_epoch: i16,
    pending: Option<TxnState>,
}

/// Checks `transaction.timeout.ms` against `transaction.max.timeout.ms`.
pub fn validate_timeout(timeout_ms: i32, max_timeout_ms: i32) -> Result<(), TxnError> {
    if timeout_ms <= 0 || timeout_ms > max_timeout_ms {
        return Err(TxnError::InvalidTransactionTimeout { requested: timeout_ms, max: max_timeout_ms });
    }
    Ok(())
}

impl TxnMetadata {
    /// A new id with producer id `producer_id` and no epoch yet (InitProducerId bumps it to 0).
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            record: TxnRecord {
                producer_id,
                previous_producer_id: NO_PRODUCER_ID,
                next_producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_EPOCH,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeMap::new(),
                last_update_ms: now_ms,
                start_ms: -1,
                client_transaction_version: 0,
            },
            last_producer_epoch: NO_EPOCH,
            pending: None,
        }
    }

    /// The id as loaded from its latest record.
    pub fn from_record(transactional_id: &str, record: TxnRecord) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            record,
            last_producer_epoch: NO_EPOCH,
            pending: None,
        }
    }

    /// The transactional id.
    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// The current (logged) record.
    pub fn record(&self) -> &TxnRecord {
        &self.record
    }

    /// The state.
    pub fn state(&self) -> TxnState {
        self.record.state
    }

    /// Producer id.
    pub fn producer_id(&self) -> i64 {
        self.record.producer_id
    }

    /// Producer epoch.
    pub fn producer_epoch(&self) -> i16 {
        self.record.producer_epoch
    }

    /// A change is being written.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The partitions of the transaction, flattened.
    pub fn partitions(&self) -> Vec<TxnPartition> {
        self.record.partitions.iter().flat_map(|(t, ps)| ps.iter().map(|p| (t.clone(), *p))).collect()
    }

    /// Whether `partition` is part of the open transaction.
    pub fn contains(&self, topic: &str, partition: i32) -> bool {
        self.record.partitions.get(topic).is_some_and(|ps| ps.contains(&partition))
    }

    /// DescribeTransactions.
    pub fn describe(&self) -> TxnDescription {
        TxnDescription {
            state: self.record.state,
            producer_id: self.record.producer_id,
            producer_epoch: self.record.producer_epoch,
            timeout_ms: self.record.timeout_ms,
            start_ms: self.record.start_ms,
            partitions: self.record.partitions.clone(),
        }
    }

    /// An open transaction older than its timeout, with nothing pending.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.record.state == TxnState::Ongoing
            && self.pending.is_none()
            && self.record.start_ms.saturating_add(self.record.timeout_ms as i64) <= now_ms
    }

    /// Idle longer than `transactional.id.expiration.ms`, with nothing open.
    pub fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.record.state.expiration_allowed()
            && self.pending.is_none()
            && self.record.last_update_ms.saturating_add(expiration_ms) <= now_ms
    }

    /// Builds a transit to `state` and marks it pending.
    fn transit(&mut self, record: TxnRecord, last_producer_epoch: i16) -> Transit {
        self.pending = Some(record.state);
        Transit { record, last_producer_epoch }
    }

    fn check_no_pending(&self) -> Result<(), TxnError> {
        if self.pending.is_some() { Err(TxnError::ConcurrentTransactions) } else { Ok(()) }
    }

    /// InitProducerId. `expected` is the (producer id, epoch) a KIP-360 client
    /// passes; `fresh_id` a newly allocated producer id, needed only when the
    /// epoch is exhausted ([`InitStep::NeedProducerId`] asks for one).
    pub fn prepare_init(
        &mut self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_id: Option<i64>,
        now_ms: i64,
    ) -> Result<InitStep, TxnError> {
        self.check_no_pending()?;
        let r = &self.record;
        if let Some((pid, epoch)) = expected {
            // Kafka accepts: a just-created id, the current producer id, or the
            // previous one retrying after an exhausted epoch rotated it.
            let valid = r.producer_epoch == NO_EPOCH
                || pid == r.producer_id
                || (pid == r.previous_producer_id && epoch_exhausted(epoch));
            if !valid {
                return Err(TxnError::ProducerFenced);
            }
        }
        match r.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::ConcurrentTransactions),
            TxnState::Ongoing => Ok(InitStep::AbortOngoing(self.prepare_fence_abort(now_ms)?)),
            TxnState::Dead | TxnState::PrepareEpochFence => {
                Err(TxnError::InvalidTxnState { state: r.state, action: "InitProducerId" })
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = TxnRecord {
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeMap::new(),
                    start_ms: -1,
                    last_update_ms: now_ms,
                    previous_producer_id: r.producer_id,
                    next_producer_id: NO_PRODUCER_ID,
                    ..r.clone()
                };
                if epoch_exhausted(r.producer_epoch) && expected.is_none_or(|(_, e)| e == r.producer_epoch) {
                    let Some(fresh) = fresh_id else {
                        return Ok(InitStep::NeedProducerId);
                    };
                    let last = if expected.is_some() { r.producer_epoch } else { NO_EPOCH };
                    next.producer_id = fresh;
                    next.producer_epoch = 0;
                    return Ok(InitStep::Write(self.transit(next, last)));
                }
                let bumped = r.producer_epoch.saturating_add(1);
                let (epoch, last) = match expected {
                    None => (bumped, NO_EPOCH),
                    Some((_, e)) if r.producer_epoch == NO_EPOCH || e == r.producer_epoch => (bumped, r.producer_epoch),
                    // A retry of a bump whose answer was lost: the same epoch again.
                    Some((_, e)) if e == self.last_producer_epoch => (r.producer_epoch, self.last_producer_epoch),
                    Some(_) => return Err(TxnError::ProducerFenced),
                };
                if epoch_exhausted(r.producer_epoch) {
                    return Err(TxnError::ProducerFenced);
                }
                next.producer_epoch = epoch;
                Ok(InitStep::Write(self.transit(next, last)))
            }
        }
    }

    /// Whether the previous transaction's markers are still being written
    /// for this producer (the id ends a transaction, or a v2 EndTxn handed
    /// it `producer_id` as the fresh id of a rollover). A request for the
    /// next transaction then gets the retriable CONCURRENT_TRANSACTIONS
    /// before any epoch or id check: the client already holds the epoch (or
    /// id) the end gave it, which the record takes only once complete
    /// (KAFKA-18464, KAFKA-18660; a fatal PRODUCER_FENCED or
    /// INVALID_PRODUCER_ID_MAPPING there would kill a healthy producer).
    fn previous_end_in_progress(&self, producer_id: i64) -> bool {
        let r = &self.record;
        r.state.is_prepare()
            && (producer_id == r.producer_id
                || (r.next_producer_id != NO_PRODUCER_ID && producer_id == r.next_producer_id))
    }

    /// Checks the producer id and epoch of a request inside a transaction.
    fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.record.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if producer_epoch != self.record.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's
    /// `__consumer_offsets` partition). `Ok(None)`: they are already in the
    /// open transaction, nothing to write.
    /// `client_version` is the transaction.version of the request (2 for
    /// a partition leader adding the partition of a Produce v12+, or a
    /// TxnOffsetCommit v5+, adding its group).
    pub fn prepare_add_partitions(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartition],
        client_version: i16,
        now_ms: i64,
    ) -> Result<Option<Transit>, TxnError> {
        if self.previous_end_in_progress(producer_id) {
            return Err(TxnError::ConcurrentTransactions);
        }
        self.check_producer(producer_id, producer_epoch)?;
        self.check_no_pending()?;
        let r = &self.record;
        match r.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => return Err(TxnError::ConcurrentTransactions),
            TxnState::Dead | TxnState::PrepareEpochFence => {
                return Err(TxnError::InvalidTxnState { state: r.state, action: "AddPartitionsToTxn" });
            }
            TxnState::Ongoing if partitions.iter().all(|(t, p)| self.contains(t, *p)) => return Ok(None),
            _ => {}
        }
        let start_ms = if r.state == TxnState::Ongoing { r.start_ms } else { now_ms };
        let mut next = TxnRecord {
            state: TxnState::Ongoing,
            start_ms,
            last_update_ms: now_ms,
            client_transaction_version: client_version,
            ..r.clone()
        };
        next.previous_producer_id = r.producer_id;
        for (t, p) in partitions {
            next.partitions.entry(t.clone()).or_default().insert(*p);
        }
        let last = self.last_producer_epoch;
        Ok(Some(self.transit(next, last)))
    }

    /// Checks a partition-leader verification (KIP-890) or a TxnOffsetCommit:
    /// the producer must own the id at this epoch, with no end in progress.
    pub fn check_in_transaction(&self, producer_id: i64, producer_epoch: i16) -> Result<(), TxnError> {
        if self.previous_end_in_progress(producer_id) {
            return Err(TxnError::ConcurrentTransactions);
        }
        self.check_producer(producer_id, producer_epoch)?;
        if self.record.state.is_prepare() {
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(())
    }

    /// EndTxn from the client, before transaction.version 2 (no epoch bump).
    /// `Ok(None)`: the same end already completed (a retry), nothing to write.
    #[cfg(test)]
    pub fn prepare_end(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<Transit>, TxnError> {
        match self.prepare_end_txn(producer_id, producer_epoch, commit, 0, None, now_ms)? {
            EndStep::Write(t) => Ok(Some(t)),
            EndStep::Answered { .. } => Ok(None),
            EndStep::NeedProducerId => Err(TxnError::InvalidRequest("no epoch bump before v2".to_string())),
        }
    }

    /// Whether the id's last change came from a transaction.version 2 client.
    fn tv2(&self) -> bool {
        self.record.client_transaction_version >= 2
    }

    /// EndTxn from the client at transaction.version `client_version` (2
    /// for EndTxn v5+). `fresh_id`: a newly allocated producer id, needed
    /// only when a bump would exhaust the epoch ([`EndStep::NeedProducerId`]
    /// asks for one). Kafka's rules, see the module doc.
    pub fn prepare_end_txn(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        client_version: i16,
        fresh_id: Option<i64>,
        now_ms: i64,
    ) -> Result<EndStep, TxnError> {
        let r = &self.record;
        let bump = client_version >= 2;
        // A retry of an EndTxn that bumped the epoch (transaction.version 2).
        let retry_on_bump = self.tv2() && producer_epoch.checked_add(1) == Some(r.producer_epoch);
        // ... or whose bump rolled over to a fresh producer id.
        let retry_on_rollover = self.tv2()
            && r.previous_producer_id == producer_id
            && producer_epoch == i16::MAX - 1
            && r.producer_epoch == 0
            && r.state.is_complete();
        let valid_epoch = if self.tv2() {
            match r.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
                TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    retry_on_bump || retry_on_rollover || producer_epoch == r.producer_epoch
                }
                _ => producer_epoch == r.producer_epoch,
            }
        } else {
            producer_epoch == r.producer_epoch
        };
        if self.tv2() && self.previous_end_in_progress(producer_id) {
            // The markers of an end are being written: a retry of that end,
            // or the next transaction's end at the epoch (or fresh id) it
            // gave the client. Retriable either way (KAFKA-18464).
            return Err(TxnError::ConcurrentTransactions);
        }
        if r.producer_id != producer_id && !retry_on_rollover {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(TxnError::ProducerFenced);
        }
        self.check_no_pending()?;
        let is_retry = retry_on_bump || retry_on_rollover;
        let answered = Ok(EndStep::Answered { producer_id: r.producer_id, producer_epoch: r.producer_epoch });
        let action = if commit { "EndTxn(commit)" } else { "EndTxn(abort)" };
        let invalid = Err(TxnError::InvalidTxnState { state: r.state, action });
        match (r.state, commit) {
            (TxnState::Ongoing, _) => {
                let state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
                self.prepare_ending(state, bump, fresh_id, now_ms)
            }
            // A retry (before v2: the same epoch; from v2: the epoch below).
            (TxnState::CompleteCommit, true) if is_retry || !self.tv2() => answered,
            (TxnState::CompleteAbort, false) if is_retry || !bump => answered,
            // A commit at the epoch below an abort: the coordinator aborted
            // the transaction on its own account (a timeout) while the
            // commit was on its way. The producer is fenced, which clients
            // recover from, rather than told of an invalid state, which
            // they do not (KAFKA-20785).
            (TxnState::CompleteAbort, true) if is_retry => Err(TxnError::ProducerFenced),
            // From v2 the client aborts when it cannot know whether anything
            // reached a partition: the epoch is bumped all the same.
            (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false) if bump && !is_retry => {
                self.prepare_ending(TxnState::PrepareAbort, bump, fresh_id, now_ms)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err(TxnError::ConcurrentTransactions),
            _ => invalid,
        }
    }

    /// The Prepare* transit of an EndTxn, with the epoch bumped when `bump`
    /// (rolling over to `fresh_id` when the epoch is exhausted).
    fn prepare_ending(
        &mut self,
        state: TxnState,
        bump: bool,
        fresh_id: Option<i64>,
        now_ms: i64,
    ) -> Result<EndStep, TxnError> {
        let r = &self.record;
        // The version of the end decides the markers' rules (as Kafka takes
        // it from each request): an end without a bump writes its markers
        // at the data's epoch, which the v2 marker check would refuse.
        let mut next = TxnRecord {
            state,
            last_update_ms: now_ms,
            previous_producer_id: r.producer_id,
            client_transaction_version: 0,
            ..r.clone()
        };
        let mut last = self.last_producer_epoch;
        if bump {
            if epoch_exhausted(r.producer_epoch) {
                let Some(fresh) = fresh_id else {
                    return Ok(EndStep::NeedProducerId);
                };
                next.next_producer_id = fresh;
            }
            // Epochs given to clients stop at i16::MAX - 1, so this fits.
            next.producer_epoch = r.producer_epoch.saturating_add(1);
            next.client_transaction_version = 2;
            last = r.producer_epoch;
        }
        Ok(EndStep::Write(self.transit(next, last)))
    }

    /// Aborts the open transaction on the coordinator's own account (a
    /// timeout, or a new producer fencing the old one): PrepareAbort at a
    /// bumped epoch, so the old producer is fenced and its markers carry the
    /// new epoch.
    pub fn prepare_fence_abort(&mut self, now_ms: i64) -> Result<Transit, TxnError> {
        self.check_no_pending()?;
        let r = &self.record;
        if r.state != TxnState::Ongoing {
            return Err(TxnError::InvalidTxnState { state: r.state, action: "abort on the coordinator's account" });
        }
        // Kafka refuses epochs of i16::MAX - 1 and above to clients, so one
        // more bump always fits. One bump at every transaction.version (as
        // Kafka from 4.1, KAFKA-19367): a producer whose transaction timed
        // out may still abort it at its old epoch (taken as a retry of the
        // abort) and go on at the new one; its commit is fenced.
        let next = TxnRecord {
            state: TxnState::PrepareAbort,
            producer_epoch: r.producer_epoch.saturating_add(1),
            last_update_ms: now_ms,
            previous_producer_id: r.producer_id,
            ..r.clone()
        };
        Ok(self.transit(next, NO_EPOCH))
    }

    /// Every marker is written: PrepareCommit → CompleteCommit, PrepareAbort → CompleteAbort.
    pub fn prepare_complete(&mut self, now_ms: i64) -> Result<Transit, TxnError> {
        self.check_no_pending()?;
        let r = &self.record;
        let state = match r.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => return Err(TxnError::InvalidTxnState { state: other, action: "complete" }),
        };
        let mut next = TxnRecord {
            state,
            partitions: BTreeMap::new(),
            last_update_ms: now_ms,
            previous_producer_id: r.producer_id,
            next_producer_id: NO_PRODUCER_ID,
            ..r.clone()
        };
        let last = r.producer_epoch;
        if r.next_producer_id != NO_PRODUCER_ID {
            // The bump exhausted the epoch: the fresh producer id takes over.
            next.producer_id = r.next_producer_id;
            next.producer_epoch = 0;
        }
        Ok(self.transit(next, last))
    }

    /// The id expired: Dead, written as a tombstone.
    pub fn prepare_dead(&mut self) -> Result<Transit, TxnError> {
        self.check_no_pending()?;
        if !self.record.state.expiration_allowed() {
            return Err(TxnError::InvalidTxnState { state: self.record.state, action: "expire" });
        }
        let next = TxnRecord { state: TxnState::Dead, ..self.record.clone() };
        let last = self.last_producer_epoch;
        Ok(self.transit(next, last))
    }

    /// The transit's record is replicated: it becomes the state.
    pub fn complete(&mut self, transit: Transit) {
        debug_assert_eq!(self.pending, Some(transit.record.state));
        self.record = transit.record;
        self.last_producer_epoch = transit.last_producer_epoch;
        self.pending = None;
    }

    /// The transit's write failed: the state stays as it was.
    pub fn fail_pending(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests;
