//! Request decoding and response encoding with the `kafka-protocol` crate.
//!
//! Decoding checks, in order: the frame holds a header, the API key is known
//! and served, the version is in the served range, then the header and body
//! parse. Each failure is a [`DecodeError`] carrying the correlation id (it
//! sits at a fixed place in every header) so the caller can answer or close.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::fetch_encoding;
use super::handlers::Response;
use super::outgoing::Outgoing;
use super::request_entries::{self, EntriesError};
use super::versions::supported_range;

/// A request's identity, from its header.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Which API.
    pub api_key: ApiKey,
    /// Which version of it.
    pub api_version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// The client's self-chosen id, for logs.
    pub client_id: Option<String>,
    /// The client's address (set by the connection; unset when decoding alone).
    pub peer: Option<std::net::SocketAddr>,
    /// Who the connection authenticated as (set by the connection;
    /// `User:ANONYMOUS` until then).
    pub principal: std::sync::Arc<crate::auth::Principal>,
    /// The name of the listener the request came in on (set by the
    /// connection): Metadata, FindCoordinator and DescribeCluster answer
    /// with that listener's addresses.
    pub listener: Option<std::sync::Arc<str>>,
}

/// Why a request frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the fixed part of a request header.
    #[error("request frame of {0} bytes is shorter than a request header (8 bytes)")]
    TooShort(usize),
    /// The API key is not one Strom serves.
    #[error("unknown or unsupported API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    /// The version is outside the served range.
    #[error("{api:?} version {version} is not supported (served: {min}..={max})")]
    UnsupportedVersion { api: ApiKey, version: i16, min: i16, max: i16, correlation_id: i32 },
    /// The request names more topics, partitions and names than
    /// `max.request.partitions` allows; it was not decoded.
    #[error("{api:?} v{version} request refused (correlation id {correlation_id}): {source}")]
    TooManyEntries {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        #[source]
        source: EntriesError,
    },
    /// The header or body does not parse at the given version.
    #[error("malformed {api:?} v{version} request (correlation id {correlation_id}): {reason}")]
    Malformed { api: ApiKey, version: i16, correlation_id: i32, reason: String },
}

/// Decodes a request frame into its context and typed body. A request that
/// names more than `max_entries` topics, partitions and names (see
/// [`request_entries`]) is refused before its body is decoded.
pub fn decode_request(frame: Bytes, max_entries: u64) -> Result<(RequestContext, RequestKind), DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let mut fixed = &frame[..8];
    let raw_key = fixed.get_i16();
    let version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let api = ApiKey::try_from(raw_key)
        .ok()
        .filter(|api| supported_range(*api).is_some())
        .ok_or(DecodeError::UnknownApiKey { api_key: raw_key, correlation_id })?;
    let (min, max) = supported_range(api).unwrap_or((0, -1));
    if version < min || version > max {
        return Err(DecodeError::UnsupportedVersion { api, version, min, max, correlation_id });
    }
    let malformed = |reason: String| DecodeError::Malformed { api, version, correlation_id, reason };
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    match request_entries::check(api, version, &buf, max_entries) {
        Ok(_) => {}
        Err(source @ EntriesError::TooMany { .. }) => {
            return Err(DecodeError::TooManyEntries { api, version, correlation_id, source });
        }
        Err(e) => return Err(malformed(format!("body: {e}"))),
    }
    let body = RequestKind::decode(api, &mut buf, version).map_err(|e| malformed(format!("body: {e}")))?;
    let client_id = header.client_id.as_ref().map(|c| c.to_string());
    Ok((
        RequestContext {
            api_key: api,
            api_version: version,
            correlation_id,
            client_id,
            peer: None,
            principal: crate::auth::Principal::anonymous(),
            listener: None,
        },
        body,
    ))
}

/// Encodes a response with its header and size prefix, ready to write. A
/// fetch's batches located in segment files stay there (see
/// [`fetch_encoding`]).
pub fn encode_response(
    correlation_id: i32,
    api: ApiKey,
    version: i16,
    response: &Response,
) -> anyhow::Result<Outgoing> {
    if let ResponseKind::Fetch(fetch) = &response.body
        && response.file_records.iter().any(Option::is_some)
    {
        return Ok(fetch_encoding::encode(correlation_id, version, fetch, &response.file_records)?);
    }
    let body = &response.body;
    // A fetch answer with records in memory is sized up front, so its
    // buffer is written once instead of being copied at every doubling.
    let capacity = match body {
        ResponseKind::Fetch(fetch) => 64 + fetch.compute_size(version)?,
        _ => 256,
    };
    let mut buf = BytesMut::with_capacity(capacity);
    buf.extend_from_slice(&[0, 0, 0, 0]);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, api.response_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(Outgoing::from(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    const LIMIT: u64 = 100_000;

    fn frame(api: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        header.encode(&mut buf, api.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_valid_request() {
        let (ctx, body) = decode_request(frame(ApiKey::Metadata, 12, &MetadataRequest::default()), LIMIT).unwrap();
        assert_eq!(ctx.correlation_id, 42);
        assert_eq!(ctx.client_id.as_deref(), Some("test"));
        assert!(matches!(body, RequestKind::Metadata(_)));
    }

    #[test]
    fn refuses_unknown_keys_versions_and_garbage() {
        assert!(matches!(decode_request(Bytes::from_static(&[0, 1, 2]), LIMIT), Err(DecodeError::TooShort(3))));
        let unknown = Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 9]);
        assert!(matches!(
            decode_request(unknown, LIMIT),
            Err(DecodeError::UnknownApiKey { api_key: 0x7f00, correlation_id: 9 })
        ));
        let too_new = frame(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
        let mut raw = BytesMut::from(&too_new[..]);
        raw[3] = 99;
        assert!(matches!(
            decode_request(raw.freeze(), LIMIT),
            Err(DecodeError::UnsupportedVersion { version: 99, correlation_id: 42, .. })
        ));
        let mut truncated = BytesMut::from(&frame(ApiKey::Metadata, 12, &MetadataRequest::default())[..]);
        truncated.truncate(12);
        assert!(matches!(decode_request(truncated.freeze(), LIMIT), Err(DecodeError::Malformed { .. })));
    }

    #[test]
    fn a_request_naming_too_many_topics_is_refused_before_decoding() {
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        let topics = vec![MetadataRequestTopic::default().with_name(Some(Default::default())); 11];
        let request = MetadataRequest::default().with_topics(Some(topics));
        let refused = decode_request(frame(ApiKey::Metadata, 12, &request), 10).unwrap_err();
        assert!(
            matches!(
                refused,
                DecodeError::TooManyEntries { correlation_id: 42, source: EntriesError::TooMany { limit: 10, .. }, .. }
            ),
            "{refused}"
        );
        assert!(refused.to_string().contains("max.request.partitions allows 10"), "{refused}");
        assert!(decode_request(frame(ApiKey::Metadata, 12, &request), 11).is_ok());
    }
}
