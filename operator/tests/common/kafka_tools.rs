//! Kafka's own command-line tools and Java client, as the operator's tests
//! run them: the jars `bench/kafka/run-kafka.sh` resolves and caches under
//! `~/.cache/strom`.

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
