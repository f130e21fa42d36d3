//! The broker's shared state and the operations that span its parts.
//!
//! [`Broker`] ties the configuration, the metadata image, the hosted partition
//! replicas and the metrics together, and owns the operations that must keep
//! metadata and logs in step: creating, growing, reconfiguring and deleting
//! topics, and reconciling the logs on disk with the metadata at start.
//!
//! Ordering rule: metadata changes first, logs follow. A crash in between
//! leaves either a topic whose logs are created on the next start, or stray
//! logs of a deleted topic, which the next start deletes (as Kafka does).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::log::{LogError, LogManager, TopicPartition};
use crate::metadata::{ConfigOp, MetadataError, MetadataStore, TopicMetadata};
use crate::metrics::Metrics;
use crate::replica::{Partition, ReplicaManager};

/// An admin operation that was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The metadata change was refused or could not be stored.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// A partition log could not be created or deleted.
    #[error(transparent)]
    Log(#[from] LogError),
    /// DeleteTopics while `delete.topic.enable=false`.
    #[error("topic deletion is disabled on this broker (delete.topic.enable=false)")]
    DeletionDisabled,
}

/// What a client asked for when creating a topic.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partition count; -1 for `num.partitions`.
    pub num_partitions: i32,
    /// Replication factor; -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replica lists by partition (replaces the two counts).
    pub assignment: Vec<Vec<i32>>,
    /// Config overrides.
    pub configs: Vec<(String, String)>,
}

/// The broker's shared state.
#[derive(Debug)]
pub struct Broker {
    /// Validated configuration.
    pub config: BrokerConfig,
    /// The metadata image.
    pub metadata: RwLock<MetadataStore>,
    /// Hosted partition replicas.
    pub replicas: ReplicaManager,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Cancelled when the broker shuts down.
    pub shutdown: CancellationToken,
    /// The consumer group coordinator.
    pub groups: Arc<GroupCoordinator>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Broker {
    /// Opens the data dir: metadata, logs (with recovery), and hosted partitions.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>, AdminError> {
        let metadata = MetadataStore::open(&config.data_dir)?;
        let default_log_config = config.log_config(&crate::config::Settings::topic_overrides());
        let logs = Arc::new(LogManager::open(&config.data_dir, default_log_config)?);
        let broker = Arc::new(Broker {
            metrics: Metrics::new(),
            replicas: ReplicaManager::new(logs),
            metadata: RwLock::new(metadata),
            shutdown: CancellationToken::new(),
            groups: GroupCoordinator::new(GroupConfig::from_settings(&config.settings)),
            config,
        });
        broker.reconcile_logs()?;
        // Creates __consumer_offsets if needed and loads committed offsets and groups.
        crate::group::start(&broker.groups, &broker)?;
        Ok(broker)
    }

    /// Hosts every partition the metadata assigns here; deletes stray logs.
    fn reconcile_logs(&self) -> Result<(), AdminError> {
        let topics: Vec<TopicMetadata> = self.metadata.read().topics().cloned().collect();
        let mut wanted = std::collections::HashSet::new();
        for topic in &topics {
            let log_config = self.config.log_config(&topic.configs);
            for (index, p) in topic.partitions.iter().enumerate() {
                if !p.replicas.contains(&self.config.node_id) {
                    continue;
                }
                let tp = TopicPartition { topic: topic.name.clone(), partition: index as i32 };
                self.replicas.become_leader(&tp, log_config.clone(), p.leader_epoch)?;
                wanted.insert(tp);
            }
        }
        for tp in self.replicas.logs().partitions() {
            if !wanted.contains(&tp) {
                tracing::warn!(partition = %tp, "deleting stray log of a partition the metadata does not assign to this broker");
                self.replicas.delete(&tp)?;
            }
        }
        Ok(())
    }

    /// The hosted partition `tp`, if this broker hosts it.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.replicas.get(tp)
    }

    /// Node ids of the live brokers (this one, until the quorum exists).
    pub fn live_brokers(&self) -> Vec<i32> {
        vec![self.config.node_id]
    }

    /// The replica lists for a new topic, checked against the live brokers.
    fn assignment_for(&self, req: &NewTopic) -> Result<Vec<Vec<i32>>, MetadataError> {
        let live = self.live_brokers();
        if !req.assignment.is_empty() {
            if req.num_partitions != -1 || req.replication_factor != -1 {
                return Err(MetadataError::InvalidReplicaAssignment {
                    topic: req.name.clone(),
                    reason: "give either an assignment or counts of partitions and replicas, not both".into(),
                });
            }
            let rf = req.assignment.first().map(Vec::len).unwrap_or(0);
            for (i, replicas) in req.assignment.iter().enumerate() {
                let mut seen = std::collections::HashSet::new();
                if replicas.is_empty() || replicas.len() != rf {
                    return Err(MetadataError::InvalidReplicaAssignment {
                        topic: req.name.clone(),
                        reason: format!(
                            "partition {i} has {} replicas; every partition needs the same, at least 1",
                            replicas.len()
                        ),
                    });
                }
                for r in replicas {
                    if !live.contains(r) || !seen.insert(*r) {
                        return Err(MetadataError::InvalidReplicaAssignment {
                            topic: req.name.clone(),
                            reason: format!(
                                "partition {i} names broker {r}, which is unknown or listed twice; live brokers: {live:?}"
                            ),
                        });
                    }
                }
            }
            return Ok(req.assignment.clone());
        }
        let partitions = if req.num_partitions == -1 {
            self.config.settings.long("num.partitions") as i32
        } else {
            req.num_partitions
        };
        if partitions < 1 {
            return Err(MetadataError::InvalidPartitions {
                topic: req.name.clone(),
                requested: partitions,
                reason: "a topic needs at least 1 partition".into(),
            });
        }
        let rf = if req.replication_factor == -1 {
            self.config.settings.long("default.replication.factor") as i32
        } else {
            req.replication_factor as i32
        };
        if rf < 1 || rf as usize > live.len() {
            return Err(MetadataError::InvalidReplicationFactor {
                topic: req.name.clone(),
                requested: rf,
                reason: format!("it must be from 1 to the number of live brokers, {}", live.len()),
            });
        }
        Ok(assign_replicas(&live, partitions as usize, rf as usize))
    }

    /// Creates a topic (or only checks it, when `validate_only`).
    pub fn create_topic(&self, req: &NewTopic, validate_only: bool) -> Result<TopicMetadata, AdminError> {
        let assignment = self.assignment_for(req)?;
        let topic = {
            let mut metadata = self.metadata.write();
            if validate_only {
                let configs = metadata.validate_new_topic(&req.name, &assignment, &req.configs)?;
                return Ok(TopicMetadata {
                    name: req.name.clone(),
                    id: uuid::Uuid::nil(),
                    partitions: Vec::new(),
                    configs,
                }
                .with_partitions(assignment));
            }
            metadata.create_topic(&req.name, assignment, &req.configs)?.clone()
        };
        self.host_partitions(&topic, 0)?;
        tracing::info!(topic = %topic.name, partitions = topic.partitions.len(), "created topic");
        Ok(topic)
    }

    fn host_partitions(&self, topic: &TopicMetadata, from: usize) -> Result<(), AdminError> {
        let log_config = self.config.log_config(&topic.configs);
        for (index, p) in topic.partitions.iter().enumerate().skip(from) {
            if p.replicas.contains(&self.config.node_id) {
                let tp = TopicPartition { topic: topic.name.clone(), partition: index as i32 };
                self.replicas.become_leader(&tp, log_config.clone(), p.leader_epoch)?;
            }
        }
        Ok(())
    }

    /// Deletes a topic and its logs.
    pub fn delete_topic(&self, name: &str) -> Result<TopicMetadata, AdminError> {
        if !self.config.settings.bool("delete.topic.enable") {
            return Err(AdminError::DeletionDisabled);
        }
        let topic = self.metadata.write().delete_topic(name)?;
        for index in 0..topic.partitions.len() {
            self.replicas.delete(&TopicPartition { topic: topic.name.clone(), partition: index as i32 })?;
        }
        tracing::info!(topic = %topic.name, "deleted topic");
        Ok(topic)
    }

    /// Grows a topic to `total` partitions.
    pub fn create_partitions(&self, name: &str, total: i32, validate_only: bool) -> Result<(), AdminError> {
        let (current, rf) = {
            let metadata = self.metadata.read();
            let current = metadata.validate_new_partitions(name, total)?;
            let rf = metadata.topic(name).map(|t| t.replication_factor()).unwrap_or(1).max(1);
            (current, rf as usize)
        };
        if validate_only {
            return Ok(());
        }
        let live = self.live_brokers();
        let new: Vec<Vec<i32>> = assign_replicas(&live, total as usize, rf).into_iter().skip(current).collect();
        let topic = {
            let mut metadata = self.metadata.write();
            metadata.add_partitions(name, new)?;
            metadata.topic(name).cloned().ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?
        };
        self.host_partitions(&topic, current)?;
        Ok(())
    }

    /// Alters a topic's config overrides and applies them to its logs.
    pub fn alter_topic_configs(&self, name: &str, ops: &[ConfigOp], validate_only: bool) -> Result<(), AdminError> {
        let topic = {
            let mut metadata = self.metadata.write();
            metadata.alter_topic_configs(name, ops, validate_only)?;
            metadata.topic(name).cloned().ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?
        };
        if !validate_only {
            self.replicas.set_topic_config(name, self.config.log_config(&topic.configs));
        }
        Ok(())
    }
}

impl TopicMetadata {
    fn with_partitions(mut self, assignment: Vec<Vec<i32>>) -> TopicMetadata {
        self.partitions = assignment
            .into_iter()
            .map(|replicas| crate::metadata::PartitionMetadata {
                leader: replicas.first().copied().unwrap_or(-1),
                leader_epoch: 0,
                isr: replicas.clone(),
                replicas,
            })
            .collect();
        self
    }
}

/// Spreads `partitions` × `rf` replicas round-robin over `brokers`, shifting
/// the start per partition so preferred leaders are balanced.
pub fn assign_replicas(brokers: &[i32], partitions: usize, rf: usize) -> Vec<Vec<i32>> {
    let n = brokers.len().max(1);
    (0..partitions).map(|p| (0..rf.min(n)).map(|r| brokers[(p + r) % n]).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_assignment_balances_leaders() {
        let a = assign_replicas(&[0, 1, 2], 6, 2);
        assert_eq!(a[0], vec![0, 1]);
        assert_eq!(a[1], vec![1, 2]);
        assert_eq!(a[2], vec![2, 0]);
        let leaders: Vec<i32> = a.iter().map(|r| r[0]).collect();
        for b in 0..3 {
            assert_eq!(leaders.iter().filter(|l| **l == b).count(), 2);
        }
    }
}
