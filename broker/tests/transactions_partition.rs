//! The partition side of transactions at the wire level, against a broker
//! process: transactional produce, COMMIT/ABORT markers through the Kafka
//! API WriteTxnMarkers (as `kafka-transactions.sh abort` sends them), and
//! what read_committed and read_uncommitted fetches and ListOffsets see.
//!
//! Proves that a transactional batch needs the request's transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise); that an open
//! transaction holds the last stable offset (read_committed stops there,
//! ListOffsets read_committed answers it) while read_uncommitted sees
//! everything below the high watermark; that after an ABORT on one
//! partition and a COMMIT on the other, a read_committed consumer sees
//! exactly the committed records, the aborted transaction being listed in
//! `aborted_transactions`; that a marker from an older coordinator epoch is
//! refused with TRANSACTION_COORDINATOR_FENCED and one for a missing
//! partition with UNKNOWN_TOPIC_OR_PARTITION; that DescribeProducers shows
//! the open transaction's start offset; and that all of it survives a kill -9.
//! The producer is a real transactional one (InitProducerId with its
//! transactional id, its partitions added to the transaction), as the
//! broker verifies a transaction's first batch with the coordinator; the
//! markers are then written by hand, as `kafka-transactions.sh abort` would.
//!
//! Also proves KIP-890 part 1 (verification): a transactional produce to a
//! partition not added to the producer's transaction is refused with
//! INVALID_TXN_STATE and writes nothing (the LSO stays at the high
//! watermark); once added it is taken; transactional batches of two
//! producers in one request are refused (INVALID_PRODUCER_ID_MAPPING); after
//! EndTxn aborts the transaction, a late batch of the same epoch is refused
//! again.

mod common;

use std::time::Duration;

use common::txn::{
    READ_COMMITTED, READ_UNCOMMITTED, add_partitions_to_txn, describe_producers, end_txn, init_transactional,
    latest_with, marker, produce_as, read_partition, txn_batch, txn_state, write_txn_markers,
};
use common::wire::{WireClient, create_topic_ok, produce, record_batch, topic_name};
use common::{BrokerProcess, wait_for};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TransactionalId};
use kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "txn";
const TXN_ID: Option<&str> = Some("txn-app");
const COORDINATOR_EPOCH: i32 = 3;
/// Long enough that the coordinator never times the transaction out (and
/// writes its own markers) during the test.
const TXN_TIMEOUT_MS: i32 = 600_000;
const SETTINGS: &[&str] = &["transaction.state.log.num.partitions=3", "transaction.max.timeout.ms=900000"];

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// The read_committed and read_uncommitted views of a partition from 0, and
/// its LSO as Fetch and ListOffsets report it.
struct Views {
    committed: Vec<String>,
    uncommitted: Vec<String>,
    aborted: Vec<(i64, i64)>,
    lso: i64,
    high_watermark: i64,
}

fn views(client: &mut WireClient, partition: i32) -> Views {
    let rc = read_partition(client, TOPIC, partition, READ_COMMITTED);
    let ru = read_partition(client, TOPIC, partition, READ_UNCOMMITTED);
    assert_eq!(rc.last_stable_offset, ru.last_stable_offset, "both fetches report the same LSO");
    let (e, listed) = latest_with(client, TOPIC, partition, READ_COMMITTED);
    assert_eq!((e, listed), (0, rc.last_stable_offset), "ListOffsets read_committed latest is the LSO");
    let (e, latest) = latest_with(client, TOPIC, partition, READ_UNCOMMITTED);
    assert_eq!((e, latest), (0, ru.high_watermark), "ListOffsets read_uncommitted latest is the high watermark");
    Views {
        committed: rc.committed_view(),
        uncommitted: ru.all_values(),
        aborted: rc.aborted.clone(),
        lso: rc.last_stable_offset,
        high_watermark: ru.high_watermark,
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn read_committed_sees_exactly_the_committed_records_before_and_after_a_kill() {
    let mut broker = BrokerProcess::start_with(SETTINGS);
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, TOPIC, 2, &[]);
    let (mut coordinator, (pid, epoch)) = init_transactional(&mut client, "txn-app", TXN_TIMEOUT_MS);
    let added = add_partitions_to_txn(&mut coordinator, "txn-app", (pid, epoch), TOPIC, &[0, 1]);
    assert_eq!(added, vec![0, 0], "AddPartitionsToTxn");

    // A transactional batch without a transactional id is refused, and
    // nothing is written.
    let refused = produce_as(&mut client, None, TOPIC, 0, txn_batch(&["nope"], pid, epoch, 0));
    assert_eq!(refused.error_code, code(ResponseError::TransactionalIdAuthorizationFailed));

    // Partition 0: a plain record, then the transaction (to be aborted).
    // Partition 1: the transaction (to be committed), then a plain record.
    assert_eq!(produce(&mut client, TOPIC, 0, record_batch(&[b"plain-0".to_vec()], 1)).error_code, 0);
    let p0 = produce_as(&mut client, TXN_ID, TOPIC, 0, txn_batch(&["a0", "a1", "a2"], pid, epoch, 0));
    assert_eq!((p0.error_code, p0.base_offset), (0, 1), "transactional produce to partition 0");
    let p1 = produce_as(&mut client, TXN_ID, TOPIC, 1, txn_batch(&["c0", "c1", "c2"], pid, epoch, 0));
    assert_eq!((p1.error_code, p1.base_offset), (0, 0), "transactional produce to partition 1");
    assert_eq!(produce(&mut client, TOPIC, 1, record_batch(&[b"plain-1".to_vec()], 1)).error_code, 0);

    // The open transaction holds the LSO at its first offset.
    let v0 = views(&mut client, 0);
    assert_eq!((v0.lso, v0.high_watermark), (1, 4));
    assert_eq!(v0.committed, strings(&["plain-0"]), "read_committed stops at the LSO");
    assert_eq!(v0.uncommitted, strings(&["plain-0", "a0", "a1", "a2"]));
    let v1 = views(&mut client, 1);
    assert_eq!((v1.lso, v1.high_watermark), (0, 4));
    assert!(v1.committed.is_empty(), "nothing is stable on partition 1 yet: {:?}", v1.committed);
    let producers = describe_producers(&mut client, TOPIC, 0);
    assert_eq!(producers.error_code, 0);
    let ours = producers.active_producers.iter().find(|p| p.producer_id.0 == pid).expect("our producer is listed");
    assert_eq!((ours.current_txn_start_offset, ours.last_sequence), (1, 2));

    // ABORT on partition 0, COMMIT on partition 1, through the Kafka API.
    let answers = write_txn_markers(
        &mut client,
        vec![
            marker(pid, epoch, false, COORDINATOR_EPOCH, TOPIC, &[0]),
            marker(pid, epoch, true, COORDINATOR_EPOCH, TOPIC, &[1]),
        ],
    );
    assert_eq!(answers, vec![vec![(0, 0)], vec![(1, 0)]], "WriteTxnMarkers answers");

    let check_settled = |client: &mut WireClient, after: &str| {
        let v0 = views(client, 0);
        assert_eq!((v0.lso, v0.high_watermark), (5, 5), "partition 0 {after}: the marker took offset 4");
        assert_eq!(v0.committed, strings(&["plain-0"]), "partition 0 {after}: the aborted records are dropped");
        assert_eq!(v0.aborted, vec![(pid, 1)], "partition 0 {after}: the aborted transaction is listed");
        assert_eq!(v0.uncommitted, strings(&["plain-0", "a0", "a1", "a2"]));
        let v1 = views(client, 1);
        assert_eq!(v1.committed, strings(&["c0", "c1", "c2", "plain-1"]), "partition 1 {after}");
        assert!(v1.aborted.is_empty(), "partition 1 {after}: nothing aborted");
    };
    check_settled(&mut client, "after the markers");

    // A marker from an older coordinator epoch is fenced; one for a
    // partition that does not exist is unknown. Nothing is written.
    let answers = write_txn_markers(
        &mut client,
        vec![
            marker(pid, epoch, true, COORDINATOR_EPOCH - 1, TOPIC, &[0]),
            marker(pid, epoch, true, 0, "missing", &[0]),
        ],
    );
    assert_eq!(
        answers,
        vec![
            vec![(0, code(ResponseError::TransactionCoordinatorFenced))],
            vec![(0, code(ResponseError::UnknownTopicOrPartition))]
        ]
    );

    // A second transaction on partition 1 is left open: it holds the LSO.
    // (The coordinator, which wrote none of these markers, still has
    // partition 1 in the producer's transaction: the batch is verified.)
    let open = produce_as(&mut client, TXN_ID, TOPIC, 1, txn_batch(&["o0", "o1"], pid, epoch, 3));
    assert_eq!((open.error_code, open.base_offset), (0, 5));
    let v1 = views(&mut client, 1);
    assert_eq!((v1.lso, v1.high_watermark), (5, 7));
    assert_eq!(v1.committed, strings(&["c0", "c1", "c2", "plain-1"]));
    assert_eq!(v1.uncommitted, strings(&["c0", "c1", "c2", "plain-1", "o0", "o1"]));

    // kill -9: the producer state (the open transaction) and the txnindex come back.
    broker.kill_hard();
    broker.restart();
    let mut client = WireClient::connect(broker.kafka_addr());
    check_settled(&mut client, "after kill -9");
    let v1 = views(&mut client, 1);
    assert_eq!((v1.lso, v1.high_watermark), (5, 7), "the open transaction still holds the LSO after kill -9");
    let producers = describe_producers(&mut client, TOPIC, 1);
    let ours = producers.active_producers.iter().find(|p| p.producer_id.0 == pid).expect("our producer is listed");
    assert_eq!((ours.current_txn_start_offset, ours.coordinator_epoch), (5, COORDINATOR_EPOCH));

    // Ending it releases the LSO.
    assert_eq!(
        write_txn_markers(&mut client, vec![marker(pid, epoch, true, COORDINATOR_EPOCH, TOPIC, &[1])]),
        vec![vec![(1, 0)]]
    );
    let v1 = views(&mut client, 1);
    assert_eq!((v1.lso, v1.high_watermark), (8, 8));
    assert_eq!(v1.committed, strings(&["c0", "c1", "c2", "plain-1", "o0", "o1"]));
}

/// The partition's read_committed LSO and high watermark, from a fetch.
fn lso_and_high_watermark(client: &mut WireClient, topic: &str, partition: i32) -> (i64, i64) {
    let read = read_partition(client, topic, partition, READ_COMMITTED);
    (read.last_stable_offset, read.high_watermark)
}

#[test]
fn a_transactional_produce_to_a_partition_outside_the_transaction_is_refused() {
    const ID: &str = "verified-app";
    const TOPIC: &str = "verified";
    let broker = BrokerProcess::start_with(SETTINGS);
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, TOPIC, 2, &[]);
    let (_, producer) = init_transactional(&mut client, ID, TXN_TIMEOUT_MS);
    let (pid, epoch) = producer;
    let invalid_txn_state = code(ResponseError::InvalidTxnState);

    // Not added to any transaction: refused, nothing written, LSO = HW.
    let refused = produce_as(&mut client, Some(ID), TOPIC, 0, txn_batch(&["x0", "x1"], pid, epoch, 0));
    assert_eq!((refused.error_code, refused.base_offset), (invalid_txn_state, -1), "no AddPartitionsToTxn");
    assert_eq!(lso_and_high_watermark(&mut client, TOPIC, 0), (0, 0), "nothing written, no transaction hangs");
    assert!(read_partition(&mut client, TOPIC, 0, READ_UNCOMMITTED).all_values().is_empty());

    // Partition 0 added: taken, and the open transaction holds the LSO.
    assert_eq!(add_partitions_to_txn(&mut client, ID, producer, TOPIC, &[0]), vec![0]);
    let taken = produce_as(&mut client, Some(ID), TOPIC, 0, txn_batch(&["a0", "a1"], pid, epoch, 0));
    assert_eq!((taken.error_code, taken.base_offset), (0, 0), "after AddPartitionsToTxn");
    let more = produce_as(&mut client, Some(ID), TOPIC, 0, txn_batch(&["a2"], pid, epoch, 2));
    assert_eq!((more.error_code, more.base_offset), (0, 2), "the transaction's next batch");
    assert_eq!(lso_and_high_watermark(&mut client, TOPIC, 0), (0, 3));
    // Partition 1 is still outside the transaction.
    let other = produce_as(&mut client, Some(ID), TOPIC, 1, txn_batch(&["y0"], pid, epoch, 0));
    assert_eq!(other.error_code, invalid_txn_state, "partition 1 was not added");
    assert_eq!(lso_and_high_watermark(&mut client, TOPIC, 1), (0, 0));

    // Transactional batches of two producers in one request: all refused.
    let request = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(ID))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic_name(TOPIC)).with_partition_data(vec![
            PartitionProduceData::default().with_index(0).with_records(Some(txn_batch(&["m0"], pid, epoch, 3))),
            PartitionProduceData::default().with_index(1).with_records(Some(txn_batch(&["m1"], pid + 1, 0, 0))),
        ])]);
    let answer = client.send(&request, 9);
    let codes: Vec<i16> = answer.responses[0].partition_responses.iter().map(|p| p.error_code).collect();
    assert_eq!(codes, vec![code(ResponseError::InvalidProducerIdMapping); 2], "two producers in one request");
    assert_eq!(lso_and_high_watermark(&mut client, TOPIC, 0), (0, 3), "nothing written");

    // EndTxn abort: once its marker is written, a late batch of the same
    // epoch is refused and writes nothing.
    assert_eq!(end_txn(&mut client, ID, producer, false), 0, "EndTxn(abort)");
    wait_for("the abort to complete", Duration::from_secs(60), || {
        (txn_state(&mut client, ID) == "CompleteAbort").then_some(())
    });
    assert_eq!(lso_and_high_watermark(&mut client, TOPIC, 0), (4, 4), "the ABORT marker took offset 3");
    let late = produce_as(&mut client, Some(ID), TOPIC, 0, txn_batch(&["late"], pid, epoch, 3));
    assert_eq!((late.error_code, late.base_offset), (invalid_txn_state, -1), "a late batch after the abort");
    assert_eq!(lso_and_high_watermark(&mut client, TOPIC, 0), (4, 4), "nothing written, no transaction hangs");
    let view = read_partition(&mut client, TOPIC, 0, READ_COMMITTED);
    assert!(view.committed_view().is_empty(), "the aborted records stay hidden: {:?}", view.committed_view());
}
