//! Broker sessions as the active controller sees them: when each broker last
//! heartbeated, and which sessions have expired (`broker.session.timeout.ms`).
//!
//! Pure bookkeeping over instants the caller passes in; the active
//! controller's timer turns [`Sessions::expired`] into `FenceBroker`
//! commands. Only the active controller keeps sessions: they are not
//! replicated, and a new active controller starts every known broker's
//! session afresh (as KRaft does), so a leader change never fences a live
//! broker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Last heartbeat per broker id.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    last_heartbeat: BTreeMap<i32, Instant>,
}

impl Sessions {
    /// Records a heartbeat (or registration) of `broker_id` at `now`.
    pub fn heartbeat(&mut self, broker_id: i32, now: Instant) {
        self.last_heartbeat.insert(broker_id, now);
    }

    /// Forgets a broker (fenced, or shut down cleanly).
    pub fn remove(&mut self, broker_id: i32) {
        self.last_heartbeat.remove(&broker_id);
    }

    /// Brokers whose last heartbeat is more than `timeout` before `now`.
    pub fn expired(&self, now: Instant, timeout: Duration) -> Vec<i32> {
        self.last_heartbeat
            .iter()
            .filter(|&(_, &seen)| now.saturating_duration_since(seen) > timeout)
            .map(|(&id, _)| id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_silent_brokers_expire() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.heartbeat(1, t0);
        s.heartbeat(2, t0);
        s.heartbeat(2, t0 + Duration::from_secs(8));
        assert_eq!(s.expired(t0 + Duration::from_secs(10), Duration::from_secs(9)), vec![1]);
        s.remove(1);
        assert!(s.expired(t0 + Duration::from_secs(10), Duration::from_secs(9)).is_empty());
        assert_eq!(s.expired(t0 + Duration::from_secs(30), Duration::from_secs(9)), vec![2]);
    }
}
