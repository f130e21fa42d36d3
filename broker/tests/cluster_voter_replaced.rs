//! A controller voter whose disk is replaced: on a 3-broker cluster (every
//! broker a controller voter) with an idempotent acks=all producer running,
//! a follower voter, then the active controller's node, is killed with
//! SIGKILL, its whole data dir is deleted and it is started again at once.
//!
//! Each time: no broker panics (a debug build's openraft asserted "follower
//! log reversion is not allowed" on the leader before voters rejoined
//! through membership changes), the wiped node becomes a voter again, the
//! cluster keeps every topic and its configs, and afterwards every
//! acknowledged record is read back exactly once and in order.

mod common;

use std::time::Duration;

use common::cluster::load::{ProduceLoad, producer_config};
use common::cluster::{Cluster, FAST_FAILOVER, create_topic, metadata, verify_history_and_replicas, wait_until};
use common::metrics::Scrape;

const TOPIC: &str = "ledger";
const PARTITIONS: i32 = 3;
/// A topic with a non-default config, checked after each replacement.
const CONFIGURED: &str = "audit";
const CONFIGURED_RETENTION_MS: &str = "3600000";
/// Upper bound for an election, a rejoin, or the producer to flow again.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two sends of the producer under test.
const SEND_INTERVAL: Duration = Duration::from_millis(2);

#[test]
fn a_voter_whose_disk_is_replaced_rejoins_without_losing_metadata_or_records() {
    let mut settings = FAST_FAILOVER.to_vec();
    settings.push("min.insync.replicas=2");
    let mut cluster = Cluster::start(3, "voter-replaced", &settings);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, PARTITIONS, 3, None, &[("min.insync.replicas", "2")]);
    create_topic(&bootstrap, CONFIGURED, 1, 3, None, &[("retention.ms", CONFIGURED_RETENTION_MS)]);
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, TIMEOUT);
    cluster.wait_for_full_isr(CONFIGURED, 1, TIMEOUT);

    let load = ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, SEND_INTERVAL);
    load.wait_for_progress(PARTITIONS, 200, TIMEOUT);

    // 1. A follower voter (not the active controller).
    let controller = cluster.wait_for_controller(&[], TIMEOUT);
    let follower = (0..3).find(|id| *id != controller).expect("a follower voter");
    replace_disk(&mut cluster, follower);
    load.wait_for_progress(PARTITIONS, 100, TIMEOUT);

    // 2. The active controller's node.
    let controller = cluster.wait_for_controller(&[], TIMEOUT);
    replace_disk(&mut cluster, controller);
    let successor = cluster.wait_for_controller(&[], TIMEOUT);
    load.wait_for_progress(PARTITIONS, 100, TIMEOUT);

    let log = load.finish();
    let summary = verify_history_and_replicas(&cluster, TOPIC, PARTITIONS, &log);
    assert_no_panic(&cluster);
    eprintln!(
        "voter replaced: brokers {follower} then {controller} (the active controller; broker {successor} leads now) \
         wiped and rejoined; {} sent, {} acknowledged, {} failed, {} read back",
        summary.sent,
        summary.acked,
        log.failed.len(),
        summary.consumed
    );
}

/// Kills broker `id`, deletes its data dir, starts it again and waits until
/// it is a voter again and the cluster has every topic and config.
fn replace_disk(cluster: &mut Cluster, id: i32) {
    cluster.kill(id);
    let dir = cluster.broker(id).data_dir().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("delete {}: {e}", dir.display()));
    eprintln!("[test] deleted broker {id}'s data dir {}", dir.display());
    // Ready includes: rejoined the controller quorum as a voter.
    cluster.restart(id);
    wait_for_voter(cluster, id);
    assert_no_panic(cluster);
    let log = cluster.broker(id).log();
    if !log.contains("rejoining: removed from the voters") {
        cluster.fail(&format!("broker {id} came back with an empty controller dir but did not rejoin"));
    }
    for b in cluster.brokers() {
        let view = metadata(b.kafka_addr(), &[TOPIC, CONFIGURED])
            .unwrap_or_else(|e| cluster.fail(&format!("metadata from broker {}: {e}", b.id)));
        for (name, partitions) in [(TOPIC, PARTITIONS), (CONFIGURED, 1)] {
            let count = view
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == name))
                .map(|t| t.partitions.len() as i32);
            if count != Some(partitions) {
                cluster.fail(&format!("broker {} lost topic {name}: {count:?} partitions", b.id));
            }
        }
        let retention = topic_config(b.kafka_addr(), CONFIGURED, "retention.ms");
        if retention.as_deref() != Some(CONFIGURED_RETENTION_MS) {
            cluster.fail(&format!("broker {} lost {CONFIGURED}'s retention.ms: {retention:?}", b.id));
        }
    }
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, TIMEOUT);
}

/// Waits until every running broker's `/metrics` says broker `id` is a full
/// voter: itself (`strom_controller_voter`), and no broker is rejoining.
fn wait_for_voter(cluster: &Cluster, id: i32) {
    wait_until(&format!("broker {id} to be a voter of the controller quorum"), TIMEOUT, || {
        let scrape = Scrape::fetch(cluster.broker(id).http_addr());
        (scrape.value("strom_controller_voter", &[]) == Some(1.0)).then_some(())
    });
}

fn assert_no_panic(cluster: &Cluster) {
    for b in cluster.brokers() {
        if b.log().contains("panicked") {
            cluster.fail(&format!("broker {} panicked", b.id));
        }
    }
}

/// A topic config as DescribeConfigs reports it.
fn topic_config(addr: std::net::SocketAddr, topic: &str, key: &str) -> Option<String> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
    use kafka_protocol::protocol::StrBytes;
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(Some(vec![StrBytes::from_string(key.to_string())])),
    ]);
    let response: DescribeConfigsResponse = common::cluster::try_send(addr, &request, 4).ok()?;
    let result = response.results.first()?;
    result.configs.iter().find(|c| c.name.as_str() == key).and_then(|c| c.value.as_ref().map(|v| v.to_string()))
}
