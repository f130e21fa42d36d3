//! This broker's quota accounting: the quotas in force (from the published
//! metadata image) and one [`WindowedRate`] per quota type and metric
//! entity, as Kafka's ClientQuotaManager keeps a sensor per entity.
//!
//! The request path asks [`QuotaManager::record`] with what a request cost
//! (bytes appended, bytes fetched, handling time) and gets the throttle time
//! it earned; the connection answers at once with that `throttle_time_ms`
//! and reads nothing more from the client until it has passed (KIP-219).
//!
//! Ownership: the quotas are replaced whole by the publisher
//! ([`QuotaManager::update`]); the rates sit behind one short mutex, never
//! held across an await. Cost: a quota type with no quota configured costs
//! one atomic load per request, nothing else. Rates idle for the whole quota
//! span are dropped, so the map holds only active clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::config::{ClientQuotas, QuotaKey};
use super::rate::{RateConfig, WindowedRate};

/// The quotas this broker enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaType {
    /// `producer_byte_rate`, fed with the bytes of Produce requests.
    Produce,
    /// `consumer_byte_rate`, fed with the bytes of Fetch responses.
    Fetch,
    /// `request_percentage`, fed with request handling time.
    Request,
    /// `connection_creation_rate` of an ip, fed with accepted connections.
    Connection,
    /// `controller_mutation_rate` (KIP-599), fed with partitions created and deleted.
    ControllerMutation,
}

impl QuotaType {
    /// Every enforced type.
    pub const ALL: [QuotaType; 5] = [
        QuotaType::Produce,
        QuotaType::Fetch,
        QuotaType::Request,
        QuotaType::Connection,
        QuotaType::ControllerMutation,
    ];

    /// The key that configures it.
    pub fn key(self) -> QuotaKey {
        match self {
            QuotaType::Produce => QuotaKey::ProducerByteRate,
            QuotaType::Fetch => QuotaKey::ConsumerByteRate,
            QuotaType::Request => QuotaKey::RequestPercentage,
            QuotaType::Connection => QuotaKey::ConnectionCreationRate,
            QuotaType::ControllerMutation => QuotaKey::ControllerMutationRate,
        }
    }

    /// The `quota_type` metric label, Kafka's sensor names.
    pub fn label(self) -> &'static str {
        match self {
            QuotaType::Produce => "produce",
            QuotaType::Fetch => "fetch",
            QuotaType::Request => "request",
            QuotaType::Connection => "connection",
            QuotaType::ControllerMutation => "controller_mutation",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Rates kept before idle ones are looked for (each is a few hundred bytes).
const PRUNE_ABOVE: usize = 4096;

/// Most rates kept at once. Past it, after dropping idle rates, a new
/// entity is not measured (no throttle) rather than measured in a shared
/// rate, which would let one client's flood throttle others: a client that
/// changes its client id at every request under a default client-id quota
/// escapes that quota either way (in Kafka too; a user quota does not have
/// this hole), but it cannot grow the broker's memory.
const MAX_RATES: usize = 100_000;

/// Longest entity name kept as it is in a rate's key; a longer one (a
/// client id can be 32 KiB) is kept as a 128-bit keyed hash, so a rate
/// costs at most a few hundred bytes whatever the client sends.
const MAX_KEY_NAME: usize = 64;

/// `name`, or its keyed hash when longer than [`MAX_KEY_NAME`].
fn key_name(name: String) -> String {
    use std::hash::{BuildHasher, Hasher};
    static KEYS: std::sync::OnceLock<(
        std::collections::hash_map::RandomState,
        std::collections::hash_map::RandomState,
    )> = std::sync::OnceLock::new();
    if name.len() <= MAX_KEY_NAME {
        return name;
    }
    let (a, b) = KEYS.get_or_init(Default::default);
    let hash = |state: &std::collections::hash_map::RandomState| {
        let mut h = state.build_hasher();
        h.write(name.as_bytes());
        h.finish()
    };
    format!("#{:016x}{:016x}", hash(a), hash(b))
}

/// The broker's quotas and rates.
#[derive(Debug)]
pub struct QuotaManager {
    config: RateConfig,
    /// Whether any quota of each type is configured (indexed by [`QuotaType`]).
    enabled: [AtomicBool; 5],
    quotas: RwLock<Arc<ClientQuotas>>,
    rates: Mutex<HashMap<(QuotaType, String, String), WindowedRate>>,
    /// When idle rates were last looked for (ms since `epoch`).
    last_prune_ms: AtomicU64,
    /// Most rates kept ([`MAX_RATES`]).
    max_rates: usize,
    epoch: Instant,
}

impl QuotaManager {
    /// A manager measuring over `quota.window.num` windows of `quota.window.size.seconds`.
    pub fn new(window_num: i64, window_size_seconds: i64) -> Self {
        let samples = usize::try_from(window_num).unwrap_or(1);
        let window_ms = u64::try_from(window_size_seconds).unwrap_or(1).saturating_mul(1000);
        QuotaManager {
            config: RateConfig::new(samples, window_ms),
            enabled: Default::default(),
            quotas: RwLock::new(Arc::default()),
            rates: Mutex::new(HashMap::new()),
            last_prune_ms: AtomicU64::new(0),
            max_rates: MAX_RATES,
            epoch: Instant::now(),
        }
    }

    /// The rate of `key` (names hashed when long), created if there is room
    /// (idle rates are dropped first when the map is full); `None` when the
    /// map is full of active rates.
    fn rate_for<'a>(
        &self,
        rates: &'a mut HashMap<(QuotaType, String, String), WindowedRate>,
        (t, user, client_id): (QuotaType, String, String),
        now: u64,
    ) -> Option<&'a mut WindowedRate> {
        let key = (t, key_name(user), key_name(client_id));
        if rates.len() >= self.max_rates && !rates.contains_key(&key) {
            let idle = self.config.total_ms();
            rates.retain(|_, r| now.saturating_sub(r.last_start_ms()) < idle);
            if rates.len() >= self.max_rates {
                return None;
            }
        }
        Some(rates.entry(key).or_insert_with(|| WindowedRate::new(now)))
    }

    /// The rate of `key` if it is measured.
    fn existing_rate(
        rates: &mut HashMap<(QuotaType, String, String), WindowedRate>,
        (t, user, client_id): (QuotaType, String, String),
    ) -> Option<&mut WindowedRate> {
        rates.get_mut(&(t, key_name(user), key_name(client_id)))
    }

    /// Puts the cluster's quotas (from a newly published image) in force.
    pub fn update(&self, quotas: &ClientQuotas) {
        if **self.quotas.read() == *quotas {
            return;
        }
        for t in QuotaType::ALL {
            self.enabled[t.index()].store(quotas.has(t.key()), Ordering::Relaxed);
        }
        *self.quotas.write() = Arc::new(quotas.clone());
    }

    /// The quotas in force (as last published).
    pub fn quotas(&self) -> Arc<ClientQuotas> {
        self.quotas.read().clone()
    }

    /// Whether a quota of type `t` is configured for anyone: the cheap check
    /// before measuring anything.
    pub fn enabled(&self, t: QuotaType) -> bool {
        self.enabled[t.index()].load(Ordering::Relaxed)
    }

    /// One quota window (`quota.window.size.seconds`), the longest a request quota throttles.
    pub fn window_ms(&self) -> u64 {
        self.config.window_ms
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Records `value` (bytes, or percent-seconds of handling time) for the
    /// connection of `user` sending `client_id`, and returns the throttle it
    /// earned: zero when no quota applies or the rate is within it.
    pub fn record(&self, t: QuotaType, user: &str, client_id: &str, value: f64) -> Duration {
        if !self.enabled(t) {
            return Duration::ZERO;
        }
        let Some(quota) = self.quotas.read().resolve(t.key(), user, client_id) else {
            return Duration::ZERO;
        };
        let now = self.now_ms();
        let mut rates = self.rates.lock();
        self.prune(&mut rates, now);
        let Some(rate) = self.rate_for(&mut rates, (t, quota.user, quota.client_id), now) else {
            return Duration::ZERO;
        };
        rate.record(self.config, value, now);
        let wait = rate.throttle_ms(self.config, quota.bound, now);
        // A request quota throttles at most one window (as Kafka); a byte
        // quota at most the quota span, so a burst (or another client
        // sending under the same unauthenticated client id) cannot mute a
        // connection for days.
        let cap = if t == QuotaType::Request { self.config.window_ms } else { self.config.total_ms() };
        Duration::from_millis(wait.min(cap))
    }

    /// Whether the client's rate of type `t` is already above its quota
    /// (KIP-599's strict check before a mutation: a request within the
    /// quota may overshoot it, the next one is refused).
    pub fn exceeded(&self, t: QuotaType, user: &str, client_id: &str) -> bool {
        if !self.enabled(t) {
            return false;
        }
        let Some(quota) = self.quotas.read().resolve(t.key(), user, client_id) else { return false };
        let now = self.now_ms();
        let mut rates = self.rates.lock();
        Self::existing_rate(&mut rates, (t, quota.user, quota.client_id))
            .is_some_and(|rate| rate.rate(self.config, now) > quota.bound)
    }

    /// Counts a new connection from `ip` against its `connection_creation_rate`
    /// (the ip's own quota, else the default ip's) and returns how long to
    /// hold it before closing it when over the rate (KIP-612); a refused
    /// connection is not counted. Zero: serve it.
    pub fn record_connection(&self, ip: std::net::IpAddr) -> Duration {
        if !self.enabled(QuotaType::Connection) {
            return Duration::ZERO;
        }
        let ip = ip.to_canonical().to_string();
        let Some(bound) = self.quotas.read().resolve_ip(&ip) else { return Duration::ZERO };
        let now = self.now_ms();
        let mut rates = self.rates.lock();
        self.prune(&mut rates, now);
        let Some(rate) = self.rate_for(&mut rates, (QuotaType::Connection, ip, String::new()), now) else {
            return Duration::ZERO;
        };
        rate.record(self.config, 1.0, now);
        let wait = rate.throttle_ms(self.config, bound, now);
        if wait > 0 {
            rate.record(self.config, -1.0, now);
        }
        Duration::from_millis(wait)
    }

    /// Drops the rates idle for the whole quota span, once the map is large
    /// and at most once a window (a scan per request would cost as many
    /// clients as are active).
    fn prune(&self, rates: &mut HashMap<(QuotaType, String, String), WindowedRate>, now: u64) {
        if rates.len() <= PRUNE_ABOVE
            || now.saturating_sub(self.last_prune_ms.load(Ordering::Relaxed)) < self.config.window_ms
        {
            return;
        }
        self.last_prune_ms.store(now, Ordering::Relaxed);
        let idle = self.config.total_ms();
        rates.retain(|_, r| now.saturating_sub(r.last_start_ms()) < idle);
    }

    /// Takes back `value` recorded by [`Self::record`] (a Fetch answered
    /// empty because it was throttled, as Kafka does).
    pub fn unrecord(&self, t: QuotaType, user: &str, client_id: &str, value: f64) {
        if !self.enabled(t) {
            return;
        }
        let Some(quota) = self.quotas.read().resolve(t.key(), user, client_id) else { return };
        let now = self.now_ms();
        if let Some(rate) = Self::existing_rate(&mut self.rates.lock(), (t, quota.user, quota.client_id)) {
            rate.record(self.config, -value, now);
        }
    }
}

/// Request handling time in Kafka's request-quota unit: percent of one
/// thread over a second (1 s of handling = 100).
pub fn request_time_value(took: Duration) -> f64 {
    took.as_secs_f64() * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::config::{QuotaEntity, QuotaOp, QuotaValue};

    fn with_quota(key: QuotaKey, parts: &[(&str, Option<&str>)], value: f64) -> QuotaManager {
        let manager = QuotaManager::new(11, 1);
        let mut quotas = ClientQuotas::default();
        let entity = QuotaEntity::from_parts(parts.iter().copied()).unwrap();
        quotas.alter(&entity, &[QuotaOp { key, value: Some(QuotaValue(value)) }]).unwrap();
        manager.update(&quotas);
        manager
    }

    #[test]
    fn no_quota_no_throttle_and_no_rate_kept() {
        let manager = QuotaManager::new(11, 1);
        assert!(!manager.enabled(QuotaType::Produce));
        assert_eq!(manager.record(QuotaType::Produce, "alice", "app", 1e12), Duration::ZERO);
        assert!(manager.rates.lock().is_empty());
    }

    #[test]
    fn a_client_over_its_quota_is_throttled_and_others_are_not() {
        let manager = with_quota(QuotaKey::ProducerByteRate, &[("client-id", Some("limited"))], 1000.0);
        assert!(manager.enabled(QuotaType::Produce) && !manager.enabled(QuotaType::Fetch));
        // 20 000 bytes against 1000/s over the 10 s floor: 10 s to wait.
        let wait = manager.record(QuotaType::Produce, "ANONYMOUS", "limited", 20_000.0);
        assert!(wait >= Duration::from_millis(9_900) && wait <= Duration::from_millis(10_000), "{wait:?}");
        assert_eq!(manager.record(QuotaType::Produce, "ANONYMOUS", "free", 20_000.0), Duration::ZERO);
        manager.unrecord(QuotaType::Produce, "ANONYMOUS", "limited", 20_000.0);
        assert_eq!(manager.record(QuotaType::Produce, "ANONYMOUS", "limited", 1.0), Duration::ZERO);
    }

    #[test]
    fn a_default_user_quota_is_measured_per_user() {
        let manager = with_quota(QuotaKey::ConsumerByteRate, &[("user", None)], 1000.0);
        assert!(manager.record(QuotaType::Fetch, "alice", "a", 15_000.0) > Duration::ZERO);
        // bob has his own rate under the same default quota.
        assert_eq!(manager.record(QuotaType::Fetch, "bob", "a", 5_000.0), Duration::ZERO);
    }

    #[test]
    fn connections_over_an_ips_rate_are_refused_and_not_counted() {
        let manager = with_quota(QuotaKey::ConnectionCreationRate, &[("ip", Some("10.0.0.1"))], 1.0);
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let other: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        // Ten connections over the 10 s floor are within 1/s; the eleventh is not.
        for _ in 0..10 {
            assert_eq!(manager.record_connection(ip), Duration::ZERO);
        }
        assert!(manager.record_connection(ip) > Duration::ZERO);
        assert!(
            manager.record_connection(ip) > Duration::ZERO,
            "a refused connection did not count, but the rate is still full"
        );
        assert_eq!(manager.record_connection(other), Duration::ZERO, "another ip has no quota");
    }

    #[test]
    fn idle_rates_are_dropped_once_many_and_at_most_once_a_window() {
        let manager = QuotaManager::new(11, 1);
        let mut rates = HashMap::new();
        for i in 0..=PRUNE_ABOVE {
            rates.insert((QuotaType::Fetch, format!("u{i}"), String::new()), WindowedRate::new(0));
        }
        rates.insert((QuotaType::Fetch, "active".into(), String::new()), WindowedRate::new(11_500));
        manager.last_prune_ms.store(11_500, Ordering::Relaxed);
        manager.prune(&mut rates, 12_000);
        assert_eq!(rates.len(), PRUNE_ABOVE + 2, "pruned again within a window");
        manager.prune(&mut rates, 12_500);
        assert_eq!(rates.len(), 1, "the rates idle for 11 s are gone, the active one stays");
    }

    #[test]
    fn rates_are_bounded_in_number_and_size_whatever_client_ids_arrive() {
        let mut manager = with_quota(QuotaKey::ProducerByteRate, &[("client-id", None)], 1000.0);
        manager.max_rates = 3;
        // A client rotating its client id at every request: three measured,
        // the rest not (no rate, no throttle, no memory).
        for i in 0..10 {
            manager.record(QuotaType::Produce, "ANONYMOUS", &format!("id-{i}"), 500.0);
        }
        assert_eq!(manager.rates.lock().len(), 3);
        // A measured client is still throttled past its quota; a new one is not.
        assert!(manager.record(QuotaType::Produce, "ANONYMOUS", "id-0", 50_000.0) > Duration::ZERO);
        assert_eq!(manager.record(QuotaType::Produce, "ANONYMOUS", "id-new", 50_000.0), Duration::ZERO);
        // A 32 KiB client id costs a short key.
        let mut manager = with_quota(QuotaKey::ProducerByteRate, &[("client-id", None)], 1000.0);
        let long = "x".repeat(32 * 1024);
        assert!(manager.record(QuotaType::Produce, "ANONYMOUS", &long, 50_000.0) > Duration::ZERO);
        assert!(manager.rates.lock().keys().all(|(_, u, c)| u.len() <= 33 && c.len() <= 33));
        assert!(manager.exceeded(QuotaType::Produce, "ANONYMOUS", &long), "the same client finds its rate again");
        manager.max_rates = 1;
        assert_eq!(manager.record(QuotaType::Produce, "ANONYMOUS", "other", 1e9), Duration::ZERO);
    }

    #[test]
    fn a_byte_quota_throttles_at_most_the_quota_span() {
        let manager = with_quota(QuotaKey::ProducerByteRate, &[("client-id", Some("c"))], 1.0);
        let wait = manager.record(QuotaType::Produce, "ANONYMOUS", "c", 1e12);
        assert_eq!(wait, Duration::from_millis(manager.config.total_ms()), "not the 30 years the burst earned");
    }

    #[test]
    fn a_request_quota_throttles_at_most_one_window() {
        let manager = with_quota(QuotaKey::RequestPercentage, &[("user", Some("alice"))], 1.0);
        let wait = manager.record(QuotaType::Request, "alice", "", request_time_value(Duration::from_secs(5)));
        assert_eq!(wait, Duration::from_secs(1));
        manager.update(&ClientQuotas::default());
        assert!(!manager.enabled(QuotaType::Request));
    }
}
