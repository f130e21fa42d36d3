//! `/metrics` and `/readyz` against real broker processes and real clients.
//!
//! - A single broker scraped before and after a known workload (rdkafka
//!   producer, assigned consumer, a group committing a known offset, raw
//!   requests): counters move by exactly the workload, state gauges equal
//!   what is on disk, the lag gauge is exact, every scrape is strict
//!   Prometheus text, and every broker metric the Grafana dashboard queries
//!   exists.
//! - A 3-broker cluster: a stopped follower raises the leader's
//!   under-replicated count; restarted after a lot was produced, it answers
//!   `/readyz` 503 while it catches up and 200 once back in the ISR, and the
//!   count returns to 0.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::clients::{self, numbered_records};
use common::cluster::{self, Cluster};
use common::metrics::{Scrape, dashboard_metric_names, http_get};
use common::wire::{self, WireClient};
use common::{BrokerProcess, file_len};
use kafka_protocol::messages::ApiVersionsRequest;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

const DASHBOARD: &str = include_str!("../../charts/strom-operator/dashboards/strom-overview.json");

/// Counter and gauge values of one topic-partition, as labels.
fn tp<'a>(topic: &'a str, partition: &'a str) -> [(&'a str, &'a str); 2] {
    [("topic", topic), ("partition", partition)]
}

#[test]
fn the_strict_parser_refuses_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"2\"} 3\n\
                # TYPE b gauge\nb{y=\"q\\\"uote, and comma\"} 1\n\
                # TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
    let scrape = Scrape::parse(good).expect("valid exposition text");
    assert_eq!(scrape.value("a_total", &[("x", "1"), ("y", "2")]), Some(3.0));
    assert!(scrape.has_series_named("h_bucket") && scrape.has_series_named("b"));
    let cases = [
        ("a family without # TYPE", "a_total 3\n"),
        ("a line that is no sample", "# TYPE a counter\nthis is not a sample\n"),
        ("a value that is no number", "# TYPE a counter\na{x=\"1\"} three\n"),
        ("an unquoted label value", "# TYPE a counter\na{x=1} 3\n"),
        ("a series twice", "# TYPE a counter\na 1\na 2\n"),
    ];
    for (what, text) in cases {
        assert!(Scrape::parse(text).is_err(), "{what} was accepted:\n{text}");
    }
}

/// 400 records produced by rdkafka move records-in by exactly 400 and
/// bytes-in by exactly the bytes the segment files grew by; the log gauges
/// equal the files and offsets; reading them back moves records-out and
/// bytes-out by the same amounts; a group that committed offset 150 lags by
/// exactly 250; three raw ApiVersions v0 requests count exactly 3 at that
/// version; a produce to a missing partition and a corrupt batch each count
/// one error. Every scrape parses strictly, and every broker metric the
/// dashboard queries is in the last one.
#[test]
fn counters_move_by_exactly_the_workload_and_lag_is_exact() {
    const RECORDS: usize = 400;
    const COMMITTED: i64 = 150;
    let (topic, group) = ("metered", "lagging-readers");
    let broker = BrokerProcess::start_with(&["offsets.topic.num.partitions=3"]);
    let (bootstrap, http) = (broker.bootstrap(), broker.http_addr());
    clients::create_topic(&bootstrap, topic, 1, &[]);
    let before = Scrape::fetch(http);
    for name in ["strom_topic_records_in_total", "strom_topic_bytes_in_total", "strom_topic_records_out_total"] {
        assert_eq!(before.value_or_zero(name, &[("topic", topic)]), 0.0, "{name} before any record");
    }

    // Produce with librdkafka, uncompressed.
    let producer = clients::producer(&bootstrap, &[("compression.type", "none")]);
    let delivered = clients::produce_all(&producer, topic, &numbered_records(0, RECORDS, 1_700_000_000_000));
    assert_eq!(delivered.len(), RECORDS);
    drop(producer);
    let on_disk: u64 = broker.segment_files(topic, 0).iter().map(|p| file_len(p)).sum();
    assert!(on_disk > 0, "the records are on disk");

    let produced = Scrape::fetch(http);
    let records_in = produced.value_or_zero("strom_topic_records_in_total", &[("topic", topic)]);
    let bytes_in = produced.value_or_zero("strom_topic_bytes_in_total", &[("topic", topic)]);
    assert_eq!(records_in, RECORDS as f64, "records in");
    assert_eq!(bytes_in, on_disk as f64, "bytes in = the record batches appended = the segment bytes");
    let p0 = tp(topic, "0");
    assert_eq!(produced.value("strom_partition_log_size_bytes", &p0), Some(on_disk as f64), "log size gauge");
    assert_eq!(produced.value("strom_partition_log_segments", &p0), Some(1.0), "segment count");
    assert_eq!(produced.value("strom_partition_log_end_offset", &p0), Some(RECORDS as f64), "log end offset");
    assert_eq!(produced.value("strom_partition_high_watermark", &p0), Some(RECORDS as f64), "high watermark");
    assert_eq!(produced.value("strom_partition_log_start_offset", &p0), Some(0.0), "log start offset");
    assert_eq!(produced.value("strom_under_replicated_partitions", &[]), Some(0.0));
    assert_eq!(produced.value("strom_controller_active", &[]), Some(1.0), "a single node is the active controller");
    let produce_requests = produced.sum("strom_requests_total", &[("api", "Produce")]);
    assert!(produce_requests >= 1.0, "produce requests counted: {produce_requests}");

    // Read everything back with an assigned consumer.
    let read = clients::consume_to_end(&bootstrap, topic, 1);
    assert_eq!(read[&0].len(), RECORDS);
    let consumed = Scrape::fetch(http);
    assert_eq!(
        consumed.value_or_zero("strom_topic_records_out_total", &[("topic", topic)]),
        RECORDS as f64,
        "records out: each batch fetched once"
    );
    assert_eq!(consumed.value_or_zero("strom_topic_bytes_out_total", &[("topic", topic)]), on_disk as f64, "bytes out");

    // A group commits offset 150 (a simple commit, no membership).
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create an rdkafka consumer");
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(topic, 0, Offset::Offset(COMMITTED)).expect("add the offset");
    committer.commit(&offsets, CommitMode::Sync).expect("commit offset 150");
    drop(committer);
    let labels = [("group", group), ("topic", topic), ("partition", "0")];
    let committed = Scrape::fetch(http);
    assert_eq!(committed.value("strom_group_committed_offset", &labels), Some(COMMITTED as f64));
    assert_eq!(
        committed.value("strom_group_lag_records", &labels),
        Some((RECORDS as i64 - COMMITTED) as f64),
        "lag = high watermark - committed offset"
    );
    assert!(committed.value_or_zero("strom_groups", &[("state", "Empty")]) >= 1.0, "the group is Empty");

    // Requests by version, and errors by code, with a raw client.
    let mut raw = WireClient::connect(broker.kafka_addr());
    let api_versions = [("api", "ApiVersions"), ("version", "0")];
    let base = Scrape::fetch(http);
    for _ in 0..3 {
        let response = raw.send(&ApiVersionsRequest::default(), 0);
        assert_eq!(response.error_code, 0);
    }
    let missing = wire::produce(&mut raw, topic, 7, wire::record_batch(&[b"x".to_vec()], 1_700_000_000_000));
    assert_ne!(missing.error_code, 0, "partition 7 does not exist");
    let corrupt = wire::with_corrupted_payload(&wire::record_batch(&[b"y".to_vec()], 1_700_000_000_000));
    let refused = wire::produce(&mut raw, topic, 0, corrupt);
    assert_ne!(refused.error_code, 0, "a corrupt batch is refused");
    let last = Scrape::fetch(http);
    let delta =
        |name: &str, labels: &[(&str, &str)]| last.value_or_zero(name, labels) - base.value_or_zero(name, labels);
    assert_eq!(delta("strom_requests_total", &api_versions), 3.0, "ApiVersions v0 requests");
    let version = wire::PRODUCE_VERSION.to_string();
    let produce_errors = |error: &str| {
        delta("strom_request_errors_total", &[("api", "Produce"), ("version", version.as_str()), ("error", error)])
    };
    assert_eq!(produce_errors("UnknownTopicOrPartition"), 1.0, "{}", last.text);
    assert_eq!(produce_errors("CorruptMessage"), 1.0, "{}", last.text);
    assert_eq!(delta("strom_produce_errors_total", &[("topic", topic)]), 1.0, "refused append");
    assert_eq!(delta("strom_topic_records_in_total", &[("topic", topic)]), 0.0, "nothing refused was counted in");

    // The dashboard's broker metrics all exist.
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is valid JSON");
    let names = dashboard_metric_names(&dashboard);
    let broker_names: Vec<&String> = names.iter().filter(|n| !n.starts_with("strom_operator_")).collect();
    assert!(broker_names.len() >= 15, "the dashboard queries broker metrics: {broker_names:?}");
    let missing: Vec<&&String> = broker_names.iter().filter(|n| !last.has_series_named(n)).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics the broker does not export: {missing:?}\n{}", last.text);
}

/// Broker 2 follows partition 0 of a topic led by broker 0. Stopped, it
/// leaves the ISR and broker 0's under-replicated count rises; 24 MiB are
/// produced without it; started again, it catches up held to 8 MiB/s by
/// Kafka's follower throttle (the topic lists every replica in
/// `follower.replication.throttled.replicas`), so catching up takes at
/// least two seconds, however fast the machine. Meanwhile its `/readyz`
/// answers 503 "catching up"; back in the ISR with the whole log, 200. The
/// under-replicated count returns to 0 on every broker and broker 0 counted
/// an ISR expansion.
#[test]
fn a_restarted_follower_is_not_ready_until_back_in_the_isr_and_under_replication_clears() {
    const RECORDS: usize = 1_536;
    const VALUE_BYTES: usize = 16 * 1024;
    const THROTTLE_BYTES_PER_SEC: usize = 8 << 20;
    let topic = "replicated";
    let mut settings = cluster::FAST_FAILOVER.to_vec();
    let rate = format!("follower.replication.throttled.rate={THROTTLE_BYTES_PER_SEC}");
    settings.extend(["offsets.topic.num.partitions=3", rate.as_str()]);
    let mut cluster = Cluster::start(3, "metrics", &settings);
    let throttled = [("follower.replication.throttled.replicas", "*")];
    cluster::create_topic(&cluster.bootstrap(), topic, 1, 3, Some(&[&[0, 1, 2]]), &throttled);
    let urp = |cluster: &Cluster, id: i32| {
        Scrape::fetch(cluster.broker(id).http_addr()).value("strom_under_replicated_partitions", &[])
    };
    cluster::wait_until("no under-replicated partition on any broker", Duration::from_secs(60), || {
        (0..3).all(|id| urp(&cluster, id) == Some(0.0)).then_some(())
    });
    let expands_before =
        Scrape::fetch(cluster.broker(0).http_addr()).value("strom_isr_expands_total", &[]).unwrap_or(0.0);

    cluster.stop(2);
    let raised = cluster::wait_until("broker 0 to count under-replicated partitions", Duration::from_secs(30), || {
        urp(&cluster, 0).filter(|n| *n >= 1.0)
    });
    eprintln!("broker 0 counts {raised} under-replicated partitions with broker 2 stopped");

    let producer = clients::producer(&cluster.bootstrap(), &[("compression.type", "none"), ("linger.ms", "20")]);
    let value = vec![b'v'; VALUE_BYTES];
    let records: Vec<clients::TestRecord> = (0..RECORDS)
        .map(|i| clients::TestRecord {
            key: i.to_string().into_bytes(),
            value: value.clone(),
            headers: Vec::new(),
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect();
    assert_eq!(clients::produce_all(&producer, topic, &records).len(), RECORDS);
    drop(producer);

    cluster.start_again(2);
    let http = cluster.broker(2).http_addr();
    let started = Instant::now();
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    let mut catching_up_body = None;
    let ready_at = loop {
        assert!(started.elapsed() < Duration::from_secs(90), "broker 2 not ready 90 s after its start: {seen:?}");
        match http_get(http, "/readyz") {
            Some((200, _)) => break started.elapsed(),
            Some((status, body)) => {
                *seen.entry(status).or_default() += 1;
                if status == 503 && body.contains("catching up") && catching_up_body.is_none() {
                    // While not ready, the replica really is behind or outside the ISR.
                    let view = cluster.partition(topic, 0);
                    eprintln!("broker 2 not ready: {} (metadata: {view:?})", body.trim());
                    catching_up_body = Some(body);
                }
            }
            None => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!("broker 2 ready {ready_at:?} after its start; /readyz answers before: {seen:?}");
    assert!(
        catching_up_body.is_some(),
        "broker 2 never answered /readyz 503 \"catching up\" before 200 (answers: {seen:?})"
    );
    // The throttle banks at most a second of its rate, so the rest of the backlog takes its time.
    let least = Duration::from_secs_f64((RECORDS * VALUE_BYTES) as f64 / THROTTLE_BYTES_PER_SEC as f64 - 1.0);
    assert!(ready_at >= least, "broker 2 caught up in {ready_at:?}, faster than its throttle allows ({least:?})");

    // Ready means caught up: in the ISR, with the whole log.
    let own_view = cluster::wait_until("broker 2 to answer Metadata", Duration::from_secs(10), || {
        cluster::metadata(cluster.broker(2).kafka_addr(), &[topic])
            .ok()
            .and_then(|m| cluster::partition_view(&m, topic, 0))
    });
    assert!(own_view.isr.contains(&2), "broker 2 is ready but its own metadata has it outside the ISR: {own_view:?}");
    let restarted = Scrape::fetch(http);
    assert_eq!(
        restarted.value("strom_partition_log_end_offset", &tp(topic, "0")),
        Some(RECORDS as f64),
        "broker 2 holds every record once ready"
    );
    cluster::wait_until("under-replicated partitions back to 0 on every broker", Duration::from_secs(60), || {
        (0..3).all(|id| urp(&cluster, id) == Some(0.0)).then_some(())
    });
    let expands_after = Scrape::fetch(cluster.broker(0).http_addr()).value("strom_isr_expands_total", &[]);
    assert!(
        expands_after.is_some_and(|n| n > expands_before),
        "broker 0 counted broker 2's return to the ISR: {expands_before} -> {expands_after:?}"
    );
}

/// A broker that cannot form its controller quorum keeps waiting for it,
/// and meanwhile its HTTP port is served: `/healthz` answers 200 (a liveness
/// probe must not restart it for waiting), `/readyz` and `/metrics` 503
/// saying it is starting. Once a second voter is back, the quorum forms and
/// the broker becomes ready.
#[test]
fn a_broker_waiting_for_its_quorum_is_live_and_says_it_is_starting() {
    let mut cluster = Cluster::start(3, "quorum-wait", &["offsets.topic.num.partitions=3"]);
    cluster.stop(2);
    cluster.stop(1);
    // Alone, broker 0 could not even leave cleanly: its quorum is gone.
    cluster.kill(0);
    cluster.start_again(0);
    let http = cluster.broker(0).http_addr();
    let started = Instant::now();
    let live = cluster::wait_until("broker 0 to answer /healthz", Duration::from_secs(30), || {
        http_get(http, "/healthz").filter(|(status, _)| *status == 200)
    });
    assert_eq!(live.1.trim(), "ok");
    // Well past a quorum election; the broker is still waiting, and says so.
    while started.elapsed() < Duration::from_secs(5) {
        let (status, body) = http_get(http, "/readyz").expect("/readyz answers while the broker starts");
        assert_eq!(status, 503, "ready without a quorum: {body}");
        assert!(body.contains("starting"), "the reason names the start-up: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = http_get(http, "/metrics").expect("/metrics answers while the broker starts");
    assert_eq!(status, 503, "metrics before the broker is up: {body}");
    assert_eq!(http_get(http, "/healthz").map(|(s, _)| s), Some(200), "still live");

    cluster.start_again(1);
    cluster::wait_until("broker 0 ready once a second voter is back", Duration::from_secs(60), || {
        http_get(http, "/readyz").filter(|(status, _)| *status == 200)
    });
    assert_eq!(http_get(http, "/metrics").map(|(s, _)| s), Some(200));
}
