//! The `Replication` gRPC service (`strom.replication.v1`): the leader's side
//! of follower fetch, served on the internal port.
//!
//! `FetchPartitions` is what followers use: one fetch for all the partitions
//! a follower copies from this broker, each answered as `FetchRecords`
//! answers one (below). `FetchStream` carries the same fetches one after
//! another on one persistent stream (see [`super::stream`]); a fetch of
//! either goes through one door, [`ReplicationService::serve_fetch`]: the
//! caller check, then [`ReplicationService::fetch_partitions`]. A fetch is
//! answered at once when any partition has records, a newer high
//! watermark, a divergence or a refusal for the follower, and otherwise
//! waits up to `replica.fetch.wait.max.ms` for any of them to change. The
//! records of the whole answer stay within the request's `max_bytes` (at
//! least one batch is sent): a partition beyond that limit is not served
//! this time — nothing recorded, no records, and high watermark -1 — and
//! the follower asks again.
//!
//! With internal TLS, a fetch (`FetchRecords`, `FetchPartitions`, each
//! request on a `FetchStream`) is served for replica N only when the
//! caller's certificate names broker N; any other caller gets
//! PERMISSION_DENIED and nothing is recorded (the high watermark cannot move
//! on its word). `OffsetForLeaderEpoch` reads only, and is answered to any
//! broker.
//!
//! `FetchRecords` refuses — with a Kafka error code and a message, never
//! touching any state — a fetch for a partition this broker does not lead
//! (NOT_LEADER_OR_FOLLOWER), from a broker that is not one of the
//! partition's followers (NOT_LEADER_OR_FOLLOWER), or under another leader
//! epoch (FENCED_LEADER_EPOCH when the follower's is older,
//! UNKNOWN_LEADER_EPOCH when newer). A follower whose last fetched epoch
//! ends earlier here gets the diverging epoch instead of records. Otherwise
//! the follower's position is recorded (high watermark, ISR) and it gets
//! the batches from its fetch offset up to the log end offset — not the high
//! watermark — at most `max_bytes` but at least one batch. A caught-up
//! follower's fetch waits up to `replica.fetch.wait.max.ms` for new records
//! or a newer high watermark rather than answering empty at once.
//!
//! A fetch from at or above the high watermark — an in-sync follower's,
//! every round under acks=all — is served on the async thread when the log
//! is free: its bookkeeping, and the read of records not yet committed,
//! appended moments ago and so in the page cache (at most `max_bytes`). A
//! fetch from further back, which may read cold data, or one that finds an
//! append holding the log, goes through the blocking pool: a runtime thread
//! never waits on a write or a disk read. No lock is held across an
//! `.await`.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use strom_proto::replication::replication_server::{Replication, ReplicationServer};
use strom_proto::replication::{
    EpochEndOffset, FetchPartitionsRequest, FetchPartitionsResponse, FetchRecordsRequest, FetchRecordsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use super::partition::{FetchOutcome, FetchReply, FollowerFetch, Partition};
use super::{ReplicaManager, error_codes, now_ms};
use crate::log::TopicPartition;
use crate::tls::{Caller, Identity};

/// The `Replication` service over this broker's replicas.
#[derive(Debug, Clone)]
pub struct ReplicationService {
    manager: Arc<ReplicaManager>,
    /// Whether `FetchStream` is served (else UNIMPLEMENTED, as from a
    /// broker that predates it).
    offers_stream: bool,
}

impl ReplicationService {
    /// The service for `manager`'s partitions.
    pub fn new(manager: Arc<ReplicaManager>) -> ReplicationService {
        ReplicationService { manager, offers_stream: true }
    }

    /// The service as a broker of the previous version serves it:
    /// `FetchStream` answers UNIMPLEMENTED (tests of mixed versions).
    pub fn without_stream(manager: Arc<ReplicaManager>) -> ReplicationService {
        ReplicationService { manager, offers_stream: false }
    }

    /// The replicas served.
    pub(crate) fn manager(&self) -> &Arc<ReplicaManager> {
        &self.manager
    }

    /// The one door of every follower fetch, whatever its transport: admits
    /// `caller` for the request's replica id (see [`authorize_fetch`]), then
    /// serves it (nothing is looked at or recorded for a refused caller).
    pub(crate) async fn serve_fetch(
        &self,
        caller: &Caller,
        request: FetchPartitionsRequest,
    ) -> Result<FetchPartitionsResponse, Status> {
        authorize_fetch(caller, request.replica_id)?;
        Ok(self.fetch_partitions(request).await)
    }

    /// The tonic server to add to the internal gRPC server.
    pub fn into_server(self) -> ReplicationServer<ReplicationService> {
        ReplicationServer::new(self)
    }

    /// Answers one follower fetch (see the module docs): a
    /// [`ReplicationService::fetch_partitions`] of that one partition.
    pub async fn fetch(&self, request: FetchRecordsRequest) -> FetchRecordsResponse {
        let (replica_id, max_bytes) = (request.replica_id, request.max_bytes);
        let request = FetchPartitionsRequest { replica_id, partitions: vec![request], max_bytes };
        let answer = self.fetch_partitions(request).await.partitions.pop();
        answer.unwrap_or_else(|| refused(error_codes::KAFKA_STORAGE_ERROR, "the fetch got no answer".into()))
    }

    /// Answers one fetch for several partitions (see the module docs).
    pub async fn fetch_partitions(&self, request: FetchPartitionsRequest) -> FetchPartitionsResponse {
        let replica_id = request.replica_id;
        let max_bytes = request.max_bytes.max(0) as usize;
        let mut targets: Vec<Target> = request.partitions.into_iter().map(|r| self.resolve(r, replica_id)).collect();
        let mut answers = self.serve_all(&targets, true, max_bytes).await;
        if !answers.is_empty() && answers.iter().all(|a| a.caught_up) {
            let wait = self.manager.replica_config().fetch_wait_max;
            {
                let mut changes: FuturesUnordered<_> = targets
                    .iter_mut()
                    .filter_map(|t| match t {
                        Target::Hosted { log_end, high_watermark, .. } => Some([log_end, high_watermark]),
                        Target::Refused(_) => None,
                    })
                    .flatten()
                    .map(|receiver| receiver.changed())
                    .collect();
                tokio::select! {
                    _ = changes.next() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.manager.stopped() => {}
                }
            }
            answers = self.serve_all(&targets, false, max_bytes).await;
        }
        FetchPartitionsResponse { partitions: answers.into_iter().map(|a| a.response).collect() }
    }

    /// The partition a fetch is for and the fetch as the partition takes it,
    /// with receivers subscribed before its first look (so a change in
    /// between still wakes a waiting fetch), or the refusal when this broker
    /// does not host it.
    fn resolve(&self, request: FetchRecordsRequest, replica_id: i32) -> Target {
        let tp = TopicPartition::new(request.topic, request.partition);
        let Some(partition) = self.manager.get(&tp) else {
            return Target::Refused(refused(
                error_codes::NOT_LEADER_OR_FOLLOWER,
                format!("broker {} does not host partition {tp}", self.manager.node_id()),
            ));
        };
        let fetch = FollowerFetch {
            replica_id,
            fetch_offset: request.fetch_offset,
            last_fetched_epoch: request.last_fetched_epoch,
            current_leader_epoch: request.current_leader_epoch,
            max_bytes: request.max_bytes.max(0) as usize,
            high_watermark: request.high_watermark,
            log_start_offset: request.log_start_offset,
        };
        let (log_end, high_watermark) = partition.watch_for_follower();
        Target::Hosted { partition, fetch, log_end, high_watermark }
    }

    /// Serves every target once, within `max_bytes` of records in all:
    /// those reading only recent records on this thread when their log is
    /// free, the others in one trip to the blocking pool.
    ///
    /// On the pool, each ISR change is sent from the pool's thread. It must
    /// not depend on this handler: when the follower disconnects (a broker
    /// shutting down), tonic drops the handler's future while the blocking
    /// work still runs, and a proposal left for the handler would be lost
    /// with the partition's pending ISR change set, so the ISR would never
    /// change again.
    async fn serve_all(&self, targets: &[Target], may_wait: bool, max_bytes: usize) -> Vec<Answer> {
        let mut answers: Vec<Option<Answer>> = vec![None; targets.len()];
        let mut budget = ByteBudget::new(max_bytes);
        let mut on_pool = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let (partition, fetch) = match target {
                Target::Refused(refusal) => {
                    answers[i] = Some(Answer { response: refusal.clone(), caught_up: false });
                    continue;
                }
                Target::Hosted { partition, fetch, .. } => (partition, fetch),
            };
            if budget.spent() {
                answers[i] = Some(Answer::not_served());
                continue;
            }
            let fetch = budget.limit(fetch);
            let recent = reads_only_recent_records(partition, &fetch);
            match recent.then(|| self.try_serve_now(partition, &fetch, may_wait)).flatten() {
                Some(reply) => answers[i] = Some(budget.take(reply)),
                None => on_pool.push((i, partition.clone(), fetch)),
            }
        }
        if !on_pool.is_empty() {
            let asked: Vec<(usize, Arc<Partition>)> = on_pool.iter().map(|(i, p, _)| (*i, p.clone())).collect();
            let manager = self.manager.clone();
            let served = blocking(move || {
                let mut served = Vec::with_capacity(on_pool.len());
                for (i, partition, fetch) in on_pool {
                    if budget.spent() {
                        served.push((i, Answer::not_served()));
                        continue;
                    }
                    let fetch = budget.limit(&fetch);
                    let reply = partition.serve_follower_fetch(&fetch, now_ms(), may_wait);
                    served.push((i, budget.take(send_proposal(&manager, &partition, reply))));
                }
                served
            })
            .await;
            match served {
                Some(served) => served.into_iter().for_each(|(i, answer)| answers[i] = Some(answer)),
                None => {
                    for (i, partition) in asked {
                        let message = format!("reading {} failed", partition.topic_partition());
                        let refusal = refused(error_codes::KAFKA_STORAGE_ERROR, message);
                        answers[i] = Some(Answer { response: refusal, caught_up: false });
                    }
                }
            }
        }
        answers.into_iter().map(|a| a.unwrap_or_else(Answer::not_served)).collect()
    }

    /// Serves a fetch on the calling thread, for one that reads only recent
    /// records: a few bookkeeping steps under the partition's locks and a
    /// read of what the page cache still holds. `None` (nothing done) when
    /// an append holds the log: the caller goes through the blocking pool
    /// rather than stall a runtime thread behind a write. The ISR change, if
    /// any, is sent before returning, as on the pool.
    fn try_serve_now(&self, partition: &Arc<Partition>, fetch: &FollowerFetch, may_wait: bool) -> Option<FetchReply> {
        let reply = partition.try_serve_follower_fetch(fetch, now_ms(), may_wait)?;
        Some(send_proposal(&self.manager, partition, reply))
    }

    /// Answers OffsetForLeaderEpoch as leader.
    pub async fn offset_for_epoch(&self, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
        let tp = TopicPartition::new(request.topic.clone(), request.partition);
        let undefined = EpochEndOffset { epoch: -1, end_offset: -1 };
        let Some(partition) = self.manager.get(&tp) else {
            return OffsetForLeaderEpochResponse {
                error_code: error_codes::NOT_LEADER_OR_FOLLOWER,
                end: Some(undefined),
                error_message: format!("broker {} does not host partition {tp}", self.manager.node_id()),
            };
        };
        let (current, epoch) = (request.current_leader_epoch, request.leader_epoch);
        let answer = blocking(move || partition.offset_for_leader_epoch(current, epoch)).await;
        match answer {
            Some(Ok((epoch, end_offset))) => OffsetForLeaderEpochResponse {
                error_code: error_codes::NONE,
                end: Some(EpochEndOffset { epoch, end_offset }),
                error_message: String::new(),
            },
            Some(Err((error_code, error_message))) => {
                OffsetForLeaderEpochResponse { error_code, end: Some(undefined), error_message }
            }
            None => OffsetForLeaderEpochResponse {
                error_code: error_codes::KAFKA_STORAGE_ERROR,
                end: Some(undefined),
                error_message: format!("looking up epoch {epoch} of {tp} failed"),
            },
        }
    }
}

#[tonic::async_trait]
impl Replication for ReplicationService {
    async fn fetch_records(
        &self,
        request: Request<FetchRecordsRequest>,
    ) -> Result<Response<FetchRecordsResponse>, Status> {
        self.manager.fetch_transport_stats().unary_request();
        authorize_fetch(&crate::tls::caller(&request), request.get_ref().replica_id)?;
        Ok(Response::new(self.fetch(request.into_inner()).await))
    }

    async fn fetch_partitions(
        &self,
        request: Request<FetchPartitionsRequest>,
    ) -> Result<Response<FetchPartitionsResponse>, Status> {
        self.manager.fetch_transport_stats().unary_request();
        let caller = crate::tls::caller(&request);
        Ok(Response::new(self.serve_fetch(&caller, request.into_inner()).await?))
    }

    type FetchStreamStream = super::stream::Answers;

    async fn fetch_stream(
        &self,
        request: Request<Streaming<FetchPartitionsRequest>>,
    ) -> Result<Response<Self::FetchStreamStream>, Status> {
        if !self.offers_stream {
            return Err(Status::unimplemented("FetchStream is not served here (use FetchPartitions)"));
        }
        // Only brokers fetch; each request is checked for its replica id.
        let caller = crate::tls::caller(&request);
        match &caller {
            Caller::Insecure | Caller::Authenticated(Identity::Broker(_)) => {}
            Caller::Authenticated(identity) => {
                return Err(Status::permission_denied(format!("{identity} may not fetch: only brokers do")));
            }
            Caller::Unidentified(reason) => {
                return Err(Status::permission_denied(format!("unidentified caller: {reason}")));
            }
        }
        let answers = super::stream::serve(self.clone(), caller, request.into_inner());
        Ok(Response::new(answers))
    }

    async fn offset_for_leader_epoch(
        &self,
        request: Request<OffsetForLeaderEpochRequest>,
    ) -> Result<Response<OffsetForLeaderEpochResponse>, Status> {
        match crate::tls::caller(&request) {
            Caller::Insecure | Caller::Authenticated(Identity::Broker(_)) => {}
            other => return Err(Status::permission_denied(format!("only brokers may ask for epochs, not {other:?}"))),
        }
        Ok(Response::new(self.offset_for_epoch(request.into_inner()).await))
    }
}

/// Admits a fetch for `replica_id` from `caller`: only broker `replica_id`
/// itself may fetch as that replica (anyone on an insecure listener).
fn authorize_fetch(caller: &Caller, replica_id: i32) -> Result<(), Status> {
    match caller {
        Caller::Insecure => Ok(()),
        Caller::Authenticated(Identity::Broker(id)) if *id == replica_id => Ok(()),
        Caller::Authenticated(identity) => {
            tracing::warn!(%identity, replica_id, "refused a fetch for another replica than the caller");
            Err(Status::permission_denied(format!(
                "{identity} may not fetch as replica {replica_id}: a broker fetches only as itself"
            )))
        }
        Caller::Unidentified(reason) => Err(Status::permission_denied(format!("unidentified caller: {reason}"))),
    }
}

/// Whether `fetch` reads only records above the high watermark: appended
/// moments ago, not yet committed, so still in the page cache.
fn reads_only_recent_records(partition: &Partition, fetch: &FollowerFetch) -> bool {
    fetch.fetch_offset >= partition.high_watermark()
}

/// A partition of a fetch: hosted here (with its change receivers), or refused.
enum Target {
    Refused(FetchRecordsResponse),
    Hosted {
        partition: Arc<Partition>,
        fetch: FollowerFetch,
        log_end: watch::Receiver<i64>,
        high_watermark: watch::Receiver<i64>,
    },
}

/// One partition's answer, and whether it only says "caught up".
#[derive(Debug, Clone)]
struct Answer {
    response: FetchRecordsResponse,
    caught_up: bool,
}

impl Answer {
    /// For a partition beyond the answer's byte limit: nothing, high watermark -1.
    fn not_served() -> Answer {
        let response = FetchRecordsResponse {
            high_watermark: -1,
            log_start_offset: -1,
            log_end_offset: -1,
            leader_epoch: -1,
            ..FetchRecordsResponse::default()
        };
        Answer { response, caught_up: false }
    }
}

/// Bytes of records an answer may still carry. The first records are sent
/// whatever the limit (a read returns at least one batch), as in Kafka.
#[derive(Debug, Clone, Copy)]
struct ByteBudget {
    left: usize,
    sent_any: bool,
}

impl ByteBudget {
    fn new(max_bytes: usize) -> ByteBudget {
        ByteBudget { left: max_bytes, sent_any: false }
    }

    fn spent(&self) -> bool {
        self.sent_any && self.left == 0
    }

    /// `fetch` asking for no more than what is left.
    fn limit(&self, fetch: &FollowerFetch) -> FollowerFetch {
        FollowerFetch { max_bytes: fetch.max_bytes.min(self.left), ..fetch.clone() }
    }

    /// Takes a served reply's records out of the budget.
    fn take(&mut self, reply: FetchReply) -> Answer {
        let caught_up = matches!(reply.outcome, FetchOutcome::CaughtUp);
        let response = response(reply);
        let sent = response.records.len();
        self.left = self.left.saturating_sub(sent);
        self.sent_any |= sent > 0;
        Answer { response, caught_up }
    }
}

fn refused(error_code: i32, error_message: String) -> FetchRecordsResponse {
    FetchRecordsResponse {
        error_code,
        error_message,
        high_watermark: -1,
        log_start_offset: -1,
        log_end_offset: -1,
        leader_epoch: -1,
        ..FetchRecordsResponse::default()
    }
}

fn response(reply: FetchReply) -> FetchRecordsResponse {
    let mut response = FetchRecordsResponse {
        error_code: error_codes::NONE,
        high_watermark: reply.high_watermark,
        log_start_offset: reply.log_start_offset,
        log_end_offset: reply.log_end_offset,
        leader_epoch: reply.leader_epoch,
        ..FetchRecordsResponse::default()
    };
    match reply.outcome {
        FetchOutcome::Refused { code, message } => {
            response.error_code = code;
            response.error_message = message;
        }
        FetchOutcome::Diverging { epoch, end_offset } => {
            response.diverging_epoch = Some(EpochEndOffset { epoch, end_offset });
        }
        FetchOutcome::Records(records) => response.records = records,
        FetchOutcome::CaughtUp => {}
    }
    response
}

/// Sends the ISR change a served fetch gave rise to, if any, and returns the reply.
fn send_proposal(manager: &ReplicaManager, partition: &Arc<Partition>, mut reply: FetchReply) -> FetchReply {
    if let Some(proposal) = reply.proposal.take() {
        manager.send_isr_proposal(partition.clone(), proposal);
    }
    reply
}

/// Runs blocking log work on the blocking pool; `None` if it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!("replication service's log work failed: {e}");
            None
        }
    }
}
