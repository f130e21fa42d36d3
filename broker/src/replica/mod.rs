//! Partition replicas hosted by this broker and their high watermarks.
//!
//! A [`Partition`] wraps one partition's log with what the log itself does not
//! know: the leader epoch it is written under and the high watermark — the
//! offset below which records are committed and may be served to consumers.
//! On a single node the leader is the whole ISR, so the high watermark follows
//! the log end offset as soon as an append returns; replication will move it
//! by the followers' fetch positions instead.
//!
//! Invariants: consumers never see bytes at or above the high watermark; the
//! high watermark never goes backwards while this broker leads; appends to one
//! partition are serialised by the log's write lock (one writer).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::log::{AppendInfo, LogConfig, LogError, LogManager, ReadResult, SharedLog, TopicPartition};

/// One partition replica on this broker.
#[derive(Debug)]
pub struct Partition {
    tp: TopicPartition,
    log: SharedLog,
    leader_epoch: AtomicI32,
    high_watermark: watch::Sender<i64>,
}

impl Partition {
    fn new(tp: TopicPartition, log: SharedLog, leader_epoch: i32) -> Partition {
        let leo = log.read().log_end_offset();
        let (high_watermark, _) = watch::channel(leo);
        Partition { tp, log, leader_epoch: AtomicI32::new(leader_epoch), high_watermark }
    }

    /// Which partition this is.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The leader epoch appends are stamped with.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Appends producer batches as leader and advances the high watermark.
    ///
    /// Blocking file I/O: call from a blocking-capable context.
    pub fn append_as_leader(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = {
            let mut log = self.log.write();
            let info = log.append_as_leader(batches, self.leader_epoch(), now_ms)?;
            // Single-node ISR: the leader alone is in sync, so the append is
            // committed as soon as it is in the log.
            self.high_watermark.send_replace(log.log_end_offset());
            info
        };
        Ok(info)
    }

    /// Reads whole batches from `offset`, never at or above the high watermark.
    pub fn read_committed(&self, offset: i64, max_bytes: usize) -> Result<(ReadResult, i64), LogError> {
        let hw = self.high_watermark();
        let log = self.log.read();
        let result = log.read_up_to(offset, max_bytes, hw)?;
        Ok((result, hw))
    }

    /// Offset below which records are committed.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver woken whenever the high watermark moves (for long-polling fetches).
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// The underlying log.
    pub fn log(&self) -> &SharedLog {
        &self.log
    }
}

/// All partition replicas of this broker, by topic-partition.
#[derive(Debug)]
pub struct ReplicaManager {
    logs: Arc<LogManager>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
}

impl ReplicaManager {
    /// Creates a manager over the broker's log manager.
    pub fn new(logs: Arc<LogManager>) -> ReplicaManager {
        ReplicaManager { logs, partitions: RwLock::new(HashMap::new()) }
    }

    /// The broker's log manager.
    pub fn logs(&self) -> &Arc<LogManager> {
        &self.logs
    }

    /// Makes this broker host `tp` (opening or creating its log) as leader at `leader_epoch`.
    pub fn become_leader(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
        leader_epoch: i32,
    ) -> Result<Arc<Partition>, LogError> {
        if let Some(p) = self.partitions.read().get(tp) {
            p.leader_epoch.store(leader_epoch, Ordering::Release);
            p.log.write().set_config(config);
            return Ok(p.clone());
        }
        let log = self.logs.get_or_create(tp, config)?;
        let mut partitions = self.partitions.write();
        let partition = partitions
            .entry(tp.clone())
            .or_insert_with(|| Arc::new(Partition::new(tp.clone(), log, leader_epoch)))
            .clone();
        Ok(partition)
    }

    /// The hosted partition, if any.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    /// Stops hosting `tp` and deletes its log.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), LogError> {
        self.partitions.write().remove(tp);
        if self.logs.get(tp).is_some() {
            self.logs.remove(tp)?;
        }
        Ok(())
    }

    /// Applies a topic's (new) log configuration to all its hosted partitions.
    pub fn set_topic_config(&self, topic: &str, config: LogConfig) {
        self.logs.set_topic_config(topic, config);
    }
}
