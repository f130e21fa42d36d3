//! The Helm chart and the examples as the tests use them: the real `helm` and
//! `kubectl` binaries from the control plane's cache, the chart rendered or
//! installed into a [`ControlPlane`], and a kubeconfig that authenticates as
//! the chart's ServiceAccount (a token from `kubectl create token`), so the
//! operator run out of cluster is held to the chart's RBAC.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kube::config::Kubeconfig;

use super::{ControlPlane, unique_dir};

/// Namespace the tests install the chart into.
pub const OPERATOR_NS: &str = "strom-system";
/// Release name; the chart then names its objects `strom-operator`.
pub const RELEASE: &str = "strom-operator";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("operator/ has a parent").to_path_buf()
}

/// `charts/strom-operator`.
pub fn chart_dir() -> PathBuf {
    root().join("charts/strom-operator")
}

/// `examples/NAME`.
pub fn example(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

/// Path of a control-plane binary (`helm`, `kubectl`) from `control-plane.sh env`;
/// fails with the command that builds it when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let var = name.to_uppercase().replace('-', "_");
    let out = Command::new("bash")
        .arg(root().join("e2e/control-plane/control-plane.sh"))
        .arg("env")
        .stdin(Stdio::null())
        .output()
        .expect("run control-plane.sh env");
    let text = String::from_utf8_lossy(&out.stdout);
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("control-plane.sh env names no {var}:\n{text}"));
    assert!(
        path.exists(),
        "{name} is not built ({} is missing): run `e2e/control-plane/control-plane.sh build {name}` \
         (.ci/run builds kubectl and helm before the tests)",
        path.display()
    );
    path
}

/// Runs `program args` and returns its output (never panics on a failed exit).
pub fn run(program: &Path, args: &[&str], kubeconfig: Option<&Path>, stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    // Helm keeps its (here unused) repository cache and config under these; keep them out of $HOME.
    let helm_home = std::env::temp_dir().join("strom-test-helm-home");
    cmd.env("HELM_CACHE_HOME", helm_home.join("cache"))
        .env("HELM_CONFIG_HOME", helm_home.join("config"))
        .env("HELM_DATA_HOME", helm_home.join("data"));
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("wait for {}: {e}", program.display()))
}

/// Runs `program args` and returns its stdout; panics with both streams on failure.
pub fn run_ok(program: &Path, args: &[&str], kubeconfig: Option<&Path>, stdin: Option<&str>) -> String {
    let out = run(program, args, kubeconfig, stdin);
    assert!(
        out.status.success(),
        "{} {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        program.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm ARGS`.
pub fn helm(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    run(&tool("helm"), args, kubeconfig, None)
}

/// `kubectl ARGS` against `plane` as its admin; stdout, or a panic with both streams.
pub fn kubectl(plane: &ControlPlane, args: &[&str], stdin: Option<&str>) -> String {
    run_ok(&tool("kubectl"), args, Some(&plane.kubeconfig_path()), stdin)
}

/// `helm template` of the chart with `args` (values flags); the rendered YAML.
pub fn template(args: &[&str]) -> String {
    let chart = chart_dir();
    let mut all = vec!["template", RELEASE, chart.to_str().expect("a UTF-8 path"), "--namespace", OPERATOR_NS];
    all.extend_from_slice(args);
    run_ok(&tool("helm"), &all, None, None)
}

/// `helm install` of the chart into `plane` (namespace created), with `args`.
pub fn install(plane: &ControlPlane, args: &[&str]) {
    let chart = chart_dir();
    let mut all = vec![
        "install",
        RELEASE,
        chart.to_str().expect("a UTF-8 path"),
        "--namespace",
        OPERATOR_NS,
        "--create-namespace",
    ];
    all.extend_from_slice(args);
    run_ok(&tool("helm"), &all, Some(&plane.kubeconfig_path()), None);
}

/// The documents of a multi-document YAML stream (empty ones skipped).
pub fn documents(yaml: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|d| serde_yaml::Value::deserialize(d).ok())
        .filter(|v| !v.is_null())
        .collect()
}

/// The rendered object of `kind` named `name`.
pub fn find<'a>(docs: &'a [serde_yaml::Value], kind: &str, name: &str) -> Option<&'a serde_yaml::Value> {
    docs.iter().find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
}

/// The operator container's arguments in the rendered Deployment, without
/// `--http-listen` (the test harness picks a free port).
pub fn operator_args(rendered: &str) -> Vec<String> {
    let docs = documents(rendered);
    let deployment = find(&docs, "Deployment", RELEASE).expect("the chart renders the operator Deployment");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .expect("the operator container has args");
    args.iter().filter_map(|a| a.as_str()).filter(|a| !a.starts_with("--http-listen")).map(String::from).collect()
}

/// A kubeconfig for `plane` that authenticates with a token of ServiceAccount
/// `namespace/name` (the API server checks it against the chart's RBAC).
pub fn service_account_kubeconfig(plane: &ControlPlane, namespace: &str, name: &str) -> PathBuf {
    let token = kubectl(plane, &["create", "token", name, "-n", namespace, "--duration=2h"], None);
    let admin = Kubeconfig::read_from(plane.kubeconfig_path()).expect("read the admin kubeconfig");
    let cluster = admin.clusters.first().and_then(|c| c.cluster.clone()).expect("a cluster in the admin kubeconfig");
    let ca = cluster.certificate_authority_data.expect("the admin kubeconfig embeds the CA");
    let server = cluster.server.expect("the admin kubeconfig names the server");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: plane\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: {name}\n  user:\n    token: {}\ncontexts:\n- name: sa\n  \
         context:\n    cluster: plane\n    user: {name}\n    namespace: {namespace}\ncurrent-context: sa\n",
        token.trim()
    );
    let path = unique_dir("sa-kubeconfig").join("kubeconfig");
    std::fs::write(&path, text).expect("write the ServiceAccount kubeconfig");
    path
}
