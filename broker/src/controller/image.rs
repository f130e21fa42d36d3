//! The controller's metadata image and the commands that change it: the
//! replicated state machine of the controller quorum, as plain data.
//!
//! [`ClusterImage::apply`] is a pure, deterministic function of the image,
//! the command and the command's Raft log index: every controller applies the
//! same committed commands in the same order and so holds the same image.
//! It therefore never reads a clock, a random source or the environment;
//! anything non-deterministic (topic ids, which broker to fence and when)
//! is decided by the proposer and carried in the command.
//!
//! Invariants: a refused command leaves the image untouched; a partition's
//! leader is -1 or a member of its ISR; the ISR is a non-empty subset of the
//! replicas; the leader epoch grows at every leader change and the partition
//! epoch at every change of leader or ISR, so a request carrying an older
//! epoch is refused; producer-id blocks never overlap.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::placement::{self, Candidate};
use crate::auth::acl::{AclBinding, AclFilter};
use crate::config::Settings;
use crate::metadata::topic_name;
use crate::quota::ClientQuotas;
use crate::quota::config::{QuotaEntity, QuotaOp};

/// Leader id of a partition without a leader.
pub const NO_LEADER: i32 = -1;

/// Producer ids handed to a broker per `AllocateProducerIdBlock`.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// A registered broker and its liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// Broker id.
    pub broker_id: i32,
    /// Random id of the broker process; a new one means the broker restarted.
    pub incarnation_id: Uuid,
    /// The log index of the registration; requests carry it to prove they
    /// come from this incarnation.
    pub broker_epoch: i64,
    /// Kafka listener given to clients.
    pub advertised_endpoint: String,
    /// Internal gRPC endpoint.
    pub internal_endpoint: String,
    /// Every Kafka listener's advertised endpoint, by listener name (empty
    /// in registrations of earlier releases: `advertised_endpoint` alone).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listeners: BTreeMap<String, String>,
    /// Rack, for placement.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are in no ISR.
    pub fenced: bool,
    /// The broker asked to stop (SIGTERM): it leads nothing and is in no ISR until it re-registers.
    #[serde(default)]
    pub in_controlled_shutdown: bool,
    /// Most partition replicas the broker said it can host (`max.broker.partitions`); `None`: no limit.
    #[serde(default)]
    pub max_partitions: Option<u32>,
}

/// One partition's replicas, leadership and ISR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Replica broker ids; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader broker id, or [`NO_LEADER`].
    pub leader: i32,
    /// Incremented at each leader change.
    pub leader_epoch: i32,
    /// Incremented at each leader or ISR change (KIP-497's partition epoch).
    pub partition_epoch: i32,
    /// The replica reassignment under way, if any (KIP-455).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassignment: Option<Reassignment>,
}

/// A partition moving to a new replica set (KIP-455). While it runs, the
/// partition's `replicas` are the target replicas followed by the ones that
/// will leave; the adding replicas copy the log as followers, and once every
/// one of them is in the ISR the controller drops the leaving replicas (and
/// moves leadership to a target replica if the leader leaves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// Replicas joining the partition.
    pub adding: Vec<i32>,
    /// Replicas leaving the partition once the adding ones are in sync.
    pub removing: Vec<i32>,
    /// Bytes per second an adding replica may fetch while it catches up (0: unthrottled).
    pub throttle_bytes_per_sec: u64,
}

impl PartitionState {
    /// The replicas the partition ends with: the current ones, or a
    /// reassignment's target.
    pub fn target_replicas(&self) -> Vec<i32> {
        match &self.reassignment {
            Some(r) => self.replicas.iter().copied().filter(|b| !r.removing.contains(b)).collect(),
            None => self.replicas.clone(),
        }
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Topic id (KIP-516).
    pub topic_id: Uuid,
    /// Partitions by index.
    pub partitions: Vec<PartitionState>,
    /// Topic-level config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
}

/// The whole cluster metadata image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterImage {
    /// The cluster id, set once by the first `InitCluster`.
    #[serde(default)]
    pub cluster_id: String,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// End (exclusive) of the last producer-id block handed out.
    pub producer_id_block_end: i64,
    /// Cluster-wide dynamic broker settings (`log.retention.ms`, ...), applied
    /// by every broker without a restart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broker_configs: BTreeMap<String, String>,
    /// SCRAM credentials by user, then by mechanism name (`SCRAM-SHA-512`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, crate::auth::scram::ScramCredential>>,
    /// Kafka ACLs (kafka-acls.sh), each once.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub acls: BTreeSet<AclBinding>,
    /// Group config overrides by group id (the GROUP config resource; see
    /// [`crate::group::configs`]). A group need not exist to have them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas (kafka-configs.sh `--entity-type users/clients/ips`).
    #[serde(default, skip_serializing_if = "ClientQuotas::is_empty")]
    pub client_quotas: ClientQuotas,
    /// Controller voters that lost their log and were removed from the
    /// voters until they catch up (see [`super::rejoin`]): only these may be
    /// made voters again by a rejoin, and they count in the quorum's size
    /// meanwhile.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub rejoining_voters: BTreeSet<super::NodeId>,
}

/// How a new topic's replicas are placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicAssignment {
    /// Replica lists given by the caller (e.g. the operator), by partition index.
    Explicit(Vec<Vec<i32>>),
    /// Computed by the controller over the unfenced brokers.
    Computed {
        /// Partition count.
        partitions: i32,
        /// Replicas per partition.
        replication_factor: i32,
    },
}

/// A change to the metadata image: the payload of the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Names the cluster; only the first one counts (every voter proposes one at its first start).
    InitCluster { cluster_id: String },
    /// A broker (re)starts; it is fenced until its first heartbeat. A new
    /// incarnation of an unfenced broker first loses its leaderships and ISR
    /// places, since the restarted process must catch up again.
    RegisterBroker {
        broker_id: i32,
        incarnation_id: Uuid,
        advertised_endpoint: String,
        internal_endpoint: String,
        /// Every listener's advertised endpoint, by listener name.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        listeners: BTreeMap<String, String>,
        rack: Option<String>,
        /// Most partition replicas this broker can host (`max.broker.partitions`).
        #[serde(default)]
        max_partitions: Option<u32>,
    },
    /// A live broker's heartbeat; unfences it.
    BrokerHeartbeat { broker_id: i32, broker_epoch: i64 },
    /// A registered broker's listeners are now advertised at `listeners`
    /// (its per-broker address file changed, `--advertised-overrides`): a
    /// listener missing from the map is not advertised. Changes nothing
    /// else of the registration (epoch, fencing, leaderships).
    UpdateBrokerListeners { broker_id: i32, broker_epoch: i64, listeners: BTreeMap<String, String> },
    /// The active controller saw the broker's session expire.
    FenceBroker { broker_id: i32 },
    /// The broker is stopping (SIGTERM): leaderships move to other ISR
    /// members and it leaves every ISR it can leave.
    ControlledShutdown { broker_id: i32, broker_epoch: i64 },
    /// Creates a topic.
    CreateTopic { name: String, topic_id: Uuid, assignment: TopicAssignment, configs: BTreeMap<String, String> },
    /// Deletes a topic.
    DeleteTopic { name: String },
    /// Grows a topic to `total` partitions; `assignment` gives the new
    /// partitions' replicas (else computed with the topic's replication factor).
    CreatePartitions { name: String, total: i32, assignment: Option<Vec<Vec<i32>>> },
    /// Replaces a topic's config overrides with `configs`.
    AlterTopicConfigs { name: String, configs: BTreeMap<String, String> },
    /// Replaces the cluster-wide dynamic broker settings with `configs`.
    AlterBrokerConfigs { configs: BTreeMap<String, String> },
    /// Replace a group's config overrides (none: the group's entry goes).
    AlterGroupConfigs { group: String, configs: BTreeMap<String, String> },
    /// Moves a partition onto `target` replicas (Kafka's
    /// AlterPartitionReassignments); see [`Reassignment`]. Repeating the
    /// running reassignment's target only updates its throttle.
    ReassignPartition { topic: String, partition: i32, target: Vec<i32>, throttle_bytes_per_sec: u64 },
    /// A partition leader changes its ISR (Kafka's AlterPartition).
    AlterIsr {
        topic: String,
        partition: i32,
        leader_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
    /// Elects a leader: the preferred replica if it is in the ISR and
    /// unfenced, else another unfenced ISR member; outside the ISR only when
    /// `allow_unclean`.
    ElectLeader { topic: String, partition: i32, allow_unclean: bool },
    /// Reserves a block of producer ids for a broker.
    AllocateProducerIdBlock { broker_id: i32 },
    /// Sets and deletes SCRAM credentials (AlterUserScramCredentials):
    /// `upserts` are (user, mechanism name, credential), `deletions` (user,
    /// mechanism name); deleting a missing credential does nothing.
    AlterScramCredentials {
        upserts: Vec<(String, String, crate::auth::scram::ScramCredential)>,
        deletions: Vec<(String, String)>,
    },
    /// Adds ACLs (CreateAcls); ones already stored are kept once.
    CreateAcls { bindings: Vec<AclBinding> },
    /// Removes every ACL any of the filters matches (DeleteAcls).
    DeleteAcls { filters: Vec<AclFilter> },
    /// Sets and removes client quota values (AlterClientQuotas), entity by
    /// entity; all or nothing.
    AlterClientQuotas { alterations: Vec<(QuotaEntity, Vec<QuotaOp>)> },
    /// A controller voter lost its log: the active controller records it
    /// before removing it from the voters (only the active controller
    /// proposes it).
    VoterRejoining { node_id: super::NodeId },
    /// A rejoining voter is a voter again, or is no longer meant to be one
    /// (only the active controller proposes it).
    VoterRejoined { node_id: super::NodeId },
}

/// What an applied command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing to report (also the result of Raft's own entries).
    Done,
    /// The broker's new epoch.
    Registered { broker_epoch: i64 },
    /// The created topic's assignment.
    TopicCreated { topic_id: Uuid, assignment: Vec<Vec<i32>> },
    /// The partition after an ISR change.
    IsrAltered { partition_epoch: i32 },
    /// The leader after an election ([`NO_LEADER`] when none was eligible).
    LeaderElected { leader: i32, leader_epoch: i32 },
    /// Producer ids `first .. first + size`.
    ProducerIdBlock { first: i64, size: i64 },
    /// Per DeleteAcls filter, in order, the ACLs it matched (and that were removed).
    AclsDeleted { per_filter: Vec<Vec<AclBinding>> },
}

/// A refused command. Serializable: it travels back to a forwarding node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    /// Kafka: BROKER_ID_NOT_REGISTERED.
    #[error("broker {0} is not registered; it must register before sending this request")]
    UnknownBroker(i32),
    /// Kafka: STALE_BROKER_EPOCH.
    #[error("broker {broker_id} sent epoch {got} but its current epoch is {current}; it must re-register")]
    StaleBrokerEpoch { broker_id: i32, current: i64, got: i64 },
    /// Kafka: TOPIC_ALREADY_EXISTS.
    #[error("topic `{0}` already exists")]
    TopicAlreadyExists(String),
    /// Kafka: UNKNOWN_TOPIC_OR_PARTITION.
    #[error("partition {partition} of topic `{topic}` does not exist")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    /// Kafka: INVALID_TOPIC_EXCEPTION.
    #[error("invalid topic name `{name}`: {reason}")]
    InvalidTopic { name: String, reason: String },
    /// Kafka: INVALID_REPLICATION_FACTOR / INVALID_PARTITIONS.
    #[error("cannot place topic `{topic}`: {reason}")]
    InvalidPlacement { topic: String, reason: String },
    /// Kafka: INVALID_REPLICA_ASSIGNMENT.
    #[error("invalid replica assignment for topic `{topic}`: {reason}")]
    InvalidReplicaAssignment { topic: String, reason: String },
    /// Kafka: INVALID_CONFIG.
    #[error("invalid config for topic `{topic}`: {reason}")]
    InvalidConfig { topic: String, reason: String },
    /// Kafka: NOT_LEADER_OR_FOLLOWER.
    #[error("broker {broker_id} is not the leader of `{topic}`-{partition} (leader is {leader})")]
    NotLeader { topic: String, partition: i32, broker_id: i32, leader: i32 },
    /// Kafka: FENCED_LEADER_EPOCH.
    #[error("leader epoch {got} of `{topic}`-{partition} is stale; current is {current}")]
    FencedLeaderEpoch { topic: String, partition: i32, current: i32, got: i32 },
    /// Kafka: INVALID_UPDATE_VERSION — the request was built on an older partition state.
    #[error("partition epoch {got} of `{topic}`-{partition} is stale; current is {current}; refetch and retry")]
    StalePartitionEpoch { topic: String, partition: i32, current: i32, got: i32 },
    /// Kafka: INVALID_REQUEST.
    #[error("invalid ISR {isr:?} for `{topic}`-{partition}: {reason}")]
    InvalidIsr { topic: String, partition: i32, isr: Vec<i32>, reason: String },
    /// Kafka: INVALID_CONFIG, for a group config.
    #[error("invalid config for group `{group}`: {reason}")]
    InvalidGroupConfig { group: String, reason: String },
    /// Kafka: INVALID_CONFIG, for a broker setting.
    #[error("invalid dynamic broker setting: {reason}")]
    InvalidBrokerConfig { reason: String },
    /// Kafka: REASSIGNMENT_IN_PROGRESS.
    #[error("`{topic}`-{partition} is already being moved to replicas {target:?}; wait for it to finish")]
    ReassignmentInProgress { topic: String, partition: i32, target: Vec<i32> },
    /// Kafka: ELIGIBLE_LEADERS_NOT_AVAILABLE.
    #[error("no unfenced ISR member of `{topic}`-{partition} can lead; enable unclean election to risk data loss")]
    EligibleLeadersNotAvailable { topic: String, partition: i32 },
    /// Kafka: POLICY_VIOLATION — a broker would host more replicas than it can.
    #[error(
        "`{topic}` would place {would_host} partition replicas on broker {broker_id}, which can host at most {limit} \
         (max.broker.partitions, derived from its memory unless set); use fewer partitions or more brokers"
    )]
    PartitionLimit { topic: String, broker_id: i32, would_host: u64, limit: u32 },
    /// Kafka: INVALID_REQUEST, for a client quota.
    #[error("invalid client quota alteration of `{entity}`: {reason}")]
    InvalidClientQuota { entity: String, reason: String },
}

/// The result an applied log entry hands back to its proposer.
pub type CommandResult = Result<Outcome, CommandError>;

impl ClusterImage {
    /// Applies one committed command at Raft log index `index`.
    pub fn apply(&mut self, index: u64, command: &Command) -> CommandResult {
        match command {
            Command::InitCluster { cluster_id } => {
                if self.cluster_id.is_empty() {
                    self.cluster_id = cluster_id.clone();
                }
                Ok(Outcome::Done)
            }
            Command::RegisterBroker {
                broker_id,
                incarnation_id,
                advertised_endpoint,
                internal_endpoint,
                listeners,
                rack,
                max_partitions,
            } => {
                if let Some(old) = self.brokers.get(broker_id)
                    && !old.fenced
                    && old.incarnation_id != *incarnation_id
                {
                    self.on_fenced(*broker_id);
                }
                let broker_epoch = index as i64;
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        broker_id: *broker_id,
                        incarnation_id: *incarnation_id,
                        broker_epoch,
                        advertised_endpoint: advertised_endpoint.clone(),
                        internal_endpoint: internal_endpoint.clone(),
                        listeners: listeners.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                        max_partitions: *max_partitions,
                    },
                );
                Ok(Outcome::Registered { broker_epoch })
            }
            Command::BrokerHeartbeat { broker_id, broker_epoch } => {
                let broker = self.registered(*broker_id, *broker_epoch)?;
                if broker.fenced {
                    broker.fenced = false;
                    self.on_unfenced(*broker_id);
                }
                Ok(Outcome::Done)
            }
            Command::UpdateBrokerListeners { broker_id, broker_epoch, listeners } => {
                self.registered(*broker_id, *broker_epoch)?.listeners = listeners.clone();
                Ok(Outcome::Done)
            }
            Command::FenceBroker { broker_id } => {
                let broker = self.brokers.get_mut(broker_id).ok_or(CommandError::UnknownBroker(*broker_id))?;
                if !broker.fenced {
                    broker.fenced = true;
                    self.on_fenced(*broker_id);
                }
                Ok(Outcome::Done)
            }
            Command::ControlledShutdown { broker_id, broker_epoch } => {
                let broker = self.registered(*broker_id, *broker_epoch)?;
                broker.in_controlled_shutdown = true;
                if !broker.fenced {
                    broker.fenced = true;
                    self.on_fenced(*broker_id);
                }
                Ok(Outcome::Done)
            }
            Command::CreateTopic { name, topic_id, assignment, configs } => {
                self.create_topic(name, *topic_id, assignment, configs)
            }
            Command::CreatePartitions { name, total, assignment } => {
                self.create_partitions(name, *total, assignment.as_deref())
            }
            Command::AlterTopicConfigs { name, configs } => {
                let settings_error = |reason: String| CommandError::InvalidConfig { topic: name.clone(), reason };
                let mut settings = Settings::topic_overrides();
                for (k, v) in configs {
                    settings.set(k, v).map_err(|e| settings_error(e.to_string()))?;
                }
                let topic = self
                    .topics
                    .get_mut(name)
                    .ok_or_else(|| CommandError::UnknownTopicOrPartition { topic: name.clone(), partition: -1 })?;
                topic.configs = configs.clone();
                Ok(Outcome::Done)
            }
            Command::AlterScramCredentials { upserts, deletions } => {
                for (user, mechanism) in deletions {
                    if let Some(by_mechanism) = self.scram_credentials.get_mut(user) {
                        by_mechanism.remove(mechanism);
                        if by_mechanism.is_empty() {
                            self.scram_credentials.remove(user);
                        }
                    }
                }
                for (user, mechanism, credential) in upserts {
                    self.scram_credentials
                        .entry(user.clone())
                        .or_default()
                        .insert(mechanism.clone(), credential.clone());
                }
                Ok(Outcome::Done)
            }
            Command::AlterBrokerConfigs { configs } => {
                let mut settings = Settings::broker_defaults();
                for (k, v) in configs {
                    if !crate::config::settings::is_dynamic_broker_setting(k) {
                        return Err(CommandError::InvalidBrokerConfig {
                            reason: format!(
                                "`{k}` is read at start and cannot change on running brokers (dynamic ones are the \
                                 broker defaults of topic settings, such as log.retention.ms)"
                            ),
                        });
                    }
                    settings.set(k, v).map_err(|e| CommandError::InvalidBrokerConfig { reason: e.to_string() })?;
                }
                self.broker_configs = configs.clone();
                Ok(Outcome::Done)
            }
            Command::AlterGroupConfigs { group, configs } => {
                crate::group::configs::validate(configs)
                    .map_err(|e| CommandError::InvalidGroupConfig { group: group.clone(), reason: e.to_string() })?;
                if configs.is_empty() {
                    self.group_configs.remove(group);
                } else {
                    self.group_configs.insert(group.clone(), configs.clone());
                }
                Ok(Outcome::Done)
            }
            Command::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => Ok(Outcome::Done),
                None => Err(CommandError::UnknownTopicOrPartition { topic: name.clone(), partition: -1 }),
            },
            Command::ReassignPartition { topic, partition, target, throttle_bytes_per_sec } => {
                self.reassign(topic, *partition, target, *throttle_bytes_per_sec)
            }
            Command::AlterIsr { topic, partition, leader_id, leader_epoch, partition_epoch, new_isr } => {
                self.alter_isr(topic, *partition, *leader_id, *leader_epoch, *partition_epoch, new_isr)
            }
            Command::ElectLeader { topic, partition, allow_unclean } => {
                let live = self.unfenced();
                let p = self.partition_mut(topic, *partition)?;
                match elect(p, &live, *allow_unclean) {
                    Some(leader) => {
                        if leader != p.leader {
                            set_leader(p, leader);
                        }
                        Ok(Outcome::LeaderElected { leader: p.leader, leader_epoch: p.leader_epoch })
                    }
                    None => {
                        Err(CommandError::EligibleLeadersNotAvailable { topic: topic.clone(), partition: *partition })
                    }
                }
            }
            Command::AllocateProducerIdBlock { broker_id } => {
                if !self.brokers.contains_key(broker_id) {
                    return Err(CommandError::UnknownBroker(*broker_id));
                }
                let first = self.producer_id_block_end;
                self.producer_id_block_end += PRODUCER_ID_BLOCK_SIZE;
                Ok(Outcome::ProducerIdBlock { first, size: PRODUCER_ID_BLOCK_SIZE })
            }
            Command::CreateAcls { bindings } => {
                self.acls.extend(bindings.iter().cloned());
                Ok(Outcome::Done)
            }
            Command::DeleteAcls { filters } => {
                let per_filter: Vec<Vec<AclBinding>> =
                    filters.iter().map(|f| self.acls.iter().filter(|b| f.matches(b)).cloned().collect()).collect();
                self.acls.retain(|b| !filters.iter().any(|f| f.matches(b)));
                Ok(Outcome::AclsDeleted { per_filter })
            }
            Command::AlterClientQuotas { alterations } => {
                let mut quotas = self.client_quotas.clone();
                for (entity, ops) in alterations {
                    quotas.alter(entity, ops).map_err(|e| CommandError::InvalidClientQuota {
                        entity: entity.to_string(),
                        reason: e.to_string(),
                    })?;
                }
                self.client_quotas = quotas;
                Ok(Outcome::Done)
            }
            Command::VoterRejoining { node_id } => {
                self.rejoining_voters.insert(*node_id);
                Ok(Outcome::Done)
            }
            Command::VoterRejoined { node_id } => {
                self.rejoining_voters.remove(node_id);
                Ok(Outcome::Done)
            }
        }
    }

    /// The registration of `broker_id`, if `broker_epoch` is its current epoch.
    fn registered(&mut self, broker_id: i32, broker_epoch: i64) -> Result<&mut BrokerRegistration, CommandError> {
        let broker = self.brokers.get_mut(&broker_id).ok_or(CommandError::UnknownBroker(broker_id))?;
        if broker.broker_epoch != broker_epoch {
            return Err(CommandError::StaleBrokerEpoch { broker_id, current: broker.broker_epoch, got: broker_epoch });
        }
        Ok(broker)
    }

    /// Partition `index` of `topic`.
    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(usize::try_from(index).ok()?)
    }

    fn partition_mut(&mut self, topic: &str, index: i32) -> Result<&mut PartitionState, CommandError> {
        let unknown = || CommandError::UnknownTopicOrPartition { topic: topic.to_string(), partition: index };
        let i = usize::try_from(index).map_err(|_| unknown())?;
        self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(i)).ok_or_else(unknown)
    }

    fn unfenced(&self) -> Vec<i32> {
        self.brokers.values().filter(|b| !b.fenced).map(|b| b.broker_id).collect()
    }

    fn all_partitions_mut(&mut self) -> impl Iterator<Item = &mut PartitionState> {
        self.topics.values_mut().flat_map(|t| t.partitions.iter_mut())
    }

    /// A fenced broker leaves every ISR it can leave (never emptying one) and
    /// hands its leaderships to other unfenced ISR members.
    fn on_fenced(&mut self, broker_id: i32) {
        let live = self.unfenced();
        for p in self.all_partitions_mut() {
            if p.isr.contains(&broker_id) && p.isr.len() > 1 {
                p.isr.retain(|&r| r != broker_id);
                p.partition_epoch += 1;
            }
            if p.leader == broker_id {
                let next = elect(p, &live, false).unwrap_or(NO_LEADER);
                set_leader(p, next);
            }
        }
    }

    /// An unfenced broker takes back leadership of offline partitions whose
    /// ISR it is in.
    fn on_unfenced(&mut self, broker_id: i32) {
        let live = self.unfenced();
        for p in self.all_partitions_mut() {
            if p.leader == NO_LEADER && p.isr.contains(&broker_id) {
                set_leader(p, broker_id);
            }
            complete_reassignment(p, &live);
        }
    }

    fn create_topic(
        &mut self,
        name: &str,
        topic_id: Uuid,
        assignment: &TopicAssignment,
        configs: &BTreeMap<String, String>,
    ) -> CommandResult {
        topic_name::validate(name)
            .map_err(|e| CommandError::InvalidTopic { name: name.to_string(), reason: e.to_string() })?;
        if self.topics.contains_key(name) {
            return Err(CommandError::TopicAlreadyExists(name.to_string()));
        }
        let key = topic_name::collision_key(name);
        if let Some(other) = self.topics.keys().find(|t| topic_name::collision_key(t) == key) {
            return Err(CommandError::InvalidTopic {
                name: name.to_string(),
                reason: format!("it collides with existing topic `{other}` because '.' and '_' are treated alike"),
            });
        }
        let mut settings = Settings::topic_overrides();
        for (k, v) in configs {
            settings
                .set(k, v)
                .map_err(|e| CommandError::InvalidConfig { topic: name.to_string(), reason: e.to_string() })?;
        }
        let replicas = match assignment {
            TopicAssignment::Explicit(lists) => {
                self.check_assignment(name, lists)?;
                lists.clone()
            }
            TopicAssignment::Computed { partitions, replication_factor } => {
                let candidates: Vec<Candidate> = self
                    .brokers
                    .values()
                    .filter(|b| !b.fenced)
                    .map(|b| Candidate { broker_id: b.broker_id, rack: b.rack.clone() })
                    .collect();
                // Existing partitions shift the first leader so that leaders of
                // successive topics do not pile up on the same broker.
                let start = self.topics.values().map(|t| t.partitions.len()).sum();
                placement::assign(&candidates, *partitions, *replication_factor, start)
                    .map_err(|e| CommandError::InvalidPlacement { topic: name.to_string(), reason: e.to_string() })?
            }
        };
        self.check_partition_limits(name, &replicas)?;
        let live = self.unfenced();
        let partitions = replicas.iter().map(|r| new_partition(r, &live)).collect();
        self.topics.insert(name.to_string(), TopicImage { topic_id, partitions, configs: configs.clone() });
        Ok(Outcome::TopicCreated { topic_id, assignment: replicas })
    }

    fn create_partitions(&mut self, name: &str, total: i32, assignment: Option<&[Vec<i32>]>) -> CommandResult {
        let unknown = || CommandError::UnknownTopicOrPartition { topic: name.to_string(), partition: -1 };
        let topic = self.topics.get(name).ok_or_else(unknown)?;
        let current = topic.partitions.len();
        let rf = topic.partitions.first().map(|p| p.target_replicas().len()).unwrap_or(1);
        let invalid = |reason: String| CommandError::InvalidPlacement { topic: name.to_string(), reason };
        if total <= current as i32 {
            return Err(invalid(format!(
                "the topic has {current} partitions; the new count {total} must be larger (partitions are never removed)"
            )));
        }
        let added = total as usize - current;
        let replicas = match assignment {
            Some(lists) => {
                if lists.len() != added {
                    return Err(CommandError::InvalidReplicaAssignment {
                        topic: name.to_string(),
                        reason: format!("{} replica lists given for {added} new partitions", lists.len()),
                    });
                }
                self.check_assignment(name, lists)?;
                if let Some(l) = lists.iter().find(|l| l.len() != rf) {
                    return Err(CommandError::InvalidReplicaAssignment {
                        topic: name.to_string(),
                        reason: format!("a new partition has {} replicas but the topic has {rf}", l.len()),
                    });
                }
                lists.to_vec()
            }
            None => {
                let candidates: Vec<Candidate> = self
                    .brokers
                    .values()
                    .filter(|b| !b.fenced)
                    .map(|b| Candidate { broker_id: b.broker_id, rack: b.rack.clone() })
                    .collect();
                placement::assign(&candidates, added as i32, rf as i32, current).map_err(|e| invalid(e.to_string()))?
            }
        };
        self.check_partition_limits(name, &replicas)?;
        let live = self.unfenced();
        let new = replicas.iter().map(|r| new_partition(r, &live));
        let topic = self.topics.get_mut(name).ok_or_else(unknown)?;
        topic.partitions.extend(new);
        Ok(Outcome::Done)
    }

    /// Refuses `added` replica lists that would take a broker past the
    /// partition replicas it registered it can host.
    fn check_partition_limits(&self, topic: &str, added: &[Vec<i32>]) -> Result<(), CommandError> {
        let mut adding: BTreeMap<i32, u64> = BTreeMap::new();
        for broker_id in added.iter().flatten() {
            *adding.entry(*broker_id).or_default() += 1;
        }
        for (broker_id, extra) in adding {
            let Some(limit) = self.brokers.get(&broker_id).and_then(|b| b.max_partitions) else {
                continue;
            };
            let hosted = self.hosted_replicas(broker_id);
            if hosted + extra > u64::from(limit) {
                return Err(CommandError::PartitionLimit {
                    topic: topic.to_string(),
                    broker_id,
                    would_host: hosted + extra,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// Partition replicas placed on `broker_id`, those joining by reassignment included.
    pub fn hosted_replicas(&self, broker_id: i32) -> u64 {
        let partitions = self.topics.values().flat_map(|t| &t.partitions);
        partitions.filter(|p| p.replicas.contains(&broker_id)).count() as u64
    }

    fn check_assignment(&self, topic: &str, lists: &[Vec<i32>]) -> Result<(), CommandError> {
        let invalid = |reason: String| CommandError::InvalidReplicaAssignment { topic: topic.to_string(), reason };
        let Some(first) = lists.first() else {
            return Err(invalid("a topic needs at least 1 partition".into()));
        };
        for (p, replicas) in lists.iter().enumerate() {
            if replicas.is_empty() {
                return Err(invalid(format!("partition {p} has no replicas")));
            }
            if replicas.len() != first.len() {
                return Err(invalid(format!(
                    "partition {p} has {} replicas but partition 0 has {}; all must be equal",
                    replicas.len(),
                    first.len()
                )));
            }
            for (i, r) in replicas.iter().enumerate() {
                if replicas[..i].contains(r) {
                    return Err(invalid(format!("partition {p} lists broker {r} twice")));
                }
                if !self.brokers.contains_key(r) {
                    return Err(invalid(format!("partition {p} names broker {r}, which is not registered")));
                }
            }
        }
        Ok(())
    }

    fn alter_isr(
        &mut self,
        topic: &str,
        partition: i32,
        leader_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: &[i32],
    ) -> CommandResult {
        let live = self.unfenced();
        let p = self.partition_mut(topic, partition)?;
        let topic = topic.to_string();
        if p.leader != leader_id {
            return Err(CommandError::NotLeader { topic, partition, broker_id: leader_id, leader: p.leader });
        }
        if leader_epoch != p.leader_epoch {
            return Err(CommandError::FencedLeaderEpoch {
                topic,
                partition,
                current: p.leader_epoch,
                got: leader_epoch,
            });
        }
        if partition_epoch != p.partition_epoch {
            return Err(CommandError::StalePartitionEpoch {
                topic,
                partition,
                current: p.partition_epoch,
                got: partition_epoch,
            });
        }
        let invalid = |reason: &str| CommandError::InvalidIsr {
            topic: topic.clone(),
            partition,
            isr: new_isr.to_vec(),
            reason: reason.to_string(),
        };
        // A leader leaving the ISR (its log is damaged) steps aside: the
        // rest must be members already, and one of them live to lead.
        let resigning = !new_isr.contains(&leader_id);
        if resigning && new_isr.iter().any(|r| !p.isr.contains(r)) {
            return Err(invalid("a leader leaving the ISR may only keep current members"));
        }
        if resigning && !new_isr.iter().any(|r| live.contains(r)) {
            return Err(invalid("the leader may leave the ISR only for a live member to lead"));
        }
        if let Some(r) = new_isr.iter().find(|r| !p.replicas.contains(r)) {
            return Err(invalid(&format!("broker {r} is not a replica")));
        }
        if let Some(r) = new_isr.iter().find(|r| !p.isr.contains(r) && !live.contains(r)) {
            return Err(invalid(&format!("broker {r} is fenced and cannot join the ISR")));
        }
        let mut isr = Vec::with_capacity(new_isr.len());
        for r in new_isr {
            if !isr.contains(r) {
                isr.push(*r);
            }
        }
        p.isr = isr;
        if resigning {
            // Elected among the remaining members only (never unclean).
            let next = elect(p, &live, false).unwrap_or(NO_LEADER);
            set_leader(p, next);
        } else {
            p.partition_epoch += 1;
        }
        complete_reassignment(p, &live);
        Ok(Outcome::IsrAltered { partition_epoch: p.partition_epoch })
    }

    fn reassign(&mut self, topic: &str, partition: i32, target: &[i32], throttle_bytes_per_sec: u64) -> CommandResult {
        let invalid = |reason: String| CommandError::InvalidReplicaAssignment { topic: topic.to_string(), reason };
        if target.is_empty() {
            return Err(invalid(format!("partition {partition} cannot be moved to an empty replica list")));
        }
        for (i, r) in target.iter().enumerate() {
            if target[..i].contains(r) {
                return Err(invalid(format!("partition {partition}'s new replicas list broker {r} twice")));
            }
            if !self.brokers.contains_key(r) {
                return Err(invalid(format!(
                    "partition {partition}'s new replicas name broker {r}, which is not registered"
                )));
            }
        }
        let (joining, moving) = {
            let unknown = || CommandError::UnknownTopicOrPartition { topic: topic.to_string(), partition };
            let current = self.partition(topic, partition).ok_or_else(unknown)?;
            let joining: Vec<i32> = target.iter().copied().filter(|b| !current.replicas.contains(b)).collect();
            (joining, current.reassignment.is_some())
        };
        // A running move answers REASSIGNMENT_IN_PROGRESS below; its joining replicas are already counted.
        if !moving {
            self.check_partition_limits(topic, &[joining])?;
        }
        let live = self.unfenced();
        let p = self.partition_mut(topic, partition)?;
        if p.reassignment.is_some() {
            let running = p.target_replicas();
            if running != target {
                return Err(CommandError::ReassignmentInProgress {
                    topic: topic.to_string(),
                    partition,
                    target: running,
                });
            }
            if let Some(r) = &mut p.reassignment {
                r.throttle_bytes_per_sec = throttle_bytes_per_sec;
            }
            return Ok(Outcome::Done);
        }
        if p.replicas == target {
            return Ok(Outcome::Done);
        }
        let adding: Vec<i32> = target.iter().copied().filter(|b| !p.replicas.contains(b)).collect();
        let removing: Vec<i32> = p.replicas.iter().copied().filter(|b| !target.contains(b)).collect();
        p.replicas = target.iter().chain(&removing).copied().collect();
        p.reassignment = Some(Reassignment { adding, removing, throttle_bytes_per_sec });
        p.partition_epoch += 1;
        complete_reassignment(p, &live);
        Ok(Outcome::Done)
    }
}

/// Ends `p`'s reassignment once every adding replica is in the ISR and a
/// target replica can lead: the leaving replicas drop out of the replicas
/// and the ISR, and leadership moves to the first live in-sync target
/// replica if the leader is leaving. Otherwise leaves `p` as it is.
fn complete_reassignment(p: &mut PartitionState, live: &[i32]) {
    let Some(r) = &p.reassignment else { return };
    if !r.adding.iter().all(|b| p.isr.contains(b)) {
        return;
    }
    let target = p.target_replicas();
    let isr: Vec<i32> = p.isr.iter().copied().filter(|b| target.contains(b)).collect();
    let leader = if target.contains(&p.leader) {
        p.leader
    } else {
        match target.iter().copied().find(|b| isr.contains(b) && live.contains(b)) {
            Some(b) => b,
            None => return,
        }
    };
    if isr.is_empty() {
        return;
    }
    p.replicas = target;
    p.isr = isr;
    p.reassignment = None;
    if leader != p.leader {
        p.leader = leader;
        p.leader_epoch += 1;
    }
    p.partition_epoch += 1;
}

/// A new partition: every replica starts in the ISR (all logs are empty);
/// the first unfenced one leads.
fn new_partition(replicas: &[i32], live: &[i32]) -> PartitionState {
    let leader = replicas.iter().copied().find(|b| live.contains(b)).unwrap_or(NO_LEADER);
    PartitionState {
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        reassignment: None,
    }
}

/// The leader an election picks: the preferred replica if it is an unfenced
/// ISR member, else the first unfenced ISR member in replica order, else —
/// only if `allow_unclean` — the first unfenced replica.
fn elect(p: &PartitionState, live: &[i32], allow_unclean: bool) -> Option<i32> {
    let clean = p.replicas.iter().copied().find(|r| p.isr.contains(r) && live.contains(r));
    clean.or_else(|| if allow_unclean { p.replicas.iter().copied().find(|r| live.contains(r)) } else { None })
}

fn set_leader(p: &mut PartitionState, leader: i32) {
    if leader != NO_LEADER && !p.isr.contains(&leader) {
        // Unclean election: the new leader's log is the truth now.
        p.isr = vec![leader];
    }
    p.leader = leader;
    p.leader_epoch += 1;
    p.partition_epoch += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(image: &mut ClusterImage, index: u64, id: i32, rack: &str) -> i64 {
        let cmd = Command::RegisterBroker {
            broker_id: id,
            incarnation_id: Uuid::new_v4(),
            advertised_endpoint: format!("b{id}:9092"),
            internal_endpoint: format!("b{id}:9093"),
            listeners: Default::default(),
            rack: Some(rack.into()),
            max_partitions: None,
        };
        let Ok(Outcome::Registered { broker_epoch }) = image.apply(index, &cmd) else { panic!("register") };
        image.apply(index + 1, &Command::BrokerHeartbeat { broker_id: id, broker_epoch }).unwrap();
        broker_epoch
    }

    fn cluster_of_three() -> ClusterImage {
        let mut image = ClusterImage::default();
        for id in 0..3 {
            register(&mut image, 10 + 2 * id as u64, id, ["a", "b", "c"][id as usize]);
        }
        let cmd = Command::CreateTopic {
            name: "t".into(),
            topic_id: Uuid::new_v4(),
            assignment: TopicAssignment::Explicit(vec![vec![0, 1, 2]]),
            configs: BTreeMap::new(),
        };
        image.apply(20, &cmd).unwrap();
        image
    }

    #[test]
    fn a_listener_update_changes_only_the_current_registrations_endpoints() {
        let mut image = cluster_of_three();
        let epoch = image.brokers[&1].broker_epoch;
        let leaders = image.topics["t"].partitions[0].clone();
        let external: BTreeMap<String, String> = [("EXTERNAL".to_string(), "ext-1:31001".to_string())].into();
        let update = Command::UpdateBrokerListeners { broker_id: 1, broker_epoch: epoch, listeners: external.clone() };
        assert_eq!(image.apply(30, &update), Ok(Outcome::Done));
        let b = &image.brokers[&1];
        assert_eq!((&b.listeners, b.broker_epoch, b.fenced), (&external, epoch, false), "epoch and fencing kept");
        assert_eq!(image.topics["t"].partitions[0], leaders, "leaderships untouched");
        let stale =
            Command::UpdateBrokerListeners { broker_id: 1, broker_epoch: epoch - 1, listeners: BTreeMap::new() };
        assert!(matches!(image.apply(31, &stale), Err(CommandError::StaleBrokerEpoch { .. })));
        let unknown = Command::UpdateBrokerListeners { broker_id: 7, broker_epoch: epoch, listeners: BTreeMap::new() };
        assert_eq!(image.apply(32, &unknown), Err(CommandError::UnknownBroker(7)));
        assert_eq!(image.brokers[&1].listeners, external, "refused updates change nothing");
    }

    #[test]
    fn computed_topics_spread_leaders_over_unfenced_brokers() {
        let mut image = cluster_of_three();
        let cmd = Command::CreateTopic {
            name: "u".into(),
            topic_id: Uuid::new_v4(),
            assignment: TopicAssignment::Computed { partitions: 6, replication_factor: 2 },
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        };
        let Ok(Outcome::TopicCreated { assignment, .. }) = image.apply(30, &cmd) else { panic!() };
        let mut leaders = BTreeMap::new();
        for (p, r) in assignment.iter().enumerate() {
            *leaders.entry(r[0]).or_insert(0) += 1;
            assert_eq!(image.partition("u", p as i32).unwrap().leader, r[0]);
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        let again = image.apply(31, &cmd);
        assert_eq!(again, Err(CommandError::TopicAlreadyExists("u".into())));
    }

    #[test]
    fn invalid_topics_are_refused_without_change() {
        let mut image = cluster_of_three();
        let before = image.clone();
        let bad = [
            ("bad name!", TopicAssignment::Explicit(vec![vec![0]]), BTreeMap::new()),
            ("x", TopicAssignment::Explicit(vec![vec![0, 0]]), BTreeMap::new()),
            ("x", TopicAssignment::Explicit(vec![vec![7]]), BTreeMap::new()),
            ("x", TopicAssignment::Computed { partitions: 1, replication_factor: 4 }, BTreeMap::new()),
            ("x", TopicAssignment::Explicit(vec![vec![0]]), BTreeMap::from([("bogus".into(), "1".into())])),
        ];
        for (name, assignment, configs) in bad {
            let cmd = Command::CreateTopic { name: name.into(), topic_id: Uuid::new_v4(), assignment, configs };
            assert!(image.apply(40, &cmd).is_err(), "{cmd:?} was accepted");
        }
        assert_eq!(image, before);
    }

    #[test]
    fn stale_isr_changes_are_refused() {
        let mut image = cluster_of_three();
        let shrink = |partition_epoch, leader_epoch| Command::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader_id: 0,
            leader_epoch,
            partition_epoch,
            new_isr: vec![0, 1],
        };
        assert_eq!(image.apply(30, &shrink(0, 0)), Ok(Outcome::IsrAltered { partition_epoch: 1 }));
        assert!(matches!(image.apply(31, &shrink(0, 0)), Err(CommandError::StalePartitionEpoch { current: 1, .. })));
        assert!(matches!(image.apply(32, &shrink(1, 5)), Err(CommandError::FencedLeaderEpoch { .. })));
        let not_leader = Command::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader_id: 1,
            leader_epoch: 0,
            partition_epoch: 1,
            new_isr: vec![1],
        };
        assert!(matches!(image.apply(33, &not_leader), Err(CommandError::NotLeader { .. })));
        assert_eq!(image.partition("t", 0).unwrap().isr, vec![0, 1]);
    }

    #[test]
    fn fencing_the_leader_elects_from_the_isr_only() {
        let mut image = cluster_of_three();
        image
            .apply(
                30,
                &Command::AlterIsr {
                    topic: "t".into(),
                    partition: 0,
                    leader_id: 0,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    new_isr: vec![0, 2],
                },
            )
            .unwrap();
        image.apply(31, &Command::FenceBroker { broker_id: 0 }).unwrap();
        let p = image.partition("t", 0).unwrap().clone();
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (2, 1, vec![2]));

        image.apply(32, &Command::FenceBroker { broker_id: 2 }).unwrap();
        let p = image.partition("t", 0).unwrap().clone();
        assert_eq!(p.leader, NO_LEADER, "broker 1 is out of the ISR and must not lead");
        assert_eq!(p.isr, vec![2], "the last ISR member stays, to lead again when it returns");

        let clean = Command::ElectLeader { topic: "t".into(), partition: 0, allow_unclean: false };
        assert!(matches!(image.apply(33, &clean), Err(CommandError::EligibleLeadersNotAvailable { .. })));
        let unclean = Command::ElectLeader { topic: "t".into(), partition: 0, allow_unclean: true };
        assert!(matches!(image.apply(34, &unclean), Ok(Outcome::LeaderElected { leader: 1, .. })));
        assert_eq!(image.partition("t", 0).unwrap().isr, vec![1]);
    }

    #[test]
    fn a_leader_with_a_damaged_log_steps_aside_for_an_in_sync_replica() {
        let mut image = cluster_of_three();
        image.apply(30, &alter_isr_by_leader(&image, &[0, 2])).unwrap();
        // Leaving for a replica outside the ISR, or for nobody, is refused.
        assert!(matches!(image.apply(31, &alter_isr_by_leader(&image, &[1])), Err(CommandError::InvalidIsr { .. })));
        assert!(matches!(image.apply(31, &alter_isr_by_leader(&image, &[])), Err(CommandError::InvalidIsr { .. })));
        let before = image.partition("t", 0).unwrap().clone();
        let Ok(Outcome::IsrAltered { partition_epoch }) = image.apply(32, &alter_isr_by_leader(&image, &[2])) else {
            panic!("a leader may leave the ISR for a live member")
        };
        let p = image.partition("t", 0).unwrap().clone();
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]), "the remaining member leads");
        assert_eq!((p.leader_epoch, p.partition_epoch), (before.leader_epoch + 1, partition_epoch));
        assert!(partition_epoch > before.partition_epoch);
        // The last member cannot leave (no one else is in sync).
        assert!(matches!(image.apply(33, &alter_isr_by_leader(&image, &[])), Err(CommandError::InvalidIsr { .. })));
    }

    #[test]
    fn an_unfenced_isr_member_retakes_an_offline_partition() {
        let mut image = cluster_of_three();
        for (i, b) in [1, 2, 0].into_iter().enumerate() {
            image.apply(30 + i as u64, &Command::FenceBroker { broker_id: b }).unwrap();
        }
        assert_eq!(image.partition("t", 0).unwrap().leader, NO_LEADER);
        let epoch = image.brokers[&0].broker_epoch;
        assert!(matches!(
            image.apply(40, &Command::BrokerHeartbeat { broker_id: 0, broker_epoch: epoch - 1 }),
            Err(CommandError::StaleBrokerEpoch { .. })
        ));
        image.apply(41, &Command::BrokerHeartbeat { broker_id: 0, broker_epoch: epoch }).unwrap();
        assert_eq!(image.partition("t", 0).unwrap().leader, 0);
    }

    #[test]
    fn cluster_id_is_set_once() {
        let mut image = ClusterImage::default();
        image.apply(1, &Command::InitCluster { cluster_id: "first".into() }).unwrap();
        image.apply(2, &Command::InitCluster { cluster_id: "second".into() }).unwrap();
        assert_eq!(image.cluster_id, "first");
    }

    #[test]
    fn controlled_shutdown_moves_leadership_and_checks_the_epoch() {
        let mut image = cluster_of_three();
        let epoch = image.brokers[&0].broker_epoch;
        let stale = Command::ControlledShutdown { broker_id: 0, broker_epoch: epoch + 1 };
        assert!(matches!(image.apply(30, &stale), Err(CommandError::StaleBrokerEpoch { .. })));
        image.apply(31, &Command::ControlledShutdown { broker_id: 0, broker_epoch: epoch }).unwrap();
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2]));
        assert!(image.brokers[&0].in_controlled_shutdown && image.brokers[&0].fenced);
        // A broker that keeps running (a controlled shutdown the operator
        // asked for, then no restart) is unfenced by its next heartbeat, so
        // it is never fenced for good; a broker stopping sends none after it
        // asked (membership::controlled_shutdown).
        image.apply(32, &Command::BrokerHeartbeat { broker_id: 0, broker_epoch: epoch }).unwrap();
        assert!(!image.brokers[&0].fenced);
    }

    #[test]
    fn a_new_incarnation_of_a_live_broker_leaves_the_isr_first() {
        let mut image = cluster_of_three();
        register(&mut image, 40, 0, "a");
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2]), "the restarted broker must catch up before it counts");
    }

    #[test]
    fn rejoining_voters_are_recorded_until_rejoined_and_survive_serialization() {
        let mut image = ClusterImage::default();
        let empty = serde_json::to_string(&image).unwrap();
        assert!(!empty.contains("rejoining_voters"), "an image without rejoins keeps its older form: {empty}");
        image.apply(1, &Command::VoterRejoining { node_id: 2 }).unwrap();
        image.apply(2, &Command::VoterRejoining { node_id: 2 }).unwrap();
        image.apply(3, &Command::VoterRejoining { node_id: 1 }).unwrap();
        let back: ClusterImage = serde_json::from_str(&serde_json::to_string(&image).unwrap()).unwrap();
        assert_eq!(back.rejoining_voters, BTreeSet::from([1, 2]));
        image.apply(4, &Command::VoterRejoined { node_id: 2 }).unwrap();
        image.apply(5, &Command::VoterRejoined { node_id: 7 }).unwrap();
        assert_eq!(image.rejoining_voters, BTreeSet::from([1]));
        let older: ClusterImage = serde_json::from_str(&empty).unwrap();
        assert!(older.rejoining_voters.is_empty());
    }

    #[test]
    fn client_quota_alterations_are_all_or_nothing_and_survive_serialization() {
        use crate::quota::QuotaKey;
        use crate::quota::config::QuotaValue;
        let mut image = ClusterImage::default();
        let alice = QuotaEntity::from_parts([("user", Some("alice"))]).unwrap();
        let ip = QuotaEntity::from_parts([("ip", None)]).unwrap();
        let set = |key, v| QuotaOp { key, value: Some(QuotaValue(v)) };
        let good = (alice.clone(), vec![set(QuotaKey::ProducerByteRate, 1024.0)]);
        // A byte rate on an ip: the whole command is refused, alice's quota too.
        let bad = (ip, vec![set(QuotaKey::ProducerByteRate, 1.0)]);
        let refused = image.apply(1, &Command::AlterClientQuotas { alterations: vec![good.clone(), bad] });
        assert!(matches!(refused, Err(CommandError::InvalidClientQuota { .. })), "{refused:?}");
        assert!(image.client_quotas.is_empty());
        image.apply(2, &Command::AlterClientQuotas { alterations: vec![good] }).unwrap();
        let back: ClusterImage = serde_json::from_str(&serde_json::to_string(&image).unwrap()).unwrap();
        assert_eq!(back, image);
        assert_eq!(
            back.client_quotas.resolve(QuotaKey::ProducerByteRate, "alice", "any").map(|q| q.bound),
            Some(1024.0)
        );
    }

    #[test]
    fn partitions_grow_and_configs_are_replaced_after_validation() {
        let mut image = cluster_of_three();
        let shrink = Command::CreatePartitions { name: "t".into(), total: 1, assignment: None };
        assert!(matches!(image.apply(30, &shrink), Err(CommandError::InvalidPlacement { .. })));
        let grow = Command::CreatePartitions { name: "t".into(), total: 4, assignment: None };
        image.apply(31, &grow).unwrap();
        let t = &image.topics["t"];
        assert_eq!(t.partitions.len(), 4);
        assert!(t.partitions.iter().all(|p| p.replicas.len() == 3 && p.leader == p.replicas[0]));
        let wrong_rf = Command::CreatePartitions { name: "t".into(), total: 5, assignment: Some(vec![vec![0]]) };
        assert!(matches!(image.apply(32, &wrong_rf), Err(CommandError::InvalidReplicaAssignment { .. })));

        let bad = Command::AlterTopicConfigs {
            name: "t".into(),
            configs: BTreeMap::from([("retention.ms".into(), "soon".into())]),
        };
        assert!(matches!(image.apply(33, &bad), Err(CommandError::InvalidConfig { .. })));
        let good = Command::AlterTopicConfigs {
            name: "t".into(),
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        };
        image.apply(34, &good).unwrap();
        assert_eq!(image.topics["t"].configs.get("retention.ms").map(String::as_str), Some("1000"));
    }

    #[test]
    fn acls_are_stored_once_and_deleted_by_filter() {
        use crate::auth::acl::{AclOperation, AclPermission, PatternType, ResourceType};
        let acl = |name: &str, op| AclBinding {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: op,
            permission: AclPermission::Allow,
        };
        let mut image = ClusterImage::default();
        let create = Command::CreateAcls { bindings: vec![acl("a", AclOperation::Read), acl("b", AclOperation::Read)] };
        image.apply(1, &create).unwrap();
        image.apply(2, &create).unwrap();
        assert_eq!(image.acls.len(), 2, "a repeated ACL is stored once");
        let only_a = AclFilter {
            resource_type: ResourceType::Topic,
            name: Some("a".into()),
            pattern: PatternType::Literal,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        };
        let none = AclFilter { name: Some("zzz".into()), ..only_a.clone() };
        let outcome = image.apply(3, &Command::DeleteAcls { filters: vec![only_a, none] }).unwrap();
        assert_eq!(outcome, Outcome::AclsDeleted { per_filter: vec![vec![acl("a", AclOperation::Read)], vec![]] });
        assert_eq!(image.acls.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["b"]);
        let json = serde_json::to_string(&image).unwrap();
        let back: ClusterImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image, "ACLs survive a snapshot");
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut image = cluster_of_three();
        let a = image.apply(30, &Command::AllocateProducerIdBlock { broker_id: 0 });
        let b = image.apply(31, &Command::AllocateProducerIdBlock { broker_id: 1 });
        assert_eq!(a, Ok(Outcome::ProducerIdBlock { first: 0, size: PRODUCER_ID_BLOCK_SIZE }));
        assert_eq!(b, Ok(Outcome::ProducerIdBlock { first: PRODUCER_ID_BLOCK_SIZE, size: PRODUCER_ID_BLOCK_SIZE }));
        assert_eq!(
            image.apply(32, &Command::AllocateProducerIdBlock { broker_id: 9 }),
            Err(CommandError::UnknownBroker(9))
        );
    }

    fn reassign(target: &[i32]) -> Command {
        Command::ReassignPartition {
            topic: "t".into(),
            partition: 0,
            target: target.to_vec(),
            throttle_bytes_per_sec: 1 << 20,
        }
    }

    fn alter_isr_by_leader(image: &ClusterImage, new_isr: &[i32]) -> Command {
        let p = image.partition("t", 0).unwrap();
        Command::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader_id: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: new_isr.to_vec(),
        }
    }

    #[test]
    fn a_reassignment_completes_once_the_adding_replicas_are_in_sync() {
        let mut image = cluster_of_three();
        register(&mut image, 30, 3, "a");
        // Move [0, 1, 2] to [3, 1, 2]: broker 3 joins, broker 0 (the leader) leaves.
        image.apply(40, &reassign(&[3, 1, 2])).unwrap();
        let p = image.partition("t", 0).unwrap().clone();
        assert_eq!(p.replicas, vec![3, 1, 2, 0], "target first, then the leaving replicas");
        assert_eq!(p.isr, vec![0, 1, 2]);
        assert_eq!(p.leader, 0, "the leader keeps leading while the new replica catches up");
        let r = p.reassignment.clone().unwrap();
        assert_eq!((r.adding, r.removing), (vec![3], vec![0]));
        assert_eq!(p.target_replicas(), vec![3, 1, 2]);

        // Another target while one runs is refused; the same target only updates the throttle.
        assert!(matches!(image.apply(41, &reassign(&[1, 2, 3])), Err(CommandError::ReassignmentInProgress { .. })));
        image.apply(42, &reassign(&[3, 1, 2])).unwrap();

        image.apply(43, &alter_isr_by_leader(&image, &[0, 1, 2, 3])).unwrap();
        let done = image.partition("t", 0).unwrap();
        assert_eq!(done.replicas, vec![3, 1, 2]);
        assert_eq!(done.isr, vec![1, 2, 3]);
        assert_eq!(done.leader, 3, "leadership moves to the first in-sync target replica");
        assert_eq!(done.leader_epoch, p.leader_epoch + 1);
        assert!(done.reassignment.is_none());
    }

    #[test]
    fn shrinking_the_replication_factor_completes_at_once_and_growing_waits() {
        let mut image = cluster_of_three();
        image.apply(30, &reassign(&[1, 2])).unwrap();
        let p = image.partition("t", 0).unwrap().clone();
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![1, 2], vec![1, 2], 1));
        assert!(p.reassignment.is_none());

        image.apply(31, &reassign(&[1, 2, 0])).unwrap();
        let p = image.partition("t", 0).unwrap().clone();
        assert_eq!(p.reassignment.as_ref().map(|r| r.adding.clone()), Some(vec![0]));
        assert_eq!(p.isr, vec![1, 2], "the new replica joins the ISR only through its leader");
        image.apply(32, &alter_isr_by_leader(&image, &[1, 2, 0])).unwrap();
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![1, 2, 0], vec![1, 2, 0], 1));
        assert!(p.reassignment.is_none());
    }

    #[test]
    fn invalid_reassignments_are_refused_without_change() {
        let mut image = cluster_of_three();
        let before = image.clone();
        for bad in [reassign(&[]), reassign(&[0, 0]), reassign(&[0, 9])] {
            assert!(
                matches!(image.apply(30, &bad), Err(CommandError::InvalidReplicaAssignment { .. })),
                "{bad:?} was accepted"
            );
        }
        let unknown =
            Command::ReassignPartition { topic: "t".into(), partition: 5, target: vec![0], throttle_bytes_per_sec: 0 };
        assert!(matches!(image.apply(31, &unknown), Err(CommandError::UnknownTopicOrPartition { .. })));
        image.apply(32, &reassign(&[0, 1, 2])).unwrap();
        assert_eq!(image, before, "moving a partition to the replicas it has changes nothing");
    }

    #[test]
    fn a_reassignment_whose_target_is_out_of_sync_waits_for_it() {
        let mut image = cluster_of_three();
        image.apply(30, &Command::FenceBroker { broker_id: 1 }).unwrap();
        image.apply(31, &reassign(&[1])).unwrap();
        let p = image.partition("t", 0).unwrap().clone();
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![1, 0, 2], vec![0, 2], 0));
        assert!(p.reassignment.is_some(), "no in-sync target replica can lead yet");

        let epoch = image.brokers[&1].broker_epoch;
        image.apply(32, &Command::BrokerHeartbeat { broker_id: 1, broker_epoch: epoch }).unwrap();
        assert!(image.partition("t", 0).unwrap().reassignment.is_some(), "unfenced is not in sync");

        image.apply(33, &alter_isr_by_leader(&image, &[0, 2, 1])).unwrap();
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![1], vec![1], 1));
        assert!(p.reassignment.is_none());
    }

    #[test]
    fn placements_past_a_brokers_partition_limit_are_refused_and_change_nothing() {
        let mut image = ClusterImage::default();
        for (i, id) in [0, 1].into_iter().enumerate() {
            let cmd = Command::RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::new_v4(),
                advertised_endpoint: format!("b{id}:9092"),
                internal_endpoint: format!("b{id}:9093"),
                listeners: Default::default(),
                rack: None,
                max_partitions: Some(4),
            };
            let Ok(Outcome::Registered { broker_epoch }) = image.apply(10 + 2 * i as u64, &cmd) else { panic!() };
            image.apply(11 + 2 * i as u64, &Command::BrokerHeartbeat { broker_id: id, broker_epoch }).unwrap();
        }
        let create = |name: &str, partitions: i32| Command::CreateTopic {
            name: name.into(),
            topic_id: Uuid::new_v4(),
            assignment: TopicAssignment::Computed { partitions, replication_factor: 2 },
            configs: BTreeMap::new(),
        };
        image.apply(20, &create("fits", 3)).unwrap();
        assert_eq!((image.hosted_replicas(0), image.hosted_replicas(1)), (3, 3));
        let before = image.clone();
        let refused = image.apply(21, &create("too-many", 100_000)).unwrap_err();
        assert!(matches!(refused, CommandError::PartitionLimit { limit: 4, .. }), "{refused}");
        assert!(refused.to_string().contains("max.broker.partitions"), "{refused}");
        let grow = Command::CreatePartitions { name: "fits".into(), total: 5, assignment: None };
        assert!(matches!(image.apply(22, &grow), Err(CommandError::PartitionLimit { would_host: 5, .. })));
        assert_eq!(image, before, "a refused placement changes nothing");
        let grow = Command::CreatePartitions { name: "fits".into(), total: 4, assignment: None };
        image.apply(23, &grow).unwrap();
        assert_eq!((image.hosted_replicas(0), image.hosted_replicas(1)), (4, 4));
    }

    #[test]
    fn dynamic_broker_settings_are_validated_and_replaced_whole() {
        let mut image = cluster_of_three();
        let set = |pairs: &[(&str, &str)]| Command::AlterBrokerConfigs {
            configs: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        image.apply(30, &set(&[("log.retention.ms", "60000"), ("min.insync.replicas", "2")])).unwrap();
        assert_eq!(image.broker_configs.len(), 2);
        let before = image.clone();
        let e = image.apply(31, &set(&[("num.partitions", "3")])).unwrap_err();
        assert!(e.to_string().contains("`num.partitions` is read at start"), "{e}");
        let e = image.apply(32, &set(&[("log.retention.ms", "soon")])).unwrap_err();
        assert!(e.to_string().contains("log.retention.ms"), "{e}");
        assert_eq!(image, before, "a refused change changes nothing");
        image.apply(33, &set(&[("log.retention.ms", "120000")])).unwrap();
        assert_eq!(image.broker_configs, BTreeMap::from([("log.retention.ms".into(), "120000".into())]));
    }
}
