//! `strom-crdgen`: writes the CRD YAML generated from the Rust types to
//! `crds/yaml/` and `charts/strom-operator/crds/`.
//!
//! `--check` writes nothing and exits 1 naming every stale or missing file,
//! for CI. Never touches files other than the ones `crd_yaml` names.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use strom_crds::{CRD_DIRS, REGENERATE_COMMAND, crd_yaml};

fn main() -> ExitCode {
    let mut check = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: strom-crdgen [--check]\n\nWrites the Strom CRDs to {}.", CRD_DIRS.join(" and "));
                println!("With --check, writes nothing and exits 1 if any file is stale.");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("strom-crdgen: unknown argument {other:?}; usage: strom-crdgen [--check]");
                return ExitCode::from(2);
            }
        }
    }
    // The crate lives in <workspace>/crds, so the workspace root is its parent.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).to_path_buf();
    match run(&root, check) {
        Ok(stale) if stale.is_empty() => ExitCode::SUCCESS,
        Ok(stale) => {
            for path in &stale {
                eprintln!("strom-crdgen: {} is stale or missing", path.display());
            }
            eprintln!("strom-crdgen: run `{REGENERATE_COMMAND}` and commit the result");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("strom-crdgen: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Writes (or with `check`, compares) every generated file under `root`;
/// returns the files that were stale in check mode.
fn run(root: &Path, check: bool) -> Result<Vec<PathBuf>, String> {
    let files = crd_yaml();
    let mut stale = Vec::new();
    for dir in CRD_DIRS {
        let dir = root.join(dir);
        if !check {
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        for (name, text) in &files {
            let path = dir.join(name);
            let current = std::fs::read_to_string(&path).ok();
            if current.as_deref() == Some(text.as_str()) {
                continue;
            }
            if check {
                stale.push(path);
            } else {
                std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(stale)
}
