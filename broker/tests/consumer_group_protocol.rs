//! KIP-848 consumer groups at the wire level, against a broker process.
//!
//! Proves that ConsumerGroupHeartbeat v0 names a joining member and assigns
//! it every partition of its subscription by topic id, with the configured
//! heartbeat interval; that OffsetCommit from a consumer-protocol member is
//! accepted at its current epoch only (STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID
//! otherwise) and a refused commit changes nothing, as is OffsetFetch v9; that a wrong epoch is
//! FENCED_MEMBER_EPOCH, a regex join is assigned the matching topic (which
//! Metadata then finds by id), a regex that does not compile
//! INVALID_REGULAR_EXPRESSION and a v1 join without a member id
//! INVALID_REQUEST, each naming the field; that a group converts only when
//! it can (a classic JoinGroup with a malformed subscription to a consumer
//! group is INCONSISTENT_GROUP_PROTOCOL, a heartbeat to a classic group whose
//! members' subscriptions are malformed GROUP_ID_NOT_FOUND); that
//! ConsumerGroupDescribe and ListGroups v5 show the group, and that a leave
//! (epoch -1) empties it at once.

mod common;

use common::BrokerProcess;
use common::wire::{
    WireClient, create_topic_ok, join_group, join_group_as_leader, offset_commit, offset_fetch,
    wait_for_group_coordinator,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
    ListGroupsRequest, MetadataRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn heartbeat(
    client: &mut WireClient,
    version: i16,
    group: &str,
    member: &str,
    epoch: i32,
    edit: impl FnOnce(ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 });
    client.send(&edit(request), version)
}

fn join(
    client: &mut WireClient,
    version: i16,
    group: &str,
    member: &str,
    topic: &str,
) -> ConsumerGroupHeartbeatResponse {
    heartbeat(client, version, group, member, 0, |r| {
        r.with_subscribed_topic_names(Some(vec![TopicName(s(topic))])).with_topic_partitions(Some(vec![]))
    })
}

#[test]
fn consumer_group_heartbeat_assigns_checks_epochs_and_keeps_group_types_apart() {
    let broker = BrokerProcess::start_with(&["group.consumer.heartbeat.interval.ms=1234"]);
    let (topic, group) = ("payments", "payers");
    let mut client = WireClient::connect(broker.kafka_addr());
    create_topic_ok(&mut client, topic, 2, &[]);
    wait_for_group_coordinator(broker.kafka_addr(), group);
    let metadata = client.send(
        &MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s(topic)))),
        ])),
        12,
    );
    let topic_id = metadata.topics[0].topic_id;
    // A member knows an assigned topic by id only (a regex subscriber): the
    // Java client asks for it by id with the name "".
    let by_id = client.send(
        &MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_topic_id(topic_id)
                .with_name(Some(TopicName(s("")))),
        ])),
        12,
    );
    assert_eq!(by_id.topics.len(), 1);
    assert_eq!(by_id.topics[0].error_code, 0, "Metadata by topic id");
    assert_eq!(by_id.topics[0].name.as_ref().map(|n| n.0.as_str()), Some(topic));

    // v0: the broker names the member; it gets both partitions by topic id.
    let joined = join(&mut client, 0, group, "", topic);
    assert_eq!(joined.error_code, 0, "join: {:?}", joined.error_message);
    let member = joined.member_id.clone().expect("a member id").to_string();
    assert!(!member.is_empty());
    assert_eq!(joined.member_epoch, 1);
    assert_eq!(joined.heartbeat_interval_ms, 1234, "group.consumer.heartbeat.interval.ms");
    let assignment = joined.assignment.expect("an assignment");
    assert_eq!(assignment.topic_partitions.len(), 1);
    assert_eq!(assignment.topic_partitions[0].topic_id, topic_id);
    assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1]);

    // OffsetCommit: the current epoch only.
    let commit = |client: &mut WireClient, member: &str, epoch: i32, offset: i64| {
        offset_commit(client, group, (member, epoch), topic, 0, (offset, "m"))
    };
    assert_eq!(commit(&mut client, &member, 1, 10), 0, "commit at the member's epoch");
    assert_eq!(commit(&mut client, &member, 0, 11), ResponseError::StaleMemberEpoch.code(), "stale epoch");
    assert_eq!(commit(&mut client, "stranger", 1, 12), ResponseError::UnknownMemberId.code(), "unknown member");
    assert_eq!(offset_fetch(&mut client, group, topic, 2)[&0].0, 10, "refused commits change nothing");
    let fetch = |client: &mut WireClient, member: &str, epoch: i32| {
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_member_id(Some(s(member)))
                .with_member_epoch(epoch)
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default().with_name(TopicName(s(topic))).with_partition_indexes(vec![0]),
                ])),
        ]);
        let group = client.send(&request, 9).groups.remove(0);
        (group.error_code, group.topics.first().map(|t| t.partitions[0].committed_offset))
    };
    assert_eq!(fetch(&mut client, &member, 1), (0, Some(10)), "OffsetFetch v9 at the member's epoch");
    assert_eq!(
        fetch(&mut client, &member, 0).0,
        ResponseError::StaleMemberEpoch.code(),
        "OffsetFetch at a stale epoch"
    );
    assert_eq!(fetch(&mut client, "stranger", 1).0, ResponseError::UnknownMemberId.code(), "OffsetFetch of a stranger");

    let fenced = heartbeat(&mut client, 1, group, &member, 7, |r| r);
    assert_eq!(fenced.error_code, ResponseError::FencedMemberEpoch.code());
    let regex = heartbeat(&mut client, 1, group, "m-regex", 0, |r| r.with_subscribed_topic_regex(Some(s("pay.*("))));
    assert_eq!(regex.error_code, ResponseError::InvalidRegularExpression.code());
    let message = regex.error_message.map(|m| m.to_string()).unwrap_or_default();
    assert!(message.contains("SubscribedTopicRegex \"pay.*(\""), "{message}");
    let regex_group = "regex-payers";
    wait_for_group_coordinator(broker.kafka_addr(), regex_group);
    let by_regex = heartbeat(&mut client, 1, regex_group, "m-regex", 0, |r| {
        r.with_subscribed_topic_regex(Some(s("pay.*"))).with_topic_partitions(Some(vec![]))
    });
    assert_eq!(by_regex.error_code, 0, "regex join: {:?}", by_regex.error_message);
    let assigned = by_regex.assignment.expect("an assignment").topic_partitions;
    assert_eq!(
        (assigned[0].topic_id, assigned[0].partitions.clone()),
        (topic_id, vec![0, 1]),
        "pay.* matches payments"
    );
    let nameless = join(&mut client, 1, group, "", topic);
    assert_eq!(nameless.error_code, ResponseError::InvalidRequest.code(), "v1 joins name themselves");

    // Malformed subscriptions: a consumer group refuses such classic members,
    // and a classic group of such members is not upgraded.
    let classic = join_group(&mut client, group, "", "consumer", &["range"]);
    assert_eq!(classic.error_code, ResponseError::InconsistentGroupProtocol.code());
    let classic_group = "classic-payers";
    wait_for_group_coordinator(broker.kafka_addr(), classic_group);
    join_group_as_leader(&mut client, classic_group);
    let wrong = join(&mut client, 1, classic_group, "m-1", topic);
    assert_eq!(wrong.error_code, ResponseError::GroupIdNotFound.code(), "{:?}", wrong.error_message);

    let describe = |client: &mut WireClient| {
        client.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]), 0).groups
    };
    let described = describe(&mut client);
    assert_eq!(described[0].error_code, 0);
    assert_eq!(described[0].group_state.as_str(), "Stable");
    assert_eq!(described[0].assignor_name.as_str(), "uniform");
    assert_eq!(described[0].members.len(), 1);
    assert_eq!(described[0].members[0].member_id.as_str(), member);
    assert_eq!(described[0].members[0].assignment.topic_partitions[0].topic_name.0.as_str(), topic);
    let listed = client.send(&ListGroupsRequest::default(), 5).groups;
    let ours = listed.iter().find(|g| g.group_id.0.as_str() == group).expect("listed");
    assert_eq!((ours.group_type.as_str(), ours.group_state.as_str()), ("consumer", "Stable"));
    let theirs = listed.iter().find(|g| g.group_id.0.as_str() == classic_group).expect("listed");
    assert_eq!(theirs.group_type.as_str(), "classic");

    let left = heartbeat(&mut client, 0, group, &member, -1, |r| r);
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let described = describe(&mut client);
    assert_eq!(described[0].group_state.as_str(), "Empty");
    assert!(described[0].members.is_empty());
}
