//! Secret volumes, and the ConfigMap volume of `--advertised-overrides`
//! ([`write_advertised_volume`]): a Secret's keys as files in the pod's volume directory
//! (`DIR/pods/<uid>/volumes/<volume>/<key>`), written before the broker
//! starts and refreshed while it runs, as the kubelet does (it syncs mounted
//! Secrets periodically; here every [`REFRESH`]).
//!
//! Each file is replaced by a rename, so a reader never sees half a file;
//! keys that left the Secret are removed. Only this pod's worker writes
//! these directories.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use crate::context::Context;
use crate::launch::PodPlan;

/// How often a running pod's Secret volumes are compared with their Secrets.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Writes every Secret volume of `plan` under `volumes_dir`; the error is
/// the message for the container's waiting state (a missing Secret keeps the
/// pod from starting, as on a kubelet).
pub async fn write_secret_volumes(ctx: &Context, plan: &PodPlan, volumes_dir: &Path) -> Result<(), String> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &plan.namespace);
    for mount in &plan.secrets {
        let secret =
            secrets.get(&mount.secret).await.map_err(|e| format!("Secret {}/{}: {e}", plan.namespace, mount.secret))?;
        let files: BTreeMap<String, Vec<u8>> =
            secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        let dir = volumes_dir.join(&mount.volume);
        sync_dir(&dir, &files).map_err(|e| format!("writing Secret volume {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Writes the ConfigMap volume of the broker's `--advertised-overrides`
/// under `volumes_dir`; a ConfigMap that does not exist (yet) gives an
/// empty volume (the operator marks it optional).
pub async fn write_advertised_volume(ctx: &Context, plan: &PodPlan, volumes_dir: &Path) -> Result<(), String> {
    let Some(mount) = &plan.advertised else { return Ok(()) };
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &plan.namespace);
    let config_map = config_maps
        .get_opt(&mount.config_map)
        .await
        .map_err(|e| format!("ConfigMap {}/{}: {e}", plan.namespace, mount.config_map))?;
    let files: BTreeMap<String, Vec<u8>> =
        config_map.and_then(|c| c.data).unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    let dir = volumes_dir.join(&mount.volume);
    sync_dir(&dir, &files).map_err(|e| format!("writing ConfigMap volume {}: {e}", dir.display()))
}

/// Makes `dir` hold exactly `files`, replacing changed ones by a rename.
fn sync_dir(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (key, bytes) in files {
        // A key is a file name (the API server allows [-._a-zA-Z0-9]+).
        if key.contains('/') || key == "." || key == ".." {
            continue;
        }
        let path = dir.join(key);
        if std::fs::read(&path).is_ok_and(|current| &current == bytes) {
            continue;
        }
        let tmp = dir.join(format!(".tmp-{key}"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !files.contains_key(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_directory_follows_its_secret() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("internal-tls");
        let mut files = BTreeMap::from([("ca.crt".to_string(), b"one".to_vec()), ("b.key".to_string(), b"k".to_vec())]);
        sync_dir(&vol, &files).unwrap();
        assert_eq!(std::fs::read(vol.join("ca.crt")).unwrap(), b"one");
        files.insert("ca.crt".into(), b"two".to_vec());
        files.remove("b.key");
        sync_dir(&vol, &files).unwrap();
        assert_eq!(std::fs::read(vol.join("ca.crt")).unwrap(), b"two");
        assert!(!vol.join("b.key").exists(), "a key that left the Secret is removed");
        let names: Vec<_> = std::fs::read_dir(&vol).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }
}
