//! The Kafka wire protocol front end.
//!
//! Clients speak length-prefixed frames over TCP. [`frame`] cuts the byte
//! stream into frames, [`codec`] decodes request headers and bodies with the
//! `kafka-protocol` crate and encodes responses, [`connection`] runs one
//! client connection (requests pipelined, responses in request order), and
//! [`handlers`] answer each API against the broker's state without knowing
//! anything of framing. [`versions`] is the one table of what Strom serves.
//!
//! Must never: let a malformed or oversized request take the broker down or
//! write anything to a log; answer out of request order on a connection.

pub mod codec;
pub mod connection;
pub mod errors;
pub mod frame;
pub mod handlers;
pub mod versions;
