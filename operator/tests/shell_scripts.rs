//! The repository's shell scripts pass shellcheck: the kind walk-through
//! (`e2e/kind/kind.sh`, which cannot run without Docker, so this is its
//! check), CI's entry point, the control-plane script, the benchmark
//! scripts and `scripts/*.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Findings a script is known to have, as shellcheck `--exclude` codes.
/// scripts/test.sh: `a && b || c` used on purpose (SC2015 is informational).
const KNOWN: [(&str, &str); 1] = [("scripts/test.sh", "SC2015")];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("operator/ has a parent").to_path_buf()
}

fn scripts() -> Vec<String> {
    let mut all: Vec<String> = [
        "e2e/kind/kind.sh",
        ".ci/run",
        "e2e/control-plane/control-plane.sh",
        "bench/run.sh",
        "bench/kafka/run-kafka.sh",
        "bench/failover/run.sh",
    ]
    .map(String::from)
    .to_vec();
    let mut more: Vec<String> = std::fs::read_dir(root().join("scripts"))
        .expect("read scripts/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sh"))
        .map(|n| format!("scripts/{n}"))
        .collect();
    more.sort();
    all.extend(more);
    all
}

#[test]
fn shell_scripts_pass_shellcheck() {
    let version = Command::new("shellcheck").arg("--version").output();
    assert!(
        matches!(&version, Ok(o) if o.status.success()),
        "shellcheck is not installed: `apt-get install shellcheck` (.ci/run installs it from Debian)"
    );
    let scripts = scripts();
    assert!(scripts.len() >= 4, "found the scripts: {scripts:?}");
    let mut failures = Vec::new();
    for script in &scripts {
        let mut cmd = Command::new("shellcheck");
        cmd.current_dir(root()).arg("--shell=bash").arg("--external-sources");
        if let Some((_, codes)) = KNOWN.iter().find(|(s, _)| s == script) {
            cmd.arg(format!("--exclude={codes}"));
        }
        let out = cmd.arg(script).output().expect("run shellcheck");
        if !out.status.success() {
            failures.push(format!("{script}:\n{}", String::from_utf8_lossy(&out.stdout)));
        }
    }
    assert!(failures.is_empty(), "shellcheck findings:\n{}", failures.join("\n"));
}
