//! Strom's custom resource types (`KafkaCluster`, `KafkaTopic`, group
//! `strom.dev/v1alpha1`).
//!
//! Placeholder crate: the types arrive with the operator issue.
