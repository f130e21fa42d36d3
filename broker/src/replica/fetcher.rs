//! The follower's fetcher: one fetch session per leader this broker copies
//! from — a tokio task that fetches every partition it follows from that
//! leader in one long poll per round over the internal gRPC port (Kafka's
//! replica fetcher thread with its fetch session, and KIP-320's truncation
//! by the last fetched epoch). The rounds go over one persistent
//! `FetchStream` to the leader, or as `FetchPartitions` calls (see
//! [`super::transport`]: `replica.fetch.stream`, a leader of the previous
//! version, and what an interrupted round does to the stream).
//!
//! A partition joins its leader's session when this broker starts following
//! it at a leader epoch ([`FetchSession::join`]), and leaves when its
//! cancellation token is cancelled: by the manager (a new state, deletion,
//! shutdown) or by the session itself when the partition moved on from that
//! epoch. A join aborts the round in flight, and so does a member left out
//! of it (backing off, throttled) once it may fetch again: none waits
//! other partitions' long poll out (an aborted round's stream is replaced
//! by a new one, its answer never read).
//!
//! A round: the members not backing off or throttled ask for records from
//! their own log end, with their last fetched epoch and high watermark, in
//! one request (the leader answers when any of them has something, else
//! after `replica.fetch.wait.max.ms`). All the answers are applied in one
//! job on the broker's log writer ([`super::writer`]): the batches appended exactly as the leader
//! stored them, the high watermark taken as min(leader's, own log end); a
//! diverging epoch truncates; an out-of-range offset resets the log. An
//! answer with nothing new costs no trip at all. A member whose answer
//! fails backs off alone, a failed round (call or stream) backs off all
//! that were in it, and a failed stream is replaced at the next round: from
//! a hundredth of `replica.fetch.backoff.ms`, doubling up to it — the usual
//! refusal is a leader that has not yet published the metadata this
//! follower acts on, milliseconds behind, and every acks=all produce of the
//! partition waits for this follower meanwhile. A throttled member (see
//! [`ReplicationThrottle`]) sits out rounds until the bytes it took are paid
//! for; the others go on. Members are asked for in a rotating order, so
//! under `replica.fetch.response.max.bytes` none is always last.
//!
//! Invariants: the fetcher never appends or truncates for a leader epoch its
//! partition has left (the partition checks under its log lock, and the
//! member leaves); it never writes a batch that fails validation; it holds
//! no lock across an `.await`. When the session ends (shutdown, or a panic)
//! every member's token is cancelled, so the manager starts them afresh.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use strom_proto::replication::replication_client::ReplicationClient;
use strom_proto::replication::{FetchPartitionsRequest, FetchRecordsRequest, FetchRecordsResponse};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::error::ReplicaError;
use super::partition::{FollowerPosition, Partition};
use super::transport::FetchTransport;
use super::{FetchTransportStats, ReplicaConfig, ReplicationThrottle, error_codes};

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

/// A partition to copy from the session's leader at one leader epoch.
#[derive(Debug)]
pub(crate) struct Follow {
    /// The followed partition.
    pub partition: Arc<Partition>,
    /// The leader's broker id (for logs).
    pub leader: i32,
    /// The leader epoch this partition is followed at.
    pub leader_epoch: i32,
    /// Cancelled when the partition must stop fetching at this epoch; the
    /// session cancels it too when it drops the partition.
    pub cancel: CancellationToken,
}

/// What the session's task and its starter share: partitions waiting to
/// join, and the signal that some are.
#[derive(Debug, Default)]
struct Inbox {
    joining: Mutex<Vec<Follow>>,
    joined: Notify,
}

/// The manager's handle on the fetch session with one leader's address.
#[derive(Debug)]
pub(crate) struct FetchSession {
    inbox: Arc<Inbox>,
    task: JoinHandle<()>,
}

/// Everything a session's task needs to talk to its leader.
#[derive(Debug)]
pub(crate) struct SessionSetup {
    /// This broker's id (the fetch's replica id).
    pub node_id: i32,
    /// The leader's internal address (for logs).
    pub endpoint: String,
    /// A client on the leader's channel.
    pub client: ReplicationClient<Channel>,
    /// Fetch sizes, waits and backoffs, read at every round.
    pub config: Arc<RwLock<ReplicaConfig>>,
    /// Paces the fetches of throttled replicas.
    pub throttle: Arc<ReplicationThrottle>,
    /// Runs the appends of the leader's answers.
    pub writer: Arc<super::LogWriter>,
    /// The leader's broker id (picks the writer thread).
    pub leader_id: i32,
    /// Counts the fallbacks to calls.
    pub stats: Arc<FetchTransportStats>,
    /// Cancelled when the broker stops replicating.
    pub stop: CancellationToken,
}

impl FetchSession {
    /// Starts the session's task on `runtime`.
    pub(crate) fn start(runtime: &tokio::runtime::Handle, setup: SessionSetup) -> FetchSession {
        let inbox = Arc::new(Inbox::default());
        let session = Session { setup, inbox: inbox.clone(), members: Members(Vec::new()), rotation: 0 };
        FetchSession { inbox, task: runtime.spawn(session.run()) }
    }

    /// Adds `follow` to the session (replacing the partition's previous
    /// membership, if any).
    pub(crate) fn join(&self, follow: Follow) {
        self.inbox.joining.lock().push(follow);
        self.inbox.joined.notify_one();
    }

    /// Whether the session's task still runs (it ends only on shutdown or a panic).
    pub(crate) fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

/// One partition in a session.
#[derive(Debug)]
struct Member {
    follow: Follow,
    /// Its next fetch position; `None` until read from its log.
    position: Option<FollowerPosition>,
    /// Failed fetches in a row.
    failures: u32,
    /// Backing off or throttled until then.
    not_before: Option<Instant>,
}

/// The session's members; dropping them (the task ending) cancels their tokens.
#[derive(Debug)]
struct Members(Vec<Member>);

impl Drop for Members {
    fn drop(&mut self) {
        for m in &self.0 {
            m.follow.cancel.cancel();
        }
    }
}

/// The session's task.
#[derive(Debug)]
struct Session {
    setup: SessionSetup,
    inbox: Arc<Inbox>,
    members: Members,
    /// Where the next request starts in the member list.
    rotation: usize,
}

/// What one member's answer leads to.
enum Next {
    /// Fetch again at once from this position.
    Fetch(FollowerPosition),
    /// Pause, then fetch again from this position.
    Retry(FollowerPosition, String),
    /// The partition moved on from this member's epoch.
    Stop,
}

impl Session {
    /// Runs until the broker stops replicating.
    async fn run(mut self) {
        tracing::debug!(endpoint = %self.setup.endpoint, "fetch session started");
        let (client, endpoint, stats) =
            (self.setup.client.clone(), self.setup.endpoint.clone(), self.setup.stats.clone());
        let mut transport = FetchTransport::new(client, endpoint, stats);
        while !self.setup.stop.is_cancelled() {
            self.admit();
            self.load_positions().await;
            let now = Instant::now();
            let ready = self.ready(now);
            // The first member left out (backing off, throttled) to become ready again.
            let next_ready = self.members.0.iter().filter_map(|m| m.not_before).filter(|t| *t > now).min();
            if ready.is_empty() {
                tokio::select! {
                    _ = self.setup.stop.cancelled() => break,
                    _ = self.inbox.joined.notified() => {}
                    _ = sleep_until_or_forever(next_ready) => {}
                }
                continue;
            }
            let config = self.setup.config.read().clone();
            let answer = tokio::select! {
                _ = self.setup.stop.cancelled() => break,
                // A new member, or one left out that may fetch again: ask
                // again with it rather than wait this poll out.
                _ = self.inbox.joined.notified() => continue,
                _ = sleep_until_or_forever(next_ready) => continue,
                r = transport.round(|| self.request(&ready, &config), &config) => r,
            };
            match answer {
                Ok(r) if r.partitions.len() == ready.len() => {
                    self.apply(&ready, r.partitions, &config).await;
                }
                Ok(r) => {
                    let reason = format!(
                        "fetch from {} answered {} partitions for {} asked",
                        self.setup.endpoint,
                        r.partitions.len(),
                        ready.len()
                    );
                    self.fail_all(&ready, &reason, &config);
                }
                Err(status) => {
                    let reason = format!("fetch from {}: {status}", self.setup.endpoint);
                    self.fail_all(&ready, &reason, &config);
                }
            }
        }
        tracing::debug!(endpoint = %self.setup.endpoint, "fetch session stopped");
    }

    /// Takes in the partitions waiting to join and drops the members whose
    /// token was cancelled.
    fn admit(&mut self) {
        // The signal of the joins taken in below, consumed first: left
        // stored, it would abort the next round for nothing (a later join
        // stores a new one).
        let _ = futures::FutureExt::now_or_never(self.inbox.joined.notified());
        let joining = std::mem::take(&mut *self.inbox.joining.lock());
        for follow in joining {
            let tp = follow.partition.topic_partition().clone();
            tracing::info!(partition = %tp, leader = follow.leader, leader_epoch = follow.leader_epoch, endpoint = %self.setup.endpoint, "fetcher started");
            let member = Member { follow, position: None, failures: 0, not_before: None };
            match self.members.0.iter_mut().find(|m| *m.follow.partition.topic_partition() == tp) {
                Some(old) => {
                    let old = std::mem::replace(old, member);
                    old.follow.cancel.cancel();
                }
                None => self.members.0.push(member),
            }
        }
        self.drop_cancelled();
    }

    /// Drops the members whose token was cancelled (by the manager, or by
    /// this session once their partition moved on).
    fn drop_cancelled(&mut self) {
        self.members.0.retain(|m| {
            let stays = !m.follow.cancel.is_cancelled();
            if !stays {
                let tp = m.follow.partition.topic_partition();
                tracing::info!(partition = %tp, leader_epoch = m.follow.leader_epoch, "fetcher stopped");
            }
            stays
        });
    }

    /// Reads the fetch position of the members that have none yet, in one
    /// trip to the blocking pool.
    async fn load_positions(&mut self) {
        let missing: Vec<(usize, Arc<Partition>)> = (self.members.0.iter().enumerate())
            .filter(|(_, m)| m.position.is_none())
            .map(|(i, m)| (i, m.follow.partition.clone()))
            .collect();
        if missing.is_empty() {
            return;
        }
        let indices: Vec<usize> = missing.iter().map(|(i, _)| *i).collect();
        let loaded =
            blocking(move || missing.into_iter().map(|(i, p)| (i, p.follower_position())).collect::<Vec<_>>()).await;
        match loaded {
            Some(loaded) => loaded.into_iter().for_each(|(i, position)| self.members.0[i].position = Some(position)),
            // Reading the logs panicked (logged): those members stop, as in
            // `apply`; the next state from the controller starts them again.
            None => indices.into_iter().for_each(|i| self.members.0[i].follow.cancel.cancel()),
        }
    }

    /// The members to fetch for now, in this round's rotated order.
    fn ready(&mut self, now: Instant) -> Vec<usize> {
        let n = self.members.0.len();
        if n == 0 {
            return Vec::new();
        }
        self.rotation = (self.rotation + 1) % n;
        (0..n)
            .map(|k| (self.rotation + k) % n)
            .filter(|&i| {
                let m = &self.members.0[i];
                m.position.is_some() && m.not_before.is_none_or(|t| t <= now)
            })
            .collect()
    }

    /// One request for the `ready` members.
    fn request(&self, ready: &[usize], config: &ReplicaConfig) -> FetchPartitionsRequest {
        let partitions = ready
            .iter()
            .filter_map(|&i| {
                let m = &self.members.0[i];
                let position = m.position?;
                let tp = m.follow.partition.topic_partition();
                Some(FetchRecordsRequest {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    fetch_offset: position.fetch_offset,
                    last_fetched_epoch: position.last_fetched_epoch,
                    replica_id: self.setup.node_id,
                    max_bytes: clamp_to_i32(config.fetch_max_bytes),
                    current_leader_epoch: m.follow.leader_epoch,
                    high_watermark: Some(position.high_watermark),
                    log_start_offset: Some(position.log_start_offset),
                })
            })
            .collect();
        FetchPartitionsRequest {
            replica_id: self.setup.node_id,
            partitions,
            max_bytes: clamp_to_i32(config.fetch_response_max_bytes),
        }
    }

    /// Applies the leader's answers (in `ready`'s order) to the logs.
    async fn apply(&mut self, ready: &[usize], answers: Vec<FetchRecordsResponse>, config: &ReplicaConfig) {
        let mut work = Vec::new();
        for (&i, answer) in ready.iter().zip(answers) {
            let m = &mut self.members.0[i];
            let Some(position) = m.position else { continue };
            if m.follow.cancel.is_cancelled() {
                continue;
            }
            if brings_nothing_new(&answer, &position) {
                m.failures = 0;
                continue;
            }
            work.push((i, m.follow.partition.clone(), m.follow.leader_epoch, position, answer));
        }
        if work.is_empty() {
            return;
        }
        let taken: Vec<usize> = work.iter().map(|(i, ..)| *i).collect();
        let key = self.setup.leader_id as u64;
        let bytes = work.iter().map(|(.., answer)| answer.records.len()).sum();
        let outcomes = (self.setup.writer.run(key, bytes, move || {
            work.into_iter()
                .map(|(i, partition, epoch, position, answer)| {
                    let bytes = answer.records.len();
                    (i, bytes, take(&partition, epoch, position, answer))
                })
                .collect::<Vec<_>>()
        }))
        .await
        .inspect_err(|panic| tracing::error!("fetcher's log work failed: {}", panic_message(panic.as_ref())))
        .ok();
        match outcomes {
            Some(outcomes) => {
                for (i, bytes, next) in outcomes {
                    self.settle(i, bytes, next, config);
                }
            }
            // The log work panicked (logged): those members stop; the next
            // state from the controller starts them again.
            None => {
                for i in taken {
                    self.members.0[i].follow.cancel.cancel();
                }
            }
        }
    }

    /// Records what member `i`'s answer led to.
    fn settle(&mut self, i: usize, bytes: usize, next: Next, config: &ReplicaConfig) {
        let m = &mut self.members.0[i];
        let partition = m.follow.partition.clone();
        let tp = partition.topic_partition();
        match next {
            Next::Fetch(position) => {
                m.position = Some(position);
                m.failures = 0;
                let wait = if bytes > 0 { self.setup.throttle.charge(tp, bytes) } else { Duration::ZERO };
                m.not_before = (!wait.is_zero()).then(|| Instant::now() + wait);
            }
            Next::Retry(position, reason) => {
                m.position = Some(position);
                back_off(m, config);
                if m.failures == 1 {
                    tracing::warn!(partition = %tp, leader = m.follow.leader, endpoint = %self.setup.endpoint, "fetch failed, retrying: {reason}");
                } else {
                    tracing::debug!(partition = %tp, leader = m.follow.leader, failures = m.failures, "fetch failed again: {reason}");
                }
            }
            Next::Stop => m.follow.cancel.cancel(),
        }
    }

    /// Backs off every member of a call that failed as a whole, and says so
    /// once for the call (the first failure in a row at warn level).
    fn fail_all(&mut self, ready: &[usize], reason: &str, config: &ReplicaConfig) {
        let mut first_failure = false;
        for &i in ready {
            let m = &mut self.members.0[i];
            back_off(m, config);
            first_failure |= m.failures == 1;
        }
        if first_failure {
            tracing::warn!(endpoint = %self.setup.endpoint, partitions = ready.len(), "fetch failed, retrying: {reason}");
        } else {
            tracing::debug!(endpoint = %self.setup.endpoint, partitions = ready.len(), "fetch failed again: {reason}");
        }
    }
}

/// Counts a failed fetch of `m` and pauses it for the backoff that follows.
fn back_off(m: &mut Member, config: &ReplicaConfig) {
    m.failures = m.failures.saturating_add(1);
    m.not_before = Some(Instant::now() + retry_backoff(m.failures, config.fetch_backoff));
}

/// Whether applying `answer` would change nothing: no records, no
/// divergence, no error, and the high watermark and log start offset the
/// follower already has (or none: the leader did not serve the partition
/// this time).
fn brings_nothing_new(answer: &FetchRecordsResponse, position: &FollowerPosition) -> bool {
    answer.error_code == error_codes::NONE
        && answer.diverging_epoch.is_none()
        && answer.records.is_empty()
        && (answer.high_watermark < 0 || answer.high_watermark == position.high_watermark)
        && answer.log_start_offset <= position.log_start_offset
}

/// Applies a leader's answer to `partition`'s log.
///
/// Blocking file I/O: call from a blocking-capable context.
fn take(partition: &Partition, epoch: i32, position: FollowerPosition, answer: FetchRecordsResponse) -> Next {
    let result = match answer.error_code {
        error_codes::NONE => match answer.diverging_epoch {
            Some(d) => partition.truncate_on_divergence(epoch, d.epoch, d.end_offset),
            None => {
                partition.append_as_follower(epoch, &answer.records, answer.high_watermark, answer.log_start_offset)
            }
        },
        error_codes::OFFSET_OUT_OF_RANGE => {
            match partition.reset_out_of_range(epoch, answer.log_start_offset, answer.log_end_offset) {
                Ok(new) if new.fetch_offset == position.fetch_offset => {
                    return Next::Retry(new, format!("offset out of range: {}", answer.error_message));
                }
                other => other,
            }
        }
        code => {
            return Next::Retry(position, format!("leader refused with error {code} ({})", answer.error_message));
        }
    };
    match result {
        Ok(new) => Next::Fetch(new),
        Err(ReplicaError::StaleFetcher { .. }) => Next::Stop,
        // From where the log ends now: it may have been truncated under the
        // fetch (a damaged batch cut by the background scrub).
        Err(e) => Next::Retry(partition.follower_position(), e.to_string()),
    }
}

/// The message of a caught panic, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => s,
        (_, Some(s)) => s,
        _ => "a panic without a message",
    }
}

async fn sleep_until_or_forever(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn clamp_to_i32(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

/// Runs blocking log work on the blocking pool; `None` if it panicked (the
/// panic is logged).
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
