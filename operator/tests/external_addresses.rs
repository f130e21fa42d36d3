//! Brokers advertise their own external addresses, against the real
//! control plane with the pod runner running the broker pods as local
//! processes: a two-broker cluster with a LoadBalancer external listener.
//! No cloud controller runs, so the test plays it and sets each per-broker
//! Service's `status.loadBalancer.ingress` to that broker's pod address
//! (where its external listener, 9099, listens: a load balancer in front
//! of one pod). Before that, `<cluster>-advertised` names no address and
//! the external listener lists no broker; after, the ConfigMap names each
//! broker's ingress, the brokers follow it without a restart, and
//! librdkafka, knowing only the external listener, creates a topic,
//! produces and reads every record back.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::kafka_load::read_all;
use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, eventually, plane_with_nodes};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use strom_crds::KafkaCluster;

const NS: &str = "extaddr";
const CLUSTER: &str = "events";
const WAIT: Duration = Duration::from_secs(180);
const TOPIC: &str = "from-outside";

/// (id, host:port) of every broker a client bootstrapping at `bootstrap` is told of.
fn brokers_seen(bootstrap: &str) -> Option<BTreeMap<i32, String>> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().ok()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(5)).ok()?;
    Some(metadata.brokers().iter().map(|b| (b.id(), format!("{}:{}", b.host(), b.port()))).collect())
}

async fn advertised_files(config_maps: &Api<ConfigMap>) -> Option<BTreeMap<String, String>> {
    config_maps.get_opt(&format!("{CLUSTER}-advertised")).await.ok()??.data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_advertise_their_load_balancer_addresses_on_the_external_listener() {
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start(&plane, NS, CLUSTER);
    let _operator = OperatorProcess::for_runner(&plane, &runner, NS, CLUSTER, 2, &["--resync-seconds", "2"]);
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "replicas": 2,
        "storage": { "size": "1Gi" },
        "listeners": { "external": { "type": "LoadBalancer" } },
    });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;
    let external: Vec<String> = (0..2).map(|n| format!("{}:9099", runner.pod_ip(n))).collect();

    // No load balancer address yet: no broker is advertised on the external listener.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let files = eventually("the advertised addresses ConfigMap", WAIT, || advertised_files(&config_maps)).await;
    for id in 0..2 {
        let file = files.get(&format!("broker-{id}.properties")).map(String::as_str).unwrap_or_default();
        assert!(file.ends_with("\nadvertised.listeners=\n"), "broker {id}: no address yet: {file:?}");
    }
    let seen = brokers_seen(&external[0]);
    assert_eq!(seen, Some(BTreeMap::new()), "no broker advertised before its address is known");

    // The "cloud" gives each broker's LoadBalancer an address.
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    for id in 0..2 {
        let status = json!({ "status": { "loadBalancer": { "ingress": [{ "ip": runner.pod_ip(id) }] } } });
        services
            .patch_status(&format!("{CLUSTER}-external-{id}"), &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("set the load balancer's ingress");
    }
    eventually("each broker's file to name its ingress", WAIT, || async {
        let files = advertised_files(&config_maps).await?;
        (0..2)
            .all(|id| {
                files.get(&format!("broker-{id}.properties"))
                    == Some(&format!("advertised.listeners=K8S_EXTERNAL://{}\n", external[id]))
            })
            .then_some(())
    })
    .await;
    let want: BTreeMap<i32, String> = (0..2).map(|id| (id, external[id as usize].clone())).collect();
    eventually("the external listener to list both brokers at their ingress", WAIT, || async {
        brokers_seen(&external[1]).filter(|seen| *seen == want)
    })
    .await;

    // A client outside the cluster: topic, produce and read back through the external listener only.
    let bootstrap = external[0].clone();
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &bootstrap).create().expect("an AdminClient");
    let topic = NewTopic::new(TOPIC, 2, TopicReplication::Fixed(2));
    let created = admin.create_topics([&topic], &AdminOptions::new()).await.expect("CreateTopics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", &bootstrap).set("acks", "all").create().expect("a producer");
    let values: Vec<String> = (0..20).map(|i| format!("record-{i}")).collect();
    for (i, value) in values.iter().enumerate() {
        let record = FutureRecord::to(TOPIC).partition(i as i32 % 2).key("k").payload(value);
        producer.send(record, Duration::from_secs(60)).await.expect("produce through the external listener");
    }
    let read = read_all(&bootstrap, TOPIC, 2);
    let mut got: Vec<String> = read.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
    got.sort();
    let mut sent = values.clone();
    sent.sort();
    assert_eq!(got, sent, "every record read back through the external listener");
}
