//! The replication throttle: caps the bytes per second this broker copies
//! for replicas catching up outside the ISR that are throttled, so moving
//! partitions onto a new broker, or a restarted broker catching up, does not
//! starve the leaders' clients of disk and network. Two things throttle a
//! replica, as in Kafka:
//!
//! - a reassignment adding it here, at the reassignment's rate (what
//!   `kafka-reassign-partitions --throttle` asks for);
//! - its topic's `follower.replication.throttled.replicas` naming it, at
//!   this broker's `follower.replication.throttled.rate`.
//!
//! One token bucket per broker, shared by the fetchers of every throttled
//! partition; other partitions' fetchers are never slowed. The rate is the
//! smallest one among the throttled partitions; a fetch is paced after it
//! is written: the fetch session leaves the partition out of its requests
//! as long as the bucket is in debt. The publisher decides which partitions
//! are throttled (only while out of the ISR: a follower in the ISR holds
//! back the high watermark).

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::log::TopicPartition;

/// The broker's throttle for catch-up replication traffic.
#[derive(Debug, Default)]
pub struct ReplicationThrottle {
    /// Throttled partitions and their rates (bytes/s; 0: unthrottled).
    rates: Mutex<HashMap<TopicPartition, u64>>,
    bucket: Mutex<Bucket>,
}

/// Bytes that may still be fetched (negative: in debt), as of `at`.
#[derive(Debug)]
struct Bucket {
    available: f64,
    at: Option<Instant>,
}

impl Default for Bucket {
    fn default() -> Bucket {
        Bucket { available: 0.0, at: None }
    }
}

impl ReplicationThrottle {
    /// Throttles `tp`'s fetches at `rate` bytes/s (`None` or 0: not throttled).
    pub fn set(&self, tp: &TopicPartition, rate: Option<u64>) {
        let mut rates = self.rates.lock();
        match rate.filter(|r| *r > 0) {
            Some(r) => rates.insert(tp.clone(), r),
            None => rates.remove(tp),
        };
    }

    /// The rate `tp` is fetched at, if it is throttled.
    pub fn rate_of(&self, tp: &TopicPartition) -> Option<u64> {
        self.rates.lock().get(tp).copied()
    }

    /// Charges `bytes` fetched for `tp` to the bucket and returns how long
    /// `tp`'s fetcher must pause before fetching again (zero for an
    /// unthrottled partition, which is never charged).
    pub fn charge(&self, tp: &TopicPartition, bytes: usize) -> Duration {
        let rate = {
            let rates = self.rates.lock();
            if !rates.contains_key(tp) {
                return Duration::ZERO;
            }
            rates.values().copied().min().unwrap_or(0)
        };
        let mut bucket = self.bucket.lock();
        let now = Instant::now();
        let elapsed = bucket.at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let (available, wait) = charge(bucket.available, elapsed, rate, bytes);
        bucket.available = available;
        bucket.at = Some(now);
        wait
    }
}

/// Refills `available` for `elapsed` at `rate` bytes/s (at most one second's
/// worth banked), takes `bytes`, and returns the new balance and how long
/// to wait until it is no longer negative.
fn charge(available: f64, elapsed: Duration, rate: u64, bytes: usize) -> (f64, Duration) {
    if rate == 0 {
        return (0.0, Duration::ZERO);
    }
    let rate = rate as f64;
    let balance = (available + elapsed.as_secs_f64() * rate).min(rate) - bytes as f64;
    let wait = if balance < 0.0 { Duration::from_secs_f64(-balance / rate) } else { Duration::ZERO };
    (balance, wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_is_paid_off_at_the_rate() {
        // 1 MiB/s, a fresh bucket, a 2 MiB fetch: two seconds of debt.
        let (balance, wait) = charge(0.0, Duration::ZERO, 1 << 20, 2 << 20);
        assert_eq!(wait, Duration::from_secs(2));
        // After waiting those two seconds the debt is paid and a small fetch passes at once.
        let (balance, wait) = charge(balance, Duration::from_secs(2), 1 << 20, 1024);
        assert!(balance < 0.0 && wait < Duration::from_millis(1), "{balance} {wait:?}");
    }

    #[test]
    fn at_most_a_second_of_idle_time_is_banked() {
        let (_, wait) = charge(0.0, Duration::from_secs(60), 1000, 3000);
        assert_eq!(wait, Duration::from_secs(2), "a long idle spell must not allow a burst above the rate");
    }

    #[tokio::test(start_paused = true)]
    async fn only_throttled_partitions_wait_and_the_slowest_rate_applies() {
        let throttle = ReplicationThrottle::default();
        let moving = TopicPartition { topic: "t".into(), partition: 0 };
        let other = TopicPartition { topic: "t".into(), partition: 1 };
        throttle.set(&moving, Some(4000));
        throttle.set(&TopicPartition { topic: "u".into(), partition: 0 }, Some(1000));

        assert_eq!(throttle.charge(&other, 1 << 20), Duration::ZERO, "an unthrottled partition never waits");
        let wait = throttle.charge(&moving, 3000);
        assert_eq!(wait, Duration::from_secs(3), "3000 bytes at the smallest rate, 1000 B/s");
        tokio::time::advance(wait).await;
        assert_eq!(
            throttle.charge(&moving, 500),
            Duration::from_millis(500),
            "the debt was paid; new bytes wait again"
        );

        throttle.set(&moving, None);
        assert_eq!(throttle.rate_of(&moving), None);
        assert_eq!(throttle.charge(&moving, 1 << 20), Duration::ZERO);
    }
}
