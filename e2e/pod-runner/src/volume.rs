//! Claims: a directory per PersistentVolumeClaim, and a PersistentVolume so
//! the claim binds.
//!
//! A pod's claim `data-<pod>` is served from `DIR/pvc/<namespace>/<claim>`,
//! which outlives the pod: a broker recreated under the same name finds its
//! log again. There is no provisioner here, so for a claim not bound yet the
//! runner creates a hostPath PersistentVolume of that directory, pre-bound to
//! the claim (`claimRef` with its uid); kube-controller-manager's
//! persistentvolume-binder completes the binding. Without that controller
//! the claim stays Pending, and the runner uses the directory anyway.

use std::collections::BTreeMap;
use std::path::Path;

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

/// Makes sure claim `name` has a volume: creates the PersistentVolume when
/// the claim is not bound yet. A missing claim is an error (the StatefulSet
/// controller creates claims before pods, so it is worth a retry).
pub async fn ensure_volume(
    claims: &Api<PersistentVolumeClaim>,
    volumes: &Api<PersistentVolume>,
    name: &str,
    path: &Path,
    node: &str,
) -> kube::Result<()> {
    let claim = claims.get(name).await?;
    if is_bound(&claim) {
        return Ok(());
    }
    let volume = persistent_volume(&claim, path, node).map_err(kube::Error::SerdeError)?;
    match volumes.create(&PostParams::default(), &volume).await {
        Ok(_) => {
            tracing::info!(claim = name, volume = %volume_name(&claim), path = %path.display(), "created a PersistentVolume for the claim");
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
