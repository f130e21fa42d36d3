//! The runner's loop: which pods to run, bind, stop and clean up.
//!
//! Every 300 ms the runner lists the pods of its namespace that match its
//! selector and compares them with its workers (one [`PodWorker`] task per
//! pod uid, owned by this loop alone):
//!
//! - a pod without `spec.nodeName`: with `--external-scheduler`, the volumes
//!   of its claims are provisioned (kube-scheduler's volume binding waits for
//!   them) and kube-scheduler binds it; otherwise, after a second, the runner
//!   binds it to one of its nodes through the `pods/binding` subresource, the
//!   node by pod ordinal modulo the number of nodes (zones): the spread a
//!   zone-spreading scheduler gives a StatefulSet;
//! - a pod on one of the runner's nodes without a worker gets one;
//! - a pod with a deletionTimestamp is told to stop within its grace period
//!   (its worker deletes the object afterwards); one without a worker (the
//!   runner restarted meanwhile) is deleted at once;
//! - a worker whose pod disappeared from the list is told `Gone`.
//!
//! On shutdown every worker is told to stop (its broker is killed) and the
//! loop waits for them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::address::Subnet;
use crate::context::Context;
use crate::launch::{PodPlan, pod_ordinal};
use crate::pod::{PodWorker, Stop};
use crate::subnets::{SubnetPool, set_of};

/// How often pods are listed.
const POLL: Duration = Duration::from_millis(300);
/// How long a pod may stay unscheduled before the runner binds it itself.
const BIND_AFTER: Duration = Duration::from_secs(1);
/// How long shutdown waits for the workers.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);

/// Where the pods' addresses come from.
pub enum Addresses {
    /// One StatefulSet: every pod in this subnet (`--subnet`).
    Subnet(Subnet),
    /// Any number of StatefulSets, one subnet each (`--subnet-pool`),
    /// remembered in `DIR/subnets`.
    Pool(SubnetPool),
}

struct Worker {
    name: String,
    stop: watch::Sender<Option<Stop>>,
    task: JoinHandle<()>,
}

/// The runner's loop (see the module docs).
pub struct Runner {
    ctx: Arc<Context>,
    pods: Api<Pod>,
    addresses: Addresses,
    workers: HashMap<String, Worker>,
    /// uids whose worker has ended (their pods are on their way out).
    finished: HashSet<String>,
    /// uids first seen unscheduled, and when.
    unscheduled: HashMap<String, Instant>,
    /// uids the runner could not plan (reported once).
    rejected: HashSet<String>,
    /// uids of unscheduled pods whose claims have their volumes.
    provisioned: HashSet<String>,
    /// uids of matching pods bound to another runner's node (reported once).
    foreign: HashSet<String>,
}

impl Runner {
    /// A runner for `ctx`, giving pods `addresses`.
    pub fn new(ctx: Arc<Context>, addresses: Addresses) -> Runner {
        let pods = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        Runner {
            ctx,
            pods,
            addresses,
            workers: HashMap::new(),
            finished: HashSet::new(),
            unscheduled: HashMap::new(),
            rejected: HashSet::new(),
            provisioned: HashSet::new(),
            foreign: HashSet::new(),
        }
    }

    /// Runs until `shutdown`, then stops every broker.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => self.sync().await,
            }
        }
        tracing::info!(workers = self.workers.len(), "stopping all brokers");
        for worker in self.workers.values() {
            let _ = worker.stop.send(Some(Stop::Shutdown));
        }
        let tasks = self.workers.drain().map(|(_, w)| w.task);
        if tokio::time::timeout(SHUTDOWN_WAIT, futures::future::join_all(tasks)).await.is_err() {
            tracing::warn!("workers did not stop in time");
        }
    }

    /// One pass over the pods.
    async fn sync(&mut self) {
        let params = ListParams::default().labels(&self.ctx.selector);
        let pods = match self.pods.list(&params).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!(error = %e, "listing pods failed");
                return;
            }
        };
        let mut seen = HashSet::new();
        for pod in &pods {
            let (Some(uid), Some(name)) = (pod.metadata.uid.clone(), pod.metadata.name.clone()) else { continue };
            seen.insert(uid.clone());
            let deleting = pod.metadata.deletion_timestamp.is_some();
            match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                None if !deleting => self.schedule(pod, &uid, &name).await,
                None => {}
                Some(node) if !self.ctx.nodes.iter().any(|n| n == node) => {
                    self.foreign_pod(&uid, &name, node, deleting)
                }
                Some(_) if deleting => self.delete(pod, &uid, &name).await,
                Some(_) => self.start(pod, &uid),
            }
        }
        for (uid, worker) in &self.workers {
            if !seen.contains(uid) {
                worker.stop.send_if_modified(|s| {
                    let first = s.is_none();
                    if first {
                        tracing::info!(pod = %worker.name, "pod object is gone: stopping its broker");
                        *s = Some(Stop::Gone);
                    }
                    first
                });
            }
        }
        let ended: Vec<String> =
            self.workers.iter().filter(|(_, w)| w.task.is_finished()).map(|(uid, _)| uid.clone()).collect();
        for uid in ended {
            self.workers.remove(&uid);
            self.finished.insert(uid);
        }
        self.finished.retain(|uid| seen.contains(uid));
        self.unscheduled.retain(|uid, _| seen.contains(uid));
        self.rejected.retain(|uid| seen.contains(uid));
        self.provisioned.retain(|uid| seen.contains(uid));
        self.foreign.retain(|uid| seen.contains(uid));
    }

    /// A pod of this runner's selector bound to a node it does not play
    /// (kube-scheduler chose another runner's node): reported once.
    fn foreign_pod(&mut self, uid: &str, name: &str, node: &str, deleting: bool) {
        if deleting || !self.foreign.insert(uid.to_string()) {
            return;
        }
        tracing::warn!(
            pod = name,
            node,
            "a pod of this runner's selector is bound to a node this runner does not play: nothing runs it here \
             (with several runners on one plane, keep each cluster on its runner's nodes with \
             spec.template.nodeSelector {}: <its --node-name>)",
            crate::node::RUNNER_LABEL
        );
    }

    /// Binds an unscheduled pod to one of the runner's nodes once it waited
    /// [`BIND_AFTER`]: by ordinal modulo the number of nodes.
    async fn schedule(&mut self, pod: &Pod, uid: &str, name: &str) {
        if self.ctx.external_scheduler {
            self.provision(pod, uid, name).await;
            return;
        }
        let first_seen = *self.unscheduled.entry(uid.to_string()).or_insert_with(Instant::now);
        if first_seen.elapsed() < BIND_AFTER {
            return;
        }
        let ordinal = pod_ordinal(pod).unwrap_or(0) as usize;
        let node = &self.ctx.nodes[ordinal % self.ctx.nodes.len().max(1)];
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": self.ctx.namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        match self
            .pods
            .create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &binding)
            .await
        {
            Ok(_) => tracing::info!(pod = name, node = %node, "bound pod to a node of this runner"),
            Err(e) => tracing::warn!(pod = name, error = %e, "binding failed"),
        }
    }

    /// Gives every claim of an unscheduled pod a volume (a storage
    /// provisioner's part), so that kube-scheduler, which does not place a pod
    /// whose claims are unbound, can bind it.
    async fn provision(&mut self, pod: &Pod, uid: &str, name: &str) {
        if self.provisioned.contains(uid) {
            return;
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), &self.ctx.namespace);
        let volumes: Api<PersistentVolume> = Api::all(self.ctx.client.clone());
        let node = self.ctx.nodes.first().map_or("", String::as_str);
        let names = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()));
        for claim in names {
            let dirs = self.ctx.claim_dirs(&self.ctx.namespace, &claim);
            let served = crate::volume::claim_and_dir(&claims, &claim, &dirs).await.map_err(|e| e.to_string());
            let ensured = match served {
                Ok((object, dir)) => {
                    crate::volume::ensure_volume(&volumes, &object, &dir, node).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e),
            };
            if let Err(e) = ensured {
                // Retried on the next pass (the claim may not exist yet, or be
                // a deleted one the StatefulSet controller will recreate).
                tracing::info!(pod = name, claim, error = %e, "no volume for the claim yet");
                return;
            }
        }
        self.provisioned.insert(uid.to_string());
    }

    /// Starts a worker for a pod on this node that has none.
    fn start(&mut self, pod: &Pod, uid: &str) {
        if self.workers.contains_key(uid) || self.finished.contains(uid) || self.rejected.contains(uid) {
            return;
        }
        let subnet = match self.subnet_of(pod) {
            Ok(subnet) => subnet,
            Err(e) => {
                tracing::error!(error = %e, "cannot run pod");
                self.rejected.insert(uid.to_string());
                return;
            }
        };
        let plan = match PodPlan::of(pod, subnet) {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(error = %e, "cannot run pod");
                self.rejected.insert(uid.to_string());
                return;
            }
        };
        let (stop, stop_rx) = watch::channel(None);
        let name = plan.name.clone();
        let task = tokio::spawn(PodWorker::new(self.ctx.clone(), plan).run(stop_rx));
        self.workers.insert(uid.to_string(), Worker { name, stop, task });
    }

    /// The subnet of `pod`'s StatefulSet; a new assignment is saved to
    /// `DIR/subnets` before it is used.
    fn subnet_of(&mut self, pod: &Pod) -> Result<Subnet, String> {
        let pool = match &mut self.addresses {
            Addresses::Subnet(subnet) => return Ok(*subnet),
            Addresses::Pool(pool) => pool,
        };
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let set = set_of(&self.ctx.namespace, name)
            .ok_or_else(|| format!("pod {name} is not named <statefulset>-<ordinal>"))?;
        let (subnet, new) = pool.subnet_for(&set, subnet_in_use).map_err(|e| e.to_string())?;
        if new {
            let file = self.ctx.subnets_file();
            std::fs::write(&file, pool.to_text()).map_err(|e| format!("writing {}: {e}", file.display()))?;
            tracing::info!(statefulset = %set, %subnet, "assigned a subnet");
        }
        Ok(subnet)
    }

    /// A pod on this node is being deleted: its worker stops it, or, without
    /// a worker, the object is deleted at once.
    async fn delete(&mut self, pod: &Pod, uid: &str, name: &str) {
        let grace_seconds = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        if let Some(worker) = self.workers.get(uid) {
            worker.stop.send_if_modified(|s| {
                let first = s.is_none();
                if first {
                    *s = Some(Stop::Delete { grace_seconds });
                }
                first
            });
            return;
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..DeleteParams::default()
        };
        match self.pods.delete(name, &params).await {
            Ok(_) => tracing::info!(pod = name, "deleted a terminating pod with no broker"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = name, error = %e, "could not delete the pod"),
        }
    }
}

/// Whether another process listens on the Kafka port of the subnet's first
/// pod address (another runner's broker, a test's).
fn subnet_in_use(subnet: Subnet) -> bool {
    subnet.pod_ip(0).is_some_and(|ip| std::net::TcpListener::bind((ip, crate::launch::KAFKA_PORT)).is_err())
}
