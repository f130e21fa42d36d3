//! Fetch: whole record batches from the requested offsets, below the high
//! watermark, with long polling (`max_wait_ms` / `min_bytes`).
//!
//! Only the partition's leader serves consumers (NOT_LEADER_OR_FOLLOWER
//! otherwise, so the client refreshes its metadata); a request that names
//! its current leader epoch is checked against ours (FENCED_LEADER_EPOCH
//! when older, UNKNOWN_LEADER_EPOCH when newer). Followers copy logs over
//! the internal `Replication` service, not here.
//!
//! A fetch at an offset inside a batch returns the whole batch (clients skip
//! the earlier records). The first partition with data always gets at least
//! one whole batch, even above the byte limits (KIP-74), so a consumer never
//! stalls on a large batch; every later partition gets only whole batches
//! within both its `partition_max_bytes` and what is left of `max_bytes`, so
//! the response stays within `max_bytes` except for that first batch. The batches are located, not read: the response
//! carries them as [`FileRecords`] that the connection sends straight from
//! the segment files (see `protocol::outgoing`). With `isolation_level=1`
//! (read_committed) the batches stop below the last stable offset (no
//! record of an ongoing transaction is returned) and the response lists the
//! aborted transactions overlapping them, from the `.txnindex`, for the
//! client to drop; every response carries the partition's last stable
//! offset. Incremental fetch sessions (KIP-227) are not kept:
//! every response has session id 0, which tells clients to send full requests.

use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use tokio::sync::watch;
use tokio::time::Instant;

use super::blocking;
use crate::broker::Broker;
use crate::log::{FileRecords, TopicPartition};
use crate::protocol::errors::KafkaError;

/// `isolation_level` of a read_committed fetch.
const READ_COMMITTED: i8 = 1;

/// The response, and per partition in its order the batches to send from
/// their segment file (see [`super::Response::file_records`]).
pub async fn handle(
    broker: &Arc<Broker>,
    request: FetchRequest,
    version: i16,
) -> (FetchResponse, Vec<Option<FileRecords>>) {
    if version >= 7 && request.session_id != 0 {
        return (FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code()), Vec::new());
    }
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if version >= 3 { request.max_bytes.max(0) as usize } else { usize::MAX };
    let read_committed = request.isolation_level == READ_COMMITTED;
    let topics = Arc::new(request.topics);
    loop {
        let (b, t) = (broker.clone(), topics.clone());
        let pass = blocking(move || read_pass(&b, &t, max_bytes, read_committed)).await;
        let done = pass.bytes >= min_bytes.max(1) && pass.bytes > 0
            || pass.has_error
            || min_bytes == 0
            || Instant::now() >= deadline
            || broker.shutdown.is_cancelled();
        if done || pass.watchers.is_empty() {
            if !done {
                // Nothing to wait on (all partitions unknown): wait out max_wait like Kafka.
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = broker.shutdown.cancelled() => {}
                }
                continue;
            }
            // Bytes out are counted by the connection once quotas have had
            // their say (a throttled fetch is answered empty).
            return (FetchResponse::default().with_responses(pass.responses), pass.files);
        }
        let mut watchers = pass.watchers;
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        let _waiting = broker.metrics.enter_purgatory(crate::metrics::Purgatory::Fetch);
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = broker.shutdown.cancelled() => {}
        }
    }
}

struct ReadPass {
    responses: Vec<FetchableTopicResponse>,
    /// Per partition of `responses`, in order: its batches in their file.
    files: Vec<Option<FileRecords>>,
    bytes: usize,
    has_error: bool,
    watchers: Vec<watch::Receiver<i64>>,
}

fn read_pass(broker: &Broker, topics: &[FetchTopic], max_bytes: usize, read_committed: bool) -> ReadPass {
    let mut pass =
        ReadPass { responses: Vec::new(), files: Vec::new(), bytes: 0, has_error: false, watchers: Vec::new() };
    for topic in topics {
        let name = topic.topic.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let base = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions(Some(Vec::new()))
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(bytes::Bytes::new()));
            let tp = TopicPartition { topic: name.clone(), partition: p.partition };
            let Some(partition) = broker.partition(&tp).filter(|p| p.is_leader()) else {
                // Unknown, or hosted elsewhere or as follower: only the leader serves.
                pass.has_error = true;
                let error = match broker.partition(&tp) {
                    Some(_) => ResponseError::NotLeaderOrFollower.code(),
                    None => super::produce::not_hosted(broker, &tp).code(),
                };
                partitions.push((base.with_error_code(error), None));
                continue;
            };
            let epoch = partition.leader_epoch();
            if p.current_leader_epoch >= 0 && p.current_leader_epoch != epoch {
                pass.has_error = true;
                let error = if p.current_leader_epoch > epoch {
                    ResponseError::UnknownLeaderEpoch
                } else {
                    ResponseError::FencedLeaderEpoch
                };
                partitions.push((base.with_error_code(error.code()), None));
                continue;
            }
            // Subscribe before reading so an append in between still wakes us.
            let mut watcher = partition.watch_high_watermark();
            watcher.mark_unchanged();
            let remaining = max_bytes.saturating_sub(pass.bytes);
            let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
            // Kafka's rule (KIP-74): until a partition has given records, the
            // first batch is sent whatever the limits; after that, only
            // batches that fit them.
            let min_one_batch = pass.bytes == 0;
            if limit == 0 && !min_one_batch {
                let lso = partition.last_stable_offset();
                let log = partition.log().read();
                partitions.push((
                    base.with_high_watermark(partition.high_watermark())
                        .with_last_stable_offset(lso)
                        .with_log_start_offset(log.log_start_offset()),
                    None,
                ));
                continue;
            }
            match partition.read_for_consumer(p.fetch_offset, limit, min_one_batch, read_committed) {
                Ok(read) => {
                    let slice = read.slice;
                    pass.bytes += slice.records.as_ref().map_or(0, FileRecords::len);
                    pass.watchers.push(watcher);
                    let aborted = read
                        .aborted
                        .iter()
                        .map(|t| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(t.producer_id))
                                .with_first_offset(t.first_offset)
                        })
                        .collect();
                    partitions.push((
                        base.with_high_watermark(read.high_watermark)
                            .with_last_stable_offset(read.last_stable_offset)
                            .with_log_start_offset(slice.log_start_offset)
                            .with_aborted_transactions(Some(aborted)),
                        slice.records,
                    ));
                }
                Err(e) => {
                    pass.has_error = true;
                    let k = KafkaError::from(&e);
                    tracing::debug!(partition = %tp, error = %e, "fetch refused");
                    let lso = partition.last_stable_offset();
                    let log = partition.log().read();
                    partitions.push((
                        base.with_error_code(k.code())
                            .with_high_watermark(partition.high_watermark())
                            .with_last_stable_offset(lso)
                            .with_log_start_offset(log.log_start_offset()),
                        None,
                    ));
                }
            }
        }
        let (partitions, files): (Vec<_>, Vec<_>) = partitions.into_iter().unzip();
        pass.files.extend(files);
        pass.responses
            .push(FetchableTopicResponse::default().with_topic(topic.topic.clone()).with_partitions(partitions));
    }
    pass
}
