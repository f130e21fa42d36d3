//! The `KafkaUser` reconciler: a client user's SCRAM-SHA-512 credential,
//! ACLs and client quotas in the brokers follow the resource.
//!
//! Apply: check the spec ([`KafkaUserSpec::validate`]); find the cluster
//! named by `clusterRef`; take the password from
//! `authentication.password.valueFrom.secretKeyRef`, else from the Secret
//! the operator wrote before, else generate one ([`user_plan`]); write the
//! Secret named after the user (password, username, `sasl.jaas.config`,
//! `ca.crt` the cluster CA's bundle for TLS listeners; owned by the KafkaUser); send the password to the brokers (a no-op when
//! it is already theirs, so a changed Secret is a rotation); make the ACLs
//! of principal `User:<name>` exactly the spec's (a hand-made one is
//! removed and reported as drift); make the client quotas of the entity
//! `user=<name>` exactly `spec.quotas` (a key left out is removed, a value
//! changed by hand is set back and reported as drift), as Strimzi's
//! KafkaUser does. Status: Ready with a reason naming the field at fault.
//!
//! Claim: a principal that already has a credential, ACLs or client quotas
//! (not from this KafkaUser), or is a super user, is refused (`UserExists`,
//! `SuperUser`); the claim (`status.username`) is written before the first
//! change, and only a claimed principal is cleaned up.
//!
//! Delete (the `strom.dev/user` finalizer): the principal's ACLs, client
//! quotas and credential are removed from the cluster; the Secret goes with
//! its owner. When the cluster is gone there is nothing to remove.
//!
//! A `tls` user gets a client certificate of the cluster's clients CA
//! instead of a password ([`crate::user_tls`]): `user.crt`, `user.key`,
//! `ca.crt` (the cluster CA's bundle), and `user.p12` / `user.password` (a
//! PKCS#12 keystore of the same pair) in the same Secret; no SCRAM
//! credential. The principal, and so the ACLs, are the same `User:<name>`.
//!
//! Must never: overwrite a Secret it does not own, log or emit a password
//! or a private key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use strom_crds::conditions::{READY, find_condition, set_condition};
use strom_crds::{AuthenticationType, KafkaCluster, KafkaUser, KafkaUserSpec, KafkaUserStatus};

use crate::admin::{AdminError, ClusterAdmin};
use crate::builders::ClusterNames;
use crate::ca_secrets::{CaKind, read_ca};
use crate::context::Context;
use crate::user_plan::{self, PASSWORD_KEY};
use crate::user_tls;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "kafkauser";
/// The finalizer that removes the credential, ACLs and client quotas before the KafkaUser goes away.
pub const FINALIZER: &str = "strom.dev/user";
/// Kafka's SECURITY_DISABLED (no authorizer configured).
const SECURITY_DISABLED: i32 = 54;

/// A failed user reconciliation.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// The cluster's Admin API failed or refused.
    #[error("user {user}: {source}")]
    Admin {
        user: String,
        #[source]
        source: AdminError,
    },
    /// Issuing a `tls` user's certificate failed.
    #[error("cannot issue a client certificate: {0}")]
    Certificate(String),
    /// The operating system's random generator failed.
    #[error("cannot generate a password: {0}")]
    Random(String),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> UserError {
    let action = action.into();
    move |source| UserError::Kube { action, source }
}

fn admin_err(user: &str) -> impl FnOnce(AdminError) -> UserError + '_ {
    move |source| UserError::Admin { user: user.to_string(), source }
}

/// Reconciles one `KafkaUser` (apply or, when deleted, cleanup).
pub async fn reconcile(user: Arc<KafkaUser>, ctx: Arc<Context>) -> Result<Action, UserError> {
    let started = Instant::now();
    let namespace = user.namespace().unwrap_or_else(|| "default".into());
    let api: Api<KafkaUser> = Api::namespaced(ctx.client.clone(), &namespace);
    let reference = user.object_ref(&());
    let result = finalizer(&api, FINALIZER, user, |event| async {
        match event {
            FinalizerEvent::Apply(u) => apply(&u, &ctx).await,
            FinalizerEvent::Cleanup(u) => cleanup(&u, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => UserError::Finalizer(other.to_string()),
    });
    ctx.metrics.observe(CONTROLLER, result.is_ok(), started.elapsed());
    if let Err(e) = &result {
        ctx.event(&reference, true, "ReconcileFailed", "Reconcile", e.to_string()).await;
    }
    result
}

/// Requeues a failed reconciliation with backoff (never a crash loop).
pub fn error_policy(user: Arc<KafkaUser>, error: &UserError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(user = %user.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

/// The cluster a user belongs to, if it exists and is not being deleted.
async fn cluster_of(user: &KafkaUser, ctx: &Context) -> Result<Option<KafkaCluster>, UserError> {
    let namespace = user.namespace().unwrap_or_default();
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let cluster = api
        .get_opt(&user.spec.cluster_ref)
        .await
        .map_err(kube_err(format!("read KafkaCluster {namespace}/{}", user.spec.cluster_ref)))?;
    Ok(cluster.filter(|c| c.meta().deletion_timestamp.is_none()))
}

async fn write_status(user: &KafkaUser, ctx: &Context, status: &KafkaUserStatus) -> Result<(), UserError> {
    if user.status.as_ref() == Some(status) {
        return Ok(());
    }
    let namespace = user.namespace().unwrap_or_default();
    let api: Api<KafkaUser> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&user.name_any(), &PatchParams::apply(crate::FIELD_MANAGER), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!("write status of KafkaUser {namespace}/{}", user.name_any())))?;
    Ok(())
}

/// Sets Ready on `status`; returns whether it changed.
fn set_ready(status: &mut KafkaUserStatus, generation: Option<i64>, ready: bool, reason: &str, message: &str) -> bool {
    let now = Time(Timestamp::now());
    status.observed_generation = generation;
    set_condition(&mut status.conditions, READY, ready, reason, message, generation, now)
}

/// Ends a pass that cannot proceed: Ready false with `reason`, an event when
/// that is news (not on every retry), a requeue.
async fn not_ready(
    user: &KafkaUser,
    ctx: &Context,
    mut status: KafkaUserStatus,
    reason: &str,
    message: String,
    retry: Duration,
) -> Result<Action, UserError> {
    let changed = set_ready(&mut status, user.metadata.generation, false, reason, &message);
    write_status(user, ctx, &status).await?;
    if changed {
        ctx.event(&user.object_ref(&()), true, reason, "Reconcile", message).await;
    }
    Ok(Action::requeue(retry))
}

/// Where the password comes from, or why it cannot be had (naming the field).
enum Password {
    /// The password to use, and whether it was just generated.
    Found(String, bool),
    /// A reason for the status and its message.
    Missing(&'static str, String),
}

/// The user's password: from its secretKeyRef, else the operator's Secret, else a new one.
async fn password_of(user: &KafkaUser, ctx: &Context, own: Option<&Secret>) -> Result<Password, UserError> {
    let namespace = user.namespace().unwrap_or_default();
    if let Some(source) = &user.spec.authentication.password {
        let reference = &source.value_from.secret_key_ref;
        let field = "spec.authentication.password.valueFrom.secretKeyRef";
        if reference.name == user.name_any() {
            let message = format!(
                "{field}.name is {}, the name of the Secret the operator writes for this user: keep the password in another Secret",
                reference.name
            );
            return Ok(Password::Missing("InvalidSpec", message));
        }
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        let secret = secrets
            .get_opt(&reference.name)
            .await
            .map_err(kube_err(format!("read Secret {namespace}/{}", reference.name)))?;
        let Some(secret) = secret else {
            let message = format!("{field}: Secret {} does not exist in namespace {namespace}", reference.name);
            return Ok(Password::Missing("PasswordSecretNotFound", message));
        };
        return Ok(match user_plan::secret_text(&secret, &reference.key).filter(|p| !p.is_empty()) {
            Some(password) => Password::Found(password, false),
            None => Password::Missing(
                "PasswordSecretNotFound",
                format!("{field}: Secret {} has no non-empty UTF-8 key {}", reference.name, reference.key),
            ),
        });
    }
    if let Some(password) = own.and_then(|s| user_plan::secret_text(s, PASSWORD_KEY)).filter(|p| !p.is_empty()) {
        return Ok(Password::Found(password, false));
    }
    let password = user_plan::generate_password().map_err(|e| UserError::Random(e.to_string()))?;
    Ok(Password::Found(password, true))
}

/// Whether `secret` is the one this operator wrote for `user`.
fn owned_by(secret: &Secret, user: &KafkaUser) -> bool {
    let uid = user.uid();
    secret.owner_references().iter().any(|o| o.kind == "KafkaUser" && Some(&o.uid) == uid.as_ref())
}

async fn apply(user: &KafkaUser, ctx: &Context) -> Result<Action, UserError> {
    let name = user.name_any();
    let namespace = user.namespace().unwrap_or_default();
    let mut status = user.status.clone().unwrap_or_default();
    if let Err(e) = KafkaUserSpec::validate(&user.spec) {
        return not_ready(user, ctx, status, "InvalidSpec", e.to_string(), Duration::from_secs(300)).await;
    }
    let Some(cluster) = cluster_of(user, ctx).await? else {
        let message =
            format!("spec.clusterRef: KafkaCluster {} does not exist in namespace {namespace}", user.spec.cluster_ref);
        return not_ready(user, ctx, status, "ClusterNotFound", message, Duration::from_secs(30)).await;
    };

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let own = secrets.get_opt(&name).await.map_err(kube_err(format!("read Secret {namespace}/{name}")))?;
    if let Some(secret) = &own
        && !owned_by(secret, user)
    {
        let message = format!(
            "Secret {name} already exists and is not this KafkaUser's: the operator writes the user's password there; \
             rename or delete that Secret"
        );
        return not_ready(user, ctx, status, "SecretConflict", message, Duration::from_secs(60)).await;
    }
    if user.spec.authentication.r#type == AuthenticationType::Tls {
        return apply_tls(user, ctx, &cluster, own.as_ref(), status).await;
    }
    let (password, generated) = match password_of(user, ctx, own.as_ref()).await? {
        Password::Found(p, generated) => (p, generated),
        Password::Missing(reason, message) => {
            return not_ready(user, ctx, status, reason, message, Duration::from_secs(30)).await;
        }
    };
    let mut desired_secret = user_plan::user_secret(user, &password);
    // The cluster CA's bundle, for SASL_SSL listeners: clients check the brokers with it.
    if let Ok(Some(cluster_ca)) = read_ca(ctx, &ClusterNames::of(&cluster), CaKind::Cluster).await
        && let Some(data) = desired_secret.data.as_mut()
    {
        data.insert(user_tls::CA_CERT.to_string(), k8s_openapi::ByteString(cluster_ca.bundle.into_bytes()));
    }
    if own.as_ref().and_then(|s| s.data.as_ref()) != desired_secret.data.as_ref() {
        secrets
            .patch(&name, &PatchParams::apply(crate::FIELD_MANAGER).force(), &Patch::Apply(&desired_secret))
            .await
            .map_err(kube_err(format!("write Secret {namespace}/{name}")))?;
    }
    status.secret = Some(name.clone());

    let names = ClusterNames::of(&cluster);
    let unreachable = |e: AdminError| format!("the cluster's admin API cannot be reached: {e}");
    let admin = match ctx.admin_for(&names, cluster.spec.replicas).await {
        Ok(admin) => admin,
        Err(e) => {
            return not_ready(user, ctx, status, "ClusterUnreachable", unreachable(e), Duration::from_secs(10)).await;
        }
    };
    if let Some((reason, message)) = claim(user, &cluster, &admin, &mut status).await? {
        return not_ready(user, ctx, status, reason, message, Duration::from_secs(60)).await;
    }
    write_status(user, ctx, &status).await?;
    let reference = user.object_ref(&());
    let changed = match admin.upsert_scram_credential(&name, &password).await {
        Ok(changed) => changed,
        Err(e @ (AdminError::Unreachable { .. } | AdminError::NoIdentity(_))) => {
            return not_ready(user, ctx, status, "ClusterUnreachable", unreachable(e), Duration::from_secs(10)).await;
        }
        Err(e) if e.code().is_some() => {
            let message = format!("spec.authentication: the cluster refused the credential: {e}");
            return not_ready(user, ctx, status, "CredentialRefused", message, Duration::from_secs(60)).await;
        }
        Err(e) => return Err(admin_err(&name)(e)),
    };
    if changed {
        let note = if generated {
            format!("created the SCRAM-SHA-512 credential of {name}; the password is in Secret {name}")
        } else {
            format!("set the SCRAM-SHA-512 password of {name} from its Secret")
        };
        ctx.event(&reference, false, "CredentialSet", "Authenticate", note).await;
    }

    finish(user, ctx, &admin, status, "SCRAM-SHA-512 credential set").await
}

/// The ACLs and the client quotas, then Ready with `what`, the ACL count and the quotas.
async fn finish(
    user: &KafkaUser,
    ctx: &Context,
    admin: &ClusterAdmin,
    mut status: KafkaUserStatus,
    what: &str,
) -> Result<Action, UserError> {
    // The spec was already in force: a difference now was made behind the operator's back.
    let was_ready = find_condition(&status.conditions, READY).is_some_and(|c| c.status == "True");
    let spec_in_force = was_ready && status.observed_generation == user.metadata.generation;
    let mut drift = Vec::new();
    let mut outcome = reconcile_acls(user, ctx, admin, spec_in_force, &mut drift).await?;
    if let Ok(count) = outcome {
        status.acls = Some(count);
        outcome = reconcile_quotas(user, ctx, admin, spec_in_force, &mut drift).await?.map(|()| count);
    }
    if !drift.is_empty() {
        status.last_drift_correction = Some(format!("{}: {}", Timestamp::now(), drift.join("; ")));
    }
    if let Err((reason, message)) = outcome {
        return not_ready(user, ctx, status, reason, message, Duration::from_secs(60)).await;
    }
    let name = user.name_any();
    let message = format!(
        "{what}; {} ACL(s) of {} in force; {}",
        status.acls.unwrap_or(0),
        user_plan::principal(&name),
        user_plan::quota_summary(&user_plan::desired_quotas(user))
    );
    set_ready(&mut status, user.metadata.generation, true, "UserReady", &message);
    write_status(user, ctx, &status).await?;
    Ok(Action::requeue(ctx.resync))
}

/// Takes the principal for this KafkaUser before anything of it is touched:
/// a principal that already has a SCRAM credential, ACLs or client quotas
/// it did not get from this KafkaUser (a hand-made user, or one of another KafkaUser in a
/// namespace of the same cluster) is not taken over, nor is a super user.
/// The claim is `status.username`, written before the first change (and
/// only a claimed principal is cleaned up at deletion). `Some((reason,
/// message))`: refused.
async fn claim(
    user: &KafkaUser,
    cluster: &KafkaCluster,
    admin: &ClusterAdmin,
    status: &mut KafkaUserStatus,
) -> Result<Option<(&'static str, String)>, UserError> {
    let name = user.name_any();
    let principal = user_plan::principal(&name);
    let from_spec = cluster.spec.authorization.as_ref().map(|a| a.broker_settings()).unwrap_or_default();
    let super_users = from_spec
        .into_iter()
        .find(|(k, _)| k == "super.users")
        .map(|(_, v)| v)
        .or_else(|| cluster.spec.config.get("super.users").cloned())
        .unwrap_or_default();
    if super_users.split(';').map(str::trim).any(|p| p == principal) {
        let message = format!(
            "metadata.name: {principal} is one of the cluster's super users (spec.authorization.superUsers or \
             spec.config super.users); a KafkaUser cannot manage a super user"
        );
        return Ok(Some(("SuperUser", message)));
    }
    if status.username.as_deref() == Some(name.as_str()) {
        return Ok(None); // claimed by an earlier reconcile
    }
    let existing = admin.describe_user(&name).await.map_err(admin_err(&name))?;
    let quotas = admin.describe_client_quotas(&name).await.map_err(admin_err(&name))?;
    if !existing.scram_mechanisms.is_empty() || !existing.acls.is_empty() || !quotas.is_empty() {
        let message = format!(
            "metadata.name: {principal} already has {} credential(s), {} ACL(s) and {} client quota(s) (entity user={name}) \
             this KafkaUser did not create; the operator does not take over an existing principal \
             (remove them first, or choose another name)",
            existing.scram_mechanisms.len(),
            existing.acls.len(),
            quotas.len()
        );
        return Ok(Some(("UserExists", message)));
    }
    status.username = Some(name);
    Ok(None)
}

/// A `tls` user: a client certificate of the clients CA in its Secret
/// (issued again before expiry or after a clients CA renewal), then the ACLs.
async fn apply_tls(
    user: &KafkaUser,
    ctx: &Context,
    cluster: &KafkaCluster,
    own: Option<&Secret>,
    mut status: KafkaUserStatus,
) -> Result<Action, UserError> {
    let name = user.name_any();
    let namespace = user.namespace().unwrap_or_default();
    let names = ClusterNames::of(cluster);
    // The principal is claimed before any certificate names it: a refused
    // KafkaUser (a super user's name, a principal it did not create) must
    // not get a certificate for it.
    let admin = match ctx.admin_for(&names, cluster.spec.replicas).await {
        Ok(admin) => admin,
        Err(e) => {
            let message = format!("the cluster's admin API cannot be reached: {e}");
            return not_ready(user, ctx, status, "ClusterUnreachable", message, Duration::from_secs(10)).await;
        }
    };
    if let Some((reason, message)) = claim(user, cluster, &admin, &mut status).await? {
        return not_ready(user, ctx, status, reason, message, Duration::from_secs(60)).await;
    }
    let cas = (read_ca(ctx, &names, CaKind::Clients).await, read_ca(ctx, &names, CaKind::Cluster).await);
    let (clients, cluster_ca) = match cas {
        (Ok(Some(clients)), Ok(Some(cluster_ca))) => (clients, cluster_ca),
        (Err(e), _) | (_, Err(e)) => {
            let message = format!("the cluster's CAs cannot be read: {e}");
            return not_ready(user, ctx, status, "CaUnavailable", message, Duration::from_secs(10)).await;
        }
        _ => {
            let message = format!("KafkaCluster {} has no clients CA yet (its reconciler creates it)", names.name);
            return not_ready(user, ctx, status, "CaUnavailable", message, Duration::from_secs(10)).await;
        }
    };
    let policy = crate::ca_secrets::policy(cluster);
    let now = crate::ca_secrets::unix_now();
    let own_text: std::collections::BTreeMap<String, String> = own
        .and_then(|s| s.data.as_ref())
        .map(|d| d.iter().filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?))).collect())
        .unwrap_or_default();
    let pair = match user_tls::pair_to_keep(now, policy, &own_text, &clients.ca.pem().cert) {
        Some(pair) => pair,
        None => {
            let pair = user_tls::issue(now, policy, &clients.ca, clients.not_after, &name)
                .map_err(|e| UserError::Certificate(format!("user {name}: {e}")))?;
            let note = format!("issued the client certificate of {name} (CN={name}); it is in Secret {name}");
            ctx.event(&user.object_ref(&()), false, "CertificateIssued", "Authenticate", note).await;
            pair
        }
    };
    let mut desired = user_plan::user_secret(user, "");
    let own_data = own.and_then(|s| s.data.clone()).unwrap_or_default();
    let keystore = user_tls::keystore(&pair, &clients.ca.pem().cert, &own_data)
        .map_err(|e| UserError::Certificate(format!("user {name}: {e}")))?;
    desired.data = Some(user_tls::secret_data(&pair, &cluster_ca.bundle, &keystore));
    if own.and_then(|s| s.data.as_ref()) != desired.data.as_ref() {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        secrets
            .patch(&name, &PatchParams::apply(crate::FIELD_MANAGER).force(), &Patch::Apply(&desired))
            .await
            .map_err(kube_err(format!("write Secret {namespace}/{name}")))?;
    }
    status.secret = Some(name.clone());
    write_status(user, ctx, &status).await?;
    finish(user, ctx, &admin, status, "client certificate issued").await
}

/// Makes the stored ACLs of the user's principal exactly the spec's. The
/// count in force, or a refusal (reason, message) for the status. A change
/// while `spec_in_force` is drift: noted in `drift` and as an event.
async fn reconcile_acls(
    user: &KafkaUser,
    ctx: &Context,
    admin: &ClusterAdmin,
    spec_in_force: bool,
    drift: &mut Vec<String>,
) -> Result<Result<i32, (&'static str, String)>, UserError> {
    let name = user.name_any();
    let desired = user_plan::desired_acls(user);
    let stored = admin.describe_user(&name).await.map_err(admin_err(&name))?.acls;
    let changes = user_plan::acl_changes(&desired, &stored);
    let reference = user.object_ref(&());
    if !changes.create.is_empty() {
        match admin.create_acls(changes.create.clone()).await {
            Ok(()) => {}
            Err(e) if e.code() == Some(SECURITY_DISABLED) => {
                return Ok(Err(("AuthorizerDisabled", format!("spec.authorization: {e}"))));
            }
            Err(e) if e.code().is_some() => {
                return Ok(Err(("AclsRefused", format!("spec.authorization.acls: {e}"))));
            }
            Err(e) => return Err(admin_err(&name)(e)),
        }
    }
    if !changes.delete.is_empty() {
        admin.delete_acls(changes.delete.clone()).await.map_err(admin_err(&name))?;
    }
    if !changes.create.is_empty() || !changes.delete.is_empty() {
        let what = format!("{} ACL(s) added, {} removed", changes.create.len(), changes.delete.len());
        if spec_in_force {
            drift.push(what.clone());
            ctx.event(
                &reference,
                true,
                "DriftCorrected",
                "Authorize",
                format!("set the ACLs back to the spec: {what}"),
            )
            .await;
        } else {
            ctx.event(&reference, false, "AclsUpdated", "Authorize", what).await;
        }
    }
    Ok(Ok(i32::try_from(user_plan::distinct(&desired)).unwrap_or(i32::MAX)))
}

/// Makes the client quotas of the entity `user=<name>` exactly
/// `spec.quotas`, or a refusal (reason, message) for the status. A change
/// while `spec_in_force` is drift: noted in `drift` and as an event.
async fn reconcile_quotas(
    user: &KafkaUser,
    ctx: &Context,
    admin: &ClusterAdmin,
    spec_in_force: bool,
    drift: &mut Vec<String>,
) -> Result<Result<(), (&'static str, String)>, UserError> {
    let name = user.name_any();
    let desired = user_plan::desired_quotas(user);
    let stored = admin.describe_client_quotas(&name).await.map_err(admin_err(&name))?;
    let changes = user_plan::quota_changes(&desired, &stored);
    if changes.is_empty() {
        return Ok(Ok(()));
    }
    match admin.alter_client_quotas(&name, changes.ops()).await {
        Ok(()) => {}
        Err(e) if e.code().is_some() => return Ok(Err(("QuotasRefused", format!("spec.quotas: {e}")))),
        Err(e @ crate::admin::AdminError::Unsupported { .. }) => {
            return Ok(Err(("QuotasUnsupported", format!("spec.quotas: {e}"))));
        }
        Err(e) => return Err(admin_err(&name)(e)),
    }
    let what = format!("client quotas {}", changes.describe());
    let reference = user.object_ref(&());
    if spec_in_force {
        drift.push(what.clone());
        let note = format!("set the client quotas back to the spec: {what}");
        ctx.event(&reference, true, "DriftCorrected", "Quota", note).await;
    } else {
        ctx.event(&reference, false, "QuotasUpdated", "Quota", what).await;
    }
    Ok(Ok(()))
}

async fn cleanup(user: &KafkaUser, ctx: &Context) -> Result<Action, UserError> {
    let name = user.name_any();
    if user.status.as_ref().and_then(|s| s.username.as_deref()) != Some(name.as_str()) {
        tracing::info!(user = %name, "the KafkaUser never claimed its principal; nothing of it to remove");
        return Ok(Action::await_change());
    }
    let Some(cluster) = cluster_of(user, ctx).await? else {
        tracing::info!(user = %name, "the cluster is gone; no credential, ACLs or quotas to remove");
        return Ok(Action::await_change());
    };
    let admin = ctx.admin_for(&ClusterNames::of(&cluster), cluster.spec.replicas).await.map_err(admin_err(&name))?;
    let stored = admin.describe_user(&name).await.map_err(admin_err(&name))?.acls;
    let acls = stored.len();
    if acls > 0 {
        admin.delete_acls(stored).await.map_err(admin_err(&name))?;
    }
    let stored_quotas = admin.describe_client_quotas(&name).await.map_err(admin_err(&name))?;
    let quotas = user_plan::quota_changes(&Default::default(), &stored_quotas);
    if !quotas.is_empty() {
        admin.alter_client_quotas(&name, quotas.ops()).await.map_err(admin_err(&name))?;
    }
    if user.spec.authentication.r#type == AuthenticationType::ScramSha512 {
        admin.delete_scram_credential(&name).await.map_err(admin_err(&name))?;
    }
    // A tls user's certificate stays valid until it expires: Strom keeps no
    // revocation list; its ACLs are gone, so it can do nothing.
    let note = format!("removed the credential, {acls} ACL(s) and {} client quota(s) of {name}", quotas.remove.len());
    ctx.event(&user.object_ref(&()), false, "UserDeleted", "Delete", note).await;
    Ok(Action::await_change())
}
