//! One path for every cluster change, whichever API asked for it.
//!
//! Kafka's CreateTopics, DeleteTopics, CreatePartitions and
//! IncrementalAlterConfigs, Metadata auto-creation, every change of the gRPC
//! `Admin` service (topics, configs, reassignments, elections, controlled
//! shutdown) and the broker's own (`__consumer_offsets`, its controlled
//! shutdown) are a [`Change`] handed to [`apply`], the one door:
//!
//! 1. who may is decided before, by the caller, with the principal it
//!    serves (`protocol::authz` for Kafka clients; the gRPC plane's callers
//!    are brokers and the operator, not subject to client ACLs);
//! 2. [`rules`] turns the change into a controller command or refuses it —
//!    pure, over the broker settings and the published metadata, so both
//!    APIs refuse the same request with the same text;
//! 3. validate-only: the command is applied to a scratch copy of the image
//!    (the controller's own checks, nothing committed); otherwise it is
//!    proposed to the controller quorum and `apply` returns once this broker
//!    has published it, so the caller's next read sees it.
//!
//! Errors are [`AdminError`]s, mapped to Kafka error codes once, in
//! `protocol::errors`, for both APIs. Must never: write a partition log
//! (the publisher follows the image), or log a line per change unthrottled.

pub mod rules;

use uuid::Uuid;

use crate::broker::Broker;
use crate::controller::ControllerError;
use crate::controller::image::{ClusterImage, Command, CommandError, Outcome};
use crate::log::LogError;
use crate::log_lines::LineLimit;
use crate::metadata::{ConfigOp, MetadataError, MetadataView, TopicMetadata};
use crate::quota::config::{QuotaEntity, QuotaOp};
pub use rules::min_insync_replicas;

/// Topic creations and deletions a client can cause, logged a few a second at most.
static TOPIC_CHANGE_LOG: LineLimit = LineLimit::new(10);

/// An admin operation that was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request was refused before reaching the controller.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The controller refused a change of topics, configs or leadership.
    #[error(transparent)]
    Refused(#[from] CommandError),
    /// The controller refused adding or moving partitions (Kafka answers
    /// some of these refusals with other codes).
    #[error(transparent)]
    PartitionsRefused(CommandError),
    /// The controller quorum could not be reached or could not commit.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// A partition log could not be created or deleted.
    #[error(transparent)]
    Log(#[from] LogError),
    /// DeleteTopics while `delete.topic.enable=false`.
    #[error("topic deletion is disabled on this broker (delete.topic.enable=false)")]
    DeletionDisabled,
    /// A client quota alteration Kafka refuses (unknown key, negative value, ...).
    #[error(transparent)]
    ClientQuota(#[from] crate::quota::config::QuotaError),
}

/// What a client asked for when creating a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// A change to the cluster, as any API asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create a topic.
    CreateTopic(NewTopic),
    /// Delete a topic and its data.
    DeleteTopic { name: String },
    /// Grow a topic to `total` partitions, placing the new ones as given.
    CreatePartitions { name: String, total: i32, assignment: Option<Vec<Vec<i32>>> },
    /// Set or delete some of a topic's config overrides.
    AlterTopicConfigs { name: String, ops: Vec<ConfigOp> },
    /// Replace all of a topic's config overrides.
    ReplaceTopicConfigs { name: String, configs: std::collections::BTreeMap<String, String> },
    /// Replace a group's config overrides.
    ReplaceGroupConfigs { group: String, configs: std::collections::BTreeMap<String, String> },
    /// Replace the cluster-wide dynamic broker settings.
    AlterBrokerConfigs { configs: std::collections::BTreeMap<String, String> },
    /// Move a partition's replicas to `target`.
    ReassignPartition { topic: String, partition: i32, target: Vec<i32>, throttle_bytes_per_sec: u64 },
    /// Elect a partition's leader (preferred, or unclean when allowed).
    ElectLeader { topic: String, partition: i32, allow_unclean: bool },
    /// Move a broker's leaderships away before it stops.
    ControlledShutdown { broker_id: i32, broker_epoch: i64 },
    /// Set and delete SCRAM credentials, already checked by the
    /// AlterUserScramCredentials handler: (user, mechanism, credential) and
    /// (user, mechanism).
    AlterScramCredentials {
        upserts: Vec<(String, String, crate::auth::scram::ScramCredential)>,
        deletions: Vec<(String, String)>,
    },
    /// Store ACLs (CreateAcls; validated by [`crate::auth::acl::AclBinding::parse`]).
    CreateAcls { bindings: Vec<crate::auth::acl::AclBinding> },
    /// Remove the ACLs the filters match (DeleteAcls).
    DeleteAcls { filters: Vec<crate::auth::acl::AclFilter> },
    /// Set and remove client quota values, entity by entity (AlterClientQuotas).
    AlterClientQuotas { alterations: Vec<(QuotaEntity, Vec<QuotaOp>)> },
}

/// What an applied (or validated) change did.
#[derive(Debug)]
pub struct Applied {
    /// The controller's answer.
    pub outcome: Outcome,
    /// Validate-only: the image as it would be after the change.
    pub preview: Option<Box<ClusterImage>>,
}

/// The one door for cluster changes: checks `change` by the [`rules`], then
/// checks it against a scratch image (`validate_only`) or proposes it and
/// waits until this broker has published it.
pub async fn apply(broker: &Broker, change: Change, validate_only: bool) -> Result<Applied, AdminError> {
    let command = {
        let metadata = broker.metadata.read();
        let view = rules::ClusterView { settings: &broker.config.settings, metadata: &metadata };
        rules::command(&change, view, Uuid::new_v4())?
    };
    let refused = |e: CommandError| match change {
        Change::CreatePartitions { .. } | Change::ReassignPartition { .. } => AdminError::PartitionsRefused(e),
        _ => AdminError::Refused(e),
    };
    if validate_only {
        let mut preview = broker.controller.image();
        let outcome = preview.apply(u64::MAX, &command).map_err(refused)?;
        return Ok(Applied { outcome, preview: Some(Box::new(preview)) });
    }
    let committed = broker.controller.propose_committed(command.clone()).await?;
    let outcome = committed.result.map_err(refused)?;
    broker.wait_published(committed.index).await?;
    log_change(&command);
    Ok(Applied { outcome, preview: None })
}

fn log_change(command: &Command) {
    let (topic, what) = match command {
        Command::CreateTopic { name, .. } => (name, "created topic"),
        Command::DeleteTopic { name } => (name, "deleted topic"),
        _ => return,
    };
    if let Some(left_out) = TOPIC_CHANGE_LOG.admit() {
        tracing::info!(%topic, left_out_since_last_line = left_out, "{what}");
    }
}

/// Creates a topic (or only checks it, when `validate_only`): the topic as
/// it is, or would be, after.
pub async fn create_topic(broker: &Broker, req: NewTopic, validate_only: bool) -> Result<TopicMetadata, AdminError> {
    let name = req.name.clone();
    let applied = apply(broker, Change::CreateTopic(req), validate_only).await?;
    let topic = match applied.preview {
        Some(image) => MetadataView::from_image(&image, -1).topic(&name).cloned(),
        None => broker.metadata.read().topic(&name).cloned(),
    };
    topic.ok_or_else(|| MetadataError::UnknownTopic(name).into())
}

/// Deletes a topic; its logs go when the deletion is published. The topic as it was.
pub async fn delete_topic(broker: &Broker, name: &str) -> Result<TopicMetadata, AdminError> {
    let before = broker.metadata.read().topic(name).cloned();
    apply(broker, Change::DeleteTopic { name: name.to_string() }, false).await?;
    before.ok_or_else(|| MetadataError::UnknownTopic(name.to_string()).into())
}

/// Sets and removes client quotas (or only checks, when `validate_only`):
/// each entity with its ops, all or nothing. The door for every API
/// (AlterClientQuotas, the gRPC Admin service).
pub async fn alter_client_quotas(
    broker: &Broker,
    alterations: Vec<(QuotaEntity, Vec<QuotaOp>)>,
    validate_only: bool,
) -> Result<(), AdminError> {
    apply(broker, Change::AlterClientQuotas { alterations }, validate_only).await.map(|_| ())
}

/// The effective `min.insync.replicas` of `topic` on this broker (see [`rules::min_insync_replicas`]).
pub fn topic_min_insync_replicas(broker: &Broker, topic: &str) -> usize {
    let metadata = broker.metadata.read();
    let topic_override = metadata.topic(topic).and_then(|t| t.configs.explicit("min.insync.replicas"));
    let dynamic = broker.config.dynamic.get("min.insync.replicas");
    min_insync_replicas(topic_override, dynamic.as_deref(), &broker.config.settings)
}
