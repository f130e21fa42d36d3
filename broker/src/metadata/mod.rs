//! Cluster metadata as this broker knows it: the cluster id, topics with their
//! ids, partitions (replicas, leader, leader epoch, ISR) and config overrides.
//!
//! On a single node this module is the source of truth and persists the image
//! to `<data-dir>/strom-metadata.json` (written to a temp file, fsynced and
//! renamed, so a crash leaves the old or the new image, never half of one).
//! With the controller quorum this image becomes the state machine the Raft log
//! is applied to; the rest of the broker only reads it through this module.
//!
//! Invariants: topic names are valid Kafka names and unique, also after
//! Kafka's `.`/`_` collision rule; partition counts only grow; a refused
//! change leaves the image and the file untouched.

pub mod topic_name;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{SettingError, Settings};

/// File name of the persisted metadata image inside the data dir.
pub const METADATA_FILE: &str = "strom-metadata.json";

/// A metadata change that was refused, or could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Kafka: TOPIC_ALREADY_EXISTS.
    #[error("topic `{0}` already exists")]
    TopicAlreadyExists(String),
    /// Kafka: UNKNOWN_TOPIC_OR_PARTITION.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// Kafka: INVALID_TOPIC_EXCEPTION.
    #[error("invalid topic name `{name}`: {reason}")]
    InvalidTopicName { name: String, reason: String },
    /// Kafka: INVALID_PARTITIONS.
    #[error("invalid partition count {requested} for topic `{topic}`: {reason}")]
    InvalidPartitions { topic: String, requested: i32, reason: String },
    /// Kafka: INVALID_REPLICATION_FACTOR.
    #[error("invalid replication factor {requested} for topic `{topic}`: {reason}")]
    InvalidReplicationFactor { topic: String, requested: i32, reason: String },
    /// Kafka: INVALID_REPLICA_ASSIGNMENT.
    #[error("invalid replica assignment for topic `{topic}`: {reason}")]
    InvalidReplicaAssignment { topic: String, reason: String },
    /// Kafka: INVALID_CONFIG.
    #[error("invalid config for topic `{topic}`: {source}")]
    InvalidConfig { topic: String, source: SettingError },
    /// Kafka: KAFKA_STORAGE_ERROR.
    #[error("cannot {action} metadata file {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    /// The metadata file exists but cannot be understood.
    #[error("metadata file {path} is corrupt: {reason}; restore it from a backup or move it away to start empty")]
    Corrupt { path: PathBuf, reason: String },
}

/// One partition's replica placement and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMetadata {
    /// Replica broker ids; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// Current leader's broker id, -1 when offline.
    pub leader: i32,
    /// Incremented at each leader change.
    pub leader_epoch: i32,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// One topic: its id, partitions and config overrides.
#[derive(Debug, Clone)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id (KIP-516).
    pub id: Uuid,
    /// Partitions by index.
    pub partitions: Vec<PartitionMetadata>,
    /// Settings this topic overrides.
    pub configs: Settings,
}

impl TopicMetadata {
    /// Replication factor (replicas of partition 0).
    pub fn replication_factor(&self) -> i16 {
        self.partitions.first().map(|p| p.replicas.len() as i16).unwrap_or(0)
    }

    /// Whether this is one of the broker's internal topics.
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

#[derive(Serialize, Deserialize)]
struct StoredTopic {
    id: Uuid,
    partitions: Vec<PartitionMetadata>,
    configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct StoredImage {
    version: u32,
    cluster_id: String,
    topics: BTreeMap<String, StoredTopic>,
    /// End (exclusive) of the last producer-id block handed out.
    #[serde(default)]
    producer_id_block_end: i64,
}

/// Producer ids are reserved in blocks of this many, one metadata write per block.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// One operation of IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set the value.
    Set(String, String),
    /// Remove the override.
    Delete(String),
}

/// The metadata image and its file.
#[derive(Debug)]
pub struct MetadataStore {
    path: PathBuf,
    cluster_id: String,
    topics: BTreeMap<String, TopicMetadata>,
    next_producer_id: i64,
    producer_id_block_end: i64,
}

impl MetadataStore {
    /// Opens the image in `data_dir`, creating an empty one with a new
    /// cluster id when none exists.
    pub fn open(data_dir: &Path) -> Result<MetadataStore, MetadataError> {
        let path = data_dir.join(METADATA_FILE);
        std::fs::create_dir_all(data_dir).map_err(|source| MetadataError::Io {
            action: "create the directory of",
            path: path.clone(),
            source,
        })?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let store = MetadataStore {
                    path,
                    cluster_id: new_cluster_id(),
                    topics: BTreeMap::new(),
                    next_producer_id: 0,
                    producer_id_block_end: 0,
                };
                store.persist()?;
                return Ok(store);
            }
            Err(source) => return Err(MetadataError::Io { action: "read", path, source }),
        };
        let image: StoredImage = serde_json::from_str(&text)
            .map_err(|e| MetadataError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        let mut topics = BTreeMap::new();
        for (name, stored) in image.topics {
            let mut configs = Settings::topic_overrides();
            for (k, v) in &stored.configs {
                configs.set(k, v).map_err(|e| MetadataError::Corrupt {
                    path: path.clone(),
                    reason: format!("topic `{name}`: {e}"),
                })?;
            }
            topics.insert(name.clone(), TopicMetadata { name, id: stored.id, partitions: stored.partitions, configs });
        }
        // Ids of a block reserved before a restart may have been handed out:
        // start after the whole block so none is ever reused.
        Ok(MetadataStore {
            path,
            cluster_id: image.cluster_id,
            topics,
            next_producer_id: image.producer_id_block_end,
            producer_id_block_end: image.producer_id_block_end,
        })
    }

    fn persist(&self) -> Result<(), MetadataError> {
        let image = StoredImage {
            version: 1,
            cluster_id: self.cluster_id.clone(),
            topics: self
                .topics
                .iter()
                .map(|(name, t)| {
                    let configs = t.configs.explicit_entries().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                    (name.clone(), StoredTopic { id: t.id, partitions: t.partitions.clone(), configs })
                })
                .collect(),
            producer_id_block_end: self.producer_id_block_end,
        };
        let text = serde_json::to_vec_pretty(&image)
            .map_err(|e| MetadataError::Corrupt { path: self.path.clone(), reason: e.to_string() })?;
        let tmp = self.path.with_extension("json.tmp");
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| MetadataError::Io { action, path, source }
        };
        let mut file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        file.write_all(&text).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("fsync", &tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io("rename into place", &self.path))?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Hands out a producer id never given before, even across restarts.
    pub fn allocate_producer_id(&mut self) -> Result<i64, MetadataError> {
        if self.next_producer_id >= self.producer_id_block_end {
            let previous = self.producer_id_block_end;
            self.producer_id_block_end = self.next_producer_id + PRODUCER_ID_BLOCK_SIZE;
            if let Err(e) = self.persist() {
                self.producer_id_block_end = previous;
                return Err(e);
            }
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        Ok(id)
    }

    /// The cluster id, generated once and kept.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicMetadata> {
        self.topics.values().find(|t| t.id == id)
    }

    /// All topics, by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicMetadata> {
        self.topics.values()
    }

    /// Checks a new topic without creating it (CreateTopics validate_only).
    pub fn validate_new_topic(
        &self,
        name: &str,
        assignment: &[Vec<i32>],
        configs: &[(String, String)],
    ) -> Result<Settings, MetadataError> {
        topic_name::validate(name)?;
        if self.topics.contains_key(name) {
            return Err(MetadataError::TopicAlreadyExists(name.to_string()));
        }
        let collision_key = topic_name::collision_key(name);
        if let Some(other) = self.topics.keys().find(|t| topic_name::collision_key(t) == collision_key) {
            return Err(MetadataError::InvalidTopicName {
                name: name.to_string(),
                reason: format!("it collides with existing topic `{other}` because '.' and '_' are treated alike"),
            });
        }
        if assignment.is_empty() {
            return Err(MetadataError::InvalidPartitions {
                topic: name.to_string(),
                requested: 0,
                reason: "a topic needs at least 1 partition".into(),
            });
        }
        let mut settings = Settings::topic_overrides();
        for (k, v) in configs {
            settings.set(k, v).map_err(|source| MetadataError::InvalidConfig { topic: name.to_string(), source })?;
        }
        Ok(settings)
    }

    /// Creates a topic with one replica list per partition.
    pub fn create_topic(
        &mut self,
        name: &str,
        assignment: Vec<Vec<i32>>,
        configs: &[(String, String)],
    ) -> Result<&TopicMetadata, MetadataError> {
        let settings = self.validate_new_topic(name, &assignment, configs)?;
        let topic = TopicMetadata {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions: assignment.into_iter().map(new_partition).collect(),
            configs: settings,
        };
        self.topics.insert(name.to_string(), topic);
        if let Err(e) = self.persist() {
            self.topics.remove(name);
            return Err(e);
        }
        self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))
    }

    /// Deletes a topic, returning what it was.
    pub fn delete_topic(&mut self, name: &str) -> Result<TopicMetadata, MetadataError> {
        let topic = self.topics.remove(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        if let Err(e) = self.persist() {
            self.topics.insert(name.to_string(), topic);
            return Err(e);
        }
        Ok(topic)
    }

    /// Checks adding partitions so the topic has `new_assignment.len()` more.
    pub fn validate_new_partitions(&self, name: &str, new_total: i32) -> Result<usize, MetadataError> {
        let topic = self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let current = topic.partitions.len() as i32;
        if new_total < current {
            return Err(MetadataError::InvalidPartitions {
                topic: name.to_string(),
                requested: new_total,
                reason: format!("the topic has {current} partitions and partitions can only be added"),
            });
        }
        if new_total == current {
            return Err(MetadataError::InvalidPartitions {
                topic: name.to_string(),
                requested: new_total,
                reason: format!("the topic already has {current} partitions"),
            });
        }
        Ok(current as usize)
    }

    /// Adds partitions with the given replica lists.
    pub fn add_partitions(&mut self, name: &str, new_assignment: Vec<Vec<i32>>) -> Result<(), MetadataError> {
        let current = self.topics.get(name).map(|t| t.partitions.len()).unwrap_or(0);
        self.validate_new_partitions(name, (current + new_assignment.len()) as i32)?;
        let topic = self.topics.get_mut(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        topic.partitions.extend(new_assignment.into_iter().map(new_partition));
        if let Err(e) = self.persist() {
            if let Some(t) = self.topics.get_mut(name) {
                t.partitions.truncate(current);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Applies config operations to a topic; all or nothing.
    pub fn alter_topic_configs(
        &mut self,
        name: &str,
        ops: &[ConfigOp],
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let topic = self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let mut settings = topic.configs.clone();
        for op in ops {
            let result = match op {
                ConfigOp::Set(k, v) => settings.set(k, v),
                ConfigOp::Delete(k) => settings.unset(k),
            };
            result.map_err(|source| MetadataError::InvalidConfig { topic: name.to_string(), source })?;
        }
        if validate_only {
            return Ok(());
        }
        let topic = self.topics.get_mut(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let previous = std::mem::replace(&mut topic.configs, settings);
        if let Err(e) = self.persist() {
            if let Some(t) = self.topics.get_mut(name) {
                t.configs = previous;
            }
            return Err(e);
        }
        Ok(())
    }
}

fn new_partition(replicas: Vec<i32>) -> PartitionMetadata {
    let leader = replicas.first().copied().unwrap_or(-1);
    PartitionMetadata { isr: replicas.clone(), replicas, leader, leader_epoch: 0 }
}

/// A new random cluster id in Kafka's shape (22 characters of URL-safe base64).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22).map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_survive_reopen_with_ids_and_configs() {
        let dir = tempfile::tempdir().unwrap();
        let (id, cluster) = {
            let mut m = MetadataStore::open(dir.path()).unwrap();
            let t =
                m.create_topic("orders", vec![vec![0], vec![0]], &[("retention.ms".into(), "1000".into())]).unwrap();
            (t.id, m.cluster_id().to_string())
        };
        let m = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(m.cluster_id(), cluster);
        let t = m.topic("orders").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(t.configs.explicit("retention.ms"), Some("1000"));
        assert_eq!(m.topic_by_id(id).map(|t| t.name.as_str()), Some("orders"));
    }

    #[test]
    fn refused_changes_leave_the_image_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = MetadataStore::open(dir.path()).unwrap();
        m.create_topic("a.b", vec![vec![0]], &[]).unwrap();
        assert!(matches!(m.create_topic("a.b", vec![vec![0]], &[]), Err(MetadataError::TopicAlreadyExists(_))));
        assert!(matches!(m.create_topic("a_b", vec![vec![0]], &[]), Err(MetadataError::InvalidTopicName { .. })));
        assert!(matches!(
            m.create_topic("c", vec![vec![0]], &[("retention.ms".into(), "x".into())]),
            Err(MetadataError::InvalidConfig { .. })
        ));
        assert!(matches!(m.add_partitions("a.b", vec![]), Err(MetadataError::InvalidPartitions { .. })));
        let ops = [ConfigOp::Set("segment.ms".into(), "5".into()), ConfigOp::Set("bogus".into(), "1".into())];
        assert!(m.alter_topic_configs("a.b", &ops, false).is_err());
        assert_eq!(m.topic("a.b").unwrap().configs.explicit("segment.ms"), None);
        let m2 = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(m2.topics().count(), 1);
    }

    #[test]
    fn partitions_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = MetadataStore::open(dir.path()).unwrap();
        m.create_topic("t", vec![vec![0]; 3], &[]).unwrap();
        assert!(m.validate_new_partitions("t", 2).is_err());
        m.add_partitions("t", vec![vec![0]; 2]).unwrap();
        assert_eq!(MetadataStore::open(dir.path()).unwrap().topic("t").unwrap().partitions.len(), 5);
    }

    #[test]
    fn corrupt_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(METADATA_FILE), b"{not json").unwrap();
        let err = MetadataStore::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is corrupt"), "{err}");
        assert_eq!(std::fs::read(dir.path().join(METADATA_FILE)).unwrap(), b"{not json");
    }

    #[test]
    fn producer_ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = MetadataStore::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| m.allocate_producer_id().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(m);
        let mut m = MetadataStore::open(dir.path()).unwrap();
        let next = m.allocate_producer_id().unwrap();
        assert!(next > 2, "id {next} may repeat one handed out before the restart");
        assert_eq!(m.allocate_producer_id().unwrap(), next + 1);
    }

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert_ne!(id, new_cluster_id());
    }
}
