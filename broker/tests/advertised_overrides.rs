//! `--advertised-overrides` on a 3-broker cluster with two listeners:
//! PLAINTEXT (the first, advertised as configured) and EXTERNAL, whose
//! per-broker address comes from each broker's own file. Metadata on the
//! EXTERNAL listener shows every broker at the address its file gives and
//! leaves out a broker whose file gives none (never its PLAINTEXT
//! address); Metadata on PLAINTEXT is unchanged. Files written, changed and
//! removed while the brokers run are followed live (no restart). Finally
//! the files give the brokers' real external endpoints and librdkafka,
//! bootstrapping through EXTERNAL only, produces and reads back every
//! record.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::clients::{consume_to_end, numbered_records, produce_all, producer};
use common::cluster::{Cluster, create_topic, metadata, wait_until};

const TIMEOUT: Duration = Duration::from_secs(60);
const EXTERNAL_PORT: u16 = 29095;

/// (id, host:port) of every broker a Metadata request to `addr` lists.
fn brokers_seen(addr: SocketAddr) -> Option<BTreeMap<i32, String>> {
    let response = metadata(addr, &[]).ok()?;
    Some(response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect())
}

fn write_address(dir: &Path, id: i32, line: &str) {
    // Written beside and renamed, as the kubelet swaps a ConfigMap volume's files.
    let tmp = dir.join(format!(".broker-{id}.tmp"));
    std::fs::write(&tmp, line).expect("write the overrides file");
    std::fs::rename(&tmp, dir.join(format!("broker-{id}.properties"))).expect("rename the overrides file");
}

fn expected(pairs: &[(i32, &str)]) -> BTreeMap<i32, String> {
    pairs.iter().map(|(id, a)| (*id, a.to_string())).collect()
}

#[test]
fn the_external_listener_advertises_each_brokers_own_address_from_its_file_live() {
    let files = tempfile::tempdir().expect("a dir for the overrides files");
    let dir = files.path();
    write_address(dir, 0, "# the operator's\nadvertised.listeners=EXTERNAL://ext-0.example.com:31001\n");
    write_address(dir, 1, "advertised.listeners=EXTERNAL://ext-1.example.com:31002\n");
    let listeners = format!("listeners=PLAINTEXT://{{IP}}:29092,EXTERNAL://{{IP}}:{EXTERNAL_PORT}");
    let settings = [listeners.as_str(), "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT"];
    let flag = format!("EXTERNAL={}/broker-{{ID}}.properties", dir.display());
    let cluster = Cluster::start_with_args(3, "advertised", &settings, &["--advertised-overrides", &flag]);
    let internal: Vec<SocketAddr> = cluster.brokers().iter().map(|b| b.kafka_addr()).collect();
    let external: Vec<SocketAddr> = internal.iter().map(|a| SocketAddr::new(a.ip(), EXTERNAL_PORT)).collect();
    let on_external = |want: &BTreeMap<i32, String>, what: &str| {
        // Every broker answers on its EXTERNAL listener with the same view.
        for addr in &external {
            wait_until(&format!("{what} (asking {addr})"), TIMEOUT, || brokers_seen(*addr).filter(|seen| seen == want));
        }
    };

    // Broker 2 has no file: it is not on the EXTERNAL listener at all.
    on_external(&expected(&[(0, "ext-0.example.com:31001"), (1, "ext-1.example.com:31002")]), "brokers 0 and 1");
    let plaintext: BTreeMap<i32, String> = (0..3).map(|id| (id, internal[id as usize].to_string())).collect();
    assert_eq!(brokers_seen(internal[1]), Some(plaintext.clone()), "PLAINTEXT: every broker as configured");

    // Broker 2's address becomes known, broker 0's changes: applied live.
    write_address(dir, 2, "advertised.listeners=EXTERNAL://203.0.113.9:31003\n");
    write_address(dir, 0, "advertised.listeners=EXTERNAL://ext-0b.example.com:32001\n");
    let all = expected(&[(0, "ext-0b.example.com:32001"), (1, "ext-1.example.com:31002"), (2, "203.0.113.9:31003")]);
    on_external(&all, "broker 2 added and broker 0 moved");

    // A refused file keeps the last good address; removing the file withdraws it.
    write_address(dir, 1, "advertised.listeners=PLAINTEXT://wrong.example.com:1\n");
    std::fs::remove_file(dir.join("broker-2.properties")).expect("remove broker 2's file");
    on_external(&expected(&[(0, "ext-0b.example.com:32001"), (1, "ext-1.example.com:31002")]), "broker 2 withdrawn");
    wait_until("broker 1 to log the refused file", TIMEOUT, || {
        cluster.broker(1).log().contains("broker-1.properties, line 1: invalid advertised.listeners").then_some(())
    });
    let seen = brokers_seen(external[2]).expect("Metadata on EXTERNAL");
    assert_eq!(seen.get(&1).map(String::as_str), Some("ext-1.example.com:31002"), "after the refusal: {seen:?}");
    assert_eq!(brokers_seen(internal[2]), Some(plaintext), "PLAINTEXT never changed");

    // Real addresses: a client that knows only the EXTERNAL listener works.
    for id in 0..3 {
        write_address(dir, id, &format!("advertised.listeners=EXTERNAL://{}\n", external[id as usize]));
    }
    let real: BTreeMap<i32, String> = (0..3).map(|id| (id, external[id as usize].to_string())).collect();
    on_external(&real, "the real external endpoints");
    let bootstrap = external[0].to_string();
    create_topic(&bootstrap, "through-external", 3, 3, None, &[]);
    let records = numbered_records(0, 60, 1_700_000_000_000);
    produce_all(&producer(&bootstrap, &[]), "through-external", &records);
    let read = consume_to_end(&bootstrap, "through-external", 3);
    let consumed: Vec<_> = read.into_values().flatten().collect();
    assert_eq!(consumed.len(), records.len(), "as many records read back through EXTERNAL as produced");
    for record in &records {
        assert!(consumed.iter().any(|c| c.matches(record)), "{:?} not read back", String::from_utf8_lossy(&record.key));
    }
}
