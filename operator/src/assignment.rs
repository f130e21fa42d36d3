//! Replica placement for new partitions: which brokers hold each partition
//! and which of them is the preferred leader (the first replica).
//!
//! Pure: the input is the live brokers (with their racks) and how many
//! preferred leaderships and replicas each already carries, in this topic
//! and in the whole cluster; the output is one replica list per new
//! partition. The topic's own balance comes first, the cluster's breaks ties.
//! Invariants, checked by the property tests below:
//! - no broker holds two replicas of one partition;
//! - a partition's replicas cover `min(replication factor, racks)` racks;
//! - the topic's preferred leaderships stay within ±1 per broker when they
//!   start balanced (each new leadership goes to a broker with the fewest).

use std::collections::{BTreeMap, BTreeSet};

/// A broker that can take replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeable {
    /// The broker's node id.
    pub id: i32,
    /// Its rack, when rack awareness is configured.
    pub rack: Option<String>,
}

/// How loaded each broker already is, across every topic of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    /// Preferred leaderships (first replica) per broker id.
    pub leaders: BTreeMap<i32, usize>,
    /// Replicas per broker id.
    pub replicas: BTreeMap<i32, usize>,
}

impl Load {
    /// The load of existing partitions given as replica lists (first = preferred leader).
    pub fn of<'a>(assignments: impl IntoIterator<Item = &'a [i32]>) -> Load {
        let mut load = Load::default();
        for replicas in assignments {
            if let Some(first) = replicas.first() {
                *load.leaders.entry(*first).or_default() += 1;
            }
            for r in replicas {
                *load.replicas.entry(*r).or_default() += 1;
            }
        }
        load
    }

    fn leaders_of(&self, id: i32) -> usize {
        self.leaders.get(&id).copied().unwrap_or(0)
    }

    fn replicas_of(&self, id: i32) -> usize {
        self.replicas.get(&id).copied().unwrap_or(0)
    }
}

/// Why no assignment could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    /// Fewer live brokers than the replication factor.
    #[error(
        "replication factor {replication_factor} needs {replication_factor} brokers, but only {brokers} are available; \
         lower replicationFactor or add brokers"
    )]
    NotEnoughBrokers { replication_factor: i32, brokers: usize },
    /// A replication factor below 1.
    #[error("replication factor {0} is invalid: it must be at least 1")]
    InvalidReplicationFactor(i32),
}

/// Assigns `count` new partitions with `replication_factor` replicas each.
///
/// Each partition's preferred leader is the broker with the fewest preferred
/// leaderships of this topic (then of the cluster, then fewest replicas, then
/// lowest id); its followers come first from racks the partition does not
/// use yet, then from the brokers with the fewest replicas of the topic and
/// of the cluster. Both loads are updated with what was assigned.
pub fn assign(
    brokers: &[Placeable],
    count: usize,
    replication_factor: i32,
    topic: &mut Load,
    cluster: &mut Load,
) -> Result<Vec<Vec<i32>>, AssignmentError> {
    if replication_factor < 1 {
        return Err(AssignmentError::InvalidReplicationFactor(replication_factor));
    }
    let rf = replication_factor as usize;
    let distinct: BTreeMap<i32, &Placeable> = brokers.iter().map(|b| (b.id, b)).collect();
    if distinct.len() < rf {
        return Err(AssignmentError::NotEnoughBrokers { replication_factor, brokers: distinct.len() });
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let leader = distinct
            .values()
            .min_by_key(|b| {
                (
                    topic.leaders_of(b.id),
                    cluster.leaders_of(b.id),
                    topic.replicas_of(b.id),
                    cluster.replicas_of(b.id),
                    b.id,
                )
            })
            .map(|b| b.id)
            .ok_or(AssignmentError::NotEnoughBrokers { replication_factor, brokers: 0 })?;
        let mut replicas = vec![leader];
        let mut racks: BTreeSet<Option<&str>> = BTreeSet::new();
        racks.insert(distinct[&leader].rack.as_deref());
        while replicas.len() < rf {
            let next = distinct
                .values()
                .filter(|b| !replicas.contains(&b.id))
                .min_by_key(|b| {
                    let rack_used = b.rack.is_some() && racks.contains(&b.rack.as_deref());
                    (rack_used, topic.replicas_of(b.id), cluster.replicas_of(b.id), b.id)
                })
                .map(|b| b.id)
                .ok_or(AssignmentError::NotEnoughBrokers { replication_factor, brokers: distinct.len() })?;
            racks.insert(distinct[&next].rack.as_deref());
            replicas.push(next);
        }
        for load in [&mut *topic, &mut *cluster] {
            *load.leaders.entry(leader).or_default() += 1;
            for r in &replicas {
                *load.replicas.entry(*r).or_default() += 1;
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<Placeable> {
        racks.iter().enumerate().map(|(i, r)| Placeable { id: i as i32, rack: r.map(str::to_string) }).collect()
    }

    #[test]
    fn six_partitions_on_three_brokers_lead_two_each() {
        let mut load = Load::default();
        let a = assign(&brokers(&[None, None, None]), 6, 3, &mut load, &mut Load::default()).unwrap();
        assert_eq!(a.len(), 6);
        assert_eq!(load.leaders, BTreeMap::from([(0, 2), (1, 2), (2, 2)]));
        assert_eq!(load.replicas, BTreeMap::from([(0, 6), (1, 6), (2, 6)]));
    }

    #[test]
    fn a_second_topic_fills_the_brokers_the_first_left_light() {
        let mut cluster = Load::of([&[0, 1][..], &[0, 2][..]]);
        let a = assign(&brokers(&[None, None, None]), 2, 2, &mut Load::default(), &mut cluster).unwrap();
        let leaders: Vec<i32> = a.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2], "broker 0 already leads two partitions");
    }

    #[test]
    fn a_topic_is_balanced_first_even_on_an_unbalanced_cluster() {
        let mut cluster = Load::of([&[2][..], &[2][..], &[2][..], &[1][..]]);
        let a = assign(&brokers(&[None, None, None]), 6, 1, &mut Load::default(), &mut cluster).unwrap();
        let mut per_broker = BTreeMap::new();
        for r in &a {
            *per_broker.entry(r[0]).or_insert(0) += 1;
        }
        assert_eq!(per_broker, BTreeMap::from([(0, 2), (1, 2), (2, 2)]));
        assert_eq!(a[0][0], 0, "ties go to the broker the cluster loads least");
    }

    #[test]
    fn growing_a_topic_continues_its_balance() {
        let mut topic = Load::of([&[0, 1][..], &[0, 2][..], &[1, 2][..]]);
        let a = assign(&brokers(&[None, None, None]), 3, 2, &mut topic, &mut Load::default()).unwrap();
        assert_eq!(a[0][0], 2, "broker 2 leads none of the topic's partitions yet");
        assert_eq!(topic.leaders, BTreeMap::from([(0, 2), (1, 2), (2, 2)]));
    }

    #[test]
    fn followers_go_to_other_racks_first() {
        let b = brokers(&[Some("a"), Some("a"), Some("b"), Some("b")]);
        let a = assign(&b, 8, 2, &mut Load::default(), &mut Load::default()).unwrap();
        for replicas in a {
            let racks: BTreeSet<_> = replicas.iter().map(|id| b[*id as usize].rack.clone()).collect();
            assert_eq!(racks.len(), 2, "{replicas:?} spans both racks");
        }
    }

    #[test]
    fn too_few_brokers_is_refused_with_the_numbers() {
        let err = assign(&brokers(&[None, None]), 1, 3, &mut Load::default(), &mut Load::default()).unwrap_err();
        assert_eq!(err, AssignmentError::NotEnoughBrokers { replication_factor: 3, brokers: 2 });
        assert!(err.to_string().contains("only 2 are available"), "{err}");
        assert_eq!(
            assign(&brokers(&[None]), 1, 0, &mut Load::default(), &mut Load::default()).unwrap_err(),
            AssignmentError::InvalidReplicationFactor(0)
        );
    }

    fn rack_layout() -> impl Strategy<Value = Vec<Option<String>>> {
        (1usize..8, 0usize..4).prop_flat_map(|(n, racks)| {
            proptest::collection::vec((0..racks.max(1)).prop_map(move |r| (racks > 0).then(|| format!("rack-{r}"))), n)
        })
    }

    proptest! {
        #[test]
        fn assignments_keep_their_invariants(
            layout in rack_layout(),
            partitions in 1usize..40,
            rf_pick in 1usize..8,
            cluster_leaders in proptest::collection::vec(0usize..20, 8),
        ) {
            let b: Vec<Placeable> = layout
                .iter()
                .enumerate()
                .map(|(i, r)| Placeable { id: i as i32 * 3 + 1, rack: r.clone() })
                .collect();
            let rf = rf_pick.min(b.len()) as i32;
            let mut load = Load::default();
            let mut cluster = Load {
                leaders: b.iter().zip(&cluster_leaders).map(|(x, n)| (x.id, *n)).collect(),
                replicas: BTreeMap::new(),
            };
            let a = assign(&b, partitions, rf, &mut load, &mut cluster).unwrap();
            prop_assert_eq!(a.len(), partitions);
            let all_racks: BTreeSet<_> = b.iter().filter_map(|x| x.rack.clone()).collect();
            for replicas in &a {
                prop_assert_eq!(replicas.len(), rf as usize);
                let unique: BTreeSet<_> = replicas.iter().collect();
                prop_assert_eq!(unique.len(), replicas.len(), "a broker twice in {:?}", replicas);
                if !all_racks.is_empty() && b.iter().all(|x| x.rack.is_some()) {
                    let racks: BTreeSet<_> = replicas
                        .iter()
                        .map(|id| b.iter().find(|x| x.id == *id).and_then(|x| x.rack.clone()))
                        .collect();
                    prop_assert_eq!(racks.len(), (rf as usize).min(all_racks.len()), "racks of {:?}", replicas);
                }
            }
            let leaders: Vec<usize> = b.iter().map(|x| load.leaders.get(&x.id).copied().unwrap_or(0)).collect();
            let (min, max) = (leaders.iter().min().unwrap(), leaders.iter().max().unwrap());
            prop_assert!(max - min <= 1, "leader counts {:?}", leaders);
        }
    }
}
