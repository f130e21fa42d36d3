//! The internal plane's mutual TLS and identities. They live in the
//! `strom-tls` crate, shared with the operator (a client of the Admin API);
//! re-exported here so the broker's modules say `crate::tls`.

pub use strom_tls::*;
