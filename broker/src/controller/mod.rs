//! The controller quorum (KRaft's role): cluster metadata as a replicated
//! log kept by openraft, with tonic as its transport.
//!
//! The pieces follow openraft's own split:
//!
//! - [`image`] — the metadata image and the commands that change it; pure and
//!   deterministic (the replicated state machine's logic).
//! - [`placement`] — rack-aware replica placement with leaders spread; pure.
//! - [`liveness`] — broker sessions and their expiry (who to fence); pure.
//! - [`log_store`] — the Raft log, vote and commit point in files under
//!   `<data-dir>/controller/`, surviving restarts.
//! - [`state_machine`] — applies committed entries to the image; snapshots
//!   persisted to `<data-dir>/controller/snapshot.json`.
//! - [`network`] — openraft's RPCs over the `Raft` gRPC service of
//!   `strom-proto`, client and server side.
//! - [`admission`] — only a voter may lead or campaign towards a node (a
//!   lagging node asks other nodes about a sender it does not know).
//! - [`quorum`] — [`Controller`]: starts a node, bootstraps the voters, and
//!   proposes commands (forwarding to the active controller).
//! - [`rejoin`] — a voter's directory identity, the bootstrap decision of an
//!   empty voter, and the safe return of a voter that lost its log.
//! - [`voters`] — changing the voters after bootstrap, one membership change
//!   per step (the committed membership, not `--voters`, says who votes).
//! - [`describe`] — the quorum as Kafka's DescribeQuorum tells it, from the
//!   active controller's metrics; pure.
//!
//! Invariants: a command changes the image only once committed by a majority
//! of voters; every node applies the same commands in log order; nothing
//! here writes to a partition log or serves clients.
//!
//! Every broker runs one node (a one-voter quorum by default); the broker
//! follows the applied image through [`crate::publisher`].

pub mod admission;
pub mod describe;
pub mod image;
pub mod liveness;
pub mod log_store;
pub mod network;
pub mod placement;
pub mod quorum;
pub mod rejoin;
pub mod state_machine;
pub mod voters;

use std::io::Cursor;

pub use image::{ClusterImage, Command, CommandError, CommandResult, Outcome};
pub use quorum::{Controller, ControllerConfig, ControllerError, MetadataSnapshot};

/// A controller's node id: the broker id of the voter or learner.
pub type NodeId = u64;

/// What a log entry applied on a node hands back to its proposer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied(pub CommandResult);

openraft::declare_raft_types!(
    /// openraft's type parameters for the metadata quorum.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft handle for this type config.
pub type Raft = openraft::Raft<TypeConfig>;

#[cfg(test)]
mod tests;
