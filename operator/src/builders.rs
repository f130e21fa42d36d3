//! The Kubernetes objects of one `KafkaCluster`, built as plain values.
//!
//! Pure functions from the custom resource to the desired ConfigMap, headless
//! and bootstrap Services, StatefulSet, PodDisruptionBudget and
//! NetworkPolicy; the cluster
//! reconciler applies them with server-side apply. Every object carries an
//! owner reference to the cluster (so deleting it garbage-collects them) and
//! the cluster's labels.
//!
//! Brokers find their identity without the Kubernetes API: the node id is the
//! pod ordinal (the `apps.kubernetes.io/pod-index` label, through the
//! downward API) and the advertised addresses are the pod's stable DNS name
//! under the headless Service. The broker settings live in the ConfigMap; a
//! hash of its contents on the pod template makes a config change visible as
//! a template change, which the rolling restart acts on.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Service,
    ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use strom_crds::{KafkaCluster, KafkaClusterSpec, StorageType};

/// Port of the Kafka listener in the broker pods.
pub const KAFKA_PORT: i32 = 9092;
/// Port of the internal gRPC API (quorum, replication, admin).
pub const INTERNAL_PORT: i32 = 9093;
/// User and group the broker runs as: the image's non-root user (distroless `nonroot`).
pub const BROKER_UID: i64 = 65532;
/// Port of `/metrics`, `/healthz`, `/readyz`.
pub const HTTP_PORT: i32 = 9094;
/// Pod template annotation holding the hash of the broker configuration.
pub const CONFIG_HASH_ANNOTATION: &str = "strom.dev/config-hash";
/// Key of the broker config file in the ConfigMap.
pub const CONFIG_FILE: &str = "strom.yaml";
/// Where the ConfigMap is mounted in broker pods.
const CONFIG_DIR: &str = "/etc/strom";
/// Where the data volume is mounted in broker pods.
const DATA_DIR: &str = "/var/lib/strom";
/// Where the broker pods see `<cluster>-broker-certs` (see `internal_ca`).
pub const TLS_DIR: &str = "/etc/strom-tls";
/// The CA certificate's key in the internal plane's Secrets.
pub const CA_CERT: &str = "ca.crt";
/// The volume showing `<cluster>-broker-certs` (mounted at [`TLS_DIR`]).
const TLS_VOLUME: &str = "internal-tls";
/// Settings the operator fills in unless the cluster's config sets them.
const REPLICATION_DEFAULTS: [&str; 2] = ["default.replication.factor", "offsets.topic.replication.factor"];

/// Settings the operator derives from the cluster and the pod; not allowed in `spec.config`.
const OPERATOR_OWNED_SETTINGS: [(&str, &str); 10] = [
    ("node.id", "the pod ordinal"),
    ("broker.id", "the pod ordinal"),
    ("process.roles", "the controller quorum layout"),
    ("controller.quorum.voters", "spec.controllerVoters"),
    ("listeners", "spec.listeners"),
    ("advertised.listeners", "the pod's DNS name"),
    ("listener.security.protocol.map", "spec.listeners"),
    ("log.dirs", "spec.storage"),
    ("log.dir", "spec.storage"),
    ("broker.rack", "spec.rack"),
];

/// A `spec.config` entry the brokers would refuse at start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerConfigError {
    /// A setting the operator derives itself.
    #[error("spec.config.{key}: set by the operator from {source_field}; remove it from spec.config")]
    OperatorOwned { key: String, source_field: &'static str },
    /// An unknown setting or a bad value, in the brokers' own words.
    #[error("spec.config: {0}")]
    Setting(#[from] strom_settings::SettingError),
}

/// Checks `spec.config` as the brokers will at start (same table, same
/// messages), so a typo is reported in the cluster's status instead of
/// crash-looping every broker.
pub fn check_broker_config(config: &BTreeMap<String, String>) -> Result<(), BrokerConfigError> {
    let mut settings = strom_settings::Settings::broker_defaults();
    for (key, value) in config {
        if let Some((_, source_field)) = OPERATOR_OWNED_SETTINGS.iter().find(|(owned, _)| owned == key) {
            return Err(BrokerConfigError::OperatorOwned { key: key.clone(), source_field });
        }
        settings.set(key, value)?;
    }
    Ok(())
}

/// Object names and identity derived from a `KafkaCluster`.
#[derive(Debug, Clone)]
pub struct ClusterNames {
    /// The cluster's name (also the StatefulSet's and the PDB's).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

impl ClusterNames {
    /// Names for `cluster`; a cluster read from the API always has a namespace.
    pub fn of(cluster: &KafkaCluster) -> ClusterNames {
        ClusterNames { name: cluster.name_any(), namespace: cluster.namespace().unwrap_or_else(|| "default".into()) }
    }
    /// The ConfigMap with the broker config file.
    pub fn config_map(&self) -> String {
        format!("{}-config", self.name)
    }
    /// The headless Service giving each broker pod a stable DNS name.
    pub fn headless_service(&self) -> String {
        format!("{}-brokers", self.name)
    }
    /// The Secret holding the internal plane's CA (certificate and key).
    pub fn cluster_ca_secret(&self) -> String {
        format!("{}-cluster-ca", self.name)
    }
    /// The Secret holding the CA bundle and every broker's certificate and key.
    pub fn broker_certs_secret(&self) -> String {
        format!("{}-broker-certs", self.name)
    }
    /// The NetworkPolicy over the broker pods.
    pub fn network_policy(&self) -> String {
        format!("{}-network-policy", self.name)
    }
    /// The Service clients bootstrap from.
    pub fn bootstrap_service(&self) -> String {
        format!("{}-bootstrap", self.name)
    }
    /// Pod `ordinal`'s stable DNS name.
    pub fn pod_host(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}.{}.{}.svc", self.name, self.headless_service(), self.namespace)
    }
    /// `host:port` of the bootstrap Service.
    pub fn bootstrap_address(&self) -> String {
        format!("{}.{}.svc:{KAFKA_PORT}", self.bootstrap_service(), self.namespace)
    }
    /// Internal (gRPC) addresses of the brokers `0..replicas`.
    pub fn internal_addresses(&self, replicas: i32) -> Vec<String> {
        (0..replicas).map(|i| format!("{}:{INTERNAL_PORT}", self.pod_host(i))).collect()
    }
}

/// Labels every object of the cluster carries; the selector uses all of them.
pub fn selector_labels(names: &ClusterNames) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "strom".to_string()),
        ("app.kubernetes.io/instance".to_string(), names.name.clone()),
        ("app.kubernetes.io/component".to_string(), "broker".to_string()),
    ])
}

pub fn labels(names: &ClusterNames) -> BTreeMap<String, String> {
    let mut l = selector_labels(names);
    l.insert("app.kubernetes.io/managed-by".into(), "strom-operator".into());
    l
}

/// The owner reference that ties an object to `cluster` (controller, blocks owner deletion).
pub fn owner_reference(cluster: &KafkaCluster) -> Option<OwnerReference> {
    cluster.controller_owner_ref(&())
}

pub(crate) fn metadata(cluster: &KafkaCluster, names: &ClusterNames, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels(names)),
        owner_references: owner_reference(cluster).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The broker config file: listeners, the controller quorum and the settings.
pub fn broker_config_file(cluster: &KafkaCluster) -> String {
    let names = ClusterNames::of(cluster);
    let spec = &cluster.spec;
    let voters: Vec<String> =
        (0..spec.voters()).map(|i| format!("{i}@{}:{INTERNAL_PORT}", names.pod_host(i))).collect();
    // Dynamic settings reach running brokers through the Admin API, not this
    // file: changing one must not change the config hash and roll the pods.
    let mut settings: BTreeMap<String, String> = spec
        .config
        .iter()
        .filter(|(k, _)| !strom_settings::is_dynamic_broker_setting(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    settings.extend(crate::listeners::listener_settings(spec));
    if let Some(authorization) = &spec.authorization {
        settings.extend(authorization.broker_settings());
    }
    let default_rf = spec.replicas.clamp(1, 3).to_string();
    for key in REPLICATION_DEFAULTS {
        settings.entry(key.to_string()).or_insert_with(|| default_rf.clone());
    }
    let mut file =
        String::from("# Generated by strom-operator from the KafkaCluster; edit the KafkaCluster instead.\n");
    file.push_str(&format!("data-dir: {DATA_DIR}/data\n"));
    file.push_str(&format!("listen: 0.0.0.0:{KAFKA_PORT}\n"));
    file.push_str(&format!("internal-listen: 0.0.0.0:{INTERNAL_PORT}\n"));
    // Internal TLS: per-broker files, so given by the pod's environment
    // (STROM_INTERNAL_TLS_*, see broker_env), not by this shared file.
    file.push_str(&format!("http-listen: 0.0.0.0:{HTTP_PORT}\n"));
    file.push_str(&format!("voters: {}\n", voters.join(",")));
    file.push_str("settings:\n");
    for (k, v) in &settings {
        // JSON strings are valid YAML scalars, quoted and escaped.
        let key = serde_json::Value::String(k.clone());
        let value = serde_json::Value::String(v.clone());
        file.push_str(&format!("  {key}: {value}\n"));
    }
    file
}

/// The settings of `spec.config` that running brokers take without a
/// restart (applied through the Admin API; see
/// [`strom_settings::is_dynamic_broker_setting`]).
pub fn dynamic_broker_settings(cluster: &KafkaCluster) -> BTreeMap<String, String> {
    let dynamic = cluster.spec.config.iter().filter(|(k, _)| strom_settings::is_dynamic_broker_setting(k));
    dynamic.map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The ConfigMap holding [`broker_config_file`].
pub fn config_map(cluster: &KafkaCluster) -> ConfigMap {
    let names = ClusterNames::of(cluster);
    ConfigMap {
        metadata: metadata(cluster, &names, names.config_map()),
        data: Some(BTreeMap::from([(CONFIG_FILE.to_string(), broker_config_file(cluster))])),
        ..ConfigMap::default()
    }
}

/// A stable hash of a ConfigMap's data (sha256, hex), put on the pod template.
/// The `voters:` line is left out: it is only the bootstrap voter set and a
/// starting broker's contact points (the committed Raft membership says who
/// votes), so a `controllerVoters` change rolls no pod.
pub fn config_hash(config_map: &ConfigMap) -> String {
    let mut hasher = Sha256::new();
    for (k, v) in config_map.data.iter().flatten() {
        let kept: Vec<&str> = v.split('\n').filter(|line| !line.starts_with("voters: ")).collect();
        let v = kept.join("\n");
        hasher.update((k.len() as u64).to_be_bytes());
        hasher.update(k.as_bytes());
        hasher.update((v.len() as u64).to_be_bytes());
        hasher.update(v.as_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// The headless Service: stable pod DNS for the quorum and replication.
/// Not-ready pods are published so brokers can find each other while starting.
pub fn headless_service(cluster: &KafkaCluster) -> Service {
    let names = ClusterNames::of(cluster);
    Service {
        metadata: metadata(cluster, &names, names.headless_service()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&names)),
            ports: Some(
                [port("kafka", KAFKA_PORT), port("internal", INTERNAL_PORT), port("http", HTTP_PORT)]
                    .into_iter()
                    .chain(crate::listeners::additional_ports(&cluster.spec).iter().map(|(n, p)| port(n, *p)))
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The bootstrap Service for clients inside the cluster: always ClusterIP,
/// with every listener's port. Outside clients bootstrap through
/// `<cluster>-external` (see [`crate::external`]), which carries
/// only the external listener: a NodePort or LoadBalancer Service exposes
/// every port it has, and Kubernetes would give the in-cluster ports node
/// ports of its own choosing (exposed on every node, and able to take a
/// port `nodePortBase` reserves for a broker).
pub fn bootstrap_service(cluster: &KafkaCluster) -> Service {
    let names = ClusterNames::of(cluster);
    Service {
        metadata: metadata(cluster, &names, names.bootstrap_service()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(&names)),
            ports: Some(
                std::iter::once(port("kafka", KAFKA_PORT))
                    .chain(crate::listeners::additional_ports(&cluster.spec).iter().map(|(n, p)| port(n, *p)))
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The broker container's arguments: the config file, and with an
/// external listener the file of this broker's external address.
fn broker_args(spec: &KafkaClusterSpec) -> Vec<String> {
    let mut args = vec!["--config".to_string(), format!("{CONFIG_DIR}/{CONFIG_FILE}")];
    if spec.listeners.external.is_some() {
        args.extend(["--advertised-overrides".to_string(), crate::advertised::overrides_flag()]);
    }
    args
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value), ..EnvVar::default() }
}

fn env_from_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: field_path.into(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(HTTP_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// The broker container's environment. With rack awareness on, the rack is
/// the pod's own label under the topology key: the API server's
/// PodTopologyLabels admission (beta, on by default since Kubernetes 1.35)
/// copies the node's `topology.kubernetes.io/zone` and `region` labels onto
/// each pod as it is bound, and the downward API hands it to the broker.
fn broker_env(spec: &KafkaClusterSpec, host: &str) -> Vec<EnvVar> {
    let mut vars = vec![
        env_from_field("POD_NAME", "metadata.name"),
        env_from_field("STROM_NODE_ID", "metadata.labels['apps.kubernetes.io/pod-index']"),
        env("STROM_ADVERTISE", format!("{host}:{KAFKA_PORT}")),
        env("STROM_INTERNAL_ADVERTISE", format!("{host}:{INTERNAL_PORT}")),
        // The broker's own pair from the mounted `<cluster>-broker-certs`
        // (see internal_ca); `$(STROM_NODE_ID)` is expanded by the kubelet.
        env("STROM_INTERNAL_TLS_CA", format!("{TLS_DIR}/{CA_CERT}")),
        env("STROM_INTERNAL_TLS_CERT", format!("{TLS_DIR}/broker-$(STROM_NODE_ID).crt")),
        env("STROM_INTERNAL_TLS_KEY", format!("{TLS_DIR}/broker-$(STROM_NODE_ID).key")),
    ];
    if let Some(rack) = &spec.rack {
        vars.push(env_from_field("STROM_RACK", &format!("metadata.labels['{}']", rack.topology_key)));
    }
    vars
}

/// The brokers' StatefulSet: pod ordinal = node id, `OnDelete` updates (the
/// operator decides restart order), parallel pod management (the quorum
/// needs its voters up together), the config hash on the pod template.
pub fn stateful_set(cluster: &KafkaCluster, config_hash: &str) -> StatefulSet {
    let names = ClusterNames::of(cluster);
    let spec = &cluster.spec;
    let host = format!("$(POD_NAME).{}.{}.svc", names.headless_service(), names.namespace);
    let container = Container {
        name: "broker".into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.as_ref().map(|p| p.as_str().to_string()),
        args: Some(broker_args(spec)),
        env: Some(broker_env(spec, &host)),
        ports: Some(
            [
                container_port("kafka", KAFKA_PORT),
                container_port("internal", INTERNAL_PORT),
                container_port("http", HTTP_PORT),
            ]
            .into_iter()
            .chain(crate::listeners::additional_ports(spec).iter().map(|(n, p)| container_port(n, *p)))
            .collect(),
        ),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
            ..SecurityContext::default()
        }),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(Probe { initial_delay_seconds: Some(30), ..http_probe("/healthz", 10, 6) }),
        resources: spec.resources.clone(),
        volume_mounts: Some(
            [
                VolumeMount {
                    name: "config".into(),
                    mount_path: CONFIG_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: TLS_VOLUME.into(),
                    mount_path: TLS_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount { name: "data".into(), mount_path: DATA_DIR.into(), ..VolumeMount::default() },
            ]
            .into_iter()
            .chain(crate::listeners::oauth_ca_mounts(spec).into_iter().map(|(volume, _, path)| VolumeMount {
                name: volume,
                mount_path: path,
                read_only: Some(true),
                ..VolumeMount::default()
            }))
            .chain(spec.listeners.external.as_ref().map(|_| VolumeMount {
                name: crate::advertised::ADVERTISED_VOLUME.into(),
                mount_path: crate::advertised::ADVERTISED_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }))
            .collect(),
        ),
        ..Container::default()
    };

    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource { name: names.config_map(), ..ConfigMapVolumeSource::default() }),
            ..Volume::default()
        },
        Volume {
            name: TLS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.broker_certs_secret()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    // The CA certificates `oauth` listeners trust for their key set endpoint.
    volumes.extend(crate::listeners::oauth_ca_mounts(spec).into_iter().map(|(volume, secret, _)| Volume {
        name: volume,
        secret: Some(SecretVolumeSource { secret_name: Some(secret), ..SecretVolumeSource::default() }),
        ..Volume::default()
    }));
    // Each broker's external address (`crate::advertised`); optional, so a
    // pod starts (not advertised externally) before the operator wrote it.
    if spec.listeners.external.is_some() {
        volumes.push(Volume {
            name: crate::advertised::ADVERTISED_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: crate::advertised::config_map_name(&names),
                optional: Some(true),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let mut claims = None;
    match spec.storage.r#type {
        StorageType::Ephemeral => volumes.push(Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: spec.storage.size.clone().map(Quantity),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        }),
        StorageType::Persistent => {
            claims = Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(selector_labels(&names)),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: spec.storage.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: spec
                            .storage
                            .size
                            .clone()
                            .map(|size| BTreeMap::from([("storage".to_string(), Quantity(size))])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]);
        }
    }

    let overrides = spec.template.clone().unwrap_or_default();
    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(labels(&names));
    let mut annotations = overrides.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.to_string());
    // A new value of the cluster's restart annotation changes the template, so
    // every broker is rolled once (as `kubectl rollout restart` does).
    if let Some(value) = cluster.metadata.annotations.as_ref().and_then(|a| a.get(crate::rolling::RESTART_ANNOTATION)) {
        annotations.insert(crate::rolling::RESTART_ANNOTATION.into(), value.clone());
    }
    if spec.metrics.enabled {
        annotations.insert("prometheus.io/scrape".into(), "true".into());
        annotations.insert("prometheus.io/port".into(), HTTP_PORT.to_string());
        annotations.insert("prometheus.io/path".into(), "/metrics".into());
    }
    let spread = spec.rack.as_ref().map(|rack| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: rack.topology_key.clone(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&names)),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        }]
    });

    StatefulSet {
        metadata: metadata(cluster, &names, names.name.clone()),
        spec: StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names.headless_service()),
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy { type_: Some("OnDelete".into()), rolling_update: None }),
            selector: LabelSelector { match_labels: Some(selector_labels(&names)), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    // Pod Security "restricted": the image's non-root user owns the data volume.
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(BROKER_UID),
                        run_as_group: Some(BROKER_UID),
                        fs_group: Some(BROKER_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    // Long enough for a controlled shutdown to move leadership away.
                    termination_grace_period_seconds: Some(120),
                    node_selector: (!overrides.node_selector.is_empty()).then(|| overrides.node_selector.clone()),
                    tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
                    affinity: overrides.affinity.clone(),
                    topology_spread_constraints: spread,
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: claims,
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some(if spec.storage.delete_claim { "Delete" } else { "Retain" }.into()),
                when_scaled: Some("Retain".into()),
            }),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

/// The PodDisruptionBudget: at most one broker down at a time by voluntary disruption.
pub fn pod_disruption_budget(cluster: &KafkaCluster) -> PodDisruptionBudget {
    let names = ClusterNames::of(cluster);
    PodDisruptionBudget {
        metadata: metadata(cluster, &names, names.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(selector_labels(&names)), ..LabelSelector::default() }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// Labels of the operator's pods when `--operator-pod-labels` is not given
/// (the chart's, without the release name).
pub const DEFAULT_OPERATOR_POD_LABELS: &str =
    "app.kubernetes.io/name=strom-operator,app.kubernetes.io/component=operator";

/// The namespace label the API server sets on every namespace (its name).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where the operator's own pods run: the NetworkPolicy lets them reach the
/// brokers' internal port (the Admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorPods {
    /// The operator's namespace; `None` (outside a cluster, no
    /// `$POD_NAMESPACE`): pods with [`OperatorPods::labels`] in any namespace.
    pub namespace: Option<String>,
    /// Labels every operator pod carries (not empty).
    pub labels: BTreeMap<String, String>,
}

/// A malformed `--operator-pod-labels` value.
#[derive(Debug, thiserror::Error)]
#[error("invalid --operator-pod-labels `{value}`: {reason}; expected KEY=VALUE[,KEY=VALUE...]")]
pub struct PodLabelsError {
    value: String,
    reason: &'static str,
}

/// Parses `KEY=VALUE[,KEY=VALUE...]` (at least one label: an empty selector
/// would let every pod of the namespace reach the internal port).
pub fn parse_pod_labels(value: &str) -> Result<BTreeMap<String, String>, PodLabelsError> {
    let error = |reason| PodLabelsError { value: value.to_string(), reason };
    let mut labels = BTreeMap::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, label) = pair.split_once('=').ok_or_else(|| error("a label without `=`"))?;
        let (key, label) = (key.trim(), label.trim());
        if key.is_empty() {
            return Err(error("a label with an empty key"));
        }
        if labels.insert(key.to_string(), label.to_string()).is_some() {
            return Err(error("a label key given twice"));
        }
    }
    if labels.is_empty() {
        return Err(error("no label"));
    }
    Ok(labels)
}

impl Default for OperatorPods {
    fn default() -> Self {
        let labels = DEFAULT_OPERATOR_POD_LABELS.split(',').filter_map(|p| p.split_once('='));
        OperatorPods { namespace: None, labels: labels.map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort { port: Some(IntOrString::Int(port)), protocol: Some("TCP".into()), end_port: None }
}

fn match_labels(labels: Option<BTreeMap<String, String>>) -> Option<LabelSelector> {
    Some(LabelSelector { match_labels: labels, ..LabelSelector::default() })
}

/// The NetworkPolicy over the broker pods (ingress only): the Kafka
/// listeners (9092 and `spec.listeners.additional`) and the HTTP port
/// (metrics, probes) from anywhere; the internal port (Raft, replication,
/// Admin) only from this cluster's brokers and the operator's pods. Every
/// other port is closed. Egress is not restricted.
pub fn network_policy(cluster: &KafkaCluster, operator: &OperatorPods) -> NetworkPolicy {
    let names = ClusterNames::of(cluster);
    let open = [KAFKA_PORT, HTTP_PORT]
        .into_iter()
        .chain(crate::listeners::additional_ports(&cluster.spec).into_iter().map(|(_, p)| p))
        .map(tcp)
        .collect();
    let brokers = NetworkPolicyPeer { pod_selector: match_labels(Some(selector_labels(&names))), ..Default::default() };
    let namespace =
        operator.namespace.as_ref().map(|ns| BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), ns.clone())]));
    let operator = NetworkPolicyPeer {
        // An empty namespace selector is every namespace.
        namespace_selector: match_labels(namespace),
        pod_selector: match_labels(Some(operator.labels.clone())),
        ip_block: None,
    };
    NetworkPolicy {
        metadata: metadata(cluster, &names, names.network_policy()),
        spec: Some(NetworkPolicySpec {
            pod_selector: match_labels(Some(selector_labels(&names))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule { from: None, ports: Some(open) },
                NetworkPolicyIngressRule { from: Some(vec![brokers, operator]), ports: Some(vec![tcp(INTERNAL_PORT)]) },
            ]),
            egress: None,
        }),
    }
}

/// The object's reference for events and logs: `namespace/name`.
pub fn object_key<K: Resource>(object: &K) -> String {
    format!("{}/{}", object.meta().namespace.as_deref().unwrap_or(""), object.meta().name.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests;
