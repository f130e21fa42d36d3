//! The transaction coordinator at the wire level, against a broker process:
//! the requests a transactional producer and `kafka-transactions.sh` send,
//! sent by hand.
//!
//! Proves that FindCoordinator for a transactional id creates
//! `__transaction_state` and names this broker; that InitProducerId gives a
//! transactional id a producer id and bumps its epoch each time; that
//! AddPartitionsToTxn opens the transaction (DescribeTransactions and
//! ListTransactions show it); that bad input gets Kafka's codes and writes
//! nothing — a timeout above `transaction.max.timeout.ms`, a missing topic or
//! partition, a stale epoch (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH for
//! versions before PRODUCER_FENCED), an unknown id or producer id, EndTxn with
//! no transaction open; that the internal `TxnCoordinator` service verifies
//! a transactional produce's partitions (KIP-890) with Kafka's codes; that
//! TxnOffsetCommit is verified with the coordinator (stale epoch, unknown id)
//! and held — OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT —
//! until the transaction ends, an abort dropping it; and that after a SIGKILL the restarted broker loads
//! the open transaction from `__transaction_state`, and a new producer's
//! InitProducerId aborts it at a bumped epoch, fencing the old producer.

mod common;

use std::time::Duration;

use common::wire::{WireClient, create_topic_ok, topic_name};
use common::{BrokerProcess, wait_for};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
    FindCoordinatorRequest, GroupId, InitProducerIdRequest, ListTransactionsRequest, OffsetFetchRequest, ProducerId,
    TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use strom_proto::transactions::txn_coordinator_client::TxnCoordinatorClient;
use strom_proto::transactions::{TopicPartitions, VerifyTxnPartitionsRequest};

const ID: &str = "orders-app";

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// InitProducerId (v4) for a transactional id: (error, producer id, epoch).
fn init(client: &mut WireClient, id: &str, timeout_ms: i32, current: Option<(i64, i16)>) -> (i16, i64, i16) {
    let (pid, epoch) = current.unwrap_or((-1, -1));
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch);
    let r = client.send(&request, 4);
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// AddPartitionsToTxn (client form) at `version`: (topic, partition, error) per partition.
fn add(
    client: &mut WireClient,
    version: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    partitions: &[(&str, &[i32])],
) -> Vec<(String, i32, i16)> {
    let topics = partitions
        .iter()
        .map(|(t, ps)| AddPartitionsToTxnTopic::default().with_name(topic_name(t)).with_partitions(ps.to_vec()))
        .collect();
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let r = client.send(&request, version);
    let mut out: Vec<(String, i32, i16)> = r
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.partition_error_code))
        })
        .collect();
    out.sort();
    out
}

/// EndTxn (v3): the error code.
fn end(client: &mut WireClient, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    client.send(&request, 3).error_code
}

/// DescribeTransactions: (error, state, producer id, epoch, partitions as "topic-p").
fn describe(client: &mut WireClient, id: &str) -> (i16, String, i64, i16, Vec<String>) {
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]);
    let mut r = client.send(&request, 0);
    let s = r.transaction_states.remove(0);
    let partitions =
        s.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| format!("{}-{p}", t.topic.0))).collect();
    (s.error_code, s.transaction_state.to_string(), s.producer_id.0, s.producer_epoch, partitions)
}

/// TxnOffsetCommit of offset `offset` for etl's orders-0 at `version`: the partition's error.
fn txn_offset_commit(client: &mut WireClient, version: i16, id: &str, pid: i64, epoch: i16, offset: i64) -> i16 {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(GroupId(StrBytes::from_static_str("etl")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default().with_name(topic_name("orders")).with_partitions(
            vec![TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset)],
        )]);
    client.send(&request, version).topics[0].partitions[0].error_code
}

/// OffsetFetch v7 with require_stable for etl's orders-0: (error, offset).
fn offset_fetch_stable(client: &mut WireClient) -> (i16, i64) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("etl")))
        .with_require_stable(true)
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default().with_name(topic_name("orders")).with_partition_indexes(vec![0]),
        ]));
    let r = client.send(&request, 7);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// InitProducerId until the coordinator answers something other than a
/// retriable "not yet" (it is being created or loaded).
fn init_when_ready(broker: &BrokerProcess, id: &str) -> (i16, i64, i16) {
    let mut client = WireClient::connect(broker.kafka_addr());
    let retriable = [
        ResponseError::CoordinatorNotAvailable.code(),
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::NotCoordinator.code(),
        ResponseError::ConcurrentTransactions.code(),
    ];
    wait_for("the transaction coordinator to answer InitProducerId", Duration::from_secs(60), || {
        let answer = init(&mut client, id, 10_000, None);
        (!retriable.contains(&answer.0)).then_some(answer)
    })
}

#[test]
fn coordinator_serves_transactional_ids_refuses_bad_input_and_survives_a_kill() {
    let mut broker = BrokerProcess::start_with(&[
        "transaction.state.log.num.partitions=3",
        "transaction.max.timeout.ms=60000",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=3600000",
    ]);
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, "orders", 2, &[]);
    create_topic_ok(&mut client, "audit", 1, &[]);

    // FindCoordinator for a transactional id creates __transaction_state and names this broker.
    let port = i32::from(broker.kafka_port());
    wait_for("FindCoordinator(TRANSACTION) to name this broker", Duration::from_secs(60), || {
        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str(ID)).with_key_type(1);
        let r = client.send(&request, 3);
        (r.error_code == 0).then_some(()).filter(|_| r.port == port)
    });

    // InitProducerId: an id and epoch 0, then the same id at epoch 1.
    let (error, pid, epoch) = init_when_ready(&broker, ID);
    assert_eq!((error, epoch), (0, 0), "the first InitProducerId");
    assert!(pid >= 0);
    assert_eq!(init(&mut client, ID, 10_000, None), (0, pid, 1), "a second InitProducerId bumps the epoch");
    let (error, _, _) = init(&mut client, ID, 60_001, None);
    assert_eq!(error, ResponseError::InvalidTransactionTimeout.code(), "a timeout above transaction.max.timeout.ms");
    let (error, _, _) = init(&mut client, "", 10_000, None);
    assert_eq!(error, ResponseError::InvalidRequest.code(), "an empty transactional id");

    // EndTxn with nothing open.
    assert_eq!(end(&mut client, ID, pid, 1, true), ResponseError::InvalidTxnState.code());

    // A missing topic or partition fails the whole request, nothing added.
    let fenced = add(&mut client, 3, ID, pid, 1, &[("orders", &[0]), ("nope", &[0]), ("audit", &[7])]);
    assert_eq!(
        fenced,
        vec![
            ("audit".to_string(), 7, ResponseError::UnknownTopicOrPartition.code()),
            ("nope".to_string(), 0, ResponseError::UnknownTopicOrPartition.code()),
            ("orders".to_string(), 0, ResponseError::OperationNotAttempted.code()),
        ]
    );
    assert_eq!(describe(&mut client, ID).1, "Empty", "nothing was added");
    // A stale epoch is fenced (INVALID_PRODUCER_EPOCH before v2); an unknown id or producer is no mapping.
    assert_eq!(add(&mut client, 3, ID, pid, 0, &[("orders", &[0])])[0].2, ResponseError::ProducerFenced.code());
    assert_eq!(add(&mut client, 1, ID, pid, 0, &[("orders", &[0])])[0].2, ResponseError::InvalidProducerEpoch.code());
    assert_eq!(
        add(&mut client, 3, "nobody", pid, 1, &[("orders", &[0])])[0].2,
        ResponseError::InvalidProducerIdMapping.code()
    );
    assert_eq!(
        add(&mut client, 3, ID, pid + 1000, 1, &[("orders", &[0])])[0].2,
        ResponseError::InvalidProducerIdMapping.code()
    );

    // The transaction opens over three partitions of two topics.
    let added = add(&mut client, 3, ID, pid, 1, &[("orders", &[0, 1]), ("audit", &[0])]);
    assert!(added.iter().all(|(_, _, e)| *e == 0), "AddPartitionsToTxn: {added:?}");
    let (error, state, dpid, depoch, mut partitions) = describe(&mut client, ID);
    partitions.sort();
    assert_eq!((error, state.as_str(), dpid, depoch), (0, "Ongoing", pid, 1));
    assert_eq!(partitions, vec!["audit-0", "orders-0", "orders-1"]);
    let listed = client.send(&ListTransactionsRequest::default(), 0);
    assert_eq!(listed.error_code, 0);
    assert!(
        listed.transaction_states.iter().any(|t| t.transactional_id.0.as_str() == ID
            && t.transaction_state.as_str() == "Ongoing"
            && t.producer_id.0 == pid),
        "ListTransactions: {:?}",
        listed.transaction_states
    );
    let filtered = client.send(
        &ListTransactionsRequest::default()
            .with_state_filters(vec![StrBytes::from_static_str("Bogus"), StrBytes::from_static_str("Empty")]),
        0,
    );
    assert_eq!(filtered.unknown_state_filters, vec![StrBytes::from_static_str("Bogus")]);
    assert!(filtered.transaction_states.is_empty(), "no Empty transaction: {:?}", filtered.transaction_states);
    assert_eq!(describe(&mut client, "nobody").0, ResponseError::TransactionalIdNotFound.code());

    // Offsets in the transaction: AddOffsetsToTxn, then TxnOffsetCommit (held
    // until the transaction ends; require_stable sees them as unstable).
    let add_offsets = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(ID))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(1)
        .with_group_id(GroupId(StrBytes::from_static_str("etl")));
    assert_eq!(client.send(&add_offsets, 3).error_code, 0, "AddOffsetsToTxn");
    assert_eq!(txn_offset_commit(&mut client, 3, ID, pid, 1, 42), 0, "TxnOffsetCommit");
    assert_eq!(txn_offset_commit(&mut client, 3, ID, pid, 0, 43), ResponseError::ProducerFenced.code(), "stale epoch");
    assert_eq!(
        txn_offset_commit(&mut client, 2, ID, pid, 0, 43),
        ResponseError::InvalidProducerEpoch.code(),
        "stale epoch, v2"
    );
    assert_eq!(
        txn_offset_commit(&mut client, 3, "nobody", pid, 1, 43),
        ResponseError::InvalidProducerIdMapping.code(),
        "unknown transactional id"
    );
    assert_eq!(
        offset_fetch_stable(&mut client),
        (ResponseError::UnstableOffsetCommit.code(), -1),
        "require_stable while the transaction is open"
    );

    // KIP-890 verification for partition leaders, over the internal gRPC service.
    let verified = |id: &str, pid: i64, epoch: i32, topic: &str, partitions: Vec<i32>| -> Vec<i32> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime
            .block_on(async {
                let mut c = TxnCoordinatorClient::connect(format!("http://{}", broker.internal_addr()))
                    .await
                    .expect("connect to the internal listener");
                let request = VerifyTxnPartitionsRequest {
                    transactional_id: id.to_string(),
                    producer_id: pid,
                    producer_epoch: epoch,
                    topics: vec![TopicPartitions { topic: topic.to_string(), partitions }],
                    add: false,
                };
                c.verify_txn_partitions(request).await.expect("VerifyTxnPartitions").into_inner()
            })
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect()
    };
    let code = |e: ResponseError| i32::from(e.code());
    assert_eq!(verified(ID, pid, 1, "orders", vec![0, 1]), vec![0, 0], "partitions in the transaction");
    assert_eq!(verified(ID, pid, 1, "other", vec![0]), vec![code(ResponseError::InvalidTxnState)], "not added");
    assert_eq!(verified(ID, pid, 0, "orders", vec![0]), vec![code(ResponseError::ProducerFenced)], "stale epoch");
    assert_eq!(
        verified("nobody", pid, 1, "orders", vec![0]),
        vec![code(ResponseError::InvalidProducerIdMapping)],
        "unknown id"
    );

    // EndTxn with a stale epoch or an unknown id.
    assert_eq!(end(&mut client, ID, pid, 0, true), ResponseError::ProducerFenced.code());
    assert_eq!(end(&mut client, "nobody", pid, 1, true), ResponseError::InvalidProducerIdMapping.code());
    assert_eq!(describe(&mut client, ID).1, "Ongoing", "a refused EndTxn changes nothing");

    // SIGKILL: the restarted broker loads the open transaction.
    broker.kill_hard();
    broker.restart();
    let mut client = WireClient::connect(broker.kafka_addr());
    let loaded = wait_for("the coordinator to load the transaction", Duration::from_secs(60), || {
        let d = describe(&mut client, ID);
        (d.0 == 0).then_some(d)
    });
    assert_eq!((loaded.1.as_str(), loaded.2, loaded.3), ("Ongoing", pid, 1), "after SIGKILL and restart");

    // A new producer with the same id aborts the open transaction at a bumped epoch.
    let (error, _, _) = init(&mut client, ID, 10_000, None);
    assert_eq!(error, ResponseError::ConcurrentTransactions.code(), "the first InitProducerId of the successor");
    let (_, state, _, epoch, _) = describe(&mut client, ID);
    assert!(state == "PrepareAbort" || state == "CompleteAbort", "state after the fence: {state}");
    assert_eq!(epoch, 2, "the abort bumped the epoch");
    // The old producer is fenced.
    assert_eq!(end(&mut client, ID, pid, 1, true), ResponseError::ProducerFenced.code());
    // Once the abort's markers are written, its offset is dropped, not committed.
    wait_for("the abort to complete", Duration::from_secs(60), || {
        (describe(&mut client, ID).1 == "CompleteAbort").then_some(())
    });
    assert_eq!(offset_fetch_stable(&mut client), (0, -1), "the aborted transaction's offset is gone");
}
