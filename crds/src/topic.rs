//! `KafkaTopic`: one topic in a `KafkaCluster` of the same namespace, and
//! what the operator last observed of it.
//!
//! Invariants the CEL rules keep, because Kafka cannot undo them: a topic
//! never changes cluster or name and never loses partitions. The topic's name
//! is `spec.topicName` or, when unset, `metadata.name`; [`validate_topic_name`]
//! checks the fallback too, since a Kubernetes name may be longer than Kafka
//! allows.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Desired state of one Kafka topic.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[allow(clippy::duplicated_attributes, reason = "each printcolumn(...) repeats keys such as type_")]
#[kube(
    group = "strom.dev",
    version = "v1alpha1",
    kind = "KafkaTopic",
    namespaced,
    shortname = "kt",
    category = "strom",
    status = "KafkaTopicStatus",
    derive = "PartialEq",
    doc = "A topic in a Strom cluster, created, grown and (with deletionPolicy Delete) deleted by the Strom operator.",
    validation = Rule::new("has(self.spec.topicName) || self.metadata.name.size() <= 249").message(
        "metadata.name is longer than 249 characters, the longest topic name Kafka accepts: \
         set spec.topicName to a shorter name"
    ),
    validation = Rule::new(
        "has(self.spec.topicName) == has(oldSelf.spec.topicName) \
         || (has(self.spec.topicName) ? self.spec.topicName == self.metadata.name \
             : oldSelf.spec.topicName == self.metadata.name)"
    )
    .message(
        "spec.topicName cannot be added or removed after creation unless it equals metadata.name: \
         that would rename the topic, which Kafka cannot do"
    )
    .field_path(".spec.topicName"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.clusterRef",
        description = "KafkaCluster the topic belongs to",
        priority = 1
    ),
    printcolumn(
        name = "Topic",
        type_ = "string",
        json_path = ".status.topicName",
        description = "Name of the topic in Kafka"
    ),
    printcolumn(
        name = "Partitions",
        type_ = "integer",
        json_path = ".spec.partitions",
        description = "Desired number of partitions"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicationFactor",
        description = "Replication factor"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the topic exists in Kafka as specified"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTopicSpec {
    /// Name of the KafkaCluster, in this namespace, that holds the topic.
    /// Cannot change after creation.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "clusterRef cannot change: a topic cannot move between clusters; create a new KafkaTopic instead"
    ))]
    pub cluster_ref: String,

    /// Name of the topic in Kafka; metadata.name when unset. 1–249 ASCII
    /// letters, digits, '.', '_' and '-', not "." or "..". Cannot change
    /// after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    #[x_kube(
        // `*`, not `+`: minLength already reports an empty name.
        validation = Rule::new("self.matches('^[a-zA-Z0-9._-]*$')")
            .message("topicName may only contain ASCII letters, digits, '.', '_' and '-'"),
        validation = Rule::new("self != '.' && self != '..'").message("topicName cannot be '.' or '..'"),
        validation = Rule::new("self == oldSelf")
            .message("topicName cannot change: Kafka cannot rename a topic; create a new KafkaTopic instead")
    )]
    pub topic_name: Option<String>,

    /// Number of partitions (1–10000). Can grow, never shrink.
    #[schemars(range(min = 1, max = 10000))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message(Message::Expression(
        "'partitions cannot be decreased from %d to %d; Kafka cannot remove partitions'.format([oldSelf, self])"
            .into()
    )))]
    pub partitions: i32,

    /// Number of replicas of each partition (1–32767, at most the number of
    /// brokers). A change moves replicas (throttled by the cluster's
    /// `rebalance.throttleBytesPerSecond`): new replicas copy the log and join
    /// the ISR before any replica leaves.
    #[schemars(range(min = 1, max = 32767))]
    pub replication_factor: i32,

    /// Topic settings by their Kafka names, e.g. `retention.ms: "86400000"`,
    /// `cleanup.policy: compact`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// What deleting this KafkaTopic does to the topic in Kafka: Delete
    /// (default) deletes it with its data, Retain leaves it in place.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What happens to the Kafka topic when its KafkaTopic is deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Delete the topic and its data.
    #[default]
    Delete,
    /// Leave the topic in the cluster.
    Retain,
}

impl KafkaTopic {
    /// The topic's name in Kafka: `spec.topicName`, else `metadata.name`
    /// (empty only for an object that never came from the apiserver).
    pub fn topic_name(&self) -> String {
        self.spec.topic_name.clone().or_else(|| self.metadata.name.clone()).unwrap_or_default()
    }

    /// [`Self::topic_name`], checked against Kafka's rules; the error names
    /// the field the name came from.
    pub fn validated_topic_name(&self) -> Result<String, TopicNameError> {
        let (field, name) = match (&self.spec.topic_name, &self.metadata.name) {
            (Some(name), _) => ("spec.topicName", name.as_str()),
            (None, Some(name)) => ("metadata.name", name.as_str()),
            (None, None) => ("metadata.name", ""),
        };
        validate_topic_name(field, name)?;
        Ok(name.to_owned())
    }
}

/// Checks `name` against Kafka's topic name rules; `field` names where it
/// came from for the error message.
pub fn validate_topic_name(field: &'static str, name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty { field });
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Err(TopicNameError::TooLong { field, len: name.len() });
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Reserved { field, name: name.to_owned() });
    }
    if let Some(invalid) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(TopicNameError::InvalidCharacter { field, name: name.to_owned(), invalid });
    }
    Ok(())
}

/// Why a name cannot be a Kafka topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    /// No name at all.
    #[error("{field} is empty: a topic needs a name; set spec.topicName")]
    Empty {
        /// Where the name came from.
        field: &'static str,
    },
    /// More than [`MAX_TOPIC_NAME_LENGTH`] characters.
    #[error(
        "{field} is {len} characters long, more than the {MAX_TOPIC_NAME_LENGTH} Kafka allows in a topic name; set a shorter spec.topicName"
    )]
    TooLong {
        /// Where the name came from.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// `.` or `..`.
    #[error("{field} is {name:?}, which Kafka does not allow as a topic name")]
    Reserved {
        /// Where the name came from.
        field: &'static str,
        /// The name.
        name: String,
    },
    /// A character outside `[a-zA-Z0-9._-]`.
    #[error(
        "{field} {name:?} contains {invalid:?}: a topic name may only contain ASCII letters, digits, '.', '_' and '-'"
    )]
    InvalidCharacter {
        /// Where the name came from.
        field: &'static str,
        /// The name.
        name: String,
        /// The first character that is not allowed.
        invalid: char,
    },
}

/// What the operator last observed of a topic. Every field has a default so
/// a partial status parses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct KafkaTopicStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Progressing and Degraded, in the Kubernetes condition shape.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Name of the topic in Kafka, once the operator has resolved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,

    /// Kafka's topic id (the UUID's 16 bytes in hex), once the topic exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,

    /// Whether the operator created the topic (false: it already existed
    /// and was adopted). Unknown until the topic exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by_operator: Option<bool>,

    /// Leader and replicas of each partition, as last read from the cluster.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionStatus>,

    /// The last change made behind the operator's back (through a Kafka
    /// client or tool) that it set back to the spec: when, and what differed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_correction: Option<String>,
}

/// Leader and replicas of one partition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PartitionStatus {
    /// Partition index.
    pub partition: i32,
    /// Broker id of the leader; -1 when the partition has none.
    pub leader: i32,
    /// Broker ids of all replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topic(metadata_name: &str, topic_name: Option<&str>) -> KafkaTopic {
        let mut spec: KafkaTopicSpec =
            serde_json::from_value(json!({"clusterRef": "x", "partitions": 3, "replicationFactor": 3})).unwrap();
        spec.topic_name = topic_name.map(str::to_owned);
        KafkaTopic::new(metadata_name, spec)
    }

    #[test]
    fn minimal_spec_takes_every_default() {
        let spec: KafkaTopicSpec =
            serde_json::from_value(json!({"clusterRef": "x", "partitions": 3, "replicationFactor": 3})).unwrap();
        assert_eq!(spec.cluster_ref, "x");
        assert_eq!(spec.partitions, 3);
        assert_eq!(spec.replication_factor, 3);
        assert_eq!(spec.topic_name, None);
        assert!(spec.config.is_empty());
        assert_eq!(spec.deletion_policy, DeletionPolicy::Delete);
    }

    #[test]
    fn required_fields_are_required() {
        for missing in ["clusterRef", "partitions", "replicationFactor"] {
            let mut value = json!({"clusterRef": "x", "partitions": 3, "replicationFactor": 3});
            value.as_object_mut().unwrap().remove(missing);
            assert!(serde_json::from_value::<KafkaTopicSpec>(value).is_err(), "{missing}");
        }
    }

    #[test]
    fn topic_name_falls_back_to_metadata_name() {
        assert_eq!(topic("orders", None).topic_name(), "orders");
        assert_eq!(topic("orders", Some("Orders_v2")).topic_name(), "Orders_v2");
        assert_eq!(topic("orders", Some("Orders_v2")).validated_topic_name().unwrap(), "Orders_v2");
    }

    #[test]
    fn overlong_metadata_name_is_refused_naming_the_field() {
        let name = "a".repeat(250);
        let err = topic(&name, None).validated_topic_name().unwrap_err();
        assert_eq!(err, TopicNameError::TooLong { field: "metadata.name", len: 250 });
        assert!(err.to_string().contains("spec.topicName"), "{err}");
        assert!(topic(&"a".repeat(249), None).validated_topic_name().is_ok());
    }

    #[test]
    fn kafka_topic_name_rules_are_enforced() {
        for ok in ["a", "orders.v1", "ORDERS_v-2", "__consumer_offsets"] {
            assert_eq!(validate_topic_name("spec.topicName", ok), Ok(()), "{ok}");
        }
        assert!(matches!(validate_topic_name("spec.topicName", ""), Err(TopicNameError::Empty { .. })));
        assert!(matches!(validate_topic_name("spec.topicName", "."), Err(TopicNameError::Reserved { .. })));
        assert!(matches!(validate_topic_name("spec.topicName", ".."), Err(TopicNameError::Reserved { .. })));
        let err = validate_topic_name("spec.topicName", "orders/v1").unwrap_err();
        assert!(matches!(err, TopicNameError::InvalidCharacter { invalid: '/', .. }));
        assert!(err.to_string().contains("ASCII letters, digits, '.', '_' and '-'"), "{err}");
        assert!(matches!(
            validate_topic_name("spec.topicName", "zürich"),
            Err(TopicNameError::InvalidCharacter { invalid: 'ü', .. })
        ));
    }

    #[test]
    fn partial_status_parses() {
        let status: KafkaTopicStatus =
            serde_json::from_value(json!({"topicName": "orders", "partitions": [{"partition": 0}]})).unwrap();
        assert_eq!(status.topic_name.as_deref(), Some("orders"));
        assert_eq!(status.partitions[0], PartitionStatus::default());
        assert!(status.conditions.is_empty());
    }
}
