//! The `KafkaCluster` reconciler.
//!
//! Each pass applies the cluster's objects from [`crate::builders`] with
//! server-side apply (one field manager, forced, so the operator's fields
//! always win over hand edits), then reads what is running — the
//! StatefulSet's ready pods and, through the Admin API, the active
//! controller and under-replicated partitions — and writes the status:
//! `observedGeneration`, broker counts, and the Ready / Progressing /
//! Degraded conditions. A spec the API server accepted but the operator
//! cannot realise (checked by `KafkaClusterSpec::validate`) leaves the
//! running objects alone and says why in Degraded.
//!
//! Errors go back to the controller, which retries with backoff; nothing
//! here panics on what a user can write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde::Serialize;
use serde::de::DeserializeOwned;
use strom_crds::conditions::{DEGRADED, PROGRESSING, READY, WARNING, set_condition};
use strom_crds::{KafkaCluster, KafkaClusterStatus, KafkaListenerAuthenticationType};

use crate::admin::AdminError;
use crate::builders::{self, ClusterNames};
use crate::context::Context;
use crate::internal_ca::{self, CaError};

mod restart;
mod scale;
mod voters;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "kafkacluster";

/// A failed cluster reconciliation.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A Kubernetes API call failed.
    #[error("{action} {kind} {name}: {source}")]
    Kube {
        action: &'static str,
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The cluster's internal CA or certificates could not be read or made.
    #[error("internal CA: {0}")]
    Ca(#[from] CaError),
    /// The operator cannot call the cluster's Admin API.
    #[error("admin API: {0}")]
    Admin(#[from] AdminError),
}

/// Applies `object` with server-side apply under the operator's field manager.
pub async fn apply<K>(client: &kube::Client, namespace: &str, object: &K) -> Result<K, ClusterError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(crate::FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(object)).await.map_err(|source| ClusterError::Kube {
        action: "apply",
        kind: K::kind(&()).to_string(),
        name,
        source,
    })
}

/// What the reconciler observed of the running cluster.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Brokers whose pod is ready.
    pub ready_brokers: i32,
    /// Pods not yet on the StatefulSet's current template (a restart is pending).
    pub outdated_brokers: i32,
    /// The active controller, when the Admin API answered.
    pub controller_id: Option<i32>,
    /// The committed controller voters, when the Admin API answered.
    pub controller_voters: Vec<i32>,
    /// Under-replicated partitions, when the Admin API answered.
    pub under_replicated: Option<i32>,
    /// Offline partitions, when the Admin API answered.
    pub offline: Option<i32>,
    /// Why the Admin API did not answer.
    pub admin_error: Option<String>,
    /// What the rolling restart does or waits for, while brokers are outdated.
    pub roll_message: Option<String>,
    /// A restarted broker that did not come back in time.
    pub restart_timeout: Option<String>,
    /// The next broker of a roll may not stop although the cluster is healthy.
    pub restart_blocked: Option<String>,
    /// Replica moves running or starting (scale-up, drain, rebalance).
    pub scale_message: Option<String>,
    /// Why a scale-down cannot proceed.
    pub scale_blocked: Option<String>,
}

/// One condition as (status, reason, message).
pub type ConditionValue = (bool, &'static str, String);

/// Why the operator could not roll the spec out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// The API server accepted the spec, but it cannot be realised.
    InvalidSpec(String),
    /// Applying the cluster's objects failed.
    ApplyFailed(String),
}

/// The Ready, Progressing and Degraded conditions for what was observed (pure).
pub fn conditions(
    replicas: i32,
    observed: &Observed,
    blocked: Option<&Blocked>,
) -> (ConditionValue, ConditionValue, ConditionValue) {
    let invalid_spec = match blocked {
        Some(Blocked::InvalidSpec(reason)) => Some(reason.as_str()),
        _ => None,
    };
    let all_ready = observed.ready_brokers >= replicas;
    let progressing = if let Some(blocked) = blocked {
        // Nothing rolls while the spec cannot be applied: "BrokersStarting
        // 0/1" would promise progress that is not happening.
        let why = match blocked {
            Blocked::InvalidSpec(_) => "the spec cannot be realised",
            Blocked::ApplyFailed(_) => "applying the cluster's objects failed",
        };
        (false, "Blocked", format!("nothing is rolled out while {why}; see the Degraded condition"))
    } else if observed.outdated_brokers > 0 {
        let message = match &observed.roll_message {
            Some(m) => format!("{} broker(s) to restart: {m}", observed.outdated_brokers),
            None => format!("{} broker(s) run an older pod template", observed.outdated_brokers),
        };
        (true, "RollingRestart", message)
    } else if !all_ready {
        (true, "BrokersStarting", format!("{}/{replicas} brokers ready", observed.ready_brokers))
    } else if let Some(m) = &observed.scale_message {
        (true, "Rebalancing", m.clone())
    } else {
        (false, "Stable", format!("all {replicas} brokers run the current template"))
    };
    let degraded = if let Some(reason) = invalid_spec {
        (true, "InvalidSpec", reason.to_string())
    } else if let Some(Blocked::ApplyFailed(e)) = blocked {
        (true, "ApplyFailed", e.clone())
    } else if let Some(e) = &observed.restart_timeout {
        (true, "BrokerRestartTimeout", e.clone())
    } else if let Some(e) = &observed.restart_blocked {
        (true, "RestartBlocked", e.clone())
    } else if let Some(e) = &observed.scale_blocked {
        (true, "ScaleDownBlocked", e.clone())
    } else if let Some(n) = observed.offline.filter(|n| *n > 0) {
        (true, "OfflinePartitions", format!("{n} partition(s) have no leader"))
    } else if let Some(n) = observed.under_replicated.filter(|n| *n > 0) {
        (true, "UnderReplicated", format!("{n} partition(s) are under-replicated"))
    } else if let (Some(e), true) = (&observed.admin_error, all_ready) {
        (true, "AdminUnreachable", format!("brokers are ready but the admin API does not answer: {e}"))
    } else {
        (false, "Healthy", "no problem observed".to_string())
    };
    let ready = if let Some(reason) = invalid_spec {
        (false, "InvalidSpec", reason.to_string())
    } else if !all_ready {
        (false, "BrokersNotReady", format!("{}/{replicas} brokers ready", observed.ready_brokers))
    } else if let Some(e) = &observed.admin_error {
        (false, "AdminUnreachable", e.clone())
    } else if observed.offline.is_some_and(|n| n > 0) {
        (false, "OfflinePartitions", degraded.2.clone())
    } else {
        (true, "ClusterReady", format!("{replicas} brokers ready, controller {}", observed.controller_id.unwrap_or(-1)))
    };
    (ready, progressing, degraded)
}

/// What works but needs attention (pure): the Warning condition lists it
/// and `status.warnings` counts it.
pub fn warnings(spec: &strom_crds::KafkaClusterSpec, observed: &Observed) -> Vec<String> {
    let mut found = Vec::new();
    let voters = spec.voters();
    if voters > 1 && voters % 2 == 0 {
        found.push(format!(
            "controllerVoters is {voters}: an even quorum tolerates no more voter failures than {} voters do",
            voters - 1
        ));
    }
    if voters == 1 && spec.replicas > 1 {
        found.push("one controller voter: while broker 0 is down no leader can be elected".to_string());
    }
    if spec.storage.r#type == strom_crds::StorageType::Ephemeral && spec.replicas > 1 {
        found.push("storage is Ephemeral: a broker's data is gone with its pod".to_string());
    }
    found.extend(oauth_warnings(&spec.listeners.additional));
    if let Some(n) = observed.under_replicated.filter(|n| *n > 0) {
        found.push(format!("{n} partition(s) are under-replicated"));
    }
    if let Some(blocked) = &observed.restart_blocked {
        found.push(format!("a restart is blocked: {blocked}"));
    }
    found
}

/// OAuth listeners that work but are weaker than they look: bearer tokens
/// on a plaintext listener can be read and replayed by anyone on the path,
/// and without an audience a token the issuer made for any other service
/// is accepted here.
fn oauth_warnings(listeners: &[strom_crds::KafkaListener]) -> Vec<String> {
    let mut found = Vec::new();
    for listener in listeners {
        let Some(auth) =
            listener.authentication.as_ref().filter(|a| a.r#type == KafkaListenerAuthenticationType::OAuth)
        else {
            continue;
        };
        if !listener.tls {
            found.push(format!(
                "listener {}: oauth without tls: bearer tokens cross the network in clear and can be replayed; set tls: true",
                listener.name
            ));
        }
        if auth.audience.is_none() {
            found.push(format!(
                "listener {}: oauth without audience: any token of {} is accepted, also one issued for another service; set audience",
                listener.name,
                auth.issuer.as_deref().unwrap_or("the issuer")
            ));
        }
    }
    found
}

/// Reconciles one `KafkaCluster`.
pub async fn reconcile(cluster: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action, ClusterError> {
    let started = Instant::now();
    let result = reconcile_inner(&cluster, &ctx).await;
    ctx.metrics.observe(CONTROLLER, result.is_ok(), started.elapsed());
    if let Err(e) = &result {
        ctx.event(&cluster.object_ref(&()), true, "ReconcileFailed", "Reconcile", e.to_string()).await;
    }
    result
}

async fn reconcile_inner(cluster: &KafkaCluster, ctx: &Context) -> Result<Action, ClusterError> {
    let names = ClusterNames::of(cluster);
    let spec = &cluster.spec;
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let read_sts = || async {
        sts_api.get_opt(&names.name).await.map_err(|source| ClusterError::Kube {
            action: "read",
            kind: "StatefulSet".into(),
            name: names.name.clone(),
            source,
        })
    };
    let before = read_sts().await?;
    // Certificates first: a broker pod the StatefulSet starts needs its pair.
    let running = before.as_ref().and_then(|s| s.spec.replicas).unwrap_or(0);
    let ca_expiry = internal_ca::ensure(ctx, cluster, spec.replicas.max(running)).await?;
    let mut observed = Observed::default();
    // Every running broker: the active controller, which alone takes a
    // voter change, may be one a scale-down removes.
    let admin = ctx.admin_for(&names, spec.replicas.max(running)).await?;
    let mut dynamic_in_force = None;
    match admin.describe_cluster().await {
        Ok(described) => {
            dynamic_in_force = Some(described.broker_configs.into_iter().collect::<BTreeMap<String, String>>());
            observed.controller_id = (described.controller_id >= 0).then_some(described.controller_id);
            observed.controller_voters = described.controller_voters.clone();
            observed.controller_voters.sort_unstable();
            observed.under_replicated = Some(described.under_replicated_partitions.len() as i32);
            observed.offline = Some(described.offline_partitions.len() as i32);
        }
        Err(e) => observed.admin_error = Some(e.to_string()),
    }

    let mut apply_error = None;
    let mut scale = None;
    let blocked = match validate(cluster) {
        Err(reason) => Some(Blocked::InvalidSpec(reason)),
        Ok(()) => {
            let current = before.as_ref().and_then(|s| s.spec.replicas);
            let settled = before.as_ref().is_some_and(sts_settled)
                && observed.under_replicated == Some(0)
                && observed.offline == Some(0)
                && cluster.status.as_ref().is_none_or(|s| s.rolling_restart.is_none());
            let outcome = scale::step(cluster, ctx, &admin, current, settled).await;
            let replicas = outcome.statefulset_replicas;
            scale = Some(outcome);
            match apply_objects(cluster, &names, ctx, before.as_ref(), replicas).await {
                Ok(()) => None,
                Err(e) => {
                    let blocked = Blocked::ApplyFailed(e.to_string());
                    apply_error = Some(e);
                    Some(blocked)
                }
            }
        }
    };
    if let (None, Some(in_force)) = (&blocked, &dynamic_in_force) {
        apply_dynamic_settings(cluster, ctx, &admin, in_force).await;
    }
    if let Some(outcome) = &scale {
        observed.scale_message = outcome.message.clone();
        observed.scale_blocked = outcome.blocked.clone();
    }

    let sts = read_sts().await?;
    let mut existing_brokers = 0;
    if let Some(status) = sts.as_ref().and_then(|s| s.status.as_ref()) {
        existing_brokers = status.replicas;
        observed.ready_brokers = status.ready_replicas.unwrap_or(0);
        if status.current_revision.is_some() && status.current_revision != status.update_revision {
            observed.outdated_brokers = status.replicas - status.updated_replicas.unwrap_or(0);
        }
    }
    let previous_roll = cluster.status.as_ref().and_then(|s| s.rolling_restart.clone());
    let mut rolling_restart = None;
    let mut rolled_now = false;
    // A StatefulSet without brokers yet (a new cluster) has nothing to roll:
    // no "waiting for the StatefulSet controller" roll, no RollingRestartDone.
    if blocked.is_none() && (existing_brokers > 0 || previous_roll.is_some()) {
        let update_revision = sts.as_ref().and_then(|s| s.status.as_ref()?.update_revision.clone());
        let template_seen = sts
            .as_ref()
            .is_some_and(|s| s.status.as_ref().and_then(|st| st.observed_generation) >= s.metadata.generation);
        let roll = restart::Roll { cluster, names: &names, ctx, admin: &admin, previous: previous_roll.as_ref() };
        let outcome = roll.step(update_revision.as_deref(), template_seen, &observed).await?;
        observed.outdated_brokers = outcome.outdated;
        observed.roll_message = outcome.status.as_ref().map(|s| s.message.clone());
        observed.restart_timeout = outcome.timed_out;
        observed.restart_blocked = outcome.blocked;
        rolled_now = outcome.restarted;
        rolling_restart = outcome.status;
        // Done only when the roll restarted a broker (not when a roll that
        // waited ended without restarting anything, e.g. a reverted change).
        if rolling_restart.is_none() && previous_roll.as_ref().is_some_and(|p| p.current_broker.is_some()) {
            let note = "every broker runs the current pod template".to_string();
            ctx.event(&cluster.object_ref(&()), false, "RollingRestartDone", "Restart", note).await;
        }
        if rolling_restart.is_none() && template_seen && observed.ready_brokers >= spec.replicas {
            restart::balance_leaders(cluster, ctx, &admin, &observed).await;
        }
    }

    ctx.metrics.set_restart_brokers_left(cluster, observed.outdated_brokers);
    let (ready, progressing, degraded) = conditions(spec.replicas, &observed, blocked.as_ref());
    let generation = cluster.metadata.generation;
    let now = Time(Timestamp::now());
    let mut status: KafkaClusterStatus = cluster.status.clone().unwrap_or_default();
    let mut degraded_changed = false;
    let warned = warnings(spec, &observed);
    let warning: ConditionValue = if warned.is_empty() {
        (false, "NoWarnings", "nothing needs attention".to_string())
    } else {
        (true, "NeedsAttention", warned.join("; "))
    };
    for (kind, (value, reason, message)) in
        [(READY, &ready), (PROGRESSING, &progressing), (DEGRADED, &degraded), (WARNING, &warning)]
    {
        let changed = set_condition(&mut status.conditions, kind, *value, reason, message, generation, now.clone());
        degraded_changed |= changed && kind == DEGRADED;
    }
    if let (Some(Blocked::InvalidSpec(reason)), true) = (&blocked, degraded_changed) {
        tracing::warn!(cluster = %builders::object_key(cluster), %reason, "spec cannot be realised; objects left as they are");
        ctx.event(&cluster.object_ref(&()), true, "InvalidSpec", "Validate", reason.clone()).await;
    }
    status.observed_generation = generation;
    status.brokers = existing_brokers;
    status.ready_brokers = observed.ready_brokers;
    status.controller_id = observed.controller_id;
    status.controller_voters = observed.controller_voters.clone();
    status.under_replicated_partitions = observed.under_replicated;
    status.bootstrap = Some(names.bootstrap_address());
    status.rolling_restart = rolling_restart;
    status.warnings = warned.len() as i32;
    let selector = builders::selector_labels(&names).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
    status.selector = Some(selector.join(","));
    let rfc3339 = |s: i64| Timestamp::from_second(s).ok().map(|t| t.to_string());
    status.certificate_authorities = Some(strom_crds::CertificateAuthoritiesStatus {
        cluster_ca_expiry: rfc3339(ca_expiry.cluster),
        clients_ca_expiry: rfc3339(ca_expiry.clients),
    });
    if cluster.status.as_ref() != Some(&status) {
        let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &names.namespace);
        // Every status field is sent, unknown ones as null, so a merge patch clears stale values.
        let patch = serde_json::json!({ "status": status });
        api.patch_status(&names.name, &PatchParams::apply(crate::FIELD_MANAGER), &Patch::Merge(&patch)).await.map_err(
            |source| ClusterError::Kube {
                action: "write status of",
                kind: "KafkaCluster".into(),
                name: names.name.clone(),
                source,
            },
        )?;
    }
    if let Some(e) = apply_error {
        return Err(e);
    }
    let rolling = blocked.is_none() && (rolled_now || status.rolling_restart.is_some());
    let moving = blocked.is_none() && observed.scale_message.is_some();
    let requeue = if (rolling && observed.restart_blocked.is_none()) || moving {
        Duration::from_secs(2)
    } else if ready.0 && observed.scale_blocked.is_none() {
        Duration::from_secs(60)
    } else {
        // Not ready, or a scale-down waits for a topic to change: look again soon.
        Duration::from_secs(10)
    };
    Ok(Action::requeue(requeue))
}

/// Sets the brokers' dynamic settings to the spec's when they differ (no
/// restart: every broker applies them from the metadata).
async fn apply_dynamic_settings(
    cluster: &KafkaCluster,
    ctx: &Context,
    admin: &crate::admin::ClusterAdmin,
    in_force: &BTreeMap<String, String>,
) {
    let wanted = builders::dynamic_broker_settings(cluster);
    if wanted == *in_force {
        return;
    }
    let reference = cluster.object_ref(&());
    match admin.alter_broker_configs(&wanted).await {
        Ok(()) => {
            let changed: std::collections::BTreeSet<&str> = wanted
                .iter()
                .chain(in_force)
                .filter(|(k, v)| wanted.get(*k) != in_force.get(*k) || wanted.get(*k) != Some(*v))
                .map(|(k, _)| k.as_str())
                .collect();
            let changed: Vec<&str> = changed.into_iter().collect();
            let note = format!("applied dynamic broker settings without a restart: {}", changed.join(", "));
            ctx.event(&reference, false, "BrokerSettingsApplied", "Configure", note).await;
        }
        Err(e) => {
            tracing::warn!(cluster = %builders::object_key(cluster), error = %e, "dynamic broker settings refused");
            ctx.event(&reference, true, "BrokerSettingsRefused", "Configure", e.to_string()).await;
        }
    }
}

/// Whether the StatefulSet has seen its spec and every pod is ready and current.
fn sts_settled(sts: &StatefulSet) -> bool {
    let Some(status) = sts.status.as_ref() else { return false };
    let replicas = sts.spec.replicas.unwrap_or(1);
    status.observed_generation >= sts.metadata.generation
        && status.replicas == replicas
        && status.ready_replicas.unwrap_or(0) >= replicas
        && status.current_revision == status.update_revision
}

/// What the API server cannot check: the spec's own rules and the broker settings.
fn validate(cluster: &KafkaCluster) -> Result<(), String> {
    cluster.spec.validate().map_err(|e| e.to_string())?;
    builders::check_broker_config(&cluster.spec.config).map_err(|e| e.to_string())
}

/// Applies the cluster's objects, the StatefulSet with `replicas` pods
/// (more than the spec's while brokers that go are drained).
async fn apply_objects(
    cluster: &KafkaCluster,
    names: &ClusterNames,
    ctx: &Context,
    existing: Option<&StatefulSet>,
    replicas: i32,
) -> Result<(), ClusterError> {
    let ns = &names.namespace;
    let config_map = builders::config_map(cluster);
    let hash = builders::config_hash(&config_map);
    let previous_hash = existing.map(|s| {
        let annotations = s.spec.template.metadata.as_ref().and_then(|m| m.annotations.as_ref());
        annotations.and_then(|a| a.get(builders::CONFIG_HASH_ANNOTATION)).cloned()
    });
    let mut stateful_set = builders::stateful_set(cluster, &hash);
    stateful_set.spec.replicas = Some(replicas);

    apply::<ConfigMap>(&ctx.client, ns, &config_map).await?;
    apply::<Service>(&ctx.client, ns, &builders::headless_service(cluster)).await?;
    apply::<Service>(&ctx.client, ns, &builders::bootstrap_service(cluster)).await?;
    crate::external::reconcile(&ctx.client, cluster, replicas).await?;
    crate::advertised::reconcile(&ctx.client, cluster, replicas).await?;
    apply::<StatefulSet>(&ctx.client, ns, &stateful_set).await?;
    apply::<PodDisruptionBudget>(&ctx.client, ns, &builders::pod_disruption_budget(cluster)).await?;
    if cluster.spec.network_policy.enabled {
        apply::<NetworkPolicy>(&ctx.client, ns, &builders::network_policy(cluster, &ctx.operator_pods)).await?;
    } else {
        delete_network_policy(&ctx.client, cluster, names).await?;
    }

    let reference = cluster.object_ref(&());
    match previous_hash.map(Option::unwrap_or_default) {
        None => {
            let note = format!("created StatefulSet {} with {} brokers", names.name, cluster.spec.replicas);
            ctx.event(&reference, false, "Created", "Apply", note).await;
        }
        Some(old) if old != hash => {
            let note = format!("broker configuration changed (config hash {old:.12} → {hash:.12})");
            ctx.event(&reference, false, "ConfigChanged", "Apply", note).await;
        }
        Some(_) => {}
    }
    Ok(())
}

/// Deletes the cluster's NetworkPolicy (`spec.networkPolicy.enabled: false`)
/// when it is this KafkaCluster's (owner reference): a user's own policy of
/// that name is left alone; already gone is fine.
async fn delete_network_policy(
    client: &kube::Client,
    cluster: &KafkaCluster,
    names: &ClusterNames,
) -> Result<(), ClusterError> {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), &names.namespace);
    let name = names.network_policy();
    let existing = api.get_opt(&name).await.map_err(|source| ClusterError::Kube {
        action: "read",
        kind: "NetworkPolicy".into(),
        name: name.clone(),
        source,
    })?;
    let uid = cluster.metadata.uid.as_deref();
    let ours = existing
        .as_ref()
        .and_then(|p| p.metadata.owner_references.as_ref())
        .is_some_and(|owners| owners.iter().any(|o| Some(o.uid.as_str()) == uid));
    if !ours {
        return Ok(());
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(ClusterError::Kube { action: "delete", kind: "NetworkPolicy".into(), name, source }),
    }
}

/// Requeues a failed reconciliation with backoff (never a crash loop).
pub fn error_policy(cluster: Arc<KafkaCluster>, error: &ClusterError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %builders::object_key(cluster.as_ref()), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> strom_crds::KafkaClusterSpec {
        serde_json::from_value(value).expect("a spec")
    }

    #[test]
    fn warnings_name_what_needs_attention_and_nothing_else() {
        let healthy = Observed { under_replicated: Some(0), ..Observed::default() };
        assert!(warnings(&spec(serde_json::json!({ "replicas": 3 })), &healthy).is_empty());
        assert!(warnings(&spec(serde_json::json!({ "replicas": 1 })), &healthy).is_empty(), "one broker, one voter");
        let even = warnings(&spec(serde_json::json!({ "replicas": 4, "controllerVoters": 4 })), &healthy);
        assert_eq!(even.len(), 1, "{even:?}");
        assert!(even[0].contains("controllerVoters is 4"), "{even:?}");
        let fragile =
            warnings(&spec(serde_json::json!({ "replicas": 2, "storage": { "type": "Ephemeral" } })), &healthy);
        assert_eq!(fragile.len(), 2, "{fragile:?}");
        let lagging = Observed { under_replicated: Some(3), restart_blocked: Some("x".into()), ..Observed::default() };
        let found = warnings(&spec(serde_json::json!({ "replicas": 3 })), &lagging);
        assert_eq!(found, vec!["3 partition(s) are under-replicated".to_string(), "a restart is blocked: x".into()]);
    }

    #[test]
    fn oauth_listeners_without_tls_or_audience_are_warned_about() {
        let healthy = Observed { under_replicated: Some(0), ..Observed::default() };
        let listener = |name: &str, tls: bool, audience: Option<&str>| {
            let mut auth =
                serde_json::json!({ "type": "oauth", "issuer": "https://idp", "jwksUri": "https://idp/jwks" });
            if let Some(audience) = audience {
                auth["audience"] = audience.into();
            }
            serde_json::json!({ "name": name, "port": 9095, "tls": tls, "authentication": auth })
        };
        let with =
            |l: serde_json::Value| spec(serde_json::json!({ "replicas": 1, "listeners": { "additional": [l] } }));
        assert!(warnings(&with(listener("good", true, Some("strom"))), &healthy).is_empty());
        let clear = warnings(&with(listener("clear", false, Some("strom"))), &healthy);
        assert_eq!(clear.len(), 1, "{clear:?}");
        assert!(clear[0].starts_with("listener clear: oauth without tls"), "{clear:?}");
        let open = warnings(&with(listener("open", true, None)), &healthy);
        assert_eq!(open.len(), 1, "{open:?}");
        assert!(open[0].contains("without audience: any token of https://idp is accepted"), "{open:?}");
        let scram = serde_json::json!({ "name": "scram", "port": 9095, "authentication": { "type": "scram-sha-512" } });
        assert!(warnings(&with(scram), &healthy).is_empty(), "SCRAM never sends the password itself");
    }

    #[test]
    fn a_healthy_cluster_is_ready_and_stable() {
        let observed = Observed {
            ready_brokers: 3,
            controller_id: Some(1),
            under_replicated: Some(0),
            offline: Some(0),
            ..Observed::default()
        };
        let (ready, progressing, degraded) = conditions(3, &observed, None);
        assert_eq!((ready.0, ready.1), (true, "ClusterReady"));
        assert_eq!((progressing.0, progressing.1), (false, "Stable"));
        assert_eq!((degraded.0, degraded.1), (false, "Healthy"));
    }

    #[test]
    fn starting_brokers_are_progressing_not_degraded() {
        let observed = Observed { ready_brokers: 1, admin_error: Some("refused".into()), ..Observed::default() };
        let (ready, progressing, degraded) = conditions(3, &observed, None);
        assert_eq!((ready.0, ready.1), (false, "BrokersNotReady"));
        assert_eq!(ready.2, "1/3 brokers ready");
        assert_eq!((progressing.0, progressing.1), (true, "BrokersStarting"));
        assert!(!degraded.0, "an unreachable admin API while brokers start is expected");
    }

    #[test]
    fn under_replication_and_invalid_specs_degrade() {
        let observed =
            Observed { ready_brokers: 3, under_replicated: Some(4), offline: Some(0), ..Observed::default() };
        let (ready, _, degraded) = conditions(3, &observed, None);
        assert!(ready.0, "under-replicated partitions still serve");
        assert_eq!((degraded.0, degraded.1), (true, "UnderReplicated"));
        let invalid = Blocked::InvalidSpec("storage.size is required".into());
        let (ready, progressing, degraded) = conditions(3, &observed, Some(&invalid));
        assert_eq!((ready.0, ready.1, degraded.1), (false, "InvalidSpec", "InvalidSpec"));
        assert_eq!((progressing.0, progressing.1), (false, "Blocked"), "nothing rolls while the spec is invalid");
        let starting = Observed { ready_brokers: 0, ..Observed::default() };
        let (_, progressing, _) = conditions(1, &starting, Some(&invalid));
        assert_eq!((progressing.0, progressing.1), (false, "Blocked"), "not 'BrokersStarting 0/1'");
        assert_eq!(degraded.2, "storage.size is required");
        let observed = Observed { ready_brokers: 3, outdated_brokers: 2, ..Observed::default() };
        let (_, progressing, _) = conditions(3, &observed, None);
        assert_eq!((progressing.0, progressing.1), (true, "RollingRestart"));
        let failed = Blocked::ApplyFailed("apply StatefulSet events: forbidden".into());
        let (_, _, degraded) = conditions(3, &observed, Some(&failed));
        assert_eq!(
            (degraded.0, degraded.1, degraded.2.as_str()),
            (true, "ApplyFailed", "apply StatefulSet events: forbidden")
        );
    }
}
