//! The transaction state machine, driven request by request.

use super::*;

const NOW: i64 = 1_000_000;
const ID: &str = "txn-a";

fn write(m: &mut TxnMetadata, step: InitStep) -> Transit {
    match step {
        InitStep::Write(t) => {
            m.complete(t.clone());
            t
        }
        other => panic!("expected a write, got {other:?}"),
    }
}

/// A new id after its first InitProducerId: producer 7, epoch 0, Empty.
fn initialized() -> TxnMetadata {
    let mut m = TxnMetadata::new(ID, 7, 60_000, NOW);
    let step = m.prepare_init(60_000, None, None, NOW).unwrap();
    write(&mut m, step);
    m
}

fn ongoing(parts: &[(&str, i32)]) -> TxnMetadata {
    let mut m = initialized();
    let parts: Vec<TxnPartition> = parts.iter().map(|(t, p)| (t.to_string(), *p)).collect();
    let t = m.prepare_add_partitions(7, 0, &parts, 0, NOW + 10).unwrap().unwrap();
    m.complete(t);
    m
}

#[test]
fn state_ids_and_names_are_kafkas() {
    let ids: Vec<i8> = TxnState::ALL.iter().map(|s| s.id()).collect();
    assert_eq!(ids, (0..8).collect::<Vec<i8>>());
    assert_eq!(TxnState::from_id(7), Some(TxnState::PrepareEpochFence));
    assert_eq!(TxnState::from_id(8), None);
    assert_eq!(TxnState::from_id(-1), None);
    for s in TxnState::ALL {
        assert_eq!(TxnState::from_name(s.name()), Some(s));
    }
    assert_eq!(TxnState::PrepareCommit.name(), "PrepareCommit");
}

#[test]
fn every_transition_starts_from_a_valid_previous_state() {
    // Drive a commit and an abort cycle and check each step against Kafka's table.
    let mut m = initialized();
    let mut seen = vec![m.state()];
    let parts = vec![("t".to_string(), 0)];
    for commit in [true, false] {
        let before = m.state();
        let t = m.prepare_add_partitions(m.producer_id(), m.producer_epoch(), &parts, 0, NOW).unwrap().unwrap();
        assert!(t.record.state.valid_previous().contains(&before));
        m.complete(t);
        let before = m.state();
        let t = m.prepare_end(m.producer_id(), m.producer_epoch(), commit, NOW).unwrap().unwrap();
        assert!(t.record.state.valid_previous().contains(&before));
        m.complete(t);
        let before = m.state();
        let t = m.prepare_complete(NOW).unwrap();
        assert!(t.record.state.valid_previous().contains(&before));
        m.complete(t);
        seen.push(m.state());
    }
    assert_eq!(seen, vec![TxnState::Empty, TxnState::CompleteCommit, TxnState::CompleteAbort]);
}

#[test]
fn init_bumps_the_epoch_each_time() {
    let mut m = initialized();
    assert_eq!((m.producer_id(), m.producer_epoch(), m.state()), (7, 0, TxnState::Empty));
    let step = m.prepare_init(30_000, None, None, NOW + 1).unwrap();
    let t = write(&mut m, step);
    assert_eq!((t.record.producer_id, t.record.producer_epoch, t.record.timeout_ms), (7, 1, 30_000));
    assert_eq!(t.last_producer_epoch, NO_EPOCH);
}

#[test]
fn init_with_an_open_transaction_aborts_it_at_a_bumped_epoch() {
    let mut m = ongoing(&[("t", 0), ("u", 3)]);
    let InitStep::AbortOngoing(t) = m.prepare_init(60_000, None, None, NOW + 20).unwrap() else {
        panic!("expected an abort first");
    };
    assert_eq!(t.record.state, TxnState::PrepareAbort);
    assert_eq!(t.record.producer_epoch, 1, "the old producer is fenced by the abort's epoch");
    assert_eq!(t.record.partitions.len(), 2, "markers go to every partition");
    // Until it is written, everything else waits.
    assert_eq!(m.prepare_init(60_000, None, None, NOW).unwrap_err(), TxnError::ConcurrentTransactions);
    m.complete(t);
    // While the markers are written, the new producer retries.
    assert_eq!(m.prepare_init(60_000, None, None, NOW).unwrap_err(), TxnError::ConcurrentTransactions);
    let t = m.prepare_complete(NOW).unwrap();
    m.complete(t);
    assert_eq!(m.state(), TxnState::CompleteAbort);
    let step = m.prepare_init(60_000, None, None, NOW).unwrap();
    let t = write(&mut m, step);
    assert_eq!(t.record.producer_epoch, 2);
    // The old producer (epoch 0) is fenced everywhere.
    assert_eq!(m.prepare_add_partitions(7, 0, &[("t".into(), 0)], 0, NOW).unwrap_err(), TxnError::ProducerFenced);
    assert_eq!(m.prepare_end(7, 0, true, NOW).unwrap_err(), TxnError::ProducerFenced);
}

#[test]
fn kip_360_recovery_bumps_and_a_lost_answer_is_retried() {
    let mut m = initialized();
    // The producer (7, 0) asks again after an abortable error.
    let step = m.prepare_init(60_000, Some((7, 0)), None, NOW).unwrap();
    let t = write(&mut m, step);
    assert_eq!((t.record.producer_epoch, t.last_producer_epoch), (1, 0));
    // It never got the answer and retries with (7, 0): the same epoch, no second bump.
    let step = m.prepare_init(60_000, Some((7, 0)), None, NOW).unwrap();
    let t = write(&mut m, step);
    assert_eq!(t.record.producer_epoch, 1);
    // A stale epoch that is neither current nor last is fenced.
    let mut m = initialized();
    let step = m.prepare_init(60_000, None, None, NOW).unwrap();
    write(&mut m, step);
    let step = m.prepare_init(60_000, None, None, NOW).unwrap();
    write(&mut m, step); // epoch 2, last -1
    assert_eq!(m.prepare_init(60_000, Some((7, 0)), None, NOW).unwrap_err(), TxnError::ProducerFenced);
    // Another producer id is fenced.
    assert_eq!(m.prepare_init(60_000, Some((8, 2)), None, NOW).unwrap_err(), TxnError::ProducerFenced);
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut record = initialized().record().clone();
    record.producer_epoch = i16::MAX - 1;
    let mut m = TxnMetadata::from_record(ID, record);
    assert_eq!(m.prepare_init(60_000, None, None, NOW).unwrap(), InitStep::NeedProducerId);
    assert!(!m.has_pending());
    let step = m.prepare_init(60_000, None, Some(99), NOW).unwrap();
    let t = write(&mut m, step);
    assert_eq!((t.record.producer_id, t.record.producer_epoch), (99, 0));
    assert_eq!(t.record.previous_producer_id, 7);
    // Without a KIP-360 caller no last epoch is remembered: the old producer is fenced.
    assert_eq!(m.prepare_init(60_000, Some((7, i16::MAX - 1)), None, NOW).unwrap_err(), TxnError::ProducerFenced);

    // A KIP-360 caller at the exhausted epoch rotates, and its retry (lost
    // answer) with the old id gets the new id at the same epoch.
    let mut record = initialized().record().clone();
    record.producer_epoch = i16::MAX - 1;
    let mut m = TxnMetadata::from_record(ID, record);
    let step = m.prepare_init(60_000, Some((7, i16::MAX - 1)), Some(99), NOW).unwrap();
    let t = write(&mut m, step);
    assert_eq!((t.record.producer_id, t.record.producer_epoch, t.last_producer_epoch), (99, 0, i16::MAX - 1));
    let step = m.prepare_init(60_000, Some((7, i16::MAX - 1)), None, NOW).unwrap();
    let t = write(&mut m, step);
    assert_eq!((t.record.producer_id, t.record.producer_epoch), (99, 0));
}

#[test]
fn add_partitions_opens_and_extends_the_transaction() {
    let mut m = ongoing(&[("t", 0)]);
    assert_eq!(m.state(), TxnState::Ongoing);
    assert_eq!(m.record().start_ms, NOW + 10);
    // Already in: nothing to write.
    assert_eq!(m.prepare_add_partitions(7, 0, &[("t".into(), 0)], 0, NOW + 20).unwrap(), None);
    let t = m.prepare_add_partitions(7, 0, &[("u".into(), 1)], 0, NOW + 30).unwrap().unwrap();
    assert_eq!(t.record.start_ms, NOW + 10, "the start time stays");
    m.complete(t);
    assert_eq!(m.partitions(), vec![("t".to_string(), 0), ("u".to_string(), 1)]);
    assert!(m.contains("u", 1) && !m.contains("u", 0));
}

#[test]
fn add_partitions_refuses_wrong_producers_and_ending_transactions() {
    let mut m = ongoing(&[("t", 0)]);
    let p = vec![("u".to_string(), 0)];
    assert_eq!(m.prepare_add_partitions(8, 0, &p, 0, NOW).unwrap_err(), TxnError::InvalidProducerIdMapping);
    assert_eq!(m.prepare_add_partitions(7, 1, &p, 0, NOW).unwrap_err(), TxnError::ProducerFenced);
    let t = m.prepare_end(7, 0, true, NOW).unwrap().unwrap();
    assert_eq!(m.prepare_add_partitions(7, 0, &p, 0, NOW).unwrap_err(), TxnError::ConcurrentTransactions);
    m.complete(t);
    assert_eq!(m.prepare_add_partitions(7, 0, &p, 0, NOW).unwrap_err(), TxnError::ConcurrentTransactions);
    assert_eq!(m.check_in_transaction(7, 0).unwrap_err(), TxnError::ConcurrentTransactions);
}

#[test]
fn end_txn_follows_kafkas_table() {
    // Empty: nothing to end.
    let mut m = initialized();
    assert!(matches!(m.prepare_end(7, 0, true, NOW), Err(TxnError::InvalidTxnState { state: TxnState::Empty, .. })));
    // Commit, then a retried commit is OK without a write, an abort is invalid.
    let mut m = ongoing(&[("t", 0)]);
    let t = m.prepare_end(7, 0, true, NOW).unwrap().unwrap();
    assert_eq!(t.record.state, TxnState::PrepareCommit);
    assert_eq!(t.record.producer_epoch, 0, "transaction.version 1: no bump at the end");
    m.complete(t);
    assert_eq!(m.prepare_end(7, 0, true, NOW).unwrap_err(), TxnError::ConcurrentTransactions);
    assert!(matches!(m.prepare_end(7, 0, false, NOW), Err(TxnError::InvalidTxnState { .. })));
    let t = m.prepare_complete(NOW + 5).unwrap();
    assert!(t.record.partitions.is_empty());
    m.complete(t);
    assert_eq!(m.state(), TxnState::CompleteCommit);
    assert_eq!(m.prepare_end(7, 0, true, NOW).unwrap(), None);
    assert!(matches!(m.prepare_end(7, 0, false, NOW), Err(TxnError::InvalidTxnState { .. })));
    // Stale epoch and unknown producer id.
    assert_eq!(m.prepare_end(7, -1, true, NOW).unwrap_err(), TxnError::ProducerFenced);
    assert_eq!(m.prepare_end(6, 0, true, NOW).unwrap_err(), TxnError::InvalidProducerIdMapping);
}

#[test]
fn a_failed_write_leaves_the_state_unchanged() {
    let mut m = ongoing(&[("t", 0)]);
    let before = m.clone();
    let _ = m.prepare_end(7, 0, true, NOW).unwrap().unwrap();
    assert!(m.has_pending());
    m.fail_pending();
    assert_eq!(m, before);
}

#[test]
fn timeouts_and_fencing_abort_with_a_bump() {
    let m = ongoing(&[("t", 0)]);
    assert!(!m.timed_out(NOW + 10 + 59_999));
    assert!(m.timed_out(NOW + 10 + 60_000));
    let mut m = m;
    let t = m.prepare_fence_abort(NOW + 70_000).unwrap();
    assert_eq!((t.record.state, t.record.producer_epoch), (TxnState::PrepareAbort, 1));
    assert!(!m.timed_out(NOW + 1_000_000), "a pending abort is not timed out again");
    m.complete(t);
    assert!(!m.timed_out(NOW + 1_000_000));
    assert!(matches!(
        m.prepare_fence_abort(NOW),
        Err(TxnError::ConcurrentTransactions | TxnError::InvalidTxnState { .. })
    ));
    // The producer that timed out is fenced.
    assert_eq!(m.prepare_end(7, 0, false, NOW).unwrap_err(), TxnError::ProducerFenced);
}

#[test]
fn only_idle_ids_expire() {
    let mut m = initialized();
    assert!(!m.expired(NOW + 99, 100));
    assert!(m.expired(NOW + 100, 100));
    let t = m.prepare_dead().unwrap();
    m.complete(t);
    assert_eq!(m.state(), TxnState::Dead);
    let m = ongoing(&[("t", 0)]);
    assert!(!m.expired(i64::MAX, 1));
}

#[test]
fn timeouts_are_bounded_by_the_maximum() {
    assert!(validate_timeout(60_000, 900_000).is_ok());
    assert!(validate_timeout(900_000, 900_000).is_ok());
    assert_eq!(
        validate_timeout(900_001, 900_000),
        Err(TxnError::InvalidTransactionTimeout { requested: 900_001, max: 900_000 })
    );
    assert!(validate_timeout(0, 900_000).is_err());
    assert!(validate_timeout(-5, 900_000).is_err());
}

#[test]
fn loaded_records_resume_where_they_were() {
    let m = ongoing(&[("t", 0)]);
    let mut loaded = TxnMetadata::from_record(ID, m.record().clone());
    assert_eq!(loaded.state(), TxnState::Ongoing);
    assert!(loaded.prepare_end(7, 0, false, NOW).unwrap().is_some());
}

// ----- transaction.version 2 (KIP-890 part 2) -----

/// Producer 7 at `epoch` with partition t-0 added by a v2 request.
fn ongoing_v2(epoch: i16) -> TxnMetadata {
    let mut record = initialized().record().clone();
    record.producer_epoch = epoch;
    let mut m = TxnMetadata::from_record(ID, record);
    let t = m.prepare_add_partitions(7, epoch, &[("t".into(), 0)], 2, NOW + 10).unwrap().unwrap();
    m.complete(t);
    m
}

fn end_v2(m: &mut TxnMetadata, epoch: i16, commit: bool) -> Result<EndStep, TxnError> {
    m.prepare_end_txn(7, epoch, commit, 2, None, NOW + 20)
}

fn written(m: &mut TxnMetadata, step: EndStep) -> Transit {
    match step {
        EndStep::Write(t) => {
            m.complete(t.clone());
            t
        }
        other => panic!("expected a write, got {other:?}"),
    }
}

fn completed(m: &mut TxnMetadata) {
    let t = m.prepare_complete(NOW + 30).unwrap();
    m.complete(t);
}

#[test]
fn v2_end_txn_bumps_the_epoch_and_the_markers_carry_it() {
    let mut m = ongoing_v2(0);
    let step = end_v2(&mut m, 0, true).unwrap();
    let t = written(&mut m, step);
    assert_eq!((t.record.state, t.record.producer_epoch), (TxnState::PrepareCommit, 1));
    assert_eq!(t.continue_with(), (7, 1));
    assert_eq!(t.record.client_transaction_version, 2);
    completed(&mut m);
    assert_eq!((m.state(), m.producer_epoch()), (TxnState::CompleteCommit, 1));
    // The next transaction runs at the new epoch; the old one is fenced.
    assert_eq!(m.prepare_add_partitions(7, 0, &[("t".into(), 0)], 2, NOW).unwrap_err(), TxnError::ProducerFenced);
    let t = m.prepare_add_partitions(7, 1, &[("t".into(), 0)], 2, NOW).unwrap().unwrap();
    m.complete(t);
    let step = end_v2(&mut m, 1, false).unwrap();
    assert_eq!(written(&mut m, step).record.producer_epoch, 2);
}

#[test]
fn v2_retried_end_txn_is_answered_and_a_stale_one_fenced() {
    let mut m = ongoing_v2(3);
    let step = end_v2(&mut m, 3, true).unwrap();
    written(&mut m, step);
    // A retry while the markers are written: retriable.
    assert_eq!(end_v2(&mut m, 3, true).unwrap_err(), TxnError::ConcurrentTransactions);
    completed(&mut m);
    // A retry once complete: the same answer, nothing written.
    assert_eq!(end_v2(&mut m, 3, true).unwrap(), EndStep::Answered { producer_id: 7, producer_epoch: 4 });
    assert!(!m.has_pending());
    // The retry asks for the other outcome: refused.
    assert!(matches!(end_v2(&mut m, 3, false), Err(TxnError::InvalidTxnState { .. })));
    // The next transaction opens at epoch 4: the delayed EndTxn of the
    // previous one (epoch 3) is fenced and changes nothing.
    let t = m.prepare_add_partitions(7, 4, &[("t".into(), 1)], 2, NOW).unwrap().unwrap();
    m.complete(t);
    for commit in [true, false] {
        assert_eq!(end_v2(&mut m, 3, commit).unwrap_err(), TxnError::ProducerFenced);
        assert_eq!(end_v2(&mut m, 2, commit).unwrap_err(), TxnError::ProducerFenced);
    }
    assert_eq!((m.state(), m.producer_epoch()), (TxnState::Ongoing, 4));
    // An epoch from the future is fenced too.
    assert_eq!(end_v2(&mut m, 5, true).unwrap_err(), TxnError::ProducerFenced);
}

#[test]
fn v2_abort_of_an_empty_transaction_bumps_without_markers() {
    let mut m = ongoing_v2(0);
    let step = end_v2(&mut m, 0, true).unwrap();
    written(&mut m, step);
    completed(&mut m);
    // The client sent something that never arrived, so it aborts.
    let step = end_v2(&mut m, 1, false).unwrap();
    let t = written(&mut m, step);
    assert_eq!((t.record.state, t.record.producer_epoch), (TxnState::PrepareAbort, 2));
    assert!(t.record.partitions.is_empty(), "nothing to mark");
    completed(&mut m);
    // A commit of nothing is not valid.
    assert!(matches!(end_v2(&mut m, 2, true), Err(TxnError::InvalidTxnState { .. })));
    // Before v2 an EndTxn of an Empty id is refused.
    let mut m = initialized();
    assert!(matches!(m.prepare_end_txn(7, 0, false, 0, None, NOW), Err(TxnError::InvalidTxnState { .. })));
}

#[test]
fn v2_bump_past_the_last_epoch_rolls_over_to_a_fresh_producer_id() {
    let last = i16::MAX - 1;
    let mut m = ongoing_v2(last);
    assert_eq!(end_v2(&mut m, last, true).unwrap(), EndStep::NeedProducerId);
    assert!(!m.has_pending());
    let step = m.prepare_end_txn(7, last, true, 2, Some(99), NOW).unwrap();
    let t = written(&mut m, step);
    // The markers go out for producer 7 at i16::MAX; the client continues as 99/0.
    assert_eq!((t.record.producer_id, t.record.producer_epoch, t.record.next_producer_id), (7, i16::MAX, 99));
    assert_eq!(t.continue_with(), (99, 0));
    completed(&mut m);
    assert_eq!((m.producer_id(), m.producer_epoch(), m.record().previous_producer_id), (99, 0, 7));
    // The retry from the old producer id gets the new one.
    assert_eq!(end_v2(&mut m, last, true).unwrap(), EndStep::Answered { producer_id: 99, producer_epoch: 0 });
}

#[test]
fn v2_after_a_timeout_abort_the_old_epoch_may_abort_but_its_commit_is_fenced() {
    let mut m = ongoing_v2(5);
    let t = m.prepare_fence_abort(NOW + 70_000).unwrap();
    assert_eq!(t.record.producer_epoch, 6, "one bump, as Kafka 4.1");
    m.complete(t);
    completed(&mut m);
    // The commit that was on its way when the coordinator aborted: fenced
    // (recoverable), not an invalid state (fatal).
    assert_eq!(end_v2(&mut m, 5, true).unwrap_err(), TxnError::ProducerFenced);
    // Its abort is the abort that already happened: answered, nothing written.
    assert_eq!(end_v2(&mut m, 5, false).unwrap(), EndStep::Answered { producer_id: 7, producer_epoch: 6 });
    assert!(!m.has_pending());
    // Older epochs stay fenced.
    assert_eq!(end_v2(&mut m, 4, false).unwrap_err(), TxnError::ProducerFenced);
}

#[test]
fn v2_the_next_transaction_waits_while_the_previous_ends_markers_are_written() {
    // KAFKA-18464: the client holds epoch 4 as soon as its commit is
    // prepared; an (empty) abort at 4 before the markers are written must be
    // retriable, not fence the producer.
    let mut m = ongoing_v2(3);
    let step = end_v2(&mut m, 3, true).unwrap();
    written(&mut m, step);
    assert_eq!(m.state(), TxnState::PrepareCommit);
    assert_eq!(end_v2(&mut m, 4, false).unwrap_err(), TxnError::ConcurrentTransactions);
    assert_eq!(m.check_in_transaction(7, 4).unwrap_err(), TxnError::ConcurrentTransactions);
    completed(&mut m);
    let step = end_v2(&mut m, 4, false).unwrap();
    assert_eq!(written(&mut m, step).record.producer_epoch, 5);

    // KAFKA-18660: after a rollover the fresh id's first add waits for the
    // old id's markers instead of being refused as an unknown id.
    let last = i16::MAX - 1;
    let mut m = ongoing_v2(last);
    let step = m.prepare_end_txn(7, last, true, 2, Some(99), NOW).unwrap();
    written(&mut m, step);
    let add = m.prepare_add_partitions(99, 0, &[("t".into(), 0)], 2, NOW);
    assert_eq!(add.unwrap_err(), TxnError::ConcurrentTransactions);
    completed(&mut m);
    assert!(m.prepare_add_partitions(99, 0, &[("t".into(), 0)], 2, NOW).unwrap().is_some());
    // A producer that is neither gets the usual answer.
    assert_eq!(m.check_in_transaction(12, 0).unwrap_err(), TxnError::InvalidProducerIdMapping);
}

#[test]
fn before_v2_end_txn_keeps_the_epoch() {
    let mut m = ongoing(&[("t", 0)]);
    let step = m.prepare_end_txn(7, 0, true, 0, None, NOW).unwrap();
    let t = written(&mut m, step);
    assert_eq!(t.record.producer_epoch, 0);
    assert_eq!(t.continue_with(), (7, 0));
    // Partitions added the v2 way but ended by an older EndTxn: the markers
    // are at the data's epoch, so they must not follow the v2 marker rule.
    let mut m = ongoing_v2(4);
    let step = m.prepare_end_txn(7, 4, false, 0, None, NOW).unwrap();
    let t = written(&mut m, step);
    assert_eq!((t.record.producer_epoch, t.record.client_transaction_version), (4, 0));
}
