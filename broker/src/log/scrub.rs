//! Verification of stored batches: the bytes on disk are checked again —
//! framing (lengths, magic, offsets increasing), the CRC-32C Kafka uses and,
//! uncompressed, the records — by the rules a follower applies to what its
//! leader sends ([`batch::check_stored_batch`]).
//!
//! Three places use it:
//!
//! - **At open** ([`verify_unverified_segments`], called by
//!   [`PartitionLog::open`](super::PartitionLog::open) before the segments are
//!   loaded): every sealed segment not verified since it last changed is
//!   read whole. What has been verified is recorded per partition in
//!   [`VERIFIED_FILE`] (one line per sealed segment: base offset, size and
//!   modification time); a segment whose size or time differ — rolled since,
//!   rewritten by compaction, or modified behind the broker's back — is
//!   verified again. The active segment is checked end to end by recovery
//!   anyway ([`super::segment`]). The first damaged batch is remembered
//!   ([`take_damage_found_at_open`]); nothing is deleted here, since on a
//!   partition with no other copy the sound batches after it are all there
//!   is. The replica layer never serves the damaged batch, and cuts the log
//!   below it as soon as the replica follows (its leader then has every
//!   batch again), before it fetches; a restarted broker is out of every ISR
//!   until it has caught up, so it never joins an ISR with bytes it has not
//!   verified.
//! - **In the background** ([`scan_segment_paced`], driven by the replica
//!   layer at `log.scrub.bytes.per.second`): every segment, the active one
//!   up to its size when the pass reaches it, is verified again, pass after
//!   pass, for damage that changes no file time.
//! - **While serving** ([`check_read`], [`check_file_records`]): a batch a
//!   leader hands out is verified first — to a follower always, to a
//!   consumer unless the log already holds its bytes for sound
//!   (`verify.reads=once`, see
//!   [`PartitionLog::read_needs_check`](super::PartitionLog::read_needs_check))
//!   and no damage is known. A damaged one is refused as
//!   [`LogError::StoredBatchCorrupt`] (KAFKA_STORAGE_ERROR on the wire) and
//!   the replica layer moves leadership away and repairs the log.
//!
//! Counters ([`corrupt_batches_total`], [`verified_bytes_total`],
//! [`repaired_bytes_total`]) are process-wide, for the metrics layer; this
//! module imports nothing above `log`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::TopicPartition;
use super::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2};
use super::error::LogError;
use super::file_records::FileRecords;

/// File in a partition directory recording its verified sealed segments.
pub const VERIFIED_FILE: &str = "verified-segments";

static CORRUPT_BATCHES: AtomicU64 = AtomicU64::new(0);
static VERIFIED_BYTES: AtomicU64 = AtomicU64::new(0);
static REPAIRED_BYTES: AtomicU64 = AtomicU64::new(0);
/// Damage found at open, by partition, until the replica layer takes it.
static OPEN_DAMAGE: Mutex<BTreeMap<TopicPartition, i64>> = Mutex::new(BTreeMap::new());

/// The offset of the first damaged batch [`verify_unverified_segments`]
/// found in `tp`'s log, once (the replica layer takes it when it hosts the
/// partition, and cuts the log there as soon as the replica does not lead).
pub fn take_damage_found_at_open(tp: &TopicPartition) -> Option<i64> {
    OPEN_DAMAGE.lock().unwrap_or_else(|e| e.into_inner()).remove(tp)
}

/// Damaged batches found (at open or while serving) since the process started.
pub fn corrupt_batches_total() -> u64 {
    CORRUPT_BATCHES.load(Ordering::Relaxed)
}

/// Bytes of stored batches verified (at open and by the background scrub)
/// since the process started.
pub fn verified_bytes_total() -> u64 {
    VERIFIED_BYTES.load(Ordering::Relaxed)
}

/// Bytes cut from logs because of damage since the process started.
pub fn repaired_bytes_total() -> u64 {
    REPAIRED_BYTES.load(Ordering::Relaxed)
}

/// Counts one damaged batch found by a caller (a serving path).
pub fn count_corrupt_batch() {
    CORRUPT_BATCHES.fetch_add(1, Ordering::Relaxed);
}

/// Counts bytes cut from a log because of damage.
pub fn count_repaired_bytes(bytes: u64) {
    REPAIRED_BYTES.fetch_add(bytes, Ordering::Relaxed);
}

/// The first damaged batch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte position of the batch (in the segment, or in the read).
    pub position: u64,
    /// Offset the log must be truncated to: everything below is sound.
    pub offset: i64,
    /// What is wrong.
    pub reason: String,
}

/// What a scan of one segment file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// Bytes of sound batches from the start of the file.
    pub valid_bytes: u64,
    /// Batches verified.
    pub batches: u64,
    /// One past the last sound record (the base offset when none).
    pub next_offset: i64,
    /// The first damaged batch, if any.
    pub damage: Option<Damage>,
}

/// Checks the batch at the start of `bytes` (which must hold it whole),
/// expected to start at or after `min_offset` and within `base_offset`'s
/// segment: its header, then [`batch::check_stored_batch`] — or, without
/// `full`, only the CRC-32C, which covers everything checked when the batch
/// was appended (what a fetch pays for before it is sent).
fn check_one(bytes: &[u8], min_offset: i64, base_offset: i64, full: bool) -> Result<BatchHeader, String> {
    let header = BatchHeader::parse(bytes).map_err(|e| e.to_string())?;
    if header.magic != MAGIC_V2 {
        return Err(format!("magic {} is not 2", header.magic));
    }
    if header.base_offset < min_offset {
        return Err(format!("base offset {} is below the expected {min_offset}", header.base_offset));
    }
    if header.base_offset - base_offset > i64::from(i32::MAX) {
        return Err(format!("base offset {} is outside segment {base_offset}", header.base_offset));
    }
    if full {
        batch::check_stored_batch(bytes).map_err(|e| e.to_string())?;
    } else {
        if header.base_offset < 0 || header.last_offset_delta < 0 || header.records_count <= 0 {
            return Err(format!(
                "base offset {}, last offset delta {}, records count {} are not a batch's",
                header.base_offset, header.last_offset_delta, header.records_count
            ));
        }
        let actual = crc32c::crc32c(&bytes[21..]);
        if actual != header.crc {
            return Err(LogError::CrcMismatch { expected: header.crc, actual }.to_string());
        }
    }
    Ok(header)
}

/// Verifies `file` (`size` bytes), a segment starting at `base_offset`.
/// Reads every batch once; stops at the first damaged one.
pub fn scan_segment_file(file: &File, path: &Path, size: u64, base_offset: i64) -> Result<SegmentScan, LogError> {
    let scan = scan_segment_paced(file, path, size, base_offset, |_| true)?;
    Ok(scan.unwrap_or(SegmentScan { valid_bytes: 0, batches: 0, next_offset: base_offset, damage: None }))
}

/// [`scan_segment_file`], calling `pace` with the bytes of each batch read
/// (it may sleep, to keep a rate); `None` when `pace` says to stop.
pub fn scan_segment_paced(
    file: &File,
    path: &Path,
    size: u64,
    base_offset: i64,
    mut pace: impl FnMut(u64) -> bool,
) -> Result<Option<SegmentScan>, LogError> {
    let mut scan = SegmentScan { valid_bytes: 0, batches: 0, next_offset: base_offset, damage: None };
    let mut head = [0u8; HEADER_SIZE];
    let mut buf = Vec::new();
    let mut position = 0u64;
    while position < size {
        let damage = |reason: String| Damage { position, offset: scan.next_offset, reason };
        if size - position < HEADER_SIZE as u64 {
            scan.damage = Some(damage(format!("{} bytes at the end cannot hold a batch header", size - position)));
            break;
        }
        file.read_exact_at(&mut head, position).map_err(LogError::io(path))?;
        let length = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        if length < (HEADER_SIZE - LOG_OVERHEAD) as i32 || position + LOG_OVERHEAD as u64 + length as u64 > size {
            scan.damage = Some(damage(format!("batch length {length} does not fit the segment")));
            break;
        }
        let whole = LOG_OVERHEAD + length as usize;
        buf.resize(whole, 0);
        file.read_exact_at(&mut buf, position).map_err(LogError::io(path))?;
        VERIFIED_BYTES.fetch_add(whole as u64, Ordering::Relaxed);
        if !pace(whole as u64) {
            return Ok(None);
        }
        match check_one(&buf, scan.next_offset, base_offset, true) {
            Ok(header) => {
                position += whole as u64;
                scan.valid_bytes = position;
                scan.batches += 1;
                scan.next_offset = header.next_offset();
            }
            Err(reason) => {
                scan.damage = Some(damage(reason));
                break;
            }
        }
    }
    Ok(Some(scan))
}

/// What [`check_read`] found in batches read for a fetch.
#[derive(Debug)]
pub struct ReadCheck {
    /// Bytes of sound batches from the start of the read.
    pub sound_bytes: usize,
    /// Records in those batches.
    pub sound_records: u64,
    /// The damage that ends them, if any: a [`LogError::StoredBatchCorrupt`].
    pub damage: Option<LogError>,
}

/// Checks whole batches read from `tp`'s log for a fetch at
/// `fetch_offset`: each must be framed as a batch, match its CRC-32C and
/// start after the previous one. The damage is reported as
/// [`LogError::StoredBatchCorrupt`] with the offset to truncate to (the
/// first batch's base offset, or the fetch offset if lower; later, the end
/// of the previous sound batch); the sound batches before it may be served.
///
/// With `known_damage` (the offset of a batch already found damaged, which
/// recovery may even have cut away), a read from at or below it also stops
/// at the first batch reaching it: whatever follows the damage is never
/// served to a reader that has not got past it, so no record is skipped.
pub fn check_read(tp: &TopicPartition, bytes: &[u8], fetch_offset: i64, known_damage: Option<i64>) -> ReadCheck {
    let mut previous_next = None;
    check_batches(tp, bytes, fetch_offset, known_damage, &mut previous_next, 0, false)
}

/// Largest piece of a served range read into memory at once for checking.
const CHECK_CHUNK: usize = 1 << 20;

/// [`check_read`] over batches located in a segment file (a consumer fetch
/// about to be sent from the file): read in pieces of at most 1 MiB (or one
/// batch, if larger), so checking holds little memory whatever the fetch size.
pub fn check_file_records(
    tp: &TopicPartition,
    records: &FileRecords,
    fetch_offset: i64,
    known_damage: Option<i64>,
) -> Result<ReadCheck, LogError> {
    let mut total = ReadCheck { sound_bytes: 0, sound_records: 0, damage: None };
    let mut previous_next = None;
    let mut buf = Vec::new();
    let read = |buf: &mut Vec<u8>, at: usize, len: usize| {
        buf.resize(len, 0);
        records.file().read_exact_at(buf, records.position() + at as u64).map_err(LogError::io(records.path()))
    };
    while total.sound_bytes < records.len() {
        let at = total.sound_bytes;
        let left = records.len() - at;
        read(&mut buf, at, left.min(CHECK_CHUNK))?;
        let mut part = check_batches(tp, &buf, fetch_offset, known_damage, &mut previous_next, at, left > buf.len());
        if part.sound_bytes == 0 && part.damage.is_none() {
            // One batch larger than a piece: read it whole.
            let length = BatchHeader::parse(&buf).map_or(0, |h| h.size());
            read(&mut buf, at, length.clamp(HEADER_SIZE, left))?;
            part = check_batches(tp, &buf, fetch_offset, known_damage, &mut previous_next, at, false);
        }
        total.sound_bytes += part.sound_bytes;
        total.sound_records += part.sound_records;
        if part.damage.is_some() {
            total.damage = part.damage;
            break;
        }
    }
    Ok(total)
}

/// Checks the batches of `bytes` (at `base_position` of the whole read),
/// continuing from `previous_next`; with `partial_tail`, an incomplete last
/// batch ends the check without being damage (the next piece has it).
fn check_batches(
    tp: &TopicPartition,
    bytes: &[u8],
    fetch_offset: i64,
    known_damage: Option<i64>,
    previous_next: &mut Option<i64>,
    base_position: usize,
    partial_tail: bool,
) -> ReadCheck {
    let mut check = ReadCheck { sound_bytes: 0, sound_records: 0, damage: None };
    while check.sound_bytes < bytes.len() {
        let position = base_position + check.sound_bytes;
        let rest = &bytes[check.sound_bytes..];
        let truncate_to = previous_next.unwrap_or_else(|| {
            BatchHeader::parse(rest).map_or(fetch_offset, |h| h.base_offset.clamp(0, fetch_offset.max(0)))
        });
        let fail = |reason: String| LogError::StoredBatchCorrupt {
            partition: tp.to_string(),
            offset: truncate_to,
            reason: format!("{reason} (byte {position} of the read)"),
        };
        let header = match BatchHeader::parse(rest) {
            Ok(h) if h.batch_length >= (HEADER_SIZE - LOG_OVERHEAD) as i32 && h.size() <= rest.len() => h,
            Ok(h) if partial_tail && h.batch_length >= (HEADER_SIZE - LOG_OVERHEAD) as i32 => break,
            Err(_) if partial_tail => break,
            Ok(h) => {
                check.damage = Some(fail(format!("batch length {} does not fit the read", h.batch_length)));
                break;
            }
            Err(_) => {
                check.damage = Some(fail(format!("{} bytes cannot hold a batch header", rest.len())));
                break;
            }
        };
        if let Some(known) = known_damage
            && fetch_offset <= known
            && header.last_offset() >= known
        {
            check.damage = Some(LogError::StoredBatchCorrupt {
                partition: tp.to_string(),
                offset: known,
                reason: format!("the batch at offset {known} was found damaged"),
            });
            break;
        }
        let min = previous_next.unwrap_or(i64::MIN);
        if let Err(reason) = check_one(&rest[..header.size()], min, header.base_offset, false) {
            check.damage = Some(fail(reason));
            break;
        }
        *previous_next = Some(header.next_offset());
        check.sound_bytes += header.size();
        check.sound_records += header.records_count.max(0) as u64;
    }
    check
}

/// [`check_read`] as a result: `Err` with the damage, if any.
pub fn verify_read(tp: &TopicPartition, bytes: &[u8], fetch_offset: i64) -> Result<(), LogError> {
    check_read(tp, bytes, fetch_offset, None).damage.map_or(Ok(()), Err)
}

/// What [`verify_unverified_segments`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenVerification {
    /// Segments read whole.
    pub segments_verified: usize,
    /// Bytes read.
    pub bytes_verified: u64,
    /// The offset of the first damaged batch found, if any (the log must be
    /// cut there: see [`take_damage_found_at_open`]).
    pub damaged_at: Option<i64>,
}

/// Size and modification time (ns since the epoch) of a file: what a
/// verification record must still match.
fn stamp(path: &Path) -> Result<(u64, i128), LogError> {
    let meta = std::fs::metadata(path).map_err(LogError::io(path))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(-1, |d| d.as_nanos() as i128);
    Ok((meta.len(), mtime))
}

fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.log", super::segment::file_stem(base)))
}

/// Reads [`VERIFIED_FILE`]: base offset to (size, mtime). Unreadable means
/// nothing is known verified.
fn read_verified(dir: &Path) -> HashMap<i64, (u64, i128)> {
    let Ok(text) = std::fs::read_to_string(dir.join(VERIFIED_FILE)) else { return HashMap::new() };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return HashMap::new();
    }
    lines
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let base = f.next()?.parse().ok()?;
            let size = f.next()?.parse().ok()?;
            let mtime = f.next()?.parse().ok()?;
            Some((base, (size, mtime)))
        })
        .collect()
}

/// Writes [`VERIFIED_FILE`] (temporary file, synced, renamed into place).
fn write_verified(dir: &Path, verified: &[(i64, (u64, i128))]) -> Result<(), LogError> {
    let path = dir.join(VERIFIED_FILE);
    let tmp = dir.join(format!("{VERIFIED_FILE}.tmp"));
    let mut text = String::from("0\n");
    for (base, (size, mtime)) in verified {
        text.push_str(&format!("{base} {size} {mtime}\n"));
    }
    let mut f = File::create(&tmp).map_err(LogError::io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(LogError::io(&tmp))?;
    f.sync_all().map_err(LogError::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(LogError::io(&path))
}

/// Verifies the sealed segments of the log in `dir` not verified since they
/// last changed, and repairs a damaged one (see the module docs). Runs
/// before the segments are opened.
pub fn verify_unverified_segments(dir: &Path, tp: &TopicPartition) -> Result<OpenVerification, LogError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(LogError::io(dir))? {
        let entry = entry.map_err(LogError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".log")
            && stem.len() == 20
            && let Ok(base) = stem.parse::<i64>()
            && base >= 0
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let mut done = OpenVerification::default();
    // The active segment is recovered end to end on open.
    let Some((_, sealed)) = bases.split_last() else { return Ok(done) };
    let known = read_verified(dir);
    let mut verified = Vec::with_capacity(sealed.len());
    let mut changed = known.len() != sealed.len();
    for &base in sealed {
        let path = log_path(dir, base);
        let stamped = stamp(&path)?;
        if known.get(&base) == Some(&stamped) {
            verified.push((base, stamped));
            continue;
        }
        changed = true;
        let file = File::open(&path).map_err(LogError::io(&path))?;
        let scan = scan_segment_file(&file, &path, stamped.0, base)?;
        drop(file);
        done.segments_verified += 1;
        done.bytes_verified += scan.valid_bytes;
        let Some(damage) = scan.damage else {
            verified.push((base, stamped));
            continue;
        };
        CORRUPT_BATCHES.fetch_add(1, Ordering::Relaxed);
        OPEN_DAMAGE.lock().unwrap_or_else(|e| e.into_inner()).insert(tp.clone(), damage.offset);
        tracing::error!(
            partition = %tp,
            segment = %path.display(),
            position = damage.position,
            offset = damage.offset,
            reason = %damage.reason,
            "damaged record batch on disk: it is never served; once this replica follows, its log is cut below it \
             and the rest fetched again from the leader"
        );
        done.damaged_at = Some(damage.offset);
        break;
    }
    if changed {
        write_verified(dir, &verified)?;
    }
    if done.segments_verified > 0 {
        tracing::info!(
            partition = %tp,
            segments = done.segments_verified,
            bytes = done.bytes_verified,
            "verified sealed segments not verified since they last changed"
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::Compression;

    use super::super::batch::tests::encode_batch;
    use super::super::{LogConfig, PartitionLog};
    use super::*;

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    /// A log of 40 batches of 4 records (offsets 0..160) in 2 KiB segments.
    fn write_log(dir: &Path) -> Vec<(i64, u64)> {
        let config = LogConfig { segment_bytes: 2048, index_interval_bytes: 256, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir, tp(), config).unwrap();
        for i in 0..40 {
            log.append_as_leader(&encode_batch(4, 40, 1000 + i * 4, Compression::None), 0, 0).unwrap();
        }
        assert!(log.segment_count() >= 4, "2 KiB segments must roll");
        log.flush().unwrap();
        log.segments().map(|s| (s.base_offset(), s.size())).collect()
    }

    /// Byte position and base offset of each batch of a segment file.
    fn batches_of(path: &Path) -> Vec<(u64, i64)> {
        let bytes = std::fs::read(path).unwrap();
        let mut out = Vec::new();
        let mut position = 0;
        while position < bytes.len() {
            let h = BatchHeader::parse(&bytes[position..]).unwrap();
            out.push((position as u64, h.base_offset));
            position += h.size();
        }
        out
    }

    fn flip(path: &Path, position: u64) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[position as usize] ^= 0x20;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_flipped_byte_in_the_third_batch_is_found_and_the_log_cut_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let segments = write_log(dir.path());
        let (base, _) = segments[1];
        let path = log_path(dir.path(), base);
        let batches = batches_of(&path);
        let (third_position, third_offset) = batches[2];
        // Inside the third batch's records, past its header.
        flip(&path, third_position + HEADER_SIZE as u64 + 5);

        let size = std::fs::metadata(&path).unwrap().len();
        let scan = scan_segment_file(&File::open(&path).unwrap(), &path, size, base).unwrap();
        let damage = scan.damage.expect("the flipped byte is found");
        assert_eq!((damage.position, damage.offset), (third_position, third_offset));
        assert!(damage.reason.contains("CRC"), "{}", damage.reason);
        assert_eq!((scan.batches, scan.valid_bytes, scan.next_offset), (2, third_position, third_offset));

        let before = corrupt_batches_total();
        let size_before: Vec<u64> =
            segments.iter().map(|(b, _)| std::fs::metadata(log_path(dir.path(), *b)).unwrap().len()).collect();
        let damaged_tp = TopicPartition::new("t", 7);
        let done = verify_unverified_segments(dir.path(), &damaged_tp).unwrap();
        assert_eq!(done.damaged_at, Some(third_offset));
        assert!(corrupt_batches_total() > before);
        assert_eq!(take_damage_found_at_open(&damaged_tp), Some(third_offset), "remembered for the replica");
        assert_eq!(take_damage_found_at_open(&damaged_tp), None, "once");
        // Nothing is deleted at open (it may be the only copy).
        let size_after: Vec<u64> =
            segments.iter().map(|(b, _)| std::fs::metadata(log_path(dir.path(), *b)).unwrap().len()).collect();
        assert_eq!(size_after, size_before);
        // Cut where it says, the log ends just below the damage and is sound.
        let config = LogConfig { segment_bytes: 2048, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir.path(), damaged_tp.clone(), config).unwrap();
        log.truncate_to(third_offset).unwrap();
        assert_eq!(log.log_end_offset(), third_offset, "the log ends just below the damage");
        assert_eq!(log.segment_count(), 2, "segments above the damage go");
        let read = log.read_up_to(0, usize::MAX, i64::MAX).unwrap();
        verify_read(&tp(), &read.records, 0).expect("what is left is sound");
        drop(log);
        let again = verify_unverified_segments(dir.path(), &damaged_tp).unwrap();
        assert_eq!(again.damaged_at, None, "repaired");
        let _ = take_damage_found_at_open(&damaged_tp);
    }

    #[test]
    fn an_intact_log_passes_and_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let segments = write_log(dir.path());
        let first = verify_unverified_segments(dir.path(), &tp()).unwrap();
        assert_eq!(first.damaged_at, None);
        assert_eq!(first.segments_verified, segments.len() - 1, "every sealed segment, not the active one");
        let sealed: u64 = segments[..segments.len() - 1].iter().map(|(_, size)| size).sum();
        assert_eq!(first.bytes_verified, sealed);
        let again = verify_unverified_segments(dir.path(), &tp()).unwrap();
        assert_eq!(again, OpenVerification::default(), "verified segments are not read again");
        // A segment changed behind the broker's back is verified again (past
        // the file system's timestamp granularity).
        std::thread::sleep(std::time::Duration::from_millis(50));
        let path = log_path(dir.path(), segments[0].0);
        flip(&path, 100);
        let after = verify_unverified_segments(dir.path(), &tp()).unwrap();
        assert_eq!(after.segments_verified, 1);
        assert_eq!(after.damaged_at, Some(0));
        let _ = take_damage_found_at_open(&tp());
    }

    #[test]
    fn damaged_framing_is_found_too() {
        let dir = tempfile::tempdir().unwrap();
        let segments = write_log(dir.path());
        let (base, _) = segments[0];
        let path = log_path(dir.path(), base);
        let batches = batches_of(&path);
        // The second batch's base offset (outside the CRC) goes backwards.
        let mut bytes = std::fs::read(&path).unwrap();
        let p = batches[1].0 as usize;
        bytes[p..p + 8].copy_from_slice(&0i64.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let scan = scan_segment_file(&File::open(&path).unwrap(), &path, bytes.len() as u64, base).unwrap();
        let damage = scan.damage.expect("offsets going backwards are damage");
        assert_eq!((damage.position, damage.offset), (batches[1].0, batches[1].1));
        // A length running past the end.
        let mut bytes = std::fs::read(&path).unwrap();
        let p = batches[2].0 as usize;
        bytes[p + 8..p + 12].copy_from_slice(&1_000_000i32.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let scan = scan_segment_file(&File::open(&path).unwrap(), &path, bytes.len() as u64, base).unwrap();
        assert_eq!(scan.damage.map(|d| d.position), Some(batches[1].0));
    }

    #[test]
    fn a_served_file_range_is_checked_in_pieces_across_batches_larger_than_a_piece() {
        let mut bytes = Vec::new();
        let mut next = 0i64;
        let mut push = |bytes: &mut Vec<u8>, count: usize, size: usize| {
            let mut b = encode_batch(count, size, 1, Compression::None);
            b[0..8].copy_from_slice(&next.to_be_bytes());
            next += count as i64;
            let at = bytes.len();
            bytes.extend(b);
            (at, next - count as i64)
        };
        for _ in 0..2000 {
            push(&mut bytes, 3, 333);
        }
        push(&mut bytes, 3, 600_000); // larger than a piece
        let mut damaged = (0, 0);
        for i in 0..2000 {
            let at = push(&mut bytes, 2, 250);
            if i == 1500 {
                damaged = at;
            }
        }
        assert!(bytes.len() > 3 * CHECK_CHUNK);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        std::fs::write(&path, &bytes).unwrap();
        let file = std::sync::Arc::new(File::open(&path).unwrap());
        let records = FileRecords::new(file.clone(), path.clone(), 0, bytes.len(), 0);
        let sound = check_file_records(&tp(), &records, 0, None).unwrap();
        assert!(sound.damage.is_none(), "{:?}", sound.damage);
        assert_eq!((sound.sound_bytes, sound.sound_records), (bytes.len(), next as u64));

        let (position, offset) = damaged;
        let at = position + HEADER_SIZE + 9;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[bytes[at] ^ 4], at as u64).unwrap();
        let check = check_file_records(&tp(), &records, 0, None).unwrap();
        assert_eq!(check.sound_bytes, position);
        match check.damage {
            Some(LogError::StoredBatchCorrupt { offset: found, .. }) => assert_eq!(found, offset),
            other => panic!("expected the damage, got {other:?}"),
        }
    }

    #[test]
    fn verify_read_names_the_offset_to_truncate_to() {
        let mut bytes = Vec::new();
        for i in 0..4i64 {
            let mut b = encode_batch(3, 20, 1, Compression::None);
            b[0..8].copy_from_slice(&(10 + i * 3).to_be_bytes());
            bytes.extend(b);
        }
        verify_read(&tp(), &bytes, 11).expect("sound batches pass");
        let third = bytes.len() / 4 * 2;
        bytes[third + HEADER_SIZE + 2] ^= 1;
        match verify_read(&tp(), &bytes, 11) {
            Err(LogError::StoredBatchCorrupt { offset, reason, .. }) => {
                assert_eq!(offset, 16, "{reason}");
            }
            other => panic!("expected a storage error, got {other:?}"),
        }
        let check = check_read(&tp(), &bytes, 11, None);
        assert_eq!((check.sound_bytes, check.sound_records), (third, 6), "the two batches before it are sound");
        // Damage known at offset 17 (perhaps cut away by recovery): a read
        // from below it stops before the batch reaching it; one from past it
        // is not held back.
        let mut sound = bytes.clone();
        sound[third + HEADER_SIZE + 2] ^= 1;
        let check = check_read(&tp(), &sound, 11, Some(17));
        assert_eq!(check.sound_bytes, third);
        assert!(matches!(check.damage, Some(LogError::StoredBatchCorrupt { offset: 17, .. })));
        // The same over a file, in pieces.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read.log");
        std::fs::write(&path, &bytes).unwrap();
        let file = std::sync::Arc::new(File::open(&path).unwrap());
        let records = FileRecords::new(file, path.clone(), 0, bytes.len(), 12);
        let check = check_file_records(&tp(), &records, 11, None).unwrap();
        assert_eq!((check.sound_bytes, check.sound_records), (third, 6));
        assert!(matches!(check.damage, Some(LogError::StoredBatchCorrupt { offset: 16, .. })));
        let quarter = bytes.len() / 4;
        let past = check_read(&tp(), &sound[quarter * 3..], 19, Some(17));
        assert!(past.damage.is_none());
        // Damage in the first batch of a read: its base offset, never above the fetch offset.
        let mut first = bytes.clone();
        first[HEADER_SIZE + 2] ^= 1;
        assert!(matches!(verify_read(&tp(), &first, 11), Err(LogError::StoredBatchCorrupt { offset: 10, .. })));
    }
}
