//! Transactions in the log: markers end ongoing transactions and hold the
//! first unstable offset, aborts are indexed in `.txnindex`, all of it comes
//! back after a crash, and a follower replicating the batches ends with the
//! same state.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::batch::tests::encode_batch;
use super::control::EndTxnMarker;
use super::txn_index::AbortedTxn;
use super::*;

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// A transactional batch of `count` records from producer `pid` (epoch 0)
/// starting at `sequence`.
pub(crate) fn txn_batch(pid: i64, sequence: i32, count: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: 1,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .unwrap();
    buf.to_vec()
}

const ABORT: EndTxnMarker = EndTxnMarker { committed: false, coordinator_epoch: 1 };
const COMMIT: EndTxnMarker = EndTxnMarker { committed: true, coordinator_epoch: 1 };

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: lso }
}

/// Every byte of every `.txnindex` file in `dir`, by file name.
fn txn_index_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".txnindex"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn markers_end_transactions_and_aborts_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    log.append_as_leader(&txn_batch(1, 0, 3), 0, 0).unwrap(); // 0..=2
    log.append_as_leader(&txn_batch(2, 0, 2), 0, 0).unwrap(); // 3..=4
    log.append_as_leader(&encode_batch(1, 1, 1, Compression::None), 0, 0).unwrap(); // 5
    assert_eq!(log.first_unstable_offset(), Some(0));
    let marker = log.append_txn_marker(1, 0, ABORT, 0, 10).unwrap();
    assert_eq!((marker.base_offset, marker.record_count), (6, 1));
    assert_eq!(log.first_unstable_offset(), Some(3), "producer 2's transaction is still open");
    assert_eq!(log.aborted_transactions(0, 100), vec![aborted(1, 0, 6, 3)]);
    log.append_txn_marker(2, 0, COMMIT, 0, 10).unwrap(); // 7
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.aborted_transactions(0, 100), vec![aborted(1, 0, 6, 3)], "commits are not indexed");
    assert_eq!(log.aborted_transactions(7, 100), vec![], "the abort ended before offset 7");
    // A stale coordinator is fenced; nothing is written.
    let stale = EndTxnMarker { committed: true, coordinator_epoch: 0 };
    assert!(matches!(log.append_txn_marker(2, 0, stale, 0, 10), Err(LogError::CoordinatorFenced { current: 1, .. })));
    assert_eq!(log.log_end_offset(), 8);
    // The marker is Kafka's control batch, read back as one.
    let read = log.read_up_to(6, 1 << 20, i64::MAX).unwrap();
    let header = batch::BatchHeader::parse(&read.records).unwrap();
    assert!(header.is_control() && header.producer_id == 1);
    assert_eq!(control::parse_marker_batch(&read.records[..header.size()]).unwrap(), Some(ABORT));
}

#[test]
fn ongoing_transactions_and_the_txnindex_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 400, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
    let mut seq = [0i32; 4];
    for round in 0..6 {
        for pid in 1..=3i64 {
            log.append_as_leader(&txn_batch(pid, seq[pid as usize], 2), 0, 0).unwrap();
            seq[pid as usize] += 2;
        }
        // Producer 1 aborts and producer 2 commits every round; producer 3
        // stays open throughout.
        log.append_txn_marker(1, 0, ABORT, 0, 0).unwrap();
        log.append_txn_marker(2, 0, COMMIT, 0, 0).unwrap();
        if round == 2 {
            log.flush().unwrap(); // a snapshot in the middle
        }
    }
    assert!(log.segment_count() > 3, "the markers spread over several segments");
    let aborted_before = log.aborted_transactions(0, i64::MAX);
    assert_eq!(aborted_before.len(), 6);
    // Producer 2's transaction (from 2) was open at the first abort, and
    // producer 3's (from 4) at every one.
    let stable: Vec<i64> = aborted_before.iter().map(|t| t.last_stable_offset).collect();
    assert_eq!(stable, vec![2, 4, 4, 4, 4, 4]);
    assert!(aborted_before.iter().all(|t| t.producer_id == 1));
    let files_before = txn_index_files(dir.path());
    assert_eq!(log.first_unstable_offset(), Some(4));
    drop(log); // kill -9: no flush since round 2

    let mut log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(4), "producer 3's transaction is still open");
    assert_eq!(log.aborted_transactions(0, i64::MAX), aborted_before);
    assert_eq!(txn_index_files(dir.path()), files_before);
    log.append_txn_marker(3, 0, ABORT, 0, 0).unwrap();
    let end = log.log_end_offset();
    assert_eq!(log.first_unstable_offset(), None);
    drop(log);

    // Every index and snapshot lost: the log alone rebuilds them.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.to_string_lossy().into_owned();
        if name.ends_with(".txnindex") || name.ends_with(".snapshot") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    let all = log.aborted_transactions(0, i64::MAX);
    assert_eq!(all.len(), 7);
    assert_eq!(all.last(), Some(&aborted(3, 4, end - 1, end)));
    assert_eq!(log.first_unstable_offset(), None);
}

#[test]
fn a_follower_replicating_markers_ends_with_the_same_state_and_truncation_reopens_them() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = LogConfig { segment_bytes: 500, ..LogConfig::default() };
    let mut leader = PartitionLog::open(ld.path(), tp(), config.clone()).unwrap();
    let mut follower = PartitionLog::open(fd.path(), tp(), config).unwrap();
    let mut seq = [0i32; 3];
    for round in 0..5 {
        for pid in 1..=2i64 {
            leader.append_as_leader(&txn_batch(pid, seq[pid as usize], 3), 0, 0).unwrap();
            seq[pid as usize] += 3;
        }
        leader.append_txn_marker(1, 0, if round % 2 == 0 { ABORT } else { COMMIT }, 0, 0).unwrap();
    }
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let read = leader.read_up_to(offset, 300, i64::MAX).unwrap();
        offset = batch::last_offset_in(&read.records).unwrap() + 1;
        follower.append_as_follower(&read.records).unwrap();
    }
    assert_eq!(follower.first_unstable_offset(), leader.first_unstable_offset());
    assert_eq!(follower.first_unstable_offset(), Some(3), "producer 2 never ended its transaction");
    assert_eq!(follower.aborted_transactions(0, i64::MAX), leader.aborted_transactions(0, i64::MAX));
    assert_eq!(follower.aborted_transactions(0, i64::MAX).len(), 3);
    assert_eq!(follower.producer_states(), leader.producer_states());
    assert_eq!(txn_index_files(fd.path()), txn_index_files(ld.path()));

    // Truncating below the last abort marker drops its index entry and opens
    // the transaction again.
    let last_abort = follower.aborted_transactions(0, i64::MAX).last().copied().unwrap();
    follower.truncate_to(last_abort.last_offset).unwrap();
    assert_eq!(follower.aborted_transactions(0, i64::MAX).len(), 2);
    assert_eq!(follower.first_unstable_offset(), Some(3));
    assert_eq!(follower.producer_states().get(1).and_then(|e| e.txn_first_offset), Some(last_abort.first_offset));
}

#[test]
fn retention_keeps_segments_of_an_ongoing_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 300, retention_bytes: 0, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    log.append_as_leader(&encode_batch(2, 10, 1, Compression::None), 0, 0).unwrap();
    log.roll().unwrap();
    let open = log.append_as_leader(&txn_batch(5, 0, 2), 0, 0).unwrap();
    for _ in 0..5 {
        log.append_as_leader(&encode_batch(2, 10, 1, Compression::None), 0, 0).unwrap();
    }
    log.roll().unwrap();
    log.enforce_retention(0).unwrap();
    assert_eq!(log.log_start_offset(), open.base_offset, "only the segment before the transaction went");
    log.append_txn_marker(5, 0, COMMIT, 0, 0).unwrap();
    log.roll().unwrap();
    log.enforce_retention(0).unwrap();
    assert_eq!(log.log_start_offset(), log.log_end_offset());
}

/// (base offset, control?) of every batch in the log.
fn batch_offsets(log: &PartitionLog) -> Vec<(i64, bool)> {
    let bytes: Vec<u8> = log.segments().flat_map(|s| s.read_all().unwrap()).collect();
    let mut out = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = batch::BatchHeader::parse(&bytes[position..]).unwrap();
        out.push((header.base_offset, header.is_control()));
        position += header.size();
    }
    out
}

#[test]
fn compaction_never_lets_aborted_or_open_transactions_supersede_committed_values() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { cleanup_policy: CleanupPolicy::Compact, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    // Key k0 everywhere: committed at 0, aborted at 1 (marker 2), open at 3.
    log.append_as_leader(&encode_batch(1, 1, 1, Compression::None), 0, 0).unwrap();
    log.append_as_leader(&txn_batch(1, 0, 1), 0, 0).unwrap();
    log.append_txn_marker(1, 0, ABORT, 0, 0).unwrap();
    log.roll().unwrap();
    log.append_as_leader(&txn_batch(2, 0, 1), 0, 0).unwrap();
    log.roll().unwrap();
    log.compact(10).unwrap();
    assert_eq!(
        batch_offsets(&log),
        vec![(0, false), (2, true), (3, false)],
        "the committed value stays, the aborted one goes, the open one is not cleaned"
    );
    log.append_txn_marker(2, 0, COMMIT, 0, 0).unwrap(); // 4
    log.roll().unwrap();
    log.compact(10).unwrap();
    assert_eq!(batch_offsets(&log), vec![(2, true), (3, false), (4, true)], "once committed, 3 supersedes 0");
}

#[test]
fn a_txnindex_left_without_its_segment_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    log.append_as_leader(&encode_batch(1, 1, 1, Compression::None), 0, 0).unwrap();
    drop(log);
    // As a crash in the middle of deleting segment 100 would leave it.
    let mut stale = txn_index::TxnIndex::open(dir.path(), 100).unwrap();
    stale.append(aborted(9, 100, 105, 106)).unwrap();
    let log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    assert!(!txn_index::path(dir.path(), 100).exists());
    assert_eq!(log.aborted_transactions(0, i64::MAX), vec![]);
}

#[test]
fn a_client_transactional_batch_needs_an_ongoing_transaction_or_a_current_verification() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    let refused = log.append_as_leader_verified(&txn_batch(1, 0, 2), 0, 0, None);
    assert!(matches!(refused, Err(LogError::TxnNotVerified { producer_id: 1, .. })), "{refused:?}");
    assert_eq!((log.log_end_offset(), log.first_unstable_offset()), (0, None), "nothing written");

    let guard = log.start_txn_verification(1, 0, 0).unwrap();
    log.append_as_leader_verified(&txn_batch(1, 0, 2), 0, 0, Some(guard)).unwrap(); // 0..=1
    assert_eq!(log.start_txn_verification(1, 0, 2), None, "ongoing: no verification");
    log.append_as_leader_verified(&txn_batch(1, 2, 1), 0, 0, None).unwrap(); // 2
    log.append_as_leader_verified(&encode_batch(1, 1, 1, Compression::None), 0, 0, None).unwrap(); // 3

    // Verified for the next transaction, but the abort marker of the
    // current one lands before the append: the append is refused.
    log.append_txn_marker(1, 0, COMMIT, 0, 0).unwrap(); // 4
    let guard = log.start_txn_verification(1, 0, 3).unwrap();
    log.append_txn_marker(1, 0, ABORT, 0, 0).unwrap(); // 5
    let late = log.append_as_leader_verified(&txn_batch(1, 3, 1), 0, 0, Some(guard));
    assert!(matches!(late, Err(LogError::TxnNotVerified { .. })), "{late:?}");
    assert_eq!((log.log_end_offset(), log.first_unstable_offset()), (6, None), "nothing written, nothing open");
}

#[test]
fn a_later_first_batch_waits_for_an_earlier_one_whose_verification_was_refused() {
    // Pipelined first batches of a transaction (sequences 0 and 2): the
    // coordinator is busy for the first (CONCURRENT_TRANSACTIONS, retriable)
    // and confirms the second. The second must not be appended before the
    // first, or the first's retry would be out of order for good.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    let first = log.start_txn_verification(1, 0, 0).unwrap();
    let second = log.start_txn_verification(1, 0, 2).unwrap();
    log.abandon_txn_verification(1, first, true);
    let early = log.append_as_leader_verified(&txn_batch(1, 2, 1), 0, 0, Some(second));
    assert!(matches!(early, Err(LogError::OutOfOrderSequence { expected: 0, got: 2, .. })), "{early:?}");
    assert_eq!(log.log_end_offset(), 0, "nothing written");
    // The retry of the first is verified (the same verification) and
    // appended; then the second goes on.
    let retry = log.start_txn_verification(1, 0, 0).unwrap();
    assert_eq!(retry, second);
    log.append_as_leader_verified(&txn_batch(1, 0, 2), 0, 0, Some(retry)).unwrap(); // 0..=1
    assert_eq!(log.start_txn_verification(1, 0, 2), None, "ongoing now");
    log.append_as_leader_verified(&txn_batch(1, 2, 1), 0, 0, None).unwrap(); // 2
    assert_eq!(log.log_end_offset(), 3);

    // A refusal that is not retriable (fenced) drops the verification: its
    // guard is no longer current, a new verification gets another.
    log.append_txn_marker(1, 0, COMMIT, 0, 0).unwrap(); // 3
    let fenced = log.start_txn_verification(1, 0, 3).unwrap();
    log.abandon_txn_verification(1, fenced, false);
    let r = log.append_as_leader_verified(&txn_batch(1, 3, 1), 0, 0, Some(fenced));
    assert!(matches!(r, Err(LogError::TxnNotVerified { .. })), "{r:?}");
    let next = log.start_txn_verification(1, 0, 3).unwrap();
    assert_ne!(next, fenced);
    log.append_as_leader_verified(&txn_batch(1, 3, 1), 0, 0, Some(next)).unwrap(); // 4
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn the_previous_transactions_marker_keeps_the_lowest_sequence_of_the_next_ones_verification() {
    // transaction.version 2: T1's marker carries T2's epoch and lands while
    // T2's first batches (sequences 0 and 2) are being verified, the first
    // refused for a while (CONCURRENT_TRANSACTIONS). The second must still
    // wait for the first.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    let first = log.start_txn_verification(1, 0, 0).unwrap();
    log.abandon_txn_verification(1, first, true);
    log.append_txn_marker(1, 0, COMMIT, 0, 2).unwrap(); // 0: the previous transaction's marker
    let second = log.start_txn_verification(1, 0, 2).unwrap();
    assert_ne!(second, first, "the marker made the old guard stale");
    let early = log.append_as_leader_verified(&txn_batch(1, 2, 1), 0, 0, Some(second));
    assert!(matches!(early, Err(LogError::OutOfOrderSequence { expected: 0, got: 2, .. })), "{early:?}");
    let retry = log.start_txn_verification(1, 0, 0).unwrap();
    log.append_as_leader_verified(&txn_batch(1, 0, 2), 0, 0, Some(retry)).unwrap(); // 1..=2
    log.append_as_leader_verified(&txn_batch(1, 2, 1), 0, 0, None).unwrap(); // 3
    assert_eq!(log.log_end_offset(), 4);
}
