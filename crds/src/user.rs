//! `KafkaUser`: one client user of a `KafkaCluster` in the same namespace —
//! how it authenticates (a SCRAM-SHA-512 password kept in a Secret) and what
//! it may do (ACLs of principal `User:<metadata.name>`).
//!
//! `tls` authentication gives the user a client certificate of the
//! cluster's clients CA (CN = the user's name). `quotas` are Kafka's client
//! quotas of the entity `user=<name>`, kept as exactly the spec's.
//! [`KafkaUserSpec::validate`] repeats the checks the apiserver's schema and
//! CEL rules make, plus the operation-per-resource table Kafka applies,
//! naming the field.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of one Kafka user.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[allow(clippy::duplicated_attributes, reason = "each printcolumn(...) repeats keys such as type_")]
#[kube(
    group = "strom.dev",
    version = "v1alpha1",
    kind = "KafkaUser",
    namespaced,
    shortname = "ku",
    category = "strom",
    status = "KafkaUserStatus",
    derive = "PartialEq",
    doc = "A client user of a Strom cluster: its SCRAM credential (password in a Secret) and its ACLs, kept by the Strom operator.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.clusterRef",
        description = "KafkaCluster the user belongs to"
    ),
    printcolumn(
        name = "Authentication",
        type_ = "string",
        json_path = ".spec.authentication.type",
        description = "How the user authenticates"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the credential and ACLs are in force"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserSpec {
    /// Name of the KafkaCluster, in this namespace, the user belongs to.
    /// Cannot change after creation.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "clusterRef cannot change: a user cannot move between clusters; create a new KafkaUser instead"
    ))]
    pub cluster_ref: String,

    /// How the user authenticates.
    pub authentication: UserAuthentication,

    /// What the user may do; no ACLs at all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,

    /// Client quotas of the user (Kafka's quotas of the entity
    /// `user=<name>`): exactly these are set on the cluster, a quota left
    /// out is removed; none at all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<UserQuotas>,
}

/// How a user authenticates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.type == 'scram-sha-512' || !has(self.password)")
    .message("password applies only to type scram-sha-512")
    .field_path(".password"))]
#[serde(rename_all = "camelCase")]
pub struct UserAuthentication {
    /// `scram-sha-512`: a password, generated (32 random characters) unless
    /// `password` names a Secret key; kept in the Secret named after the
    /// user. `tls`: a client certificate of the cluster's clients CA with
    /// CN = the user's name, kept in that Secret (`user.crt`, `user.key`,
    /// `ca.crt`) and renewed before it expires.
    pub r#type: AuthenticationType,

    /// Where the password comes from instead of being generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

/// A user's authentication type.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthenticationType {
    /// SASL SCRAM-SHA-512 with a password.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// Mutual TLS with a client certificate of the clients CA.
    #[serde(rename = "tls")]
    Tls,
}

impl AuthenticationType {
    /// The name as written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticationType::ScramSha512 => "scram-sha-512",
            AuthenticationType::Tls => "tls",
        }
    }
}

/// A password taken from elsewhere.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    /// The Secret key holding the password.
    pub value_from: PasswordValueFrom,
}

/// Where a password is read from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordValueFrom {
    /// A key of a Secret in the KafkaUser's namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What a user may do.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthorization {
    /// `simple`: Kafka ACLs kept in the cluster's metadata. The ACLs of
    /// principal `User:<name>` are exactly `acls`: others are removed.
    pub r#type: AuthorizationType,

    /// The user's ACLs.
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub acls: Vec<AclRule>,
}

/// A user's authorization type.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationType {
    /// Kafka ACLs (needs `authorizer.class.name` in the cluster's config).
    #[serde(rename = "simple")]
    Simple,
}

/// One ACL rule: operations on a resource, allowed or denied, from a host.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    /// The resource (or resource prefix) the rule applies to.
    pub resource: AclResource,

    /// The operations, e.g. `[Read, Describe]`.
    #[schemars(length(min = 1))]
    pub operations: Vec<AclOperation>,

    /// A client IP address, or `*` for every host.
    #[serde(default = "any_host")]
    #[schemars(length(min = 1))]
    pub host: String,

    /// `allow` (default) or `deny`; a deny wins over an allow.
    #[serde(default)]
    pub r#type: AclRuleType,
}

fn any_host() -> String {
    "*".to_string()
}

/// The resource an ACL protects.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.type == 'cluster' || has(self.name)")
        .message("name is required for resource types topic, group and transactionalId")
        .field_path(".name"),
    validation = Rule::new("self.type != 'cluster' || !has(self.patternType) || self.patternType == 'literal'")
        .message("the cluster resource takes patternType literal")
        .field_path(".patternType")
)]
#[serde(rename_all = "camelCase")]
pub struct AclResource {
    /// topic, group, cluster or transactionalId.
    pub r#type: AclResourceType,

    /// The resource name, a prefix (patternType prefixed), or `*` for every
    /// resource of the type. Not used for the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,

    /// `literal` (default): the name exactly (or `*`); `prefixed`: every
    /// name starting with it.
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

/// Resource types a KafkaUser's ACL may name.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster itself.
    Cluster,
    /// A transactional id.
    TransactionalId,
}

/// How an ACL's resource name matches.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum AclPatternType {
    /// The exact name, or every resource when the name is `*`.
    #[default]
    Literal,
    /// Every resource whose name starts with the name.
    Prefixed,
}

/// Allow or deny.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum AclRuleType {
    /// The operations are allowed.
    #[default]
    Allow,
    /// The operations are denied, whatever else allows them.
    Deny,
}

/// Kafka's ACL operations, by their Java names.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclOperation {
    /// Every operation.
    All,
    /// Consume; join a group; commit offsets.
    Read,
    /// Produce.
    Write,
    /// Create topics.
    Create,
    /// Delete topics, groups, records.
    Delete,
    /// Alter partitions, ACLs.
    Alter,
    /// Metadata, offsets, group descriptions.
    Describe,
    /// Broker-to-broker actions.
    ClusterAction,
    /// Read configs.
    DescribeConfigs,
    /// Change configs.
    AlterConfigs,
    /// Idempotent produce.
    IdempotentWrite,
}

impl AclResourceType {
    /// The name as written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            AclResourceType::Topic => "topic",
            AclResourceType::Group => "group",
            AclResourceType::Cluster => "cluster",
            AclResourceType::TransactionalId => "transactionalId",
        }
    }

    /// The operations Kafka allows on this resource type besides `All`.
    pub fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            AclResourceType::Topic => &[Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs],
            AclResourceType::Group => &[Read, Describe, Delete],
            AclResourceType::Cluster => {
                &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe]
            }
            AclResourceType::TransactionalId => &[Describe, Write],
        }
    }
}

/// Client quotas of a user: Kafka's quotas of the entity `user=<name>`,
/// each measured by every broker on its own (as in Kafka). Unset ones are
/// not limited by this user's entity (a default quota may still apply).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserQuotas {
    /// `producer_byte_rate`: bytes per second the user may produce, per broker; 0 or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub producer_byte_rate: Option<i64>,
    /// `consumer_byte_rate`: bytes per second the user may fetch, per broker; 0 or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub consumer_byte_rate: Option<i64>,
    /// `request_percentage`: percentage of one request-handling thread's
    /// time the user may use, per broker (100 is one whole thread); 0 or
    /// more, as Kafka and Strimzi accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub request_percentage: Option<i32>,
    /// `controller_mutation_rate`: partitions the user may create or delete
    /// per second (CreateTopics, CreatePartitions, DeleteTopics); 0 or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub controller_mutation_rate: Option<f64>,
}

impl UserQuotas {
    /// Kafka's quota key and value of each quota set, in Kafka's key order.
    pub fn kafka_quotas(&self) -> Vec<(&'static str, f64)> {
        let mut quotas = Vec::with_capacity(4);
        if let Some(v) = self.producer_byte_rate {
            quotas.push(("producer_byte_rate", v as f64));
        }
        if let Some(v) = self.consumer_byte_rate {
            quotas.push(("consumer_byte_rate", v as f64));
        }
        if let Some(v) = self.request_percentage {
            quotas.push(("request_percentage", f64::from(v)));
        }
        if let Some(v) = self.controller_mutation_rate {
            quotas.push(("controller_mutation_rate", v));
        }
        quotas
    }

    /// Each value within what Kafka accepts, naming the first field at fault.
    pub fn validate(&self) -> Result<(), UserSpecError> {
        let byte_rates = [("producerByteRate", self.producer_byte_rate), ("consumerByteRate", self.consumer_byte_rate)];
        for (field, value) in byte_rates {
            if let Some(v) = value
                && v < 0
            {
                return Err(UserSpecError::InvalidQuota {
                    field,
                    value: v.to_string(),
                    allowed: "0 or more bytes per second",
                });
            }
        }
        if let Some(v) = self.request_percentage
            && v < 0
        {
            return Err(UserSpecError::InvalidQuota {
                field: "requestPercentage",
                value: v.to_string(),
                allowed: "0 or more (percent of one request-handling thread; 100 is a whole thread)",
            });
        }
        if let Some(v) = self.controller_mutation_rate
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(UserSpecError::InvalidQuota {
                field: "controllerMutationRate",
                value: v.to_string(),
                allowed: "a finite number, 0 or more partition mutations per second",
            });
        }
        Ok(())
    }
}

/// Why a `KafkaUserSpec` cannot be applied, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserSpecError {
    /// A password source on a user that has none.
    #[error("spec.authentication.password applies only to type scram-sha-512 (this user is {0}): remove it")]
    PasswordWithoutScram(&'static str),
    /// A quota value Kafka does not accept.
    #[error("spec.quotas.{field} is {value}: expected {allowed}")]
    InvalidQuota { field: &'static str, value: String, allowed: &'static str },
    /// A resource name missing where required.
    #[error("spec.authorization.acls[{index}].resource.name is required for resource type {resource_type}")]
    MissingName { index: usize, resource_type: &'static str },
    /// A prefixed cluster resource.
    #[error("spec.authorization.acls[{index}].resource.patternType must be literal for resource type cluster")]
    PrefixedCluster { index: usize },
    /// An operation Kafka does not allow on the resource type.
    #[error(
        "spec.authorization.acls[{index}].operations[{op_index}]: {operation:?} does not apply to resource type {resource_type}; expected All or one of {allowed}"
    )]
    OperationForResource {
        index: usize,
        op_index: usize,
        operation: AclOperation,
        resource_type: &'static str,
        allowed: String,
    },
    /// No operations.
    #[error("spec.authorization.acls[{index}].operations is empty: name at least one operation")]
    NoOperations { index: usize },
    /// An empty host.
    #[error("spec.authorization.acls[{index}].host is empty: use a client IP address or *")]
    EmptyHost { index: usize },
}

impl KafkaUserSpec {
    /// Checks what the schema, the CEL rules and Kafka's ACL rules require,
    /// naming the first field at fault.
    pub fn validate(&self) -> Result<(), UserSpecError> {
        if self.authentication.r#type != AuthenticationType::ScramSha512 && self.authentication.password.is_some() {
            return Err(UserSpecError::PasswordWithoutScram(self.authentication.r#type.as_str()));
        }
        if let Some(quotas) = &self.quotas {
            quotas.validate()?;
        }
        for (index, rule) in self.authorization.iter().flat_map(|a| a.acls.iter()).enumerate() {
            let resource_type = rule.resource.r#type;
            if resource_type != AclResourceType::Cluster && rule.resource.name.as_deref().unwrap_or("").is_empty() {
                return Err(UserSpecError::MissingName { index, resource_type: resource_type.as_str() });
            }
            if resource_type == AclResourceType::Cluster && rule.resource.pattern_type != AclPatternType::Literal {
                return Err(UserSpecError::PrefixedCluster { index });
            }
            if rule.operations.is_empty() {
                return Err(UserSpecError::NoOperations { index });
            }
            if rule.host.is_empty() {
                return Err(UserSpecError::EmptyHost { index });
            }
            let allowed = resource_type.operations();
            if let Some((op_index, operation)) =
                rule.operations.iter().enumerate().find(|(_, o)| **o != AclOperation::All && !allowed.contains(o))
            {
                return Err(UserSpecError::OperationForResource {
                    index,
                    op_index,
                    operation: *operation,
                    resource_type: resource_type.as_str(),
                    allowed: allowed.iter().map(|o| format!("{o:?}")).collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(())
    }
}

/// What the operator last observed of a user. Every field has a default so
/// a partial status parses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct KafkaUserStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, in the Kubernetes condition shape.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The Kafka user name (`metadata.name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,

    /// The Secret holding the user's password and client settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,

    /// How many ACLs of the principal are in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acls: Option<i32>,

    /// The last change made behind the operator's back that it set back to
    /// the spec (ACLs added or removed by hand): when, and what.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_drift_correction: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> KafkaUserSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn minimal_spec_parses_with_defaults() {
        let s = spec(json!({
            "clusterRef": "events",
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": [
                {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write"]}
            ]}
        }));
        let rule = &s.authorization.as_ref().unwrap().acls[0];
        assert_eq!((rule.host.as_str(), rule.r#type), ("*", AclRuleType::Allow));
        assert_eq!(rule.resource.pattern_type, AclPatternType::Literal);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn unknown_operations_and_types_do_not_parse() {
        let bad_op = json!({"clusterRef": "e", "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": [{"resource": {"type": "topic", "name": "t"}, "operations": ["Fly"]}]}});
        assert!(serde_json::from_value::<KafkaUserSpec>(bad_op).is_err());
        let bad_auth = json!({"clusterRef": "e", "authentication": {"type": "scram-sha-256"}});
        assert!(serde_json::from_value::<KafkaUserSpec>(bad_auth).is_err());
    }

    #[test]
    fn validation_names_the_field_at_fault() {
        let with_acls = |acls: serde_json::Value| {
            spec(json!({"clusterRef": "e", "authentication": {"type": "scram-sha-512"},
                "authorization": {"type": "simple", "acls": acls}}))
        };
        let e = with_acls(json!([
            {"resource": {"type": "topic", "name": "t"}, "operations": ["Read"]},
            {"resource": {"type": "group", "name": "g"}, "operations": ["Read", "Write"]}
        ]))
        .validate()
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("spec.authorization.acls[1].operations[1]: Write does not apply to resource type group"),
            "{e}"
        );
        let e = with_acls(json!([{"resource": {"type": "topic"}, "operations": ["Read"]}])).validate().unwrap_err();
        assert_eq!(e, UserSpecError::MissingName { index: 0, resource_type: "topic" });
        let ok = with_acls(json!([{"resource": {"type": "cluster"}, "operations": ["IdempotentWrite", "All"]}]));
        assert_eq!(ok.validate(), Ok(()));
        let tls = spec(json!({"clusterRef": "e", "authentication": {"type": "tls"}}));
        assert_eq!(tls.validate(), Ok(()), "tls users are supported");
        let tls_password = spec(json!({"clusterRef": "e", "authentication": {"type": "tls",
            "password": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}}}));
        assert_eq!(tls_password.validate(), Err(UserSpecError::PasswordWithoutScram("tls")));
    }

    #[test]
    fn quotas_are_kafkas_keys_and_refused_values_name_the_field() {
        let with = |quotas: serde_json::Value| {
            spec(json!({"clusterRef": "e", "authentication": {"type": "scram-sha-512"}, "quotas": quotas}))
        };
        let all = with(json!({"producerByteRate": 1024, "consumerByteRate": 0, "requestPercentage": 150,
            "controllerMutationRate": 2.5}));
        assert_eq!(all.validate(), Ok(()));
        assert_eq!(
            all.quotas.as_ref().unwrap().kafka_quotas(),
            vec![
                ("producer_byte_rate", 1024.0),
                ("consumer_byte_rate", 0.0),
                ("request_percentage", 150.0),
                ("controller_mutation_rate", 2.5)
            ]
        );
        assert_eq!(with(json!({})).quotas.unwrap().kafka_quotas(), vec![]);
        let e = with(json!({"consumerByteRate": -1})).validate().unwrap_err();
        assert_eq!(e.to_string(), "spec.quotas.consumerByteRate is -1: expected 0 or more bytes per second");
        assert!(with(json!({"requestPercentage": 0})).validate().is_ok(), "0 is accepted, as Kafka does");
        let e = with(json!({"requestPercentage": -1})).validate().unwrap_err();
        assert!(e.to_string().starts_with("spec.quotas.requestPercentage is -1: expected 0 or more"), "{e}");
        let e = with(json!({"controllerMutationRate": -0.5})).validate().unwrap_err();
        assert!(e.to_string().starts_with("spec.quotas.controllerMutationRate is -0.5: expected a finite"), "{e}");
        assert!(
            serde_json::from_value::<KafkaUserSpec>(json!({"clusterRef": "e",
                "authentication": {"type": "scram-sha-512"}, "quotas": {"producerByteRate": 1.5}}))
            .is_err(),
            "a byte rate is an integer"
        );
    }
}
