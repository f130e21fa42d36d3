//! The `Admin` gRPC service (`strom.admin.v1`) over the controller quorum:
//! what the operator and tools use to describe the cluster, create, grow,
//! configure and delete topics, elect preferred leaders, move leadership off
//! a broker before it stops, and ask whether a broker may restart now.
//!
//! Reads answer from this node's applied copy of the metadata image (which
//! may trail the active controller by a few entries); every change goes
//! through [`crate::admin::apply`], the same door and the same rules as
//! Kafka's admin APIs, and its refusals get the same Kafka error codes and
//! texts. The judgements — what to describe, which partitions to elect,
//! whether a restart is safe — are plain functions over a [`ClusterImage`]
//! in [`decisions`], tested without a quorum.
//!
//! Errors: a refused operation is a Kafka error code with a message in the
//! response; a gRPC status other than OK means no controller could answer
//! (`UNAVAILABLE`: no active controller, forwarding failed — the change may or
//! may not have been committed, so the caller re-reads and retries), or,
//! for a controller voter change, which only the active controller takes,
//! that this broker is not it (`FAILED_PRECONDITION`, naming it).
//!
//! Not offered: replica reassignment (moving a partition's replicas to other
//! brokers) needs a catch-up phase with adding replicas before removing
//! others, which the controller does not implement yet; the service has no
//! RPC for it. This module never writes to a partition log. Client users
//! (SCRAM credentials, ACLs) are in [`users`], their client quotas in
//! [`quotas`], the controller voters in [`voters`], for the operator alone.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use strom_proto::admin::admin_server::{Admin, AdminServer};
use strom_proto::admin::{
    AlterBrokerConfigsRequest, AlterBrokerConfigsResponse, AlterClientQuotasRequest, AlterClientQuotasResponse,
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, AlterTopicConfigsRequest,
    AlterTopicConfigsResponse, ChangeControllerVotersRequest, ChangeControllerVotersResponse,
    ControlledShutdownRequest, ControlledShutdownResponse, CreateAclsRequest, CreateAclsResponse,
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicRequest, CreateTopicResponse, DeleteAclsRequest,
    DeleteAclsResponse, DeleteScramCredentialRequest, DeleteScramCredentialResponse, DeleteTopicRequest,
    DeleteTopicResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeTopicsRequest, DescribeTopicsResponse, DescribeUserRequest, DescribeUserResponse,
    ElectLeadersRequest, ElectLeadersResponse, ElectionResult, ElectionType, IsSafeToRestartRequest,
    IsSafeToRestartResponse, PartitionRef, ReassignmentResult, ReplicaAssignment, UpsertScramCredentialRequest,
    UpsertScramCredentialResponse,
};
use tonic::{Request, Response, Status};

use crate::admin::{self, AdminError, Applied, Change, NewTopic};
use crate::broker::Broker;
use crate::config::Settings;
use crate::controller::image::NO_LEADER;
use crate::controller::{ClusterImage, CommandError, ControllerError, Outcome};
use crate::protocol::errors::{CommandContext as Context, KafkaError, command_error_code};

mod decisions;
mod quotas;
mod users;
mod voters;

pub use decisions::{
    describe_cluster, describe_topics, is_under_replicated, leaderships, plan_elections, safe_to_restart,
};

/// How long ControlledShutdown waits for this node's image to show the
/// committed shutdown before listing the broker's remaining leaderships.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// The `Admin` service of one broker.
pub struct AdminService {
    broker: Arc<Broker>,
}

/// A change's result as the service answers it: a refusal is a Kafka error
/// in the response; a controller that could not answer is a gRPC status.
type Answer = Result<Result<Applied, KafkaError>, Status>;

impl AdminService {
    /// A service of `broker`: reads from its controller's image, changes through [`admin::apply`].
    pub fn new(broker: Arc<Broker>) -> AdminService {
        AdminService { broker }
    }

    /// The tonic server wrapping this service, ready for `add_service`.
    pub fn into_server(self) -> AdminServer<AdminService> {
        AdminServer::new(self)
    }

    fn image(&self) -> ClusterImage {
        self.broker.controller.image()
    }

    fn settings(&self) -> &Settings {
        &self.broker.config.settings
    }

    /// Applies `change` through the one admin door.
    async fn apply(&self, change: Change, validate_only: bool) -> Answer {
        answer(admin::apply(&self.broker, change, validate_only).await)
    }

    fn voter_ids(&self) -> Vec<i32> {
        let metrics = self.broker.controller.raft().metrics().borrow().clone();
        metrics.membership_config.voter_ids().map(|id| id as i32).collect()
    }
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService").field("node_id", &self.broker.config.node_id).finish_non_exhaustive()
    }
}

/// An admin-path result as the service answers it: a refusal is a Kafka
/// error; a controller that could not answer is a gRPC status.
#[allow(clippy::result_large_err)] // tonic's Status
fn answer<T>(result: Result<T, AdminError>) -> Result<Result<T, KafkaError>, Status> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(AdminError::Controller(e)) => Err(controller_status(&e)),
        Err(e) => Ok(Err(KafkaError::from(&e))),
    }
}

/// `(error_code, error_message)` of a change: `(0, "")` when applied.
fn answer_fields(answer: Result<Applied, KafkaError>) -> (i32, String) {
    match answer {
        Ok(_) => (0, String::new()),
        Err(e) => (e.code().into(), e.message),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn describe_cluster(
        &self,
        _: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        let controller = self.broker.controller.active_controller().map(|id| id as i32);
        let mut response = describe_cluster(&self.image(), controller);
        response.controller_voters = self.voter_ids();
        Ok(Response::new(response))
    }

    async fn describe_topics(
        &self,
        request: Request<DescribeTopicsRequest>,
    ) -> Result<Response<DescribeTopicsResponse>, Status> {
        Ok(Response::new(describe_topics(&self.image(), &request.into_inner().names)))
    }

    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<CreateTopicResponse>, Status> {
        let request = request.into_inner();
        let validate_only = request.validate_only;
        let answer = self.apply(Change::CreateTopic(new_topic(request)), validate_only).await?;
        Ok(Response::new(create_topic_response(answer.map(|a| a.outcome))))
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        let name = request.into_inner().name;
        let (error_code, error_message) = answer_fields(self.apply(Change::DeleteTopic { name }, false).await?);
        Ok(Response::new(DeleteTopicResponse { error_code, error_message }))
    }

    async fn create_partitions(
        &self,
        request: Request<CreatePartitionsRequest>,
    ) -> Result<Response<CreatePartitionsResponse>, Status> {
        let request = request.into_inner();
        let assignment = (!request.assignments.is_empty())
            .then(|| request.assignments.iter().map(|a| a.replicas.clone()).collect::<Vec<_>>());
        let change = Change::CreatePartitions { name: request.name, total: request.total, assignment };
        let (error_code, error_message) = answer_fields(self.apply(change, request.validate_only).await?);
        Ok(Response::new(CreatePartitionsResponse { error_code, error_message }))
    }

    async fn alter_topic_configs(
        &self,
        request: Request<AlterTopicConfigsRequest>,
    ) -> Result<Response<AlterTopicConfigsResponse>, Status> {
        let request = request.into_inner();
        let change = Change::ReplaceTopicConfigs { name: request.name, configs: request.configs.into_iter().collect() };
        let (error_code, error_message) = answer_fields(self.apply(change, request.validate_only).await?);
        Ok(Response::new(AlterTopicConfigsResponse { error_code, error_message }))
    }

    async fn alter_broker_configs(
        &self,
        request: Request<AlterBrokerConfigsRequest>,
    ) -> Result<Response<AlterBrokerConfigsResponse>, Status> {
        let request = request.into_inner();
        let change = Change::AlterBrokerConfigs { configs: request.configs.into_iter().collect() };
        let (error_code, error_message) = answer_fields(self.apply(change, request.validate_only).await?);
        Ok(Response::new(AlterBrokerConfigsResponse { error_code, error_message }))
    }

    async fn alter_partition_reassignments(
        &self,
        request: Request<AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<AlterPartitionReassignmentsResponse>, Status> {
        let request = request.into_inner();
        let mut results = Vec::with_capacity(request.reassignments.len());
        for r in request.reassignments {
            let partition = PartitionRef { topic: r.topic.clone(), partition: r.partition };
            let change = Change::ReassignPartition {
                topic: r.topic,
                partition: r.partition,
                target: r.replicas,
                throttle_bytes_per_sec: request.throttle_bytes_per_sec,
            };
            let (error_code, error_message) = answer_fields(self.apply(change, request.validate_only).await?);
            results.push(ReassignmentResult { partition: Some(partition), error_code, error_message });
        }
        Ok(Response::new(AlterPartitionReassignmentsResponse { results }))
    }

    async fn elect_leaders(
        &self,
        request: Request<ElectLeadersRequest>,
    ) -> Result<Response<ElectLeadersResponse>, Status> {
        let request = request.into_inner();
        let election = ElectionType::try_from(request.election_type)
            .map_err(|_| Status::invalid_argument(format!("unknown election type {}", request.election_type)))?;
        let every_partition = request.partitions.is_empty();
        let plan = plan_elections(&self.image(), election, &request.partitions);
        let mut results = Vec::with_capacity(plan.len());
        for (partition, step) in plan {
            let result = match step {
                Ok(change) => match self.apply(change, false).await?.map(|a| a.outcome) {
                    Ok(Outcome::LeaderElected { leader, .. }) => election_result(partition, leader, None),
                    Ok(other) => election_result(
                        partition,
                        NO_LEADER,
                        Some(KafkaError::new(ResponseError::UnknownServerError, format!("unexpected {other:?}"))),
                    ),
                    Err(e) => election_result(partition, NO_LEADER, Some(e)),
                },
                // Asked for every partition, Kafka leaves out those that need nothing.
                Err(refused) if every_partition && refused.error == ResponseError::ElectionNotNeeded => continue,
                Err(refused) => {
                    let leader =
                        self.image().partition(&partition.topic, partition.partition).map_or(NO_LEADER, |p| p.leader);
                    election_result(partition, leader, Some(refused))
                }
            };
            results.push(result);
        }
        Ok(Response::new(ElectLeadersResponse { results }))
    }

    async fn controlled_shutdown(
        &self,
        request: Request<ControlledShutdownRequest>,
    ) -> Result<Response<ControlledShutdownResponse>, Status> {
        let request = request.into_inner();
        let broker_id = request.broker_id;
        let broker_epoch = if request.broker_epoch < 0 {
            match self.image().brokers.get(&broker_id) {
                Some(b) => b.broker_epoch,
                None => {
                    let e = refusal(&CommandError::UnknownBroker(broker_id), Context::Topic);
                    return Ok(Response::new(ControlledShutdownResponse {
                        error_code: e.code().into(),
                        error_message: e.message,
                        remaining_leaderships: Vec::new(),
                    }));
                }
            }
        } else {
            request.broker_epoch
        };
        let change = Change::ControlledShutdown { broker_id, broker_epoch };
        let (error_code, error_message) = answer_fields(self.apply(change, false).await?);
        let mut remaining_leaderships = Vec::new();
        if error_code == 0 {
            let deadline = tokio::time::Instant::now() + APPLY_WAIT;
            let image = loop {
                let image = self.image();
                let applied = image.brokers.get(&broker_id).is_none_or(|b| b.in_controlled_shutdown);
                if applied || tokio::time::Instant::now() >= deadline {
                    break image;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            remaining_leaderships = leaderships(&image, broker_id);
        }
        Ok(Response::new(ControlledShutdownResponse { error_code, error_message, remaining_leaderships }))
    }

    async fn upsert_scram_credential(
        &self,
        request: Request<UpsertScramCredentialRequest>,
    ) -> Result<Response<UpsertScramCredentialResponse>, Status> {
        self.upsert_scram(request).await.map(Response::new)
    }

    async fn delete_scram_credential(
        &self,
        request: Request<DeleteScramCredentialRequest>,
    ) -> Result<Response<DeleteScramCredentialResponse>, Status> {
        self.delete_scram(request).await.map(Response::new)
    }

    async fn describe_user(
        &self,
        request: Request<DescribeUserRequest>,
    ) -> Result<Response<DescribeUserResponse>, Status> {
        self.describe_one_user(request).map(Response::new)
    }

    async fn create_acls(&self, request: Request<CreateAclsRequest>) -> Result<Response<CreateAclsResponse>, Status> {
        self.store_acls(request).await.map(Response::new)
    }

    async fn delete_acls(&self, request: Request<DeleteAclsRequest>) -> Result<Response<DeleteAclsResponse>, Status> {
        self.remove_acls(request).await.map(Response::new)
    }

    async fn describe_client_quotas(
        &self,
        request: Request<DescribeClientQuotasRequest>,
    ) -> Result<Response<DescribeClientQuotasResponse>, Status> {
        self.describe_user_quotas(request).map(Response::new)
    }

    async fn alter_client_quotas(
        &self,
        request: Request<AlterClientQuotasRequest>,
    ) -> Result<Response<AlterClientQuotasResponse>, Status> {
        self.alter_user_quotas(request).await.map(Response::new)
    }

    async fn change_controller_voters(
        &self,
        request: Request<ChangeControllerVotersRequest>,
    ) -> Result<Response<ChangeControllerVotersResponse>, Status> {
        self.change_voters(request).await.map(Response::new)
    }

    async fn is_safe_to_restart(
        &self,
        request: Request<IsSafeToRestartRequest>,
    ) -> Result<Response<IsSafeToRestartResponse>, Status> {
        let broker_id = request.into_inner().broker_id;
        Ok(Response::new(safe_to_restart(&self.image(), broker_id, self.settings(), &self.voter_ids())))
    }
}

/// The gRPC status for a proposal that reached no controller able to answer.
fn controller_status(e: &ControllerError) -> Status {
    match e {
        ControllerError::NoController(_) | ControllerError::Forward { .. } | ControllerError::Commit(_) => {
            Status::unavailable(e.to_string())
        }
        ControllerError::NotActive { .. } => Status::failed_precondition(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// A refused command as a Kafka error with the command's message.
pub fn refusal(e: &CommandError, context: Context) -> KafkaError {
    KafkaError::new(command_error_code(e, context), e.to_string())
}

fn election_result(partition: PartitionRef, leader: i32, error: Option<KafkaError>) -> ElectionResult {
    let (error_code, error_message) = error.map_or((0, String::new()), |e| (e.code().into(), e.message));
    ElectionResult { partition: Some(partition), leader, error_code, error_message }
}

/// A gRPC CreateTopic request as the admin path's [`NewTopic`]. Proto3
/// cannot tell an unset count from 0: beside an explicit assignment a 0
/// count means unset (-1). Without one, counts are taken as given, so 0 is
/// refused as Kafka refuses it.
pub fn new_topic(request: CreateTopicRequest) -> NewTopic {
    let explicit = !request.assignments.is_empty();
    let unset_if_explicit = |n: i32| if explicit && n == 0 { -1 } else { n };
    NewTopic {
        name: request.name,
        num_partitions: unset_if_explicit(request.num_partitions),
        replication_factor: i16::try_from(unset_if_explicit(request.replication_factor)).unwrap_or(i16::MAX),
        assignment: request.assignments.into_iter().map(|a| a.replicas).collect(),
        configs: request.configs.into_iter().collect(),
    }
}

fn create_topic_response(result: Result<Outcome, KafkaError>) -> CreateTopicResponse {
    match result {
        Ok(Outcome::TopicCreated { topic_id, assignment }) => CreateTopicResponse {
            error_code: 0,
            error_message: String::new(),
            topic_id: topic_id.as_bytes().to_vec(),
            assignments: assignment.into_iter().map(|replicas| ReplicaAssignment { replicas }).collect(),
        },
        Ok(other) => CreateTopicResponse {
            error_code: ResponseError::UnknownServerError.code().into(),
            error_message: format!("the controller answered CreateTopic with {other:?}"),
            ..Default::default()
        },
        Err(e) => CreateTopicResponse { error_code: e.code().into(), error_message: e.message, ..Default::default() },
    }
}

#[cfg(test)]
mod tests;
