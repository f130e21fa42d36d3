//! Leader election on a `coordination.k8s.io/v1` Lease, so that two or more
//! operator replicas can run and only one reconciles.
//!
//! The holder renews the Lease every `renew_period`. A candidate takes it
//! over once it has seen the same Lease record (same resourceVersion) for a
//! whole `leaseDurationSeconds` on its own monotonic clock — as client-go
//! does, so clocks of different nodes never have to agree. Every write is a
//! replace with the Lease's resourceVersion, so two candidates racing for an
//! expired Lease cannot both win: the API server accepts one write and
//! answers 409 Conflict to the other.
//!
//! A holder gives up at its renew deadline (two thirds of the lease
//! duration, every API call bounded by a timeout), before any candidate can
//! take over, and must then stop acting at once: the caller drops its
//! controllers without waiting for them. On a clean shutdown the caller
//! stops its controllers first and only then releases the Lease, so a
//! standby never acts while the old leader still does.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

/// Settings of the election.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// How often the holder renews, and candidates retry.
    pub renew_period: Duration,
}

/// One replica's handle on the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The Lease record last seen (its resourceVersion) and when it was first seen locally.
    observed: Mutex<Option<(String, tokio::time::Instant)>>,
}

/// The outcome of one attempt to take or renew the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the Lease.
    Held,
    /// Another replica holds a valid Lease.
    HeldBy(String),
}

/// A failed attempt on the Lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API server refused or failed.
    #[error("lease API call failed: {0}")]
    Api(#[source] kube::Error),
    /// The API server did not answer within the renew deadline.
    #[error("the API server did not answer within {0:?}")]
    Timeout(Duration),
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}

impl LeaseLock {
    /// A lock on the Lease `config.namespace/config.name`.
    pub fn new(client: kube::Client, config: LeaseConfig) -> LeaseLock {
        LeaseLock { api: Api::namespaced(client, &config.namespace), config, observed: Mutex::new(None) }
    }

    /// The renew deadline: a holder that has not renewed for this long gives up.
    pub fn renew_deadline(&self) -> Duration {
        self.config.lease_duration * 2 / 3
    }

    /// Whether the record `version` has stayed unchanged, as seen locally, for a lease duration.
    fn unchanged_for_a_lease_duration(&self, version: &str) -> bool {
        let now = tokio::time::Instant::now();
        let mut observed = self.observed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match observed.as_ref() {
            Some((seen, since)) if seen == version => now.duration_since(*since) >= self.config.lease_duration,
            _ => {
                *observed = Some((version.to_string(), now));
                false
            }
        }
    }

    fn duration_secs(&self) -> i32 {
        self.config.lease_duration.as_secs().clamp(1, i32::MAX as u64) as i32
    }

    /// One attempt to take the Lease (when free or expired) or renew it (when
    /// held), bounded by the renew deadline.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, LeaseError> {
        match tokio::time::timeout(self.renew_deadline(), self.attempt()).await {
            Ok(result) => result.map_err(LeaseError::Api),
            Err(_) => Err(LeaseError::Timeout(self.renew_deadline())),
        }
    }

    async fn attempt(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let me = &self.config.identity;
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Held),
                Err(e) if is_conflict(&e) => Ok(Attempt::HeldBy("(another replica, just now)".into())),
                Err(e) => Err(e),
            };
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let expired = self.unchanged_for_a_lease_duration(&version);
        match holder {
            Some(h) if h == *me => {}
            Some(h) if !expired => return Ok(Attempt::HeldBy(h)),
            _ => {
                spec.holder_identity = Some(me.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        spec.lease_duration_seconds = Some(self.duration_secs());
        spec.renew_time = Some(MicroTime(now));
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Held),
            Err(e) if is_conflict(&e) => Ok(Attempt::HeldBy("(another replica, concurrently)".into())),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the Lease; `None` when `cancel` fires first.
    pub async fn acquire(&self, cancel: &CancellationToken) -> Option<()> {
        let mut last_holder = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                    return Some(());
                }
                Ok(Attempt::HeldBy(holder)) => {
                    if last_holder.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.config.name, %holder, "standing by: another replica leads");
                        last_holder = Some(holder);
                    }
                }
                Err(e) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "cannot read or take the lease; retrying")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(self.config.renew_period) => {}
            }
        }
    }

    /// Renews the Lease until `cancel` fires (returns `Ok`, still holding it:
    /// call [`LeaseLock::release`] once nothing acts any more) or leadership
    /// is lost (returns `Err` with the reason; stop acting at once).
    pub async fn hold(&self, cancel: &CancellationToken) -> Result<(), String> {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.config.renew_period) => {}
            }
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => renewed = tokio::time::Instant::now(),
                Ok(Attempt::HeldBy(holder)) => return Err(format!("the lease is now held by {holder}")),
                Err(e) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "cannot renew the lease");
                    if renewed.elapsed() >= self.renew_deadline() {
                        return Err(format!("could not renew the lease within {:?}: {e}", self.renew_deadline()));
                    }
                }
            }
        }
    }

    /// Gives the Lease up (holder cleared), if this replica still holds it.
    pub async fn release(&self) {
        let read = tokio::time::timeout(self.renew_deadline(), self.api.get_opt(&self.config.name)).await;
        let Ok(Ok(Some(mut lease))) = read else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!(lease = %self.config.name, "released the lease"),
            Err(e) => {
                tracing::warn!(lease = %self.config.name, error = %e, "could not release the lease; it expires by itself")
            }
        }
    }
}
