//! Leader election on a `coordination.k8s.io/v1` Lease, so that two or more
//! operator replicas can run and only one reconciles.
//!
//! The holder renews the Lease every `renew_period`; a candidate takes it
//! over once `renewTime + leaseDurationSeconds` has passed. Every write is a
//! replace with the Lease's resourceVersion, so two candidates racing for an
//! expired Lease cannot both win: the API server accepts one write and
//! answers 409 Conflict to the other. A holder that cannot renew for a whole
//! lease duration, or finds another holder, has lost leadership and must stop
//! acting at once (the binary exits and is restarted). On a clean shutdown
//! the holder releases the Lease so a standby takes over without waiting.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
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
}

/// The outcome of one attempt to take or renew the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the Lease.
    Held,
    /// Another replica holds a valid Lease.
    HeldBy(String),
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}

impl LeaseLock {
    /// A lock on the Lease `config.namespace/config.name`.
    pub fn new(client: kube::Client, config: LeaseConfig) -> LeaseLock {
        LeaseLock { api: Api::namespaced(client, &config.namespace), config }
    }

    fn duration_secs(&self) -> i32 {
        self.config.lease_duration.as_secs().clamp(1, i32::MAX as u64) as i32
    }

    /// One attempt to take the Lease (when free or expired) or renew it (when held).
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
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
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(secs)) => {
                now > renewed.checked_add(SignedDuration::from_secs(secs.into())).unwrap_or(*renewed)
            }
            _ => true,
        };
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

    /// Renews the Lease until `cancel` fires (then releases it and returns
    /// `Ok`) or leadership is lost (returns `Err` with the reason).
    pub async fn hold(&self, cancel: &CancellationToken) -> Result<(), String> {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.release().await;
                    return Ok(());
                }
                _ = tokio::time::sleep(self.config.renew_period) => {}
            }
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => renewed = tokio::time::Instant::now(),
                Ok(Attempt::HeldBy(holder)) => return Err(format!("the lease is now held by {holder}")),
                Err(e) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "cannot renew the lease");
                    if renewed.elapsed() >= self.config.lease_duration {
                        return Err(format!("could not renew the lease for {:?}: {e}", self.config.lease_duration));
                    }
                }
            }
        }
    }

    /// Gives the Lease up (holder cleared), if this replica still holds it.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
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
