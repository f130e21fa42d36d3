//! ApiVersions: the served APIs and version ranges (KIP-511 fallback aware).

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;

use crate::protocol::versions::SUPPORTED_APIS;

/// The ApiVersions answer with `error_code` (0, or 35 UNSUPPORTED_VERSION when
/// the client asked at a version we do not serve: it then retries at ours).
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(
        SUPPORTED_APIS
            .iter()
            .map(|(api, lo, hi)| {
                ApiVersion::default().with_api_key(*api as i16).with_min_version(*lo).with_max_version(*hi)
            })
            .collect(),
    )
}
