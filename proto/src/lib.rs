//! Strom's internal gRPC API (port 9093): the controller quorum's Raft RPCs,
//! follower fetch, and the admin API for the operator and tools.
//!
//! The `.proto` files live in `proto/proto/` and are compiled by `build.rs`
//! with `protox` (pure Rust; no system `protoc`).
//!
//! - [`raft`] — `Raft`: openraft's append-entries, vote and install-snapshot
//!   RPCs, plus `Propose` to forward a metadata command to the active
//!   controller. Their payloads are openraft's own message types serialized
//!   with serde (JSON) and carried as `bytes`. Mirroring them field by field
//!   in protobuf would tie this contract to openraft's internals (generic log
//!   entries, vote and membership shapes that change between openraft
//!   versions) for no gain: only Strom controllers speak this service, and
//!   they always run the same openraft version as each other within a
//!   release. The envelope keeps the service stable while the payload follows
//!   the library.
//! - [`replication`] — `Replication`: `FetchRecords` (fetch offset, last
//!   fetched epoch, replica id, max bytes → record batches, high watermark,
//!   log start offset, diverging epoch), `FetchPartitions` (the same for
//!   every partition a follower copies from one leader, in one long poll),
//!   `FetchStream` (the same long polls, one after another on one
//!   persistent bidirectional stream)
//!   and `OffsetForLeaderEpoch`, typed,
//!   because the broker implements both sides and the records are Kafka's
//!   RecordBatch v2 bytes as stored.
//! - [`admin`] — `Admin`: describe cluster, create/delete topic with an
//!   explicit assignment, elect leaders, controlled shutdown, safe-to-restart.
//!   Failures of the operation are Kafka error codes with a message in the
//!   response; a non-OK gRPC status means no controller could answer.
//!
//! - [`transactions`] — `TxnMarkers` (coordinator → partition leaders:
//!   COMMIT/ABORT markers) and `TxnCoordinator` (partition leader →
//!   coordinator: KIP-890 verification of a transactional produce).
//!
//! Invariant: field numbers are never reused or renumbered; a removed field
//! is `reserved`.

/// The controller quorum's transport (`strom.raft.v1`).
pub mod raft {
    tonic::include_proto!("strom.raft.v1");
}

/// Follower fetch between replicas (`strom.replication.v1`).
pub mod replication {
    tonic::include_proto!("strom.replication.v1");
}

/// Transaction markers and verification between brokers (`strom.transactions.v1`).
pub mod transactions {
    tonic::include_proto!("strom.transactions.v1");
}

/// Cluster administration (`strom.admin.v1`).
pub mod admin {
    tonic::include_proto!("strom.admin.v1");
}
