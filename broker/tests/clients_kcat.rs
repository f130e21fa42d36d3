//! The `kcat` command-line client against a real broker process.
//!
//! Proves the README's kcat walk-through works: keyed lines produced with
//! `-P -K:` to a topic that does not exist yet (auto-created on first use) are
//! read back unchanged and in order with `-C -e -o beginning`, and metadata
//! listing (`-L`) shows the broker at its advertised address and the topic
//! with its partitions led by broker 0.
//!
//! kcat must be on PATH (`apt-get install kcat`; `.ci/run` installs it). A
//! missing kcat fails these tests; they never skip.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::BrokerProcess;
use common::clients::create_topic;

/// A hang guard for one kcat run, not a performance check.
const KCAT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs kcat with `args`, feeding `stdin`, and returns its output; panics
/// with a clear message if kcat is missing, hangs or fails.
fn kcat(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!("kcat is not on PATH: install it (`apt-get install kcat`; .ci/run does this) to run these tests")
            }
            panic!("cannot run kcat: {e}")
        });
    let mut input = child.stdin.take().expect("kcat's stdin is piped");
    input.write_all(stdin).expect("write kcat's stdin");
    drop(input);
    // Drain stdout/stderr on threads so a chatty kcat cannot block on a full pipe.
    let mut out = child.stdout.take().expect("kcat's stdout is piped");
    let mut err = child.stderr.take().expect("kcat's stderr is piped");
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut buf).map(|_| buf)
    });
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + KCAT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll kcat") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kcat {args:?} did not finish within {KCAT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: stdout.join().expect("stdout reader thread").expect("read kcat's stdout"),
        stderr: stderr.join().expect("stderr reader thread").expect("read kcat's stderr"),
    };
    assert!(
        output.status.success(),
        "kcat {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Produces `key:value` lines with acks=all.
fn kcat_produce_keyed(bootstrap: &str, topic: &str, lines: &str) {
    kcat(
        &["-b", bootstrap, "-t", topic, "-P", "-K:", "-X", "acks=all", "-X", "enable.idempotence=false"],
        lines.as_bytes(),
    );
}

/// Consumes a topic from the beginning to its end, one line per record in `format`.
fn kcat_consume(bootstrap: &str, topic: &str, format: &str) -> String {
    let output = kcat(&["-b", bootstrap, "-t", topic, "-C", "-e", "-q", "-o", "beginning", "-f", format], b"");
    String::from_utf8(output.stdout).expect("kcat output is UTF-8")
}

/// `kcat -L -J` (metadata as JSON), optionally for one topic.
fn kcat_metadata(bootstrap: &str, topic: Option<&str>) -> serde_json::Value {
    let mut args = vec!["-b", bootstrap, "-L", "-J"];
    if let Some(t) = topic {
        args.extend(["-t", t]);
    }
    let output = kcat(&args, b"");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("kcat -L -J printed invalid JSON ({e}): {}", String::from_utf8_lossy(&output.stdout))
    })
}

/// The JSON object for `topic` in a `kcat -L -J` listing.
fn topic_in_listing<'a>(listing: &'a serde_json::Value, topic: &str) -> &'a serde_json::Value {
    listing["topics"]
        .as_array()
        .unwrap_or_else(|| panic!("kcat -L -J has no topics array: {listing}"))
        .iter()
        .find(|t| t["topic"] == topic)
        .unwrap_or_else(|| panic!("topic {topic} missing from kcat -L: {listing}"))
}

#[test]
fn keyed_lines_produced_with_kcat_read_back_in_order() {
    let broker = BrokerProcess::start();
    let topic = "kcat-greetings";
    let lines: String = (0..500).map(|i| format!("k{i}:hello strom {i}\n")).collect();

    // The topic does not exist: kcat's metadata request auto-creates it (num.partitions=1).
    kcat_produce_keyed(&broker.bootstrap(), topic, &lines);
    let consumed = kcat_consume(&broker.bootstrap(), topic, "%k:%s\n");
    assert_eq!(consumed, lines, "records read back with kcat differ from the lines produced");

    // Offsets and partition as kcat reports them: one partition, offsets 0..500.
    let positions = kcat_consume(&broker.bootstrap(), topic, "%p %o %k\n");
    let expected: String = (0..500).map(|i| format!("0 {i} k{i}\n")).collect();
    assert_eq!(positions, expected, "partition/offset/key as kcat reports them");

    // A second produce continues the same log.
    kcat_produce_keyed(&broker.bootstrap(), topic, "again:one more\n");
    let consumed = kcat_consume(&broker.bootstrap(), topic, "%o %k:%s\n");
    assert!(consumed.ends_with("500 again:one more\n"), "the appended record is at offset 500: {consumed}");
    assert_eq!(consumed.lines().count(), 501, "all records are still there");
}

#[test]
fn kcat_metadata_lists_broker_and_topics() {
    let broker = BrokerProcess::start();
    create_topic(&broker.bootstrap(), "kcat-three", 3, &[]);
    kcat_produce_keyed(&broker.bootstrap(), "kcat-auto", "a:1\n");

    let listing = kcat_metadata(&broker.bootstrap(), None);
    let brokers = listing["brokers"].as_array().unwrap_or_else(|| panic!("no brokers array: {listing}"));
    assert_eq!(brokers.len(), 1, "one broker listed: {listing}");
    assert_eq!(brokers[0]["id"], 0, "broker id: {listing}");
    assert_eq!(brokers[0]["name"], broker.bootstrap().as_str(), "advertised address: {listing}");

    for (topic, partitions) in [("kcat-three", 3), ("kcat-auto", 1)] {
        let entry = topic_in_listing(&listing, topic);
        let parts = entry["partitions"].as_array().unwrap_or_else(|| panic!("no partitions for {topic}: {entry}"));
        assert_eq!(parts.len(), partitions, "partitions of {topic}: {entry}");
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p["partition"], i, "partition index of {topic}: {entry}");
            assert_eq!(p["leader"], 0, "leader of {topic}-{i}: {entry}");
            assert!(p.get("error").is_none(), "partition error for {topic}-{i}: {entry}");
        }
        assert!(entry.get("error").is_none(), "topic error for {topic}: {entry}");
    }

    // Listing a single topic works too.
    let one = kcat_metadata(&broker.bootstrap(), Some("kcat-three"));
    let entry = topic_in_listing(&one, "kcat-three");
    assert_eq!(entry["partitions"].as_array().map(Vec::len), Some(3), "kcat -L -t kcat-three: {one}");
}
