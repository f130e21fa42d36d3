//! Client security against a real broker process: named listeners, TLS
//! (with client certificates) and SASL (PLAIN, SCRAM), driven by real
//! clients — Kafka's Java CLI tools, librdkafka through confluent-kafka
//! (Python) and through rdkafka — and by raw sockets for what no client
//! sends (a TLS hello on a plaintext port, a SASL token before the
//! handshake, a truncated SCRAM exchange).
//!
//! Certificates are made here with the broker's own CA helper (rcgen).
//! The Java tools come from `bench/kafka/run-kafka.sh` (Kafka 4.3.1 jars
//! cached under `~/.cache/strom`), Python from `scripts/e2e-deps.sh`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::BrokerProcess;
use common::e2e::E2eTools;
use common::metrics::Scrape;
use common::security::{Issuer, Pki, settings, start};
use common::wire::{self, WireClient};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use strom_broker::tls::certs::PemPair;

/// Upper bound for one Java CLI or Python run (JVM start-up included).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `command` with `input` on stdin; its status, stdout and stderr.
fn run(command: &mut Command, input: &str) -> (bool, String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let deadline = std::time::Instant::now() + TOOL_TIMEOUT;
    while child.try_wait().expect("poll the child").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("collect output");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

/// `java -cp <Kafka 4.3.1 broker and tools jars> <main_class> args...`.
fn kafka_tool(main_class: &str, args: &[&str]) -> Command {
    let script = common::e2e::workspace_root().join("bench/kafka/run-kafka.sh");
    let mut classpath = Vec::new();
    for which in ["classpath", "tools-classpath"] {
        let out = Command::new("bash").arg(&script).arg(which).output().expect("run bench/kafka/run-kafka.sh");
        assert!(out.status.success(), "bench/kafka/run-kafka.sh {which} failed: {out:?}");
        let file = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        classpath.push(std::fs::read_to_string(&file).expect("read a classpath file").trim().to_string());
    }
    let java = std::env::var("STROM_E2E_JAVA").unwrap_or_else(|_| "java".to_string());
    let mut command = Command::new(java);
    command.args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", &classpath.join(":"), main_class]).args(args);
    command
}

fn java_ok(main_class: &str, args: &[&str], input: &str) -> String {
    let (ok, stdout, stderr) = run(&mut kafka_tool(main_class, args), input);
    assert!(ok, "{main_class} {args:?} failed\n----- stdout -----\n{stdout}\n----- stderr -----\n{stderr}");
    stdout
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a client config file");
    path.display().to_string()
}

#[test]
fn java_cli_scram_sha_512_over_sasl_ssl_with_a_user_made_by_kafka_configs_which_survives_a_restart() {
    let pki = Pki::new();
    let (mut broker, ports) = start(&pki);
    let bootstrap = broker.bootstrap();
    // Verbatim, as a Kafka operator types it.
    let out = java_ok(
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=alice-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
        "",
    );
    assert!(out.contains("Completed updating config for user alice"), "{out}");
    let secure = format!("localhost:{}", ports[1]);
    let config = |password: &str| {
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"{password}\";\n\
             ssl.truststore.type=PEM\nssl.truststore.location={}\n",
            pki.path("ca.pem")
        )
    };
    let good = write_file(pki.dir.path(), "alice.properties", &config("alice-secret"));
    java_ok(
        "org.apache.kafka.tools.ConsoleProducer",
        &["--bootstrap-server", &secure, "--topic", "scram", "--command-config", &good],
        "one\ntwo\nthree\n",
    );
    let consume = |config: &str| {
        run(
            &mut kafka_tool(
                "org.apache.kafka.tools.consumer.ConsoleConsumer",
                &[
                    "--bootstrap-server",
                    &secure,
                    "--topic",
                    "scram",
                    "--from-beginning",
                    "--max-messages",
                    "3",
                    "--timeout-ms",
                    "60000",
                    "--command-config",
                    config,
                ],
            ),
            "",
        )
    };
    let (ok, stdout, stderr) = consume(&good);
    assert!(ok && stdout.lines().collect::<Vec<_>>() == ["one", "two", "three"], "{stdout}\n{stderr}");

    // A wrong password is refused with Kafka's message.
    let bad = write_file(pki.dir.path(), "wrong.properties", &config("guess"));
    let (_, stdout, stderr) = consume(&bad);
    assert!(!stdout.lines().any(|l| l == "one"), "a wrong password consumed: {stdout}");
    let said = format!("{stdout}{stderr}");
    assert!(
        said.contains(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
        ),
        "{said}"
    );

    // The credential lives in the controller metadata: it survives a restart.
    broker.stop_gracefully();
    broker.restart();
    let (ok, stdout, stderr) = consume(&good);
    assert!(ok && stdout.lines().count() == 3, "after a restart: {stdout}\n{stderr}");
}

#[test]
fn java_tools_create_produce_and_consume_in_a_group_over_ssl_with_a_certificate_and_over_plain() {
    let pki = Pki::new();
    let (_broker, [sasl, _, ssl]) = start(&pki);
    let truststore = format!("ssl.truststore.type=PEM\nssl.truststore.location={}\n", pki.path("ca.pem"));
    let keystore = format!("ssl.keystore.type=PEM\nssl.keystore.location={}\n", pki.path("client-keystore.pem"));
    let plain = "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"bob\" password=\"bob-secret\";\n";
    let cases = [
        ("a client certificate over SSL", ssl, format!("security.protocol=SSL\n{truststore}{keystore}")),
        ("PLAIN over SASL_PLAINTEXT", sasl, plain.to_string()),
    ];
    for (i, (what, port, config)) in cases.iter().enumerate() {
        let bootstrap = format!("localhost:{port}");
        let config = write_file(pki.dir.path(), &format!("java-{i}.properties"), config);
        let topic = format!("java-secure-{i}");
        let common = ["--bootstrap-server", &bootstrap, "--command-config", &config];
        let created = java_ok(
            "org.apache.kafka.tools.TopicCommand",
            &[&common[..], &["--create", "--topic", &topic, "--partitions", "2"]].concat(),
            "",
        );
        assert!(created.contains(&format!("Created topic {topic}")), "{what}: {created}");
        let producer = ["--bootstrap-server", &bootstrap, "--producer.config", &config, "--topic", &topic];
        java_ok("org.apache.kafka.tools.ConsoleProducer", &producer, "a\nb\nc\n");
        let group = format!("java-secure-group-{i}");
        let consumer = [
            &common[..],
            &["--topic", &topic, "--group", &group, "--from-beginning", "--max-messages", "3", "--timeout-ms", "60000"],
        ]
        .concat();
        let consumed = java_ok("org.apache.kafka.tools.consumer.ConsoleConsumer", &consumer, "");
        let mut lines: Vec<&str> = consumed.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["a", "b", "c"], "{what}");
        let described = java_ok(
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            &[&common[..], &["--describe", "--group", &group]].concat(),
            "",
        );
        let lag: Vec<&str> = described.lines().filter(|l| l.contains(&topic)).collect();
        assert_eq!(lag.len(), 2, "{what}: both partitions have a committed offset: {described}");
    }
}

/// A confluent-kafka (librdkafka) program: produces `count` records to
/// `topic` and consumes them back, with the given client settings; prints
/// `ok <n>` or the error.
const PYTHON_ROUND_TRIP: &str = r#"
import json, sys, time
from confluent_kafka import Consumer, Producer
conf = json.loads(sys.argv[1]); topic = sys.argv[2]; count = int(sys.argv[3])
token = conf.pop("__token", None)
if token is not None:
    conf["oauth_cb"] = lambda _config: (token, time.time() + 3600)
errors = []
conf["error_cb"] = lambda e: errors.append(str(e))
failed = []
def report(err, msg):
    if err is not None:
        failed.append(str(err))
p = Producer(conf)
for i in range(count):
    p.produce(topic, f"r{i}".encode(), on_delivery=report)
if p.flush(60) != 0 or failed:
    print("error produce", failed, errors); sys.exit(1)
c = Consumer({**conf, "group.id": "py", "auto.offset.reset": "earliest"})
c.subscribe([topic])
got, end = [], time.time() + 60
while len(got) < count and time.time() < end:
    m = c.poll(0.5)
    if m is not None and not m.error():
        got.append(m.value())
c.close()
print("ok", len(got), "errors", errors)
"#;

fn python_round_trip(tools: &E2eTools, conf: &serde_json::Value, topic: &str, count: usize) -> String {
    let (ok, stdout, stderr) =
        run(tools.python().args(["-c", PYTHON_ROUND_TRIP, &conf.to_string(), topic, &count.to_string()]), "");
    assert!(ok, "python failed\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn librdkafka_authenticates_with_a_client_certificate_and_with_scram_over_sasl_plaintext() {
    let tools = E2eTools::load();
    let pki = Pki::new();
    let (broker, ports) = start(&pki);
    // SSL with a client certificate the CA signed.
    let mtls = serde_json::json!({
        "bootstrap.servers": format!("localhost:{}", ports[2]),
        "security.protocol": "SSL",
        "ssl.ca.location": pki.path("ca.pem"),
        "ssl.certificate.location": pki.path("client.pem"),
        "ssl.key.location": pki.path("client-key.pem"),
    });
    let out = python_round_trip(&tools, &mtls, "mtls", 5);
    assert!(out.starts_with("ok 5 "), "{out}");
    // A certificate from another CA is refused in the handshake.
    let stranger = serde_json::json!({
        "bootstrap.servers": format!("localhost:{}", ports[2]),
        "security.protocol": "SSL",
        "ssl.ca.location": pki.path("ca.pem"),
        "ssl.certificate.location": pki.path("stranger.pem"),
        "ssl.key.location": pki.path("stranger-key.pem"),
        "message.timeout.ms": 5000,
    });
    let (ok, stdout, _) = run(tools.python().args(["-c", PYTHON_ROUND_TRIP, &stranger.to_string(), "mtls", "1"]), "");
    assert!(!ok && stdout.contains("error produce"), "an untrusted certificate produced: {stdout}");

    // SCRAM-SHA-256 over SASL_PLAINTEXT, the user made with the Java admin tool.
    java_ok(
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            &broker.bootstrap(),
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=8192,password=carol-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ],
        "",
    );
    let scram = serde_json::json!({
        "bootstrap.servers": format!("localhost:{}", ports[0]),
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "carol",
        "sasl.password": "carol-secret",
    });
    let out = python_round_trip(&tools, &scram, "scram256", 4);
    assert!(out.starts_with("ok 4 "), "{out}");
    let failures =
        Scrape::fetch(broker.http_addr()).sum("strom_authentication_failures_total", &[("mechanism", "TLS")]);
    assert!(failures >= 1.0, "the refused certificate is counted");
}

#[test]
fn rdkafka_plain_over_sasl_plaintext_and_each_listener_advertises_its_own_address() {
    let pki = Pki::new();
    let (broker, ports) = start(&pki);
    let sasl = format!("localhost:{}", ports[0]);
    let auth = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret"),
    ];
    let producer = common::clients::producer(&sasl, &auth);
    let records = common::clients::numbered_records(0, 20, 1_700_000_000_000);
    common::clients::produce_all(&producer, "plain", &records);
    // librdkafka reached the partition leader at the address the SASL listener advertises.
    let metadata = rdkafka::producer::Producer::client(&producer)
        .fetch_metadata(Some("plain"), Duration::from_secs(30))
        .expect("metadata over SASL_PLAINTEXT");
    let brokers: Vec<(String, i32)> = metadata.brokers().iter().map(|b| (b.host().to_string(), b.port())).collect();
    assert_eq!(brokers, vec![("localhost".to_string(), i32::from(ports[0]))]);
    // The PLAINTEXT listener's clients are told its own address.
    let mut plain = WireClient::connect(broker.kafka_addr());
    let answer: MetadataResponse = plain.send(&MetadataRequest::default().with_topics(None), 12);
    assert_eq!(answer.brokers.len(), 1);
    assert_eq!(
        (answer.brokers[0].host.to_string(), answer.brokers[0].port),
        ("127.0.0.1".to_string(), i32::from(broker.kafka_port()))
    );
    // Consume what was produced, authenticated.
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", &sasl).set("group.id", "plain-readers").set("auto.offset.reset", "earliest");
    for (k, v) in auth {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().expect("an rdkafka consumer");
    consumer.subscribe(&["plain"]).expect("subscribe");
    let mut got = Vec::new();
    common::wait_for("20 records consumed over SASL_PLAINTEXT", TOOL_TIMEOUT, || {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(m.payload().map(<[u8]>::to_vec));
        }
        (got.len() >= 20).then_some(())
    });
}

/// SaslHandshake v1 then SaslAuthenticate v2 with `token`: the handshake's
/// and the authentication's error codes and the latter's message.
fn sasl_exchange(client: &mut WireClient, mechanism: &str, token: &[u8]) -> (i16, i16, String) {
    let handshake: SaslHandshakeResponse =
        client.send(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())), 1);
    if handshake.error_code != 0 {
        return (handshake.error_code, -1, String::new());
    }
    let auth: SaslAuthenticateResponse =
        client.send(&SaslAuthenticateRequest::default().with_auth_bytes(token.to_vec().into()), 2);
    (0, auth.error_code, auth.error_message.map(|m| m.to_string()).unwrap_or_default())
}

/// A TLS client on `port` (trusting the test CA) presenting `identity`.
fn tls_client(
    pki: &Pki,
    port: u16,
    identity: Option<PemPair>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(pki.path("ca.pem")).expect("read the CA") {
        roots.add(ca.expect("a CA certificate")).expect("add the CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(pair) => {
            let chain =
                CertificateDer::pem_slice_iter(pair.cert.as_bytes()).collect::<Result<Vec<_>, _>>().expect("chain");
            let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).expect("key");
            builder.with_client_auth_cert(chain, key).expect("client identity")
        }
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").expect("a server name");
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("a TLS client");
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    rustls::StreamOwned::new(connection, tcp)
}

/// ApiVersions over any stream: `Ok` with the response, `Err` when the
/// stream failed or closed.
fn api_versions_over(stream: &mut impl ReadWrite) -> Result<ApiVersionsResponse, String> {
    let body = wire::encode_request(&ApiVersionsRequest::default(), 3, 7);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).map_err(|e| e.to_string())?;
    let mut buf = bytes::Bytes::from(body);
    let _header = kafka_protocol::messages::ResponseHeader::decode(&mut buf, 0).map_err(|e| e.to_string())?;
    ApiVersionsResponse::decode(&mut buf, 3).map_err(|e| e.to_string())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn bad_authentication_input_is_refused_the_broker_stays_up_and_others_are_unaffected() {
    let pki = Pki::new();
    let (broker, ports) = start(&pki);
    let sasl: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().expect("an address");
    let generic = "Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN";
    // A client that stays connected and authenticated throughout.
    let mut steady = WireClient::connect(sasl);
    assert_eq!(sasl_exchange(&mut steady, "PLAIN", b"\0bob\0bob-secret"), (0, 0, String::new()));

    // Wrong password and unknown user: the same error and message, then the connection closes.
    for token in [&b"\0alice\0wrong"[..], b"\0nobody\0alice-secret", b"no separators"] {
        let mut client = WireClient::connect(sasl);
        assert_eq!(sasl_exchange(&mut client, "PLAIN", token), (0, 58, generic.to_string()));
        client.assert_closed_by_broker("a failed PLAIN authentication");
    }
    // A mechanism the listener does not enable.
    let mut client = WireClient::connect(sasl);
    assert_eq!(sasl_exchange(&mut client, "SCRAM-SHA-512", b"").0, 33, "UNSUPPORTED_SASL_MECHANISM");
    // A SASL token before the handshake, and a request before authentication.
    let mut client = WireClient::connect(sasl);
    client.write_frame(b"\0alice\0alice-secret");
    client.assert_closed_by_broker("a SASL token before the handshake");
    let mut client = WireClient::connect(sasl);
    client.write_frame(&wire::encode_request(&MetadataRequest::default().with_topics(None), 12, 1));
    client.assert_closed_by_broker("Metadata before authentication");
    // Before authentication a frame is bounded by sasl.server.max.receive.size
    // (512 KiB): announcing 100 MB closes the connection at once, holding
    // nothing of the shared request pool.
    let mut client = WireClient::connect(sasl);
    client.write_raw(&(100_000_000i32).to_be_bytes());
    client.assert_closed_by_broker("a 100 MB frame before authentication");
    // A truncated SCRAM exchange: a client-first, then a cut-off client-final.
    let mut client = WireClient::connect(sasl);
    let (_, code, _) = sasl_exchange(&mut client, "SCRAM-SHA-256", b"n,,n=alice,r=abcdefgh");
    assert_eq!(code, 0, "the client-first is answered");
    let cut: SaslAuthenticateResponse =
        client.send(&SaslAuthenticateRequest::default().with_auth_bytes(b"c=biws,r=abc".to_vec().into()), 2);
    assert_eq!(cut.error_code, 58);
    client.assert_closed_by_broker("a truncated SCRAM exchange");
    // And one that just hangs up half-way.
    let mut client = WireClient::connect(sasl);
    let _ = sasl_exchange(&mut client, "SCRAM-SHA-256", b"n,,n=alice,r=abcdefgh");
    client.shutdown_write();
    drop(client);

    // A TLS hello on the plaintext port.
    let mut hello = tls_client(&pki, broker.kafka_port(), None);
    assert!(api_versions_over(&mut hello).is_err(), "TLS on the plaintext port");
    // Plaintext on a TLS port.
    let mut plain_on_tls = TcpStream::connect(("127.0.0.1", ports[2])).expect("connect");
    plain_on_tls.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    assert!(api_versions_over(&mut plain_on_tls).is_err(), "plaintext on the TLS port");
    // A certificate from another CA, and none at all, where one is required.
    let mut stranger = tls_client(&pki, ports[2], Some(pki.pair("stranger")));
    assert!(api_versions_over(&mut stranger).is_err(), "an untrusted client certificate");
    let mut anonymous = tls_client(&pki, ports[2], None);
    assert!(api_versions_over(&mut anonymous).is_err(), "no client certificate");
    // The trusted certificate is served.
    let mut trusted = tls_client(&pki, ports[2], Some(pki.pair("client")));
    assert_eq!(api_versions_over(&mut trusted).map(|r| r.error_code), Ok(0));

    // The broker is up, the steady client unaffected, and the failures counted.
    wire::assert_broker_still_serves(broker.kafka_addr(), "the refused clients");
    let answer: MetadataResponse = steady.send(&MetadataRequest::default().with_topics(None), 12);
    assert_eq!(answer.brokers[0].port, i32::from(ports[0]), "the SASL listener's address");
    let scrape = Scrape::fetch(broker.http_addr());
    assert!(scrape.sum("strom_authentication_failures_total", &[("mechanism", "PLAIN")]) >= 3.0);
    assert!(scrape.sum("strom_authentication_failures_total", &[("mechanism", "TLS")]) >= 3.0);
}

#[test]
fn scram_users_are_managed_with_kafkas_checks_and_answers() {
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use kafka_protocol::messages::{
        AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
        DescribeUserScramCredentialsResponse,
    };
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    let name = |n: &str| StrBytes::from_string(n.to_string());
    let upsert = |user: &str, mechanism: i8, iterations: i32| {
        ScramCredentialUpsertion::default()
            .with_name(name(user))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(b"0123456789abcdef".to_vec().into())
            .with_salted_password(vec![9u8; 64].into())
    };
    let delete =
        |user: &str, mechanism: i8| ScramCredentialDeletion::default().with_name(name(user)).with_mechanism(mechanism);
    let mut alter = |upsertions: Vec<ScramCredentialUpsertion>, deletions: Vec<ScramCredentialDeletion>| {
        let response: AlterUserScramCredentialsResponse = client.send(
            &AlterUserScramCredentialsRequest::default().with_upsertions(upsertions).with_deletions(deletions),
            0,
        );
        response.results.iter().map(|r| (r.user.to_string(), r.error_code)).collect::<Vec<_>>()
    };
    assert_eq!(alter(vec![upsert("few", 2, 1000)], vec![]), vec![("few".to_string(), 93)], "UNACCEPTABLE_CREDENTIAL");
    assert_eq!(
        alter(vec![upsert("odd", 3, 4096)], vec![]),
        vec![("odd".to_string(), 33)],
        "UNSUPPORTED_SASL_MECHANISM"
    );
    assert_eq!(alter(vec![], vec![delete("ghost", 2)]), vec![("ghost".to_string(), 91)], "RESOURCE_NOT_FOUND");
    assert_eq!(
        alter(vec![upsert("twice", 2, 4096)], vec![delete("twice", 2)]),
        vec![("twice".to_string(), 92)],
        "DUPLICATE_RESOURCE"
    );
    assert_eq!(
        alter(vec![upsert("alice", 2, 4096), upsert("alice", 1, 8192), upsert("bob", 1, 4096)], vec![]),
        vec![("alice".to_string(), 0), ("bob".to_string(), 0)]
    );
    let mut describe = |users: Option<Vec<&str>>| {
        let request = DescribeUserScramCredentialsRequest::default()
            .with_users(users.map(|u| u.into_iter().map(|n| UserName::default().with_name(name(n))).collect()));
        let response: DescribeUserScramCredentialsResponse = client.send(&request, 0);
        response
            .results
            .iter()
            .map(|r| {
                let infos: Vec<(i8, i32)> = r.credential_infos.iter().map(|c| (c.mechanism, c.iterations)).collect();
                (r.user.to_string(), r.error_code, infos)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        describe(Some(vec!["alice", "ghost"])),
        vec![("alice".to_string(), 0, vec![(1, 8192), (2, 4096)]), ("ghost".to_string(), 91, vec![])]
    );
    assert_eq!(describe(None).len(), 2, "every user with credentials");
    let mut client = WireClient::connect(broker.kafka_addr());
    let response: AlterUserScramCredentialsResponse =
        client.send(&AlterUserScramCredentialsRequest::default().with_deletions(vec![delete("bob", 1)]), 0);
    assert_eq!(response.results[0].error_code, 0);
    let response: DescribeUserScramCredentialsResponse =
        client.send(&DescribeUserScramCredentialsRequest::default().with_users(None), 0);
    let users: Vec<String> = response.results.iter().map(|r| r.user.to_string()).collect();
    assert_eq!(users, vec!["alice".to_string()], "bob's only credential was deleted");
}

#[test]
fn sasl_sessions_end_after_connections_max_reauth_ms_unless_renewed_as_the_same_user() {
    let pki = Pki::new();
    let mut settings = settings(&pki);
    settings.push("listener.name.sasl.connections.max.reauth.ms=2000".to_string());
    // Renewals come after the first authentication's deadline: they are
    // not held to it.
    settings.push("sasl.authentication.timeout.ms=1000".to_string());
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start_with(&refs);
    let ports = broker.extra_ports();
    let sasl: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().expect("an address");
    let metadata = MetadataRequest::default().with_topics(None);

    let authenticate = |client: &mut WireClient, token: &[u8]| -> SaslAuthenticateResponse {
        let handshake: SaslHandshakeResponse =
            client.send(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")), 1);
        assert_eq!(handshake.error_code, 0);
        client.send(&SaslAuthenticateRequest::default().with_auth_bytes(token.to_vec().into()), 2)
    };
    // A session that is not renewed is closed at its first request after it ended.
    let mut lapsing = WireClient::connect(sasl);
    let started = std::time::Instant::now();
    let answer = authenticate(&mut lapsing, b"\0alice\0alice-secret");
    assert_eq!((answer.error_code, answer.session_lifetime_ms), (0, 2000));
    let _: MetadataResponse = lapsing.send(&metadata, 12);
    // A renewed one goes on; renewing as another user fails.
    let mut renewing = WireClient::connect(sasl);
    assert_eq!(authenticate(&mut renewing, b"\0alice\0alice-secret").error_code, 0);
    common::wait_for("the first sessions to end", Duration::from_secs(10), || {
        (started.elapsed() > Duration::from_millis(2500)).then_some(())
    });
    lapsing.write_frame(&wire::encode_request(&metadata, 12, 99));
    lapsing.assert_closed_by_broker("a request after the session ended");
    assert_eq!(authenticate(&mut renewing, b"\0alice\0alice-secret").session_lifetime_ms, 2000);
    let _: MetadataResponse = renewing.send(&metadata, 12);
    assert_eq!(authenticate(&mut renewing, b"\0bob\0bob-secret").error_code, 58, "a renewal may not change users");
    renewing.assert_closed_by_broker("a renewal as another user");

    // librdkafka renews its sessions itself (KIP-368): none is closed as ended.
    let producer = common::clients::producer(
        &format!("localhost:{}", ports[0]),
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "alice"),
            ("sasl.password", "alice-secret"),
        ],
    );
    let first = std::time::Instant::now();
    common::clients::produce_all(&producer, "renewed", &common::clients::numbered_records(0, 5, 1_700_000_000_000));
    common::wait_for("two session lifetimes to pass", Duration::from_secs(20), || {
        (first.elapsed() > Duration::from_millis(5000)).then_some(())
    });
    common::clients::produce_all(&producer, "renewed", &common::clients::numbered_records(5, 5, 1_700_000_000_000));
    let expired = Scrape::fetch(broker.http_addr())
        .value_or_zero("strom_authentication_failures_total", &[("listener", "SASL"), ("mechanism", "expired")]);
    assert_eq!(expired, 1.0, "only the raw client above let its session end");
}

#[test]
fn a_listener_takes_a_new_certificate_from_disk_for_new_connections() {
    let pki = Pki::new();
    let (broker, ports) = start(&pki);
    let served_certificate = |stream: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>| {
        assert_eq!(api_versions_over(stream).map(|r| r.error_code), Ok(0));
        stream.conn.peer_certificates().expect("the server's certificate")[0].as_ref().to_vec()
    };
    let mut before = tls_client(&pki, ports[2], Some(pki.pair("client")));
    let first = served_certificate(&mut before);
    // A new broker certificate (from a new CA), renamed over the keystore.
    let renewed = Pki::new();
    std::fs::copy(renewed.dir.path().join("keystore.pem"), pki.dir.path().join("keystore.pem.new")).expect("copy");
    std::fs::copy(renewed.dir.path().join("ca.pem"), pki.dir.path().join("ca-new.pem")).expect("copy");
    let both_cas = format!(
        "{}{}",
        std::fs::read_to_string(pki.dir.path().join("ca.pem")).expect("the old CA"),
        std::fs::read_to_string(pki.dir.path().join("ca-new.pem")).expect("the new CA")
    );
    // Clients trust both CAs while the broker moves to the new one.
    std::fs::write(pki.dir.path().join("ca.pem"), both_cas).expect("write the CA bundle");
    std::fs::rename(pki.dir.path().join("keystore.pem.new"), pki.dir.path().join("keystore.pem")).expect("rename");
    let mut after = tls_client(&pki, ports[2], Some(pki.pair("client")));
    let second = served_certificate(&mut after);
    assert_ne!(first, second, "a new connection gets the new certificate without a restart");
    // The connection opened before keeps working.
    assert_eq!(api_versions_over(&mut before).map(|r| r.error_code), Ok(0));
    wire::assert_broker_still_serves(broker.kafka_addr(), "a certificate reload");
}

/// Runs a store-making tool (`openssl`, `keytool`) and fails the test with its output if it fails.
fn make_store(command: &mut Command) {
    let (ok, stdout, stderr) = run(command, "");
    assert!(ok, "{command:?}: {stdout}{stderr}");
}

#[test]
fn pkcs12_stores_made_by_openssl_and_keytool_serve_tls_and_check_client_certificates() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    // The broker's and alice's keystores as `openssl pkcs12 -export` writes
    // them; the CA in a trust store as `keytool -importcert` writes it.
    for (name, key_and_cert) in [("broker", "keystore.pem"), ("alice", "client-keystore.pem")] {
        make_store(
            Command::new("openssl").args(["pkcs12", "-export", "-name", name, "-passout", "pass:ks-secret"]).args([
                "-in".as_ref(),
                dir.join(key_and_cert).as_os_str(),
                "-out".as_ref(),
                dir.join(format!("{name}.p12")).as_os_str(),
            ]),
        );
    }
    make_store(
        Command::new("keytool")
            .args(["-importcert", "-noprompt", "-alias", "ca", "-storetype", "PKCS12", "-storepass", "ts-secret"])
            .args(["-file", &pki.path("ca.pem"), "-keystore", &pki.path("truststore.p12")]),
    );
    let settings = [
        "listeners=PLAINTEXT://127.0.0.1:{KAFKA_PORT},MTLS://127.0.0.1:{PORT_0}".to_string(),
        "advertised.listeners=PLAINTEXT://127.0.0.1:{KAFKA_PORT},MTLS://localhost:{PORT_0}".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,MTLS:SSL".to_string(),
        "ssl.keystore.type=PKCS12".to_string(),
        format!("ssl.keystore.location={}", pki.path("broker.p12")),
        "ssl.keystore.password=ks-secret".to_string(),
        "ssl.truststore.type=PKCS12".to_string(),
        format!("ssl.truststore.location={}", pki.path("truststore.p12")),
        "ssl.truststore.password=ts-secret".to_string(),
        "ssl.client.auth=required".to_string(),
        "auto.create.topics.enable=true".to_string(),
    ];
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start_with(&refs);
    let port = broker.extra_ports()[0];

    let mut trusted = tls_client(&pki, port, Some(pki.pair("client")));
    assert_eq!(api_versions_over(&mut trusted).map(|r| r.error_code), Ok(0), "alice, signed by the trusted CA");
    let mut stranger = tls_client(&pki, port, Some(pki.pair("stranger")));
    assert!(api_versions_over(&mut stranger).is_err(), "a certificate of a CA the trust store does not hold");

    // The Java client with PKCS#12 stores of its own, as Kafka users configure it.
    let config = write_file(
        dir,
        "pkcs12.properties",
        &format!(
            "security.protocol=SSL\nssl.keystore.type=PKCS12\nssl.keystore.location={}\nssl.keystore.password=ks-secret\n\
             ssl.truststore.type=PKCS12\nssl.truststore.location={}\nssl.truststore.password=ts-secret\n",
            pki.path("alice.p12"),
            pki.path("truststore.p12")
        ),
    );
    let bootstrap = format!("localhost:{port}");
    let producer = ["--bootstrap-server", &bootstrap, "--producer.config", &config, "--topic", "pkcs12"];
    java_ok("org.apache.kafka.tools.ConsoleProducer", &producer, "x\ny\n");
    let consumer = [
        "--bootstrap-server",
        &bootstrap,
        "--command-config",
        &config,
        "--topic",
        "pkcs12",
        "--from-beginning",
        "--max-messages",
        "2",
        "--timeout-ms",
        "60000",
    ];
    let consumed = java_ok("org.apache.kafka.tools.consumer.ConsoleConsumer", &consumer, "");
    assert_eq!(consumed.lines().collect::<Vec<_>>(), ["x", "y"]);
}

#[test]
fn a_v0_handshake_takes_bare_sasl_tokens_as_old_clients_send_them() {
    let pki = Pki::new();
    let (_broker, ports) = start(&pki);
    let sasl: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().expect("an address");
    let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    // The right password: an empty bare token back, then requests are served.
    let mut client = WireClient::connect(sasl);
    let answer: SaslHandshakeResponse = client.send(&handshake, 0);
    assert_eq!(answer.error_code, 0);
    assert!(answer.mechanisms.iter().any(|m| m.as_str() == "PLAIN"), "{:?}", answer.mechanisms);
    client.write_frame(b"\0alice\0alice-secret");
    assert_eq!(client.read_frame().map(|f| f.len()), Some(0), "PLAIN's empty server token");
    let metadata: MetadataResponse = client.send(&MetadataRequest::default().with_topics(None), 12);
    assert_eq!(metadata.brokers[0].port, i32::from(ports[0]));
    // A wrong one: the connection just closes, as Kafka does at v0.
    let mut client = WireClient::connect(sasl);
    let _: SaslHandshakeResponse = client.send(&handshake, 0);
    client.write_frame(b"\0alice\0wrong");
    client.assert_closed_by_broker("a wrong password after a v0 handshake");
}

#[test]
fn oauthbearer_takes_signed_current_jwts_from_librdkafka_and_refuses_forged_or_expired_ones() {
    let tools = E2eTools::load();
    let pki = Pki::new();
    let issuer = Issuer::new();
    let jwks = write_file(pki.dir.path(), "jwks.json", &issuer.jwks());
    let mut settings = settings(&pki);
    settings.extend([
        "listener.name.sasl.sasl.enabled.mechanisms=PLAIN,OAUTHBEARER".to_string(),
        format!("listener.name.sasl.sasl.oauthbearer.jwks.endpoint.url=file://{jwks}"),
        "listener.name.sasl.sasl.oauthbearer.expected.issuer=https://idp.test".to_string(),
        "listener.name.sasl.sasl.oauthbearer.expected.audience=kafka".to_string(),
        "sasl.authentication.timeout.ms=3000".to_string(),
    ]);
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start_with(&refs);
    let ports = broker.extra_ports();
    let conf = serde_json::json!({
        "bootstrap.servers": format!("localhost:{}", ports[0]),
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "__token": issuer.token("alice", 3600),
    });
    let out = python_round_trip(&tools, &conf, "oauth", 3);
    assert!(out.starts_with("ok 3 "), "{out}");

    let sasl: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().expect("an address");
    let message = |token: &str| format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes();
    let generic =
        "Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER";
    let mut client = WireClient::connect(sasl);
    assert_eq!(sasl_exchange(&mut client, "OAUTHBEARER", &message(&issuer.token("bob", 60))), (0, 0, String::new()));
    let forger = Issuer::new();
    for (what, token) in [
        ("a token signed by another key", forger.token("alice", 3600)),
        ("an expired token", issuer.token("alice", -3600)),
        ("garbage", "not.a.jwt".to_string()),
    ] {
        let mut client = WireClient::connect(sasl);
        assert_eq!(sasl_exchange(&mut client, "OAUTHBEARER", &message(&token)), (0, 58, generic.to_string()), "{what}");
        client.assert_closed_by_broker(what);
    }

    // The token's expiry bounds the session (no connections.max.reauth.ms
    // here): the client is told, may renew with a new token, and a session
    // left to expire is closed at its next request.
    let authenticate = |client: &mut WireClient, token: &str| -> SaslAuthenticateResponse {
        let handshake: SaslHandshakeResponse =
            client.send(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("OAUTHBEARER")), 1);
        assert_eq!(handshake.error_code, 0);
        client.send(&SaslAuthenticateRequest::default().with_auth_bytes(message(token).into()), 2)
    };
    let metadata = MetadataRequest::default().with_topics(None);
    let mut lapsing = WireClient::connect(sasl);
    let mut renewing = WireClient::connect(sasl);
    let started = std::time::Instant::now();
    for client in [&mut lapsing, &mut renewing] {
        let answer = authenticate(client, &issuer.token("carol", 3));
        assert_eq!(answer.error_code, 0);
        assert!(
            (1..=3000).contains(&answer.session_lifetime_ms),
            "the session lasts until the token expires: {} ms",
            answer.session_lifetime_ms
        );
        let _: MetadataResponse = client.send(&metadata, 12);
    }
    assert_eq!(authenticate(&mut renewing, &issuer.token("carol", 3600)).error_code, 0, "renewed with a new token");
    common::wait_for("the short tokens to expire", Duration::from_secs(15), || {
        (started.elapsed() > Duration::from_millis(4500)).then_some(())
    });
    let _: MetadataResponse = renewing.send(&metadata, 12);
    lapsing.write_frame(&wire::encode_request(&metadata, 12, 99));
    lapsing.assert_closed_by_broker("a request after the token expired");

    // A rotated key set is used at the next attempt, without a restart.
    let rotated = Issuer::new();
    std::fs::write(&jwks, rotated.jwks()).expect("rotate the JWKS file");
    let mut client = WireClient::connect(sasl);
    assert_eq!(sasl_exchange(&mut client, "OAUTHBEARER", &message(&rotated.token("dave", 60))), (0, 0, String::new()));
    let mut client = WireClient::connect(sasl);
    let old_key = sasl_exchange(&mut client, "OAUTHBEARER", &message(&issuer.token("dave", 60)));
    assert_eq!(old_key, (0, 58, generic.to_string()), "the retired key");

    // A connection that does not authenticate within
    // sasl.authentication.timeout.ms is closed, however it keeps busy.
    let mut stalling = WireClient::connect(sasl);
    let connected = std::time::Instant::now();
    let closed = loop {
        stalling.write_frame(&wire::encode_request(&ApiVersionsRequest::default(), 3, 1));
        match stalling.read_frame() {
            None => break connected.elapsed(),
            Some(_) => std::thread::sleep(Duration::from_millis(500)),
        }
        assert!(connected.elapsed() < Duration::from_secs(60), "an unauthenticated connection stayed open");
    };
    assert!(closed >= Duration::from_millis(3000), "closed before the deadline: {closed:?}");
    let timeouts = Scrape::fetch(broker.http_addr())
        .value_or_zero("strom_authentication_failures_total", &[("listener", "SASL"), ("mechanism", "timeout")]);
    assert_eq!(timeouts, 1.0);
}
