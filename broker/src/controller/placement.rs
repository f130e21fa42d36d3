//! Replica placement for new topics: rack-aware, with leaders spread evenly.
//!
//! Pure function over the list of live brokers; the state machine calls it
//! while applying a `CreateTopic`, so it must be deterministic — the same
//! inputs give the same assignment on every controller.
//!
//! Invariants: a partition never lists a broker twice; its replicas span as
//! many distinct racks as there are (up to the replication factor); the
//! preferred leaders (first replicas) of consecutive partitions walk the
//! rack-alternating broker list, so leadership is spread evenly.

use std::collections::{BTreeMap, BTreeSet};

/// Why replicas could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Kafka: INVALID_REPLICATION_FACTOR.
    #[error(
        "replication factor {requested} is larger than the {available} unfenced brokers; lower it or start more brokers"
    )]
    NotEnoughBrokers { requested: i32, available: usize },
    /// Kafka: INVALID_PARTITIONS / INVALID_REPLICATION_FACTOR.
    #[error("{what} must be at least 1, got {got}")]
    NotPositive { what: &'static str, got: i32 },
}

/// A broker eligible to host replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Broker id.
    pub broker_id: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

/// Orders brokers so that consecutive entries are on different racks when
/// possible (Kafka's rack-alternated list): rack A's first, rack B's first, ...,
/// rack A's second, ... Brokers without a rack form a rack of their own.
pub fn rack_alternated(brokers: &[Candidate]) -> Vec<Candidate> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<&Candidate>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref()).or_default().push(b);
    }
    for list in by_rack.values_mut() {
        list.sort_by_key(|b| b.broker_id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(brokers.len());
    for i in 0..longest {
        for list in by_rack.values() {
            if let Some(b) = list.get(i) {
                out.push((*b).clone());
            }
        }
    }
    out
}

/// Places `partitions` partitions of `replication_factor` replicas each.
/// `start` shifts the first leader (the caller passes a value that differs
/// between topics, so leaders of small topics do not all land on one broker).
pub fn assign(
    brokers: &[Candidate],
    partitions: i32,
    replication_factor: i32,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if partitions < 1 {
        return Err(PlacementError::NotPositive { what: "partition count", got: partitions });
    }
    if replication_factor < 1 {
        return Err(PlacementError::NotPositive { what: "replication factor", got: replication_factor });
    }
    let list = rack_alternated(brokers);
    let n = list.len();
    let rf = replication_factor as usize;
    if rf > n {
        return Err(PlacementError::NotEnoughBrokers { requested: replication_factor, available: n });
    }
    let rack_count = list.iter().map(|b| b.rack.as_deref()).collect::<BTreeSet<_>>().len();
    let mut assignment = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        let first = (start + p) % n;
        // Followers start at a shifting distance from the leader, so the
        // followers of one broker's partitions are spread too (as Kafka's
        // replicaShift).
        let shift = if n > 1 { 1 + (p / n) % (n - 1) } else { 0 };
        let mut replicas = vec![list[first].broker_id];
        let mut racks_used = BTreeSet::from([list[first].rack.as_deref()]);
        while replicas.len() < rf {
            if racks_used.len() == rack_count {
                racks_used.clear();
            }
            let order = (0..n).map(|j| &list[(first + shift + j) % n]);
            let fresh_rack =
                order.clone().find(|b| !replicas.contains(&b.broker_id) && !racks_used.contains(&b.rack.as_deref()));
            let Some(next) = fresh_rack.or_else(|| order.clone().find(|b| !replicas.contains(&b.broker_id))) else {
                break;
            };
            racks_used.insert(next.rack.as_deref());
            replicas.push(next.broker_id);
        }
        assignment.push(replicas);
    }
    Ok(assignment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[&str]) -> Vec<Candidate> {
        racks.iter().enumerate().map(|(i, r)| Candidate { broker_id: i as i32, rack: Some(r.to_string()) }).collect()
    }

    #[test]
    fn replicas_span_racks_and_leaders_spread_evenly() {
        let b = brokers(&["a", "a", "b", "b", "c", "c"]);
        let assignment = assign(&b, 12, 3, 0).unwrap();
        let rack = |id: i32| b[id as usize].rack.clone();
        let mut leaders = BTreeMap::new();
        for replicas in &assignment {
            assert_eq!(replicas.len(), 3);
            let racks: BTreeSet<_> = replicas.iter().map(|&r| rack(r)).collect();
            assert_eq!(racks.len(), 3, "{replicas:?} repeats a rack");
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.len(), 6);
        assert!(leaders.values().all(|&c| c == 2), "{leaders:?}");
    }

    #[test]
    fn without_racks_no_broker_is_listed_twice() {
        let b: Vec<Candidate> = (0..3).map(|i| Candidate { broker_id: i, rack: None }).collect();
        for replicas in assign(&b, 7, 3, 5).unwrap() {
            let set: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(set.len(), 3);
        }
    }

    #[test]
    fn too_few_brokers_is_refused() {
        let b = brokers(&["a"]);
        assert_eq!(assign(&b, 1, 2, 0), Err(PlacementError::NotEnoughBrokers { requested: 2, available: 1 }));
        assert!(assign(&b, 0, 1, 0).is_err());
    }
}
