//! DeleteRecords on a 3-broker cluster, driven by Kafka's own tool: what
//! `bin/kafka-delete-records.sh` runs (org.apache.kafka.tools.DeleteRecordsCommand
//! of kafka-tools 4.3.1, resolved by `bench/kafka/run-kafka.sh tools-classpath`)
//! with the same arguments.
//!
//! Proves that the tool's answer reports the new low watermark of each
//! partition (an offset, and -1 for the high watermark); that every replica's
//! log start offset moves there (the live value, the checkpoint file, and no
//! segment left wholly below it); that a fetch below it gets
//! OFFSET_OUT_OF_RANGE and a librdkafka consumer whose committed offset lies
//! below it is reset by `auto.offset.reset=earliest` to the new start; and
//! that all of it survives a restart of every broker.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::executor::block_on;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use common::cluster::{Cluster, FAST_FAILOVER, create_topic, wait_until};
use common::e2e::{run_with_input, workspace_root};
use common::metrics::Scrape;
use common::wire::{WireClient, fetch};

const TOPIC: &str = "purged";
const RECORDS: i64 = 300;
/// Where partition 0 is deleted to; partition 1 is deleted to its high watermark (-1).
const DELETED_TO: i64 = 120;
const TIMEOUT: Duration = Duration::from_secs(120);

/// The classpath of Kafka's tools, as `bench/kafka/run-kafka.sh` resolves it.
fn tools_classpath() -> String {
    let script = workspace_root().join("bench").join("kafka").join("run-kafka.sh");
    let output = Command::new("bash").arg(&script).arg("tools-classpath").output().expect("run run-kafka.sh");
    assert!(output.status.success(), "run-kafka.sh tools-classpath failed: {output:?}");
    let file = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display())).trim().to_string()
}

/// `kafka-delete-records.sh --bootstrap-server B --offset-json-file F`; its stdout.
fn kafka_delete_records(bootstrap: &str, json: &Path) -> String {
    let java = std::env::var_os("JAVA_HOME").map_or_else(|| PathBuf::from("java"), |h| Path::new(&h).join("bin/java"));
    let mut command = Command::new(java);
    command.args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", &tools_classpath()]);
    command.arg("org.apache.kafka.tools.DeleteRecordsCommand");
    command.args(["--bootstrap-server", bootstrap, "--offset-json-file"]).arg(json);
    let (status, stdout, stderr) = run_with_input(&mut command, "", TIMEOUT);
    assert!(status.success(), "kafka-delete-records exited with {status}\n{stdout}\n{stderr}");
    stdout
}

fn produce_all(bootstrap: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("create a producer");
    for partition in 0..2 {
        for i in 0..RECORDS {
            let value = format!("{partition}-{i:04}-{}", "x".repeat(80));
            let sent = block_on(producer.send(
                FutureRecord::<str, str>::to(TOPIC).partition(partition).payload(&value),
                Timeout::After(Duration::from_secs(30)),
            ));
            let delivery = sent.unwrap_or_else(|(e, _)| panic!("produce to {TOPIC}-{partition}: {e}"));
            assert_eq!(delivery.offset, i);
        }
    }
}

/// Each replica's log start offset of `partition`, as its metrics say (live).
fn live_log_start(cluster: &Cluster, id: i32, partition: i32) -> Option<i64> {
    let labels = [("topic", TOPIC), ("partition", &partition.to_string())];
    Scrape::fetch(cluster.broker(id).http_addr()).value("strom_partition_log_start_offset", &labels).map(|v| v as i64)
}

/// Checks broker `id`'s files for `partition`: the checkpoint says `start`,
/// and no segment lies wholly below it.
fn assert_files_start_at(cluster: &Cluster, id: i32, partition: i32, start: i64) {
    let dir = cluster.broker(id).partition_dir(TOPIC, partition);
    let checkpoint = std::fs::read_to_string(dir.join("log-start-offset-checkpoint"))
        .unwrap_or_else(|e| panic!("broker {id}'s {TOPIC}-{partition} has no log start checkpoint: {e}"));
    assert_eq!(checkpoint, format!("0\n{start}\n"), "broker {id}'s checkpoint of {TOPIC}-{partition}");
    let mut bases: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    bases.sort_unstable();
    assert!(bases.len() > 1 || start == RECORDS, "broker {id}: segments {bases:?}");
    assert!(bases[0] <= start, "broker {id}: the first segment {} starts above {start}", bases[0]);
    if let Some(next) = bases.get(1) {
        assert!(*next > start, "broker {id}: segment {} lies wholly below the start {start}: {bases:?}", bases[0]);
    }
}

fn assert_every_replica_starts_at(cluster: &Cluster, starts: [i64; 2]) {
    for id in 0..3 {
        for (partition, start) in starts.iter().enumerate() {
            let partition = partition as i32;
            wait_until(&format!("broker {id}'s {TOPIC}-{partition} to start at {start}"), TIMEOUT, || {
                (live_log_start(cluster, id, partition) == Some(*start)).then_some(())
            });
            assert_files_start_at(cluster, id, partition, *start);
        }
    }
}

/// A librdkafka consumer of `group` assigned partition 0: the offset of the first record it gets.
fn first_offset_consumed(bootstrap: &str, group: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create a consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition(TOPIC, 0);
    consumer.assign(&assignment).expect("assign");
    wait_until("a record from the consumer", TIMEOUT, || match consumer.poll(Duration::from_millis(500)) {
        Some(Ok(m)) => Some(m.offset()),
        Some(Err(e)) => panic!("consumer error: {e}"),
        None => None,
    })
}

#[test]
fn kafka_delete_records_moves_every_replicas_start_resets_consumers_and_survives_restarts() {
    let mut cluster = Cluster::start(3, "delete-records", FAST_FAILOVER);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, 2, 3, None, &[("segment.bytes", "2048")]);
    cluster.wait_for_full_isr(TOPIC, 2, TIMEOUT);
    produce_all(&bootstrap);

    // A group whose committed offset will lie below the new start.
    let committer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &bootstrap).set("group.id", "behind").create().unwrap();
    let mut behind = TopicPartitionList::new();
    behind.add_partition_offset(TOPIC, 0, Offset::Offset(10)).unwrap();
    committer.commit(&behind, CommitMode::Sync).expect("commit offset 10");
    drop(committer);

    let json = cluster.root().join("delete-records.json");
    let spec = format!(
        r#"{{"partitions": [{{"topic": "{TOPIC}", "partition": 0, "offset": {DELETED_TO}}},
                            {{"topic": "{TOPIC}", "partition": 1, "offset": -1}}], "version": 1}}"#
    );
    std::fs::write(&json, spec).unwrap();
    let said = kafka_delete_records(&bootstrap, &json);
    eprintln!("kafka-delete-records said:\n{said}");
    assert!(said.contains(&format!("partition: {TOPIC}-0\tlow_watermark: {DELETED_TO}")), "{said}");
    assert!(said.contains(&format!("partition: {TOPIC}-1\tlow_watermark: {RECORDS}")), "{said}");
    assert_every_replica_starts_at(&cluster, [DELETED_TO, RECORDS]);

    // Below the start: OFFSET_OUT_OF_RANGE on the leader; the consumer resets to it.
    let leader = cluster.partition(TOPIC, 0).expect("a view of the partition").leader;
    let mut client = WireClient::connect(cluster.broker(leader).kafka_addr());
    assert_eq!(fetch(&mut client, TOPIC, 0, DELETED_TO - 1).error_code, 1, "OFFSET_OUT_OF_RANGE below the start");
    assert_eq!(fetch(&mut client, TOPIC, 0, DELETED_TO).error_code, 0);
    assert_eq!(first_offset_consumed(&bootstrap, "behind"), DELETED_TO, "reset from 10 to the new start");

    // Every broker restarts: the starts stay.
    for id in 0..3 {
        cluster.stop(id);
        cluster.restart(id);
        cluster.wait_for_full_isr(TOPIC, 2, TIMEOUT);
    }
    assert_every_replica_starts_at(&cluster, [DELETED_TO, RECORDS]);
    assert_eq!(first_offset_consumed(&bootstrap, "behind"), DELETED_TO, "still reset after the restarts");
}
