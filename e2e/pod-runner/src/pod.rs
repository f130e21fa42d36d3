//! One pod's worker: the kubelet's job for a single broker pod.
//!
//! The worker owns the pod's [`BrokerProcess`] and its [`ContainerRuntime`]
//! record, and is the only writer of the pod's status. It prepares the data
//! directory (a claim's directory, by the claim's uid, or an emptyDir
//! under the pod's directory, new for every pod object), writes the ConfigMap's config file and the Secret volumes
//! (refreshed while the broker runs), starts the broker, probes
//! `/readyz` every 500 ms and reports the status; a broker that exits by
//! itself is restarted after a back-off (restartPolicy Always) with its
//! restartCount raised. It ends on a [`Stop`] from the runner:
//!
//! - `Delete`: the pod has a deletionTimestamp. SIGTERM, SIGKILL after the
//!   grace period, then delete the pod object with grace 0 (what the kubelet
//!   does) and remove the emptyDir.
//! - `Gone`: the pod object is gone already: the same without the delete.
//! - `Shutdown`: the runner stops: SIGKILL, nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio::sync::watch;

use crate::context::Context;
use crate::launch::{
    DataVolume, HTTP_PORT, LaunchInput, PodPlan, bind_listeners_to, broker_args, host_data_dir, secret_paths_to_host,
};
use crate::process::{BrokerProcess, exit_code, probe_ready};
use crate::secret::{self, write_secret_volumes};
use crate::status::{ContainerRuntime, pod_status};
use crate::volume::{claim_and_dir, ensure_volume};

/// How often readiness is probed (and a failed status write retried).
const PROBE_PERIOD: Duration = Duration::from_millis(500);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Consecutive failed probes that turn a ready broker not ready (the kubelet's default).
const PROBE_FAILURE_THRESHOLD: u32 = 3;
/// First and longest restart back-off.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A process that ran this long resets the back-off.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(30);
/// Grace period when the pod object vanished without a graceful delete.
const GONE_GRACE: Duration = Duration::from_secs(5);

/// Why a worker must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The pod is being deleted: stop within `grace_seconds`, then delete it.
    Delete {
        /// Seconds between SIGTERM and SIGKILL.
        grace_seconds: i64,
    },
    /// The pod object no longer exists.
    Gone,
    /// The runner is stopping.
    Shutdown,
}

/// Waits for a stop request; a dropped sender means shutdown.
async fn stop_requested(rx: &mut watch::Receiver<Option<Stop>>) -> Stop {
    loop {
        if let Some(stop) = *rx.borrow_and_update() {
            return stop;
        }
        if rx.changed().await.is_err() {
            return Stop::Shutdown;
        }
    }
}

/// One pod's worker (see the module docs).
pub struct PodWorker {
    ctx: Arc<Context>,
    plan: PodPlan,
    runtime: ContainerRuntime,
    pods: Api<Pod>,
    /// A status write failed and must be retried.
    status_dirty: bool,
}

enum Ended {
    Exited(std::io::Result<std::process::ExitStatus>),
    Stop(Stop),
}

impl PodWorker {
    /// A worker for the pod `plan` describes.
    pub fn new(ctx: Arc<Context>, plan: PodPlan) -> PodWorker {
        let runtime = ContainerRuntime::new(plan.container.clone(), plan.image.clone(), plan.ip, Timestamp::now());
        let pods = Api::namespaced(ctx.client.clone(), &plan.namespace);
        PodWorker { ctx, plan, runtime, pods, status_dirty: true }
    }

    /// Runs the pod until `stop` says otherwise.
    pub async fn run(mut self, mut stop: watch::Receiver<Option<Stop>>) {
        let pod = self.plan.name.clone();
        tracing::info!(pod, ip = %self.plan.ip, ordinal = self.plan.ordinal, "starting pod");
        let mut backoff = BACKOFF_MIN;
        let end = loop {
            let process = tokio::select! {
                s = stop_requested(&mut stop) => break s,
                p = self.start() => p,
            };
            let started = Instant::now();
            let mut process = match process {
                Ok(p) => p,
                Err(message) => {
                    tracing::warn!(pod, error = %message, "broker not started");
                    self.runtime.waiting_reason = Some(("CreateContainerError".into(), message));
                    self.write_status().await;
                    tokio::select! {
                        s = stop_requested(&mut stop) => break s,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            self.runtime.started(process.pid(), Timestamp::now());
            self.write_status().await;

            match self.supervise(&mut process, &mut stop).await {
                Ended::Stop(s) => {
                    self.finish_process(process, s).await;
                    break s;
                }
                Ended::Exited(status) => {
                    let (code, message) = match status {
                        Ok(status) => (exit_code(status), format!("broker exited: {status}")),
                        Err(e) => (-1, format!("broker lost: {e}")),
                    };
                    tracing::warn!(pod, code, "{message}; restarting after {backoff:?}");
                    self.runtime.exited(code, Timestamp::now(), message);
                    self.runtime.restart_count += 1;
                    self.write_status().await;
                    if started.elapsed() >= BACKOFF_RESET_AFTER {
                        backoff = BACKOFF_MIN;
                    }
                    tokio::select! {
                        s = stop_requested(&mut stop) => break s,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        };
        self.finish_pod(end).await;
    }

    /// Probes and reports until the process exits or a stop arrives.
    async fn supervise(&mut self, process: &mut BrokerProcess, stop: &mut watch::Receiver<Option<Stop>>) -> Ended {
        let mut ticker = tokio::time::interval(PROBE_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let address = std::net::SocketAddr::from((self.plan.ip, HTTP_PORT));
        let mut failures = 0u32;
        let mut refresh = tokio::time::interval(secret::REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let volumes_dir = self.ctx.pod_dir(&self.plan.uid).join("volumes");
        loop {
            tokio::select! {
                status = process.wait() => return Ended::Exited(status),
                s = stop_requested(stop) => return Ended::Stop(s),
                _ = refresh.tick(), if !self.plan.secrets.is_empty() || self.plan.advertised.is_some() => {
                    if let Err(e) = write_secret_volumes(&self.ctx, &self.plan, &volumes_dir).await {
                        tracing::warn!(pod = %self.plan.name, error = %e, "Secret volumes not refreshed");
                    }
                    if let Err(e) = secret::write_advertised_volume(&self.ctx, &self.plan, &volumes_dir).await {
                        tracing::warn!(pod = %self.plan.name, error = %e, "advertised addresses not refreshed");
                    }
                }
                _ = ticker.tick() => {
                    if probe_ready(address, PROBE_TIMEOUT).await {
                        failures = 0;
                        if self.runtime.set_ready(true, Timestamp::now()) {
                            tracing::info!(pod = %self.plan.name, "ready");
                            self.status_dirty = true;
                        }
                    } else {
                        failures += 1;
                        if (failures >= PROBE_FAILURE_THRESHOLD || !self.runtime.ready)
                            && self.runtime.set_ready(false, Timestamp::now())
                        {
                            tracing::info!(pod = %self.plan.name, "not ready");
                            self.status_dirty = true;
                        }
                    }
                    if self.status_dirty {
                        self.write_status().await;
                    }
                }
            }
        }
    }

    /// Prepares the volume and config and starts the broker; the error is the
    /// message for the container's waiting state.
    async fn start(&mut self) -> Result<BrokerProcess, String> {
        let ctx = self.ctx.clone();
        let plan = &self.plan;
        let volume_dir = match &plan.data {
            DataVolume::Claim(claim) => {
                let dirs = ctx.claim_dirs(&plan.namespace, claim);
                let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &plan.namespace);
                let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
                let (claim_object, dir) = claim_and_dir(&claims, claim, &dirs).await.map_err(|e| e.to_string())?;
                if let Err(e) = ensure_volume(&volumes, &claim_object, &dir, &plan.node).await {
                    // The directory is what the broker uses; the claim's binding is bookkeeping.
                    tracing::warn!(pod = %plan.name, claim, error = %e, "no PersistentVolume for the claim; using its directory anyway");
                }
                dir
            }
            DataVolume::Ephemeral => ctx.pod_dir(&plan.uid).join("volumes").join("data"),
        };
        let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &plan.namespace);
        let config = config_maps
            .get(&plan.config_map)
            .await
            .map_err(|e| format!("ConfigMap {}/{}: {e}", plan.namespace, plan.config_map))?
            .data
            .and_then(|mut d| d.remove(&plan.config_key))
            .ok_or_else(|| {
                format!("ConfigMap {}/{} has no key {}", plan.namespace, plan.config_map, plan.config_key)
            })?;
        let pod_dir = ctx.pod_dir(&plan.uid);
        let volumes_dir = pod_dir.join("volumes");
        let config = secret_paths_to_host(&bind_listeners_to(&config, plan.ip), plan, &volumes_dir);
        let config_file = pod_dir.join(&plan.config_key);
        let data_dir = host_data_dir(&config, plan.data_mount.as_deref(), &volume_dir);
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        tokio::fs::create_dir_all(&pod_dir).await.map_err(|e| io(&format!("creating {}", pod_dir.display()), e))?;
        tokio::fs::create_dir_all(&data_dir).await.map_err(|e| io(&format!("creating {}", data_dir.display()), e))?;
        tokio::fs::write(&config_file, &config)
            .await
            .map_err(|e| io(&format!("writing {}", config_file.display()), e))?;
        write_secret_volumes(&ctx, plan, &volumes_dir).await?;
        secret::write_advertised_volume(&ctx, plan, &volumes_dir).await?;
        let input = LaunchInput {
            config: &config,
            config_file: &config_file,
            data_dir: &data_dir,
            subnet: plan.subnet,
            volumes_dir: &volumes_dir,
        };
        let args = broker_args(plan, &input);
        tracing::info!(pod = %plan.name, args = %args.join(" "), "starting broker");
        BrokerProcess::spawn(&ctx.broker_bin, &args, &ctx.log_file(&plan.name), &ctx.pid_file(&plan.name))
            .await
            .map_err(|e| io(&format!("starting {}", ctx.broker_bin.display()), e))
    }

    /// Stops the process as `stop` asks.
    async fn finish_process(&mut self, process: BrokerProcess, stop: Stop) {
        let pod = &self.plan.name;
        let result = match stop {
            Stop::Delete { grace_seconds } => {
                tracing::info!(pod, grace_seconds, "pod deleted: stopping broker");
                process.stop(Duration::from_secs(grace_seconds.max(0).unsigned_abs())).await
            }
            Stop::Gone => process.stop(GONE_GRACE).await,
            Stop::Shutdown => process.kill().await,
        };
        match result {
            Ok(status) => tracing::info!(pod, %status, "broker stopped"),
            Err(e) => tracing::warn!(pod, error = %e, "broker could not be reaped"),
        }
    }

    /// After the process: delete the pod object and the emptyDir as `stop` asks.
    async fn finish_pod(&mut self, stop: Stop) {
        let pod = self.plan.name.clone();
        if let Stop::Delete { .. } = stop {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(self.plan.uid.clone()), resource_version: None }),
                ..DeleteParams::default()
            };
            match self.pods.delete(&pod, &params).await {
                Ok(_) => tracing::info!(pod, "pod deleted"),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => tracing::warn!(pod, error = %e, "could not delete the pod (the runner retries)"),
            }
        }
        if stop != Stop::Shutdown {
            let dir = self.ctx.pod_dir(&self.plan.uid);
            match tokio::fs::remove_dir_all(&dir).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(pod, dir = %dir.display(), error = %e, "could not remove the pod's directory");
                }
                _ => {}
            }
        }
    }

    /// Writes the status; on failure it stays dirty for the next probe tick.
    async fn write_status(&mut self) {
        let patch = Patch::Merge(json!({"status": pod_status(&self.runtime)}));
        match self.pods.patch_status(&self.plan.name, &PatchParams::default(), &patch).await {
            Ok(_) => self.status_dirty = false,
            Err(e) => {
                self.status_dirty = true;
                tracing::warn!(pod = %self.plan.name, error = %e, "pod status not written");
            }
        }
    }
}
