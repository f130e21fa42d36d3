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
