//! ApiVersions: the served APIs and version ranges (KIP-511 fallback aware),
//! and the `transaction.version` feature (KIP-890, KIP-584).
//!
//! Kafka's clients decide on KIP-890 part 2 from the finalized
//! `transaction.version` in this answer (level 2 or more, with a finalized
//! features epoch of 0 or more). Below level 2 the versions that only a
//! transaction.version 2 client uses (EndTxn v5, Produce v12,
//! TxnOffsetCommit v5) are not advertised, so every client keeps to the
//! older protocol.

use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use crate::protocol::handlers::str_bytes;
use crate::protocol::versions::{SUPPORTED_APIS, TV2_MIN_VERSIONS};

/// The feature's name, as Kafka spells it.
pub const TRANSACTION_VERSION: &str = "transaction.version";
/// The highest `transaction.version` Strom implements.
pub const MAX_TRANSACTION_VERSION: i16 = 2;
/// The finalized features epoch advertised (Strom's features change only with a restart).
const FINALIZED_FEATURES_EPOCH: i64 = 0;

/// The ApiVersions answer with `error_code` (0, or 35 UNSUPPORTED_VERSION when
/// the client asked at a version we do not serve: it then retries at ours),
/// for a cluster whose finalized `transaction.version` is `transaction_version`.
pub fn api_versions_response(error_code: i16, transaction_version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED_APIS
                .iter()
                .map(|(api, lo, hi)| {
                    ApiVersion::default()
                        .with_api_key(*api as i16)
                        .with_min_version(*lo)
                        .with_max_version(advertised_max(*api, *hi, transaction_version))
                })
                .collect(),
        )
        .with_supported_features(vec![
            SupportedFeatureKey::default()
                .with_name(str_bytes(TRANSACTION_VERSION))
                .with_min_version(0)
                .with_max_version(MAX_TRANSACTION_VERSION),
        ])
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(vec![
            FinalizedFeatureKey::default()
                .with_name(str_bytes(TRANSACTION_VERSION))
                .with_min_version_level(transaction_version)
                .with_max_version_level(transaction_version),
        ])
}

/// The highest version of `api` to advertise: below transaction.version 2,
/// not the versions reserved to its clients.
fn advertised_max(api: ApiKey, hi: i16, transaction_version: i16) -> i16 {
    match TV2_MIN_VERSIONS.iter().find(|(k, _)| *k == api) {
        Some((_, tv2_from)) if transaction_version < 2 => hi.min(tv2_from - 1),
        _ => hi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max(r: &ApiVersionsResponse, api: ApiKey) -> i16 {
        r.api_keys.iter().find(|k| k.api_key == api as i16).map(|k| k.max_version).unwrap_or(-1)
    }

    #[test]
    fn tv2_versions_are_advertised_only_when_transaction_version_2_is_finalized() {
        let on = api_versions_response(0, 2);
        assert_eq!(max(&on, ApiKey::EndTxn), 5);
        assert_eq!(max(&on, ApiKey::Produce), 12);
        assert_eq!(max(&on, ApiKey::TxnOffsetCommit), 5);
        assert_eq!(on.finalized_features[0].max_version_level, 2);
        assert_eq!(on.finalized_features[0].name.as_str(), TRANSACTION_VERSION);
        assert!(on.finalized_features_epoch >= 0, "clients ignore features with a negative epoch");
        for level in [0, 1] {
            let off = api_versions_response(0, level);
            assert_eq!(max(&off, ApiKey::EndTxn), 4);
            assert_eq!(max(&off, ApiKey::Produce), 11);
            assert_eq!(max(&off, ApiKey::TxnOffsetCommit), 4);
            assert_eq!(off.finalized_features[0].max_version_level, level);
            assert_eq!(off.supported_features[0].max_version, 2);
        }
    }
}
