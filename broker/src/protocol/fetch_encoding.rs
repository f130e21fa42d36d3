//! Fetch responses encoded around record batches that stay in their files.
//!
//! The `kafka-protocol` crate encodes a message into one buffer, so every
//! record byte would be copied into it. This encoder writes the same bytes
//! for the versions Strom serves (4–12), but leaves each partition's records
//! as a [`Chunk::File`] that the connection sends with `sendfile(2)`. The
//! tests check it byte for byte against the crate's encoder.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;

use super::outgoing::{Chunk, Outgoing};
use crate::log::FileRecords;

/// Versions this encoder writes (the Fetch versions Strom serves).
pub const VERSIONS: std::ops::RangeInclusive<i16> = 4..=12;

/// Why a fetch response could not be encoded; a bug, not input.
#[derive(Debug, thiserror::Error)]
pub enum FetchEncodeError {
    /// The version is outside [`VERSIONS`].
    #[error("fetch response version {0} is not encoded here (4..=12)")]
    Version(i16),
    /// `files` does not have one entry per partition of the response.
    #[error("fetch response has {partitions} partitions but {files} file ranges were given")]
    FileCount { partitions: usize, files: usize },
    /// A field cannot be written at this version.
    #[error("fetch response v{version}: {reason}")]
    Field { version: i16, reason: String },
}

/// Encodes `response` at `version` as a whole frame (size prefix, header,
/// body). `files` holds, per partition in the response's order, the batches
/// to send in place of that partition's `records` field (`None`: the field
/// as it is).
pub fn encode(
    correlation_id: i32,
    version: i16,
    response: &FetchResponse,
    files: &[Option<FileRecords>],
) -> Result<Outgoing, FetchEncodeError> {
    if !VERSIONS.contains(&version) {
        return Err(FetchEncodeError::Version(version));
    }
    let partitions: usize = response.responses.iter().map(|t| t.partitions.len()).sum();
    if partitions != files.len() {
        return Err(FetchEncodeError::FileCount { partitions, files: files.len() });
    }
    let field = |reason: String| FetchEncodeError::Field { version, reason };
    let flexible = version >= 12;
    let mut w = ChunkWriter::new(flexible);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut w.buf, ApiKey::Fetch.response_header_version(version))
        .map_err(|e| field(format!("header: {e}")))?;
    w.buf.put_i32(response.throttle_time_ms);
    if version >= 7 {
        w.buf.put_i16(response.error_code);
        w.buf.put_i32(response.session_id);
    } else if response.session_id != 0 {
        return Err(field("session_id needs version 7".into()));
    }
    w.array_len(response.responses.len());
    let mut files = files.iter();
    for topic in &response.responses {
        w.string(topic.topic.as_bytes());
        w.array_len(topic.partitions.len());
        for partition in &topic.partitions {
            let file = files.next().and_then(Option::as_ref);
            encode_partition(&mut w, version, partition, file).map_err(field)?;
        }
        w.no_tagged_fields(topic.unknown_tagged_fields.len()).map_err(field)?;
    }
    w.no_tagged_fields(response.unknown_tagged_fields.len()).map_err(field)?;
    Ok(w.finish())
}

fn encode_partition(
    w: &mut ChunkWriter,
    version: i16,
    p: &PartitionData,
    file: Option<&FileRecords>,
) -> Result<(), String> {
    w.buf.put_i32(p.partition_index);
    w.buf.put_i16(p.error_code);
    w.buf.put_i64(p.high_watermark);
    w.buf.put_i64(p.last_stable_offset);
    if version >= 5 {
        w.buf.put_i64(p.log_start_offset);
    }
    match &p.aborted_transactions {
        None => w.null(),
        Some(aborted) => {
            w.array_len(aborted.len());
            for t in aborted {
                t.encode(&mut w.buf, version).map_err(|e| format!("aborted transaction: {e}"))?;
            }
        }
    }
    if version >= 11 {
        w.buf.put_i32(p.preferred_read_replica.0);
    } else if p.preferred_read_replica.0 != -1 {
        return Err("preferred_read_replica needs version 11".into());
    }
    match (file, &p.records) {
        (Some(file), _) => {
            w.bytes_len(file.len());
            w.file(file.clone());
        }
        (None, Some(bytes)) => {
            w.bytes_len(bytes.len());
            w.buf.put_slice(bytes);
        }
        (None, None) => w.null(),
    }
    if w.flexible {
        if !p.unknown_tagged_fields.is_empty() {
            return Err("unknown tagged fields on a partition are not encoded".into());
        }
        let diverging = p.diverging_epoch != Default::default();
        let leader = p.current_leader != Default::default();
        let snapshot = p.snapshot_id != Default::default();
        w.uvarint([diverging, leader, snapshot].iter().filter(|set| **set).count());
        if diverging {
            w.tagged(0, &p.diverging_epoch, version)?;
        }
        if leader {
            w.tagged(1, &p.current_leader, version)?;
        }
        if snapshot {
            w.tagged(2, &p.snapshot_id, version)?;
        }
    }
    Ok(())
}

/// Writes fields into the current buffer and cuts it where file ranges go.
struct ChunkWriter {
    flexible: bool,
    chunks: Vec<Chunk>,
    buf: BytesMut,
}

impl ChunkWriter {
    fn new(flexible: bool) -> Self {
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0); // the frame size, set by finish()
        ChunkWriter { flexible, chunks: Vec::new(), buf }
    }

    fn uvarint(&mut self, value: usize) {
        let mut v = value as u64;
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// An array's length (compact arrays and strings count one more).
    fn array_len(&mut self, len: usize) {
        if self.flexible { self.uvarint(len + 1) } else { self.buf.put_i32(len as i32) }
    }

    fn bytes_len(&mut self, len: usize) {
        self.array_len(len);
    }

    /// A null array or byte string.
    fn null(&mut self) {
        if self.flexible { self.uvarint(0) } else { self.buf.put_i32(-1) }
    }

    fn string(&mut self, s: &[u8]) {
        if self.flexible {
            self.uvarint(s.len() + 1)
        } else {
            self.buf.put_i16(s.len() as i16)
        }
        self.buf.put_slice(s);
    }

    fn no_tagged_fields(&mut self, unknown: usize) -> Result<(), String> {
        if unknown > 0 {
            return Err("unknown tagged fields are not encoded".into());
        }
        if self.flexible {
            self.uvarint(0);
        }
        Ok(())
    }

    fn tagged(&mut self, tag: usize, value: &impl Encodable, version: i16) -> Result<(), String> {
        let size = value.compute_size(version).map_err(|e| format!("tagged field {tag}: {e}"))?;
        self.uvarint(tag);
        self.uvarint(size);
        value.encode(&mut self.buf, version).map_err(|e| format!("tagged field {tag}: {e}"))
    }

    fn file(&mut self, file: FileRecords) {
        let written = self.buf.split().freeze();
        self.chunks.push(Chunk::Bytes(written));
        self.chunks.push(Chunk::File(file));
    }

    fn finish(mut self) -> Outgoing {
        self.chunks.push(Chunk::Bytes(self.buf.split().freeze()));
        let size: usize = self.chunks.iter().map(Chunk::len).sum();
        // The first chunk starts with the 4-byte size placeholder.
        if let Some(Chunk::Bytes(first)) = self.chunks.first_mut() {
            let mut patched = BytesMut::from(&first[..]);
            patched[..4].copy_from_slice(&((size - 4) as i32).to_be_bytes());
            *first = Bytes::from(patched);
        }
        Outgoing::from_chunks(self.chunks)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, ProducerId, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::codec::encode_response;
    use crate::protocol::handlers::Response;

    /// How a generated partition carries its records.
    #[derive(Debug, Clone)]
    enum Records {
        Null,
        InMemory(Vec<u8>),
        InFile(Vec<u8>),
    }

    /// The frame's bytes, file ranges read back from their files.
    fn flatten(frame: &Outgoing) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in frame.chunks() {
            match chunk {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File(f) => out.extend_from_slice(&f.read_to_bytes().expect("range inside the file")),
            }
        }
        out
    }

    /// A file holding `bytes` after some unrelated ones, and the range of `bytes` in it.
    fn file_records(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> FileRecords {
        let path = dir.path().join(name);
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"unrelated leading bytes").unwrap();
        file.write_all(bytes).unwrap();
        file.write_all(b"and trailing ones").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        FileRecords::new(Arc::new(file), path, 23, bytes.len(), 1)
    }

    /// Checks this encoder against the crate's for one response: the crate
    /// gets every file range's bytes in memory.
    fn assert_same_as_crate(version: i16, topics: &[(String, Vec<(PartitionData, Records)>)]) {
        let dir = tempfile::tempdir().unwrap();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut files = Vec::new();
        for (t, (name, partitions)) in topics.iter().enumerate() {
            let (mut ours_p, mut theirs_p) = (Vec::new(), Vec::new());
            for (p, (data, records)) in partitions.iter().enumerate() {
                let (ours_records, file, theirs_records) = match records {
                    Records::Null => (None, None, None),
                    Records::InMemory(b) => (Some(Bytes::from(b.clone())), None, Some(Bytes::from(b.clone()))),
                    Records::InFile(b) => {
                        let file = file_records(&dir, &format!("{t}-{p}.log"), b);
                        (Some(Bytes::new()), Some(file), Some(Bytes::from(b.clone())))
                    }
                };
                ours_p.push(data.clone().with_records(ours_records));
                theirs_p.push(data.clone().with_records(theirs_records));
                files.push(file);
            }
            let topic = TopicName(StrBytes::from_string(name.clone()));
            ours.push(FetchableTopicResponse::default().with_topic(topic.clone()).with_partitions(ours_p));
            theirs.push(FetchableTopicResponse::default().with_topic(topic).with_partitions(theirs_p));
        }
        let ours = FetchResponse::default().with_throttle_time_ms(3).with_responses(ours);
        let theirs = Response::from(ResponseKind::Fetch(
            FetchResponse::default().with_throttle_time_ms(3).with_responses(theirs),
        ));
        let expected = flatten(&encode_response(77, ApiKey::Fetch, version, &theirs).unwrap());
        let frame = encode(77, version, &ours, &files).unwrap();
        assert_eq!(frame.len(), expected.len(), "v{version}: frame length");
        assert_eq!(flatten(&frame), expected, "v{version}: frame bytes");
        let in_files: usize = files.iter().flatten().map(FileRecords::len).sum();
        let sent_from_files: usize =
            frame.chunks().iter().filter_map(|c| if let Chunk::File(f) = c { Some(f.len()) } else { None }).sum();
        assert_eq!(sent_from_files, in_files, "every file range stays a file chunk");
    }

    fn partition(version: i16, index: i32, error: i16, aborted: Option<usize>, leader_hint: bool) -> PartitionData {
        let mut p = PartitionData::default()
            .with_partition_index(index)
            .with_error_code(error)
            .with_high_watermark(1_000 + i64::from(index))
            .with_last_stable_offset(900)
            .with_log_start_offset(if version >= 5 { 7 } else { -1 })
            .with_aborted_transactions(aborted.map(|n| {
                (0..n)
                    .map(|i| AbortedTransaction::default().with_producer_id(ProducerId(i as i64)).with_first_offset(5))
                    .collect()
            }))
            .with_preferred_read_replica(BrokerId(if version >= 11 { 2 } else { -1 }));
        if leader_hint && version >= 12 {
            p = p.with_current_leader(LeaderIdAndEpoch::default().with_leader_id(BrokerId(3)).with_leader_epoch(9));
        }
        p
    }

    fn records() -> impl Strategy<Value = Records> {
        prop_oneof![
            Just(Records::Null),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Records::InMemory),
            proptest::collection::vec(any::<u8>(), 1..300).prop_map(Records::InFile),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any response, at any served version, encodes to the crate's bytes.
        #[test]
        fn matches_the_crate_encoder(
            version in VERSIONS,
            topics in proptest::collection::vec(
                ("[a-z]{1,12}", proptest::collection::vec(
                    (any::<i16>(), proptest::option::of(0usize..3), any::<bool>(), records()), 0..4)),
                0..3),
        ) {
            let topics: Vec<_> = topics
                .into_iter()
                .map(|(name, ps)| {
                    let ps = ps
                        .into_iter()
                        .enumerate()
                        .map(|(i, (error, aborted, hint, records))| {
                            (partition(version, i as i32, error, aborted, hint), records)
                        })
                        .collect();
                    (name, ps)
                })
                .collect();
            assert_same_as_crate(version, &topics);
        }
    }

    #[test]
    fn large_records_in_several_files_across_flexible_and_classic_versions() {
        for version in [4, 11, 12] {
            let topics = vec![
                (
                    "orders".to_string(),
                    vec![
                        (partition(version, 0, 0, Some(0), false), Records::InFile(vec![7; 70_000])),
                        (partition(version, 1, 0, None, true), Records::InFile(vec![9; 200])),
                        (partition(version, 2, 6, None, false), Records::InMemory(Vec::new())),
                    ],
                ),
                (
                    "audit".to_string(),
                    vec![(partition(version, 0, 0, Some(2), false), Records::InFile(vec![1; 16_500]))],
                ),
            ];
            assert_same_as_crate(version, &topics);
        }
    }

    #[test]
    fn refuses_a_mismatched_file_list_and_unserved_versions() {
        let response = FetchResponse::default()
            .with_responses(vec![FetchableTopicResponse::default().with_partitions(vec![PartitionData::default()])]);
        assert!(matches!(encode(1, 12, &response, &[]), Err(FetchEncodeError::FileCount { partitions: 1, files: 0 })));
        assert!(matches!(encode(1, 13, &response, &[None]), Err(FetchEncodeError::Version(13))));
        assert!(matches!(encode(1, 3, &response, &[None]), Err(FetchEncodeError::Version(3))));
    }
}
