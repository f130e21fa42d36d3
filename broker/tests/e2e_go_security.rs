//! franz-go (the e2e/go program) over each secured listener a Kafka user
//! configures: SASL_PLAINTEXT with PLAIN, SASL_SSL with SCRAM-SHA-512 and SSL
//! with a client certificate.
//!
//! Proves that a Go application configured as it would be for Apache Kafka
//! creates its topic (admin), produces, consumes every record in a group,
//! commits and reads its commit back on each of them; and that a wrong
//! password and a certificate from another CA are refused.
//!
//! Needs `bash scripts/e2e-deps.sh` (run by `bash .ci/run`) to have built the
//! program; fails, saying so, when it has not.

mod common;

use std::num::NonZeroU32;
use std::process::Command;
use std::time::{Duration, Instant};

use common::e2e::E2eTools;
use common::security::{Pki, start};
use common::wire::WireClient;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    alter_user_scram_credentials_request::ScramCredentialUpsertion,
};
use kafka_protocol::protocol::StrBytes;

const RECORDS: usize = 200;
const RUN_TIMEOUT: Duration = Duration::from_secs(150);

/// Registers a SCRAM-SHA-512 credential for `user` as a client does
/// (AlterUserScramCredentials carries the salted password, never the password).
fn add_scram_sha_512_user(client: &mut WireClient, user: &str, password: &str) {
    const ITERATIONS: u32 = 4096;
    let salt = b"strom-e2e-go-salt".to_vec();
    let mut salted = vec![0u8; 64];
    let iterations = NonZeroU32::new(ITERATIONS).expect("non-zero");
    ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA512, iterations, &salt, password.as_bytes(), &mut salted);
    let upsertion = ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.to_string()))
        .with_mechanism(2) // SCRAM-SHA-512
        .with_iterations(ITERATIONS as i32)
        .with_salt(salt.into())
        .with_salted_password(salted.into());
    let response: AlterUserScramCredentialsResponse =
        client.send(&AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]), 0);
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0], "register {user}'s SCRAM-SHA-512 credential");
}

/// Runs the Go program with `args`; its success and its output.
fn run_go(tools: &E2eTools, args: &[&str]) -> (bool, String) {
    let mut command: Command = tools.go_client();
    let mut child = command
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the Go client");
    let deadline = Instant::now() + RUN_TIMEOUT;
    while child.try_wait().expect("poll the Go client").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("the Go client's output");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn franz_go_creates_produces_consumes_in_a_group_and_commits_over_each_secured_listener() {
    let tools = E2eTools::load();
    let pki = Pki::new();
    let (broker, [sasl, sasl_ssl, ssl]) = start(&pki);
    add_scram_sha_512_user(&mut WireClient::connect(broker.kafka_addr()), "carol", "carol-secret");
    let (ca, cert, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client-key.pem"));
    let plain = ["-security-protocol", "SASL_PLAINTEXT", "-sasl-mechanism", "PLAIN"];
    let scram = ["-security-protocol", "SASL_SSL", "-sasl-mechanism", "SCRAM-SHA-512", "-ca-file", &ca];
    let cases: [(&str, u16, Vec<&str>); 3] = [
        (
            "PLAIN over SASL_PLAINTEXT",
            sasl,
            [&plain[..], &["-username", "alice", "-password", "alice-secret"]].concat(),
        ),
        (
            "SCRAM-SHA-512 over SASL_SSL",
            sasl_ssl,
            [&scram[..], &["-username", "carol", "-password", "carol-secret"]].concat(),
        ),
        (
            "a client certificate over SSL",
            ssl,
            vec!["-security-protocol", "SSL", "-ca-file", &ca, "-cert-file", &cert, "-key-file", &key],
        ),
    ];
    let count = RECORDS.to_string();
    for (i, (what, port, security)) in cases.iter().enumerate() {
        let bootstrap = format!("localhost:{port}");
        let (topic, group) = (format!("go-secure-{i}"), format!("go-secure-group-{i}"));
        let mut args =
            vec!["roundtrip", "-bootstrap", &bootstrap, "-topic", &topic, "-group", &group, "-count", &count];
        args.extend(security.iter().copied());
        let (ok, out) = run_go(&tools, &args);
        assert!(ok, "{what}: the Go client failed:\n{out}");
        let line =
            out.lines().find(|l| l.contains(r#""event":"roundtrip""#)).unwrap_or_else(|| panic!("{what}: {out}"));
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON event");
        for field in ["produced", "consumed", "committed"] {
            assert_eq!(event[field], RECORDS, "{what}: {field} in {line}");
        }
    }

    // Refused: a wrong password, and a certificate another CA signed.
    let bootstrap = format!("localhost:{sasl_ssl}");
    let mut args = vec!["roundtrip", "-bootstrap", &bootstrap, "-topic", "refused", "-group", "g", "-count", "1"];
    args.extend(scram);
    args.extend(["-username", "carol", "-password", "wrong"]);
    let (ok, out) = run_go(&tools, &args);
    assert!(!ok && out.contains("SASL_AUTHENTICATION_FAILED"), "a wrong password:\n{out}");
    let (stranger, stranger_key) = (pki.path("stranger.pem"), pki.path("stranger-key.pem"));
    let bootstrap = format!("localhost:{ssl}");
    let args = [
        "roundtrip",
        "-bootstrap",
        &bootstrap,
        "-topic",
        "refused",
        "-group",
        "g",
        "-count",
        "1",
        "-security-protocol",
        "SSL",
        "-ca-file",
        &ca,
        "-cert-file",
        &stranger,
        "-key-file",
        &stranger_key,
    ];
    let (ok, out) = run_go(&tools, &args);
    assert!(!ok, "a certificate from another CA was accepted:\n{out}");
}
