//! KIP-848 consumer groups (`group.protocol=consumer`) with three real
//! clients: librdkafka (confluent-kafka, `group.protocol=consumer`), franz-go
//! (`kgo.ServerSideBalancer()`) and the Java client, against a broker process.
//!
//! Proves, per client, that a group of 3 on 12 partitions settles on a
//! balanced, disjoint cover; that while a producer writes, members join and
//! leave (a fourth joins, one leaves, a fifth joins, another leaves) and the
//! group re-settles after each change without a stop-the-world rebalance;
//! and that with manual commits (a member commits a partition's position
//! before giving it up, and before it leaves) every record produced is
//! consumed exactly once by the group across all those changes.
//!
//! Needs `bash scripts/e2e-deps.sh` to have built the three client programs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::BrokerProcess;
use common::consumer_groups::consumer_protocol_settings;
use common::e2e::{
    Client, ClientProcess, ClientState, E2eTools, assert_each_consumed_once, is_balanced_cover, wait_group_consumed,
};
use common::wire::{WireClient, create_topic_ok};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, GroupId};
use kafka_protocol::protocol::StrBytes;

const PARTITIONS: i32 = 12;
const BATCHES: usize = 4;
const BATCH: usize = 5_000;
const SETTLE: Duration = Duration::from_secs(120);
const CONSUME: Duration = Duration::from_secs(300);

/// Waits until `members` own a balanced, disjoint cover of the partitions.
fn wait_balanced(members: &[ClientProcess], what: &str) {
    ClientProcess::wait_all(&members.iter().collect::<Vec<_>>(), what, SETTLE, |s| {
        let assignments: Vec<&BTreeSet<i32>> = s.iter().map(|s| &s.assignment).collect();
        is_balanced_cover(&assignments, PARTITIONS).then_some(())
    });
}

fn group_of_three_under_load_with_joins_and_leaves_consumes_every_record_once(client: Client) {
    let tools = E2eTools::load();
    let settings = consumer_protocol_settings();
    let broker = BrokerProcess::start_with(&settings.iter().map(String::as_str).collect::<Vec<_>>());
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("kip848-stream", "kip848-workers");
    let mut wire = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut wire, topic, PARTITIONS, &[]);
    let args = ["--group-protocol", "consumer", "--commit-on-revoke", "--commit-on-stop"];
    let start = |i: usize| client.consumer(&tools, &format!("member-{i}"), &bootstrap, topic, group, &args);

    let mut live: Vec<ClientProcess> = (0..3).map(start).collect();
    wait_balanced(&live, "3 members to own 4 of the 12 partitions each");
    // The client really speaks KIP-848: the group is a consumer-protocol group of 3.
    let described = wire
        .send(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_static_str(group))]),
            0,
        )
        .groups;
    assert_eq!(described[0].error_code, 0, "{} group is a consumer group: {:?}", client.name(), described[0]);
    assert_eq!(described[0].members.len(), 3, "{:?}", described[0]);
    let mut gone: Vec<(String, ClientState)> = Vec::new();
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            for b in 0..BATCHES {
                client.produce(&tools, &bootstrap, topic, b * BATCH, BATCH, 500);
            }
        });
        live.push(start(3));
        wait_balanced(&live, "4 members (member-3 joined) to own 3 partitions each");
        let mut leaving = live.remove(0);
        gone.push(("member-0".into(), leaving.stop()));
        wait_balanced(&live, "3 members (member-0 left) to own 4 partitions each");
        live.push(start(4));
        wait_balanced(&live, "4 members (member-4 joined) to own 3 partitions each");
        let mut leaving = live.remove(0);
        gone.push(("member-1".into(), leaving.stop()));
        wait_balanced(&live, "3 members (member-1 left) to own 4 partitions each");
        producer.join().expect("producer thread");
    });

    let total = BATCHES * BATCH;
    wait_group_consumed(&live.iter().collect::<Vec<_>>(), &gone, total, CONSUME);
    let names = ["member-2", "member-3", "member-4"];
    for (name, mut m) in names.iter().zip(live) {
        let state = m.stop();
        assert!(state.errors.is_empty(), "{name}: {:?}", state.errors);
        gone.push((name.to_string(), state));
    }
    for (name, s) in &gone {
        assert!(s.errors.is_empty(), "{name} reported errors: {:?}\nevents: {:?}", s.errors, s.events);
    }
    let consumed: Vec<(&str, &[_])> = gone.iter().map(|(n, s)| (n.as_str(), &s.records[..])).collect();
    assert_each_consumed_once(
        &format!("{} group (3 members, 2 joins, 2 leaves) on {PARTITIONS} partitions", client.name()),
        &consumed,
        0..total,
    );
}

#[test]
fn librdkafka_group_protocol_consumer_group_under_load_with_joins_and_leaves_consumes_every_record_once() {
    group_of_three_under_load_with_joins_and_leaves_consumes_every_record_once(Client::Python);
}

#[test]
fn franz_go_server_side_balancer_group_under_load_with_joins_and_leaves_consumes_every_record_once() {
    group_of_three_under_load_with_joins_and_leaves_consumes_every_record_once(Client::Go);
}

#[test]
fn java_group_protocol_consumer_group_under_load_with_joins_and_leaves_consumes_every_record_once() {
    group_of_three_under_load_with_joins_and_leaves_consumes_every_record_once(Client::Java);
}
