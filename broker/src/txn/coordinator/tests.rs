//! Coordinator tests over an in-memory `__transaction_state` (the group
//! coordinator's test log, through the real batch codec). The marker side
//! is a recorder standing in for the partition leaders, answering each
//! partition with the codes a test scripts; waits poll a condition with a
//! deadline.

use std::collections::VecDeque;

use bytes::Bytes;

use super::*;
use crate::group::store::MemoryOffsetsLog;

const PARTITIONS: usize = 3;

/// Partition leaders as the coordinator sees them: every marker request is
/// recorded; each partition answers with the next scripted code (0 when none is left).
#[derive(Debug, Default)]
struct Leaders {
    sent: Mutex<Vec<MarkerRequest>>,
    script: Mutex<VecDeque<i16>>,
}

impl MarkerSender for Leaders {
    fn send(&self, marker: MarkerRequest) -> futures::future::BoxFuture<'static, super::super::markers::MarkerResults> {
        self.sent.lock().push(marker.clone());
        let results = marker
            .partitions
            .iter()
            .map(|(t, p)| (t.clone(), *p, self.script.lock().pop_front().unwrap_or(0)))
            .collect();
        Box::pin(std::future::ready(results))
    }
}

fn config() -> TxnConfig {
    TxnConfig { partitions: PARTITIONS as i32, max_timeout_ms: 60_000, ..TxnConfig::default() }
}

fn started(store: &Arc<MemoryOffsetsLog>, leaders: &Arc<Leaders>) -> Arc<TxnCoordinator> {
    let c = TxnCoordinator::new(config());
    c.attach(store.clone(), PARTITIONS, leaders.clone());
    for p in 0..PARTITIONS {
        c.set_leadership(p, true, 5);
    }
    c
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pid_source(next: i64) -> impl FnMut() -> std::future::Ready<Result<i64, String>> {
    let mut n = next;
    move || {
        n += 1;
        std::future::ready(Ok(n - 1))
    }
}

fn states_in_log(store: &MemoryOffsetsLog, id: &str) -> Vec<TxnState> {
    let p = partition_for(id, PARTITIONS) as i32;
    store
        .records(p)
        .into_iter()
        .filter(|r| decode_key(&r.key).is_ok_and(|k| k == id))
        .filter_map(|r| r.value.and_then(|v| TxnRecord::decode(&v).ok()).map(|v| v.state))
        .collect()
}

#[tokio::test]
async fn a_commit_is_logged_marked_and_completed() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let c = started(&store, &leaders);
    let (pid, epoch) = c.init_producer_id("t1", 10_000, None, pid_source(1000)).await.unwrap();
    assert_eq!((pid, epoch), (1000, 0));
    let parts = vec![("a".to_string(), 0), ("b".to_string(), 2)];
    c.add_partitions("t1", pid, epoch, &parts).await.unwrap();
    // Two partitions fail once: they are retried until written.
    leaders.script.lock().extend([6, 6]);
    c.end_txn("t1", pid, epoch, true).await.unwrap();
    eventually("CompleteCommit", || c.describe("t1").is_ok_and(|d| d.state == TxnState::CompleteCommit)).await;
    let sent = leaders.sent.lock().clone();
    assert!(sent.len() >= 2, "the failed partitions were sent again: {sent:?}");
    assert!(
        sent.iter().all(|m| m.committed && m.producer_id == pid && m.producer_epoch == 0 && m.coordinator_epoch == 5)
    );
    assert_eq!(
        states_in_log(&store, "t1"),
        vec![TxnState::Empty, TxnState::Ongoing, TxnState::PrepareCommit, TxnState::CompleteCommit]
    );
    // A retried EndTxn(commit) is answered OK; an abort now is invalid.
    c.end_txn("t1", pid, epoch, true).await.unwrap();
    assert!(matches!(c.end_txn("t1", pid, epoch, false).await, Err(TxnError::InvalidTxnState { .. })));
}

#[tokio::test]
async fn a_new_producer_aborts_the_old_ones_transaction_and_fences_it() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let c = started(&store, &leaders);
    let (pid, e0) = c.init_producer_id("t2", 10_000, None, pid_source(7)).await.unwrap();
    c.add_partitions("t2", pid, e0, &[("a".to_string(), 1)]).await.unwrap();
    // The zombie's successor: CONCURRENT_TRANSACTIONS while the abort completes, then epoch 2.
    let first = c.init_producer_id("t2", 10_000, None, pid_source(99)).await;
    assert_eq!(first, Err(TxnError::ConcurrentTransactions));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match c.init_producer_id("t2", 10_000, None, pid_source(99)).await {
            Err(TxnError::ConcurrentTransactions) => {
                assert!(tokio::time::Instant::now() < deadline, "the abort never completed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other,
        }
    };
    assert_eq!(answer, Ok((pid, 2)));
    let aborts: Vec<_> = leaders.sent.lock().iter().filter(|m| !m.committed).cloned().collect();
    assert_eq!(aborts[0].producer_epoch, 1, "the abort markers carry the bumped epoch");
    assert_eq!(c.end_txn("t2", pid, e0, true).await, Err(TxnError::ProducerFenced));
    assert_eq!(c.add_partitions("t2", pid, e0, &[("a".to_string(), 1)]).await, Err(TxnError::ProducerFenced));
}

#[tokio::test]
async fn requests_for_unknown_ids_or_timeouts_get_kafkas_errors() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let c = started(&store, &leaders);
    assert_eq!(
        c.init_producer_id("t3", 60_001, None, pid_source(1)).await,
        Err(TxnError::InvalidTransactionTimeout { requested: 60_001, max: 60_000 })
    );
    assert!(matches!(c.init_producer_id("", 1000, None, pid_source(1)).await, Err(TxnError::InvalidRequest(_))));
    assert_eq!(c.end_txn("nobody", 1, 0, true).await, Err(TxnError::InvalidProducerIdMapping));
    assert_eq!(c.add_partitions("nobody", 1, 0, &[]).await, Err(TxnError::InvalidProducerIdMapping));
    assert_eq!(c.describe("nobody"), Err(TxnError::TransactionalIdNotFound));
    assert!(store.records(partition_for("t3", PARTITIONS) as i32).is_empty(), "nothing written");
}

#[tokio::test]
async fn leadership_decides_who_answers() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let c = TxnCoordinator::new(config());
    assert_eq!(c.describe("x"), Err(TxnError::CoordinatorNotAvailable));
    c.attach(store.clone(), PARTITIONS, leaders.clone());
    assert_eq!(c.describe("x"), Err(TxnError::NotCoordinator));
    let p = partition_for("x", PARTITIONS);
    c.set_leadership(p, true, 1);
    assert_eq!(c.describe("x"), Err(TxnError::TransactionalIdNotFound));
    c.set_leadership(p, false, 1);
    assert_eq!(c.describe("x"), Err(TxnError::NotCoordinator));
}

#[tokio::test]
async fn loading_skips_garbage_and_finishes_prepared_transactions() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let id = "resumed";
    let p = partition_for(id, PARTITIONS) as i32;
    let mut partitions = std::collections::BTreeMap::new();
    partitions.insert("orders".to_string(), std::collections::BTreeSet::from([0, 1]));
    let prepared = TxnRecord {
        producer_id: 42,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: 3,
        timeout_ms: 10_000,
        state: TxnState::PrepareAbort,
        partitions,
        last_update_ms: 1,
        start_ms: 1,
        client_transaction_version: 0,
    };
    let garbage =
        |k: &[u8], v: &[u8]| LogRecord { key: Bytes::copy_from_slice(k), value: Some(Bytes::copy_from_slice(v)) };
    store
        .append(
            p,
            &[
                garbage(b"\x00\x07junk", b"whatever"),
                garbage(&encode_key("broken-value"), b"\x00\x00\x01"),
                LogRecord { key: encode_key(id), value: Some(prepared.encode(0)) },
                garbage(&encode_key("bad-state"), &{
                    let mut v = prepared.encode(0).to_vec();
                    v[16] = 42;
                    v
                }),
            ],
        )
        .unwrap();
    let c = started(&store, &leaders);
    // The readable id is served; the unreadable ones were skipped.
    eventually("the prepared abort to complete", || c.describe(id).is_ok_and(|d| d.state == TxnState::CompleteAbort))
        .await;
    assert_eq!(c.describe("broken-value"), Err(TxnError::TransactionalIdNotFound));
    assert_eq!(c.describe("bad-state"), Err(TxnError::TransactionalIdNotFound));
    let sent = leaders.sent.lock().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].producer_id, sent[0].producer_epoch, sent[0].committed), (42, 3, false));
    assert_eq!(sent[0].partitions, vec![("orders".to_string(), 0), ("orders".to_string(), 1)]);
}

#[tokio::test]
async fn timed_out_transactions_are_aborted_with_a_bump() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let c = started(&store, &leaders);
    let (pid, e) = c.init_producer_id("slow", 1, None, pid_source(5)).await.unwrap();
    c.add_partitions("slow", pid, e, &[("a".to_string(), 0)]).await.unwrap();
    eventually("the timeout to pass", || c.describe("slow").is_ok_and(|d| d.start_ms + 1 < now_ms())).await;
    c.abort_timed_out().await;
    eventually("CompleteAbort", || c.describe("slow").is_ok_and(|d| d.state == TxnState::CompleteAbort)).await;
    assert_eq!(c.describe("slow").unwrap().producer_epoch, e + 1);
    assert_eq!(c.end_txn("slow", pid, e, true).await, Err(TxnError::ProducerFenced));
}

#[tokio::test]
async fn a_failed_write_answers_and_changes_nothing() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let c = started(&store, &leaders);
    let (pid, e) = c.init_producer_id("w", 1000, None, pid_source(5)).await.unwrap();
    store.fail_appends(true);
    assert!(matches!(c.add_partitions("w", pid, e, &[("a".to_string(), 0)]).await, Err(TxnError::Storage(_))));
    assert_eq!(c.describe("w").unwrap().state, TxnState::Empty);
    store.fail_appends(false);
    c.add_partitions("w", pid, e, &[("a".to_string(), 0)]).await.unwrap();
    assert_eq!(c.describe("w").unwrap().state, TxnState::Ongoing);
}

#[tokio::test]
async fn idle_ids_expire_with_a_tombstone_and_open_ones_do_not() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let c = TxnCoordinator::new(TxnConfig { id_expiration_ms: 1, ..config() });
    c.attach(store.clone(), PARTITIONS, leaders.clone());
    for p in 0..PARTITIONS {
        c.set_leadership(p, true, 5);
    }
    let (pid, e) = c.init_producer_id("idle", 1000, None, pid_source(5)).await.unwrap();
    let (bpid, be) = c.init_producer_id("busy", 1000, None, pid_source(9)).await.unwrap();
    c.add_partitions("busy", bpid, be, &[("a".to_string(), 0)]).await.unwrap();
    // transactional.id.expiration.ms is 1 ms: the idle id goes at a cleanup run once a millisecond has passed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.describe("idle").is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the idle id ({pid}, {e}) never expired");
        c.remove_expired().await;
        tokio::task::yield_now().await;
    }
    assert_eq!(c.describe("busy").unwrap().state, TxnState::Ongoing, "an open transaction never expires");
    let p = partition_for("idle", PARTITIONS) as i32;
    let last = store.records(p).into_iter().rev().find(|r| decode_key(&r.key).is_ok_and(|k| k == "idle")).unwrap();
    assert_eq!(last.value, None, "a tombstone");
    // Loading again does not bring it back.
    let again = started(&store, &leaders);
    assert_eq!(again.describe("idle"), Err(TxnError::TransactionalIdNotFound));
    assert_eq!(again.describe("busy").unwrap().state, TxnState::Ongoing);
}

#[tokio::test]
async fn a_v2_end_bumps_the_epoch_the_markers_carry_it_and_a_reload_remembers_the_version() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let c = started(&store, &leaders);
    let (pid, e0) = c.init_producer_id("v2", 10_000, None, pid_source(3000)).await.unwrap();
    c.add_partitions_at("v2", pid, e0, &[("a".to_string(), 1)], 2).await.unwrap();
    let answer = c.end_transaction("v2", pid, e0, true, 2, pid_source(9000)).await.unwrap();
    assert_eq!(answer, (pid, e0 + 1), "EndTxn v5 answers the bumped epoch");
    eventually("CompleteCommit", || c.describe("v2").is_ok_and(|d| d.state == TxnState::CompleteCommit)).await;
    let sent = leaders.sent.lock().clone();
    assert!(
        sent.iter().all(|m| m.producer_epoch == e0 + 1 && m.transaction_version == 2),
        "the markers carry the bumped epoch and the version: {sent:?}"
    );
    // The retry is answered alike, without a write.
    let logged = states_in_log(&store, "v2").len();
    assert_eq!(c.end_transaction("v2", pid, e0, true, 2, pid_source(9000)).await.unwrap(), (pid, e0 + 1));
    assert_eq!(states_in_log(&store, "v2").len(), logged);

    // A new coordinator loads the id from the log and keeps its rules: the
    // old epoch is still a retry, not a new end.
    let c2 = started(&store, &leaders);
    assert_eq!(c2.end_transaction("v2", pid, e0, true, 2, pid_source(9000)).await.unwrap(), (pid, e0 + 1));
    c2.add_partitions_at("v2", pid, e0 + 1, &[("a".to_string(), 1)], 2).await.unwrap();
    assert_eq!(c2.end_transaction("v2", pid, e0, true, 2, pid_source(9000)).await, Err(TxnError::ProducerFenced));
}

#[tokio::test]
async fn a_v2_end_at_the_last_epoch_rolls_over_to_the_next_producer_id_and_answers_it() {
    let (store, leaders) = (Arc::new(MemoryOffsetsLog::default()), Arc::new(Leaders::default()));
    let id = "rollover";
    let last = i16::MAX - 1;
    let open = TxnRecord {
        producer_id: 50,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: last,
        timeout_ms: 10_000,
        state: TxnState::Ongoing,
        partitions: [("orders".to_string(), [0].into_iter().collect())].into_iter().collect(),
        last_update_ms: now_ms(),
        start_ms: now_ms(),
        client_transaction_version: 2,
    };
    let p = partition_for(id, PARTITIONS) as i32;
    store.append(p, &[LogRecord { key: encode_key(id), value: Some(open.encode(1)) }]).unwrap();
    let c = started(&store, &leaders);
    let answer = c.end_transaction(id, 50, last, true, 2, pid_source(7000)).await.unwrap();
    assert_eq!(answer, (7000, 0), "the client continues as the next producer id at epoch 0");
    eventually("CompleteCommit", || c.describe(id).is_ok_and(|d| d.state == TxnState::CompleteCommit)).await;
    let sent = leaders.sent.lock().clone();
    assert!(sent.iter().all(|m| (m.producer_id, m.producer_epoch) == (50, i16::MAX)), "old id, last epoch: {sent:?}");
    let d = c.describe(id).unwrap();
    assert_eq!((d.producer_id, d.producer_epoch), (7000, 0));
    // A retry from the old producer id gets the same answer; the old id is otherwise no one.
    assert_eq!(c.end_transaction(id, 50, last, true, 2, pid_source(8000)).await.unwrap(), (7000, 0));
    assert_eq!(c.end_transaction(id, 50, 3, true, 2, pid_source(8000)).await, Err(TxnError::InvalidProducerIdMapping));
}
