//! The authorization decision, as Kafka's `StandardAuthorizer` makes it:
//! pure, over the configuration ([`AuthorizerConfig`]) and the stored ACLs.
//!
//! For a principal, a client host and an action (operation on a named
//! resource):
//! 1. the authorizer off (`authorizer.class.name` empty): allowed;
//! 2. a `super.users` principal: allowed;
//! 3. the ACLs whose resource pattern covers the resource (literal name,
//!    literal `*`, or a prefix of the name) and whose principal (the same,
//!    or `User:*`) and host (the same IP, or `*`) match: any DENY of the
//!    operation (or ALL) denies; else any ALLOW of it (or of an operation
//!    implying it, see [`AclOperation::allows`]) allows;
//! 4. no ACL on the resource at all, for anyone:
//!    `allow.everyone.if.no.acl.found`; else denied.

use crate::auth::Principal;
use crate::auth::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType, WILDCARD};
use crate::config::Settings;

/// Kafka's authorizer class names that turn the ACL authorizer on.
pub const AUTHORIZER_CLASS_NAMES: &[&str] =
    &["org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer"];

/// Bit set of [`AclOperation`] codes Kafka returns for "authorized operations"
/// when the client did not ask for them.
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// How the broker authorizes, from its settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `authorizer.class.name` names an ACL authorizer.
    pub enabled: bool,
    /// `super.users`: principals allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

impl AuthorizerConfig {
    /// The configuration in `settings` (already validated).
    pub fn from_settings(settings: &Settings) -> AuthorizerConfig {
        AuthorizerConfig {
            enabled: !settings.get("authorizer.class.name").trim().is_empty(),
            super_users: parse_super_users(settings.get("super.users")),
            allow_if_no_acl: settings.bool("allow.everyone.if.no.acl.found"),
        }
    }
}

/// `super.users`: principals separated by semicolons.
pub fn parse_super_users(value: &str) -> Vec<String> {
    value.split(';').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()
}

/// Who asks, from where.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// The authenticated principal.
    pub principal: &'a Principal,
    /// The client's IP address as text.
    pub host: &'a str,
}

impl Requester<'_> {
    fn principal_matches(&self, acl_principal: &str) -> bool {
        match acl_principal.split_once(':') {
            Some((kind, name)) => kind == self.principal.kind && (name == self.principal.name || name == WILDCARD),
            None => false,
        }
    }

    fn matches(&self, acl: &AclBinding) -> bool {
        self.principal_matches(&acl.principal) && (acl.host == WILDCARD || acl.host == self.host)
    }
}

/// Whether `who` may perform `operation` on the resource `name` of `resource_type`.
pub fn authorize(
    config: &AuthorizerConfig,
    acls: &[AclBinding],
    who: Requester<'_>,
    resource_type: ResourceType,
    name: &str,
    operation: AclOperation,
) -> bool {
    if !config.enabled || is_super_user(config, who.principal) {
        return true;
    }
    let mut any_on_resource = false;
    let mut allowed = false;
    for acl in acls.iter().filter(|a| a.resource_type == resource_type && a.covers(name)) {
        any_on_resource = true;
        if !who.matches(acl) {
            continue;
        }
        match acl.permission {
            AclPermission::Deny if acl.operation.denies(operation) => return false,
            AclPermission::Allow if acl.operation.allows(operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any_on_resource && config.allow_if_no_acl)
}

/// Whether `who` may perform `operation` on at least one resource of
/// `resource_type` (Kafka's `authorizeByResourceType`, used by InitProducerId:
/// WRITE on any topic): an ALLOW on some pattern that no DENY of the same
/// principal covers.
pub fn authorize_any(
    config: &AuthorizerConfig,
    acls: &[AclBinding],
    who: Requester<'_>,
    resource_type: ResourceType,
    operation: AclOperation,
) -> bool {
    // As Kafka: a resource no ACL covers (Kafka probes one named "hardcode")
    // answers for super users and `allow.everyone.if.no.acl.found`.
    if authorize(config, acls, who, resource_type, "hardcode", operation) {
        return true;
    }
    let of_type: Vec<&AclBinding> = acls.iter().filter(|a| a.resource_type == resource_type).collect();
    let mine = || of_type.iter().copied().filter(|a| who.matches(a));
    let denies: Vec<&AclBinding> =
        mine().filter(|a| a.permission == AclPermission::Deny && a.operation.denies(operation)).collect();
    let denied = |allow: &AclBinding| {
        denies.iter().any(|d| match (d.pattern, allow.pattern) {
            (PatternType::Literal, _) if d.name == WILDCARD => true,
            (PatternType::Literal, PatternType::Literal) => d.name == allow.name,
            (PatternType::Prefixed, _) => allow.name.starts_with(&d.name),
            _ => false,
        })
    };
    mine().filter(|a| a.permission == AclPermission::Allow && a.operation.allows(operation)).any(|a| !denied(a))
}

/// The operations on `name` that `who` may perform, as Kafka's bit set
/// (bit `code` set for each allowed operation the resource type takes).
pub fn authorized_operations(
    config: &AuthorizerConfig,
    acls: &[AclBinding],
    who: Requester<'_>,
    resource_type: ResourceType,
    name: &str,
) -> i32 {
    resource_type
        .operations()
        .iter()
        .filter(|op| authorize(config, acls, who, resource_type, name, **op))
        .fold(0, |bits, op| bits | (1 << op.code()))
}

fn is_super_user(config: &AuthorizerConfig, principal: &Principal) -> bool {
    !config.super_users.is_empty() && {
        let me = principal.to_string();
        config.super_users.contains(&me)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclOperation::*;
    use AclPermission::{Allow, Deny};
    use PatternType::{Literal, Prefixed};
    use ResourceType::{Cluster, Group, Topic};

    fn acl(
        rt: ResourceType,
        name: &str,
        pattern: PatternType,
        who: &str,
        host: &str,
        op: AclOperation,
        perm: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern,
            principal: who.into(),
            host: host.into(),
            operation: op,
            permission: perm,
        }
    }

    fn on() -> AuthorizerConfig {
        AuthorizerConfig { enabled: true, super_users: vec![], allow_if_no_acl: false }
    }

    /// One decision: (case, config, ACLs, principal name, host, resource, name, operation, expected).
    struct Case {
        what: &'static str,
        config: AuthorizerConfig,
        acls: Vec<AclBinding>,
        user: &'static str,
        host: &'static str,
        resource: (ResourceType, &'static str),
        op: AclOperation,
        allowed: bool,
    }

    fn case(
        what: &'static str,
        acls: Vec<AclBinding>,
        resource: (ResourceType, &'static str),
        op: AclOperation,
        allowed: bool,
    ) -> Case {
        Case { what, config: on(), acls, user: "alice", host: "10.0.0.1", resource, op, allowed }
    }

    #[test]
    fn decisions_follow_kafka() {
        let alice = "User:alice";
        let cases = vec![
            Case {
                config: AuthorizerConfig::default(),
                ..case("authorizer off: everything allowed", vec![], (Topic, "t"), Write, true)
            },
            case("no ACL, allow.everyone false: denied", vec![], (Topic, "t"), Read, false),
            Case {
                config: AuthorizerConfig { allow_if_no_acl: true, ..on() },
                ..case("no ACL, allow.everyone true: allowed", vec![], (Topic, "t"), Read, true)
            },
            Case {
                config: AuthorizerConfig { allow_if_no_acl: true, ..on() },
                ..case(
                    "allow.everyone only applies to resources without any ACL",
                    vec![acl(Topic, "t", Literal, "User:bob", "*", Read, Allow)],
                    (Topic, "t"),
                    Read,
                    false,
                )
            },
            case("literal allow", vec![acl(Topic, "t", Literal, alice, "*", Read, Allow)], (Topic, "t"), Read, true),
            case(
                "literal allow of another topic",
                vec![acl(Topic, "u", Literal, alice, "*", Read, Allow)],
                (Topic, "t"),
                Read,
                false,
            ),
            case(
                "literal allow of another resource type",
                vec![acl(Group, "t", Literal, alice, "*", Read, Allow)],
                (Topic, "t"),
                Read,
                false,
            ),
            case(
                "literal allow of another operation",
                vec![acl(Topic, "t", Literal, alice, "*", Write, Allow)],
                (Topic, "t"),
                Read,
                false,
            ),
            case(
                "literal allow of another principal",
                vec![acl(Topic, "t", Literal, "User:bob", "*", Read, Allow)],
                (Topic, "t"),
                Read,
                false,
            ),
            case(
                "wildcard principal",
                vec![acl(Topic, "t", Literal, "User:*", "*", Read, Allow)],
                (Topic, "t"),
                Read,
                true,
            ),
            case(
                "wildcard resource",
                vec![acl(Topic, "*", Literal, alice, "*", Read, Allow)],
                (Topic, "anything"),
                Read,
                true,
            ),
            case(
                "prefixed allow covers",
                vec![acl(Topic, "orders-", Prefixed, alice, "*", Write, Allow)],
                (Topic, "orders-eu"),
                Write,
                true,
            ),
            case(
                "prefixed allow does not cover",
                vec![acl(Topic, "orders-", Prefixed, alice, "*", Write, Allow)],
                (Topic, "order"),
                Write,
                false,
            ),
            case(
                "prefixed is not a wildcard",
                vec![acl(Topic, "*", Prefixed, alice, "*", Write, Allow)],
                (Topic, "t"),
                Write,
                false,
            ),
            case(
                "exact host",
                vec![acl(Topic, "t", Literal, alice, "10.0.0.1", Read, Allow)],
                (Topic, "t"),
                Read,
                true,
            ),
            case(
                "other host",
                vec![acl(Topic, "t", Literal, alice, "10.0.0.2", Read, Allow)],
                (Topic, "t"),
                Read,
                false,
            ),
            case(
                "READ implies DESCRIBE",
                vec![acl(Topic, "t", Literal, alice, "*", Read, Allow)],
                (Topic, "t"),
                Describe,
                true,
            ),
            case(
                "WRITE implies DESCRIBE",
                vec![acl(Topic, "t", Literal, alice, "*", Write, Allow)],
                (Topic, "t"),
                Describe,
                true,
            ),
            case(
                "DELETE implies DESCRIBE",
                vec![acl(Topic, "t", Literal, alice, "*", Delete, Allow)],
                (Topic, "t"),
                Describe,
                true,
            ),
            case(
                "ALTER implies DESCRIBE",
                vec![acl(Topic, "t", Literal, alice, "*", Alter, Allow)],
                (Topic, "t"),
                Describe,
                true,
            ),
            case(
                "CREATE does not imply DESCRIBE",
                vec![acl(Topic, "t", Literal, alice, "*", Create, Allow)],
                (Topic, "t"),
                Describe,
                false,
            ),
            case(
                "DESCRIBE does not imply READ",
                vec![acl(Topic, "t", Literal, alice, "*", Describe, Allow)],
                (Topic, "t"),
                Read,
                false,
            ),
            case(
                "ALTER_CONFIGS implies DESCRIBE_CONFIGS",
                vec![acl(Topic, "t", Literal, alice, "*", AlterConfigs, Allow)],
                (Topic, "t"),
                DescribeConfigs,
                true,
            ),
            case(
                "ALL allows anything",
                vec![acl(Cluster, "kafka-cluster", Literal, alice, "*", All, Allow)],
                (Cluster, "kafka-cluster"),
                IdempotentWrite,
                true,
            ),
            case(
                "DENY wins over ALLOW",
                vec![
                    acl(Topic, "t", Literal, alice, "*", Read, Allow),
                    acl(Topic, "t", Literal, alice, "*", Read, Deny),
                ],
                (Topic, "t"),
                Read,
                false,
            ),
            case(
                "prefixed DENY wins over literal ALLOW",
                vec![
                    acl(Topic, "t", Literal, alice, "*", Write, Allow),
                    acl(Topic, "", Prefixed, alice, "*", Write, Deny),
                ],
                (Topic, "t"),
                Write,
                false,
            ),
            case(
                "DENY for everyone wins over ALLOW for alice",
                vec![
                    acl(Topic, "t", Literal, alice, "*", Write, Allow),
                    acl(Topic, "*", Literal, "User:*", "*", Write, Deny),
                ],
                (Topic, "t"),
                Write,
                false,
            ),
            case(
                "DENY ALL denies DESCRIBE",
                vec![
                    acl(Topic, "t", Literal, alice, "*", Read, Allow),
                    acl(Topic, "t", Literal, alice, "*", All, Deny),
                ],
                (Topic, "t"),
                Describe,
                false,
            ),
            case(
                "DENY READ does not deny DESCRIBE allowed by WRITE",
                vec![
                    acl(Topic, "t", Literal, alice, "*", Write, Allow),
                    acl(Topic, "t", Literal, alice, "*", Read, Deny),
                ],
                (Topic, "t"),
                Describe,
                true,
            ),
            case(
                "DENY from another host does not apply",
                vec![
                    acl(Topic, "t", Literal, alice, "*", Read, Allow),
                    acl(Topic, "t", Literal, alice, "10.9.9.9", Read, Deny),
                ],
                (Topic, "t"),
                Read,
                true,
            ),
            Case {
                config: AuthorizerConfig { super_users: vec!["User:admin".into(), "User:alice".into()], ..on() },
                ..case(
                    "super user bypasses even DENY",
                    vec![acl(Topic, "t", Literal, alice, "*", All, Deny)],
                    (Topic, "t"),
                    Delete,
                    true,
                )
            },
            Case {
                config: AuthorizerConfig { super_users: vec!["User:admin".into()], ..on() },
                ..case("another super user does not help", vec![], (Topic, "t"), Read, false)
            },
        ];
        for c in cases {
            let principal = Principal::user(c.user);
            let who = Requester { principal: &principal, host: c.host };
            let got = authorize(&c.config, &c.acls, who, c.resource.0, c.resource.1, c.op);
            assert_eq!(got, c.allowed, "{}", c.what);
        }
    }

    #[test]
    fn any_resource_of_a_type_for_idempotent_producers() {
        let alice = Principal::user("alice");
        let who = Requester { principal: &alice, host: "10.0.0.1" };
        let any = |acls: &[AclBinding]| authorize_any(&on(), acls, who, Topic, Write);
        assert!(!any(&[]));
        assert!(any(&[acl(Topic, "t", Literal, "User:alice", "*", Write, Allow)]));
        assert!(any(&[acl(Topic, "p-", Prefixed, "User:*", "*", All, Allow)]));
        assert!(!any(&[acl(Topic, "t", Literal, "User:alice", "*", Read, Allow)]));
        assert!(!any(&[acl(Topic, "t", Literal, "User:bob", "*", Write, Allow)]));
        let denied_all = [
            acl(Topic, "t", Literal, "User:alice", "*", Write, Allow),
            acl(Topic, "*", Literal, "User:alice", "*", Write, Deny),
        ];
        assert!(!any(&denied_all));
        let denied_by_prefix = [
            acl(Topic, "team-a", Literal, "User:alice", "*", Write, Allow),
            acl(Topic, "team-", Prefixed, "User:alice", "*", Write, Deny),
        ];
        assert!(!any(&denied_by_prefix));
        let one_left = [
            acl(Topic, "team-a", Literal, "User:alice", "*", Write, Allow),
            acl(Topic, "x", Literal, "User:alice", "*", Write, Allow),
            acl(Topic, "team-", Prefixed, "User:alice", "*", Write, Deny),
        ];
        assert!(any(&one_left));
        let allow_everyone = AuthorizerConfig { allow_if_no_acl: true, ..on() };
        let any_with = |config: &AuthorizerConfig, acls: &[AclBinding]| authorize_any(config, acls, who, Topic, Write);
        assert!(any_with(&allow_everyone, &[acl(Group, "g", Literal, "User:bob", "*", Read, Allow)]));
        // Kafka's rule: some topic without any ACL exists, so allow.everyone answers ...
        assert!(any_with(&allow_everyone, &[acl(Topic, "t", Literal, "User:bob", "*", Write, Allow)]));
        // ... unless an ACL covers every topic.
        assert!(!any_with(&allow_everyone, &[acl(Topic, "*", Literal, "User:bob", "*", Write, Allow)]));
        let admin = AuthorizerConfig { super_users: vec!["User:alice".into()], ..on() };
        assert!(any_with(&admin, &[acl(Topic, "*", Literal, "User:alice", "*", All, Deny)]));
    }

    #[test]
    fn authorized_operations_are_a_bit_set_of_codes() {
        let alice = Principal::user("alice");
        let who = Requester { principal: &alice, host: "h" };
        let acls = [acl(Cluster, "kafka-cluster", Literal, "User:alice", "*", Alter, Allow)];
        let bits = authorized_operations(&on(), &acls, who, Cluster, "kafka-cluster");
        assert_eq!(bits, (1 << Alter.code()) | (1 << Describe.code()));
    }

    #[test]
    fn super_users_are_semicolon_separated() {
        assert_eq!(parse_super_users(" User:a ; User:b;"), vec!["User:a".to_string(), "User:b".to_string()]);
        assert!(parse_super_users("").is_empty());
    }
}
