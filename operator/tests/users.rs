//! KafkaUsers end to end: a Strom broker with a SASL_PLAINTEXT SCRAM-SHA-512
//! listener and the ACL authorizer runs as a local process (the settings
//! `spec.listeners.authentication` renders, plus `authorizer.class.name`),
//! the operator reaches it through `--admin-override`, and Kafka's Java
//! clients log in with nothing but what each user's Secret holds (plus
//! timeouts, and idempotence off where a produce must reach the topic check).
//! A user's client quotas are read and altered with Kafka's `kafka-configs.sh`
//! (ConfigCommand) as a super user made by hand (`ops-admin`).
//!
//! The Java tools come from `bench/kafka/run-kafka.sh` (Kafka 4.3.1 jars
//! cached under `~/.cache/strom`).

mod common;

use common::kafka_tools::kafka_tool;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{LocalBrokers, OperatorProcess, eventually, operator_admin, plane_with_namespace};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic, KafkaUser};
use strom_operator::admin::ClusterAdmin;
use strom_proto::admin::Acl;

const NS: &str = "apps";
const WAIT: Duration = Duration::from_secs(90);
/// Upper bound for one Java CLI run (JVM start-up included).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// A super user made by hand (not a KafkaUser), for `kafka-configs.sh`.
const OPS_ADMIN: &str = "ops-admin";
const OPS_ADMIN_PASSWORD: &str = "ops-admin-password";
const AUTH_FAILED: &str =
    "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512";

/// Runs `command` with `input` on stdin: whether it succeeded, and stdout with stderr.
fn run(mut command: Command, input: &str) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    common::kafka_tools::finish(child, None, TOOL_TIMEOUT)
}

/// A Java client config from a user's Secret alone (its `sasl.jaas.config`),
/// plus `extra` client tuning. Written to a file; its path.
fn client_config(dir: &Path, secret: &Secret, extra: &str) -> String {
    let jaas = secret.data.as_ref().and_then(|d| d.get("sasl.jaas.config")).expect("sasl.jaas.config in the Secret");
    let jaas = String::from_utf8(jaas.0.clone()).expect("UTF-8");
    let name = secret.metadata.name.clone().expect("a Secret name");
    let path = dir.join(format!("{name}-{}.properties", next_number()));
    let text = format!(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config={jaas}\n\
         max.block.ms=20000\ndelivery.timeout.ms=20000\nrequest.timeout.ms=10000\n{extra}"
    );
    std::fs::write(&path, text).expect("write a client config");
    path.display().to_string()
}

/// The config of the hand-made super user `ops-admin`; its path.
fn ops_admin_config(dir: &Path) -> String {
    let path = dir.join("ops-admin.properties");
    let jaas = strom_operator::user_plan::jaas_config(OPS_ADMIN, OPS_ADMIN_PASSWORD);
    let text = format!(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config={jaas}\n\
         request.timeout.ms=10000\ndefault.api.timeout.ms=30000\n"
    );
    std::fs::write(&path, text).expect("write the ops-admin config");
    path.display().to_string()
}

/// `kafka-configs.sh --bootstrap-server <bootstrap> --command-config <config> ARGS`; its output.
fn kafka_configs(bootstrap: &str, config: &str, args: &[&str]) -> String {
    let mut all = vec!["--bootstrap-server", bootstrap, "--command-config", config];
    all.extend_from_slice(args);
    let (ok, out) = run(kafka_tool("kafka.admin.ConfigCommand", &all), "");
    assert!(ok, "kafka-configs.sh {args:?} failed: {out}");
    out
}

/// The client quotas of user `name` as
/// `kafka-configs.sh --describe --entity-type users --entity-name <name>` prints them.
fn configs_quotas(bootstrap: &str, config: &str, name: &str) -> BTreeMap<String, f64> {
    let out = kafka_configs(bootstrap, config, &["--describe", "--entity-type", "users", "--entity-name", name]);
    quotas_in(&out, name)
}

/// The quotas of user `name` in ConfigCommand's output
/// (`Quota configs for user-principal 'NAME' are k=v, k=v`); none without that line.
fn quotas_in(out: &str, name: &str) -> BTreeMap<String, f64> {
    let prefix = format!("Quota configs for user-principal '{name}' are ");
    let Some(line) = out.lines().find_map(|l| l.strip_prefix(&prefix)) else { return BTreeMap::new() };
    line.split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("key=value in {line}"));
            (k.trim().to_string(), v.trim().parse().unwrap_or_else(|e| panic!("a number in {kv}: {e}")))
        })
        .collect()
}

fn quotas(list: &[(&str, f64)]) -> BTreeMap<String, f64> {
    list.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// 1, 2, 3, ...: distinct file and group names within the test.
fn next_number() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Produces `lines` to `topic`; the tool's output (it reports send errors there).
fn produce(bootstrap: &str, config: &str, topic: &str, lines: &str) -> (bool, String) {
    let args = ["--bootstrap-server", bootstrap, "--topic", topic, "--command-config", config];
    run(kafka_tool("org.apache.kafka.tools.ConsoleProducer", &args), lines)
}

/// Consumes `count` records of `topic` from the start in a new group `app-reader-<n>`.
fn consume(bootstrap: &str, config: &str, topic: &str, count: usize) -> (bool, String) {
    let count = count.to_string();
    let group = format!("app-reader-{}", next_number());
    let args = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--group",
        &group,
        "--from-beginning",
        "--max-messages",
        &count,
        "--timeout-ms",
        "30000",
        "--command-config",
        config,
    ];
    run(kafka_tool("org.apache.kafka.tools.consumer.ConsoleConsumer", &args), "")
}

fn kafka_user(name: &str, spec: serde_json::Value) -> KafkaUser {
    serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaUser", "metadata": { "name": name }, "spec": spec,
    }))
    .expect("a KafkaUser")
}

/// The user's status once Ready for its current generation.
async fn ready(users: &Api<KafkaUser>, name: &str) -> strom_crds::KafkaUserStatus {
    eventually(&format!("KafkaUser {name} to be Ready"), WAIT, || async {
        let u = users.get_opt(name).await.ok().flatten()?;
        let status = u.status?;
        let ready = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && status.observed_generation == u.metadata.generation).then_some(status)
    })
    .await
}

/// The stored ACLs of `user` as (resource type, name, operation, permission), sorted.
async fn acls_of(admin: &ClusterAdmin, user: &str) -> Vec<(i32, String, i32, i32)> {
    let described = admin.describe_user(user).await.expect("DescribeUser");
    let mut acls: Vec<_> =
        described.acls.into_iter().map(|a| (a.resource_type, a.resource_name, a.operation, a.permission)).collect();
    acls.sort();
    acls
}

const TOPIC: i32 = 2;
const GROUP: i32 = 3;
const READ: i32 = 3;
const WRITE: i32 = 4;
const DESCRIBE: i32 = 8;
const ALLOW: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_users_get_scram_credentials_and_exact_acls_that_real_clients_obey() {
    let brokers = LocalBrokers::start_with(
        1,
        &[
            "listeners=SASL_PLAINTEXT://{KAFKA}",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:ops-admin",
        ],
    );
    let bootstrap = brokers.bootstrap();
    let (plane, client) = plane_with_namespace(NS).await;
    brokers.install_ca(&client, NS, "events").await;
    let override_arg = format!("{NS}/events={}", brokers.admin_addresses());
    let _operator = OperatorProcess::start(
        &plane,
        &["--namespaces", NS, "--no-leader-election", "--admin-override", &override_arg, "--resync-seconds", "2"],
    );
    let admin = operator_admin(&client, NS, "events", &brokers.admin_addresses()).await;
    let dir = common::unique_dir("kafka-users");
    let pp = PostParams::default();
    assert!(admin.upsert_scram_credential(OPS_ADMIN, OPS_ADMIN_PASSWORD).await.expect("the hand-made super user"));
    let ops = ops_admin_config(&dir);

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let cluster: KafkaCluster = serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster", "metadata": { "name": "events" },
        "spec": {
            "replicas": 1,
            "listeners": { "authentication": { "type": "scram-sha-512" } },
            "config": { "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer" },
        },
    }))
    .expect("a KafkaCluster");
    clusters.create(&pp, &cluster).await.expect("create the KafkaCluster");
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    for name in ["orders", "payments"] {
        let topic: KafkaTopic = serde_json::from_value(json!({
            "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaTopic", "metadata": { "name": name },
            "spec": { "clusterRef": "events", "partitions": 1, "replicationFactor": 1 },
        }))
        .expect("a KafkaTopic");
        topics.create(&pp, &topic).await.expect("create a KafkaTopic");
    }

    // app-writer: a generated password; app-reader: the password from a Secret of the user's own.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let reader_password: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "reader-password" },
        "stringData": { "pw": "reader-first-password" },
    }))
    .expect("a Secret");
    secrets.create(&pp, &reader_password).await.expect("create the reader's password Secret");
    let users: Api<KafkaUser> = Api::namespaced(client.clone(), NS);
    let writer_spec = json!({
        "clusterRef": "events",
        "authentication": { "type": "scram-sha-512" },
        "authorization": { "type": "simple", "acls": [
            { "resource": { "type": "topic", "name": "orders" }, "operations": ["Write"] }
        ]},
        "quotas": { "producerByteRate": 1048576, "consumerByteRate": 2097152, "requestPercentage": 200 },
    });
    users.create(&pp, &kafka_user("app-writer", writer_spec)).await.expect("create app-writer");
    let reader_acls = json!([
        { "resource": { "type": "topic", "name": "orders" }, "operations": ["Read"] },
        { "resource": { "type": "group", "name": "app-reader-", "patternType": "prefixed" }, "operations": ["Read"] }
    ]);
    let reader_spec = json!({
        "clusterRef": "events",
        "authentication": { "type": "scram-sha-512",
            "password": { "valueFrom": { "secretKeyRef": { "name": "reader-password", "key": "pw" } } } },
        "authorization": { "type": "simple", "acls": reader_acls },
    });
    users.create(&pp, &kafka_user("app-reader", reader_spec)).await.expect("create app-reader");

    for name in ["orders", "payments"] {
        eventually(&format!("KafkaTopic {name} to be Ready"), WAIT, || async {
            let status = topics.get_opt(name).await.ok().flatten()?.status?;
            status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
        })
        .await;
    }
    let writer_status = ready(&users, "app-writer").await;
    assert_eq!((writer_status.secret.as_deref(), writer_status.acls), (Some("app-writer"), Some(1)));
    let reader_status = ready(&users, "app-reader").await;
    assert_eq!(reader_status.acls, Some(2));
    let writer_secret = secrets.get("app-writer").await.expect("the app-writer Secret");
    let text = |s: &Secret, k: &str| String::from_utf8(s.data.as_ref().unwrap()[k].0.clone()).unwrap();
    let generated = text(&writer_secret, "password");
    assert_eq!(generated.len(), 32, "a generated 32-character password");
    assert_eq!(text(&writer_secret, "username"), "app-writer");
    assert!(text(&writer_secret, "sasl.jaas.config").contains(&format!("password=\"{generated}\"")));
    let owner = &writer_secret.metadata.owner_references.as_ref().expect("owner references")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("KafkaUser", "app-writer"));
    let reader_secret = secrets.get("app-reader").await.expect("the app-reader Secret");
    assert_eq!(text(&reader_secret, "password"), "reader-first-password", "the referenced password is copied");
    assert_eq!(acls_of(&admin, "app-writer").await, vec![(TOPIC, "orders".to_string(), WRITE, ALLOW)]);
    // The spec's quotas are exactly the client quotas of user=app-writer, as Kafka's tool shows them.
    let first_quotas =
        quotas(&[("producer_byte_rate", 1048576.0), ("consumer_byte_rate", 2097152.0), ("request_percentage", 200.0)]);
    assert_eq!(configs_quotas(&bootstrap, &ops, "app-writer"), first_quotas);
    assert!(configs_quotas(&bootstrap, &ops, "app-reader").is_empty(), "a user without spec.quotas has none");

    // The writer writes orders; the reader reads them in its group.
    let writer = client_config(&dir, &writer_secret, "");
    let (_, out) = produce(&bootstrap, &writer, "orders", "one\ntwo\nthree\n");
    assert!(!out.contains("Exception"), "app-writer produces to orders: {out}");
    let reader = client_config(&dir, &reader_secret, "");
    let (ok, out) = consume(&bootstrap, &reader, "orders", 3);
    assert!(ok && ["one", "two", "three"].iter().all(|l| out.lines().any(|o| o == *l)), "app-reader consumes: {out}");
    // Where no ACL allows it: TOPIC_AUTHORIZATION_FAILED.
    let (_, out) = produce(&bootstrap, &writer, "payments", "nope\n");
    assert!(out.contains("TopicAuthorizationException"), "app-writer may not write payments: {out}");
    let reader_no_idempotence = client_config(&dir, &reader_secret, "enable.idempotence=false\n");
    let (_, out) = produce(&bootstrap, &reader_no_idempotence, "orders", "nope\n");
    assert!(out.contains("TopicAuthorizationException"), "app-reader may not write orders: {out}");

    // Editing the ACLs and quotas takes effect in the reconcile that makes
    // the user Ready again: a quota changed, one removed, one added.
    let more = json!({ "spec": {
        "authorization": { "type": "simple", "acls": [
            { "resource": { "type": "topic", "name": "orders" }, "operations": ["Write"] },
            { "resource": { "type": "topic", "name": "payments" }, "operations": ["Write", "Describe"] }
        ]},
        "quotas": { "producerByteRate": 524288, "consumerByteRate": null, "controllerMutationRate": 2.5 },
    }});
    users.patch("app-writer", &PatchParams::default(), &Patch::Merge(&more)).await.expect("patch app-writer");
    let status = ready(&users, "app-writer").await;
    assert_eq!(status.acls, Some(3));
    assert_eq!(
        acls_of(&admin, "app-writer").await,
        vec![
            (TOPIC, "orders".to_string(), WRITE, ALLOW),
            (TOPIC, "payments".to_string(), WRITE, ALLOW),
            (TOPIC, "payments".to_string(), DESCRIBE, ALLOW),
        ]
    );
    let (_, out) = produce(&bootstrap, &writer, "payments", "now allowed\n");
    assert!(!out.contains("Exception"), "app-writer now writes payments: {out}");
    let edited_quotas =
        quotas(&[("producer_byte_rate", 524288.0), ("request_percentage", 200.0), ("controller_mutation_rate", 2.5)]);
    assert_eq!(configs_quotas(&bootstrap, &ops, "app-writer"), edited_quotas);
    assert!(status.conditions.iter().any(|c| c.type_ == "Ready" && c.message.contains("producer_byte_rate=524288")));

    // Quotas altered by hand on user=app-writer (one changed, one added) are set back at the next resync.
    let by_hand = "producer_byte_rate=1,consumer_byte_rate=999";
    let alter = ["--alter", "--add-config", by_hand, "--entity-type", "users", "--entity-name", "app-writer"];
    kafka_configs(&bootstrap, &ops, &alter);
    let drift = eventually("the quota drift correction in the status", WAIT, || async {
        let note = users.get("app-writer").await.ok()?.status?.last_drift_correction?;
        note.contains("client quotas").then_some(note)
    })
    .await;
    assert!(drift.contains("producer_byte_rate=524288 set, consumer_byte_rate removed"), "{drift}");
    assert_eq!(configs_quotas(&bootstrap, &ops, "app-writer"), edited_quotas);

    // An ACL made by hand for the principal is removed at the next resync.
    let hand_made = Acl {
        resource_type: GROUP,
        resource_name: "*".into(),
        pattern_type: 3,
        principal: "User:app-reader".into(),
        host: "*".into(),
        operation: READ,
        permission: ALLOW,
    };
    admin.create_acls(vec![hand_made]).await.expect("create a hand-made ACL");
    eventually("the hand-made ACL to be removed", WAIT, || async {
        (acls_of(&admin, "app-reader").await
            == vec![(TOPIC, "orders".to_string(), READ, ALLOW), (GROUP, "app-reader-".to_string(), READ, ALLOW)])
        .then_some(())
    })
    .await;
    let drift = eventually("the drift correction in the status", WAIT, || async {
        users.get("app-reader").await.ok()?.status?.last_drift_correction
    })
    .await;
    assert!(drift.contains("0 ACL(s) added, 1 removed"), "{drift}");

    // Rotating the referenced password: the old one is refused, the new one works.
    let rotate = json!({ "stringData": { "pw": "reader-second-password" } });
    secrets.patch("reader-password", &PatchParams::default(), &Patch::Merge(&rotate)).await.expect("rotate");
    let rotated = eventually("the app-reader Secret to carry the new password", WAIT, || async {
        let s = secrets.get("app-reader").await.ok()?;
        (text(&s, "password") == "reader-second-password").then_some(s)
    })
    .await;
    let new_reader = client_config(&dir, &rotated, "");
    let deadline = Instant::now() + WAIT;
    loop {
        let (ok, out) = consume(&bootstrap, &new_reader, "orders", 1);
        if ok && !out.contains(AUTH_FAILED) {
            break;
        }
        assert!(Instant::now() < deadline, "the new password never worked: {out}");
    }
    let (_, out) = consume(&bootstrap, &reader, "orders", 1);
    assert!(out.contains(AUTH_FAILED), "the old password is refused: {out}");

    // Editing the password in the operator's own Secret rotates it too.
    let edit = json!({ "stringData": { "password": "writer-chosen-password" } });
    secrets.patch("app-writer", &PatchParams::default(), &Patch::Merge(&edit)).await.expect("edit the password");
    let edited = eventually("the app-writer Secret's JAAS line to follow its password", WAIT, || async {
        let s = secrets.get("app-writer").await.ok()?;
        text(&s, "sasl.jaas.config").contains("password=\"writer-chosen-password\"").then_some(s)
    })
    .await;
    let new_writer = client_config(&dir, &edited, "");
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, out) = produce(&bootstrap, &new_writer, "orders", "four\n");
        if !out.contains("Exception") {
            break;
        }
        assert!(Instant::now() < deadline, "the edited password never worked: {out}");
    }
    let (_, out) = produce(&bootstrap, &writer, "orders", "old password\n");
    assert!(out.contains(AUTH_FAILED), "the generated password is refused after the edit: {out}");

    // Deleting a KafkaUser removes its credential and ACLs from the cluster.
    users.delete("app-writer", &DeleteParams::default()).await.expect("delete app-writer");
    eventually("KafkaUser app-writer to be gone (finalizer done)", WAIT, || async {
        matches!(users.get_opt("app-writer").await, Ok(None)).then_some(())
    })
    .await;
    let described = admin.describe_user("app-writer").await.expect("DescribeUser");
    assert!(described.scram_mechanisms.is_empty() && described.acls.is_empty(), "{described:?}");
    // ... and its client quotas: no entity user=app-writer is left.
    let every_user = kafka_configs(&bootstrap, &ops, &["--describe", "--entity-type", "users"]);
    assert!(every_user.contains("user-principal 'ops-admin'"), "the tool answered: {every_user}");
    assert!(quotas_in(&every_user, "app-writer").is_empty(), "{every_user}");
    assert!(admin.describe_client_quotas("app-writer").await.expect("DescribeClientQuotas").is_empty());
    let (_, out) = produce(&bootstrap, &new_writer, "orders", "after delete\n");
    assert!(out.contains(AUTH_FAILED), "the deleted user cannot log in: {out}");

    // A KafkaUser naming a cluster that does not exist says so, naming the field.
    let ghost = json!({ "clusterRef": "nope", "authentication": { "type": "scram-sha-512" } });
    users.create(&pp, &kafka_user("ghost", ghost)).await.expect("create ghost");
    let condition = eventually("ghost to report the missing cluster", WAIT, || async {
        let status = users.get("ghost").await.ok()?.status?;
        status.conditions.into_iter().find(|c| c.type_ == "Ready" && c.status == "False")
    })
    .await;
    assert_eq!(condition.reason, "ClusterNotFound");
    assert!(
        condition.message.starts_with("spec.clusterRef: KafkaCluster nope does not exist"),
        "{}",
        condition.message
    );

    // An operation Kafka does not allow on the resource type names the field.
    let write_group = json!({ "clusterRef": "events", "authentication": { "type": "scram-sha-512" },
        "authorization": { "type": "simple", "acls": [
            { "resource": { "type": "group", "name": "g" }, "operations": ["Read", "Write"] } ] } });
    users.create(&pp, &kafka_user("write-group", write_group)).await.expect("create write-group");
    let condition = eventually("write-group to report its invalid operation", WAIT, || async {
        let status = users.get("write-group").await.ok()?.status?;
        status.conditions.into_iter().find(|c| c.type_ == "Ready" && c.status == "False")
    })
    .await;
    assert_eq!(condition.reason, "InvalidSpec");
    assert!(
        condition
            .message
            .starts_with("spec.authorization.acls[0].operations[1]: Write does not apply to resource type group"),
        "{}",
        condition.message
    );
    assert!(admin.describe_user("write-group").await.expect("DescribeUser").scram_mechanisms.is_empty());

    // A principal made by hand is not taken over by a KafkaUser of its name,
    // nor removed when that KafkaUser is deleted.
    assert!(admin.upsert_scram_credential("legacy", "legacy-password").await.expect("a hand-made user"));
    let legacy = json!({ "clusterRef": "events", "authentication": { "type": "scram-sha-512" } });
    users.create(&pp, &kafka_user("legacy", legacy)).await.expect("create legacy");
    let condition = eventually("legacy to refuse the existing principal", WAIT, || async {
        let status = users.get("legacy").await.ok()?.status?;
        status.conditions.into_iter().find(|c| c.type_ == "Ready" && c.status == "False")
    })
    .await;
    assert_eq!(condition.reason, "UserExists", "{}", condition.message);
    assert!(
        condition.message.starts_with("metadata.name: User:legacy already has 1 credential(s)"),
        "{}",
        condition.message
    );
    users.delete("legacy", &DeleteParams::default()).await.expect("delete legacy");
    eventually("KafkaUser legacy to be gone", WAIT, || async {
        matches!(users.get_opt("legacy").await, Ok(None)).then_some(())
    })
    .await;
    let changed = admin.upsert_scram_credential("legacy", "legacy-password").await.expect("the hand-made user");
    assert!(!changed, "the hand-made password is still the stored one, after the KafkaUser came and went");
    let _ = std::fs::remove_dir_all(&dir);
}
