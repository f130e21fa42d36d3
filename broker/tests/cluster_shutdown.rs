//! Shutdown on a 3-broker cluster (mutual TLS on the internal plane) with an
//! idempotent acks=all producer running: a broker that gets SIGTERM right
//! after it turns ready following a restart — its fetchers just started,
//! the leaders just put it back in their ISRs, the operator just gave it
//! its preferred leaderships back and the producer is moving to it — still
//! runs its controlled shutdown, says how it ended, and exits promptly. A
//! broker that hangs instead is killed after its threads' stacks are
//! printed (gdb), to show which lock or call it waits on.

mod common;

use std::time::{Duration, Instant};

use strom_proto::admin::admin_client::AdminClient;
use strom_proto::admin::{ElectLeadersRequest, ElectionType};

use common::cluster::load::{ProduceLoad, producer_config};
use common::cluster::{Cluster, FAST_FAILOVER, READY_TIMEOUT, create_topic};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
/// Per round, how long after the preferred-leader election SIGTERM comes:
/// the broker is then taking up its leaderships, or just has.
const DELAYS_MS: [u64; 6] = [0, 450, 150, 300, 50, 700];
/// Controlled shutdown (10 s at most), draining connections (10 s at most), flushing.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for a restarted broker to catch up and rejoin every ISR.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(240);
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);
const SEND_INTERVAL: Duration = Duration::from_millis(2);
/// The start of each of the three lines a controlled shutdown ends with.
const CONTROLLED_SHUTDOWN_LINE: &str = "controlled shutdown";

#[test]
fn a_broker_terminated_as_it_turns_ready_exits_promptly() {
    let mut settings = FAST_FAILOVER.to_vec();
    settings.push("min.insync.replicas=2");
    let mut cluster = Cluster::start(3, "shutdown", &settings);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, PARTITIONS, 3, None, &[("min.insync.replicas", "2")]);
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, Duration::from_secs(60));
    let load = ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, SEND_INTERVAL);
    load.wait_for_progress(PARTITIONS, 100, PROGRESS_TIMEOUT);

    // As the operator does once a restarted broker is back in the ISRs.
    let elect_preferred_leaders = |cluster: &Cluster, via: i32| {
        let mut admin = AdminClient::new(runtime.block_on(async { cluster.operator_channel(via) }));
        let request = ElectLeadersRequest { election_type: ElectionType::Preferred.into(), partitions: Vec::new() };
        if let Err(status) = runtime.block_on(admin.elect_leaders(request)) {
            eprintln!("preferred-leader election through broker {via}: {status}");
        }
    };

    for (round, delay) in DELAYS_MS.iter().enumerate() {
        let id = (round % cluster.len()) as i32;
        let other = (id + 1) % cluster.len() as i32;
        if let Err(e) = cluster.stop_within(id, EXIT_TIMEOUT) {
            cluster.fail(&format!("round {round}, stopping a settled broker: {e}"));
        }
        cluster.start_again(id);
        let started = Instant::now();
        while !cluster.is_ready(id) {
            if started.elapsed() > READY_TIMEOUT {
                cluster.fail(&format!("round {round}: broker {id} not ready after {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let ready_after = started.elapsed();
        elect_preferred_leaders(&cluster, other);
        // Not a wait for a condition: the moment of the signal is what varies.
        std::thread::sleep(Duration::from_millis(*delay));
        let ended_before = cluster.broker(id).log().matches(CONTROLLED_SHUTDOWN_LINE).count();
        let terminated = Instant::now();
        if let Err(e) = cluster.stop_within(id, EXIT_TIMEOUT) {
            cluster
                .fail(&format!("round {round}, SIGTERM {delay} ms after broker {id} turned ready and led again: {e}"));
        }
        let exited_after = terminated.elapsed();
        let ended = cluster.broker(id).log().matches(CONTROLLED_SHUTDOWN_LINE).count() - ended_before;
        if ended != 1 {
            cluster.fail(&format!(
                "round {round}: broker {id} exited, but its log says {ended} times how its controlled shutdown ended"
            ));
        }
        eprintln!(
            "round {round}: broker {id} ready {ready_after:.1?} after its start; SIGTERM {delay} ms after the \
             election; exited {exited_after:.1?} after SIGTERM"
        );
        cluster.restart(id);
        cluster.wait_for_full_isr(TOPIC, PARTITIONS, REJOIN_TIMEOUT);
        elect_preferred_leaders(&cluster, other);
        load.wait_for_progress(PARTITIONS, 20, PROGRESS_TIMEOUT);
    }
    let log = load.finish();
    eprintln!("{} sent, {} acknowledged, {} failed", log.sent.len(), log.acked.len(), log.failed.len());
}
