//! Bad group requests at the wire level, against a broker process: what the
//! coordinator must refuse, and that a refused request changes nothing.
//!
//! Proves that OffsetCommit from a member id the group does not know is
//! refused with UNKNOWN_MEMBER_ID and from a stale generation with
//! ILLEGAL_GENERATION (as are Heartbeats), that neither changes the committed
//! offset while a valid commit does (metadata included); and that a JoinGroup
//! whose protocol type or protocols do not match the existing members' is
//! refused with INCONSISTENT_GROUP_PROTOCOL, leaving the group as it was.

mod common;

use common::BrokerProcess;
use common::wire::{
    WireClient, create_topic_ok, heartbeat, join_group, join_group_as_leader, offset_commit, offset_fetch, sync_group,
    wait_for_group_coordinator,
};
use kafka_protocol::error::ResponseError;

#[test]
fn offset_commit_from_unknown_member_or_stale_generation_is_refused() {
    let broker = BrokerProcess::start();
    let (topic, group) = ("ledger", "bookkeepers");
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, topic, 1, &[]);
    wait_for_group_coordinator(broker.kafka_addr(), group);

    let (member, generation) = join_group_as_leader(&mut client, group);
    let (error, assignment) = sync_group(&mut client, group, &member, generation, b"my-assignment");
    assert_eq!(error, 0, "SyncGroup of the leader");
    assert_eq!(&assignment[..], b"my-assignment", "the leader gets the assignment it gave itself");

    let commit = |client: &mut WireClient, member: &str, generation: i32, offset: i64| {
        offset_commit(client, group, (member, generation), topic, 0, (offset, &format!("offset {offset}")))
    };
    assert_eq!(commit(&mut client, &member, generation, 10), 0, "OffsetCommit from the member in its generation");
    assert_eq!(
        commit(&mut client, "consumer-not-a-member", generation, 11),
        ResponseError::UnknownMemberId.code(),
        "OffsetCommit from an unknown member id"
    );
    assert_eq!(
        commit(&mut client, &member, generation + 1, 12),
        ResponseError::IllegalGeneration.code(),
        "OffsetCommit from a generation the group has not reached"
    );
    assert_eq!(
        commit(&mut client, &member, generation - 1, 13),
        ResponseError::IllegalGeneration.code(),
        "OffsetCommit from an older generation"
    );
    assert_eq!(
        heartbeat(&mut client, group, "consumer-not-a-member", generation),
        ResponseError::UnknownMemberId.code(),
        "Heartbeat from an unknown member id"
    );
    assert_eq!(
        heartbeat(&mut client, group, &member, generation + 1),
        ResponseError::IllegalGeneration.code(),
        "Heartbeat from a wrong generation"
    );
    assert_eq!(heartbeat(&mut client, group, &member, generation), 0, "Heartbeat of the member");

    let stored = offset_fetch(&mut client, group, topic, 1);
    assert_eq!(stored[&0], (10, "offset 10".to_string()), "only the valid commit is stored, with its metadata");
}

#[test]
fn join_with_a_mismatched_protocol_is_refused_as_inconsistent_group_protocol() {
    let broker = BrokerProcess::start();
    let group = "mixed-protocols";
    wait_for_group_coordinator(broker.kafka_addr(), group);
    let mut leader = WireClient::connect(broker.kafka_addr());
    let (member, generation) = join_group_as_leader(&mut leader, group);
    assert_eq!(sync_group(&mut leader, group, &member, generation, b"").0, 0, "SyncGroup of the leader");

    let mut other = WireClient::connect(broker.kafka_addr());
    let refused = join_group(&mut other, group, "", "connect", &["default"]);
    assert_eq!(
        refused.error_code,
        ResponseError::InconsistentGroupProtocol.code(),
        "JoinGroup with protocol type connect into a consumer group"
    );
    let refused = join_group(&mut other, group, "", "consumer", &["not-range"]);
    assert_eq!(
        refused.error_code,
        ResponseError::InconsistentGroupProtocol.code(),
        "JoinGroup with no protocol in common with the members"
    );
    // The refusals did not disturb the group: its member is still in its generation.
    assert_eq!(heartbeat(&mut leader, group, &member, generation), 0, "Heartbeat of the member after the refusals");
}
