//! A partition leader's view of its followers, and the decisions made from
//! it: the high watermark, and which followers join or leave the ISR.
//!
//! Pure logic over plain data (no locks, no I/O, time passed in), so every
//! rule is tested on its own. The rules are Kafka's:
//!
//! - A follower's log end offset is its last fetch offset (it has every
//!   record below the offset it asks for).
//! - A follower is caught up at a fetch if it asks for the leader's log end
//!   offset, or for at least the leader's log end offset at its previous
//!   fetch (then it was caught up as of that previous fetch's time).
//! - The high watermark is the lowest log end offset over the ISR, the
//!   leader included, counting replicas whose addition is pending (the
//!   "maximal" ISR, so a new member cannot be exposed to uncommitted data);
//!   it never moves backwards while this replica leads.
//! - A follower outside the ISR joins once its log end offset reaches the
//!   high watermark and the start of the leader's current epoch.
//! - A follower in the ISR leaves once it has lagged the leader's log end
//!   offset for longer than `replica.lag.time.max.ms`. A follower that has
//!   nothing to catch up on is never out of sync.

use std::collections::HashMap;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset; -1 until its first fetch under this leader.
    pub log_end_offset: i64,
    /// Last time (ms) the follower was known to be caught up.
    pub last_caught_up_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    pub last_fetch_leader_log_end_offset: i64,
    /// Time (ms) of the follower's previous fetch.
    pub last_fetch_ms: i64,
    /// The follower's log start offset as its last fetch said; -1 unknown.
    pub log_start_offset: i64,
}

impl FollowerState {
    /// A follower as a new leader first sees it: position unknown; one in
    /// the ISR counts as caught up now (it gets a full lag period to fetch).
    pub fn new(in_isr: bool, now_ms: i64) -> FollowerState {
        FollowerState {
            log_end_offset: -1,
            last_caught_up_ms: if in_isr { now_ms } else { 0 },
            last_fetch_leader_log_end_offset: -1,
            last_fetch_ms: 0,
            log_start_offset: -1,
        }
    }

    /// Records a fetch at `fetch_offset` while the leader's log ends at
    /// `leader_leo`. Returns whether the follower's log end went back (it
    /// lost records it had — a repaired log): it is then no longer caught
    /// up, whatever its past.
    pub fn record_fetch(&mut self, fetch_offset: i64, leader_leo: i64, now_ms: i64) -> bool {
        let went_back = self.log_end_offset >= 0 && fetch_offset < self.log_end_offset;
        if went_back {
            self.last_caught_up_ms = 0;
        } else if fetch_offset >= leader_leo {
            self.last_caught_up_ms = self.last_caught_up_ms.max(now_ms);
        } else if self.last_fetch_leader_log_end_offset >= 0 && fetch_offset >= self.last_fetch_leader_log_end_offset {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.log_end_offset = fetch_offset;
        self.last_fetch_leader_log_end_offset = leader_leo;
        self.last_fetch_ms = now_ms;
        went_back
    }

    /// Whether the follower has lagged the leader for longer than `lag_ms`.
    pub fn is_out_of_sync(&self, leader_leo: i64, now_ms: i64, lag_ms: i64) -> bool {
        self.log_end_offset != leader_leo && now_ms - self.last_caught_up_ms > lag_ms
    }
}

/// An ISR change a leader has proposed and the controller has not yet answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsr {
    /// The proposed ISR.
    pub isr: Vec<i32>,
    /// When it was proposed (ms since the epoch).
    pub proposed_at_ms: i64,
}

/// A proposal unanswered for this long is taken as lost and may be made again
/// (the controller answers or times out within 10 s; a lost answer must not
/// freeze the ISR).
pub const PENDING_ISR_EXPIRY_MS: i64 = 30_000;

impl PendingIsr {
    /// Whether the proposal still awaits its answer at `now_ms`.
    pub fn awaiting(&self, now_ms: i64) -> bool {
        now_ms - self.proposed_at_ms < PENDING_ISR_EXPIRY_MS
    }
}

/// The ISR counted for the high watermark: the current one plus any
/// replica whose addition is pending.
pub fn maximal_isr(isr: &[i32], pending: Option<&PendingIsr>) -> Vec<i32> {
    let mut all = isr.to_vec();
    if let Some(p) = pending {
        all.extend(p.isr.iter().filter(|r| !isr.contains(r)));
    }
    all
}

/// The ISR counted for `min.insync.replicas`: the current one minus any
/// replica whose removal is pending.
pub fn minimal_isr(isr: &[i32], pending: Option<&PendingIsr>) -> Vec<i32> {
    match pending {
        Some(p) => isr.iter().copied().filter(|r| p.isr.contains(r)).collect(),
        None => isr.to_vec(),
    }
}

/// The high watermark the ISR allows: the lowest log end offset over
/// `isr` (`leader` counts with `leader_leo`), never below `current`. A
/// member whose position is unknown holds it where it is.
pub fn high_watermark(
    current: i64,
    leader: i32,
    leader_leo: i64,
    isr: &[i32],
    followers: &HashMap<i32, FollowerState>,
) -> i64 {
    let mut hw = leader_leo;
    for id in isr.iter().filter(|id| **id != leader) {
        let leo = followers.get(id).map_or(-1, |f| f.log_end_offset);
        hw = hw.min(leo);
    }
    hw.max(current)
}

/// The low watermark DeleteRecords waits for: the lowest log start offset
/// over `isr` (`leader` counts with `leader_start`). A member whose start is
/// unknown holds it at -1. Kafka counts every replica on a live broker; the
/// ISR is what this leader knows to be live and following.
pub fn low_watermark(leader: i32, leader_start: i64, isr: &[i32], followers: &HashMap<i32, FollowerState>) -> i64 {
    isr.iter()
        .filter(|id| **id != leader)
        .map(|id| followers.get(id).map_or(-1, |f| f.log_start_offset))
        .fold(leader_start, i64::min)
}

/// Whether a follower outside the ISR at `follower_leo` may join it.
pub fn can_join_isr(follower_leo: i64, high_watermark: i64, epoch_start_offset: i64) -> bool {
    follower_leo >= high_watermark && follower_leo >= epoch_start_offset
}

/// The followers in `isr` that have lagged for longer than `lag_ms`.
pub fn out_of_sync_followers(
    leader: i32,
    leader_leo: i64,
    isr: &[i32],
    followers: &HashMap<i32, FollowerState>,
    now_ms: i64,
    lag_ms: i64,
) -> Vec<i32> {
    isr.iter()
        .copied()
        .filter(|id| *id != leader)
        .filter(|id| followers.get(id).is_none_or(|f| f.is_out_of_sync(leader_leo, now_ms, lag_ms)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn followers(entries: &[(i32, i64)]) -> HashMap<i32, FollowerState> {
        entries
            .iter()
            .map(|(id, leo)| (*id, FollowerState { log_end_offset: *leo, ..FollowerState::new(true, 0) }))
            .collect()
    }

    #[test]
    fn high_watermark_is_the_lowest_isr_position_and_never_goes_back() {
        let f = followers(&[(2, 7), (3, 4)]);
        assert_eq!(high_watermark(0, 1, 10, &[1, 2], &f), 7);
        assert_eq!(high_watermark(0, 1, 10, &[1, 2, 3], &f), 4, "every ISR member counts");
        assert_eq!(high_watermark(0, 1, 10, &[1], &f), 10, "a lone leader commits its own log end");
        assert_eq!(high_watermark(8, 1, 10, &[1, 2], &f), 8, "never backwards");
        assert_eq!(high_watermark(3, 1, 10, &[1, 4], &f), 3, "an unknown position holds it");
    }

    #[test]
    fn pending_changes_widen_the_hw_isr_and_narrow_the_min_insync_isr() {
        let adding = PendingIsr { isr: vec![1, 2, 3], proposed_at_ms: 0 };
        assert_eq!(maximal_isr(&[1, 2], Some(&adding)), vec![1, 2, 3]);
        assert_eq!(minimal_isr(&[1, 2], Some(&adding)), vec![1, 2]);
        let removing = PendingIsr { isr: vec![1], proposed_at_ms: 0 };
        assert_eq!(maximal_isr(&[1, 2], Some(&removing)), vec![1, 2]);
        assert_eq!(minimal_isr(&[1, 2], Some(&removing)), vec![1]);
    }

    #[test]
    fn a_follower_is_caught_up_when_it_reaches_the_leaders_end_at_some_fetch() {
        let mut f = FollowerState::new(false, 0);
        f.record_fetch(0, 10, 100);
        assert_eq!(f.last_caught_up_ms, 0, "behind and no earlier fetch");
        f.record_fetch(10, 20, 200);
        assert_eq!(f.last_caught_up_ms, 100, "it has what the leader had at the previous fetch");
        f.record_fetch(20, 20, 300);
        assert_eq!(f.last_caught_up_ms, 300);
        assert!(!f.is_out_of_sync(20, 10_000, 1000), "nothing to catch up on");
        assert!(f.is_out_of_sync(25, 1301, 1000));
        assert!(!f.is_out_of_sync(25, 1300, 1000));
    }

    #[test]
    fn a_follower_whose_log_went_back_is_no_longer_caught_up() {
        let mut f = FollowerState::new(true, 0);
        assert!(!f.record_fetch(20, 20, 100));
        assert!(!f.record_fetch(20, 25, 200), "the same offset again is no loss");
        assert!(f.record_fetch(12, 25, 300), "a repaired log fetches from below what it had");
        assert_eq!(f.last_caught_up_ms, 0);
        assert!(f.is_out_of_sync(25, 301, 300));
    }

    #[test]
    fn lagging_isr_members_are_out_of_sync_and_joiners_need_the_hw_and_epoch_start() {
        let mut f = followers(&[(2, 10), (3, 5)]);
        for (id, at) in [(3, 0), (2, 900)] {
            if let Some(s) = f.get_mut(&id) {
                s.last_caught_up_ms = at;
            }
        }
        assert_eq!(out_of_sync_followers(1, 10, &[1, 2, 3], &f, 1500, 1000), vec![3]);
        assert_eq!(out_of_sync_followers(1, 10, &[1, 2, 3, 4], &f, 1500, 1000), vec![3, 4], "never fetched");
        assert!(can_join_isr(10, 10, 8));
        assert!(!can_join_isr(9, 10, 8));
        assert!(!can_join_isr(10, 10, 12), "must reach the current epoch's start");
    }
}
