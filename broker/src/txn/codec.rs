//! Kafka's `__transaction_state` record formats, byte for byte.
//!
//! The key is `TransactionLogKey` v0: an `int16` version (0) and the
//! transactional id as an `int16`-length string. The value is
//! `TransactionLogValue`, version-prefixed: v0 is the classic encoding
//! (`int32` array counts, `int16` string lengths); v1 is Kafka's first
//! flexible version (compact arrays and strings with unsigned-varint
//! lengths, tagged fields: 0 `PreviousProducerId`, 1 `NextProducerId`,
//! 2 `ClientTransactionVersion`). Kafka writes v0 while `transaction.version`
//! is 0 — the level Strom runs at — and v1 from level 1; we write the
//! version asked for and read both, so a log written by Kafka loads too. A
//! null value is a tombstone and is handled by the caller.
//!
//! Decoding never panics on any input: a short or malformed record is a
//! [`CodecError`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};

use super::state::TxnState;
use crate::coordinator_codec::{FieldError, Reader, put_string, put_uvarint};

/// `TransactionLogKey` version we write (the only one).
pub const KEY_VERSION: i16 = 0;

/// A `__transaction_state` record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A field could not be read.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A key or value version outside what Kafka defines (key: 0; value: 0-1).
    #[error("unsupported {record} version {version} (supported: {supported})")]
    UnsupportedVersion { record: &'static str, version: i16, supported: &'static str },
    /// A transaction status id outside Kafka's 0-7.
    #[error("unknown transaction status id {0} (Kafka defines 0-7)")]
    UnknownState(i8),
}

/// Encodes the key of `transactional_id`'s record.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(KEY_VERSION);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

/// Decodes a key into its transactional id.
pub fn decode_key(bytes: &[u8]) -> Result<String, CodecError> {
    let mut r = Reader::new(bytes, "TransactionLogKey");
    let version = r.i16("version")?;
    if version != KEY_VERSION {
        return Err(CodecError::UnsupportedVersion { record: "TransactionLogKey", version, supported: "0" });
    }
    Ok(r.string("transactionalId")?)
}

/// `TransactionLogValue`: the persisted state of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    /// The producer id in use.
    pub producer_id: i64,
    /// The producer id of the last committed transaction (v1 tag 0; -1: none).
    pub previous_producer_id: i64,
    /// The next producer id handed to the client (v1 tag 1; -1: none).
    pub next_producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// Partitions in the transaction, by topic (empty in Empty, Complete*).
    pub partitions: BTreeMap<String, BTreeSet<i32>>,
    /// When the record last changed (wall-clock ms).
    pub last_update_ms: i64,
    /// When the transaction started (wall-clock ms), -1 when none is open.
    pub start_ms: i64,
    /// The client's transaction version (v1 tag 2; 0 before).
    pub client_transaction_version: i16,
}

impl TxnRecord {
    /// The value's bytes in `version` (0 or 1; anything above 1 writes 1).
    ///
    /// As Kafka does, an Empty transaction writes a null partition list.
    pub fn encode(&self, version: i16) -> Bytes {
        let flexible = version >= 1;
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i16(if flexible { 1 } else { 0 });
        buf.put_i64(self.producer_id);
        buf.put_i16(self.producer_epoch);
        buf.put_i32(self.timeout_ms);
        buf.put_i8(self.state.id());
        let partitions = (self.state != TxnState::Empty).then_some(&self.partitions);
        match (partitions, flexible) {
            (None, false) => buf.put_i32(-1),
            (None, true) => put_uvarint(&mut buf, 0),
            (Some(p), false) => {
                buf.put_i32(p.len() as i32);
                for (topic, ids) in p {
                    put_string(&mut buf, topic);
                    buf.put_i32(ids.len() as i32);
                    ids.iter().for_each(|id| buf.put_i32(*id));
                }
            }
            (Some(p), true) => {
                put_uvarint(&mut buf, p.len() as u32 + 1);
                for (topic, ids) in p {
                    put_uvarint(&mut buf, topic.len() as u32 + 1);
                    buf.put_slice(topic.as_bytes());
                    put_uvarint(&mut buf, ids.len() as u32 + 1);
                    ids.iter().for_each(|id| buf.put_i32(*id));
                    put_uvarint(&mut buf, 0); // no tagged fields
                }
            }
        }
        buf.put_i64(self.last_update_ms);
        buf.put_i64(self.start_ms);
        if flexible {
            let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
            if self.previous_producer_id != -1 {
                tags.push((0, self.previous_producer_id.to_be_bytes().to_vec()));
            }
            if self.next_producer_id != -1 {
                tags.push((1, self.next_producer_id.to_be_bytes().to_vec()));
            }
            if self.client_transaction_version != 0 {
                tags.push((2, self.client_transaction_version.to_be_bytes().to_vec()));
            }
            put_uvarint(&mut buf, tags.len() as u32);
            for (tag, data) in tags {
                put_uvarint(&mut buf, tag);
                put_uvarint(&mut buf, data.len() as u32);
                buf.put_slice(&data);
            }
        }
        buf.freeze()
    }

    /// Decodes a value of version 0 or 1.
    pub fn decode(bytes: &[u8]) -> Result<TxnRecord, CodecError> {
        let mut r = Reader::new(bytes, "TransactionLogValue");
        let version = r.i16("version")?;
        if !(0..=1).contains(&version) {
            return Err(CodecError::UnsupportedVersion { record: "TransactionLogValue", version, supported: "0-1" });
        }
        let flexible = version >= 1;
        let producer_id = r.i64("producerId")?;
        let producer_epoch = r.i16("producerEpoch")?;
        let timeout_ms = r.i32("transactionTimeoutMs")?;
        let status = r.i8("transactionStatus")?;
        let state = TxnState::from_id(status).ok_or(CodecError::UnknownState(status))?;
        let count =
            if flexible { r.compact_len("transactionPartitions")? } else { r.len_i32("transactionPartitions")? };
        let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for _ in 0..count.unwrap_or(0) {
            let topic = if flexible {
                let n = r.compact_len("topic")?.ok_or(r.null("topic"))?;
                r.utf8(n, "topic")?
            } else {
                r.string("topic")?
            };
            let n = if flexible { r.compact_len("partitionIds")? } else { r.len_i32("partitionIds")? };
            let n = n.ok_or(r.null("partitionIds"))?;
            let ids = partitions.entry(topic).or_default();
            for _ in 0..n {
                ids.insert(r.i32("partitionId")?);
            }
            if flexible {
                r.skip_tagged_fields()?;
            }
        }
        let last_update_ms = r.i64("transactionLastUpdateTimestampMs")?;
        let start_ms = r.i64("transactionStartTimestampMs")?;
        let mut record = TxnRecord {
            producer_id,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch,
            timeout_ms,
            state,
            // Kafka ignores the partitions of an Empty transaction on load.
            partitions: if state == TxnState::Empty { BTreeMap::new() } else { partitions },
            last_update_ms,
            start_ms,
            client_transaction_version: 0,
        };
        if flexible {
            let tags = r.uvarint("taggedFields")?;
            for _ in 0..tags {
                let tag = r.uvarint("tag")?;
                let size = r.uvarint("tagSize")? as usize;
                let data = r.take(size, "taggedField")?;
                let mut t = Reader::new(data, "TransactionLogValue");
                match tag {
                    0 => record.previous_producer_id = t.i64("previousProducerId")?,
                    1 => record.next_producer_id = t.i64("nextProducerId")?,
                    2 => record.client_transaction_version = t.i16("clientTransactionVersion")?,
                    _ => {} // unknown tags are skipped, as Kafka does
                }
            }
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ongoing() -> TxnRecord {
        let mut partitions = BTreeMap::new();
        partitions.insert("orders".to_string(), BTreeSet::from([0, 2]));
        partitions.insert("t".to_string(), BTreeSet::from([1]));
        TxnRecord {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions,
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn key_is_kafkas_bytes() {
        // TransactionLogKey v0: version 0, then "txn-1" as int16 length + UTF-8.
        assert_eq!(&encode_key("txn-1")[..], &[0, 0, 0, 5, b't', b'x', b'n', b'-', b'1']);
        assert_eq!(decode_key(&encode_key("txn-1")).unwrap(), "txn-1");
        assert_eq!(decode_key(&encode_key("ü")).unwrap(), "ü");
    }

    #[test]
    fn value_v0_is_kafkas_bytes() {
        let mut expected = vec![0u8, 0]; // version 0
        expected.extend(1000i64.to_be_bytes()); // producerId
        expected.extend(3i16.to_be_bytes()); // producerEpoch
        expected.extend(60_000i32.to_be_bytes()); // transactionTimeoutMs
        expected.push(1); // transactionStatus: Ongoing
        expected.extend(2i32.to_be_bytes()); // two topics, in name order
        expected.extend([0, 6]);
        expected.extend(b"orders");
        expected.extend(2i32.to_be_bytes());
        expected.extend(0i32.to_be_bytes());
        expected.extend(2i32.to_be_bytes());
        expected.extend([0, 1, b't']);
        expected.extend(1i32.to_be_bytes());
        expected.extend(1i32.to_be_bytes());
        expected.extend(1_700_000_000_123i64.to_be_bytes()); // lastUpdate
        expected.extend(1_700_000_000_000i64.to_be_bytes()); // start
        assert_eq!(&ongoing().encode(0)[..], &expected[..]);
        assert_eq!(TxnRecord::decode(&expected).unwrap(), ongoing());
    }

    #[test]
    fn value_v1_is_kafkas_flexible_bytes() {
        let mut r = ongoing();
        r.partitions.remove("orders");
        r.previous_producer_id = 999;
        r.client_transaction_version = 2;
        let mut expected = vec![0u8, 1]; // version 1
        expected.extend(1000i64.to_be_bytes());
        expected.extend(3i16.to_be_bytes());
        expected.extend(60_000i32.to_be_bytes());
        expected.push(1);
        expected.push(2); // compact array: 1 topic
        expected.extend([2, b't']); // compact string "t"
        expected.push(2); // compact array: 1 partition
        expected.extend(1i32.to_be_bytes());
        expected.push(0); // the element's tagged fields
        expected.extend(1_700_000_000_123i64.to_be_bytes());
        expected.extend(1_700_000_000_000i64.to_be_bytes());
        expected.push(2); // two tagged fields, in tag order
        expected.extend([0, 8]);
        expected.extend(999i64.to_be_bytes());
        expected.extend([2, 2]);
        expected.extend(2i16.to_be_bytes());
        assert_eq!(&r.encode(1)[..], &expected[..]);
        assert_eq!(TxnRecord::decode(&expected).unwrap(), r);
    }

    #[test]
    fn empty_state_writes_null_partitions() {
        let mut r = ongoing();
        r.state = TxnState::Empty;
        r.start_ms = -1;
        let v0 = r.encode(0);
        assert_eq!(&v0[2 + 8 + 2 + 4 + 1..2 + 8 + 2 + 4 + 1 + 4], &(-1i32).to_be_bytes());
        let back = TxnRecord::decode(&v0).unwrap();
        assert!(back.partitions.is_empty());
        assert_eq!(back.state, TxnState::Empty);
        let back = TxnRecord::decode(&r.encode(1)).unwrap();
        assert!(back.partitions.is_empty());
    }

    #[test]
    fn bad_records_are_errors() {
        assert!(matches!(decode_key(&[0, 1, 0, 0]), Err(CodecError::UnsupportedVersion { .. })));
        assert!(matches!(decode_key(&[0, 0, 0, 9, b'a']), Err(CodecError::Field(FieldError::Truncated { .. }))));
        assert!(matches!(decode_key(&[0, 0, 0xff, 0xff]), Err(CodecError::Field(FieldError::UnexpectedNull { .. }))));
        let v = ongoing().encode(0);
        assert!(matches!(TxnRecord::decode(&v[..v.len() - 1]), Err(CodecError::Field(FieldError::Truncated { .. }))));
        let mut bad_state = v.to_vec();
        bad_state[16] = 9;
        assert_eq!(TxnRecord::decode(&bad_state), Err(CodecError::UnknownState(9)));
        assert!(matches!(TxnRecord::decode(&[0, 7]), Err(CodecError::UnsupportedVersion { version: 7, .. })));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_key(&bytes);
            let _ = TxnRecord::decode(&bytes);
        }

        #[test]
        fn values_round_trip(
            pid in 0i64..i64::MAX, epoch in 0i16..i16::MAX, timeout in 1i32..i32::MAX,
            state in 0i8..8, version in 0i16..2,
            topics in proptest::collection::btree_map("[a-z._-]{1,20}", proptest::collection::btree_set(0i32..1000, 1..5), 0..4),
            update in 0i64..i64::MAX, start in -1i64..i64::MAX,
        ) {
            let state = TxnState::from_id(state).unwrap();
            let record = TxnRecord {
                producer_id: pid, previous_producer_id: -1, next_producer_id: -1, producer_epoch: epoch,
                timeout_ms: timeout, state,
                partitions: if state == TxnState::Empty { BTreeMap::new() } else { topics },
                last_update_ms: update, start_ms: start, client_transaction_version: 0,
            };
            prop_assert_eq!(TxnRecord::decode(&record.encode(version)).unwrap(), record);
        }
    }
}
