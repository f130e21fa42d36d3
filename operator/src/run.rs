//! Wiring of the operator process: the HTTP endpoints, leader election, and
//! the three controllers over the watch scope (every namespace, or a list).
//!
//! Order: serve `/healthz` first; wait for the Lease (a standby is ready but
//! idle); as the leader, apply the CRDs ([`crate::crd_install`], unless turned
//! off), then run the controllers until shutdown or until leadership is
//! lost. Losing leadership ends the run with an error so the process exits
//! and nothing acts without the Lease.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use strom_crds::{KafkaCluster, KafkaTopic, KafkaUser};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::leader_election::{LeaseConfig, LeaseLock};
use crate::telemetry::{self, Metrics};
use crate::{cluster, topic, user};

/// Everything the operator needs to run.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// How often a settled KafkaTopic is compared with its topic (drift correction).
    pub resync: std::time::Duration,
    /// Namespaces to watch; empty means every namespace.
    pub namespaces: Vec<String>,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub http_listen: SocketAddr,
    /// The leader Lease; `None` runs without election (a single replica).
    pub lease: Option<LeaseConfig>,
    /// This replica's identity in events and the Lease.
    pub identity: String,
    /// `namespace/name` of a cluster → broker admin addresses (tests, development).
    pub admin_overrides: BTreeMap<String, Vec<String>>,
    /// Dial brokers at their pods' IPs (an operator outside the cluster network).
    pub admin_via_pod_ip: bool,
    /// Apply the CRDs at start (server-side apply), so an upgrade of the
    /// operator upgrades them too.
    pub install_crds: bool,
    /// Where the operator's pods run, for the clusters' NetworkPolicies.
    pub operator_pods: crate::builders::OperatorPods,
}

/// Runs the operator until `shutdown` fires; `Err` when leadership is lost
/// or the HTTP endpoints cannot be served.
pub async fn run(client: kube::Client, config: OperatorConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = Metrics::new()?;
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve /metrics, /healthz, /readyz on {}: {e}", config.http_listen))?;
    let http = tokio::spawn(telemetry::serve(listener, metrics.clone(), shutdown.clone()));
    metrics.set_ready();

    let lock = config.lease.clone().map(|lease| LeaseLock::new(client.clone(), lease));
    if let Some(lock) = &lock
        && lock.acquire(&shutdown).await.is_none()
    {
        return Ok(());
    }
    metrics.leader.set(1);

    let ctx = Arc::new(Context::new(
        client.clone(),
        config.identity.clone(),
        metrics.clone(),
        config.admin_overrides,
        config.admin_via_pod_ip,
        config.resync,
        config.operator_pods.clone(),
    ));
    let controllers_stop = shutdown.child_token();
    let mut controllers = Vec::new();
    let scopes: Vec<Option<String>> =
        if config.namespaces.is_empty() { vec![None] } else { config.namespaces.iter().cloned().map(Some).collect() };
    for scope in scopes {
        controllers.push(cluster_controller(&client, scope.as_deref(), ctx.clone(), controllers_stop.clone()));
        controllers.push(topic_controller(&client, scope.as_deref(), ctx.clone(), controllers_stop.clone()));
        controllers.push(user_controller(&client, scope.as_deref(), ctx.clone(), controllers_stop.clone()));
    }
    // The CRDs are applied under the Lease (only the leader writes them, and the
    // Lease is renewed meanwhile), before the controllers start watching.
    let install_crds = config.install_crds.then(|| client.clone());
    let all = async move {
        if let Some(client) = install_crds {
            crate::crd_install::install_crds(&client).await?;
        }
        futures::future::join_all(controllers).await;
        anyhow::Ok(())
    };

    let outcome = match &lock {
        Some(lock) => {
            let hold_stop = CancellationToken::new();
            let mut controllers_done = std::pin::pin!(all);
            tokio::select! {
                lost = lock.hold(&hold_stop) => {
                    // Lost (or never confirmed) leadership: stop acting now. Dropping the
                    // controllers' futures cancels every reconcile in flight; the process exits.
                    let reason = lost.err().unwrap_or_else(|| "lease holding stopped".to_string());
                    Err(anyhow::anyhow!("lost leadership: {reason}"))
                }
                done = &mut controllers_done => {
                    // Shutdown (or the CRDs could not be installed): every reconcile has
                    // finished; only now may a standby take over.
                    hold_stop.cancel();
                    lock.release().await;
                    done
                }
            }
        }
        None => all.await,
    };
    metrics.leader.set(0);
    shutdown.cancel();
    match http.await {
        Ok(Err(e)) => return Err(anyhow::anyhow!("HTTP endpoints on {}: {e}", config.http_listen)),
        Err(e) => return Err(anyhow::anyhow!("HTTP endpoints task failed: {e}")),
        Ok(Ok(())) => {}
    }
    outcome
}

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn cluster_controller(
    client: &kube::Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) -> BoxFuture<'static, ()> {
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=strom-operator");
    let controller = Controller::new(api::<KafkaCluster>(client, namespace), watcher::Config::default());
    let clusters = controller.store();
    ctx.metrics.count_objects("KafkaCluster", move || clusters.state().len());
    Box::pin(
        controller
            .owns(api::<StatefulSet>(client, namespace), owned.clone())
            .owns(api::<ConfigMap>(client, namespace), owned.clone())
            .owns(api::<Service>(client, namespace), owned.clone())
            // The CA Secrets: a `strom.dev/force-renew` annotation acts at once.
            .owns(api::<Secret>(client, namespace), owned.clone())
            .owns(api::<PodDisruptionBudget>(client, namespace), owned.clone())
            .owns(api::<NetworkPolicy>(client, namespace), owned)
            .graceful_shutdown_on(async move { stop.cancelled().await })
            .run(cluster::reconcile, cluster::error_policy, ctx)
            .for_each(|result| async move { log_controller_error("KafkaCluster", result) }),
    )
}

fn topic_controller(
    client: &kube::Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) -> BoxFuture<'static, ()> {
    let controller = Controller::new(api::<KafkaTopic>(client, namespace), watcher::Config::default());
    let topics = controller.store();
    ctx.add_topic_store(topics.clone());
    let counted = topics.clone();
    ctx.metrics.count_objects("KafkaTopic", move || counted.state().len());
    Box::pin(
        controller
            // A cluster appearing, or its brokers changing, re-runs the topics that name it.
            .watches(api::<KafkaCluster>(client, namespace), watcher::Config::default(), move |cluster| {
                let namespace = cluster.namespace();
                let name = cluster.name_any();
                topics
                    .state()
                    .into_iter()
                    .filter(|t| t.namespace() == namespace && t.spec.cluster_ref == name)
                    .map(|t| ObjectRef::from_obj(t.as_ref()))
                    .collect::<Vec<_>>()
            })
            .graceful_shutdown_on(async move { stop.cancelled().await })
            .run(topic::reconcile, topic::error_policy, ctx)
            .for_each(|result| async move { log_controller_error("KafkaTopic", result) }),
    )
}

fn user_controller(
    client: &kube::Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) -> BoxFuture<'static, ()> {
    let controller = Controller::new(api::<KafkaUser>(client, namespace), watcher::Config::default());
    let users = controller.store();
    let counted = users.clone();
    ctx.metrics.count_objects("KafkaUser", move || counted.state().len());
    // Only the Secrets the operator wrote (a password edited there is a
    // rotation); a Secret a user's secretKeyRef names is re-read at every resync.
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=strom-operator,strom.dev/kafka-user");
    Box::pin(
        controller
            .owns(api::<Secret>(client, namespace), owned)
            // A cluster appearing re-runs the users that name it.
            .watches(api::<KafkaCluster>(client, namespace), watcher::Config::default(), move |cluster| {
                let namespace = cluster.namespace();
                let name = cluster.name_any();
                users
                    .state()
                    .into_iter()
                    .filter(|u| u.namespace() == namespace && u.spec.cluster_ref == name)
                    .map(|u| ObjectRef::from_obj(u.as_ref()))
                    .collect::<Vec<_>>()
            })
            .graceful_shutdown_on(async move { stop.cancelled().await })
            .run(user::reconcile, user::error_policy, ctx)
            .for_each(|result| async move { log_controller_error("KafkaUser", result) }),
    )
}

/// Logs what a controller's stream reports. A watch that fails (most often a
/// missing `list`/`watch` permission: the API server's message names the verb,
/// resource and service account) is a warning, as it stops the operator from
/// seeing changes; failed reconciles are logged by the error policies.
fn log_controller_error<T, R: std::error::Error, Q: std::error::Error>(
    controller: &str,
    result: Result<T, kube::runtime::controller::Error<R, Q>>,
) {
    use kube::runtime::controller::Error;
    match result {
        Ok(_) => {}
        Err(Error::QueueError(e)) => {
            tracing::warn!(controller, error = %e, "cannot watch resources; retrying (are the CRDs installed? does the operator's RBAC allow list and watch?)")
        }
        Err(e) => tracing::debug!(controller, error = %e, "controller"),
    }
}
