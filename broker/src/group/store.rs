//! Where the coordinator's records live: the partitions of `__consumer_offsets`.
//!
//! [`OffsetsLog`] is the storage the coordinator is given — append a list of
//! (key, value) records to a partition as one batch, read a partition back
//! from its start — so the coordinator can be tested without a real log.
//! [`BrokerOffsetsLog`] implements it on the broker's hosted partitions:
//! records go in as one RecordBatch (magic 2, uncompressed, no producer id)
//! through `Partition::append_as_leader`, and come back by reading whole
//! batches below the high watermark.
//!
//! Both operations block on file I/O: call them from a blocking thread.

use std::sync::Weak;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Record, RecordBatchDecoder,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::OFFSETS_TOPIC;
use crate::clock::now_ms;
use crate::log::{LogError, TopicPartition};
use crate::replica::ReplicaError;
use crate::replica::ReplicaManager;

/// One `__consumer_offsets` record; a `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The encoded key.
    pub key: Bytes,
    /// The encoded value, or `None` for a tombstone.
    pub value: Option<Bytes>,
}

/// What loading a partition finds, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadItem {
    /// A record; `producer_id` is set when it belongs to a transactional batch
    /// (a TxnOffsetCommit), which counts only once its COMMIT marker follows.
    Record { record: LogRecord, producer_id: Option<i64> },
    /// A transaction marker (control batch) of `producer_id`.
    Marker { producer_id: i64, committed: bool },
}

/// A record batch could not be written to, or read from, `__consumer_offsets`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// This broker does not host the partition (or is shutting down).
    #[error("{OFFSETS_TOPIC} partition {0} is not hosted on this broker")]
    NotHosted(i32),
    /// The log refused or failed the operation.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A batch could not be encoded or decoded.
    #[error("{OFFSETS_TOPIC} record batch: {0}")]
    Batch(String),
    /// The in-sync replicas did not confirm the write in time, or this broker
    /// stopped leading. `topic` is `__consumer_offsets` or `__transaction_state`.
    #[error("{topic} partition {partition} was not replicated: {reason}")]
    NotReplicated { topic: &'static str, partition: i32, reason: String },
}

/// The coordinator's storage: the partitions of `__consumer_offsets`.
pub trait OffsetsLog: Send + Sync + std::fmt::Debug + 'static {
    /// Appends `records` to `partition` as one batch. Blocking.
    fn append(&self, partition: i32, records: &[LogRecord]) -> Result<(), StoreError>;

    /// Appends `records` to `partition` as one transactional batch of the
    /// producer (a TxnOffsetCommit): it counts once the producer's COMMIT
    /// marker follows it in the log. Blocking.
    fn append_transactional(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        records: &[LogRecord],
    ) -> Result<(), StoreError>;

    /// Calls `visit` with every record and transaction marker of
    /// `partition`, oldest first. Blocking.
    fn read(&self, partition: i32, visit: &mut dyn FnMut(LoadItem)) -> Result<(), StoreError>;

    /// Waits until everything appended to `partition` so far is replicated
    /// to the in-sync replicas (the high watermark covers it).
    fn replicated(&self, partition: i32) -> ReplicatedFuture {
        let _ = partition;
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What [`OffsetsLog::replicated`] returns.
pub type ReplicatedFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;

/// How long a write to `__consumer_offsets` waits for the ISR (Kafka's `offsets.commit.timeout.ms` default).
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many bytes one read of a partition asks for while loading.
const LOAD_READ_BYTES: usize = 4 << 20;

/// [`OffsetsLog`] on the broker's hosted `__consumer_offsets` partitions.
#[derive(Debug)]
pub struct BrokerOffsetsLog {
    replicas: Weak<ReplicaManager>,
    topic: &'static str,
    /// In-sync replicas a write needs, checked before the append and after
    /// replication (as an acks=all produce): 1 for `__consumer_offsets`,
    /// the topic's `min.insync.replicas` for `__transaction_state`
    /// (`transaction.state.log.min.isr`).
    min_insync: usize,
}

impl BrokerOffsetsLog {
    /// Storage on the hosted partitions of `replicas` (held weakly: the
    /// broker owns both them and the coordinator).
    pub fn new(replicas: Weak<ReplicaManager>) -> BrokerOffsetsLog {
        BrokerOffsetsLog::for_topic(replicas, OFFSETS_TOPIC)
    }

    /// The same storage on another compacted internal topic (the transaction
    /// coordinator keeps `__transaction_state` this way).
    pub fn for_topic(replicas: Weak<ReplicaManager>, topic: &'static str) -> BrokerOffsetsLog {
        BrokerOffsetsLog { replicas, topic, min_insync: 1 }
    }

    /// The same, refusing writes while fewer than `min_insync` replicas are in sync.
    pub fn with_min_insync(self, min_insync: usize) -> BrokerOffsetsLog {
        BrokerOffsetsLog { min_insync: min_insync.max(1), ..self }
    }

    fn partition(&self, partition: i32) -> Result<std::sync::Arc<crate::replica::Partition>, StoreError> {
        let replicas = self.replicas.upgrade().ok_or(StoreError::NotHosted(partition))?;
        let tp = TopicPartition { topic: self.topic.to_string(), partition };
        replicas.get(&tp).ok_or(StoreError::NotHosted(partition))
    }
}

/// A leader append the replica refused: the log's own error, or (not
/// leading, too few in-sync replicas) one the coordinator retries.
fn refused(topic: &'static str, partition: i32, e: ReplicaError) -> StoreError {
    match e {
        ReplicaError::Log(e) => StoreError::Log(e),
        e @ ReplicaError::NotLeader { .. } => {
            StoreError::Log(LogError::NotLeader { partition: format!("{topic}-{partition}"), reason: e.to_string() })
        }
        other => StoreError::NotReplicated { topic, partition, reason: other.to_string() },
    }
}

impl OffsetsLog for BrokerOffsetsLog {
    fn append(&self, partition: i32, records: &[LogRecord]) -> Result<(), StoreError> {
        let now = now_ms();
        let batch = encode_batch(records, now)?;
        let p = self.partition(partition)?;
        p.append_records(&batch, now, Some(self.min_insync)).map_err(|e| refused(self.topic, partition, e))?;
        Ok(())
    }

    fn append_transactional(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        records: &[LogRecord],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let p = self.partition(partition)?;
        // The producer's next sequence on this partition: the coordinator is
        // its only writer here (Kafka's coordinator appends skip the check).
        let sequence = {
            let log = p.log().read();
            match log.producer_states().get(producer_id) {
                Some(e) if e.epoch == producer_epoch => {
                    e.batches.back().map_or(0, |b| if b.last_sequence == i32::MAX { 0 } else { b.last_sequence + 1 })
                }
                _ => 0,
            }
        };
        let batch = encode_batch_with(records, now, Some((producer_id, producer_epoch, sequence)))?;
        p.append_records(&batch, now, Some(self.min_insync)).map_err(|e| refused(self.topic, partition, e))?;
        Ok(())
    }

    fn replicated(&self, partition: i32) -> ReplicatedFuture {
        let p = self.partition(partition);
        let min_insync = self.min_insync;
        let topic = self.topic;
        Box::pin(async move {
            let p = p?;
            let target = p.log_end_offset();
            // The same wait as an acks=all produce. (Never look at the
            // partition's state from inside a watch's `wait_for`: the
            // predicate runs under the watch's lock, and the leader advances
            // the high watermark under the state lock — a lock-order
            // inversion that once froze a broker.)
            match p.wait_for_commit(target, p.leader_epoch(), min_insync, REPLICATION_TIMEOUT).await {
                Ok(()) => Ok(()),
                Err(ReplicaError::CommitTimeout { .. }) => Err(StoreError::NotReplicated {
                    topic,
                    partition,
                    reason: "the in-sync replicas did not confirm it in time".to_string(),
                }),
                Err(e) => Err(StoreError::NotReplicated { topic, partition, reason: e.to_string() }),
            }
        })
    }

    fn read(&self, partition: i32, visit: &mut dyn FnMut(LoadItem)) -> Result<(), StoreError> {
        let p = self.partition(partition)?;
        // Up to the log end, not the high watermark: a new leader's log holds
        // everything committed, and its high watermark catches up only once
        // the followers fetch (Kafka loads to the log end too).
        let mut offset = p.log().read().log_start_offset();
        loop {
            let read = {
                let log = p.log().read();
                let end = log.log_end_offset();
                if offset >= end {
                    break;
                }
                log.read_up_to(offset, LOAD_READ_BYTES, end)
            };
            let records = match read {
                Ok(read) => read.records,
                // Retention or compaction moved the start past us: go on from there.
                Err(LogError::OffsetOutOfRange { log_start_offset, .. }) if log_start_offset > offset => {
                    offset = log_start_offset;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match decode_items(&records, visit)? {
                Some(next) if next > offset => offset = next,
                // Nothing whole came back: nothing more to read.
                _ => break,
            }
        }
        Ok(())
    }
}

/// One RecordBatch (magic 2, uncompressed, no producer id) holding `records`
/// at offset deltas 0.., stamped `timestamp_ms`.
pub fn encode_batch(records: &[LogRecord], timestamp_ms: i64) -> Result<Bytes, StoreError> {
    encode_batch_with(records, timestamp_ms, None)
}

/// [`encode_batch`], or with `producer` = (id, epoch, base sequence) a
/// transactional batch of that producer.
pub fn encode_batch_with(
    records: &[LogRecord],
    timestamp_ms: i64,
    producer: Option<(i64, i16, i32)>,
) -> Result<Bytes, StoreError> {
    let (producer_id, producer_epoch, base_sequence) = producer.unwrap_or((NO_PRODUCER_ID, NO_PRODUCER_EPOCH, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence
            // is constant; without a producer the base sequence is -1.
            sequence: if producer.is_some() { base_sequence.wrapping_add(i as i32) } else { i as i32 - 1 },
            timestamp: timestamp_ms,
            key: Some(r.key.clone()),
            value: r.value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| StoreError::Batch(e.to_string()))?;
    Ok(buf.freeze())
}

/// Size of a v2 batch header, up to and including the record count.
const BATCH_HEADER_BYTES: usize = 61;

/// Visits the records of every whole batch in `bytes` (skipping control
/// batches and records without a key) and returns the offset after the last
/// whole batch, or `None` when there is none.
pub fn decode_batches(bytes: &Bytes, visit: &mut dyn FnMut(LogRecord)) -> Result<Option<i64>, StoreError> {
    decode_items(bytes, &mut |item| {
        if let LoadItem::Record { record, .. } = item {
            visit(record)
        }
    })
}

/// Visits the records (with their producer, for transactional batches) and
/// the transaction markers of every whole batch in `bytes`, and returns the
/// offset after the last whole batch, or `None` when there is none.
pub fn decode_items(bytes: &Bytes, visit: &mut dyn FnMut(LoadItem)) -> Result<Option<i64>, StoreError> {
    let mut pos = 0usize;
    let mut next = None;
    while bytes.len() - pos >= BATCH_HEADER_BYTES {
        let header = &bytes[pos..];
        let base_offset = i64::from_be_bytes(header[0..8].try_into().map_err(|_| bad("base offset"))?);
        let batch_length = i32::from_be_bytes(header[8..12].try_into().map_err(|_| bad("batch length"))?);
        if batch_length < (BATCH_HEADER_BYTES - 12) as i32 {
            return Err(StoreError::Batch(format!("batch at offset {base_offset} has length {batch_length}")));
        }
        let total = 12 + batch_length as usize;
        if bytes.len() - pos < total {
            break; // a partial batch at the end of a read
        }
        let magic = header[16] as i8;
        let attributes = i16::from_be_bytes(header[21..23].try_into().map_err(|_| bad("attributes"))?);
        let last_offset_delta = i32::from_be_bytes(header[23..27].try_into().map_err(|_| bad("last offset delta"))?);
        let is_control = attributes & 0x20 != 0;
        let is_transactional = attributes & 0x10 != 0;
        if magic == 2 {
            let mut batch = bytes.slice(pos..pos + total);
            let set = RecordBatchDecoder::decode(&mut batch)
                .map_err(|e| StoreError::Batch(format!("batch at offset {base_offset}: {e}")))?;
            for record in set.records {
                let producer_id = record.producer_id;
                match (is_control, record.key) {
                    // A control record's key: version (int16), type (int16; 0 ABORT, 1 COMMIT).
                    (true, Some(key)) if key.len() >= 4 => {
                        let kind = i16::from_be_bytes([key[2], key[3]]);
                        if kind == 0 || kind == 1 {
                            visit(LoadItem::Marker { producer_id, committed: kind == 1 });
                        }
                    }
                    (true, _) => {}
                    (false, Some(key)) => visit(LoadItem::Record {
                        record: LogRecord { key, value: record.value },
                        producer_id: is_transactional.then_some(producer_id),
                    }),
                    (false, None) => {}
                }
            }
        }
        next = Some(base_offset.saturating_add(last_offset_delta as i64).saturating_add(1));
        pos += total;
    }
    Ok(next)
}

fn bad(field: &str) -> StoreError {
    StoreError::Batch(format!("cannot read the batch {field}"))
}

/// An in-memory [`OffsetsLog`] for tests, with appends that can be made to fail.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryOffsetsLog {
    partitions: parking_lot::Mutex<std::collections::HashMap<i32, Vec<Bytes>>>,
    fail_appends: std::sync::atomic::AtomicBool,
    /// Runs once, when the next read has visited everything (something
    /// arriving while a partition loads).
    after_next_read: parking_lot::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

#[cfg(test)]
impl std::fmt::Debug for MemoryOffsetsLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryOffsetsLog").finish_non_exhaustive()
    }
}

#[cfg(test)]
impl MemoryOffsetsLog {
    /// Makes every following append fail (or succeed again).
    pub fn fail_appends(&self, fail: bool) {
        self.fail_appends.store(fail, std::sync::atomic::Ordering::SeqCst);
    }

    /// Appends a COMMIT or ABORT marker of `producer_id` to `partition`, as
    /// a partition leader writes it (one control record: version 0, type).
    pub fn append_marker(&self, partition: i32, producer_id: i64, committed: bool) {
        let record = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 0,
            key: Some(Bytes::from(vec![0, 0, 0, u8::from(committed)])),
            value: Some(Bytes::from(vec![0, 0, 0, 0, 0, 0])),
            headers: Default::default(),
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        RecordBatchEncoder::encode(&mut buf, &[record], &options).expect("encode a control batch");
        self.partitions.lock().entry(partition).or_default().push(buf.freeze());
    }

    /// Runs `then` once the next read has visited every item.
    pub fn after_next_read(&self, then: impl FnOnce() + Send + 'static) {
        *self.after_next_read.lock() = Some(Box::new(then));
    }

    /// Every record appended to `partition`, oldest first.
    pub fn records(&self, partition: i32) -> Vec<LogRecord> {
        let mut out = Vec::new();
        if let Some(batches) = self.partitions.lock().get(&partition) {
            for b in batches {
                let _ = decode_batches(b, &mut |r| out.push(r));
            }
        }
        out
    }
}

#[cfg(test)]
impl OffsetsLog for MemoryOffsetsLog {
    fn append(&self, partition: i32, records: &[LogRecord]) -> Result<(), StoreError> {
        if self.fail_appends.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Batch(format!("the test fails appends to partition {partition}")));
        }
        // Through the real batch codec, so tests exercise it.
        let batch = encode_batch(records, 0)?;
        self.partitions.lock().entry(partition).or_default().push(batch);
        Ok(())
    }

    fn append_transactional(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        records: &[LogRecord],
    ) -> Result<(), StoreError> {
        if self.fail_appends.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Batch(format!("the test fails appends to partition {partition}")));
        }
        let batch = encode_batch_with(records, 0, Some((producer_id, producer_epoch, 0)))?;
        self.partitions.lock().entry(partition).or_default().push(batch);
        Ok(())
    }

    fn read(&self, partition: i32, visit: &mut dyn FnMut(LoadItem)) -> Result<(), StoreError> {
        let batches = self.partitions.lock().get(&partition).cloned().unwrap_or_default();
        for b in &batches {
            decode_items(b, visit)?;
        }
        let then = self.after_next_read.lock().take();
        if let Some(then) = then {
            then();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, value: Option<&str>) -> LogRecord {
        LogRecord {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        }
    }

    #[test]
    fn batches_hold_every_record_and_tombstone_in_order() {
        let records = vec![rec("a", Some("1")), rec("b", None), rec("c", Some("3"))];
        let batch = encode_batch(&records, 1234).unwrap();
        // One batch: magic 2, no producer, base sequence -1, three records.
        assert_eq!(batch[16], 2);
        assert_eq!(i64::from_be_bytes(batch[43..51].try_into().unwrap()), -1);
        assert_eq!(i32::from_be_bytes(batch[53..57].try_into().unwrap()), -1);
        assert_eq!(i32::from_be_bytes(batch[57..61].try_into().unwrap()), 3);
        let mut seen = Vec::new();
        let next = decode_batches(&batch, &mut |r| seen.push(r)).unwrap();
        assert_eq!(seen, records);
        assert_eq!(next, Some(3));
    }

    #[test]
    fn partial_batches_at_the_end_are_left_for_the_next_read() {
        let one = encode_batch(&[rec("a", Some("1"))], 0).unwrap();
        let mut two = BytesMut::from(&one[..]);
        // A second batch at offset 1.
        let mut second = BytesMut::from(&encode_batch(&[rec("b", Some("2"))], 0).unwrap()[..]);
        second[0..8].copy_from_slice(&1i64.to_be_bytes());
        two.extend_from_slice(&second[..second.len() - 3]);
        let mut seen = Vec::new();
        let next = decode_batches(&two.freeze(), &mut |r| seen.push(r)).unwrap();
        assert_eq!(seen, vec![rec("a", Some("1"))]);
        assert_eq!(next, Some(1));
        assert_eq!(decode_batches(&Bytes::new(), &mut |_| {}).unwrap(), None);
    }

    #[test]
    fn a_corrupt_batch_is_an_error() {
        let mut batch = BytesMut::from(&encode_batch(&[rec("a", Some("1"))], 0).unwrap()[..]);
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        assert!(decode_batches(&batch.freeze(), &mut |_| {}).is_err());
    }
}
