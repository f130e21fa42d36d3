//! Client quotas of one user over the `Admin` service: what the operator's
//! KafkaUser reconciler drives (`spec.quotas`).
//!
//! The entity is always `user=<name>`: never the default user, never a
//! user and client-id pair. An alteration is parsed by
//! [`parse_alteration`], the parser of Kafka's AlterClientQuotas, and
//! applied by [`admin::alter_client_quotas`], its door: the same rules, the
//! same refusals (INVALID_REQUEST naming the key, the value and what is
//! allowed), the same controller command, answered once this broker has
//! published it. Describe reads the quotas this broker enforces.
//!
//! Only the operator may call these ([`operator_only`]), like the
//! credentials and ACLs of users. Must never: check a quota by rules of its
//! own, or write anything but through the admin door.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use strom_proto::admin::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use tonic::{Request, Status};

use super::users::operator_only;
use super::{AdminService, answer};
use crate::admin;
use crate::protocol::errors::KafkaError;
use crate::quota::config::{ClientQuotas, EntityName, QuotaEntity, QuotaOp, parse_alteration};

/// Why a request names no user.
const NO_USER: &str = "user is empty: name the user whose quotas (entity user=<name>) to describe or alter";

/// The entity and ops an AlterClientQuotas of the gRPC API asks for, by
/// Kafka's rules; a refusal is INVALID_REQUEST with Kafka's message.
pub fn alteration(request: &AlterClientQuotasRequest) -> Result<(QuotaEntity, Vec<QuotaOp>), KafkaError> {
    if request.user.is_empty() {
        return Err(KafkaError::new(ResponseError::InvalidRequest, NO_USER));
    }
    parse_alteration(
        [("user", Some(request.user.as_str()))],
        request.ops.iter().map(|op| (op.key.as_str(), op.value, op.remove)),
    )
    .map_err(|e| KafkaError::new(ResponseError::InvalidRequest, e.to_string()))
}

/// The values of the entity `user=<user>` in `quotas`, by Kafka's key names.
pub fn user_quotas(quotas: &ClientQuotas, user: &str) -> HashMap<String, f64> {
    let entity = QuotaEntity { user: Some(EntityName::Named(user.to_string())), ..QuotaEntity::default() };
    quotas.get(&entity).into_iter().flatten().map(|(key, value)| (key.name().to_string(), value.0)).collect()
}

impl AdminService {
    pub(super) fn describe_user_quotas(
        &self,
        request: Request<DescribeClientQuotasRequest>,
    ) -> Result<DescribeClientQuotasResponse, Status> {
        operator_only(&request)?;
        let user = request.into_inner().user;
        if user.is_empty() {
            return Err(Status::invalid_argument(NO_USER));
        }
        Ok(DescribeClientQuotasResponse { quotas: user_quotas(&self.broker.quotas.quotas(), &user) })
    }

    pub(super) async fn alter_user_quotas(
        &self,
        request: Request<AlterClientQuotasRequest>,
    ) -> Result<AlterClientQuotasResponse, Status> {
        operator_only(&request)?;
        let request = request.into_inner();
        let (entity, ops) = match alteration(&request) {
            Ok((_, ops)) if ops.is_empty() => return Ok(AlterClientQuotasResponse::default()),
            Ok(parsed) => parsed,
            Err(e) => return Ok(AlterClientQuotasResponse { error_code: e.code().into(), error_message: e.message }),
        };
        let applied = admin::alter_client_quotas(&self.broker, vec![(entity, ops)], request.validate_only).await;
        Ok(match answer(applied)? {
            Ok(()) => AlterClientQuotasResponse::default(),
            Err(e) => AlterClientQuotasResponse { error_code: e.code().into(), error_message: e.message },
        })
    }
}
