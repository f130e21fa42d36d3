use super::*;
use std::collections::BTreeMap;

use uuid::Uuid;

use crate::controller::Command;
use crate::controller::image::{BrokerRegistration, PartitionState, TopicAssignment, TopicImage};
use crate::quota::config::QuotaOp;

fn broker(id: i32, fenced: bool) -> BrokerRegistration {
    BrokerRegistration {
        broker_id: id,
        incarnation_id: Uuid::nil(),
        broker_epoch: 100 + id as i64,
        advertised_endpoint: format!("b{id}:9092"),
        internal_endpoint: format!("b{id}:9093"),
        listeners: Default::default(),
        rack: None,
        fenced,
        in_controlled_shutdown: false,
        max_partitions: None,
    }
}

fn partition(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionState {
    PartitionState {
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        leader_epoch: 3,
        partition_epoch: 5,
        reassignment: None,
    }
}

/// Brokers 0..3, broker 2 fenced; topic `t` (min.insync.replicas=2) with
/// a healthy, an under-replicated and an offline partition; topic `u`
/// with one partition not led by its preferred replica.
fn image() -> ClusterImage {
    let mut image = ClusterImage { cluster_id: "c1".into(), ..Default::default() };
    for (id, fenced) in [(0, false), (1, false), (2, true)] {
        image.brokers.insert(id, broker(id, fenced));
    }
    image.topics.insert(
        "t".into(),
        TopicImage {
            topic_id: Uuid::from_u128(7),
            partitions: vec![
                partition(&[0, 1, 2], &[0, 1], 0),
                partition(&[1, 2, 0], &[1, 0], 1),
                partition(&[2, 0, 1], &[2], NO_LEADER),
            ],
            configs: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
        },
    );
    image.topics.insert(
        "u".into(),
        TopicImage {
            topic_id: Uuid::from_u128(8),
            partitions: vec![partition(&[0, 1], &[1, 0], 1), partition(&[1, 0], &[1], 1)],
            configs: BTreeMap::new(),
        },
    );
    image
}

fn refs(list: &[(&str, i32)]) -> Vec<PartitionRef> {
    list.iter().map(|(t, p)| PartitionRef { topic: t.to_string(), partition: *p }).collect()
}

#[test]
fn describe_cluster_lists_under_replicated_and_offline_partitions() {
    let d = describe_cluster(&image(), Some(1));
    assert_eq!((d.cluster_id.as_str(), d.controller_id), ("c1", 1));
    assert_eq!(
        d.brokers.iter().map(|b| (b.broker_id, b.fenced)).collect::<Vec<_>>(),
        [(0, false), (1, false), (2, true)]
    );
    assert_eq!(d.under_replicated_partitions, refs(&[("t", 0), ("t", 1), ("t", 2), ("u", 1)]));
    assert_eq!(d.offline_partitions, refs(&[("t", 2)]));
    assert_eq!(describe_cluster(&image(), None).controller_id, -1);
}

#[test]
fn describe_topics_reports_unknown_names() {
    let d = describe_topics(&image(), &["u".into(), "nope".into()]);
    assert_eq!(d.topics[0].partitions[1].isr, vec![1]);
    assert_eq!(d.topics[1].error_code, i32::from(ResponseError::UnknownTopicOrPartition.code()));
    assert_eq!(describe_topics(&image(), &[]).topics.len(), 2);
}

#[test]
fn command_errors_map_to_kafka_codes() {
    let placement = CommandError::InvalidPlacement { topic: "t".into(), reason: "3 > 2 brokers".into() };
    assert_eq!(command_error_code(&placement, Context::Topic), ResponseError::InvalidReplicationFactor);
    assert_eq!(command_error_code(&placement, Context::Partitions), ResponseError::InvalidPartitions);
    let stale = CommandError::StalePartitionEpoch { topic: "t".into(), partition: 0, current: 2, got: 1 };
    assert_eq!(command_error_code(&stale, Context::Topic), ResponseError::InvalidUpdateVersion);
    let e = refusal(&CommandError::TopicAlreadyExists("t".into()), Context::Topic);
    assert_eq!((e.error, e.message.as_str()), (ResponseError::TopicAlreadyExists, "topic `t` already exists"));
    let e = refusal(&CommandError::UnknownBroker(9), Context::Topic);
    assert_eq!(e.error, ResponseError::BrokerIdNotRegistered);
    assert!(e.message.contains("broker 9"), "{}", e.message);
}

#[test]
fn a_grpc_create_topic_becomes_the_admin_paths_new_topic() {
    let counted =
        CreateTopicRequest { name: "x".into(), num_partitions: 0, replication_factor: -1, ..Default::default() };
    let t = new_topic(counted);
    assert_eq!((t.num_partitions, t.replication_factor), (0, -1), "0 partitions stays 0: the rules refuse it");
    let explicit = CreateTopicRequest {
        name: "x".into(),
        assignments: vec![ReplicaAssignment { replicas: vec![1, 0] }],
        configs: [("retention.ms".to_string(), "5".to_string())].into(),
        ..Default::default()
    };
    let t = new_topic(explicit);
    assert_eq!((t.num_partitions, t.replication_factor), (-1, -1), "proto3's unset counts beside an assignment");
    assert_eq!(t.assignment, vec![vec![1, 0]]);
    assert_eq!(t.configs, vec![("retention.ms".to_string(), "5".to_string())]);
}

#[test]
fn validate_only_uses_a_scratch_image() {
    let mut scratch = image();
    let before = scratch.clone();
    let command = Command::CreateTopic {
        name: "t".into(),
        topic_id: Uuid::nil(),
        assignment: TopicAssignment::Computed { partitions: 1, replication_factor: 1 },
        configs: BTreeMap::new(),
    };
    let e = scratch.apply(u64::MAX, &command).unwrap_err();
    assert_eq!(command_error_code(&e, Context::Topic), ResponseError::TopicAlreadyExists);
    assert_eq!(scratch, before, "a refused command leaves the image untouched");
}

#[test]
fn preferred_election_only_when_the_preferred_replica_can_lead() {
    let image = image();
    let plan = plan_elections(&image, ElectionType::Preferred, &[]);
    let codes: Vec<(String, i32, Option<ResponseError>)> =
        plan.iter().map(|(r, step)| (r.topic.clone(), r.partition, step.as_ref().err().map(|e| e.error))).collect();
    assert_eq!(
        codes,
        vec![
            ("t".to_string(), 0, Some(ResponseError::ElectionNotNeeded)),
            ("t".to_string(), 1, Some(ResponseError::ElectionNotNeeded)),
            ("t".to_string(), 2, Some(ResponseError::PreferredLeaderNotAvailable)), // 2 is fenced
            ("u".to_string(), 0, None),                                             // 0 in ISR, live, not leading
            ("u".to_string(), 1, Some(ResponseError::ElectionNotNeeded)),
        ]
    );
    assert_eq!(
        plan[3].1.as_ref().unwrap(),
        &Change::ElectLeader { topic: "u".into(), partition: 0, allow_unclean: false }
    );

    let mut out_of_isr = image.clone();
    out_of_isr.topics.get_mut("u").unwrap().partitions[0].isr = vec![1];
    let plan = plan_elections(&out_of_isr, ElectionType::Preferred, &refs(&[("u", 0), ("zz", 0)]));
    assert_eq!(plan[0].1.as_ref().unwrap_err().error, ResponseError::PreferredLeaderNotAvailable);
    assert_eq!(plan[1].1.as_ref().unwrap_err().error, ResponseError::UnknownTopicOrPartition);
}

#[test]
fn unclean_election_only_for_offline_partitions() {
    let plan = plan_elections(&image(), ElectionType::Unclean, &refs(&[("t", 0), ("t", 2)]));
    assert_eq!(plan[0].1.as_ref().unwrap_err().error, ResponseError::ElectionNotNeeded);
    assert_eq!(
        plan[1].1.as_ref().unwrap(),
        &Change::ElectLeader { topic: "t".into(), partition: 2, allow_unclean: true }
    );
}

#[test]
fn restart_is_unsafe_below_min_insync_or_as_sole_isr_leader() {
    let image = image();
    let mut settings = Settings::broker_defaults();
    settings.set("min.insync.replicas", "1").unwrap();
    // Broker 0: t-0 and t-1 have ISR of 2 with min.insync.replicas=2 (topic override).
    let r = safe_to_restart(&image, 0, &settings, &[]);
    assert!(!r.safe);
    assert_eq!(r.at_risk_partitions, refs(&[("t", 0), ("t", 1)]));
    assert!(r.reason.contains("below min.insync.replicas=2"), "{}", r.reason);
    // Broker 1 also leads u-1, whose ISR is only itself.
    let r = safe_to_restart(&image, 1, &settings, &[]);
    assert_eq!(r.at_risk_partitions, refs(&[("t", 0), ("t", 1), ("u", 1)]));
    assert!(r.reason.contains("only in-sync replica"), "{}", r.reason);
    // Broker 2 is in t-2's ISR only, which is offline already with min ISR 2.
    assert_eq!(safe_to_restart(&image, 2, &settings, &[]).at_risk_partitions, refs(&[("t", 2)]));

    let mut relaxed = image.clone();
    relaxed.topics.get_mut("t").unwrap().configs.clear();
    relaxed.topics.get_mut("u").unwrap().partitions[1] = partition(&[1, 0], &[1, 0], 1);
    relaxed.topics.get_mut("t").unwrap().partitions[2] = partition(&[2, 0, 1], &[0, 1], 0);
    let r = safe_to_restart(&relaxed, 1, &settings, &[]);
    assert!(r.safe, "{}", r.reason);
    assert_eq!(
        safe_to_restart(&relaxed, 7, &settings, &[]).reason,
        "broker 7 is not registered; it holds no partition"
    );
}

#[test]
fn restart_is_unsafe_when_the_quorum_would_lose_its_majority() {
    let mut image = image();
    image.topics.clear();
    let settings = Settings::broker_defaults();
    // Voters 0, 1, 2 with 2 fenced: stopping 0 or 1 leaves one live voter of three.
    let r = safe_to_restart(&image, 0, &settings, &[0, 1, 2]);
    assert!(!r.safe && r.reason.contains("controller voter"), "{}", r.reason);
    assert!(r.at_risk_partitions.is_empty());
    // Restarting the fenced voter itself costs nothing.
    assert!(safe_to_restart(&image, 2, &settings, &[0, 1, 2]).safe);
    image.brokers.get_mut(&2).unwrap().fenced = false;
    assert!(safe_to_restart(&image, 0, &settings, &[0, 1, 2]).safe);
    // A non-voter never threatens the quorum.
    image.brokers.insert(3, broker(3, false));
    assert!(safe_to_restart(&image, 3, &settings, &[0]).safe);
}

#[test]
fn leaderships_lists_partitions_led() {
    assert_eq!(leaderships(&image(), 1), refs(&[("t", 1), ("u", 0), ("u", 1)]));
}

fn quota_request(user: &str, ops: &[(&str, f64, bool)]) -> strom_proto::admin::AlterClientQuotasRequest {
    strom_proto::admin::AlterClientQuotasRequest {
        user: user.into(),
        ops: ops
            .iter()
            .map(|(key, value, remove)| strom_proto::admin::ClientQuotaOp {
                key: key.to_string(),
                value: *value,
                remove: *remove,
            })
            .collect(),
        validate_only: false,
    }
}

#[test]
fn a_grpc_quota_alteration_is_the_user_entity_with_kafkas_ops() {
    use crate::quota::QuotaKey;
    use crate::quota::config::QuotaValue;
    let (entity, ops) = quotas::alteration(&quota_request(
        "alice",
        &[
            ("producer_byte_rate", 1024.0, false),
            ("request_percentage", 12.5, false),
            ("consumer_byte_rate", 0.0, true),
        ],
    ))
    .unwrap();
    assert_eq!(entity.to_string(), "user=alice");
    assert_eq!(
        ops,
        vec![
            QuotaOp { key: QuotaKey::ProducerByteRate, value: Some(QuotaValue(1024.0)) },
            QuotaOp { key: QuotaKey::RequestPercentage, value: Some(QuotaValue(12.5)) },
            QuotaOp { key: QuotaKey::ConsumerByteRate, value: None },
        ]
    );
    // A removal's value is not checked; no ops at all is a valid (empty) alteration.
    assert!(quotas::alteration(&quota_request("alice", &[("controller_mutation_rate", -1.0, true)])).is_ok());
    assert_eq!(quotas::alteration(&quota_request("alice", &[])).unwrap().1, vec![]);
}

#[test]
fn invalid_grpc_quota_alterations_are_refused_naming_key_value_and_what_is_allowed() {
    let refused = |user: &str, ops: &[(&str, f64, bool)]| {
        let e = quotas::alteration(&quota_request(user, ops)).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidRequest, "{}", e.message);
        e.message
    };
    let m = refused("alice", &[("producer_byte_rate", 1.0, false), ("bogus_rate", 1.0, false)]);
    assert_eq!(
        m,
        "invalid quota key `bogus_rate`: use producer_byte_rate, consumer_byte_rate, request_percentage, \
         controller_mutation_rate or (for ip) connection_creation_rate"
    );
    let m = refused("alice", &[("consumer_byte_rate", -5.0, false)]);
    assert_eq!(m, "invalid value -5 for quota key `consumer_byte_rate`: it must be a finite number, 0 or more");
    let m = refused("alice", &[("producer_byte_rate", 1.5, false)]);
    assert_eq!(m, "invalid value 1.5 for quota key `producer_byte_rate`: it must be an integer");
    let m = refused("alice", &[("request_percentage", f64::NAN, false)]);
    assert!(m.starts_with("invalid value NaN for quota key `request_percentage`"), "{m}");
    let m = refused("alice", &[("connection_creation_rate", 3.0, false)]);
    assert!(
        m.starts_with("quota key `connection_creation_rate` does not apply to entity `user=alice`: user and client-id entities take producer_byte_rate"),
        "{m}"
    );
    let m = refused("alice", &[("request_percentage", 10.0, false), ("request_percentage", 0.0, true)]);
    assert_eq!(m, "quota key `request_percentage` is altered more than once for entity `user=alice`");
    let m = refused("", &[("producer_byte_rate", 1.0, false)]);
    assert!(m.starts_with("user is empty"), "{m}");
    let m = refused(&"u".repeat(2000), &[("producer_byte_rate", 1.0, false)]);
    assert!(m.contains("2000 bytes"), "{m}");
}

#[test]
fn a_users_quotas_are_its_own_entity_only() {
    use crate::quota::QuotaKey;
    use crate::quota::config::{ClientQuotas, QuotaEntity, QuotaValue};
    let mut stored = ClientQuotas::default();
    let set = |key, v: f64| QuotaOp { key, value: Some(QuotaValue(v)) };
    let alice = QuotaEntity::from_parts([("user", Some("alice"))]).unwrap();
    stored.alter(&alice, &[set(QuotaKey::ProducerByteRate, 1024.0), set(QuotaKey::RequestPercentage, 50.0)]).unwrap();
    let alice_app = QuotaEntity::from_parts([("user", Some("alice")), ("client-id", Some("app"))]).unwrap();
    stored.alter(&alice_app, &[set(QuotaKey::ConsumerByteRate, 1.0)]).unwrap();
    let default_user = QuotaEntity::from_parts([("user", None)]).unwrap();
    stored.alter(&default_user, &[set(QuotaKey::ConsumerByteRate, 2.0)]).unwrap();
    let alice_quotas = quotas::user_quotas(&stored, "alice");
    assert_eq!(
        alice_quotas,
        std::collections::HashMap::from([
            ("producer_byte_rate".to_string(), 1024.0),
            ("request_percentage".to_string(), 50.0)
        ])
    );
    assert!(quotas::user_quotas(&stored, "bob").is_empty(), "the default user's quota is not bob's own");
}
