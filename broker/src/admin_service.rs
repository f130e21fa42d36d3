//! The `Admin` gRPC service (`strom.admin.v1`) over the controller quorum:
//! what the operator and tools use to describe the cluster, create, grow,
//! configure and delete topics, elect preferred leaders, move leadership off
//! a broker before it stops, and ask whether a broker may restart now.
//!
//! Reads answer from this node's applied copy of the metadata image (which
//! may trail the active controller by a few entries); every change goes
//! through [`crate::admin::apply`], the same door and the same rules as
//! Kafka's admin APIs, and its refusals get the same Kafka error codes and
//! texts. The decisions of reads — which partitions to elect, whether a
//! restart is safe — are plain functions over a [`ClusterImage`], tested
//! without a quorum.
//!
//! Errors: a refused operation is a Kafka error code with a message in the
//! response; a gRPC status other than OK means no controller could answer
//! (`UNAVAILABLE`: no active controller, forwarding failed — the change may or
//! may not have been committed, so the caller re-reads and retries).
//!
//! Not offered: replica reassignment (moving a partition's replicas to other
//! brokers) needs a catch-up phase with adding replicas before removing
//! others, which the controller does not implement yet; the service has no
//! RPC for it. This module never writes to a partition log.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use strom_proto::admin::admin_server::{Admin, AdminServer};
use strom_proto::admin::{
    AlterBrokerConfigsRequest, AlterBrokerConfigsResponse, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, AlterTopicConfigsRequest, AlterTopicConfigsResponse, BrokerInfo,
    ControlledShutdownRequest, ControlledShutdownResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicRequest, CreateTopicResponse, DeleteTopicRequest, DeleteTopicResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeTopicsRequest, DescribeTopicsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ElectionResult, ElectionType, IsSafeToRestartRequest, IsSafeToRestartResponse, PartitionDescription, PartitionRef,
    ReassignmentResult, ReplicaAssignment, TopicDescription,
};
use tonic::{Request, Response, Status};

use crate::admin::{self, AdminError, Applied, Change, NewTopic};
use crate::broker::Broker;
use crate::config::Settings;
use crate::controller::image::{NO_LEADER, PartitionState};
use crate::controller::{ClusterImage, CommandError, ControllerError, Outcome};
use crate::protocol::errors::{CommandContext as Context, KafkaError, command_error_code};

/// How long ControlledShutdown waits for this node's image to show the
/// committed shutdown before listing the broker's remaining leaderships.
const APPLY_WAIT: Duration = Duration::from_secs(5);
/// Reasons listed in an IsSafeToRestart answer before "and N more".
const MAX_REASONS: usize = 5;

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
        match admin::apply(&self.broker, change, validate_only).await {
            Ok(applied) => Ok(Ok(applied)),
            Err(AdminError::Controller(e)) => Err(controller_status(&e)),
            Err(e) => Ok(Err(KafkaError::from(&e))),
        }
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
        Ok(Response::new(describe_cluster(&self.image(), controller)))
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

fn partition_ref(topic: &str, partition: usize) -> PartitionRef {
    PartitionRef { topic: topic.to_string(), partition: partition as i32 }
}

fn all_partitions(image: &ClusterImage) -> impl Iterator<Item = (&str, usize, &PartitionState)> {
    image.topics.iter().flat_map(|(name, t)| t.partitions.iter().enumerate().map(move |(i, p)| (name.as_str(), i, p)))
}

/// Partitions `broker_id` leads.
pub fn leaderships(image: &ClusterImage, broker_id: i32) -> Vec<PartitionRef> {
    all_partitions(image).filter(|(_, _, p)| p.leader == broker_id).map(|(t, i, _)| partition_ref(t, i)).collect()
}

/// Whether `p` has fewer in-sync replicas than it should: as Kafka, the
/// replicas a reassignment is adding do not count until they are in sync.
pub fn is_under_replicated(p: &PartitionState) -> bool {
    let adding = p.reassignment.as_ref().map_or(0, |r| r.adding.len());
    p.isr.len() < p.replicas.len().saturating_sub(adding)
}

/// DescribeCluster from an image and the active controller (if known).
pub fn describe_cluster(image: &ClusterImage, controller: Option<i32>) -> DescribeClusterResponse {
    let brokers = image
        .brokers
        .values()
        .map(|b| BrokerInfo {
            broker_id: b.broker_id,
            advertised_endpoint: b.advertised_endpoint.clone(),
            internal_endpoint: b.internal_endpoint.clone(),
            rack: b.rack.clone(),
            fenced: b.fenced,
            in_controlled_shutdown: b.in_controlled_shutdown,
            broker_epoch: b.broker_epoch,
        })
        .collect();
    let under_replicated_partitions =
        all_partitions(image).filter(|(_, _, p)| is_under_replicated(p)).map(|(t, i, _)| partition_ref(t, i)).collect();
    let reassigning_partitions = all_partitions(image)
        .filter(|(_, _, p)| p.reassignment.is_some())
        .map(|(t, i, _)| partition_ref(t, i))
        .collect();
    let offline_partitions =
        all_partitions(image).filter(|(_, _, p)| p.leader == NO_LEADER).map(|(t, i, _)| partition_ref(t, i)).collect();
    DescribeClusterResponse {
        cluster_id: image.cluster_id.clone(),
        controller_id: controller.unwrap_or(-1),
        brokers,
        under_replicated_partitions,
        offline_partitions,
        reassigning_partitions,
        broker_configs: image.broker_configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// DescribeTopics: the named topics (every topic when `names` is empty).
pub fn describe_topics(image: &ClusterImage, names: &[String]) -> DescribeTopicsResponse {
    let names: Vec<&str> = if names.is_empty() {
        image.topics.keys().map(String::as_str).collect()
    } else {
        names.iter().map(String::as_str).collect()
    };
    let topics = names
        .into_iter()
        .map(|name| match image.topics.get(name) {
            Some(t) => TopicDescription {
                name: name.to_string(),
                error_code: 0,
                error_message: String::new(),
                topic_id: t.topic_id.as_bytes().to_vec(),
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| PartitionDescription {
                        partition: i as i32,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        adding_replicas: p.reassignment.as_ref().map(|r| r.adding.clone()).unwrap_or_default(),
                        removing_replicas: p.reassignment.as_ref().map(|r| r.removing.clone()).unwrap_or_default(),
                    })
                    .collect(),
                configs: t.configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            },
            None => TopicDescription {
                name: name.to_string(),
                error_code: ResponseError::UnknownTopicOrPartition.code().into(),
                error_message: format!("topic `{name}` does not exist"),
                ..Default::default()
            },
        })
        .collect();
    DescribeTopicsResponse { topics }
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

/// For each requested partition (every partition when `partitions` is
/// empty), the election command to propose or why none is needed or possible.
///
/// Preferred: only when the preferred (first) replica is an unfenced ISR
/// member and not already leader — [`Change::ElectLeader`] then picks it.
/// Unclean: only for a partition without a leader; it may pick a replica
/// outside the ISR.
pub fn plan_elections(
    image: &ClusterImage,
    election: ElectionType,
    partitions: &[PartitionRef],
) -> Vec<(PartitionRef, Result<Change, KafkaError>)> {
    let refs: Vec<PartitionRef> = if partitions.is_empty() {
        all_partitions(image).map(|(t, i, _)| partition_ref(t, i)).collect()
    } else {
        partitions.to_vec()
    };
    let live: BTreeSet<i32> = image.brokers.values().filter(|b| !b.fenced).map(|b| b.broker_id).collect();
    refs.into_iter()
        .map(|r| {
            let step = plan_election(image.partition(&r.topic, r.partition), &r, election, &live);
            (r, step)
        })
        .collect()
}

fn plan_election(
    state: Option<&PartitionState>,
    r: &PartitionRef,
    election: ElectionType,
    live: &BTreeSet<i32>,
) -> Result<Change, KafkaError> {
    let name = format!("`{}`-{}", r.topic, r.partition);
    let Some(p) = state else {
        return Err(KafkaError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("partition {name} does not exist"),
        ));
    };
    let elect = |allow_unclean| Change::ElectLeader { topic: r.topic.clone(), partition: r.partition, allow_unclean };
    match election {
        ElectionType::Preferred => {
            let Some(&preferred) = p.replicas.first() else {
                return Err(KafkaError::new(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("{name} has no replicas"),
                ));
            };
            if p.leader == preferred {
                Err(KafkaError::new(
                    ResponseError::ElectionNotNeeded,
                    format!("{name}: the preferred replica {preferred} already leads"),
                ))
            } else if !p.isr.contains(&preferred) {
                Err(KafkaError::new(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("{name}: the preferred replica {preferred} is not in the ISR {:?}", p.isr),
                ))
            } else if !live.contains(&preferred) {
                Err(KafkaError::new(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("{name}: the preferred replica {preferred} is fenced (not heartbeating)"),
                ))
            } else {
                Ok(elect(false))
            }
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER {
                Err(KafkaError::new(
                    ResponseError::ElectionNotNeeded,
                    format!("{name} has a leader ({}); unclean election is only for offline partitions", p.leader),
                ))
            } else {
                Ok(elect(true))
            }
        }
    }
}

/// The effective `min.insync.replicas` of `topic` in `image` (see [`admin::min_insync_replicas`]).
fn image_min_insync_replicas(image: &ClusterImage, topic: &str, settings: &Settings) -> i64 {
    let key = "min.insync.replicas";
    let topic_override = image.topics.get(topic).and_then(|t| t.configs.get(key)).map(String::as_str);
    admin::min_insync_replicas(topic_override, image.broker_configs.get(key).map(String::as_str), settings) as i64
}

/// Whether stopping `broker_id` now keeps every partition writable with
/// acks=all and the controller quorum alive.
///
/// Unsafe when: a partition whose ISR holds the broker would, without it,
/// fall below its `min.insync.replicas` (this includes a partition with
/// replication factor 1 on that broker, which has no other replica to fail
/// over to); the broker leads a partition whose ISR is only itself; or the
/// broker is a controller voter and the other live voters (unfenced brokers
/// among `voters`) are not a majority of `voters`.
pub fn safe_to_restart(
    image: &ClusterImage,
    broker_id: i32,
    settings: &Settings,
    voters: &[i32],
) -> IsSafeToRestartResponse {
    let mut reasons = Vec::new();
    let mut at_risk_partitions = Vec::new();
    for (topic, i, p) in all_partitions(image) {
        if !p.isr.contains(&broker_id) {
            continue;
        }
        let min_isr = image_min_insync_replicas(image, topic, settings);
        let remaining = p.isr.len() as i64 - 1;
        let reason = if p.leader == broker_id && p.isr == [broker_id] {
            Some(format!(
                "broker {broker_id} leads `{topic}`-{i} and is its only in-sync replica (replicas {:?}); \
                 stopping it takes the partition offline",
                p.replicas
            ))
        } else if remaining < min_isr {
            Some(format!(
                "`{topic}`-{i} has ISR {:?}; without broker {broker_id} it would have {remaining}, \
                 below min.insync.replicas={min_isr}",
                p.isr
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            reasons.push(reason);
            at_risk_partitions.push(partition_ref(topic, i));
        }
    }
    if voters.contains(&broker_id) {
        let live_others: Vec<i32> = voters
            .iter()
            .copied()
            .filter(|v| *v != broker_id && image.brokers.get(v).is_some_and(|b| !b.fenced))
            .collect();
        let majority = voters.len() / 2 + 1;
        if live_others.len() < majority {
            reasons.insert(
                0,
                format!(
                    "broker {broker_id} is a controller voter; of the voters {voters:?} only {live_others:?} would \
                     stay up, fewer than the majority of {majority} the quorum needs"
                ),
            );
        }
    }
    let safe = reasons.is_empty();
    let reason = if safe {
        match image.brokers.get(&broker_id) {
            Some(_) => String::new(),
            None => format!("broker {broker_id} is not registered; it holds no partition"),
        }
    } else if reasons.len() > MAX_REASONS {
        let more = reasons.len() - MAX_REASONS;
        format!("{}; and {more} more", reasons[..MAX_REASONS].join("; "))
    } else {
        reasons.join("; ")
    };
    IsSafeToRestartResponse { safe, reason, at_risk_partitions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use crate::controller::Command;
    use crate::controller::image::{BrokerRegistration, TopicAssignment, TopicImage};

    fn broker(id: i32, fenced: bool) -> BrokerRegistration {
        BrokerRegistration {
            broker_id: id,
            incarnation_id: Uuid::nil(),
            broker_epoch: 100 + id as i64,
            advertised_endpoint: format!("b{id}:9092"),
            internal_endpoint: format!("b{id}:9093"),
            rack: None,
            fenced,
            in_controlled_shutdown: false,
            max_partitions: None,
        }
    }

    fn partition(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionState {
        PartitionState {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 3,
            partition_epoch: 5,
            reassignment: None,
        }
    }

    /// Brokers 0..3, broker 2 fenced; topic `t` (min.insync.replicas=2) with
    /// a healthy, an under-replicated and an offline partition; topic `u`
    /// with one partition not led by its preferred replica.
    fn image() -> ClusterImage {
        let mut image = ClusterImage { cluster_id: "c1".into(), ..Default::default() };
        for (id, fenced) in [(0, false), (1, false), (2, true)] {
            image.brokers.insert(id, broker(id, fenced));
        }
        image.topics.insert(
            "t".into(),
            TopicImage {
                topic_id: Uuid::from_u128(7),
                partitions: vec![
                    partition(&[0, 1, 2], &[0, 1], 0),
                    partition(&[1, 2, 0], &[1, 0], 1),
                    partition(&[2, 0, 1], &[2], NO_LEADER),
                ],
                configs: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
            },
        );
        image.topics.insert(
            "u".into(),
            TopicImage {
                topic_id: Uuid::from_u128(8),
                partitions: vec![partition(&[0, 1], &[1, 0], 1), partition(&[1, 0], &[1], 1)],
                configs: BTreeMap::new(),
            },
        );
        image
    }

    fn refs(list: &[(&str, i32)]) -> Vec<PartitionRef> {
        list.iter().map(|(t, p)| PartitionRef { topic: t.to_string(), partition: *p }).collect()
    }

    #[test]
    fn describe_cluster_lists_under_replicated_and_offline_partitions() {
        let d = describe_cluster(&image(), Some(1));
        assert_eq!((d.cluster_id.as_str(), d.controller_id), ("c1", 1));
        assert_eq!(
            d.brokers.iter().map(|b| (b.broker_id, b.fenced)).collect::<Vec<_>>(),
            [(0, false), (1, false), (2, true)]
        );
        assert_eq!(d.under_replicated_partitions, refs(&[("t", 0), ("t", 1), ("t", 2), ("u", 1)]));
        assert_eq!(d.offline_partitions, refs(&[("t", 2)]));
        assert_eq!(describe_cluster(&image(), None).controller_id, -1);
    }

    #[test]
    fn describe_topics_reports_unknown_names() {
        let d = describe_topics(&image(), &["u".into(), "nope".into()]);
        assert_eq!(d.topics[0].partitions[1].isr, vec![1]);
        assert_eq!(d.topics[1].error_code, i32::from(ResponseError::UnknownTopicOrPartition.code()));
        assert_eq!(describe_topics(&image(), &[]).topics.len(), 2);
    }

    #[test]
    fn command_errors_map_to_kafka_codes() {
        let placement = CommandError::InvalidPlacement { topic: "t".into(), reason: "3 > 2 brokers".into() };
        assert_eq!(command_error_code(&placement, Context::Topic), ResponseError::InvalidReplicationFactor);
        assert_eq!(command_error_code(&placement, Context::Partitions), ResponseError::InvalidPartitions);
        let stale = CommandError::StalePartitionEpoch { topic: "t".into(), partition: 0, current: 2, got: 1 };
        assert_eq!(command_error_code(&stale, Context::Topic), ResponseError::InvalidUpdateVersion);
        let e = refusal(&CommandError::TopicAlreadyExists("t".into()), Context::Topic);
        assert_eq!((e.error, e.message.as_str()), (ResponseError::TopicAlreadyExists, "topic `t` already exists"));
        let e = refusal(&CommandError::UnknownBroker(9), Context::Topic);
        assert_eq!(e.error, ResponseError::BrokerIdNotRegistered);
        assert!(e.message.contains("broker 9"), "{}", e.message);
    }

    #[test]
    fn a_grpc_create_topic_becomes_the_admin_paths_new_topic() {
        let counted =
            CreateTopicRequest { name: "x".into(), num_partitions: 0, replication_factor: -1, ..Default::default() };
        let t = new_topic(counted);
        assert_eq!((t.num_partitions, t.replication_factor), (0, -1), "0 partitions stays 0: the rules refuse it");
        let explicit = CreateTopicRequest {
            name: "x".into(),
            assignments: vec![ReplicaAssignment { replicas: vec![1, 0] }],
            configs: [("retention.ms".to_string(), "5".to_string())].into(),
            ..Default::default()
        };
        let t = new_topic(explicit);
        assert_eq!((t.num_partitions, t.replication_factor), (-1, -1), "proto3's unset counts beside an assignment");
        assert_eq!(t.assignment, vec![vec![1, 0]]);
        assert_eq!(t.configs, vec![("retention.ms".to_string(), "5".to_string())]);
    }

    #[test]
    fn validate_only_uses_a_scratch_image() {
        let mut scratch = image();
        let before = scratch.clone();
        let command = Command::CreateTopic {
            name: "t".into(),
            topic_id: Uuid::nil(),
            assignment: TopicAssignment::Computed { partitions: 1, replication_factor: 1 },
            configs: BTreeMap::new(),
        };
        let e = scratch.apply(u64::MAX, &command).unwrap_err();
        assert_eq!(command_error_code(&e, Context::Topic), ResponseError::TopicAlreadyExists);
        assert_eq!(scratch, before, "a refused command leaves the image untouched");
    }

    #[test]
    fn preferred_election_only_when_the_preferred_replica_can_lead() {
        let image = image();
        let plan = plan_elections(&image, ElectionType::Preferred, &[]);
        let codes: Vec<(String, i32, Option<ResponseError>)> =
            plan.iter().map(|(r, step)| (r.topic.clone(), r.partition, step.as_ref().err().map(|e| e.error))).collect();
        assert_eq!(
            codes,
            vec![
                ("t".to_string(), 0, Some(ResponseError::ElectionNotNeeded)),
                ("t".to_string(), 1, Some(ResponseError::ElectionNotNeeded)),
                ("t".to_string(), 2, Some(ResponseError::PreferredLeaderNotAvailable)), // 2 is fenced
                ("u".to_string(), 0, None),                                             // 0 in ISR, live, not leading
                ("u".to_string(), 1, Some(ResponseError::ElectionNotNeeded)),
            ]
        );
        assert_eq!(
            plan[3].1.as_ref().unwrap(),
            &Change::ElectLeader { topic: "u".into(), partition: 0, allow_unclean: false }
        );

        let mut out_of_isr = image.clone();
        out_of_isr.topics.get_mut("u").unwrap().partitions[0].isr = vec![1];
        let plan = plan_elections(&out_of_isr, ElectionType::Preferred, &refs(&[("u", 0), ("zz", 0)]));
        assert_eq!(plan[0].1.as_ref().unwrap_err().error, ResponseError::PreferredLeaderNotAvailable);
        assert_eq!(plan[1].1.as_ref().unwrap_err().error, ResponseError::UnknownTopicOrPartition);
    }

    #[test]
    fn unclean_election_only_for_offline_partitions() {
        let plan = plan_elections(&image(), ElectionType::Unclean, &refs(&[("t", 0), ("t", 2)]));
        assert_eq!(plan[0].1.as_ref().unwrap_err().error, ResponseError::ElectionNotNeeded);
        assert_eq!(
            plan[1].1.as_ref().unwrap(),
            &Change::ElectLeader { topic: "t".into(), partition: 2, allow_unclean: true }
        );
    }

    #[test]
    fn restart_is_unsafe_below_min_insync_or_as_sole_isr_leader() {
        let image = image();
        let mut settings = Settings::broker_defaults();
        settings.set("min.insync.replicas", "1").unwrap();
        // Broker 0: t-0 and t-1 have ISR of 2 with min.insync.replicas=2 (topic override).
        let r = safe_to_restart(&image, 0, &settings, &[]);
        assert!(!r.safe);
        assert_eq!(r.at_risk_partitions, refs(&[("t", 0), ("t", 1)]));
        assert!(r.reason.contains("below min.insync.replicas=2"), "{}", r.reason);
        // Broker 1 also leads u-1, whose ISR is only itself.
        let r = safe_to_restart(&image, 1, &settings, &[]);
        assert_eq!(r.at_risk_partitions, refs(&[("t", 0), ("t", 1), ("u", 1)]));
        assert!(r.reason.contains("only in-sync replica"), "{}", r.reason);
        // Broker 2 is in t-2's ISR only, which is offline already with min ISR 2.
        assert_eq!(safe_to_restart(&image, 2, &settings, &[]).at_risk_partitions, refs(&[("t", 2)]));

        let mut relaxed = image.clone();
        relaxed.topics.get_mut("t").unwrap().configs.clear();
        relaxed.topics.get_mut("u").unwrap().partitions[1] = partition(&[1, 0], &[1, 0], 1);
        relaxed.topics.get_mut("t").unwrap().partitions[2] = partition(&[2, 0, 1], &[0, 1], 0);
        let r = safe_to_restart(&relaxed, 1, &settings, &[]);
        assert!(r.safe, "{}", r.reason);
        assert_eq!(
            safe_to_restart(&relaxed, 7, &settings, &[]).reason,
            "broker 7 is not registered; it holds no partition"
        );
    }

    #[test]
    fn restart_is_unsafe_when_the_quorum_would_lose_its_majority() {
        let mut image = image();
        image.topics.clear();
        let settings = Settings::broker_defaults();
        // Voters 0, 1, 2 with 2 fenced: stopping 0 or 1 leaves one live voter of three.
        let r = safe_to_restart(&image, 0, &settings, &[0, 1, 2]);
        assert!(!r.safe && r.reason.contains("controller voter"), "{}", r.reason);
        assert!(r.at_risk_partitions.is_empty());
        // Restarting the fenced voter itself costs nothing.
        assert!(safe_to_restart(&image, 2, &settings, &[0, 1, 2]).safe);
        image.brokers.get_mut(&2).unwrap().fenced = false;
        assert!(safe_to_restart(&image, 0, &settings, &[0, 1, 2]).safe);
        // A non-voter never threatens the quorum.
        image.brokers.insert(3, broker(3, false));
        assert!(safe_to_restart(&image, 3, &settings, &[0]).safe);
    }

    #[test]
    fn leaderships_lists_partitions_led() {
        assert_eq!(leaderships(&image(), 1), refs(&[("t", 1), ("u", 0), ("u", 1)]));
    }
}
