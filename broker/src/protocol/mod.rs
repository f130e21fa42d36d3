//! The Kafka wire protocol front end.
//!
//! Clients speak length-prefixed frames over TCP. [`frame`] cuts the byte
//! stream into frames, [`codec`] decodes request headers and bodies with the
//! `kafka-protocol` crate and encodes responses, [`connection`] runs one
//! client connection (requests handled one at a time, in order), and
//! [`handlers`] answer each API against the broker's state without knowing
//! anything of framing. [`outgoing`] writes response frames, sending fetched
//! record batches from their segment files with `sendfile(2)`, and
//! [`fetch_encoding`] encodes fetch responses around them. [`limits`] bounds
//! what a client can make the listener hold (connections, idle time, frame
//! time, request memory), and [`request_entries`] the topics and partitions one
//! request may name, counted before it is decoded. [`versions`] is the one table of what Strom serves.
//! [`listener`] holds a named listener's TLS and SASL settings, [`stream`]
//! a connection's plain or TLS byte stream, and [`sasl`] answers the SASL
//! requests of a connection that has not authenticated yet. [`throttle`]
//! records what each request cost against its client's quotas.
//!
//! Must never: let a malformed or oversized request take the broker down or
//! write anything to a log; answer out of request order on a connection.

pub mod authz;
pub mod codec;
pub mod connection;
pub mod errors;
pub mod fetch_encoding;
pub mod frame;
pub mod handlers;
pub mod limits;
pub mod listener;
pub mod outgoing;
pub mod request_entries;
pub mod sasl;
pub mod stream;
pub mod throttle;
pub mod versions;
