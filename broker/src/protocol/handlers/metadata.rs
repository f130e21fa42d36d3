//! Metadata: brokers, controller and topics with partition leaders, creating
//! requested topics when `auto.create.topics.enable` allows it.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::str_bytes;
use crate::admin::{AdminError, NewTopic};
use crate::broker::Broker;
use crate::controller::CommandError;
use crate::log_lines::LineLimit;
use crate::metadata::TopicMetadata;
use crate::protocol::errors::KafkaError;

/// One line per name a client asks for would let it fill the log.
static AUTO_CREATE_LOG: LineLimit = LineLimit::new(10);

/// Every topic operation allowed (no ACLs yet): READ..ALTER_CONFIGS bits.
const ALL_TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &crate::protocol::codec::RequestContext,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all topics.
    let requested: Option<Vec<(Option<String>, Uuid)>> = match request.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        // A lookup by topic id (v10+) may carry the name "" (the Java client sends it so).
        Some(list) => Some(
            list.into_iter()
                .map(|t| (t.name.map(|n| n.to_string()).filter(|n| !n.is_empty() || t.topic_id.is_nil()), t.topic_id))
                .collect(),
        ),
    };
    let auto_create =
        (version < 4 || request.allow_auto_topic_creation) && broker.config.settings.bool("auto.create.topics.enable");
    let authorized_ops = if request.include_topic_authorized_operations { ALL_TOPIC_OPERATIONS } else { i32::MIN };

    let mut topics = Vec::new();
    match requested {
        None => {
            let all: Vec<TopicMetadata> = broker.metadata.read().topics().cloned().collect();
            topics.extend(all.iter().map(|t| topic_entry(t, authorized_ops)));
        }
        Some(list) => {
            for (name, id) in list {
                topics.push(lookup(broker, name, id, auto_create, authorized_ops).await);
            }
        }
    }
    let (cluster_id, controller_id, brokers) = {
        let view = broker.metadata.read();
        let brokers: Vec<MetadataResponseBroker> = view
            .brokers_on(ctx.listener.as_deref())
            .iter()
            .map(|b| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(str_bytes(b.host.clone()))
                    .with_port(b.port)
                    .with_rack(b.rack.clone().map(str_bytes))
            })
            .collect();
        (view.cluster_id().to_string(), view.controller_id(), brokers)
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(cluster_id)))
        .with_controller_id(BrokerId(controller_id))
        .with_cluster_authorized_operations(i32::MIN)
        .with_topics(topics)
}

async fn lookup(
    broker: &Arc<Broker>,
    name: Option<String>,
    id: Uuid,
    auto_create: bool,
    authorized_ops: i32,
) -> MetadataResponseTopic {
    let Some(name) = name else {
        return match broker.metadata.read().topic_by_id(id) {
            Some(t) => topic_entry(t, authorized_ops),
            None => {
                MetadataResponseTopic::default().with_topic_id(id).with_error_code(ResponseError::UnknownTopicId.code())
            }
        };
    };
    if let Some(t) = broker.metadata.read().topic(&name) {
        return topic_entry(t, authorized_ops);
    }
    let error_entry = |error: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name.clone()))))
            .with_error_code(error.code())
            .with_topic_authorized_operations(authorized_ops)
    };
    if !auto_create {
        return error_entry(ResponseError::UnknownTopicOrPartition);
    }
    let req = NewTopic { name: name.clone(), num_partitions: -1, replication_factor: -1, ..Default::default() };
    match crate::admin::create_topic(broker, req, false).await {
        Ok(t) => topic_entry(&t, authorized_ops),
        Err(AdminError::Refused(CommandError::TopicAlreadyExists(_))) => {
            // Created concurrently by another request: answer with it.
            match broker.metadata.read().topic(&name) {
                Some(t) => topic_entry(t, authorized_ops),
                None => error_entry(ResponseError::LeaderNotAvailable),
            }
        }
        Err(e) => {
            let k = KafkaError::from(&e);
            if let Some(left_out) = AUTO_CREATE_LOG.admit() {
                tracing::info!(topic = %name, error = %e, left_out_since_last_line = left_out, "metadata request did not auto-create topic");
            }
            error_entry(k.error)
        }
    }
}

fn topic_entry(t: &TopicMetadata, authorized_ops: i32) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let error = if p.leader < 0 { ResponseError::LeaderNotAvailable.code() } else { 0 };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_ops)
}
