//! Claims: a directory per PersistentVolumeClaim object, and a
//! PersistentVolume so the claim binds.
//!
//! A pod's claim `data-<pod>` is served from
//! `DIR/pvc/<namespace>/<claim>/<claim uid>`, which outlives the pod: a
//! broker recreated under the same name finds its log again. The claim's uid
//! is part of the path, so a claim deleted and recreated under the same name
//! (a lost volume) is a new, empty directory, as a real provisioner would
//! give a new disk; when the runner serves a claim, the directories of
//! earlier claims of that name are removed (their objects are gone: a
//! claim is only served once the StatefulSet recreated it). A claim being
//! deleted (it has a deletionTimestamp) is not served: the pod waits, as
//! kube-scheduler and the kubelet make it wait, until the new claim exists.
//! There is no provisioner here, so for a claim not bound yet the runner
//! creates a hostPath PersistentVolume of that directory, pre-bound to the
//! claim (`claimRef` with its uid); kube-controller-manager's
//! persistentvolume-binder completes the binding. Without that controller
//! the claim stays Pending, and the runner uses the directory anyway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// Capacity given to a PersistentVolume whose claim requests no size.
const DEFAULT_CAPACITY: &str = "1Gi";

/// The PersistentVolume's name for a claim: unique per claim object, so a
/// claim deleted and recreated gets a fresh volume (of the same directory).
pub fn volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or("unknown"))
}

/// Whether the claim is bound (or being bound) to a volume already.
pub fn is_bound(claim: &PersistentVolumeClaim) -> bool {
    claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()).is_some_and(|v| !v.is_empty())
        || claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

/// A hostPath PersistentVolume of `path`, pre-bound to `claim`, as large as it asks.
pub fn persistent_volume(
    claim: &PersistentVolumeClaim,
    path: &Path,
    node: &str,
) -> serde_json::Result<PersistentVolume> {
    let spec = claim.spec.clone().unwrap_or_default();
    let capacity = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .unwrap_or_else(|| Quantity(DEFAULT_CAPACITY.into()));
    let access_modes =
        spec.access_modes.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| vec!["ReadWriteOnce".into()]);
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(claim),
            "labels": BTreeMap::from([("strom.dev/pod-runner-node", node)]),
        },
        "spec": {
            "capacity": {"storage": capacity},
            "accessModes": access_modes,
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.storage_class_name.clone().unwrap_or_default(),
            "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
            "hostPath": {"path": path.display().to_string(), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim.metadata.namespace,
                "name": claim.metadata.name,
                "uid": claim.metadata.uid,
            },
        },
    }))
}

/// Why a claim has no directory (yet): each is worth a retry.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The claim could not be read (a missing claim: the StatefulSet
    /// controller creates claims before pods, and recreates a deleted one).
    #[error("claim {claim}: {source}")]
    Read {
        /// The claim's name.
        claim: String,
        /// What the API server answered.
        source: kube::Error,
    },
    /// The claim is being deleted: its data goes with it.
    #[error("claim {claim} is being deleted; waiting for the StatefulSet controller to recreate it")]
    Deleting {
        /// The claim's name.
        claim: String,
    },
    /// The claim's uid is missing or not a plain name.
    #[error("claim {claim} has uid {uid:?}; expected letters, digits and '-' (at most 64)")]
    BadUid {
        /// The claim's name.
        claim: String,
        /// The uid it has.
        uid: Option<String>,
    },
}

/// The directory of claim object `uid` under `claim_dirs`
/// (`DIR/pvc/<namespace>/<claim>`), if `uid` is a plain name (a path
/// component that cannot climb out: letters, digits and '-', at most 64).
pub fn claim_dir(claim_dirs: &Path, uid: &str) -> Option<PathBuf> {
    let plain = !uid.is_empty() && uid.len() <= 64 && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    plain.then(|| claim_dirs.join(uid))
}

/// Removes every directory under `claim_dirs` but `keep`: the data of
/// earlier claim objects of the same name, deleted since. Returns what was
/// removed.
pub fn remove_other_claims(claim_dirs: &Path, keep: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(claim_dirs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path != keep && path.is_dir() {
            std::fs::remove_dir_all(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// The claim `name` and its directory (under `claim_dirs`, by the claim's
/// uid; see the module docs), once the directories of earlier claims of
/// that name are removed.
pub async fn claim_and_dir(
    claims: &Api<PersistentVolumeClaim>,
    name: &str,
    claim_dirs: &Path,
) -> Result<(PersistentVolumeClaim, PathBuf), ClaimError> {
    let claim = claims.get(name).await.map_err(|source| ClaimError::Read { claim: name.into(), source })?;
    if claim.metadata.deletion_timestamp.is_some() {
        return Err(ClaimError::Deleting { claim: name.into() });
    }
    let uid = claim.metadata.uid.as_deref();
    let path = uid
        .and_then(|uid| claim_dir(claim_dirs, uid))
        .ok_or_else(|| ClaimError::BadUid { claim: name.into(), uid: uid.map(str::to_string) })?;
    match remove_other_claims(claim_dirs, &path) {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(claim = name, removed = ?removed, "removed the data of earlier claims of this name");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(claim = name, error = %e, "could not remove the data of earlier claims of this name"),
    }
    Ok((claim, path))
}

/// Makes sure `claim` has a volume: creates the PersistentVolume of `path`
/// when the claim is not bound yet.
pub async fn ensure_volume(
    volumes: &Api<PersistentVolume>,
    claim: &PersistentVolumeClaim,
    path: &Path,
    node: &str,
) -> kube::Result<()> {
    if is_bound(claim) {
        return Ok(());
    }
    let volume = persistent_volume(claim, path, node).map_err(kube::Error::SerdeError)?;
    match volumes.create(&PostParams::default(), &volume).await {
        Ok(_) => {
            let name = claim.metadata.name.as_deref().unwrap_or_default();
            tracing::info!(claim = name, volume = %volume_name(claim), path = %path.display(), "created a PersistentVolume for the claim");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(phase: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data-demo-0", "namespace": "ns", "uid": "c-1"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "standard",
                "resources": {"requests": {"storage": "5Gi"}}
            },
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn volume_is_pre_bound_to_the_claim_with_its_size_and_class() {
        let pv = persistent_volume(&claim(Some("Pending")), Path::new("/r/pvc/ns/data-demo-0"), "n1").unwrap();
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-c-1"));
        let spec = pv.spec.unwrap();
        assert_eq!(spec.capacity.unwrap()["storage"], Quantity("5Gi".into()));
        assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));
        assert_eq!(spec.host_path.unwrap().path, "/r/pvc/ns/data-demo-0");
        let claim_ref = spec.claim_ref.unwrap();
        assert_eq!(claim_ref.name.as_deref(), Some("data-demo-0"));
        assert_eq!(claim_ref.uid.as_deref(), Some("c-1"));
    }

    #[test]
    fn a_claim_directory_is_per_uid_and_only_for_plain_uids() {
        let dirs = Path::new("/r/pvc/ns/data-demo-0");
        assert_eq!(claim_dir(dirs, "c-1"), Some(dirs.join("c-1")));
        for bad in ["", "..", "a/b", "x.y", &"a".repeat(65)] {
            assert_eq!(claim_dir(dirs, bad), None, "uid {bad:?}");
        }
    }

    #[test]
    fn serving_a_recreated_claim_removes_the_earlier_claims_data_only() {
        let root = tempfile::tempdir().unwrap();
        let dirs = root.path().join("data-demo-0");
        let old = dirs.join("uid-old");
        let new = dirs.join("uid-new");
        std::fs::create_dir_all(old.join("data/controller")).unwrap();
        std::fs::write(old.join("data/meta.json"), "{}").unwrap();
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join("kept"), "x").unwrap();
        assert_eq!(remove_other_claims(&dirs, &new).unwrap(), vec![old.clone()]);
        assert!(!old.exists());
        assert!(new.join("kept").exists());
        assert_eq!(remove_other_claims(&root.path().join("absent"), &new).unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn only_claims_with_a_volume_count_as_bound() {
        assert!(!is_bound(&claim(Some("Pending"))));
        assert!(is_bound(&claim(Some("Bound"))));
        let mut c = claim(None);
        if let Some(spec) = c.spec.as_mut() {
            spec.volume_name = Some("pv-x".into());
        }
        assert!(is_bound(&c));
    }
}
