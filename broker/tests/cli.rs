//! The broker's command line: a bad process flag stops the broker before it
//! touches its data dir, with a message that names the flag, the value and
//! what is allowed.

use std::process::Command;

fn broker_with(args: &[&str], env: &[(&str, &str)]) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut command = Command::new(env!("CARGO_BIN_EXE_strom-broker"));
    command.arg("--data-dir").arg(&data).args(args).env_remove("STROM_WORKER_THREADS");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run strom-broker");
    (output, dir)
}

#[test]
fn worker_threads_outside_1_to_1024_are_refused_before_anything_starts() {
    for (args, env, value) in [
        (&["--worker-threads", "0"][..], &[][..], "'0'"),
        (&["--worker-threads", "5000"][..], &[][..], "'5000'"),
        (&[][..], &[("STROM_WORKER_THREADS", "many")][..], "'many'"),
    ] {
        let (output, dir) = broker_with(args, env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("--worker-threads") && stderr.contains(value), "names the flag and value: {stderr}");
        assert!(stderr.contains("1..=1024") || stderr.contains("invalid digit"), "says what is allowed: {stderr}");
        assert!(!dir.path().join("data").exists(), "nothing was created for a refused start");
    }
}

#[test]
fn an_unauthenticated_internal_plane_beyond_this_host_is_refused_before_anything_starts() {
    for (args, flag) in [
        (&["--internal-listen", "0.0.0.0:0"][..], "internal-listen"),
        (&["--internal-listen", "127.0.0.1:0", "--voters", "0@127.0.0.1:1,1@127.0.0.1:2"][..], "voters"),
        (&["--internal-tls-ca", "/nonexistent/ca.pem"][..], "internal-tls"),
    ] {
        let (output, dir) = broker_with(args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "names {flag}: {stderr}");
        assert!(stderr.contains("--internal-insecure") || flag == "internal-tls", "says how to go on: {stderr}");
        assert!(!dir.path().join("data").exists(), "nothing was created for a refused start");
    }
}

#[test]
fn bad_advertised_overrides_are_refused_before_anything_starts() {
    let files = tempfile::tempdir().expect("temp dir");
    let file = files.path().join("broker-0.properties");
    std::fs::write(&file, "advertised.listeners=PLAINTEXT://wrong.example.com:1\n").expect("write the file");
    let refused_file = format!("EXTERNAL={}", file.display());
    let listeners = [
        "--set",
        "listeners=PLAINTEXT://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
        "--set",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT",
        "--advertised-overrides",
    ];
    for (value, expected) in [
        ("NOPE=/x", "listeners of this broker other than the first (EXTERNAL)"),
        ("PLAINTEXT=/x", "other than the first (EXTERNAL)"),
        (
            refused_file.as_str(),
            "broker-0.properties, line 1: invalid advertised.listeners `PLAINTEXT://wrong.example.com:1`",
        ),
    ] {
        let args: Vec<&str> = listeners.iter().copied().chain([value]).collect();
        let (output, dir) = broker_with(&args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("advertised-overrides") && stderr.contains(expected), "{value}: {stderr}");
        assert!(!dir.path().join("data").exists(), "nothing was created for a refused start");
    }
}

#[test]
fn certs_writes_a_ca_and_a_certificate_per_identity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("certs");
    let output = Command::new(env!("CARGO_BIN_EXE_strom-broker"))
        .args(["certs", "--out"])
        .arg(&out)
        .args(["--brokers", "0,2", "--operator"])
        .output()
        .expect("run strom-broker certs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for file in ["ca.pem", "ca-key.pem", "broker-0.pem", "broker-0-key.pem", "broker-2.pem", "operator.pem"] {
        assert!(out.join(file).is_file(), "{file} written");
    }
    let files = |stem: &str| strom_broker::tls::TlsFiles {
        ca: out.join("ca.pem"),
        cert: out.join(format!("{stem}.pem")),
        key: out.join(format!("{stem}-key.pem")),
    };
    let tls = strom_broker::tls::InternalTls::load(files("broker-2")).expect("broker 2's files load");
    assert_eq!(tls.identity(), strom_broker::tls::Identity::Broker(2));
    let tls = strom_broker::tls::InternalTls::load(files("operator")).expect("the operator's files load");
    assert_eq!(tls.identity(), strom_broker::tls::Identity::Operator);
}
