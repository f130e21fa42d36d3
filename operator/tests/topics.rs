//! KafkaTopics end to end: a 3-broker Strom cluster runs as local processes,
//! the operator reaches it through `--admin-override`, and every effect is
//! checked with a Kafka client (librdkafka) against the brokers.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{LocalBrokers, OperatorProcess, eventually, operator_admin, plane_with_namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};

const NS: &str = "apps";
const WAIT: Duration = Duration::from_secs(90);

/// (leader, replicas, isr) of one partition, as a Kafka client sees it.
type PartitionView = (i32, Vec<i32>, Vec<i32>);

/// Every partition of `topic` as a Kafka client sees it; `None` when the topic is unknown.
fn client_view(brokers: &LocalBrokers, topic: &str) -> Option<Vec<PartitionView>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers.bootstrap())
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("a consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).ok()?;
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    let mut partitions: Vec<_> = t.partitions().iter().map(|p| (p.id(), p)).collect();
    partitions.sort_by_key(|(id, _)| *id);
    Some(partitions.into_iter().map(|(_, p)| (p.leader(), p.replicas().to_vec(), p.isr().to_vec())).collect())
}

fn admin(brokers: &LocalBrokers) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", brokers.bootstrap()).create().expect("an admin client")
}

async fn topic_config(brokers: &LocalBrokers, topic: &str, key: &str) -> Option<String> {
    let results =
        admin(brokers).describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()).await.ok()?;
    let resource = results.into_iter().next()?.ok()?;
    resource.get(key).and_then(|entry| entry.value.clone())
}

fn kafka_topic(name: &str, spec: serde_json::Value) -> KafkaTopic {
    serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaTopic",
        "metadata": { "name": name }, "spec": spec,
    }))
    .expect("a KafkaTopic")
}

async fn ready_status(topics: &Api<KafkaTopic>, name: &str, partitions: usize) -> strom_crds::KafkaTopicStatus {
    eventually(&format!("KafkaTopic {name} to be Ready with {partitions} partitions"), WAIT, || async {
        let t = topics.get_opt(name).await.ok().flatten()?;
        let status = t.status?;
        let ready = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && status.observed_generation == t.metadata.generation && status.partitions.len() == partitions)
            .then_some(status)
    })
    .await
}

async fn wait_gone(topics: &Api<KafkaTopic>, name: &str) {
    eventually(&format!("KafkaTopic {name} to be gone (finalizer done)"), WAIT, || async {
        matches!(topics.get_opt(name).await, Ok(None)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_topics_create_grow_reconfigure_and_delete_topics_in_a_live_cluster() {
    let brokers = LocalBrokers::start(3);
    let (plane, client) = plane_with_namespace(NS).await;
    brokers.install_ca(&client, NS, "events").await;
    let override_arg = format!("{NS}/events={}", brokers.admin_addresses());
    let _operator = OperatorProcess::start(
        &plane,
        &["--namespaces", NS, "--no-leader-election", "--admin-override", &override_arg, "--resync-seconds", "2"],
    );

    // A topic a client created before any KafkaTopic names it.
    let legacy = NewTopic::new("legacy", 2, TopicReplication::Fixed(3));
    admin(&brokers).create_topics([&legacy], &AdminOptions::new()).await.expect("create topic legacy");
    let unmanaged = NewTopic::new("client-only", 1, TopicReplication::Fixed(1));
    admin(&brokers).create_topics([&unmanaged], &AdminOptions::new()).await.expect("create topic client-only");

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let cluster: KafkaCluster = serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": { "name": "events" }, "spec": { "replicas": 3 },
    }))
    .expect("a KafkaCluster");
    clusters.create(&PostParams::default(), &cluster).await.expect("create the KafkaCluster");
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    let pp = PostParams::default();
    topics
        .create(
            &pp,
            &kafka_topic(
                "orders",
                json!({ "clusterRef": "events", "partitions": 6, "replicationFactor": 3, "config": { "retention.ms": "3600000" } }),
            ),
        )
        .await
        .expect("create KafkaTopic orders");

    // Created with balanced preferred leaders; the status shows what clients see.
    let status = ready_status(&topics, "orders", 6).await;
    assert_eq!(status.created_by_operator, Some(true));
    assert_eq!(status.topic_name.as_deref(), Some("orders"));
    let view = eventually("a leader for every partition of orders", WAIT, || async {
        client_view(&brokers, "orders").filter(|v| v.len() == 6 && v.iter().all(|p| p.0 >= 0 && p.2.len() == 3))
    })
    .await;
    let mut preferred: BTreeMap<i32, usize> = BTreeMap::new();
    for (partition, (_, replicas, _)) in view.iter().enumerate() {
        let unique: std::collections::BTreeSet<_> = replicas.iter().collect();
        assert_eq!(unique.len(), 3, "partition {partition}: three distinct replicas {replicas:?}");
        *preferred.entry(replicas[0]).or_default() += 1;
    }
    assert_eq!(preferred, BTreeMap::from([(0, 2), (1, 2), (2, 2)]), "preferred leaders balanced over 3 brokers");
    for p in &status.partitions {
        let (_, replicas, _) = &view[p.partition as usize];
        assert_eq!(&p.replicas, replicas, "status replicas of partition {}", p.partition);
        assert!(p.leader >= 0 && p.isr.len() == 3, "status of partition {}: {p:?}", p.partition);
    }
    assert_eq!(topic_config(&brokers, "orders", "retention.ms").await.as_deref(), Some("3600000"));

    // Grow and reconfigure.
    let patch =
        json!({ "spec": { "partitions": 8, "config": { "retention.ms": "7200000", "max.message.bytes": "2000000" } } });
    topics.patch("orders", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch orders");
    ready_status(&topics, "orders", 8).await;
    let view = eventually("orders to have 8 partitions", WAIT, || async {
        client_view(&brokers, "orders").filter(|v| v.len() == 8 && v.iter().all(|p| p.0 >= 0))
    })
    .await;
    assert!(view.iter().all(|(_, replicas, _)| replicas.len() == 3), "new partitions keep 3 replicas: {view:?}");
    eventually("the new config", WAIT, || async {
        let retention = topic_config(&brokers, "orders", "retention.ms").await?;
        let max = topic_config(&brokers, "orders", "max.message.bytes").await?;
        (retention == "7200000" && max == "2000000").then_some(())
    })
    .await;
    // Drift: a client changes the topic's config behind the operator's back; it is set back and reported.
    let tool = operator_admin(&client, NS, "events", &brokers.admin_addresses()).await;
    let drifted = BTreeMap::from([
        ("retention.ms".to_string(), "1000".to_string()),
        ("max.message.bytes".to_string(), "2000000".to_string()),
    ]);
    tool.alter_topic_configs("orders", drifted).await.expect("change the topic's config behind the operator");
    let corrected = eventually("the drifted config to be set back and reported", WAIT, || async {
        let retention = topic_config(&brokers, "orders", "retention.ms").await?;
        let report = topics.get("orders").await.ok()?.status?.last_drift_correction?;
        (retention == "7200000").then_some(report)
    })
    .await;
    assert!(corrected.contains("retention.ms was 1000 (spec 7200000)"), "{corrected}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers.bootstrap())
        .set("acks", "all")
        .create()
        .expect("a producer");
    producer
        .send(FutureRecord::to("orders").partition(7).key("k").payload("on a new partition"), Duration::from_secs(30))
        .await
        .expect("produce to a grown partition");

    // Adopted: configured by its KafkaTopic, never deleted with it.
    topics
        .create(
            &pp,
            &kafka_topic("legacy", json!({ "clusterRef": "events", "partitions": 2, "replicationFactor": 3, "config": { "retention.ms": "60000" } })),
        )
        .await
        .expect("create KafkaTopic legacy");
    let status = ready_status(&topics, "legacy", 2).await;
    assert_eq!(status.created_by_operator, Some(false), "legacy existed before its KafkaTopic");
    eventually("legacy's config", WAIT, || async {
        (topic_config(&brokers, "legacy", "retention.ms").await? == "60000").then_some(())
    })
    .await;

    // Retain keeps the topic when its KafkaTopic goes.
    topics
        .create(
            &pp,
            &kafka_topic(
                "audit",
                json!({ "clusterRef": "events", "topicName": "audit.log", "partitions": 1, "replicationFactor": 2, "deletionPolicy": "Retain" }),
            ),
        )
        .await
        .expect("create KafkaTopic audit");
    ready_status(&topics, "audit", 1).await;

    // A second KafkaTopic for the same topic is refused in its status, and deleting it leaves the topic.
    topics
        .create(
            &pp,
            &kafka_topic(
                "orders-again",
                json!({ "clusterRef": "events", "topicName": "orders", "partitions": 9, "replicationFactor": 3 }),
            ),
        )
        .await
        .expect("create KafkaTopic orders-again");
    let conflict = eventually("a Conflict condition on orders-again", WAIT, || async {
        let status = topics.get_opt("orders-again").await.ok().flatten()?.status?;
        status.conditions.into_iter().find(|c| c.type_ == "Ready" && c.reason == "Conflict")
    })
    .await;
    assert!(conflict.message.contains("already managed by KafkaTopic orders"), "{}", conflict.message);
    topics.delete("orders-again", &DeleteParams::default()).await.expect("delete orders-again");
    wait_gone(&topics, "orders-again").await;
    assert_eq!(client_view(&brokers, "orders").map(|v| v.len()), Some(8), "orders keeps its 8 partitions");

    for name in ["orders", "legacy", "audit"] {
        topics.delete(name, &DeleteParams::default()).await.unwrap_or_else(|e| panic!("delete KafkaTopic {name}: {e}"));
    }
    for name in ["orders", "legacy", "audit"] {
        wait_gone(&topics, name).await;
    }
    eventually("topic orders to be deleted from the cluster", WAIT, || async {
        client_view(&brokers, "orders").is_none().then_some(())
    })
    .await;
    assert!(client_view(&brokers, "audit.log").is_some(), "deletionPolicy Retain keeps audit.log");
    assert_eq!(client_view(&brokers, "legacy").map(|v| v.len()), Some(2), "an adopted topic is not deleted");
    assert!(client_view(&brokers, "client-only").is_some(), "a topic without a KafkaTopic is left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_whose_replication_factor_exceeds_the_brokers_says_so_in_its_status() {
    let brokers = LocalBrokers::start(1);
    let (plane, client) = plane_with_namespace(NS).await;
    brokers.install_ca(&client, NS, "solo").await;
    let override_arg = format!("{NS}/solo={}", brokers.admin_addresses());
    let _operator = OperatorProcess::start(&plane, &["--no-leader-election", "--admin-override", &override_arg]);
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let cluster: KafkaCluster = serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": { "name": "solo" }, "spec": { "replicas": 1 },
    }))
    .expect("a KafkaCluster");
    clusters.create(&PostParams::default(), &cluster).await.expect("create the KafkaCluster");
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    topics
        .create(
            &PostParams::default(),
            &kafka_topic("wide", json!({ "clusterRef": "solo", "partitions": 1, "replicationFactor": 3 })),
        )
        .await
        .expect("create KafkaTopic wide");
    let ready = eventually("a NotEnoughBrokers condition", WAIT, || async {
        let status = topics.get_opt("wide").await.ok().flatten()?.status?;
        status.conditions.into_iter().find(|c| c.type_ == "Ready" && c.reason == "NotEnoughBrokers")
    })
    .await;
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("replication factor 3") && ready.message.contains("only 1"), "{}", ready.message);
    assert!(client_view(&brokers, "wide").is_none(), "nothing was created");

    // A KafkaTopic naming a cluster that does not exist says that.
    topics
        .create(
            &PostParams::default(),
            &kafka_topic("orphan", json!({ "clusterRef": "nowhere", "partitions": 1, "replicationFactor": 1 })),
        )
        .await
        .expect("create KafkaTopic orphan");
    let condition = eventually("a ClusterNotFound condition", WAIT, || async {
        let status = topics.get_opt("orphan").await.ok().flatten()?.status?;
        status.conditions.into_iter().find(|c| c.type_ == "Ready" && c.reason == "ClusterNotFound")
    })
    .await;
    assert!(condition.message.contains("nowhere"), "{}", condition.message);
    // Deleting it needs no cluster: the finalizer lets go.
    topics.delete("orphan", &DeleteParams::default()).await.expect("delete orphan");
    wait_gone(&topics, "orphan").await;

    // A cluster whose brokers cannot be reached (no pod runs here): the
    // topic's status says so rather than staying empty.
    let ghost: KafkaCluster = serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": { "name": "ghost" }, "spec": { "replicas": 1 },
    }))
    .expect("a KafkaCluster");
    clusters.create(&PostParams::default(), &ghost).await.expect("create the KafkaCluster ghost");
    topics
        .create(
            &PostParams::default(),
            &kafka_topic("haunted", json!({ "clusterRef": "ghost", "partitions": 1, "replicationFactor": 1 })),
        )
        .await
        .expect("create KafkaTopic haunted");
    let condition = eventually("a ClusterUnreachable condition", WAIT, || async {
        let status = topics.get_opt("haunted").await.ok().flatten()?.status?;
        status.conditions.into_iter().find(|c| c.type_ == "Ready" && c.reason == "ClusterUnreachable")
    })
    .await;
    assert_eq!(condition.status, "False");
    assert!(condition.message.contains("admin API cannot be reached"), "{}", condition.message);
}
