//! One client connection against a broker process: requests answered in
//! order, and what a client can make the Kafka listener hold.
//!
//! Proves that requests pipelined on one connection are applied in the
//! order sent (the last of 200 back-to-back OffsetCommits is the one
//! committed, every round); that idle connections are closed after
//! `connections.max.idle.ms` while a busy one stays; that a frame that does
//! not arrive whole is closed at `request.frame.timeout.ms`; and that
//! partially sent frames hold no more broker memory than
//! `queued.max.request.bytes`; that a Metadata request of 25 million empty
//! names is refused at once (`max.request.partitions`) with the broker's
//! memory bounded, while a normal client keeps producing and fetching through
//! each attack.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::metrics::Scrape;
use common::wire::{
    OFFSET_COMMIT_VERSION, WireClient, create_topic_ok, fetch_all, offset_commit_request, offset_fetch, produce,
    record_batch, wait_for_group_coordinator,
};
use common::{BrokerProcess, wait_for};

#[test]
fn pipelined_offset_commits_on_one_connection_leave_the_last_one_committed() {
    let broker = BrokerProcess::start();
    let (topic, group) = ("ordered", "pipeliners");
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, topic, 1, &[]);
    wait_for_group_coordinator(broker.kafka_addr(), group);
    for round in 0..100i64 {
        let offsets: Vec<i64> = (0..200).map(|i| round * 1_000 + i).collect();
        let commits: Vec<_> = offsets
            .iter()
            .map(|&offset| offset_commit_request(group, ("", -1), topic, 0, (offset, &format!("commit {offset}"))))
            .collect();
        for (i, response) in client.send_pipelined(&commits, OFFSET_COMMIT_VERSION).iter().enumerate() {
            let code = response.topics[0].partitions[0].error_code;
            assert_eq!(code, 0, "round {round}: pipelined OffsetCommit {i} refused");
        }
        let last = *offsets.last().expect("200 offsets");
        let committed = offset_fetch(&mut client, group, topic, 1)[&0].clone();
        assert_eq!(committed, (last, format!("commit {last}")), "round {round}: the last commit sent must win");
    }
}

/// A client that produces and reads back one record every `pause` until
/// stopped, on one connection; returns how many it round-tripped.
fn normal_client(
    addr: std::net::SocketAddr,
    topic: &'static str,
    stop: Arc<AtomicBool>,
    pause: Duration,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut client = WireClient::connect(addr);
        let mut sent = 0usize;
        while !stop.load(Ordering::Acquire) {
            let value = format!("normal-{sent}").into_bytes();
            let response = produce(&mut client, topic, 0, record_batch(std::slice::from_ref(&value), 0));
            assert_eq!(response.error_code, 0, "a normal client's produce was refused");
            let read: Vec<Bytes> =
                fetch_all(&mut client, topic, 0, response.base_offset).into_iter().take(1).map(|(_, _, v)| v).collect();
            assert_eq!(read, vec![Bytes::from(value)], "a normal client reads back what it produced");
            sent += 1;
            std::thread::sleep(pause);
        }
        sent
    })
}

fn connections_gauge(broker: &BrokerProcess) -> f64 {
    Scrape::fetch(broker.http_addr()).value_or_zero("strom_connections", &[])
}

/// Reads until the broker closes `stream` (end of stream or reset) or
/// `until` passes; true when it closed.
fn closed_by_broker(stream: &mut TcpStream, until: Instant) -> bool {
    let mut buf = [0u8; 16];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).expect("set a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => panic!("the broker sent {n} bytes on a connection that sent no request"),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => {
                return true;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading from the broker failed unexpectedly: {e}"),
        }
    }
}

#[test]
fn five_thousand_idle_connections_are_closed_after_connections_max_idle_ms() {
    let broker = BrokerProcess::start_with(&["connections.max.idle.ms=3000", "max.connections.per.ip=6000"]);
    let mut setup = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut setup, "busy", 1, &[]);
    drop(setup);
    let stop = Arc::new(AtomicBool::new(false));
    let busy = normal_client(broker.kafka_addr(), "busy", stop.clone(), Duration::from_millis(200));

    // A quiet connection is not closed before its idle time...
    let mut early = TcpStream::connect(broker.kafka_addr()).expect("connect");
    assert!(!closed_by_broker(&mut early, Instant::now() + Duration::from_millis(1_500)), "closed before idle time");
    // ...and 5,000 of them are all closed once it has passed.
    let mut idle: Vec<TcpStream> = (0..5_000)
        .map(|i| TcpStream::connect(broker.kafka_addr()).unwrap_or_else(|e| panic!("open idle connection {i}: {e}")))
        .collect();
    let until = Instant::now() + Duration::from_secs(60);
    assert!(closed_by_broker(&mut early, until), "the first quiet connection was still open 60 s later");
    for (i, stream) in idle.iter_mut().enumerate() {
        assert!(closed_by_broker(stream, until), "idle connection {i} was still open 60 s later");
    }
    wait_for("the broker to count only the busy connection", Duration::from_secs(30), || {
        (connections_gauge(&broker) == 1.0).then_some(())
    });
    stop.store(true, Ordering::Release);
    let round_trips = busy.join().expect("the busy client saw every request answered");
    assert!(round_trips > 0, "the busy client round-tripped records while idle connections were open");
}

#[test]
fn frames_not_arriving_whole_are_closed_at_request_frame_timeout_ms() {
    let broker = BrokerProcess::start_with(&["request.frame.timeout.ms=1000"]);
    let mut half_size = TcpStream::connect(broker.kafka_addr()).expect("connect");
    half_size.write_all(&[0, 0]).expect("send half a size prefix");
    let mut half_body = TcpStream::connect(broker.kafka_addr()).expect("connect");
    half_body.write_all(&1_000i32.to_be_bytes()).expect("send a size prefix");
    half_body.write_all(&[0u8; 10]).expect("send 10 of 1,000 body bytes");
    let mut quiet = WireClient::connect(broker.kafka_addr());

    let until = Instant::now() + Duration::from_secs(30);
    assert!(closed_by_broker(&mut half_size, until), "a half-sent size prefix was kept open");
    assert!(closed_by_broker(&mut half_body, until), "a half-sent body was kept open");
    let scrape = Scrape::fetch(broker.http_addr());
    assert_eq!(scrape.value_or_zero("strom_bad_requests_total", &[("stage", "frame_timeout")]), 2.0);
    // A connection that sent nothing is idle, not late: it still works.
    create_topic_ok(&mut quiet, "still-served", 1, &[]);
}

#[test]
fn partially_sent_frames_hold_no_more_memory_than_queued_max_request_bytes() {
    const POOL: u64 = 64 << 20;
    const FRAME: usize = 40 << 20;
    let broker = BrokerProcess::start_with(&[
        "queued.max.request.bytes=67108864",
        "request.frame.timeout.ms=3000",
        "socket.request.max.bytes=50000000",
    ]);
    let mut setup = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut setup, "steady", 1, &[]);
    drop(setup);
    let baseline = common::resident_bytes(broker.pid());

    // Ten clients each announce a 40 MiB frame and send all of it but its
    // last byte, as fast as the broker reads. About two fit in the pool at
    // a time, each for the frame timeout; the others wait, holding nothing,
    // and so does the normal client's small request when it arrives while
    // the pool is full: it is answered late, never closed.
    let attackers: Vec<_> = (0..10)
        .map(|_| {
            let addr = broker.kafka_addr();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream.set_write_timeout(Some(Duration::from_secs(2))).expect("set a write timeout");
                let _ = stream.write_all(&(FRAME as i32).to_be_bytes());
                let chunk = vec![7u8; 1 << 20];
                let mut sent = 0usize;
                while sent + chunk.len() < FRAME {
                    if stream.write_all(&chunk).is_err() {
                        break; // the broker stopped reading (or closed): all it takes
                    }
                    sent += chunk.len();
                }
                stream
            })
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let steady = normal_client(broker.kafka_addr(), "steady", stop.clone(), Duration::from_millis(100));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = rss_sampler(broker.pid(), sampling.clone());
    let streams: Vec<TcpStream> = attackers.into_iter().map(|a| a.join().expect("attacker thread")).collect();
    let until = Instant::now() + Duration::from_secs(120);
    for mut stream in streams {
        assert!(closed_by_broker(&mut stream, until), "a partial frame was kept open past its deadline");
    }
    sampling.store(false, Ordering::Release);
    let peak = sampler.join().expect("RSS sampler");
    let held = peak.saturating_sub(baseline);
    // Without the pool the broker held ~10 x 40 MiB; with it, the pool plus
    // allocator slack.
    assert!(
        held < POOL + (48 << 20),
        "partial frames took the broker from {baseline} to {peak} bytes resident (pool {POOL})"
    );
    stop.store(true, Ordering::Release);
    let round_trips = steady.join().expect("the normal client saw every request answered");
    assert!(round_trips > 0, "the normal client round-tripped records during the attack");
}

/// Samples the broker's resident memory every 20 ms until stopped; the peak.
fn rss_sampler(pid: u32, sampling: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0u64;
        while sampling.load(Ordering::Acquire) {
            peak = peak.max(common::resident_bytes(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

#[test]
fn a_metadata_request_of_25_million_names_is_refused_with_bounded_memory() {
    const NAMES: i32 = 25_000_000;
    const MAX_RSS: u64 = 300 << 20;
    let broker = BrokerProcess::start();
    let mut setup = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut setup, "steady", 1, &[]);
    drop(setup);
    let stop = Arc::new(AtomicBool::new(false));
    let steady = normal_client(broker.kafka_addr(), "steady", stop.clone(), Duration::from_millis(50));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = rss_sampler(broker.pid(), sampling.clone());

    // Metadata v0: header, then an array of 25 million empty names (two
    // bytes each): a 50 MB frame, under socket.request.max.bytes.
    let mut frame = Vec::with_capacity(4 + 14 + 4 + 2 * NAMES as usize);
    frame.extend_from_slice(&0i32.to_be_bytes()); // size, patched below
    frame.extend_from_slice(&[0, 3, 0, 0, 0, 0, 0, 7, 0, 4]);
    frame.extend_from_slice(b"evil");
    frame.extend_from_slice(&NAMES.to_be_bytes());
    frame.resize(frame.len() + 2 * NAMES as usize, 0);
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    let mut attacker = TcpStream::connect(broker.kafka_addr()).expect("connect");
    let _ = attacker.write_all(&frame); // the broker may close before taking the last bytes
    let sent = Instant::now();
    assert!(
        closed_by_broker(&mut attacker, sent + Duration::from_secs(10)),
        "the broker kept a 25-million-name Metadata request open for 10 s"
    );
    sampling.store(false, Ordering::Release);
    let peak = sampler.join().expect("RSS sampler");
    assert!(peak < MAX_RSS, "the broker reached {peak} bytes resident on one 50 MB request (bound {MAX_RSS})");

    let scrape = Scrape::fetch(broker.http_addr());
    assert_eq!(scrape.value_or_zero("strom_bad_requests_total", &[("stage", "entries")]), 1.0);
    let log = broker.log();
    assert!(log.contains("max.request.partitions allows 100000"), "the refusal names the setting and the limit");
    assert!(!log.contains("auto-create"), "no line per name");
    // The normal client kept working during the attack, and still does after.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    let round_trips = steady.join().expect("the normal client saw every request answered");
    assert!(round_trips > 0, "the normal client round-tripped records during the attack");
    let mut after = WireClient::connect(broker.kafka_addr());
    let response = produce(&mut after, "steady", 0, record_batch(&[b"after".to_vec()], 0));
    assert_eq!(response.error_code, 0, "produce after the attack");
}
