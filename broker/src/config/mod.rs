//! Broker configuration: where each setting comes from and what it resolves to.
//!
//! Three sources, highest precedence first: command-line flags, `STROM_*`
//! environment variables, a YAML file given by `--config`; then the built-in
//! defaults (a complete single-node broker). Kafka-named settings
//! (`log.segment.bytes`, ...) live in [`settings`]; this module resolves the
//! process-level ones (node id, addresses, data dir) and hands out the
//! effective log configuration of a topic.
//!
//! Invariant: a [`BrokerConfig`] is fully validated; every error names the
//! field or setting, the value given and what is allowed.

/// The Kafka-named settings table (crate `strom-settings`, shared with the operator).
pub use strom_settings as settings;

pub mod advertised;
pub mod listeners;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use serde::Deserialize;

use crate::log::{CleanupPolicy, LogConfig};
pub use settings::{SettingError, Settings};

/// A configuration value that was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A Kafka-named setting was unknown or invalid.
    #[error("{source} (from {origin})")]
    Setting { origin: String, source: SettingError },
    /// A process-level field had a bad value.
    #[error("invalid {field} `{value}` (from {origin}): {expected}")]
    Field { field: &'static str, value: String, origin: String, expected: String },
    /// A listener or client-security setting was invalid.
    #[error("{source} (from {origin})")]
    Listener { origin: String, source: listeners::ListenerError },
    /// The YAML config file could not be read or parsed.
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// A host name or address with a port, as given to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A controller quorum voter: its node id and internal address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// Node id of the voter.
    pub node_id: i32,
    /// Its internal (gRPC) address.
    pub address: HostPort,
}

/// Every process-level field as it may come from one source; `None` is unset.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigLayer {
    /// `--node-id`
    pub node_id: Option<String>,
    /// `--data-dir`
    pub data_dir: Option<String>,
    /// `--listen`
    pub listen: Option<String>,
    /// `--advertise`
    pub advertise: Option<String>,
    /// `--internal-listen`
    pub internal_listen: Option<String>,
    /// `--internal-advertise`
    pub internal_advertise: Option<String>,
    /// `--http-listen`
    pub http_listen: Option<String>,
    /// `--voters`
    pub voters: Option<String>,
    /// `--rack`
    pub rack: Option<String>,
    /// `--internal-tls-ca`
    pub internal_tls_ca: Option<String>,
    /// `--internal-tls-cert`
    pub internal_tls_cert: Option<String>,
    /// `--internal-tls-key`
    pub internal_tls_key: Option<String>,
    /// `--internal-insecure` (`true` or `false`)
    #[serde(default, deserialize_with = "bool_or_string")]
    pub internal_insecure: Option<String>,
    /// `--advertised-overrides` (`NAME[,NAME...]=FILE`)
    pub advertised_overrides: Option<String>,
    /// Kafka-named settings (`--set KEY=VALUE`).
    #[serde(default, deserialize_with = "settings_map")]
    pub settings: BTreeMap<String, String>,
}

fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_yaml::Value>::deserialize(d)? {
        None | Some(serde_yaml::Value::Null) => None,
        Some(serde_yaml::Value::Bool(b)) => Some(b.to_string()),
        Some(serde_yaml::Value::String(s)) => Some(s),
        Some(other) => return Err(serde::de::Error::custom(format!("expected true or false, got {other:?}"))),
    })
}

fn settings_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: BTreeMap<String, serde_yaml::Value> = BTreeMap::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let text = match v {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::Sequence(items) => items
                .iter()
                .map(|i| serde_yaml::to_string(i).map(|s| s.trim().to_string()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(serde::de::Error::custom)?
                .join(","),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "setting `{k}` has a value of an unsupported kind ({other:?}); use a string, number, boolean or list"
                )));
            }
        };
        out.insert(k, text);
    }
    Ok(out)
}

impl ConfigLayer {
    /// Reads a YAML config file.
    pub fn from_file(path: &Path) -> Result<ConfigLayer, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })?;
        serde_yaml::from_str(&text).map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })
    }

    /// Reads the `STROM_*` environment variables from `vars`.
    ///
    /// `STROM_SET` holds whitespace-separated `KEY=VALUE` settings.
    pub fn from_env<I: IntoIterator<Item = (String, String)>>(vars: I) -> Result<ConfigLayer, ConfigError> {
        let mut layer = ConfigLayer::default();
        for (key, value) in vars {
            let slot = match key.as_str() {
                "STROM_NODE_ID" => &mut layer.node_id,
                "STROM_DATA_DIR" => &mut layer.data_dir,
                "STROM_LISTEN" => &mut layer.listen,
                "STROM_ADVERTISE" => &mut layer.advertise,
                "STROM_INTERNAL_LISTEN" => &mut layer.internal_listen,
                "STROM_INTERNAL_ADVERTISE" => &mut layer.internal_advertise,
                "STROM_HTTP_LISTEN" => &mut layer.http_listen,
                "STROM_VOTERS" => &mut layer.voters,
                "STROM_RACK" => &mut layer.rack,
                "STROM_INTERNAL_TLS_CA" => &mut layer.internal_tls_ca,
                "STROM_INTERNAL_TLS_CERT" => &mut layer.internal_tls_cert,
                "STROM_INTERNAL_TLS_KEY" => &mut layer.internal_tls_key,
                "STROM_INTERNAL_INSECURE" => &mut layer.internal_insecure,
                "STROM_ADVERTISED_OVERRIDES" => &mut layer.advertised_overrides,
                "STROM_SET" => {
                    for item in value.split_whitespace() {
                        let (k, v) = split_setting(item, "STROM_SET")?;
                        layer.settings.insert(k, v);
                    }
                    continue;
                }
                _ => continue,
            };
            *slot = Some(value);
        }
        Ok(layer)
    }

    /// Lays `self` over `lower`: a field set here wins.
    pub fn over(self, lower: ConfigLayer) -> ConfigLayer {
        let mut settings = lower.settings;
        settings.extend(self.settings);
        ConfigLayer {
            node_id: self.node_id.or(lower.node_id),
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            advertise: self.advertise.or(lower.advertise),
            internal_listen: self.internal_listen.or(lower.internal_listen),
            internal_advertise: self.internal_advertise.or(lower.internal_advertise),
            http_listen: self.http_listen.or(lower.http_listen),
            voters: self.voters.or(lower.voters),
            rack: self.rack.or(lower.rack),
            internal_tls_ca: self.internal_tls_ca.or(lower.internal_tls_ca),
            internal_tls_cert: self.internal_tls_cert.or(lower.internal_tls_cert),
            internal_tls_key: self.internal_tls_key.or(lower.internal_tls_key),
            internal_insecure: self.internal_insecure.or(lower.internal_insecure),
            advertised_overrides: self.advertised_overrides.or(lower.advertised_overrides),
            settings,
        }
    }
}

/// Splits `KEY=VALUE`, naming `origin` when it is malformed.
pub fn split_setting(item: &str, origin: &str) -> Result<(String, String), ConfigError> {
    match item.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(ConfigError::Field {
            field: "setting",
            value: item.to_string(),
            origin: origin.to_string(),
            expected: "expected KEY=VALUE, e.g. log.retention.ms=86400000".to_string(),
        }),
    }
}

/// The broker's complete, validated configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Broker id (on Kubernetes: the pod ordinal).
    pub node_id: i32,
    /// Where partition logs and metadata live.
    pub data_dir: PathBuf,
    /// Kafka listener address.
    pub listen: SocketAddr,
    /// Address given to clients in metadata.
    pub advertise: HostPort,
    /// gRPC listener for the quorum, replication and the admin API.
    pub internal_listen: SocketAddr,
    /// Address other brokers use to reach this one's gRPC listener.
    pub internal_advertise: HostPort,
    /// HTTP listener for `/metrics`, `/healthz`, `/readyz`.
    pub http_listen: SocketAddr,
    /// Controller quorum voters; empty means a single-node quorum of this broker.
    pub voters: Vec<Voter>,
    /// Rack name for rack-aware placement.
    pub rack: Option<String>,
    /// The internal plane's CA, certificate and key; `None`: no internal TLS.
    pub internal_tls: Option<crate::tls::TlsFiles>,
    /// `--internal-insecure`: serve the internal plane without TLS beyond
    /// loopback or for several brokers (logged every minute).
    pub internal_insecure: bool,
    /// The Kafka listeners (at least one; the first is `listen`/`advertise`).
    pub listeners: Vec<listeners::Listener>,
    /// `--advertised-overrides`: listeners advertised at the addresses a
    /// file gives (re-read while running), or not at all.
    pub advertised_overrides: Option<advertised::AdvertisedOverrides>,
    /// Kafka-named broker settings.
    pub settings: Settings,
    /// Cluster-wide dynamic broker settings from the metadata, which win
    /// over [`BrokerConfig::settings`] (see [`settings::is_dynamic_broker_setting`]).
    pub dynamic: DynamicSettings,
}

/// The dynamic broker settings this broker applies, shared by its clones.
#[derive(Debug, Clone, Default)]
pub struct DynamicSettings(Arc<RwLock<BTreeMap<String, String>>>);

impl DynamicSettings {
    /// The dynamic value of `name`, if one is set.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.read().get(name).cloned()
    }

    /// Replaces every dynamic value; returns whether anything changed.
    pub fn replace(&self, values: &BTreeMap<String, String>) -> bool {
        let mut current = self.0.write();
        if *current == *values {
            return false;
        }
        *current = values.clone();
        true
    }
}

fn field_err(field: &'static str, value: &str, origin: &str, expected: &str) -> ConfigError {
    ConfigError::Field { field, value: value.to_string(), origin: origin.to_string(), expected: expected.to_string() }
}

fn parse_socket(field: &'static str, value: &str, origin: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| field_err(field, value, origin, "expected IP:PORT to bind, e.g. 0.0.0.0:9092 or 127.0.0.1:9092"))
}

fn parse_host_port(field: &'static str, value: &str, origin: &str) -> Result<HostPort, ConfigError> {
    let bad = || field_err(field, value, origin, "expected HOST:PORT with a port from 1 to 65535, e.g. localhost:9092");
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(HostPort { host: host.to_string(), port })
}

fn parse_voters(value: &str, origin: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut voters = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad =
            || field_err("voters", value, origin, "expected ID@HOST:PORT,... e.g. 0@broker-0:9093,1@broker-1:9093");
        let (id, addr) = item.split_once('@').ok_or_else(bad)?;
        let node_id: i32 = id.parse().map_err(|_| bad())?;
        let address = parse_host_port("voters", addr, origin).map_err(|_| bad())?;
        if voters.iter().any(|v: &Voter| v.node_id == node_id) {
            return Err(field_err("voters", value, origin, "each voter id may appear once"));
        }
        voters.push(Voter { node_id, address });
    }
    Ok(voters)
}

/// The internal TLS files: all three or none.
fn internal_tls_files(layer: &ConfigLayer, origin: &str) -> Result<Option<crate::tls::TlsFiles>, ConfigError> {
    let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from);
    match (given(&layer.internal_tls_ca), given(&layer.internal_tls_cert), given(&layer.internal_tls_key)) {
        (Some(ca), Some(cert), Some(key)) => Ok(Some(crate::tls::TlsFiles { ca, cert, key })),
        (None, None, None) => Ok(None),
        (ca, cert, key) => {
            let missing: Vec<&str> =
                [("--internal-tls-ca", ca), ("--internal-tls-cert", cert), ("--internal-tls-key", key)]
                    .into_iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(name, _)| name)
                    .collect();
            Err(field_err(
                "internal-tls",
                &format!("missing {}", missing.join(", ")),
                origin,
                "give all three of --internal-tls-ca, --internal-tls-cert and --internal-tls-key, or none",
            ))
        }
    }
}

/// Refuses, without internal TLS and `--internal-insecure`, an internal
/// listener beyond loopback or a configuration with other brokers: anyone
/// who reached the port could forge replication, Raft and admin calls.
fn refuse_unauthenticated_internal_plane(
    node_id: i32,
    internal_listen: SocketAddr,
    voters: &[Voter],
    origin: &str,
) -> Result<(), ConfigError> {
    const HOW: &str = "configure internal TLS (--internal-tls-ca, --internal-tls-cert, --internal-tls-key; \
        `strom-broker certs` writes a CA and certificates), or give --internal-insecure to run the internal plane \
        unauthenticated (see docs/SECURITY.md)";
    if !internal_listen.ip().is_loopback() {
        return Err(field_err(
            "internal-listen",
            &internal_listen.to_string(),
            origin,
            &format!("a non-loopback internal listener needs internal TLS: {HOW}"),
        ));
    }
    if voters.len() > 1 || voters.iter().any(|v| v.node_id != node_id) {
        let list = voters.iter().map(|v| format!("{}@{}", v.node_id, v.address)).collect::<Vec<_>>().join(",");
        return Err(field_err("voters", &list, origin, &format!("a multi-broker cluster needs internal TLS: {HOW}")));
    }
    Ok(())
}

impl BrokerConfig {
    /// Resolves a merged layer (flags over env over file) into a validated config.
    ///
    /// `origin` names where values came from, for error messages.
    pub fn resolve(layer: ConfigLayer, origin: &str) -> Result<BrokerConfig, ConfigError> {
        let node_id = match &layer.node_id {
            Some(v) => v
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| field_err("node-id", v, origin, "expected an integer from 0 to 2147483647"))?,
            None => 0,
        };
        let listen = parse_socket("listen", layer.listen.as_deref().unwrap_or("0.0.0.0:9092"), origin)?;
        let advertise = match &layer.advertise {
            Some(v) => parse_host_port("advertise", v, origin)?,
            None => HostPort { host: "localhost".into(), port: listen.port() },
        };
        let internal_tls = internal_tls_files(&layer, origin)?;
        let internal_insecure = match layer.internal_insecure.as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true" | "") => true,
            Some(other) => return Err(field_err("internal-insecure", other, origin, "expected true or false")),
        };
        // Without internal TLS the internal plane is unauthenticated: by
        // default it is reachable from this host only.
        let default_internal =
            if internal_tls.is_some() || internal_insecure { "0.0.0.0:9093" } else { "127.0.0.1:9093" };
        let internal_listen =
            parse_socket("internal-listen", layer.internal_listen.as_deref().unwrap_or(default_internal), origin)?;
        let internal_advertise = match &layer.internal_advertise {
            Some(v) => parse_host_port("internal-advertise", v, origin)?,
            None => HostPort { host: advertise.host.clone(), port: internal_listen.port() },
        };
        let http_listen = parse_socket("http-listen", layer.http_listen.as_deref().unwrap_or("0.0.0.0:9094"), origin)?;
        let voters = match &layer.voters {
            Some(v) => parse_voters(v, origin)?,
            None => Vec::new(),
        };
        if internal_tls.is_none() && !internal_insecure {
            refuse_unauthenticated_internal_plane(node_id, internal_listen, &voters, origin)?;
        }
        let rack = layer.rack.filter(|r| !r.trim().is_empty());
        let data_dir = PathBuf::from(layer.data_dir.unwrap_or_else(|| "./data".to_string()));
        let mut settings = Settings::broker_defaults();
        let mut security = BTreeMap::new();
        for (k, v) in &layer.settings {
            if listeners::is_listener_setting(k) {
                security.insert(k.clone(), v.clone());
                continue;
            }
            settings.set(k, v).map_err(|source| ConfigError::Setting { origin: origin.to_string(), source })?;
        }
        let listeners = listeners::resolve(&security, listen, &advertise)
            .map_err(|source| ConfigError::Listener { origin: origin.to_string(), source })?;
        let (listen, advertise) = (listeners[0].bind, listeners[0].advertised.clone());
        let advertised_overrides = match layer.advertised_overrides.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => {
                let o = advertised::parse_flag(v, &listeners)
                    .map_err(|expected| field_err("advertised-overrides", v, origin, &expected))?;
                // A refused file stops the start here, before anything is touched.
                advertised::read(&o).map_err(|e| field_err("advertised-overrides", v, origin, &e.to_string()))?;
                Some(o)
            }
        };
        Ok(BrokerConfig {
            node_id,
            data_dir,
            listen,
            advertise,
            listeners,
            advertised_overrides,
            internal_listen,
            internal_advertise,
            http_listen,
            voters,
            rack,
            internal_tls,
            internal_insecure,
            settings,
            dynamic: DynamicSettings::default(),
        })
    }

    /// The broker's effective value for a topic setting's broker synonym,
    /// following Kafka's ms > minutes > hours precedence for retention and roll.
    pub fn broker_value(&self, broker_setting: &str) -> String {
        if let Some(v) = self.dynamic.get(broker_setting) {
            return v;
        }
        let s = &self.settings;
        match broker_setting {
            "log.retention.ms" => {
                if let Some(v) = s.explicit("log.retention.ms") {
                    v.to_string()
                } else if let Some(m) = s.explicit("log.retention.minutes") {
                    minutes_to_ms(m.parse().unwrap_or(0))
                } else {
                    let h = s.long("log.retention.hours");
                    if h < 0 { "-1".into() } else { (h * 3_600_000).to_string() }
                }
            }
            "log.roll.ms" => match s.explicit("log.roll.ms") {
                Some(v) => v.to_string(),
                None => (s.long("log.roll.hours") * 3_600_000).to_string(),
            },
            other => s.get(other).to_string(),
        }
    }

    /// A topic setting's effective value and whether the topic overrides it.
    pub fn topic_value(&self, overrides: &Settings, name: &str) -> (String, bool) {
        if let Some(v) = overrides.explicit(name) {
            return (v.to_string(), true);
        }
        match settings::find(settings::TOPIC_SETTINGS, name) {
            Some(def) => match def.broker_synonym {
                Some(syn) => (self.broker_value(syn), false),
                None => (def.default.to_string(), false),
            },
            None => (String::new(), false),
        }
    }

    /// The log configuration of a topic with the given overrides.
    pub fn log_config(&self, overrides: &Settings) -> LogConfig {
        let long = |name: &str| self.topic_value(overrides, name).0.parse::<i64>().unwrap_or_default();
        let policy = self.topic_value(overrides, "cleanup.policy").0;
        let cleanup_policy = match (policy.contains("delete"), policy.contains("compact")) {
            (true, true) => CleanupPolicy::DeleteAndCompact,
            (false, true) => CleanupPolicy::Compact,
            _ => CleanupPolicy::Delete,
        };
        // Kafka rolls a compacted log's active segment by max.compaction.lag.ms
        // too, so its records become cleanable in time.
        let segment_ms = match cleanup_policy.compacts() {
            true => long("segment.ms").min(long("max.compaction.lag.ms").max(1)),
            false => long("segment.ms"),
        };
        LogConfig {
            segment_bytes: long("segment.bytes").max(14) as u64,
            segment_ms,
            retention_ms: long("retention.ms"),
            retention_bytes: long("retention.bytes"),
            delete_retention_ms: long("delete.retention.ms"),
            index_interval_bytes: long("index.interval.bytes").clamp(0, u32::MAX as i64) as u32,
            max_message_bytes: long("max.message.bytes").clamp(0, u32::MAX as i64) as u32,
            cleanup_policy,
            flush_messages: long("flush.messages").max(1) as u64,
            flush_ms: long("flush.ms"),
            message_timestamp_type_log_append: self.topic_value(overrides, "message.timestamp.type").0
                == "LogAppendTime",
            compression: crate::log::config::compression_for(&self.topic_value(overrides, "compression.type").0),
            min_compaction_lag_ms: long("min.compaction.lag.ms").max(0),
            segment_index_bytes: long("segment.index.bytes").clamp(4, u32::MAX as i64) as u32,
            verify_every_read: self.topic_value(overrides, "verify.reads").0 == "always",
        }
    }
}

fn minutes_to_ms(minutes: i64) -> String {
    if minutes < 0 { "-1".into() } else { (minutes * 60_000).to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(pairs: &[(&str, &str)]) -> ConfigLayer {
        ConfigLayer::from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    #[test]
    fn no_arguments_give_the_single_node_defaults() {
        let c = BrokerConfig::resolve(ConfigLayer::default(), "defaults").unwrap();
        assert_eq!(c.node_id, 0);
        assert_eq!(c.listen.to_string(), "0.0.0.0:9092");
        assert_eq!(c.advertise.to_string(), "localhost:9092");
        assert_eq!(c.internal_advertise.to_string(), "localhost:9093");
        assert_eq!(c.internal_listen.to_string(), "127.0.0.1:9093", "no internal TLS: loopback only");
        assert!(c.internal_tls.is_none() && !c.internal_insecure);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.voters.is_empty());
    }

    #[test]
    fn flags_win_over_env_and_env_over_file() {
        let file: ConfigLayer =
            serde_yaml::from_str("node-id: 1\nrack: a\nsettings:\n  num.partitions: 4\n  log.retention.ms: 5\n")
                .unwrap();
        let env = layer(&[("STROM_NODE_ID", "2"), ("STROM_SET", "num.partitions=6")]);
        let flags = ConfigLayer { node_id: Some("3".into()), ..Default::default() };
        let c = BrokerConfig::resolve(flags.over(env.over(file)), "test").unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.rack.as_deref(), Some("a"));
        assert_eq!(c.settings.long("num.partitions"), 6);
        assert_eq!(c.settings.long("log.retention.ms"), 5);
    }

    #[test]
    fn unknown_file_field_is_refused() {
        let err = serde_yaml::from_str::<ConfigLayer>("node_idd: 1\n").unwrap_err();
        assert!(err.to_string().contains("node_idd"), "{err}");
    }

    #[test]
    fn bad_values_name_field_value_and_allowed() {
        let e = BrokerConfig::resolve(layer(&[("STROM_LISTEN", "localhost")]), "env").unwrap_err();
        assert!(e.to_string().contains("invalid listen `localhost` (from env)"), "{e}");
        let e = BrokerConfig::resolve(layer(&[("STROM_NODE_ID", "-4")]), "env").unwrap_err();
        assert!(e.to_string().contains("node-id `-4`"), "{e}");
        let e = BrokerConfig::resolve(layer(&[("STROM_VOTERS", "0@a:1,x")]), "env").unwrap_err();
        assert!(e.to_string().contains("ID@HOST:PORT"), "{e}");
        let e = BrokerConfig::resolve(layer(&[("STROM_SET", "num.partitions=0")]), "env").unwrap_err();
        assert!(e.to_string().contains("`num.partitions`"), "{e}");
        assert!(ConfigLayer::from_env([("STROM_SET".to_string(), "novalue".to_string())]).is_err());
    }

    #[test]
    fn retention_follows_kafka_precedence() {
        let c = BrokerConfig::resolve(layer(&[("STROM_SET", "log.retention.hours=1")]), "t").unwrap();
        assert_eq!(c.log_config(&Settings::topic_overrides()).retention_ms, 3_600_000);
        let c = BrokerConfig::resolve(layer(&[("STROM_SET", "log.retention.hours=1 log.retention.minutes=2")]), "t")
            .unwrap();
        assert_eq!(c.log_config(&Settings::topic_overrides()).retention_ms, 120_000);
        let mut topic = Settings::topic_overrides();
        topic.set("retention.ms", "7").unwrap();
        assert_eq!(c.log_config(&topic).retention_ms, 7);
        assert_eq!(c.topic_value(&topic, "retention.ms"), ("7".to_string(), true));
        assert_eq!(c.topic_value(&topic, "segment.ms"), ("604800000".to_string(), false));
    }

    #[test]
    fn dynamic_settings_win_over_static_ones_and_topic_overrides_over_both() {
        let c = BrokerConfig::resolve(layer(&[("STROM_SET", "log.retention.hours=1")]), "t").unwrap();
        let clone = c.clone();
        assert!(c.dynamic.replace(&BTreeMap::from([("log.retention.ms".to_string(), "60000".to_string())])));
        assert!(!c.dynamic.replace(&BTreeMap::from([("log.retention.ms".to_string(), "60000".to_string())])));
        assert_eq!(clone.log_config(&Settings::topic_overrides()).retention_ms, 60_000, "clones share the values");
        let mut topic = Settings::topic_overrides();
        topic.set("retention.ms", "7").unwrap();
        assert_eq!(c.log_config(&topic).retention_ms, 7);
        c.dynamic.replace(&BTreeMap::new());
        assert_eq!(c.log_config(&Settings::topic_overrides()).retention_ms, 3_600_000);
    }

    #[test]
    fn voters_parse() {
        let c = BrokerConfig::resolve(
            layer(&[("STROM_VOTERS", "0@a:9093, 1@b:9093"), ("STROM_INTERNAL_INSECURE", "true")]),
            "t",
        )
        .unwrap();
        assert_eq!(c.voters.len(), 2);
        assert_eq!(c.voters[1].address.to_string(), "b:9093");
    }

    #[test]
    fn without_internal_tls_the_internal_plane_stays_on_loopback_and_alone() {
        let e = BrokerConfig::resolve(layer(&[("STROM_INTERNAL_LISTEN", "0.0.0.0:9093")]), "env").unwrap_err();
        assert!(e.to_string().contains("non-loopback internal listener needs internal TLS"), "{e}");
        assert!(e.to_string().contains("--internal-insecure"), "{e}");
        let e = BrokerConfig::resolve(
            layer(&[
                ("STROM_VOTERS", "0@127.0.0.1:9093,1@127.0.0.1:9193"),
                ("STROM_INTERNAL_LISTEN", "127.0.0.1:9093"),
            ]),
            "env",
        )
        .unwrap_err();
        assert!(e.to_string().contains("multi-broker cluster needs internal TLS"), "{e}");
        // A broker that is not a voter has peers too.
        let e = BrokerConfig::resolve(layer(&[("STROM_NODE_ID", "3"), ("STROM_VOTERS", "0@127.0.0.1:9093")]), "env")
            .unwrap_err();
        assert!(e.to_string().contains("multi-broker"), "{e}");
        // This broker alone, named as the only voter, is fine.
        BrokerConfig::resolve(layer(&[("STROM_VOTERS", "0@127.0.0.1:9093")]), "env").unwrap();
        // --internal-insecure opens both, and the default listener goes wide again.
        let c = BrokerConfig::resolve(
            layer(&[("STROM_VOTERS", "0@a:9093,1@b:9093"), ("STROM_INTERNAL_INSECURE", "true")]),
            "env",
        )
        .unwrap();
        assert_eq!(c.internal_listen.to_string(), "0.0.0.0:9093");
        let file: ConfigLayer = serde_yaml::from_str("internal-insecure: true\nvoters: 0@a:9093,1@b:9093\n").unwrap();
        assert!(BrokerConfig::resolve(file, "file").unwrap().internal_insecure);
        let e = BrokerConfig::resolve(layer(&[("STROM_INTERNAL_INSECURE", "maybe")]), "env").unwrap_err();
        assert!(e.to_string().contains("internal-insecure `maybe`"), "{e}");
    }

    #[test]
    fn internal_tls_takes_all_three_files() {
        let e = BrokerConfig::resolve(layer(&[("STROM_INTERNAL_TLS_CA", "/ca.pem")]), "env").unwrap_err();
        assert!(e.to_string().contains("missing --internal-tls-cert, --internal-tls-key"), "{e}");
        let c = BrokerConfig::resolve(
            layer(&[
                ("STROM_INTERNAL_TLS_CA", "/ca.pem"),
                ("STROM_INTERNAL_TLS_CERT", "/b.pem"),
                ("STROM_INTERNAL_TLS_KEY", "/b-key.pem"),
                ("STROM_VOTERS", "0@a:9093,1@b:9093"),
            ]),
            "env",
        )
        .unwrap();
        assert_eq!(c.internal_tls.as_ref().map(|t| t.key.clone()), Some(PathBuf::from("/b-key.pem")));
        assert_eq!(c.internal_listen.to_string(), "0.0.0.0:9093");
    }
}
