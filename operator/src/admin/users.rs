//! The Admin API calls for client users: SCRAM credentials, ACLs and the
//! client quotas of the entity `user=<name>`, which only the operator's
//! identity may make (the brokers refuse anyone else).
//! The password travels only in these calls, over the mutual-TLS internal
//! plane; the broker salts and hashes it.

use std::collections::BTreeMap;

use strom_proto::admin::{
    Acl, AlterClientQuotasRequest, ClientQuotaOp, CreateAclsRequest, DeleteAclsRequest, DeleteScramCredentialRequest,
    DescribeClientQuotasRequest, DescribeUserRequest, DescribeUserResponse, UpsertScramCredentialRequest,
};

use super::{AdminError, ClusterAdmin, refused};

/// The SCRAM mechanism KafkaUsers use.
pub const SCRAM_SHA_512: &str = "SCRAM-SHA-512";

impl ClusterAdmin {
    /// Sets `user`'s SCRAM-SHA-512 password; `Ok(false)` when it already was that password.
    pub async fn upsert_scram_credential(&self, user: &str, password: &str) -> Result<bool, AdminError> {
        let request = UpsertScramCredentialRequest {
            user: user.to_string(),
            mechanism: SCRAM_SHA_512.to_string(),
            password: password.to_string(),
            iterations: 0,
        };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.upsert_scram_credential(request).await }
            })
            .await?;
        refused("UpsertScramCredential", r.error_code, r.error_message)?;
        Ok(r.changed)
    }

    /// Removes `user`'s SCRAM-SHA-512 credential; `Ok(false)` when it had none.
    pub async fn delete_scram_credential(&self, user: &str) -> Result<bool, AdminError> {
        let request = DeleteScramCredentialRequest { user: user.to_string(), mechanism: SCRAM_SHA_512.to_string() };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.delete_scram_credential(request).await }
            })
            .await?;
        refused("DeleteScramCredential", r.error_code, r.error_message)?;
        Ok(r.deleted)
    }

    /// `user`'s SCRAM mechanisms and the ACLs of principal `User:<user>`.
    pub async fn describe_user(&self, user: &str) -> Result<DescribeUserResponse, AdminError> {
        let request = DescribeUserRequest { user: user.to_string() };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.describe_user(request).await }
        })
        .await
    }

    /// Stores `acls`: all of them, or none with the refusal.
    pub async fn create_acls(&self, acls: Vec<Acl>) -> Result<(), AdminError> {
        let request = CreateAclsRequest { acls };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.create_acls(request).await }
            })
            .await?;
        refused("CreateAcls", r.error_code, r.error_message)
    }

    /// Removes exactly `acls`; returns how many were stored.
    pub async fn delete_acls(&self, acls: Vec<Acl>) -> Result<usize, AdminError> {
        let request = DeleteAclsRequest { acls };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.delete_acls(request).await }
            })
            .await?;
        refused("DeleteAcls", r.error_code, r.error_message)?;
        Ok(usize::try_from(r.deleted).unwrap_or(0))
    }

    /// The client quotas of the entity `user=<user>`, by Kafka key.
    pub async fn describe_client_quotas(&self, user: &str) -> Result<BTreeMap<String, f64>, AdminError> {
        let request = DescribeClientQuotasRequest { user: user.to_string() };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.describe_client_quotas(request).await }
            })
            .await;
        match r {
            Ok(r) => Ok(r.quotas.into_iter().collect()),
            // Brokers older than this operator hold no quotas it could have set.
            Err(AdminError::Unsupported { .. }) => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    /// Sets and removes client quotas of the entity `user=<user>`: every op, or none with the refusal.
    pub async fn alter_client_quotas(&self, user: &str, ops: Vec<ClientQuotaOp>) -> Result<(), AdminError> {
        let request = AlterClientQuotasRequest { user: user.to_string(), ops, validate_only: false };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.alter_client_quotas(request).await }
            })
            .await?;
        refused("AlterClientQuotas", r.error_code, r.error_message)
    }
}
