//! Who a client is: the principal a connection authenticated as.
//!
//! A connection starts as `User:ANONYMOUS` (Kafka's name for an
//! unauthenticated client) and takes the principal its TLS certificate or SASL
//! exchange establishes. Handlers read it from the request's context to
//! authorize; nothing a client writes in a request body names it.

pub mod access;
pub mod acl;
pub mod authorizer;
pub mod client_tls;
pub mod jaas;
pub mod jwks;
pub mod jwks_fetch;
pub mod oauth;
pub mod principal_rules;
pub mod sasl;
pub mod scram;

use std::fmt;
use std::sync::Arc;

/// Kafka's `KafkaPrincipal`: a type (always `User` for now) and a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The principal type, `User` for every built-in mechanism.
    pub kind: String,
    /// The name: a SASL user name, or the mapped certificate subject.
    pub name: String,
}

impl Principal {
    /// The name Kafka gives an unauthenticated client.
    pub const ANONYMOUS_NAME: &'static str = "ANONYMOUS";

    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> Self {
        Principal { kind: "User".to_string(), name: name.into() }
    }

    /// `User:ANONYMOUS`, shared.
    pub fn anonymous() -> Arc<Principal> {
        Arc::new(Principal::user(Self::ANONYMOUS_NAME))
    }

    /// Whether this is the unauthenticated principal.
    pub fn is_anonymous(&self) -> bool {
        self.kind == "User" && self.name == Self::ANONYMOUS_NAME
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_print_as_kafka_writes_them() {
        assert_eq!(Principal::user("alice").to_string(), "User:alice");
        assert!(Principal::anonymous().is_anonymous());
        assert!(!Principal::user("alice").is_anonymous());
    }
}
