//! The generated CRDs install into a real kube-apiserver, and the API server
//! itself refuses invalid resources with the schema's or CEL rule's message.

mod common;

use common::plane_with_namespace;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};

fn topic(name: &str, spec: serde_json::Value) -> KafkaTopic {
    serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaTopic",
        "metadata": { "name": name }, "spec": spec,
    }))
    .expect("a KafkaTopic the Rust types accept")
}

fn cluster(name: &str, spec: serde_json::Value) -> KafkaCluster {
    serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": { "name": name }, "spec": spec,
    }))
    .expect("a KafkaCluster the Rust types accept")
}

/// The API server's refusal of `result`: (HTTP code, message).
fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("{what}: expected the API server to refuse it, got {other:?}"),
    }
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str, expected: &[&str]) {
    let (code, message) = refusal(result, what);
    assert_eq!(code, 422, "{what}: {message}");
    for fragment in expected {
        assert!(message.contains(fragment), "{what}: message {message:?} lacks {fragment:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resources_are_refused_by_the_api_server_with_a_clear_message() {
    let (_plane, client) = plane_with_namespace("validation").await;
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), "validation");
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), "validation");
    let pp = PostParams::default();

    // Valid resources are accepted, with the schema's defaults filled in by the API server
    // (sent as raw JSON, so no client-side default is involved).
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "validation", &ApiResource::erase::<KafkaCluster>(&()));
    let minimal: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": { "name": "minimal" }, "spec": {},
    }))
    .expect("a raw object");
    let stored = raw.create(&pp, &minimal).await.expect("a cluster with an empty spec");
    assert_eq!(stored.data["spec"]["replicas"], json!(strom_crds::cluster::DEFAULT_REPLICAS));
    assert_eq!(stored.data["spec"]["storage"]["size"], json!(strom_crds::cluster::DEFAULT_STORAGE_SIZE));
    assert_eq!(stored.data["spec"]["image"], json!(strom_crds::DEFAULT_BROKER_IMAGE));
    clusters.create(&pp, &cluster("events", json!({ "replicas": 3 }))).await.expect("a valid cluster");
    let ok = topics
        .create(&pp, &topic("orders", json!({ "clusterRef": "events", "partitions": 3, "replicationFactor": 3 })))
        .await
        .expect("a valid topic");
    assert_eq!(ok.spec.deletion_policy, strom_crds::DeletionPolicy::Delete);

    assert_refused(
        topics
            .create(
                &pp,
                &topic("bad-name", json!({ "clusterRef": "events", "topicName": "orders/eu", "partitions": 1, "replicationFactor": 1 })),
            )
            .await,
        "a topic name with '/'",
        &["spec.topicName", "topicName may only contain ASCII letters, digits, '.', '_' and '-'"],
    );
    assert_refused(
        topics
            .create(
                &pp,
                &topic(
                    "dots",
                    json!({ "clusterRef": "events", "topicName": "..", "partitions": 1, "replicationFactor": 1 }),
                ),
            )
            .await,
        "topic name '..'",
        &["topicName cannot be '.' or '..'"],
    );
    assert_refused(
        topics
            .create(&pp, &topic("zero", json!({ "clusterRef": "events", "partitions": 0, "replicationFactor": 1 })))
            .await,
        "partitions 0",
        &["spec.partitions", "greater than or equal to 1"],
    );

    // Decreasing partitions is a transition rule: checked on update.
    let mut shrunk = topics.get("orders").await.expect("read the topic back");
    shrunk.spec.partitions = 2;
    assert_refused(
        topics.replace("orders", &pp, &shrunk).await,
        "partitions decreased",
        &["partitions cannot be decreased from 3 to 2; Kafka cannot remove partitions"],
    );
    let mut resized = topics.get("orders").await.expect("read the topic back");
    resized.spec.replication_factor = 2;
    let resized = topics.replace("orders", &pp, &resized).await.expect("changing the replication factor is allowed");
    assert_eq!(resized.spec.replication_factor, 2);
    let mut grown = topics.get("orders").await.expect("read the topic back");
    grown.spec.partitions = 6;
    let grown = topics.replace("orders", &pp, &grown).await.expect("growing partitions is allowed");
    assert_eq!(grown.spec.partitions, 6);

    assert_refused(
        clusters.create(&pp, &cluster("negative", json!({ "replicas": -1 }))).await,
        "replicas -1",
        &["spec.replicas", "greater than or equal to 1"],
    );
    assert_refused(
        clusters.create(&pp, &cluster("units", json!({ "replicas": 1, "storage": { "size": "10GB" } }))).await,
        "storage size 10GB",
        &["storage.size must be a number with one of the units Ki, Mi, Gi"],
    );
    assert_refused(
        clusters.create(&pp, &cluster("voters", json!({ "replicas": 3, "controllerVoters": 2 }))).await,
        "two voters",
        &["controllerVoters must be 1, 3 or 5"],
    );
    let mut moved = clusters.get("events").await.expect("read the cluster back");
    moved.spec.storage.r#type = strom_crds::StorageType::Ephemeral;
    assert_refused(
        clusters.replace("events", &pp, &moved).await,
        "storage type changed",
        &["storage.type cannot change"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_kafka_users_are_refused_by_the_api_server_naming_the_field() {
    let (_plane, client) = plane_with_namespace("validation").await;
    let pp = PostParams::default();
    // Raw JSON: what `kubectl apply` sends, without the Rust types' own checks.
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "validation", &ApiResource::erase::<strom_crds::KafkaUser>(&()));
    let user = |name: &str, spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaUser", "metadata": { "name": name }, "spec": spec,
        }))
        .expect("a raw object")
    };
    let acl = |rule: serde_json::Value| {
        json!({ "clusterRef": "events", "authentication": { "type": "scram-sha-512" },
                "authorization": { "type": "simple", "acls": [rule] } })
    };
    assert_refused(
        raw.create(
            &pp,
            &user("fly", acl(json!({ "resource": { "type": "topic", "name": "t" }, "operations": ["Fly"] }))),
        )
        .await,
        "an unknown operation",
        &["spec.authorization.acls[0].operations[0]", "Unsupported value: \"Fly\""],
    );
    assert_refused(
        raw.create(&pp, &user("nameless", acl(json!({ "resource": { "type": "topic" }, "operations": ["Read"] }))))
            .await,
        "a topic without a name",
        &["name is required for resource types topic, group and transactionalId"],
    );
    assert_refused(
        raw.create(
            &pp,
            &user(
                "prefixed-cluster",
                acl(json!({ "resource": { "type": "cluster", "patternType": "prefixed" }, "operations": ["Alter"] })),
            ),
        )
        .await,
        "a prefixed cluster resource",
        &["the cluster resource takes patternType literal"],
    );
    let tls_with_password = json!({ "clusterRef": "events", "authentication": { "type": "tls",
        "password": { "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } } } });
    assert_refused(
        raw.create(&pp, &user("tls", tls_with_password)).await,
        "a password for tls",
        &["password applies only to type scram-sha-512"],
    );
    let quotas = |quotas: serde_json::Value| json!({ "clusterRef": "events", "authentication": { "type": "scram-sha-512" }, "quotas": quotas });
    assert_refused(
        raw.create(&pp, &user("no-requests", quotas(json!({ "requestPercentage": -1 })))).await,
        "a negative request percentage",
        &["spec.quotas.requestPercentage", "greater than or equal to 0"],
    );
    assert_refused(
        raw.create(&pp, &user("negative-rate", quotas(json!({ "producerByteRate": -1 })))).await,
        "a negative byte rate",
        &["spec.quotas.producerByteRate", "greater than or equal to 0"],
    );
    raw.create(&pp, &user("throttled", quotas(json!({ "consumerByteRate": 0, "controllerMutationRate": 0.5 }))))
        .await
        .expect("valid quotas");
    let stored = raw
        .create(&pp, &user("app", acl(json!({ "resource": { "type": "cluster" }, "operations": ["IdempotentWrite"] }))))
        .await
        .expect("a valid KafkaUser");
    let mut moved = stored.clone();
    moved.data["spec"]["clusterRef"] = json!("other");
    assert_refused(raw.replace("app", &pp, &moved).await, "clusterRef changed", &["clusterRef cannot change"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_and_ca_mistakes_are_refused_naming_the_field() {
    let (_plane, client) = plane_with_namespace("listeners").await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), "listeners");
    let pp = PostParams::default();
    let with = |additional: serde_json::Value| cluster("c", json!({ "listeners": { "additional": additional } }));
    let scram = json!({ "name": "scram", "port": 9095, "tls": true, "authentication": { "type": "scram-sha-512" } });
    assert_refused(
        clusters.create(&pp, &with(json!([scram, { "name": "scram", "port": 9096 }]))).await,
        "two listeners of one name",
        &["every listener needs its own name"],
    );
    assert_refused(
        clusters.create(&pp, &with(json!([scram, { "name": "other", "port": 9095 }]))).await,
        "two listeners on one port",
        &["every listener needs its own port"],
    );
    for port in [9092, 9093, 9094] {
        assert_refused(
            clusters.create(&pp, &with(json!([{ "name": "x", "port": port }]))).await,
            "a reserved port",
            &["spec.listeners.additional[0].port", "9093 (internal) and 9094 (HTTP) are taken"],
        );
    }
    assert_refused(
        clusters.create(&pp, &with(json!([{ "name": "plaintext", "port": 9095 }]))).await,
        "the default listener's name",
        &["plaintext is the Kafka listener's name"],
    );
    assert_refused(
        clusters.create(&pp, &with(json!([{ "name": "m", "port": 9095, "authentication": { "type": "tls" } }]))).await,
        "client certificates without TLS",
        &["spec.listeners.additional[0].authentication.type", "tls needs tls: true"],
    );
    assert_refused(
        clusters
            .create(&pp, &cluster("c", json!({ "certificateAuthorities": { "validityDays": 30, "renewalDays": 30 } })))
            .await,
        "a renewal window as long as the validity",
        &["spec.certificateAuthorities.renewalDays", "must be less than validityDays"],
    );
    let oauth = |auth: serde_json::Value| with(json!([{ "name": "oauth", "port": 9097, "authentication": auth }]));
    assert_refused(
        clusters.create(&pp, &oauth(json!({ "type": "oauth", "jwksUri": "https://idp/keys" }))).await,
        "oauth without an issuer",
        &["spec.listeners.additional[0].authentication.issuer", "is required with type oauth"],
    );
    assert_refused(
        clusters.create(&pp, &oauth(json!({ "type": "oauth", "issuer": "https://idp" }))).await,
        "oauth without a key set",
        &["spec.listeners.additional[0].authentication.jwksUri", "is required with type oauth"],
    );
    assert_refused(
        clusters.create(&pp, &oauth(json!({ "type": "oauth", "issuer": "i", "jwksUri": "http://idp/keys" }))).await,
        "a key set over plain HTTP",
        &["spec.listeners.additional[0].authentication.jwksUri", "must be an https:// URL"],
    );
    assert_refused(
        clusters.create(&pp, &oauth(json!({ "type": "scram-sha-512", "issuer": "https://idp" }))).await,
        "an oauth field on another type",
        &["spec.listeners.additional[0].authentication", "apply only to type oauth"],
    );
    assert_refused(
        clusters
            .create(
                &pp,
                &oauth(json!({ "type": "oauth", "issuer": "i", "jwksUri": "https://k",
                    "jwksCaSecret": { "name": "ca", "key": "a\"b" } })),
            )
            .await,
        "a Secret key that would leave the quoted trust store path",
        &["spec.listeners.additional[0].authentication.jwksCaSecret.key"],
    );
    let mtls = json!({ "name": "mtls", "port": 9096, "tls": true, "authentication": { "type": "tls" } });
    let oauth = json!({ "name": "oauth", "port": 9097, "authentication": {
        "type": "oauth", "issuer": "https://idp", "jwksUri": "https://idp/keys", "audience": "kafka" } });
    let stored = clusters.create(&pp, &with(json!([scram, mtls, oauth]))).await.expect("valid listeners");
    assert_eq!(stored.spec.certificate_authorities.validity_days, 365, "defaults filled in");
}
