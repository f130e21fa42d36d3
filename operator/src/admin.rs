//! The operator's client of the brokers' Admin gRPC API (port 9093).
//!
//! A cluster is reached through a list of broker internal addresses; a call
//! goes to the first that answers, the next ones are tried when a broker is
//! down or cannot reach a controller, or is not the active controller a
//! voter change must reach (a non-OK gRPC status). Failures of the
//! operation itself come back as a Kafka error code with a message and are
//! returned as [`AdminError::Refused`].
//!
//! Every call runs over mutual TLS with the operator's identity for that
//! cluster (`strom://operator`, issued from the cluster CA by
//! [`crate::internal_ca`]); the server must present a broker certificate of
//! the same CA. Client users' credentials and ACLs: [`users`].

mod users;

use std::collections::BTreeMap;
use std::time::Duration;

use strom_proto::admin::admin_client::AdminClient;
use strom_proto::admin::{
    AlterBrokerConfigsRequest, AlterPartitionReassignmentsRequest, AlterTopicConfigsRequest, ControlledShutdownRequest,
    CreatePartitionsRequest, CreateTopicRequest, DeleteTopicRequest, DescribeClusterRequest, DescribeClusterResponse,
    DescribeTopicsRequest, ElectLeadersRequest, ElectionType, IsSafeToRestartRequest, IsSafeToRestartResponse,
    PartitionReassignment, PartitionRef, ReplicaAssignment, TopicDescription,
};
use strom_proto::admin::{ChangeControllerVotersRequest, ChangeControllerVotersResponse};
use strom_tls::InternalTls;
use tonic::transport::Channel;

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
pub const UNKNOWN_TOPIC_OR_PARTITION: i32 = 3;
/// Kafka's TOPIC_ALREADY_EXISTS.
pub const TOPIC_ALREADY_EXISTS: i32 = 36;
/// Kafka's REASSIGNMENT_IN_PROGRESS.
pub const REASSIGNMENT_IN_PROGRESS: i32 = 60;
/// Kafka's TOPIC_DELETION_DISABLED.
pub const TOPIC_DELETION_DISABLED: i32 = 73;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

pub use users::SCRAM_SHA_512;

/// A failed Admin API call.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No broker of the list answered.
    #[error("no broker answered the admin API at {endpoints}: {last}")]
    Unreachable { endpoints: String, last: String },
    /// The cluster refused the operation.
    #[error("{operation} refused by the cluster (Kafka error {code}): {message}")]
    Refused { operation: &'static str, code: i32, message: String },
    /// An address that is not `host:port`.
    #[error("invalid broker admin address `{0}`: expected HOST:PORT")]
    BadAddress(String),
    /// The operator has no client certificate for the cluster's internal plane.
    #[error("no operator identity for the cluster's internal plane: {0}")]
    NoIdentity(String),
    /// Every broker answered that it does not have this method (brokers
    /// older than the operator).
    #[error("{operation}: the brokers at {endpoints} do not offer it (older than this operator: upgrade them)")]
    Unsupported { operation: &'static str, endpoints: String },
}

impl AdminError {
    /// The Kafka error code when the cluster refused the operation.
    pub fn code(&self) -> Option<i32> {
        match self {
            AdminError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A gRPC status's message followed by its causes ("transport error" alone
/// hides whether the name did not resolve or the connection was refused).
fn with_causes(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A handle on one cluster's Admin API.
#[derive(Debug, Clone)]
pub struct ClusterAdmin {
    endpoints: Vec<String>,
    tls: std::sync::Arc<InternalTls>,
}

fn refused(operation: &'static str, code: i32, message: String) -> Result<(), AdminError> {
    if code == 0 { Ok(()) } else { Err(AdminError::Refused { operation, code, message }) }
}

impl ClusterAdmin {
    /// A client of the brokers at `addresses` (`host:port` of their internal
    /// listeners), calling as the identity in `tls`.
    pub fn new(addresses: Vec<String>, tls: std::sync::Arc<InternalTls>) -> ClusterAdmin {
        ClusterAdmin { endpoints: addresses, tls }
    }

    /// The addresses this client tries, in order.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    fn connect(&self, address: &str) -> Result<AdminClient<Channel>, String> {
        let channel = strom_tls::channel(Some(&self.tls), address, None, Some(CONNECT_TIMEOUT))
            .map_err(|_| AdminError::BadAddress(address.to_string()).to_string())?;
        Ok(AdminClient::new(channel))
    }

    /// Runs `call` against each broker in turn until one answers.
    async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, AdminError>
    where
        F: FnMut(AdminClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last = "no broker addresses".to_string();
        let mut unimplemented = 0;
        for address in &self.endpoints {
            let client = match self.connect(address) {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match tokio::time::timeout(CALL_TIMEOUT, call(client)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => {
                    if status.code() == tonic::Code::Unimplemented {
                        unimplemented += 1;
                    }
                    last = format!("{address}: {} ({:?})", with_causes(&status), status.code());
                }
                Err(_) => last = format!("{address}: no answer within {CALL_TIMEOUT:?}"),
            }
        }
        if unimplemented > 0 && unimplemented == self.endpoints.len() {
            return Err(AdminError::Unsupported { operation: "admin API method", endpoints: self.endpoints.join(",") });
        }
        Err(AdminError::Unreachable { endpoints: self.endpoints.join(","), last })
    }

    /// Brokers, active controller, under-replicated and offline partitions.
    pub async fn describe_cluster(&self) -> Result<DescribeClusterResponse, AdminError> {
        self.call(|mut c| async move { c.describe_cluster(DescribeClusterRequest {}).await }).await
    }

    /// Every topic (`names` empty) or the named ones; unknown names come back with an error code.
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicDescription>, AdminError> {
        let names = names.to_vec();
        let response = self
            .call(|mut c| {
                let names = names.clone();
                async move { c.describe_topics(DescribeTopicsRequest { names }).await }
            })
            .await?;
        Ok(response.topics)
    }

    /// One topic, or `None` when the cluster does not have it.
    pub async fn describe_topic(&self, name: &str) -> Result<Option<TopicDescription>, AdminError> {
        let topics = self.describe_topics(&[name.to_string()]).await?;
        match topics.into_iter().find(|t| t.name == name) {
            Some(t) if t.error_code == UNKNOWN_TOPIC_OR_PARTITION => Ok(None),
            Some(t) if t.error_code != 0 => {
                Err(AdminError::Refused { operation: "DescribeTopics", code: t.error_code, message: t.error_message })
            }
            other => Ok(other),
        }
    }

    /// Creates a topic with an explicit assignment (one replica list per partition).
    pub async fn create_topic(
        &self,
        name: &str,
        assignments: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        let request = CreateTopicRequest {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: assignments.into_iter().map(|replicas| ReplicaAssignment { replicas }).collect(),
            configs: configs.into_iter().collect(),
            validate_only: false,
        };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.create_topic(request).await }
            })
            .await?;
        refused("CreateTopic", r.error_code, r.error_message)
    }

    /// Grows a topic to `total` partitions; `assignments` places the new ones.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Vec<Vec<i32>>,
    ) -> Result<(), AdminError> {
        let request = CreatePartitionsRequest {
            name: name.to_string(),
            total,
            assignments: assignments.into_iter().map(|replicas| ReplicaAssignment { replicas }).collect(),
            validate_only: false,
        };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.create_partitions(request).await }
            })
            .await?;
        refused("CreatePartitions", r.error_code, r.error_message)
    }

    /// Replaces a topic's config overrides with `configs`.
    pub async fn alter_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<(), AdminError> {
        let request = AlterTopicConfigsRequest {
            name: name.to_string(),
            configs: configs.into_iter().collect(),
            validate_only: false,
        };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.alter_topic_configs(request).await }
            })
            .await?;
        refused("AlterTopicConfigs", r.error_code, r.error_message)
    }

    /// Deletes a topic; a topic that is already gone counts as deleted.
    pub async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        let request = DeleteTopicRequest { name: name.to_string() };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.delete_topic(request).await }
            })
            .await?;
        if r.error_code == UNKNOWN_TOPIC_OR_PARTITION {
            return Ok(());
        }
        refused("DeleteTopic", r.error_code, r.error_message)
    }

    /// Whether stopping `broker_id` now keeps every partition at or above min.insync.replicas.
    pub async fn is_safe_to_restart(&self, broker_id: i32) -> Result<IsSafeToRestartResponse, AdminError> {
        self.call(|mut c| async move { c.is_safe_to_restart(IsSafeToRestartRequest { broker_id }).await }).await
    }

    /// One step of moving the controller voters to `voters` (see the broker's
    /// `ChangeControllerVoters`); call again until the answer is `done`.
    pub async fn change_controller_voters(&self, voters: &[i32]) -> Result<ChangeControllerVotersResponse, AdminError> {
        let request = ChangeControllerVotersRequest { voters: voters.to_vec() };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.change_controller_voters(request).await }
            })
            .await?;
        refused("ChangeControllerVoters", r.error_code, r.error_message.clone())?;
        Ok(r)
    }

    /// Moves leadership off `broker_id` (its current registration); returns the
    /// partitions it still leads — empty once it can stop without a leader
    /// disappearing.
    pub async fn controlled_shutdown(&self, broker_id: i32) -> Result<Vec<PartitionRef>, AdminError> {
        let request = ControlledShutdownRequest { broker_id, broker_epoch: -1 };
        let r = self.call(|mut c| async move { c.controlled_shutdown(request).await }).await?;
        refused("ControlledShutdown", r.error_code, r.error_message)?;
        Ok(r.remaining_leaderships)
    }

    /// Preferred-leader election for `partitions`; returns how many partitions
    /// changed leader (the others already had it, or their preferred replica
    /// is outside the ISR and cannot lead yet).
    pub async fn elect_preferred_leaders(&self, partitions: Vec<PartitionRef>) -> Result<usize, AdminError> {
        let request = ElectLeadersRequest { election_type: ElectionType::Preferred as i32, partitions };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.elect_leaders(request).await }
            })
            .await?;
        Ok(r.results.iter().filter(|result| result.error_code == 0).count())
    }

    /// Starts moving each `(topic, partition)` onto its replica list, copying
    /// at most `throttle_bytes_per_sec` per receiving broker (0: unthrottled).
    /// A partition already moving to the same list counts as started; the
    /// first refusal of any other kind is returned (the others still start).
    pub async fn reassign(
        &self,
        moves: &[(String, i32, Vec<i32>)],
        throttle_bytes_per_sec: u64,
    ) -> Result<(), AdminError> {
        let request = AlterPartitionReassignmentsRequest {
            reassignments: moves
                .iter()
                .map(|(topic, partition, replicas)| PartitionReassignment {
                    topic: topic.clone(),
                    partition: *partition,
                    replicas: replicas.clone(),
                })
                .collect(),
            throttle_bytes_per_sec,
            validate_only: false,
        };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.alter_partition_reassignments(request).await }
            })
            .await?;
        match r.results.into_iter().find(|result| result.error_code != 0) {
            Some(result) => refused("AlterPartitionReassignments", result.error_code, result.error_message),
            None => Ok(()),
        }
    }

    /// Replaces the cluster-wide dynamic broker settings, applied by every
    /// broker without a restart.
    pub async fn alter_broker_configs(&self, configs: &BTreeMap<String, String>) -> Result<(), AdminError> {
        let request = AlterBrokerConfigsRequest {
            configs: configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            validate_only: false,
        };
        let r = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.alter_broker_configs(request).await }
            })
            .await?;
        refused("AlterBrokerConfigs", r.error_code, r.error_message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Transport(std::io::Error);

    impl std::fmt::Display for Transport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("transport error")
        }
    }

    impl std::error::Error for Transport {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_failed_call_says_what_failed_underneath() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let status = tonic::Status::from_error(Box::new(Transport(refused)));
        let text = with_causes(&status);
        assert!(text.contains("transport error") && text.ends_with("connection refused"), "{text}");
    }
}
