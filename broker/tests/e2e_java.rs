//! The Java client (org.apache.kafka:kafka-clients 4.x) and Kafka's own CLI
//! tools (org.apache.kafka:kafka-tools 4.x), both from Maven Central, against
//! a broker process.
//!
//! Proves that the Java producer with its DEFAULT settings (idempotence on,
//! acks=all) writes every record with a producer id; that KafkaConsumers in a
//! group (group.protocol=classic, the default) share a 6-partition topic with
//! disjoint assignments, consume 30,000 records exactly once and take over a
//! member killed with SIGKILL; that a consumer which commits, stops and
//! restarts resumes at its committed offsets, which survive a SIGKILL of the
//! broker; and that the commands a Kafka user types work: `kafka-topics
//! --create/--describe/--list`, the console producer, `kafka-console-consumer
//! --group`, and `kafka-consumer-groups --describe/--list`, whose LAG column
//! shows exactly the records produced after the group committed.
//! With `group.protocol=consumer` (KIP-848) the same three-member group check
//! passes (broker-side assignment, takeover after the broker's
//! `group.consumer.session.timeout.ms`), `kafka-consumer-groups --describe
//! --members/--state` shows the group, and a closed member leaves at once.
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) to have resolved
//! the classpath and compiled e2e/java; fails, saying so, when it has not.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::BrokerProcess;
use common::consumer_groups::{self, assert_written_by_idempotent_producer, high_watermarks};
use common::e2e::{Client, ClientProcess, E2eTools, assert_each_consumed_once, is_balanced_cover, run_with_input};
use common::wire::{WireClient, create_topic_ok, offset_fetch};

/// Kafka's CLI entry points in kafka-tools 4.x (what bin/kafka-*.sh run).
const TOPIC_COMMAND: &str = "org.apache.kafka.tools.TopicCommand";
const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const CONSUMER_GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
/// Upper bound for one CLI command (JVM start-up included).
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn three_java_consumers_share_partitions_consume_once_and_take_over_a_killed_member() {
    consumer_groups::group_shares_partitions_consumes_once_and_survives_a_killed_member(Client::Java);
}

#[test]
fn three_java_consumers_with_group_protocol_consumer_share_partitions_consume_once_and_take_over_a_killed_member() {
    consumer_groups::consumer_protocol_group_shares_partitions_consumes_once_and_survives_a_killed_member(Client::Java);
}

/// `group.protocol=consumer` (KIP-848): `kafka-consumer-groups --describe
/// --members` and `--state` show the group the broker assigned (two members,
/// three partitions each, the uniform assignor, Stable), and a member that
/// closes gracefully leaves at once: the other takes over all partitions
/// long before the (300 s) session timeout could have freed them.
#[test]
fn consumer_protocol_group_is_described_by_kafka_cli_and_a_closed_member_leaves_at_once() {
    const PARTITIONS: i32 = 6;
    let tools = E2eTools::load();
    let broker = BrokerProcess::start_with(&[
        "group.consumer.session.timeout.ms=300000",
        "group.consumer.heartbeat.interval.ms=500",
    ]);
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("events", "kip848-readers");
    create_topic_ok(&mut WireClient::connect(broker.kafka_addr()), topic, PARTITIONS, &[]);
    let consumer_args = ["--group-protocol", "consumer"];
    let mut members: Vec<_> = (0..2)
        .map(|i| Client::Java.consumer(&tools, &format!("member-{i}"), &bootstrap, topic, group, &consumer_args))
        .collect();
    ClientProcess::wait_all(&members.iter().collect::<Vec<_>>(), "2 members to own 3 partitions each", SETTLE, |s| {
        let assignments: Vec<&BTreeSet<i32>> = s.iter().map(|s| &s.assignment).collect();
        is_balanced_cover(&assignments, PARTITIONS).then_some(())
    });

    let server = ["--bootstrap-server", bootstrap.as_str()];
    let output = cli(
        &tools,
        CONSUMER_GROUP_COMMAND,
        &[&["--describe", "--members", "--group", group], &server[..]].concat(),
        "",
    );
    let rows: Vec<Vec<&str>> = output
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.first() == Some(&group))
        .collect();
    assert_eq!(rows.len(), 2, "two member rows in kafka-consumer-groups --describe --members:\n{output}");
    let header: Vec<&str> = output
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|c| c.first() == Some(&"GROUP"))
        .unwrap_or_else(|| panic!("no header in:\n{output}"));
    let column =
        |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} in:\n{output}"));
    let counts: Vec<&str> = rows.iter().map(|r| r[column("#PARTITIONS")]).collect();
    assert_eq!(counts, ["3", "3"], "#PARTITIONS per member:\n{output}");
    let ids: BTreeSet<&str> = rows.iter().map(|r| r[column("CONSUMER-ID")]).collect();
    assert_eq!(ids.len(), 2, "distinct member ids:\n{output}");
    let state =
        cli(&tools, CONSUMER_GROUP_COMMAND, &[&["--describe", "--state", "--group", group], &server[..]].concat(), "");
    let line = state.lines().find(|l| l.starts_with(group)).unwrap_or_else(|| panic!("no group line in:\n{state}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert!(cells.contains(&"uniform") && cells.contains(&"Stable") && cells.last() == Some(&"2"), "--state:\n{state}");

    members[1].stop();
    ClientProcess::wait_all(&[&members[0]], "the remaining member to own all 6 partitions", SETTLE, |s| {
        (s[0].assignment == (0..PARTITIONS).collect::<BTreeSet<i32>>()).then_some(())
    });
    members[0].stop();
}

/// `group.protocol=consumer`: consumer-group membership is not persisted, so
/// after the broker is killed with SIGKILL and restarted the member's next
/// heartbeat gets UNKNOWN_MEMBER_ID; it rejoins and resumes at its committed
/// offsets: of everything consumed after the restart, nothing was read
/// before, and every later record is read once.
#[test]
fn consumer_protocol_member_rejoins_after_a_broker_kill_and_resumes_at_committed_offsets() {
    const PARTITIONS: i32 = 3;
    const FIRST: usize = 300;
    const MORE: usize = 200;
    let tools = E2eTools::load();
    let settings = consumer_groups::consumer_protocol_settings();
    let mut broker = BrokerProcess::start_with(&settings.iter().map(String::as_str).collect::<Vec<_>>());
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("invoices", "kip848-restart");
    create_topic_ok(&mut WireClient::connect(broker.kafka_addr()), topic, PARTITIONS, &[]);
    Client::Java.produce(&tools, &bootstrap, topic, 0, FIRST, 30);
    let mut member =
        Client::Java.consumer(&tools, "member", &bootstrap, topic, group, &["--group-protocol", "consumer"]);
    member.wait_for(&format!("{FIRST} records"), SETTLE, |s| (s.records.len() >= FIRST).then_some(()));
    let committed = member.commit();
    assert_eq!(committed, high_watermarks(&broker, topic, PARTITIONS), "the member committed everything");

    broker.kill_hard();
    broker.restart();
    // Its next heartbeat is fenced; only then are more records written, so
    // none is read before the member resumes at its committed offsets (it
    // keeps fetching its old assignment until it learns it was fenced).
    member.wait_for("the member to lose its partitions (UNKNOWN_MEMBER_ID)", SETTLE, |s| {
        s.events.iter().any(|e| e.contains("\"lost\"")).then_some(())
    });
    Client::Java.produce(&tools, &bootstrap, topic, FIRST, MORE, 30);
    member.wait_for(&format!("{MORE} more records after the broker restart"), SETTLE, |s| {
        (s.records.len() >= FIRST + MORE).then_some(())
    });
    let state = member.stop();
    assert_each_consumed_once(
        "the member after the broker restart",
        &[("member", &state.records[FIRST..])],
        FIRST..FIRST + MORE,
    );
}

/// Upper bound for a group to settle; far below the 300 s session timeout used above.
const SETTLE: Duration = Duration::from_secs(120);

#[test]
fn java_default_producer_is_idempotent_and_consumer_resumes_at_committed_offsets_after_broker_kill() {
    consumer_groups::consumer_resumes_at_committed_offsets_across_a_broker_kill(Client::Java, true);
}

/// Runs a Kafka CLI tool with `args` and `input` on stdin; asserts it exits 0 and returns its stdout.
fn cli(tools: &E2eTools, main_class: &str, args: &[&str], input: &str) -> String {
    let mut command = tools.java_main(main_class);
    command.args(args);
    let (status, stdout, stderr) = run_with_input(&mut command, input, CLI_TIMEOUT);
    assert!(
        status.success(),
        "{main_class} {args:?} exited with {status}\n----- stdout -----\n{stdout}\n----- stderr -----\n{stderr}"
    );
    stdout
}

/// The value after `name: ` in a `kafka-topics --describe` line.
fn describe_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}: "))? + name.len() + 2;
    line[at..].split_whitespace().next()
}

/// One row of `kafka-consumer-groups --describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupRow {
    current_offset: i64,
    log_end_offset: i64,
    lag: i64,
}

/// The rows of `kafka-consumer-groups --describe` output for `topic`, by partition.
fn parse_group_describe(output: &str, group: &str, topic: &str) -> BTreeMap<i32, GroupRow> {
    let mut header: Option<Vec<&str>> = None;
    let mut rows = BTreeMap::new();
    for line in output.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.first() == Some(&"GROUP") {
            header = Some(cells);
            continue;
        }
        let Some(header) = &header else { continue };
        if cells.len() < header.len() || cells[0] != group || cells[1] != topic {
            continue;
        }
        let cell = |name: &str| -> i64 {
            let i = header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} column in {output}"));
            cells[i].parse().unwrap_or_else(|_| panic!("{name} of {line:?} is not a number"))
        };
        rows.insert(
            cell("PARTITION") as i32,
            GroupRow {
                current_offset: cell("CURRENT-OFFSET"),
                log_end_offset: cell("LOG-END-OFFSET"),
                lag: cell("LAG"),
            },
        );
    }
    rows
}

#[test]
fn kafka_cli_tools_create_describe_produce_consume_and_show_group_lag() {
    const PARTITIONS: i32 = 3;
    const FIRST: usize = 30;
    const MORE: usize = 7;
    let tools = E2eTools::load();
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("multi-topic", "cli-readers");
    let server = ["--bootstrap-server", bootstrap.as_str()];

    // kafka-topics --create / --describe / --list
    let created = cli(
        &tools,
        TOPIC_COMMAND,
        &[&["--create", "--topic", topic], &server[..], &["--partitions", "3", "--replication-factor", "1"]].concat(),
        "",
    );
    assert!(created.contains("Created topic multi-topic."), "kafka-topics --create said: {created}");
    let described = cli(&tools, TOPIC_COMMAND, &[&["--describe", "--topic", topic], &server[..]].concat(), "");
    let summary = described
        .lines()
        .find(|l| l.contains("PartitionCount"))
        .unwrap_or_else(|| panic!("no topic summary line in kafka-topics --describe: {described}"));
    assert_eq!(describe_field(summary, "Topic"), Some(topic), "{summary}");
    assert_eq!(describe_field(summary, "PartitionCount"), Some("3"), "{summary}");
    assert_eq!(describe_field(summary, "ReplicationFactor"), Some("1"), "{summary}");
    let partitions: BTreeMap<String, (String, String, String)> = described
        .lines()
        .filter(|l| l.contains("Partition: "))
        .map(|l| {
            let field = |name| describe_field(l, name).unwrap_or_else(|| panic!("no {name} in {l:?}")).to_string();
            (field("Partition"), (field("Leader"), field("Replicas"), field("Isr")))
        })
        .collect();
    let expected: BTreeMap<String, (String, String, String)> =
        (0..PARTITIONS).map(|p| (p.to_string(), ("0".into(), "0".into(), "0".into()))).collect();
    assert_eq!(
        partitions, expected,
        "partition lines (leader, replicas, ISR) of kafka-topics --describe:\n{described}"
    );
    let listed = cli(&tools, TOPIC_COMMAND, &[&["--list"], &server[..]].concat(), "");
    assert!(listed.lines().any(|l| l.trim() == topic), "kafka-topics --list: {listed}");

    // kafka-console-producer with keys (its producer defaults: idempotent, acks=all).
    let keyed = ["--topic", topic, "--property", "parse.key=true", "--property", "key.separator=:"];
    let lines: Vec<String> = (0..FIRST).map(|i| format!("key-{i}:line-{i}")).collect();
    cli(&tools, CONSOLE_PRODUCER, &[&keyed[..], &server[..]].concat(), &(lines.join("\n") + "\n"));
    let hw = high_watermarks(&broker, topic, PARTITIONS);
    assert_eq!(hw.values().sum::<i64>(), FIRST as i64, "high watermarks after the console producer: {hw:?}");
    assert!(hw.values().filter(|n| **n > 0).count() > 1, "30 distinct keys spread over partitions: {hw:?}");
    assert_written_by_idempotent_producer(&broker, topic, PARTITIONS, "kafka-console-producer");

    // kafka-console-consumer --group: reads all of them, commits on exit.
    let consumed = cli(
        &tools,
        CONSOLE_CONSUMER,
        &[
            &["--topic", topic, "--group", group, "--from-beginning", "--max-messages", &FIRST.to_string()][..],
            &["--property", "print.key=true", "--property", "key.separator=:"][..],
            &server[..],
        ]
        .concat(),
        "",
    );
    let consumed: BTreeSet<&str> = consumed.lines().filter(|l| l.starts_with("key-")).collect();
    let produced: BTreeSet<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(consumed, produced, "kafka-console-consumer printed every produced key:value once");
    let mut wire = WireClient::connect(broker.kafka_addr());
    let committed: BTreeMap<i32, i64> =
        offset_fetch(&mut wire, group, topic, PARTITIONS).into_iter().map(|(p, (o, _))| (p, o)).collect();
    assert_eq!(committed, hw, "the console consumer committed the end of every partition");

    // kafka-consumer-groups --describe: no lag yet.
    let describe_group = [&["--describe", "--group", group], &server[..]].concat();
    let output = cli(&tools, CONSUMER_GROUP_COMMAND, &describe_group, "");
    let rows = parse_group_describe(&output, group, topic);
    let expected: BTreeMap<i32, GroupRow> =
        hw.iter().map(|(p, end)| (*p, GroupRow { current_offset: *end, log_end_offset: *end, lag: 0 })).collect();
    assert_eq!(rows, expected, "kafka-consumer-groups --describe after consuming everything:\n{output}");

    // MORE records after the commit show up as lag, partition by partition.
    let more: Vec<String> = (FIRST..FIRST + MORE).map(|i| format!("key-{i}:line-{i}")).collect();
    cli(&tools, CONSOLE_PRODUCER, &[&keyed[..], &server[..]].concat(), &(more.join("\n") + "\n"));
    let hw_after = high_watermarks(&broker, topic, PARTITIONS);
    assert_eq!(hw_after.values().sum::<i64>(), (FIRST + MORE) as i64, "high watermarks: {hw_after:?}");
    let output = cli(&tools, CONSUMER_GROUP_COMMAND, &describe_group, "");
    let rows = parse_group_describe(&output, group, topic);
    let expected: BTreeMap<i32, GroupRow> = hw_after
        .iter()
        .map(|(p, end)| (*p, GroupRow { current_offset: hw[p], log_end_offset: *end, lag: end - hw[p] }))
        .collect();
    assert_eq!(rows, expected, "kafka-consumer-groups --describe after {MORE} more records:\n{output}");
    assert_eq!(rows.values().map(|r| r.lag).sum::<i64>(), MORE as i64, "total LAG:\n{output}");

    let groups = cli(&tools, CONSUMER_GROUP_COMMAND, &[&["--list"], &server[..]].concat(), "");
    assert!(groups.lines().any(|l| l.trim() == group), "kafka-consumer-groups --list: {groups}");
}
