//! What every part of the runner shares: the client, the options and the
//! layout of the runner's directory.
//!
//! Directory layout (`--dir DIR`):
//!
//! ```text
//! DIR/pods/<uid>/strom.yaml     the pod's config file, as in its ConfigMap
//! DIR/pods/<uid>/volumes/data   an emptyDir data volume (removed with the pod)
//! DIR/pvc/<namespace>/<claim>/<uid>
//!                               a claim's data, per claim object (kept:
//!                               survives pod recreation; a claim deleted
//!                               and recreated gets a new, empty directory)
//! DIR/logs/<pod>.log            the broker's output, appended across restarts
//! DIR/pids/<pod>                the running broker's pid
//! DIR/subnets                   with --subnet-pool: each StatefulSet's subnet
//! ```

use std::path::{Path, PathBuf};

use kube::Client;

/// Shared, read-only state of the runner.
#[derive(Clone)]
pub struct Context {
    /// Client for the control plane.
    pub client: Client,
    /// The namespace whose pods are run.
    pub namespace: String,
    /// Label selector of the pods to run.
    pub selector: String,
    /// The Nodes this runner plays (one per zone, or one without zones).
    pub nodes: Vec<String>,
    /// The runner's directory.
    pub dir: PathBuf,
    /// The `strom-broker` binary.
    pub broker_bin: PathBuf,
    /// Whether a kube-scheduler binds the pods (else the runner does).
    pub external_scheduler: bool,
}

impl Context {
    /// `DIR/pods/<uid>`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.dir.join("pods").join(uid)
    }
    /// `DIR/pvc/<namespace>/<claim>`: the directories of every claim
    /// object of that name, one per uid (see [`crate::volume`]).
    pub fn claim_dirs(&self, namespace: &str, claim: &str) -> PathBuf {
        self.dir.join("pvc").join(namespace).join(claim)
    }
    /// `DIR/logs/<pod>.log`.
    pub fn log_file(&self, pod: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{pod}.log"))
    }
    /// `DIR/pids/<pod>`.
    pub fn pid_file(&self, pod: &str) -> PathBuf {
        self.dir.join("pids").join(pod)
    }
    /// `DIR/subnets`.
    pub fn subnets_file(&self) -> PathBuf {
        self.dir.join("subnets")
    }
    /// Creates the top-level directories.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        for sub in ["pods", "pvc", "logs", "pids"] {
            std::fs::create_dir_all(self.dir.join(sub))?;
        }
        Ok(())
    }
    /// The runner's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
