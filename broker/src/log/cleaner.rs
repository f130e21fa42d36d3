//! Log compaction (`cleanup.policy=compact`): keep only the latest record of
//! each key, as Kafka's log cleaner does, so a compacted topic (such as
//! `__consumer_offsets`) holds the current value per key however long it runs.
//!
//! This module works on segment bytes: it collects each key's latest offset,
//! and rewrites a segment keeping records that are the latest for their key
//! (records without a key are always kept; tombstones — null values — are
//! kept until `delete.retention.ms` has passed). Offsets, timestamps and
//! producer fields are preserved; batches nothing was removed from are
//! copied byte for byte. The partition log swaps cleaned segments in.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

use super::batch::{BatchHeader, HEADER_SIZE};
use super::error::LogError;

/// Latest offset of every key seen.
pub type KeyOffsets = HashMap<Bytes, i64>;

/// What cleaning one segment did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    /// Records examined.
    pub records_read: u64,
    /// Records dropped.
    pub records_removed: u64,
}

/// Iterates the whole batches in `bytes` as (header, batch bytes).
fn batches(bytes: &[u8]) -> impl Iterator<Item = Result<(BatchHeader, &[u8]), LogError>> {
    let mut position = 0;
    std::iter::from_fn(move || {
        if position >= bytes.len() {
            return None;
        }
        let header = match BatchHeader::parse(&bytes[position..]) {
            Ok(h) if h.size() >= HEADER_SIZE && position + h.size() <= bytes.len() => h,
            Ok(_) => {
                return Some(Err(LogError::corrupt(format!("stored batch at byte {position} overruns its segment"))));
            }
            Err(e) => return Some(Err(e)),
        };
        let batch = &bytes[position..position + header.size()];
        position += header.size();
        Some(Ok((header, batch)))
    })
}

fn decode(header: &BatchHeader, batch: &[u8]) -> Result<Vec<Record>, LogError> {
    let mut buf = Bytes::copy_from_slice(batch);
    super::decompress::decode_batch(&mut buf)
        .map(|set| set.records)
        .map_err(|e| LogError::corrupt(format!("decoding stored batch at offset {}: {e}", header.base_offset)))
}

/// Records in `bytes` (a segment) the latest offset of every key, leaving
/// out batches `skip` names (those of aborted or not yet ended
/// transactions: their records must never make a committed value look
/// superseded).
pub fn collect_key_offsets(
    bytes: &[u8],
    offsets: &mut KeyOffsets,
    skip: impl Fn(&BatchHeader) -> bool,
) -> Result<(), LogError> {
    for item in batches(bytes) {
        let (header, batch) = item?;
        if header.is_control() || skip(&header) {
            continue;
        }
        // A batch that does not decode is kept as it is and never cleaned.
        let Ok(records) = decode(&header, batch) else { continue };
        for record in records {
            if let Some(key) = record.key {
                offsets.insert(key, record.offset);
            }
        }
    }
    Ok(())
}

/// Rewrites a segment's bytes keeping the latest record per key. Tombstones
/// are dropped too when `drop_tombstones`. Returns `None` when nothing would
/// change.
pub fn clean_segment(
    bytes: &[u8],
    latest: &KeyOffsets,
    drop_tombstones: bool,
) -> Result<(Option<Vec<u8>>, CleanStats), LogError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut stats = CleanStats::default();
    for item in batches(bytes) {
        let (header, batch) = item?;
        if header.is_control() {
            out.extend_from_slice(batch);
            continue;
        }
        let records = match decode(&header, batch) {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(base_offset = header.base_offset, error = %e, "compaction keeps an undecodable batch as is");
                out.extend_from_slice(batch);
                continue;
            }
        };
        stats.records_read += records.len() as u64;
        let keep = |r: &Record| match &r.key {
            None => true,
            Some(key) => latest.get(key) == Some(&r.offset) && !(drop_tombstones && r.value.is_none()),
        };
        let kept: Vec<Record> = records.iter().filter(|r| keep(r)).cloned().collect();
        stats.records_removed += (records.len() - kept.len()) as u64;
        if kept.len() == records.len() {
            out.extend_from_slice(batch);
        } else if !kept.is_empty() {
            out.extend_from_slice(&encode_like(&header, &kept)?);
        }
    }
    let changed = stats.records_removed > 0;
    Ok((changed.then_some(out), stats))
}

/// Encodes `records` as one batch with the original batch's compression and
/// producer fields.
fn encode_like(header: &BatchHeader, records: &[Record]) -> Result<Vec<u8>, LogError> {
    let compression = match header.compression() {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression };
    RecordBatchEncoder::encode(&mut buf, records, &options)
        .map_err(|e| LogError::corrupt(format!("re-encoding cleaned batch at offset {}: {e}", header.base_offset)))?;
    let mut bytes = buf.to_vec();
    // Keep the original header's sequence fields for non-idempotent batches.
    if header.producer_id < 0 {
        bytes[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{RecordBatchDecoder, TimestampType};

    fn record(offset: i64, key: &str, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32 - 1,
            timestamp: 1000 + offset,
            key: Some(Bytes::from(key.to_owned())),
            value: value.map(|v| Bytes::from(v.to_owned())),
            headers: Default::default(),
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, records, &RecordEncodeOptions { version: 2, compression }).unwrap();
        buf.to_vec()
    }

    #[test]
    fn keeps_the_latest_record_per_key_with_its_offset() {
        let mut segment = encode(&[record(0, "a", Some("1")), record(1, "b", Some("1"))], Compression::Lz4);
        segment.extend(encode(&[record(2, "a", Some("2")), record(3, "c", None)], Compression::None));
        let mut latest = KeyOffsets::new();
        collect_key_offsets(&segment, &mut latest, |_| false).unwrap();
        let (cleaned, stats) = clean_segment(&segment, &latest, false).unwrap();
        assert_eq!((stats.records_read, stats.records_removed), (4, 1));
        let mut buf = Bytes::from(cleaned.unwrap());
        let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
        let left: Vec<(i64, Option<Bytes>)> =
            sets.iter().flat_map(|s| s.records.iter()).map(|r| (r.offset, r.value.clone())).collect();
        assert_eq!(left, vec![(1, Some(Bytes::from("1"))), (2, Some(Bytes::from("2"))), (3, None)]);
        assert_eq!(sets[0].records[0].timestamp, 1001, "timestamps preserved");
        // Every rewritten batch is valid on disk: CRC and header.
        let (tombstones_gone, _) = clean_segment(&segment, &latest, true).unwrap();
        let bytes = tombstones_gone.unwrap();
        for item in batches(&bytes) {
            let (h, b) = item.unwrap();
            assert_eq!(crc32c::crc32c(&b[21..]), h.crc);
        }
        let mut buf = Bytes::from(bytes);
        assert_eq!(RecordBatchDecoder::decode_all(&mut buf).unwrap().iter().map(|s| s.records.len()).sum::<usize>(), 2);
    }

    #[test]
    fn a_batch_that_does_not_decode_is_kept_as_it_is() {
        let mut broken = encode(&[record(0, "a", Some("1")), record(1, "a", Some("2"))], Compression::Lz4);
        let last = broken.len() - 3;
        broken[last] ^= 0xff; // inside the LZ4 frame
        let crc = crc32c::crc32c(&broken[21..]);
        broken[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut segment = broken.clone();
        segment.extend(encode(&[record(2, "b", Some("1")), record(3, "b", Some("2"))], Compression::None));
        let mut latest = KeyOffsets::new();
        collect_key_offsets(&segment, &mut latest, |_| false).unwrap();
        let (cleaned, stats) = clean_segment(&segment, &latest, false).unwrap();
        assert_eq!(stats.records_removed, 1, "only the decodable batch is cleaned");
        assert!(cleaned.unwrap().starts_with(&broken), "the broken batch is copied byte for byte");
    }

    #[test]
    fn an_unchanged_segment_is_not_rewritten() {
        let segment = encode(&[record(0, "a", Some("1")), record(1, "b", Some("1"))], Compression::None);
        let mut latest = KeyOffsets::new();
        collect_key_offsets(&segment, &mut latest, |_| false).unwrap();
        assert_eq!(clean_segment(&segment, &latest, false).unwrap().0, None);
    }
}
