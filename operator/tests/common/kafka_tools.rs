//! Kafka's own command-line tools and Java client, as the operator's tests
//! run them: the jars `bench/kafka/run-kafka.sh` resolves and caches under
//! `~/.cache/strom`; and librdkafka, through e2e/python/strom_client.py.

use std::path::PathBuf;
use std::process::Command;

/// `java -cp <Kafka jars> <main_class> args...`.
pub fn kafka_tool(main_class: &str, args: &[&str]) -> Command {
    let script = super::helm::root().join("bench/kafka/run-kafka.sh");
    let mut classpath = Vec::new();
    for which in ["classpath", "tools-classpath"] {
        let out = Command::new("bash").arg(&script).arg(which).output().expect("run bench/kafka/run-kafka.sh");
        assert!(out.status.success(), "bench/kafka/run-kafka.sh {which} failed: {out:?}");
        let file = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        classpath.push(std::fs::read_to_string(&file).expect("read a classpath file").trim().to_string());
    }
    let mut command = Command::new(std::env::var("STROM_E2E_JAVA").unwrap_or_else(|_| "java".to_string()));
    command.args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", &classpath.join(":"), main_class]).args(args);
    command
}

/// `python strom_client.py` (confluent-kafka, that is librdkafka) in the
/// venv `scripts/e2e-deps.sh` made: `STROM_E2E_PYTHON` from the environment
/// or from `target/e2e.env`.
pub fn python_client() -> Command {
    const FIX: &str = "run `bash scripts/e2e-deps.sh` first (it makes the confluent-kafka venv)";
    let root = super::helm::root();
    let python = std::env::var("STROM_E2E_PYTHON").ok().unwrap_or_else(|| {
        let env_file = root.join("target/e2e.env");
        let text = std::fs::read_to_string(&env_file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}; {FIX}", env_file.display()));
        text.lines()
            .find_map(|line| line.trim().strip_prefix("STROM_E2E_PYTHON=").map(str::to_string))
            .unwrap_or_else(|| panic!("STROM_E2E_PYTHON is not in {}; {FIX}", env_file.display()))
    });
    let mut command = Command::new(python);
    command.arg("-u").arg(root.join("e2e/python/strom_client.py"));
    command
}

/// Waits for `child` to exit, killing it after `timeout`: whether it
/// succeeded, and its stdout followed by its stderr. `stdin`, when given, is
/// held open until then (a client that stops at end of input keeps running).
pub fn finish(
    mut child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    timeout: std::time::Duration,
) -> (bool, String) {
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait().expect("poll the child").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(stdin);
    let output = child.wait_with_output().expect("collect output");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (output.status.success(), format!("{}{}", text(output.stdout), text(output.stderr)))
}
