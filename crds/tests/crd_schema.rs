//! The generated CRD schemas: structural as the apiserver demands, carrying
//! the CEL rules, and those rules doing what their messages say.
//!
//! CEL rules are evaluated with kube's client-side CEL engine (kube-cel), the
//! closest thing to an apiserver a unit test can start; it applies schema
//! defaults first, as admission does. It does not check OpenAPI value
//! validations (minimum, maxLength), only the CEL rules.

use kube::CustomResourceExt;
use kube::core::cel::{ErrorKind, ScopeContext, Validator, analyze_rule, compile_schema};
use serde_json::{Map, Value, json};
use strom_crds::quantity::{ALLOWED_UNITS, parse_storage_size};
use strom_crds::{KafkaCluster, KafkaTopic};

/// The `openAPIV3Schema` of `K`'s CRD as JSON.
fn schema_of<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema.expect("derived CRDs carry a schema")).expect("schema serialises")
}

/// The schema as the apiserver compiles root rules against it: with
/// `metadata.name`, which every resource has but the CRD does not declare.
fn schema_for_cel<K: CustomResourceExt>() -> Value {
    let mut schema = schema_of::<K>();
    schema["properties"]["metadata"] = json!({
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 253}, "generateName": {"type": "string"}},
    });
    schema
}

fn both_schemas() -> [(&'static str, Value); 2] {
    [("KafkaCluster", schema_of::<KafkaCluster>()), ("KafkaTopic", schema_of::<KafkaTopic>())]
}

/// Calls `visit` on every schema node under `node`, with a JSON-path-like name.
fn walk(node: &Value, path: &str, visit: &mut dyn FnMut(&str, &Map<String, Value>)) {
    let Some(object) = node.as_object() else { return };
    visit(path, object);
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            walk(child, &format!("{path}.{name}"), visit);
        }
    }
    if let Some(items) = object.get("items") {
        walk(items, &format!("{path}[]"), visit);
    }
    if let Some(additional) = object.get("additionalProperties") {
        walk(additional, &format!("{path}{{}}"), visit);
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        for (i, child) in object.get(junctor).and_then(Value::as_array).into_iter().flatten().enumerate() {
            walk(child, &format!("{path}/{junctor}[{i}]"), visit);
        }
    }
}

/// The schema node at a dotted path of property names, e.g. `spec.storage.size`.
fn node<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, name| &node["properties"][name])
}

/// The `rule` strings on the node at `path` ("" for the root).
fn rules_at(schema: &Value, path: &str) -> Vec<String> {
    let node = if path.is_empty() { schema } else { node(schema, path) };
    node["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| rule["rule"].as_str().expect("a rule is a string").to_owned())
        .collect()
}

#[test]
fn schemas_are_structural() {
    for (kind, schema) in both_schemas() {
        let mut problems = Vec::new();
        walk(&schema, kind, &mut |path, node| {
            for banned in ["$ref", "$defs", "definitions", "$schema", "anyOf", "oneOf", "allOf", "not", "const"] {
                if node.contains_key(banned) {
                    problems.push(format!("{path}: has {banned}"));
                }
            }
            if node.contains_key("x-kubernetes-preserve-unknown-fields") {
                problems.push(format!("{path}: preserves unknown fields, so the apiserver would not prune them"));
            }
            let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&json!(true));
            match node.get("type").and_then(Value::as_str) {
                None if !int_or_string => problems.push(format!("{path}: no type")),
                Some("object") if node.contains_key("properties") == node.contains_key("additionalProperties") => {
                    problems
                        .push(format!("{path}: an object needs exactly one of properties and additionalProperties"));
                }
                Some("array") if !node.contains_key("items") => problems.push(format!("{path}: array without items")),
                _ => {}
            }
            if let Some(format) = node.get("format").and_then(Value::as_str)
                && !["int32", "int64", "date-time"].contains(&format)
            {
                problems.push(format!("{path}: format {format} is not one the apiserver knows"));
            }
            let properties = node.get("properties").and_then(Value::as_object);
            for required in node.get("required").and_then(Value::as_array).into_iter().flatten() {
                let required = required.as_str().unwrap_or_default();
                match properties.and_then(|p| p.get(required)) {
                    None => problems.push(format!("{path}: requires undeclared {required}")),
                    Some(p) if p.get("nullable") == Some(&json!(true)) => {
                        problems.push(format!("{path}.{required}: required yet nullable"))
                    }
                    Some(_) => {}
                }
            }
            if node.get("x-kubernetes-list-type") == Some(&json!("map")) {
                let item_required = node["items"]["required"].as_array().cloned().unwrap_or_default();
                for key in node["x-kubernetes-list-map-keys"].as_array().into_iter().flatten() {
                    if !item_required.contains(key) {
                        problems.push(format!("{path}: list-map key {key} is not required in the items"));
                    }
                }
            }
            // The apiserver bounds an enum string by its longest value.
            if node.contains_key("x-kubernetes-validations")
                && node.get("type") == Some(&json!("string"))
                && !node.contains_key("maxLength")
                && !node.contains_key("enum")
            {
                problems.push(format!("{path}: a string with CEL rules needs maxLength to bound the rules' cost"));
            }
        });
        assert!(problems.is_empty(), "{kind} schema is not structural:\n{}", problems.join("\n"));
    }
}

#[test]
fn every_property_has_a_description() {
    for (kind, schema) in both_schemas() {
        let mut missing = Vec::new();
        walk(&schema, kind, &mut |path, node| {
            for (name, property) in node.get("properties").and_then(Value::as_object).into_iter().flatten() {
                if property.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                    missing.push(format!("{path}.{name}"));
                }
            }
        });
        assert!(missing.is_empty(), "{kind}: add a doc comment to {}", missing.join(", "));
    }
}

#[test]
fn optional_fields_are_nullable() {
    let cluster = schema_of::<KafkaCluster>();
    for path in [
        "spec.imagePullPolicy",
        "spec.controllerVoters",
        "spec.resources",
        "spec.rack",
        "spec.template",
        "spec.storage.size",
        "spec.storage.storageClassName",
        "spec.listeners.external",
        "spec.listeners.external.nodePortBase",
        "status.controllerId",
        "status.bootstrap",
    ] {
        assert_eq!(node(&cluster, path)["nullable"], json!(true), "KafkaCluster {path}");
    }
    let topic = schema_of::<KafkaTopic>();
    for path in ["spec.topicName", "status.topicId", "status.createdByOperator"] {
        assert_eq!(node(&topic, path)["nullable"], json!(true), "KafkaTopic {path}");
    }
    assert_eq!(node(&topic, "spec")["required"], json!(["clusterRef", "partitions", "replicationFactor"]));
}

#[test]
fn schemas_carry_the_cel_rules() {
    let topic = schema_of::<KafkaTopic>();
    for path in ["spec.partitions", "spec.topicName", "spec.clusterRef", ""] {
        assert!(!rules_at(&topic, path).is_empty(), "KafkaTopic {path:?} has no x-kubernetes-validations");
    }
    assert!(rules_at(&topic, "spec.partitions").contains(&"self >= oldSelf".to_owned()));
    assert_eq!(node(&topic, "spec.topicName")["maxLength"], json!(249));

    let cluster = schema_of::<KafkaCluster>();
    for path in ["spec", "spec.storage", "spec.storage.size", "spec.storage.type", "spec.controllerVoters"] {
        assert!(!rules_at(&cluster, path).is_empty(), "KafkaCluster {path:?} has no x-kubernetes-validations");
    }
    assert_eq!(node(&cluster, "spec.storage.size")["maxLength"], json!(64));
}

/// Whether `message` complains of a variable that `expression` binds in a
/// macro (`all`, `exists`, `exists_one`, `map`, `filter`: `(x, ...`).
fn macro_variable(message: &str, expression: &str) -> bool {
    let Some(name) = message.strip_prefix("variable '").and_then(|m| m.split('\'').next()) else { return false };
    ["all", "exists", "exists_one", "map", "filter"].iter().any(|m| expression.contains(&format!(".{m}({name},")))
}

/// kube-cel's cost estimate is coarse (the apiserver's is exact and checked
/// only when the CRD is applied), but it catches unbounded strings and lists.
#[test]
fn every_cel_rule_compiles_in_scope_and_within_budget() {
    for (kind, schema) in
        [("KafkaCluster", schema_for_cel::<KafkaCluster>()), ("KafkaTopic", schema_for_cel::<KafkaTopic>())]
    {
        let mut problems = Vec::new();
        let mut count = 0;
        walk(&schema, kind, &mut |path, node| {
            let Some(rules) = node.get("x-kubernetes-validations").and_then(Value::as_array) else { return };
            let compiled = compile_schema(&Value::Object(node.clone()));
            for error in compiled.compilation_errors() {
                problems.push(format!("{path}: {error}"));
            }
            for rule in rules {
                count += 1;
                // kube-cel accepts this, but kube-apiserver 1.37 estimates the
                // result of string(x) as unbounded and refuses the whole CRD.
                if rule["messageExpression"].as_str().is_some_and(|m| m.contains("string(")) {
                    problems
                        .push(format!("{path}: messageExpression concatenates string(...); use '... %d'.format([x])"));
                }
                for expression in [&rule["rule"], &rule["messageExpression"]].into_iter().filter_map(Value::as_str) {
                    for warning in analyze_rule(expression, &compiled, ScopeContext::CrdValidation) {
                        // kube-cel does not see variables bound by macros (`self.all(l, ...)`);
                        // the apiserver does (crd_validation applies these rules).
                        if macro_variable(&warning.message, expression) {
                            continue;
                        }
                        problems.push(format!("{path}: {expression}: {}", warning.message));
                    }
                }
            }
        });
        assert!(count > 0, "{kind}: no rules found");
        assert!(problems.is_empty(), "{kind}:\n{}", problems.join("\n"));
    }
}

/// Messages of the rules `new` breaks (given `old` for an update). Panics if
/// a rule could not be evaluated at all, since the apiserver would refuse
/// such a rule when the CRD is applied.
fn violations(schema: &Value, new: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(schema, new, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|error| {
                assert_eq!(error.kind, ErrorKind::ValidationFailure, "rule could not be evaluated: {error:?}");
                error.to_string()
            })
            .collect(),
    }
}

/// Asserts that exactly one rule fails and its message contains `expected`.
fn assert_refused(schema: &Value, new: &Value, old: Option<&Value>, expected: &str) {
    let found = violations(schema, new, old);
    assert!(
        found.len() == 1 && found[0].contains(expected),
        "expected one violation containing {expected:?}, got {found:#?}\nfor {new}"
    );
}

fn cluster(spec: Value) -> Value {
    json!({"apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster", "metadata": {"name": "events"}, "spec": spec})
}

fn topic(name: &str, spec: Value) -> Value {
    let mut full = json!({"clusterRef": "events", "partitions": 3, "replicationFactor": 3});
    full.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
    json!({"apiVersion": "strom.dev/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": name}, "spec": full})
}

#[test]
fn minimal_cluster_passes_with_defaults_applied() {
    let schema = schema_for_cel::<KafkaCluster>();
    assert_eq!(violations(&schema, &cluster(json!({})), None), Vec::<String>::new());
    assert_eq!(violations(&schema, &cluster(json!({"replicas": 1})), None), Vec::<String>::new());
    let ephemeral = cluster(json!({"storage": {"type": "Ephemeral"}}));
    assert_eq!(violations(&schema, &ephemeral, None), Vec::<String>::new());
}

#[test]
fn persistent_storage_without_size_is_refused() {
    let schema = schema_for_cel::<KafkaCluster>();
    assert_refused(&schema, &cluster(json!({"storage": {"type": "Persistent"}})), None, "storage.size is required");
    assert_refused(&schema, &cluster(json!({"storage": {"deleteClaim": true}})), None, "storage.size is required");
}

#[test]
fn storage_size_rule_agrees_with_the_rust_parser() {
    let schema = schema_for_cel::<KafkaCluster>();
    for size in [
        "10Gi", "500M", "1", "1.5Ti", "2Ei", "100k", "0.5Gi", "10GB", "10gi", "-1", "1e9", "100m", "1K", "0", "0.0Mi",
        "0.01", ".5Gi", "5.Gi", "1 Gi", "Gi",
    ] {
        let found = violations(&schema, &cluster(json!({"storage": {"size": size}})), None);
        match parse_storage_size(size) {
            Ok(_) => assert!(found.is_empty(), "CEL refuses {size:?}, which Rust accepts: {found:?}"),
            Err(err) => {
                assert_eq!(found.len(), 1, "CEL and Rust disagree on {size:?}: {found:?} vs {err}");
                let zero = matches!(err, strom_crds::quantity::QuantityError::Zero { .. });
                let expected = if zero { "greater than zero" } else { ALLOWED_UNITS };
                assert!(found[0].contains(expected), "{size:?}: {}", found[0]);
            }
        }
    }
}

#[test]
fn storage_type_cannot_change() {
    let schema = schema_for_cel::<KafkaCluster>();
    let old = cluster(json!({"storage": {"type": "Persistent", "size": "10Gi"}}));
    let new = cluster(json!({"storage": {"type": "Ephemeral"}}));
    assert_refused(&schema, &new, Some(&old), "storage.type cannot change");
    let grown = cluster(json!({"storage": {"type": "Persistent", "size": "20Gi"}}));
    assert_refused(&schema, &grown, Some(&old), "storage.size cannot change yet");
    let same = cluster(json!({"storage": {"type": "Persistent", "size": "10Gi"}}));
    assert_eq!(violations(&schema, &same, Some(&old)), Vec::<String>::new());
}

#[test]
fn replicas_may_grow_and_shrink_with_a_fixed_quorum() {
    let schema = schema_for_cel::<KafkaCluster>();
    let old = cluster(json!({"replicas": 5, "controllerVoters": 3}));
    let shrunk = cluster(json!({"replicas": 4, "controllerVoters": 3}));
    assert_eq!(violations(&schema, &shrunk, Some(&old)), Vec::<String>::new());
    let below_voters = cluster(json!({"replicas": 2, "controllerVoters": 3}));
    assert_refused(&schema, &below_voters, Some(&old), "controllerVoters (3) cannot exceed replicas (2)");
    let grown = cluster(json!({"replicas": 6, "controllerVoters": 3}));
    assert_eq!(violations(&schema, &grown, Some(&old)), Vec::<String>::new());
}

#[test]
fn controller_voters_must_be_odd_and_at_most_replicas() {
    let schema = schema_for_cel::<KafkaCluster>();
    assert_refused(&schema, &cluster(json!({"replicas": 4, "controllerVoters": 2})), None, "must be 1, 3 or 5");
    assert_refused(
        &schema,
        &cluster(json!({"replicas": 3, "controllerVoters": 5})),
        None,
        "controllerVoters (5) cannot exceed replicas (3)",
    );
    assert_eq!(
        violations(&schema, &cluster(json!({"replicas": 5, "controllerVoters": 5})), None),
        Vec::<String>::new()
    );
}

#[test]
fn controller_quorum_size_may_change_within_replicas() {
    // Voter changes go through Raft membership changes: 1 -> 3 -> 5 -> 3.
    let schema = schema_for_cel::<KafkaCluster>();
    let at = |voters: i32| cluster(json!({"replicas": 5, "controllerVoters": voters}));
    for (from, to) in [(1, 3), (3, 5), (5, 3), (3, 1)] {
        assert_eq!(violations(&schema, &at(to), Some(&at(from))), Vec::<String>::new(), "{from} -> {to}");
    }
    // Unset voters follow replicas, also across 3.
    let single = cluster(json!({"replicas": 1}));
    assert_eq!(violations(&schema, &cluster(json!({"replicas": 3})), Some(&single)), Vec::<String>::new());
    assert_eq!(
        violations(&schema, &cluster(json!({"replicas": 2})), Some(&cluster(json!({"replicas": 3})))),
        Vec::<String>::new()
    );
    // Still: every voter runs in a broker pod, and the count is odd.
    assert_refused(
        &schema,
        &cluster(json!({"replicas": 3, "controllerVoters": 5})),
        Some(&at(3)),
        "cannot exceed replicas (3)",
    );
    assert_refused(&schema, &at(4), Some(&at(3)), "must be 1, 3 or 5");
}

#[test]
fn node_port_base_is_for_node_port_listeners_only() {
    let schema = schema_for_cel::<KafkaCluster>();
    let listener = |kind: &str| cluster(json!({"listeners": {"external": {"type": kind, "nodePortBase": 31000}}}));
    assert_eq!(violations(&schema, &listener("NodePort"), None), Vec::<String>::new());
    assert_refused(&schema, &listener("LoadBalancer"), None, "nodePortBase applies only to type NodePort");
}

#[test]
fn minimal_topic_passes() {
    let schema = schema_for_cel::<KafkaTopic>();
    assert_eq!(violations(&schema, &topic("orders", json!({})), None), Vec::<String>::new());
    let named = topic("orders", json!({"topicName": "Orders_v2.eu-1"}));
    assert_eq!(violations(&schema, &named, None), Vec::<String>::new());
}

#[test]
fn topic_names_kafka_refuses_are_refused() {
    let schema = schema_for_cel::<KafkaTopic>();
    let named = |name: &str| topic("orders", json!({"topicName": name}));
    assert_refused(
        &schema,
        &named("orders/v1"),
        None,
        "topicName may only contain ASCII letters, digits, '.', '_' and '-'",
    );
    assert_refused(&schema, &named("zürich"), None, "may only contain ASCII letters");
    assert_refused(&schema, &named(".."), None, "topicName cannot be '.' or '..'");
    assert_refused(&schema, &named("."), None, "topicName cannot be '.' or '..'");
}

#[test]
fn overlong_metadata_name_needs_a_topic_name() {
    let schema = schema_for_cel::<KafkaTopic>();
    let long = "a".repeat(250);
    assert_refused(&schema, &topic(&long, json!({})), None, "longer than 249 characters");
    assert_eq!(violations(&schema, &topic(&long, json!({"topicName": "orders"})), None), Vec::<String>::new());
    assert_eq!(violations(&schema, &topic(&"a".repeat(249), json!({})), None), Vec::<String>::new());
}

#[test]
fn partitions_can_grow_but_not_shrink() {
    let schema = schema_for_cel::<KafkaTopic>();
    let six = topic("orders", json!({"partitions": 6}));
    let three = topic("orders", json!({"partitions": 3}));
    assert_eq!(violations(&schema, &six, Some(&three)), Vec::<String>::new());
    assert_refused(
        &schema,
        &three,
        Some(&six),
        "partitions cannot be decreased from 6 to 3; Kafka cannot remove partitions",
    );
}

#[test]
fn cluster_and_name_cannot_change_but_the_replication_factor_can() {
    let schema = schema_for_cel::<KafkaTopic>();
    let old = topic("orders", json!({"topicName": "orders"}));
    let changed = |spec: Value| topic("orders", spec);
    let resized = changed(json!({"topicName": "orders", "replicationFactor": 2}));
    assert_eq!(violations(&schema, &resized, Some(&old)), Vec::<String>::new());
    assert_refused(
        &schema,
        &changed(json!({"topicName": "orders", "clusterRef": "other"})),
        Some(&old),
        "clusterRef cannot change",
    );
    assert_refused(&schema, &changed(json!({"topicName": "orders2"})), Some(&old), "topicName cannot change");
}

#[test]
fn topic_name_may_be_added_or_removed_only_when_it_keeps_the_name() {
    let schema = schema_for_cel::<KafkaTopic>();
    let implicit = topic("orders", json!({}));
    let same = topic("orders", json!({"topicName": "orders"}));
    let other = topic("orders", json!({"topicName": "payments"}));
    assert_eq!(violations(&schema, &same, Some(&implicit)), Vec::<String>::new());
    assert_eq!(violations(&schema, &implicit, Some(&same)), Vec::<String>::new());
    assert_refused(&schema, &other, Some(&implicit), "that would rename the topic");
    assert_refused(&schema, &implicit, Some(&other), "that would rename the topic");
}
