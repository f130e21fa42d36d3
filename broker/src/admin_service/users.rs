//! Client users over the `Admin` service: SCRAM credentials and ACLs, what
//! the operator's KafkaUser reconciler drives.
//!
//! Only the operator may call these ([`operator_only`]): a caller must hold
//! the operator's certificate of the cluster CA, so a password crosses only
//! the mutual-TLS internal plane (an insecure plane refuses them). The
//! broker salts and hashes the password itself with a fresh random salt;
//! an upsert of the password already stored changes nothing (no controller
//! command), so the operator may send it on every reconcile.
//!
//! Changes go through [`crate::admin::apply`] like Kafka's
//! AlterUserScramCredentials, CreateAcls and DeleteAcls, after the same
//! checks: iterations within Kafka's bounds, a SCRAM mechanism, a non-empty
//! name; [`AclBinding::parse`] for every ACL; CreateAcls refused without an
//! authorizer (SECURITY_DISABLED). Never logs a password.

use kafka_protocol::error::ResponseError;
use strom_proto::admin::{
    Acl, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DeleteScramCredentialRequest,
    DeleteScramCredentialResponse, DescribeUserRequest, DescribeUserResponse, UpsertScramCredentialRequest,
    UpsertScramCredentialResponse,
};
use tonic::{Request, Status};

use super::{AdminService, answer_fields};
use crate::admin::Change;
use crate::auth::acl::{AclBinding, AclFilter, RawAcl};
use crate::auth::scram::{MAX_ITERATIONS, MIN_ITERATIONS, ScramCredential};
use crate::config::listeners::Mechanism;
use crate::controller::image::Outcome;
use crate::protocol::errors::KafkaError;
use crate::tls::{Caller, Identity};

/// Salt length of the credentials made here, in bytes.
const SALT_LEN: usize = 32;

/// Admits only the operator's certificate: brokers, unidentified
/// certificates and an insecure plane are refused.
#[allow(clippy::result_large_err)] // tonic's Status
pub fn operator_only<T>(request: &Request<T>) -> Result<(), Status> {
    match crate::tls::caller(request) {
        Caller::Authenticated(Identity::Operator) => Ok(()),
        Caller::Authenticated(other) => {
            Err(Status::permission_denied(format!("users and ACLs are managed by the operator only, not {other}")))
        }
        Caller::Unidentified(reason) => {
            Err(Status::permission_denied(format!("users and ACLs are managed by the operator only: {reason}")))
        }
        Caller::Insecure => Err(Status::failed_precondition(
            "users and ACLs are managed only over the mutual-TLS internal plane; this broker's internal listener is insecure",
        )),
    }
}

fn error(code: ResponseError, message: impl Into<String>) -> KafkaError {
    KafkaError::new(code, message)
}

/// The SCRAM mechanism named `name`, or UNSUPPORTED_SASL_MECHANISM.
fn scram_mechanism(name: &str) -> Result<Mechanism, KafkaError> {
    match Mechanism::parse(name) {
        Some(m @ (Mechanism::ScramSha256 | Mechanism::ScramSha512)) => Ok(m),
        _ => Err(error(
            ResponseError::UnsupportedSaslMechanism,
            format!("mechanism `{name}` is not a SCRAM mechanism: expected SCRAM-SHA-256 or SCRAM-SHA-512"),
        )),
    }
}

/// The credential an upsert asks for, checked as AlterUserScramCredentials
/// checks a client's (`salt` is the fresh random salt to use).
pub fn credential_of(
    request: &UpsertScramCredentialRequest,
    salt: &[u8],
) -> Result<(Mechanism, ScramCredential), KafkaError> {
    let unacceptable = |m: String| error(ResponseError::UnacceptableCredential, m);
    if request.user.is_empty() {
        return Err(unacceptable("Username must not be empty".into()));
    }
    let mechanism = scram_mechanism(&request.mechanism)?;
    let iterations = if request.iterations == 0 { MIN_ITERATIONS } else { request.iterations };
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(unacceptable(format!(
            "iterations {iterations}: expected {MIN_ITERATIONS} to {MAX_ITERATIONS} (0 for {MIN_ITERATIONS})"
        )));
    }
    if request.password.is_empty() {
        return Err(unacceptable("the password must not be empty".into()));
    }
    let credential = ScramCredential::from_password(mechanism, &request.password, salt, iterations)
        .ok_or_else(|| unacceptable(format!("cannot derive a {} credential", mechanism.name())))?;
    Ok((mechanism, credential))
}

/// An ACL of the gRPC API as Kafka's wire fields.
fn raw(acl: &Acl) -> RawAcl {
    let code = |v: i32| i8::try_from(v).unwrap_or(i8::MIN);
    RawAcl {
        resource_type: code(acl.resource_type),
        name: Some(acl.resource_name.clone()),
        pattern: code(acl.pattern_type),
        principal: Some(acl.principal.clone()),
        host: Some(acl.host.clone()),
        operation: code(acl.operation),
        permission: code(acl.permission),
    }
}

/// A stored binding as an ACL of the gRPC API.
pub fn acl_of(b: &AclBinding) -> Acl {
    Acl {
        resource_type: b.resource_type.code().into(),
        resource_name: b.name.clone(),
        pattern_type: b.pattern.code().into(),
        principal: b.principal.clone(),
        host: b.host.clone(),
        operation: b.operation.code().into(),
        permission: b.permission.code().into(),
    }
}

/// Every ACL parsed by Kafka's CreateAcls rules, or the first refusal naming its index.
pub fn bindings(acls: &[Acl]) -> Result<Vec<AclBinding>, KafkaError> {
    acls.iter()
        .enumerate()
        .map(|(i, acl)| {
            AclBinding::parse(&raw(acl)).map_err(|e| error(ResponseError::InvalidRequest, format!("acls[{i}]: {e}")))
        })
        .collect()
}

/// The filter that selects exactly `b`.
fn exact_filter(b: &AclBinding) -> AclFilter {
    AclFilter {
        resource_type: b.resource_type,
        name: Some(b.name.clone()),
        pattern: b.pattern,
        principal: Some(b.principal.clone()),
        host: Some(b.host.clone()),
        operation: b.operation,
        permission: b.permission,
    }
}

impl AdminService {
    pub(super) async fn upsert_scram(
        &self,
        request: Request<UpsertScramCredentialRequest>,
    ) -> Result<UpsertScramCredentialResponse, Status> {
        operator_only(&request)?;
        let request = request.into_inner();
        let mut salt = [0u8; SALT_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| Status::internal("no randomness for a SCRAM salt"))?;
        let refused = |e: KafkaError| UpsertScramCredentialResponse {
            error_code: e.code().into(),
            error_message: e.message,
            changed: false,
        };
        let stored = scram_mechanism(&request.mechanism)
            .ok()
            .and_then(|m| self.broker.metadata.read().scram_credential(&request.user, m));
        // PBKDF2 is CPU work (twice with a stored credential): off the reactor.
        let (request, derived, unchanged) = tokio::task::spawn_blocking(move || {
            let derived = credential_of(&request, &salt);
            let unchanged = match (&derived, &stored) {
                (Ok((m, _)), Some(c)) => c.matches_password(*m, &request.password),
                _ => false,
            };
            (request, derived, unchanged)
        })
        .await
        .map_err(|e| Status::internal(format!("deriving the SCRAM credential failed: {e}")))?;
        let (mechanism, credential) = match derived {
            Ok(c) => c,
            Err(e) => return Ok(refused(e)),
        };
        if unchanged {
            return Ok(UpsertScramCredentialResponse::default());
        }
        let upserts = vec![(request.user, mechanism.name().to_string(), credential)];
        let change = Change::AlterScramCredentials { upserts, deletions: Vec::new() };
        let (error_code, error_message) = answer_fields(self.apply(change, false).await?);
        Ok(UpsertScramCredentialResponse { error_code, error_message, changed: error_code == 0 })
    }

    pub(super) async fn delete_scram(
        &self,
        request: Request<DeleteScramCredentialRequest>,
    ) -> Result<DeleteScramCredentialResponse, Status> {
        operator_only(&request)?;
        let request = request.into_inner();
        let mechanism = match scram_mechanism(&request.mechanism) {
            Ok(m) => m,
            Err(e) => {
                return Ok(DeleteScramCredentialResponse {
                    error_code: e.code().into(),
                    error_message: e.message,
                    deleted: false,
                });
            }
        };
        if self.broker.metadata.read().scram_credential(&request.user, mechanism).is_none() {
            return Ok(DeleteScramCredentialResponse::default());
        }
        let deletions = vec![(request.user, mechanism.name().to_string())];
        let change = Change::AlterScramCredentials { upserts: Vec::new(), deletions };
        let (error_code, error_message) = answer_fields(self.apply(change, false).await?);
        Ok(DeleteScramCredentialResponse { error_code, error_message, deleted: error_code == 0 })
    }

    pub(super) fn describe_one_user(
        &self,
        request: Request<DescribeUserRequest>,
    ) -> Result<DescribeUserResponse, Status> {
        operator_only(&request)?;
        let user = request.into_inner().user;
        let principal = format!("User:{user}");
        let metadata = self.broker.metadata.read();
        let scram_mechanisms = metadata
            .scram_users()
            .filter(|(name, _)| *name == user)
            .flat_map(|(_, mechanisms)| mechanisms.into_iter().map(|(m, _)| m.to_string()))
            .collect();
        let acls = metadata.acls().iter().filter(|b| b.principal == principal).map(acl_of).collect();
        Ok(DescribeUserResponse { scram_mechanisms, acls })
    }

    pub(super) async fn store_acls(&self, request: Request<CreateAclsRequest>) -> Result<CreateAclsResponse, Status> {
        operator_only(&request)?;
        let refused = |e: KafkaError| CreateAclsResponse { error_code: e.code().into(), error_message: e.message };
        if !self.broker.authorizer.enabled {
            return Ok(refused(error(
                ResponseError::SecurityDisabled,
                "no authorizer is configured on this cluster's brokers: set authorizer.class.name \
                 (org.apache.kafka.metadata.authorizer.StandardAuthorizer) in the cluster's config",
            )));
        }
        let bindings = match bindings(&request.into_inner().acls) {
            Ok(b) if b.is_empty() => return Ok(CreateAclsResponse::default()),
            Ok(b) => b,
            Err(e) => return Ok(refused(e)),
        };
        let (error_code, error_message) = answer_fields(self.apply(Change::CreateAcls { bindings }, false).await?);
        Ok(CreateAclsResponse { error_code, error_message })
    }

    pub(super) async fn remove_acls(&self, request: Request<DeleteAclsRequest>) -> Result<DeleteAclsResponse, Status> {
        operator_only(&request)?;
        let refused =
            |e: KafkaError| DeleteAclsResponse { error_code: e.code().into(), error_message: e.message, deleted: 0 };
        let filters: Vec<AclFilter> = match bindings(&request.into_inner().acls) {
            Ok(b) if b.is_empty() => return Ok(DeleteAclsResponse::default()),
            Ok(b) => b.iter().map(exact_filter).collect(),
            Err(e) => return Ok(refused(e)),
        };
        match self.apply(Change::DeleteAcls { filters }, false).await? {
            Ok(applied) => {
                let deleted = match applied.outcome {
                    Outcome::AclsDeleted { per_filter } => per_filter.iter().map(Vec::len).sum::<usize>(),
                    _ => 0,
                };
                Ok(DeleteAclsResponse { deleted: i32::try_from(deleted).unwrap_or(i32::MAX), ..Default::default() })
            }
            Err(e) => Ok(refused(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::{PatternType, ResourceType};

    fn upsert(user: &str, mechanism: &str, password: &str, iterations: i32) -> UpsertScramCredentialRequest {
        UpsertScramCredentialRequest {
            user: user.into(),
            mechanism: mechanism.into(),
            password: password.into(),
            iterations,
        }
    }

    fn from(identity: Result<Identity, String>) -> Request<()> {
        let mut request = Request::new(());
        request.extensions_mut().insert(crate::tls::PeerInfo { remote: None, identity });
        request
    }

    #[test]
    fn only_the_operators_certificate_may_manage_users() {
        assert!(operator_only(&from(Ok(Identity::Operator))).is_ok());
        let broker = operator_only(&from(Ok(Identity::Broker(1)))).unwrap_err();
        assert_eq!(broker.code(), tonic::Code::PermissionDenied);
        assert!(broker.message().contains("strom://broker/1"), "{}", broker.message());
        let unnamed = operator_only(&from(Err("no URI SAN".into()))).unwrap_err();
        assert_eq!(unnamed.code(), tonic::Code::PermissionDenied);
        let insecure = operator_only(&Request::new(())).unwrap_err();
        assert_eq!(insecure.code(), tonic::Code::FailedPrecondition, "a password never crosses a plain plane");
    }

    #[test]
    fn credentials_are_checked_as_kafka_checks_a_clients() {
        let salt = [7u8; SALT_LEN];
        let (m, c) = credential_of(&upsert("alice", "SCRAM-SHA-512", "s3cret", 0), &salt).unwrap();
        assert_eq!((m, c.iterations), (Mechanism::ScramSha512, MIN_ITERATIONS));
        assert!(c.matches_password(m, "s3cret"));
        let code = |r: UpsertScramCredentialRequest| credential_of(&r, &salt).unwrap_err().error;
        assert_eq!(code(upsert("", "SCRAM-SHA-512", "x", 0)), ResponseError::UnacceptableCredential);
        assert_eq!(code(upsert("a", "SCRAM-SHA-512", "x", 100)), ResponseError::UnacceptableCredential);
        assert_eq!(code(upsert("a", "SCRAM-SHA-512", "x", 20000)), ResponseError::UnacceptableCredential);
        assert_eq!(code(upsert("a", "SCRAM-SHA-512", "", 0)), ResponseError::UnacceptableCredential);
        assert_eq!(code(upsert("a", "PLAIN", "x", 0)), ResponseError::UnsupportedSaslMechanism);
    }

    #[test]
    fn acls_are_parsed_by_kafkas_rules_and_name_the_refused_index() {
        let good = Acl {
            resource_type: ResourceType::Topic.code().into(),
            resource_name: "orders".into(),
            pattern_type: PatternType::Literal.code().into(),
            principal: "User:alice".into(),
            host: "*".into(),
            operation: 4,
            permission: 3,
        };
        let parsed = bindings(std::slice::from_ref(&good)).unwrap();
        assert_eq!(acl_of(&parsed[0]), good, "round trip");
        let write_on_group = Acl { resource_type: ResourceType::Group.code().into(), ..good.clone() };
        let e = bindings(&[good.clone(), write_on_group]).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidRequest);
        assert!(
            e.message.starts_with("acls[1]: operation WRITE does not apply to resource type GROUP"),
            "{}",
            e.message
        );
        let huge_code = Acl { operation: 1000, ..good };
        assert!(bindings(&[huge_code]).is_err(), "an out-of-range code is refused, not truncated");
    }
}
