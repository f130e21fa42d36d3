//! Kafka's `__consumer_offsets` record formats, byte for byte.
//!
//! A key starts with an `int16` saying which record it is (0 or 1: an offset
//! commit, 2: group metadata); a value starts with an `int16` schema version.
//! Strings are `int16` length + UTF-8, bytes are `int32` length + data,
//! arrays are an `int32` count (the non-flexible encodings). We write
//! OffsetCommitKey (type 1), OffsetCommitValue v3 (v1 when the commit carries
//! an explicit expiry, as Kafka does), GroupMetadataKey (type 2) and
//! GroupMetadataValue v3; we read values v0-v3, so logs written by Kafka load
//! too. A null value is a tombstone and is handled by the caller.
//!
//! Decoding never panics on any input: a short or malformed record is a
//! [`CodecError`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::coordinator_codec::{FieldError, Reader, put_bytes, put_nullable_string, put_string};

/// Key type of an offset commit (0 is the legacy spelling of the same key).
pub const OFFSET_COMMIT_KEY: i16 = 1;
/// Key type of group metadata.
pub const GROUP_METADATA_KEY: i16 = 2;
/// GroupMetadataValue version we write.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// OffsetCommitValue version we write when there is no explicit expiry.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A field could not be read.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A key type this coordinator does not handle (e.g. KIP-848 consumer group records).
    #[error("unknown __consumer_offsets key type {0}")]
    UnknownKeyType(i16),
    /// A value version this coordinator cannot read.
    #[error("unsupported {record} version {version}")]
    UnsupportedVersion { record: &'static str, version: i16 },
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    /// OffsetCommitKey: a committed offset of one partition.
    OffsetCommit { group: String, topic: String, partition: i32 },
    /// GroupMetadataKey: the metadata of one group.
    GroupMetadata { group: String },
}

impl RecordKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::OffsetCommit { group, .. } | RecordKey::GroupMetadata { group } => group,
        }
    }

    /// The key's bytes.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            RecordKey::OffsetCommit { group, topic, partition } => {
                buf.put_i16(OFFSET_COMMIT_KEY);
                put_string(&mut buf, group);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            RecordKey::GroupMetadata { group } => {
                buf.put_i16(GROUP_METADATA_KEY);
                put_string(&mut buf, group);
            }
        }
        buf.freeze()
    }

    /// Decodes a key.
    pub fn decode(bytes: &[u8]) -> Result<RecordKey, CodecError> {
        let mut r = Reader::new(bytes, "record key");
        match r.i16("key type")? {
            0 | OFFSET_COMMIT_KEY => {
                let mut r = r.renamed("OffsetCommitKey");
                let group = r.string("group")?;
                let topic = r.string("topic")?;
                let partition = r.i32("partition")?;
                Ok(RecordKey::OffsetCommit { group, topic, partition })
            }
            GROUP_METADATA_KEY => {
                let mut r = r.renamed("GroupMetadataKey");
                Ok(RecordKey::GroupMetadata { group: r.string("group")? })
            }
            other => Err(CodecError::UnknownKeyType(other)),
        }
    }
}

/// OffsetCommitValue: a committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The committed offset.
    pub offset: i64,
    /// Leader epoch of the last consumed record, -1 when unknown.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: String,
    /// When the commit was made (wall-clock ms).
    pub commit_timestamp: i64,
    /// Explicit expiry (OffsetCommit v2-v4 `retention_time_ms`); stored as value v1.
    pub expire_timestamp: Option<i64>,
}

impl OffsetCommitValue {
    /// The value's bytes: v1 with an expiry, v3 otherwise (as Kafka writes them).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self.expire_timestamp {
            Some(expire) => {
                buf.put_i16(1);
                buf.put_i64(self.offset);
                put_string(&mut buf, &self.metadata);
                buf.put_i64(self.commit_timestamp);
                buf.put_i64(expire);
            }
            None => {
                buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
                buf.put_i64(self.offset);
                buf.put_i32(self.leader_epoch);
                put_string(&mut buf, &self.metadata);
                buf.put_i64(self.commit_timestamp);
            }
        }
        buf.freeze()
    }

    /// Decodes a value of version 0 to 3.
    pub fn decode(bytes: &[u8]) -> Result<OffsetCommitValue, CodecError> {
        let mut r = Reader::new(bytes, "OffsetCommitValue");
        let version = r.i16("version")?;
        if !(0..=3).contains(&version) {
            return Err(CodecError::UnsupportedVersion { record: "OffsetCommitValue", version });
        }
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 { r.i32("leaderEpoch")? } else { -1 };
        let metadata = r.string("metadata")?;
        let commit_timestamp = r.i64("commitTimestamp")?;
        let expire_timestamp = if version == 1 { Some(r.i64("expireTimestamp")?).filter(|t| *t >= 0) } else { None };
        Ok(OffsetCommitValue { offset, leader_epoch, metadata, commit_timestamp, expire_timestamp })
    }
}

/// GroupMetadataValue: a classic group's generation, protocol, leader and members.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMetadataValue {
    /// Protocol type ("consumer", "connect", ...; "" for none).
    pub protocol_type: String,
    /// Generation id.
    pub generation: i32,
    /// Selected protocol (assignor), if any.
    pub protocol: Option<String>,
    /// Leader's member id, if any.
    pub leader: Option<String>,
    /// When the group entered its current state (wall-clock ms), -1 when unknown.
    pub current_state_timestamp: i64,
    /// Members with their subscription (metadata of the selected protocol) and assignment.
    pub members: Vec<MemberMetadata>,
}

/// One member inside [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout (ms).
    pub rebalance_timeout: i32,
    /// Session timeout (ms).
    pub session_timeout: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl GroupMetadataValue {
    /// The value's bytes, version 3.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_string(&mut buf, &m.member_id);
            put_nullable_string(&mut buf, m.group_instance_id.as_deref());
            put_string(&mut buf, &m.client_id);
            put_string(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout);
            buf.put_i32(m.session_timeout);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }

    /// Decodes a value of version 0 to 3.
    pub fn decode(bytes: &[u8]) -> Result<GroupMetadataValue, CodecError> {
        let mut r = Reader::new(bytes, "GroupMetadataValue");
        let version = r.i16("version")?;
        if !(0..=3).contains(&version) {
            return Err(CodecError::UnsupportedVersion { record: "GroupMetadataValue", version });
        }
        let protocol_type = r.string("protocolType")?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let current_state_timestamp = if version >= 2 { r.i64("currentStateTimestamp")? } else { -1 };
        let count = r.count("members")?;
        let mut members = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let member_id = r.string("memberId")?;
            let group_instance_id = if version >= 3 { r.nullable_string("groupInstanceId")? } else { None };
            let client_id = r.string("clientId")?;
            let client_host = r.string("clientHost")?;
            let (rebalance_timeout, session_timeout) = if version >= 1 {
                let rebalance = r.i32("rebalanceTimeout")?;
                (rebalance, r.i32("sessionTimeout")?)
            } else {
                // v0 has no rebalance timeout; Kafka uses the session timeout.
                let session = r.i32("sessionTimeout")?;
                (session, session)
            };
            let subscription = Bytes::copy_from_slice(r.bytes("subscription")?);
            let assignment = Bytes::copy_from_slice(r.bytes("assignment")?);
            members.push(MemberMetadata {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            });
        }
        Ok(GroupMetadataValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: &str, instance: Option<&str>) -> MemberMetadata {
        MemberMetadata {
            member_id: id.into(),
            group_instance_id: instance.map(Into::into),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: 300_000,
            session_timeout: 45_000,
            subscription: Bytes::from_static(&[0, 3, 0, 0, 0, 1, 0, 1, b't']),
            assignment: Bytes::from_static(&[0, 3, 0, 0, 0, 0]),
        }
    }

    #[test]
    fn offset_commit_key_is_kafkas_bytes() {
        let key = RecordKey::OffsetCommit { group: "g".into(), topic: "t".into(), partition: 7 };
        assert_eq!(&key.encode()[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(RecordKey::decode(&key.encode()), Ok(key));
        // Key type 0 is the legacy spelling of the same key.
        assert_eq!(
            RecordKey::decode(&[0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]),
            Ok(RecordKey::OffsetCommit { group: "g".into(), topic: "t".into(), partition: 7 })
        );
    }

    #[test]
    fn group_metadata_key_is_kafkas_bytes() {
        let key = RecordKey::GroupMetadata { group: "grp".into() };
        assert_eq!(&key.encode()[..], &[0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(RecordKey::decode(&key.encode()), Ok(key));
        assert_eq!(RecordKey::decode(&[0, 5, 0, 0]), Err(CodecError::UnknownKeyType(5)));
    }

    #[test]
    fn offset_commit_value_v3_is_kafkas_bytes() {
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 1000,
            expire_timestamp: None,
        };
        let bytes = v.encode();
        let mut expected = vec![0, 3];
        expected.extend_from_slice(&42i64.to_be_bytes());
        expected.extend_from_slice(&3i32.to_be_bytes());
        expected.extend_from_slice(&[0, 1, b'm']);
        expected.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(OffsetCommitValue::decode(&bytes), Ok(v));
    }

    #[test]
    fn offset_commit_value_with_expiry_is_written_as_v1() {
        let v = OffsetCommitValue {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 10,
            expire_timestamp: Some(99),
        };
        let bytes = v.encode();
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(bytes.len(), 2 + 8 + 2 + 8 + 8);
        assert_eq!(OffsetCommitValue::decode(&bytes), Ok(v));
    }

    #[test]
    fn old_offset_commit_values_decode() {
        // v0 and v2: offset, metadata, commit timestamp.
        for version in [0i16, 2] {
            let mut b = version.to_be_bytes().to_vec();
            b.extend_from_slice(&9i64.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&77i64.to_be_bytes());
            let v = OffsetCommitValue::decode(&b).unwrap();
            assert_eq!((v.offset, v.leader_epoch, v.commit_timestamp, v.expire_timestamp), (9, -1, 77, None));
        }
        assert!(matches!(
            OffsetCommitValue::decode(&[0, 4, 0]),
            Err(CodecError::UnsupportedVersion { version: 4, .. })
        ));
    }

    #[test]
    fn group_metadata_value_round_trips() {
        let v = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp: 123,
            members: vec![member("m-1", None), member("m-2", Some("instance-2"))],
        };
        let bytes = v.encode();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(GroupMetadataValue::decode(&bytes), Ok(v));
        let empty = GroupMetadataValue { current_state_timestamp: -1, ..Default::default() };
        assert_eq!(GroupMetadataValue::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn group_metadata_value_v0_has_no_rebalance_timeout() {
        let mut b = vec![0, 0];
        b.extend_from_slice(&[0, 8]);
        b.extend_from_slice(b"consumer");
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // null protocol, null leader
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&[0, 1, b'm', 0, 1, b'c', 0, 1, b'h']);
        b.extend_from_slice(&10_000i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        let v = GroupMetadataValue::decode(&b).unwrap();
        assert_eq!(v.members[0].session_timeout, 10_000);
        assert_eq!(v.members[0].rebalance_timeout, 10_000);
        assert_eq!(v.current_state_timestamp, -1);
        assert_eq!(v.protocol, None);
    }

    #[test]
    fn truncated_records_are_errors() {
        let v = GroupMetadataValue { members: vec![member("m", None)], ..Default::default() }.encode();
        for cut in 0..v.len() {
            assert!(GroupMetadataValue::decode(&v[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(RecordKey::decode(&[0, 1, 0, 9, b'x']), Err(CodecError::Field(FieldError::Truncated { .. }))));
        assert!(matches!(
            RecordKey::decode(&[0, 2, 0, 2, 0xff, 0xfe]),
            Err(CodecError::Field(FieldError::InvalidUtf8 { field: "group", .. }))
        ));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = RecordKey::decode(&bytes);
            let _ = OffsetCommitValue::decode(&bytes);
            let _ = GroupMetadataValue::decode(&bytes);
        }

        #[test]
        fn offset_commits_round_trip(
            group in "[a-z0-9._-]{0,40}",
            topic in "[a-zA-Z0-9._-]{1,60}",
            partition in any::<i32>(),
            offset in any::<i64>(),
            leader_epoch in any::<i32>(),
            metadata in ".{0,50}",
            commit_timestamp in any::<i64>(),
        ) {
            let key = RecordKey::OffsetCommit { group, topic, partition };
            prop_assert_eq!(RecordKey::decode(&key.encode()), Ok(key));
            let v = OffsetCommitValue { offset, leader_epoch, metadata, commit_timestamp, expire_timestamp: None };
            prop_assert_eq!(OffsetCommitValue::decode(&v.encode()), Ok(v));
        }
    }
}
