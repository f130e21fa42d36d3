//! Kafka's ACL model as plain data: resource types, pattern types,
//! operations, permissions, the stored [`AclBinding`] and the [`AclFilter`]
//! that DescribeAcls and DeleteAcls match with.
//!
//! Codes are Kafka's wire codes (`ResourceType`, `PatternType`,
//! `AclOperation`, `AclPermissionType` in Apache Kafka's clients), so a
//! binding round-trips through CreateAcls/DescribeAcls unchanged. A binding
//! is validated once, when created ([`AclBinding::parse`]); the image only
//! ever holds valid bindings. Nothing here does I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The wildcard resource name, host and principal name.
pub const WILDCARD: &str = "*";

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $label:literal { $($(#[$vmeta:meta])* $variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant,)*];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)* }
            }

            /// The value of a wire code, if it names one (`UNKNOWN`, 0, does not).
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// Kafka's upper-case name (`PREFIXED`, `DESCRIBE_CONFIGS`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// What kind of value this is, for error messages.
            pub const LABEL: &'static str = $label;
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum!(
    /// What an ACL protects.
    ResourceType, "resource type" {
        /// Filters only: any type.
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        /// The cluster itself, named [`CLUSTER_NAME`].
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

wire_enum!(
    /// How an ACL's resource name matches resources.
    PatternType, "pattern type" {
        /// Filters only: bindings of any pattern type.
        Any = 1, "ANY";
        /// Filters only: bindings that apply to the named resource (literal,
        /// wildcard or prefix).
        Match = 2, "MATCH";
        /// The exact name, or every resource when the name is `*`.
        Literal = 3, "LITERAL";
        /// Every resource whose name starts with the ACL's name.
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// What an ACL allows or denies.
    AclOperation, "operation" {
        /// Filters only: any operation.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

wire_enum!(
    /// Whether an ACL allows or denies.
    AclPermission, "permission type" {
        /// Filters only: either.
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl AclOperation {
    /// Whether an ALLOW of `self` also allows `wanted` (Kafka's implied
    /// operations): ALL allows everything; READ, WRITE, DELETE and ALTER
    /// allow DESCRIBE; ALTER_CONFIGS allows DESCRIBE_CONFIGS.
    pub fn allows(self, wanted: AclOperation) -> bool {
        use AclOperation::*;
        self == wanted
            || self == All
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY of `self` denies `wanted`: the same operation, or ALL.
    pub fn denies(self, wanted: AclOperation) -> bool {
        self == wanted || self == AclOperation::All
    }
}

impl ResourceType {
    /// The operations an ACL on this resource type may name (besides ALL),
    /// as Kafka allows them.
    pub fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => {
                &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe]
            }
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Any => &[],
        }
    }
}

/// One stored ACL: who may or may not do what, on which resources, from where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, DELEGATION_TOKEN or USER.
    pub resource_type: ResourceType,
    /// The resource name, prefix, or `*`.
    pub name: String,
    /// LITERAL or PREFIXED.
    pub pattern: PatternType,
    /// `Type:name`, e.g. `User:alice`, or `User:*` for every user.
    pub principal: String,
    /// A client IP address, or `*`.
    pub host: String,
    /// What is allowed or denied (never ANY).
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: AclPermission,
}

/// The fields of an ACL or filter as they come off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAcl {
    /// Resource type code.
    pub resource_type: i8,
    /// Resource name (a filter may leave it out).
    pub name: Option<String>,
    /// Pattern type code.
    pub pattern: i8,
    /// Principal (a filter may leave it out).
    pub principal: Option<String>,
    /// Host (a filter may leave it out).
    pub host: Option<String>,
    /// Operation code.
    pub operation: i8,
    /// Permission type code.
    pub permission: i8,
}

/// Why an ACL or ACL filter was refused, naming the field, the value and
/// what is allowed. Kafka answers these with INVALID_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A code that names no value, or a value this place does not take.
    #[error("invalid {field} {value}: expected one of {allowed}")]
    InvalidCode { field: &'static str, value: String, allowed: String },
    /// The resource name is empty.
    #[error("invalid resource name ``: the resource name must not be empty")]
    EmptyName,
    /// The CLUSTER resource has one name.
    #[error("invalid resource name `{0}` for resource type CLUSTER: the only cluster resource is `kafka-cluster`")]
    ClusterName(String),
    /// The principal is not `Type:name`.
    #[error("invalid principal `{0}`: expected `Type:name`, such as `User:alice` or `User:*`")]
    Principal(String),
    /// The host is empty.
    #[error("invalid host ``: expected a client IP address or `*`")]
    EmptyHost,
    /// The operation makes no sense on the resource type.
    #[error("operation {operation} does not apply to resource type {resource_type}: expected ALL or one of {allowed}")]
    OperationForResource { operation: AclOperation, resource_type: ResourceType, allowed: String },
}

/// The value of `code`, if it is one of `allowed`.
fn pick<T: Copy + PartialEq + fmt::Display>(
    field: &'static str,
    code: i8,
    decode: impl Fn(i8) -> Option<T>,
    allowed: &[T],
) -> Result<T, AclError> {
    decode(code).filter(|v| allowed.contains(v)).ok_or_else(|| AclError::InvalidCode {
        field,
        value: decode(code).map(|v| v.to_string()).unwrap_or_else(|| format!("code {code}")),
        allowed: allowed.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "),
    })
}

/// Whether `principal` has Kafka's `Type:name` form.
pub fn valid_principal(principal: &str) -> bool {
    principal.split_once(':').is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty())
}

impl AclBinding {
    /// A binding CreateAcls may store, or why not.
    pub fn parse(raw: &RawAcl) -> Result<AclBinding, AclError> {
        use ResourceType as R;
        let resource_type = pick(
            "resource type",
            raw.resource_type,
            ResourceType::from_code,
            &[R::Topic, R::Group, R::Cluster, R::TransactionalId, R::DelegationToken, R::User],
        )?;
        let pattern =
            pick("pattern type", raw.pattern, PatternType::from_code, &[PatternType::Literal, PatternType::Prefixed])?;
        let concrete_ops: Vec<AclOperation> =
            AclOperation::ALL_VALUES.iter().copied().filter(|o| *o != AclOperation::Any).collect();
        let operation = pick("operation", raw.operation, AclOperation::from_code, &concrete_ops)?;
        let permission = pick(
            "permission type",
            raw.permission,
            AclPermission::from_code,
            &[AclPermission::Allow, AclPermission::Deny],
        )?;
        let name = raw.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if resource_type == R::Cluster && (name != CLUSTER_NAME || pattern != PatternType::Literal) {
            return Err(AclError::ClusterName(name));
        }
        let principal = raw.principal.clone().unwrap_or_default();
        if !valid_principal(&principal) {
            return Err(AclError::Principal(principal));
        }
        let host = raw.host.clone().unwrap_or_default();
        if host.is_empty() {
            return Err(AclError::EmptyHost);
        }
        let ops = resource_type.operations();
        if operation != AclOperation::All && !ops.contains(&operation) {
            return Err(AclError::OperationForResource {
                operation,
                resource_type,
                allowed: ops.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(AclBinding { resource_type, name, pattern, principal, host, operation, permission })
    }

    /// Whether this binding's resource pattern covers the resource `name` of its type.
    pub fn covers(&self, name: &str) -> bool {
        match self.pattern {
            PatternType::Literal => self.name == name || self.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&self.name),
            PatternType::Any | PatternType::Match => false,
        }
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {}:{}:{} from host {} for {}",
            self.permission, self.operation, self.resource_type, self.pattern, self.name, self.host, self.principal
        )
    }
}

/// A DescribeAcls or DeleteAcls filter: which bindings it selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    /// A type, or ANY.
    pub resource_type: ResourceType,
    /// A name, or every name.
    pub name: Option<String>,
    /// LITERAL, PREFIXED, ANY or MATCH.
    pub pattern: PatternType,
    /// A principal, or every principal.
    pub principal: Option<String>,
    /// A host, or every host.
    pub host: Option<String>,
    /// An operation, or ANY.
    pub operation: AclOperation,
    /// A permission, or ANY.
    pub permission: AclPermission,
}

impl AclFilter {
    /// A filter DescribeAcls or DeleteAcls may use, or why not.
    pub fn parse(raw: &RawAcl) -> Result<AclFilter, AclError> {
        Ok(AclFilter {
            resource_type: pick("resource type", raw.resource_type, ResourceType::from_code, ResourceType::ALL_VALUES)?,
            name: raw.name.clone(),
            pattern: pick("pattern type", raw.pattern, PatternType::from_code, PatternType::ALL_VALUES)?,
            principal: raw.principal.clone(),
            host: raw.host.clone(),
            operation: pick("operation", raw.operation, AclOperation::from_code, AclOperation::ALL_VALUES)?,
            permission: pick("permission type", raw.permission, AclPermission::from_code, AclPermission::ALL_VALUES)?,
        })
    }

    /// Whether the filter selects `b` (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, b: &AclBinding) -> bool {
        self.matches_resource(b)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == AclOperation::Any || self.operation == b.operation)
            && (self.permission == AclPermission::Any || self.permission == b.permission)
    }

    fn matches_resource(&self, b: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        match (self.pattern, &self.name) {
            (PatternType::Any | PatternType::Match, None) => true,
            (PatternType::Any, Some(name)) => *name == b.name,
            (PatternType::Match, Some(name)) => b.covers(name),
            (pattern, name) => pattern == b.pattern && name.as_ref().is_none_or(|n| *n == b.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(rt: i8, name: &str, pattern: i8, principal: &str, host: &str, op: i8, perm: i8) -> RawAcl {
        RawAcl {
            resource_type: rt,
            name: Some(name.into()),
            pattern,
            principal: Some(principal.into()),
            host: Some(host.into()),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for op in AclOperation::ALL_VALUES {
            assert_eq!(AclOperation::from_code(op.code()), Some(*op));
        }
        assert_eq!(ResourceType::from_code(0), None);
        assert_eq!(PatternType::from_code(5), None);
        assert_eq!(AclPermission::Allow.code(), 3);
        assert_eq!(ResourceType::TransactionalId.name(), "TRANSACTIONAL_ID");
    }

    #[test]
    fn implied_operations_follow_kafka() {
        use AclOperation::*;
        for op in [Read, Write, Delete, Alter, Describe, All] {
            assert!(op.allows(Describe), "{op} allows DESCRIBE");
        }
        for op in [Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite] {
            assert!(!op.allows(Describe), "{op} does not allow DESCRIBE");
        }
        assert!(AlterConfigs.allows(DescribeConfigs));
        assert!(!DescribeConfigs.allows(AlterConfigs));
        assert!(!Describe.allows(Read));
        assert!(All.allows(IdempotentWrite));
        // A DENY is not widened: denying READ does not deny DESCRIBE.
        assert!(!Read.denies(Describe));
        assert!(All.denies(Describe));
    }

    #[test]
    fn bindings_are_validated_field_by_field() {
        let ok = AclBinding::parse(&raw(2, "orders", 3, "User:alice", "*", 3, 3)).unwrap();
        assert_eq!(
            (ok.resource_type, ok.pattern, ok.operation),
            (ResourceType::Topic, PatternType::Literal, AclOperation::Read)
        );
        let cases: &[(RawAcl, &str)] = &[
            (raw(1, "t", 3, "User:a", "*", 3, 3), "invalid resource type ANY"),
            (raw(9, "t", 3, "User:a", "*", 3, 3), "invalid resource type code 9"),
            (raw(2, "t", 2, "User:a", "*", 3, 3), "invalid pattern type MATCH: expected one of LITERAL, PREFIXED"),
            (raw(2, "t", 3, "User:a", "*", 1, 3), "invalid operation ANY"),
            (raw(2, "t", 3, "User:a", "*", 3, 1), "invalid permission type ANY: expected one of ALLOW, DENY"),
            (raw(2, "", 3, "User:a", "*", 3, 3), "must not be empty"),
            (raw(4, "other", 3, "User:a", "*", 5, 3), "only cluster resource is `kafka-cluster`"),
            (raw(2, "t", 3, "alice", "*", 3, 3), "invalid principal `alice`"),
            (raw(2, "t", 3, "User:", "*", 3, 3), "invalid principal `User:`"),
            (raw(2, "t", 3, "User:a", "", 3, 3), "invalid host"),
            (raw(3, "g", 3, "User:a", "*", 4, 3), "operation WRITE does not apply to resource type GROUP"),
        ];
        for (r, want) in cases {
            let e = AclBinding::parse(r).unwrap_err().to_string();
            assert!(e.contains(want), "{r:?}: `{e}` should contain `{want}`");
        }
    }

    #[test]
    fn filters_match_as_kafka_filters_do() {
        let b = |rt: ResourceType, name: &str, pattern: PatternType| AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        };
        let lit = b(ResourceType::Topic, "orders", PatternType::Literal);
        let star = b(ResourceType::Topic, "*", PatternType::Literal);
        let pre = b(ResourceType::Topic, "ord", PatternType::Prefixed);
        let group = b(ResourceType::Group, "orders", PatternType::Literal);
        let f = |rt, name: Option<&str>, pattern| AclFilter {
            resource_type: rt,
            name: name.map(String::from),
            pattern,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        };
        use PatternType::*;
        use ResourceType::{Any as AnyType, Topic};
        // (filter, [lit, star, pre, group])
        let table = [
            (f(AnyType, None, Any), [true, true, true, true]),
            (f(Topic, None, Any), [true, true, true, false]),
            (f(Topic, Some("orders"), Any), [true, false, false, false]),
            (f(Topic, Some("orders"), Match), [true, true, true, false]),
            (f(Topic, Some("other"), Match), [false, true, false, false]),
            (f(Topic, Some("orders"), Literal), [true, false, false, false]),
            (f(Topic, None, Prefixed), [false, false, true, false]),
            (f(Topic, Some("ord"), Prefixed), [false, false, true, false]),
            (f(AnyType, Some("orders"), Literal), [true, false, false, true]),
        ];
        for (filter, want) in table {
            let got = [&lit, &star, &pre, &group].map(|x| filter.matches(x));
            assert_eq!(got, want, "{filter:?}");
        }
        let mut by_principal = f(AnyType, None, Any);
        by_principal.principal = Some("User:bob".into());
        assert!(!by_principal.matches(&lit));
        let mut by_op = f(AnyType, None, Any);
        by_op.operation = AclOperation::Write;
        assert!(!by_op.matches(&lit));
        let mut by_perm = f(AnyType, None, Any);
        by_perm.permission = AclPermission::Allow;
        assert!(by_perm.matches(&lit));
    }
}
