//! Two operator replicas never both act (Lease leader election), and an
//! operator killed mid-reconcile converges to the same state once restarted.

mod common;

use std::time::Duration;

use common::{ControlPlane, LocalBrokers, OperatorProcess, client, eventually, operator_admin, plane_with_namespace};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use strom_crds::{KafkaCluster, KafkaTopic};
use strom_operator::builders::{CONFIG_HASH_ANNOTATION, config_hash};
use strom_operator::leader_election::{Attempt, LeaseConfig, LeaseLock};

const WAIT: Duration = Duration::from_secs(60);

fn cluster(name: &str, replicas: i32) -> KafkaCluster {
    serde_json::from_value(json!({
        "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": { "name": name }, "spec": { "replicas": replicas },
    }))
    .expect("a KafkaCluster")
}

/// `strom_operator_leader` of an operator, from its /metrics.
fn leader_gauge(op: &OperatorProcess) -> Option<i64> {
    let metrics = op.http_get("/metrics")?;
    metrics.lines().find_map(|l| l.strip_prefix("strom_operator_leader ")).and_then(|v| v.trim().parse().ok())
}

/// The instances that reported Events about `object`.
async fn reporting_instances(client: &kube::Client, namespace: &str, object: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
    let mut instances: Vec<String> = list
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object))
        .filter_map(|e| e.reporting_instance)
        .collect();
    instances.sort();
    instances.dedup();
    instances
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_candidates_get_one_lease() {
    let plane = ControlPlane::start();
    let client = client(&plane).await;
    let lock = |identity: &str| {
        LeaseLock::new(
            client.clone(),
            LeaseConfig {
                namespace: "default".into(),
                name: "race".into(),
                identity: identity.into(),
                lease_duration: Duration::from_secs(3),
                renew_period: Duration::from_secs(1),
            },
        )
    };
    let candidates: Vec<LeaseLock> = (0..4).map(|i| lock(&format!("candidate-{i}"))).collect();
    for round in 0..3 {
        let attempts = futures::future::join_all(candidates.iter().map(|c| c.try_acquire_or_renew())).await;
        let held = attempts.iter().filter(|a| matches!(a, Ok(Attempt::Held))).count();
        assert_eq!(held, 1, "round {round}: exactly one candidate holds the lease: {attempts:?}");
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let holder = leases.get("race").await.expect("the lease").spec.and_then(|s| s.holder_identity).expect("a holder");
    // The holder keeps it while renewing; after it stops, another takes over once it expires.
    let holder_index: usize = holder.trim_start_matches("candidate-").parse().expect("a candidate's name");
    assert_eq!(candidates[holder_index].try_acquire_or_renew().await.expect("renew"), Attempt::Held);
    let other = lock("late-candidate");
    assert_eq!(other.try_acquire_or_renew().await.expect("attempt"), Attempt::HeldBy(holder.clone()));
    eventually("the expired lease to be taken over", Duration::from_secs(15), || async {
        matches!(other.try_acquire_or_renew().await, Ok(Attempt::Held)).then_some(())
    })
    .await;
    let new_holder = leases.get("race").await.expect("the lease").spec.and_then(|s| s.holder_identity);
    assert_eq!(new_holder.as_deref(), Some("late-candidate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operator_replicas_never_both_act() {
    let (plane, client) = plane_with_namespace("ha").await;
    let lease = ["--lease-duration-seconds", "4"];
    let mut a = OperatorProcess::start(&plane, &[&lease[..], &["--identity", "operator-a"]].concat());
    let mut b = OperatorProcess::start(&plane, &[&lease[..], &["--identity", "operator-b"]].concat());

    let leader_name = eventually("one operator to lead", WAIT, || async {
        match (leader_gauge(&a), leader_gauge(&b)) {
            (Some(1), Some(0)) => Some("operator-a"),
            (Some(0), Some(1)) => Some("operator-b"),
            (Some(1), Some(1)) => panic!("both operators lead"),
            _ => None,
        }
    })
    .await;
    let (leader, standby) = if leader_name == "operator-a" { (&mut a, &mut b) } else { (&mut b, &mut a) };
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let holder = leases.get("strom-operator").await.expect("the Lease").spec.and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some(leader_name));

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), "ha");
    clusters.create(&PostParams::default(), &cluster("first", 1)).await.expect("create cluster first");
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), "ha");
    eventually("the leader to create first's StatefulSet", WAIT, || async {
        statefulsets.get_opt("first").await.ok().flatten()
    })
    .await;
    for _ in 0..10 {
        assert_eq!((leader_gauge(leader), leader_gauge(standby)), (Some(1), Some(0)), "leadership is stable");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        reporting_instances(&client, "ha", "first").await,
        vec![leader_name.to_string()],
        "only the leader acted"
    );

    // The leader dies without releasing the Lease: the standby takes over once it expires.
    leader.kill();
    let standby_name = if leader_name == "operator-a" { "operator-b" } else { "operator-a" };
    eventually("the standby to lead", WAIT, || async { (leader_gauge(standby) == Some(1)).then_some(()) }).await;
    clusters.create(&PostParams::default(), &cluster("second", 1)).await.expect("create cluster second");
    eventually("the new leader to create second's StatefulSet", WAIT, || async {
        statefulsets.get_opt("second").await.ok().flatten()
    })
    .await;
    assert_eq!(reporting_instances(&client, "ha", "second").await, vec![standby_name.to_string()]);

    // The old leader comes back as a standby and does not act.
    leader.restart();
    eventually("the restarted operator to serve metrics", WAIT, || async { leader_gauge(leader) }).await;
    for _ in 0..10 {
        assert_eq!(
            (leader_gauge(leader), leader_gauge(standby)),
            (Some(0), Some(1)),
            "the restarted replica stands by"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(standby.running() && leader.running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_mid_reconcile_converges_after_restart() {
    let brokers = LocalBrokers::start(3);
    let (plane, client) = plane_with_namespace("restart").await;
    brokers.install_ca(&client, "restart", "events").await;
    let override_arg = format!("restart/events={}", brokers.admin_addresses());
    let mut operator = OperatorProcess::start(
        &plane,
        &["--no-leader-election", "--namespaces", "restart", "--admin-override", &override_arg],
    );
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), "restart");
    let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), "restart");
    clusters.create(&PostParams::default(), &cluster("events", 3)).await.expect("create the cluster");
    let names: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
    for name in &names {
        let topic: KafkaTopic = serde_json::from_value(json!({
            "apiVersion": "strom.dev/v1alpha1", "kind": "KafkaTopic",
            "metadata": { "name": name },
            "spec": { "clusterRef": "events", "partitions": 3, "replicationFactor": 3 },
        }))
        .expect("a KafkaTopic");
        topics.create(&PostParams::default(), &topic).await.expect("create a KafkaTopic");
    }
    // Kill it as soon as it has started working: some topics done, others not.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "restart");
    eventually("the operator to start reconciling", WAIT, || async {
        let any_topic = topics.list(&ListParams::default()).await.ok()?.items.iter().any(|t| t.status.is_some());
        (any_topic || config_maps.get_opt("events-config").await.ok().flatten().is_some()).then_some(())
    })
    .await;
    operator.kill();
    operator.restart();

    for name in &names {
        eventually(&format!("{name} to be Ready"), Duration::from_secs(120), || async {
            let t = topics.get_opt(name).await.ok().flatten()?;
            let s = t.status?;
            (s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True") && s.partitions.len() == 3)
                .then_some(())
        })
        .await;
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), "restart");
    let sts = statefulsets.get("events").await.expect("the StatefulSet");
    let cm = config_maps.get("events-config").await.expect("the ConfigMap");
    let hash =
        sts.spec.template.metadata.and_then(|m| m.annotations).and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned());
    assert_eq!(hash, Some(config_hash(&cm)));
    for name in &names {
        let t = topics.get(name).await.expect("the KafkaTopic");
        assert_eq!(
            t.status.and_then(|s| s.created_by_operator),
            Some(true),
            "{name}: the operator knows it created the topic, even across the kill"
        );
    }
    // Knowing that, deleting a KafkaTopic deletes its topic.
    topics.delete("t0", &DeleteParams::default()).await.expect("delete t0");
    eventually("t0 to be deleted", WAIT, || async { matches!(topics.get_opt("t0").await, Ok(None)).then_some(()) })
        .await;
    let admin = operator_admin(&client, "restart", "events", &brokers.admin_addresses()).await;
    eventually("t0 to be deleted from the cluster", WAIT, || async {
        admin.describe_topic("t0").await.ok()?.is_none().then_some(())
    })
    .await;
    for name in &names[1..] {
        let described = admin.describe_topic(name).await.expect("describe").expect("the topic exists");
        assert_eq!(described.partitions.len(), 3, "{name} exists once, with its 3 partitions");
    }
}
