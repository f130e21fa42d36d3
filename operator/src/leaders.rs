//! Leader balancing: preferred-leader election when leadership is skewed.
//!
//! Each partition's first replica is its preferred leader, and the operator's
//! assignment spreads preferred leaders evenly. Failovers and restarts move
//! leadership to other replicas and nothing moves it back, so one broker can
//! end up leading most partitions. As Kafka's auto leader rebalance
//! (`leader.imbalance.per.broker.percentage`, 10 by default), a broker is
//! imbalanced when more than that percentage of the partitions it should lead
//! are led by another broker; then the partitions whose preferred replica is
//! in the ISR get a preferred-leader election.

use std::collections::BTreeMap;

use strom_proto::admin::{PartitionRef, TopicDescription};

/// Kafka's default `leader.imbalance.per.broker.percentage`.
pub const DEFAULT_IMBALANCE_PERCENT: u32 = 10;

/// What [`plan`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderBalance {
    /// Brokers over the threshold, with (partitions preferred, of which led elsewhere).
    pub imbalanced: BTreeMap<i32, (u32, u32)>,
    /// Partitions to elect: an imbalanced broker is their preferred leader,
    /// does not lead them, but is in their ISR.
    pub to_elect: Vec<PartitionRef>,
}

/// Finds imbalanced brokers and the partitions an election would fix (pure).
/// Only the partitions of brokers over `threshold_percent` are elected.
pub fn plan(topics: &[TopicDescription], threshold_percent: u32) -> LeaderBalance {
    let mut per_broker: BTreeMap<i32, (u32, u32)> = BTreeMap::new();
    let mut candidates = Vec::new();
    for topic in topics.iter().filter(|t| t.error_code == 0) {
        for p in &topic.partitions {
            let Some(&preferred) = p.replicas.first() else { continue };
            let entry = per_broker.entry(preferred).or_default();
            entry.0 += 1;
            if p.leader != preferred {
                entry.1 += 1;
                if p.isr.contains(&preferred) {
                    candidates.push((preferred, PartitionRef { topic: topic.name.clone(), partition: p.partition }));
                }
            }
        }
    }
    let imbalanced: BTreeMap<i32, (u32, u32)> = per_broker
        .into_iter()
        .filter(|(_, (preferred, elsewhere))| {
            u64::from(*elsewhere) * 100 > u64::from(threshold_percent) * u64::from(*preferred)
        })
        .collect();
    let to_elect =
        candidates.into_iter().filter(|(broker, _)| imbalanced.contains_key(broker)).map(|(_, p)| p).collect();
    LeaderBalance { imbalanced, to_elect }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(partitions: &[(&[i32], &[i32], i32)]) -> TopicDescription {
        crate::topic::tests::described(partitions, &[])
    }

    #[test]
    fn balanced_leadership_needs_no_election() {
        let t = topic(&[(&[0, 1, 2], &[0, 1, 2], 0), (&[1, 2, 0], &[0, 1, 2], 1), (&[2, 0, 1], &[0, 1, 2], 2)]);
        assert_eq!(plan(&[t], DEFAULT_IMBALANCE_PERCENT), LeaderBalance::default());
    }

    #[test]
    fn skew_after_a_failover_elects_preferred_leaders_in_the_isr() {
        // Broker 0 came back: partitions 0 and 3 prefer it but 1 and 2 lead them.
        let t = topic(&[
            (&[0, 1, 2], &[0, 1, 2], 1),
            (&[1, 2, 0], &[0, 1, 2], 1),
            (&[2, 0, 1], &[0, 1, 2], 2),
            (&[0, 2, 1], &[2, 1], 2),
        ]);
        let balance = plan(&[t], DEFAULT_IMBALANCE_PERCENT);
        assert_eq!(balance.imbalanced, BTreeMap::from([(0, (2, 2))]));
        // Partition 3's preferred replica is not in the ISR yet: electing it would fail.
        // Partition 2 (preferred 2, led by 2) and broker 1's partitions need nothing.
        assert_eq!(balance.to_elect, vec![PartitionRef { topic: "orders".into(), partition: 0 }]);
    }

    #[test]
    fn a_skew_under_the_threshold_is_left_alone() {
        // Broker 0 prefers 20 partitions and leads 19 of them: 5 %, under 10 %.
        let mut partitions: Vec<(&[i32], &[i32], i32)> = vec![(&[0, 1], &[0, 1], 0); 19];
        partitions.push((&[0, 1], &[0, 1], 1));
        let balance = plan(&[topic(&partitions)], DEFAULT_IMBALANCE_PERCENT);
        assert!(balance.to_elect.is_empty(), "{balance:?}");
        assert!(plan(&[topic(&partitions)], 4).imbalanced.contains_key(&0));
    }
}
