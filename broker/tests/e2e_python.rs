//! confluent-kafka (librdkafka, from PyPI) consumer groups against a broker
//! process, with the client program e2e/python/strom_client.py.
//!
//! Proves that three Python consumers in one group on a 6-partition topic get
//! disjoint assignments covering every partition and consume 30,000 records
//! exactly once; that a member killed with SIGKILL hands its partitions to
//! the others after its session timeout, and they resume at the committed
//! offsets; that a consumer which commits, stops and restarts resumes at its
//! committed offsets, which survive a SIGKILL of the broker; and that two
//! groups on one topic each see every record.
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) to have set up
//! the client; fails, saying so, when it has not.

mod common;

use common::consumer_groups;
use common::e2e::Client;

#[test]
fn three_python_consumers_share_partitions_consume_once_and_take_over_a_killed_member() {
    consumer_groups::group_shares_partitions_consumes_once_and_survives_a_killed_member(Client::Python);
}

#[test]
fn python_consumer_resumes_at_committed_offsets_after_restart_and_broker_kill() {
    consumer_groups::consumer_resumes_at_committed_offsets_across_a_broker_kill(Client::Python, false);
}

#[test]
fn two_python_groups_each_consume_every_record() {
    consumer_groups::two_groups_each_consume_every_record(Client::Python);
}
