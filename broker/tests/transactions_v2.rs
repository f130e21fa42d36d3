//! transaction.version 2 (KIP-890 part 2) at the wire level, against a
//! broker process: the requests a Kafka 4 transactional producer sends when
//! the feature is finalized, sent by hand — and the late requests Jepsen's
//! Bufstream analysis delivered.
//!
//! Proves that ApiVersions advertises `transaction.version` (finalized 2)
//! with EndTxn v5, Produce v12 and TxnOffsetCommit v5; that a Produce v12
//! adds its partition to the transaction with no AddPartitionsToTxn (and a
//! TxnOffsetCommit v5 its group, with no AddOffsetsToTxn); that
//! EndTxn v5 answers the producer id and the epoch bumped by one, a retry
//! getting the same answer; and the Bufstream scenario: T1 commits, T2
//! begins and writes, then a delayed duplicate of T1's EndTxn (fenced:
//! PRODUCER_FENCED, INVALID_PRODUCER_EPOCH before v2), T1's delayed COMMIT
//! marker (refused: INVALID_PRODUCER_EPOCH) and a delayed record batch of T1
//! (refused) arrive — and none of them writes anything or commits T2: a
//! read_committed fetch still stops at T2's first offset and shows only T1,
//! T2 stays open until its own abort, after which it is listed as aborted.
//! And that with `transaction.version=1` the broker advertises level 1 and
//! the older versions only, and an EndTxn keeps the epoch, as before.

mod common;

use std::time::Duration;

use common::txn::{
    READ_COMMITTED, READ_UNCOMMITTED, add_partitions_to_txn, describe_producers, init_transactional, produce_at,
    read_partition, txn_batch,
};
use common::wire::{WireClient, create_topic_ok, topic_name};
use common::{BrokerProcess, wait_for};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeTransactionsRequest, EndTxnRequest, GroupId, ProducerId,
    TransactionalId, TxnOffsetCommitRequest, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use strom_proto::transactions::txn_markers_client::TxnMarkersClient;
use strom_proto::transactions::{TopicPartitions, TxnMarker, WriteTxnMarkersRequest as InternalMarkers};

const ID: &str = "bufstream-app";
const TOPIC: &str = "orders";

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

fn api_versions(client: &mut WireClient) -> ApiVersionsResponse {
    client.send(&ApiVersionsRequest::default(), 3)
}

fn max_version(r: &ApiVersionsResponse, api: ApiKey) -> i16 {
    r.api_keys.iter().find(|k| k.api_key == api as i16).map_or(-1, |k| k.max_version)
}

/// The finalized `transaction.version` level, if advertised.
fn finalized_tv(r: &ApiVersionsResponse) -> Option<i16> {
    r.finalized_features.iter().find(|f| f.name.as_str() == "transaction.version").map(|f| f.max_version_level)
}

/// EndTxn at `version`: (error, producer id, epoch) of the answer.
fn end_txn(client: &mut WireClient, version: i16, pid: i64, epoch: i16, commit: bool) -> (i16, i64, i16) {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(ID))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let r = client.send(&request, version);
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// DescribeTransactions of `ID`: (state, producer epoch, partitions as "topic-p").
fn describe(client: &mut WireClient) -> (String, i16, Vec<String>) {
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(ID)]);
    let mut r = client.send(&request, 0);
    let s = r.transaction_states.remove(0);
    assert_eq!(s.error_code, 0, "DescribeTransactions");
    let partitions =
        s.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| format!("{}-{p}", t.topic.0))).collect();
    (s.transaction_state.to_string(), s.producer_epoch, partitions)
}

/// Waits until the transaction's markers are written (state `state`).
fn wait_state(client: &mut WireClient, state: &str) {
    wait_for(&format!("the transaction to reach {state}"), Duration::from_secs(30), || {
        (describe(client).0 == state).then_some(())
    });
}

/// TxnOffsetCommit v5 of offset 1 for group etl's orders-0, with no
/// AddOffsetsToTxn before it: the partition's error code.
fn txn_offset_commit(client: &mut WireClient, pid: i64, epoch: i16) -> i16 {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(ID))
        .with_group_id(GroupId(StrBytes::from_static_str("etl")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default().with_name(topic_name(TOPIC)).with_partitions(vec![
            TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1),
        ])]);
    client.send(&request, 5).topics[0].partitions[0].error_code
}

/// A COMMIT marker over the internal `TxnMarkers` service (as a coordinator
/// sends it), at transaction.version 2: the partition's error code.
fn internal_commit_marker(broker: &BrokerProcess, pid: i64, epoch: i16, coordinator_epoch: i32) -> i32 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let mut c = TxnMarkersClient::connect(format!("http://{}", broker.internal_addr()))
            .await
            .expect("connect to the internal listener");
        let request = InternalMarkers {
            markers: vec![TxnMarker {
                producer_id: pid,
                producer_epoch: i32::from(epoch),
                committed: true,
                coordinator_epoch,
                transaction_version: 2,
                topics: vec![TopicPartitions { topic: TOPIC.to_string(), partitions: vec![0] }],
            }],
        };
        let r = c.write_txn_markers(request).await.expect("WriteTxnMarkers").into_inner();
        r.markers[0].partitions[0].error_code
    })
}

#[test]
fn a_delayed_end_txn_marker_or_batch_of_a_committed_transaction_never_touches_the_next_one() {
    let broker = BrokerProcess::start_with(&["transaction.state.log.num.partitions=1"]);
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, TOPIC, 1, &[]);

    let features = api_versions(&mut client);
    assert_eq!(finalized_tv(&features), Some(2), "transaction.version 2 is finalized by default");
    assert!(features.finalized_features_epoch >= 0, "Kafka clients ignore features of a negative epoch");
    assert_eq!(max_version(&features, ApiKey::EndTxn), 5);
    assert_eq!(max_version(&features, ApiKey::Produce), 12);
    assert_eq!(max_version(&features, ApiKey::TxnOffsetCommit), 5);

    let (mut coordinator, (pid, e0)) = init_transactional(&mut client, ID, 60_000);

    // T1: Produce v12 adds the partition itself (no AddPartitionsToTxn).
    let t1 = produce_at(&mut client, 12, Some(ID), TOPIC, 0, txn_batch(&["t1-a", "t1-b"], pid, e0, 0));
    assert_eq!(t1.error_code, 0, "T1's produce: {:?}", t1.error_message);
    assert_eq!(describe(&mut coordinator), ("Ongoing".to_string(), e0, vec![format!("{TOPIC}-0")]));

    // EndTxn v5 bumps the epoch and says so; a retry gets the same answer.
    let e1 = e0 + 1;
    assert_eq!(end_txn(&mut coordinator, 5, pid, e0, true), (0, pid, e1), "EndTxn v5 answers the bumped epoch");
    wait_state(&mut coordinator, "CompleteCommit");
    assert_eq!(end_txn(&mut coordinator, 5, pid, e0, true), (0, pid, e1), "a retried EndTxn of T1 is answered alike");
    assert_eq!(describe(&mut coordinator).1, e1);

    // T2 at the new epoch (sequences restart with it).
    let t2 = produce_at(&mut client, 12, Some(ID), TOPIC, 0, txn_batch(&["t2-a"], pid, e1, 0));
    assert_eq!(t2.error_code, 0, "T2's produce: {:?}", t2.error_message);
    assert_eq!(t2.base_offset, 3, "after T1's two records and its marker");
    assert_eq!(describe(&mut coordinator).0, "Ongoing");
    let coordinator_epoch = describe_producers(&mut client, TOPIC, 0)
        .active_producers
        .iter()
        .find(|p| p.producer_id.0 == pid)
        .map(|p| p.coordinator_epoch)
        .expect("our producer is listed");

    // The delayed duplicates of T1.
    for commit in [true, false] {
        let (error, _, _) = end_txn(&mut coordinator, 5, pid, e0, commit);
        assert_eq!(error, ResponseError::ProducerFenced.code(), "T1's delayed EndTxn (commit: {commit}) is fenced");
    }
    let (error, _, _) = end_txn(&mut coordinator, 1, pid, e0, true);
    assert_eq!(error, ResponseError::InvalidProducerEpoch.code(), "before v2 a fence is INVALID_PRODUCER_EPOCH");
    assert_eq!(
        internal_commit_marker(&broker, pid, e1, coordinator_epoch),
        i32::from(ResponseError::InvalidProducerEpoch.code()),
        "T1's delayed COMMIT marker (at its bumped epoch) must not commit T2"
    );
    let stale = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(e0)
            .with_transaction_result(true)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![
                WritableTxnMarkerTopic::default().with_name(topic_name(TOPIC)).with_partition_indexes(vec![0]),
            ]),
    ]);
    let answer = client.send(&stale, 1);
    assert_eq!(
        answer.markers[0].topics[0].partitions[0].error_code,
        ResponseError::InvalidProducerEpoch.code(),
        "a marker at T1's data epoch is older than the producer's"
    );
    let late = produce_at(&mut client, 12, Some(ID), TOPIC, 0, txn_batch(&["t1-late"], pid, e0, 2));
    assert_eq!(late.error_code, ResponseError::InvalidProducerEpoch.code(), "T1's delayed batch is refused");

    // Nothing was written, and T2 is neither committed nor aborted.
    let rc = read_partition(&mut client, TOPIC, 0, READ_COMMITTED);
    assert_eq!(rc.high_watermark, 4, "T1 (2 records + marker) and T2's record; nothing else");
    assert_eq!(rc.last_stable_offset, 3, "T2 is still open: the last stable offset waits at its first record");
    assert_eq!(rc.committed_view(), vec!["t1-a", "t1-b"], "read_committed sees T1 only");
    let ru = read_partition(&mut client, TOPIC, 0, READ_UNCOMMITTED);
    assert_eq!(ru.all_values(), vec!["t1-a", "t1-b", "t2-a"]);
    let ours = describe_producers(&mut client, TOPIC, 0);
    let ours = ours.active_producers.iter().find(|p| p.producer_id.0 == pid).expect("our producer is listed");
    assert_eq!((ours.producer_epoch, ours.current_txn_start_offset), (i32::from(e1), 3), "T2 open at its epoch");
    assert_eq!(describe(&mut coordinator), ("Ongoing".to_string(), e1, vec![format!("{TOPIC}-0")]));

    // TxnOffsetCommit v5 adds the group to T2 itself (no AddOffsetsToTxn);
    // at T1's epoch it is fenced.
    assert_eq!(txn_offset_commit(&mut client, pid, e0), ResponseError::ProducerFenced.code());
    assert_eq!(txn_offset_commit(&mut client, pid, e1), 0, "TxnOffsetCommit v5 at T2's epoch");
    let (_, _, partitions) = describe(&mut coordinator);
    assert!(partitions.iter().any(|p| p.starts_with("__consumer_offsets-")), "the group was added: {partitions:?}");

    // T2 ends on its own account, at its epoch, bumping again.
    assert_eq!(end_txn(&mut coordinator, 5, pid, e1, false), (0, pid, e1 + 1));
    wait_state(&mut coordinator, "CompleteAbort");
    let rc = read_partition(&mut client, TOPIC, 0, READ_COMMITTED);
    assert_eq!((rc.high_watermark, rc.last_stable_offset), (5, 5), "T2's ABORT marker, and nothing held back");
    assert_eq!(rc.committed_view(), vec!["t1-a", "t1-b"]);
    assert_eq!(rc.aborted, vec![(pid, 3)], "T2 is listed as aborted");
}

#[test]
fn below_transaction_version_2_the_epoch_stays_and_the_new_versions_are_not_advertised() {
    let broker = BrokerProcess::start_with(&["transaction.state.log.num.partitions=1", "transaction.version=1"]);
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, TOPIC, 1, &[]);
    let features = api_versions(&mut client);
    assert_eq!(finalized_tv(&features), Some(1));
    assert_eq!(max_version(&features, ApiKey::EndTxn), 4);
    assert_eq!(max_version(&features, ApiKey::Produce), 11);
    assert_eq!(max_version(&features, ApiKey::TxnOffsetCommit), 4);

    let (mut coordinator, (pid, e0)) = init_transactional(&mut client, ID, 60_000);
    assert_eq!(add_partitions_to_txn(&mut coordinator, ID, (pid, e0), TOPIC, &[0]), vec![0]);
    let r = produce_at(&mut client, 11, Some(ID), TOPIC, 0, txn_batch(&["a"], pid, e0, 0));
    assert_eq!(r.error_code, 0);
    let (error, _, _) = end_txn(&mut coordinator, 4, pid, e0, true);
    assert_eq!(error, 0);
    wait_state(&mut coordinator, "CompleteCommit");
    assert_eq!(describe(&mut coordinator).1, e0, "no bump per transaction below transaction.version 2");
    // A Produce v12 does not open a transaction here either: the partition must be added.
    let r = produce_at(&mut client, 12, Some(ID), TOPIC, 0, txn_batch(&["b"], pid, e0, 1));
    assert_eq!(r.error_code, ResponseError::InvalidTxnState.code(), "not added, not verified");
}
