//! The OAUTHBEARER key sets (`sasl.oauthbearer.jwks.endpoint.url`), as an
//! authentication attempt sees them.
//!
//! - A local file (a path or `file://`) is parsed once per version of the
//!   file: an attempt costs a `stat`, not a read and a JSON parse, and a
//!   replaced file (key rotation) is picked up at the next attempt.
//! - An HTTPS endpoint is fetched in the background ([`super::jwks_fetch`]),
//!   at start and then every `sasl.oauthbearer.jwks.endpoint.refresh.ms`;
//!   attempts read the last key set fetched and never wait on the network.
//!   Until the first fetch succeeds, tokens are refused (saying why in the
//!   broker's log).
//!
//! Must never: serve a file's key set after the file changed (its size or
//! modification time moved), or hold more than one key set per source.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde_json::Value;

use super::oauth::OAuthError;

/// Largest key set read or fetched (a JWKS of a few keys is a few KiB).
pub const MAX_JWKS_BYTES: u64 = 1 << 20;

/// Where a listener's key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A local file.
    File(PathBuf),
    /// An HTTPS endpoint, fetched every `refresh`, trusting the PEM CAs in
    /// `trust` (the JAAS option `ssl.truststore.location`) or else the
    /// system's roots.
    Https { url: String, trust: Option<PathBuf>, refresh: Duration },
}

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

type FileCache = Mutex<HashMap<PathBuf, (Stamp, Arc<Value>)>>;

/// Parsed key sets by path, each with the version of the file it came from.
fn file_cache() -> &'static FileCache {
    static CACHE: OnceLock<FileCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// What the background fetch of an endpoint last produced.
#[derive(Debug, Clone)]
enum Fetched {
    Keys(Arc<Value>),
    Failed(String),
}

type UrlCache = Mutex<HashMap<String, Fetched>>;

/// The last key set fetched per endpoint (or why none was).
fn url_cache() -> &'static UrlCache {
    static CACHE: OnceLock<UrlCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Records the outcome of a fetch of `url`: a new key set replaces the old
/// one; a failure is kept only while no key set was ever fetched (the last
/// good key set goes on serving through an outage of the endpoint).
pub fn record_fetch(url: &str, outcome: Result<Value, String>) {
    let mut cache = url_cache().lock();
    match outcome {
        Ok(keys) => {
            cache.insert(url.to_string(), Fetched::Keys(Arc::new(keys)));
        }
        Err(why) => {
            if !matches!(cache.get(url), Some(Fetched::Keys(_))) {
                cache.insert(url.to_string(), Fetched::Failed(why));
            }
        }
    }
}

/// The key set of `source` as it stands now.
pub fn key_set(source: &JwksSource) -> Result<Arc<Value>, OAuthError> {
    match source {
        JwksSource::File(path) => file_key_set(path),
        JwksSource::Https { url, .. } => match url_cache().lock().get(url) {
            Some(Fetched::Keys(keys)) => Ok(keys.clone()),
            Some(Fetched::Failed(why)) => {
                Err(OAuthError::Key(format!("the JWKS at {url} could not be fetched: {why}")))
            }
            None => Err(OAuthError::Key(format!("the JWKS at {url} has not been fetched yet"))),
        },
    }
}

/// Parses JWKS text, refusing what is not a JSON object with a `keys` array.
pub fn parse(text: &[u8], origin: &str) -> Result<Value, String> {
    let keys: Value = serde_json::from_slice(text).map_err(|e| format!("the JWKS {origin} is not JSON: {e}"))?;
    if !keys.get("keys").is_some_and(Value::is_array) {
        return Err(format!("the JWKS {origin} has no `keys` array"));
    }
    Ok(keys)
}

/// The key set in the file at `path`, parsed again only if the file changed.
fn file_key_set(path: &Path) -> Result<Arc<Value>, OAuthError> {
    let unreadable = |e: std::io::Error| OAuthError::Key(format!("cannot read the JWKS {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let stamp = Stamp { modified: meta.modified().ok(), len: meta.len() };
    if let Some((seen, keys)) = file_cache().lock().get(path)
        && *seen == stamp
    {
        return Ok(keys.clone());
    }
    if meta.len() > MAX_JWKS_BYTES {
        return Err(OAuthError::Key(format!(
            "the JWKS {} is {} bytes; at most {MAX_JWKS_BYTES} are read",
            path.display(),
            meta.len()
        )));
    }
    let text = std::fs::read(path).map_err(unreadable)?;
    let keys = Arc::new(parse(&text, &path.display().to_string()).map_err(OAuthError::Key)?);
    file_cache().lock().insert(path.to_path_buf(), (stamp, keys.clone()));
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_file_is_parsed_once_per_version_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let source = JwksSource::File(path.clone());
        std::fs::write(&path, r#"{"keys": [{"kid": "a"}]}"#).unwrap();
        let first = key_set(&source).unwrap();
        assert!(Arc::ptr_eq(&first, &key_set(&source).unwrap()), "an unchanged file is not parsed again");
        // A rotated file (another size) is read at the next attempt.
        std::fs::write(&path, r#"{"keys": [{"kid": "b"}, {"kid": "c"}]}"#).unwrap();
        let second = key_set(&source).unwrap();
        assert_eq!(second["keys"][0]["kid"], "b");
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(key_set(&source), Err(OAuthError::Key(m)) if m.contains("not JSON")));
        std::fs::write(&path, r#"{"no": "keys"}"#).unwrap();
        assert!(matches!(key_set(&source), Err(OAuthError::Key(m)) if m.contains("no `keys` array")));
        assert!(key_set(&JwksSource::File(dir.path().join("missing.json"))).is_err());
    }

    #[test]
    fn an_endpoint_serves_its_last_good_key_set_through_failed_fetches() {
        let url = "https://idp.test/a_test_of_its_own/jwks";
        let source = JwksSource::Https { url: url.to_string(), trust: None, refresh: Duration::from_secs(1) };
        assert!(matches!(key_set(&source), Err(OAuthError::Key(m)) if m.contains("not been fetched yet")));
        record_fetch(url, Err("connection refused".to_string()));
        assert!(matches!(key_set(&source), Err(OAuthError::Key(m)) if m.contains("connection refused")));
        record_fetch(url, Ok(serde_json::json!({"keys": [{"kid": "a"}]})));
        record_fetch(url, Err("timed out".to_string()));
        assert_eq!(key_set(&source).unwrap()["keys"][0]["kid"], "a", "an outage keeps the last key set");
        record_fetch(url, Ok(serde_json::json!({"keys": [{"kid": "b"}]})));
        assert_eq!(key_set(&source).unwrap()["keys"][0]["kid"], "b");
    }
}
