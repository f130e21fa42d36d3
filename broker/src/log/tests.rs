//! Storage engine tests: behaviour against a simple in-memory model, exact
//! index lookups, recovery from torn tails and damaged indexes, and byte
//! compatibility with Kafka's record format (decoded by kafka-protocol).

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use proptest::prelude::*;

use super::batch::tests::encode_batch;
use super::*;

fn small_config() -> LogConfig {
    LogConfig { segment_bytes: 4096, index_interval_bytes: 512, ..LogConfig::default() }
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// Every record in `bytes` as (offset, timestamp, key).
fn decode_all(bytes: &Bytes) -> Vec<(i64, i64, String)> {
    let mut buf = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("stored bytes decode as Kafka record batches");
    sets.iter()
        .flat_map(|s| s.records.iter())
        .map(|r| {
            let key = r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
            (r.offset, r.timestamp, key)
        })
        .collect()
}

/// Reads the whole log from `from` in chunks of `max_bytes`.
fn read_all(log: &PartitionLog, from: i64, max_bytes: usize) -> Vec<(i64, i64, String)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let r = log.read_up_to(offset, max_bytes, i64::MAX).expect("read in range");
        if r.records.is_empty() {
            return out;
        }
        let records = decode_all(&r.records);
        offset = records.last().map(|(o, _, _)| o + 1).expect("non-empty read has records");
        out.extend(records.into_iter().filter(|(o, _, _)| *o >= from));
    }
}

#[test]
fn appends_get_dense_offsets_and_read_back_as_kafka_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    let a = log.append_as_leader(&encode_batch(3, 10, 1000, Compression::None), 5, 0).unwrap();
    let b = log.append_as_leader(&encode_batch(2, 10, 2000, Compression::Lz4), 5, 0).unwrap();
    assert_eq!((a.base_offset, a.last_offset, b.base_offset, b.last_offset), (0, 2, 3, 4));
    let records = read_all(&log, 0, 1 << 20);
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert_eq!(records[3].1, 2000);
    assert_eq!(records[4].2, "k1");
    // The file on disk is the same bytes: decode the segment directly.
    let file = std::fs::read(dir.path().join("00000000000000000000.log")).unwrap();
    let mut buf = Bytes::from(file);
    let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
    assert_eq!(sets.iter().map(|s| s.records.len()).sum::<usize>(), 5);
    assert_eq!(sets[1].records[0].partition_leader_epoch, 5);
    assert_eq!(log.epochs().epoch_for_offset(4), Some(5));
}

#[test]
fn reads_respect_max_bytes_the_high_watermark_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    for i in 0..4 {
        log.append_as_leader(&encode_batch(2, 100, i * 10, Compression::None), 0, 0).unwrap();
    }
    let one = log.read_up_to(0, 1, i64::MAX).unwrap();
    assert_eq!(decode_all(&one.records).len(), 2, "at least one whole batch even when over max_bytes");
    let held = log.read_up_to(0, 1 << 20, 4).unwrap();
    assert_eq!(decode_all(&held.records).len(), 4, "nothing at or past the high watermark");
    assert!(log.read_up_to(4, 1 << 20, 4).unwrap().records.is_empty());
    assert!(log.read_up_to(8, 1 << 20, i64::MAX).unwrap().records.is_empty(), "at the log end: empty");
    assert!(matches!(log.read_up_to(9, 100, i64::MAX), Err(LogError::OffsetOutOfRange { log_end_offset: 8, .. })));
    let mid = log.read_up_to(3, 1 << 20, i64::MAX).unwrap();
    assert_eq!(decode_all(&mid.records)[0].0, 2, "a read from inside a batch starts at that batch");
    // The located range is what a read returns, with its record count.
    let slice = log.slice_up_to(3, 1 << 20, 6, true).unwrap().records.expect("two batches below offset 6");
    assert_eq!((slice.position(), slice.record_count()), (one.records.len() as u64, 4));
    assert_eq!(slice.read_to_bytes().unwrap(), log.read_up_to(3, 1 << 20, 6).unwrap().records);
    assert!(log.slice_up_to(8, 1 << 20, i64::MAX, true).unwrap().records.is_none());
}

#[test]
fn segments_roll_by_size_and_indexes_point_at_batch_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    for i in 0..60 {
        log.append_as_leader(&encode_batch(4, 50, 1000 + i * 4, Compression::None), 0, 0).unwrap();
    }
    assert!(log.segment_count() > 3, "4 KiB segments must roll");
    for segment in log.segments() {
        let name = segment.log_path().file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, format!("{:020}.log", segment.base_offset()));
        assert!(segment.size() <= 4096);
        for entry in segment.offset_index().entries() {
            let header = segment.header_at(u64::from(entry.position)).unwrap();
            assert_eq!(header.base_offset, segment.base_offset() + i64::from(entry.relative_offset));
        }
        assert!(!segment.offset_index().entries().is_empty(), "512-byte interval gives entries");
    }
    // Every timestamp lookup equals the model's first record at or after it.
    for target in [0, 1000, 1001, 1003, 1100, 1239, 1240] {
        let expected = (0..240i64).find(|o| 1000 + o >= target);
        let got = log.offset_for_timestamp(target).unwrap().map(|t| t.offset);
        assert_eq!(got, expected, "timestamp {target}");
    }
    let max = log.max_timestamp_offset().unwrap().unwrap();
    assert_eq!((max.timestamp, max.offset), (1239, 239));
}

#[test]
fn retention_deletes_whole_old_segments_and_advances_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_bytes: 8192, ..small_config() };
    let mut log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    for _ in 0..60 {
        log.append_as_leader(&encode_batch(4, 50, 1000, Compression::None), 0, 0).unwrap();
    }
    let deleted = log.enforce_retention(2000).unwrap();
    assert!(deleted > 0);
    assert!(log.size_bytes() <= 8192 + 4096);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(matches!(log.read_up_to(0, 100, i64::MAX), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(read_all(&log, start, 1000).len() as i64, 240 - start);
    // Time retention removes everything old, including the active segment's data.
    log.set_config(LogConfig { retention_ms: 1000, ..small_config() });
    log.enforce_retention(1_000_000).unwrap();
    assert_eq!(log.log_start_offset(), 240);
    assert_eq!(log.log_end_offset(), 240);
    assert_eq!(log.append_as_leader(&encode_batch(1, 1, 5, Compression::None), 0, 0).unwrap().base_offset, 240);
}

#[test]
fn delete_records_moves_the_start_deletes_segments_below_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    for _ in 0..60 {
        log.append_as_leader(&encode_batch(4, 50, 1000, Compression::None), 0, 0).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    let target = 101; // inside a segment, inside a batch
    assert!(log.advance_log_start(target).unwrap());
    assert_eq!(log.log_start_offset(), target);
    // Only the segments wholly below went; the one holding the target stays.
    let first = log.segments().next().unwrap();
    assert!(first.base_offset() <= target && first.next_offset() > target);
    assert!(log.segment_count() < segments);
    assert!(matches!(log.read_up_to(target - 1, 100, i64::MAX), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(read_all(&log, target, 1000).len() as i64, 240 - target);
    assert!(log.epochs().entries().iter().all(|e| e.start_offset >= target));
    // Never backwards, never past the log end.
    assert!(!log.advance_log_start(50).unwrap());
    assert_eq!(log.log_start_offset(), target);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), target);
    assert!(log.advance_log_start(10_000).unwrap());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (240, 240));
    assert_eq!(log.append_as_leader(&encode_batch(1, 1, 5, Compression::None), 0, 0).unwrap().base_offset, 240);
    drop(log);
    let log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (240, 241));
}

#[test]
fn a_deleted_segment_leaves_its_name_at_once_and_a_crash_before_the_reaper_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    for _ in 0..60 {
        log.append_as_leader(&encode_batch(4, 50, 1000, Compression::None), 0, 0).unwrap();
    }
    let first = dir.path().join("00000000000000000000.log");
    let saved = std::fs::read(&first).unwrap();
    assert!(log.advance_log_start(101).unwrap());
    let kept = log.segments().next().unwrap().base_offset();
    assert!(kept > 0, "the first segment was not deleted");
    assert!(!first.exists(), "a deleted segment keeps its name");
    let set_aside = |dir: &Path| -> Vec<String> {
        let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        names.filter(|name| reaper::is_set_aside(name)).collect()
    };
    reaper::idle();
    assert_eq!(set_aside(dir.path()), Vec::<String>::new(), "the reaper left a deleted segment behind");
    drop(log);

    // A crash after the segment was set aside, before the reaper removed it.
    std::fs::write(reaper::aside_path(&first), &saved).unwrap();
    assert_eq!(set_aside(dir.path()).len(), 1);
    let log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), 101);
    assert_eq!(log.segments().next().unwrap().base_offset(), kept, "a set-aside segment came back");
    reaper::idle();
    assert_eq!(set_aside(dir.path()), Vec::<String>::new(), "opening the log left a set-aside file behind");
}

/// Bytes of disk the file at `path` holds (reserved blocks included) and its size.
fn allocated_and_size(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    (meta.blocks() * 512, meta.len())
}

#[test]
fn appends_reserve_blocks_ahead_keeping_the_size_within_segment_bytes_and_a_truncation_frees_them() {
    let first = |dir: &Path| dir.join("00000000000000000000.log");
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 1 << 20, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
    assert_eq!(allocated_and_size(&first(dir.path())), (0, 0), "an empty segment reserves nothing");
    for i in 0..10 {
        log.append_as_leader(&encode_batch(4, 50, 1000 + i, Compression::None), 0, 0).unwrap();
    }
    let (allocated, size) = allocated_and_size(&first(dir.path()));
    assert!(size > 0 && size < segment::RESERVE_MIN, "the file's size is the log's: {size}");
    assert!(allocated >= segment::RESERVE_MIN + size, "{allocated} bytes reserved for a {size}-byte file");
    assert!(allocated <= 2 * (segment::RESERVE_MIN + size), "{allocated} bytes reserved for a {size}-byte file");
    let before = read_all(&log, 0, 1 << 20);
    drop(log);
    // Recovery sees the records, not the reserved blocks.
    let mut log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
    assert_eq!(read_all(&log, 0, 1 << 20), before);
    assert_eq!(allocated_and_size(&first(dir.path())).1, size);
    log.truncate_to(8).unwrap();
    let (allocated, size) = allocated_and_size(&first(dir.path()));
    assert!(allocated < size + 4096, "the truncation left {allocated} bytes for a {size}-byte file");

    // Never past segment.bytes.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 16 << 10, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    log.append_as_leader(&encode_batch(4, 50, 1000, Compression::None), 0, 0).unwrap();
    let (allocated, size) = allocated_and_size(&first(dir.path()));
    assert!((16 << 10..=20 << 10).contains(&allocated), "{allocated} bytes reserved for a {size}-byte file");
}

#[test]
fn recovery_truncates_a_torn_tail_and_rebuilds_damaged_indexes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
        for i in 0..30 {
            log.append_as_leader(&encode_batch(4, 50, 1000 + i, Compression::None), 0, 0).unwrap();
        }
        log.flush().unwrap();
    }
    let before = read_all(&PartitionLog::open(dir.path(), tp(), small_config()).unwrap(), 0, 1 << 20);
    let active = last_log_file(dir.path());
    let clean_len = std::fs::metadata(&active).unwrap().len();
    // A torn write: half a batch at the tail of the active segment.
    let torn = encode_batch(4, 50, 5000, Compression::None);
    append_bytes(&active, &torn[..torn.len() / 2]);
    // A damaged index on the first segment.
    std::fs::write(dir.path().join("00000000000000000000.index"), [1, 2, 3]).unwrap();
    std::fs::remove_file(dir.path().join("00000000000000000000.timeindex")).unwrap();

    let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
    assert_eq!(std::fs::metadata(&active).unwrap().len(), clean_len, "torn tail cut");
    assert_eq!(read_all(&log, 0, 1 << 20), before);
    assert_eq!(log.offset_for_timestamp(1000).unwrap().map(|t| t.offset), Some(0));
    assert_eq!(log.append_as_leader(&encode_batch(1, 1, 1, Compression::None), 0, 0).unwrap().base_offset, 120);
}

#[test]
fn a_corrupt_byte_in_the_active_segment_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
        for _ in 0..3 {
            log.append_as_leader(&encode_batch(2, 20, 1, Compression::None), 0, 0).unwrap();
        }
    }
    let active = last_log_file(dir.path());
    let mut bytes = std::fs::read(&active).unwrap();
    let len = bytes.len();
    bytes[len - 3] ^= 0x55; // inside the last batch's records
    std::fs::write(&active, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 4, "the corrupt last batch is dropped");
    assert_eq!(read_all(&log, 0, 1 << 20).len(), 4);
}

#[test]
fn consumer_reads_need_a_check_only_past_what_this_process_holds_for_sound() {
    let dir = tempfile::tempdir().unwrap();
    let read = |log: &PartitionLog, from: i64, max: usize| {
        log.slice_up_to(from, max, i64::MAX, true).unwrap().records.expect("records at the offset")
    };
    {
        let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
        for _ in 0..40 {
            log.append_as_leader(&encode_batch(2, 100, 1, Compression::None), 0, 0).unwrap();
        }
        assert!(log.segment_count() >= 3, "several segments");
        // Appended by this process, validated before written.
        assert!(log.segments().all(|s| s.verified_to() == s.size()));
        assert!(!log.read_needs_check(&read(&log, 0, 1 << 20)));
        // A truncation gives the active segment a new lineage and keeps what is left sound.
        let lineage = log.segments().last().unwrap().lineage();
        log.truncate_to(log.log_end_offset() - 2).unwrap();
        let active = log.segments().last().unwrap();
        assert_ne!(active.lineage(), lineage);
        assert_eq!(active.verified_to(), active.size());
        log.flush().unwrap();
    }
    // A new process: sealed segments opened from their indexes alone are
    // not held sound, the active one (walked by recovery) is.
    let mut log = PartitionLog::open_after_shutdown(dir.path(), tp(), small_config(), true).unwrap();
    let active = log.segments().last().unwrap();
    assert_eq!(active.verified_to(), active.size());
    assert_eq!(log.segments().next().unwrap().verified_to(), 0);
    // A read past a gap in what was checked leaves the mark where it is...
    let second = read(&log, 2, 1);
    assert!(log.read_needs_check(&second));
    log.read_checked(&second);
    assert!(log.read_needs_check(&second));
    // ...a read from what was checked moves it.
    let first = read(&log, 0, 1 << 20);
    assert!(log.read_needs_check(&first));
    log.read_checked(&first);
    assert!(!log.read_needs_check(&first) && !log.read_needs_check(&second));
    // A leader that was a follower forgets it all; what it appends from
    // then on counts once a check reaches it.
    let active_base = log.segments().last().unwrap().base_offset();
    let active = |log: &PartitionLog| {
        let segment = log.segments().find(|s| s.base_offset() == active_base).expect("the active segment");
        (segment.verified_to(), segment.size(), segment.trust())
    };
    let (_, _, trust) = active(&log);
    log.forget_verified();
    assert!(log.read_needs_check(&first));
    log.append_as_leader(&encode_batch(1, 10, 1, Compression::None), 0, 0).unwrap();
    let (verified, size, after) = active(&log);
    assert_ne!(after, trust, "a scan begun before the forget cannot mark");
    assert!(verified == 0 && size > 0);
    let tail = read(&log, active_base, 1 << 20);
    log.read_checked(&tail);
    let (verified, size, _) = active(&log);
    assert_eq!(verified, size, "the check reached the appends");
    log.append_as_leader(&encode_batch(1, 10, 1, Compression::None), 0, 0).unwrap();
    if log.segments().last().unwrap().base_offset() == active_base {
        let (verified, size, _) = active(&log);
        assert_eq!(verified, size, "appends extend it again");
    }
    // verify.reads=always checks every read.
    log.set_config(LogConfig { verify_every_read: true, ..small_config() });
    assert!(log.read_needs_check(&first));
}

#[test]
fn bad_batches_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log =
        PartitionLog::open(dir.path(), tp(), LogConfig { max_message_bytes: 500, ..LogConfig::default() }).unwrap();
    let good = encode_batch(1, 10, 1, Compression::None);
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let mut mixed = good.clone();
    mixed.extend_from_slice(&bad_crc);
    assert!(matches!(log.append_as_leader(&mixed, 0, 0), Err(LogError::CrcMismatch { .. })));
    let big = encode_batch(1, 600, 1, Compression::None);
    assert!(matches!(log.append_as_leader(&big, 0, 0), Err(LogError::RecordBatchTooLarge { .. })));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn log_append_time_stamps_the_broker_clock() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { message_timestamp_type_log_append: true, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    let info = log.append_as_leader(&encode_batch(2, 1, 5, Compression::None), 0, 777).unwrap();
    assert_eq!((info.log_append_time, info.max_timestamp), (Some(777), 777));
    let r = log.read_up_to(0, 1 << 20, i64::MAX).unwrap();
    let mut buf = r.records.clone();
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    // Clients read LogAppendTime batches' timestamps from maxTimestamp.
    assert!(set.records.iter().all(|rec| rec.timestamp_type == kafka_protocol::records::TimestampType::LogAppend));
    let header = batch::BatchHeader::parse(&r.records).unwrap();
    assert_eq!(header.max_timestamp, 777);
}

/// An idempotent producer's batch: producer 9, `epoch`, from `sequence`.
pub(crate) fn idempotent_batch(count: usize, epoch: i16, sequence: i32) -> Vec<u8> {
    let mut bytes = encode_batch(count, 10, 1, Compression::None);
    bytes[43..51].copy_from_slice(&9i64.to_be_bytes());
    bytes[51..53].copy_from_slice(&epoch.to_be_bytes());
    bytes[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn retried_idempotent_batches_are_not_written_twice_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    log.append_as_leader(&encode_batch(2, 1, 1, Compression::None), 0, 0).unwrap();
    let first = log.append_as_leader(&idempotent_batch(3, 0, 0), 0, 0).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (2, 4));
    let retry = log.append_as_leader(&idempotent_batch(3, 0, 0), 0, 0).unwrap();
    assert_eq!((retry.base_offset, retry.last_offset), (2, 4), "original offsets");
    assert_eq!(log.log_end_offset(), 5, "nothing written for the retry");
    assert!(matches!(
        log.append_as_leader(&idempotent_batch(1, 0, 7), 0, 0),
        Err(LogError::OutOfOrderSequence { expected: 3, .. })
    ));
    log.append_as_leader(&idempotent_batch(2, 0, 3), 0, 0).unwrap();
    drop(log);
    // Unclean restart (no flush, no snapshot): state comes back from the log.
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    let retry = log.append_as_leader(&idempotent_batch(2, 0, 3), 0, 0).unwrap();
    assert_eq!((retry.base_offset, log.log_end_offset()), (5, 7));
    log.flush().unwrap();
    drop(log);
    // Clean restart: from the snapshot.
    let mut log = PartitionLog::open(dir.path(), tp(), LogConfig::default()).unwrap();
    assert!(dir.path().join("00000000000000000007.snapshot").exists());
    assert!(matches!(
        log.append_as_leader(&idempotent_batch(1, -1, 0), 0, 0),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(log.append_as_leader(&idempotent_batch(1, 0, 5), 0, 0).unwrap().base_offset, 7);
}

fn last_log_file(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// An operation of the model-based test.
#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, value_len: usize, timestamp: i64 },
    Read { at: usize, max_bytes: usize },
    Roll,
    RetainBytes(i64),
    Reopen,
    FindTimestamp(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..8, 0usize..300, 0i64..5000).prop_map(|(records, value_len, timestamp)| Op::Append { records, value_len, timestamp }),
        3 => (0usize..1000, 1usize..5000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Roll),
        1 => (1000i64..20000).prop_map(Op::RetainBytes),
        1 => Just(Op::Reopen),
        1 => (0i64..6000).prop_map(Op::FindTimestamp),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random appends, reads, rolls, retention and reopenings give the
    /// answers of a model that is just a vector of (offset, timestamp, key).
    #[test]
    fn the_log_behaves_like_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config();
        let mut log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
        let mut model: Vec<(i64, i64, String)> = Vec::new();
        for op in ops {
            match op {
                Op::Append { records, value_len, timestamp } => {
                    let log_end = log.log_end_offset();
                    let info = log.append_as_leader(&encode_batch(records, value_len, timestamp, Compression::None), 0, 0).unwrap();
                    prop_assert_eq!(info.base_offset, log_end);
                    for i in 0..records {
                        model.push((info.base_offset + i as i64, timestamp + i as i64, format!("k{i}")));
                    }
                }
                Op::Read { at, max_bytes } => {
                    let start = log.log_start_offset();
                    let offset = start + at as i64 % (log.log_end_offset() - start + 1);
                    let r = log.read_up_to(offset, max_bytes, i64::MAX).unwrap();
                    let got = decode_all(&r.records);
                    let expected_first = model.iter().find(|m| m.0 >= offset);
                    match expected_first {
                        None => prop_assert!(got.is_empty()),
                        Some(first) => {
                            let got_first = got.iter().find(|g| g.0 >= offset).unwrap();
                            prop_assert_eq!(got_first, first);
                        }
                    }
                }
                Op::Roll => log.roll().unwrap(),
                Op::RetainBytes(bytes) => {
                    log.set_config(LogConfig { retention_bytes: bytes, ..config.clone() });
                    log.enforce_retention(0).unwrap();
                    let start = log.log_start_offset();
                    model.retain(|m| m.0 >= start);
                    log.set_config(config.clone());
                }
                Op::Reopen => {
                    drop(log);
                    log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
                }
                Op::FindTimestamp(ts) => {
                    let expected = model.iter().find(|m| m.1 >= ts).map(|m| m.0);
                    // Kafka's rule: the first offset whose timestamp is >= ts
                    // in offset order, given batches with non-decreasing
                    // timestamps inside; across batches timestamps may go
                    // down, so compare with the first batch whose max >= ts.
                    let got = log.offset_for_timestamp(ts).unwrap().map(|t| t.offset);
                    if let (Some(e), Some(g)) = (expected, got) {
                        prop_assert!(g >= e, "found {} before the model's first match {}", g, e);
                        prop_assert!(model.iter().any(|m| m.0 == g && m.1 >= ts));
                    } else {
                        prop_assert_eq!(expected.is_some(), got.is_some());
                    }
                }
            }
            prop_assert_eq!(log.log_end_offset(), model.last().map_or(log.log_end_offset(), |m| m.0 + 1));
        }
        prop_assert_eq!(read_all(&log, log.log_start_offset(), 4096), model);
    }
}

#[test]
fn compaction_keeps_the_latest_value_per_key_across_segments_and_restarts() {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { cleanup_policy: CleanupPolicy::Compact, segment_bytes: 300, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
    let one = |key: &str, value: Option<&str>| {
        let r = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1000,
            key: Some(Bytes::from(key.to_owned())),
            value: value.map(|v| Bytes::from(v.to_owned())),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, [&r], &RecordEncodeOptions { version: 2, compression: Compression::None })
            .unwrap();
        buf.to_vec()
    };
    for round in 0..10 {
        for key in ["a", "b", "c"] {
            log.append_as_leader(&one(key, Some(&format!("{key}{round}"))), 0, 0).unwrap();
        }
    }
    log.append_as_leader(&one("c", None), 0, 0).unwrap(); // tombstone for c
    log.roll().unwrap();
    let before = log.size_bytes();
    let stats = log.compact(2000).unwrap();
    assert_eq!(stats.records_removed, 28, "30 values + 1 tombstone: a9, b9 and c's tombstone stay");
    assert!(log.size_bytes() < before);
    drop(log);
    let log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
    let left: Vec<(i64, String)> =
        read_all(&log, log.log_start_offset(), 1 << 20).into_iter().map(|(o, _, k)| (o, k)).collect();
    assert_eq!(left, vec![(27, "a".to_owned()), (28, "b".to_owned()), (30, "c".to_owned())]);
    assert_eq!(log.log_end_offset(), 31, "offsets are kept, the end does not move");
    drop(log);

    // Every older segment emptied: reads from the log start still find the
    // active segment's records, before and after a reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
    for round in 0..20 {
        log.append_as_leader(&one("a", Some(&format!("a{round}"))), 0, 0).unwrap();
    }
    log.roll().unwrap();
    log.append_as_leader(&one("a", Some("last")), 0, 0).unwrap();
    log.compact(2000).unwrap();
    assert!(log.segments().skip(1).all(|s| !s.is_empty()), "only the first segment may stay empty");
    for reopen in [false, true] {
        if reopen {
            drop(log);
            log = PartitionLog::open(dir.path(), tp(), config.clone()).unwrap();
        }
        let start = log.log_start_offset();
        let left: Vec<i64> = read_all(&log, start, 1 << 20).into_iter().map(|(o, _, _)| o).collect();
        assert_eq!(left, vec![20], "reopened: {reopen}");
    }
}

/// One batch of records with the given CreateTime timestamps (keys `k{i}`).
fn batch_with_timestamps(timestamps: &[i64], compression: Compression) -> Vec<u8> {
    let records: Vec<kafka_protocol::records::Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, ts)| kafka_protocol::records::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: *ts,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = kafka_protocol::records::RecordEncodeOptions { version: 2, compression };
    kafka_protocol::records::RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

#[test]
fn max_timestamp_is_the_first_record_holding_it_not_its_batch_end() {
    for compression in [Compression::None, Compression::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
        log.append_as_leader(&batch_with_timestamps(&[100, 200], compression), 0, 0).unwrap();
        // Offsets 2..=6: the largest timestamp (900) first at offset 4, again at 5.
        log.append_as_leader(&batch_with_timestamps(&[300, 150, 900, 900, 400], compression), 0, 0).unwrap();
        log.append_as_leader(&batch_with_timestamps(&[800], compression), 0, 0).unwrap();
        let max = log.max_timestamp_offset().unwrap().unwrap();
        assert_eq!((max.timestamp, max.offset), (900, 4), "{compression:?}");
        // Still after a restart (the segment's bookkeeping is rebuilt).
        drop(log);
        let log = PartitionLog::open(dir.path(), tp(), small_config()).unwrap();
        let max = log.max_timestamp_offset().unwrap().unwrap();
        assert_eq!((max.timestamp, max.offset), (900, 4), "{compression:?} after a restart");
    }
    // Log-append time stamps every record of a batch alike: its first record.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { message_timestamp_type_log_append: true, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    log.append_as_leader(&batch_with_timestamps(&[5, 9, 7], Compression::None), 0, 777).unwrap();
    let max = log.max_timestamp_offset().unwrap().unwrap();
    assert_eq!((max.timestamp, max.offset), (777, 0));
}

#[test]
fn min_compaction_lag_keeps_recent_segments_uncleaned() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        segment_bytes: 300,
        min_compaction_lag_ms: 10_000,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    // Keys k0, k1 over and over, timestamps 1000 + offset (encode_batch's keys restart per batch).
    for i in 0..20 {
        log.append_as_leader(&batch_with_timestamps(&[1000 + 2 * i, 1001 + 2 * i], Compression::None), 0, 0).unwrap();
    }
    log.roll().unwrap();
    assert!(log.segment_count() > 3);
    // Every record is younger than the lag: nothing is cleaned.
    assert_eq!(log.compact(1040 + 9_000).unwrap().records_removed, 0);
    // Once the older segments' newest records pass the lag, they are cleaned.
    let stats = log.compact(1040 + 20_000).unwrap();
    assert_eq!(stats.records_removed, 38, "only the latest k0 and k1 stay");
}

#[test]
fn segment_index_bytes_rolls_before_an_index_would_outgrow_it() {
    let dir = tempfile::tempdir().unwrap();
    // Room for three offset-index entries (8 bytes each) and two time-index entries (12 bytes).
    let config = LogConfig { segment_index_bytes: 24, index_interval_bytes: 1, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    for i in 0..30 {
        log.append_as_leader(&encode_batch(2, 10, 1000 + i * 10, Compression::None), 0, 0).unwrap();
    }
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    for segment in log.segments() {
        assert!(segment.offset_index().entries().len() * 8 <= 24);
        // Sealing adds the segment's largest timestamp past the limit, as Kafka does.
        assert!(segment.time_index().entries().len() * 12 <= 24 + 12);
    }
    assert_eq!(read_all(&log, 0, 1 << 20).len(), 60, "every record is still read");
}

#[test]
fn compaction_keeps_segments_it_has_nothing_to_remove_from() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { cleanup_policy: CleanupPolicy::Compact, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), tp(), config).unwrap();
    // Keys k0, k1, k2 in one segment: nothing is superseded.
    log.append_as_leader(&encode_batch(3, 10, 1, Compression::None), 0, 0).unwrap();
    log.roll().unwrap();
    let stats = log.compact(10).unwrap();
    assert_eq!(stats.records_removed, 0);
    assert_eq!(log.segment_count(), 2, "the untouched segment is still part of the log");
    assert_eq!(read_all(&log, 0, 1 << 20).len(), 3);
}
