//! Kafka's ACL authorizer on a 3-broker cluster (`authorizer.class.name` set,
//! `allow.everyone.if.no.acl.found=false`), with the only principal clients
//! have without SASL or TLS client certificates: `User:ANONYMOUS`.
//!
//! Proves that `super.users` lets a principal do everything with no ACL;
//! that `kafka-acls.sh --add/--list/--remove` (Kafka 4.3's AclCommand, run as
//! bin/kafka-acls.sh runs it) work verbatim and what they add survives a
//! full cluster restart; and an authorization matrix over produce, fetch,
//! list offsets, metadata (listing and auto-creation), create/alter/delete
//! topic, configs (incremental and legacy, topic and group), DeleteRecords,
//! idempotent producer init and group join/commit/describe:
//! without the ACL the API answers Kafka's error code, with it the call
//! succeeds (on every broker, once the ACL is published); DENY overrides
//! ALLOW; prefixed ACLs cover the names they prefix; and a real client
//! (librdkafka's idempotent producer and a consumer) works where the ACLs
//! allow and gets Kafka's authorization error where they do not.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    BrokerId, CreateAclsRequest, CreateAclsResponse, CreatePartitionsRequest, DeleteAclsRequest, DeleteGroupsRequest,
    DeleteTopicsRequest, DescribeAclsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, ListOffsetsRequest,
    MetadataRequest, MetadataResponse, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

use rdkafka::producer::FutureRecord;

use common::clients::{ConsumedRecord, consume_to_end, delivery_result, numbered_records, produce_all, producer};
use common::cluster::{Cluster, FAST_FAILOVER, wait_until};
use common::e2e::{run_with_input, workspace_root};
use common::wire::{
    LIST_OFFSETS_VERSION, METADATA_VERSION, WireClient, create_topic, fetch, find_group_coordinator, init_producer_id,
    join_group, offset_commit, produce, record_batch, sync_group, topic_name,
};

const AUTHORIZER: &str = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";
const NO_ACL_DENIES: &str = "allow.everyone.if.no.acl.found=false";
const ANONYMOUS: &str = "User:ANONYMOUS";
/// How long an ACL may take to reach every broker, and a CLI command to run.
const TIMEOUT: Duration = Duration::from_secs(60);
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

// Kafka's wire codes (auth::acl).
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ANY: i8 = 1;
const READ: i8 = 3;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DELETE: i8 = 6;
const ALTER: i8 = 7;
const DESCRIBE: i8 = 8;
const ALTER_CONFIGS: i8 = 11;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// `bin/kafka-acls.sh ARGS`: Kafka 4.3's AclCommand on its tools classpath
/// (resolved into ~/.cache/strom by bench/kafka/run-kafka.sh). Returns stdout.
fn kafka_acls(args: &[&str]) -> String {
    let root = workspace_root();
    let out = Command::new("bash")
        .arg(root.join("bench/kafka/run-kafka.sh"))
        .arg("tools-classpath")
        .output()
        .expect("run bench/kafka/run-kafka.sh tools-classpath");
    assert!(out.status.success(), "run-kafka.sh tools-classpath failed: {}", String::from_utf8_lossy(&out.stderr));
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let classpath = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let java = std::env::var_os("JAVA_HOME")
        .map(|home| std::path::PathBuf::from(home).join("bin/java"))
        .unwrap_or_else(|| "java".into());
    let mut command = Command::new(java);
    command
        .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", classpath.trim()])
        .arg("org.apache.kafka.tools.AclCommand")
        .args(args);
    let (status, stdout, stderr) = run_with_input(&mut command, "", CLI_TIMEOUT);
    assert!(status.success(), "kafka-acls.sh {args:?} exited with {status}\n{stdout}\n{stderr}");
    stdout
}

/// One ACL as CreateAcls carries it.
fn acl(resource_type: i8, name: &str, pattern: i8, operation: i8, permission: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(ANONYMOUS))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

fn create_acls(addr: SocketAddr, acls: Vec<AclCreation>) -> CreateAclsResponse {
    WireClient::connect(addr).send(&CreateAclsRequest::default().with_creations(acls), 3)
}

/// Adds ACLs and asserts each was stored.
fn grant(addr: SocketAddr, acls: Vec<AclCreation>) {
    let response = create_acls(addr, acls);
    for r in &response.results {
        assert_eq!(r.error_code, 0, "CreateAcls: {:?}", r.error_message);
    }
}

/// Removes the ACLs exactly like `a`; returns how many were removed.
fn revoke(addr: SocketAddr, a: &AclCreation) -> usize {
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(a.resource_type)
        .with_resource_name_filter(Some(a.resource_name.clone()))
        .with_pattern_type_filter(a.resource_pattern_type)
        .with_principal_filter(Some(a.principal.clone()))
        .with_host_filter(Some(a.host.clone()))
        .with_operation(a.operation)
        .with_permission_type(a.permission_type);
    let response = WireClient::connect(addr).send(&DeleteAclsRequest::default().with_filters(vec![filter]), 3);
    let result = &response.filter_results[0];
    assert_eq!(result.error_code, 0, "DeleteAcls: {:?}", result.error_message);
    result.matching_acls.len()
}

/// Waits until `check` holds on every broker (an ACL reaches each as it publishes the metadata).
fn on_every_broker(cluster: &Cluster, what: &str, check: impl Fn(SocketAddr) -> bool) {
    for b in cluster.brokers() {
        let addr = b.kafka_addr();
        wait_until(&format!("{what} on broker {}", b.id), TIMEOUT, || check(addr).then_some(()));
    }
}

fn metadata(addr: SocketAddr, topics: Option<&[&str]>, auto_create: bool) -> MetadataResponse {
    let topics = topics.map(|list| {
        list.iter().map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t)))).collect::<Vec<_>>()
    });
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(auto_create)
        .with_include_topic_authorized_operations(true);
    WireClient::connect(addr).send(&request, METADATA_VERSION)
}

fn topic_error(addr: SocketAddr, topic: &str, auto_create: bool) -> i16 {
    let response = metadata(addr, Some(&[topic]), auto_create);
    response.topics.first().map(|t| t.error_code).unwrap_or(-100)
}

/// The broker leading `topic`-0 (the principal must be able to describe it).
fn leader(cluster: &Cluster, topic: &str) -> SocketAddr {
    wait_until(&format!("a leader of {topic}-0"), TIMEOUT, || {
        let response = metadata(cluster.broker(0).kafka_addr(), Some(&[topic]), false);
        let t = response.topics.first()?;
        let leader = t.partitions.first().map(|p| p.leader_id.0).filter(|l| *l >= 0 && t.error_code == 0)?;
        Some(cluster.broker(leader).kafka_addr())
    })
}

fn produce_error(addr: SocketAddr, topic: &str) -> i16 {
    produce(&mut WireClient::connect(addr), topic, 0, record_batch(&[b"v".to_vec()], 1_700_000_000_000)).error_code
}

fn list_offsets_error(addr: SocketAddr, topic: &str) -> i16 {
    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)]),
    ]);
    let response = WireClient::connect(addr).send(&request, LIST_OFFSETS_VERSION);
    response.topics[0].partitions[0].error_code
}

fn create_topic_error(addr: SocketAddr, topic: &str) -> i16 {
    create_topic(&mut WireClient::connect(addr), topic, 1, &[]).error_code
}

fn create_partitions_error(addr: SocketAddr, topic: &str, total: i32) -> i16 {
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default().with_name(topic_name(topic)).with_count(total).with_assignments(None),
        ])
        .with_timeout_ms(30_000);
    WireClient::connect(addr).send(&request, 3).results[0].error_code
}

fn delete_topic_error(addr: SocketAddr, topic: &str) -> i16 {
    let request = DeleteTopicsRequest::default().with_topic_names(vec![topic_name(topic)]).with_timeout_ms(30_000);
    WireClient::connect(addr).send(&request, 5).responses[0].error_code
}

fn describe_configs_error(addr: SocketAddr, topic: &str) -> i16 {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default().with_resource_type(2).with_resource_name(s(topic))]);
    WireClient::connect(addr).send(&request, 4).results[0].error_code
}

fn alter_configs_error(addr: SocketAddr, topic: &str) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default().with_resource_type(2).with_resource_name(s(topic)).with_configs(vec![
            AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(s("3600000"))),
        ]),
    ]);
    WireClient::connect(addr).send(&request, 1).responses[0].error_code
}

fn legacy_alter_configs_error(addr: SocketAddr, topic: &str) -> i16 {
    use kafka_protocol::messages::alter_configs_request as legacy;
    let request = kafka_protocol::messages::AlterConfigsRequest::default().with_resources(vec![
        legacy::AlterConfigsResource::default().with_resource_type(2).with_resource_name(s(topic)).with_configs(vec![
            legacy::AlterableConfig::default().with_name(s("retention.ms")).with_value(Some(s("3600000"))),
        ]),
    ]);
    WireClient::connect(addr).send(&request, 2).responses[0].error_code
}

fn delete_records_error(addr: SocketAddr, topic: &str) -> i16 {
    use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let request = kafka_protocol::messages::DeleteRecordsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(-1)]),
    ]);
    WireClient::connect(addr).send(&request, 2).topics[0].partitions[0].error_code
}

fn group_configs_error(addr: SocketAddr, group: &str) -> i16 {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default().with_resource_type(32).with_resource_name(s(group))]);
    WireClient::connect(addr).send(&request, 4).results[0].error_code
}

fn describe_group_error(addr: SocketAddr, group: &str) -> i16 {
    let request =
        DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]).with_include_authorized_operations(true);
    WireClient::connect(addr).send(&request, 5).groups[0].error_code
}

#[test]
fn acls_authorize_every_client_api_and_survive_a_full_restart_with_kafka_acls_cli() {
    let mut settings: Vec<&str> = FAST_FAILOVER.to_vec();
    settings.extend([AUTHORIZER, NO_ACL_DENIES]);
    let mut with_super = settings.clone();
    with_super.push("super.users=User:admin;User:ANONYMOUS");
    let mut cluster = Cluster::start(3, "acls", &with_super);
    let b0 = cluster.broker(0).kafka_addr();
    let bootstrap = cluster.bootstrap();

    // A super user needs no ACL: create, produce, describe.
    assert_eq!(create_topic_error(b0, "orders"), 0, "a super user creates a topic without any ACL");
    wait_until("a super user produces without any ACL", TIMEOUT, || {
        (produce_error(leader(&cluster, "orders"), "orders") == 0).then_some(())
    });

    // kafka-acls.sh --add, as a super user: ANONYMOUS may then manage ACLs itself.
    let added = kafka_acls(&[
        "--bootstrap-server",
        &bootstrap,
        "--add",
        "--allow-principal",
        ANONYMOUS,
        "--operation",
        "Alter",
        "--cluster",
    ]);
    assert!(
        added.contains("operation=ALTER") && added.contains("permissionType=ALLOW"),
        "kafka-acls --add said: {added}"
    );
    kafka_acls(&[
        "--bootstrap-server",
        &bootstrap,
        "--add",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--topic",
        "payments-",
        "--resource-pattern-type",
        "prefixed",
        "--group",
        "billing",
    ]);

    // Full cluster restart, without super users.
    for id in 0..3 {
        cluster.kill(id);
    }
    cluster.set_settings(&settings);
    cluster.restart_all();

    let listed = kafka_acls(&["--bootstrap-server", &bootstrap, "--list"]);
    for expected in [
        "resourceType=CLUSTER, name=kafka-cluster, patternType=LITERAL",
        "principal=User:ANONYMOUS, host=*, operation=ALTER, permissionType=ALLOW",
        "resourceType=TOPIC, name=payments-, patternType=PREFIXED",
        "resourceType=GROUP, name=billing, patternType=PREFIXED",
        "principal=User:alice, host=*, operation=READ, permissionType=ALLOW",
    ] {
        assert!(listed.contains(expected), "kafka-acls --list after a full restart lacks `{expected}`:\n{listed}");
    }
    let topic_acls = kafka_acls(&[
        "--bootstrap-server",
        &bootstrap,
        "--list",
        "--topic",
        "payments-",
        "--resource-pattern-type",
        "prefixed",
    ]);
    assert!(!topic_acls.contains("kafka-cluster"), "--list --topic shows only that resource:\n{topic_acls}");
    kafka_acls(&[
        "--bootstrap-server",
        &bootstrap,
        "--remove",
        "--force",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--group",
        "billing",
        "--resource-pattern-type",
        "prefixed",
    ]);
    let listed = kafka_acls(&["--bootstrap-server", &bootstrap, "--list"]);
    assert!(!listed.contains("name=billing"), "kafka-acls --remove left the group ACL:\n{listed}");
    assert!(listed.contains("name=payments-"), "kafka-acls --remove took more than it named:\n{listed}");

    // Bad input: each entry refused with which field, which value, what is allowed.
    let bad = create_acls(
        b0,
        vec![
            acl(TOPIC, "t", LITERAL, READ, ALLOW).with_principal(s("alice")),
            acl(GROUP, "g", LITERAL, WRITE, ALLOW),
            acl(TOPIC, "t", ANY, READ, ALLOW),
        ],
    );
    let messages: Vec<String> =
        bad.results.iter().map(|r| r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default()).collect();
    assert!(bad.results.iter().all(|r| r.error_code == code(ResponseError::InvalidRequest)), "{messages:?}");
    assert!(messages[0].contains("invalid principal `alice`"), "{messages:?}");
    assert!(messages[1].contains("operation WRITE does not apply to resource type GROUP"), "{messages:?}");
    assert!(messages[2].contains("invalid pattern type ANY"), "{messages:?}");

    let denied = code(ResponseError::TopicAuthorizationFailed);

    // Metadata and ListOffsets need DESCRIBE.
    on_every_broker(&cluster, "no DESCRIBE: orders refused", |a| topic_error(a, "orders", false) == denied);
    let all = metadata(b0, None, false);
    assert!(
        all.topics.iter().all(|t| t.name.as_ref().map(|n| n.as_str()) != Some("orders")),
        "listing all topics hides orders"
    );
    assert_eq!(list_offsets_error(b0, "orders"), denied, "ListOffsets without DESCRIBE");
    grant(b0, vec![acl(TOPIC, "orders", LITERAL, DESCRIBE, ALLOW)]);
    on_every_broker(&cluster, "DESCRIBE: orders listed", |a| {
        metadata(a, None, false).topics.iter().any(|t| t.name.as_ref().map(|n| n.as_str()) == Some("orders"))
    });
    let orders_leader = leader(&cluster, "orders");
    assert_eq!(list_offsets_error(orders_leader, "orders"), 0, "ListOffsets with DESCRIBE");
    let described = metadata(b0, Some(&["orders"]), false);
    assert_eq!(described.topics[0].topic_authorized_operations, 1 << DESCRIBE, "authorized operations: DESCRIBE only");

    // Produce needs WRITE; an idempotent producer needs IDEMPOTENT_WRITE or WRITE on some topic.
    assert_eq!(produce_error(orders_leader, "orders"), denied, "Produce with DESCRIBE only");
    let (init, _, _) = init_producer_id(&mut WireClient::connect(b0), None);
    assert_eq!(init, code(ResponseError::ClusterAuthorizationFailed), "InitProducerId without WRITE anywhere");
    let write = acl(TOPIC, "orders", LITERAL, WRITE, ALLOW);
    grant(b0, vec![write.clone()]);
    wait_until("Produce with WRITE", TIMEOUT, || {
        (produce_error(leader(&cluster, "orders"), "orders") == 0).then_some(())
    });
    on_every_broker(&cluster, "InitProducerId with WRITE on a topic", |a| {
        init_producer_id(&mut WireClient::connect(a), None).0 == 0
    });

    // DENY overrides ALLOW, and a prefixed DENY covers the topic.
    let deny = acl(TOPIC, "ord", PREFIXED, WRITE, DENY);
    grant(b0, vec![deny.clone()]);
    wait_until("Produce refused by a prefixed DENY", TIMEOUT, || {
        (produce_error(leader(&cluster, "orders"), "orders") == denied).then_some(())
    });
    assert_eq!(revoke(b0, &deny), 1, "DeleteAcls removes the DENY");
    wait_until("Produce allowed again", TIMEOUT, || {
        (produce_error(leader(&cluster, "orders"), "orders") == 0).then_some(())
    });

    // Fetch needs READ.
    let fetched = fetch(&mut WireClient::connect(leader(&cluster, "orders")), "orders", 0, 0);
    assert_eq!(fetched.error_code, denied, "Fetch without READ");
    grant(b0, vec![acl(TOPIC, "orders", LITERAL, READ, ALLOW)]);
    wait_until("Fetch with READ", TIMEOUT, || {
        let p = fetch(&mut WireClient::connect(leader(&cluster, "orders")), "orders", 0, 0);
        (p.error_code == 0 && p.records.as_ref().is_some_and(|r| !r.is_empty())).then_some(())
    });

    // CreateTopics needs CREATE (here by prefix), CreatePartitions ALTER,
    // DescribeConfigs DESCRIBE_CONFIGS (implied by ALTER_CONFIGS), DeleteTopics DELETE.
    assert_eq!(create_topic_error(b0, "team-a.events"), denied, "CreateTopics without CREATE");
    grant(b0, vec![acl(TOPIC, "team-a.", PREFIXED, CREATE, ALLOW)]);
    let created = create_topic(&mut WireClient::connect(b0), "team-a.events", 1, &[]);
    assert_eq!(created.error_code, 0, "CreateTopics with CREATE by prefix: {:?}", created.error_message);
    assert_eq!(created.topic_config_error_code, denied, "no DESCRIBE_CONFIGS: the configs are not shown");
    assert_eq!(created.configs, None);
    on_every_broker(&cluster, "CREATE by prefix", |a| {
        create_topic_error(a, "team-a.events") == code(ResponseError::TopicAlreadyExists)
    });
    assert_eq!(create_topic_error(b0, "team-b.events"), denied, "the prefix covers only its names");
    assert_eq!(create_partitions_error(b0, "team-a.events", 2), denied, "CreatePartitions without ALTER");
    assert_eq!(describe_configs_error(b0, "team-a.events"), denied, "DescribeConfigs without DESCRIBE_CONFIGS");
    assert_eq!(alter_configs_error(b0, "team-a.events"), denied, "IncrementalAlterConfigs without ALTER_CONFIGS");
    assert_eq!(delete_topic_error(b0, "team-a.events"), denied, "DeleteTopics without DELETE");
    assert_eq!(legacy_alter_configs_error(b0, "team-a.events"), denied, "AlterConfigs without ALTER_CONFIGS");
    assert_eq!(delete_records_error(b0, "team-a.events"), denied, "DeleteRecords without DELETE");
    let group_denied = code(ResponseError::GroupAuthorizationFailed);
    assert_eq!(group_configs_error(b0, "team-a.group"), group_denied, "group configs without DESCRIBE_CONFIGS");
    grant(
        b0,
        vec![
            acl(TOPIC, "team-a.", PREFIXED, ALTER, ALLOW),
            acl(TOPIC, "team-a.", PREFIXED, ALTER_CONFIGS, ALLOW),
            acl(TOPIC, "team-a.", PREFIXED, DELETE, ALLOW),
        ],
    );
    assert_eq!(create_partitions_error(b0, "team-a.events", 2), 0, "CreatePartitions with ALTER");
    assert_eq!(alter_configs_error(b0, "team-a.events"), 0, "IncrementalAlterConfigs with ALTER_CONFIGS");
    assert_eq!(describe_configs_error(b0, "team-a.events"), 0, "DescribeConfigs with ALTER_CONFIGS");
    assert_eq!(legacy_alter_configs_error(b0, "team-a.events"), 0, "AlterConfigs with ALTER_CONFIGS");
    let events_leader = leader(&cluster, "team-a.events");
    assert_eq!(delete_records_error(events_leader, "team-a.events"), 0, "DeleteRecords with DELETE");
    assert_eq!(delete_topic_error(b0, "team-a.events"), 0, "DeleteTopics with DELETE");

    // Metadata auto-creation needs CREATE as well as DESCRIBE.
    grant(b0, vec![acl(TOPIC, "auto-", PREFIXED, DESCRIBE, ALLOW)]);
    on_every_broker(&cluster, "auto-creation refused without CREATE", |a| topic_error(a, "auto-1", true) == denied);
    grant(b0, vec![acl(TOPIC, "auto-", PREFIXED, CREATE, ALLOW)]);
    wait_until("auto-creation with CREATE", TIMEOUT, || {
        let e = topic_error(b0, "auto-1", true);
        (e == 0 || e == code(ResponseError::LeaderNotAvailable)).then_some(())
    });

    // Groups: READ on the group to find its coordinator, join and commit; READ on the topic to commit.
    let group_denied = code(ResponseError::GroupAuthorizationFailed);
    assert_eq!(find_group_coordinator(&mut WireClient::connect(b0), "g1").0, group_denied, "FindCoordinator");
    assert_eq!(join_group(&mut WireClient::connect(b0), "g1", "", "consumer", &["range"]).error_code, group_denied);
    assert_eq!(describe_group_error(b0, "g1"), group_denied, "DescribeGroups without DESCRIBE");
    grant(b0, vec![acl(GROUP, "g1", LITERAL, READ, ALLOW)]);
    let coordinator = wait_until("the coordinator of g1", TIMEOUT, || {
        let (error, node, _) = find_group_coordinator(&mut WireClient::connect(b0), "g1");
        (error == 0).then(|| cluster.broker(node).kafka_addr())
    });
    let mut member = WireClient::connect(coordinator);
    let (member_id, generation) = wait_until("JoinGroup with READ", TIMEOUT, || {
        let first = join_group(&mut member, "g1", "", "consumer", &["range"]);
        if first.error_code != code(ResponseError::MemberIdRequired) {
            return None;
        }
        let second = join_group(&mut member, "g1", &first.member_id, "consumer", &["range"]);
        (second.error_code == 0).then(|| (second.member_id.to_string(), second.generation_id))
    });
    let (synced, _) = sync_group(&mut member, "g1", &member_id, generation, b"");
    assert_eq!(synced, 0, "SyncGroup with READ");
    let committed = offset_commit(&mut member, "g1", (&member_id, generation), "orders", 0, (1, ""));
    assert_eq!(committed, 0, "OffsetCommit with READ on group and topic");
    let other = offset_commit(&mut member, "g1", (&member_id, generation), "team-b.events", 0, (1, ""));
    assert_eq!(other, denied, "OffsetCommit for a topic without READ");
    assert_eq!(describe_group_error(coordinator, "g1"), 0, "DescribeGroups with READ (implies DESCRIBE)");
    assert_eq!(describe_group_error(coordinator, "g2"), group_denied, "DescribeGroups of another group");

    // Batched forms: FindCoordinator v4 and OffsetFetch v8 answer per key and
    // per group; ListGroups shows only groups the principal may describe;
    // DeleteGroups needs DELETE.
    let found = WireClient::connect(b0)
        .send(&FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![s("g1"), s("g2")]), 4);
    let by_key: Vec<(String, i16)> = found.coordinators.iter().map(|c| (c.key.to_string(), c.error_code)).collect();
    assert!(by_key.contains(&("g1".into(), 0)) && by_key.contains(&("g2".into(), group_denied)), "{by_key:?}");
    let fetched = member.send(
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default().with_group_id(GroupId(s("g1"))).with_topics(None),
            OffsetFetchRequestGroup::default().with_group_id(GroupId(s("g2"))).with_topics(None),
        ]),
        8,
    );
    let g1 = fetched.groups.iter().find(|g| g.group_id.as_str() == "g1").expect("g1 answered");
    assert_eq!(g1.error_code, 0);
    let topics: Vec<&str> = g1.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(topics, ["orders"], "all of g1's offsets the principal may describe");
    let g2 = fetched.groups.iter().find(|g| g.group_id.as_str() == "g2").expect("g2 answered");
    assert_eq!(g2.error_code, group_denied);
    let listed = member.send(&ListGroupsRequest::default(), 4);
    assert!(listed.groups.iter().all(|g| g.group_id.as_str() == "g1"), "ListGroups shows only g1");
    let deleted = member.send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g1"))]), 2);
    assert_eq!(deleted.results[0].error_code, group_denied, "DeleteGroups without DELETE");

    // DescribeCluster: ALTER on the cluster implies DESCRIBE; authorized operations on request.
    let cluster_info = WireClient::connect(b0)
        .send(&DescribeClusterRequest::default().with_include_cluster_authorized_operations(true), 1);
    assert_eq!(cluster_info.error_code, 0);
    assert_eq!(cluster_info.cluster_authorized_operations, (1 << ALTER) | (1 << DESCRIBE));

    // A real client (librdkafka): an idempotent producer writes where it may
    // and is refused, with Kafka's error, where it may not; a consumer reads
    // what was written.
    let idempotent = producer(&bootstrap, &[("enable.idempotence", "true"), ("message.timeout.ms", "30000")]);
    let records = numbered_records(0, 5, 1_700_000_000_000);
    let delivered = produce_all(&idempotent, "orders", &records);
    assert_eq!(delivered.len(), 5);
    // librdkafka refuses the record either when it is queued (once its
    // metadata says the topic is not authorized) or in its delivery report.
    let message = FutureRecord::to("team-b.events").key(&records[0].key).payload(&records[0].value);
    let reason = match idempotent.send_result(message) {
        Ok(delivery) => delivery_result(delivery).expect_err("a record for a topic without WRITE is not delivered"),
        Err((e, _)) => e.to_string(),
    };
    assert!(reason.contains("authorization failed"), "librdkafka's reason: {reason}");
    // librdkafka looks up its group's coordinator even when it only assigns
    // partitions: without DESCRIBE on the group it reports GROUP_AUTHORIZATION_FAILED.
    grant(b0, vec![acl(GROUP, "strom-test-reader", LITERAL, READ, ALLOW)]);
    on_every_broker(&cluster, "the reader's group", |a| {
        find_group_coordinator(&mut WireClient::connect(a), "strom-test-reader").0 == 0
    });
    let read = consume_to_end(&bootstrap, "orders", 1);
    let read: Vec<&ConsumedRecord> = read[&0].iter().filter(|r| records.iter().any(|t| r.matches(t))).collect();
    assert_eq!(read.len(), 5, "the consumer reads what the idempotent producer wrote");

    // DescribeAcls as an admin client sends it: the cluster's ACLs.
    let described = WireClient::connect(b0).send(
        &DescribeAclsRequest::default()
            .with_resource_type_filter(CLUSTER)
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY),
        3,
    );
    assert_eq!(described.error_code, 0, "{:?}", described.error_message);
    assert_eq!(described.resources.len(), 1, "one cluster resource");
    assert_eq!(described.resources[0].acls[0].operation, ALTER);
}
