//! What `/metrics` answers: the recorded metrics of [`crate::metrics`] and
//! state gauges, computed from the broker's state at scrape time.
//!
//! Nothing here is touched by the produce or fetch paths: each scrape walks
//! the hosted partition replicas, the published metadata image, the
//! controller's Raft metrics and the group coordinator, and builds fresh
//! metric families from what it finds. A partition log whose lock is held
//! for long (compaction) is skipped for that scrape rather than waited on.
//!
//! Scope, as in Kafka: log sizes and offsets are per hosted replica (every
//! broker reports its own copy); under-replicated, at/under-min-ISR and
//! leader counts cover the partitions this broker leads; offline partitions
//! are reported by the active controller only (0 elsewhere); groups and
//! consumer lag cover the groups this broker coordinates, lag only where it
//! hosts the partition (see docs/METRICS.md).

use std::collections::HashMap;
use std::time::Duration;

use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use crate::broker::Broker;
use crate::controller::image::NO_LEADER;
use crate::group::state::GroupState;
use crate::log::TopicPartition;

/// Renders the broker's recorded and state metrics in the Prometheus text
/// format. Takes partition log locks briefly: call from a blocking-capable
/// context.
pub fn render(broker: &Broker) -> String {
    let mut families = broker.metrics.gather();
    families.extend(collect_state(broker));
    families.sort_by(|a, b| a.name().cmp(b.name()));
    crate::metrics::encode(&families)
}

/// Longest a scrape waits for one partition log's read lock.
const LOG_LOCK_WAIT: Duration = Duration::from_millis(20);

const GROUP_STATES: &[GroupState] =
    &[GroupState::Empty, GroupState::PreparingRebalance, GroupState::CompletingRebalance, GroupState::Stable];

/// Fresh gauges registered in a per-scrape registry.
struct Families {
    registry: Registry,
}

impl Families {
    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
        self.registry.register(Box::new(g.clone())).expect("metric registered once per scrape");
        g
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        let g = IntGauge::new(name, help).expect("valid metric definition");
        self.registry.register(Box::new(g.clone())).expect("metric registered once per scrape");
        g
    }

    fn counter(&self, name: &str, help: &str, value: u64) {
        let c = IntCounter::new(name, help).expect("valid metric definition");
        c.inc_by(value);
        self.registry.register(Box::new(c)).expect("metric registered once per scrape");
    }
}

/// The state gauges of `broker`, as of now. Blocking (log read locks).
pub fn collect_state(broker: &Broker) -> Vec<MetricFamily> {
    let f = Families { registry: Registry::new() };
    let me = broker.config.node_id;
    let tp_labels = &["topic", "partition"];
    let log_size =
        f.gauge_vec("strom_partition_log_size_bytes", "Bytes of a hosted replica's log segments on disk.", tp_labels);
    let segments = f.gauge_vec("strom_partition_log_segments", "Segments of a hosted replica's log.", tp_labels);
    let log_start =
        f.gauge_vec("strom_partition_log_start_offset", "First offset of a hosted replica's log.", tp_labels);
    let log_end = f.gauge_vec("strom_partition_log_end_offset", "Log end offset of a hosted replica.", tp_labels);
    let high_watermark =
        f.gauge_vec("strom_partition_high_watermark", "High watermark of a hosted replica.", tp_labels);
    let leaders = f.gauge("strom_leader_partitions", "Partitions this broker leads.");
    let under_replicated = f.gauge(
        "strom_under_replicated_partitions",
        "Partitions this broker leads whose ISR is smaller than their replica set.",
    );
    let at_min_isr = f.gauge(
        "strom_at_min_isr_partitions",
        "Partitions this broker leads whose ISR size equals min.insync.replicas.",
    );
    let under_min_isr = f.gauge(
        "strom_under_min_isr_partitions",
        "Partitions this broker leads whose ISR is smaller than min.insync.replicas (acks=all fails).",
    );
    let offline = f.gauge(
        "strom_offline_partitions",
        "Partitions without a leader, reported by the active controller (0 on other brokers).",
    );
    let file_cache = crate::log::file_cache::FileCache::global();
    f.gauge(
        "strom_log_open_files",
        "Segment .log files open now: those in the log's handle cache plus evicted ones a read still holds.",
    )
    .set(i64::try_from(file_cache.open_files()).unwrap_or(i64::MAX));
    f.gauge(
        "strom_log_open_files_budget",
        "Most segment .log files the log's handle cache keeps open (log.open.files.max).",
    )
    .set(i64::try_from(file_cache.budget()).unwrap_or(i64::MAX));
    f.counter(
        "strom_log_file_opens_total",
        "Segment .log files opened by the handle cache (first opens and reopens after eviction).",
        file_cache.opened_total(),
    );
    f.counter(
        "strom_log_file_evictions_total",
        "Segment .log files closed by the handle cache to stay within its budget.",
        file_cache.evicted_total(),
    );
    let controller_active = f.gauge("strom_controller_active", "1 while this broker is the active controller.");
    let controller_term = f.gauge("strom_controller_term", "Raft term of the controller quorum as this node knows it.");
    let controller_voter = f.gauge(
        "strom_controller_voter",
        "1 while this node is a full voter of the controller quorum (0 while it rejoins after losing its log).",
    );
    let fenced =
        f.gauge("strom_controller_fenced_brokers", "Registered brokers that are fenced, in this broker's image.");
    let registered = f.gauge("strom_controller_registered_brokers", "Brokers registered in this broker's image.");
    let groups = f.gauge_vec("strom_groups", "Consumer groups this broker coordinates, by state.", &["state"]);
    let committed = f.gauge_vec(
        "strom_group_committed_offset",
        "Committed offset of a group on a partition, for groups this broker coordinates.",
        &["group", "topic", "partition"],
    );
    let lag = f.gauge_vec(
        "strom_group_lag_records",
        "High watermark minus committed offset, for groups this broker coordinates on partitions it hosts.",
        &["group", "topic", "partition"],
    );

    // Hosted replicas.
    let mut min_isr_by_topic: HashMap<String, usize> = HashMap::new();
    let mut hw_by_partition: HashMap<TopicPartition, i64> = HashMap::new();
    let (mut led, mut urp, mut at_min, mut under_min) = (0i64, 0i64, 0i64, 0i64);
    for partition in broker.replicas.partitions() {
        let tp = partition.topic_partition();
        let labels = [tp.topic.as_str(), &tp.partition.to_string()];
        let hw = partition.high_watermark();
        hw_by_partition.insert(tp.clone(), hw);
        high_watermark.with_label_values(&labels).set(hw);
        log_end.with_label_values(&labels).set(partition.log_end_offset());
        if let Some(log) = partition.log().try_read_for(LOG_LOCK_WAIT) {
            log_size.with_label_values(&labels).set(i64::try_from(log.size_bytes()).unwrap_or(i64::MAX));
            segments.with_label_values(&labels).set(log.segment_count() as i64);
            log_start.with_label_values(&labels).set(log.log_start_offset());
        }
        let state = partition.leader_and_isr();
        if state.leader != me {
            continue;
        }
        led += 1;
        let isr = state.isr.len();
        if isr < state.replicas.len() {
            urp += 1;
        }
        let min_isr = *min_isr_by_topic
            .entry(tp.topic.clone())
            .or_insert_with(|| crate::admin::topic_min_insync_replicas(broker, &tp.topic));
        if isr == min_isr {
            at_min += 1;
        } else if isr < min_isr {
            under_min += 1;
        }
    }
    leaders.set(led);
    under_replicated.set(urp);
    at_min_isr.set(at_min);
    under_min_isr.set(under_min);

    // Controller.
    let active = broker.controller.active_controller() == Some(me as u64);
    controller_active.set(active as i64);
    let term = broker.controller.raft().metrics().borrow().current_term;
    controller_term.set(i64::try_from(term).unwrap_or(i64::MAX));
    controller_voter.set(broker.controller.is_voter() as i64);
    if let Some(image) = broker.last_image.lock().clone() {
        registered.set(image.brokers.len() as i64);
        fenced.set(image.brokers.values().filter(|b| b.fenced).count() as i64);
        if active {
            let count = image.topics.values().flat_map(|t| &t.partitions).filter(|p| p.leader == NO_LEADER).count();
            offline.set(count as i64);
        }
    }

    // Groups and lag.
    for state in GROUP_STATES {
        groups.with_label_values(&[state.as_str()]).set(0);
    }
    for group in broker.groups.metrics_view() {
        groups.with_label_values(&[group.state.as_str()]).inc();
        for (topic, partition, offset) in &group.offsets {
            let labels = [group.group_id.as_str(), topic.as_str(), &partition.to_string()];
            committed.with_label_values(&labels).set(*offset);
            let tp = TopicPartition { topic: topic.clone(), partition: *partition };
            if let Some(hw) = hw_by_partition.get(&tp) {
                lag.with_label_values(&labels).set((hw - offset).max(0));
            }
        }
    }
    f.counter(
        "strom_log_corrupt_batches_total",
        "Damaged record batches found in this broker's logs since start: at open (sealed segments verified) or \
         while serving a fetch (refused with KAFKA_STORAGE_ERROR).",
        crate::log::scrub::corrupt_batches_total(),
    );
    f.counter(
        "strom_log_scrub_bytes_total",
        "Bytes of stored record batches verified at open (sealed segments not verified since they changed) and by \
         the background scrub.",
        crate::log::scrub::verified_bytes_total(),
    );
    f.counter(
        "strom_log_repaired_bytes_total",
        "Bytes cut from logs at or after a damaged batch, to be fetched again from the leader.",
        crate::log::scrub::repaired_bytes_total(),
    );
    let transport = broker.replicas.fetch_transport_stats().counts();
    f.counter(
        "strom_replication_fetch_streams_opened_total",
        "FetchStream streams followers opened to this broker as leader.",
        transport.streams_opened,
    );
    f.gauge("strom_replication_fetch_streams_open", "FetchStream streams served now.").set(transport.streams_open);
    f.counter(
        "strom_replication_fetch_stream_requests_total",
        "Follower fetches received over FetchStream streams.",
        transport.stream_requests,
    );
    f.counter(
        "strom_replication_fetch_unary_requests_total",
        "Follower fetches received as FetchPartitions or FetchRecords calls.",
        transport.unary_requests,
    );
    f.counter(
        "strom_replication_fetch_stream_attempts_total",
        "FetchStream streams this broker's fetch sessions tried to open to their leaders.",
        transport.stream_attempts,
    );
    f.counter(
        "strom_replication_fetch_stream_fallbacks_total",
        "Times a fetch session found its leader without FetchStream and fell back to FetchPartitions calls.",
        transport.stream_fallbacks,
    );
    f.counter(
        "strom_group_rebalances_total",
        "Rebalances completed (generation bumps) by groups this broker coordinated since start.",
        broker.groups.rebalances_total(),
    );

    // Forget per-topic series of deleted topics, once the metadata is complete.
    if broker.is_ready() {
        let metadata = broker.metadata.read();
        broker.metrics.retain_topics(|t| metadata.topic(t).is_some());
    }
    f.registry.gather()
}
