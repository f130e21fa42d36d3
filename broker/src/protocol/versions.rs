//! The APIs Strom serves and the version range of each, as advertised in
//! ApiVersions. Ranges follow what current clients use (Java 4.x,
//! librdkafka 2.x, franz-go) and stop before versions that need features not
//! built yet (topic ids in Produce/Fetch, transactions).

use kafka_protocol::messages::ApiKey;

/// (API, lowest version, highest version) for every API served.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    // Produce from 0 as Kafka 4 advertises it (KAFKA-18659); v0-2 bodies carry
    // old message formats, refused per partition with UNSUPPORTED_FOR_MESSAGE_FORMAT.
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // v0-5: idempotent producers and KIP-360 epoch bumps; v6 adds 2PC (KIP-939).
    (ApiKey::InitProducerId, 0, 5),
    // The classic group protocol (crate::group). OffsetCommit/OffsetFetch stop
    // at v9 (v10 names topics by id); ConsumerGroupHeartbeat (KIP-848) is not
    // served, so clients keep to group.protocol=classic.
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

/// The advertised version range of `api`, if it is served at all.
pub fn advertised_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|(k, _, _)| *k == api).map(|(_, lo, hi)| (*lo, *hi))
}

/// The versions of `api` actually answered: the advertised range less what the
/// codec cannot decode (Produce v0-2, whose message formats Kafka 4 dropped).
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    let (lo, hi) = advertised_range(api)?;
    Some((lo.max(api.valid_versions().min), hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Message;

    #[test]
    fn every_advertised_range_is_within_what_the_codec_knows() {
        for (api, lo, hi) in SUPPORTED_APIS {
            let known = api.valid_versions();
            assert!(*hi <= known.max, "{api:?} {lo}..{hi} vs {known}");
            let (served_lo, served_hi) = supported_range(*api).unwrap();
            assert!(known.min <= served_lo && served_hi == *hi, "{api:?}");
            if *api != ApiKey::Produce {
                assert_eq!(served_lo, *lo, "{api:?}: only Produce advertises undecodable versions");
            }
        }
        // The ApiVersions request itself must be understood at every version clients try first.
        assert_eq!(supported_range(ApiKey::ApiVersions), Some((0, 4)));
        let _ = kafka_protocol::messages::ApiVersionsRequest::VERSIONS;
    }

    #[test]
    fn kip_848_group_heartbeat_is_not_advertised() {
        // Absent, the Java 4.x client refuses group.protocol=consumer with
        // UnsupportedVersionException and works with group.protocol=classic.
        assert_eq!(advertised_range(ApiKey::ConsumerGroupHeartbeat), None);
        assert_eq!(advertised_range(ApiKey::ConsumerGroupDescribe), None);
        // The classic protocol at the versions current clients use.
        assert_eq!(advertised_range(ApiKey::JoinGroup), Some((0, 9)));
        assert_eq!(advertised_range(ApiKey::OffsetCommit), Some((2, 9)));
        assert_eq!(advertised_range(ApiKey::OffsetFetch), Some((1, 9)));
    }
}
