//! KIP-848 features of the Java client (kafka-clients 4.x,
//! `group.protocol=consumer`) against a broker process.
//!
//! Proves that a `SubscriptionPattern` (a regex the broker resolves) is
//! served: the member is assigned the matching topics only, and a topic
//! created after it subscribed that matches is assigned and consumed too;
//! and that a static member (`group.instance.id`) that closes stays in the
//! group with epoch -2, its partitions kept for it, and on restart gets the
//! same partitions back with no group epoch bump (no rebalance).
//!
//! Needs `bash scripts/e2e-deps.sh` to have compiled e2e/java.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::BrokerProcess;
use common::consumer_groups::consumer_protocol_settings;
use common::e2e::{Client, ClientProcess, E2eTools, assert_each_consumed_once, is_balanced_cover};
use common::wire::{WireClient, create_topic_ok};
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, GroupId};
use kafka_protocol::protocol::StrBytes;

/// Upper bound for a group to settle or records to arrive.
const SETTLE: Duration = Duration::from_secs(120);

/// The topic names of a member's target assignment, as ConsumerGroupDescribe reports it.
fn described_topics(client: &mut WireClient, group: &str) -> (Option<String>, Vec<String>) {
    let groups = client
        .send(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_string(group.into()))]),
            0,
        )
        .groups;
    assert_eq!(groups[0].error_code, 0, "{:?}", groups[0].error_message);
    assert_eq!(groups[0].members.len(), 1, "one member: {groups:?}");
    let m = &groups[0].members[0];
    let mut topics: Vec<String> =
        m.target_assignment.topic_partitions.iter().map(|t| t.topic_name.0.to_string()).collect();
    topics.sort();
    (m.subscribed_topic_regex.as_ref().map(|r| r.to_string()), topics)
}

#[test]
fn java_subscription_pattern_is_resolved_by_the_broker_and_picks_up_a_topic_created_later() {
    let tools = E2eTools::load();
    let settings = consumer_protocol_settings();
    let broker = BrokerProcess::start_with(&settings.iter().map(String::as_str).collect::<Vec<_>>());
    let bootstrap = broker.bootstrap();
    let group = "kip848-regex";
    let mut wire = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut wire, "pay-eu", 3, &[]);
    create_topic_ok(&mut wire, "orders", 2, &[]);
    Client::Java.produce(&tools, &bootstrap, "pay-eu", 0, 100, 10);
    Client::Java.produce(&tools, &bootstrap, "orders", 5000, 50, 10);
    let args = ["--group-protocol", "consumer", "--pattern", "pay-.*"];
    let mut member = Client::Java.consumer(&tools, "member", &bootstrap, "pay-eu", group, &args);
    member.wait_for("the 100 records of pay-eu", SETTLE, |s| (s.records.len() >= 100).then_some(()));
    assert_eq!(described_topics(&mut wire, group), (Some("pay-.*".to_string()), vec!["pay-eu".to_string()]));

    // A topic created after the member subscribed, which the regex matches.
    create_topic_ok(&mut wire, "pay-us", 2, &[]);
    Client::Java.produce(&tools, &bootstrap, "pay-us", 100, 60, 10);
    member.wait_for("the 60 records of pay-us, created later", SETTLE, |s| (s.records.len() >= 160).then_some(()));
    assert_eq!(
        described_topics(&mut wire, group),
        (Some("pay-.*".to_string()), vec!["pay-eu".to_string(), "pay-us".to_string()])
    );
    let state = member.stop();
    assert_each_consumed_once("the pattern subscriber (never orders)", &[("member", &state.records)], 0..160);
}

fn describe(client: &mut WireClient, group: &str) -> DescribedGroup {
    let mut groups = client
        .send(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_string(group.into()))]),
            0,
        )
        .groups;
    assert_eq!(groups[0].error_code, 0, "{:?}", groups[0].error_message);
    groups.remove(0)
}

/// Each member's (epoch, assigned partitions), by instance id.
fn members_by_instance(group: &DescribedGroup) -> BTreeMap<String, (i32, BTreeSet<i32>)> {
    group
        .members
        .iter()
        .map(|m| {
            let parts = m.assignment.topic_partitions.iter().flat_map(|t| t.partitions.iter().copied()).collect();
            (m.instance_id.as_ref().map(|i| i.to_string()).unwrap_or_default(), (m.member_epoch, parts))
        })
        .collect()
}

#[test]
fn java_static_member_that_restarts_gets_its_partitions_back_without_a_rebalance() {
    const PARTITIONS: i32 = 6;
    let tools = E2eTools::load();
    // A session far longer than the test: the departed member must not expire.
    let broker = BrokerProcess::start_with(&[
        "group.consumer.session.timeout.ms=300000",
        "group.consumer.heartbeat.interval.ms=500",
    ]);
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("static-events", "kip848-static");
    let mut wire = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut wire, topic, PARTITIONS, &[]);
    let member = |name: &str| {
        let args = ["--group-protocol", "consumer", "--instance-id", name];
        Client::Java.consumer(&tools, name, &bootstrap, topic, group, &args)
    };
    let mut members = vec![member("static-0"), member("static-1")];
    ClientProcess::wait_all(&members.iter().collect::<Vec<_>>(), "2 members to own 3 partitions each", SETTLE, |s| {
        let assignments: Vec<&BTreeSet<i32>> = s.iter().map(|s| &s.assignment).collect();
        is_balanced_cover(&assignments, PARTITIONS).then_some(())
    });
    let before = describe(&mut wire, group);
    let owned = members_by_instance(&before);
    assert_eq!(owned.len(), 2, "{before:?}");

    // static-1 closes: a static member's close is a temporary leave (-2).
    let gone = members[1].stop();
    assert!(gone.closed, "static-1 closed cleanly");
    let away = describe(&mut wire, group);
    let now = members_by_instance(&away);
    assert_eq!(now["static-1"].0, -2, "static-1 is away with epoch -2: {away:?}");
    assert_eq!(now["static-1"].1, owned["static-1"].1, "its partitions are kept for it");
    assert_eq!(now["static-0"], owned["static-0"], "static-0 is not given them");
    assert_eq!(away.group_epoch, before.group_epoch, "no rebalance");

    // It restarts with the same instance id (a new member id): same partitions, same epoch.
    members[1] = member("static-1");
    members[1].wait_for("static-1 to get its 3 partitions back", SETTLE, |s| {
        (s.assignment == owned["static-1"].1).then_some(())
    });
    let back = describe(&mut wire, group);
    assert_eq!(back.group_epoch, before.group_epoch, "no rebalance: {back:?}");
    assert_eq!(members_by_instance(&back), owned, "same members, epochs and partitions");
    for m in &mut members {
        m.stop();
    }
}
