//! The Strom operator: keeps Strom clusters, their topics and their users as
//! their `KafkaCluster`, `KafkaTopic` and `KafkaUser` resources declare.
//!
//! - [`builders`] — the Kubernetes objects of a cluster as plain values (pure).
//! - [`assignment`] — replica placement and preferred leaders for new partitions (pure).
//! - [`admin`] — client of the brokers' Admin gRPC API (mutual TLS).
//! - [`internal_ca`] — each cluster's internal CA, broker certificates, the operator's identity.
//! - [`ca_plan`] — CA creation, renewal and retirement, and leaf re-issue (pure).
//! - [`listeners`] — the brokers' Kafka listeners as broker settings and ports (pure).
//! - [`advertised`] — each broker's external address, in the ConfigMap the brokers advertise it from.
//! - [`ca_secrets`] — the cluster CA and clients CA Secrets: create, renew, retire.
//! - [`context`] — what every reconcile shares: client, events, metrics, admin addresses.
//! - [`events`] — Kubernetes Events, one per distinct message.
//! - [`cluster`] — the `KafkaCluster` reconciler.
//! - [`rolling`] — rolling restarts: which broker next, and when (pure).
//! - [`leaders`] — preferred-leader election when leadership is skewed (pure).
//! - [`rebalance`] — replica moves for scaling, draining and replication-factor changes (pure).
//! - [`topic`] — the `KafkaTopic` reconciler (finalizer; the brokers' topics).
//! - [`user`] — the `KafkaUser` reconciler (finalizer; SCRAM credential, ACLs, password Secret).
//! - [`user_plan`] — a KafkaUser's ACLs, their changes, its Secret and password (pure).
//! - [`user_tls`] — a `tls` KafkaUser's client certificate and Secret data (pure).
//! - [`leader_election`] — a Lease so only one operator replica acts.
//! - [`telemetry`] — Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` server.
//! - [`crd_install`] — applies the operator's own CRDs at start (Helm never upgrades them).
//! - [`run`] — wiring: watch scope, controllers, leader election, shutdown.

pub mod admin;
pub mod advertised;
pub mod assignment;
pub mod builders;
pub mod ca_plan;
pub mod ca_secrets;
pub mod cluster;
pub mod context;
pub mod crd_install;
pub mod events;
pub mod external;
pub mod internal_ca;
pub mod leader_election;
pub mod leaders;
pub mod listeners;
pub mod rack_batch;
pub mod rebalance;
pub mod rolling;
pub mod run;
pub mod telemetry;
pub mod topic;
pub mod user;
pub mod user_plan;
pub mod user_tls;

/// Field manager used for server-side apply and status patches.
pub const FIELD_MANAGER: &str = "strom-operator";
