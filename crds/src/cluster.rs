//! `KafkaCluster`: the desired shape of one Strom cluster and what the
//! operator last observed of it.
//!
//! The spec is what a person writes; every field has a default, so `{}` is a
//! valid spec for a three-broker cluster on 10Gi volumes. Rules the
//! apiserver can check alone are CEL rules on the schema (see the
//! `#[x_kube(validation)]` attributes); [`KafkaClusterSpec::validate`]
//! repeats the stateless ones for the operator, which must not trust that the
//! CRD it runs against is the one generated here.
//!
//! Invariant the CEL rules keep: the size of the controller quorum
//! ([`KafkaClusterSpec::voters`]) never changes after creation, because Strom
//! cannot yet change controller membership.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::{QuantityError, parse_storage_size};

/// Broker image used when `spec.image` is not set.
pub const DEFAULT_BROKER_IMAGE: &str = "ghcr.io/strom/strom-broker:0.1.0";

/// Number of brokers when `spec.replicas` is not set.
pub const DEFAULT_REPLICAS: i32 = 3;

/// Volume size when `spec.storage` is not set at all.
pub const DEFAULT_STORAGE_SIZE: &str = "10Gi";

/// Node label brokers are spread over when `spec.rack` is set without a key.
pub const DEFAULT_RACK_TOPOLOGY_KEY: &str = "topology.kubernetes.io/zone";

/// Lowest port Kubernetes hands out for NodePort services by default.
pub const NODE_PORT_MIN: i32 = 30000;

/// Highest port Kubernetes hands out for NodePort services by default.
pub const NODE_PORT_MAX: i32 = 32767;

/// Desired state of a Strom (Kafka-compatible) cluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[allow(clippy::duplicated_attributes, reason = "each printcolumn(...) repeats keys such as type_")]
#[kube(
    group = "strom.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    namespaced,
    shortname = "kc",
    category = "strom",
    status = "KafkaClusterStatus",
    derive = "PartialEq",
    doc = "A Strom cluster: a set of Kafka-compatible brokers with a Raft controller quorum, managed by the Strom operator.",
    // The name prefixes Services (DNS-1035 labels: a letter first, at most 63
    // characters) and pod names with their revision-hash label (the
    // StatefulSet name at most 52); "-external-99" is the longest Service suffix.
    validation = Rule::new("self.metadata.name.size() <= 47 && self.metadata.name.matches('^[a-z]')").message(
        "metadata.name must start with a letter and have at most 47 characters: it names the cluster's \
         Services and pods"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether every broker is ready and the cluster serves clients"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired number of brokers"
    ),
    printcolumn(
        name = "ReadyBrokers",
        type_ = "integer",
        json_path = ".status.readyBrokers",
        description = "Brokers that are running and registered with the controller"
    ),
    printcolumn(
        name = "Controller",
        type_ = "integer",
        json_path = ".status.controllerId",
        description = "Node id of the active controller (the Raft leader)"
    ),
    printcolumn(
        name = "Warnings",
        type_ = "integer",
        json_path = ".status.warnings",
        description = "Things that work but need attention; the Warning condition lists them"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // `kubectl scale kafkacluster NAME --replicas N`, and autoscalers.
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.brokers",
        label_selector_path = ".status.selector"
    )
)]
// Spec-level rule: it sees replicas and controllerVoters together (the
// voters change after creation through Raft membership changes, see the
// operator's cluster/voters.rs). Messages use format(), not `+ string(x)`:
// the apiserver estimates the latter as unbounded and refuses the CRD.
#[x_kube(
    validation = Rule::new("!has(self.controllerVoters) || self.controllerVoters <= self.replicas")
        .message(Message::Expression(
            "'controllerVoters (%d) cannot exceed replicas (%d): every controller voter runs in a broker pod'\
             .format([self.controllerVoters, self.replicas])"
                .into()
        ))
        .field_path(".controllerVoters")
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// Number of brokers (1–100). Brokers get node ids 0..replicas-1.
    /// Scaling up adds brokers and (with `rebalance.enabled`) moves replicas
    /// onto them; scaling down first moves every replica off the brokers
    /// that go, then removes their pods — and is refused (Degraded,
    /// `ScaleDownBlocked`) while a topic's replication factor exceeds the new
    /// count. The volume claims of removed brokers are kept.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,

    /// Container image of the broker.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// When the kubelet pulls the broker image; Kubernetes' default when unset
    /// (Always for a `:latest` tag, IfNotPresent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Size of the Raft controller quorum: 1, 3 or 5 voters, at most
    /// `replicas`; the first voters are brokers 0..controllerVoters-1.
    /// Default: min(replicas, 3) rounded down to an odd number. It may
    /// change after creation (1→3→5→3): the operator moves the voters with
    /// Raft membership changes, one voter at a time, before a scale-down
    /// removes a voter's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self == 1 || self == 3 || self == 5")
            .message("controllerVoters must be 1, 3 or 5: a Raft quorum needs an odd number of voters"),
    )]
    pub controller_voters: Option<i32>,

    /// Broker settings by their Kafka names, e.g. `log.retention.ms: "604800000"`.
    /// Node id, listeners, quorum voters and the data directory are set by
    /// the operator, not here; an unknown setting is reported in the status
    /// (Degraded, InvalidSpec) and not rolled out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// Where brokers keep their logs. Default: a 10Gi persistent volume per broker.
    #[serde(default)]
    pub storage: Storage,

    /// CPU and memory for each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// How clients reach the brokers. The in-cluster listener always exists.
    /// `external` adds Services of its type, `<cluster>-external` over all
    /// brokers and `<cluster>-external-<n>` per broker, exposing only the
    /// brokers' external listener (port 9099) outside the cluster,
    /// where each broker advertises its own external address (its node's
    /// address and node port, or its load balancer's) once it is known.
    #[serde(default)]
    pub listeners: Listeners,

    /// Rack awareness: broker pods are spread across the values of this node
    /// label, and each broker takes its node's value as its rack (reported in
    /// metadata, used by rack-aware replica placement). The value reaches the
    /// pod through the API server's PodTopologyLabels admission, which copies
    /// the node's `topology.kubernetes.io/zone` and `region` labels onto each
    /// pod it binds (beta, on by default since Kubernetes 1.35); another key
    /// needs that admission configured to copy it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<Rack>,

    /// Overrides for the broker pods' scheduling and metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateOverrides>,

    /// Prometheus metrics endpoint of the brokers.
    #[serde(default)]
    pub metrics: Metrics,

    /// Moving replicas between brokers after a scale-up.
    #[serde(default)]
    pub rebalance: Rebalance,

    /// The cluster CA (signs the brokers' certificates) and the clients CA
    /// (signs KafkaUsers' certificates): validity, renewal, who provides them.
    #[serde(default)]
    pub certificate_authorities: CertificateAuthorities,

    /// Kafka ACLs on the client listeners and the super users no ACL is
    /// checked for. Unset: no authorizer (everyone may do everything),
    /// unless `config` sets `authorizer.class.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<crate::authorization::ClusterAuthorization>,

    /// The NetworkPolicy `<cluster>-network-policy` over the broker pods:
    /// the internal port (9093) only from the cluster's brokers and the
    /// operator, the Kafka listeners and the HTTP port from anywhere.
    #[serde(default)]
    pub network_policy: NetworkPolicySettings,
}

/// Default validity of generated CAs and the certificates they sign, in days.
pub const DEFAULT_CA_VALIDITY_DAYS: i32 = 365;
/// Default renewal window before a CA's or certificate's expiry, in days.
pub const DEFAULT_CA_RENEWAL_DAYS: i32 = 30;

/// The cluster's two certificate authorities, kept by the operator in the
/// Secrets `<cluster>-cluster-ca` and `<cluster>-clients-ca` (`ca.crt`,
/// `ca.key`). Renewal replaces a CA without restarting a broker: the new CA
/// is trusted alongside the old one, certificates are issued again, the old
/// CA is retired later. The annotation `strom.dev/force-renew` on a CA
/// Secret (or on the KafkaCluster, for both) renews at once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.renewalDays < self.validityDays")
    .message("certificateAuthorities.renewalDays must be less than validityDays (renewal starts renewalDays before expiry)")
    .field_path(".renewalDays"))]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthorities {
    /// Validity of a generated CA and of the certificates it signs, in days.
    #[serde(default = "default_ca_validity")]
    #[schemars(range(min = 2, max = 36500))]
    pub validity_days: i32,

    /// Renew a CA or certificate this many days before it expires.
    #[serde(default = "default_ca_renewal")]
    #[schemars(range(min = 1, max = 36499))]
    pub renewal_days: i32,

    /// Whether the operator generates the CAs. `false`: create the Secrets
    /// `<cluster>-cluster-ca` and `<cluster>-clients-ca` (`ca.crt`, `ca.key`,
    /// PEM) yourself; the operator uses them, reports their expiry and never
    /// replaces them.
    #[serde(default = "default_true")]
    pub generate: bool,
}

fn default_ca_validity() -> i32 {
    DEFAULT_CA_VALIDITY_DAYS
}

fn default_ca_renewal() -> i32 {
    DEFAULT_CA_RENEWAL_DAYS
}

impl Default for CertificateAuthorities {
    fn default() -> Self {
        Self { validity_days: DEFAULT_CA_VALIDITY_DAYS, renewal_days: DEFAULT_CA_RENEWAL_DAYS, generate: true }
    }
}

fn default_replicas() -> i32 {
    DEFAULT_REPLICAS
}

fn default_image() -> String {
    DEFAULT_BROKER_IMAGE.to_owned()
}

impl Default for KafkaClusterSpec {
    fn default() -> Self {
        Self {
            replicas: DEFAULT_REPLICAS,
            image: default_image(),
            image_pull_policy: None,
            controller_voters: None,
            config: BTreeMap::new(),
            storage: Storage::default(),
            resources: None,
            listeners: Listeners::default(),
            rack: None,
            template: None,
            metrics: Metrics::default(),
            rebalance: Rebalance::default(),
            certificate_authorities: CertificateAuthorities::default(),
            authorization: None,
            network_policy: NetworkPolicySettings::default(),
        }
    }
}

/// Controller quorum size used when `controllerVoters` is unset:
/// min(replicas, 3) rounded down to an odd number, and at least 1.
pub fn default_controller_voters(replicas: i32) -> i32 {
    if replicas >= 3 { 3 } else { 1 }
}

impl KafkaClusterSpec {
    /// The effective size of the controller quorum: `controllerVoters`, or
    /// [`default_controller_voters`] of `replicas`.
    pub fn voters(&self) -> i32 {
        self.controller_voters.unwrap_or_else(|| default_controller_voters(self.replicas))
    }

    /// Checks the rules the CRD's schema and CEL enforce that need no old
    /// object, so the operator refuses a spec an older or hand-edited CRD let
    /// through. Transition rules (immutability) are the apiserver's alone.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.replicas < 1 {
            return Err(SpecError::Replicas { replicas: self.replicas });
        }
        if let Some(voters) = self.controller_voters {
            if ![1, 3, 5].contains(&voters) {
                return Err(SpecError::ControllerVoters { voters });
            }
            if voters > self.replicas {
                return Err(SpecError::VotersExceedReplicas { voters, replicas: self.replicas });
            }
        }
        self.storage.validate()?;
        if let Some(external) = &self.listeners.external {
            external.validate()?;
            if let Some(base) = external.node_port_base {
                if base.saturating_add(self.replicas) > NODE_PORT_MAX {
                    return Err(ListenerError::NodePortsPastRange { base, replicas: self.replicas }.into());
                }
            }
        }
        self.listeners.validate_additional()?;
        if self.listeners.external.is_some()
            && let Some(index) = self.listeners.additional.iter().position(|l| l.port == EXTERNAL_LISTENER_PORT)
        {
            return Err(ListenerError::ExternalPort { index }.into());
        }
        let cas = &self.certificate_authorities;
        if cas.renewal_days < 1 || cas.renewal_days >= cas.validity_days {
            return Err(SpecError::CaRenewal { renewal: cas.renewal_days, validity: cas.validity_days });
        }
        if let Some(authorization) = &self.authorization {
            authorization.validate()?;
            if let Some(key) =
                crate::authorization::AUTHORIZATION_SETTINGS.iter().find(|k| self.config.contains_key(**k))
            {
                return Err(crate::authorization::AuthorizationError::ConfigConflict { key: key.to_string() }.into());
            }
        }
        Ok(())
    }
}

/// Why a `KafkaClusterSpec` is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `replicas` below 1.
    #[error("replicas is {replicas}: a cluster needs at least 1 broker")]
    Replicas {
        /// The rejected value.
        replicas: i32,
    },
    /// `controllerVoters` not 1, 3 or 5.
    #[error("controllerVoters is {voters}: it must be 1, 3 or 5 (a Raft quorum needs an odd number of voters)")]
    ControllerVoters {
        /// The rejected value.
        voters: i32,
    },
    /// More voters than brokers.
    #[error(
        "controllerVoters ({voters}) cannot exceed replicas ({replicas}): every controller voter runs in a broker pod"
    )]
    VotersExceedReplicas {
        /// Requested voters.
        voters: i32,
        /// Requested brokers.
        replicas: i32,
    },
    /// `storage` is not acceptable.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `listeners.external` or `listeners.additional` is not acceptable.
    #[error(transparent)]
    Listener(#[from] ListenerError),
    /// Renewal window not shorter than the validity.
    #[error(
        "certificateAuthorities.renewalDays ({renewal}) must be at least 1 and less than validityDays ({validity}): renewal starts renewalDays before expiry"
    )]
    CaRenewal {
        /// `renewalDays`.
        renewal: i32,
        /// `validityDays`.
        validity: i32,
    },
    /// `authorization` is not acceptable.
    #[error(transparent)]
    Authorization(#[from] crate::authorization::AuthorizationError),
}

/// Pull policy of the broker image, as in a Pod's `imagePullPolicy`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull only when the node does not have the image.
    IfNotPresent,
    /// Never pull; the image must already be on the node.
    Never,
}

impl ImagePullPolicy {
    /// The value as a Pod spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Where brokers keep their log segments.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.type) && self.type == 'Ephemeral') || has(self.size)")
    .message("storage.size is required when storage.type is Persistent, e.g. size: 10Gi")
    .field_path(".size")
    .reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Persistent: one PersistentVolumeClaim per broker, kept across pod
    /// restarts. Ephemeral: an emptyDir, lost whenever a pod is rescheduled
    /// (tests and demos only). Cannot change after creation.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "storage.type cannot change after creation: brokers would lose their logs; create a new cluster instead"
    ))]
    pub r#type: StorageType,

    /// Volume size per broker as a Kubernetes quantity with unit Ki, Mi, Gi,
    /// Ti, Pi, Ei (powers of 1024), k, M, G, T, P, E (powers of 1000) or none
    /// (bytes), e.g. 100Gi. Required when Persistent; when Ephemeral, the
    /// optional size limit of the emptyDir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(
        validation = Rule::new("self.matches('^[0-9]+([.][0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$')").message(
            "storage.size must be a number with one of the units Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024), \
             k, M, G, T, P, E (powers of 1000) or none (bytes), e.g. 10Gi; no sign, exponent or 'B'"
        ),
        // Only numbers need this; anything else already fails the rule above.
        validation = Rule::new("!self.matches('^[0-9]') || self.matches('[1-9]')")
            .message("storage.size must be greater than zero"),
        validation = Rule::new("self == oldSelf").message(
            "storage.size cannot change yet: a StatefulSet's volume claims are fixed (volume expansion is not implemented)"
        )
    )]
    pub size: Option<String>,

    /// StorageClass of the claims; the cluster's default class when unset.
    /// Cannot change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("storage.storageClassName cannot change: a StatefulSet's volume claims are fixed"))]
    pub storage_class_name: Option<String>,

    /// Delete the brokers' PersistentVolumeClaims when the KafkaCluster is
    /// deleted. Default false: the data outlives the resource.
    #[serde(default)]
    pub delete_claim: bool,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            r#type: StorageType::Persistent,
            size: Some(DEFAULT_STORAGE_SIZE.to_owned()),
            storage_class_name: None,
            delete_claim: false,
        }
    }
}

impl Storage {
    /// Whether brokers get PersistentVolumeClaims.
    pub fn is_persistent(&self) -> bool {
        self.r#type == StorageType::Persistent
    }

    /// The size in bytes, if set; rounded up to a whole byte.
    pub fn size_bytes(&self) -> Result<Option<u128>, StorageError> {
        match &self.size {
            Some(size) => Ok(Some(parse_storage_size(size)?)),
            None if self.is_persistent() => Err(StorageError::MissingSize),
            None => Ok(None),
        }
    }

    /// Checks that a persistent volume has a size and that any size is a
    /// quantity with a known unit.
    pub fn validate(&self) -> Result<(), StorageError> {
        self.size_bytes().map(|_| ())
    }
}

/// Why `spec.storage` is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Persistent storage without a size.
    #[error(
        "storage.size is required when storage.type is Persistent: set e.g. size: 10Gi, \
         or type: Ephemeral for a cluster whose data may be lost"
    )]
    MissingSize,
    /// The size is not a quantity with a known unit.
    #[error("storage.size: {0}")]
    Size(#[from] QuantityError),
}

/// Kind of volume behind the broker logs.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StorageType {
    /// A PersistentVolumeClaim per broker.
    #[default]
    Persistent,
    /// An emptyDir per broker pod.
    Ephemeral,
}

/// Listeners beyond the in-cluster one, and how clients authenticate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Listeners {
    /// A listener reachable from outside the Kubernetes cluster; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalListener>,

    /// How clients authenticate on the Kafka port (9092, also behind
    /// `external`). Unset: PLAINTEXT, no authentication. `scram-sha-512`:
    /// SASL_PLAINTEXT with SCRAM-SHA-512, users from KafkaUser resources.
    /// Changing it restarts the brokers. ACLs are enforced once
    /// `spec.config` sets `authorizer.class.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ListenerAuthentication>,

    /// More listeners, each on its own port, beside the Kafka port 9092
    /// (which `authentication` above still describes): TLS with the
    /// brokers' certificate from the cluster CA, and SCRAM-SHA-512, client
    /// certificates from the clients CA or OAuth bearer tokens. Names are unique, lower-case
    /// letters and digits; ports are unique and not 9092 (the Kafka
    /// listener), 9093 (internal) or 9094 (HTTP). Changing them restarts
    /// the brokers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(
        validation = Rule::new("self.all(l, self.exists_one(m, m.name == l.name))")
            .message("listeners.additional: every listener needs its own name"),
        validation = Rule::new("self.all(l, self.exists_one(m, m.port == l.port))")
            .message("listeners.additional: every listener needs its own port")
    )]
    pub additional: Vec<KafkaListener>,
}

/// Port of the default Kafka listener (PLAINTEXT or `authentication`'s).
pub const KAFKA_LISTENER_PORT: i32 = 9092;
/// Ports the brokers use for themselves: Kafka's 9092, internal 9093, HTTP 9094.
pub const RESERVED_PORTS: [i32; 3] = [9092, 9093, 9094];
/// Port of the brokers' external listener (`listeners.external`): the
/// external Services' target, advertised at each broker's external address.
pub const EXTERNAL_LISTENER_PORT: i32 = 9099;
/// Names the default Kafka listener takes (its security protocol's).
pub const RESERVED_LISTENER_NAMES: [&str; 2] = ["plaintext", "sasl_plaintext"];

/// One more Kafka listener of the brokers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("!(self.port in [9092, 9093, 9094])")
        .message("listeners.additional[].port: 9092 (the Kafka listener), 9093 (internal) and 9094 (HTTP) are taken; pick another port")
        .field_path(".port"),
    validation = Rule::new("self.name != 'plaintext'")
        .message("listeners.additional[].name: plaintext is the Kafka listener's name on 9092; pick another name")
        .field_path(".name"),
    validation = Rule::new("!has(self.authentication) || self.authentication.type != 'tls' || self.tls")
        .message("listeners.additional[].authentication.type tls needs tls: true (client certificates come with TLS)")
        .field_path(".authentication.type"),
    validation = Rule::new("!has(self.authentication) || self.authentication.type != 'oauth' || has(self.authentication.issuer)")
        .message("listeners.additional[].authentication.issuer is required with type oauth (the tokens' expected iss)")
        .field_path(".authentication.issuer"),
    validation = Rule::new("!has(self.authentication) || self.authentication.type != 'oauth' || has(self.authentication.jwksUri)")
        .message("listeners.additional[].authentication.jwksUri is required with type oauth (https:// URL of the issuer's key set)")
        .field_path(".authentication.jwksUri")
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaListener {
    /// Listener name: lower-case letters and digits, starting with a letter,
    /// at most 11 characters (the broker's `listener.name.<name>.*`).
    #[schemars(regex(pattern = r"^[a-z][a-z0-9]{0,10}$"), length(min = 1, max = 11))]
    pub name: String,

    /// Port in the broker pods and on the Services.
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,

    /// Where the listener is reachable: `internal` (inside the Kubernetes
    /// cluster, through the pods' and the bootstrap Service's names).
    #[serde(default)]
    pub r#type: KafkaListenerType,

    /// Whether connections are TLS (the brokers' certificate is issued by
    /// the cluster CA; clients trust its `ca.crt`).
    #[serde(default)]
    pub tls: bool,

    /// How clients authenticate; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<KafkaListenerAuthentication>,
}

/// Where a listener is reachable.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KafkaListenerType {
    /// Inside the Kubernetes cluster.
    #[default]
    #[serde(rename = "internal")]
    Internal,
}

/// Client authentication on one listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new(
    "self.type == 'oauth' || !(has(self.issuer) || has(self.jwksUri) || has(self.audience) || has(self.principalClaim) || has(self.jwksCaSecret))"
)
.message("listeners.additional[].authentication: issuer, jwksUri, audience, principalClaim and jwksCaSecret apply only to type oauth"))]
#[serde(rename_all = "camelCase")]
pub struct KafkaListenerAuthentication {
    /// `none`, `scram-sha-512` (KafkaUsers of that type), `tls` (client
    /// certificates of the clients CA, the user being the certificate's CN)
    /// or `oauth` (SASL OAUTHBEARER: JWTs of `issuer`, checked against the
    /// key set at `jwksUri`).
    pub r#type: KafkaListenerAuthenticationType,

    /// `oauth`: the tokens' expected `iss` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub issuer: Option<String>,

    /// `oauth`: the https:// URL of the issuer's JSON Web Key Set, fetched
    /// by every broker at start and every hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')")
        .message("listeners.additional[].authentication.jwksUri must be an https:// URL"))]
    pub jwks_uri: Option<String>,

    /// `oauth`: the expected `aud` claim (a token naming it among its
    /// audiences passes); unset: the audience is not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub audience: Option<String>,

    /// `oauth`: the claim naming the principal (`User:<value>`); default `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.-]{1,64}$"), length(min = 1, max = 64))]
    pub principal_claim: Option<String>,

    /// `oauth`: a Secret key holding the PEM CA certificates that sign the
    /// JWKS endpoint's certificate (mounted into the broker pods); unset:
    /// the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_ca_secret: Option<SecretKeySelector>,
}

/// A key of a Secret in the cluster's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct SecretKeySelector {
    /// The Secret's name.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), length(min = 1, max = 253))]
    pub name: String,
    /// The key in the Secret.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

/// Client authentication types of an additional listener.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KafkaListenerAuthenticationType {
    /// Anyone (`User:ANONYMOUS`, or the client certificate's CN if one is sent).
    #[serde(rename = "none")]
    None,
    /// SASL with SCRAM-SHA-512.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// Mutual TLS: a certificate of the clients CA is required.
    #[serde(rename = "tls")]
    Tls,
    /// SASL OAUTHBEARER with JWTs of an identity provider.
    #[serde(rename = "oauth")]
    OAuth,
}

impl KafkaListener {
    /// The authentication type (`none` when unset).
    pub fn auth(&self) -> KafkaListenerAuthenticationType {
        self.authentication.as_ref().map_or(KafkaListenerAuthenticationType::None, |a| a.r#type)
    }
}

impl Listeners {
    /// Checks `additional` as the CRD does: names, ports, TLS for `tls`
    /// authentication.
    pub fn validate_additional(&self) -> Result<(), ListenerError> {
        let mut names = std::collections::BTreeSet::new();
        let mut ports = std::collections::BTreeSet::new();
        for (index, l) in self.additional.iter().enumerate() {
            let valid_name = l.name.len() <= 11
                && l.name.starts_with(|c: char| c.is_ascii_lowercase())
                && l.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !valid_name {
                return Err(ListenerError::BadName { index, name: l.name.clone() });
            }
            if RESERVED_LISTENER_NAMES.contains(&l.name.as_str()) {
                return Err(ListenerError::ReservedName { index, name: l.name.clone() });
            }
            if RESERVED_PORTS.contains(&l.port) || !(1024..=65535).contains(&l.port) {
                return Err(ListenerError::ReservedPort { index, port: l.port });
            }
            if !names.insert(l.name.as_str()) {
                return Err(ListenerError::DuplicateName { index, name: l.name.clone() });
            }
            if !ports.insert(l.port) {
                return Err(ListenerError::DuplicatePort { index, port: l.port });
            }
            if l.auth() == KafkaListenerAuthenticationType::Tls && !l.tls {
                return Err(ListenerError::TlsAuthWithoutTls { index });
            }
            if let Some(auth) = &l.authentication {
                auth.validate(index)?;
            }
        }
        Ok(())
    }
}

impl KafkaListenerAuthentication {
    /// Checks the `oauth` fields as the CRD does (listener `index`).
    pub fn validate(&self, index: usize) -> Result<(), ListenerError> {
        let oauth_field = [
            ("issuer", self.issuer.is_some()),
            ("jwksUri", self.jwks_uri.is_some()),
            ("audience", self.audience.is_some()),
            ("principalClaim", self.principal_claim.is_some()),
            ("jwksCaSecret", self.jwks_ca_secret.is_some()),
        ];
        if self.r#type != KafkaListenerAuthenticationType::OAuth {
            return match oauth_field.iter().find(|(_, set)| *set) {
                Some((field, _)) => Err(ListenerError::OAuthFieldWithoutOAuth { index, field }),
                None => Ok(()),
            };
        }
        let issuer = self.issuer.as_deref().unwrap_or_default();
        if issuer.is_empty() || issuer.len() > 512 {
            return Err(ListenerError::OAuthIssuer { index });
        }
        match self.jwks_uri.as_deref() {
            Some(uri) if uri.starts_with("https://") && uri.len() > 8 && uri.len() <= 2048 => {}
            other => {
                return Err(ListenerError::OAuthJwksUri { index, value: other.unwrap_or_default().to_string() });
            }
        }
        if let Some(claim) = &self.principal_claim {
            let valid = (1..=64).contains(&claim.len())
                && claim.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                return Err(ListenerError::OAuthPrincipalClaim { index, value: claim.clone() });
            }
        }
        if let Some(secret) = &self.jwks_ca_secret {
            let valid = !secret.key.is_empty()
                && secret.key.len() <= 253
                && secret.key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
            if !valid {
                return Err(ListenerError::OAuthCaSecretKey { index, value: secret.key.clone() });
            }
        }
        Ok(())
    }
}

/// Client authentication on the Kafka listener.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct ListenerAuthentication {
    /// The SASL mechanism clients use.
    pub r#type: ListenerAuthenticationType,
}

/// Client authentication types of the Kafka listener.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerAuthenticationType {
    /// SASL_PLAINTEXT with SCRAM-SHA-512.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

/// A listener reachable from outside the cluster, through Services of its type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.nodePortBase) || self.type == 'NodePort'")
    .message("nodePortBase applies only to type NodePort")
    .field_path(".nodePortBase"))]
#[serde(rename_all = "camelCase")]
pub struct ExternalListener {
    /// How the external Services are exposed: NodePort or LoadBalancer.
    pub r#type: ExternalListenerType,

    /// For NodePort: the external bootstrap Service's (`<cluster>-external`)
    /// node port; broker n's own
    /// Service (`<cluster>-external-<n>`) takes nodePortBase + 1 + n.
    /// Kubernetes picks free ports when unset. nodePortBase + replicas must
    /// lie in 30000–32767.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port_base: Option<i32>,

    /// Annotations put on the external Services, e.g. for a cloud load balancer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ExternalListener {
    /// Checks `nodePortBase` as the CRD does.
    pub fn validate(&self) -> Result<(), ListenerError> {
        if let Some(base) = self.node_port_base {
            if self.r#type != ExternalListenerType::NodePort {
                return Err(ListenerError::NodePortBaseWithoutNodePort);
            }
            if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&base) {
                return Err(ListenerError::NodePortBaseOutOfRange { base });
            }
        }
        Ok(())
    }
}

/// Why `spec.listeners.external` is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    /// A node port base on a LoadBalancer listener.
    #[error("listeners.external.nodePortBase applies only to type NodePort: remove it or change the type")]
    NodePortBaseWithoutNodePort,
    /// Outside Kubernetes' default node port range.
    #[error("listeners.external.nodePortBase is {base}: it must lie in {NODE_PORT_MIN}–{NODE_PORT_MAX}")]
    NodePortBaseOutOfRange {
        /// The rejected value.
        base: i32,
    },
    /// Too many brokers for the node ports above the base.
    #[error(
        "listeners.external.nodePortBase is {base}: with {replicas} brokers the last one's node port (base + replicas) passes {NODE_PORT_MAX}; lower it"
    )]
    NodePortsPastRange {
        /// The base.
        base: i32,
        /// The brokers.
        replicas: i32,
    },
    /// A name the broker cannot take.
    #[error(
        "listeners.additional[{index}].name is {name:?}: use lower-case letters and digits, starting with a letter, at most 11"
    )]
    BadName {
        /// Position in the list.
        index: usize,
        /// The rejected name.
        name: String,
    },
    /// The default listener's name.
    #[error(
        "listeners.additional[{index}].name is {name:?}: that is the Kafka listener's name on 9092; pick another name"
    )]
    ReservedName {
        /// Position in the list.
        index: usize,
        /// The rejected name.
        name: String,
    },
    /// A port the brokers use themselves, or outside 1024–65535.
    #[error(
        "listeners.additional[{index}].port is {port}: 9092 (Kafka), 9093 (internal) and 9094 (HTTP) are taken and ports lie in 1024–65535"
    )]
    ReservedPort {
        /// Position in the list.
        index: usize,
        /// The rejected port.
        port: i32,
    },
    /// The external listener's port, taken while `listeners.external` is set.
    #[error(
        "listeners.additional[{index}].port is {EXTERNAL_LISTENER_PORT}: the external listener's port while listeners.external is set; pick another port"
    )]
    ExternalPort {
        /// Position in the list.
        index: usize,
    },
    /// Two listeners of one name.
    #[error("listeners.additional[{index}].name {name:?} is used twice: every listener needs its own name")]
    DuplicateName {
        /// Position of the second one.
        index: usize,
        /// The name.
        name: String,
    },
    /// Two listeners on one port.
    #[error("listeners.additional[{index}].port {port} is used twice: every listener needs its own port")]
    DuplicatePort {
        /// Position of the second one.
        index: usize,
        /// The port.
        port: i32,
    },
    /// Client certificates without TLS.
    #[error(
        "listeners.additional[{index}].authentication.type tls needs tls: true (client certificates come with TLS)"
    )]
    TlsAuthWithoutTls {
        /// Position in the list.
        index: usize,
    },
    /// An `oauth` field on another authentication type.
    #[error(
        "listeners.additional[{index}].authentication.{field} applies only to type oauth: remove it or set type: oauth"
    )]
    OAuthFieldWithoutOAuth {
        /// Position in the list.
        index: usize,
        /// The field set.
        field: &'static str,
    },
    /// `oauth` without an issuer.
    #[error(
        "listeners.additional[{index}].authentication.issuer is required with type oauth (the tokens' expected iss, at most 512 characters)"
    )]
    OAuthIssuer {
        /// Position in the list.
        index: usize,
    },
    /// `oauth` without an https:// key set URL.
    #[error(
        "listeners.additional[{index}].authentication.jwksUri is {value:?}: type oauth needs the https:// URL of the issuer's key set (at most 2048 characters)"
    )]
    OAuthJwksUri {
        /// Position in the list.
        index: usize,
        /// The rejected value (empty when unset).
        value: String,
    },
    /// A principal claim name the broker cannot take.
    #[error(
        "listeners.additional[{index}].authentication.principalClaim is {value:?}: a claim name of letters, digits, '_', '.' or '-', at most 64"
    )]
    OAuthPrincipalClaim {
        /// Position in the list.
        index: usize,
        /// The rejected value.
        value: String,
    },
    /// A Secret key that is not a file name.
    #[error(
        "listeners.additional[{index}].authentication.jwksCaSecret.key is {value:?}: a Secret key of letters, digits, '-', '.' or '_'"
    )]
    OAuthCaSecretKey {
        /// Position in the list.
        index: usize,
        /// The rejected value.
        value: String,
    },
}

/// How an external listener is exposed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalListenerType {
    /// A NodePort Service; clients connect to a node's address.
    NodePort,
    /// A LoadBalancer Service.
    LoadBalancer,
}

/// Rack awareness settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rack {
    /// Node label whose value is the broker's rack.
    #[serde(default = "default_rack_topology_key")]
    #[schemars(length(min = 1))]
    pub topology_key: String,
    /// Rolling restarts take a whole rack at a time (its brokers together)
    /// when every partition keeps at least `min.insync.replicas` in-sync
    /// replicas in other racks and a majority of the controller voters stays
    /// up; otherwise, and for the active controller's rack until it is the
    /// last, one broker at a time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batched_restarts: bool,
}

fn default_rack_topology_key() -> String {
    DEFAULT_RACK_TOPOLOGY_KEY.to_owned()
}

impl Default for Rack {
    fn default() -> Self {
        Self { topology_key: default_rack_topology_key(), batched_restarts: false }
    }
}

/// Additions to the broker pod template. Labels and annotations are merged
/// with the operator's own, which win on conflict.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Node labels a broker pod's node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the broker pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Node and pod (anti-)affinity of the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Extra annotations on the broker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Extra labels on the broker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// How the operator moves replicas between brokers.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rebalance {
    /// Spread replicas and preferred leaders evenly over the brokers when they
    /// are not (after a scale-up). Default true. Draining brokers before a
    /// scale-down and replication-factor changes happen either way.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Bytes per second each broker may copy for the replicas it receives,
    /// so that moving partitions does not starve clients; 0 means
    /// unthrottled. Default 20 MiB/s.
    #[serde(default = "default_rebalance_throttle")]
    #[schemars(range(min = 0))]
    pub throttle_bytes_per_second: i64,
}

/// Default of `rebalance.throttleBytesPerSecond`.
pub const DEFAULT_REBALANCE_THROTTLE: i64 = 20 << 20;

fn default_rebalance_throttle() -> i64 {
    DEFAULT_REBALANCE_THROTTLE
}

impl Default for Rebalance {
    fn default() -> Self {
        Rebalance { enabled: true, throttle_bytes_per_second: DEFAULT_REBALANCE_THROTTLE }
    }
}

/// The NetworkPolicy the operator keeps over the broker pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySettings {
    /// Keep the NetworkPolicy `<cluster>-network-policy`. Default true.
    /// `false` deletes it: for a network whose policies are managed
    /// otherwise (it only has effect where the CNI enforces NetworkPolicies).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for NetworkPolicySettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Prometheus metrics of the brokers.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Expose `/metrics` on each broker. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}

impl Default for Metrics {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// What the operator last observed of a cluster. Every field has a default
/// so a partial status parses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct KafkaClusterStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Progressing and Degraded, in the Kubernetes condition shape.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Broker pods that exist.
    pub brokers: i32,

    /// Brokers that are running and registered with the controller.
    pub ready_brokers: i32,

    /// Node id of the active controller (the Raft leader), when known.
    /// Written as null when unknown, so a merge patch clears a stale value.
    pub controller_id: Option<i32>,

    /// The controller voters (broker ids) of the committed Raft membership,
    /// as the brokers report them; empty when unknown. Follows
    /// `spec.controllerVoters` one membership change at a time. Written
    /// empty when unknown, so a merge patch clears a stale list.
    #[serde(default)]
    pub controller_voters: Vec<i32>,

    /// Partitions whose ISR is smaller than their replica set, when known
    /// (null when unknown).
    pub under_replicated_partitions: Option<i32>,

    /// Bootstrap servers for clients inside the cluster, `host:port,...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,

    /// The rolling restart in progress; null when every broker runs the
    /// current pod template.
    pub rolling_restart: Option<RollingRestartStatus>,

    /// How many things work but need attention (listed by the Warning condition).
    pub warnings: i32,

    /// The label selector of the cluster's broker pods (for the scale subresource).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// The cluster CA's and the clients CA's expiry, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authorities: Option<CertificateAuthoritiesStatus>,
}

/// The CAs' expiry (RFC 3339), as the operator last read them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct CertificateAuthoritiesStatus {
    /// When the cluster CA's certificate expires.
    pub cluster_ca_expiry: Option<String>,
    /// When the clients CA's certificate expires.
    pub clients_ca_expiry: Option<String>,
}

/// Progress of a rolling restart, one broker at a time.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RollingRestartStatus {
    /// Brokers still running an older pod template.
    pub brokers_left: i32,

    /// The broker restarted last (its pod deleted by the operator), until the
    /// next one is restarted.
    pub current_broker: Option<i32>,

    /// When `currentBroker` was restarted: its new pod's creation time (RFC 3339).
    pub restarted_at: Option<String>,

    /// What the roll waits for before the next broker, or what it does now.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(name: &str, port: i32, tls: bool, auth: Option<KafkaListenerAuthenticationType>) -> KafkaListener {
        KafkaListener {
            name: name.into(),
            port,
            r#type: KafkaListenerType::Internal,
            tls,
            authentication: auth.map(|r#type| KafkaListenerAuthentication {
                r#type,
                issuer: None,
                jwks_uri: None,
                audience: None,
                principal_claim: None,
                jwks_ca_secret: None,
            }),
        }
    }

    fn with_listeners(additional: Vec<KafkaListener>) -> Result<(), SpecError> {
        let mut spec = KafkaClusterSpec::default();
        spec.listeners.additional = additional;
        spec.validate()
    }

    #[test]
    fn additional_listeners_need_own_names_and_free_ports() {
        use KafkaListenerAuthenticationType::{ScramSha512, Tls};
        let scram = listener("scram", 9095, true, Some(ScramSha512));
        let mtls = listener("mtls", 9096, true, Some(Tls));
        assert_eq!(with_listeners(vec![scram.clone(), mtls.clone()]), Ok(()));
        let twice = with_listeners(vec![scram.clone(), listener("scram", 9097, false, None)]).unwrap_err();
        assert!(twice.to_string().contains("listeners.additional[1].name \"scram\" is used twice"), "{twice}");
        let port = with_listeners(vec![scram.clone(), listener("other", 9095, false, None)]).unwrap_err();
        assert!(port.to_string().contains("listeners.additional[1].port 9095 is used twice"), "{port}");
        for reserved in [9092, 9093, 9094] {
            let e = with_listeners(vec![listener("x", reserved, false, None)]).unwrap_err();
            assert!(e.to_string().contains(&format!("port is {reserved}: 9092 (Kafka)")), "{e}");
        }
        let name = with_listeners(vec![listener("plaintext", 9095, false, None)]).unwrap_err();
        assert!(name.to_string().contains("Kafka listener's name"), "{name}");
        let bad = with_listeners(vec![listener("Tls_1", 9095, false, None)]).unwrap_err();
        assert!(bad.to_string().contains("lower-case letters and digits"), "{bad}");
        let no_tls = with_listeners(vec![listener("m", 9095, false, Some(Tls))]).unwrap_err();
        assert!(no_tls.to_string().contains("tls needs tls: true"), "{no_tls}");
        assert_eq!(with_listeners(vec![listener("x", EXTERNAL_LISTENER_PORT, false, None)]), Ok(()));
        let mut spec = KafkaClusterSpec::default();
        spec.listeners.additional = vec![scram, listener("x", EXTERNAL_LISTENER_PORT, false, None)];
        spec.listeners.external = Some(ExternalListener {
            r#type: ExternalListenerType::LoadBalancer,
            node_port_base: None,
            annotations: BTreeMap::new(),
        });
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("listeners.additional[1].port is 9099: the external listener's port"), "{e}");
    }

    #[test]
    fn every_brokers_node_port_must_fit_above_the_base() {
        let mut spec = KafkaClusterSpec { replicas: 3, ..KafkaClusterSpec::default() };
        spec.listeners.external = Some(ExternalListener {
            r#type: ExternalListenerType::NodePort,
            node_port_base: Some(32764),
            annotations: BTreeMap::new(),
        });
        assert_eq!(spec.validate(), Ok(()), "32765, 32766 and 32767 for the brokers");
        spec.replicas = 4;
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("listeners.external.nodePortBase is 32764: with 4 brokers"), "{e}");
    }

    #[test]
    fn oauth_listeners_need_an_issuer_and_an_https_key_set() {
        let check = |auth: serde_json::Value| {
            let listener: KafkaListener =
                serde_json::from_value(serde_json::json!({"name": "oauth", "port": 9097, "authentication": auth}))
                    .expect("a listener");
            with_listeners(vec![listener]).map_err(|e| e.to_string())
        };
        let good = serde_json::json!({"type": "oauth", "issuer": "https://idp", "jwksUri": "https://idp/keys",
            "principalClaim": "preferred_username", "jwksCaSecret": {"name": "idp-ca", "key": "ca.crt"}});
        assert_eq!(check(good), Ok(()));
        for (auth, expected) in [
            (serde_json::json!({"type": "oauth", "jwksUri": "https://idp/keys"}), "authentication.issuer is required"),
            (serde_json::json!({"type": "oauth", "issuer": "i"}), "authentication.jwksUri is \"\""),
            (
                serde_json::json!({"type": "oauth", "issuer": "i", "jwksUri": "http://idp/keys"}),
                "jwksUri is \"http://idp/keys\": type oauth needs the https:// URL",
            ),
            (
                serde_json::json!({"type": "oauth", "issuer": "i", "jwksUri": "https://k", "principalClaim": "a b"}),
                "principalClaim is \"a b\"",
            ),
            (
                serde_json::json!({"type": "oauth", "issuer": "i", "jwksUri": "https://k",
                    "jwksCaSecret": {"name": "s", "key": "../x\""}}),
                "jwksCaSecret.key is",
            ),
            (
                serde_json::json!({"type": "scram-sha-512", "issuer": "https://idp"}),
                "authentication.issuer applies only to type oauth",
            ),
        ] {
            let e = check(auth).unwrap_err();
            assert!(e.contains("listeners.additional[0].") && e.contains(expected), "{e}");
        }
    }

    #[test]
    fn ca_renewal_window_is_shorter_than_validity() {
        let mut spec = KafkaClusterSpec::default();
        assert_eq!(spec.certificate_authorities.validity_days, 365);
        assert_eq!(spec.certificate_authorities.renewal_days, 30);
        spec.certificate_authorities.renewal_days = 365;
        let e = spec.validate().unwrap_err();
        assert!(e.to_string().contains("renewalDays (365) must be at least 1 and less than validityDays (365)"), "{e}");
    }
    use serde_json::json;

    #[test]
    fn minimal_spec_takes_every_default() {
        let spec: KafkaClusterSpec = serde_json::from_value(json!({"replicas": 3})).unwrap();
        assert_eq!(spec, KafkaClusterSpec::default());
        assert_eq!(spec.image, DEFAULT_BROKER_IMAGE);
        assert_eq!(spec.storage.r#type, StorageType::Persistent);
        assert_eq!(spec.storage.size.as_deref(), Some(DEFAULT_STORAGE_SIZE));
        assert!(!spec.storage.delete_claim);
        assert!(spec.metrics.enabled);
        assert_eq!(spec.listeners.external, None);
        assert_eq!(spec.controller_voters, None);
        assert_eq!(spec.validate(), Ok(()));
        let empty: KafkaClusterSpec = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty, spec);
    }

    #[test]
    fn partial_nested_objects_take_their_field_defaults() {
        let spec: KafkaClusterSpec = serde_json::from_value(json!({
            "storage": {"type": "Ephemeral"},
            "rack": {},
            "metrics": {},
            "listeners": {"external": {"type": "NodePort"}},
        }))
        .unwrap();
        assert_eq!(spec.storage.size, None);
        assert_eq!(spec.rack, Some(Rack::default()));
        assert_eq!(spec.rack.unwrap().topology_key, DEFAULT_RACK_TOPOLOGY_KEY);
        assert!(spec.metrics.enabled);
        assert_eq!(spec.listeners.external.unwrap().node_port_base, None);
    }

    #[test]
    fn storage_type_serializes_as_type() {
        let value = serde_json::to_value(Storage::default()).unwrap();
        assert_eq!(value, json!({"type": "Persistent", "size": "10Gi", "deleteClaim": false}));
    }

    #[test]
    fn voters_default_to_the_largest_odd_count_up_to_three() {
        let voters = |replicas, controller_voters| {
            KafkaClusterSpec { replicas, controller_voters, ..KafkaClusterSpec::default() }.voters()
        };
        assert_eq!(voters(1, None), 1);
        assert_eq!(voters(2, None), 1);
        assert_eq!(voters(3, None), 3);
        assert_eq!(voters(4, None), 3);
        assert_eq!(voters(9, None), 3);
        assert_eq!(voters(9, Some(5)), 5);
        assert_eq!(voters(3, Some(1)), 1);
        assert_eq!(voters(0, None), 1);
    }

    #[test]
    fn validate_refuses_bad_quorums() {
        let spec =
            |replicas, voters| KafkaClusterSpec { replicas, controller_voters: voters, ..KafkaClusterSpec::default() };
        assert_eq!(spec(0, None).validate(), Err(SpecError::Replicas { replicas: 0 }));
        assert_eq!(spec(5, Some(2)).validate(), Err(SpecError::ControllerVoters { voters: 2 }));
        assert_eq!(spec(3, Some(5)).validate(), Err(SpecError::VotersExceedReplicas { voters: 5, replicas: 3 }));
        assert_eq!(spec(5, Some(5)).validate(), Ok(()));
    }

    #[test]
    fn persistent_storage_needs_a_size_and_any_size_needs_a_known_unit() {
        let persistent = Storage { size: None, ..Storage::default() };
        assert_eq!(persistent.validate(), Err(StorageError::MissingSize));
        assert!(persistent.validate().unwrap_err().to_string().contains("storage.size"));

        let ephemeral = Storage { r#type: StorageType::Ephemeral, size: None, ..Storage::default() };
        assert_eq!(ephemeral.size_bytes(), Ok(None));

        let mistyped = Storage { size: Some("10GB".into()), ..Storage::default() };
        let message = mistyped.validate().unwrap_err().to_string();
        assert!(message.starts_with("storage.size: "), "{message}");
        assert!(message.contains(crate::quantity::ALLOWED_UNITS), "{message}");

        assert_eq!(Storage::default().size_bytes(), Ok(Some(10 << 30)));
    }

    #[test]
    fn node_port_base_needs_node_port_type_and_range() {
        let listener = |r#type, base| ExternalListener { r#type, node_port_base: base, annotations: BTreeMap::new() };
        assert_eq!(listener(ExternalListenerType::NodePort, Some(31000)).validate(), Ok(()));
        assert_eq!(
            listener(ExternalListenerType::NodePort, Some(80)).validate(),
            Err(ListenerError::NodePortBaseOutOfRange { base: 80 })
        );
        assert_eq!(
            listener(ExternalListenerType::LoadBalancer, Some(31000)).validate(),
            Err(ListenerError::NodePortBaseWithoutNodePort)
        );
        assert_eq!(listener(ExternalListenerType::LoadBalancer, None).validate(), Ok(()));
    }

    #[test]
    fn partial_status_parses() {
        let status: KafkaClusterStatus = serde_json::from_value(json!({"readyBrokers": 2})).unwrap();
        assert_eq!(status.ready_brokers, 2);
        assert_eq!(status.brokers, 0);
        assert!(status.conditions.is_empty());
    }
}
