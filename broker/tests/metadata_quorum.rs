//! `kafka-metadata-quorum.sh describe` (DescribeQuorum) against a 3-broker
//! cluster: Kafka's own tool, bootstrapped from a broker that is not the
//! active controller, names the active controller as the leader, the three
//! brokers as voters and a high watermark past the metadata written; with
//! `--replication` it lists the leader and both followers; after the active
//! controller is killed, the tool against a survivor names the new active
//! controller with a higher epoch. A broker that does not vote (a learner)
//! is an observer.
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) for the tool.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{Cluster, FAST_FAILOVER, wait_until};
use common::e2e::{E2eTools, run_with_input};

const QUORUM_COMMAND: &str = "org.apache.kafka.tools.MetadataQuorumCommand";
const TIMEOUT: Duration = Duration::from_secs(120);
/// One run of the tool (its admin client gives up after 60 s).
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs the tool against `bootstrap` with `args` after `describe`:
/// `Ok(stdout)` when it exits 0, `Err(everything)` otherwise.
fn describe(tools: &E2eTools, bootstrap: &str, args: &[&str]) -> Result<String, String> {
    let mut command = tools.java_main(QUORUM_COMMAND);
    command.args(["--bootstrap-server", bootstrap, "describe"]).args(args);
    let (status, stdout, stderr) = run_with_input(&mut command, "", TOOL_TIMEOUT);
    if status.success() { Ok(stdout) } else { Err(format!("exited with {status}\n{stdout}\n{stderr}")) }
}

/// `--status` output as `Key -> value` (`LeaderId: 1` lines).
fn status(tools: &E2eTools, bootstrap: &str) -> Result<BTreeMap<String, String>, String> {
    let out = describe(tools, bootstrap, &["--status"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn number(status: &BTreeMap<String, String>, key: &str) -> i64 {
    let value = status.get(key).unwrap_or_else(|| panic!("no {key} in {status:?}"));
    value.parse().unwrap_or_else(|e| panic!("{key} {value:?}: {e}"))
}

/// The ids in a `CurrentVoters: [{"id": 0, ...}, ...]` value, sorted.
fn ids(list: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = list
        .split("\"id\": ")
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().unwrap_or_else(|e| panic!("id in {list}: {e}"))
        })
        .collect();
    ids.sort();
    ids
}

/// Waits until the tool against `bootstrap` names as leader the active
/// controller the running brokers (not in `exclude`) agree on. Asked again
/// each time: while no leader is known, Metadata names the lowest live
/// broker instead (as Kafka names some broker), so one agreement alone can
/// be that stand-in.
fn status_naming_the_controller(
    cluster: &Cluster,
    tools: &E2eTools,
    bootstrap: &str,
    exclude: &[i32],
) -> (BTreeMap<String, String>, i32) {
    wait_until("the tool to name the active controller the brokers agree on", TIMEOUT, || {
        let s = status(tools, bootstrap).map_err(|e| eprintln!("not yet: {e}")).ok()?;
        let agreed = cluster.active_controller_excluding(exclude)?;
        let named = number(&s, "LeaderId") == i64::from(agreed) && !exclude.contains(&agreed);
        if !named {
            eprintln!("not yet: the brokers agree on {agreed}, the tool says {s:?}");
        }
        named.then_some((s, agreed))
    })
}

#[test]
fn kafka_metadata_quorum_describes_the_controller_quorum_through_a_failover() {
    let tools = E2eTools::load();
    let mut cluster = Cluster::start(3, "metadata-quorum", FAST_FAILOVER);
    let controller = cluster.wait_for_controller(&[], TIMEOUT);
    let other = (0..3).find(|id| *id != controller).expect("a broker that is not the controller");
    let bootstrap = cluster.broker(other).kafka_addr().to_string();

    let (before, controller) = status_naming_the_controller(&cluster, &tools, &bootstrap, &[]);
    assert!(number(&before, "LeaderEpoch") > 0, "{before:?}");
    assert!(number(&before, "HighWatermark") > 0, "three registrations were committed: {before:?}");
    assert_eq!(ids(&before["CurrentVoters"]), [0, 1, 2], "{before:?}");
    assert_eq!(ids(&before["CurrentObservers"]), Vec::<i64>::new(), "{before:?}");
    assert!(before["CurrentVoters"].contains("INTERNAL://"), "v2 names each voter's endpoint: {before:?}");

    let replication = describe(&tools, &bootstrap, &["--replication"]).unwrap_or_else(|e| cluster.fail(&e));
    eprintln!("--status:\n{before:#?}\n--replication:\n{replication}");
    let rows: Vec<Vec<&str>> = replication.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    let mut roles: Vec<(i64, &str)> =
        rows.iter().map(|r| (r[0].parse().expect("NodeId"), *r.last().expect("Status"))).collect();
    roles.sort();
    let expected: Vec<(i64, &str)> =
        (0..3).map(|id| (i64::from(id), if id == controller { "Leader" } else { "Follower" })).collect();
    assert_eq!(roles, expected, "{replication}");
    let leader_row = rows.iter().find(|r| r.last() == Some(&"Leader")).expect("a Leader row");
    let leader_end: i64 = leader_row[2].parse().expect("LogEndOffset");
    assert!(leader_end >= number(&before, "HighWatermark"), "the leader holds what is committed: {replication}");

    cluster.kill(controller);
    let survivor = (0..3).find(|id| *id != controller).expect("a survivor");
    let survivor_bootstrap = cluster.broker(survivor).kafka_addr().to_string();
    let (after, new_controller) = status_naming_the_controller(&cluster, &tools, &survivor_bootstrap, &[controller]);
    eprintln!("--status after the failover:\n{after:#?}");
    assert_ne!(new_controller, controller);
    assert!(
        number(&after, "LeaderEpoch") > number(&before, "LeaderEpoch"),
        "a new term: before {before:?}, after {after:?}"
    );
    assert_eq!(ids(&after["CurrentVoters"]), [0, 1, 2], "the killed voter is still a voter: {after:?}");
}

#[test]
fn a_broker_that_does_not_vote_is_an_observer() {
    let tools = E2eTools::load();
    let cluster = Cluster::start_with_voters(2, 1, "metadata-quorum-observer", FAST_FAILOVER);
    // Asked of the learner: it asks the active controller, the one voter.
    let learner = cluster.broker(1).kafka_addr().to_string();
    let (status, leader) = status_naming_the_controller(&cluster, &tools, &learner, &[]);
    assert_eq!(leader, 0, "the one voter leads: {status:?}");
    assert_eq!(ids(&status["CurrentVoters"]), [0], "{status:?}");
    assert_eq!(ids(&status["CurrentObservers"]), [1], "{status:?}");

    let replication = describe(&tools, &learner, &["--replication"]).unwrap_or_else(|e| cluster.fail(&e));
    let mut roles: Vec<(String, String)> = replication
        .lines()
        .skip(1)
        .filter_map(|l| {
            let row: Vec<&str> = l.split_whitespace().collect();
            Some((row.first()?.to_string(), row.last()?.to_string()))
        })
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [("0".to_string(), "Leader".to_string()), ("1".to_string(), "Observer".to_string())],
        "{replication}"
    );
}
