//! A KafkaCluster applied to a real API server gives the StatefulSet,
//! Services, ConfigMap, PodDisruptionBudget and NetworkPolicy, owned by the cluster; status
//! and conditions follow; deleting the cluster garbage-collects everything
//! (kube-controller-manager's garbage collector runs in the test plane).

mod common;

use std::time::Duration;

use common::{OperatorProcess, eventually, plane_with_namespace};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use strom_crds::KafkaCluster;
use strom_operator::builders::{CONFIG_FILE, CONFIG_HASH_ANNOTATION, config_hash};

const NS: &str = "team";
const WAIT: Duration = Duration::from_secs(60);
/// Where the operator says its pods run (it runs outside the plane here).
const OPERATOR_LABELS: &str = "app.kubernetes.io/name=strom-operator,app.kubernetes.io/instance=ops";

/// Whether `selector`'s matchLabels all appear in `labels` (no expressions used).
fn selects(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let selector = selector.expect("a label selector");
    assert!(selector.match_expressions.is_none(), "{selector:?}");
    selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v))
}

async fn get<K>(api: &Api<K>, name: &str) -> Option<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.ok().flatten()
}

async fn event_reasons(client: &kube::Client, object: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let list = events.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
    list.into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object))
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_gets_its_objects_status_and_garbage_collection() {
    let (plane, client) = plane_with_namespace(NS).await;
    let _operator = OperatorProcess::start(
        &plane,
        &[
            "--lease-duration-seconds",
            "4",
            "--operator-namespace",
            "strom-system",
            "--operator-pod-labels",
            OPERATOR_LABELS,
        ],
    );

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let cluster: KafkaCluster = serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": { "name": "events" },
        "spec": {
            "replicas": 3,
            "image": "strom:test",
            "config": { "replica.fetch.max.bytes": "1048576" },
            "storage": { "size": "20Gi", "storageClassName": "fast" },
        },
    }))
    .expect("a KafkaCluster");
    let cluster = clusters.create(&PostParams::default(), &cluster).await.expect("create the KafkaCluster");
    let uid = cluster.uid().expect("a uid");

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    let sts = eventually("the StatefulSet", WAIT, || get(&statefulsets, "events")).await;
    let cm = eventually("the ConfigMap", WAIT, || get(&config_maps, "events-config")).await;
    let headless = eventually("the headless Service", WAIT, || get(&services, "events-brokers")).await;
    let bootstrap = eventually("the bootstrap Service", WAIT, || get(&services, "events-bootstrap")).await;
    let pdb = eventually("the PodDisruptionBudget", WAIT, || get(&budgets, "events")).await;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), NS);
    let policy = eventually("the NetworkPolicy", WAIT, || get(&policies, "events-network-policy")).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let ca_secret = eventually("the cluster CA Secret", WAIT, || get(&secrets, "events-cluster-ca")).await;
    let certs_secret =
        eventually("the broker certificates Secret", WAIT, || get(&secrets, "events-broker-certs")).await;

    for (kind, meta) in [
        ("StatefulSet", &sts.metadata),
        ("ConfigMap", &cm.metadata),
        ("headless Service", &headless.metadata),
        ("bootstrap Service", &bootstrap.metadata),
        ("PodDisruptionBudget", &pdb.metadata),
        ("NetworkPolicy", &policy.metadata),
        ("cluster CA Secret", &ca_secret.metadata),
        ("broker certificates Secret", &certs_secret.metadata),
    ] {
        let owners = meta.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1, "{kind} has one owner");
        assert_eq!((owners[0].kind.as_str(), owners[0].name.as_str()), ("KafkaCluster", "events"), "{kind}");
        assert_eq!(owners[0].uid, uid, "{kind} is owned by this cluster");
        assert_eq!(owners[0].controller, Some(true), "{kind}");
        let managers: Vec<String> = meta.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
        assert!(managers.contains(&"strom-operator".to_string()), "{kind} applied by strom-operator: {managers:?}");
    }

    // The internal plane's CA and, signed by it, one pair per broker naming
    // that broker; the CA key stays in the operator's Secret.
    let text = |secret: &Secret, key: &str| {
        let bytes = secret.data.as_ref().and_then(|d| d.get(key)).unwrap_or_else(|| panic!("key {key}")).0.clone();
        String::from_utf8(bytes).expect("PEM text")
    };
    let ca_cert = text(&ca_secret, "ca.crt");
    assert!(text(&ca_secret, "ca.key").contains("PRIVATE KEY"));
    assert_eq!(text(&certs_secret, "ca.crt"), ca_cert, "brokers trust the cluster CA");
    assert!(!certs_secret.data.as_ref().unwrap().contains_key("ca.key"), "no CA key in the brokers' Secret");
    for id in 0..3 {
        let cert = text(&certs_secret, &format!("broker-{id}.crt"));
        assert!(strom_tls::certs::signed_by(&cert, &ca_cert), "broker {id}'s certificate is signed by the CA");
        let identity = strom_tls::certs::identity_of_pem(&cert).expect("an identity");
        assert_eq!(identity, strom_tls::Identity::Broker(id));
        assert!(text(&certs_secret, &format!("broker-{id}.key")).contains("PRIVATE KEY"));
    }

    // The ConfigMap: the broker config file with the quorum and the settings.
    let file = cm.data.as_ref().and_then(|d| d.get(CONFIG_FILE)).expect("the broker config file");
    let parsed: serde_yaml::Value = serde_yaml::from_str(file).expect("YAML");
    assert_eq!(
        parsed["voters"].as_str(),
        Some(
            "0@events-0.events-brokers.team.svc:9093,1@events-1.events-brokers.team.svc:9093,2@events-2.events-brokers.team.svc:9093"
        )
    );
    assert_eq!(parsed["settings"]["replica.fetch.max.bytes"].as_str(), Some("1048576"));

    // The StatefulSet.
    let spec = &sts.spec;
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("events-brokers"));
    assert_eq!(spec.update_strategy.as_ref().and_then(|u| u.type_.as_deref()), Some("OnDelete"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    let template_annotations = spec.template.metadata.as_ref().and_then(|m| m.annotations.clone()).unwrap_or_default();
    assert_eq!(template_annotations.get(CONFIG_HASH_ANNOTATION), Some(&config_hash(&cm)), "hash of the live ConfigMap");
    let pod = spec.template.spec.as_ref().expect("a pod spec");
    assert_eq!(pod.containers[0].image.as_deref(), Some("strom:test"));
    let claim = &spec.volume_claim_templates.as_ref().expect("claims")[0];
    let claim_spec = claim.spec.as_ref().expect("claim spec");
    assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
    let requests = claim_spec.resources.as_ref().and_then(|r| r.requests.clone()).unwrap_or_default();
    assert_eq!(requests.get("storage").map(|q| q.0.as_str()), Some("20Gi"));

    // Services and the budget.
    let headless_spec = headless.spec.expect("headless spec");
    assert_eq!(headless_spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless_spec.publish_not_ready_addresses, Some(true));
    let bootstrap_spec = bootstrap.spec.expect("bootstrap spec");
    assert_eq!(bootstrap_spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(bootstrap_spec.ports.expect("ports")[0].port, 9092);
    assert_eq!(pdb.spec.expect("pdb spec").max_unavailable, Some(IntOrString::Int(1)));

    // Status: the StatefulSet controller creates the pods, but no kubelet runs them here.
    // No CNI enforces NetworkPolicies here either: check the stored policy
    // against the broker pods the StatefulSet controller made.
    let status = eventually("the cluster's status with 3 broker pods", WAIT, || async {
        let c = get(&clusters, "events").await?;
        let s = c.status?;
        (s.observed_generation == c.metadata.generation && s.brokers == 3).then_some(s)
    })
    .await;
    assert_eq!((status.brokers, status.ready_brokers), (3, 0));
    assert_eq!(status.bootstrap.as_deref(), Some("events-bootstrap.team.svc:9092"));
    let policy_spec = policy.spec.clone().expect("a NetworkPolicy spec");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod_list = pods.list(&ListParams::default()).await.expect("list pods").items;
    let broker_pods: Vec<&Pod> = pod_list.iter().filter(|p| p.name_any().starts_with("events-")).collect();
    assert_eq!(broker_pods.len(), 3, "the StatefulSet's pods");
    for pod in &broker_pods {
        assert!(
            selects(policy_spec.pod_selector.as_ref(), pod.metadata.labels.as_ref().expect("labels")),
            "{}",
            pod.name_any()
        );
    }
    assert_eq!(policy_spec.policy_types, Some(vec!["Ingress".to_string()]));
    let rules = policy_spec.ingress.clone().expect("ingress rules");
    let port_numbers = |rule: &k8s_openapi::api::networking::v1::NetworkPolicyIngressRule| {
        rule.ports.iter().flatten().map(|p| (p.port.clone(), p.protocol.clone())).collect::<Vec<_>>()
    };
    let tcp = |n: i32| (Some(IntOrString::Int(n)), Some("TCP".to_string()));
    let internal: Vec<_> = rules.iter().filter(|r| port_numbers(r).contains(&tcp(9093))).collect();
    assert_eq!(internal.len(), 1, "one rule names 9093: {rules:?}");
    assert_eq!(port_numbers(internal[0]), vec![tcp(9093)], "nothing else is restricted with it");
    let from = internal[0].from.clone().expect("9093 is not open to all");
    assert_eq!(from.len(), 2, "brokers and the operator: {from:?}");
    for pod in &broker_pods {
        let labels = pod.metadata.labels.clone().expect("labels");
        assert!(from[0].namespace_selector.is_none() && selects(from[0].pod_selector.as_ref(), &labels), "{from:?}");
    }
    let namespace_labels =
        |name: &str| std::collections::BTreeMap::from([("kubernetes.io/metadata.name".to_string(), name.to_string())]);
    let operator_pod = std::collections::BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "strom-operator".to_string()),
        ("app.kubernetes.io/instance".to_string(), "ops".to_string()),
        ("pod-template-hash".to_string(), "abc".to_string()),
    ]);
    assert!(selects(from[1].namespace_selector.as_ref(), &namespace_labels("strom-system")), "{from:?}");
    assert!(!selects(from[1].namespace_selector.as_ref(), &namespace_labels(NS)), "only the operator's namespace");
    assert!(selects(from[1].pod_selector.as_ref(), &operator_pod), "{from:?}");
    let open: Vec<_> = rules.iter().filter(|r| r.from.is_none()).flat_map(port_numbers).collect();
    assert_eq!(open, vec![tcp(9092), tcp(9094)], "the Kafka listener and HTTP open to all");
    // The API server stamps the namespace label the operator's peer selects on.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let team = namespaces.get(NS).await.expect("the namespace");
    assert_eq!(team.labels().get("kubernetes.io/metadata.name").map(String::as_str), Some(NS));
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("a Ready condition");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "BrokersNotReady"));
    assert_eq!(ready.message, "0/3 brokers ready");
    let progressing = status.conditions.iter().find(|c| c.type_ == "Progressing").expect("a Progressing condition");
    assert_eq!(progressing.status, "True");
    assert!(status.conditions.iter().any(|c| c.type_ == "Degraded"), "a Degraded condition");
    eventually("a Created event", WAIT, || async {
        event_reasons(&client, "events").await.contains(&"Created".to_string()).then_some(())
    })
    .await;

    // A config change: new ConfigMap, new hash on the pod template, observedGeneration follows.
    let patch = json!({ "spec": { "config": { "replica.fetch.max.bytes": "2097152" } } });
    let changed = clusters.patch("events", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch config");
    let generation = changed.metadata.generation;
    assert_eq!(generation, Some(2));
    let (sts, cm) = eventually("the new config to reach the StatefulSet", WAIT, || async {
        let cm = get(&config_maps, "events-config").await?;
        let sts = get(&statefulsets, "events").await?;
        let hash = sts.spec.template.metadata.as_ref()?.annotations.as_ref()?.get(CONFIG_HASH_ANNOTATION)?.clone();
        (cm.data.as_ref()?.get(CONFIG_FILE)?.contains("2097152") && hash == config_hash(&cm)).then_some((sts, cm))
    })
    .await;
    assert_ne!(
        sts.spec.template.metadata.and_then(|m| m.annotations).and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned()),
        template_annotations.get(CONFIG_HASH_ANNOTATION).cloned(),
        "the hash changed with the config"
    );
    assert!(cm.data.expect("data")[CONFIG_FILE].contains("2097152"));
    eventually("observedGeneration 2", WAIT, || async {
        let s = get(&clusters, "events").await?.status?;
        (s.observed_generation == generation).then_some(())
    })
    .await;
    eventually("a ConfigChanged event", WAIT, || async {
        event_reasons(&client, "events").await.contains(&"ConfigChanged".to_string()).then_some(())
    })
    .await;

    // Nothing needs attention yet: three voters, persistent storage, and
    // no replication reported (no kubelet runs the pods here).
    let warning = |status: &strom_crds::KafkaClusterStatus| {
        status.conditions.iter().find(|c| c.type_ == "Warning").map(|c| (c.status.clone(), c.message.clone()))
    };
    let status = get(&clusters, "events").await.and_then(|c| c.status).expect("a status");
    assert_eq!(status.warnings, 0, "{:?}", warning(&status));
    assert_eq!(warning(&status).map(|w| w.0), Some("False".to_string()));

    // spec.networkPolicy.enabled: false removes the policy; true brings it back.
    let off = json!({ "spec": { "networkPolicy": { "enabled": false } } });
    clusters.patch("events", &PatchParams::default(), &Patch::Merge(&off)).await.expect("turn the policy off");
    eventually("the NetworkPolicy to go", WAIT, || async {
        get(&policies, "events-network-policy").await.is_none().then_some(())
    })
    .await;
    let on = json!({ "spec": { "networkPolicy": { "enabled": true } } });
    clusters.patch("events", &PatchParams::default(), &Patch::Merge(&on)).await.expect("turn the policy on");
    eventually("the NetworkPolicy to return", WAIT, || get(&policies, "events-network-policy")).await;

    // The scale subresource (`kubectl scale kafkacluster events --replicas 4`).
    let scale = clusters.get_scale("events").await.expect("the scale subresource");
    assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let scale_status = scale.status.expect("the scale status");
    assert_eq!(scale_status.replicas, 3, "status.brokers");
    let selector = scale_status.selector.expect("a label selector for autoscalers");
    assert!(selector.contains("app.kubernetes.io/instance=events"), "{selector}");
    let scaled = json!({ "spec": { "replicas": 4 } });
    clusters.patch_scale("events", &PatchParams::default(), &Patch::Merge(&scaled)).await.expect("scale to 4");
    assert_eq!(get(&clusters, "events").await.map(|c| c.spec.replicas), Some(4), "spec.replicas follows the scale");

    // Deleting the cluster garbage-collects what it owns.
    clusters.delete("events", &DeleteParams::background()).await.expect("delete the KafkaCluster");
    eventually("the cluster's objects to be garbage-collected", WAIT, || async {
        let gone = get(&statefulsets, "events").await.is_none()
            && get(&config_maps, "events-config").await.is_none()
            && get(&services, "events-brokers").await.is_none()
            && get(&services, "events-bootstrap").await.is_none()
            && get(&budgets, "events").await.is_none()
            && get(&policies, "events-network-policy").await.is_none()
            && get(&secrets, "events-cluster-ca").await.is_none()
            && get(&secrets, "events-broker-certs").await.is_none();
        gone.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_works_but_needs_attention_shows_as_warnings() {
    let (plane, client) = plane_with_namespace("warned").await;
    let _operator = OperatorProcess::start(&plane, &["--lease-duration-seconds", "4"]);
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), "warned");
    let cluster: KafkaCluster = serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": { "name": "fragile" },
        "spec": { "replicas": 2, "storage": { "type": "Ephemeral" } },
    }))
    .expect("a KafkaCluster");
    clusters.create(&PostParams::default(), &cluster).await.expect("create the KafkaCluster");
    let (count, message) = eventually("the Warning condition", WAIT, || async {
        let status = get(&clusters, "fragile").await?.status?;
        let condition = status.conditions.iter().find(|c| c.type_ == "Warning" && c.status == "True")?;
        Some((status.warnings, condition.message.clone()))
    })
    .await;
    assert_eq!(count, 2, "{message}");
    assert!(message.contains("one controller voter"), "{message}");
    assert!(message.contains("Ephemeral"), "{message}");
}

/// Every distinct problem gets its own Event (a second InvalidSpec once
/// showed the first one's message), and nothing claims to be progressing
/// while the spec stops the roll-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_spec_gets_its_own_event() {
    let (plane, client) = plane_with_namespace("invalid").await;
    let _operator = OperatorProcess::start(&plane, &["--lease-duration-seconds", "4"]);
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), "invalid");
    let cluster: KafkaCluster = serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": { "name": "typos" },
        "spec": { "replicas": 1, "storage": { "type": "Ephemeral" }, "config": { "log.retention.hourz": "1" } },
    }))
    .expect("a KafkaCluster");
    clusters.create(&PostParams::default(), &cluster).await.expect("create the KafkaCluster");
    let events: Api<Event> = Api::namespaced(client.clone(), "invalid");
    let invalid_notes = || async {
        let list = events.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        list.into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("typos"))
            .filter(|e| e.reason.as_deref() == Some("InvalidSpec"))
            .filter_map(|e| e.note)
            .collect::<Vec<_>>()
    };
    let first = eventually("an InvalidSpec event naming the first typo", WAIT, || async {
        invalid_notes().await.into_iter().find(|n| n.contains("log.retention.hourz"))
    })
    .await;
    let status = eventually("the conditions", WAIT, || async {
        let status = get(&clusters, "typos").await?.status?;
        status.conditions.iter().any(|c| c.type_ == "Degraded" && c.reason == "InvalidSpec").then_some(status)
    })
    .await;
    let progressing = status.conditions.iter().find(|c| c.type_ == "Progressing").expect("a Progressing condition");
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", "Blocked"), "{progressing:?}");

    // A second, different mistake: a second Event with its own message, the first kept.
    let patch = json!({ "spec": { "config": { "log.retention.hourz": null, "num.partitionz": "3" } } });
    clusters.patch("typos", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch config");
    let notes = eventually("an InvalidSpec event naming the second typo", WAIT, || async {
        let notes = invalid_notes().await;
        notes.iter().any(|n| n.contains("num.partitionz")).then_some(notes)
    })
    .await;
    assert!(notes.contains(&first), "the first event keeps its own message: {notes:?}");
    let second = notes.iter().find(|n| n.contains("num.partitionz")).expect("the second note");
    assert!(!second.contains("log.retention.hourz"), "{second}");
}
