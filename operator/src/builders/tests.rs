//! Field-by-field checks of the built objects.

use super::*;

fn cluster(spec: serde_json::Value) -> KafkaCluster {
    let mut c: KafkaCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "strom.dev/v1alpha1",
        "kind": "KafkaCluster",
        "metadata": { "name": "events", "namespace": "team", "uid": "1234-5678", "generation": 1 },
        "spec": spec,
    }))
    .expect("a valid KafkaCluster");
    c.metadata.uid = Some("1234-5678".into());
    c
}

fn default_cluster() -> KafkaCluster {
    cluster(serde_json::json!({ "replicas": 3, "storage": { "size": "20Gi", "storageClassName": "fast" } }))
}

#[test]
fn every_object_is_owned_by_the_cluster() {
    let c = default_cluster();
    let owner = owner_reference(&c).expect("owner reference");
    assert_eq!(owner.kind, "KafkaCluster");
    assert_eq!(owner.api_version, "strom.dev/v1alpha1");
    assert_eq!(owner.name, "events");
    assert_eq!(owner.uid, "1234-5678");
    assert_eq!(owner.controller, Some(true));
    let cm = config_map(&c);
    let metas = [
        &cm.metadata,
        &headless_service(&c).metadata,
        &bootstrap_service(&c).metadata,
        &stateful_set(&c, &config_hash(&cm)).metadata,
        &pod_disruption_budget(&c).metadata,
        &network_policy(&c, &OperatorPods::default()).metadata,
    ];
    for meta in metas {
        assert_eq!(meta.namespace.as_deref(), Some("team"));
        assert_eq!(meta.owner_references.as_ref(), Some(&vec![owner.clone()]), "{:?}", meta.name);
        assert_eq!(meta.labels.as_ref().unwrap()["app.kubernetes.io/instance"], "events");
    }
}

#[test]
fn config_file_names_the_voters_listeners_and_settings() {
    let c = cluster(serde_json::json!({
        "replicas": 5,
        "controllerVoters": 3,
        "config": { "log.retention.ms": "3600000", "default.replication.factor": "2" },
    }));
    let file = broker_config_file(&c);
    let parsed: serde_yaml::Value = serde_yaml::from_str(&file).expect("the config file is YAML");
    assert_eq!(parsed["listen"].as_str(), Some("0.0.0.0:9092"));
    assert_eq!(parsed["internal-listen"].as_str(), Some("0.0.0.0:9093"));
    assert!(parsed["internal-insecure"].is_null(), "the internal plane runs mutual TLS: {file}");
    assert_eq!(parsed["data-dir"].as_str(), Some("/var/lib/strom/data"));
    assert_eq!(
        parsed["voters"].as_str(),
        Some(
            "0@events-0.events-brokers.team.svc:9093,1@events-1.events-brokers.team.svc:9093,\
             2@events-2.events-brokers.team.svc:9093"
        )
    );
    assert!(parsed["settings"]["log.retention.ms"].is_null(), "dynamic settings go through the Admin API");
    assert_eq!(dynamic_broker_settings(&c), BTreeMap::from([("log.retention.ms".into(), "3600000".into())]));
    assert_eq!(parsed["settings"]["default.replication.factor"].as_str(), Some("2"), "the user's value wins");
    assert_eq!(parsed["settings"]["offsets.topic.replication.factor"].as_str(), Some("3"));
}

#[test]
fn scram_authentication_renders_one_sasl_plaintext_listener() {
    let plain = broker_config_file(&cluster(serde_json::json!({ "replicas": 1 })));
    assert!(!plain.contains("listeners"), "no authentication: the implicit PLAINTEXT listener: {plain}");
    let c = cluster(serde_json::json!({
        "replicas": 1,
        "listeners": { "authentication": { "type": "scram-sha-512" } },
        "config": { "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer" },
    }));
    let file = broker_config_file(&c);
    let parsed: serde_yaml::Value = serde_yaml::from_str(&file).expect("the config file is YAML");
    assert_eq!(parsed["settings"]["listeners"].as_str(), Some("SASL_PLAINTEXT://0.0.0.0:9092"));
    assert_eq!(parsed["settings"]["sasl.enabled.mechanisms"].as_str(), Some("SCRAM-SHA-512"));
    assert_eq!(
        parsed["settings"]["authorizer.class.name"].as_str(),
        Some("org.apache.kafka.metadata.authorizer.StandardAuthorizer")
    );
}

#[test]
fn spec_authorization_renders_the_acl_authorizer_and_super_users() {
    let c = cluster(serde_json::json!({
        "replicas": 1,
        "authorization": { "type": "simple", "superUsers": ["admin", "User:ops"] },
    }));
    let file = broker_config_file(&c);
    let parsed: serde_yaml::Value = serde_yaml::from_str(&file).expect("the config file is YAML");
    assert_eq!(parsed["settings"]["authorizer.class.name"].as_str(), Some(strom_crds::STANDARD_AUTHORIZER));
    assert_eq!(parsed["settings"]["super.users"].as_str(), Some("User:admin;User:ops"));
    let mut conflicting = c.spec.clone();
    conflicting.config.insert("super.users".into(), "User:x".into());
    assert_eq!(
        conflicting.validate().unwrap_err().to_string(),
        "spec.config.super.users contradicts spec.authorization, which sets it: remove one of them"
    );
}

#[test]
fn config_hash_follows_the_config_and_only_the_config() {
    let a = config_map(&default_cluster());
    assert_eq!(config_hash(&a), config_hash(&config_map(&default_cluster())), "stable");
    assert_eq!(config_hash(&a).len(), 64);
    let changed = cluster(serde_json::json!({ "replicas": 3, "config": { "replica.fetch.max.bytes": "2097152" } }));
    assert_ne!(config_hash(&a), config_hash(&config_map(&changed)), "a static setting rolls the brokers");
    let dynamic = cluster(serde_json::json!({ "replicas": 3, "config": { "log.retention.ms": "1" } }));
    assert_eq!(config_hash(&a), config_hash(&config_map(&dynamic)), "a dynamic setting does not");
    let other_image = cluster(
        serde_json::json!({ "replicas": 3, "image": "strom:dev", "storage": { "size": "20Gi", "storageClassName": "fast" } }),
    );
    assert_eq!(config_hash(&a), config_hash(&config_map(&other_image)), "the image is not broker config");
    let one_voter = cluster(serde_json::json!({ "replicas": 3, "controllerVoters": 1 }));
    assert_ne!(a.data, config_map(&one_voter).data, "the voters line changes");
    assert_eq!(config_hash(&a), config_hash(&config_map(&one_voter)), "the voters (bootstrap set) roll nothing");
}

#[test]
fn an_external_listener_mounts_each_brokers_address_file_and_names_it() {
    let c = cluster(serde_json::json!({"replicas": 2, "listeners": {"external": {"type": "LoadBalancer"}}}));
    let sts = stateful_set(&c, "h");
    let pod = sts.spec.template.spec.as_ref().unwrap();
    let broker = &pod.containers[0];
    assert_eq!(
        broker.args.as_ref().unwrap()[2..],
        [
            "--advertised-overrides".to_string(),
            "K8S_EXTERNAL=/etc/strom-advertised/broker-$(STROM_NODE_ID).properties".to_string()
        ]
    );
    let mount = broker.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "advertised").expect("a mount");
    assert_eq!(mount.mount_path, "/etc/strom-advertised");
    let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "advertised").expect("a volume");
    let source = volume.config_map.as_ref().unwrap();
    assert_eq!((source.name.as_str(), source.optional), ("events-advertised", Some(true)), "pods start before it");
    let ports: Vec<i32> = broker.ports.as_ref().unwrap().iter().map(|p| p.container_port).collect();
    assert!(ports.contains(&9099), "{ports:?}");
    let plain = stateful_set(&default_cluster(), "h");
    let plain = plain.spec.template.spec.unwrap();
    assert!(!plain.volumes.unwrap().iter().any(|v| v.name == "advertised"), "no external listener: no volume");
}

#[test]
fn stateful_set_runs_brokers_by_ordinal_with_ondelete_updates() {
    let c = default_cluster();
    let sts = stateful_set(&c, "abc123");
    let spec = &sts.spec;
    assert_eq!(sts.metadata.name.as_deref(), Some("events"));
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("events-brokers"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(spec.update_strategy.as_ref().unwrap().type_.as_deref(), Some("OnDelete"));
    assert_eq!(spec.selector.match_labels.as_ref(), Some(&selector_labels(&ClusterNames::of(&c))));
    let template_meta = spec.template.metadata.as_ref().unwrap();
    assert_eq!(template_meta.annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION], "abc123");
    for (k, v) in selector_labels(&ClusterNames::of(&c)) {
        assert_eq!(template_meta.labels.as_ref().unwrap().get(&k), Some(&v), "pods match the selector");
    }
    let pod = spec.template.spec.as_ref().unwrap();
    let broker = &pod.containers[0];
    assert_eq!(broker.image.as_deref(), Some(strom_crds::DEFAULT_BROKER_IMAGE));
    assert_eq!(broker.args.as_ref().unwrap(), &vec!["--config".to_string(), "/etc/strom/strom.yaml".to_string()]);
    let env: BTreeMap<_, _> = broker.env.as_ref().unwrap().iter().map(|e| (e.name.as_str(), e)).collect();
    assert_eq!(
        env["STROM_NODE_ID"].value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path,
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    assert_eq!(env["STROM_ADVERTISE"].value.as_deref(), Some("$(POD_NAME).events-brokers.team.svc:9092"));
    assert_eq!(env["STROM_INTERNAL_ADVERTISE"].value.as_deref(), Some("$(POD_NAME).events-brokers.team.svc:9093"));
    let readiness = broker.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!((readiness.path.as_deref(), &readiness.port), (Some("/readyz"), &IntOrString::Int(9094)));
    let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(claim_spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"], Quantity("20Gi".into()));
    let retention = spec.persistent_volume_claim_retention_policy.as_ref().unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"), "data outlives the resource by default");
    let volumes = pod.volumes.as_ref().unwrap();
    assert_eq!(volumes[0].config_map.as_ref().unwrap().name, "events-config");
    // Each broker finds its own pair in the mounted `<cluster>-broker-certs`.
    let tls = volumes.iter().find(|v| v.name == "internal-tls").expect("the internal TLS volume");
    assert_eq!(tls.secret.as_ref().unwrap().secret_name.as_deref(), Some("events-broker-certs"));
    let mount = broker.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "internal-tls").unwrap();
    assert_eq!((mount.mount_path.as_str(), mount.read_only), ("/etc/strom-tls", Some(true)));
    assert_eq!(env["STROM_INTERNAL_TLS_CA"].value.as_deref(), Some("/etc/strom-tls/ca.crt"));
    assert_eq!(env["STROM_INTERNAL_TLS_CERT"].value.as_deref(), Some("/etc/strom-tls/broker-$(STROM_NODE_ID).crt"));
    assert_eq!(env["STROM_INTERNAL_TLS_KEY"].value.as_deref(), Some("/etc/strom-tls/broker-$(STROM_NODE_ID).key"));
    let names: Vec<&str> = broker.env.as_ref().unwrap().iter().map(|e| e.name.as_str()).collect();
    let position = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(position("STROM_NODE_ID") < position("STROM_INTERNAL_TLS_CERT"), "referenced variables come first");
}

#[test]
fn ephemeral_storage_uses_an_empty_dir_and_no_claims() {
    let c = cluster(serde_json::json!({ "replicas": 1, "storage": { "type": "Ephemeral" } }));
    let sts = stateful_set(&c, "h");
    let spec = sts.spec;
    assert!(spec.volume_claim_templates.is_none());
    let volumes = spec.template.spec.unwrap().volumes.unwrap();
    assert!(volumes.iter().any(|v| v.name == "data" && v.empty_dir.is_some()));
}

#[test]
fn template_overrides_and_racks_reach_the_pods() {
    let c = cluster(serde_json::json!({
        "replicas": 3,
        "rack": { "topologyKey": "topology.kubernetes.io/zone" },
        "template": {
            "nodeSelector": { "disk": "ssd" },
            "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "kafka", "effect": "NoSchedule" }],
            "labels": { "team": "payments", "app.kubernetes.io/instance": "spoofed" },
            "annotations": { "owner": "payments" },
        },
    }));
    let template = stateful_set(&c, "h").spec.template;
    let meta = template.metadata.unwrap();
    let labels = meta.labels.unwrap();
    assert_eq!(labels["team"], "payments");
    assert_eq!(labels["app.kubernetes.io/instance"], "events", "selector labels cannot be overridden");
    assert_eq!(meta.annotations.unwrap()["owner"], "payments");
    let pod = template.spec.unwrap();
    assert_eq!(pod.node_selector.unwrap()["disk"], "ssd");
    assert_eq!(pod.tolerations.unwrap()[0].key.as_deref(), Some("dedicated"));
    let spread = &pod.topology_spread_constraints.unwrap()[0];
    assert_eq!(spread.topology_key, "topology.kubernetes.io/zone");
    // The broker learns its rack from the label the binding copies from the node.
    let rack = pod.containers[0].env.as_ref().unwrap().iter().find(|e| e.name == "STROM_RACK").cloned();
    let path = rack.and_then(|e| e.value_from).and_then(|v| v.field_ref).map(|f| f.field_path);
    assert_eq!(path.as_deref(), Some("metadata.labels['topology.kubernetes.io/zone']"));
    let no_rack = stateful_set(&default_cluster(), "h").spec.template.spec.unwrap();
    assert!(no_rack.containers[0].env.as_ref().unwrap().iter().all(|e| e.name != "STROM_RACK"));
}

#[test]
fn services_and_budget() {
    let c = default_cluster();
    let headless = headless_service(&c).spec.unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.publish_not_ready_addresses, Some(true));
    let ports: Vec<i32> = headless.ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, vec![9092, 9093, 9094]);
    let bootstrap = bootstrap_service(&c);
    assert_eq!(bootstrap.metadata.name.as_deref(), Some("events-bootstrap"));
    assert_eq!(bootstrap.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
    let external = cluster(serde_json::json!({
        "replicas": 3,
        "listeners": { "external": { "type": "NodePort", "nodePortBase": 31000 } },
    }));
    let spec = bootstrap_service(&external).spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"), "outside clients have their own bootstrap Service");
    let ports: Vec<(i32, Option<i32>)> = spec.ports.unwrap().iter().map(|p| (p.port, p.node_port)).collect();
    assert_eq!(ports, [(9092, None), (9099, None)], "no node port on an in-cluster Service");
    let pdb = pod_disruption_budget(&c).spec.unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(ClusterNames::of(&c).bootstrap_address(), "events-bootstrap.team.svc:9092");
}

#[test]
fn broker_config_is_checked_as_brokers_would() {
    let ok = BTreeMap::from([("log.retention.ms".to_string(), "3600000".to_string())]);
    assert!(check_broker_config(&ok).is_ok());
    let typo = BTreeMap::from([("log.retention.msec".to_string(), "1".to_string())]);
    let e = check_broker_config(&typo).unwrap_err().to_string();
    assert!(e.starts_with("spec.config: ") && e.contains("log.retention.msec"), "{e}");
    let bad_value = BTreeMap::from([("log.retention.ms".to_string(), "soon".to_string())]);
    let e = check_broker_config(&bad_value).unwrap_err().to_string();
    assert!(e.contains("log.retention.ms") && e.contains("soon"), "{e}");
    let owned = BTreeMap::from([("node.id".to_string(), "7".to_string())]);
    assert_eq!(
        check_broker_config(&owned).unwrap_err().to_string(),
        "spec.config.node.id: set by the operator from the pod ordinal; remove it from spec.config"
    );
    let map = BTreeMap::from([("listener.security.protocol.map".to_string(), "A:SSL".to_string())]);
    assert!(check_broker_config(&map).unwrap_err().to_string().contains("from spec.listeners"));
}

#[test]
fn broker_pods_meet_the_restricted_pod_security_standard() {
    let sts = stateful_set(&default_cluster(), "abc123");
    let pod = sts.spec.template.spec.expect("a pod spec");
    let security = pod.security_context.expect("a pod security context");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!((security.run_as_user, security.fs_group), (Some(BROKER_UID), Some(BROKER_UID)));
    assert_eq!(security.seccomp_profile.map(|p| p.type_).as_deref(), Some("RuntimeDefault"));
    let container = pod.containers[0].security_context.clone().expect("a container security context");
    assert_eq!(container.allow_privilege_escalation, Some(false));
    assert_eq!(container.capabilities.and_then(|c| c.drop), Some(vec!["ALL".to_string()]));
}

/// The pod template of a fixed spec, as JSON, and the sha256 of that JSON.
fn template_and_hash(c: &KafkaCluster) -> (serde_json::Value, String) {
    let template = serde_json::to_value(&stateful_set(c, &config_hash(&config_map(c))).spec.template)
        .expect("the pod template serializes");
    let digest = Sha256::digest(template.to_string().as_bytes());
    (template, digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn fixed_spec_cluster() -> KafkaCluster {
    cluster(serde_json::json!({
        "replicas": 3,
        "image": "registry.example/strom-broker:9.9.9",
        "config": { "replica.fetch.max.bytes": "2097152", "log.retention.ms": "3600000" },
        "storage": { "size": "20Gi", "storageClassName": "fast" },
    }))
}

/// Upgrading the operator must restart no broker: the pod template (whose
/// changes the operator rolls out) is a function of the spec alone — not of
/// the operator's version or build, nor of the cluster's bookkeeping
/// (generation, resourceVersion, status, its own labels and annotations
/// other than `strom.dev/restart`), nor of the replica count.
#[test]
fn pod_template_depends_on_the_spec_alone() {
    let (template, hash) = template_and_hash(&fixed_spec_cluster());
    let text = template.to_string();
    assert!(
        !text.contains(env!("CARGO_PKG_VERSION")),
        "the pod template names the operator's version {}: {text}",
        env!("CARGO_PKG_VERSION")
    );
    assert!(!text.contains("app.kubernetes.io/version"), "a version label on the pod template: {text}");

    let mut other = fixed_spec_cluster();
    other.metadata.generation = Some(42);
    other.metadata.resource_version = Some("987654".into());
    other.metadata.labels = Some(BTreeMap::from([("team".to_string(), "payments".to_string())]));
    other.metadata.annotations = Some(BTreeMap::from([("note".to_string(), "x".to_string())]));
    other.status = Some(strom_crds::KafkaClusterStatus { ready_brokers: 2, ..Default::default() });
    other.spec.replicas = 5;
    assert_eq!(template_and_hash(&other), (template, hash.clone()), "the template follows more than the spec");

    // The value itself: a change here restarts every broker of every cluster
    // when an operator with it is deployed. If that is intended, say so in
    // the release notes and put the new value here.
    // Changed with the operator-managed internal CA: the brokers' TLS
    // volume and variables, and no `internal-insecure` in the config file
    // (one restart moves a cluster's internal plane to mutual TLS).
    // Changed again when the `voters:` line left the config hash (controller
    // voters change without a roll): deploying that operator restarts every
    // broker once.
    assert_eq!(
        hash, "c45086fd8d8b9516255f678fd60535d58f216403516d19ac6f9925b4adcd6626",
        "the pod template of a fixed spec changed"
    );
}

fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_network_policy_opens_the_listeners_and_keeps_the_internal_port_to_brokers_and_operator() {
    let c = cluster(serde_json::json!({
        "replicas": 3,
        "listeners": { "additional": [{ "name": "mtls", "port": 9096, "tls": true, "authentication": { "type": "tls" } }] },
    }));
    let operator = OperatorPods {
        namespace: Some("strom-system".into()),
        labels: labels_of(&[("app.kubernetes.io/name", "strom-operator"), ("app.kubernetes.io/instance", "ops")]),
    };
    let policy = network_policy(&c, &operator);
    assert_eq!(policy.metadata.name.as_deref(), Some("events-network-policy"));
    let spec = policy.spec.expect("a spec");
    // The broker pods: the StatefulSet's own selector.
    let sts = stateful_set(&c, "hash");
    assert_eq!(
        spec.pod_selector.as_ref().and_then(|s| s.match_labels.as_ref()),
        sts.spec.selector.match_labels.as_ref()
    );
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
    assert!(spec.egress.is_none(), "egress is not restricted");
    let rules = spec.ingress.expect("ingress rules");
    assert_eq!(rules.len(), 2, "{rules:?}");
    let ports = |rule: &NetworkPolicyIngressRule| -> Vec<(i32, String)> {
        rule.ports
            .iter()
            .flatten()
            .map(|p| match (&p.port, &p.protocol) {
                (Some(IntOrString::Int(n)), Some(proto)) => (*n, proto.clone()),
                other => panic!("a numbered TCP port: {other:?}"),
            })
            .collect()
    };
    let tcp = |ns: &[i32]| ns.iter().map(|n| (*n, "TCP".to_string())).collect::<Vec<_>>();
    // From anywhere: the Kafka listeners and the HTTP port, never the internal one.
    assert!(rules[0].from.is_none(), "open to all: {:?}", rules[0].from);
    assert_eq!(ports(&rules[0]), tcp(&[KAFKA_PORT, HTTP_PORT, 9096]));
    // The internal port: this cluster's brokers and the operator's pods only.
    assert_eq!(ports(&rules[1]), tcp(&[INTERNAL_PORT]));
    let from = rules[1].from.as_ref().expect("restricted sources");
    assert_eq!(from.len(), 2, "{from:?}");
    let brokers = &from[0];
    assert!(brokers.namespace_selector.is_none() && brokers.ip_block.is_none(), "the policy's namespace: {brokers:?}");
    assert_eq!(
        brokers.pod_selector.as_ref().and_then(|s| s.match_labels.clone()),
        Some(selector_labels(&ClusterNames::of(&c)))
    );
    let op = &from[1];
    assert_eq!(
        op.namespace_selector.as_ref().and_then(|s| s.match_labels.clone()),
        Some(labels_of(&[("kubernetes.io/metadata.name", "strom-system")]))
    );
    assert_eq!(op.pod_selector.as_ref().and_then(|s| s.match_labels.clone()), Some(operator.labels.clone()));

    // Outside a cluster the operator's namespace is unknown: its labels in any namespace.
    let anywhere = network_policy(&c, &OperatorPods::default());
    let rules = anywhere.spec.and_then(|s| s.ingress).expect("ingress rules");
    let op = &rules[1].from.as_ref().expect("sources")[1];
    let any_namespace = op.namespace_selector.as_ref().expect("a namespace selector");
    assert!(any_namespace.match_labels.is_none() && any_namespace.match_expressions.is_none(), "{any_namespace:?}");
    assert_eq!(
        op.pod_selector.as_ref().and_then(|s| s.match_labels.clone()),
        Some(labels_of(&[("app.kubernetes.io/name", "strom-operator"), ("app.kubernetes.io/component", "operator")]))
    );
}

#[test]
fn operator_pod_labels_parse_and_refuse_what_would_select_too_much() {
    assert_eq!(parse_pod_labels("a=b, c=d").expect("two labels"), labels_of(&[("a", "b"), ("c", "d")]));
    assert_eq!(parse_pod_labels("a=").expect("an empty value is a value"), labels_of(&[("a", "")]));
    for bad in ["", " , ", "a", "=b", "a=b,a=c"] {
        let e = parse_pod_labels(bad).expect_err(bad).to_string();
        assert!(e.contains("--operator-pod-labels") && e.contains("KEY=VALUE"), "{e}");
    }
}
