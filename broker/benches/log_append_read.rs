//! Storage throughput beside the machine's own limit, measured in one run.
//!
//! For 1 KiB records in 16 KiB and 1 MiB batches:
//! - `append/<batch>`: `PartitionLog::append_as_leader` (validation, CRC-32C,
//!   offset assignment, index upkeep, write) of 64 MiB into a fresh log;
//! - `raw_write/<batch>`: plain `write_all` of the same bytes in the same
//!   chunk size to a fresh file on the same file system (the `dd` baseline);
//! - `read/<batch>`: reading the whole page-cached log back with
//!   `read_up_to` in 1 MiB fetches;
//! - `raw_read/<batch>`: sequential 1 MiB `pread`s of the same `.log` file.
//!
//! Criterion measures each of these alone. Because a shared 2-core machine's
//! background load shifts between criterion's groups, the ratios recorded in
//! `bench/RESULTS.md` come from a second, paired pass run after them: rounds
//! that time raw and Strom back to back on the same bytes, reporting the
//! median of the per-round ratios (printed as a markdown table at the end).
//! No fsync on either side: durability comes from replication, with fsync
//! only by `flush.messages` / `flush.ms`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use strom_broker::log::{LogConfig, PartitionLog, TopicPartition};

const TOTAL_BYTES: usize = 64 * 1024 * 1024;
const RECORD_BYTES: usize = 1024;
const FETCH_BYTES: usize = 1024 * 1024;

/// One uncompressed batch of 1 KiB records totalling about `batch_bytes`.
fn batch(batch_bytes: usize) -> Vec<u8> {
    let count = (batch_bytes / (RECORD_BYTES + 16)).max(1);
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(vec![b'x'; RECORD_BYTES].into()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encoding benchmark records");
    buf.to_vec()
}

/// A scratch directory on the same file system as the build (not tmpfs).
fn scratch_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch");
    std::fs::create_dir_all(&root).expect("creating bench scratch dir");
    root
}

fn fresh_log(root: &Path) -> (tempfile::TempDir, PartitionLog) {
    let dir = tempfile::tempdir_in(root).expect("scratch dir");
    let log = PartitionLog::open(dir.path(), TopicPartition::new("bench", 0), LogConfig::default()).expect("open log");
    (dir, log)
}

/// Appends `batches` copies of `one` to a fresh log; the time taken.
fn time_append(root: &Path, one: &[u8], batches: usize) -> Duration {
    let (_dir, mut log) = fresh_log(root);
    let start = Instant::now();
    for _ in 0..batches {
        log.append_as_leader(one, 0, 0).expect("append");
    }
    start.elapsed()
}

/// Writes `batches` copies of `one` to a fresh file; the time taken.
fn time_raw_write(root: &Path, one: &[u8], batches: usize) -> Duration {
    let dir = tempfile::tempdir_in(root).expect("scratch dir");
    let mut file = File::create(dir.path().join("raw")).expect("raw file");
    let start = Instant::now();
    for _ in 0..batches {
        file.write_all(one).expect("raw write");
    }
    start.elapsed()
}

/// Reads the whole log back in 1 MiB fetches; bytes read.
fn read_log(log: &PartitionLog) -> usize {
    let end = log.log_end_offset();
    let (mut offset, mut total) = (0, 0usize);
    while offset < end {
        let r = log.read_up_to(offset, FETCH_BYTES, end).expect("read");
        let last = strom_broker::log::batch::last_offset_in(&r.records).expect("whole batches");
        total += r.records.len();
        offset = last + 1;
    }
    total
}

/// Reads `file` sequentially in 1 MiB preads into one reused buffer; bytes read.
fn raw_read(file: &File, buf: &mut [u8]) -> usize {
    let (mut position, mut total) = (0u64, 0usize);
    loop {
        let n = file.read_at(buf, position).expect("raw read");
        if n == 0 {
            return total;
        }
        total += n;
        position += n as u64;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The paired pass: per batch size, median over rounds of raw/Strom time.
fn paired_ratios() {
    const ROUNDS: usize = 15;
    let root = scratch_root();
    println!("\n| measurement | batch | Strom vs raw (median throughput ratio, {ROUNDS} paired rounds) |");
    println!("|---|---|---|");
    for (label, batch_bytes) in [("16KiB", 16 * 1024), ("1MiB", 1024 * 1024)] {
        let one = batch(batch_bytes);
        let batches = TOTAL_BYTES / one.len();
        let append: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let raw = time_raw_write(&root, &one, batches);
                let strom = time_append(&root, &one, batches);
                raw.as_secs_f64() / strom.as_secs_f64()
            })
            .collect();
        let (dir, mut log) = fresh_log(&root);
        for _ in 0..batches {
            log.append_as_leader(&one, 0, 0).expect("append");
        }
        log.flush().expect("flush");
        let file = File::open(dir.path().join("00000000000000000000.log")).expect("segment file");
        let mut buf = vec![0u8; FETCH_BYTES];
        let read: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                let raw_bytes = raw_read(&file, &mut buf);
                let raw = start.elapsed();
                let start = Instant::now();
                let strom_bytes = read_log(&log);
                let strom = start.elapsed();
                assert_eq!(raw_bytes, strom_bytes, "both read the whole segment");
                raw.as_secs_f64() / strom.as_secs_f64()
            })
            .collect();
        println!("| append | {label} | {:.2} |", median(append));
        println!("| read (page cache) | {label} | {:.2} |", median(read));
    }
}

fn storage(c: &mut Criterion) {
    let root = scratch_root();
    for (label, batch_bytes) in [("16KiB", 16 * 1024), ("1MiB", 1024 * 1024)] {
        let one = batch(batch_bytes);
        let batches = TOTAL_BYTES / one.len();
        let bytes = (batches * one.len()) as u64;

        let mut group = c.benchmark_group(format!("append/{label}"));
        group.throughput(Throughput::Bytes(bytes)).sample_size(10);
        group.bench_function("strom", |b| {
            b.iter_batched(
                || fresh_log(&root),
                |(dir, mut log)| {
                    for _ in 0..batches {
                        log.append_as_leader(&one, 0, 0).expect("append");
                    }
                    (dir, log)
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function("raw_write", |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir_in(&root).expect("scratch dir");
                    let file = File::create(dir.path().join("raw")).expect("raw file");
                    (dir, file)
                },
                |(dir, mut file)| {
                    for _ in 0..batches {
                        file.write_all(&one).expect("raw write");
                    }
                    (dir, file)
                },
                BatchSize::PerIteration,
            )
        });
        group.finish();

        // One filled log serves both read measurements, page-cached.
        let (dir, mut log) = fresh_log(&root);
        for _ in 0..batches {
            log.append_as_leader(&one, 0, 0).expect("append");
        }
        log.flush().expect("flush");
        let segment = dir.path().join("00000000000000000000.log");
        let mut group = c.benchmark_group(format!("read/{label}"));
        group.throughput(Throughput::Bytes(bytes)).sample_size(20);
        group.bench_function("strom", |b| b.iter(|| read_log(&log)));
        group.bench_function("raw_read", |b| {
            let file = File::open(&segment).expect("segment file");
            let mut buf = vec![0u8; FETCH_BYTES];
            b.iter(|| raw_read(&file, &mut buf))
        });
        group.finish();
    }
}

criterion_group!(benches, storage);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    paired_ratios();
}
