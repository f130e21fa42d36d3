//! Replication tests.
