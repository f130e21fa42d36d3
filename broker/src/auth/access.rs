//! What one request's principal may do: the [`authorizer`](super::authorizer)
//! decision bound to the broker's configuration, the ACLs published when the
//! request arrived, the principal and the client host. Handlers ask it and
//! nothing else; it holds no lock.

use std::sync::Arc;

use super::Principal;
use super::acl::{AclBinding, AclOperation, CLUSTER_NAME, ResourceType};
use super::authorizer::{self, OPERATIONS_NOT_REQUESTED, Requester};
use crate::broker::Broker;
use crate::protocol::codec::RequestContext;

/// One request's authority.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    config: &'a authorizer::AuthorizerConfig,
    acls: Arc<Vec<AclBinding>>,
    principal: Arc<Principal>,
    host: String,
}

impl<'a> Access<'a> {
    /// The authority of the request `ctx` on `broker`.
    pub fn of(broker: &'a Broker, ctx: &RequestContext) -> Access<'a> {
        let acls = if broker.authorizer.enabled { broker.metadata.read().acls() } else { Arc::default() };
        Access {
            config: &broker.authorizer,
            acls,
            principal: ctx.principal.clone(),
            host: ctx.peer.map(|p| p.ip().to_canonical().to_string()).unwrap_or_default(),
        }
    }

    /// The authority of `principal` from `host` under `config` and `acls`
    /// (what [`Access::of`] builds from a request; for tests of the rules).
    pub fn new(
        config: &'a authorizer::AuthorizerConfig,
        acls: Vec<AclBinding>,
        principal: Principal,
        host: &str,
    ) -> Access<'a> {
        Access { config, acls: Arc::new(acls), principal: Arc::new(principal), host: host.to_string() }
    }

    /// Whether an authorizer is configured at all (`authorizer.class.name`).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The stored ACLs this request sees (none when the authorizer is off).
    pub fn acls(&self) -> &[AclBinding] {
        &self.acls
    }

    /// The principal, for log lines.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    fn requester(&self) -> Requester<'_> {
        Requester { principal: &self.principal, host: &self.host }
    }

    /// Whether `operation` on the `resource_type` resource `name` is allowed.
    pub fn allows(&self, resource_type: ResourceType, name: &str, operation: AclOperation) -> bool {
        authorizer::authorize(self.config, &self.acls, self.requester(), resource_type, name, operation)
    }

    /// Whether `operation` on a topic is allowed.
    pub fn topic(&self, name: &str, operation: AclOperation) -> bool {
        self.allows(ResourceType::Topic, name, operation)
    }

    /// Whether `operation` on a group is allowed.
    pub fn group(&self, name: &str, operation: AclOperation) -> bool {
        self.allows(ResourceType::Group, name, operation)
    }

    /// Whether `operation` on the cluster is allowed.
    pub fn cluster(&self, operation: AclOperation) -> bool {
        self.allows(ResourceType::Cluster, CLUSTER_NAME, operation)
    }

    /// Whether `operation` is allowed on at least one resource of the type.
    pub fn any(&self, resource_type: ResourceType, operation: AclOperation) -> bool {
        authorizer::authorize_any(self.config, &self.acls, self.requester(), resource_type, operation)
    }

    /// Kafka's "authorized operations" bit set of a resource, or
    /// [`OPERATIONS_NOT_REQUESTED`] when the client did not ask.
    pub fn operations(&self, requested: bool, resource_type: ResourceType, name: &str) -> i32 {
        if !requested {
            return OPERATIONS_NOT_REQUESTED;
        }
        authorizer::authorized_operations(self.config, &self.acls, self.requester(), resource_type, name)
    }
}
