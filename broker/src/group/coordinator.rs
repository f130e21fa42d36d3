//! The group coordinator: the async shell around the group state machine.
//!
//! It owns every group of the `__consumer_offsets` partitions this broker
//! leads, each in a [`GroupSlot`] (a group and its offsets under one mutex),
//! and three kinds of tasks:
//!
//! - one *writer* per partition, appending queued records in queue order and
//!   then running each record's completion (applying it in memory, waking the
//!   request that waits on it). Records are queued while the group's lock is
//!   held, so for every group the log order, the in-memory order and the
//!   order of events agree;
//! - one *timer* per group, sleeping until the group's next deadline
//!   (session, rebalance, sync, initial delay) or until the group changes;
//! - [`GroupCoordinator::run`]: starts the timers of loaded groups, expires
//!   offsets every `offsets.retention.check.interval.ms`, and at shutdown
//!   answers waiting JoinGroup/SyncGroup requests with NOT_COORDINATOR.
//!
//! Until [`GroupCoordinator::attach`] gives it storage and a partition is
//! loaded, requests for that partition's groups get COORDINATOR_NOT_AVAILABLE.
//!
//! Locking: a group's slot lock is never taken while the group map lock is
//! held (the map lock may be taken under a slot lock); no lock is held across
//! an `.await`; log appends run on blocking threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::codec::{CodecError, GroupMetadataValue, OffsetCommitValue, RecordKey};
use super::consumer::ConsumerGroup;
use super::consumer::classic::TopicLookup;
use super::member::{JoinResult, SyncResult};
use super::offsets::{GroupOffsets, OffsetAndMetadata, TopicPartitionKey};
use super::state::{
    Group, GroupDescription, GroupState, JoinOutcome, JoinRequest, LeavingMember, PendingWrite, SyncOutcome,
    SyncRequest,
};
use super::store::{LoadItem, LogRecord, OffsetsLog, StoreError};
use super::{Clock, GroupConfig, GroupError, OFFSETS_TOPIC, Time, partition_for};
use crate::log::LogError;

/// One partition's offset commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionCommit {
    /// Partition index.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// Leader epoch of the last consumed record, -1 when unknown.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
}

/// An OffsetCommit, as the coordinator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// Member id; "" for simple consumers.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Generation id; -1 for simple consumers.
    pub generation_id: i32,
    /// OffsetCommit v2-v4 `retention_time_ms`, when not -1.
    pub retention_time_ms: Option<i64>,
    /// Partitions to commit, by topic.
    pub topics: Vec<(String, Vec<PartitionCommit>)>,
}

/// The outcome for one partition: (topic, partition, result).
pub type PartitionResult = (String, i32, Result<(), GroupError>);

/// Committed offsets of one topic: partition and offset (`None`: none committed).
pub type FetchedTopic = (String, Vec<(i32, Option<OffsetAndMetadata>)>);

/// One coordinated group as the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetricsView {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: GroupState,
    /// Committed offsets: (topic, partition, offset).
    pub offsets: Vec<(String, i32, i64)>,
}

/// One group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type, "" for none.
    pub protocol_type: String,
    /// State.
    pub state: GroupState,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
    /// A consumer group's state (Empty, Assigning, Reconciling, Stable), instead of `state`.
    pub consumer_state: Option<&'static str>,
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Records to append, and what to do once the append returns.
struct Job {
    records: Vec<LogRecord>,
    /// (producer id, epoch) for a TxnOffsetCommit: a transactional batch.
    producer: Option<(i64, i16)>,
    /// Runs as soon as the records are in the leader's log, before they are
    /// replicated: a TxnOffsetCommit's offsets are held from then on, so the
    /// transaction's marker (always later in the log) finds them.
    appended: Option<Box<dyn FnOnce() + Send>>,
    done: Completion,
}

/// A group and its committed offsets.
#[derive(Debug)]
struct GroupEntry {
    group: Group,
    offsets: GroupOffsets,
    /// Set when the group is a consumer-protocol (KIP-848) group; `group` then stays Empty.
    consumer: Option<ConsumerGroup>,
}

/// A group's home: its state under one lock, and its timer's wake-up.
#[derive(Debug)]
pub struct GroupSlot {
    group_id: String,
    partition: usize,
    entry: Mutex<GroupEntry>,
    wake: Notify,
    timer_running: AtomicBool,
    /// Cancelled when this broker stops coordinating the group's partition.
    evicted: CancellationToken,
}

impl GroupSlot {
    fn new(group: Group, offsets: GroupOffsets, partition: usize) -> Arc<GroupSlot> {
        Arc::new(GroupSlot {
            group_id: group.group_id().to_string(),
            partition,
            entry: Mutex::new(GroupEntry { group, offsets, consumer: None }),
            wake: Notify::new(),
            timer_running: AtomicBool::new(false),
            evicted: CancellationToken::new(),
        })
    }
}

#[derive(Debug)]
struct PartitionState {
    /// This broker leads the partition (so coordinates its groups).
    led: AtomicBool,
    loaded: AtomicBool,
    /// While the partition loads: the transaction markers that arrived
    /// meanwhile (producer id, committed), applied once its groups are in
    /// place — a marker appended after the load read past its place in the
    /// log would otherwise find no group and leave the offsets held forever.
    markers_during_load: parking_lot::Mutex<Option<Vec<(i64, bool)>>>,
    writer: OnceLock<mpsc::UnboundedSender<Job>>,
}

#[derive(Debug)]
struct Attached {
    store: Arc<dyn OffsetsLog>,
    partitions: Vec<PartitionState>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("records", &self.records.len()).finish()
    }
}

/// The group coordinator of this broker.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    clock: Clock,
    attached: OnceLock<Attached>,
    groups: RwLock<HashMap<String, Arc<GroupSlot>>>,
    shutdown: CancellationToken,
    me: Weak<GroupCoordinator>,
    /// Generation bumps of the groups coordinated here (`strom_group_rebalances_total`).
    rebalances: AtomicU64,
}

/// The error a failed `__consumer_offsets` append gives the client.
fn store_error(e: &StoreError) -> GroupError {
    match e {
        StoreError::Log(LogError::RecordBatchTooLarge { .. }) => GroupError::InvalidCommitOffsetSize,
        // As Kafka does: retriable, the client finds the coordinator again and retries.
        StoreError::NotReplicated { .. } => GroupError::CoordinatorNotAvailable,
        StoreError::NotHosted(_) => GroupError::NotCoordinator,
        other => GroupError::Storage(other.to_string()),
    }
}

/// One partition's committed offset and its `__consumer_offsets` record, as
/// OffsetCommit and TxnOffsetCommit write them; refused when its metadata
/// exceeds `max` (Kafka measures String.length(): UTF-16 units).
fn offset_record(
    group_id: &str,
    topic: &str,
    p: PartitionCommit,
    max: usize,
    wall_ms: i64,
    expire_timestamp_ms: Option<i64>,
) -> Result<(OffsetAndMetadata, LogRecord), GroupError> {
    let metadata = p.metadata.unwrap_or_default();
    let size = metadata.encode_utf16().count();
    if size > max {
        return Err(GroupError::OffsetMetadataTooLarge { size, max });
    }
    let offset = OffsetAndMetadata {
        offset: p.offset,
        leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
        metadata,
        commit_timestamp_ms: wall_ms,
        expire_timestamp_ms,
    };
    let record = LogRecord { key: offset_key(group_id, topic, p.partition), value: Some(offset.to_value().encode()) };
    Ok((offset, record))
}

fn group_key(group_id: &str) -> Bytes {
    RecordKey::GroupMetadata { group: group_id.to_string() }.encode()
}

fn offset_key(group_id: &str, topic: &str, partition: i32) -> Bytes {
    RecordKey::OffsetCommit { group: group_id.to_string(), topic: topic.to_string(), partition }.encode()
}

impl GroupCoordinator {
    /// A coordinator with no storage yet; see [`GroupCoordinator::attach`].
    pub fn new(config: GroupConfig) -> Arc<GroupCoordinator> {
        Arc::new_cyclic(|me| GroupCoordinator {
            config,
            clock: Clock::new(),
            attached: OnceLock::new(),
            groups: RwLock::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            me: me.clone(),
            rebalances: AtomicU64::new(0),
        })
    }

    /// The coordinator's settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Gives the coordinator its storage and the partition count of
    /// `__consumer_offsets`. Only the first call has an effect.
    pub fn attach(&self, store: Arc<dyn OffsetsLog>, partitions: usize) {
        let partitions = (0..partitions.max(1))
            .map(|_| PartitionState {
                led: AtomicBool::new(false),
                loaded: AtomicBool::new(false),
                markers_during_load: parking_lot::Mutex::new(None),
                writer: OnceLock::new(),
            })
            .collect();
        if self.attached.set(Attached { store, partitions }).is_err() {
            tracing::warn!("group coordinator already has its storage; ignoring a second attach");
        }
    }

    /// The partition count of `__consumer_offsets`, once attached.
    pub fn partition_count(&self) -> Option<usize> {
        self.attached.get().map(|a| a.partitions.len())
    }

    /// The `__consumer_offsets` partition of `group_id`, once attached.
    pub fn partition_of(&self, group_id: &str) -> Option<usize> {
        self.partition_count().map(|n| partition_for(group_id, n))
    }

    /// Loads every partition; one that fails is logged and stays unavailable. Blocking.
    pub fn load_all(&self) {
        let Some(n) = self.partition_count() else {
            return;
        };
        let mut groups = 0;
        for p in 0..n {
            if let Some(state) = self.attached.get().and_then(|a| a.partitions.get(p)) {
                state.led.store(true, Ordering::Release);
            }
            match self.load_partition(p) {
                Ok(loaded) => groups += loaded,
                Err(e) => {
                    tracing::error!(partition = p, error = %e, "cannot load __consumer_offsets partition; its groups stay unavailable")
                }
            }
        }
        tracing::info!(partitions = n, groups, "group coordinator loaded __consumer_offsets");
    }

    /// Follows leadership of `__consumer_offsets` partition `p`: a new
    /// leader loads the partition's groups and serves them; a former leader
    /// drops them, answering waiting requests with NOT_COORDINATOR so
    /// clients find the new coordinator. Blocking (loading reads the log).
    pub fn set_leadership(&self, p: usize, leader: bool) {
        let Some(state) = self.attached.get().and_then(|a| a.partitions.get(p)) else {
            return;
        };
        let was_leader = state.led.swap(leader, Ordering::AcqRel);
        if leader && !was_leader {
            match self.load_partition(p) {
                Ok(groups) => {
                    tracing::info!(
                        partition = p,
                        groups,
                        "now coordinating the groups of this __consumer_offsets partition"
                    );
                    let slots: Vec<_> = self.slots().into_iter().filter(|s| s.partition == p).collect();
                    for slot in slots {
                        self.ensure_timer(&slot);
                    }
                }
                Err(e) => {
                    tracing::error!(partition = p, error = %e, "cannot load __consumer_offsets partition; its groups stay unavailable")
                }
            }
        } else if !leader && was_leader {
            state.loaded.store(false, Ordering::Release);
            let evicted: Vec<Arc<GroupSlot>> = {
                let mut groups = self.groups.write();
                let ids: Vec<String> =
                    groups.values().filter(|s| s.partition == p).map(|s| s.group_id.clone()).collect();
                ids.iter().filter_map(|id| groups.remove(id)).collect()
            };
            for slot in &evicted {
                slot.evicted.cancel();
                slot.entry.lock().group.fail_waiting(GroupError::NotCoordinator);
            }
            tracing::info!(
                partition = p,
                groups = evicted.len(),
                "no longer coordinating this __consumer_offsets partition"
            );
        }
    }

    /// Reads partition `p` from the log, rebuilds its groups and offsets, and
    /// serves them. Returns the number of groups. Blocking.
    pub fn load_partition(&self, p: usize) -> Result<usize, StoreError> {
        let attached = self.attached.get().ok_or(StoreError::NotHosted(p as i32))?;
        let t = self.clock.time();
        let mut loaded: HashMap<String, (Option<Group>, GroupOffsets)> = HashMap::new();
        let config = self.config;
        if let Some(state) = attached.partitions.get(p) {
            *state.markers_during_load.lock() = Some(Vec::new());
        }
        // Whatever happens, markers stop being buffered when the load ends;
        // those buffered are applied to the groups it put in place (a
        // marker both read from the log and buffered ends nothing twice:
        // its producer's offsets are no longer held).
        let finish = |coordinator: &Self| {
            if let Some(state) = attached.partitions.get(p) {
                let buffered = state.markers_during_load.lock().take().unwrap_or_default();
                for (producer_id, committed) in buffered {
                    coordinator.apply_marker(p, producer_id, committed);
                }
            }
        };
        let read = attached.store.read(p as i32, &mut |item| {
            let (record, producer) = match item {
                LoadItem::Marker { producer_id, committed } => {
                    for (_, offsets) in loaded.values_mut() {
                        offsets.end_transaction(producer_id, committed);
                    }
                    return;
                }
                LoadItem::Record { record, producer_id } => (record, producer_id),
            };
            let key = match RecordKey::decode(&record.key) {
                Ok(k) => k,
                // Records of group types we do not run (KIP-848, share groups, ...).
                Err(CodecError::UnknownKeyType(_)) => return,
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "skipping an unreadable __consumer_offsets key");
                    return;
                }
            };
            let entry = loaded.entry(key.group().to_string()).or_default();
            match (key, record.value) {
                (RecordKey::OffsetCommit { topic, partition, .. }, None) => {
                    entry.1.remove(&topic, partition);
                }
                (RecordKey::OffsetCommit { topic, partition, .. }, Some(v)) => match OffsetCommitValue::decode(&v) {
                    Ok(v) => match producer {
                        // A TxnOffsetCommit: held until its producer's marker.
                        Some(pid) => {
                            entry.1.add_transactional(pid, (topic, partition), OffsetAndMetadata::from_value(v))
                        }
                        None => entry.1.set(&topic, partition, OffsetAndMetadata::from_value(v)),
                    },
                    Err(e) => tracing::warn!(partition = p, %topic, error = %e, "skipping an unreadable offset commit"),
                },
                (RecordKey::GroupMetadata { .. }, None) => entry.0 = None,
                (RecordKey::GroupMetadata { group }, Some(v)) => match GroupMetadataValue::decode(&v) {
                    Ok(v) => entry.0 = Some(Group::from_record(group, v, config, t)),
                    Err(e) => tracing::warn!(partition = p, %group, error = %e, "skipping unreadable group metadata"),
                },
            }
        });
        if let Err(e) = read {
            finish(self);
            return Err(e);
        }
        let mut count = 0;
        {
            let mut groups = self.groups.write();
            for (id, (group, offsets)) in loaded {
                if group.is_none() && offsets.is_empty() {
                    continue; // deleted
                }
                let group = group.unwrap_or_else(|| Group::new(id.clone(), config, t));
                groups.insert(id, GroupSlot::new(group, offsets, p));
                count += 1;
            }
        }
        finish(self);
        if let Some(state) = attached.partitions.get(p) {
            state.loaded.store(true, Ordering::Release);
        }
        Ok(count)
    }

    /// Background work until `shutdown`: starts the timers of loaded groups,
    /// expires offsets periodically; at shutdown answers waiting requests.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        for slot in self.slots() {
            self.ensure_timer(&slot);
        }
        let every = Duration::from_millis(self.config.offsets_retention_check_interval_ms);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let expired = self.expire_offsets();
                    if expired > 0 {
                        tracing::info!(offsets = expired, "expired committed offsets");
                    }
                }
                _ = shutdown.cancelled() => break,
                _ = self.shutdown.cancelled() => break,
            }
        }
        self.shutdown();
    }

    /// Stops the timers and writers and answers every waiting JoinGroup and
    /// SyncGroup with NOT_COORDINATOR (clients find the coordinator again).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        for slot in self.slots() {
            slot.entry.lock().group.fail_waiting(GroupError::NotCoordinator);
        }
    }

    fn slots(&self) -> Vec<Arc<GroupSlot>> {
        self.groups.read().values().cloned().collect()
    }

    /// Checks the group id and that its partition is loaded; returns the partition.
    fn check(&self, group_id: &str) -> Result<usize, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.check_loaded(group_id)
    }

    fn check_loaded(&self, group_id: &str) -> Result<usize, GroupError> {
        let attached = self.attached.get().ok_or(GroupError::CoordinatorNotAvailable)?;
        let p = partition_for(group_id, attached.partitions.len());
        match attached.partitions.get(p) {
            Some(state) if state.loaded.load(Ordering::Acquire) && !self.shutdown.is_cancelled() => Ok(p),
            Some(state) if !state.led.load(Ordering::Acquire) => Err(GroupError::NotCoordinator),
            // Kafka answers COORDINATOR_LOAD_IN_PROGRESS while the partition loads.
            Some(_) if !self.shutdown.is_cancelled() => Err(GroupError::CoordinatorLoadInProgress),
            _ => Err(GroupError::CoordinatorNotAvailable),
        }
    }

    fn get(&self, group_id: &str) -> Option<Arc<GroupSlot>> {
        self.groups.read().get(group_id).cloned()
    }

    fn get_or_create(&self, group_id: &str, partition: usize) -> Arc<GroupSlot> {
        if let Some(slot) = self.get(group_id) {
            return slot;
        }
        let t = self.clock.time();
        self.groups
            .write()
            .entry(group_id.to_string())
            .or_insert_with(|| GroupSlot::new(Group::new(group_id, self.config, t), GroupOffsets::default(), partition))
            .clone()
    }

    fn remove_slot(&self, slot: &Arc<GroupSlot>) {
        let mut groups = self.groups.write();
        if groups.get(&slot.group_id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            groups.remove(&slot.group_id);
        }
    }

    /// Runs `f` on the group under its lock, queues the records it produced,
    /// and wakes the group's timer.
    fn with_group<R>(&self, slot: &Arc<GroupSlot>, f: impl FnOnce(&mut GroupEntry, Time) -> R) -> R {
        self.ensure_timer(slot);
        let t = self.clock.time();
        let mut failed = Vec::new();
        let r = {
            let mut entry = slot.entry.lock();
            let generation = entry.group.generation_id();
            let r = f(&mut entry, t);
            if entry.group.generation_id() != generation {
                self.rebalances.fetch_add(1, Ordering::Relaxed);
            }
            self.queue_group_writes(slot, &mut entry, &mut failed);
            r
        };
        slot.wake.notify_one();
        run_failed(failed);
        r
    }

    /// Queues the group metadata records the state machine produced, with
    /// their completions. Called with the slot locked.
    fn queue_group_writes(&self, slot: &Arc<GroupSlot>, entry: &mut GroupEntry, failed: &mut Vec<Job>) {
        for write in entry.group.take_writes() {
            let record = LogRecord { key: group_key(&slot.group_id), value: Some(write.value().encode()) };
            let (me, s) = (self.me.clone(), slot.clone());
            let done: Completion = match write {
                PendingWrite::Metadata(_) => Box::new(move |result| {
                    if let Err(e) = result {
                        tracing::warn!(group = %s.group_id, error = %e, "could not write group metadata");
                    }
                }),
                PendingWrite::Assignment { generation, assignment, .. } => Box::new(move |result| {
                    if let Some(c) = me.upgrade() {
                        let result = result.map_err(|e| store_error(&e));
                        c.with_group(&s, |e, t| e.group.on_assignment_stored(generation, assignment, result, t));
                    }
                }),
                PendingWrite::StaticMember { replacement, .. } => Box::new(move |result| {
                    if let Some(c) = me.upgrade() {
                        let result = result.map_err(|e| store_error(&e));
                        c.with_group(&s, |e, t| e.group.on_static_member_stored(replacement, result, t));
                    }
                }),
            };
            if let Err(job) = self.enqueue(slot.partition, vec![record], done) {
                failed.push(job);
            }
        }
    }

    /// Hands records to the partition's writer; gives the job back when there is none.
    fn enqueue(&self, partition: usize, records: Vec<LogRecord>, done: Completion) -> Result<(), Job> {
        self.enqueue_job(partition, Job { records, producer: None, appended: None, done })
    }

    /// Hands a job to the partition's writer; gives it back when there is none.
    fn enqueue_job(&self, partition: usize, job: Job) -> Result<(), Job> {
        let Some(tx) = self.writer(partition) else {
            return Err(job);
        };
        tx.send(job).map_err(|e| e.0)
    }

    fn writer(&self, partition: usize) -> Option<&mpsc::UnboundedSender<Job>> {
        let attached = self.attached.get()?;
        let state = attached.partitions.get(partition)?;
        if let Some(tx) = state.writer.get() {
            return Some(tx);
        }
        let handle = Handle::try_current().ok()?;
        Some(state.writer.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            handle.spawn(write_loop(rx, attached.store.clone(), partition as i32, self.shutdown.clone()));
            tx
        }))
    }

    fn ensure_timer(&self, slot: &Arc<GroupSlot>) {
        if self.shutdown.is_cancelled() || slot.timer_running.swap(true, Ordering::AcqRel) {
            return;
        }
        match Handle::try_current() {
            Ok(handle) => {
                handle.spawn(group_timer(self.me.clone(), slot.clone(), self.shutdown.clone(), self.clock));
            }
            Err(_) => slot.timer_running.store(false, Ordering::Release),
        }
    }

    // ----- the APIs -----

    /// JoinGroup: answers at once, or when the join phase ends.
    pub async fn join_group(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        self.join_group_with(group_id, req, None).await
    }

    /// JoinGroup with a lookup of the broker's topics, which a classic member
    /// joining a consumer group is assigned from (`None`: the group's last
    /// view); it is called only for a consumer group, under the group's lock.
    pub async fn join_group_with(
        &self,
        group_id: &str,
        req: JoinRequest,
        lookup: Option<TopicLookup<'_>>,
    ) -> JoinResult {
        let member_id = req.member_id.clone();
        if group_id.is_empty() {
            return JoinResult::error(GroupError::InvalidGroupId, member_id);
        }
        let (min, max) = (self.config.min_session_timeout_ms, self.config.max_session_timeout_ms);
        if req.session_timeout_ms < min || req.session_timeout_ms > max {
            let e = GroupError::InvalidSessionTimeout { requested: req.session_timeout_ms, min, max };
            return JoinResult::error(e, member_id);
        }
        let partition = match self.check_loaded(group_id) {
            Ok(p) => p,
            Err(e) => return JoinResult::error(e, member_id),
        };
        let slot = if member_id.is_empty() {
            self.get_or_create(group_id, partition)
        } else {
            match self.get(group_id) {
                Some(slot) => slot,
                None => return JoinResult::error(GroupError::UnknownMemberId, member_id),
            }
        };
        let clock = self.clock;
        let joined = self.with_group(&slot, |e, t| {
            if !consumer::admit_classic(e) {
                return JoinOutcome::Done(consumer::classic_join(e, &req, lookup, clock.mono_ms(t.now)));
            }
            e.group.join(req, t)
        });
        match joined {
            JoinOutcome::Done(result) => result,
            JoinOutcome::Waiting(rx) => {
                rx.await.unwrap_or_else(|_| JoinResult::error(GroupError::CoordinatorNotAvailable, member_id))
            }
        }
    }

    /// SyncGroup: answers at once, or when the leader's assignment is stored.
    pub async fn sync_group(&self, group_id: &str, req: SyncRequest) -> SyncResult {
        if let Err(e) = self.check(group_id) {
            return SyncResult::error(e);
        }
        let Some(slot) = self.get(group_id) else {
            return SyncResult::error(GroupError::UnknownMemberId);
        };
        let clock = self.clock;
        let synced = self.with_group(&slot, |e, t| match e.consumer.as_mut() {
            Some(c) => SyncOutcome::Done(c.classic_sync(&req, clock.mono_ms(t.now))),
            None => e.group.sync(req),
        });
        match synced {
            SyncOutcome::Done(result) => result,
            SyncOutcome::Waiting(rx) => {
                rx.await.unwrap_or_else(|_| SyncResult::error(GroupError::CoordinatorNotAvailable))
            }
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        self.check(group_id)?;
        let slot = self.get(group_id).ok_or(GroupError::UnknownMemberId)?;
        let clock = self.clock;
        self.with_group(&slot, |e, t| match e.consumer.as_mut() {
            Some(c) => c.classic_heartbeat(member_id, instance_id, generation_id, clock.mono_ms(t.now)),
            None => e.group.heartbeat(member_id, instance_id, generation_id, t),
        })
    }

    /// LeaveGroup: one result per leaving member.
    pub fn leave_group(
        &self,
        group_id: &str,
        members: &[LeavingMember],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check(group_id)?;
        let slot = self.get(group_id).ok_or(GroupError::UnknownMemberId)?;
        self.with_group(&slot, |e, t| match e.consumer.as_mut() {
            Some(c) => Ok(c.classic_leave(members)),
            None => e.group.leave(members, t),
        })
    }

    /// OffsetCommit: a group-level error, or one result per partition once the
    /// commit is in the log. `api_version` picks the error for an unknown group
    /// (GROUP_ID_NOT_FOUND from v9, ILLEGAL_GENERATION before, as Kafka).
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        commit: OffsetCommit,
        api_version: i16,
    ) -> Result<Vec<PartitionResult>, GroupError> {
        let partition = self.check(group_id)?;
        let slot = match self.get(group_id) {
            Some(slot) => slot,
            None if commit.generation_id < 0 => self.get_or_create(group_id, partition),
            None if api_version >= 9 => return Err(GroupError::GroupIdNotFound),
            None => return Err(GroupError::IllegalGeneration),
        };
        self.ensure_timer(&slot);
        let t = self.clock.time();
        let mut failed = Vec::new();
        let (results, waiting) = {
            let mut entry = slot.entry.lock();
            match &entry.consumer {
                Some(c) => consumer::validate_commit(c, &commit.member_id, commit.generation_id)?,
                None => entry.group.validate_offset_commit(
                    &commit.member_id,
                    commit.group_instance_id.as_deref(),
                    commit.generation_id,
                )?,
            }
            entry.group.on_offset_commit(&commit.member_id, t);
            let expire = commit.retention_time_ms.map(|r| t.wall_ms.saturating_add(r));
            let max = self.config.offset_metadata_max_bytes;
            let mut results = Vec::new();
            let mut records = Vec::new();
            let mut committed: Vec<(TopicPartitionKey, OffsetAndMetadata)> = Vec::new();
            for (topic, partitions) in commit.topics {
                for p in partitions {
                    let partition = p.partition;
                    let (offset, record) = match offset_record(group_id, &topic, p, max, t.wall_ms, expire) {
                        Ok(built) => built,
                        Err(e) => {
                            results.push((topic.clone(), partition, Err(e)));
                            continue;
                        }
                    };
                    records.push(record);
                    let key = (topic.clone(), partition);
                    entry.offsets.add_pending(&key);
                    committed.push((key, offset));
                    results.push((topic.clone(), partition, Ok(())));
                }
            }
            let waiting = if records.is_empty() {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                let s = slot.clone();
                let done: Completion = Box::new(move |result| {
                    {
                        let mut entry = s.entry.lock();
                        for (key, offset) in committed {
                            entry.offsets.remove_pending(&key);
                            if result.is_ok() {
                                entry.offsets.set(&key.0, key.1, offset);
                            }
                        }
                    }
                    let _ = tx.send(result.map_err(|e| store_error(&e)));
                });
                if let Err(job) = self.enqueue(slot.partition, records, done) {
                    failed.push(job);
                }
                Some(rx)
            };
            (results, waiting)
        };
        slot.wake.notify_one();
        run_failed(failed);
        Ok(settle_write(results, waiting).await)
    }

    /// TxnOffsetCommit: writes the offsets as a transactional batch of the
    /// producer and holds them until its transaction ends
    /// ([`GroupCoordinator::end_transaction`]). A member's commit is checked
    /// against the group like an OffsetCommit (KIP-447); generation -1 with
    /// no member id is a producer outside the group.
    pub async fn txn_commit_offsets(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: OffsetCommit,
    ) -> Result<Vec<PartitionResult>, GroupError> {
        let partition = self.check(group_id)?;
        let slot = match self.get(group_id) {
            Some(slot) => slot,
            None if commit.generation_id < 0 => self.get_or_create(group_id, partition),
            None => return Err(GroupError::IllegalGeneration),
        };
        self.ensure_timer(&slot);
        let t = self.clock.time();
        let mut failed = Vec::new();
        let (results, waiting) = {
            let entry = slot.entry.lock();
            match &entry.consumer {
                Some(c) => consumer::validate_txn_commit(c, &commit.member_id, commit.generation_id)?,
                None => entry.group.validate_txn_offset_commit(
                    &commit.member_id,
                    commit.group_instance_id.as_deref(),
                    commit.generation_id,
                )?,
            }
            let max = self.config.offset_metadata_max_bytes;
            let mut results = Vec::new();
            let mut records = Vec::new();
            let mut held: Vec<(TopicPartitionKey, OffsetAndMetadata)> = Vec::new();
            for (topic, partitions) in commit.topics {
                for p in partitions {
                    let partition = p.partition;
                    let (offset, record) = match offset_record(group_id, &topic, p, max, t.wall_ms, None) {
                        Ok(built) => built,
                        Err(e) => {
                            results.push((topic.clone(), partition, Err(e)));
                            continue;
                        }
                    };
                    records.push(record);
                    held.push(((topic.clone(), partition), offset));
                    results.push((topic.clone(), partition, Ok(())));
                }
            }
            let waiting = if records.is_empty() {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                let s = slot.clone();
                // Held once appended, not once replicated: the marker ending
                // the transaction may be committed (and its hook run) in the
                // same high-watermark move as this batch. A batch that is
                // appended but not replicated stays held until its
                // transaction's marker resolves it.
                let appended: Box<dyn FnOnce() + Send> = Box::new(move || {
                    let mut entry = s.entry.lock();
                    for (key, offset) in held {
                        entry.offsets.add_transactional(producer_id, key, offset);
                    }
                });
                let done: Completion = Box::new(move |result| {
                    let _ = tx.send(result.map_err(|e| match e {
                        StoreError::Log(LogError::InvalidProducerEpoch { .. }) => GroupError::InvalidProducerEpoch,
                        other => store_error(&other),
                    }));
                });
                let job =
                    Job { records, producer: Some((producer_id, producer_epoch)), appended: Some(appended), done };
                if let Err(job) = self.enqueue_job(slot.partition, job) {
                    failed.push(job);
                }
                Some(rx)
            };
            (results, waiting)
        };
        run_failed(failed);
        Ok(settle_write(results, waiting).await)
    }

    /// A transaction marker of `producer_id` is committed on
    /// `__consumer_offsets` partition `partition`: the producer's held
    /// offsets there become committed (COMMIT) or are dropped (ABORT).
    pub fn end_transaction(&self, partition: usize, producer_id: i64, committed: bool) {
        let state = self.attached.get().and_then(|a| a.partitions.get(partition));
        let loading = state.map(|s| s.markers_during_load.lock());
        if let Some(mut pending) = loading
            && let Some(markers) = pending.as_mut()
        {
            markers.push((producer_id, committed)); // applied when the load completes
            return;
        }
        self.apply_marker(partition, producer_id, committed);
    }

    /// Ends `producer_id`'s held offsets in the groups of `partition`.
    fn apply_marker(&self, partition: usize, producer_id: i64, committed: bool) {
        for slot in self.slots().into_iter().filter(|s| s.partition == partition) {
            if slot.entry.lock().offsets.end_transaction(producer_id, committed) {
                tracing::debug!(group = %slot.group_id, producer_id, committed, "transactional offsets ended");
            }
        }
    }

    /// The partitions among `topics` (all, when `None`) with an offset held
    /// by an open transaction: OffsetFetch with `require_stable` answers them
    /// UNSTABLE_OFFSET_COMMIT.
    pub fn unstable_offsets(&self, group_id: &str, topics: &[(String, i32)]) -> Vec<(String, i32)> {
        let Some(slot) = self.get(group_id) else {
            return Vec::new();
        };
        let entry = slot.entry.lock();
        topics.iter().filter(|(t, p)| entry.offsets.has_transactional(t, *p)).cloned().collect()
    }

    /// OffsetFetch: the committed offsets of the given partitions (`None`: of
    /// every partition with one). An unknown group has none.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<FetchedTopic>, GroupError> {
        self.check(group_id)?;
        let slot = self.get(group_id);
        let entry = slot.as_ref().map(|s| s.entry.lock());
        let offsets = entry.as_ref().filter(|e| !e.group.is_dead()).map(|e| &e.offsets);
        let fetched = match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found =
                        partitions.into_iter().map(|p| (p, offsets.and_then(|o| o.get(&topic, p)).cloned())).collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: Vec<FetchedTopic> = Vec::new();
                for (topic, p, offset) in offsets.into_iter().flat_map(GroupOffsets::all) {
                    match by_topic.last_mut() {
                        Some((t, ps)) if t == topic => ps.push((p, Some(offset.clone()))),
                        _ => by_topic.push((topic.to_string(), vec![(p, Some(offset.clone()))])),
                    }
                }
                by_topic
            }
        };
        Ok(fetched)
    }

    /// Every live group coordinated here with its state and committed
    /// offsets, for the metrics. Takes each group's lock briefly.
    pub fn metrics_view(&self) -> Vec<GroupMetricsView> {
        self.slots()
            .iter()
            .filter_map(|slot| {
                let entry = slot.entry.lock();
                (!entry.group.is_dead()).then(|| GroupMetricsView {
                    group_id: slot.group_id.clone(),
                    state: entry.group.state(),
                    offsets: entry.offsets.all().map(|(t, p, o)| (t.to_string(), p, o.offset)).collect(),
                })
            })
            .collect()
    }

    /// Rebalances completed (generation bumps) by the groups coordinated here since start.
    pub fn rebalances_total(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }

    /// DescribeGroups for one group; `None` when it does not exist.
    pub fn describe_group(&self, group_id: &str) -> Result<Option<GroupDescription>, GroupError> {
        self.check(group_id)?;
        let Some(slot) = self.get(group_id) else {
            return Ok(None);
        };
        let entry = slot.entry.lock();
        // A consumer-protocol group is not a classic one: DescribeGroups sees none (ConsumerGroupDescribe does).
        Ok((!entry.group.is_dead() && entry.consumer.is_none()).then(|| entry.group.describe()))
    }

    /// ListGroups: every group, once every partition is loaded.
    pub fn list_groups(&self) -> Result<Vec<GroupListing>, GroupError> {
        let attached = self.attached.get().ok_or(GroupError::CoordinatorNotAvailable)?;
        // Kafka lists the groups this broker coordinates; wait while one of its partitions loads.
        if attached.partitions.iter().any(|p| p.led.load(Ordering::Acquire) && !p.loaded.load(Ordering::Acquire)) {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut listings: Vec<GroupListing> = self
            .slots()
            .iter()
            .filter_map(|slot| {
                let entry = slot.entry.lock();
                (!entry.group.is_dead()).then(|| match &entry.consumer {
                    Some(c) => GroupListing {
                        group_id: slot.group_id.clone(),
                        protocol_type: "consumer".to_string(),
                        state: entry.group.state(),
                        group_type: "consumer",
                        consumer_state: Some(c.state().name()),
                    },
                    None => GroupListing {
                        group_id: slot.group_id.clone(),
                        protocol_type: entry.group.protocol_type().unwrap_or_default().to_string(),
                        state: entry.group.state(),
                        group_type: "classic",
                        consumer_state: None,
                    },
                })
            })
            .collect();
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(listings)
    }

    /// DeleteGroups for one group: it must be Empty; its offsets and metadata
    /// are tombstoned, then it is gone.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        self.check(group_id)?;
        let slot = self.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        let t = self.clock.time();
        let mut failed = Vec::new();
        let rx = {
            let mut entry = slot.entry.lock();
            entry.group.validate_delete()?;
            if entry.consumer.as_ref().is_some_and(|c| !c.members().is_empty()) {
                return Err(GroupError::NonEmptyGroup);
            }
            let mut records: Vec<LogRecord> = entry
                .offsets
                .keys_with_pending()
                .into_iter()
                .map(|(topic, p)| LogRecord { key: offset_key(group_id, &topic, p), value: None })
                .collect();
            records.push(LogRecord { key: group_key(group_id), value: None });
            let before = entry.group.mark_dead(t);
            let (tx, rx) = oneshot::channel();
            let (me, s) = (self.me.clone(), slot.clone());
            let done: Completion = Box::new(move |result| {
                if let Some(c) = me.upgrade() {
                    match &result {
                        Ok(()) => c.remove_slot(&s),
                        Err(_) => c.with_group(&s, |e, t| e.group.undo_dead(before, t)),
                    }
                }
                let _ = tx.send(result.map_err(|e| store_error(&e)));
            });
            if let Err(job) = self.enqueue(slot.partition, records, done) {
                failed.push(job);
            }
            rx
        };
        slot.wake.notify_one();
        run_failed(failed);
        let result = rx.await.unwrap_or(Err(GroupError::CoordinatorNotAvailable));
        if result.is_ok() {
            tracing::info!(group = %group_id, "deleted group");
        }
        result
    }

    /// OffsetDelete: tombstones the offsets of topics the group does not subscribe to.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<Vec<PartitionResult>, GroupError> {
        self.check(group_id)?;
        let slot = self.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        let mut failed = Vec::new();
        let (results, waiting) = {
            let entry = slot.entry.lock();
            entry.group.validate_offset_delete()?;
            let mut results = Vec::new();
            let mut records = Vec::new();
            let mut deleted = Vec::new();
            for (topic, partitions) in topics {
                let subscribed = entry.group.is_subscribed_to(&topic);
                for p in partitions {
                    if subscribed {
                        results.push((topic.clone(), p, Err(GroupError::GroupSubscribedToTopic)));
                        continue;
                    }
                    if entry.offsets.contains(&topic, p) {
                        records.push(LogRecord { key: offset_key(group_id, &topic, p), value: None });
                        deleted.push((topic.clone(), p));
                    }
                    results.push((topic.clone(), p, Ok(())));
                }
            }
            let waiting = if records.is_empty() {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                let s = slot.clone();
                let done: Completion = Box::new(move |result| {
                    if result.is_ok() {
                        let mut entry = s.entry.lock();
                        for (topic, p) in deleted {
                            entry.offsets.remove(&topic, p);
                        }
                    }
                    let _ = tx.send(result.map_err(|e| store_error(&e)));
                });
                if let Err(job) = self.enqueue(slot.partition, records, done) {
                    failed.push(job);
                }
                Some(rx)
            };
            (results, waiting)
        };
        run_failed(failed);
        Ok(settle_write(results, waiting).await)
    }

    /// Tombstones expired offsets (`offsets.retention.minutes`), and deletes
    /// Empty groups left with none. Returns how many offsets it expired.
    pub fn expire_offsets(&self) -> usize {
        let t = self.clock.time();
        let retention = self.config.offsets_retention_ms;
        let mut expired_total = 0;
        let mut failed = Vec::new();
        for slot in self.slots() {
            if self.check_loaded(&slot.group_id).is_err() {
                continue;
            }
            let mut entry = slot.entry.lock();
            // A consumer group with members keeps its offsets (its members may be subscribed).
            if entry.group.is_dead() || entry.consumer.as_ref().is_some_and(|c| !c.members().is_empty()) {
                continue;
            }
            let (expired, all_expired) = entry.offsets.expired(&entry.group, t.wall_ms, retention);
            let delete_group = all_expired && entry.group.state() == GroupState::Empty && entry.group.has_no_members();
            if expired.is_empty() && !delete_group {
                continue;
            }
            expired_total += expired.len();
            let mut records: Vec<LogRecord> = expired
                .iter()
                .map(|(topic, p)| LogRecord { key: offset_key(&slot.group_id, topic, *p), value: None })
                .collect();
            let before = if delete_group {
                records.push(LogRecord { key: group_key(&slot.group_id), value: None });
                tracing::info!(group = %slot.group_id, "deleting empty group whose offsets all expired");
                Some(entry.group.mark_dead(t))
            } else {
                None
            };
            let (me, s) = (self.me.clone(), slot.clone());
            let done: Completion = Box::new(move |result| {
                let Some(c) = me.upgrade() else {
                    return;
                };
                match result {
                    Ok(()) => {
                        {
                            let mut entry = s.entry.lock();
                            for (topic, p) in &expired {
                                entry.offsets.remove(topic, *p);
                            }
                        }
                        if before.is_some() {
                            c.remove_slot(&s);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(group = %s.group_id, error = %e, "could not write expired offsets' tombstones");
                        if let Some(before) = before {
                            c.with_group(&s, |e, t| e.group.undo_dead(before, t));
                        }
                    }
                }
            });
            if let Err(job) = self.enqueue(slot.partition, records, done) {
                failed.push(job);
            }
            drop(entry);
            slot.wake.notify_one();
        }
        run_failed(failed);
        expired_total
    }
}

/// Fails jobs that could not be queued; called without any slot lock held.
/// Waits for a request's write (`waiting`; none when nothing was written)
/// and fails every partition answered ok when the write failed.
async fn settle_write<T>(
    mut results: Vec<PartitionResult>,
    waiting: Option<oneshot::Receiver<Result<T, GroupError>>>,
) -> Vec<PartitionResult> {
    if let Some(rx) = waiting
        && let Err(e) = rx.await.unwrap_or(Err(GroupError::CoordinatorNotAvailable))
    {
        for r in results.iter_mut().filter(|r| r.2.is_ok()) {
            r.2 = Err(e.clone());
        }
    }
    results
}

fn run_failed(failed: Vec<Job>) {
    for job in failed {
        tracing::warn!(records = job.records.len(), "no __consumer_offsets writer (shutting down?); failing the write");
        (job.done)(Err(StoreError::NotHosted(-1)));
    }
}

/// Appends queued jobs of one partition in order; after shutdown, drains what
/// is queued and stops.
async fn write_loop(
    mut rx: mpsc::UnboundedReceiver<Job>,
    store: Arc<dyn OffsetsLog>,
    partition: i32,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            _ = shutdown.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < 64 {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let appender = store.clone();
        let appended = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|mut job| {
                    let result = match job.producer {
                        Some((pid, epoch)) => appender.append_transactional(partition, pid, epoch, &job.records),
                        None => appender.append(partition, &job.records),
                    };
                    if let (Ok(()), Some(appended)) = (&result, job.appended.take()) {
                        appended();
                    }
                    (job, result)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let appended = match appended {
            Ok(appended) => appended,
            Err(e) => {
                tracing::error!(partition, error = %e, "__consumer_offsets append task failed; its requests fail");
                continue;
            }
        };
        // Like any acks=all write: the commit counts once the ISR has it, so
        // a new coordinator after a failover loads it.
        let replicated =
            if appended.iter().any(|(_, r)| r.is_ok()) { store.replicated(partition).await } else { Ok(()) };
        for (job, result) in appended {
            let result = match (&result, &replicated) {
                (Ok(()), Err(StoreError::NotReplicated { topic, reason, .. })) => {
                    Err(StoreError::NotReplicated { topic, partition, reason: reason.clone() })
                }
                (Ok(()), Err(e)) => {
                    Err(StoreError::NotReplicated { topic: OFFSETS_TOPIC, partition, reason: e.to_string() })
                }
                _ => result,
            };
            (job.done)(result);
        }
    }
}

/// Sleeps until the group's next deadline and fires it; exits when the group
/// is Dead or at shutdown.
async fn group_timer(
    coordinator: Weak<GroupCoordinator>,
    slot: Arc<GroupSlot>,
    shutdown: CancellationToken,
    clock: Clock,
) {
    loop {
        loop {
            let (dead, deadline) = {
                let entry = slot.entry.lock();
                let consumer =
                    entry.consumer.as_ref().and_then(|c| c.next_deadline_ms()).map(|ms| clock.instant_of(ms));
                let deadline = match (entry.group.next_deadline(), consumer) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (entry.group.is_dead(), deadline)
            };
            if dead {
                break;
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {
                    let Some(c) = coordinator.upgrade() else { return };
                    c.with_group(&slot, |e, t| {
                        e.group.on_timer(t);
                        consumer::on_timer(e, &slot.group_id, c.config, t, clock.mono_ms(t.now));
                    });
                }
                _ = slot.wake.notified() => {}
                _ = shutdown.cancelled() => return,
                _ = slot.evicted.cancelled() => return,
            }
        }
        slot.timer_running.store(false, Ordering::Release);
        // Revived (a failed delete undone) while we were stopping: carry on.
        let revived = !slot.entry.lock().group.is_dead();
        if !revived || shutdown.is_cancelled() || slot.timer_running.swap(true, Ordering::AcqRel) {
            return;
        }
    }
}

pub mod consumer;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod tests;
