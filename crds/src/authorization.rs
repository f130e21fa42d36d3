//! `KafkaCluster.spec.authorization`: Kafka ACLs on the brokers' client
//! listeners (`simple`, Kafka's `StandardAuthorizer`), and the super users
//! no ACL is checked for — Strimzi's field of the same name.
//!
//! Pure: the broker settings it stands for ([`ClusterAuthorization::broker_settings`])
//! and its checks; the operator writes the settings into the broker config.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Kafka's ACL authorizer, as `authorizer.class.name` names it.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The broker settings `spec.authorization` owns: set in `spec.config` too
/// they would contradict it.
pub const AUTHORIZATION_SETTINGS: [&str; 2] = ["authorizer.class.name", "super.users"];

/// Client authorization on every Kafka listener.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAuthorization {
    /// `simple`: Kafka ACLs (KafkaUsers' `authorization.acls`, or
    /// `kafka-acls.sh`); a request no ACL allows is refused.
    pub r#type: AuthorizationType,
    /// Users allowed everything, no ACL checked: KafkaUser names (the CN of
    /// a `tls` user's certificate), e.g. `admin`; `User:admin` is accepted too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub super_users: Vec<String>,
}

/// Authorization types.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationType {
    /// Kafka ACLs (`StandardAuthorizer`).
    #[serde(rename = "simple")]
    Simple,
}

/// Why `spec.authorization` is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// A super user name the broker could not parse back.
    #[error(
        "spec.authorization.superUsers[{index}] is {name:?}: a user name must not be empty, hold ';' or surrounding spaces"
    )]
    BadSuperUser {
        /// Position in the list.
        index: usize,
        /// The rejected name.
        name: String,
    },
    /// A setting of `spec.config` that `spec.authorization` owns.
    #[error("spec.config.{key} contradicts spec.authorization, which sets it: remove one of them")]
    ConfigConflict {
        /// The setting.
        key: String,
    },
}

impl ClusterAuthorization {
    /// Checks the super user names.
    pub fn validate(&self) -> Result<(), AuthorizationError> {
        for (index, name) in self.super_users.iter().enumerate() {
            let bare = name.strip_prefix("User:").unwrap_or(name);
            if bare.is_empty() || name.contains(';') || name.trim() != name {
                return Err(AuthorizationError::BadSuperUser { index, name: name.clone() });
            }
        }
        Ok(())
    }

    /// `authorizer.class.name`, and `super.users` when there are any
    /// (`User:<name>` each, `;`-separated as Kafka takes them).
    pub fn broker_settings(&self) -> Vec<(String, String)> {
        let mut settings = vec![("authorizer.class.name".to_string(), STANDARD_AUTHORIZER.to_string())];
        if !self.super_users.is_empty() {
            let principals: Vec<String> = self
                .super_users
                .iter()
                .map(|u| if u.starts_with("User:") { u.clone() } else { format!("User:{u}") })
                .collect();
            settings.push(("super.users".to_string(), principals.join(";")));
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple(users: &[&str]) -> ClusterAuthorization {
        ClusterAuthorization {
            r#type: AuthorizationType::Simple,
            super_users: users.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn simple_authorization_renders_kafkas_acl_authorizer_and_super_users() {
        assert_eq!(
            simple(&[]).broker_settings(),
            vec![("authorizer.class.name".to_string(), STANDARD_AUTHORIZER.to_string())]
        );
        let settings = simple(&["admin", "User:ops"]).broker_settings();
        assert_eq!(settings[1], ("super.users".to_string(), "User:admin;User:ops".to_string()));
        let parsed: ClusterAuthorization =
            serde_json::from_value(serde_json::json!({"type": "simple", "superUsers": ["admin"]})).unwrap();
        assert_eq!(parsed, simple(&["admin"]));
    }

    #[test]
    fn super_user_names_the_broker_cannot_parse_back_are_refused() {
        assert!(simple(&["admin", "User:ops"]).validate().is_ok());
        for bad in ["", "User:", "a;b", " admin"] {
            let e = simple(&["ok", bad]).validate().unwrap_err();
            assert_eq!(e, AuthorizationError::BadSuperUser { index: 1, name: bad.to_string() });
        }
        let e = simple(&["a;b"]).validate().unwrap_err().to_string();
        assert!(e.starts_with("spec.authorization.superUsers[0] is \"a;b\""), "{e}");
    }
}
