//! Strom's internal gRPC API (controller quorum, replication, admin).
//!
//! Placeholder crate: the services arrive with the replicated-cluster issue.
