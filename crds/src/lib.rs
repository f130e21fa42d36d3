//! Strom's custom resource types, group `strom.dev/v1alpha1`, and the CRD
//! YAML generated from them.
//!
//! The Rust types are the source of truth: the CRDs under `crds/yaml/` and
//! `charts/strom-operator/crds/` are written by `strom-crdgen` from
//! [`crd_yaml`], never by hand, and `tests/generated_yaml.rs` fails when they
//! drift. Validation the apiserver can do alone lives on the types as CEL
//! rules; the same checks are repeated in Rust for the operator.

pub mod authorization; // KafkaCluster.spec.authorization: Kafka ACLs and super users
pub mod cluster; // KafkaCluster: brokers, storage, listeners, controller quorum
pub mod conditions; // status conditions: types, and set_condition's transition-time rule
pub mod quantity; // storage sizes in Kubernetes quantity notation
pub mod topic; // KafkaTopic: partitions, replication factor, topic configs
pub mod user; // KafkaUser: SCRAM credential (password Secret) and ACLs of one client user

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use authorization::{AuthorizationError, AuthorizationType, ClusterAuthorization, STANDARD_AUTHORIZER};
pub use cluster::{
    CertificateAuthorities, CertificateAuthoritiesStatus, DEFAULT_BROKER_IMAGE, EXTERNAL_LISTENER_PORT,
    ExternalListener, ExternalListenerType, ImagePullPolicy, KafkaCluster, KafkaClusterSpec, KafkaClusterStatus,
    KafkaListener, KafkaListenerAuthentication, KafkaListenerAuthenticationType, KafkaListenerType,
    ListenerAuthentication, ListenerAuthenticationType, ListenerError, Listeners, Metrics, NetworkPolicySettings,
    PodTemplateOverrides, Rack, Rebalance, RollingRestartStatus, SecretKeySelector, SpecError, Storage, StorageError,
    StorageType,
};
pub use topic::{
    DeletionPolicy, KafkaTopic, KafkaTopicSpec, KafkaTopicStatus, PartitionStatus, TopicNameError, validate_topic_name,
};
pub use user::{
    AclOperation, AclPatternType, AclResource, AclResourceType, AclRule, AclRuleType, AuthenticationType, KafkaUser,
    KafkaUserSpec, KafkaUserStatus, UserAuthentication, UserAuthorization, UserQuotas, UserSpecError,
};

/// API group of every Strom resource.
pub const GROUP: &str = "strom.dev";

/// API version of every Strom resource.
pub const VERSION: &str = "v1alpha1";

/// The command that regenerates the CRD YAML; named in every staleness error.
pub const REGENERATE_COMMAND: &str = "cargo run -p strom-crds --bin strom-crdgen";

/// Directories, relative to the workspace root, that hold the generated YAML.
pub const CRD_DIRS: [&str; 2] = ["crds/yaml", "charts/strom-operator/crds"];

/// Every CRD Strom installs.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![KafkaCluster::crd(), KafkaTopic::crd(), KafkaUser::crd()]
}

/// Each CRD as `(file name, YAML text)`, e.g. `("kafkaclusters.strom.dev.yaml", ...)`.
pub fn crd_yaml() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            // A CRD is plain data with string keys; serialising it cannot fail.
            let body = serde_yaml::to_string(&crd).expect("a CustomResourceDefinition serialises to YAML");
            let text = format!(
                "# Generated from the Rust types in crds/ by `{REGENERATE_COMMAND}`.\n\
                 # Do not edit: change the types and rerun the command.\n{body}"
            );
            (format!("{name}.yaml"), text)
        })
        .collect()
}
