//! The operator installs and upgrades its own CustomResourceDefinitions at
//! start, because Helm never upgrades a chart's `crds/` directory.
//!
//! Each CRD generated from the `strom-crds` types is applied with
//! server-side apply under the field manager `strom-operator`, forced, so the
//! operator's version of every field wins over what an older chart,
//! `kubectl apply` or a hand edit left. The API server treats a version's
//! schema and the versions list as atomic, so the forced apply alone removes
//! properties and versions this release dropped (the `crd_upgrade` test shows
//! it). As a guard against a field another manager keeps, the served
//! `spec.versions` is then compared with the generated one and, should they
//! still differ, the spec is replaced whole (an update with the live
//! `resourceVersion`). The call returns once every CRD is `Established`.
//!
//! Needs `get`, `create`, `patch` and `update` on
//! `customresourcedefinitions` (limited to Strom's names in the chart);
//! `--no-install-crds` turns it off. A refusal is an error naming the
//! missing permission and both ways out; it never deletes a CRD.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// How long to wait for an applied CRD to become `Established`.
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// A CRD could not be installed or upgraded.
#[derive(Debug, thiserror::Error)]
pub enum CrdInstallError {
    /// The API server refused a call; for 403 the message names the permission.
    #[error("cannot {verb} CustomResourceDefinition {name}: {source}{hint}")]
    Api {
        verb: &'static str,
        name: String,
        hint: String,
        #[source]
        source: kube::Error,
    },
    /// The CRD was applied but the API server did not establish it in time.
    #[error("CustomResourceDefinition {name} is not Established after {timeout:?}: {detail}")]
    NotEstablished { name: String, timeout: Duration, detail: String },
}

fn api_error(verb: &'static str, name: &str, source: kube::Error) -> CrdInstallError {
    let forbidden = matches!(&source, kube::Error::Api(status) if status.code == 403);
    let hint = if forbidden {
        format!(
            " (the operator's service account needs `{verb}` on customresourcedefinitions.apiextensions.k8s.io \
             named {name}: install the chart with crds.install=true, or run with --no-install-crds and apply \
             charts/strom-operator/crds/ yourself)"
        )
    } else {
        String::new()
    };
    CrdInstallError::Api { verb, name: name.to_string(), hint, source }
}

/// Applies every Strom CRD and waits until each is `Established`.
pub async fn install_crds(client: &kube::Client) -> Result<(), CrdInstallError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in strom_crds::crds() {
        install_one(&api, &crd).await?;
    }
    Ok(())
}

async fn install_one(
    api: &Api<CustomResourceDefinition>,
    desired: &CustomResourceDefinition,
) -> Result<(), CrdInstallError> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    let params = PatchParams::apply(crate::FIELD_MANAGER).force();
    let applied = api.patch(&name, &params, &Patch::Apply(desired)).await.map_err(|e| api_error("patch", &name, e))?;
    if !same_versions(&applied, desired) {
        // Fields another manager owns survived the apply: take the whole spec over.
        tracing::info!(crd = %name, "served CRD keeps fields this version does not define; replacing its spec");
        let mut replacement = applied.clone();
        replacement.spec = desired.spec.clone();
        replacement.metadata.managed_fields = None;
        api.replace(
            &name,
            &PostParams { field_manager: Some(crate::FIELD_MANAGER.into()), ..Default::default() },
            &replacement,
        )
        .await
        .map_err(|e| api_error("update", &name, e))?;
    }
    wait_established(api, &name).await?;
    tracing::info!(crd = %name, "CustomResourceDefinition applied and established");
    Ok(())
}

/// Whether the served CRD's versions (schemas, printer columns, subresources)
/// are exactly the generated ones.
fn same_versions(served: &CustomResourceDefinition, desired: &CustomResourceDefinition) -> bool {
    // Serialising plain API data cannot fail; two `Null`s would compare equal, so fail closed.
    match (serde_json::to_value(&served.spec.versions), serde_json::to_value(&desired.spec.versions)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) -> Result<(), CrdInstallError> {
    let deadline = Instant::now() + ESTABLISH_TIMEOUT;
    loop {
        let crd = api.get(name).await.map_err(|e| api_error("get", name, e))?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let detail = conditions
                .iter()
                .map(|c| format!("{}={} ({})", c.type_, c.status, c.message.clone().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(CrdInstallError::NotEstablished { name: name.to_string(), timeout: ESTABLISH_TIMEOUT, detail });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_schemas_and_printer_columns() {
        let desired = strom_crds::crds().remove(1);
        assert!(same_versions(&desired, &desired));
        let mut changed = desired.clone();
        changed.spec.versions[0].additional_printer_columns = None;
        assert!(!same_versions(&changed, &desired));
    }

    #[test]
    fn forbidden_names_the_permission_and_the_way_out() {
        let status = kube::core::Status::failure("forbidden", "Forbidden").with_code(403);
        let e = api_error("patch", "kafkatopics.strom.dev", kube::Error::Api(Box::new(status))).to_string();
        for needle in ["`patch` on customresourcedefinitions", "kafkatopics.strom.dev", "--no-install-crds"] {
            assert!(e.contains(needle), "{needle} missing from: {e}");
        }
    }
}
