//! The committed CRD YAML must be exactly what the Rust types generate.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use strom_crds::{CRD_DIRS, REGENERATE_COMMAND, crd_yaml, crds};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crds/ has a parent").to_path_buf()
}

#[test]
fn committed_crd_yaml_matches_the_rust_types() {
    let root = workspace_root();
    let mut stale = Vec::new();
    for dir in CRD_DIRS {
        for (name, generated) in crd_yaml() {
            let path = root.join(dir).join(&name);
            match std::fs::read_to_string(&path) {
                Ok(committed) if committed == generated => {}
                Ok(_) => stale.push(format!("{dir}/{name} differs from the Rust types")),
                Err(err) => stale.push(format!("{dir}/{name} cannot be read ({err})")),
            }
        }
    }
    assert!(stale.is_empty(), "{}\nrun `{REGENERATE_COMMAND}` and commit the result", stale.join("\n"));
}

#[test]
fn crd_directories_hold_no_leftover_crds() {
    let expected: BTreeSet<String> = crd_yaml().into_iter().map(|(name, _)| name).collect();
    for dir in CRD_DIRS {
        let found: BTreeSet<String> = std::fs::read_dir(workspace_root().join(dir))
            .unwrap_or_else(|err| panic!("{dir}: {err}; run `{REGENERATE_COMMAND}`"))
            .map(|entry| entry.expect("readable directory entry").file_name().to_string_lossy().into_owned())
            .collect();
        let extra: Vec<_> = found.difference(&expected).collect();
        assert!(
            extra.is_empty(),
            "{dir} holds {extra:?}, which no Rust type generates: delete them (a renamed CRD?) and run `{REGENERATE_COMMAND}`"
        );
    }
}

#[test]
fn generated_yaml_parses_back_to_the_same_crds() {
    for ((name, text), crd) in crd_yaml().into_iter().zip(crds()) {
        let parsed: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed, crd, "{name}");
        assert_eq!(name, format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or_default()));
    }
}
