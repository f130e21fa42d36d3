//! ACLs for authenticated principals: a broker with a PLAINTEXT listener
//! and a SASL_PLAINTEXT one (PLAIN users admin, alice and bob), the
//! authorizer on, `super.users=User:admin` and
//! `allow.everyone.if.no.acl.found=false`.
//!
//! Proves that the principal SASL establishes is the one ACLs name: the
//! admin (a super user, authenticated by `kafka-acls.sh --command-config`)
//! grants alice `--producer` and `--consumer` rights; then librdkafka as
//! alice produces (the topic auto-created under her CREATE) and consumes in
//! her group, while bob over SASL and an anonymous client over PLAINTEXT are
//! refused with Kafka's authorization errors (DescribeQuorum included); and
//! alice cannot manage ACLs.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::BrokerProcess;
use common::clients::{delivery_result, enqueue, numbered_records, produce_all, producer};
use common::e2e::{run_with_input, workspace_root};
use common::wire::{WireClient, produce, record_batch};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeQuorumRequest, TopicName, describe_quorum_request};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

const TIMEOUT: Duration = Duration::from_secs(120);

/// `bin/kafka-acls.sh ARGS` (Kafka 4.3's AclCommand on its tools classpath,
/// resolved into ~/.cache/strom by bench/kafka/run-kafka.sh): status and output.
fn kafka_acls(args: &[&str]) -> (bool, String) {
    let out = Command::new("bash")
        .arg(workspace_root().join("bench/kafka/run-kafka.sh"))
        .arg("tools-classpath")
        .output()
        .expect("run bench/kafka/run-kafka.sh tools-classpath");
    assert!(out.status.success(), "run-kafka.sh tools-classpath failed: {}", String::from_utf8_lossy(&out.stderr));
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let classpath = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let java = std::env::var("STROM_E2E_JAVA").unwrap_or_else(|_| "java".to_string());
    let mut command = Command::new(java);
    command
        .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", classpath.trim()])
        .arg("org.apache.kafka.tools.AclCommand")
        .args(args);
    let (status, stdout, stderr) = run_with_input(&mut command, "", TIMEOUT);
    (status.success(), format!("{stdout}\n{stderr}"))
}

fn plain_login(user: &str, password: &str) -> String {
    format!(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.\
         plain.PlainLoginModule required username=\"{user}\" password=\"{password}\";\n"
    )
}

fn sasl_client(user: &str, password: &str) -> [(&'static str, String); 4] {
    [
        ("security.protocol", "SASL_PLAINTEXT".to_string()),
        ("sasl.mechanism", "PLAIN".to_string()),
        ("sasl.username", user.to_string()),
        ("sasl.password", password.to_string()),
    ]
}

#[test]
fn acls_name_the_principals_sasl_authenticates() {
    let settings = [
        "listeners=PLAINTEXT://127.0.0.1:{KAFKA_PORT},SASL://127.0.0.1:{PORT_0}".to_string(),
        "advertised.listeners=PLAINTEXT://127.0.0.1:{KAFKA_PORT},SASL://127.0.0.1:{PORT_0}".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT".to_string(),
        "listener.name.sasl.sasl.enabled.mechanisms=PLAIN".to_string(),
        r#"listener.name.sasl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";"#.to_string(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        "super.users=User:admin".to_string(),
        "allow.everyone.if.no.acl.found=false".to_string(),
    ];
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start_with(&refs);
    let sasl_port = broker.extra_ports()[0];
    let sasl = format!("127.0.0.1:{sasl_port}");
    let dir = tempfile::tempdir().expect("a temp dir for client configs");
    let config = |name: &str, user: &str, password: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, plain_login(user, password)).expect("write a client config");
        path.display().to_string()
    };
    let admin = config("admin.properties", "admin", "admin-secret");
    let alice_config = config("alice.properties", "alice", "alice-secret");

    // The admin, a super user, grants alice a producer's and a consumer's rights.
    let acls = |command_config: &str, args: &[&str]| {
        let mut all = vec!["--bootstrap-server", &sasl, "--command-config", command_config];
        all.extend_from_slice(args);
        kafka_acls(&all)
    };
    let (ok, out) = acls(&admin, &["--add", "--allow-principal", "User:alice", "--producer", "--topic", "payments"]);
    assert!(ok, "kafka-acls --producer as admin: {out}");
    let (ok, out) = acls(
        &admin,
        &["--add", "--allow-principal", "User:alice", "--consumer", "--topic", "payments", "--group", "alice-group"],
    );
    assert!(ok, "kafka-acls --consumer as admin: {out}");
    let (ok, listed) = acls(&admin, &["--list", "--principal", "User:alice"]);
    assert!(ok, "kafka-acls --list: {listed}");
    for op in ["WRITE", "CREATE", "DESCRIBE", "READ"] {
        assert!(listed.contains(&format!("principal=User:alice, host=*, operation={op}")), "{op} missing:\n{listed}");
    }

    // alice may not manage ACLs (ALTER on the cluster).
    let (ok, out) =
        acls(&alice_config, &["--add", "--allow-principal", "User:alice", "--operation", "All", "--cluster"]);
    // (AclCommand reports the refusal, ClusterAuthorizationException, and may still exit 0.)
    let _ = ok;
    assert!(out.contains("ClusterAuthorizationException"), "kafka-acls as alice was not refused: {out}");

    // alice produces (auto-creating the topic under her CREATE) and consumes in her group.
    let alice: Vec<(&str, String)> = sasl_client("alice", "alice-secret").into_iter().collect();
    let alice_refs: Vec<(&str, &str)> = alice.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let records = numbered_records(0, 10, 1_700_000_000_000);
    let mut with_idempotence = alice_refs.clone();
    with_idempotence.push(("enable.idempotence", "true"));
    produce_all(&producer(&sasl, &with_idempotence), "payments", &records);
    let mut consumer_config = rdkafka::ClientConfig::new();
    consumer_config.set("bootstrap.servers", &sasl).set("group.id", "alice-group").set("auto.offset.reset", "earliest");
    for (k, v) in &alice_refs {
        consumer_config.set(*k, *v);
    }
    let consumer: BaseConsumer = consumer_config.create().expect("an rdkafka consumer");
    consumer.subscribe(&["payments"]).expect("subscribe");
    let mut got = 0;
    common::wait_for("alice consumes her 10 records in her group", TIMEOUT, || {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.payload().is_some() => got += 1,
            Some(Err(e)) => panic!("alice's consumer: {e}"),
            _ => {}
        }
        (got >= 10).then_some(())
    });

    // bob authenticates but has no ACL: his record is refused with Kafka's error.
    let bob: Vec<(&str, String)> = sasl_client("bob", "bob-secret").into_iter().collect();
    let mut bob_refs: Vec<(&str, &str)> = bob.iter().map(|(k, v)| (*k, v.as_str())).collect();
    bob_refs.push(("message.timeout.ms", "20000"));
    let refused = delivery_result(enqueue(&producer(&sasl, &bob_refs), "payments", &records[0]));
    let reason = refused.expect_err("bob's record is not delivered");
    assert!(reason.contains("authorization failed"), "librdkafka's reason for bob: {reason}");

    // An unauthenticated client on the PLAINTEXT listener is User:ANONYMOUS, with no rights either.
    let mut anonymous = WireClient::connect(broker.kafka_addr());
    let answer = produce(&mut anonymous, "payments", 0, record_batch(&[b"x".to_vec()], 1_700_000_000_000));
    assert_eq!(answer.error_code, ResponseError::TopicAuthorizationFailed.code(), "anonymous produce");
    // DescribeQuorum needs DESCRIBE on the cluster: Kafka answers the top-level error alone.
    let metadata_partition = describe_quorum_request::TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![describe_quorum_request::PartitionData::default()]);
    let quorum = anonymous.send(&DescribeQuorumRequest::default().with_topics(vec![metadata_partition]), 2);
    assert_eq!(quorum.error_code, ResponseError::ClusterAuthorizationFailed.code(), "anonymous DescribeQuorum");
    assert!(quorum.topics.is_empty(), "nothing of the quorum is told: {quorum:?}");
}
