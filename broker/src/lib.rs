//! Strom broker: a Kafka-compatible streaming broker.
//!
//! The crate is laid out by responsibility:
//!
//! - [`admin`] — the one path of cluster changes from every API: pure rules, then the controller.
//! - [`auth`] — who a client is: the principal its connection authenticated as.
//! - [`advertised`] — follows the `--advertised-overrides` file: this broker's listener addresses, live.
//! - [`admin_service`] — the `Admin` gRPC service for the operator and tools.
//! - [`alloc_guard`] — the process allocator, safe against absurd capacity requests.
//! - [`clock`] — wall-clock milliseconds, Kafka's unit of time.
//! - [`config`] — settings from flags, `STROM_*` env and YAML, with Kafka's names.
//! - [`log`] — the storage engine: segment files, indexes, recovery, retention.
//! - [`metadata`] — the metadata view the Kafka handlers answer from: brokers, topics, partitions, configs.
//! - [`controller`] — the controller quorum: the metadata image replicated by Raft (openraft).
//! - [`replica`] — hosted partitions with their leader epoch and high watermark.
//! - [`group`] — the consumer group coordinator and committed offsets.
//! - [`coordinator_codec`] — bounds-checked primitives of the coordinators' internal-topic records.
//! - [`broker`] — the broker's shared state; starts nothing.
//! - [`membership`] — joining the cluster, heartbeats, `__consumer_offsets`, controlled shutdown.
//! - [`quota`] — client quotas (KIP-13/55/124/219): stored entities, Kafka's precedence, windowed rates, throttles.
//! - [`publisher`] — makes the broker follow the controller's image (leaders, followers, deletions).
//! - [`internal`] — the internal gRPC server: Raft, replication and admin services.
//! - [`protocol`] — the Kafka wire protocol: framing, codec, connections, API handlers.
//! - [`log_lines`] — rate limits for log lines a client can cause.
//! - [`open_files`] — the open-file budget and the partitions it lets this broker host.
//! - [`metrics`] — Prometheus metrics: recorded counters and state gauges computed at scrape time.
//! - [`scrape`] — what `/metrics` answers: recorded metrics and state gauges computed at scrape time.
//! - [`readiness`] — `/readyz`: joined the cluster, and followed replicas back in their ISR after a start.
//! - [`server`] — starts the broker's parts; listeners, housekeeping and shutdown.
//! - [`tls`] — mutual TLS and caller identities on the internal plane.

pub mod admin;
pub mod admin_service;
pub mod advertised;
pub mod alloc_guard;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod config;
pub mod controller;
pub mod coordinator_codec;
pub mod group;
pub mod internal;
pub mod log;
pub mod log_lines;
pub mod membership;
pub mod metadata;
pub mod metrics;
pub mod open_files;
pub mod protocol;
pub mod publisher;
pub mod quota;
pub mod readiness;
pub mod replica;
pub mod scrape;
pub mod server;
pub mod tls;
pub mod txn;
pub mod txn_markers_service;

/// Every binary linking the broker (the broker itself, tests, fuzz targets)
/// allocates through the guard.
#[global_allocator]
static ALLOCATOR: alloc_guard::GuardedAllocator = alloc_guard::GuardedAllocator;
