//! Transaction markers on a 3-broker cluster (mutual TLS on the internal
//! plane, the harness's default).
//!
//! - The internal `TxnMarkers` service refuses a caller whose certificate is
//!   not a broker's (the operator's) with PERMISSION_DENIED, and a caller
//!   without TLS at the transport; nothing is written.
//! - A broker-certified ABORT through that service is answered once
//!   committed, and is replicated with the producer state: after the leader
//!   is killed (-9), the new leader reports the same last stable offset
//!   (still held by another producer's open transaction), the same aborted
//!   transactions and the same read_committed view, and fences a marker
//!   from an older coordinator epoch. A COMMIT through the Kafka API on the
//!   new leader then releases the LSO.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, FAST_FAILOVER, create_topic, wait_until};
use common::txn::{
    READ_COMMITTED, READ_UNCOMMITTED, add_partitions_to_txn, init_transactional, marker, produce_as,
    try_read_partition, txn_batch, write_txn_markers,
};
use common::wire::{WireClient, produce, record_batch};
use kafka_protocol::error::ResponseError;
use strom_broker::tls::Identity;
use strom_proto::transactions::txn_markers_client::TxnMarkersClient;
use strom_proto::transactions::{TopicPartitions, TxnMarker, WriteTxnMarkersRequest};

const TOPIC: &str = "txn";
const TXN_ID: Option<&str> = Some("txn-app");
const COORDINATOR_EPOCH: i32 = 7;
const TIMEOUT: Duration = Duration::from_secs(120);

/// What a leader shows of the partition: (LSO, high watermark, aborted
/// transactions, read_committed values, read_uncommitted values).
type Shown = (i64, i64, Vec<(i64, i64)>, Vec<String>, Vec<String>);

fn shown(client: &mut WireClient) -> Shown {
    try_shown(client).unwrap_or_else(|code| panic!("Fetch failed with error code {code}"))
}

/// [`shown`], or the first fetch error (a new leader not serving yet).
fn try_shown(client: &mut WireClient) -> Result<Shown, i16> {
    let rc = try_read_partition(client, TOPIC, 0, READ_COMMITTED)?;
    let ru = try_read_partition(client, TOPIC, 0, READ_UNCOMMITTED)?;
    Ok((rc.last_stable_offset, ru.high_watermark, rc.aborted.clone(), rc.committed_view(), ru.all_values()))
}

fn abort_request(producer_id: i64, epoch: i16) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest {
        markers: vec![TxnMarker {
            producer_id,
            producer_epoch: i32::from(epoch),
            committed: false,
            coordinator_epoch: COORDINATOR_EPOCH,
            transaction_version: 0,
            topics: vec![TopicPartitions { topic: TOPIC.into(), partitions: vec![0] }],
        }],
    }
}

#[test]
fn markers_are_written_by_brokers_only_and_survive_a_leader_kill() {
    let settings: Vec<&str> = FAST_FAILOVER.iter().copied().chain(["transaction.state.log.num.partitions=3"]).collect();
    let mut cluster = Cluster::start(3, "txn-markers", &settings);
    create_topic(&cluster.bootstrap(), TOPIC, 1, 3, None, &[("min.insync.replicas", "2")]);
    cluster.wait_for_full_isr(TOPIC, 1, TIMEOUT);
    let leader = cluster.partition(TOPIC, 0).expect("the partition").leader;
    let follower = (0..3).find(|id| *id != leader).expect("a follower");
    let mut client = WireClient::connect(cluster.broker(leader).kafka_addr());
    // Two transactional producers, the partition added to both
    // transactions (the leader verifies a transaction's first batch with
    // its coordinator); the markers below are written by hand.
    let mut begin = |id: &str| {
        let (mut coordinator, producer) = init_transactional(&mut client, id, 600_000);
        assert_eq!(add_partitions_to_txn(&mut coordinator, id, producer, TOPIC, &[0]), vec![0], "{id}");
        producer
    };
    let (aborting, epoch1) = begin("txn-app");
    let (open, epoch2) = begin("other");

    // Offsets 0-1: the transaction to abort; 2: one left open; 3: a plain record.
    assert_eq!(produce_as(&mut client, TXN_ID, TOPIC, 0, txn_batch(&["a0", "a1"], aborting, epoch1, 0)).error_code, 0);
    assert_eq!(produce_as(&mut client, Some("other"), TOPIC, 0, txn_batch(&["b0"], open, epoch2, 0)).error_code, 0);
    assert_eq!(produce(&mut client, TOPIC, 0, record_batch(&[b"plain".to_vec()], 1_700_000_000_000)).error_code, 0);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    rt.block_on(async {
        let mut as_operator = TxnMarkersClient::new(cluster.operator_channel(leader));
        match as_operator.write_txn_markers(abort_request(aborting, epoch1)).await {
            Err(status) if status.code() == tonic::Code::PermissionDenied => {}
            other => panic!("the operator wrote a transaction marker: {other:?}"),
        }
        let mut plain = TxnMarkersClient::new(cluster.internal_channel(leader, None));
        let refused = plain.write_txn_markers(abort_request(aborting, epoch1)).await;
        assert!(
            refused.as_ref().is_err_and(|s| s.code() != tonic::Code::PermissionDenied),
            "a caller without TLS must be refused at the transport: {refused:?}"
        );
    });
    let before = shown(&mut client);
    assert_eq!(before.1, 4, "nothing was written by the refused calls: {before:?}");

    let answer = rt.block_on(async {
        let tls = cluster.tls_as(Identity::Broker(follower));
        let mut as_broker = TxnMarkersClient::new(cluster.internal_channel(leader, Some(&tls)));
        as_broker.write_txn_markers(abort_request(aborting, epoch1)).await.expect("WriteTxnMarkers as a broker")
    });
    let results = &answer.get_ref().markers;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].producer_id, aborting);
    let codes: Vec<i32> = results[0].partitions.iter().map(|p| p.error_code).collect();
    assert_eq!(codes, vec![0], "{:?}", results[0].partitions);

    let expected: Shown =
        (2, 5, vec![(aborting, 0)], vec![], ["a0", "a1", "b0", "plain"].iter().map(|s| s.to_string()).collect());
    assert_eq!(shown(&mut client), expected, "on the leader, after the abort");

    cluster.kill(leader);
    let new_leader = cluster.wait_for_new_leader(TOPIC, 0, leader, TIMEOUT);
    let mut client = WireClient::connect(cluster.broker(new_leader).kafka_addr());
    // The new leader's high watermark catches up with what it has.
    wait_until("the new leader to show the same partition", TIMEOUT, || {
        let now = try_shown(&mut client);
        (now.as_ref() == Ok(&expected)).then_some(())
    });
    let fenced =
        write_txn_markers(&mut client, vec![marker(aborting, epoch1, false, COORDINATOR_EPOCH - 1, TOPIC, &[0])]);
    assert_eq!(fenced, vec![vec![(0, ResponseError::TransactionCoordinatorFenced.code())]]);

    let committed = write_txn_markers(&mut client, vec![marker(open, epoch2, true, COORDINATOR_EPOCH, TOPIC, &[0])]);
    assert_eq!(committed, vec![vec![(0, 0)]], "COMMIT on the new leader");
    let (lso, hw, aborted, visible, _) = shown(&mut client);
    assert_eq!((lso, hw), (6, 6));
    assert_eq!(aborted, vec![(aborting, 0)]);
    assert_eq!(visible, vec!["b0".to_string(), "plain".to_string()]);
}
