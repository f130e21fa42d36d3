//! KIP-848 features of the Java client (kafka-clients 4.x,
//! `group.protocol=consumer`) against a broker process.
//!
//! Proves that a `SubscriptionPattern` (a regex the broker resolves) is
//! served: the member is assigned the matching topics only, and a topic
//! created after it subscribed that matches is assigned and consumed too.
//!
//! Needs `bash scripts/e2e-deps.sh` to have compiled e2e/java.

mod common;

use std::time::Duration;

use common::BrokerProcess;
use common::consumer_groups::consumer_protocol_settings;
use common::e2e::{Client, E2eTools, assert_each_consumed_once};
use common::wire::{WireClient, create_topic_ok};
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
