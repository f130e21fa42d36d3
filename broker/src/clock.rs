//! Wall-clock time in Kafka's unit: milliseconds since the Unix epoch
//! (record timestamps, expiry deadlines, log housekeeping).
//!
//! Must never: panic on a clock set before 1970 (it answers 0).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
