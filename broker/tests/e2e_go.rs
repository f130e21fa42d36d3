//! franz-go (github.com/twmb/franz-go, from the Go module proxy) producers
//! and consumer groups against a broker process, with the client program
//! e2e/go.
//!
//! Proves that franz-go's keyed, idempotent (its default) producer writes
//! every record with a producer id, each key to one partition in order; that
//! three franz-go members of one group (cooperative-sticky balancing) on a
//! 6-partition topic get disjoint assignments covering every partition and
//! consume 30,000 records exactly once; that a member killed with SIGKILL
//! hands its partitions to the others, who resume at the committed offsets;
//! that a consumer which commits, stops and restarts resumes at its committed
//! offsets, which survive a SIGKILL of the broker; and that two groups on one
//! topic each see every record.
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) to have built the
//! program; fails, saying so, when it has not.

mod common;

use common::consumer_groups;
use common::e2e::Client;

#[test]
fn three_go_consumers_share_partitions_consume_once_and_take_over_a_killed_member() {
    consumer_groups::group_shares_partitions_consumes_once_and_survives_a_killed_member(Client::Go);
}

#[test]
fn go_idempotent_producer_and_consumer_resume_at_committed_offsets_after_broker_kill() {
    consumer_groups::consumer_resumes_at_committed_offsets_across_a_broker_kill(Client::Go, true);
}

#[test]
fn two_go_groups_each_consume_every_record() {
    consumer_groups::two_groups_each_consume_every_record(Client::Go);
}
