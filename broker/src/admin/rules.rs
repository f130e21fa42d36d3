//! The rules of cluster changes, pure: a [`Change`] and the cluster as this
//! broker sees it in, the controller [`Command`] to propose (or why not) out.
//!
//! Every admin path — Kafka's CreateTopics, DeleteTopics, CreatePartitions,
//! IncrementalAlterConfigs, Metadata auto-creation, the gRPC Admin service,
//! the broker's own `__consumer_offsets` — is checked here, so a request is
//! refused for the same reason with the same text whichever door it came
//! through. The controller checks what only it can see at commit time
//! (names, config values, placement, partition limits, reassignments in
//! progress), the same for every door.
//!
//! Must never: do I/O, or read anything but its arguments.

use uuid::Uuid;

use super::{AdminError, Change, NewTopic};
use crate::config::Settings;
use crate::controller::image::{Command, TopicAssignment};
use crate::metadata::{MetadataError, MetadataView, topic_name};
use crate::quota::config::{MAX_ENTITIES_PER_REQUEST, QuotaEntity, QuotaError, QuotaOp, validate_alteration};

/// What the rules read: the broker settings and the published metadata.
#[derive(Debug, Clone, Copy)]
pub struct ClusterView<'a> {
    /// Broker settings (defaults such as `num.partitions`).
    pub settings: &'a Settings,
    /// The metadata this broker has published.
    pub metadata: &'a MetadataView,
}

/// The command `change` becomes, or why it is refused. `topic_id` names a
/// topic to be created.
pub fn command(change: &Change, view: ClusterView<'_>, topic_id: Uuid) -> Result<Command, AdminError> {
    Ok(match change {
        Change::CreateTopic(req) => create_topic(req, view, topic_id)?,
        Change::DeleteTopic { name } => {
            if !view.settings.bool("delete.topic.enable") {
                return Err(AdminError::DeletionDisabled);
            }
            view.metadata.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
            Command::DeleteTopic { name: name.clone() }
        }
        Change::CreatePartitions { name, total, assignment } => {
            view.metadata.validate_new_partitions(name, *total)?;
            Command::CreatePartitions { name: name.clone(), total: *total, assignment: assignment.clone() }
        }
        Change::AlterTopicConfigs { name, ops } => {
            Command::AlterTopicConfigs { name: name.clone(), configs: view.metadata.configs_after(name, ops)? }
        }
        Change::ReplaceTopicConfigs { name, configs } => {
            view.metadata.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
            Command::AlterTopicConfigs { name: name.clone(), configs: configs.clone() }
        }
        Change::AlterBrokerConfigs { configs } => Command::AlterBrokerConfigs { configs: configs.clone() },
        Change::ReplaceGroupConfigs { group, configs } => {
            Command::AlterGroupConfigs { group: group.clone(), configs: configs.clone() }
        }
        Change::ReassignPartition { topic, partition, target, throttle_bytes_per_sec } => Command::ReassignPartition {
            topic: topic.clone(),
            partition: *partition,
            target: target.clone(),
            throttle_bytes_per_sec: *throttle_bytes_per_sec,
        },
        Change::ElectLeader { topic, partition, allow_unclean } => {
            Command::ElectLeader { topic: topic.clone(), partition: *partition, allow_unclean: *allow_unclean }
        }
        Change::ControlledShutdown { broker_id, broker_epoch } => {
            Command::ControlledShutdown { broker_id: *broker_id, broker_epoch: *broker_epoch }
        }
        Change::AlterScramCredentials { upserts, deletions } => {
            Command::AlterScramCredentials { upserts: upserts.clone(), deletions: deletions.clone() }
        }
        Change::CreateAcls { bindings } => Command::CreateAcls { bindings: bindings.clone() },
        Change::DeleteAcls { filters } => Command::DeleteAcls { filters: filters.clone() },
        Change::AlterClientQuotas { alterations } => client_quotas(alterations)?,
    })
}

/// AlterClientQuotas: at most [`MAX_ENTITIES_PER_REQUEST`] entities, each
/// once, each alteration valid by Kafka's rules.
fn client_quotas(alterations: &[(QuotaEntity, Vec<QuotaOp>)]) -> Result<Command, AdminError> {
    if alterations.len() > MAX_ENTITIES_PER_REQUEST {
        return Err(QuotaError::TooManyEntities { count: alterations.len(), limit: MAX_ENTITIES_PER_REQUEST }.into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (entity, ops) in alterations {
        if !seen.insert(entity) {
            return Err(QuotaError::DuplicateEntity(entity.to_string()).into());
        }
        validate_alteration(entity, ops)?;
    }
    Ok(Command::AlterClientQuotas { alterations: alterations.to_vec() })
}

/// CreateTopic: a valid name (Kafka's rules); an explicit assignment, or counts where -1 means the
/// broker's `num.partitions` / `default.replication.factor` (Kafka's rules:
/// not both; at least one partition; a replication factor from 1 to the
/// number of live brokers).
fn create_topic(req: &NewTopic, view: ClusterView<'_>, topic_id: Uuid) -> Result<Command, AdminError> {
    // Checked here too, so an invalid name (many of them, in one Metadata
    // request with auto-creation) costs no controller round trip.
    topic_name::validate(&req.name)?;
    let settings = view.settings;
    let assignment = if !req.assignment.is_empty() {
        if req.num_partitions != -1 || req.replication_factor != -1 {
            return Err(MetadataError::InvalidReplicaAssignment {
                topic: req.name.clone(),
                reason: "give either an assignment or counts of partitions and replicas, not both".into(),
            }
            .into());
        }
        TopicAssignment::Explicit(req.assignment.clone())
    } else {
        let partitions =
            if req.num_partitions == -1 { settings.long("num.partitions") as i32 } else { req.num_partitions };
        let replication_factor = if req.replication_factor == -1 {
            settings.long("default.replication.factor") as i32
        } else {
            i32::from(req.replication_factor)
        };
        if partitions < 1 {
            return Err(MetadataError::InvalidPartitions {
                topic: req.name.clone(),
                requested: partitions,
                reason: "a topic needs at least 1 partition".into(),
            }
            .into());
        }
        let live = view.metadata.live_broker_ids().len();
        if replication_factor < 1 || replication_factor as usize > live {
            return Err(MetadataError::InvalidReplicationFactor {
                topic: req.name.clone(),
                requested: replication_factor,
                reason: format!("it must be from 1 to the number of live brokers, {live}"),
            }
            .into());
        }
        TopicAssignment::Computed { partitions, replication_factor }
    };
    let configs = req.configs.iter().cloned().collect();
    Ok(Command::CreateTopic { name: req.name.clone(), topic_id, assignment, configs })
}

/// The effective `min.insync.replicas` of a topic: its override, else the
/// dynamic broker setting, else the static one; never below 1. The one
/// place this is decided (produce, metrics, IsSafeToRestart).
pub fn min_insync_replicas(topic_override: Option<&str>, dynamic: Option<&str>, settings: &Settings) -> usize {
    topic_override
        .or(dynamic)
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(|| settings.long("min.insync.replicas"))
        .max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::ClusterImage;
    use crate::controller::image::BrokerRegistration;

    fn view_of(live: &[i32]) -> MetadataView {
        let mut image = ClusterImage { cluster_id: "c".into(), ..Default::default() };
        for &id in live {
            image.brokers.insert(
                id,
                BrokerRegistration {
                    broker_id: id,
                    incarnation_id: Uuid::nil(),
                    broker_epoch: 1,
                    advertised_endpoint: format!("b{id}:9092"),
                    internal_endpoint: format!("b{id}:9093"),
                    listeners: Default::default(),
                    rack: None,
                    fenced: false,
                    in_controlled_shutdown: false,
                    max_partitions: None,
                },
            );
        }
        MetadataView::from_image(&image, -1)
    }

    fn topic(name: &str, partitions: i32, rf: i16) -> Change {
        Change::CreateTopic(NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            ..Default::default()
        })
    }

    #[test]
    fn create_topic_counts_follow_kafkas_rules() {
        let mut settings = Settings::broker_defaults();
        settings.set("num.partitions", "6").unwrap();
        let metadata = view_of(&[0, 1]);
        let view = ClusterView { settings: &settings, metadata: &metadata };
        let id = Uuid::from_u128(1);
        let Ok(Command::CreateTopic { assignment, .. }) = command(&topic("x", -1, 2), view, id) else { panic!() };
        assert_eq!(assignment, TopicAssignment::Computed { partitions: 6, replication_factor: 2 });
        let invalid = command(&topic("no spaces", 1, 1), view, id).unwrap_err();
        assert!(matches!(invalid, AdminError::Metadata(MetadataError::InvalidTopicName { .. })), "{invalid}");
        let zero = command(&topic("x", 0, 1), view, id).unwrap_err();
        assert_eq!(zero.to_string(), "invalid partition count 0 for topic `x`: a topic needs at least 1 partition");
        let wide = command(&topic("x", 1, 3), view, id).unwrap_err();
        assert!(wide.to_string().contains("from 1 to the number of live brokers, 2"), "{wide}");
        let both = Change::CreateTopic(NewTopic {
            name: "x".into(),
            num_partitions: 1,
            replication_factor: -1,
            assignment: vec![vec![0]],
            configs: vec![],
        });
        assert!(matches!(
            command(&both, view, id),
            Err(AdminError::Metadata(MetadataError::InvalidReplicaAssignment { .. }))
        ));
    }

    #[test]
    fn deletion_needs_delete_topic_enable_and_an_existing_topic() {
        let mut settings = Settings::broker_defaults();
        let metadata = view_of(&[0]);
        let delete = Change::DeleteTopic { name: "nope".into() };
        let view = ClusterView { settings: &settings, metadata: &metadata };
        assert!(matches!(
            command(&delete, view, Uuid::nil()),
            Err(AdminError::Metadata(MetadataError::UnknownTopic(_)))
        ));
        settings.set("delete.topic.enable", "false").unwrap();
        let view = ClusterView { settings: &settings, metadata: &metadata };
        assert!(matches!(command(&delete, view, Uuid::nil()), Err(AdminError::DeletionDisabled)));
    }

    #[test]
    fn client_quota_changes_name_each_entity_once_and_are_bounded() {
        use crate::quota::QuotaKey;
        use crate::quota::config::QuotaValue;
        let settings = Settings::broker_defaults();
        let metadata = view_of(&[0]);
        let view = ClusterView { settings: &settings, metadata: &metadata };
        let alice = QuotaEntity::from_parts([("user", Some("alice"))]).unwrap();
        let op = QuotaOp { key: QuotaKey::ConsumerByteRate, value: Some(QuotaValue(10.0)) };
        let twice = Change::AlterClientQuotas { alterations: vec![(alice.clone(), vec![op.clone()]); 2] };
        let err = command(&twice, view, Uuid::nil()).unwrap_err();
        assert_eq!(err.to_string(), "entity `user=alice` is altered more than once in the request");
        let many: Vec<_> = (0..=MAX_ENTITIES_PER_REQUEST)
            .map(|i| {
                (QuotaEntity::from_parts([("client-id", Some(format!("c{i}").as_str()))]).unwrap(), vec![op.clone()])
            })
            .collect();
        let err = command(&Change::AlterClientQuotas { alterations: many }, view, Uuid::nil()).unwrap_err();
        assert!(matches!(err, AdminError::ClientQuota(QuotaError::TooManyEntities { .. })), "{err}");
        let once = Change::AlterClientQuotas { alterations: vec![(alice, vec![op])] };
        assert!(matches!(command(&once, view, Uuid::nil()), Ok(Command::AlterClientQuotas { .. })));
    }

    #[test]
    fn min_insync_replicas_is_topic_then_dynamic_then_static_and_at_least_one() {
        let mut settings = Settings::broker_defaults();
        settings.set("min.insync.replicas", "2").unwrap();
        assert_eq!(min_insync_replicas(None, None, &settings), 2);
        assert_eq!(min_insync_replicas(None, Some("3"), &settings), 3);
        assert_eq!(min_insync_replicas(Some("1"), Some("3"), &settings), 1);
        assert_eq!(min_insync_replicas(Some("0"), None, &settings), 1);
    }
}
