//! Transaction markers: the control batches a partition leader appends when
//! the transaction coordinator commits or aborts a producer's transaction.
//!
//! Kafka's format: a record batch with the transactional and control
//! attribute bits, the producer's id and epoch, base sequence -1, and one
//! record whose key is `version: i16 = 0, type: i16` (0 ABORT, 1 COMMIT) and
//! whose value is `version: i16 = 0, coordinator_epoch: i32`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::batch::BatchHeader;
use super::error::LogError;

/// Control record type of an ABORT marker.
pub const ABORT: i16 = 0;
/// Control record type of a COMMIT marker.
pub const COMMIT: i16 = 1;

/// What a transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    /// Whether the transaction committed (else it aborted).
    pub committed: bool,
    /// The epoch of the coordinator that wrote it.
    pub coordinator_epoch: i32,
}

/// Encodes a control batch holding `marker` for a producer, at offset 0
/// (the log assigns the real one) with timestamp `now_ms`.
pub fn encode_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTxnMarker,
    now_ms: i64,
) -> Result<Vec<u8>, LogError> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(if marker.committed { COMMIT } else { ABORT });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(marker.coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, [&record], &options)
        .map_err(|e| LogError::corrupt(format!("encoding a transaction marker: {e}")))?;
    Ok(buf.to_vec())
}

/// Reads the marker in a whole control batch (header included). Kafka's
/// control batches hold exactly one record; its key gives the type and its
/// value the coordinator epoch. `None` for a control record of another type
/// than ABORT and COMMIT (Kafka has others, which end no transaction).
pub fn parse_marker_batch(batch: &[u8]) -> Result<Option<EndTxnMarker>, LogError> {
    let header = BatchHeader::parse(batch)?;
    let at = header.base_offset;
    if !header.is_control() {
        return Err(LogError::corrupt(format!("batch at offset {at} is not a control batch")));
    }
    let mut buf = Bytes::copy_from_slice(batch);
    let set = super::decompress::decode_batch(&mut buf)
        .map_err(|e| LogError::corrupt(format!("decoding control batch at offset {at}: {e}")))?;
    let [record] = &set.records[..] else {
        return Err(LogError::corrupt(format!(
            "control batch at offset {at} holds {} records, not 1",
            set.records.len()
        )));
    };
    let (Some(mut key), Some(mut value)) = (record.key.clone(), record.value.clone()) else {
        return Err(LogError::corrupt(format!("control record at offset {at} lacks a key or value")));
    };
    if key.len() < 4 {
        return Err(LogError::corrupt(format!("control record at offset {at}: key of {} bytes, need 4", key.len())));
    }
    let (_key_version, kind) = (key.get_i16(), key.get_i16());
    let committed = match kind {
        COMMIT => true,
        ABORT => false,
        _ => return Ok(None),
    };
    if value.len() < 6 {
        return Err(LogError::corrupt(format!(
            "transaction marker at offset {at}: value of {} bytes, need 6",
            value.len()
        )));
    }
    let (_value_version, coordinator_epoch) = (value.get_i16(), value.get_i32());
    Ok(Some(EndTxnMarker { committed, coordinator_epoch }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_encode_in_kafkas_format_and_parse_back() {
        let marker = EndTxnMarker { committed: false, coordinator_epoch: 7 };
        let bytes = encode_marker_batch(42, 3, marker, 1_000).unwrap();
        let header = BatchHeader::parse(&bytes).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (42, 3, -1));
        assert_eq!(header.records_count, 1);
        // The record's key and value, at the end of the batch: key length 4
        // (varint 8), key 0x0000 0x0000, value length 6 (varint 12), value
        // 0x0000 0x00000007, no headers.
        assert!(bytes.ends_with(&[8, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0, 7, 0]));
        assert_eq!(parse_marker_batch(&bytes).unwrap(), Some(marker));
        let commit = EndTxnMarker { committed: true, coordinator_epoch: 0 };
        assert_eq!(parse_marker_batch(&encode_marker_batch(1, 0, commit, 0).unwrap()).unwrap(), Some(commit));
        super::super::batch::validate_replicated_batches(&bytes).unwrap();
    }
}
