//! Real Kafka clients follow leadership across failovers, with their own
//! retries only: librdkafka (confluent-kafka, e2e/python), franz-go
//! (e2e/go) and the Java client (e2e/java), each against a 3-broker cluster.
//!
//! Proves that, for each client, a producer (acks=all, the clients' default,
//! idempotent) acknowledges every record of a batch produced while the leader
//! of a partition has just been killed with SIGKILL, and of one produced
//! while the active controller has just been killed; and that a consumer group
//! member running throughout — its coordinator may move with the kills —
//! receives every acknowledged record.
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) to have built the
//! client programs; fails, saying so, when it has not.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{Cluster, create_topic};
use common::e2e::{Client, E2eTools};

const PARTITIONS: i32 = 3;
const CHUNK: usize = 1_500;

/// Fast failure detection so a test waits seconds, not Kafka's 9 s per kill.
const SETTINGS: &[&str] =
    &["broker.session.timeout.ms=3000", "broker.heartbeat.interval.ms=500", "replica.lag.time.max.ms=5000"];

fn clients_follow_leadership(client: Client) {
    let tools = E2eTools::load();
    let mut cluster = Cluster::start(3, &format!("clients-{}", client.name()), SETTINGS);
    let bootstrap = cluster.bootstrap();
    let topic = format!("follow-{}", client.name());
    create_topic(&bootstrap, &topic, PARTITIONS, 3, None, &[("min.insync.replicas", "2")]);
    cluster.wait_for_full_isr(&topic, PARTITIONS, Duration::from_secs(60));
    let mut consumer = client.consumer(&tools, "member", &bootstrap, &topic, "followers", &[]);

    client.produce(&tools, &bootstrap, &topic, 0, CHUNK, 50);

    // The leader of partition 0 dies; the next batch is produced while the
    // cluster has not yet noticed (session timeout) and then elects a new one.
    let leader = cluster.partition(&topic, 0).unwrap_or_else(|| cluster.fail("partition 0 is not listed")).leader;
    cluster.kill(leader);
    client.produce(&tools, &bootstrap, &topic, CHUNK, CHUNK, 50);
    let new_leader = cluster.wait_for_new_leader(&topic, 0, leader, Duration::from_secs(60));
    assert_ne!(new_leader, leader);
    cluster.restart(leader);
    cluster.wait_for_full_isr(&topic, PARTITIONS, Duration::from_secs(90));

    // The active controller dies (it also leads some partitions).
    let controller = cluster.wait_for_controller(&[], Duration::from_secs(30));
    cluster.kill(controller);
    client.produce(&tools, &bootstrap, &topic, 2 * CHUNK, CHUNK, 50);
    cluster.restart(controller);
    cluster.wait_for_full_isr(&topic, PARTITIONS, Duration::from_secs(90));

    let expected: BTreeSet<String> = (0..3 * CHUNK).map(|i| format!("value-{i}")).collect();
    consumer.wait_for("every acknowledged record consumed", Duration::from_secs(180), |state| {
        let seen: BTreeSet<String> = state.values().into_iter().collect();
        expected.is_subset(&seen).then_some(())
    });
    let state = consumer.stop();
    let seen: BTreeSet<String> = state.values().into_iter().collect();
    let unexpected: Vec<&String> = seen.difference(&expected).take(5).collect();
    assert!(unexpected.is_empty(), "{} consumed records nobody produced: {unexpected:?}", client.name());
}

#[test]
fn librdkafka_producer_and_consumer_follow_leadership_across_failovers() {
    clients_follow_leadership(Client::Python);
}

#[test]
fn franz_go_producer_and_consumer_follow_leadership_across_failovers() {
    clients_follow_leadership(Client::Go);
}

#[test]
fn java_producer_and_consumer_follow_leadership_across_failovers() {
    clients_follow_leadership(Client::Java);
}
