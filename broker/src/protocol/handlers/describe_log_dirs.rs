//! DescribeLogDirs (`kafka-log-dirs.sh --describe`, AdminClient
//! `describeLogDirs`): the broker's one log directory (`--data-dir`), its
//! disk's total and usable bytes (v4+), and for each hosted replica asked for
//! (every one when `topics` is null) the bytes of its segments. Strom moves
//! no replica between directories, so no entry is a "future" replica and
//! every offset lag is 0. Replicas asked for but not hosted here are left
//! out, as Kafka leaves them out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::blocking;
use crate::broker::Broker;

/// How long one replica's log lock is waited for; a replica busy for longer
/// (a truncation, a compaction swap) reports size 0 this time.
const LOG_LOCK_WAIT: Duration = Duration::from_millis(200);

pub async fn handle(broker: &Arc<Broker>, request: DescribeLogDirsRequest, _version: i16) -> DescribeLogDirsResponse {
    let b = broker.clone();
    let result = blocking(move || describe(&b, request.topics.map(wanted))).await;
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The replicas asked for: topic name to partition indexes.
fn wanted(
    topics: Vec<kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic>,
) -> HashMap<String, HashSet<i32>> {
    let mut out: HashMap<String, HashSet<i32>> = HashMap::new();
    for t in topics {
        out.entry(t.topic.to_string()).or_default().extend(t.partitions);
    }
    out
}

fn describe(broker: &Broker, wanted: Option<HashMap<String, HashSet<i32>>>) -> DescribeLogDirsResult {
    let dir = std::fs::canonicalize(&broker.config.data_dir).unwrap_or_else(|_| broker.config.data_dir.clone());
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for partition in broker.replicas.partitions() {
        let tp = partition.topic_partition();
        if wanted.as_ref().is_some_and(|w| !w.get(&tp.topic).is_some_and(|p| p.contains(&tp.partition))) {
            continue;
        }
        let size = partition.log().try_read_for(LOG_LOCK_WAIT).map_or(0, |log| log.size_bytes());
        topics.entry(tp.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(tp.partition)
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    let topics = topics
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let (total, usable) = match rustix::fs::statvfs(&dir) {
        Ok(s) => {
            let block = s.f_frsize;
            let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(block)).unwrap_or(i64::MAX);
            (bytes(s.f_blocks), bytes(s.f_bavail))
        }
        Err(_) => (-1, -1),
    };
    DescribeLogDirsResult::default()
        .with_error_code(if dir.is_dir() { 0 } else { ResponseError::KafkaStorageError.code() })
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)
}
