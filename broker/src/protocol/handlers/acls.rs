//! CreateAcls, DescribeAcls and DeleteAcls (what `kafka-acls.sh --add`,
//! `--list` and `--remove` send). ACLs are controller metadata: changes go
//! through the admin door and are answered once this broker has published
//! them. The APIs need ALTER (create, delete) or DESCRIBE (describe) on the
//! CLUSTER; without an authorizer they answer SECURITY_DISABLED, as Kafka does.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::admin::{self, Change};
use crate::auth::access::Access;
use crate::auth::acl::{AclBinding, AclFilter, AclOperation, PatternType, RawAcl, ResourceType};
use crate::broker::Broker;
use crate::controller::image::Outcome;
use crate::log_lines::LineLimit;
use crate::protocol::errors::KafkaError;

/// ACL changes, logged a few a second at most.
static ACL_CHANGE_LOG: LineLimit = LineLimit::new(10);

const NO_AUTHORIZER: &str = "no authorizer is configured on this broker (set authorizer.class.name)";

/// Why a whole ACL request is refused before any entry is looked at.
fn refusal(access: &Access<'_>, operation: AclOperation) -> Option<(ResponseError, String)> {
    if !access.enabled() {
        return Some((ResponseError::SecurityDisabled, NO_AUTHORIZER.to_string()));
    }
    if !access.cluster(operation) {
        return Some((
            ResponseError::ClusterAuthorizationFailed,
            format!("{} may not {operation} the cluster's ACLs", access.principal()),
        ));
    }
    None
}

fn text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// CreateAcls: each creation is validated on its own; the valid ones are
/// stored in one controller command.
pub async fn create(broker: &Broker, access: &Access<'_>, request: CreateAclsRequest) -> CreateAclsResponse {
    let result = |e: ResponseError, message: String| {
        AclCreationResult::default().with_error_code(e.code()).with_error_message(Some(str_bytes(message)))
    };
    if let Some((e, message)) = refusal(access, AclOperation::Alter) {
        let results = request.creations.iter().map(|_| result(e, message.clone())).collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let parsed: Vec<_> = request
        .creations
        .iter()
        .map(|c| {
            AclBinding::parse(&RawAcl {
                resource_type: c.resource_type,
                name: Some(c.resource_name.to_string()),
                pattern: c.resource_pattern_type,
                principal: Some(c.principal.to_string()),
                host: Some(c.host.to_string()),
                operation: c.operation,
                permission: c.permission_type,
            })
        })
        .collect();
    let bindings: Vec<AclBinding> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let count = bindings.len();
    let stored = if bindings.is_empty() {
        Ok(())
    } else {
        admin::apply(broker, Change::CreateAcls { bindings }, false).await.map(|_| ())
    };
    if count > 0
        && stored.is_ok()
        && let Some(left_out) = ACL_CHANGE_LOG.admit()
    {
        tracing::info!(principal = %access.principal(), acls = count, left_out_since_last_line = left_out, "created ACLs");
    }
    let results = parsed
        .into_iter()
        .map(|p| match (p, &stored) {
            (Err(e), _) => result(ResponseError::InvalidRequest, e.to_string()),
            (Ok(_), Ok(())) => AclCreationResult::default(),
            (Ok(_), Err(e)) => {
                let k = KafkaError::from(e);
                result(k.error, k.message)
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// DescribeAcls: the stored ACLs the filter matches, grouped by resource pattern.
pub fn describe(access: &Access<'_>, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let error = |e: ResponseError, message: String| {
        DescribeAclsResponse::default().with_error_code(e.code()).with_error_message(Some(str_bytes(message)))
    };
    if let Some((e, message)) = refusal(access, AclOperation::Describe) {
        return error(e, message);
    }
    let filter = match AclFilter::parse(&RawAcl {
        resource_type: request.resource_type_filter,
        name: text(&request.resource_name_filter),
        pattern: request.pattern_type_filter,
        principal: text(&request.principal_filter),
        host: text(&request.host_filter),
        operation: request.operation,
        permission: request.permission_type,
    }) {
        Ok(f) => f,
        Err(e) => return error(ResponseError::InvalidRequest, e.to_string()),
    };
    let mut by_resource: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> = BTreeMap::new();
    for b in access.acls().iter().filter(|b| filter.matches(b)) {
        by_resource.entry((b.resource_type, b.name.clone(), b.pattern)).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(b.principal.clone()))
                .with_host(str_bytes(b.host.clone()))
                .with_operation(b.operation.code())
                .with_permission_type(b.permission.code()),
        );
    }
    let resources = by_resource
        .into_iter()
        .map(|((rt, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt.code())
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern.code())
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

/// DeleteAcls: every filter is validated; the valid ones remove, in one
/// controller command, every ACL they match, and each answers with what it matched.
pub async fn delete(broker: &Broker, access: &Access<'_>, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let result = |e: ResponseError, message: String| {
        DeleteAclsFilterResult::default().with_error_code(e.code()).with_error_message(Some(str_bytes(message)))
    };
    if let Some((e, message)) = refusal(access, AclOperation::Alter) {
        let results = request.filters.iter().map(|_| result(e, message.clone())).collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let parsed: Vec<_> = request
        .filters
        .iter()
        .map(|f| {
            AclFilter::parse(&RawAcl {
                resource_type: f.resource_type_filter,
                name: text(&f.resource_name_filter),
                pattern: f.pattern_type_filter,
                principal: text(&f.principal_filter),
                host: text(&f.host_filter),
                operation: f.operation,
                permission: f.permission_type,
            })
        })
        .collect();
    let filters: Vec<AclFilter> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let deleted = if filters.is_empty() {
        Ok(Vec::new())
    } else {
        match admin::apply(broker, Change::DeleteAcls { filters }, false).await {
            Ok(applied) => match applied.outcome {
                Outcome::AclsDeleted { per_filter } => {
                    let count: usize = per_filter.iter().map(Vec::len).sum();
                    if let Some(left_out) = ACL_CHANGE_LOG.admit() {
                        tracing::info!(principal = %access.principal(), acls = count, left_out_since_last_line = left_out, "deleted ACLs");
                    }
                    Ok(per_filter)
                }
                _ => Ok(Vec::new()),
            },
            Err(e) => Err(KafkaError::from(&e)),
        }
    };
    let mut matched = match &deleted {
        Ok(per_filter) => per_filter.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = parsed
        .into_iter()
        .map(|p| match (p, &deleted) {
            (Err(e), _) => result(ResponseError::InvalidRequest, e.to_string()),
            (Ok(_), Err(k)) => result(k.error, k.message.clone()),
            (Ok(_), Ok(_)) => {
                let acls = matched.next().unwrap_or_default().into_iter().map(matching_acl).collect();
                DeleteAclsFilterResult::default().with_matching_acls(acls)
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

fn matching_acl(b: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type.code())
        .with_resource_name(str_bytes(b.name))
        .with_pattern_type(b.pattern.code())
        .with_principal(str_bytes(b.principal))
        .with_host(str_bytes(b.host))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission.code())
}
