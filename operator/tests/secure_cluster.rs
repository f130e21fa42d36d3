//! A secure KafkaCluster end to end: the real control plane, the pod runner
//! running the broker pod as a local `strom-broker` process, the operator as
//! a process, and Kafka's Java clients and librdkafka configured from each
//! KafkaUser's Secret alone (plus timeouts, and no host name check: pods
//! here are loopback addresses, not the DNS names the listener certificate
//! carries).
//!
//! The cluster has a TLS+SCRAM listener and a TLS+client-certificate
//! listener. A `tls` user writes through the second (with its PEM pair,
//! and with its PKCS#12 keystore `user.p12`), a `scram-sha-512` user
//! reads through the first and is refused a write
//! (TOPIC_AUTHORIZATION_FAILED), an unknown user and a certificate of
//! another CA are refused. Then the cluster CA is renewed by
//! `strom.dev/force-renew` while an idempotent acks=all producer that trusts
//! only the old CA runs: no broker restart, no failed send (the new leaf is
//! served with the new CA cross-signed by the old), and a client trusting
//! only the new CA connects (the new certificate is served to new
//! connections). Last the clients CA is renewed while the `tls` user
//! produces: its Secret gets a certificate of the new clients CA, which the
//! broker accepts, and the old certificate still works on new connections
//! (applications hold it until they restart); no failed send, no restart,
//! every record read back.
//!
//! The Java tools come from `bench/kafka/run-kafka.sh` (Kafka jars cached
//! under `~/.cache/strom`), librdkafka from the confluent-kafka venv of
//! `scripts/e2e-deps.sh` (e2e/python/strom_client.py).

mod common;

use common::kafka_tools::{kafka_tool, python_client};

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, create_ready_topic, eventually, plane_with_nodes};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic, KafkaUser};
use strom_tls::certs::{Ca, signed_by};

const NS: &str = "secure";
const CLUSTER: &str = "events";
const WAIT: Duration = Duration::from_secs(180);
/// Upper bound for one Java CLI run (JVM start-up included).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
const SCRAM_PORT: u16 = 9095;
const MTLS_PORT: u16 = 9096;

/// Runs `command`, feeding `lines` on stdin one by one with `pause` between
/// them while `during` runs (once, after the first line); whether it
/// succeeded, and its output.
fn run_feeding(mut command: Command, lines: &[String], pause: Duration) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    for line in lines {
        if stdin.write_all(format!("{line}\n").as_bytes()).is_err() {
            break;
        }
        let _ = stdin.flush();
        std::thread::sleep(pause);
    }
    drop(stdin);
    common::kafka_tools::finish(child, None, TOOL_TIMEOUT)
}

/// Runs librdkafka's client (strom_client.py) with `args` and stdin held
/// open (its consumer stops at end of input) until it exits or
/// [`TOOL_TIMEOUT`]: whether it succeeded, and its output.
fn librdkafka(args: &[&str]) -> (bool, String) {
    let mut command = python_client();
    command.args(args);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let stdin = child.stdin.take();
    common::kafka_tools::finish(child, stdin, TOOL_TIMEOUT)
}

/// librdkafka settings for a `tls` user: its Secret's PEM strings.
fn librdkafka_tls(secret: &Secret, cert: &str, key: &str) -> String {
    json!({
        "security.protocol": "SSL",
        "ssl.certificate.pem": cert,
        "ssl.key.pem": key,
        "ssl.ca.pem": text(secret, "ca.crt"),
        "ssl.endpoint.identification.algorithm": "none",
        "message.timeout.ms": 30000,
    })
    .to_string()
}

/// librdkafka settings for a `scram-sha-512` user over TLS: its Secret's
/// `username`, `password` and `ca.crt` (`username` replaced by `user` when given).
fn librdkafka_scram(secret: &Secret, user: Option<&str>) -> String {
    json!({
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user.map_or_else(|| text(secret, "username"), str::to_string),
        "sasl.password": text(secret, "password"),
        "ssl.ca.pem": text(secret, "ca.crt"),
        "ssl.endpoint.identification.algorithm": "none",
        "message.timeout.ms": 15000,
    })
    .to_string()
}

fn text(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("Secret data");
    String::from_utf8(data.get(key).unwrap_or_else(|| panic!("key {key} in the Secret")).0.clone()).expect("UTF-8")
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write a client file");
    path.display().to_string()
}

const TUNING: &str = "max.block.ms=20000\ndelivery.timeout.ms=30000\nrequest.timeout.ms=10000\n\
    ssl.endpoint.identification.algorithm=\n";

/// A client config for a `tls` user: its certificate and key as a PEM
/// keystore, its `ca.crt` as the trust store.
fn tls_config(dir: &Path, tag: &str, cert_and_key: (&str, &str), ca: &str) -> String {
    let keystore = write(dir, &format!("{tag}-keystore.pem"), &format!("{}{}", cert_and_key.1, cert_and_key.0));
    let truststore = write(dir, &format!("{tag}-ca.pem"), ca);
    let config = format!(
        "security.protocol=SSL\nssl.keystore.type=PEM\nssl.keystore.location={keystore}\n\
         ssl.truststore.type=PEM\nssl.truststore.location={truststore}\n{TUNING}"
    );
    write(dir, &format!("{tag}.properties"), &config)
}

/// A client config for a `tls` user from its PKCS#12 keystore (`user.p12`,
/// `user.password`), as Java clients configured the Strimzi way use it.
fn p12_config(dir: &Path, tag: &str, secret: &Secret) -> String {
    let data = secret.data.as_ref().expect("Secret data");
    let keystore = dir.join(format!("{tag}.p12"));
    std::fs::write(&keystore, &data.get("user.p12").expect("user.p12 in the Secret").0).expect("write user.p12");
    let truststore = write(dir, &format!("{tag}-ca.pem"), &text(secret, "ca.crt"));
    let config = format!(
        "security.protocol=SSL\nssl.keystore.type=PKCS12\nssl.keystore.location={}\nssl.keystore.password={}\n\
         ssl.truststore.type=PEM\nssl.truststore.location={truststore}\n{TUNING}",
        keystore.display(),
        text(secret, "user.password"),
    );
    write(dir, &format!("{tag}.properties"), &config)
}

/// A client config for a `scram-sha-512` user over TLS.
fn scram_config(dir: &Path, tag: &str, secret: &Secret) -> String {
    let truststore = write(dir, &format!("{tag}-ca.pem"), &text(secret, "ca.crt"));
    let config = format!(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config={}\n\
         ssl.truststore.type=PEM\nssl.truststore.location={truststore}\n{TUNING}",
        text(secret, "sasl.jaas.config")
    );
    write(dir, &format!("{tag}.properties"), &config)
}

fn produce(bootstrap: &str, config: &str, lines: &[String], pause: Duration) -> (bool, String) {
    let args = ["--bootstrap-server", bootstrap, "--topic", "orders", "--command-config", config];
    run_feeding(kafka_tool("org.apache.kafka.tools.ConsoleProducer", &args), lines, pause)
}

fn consume(bootstrap: &str, config: &str, group: &str, count: usize) -> (bool, String) {
    let count = count.to_string();
    let args = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        "orders",
        "--group",
        group,
        "--from-beginning",
        "--max-messages",
        &count,
        "--timeout-ms",
        "30000",
        "--command-config",
        config,
    ];
    run_feeding(kafka_tool("org.apache.kafka.tools.consumer.ConsoleConsumer", &args), &[], Duration::ZERO)
}

fn kafka_user(name: &str, spec: serde_json::Value) -> KafkaUser {
    serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaUser", "metadata": { "name": name }, "spec": spec,
    }))
    .expect("a KafkaUser")
}

async fn ready_secret(users: &Api<KafkaUser>, secrets: &Api<Secret>, name: &str) -> Secret {
    eventually(&format!("KafkaUser {name} to be Ready"), WAIT, || async {
        let status = users.get_opt(name).await.ok().flatten()?.status?;
        status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())?;
        secrets.get_opt(name).await.ok().flatten()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_scram_users_use_secure_listeners_and_a_cluster_ca_renewal_restarts_nothing() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start(&plane, NS, CLUSTER);
    let _operator = OperatorProcess::for_runner(&plane, &runner, NS, CLUSTER, 1, &["--resync-seconds", "2"]);
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "replicas": 1,
        "storage": { "size": "1Gi" },
        "authorization": { "type": "simple", "superUsers": ["events-admin"] },
        "listeners": { "additional": [
            { "name": "scram", "port": SCRAM_PORT, "tls": true, "authentication": { "type": "scram-sha-512" } },
            { "name": "mtls", "port": MTLS_PORT, "tls": true, "authentication": { "type": "tls" } },
        ]},
    });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    create_ready_topic(
        &topics,
        "orders",
        json!({ "clusterRef": CLUSTER, "partitions": 1, "replicationFactor": 1 }),
        WAIT,
    )
    .await;
    let status = clusters.get(CLUSTER).await.expect("the cluster").status.expect("a status");
    let cas = status.certificate_authorities.expect("status.certificateAuthorities");
    assert!(cas.cluster_ca_expiry.is_some() && cas.clients_ca_expiry.is_some(), "{cas:?}");

    let users: Api<KafkaUser> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let pp = PostParams::default();
    let writer = json!({ "clusterRef": CLUSTER, "authentication": { "type": "tls" },
    "authorization": { "type": "simple", "acls": [
        { "resource": { "type": "topic", "name": "orders" }, "operations": ["Write", "Describe"] },
        { "resource": { "type": "cluster" }, "operations": ["IdempotentWrite"] },
    ]}});
    users.create(&pp, &kafka_user("tls-writer", writer)).await.expect("create tls-writer");
    let reader = json!({ "clusterRef": CLUSTER, "authentication": { "type": "scram-sha-512" },
    "authorization": { "type": "simple", "acls": [
        { "resource": { "type": "topic", "name": "orders" }, "operations": ["Read", "Describe"] },
        { "resource": { "type": "group", "name": "readers-", "patternType": "prefixed" }, "operations": ["Read"] },
    ]}});
    users.create(&pp, &kafka_user("scram-reader", reader)).await.expect("create scram-reader");
    let writer_secret = ready_secret(&users, &secrets, "tls-writer").await;
    let reader_secret = ready_secret(&users, &secrets, "scram-reader").await;
    let clients_ca = text(&secrets.get(&format!("{CLUSTER}-clients-ca")).await.expect("clients CA"), "ca.crt");
    assert!(signed_by(&text(&writer_secret, "user.crt"), &clients_ca), "the user certificate is of the clients CA");

    let ip = runner.pod_ip(0);
    let (mtls, scram) = (format!("{ip}:{MTLS_PORT}"), format!("{ip}:{SCRAM_PORT}"));
    let dir = common::unique_dir("secure-cluster");
    let user_cert = (text(&writer_secret, "user.crt"), text(&writer_secret, "user.key"));
    let writer_config = tls_config(&dir, "writer", (&user_cert.0, &user_cert.1), &text(&writer_secret, "ca.crt"));
    let first: Vec<String> = (0..5).map(|i| format!("before-{i}")).collect();
    let (ok, out) = produce(&mtls, &writer_config, &first, Duration::ZERO);
    assert!(ok && !out.contains("ERROR"), "the tls user writes through the mTLS listener: {out}");
    let p12_line = vec!["pkcs12-0".to_string()];
    let (ok, out) = produce(&mtls, &p12_config(&dir, "writer-p12", &writer_secret), &p12_line, Duration::ZERO);
    assert!(ok && !out.contains("ERROR"), "the tls user writes with its PKCS#12 keystore: {out}");
    let reader_config = scram_config(&dir, "reader", &reader_secret);
    let (ok, out) = consume(&scram, &reader_config, "readers-1", 5);
    assert!(ok && first.iter().all(|l| out.contains(l.as_str())), "the SCRAM user reads over TLS: {out}");

    // librdkafka, from the same Secrets: the tls user writes, the SCRAM user
    // reads everything so far but may not write; an unknown user is refused.
    let rd_writer = librdkafka_tls(&writer_secret, &user_cert.0, &user_cert.1);
    let args = ["produce", "--bootstrap", &mtls, "--topic", "orders", "--count", "5", "--config", &rd_writer];
    let (ok, out) = librdkafka(&args);
    assert!(ok && out.contains(r#"{"count":5,"event":"produced"}"#), "librdkafka writes as the tls user: {out}");
    let rd_reader = librdkafka_scram(&reader_secret, None);
    let args = ["consume", "--bootstrap", &scram, "--topic", "orders", "--group", "readers-rd", "--max-records", "11"];
    let (ok, out) = librdkafka(&[&args[..], &["--config", &rd_reader]].concat());
    let mut read_back = first.iter().chain(&p12_line).cloned().chain((0..5).map(|i| format!("value-{i}")));
    assert!(
        ok && out.contains(r#""event":"closed""#) && read_back.all(|v| out.contains(&format!(r#""value":"{v}""#))),
        "librdkafka reads as the SCRAM user: {out}"
    );
    let args = ["produce", "--bootstrap", &scram, "--topic", "orders", "--count", "1", "--config", &rd_reader];
    let (ok, out) = librdkafka(&args);
    assert!(!ok && out.contains("TOPIC_AUTHORIZATION_FAILED"), "the reader may not write: {out}");
    let stranger = librdkafka_scram(&reader_secret, Some("nobody"));
    let args = ["produce", "--bootstrap", &scram, "--topic", "orders", "--count", "1", "--config", &stranger];
    let (ok, out) = librdkafka(&args);
    assert!(!ok && out.contains("Authentication failed"), "an unknown user is refused: {out}");

    // A certificate of another CA (same CN) is refused by the mTLS listener.
    let stranger = Ca::generate("not the clients CA").expect("a CA");
    let forged = stranger.issue_named("tls-writer", None, &[], &[]).expect("a certificate");
    let forged_config = tls_config(&dir, "forged", (&forged.cert, &forged.key), &text(&writer_secret, "ca.crt"));
    let (ok, out) = produce(&mtls, &forged_config, &["forged".to_string()], Duration::ZERO);
    assert!(!ok || out.contains("ERROR"), "an unknown client certificate is refused: {out}");

    // Renew the cluster CA while the tls user produces.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod_name = format!("{CLUSTER}-0");
    let uid_before = pods.get(&pod_name).await.expect("the broker pod").metadata.uid;
    let pid_before = runner.broker_pid(&pod_name).expect("the broker's pid");
    let ca_name = format!("{CLUSTER}-cluster-ca");
    let old_ca = text(&secrets.get(&ca_name).await.expect("cluster CA"), "ca.crt");
    let during: Vec<String> = (0..60).map(|i| format!("during-{i}")).collect();
    let producer = {
        let (mtls, writer_config, during) = (mtls.clone(), writer_config.clone(), during.clone());
        std::thread::spawn(move || produce(&mtls, &writer_config, &during, Duration::from_millis(500)))
    };
    let patch = json!({ "metadata": { "annotations": { "strom.dev/force-renew": "now" } } });
    secrets.patch(&ca_name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate the cluster CA");
    let new_ca = eventually("the cluster CA to be renewed", WAIT, || async {
        let ca = text(&secrets.get(&ca_name).await.ok()?, "ca.crt");
        (ca != old_ca).then_some(ca)
    })
    .await;
    let certs_name = format!("{CLUSTER}-broker-certs");
    let keystore = eventually("the listener certificate to be of the new CA", WAIT, || async {
        let keystore = text(&secrets.get(&certs_name).await.ok()?, "listener.keystore.pem");
        signed_by(&keystore, &new_ca).then_some(keystore)
    })
    .await;
    write(&dir, "renewed-keystore.pem", &keystore);
    write(&dir, "old-ca.pem", &old_ca);
    assert_eq!(keystore.matches("BEGIN CERTIFICATE").count(), 2, "the leaf and the cross-signed new CA: {keystore}");
    let (ok, out) =
        tokio::task::spawn_blocking(move || producer.join().expect("the producer thread")).await.expect("join");
    assert!(ok && !out.contains("ERROR"), "no failed send while the CA was renewed: {out}");

    // A client trusting only the new CA connects: the new certificate is served.
    let new_only = tls_config(&dir, "new-ca-only", (&user_cert.0, &user_cert.1), &new_ca);
    let after = vec!["after-0".to_string()];
    let outcome = eventually("a client trusting only the new CA to connect", WAIT, || {
        let (mtls, new_only, after) = (mtls.clone(), new_only.clone(), after.clone());
        async move {
            let (ok, out) =
                tokio::task::spawn_blocking(move || produce(&mtls, &new_only, &after, Duration::ZERO)).await.ok()?;
            (ok && !out.contains("ERROR")).then_some(out)
        }
    })
    .await;
    eprintln!("new-CA client: {outcome}");

    // Renew the clients CA while the tls user produces with its certificate.
    let clients_ca_name = format!("{CLUSTER}-clients-ca");
    let old_clients_ca = text(&secrets.get(&clients_ca_name).await.expect("clients CA"), "ca.crt");
    let renewal: Vec<String> = (0..40).map(|i| format!("clients-renewal-{i}")).collect();
    let producer = {
        let (mtls, writer_config, renewal) = (mtls.clone(), writer_config.clone(), renewal.clone());
        std::thread::spawn(move || produce(&mtls, &writer_config, &renewal, Duration::from_millis(500)))
    };
    secrets
        .patch(&clients_ca_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate the clients CA");
    let new_clients_ca = eventually("the clients CA to be renewed", WAIT, || async {
        let ca = text(&secrets.get(&clients_ca_name).await.ok()?, "ca.crt");
        (ca != old_clients_ca).then_some(ca)
    })
    .await;
    let reissued = eventually("the tls user's certificate to be of the new clients CA", WAIT, || async {
        let secret = secrets.get("tls-writer").await.ok()?;
        signed_by(&text(&secret, "user.crt"), &new_clients_ca).then_some(secret)
    })
    .await;
    eventually("the brokers to trust both clients CAs", WAIT, || async {
        let bundle = text(&secrets.get(&certs_name).await.ok()?, "clients-ca.crt");
        (bundle.contains(new_clients_ca.trim()) && bundle.contains(old_clients_ca.trim())).then_some(())
    })
    .await;
    let (ok, out) =
        tokio::task::spawn_blocking(move || producer.join().expect("the producer thread")).await.expect("join");
    assert!(ok && !out.contains("ERROR"), "no failed send while the clients CA was renewed: {out}");
    let new_cert = (text(&reissued, "user.crt"), text(&reissued, "user.key"));
    let new_config = tls_config(&dir, "writer-reissued", (&new_cert.0, &new_cert.1), &text(&reissued, "ca.crt"));
    let reissued_line = vec!["reissued-0".to_string()];
    eventually("the re-issued certificate to be accepted", WAIT, || {
        let (mtls, new_config, reissued_line) = (mtls.clone(), new_config.clone(), reissued_line.clone());
        async move {
            let (ok, out) =
                tokio::task::spawn_blocking(move || produce(&mtls, &new_config, &reissued_line, Duration::ZERO))
                    .await
                    .ok()?;
            (ok && !out.contains("ERROR")).then_some(())
        }
    })
    .await;
    let old_cert_line = vec!["old-certificate-0".to_string()];
    let (ok, out) = produce(&mtls, &writer_config, &old_cert_line, Duration::ZERO);
    assert!(ok && !out.contains("ERROR"), "the old certificate still works on a new connection: {out}");

    let fresh_reader = secrets.get("scram-reader").await.expect("the reader's Secret");
    let reader_config = scram_config(&dir, "reader-after", &fresh_reader);
    let written: Vec<String> = first
        .iter()
        .chain(&p12_line)
        .chain(&during)
        .chain(&after)
        .chain(&renewal)
        .chain(&old_cert_line)
        .cloned()
        .chain((0..5).map(|i| format!("value-{i}")))
        .collect();
    // `after` and `reissued_line` were each written once: the attempts before
    // the one that succeeded failed in the TLS handshake.
    let (ok, out) = consume(&scram, &reader_config, "readers-2", written.len() + 1);
    assert!(
        ok && written.iter().chain(&reissued_line).all(|l| out.contains(l.as_str())),
        "every record written, through both renewals: {out}"
    );

    let uid_after = pods.get(&pod_name).await.expect("the broker pod").metadata.uid;
    assert_eq!(uid_after, uid_before, "the broker pod was not replaced");
    assert_eq!(runner.broker_pid(&pod_name), Some(pid_before), "the broker process was not restarted");
}
