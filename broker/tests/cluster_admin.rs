//! The `Admin` gRPC service (internal port) on a 3-broker cluster, as the
//! operator uses it: describe the cluster and topics, create a topic
//! (validate-only first), refuse a bad one with the Kafka error code, grow
//! and configure it, judge whether a broker may restart, bring preferred
//! leaders back after a restart, and delete the topic; and that the gRPC
//! path refuses what Kafka's CreateTopics refuses (0 partitions, a
//! replication factor above the live brokers) with the same code and text.

mod common;

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use strom_proto::admin::admin_client::AdminClient;
use strom_proto::admin::{
    AlterTopicConfigsRequest, CreatePartitionsRequest, CreateTopicRequest, DeleteTopicRequest, DescribeClusterRequest,
    DescribeTopicsRequest, ElectLeadersRequest, ElectionType, IsSafeToRestartRequest, PartitionRef,
};
use tonic::transport::Channel;

use common::BrokerProcess;
use common::cluster::{Cluster, FAST_FAILOVER, wait_until};
use common::wire::{CREATE_TOPICS_VERSION, WireClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

const TIMEOUT: Duration = Duration::from_secs(120);

fn code(e: ResponseError) -> i32 {
    e.code().into()
}

#[test]
fn admin_api_creates_topics_judges_restarts_and_elects_preferred_leaders() {
    let mut cluster = Cluster::start(3, "admin", FAST_FAILOVER);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let mut admin: AdminClient<Channel> = AdminClient::new(runtime.block_on(async { cluster.operator_channel(0) }));
    let controller = cluster.wait_for_controller(&[], TIMEOUT);

    let described = runtime.block_on(admin.describe_cluster(DescribeClusterRequest {})).expect("DescribeCluster");
    let described = described.into_inner();
    assert_eq!(described.controller_id, controller, "{described:?}");
    assert_eq!(described.brokers.iter().filter(|b| !b.fenced).count(), 3, "{described:?}");
    assert!(described.offline_partitions.is_empty(), "{described:?}");

    let create = CreateTopicRequest {
        name: "orders".into(),
        num_partitions: 3,
        replication_factor: 3,
        configs: [("min.insync.replicas".to_string(), "2".to_string())].into(),
        validate_only: true,
        ..Default::default()
    };
    let checked = runtime.block_on(admin.create_topic(create.clone())).expect("CreateTopic").into_inner();
    assert_eq!((checked.error_code, checked.assignments.len()), (0, 3), "{checked:?}");
    let topics = runtime
        .block_on(admin.describe_topics(DescribeTopicsRequest { names: vec!["orders".into()] }))
        .expect("DescribeTopics")
        .into_inner();
    assert_eq!(topics.topics[0].error_code, code(ResponseError::UnknownTopicOrPartition), "validate_only created it");

    let created = runtime
        .block_on(admin.create_topic(CreateTopicRequest { validate_only: false, ..create.clone() }))
        .expect("CreateTopic")
        .into_inner();
    assert_eq!(created.error_code, 0, "{created:?}");
    assert!(created.assignments.iter().all(|a| a.replicas.len() == 3), "{created:?}");
    let again = runtime.block_on(admin.create_topic(CreateTopicRequest { validate_only: false, ..create })).unwrap();
    assert_eq!(again.into_inner().error_code, code(ResponseError::TopicAlreadyExists));
    let too_wide =
        CreateTopicRequest { name: "wide".into(), num_partitions: 1, replication_factor: 4, ..Default::default() };
    let refused = runtime.block_on(admin.create_topic(too_wide)).expect("CreateTopic").into_inner();
    assert_eq!(refused.error_code, code(ResponseError::InvalidReplicationFactor), "{refused:?}");
    assert!(!refused.error_message.is_empty());

    let grown = runtime
        .block_on(admin.create_partitions(CreatePartitionsRequest {
            name: "orders".into(),
            total: 4,
            ..Default::default()
        }))
        .expect("CreatePartitions")
        .into_inner();
    assert_eq!(grown.error_code, 0, "{grown:?}");
    let configs =
        [("min.insync.replicas".to_string(), "2".to_string()), ("retention.ms".to_string(), "3600000".to_string())];
    let altered = runtime
        .block_on(admin.alter_topic_configs(AlterTopicConfigsRequest {
            name: "orders".into(),
            configs: configs.clone().into(),
            validate_only: false,
        }))
        .expect("AlterTopicConfigs")
        .into_inner();
    assert_eq!(altered.error_code, 0, "{altered:?}");
    cluster.wait_for_full_isr("orders", 4, TIMEOUT);

    let safe =
        runtime.block_on(admin.is_safe_to_restart(IsSafeToRestartRequest { broker_id: 1 })).unwrap().into_inner();
    assert!(safe.safe, "every ISR has 3 of min 2 and all voters are up: {safe:?}");

    // With broker 2 down, restarting broker 1 would leave ISRs of 1 and a quorum of 1.
    cluster.kill(2);
    wait_until("broker 2 to be fenced", TIMEOUT, || {
        let d = runtime.block_on(admin.describe_cluster(DescribeClusterRequest {})).ok()?.into_inner();
        d.brokers.iter().any(|b| b.broker_id == 2 && b.fenced).then_some(())
    });
    // Each leader drops broker 2 from its ISRs on its own schedule: the
    // answer says no as soon as one partition (say of __consumer_offsets,
    // RF 2) is at risk, and names `orders` once its leaders have shrunk too.
    let unsafe_now = wait_until("IsSafeToRestart(1) to say no for every `orders` partition", TIMEOUT, || {
        let r = runtime.block_on(admin.is_safe_to_restart(IsSafeToRestartRequest { broker_id: 1 })).ok()?.into_inner();
        let orders_at_risk = r.at_risk_partitions.iter().filter(|p| p.topic == "orders").count();
        (!r.safe && orders_at_risk == 4).then_some(r)
    });
    assert!(unsafe_now.reason.contains("min.insync.replicas=2"), "{unsafe_now:?}");
    assert!(unsafe_now.reason.contains("controller voter"), "{unsafe_now:?}");
    let at_risk = unsafe_now.at_risk_partitions.iter().filter(|p| p.topic == "orders").count();
    assert_eq!(at_risk, 4, "{unsafe_now:?}");

    // Broker 2 comes back as a follower everywhere; a preferred election gives it its partitions back.
    cluster.restart(2);
    cluster.wait_for_full_isr("orders", 4, TIMEOUT);
    let elected = runtime
        .block_on(admin.elect_leaders(ElectLeadersRequest {
            election_type: ElectionType::Preferred.into(),
            partitions: (0..4).map(|partition| PartitionRef { topic: "orders".into(), partition }).collect(),
        }))
        .expect("ElectLeaders")
        .into_inner();
    let fine = [0, code(ResponseError::ElectionNotNeeded)];
    assert!(elected.results.iter().all(|r| fine.contains(&r.error_code)), "{elected:?}");
    wait_until("every partition of orders to be led by its preferred replica", TIMEOUT, || {
        let views = cluster.agreed_partitions_excluding("orders", 4, &[])?;
        views.iter().all(|v| v.leader == v.replicas[0]).then_some(())
    });

    let topics = runtime
        .block_on(admin.describe_topics(DescribeTopicsRequest { names: vec!["orders".into()] }))
        .expect("DescribeTopics")
        .into_inner();
    let orders = &topics.topics[0];
    assert_eq!((orders.partitions.len(), orders.topic_id.len()), (4, 16), "{orders:?}");
    assert_eq!(orders.configs.get("retention.ms").map(String::as_str), Some("3600000"), "{orders:?}");

    let deleted =
        runtime.block_on(admin.delete_topic(DeleteTopicRequest { name: "orders".into() })).expect("DeleteTopic");
    assert_eq!(deleted.into_inner().error_code, 0);
    let gone = runtime.block_on(admin.delete_topic(DeleteTopicRequest { name: "orders".into() })).unwrap();
    assert_eq!(gone.into_inner().error_code, code(ResponseError::UnknownTopicOrPartition));
}

/// Kafka's CreateTopics for one topic: (error code, error message).
fn kafka_create_topic(client: &mut WireClient, name: &str, partitions: i32, replication_factor: i16) -> (i32, String) {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor);
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
    let response = client.send(&request, CREATE_TOPICS_VERSION);
    let result = &response.topics[0];
    (result.error_code.into(), result.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default())
}

#[test]
fn grpc_create_topic_refuses_what_kafka_refuses_with_the_same_text() {
    let broker = BrokerProcess::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let endpoint = format!("http://{}", broker.internal_addr());
    let mut admin = runtime
        .block_on(AdminClient::connect(endpoint))
        .expect("connect to the single node's internal port (plain, loopback)");
    let mut kafka = WireClient::connect(broker.kafka_addr());
    for (name, partitions, replication_factor, error) in [
        ("no-partitions", 0, 1, ResponseError::InvalidPartitions),
        ("too-wide", 1, 2, ResponseError::InvalidReplicationFactor),
    ] {
        let (kafka_code, kafka_message) = kafka_create_topic(&mut kafka, name, partitions, replication_factor);
        let grpc = runtime
            .block_on(admin.create_topic(CreateTopicRequest {
                name: name.into(),
                num_partitions: partitions,
                replication_factor: replication_factor.into(),
                ..Default::default()
            }))
            .expect("CreateTopic")
            .into_inner();
        assert_eq!(kafka_code, code(error), "Kafka: {kafka_message}");
        assert_eq!((grpc.error_code, grpc.error_message.as_str()), (kafka_code, kafka_message.as_str()), "{name}");
    }
    assert!(
        runtime
            .block_on(
                admin.describe_topics(DescribeTopicsRequest { names: vec!["no-partitions".into(), "too-wide".into()] })
            )
            .expect("DescribeTopics")
            .into_inner()
            .topics
            .iter()
            .all(|t| t.error_code == code(ResponseError::UnknownTopicOrPartition)),
        "nothing was created"
    );
}
