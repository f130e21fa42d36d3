//! The transaction coordinator: the async shell around [`super::state`].
//!
//! It owns the transactional ids of the `__transaction_state` partitions
//! this broker leads, each in a [`TxnSlot`] (its metadata under one mutex),
//! and:
//!
//! - writes each prepared transit to the id's partition (one record, acks
//!   all: appended, then waited on until the in-sync replicas have it) and
//!   only then applies it in memory;
//! - after a PrepareCommit/PrepareAbort is written, runs a *completion* task
//!   that sends the markers to every partition's leader through the
//!   [`MarkerSender`], retrying what failed until all are written, then
//!   writes CompleteCommit/CompleteAbort. The same task starts for every id
//!   found in a Prepare* state when a partition is loaded (failover);
//! - [`TxnCoordinator::run`] aborts, every
//!   `transaction.abort.timed.out.transaction.cleanup.interval.ms`,
//!   open transactions older than their timeout (with an epoch bump, which
//!   fences their producer); every
//!   `transaction.remove.expired.transaction.cleanup.interval.ms` removes ids
//!   idle longer than `transactional.id.expiration.ms` (a tombstone).
//!
//! Until [`TxnCoordinator::attach`] gives it storage and a partition is
//! loaded, requests for that partition's ids get COORDINATOR_NOT_AVAILABLE,
//! COORDINATOR_LOAD_IN_PROGRESS while it loads, NOT_COORDINATOR on a broker
//! that does not lead it.
//!
//! Locking: a slot's lock is never held across an `.await` nor while the id
//! map lock is taken for writing; log appends run on blocking threads.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::codec::{TxnRecord, decode_key, encode_key};
use super::markers::{MarkerOutcome, MarkerRequest, MarkerSender, outcome};
use super::state::{EndStep, InitStep, Transit, TxnDescription, TxnMetadata, TxnPartition, TxnState, validate_timeout};
use super::{TXN_STATE_TOPIC, TxnConfig, TxnError, partition_for};
use crate::clock::now_ms;
use crate::group::store::{LoadItem, LogRecord, OffsetsLog, StoreError};
use crate::log::LogError;

/// First and longest pause between two rounds of marker retries.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// One transactional id: its state under one lock.
#[derive(Debug)]
pub struct TxnSlot {
    id: String,
    partition: usize,
    /// The leader epoch of the partition when this coordinator loaded it.
    coordinator_epoch: i32,
    meta: Mutex<TxnMetadata>,
    /// Cancelled when this broker stops coordinating the id's partition.
    evicted: CancellationToken,
}

#[derive(Debug)]
struct PartitionState {
    led: AtomicBool,
    loaded: AtomicBool,
    epoch: AtomicI32,
}

#[derive(Debug)]
struct Attached {
    store: Arc<dyn OffsetsLog>,
    partitions: Vec<PartitionState>,
}

/// ListTransactions' view of one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    /// Transactional id.
    pub transactional_id: String,
    /// Producer id.
    pub producer_id: i64,
    /// State.
    pub state: TxnState,
    /// When the open transaction started (wall-clock ms), -1 when none.
    pub start_ms: i64,
}

/// The transaction coordinator of this broker.
#[derive(Debug)]
pub struct TxnCoordinator {
    config: TxnConfig,
    attached: OnceLock<Attached>,
    markers: OnceLock<Arc<dyn MarkerSender>>,
    txns: RwLock<HashMap<String, Arc<TxnSlot>>>,
    shutdown: CancellationToken,
    me: Weak<TxnCoordinator>,
    /// A creation of `__transaction_state` is under way.
    pub(crate) creating_topic: AtomicBool,
}

/// The error a failed `__transaction_state` write gives the client (Kafka's mapping).
fn store_error(e: &StoreError) -> TxnError {
    match e {
        StoreError::NotHosted(_) | StoreError::Log(LogError::NotLeader { .. }) => TxnError::NotCoordinator,
        // Not replicated in time: retriable, the client finds the coordinator again.
        StoreError::NotReplicated { .. } => TxnError::CoordinatorNotAvailable,
        other => TxnError::Storage(format!("writing to {TXN_STATE_TOPIC} failed: {other}")),
    }
}

impl TxnCoordinator {
    /// A coordinator with no storage yet; see [`TxnCoordinator::attach`].
    pub fn new(config: TxnConfig) -> Arc<TxnCoordinator> {
        Arc::new_cyclic(|me| TxnCoordinator {
            config,
            attached: OnceLock::new(),
            markers: OnceLock::new(),
            txns: RwLock::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            me: me.clone(),
            creating_topic: AtomicBool::new(false),
        })
    }

    /// The coordinator's settings.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Gives the coordinator its storage, the partition count of
    /// `__transaction_state` and its marker sender. Only the first call has an effect.
    pub fn attach(&self, store: Arc<dyn OffsetsLog>, partitions: usize, markers: Arc<dyn MarkerSender>) {
        let partitions = (0..partitions.max(1))
            .map(|_| PartitionState {
                led: AtomicBool::new(false),
                loaded: AtomicBool::new(false),
                epoch: AtomicI32::new(-1),
            })
            .collect();
        let _ = self.markers.set(markers);
        if self.attached.set(Attached { store, partitions }).is_err() {
            tracing::warn!("transaction coordinator already has its storage; ignoring a second attach");
        }
    }

    /// The partition count of `__transaction_state`, once attached.
    pub fn partition_count(&self) -> Option<usize> {
        self.attached.get().map(|a| a.partitions.len())
    }

    /// Follows leadership of `__transaction_state` partition `p` at
    /// `leader_epoch`: a new leader (or a new epoch) loads the partition's ids
    /// and finishes their Prepare* transactions; a former leader drops them.
    /// Blocking (loading reads the log).
    pub fn set_leadership(&self, p: usize, leader: bool, leader_epoch: i32) {
        let Some(state) = self.attached.get().and_then(|a| a.partitions.get(p)) else {
            return;
        };
        let was_leader = state.led.load(Ordering::Acquire);
        let old_epoch = state.epoch.load(Ordering::Acquire);
        if was_leader && (!leader || old_epoch != leader_epoch) {
            state.led.store(false, Ordering::Release);
            state.loaded.store(false, Ordering::Release);
            let evicted: Vec<Arc<TxnSlot>> = {
                let mut txns = self.txns.write();
                let ids: Vec<String> = txns.values().filter(|s| s.partition == p).map(|s| s.id.clone()).collect();
                ids.iter().filter_map(|id| txns.remove(id)).collect()
            };
            for slot in &evicted {
                slot.evicted.cancel();
            }
            tracing::info!(
                partition = p,
                ids = evicted.len(),
                "no longer coordinating this {TXN_STATE_TOPIC} partition"
            );
        }
        if leader && !(was_leader && old_epoch == leader_epoch) {
            state.epoch.store(leader_epoch, Ordering::Release);
            state.led.store(true, Ordering::Release);
            match self.load_partition(p, leader_epoch) {
                Ok(ids) => tracing::info!(
                    partition = p,
                    ids,
                    coordinator_epoch = leader_epoch,
                    "now coordinating the transactional ids of this {TXN_STATE_TOPIC} partition"
                ),
                Err(e) => tracing::error!(
                    partition = p,
                    error = %e,
                    "cannot load {TXN_STATE_TOPIC} partition; its transactional ids stay unavailable"
                ),
            }
        }
    }

    /// Reads partition `p`, rebuilds its ids, serves them, and resumes the
    /// completion of every Prepare* transaction. Returns the number of ids.
    /// An unreadable record is logged and skipped. Blocking.
    pub fn load_partition(&self, p: usize, coordinator_epoch: i32) -> Result<usize, StoreError> {
        let attached = self.attached.get().ok_or(StoreError::NotHosted(p as i32))?;
        let mut loaded: HashMap<String, Option<TxnRecord>> = HashMap::new();
        attached.store.read(p as i32, &mut |item| {
            let LoadItem::Record { record, .. } = item else {
                return;
            };
            let id = match decode_key(&record.key) {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "skipping an unreadable {TXN_STATE_TOPIC} key");
                    return;
                }
            };
            match record.value.map(|v| TxnRecord::decode(&v)) {
                None => {
                    loaded.insert(id, None);
                }
                Some(Ok(r)) => {
                    loaded.insert(id, Some(r));
                }
                Some(Err(e)) => {
                    tracing::warn!(partition = p, transactional_id = %id, error = %e, "skipping an unreadable {TXN_STATE_TOPIC} value");
                }
            }
        })?;
        let mut resume = Vec::new();
        let count;
        {
            let mut txns = self.txns.write();
            for (id, record) in loaded {
                let Some(record) = record.filter(|r| r.state != TxnState::Dead) else {
                    continue;
                };
                let prepare = record.state.is_prepare();
                let slot = Arc::new(TxnSlot {
                    id: id.clone(),
                    partition: p,
                    coordinator_epoch,
                    meta: Mutex::new(TxnMetadata::from_record(&id, record)),
                    evicted: CancellationToken::new(),
                });
                if prepare {
                    resume.push(slot.clone());
                }
                txns.insert(id, slot);
            }
            count = txns.values().filter(|s| s.partition == p).count();
        }
        if let Some(state) = attached.partitions.get(p) {
            state.loaded.store(true, Ordering::Release);
        }
        for slot in resume {
            tracing::info!(transactional_id = %slot.id, "resuming the markers of a transaction found in a prepare state");
            self.spawn_completion(slot);
        }
        Ok(count)
    }

    /// Background work until `shutdown`: aborts timed-out transactions and
    /// removes expired ids.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut abort = tokio::time::interval(Duration::from_millis(self.config.abort_timed_out_interval_ms));
        abort.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expire = tokio::time::interval(Duration::from_millis(self.config.remove_expired_interval_ms));
        expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        abort.tick().await;
        expire.tick().await;
        loop {
            tokio::select! {
                _ = abort.tick() => self.abort_timed_out().await,
                _ = expire.tick() => self.remove_expired().await,
                _ = shutdown.cancelled() => break,
                _ = self.shutdown.cancelled() => break,
            }
        }
        self.shutdown.cancel();
    }

    fn slots(&self) -> Vec<Arc<TxnSlot>> {
        self.txns.read().values().cloned().collect()
    }

    /// Checks the id and that its partition is loaded here; returns the partition.
    fn check(&self, transactional_id: &str) -> Result<usize, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest("the transactional id must not be empty".to_string()));
        }
        let attached = self.attached.get().ok_or(TxnError::CoordinatorNotAvailable)?;
        let p = partition_for(transactional_id, attached.partitions.len());
        match attached.partitions.get(p) {
            _ if self.shutdown.is_cancelled() => Err(TxnError::NotCoordinator),
            Some(s) if s.loaded.load(Ordering::Acquire) => Ok(p),
            Some(s) if s.led.load(Ordering::Acquire) => Err(TxnError::CoordinatorLoadInProgress),
            Some(_) => Err(TxnError::NotCoordinator),
            None => Err(TxnError::CoordinatorNotAvailable),
        }
    }

    fn get(&self, transactional_id: &str) -> Option<Arc<TxnSlot>> {
        self.txns.read().get(transactional_id).cloned()
    }

    /// Appends `transit` to the slot's partition and waits for the ISR; then
    /// it becomes the slot's state. On failure the pending transit is dropped.
    async fn write(&self, slot: &Arc<TxnSlot>, transit: Transit) -> Result<(), TxnError> {
        let result = self.append(slot, &transit).await;
        let mut meta = slot.meta.lock();
        match result {
            Ok(()) if slot.evicted.is_cancelled() => {
                meta.fail_pending();
                Err(TxnError::NotCoordinator)
            }
            Ok(()) => {
                meta.complete(transit);
                Ok(())
            }
            Err(e) => {
                meta.fail_pending();
                tracing::warn!(transactional_id = %slot.id, error = %e, "cannot write to {TXN_STATE_TOPIC}");
                Err(store_error(&e))
            }
        }
    }

    async fn append(&self, slot: &Arc<TxnSlot>, transit: &Transit) -> Result<(), StoreError> {
        let store = self.attached.get().ok_or(StoreError::NotHosted(slot.partition as i32))?.store.clone();
        // As Kafka: TransactionLogValue v1 (flexible, with the client's
        // transaction.version) from transaction.version 1, else v0.
        let version = if self.config.transaction_version >= 1 { 1 } else { 0 };
        let value = (transit.record.state != TxnState::Dead).then(|| transit.record.encode(version));
        let records = vec![LogRecord { key: encode_key(&slot.id), value }];
        let partition = slot.partition as i32;
        let appender = store.clone();
        tokio::task::spawn_blocking(move || appender.append(partition, &records))
            .await
            .map_err(|e| StoreError::Batch(format!("the append task failed: {e}")))??;
        store.replicated(partition).await
    }

    // ----- the APIs -----

    /// InitProducerId with a transactional id: the id's producer id and new
    /// epoch. `allocate` hands out a fresh producer id (a new id, or an
    /// exhausted epoch). An open transaction is aborted first and the answer
    /// is CONCURRENT_TRANSACTIONS, so the client retries (as Kafka does).
    pub async fn init_producer_id<F, Fut>(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        mut allocate: F,
    ) -> Result<(i64, i16), TxnError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<i64, String>>,
    {
        self.check(transactional_id)?;
        validate_timeout(timeout_ms, self.config.max_timeout_ms)?;
        let slot = match self.get(transactional_id) {
            Some(slot) => slot,
            None => {
                let pid = allocate().await.map_err(TxnError::Storage)?;
                let p = self.check(transactional_id)?;
                let epoch = self
                    .attached
                    .get()
                    .and_then(|a| a.partitions.get(p))
                    .map_or(-1, |s| s.epoch.load(Ordering::Acquire));
                let fresh = Arc::new(TxnSlot {
                    id: transactional_id.to_string(),
                    partition: p,
                    coordinator_epoch: epoch,
                    meta: Mutex::new(TxnMetadata::new(transactional_id, pid, timeout_ms, now_ms())),
                    evicted: CancellationToken::new(),
                });
                self.txns.write().entry(transactional_id.to_string()).or_insert(fresh).clone()
            }
        };
        let mut fresh_id = None;
        loop {
            let step = slot.meta.lock().prepare_init(timeout_ms, expected, fresh_id, now_ms())?;
            match step {
                InitStep::NeedProducerId => {
                    fresh_id = Some(allocate().await.map_err(TxnError::Storage)?);
                }
                InitStep::Write(t) => {
                    let answer = (t.record.producer_id, t.record.producer_epoch);
                    self.write(&slot, t).await?;
                    tracing::info!(
                        transactional_id,
                        producer_id = answer.0,
                        producer_epoch = answer.1,
                        "initialized transactional producer"
                    );
                    return Ok(answer);
                }
                InitStep::AbortOngoing(t) => {
                    tracing::info!(transactional_id, "a new producer aborts the open transaction of the old one");
                    self.write(&slot, t).await?;
                    self.spawn_completion(slot.clone());
                    return Err(TxnError::ConcurrentTransactions);
                }
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn) before transaction.version 2.
    #[cfg(test)]
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartition],
    ) -> Result<(), TxnError> {
        self.add_partitions_at(transactional_id, producer_id, producer_epoch, partitions, 0).await
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn; from transaction.version 2
    /// also a partition leader for a Produce v12+, or the group coordinator
    /// for a TxnOffsetCommit v5+, with `client_version` 2): adds partitions
    /// to the open transaction (opening it), once the change is in the log.
    pub async fn add_partitions_at(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartition],
        client_version: i16,
    ) -> Result<(), TxnError> {
        self.check(transactional_id)?;
        let slot = self.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        let transit = slot.meta.lock().prepare_add_partitions(
            producer_id,
            producer_epoch,
            partitions,
            client_version,
            now_ms(),
        )?;
        match transit {
            Some(t) => self.write(&slot, t).await,
            None => Ok(()),
        }
    }

    /// EndTxn before transaction.version 2.
    #[cfg(test)]
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let no_rollover = || async { Err::<i64, String>("no producer id rollover before v2".to_string()) };
        self.end_transaction(transactional_id, producer_id, producer_epoch, commit, 0, no_rollover).await.map(|_| ())
    }

    /// EndTxn at transaction.version `client_version` (2: EndTxn v5+, the
    /// epoch bumps): writes PrepareCommit/PrepareAbort and answers with the
    /// producer id and epoch the client continues with; the markers and the
    /// Complete* record follow in the background. `allocate` hands out a
    /// fresh producer id when the bump would exhaust the epoch.
    pub async fn end_transaction<F, Fut>(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        client_version: i16,
        mut allocate: F,
    ) -> Result<(i64, i16), TxnError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<i64, String>>,
    {
        self.check(transactional_id)?;
        let slot = self.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        let mut fresh_id = None;
        loop {
            let step = slot.meta.lock().prepare_end_txn(
                producer_id,
                producer_epoch,
                commit,
                client_version,
                fresh_id,
                now_ms(),
            )?;
            match step {
                EndStep::NeedProducerId => fresh_id = Some(allocate().await.map_err(TxnError::Storage)?),
                EndStep::Answered { producer_id, producer_epoch } => return Ok((producer_id, producer_epoch)),
                EndStep::Write(t) => {
                    let answer = t.continue_with();
                    self.write(&slot, t).await?;
                    self.spawn_completion(slot);
                    return Ok(answer);
                }
            }
        }
    }

    /// Whether each partition is in the producer's open transaction (KIP-890
    /// verification for partition leaders): one result per partition.
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartition],
    ) -> Result<Vec<Result<(), TxnError>>, TxnError> {
        self.check(transactional_id)?;
        let slot = self.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        let meta = slot.meta.lock();
        meta.check_in_transaction(producer_id, producer_epoch)?;
        Ok(partitions
            .iter()
            .map(|(t, p)| {
                if meta.contains(t, *p) {
                    Ok(())
                } else {
                    Err(TxnError::InvalidTxnState { state: meta.state(), action: "a produce to a partition not added" })
                }
            })
            .collect())
    }

    /// Checks a TxnOffsetCommit's producer against its transactional id, when
    /// this broker coordinates it (the group coordinator may be elsewhere).
    pub fn check_producer(&self, transactional_id: &str, producer_id: i64, producer_epoch: i16) -> Option<TxnError> {
        self.check(transactional_id).ok()?;
        let Some(slot) = self.get(transactional_id) else {
            return Some(TxnError::InvalidProducerIdMapping);
        };
        let meta = slot.meta.lock();
        meta.check_in_transaction(producer_id, producer_epoch).err()
    }

    /// DescribeTransactions of one id.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, TxnError> {
        self.check(transactional_id)?;
        let slot = self.get(transactional_id).ok_or(TxnError::TransactionalIdNotFound)?;
        let meta = slot.meta.lock();
        if meta.producer_epoch() < 0 || meta.state() == TxnState::Dead {
            // Created by an InitProducerId whose write has not landed.
            return Err(TxnError::TransactionalIdNotFound);
        }
        Ok(meta.describe())
    }

    /// ListTransactions: the ids this broker coordinates, filtered by state
    /// names, producer ids and minimum open duration (-1: any).
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Result<Vec<TxnListing>, TxnError> {
        let attached = self.attached.get().ok_or(TxnError::CoordinatorNotAvailable)?;
        if attached.partitions.iter().any(|p| p.led.load(Ordering::Acquire) && !p.loaded.load(Ordering::Acquire)) {
            return Err(TxnError::CoordinatorLoadInProgress);
        }
        let now = now_ms();
        let mut out: Vec<TxnListing> = self
            .slots()
            .iter()
            .filter_map(|slot| {
                let meta = slot.meta.lock();
                let r = meta.record();
                let keep = r.producer_epoch >= 0
                    && r.state != TxnState::Dead
                    && (states.is_empty() || states.contains(&r.state))
                    && (producer_ids.is_empty() || producer_ids.contains(&r.producer_id))
                    && (min_duration_ms < 0 || (r.start_ms >= 0 && now - r.start_ms >= min_duration_ms));
                keep.then(|| TxnListing {
                    transactional_id: slot.id.clone(),
                    producer_id: r.producer_id,
                    state: r.state,
                    start_ms: r.start_ms,
                })
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    // ----- completion, timeouts, expiry -----

    fn spawn_completion(&self, slot: Arc<TxnSlot>) {
        let Ok(handle) = Handle::try_current() else {
            tracing::error!(transactional_id = %slot.id, "no runtime to send transaction markers on");
            return;
        };
        let me = self.me.clone();
        handle.spawn(async move {
            if let Some(c) = me.upgrade() {
                c.complete(slot).await;
            }
        });
    }

    /// Sends the markers of the slot's Prepare* transaction until every
    /// partition has one, then writes Complete*. Stops when this broker stops
    /// coordinating the id, or when a newer coordinator fenced the markers.
    async fn complete(&self, slot: Arc<TxnSlot>) {
        let Some(markers) = self.markers.get().cloned() else {
            tracing::error!(transactional_id = %slot.id, "no marker sender; the transaction stays prepared");
            return;
        };
        let (mut request, state) = {
            let meta = slot.meta.lock();
            let r = meta.record();
            let request = MarkerRequest {
                producer_id: r.producer_id,
                producer_epoch: r.producer_epoch,
                committed: r.state == TxnState::PrepareCommit,
                coordinator_epoch: slot.coordinator_epoch,
                partitions: meta.partitions(),
                transaction_version: r.client_transaction_version,
            };
            (request, r.state)
        };
        if !state.is_prepare() {
            return;
        }
        let mut pause = RETRY_FIRST;
        while !request.partitions.is_empty() {
            let results = tokio::select! {
                r = markers.send(request.clone()) => r,
                _ = slot.evicted.cancelled() => return,
                _ = self.shutdown.cancelled() => return,
            };
            let mut retry = Vec::new();
            for (topic, partition, code) in results {
                match outcome(code) {
                    MarkerOutcome::Done => {}
                    MarkerOutcome::Fenced => {
                        tracing::warn!(transactional_id = %slot.id, %topic, partition, "a newer coordinator fenced this one's markers; stopping");
                        return;
                    }
                    MarkerOutcome::Retry => retry.push((topic, partition)),
                }
            }
            request.partitions.retain(|tp| retry.contains(tp));
            if request.partitions.is_empty() {
                break;
            }
            tracing::debug!(transactional_id = %slot.id, partitions = request.partitions.len(), "retrying transaction markers");
            if !self.pause(&slot, pause).await {
                return;
            }
            pause = (pause * 2).min(RETRY_MAX);
        }
        // Every marker is written: Complete*, retried until it is in the log.
        let mut pause = RETRY_FIRST;
        loop {
            let transit = slot.meta.lock().prepare_complete(now_ms());
            let transit = match transit {
                Ok(t) => t,
                // Something else is being written for the id; try again shortly.
                Err(TxnError::ConcurrentTransactions) => {
                    if !self.pause(&slot, pause).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(transactional_id = %slot.id, error = %e, "transaction already completed");
                    return;
                }
            };
            let outcome = if request.committed { "committed" } else { "aborted" };
            match self.write(&slot, transit).await {
                Ok(()) => {
                    tracing::debug!(transactional_id = %slot.id, outcome, "transaction completed");
                    return;
                }
                Err(TxnError::NotCoordinator) => return,
                Err(e) => {
                    tracing::warn!(transactional_id = %slot.id, error = %e, "cannot write the transaction's completion; retrying")
                }
            }
            if !self.pause(&slot, pause).await {
                return;
            }
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Waits `d`; false when the slot was evicted or the coordinator stopped meanwhile.
    async fn pause(&self, slot: &TxnSlot, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = slot.evicted.cancelled() => false,
            _ = self.shutdown.cancelled() => false,
        }
    }

    /// Aborts every open transaction older than its timeout, bumping the
    /// epoch so its producer is fenced.
    pub async fn abort_timed_out(&self) {
        let now = now_ms();
        for slot in self.slots() {
            if self.check(&slot.id).is_err() {
                continue;
            }
            let transit = {
                let mut meta = slot.meta.lock();
                if !meta.timed_out(now) {
                    continue;
                }
                meta.prepare_fence_abort(now)
            };
            let Ok(transit) = transit else {
                continue;
            };
            tracing::info!(transactional_id = %slot.id, "aborting a transaction open longer than its transaction.timeout.ms");
            if self.write(&slot, transit).await.is_ok() {
                self.spawn_completion(slot);
            }
        }
    }

    /// Removes ids idle longer than `transactional.id.expiration.ms`.
    pub async fn remove_expired(&self) {
        let now = now_ms();
        for slot in self.slots() {
            if self.check(&slot.id).is_err() {
                continue;
            }
            let transit = {
                let mut meta = slot.meta.lock();
                if !meta.expired(now, self.config.id_expiration_ms) {
                    continue;
                }
                meta.prepare_dead()
            };
            let Ok(transit) = transit else {
                continue;
            };
            if self.write(&slot, transit).await.is_ok() {
                let mut txns = self.txns.write();
                if txns.get(&slot.id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    txns.remove(&slot.id);
                }
                tracing::info!(transactional_id = %slot.id, "removed a transactional id idle longer than transactional.id.expiration.ms");
            }
        }
    }
}

#[cfg(test)]
mod tests;
