//! The Dockerfile cannot rot unnoticed: its builder stage's `cargo build`
//! must name workspace packages with binaries of the same names, with
//! `--release --locked` (the lock file must be current, which `cargo
//! metadata --locked` checks); every binary copied out of `target/release`
//! must be one of those; the final image must hold what the chart runs
//! (`strom-operator`) and what broker pods run (the entrypoint
//! `strom-broker`), as the user the chart expects; the Rust image must be at
//! least the workspace's `rust-version`; and `.dockerignore` must not drop a
//! file the build needs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("operator/ has a parent").to_path_buf()
}

fn read(name: &str) -> String {
    std::fs::read_to_string(root().join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// The Dockerfile's instructions as (stage name, INSTRUCTION, arguments), with
/// continuation lines joined and comments dropped.
fn instructions(dockerfile: &str) -> Vec<(String, String, String)> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut stage = String::new();
    let mut out = Vec::new();
    for line in logical {
        let (instruction, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = instruction.to_uppercase();
        if instruction == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            stage = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => name.to_string(),
                _ => format!("final:{}", words.first().copied().unwrap_or_default()),
            };
        }
        out.push((stage.clone(), instruction, args.trim().to_string()));
    }
    out
}

/// Workspace packages and their binary targets, from `cargo metadata --locked`.
fn workspace_binaries() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata --locked failed (is Cargo.lock current?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let mut packages = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let bins = p["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .filter(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
            .filter_map(|t| t["name"].as_str().map(String::from))
            .collect();
        packages.insert(p["name"].as_str().expect("a package name").to_string(), bins);
    }
    packages
}

fn version(text: &str) -> Vec<u32> {
    text.split('.').map(|p| p.parse().unwrap_or_else(|_| panic!("`{text}` is not a version"))).collect()
}

#[test]
fn dockerfile_builds_the_workspace_binaries_the_chart_and_the_operator_run() {
    let dockerfile = read("Dockerfile");
    let steps = instructions(&dockerfile);
    let builder: Vec<&(String, String, String)> = steps.iter().filter(|(s, _, _)| s == "builder").collect();
    assert!(!builder.is_empty(), "the Dockerfile has a stage `AS builder`");

    // The rust image is at least the workspace's rust-version.
    let from = &builder[0].2;
    let tag = from.split_whitespace().next().and_then(|i| i.rsplit_once(':')).map(|(_, t)| t).expect("a tagged image");
    let image_version = version(tag.split('-').next().unwrap_or_default());
    let manifest = read("Cargo.toml");
    let wanted = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"'))
        .expect("rust-version in Cargo.toml");
    assert!(image_version >= version(wanted), "builder image {from} is older than rust-version {wanted}");

    // The cargo command: `cargo build --release --locked -p A -p B`.
    let run = builder
        .iter()
        .find(|(_, i, a)| i == "RUN" && a.contains("cargo build"))
        .map(|(_, _, a)| a.as_str())
        .expect("a RUN with cargo build in the builder stage");
    let segments: Vec<&str> = run.split("&&").map(str::trim).collect();
    let cargo = segments.iter().find_map(|s| s.find("cargo build").map(|i| &s[i..])).expect("cargo build");
    let words: Vec<&str> = cargo.split_whitespace().collect();
    assert!(words.contains(&"--release") && words.contains(&"--locked"), "`{cargo}` needs --release --locked");
    let mut packages = Vec::new();
    let mut i = 2;
    while i < words.len() {
        match words[i] {
            "-p" | "--package" => {
                packages.push(*words.get(i + 1).unwrap_or_else(|| panic!("`{cargo}`: -p without a package")));
                i += 2;
            }
            "--release" | "--locked" => i += 1,
            other => panic!("`{cargo}`: unexpected argument `{other}` (update this test if it is intended)"),
        }
    }
    let workspace = workspace_binaries();
    let mut built = BTreeSet::new();
    for package in &packages {
        let bins = workspace.get(*package).unwrap_or_else(|| panic!("-p {package} is not a workspace package"));
        assert!(bins.contains(*package), "package {package} has no binary of its name (it has {bins:?})");
        built.extend(bins.iter().cloned());
    }
    for wanted in ["strom-broker", "strom-operator"] {
        assert!(built.contains(wanted), "the image must hold {wanted}; the build makes {built:?}");
    }

    // The binaries copied out of target/release are ones the build makes.
    let cp = segments.iter().find(|s| s.starts_with("cp ")).expect("a cp of the binaries out of target/");
    let copied: BTreeSet<String> =
        cp.split_whitespace().filter_map(|w| w.strip_prefix("target/release/")).map(String::from).collect();
    assert!(!copied.is_empty() && copied.is_subset(&built), "copied {copied:?}, built {built:?}");

    // The final stage takes them from /out into /usr/local/bin, as user 65532.
    let last_stage = steps.last().map(|(s, _, _)| s.clone()).expect("instructions");
    let final_steps: Vec<&(String, String, String)> = steps.iter().filter(|(s, _, _)| *s == last_stage).collect();
    let mut in_image = BTreeSet::new();
    for (_, instruction, args) in &final_steps {
        if instruction == "COPY" && args.starts_with("--from=builder") {
            let words: Vec<&str> = args.split_whitespace().collect();
            let source = words[1].strip_prefix("/out/").expect("COPY --from=builder /out/NAME");
            assert!(copied.contains(source), "COPY of {source}, which the builder does not put in /out");
            in_image.insert(words[2].to_string());
        }
    }
    assert!(in_image.contains("/usr/local/bin/strom-operator"), "the chart runs strom-operator: {in_image:?}");
    let entrypoint = final_steps.iter().find(|(_, i, _)| i == "ENTRYPOINT").map(|(_, _, a)| a.as_str());
    assert_eq!(entrypoint, Some(r#"["/usr/local/bin/strom-broker"]"#), "broker pods pass only args");
    assert!(in_image.contains("/usr/local/bin/strom-broker"));
    let user = final_steps.iter().find(|(_, i, _)| i == "USER").map(|(_, _, a)| a.as_str());
    assert_eq!(user, Some("65532:65532"), "the chart's runAsUser is 65532");
    let chart_values = read("charts/strom-operator/values.yaml");
    assert!(chart_values.contains("runAsUser: 65532"), "the chart runs as the image's user");
}

#[test]
fn dockerignore_keeps_every_file_the_build_needs() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for needed in ["target", ".git"] {
        assert!(
            patterns.iter().any(|p| p.trim_start_matches("**/") == needed),
            ".dockerignore should drop {needed}: {patterns:?}"
        );
    }
    let root = root();
    let meta = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).expect("cargo metadata JSON");
    let mut needed: Vec<String> = vec!["Cargo.toml".into(), "Cargo.lock".into()];
    for p in meta["packages"].as_array().expect("packages") {
        let manifest = PathBuf::from(p["manifest_path"].as_str().expect("a manifest path"));
        let dir = manifest.parent().expect("a package dir");
        needed.push(dir.strip_prefix(&root).expect("inside the workspace").to_string_lossy().into_owned());
    }
    for path in &needed {
        for pattern in &patterns {
            let p = pattern.trim_start_matches("**/").trim_end_matches('/');
            let hit = path == p || path.starts_with(&format!("{p}/")) || path.ends_with(&format!("/{p}"));
            assert!(!hit, ".dockerignore pattern `{pattern}` drops {path}, which the image build needs");
        }
    }
}
