//! Client quotas against a real broker process: Kafka 4.3's
//! `kafka-configs.sh` (ConfigCommand, as bin/kafka-configs.sh runs it)
//! alters, describes and deletes quotas of users, clients and their
//! defaults, which survive a restart; AlterClientQuotas refuses bad input
//! with Kafka's code and a message naming the field; and the quotas are
//! enforced: a client id over its `producer_byte_rate` or
//! `consumer_byte_rate` takes at least about bytes / rate to move its bytes,
//! sees `throttle_time_ms > 0` and is muted meanwhile, while another client
//! id on the same broker is never throttled.
//!
//! Timing assertions are lower bounds only (a slow machine only makes
//! them easier to meet). The brokers measure over 2 windows of 1 s
//! (`quota.window.num=2`), so the burst a fresh client gets is small.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
    FetchRequest, ProduceRequest,
};
use kafka_protocol::protocol::StrBytes;

use common::BrokerProcess;
use common::e2e::{run_with_input, workspace_root};
use common::metrics::Scrape;
use common::wire::{self, WireClient};

const CLI_TIMEOUT: Duration = Duration::from_secs(120);
const INVALID_REQUEST: i16 = 42;
/// Two samples of one second: a client's rate is measured over at most 2 s.
const WINDOWS: [&str; 2] = ["quota.window.num=2", "quota.window.size.seconds=1"];
const WINDOW_SPAN: Duration = Duration::from_secs(2);

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// One AlterClientQuotas entry: entity parts and (key, value, remove) ops.
fn entry(entity: &[(&str, Option<&str>)], ops: &[(&str, f64, bool)]) -> EntryData {
    EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| EntityData::default().with_entity_type(s(t)).with_entity_name(n.map(s)))
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v, remove)| OpData::default().with_key(s(k)).with_value(*v).with_remove(*remove))
                .collect(),
        )
}

fn alter(client: &mut WireClient, entries: Vec<EntryData>, validate_only: bool) -> AlterClientQuotasResponse {
    client.send(&AlterClientQuotasRequest::default().with_entries(entries).with_validate_only(validate_only), 1)
}

fn alter_ok(addr: SocketAddr, entity: &[(&str, Option<&str>)], ops: &[(&str, f64, bool)]) {
    let response = alter(&mut WireClient::connect(addr), vec![entry(entity, ops)], false);
    assert_eq!(response.entries[0].error_code, 0, "{entity:?}: {:?}", response.entries[0].error_message);
}

/// DescribeClientQuotas: (entity as `type=name` parts, sorted values) of each match.
fn describe(
    client: &mut WireClient,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> DescribeClientQuotasResponse {
    let components = components
        .iter()
        .map(|(t, m, n)| ComponentData::default().with_entity_type(s(t)).with_match_type(*m).with_match(n.map(s)))
        .collect();
    client.send(&DescribeClientQuotasRequest::default().with_components(components).with_strict(strict), 1)
}

fn described(response: &DescribeClientQuotasResponse) -> Vec<(String, Vec<(String, f64)>)> {
    assert_eq!(response.error_code, 0, "DescribeClientQuotas: {:?}", response.error_message);
    let mut out: Vec<_> = response
        .entries
        .iter()
        .flatten()
        .map(|e| {
            let entity = e
                .entity
                .iter()
                .map(|p| format!("{}={}", p.entity_type, p.entity_name.as_deref().unwrap_or("<default>")))
                .collect::<Vec<_>>()
                .join(",");
            let mut values: Vec<(String, f64)> = e.values.iter().map(|v| (v.key.to_string(), v.value)).collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (entity, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn alter_client_quotas_follows_kafkas_rules_and_refuses_bad_input_naming_the_field() {
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());

    let ok = alter(
        &mut client,
        vec![entry(
            &[("user", Some("alice"))],
            &[("producer_byte_rate", 1024.0, false), ("consumer_byte_rate", 2048.0, false)],
        )],
        false,
    );
    assert_eq!(ok.entries[0].error_code, 0, "{:?}", ok.entries[0].error_message);

    // validate_only checks and stores nothing.
    let checked =
        alter(&mut client, vec![entry(&[("client-id", Some("app"))], &[("request_percentage", 50.0, false)])], true);
    assert_eq!(checked.entries[0].error_code, 0);
    assert!(described(&describe(&mut client, &[("client-id", 0, Some("app"))], false)).is_empty());

    // Bad input: one result per entity, INVALID_REQUEST with the field and value named.
    let bad = alter(
        &mut client,
        vec![
            entry(&[("user", Some("bob"))], &[("bogus_rate", 5.0, false)]),
            entry(&[("user", Some("carol"))], &[("producer_byte_rate", -5.0, false)]),
            entry(&[("group", Some("g"))], &[("producer_byte_rate", 5.0, false)]),
            entry(&[("user", Some("dave"))], &[("consumer_byte_rate", 1.5, false)]),
            entry(&[("user", Some("erin"))], &[("producer_byte_rate", 10.0, false)]),
            entry(&[("user", Some("erin"))], &[("consumer_byte_rate", 10.0, false)]),
            entry(&[("ip", Some("10.0.0.1"))], &[("producer_byte_rate", 10.0, false)]),
            entry(&[], &[("producer_byte_rate", 10.0, false)]),
            entry(&[("client-id", Some("good"))], &[("producer_byte_rate", 4096.0, false)]),
        ],
        false,
    );
    let results: Vec<(i16, String)> =
        bad.entries.iter().map(|e| (e.error_code, e.error_message.as_deref().unwrap_or("").to_string())).collect();
    let expect_refused = |i: usize, words: &[&str]| {
        let (code, message) = &results[i];
        assert_eq!(*code, INVALID_REQUEST, "entry {i}: {message}");
        for w in words {
            assert!(message.contains(w), "entry {i}: {message:?} should name {w:?}");
        }
    };
    expect_refused(0, &["bogus_rate"]);
    expect_refused(1, &["producer_byte_rate", "-5"]);
    expect_refused(2, &["group"]);
    expect_refused(3, &["consumer_byte_rate", "1.5", "integer"]);
    assert_eq!(results[4].0, 0, "the first of two entries for one entity: {}", results[4].1);
    expect_refused(5, &["user=erin", "more than once"]);
    expect_refused(6, &["producer_byte_rate", "ip=10.0.0.1"]);
    expect_refused(7, &["empty"]);
    assert_eq!(results[8].0, 0, "a valid entity is applied beside refused ones: {}", results[8].1);

    // Strict and non-strict filters, defaults.
    alter_ok(
        broker.kafka_addr(),
        &[("user", Some("alice")), ("client-id", Some("app"))],
        &[("request_percentage", 25.0, false)],
    );
    alter_ok(broker.kafka_addr(), &[("user", None)], &[("producer_byte_rate", 777.0, false)]);
    let strict = described(&describe(&mut client, &[("user", 0, Some("alice"))], true));
    assert_eq!(
        strict,
        [(
            "user=alice".to_string(),
            vec![("consumer_byte_rate".to_string(), 2048.0), ("producer_byte_rate".to_string(), 1024.0)]
        )]
    );
    let loose = described(&describe(&mut client, &[("user", 0, Some("alice"))], false));
    assert_eq!(loose.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(), ["user=alice", "user=alice,client-id=app"]);
    let defaults = described(&describe(&mut client, &[("user", 1, None)], true));
    assert_eq!(defaults, [("user=<default>".to_string(), vec![("producer_byte_rate".to_string(), 777.0)])]);
    let twice = describe(&mut client, &[("user", 1, None), ("user", 2, None)], false);
    assert_eq!(twice.error_code, INVALID_REQUEST, "{:?}", twice.error_message);
    assert!(twice.error_message.as_deref().unwrap_or("").contains("user"), "{:?}", twice.error_message);

    // Removing the last value removes the entity.
    alter_ok(broker.kafka_addr(), &[("client-id", Some("good"))], &[("producer_byte_rate", 0.0, true)]);
    assert!(described(&describe(&mut client, &[("client-id", 0, Some("good"))], false)).is_empty());
}

/// `bin/kafka-configs.sh ARGS` (Kafka 4.3's ConfigCommand); its stdout.
fn kafka_configs(args: &[&str]) -> String {
    let script = workspace_root().join("bench/kafka/run-kafka.sh");
    let mut classpath = Vec::new();
    for which in ["classpath", "tools-classpath"] {
        let out = Command::new("bash").arg(&script).arg(which).output().expect("run bench/kafka/run-kafka.sh");
        assert!(out.status.success(), "bench/kafka/run-kafka.sh {which} failed: {out:?}");
        let file = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        classpath.push(std::fs::read_to_string(&file).expect("read a classpath file").trim().to_string());
    }
    let java = std::env::var("STROM_E2E_JAVA").unwrap_or_else(|_| "java".to_string());
    let mut command = Command::new(java);
    command
        .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", &classpath.join(":"), "kafka.admin.ConfigCommand"])
        .args(args);
    let (status, stdout, stderr) = run_with_input(&mut command, "", CLI_TIMEOUT);
    assert!(status.success(), "kafka-configs.sh {args:?} exited with {status}\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn kafka_configs_alters_describes_and_deletes_user_and_client_quotas_which_survive_a_restart() {
    let mut broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let b = bootstrap.as_str();
    // Verbatim, as a Kafka operator types them.
    let alter = |entity: &[&str], config: &str| {
        let mut args = vec!["--bootstrap-server", b, "--alter", "--add-config", config];
        args.extend_from_slice(entity);
        kafka_configs(&args);
    };
    alter(
        &["--entity-type", "users", "--entity-name", "alice"],
        "producer_byte_rate=1048576,consumer_byte_rate=2097152",
    );
    alter(&["--entity-type", "clients", "--entity-name", "reporting"], "producer_byte_rate=4096");
    alter(&["--entity-type", "users", "--entity-default"], "consumer_byte_rate=65536");
    alter(&["--entity-type", "clients", "--entity-default"], "request_percentage=200");
    alter(
        &["--entity-type", "users", "--entity-name", "alice", "--entity-type", "clients", "--entity-name", "batch"],
        "producer_byte_rate=8192",
    );

    let describe = |entity: &[&str]| {
        let mut args = vec!["--bootstrap-server", b, "--describe"];
        args.extend_from_slice(entity);
        kafka_configs(&args)
    };
    let check_all = || {
        let alice = describe(&["--entity-type", "users", "--entity-name", "alice"]);
        assert!(alice.contains("producer_byte_rate=1048576"), "{alice}");
        assert!(alice.contains("consumer_byte_rate=2097152"), "{alice}");
        let client = describe(&["--entity-type", "clients", "--entity-name", "reporting"]);
        assert!(client.contains("producer_byte_rate=4096"), "{client}");
        // All named users (as in Kafka, not the default), then the defaults.
        let users = describe(&["--entity-type", "users"]);
        assert!(users.contains("'alice'") && !users.contains("consumer_byte_rate=65536"), "{users}");
        let default_user = describe(&["--entity-type", "users", "--entity-default"]);
        assert!(default_user.contains("consumer_byte_rate=65536"), "{default_user}");
        let clients = describe(&["--entity-type", "clients"]);
        assert!(clients.contains("'reporting'"), "{clients}");
        let default_client = describe(&["--entity-type", "clients", "--entity-default"]);
        assert!(default_client.contains("request_percentage=200"), "{default_client}");
        let both = describe(&[
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--entity-type",
            "clients",
            "--entity-name",
            "batch",
        ]);
        assert!(both.contains("producer_byte_rate=8192"), "{both}");
    };
    check_all();

    broker.stop_gracefully();
    broker.restart();
    check_all();

    kafka_configs(&[
        "--bootstrap-server",
        b,
        "--alter",
        "--delete-config",
        "producer_byte_rate",
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
    ]);
    let alice = describe(&["--entity-type", "users", "--entity-name", "alice"]);
    assert!(!alice.contains("producer_byte_rate") && alice.contains("consumer_byte_rate=2097152"), "{alice}");
    kafka_configs(&[
        "--bootstrap-server",
        b,
        "--alter",
        "--delete-config",
        "producer_byte_rate",
        "--entity-type",
        "clients",
        "--entity-name",
        "reporting",
    ]);
    let client = describe(&["--entity-type", "clients", "--entity-name", "reporting"]);
    assert!(!client.contains("producer_byte_rate=4096"), "{client}");
}

/// One produce of `batch` to partition 0 of `topic` (acks=all); its throttle_time_ms.
fn produce_throttle(client: &mut WireClient, topic: &str, batch: Bytes) -> i32 {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(wire::topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch))]),
    ]);
    let response = client.send(&request, wire::PRODUCE_VERSION);
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce to {topic}: {:?}", p.error_message);
    response.throttle_time_ms
}

/// A batch of 16 records of 1000 bytes.
fn batch() -> Bytes {
    wire::record_batch(&vec![vec![b'x'; 1000]; 16], 1_700_000_000_000)
}

/// The least time moving `bytes` can take at `rate` bytes/s when the
/// first window's worth (and one request) may pass unthrottled.
fn lower_bound(bytes: usize, rate: f64, request: usize) -> Duration {
    let seconds = (bytes.saturating_sub(request) as f64 / rate) - WINDOW_SPAN.as_secs_f64();
    Duration::from_secs_f64(seconds.max(0.0))
}

#[test]
fn a_producer_over_its_byte_rate_is_throttled_and_muted_while_another_client_id_is_not() {
    let broker = BrokerProcess::start_with(&WINDOWS);
    let addr = broker.kafka_addr();
    wire::create_topic_ok(&mut WireClient::connect(addr), "quota-produce", 1, &[]);
    let rate = 64_000.0;
    alter_ok(addr, &[("client-id", Some("limited"))], &[("producer_byte_rate", rate, false)]);

    let batch = batch();
    let requests = 32;
    let total = batch.len() * requests;
    let mut limited = WireClient::connect_as(addr, "limited");
    let started = Instant::now();
    let throttles: Vec<i32> =
        (0..requests).map(|_| produce_throttle(&mut limited, "quota-produce", batch.clone())).collect();
    let took = started.elapsed();
    assert!(throttles.iter().any(|&t| t > 0), "a producer over its quota sees throttle_time_ms > 0: {throttles:?}");
    let least = lower_bound(total, rate, batch.len());
    assert!(
        took >= least,
        "{total} bytes at {rate} B/s took {took:?}, less than {least:?}: the quota was not enforced"
    );

    // Another client id on the same broker (and principal) has no quota.
    let mut free = WireClient::connect_as(addr, "free");
    let free_throttles: Vec<i32> =
        (0..requests).map(|_| produce_throttle(&mut free, "quota-produce", batch.clone())).collect();
    assert!(
        free_throttles.iter().all(|&t| t == 0),
        "a client id without a quota is never throttled: {free_throttles:?}"
    );

    let scrape = Scrape::fetch(broker.http_addr());
    let throttled = scrape.value_or_zero("strom_client_quota_throttle_time_ms_total", &[("quota_type", "produce")]);
    assert!(throttled > 0.0, "the produce throttle time is counted");
    assert_eq!(scrape.value_or_zero("strom_client_quota_throttle_time_ms_total", &[("quota_type", "fetch")]), 0.0);
}

/// One fetch of partition 0 of `topic` from `offset` by at most `max_bytes`:
/// (throttle_time_ms, next offset after the batches returned).
fn fetch_throttle(client: &mut WireClient, topic: &str, offset: i64, max_bytes: i32) -> (i32, i64) {
    let request =
        FetchRequest::default().with_max_wait_ms(0).with_min_bytes(0).with_max_bytes(max_bytes).with_topics(vec![
            FetchTopic::default().with_topic(wire::topic_name(topic)).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes),
            ]),
        ]);
    let response = client.send(&request, wire::FETCH_VERSION);
    assert_eq!(response.error_code, 0, "fetch {topic}");
    let mut next = offset;
    for p in response.responses.iter().flat_map(|t| &t.partitions) {
        assert_eq!(p.error_code, 0, "fetch {topic}");
        let records = p.records.clone().unwrap_or_default();
        let mut at = 0;
        // Whole batches: base offset (8), length (4) ... last offset delta at 23.
        while records.len() >= at + 27 {
            let base = i64::from_be_bytes(records[at..at + 8].try_into().expect("8 bytes"));
            let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            if records.len() < at + 12 + length {
                break;
            }
            let delta = i32::from_be_bytes(records[at + 23..at + 27].try_into().expect("4 bytes"));
            next = base + i64::from(delta) + 1;
            at += 12 + length;
        }
    }
    (response.throttle_time_ms, next)
}

#[test]
fn a_consumer_over_its_byte_rate_is_throttled_while_another_client_id_is_not() {
    let broker = BrokerProcess::start_with(&WINDOWS);
    let addr = broker.kafka_addr();
    wire::create_topic_ok(&mut WireClient::connect(addr), "quota-fetch", 1, &[]);
    let batch = batch();
    let requests = 32;
    let mut producer = WireClient::connect(addr);
    for _ in 0..requests {
        produce_throttle(&mut producer, "quota-fetch", batch.clone());
    }
    let end = requests as i64 * 16;
    let rate = 64_000.0;
    alter_ok(addr, &[("user", Some("ANONYMOUS")), ("client-id", Some("slow"))], &[("consumer_byte_rate", rate, false)]);

    let consume = |client_id: &str| {
        let mut client = WireClient::connect_as(addr, client_id);
        let (mut offset, mut throttles) = (0, Vec::new());
        let started = Instant::now();
        while offset < end {
            assert!(started.elapsed() < Duration::from_secs(300), "{client_id} made no progress: at {offset} of {end}");
            let (throttle, next) = fetch_throttle(&mut client, "quota-fetch", offset, batch.len() as i32 + 100);
            throttles.push(throttle);
            offset = next;
        }
        (started.elapsed(), throttles)
    };
    let (took, throttles) = consume("slow");
    assert!(throttles.iter().any(|&t| t > 0), "a consumer over its quota sees throttle_time_ms > 0: {throttles:?}");
    let least = lower_bound(batch.len() * requests, rate, batch.len());
    assert!(took >= least, "consuming at {rate} B/s took {took:?}, less than {least:?}: the quota was not enforced");

    let (_, free) = consume("fast");
    assert!(free.iter().all(|&t| t == 0), "a client id without a quota is never throttled: {free:?}");
    let scrape = Scrape::fetch(broker.http_addr());
    assert!(scrape.value_or_zero("strom_client_quota_throttled_requests_total", &[("quota_type", "fetch")]) > 0.0);
    // Each consumer read the log once; throttled (empty) answers sent no bytes.
    let out = scrape.value_or_zero("strom_topic_bytes_out_total", &[("topic", "quota-fetch")]);
    assert_eq!(out, (2 * batch.len() * requests) as f64, "bytes out count only what was sent");
}

#[test]
fn a_client_over_its_request_percentage_is_muted_a_window_per_request_while_another_is_not() {
    let broker = BrokerProcess::start_with(&WINDOWS);
    let addr = broker.kafka_addr();
    // One millionth of a percent: any handling time is far over it.
    alter_ok(addr, &[("client-id", Some("busy"))], &[("request_percentage", 1e-6, false)]);
    let metadata = || kafka_protocol::messages::MetadataRequest::default().with_topics(None);
    let requests = 4;

    let mut busy = WireClient::connect_as(addr, "busy");
    let started = Instant::now();
    let throttles: Vec<i32> =
        (0..requests).map(|_| busy.send(&metadata(), wire::METADATA_VERSION).throttle_time_ms).collect();
    let took = started.elapsed();
    // Kafka bounds a request quota's throttle by one window (1 s here): each
    // answer says so, and the next request is read only after it.
    assert!(throttles.iter().all(|&t| t == 1000), "every request is throttled one window: {throttles:?}");
    let least = Duration::from_secs(requests as u64 - 1);
    assert!(took >= least, "{requests} requests took {took:?}, less than {least:?}: the connection was not muted");

    let mut other = WireClient::connect_as(addr, "other");
    let free: Vec<i32> =
        (0..requests).map(|_| other.send(&metadata(), wire::METADATA_VERSION).throttle_time_ms).collect();
    assert!(free.iter().all(|&t| t == 0), "a client id without a quota is never throttled: {free:?}");
    let scrape = Scrape::fetch(broker.http_addr());
    assert!(scrape.value_or_zero("strom_client_quota_throttle_time_ms_total", &[("quota_type", "request")]) >= 4000.0);
}

#[test]
fn client_quota_apis_need_alter_configs_and_describe_configs_on_the_cluster() {
    let broker = BrokerProcess::start_with(&[
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
    ]);
    let mut client = WireClient::connect(broker.kafka_addr());
    const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    let refused =
        alter(&mut client, vec![entry(&[("user", Some("alice"))], &[("producer_byte_rate", 10.0, false)])], false);
    assert_eq!(refused.entries.len(), 1);
    assert_eq!(refused.entries[0].error_code, CLUSTER_AUTHORIZATION_FAILED, "{:?}", refused.entries[0].error_message);
    let message = refused.entries[0].error_message.as_deref().unwrap_or("");
    assert!(message.contains("ALTER_CONFIGS"), "{message}");
    let described = describe(&mut client, &[], false);
    assert_eq!(described.error_code, CLUSTER_AUTHORIZATION_FAILED, "{:?}", described.error_message);
    assert!(described.error_message.as_deref().unwrap_or("").contains("DESCRIBE_CONFIGS"));
}

/// A connection to the SASL_PLAINTEXT listener on `port`, authenticated
/// with PLAIN as `user`, sending `client_id`.
fn sasl_client(port: u16, user: &str, password: &str, client_id: &str) -> WireClient {
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    let mut client = WireClient::connect_as(SocketAddr::from(([127, 0, 0, 1], port)), client_id);
    let handshake = client.send(&SaslHandshakeRequest::default().with_mechanism(s("PLAIN")), 1);
    assert_eq!(handshake.error_code, 0, "SaslHandshake PLAIN");
    let token = format!("\0{user}\0{password}").into_bytes();
    let auth = client.send(&SaslAuthenticateRequest::default().with_auth_bytes(token.into()), 2);
    assert_eq!(auth.error_code, 0, "PLAIN as {user}: {:?}", auth.error_message);
    client
}

#[test]
fn a_user_quota_applies_to_the_sasl_user_whatever_its_client_id_and_not_to_other_users() {
    let settings = [
        "listeners=PLAINTEXT://127.0.0.1:{KAFKA_PORT},SASL://127.0.0.1:{PORT_0}".to_string(),
        "advertised.listeners=PLAINTEXT://127.0.0.1:{KAFKA_PORT},SASL://127.0.0.1:{PORT_0}".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT".to_string(),
        "listener.name.sasl.sasl.enabled.mechanisms=PLAIN".to_string(),
        r#"listener.name.sasl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="bob-secret";"#.to_string(),
        WINDOWS[0].to_string(),
        WINDOWS[1].to_string(),
    ];
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start_with(&refs);
    let sasl = broker.extra_ports()[0];
    let addr = broker.kafka_addr();
    wire::create_topic_ok(&mut WireClient::connect(addr), "quota-users", 1, &[]);
    let rate = 64_000.0;
    alter_ok(addr, &[("user", Some("alice"))], &[("producer_byte_rate", rate, false)]);

    let batch = batch();
    let requests = 24;
    // alice over two connections with different client ids: one user, one quota.
    let mut alice =
        [sasl_client(sasl, "alice", "alice-secret", "a1"), sasl_client(sasl, "alice", "alice-secret", "a2")];
    let started = Instant::now();
    let throttles: Vec<i32> =
        (0..requests).map(|i| produce_throttle(&mut alice[i % 2], "quota-users", batch.clone())).collect();
    let took = started.elapsed();
    assert!(throttles.iter().any(|&t| t > 0), "alice over her quota sees throttle_time_ms > 0: {throttles:?}");
    // Two connections may each have one request's worth past the quota.
    let least = lower_bound(batch.len() * requests, rate, 2 * batch.len());
    assert!(took >= least, "alice's bytes at {rate} B/s took {took:?}, less than {least:?}");

    let mut bob = sasl_client(sasl, "bob", "bob-secret", "a1");
    let free: Vec<i32> = (0..requests).map(|_| produce_throttle(&mut bob, "quota-users", batch.clone())).collect();
    assert!(free.iter().all(|&t| t == 0), "bob has no quota, even with alice's client id: {free:?}");
}

/// Whether a new connection to `addr` is served: ApiVersions answered
/// (`false`: the broker closed it unanswered).
fn connection_served(addr: SocketAddr) -> bool {
    use kafka_protocol::messages::ApiVersionsRequest;
    let mut client = WireClient::connect(addr);
    client.write_frame(&wire::encode_request(&ApiVersionsRequest::default(), 3, 1));
    client.read_frame().is_some()
}

#[test]
fn connections_over_an_ips_connection_creation_rate_are_closed_unanswered() {
    let broker = BrokerProcess::start_with(&WINDOWS);
    let addr = broker.kafka_addr();
    assert!(connection_served(addr), "no quota yet");
    // One connection a second from 127.0.0.1, over a 1 s floor: a second
    // connection at once is over it.
    alter_ok(addr, &[("ip", Some("127.0.0.1"))], &[("connection_creation_rate", 1.0, false)]);
    let served: Vec<bool> = (0..5).map(|_| connection_served(addr)).collect();
    assert!(served.iter().any(|s| !s), "some of 5 connections at once are closed unanswered: {served:?}");
    let scrape = Scrape::fetch(broker.http_addr());
    assert!(scrape.value_or_zero("strom_client_quota_throttled_requests_total", &[("quota_type", "connection")]) > 0.0);

    // Without the quota every connection is served again.
    // Refused connections do not count: once the window has passed, one is served.
    let mut admin = common::wait_for("a connection served again", Duration::from_secs(60), || {
        use kafka_protocol::messages::ApiVersionsRequest;
        let mut client = WireClient::connect(addr);
        client.write_frame(&wire::encode_request(&ApiVersionsRequest::default(), 3, 1));
        client.read_frame().map(|_| client)
    });
    let response =
        alter(&mut admin, vec![entry(&[("ip", Some("127.0.0.1"))], &[("connection_creation_rate", 0.0, true)])], false);
    assert_eq!(response.entries[0].error_code, 0, "{:?}", response.entries[0].error_message);
    assert!((0..5).all(|_| connection_served(addr)), "connections are served once the quota is gone");
}

#[test]
fn topic_mutations_over_the_controller_mutation_rate_are_refused_from_v6_and_only_throttled_before() {
    use kafka_protocol::messages::CreateTopicsRequest;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
    let broker = BrokerProcess::start_with(&WINDOWS);
    let addr = broker.kafka_addr();
    alter_ok(addr, &[("client-id", None)], &[("controller_mutation_rate", 2.0, false)]);
    let create = |client_id: &str, prefix: &str, version: i16| {
        let topics = (0..3)
            .map(|i| {
                CreatableTopic::default()
                    .with_name(wire::topic_name(&format!("{prefix}-{i}")))
                    .with_num_partitions(4)
                    .with_replication_factor(1)
            })
            .collect();
        let request = CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(30_000);
        WireClient::connect_as(addr, client_id).send(&request, version)
    };
    // Strict (v7): the first topic's 4 partitions put the client over 2/s; the next two are refused.
    let strict = create("mutator", "strict", 7);
    let codes: Vec<i16> = strict.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, THROTTLING_QUOTA_EXCEEDED, THROTTLING_QUOTA_EXCEEDED], "{:?}", strict.topics);
    assert!(strict.throttle_time_ms > 0, "the answer carries the throttle");
    // Permissive (v5): every topic is created, the client is throttled.
    let permissive = create("old-client", "permissive", 5);
    assert!(permissive.topics.iter().all(|t| t.error_code == 0), "{:?}", permissive.topics);
    assert!(permissive.throttle_time_ms > 0);
    // The default client-id quota is measured per client id: a fresh one starts within it.
    let fresh = create("fresh", "fresh", 7);
    assert_eq!(fresh.topics[0].error_code, 0, "{:?}", fresh.topics[0]);
}
