//! Cluster metadata as this broker serves it: the cluster id, live brokers,
//! the active controller, topics with their ids, partitions (replicas,
//! leader, leader epoch, ISR), config overrides and ACLs.
//!
//! The source of truth is the controller quorum's image
//! ([`crate::controller::ClusterImage`]); [`MetadataView::from_image`]
//! turns the image this broker has applied into the shapes the Kafka
//! handlers answer from (configs parsed into [`Settings`], brokers split
//! into host and port). The view is rebuilt whenever the image changes and
//! never written to directly; changes go to the controller as commands.
//!
//! Invariants: topic names are valid Kafka names and unique, also after
//! Kafka's `.`/`_` collision rule (the controller checks); partition counts
//! only grow; the validations here are the ones the controller applies, so a
//! `validate_only` request answers what the real one would.

pub mod legacy;
pub mod topic_name;

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::config::{SettingError, Settings};
use crate::controller::image::{ClusterImage, NO_LEADER};

/// A metadata change that was refused.
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
}

/// A live broker as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// Broker id.
    pub id: i32,
    /// Advertised Kafka host.
    pub host: String,
    /// Advertised Kafka port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

/// One partition's replica placement and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// One operation of IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set the value.
    Set(String, String),
    /// Remove the override.
    Delete(String),
}

/// The controller id of a view without a live broker.
pub const NO_CONTROLLER: i32 = -1;

/// The metadata a broker serves, built from the controller's image.
#[derive(Debug, Default)]
pub struct MetadataView {
    cluster_id: String,
    controller_id: i32,
    brokers: Vec<BrokerEndpoint>,
    /// The live brokers as each named listener's clients see them.
    listener_brokers: BTreeMap<String, Vec<BrokerEndpoint>>,
    topics: BTreeMap<String, TopicMetadata>,
    /// SCRAM credentials by user, then mechanism name.
    scram: BTreeMap<String, BTreeMap<String, crate::auth::scram::ScramCredential>>,
    acls: std::sync::Arc<Vec<crate::auth::acl::AclBinding>>,
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

/// A `host:port` endpoint split, `None` when malformed.
fn split_endpoint(endpoint: &str) -> Option<(String, i32)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

impl MetadataView {
    /// The view of `image`, with `active_controller` the active controller
    /// (-1 if none known).
    ///
    /// The controller id the view shows clients (Metadata, DescribeCluster)
    /// is always one of its live brokers or -1: the active controller when it
    /// is live, else the lowest live broker id, which takes admin requests
    /// like any broker (every broker forwards them to the active controller;
    /// KRaft likewise names a random live broker). A controller that is not
    /// among the listed brokers, as when it has registered but not yet
    /// heartbeated, leaves librdkafka's admin client waiting for a broker it
    /// cannot find and never asking for metadata again, until its request
    /// times out.
    pub fn from_image(image: &ClusterImage, active_controller: i32) -> MetadataView {
        let brokers: Vec<BrokerEndpoint> = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let (host, port) = b.advertised_endpoint.rsplit_once(':')?;
                Some(BrokerEndpoint {
                    id: b.broker_id,
                    host: host.to_string(),
                    port: port.parse().ok()?,
                    rack: b.rack.clone(),
                })
            })
            .collect();
        // Kafka's rule: a client sees each broker at the endpoint of the
        // listener it connected on; a broker without that listener is left
        // out (one registered by an earlier release, without listener names,
        // is shown at its single endpoint).
        let mut listener_brokers: BTreeMap<String, Vec<BrokerEndpoint>> = BTreeMap::new();
        let names: std::collections::BTreeSet<&String> =
            image.brokers.values().filter(|b| !b.fenced).flat_map(|b| b.listeners.keys()).collect();
        for name in names {
            let on_listener = image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .filter_map(|b| {
                    let endpoint =
                        if b.listeners.is_empty() { &b.advertised_endpoint } else { b.listeners.get(name)? };
                    let (host, port) = split_endpoint(endpoint)?;
                    Some(BrokerEndpoint { id: b.broker_id, host, port, rack: b.rack.clone() })
                })
                .collect();
            listener_brokers.insert(name.clone(), on_listener);
        }
        let topics = image
            .topics
            .iter()
            .map(|(name, t)| {
                let configs = topic_settings(name, &t.configs);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| PartitionMetadata {
                        replicas: p.replicas.clone(),
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        isr: p.isr.clone(),
                    })
                    .collect();
                (name.clone(), TopicMetadata { name: name.clone(), id: t.topic_id, partitions, configs })
            })
            .collect();
        let controller_id = if brokers.iter().any(|b| b.id == active_controller) {
            active_controller
        } else {
            brokers.iter().map(|b| b.id).min().unwrap_or(NO_CONTROLLER)
        };
        let acls = std::sync::Arc::new(image.acls.iter().cloned().collect());
        MetadataView {
            cluster_id: image.cluster_id.clone(),
            controller_id,
            brokers,
            listener_brokers,
            topics,
            scram: image.scram_credentials.clone(),
            acls,
            group_configs: image.group_configs.clone(),
        }
    }

    /// `user`'s SCRAM credential for `mechanism`, if one is set.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: crate::config::listeners::Mechanism,
    ) -> Option<crate::auth::scram::ScramCredential> {
        self.scram.get(user)?.get(mechanism.name()).cloned()
    }

    /// Every user with SCRAM credentials: (mechanism name, iterations) of each.
    pub fn scram_users(&self) -> impl Iterator<Item = (&str, Vec<(&str, i32)>)> {
        self.scram
            .iter()
            .map(|(user, m)| (user.as_str(), m.iter().map(|(name, c)| (name.as_str(), c.iterations)).collect()))
    }

    /// The live brokers as clients of `listener` see them: at that
    /// listener's advertised endpoints (every broker's first listener when
    /// `listener` is `None` or no live broker registered listener names, as
    /// brokers of earlier releases). A listener no live broker advertises
    /// (an external listener whose addresses are not known yet) has none:
    /// its clients are never sent to another listener's address.
    pub fn brokers_on(&self, listener: Option<&str>) -> &[BrokerEndpoint] {
        match listener {
            Some(l) if !self.listener_brokers.is_empty() => self.listener_brokers.get(l).map_or(&[], Vec::as_slice),
            _ => &self.brokers,
        }
    }

    /// The active controller's broker id, -1 when none is known.
    pub fn controller_id(&self) -> i32 {
        self.controller_id
    }

    /// The live (unfenced) brokers.
    pub fn brokers(&self) -> &[BrokerEndpoint] {
        &self.brokers
    }

    /// Ids of the live brokers.
    pub fn live_broker_ids(&self) -> Vec<i32> {
        self.brokers.iter().map(|b| b.id).collect()
    }

    /// Whether `topic`-`partition` has a leader.
    pub fn is_online(&self, topic: &str, partition: i32) -> bool {
        self.topic(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
            .is_some_and(|p| p.leader != NO_LEADER)
    }

    /// The cluster id, generated once and kept.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The stored ACLs (kafka-acls.sh), shared: an authorizer holds them
    /// without holding the view's lock.
    pub fn acls(&self) -> std::sync::Arc<Vec<crate::auth::acl::AclBinding>> {
        self.acls.clone()
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    /// A group's config overrides (see [`crate::group::configs`]); empty when none.
    pub fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        self.group_configs.get(group).cloned().unwrap_or_default()
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

    /// The topic's config overrides after `ops`, checked; all or nothing.
    pub fn configs_after(&self, name: &str, ops: &[ConfigOp]) -> Result<BTreeMap<String, String>, MetadataError> {
        let topic = self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let mut settings = topic.configs.clone();
        for op in ops {
            let result = match op {
                ConfigOp::Set(k, v) => settings.set(k, v),
                ConfigOp::Delete(k) => settings.unset(k),
            };
            result.map_err(|source| MetadataError::InvalidConfig { topic: name.to_string(), source })?;
        }
        Ok(settings.explicit_entries().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }
}

/// A topic's config overrides as [`Settings`]. The controller validated
/// them; one this broker does not understand (a newer version's) is logged and ignored.
pub fn topic_settings(topic: &str, configs: &BTreeMap<String, String>) -> Settings {
    let mut settings = Settings::topic_overrides();
    for (k, v) in configs {
        if let Err(e) = settings.set(k, v) {
            tracing::warn!(%topic, error = %e, "ignoring a topic config this broker does not understand");
        }
    }
    settings
}

/// A new random cluster id in Kafka's shape (22 characters of URL-safe base64).
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22).map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::controller::image::{Command, TopicAssignment};

    fn image_with(topics: &[(&str, usize)]) -> ClusterImage {
        let mut image = ClusterImage::default();
        let mut index = 1;
        let mut apply = |image: &mut ClusterImage, c: Command| {
            index += 1;
            image.apply(index, &c).unwrap()
        };
        apply(&mut image, Command::InitCluster { cluster_id: "c1".into() });
        let reg = Command::RegisterBroker {
            broker_id: 0,
            incarnation_id: Uuid::new_v4(),
            advertised_endpoint: "host-0:9092".into(),
            internal_endpoint: "host-0:9093".into(),
            listeners: Default::default(),
            rack: None,
            max_partitions: None,
        };
        let crate::controller::Outcome::Registered { broker_epoch } = apply(&mut image, reg) else { panic!() };
        apply(&mut image, Command::BrokerHeartbeat { broker_id: 0, broker_epoch });
        for (name, partitions) in topics {
            apply(
                &mut image,
                Command::CreateTopic {
                    name: name.to_string(),
                    topic_id: Uuid::new_v4(),
                    assignment: TopicAssignment::Explicit(vec![vec![0]; *partitions]),
                    configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
                },
            );
        }
        image
    }

    #[test]
    fn each_listener_sees_the_brokers_at_its_own_addresses() {
        let mut image = image_with(&[]);
        let mut register = |id: i32, listeners: &[(&str, &str)], index: u64| {
            let reg = Command::RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::new_v4(),
                advertised_endpoint: format!("host-{id}:9092"),
                internal_endpoint: format!("host-{id}:9093"),
                listeners: listeners.iter().map(|(n, e)| (n.to_string(), e.to_string())).collect(),
                rack: None,
                max_partitions: None,
            };
            let crate::controller::Outcome::Registered { broker_epoch } = image.apply(index, &reg).unwrap() else {
                panic!()
            };
            image.apply(index + 1, &Command::BrokerHeartbeat { broker_id: id, broker_epoch }).unwrap();
        };
        register(1, &[("INTERNAL", "b1.svc:9092"), ("EXTERNAL", "kafka-1.example.com:443")], 100);
        register(2, &[("INTERNAL", "b2.svc:9092")], 200);
        let view = MetadataView::from_image(&image, 0);
        let on = |l: Option<&str>| -> Vec<(i32, String)> {
            view.brokers_on(l).iter().map(|b| (b.id, format!("{}:{}", b.host, b.port))).collect()
        };
        // Broker 0 registered without listener names (an earlier release): its one endpoint everywhere.
        assert_eq!(
            on(Some("EXTERNAL")),
            vec![(0, "host-0:9092".to_string()), (1, "kafka-1.example.com:443".to_string())],
            "broker 2 has no EXTERNAL listener and is left out"
        );
        assert_eq!(
            on(Some("INTERNAL")),
            vec![(0, "host-0:9092".to_string()), (1, "b1.svc:9092".to_string()), (2, "b2.svc:9092".to_string())]
        );
        assert_eq!(on(None).len(), 3, "no listener: every broker's first endpoint");
        assert!(
            on(Some("LATER")).is_empty(),
            "a listener no broker advertises yet lists nobody, never another's address"
        );
        let legacy = MetadataView::from_image(&image_with(&[]), 0);
        assert_eq!(legacy.brokers_on(Some("EXTERNAL")).len(), 1, "no broker names listeners: its one endpoint");
    }

    #[test]
    fn the_view_shows_the_image() {
        let image = image_with(&[("orders", 2)]);
        let view = MetadataView::from_image(&image, 0);
        assert_eq!(view.cluster_id(), "c1");
        assert_eq!(view.controller_id(), 0);
        assert_eq!(view.brokers(), &[BrokerEndpoint { id: 0, host: "host-0".into(), port: 9092, rack: None }]);
        let t = view.topic("orders").unwrap();
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(t.configs.explicit("retention.ms"), Some("1000"));
        assert_eq!(view.topic_by_id(t.id).map(|t| t.name.as_str()), Some("orders"));
        assert!(view.is_online("orders", 1) && !view.is_online("orders", 2));
    }

    #[test]
    fn the_controller_clients_see_is_always_a_live_broker() {
        let mut image = image_with(&[]);
        let register = |image: &mut ClusterImage, id: i32| {
            let reg = Command::RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::new_v4(),
                advertised_endpoint: format!("host-{id}:9092"),
                internal_endpoint: format!("host-{id}:9093"),
                listeners: Default::default(),
                rack: None,
                max_partitions: None,
            };
            image.apply(10 + id as u64, &reg).unwrap();
        };
        // Broker 2 registered (fenced until its first heartbeat) and is the active controller.
        register(&mut image, 2);
        assert_eq!(MetadataView::from_image(&image, 2).controller_id(), 0, "a fenced controller is not named");
        assert_eq!(MetadataView::from_image(&image, 0).controller_id(), 0);
        assert_eq!(MetadataView::from_image(&image, -1).controller_id(), 0, "no controller known: a live broker");
        let mut lonely = image_with(&[]);
        lonely.brokers.values_mut().for_each(|b| b.fenced = true);
        assert_eq!(MetadataView::from_image(&lonely, 0).controller_id(), NO_CONTROLLER, "no live broker at all");
    }

    #[test]
    fn validation_matches_the_controllers_rules() {
        let view = MetadataView::from_image(&image_with(&[("a.b", 3)]), 0);
        assert!(matches!(view.validate_new_topic("a.b", &[vec![0]], &[]), Err(MetadataError::TopicAlreadyExists(_))));
        assert!(matches!(view.validate_new_topic("a_b", &[vec![0]], &[]), Err(MetadataError::InvalidTopicName { .. })));
        assert!(matches!(
            view.validate_new_topic("c", &[vec![0]], &[("retention.ms".into(), "x".into())]),
            Err(MetadataError::InvalidConfig { .. })
        ));
        assert!(view.validate_new_partitions("a.b", 2).is_err());
        assert_eq!(view.validate_new_partitions("a.b", 5).unwrap(), 3);
        let ops = [ConfigOp::Set("segment.ms".into(), "5".into()), ConfigOp::Set("bogus".into(), "1".into())];
        assert!(view.configs_after("a.b", &ops).is_err());
        let ops = [ConfigOp::Set("segment.ms".into(), "5".into()), ConfigOp::Delete("retention.ms".into())];
        assert_eq!(view.configs_after("a.b", &ops).unwrap(), BTreeMap::from([("segment.ms".into(), "5".into())]));
    }

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert_ne!(id, new_cluster_id());
    }
}
