//! Changing the controller voters after bootstrap (`ChangeControllerVoters`
//! on the Admin API): a 5-broker cluster bootstrapped with voters {0,1,2},
//! under an idempotent acks=all load, grows to 5 voters, loses the disk of a
//! voter that was added after bootstrap (it must rejoin, not start as a
//! learner with an empty log), and shrinks back to 3 voters that leave out
//! the active controller's node (leadership must move). The removed
//! controller's node, wiped too, comes back as a learner instead of
//! bootstrapping a quorum of its own.
//!
//! Each call is made to the active controller, as the operator: another
//! broker refuses it with FAILED_PRECONDITION naming the active controller
//! (a voter change is never forwarded, so no broker's certificate stands
//! for the operator's); a broker's certificate, an even set and an
//! unregistered broker are refused with the reason. Afterwards
//! no broker panicked and every acknowledged record is read back exactly
//! once and in order.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use strom_broker::tls::Identity;
use strom_proto::admin::admin_client::AdminClient;
use strom_proto::admin::{ChangeControllerVotersRequest, ChangeControllerVotersResponse};

use common::cluster::load::{ProduceLoad, producer_config};
use common::cluster::{Cluster, FAST_FAILOVER, create_topic, verify_history_and_replicas, wait_until};
use common::metrics::Scrape;

const TOPIC: &str = "ledger";
const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(90);
const SEND_INTERVAL: Duration = Duration::from_millis(2);

/// Calls the Admin API of the brokers as some identity.
struct Admin {
    runtime: tokio::runtime::Runtime,
}

impl Admin {
    fn new() -> Admin {
        Admin { runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime") }
    }

    /// One ChangeControllerVoters call to broker `via`, as `identity`.
    fn change(
        &self,
        cluster: &Cluster,
        via: i32,
        identity: Identity,
        voters: &[i32],
    ) -> Result<ChangeControllerVotersResponse, tonic::Status> {
        self.runtime.block_on(async {
            let channel = cluster.internal_channel(via, Some(&cluster.tls_as(identity)));
            let mut client = AdminClient::new(channel);
            client
                .change_controller_voters(ChangeControllerVotersRequest { voters: voters.to_vec() })
                .await
                .map(|r| r.into_inner())
        })
    }

    /// Calls the active controller as the operator until the voters are
    /// `voters`; returns how many calls took a step. Brokers outside the
    /// wanted set are not asked who the controller is: a removed active
    /// controller's node is no member until a call makes it a learner
    /// again, and knows no leader.
    fn change_until_done(&self, cluster: &Cluster, voters: &[i32]) -> usize {
        let mut steps = 0;
        let mut last = String::new();
        let outside: Vec<i32> = cluster.brokers().iter().map(|b| b.id).filter(|id| !voters.contains(id)).collect();
        wait_until(&format!("the controller voters to become {voters:?}"), TIMEOUT, || {
            let via = cluster.active_controller_excluding(&outside)?;
            match self.change(cluster, via, Identity::Operator, voters) {
                Ok(r) if r.error_code != 0 => cluster.fail(&format!("voters {voters:?} refused: {}", r.error_message)),
                Ok(r) => {
                    if r.detail != last {
                        eprintln!(
                            "[test] via broker {via}: voters {:?}, learners {:?}: {}",
                            r.voters, r.learners, r.detail
                        );
                        last = r.detail.clone();
                    }
                    if (r.detail.starts_with("made broker") && r.detail.ends_with("a voter"))
                        || r.detail.starts_with("removed voter")
                    {
                        steps += 1;
                    }
                    (r.done && r.voters == voters).then_some(())
                }
                // No controller for a moment (an election after the leader left): ask again.
                Err(status) => {
                    eprintln!("[test] via broker {via}: {status}");
                    None
                }
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        steps
    }
}

#[test]
fn the_controller_voters_grow_and_shrink_under_load_without_losing_records() {
    let mut settings = FAST_FAILOVER.to_vec();
    settings.push("min.insync.replicas=2");
    let mut cluster = Cluster::start_with_voters(5, 3, "voters-changed", &settings);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, PARTITIONS, 3, None, &[("min.insync.replicas", "2")]);
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, TIMEOUT);
    let admin = Admin::new();
    assert_voters(&cluster, &[0, 1, 2]);

    // Refusals, each with its reason; nothing changes.
    let as_broker = admin.change(&cluster, 1, Identity::Broker(1), &[0, 1, 2, 3, 4]);
    match as_broker {
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            assert!(status.message().contains("operator only"), "{}", status.message())
        }
        other => cluster.fail(&format!("a broker's certificate changed the voters: {other:?}")),
    }
    let controller = cluster.wait_for_controller(&[], TIMEOUT);
    let other = (0..3).find(|id| *id != controller).expect("a broker that is not the controller");
    match admin.change(&cluster, other, Identity::Operator, &[0, 1, 2, 3, 4]) {
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            let named = format!("broker {controller} is");
            assert!(status.message().contains(&named), "{}", status.message())
        }
        other => cluster.fail(&format!("a broker that is not the controller took a voter change: {other:?}")),
    }
    let even = admin.change(&cluster, controller, Identity::Operator, &[0, 1, 2, 3]).expect("ChangeControllerVoters");
    assert_eq!(even.error_code, i32::from(ResponseError::InvalidRequest.code()), "{even:?}");
    assert!(even.error_message.contains("an odd number from 1 to 7"), "{}", even.error_message);
    let unknown = admin.change(&cluster, controller, Identity::Operator, &[0, 1, 9]).expect("ChangeControllerVoters");
    assert!(unknown.error_message.contains("brokers [9] are not registered"), "{}", unknown.error_message);
    assert_voters(&cluster, &[0, 1, 2]);

    let load = ProduceLoad::start(producer_config(&bootstrap), TOPIC, PARTITIONS, SEND_INTERVAL);
    load.wait_for_progress(PARTITIONS, 200, TIMEOUT);

    // 3 -> 5: two membership changes, one per added voter.
    let steps = admin.change_until_done(&cluster, &[0, 1, 2, 3, 4]);
    assert!((1..=2).contains(&steps), "3 -> 5 voters took {steps} changes; at most one per added voter");
    assert_voters(&cluster, &[0, 1, 2, 3, 4]);
    load.wait_for_progress(PARTITIONS, 100, TIMEOUT);

    // A voter added after bootstrap loses its disk: it is no configured voter,
    // yet it must rejoin through the membership changes, not vote with an empty log.
    let controller = cluster.wait_for_controller(&[], TIMEOUT);
    let added = if controller == 4 { 3 } else { 4 };
    wipe_and_restart(&mut cluster, added);
    if !cluster.broker(added).log().contains("rejoining: removed from the voters") {
        cluster.fail(&format!("broker {added}, a voter added after bootstrap, came back empty but did not rejoin"));
    }
    wait_for_metric(&cluster, added, 1.0);
    assert_voters(&cluster, &[0, 1, 2, 3, 4]);
    load.wait_for_progress(PARTITIONS, 100, TIMEOUT);

    // 5 -> 3, leaving out the active controller's node: it is removed last and steps down.
    let controller = cluster.wait_for_controller(&[], TIMEOUT);
    let target: Vec<i32> = (0..5).filter(|id| *id != controller).take(3).collect();
    let steps = admin.change_until_done(&cluster, &target);
    assert!((1..=2).contains(&steps), "5 -> 3 voters took {steps} changes; at most one per removed voter");
    // The old controller steps down once the membership without it is applied; a voter is elected.
    let successor = wait_until("a voter of the new set to lead the quorum", TIMEOUT, || {
        cluster.active_controller_excluding(&[]).filter(|c| target.contains(c))
    });
    assert_voters(&cluster, &target);
    load.wait_for_progress(PARTITIONS, 100, TIMEOUT);

    // The removed controller's node loses its disk: whether or not it is a
    // configured voter, it takes the log as a learner and bootstraps nothing.
    wipe_and_restart(&mut cluster, controller);
    let log = cluster.broker(controller).log();
    if !log.contains("is no controller voter") || log.contains("rejoining: removed from the voters") {
        cluster.fail(&format!("broker {controller}, removed from the voters, did not come back as a learner"));
    }
    assert_voters(&cluster, &target);
    load.wait_for_progress(PARTITIONS, 100, TIMEOUT);

    let log = load.finish();
    let summary = verify_history_and_replicas(&cluster, TOPIC, PARTITIONS, &log);
    for b in cluster.brokers() {
        if b.log().contains("panicked") {
            cluster.fail(&format!("broker {} panicked", b.id));
        }
    }
    eprintln!(
        "voters 3 -> 5 -> {target:?} (broker {controller}, the active controller, removed; {successor} leads); \
         {} sent, {} acknowledged, {} failed, {} read back",
        summary.sent,
        summary.acked,
        log.failed.len(),
        summary.consumed
    );
}

/// Kills broker `id`, deletes its data dir and starts it again; waits until it is ready.
fn wipe_and_restart(cluster: &mut Cluster, id: i32) {
    cluster.kill(id);
    let dir = cluster.broker(id).data_dir().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("delete {}: {e}", dir.display()));
    eprintln!("[test] deleted broker {id}'s data dir {}", dir.display());
    cluster.restart(id);
    cluster.wait_for_full_isr(TOPIC, PARTITIONS, TIMEOUT);
}

/// Waits until every broker's `strom_controller_voter` says it votes exactly when it is in `voters`.
fn assert_voters(cluster: &Cluster, voters: &[i32]) {
    let voters: BTreeSet<i32> = voters.iter().copied().collect();
    for b in cluster.brokers() {
        wait_for_metric(cluster, b.id, if voters.contains(&b.id) { 1.0 } else { 0.0 });
    }
}

fn wait_for_metric(cluster: &Cluster, id: i32, expected: f64) {
    wait_until(&format!("broker {id}'s strom_controller_voter to be {expected}"), TIMEOUT, || {
        let scrape = Scrape::fetch(cluster.broker(id).http_addr());
        (scrape.value("strom_controller_voter", &[]) == Some(expected)).then_some(())
    });
}
