//! This broker's membership of the cluster: joining it, staying in it,
//! leaving it cleanly.
//!
//! [`join`] names the cluster if nobody has, registers this broker with the
//! active controller (receiving a broker epoch), sends the first heartbeat
//! (which unfences it), waits until this broker has published the image up
//! to its registration, imports an old single-node metadata file, and only
//! then marks the broker ready (the publisher may delete unassigned logs
//! from then on). A heartbeat task keeps the session alive and, on the
//! active controller, creates `__consumer_offsets` once enough brokers are
//! live. [`controlled_shutdown`] (SIGTERM) stops the heartbeats (waiting
//! for one in flight), then moves this broker's leaderships away before it
//! stops: a heartbeat after it would unfence the broker again, and it would
//! lead partitions on its way out.
//!
//! Must never: propose anything for another broker (heartbeats,
//! registrations and controlled shutdown name this broker only).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use uuid::Uuid;

use crate::admin::{AdminError, Change, NewTopic};
use crate::broker::Broker;
use crate::controller::ControllerError;
use crate::controller::image::{Command, CommandError, Outcome, TopicAssignment};

/// Joins the cluster; returns once this broker is registered, unfenced and
/// caught up. Waits for a controller quorum as long as it takes (until the
/// broker's shutdown token is cancelled).
pub async fn join(broker: &Arc<Broker>) -> anyhow::Result<()> {
    let c = &broker.config;
    // A single-node data dir of an older Strom keeps its cluster id and topics.
    let single_voter = broker.controller.voters().len() == 1;
    let legacy = if single_voter { crate::metadata::legacy::read(&c.data_dir)? } else { None };
    let cluster_id = legacy.as_ref().map(|l| l.cluster_id.clone()).unwrap_or_else(crate::metadata::new_cluster_id);
    // The voters name the cluster; only the first proposal counts, a later
    // one is applied as a no-op. A broker outside the quorum may propose
    // nothing but its own registration until it is a learner. An empty node
    // first learns from the quorum whether it is a voter at all (its
    // configured voters may name it before the voter change that adds it).
    tokio::select! {
        _ = broker.controller.wait_start_decided() => {}
        _ = broker.shutdown.cancelled() => anyhow::bail!("shut down while deciding how to join the controller quorum"),
    }
    let voter = crate::controller::NodeId::try_from(c.node_id).is_ok_and(|id| broker.controller.voters().contains(&id));
    if voter {
        let cluster_id = Command::InitCluster { cluster_id };
        let _ =
            retry_until_quorum(broker, "name the cluster", || broker.controller.propose(cluster_id.clone())).await?;
    }
    // A listener of `--advertised-overrides` is registered at the address
    // its file gives now, or not at all; `advertised::watch` follows the file.
    let listeners = crate::advertised::current(c).context("cannot start with these advertised overrides")?;
    let register = Command::RegisterBroker {
        broker_id: c.node_id,
        incarnation_id: Uuid::new_v4(),
        advertised_endpoint: c.advertise.to_string(),
        internal_endpoint: c.internal_advertise.to_string(),
        listeners: listeners.clone(),
        rack: c.rack.clone(),
        max_partitions: Some(crate::open_files::max_broker_partitions(&c.settings)),
    };
    let committed =
        retry_until_quorum(broker, "register", || broker.controller.propose_committed(register.clone())).await?;
    let epoch = match committed.result {
        Ok(Outcome::Registered { broker_epoch }) => broker_epoch,
        other => anyhow::bail!("the controller refused to register broker {}: {other:?}", c.node_id),
    };
    broker.set_broker_epoch(epoch);
    // The first heartbeat unfences this broker through the log.
    let unfenced = heartbeat(broker).await.unwrap_or(0);
    tokio::spawn(heartbeat_loop(broker.clone()));
    tokio::spawn(crate::advertised::watch(broker.clone(), listeners));
    // Publishing hosts every partition assigned here (a leader-epoch
    // checkpoint fsynced for each it leads): with tens of thousands of
    // partitions that takes longer than a request may wait.
    broker.wait_published_within(committed.index.max(unfenced), crate::broker::START_PUBLISH_TIMEOUT).await?;
    if let Some(legacy) = legacy {
        import_legacy(broker, legacy).await?;
    }
    // Only now may the publisher delete logs the image does not assign here.
    broker.set_ready(true);
    tracing::info!(node_id = c.node_id, broker_epoch = epoch, "registered with the controller quorum");
    // On a quorum of one, the broker is the whole cluster: make
    // `__consumer_offsets` now so groups work from the first request.
    // Retried: under load the first heartbeat may time out, leaving this
    // broker fenced (and the topic unmade) until the heartbeat loop's next.
    if broker.controller.voters().len() == 1 {
        let deadline = tokio::time::Instant::now() + SINGLE_NODE_OFFSETS_WAIT;
        loop {
            ensure_offsets_topic(broker).await;
            if broker.metadata.read().topic(crate::group::OFFSETS_TOPIC).is_some() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "{} not created within {SINGLE_NODE_OFFSETS_WAIT:?} of registering; the heartbeat loop keeps trying",
                    crate::group::OFFSETS_TOPIC
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// How long a single-node broker's start waits for `__consumer_offsets`.
const SINGLE_NODE_OFFSETS_WAIT: Duration = Duration::from_secs(30);

/// Creates the topics of an old single-node metadata file (same ids,
/// replicas and configs) unless the image has them, moves the producer-id
/// allocator past the old file's, then renames the file.
async fn import_legacy(broker: &Broker, legacy: crate::metadata::legacy::LegacyImage) -> anyhow::Result<()> {
    for (name, topic) in &legacy.topics {
        if broker.controller.image().topics.contains_key(name) {
            continue;
        }
        let assignment = topic.partitions.iter().map(|p| p.replicas.clone()).collect();
        let command = Command::CreateTopic {
            name: name.clone(),
            topic_id: topic.id,
            assignment: TopicAssignment::Explicit(assignment),
            configs: topic.configs.clone(),
        };
        let imported = async {
            let committed = broker.controller.propose_committed(command).await?;
            committed.result?;
            broker.wait_published(committed.index).await?;
            anyhow::Ok(())
        };
        imported.await.with_context(|| format!("cannot import topic `{name}` from the old metadata file"))?;
        tracing::info!(topic = %name, "imported topic from the old single-node metadata file");
    }
    while broker.controller.image().producer_id_block_end < legacy.producer_id_block_end {
        let command = Command::AllocateProducerIdBlock { broker_id: broker.config.node_id };
        broker.controller.propose(command).await??;
    }
    crate::metadata::legacy::mark_imported(&broker.config.data_dir)
        .with_context(|| format!("cannot rename the imported metadata file in {}", broker.config.data_dir.display()))?;
    Ok(())
}

async fn retry_until_quorum<T, F, Fut>(broker: &Broker, what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ControllerError>>,
{
    let mut warned = false;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e @ (ControllerError::NoController(_) | ControllerError::Forward { .. })) => {
                if !warned {
                    tracing::warn!(error = %e, "waiting for the controller quorum to {what}");
                    warned = true;
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot {what}")),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = broker.shutdown.cancelled() => anyhow::bail!("shut down while waiting for the controller quorum to {what}"),
        }
    }
}

/// One heartbeat to the active controller; the log index it was committed
/// at when it unfenced this broker (0 for a plain renewal).
///
/// It gives up after a third of `broker.session.timeout.ms`: when the
/// active controller freezes (SIGSTOP, a hung VM), the quorum elects
/// another, which starts every session afresh; the next heartbeat must
/// reach it before that session expires.
async fn heartbeat(broker: &Broker) -> Option<u64> {
    // Held until the heartbeat is answered, so a controlled shutdown waits
    // for it; none is sent after.
    let stopped = broker.heartbeats_stopped.lock().await;
    if *stopped {
        return None;
    }
    let command = Command::BrokerHeartbeat { broker_id: broker.config.node_id, broker_epoch: broker.broker_epoch() };
    let session = broker.config.settings.long("broker.session.timeout.ms").max(3) as u64;
    let timeout = Duration::from_millis(session / 3);
    match broker.controller.propose_committed_within(command, timeout).await {
        Ok(c) => match c.result {
            Ok(_) => Some(c.index),
            Err(e) => {
                tracing::error!(error = %e, "the controller refused this broker's heartbeat");
                None
            }
        },
        Err(e) => {
            tracing::debug!(error = %e, "heartbeat did not reach the controller");
            None
        }
    }
}

/// Heartbeats every `broker.heartbeat.interval.ms` until shutdown; the
/// active controller's duties that need a broker (creating
/// `__consumer_offsets`) ride on the same timer.
async fn heartbeat_loop(broker: Arc<Broker>) {
    let every = Duration::from_millis(broker.config.settings.long("broker.heartbeat.interval.ms").max(1) as u64);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = broker.shutdown.cancelled() => return,
        }
        heartbeat(&broker).await;
        ensure_offsets_topic(&broker).await;
    }
}

/// Moves this broker's leaderships to other ISR members and takes it out of
/// every ISR, before it stops (SIGTERM). Best effort: without a quorum the
/// broker stops anyway and its session expires.
pub async fn controlled_shutdown(broker: &Broker) {
    broker.set_ready(false);
    // No heartbeat after this one: a later heartbeat would unfence this
    // broker again and make it a leader on its way out. (The controller
    // unfences on any heartbeat, so a controlled shutdown the operator asks
    // of a broker that keeps running is undone by its next heartbeat.)
    *broker.heartbeats_stopped.lock().await = true;
    let change = Change::ControlledShutdown { broker_id: broker.config.node_id, broker_epoch: broker.broker_epoch() };
    match tokio::time::timeout(Duration::from_secs(10), crate::admin::apply(broker, change, false)).await {
        Ok(Ok(_)) => tracing::info!("controlled shutdown: leaderships moved to other replicas"),
        Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown refused; stopping anyway"),
        Err(_) => tracing::warn!("controlled shutdown timed out; stopping anyway"),
    }
}

/// The replication factor of an internal topic (`__consumer_offsets`,
/// `__transaction_state`): the configured one, capped to the size of the
/// controller quorum (counting voters rejoining after losing their log, see
/// [`crate::controller::Controller::quorum_size`]) so a small cluster is not
/// stuck forever. A voter of a new cluster that started late rejoins and is
/// briefly no voter; a topic created in that window must not keep one
/// replica fewer for life (with `min.insync.replicas` equal to its replicas,
/// no broker could ever restart safely).
pub fn internal_topic_replication(broker: &Broker, configured: i16) -> usize {
    replication_within_quorum(configured, broker.controller.quorum_size())
}

fn replication_within_quorum(configured: i16, quorum: usize) -> usize {
    usize::try_from(configured).unwrap_or(1).min(quorum).max(1)
}

/// Creates `__consumer_offsets` when this node is the active controller, the
/// topic does not exist, and enough brokers are live for its replication
/// factor (see [`internal_topic_replication`]).
pub async fn ensure_offsets_topic(broker: &Broker) {
    let image = broker.controller.image();
    if image.topics.contains_key(crate::group::OFFSETS_TOPIC)
        || broker.controller.active_controller() != Some(broker.config.node_id as u64)
    {
        return;
    }
    let config = broker.groups.config();
    let wanted = internal_topic_replication(broker, config.offsets_topic_replication_factor);
    let live = image.brokers.values().filter(|b| !b.fenced).count();
    if live < wanted {
        return;
    }
    let request = NewTopic {
        name: crate::group::OFFSETS_TOPIC.to_string(),
        num_partitions: config.offsets_topic_partitions,
        replication_factor: wanted as i16,
        assignment: Vec::new(),
        configs: vec![
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), config.offsets_topic_segment_bytes.to_string()),
        ],
    };
    match crate::admin::create_topic(broker, request, false).await {
        Ok(_) | Err(AdminError::Refused(CommandError::TopicAlreadyExists(_))) => {}
        Err(e) => tracing::warn!(error = %e, "cannot create {} yet", crate::group::OFFSETS_TOPIC),
    }
}

#[cfg(test)]
mod tests {
    use super::replication_within_quorum;

    #[test]
    fn an_internal_topic_has_the_configured_replicas_at_most_one_per_voter() {
        assert_eq!(replication_within_quorum(3, 3), 3);
        assert_eq!(replication_within_quorum(3, 1), 1, "a small cluster is capped to its quorum");
        assert_eq!(replication_within_quorum(5, 5), 5);
        assert_eq!(replication_within_quorum(2, 3), 2);
        assert_eq!(replication_within_quorum(0, 3), 1, "a nonsensical setting still gives one replica");
        assert_eq!(replication_within_quorum(-1, 3), 1);
    }
}
