//! Rack-batched restarts: which brokers of one rack may restart together.
//!
//! With `spec.rack.batchedRestarts`, a roll restarts every outdated broker of
//! one rack at once instead of one broker at a time, when that is safe:
//!
//! - every partition keeps at least its `min.insync.replicas` in-sync
//!   replicas (and so a leader) on brokers outside the batch, so acks=all
//!   writes go on throughout;
//! - a majority of the controller voters stays up;
//! - the active controller's rack goes last: it is a candidate only once no
//!   outdated broker is left elsewhere.
//!
//! Racks with fewer than two outdated brokers gain nothing from batching. When
//! no rack qualifies, [`next_batch`] says why and the roll goes on one broker
//! at a time ([`crate::rolling::next_step`]). Pure: the reconciler passes what
//! the Admin API reported.

use std::collections::{BTreeMap, BTreeSet};

/// One partition as the check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionIsr {
    /// `topic-partition`, for messages.
    pub name: String,
    /// Its in-sync replicas.
    pub isr: Vec<i32>,
    /// Its topic's `min.insync.replicas`.
    pub min_insync: usize,
}

/// The cluster as the check sees it.
#[derive(Debug, Clone, Copy)]
pub struct BatchInput<'a> {
    /// Brokers still on an older pod template.
    pub outdated: &'a [i32],
    /// Each broker's rack, for the brokers that have one.
    pub racks: &'a BTreeMap<i32, String>,
    /// Every partition of the cluster.
    pub partitions: &'a [PartitionIsr],
    /// The controller voters' node ids.
    pub voters: &'a [i32],
    /// The active controller.
    pub controller: Option<i32>,
}

/// Brokers of one rack to restart together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RackBatch {
    /// The rack.
    pub rack: String,
    /// Its outdated brokers, in ordinal order.
    pub brokers: Vec<i32>,
}

/// The rack to restart next (see the module docs), or why none may go
/// together (one reason per rack considered; empty when no rack has two
/// outdated brokers).
pub fn next_batch(input: &BatchInput<'_>) -> Result<RackBatch, Vec<String>> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for broker in input.outdated {
        if let Some(rack) = input.racks.get(broker) {
            by_rack.entry(rack.as_str()).or_default().push(*broker);
        }
    }
    let mut candidates: Vec<(&str, Vec<i32>)> = by_rack.into_iter().filter(|(_, b)| b.len() >= 2).collect();
    // Racks without the controller first (then by name).
    candidates.sort_by_key(|(rack, brokers)| (input.controller.is_some_and(|c| brokers.contains(&c)), *rack));
    let mut reasons = Vec::new();
    for (rack, mut brokers) in candidates {
        brokers.sort_unstable();
        let has_controller = input.controller.is_some_and(|c| brokers.contains(&c));
        if has_controller && input.outdated.iter().any(|b| !brokers.contains(b)) {
            reasons.push(format!(
                "rack {rack} holds the active controller, which restarts last (brokers outside it are outdated)"
            ));
            continue;
        }
        match why_not_together(&brokers, input) {
            None => return Ok(RackBatch { rack: rack.to_string(), brokers }),
            Some(why) => reasons.push(format!("rack {rack} (brokers {brokers:?}) cannot restart together: {why}")),
        }
    }
    Err(reasons)
}

/// Why stopping all of `batch` at once is unsafe; `None` when it is safe.
fn why_not_together(batch: &[i32], input: &BatchInput<'_>) -> Option<String> {
    let going: BTreeSet<i32> = batch.iter().copied().collect();
    let voters_up = input.voters.iter().filter(|v| !going.contains(v)).count();
    if voters_up <= input.voters.len() / 2 {
        return Some(format!(
            "only {voters_up} of the controller voters {:?} would stay up, no majority",
            input.voters
        ));
    }
    let short: Vec<String> = input
        .partitions
        .iter()
        .filter_map(|p| {
            let left = p.isr.iter().filter(|b| !going.contains(b)).count();
            let needed = p.min_insync.max(1);
            (left < needed).then(|| {
                format!("{} would keep {left} in-sync replica(s) of {:?}, min.insync.replicas={needed}", p.name, p.isr)
            })
        })
        .collect();
    match short.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [first, rest @ ..] => Some(format!("{first} (and {} more partition(s))", rest.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Six brokers in racks a, b, c by ordinal (0 a, 1 b, 2 c, 3 a, ...).
    fn racks(n: i32) -> BTreeMap<i32, String> {
        (0..n).map(|b| (b, ["a", "b", "c"][b as usize % 3].to_string())).collect()
    }

    fn partition(name: &str, isr: &[i32], min_insync: usize) -> PartitionIsr {
        PartitionIsr { name: name.into(), isr: isr.to_vec(), min_insync }
    }

    fn input<'a>(
        outdated: &'a [i32],
        racks: &'a BTreeMap<i32, String>,
        partitions: &'a [PartitionIsr],
        controller: Option<i32>,
    ) -> BatchInput<'a> {
        BatchInput { outdated, racks, partitions, voters: &[0, 1, 2], controller }
    }

    #[test]
    fn racks_go_together_when_every_partition_keeps_its_min_isr_elsewhere() {
        let racks = racks(6);
        // One replica per rack, min.insync.replicas=2.
        let parts = [partition("t-0", &[0, 1, 2], 2), partition("t-1", &[4, 5, 3], 2)];
        let outdated = [0, 1, 2, 3, 4, 5];
        let batch = next_batch(&input(&outdated, &racks, &parts, Some(0))).unwrap();
        assert_eq!(batch, RackBatch { rack: "b".into(), brokers: vec![1, 4] }, "the controller's rack a goes last");
        let rest = [0, 3];
        let last = next_batch(&input(&rest, &racks, &parts, Some(0))).unwrap();
        assert_eq!(last.brokers, vec![0, 3], "alone with outdated brokers, the controller's rack may go");
    }

    #[test]
    fn a_rack_is_refused_with_the_partition_that_would_fall_below_min_isr() {
        let racks = racks(6);
        // t-0 has two replicas in rack a.
        let parts = [partition("t-0", &[0, 3, 1], 2)];
        let outdated = [0, 3];
        let reasons = next_batch(&input(&outdated, &racks, &parts, Some(1))).unwrap_err();
        assert_eq!(
            reasons,
            ["rack a (brokers [0, 3]) cannot restart together: t-0 would keep 1 in-sync replica(s) of [0, 3, 1], \
              min.insync.replicas=2"]
        );
        // A shrunken ISR counts as it is: without broker 1, the rack would take t-0 offline.
        let parts = [partition("t-0", &[0, 3], 1)];
        assert!(next_batch(&input(&outdated, &racks, &parts, Some(1))).is_err());
    }

    #[test]
    fn a_rack_holding_most_voters_is_refused() {
        let racks = BTreeMap::from([(0, "a".to_string()), (1, "a".to_string()), (2, "b".to_string())]);
        let outdated = [0, 1, 2];
        let reasons = next_batch(&input(&outdated, &racks, &[], Some(2))).unwrap_err();
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].contains("only 1 of the controller voters [0, 1, 2] would stay up"), "{reasons:?}");
    }

    #[test]
    fn single_brokers_and_brokers_without_a_rack_are_not_batched() {
        let racks = BTreeMap::from([(0, "a".to_string()), (1, "b".to_string())]);
        assert_eq!(next_batch(&input(&[0, 1, 2, 3], &racks, &[], None)), Err(vec![]));
    }

    proptest! {
        /// Whatever the layout, a batch is one rack's outdated brokers, never
        /// takes a partition below its min ISR or the voters below a
        /// majority, and never holds the controller while others wait.
        #[test]
        fn a_batch_is_always_safe(
            rack_of in proptest::collection::vec(0u8..3, 3..9),
            isrs in proptest::collection::vec((proptest::collection::btree_set(0i32..9, 1..4), 1usize..3), 0..12),
            outdated_mask in proptest::collection::vec(any::<bool>(), 9),
            controller in 0i32..3,
        ) {
            let n = rack_of.len() as i32;
            let racks: BTreeMap<i32, String> = (0..n).map(|b| (b, format!("r{}", rack_of[b as usize]))).collect();
            let outdated: Vec<i32> = (0..n).filter(|b| outdated_mask[*b as usize]).collect();
            let parts: Vec<PartitionIsr> = isrs
                .iter()
                .enumerate()
                .map(|(i, (isr, min))| partition(&format!("t-{i}"), &isr.iter().copied().filter(|b| *b < n).collect::<Vec<_>>(), *min))
                .collect();
            let input = input(&outdated, &racks, &parts, Some(controller));
            if let Ok(batch) = next_batch(&input) {
                prop_assert!(batch.brokers.len() >= 2);
                prop_assert!(batch.brokers.iter().all(|b| outdated.contains(b) && racks[b] == batch.rack));
                let expected: Vec<i32> = outdated.iter().copied().filter(|b| racks[b] == batch.rack).collect();
                prop_assert_eq!(&batch.brokers, &expected, "the whole rack's outdated brokers");
                for p in &parts {
                    let left = p.isr.iter().filter(|b| !batch.brokers.contains(b)).count();
                    prop_assert!(left >= p.min_insync.max(1), "{:?} for {:?}", p, batch);
                }
                let voters_up = [0, 1, 2].iter().filter(|v| !batch.brokers.contains(v)).count();
                prop_assert!(voters_up >= 2);
                if batch.brokers.contains(&controller) {
                    prop_assert!(outdated.iter().all(|b| batch.brokers.contains(b)));
                }
            }
        }
    }
}
