//! Kafka's RecordBatch v2 (magic 2) as bytes: parsing the 61-byte header,
//! validating what producers send, and patching the fields the leader owns.
//!
//! Layout (big-endian), as in Kafka's `DefaultRecordBatch`:
//!
//! ```text
//!  0 baseOffset i64       8 batchLength i32    12 partitionLeaderEpoch i32
//! 16 magic i8            17 crc u32           21 attributes i16
//! 23 lastOffsetDelta i32 27 baseTimestamp i64 35 maxTimestamp i64
//! 43 producerId i64      51 producerEpoch i16 53 baseSequence i32
//! 57 recordsCount i32    61 records...
//! ```
//!
//! The CRC-32C covers everything from `attributes` to the end, so the leader
//! may patch `baseOffset` and `partitionLeaderEpoch` without recomputing it;
//! stamping log-append time changes `attributes` and `maxTimestamp` and does.

use super::error::LogError;

/// Size of the batch header; the records follow it.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength`'s count starts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// The only record batch format stored.
pub const MAGIC_V2: i8 = 2;

const OFFSET_LENGTH: usize = 8;
const OFFSET_LEADER_EPOCH: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_BASE_TIMESTAMP: usize = 27;
const OFFSET_MAX_TIMESTAMP: usize = 35;
const OFFSET_PRODUCER_ID: usize = 43;
const OFFSET_PRODUCER_EPOCH: usize = 51;
const OFFSET_BASE_SEQUENCE: usize = 53;
const OFFSET_RECORDS_COUNT: usize = 57;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// The parsed header of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch the batch was appended under.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 once validated.
    pub magic: i8,
    /// CRC-32C of the bytes from `attributes` to the end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (or the log-append time).
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when none.
    pub producer_id: i64,
    /// Producer epoch, -1 when none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when none.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses a header from at least [`HEADER_SIZE`] bytes (no validation).
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, LogError> {
        if bytes.len() < HEADER_SIZE {
            return Err(LogError::corrupt(format!(
                "{} bytes left, a record batch header needs {HEADER_SIZE}",
                bytes.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: read_i64(bytes, 0),
            batch_length: read_i32(bytes, OFFSET_LENGTH),
            partition_leader_epoch: read_i32(bytes, OFFSET_LEADER_EPOCH),
            magic: bytes[OFFSET_MAGIC] as i8,
            crc: read_i32(bytes, OFFSET_CRC) as u32,
            attributes: read_i16(bytes, OFFSET_ATTRIBUTES),
            last_offset_delta: read_i32(bytes, OFFSET_LAST_OFFSET_DELTA),
            base_timestamp: read_i64(bytes, OFFSET_BASE_TIMESTAMP),
            max_timestamp: read_i64(bytes, OFFSET_MAX_TIMESTAMP),
            producer_id: read_i64(bytes, OFFSET_PRODUCER_ID),
            producer_epoch: read_i16(bytes, OFFSET_PRODUCER_EPOCH),
            base_sequence: read_i32(bytes, OFFSET_BASE_SEQUENCE),
            records_count: read_i32(bytes, OFFSET_RECORDS_COUNT),
        })
    }

    /// Total size of the batch on disk, header included.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    /// Whether this is a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether the batch carries an idempotent producer's id.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// One validated batch inside a larger buffer.
#[derive(Debug, Clone, Copy)]
pub struct BatchRef {
    /// Byte position of the batch in the buffer.
    pub position: usize,
    /// Its header.
    pub header: BatchHeader,
}

/// Validates a buffer of producer batches: each must be magic 2, sized
/// consistently, within `max_message_bytes`, CRC-correct, and (uncompressed)
/// hold exactly `recordsCount` well-formed records with offset deltas
/// 0..count. Returns the batches in order; an empty buffer is an error.
pub fn validate_batches(bytes: &[u8], max_message_bytes: u32) -> Result<Vec<BatchRef>, LogError> {
    if bytes.is_empty() {
        return Err(LogError::corrupt("no record batch in the request"));
    }
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let rest = &bytes[position..];
        let header = check_batch(rest, max_message_bytes)?;
        batches.push(BatchRef { position, header });
        position += header.size();
    }
    Ok(batches)
}

/// Where batches being validated come from, which decides what they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A producer: no control batches, records at offset deltas 0..count.
    Producer,
    /// A partition leader replicating its stored batches: control batches
    /// are allowed, and offset deltas may skip (a compacted batch keeps its
    /// records' original offsets), but must increase and end at
    /// `lastOffsetDelta`.
    Replication,
}

/// Validates a buffer of batches a follower received from its leader, as
/// the leader stored them: each must be magic 2, sized consistently,
/// CRC-correct and (uncompressed) hold well-formed records with increasing
/// offset deltas ending at `lastOffsetDelta`. No size limit applies (the
/// leader accepted the batch under the topic's limit at the time). Offsets
/// across batches are the caller's to check.
pub fn validate_replicated_batches(bytes: &[u8]) -> Result<Vec<BatchRef>, LogError> {
    if bytes.is_empty() {
        return Err(LogError::corrupt("no record batch to replicate"));
    }
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = check_batch_from(&bytes[position..], u32::MAX, Origin::Replication)?;
        batches.push(BatchRef { position, header });
        position += header.size();
    }
    Ok(batches)
}

/// Validates one stored batch at the start of `bytes` by the rules
/// [`validate_replicated_batches`] applies (framing, CRC-32C, records):
/// what a log's own batches must pass when they are verified on disk.
pub fn check_stored_batch(bytes: &[u8]) -> Result<BatchHeader, LogError> {
    check_batch_from(bytes, u32::MAX, Origin::Replication)
}

/// Validates the batch at the start of `bytes`; returns its header.
pub fn check_batch(bytes: &[u8], max_message_bytes: u32) -> Result<BatchHeader, LogError> {
    check_batch_from(bytes, max_message_bytes, Origin::Producer)
}

fn check_batch_from(bytes: &[u8], max_message_bytes: u32, origin: Origin) -> Result<BatchHeader, LogError> {
    if bytes.len() > OFFSET_MAGIC {
        let magic = bytes[OFFSET_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(LogError::UnsupportedMagic { magic });
        }
    }
    let header = BatchHeader::parse(bytes)?;
    let size = header.size();
    if (header.batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
        return Err(LogError::corrupt(format!(
            "batchLength {} is smaller than the {} header bytes it must cover",
            header.batch_length,
            HEADER_SIZE - LOG_OVERHEAD
        )));
    }
    if size > max_message_bytes as usize {
        return Err(LogError::RecordBatchTooLarge { size, max: max_message_bytes });
    }
    if size > bytes.len() {
        return Err(LogError::corrupt(format!("batchLength says {size} bytes but only {} remain", bytes.len())));
    }
    let batch = &bytes[..size];
    let actual = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    if actual != header.crc {
        return Err(LogError::CrcMismatch { expected: header.crc, actual });
    }
    if header.records_count <= 0 {
        return Err(LogError::corrupt(format!("recordsCount {} must be at least 1", header.records_count)));
    }
    let dense = origin == Origin::Producer;
    if dense && header.last_offset_delta != header.records_count - 1
        || !dense && header.last_offset_delta < header.records_count - 1
    {
        return Err(LogError::corrupt(format!(
            "lastOffsetDelta {} does not match recordsCount {}",
            header.last_offset_delta, header.records_count
        )));
    }
    // A producer's base offset is replaced by the leader; a replicated one is final.
    if !dense
        && (header.base_offset < 0 || header.base_offset.checked_add(i64::from(header.last_offset_delta)).is_none())
    {
        return Err(LogError::corrupt(format!(
            "baseOffset {} with lastOffsetDelta {} is not a valid offset range",
            header.base_offset, header.last_offset_delta
        )));
    }
    if header.compression() > 4 {
        return Err(LogError::corrupt(format!("unknown compression codec {}", header.compression())));
    }
    if header.is_control() && origin == Origin::Producer {
        return Err(LogError::corrupt("producers may not send control batches"));
    }
    if header.compression() == 0 {
        let deltas =
            if dense { OffsetDeltas::Dense } else { OffsetDeltas::Increasing { last: header.last_offset_delta } };
        check_records_with(&batch[HEADER_SIZE..], header.records_count, deltas)?;
    }
    Ok(header)
}

/// What the records' offset deltas must be.
#[derive(Debug, Clone, Copy)]
enum OffsetDeltas {
    /// 0, 1, ..., count - 1 (as producers send them).
    Dense,
    /// Strictly increasing from 0 or more, the last equal to `last` (a compacted batch).
    Increasing { last: i32 },
}

/// Checks a batch's records (decompressed): exactly `count` records filling
/// `bytes`, each with offset delta equal to its index, lengths within its
/// size, header counts its bytes can hold and UTF-8 header keys — what a
/// record decoder may rely on before it allocates.
pub fn check_records(bytes: &[u8], count: i32) -> Result<(), LogError> {
    check_records_with(bytes, count, OffsetDeltas::Dense)
}

fn check_records_with(bytes: &[u8], count: i32, deltas: OffsetDeltas) -> Result<(), LogError> {
    let mut cursor = Cursor { bytes, position: 0 };
    let mut previous_delta = -1;
    for index in 0..count {
        let length = cursor.varint()?;
        if length < 0 || length as usize > cursor.remaining() {
            return Err(LogError::corrupt(format!("record {index} length {length} overruns the batch")));
        }
        let end = cursor.position + length as usize;
        let mut record = Cursor { bytes: &bytes[..end], position: cursor.position };
        record.skip(1)?; // attributes
        record.varlong()?; // timestamp delta
        let offset_delta = record.varint()?;
        let in_order = match deltas {
            OffsetDeltas::Dense => offset_delta == index,
            OffsetDeltas::Increasing { last } => {
                offset_delta > previous_delta && offset_delta <= last && (index + 1 < count || offset_delta == last)
            }
        };
        if !in_order {
            return Err(LogError::corrupt(format!("record {index} has offset delta {offset_delta}")));
        }
        previous_delta = offset_delta;
        record.bytes_field()?; // key
        record.bytes_field()?; // value
        let headers = record.varint()?;
        // Each header takes at least two bytes (two length varints).
        if headers < 0 || headers as usize > record.remaining() / 2 {
            return Err(LogError::corrupt(format!("record {index} claims {headers} headers")));
        }
        for _ in 0..headers {
            let key_len = record.varint()?;
            if key_len < 0 {
                return Err(LogError::corrupt(format!("record {index} has a header with a null key")));
            }
            let key_start = record.position;
            record.skip(key_len as usize)?;
            if std::str::from_utf8(&record.bytes[key_start..record.position]).is_err() {
                return Err(LogError::corrupt(format!("record {index} has a header key that is not UTF-8")));
            }
            record.bytes_field()?;
        }
        if record.position != end {
            return Err(LogError::corrupt(format!("record {index} has {} trailing bytes", end - record.position)));
        }
        cursor.position = end;
    }
    if cursor.remaining() != 0 {
        return Err(LogError::corrupt(format!("{} bytes after the last of {count} records", cursor.remaining())));
    }
    Ok(())
}

/// The indexes of the records without a key among `count` records in
/// `bytes` (a batch's records, decompressed, already checked by
/// [`check_records`]).
pub fn keyless_records(bytes: &[u8], count: i32) -> Result<Vec<i32>, LogError> {
    let mut cursor = Cursor { bytes, position: 0 };
    let mut keyless = Vec::new();
    for index in 0..count {
        let length = cursor.varint()?;
        if length < 0 || length as usize > cursor.remaining() {
            return Err(LogError::corrupt(format!("record {index} length {length} overruns the batch")));
        }
        let end = cursor.position + length as usize;
        let mut record = Cursor { bytes: &bytes[..end], position: cursor.position };
        record.skip(1)?; // attributes
        record.varlong()?; // timestamp delta
        record.varint()?; // offset delta
        if record.varint()? < 0 {
            keyless.push(index);
        }
        cursor.position = end;
    }
    Ok(keyless)
}

/// Replaces a whole batch's records with `records` compressed with `codec`
/// (id as in the attributes): sets the codec bits, `batchLength` and the
/// CRC; every other header field stays.
pub fn with_records(batch: &[u8], codec: i16, records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
    out.extend_from_slice(&batch[..HEADER_SIZE]);
    out.extend_from_slice(records);
    let attributes = (read_i16(&out, OFFSET_ATTRIBUTES) & !ATTR_COMPRESSION_MASK) | (codec & ATTR_COMPRESSION_MASK);
    out[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[OFFSET_LENGTH..OFFSET_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[OFFSET_ATTRIBUTES..]);
    out[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Reads varints of a record.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn skip(&mut self, n: usize) -> Result<(), LogError> {
        if n > self.remaining() {
            return Err(LogError::corrupt("record field overruns its record"));
        }
        self.position += n;
        Ok(())
    }

    fn varlong(&mut self) -> Result<i64, LogError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.bytes.get(self.position) else {
                return Err(LogError::corrupt("varint overruns its record"));
            };
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(LogError::corrupt("varint longer than 10 bytes"))
    }

    fn varint(&mut self) -> Result<i32, LogError> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| LogError::corrupt(format!("varint {v} does not fit 32 bits")))
    }

    /// A length-prefixed byte field where -1 means null.
    fn bytes_field(&mut self) -> Result<(), LogError> {
        let len = self.varint()?;
        if len < -1 {
            return Err(LogError::corrupt(format!("field length {len}")));
        }
        if len > 0 {
            self.skip(len as usize)?;
        }
        Ok(())
    }
}

/// The last offset of the last whole batch in `bytes` (stored batches, as a
/// read returns them); `None` when `bytes` holds no whole batch.
pub fn last_offset_in(bytes: &[u8]) -> Option<i64> {
    let mut position = 0;
    let mut last = None;
    while let Ok(header) = BatchHeader::parse(&bytes[position..]) {
        if header.batch_length < 0 || position + header.size() > bytes.len() {
            break;
        }
        last = Some(header.last_offset());
        position += header.size();
    }
    last
}

/// Sets the base offset of the batch starting at `batch[0]` (not CRC-covered).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets the partition leader epoch (not CRC-covered).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Stamps log-append time on a batch split into its `head` (the first
/// [`HEADER_SIZE`] bytes) and `body` (the records): sets the timestamp-type
/// bit and `maxTimestamp`, then recomputes the CRC over both.
pub fn set_log_append_time(head: &mut [u8], body: &[u8], now_ms: i64) {
    let attributes = read_i16(head, OFFSET_ATTRIBUTES) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
    head[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    head[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[OFFSET_ATTRIBUTES..HEADER_SIZE]), body);
    head[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

fn read_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    /// Encodes `count` records (keys `k{i}`, values of `value_len` bytes) as one batch.
    pub(crate) fn encode_batch(count: usize, value_len: usize, timestamp: i64, compression: Compression) -> Vec<u8> {
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
                timestamp: timestamp + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; value_len])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression };
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encoding test records");
        buf.to_vec()
    }

    #[test]
    fn valid_batches_pass_and_report_their_headers() {
        let mut bytes = encode_batch(3, 10, 1000, Compression::None);
        bytes.extend(encode_batch(2, 10, 2000, Compression::Lz4));
        let batches = validate_batches(&bytes, 1 << 20).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].header.records_count, 3);
        assert_eq!(batches[0].header.max_timestamp, 1002);
        assert_eq!(batches[1].position, batches[0].header.size());
        assert_eq!(batches[1].header.compression(), 3);
    }

    #[test]
    fn a_flipped_byte_is_a_crc_mismatch() {
        let mut bytes = encode_batch(3, 10, 1000, Compression::None);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(matches!(validate_batches(&bytes, 1 << 20), Err(LogError::CrcMismatch { .. })));
    }

    #[test]
    fn limits_magic_and_truncation_are_refused() {
        let bytes = encode_batch(3, 100, 1000, Compression::None);
        assert!(matches!(validate_batches(&bytes, 50), Err(LogError::RecordBatchTooLarge { max: 50, .. })));
        assert!(matches!(validate_batches(&bytes[..bytes.len() - 1], 1 << 20), Err(LogError::CorruptBatch { .. })));
        assert!(matches!(validate_batches(&bytes[..30], 1 << 20), Err(LogError::CorruptBatch { .. })));
        let mut old = bytes.clone();
        old[OFFSET_MAGIC] = 1;
        assert!(matches!(validate_batches(&old, 1 << 20), Err(LogError::UnsupportedMagic { magic: 1 })));
        assert!(validate_batches(&[], 1 << 20).is_err());
    }

    #[test]
    fn record_structure_inside_a_crc_correct_batch_is_checked() {
        let mut bytes = encode_batch(3, 10, 1000, Compression::None);
        // Claim four records while holding three, with a valid CRC.
        bytes[OFFSET_RECORDS_COUNT..OFFSET_RECORDS_COUNT + 4].copy_from_slice(&4i32.to_be_bytes());
        bytes[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4].copy_from_slice(&3i32.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[OFFSET_ATTRIBUTES..]);
        bytes[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate_batches(&bytes, 1 << 20), Err(LogError::CorruptBatch { .. })));
    }

    /// Re-stamps the CRC after a test edits a batch.
    fn fix_crc(bytes: &mut [u8]) {
        let crc = crc32c::crc32c(&bytes[OFFSET_ATTRIBUTES..]);
        bytes[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn header_counts_and_keys_a_decoder_would_trust_are_checked() {
        // One record: len, attrs, ts delta, offset delta, key -1, value -1, then headers.
        let record = |headers: &[u8]| {
            let mut body = vec![0u8, 0, 0, 1, 1];
            body.extend_from_slice(headers);
            let mut r = vec![(body.len() as u8) << 1];
            r.extend(body);
            r
        };
        let ok = record(&[2, 2, b'k', 2, b'v']); // one header k=v
        assert!(check_records(&ok, 1).is_ok());
        // 2^31-1 headers claimed in a few bytes (zigzag varint).
        let absurd = record(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(check_records(&absurd, 1), Err(LogError::CorruptBatch { .. })));
        let not_utf8 = record(&[2, 2, 0xff, 2, b'v']);
        assert!(matches!(check_records(&not_utf8, 1), Err(LogError::CorruptBatch { .. })));
        let mut batch = encode_batch(1, 4, 0, Compression::None);
        batch.truncate(HEADER_SIZE);
        batch.extend_from_slice(&absurd);
        let len = (batch.len() - LOG_OVERHEAD) as i32;
        batch[OFFSET_LENGTH..OFFSET_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        fix_crc(&mut batch);
        assert!(matches!(validate_batches(&batch, 1 << 20), Err(LogError::CorruptBatch { .. })), "refused on produce");
    }

    #[test]
    fn log_append_time_keeps_the_crc_valid() {
        let mut bytes = encode_batch(2, 10, 1000, Compression::None);
        set_base_offset(&mut bytes, 42);
        set_partition_leader_epoch(&mut bytes, 7);
        let (head, body) = bytes.split_at_mut(HEADER_SIZE);
        set_log_append_time(head, body, 99_999);
        let header = check_batch(&bytes, 1 << 20).unwrap();
        assert_eq!((header.base_offset, header.partition_leader_epoch, header.max_timestamp), (42, 7, 99_999));
        assert_ne!(header.attributes & ATTR_TIMESTAMP_TYPE_LOG_APPEND, 0);
    }
}
