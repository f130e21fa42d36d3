//! What to do with a cluster's certificate authorities and the certificates
//! they sign, given the time and what the Secrets hold: create, keep, renew
//! a CA; issue a leaf certificate again; retire the previous CA.
//!
//! Renewal never restarts a pod. It moves through Secret updates the brokers
//! pick up from disk (the kubelet refreshes Secret volumes, the brokers
//! reload certificates for new connections):
//!
//! 1. **Renew**: a new CA key and certificate; the previous certificate stays
//!    in the trust bundle (`ca.crt` holds both), so peers and clients that
//!    trust either accept the certificates of both.
//! 2. **Leaves** not signed by the current CA (or inside their own renewal
//!    window) are issued again from it.
//! 3. **Retire**: once every leaf is of the current CA and a grace period
//!    has passed since the renewal (time for the Secret volumes to refresh
//!    and the brokers to reload), the previous CA leaves the bundle. An
//!    expired previous CA leaves it at once.
//!
//! Pure: times are Unix seconds passed in; nothing here reads a clock, a
//! Secret or a certificate. The I/O shell is `cluster_ca`.

/// Seconds in a day.
const DAY: i64 = 86_400;

/// A CA's settings, from `spec.certificateAuthorities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaPolicy {
    /// Validity of a generated CA and of the leaves it signs, in days.
    pub validity_days: u32,
    /// Renew this many days before expiry.
    pub renewal_days: u32,
    /// Whether the operator generates the CA (false: the user provides it).
    pub generate: bool,
}

/// What the CA Secret holds now, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaState {
    /// The current CA certificate's expiry.
    pub not_after: i64,
    /// Expiry of each previous CA certificate still in the trust bundle.
    pub previous: Vec<i64>,
    /// When the current CA replaced the previous one (none: never renewed).
    pub renewed_at: Option<i64>,
    /// Whether `strom.dev/force-renew` asks for a renewal now.
    pub force_renew: bool,
}

/// What to do with the CA itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaAction {
    /// No CA yet: generate one.
    Create,
    /// The user provides the CA (`generate: false`) and its Secret is missing.
    AwaitUserCa,
    /// Replace the CA (the previous certificate stays trusted for a while).
    Renew(RenewReason),
    /// A user-provided CA is inside its renewal window: only the user can renew it.
    UserCaExpiring {
        /// Its expiry.
        not_after: i64,
    },
    /// Nothing to do.
    Keep,
}

/// Why a CA is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewReason {
    /// Inside the renewal window (`renewalDays` before expiry) or expired.
    Expiring,
    /// The `strom.dev/force-renew` annotation.
    Forced,
}

/// The decision about the CA.
pub fn ca_action(now: i64, policy: CaPolicy, state: Option<&CaState>) -> CaAction {
    let Some(state) = state else {
        return if policy.generate { CaAction::Create } else { CaAction::AwaitUserCa };
    };
    let expiring = now >= state.not_after.saturating_sub(i64::from(policy.renewal_days) * DAY);
    match (policy.generate, state.force_renew, expiring) {
        (true, true, _) => CaAction::Renew(RenewReason::Forced),
        (true, false, true) => CaAction::Renew(RenewReason::Expiring),
        (false, _, true) => CaAction::UserCaExpiring { not_after: state.not_after },
        _ => CaAction::Keep,
    }
}

/// A leaf certificate as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// Whether the current CA signed it.
    pub of_current_ca: bool,
    /// Its expiry.
    pub not_after: i64,
}

/// Whether a leaf (none: missing) must be issued (again) from the current CA.
pub fn leaf_needs_issue(now: i64, renewal_days: u32, leaf: Option<Leaf>) -> bool {
    match leaf {
        None => true,
        Some(leaf) => !leaf.of_current_ca || now >= leaf.not_after.saturating_sub(i64::from(renewal_days) * DAY),
    }
}

/// The expiry a leaf issued now gets: `validity_days` from now, but never
/// past its CA's expiry (a leaf cannot outlive the CA that vouches for it).
pub fn leaf_not_after(now: i64, validity_days: u32, ca_not_after: i64) -> i64 {
    now.saturating_add(i64::from(validity_days) * DAY).min(ca_not_after)
}

/// The previous CA certificates (by index in `state.previous`) to keep in
/// the trust bundle: none once every leaf is of the current CA and `grace`
/// seconds have passed since the renewal; never an expired one.
pub fn previous_to_keep(now: i64, state: &CaState, all_leaves_current: bool, grace: i64) -> Vec<usize> {
    let settled = all_leaves_current && state.renewed_at.is_none_or(|at| now >= at.saturating_add(grace));
    if settled {
        return Vec::new();
    }
    state.previous.iter().enumerate().filter(|(_, not_after)| **not_after > now).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const GENERATED: CaPolicy = CaPolicy { validity_days: 365, renewal_days: 30, generate: true };
    const USER: CaPolicy = CaPolicy { generate: false, ..GENERATED };

    fn state(not_after: i64) -> CaState {
        CaState { not_after, previous: vec![], renewed_at: None, force_renew: false }
    }

    #[test]
    fn a_missing_ca_is_created_unless_the_user_provides_it() {
        assert_eq!(ca_action(NOW, GENERATED, None), CaAction::Create);
        assert_eq!(ca_action(NOW, USER, None), CaAction::AwaitUserCa);
    }

    #[test]
    fn a_ca_is_renewed_from_renewal_days_before_expiry() {
        let expiry = NOW + 30 * DAY;
        assert_eq!(ca_action(NOW - 1, GENERATED, Some(&state(expiry))), CaAction::Keep);
        assert_eq!(ca_action(NOW, GENERATED, Some(&state(expiry))), CaAction::Renew(RenewReason::Expiring));
        assert_eq!(ca_action(expiry + DAY, GENERATED, Some(&state(expiry))), CaAction::Renew(RenewReason::Expiring));
    }

    #[test]
    fn force_renew_renews_a_young_ca_but_a_user_ca_is_only_reported() {
        let young = CaState { force_renew: true, ..state(NOW + 300 * DAY) };
        assert_eq!(ca_action(NOW, GENERATED, Some(&young)), CaAction::Renew(RenewReason::Forced));
        assert_eq!(ca_action(NOW, USER, Some(&young)), CaAction::Keep, "the operator never replaces a user's CA");
        let old = state(NOW + DAY);
        assert_eq!(ca_action(NOW, USER, Some(&old)), CaAction::UserCaExpiring { not_after: NOW + DAY });
    }

    #[test]
    fn leaves_are_issued_when_missing_of_another_ca_or_expiring() {
        let fresh = Leaf { of_current_ca: true, not_after: NOW + 100 * DAY };
        assert!(!leaf_needs_issue(NOW, 30, Some(fresh)));
        assert!(leaf_needs_issue(NOW, 30, None));
        assert!(leaf_needs_issue(NOW, 30, Some(Leaf { of_current_ca: false, ..fresh })));
        assert!(leaf_needs_issue(NOW + 70 * DAY, 30, Some(fresh)));
    }

    #[test]
    fn a_leaf_never_outlives_its_ca() {
        assert_eq!(leaf_not_after(NOW, 365, NOW + 10 * DAY), NOW + 10 * DAY);
        assert_eq!(leaf_not_after(NOW, 5, NOW + 10 * DAY), NOW + 5 * DAY);
    }

    #[test]
    fn the_previous_ca_is_retired_after_the_leaves_and_the_grace_period() {
        let renewed = CaState { previous: vec![NOW + 20 * DAY], renewed_at: Some(NOW), ..state(NOW + 365 * DAY) };
        assert_eq!(previous_to_keep(NOW + 10, &renewed, false, 60), vec![0], "leaves still of the old CA");
        assert_eq!(previous_to_keep(NOW + 10, &renewed, true, 60), vec![0], "inside the grace period");
        assert_eq!(previous_to_keep(NOW + 60, &renewed, false, 60), vec![0], "a leaf still of the old CA");
        assert!(previous_to_keep(NOW + 60, &renewed, true, 60).is_empty());
    }

    #[test]
    fn a_ca_whose_leaves_are_out_of_sight_keeps_its_previous_certificate_until_it_expires() {
        // The clients CA: applications hold the user certificates it signed.
        let renewed = CaState { previous: vec![NOW + 20 * DAY], renewed_at: Some(NOW), ..state(NOW + 365 * DAY) };
        assert_eq!(previous_to_keep(NOW + 20 * DAY - 1, &renewed, false, 60), vec![0]);
        assert!(previous_to_keep(NOW + 20 * DAY, &renewed, false, 60).is_empty());
    }

    #[test]
    fn an_expired_previous_ca_leaves_the_bundle_at_once() {
        let renewed = CaState { previous: vec![NOW - 1, NOW + DAY], renewed_at: Some(NOW), ..state(NOW + 365 * DAY) };
        assert_eq!(previous_to_keep(NOW, &renewed, false, 60), vec![1]);
    }
}
