//! The transaction coordinator moving with `__transaction_state` leadership
//! on 3 brokers.
//!
//! Proves that when the broker coordinating a transactional id is killed
//! (SIGKILL) with a transaction open over two partitions, another broker
//! becomes the coordinator, loads the open transaction from the replicated
//! `__transaction_state`, and — once the transaction outlives its
//! `transaction.timeout.ms` — aborts it at a bumped epoch, writing the ABORT
//! markers to the partitions' leaders on other brokers: a read_committed
//! reader then sees none of its records and the last stable offset is no
//! longer held back (no hanging transaction), and the old producer is fenced.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, FAST_FAILOVER, create_topic, wait_until};
use common::txn::{READ_COMMITTED, produce_as, read_partition, txn_batch};
use common::wire::{WireClient, topic_name};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest, FindCoordinatorRequest,
    InitProducerIdRequest, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

const ID: &str = "failover-app";
/// Long enough to outlive the failover, so the new coordinator loads it Ongoing.
const TXN_TIMEOUT_MS: i32 = 25_000;

fn txn_id() -> TransactionalId {
    TransactionalId(StrBytes::from_static_str(ID))
}

/// The coordinator of `ID` as a running broker other than `exclude` names it.
fn coordinator(cluster: &Cluster, exclude: &[i32]) -> Option<i32> {
    cluster.brokers().iter().filter(|b| cluster.running().contains(&b.id) && !exclude.contains(&b.id)).find_map(|b| {
        let mut c = WireClient::connect(b.kafka_addr());
        let r = c.send(&FindCoordinatorRequest::default().with_key(StrBytes::from_static_str(ID)).with_key_type(1), 3);
        (r.error_code == 0 && !exclude.contains(&r.node_id.0)).then_some(r.node_id.0)
    })
}

/// DescribeTransactions of `ID` on broker `id`: (error, state, producer id, epoch, partition count).
fn describe(cluster: &Cluster, id: i32) -> (i16, String, i64, i16, usize) {
    let mut c = WireClient::connect(cluster.broker(id).kafka_addr());
    let mut r = c.send(&DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id()]), 0);
    let s = r.transaction_states.remove(0);
    let partitions = s.topics.iter().map(|t| t.partitions.len()).sum();
    (s.error_code, s.transaction_state.to_string(), s.producer_id.0, s.producer_epoch, partitions)
}

/// The leader of `orders-<partition>` as the running brokers report it.
fn leader(cluster: &Cluster, partition: i32, exclude: &[i32]) -> i32 {
    wait_until("a leader of orders", Duration::from_secs(60), || {
        let m = cluster.metadata_excluding(&["orders"], exclude)?;
        let p = m.topics.first()?.partitions.iter().find(|p| p.partition_index == partition)?;
        (p.leader_id.0 >= 0 && !exclude.contains(&p.leader_id.0)).then_some(p.leader_id.0)
    })
}

#[test]
fn a_new_coordinator_loads_the_open_transaction_after_a_kill_and_aborts_it_when_it_times_out() {
    let mut settings: Vec<&str> = FAST_FAILOVER.to_vec();
    settings.extend([
        "transaction.state.log.num.partitions=1",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
    ]);
    let mut cluster = Cluster::start(3, "txn-coordinator-failover", &settings);
    create_topic(&cluster.bootstrap(), "orders", 2, 3, None, &[("min.insync.replicas", "2")]);

    let first = wait_until("a transaction coordinator", Duration::from_secs(60), || coordinator(&cluster, &[]));
    let mut c = WireClient::connect(cluster.broker(first).kafka_addr());
    let (pid, epoch) = wait_until("InitProducerId", Duration::from_secs(60), || {
        let r = c.send(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id()))
                .with_transaction_timeout_ms(TXN_TIMEOUT_MS)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        );
        (r.error_code == 0).then_some((r.producer_id.0, r.producer_epoch))
    });
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id())
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default().with_name(topic_name("orders")).with_partitions(vec![0, 1]),
        ]);
    let r = c.send(&add, 3);
    assert!(
        r.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| &t.results_by_partition)
            .all(|p| p.partition_error_code == 0),
        "AddPartitionsToTxn: {r:?}"
    );
    for p in 0..2 {
        let mut l = WireClient::connect(cluster.broker(leader(&cluster, p, &[])).kafka_addr());
        let written = produce_as(&mut l, Some(ID), "orders", p, txn_batch(&["open-a", "open-b"], pid, epoch, 0));
        assert_eq!(written.error_code, 0, "transactional produce to orders-{p}");
    }

    // The coordinator dies with the transaction open.
    cluster.kill(first);
    let second = wait_until("another coordinator", Duration::from_secs(60), || coordinator(&cluster, &[first]));
    let loaded = wait_until("the new coordinator to load the transaction", Duration::from_secs(60), || {
        let d = describe(&cluster, second);
        (d.0 == 0).then_some(d)
    });
    assert_eq!(
        (loaded.1.as_str(), loaded.2, loaded.3, loaded.4),
        ("Ongoing", pid, epoch, 2),
        "the open transaction as the new coordinator loaded it"
    );

    // It outlives its timeout: the new coordinator aborts it at a bumped epoch.
    let done = wait_until("the timed-out transaction to be aborted", Duration::from_secs(90), || {
        let d = describe(&cluster, second);
        (d.1 == "CompleteAbort").then_some(d)
    });
    assert_eq!((done.2, done.3), (pid, epoch + 1), "aborted at a bumped epoch");
    for p in 0..2 {
        let mut l = WireClient::connect(cluster.broker(leader(&cluster, p, &[first])).kafka_addr());
        let read = read_partition(&mut l, "orders", p, READ_COMMITTED);
        assert!(read.committed_view().is_empty(), "orders-{p} read_committed: {:?}", read.committed_view());
        assert_eq!(read.last_stable_offset, read.high_watermark, "orders-{p}: the LSO is no longer held back");
    }
    // The old producer is fenced.
    let mut c = WireClient::connect(cluster.broker(second).kafka_addr());
    let end = EndTxnRequest::default()
        .with_transactional_id(txn_id())
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(true);
    assert_eq!(c.send(&end, 3).error_code, ResponseError::ProducerFenced.code());
}
