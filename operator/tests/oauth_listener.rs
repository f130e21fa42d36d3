//! A KafkaCluster with an `oauth` listener, end to end: the real control
//! plane, the pod runner running the broker pod as a local `strom-broker`
//! process, the operator as a process, an identity provider publishing its
//! key set over HTTPS with a certificate of its own CA (given to the cluster
//! as `jwksCaSecret`), and librdkafka (e2e/python/strom_client.py) sending
//! bearer tokens over SASL OAUTHBEARER.
//!
//! A token of the issuer for the super user `alice` writes; a token signed
//! by another key, one for another audience and an expired one are refused
//! at authentication; a valid token for `bob` authenticates but may not
//! write (the principal is the `sub` claim).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::kafka_tools::python_client;
use common::oauth::{Issuer, JwksEndpoint};
use common::pod_runner::PodRunner;
use common::{OperatorProcess, create_ready_cluster, create_ready_topic, eventually, plane_with_nodes};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};

const NS: &str = "oauth";
const CLUSTER: &str = "events";
const WAIT: Duration = Duration::from_secs(180);
const OAUTH_PORT: u16 = 9097;
const ISSUER: &str = "https://idp.test";

/// Produces one record through librdkafka with `token`: whether it
/// succeeded, and its output.
fn produce_with(bootstrap: &str, token: &str) -> (bool, String) {
    let config = json!({
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "strom.oauth.token": token,
        "message.timeout.ms": 15000,
    })
    .to_string();
    let mut command = python_client();
    command.args(["produce", "--bootstrap", bootstrap, "--topic", "orders", "--count", "1", "--config", &config]);
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    common::kafka_tools::finish(child, None, Duration::from_secs(120))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_listener_takes_the_issuers_tokens_and_refuses_others() {
    let issuer = Issuer::new(ISSUER);
    let endpoint = JwksEndpoint::start(issuer.jwks());
    let (plane, client) = plane_with_nodes(NS).await;
    let runner = PodRunner::start(&plane, NS, CLUSTER);
    let _operator = OperatorProcess::for_runner(&plane, &runner, NS, CLUSTER, 1, &["--resync-seconds", "2"]);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let ca_secret = Secret {
        metadata: ObjectMeta { name: Some("idp-ca".into()), ..ObjectMeta::default() },
        data: Some([("ca.crt".to_string(), ByteString(endpoint.ca.clone().into_bytes()))].into()),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &ca_secret).await.expect("create the identity provider's CA Secret");

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "replicas": 1,
        "storage": { "size": "1Gi" },
        "authorization": { "type": "simple", "superUsers": ["alice"] },
        "listeners": { "additional": [{ "name": "oauth", "port": OAUTH_PORT, "authentication": {
            "type": "oauth", "issuer": ISSUER, "jwksUri": endpoint.url(), "audience": "kafka",
            "jwksCaSecret": { "name": "idp-ca", "key": "ca.crt" },
        }}]},
    });
    create_ready_cluster(&clusters, CLUSTER, spec, WAIT).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let file = config_maps.get(&format!("{CLUSTER}-config")).await.expect("the broker ConfigMap");
    let file = file.data.expect("data").remove("strom.yaml").expect("the broker config file");
    assert!(file.contains("\"listener.name.oauth.sasl.enabled.mechanisms\": \"OAUTHBEARER\""), "{file}");
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), NS);
    let topic = json!({ "clusterRef": CLUSTER, "partitions": 1, "replicationFactor": 1 });
    create_ready_topic(&topics, "orders", topic, WAIT).await;

    let bootstrap = format!("{}:{OAUTH_PORT}", runner.pod_ip(0));
    // The broker fetches the key set in the background after it starts.
    let alice = issuer.token("alice", "kafka", 3600);
    let out = eventually("alice's token to write through the oauth listener", WAIT, || {
        let (bootstrap, alice) = (bootstrap.clone(), alice.clone());
        async move {
            let (ok, out) = tokio::task::spawn_blocking(move || produce_with(&bootstrap, &alice)).await.ok()?;
            (ok && out.contains(r#"{"count":1,"event":"produced"}"#)).then_some(out)
        }
    })
    .await;
    eprintln!("alice: {out}");

    let forger = Issuer::new(ISSUER);
    for (what, token) in [
        ("a token signed by a key the issuer does not publish", forger.token("alice", "kafka", 3600)),
        ("a token for another audience", issuer.token("alice", "other", 3600)),
        ("an expired token", issuer.token("alice", "kafka", -600)),
    ] {
        let (ok, out) = produce_with(&bootstrap, &token);
        assert!(!ok && out.contains("Authentication failed"), "{what} is refused: {out}");
    }
    let (ok, out) = produce_with(&bootstrap, &issuer.token("bob", "kafka", 3600));
    assert!(!ok && out.contains("TOPIC_AUTHORIZATION_FAILED"), "bob authenticates but may not write: {out}");
}
