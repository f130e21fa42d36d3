//! Counts the topics, partitions and other names a request carries, from
//! its bytes, before the request is decoded (`max.request.partitions`).
//!
//! The `kafka-protocol` decoder sizes each array from the length read off the
//! wire and builds one struct per entry: an empty topic name costs two bytes
//! on the wire and about eighty decoded, so a 50 MB Metadata request of 25
//! million empty names would become two gigabytes of structs, and then as
//! many lookups. This module walks the body of every request that carries a
//! list of topics or partitions along a small description of its layout
//! (only as far as the last counted list), reading array lengths without
//! allocating anything, and refuses the request as soon as:
//!
//! - the entries counted so far pass the limit (each topic, partition,
//!   config name, resource or group named counts one), or
//! - an array claims more entries than the bytes left could hold (a length
//!   is never trusted beyond the bytes remaining).
//!
//! A request refused here is never decoded. Arrays of plain numbers that are
//! not partitions (replica ids) are checked against the bytes left but not
//! counted: their decoded form is no larger than their wire form.
//!
//! Must never: allocate per entry, or read past the frame.

use kafka_protocol::messages::ApiKey;

/// Why a request's entries were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntriesError {
    /// More entries than `max.request.partitions` allows.
    #[error(
        "the request names at least {count} topics, partitions and names; max.request.partitions allows {limit} \
         (split the request, or raise max.request.partitions)"
    )]
    TooMany {
        /// Entries counted when the limit was passed (a lower bound of the total).
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// An array claims more entries than the remaining bytes could hold.
    #[error(
        "an array claims {claimed} entries of at least {entry_bytes} bytes each, but only {remaining} bytes remain"
    )]
    ArrayPastEnd {
        /// Entries the length field claims.
        claimed: u64,
        /// The smallest size one entry can have.
        entry_bytes: usize,
        /// Bytes left in the frame.
        remaining: usize,
    },
    /// A length or field runs past the end of the frame, or is negative.
    #[error("field at byte {at} runs past the end of the request or has an invalid length")]
    Truncated {
        /// Offset in the body where it was read.
        at: usize,
    },
}

/// One field of a request's layout, as far as counting needs it.
#[derive(Debug, Clone)]
enum Field {
    /// Fixed-size ints, booleans and uuids, by total byte count.
    Fixed(usize),
    /// A string or nullable string.
    Str,
    /// Bytes or nullable bytes (records).
    Bytes,
    /// Tagged fields, present only in flexible versions.
    Tags,
    /// An array (or nullable array); `counted` entries count toward the limit.
    Array { counted: bool, entry: Vec<Field> },
}

use Field::{Bytes, Fixed, Str, Tags};

fn counted(entry: Vec<Field>) -> Field {
    Field::Array { counted: true, entry }
}

fn uncounted(entry: Vec<Field>) -> Field {
    Field::Array { counted: false, entry }
}

/// `fields` when `cond` holds, else nothing.
fn when(cond: bool, field: Field) -> Option<Field> {
    cond.then_some(field)
}

fn fields(list: impl IntoIterator<Item = Option<Field>>) -> Vec<Field> {
    list.into_iter().flatten().collect()
}

/// The layout of `api`'s request body at `version` up to its last counted
/// array; `None` for APIs that carry no list of topics or partitions.
fn layout(api: ApiKey, v: i16) -> Option<Vec<Field>> {
    let s = |f: Field| Some(f);
    Some(match api {
        ApiKey::Metadata => fields([s(counted(fields([when(v >= 10, Fixed(16)), s(Str), s(Tags)])))]),
        ApiKey::Produce => {
            let partition = fields([s(Fixed(4)), s(Bytes), s(Tags)]);
            let topic = fields([when(v <= 12, Str), when(v >= 13, Fixed(16)), s(counted(partition)), s(Tags)]);
            fields([s(Str), s(Fixed(2 + 4)), s(counted(topic))])
        }
        ApiKey::Fetch => {
            let partition = fields([
                s(Fixed(4)),
                when(v >= 9, Fixed(4)),
                s(Fixed(8)),
                when(v >= 12, Fixed(4)),
                when(v >= 5, Fixed(8)),
                s(Fixed(4)),
                s(Tags),
            ]);
            let topic = fields([when(v <= 12, Str), when(v >= 13, Fixed(16)), s(counted(partition)), s(Tags)]);
            let forgotten = fields([when(v <= 12, Str), when(v >= 13, Fixed(16)), s(counted(vec![Fixed(4)])), s(Tags)]);
            fields([
                when(v <= 14, Fixed(4)),
                s(Fixed(4 + 4 + 4 + 1)),
                when(v >= 7, Fixed(4 + 4)),
                s(counted(topic)),
                when(v >= 7, counted(forgotten)),
            ])
        }
        ApiKey::ListOffsets => {
            let partition = fields([s(Fixed(4)), when(v >= 4, Fixed(4)), s(Fixed(8)), when(v == 0, Fixed(4)), s(Tags)]);
            let topic = fields([s(Str), s(counted(partition)), s(Tags)]);
            fields([s(Fixed(4)), when(v >= 2, Fixed(1)), s(counted(topic))])
        }
        ApiKey::DescribeLogDirs => {
            let topic = fields([s(Str), s(counted(vec![Fixed(4)])), s(Tags)]);
            fields([s(counted(topic))])
        }
        ApiKey::DescribeQuorum => {
            let topic = fields([s(Str), s(counted(vec![Fixed(4), Tags])), s(Tags)]);
            fields([s(counted(topic))])
        }
        ApiKey::OffsetForLeaderEpoch => {
            let partition = fields([s(Fixed(4)), when(v >= 2, Fixed(4)), s(Fixed(4)), s(Tags)]);
            let topic = fields([s(Str), s(counted(partition)), s(Tags)]);
            fields([when(v >= 3, Fixed(4)), s(counted(topic))])
        }
        ApiKey::CreateTopics => {
            let assignment = vec![Fixed(4), uncounted(vec![Fixed(4)]), Tags];
            let config = vec![Str, Str, Tags];
            let topic = vec![Str, Fixed(4 + 2), counted(assignment), counted(config), Tags];
            vec![counted(topic)]
        }
        ApiKey::DeleteTopics if v >= 6 => vec![counted(vec![Str, Fixed(16), Tags])],
        ApiKey::DeleteTopics => vec![counted(vec![Str])],
        ApiKey::CreatePartitions => {
            let assignment = vec![uncounted(vec![Fixed(4)]), Tags];
            vec![counted(vec![Str, Fixed(4), counted(assignment), Tags])]
        }
        ApiKey::DescribeConfigs => vec![counted(vec![Fixed(1), Str, counted(vec![Str]), Tags])],
        ApiKey::IncrementalAlterConfigs => {
            let config = vec![Str, Fixed(1), Str, Tags];
            vec![counted(vec![Fixed(1), Str, counted(config), Tags])]
        }
        ApiKey::OffsetCommit => {
            let partition = fields([s(Fixed(4 + 8)), when(v >= 6, Fixed(4)), when(v == 1, Fixed(8)), s(Str), s(Tags)]);
            let topic = vec![Str, counted(partition), Tags];
            fields([s(Str), s(Fixed(4)), s(Str), when(v >= 7, Str), when(v <= 4, Fixed(8)), s(counted(topic))])
        }
        ApiKey::OffsetFetch if v >= 8 => {
            let topic = vec![Str, counted(vec![Fixed(4)]), Tags];
            let group = fields([s(Str), when(v >= 9, Str), when(v >= 9, Fixed(4)), s(counted(topic)), s(Tags)]);
            vec![counted(group)]
        }
        ApiKey::OffsetFetch => vec![Str, counted(vec![Str, counted(vec![Fixed(4)]), Tags])],
        ApiKey::OffsetDelete => vec![Str, counted(vec![Str, counted(vec![Fixed(4)])])],
        ApiKey::DeleteGroups | ApiKey::DescribeGroups => vec![counted(vec![Str])],
        // resource type, name, pattern type, principal, host, operation, permission.
        ApiKey::CreateAcls | ApiKey::DeleteAcls => {
            vec![counted(vec![Fixed(1), Str, Fixed(1), Str, Str, Fixed(1), Fixed(1), Tags])]
        }
        ApiKey::WriteTxnMarkers => {
            let topic = vec![Str, counted(vec![Fixed(4)]), Tags];
            vec![counted(vec![Fixed(8 + 2 + 1), counted(topic), Fixed(4), Tags])]
        }
        ApiKey::DescribeProducers => vec![counted(vec![Str, counted(vec![Fixed(4)]), Tags])],
        // Entities, each with its (type, name) parts and (key, value, remove) ops.
        ApiKey::AlterClientQuotas => {
            let part = vec![Str, Str, Tags];
            let op = vec![Str, Fixed(8 + 1), Tags];
            vec![counted(vec![counted(part), counted(op), Tags])]
        }
        ApiKey::DescribeClientQuotas => vec![counted(vec![Str, Fixed(1), Str, Tags])],
        _ => return None,
    })
}

/// Checks the entries of `api`'s request `body` at `version` against `limit`
/// without decoding it. `Ok(n)`: the request names `n` entries (0 for APIs
/// that carry no list).
pub fn check(api: ApiKey, version: i16, body: &[u8], limit: u64) -> Result<u64, EntriesError> {
    let Some(layout) = layout(api, version) else {
        return Ok(0);
    };
    let mut walk = Walk { body, at: 0, flexible: api.request_header_version(version) >= 2, count: 0, limit };
    walk.fields(&layout)?;
    Ok(walk.count)
}

struct Walk<'a> {
    body: &'a [u8],
    at: usize,
    flexible: bool,
    count: u64,
    limit: u64,
}

impl Walk<'_> {
    fn remaining(&self) -> usize {
        self.body.len() - self.at
    }

    fn truncated(&self) -> EntriesError {
        EntriesError::Truncated { at: self.at }
    }

    fn skip(&mut self, n: usize) -> Result<(), EntriesError> {
        if n > self.remaining() {
            return Err(self.truncated());
        }
        self.at += n;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], EntriesError> {
        let bytes: [u8; N] =
            self.body.get(self.at..self.at + N).and_then(|b| b.try_into().ok()).ok_or(self.truncated())?;
        self.at += N;
        Ok(bytes)
    }

    fn uvarint(&mut self) -> Result<u64, EntriesError> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let [b] = self.take::<1>()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.truncated())
    }

    /// A length: `None` for null. Flexible versions store length + 1 as a
    /// varint; others a signed int of `width` bytes with -1 for null.
    fn length(&mut self, width: usize) -> Result<Option<u64>, EntriesError> {
        if self.flexible {
            return Ok(self.uvarint()?.checked_sub(1));
        }
        let n = if width == 2 {
            i64::from(i16::from_be_bytes(self.take()?))
        } else {
            i64::from(i32::from_be_bytes(self.take()?))
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(self.truncated()),
            n => Ok(Some(n as u64)),
        }
    }

    fn skip_len(&mut self, n: u64) -> Result<(), EntriesError> {
        self.skip(usize::try_from(n).map_err(|_| self.truncated())?)
    }

    fn fields(&mut self, fields: &[Field]) -> Result<(), EntriesError> {
        for field in fields {
            match field {
                Fixed(n) => self.skip(*n)?,
                Str => {
                    if let Some(n) = self.length(2)? {
                        self.skip_len(n)?;
                    }
                }
                Bytes => {
                    if let Some(n) = self.length(4)? {
                        self.skip_len(n)?;
                    }
                }
                Tags if self.flexible => {
                    let tags = self.uvarint()?;
                    if tags > self.remaining() as u64 {
                        return Err(self.truncated());
                    }
                    for _ in 0..tags {
                        self.uvarint()?;
                        let size = self.uvarint()?;
                        self.skip_len(size)?;
                    }
                }
                Tags => {}
                Field::Array { counted, entry } => {
                    let Some(n) = self.length(4)? else { continue };
                    if *counted {
                        self.count = self.count.saturating_add(n);
                        if self.count > self.limit {
                            return Err(EntriesError::TooMany { count: self.count, limit: self.limit });
                        }
                    }
                    let entry_bytes = self.min_size(entry).max(1);
                    if n.saturating_mul(entry_bytes as u64) > self.remaining() as u64 {
                        return Err(EntriesError::ArrayPastEnd {
                            claimed: n,
                            entry_bytes,
                            remaining: self.remaining(),
                        });
                    }
                    for _ in 0..n {
                        self.fields(entry)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The fewest bytes `fields` can take on the wire.
    fn min_size(&self, fields: &[Field]) -> usize {
        let (short, int) = if self.flexible { (1, 1) } else { (2, 4) };
        fields
            .iter()
            .map(|f| match f {
                Fixed(n) => *n,
                Str => short,
                Bytes | Field::Array { .. } => int,
                Tags => usize::from(self.flexible),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{FetchRequest, MetadataRequest, ProduceRequest, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn body(message: &impl Encodable, version: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        message.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    #[test]
    fn counts_match_what_the_decoder_would_build_at_every_metadata_version() {
        let topics: Vec<_> =
            (0..7).map(|i| MetadataRequestTopic::default().with_name(Some(name(&format!("t{i}"))))).collect();
        let request = MetadataRequest::default().with_topics(Some(topics));
        for v in 0..=12 {
            assert_eq!(check(ApiKey::Metadata, v, &body(&request, v), 100), Ok(7), "v{v}");
            assert!(matches!(
                check(ApiKey::Metadata, v, &body(&request, v), 6),
                Err(EntriesError::TooMany { limit: 6, .. })
            ));
        }
    }

    #[test]
    fn nested_partitions_are_counted_in_produce_and_fetch() {
        let partitions = |n: i32| (0..n).map(|i| PartitionProduceData::default().with_index(i)).collect::<Vec<_>>();
        let produce = ProduceRequest::default().with_topic_data(vec![
            TopicProduceData::default().with_name(name("a")).with_partition_data(partitions(3)),
            TopicProduceData::default().with_name(name("b")).with_partition_data(partitions(4)),
        ]);
        for v in 3..=11 {
            assert_eq!(check(ApiKey::Produce, v, &body(&produce, v), 100), Ok(2 + 7), "produce v{v}");
        }
        let fetch_partitions = (0..5).map(|i| FetchPartition::default().with_partition(i)).collect();
        let fetch = FetchRequest::default()
            .with_topics(vec![FetchTopic::default().with_topic(name("a")).with_partitions(fetch_partitions)]);
        for v in 4..=12 {
            assert_eq!(check(ApiKey::Fetch, v, &body(&fetch, v), 100), Ok(1 + 5), "fetch v{v}");
        }
        assert_eq!(check(ApiKey::Fetch, 12, &body(&fetch, 12), 5), Err(EntriesError::TooMany { count: 6, limit: 5 }));
    }

    #[test]
    fn a_huge_array_length_is_refused_from_its_length_alone() {
        // Metadata v0 claiming 25 million names, with only a few bytes behind it.
        let claim = 25_000_000i32.to_be_bytes();
        let body = [&claim[..], &[0, 0, 0, 0]].concat();
        assert_eq!(
            check(ApiKey::Metadata, 0, &body, 100_000),
            Err(EntriesError::TooMany { count: 25_000_000, limit: 100_000 })
        );
        // Under the limit, a length the bytes cannot hold is refused before any entry is read.
        assert!(matches!(
            check(ApiKey::Metadata, 0, &body, u64::MAX),
            Err(EntriesError::ArrayPastEnd { claimed: 25_000_000, entry_bytes: 2, remaining: 4 })
        ));
        // Flexible versions: a varint length past the end.
        assert!(matches!(
            check(ApiKey::Metadata, 12, &[0xff, 0xff, 0x01], u64::MAX),
            Err(EntriesError::ArrayPastEnd { .. })
        ));
        assert!(matches!(check(ApiKey::Metadata, 12, &[0xff], u64::MAX), Err(EntriesError::Truncated { .. })));
    }

    type Encoder = Box<dyn Fn(i16) -> Vec<u8>>;

    /// Every served version of every walked API, with entries at each level:
    /// the walk must count exactly what the encoder wrote (a layout error
    /// would refuse valid requests).
    #[test]
    fn every_walked_api_is_counted_exactly_at_every_served_version() {
        use kafka_protocol::messages::*;
        let s = |x: &str| StrBytes::from_string(x.to_string());
        let cases: Vec<(ApiKey, u64, Encoder)> = vec![
            (
                ApiKey::ListOffsets,
                1 + 2,
                Box::new(move |v| {
                    let p = list_offsets_request::ListOffsetsPartition::default();
                    let t = list_offsets_request::ListOffsetsTopic::default()
                        .with_name(name("a"))
                        .with_partitions(vec![p.clone(), p]);
                    body(&ListOffsetsRequest::default().with_topics(vec![t]), v)
                }),
            ),
            (
                ApiKey::DescribeLogDirs,
                1 + 2,
                Box::new(move |v| {
                    let t = describe_log_dirs_request::DescribableLogDirTopic::default()
                        .with_topic(name("a"))
                        .with_partitions(vec![0, 1]);
                    body(&DescribeLogDirsRequest::default().with_topics(Some(vec![t])), v)
                }),
            ),
            (
                ApiKey::DescribeQuorum,
                1 + 2,
                Box::new(move |v| {
                    let p = describe_quorum_request::PartitionData::default();
                    let t = describe_quorum_request::TopicData::default()
                        .with_topic_name(name("a"))
                        .with_partitions(vec![p.clone(), p]);
                    body(&DescribeQuorumRequest::default().with_topics(vec![t]), v)
                }),
            ),
            (
                ApiKey::OffsetForLeaderEpoch,
                1 + 2,
                Box::new(move |v| {
                    let p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
                    let t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(name("a"))
                        .with_partitions(vec![p.clone(), p]);
                    body(&OffsetForLeaderEpochRequest::default().with_topics(vec![t]), v)
                }),
            ),
            (
                ApiKey::CreateTopics,
                1 + 2 + 1,
                Box::new(move |v| {
                    let a = create_topics_request::CreatableReplicaAssignment::default()
                        .with_broker_ids(vec![BrokerId(1), BrokerId(2)]);
                    let c = create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("k"))
                        .with_value(Some(s("v")));
                    let t = create_topics_request::CreatableTopic::default()
                        .with_name(name("a"))
                        .with_assignments(vec![a.clone(), a])
                        .with_configs(vec![c]);
                    body(&CreateTopicsRequest::default().with_topics(vec![t]), v)
                }),
            ),
            (
                ApiKey::DeleteTopics,
                2,
                Box::new(move |v| {
                    let r = if v >= 6 {
                        let t = delete_topics_request::DeleteTopicState::default().with_name(Some(name("a")));
                        DeleteTopicsRequest::default().with_topics(vec![t.clone(), t])
                    } else {
                        DeleteTopicsRequest::default().with_topic_names(vec![name("a"), name("b")])
                    };
                    body(&r, v)
                }),
            ),
            (
                ApiKey::CreatePartitions,
                1 + 1,
                Box::new(move |v| {
                    let a = create_partitions_request::CreatePartitionsAssignment::default()
                        .with_broker_ids(vec![BrokerId(1)]);
                    let t = create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(name("a"))
                        .with_assignments(Some(vec![a]));
                    body(&CreatePartitionsRequest::default().with_topics(vec![t]), v)
                }),
            ),
            (
                ApiKey::DescribeConfigs,
                1 + 2,
                Box::new(move |v| {
                    let r = describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_name(s("a"))
                        .with_configuration_keys(Some(vec![s("x"), s("y")]));
                    body(&DescribeConfigsRequest::default().with_resources(vec![r]), v)
                }),
            ),
            (
                ApiKey::IncrementalAlterConfigs,
                1 + 1,
                Box::new(move |v| {
                    let c = incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("k"))
                        .with_value(Some(s("v")));
                    let r = incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_name(s("a"))
                        .with_configs(vec![c]);
                    body(&IncrementalAlterConfigsRequest::default().with_resources(vec![r]), v)
                }),
            ),
            (
                ApiKey::OffsetCommit,
                1 + 2,
                Box::new(move |v| {
                    let p = offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_committed_metadata(Some(s("m")));
                    let t = offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(name("a"))
                        .with_partitions(vec![p.clone(), p]);
                    body(&OffsetCommitRequest::default().with_group_id(GroupId(s("g"))).with_topics(vec![t]), v)
                }),
            ),
            (
                ApiKey::OffsetFetch,
                0,
                Box::new(move |v| {
                    let r = if v >= 8 {
                        let t = offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(name("a"))
                            .with_partition_indexes(vec![0, 1]);
                        let g = offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("g")))
                            .with_topics(Some(vec![t]));
                        OffsetFetchRequest::default().with_groups(vec![g])
                    } else {
                        let t = offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(name("a"))
                            .with_partition_indexes(vec![0, 1]);
                        OffsetFetchRequest::default().with_group_id(GroupId(s("g"))).with_topics(Some(vec![t]))
                    };
                    body(&r, v)
                }),
            ),
            (
                ApiKey::OffsetDelete,
                1 + 1,
                Box::new(move |v| {
                    let t = offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(name("a"))
                        .with_partitions(vec![Default::default()]);
                    body(&OffsetDeleteRequest::default().with_topics(vec![t]), v)
                }),
            ),
            (
                ApiKey::DeleteGroups,
                2,
                Box::new(move |v| {
                    body(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g")), GroupId(s("h"))]), v)
                }),
            ),
            (
                ApiKey::DescribeGroups,
                1,
                Box::new(move |v| body(&DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]), v)),
            ),
            (
                ApiKey::WriteTxnMarkers,
                2 * (1 + 1 + 2),
                Box::new(move |v| {
                    let t = write_txn_markers_request::WritableTxnMarkerTopic::default()
                        .with_name(name("a"))
                        .with_partition_indexes(vec![0, 1]);
                    let m = write_txn_markers_request::WritableTxnMarker::default()
                        .with_coordinator_epoch(3)
                        .with_topics(vec![t]);
                    body(&WriteTxnMarkersRequest::default().with_markers(vec![m.clone(), m]), v)
                }),
            ),
            (
                ApiKey::DescribeProducers,
                1 + 3,
                Box::new(move |v| {
                    let t = describe_producers_request::TopicRequest::default()
                        .with_name(name("a"))
                        .with_partition_indexes(vec![0, 1, 2]);
                    body(&DescribeProducersRequest::default().with_topics(vec![t]), v)
                }),
            ),
            (
                // 2 entities, each with 2 parts and 3 ops.
                ApiKey::AlterClientQuotas,
                2 * (1 + 2 + 3),
                Box::new(move |v| {
                    let part = alter_client_quotas_request::EntityData::default().with_entity_type(s("user"));
                    let op = alter_client_quotas_request::OpData::default().with_key(s("producer_byte_rate"));
                    let e = alter_client_quotas_request::EntryData::default()
                        .with_entity(vec![part.clone(), part.with_entity_name(Some(s("alice")))])
                        .with_ops(vec![op.clone(), op.clone(), op]);
                    body(
                        &AlterClientQuotasRequest::default().with_entries(vec![e.clone(), e]).with_validate_only(true),
                        v,
                    )
                }),
            ),
            (
                ApiKey::DescribeClientQuotas,
                2,
                Box::new(move |v| {
                    let c = describe_client_quotas_request::ComponentData::default()
                        .with_entity_type(s("user"))
                        .with_match(Some(s("alice")));
                    body(
                        &DescribeClientQuotasRequest::default().with_components(vec![c.clone(), c]).with_strict(true),
                        v,
                    )
                }),
            ),
        ];
        for (api, expected, encode) in cases {
            let (lo, hi) = crate::protocol::versions::supported_range(api).unwrap();
            for v in lo..=hi {
                // OffsetFetch v8+ nests topics in a group: one more entry.
                let expected =
                    if api == ApiKey::OffsetFetch { if v >= 8 { 1 + 1 + 2 } else { 1 + 2 } } else { expected };
                assert_eq!(check(api, v, &encode(v), 1_000), Ok(expected), "{api:?} v{v}");
            }
        }
    }

    #[test]
    fn apis_without_lists_are_not_walked() {
        assert_eq!(check(ApiKey::ApiVersions, 3, &[], 0), Ok(0));
    }
}
