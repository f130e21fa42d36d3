//! Status conditions in the Kubernetes shape, shared by both resources.
//!
//! Owns the one rule conditions must keep: `lastTransitionTime` moves only
//! when a condition's status flips, so `kubectl describe` tells how long a
//! cluster has been (not) ready rather than when the operator last looked.
//! Callers pass the clock in; nothing here reads the time itself.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The resource does what its spec asks and serves clients.
pub const READY: &str = "Ready";

/// The operator is moving the resource towards its spec.
pub const PROGRESSING: &str = "Progressing";

/// The resource works, but below what its spec asks (e.g. under-replicated).
pub const DEGRADED: &str = "Degraded";

/// Something works but needs attention (an even quorum, ephemeral storage,
/// under-replicated partitions); the message lists each.
pub const WARNING: &str = "Warning";

/// The `status` string Kubernetes uses for a boolean.
pub fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Sets condition `type_` to the given state, adding it if absent.
///
/// Keeps `lastTransitionTime` when the status is unchanged and sets it to
/// `now` when it flips (or the condition is new). Returns whether anything
/// changed, so the caller can skip a status write.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) -> bool {
    let status = status_str(status);
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) else {
        conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation,
            last_transition_time: now,
        });
        return true;
    };
    let unchanged = existing.status == status
        && existing.reason == reason
        && existing.message == message
        && existing.observed_generation == observed_generation;
    if unchanged {
        return false;
    }
    if existing.status != status {
        existing.status = status.to_owned();
        existing.last_transition_time = now;
    }
    existing.reason = reason.to_owned();
    existing.message = message.to_owned();
    existing.observed_generation = observed_generation;
    true
}

/// The condition of type `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether condition `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn new_condition_is_added_with_now_as_transition_time() {
        let mut conditions = Vec::new();
        assert!(set_condition(&mut conditions, READY, false, "Creating", "0/3 brokers", Some(1), at(100)));
        assert_eq!(conditions.len(), 1);
        let ready = &conditions[0];
        assert_eq!(ready.type_, READY);
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "Creating");
        assert_eq!(ready.message, "0/3 brokers");
        assert_eq!(ready.observed_generation, Some(1));
        assert_eq!(ready.last_transition_time, at(100));
    }

    #[test]
    fn unchanged_status_keeps_transition_time_but_updates_the_rest() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, READY, false, "Creating", "0/3 brokers", Some(1), at(100));
        assert!(set_condition(&mut conditions, READY, false, "Starting", "2/3 brokers", Some(2), at(200)));
        let ready = find_condition(&conditions, READY).unwrap();
        assert_eq!(ready.last_transition_time, at(100));
        assert_eq!(ready.reason, "Starting");
        assert_eq!(ready.message, "2/3 brokers");
        assert_eq!(ready.observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, READY, false, "Creating", "0/3 brokers", Some(1), at(100));
        assert!(set_condition(&mut conditions, READY, true, "AllBrokersReady", "3/3 brokers", Some(1), at(300)));
        let ready = find_condition(&conditions, READY).unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_transition_time, at(300));
        assert!(is_true(&conditions, READY));
    }

    #[test]
    fn identical_update_reports_no_change() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, DEGRADED, false, "AsExpected", "", Some(4), at(100));
        let before = conditions.clone();
        assert!(!set_condition(&mut conditions, DEGRADED, false, "AsExpected", "", Some(4), at(500)));
        assert_eq!(conditions, before);
    }

    #[test]
    fn conditions_of_other_types_are_left_alone() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, READY, true, "AllBrokersReady", "", Some(1), at(100));
        set_condition(&mut conditions, PROGRESSING, true, "Scaling", "3 -> 5", Some(2), at(200));
        set_condition(&mut conditions, READY, false, "BrokerDown", "broker 2", Some(2), at(300));
        assert_eq!(conditions.len(), 2);
        let progressing = find_condition(&conditions, PROGRESSING).unwrap();
        assert_eq!(progressing.last_transition_time, at(200));
        assert!(is_true(&conditions, PROGRESSING));
        assert!(!is_true(&conditions, READY));
        assert!(!is_true(&conditions, DEGRADED));
    }
}
