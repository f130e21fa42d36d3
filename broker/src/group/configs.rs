//! Kafka 4's group-level configs (the GROUP config resource, KIP-848):
//! their names, defaults and the rules Kafka checks them by. Pure: the
//! controller validates a group's configs with [`validate`] when they
//! change, and DescribeConfigs lists [`GROUP_CONFIGS`] with each value.
//!
//! Stored and described only: both settings tune KIP-848 consumer groups
//! (`group.protocol=consumer`), which Strom does not serve; Kafka does not
//! apply them to classic groups either, whose session timeout is the
//! member's own `session.timeout.ms`. Share and streams group settings
//! (`share.*`, `streams.*`) are refused as unknown: Strom has neither kind
//! of group.

use std::collections::BTreeMap;

/// One group config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfigDef {
    /// The name.
    pub name: &'static str,
    /// Its value when the group has no override (Kafka's broker default).
    pub default: i64,
    /// Smallest value accepted (Kafka's broker-level minimum, at its default).
    pub min: i64,
    /// Largest value accepted (Kafka's broker-level maximum, at its default).
    pub max: i64,
    /// What it does, for DescribeConfigs' documentation.
    pub doc: &'static str,
}

/// `consumer.session.timeout.ms`.
pub const SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
/// `consumer.heartbeat.interval.ms`.
pub const HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";

/// Every group config Strom accepts, in the order described.
pub const GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: SESSION_TIMEOUT,
        default: 45_000,
        min: 45_000,
        max: 60_000,
        doc: "The timeout to detect client failures when using the consumer group protocol (KIP-848). \
              No effect in Strom, which serves classic groups only.",
    },
    GroupConfigDef {
        name: HEARTBEAT_INTERVAL,
        default: 5_000,
        min: 5_000,
        max: 15_000,
        doc: "The heartbeat interval given to the members when using the consumer group protocol (KIP-848). \
              No effect in Strom, which serves classic groups only.",
    },
];

/// Why a group's configs were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupConfigError {
    /// Not a group config (share and streams group configs included).
    #[error(
        "unknown group config `{name}`; accepted: consumer.session.timeout.ms, consumer.heartbeat.interval.ms \
         (Strom has no share or streams groups)"
    )]
    Unknown {
        /// The name given.
        name: String,
    },
    /// Not an integer within the config's bounds.
    #[error("group config `{name}` is `{value}`; it must be an integer from {min} to {max}")]
    OutOfRange {
        /// The config.
        name: &'static str,
        /// The value given.
        value: String,
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
}

/// The definition of `name`, if it is a group config.
pub fn find(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// The effective value of `def` for a group with `overrides`.
pub fn value(def: &GroupConfigDef, overrides: &BTreeMap<String, String>) -> i64 {
    overrides.get(def.name).and_then(|v| v.parse().ok()).unwrap_or(def.default)
}

/// Checks a group's whole set of overrides as Kafka does: known names and
/// integers within bounds. (Kafka also wants the heartbeat interval below the
/// session timeout; with its default bounds, which Strom uses, it always is.)
pub fn validate(overrides: &BTreeMap<String, String>) -> Result<(), GroupConfigError> {
    for (name, v) in overrides {
        let def = find(name).ok_or_else(|| GroupConfigError::Unknown { name: name.clone() })?;
        match v.trim().parse::<i64>() {
            Ok(n) if (def.min..=def.max).contains(&n) => {}
            _ => {
                return Err(GroupConfigError::OutOfRange {
                    name: def.name,
                    value: v.clone(),
                    min: def.min,
                    max: def.max,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn kafkas_bounds_and_names_are_checked() {
        assert_eq!(validate(&configs(&[])), Ok(()));
        assert_eq!(validate(&configs(&[(SESSION_TIMEOUT, "50000"), (HEARTBEAT_INTERVAL, "6000")])), Ok(()));
        assert!(matches!(
            validate(&configs(&[(SESSION_TIMEOUT, "1000")])),
            Err(GroupConfigError::OutOfRange { min: 45_000, .. })
        ));
        assert!(matches!(
            validate(&configs(&[(HEARTBEAT_INTERVAL, "soon")])),
            Err(GroupConfigError::OutOfRange { .. })
        ));
        assert!(matches!(
            validate(&configs(&[("share.record.lock.duration.ms", "30000")])),
            Err(GroupConfigError::Unknown { .. })
        ));
        let both = configs(&[(SESSION_TIMEOUT, "45000"), (HEARTBEAT_INTERVAL, "15000")]);
        assert_eq!(validate(&both), Ok(()));
        assert_eq!(value(&GROUP_CONFIGS[1], &both), 15_000);
        assert_eq!(value(&GROUP_CONFIGS[0], &both), 45_000);
        // Every heartbeat interval accepted is below every session timeout accepted.
        assert!(GROUP_CONFIGS[1].max < GROUP_CONFIGS[0].min);
    }
}
