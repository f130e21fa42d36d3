//! The APIs Strom serves and the version range of each, as advertised in
//! ApiVersions. Ranges follow what current clients use (Java 4.x,
//! librdkafka 2.x, franz-go) and stop before versions that need features not
//! built yet (topic ids in Produce/Fetch, transactions).

use kafka_protocol::messages::ApiKey;

/// (API, lowest version, highest version) for every API served.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    // Produce from 0 as Kafka 4 advertises it (KAFKA-18659); v0-2 bodies carry
    // old message formats, refused per partition with UNSUPPORTED_FOR_MESSAGE_FORMAT.
    // v12 is transaction.version 2's (the partition is added to the
    // transaction by the produce); v13 names topics by id.
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    // Consumers' truncation check (KIP-320); v0-1 carry no current epoch.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // kafka-metadata-quorum.sh: answered from the active controller's view.
    (ApiKey::DescribeQuorum, 0, 2),
    // v0-5: idempotent producers and KIP-360 epoch bumps; v6 adds 2PC (KIP-939).
    (ApiKey::InitProducerId, 0, 5),
    // Consumer groups (crate::group): the classic protocol and KIP-848's
    // (ConsumerGroupHeartbeat, ConsumerGroupDescribe; v1 lets the member name
    // itself). OffsetCommit/OffsetFetch stop at v9 (v10 names topics by id).
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
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // The transaction coordinator (crate::txn): AddPartitionsToTxn in its
    // client form (v4+ is KIP-890's broker batch; partition leaders ask over
    // the internal plane instead), EndTxn v5 is transaction.version 2 (an
    // epoch bump per transaction).
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // v4 adds TRANSACTION_ABORTABLE, v5 is transaction.version 2 (the
    // group is added to the transaction by the commit).
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeProducers, 0, 0),
    // Client security: SASL (answered by the connection, see
    // protocol::sasl) and SCRAM users (KIP-554).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // kafka-acls.sh and the admin clients (auth::acl); v0 has no pattern type.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // Client quotas (KIP-546), kept in the controller image (crate::quota).
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// The first version of each API that only transaction.version 2 clients
/// use: advertised only when that level is finalized, and served with
/// KIP-890 part 2 semantics (see `handlers::api_versions`).
pub const TV2_MIN_VERSIONS: &[(ApiKey, i16)] =
    &[(ApiKey::Produce, 12), (ApiKey::EndTxn, 5), (ApiKey::TxnOffsetCommit, 5)];

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

    /// The Strom column of docs/KAFKA-APIS.md by API key: `Some((lo, hi))`
    /// for a range, `None` for "—".
    fn documented_ranges() -> Vec<(i16, Option<(i16, i16)>)> {
        const TABLE: &str = include_str!("../../../docs/KAFKA-APIS.md");
        let range = |cell: &str| -> Option<(i16, i16)> {
            let (lo, hi) = cell.split_once('–')?;
            Some((lo.parse().ok()?, hi.parse().ok()?))
        };
        TABLE
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let key: i16 = cells.get(2)?.parse().ok()?;
                let strom = *cells.get(4)?;
                let parsed = range(strom);
                assert!(parsed.is_some() || strom == "—", "docs/KAFKA-APIS.md: bad Strom cell {strom:?} in {line}");
                Some((key, parsed))
            })
            .collect()
    }

    #[test]
    fn the_api_table_in_docs_agrees_with_what_is_served() {
        let documented = documented_ranges();
        assert!(documented.len() > 60, "docs/KAFKA-APIS.md lists every client API of Kafka 4.3");
        for (key, range) in &documented {
            let Ok(api) = ApiKey::try_from(*key) else {
                // Newer than the codec: it cannot be served.
                assert_eq!(*range, None, "docs/KAFKA-APIS.md: key {key} is unknown to the codec, so not served");
                continue;
            };
            assert_eq!(
                advertised_range(api),
                *range,
                "{api:?}: docs/KAFKA-APIS.md's Strom column must match SUPPORTED_APIS (update the table's row)"
            );
        }
        for (api, _, _) in SUPPORTED_APIS {
            assert!(
                documented.iter().any(|(key, _)| *key == *api as i16),
                "{api:?} is served but has no row in docs/KAFKA-APIS.md"
            );
        }
    }

    #[test]
    fn kip_848_and_classic_group_apis_are_advertised() {
        // The Java 4.x client uses group.protocol=consumer only when the broker serves these.
        assert_eq!(advertised_range(ApiKey::ConsumerGroupHeartbeat), Some((0, 1)));
        assert_eq!(advertised_range(ApiKey::ConsumerGroupDescribe), Some((0, 1)));
        // The classic protocol at the versions current clients use.
        assert_eq!(advertised_range(ApiKey::JoinGroup), Some((0, 9)));
        assert_eq!(advertised_range(ApiKey::OffsetCommit), Some((2, 9)));
        assert_eq!(advertised_range(ApiKey::OffsetFetch), Some((1, 9)));
    }
}
