//! What a leader does to a producer's validated batches besides patching
//! their headers, as Kafka's `LogValidator` does: a compacted log refuses
//! records without a key (INVALID_RECORD, one error per record, nothing
//! written).
//!
//! Decompression is bounded like every other look inside a batch (see
//! [`super::decompress`]), and the decompressed records are checked record
//! by record before anything trusts them.

use std::borrow::Cow;

use bytes::Bytes;
use kafka_protocol::records::Compression;

use super::batch::{self, BatchRef, HEADER_SIZE};
use super::decompress::{MAX_DECOMPRESSED_BATCH_BYTES, decompress};
use super::error::{LogError, RecordError};

/// Refuses `batches` (validated into `refs`) if any record has no key, as a
/// compacted log of `partition` must: one error per keyless record.
pub fn check_keys(batches: &[u8], refs: &[BatchRef], partition: &impl std::fmt::Display) -> Result<(), LogError> {
    let mut record_errors = Vec::new();
    let mut first_index = 0i32;
    for (n, r) in refs.iter().enumerate() {
        let whole = &batches[r.position..r.position + r.header.size()];
        let count = r.header.records_count;
        let codec = codec(r.header.compression())?;
        let plain =
            records(whole, codec, count).map_err(|e| LogError::corrupt(format!("batch {n} of the request: {e}")))?;
        for index in batch::keyless_records(&plain, count)? {
            record_errors.push(RecordError {
                batch_index: first_index.saturating_add(index),
                message: format!("Compacted topic cannot accept message without key in topic partition {partition}."),
            });
        }
        first_index = first_index.saturating_add(count);
    }
    if !record_errors.is_empty() {
        return Err(LogError::InvalidRecords { record_errors });
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::encode_batch;
    use crate::log::batch::validate_batches;
    use crate::log::decompress::decode_batch;
    use bytes::BytesMut;

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
        let Err(LogError::InvalidRecords { record_errors }) = check_keys(&sent, &refs, &"t-0") else {
            panic!("keyless records in a compacted log must be refused");
        };
        let indexes: Vec<i32> = record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, vec![2, 4, 5, 7]);
        assert!(record_errors[0].message.contains("without key in topic partition t-0"), "{:?}", record_errors[0]);
    }
}
