//! The single-node metadata file of Strom before the controller quorum
//! (`<data-dir>/strom-metadata.json`), read once to carry its topics into
//! the quorum's image so an upgraded broker keeps its data.
//!
//! After a successful import the file is renamed to
//! `strom-metadata.json.imported`; it is never written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use uuid::Uuid;

/// File name of the old single-node metadata image.
pub const LEGACY_FILE: &str = "strom-metadata.json";

/// One partition as the old file stored it (only what the import needs).
#[derive(Debug, Clone, Deserialize)]
pub struct LegacyPartition {
    /// Replica broker ids.
    pub replicas: Vec<i32>,
}

/// One topic of the old file.
#[derive(Debug, Clone, Deserialize)]
pub struct LegacyTopic {
    /// Topic id.
    pub id: Uuid,
    /// Partitions by index.
    pub partitions: Vec<LegacyPartition>,
    /// Config overrides.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// The old file's content.
#[derive(Debug, Clone, Deserialize)]
pub struct LegacyImage {
    /// Cluster id.
    pub cluster_id: String,
    /// Topics by name.
    pub topics: BTreeMap<String, LegacyTopic>,
    /// End of the last producer-id block handed out.
    #[serde(default)]
    pub producer_id_block_end: i64,
}

/// The old file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot import the old metadata file {path}: {reason}; move it away to start without its topics")]
pub struct LegacyError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Reads `<data_dir>/strom-metadata.json` if it exists.
pub fn read(data_dir: &Path) -> Result<Option<LegacyImage>, LegacyError> {
    let path = data_dir.join(LEGACY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LegacyError { path, reason: e.to_string() }),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| LegacyError { path, reason: e.to_string() })
}

/// Marks the file as imported (renames it).
pub fn mark_imported(data_dir: &Path) -> std::io::Result<()> {
    let path = data_dir.join(LEGACY_FILE);
    std::fs::rename(&path, path.with_extension("json.imported"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_old_format_and_reports_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let text = r#"{"version":1,"cluster_id":"abc","topics":{"orders":{"id":"5f0e6b8e-6f3c-4a7e-9d59-1b2c3d4e5f60",
            "partitions":[{"replicas":[0],"leader":0,"leader_epoch":0,"isr":[0]}],"configs":{"retention.ms":"1000"}}},
            "producer_id_block_end":2000}"#;
        std::fs::write(dir.path().join(LEGACY_FILE), text).unwrap();
        let image = read(dir.path()).unwrap().unwrap();
        assert_eq!(image.cluster_id, "abc");
        assert_eq!(image.topics["orders"].partitions[0].replicas, vec![0]);
        assert_eq!(image.producer_id_block_end, 2000);
        mark_imported(dir.path()).unwrap();
        assert!(read(dir.path()).unwrap().is_none());

        std::fs::write(dir.path().join(LEGACY_FILE), b"{not json").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("move it away"), "{err}");
    }
}
