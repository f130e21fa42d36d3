//! The broker tests' producer under load and history checker, shared with the
//! operator's end-to-end tests (the same files, not a copy), plus reading a
//! topic back from the beginning.

#![allow(dead_code)]

#[path = "../../../broker/tests/common/cluster/history.rs"]
pub mod history;
#[path = "../../../broker/tests/common/cluster/load.rs"]
pub mod load;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// Polls `condition` every 100 ms until it returns `Some`, for at most `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = condition() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads partitions `0..partitions` of `topic` from the beginning up to their
/// high watermarks (read-committed by nature: consumers see only acknowledged data).
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<history::Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("read-all-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("create the read-back consumer");
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let (_, high) = wait_until(&format!("the watermarks of {topic}-{p}"), Duration::from_secs(60), || {
            consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).ok()
        });
        ends.insert(p, high);
    }
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("assign a partition");
    }
    consumer.assign(&assignment).expect("assign the partitions");
    let mut reads = Vec::new();
    let mut next: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    while next.iter().any(|(p, offset)| *offset < ends[p]) {
        assert!(Instant::now() < deadline, "reading {topic} back stalled at {next:?}, ends {ends:?}");
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                reads.push(history::Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    value: m.payload().unwrap_or_default().to_vec(),
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => eprintln!("read-back consumer: {e}"),
        }
    }
    reads
}
