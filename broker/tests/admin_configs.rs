//! Config admin APIs as librdkafka's AdminClient (the rdkafka crate) and raw
//! requests use them, on a real broker process.
//!
//! Proves that the legacy AlterConfigs (ApiKey 33), sent by librdkafka's
//! `AlterConfigs`, replaces a topic's whole set of overrides (an override
//! left out goes back to its default) and that `validate_only` changes
//! nothing; and on the wire at v0–v2 (the rdkafka crate drops per-resource
//! errors) that errors are per resource — an unknown topic, an unknown
//! setting, a bad value, a null value, a name listed twice, a broker
//! resource — while the other resources of the same request are applied.
//! DescribeConfigs with a null or empty key list describes every config,
//! and the GROUP resource (type 32) has Kafka 4's group configs: defaults
//! for any group, overrides set and deleted by IncrementalAlterConfigs,
//! checked against Kafka's bounds, described with their source.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use futures::executor::block_on;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::{AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

use common::BrokerProcess;
use common::cluster::create_topic;
use common::wire::WireClient;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("create an AdminClient")
}

fn options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(30)))
}

/// A topic's overrides (entries whose source is the topic) as librdkafka describes them.
fn overrides(admin: &AdminClient<DefaultClientContext>, topic: &str) -> HashMap<String, String> {
    let described = block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options()))
        .expect("DescribeConfigs request");
    let resource = described.into_iter().next().expect("one resource").expect("DescribeConfigs of the topic");
    resource
        .entries
        .into_iter()
        .filter(|e| e.source == ConfigSource::DynamicTopic)
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

/// AlterConfigs through librdkafka; how many resources it answered. (The
/// rdkafka crate's future drops per-resource errors, so those are checked
/// on the wire below.)
fn alter(admin: &AdminClient<DefaultClientContext>, changes: &[AlterConfig], validate_only: bool) -> usize {
    let opts = options().validate_only(validate_only);
    block_on(admin.alter_configs(changes, &opts)).expect("AlterConfigs request").len()
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn librdkafka_alter_configs_replaces_a_topics_overrides_per_resource() {
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "replaced", 1, 1, None, &[("retention.ms", "86400000"), ("max.message.bytes", "200000")]);
    create_topic(&bootstrap, "other", 1, 1, None, &[]);
    let admin = admin(&bootstrap);
    assert_eq!(overrides(&admin, "replaced"), map(&[("retention.ms", "86400000"), ("max.message.bytes", "200000")]));

    // Replaces the whole set: retention.ms and max.message.bytes go back to their defaults.
    let set = AlterConfig::new(ResourceSpecifier::Topic("replaced")).set("segment.ms", "3600000");
    assert_eq!(alter(&admin, &[set], false), 1);
    assert_eq!(overrides(&admin, "replaced"), map(&[("segment.ms", "3600000")]));

    // validate_only: checked, nothing changes.
    let checked = AlterConfig::new(ResourceSpecifier::Topic("replaced")).set("retention.ms", "5000");
    assert_eq!(alter(&admin, &[checked], true), 1);
    assert_eq!(overrides(&admin, "replaced"), map(&[("segment.ms", "3600000")]));

    // An empty list removes every override.
    assert_eq!(alter(&admin, &[AlterConfig::new(ResourceSpecifier::Topic("replaced"))], false), 1);
    assert_eq!(overrides(&admin, "replaced"), HashMap::new());
}

fn resource(topic: &str, configs: &[(&str, Option<&str>)]) -> AlterConfigsResource {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    AlterConfigsResource::default().with_resource_type(2).with_resource_name(s(topic)).with_configs(
        configs.iter().map(|(k, v)| AlterableConfig::default().with_name(s(k)).with_value(v.map(s))).collect(),
    )
}

fn broker_resource(id: &str) -> AlterConfigsResource {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    AlterConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(s(id))
        .with_configs(vec![AlterableConfig::default().with_name(s("log.retention.ms")).with_value(Some(s("1000")))])
}

#[test]
fn alter_configs_on_the_wire_answers_errors_per_resource_and_applies_the_rest() {
    let broker = BrokerProcess::start();
    create_topic(&broker.bootstrap(), "wired", 1, 1, None, &[("retention.ms", "86400000")]);
    let mut client = WireClient::connect(broker.kafka_addr());
    let invalid_request = ResponseError::InvalidRequest.code();
    let invalid_config = ResponseError::InvalidConfig.code();
    for version in [0, 1, 2] {
        let segment_ms = format!("{}", 3_600_000 + i32::from(version));
        let request = AlterConfigsRequest::default().with_resources(vec![
            resource("missing", &[("retention.ms", Some("1000"))]),
            resource("wired", &[("no.such.setting", Some("1"))]),
            resource("wired", &[("retention.ms", Some("soon"))]),
            resource("wired", &[("retention.ms", None)]),
            resource("wired", &[("retention.ms", Some("1000")), ("retention.ms", Some("2000"))]),
            broker_resource("0"),
            resource("wired", &[("segment.ms", Some(&segment_ms))]),
        ]);
        let response = client.send(&request, version);
        let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(
            codes,
            vec![unknown, invalid_config, invalid_config, invalid_request, invalid_request, invalid_request, 0],
            "v{version}: {response:?}"
        );
        assert!(response.responses[4].error_message.as_ref().is_some_and(|m| m.contains("more than once")));
        assert_eq!(response.responses[6].resource_name.as_str(), "wired");
        // The good resource replaced the overrides: retention.ms is gone.
        let admin = admin(&broker.bootstrap());
        assert_eq!(overrides(&admin, "wired"), map(&[("segment.ms", &segment_ms)]), "v{version}");
    }
    // validate_only refuses a bad value as the real change would, and changes nothing.
    let bad = AlterConfigsRequest::default()
        .with_validate_only(true)
        .with_resources(vec![resource("wired", &[("retention.ms", Some("soon"))]), resource("wired", &[])]);
    let response = client.send(&bad, 2);
    let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![invalid_config, 0], "{response:?}");
    assert_eq!(overrides(&admin(&broker.bootstrap()), "wired"), map(&[("segment.ms", "3600002")]));
}

fn describe(client: &mut WireClient, resource_type: i8, name: &str, keys: Option<Vec<&str>>) -> DescribeConfigsResult {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(keys.map(|k| k.into_iter().map(s).collect())),
    ]);
    client.send(&request, 4).results.into_iter().next().expect("one result")
}

/// (name, value, source) of each described config.
fn described(result: &DescribeConfigsResult) -> Vec<(String, String, i8)> {
    result
        .configs
        .iter()
        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(), c.config_source))
        .collect()
}

fn alter_group(client: &mut WireClient, group: &str, ops: &[(&str, i8, &str)], validate_only: bool) -> (i16, String) {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let request = IncrementalAlterConfigsRequest::default().with_validate_only(validate_only).with_resources(vec![
        IncrementalResource::default().with_resource_type(32).with_resource_name(s(group)).with_configs(
            ops.iter()
                .map(|(k, op, v)| {
                    IncrementalConfig::default().with_name(s(k)).with_config_operation(*op).with_value(Some(s(v)))
                })
                .collect(),
        ),
    ]);
    let response = client.send(&request, 1);
    let r = response.responses.into_iter().next().expect("one response");
    (r.error_code, r.error_message.map(|m| m.to_string()).unwrap_or_default())
}

#[test]
fn describe_configs_with_an_empty_key_list_and_group_configs_as_kafka() {
    let broker = BrokerProcess::start();
    create_topic(&broker.bootstrap(), "listed", 1, 1, None, &[("retention.ms", "1000")]);
    let mut client = WireClient::connect(broker.kafka_addr());

    // Null and empty key lists both describe every config; a list only those named.
    let all = described(&describe(&mut client, 2, "listed", None));
    assert!(all.len() > 10, "{all:?}");
    assert_eq!(described(&describe(&mut client, 2, "listed", Some(vec![]))), all);
    assert_eq!(
        described(&describe(&mut client, 2, "listed", Some(vec!["retention.ms"]))),
        vec![("retention.ms".to_string(), "1000".to_string(), 1)]
    );

    // A group's configs: Kafka 4's defaults, for any group id.
    let (session, heartbeat) = ("consumer.session.timeout.ms", "consumer.heartbeat.interval.ms");
    let defaults = vec![(session.to_string(), "45000".to_string(), 5), (heartbeat.to_string(), "5000".to_string(), 5)];
    assert_eq!(described(&describe(&mut client, 32, "g1", Some(vec![]))), defaults);
    let admin = admin(&broker.bootstrap());
    let by_librdkafka = block_on(admin.describe_configs([&ResourceSpecifier::Group("g1")], &options()))
        .expect("DescribeConfigs request")
        .remove(0)
        .expect("librdkafka describes a group's configs");
    let entries = by_librdkafka.entry_map();
    assert_eq!(entries[session].value.as_deref(), Some("45000"));
    assert!(entries[session].is_default);

    // SET, stored and described with the group source; the other group is untouched.
    assert_eq!(alter_group(&mut client, "g1", &[(session, 0, "50000")], false).0, 0);
    let g1 = described(&describe(&mut client, 32, "g1", None));
    assert_eq!(g1[0], (session.to_string(), "50000".to_string(), 8));
    assert_eq!(described(&describe(&mut client, 32, "g2", None)), defaults);
    // Refused: out of Kafka's bounds, share/streams configs, lists ops; validate_only changes nothing.
    let invalid_config = ResponseError::InvalidConfig.code();
    let (code, message) = alter_group(&mut client, "g1", &[(session, 0, "1000")], false);
    assert_eq!(code, invalid_config, "{message}");
    assert!(message.contains("45000"), "{message}");
    assert_eq!(
        alter_group(&mut client, "g1", &[("share.record.lock.duration.ms", 0, "30000")], false).0,
        invalid_config
    );
    assert_eq!(alter_group(&mut client, "g1", &[(heartbeat, 2, "6000")], false).0, invalid_config);
    assert_eq!(alter_group(&mut client, "g1", &[(heartbeat, 0, "6000")], true).0, 0);
    assert_eq!(described(&describe(&mut client, 32, "g1", None)), g1);
    // DELETE: back to the default.
    assert_eq!(alter_group(&mut client, "g1", &[(session, 1, "")], false).0, 0);
    assert_eq!(described(&describe(&mut client, 32, "g1", None)), defaults);
    // An empty group id is refused.
    assert_eq!(describe(&mut client, 32, "", None).error_code, ResponseError::InvalidRequest.code());
}
