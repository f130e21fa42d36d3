//! The one place where Strom's error types become Kafka error codes.
//!
//! Each mapping picks the code a Kafka client expects for that failure, so
//! clients retry what is retriable and report the rest, with our message.

use kafka_protocol::error::ResponseError;

use crate::admin::AdminError;
use crate::controller::CommandError;
use crate::log::LogError;
use crate::metadata::MetadataError;
use crate::txn::TxnError;

/// A Kafka error code with a human message.
#[derive(Debug, Clone)]
pub struct KafkaError {
    /// The Kafka error.
    pub error: ResponseError,
    /// Why, for the client's logs (sent where the API has a message field).
    pub message: String,
}

impl KafkaError {
    /// A Kafka error with a message.
    pub fn new(error: ResponseError, message: impl Into<String>) -> KafkaError {
        KafkaError { error, message: message.into() }
    }

    /// The numeric code.
    pub fn code(&self) -> i16 {
        self.error.code()
    }
}

impl From<&LogError> for KafkaError {
    fn from(e: &LogError) -> KafkaError {
        let error = match e {
            LogError::CrcMismatch { .. } | LogError::CorruptBatch { .. } => ResponseError::CorruptMessage,
            LogError::UnsupportedMagic { .. } => ResponseError::UnsupportedForMessageFormat,
            LogError::RecordBatchTooLarge { .. } => ResponseError::MessageTooLarge,
            LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            LogError::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
            LogError::InvalidTxnState { .. } | LogError::TxnNotVerified { .. } => ResponseError::InvalidTxnState,
            LogError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
            LogError::InvalidRecords { .. } => ResponseError::InvalidRecord,
            _ => ResponseError::KafkaStorageError,
        };
        KafkaError::new(error, e.to_string())
    }
}

impl From<&MetadataError> for KafkaError {
    fn from(e: &MetadataError) -> KafkaError {
        let error = match e {
            MetadataError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            MetadataError::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
            MetadataError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
            MetadataError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
            MetadataError::InvalidReplicaAssignment { .. } => ResponseError::InvalidReplicaAssignment,
            MetadataError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        };
        KafkaError::new(error, e.to_string())
    }
}

impl From<&AdminError> for KafkaError {
    fn from(e: &AdminError) -> KafkaError {
        match e {
            AdminError::Metadata(m) => m.into(),
            AdminError::Log(l) => l.into(),
            AdminError::Refused(c) => c.into(),
            AdminError::PartitionsRefused(c) => {
                KafkaError::new(command_error_code(c, CommandContext::Partitions), c.to_string())
            }
            // Retriable: clients try again, by then a controller may be elected.
            AdminError::Controller(_) => KafkaError::new(ResponseError::RequestTimedOut, e.to_string()),
            AdminError::DeletionDisabled => KafkaError::new(ResponseError::TopicDeletionDisabled, e.to_string()),
            AdminError::ClientQuota(_) => KafkaError::new(ResponseError::InvalidRequest, e.to_string()),
        }
    }
}

/// Which request a refused controller command answers; a few refusals get a
/// request-specific code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandContext {
    /// Creating, deleting, configuring a topic or electing leaders.
    Topic,
    /// Adding partitions to a topic.
    Partitions,
}

/// The Kafka error code of a refused controller command.
pub fn command_error_code(e: &CommandError, context: CommandContext) -> ResponseError {
    match e {
        CommandError::UnknownBroker(_) => ResponseError::BrokerIdNotRegistered,
        CommandError::StaleBrokerEpoch { .. } => ResponseError::StaleBrokerEpoch,
        CommandError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        CommandError::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
        CommandError::InvalidTopic { .. } => ResponseError::InvalidTopicException,
        CommandError::InvalidPlacement { .. } => match context {
            CommandContext::Topic => ResponseError::InvalidReplicationFactor,
            CommandContext::Partitions => ResponseError::InvalidPartitions,
        },
        CommandError::InvalidReplicaAssignment { .. } => ResponseError::InvalidReplicaAssignment,
        CommandError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        CommandError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
        CommandError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        CommandError::StalePartitionEpoch { .. } => ResponseError::InvalidUpdateVersion,
        CommandError::InvalidIsr { .. } => ResponseError::InvalidRequest,
        CommandError::EligibleLeadersNotAvailable { .. } => ResponseError::EligibleLeadersNotAvailable,
        CommandError::ReassignmentInProgress { .. } => ResponseError::ReassignmentInProgress,
        CommandError::InvalidBrokerConfig { .. } => ResponseError::InvalidConfig,
        CommandError::InvalidGroupConfig { .. } => ResponseError::InvalidConfig,
        CommandError::PartitionLimit { .. } => ResponseError::PolicyViolation,
        CommandError::InvalidClientQuota { .. } => ResponseError::InvalidRequest,
    }
}

impl From<&CommandError> for KafkaError {
    fn from(e: &CommandError) -> KafkaError {
        KafkaError::new(command_error_code(e, CommandContext::Topic), e.to_string())
    }
}

impl From<&TxnError> for KafkaError {
    fn from(e: &TxnError) -> KafkaError {
        let error = match e {
            TxnError::InvalidRequest(_) => ResponseError::InvalidRequest,
            TxnError::InvalidTransactionTimeout { .. } => ResponseError::InvalidTransactionTimeout,
            TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            TxnError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
            TxnError::NotCoordinator => ResponseError::NotCoordinator,
            TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
            TxnError::ProducerFenced => ResponseError::ProducerFenced,
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
            TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
            TxnError::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
            TxnError::OperationNotAttempted => ResponseError::OperationNotAttempted,
            TxnError::Storage(_) => ResponseError::CoordinatorNotAvailable,
        };
        KafkaError::new(error, e.to_string())
    }
}

impl KafkaError {
    /// A transaction error as an API `version` understands it: clients of
    /// versions before PRODUCER_FENCED existed (`fenced_since`) get
    /// INVALID_PRODUCER_EPOCH, as Kafka answers them.
    pub fn for_txn(e: &TxnError, version: i16, fenced_since: i16) -> KafkaError {
        let mut k = KafkaError::from(e);
        if k.error == ResponseError::ProducerFenced && version < fenced_since {
            k.error = ResponseError::InvalidProducerEpoch;
        }
        k
    }
}
