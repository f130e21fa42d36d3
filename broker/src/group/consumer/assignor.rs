//! Server-side assignors of the consumer group protocol: `uniform` (Kafka's
//! default: balanced and sticky) and `range` (per topic, contiguous ranges).
//!
//! An assignor is a pure function of the members' subscriptions, the
//! subscribed topics' metadata and (for stickiness) the previous target. It
//! assigns every partition of every subscribed, existing topic to exactly one
//! member subscribed to that topic; it never assigns a partition to a member
//! that does not subscribe to its topic.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// The `uniform` assignor's name.
pub const UNIFORM: &str = "uniform";
/// The `range` assignor's name.
pub const RANGE: &str = "range";

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What the group knows of a subscribed topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicMeta {
    /// The topic id.
    pub id: Uuid,
    /// Its partition count.
    pub partitions: i32,
}

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct AssignorMember<'a> {
    /// The member id.
    pub member_id: &'a str,
    /// Its subscribed topic names.
    pub topics: &'a BTreeSet<String>,
    /// Its previous target, for stickiness.
    pub previous: Option<&'a Assignment>,
}

/// Whether `name` is an assignor this broker has.
pub fn is_supported(name: &str) -> bool {
    name == UNIFORM || name == RANGE
}

/// Runs the assignor `name` (`range`, otherwise `uniform`).
pub fn assign(
    name: &str,
    members: &[AssignorMember<'_>],
    metadata: &BTreeMap<String, TopicMeta>,
) -> BTreeMap<String, Assignment> {
    if name == RANGE { range(members, metadata) } else { uniform(members, metadata) }
}

/// The members subscribed to each existing topic, by topic name, in member id order.
fn subscribers<'a>(
    members: &[AssignorMember<'a>],
    metadata: &BTreeMap<String, TopicMeta>,
) -> BTreeMap<String, Vec<&'a str>> {
    let mut by_topic: BTreeMap<String, Vec<&'a str>> = BTreeMap::new();
    for m in members {
        for t in m.topics {
            if metadata.contains_key(t) {
                by_topic.entry(t.clone()).or_default().push(m.member_id);
            }
        }
    }
    for v in by_topic.values_mut() {
        v.sort_unstable();
    }
    by_topic
}

fn empty_targets(members: &[AssignorMember<'_>]) -> BTreeMap<String, Assignment> {
    members.iter().map(|m| (m.member_id.to_string(), Assignment::new())).collect()
}

/// Range: for each topic, its subscribers in member id order get contiguous
/// ranges; the first `partitions % subscribers` get one partition more.
pub fn range(members: &[AssignorMember<'_>], metadata: &BTreeMap<String, TopicMeta>) -> BTreeMap<String, Assignment> {
    let mut out = empty_targets(members);
    for (topic, subs) in subscribers(members, metadata) {
        let Some(meta) = metadata.get(&topic) else { continue };
        let n = subs.len() as i32;
        let (base, extra) = (meta.partitions / n, meta.partitions % n);
        let mut next = 0;
        for (i, member) in subs.iter().enumerate() {
            let count = base + i32::from((i as i32) < extra);
            let parts: BTreeSet<i32> = (next..next + count).collect();
            next += count;
            if !parts.is_empty()
                && let Some(a) = out.get_mut(*member)
            {
                a.insert(meta.id, parts);
            }
        }
    }
    out
}

/// Uniform: balanced and sticky. Each member's quota is its fair share of
/// the partitions it can take (the sum over its topics of partitions divided
/// by subscribers), rounded down, plus one for as many members as the
/// remainder allows. Partitions first stay with their previous owner within
/// its quota; the rest go, most constrained partition first, to the eligible
/// member holding the fewest. With identical subscriptions every member ends
/// with ⌊P/N⌋ or ⌈P/N⌉ partitions.
pub fn uniform(members: &[AssignorMember<'_>], metadata: &BTreeMap<String, TopicMeta>) -> BTreeMap<String, Assignment> {
    let mut out = empty_targets(members);
    let subs = subscribers(members, metadata);
    if subs.is_empty() {
        return out;
    }
    // Fair shares in units of 1/lcm would be exact; a float is enough for quotas.
    let mut share: BTreeMap<&str, f64> = BTreeMap::new();
    for (topic, ms) in &subs {
        let p = metadata.get(topic).map_or(0, |m| m.partitions) as f64;
        for m in ms {
            *share.entry(m).or_default() += p / ms.len() as f64;
        }
    }
    let total: i64 = subs.keys().filter_map(|t| metadata.get(t)).map(|m| i64::from(m.partitions)).sum();
    let floor: BTreeMap<&str, i64> = share.iter().map(|(m, s)| (*m, (s + 1e-9).floor() as i64)).collect();
    let mut extras = total - floor.values().sum::<i64>();
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    let mut owner: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
    let eligible = |topic: &str, member: &str| subs.get(topic).is_some_and(|v| v.contains(&member));
    let id_to_topic: BTreeMap<Uuid, &str> =
        subs.keys().filter_map(|t| metadata.get(t).map(|m| (m.id, t.as_str()))).collect();

    // Sticky pass: within quota first, then up to quota + 1 while extras remain.
    for allow_extra in [false, true] {
        for m in members {
            let Some(prev) = m.previous else { continue };
            for (id, parts) in prev {
                let Some(topic) = id_to_topic.get(id) else { continue };
                let Some(meta) = metadata.get(*topic) else { continue };
                if !eligible(topic, m.member_id) {
                    continue;
                }
                for &p in parts {
                    if p < 0 || p >= meta.partitions || owner.contains_key(&(*id, p)) {
                        continue;
                    }
                    let c = count.get(m.member_id).copied().unwrap_or(0);
                    let q = floor.get(m.member_id).copied().unwrap_or(0);
                    let fits = c < q || (allow_extra && c == q && extras > 0);
                    if !fits {
                        continue;
                    }
                    if c == q {
                        extras -= 1;
                    }
                    owner.insert((*id, p), m.member_id);
                    *count.entry(m.member_id).or_default() += 1;
                }
            }
        }
    }

    // The rest, the partitions with the fewest eligible members first.
    let mut rest: Vec<(usize, &str, Uuid, i32)> = Vec::new();
    for (topic, ms) in &subs {
        let Some(meta) = metadata.get(topic) else { continue };
        for p in 0..meta.partitions {
            if !owner.contains_key(&(meta.id, p)) {
                rest.push((ms.len(), topic.as_str(), meta.id, p));
            }
        }
    }
    rest.sort();
    for (_, topic, id, p) in rest {
        let Some(ms) = subs.get(topic) else { continue };
        // Prefer members below their quota, then those that may still take an extra.
        let pick = ms
            .iter()
            .min_by_key(|m| {
                let c = count.get(**m).copied().unwrap_or(0);
                let q = floor.get(**m).copied().unwrap_or(0);
                let class = if c < q {
                    0
                } else if c == q && extras > 0 {
                    1
                } else {
                    2
                };
                (class, c, **m)
            })
            .copied();
        let Some(m) = pick else { continue };
        let c = count.get(m).copied().unwrap_or(0);
        if c == floor.get(m).copied().unwrap_or(0) && extras > 0 {
            extras -= 1;
        }
        owner.insert((id, p), m);
        *count.entry(m).or_default() += 1;
    }

    for ((id, p), m) in owner {
        if let Some(a) = out.get_mut(m) {
            a.entry(id).or_default().insert(p);
        }
    }
    out
}
