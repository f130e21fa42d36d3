//! Replica moves: which partitions to reassign, and where, so that every
//! replica sits on a broker that stays, every partition has its topic's
//! replication factor, and (when asked) replicas and preferred leaderships
//! are spread evenly over the brokers — after a scale-up, before a
//! scale-down, or when a KafkaTopic's replication factor changes.
//!
//! Pure and deterministic: the same placement in gives the same moves out,
//! and a placement the plan produced plans no further move, so a
//! reconciler can recompute it on every pass without oscillating. It moves
//! as few replicas as it can: a replica moves only off a leaving broker,
//! out of a partition with too many replicas, or off the most loaded
//! broker while the spread of replicas per broker exceeds one.
//!
//! Racks are not considered yet: moves balance replica counts alone (new
//! topics are placed rack-aware by `assignment`).

use std::collections::BTreeMap;

use strom_proto::admin::TopicDescription;

/// One partition's current replicas (a running reassignment's target) and
/// the replication factor it should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Replica broker ids; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// The replication factor the partition should have.
    pub replication_factor: usize,
}

/// A partition to reassign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Its replicas now.
    pub from: Vec<i32>,
    /// Its replicas afterwards; the first is the preferred leader.
    pub to: Vec<i32>,
}

/// Why no plan exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A topic needs more replicas than there are brokers.
    #[error(
        "topic {topic} needs {replication_factor} replicas per partition but only {brokers} broker(s) would remain; \
         lower its replicationFactor first or keep at least {replication_factor} brokers"
    )]
    ReplicationFactorTooLarge { topic: String, replication_factor: usize, brokers: usize },
}

/// The moves that put `placements` on `brokers`; with `balance`, also
/// evens out replicas and preferred leaderships per broker.
pub fn plan(placements: &[Placement], brokers: &[i32], balance: bool) -> Result<Vec<Move>, PlanError> {
    if let Some(p) = placements.iter().find(|p| p.replication_factor > brokers.len()) {
        return Err(PlanError::ReplicationFactorTooLarge {
            topic: p.topic.clone(),
            replication_factor: p.replication_factor,
            brokers: brokers.len(),
        });
    }
    let mut lists: Vec<Vec<i32>> = placements.iter().map(|p| p.replicas.clone()).collect();
    let mut replicas: BTreeMap<i32, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    for r in lists.iter().flatten() {
        if let Some(n) = replicas.get_mut(r) {
            *n += 1;
        }
    }

    // Fit: replicas only on staying brokers, exactly the replication factor.
    for (list, p) in lists.iter_mut().zip(placements) {
        list.retain(|r| replicas.contains_key(r));
        while list.len() > p.replication_factor {
            // Drop the most loaded follower (never the preferred leader while another can go).
            let Some(at) = (1..list.len()).max_by_key(|&i| (replicas[&list[i]], list[i])).or(Some(0)) else { break };
            let gone = list.remove(at);
            if let Some(n) = replicas.get_mut(&gone) {
                *n -= 1;
            }
        }
        while list.len() < p.replication_factor {
            let Some(next) = brokers.iter().copied().filter(|b| !list.contains(b)).min_by_key(|b| (replicas[b], *b))
            else {
                break;
            };
            list.push(next);
            if let Some(n) = replicas.get_mut(&next) {
                *n += 1;
            }
        }
    }

    if balance {
        // Replicas: move one from the most to the least loaded broker until the spread is at most one.
        for _ in 0..lists.iter().map(Vec::len).sum::<usize>() {
            let Some((hi, lo)) = extremes(&replicas) else { break };
            if replicas[&hi] <= replicas[&lo] + 1 {
                break;
            }
            let Some(list) = lists.iter_mut().find(|l| l.contains(&hi) && !l.contains(&lo)) else { break };
            if let Some(slot) = list.iter_mut().find(|r| **r == hi) {
                *slot = lo;
            }
            replicas.entry(hi).and_modify(|n| *n -= 1);
            replicas.entry(lo).and_modify(|n| *n += 1);
        }
        // Preferred leaders: swap a replica of the least-leading broker to the front.
        let mut leaders: BTreeMap<i32, usize> = brokers.iter().map(|b| (*b, 0)).collect();
        for first in lists.iter().filter_map(|l| l.first()) {
            leaders.entry(*first).and_modify(|n| *n += 1);
        }
        for _ in 0..lists.len() {
            let Some((hi, lo)) = extremes(&leaders) else { break };
            if leaders[&hi] <= leaders[&lo] + 1 {
                break;
            }
            let Some(list) = lists.iter_mut().find(|l| l.first() == Some(&hi) && l.contains(&lo)) else { break };
            if let Some(at) = list.iter().position(|r| *r == lo) {
                list.swap(0, at);
            }
            leaders.entry(hi).and_modify(|n| *n -= 1);
            leaders.entry(lo).and_modify(|n| *n += 1);
        }
    }

    Ok(placements
        .iter()
        .zip(lists)
        .filter(|(p, to)| p.replicas != *to)
        .map(|(p, to)| Move { topic: p.topic.clone(), partition: p.partition, from: p.replicas.clone(), to })
        .collect())
}

/// The most and the least loaded broker (ties: lowest id for the least,
/// highest for the most, so that repeated plans agree).
fn extremes(load: &BTreeMap<i32, usize>) -> Option<(i32, i32)> {
    let hi = load.iter().max_by_key(|(id, n)| (**n, **id)).map(|(id, _)| *id)?;
    let lo = load.iter().min_by_key(|(id, n)| (**n, **id)).map(|(id, _)| *id)?;
    Some((hi, lo))
}

/// The placement of every partition the brokers report: a running
/// reassignment's target, and the replication factor it has.
pub fn placements(topics: &[TopicDescription]) -> Vec<Placement> {
    let mut out = Vec::new();
    for t in topics.iter().filter(|t| t.error_code == 0) {
        for p in &t.partitions {
            let replicas: Vec<i32> = p.replicas.iter().copied().filter(|r| !p.removing_replicas.contains(r)).collect();
            out.push(Placement {
                topic: t.name.clone(),
                partition: p.partition,
                replication_factor: replicas.len(),
                replicas,
            });
        }
    }
    out
}

/// Applies `moves` to `placements` (what the cluster looks like once they finish).
pub fn after(placements: &[Placement], moves: &[Move]) -> Vec<Placement> {
    placements
        .iter()
        .map(|p| {
            let to = moves.iter().find(|m| m.topic == p.topic && m.partition == p.partition);
            Placement { replicas: to.map_or_else(|| p.replicas.clone(), |m| m.to.clone()), ..p.clone() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topic(name: &str, lists: &[&[i32]], rf: usize) -> Vec<Placement> {
        lists
            .iter()
            .enumerate()
            .map(|(i, r)| Placement {
                topic: name.into(),
                partition: i as i32,
                replicas: r.to_vec(),
                replication_factor: rf,
            })
            .collect()
    }

    fn load(placements: &[Placement]) -> (BTreeMap<i32, usize>, BTreeMap<i32, usize>) {
        let (mut replicas, mut leaders) = (BTreeMap::new(), BTreeMap::new());
        for p in placements {
            *leaders.entry(p.replicas[0]).or_default() += 1;
            for r in &p.replicas {
                *replicas.entry(*r).or_default() += 1;
            }
        }
        (replicas, leaders)
    }

    #[test]
    fn scaling_up_from_three_to_five_brokers_spreads_replicas_and_leaders() {
        let before = topic("orders", &[&[0, 1, 2], &[1, 2, 0], &[2, 0, 1], &[0, 2, 1], &[1, 0, 2], &[2, 1, 0]], 3);
        let moves = plan(&before, &[0, 1, 2, 3, 4], true).unwrap();
        let after = after(&before, &moves);
        let (replicas, leaders) = load(&after);
        assert_eq!(replicas.len(), 5, "{after:?}");
        assert!(replicas.values().all(|n| (3..=4).contains(n)), "18 replicas on 5 brokers: {replicas:?}");
        assert!(leaders.values().all(|n| *n <= 2), "{leaders:?}");
        assert!(after.iter().all(|p| p.replicas.len() == 3), "{after:?}");
        // Only what must move moves: 18 replicas, each new broker takes 3 or 4.
        let moved: usize = moves.iter().map(|m| m.to.iter().filter(|r| !m.from.contains(r)).count()).sum();
        assert!(moved <= 7, "{moved} replicas moved: {moves:?}");
        assert_eq!(plan(&after, &[0, 1, 2, 3, 4], true).unwrap(), vec![], "a balanced cluster plans nothing");
    }

    #[test]
    fn scaling_down_drains_the_leaving_brokers() {
        let before = topic("orders", &[&[3, 0, 1], &[4, 1, 2], &[0, 3, 4], &[1, 2, 3], &[2, 4, 0], &[0, 1, 2]], 3);
        let moves = plan(&before, &[0, 1, 2], false).unwrap();
        let after = after(&before, &moves);
        assert!(after.iter().all(|p| p.replicas.iter().all(|r| *r < 3)), "{after:?}");
        assert!(after.iter().all(|p| p.replicas.len() == 3));
        assert_eq!(after[5].replicas, vec![0, 1, 2], "partitions on staying brokers are left alone");
        assert_eq!(after[2].replicas[0], 0, "a staying preferred leader keeps its place");
    }

    #[test]
    fn a_replication_factor_the_brokers_cannot_hold_is_refused_by_name() {
        let placements = topic("wide", &[&[0, 1, 2, 3]], 4);
        let e = plan(&placements, &[0, 1, 2], false).unwrap_err();
        assert_eq!(e, PlanError::ReplicationFactorTooLarge { topic: "wide".into(), replication_factor: 4, brokers: 3 });
        assert!(e.to_string().contains("topic wide needs 4 replicas"), "{e}");
    }

    #[test]
    fn the_replication_factor_grows_and_shrinks_per_partition() {
        let grow = topic("t", &[&[0, 1], &[1, 2], &[2, 0]], 3);
        let moves = plan(&grow, &[0, 1, 2], false).unwrap();
        assert_eq!(moves.len(), 3);
        assert!(moves.iter().all(|m| m.to.len() == 3 && m.to[..2] == m.from[..]), "{moves:?}");
        let shrink = topic("t", &[&[0, 1, 2], &[1, 2, 0], &[2, 0, 1]], 1);
        let moves = plan(&shrink, &[0, 1, 2], false).unwrap();
        let kept: Vec<Vec<i32>> = moves.iter().map(|m| m.to.clone()).collect();
        assert_eq!(kept, vec![vec![0], vec![1], vec![2]], "the preferred leader stays");
    }

    #[test]
    fn placements_use_a_running_moves_target() {
        let topic = TopicDescription {
            name: "orders".into(),
            partitions: vec![
                strom_proto::admin::PartitionDescription { partition: 0, replicas: vec![0, 1], ..Default::default() },
                strom_proto::admin::PartitionDescription {
                    partition: 1,
                    replicas: vec![3, 1, 0],
                    adding_replicas: vec![3],
                    removing_replicas: vec![0],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let unknown = TopicDescription { name: "gone".into(), error_code: 3, ..Default::default() };
        let p = placements(&[topic, unknown]);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].replicas.clone(), p[0].replication_factor), (vec![0, 1], 2));
        assert_eq!((p[1].replicas.clone(), p[1].replication_factor), (vec![3, 1], 2));
    }

    proptest! {
        #[test]
        fn plans_fit_and_settle(
            brokers in 1usize..7,
            leaving in 0usize..3,
            rf in 1usize..4,
            seed in proptest::collection::vec(0i32..9, 1..40),
        ) {
            let total = brokers + leaving;
            prop_assume!(rf <= brokers);
            // Partitions with distinct replicas over all brokers (staying and leaving).
            let placements: Vec<Placement> = seed
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let width = rf.min(total);
                    let replicas = (0..width).map(|k| ((*s as usize + k) % total) as i32).collect();
                    Placement { topic: "t".into(), partition: i as i32, replicas, replication_factor: rf }
                })
                .collect();
            let staying: Vec<i32> = (0..brokers as i32).collect();
            let moves = plan(&placements, &staying, true).unwrap();
            let after = after(&placements, &moves);
            for p in &after {
                prop_assert_eq!(p.replicas.len(), rf);
                prop_assert!(p.replicas.iter().all(|r| staying.contains(r)));
                let mut sorted = p.replicas.clone();
                sorted.sort_unstable();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), rf, "a broker twice in {:?}", p.replicas);
            }
            let (replicas, _) = load(&after);
            let most = staying.iter().map(|b| replicas.get(b).copied().unwrap_or(0)).max().unwrap_or(0);
            let least = staying.iter().map(|b| replicas.get(b).copied().unwrap_or(0)).min().unwrap_or(0);
            prop_assert!(most <= least + 1, "unbalanced: {:?}", replicas);
            prop_assert_eq!(plan(&after, &staying, true).unwrap(), vec![], "a second plan moves nothing");
        }
    }
}
