//! Committed offsets live in the compacted `__consumer_offsets`: after many
//! commits the cleaner leaves about one record per (group, topic, partition),
//! and the latest commit survives a kill -9 of the broker.

mod common;

use std::time::Duration;

use common::BrokerProcess;
use common::clients::{consume_to_end, create_topic};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const COMMITS: i64 = 300;

fn group_consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "compaction-group")
        .set("enable.auto.commit", "false")
        .create()
        .expect("create an rdkafka BaseConsumer")
}

fn offsets(first: i64, second: i64) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, Offset::Offset(first)).expect("add orders-0");
    tpl.add_partition_offset("orders", 1, Offset::Offset(second)).expect("add orders-1");
    tpl
}

fn committed(consumer: &BaseConsumer) -> Vec<Option<i64>> {
    let tpl =
        consumer.committed_offsets(offsets(0, 0), Duration::from_secs(30)).expect("OffsetFetch of the group's offsets");
    tpl.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

#[test]
fn compaction_keeps_the_latest_commit_per_partition_and_it_survives_kill_9() {
    let mut broker = BrokerProcess::start_with(&[
        "offsets.topic.num.partitions=1",
        "offsets.topic.segment.bytes=2048",
        "log.cleaner.backoff.ms=200",
    ]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 2, &[]);
    let consumer = group_consumer(&bootstrap);
    for i in 1..=COMMITS {
        consumer.commit(&offsets(i, 1000 + i), CommitMode::Sync).expect("simple offset commit");
    }
    assert_eq!(committed(&consumer), vec![Some(COMMITS), Some(1000 + COMMITS)]);

    // 600 commit records were written; compaction must bring that down to
    // the latest per key plus what sits in the active (uncleaned) segment.
    let segment_bytes_records = 2048 / 60;
    common::wait_for("the cleaner to compact __consumer_offsets", Duration::from_secs(60), || {
        let records = consume_to_end(&bootstrap, "__consumer_offsets", 1).remove(&0).unwrap_or_default();
        (records.len() <= 2 + 2 * segment_bytes_records).then_some(())
    });
    let records = consume_to_end(&bootstrap, "__consumer_offsets", 1).remove(&0).unwrap_or_default();
    let last = records.last().expect("the latest commits are never compacted away");
    assert!(last.offset >= 2 * COMMITS - 1, "offsets of the survivors are the originals: {}", last.offset);

    broker.kill_hard();
    broker.restart();
    let consumer = group_consumer(&broker.bootstrap());
    assert_eq!(committed(&consumer), vec![Some(COMMITS), Some(1000 + COMMITS)], "after kill -9 and restart");
}
