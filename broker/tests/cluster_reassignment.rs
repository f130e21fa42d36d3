//! Replica reassignment (AlterPartitionReassignments on the Admin API) on a
//! 4-broker cluster under an idempotent acks=all load: partitions move onto
//! a new broker (the leader leaving), grow from 2 to 3 replicas and shrink
//! to 1; every acknowledged record is read back exactly once and the new
//! replicas' logs are byte-identical to the leader's. A second topic with a
//! backlog moves under a throttle, which holds the copy to its rate.

mod common;

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use strom_proto::admin::admin_client::AdminClient;
use strom_proto::admin::{
    AlterPartitionReassignmentsRequest, DescribeClusterRequest, DescribeTopicsRequest, PartitionDescription,
    PartitionReassignment,
};
use tonic::transport::Channel;

use common::clients::{TestRecord, produce_all, producer};
use common::cluster::load::{ProduceLoad, producer_config};
use common::cluster::{Cluster, FAST_FAILOVER, create_topic, verify_history_and_replicas, wait_until};

const TOPIC: &str = "moving";
const PARTITIONS: i32 = 3;
const BULK: &str = "bulk";
const TIMEOUT: Duration = Duration::from_secs(120);
const SEND_INTERVAL: Duration = Duration::from_millis(2);

struct Admin {
    runtime: tokio::runtime::Runtime,
    client: AdminClient<Channel>,
}

impl Admin {
    fn connect(cluster: &Cluster) -> Admin {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let client = AdminClient::new(runtime.block_on(async { cluster.operator_channel(0) }));
        Admin { runtime, client }
    }

    /// Requests the moves; returns each partition's (error code, message).
    fn reassign(&mut self, topic: &str, moves: &[(i32, &[i32])], throttle: u64) -> Vec<(i32, String)> {
        let request = AlterPartitionReassignmentsRequest {
            reassignments: moves
                .iter()
                .map(|(p, replicas)| PartitionReassignment {
                    topic: topic.into(),
                    partition: *p,
                    replicas: replicas.to_vec(),
                })
                .collect(),
            throttle_bytes_per_sec: throttle,
            validate_only: false,
        };
        let response = self.runtime.block_on(self.client.alter_partition_reassignments(request));
        let response = response.expect("AlterPartitionReassignments").into_inner();
        response.results.into_iter().map(|r| (r.error_code, r.error_message)).collect()
    }

    fn partitions(&mut self, topic: &str) -> Vec<PartitionDescription> {
        let request = DescribeTopicsRequest { names: vec![topic.into()] };
        let response = self.runtime.block_on(self.client.describe_topics(request)).expect("DescribeTopics");
        response.into_inner().topics.into_iter().next().map(|t| t.partitions).unwrap_or_default()
    }

    fn reassigning(&mut self) -> usize {
        let response = self.runtime.block_on(self.client.describe_cluster(DescribeClusterRequest {}));
        response.expect("DescribeCluster").into_inner().reassigning_partitions.len()
    }

    /// Waits until `topic`'s partitions have exactly `expected` replicas and no reassignment runs.
    fn wait_for_replicas(&mut self, topic: &str, expected: &[&[i32]]) -> Vec<PartitionDescription> {
        wait_until(&format!("{topic} to reach replicas {expected:?}"), TIMEOUT, || {
            let partitions = self.partitions(topic);
            let done = partitions.len() == expected.len()
                && partitions.iter().zip(expected).all(|(p, want)| {
                    p.replicas == *want && p.adding_replicas.is_empty() && p.removing_replicas.is_empty()
                });
            done.then_some(partitions)
        })
    }
}

#[test]
fn partitions_move_grow_and_shrink_under_load_without_loss() {
    let cluster = Cluster::start(4, "reassign", FAST_FAILOVER);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, PARTITIONS, 2, Some(&[&[0, 1], &[1, 2], &[2, 0]]), &[]);
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, TIMEOUT);
    let mut admin = Admin::connect(&cluster);

    let load = ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, SEND_INTERVAL);
    load.wait_for_progress(PARTITIONS, 300, TIMEOUT);

    // Partition 0 moves off its leader onto the new broker 3; partition 1
    // grows to three replicas; partition 2 shrinks to one.
    let results = admin.reassign(TOPIC, &[(0, &[3, 1]), (1, &[1, 2, 3]), (2, &[2])], 0);
    assert!(results.iter().all(|(code, _)| *code == 0), "{results:?}");
    let partitions = admin.wait_for_replicas(TOPIC, &[&[3, 1], &[1, 2, 3], &[2]]);
    assert_eq!(partitions[0].leader, 3, "the leaving leader hands partition 0 to the first target replica");
    assert_eq!(admin.reassigning(), 0);
    load.wait_for_progress(PARTITIONS, 300, TIMEOUT);

    // An impossible target is refused, naming the problem.
    let refused = admin.reassign(TOPIC, &[(1, &[1, 9])], 0);
    assert_eq!(refused[0].0, i32::from(ResponseError::InvalidReplicaAssignment.code()), "{refused:?}");
    assert!(refused[0].1.contains("broker 9"), "the message names the broker: {refused:?}");

    // The brokers that left delete their copies.
    for (broker, partition) in [(0, 0), (0, 2)] {
        let dir = cluster.broker(broker).partition_dir(TOPIC, partition);
        wait_until(&format!("broker {broker} to delete {}", dir.display()), TIMEOUT, || (!dir.exists()).then_some(()));
    }

    let log = load.finish();
    assert!(log.failed.is_empty(), "sends failed during the moves: {:?}", log.failed.first());
    let summary = verify_history_and_replicas(&cluster, TOPIC, PARTITIONS, &log);
    assert_eq!(summary.acked, summary.consumed, "{summary:?}");
    eprintln!("reassignment under load: {} acknowledged, {} read back", summary.acked, summary.consumed);
}

#[test]
fn a_throttled_move_copies_no_faster_than_its_rate() {
    let cluster = Cluster::start(3, "throttle", FAST_FAILOVER);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, BULK, 1, 1, Some(&[&[0]]), &[]);
    cluster.wait_for_full_isr(BULK, 1, TIMEOUT);
    let records: Vec<TestRecord> = (0..1024)
        .map(|i| TestRecord {
            key: format!("k{i}").into_bytes(),
            value: vec![b'a' + (i % 26) as u8; 4096],
            headers: Vec::new(),
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect();
    produce_all(&producer(&bootstrap, &[("compression.type", "none")]), BULK, &records);
    let backlog: u64 = std::fs::read_dir(cluster.broker(0).partition_dir(BULK, 0))
        .expect("the leader's partition directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    assert!(backlog > 4 << 20, "the backlog is {backlog} bytes");

    let rate: u64 = 1 << 20;
    let mut admin = Admin::connect(&cluster);
    let started = Instant::now();
    let results = admin.reassign(BULK, &[(0, &[1])], rate);
    assert_eq!(results[0].0, 0, "{results:?}");
    // The broker asked may apply the committed move a moment after the controller.
    wait_until("the move to show as running", TIMEOUT, || {
        let moving = admin.partitions(BULK);
        assert!(moving[0].replicas != [1], "the move finished at once: the throttle did not hold it back");
        (moving[0].adding_replicas == [1] && moving[0].removing_replicas == [0]).then_some(())
    });
    let again = admin.reassign(BULK, &[(0, &[2])], rate);
    assert_eq!(again[0].0, i32::from(ResponseError::ReassignmentInProgress.code()), "{again:?}");

    admin.wait_for_replicas(BULK, &[&[1]]);
    let took = started.elapsed();
    // One second's worth may go at once; the rest at the rate.
    let least = Duration::from_secs_f64((backlog - rate) as f64 / rate as f64);
    assert!(took >= least, "{backlog} bytes moved in {took:?} at {rate} B/s (at least {least:?} expected)");
    let consumed = common::clients::consume_to_end(&bootstrap, BULK, 1);
    assert_eq!(consumed.get(&0).map_or(0, Vec::len), records.len(), "every record is on the new replica");
    eprintln!("throttled move: {backlog} bytes in {took:.1?} at {rate} B/s");
}
