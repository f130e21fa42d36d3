//! What a `KafkaUser` comes to, pure: its principal's ACLs in the Admin
//! API's shape, the changes that make the stored ACLs exactly those, its
//! client quotas and the changes that make the stored ones exactly those,
//! its password Secret, and a fresh password.
//!
//! The stored ACLs of principal `User:<name>` are made equal to the spec's
//! as a set: a missing one is created, any other one — hand-made through
//! `kafka-acls.sh` included — is deleted. Likewise the client quotas of the
//! entity `user=<name>`: a missing or different value is set, any other key
//! — hand-made through `kafka-configs.sh` included — is removed. Nothing
//! here calls the API.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use rand::TryRngCore;
use strom_crds::{AclOperation, AclPatternType, AclResourceType, AclRuleType, KafkaUser};
use strom_proto::admin::{Acl, ClientQuotaOp};

/// Length of a generated password.
pub const PASSWORD_LENGTH: usize = 32;
/// The Secret key holding the password.
pub const PASSWORD_KEY: &str = "password";
/// The Secret key holding the user name.
pub const USERNAME_KEY: &str = "username";
/// The Secret key holding the Java client's `sasl.jaas.config` line.
pub const JAAS_KEY: &str = "sasl.jaas.config";
/// Kafka's one cluster resource name.
const CLUSTER_RESOURCE: &str = "kafka-cluster";
/// Characters of a generated password (62: letters and digits, safe in a JAAS line).
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The Kafka principal of user `name`.
pub fn principal(name: &str) -> String {
    format!("User:{name}")
}

fn resource_code(t: AclResourceType) -> i32 {
    match t {
        AclResourceType::Topic => 2,
        AclResourceType::Group => 3,
        AclResourceType::Cluster => 4,
        AclResourceType::TransactionalId => 5,
    }
}

fn operation_code(o: AclOperation) -> i32 {
    match o {
        AclOperation::All => 2,
        AclOperation::Read => 3,
        AclOperation::Write => 4,
        AclOperation::Create => 5,
        AclOperation::Delete => 6,
        AclOperation::Alter => 7,
        AclOperation::Describe => 8,
        AclOperation::ClusterAction => 9,
        AclOperation::DescribeConfigs => 10,
        AclOperation::AlterConfigs => 11,
        AclOperation::IdempotentWrite => 12,
    }
}

/// The ACLs `user`'s spec asks for, one per operation, in Kafka's wire codes.
pub fn desired_acls(user: &KafkaUser) -> Vec<Acl> {
    let principal = principal(&user.name_any());
    let mut acls = Vec::new();
    for rule in user.spec.authorization.iter().flat_map(|a| a.acls.iter()) {
        let resource_name = match rule.resource.r#type {
            AclResourceType::Cluster => CLUSTER_RESOURCE.to_string(),
            _ => rule.resource.name.clone().unwrap_or_default(),
        };
        let pattern_type = match rule.resource.pattern_type {
            AclPatternType::Literal => 3,
            AclPatternType::Prefixed => 4,
        };
        let permission = match rule.r#type {
            AclRuleType::Deny => 2,
            AclRuleType::Allow => 3,
        };
        for operation in &rule.operations {
            acls.push(Acl {
                resource_type: resource_code(rule.resource.r#type),
                resource_name: resource_name.clone(),
                pattern_type,
                principal: principal.clone(),
                host: rule.host.clone(),
                operation: operation_code(*operation),
                permission,
            });
        }
    }
    acls
}

type AclKey = (i32, String, i32, String, String, i32, i32);

fn key(a: &Acl) -> AclKey {
    (
        a.resource_type,
        a.resource_name.clone(),
        a.pattern_type,
        a.principal.clone(),
        a.host.clone(),
        a.operation,
        a.permission,
    )
}

/// What turns the stored ACLs of a principal into the desired ones.
#[derive(Debug, Default, PartialEq)]
pub struct AclChanges {
    /// Desired and not stored.
    pub create: Vec<Acl>,
    /// Stored and not desired (drift, or removed from the spec).
    pub delete: Vec<Acl>,
}

/// The ACLs to create and delete so that `stored` becomes `desired` (as sets).
pub fn acl_changes(desired: &[Acl], stored: &[Acl]) -> AclChanges {
    let want: BTreeMap<AclKey, &Acl> = desired.iter().map(|a| (key(a), a)).collect();
    let have: BTreeMap<AclKey, &Acl> = stored.iter().map(|a| (key(a), a)).collect();
    AclChanges {
        create: want.iter().filter(|(k, _)| !have.contains_key(*k)).map(|(_, a)| (*a).clone()).collect(),
        delete: have.iter().filter(|(k, _)| !want.contains_key(*k)).map(|(_, a)| (*a).clone()).collect(),
    }
}

/// How many distinct ACLs `acls` holds.
pub fn distinct(acls: &[Acl]) -> usize {
    acls.iter().map(key).collect::<BTreeSet<_>>().len()
}

/// The client quotas `user`'s spec asks for, by Kafka key; none without `spec.quotas`.
pub fn desired_quotas(user: &KafkaUser) -> BTreeMap<String, f64> {
    let quotas = user.spec.quotas.iter().flat_map(|q| q.kafka_quotas());
    quotas.map(|(key, value)| (key.to_string(), value)).collect()
}

/// What turns the stored client quotas of the entity `user=<name>` into the desired ones.
#[derive(Debug, Default, PartialEq)]
pub struct QuotaChanges {
    /// Keys to set, with their values: desired and not stored, or stored with another value.
    pub set: BTreeMap<String, f64>,
    /// Keys stored and not desired (drift, or removed from the spec).
    pub remove: Vec<String>,
}

impl QuotaChanges {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// The Admin API's ops: one per key, sets then removals.
    pub fn ops(&self) -> Vec<ClientQuotaOp> {
        let set = self.set.iter().map(|(key, value)| ClientQuotaOp { key: key.clone(), value: *value, remove: false });
        let remove = self.remove.iter().map(|key| ClientQuotaOp { key: key.clone(), value: 0.0, remove: true });
        set.chain(remove).collect()
    }

    /// The changes in words, e.g. `producer_byte_rate=2048 set, consumer_byte_rate removed`.
    pub fn describe(&self) -> String {
        let set = self.set.iter().map(|(key, value)| format!("{key}={value} set"));
        let remove = self.remove.iter().map(|key| format!("{key} removed"));
        set.chain(remove).collect::<Vec<_>>().join(", ")
    }
}

/// The quotas to set and remove so that `stored` becomes exactly `desired`.
pub fn quota_changes(desired: &BTreeMap<String, f64>, stored: &BTreeMap<String, f64>) -> QuotaChanges {
    QuotaChanges {
        set: desired
            .iter()
            .filter(|(key, value)| stored.get(*key).is_none_or(|v| v.to_bits() != value.to_bits()))
            .map(|(key, value)| (key.clone(), *value))
            .collect(),
        remove: stored.keys().filter(|key| !desired.contains_key(*key)).cloned().collect(),
    }
}

/// The quotas in words for the Ready condition, e.g.
/// `client quotas producer_byte_rate=1024, request_percentage=50`.
pub fn quota_summary(quotas: &BTreeMap<String, f64>) -> String {
    if quotas.is_empty() {
        return "no client quotas".to_string();
    }
    let each = quotas.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>();
    format!("client quotas {}", each.join(", "))
}

/// A new random password of [`PASSWORD_LENGTH`] letters and digits, from the OS's generator.
pub fn generate_password() -> Result<String, rand::rand_core::OsError> {
    let mut password = String::with_capacity(PASSWORD_LENGTH);
    let mut bytes = [0u8; 64];
    while password.len() < PASSWORD_LENGTH {
        rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
        // Rejection sampling: 248 = 4 × 62, so every character is equally likely.
        for b in bytes.iter().filter(|b| usize::from(**b) < 4 * ALPHABET.len()) {
            if password.len() == PASSWORD_LENGTH {
                break;
            }
            password.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
        }
    }
    Ok(password)
}

/// The `sasl.jaas.config` line a Java client logs in with.
pub fn jaas_config(username: &str, password: &str) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";",
        quote(username),
        quote(password)
    )
}

/// The Secret named after `user` with its password and client settings,
/// owned by the KafkaUser (deleted with it).
pub fn user_secret(user: &KafkaUser, password: &str) -> Secret {
    let name = user.name_any();
    let labels = BTreeMap::from([
        ("app.kubernetes.io/managed-by".to_string(), "strom-operator".to_string()),
        ("strom.dev/kafka-user".to_string(), name.clone()),
        ("strom.dev/cluster".to_string(), user.spec.cluster_ref.clone()),
    ]);
    let data = BTreeMap::from([
        (PASSWORD_KEY.to_string(), ByteString(password.as_bytes().to_vec())),
        (USERNAME_KEY.to_string(), ByteString(name.as_bytes().to_vec())),
        (JAAS_KEY.to_string(), ByteString(jaas_config(&name, password).into_bytes())),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: user.namespace(),
            labels: Some(labels),
            owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    }
}

/// The value of `key` in `secret` as text, if present and UTF-8.
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(acls: serde_json::Value) -> KafkaUser {
        serde_json::from_value(json!({
            "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaUser",
            "metadata": {"name": "app-reader", "namespace": "apps", "uid": "u-1"},
            "spec": {"clusterRef": "events", "authentication": {"type": "scram-sha-512"},
                     "authorization": {"type": "simple", "acls": acls}}
        }))
        .unwrap()
    }

    #[test]
    fn each_operation_is_one_acl_of_the_users_principal() {
        let u = user(json!([
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
            {"resource": {"type": "group", "name": "app-", "patternType": "prefixed"}, "operations": ["Read"], "type": "deny"},
            {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"], "host": "10.0.0.1"}
        ]));
        let acls = desired_acls(&u);
        assert_eq!(acls.len(), 4);
        assert!(acls.iter().all(|a| a.principal == "User:app-reader"));
        assert_eq!((acls[0].resource_type, acls[0].operation, acls[0].permission, acls[0].pattern_type), (2, 3, 3, 3));
        assert_eq!((acls[2].resource_type, acls[2].pattern_type, acls[2].permission), (3, 4, 2));
        assert_eq!((acls[3].resource_name.as_str(), acls[3].host.as_str()), ("kafka-cluster", "10.0.0.1"));
    }

    #[test]
    fn changes_make_the_stored_set_exactly_the_desired_one() {
        let u = user(json!([{"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]}]));
        let desired = desired_acls(&u);
        let hand_made = Acl { operation: 4, ..desired[0].clone() };
        let stored = vec![desired[1].clone(), hand_made.clone()];
        let changes = acl_changes(&desired, &stored);
        assert_eq!(changes.create, vec![desired[0].clone()]);
        assert_eq!(changes.delete, vec![hand_made]);
        assert_eq!(acl_changes(&desired, &desired), AclChanges::default());
        let doubled = [desired.clone(), desired.clone()].concat();
        assert_eq!(distinct(&doubled), 2);
    }

    fn quotas(list: &[(&str, f64)]) -> BTreeMap<String, f64> {
        list.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn the_spec_quotas_are_kafkas_keys_and_none_without_quotas() {
        let mut u = user(json!([]));
        assert_eq!(desired_quotas(&u), BTreeMap::new());
        u.spec.quotas = Some(
            serde_json::from_value(json!({"producerByteRate": 1048576, "requestPercentage": 50,
            "controllerMutationRate": 0.5}))
            .unwrap(),
        );
        assert_eq!(
            desired_quotas(&u),
            quotas(&[
                ("producer_byte_rate", 1048576.0),
                ("request_percentage", 50.0),
                ("controller_mutation_rate", 0.5)
            ])
        );
        assert_eq!(
            quota_summary(&desired_quotas(&u)),
            "client quotas controller_mutation_rate=0.5, producer_byte_rate=1048576, request_percentage=50"
        );
        assert_eq!(quota_summary(&BTreeMap::new()), "no client quotas");
    }

    #[test]
    fn quota_changes_set_what_is_missing_or_different_and_remove_the_rest() {
        let desired = quotas(&[("producer_byte_rate", 1024.0), ("request_percentage", 50.0)]);
        // Nothing stored yet: set every desired key.
        let set = quota_changes(&desired, &BTreeMap::new());
        assert_eq!((set.set.clone(), set.remove.clone()), (desired.clone(), vec![]));
        assert_eq!(
            set.ops(),
            vec![
                ClientQuotaOp { key: "producer_byte_rate".into(), value: 1024.0, remove: false },
                ClientQuotaOp { key: "request_percentage".into(), value: 50.0, remove: false },
            ]
        );
        // A changed value is set again; a key stored by hand (or left out of the spec) is removed.
        let stored =
            quotas(&[("producer_byte_rate", 2048.0), ("request_percentage", 50.0), ("consumer_byte_rate", 1.0)]);
        let change = quota_changes(&desired, &stored);
        assert_eq!(change.set, quotas(&[("producer_byte_rate", 1024.0)]));
        assert_eq!(change.remove, vec!["consumer_byte_rate".to_string()]);
        assert_eq!(change.describe(), "producer_byte_rate=1024 set, consumer_byte_rate removed");
        assert_eq!(
            change.ops()[1],
            ClientQuotaOp { key: "consumer_byte_rate".into(), value: 0.0, remove: true },
            "removals after sets"
        );
        // No quotas wanted: everything stored goes (what the finalizer does).
        let all_gone = quota_changes(&BTreeMap::new(), &stored);
        assert!(all_gone.set.is_empty());
        assert_eq!(all_gone.remove.len(), 3);
        // Already in force: nothing to do.
        let same = quota_changes(&desired, &desired);
        assert!(same.is_empty(), "{same:?}");
        assert_eq!(same, QuotaChanges::default());
        assert!(same.ops().is_empty());
    }

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_differ() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), PASSWORD_LENGTH);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_secret_holds_password_username_and_a_jaas_line_and_is_owned() {
        let u = user(json!([]));
        let s = user_secret(&u, "pa\"ss");
        assert_eq!(s.metadata.name.as_deref(), Some("app-reader"));
        assert_eq!(secret_text(&s, PASSWORD_KEY).as_deref(), Some("pa\"ss"));
        assert_eq!(secret_text(&s, USERNAME_KEY).as_deref(), Some("app-reader"));
        assert_eq!(
            secret_text(&s, JAAS_KEY).as_deref(),
            Some(
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"app-reader\" password=\"pa\\\"ss\";"
            )
        );
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("KafkaUser", "u-1", Some(true)));
    }
}
