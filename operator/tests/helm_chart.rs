//! The Helm chart (`charts/strom-operator`) with the real `helm` and a real
//! kube-apiserver: it lints and renders with its defaults and with every
//! example values file; what it renders, and every example resource, is
//! accepted by the API server (server-side dry run, so schemas, CEL rules and
//! RBAC objects are checked for real); bad values are refused by the schema
//! or the chart's own checks with a message naming the value; the optional
//! parts (monitoring, dashboards, namespaced RBAC) appear only when asked.

mod common;

use common::ControlPlane;
use common::helm::{self, OPERATOR_NS, RELEASE, chart_dir, documents, example, find, kubectl, template};

/// Example values files, each rendered, linted and dry-run applied.
const VALUES_FILES: [&str; 3] = ["values-ha.yaml", "values-monitoring.yaml", "values-namespaced.yaml"];
/// Example resources, each dry-run applied against the installed CRDs.
const EXAMPLES: [&str; 6] = [
    "dev-cluster.yaml",
    "kind-cluster.yaml",
    "production-cluster.yaml",
    "topics.yaml",
    "users.yaml",
    "secure-cluster.yaml",
];

/// Stand-ins for prometheus-operator's CRDs (any content accepted), so the
/// ServiceMonitor and PodMonitor the chart renders can be dry-run applied.
const MONITORING_CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: servicemonitors.monitoring.coreos.com }
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: { kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor }
  versions:
  - name: v1
    served: true
    storage: true
    schema: { openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true } }
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: podmonitors.monitoring.coreos.com }
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: { kind: PodMonitor, plural: podmonitors, singular: podmonitor }
  versions:
  - name: v1
    served: true
    storage: true
    schema: { openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true } }
"#;

fn values_path(file: &str) -> String {
    example(file).to_str().expect("a UTF-8 path").to_string()
}

#[test]
fn chart_lints_renders_and_is_accepted_by_the_api_server_with_every_values_file() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("a UTF-8 path");
    let mut variants: Vec<(String, Vec<String>)> = vec![("defaults".into(), vec![])];
    for file in VALUES_FILES {
        variants.push((file.into(), vec!["-f".into(), values_path(file)]));
    }
    let mut rendered = Vec::new();
    for (name, args) in &variants {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let lint = helm::helm(&[&["lint", "--strict", chart], &args[..]].concat(), None);
        assert!(
            lint.status.success(),
            "helm lint --strict with {name} failed:\n{}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
        rendered.push((name.clone(), template(&args)));
    }

    let plane = ControlPlane::start();
    for ns in [OPERATOR_NS, "streaming"] {
        kubectl(&plane, &["create", "namespace", ns], None);
    }
    let crds = chart_dir().join("crds");
    kubectl(&plane, &["apply", "-f", crds.to_str().expect("a UTF-8 path")], None);
    kubectl(&plane, &["apply", "-f", "-"], Some(MONITORING_CRDS));
    kubectl(&plane, &["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"], None);
    for (name, yaml) in &rendered {
        let out = helm::run(
            &helm::tool("kubectl"),
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&plane.kubeconfig_path()),
            Some(yaml),
        );
        assert!(
            out.status.success(),
            "the API server refused the chart rendered with {name}:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            plane.log_tail()
        );
        let accepted = String::from_utf8_lossy(&out.stdout);
        assert!(
            accepted.contains(&format!("deployment.apps/{RELEASE} created (server dry run)")),
            "{name}: no Deployment in the dry run:\n{accepted}"
        );
    }
    for file in EXAMPLES {
        let path = values_path(file);
        let out = kubectl(&plane, &["apply", "--dry-run=server", "-n", "streaming", "-f", &path], None);
        assert!(out.contains("(server dry run)"), "examples/{file} was not applied: {out}");
    }
}

#[test]
fn default_render_is_restricted_probed_and_leader_elected() {
    let docs = documents(&template(&[]));
    let deployment = find(&docs, "Deployment", RELEASE).expect("a Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(1), "one replica by default");
    let container = &spec["containers"][0];
    assert_eq!(container["command"][0].as_str(), Some("strom-operator"), "{container:?}");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    assert_eq!(spec["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(spec["securityContext"]["runAsUser"].as_i64(), Some(65532));
    assert_eq!(spec["securityContext"]["seccompProfile"]["type"].as_str(), Some("RuntimeDefault"));
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(container["securityContext"]["capabilities"]["drop"][0].as_str(), Some("ALL"));
    assert!(container["resources"]["requests"]["memory"].is_string(), "resources are set: {container:?}");
    let args: Vec<&str> = container["args"].as_sequence().expect("args").iter().filter_map(|a| a.as_str()).collect();
    assert!(args.contains(&"--lease-namespace=strom-system"), "leader election on: {args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--no-")), "no opt-out flag by default: {args:?}");
    // The brokers' NetworkPolicies let the operator's pods in by these labels: the pods must carry them.
    let pod_labels = args.iter().find_map(|a| a.strip_prefix("--operator-pod-labels=")).expect("--operator-pod-labels");
    let template_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for pair in pod_labels.split(',') {
        let (key, value) = pair.split_once('=').expect("KEY=VALUE");
        assert_eq!(template_labels[key].as_str(), Some(value), "the operator pods carry {pair}");
    }
    assert!(pod_labels.contains("app.kubernetes.io/component=operator"), "{pod_labels}");
    let env = format!("{:?}", container["env"]);
    assert!(env.contains("POD_NAMESPACE") && env.contains("metadata.namespace"), "the operator's namespace: {env}");
    let role = find(&docs, "ClusterRole", RELEASE).expect("the operator's ClusterRole");
    let rule = role["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .find(|r| format!("{:?}", r["resources"]).contains("networkpolicies"))
        .expect("a rule on networkpolicies");
    assert_eq!(rule["apiGroups"][0].as_str(), Some("networking.k8s.io"));
    let verbs: Vec<&str> = rule["verbs"].as_sequence().expect("verbs").iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(verbs, ["get", "list", "watch", "create", "patch", "delete"]);
    let services = role["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .find(|r| format!("{:?}", r["resources"]).contains("services"))
        .expect("a rule on services");
    let verbs: Vec<&str> = services["verbs"].as_sequence().expect("verbs").iter().filter_map(|v| v.as_str()).collect();
    assert!(verbs.contains(&"delete"), "stale external listener Services are deleted: {verbs:?}");
    assert!(verbs.contains(&"list"), "they are found by listing: {verbs:?}");
    let nodes = role["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .find(|r| format!("{:?}", r["resources"]).contains("nodes"))
        .expect("a rule on nodes: NodePort brokers advertise their node's address");
    let verbs: Vec<&str> = nodes["verbs"].as_sequence().expect("verbs").iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(verbs, ["get"]);
    assert!(find(&docs, "ClusterRole", &format!("{RELEASE}-crds")).is_some(), "CRD rule present");
    assert!(find(&docs, "Service", &format!("{RELEASE}-metrics")).is_some(), "metrics Service");
    for kind in ["ServiceMonitor", "PodMonitor", "ConfigMap"] {
        assert!(!docs.iter().any(|d| d["kind"].as_str() == Some(kind)), "{kind} is off by default");
    }

    // crds.install=false: the flag goes to the operator and the CRD permission goes away.
    let docs = documents(&template(&["--set", "crds.install=false", "--set", "leaderElection.enabled=false"]));
    let deployment = find(&docs, "Deployment", RELEASE).expect("a Deployment");
    let args = format!("{:?}", deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.contains("--no-install-crds") && args.contains("--no-leader-election"), "{args}");
    assert!(find(&docs, "ClusterRole", &format!("{RELEASE}-crds")).is_none(), "no CRD rule without crds.install");
    assert!(!docs.iter().any(|d| d["kind"].as_str() == Some("Role")), "no Lease Role without leader election");

    // values-ha: two replicas.
    let docs = documents(&template(&["-f", &values_path("values-ha.yaml")]));
    let deployment = find(&docs, "Deployment", RELEASE).expect("a Deployment");
    assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(2));
}

#[test]
fn namespaced_rbac_and_monitoring_render_only_when_asked() {
    let docs = documents(&template(&["-f", &values_path("values-namespaced.yaml")]));
    let roles: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Role") && d["metadata"]["name"].as_str() == Some(RELEASE))
        .filter_map(|d| d["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(roles, ["streaming"], "one Role per watched namespace");
    assert!(find(&docs, "ClusterRole", RELEASE).is_none(), "no cluster-wide role with rbac.scope=namespace");
    let deployment = find(&docs, "Deployment", RELEASE).expect("a Deployment");
    let args = format!("{:?}", deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.contains("--namespaces=streaming"), "{args}");

    let docs = documents(&template(&["-f", &values_path("values-monitoring.yaml")]));
    let pod_monitor = find(&docs, "PodMonitor", &format!("{RELEASE}-brokers")).expect("a PodMonitor");
    let selector = &pod_monitor["spec"]["selector"]["matchLabels"];
    // The labels operator/src/builders.rs puts on every broker pod.
    assert_eq!(selector["app.kubernetes.io/name"].as_str(), Some("strom"));
    assert_eq!(selector["app.kubernetes.io/component"].as_str(), Some("broker"));
    assert_eq!(pod_monitor["spec"]["podMetricsEndpoints"][0]["port"].as_str(), Some("http"));
    assert!(find(&docs, "ServiceMonitor", RELEASE).is_some(), "a ServiceMonitor");
    let dashboards = find(&docs, "ConfigMap", &format!("{RELEASE}-dashboards")).expect("a dashboards ConfigMap");
    assert_eq!(dashboards["metadata"]["labels"]["grafana_dashboard"].as_str(), Some("1"));
}

#[test]
fn dashboards_configmap_holds_every_dashboard_file() {
    // A copy of the chart with two dashboards, whatever the real chart holds.
    let dir = common::unique_dir("chart-copy");
    let copy = dir.join("strom-operator");
    let status = std::process::Command::new("cp").arg("-r").arg(chart_dir()).arg(&copy).status().expect("run cp");
    assert!(status.success(), "copy the chart");
    std::fs::create_dir_all(copy.join("dashboards")).expect("create dashboards/");
    for name in ["a.json", "b.json"] {
        std::fs::write(copy.join("dashboards").join(name), format!("{{\"title\": \"{name}\"}}\n")).expect("write");
    }
    let out = helm::run_ok(
        &helm::tool("helm"),
        &["template", RELEASE, copy.to_str().expect("UTF-8"), "--set", "grafanaDashboard.enabled=true"],
        None,
        None,
    );
    let docs = documents(&out);
    let cm = find(&docs, "ConfigMap", &format!("{RELEASE}-dashboards")).expect("a dashboards ConfigMap");
    for name in ["a.json", "b.json"] {
        let body = cm["data"][name].as_str().unwrap_or_else(|| panic!("{name} missing: {cm:?}"));
        assert!(body.contains(&format!("\"title\": \"{name}\"")), "{name}: {body}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn invalid_values_are_refused_with_a_message_naming_the_value() {
    let cases: [(&[&str], &[&str]); 7] = [
        (&["--set", "replicaCount=3"], &["/replicaCount", "maximum", "2"]),
        (&["--set", "replicaCount=two"], &["/replicaCount", "want integer"]),
        (&["--set", "image.pullPolicy=Sometimes"], &["/image/pullPolicy", "IfNotPresent"]),
        (&["--set", "replicas=2"], &["additional properties 'replicas' not allowed"]),
        (&["--set", "resources.limits.memory=lots"], &["/resources/limits/memory", "'lots'"]),
        (
            &["--set", "replicaCount=2", "--set", "leaderElection.enabled=false"],
            &["replicaCount=2 needs leaderElection.enabled=true"],
        ),
        (&["--set", "rbac.scope=namespace"], &["rbac.scope=namespace needs watchNamespaces"]),
    ];
    let chart = chart_dir();
    for (args, needles) in cases {
        let out = helm::helm(&[&["template", RELEASE, chart.to_str().expect("UTF-8")], args].concat(), None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "helm template {args:?} should fail; it rendered");
        for needle in needles {
            assert!(stderr.contains(needle), "helm template {args:?}: `{needle}` missing from:\n{stderr}");
        }
    }
}
