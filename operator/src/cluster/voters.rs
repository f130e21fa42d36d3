//! The controller voters a KafkaCluster asks for (`spec.controllerVoters`:
//! brokers `0..controllerVoters`), reached through the brokers'
//! `ChangeControllerVoters`, one Raft membership change per reconcile pass.
//!
//! [`wanted`] is pure: the voter set the spec asks for when the committed
//! voters (from DescribeCluster) differ from it, `None` when they match or
//! when the brokers are too old to say. The scaling step ([`super::scale`])
//! calls [`step`] once the cluster is settled and every broker of the set is
//! registered and unfenced, before it moves replicas or removes pods: a
//! scale-down with fewer voters (replicas 5→3 with controllerVoters 5→3)
//! first moves the voters, then drains the brokers that go, then removes
//! their pods, so no voter's pod is removed while it votes. The rendered
//! `--voters` (the bootstrap set and contact points) is not part of the
//! config hash, so a voter change rolls no pod.

use crate::admin::ClusterAdmin;

/// The voters to ask for, `None` when `committed` already is `0..count`
/// or is empty (brokers that do not report their voters).
pub fn wanted(count: i32, committed: &[i32]) -> Option<Vec<i32>> {
    let wanted: Vec<i32> = (0..count.max(1)).collect();
    let mut committed = committed.to_vec();
    committed.sort_unstable();
    (!committed.is_empty() && committed != wanted).then_some(wanted)
}

/// Takes one step towards `voters`; returns what the cluster is doing, for
/// the Progressing condition.
pub async fn step(admin: &ClusterAdmin, voters: &[i32]) -> String {
    match admin.change_controller_voters(voters).await {
        Ok(r) if r.done => format!("controller voters are {voters:?}"),
        Ok(r) => format!("changing the controller voters from {:?} to {voters:?}: {}", r.voters, r.detail),
        Err(e) => format!("changing the controller voters to {voters:?} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_for_the_first_brokers_when_the_committed_voters_differ() {
        assert_eq!(wanted(5, &[0, 1, 2]), Some(vec![0, 1, 2, 3, 4]));
        assert_eq!(wanted(3, &[4, 0, 1, 3, 2]), Some(vec![0, 1, 2]));
        assert_eq!(wanted(3, &[2, 1, 0]), None);
        // A removed controller's node may lead for a moment; the set is what counts.
        assert_eq!(wanted(3, &[1, 2, 3]), Some(vec![0, 1, 2]));
        // Brokers older than voter changes report none: nothing is asked.
        assert_eq!(wanted(3, &[]), None);
    }
}
