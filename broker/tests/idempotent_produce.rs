//! Idempotent producing at the wire level, against a broker process: the
//! requests an idempotent producer sends when it retries, sent by hand.
//!
//! Proves that InitProducerId gives a producer id and epoch 0; that a batch
//! sent again (same producer id, epoch and sequences) is answered with the
//! offsets of its first write and written only once — for the latest batch
//! and for an earlier one still within the last five — so the log has no
//! duplicate and no gap; that this still holds after the broker is killed
//! with SIGKILL and after a clean restart (the producer state is rebuilt from
//! the log); that a batch skipping sequence numbers is refused with
//! OUT_OF_ORDER_SEQUENCE_NUMBER and writes nothing; and that after the
//! producer's epoch is bumped (InitProducerId with its id and epoch,
//! KIP-360) a batch with the old epoch is refused with INVALID_PRODUCER_EPOCH.

mod common;

use bytes::Bytes;
use common::BrokerProcess;
use common::wire::{
    WireClient, create_topic_ok, fetch_all, idempotent_batch, init_producer_id, latest_offset, produce,
};
use kafka_protocol::error::ResponseError;

const TIMESTAMP: i64 = 1_700_000_000_000;

/// Five values `record-<first>` .. `record-<first + 4>`.
fn five(first: usize) -> Vec<Vec<u8>> {
    (first..first + 5).map(|i| format!("record-{i}").into_bytes()).collect()
}

/// Asserts the partition holds exactly `record-0..record-<n>` at offsets
/// `0..n`, all written by `producer_id`.
fn assert_log_is(client: &mut WireClient, topic: &str, n: usize, producer_id: i64, after: &str) {
    assert_eq!(latest_offset(client, topic, 0), n as i64, "log end offset {after}");
    let got = fetch_all(client, topic, 0, 0);
    let expected: Vec<(i64, i64, Bytes)> =
        (0..n).map(|i| (i as i64, producer_id, Bytes::from(format!("record-{i}")))).collect();
    assert_eq!(got, expected, "(offset, producer id, value) of every record {after}: no duplicate, no gap");
}

/// Sends `batch` and asserts it was accepted at `base_offset` (first write or duplicate).
fn produce_expecting(client: &mut WireClient, topic: &str, batch: &Bytes, base_offset: i64, what: &str) {
    let response = produce(client, topic, 0, batch.clone());
    assert_eq!(
        (response.error_code, response.base_offset),
        (0, base_offset),
        "{what}: (error code, base offset); message {:?}",
        response.error_message
    );
}

#[test]
fn retried_batches_are_written_once_before_and_after_broker_restarts() {
    let mut broker = BrokerProcess::start();
    let topic = "idempotent";
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, topic, 1, &[]);
    let (error, pid, epoch) = init_producer_id(&mut client, None);
    assert_eq!(error, 0, "InitProducerId");
    assert!(pid >= 0, "InitProducerId gives a producer id: {pid}");
    assert_eq!(epoch, 0, "a new producer id starts at epoch 0");

    let a = idempotent_batch(&five(0), pid, epoch, 0, TIMESTAMP);
    let b = idempotent_batch(&five(5), pid, epoch, 5, TIMESTAMP);
    let c = idempotent_batch(&five(10), pid, epoch, 10, TIMESTAMP);
    produce_expecting(&mut client, topic, &a, 0, "batch A (sequences 0-4)");
    produce_expecting(&mut client, topic, &a, 0, "batch A retried");
    assert_log_is(&mut client, topic, 5, pid, "after A and its retry");
    produce_expecting(&mut client, topic, &b, 5, "batch B (sequences 5-9)");
    produce_expecting(&mut client, topic, &b, 5, "batch B retried");
    produce_expecting(&mut client, topic, &a, 0, "batch A retried after B (still among the last five)");
    assert_log_is(&mut client, topic, 10, pid, "after B and the retries");

    broker.kill_hard();
    broker.restart();
    let mut client = WireClient::connect(broker.kafka_addr());
    produce_expecting(&mut client, topic, &b, 5, "batch B retried after the broker was killed with SIGKILL");
    produce_expecting(&mut client, topic, &a, 0, "batch A retried after the broker was killed with SIGKILL");
    assert_log_is(&mut client, topic, 10, pid, "after the SIGKILL restart and the retries");
    produce_expecting(&mut client, topic, &c, 10, "batch C (sequences 10-14) after the SIGKILL restart");

    broker.stop_gracefully();
    broker.restart();
    let mut client = WireClient::connect(broker.kafka_addr());
    produce_expecting(&mut client, topic, &c, 10, "batch C retried after a clean restart");
    produce_expecting(&mut client, topic, &b, 5, "batch B retried after a clean restart");
    assert_log_is(&mut client, topic, 15, pid, "after the clean restart and the retries");
}

#[test]
fn sequence_gap_is_refused_as_out_of_order_sequence_number() {
    let broker = BrokerProcess::start();
    let topic = "sequence-gap";
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, topic, 1, &[]);
    let (error, pid, epoch) = init_producer_id(&mut client, None);
    assert_eq!(error, 0, "InitProducerId");

    produce_expecting(&mut client, topic, &idempotent_batch(&five(0), pid, epoch, 0, TIMESTAMP), 0, "sequences 0-4");
    // Sequences 5-9 were lost in flight; 10-14 arrive.
    let gap = produce(&mut client, topic, 0, idempotent_batch(&five(5), pid, epoch, 10, TIMESTAMP));
    assert_eq!(
        gap.error_code,
        ResponseError::OutOfOrderSequenceNumber.code(),
        "a batch at sequence 10 after 0-4: {:?}",
        gap.error_message
    );
    assert_log_is(&mut client, topic, 5, pid, "after the refused batch");
    // The batch that was expected is still accepted.
    produce_expecting(&mut client, topic, &idempotent_batch(&five(5), pid, epoch, 5, TIMESTAMP), 5, "sequences 5-9");
    assert_log_is(&mut client, topic, 10, pid, "after the in-order batch");
}

#[test]
fn batch_from_an_older_epoch_is_refused_as_invalid_producer_epoch() {
    let broker = BrokerProcess::start();
    let topic = "fenced-epoch";
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, topic, 1, &[]);
    let (error, pid, old_epoch) = init_producer_id(&mut client, None);
    assert_eq!(error, 0, "InitProducerId");
    produce_expecting(&mut client, topic, &idempotent_batch(&five(0), pid, old_epoch, 0, TIMESTAMP), 0, "epoch 0");

    // KIP-360: the producer asks again with its id and epoch and gets the next epoch.
    let (error, same_pid, new_epoch) = init_producer_id(&mut client, Some((pid, old_epoch)));
    assert_eq!((error, same_pid, new_epoch), (0, pid, old_epoch + 1), "InitProducerId bumping the epoch");
    produce_expecting(
        &mut client,
        topic,
        &idempotent_batch(&five(5), pid, new_epoch, 0, TIMESTAMP),
        5,
        "the new epoch starting at sequence 0",
    );
    let fenced = produce(&mut client, topic, 0, idempotent_batch(&five(10), pid, old_epoch, 5, TIMESTAMP));
    assert_eq!(
        fenced.error_code,
        ResponseError::InvalidProducerEpoch.code(),
        "a batch with the old epoch after the bump: {:?}",
        fenced.error_message
    );
    assert_log_is(&mut client, topic, 10, pid, "after the fenced batch");
}
