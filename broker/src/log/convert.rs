//! What a leader does to a producer's validated batches besides patching
//! their headers, as Kafka's `LogValidator` does: a compacted log refuses
//! records without a key (INVALID_RECORD, one error per record, nothing
//! written), and a topic whose `compression.type` names a codec stores every
//! batch with that codec, recompressing the ones sent with another.
//!
//! Recompression changes only a batch's records section, the codec bits of
//! its attributes, its length and its CRC: offsets, timestamps, producer id,
//! epoch, base sequence and the record count stay, so idempotent producers'
//! sequences and every offset the producer is answered with are those of the
//! batch it sent. Decompression is bounded like every other look inside a
//! batch (see [`super::decompress`]), and the decompressed records are
//! checked record by record before anything trusts them.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::Compression;

use super::batch::{self, BatchRef, HEADER_SIZE};
use super::decompress::{MAX_DECOMPRESSED_BATCH_BYTES, decompress};
use super::error::{LogError, RecordError};

/// Checks `batches` (validated into `refs`) for keyless records when
/// `require_keys` (a compacted log of `partition`), and recompresses those
/// whose codec is not `target`. Returns the batches to store when any was
/// recompressed, `None` when they are stored as sent.
pub fn convert(
    batches: &[u8],
    refs: &[BatchRef],
    require_keys: bool,
    target: Option<Compression>,
    partition: &impl std::fmt::Display,
) -> Result<Option<Vec<u8>>, LogError> {
    let recompress = |r: &BatchRef| target.is_some_and(|t| t as i16 != r.header.compression());
    if !require_keys && !refs.iter().any(recompress) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(batches.len());
    let mut record_errors = Vec::new();
    let mut first_index = 0i32;
    for (n, r) in refs.iter().enumerate() {
        let whole = &batches[r.position..r.position + r.header.size()];
        let count = r.header.records_count;
        let codec = codec(r.header.compression())?;
        let plain =
            records(whole, codec, count).map_err(|e| LogError::corrupt(format!("batch {n} of the request: {e}")))?;
        if require_keys {
            for index in batch::keyless_records(&plain, count)? {
                record_errors.push(RecordError {
                    batch_index: first_index.saturating_add(index),
                    message: format!(
                        "Compacted topic cannot accept message without key in topic partition {partition}."
                    ),
                });
            }
        }
        first_index = first_index.saturating_add(count);
        match target {
            Some(target) if recompress(r) => {
                out.extend(batch::with_records(whole, target as i16, &compress(&plain, target)?))
            }
            _ => out.extend_from_slice(whole),
        }
    }
    if !record_errors.is_empty() {
        return Err(LogError::InvalidRecords { record_errors });
    }
    Ok(refs.iter().any(recompress).then_some(out))
}

/// The codec of an attributes codec id (validation allows 0 to 4 only).
fn codec(id: i16) -> Result<Compression, LogError> {
    Ok(match id {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        other => return Err(LogError::corrupt(format!("unknown compression codec {other}"))),
    })
}

/// A batch's records, decompressed within the bound and checked.
fn records(whole: &[u8], codec: Compression, count: i32) -> Result<Cow<'_, [u8]>, LogError> {
    let body = &whole[HEADER_SIZE..];
    if codec == Compression::None {
        // Uncompressed records were checked with the batch.
        return Ok(Cow::Borrowed(body));
    }
    let mut compressed = Bytes::copy_from_slice(body);
    let plain = decompress(&mut compressed, codec, MAX_DECOMPRESSED_BATCH_BYTES)
        .map_err(|e| LogError::corrupt(format!("{e:#}")))?;
    batch::check_records(&plain, count)?;
    Ok(Cow::Owned(plain.to_vec()))
}

/// `plain` records compressed with `codec`, in the framing Kafka's clients
/// read (LZ4 frames, zstd frames, xerial-framed snappy, gzip).
fn compress(plain: &[u8], codec: Compression) -> Result<Vec<u8>, LogError> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| {
        b.put_slice(plain);
        Ok(())
    };
    let done = match codec {
        Compression::None => {
            out.put_slice(plain);
            Ok(())
        }
        Compression::Gzip => Gzip::compress(&mut out, fill),
        Compression::Snappy => Snappy::compress(&mut out, fill),
        Compression::Lz4 => Lz4::compress(&mut out, fill),
        Compression::Zstd => Zstd::compress(&mut out, fill),
    };
    done.map_err(|e| LogError::corrupt(format!("recompressing records with {codec:?}: {e:#}")))?;
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::encode_batch;
    use crate::log::batch::validate_batches;
    use crate::log::decompress::decode_batch;

    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// An idempotent producer's batch (producer 7, epoch 3, base sequence 40).
    fn producer_batch(compression: Compression) -> Vec<u8> {
        let mut bytes = encode_batch(5, 30, 1000, compression);
        bytes[43..51].copy_from_slice(&7i64.to_be_bytes());
        bytes[51..53].copy_from_slice(&3i16.to_be_bytes());
        bytes[53..57].copy_from_slice(&40i32.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn every_codec_recompresses_to_every_other_keeping_header_and_records() {
        for from in CODECS {
            for to in CODECS {
                let sent = producer_batch(from);
                let refs = validate_batches(&sent, 1 << 20).unwrap();
                let stored = convert(&sent, &refs, false, Some(to), &"t-0").unwrap();
                if from == to {
                    assert!(stored.is_none(), "{from:?} is stored as sent");
                    continue;
                }
                let stored = stored.unwrap();
                let after = validate_batches(&stored, 1 << 20).expect("a valid batch, CRC included");
                let (a, b) = (refs[0].header, after[0].header);
                assert_eq!(b.compression(), to as i16, "{from:?} -> {to:?}");
                assert_eq!(
                    (b.producer_id, b.producer_epoch, b.base_sequence, b.records_count, b.last_offset_delta),
                    (a.producer_id, a.producer_epoch, a.base_sequence, a.records_count, a.last_offset_delta),
                );
                assert_eq!(
                    (b.base_timestamp, b.max_timestamp, b.attributes & !7),
                    (a.base_timestamp, a.max_timestamp, a.attributes & !7)
                );
                let records = |bytes: &[u8]| decode_batch(&mut Bytes::copy_from_slice(bytes)).unwrap().records;
                assert_eq!(records(&stored), records(&sent), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn producer_keeps_batches_as_sent() {
        let sent = producer_batch(Compression::Gzip);
        let refs = validate_batches(&sent, 1 << 20).unwrap();
        assert!(convert(&sent, &refs, false, None, &"t-0").unwrap().is_none());
        assert!(convert(&sent, &refs, true, None, &"t-0").unwrap().is_none(), "keyed records pass a compacted log");
    }

    #[test]
    fn keyless_records_are_refused_one_error_each_across_batches() {
        let keyed = encode_batch(2, 4, 0, Compression::None);
        let mut sent = keyed.clone();
        for codec in [Compression::None, Compression::Lz4] {
            let records: Vec<kafka_protocol::records::Record> = (0..3)
                .map(|i| {
                    let mut bytes = Bytes::from(encode_batch(3, 4, 0, codec));
                    let mut r = decode_batch(&mut bytes).unwrap().records.remove(i);
                    if i != 1 {
                        r.key = None;
                    }
                    r
                })
                .collect();
            let mut buf = BytesMut::new();
            let options = kafka_protocol::records::RecordEncodeOptions { version: 2, compression: codec };
            kafka_protocol::records::RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
            sent.extend_from_slice(&buf);
        }
        let refs = validate_batches(&sent, 1 << 20).unwrap();
        assert!(convert(&sent, &refs, false, Some(Compression::None), &"t-0").is_ok(), "a deleting log takes them");
        let Err(LogError::InvalidRecords { record_errors }) = convert(&sent, &refs, true, None, &"t-0") else {
            panic!("keyless records in a compacted log must be refused");
        };
        let indexes: Vec<i32> = record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, vec![2, 4, 5, 7]);
        assert!(record_errors[0].message.contains("without key in topic partition t-0"), "{:?}", record_errors[0]);
    }
}
