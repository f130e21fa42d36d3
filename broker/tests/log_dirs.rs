//! `kafka-log-dirs.sh --describe` (DescribeLogDirs) against a real broker:
//! Kafka's own tool lists the broker's log directory, every replica asked
//! for with the bytes its segment files hold on disk, no future replicas
//! and no lag, and the directory's disk space.
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) for the tool.

mod common;

use std::time::Duration;

use common::BrokerProcess;
use common::e2e::{E2eTools, run_with_input};
use common::wire::{WireClient, create_topic_ok, produce, record_batch};

const LOG_DIRS_COMMAND: &str = "org.apache.kafka.tools.LogDirsCommand";

/// The JSON line `LogDirsCommand --describe` prints for `topics`.
fn describe(tools: &E2eTools, bootstrap: &str, topics: &str) -> serde_json::Value {
    let mut command = tools.java_main(LOG_DIRS_COMMAND);
    command.args(["--bootstrap-server", bootstrap, "--describe", "--topic-list", topics]);
    let (status, stdout, stderr) = run_with_input(&mut command, "", Duration::from_secs(120));
    assert!(status.success(), "LogDirsCommand exited with {status}\n{stdout}\n{stderr}");
    let json = stdout.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in {stdout}"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

#[test]
fn kafka_log_dirs_lists_the_data_dir_and_each_replica_with_its_size_on_disk() {
    let tools = E2eTools::load();
    let broker = BrokerProcess::start();
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, "sized", 2, &[]);
    create_topic_ok(&mut client, "other", 1, &[]);
    for i in 0..20 {
        let batch = record_batch(&[vec![b'x'; 1000]], 1_700_000_000_000 + i);
        assert_eq!(produce(&mut client, "sized", (i % 2) as i32, batch).error_code, 0);
    }

    let answer = describe(&tools, &broker.bootstrap(), "sized");
    let brokers = answer["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1, "{answer}");
    let dirs = brokers[0]["logDirs"].as_array().expect("logDirs");
    assert_eq!(dirs.len(), 1, "one log directory: {answer}");
    let dir = &dirs[0];
    assert!(dir["error"].is_null(), "{answer}");
    let data_dir = std::fs::canonicalize(broker.data_dir()).expect("the data dir");
    assert_eq!(dir["logDir"].as_str(), Some(data_dir.to_str().expect("utf-8 path")), "{answer}");
    let mut partitions: Vec<(String, u64)> = dir["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            assert_eq!(p["offsetLag"], 0, "{p}");
            assert_eq!(p["isFuture"], false, "{p}");
            (p["partition"].as_str().expect("name").to_string(), p["size"].as_u64().expect("size"))
        })
        .collect();
    partitions.sort();
    let on_disk =
        |partition: i32| -> u64 { broker.segment_files("sized", partition).iter().map(|f| common::file_len(f)).sum() };
    assert_eq!(
        partitions,
        [("sized-0".to_string(), on_disk(0)), ("sized-1".to_string(), on_disk(1))],
        "only the topic asked for, each replica with its segments' bytes"
    );
    assert!(partitions.iter().all(|(_, size)| *size >= 10 * 1000), "ten 1 kB records each: {partitions:?}");
}
