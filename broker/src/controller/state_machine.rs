//! Applies committed log entries to the metadata image, and builds and
//! installs snapshots of it.
//!
//! The image lives in memory; durability comes from the Raft log plus the
//! latest snapshot, persisted to `snapshot.json` before it is reported. On
//! start the image is the snapshot's, and openraft re-applies the committed
//! entries after it.
//!
//! Ownership: openraft's state-machine task is the only writer; readers
//! ([`super::Controller::image`]) take the read lock briefly. No lock is held
//! across an `.await`.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio_util::task::TaskTracker;

use super::image::{ClusterImage, Outcome};
use super::log_store::{blocking, read_json, write_atomically};
use super::{Applied, NodeId, TypeConfig};

/// The applied state shared with readers.
#[derive(Debug, Default, Clone)]
pub struct AppliedState {
    /// Last log id applied.
    pub last_applied: Option<LogId<NodeId>>,
    /// Last membership applied.
    pub membership: StoredMembership<NodeId, BasicNode>,
    /// The metadata image.
    pub image: ClusterImage,
}

/// The latest snapshot: its meta and the serialized image.
type StoredSnapshot = (SnapshotMeta<NodeId, BasicNode>, Vec<u8>);

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// The serialized [`ClusterImage`], as sent to followers.
    data: String,
}

/// The controller's state machine. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct StateMachine {
    path: PathBuf,
    state: Arc<RwLock<AppliedState>>,
    snapshot: Arc<RwLock<Option<StoredSnapshot>>>,
    /// Tracks the snapshot writes (see [`super::log_store`]).
    io: TaskTracker,
}

fn sm_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

impl StateMachine {
    /// Opens the state machine in `dir`, starting from the persisted snapshot
    /// if there is one; its writes are tracked by `io`. Blocking: call it off
    /// the reactor.
    pub fn open(dir: &Path, io: TaskTracker) -> std::io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("snapshot.json");
        let mut state = AppliedState::default();
        let mut snapshot = None;
        if let Some(file) = read_json::<SnapshotFile>(&path)? {
            state.image = serde_json::from_str(&file.data).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?;
            state.last_applied = file.meta.last_log_id;
            state.membership = file.meta.last_membership.clone();
            snapshot = Some((file.meta, file.data.into_bytes()));
        }
        Ok(StateMachine { path, state: Arc::new(RwLock::new(state)), snapshot: Arc::new(RwLock::new(snapshot)), io })
    }

    /// The shared applied state, for readers.
    pub fn state(&self) -> Arc<RwLock<AppliedState>> {
        self.state.clone()
    }

    async fn persist(&self, meta: SnapshotMeta<NodeId, BasicNode>, data: Vec<u8>) -> Result<(), StorageError<NodeId>> {
        let text = String::from_utf8(data.clone()).map_err(sm_error)?;
        let path = self.path.clone();
        let file = SnapshotFile { meta: meta.clone(), data: text };
        blocking(&self.io, move || write_atomically(&path, &file))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        *self.snapshot.write() = Some((meta, data));
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (last_applied, membership, data) = {
            let state = self.state.read();
            let data = serde_json::to_vec(&state.image).map_err(sm_error)?;
            (state.last_applied, state.membership.clone(), data)
        };
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.leader_id.node_id, id.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        self.persist(meta.clone(), data.clone()).await?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let state = self.state.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state.write();
        let mut results = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => Ok(Outcome::Done),
                EntryPayload::Normal(command) => state.image.apply(entry.log_id.index, &command),
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m);
                    Ok(Outcome::Done)
                }
            };
            results.push(Applied(result));
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let image: ClusterImage = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        self.persist(meta.clone(), data).await?;
        let mut state = self.state.write();
        state.image = image;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .snapshot
            .read()
            .as_ref()
            .map(|(meta, data)| Snapshot { meta: meta.clone(), snapshot: Box::new(Cursor::new(data.clone())) }))
    }
}
