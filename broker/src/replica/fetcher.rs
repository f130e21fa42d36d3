//! The follower's fetcher: one tokio task per followed partition that
//! copies the leader's log over the internal gRPC port (Kafka's replica
//! fetcher, with KIP-320's truncation by the last fetched epoch).
//!
//! Loop: FetchRecords(fetch offset = own log end, last fetched epoch, own
//! high watermark) → append the batches exactly as the leader stored them
//! (file I/O on the blocking pool) and take min(leader's high watermark, own
//! log end) as high watermark; on a diverging epoch, truncate and fetch
//! again at once; on any error, back off and keep trying — only a new
//! state from the controller, deletion or shutdown stops it (its
//! cancellation token). The backoff starts at a hundredth of
//! `replica.fetch.backoff.ms` and doubles up to it: the usual refusal is a
//! leader that has not yet published the metadata this follower acts on,
//! milliseconds behind, and every acks=all produce of the partition waits
//! for this follower meanwhile.
//!
//! Invariants: the fetcher never appends or truncates for a leader epoch its
//! partition has left (the partition checks under its log lock, and the task
//! ends); it never writes a batch that fails validation; it holds no lock
//! across an `.await`.

use std::sync::Arc;
use std::time::Duration;

use strom_proto::replication::replication_client::ReplicationClient;
use strom_proto::replication::{FetchRecordsRequest, FetchRecordsResponse};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::error::ReplicaError;
use super::partition::{FollowerPosition, Partition};
use super::{ReplicaConfig, ReplicationThrottle, error_codes};

/// Where a follower truncates when the leader reports that its log
/// diverges: the leader's end offset for the epoch it found
/// (`diverging_end_offset`) or, if earlier, where the follower's own
/// largest epoch ≤ that epoch ends (`own_epoch_end`, from the follower's
/// epoch cache). When the follower has that same epoch this is Kafka's
/// min(leader's end, own end); when it lacks it, truncating to where its
/// own earlier epoch ends makes the next fetch compare that epoch — so the
/// search converges in a few rounds and never keeps a record the leader
/// does not have. Never above the follower's log end offset.
pub fn follower_truncation_offset(diverging_end_offset: i64, own_epoch_end: Option<(i32, i64)>, own_leo: i64) -> i64 {
    let target = match own_epoch_end {
        Some((_, own_end)) => diverging_end_offset.min(own_end),
        None => diverging_end_offset,
    };
    target.min(own_leo).max(0)
}

/// Everything one fetcher task needs.
#[derive(Debug)]
pub(crate) struct Fetcher {
    /// The followed partition.
    pub partition: Arc<Partition>,
    /// This broker's id (the fetch's replica id).
    pub node_id: i32,
    /// The leader's broker id (for logs).
    pub leader: i32,
    /// The leader epoch this fetcher follows.
    pub leader_epoch: i32,
    /// The leader's internal address (for logs).
    pub endpoint: String,
    /// A client on the leader's channel.
    pub client: ReplicationClient<Channel>,
    /// Fetch sizes, waits and backoffs.
    pub config: ReplicaConfig,
    /// Paces the fetches of a replica a reassignment is adding.
    pub throttle: Arc<ReplicationThrottle>,
    /// Cancelled when the fetcher must stop.
    pub cancel: CancellationToken,
}

/// What one round of the loop leads to.
enum Next {
    /// Fetch again at once from this position.
    Fetch(FollowerPosition),
    /// Pause, then fetch again from this position.
    Retry(FollowerPosition, String),
    /// The partition moved on from this fetcher's epoch.
    Stop,
}

impl Fetcher {
    /// Runs until cancelled or until the partition leaves this epoch.
    pub(crate) async fn run(mut self) {
        let tp = self.partition.topic_partition().clone();
        tracing::info!(partition = %tp, leader = self.leader, leader_epoch = self.leader_epoch, endpoint = %self.endpoint, "fetcher started");
        let p = self.partition.clone();
        let Some(mut position) = blocking(move || p.follower_position()).await else { return };
        let mut failures: u32 = 0;
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            let next = self.round(position).await;
            match next {
                Next::Fetch(p) => {
                    position = p;
                    failures = 0;
                }
                Next::Retry(p, reason) => {
                    position = p;
                    failures = failures.saturating_add(1);
                    let backoff = retry_backoff(failures, self.config.fetch_backoff);
                    if failures == 1 {
                        tracing::warn!(partition = %tp, leader = self.leader, endpoint = %self.endpoint, "fetch failed, retrying: {reason}");
                    } else {
                        tracing::debug!(partition = %tp, leader = self.leader, failures, "fetch failed again: {reason}");
                    }
                    tokio::select! {
                        _ = self.cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                }
                Next::Stop => break,
            }
        }
        tracing::info!(partition = %tp, leader_epoch = self.leader_epoch, "fetcher stopped");
    }

    /// One fetch and what is done with its answer.
    async fn round(&mut self, position: FollowerPosition) -> Next {
        let tp = self.partition.topic_partition();
        let request = FetchRecordsRequest {
            topic: tp.topic.clone(),
            partition: tp.partition,
            fetch_offset: position.fetch_offset,
            last_fetched_epoch: position.last_fetched_epoch,
            replica_id: self.node_id,
            max_bytes: self.config.fetch_max_bytes.min(i32::MAX as usize) as i32,
            current_leader_epoch: self.leader_epoch,
            high_watermark: Some(position.high_watermark),
        };
        let mut request = tonic::Request::new(request);
        request.set_timeout(self.config.fetch_wait_max + self.config.socket_timeout);
        let response = tokio::select! {
            _ = self.cancel.cancelled() => return Next::Stop,
            r = self.client.fetch_records(request) => r,
        };
        let response = match response {
            Ok(r) => r.into_inner(),
            Err(status) => return Next::Retry(position, format!("FetchRecords RPC to {}: {status}", self.endpoint)),
        };
        let fetched = response.records.len();
        let next = self.take(position, response).await;
        if fetched > 0 {
            tokio::select! {
                _ = self.cancel.cancelled() => return Next::Stop,
                _ = self.throttle.pace(tp, fetched) => {}
            }
        }
        next
    }

    /// Applies a leader's answer to the log.
    async fn take(&self, position: FollowerPosition, response: FetchRecordsResponse) -> Next {
        let p = self.partition.clone();
        let epoch = self.leader_epoch;
        let result = match response.error_code {
            error_codes::NONE => match response.diverging_epoch {
                Some(d) => blocking(move || p.truncate_on_divergence(epoch, d.epoch, d.end_offset)).await,
                None => {
                    let records = response.records;
                    let hw = response.high_watermark;
                    blocking(move || p.append_as_follower(epoch, &records, hw)).await
                }
            },
            error_codes::OFFSET_OUT_OF_RANGE => {
                let (start, end) = (response.log_start_offset, response.log_end_offset);
                let moved = blocking(move || p.reset_out_of_range(epoch, start, end)).await;
                match moved {
                    Some(Ok(new)) if new.fetch_offset != position.fetch_offset => Some(Ok(new)),
                    Some(Ok(new)) => {
                        return Next::Retry(new, format!("offset out of range: {}", response.error_message));
                    }
                    other => other,
                }
            }
            code => {
                return Next::Retry(position, format!("leader refused with error {code} ({})", response.error_message));
            }
        };
        match result {
            None => Next::Stop,
            Some(Ok(new)) => Next::Fetch(new),
            Some(Err(ReplicaError::StaleFetcher { .. })) => Next::Stop,
            Some(Err(e)) => Next::Retry(position, e.to_string()),
        }
    }
}

/// Runs blocking log work on the blocking pool; `None` if it panicked (the
/// panic is logged and the fetcher stops; the next state restarts it).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!("fetcher's log work failed: {e}");
            None
        }
    }
}

/// The smallest pause between two fetch attempts (when the backoff setting is 0).
const MIN_BACKOFF: Duration = Duration::from_millis(1);

/// The pause after the `failures`-th failed fetch in a row (from 1): a
/// hundredth of `ceiling` (`replica.fetch.backoff.ms`), doubling with each
/// failure up to `ceiling`, and never below [`MIN_BACKOFF`].
fn retry_backoff(failures: u32, ceiling: Duration) -> Duration {
    let first = ceiling / 100;
    let doublings = failures.saturating_sub(1).min(16);
    (first * (1u32 << doublings)).min(ceiling).max(MIN_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_starts_small_and_doubles_up_to_the_setting() {
        let ceiling = Duration::from_millis(1000);
        let pauses: Vec<u128> = (1..=9).map(|f| retry_backoff(f, ceiling).as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(retry_backoff(u32::MAX, ceiling), ceiling, "a long outage stays at the setting");
        assert_eq!(retry_backoff(1, Duration::ZERO), MIN_BACKOFF, "a zero setting still pauses");
        assert_eq!(retry_backoff(1, Duration::from_millis(50)), MIN_BACKOFF);
    }

    #[test]
    fn truncation_keeps_what_both_logs_share_for_the_epoch() {
        // Same epoch on both sides: the earlier of the two ends.
        assert_eq!(follower_truncation_offset(15, Some((2, 20)), 20), 15);
        assert_eq!(follower_truncation_offset(15, Some((2, 12)), 20), 12);
        // The follower lacks the epoch: cut back to where its earlier epoch
        // ends (follower 1:[0,10) 3:[10,20) vs leader 1:[0,10) 2:[10,15)).
        assert_eq!(follower_truncation_offset(15, Some((1, 10)), 20), 10);
        // No epoch at all: the leader's end, never above the own log end.
        assert_eq!(follower_truncation_offset(15, None, 12), 12);
        assert_eq!(follower_truncation_offset(15, None, 40), 15);
    }
}
