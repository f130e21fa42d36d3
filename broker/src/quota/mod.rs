//! Client quotas, as Kafka has them (KIP-13, KIP-55, KIP-124, KIP-219, KIP-546).
//!
//! - [`config`] — the quotas the cluster stores: entities (`user`,
//!   `client-id`, `ip`, named or `<default>`), keys and values, the checks an
//!   alteration must pass, describe filters and Kafka's precedence for
//!   finding the quota that applies to a connection. Pure.
//! - [`rate`] — Kafka's windowed rate (`quota.window.num` samples of
//!   `quota.window.size.seconds`) and the throttle time a violation costs. Pure.
//! - [`manager`] — this broker's accounting: one rate per quota type and
//!   metric entity (or ip), fed by the request path and the acceptor; the
//!   throttle each request or new connection earns.
//!
//! Quotas are per broker, as in Kafka: each broker measures what clients do
//! on it alone against the whole quota. Must never: cost a lookup or a lock
//! on a request path when no quota of that type is configured.

pub mod config;
pub mod manager;
pub mod rate;

pub use config::{ClientQuotas, EntityName, QuotaEntity, QuotaKey};
pub use manager::{QuotaManager, QuotaType};
