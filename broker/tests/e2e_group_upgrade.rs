//! Kafka 4's online group migration (`group.consumer.migration.policy`,
//! default `bidirectional`) with Kafka's Java client: a rolling upgrade of
//! a live application from `group.protocol=classic` to
//! `group.protocol=consumer`, and the rolling downgrade back.
//!
//! Three members consume a 12-partition topic while a producer writes; they
//! are restarted one at a time with the other protocol. After each restart
//! the three own a balanced, disjoint cover of the partitions and
//! ConsumerGroupDescribe v1 shows the mix (members not yet restarted stay in
//! the consumer group with the classic protocol, member type 0); at the end
//! the group is of the new type (ConsumerGroupDescribe and
//! `kafka-consumer-groups --describe --state` after the upgrade, DescribeGroups
//! after the downgrade); with manual commits (before giving a partition up
//! and before stopping) every record produced is consumed exactly once
//! across the six members — a partition owned by two members at once would
//! show up as records consumed twice.
//!
//! Needs `bash scripts/e2e-deps.sh` to have built the Java client program.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::BrokerProcess;
use common::consumer_groups::consumer_protocol_settings;
use common::e2e::{
    Client, ClientProcess, ClientState, E2eTools, assert_each_consumed_once, is_balanced_cover, run_with_input,
    wait_group_consumed,
};
use common::wire::{WireClient, create_topic_ok};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, DescribeGroupsRequest, GroupId};
use kafka_protocol::protocol::StrBytes;

const PARTITIONS: i32 = 12;
const BATCHES: usize = 3;
const BATCH: usize = 5_000;
const SETTLE: Duration = Duration::from_secs(180);
const CONSUME: Duration = Duration::from_secs(300);
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
const CONSUMER_GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

fn procs(live: &[(String, ClientProcess)]) -> Vec<&ClientProcess> {
    live.iter().map(|(_, p)| p).collect()
}

/// Waits until `live` own a balanced, disjoint cover of the partitions.
fn wait_balanced(live: &[(String, ClientProcess)], what: &str) {
    ClientProcess::wait_all(&procs(live), what, SETTLE, |s| {
        let assignments: Vec<&BTreeSet<i32>> = s.iter().map(|s| &s.assignment).collect();
        is_balanced_cover(&assignments, PARTITIONS).then_some(())
    });
}

/// ConsumerGroupDescribe (v1) for `group`: its error code and how many
/// members use the classic protocol (member type 0) and the consumer one (1).
fn consumer_group_describe(wire: &mut WireClient, group: &str) -> (i16, usize, usize) {
    let request =
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from(group.to_string()))]);
    let described = &wire.send(&request, 1).groups[0];
    let of_type = |t: i8| described.members.iter().filter(|m| m.member_type == t).count();
    (described.error_code, of_type(0), of_type(1))
}

/// DescribeGroups' error code, protocol type and member count for `group`.
fn describe_groups(wire: &mut WireClient, group: &str) -> (i16, String, usize) {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from(group.to_string()))]);
    let g = &wire.send(&request, 5).groups[0];
    (g.error_code, g.protocol_type.to_string(), g.members.len())
}

/// Runs three members with `from`, restarts them one at a time with `to`
/// under a running producer, and checks that every record was consumed once.
/// `check` runs once the 3 first members settled (step 0) and after each restart.
fn rolling_restart(from: &str, to: &str, group: &str, check: impl Fn(&mut WireClient, &BrokerProcess, usize)) {
    let tools = E2eTools::load();
    let settings = consumer_protocol_settings();
    let broker = BrokerProcess::start_with(&settings.iter().map(String::as_str).collect::<Vec<_>>());
    let bootstrap = broker.bootstrap();
    let topic = "rolling-stream";
    let mut wire = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut wire, topic, PARTITIONS, &[]);
    let start = |i: usize, protocol: &str| {
        let args = ["--group-protocol", protocol, "--commit-on-revoke", "--commit-on-stop"];
        Client::Java.consumer(&tools, &format!("member-{i}"), &bootstrap, topic, group, &args)
    };
    let mut live: Vec<(String, ClientProcess)> = (0..3).map(|i| (format!("member-{i}"), start(i, from))).collect();
    wait_balanced(&live, &format!("3 {from} members to own 4 partitions each"));
    check(&mut wire, &broker, 0);
    let mut gone: Vec<(String, ClientState)> = Vec::new();
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            for b in 0..BATCHES {
                Client::Java.produce(&tools, &bootstrap, topic, b * BATCH, BATCH, 500);
            }
        });
        for step in 1..=3 {
            let (name, mut old) = live.remove(0);
            gone.push((name.clone(), old.stop()));
            let i = step + 2;
            live.push((format!("member-{i}"), start(i, to)));
            wait_balanced(
                &live,
                &format!("3 members ({name}, {from}, replaced by member-{i}, {to}) to own 4 partitions each"),
            );
            check(&mut wire, &broker, step);
        }
        producer.join().expect("producer thread");
    });

    let total = BATCHES * BATCH;
    wait_group_consumed(&procs(&live), &gone, total, CONSUME);
    for (name, mut m) in live {
        gone.push((name, m.stop()));
    }
    for (name, s) in &gone {
        assert!(s.errors.is_empty(), "{name} reported errors: {:?}\nevents: {:?}", s.errors, s.events);
    }
    let consumed: Vec<(&str, &[_])> = gone.iter().map(|(n, s)| (n.as_str(), &s.records[..])).collect();
    assert_each_consumed_once(
        &format!("a rolling {from}→{to} restart of 3 Java members on {PARTITIONS} partitions"),
        &consumed,
        0..total,
    );
}

/// The rolling upgrade: classic members become consumer-protocol members one
/// at a time; the first consumer-protocol member converts the live classic
/// group (its two classic members stay, answered by the consumer group), and
/// at the end `kafka-consumer-groups --describe --state` shows a consumer
/// group of 3 members with the server-side `uniform` assignor.
#[test]
fn rolling_upgrade_of_a_live_classic_group_to_the_consumer_protocol_consumes_every_record_once() {
    let group = "upgrading-app";
    rolling_restart("classic", "consumer", group, |wire, broker, step| {
        let (code, classic, consumer) = consumer_group_describe(wire, group);
        if step == 0 {
            assert_ne!(code, 0, "a classic group is not a consumer group for ConsumerGroupDescribe");
            let (code, protocol_type, members) = describe_groups(wire, group);
            assert_eq!(
                (code, protocol_type.as_str(), members),
                (0, "consumer", 3),
                "DescribeGroups of the classic group"
            );
        } else {
            // From the first consumer-protocol member on, the group is a consumer group of 3,
            // the members not yet restarted staying in it with the classic protocol.
            assert_eq!((code, classic, consumer), (0, 3 - step, step), "ConsumerGroupDescribe after {step} upgraded");
        }
        if step == 1 {
            assert!(
                broker.log().contains("classic group upgraded to a consumer group (online)"),
                "the first consumer-protocol member converted the live classic group"
            );
        }
        if step == 3 {
            let tools = E2eTools::load();
            let mut command = tools.java_main(CONSUMER_GROUP_COMMAND);
            command.args(["--bootstrap-server", &broker.bootstrap(), "--describe", "--state", "--group", group]);
            let (status, state, stderr) = run_with_input(&mut command, "", CLI_TIMEOUT);
            assert!(status.success(), "kafka-consumer-groups --describe --state: {status}\n{state}\n{stderr}");
            let line =
                state.lines().find(|l| l.starts_with(group)).unwrap_or_else(|| panic!("no group line in:\n{state}"));
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert!(
                cells.contains(&"uniform") && cells.last() == Some(&"3"),
                "--describe --state shows a consumer group of 3 with the server-side uniform assignor:\n{state}"
            );
        }
    });
}

/// The rolling downgrade: consumer-protocol members become classic members
/// one at a time; they join the consumer group as classic members, and when
/// the last consumer-protocol member leaves the group turns classic again
/// (DescribeGroups shows it, ConsumerGroupDescribe no longer does).
#[test]
fn rolling_downgrade_of_a_live_consumer_group_to_the_classic_protocol_consumes_every_record_once() {
    let group = "downgrading-app";
    rolling_restart("consumer", "classic", group, |wire, broker, step| {
        let (code, classic, consumer) = consumer_group_describe(wire, group);
        if step < 3 {
            // Classic members join the consumer group until the last consumer-protocol member leaves.
            assert_eq!((code, classic, consumer), (0, step, 3 - step), "ConsumerGroupDescribe after {step} downgraded");
        } else {
            assert_ne!(code, 0, "the downgraded group is no longer a consumer group");
            assert!(broker.log().contains("consumer group downgraded to a classic group (online)"));
            let (code, protocol_type, members) = describe_groups(wire, group);
            assert_eq!(
                (code, protocol_type.as_str(), members),
                (0, "consumer", 3),
                "DescribeGroups after the downgrade"
            );
        }
    });
}
