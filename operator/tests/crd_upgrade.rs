//! CRD upgrades despite Helm never upgrading a chart's `crds/`: the operator
//! applies its own CRDs at start (`operator/src/crd_install.rs`).
//!
//! The chart is installed without its CRDs (`--skip-crds`); an older
//! KafkaTopic CRD is put in place with `kubectl apply` (a property missing,
//! one the types no longer have, other printer columns, a retired version)
//! and the KafkaCluster and KafkaUser CRDs are missing altogether. The operator, run as the chart's
//! ServiceAccount (whose CRD rule is limited to Strom's three names), must
//! leave every CRD exactly as the Rust types generate them.

mod common;

use std::time::Duration;

use common::helm::{self, OPERATOR_NS, RELEASE, kubectl, operator_args, service_account_kubeconfig};
use common::{ControlPlane, OperatorProcess, eventually};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use serde_json::json;

/// The generated KafkaTopic CRD as an older release might have had it.
fn older_topic_crd() -> serde_json::Value {
    let crd = strom_crds::crds().into_iter().find(|c| c.spec.names.kind == "KafkaTopic").expect("a KafkaTopic CRD");
    let mut crd = serde_json::to_value(crd).expect("a CRD as JSON");
    let version = &mut crd["spec"]["versions"][0];
    let spec_props = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .as_object_mut()
        .expect("spec properties");
    assert!(spec_props.remove("deletionPolicy").is_some(), "the current CRD has spec.deletionPolicy");
    spec_props.insert("legacyField".into(), json!({ "type": "string", "description": "gone in this version" }));
    version["additionalPrinterColumns"] = json!([{ "name": "Old", "type": "string", "jsonPath": ".spec.clusterRef" }]);
    // A version this release no longer serves (never the storage version, so it may go).
    let mut retired = crd["spec"]["versions"][0].clone();
    retired["name"] = json!("v1alpha0");
    retired["storage"] = json!(false);
    crd["spec"]["versions"].as_array_mut().expect("versions").push(retired);
    crd
}

fn versions(crd: &CustomResourceDefinition) -> serde_json::Value {
    serde_json::to_value(&crd.spec.versions).expect("versions as JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_upgrades_an_older_crd_and_installs_a_missing_one_at_start() {
    let plane = ControlPlane::start();
    let client = common::client(&plane).await;
    helm::install(&plane, &["--skip-crds"]);
    let manifest = helm::run_ok(
        &helm::tool("helm"),
        &["get", "manifest", RELEASE, "--namespace", OPERATOR_NS],
        Some(&plane.kubeconfig_path()),
        None,
    );
    let older = older_topic_crd();
    kubectl(&plane, &["apply", "-f", "-"], Some(&older.to_string()));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(crds.get_opt("kafkaclusters.strom.dev").await.expect("read CRDs").is_none(), "no KafkaCluster CRD yet");
    let served = crds.get("kafkatopics.strom.dev").await.expect("the older KafkaTopic CRD");
    let desired: Vec<CustomResourceDefinition> = strom_crds::crds();
    let desired_topic = desired.iter().find(|c| c.spec.names.kind == "KafkaTopic").expect("KafkaTopic");
    assert_ne!(versions(&served), versions(desired_topic), "the test starts from a different CRD");

    let kubeconfig = service_account_kubeconfig(&plane, OPERATOR_NS, RELEASE);
    let args = operator_args(&manifest);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let operator = OperatorProcess::start_with_kubeconfig(kubeconfig, &args);

    for crd in &desired {
        let name = crd.metadata.name.clone().expect("a CRD name");
        let want = versions(crd);
        let served = eventually(&format!("{name} to be the current CRD"), Duration::from_secs(60), || async {
            let served = crds.get(&name).await.ok()?;
            let established = served
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            (established && versions(&served) == want).then_some(served)
        })
        .await;
        let managers: Vec<String> = served
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| Some(format!("{}:{}", m.manager?, m.operation?)))
            .collect();
        assert!(managers.iter().any(|m| m.starts_with("strom-operator:")), "{name} managed by {managers:?}");
    }
    let served = crds.get("kafkatopics.strom.dev").await.expect("the KafkaTopic CRD");
    let schema = serde_json::to_string(&versions(&served)).expect("JSON");
    assert!(!schema.contains("legacyField"), "a property the types dropped is gone");
    assert!(schema.contains("deletionPolicy"), "the missing property is there");
    let names: Vec<&str> = served.spec.versions.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["v1alpha1"], "the retired version is gone");
    let log = operator.log();
    assert!(log.contains("CustomResourceDefinition applied and established"), "{}", operator.log_tail());
    assert!(!log.contains("forbidden"), "the chart's CRD rule refused a call:\n{}", operator.log_tail());
}
