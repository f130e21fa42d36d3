//! The Strom operator: keeps Strom clusters and their topics as their
//! `KafkaCluster` and `KafkaTopic` resources declare.
//!
//! - [`builders`] — the Kubernetes objects of a cluster as plain values (pure).
//! - [`assignment`] — replica placement and preferred leaders for new partitions (pure).
//! - [`admin`] — client of the brokers' Admin gRPC API (mutual TLS).
//! - [`internal_ca`] — each cluster's internal CA, broker certificates, the operator's identity.
//! - [`context`] — what every reconcile shares: client, events, metrics, admin addresses.
//! - [`events`] — Kubernetes Events, one per distinct message.
//! - [`cluster`] — the `KafkaCluster` reconciler.
//! - [`rolling`] — rolling restarts: which broker next, and when (pure).
//! - [`leaders`] — preferred-leader election when leadership is skewed (pure).
//! - [`rebalance`] — replica moves for scaling, draining and replication-factor changes (pure).
//! - [`topic`] — the `KafkaTopic` reconciler (finalizer; the brokers' topics).
//! - [`leader_election`] — a Lease so only one operator replica acts.
//! - [`telemetry`] — Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` server.
//! - [`crd_install`] — applies the operator's own CRDs at start (Helm never upgrades them).
//! - [`run`] — wiring: watch scope, controllers, leader election, shutdown.

pub mod admin;
pub mod assignment;
pub mod builders;
pub mod cluster;
pub mod context;
pub mod crd_install;
pub mod events;
pub mod internal_ca;
pub mod leader_election;
pub mod leaders;
pub mod rack_batch;
pub mod rebalance;
pub mod rolling;
pub mod run;
pub mod telemetry;
pub mod topic;

/// Field manager used for server-side apply and status patches.
pub const FIELD_MANAGER: &str = "strom-operator";
