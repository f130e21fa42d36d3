//! The `Replication` gRPC service (`strom.replication.v1`): the leader's side
//! of follower fetch, served on the internal port.
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
//! A fetch from the log end — a caught-up follower's — is served on the
//! async thread when the log is free: its bookkeeping, and after the wait
//! the read of what was just appended (in the page cache). A fetch from
//! further back, or one that finds an append holding the log, goes through
//! the blocking pool: a runtime thread never waits on a write. No lock is
//! held across an `.await`.

use std::sync::Arc;

use strom_proto::replication::replication_server::{Replication, ReplicationServer};
use strom_proto::replication::{
    EpochEndOffset, FetchRecordsRequest, FetchRecordsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};
use tonic::{Request, Response, Status};

use super::partition::{FetchOutcome, FetchReply, FollowerFetch, Partition};
use super::{ReplicaManager, error_codes, now_ms};
use crate::log::TopicPartition;

/// The `Replication` service over this broker's replicas.
#[derive(Debug, Clone)]
pub struct ReplicationService {
    manager: Arc<ReplicaManager>,
}

impl ReplicationService {
    /// The service for `manager`'s partitions.
    pub fn new(manager: Arc<ReplicaManager>) -> ReplicationService {
        ReplicationService { manager }
    }

    /// The tonic server to add to the internal gRPC server.
    pub fn into_server(self) -> ReplicationServer<ReplicationService> {
        ReplicationServer::new(self)
    }

    /// Answers one follower fetch (see the module docs).
    pub async fn fetch(&self, request: FetchRecordsRequest) -> FetchRecordsResponse {
        let tp = TopicPartition::new(request.topic.clone(), request.partition);
        let Some(partition) = self.manager.get(&tp) else {
            return refused(
                error_codes::NOT_LEADER_OR_FOLLOWER,
                format!("broker {} does not host partition {tp}", self.manager.node_id()),
            );
        };
        let fetch = FollowerFetch {
            replica_id: request.replica_id,
            fetch_offset: request.fetch_offset,
            last_fetched_epoch: request.last_fetched_epoch,
            current_leader_epoch: request.current_leader_epoch,
            max_bytes: request.max_bytes.max(0) as usize,
            high_watermark: request.high_watermark,
        };
        // Subscribed before the first look, so a change in between still wakes us.
        let (mut log_end, mut high_watermark) = partition.watch_for_follower();
        // A follower at the log end (every fetch of a caught-up follower under
        // acks=all) reads nothing before it waits: its position, which moves
        // the high watermark and so completes acks=all produces, is recorded
        // here rather than after a round trip through the blocking pool. A
        // follower further behind may need older data, read on that pool.
        let at_log_end = *log_end.borrow() == fetch.fetch_offset;
        let Some(mut reply) = self.serve_here_or_on_pool(&partition, &fetch, true, at_log_end).await else {
            return refused(error_codes::KAFKA_STORAGE_ERROR, format!("reading {tp} failed"));
        };
        if matches!(reply.outcome, FetchOutcome::CaughtUp) {
            let wait = self.manager.replica_config().fetch_wait_max;
            tokio::select! {
                _ = log_end.changed() => {}
                _ = high_watermark.changed() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = self.manager.stopped() => {}
            }
            // What the follower gets now was appended during the wait: a
            // read from the page cache, done here too unless an append holds
            // the log.
            let Some(again) = self.serve_here_or_on_pool(&partition, &fetch, false, true).await else {
                return refused(error_codes::KAFKA_STORAGE_ERROR, format!("reading {tp} failed"));
            };
            reply = again;
        }
        response(reply)
    }

    /// Serves one follower fetch on a blocking thread and sends the ISR change
    /// it gives rise to from that same thread. The proposal must not depend on
    /// this handler: when the follower disconnects (a broker shutting down),
    /// tonic drops the handler's future while the blocking work still runs,
    /// and a proposal left for the handler would be lost with the partition's
    /// pending ISR change set, so the ISR would never change again.
    async fn serve(&self, partition: &Arc<Partition>, fetch: FollowerFetch, may_wait: bool) -> Option<FetchReply> {
        let (partition, manager) = (partition.clone(), self.manager.clone());
        blocking(move || {
            let reply = partition.serve_follower_fetch(&fetch, now_ms(), may_wait);
            send_proposal(&manager, &partition, reply)
        })
        .await
    }

    /// Serves a fetch on this thread when `here` and the log is free
    /// ([`ReplicationService::try_serve_now`]), else on the blocking pool
    /// ([`ReplicationService::serve`]).
    async fn serve_here_or_on_pool(
        &self,
        partition: &Arc<Partition>,
        fetch: &FollowerFetch,
        may_wait: bool,
        here: bool,
    ) -> Option<FetchReply> {
        if here && let Some(reply) = self.try_serve_now(partition, fetch, may_wait) {
            return Some(reply);
        }
        self.serve(partition, fetch.clone(), may_wait).await
    }

    /// [`ReplicationService::serve`] on the calling thread, for a fetch at
    /// what was the log end a moment ago: a few bookkeeping steps under the
    /// partition's locks and a read of at most what was appended since,
    /// which the page cache still holds. `None` (nothing done) when an
    /// append holds the log: the caller goes through the blocking pool
    /// rather than stall a runtime thread behind a write. The ISR change, if
    /// any, is sent before returning, as there.
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
        Ok(Response::new(self.fetch(request.into_inner()).await))
    }

    async fn offset_for_leader_epoch(
        &self,
        request: Request<OffsetForLeaderEpochRequest>,
    ) -> Result<Response<OffsetForLeaderEpochResponse>, Status> {
        Ok(Response::new(self.offset_for_epoch(request.into_inner()).await))
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
        FetchOutcome::Records(records) => response.records = records.to_vec(),
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
