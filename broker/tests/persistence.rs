//! Durability and crash recovery of the partition logs, with a real broker
//! process stopped, killed and restarted on the same data dir.
//!
//! Proves that:
//! - records acknowledged before a clean stop (SIGTERM) are all read back at
//!   the same offsets after a restart, across several segments, and new
//!   records continue the offsets without a gap;
//! - records acknowledged (acks=all) before a `kill -9` in the middle of a
//!   produce stream are all readable at their acknowledged offsets after a
//!   restart, and the log's offsets are dense from 0 to its end;
//! - garbage at the tail of the active segment (a torn partial batch header,
//!   a whole batch with a bad CRC, random bytes) is truncated away at start:
//!   the `.log` file shrinks back, the garbage is never served, and the next
//!   record gets the old end offset.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use common::clients::{
    ConsumedRecord, Delivered, TestRecord, assert_dense_from_zero, consume_to_end, create_topic, delivery_result,
    enqueue, numbered_records, produce_all, producer, watermarks,
};
use common::wire::{WireClient, batch_layout, fetch, latest_offset, produce, record_batch, with_corrupted_payload};
use common::{BrokerProcess, append_to_file, file_len, wait_for};
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::producer::{Producer, PurgeConfig};

const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

/// Asserts that every delivered record is read back at its delivered offset,
/// unchanged, and that each partition's offsets run densely from 0.
fn assert_all_delivered_records_read_back(
    label: &str,
    records: &[TestRecord],
    delivered: &[(usize, Delivered)],
    consumed: &BTreeMap<i32, Vec<ConsumedRecord>>,
) {
    for (p, read) in consumed {
        assert_dense_from_zero(label, *p, read.iter().map(|r| r.offset));
    }
    for (index, d) in delivered {
        let read = consumed.get(&d.partition).and_then(|records| records.get(d.offset as usize)).unwrap_or_else(|| {
            panic!("{label}: acknowledged record #{index} at {}-{} is missing after restart", d.partition, d.offset)
        });
        assert!(
            read.matches(&records[*index]),
            "{label}: partition {} offset {} holds {read:?}, but record #{index} {:?} was acknowledged there",
            d.partition,
            d.offset,
            records[*index]
        );
    }
}

/// The produce index a test record carries in its `seq` header.
fn seq_of(record: &ConsumedRecord) -> usize {
    let (_, value) = record
        .headers
        .iter()
        .find(|(k, _)| k == "seq")
        .unwrap_or_else(|| panic!("record without a seq header: {record:?}"));
    let value = value.as_deref().unwrap_or_else(|| panic!("seq header without a value: {record:?}"));
    std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad seq header: {record:?}"))
}

#[test]
fn acknowledged_records_survive_graceful_restart_and_offsets_continue() {
    const PARTITIONS: i32 = 2;
    const FIRST: usize = 5_000;
    const MORE: usize = 1_000;
    let mut broker = BrokerProcess::start();
    let topic = "persist-graceful";
    // Small segments, so the restart has to reopen several of them per partition.
    create_topic(&broker.bootstrap(), topic, PARTITIONS, &[("segment.bytes", "65536")]);

    let records = numbered_records(0, FIRST, BASE_TIMESTAMP);
    // Batches of at most 100 records (~17 KB): segments roll every few batches.
    let small_batches = [("batch.num.messages", "100")];
    let delivered = produce_all(&producer(&broker.bootstrap(), &small_batches), topic, &records);
    let before: Vec<(usize, Delivered)> = delivered.iter().copied().enumerate().collect();

    broker.stop_gracefully();
    for p in 0..PARTITIONS {
        let segments = broker.segment_files(topic, p);
        assert!(segments.len() >= 3, "partition {p} should have rolled segments at 64 KiB: {segments:?}");
    }
    broker.restart();

    let consumed = consume_to_end(&broker.bootstrap(), topic, PARTITIONS);
    assert_eq!(consumed.values().map(Vec::len).sum::<usize>(), FIRST, "records read back after restart");
    assert_all_delivered_records_read_back("after SIGTERM and restart", &records, &before, &consumed);
    let ends: BTreeMap<i32, i64> = consumed.iter().map(|(p, r)| (*p, r.len() as i64)).collect();

    // New records continue each partition's offsets where they stopped.
    let more = numbered_records(FIRST, MORE, BASE_TIMESTAMP);
    let delivered_more = produce_all(&producer(&broker.bootstrap(), &small_batches), topic, &more);
    let mut next: BTreeMap<i32, i64> = ends.clone();
    for (i, d) in delivered_more.iter().enumerate() {
        let expected = next.get_mut(&d.partition).unwrap_or_else(|| panic!("unknown partition {}", d.partition));
        assert_eq!(d.offset, *expected, "record #{} after restart: offsets must continue without a gap", FIRST + i);
        *expected += 1;
    }

    let all_records: Vec<TestRecord> = records.iter().chain(&more).cloned().collect();
    let all_delivered: Vec<(usize, Delivered)> = delivered.iter().chain(&delivered_more).copied().enumerate().collect();
    let consumed = consume_to_end(&broker.bootstrap(), topic, PARTITIONS);
    assert_eq!(consumed.values().map(Vec::len).sum::<usize>(), FIRST + MORE, "records read in all");
    assert_all_delivered_records_read_back("after producing more", &all_records, &all_delivered, &consumed);
}

#[test]
fn acknowledged_records_survive_kill_9_during_produce() {
    const PARTITIONS: i32 = 2;
    /// Acknowledged records to wait for before the kill.
    const ACKED_BEFORE_KILL: usize = 5_000;
    /// Guard against producing forever if the kill never comes.
    const MAX_RECORDS: usize = 2_000_000;
    /// Records sent but not yet resolved, at most (keeps librdkafka's queue from filling up).
    const MAX_IN_FLIGHT: usize = 20_000;
    let mut broker = BrokerProcess::start();
    let topic = "persist-kill";
    create_topic(&broker.bootstrap(), topic, PARTITIONS, &[]);

    // The producer thread enqueues records until told to stop; a collector
    // thread waits for their delivery reports in produce order.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let resolved = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<Result<Delivered, String>>>> = Arc::default();
    let (to_collector, pending) = mpsc::channel();
    let bootstrap = broker.bootstrap();
    let producing = {
        let (stop, resolved) = (stop.clone(), resolved.clone());
        std::thread::spawn(move || {
            let producer = producer(&bootstrap, &[("linger.ms", "1"), ("message.timeout.ms", "30000")]);
            let mut sent = 0;
            while !stop.load(Ordering::Acquire) && sent < MAX_RECORDS {
                if sent - resolved.load(Ordering::Acquire) >= MAX_IN_FLIGHT {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let record = &numbered_records(sent, 1, BASE_TIMESTAMP)[0];
                to_collector.send(enqueue(&producer, topic, record)).expect("collector thread alive");
                sent += 1;
            }
            // Whatever was not acknowledged by now fails: nothing is resent to the restarted broker.
            producer.purge(PurgeConfig::default().queue().inflight());
            let _ = producer.flush(Duration::from_secs(10));
            sent
        })
    };
    let collecting = {
        let (acked, resolved, results) = (acked.clone(), resolved.clone(), results.clone());
        std::thread::spawn(move || {
            for delivery in pending {
                let result = delivery_result(delivery);
                if result.is_ok() {
                    acked.fetch_add(1, Ordering::AcqRel);
                }
                results.lock().expect("results lock").push(result);
                resolved.fetch_add(1, Ordering::AcqRel);
            }
        })
    };

    wait_for("records acknowledged before the kill", Duration::from_secs(120), || {
        (acked.load(Ordering::Acquire) >= ACKED_BEFORE_KILL).then_some(())
    });
    broker.kill_hard();
    stop.store(true, Ordering::Release);
    let sent = producing.join().expect("producer thread");
    collecting.join().expect("collector thread");
    let results = Arc::try_unwrap(results).expect("threads done").into_inner().expect("results lock");
    assert_eq!(results.len(), sent, "one delivery result per record sent");
    let delivered: Vec<(usize, Delivered)> =
        results.iter().enumerate().filter_map(|(i, r)| r.as_ref().ok().map(|d| (i, *d))).collect();
    assert!(delivered.len() >= ACKED_BEFORE_KILL, "{} records acknowledged", delivered.len());
    eprintln!("kill -9 test: {sent} records sent, {} acknowledged before the broker died", delivered.len());

    broker.restart();
    let records = numbered_records(0, sent, BASE_TIMESTAMP);
    let consumed = consume_to_end(&broker.bootstrap(), topic, PARTITIONS);
    assert_all_delivered_records_read_back("after kill -9 and restart", &records, &delivered, &consumed);

    // Records beyond the acknowledged ones may have survived, but only whole
    // and only records that were really produced.
    for (p, read) in &consumed {
        for r in read {
            let seq = seq_of(r);
            assert!(
                seq < sent && r.matches(&records[seq]),
                "partition {p} offset {} holds a corrupt record: {r:?}",
                r.offset
            );
        }
    }
    // The high watermark is the end of what was read: offsets dense from 0 to the end.
    let marks = watermarks(&broker.bootstrap(), topic, PARTITIONS);
    for (p, (_, high)) in marks.iter().enumerate() {
        assert_eq!(*high, consumed[&(p as i32)].len() as i64, "high watermark of partition {p} after recovery");
    }
    // The recovered log takes new records at its end.
    let extra = numbered_records(sent, 200, BASE_TIMESTAMP);
    let delivered_extra = produce_all(&producer(&broker.bootstrap(), &[]), topic, &extra);
    let mut next: Vec<i64> = marks.iter().map(|(_, high)| *high).collect();
    for d in delivered_extra {
        assert_eq!(
            d.offset, next[d.partition as usize],
            "offsets continue after recovery on partition {}",
            d.partition
        );
        next[d.partition as usize] += 1;
    }
}

/// Produces records, stops the broker cleanly, appends `garbage` to the
/// active segment, restarts, and checks the garbage was cut off and never served.
fn assert_tail_garbage_is_truncated(label: &str, garbage: impl FnOnce(i64) -> Vec<u8>) {
    const RECORDS: usize = 1_000;
    let mut broker = BrokerProcess::start();
    let topic = "torn-tail";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let records = numbered_records(0, RECORDS, BASE_TIMESTAMP);
    let delivered = produce_all(&producer(&broker.bootstrap(), &[]), topic, &records);
    let end = RECORDS as i64;
    assert_eq!(delivered.last().map(|d| d.offset), Some(end - 1), "{label}: last delivered offset");

    broker.stop_gracefully();
    let segment = broker.active_segment(topic, 0);
    let clean_len = file_len(&segment);
    let garbage = garbage(end);
    append_to_file(&segment, &garbage);
    assert_eq!(file_len(&segment), clean_len + garbage.len() as u64, "{label}: garbage appended");

    broker.restart();
    assert_eq!(
        file_len(&segment),
        clean_len,
        "{label}: recovery must truncate {} back to its last valid batch",
        segment.display()
    );

    let consumed = consume_to_end(&broker.bootstrap(), topic, 1);
    assert_eq!(consumed[&0].len(), RECORDS, "{label}: records read back after recovery");
    let all: Vec<(usize, Delivered)> = delivered.iter().copied().enumerate().collect();
    assert_all_delivered_records_read_back(label, &records, &all, &consumed);

    let mut client = WireClient::connect(broker.kafka_addr());
    assert_eq!(latest_offset(&mut client, topic, 0), end, "{label}: latest offset after recovery");
    let at_end = fetch(&mut client, topic, 0, end);
    assert_eq!(at_end.error_code, 0, "{label}: fetch at the log end offset");
    assert_eq!(at_end.high_watermark, end, "{label}: high watermark after recovery");
    assert!(
        at_end.records.as_ref().is_none_or(Bytes::is_empty),
        "{label}: a fetch at the log end served {} bytes of garbage",
        at_end.records.as_ref().map_or(0, Bytes::len)
    );

    // The next record goes exactly where the garbage was.
    let next = produce(&mut client, topic, 0, record_batch(&[b"after recovery".to_vec()], BASE_TIMESTAMP));
    assert_eq!(next.error_code, 0, "{label}: produce after recovery: {:?}", next.error_message);
    assert_eq!(next.base_offset, end, "{label}: first offset after recovery");
    let fetched = fetch(&mut client, topic, 0, end);
    let mut bytes = fetched.records.unwrap_or_default();
    let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decode the batch fetched after recovery");
    let values: Vec<(i64, Option<Bytes>)> =
        sets.iter().flat_map(|s| s.records.iter().map(|r| (r.offset, r.value.clone()))).collect();
    assert_eq!(values, vec![(end, Some(Bytes::from_static(b"after recovery")))], "{label}: fetched after recovery");
}

#[test]
fn torn_partial_batch_header_at_segment_tail_is_truncated_on_restart() {
    assert_tail_garbage_is_truncated("partial batch header", |end| {
        // baseOffset, batchLength = 500, partitionLeaderEpoch, magic 2 — then the write stops.
        let mut header = Vec::new();
        header.extend_from_slice(&end.to_be_bytes());
        header.extend_from_slice(&500i32.to_be_bytes());
        header.extend_from_slice(&0i32.to_be_bytes());
        header.push(2);
        header
    });
}

#[test]
fn whole_batch_with_bad_crc_at_segment_tail_is_truncated_on_restart() {
    assert_tail_garbage_is_truncated("batch with a bad CRC", |end| {
        let batch = record_batch(&[b"never acknowledged".to_vec(), b"corrupt".to_vec()], BASE_TIMESTAMP);
        let mut corrupt = with_corrupted_payload(&batch).to_vec();
        corrupt[batch_layout::BASE_OFFSET..batch_layout::BASE_OFFSET + 8].copy_from_slice(&end.to_be_bytes());
        corrupt
    });
}

#[test]
fn random_bytes_at_segment_tail_are_truncated_on_restart() {
    assert_tail_garbage_is_truncated("random bytes", |_| {
        // A fixed xorshift sequence: reproducible "random" garbage.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..333)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    });
}

/// A data dir of a Strom version before the controller quorum keeps its
/// metadata in `strom-metadata.json`: the upgraded broker imports its cluster
/// id and topics (ids, partitions, configs) and serves the old records.
#[test]
fn a_single_node_data_dir_from_before_the_quorum_keeps_its_topics() {
    const RECORDS: usize = 300;
    let mut broker = BrokerProcess::start();
    let topic = "legacy-orders";
    create_topic(&broker.bootstrap(), topic, 2, &[("retention.ms", "86400000")]);
    let records = numbered_records(0, RECORDS, BASE_TIMESTAMP);
    let delivered: Vec<(usize, Delivered)> =
        produce_all(&producer(&broker.bootstrap(), &[("acks", "all")]), topic, &records)
            .into_iter()
            .enumerate()
            .collect();
    let mut client = WireClient::connect(broker.kafka_addr());
    let metadata: kafka_protocol::messages::MetadataResponse =
        client.send(&kafka_protocol::messages::MetadataRequest::default().with_topics(None), 12);
    let topic_id = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .map(|t| t.topic_id)
        .expect("the topic is listed");
    drop(client);
    broker.stop_gracefully();

    // Turn the data dir into an old one: no controller files, the old metadata file instead.
    let data_dir = broker.data_dir();
    std::fs::remove_dir_all(data_dir.join("controller")).expect("remove the controller dir");
    let legacy = format!(
        r#"{{"version":1,"cluster_id":"legacy-cluster-id-0001","producer_id_block_end":3000,"topics":{{"{topic}":{{"id":"{topic_id}","configs":{{"retention.ms":"86400000"}},"partitions":[{{"replicas":[0],"leader":0,"leader_epoch":0,"isr":[0]}},{{"replicas":[0],"leader":0,"leader_epoch":0,"isr":[0]}}]}}}}}}"#
    );
    std::fs::write(data_dir.join("strom-metadata.json"), legacy).expect("write the old metadata file");
    broker.restart();

    let consumed = consume_to_end(&broker.bootstrap(), topic, 2);
    assert_all_delivered_records_read_back("after the upgrade", &records, &delivered, &consumed);
    let mut client = WireClient::connect(broker.kafka_addr());
    let metadata: kafka_protocol::messages::MetadataResponse =
        client.send(&kafka_protocol::messages::MetadataRequest::default().with_topics(None), 12);
    assert_eq!(metadata.cluster_id.as_ref().map(|c| c.as_str()), Some("legacy-cluster-id-0001"));
    let imported = metadata.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic));
    assert_eq!(imported.map(|t| t.topic_id), Some(topic_id), "the topic keeps its id");
    assert!(data_dir.join("strom-metadata.json.imported").exists(), "the old file is kept, renamed");
    assert!(!data_dir.join("strom-metadata.json").exists());
}
