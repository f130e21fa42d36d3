//! What it takes to run one broker pod as a process, worked out from the Pod.
//!
//! [`PodPlan::of`] reads the pod spec the operator builds (container
//! `broker`, its `--config` argument, the ConfigMap volume mounted above that
//! file, the `data` volume: a claim or an emptyDir, Secret volumes, the
//! internal TLS variables and the ConfigMap volume of
//! `--advertised-overrides`) into plain data, and
//! [`broker_args`] turns a plan plus the config file's text into the
//! `strom-broker` command line: flags override the file, so the listeners,
//! advertised addresses, node id, data directory and voters all point at the
//! pod's loopback address instead of names that do not resolve here.
//!
//! Pure functions over plain data; nothing here touches the API or the disk.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::address::{Subnet, ordinal_of, rewrite_voters};

/// The StatefulSet label holding the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Name of the broker container (the first container is used otherwise).
const BROKER_CONTAINER: &str = "broker";
/// Name of the broker's data volume.
const DATA_VOLUME: &str = "data";
/// Ports the brokers listen on, as in the operator's pod template.
pub const KAFKA_PORT: u16 = 9092;
/// Internal (gRPC) port.
pub const INTERNAL_PORT: u16 = 9093;
/// `/metrics`, `/healthz`, `/readyz` port.
pub const HTTP_PORT: u16 = 9094;
/// The kubelet's default when a pod sets no grace period.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// A pod this runner cannot run, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Neither the pod-index label nor the name gives an ordinal.
    #[error("pod {0}: no ordinal (neither an '{POD_INDEX_LABEL}' label nor a '<set>-<n>' name)")]
    NoOrdinal(String),
    /// The ordinal is past the subnet's addresses.
    #[error("pod {pod}: ordinal {ordinal} is past the highest one with an address ({})", Subnet::MAX_ORDINAL)]
    NoAddress { pod: String, ordinal: u32 },
    /// The pod has no containers.
    #[error("pod {0}: no containers")]
    NoContainer(String),
    /// No `--config FILE` argument, or no ConfigMap volume mounted above FILE.
    #[error("pod {pod}: {what}; expected '--config FILE' with FILE in a mounted ConfigMap volume")]
    NoConfig { pod: String, what: String },
}

/// Where the broker's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataVolume {
    /// A PersistentVolumeClaim of this name: kept across pod recreations.
    Claim(String),
    /// An emptyDir (or no data volume at all): removed with the pod.
    Ephemeral,
}

/// The facts about a pod that running it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod uid.
    pub uid: String,
    /// The StatefulSet ordinal, also the broker's node id.
    pub ordinal: u32,
    /// The pod's loopback address.
    pub ip: Ipv4Addr,
    /// The subnet of its StatefulSet (the voters' pod names resolve into it).
    pub subnet: Subnet,
    /// The broker container's name.
    pub container: String,
    /// The broker container's image (reported back in the status only).
    pub image: String,
    /// ConfigMap holding the config file.
    pub config_map: String,
    /// Key of the config file in that ConfigMap.
    pub config_key: String,
    /// Where the data volume is mounted in the container, if it is.
    pub data_mount: Option<String>,
    /// The data volume.
    pub data: DataVolume,
    /// The node the pod is bound to (`spec.nodeName`).
    pub node: String,
    /// The broker's rack: the container's `STROM_RACK`, resolved as the
    /// kubelet does (a literal value, or the downward API's
    /// `metadata.labels['KEY']` of the pod as bound to its node).
    pub rack: Option<String>,
    /// Seconds between SIGTERM and SIGKILL.
    pub grace_seconds: i64,
    /// Secret volumes mounted into the broker container.
    pub secrets: Vec<SecretMount>,
    /// The container's `STROM_INTERNAL_TLS_{CA,CERT,KEY}` (container paths,
    /// `$(VAR)` references expanded), when all three are set.
    pub internal_tls: Option<[String; 3]>,
    /// `--advertised-overrides NAMES=FILE` with FILE in a ConfigMap volume.
    pub advertised: Option<AdvertisedMount>,
}

/// The broker's `--advertised-overrides NAMES=FILE` (`$(VAR)` references
/// expanded) with FILE in a mounted ConfigMap volume: the runner writes the
/// ConfigMap's keys under `DIR/pods/<uid>/volumes/<volume>/` and keeps them
/// in step while the broker runs, as the kubelet does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedMount {
    /// The listener names before `=`.
    pub listeners: String,
    /// The file's path under the volume.
    pub file: String,
    /// The volume's name.
    pub volume: String,
    /// The ConfigMap it shows.
    pub config_map: String,
}

/// A Secret volume mounted into the broker container: the runner writes the
/// Secret's keys as files under `DIR/pods/<uid>/volumes/<volume>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    /// The volume's name.
    pub volume: String,
    /// The Secret it shows.
    pub secret: String,
    /// Where the container sees it.
    pub mount_path: String,
}

/// The container variables that carry the internal plane's TLS files, in
/// the order of the broker's flags.
const INTERNAL_TLS_ENV: [(&str, &str); 3] = [
    ("STROM_INTERNAL_TLS_CA", "--internal-tls-ca"),
    ("STROM_INTERNAL_TLS_CERT", "--internal-tls-cert"),
    ("STROM_INTERNAL_TLS_KEY", "--internal-tls-key"),
];

/// A StatefulSet pod's ordinal: its `apps.kubernetes.io/pod-index` label,
/// else the `<set>-<n>` suffix of its name.
pub fn pod_ordinal(pod: &Pod) -> Option<u32> {
    let labels = pod.metadata.labels.as_ref();
    labels
        .and_then(|l| l.get(POD_INDEX_LABEL))
        .and_then(|v| v.parse::<u32>().ok())
        .or_else(|| ordinal_of(pod.metadata.name.as_deref()?))
}

impl PodPlan {
    /// Works out the plan for `pod` in `subnet`.
    pub fn of(pod: &Pod, subnet: Subnet) -> Result<PodPlan, PlanError> {
        let meta = &pod.metadata;
        let name = meta.name.clone().unwrap_or_default();
        let ordinal = pod_ordinal(pod).ok_or_else(|| PlanError::NoOrdinal(name.clone()))?;
        let ip = subnet.pod_ip(ordinal).ok_or_else(|| PlanError::NoAddress { pod: name.clone(), ordinal })?;
        let spec = pod.spec.clone().unwrap_or_default();
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == BROKER_CONTAINER)
            .or_else(|| spec.containers.first())
            .ok_or_else(|| PlanError::NoContainer(name.clone()))?;
        let no_config = |what: &str| PlanError::NoConfig { pod: name.clone(), what: what.to_string() };

        let config_path = arg_value(container.args.as_deref().unwrap_or_default(), "--config")
            .ok_or_else(|| no_config("no --config argument"))?;
        let mounts = container.volume_mounts.clone().unwrap_or_default();
        let volumes = spec.volumes.clone().unwrap_or_default();
        let (config_map, config_key) = mounts
            .iter()
            .filter_map(|m| {
                let key = Path::new(&config_path).strip_prefix(&m.mount_path).ok()?.to_str()?.to_string();
                let volume = volumes.iter().find(|v| v.name == m.name)?;
                let source = volume.config_map.as_ref()?;
                Some((source.name.clone(), key))
            })
            .next()
            .ok_or_else(|| no_config(&format!("no ConfigMap volume mounted above {config_path}")))?;

        let data_mount = mounts.iter().find(|m| m.name == DATA_VOLUME).map(|m| m.mount_path.clone());
        let data = match volumes.iter().find(|v| v.name == DATA_VOLUME) {
            Some(v) if v.persistent_volume_claim.is_some() => {
                DataVolume::Claim(v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()).unwrap_or_default())
            }
            _ => DataVolume::Ephemeral,
        };
        let rack = container_env(container, pod, RACK_ENV).filter(|r| !r.is_empty());
        let secrets = mounts
            .iter()
            .filter_map(|m| {
                let source = volumes.iter().find(|v| v.name == m.name)?.secret.as_ref()?;
                Some(SecretMount {
                    volume: m.name.clone(),
                    secret: source.secret_name.clone()?,
                    mount_path: m.mount_path.clone(),
                })
            })
            .collect();
        let tls: Vec<String> =
            INTERNAL_TLS_ENV.iter().filter_map(|(name, _)| container_env(container, pod, name)).collect();
        let internal_tls = <[String; 3]>::try_from(tls).ok();
        let advertised = arg_value(container.args.as_deref().unwrap_or_default(), "--advertised-overrides")
            .map(|v| expand(&v, |n| container_env(container, pod, n)))
            .and_then(|v| {
                let (listeners, path) = v.split_once('=')?;
                mounts.iter().find_map(|m| {
                    let file = Path::new(path).strip_prefix(&m.mount_path).ok()?.to_str()?.to_string();
                    let source = volumes.iter().find(|v| v.name == m.name)?.config_map.as_ref()?;
                    Some(AdvertisedMount {
                        listeners: listeners.to_string(),
                        file,
                        volume: m.name.clone(),
                        config_map: source.name.clone(),
                    })
                })
            });
        let grace_seconds = spec.termination_grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECONDS).max(0);
        Ok(PodPlan {
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            uid: meta.uid.clone().unwrap_or_default(),
            ordinal,
            ip,
            subnet,
            container: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            config_map,
            config_key,
            data_mount,
            data,
            rack,
            node: spec.node_name.clone().unwrap_or_default(),
            grace_seconds,
            secrets,
            internal_tls,
            advertised,
            name,
        })
    }
}

/// The container variable that carries the broker's rack.
const RACK_ENV: &str = "STROM_RACK";

/// The value of the container's environment variable `name`: a literal
/// (with `$(VAR)` references to variables defined before it expanded, as
/// the kubelet does), or a downward-API label of the pod
/// (`metadata.labels['KEY']`, empty when the pod has no such label, as on a
/// kubelet). Other sources give `None`.
fn container_env(container: &Container, pod: &Pod, name: &str) -> Option<String> {
    let vars = container.env.as_ref()?;
    let index = vars.iter().position(|e| e.name == name)?;
    let var = &vars[index];
    if let Some(value) = &var.value {
        // Only variables defined before this one (the kubelet's rule; no cycles).
        let earlier = &vars[..index];
        return Some(expand(value, |other| {
            earlier.iter().any(|e| e.name == other).then(|| container_env(container, pod, other)).flatten()
        }));
    }
    let path = &var.value_from.as_ref()?.field_ref.as_ref()?.field_path;
    let key = path.strip_prefix("metadata.labels['")?.strip_suffix("']")?;
    Some(pod.metadata.labels.as_ref().and_then(|l| l.get(key)).cloned().unwrap_or_default())
}

/// `value` with each `$(NAME)` replaced by `lookup(NAME)`; a reference
/// `lookup` does not know stays as written (the kubelet's rule).
fn expand(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value after `flag` in `args` (`--flag VALUE` or `--flag=VALUE`).
fn arg_value(args: &[String], flag: &str) -> Option<String> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == flag {
            return it.next().cloned();
        }
        if let Some(v) = arg.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

/// The value of a top-level `key: value` line of a YAML config file, without
/// quotes. The broker's file is flat apart from `settings:`, so a line scan is
/// enough for the two keys the runner needs (`data-dir`, `voters`).
pub fn top_level_value(config: &str, key: &str) -> Option<String> {
    config.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let value = rest.split(" #").next().unwrap_or_default().trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// `config` with every Kafka listener bound to all addresses (`NAME://0.0.0.0:PORT`
/// in `listeners`, as the operator renders `spec.listeners.authentication`)
/// bound to the pod's address instead: pods share this machine, so each
/// binds its own loopback address, as `--listen` does for the plain listener.
pub fn bind_listeners_to(config: &str, ip: Ipv4Addr) -> String {
    config.replace("://0.0.0.0:", &format!("://{ip}:"))
}

/// `config` with every file path under one of the pod's Secret volumes
/// (a listener's `ssl.keystore.location`, `ssl.truststore.location`, as
/// JSON-quoted values) moved to where that volume is on this machine.
pub fn secret_paths_to_host(config: &str, plan: &PodPlan, volumes_dir: &Path) -> String {
    plan.secrets.iter().fold(config.to_string(), |text, m| {
        let host = volumes_dir.join(&m.volume);
        text.replace(&format!("\"{}/", m.mount_path.trim_end_matches('/')), &format!("\"{}/", host.display()))
    })
}

/// The broker's data directory on this machine: the config's `data-dir`
/// moved from under the container mount point to under `volume_dir`.
pub fn host_data_dir(config: &str, data_mount: Option<&str>, volume_dir: &Path) -> PathBuf {
    let in_container = top_level_value(config, "data-dir");
    match (in_container, data_mount) {
        (Some(dir), Some(mount)) => match Path::new(&dir).strip_prefix(mount) {
            Ok(rest) if !rest.as_os_str().is_empty() => volume_dir.join(rest),
            _ => volume_dir.to_path_buf(),
        },
        _ => volume_dir.to_path_buf(),
    }
}

/// What [`broker_args`] needs besides the plan.
#[derive(Debug, Clone)]
pub struct LaunchInput<'a> {
    /// The config file's text (as in the ConfigMap).
    pub config: &'a str,
    /// Where the config file was written.
    pub config_file: &'a Path,
    /// The data directory on this machine.
    pub data_dir: &'a Path,
    /// The subnet the voters' pod names resolve into.
    pub subnet: Subnet,
    /// Where the pod's volumes live on this machine (`DIR/pods/<uid>/volumes`).
    pub volumes_dir: &'a Path,
}

/// Where the container path `path` is on this machine, when it lies in one
/// of the pod's Secret volumes.
pub fn host_secret_path(plan: &PodPlan, volumes_dir: &Path, path: &str) -> Option<PathBuf> {
    plan.secrets.iter().find_map(|m| {
        let rest = Path::new(path).strip_prefix(&m.mount_path).ok()?;
        Some(volumes_dir.join(&m.volume).join(rest))
    })
}

/// The `strom-broker` arguments for `plan`.
pub fn broker_args(plan: &PodPlan, input: &LaunchInput<'_>) -> Vec<String> {
    let ip = plan.ip;
    let mut args = vec![
        "--config".to_string(),
        input.config_file.display().to_string(),
        "--node-id".into(),
        plan.ordinal.to_string(),
        "--data-dir".into(),
        input.data_dir.display().to_string(),
        "--listen".into(),
        format!("{ip}:{KAFKA_PORT}"),
        "--advertise".into(),
        format!("{ip}:{KAFKA_PORT}"),
        "--internal-listen".into(),
        format!("{ip}:{INTERNAL_PORT}"),
        "--internal-advertise".into(),
        format!("{ip}:{INTERNAL_PORT}"),
        "--http-listen".into(),
        format!("{ip}:{HTTP_PORT}"),
    ];
    if let Some(voters) = top_level_value(input.config, "voters") {
        args.push("--voters".into());
        args.push(rewrite_voters(input.subnet, &voters));
    }
    if let Some(rack) = &plan.rack {
        args.push("--rack".into());
        args.push(rack.clone());
    }
    if let Some(a) = &plan.advertised {
        let host = input.volumes_dir.join(&a.volume).join(&a.file);
        args.push("--advertised-overrides".into());
        args.push(format!("{}={}", a.listeners, host.display()));
    }
    if let Some(paths) = &plan.internal_tls {
        for ((_, flag), path) in INTERNAL_TLS_ENV.iter().zip(paths) {
            let host = host_secret_path(plan, input.volumes_dir, path).unwrap_or_else(|| PathBuf::from(path));
            args.push((*flag).into());
            args.push(host.display().to_string());
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "# Generated by strom-operator\n\
        data-dir: /var/lib/strom/data\n\
        listen: 0.0.0.0:9092\n\
        internal-listen: 0.0.0.0:9093\n\
        http-listen: 0.0.0.0:9094\n\
        voters: 0@demo-0.demo-brokers.ns.svc:9093,1@demo-1.demo-brokers.ns.svc:9093\n\
        settings:\n  \"num.partitions\": \"3\"\n";

    fn pod(storage: &str) -> Pod {
        let data_volume = if storage == "claim" {
            serde_json::json!({"name": "data", "persistentVolumeClaim": {"claimName": "data-demo-1"}})
        } else {
            serde_json::json!({"name": "data", "emptyDir": {}})
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "demo-1", "namespace": "ns", "uid": "u-1",
                "labels": {"apps.kubernetes.io/pod-index": "1", "topology.kubernetes.io/zone": "a"}
            },
            "spec": {
                "containers": [{
                    "name": "broker", "image": "strom:dev",
                    "args": ["--config", "/etc/strom/strom.yaml"],
                    "env": [{
                        "name": "STROM_RACK",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['topology.kubernetes.io/zone']"}}
                    }, {
                        "name": "STROM_NODE_ID",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
                    },
                    {"name": "STROM_INTERNAL_TLS_CA", "value": "/etc/strom-tls/ca.crt"},
                    {"name": "STROM_INTERNAL_TLS_CERT", "value": "/etc/strom-tls/broker-$(STROM_NODE_ID).crt"},
                    {"name": "STROM_INTERNAL_TLS_KEY", "value": "/etc/strom-tls/broker-$(STROM_NODE_ID).key"}],
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/strom", "readOnly": true},
                        {"name": "internal-tls", "mountPath": "/etc/strom-tls", "readOnly": true},
                        {"name": "data", "mountPath": "/var/lib/strom"}
                    ]
                }],
                "volumes": [
                    {"name": "config", "configMap": {"name": "demo-config"}},
                    {"name": "internal-tls", "secret": {"secretName": "demo-broker-certs"}},
                    data_volume
                ],
                "terminationGracePeriodSeconds": 120,
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway"
                }]
            }
        }))
        .unwrap()
    }

    fn subnet() -> Subnet {
        "127.7".parse().unwrap()
    }

    #[test]
    fn plan_reads_ordinal_config_map_and_claim_from_the_operator_pod() {
        let plan = PodPlan::of(&pod("claim"), subnet()).unwrap();
        assert_eq!(plan.ordinal, 1);
        assert_eq!(plan.ip, Ipv4Addr::new(127, 7, 0, 11));
        assert_eq!((plan.config_map.as_str(), plan.config_key.as_str()), ("demo-config", "strom.yaml"));
        assert_eq!(plan.data, DataVolume::Claim("data-demo-1".into()));
        assert_eq!(plan.data_mount.as_deref(), Some("/var/lib/strom"));
        assert_eq!(plan.grace_seconds, 120);
        assert_eq!(plan.image, "strom:dev");
        assert_eq!(plan.rack.as_deref(), Some("a"), "STROM_RACK from the label the binding copied from the node");
    }

    #[test]
    fn the_rack_is_the_pods_own_label_or_a_literal_and_none_without_either() {
        let mut p = pod("claim");
        p.metadata.labels.as_mut().unwrap().remove("topology.kubernetes.io/zone");
        assert_eq!(PodPlan::of(&p, subnet()).unwrap().rack, None, "an unlabelled pod has an empty STROM_RACK");
        let container = &mut p.spec.as_mut().unwrap().containers[0];
        container.env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "STROM_RACK".into(),
            value: Some("rack-7".into()),
            ..Default::default()
        }]);
        assert_eq!(PodPlan::of(&p, subnet()).unwrap().rack.as_deref(), Some("rack-7"));
        p.spec.as_mut().unwrap().containers[0].env = None;
        assert_eq!(PodPlan::of(&p, subnet()).unwrap().rack, None);
    }

    #[test]
    fn plan_treats_empty_dir_as_ephemeral_and_falls_back_to_the_name_ordinal() {
        let mut p = pod("emptyDir");
        p.metadata.labels = None;
        let plan = PodPlan::of(&p, subnet()).unwrap();
        assert_eq!(plan.data, DataVolume::Ephemeral);
        assert_eq!(plan.ordinal, 1);
    }

    #[test]
    fn plan_rejects_pods_without_ordinal_or_config() {
        let mut p = pod("claim");
        p.metadata.labels = None;
        p.metadata.name = Some("loner".into());
        assert_eq!(PodPlan::of(&p, subnet()), Err(PlanError::NoOrdinal("loner".into())));

        let mut p = pod("claim");
        if let Some(spec) = p.spec.as_mut() {
            spec.containers[0].args = Some(vec!["--config=/elsewhere/strom.yaml".into()]);
        }
        assert!(matches!(PodPlan::of(&p, subnet()), Err(PlanError::NoConfig { .. })));
    }

    #[test]
    fn listener_files_in_secret_volumes_move_to_the_host() {
        let plan = PodPlan::of(&pod("ephemeral"), subnet()).unwrap();
        let config =
            "settings:\n  \"listener.name.tls.ssl.keystore.location\": \"/etc/strom-tls/listener.keystore.pem\"\n";
        let moved = secret_paths_to_host(config, &plan, Path::new("/runner/pods/u-1/volumes"));
        assert!(moved.contains("\"/runner/pods/u-1/volumes/internal-tls/listener.keystore.pem\""), "{moved}");
    }

    #[test]
    fn the_advertised_overrides_file_moves_to_its_config_map_volume_on_the_host() {
        let mut p = pod("ephemeral");
        let spec = p.spec.as_mut().unwrap();
        let c = &mut spec.containers[0];
        c.args.as_mut().unwrap().extend([
            "--advertised-overrides".to_string(),
            "K8S_EXTERNAL=/etc/strom-advertised/broker-$(STROM_NODE_ID).properties".to_string(),
        ]);
        c.volume_mounts.as_mut().unwrap().push(
            serde_json::from_value(serde_json::json!({"name": "advertised", "mountPath": "/etc/strom-advertised"}))
                .unwrap(),
        );
        spec.volumes.as_mut().unwrap().push(
            serde_json::from_value(serde_json::json!({"name": "advertised",
                "configMap": {"name": "demo-advertised", "optional": true}}))
            .unwrap(),
        );
        let plan = PodPlan::of(&p, subnet()).unwrap();
        let a = plan.advertised.clone().expect("the overrides mount");
        assert_eq!((a.listeners.as_str(), a.file.as_str()), ("K8S_EXTERNAL", "broker-1.properties"));
        assert_eq!((a.volume.as_str(), a.config_map.as_str()), ("advertised", "demo-advertised"));
        let input = LaunchInput {
            config: CONFIG,
            config_file: Path::new("/x/strom.yaml"),
            data_dir: Path::new("/x/data"),
            subnet: subnet(),
            volumes_dir: Path::new("/x/volumes"),
        };
        let args = broker_args(&plan, &input);
        let at = args.iter().position(|a| a == "--advertised-overrides").expect("the flag");
        assert_eq!(args[at + 1], "K8S_EXTERNAL=/x/volumes/advertised/broker-1.properties");
        assert_eq!(PodPlan::of(&pod("ephemeral"), subnet()).unwrap().advertised, None);
    }

    #[test]
    fn named_listeners_bind_the_pods_address() {
        let config = "listen: 0.0.0.0:9092\nsettings:\n  \"listeners\": \"SASL_PLAINTEXT://0.0.0.0:9092\"\n";
        let bound = bind_listeners_to(config, Ipv4Addr::new(127, 20, 0, 11));
        assert!(bound.contains("\"SASL_PLAINTEXT://127.20.0.11:9092\""), "{bound}");
        assert!(bound.starts_with("listen: 0.0.0.0:9092"), "the --listen flag overrides that one: {bound}");
    }

    #[test]
    fn top_level_values_are_read_without_quotes_or_comments() {
        assert_eq!(top_level_value(CONFIG, "data-dir").as_deref(), Some("/var/lib/strom/data"));
        assert_eq!(top_level_value("voters: \"0@a:1\" # x\n", "voters").as_deref(), Some("0@a:1"));
        assert_eq!(top_level_value("settings:\n  voters: x\n", "voters"), None);
        assert_eq!(top_level_value("voters-extra: x\n", "voters"), None);
    }

    #[test]
    fn data_dir_moves_from_the_container_mount_to_the_volume_dir() {
        let vol = Path::new("/runner/pvc/ns/data-demo-1");
        assert_eq!(host_data_dir(CONFIG, Some("/var/lib/strom"), vol), vol.join("data"));
        assert_eq!(host_data_dir(CONFIG, None, vol), vol);
        assert_eq!(host_data_dir("data-dir: /elsewhere\n", Some("/var/lib/strom"), vol), vol);
    }

    #[test]
    fn broker_args_bind_the_pod_ip_and_rewrite_voters() {
        let plan = PodPlan::of(&pod("claim"), subnet()).unwrap();
        let input = LaunchInput {
            config: CONFIG,
            config_file: Path::new("/runner/pods/u-1/strom.yaml"),
            data_dir: Path::new("/runner/pvc/ns/data-demo-1/data"),
            subnet: subnet(),
            volumes_dir: Path::new("/runner/pods/u-1/volumes"),
        };
        let args = broker_args(&plan, &input);
        let expected = [
            "--config",
            "/runner/pods/u-1/strom.yaml",
            "--node-id",
            "1",
            "--data-dir",
            "/runner/pvc/ns/data-demo-1/data",
            "--listen",
            "127.7.0.11:9092",
            "--advertise",
            "127.7.0.11:9092",
            "--internal-listen",
            "127.7.0.11:9093",
            "--internal-advertise",
            "127.7.0.11:9093",
            "--http-listen",
            "127.7.0.11:9094",
            "--voters",
            "0@127.7.0.10:9093,1@127.7.0.11:9093",
            "--rack",
            "a",
            "--internal-tls-ca",
            "/runner/pods/u-1/volumes/internal-tls/ca.crt",
            "--internal-tls-cert",
            "/runner/pods/u-1/volumes/internal-tls/broker-1.crt",
            "--internal-tls-key",
            "/runner/pods/u-1/volumes/internal-tls/broker-1.key",
        ];
        assert_eq!(args, expected);
    }

    #[test]
    fn secret_volumes_and_variable_references_are_read_from_the_pod() {
        let plan = PodPlan::of(&pod("claim"), subnet()).unwrap();
        assert_eq!(
            plan.secrets,
            vec![SecretMount {
                volume: "internal-tls".into(),
                secret: "demo-broker-certs".into(),
                mount_path: "/etc/strom-tls".into()
            }]
        );
        let lookup = |name: &str| (name == "A").then(|| "1".to_string());
        assert_eq!(expand("x-$(A)-$(B)-$(A", lookup), "x-1-$(B)-$(A");
        assert_eq!(expand("plain", lookup), "plain");
        let mut p = pod("claim");
        p.spec.as_mut().unwrap().containers[0].env.as_mut().unwrap().retain(|e| e.name != "STROM_INTERNAL_TLS_KEY");
        assert_eq!(PodPlan::of(&p, subnet()).unwrap().internal_tls, None, "all three or none");
    }
}
