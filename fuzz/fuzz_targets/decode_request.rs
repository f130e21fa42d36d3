//! Fuzzes request decoding: any bytes a client sends as a frame body must be
//! decoded or refused with an error, never panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_broker::protocol::codec::decode_request;

fuzz_target!(|data: &[u8]| {
    let _ = decode_request(bytes::Bytes::copy_from_slice(data), 100_000);
});
