//! Tests of what a follower does to its log: appending the leader's stored
//! batches, refusing gaps, overlaps and corruption, and truncating where it
//! diverges (epochs, producer state, snapshots).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::batch::tests::encode_batch;
use super::epoch::EpochEntry;
use super::producer_state::SequenceCheck;
use super::tests::idempotent_batch;
use super::*;

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn small_config() -> LogConfig {
    LogConfig { segment_bytes: 2048, index_interval_bytes: 256, ..LogConfig::default() }
}

/// Every byte of the log, segment after segment.
fn log_bytes(log: &PartitionLog) -> Vec<u8> {
    log.segments().flat_map(|s| s.read_all().expect("segment reads")).collect()
}

/// The stored batches from `from` on, as a leader would send them, in reads of `max_bytes`.
fn stored_batches(log: &PartitionLog, from: i64, max_bytes: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let read = log.read_up_to(offset, max_bytes, i64::MAX).expect("read in range");
        if read.records.is_empty() {
            break;
        }
        offset = batch::last_offset_in(&read.records).expect("whole batches") + 1;
        out.push(read.records);
    }
    out
}

/// Batches one by one, split from a read.
fn split_batches(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = batch::BatchHeader::parse(&bytes[position..]).unwrap();
        out.push(bytes[position..position + header.size()].to_vec());
        position += header.size();
    }
    out
}

fn snapshot_offsets(dir: &std::path::Path) -> Vec<i64> {
    let mut offsets: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".snapshot").and_then(|s| s.parse().ok())
        })
        .collect();
    offsets.sort_unstable();
    offsets
}

#[test]
fn a_follower_copy_is_byte_identical_with_the_same_epochs_and_producers() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = PartitionLog::open(ld.path(), tp(), small_config()).unwrap();
    for i in 0..6 {
        leader.append_as_leader(&encode_batch(3, 100, 1000 + i, Compression::None), 1, 0).unwrap();
    }
    leader.append_as_leader(&idempotent_batch(2, 0, 0), 3, 0).unwrap();
    leader.append_as_leader(&encode_batch(4, 50, 3000, Compression::Lz4), 3, 0).unwrap();
    leader.append_as_leader(&idempotent_batch(3, 0, 2), 4, 0).unwrap();
    assert!(leader.segment_count() > 1, "the test must cross a segment roll");

    let mut follower = PartitionLog::open(fd.path(), tp(), small_config()).unwrap();
    for chunk in stored_batches(&leader, 0, 700) {
        follower.append_as_follower(&chunk).unwrap();
    }
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(log_bytes(&follower), log_bytes(&leader), "byte for byte");
    assert_eq!(follower.epochs().entries(), leader.epochs().entries());
    assert_eq!(follower.producer_states(), leader.producer_states());
    // Were it to lead, it would recognise the producer's retry.
    let retry = follower.append_as_leader(&idempotent_batch(3, 0, 2), 5, 0).unwrap();
    assert_eq!((retry.base_offset, retry.bytes), (leader.log_end_offset() - 3, 0));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset(), "nothing written for the retry");

    // Reopened, it rebuilds the same state from disk.
    drop(follower);
    let follower = PartitionLog::open(fd.path(), tp(), small_config()).unwrap();
    assert_eq!(follower.epochs().entries(), leader.epochs().entries());
    assert_eq!(follower.producer_states(), leader.producer_states());
    assert_eq!(log_bytes(&follower), log_bytes(&leader));
}

#[test]
fn follower_appends_refuse_gaps_overlaps_and_corruption_writing_nothing() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = PartitionLog::open(ld.path(), tp(), LogConfig::default()).unwrap();
    for _ in 0..3 {
        leader.append_as_leader(&encode_batch(2, 10, 1, Compression::None), 1, 0).unwrap();
    }
    let all = leader.read_up_to(0, 1 << 20, i64::MAX).unwrap().records;
    let batches = split_batches(&all);
    let mut follower = PartitionLog::open(fd.path(), tp(), LogConfig::default()).unwrap();

    let gap = follower.append_as_follower(&batches[1]).unwrap_err();
    assert!(matches!(gap, LogError::UnexpectedAppendOffset { expected: 0, found: 2 }), "{gap}");
    assert!(gap.to_string().contains("offset 2") && gap.to_string().contains("offset 0"), "{gap}");

    let mut inner_gap = batches[0].clone();
    inner_gap.extend_from_slice(&batches[2]);
    assert!(matches!(
        follower.append_as_follower(&inner_gap),
        Err(LogError::UnexpectedAppendOffset { expected: 2, found: 4 })
    ));

    let mut corrupt = batches[0].clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    assert!(matches!(follower.append_as_follower(&corrupt), Err(LogError::CrcMismatch { .. })));
    assert!(matches!(follower.append_as_follower(&batches[0][..40]), Err(LogError::CorruptBatch { .. })));
    assert_eq!((follower.log_end_offset(), follower.size_bytes()), (0, 0), "nothing written");

    follower.append_as_follower(&batches[0]).unwrap();
    assert!(matches!(
        follower.append_as_follower(&batches[0]),
        Err(LogError::UnexpectedAppendOffset { expected: 2, found: 0 })
    ));
    let mut rest = batches[1].clone();
    rest.extend_from_slice(&batches[2]);
    follower.append_as_follower(&rest).unwrap();
    assert_eq!(log_bytes(&follower), log_bytes(&leader));
}

/// One batch of records with the given keys (values "v").
fn keyed_batch(keys: &[&str]) -> Vec<u8> {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .unwrap();
    buf.to_vec()
}

#[test]
fn a_compacted_leaders_sparse_batches_replicate_to_a_compacted_follower() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = LogConfig { cleanup_policy: CleanupPolicy::Compact, ..LogConfig::default() };
    let mut leader = PartitionLog::open(ld.path(), tp(), config.clone()).unwrap();
    leader.append_as_leader(&keyed_batch(&["a", "b"]), 1, 0).unwrap(); // 0-1, both superseded
    leader.append_as_leader(&keyed_batch(&["c", "d", "e", "f"]), 1, 0).unwrap(); // 2-5, "d" superseded
    leader.append_as_leader(&keyed_batch(&["a", "b", "d"]), 1, 0).unwrap(); // 6-8
    leader.roll().unwrap();
    leader.append_as_leader(&keyed_batch(&["g"]), 1, 0).unwrap(); // 9
    assert!(leader.compact(0).unwrap().records_removed >= 3);

    let mut follower = PartitionLog::open(fd.path(), tp(), config).unwrap();
    for chunk in stored_batches(&leader, 0, 1 << 20) {
        follower.append_as_follower(&chunk).unwrap();
    }
    assert_eq!(follower.log_end_offset(), 10);
    assert_eq!(log_bytes(&follower), log_bytes(&leader));

    // A log that is not compacted takes no gap, even from its leader.
    let plain = tempfile::tempdir().unwrap();
    let mut strict = PartitionLog::open(plain.path(), tp(), LogConfig::default()).unwrap();
    let first = stored_batches(&leader, 0, 1 << 20).remove(0);
    assert!(matches!(strict.append_as_follower(&first), Err(LogError::UnexpectedAppendOffset { expected: 0, .. })));
}

#[test]
fn truncation_cuts_epochs_and_rebuilds_producers_from_their_earlier_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    // Producer 9 writes 8 one-record batches (only the last 5 are remembered),
    // epoch 1 for offsets 0-3, epoch 2 from 4.
    for seq in 0..8 {
        let epoch = if seq < 4 { 1 } else { 2 };
        log.append_as_leader(&idempotent_batch(1, 0, seq), epoch, 0).unwrap();
        if seq == 5 {
            log.flush().unwrap(); // a snapshot at offset 6
        }
    }
    log.flush().unwrap(); // a snapshot at offset 8
    assert_eq!(snapshot_offsets(dir.path()), vec![6, 8]);

    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.epochs().entries(), &[EpochEntry { epoch: 1, start_offset: 0 }]);
    assert!(snapshot_offsets(dir.path()).iter().all(|o| *o <= 3), "snapshots past the new end are gone");
    let state = log.producer_states().get(9).expect("producer 9 is known again from its earlier batches");
    assert_eq!(state.batches.back().map(|b| (b.last_sequence, b.last_offset)), Some((2, 2)));
    let next = batch::BatchHeader::parse(&idempotent_batch(1, 0, 3)).unwrap();
    assert_eq!(log.producer_states().check(&next).unwrap(), SequenceCheck::Append);
    let skipped = batch::BatchHeader::parse(&idempotent_batch(1, 0, 5)).unwrap();
    assert!(matches!(log.producer_states().check(&skipped), Err(LogError::OutOfOrderSequence { expected: 3, .. })));

    // The same after a restart.
    drop(log);
    let log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    assert_eq!(log.producer_states().check(&next).unwrap(), SequenceCheck::Append);
}

#[test]
fn truncating_inside_a_batch_cuts_the_whole_batch_and_its_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { index_interval_bytes: 1, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
    for _ in 0..4 {
        log.append_as_leader(&encode_batch(3, 10, 1, Compression::None), 1, 0).unwrap();
    }
    log.truncate_to(7).unwrap(); // inside the batch 6-8
    assert_eq!(log.log_end_offset(), 6);
    let segment = log.segments().next().unwrap();
    assert!(segment.offset_index().entries().iter().all(|e| u64::from(e.position) < segment.size()));
    // New appends land where the cut batch was, and read back.
    log.append_as_leader(&encode_batch(2, 10, 1, Compression::None), 2, 0).unwrap();
    let read = log.read_up_to(6, 1 << 20, i64::MAX).unwrap();
    assert_eq!(batch::BatchHeader::parse(&read.records).unwrap().base_offset, 6);
    assert_eq!(log.epochs().entries().last(), Some(&EpochEntry { epoch: 2, start_offset: 6 }));
}

#[test]
fn an_epoch_with_no_records_is_dropped_by_truncating_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    log.append_as_leader(&encode_batch(2, 10, 1, Compression::None), 1, 0).unwrap();
    log.assign_epoch_start(4).unwrap(); // became leader at 4, wrote nothing
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 2)));
    assert_eq!(log.end_offset_for_epoch(3), Some((1, 2)));
    log.truncate_to(2).unwrap();
    assert_eq!(log.latest_epoch(), Some(1));
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn end_offsets_for_epochs_follow_kafkas_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    assert_eq!(log.end_offset_for_epoch(0), None, "no epoch known");
    log.append_as_leader(&encode_batch(2, 10, 1, Compression::None), 2, 0).unwrap();
    log.append_as_leader(&encode_batch(2, 10, 1, Compression::None), 5, 0).unwrap();
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 2)));
    assert_eq!(log.end_offset_for_epoch(4), Some((2, 2)), "the largest epoch below");
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 4)), "the latest ends at the log end");
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 0)), "older than all: the first epoch's start");
    assert_eq!(log.end_offset_for_epoch(-1), None);
}

#[test]
fn a_follower_below_its_leaders_start_restarts_its_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    log.append_as_leader(&idempotent_batch(3, 0, 0), 1, 0).unwrap();
    log.flush().unwrap();
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (100, 100, 0));
    assert!(log.epochs().entries().is_empty());
    assert!(log.producer_states().is_empty());
    assert!(snapshot_offsets(dir.path()).is_empty());
    drop(log);
    let log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
}
