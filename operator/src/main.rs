//! `strom-operator`: the Kubernetes operator for Strom clusters.
//!
//! Not built yet: the reconcilers for `KafkaCluster` and `KafkaTopic` arrive
//! with the operator issue. Until then the binary says so and exits non-zero,
//! so nobody mistakes it for a working operator.

fn main() -> std::process::ExitCode {
    eprintln!("strom-operator: not implemented yet (see docs/ARCHITECTURE.md, \"The operator\")");
    std::process::ExitCode::FAILURE
}
