//! The client quotas the cluster stores, as plain data: which entity
//! (`user`, `client-id`, `ip`; a name or `<default>`) has which quota values.
//!
//! Kafka's rules, for every door that changes them (AlterClientQuotas,
//! the gRPC Admin service: [`parse_alteration`]) and for the controller, which checks again:
//! an entity names at least one type, each once, and `ip` alone; keys are
//! Kafka's (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`,
//! `controller_mutation_rate` for users and clients, `connection_creation_rate`
//! for ips); values are finite and not negative, and integral for the
//! integer keys. [`ClientQuotas::resolve`] finds the quota of a connection in
//! Kafka's precedence (KIP-55). Must never: do I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most entities one AlterClientQuotas request or admin call may change.
pub const MAX_ENTITIES_PER_REQUEST: usize = 1000;
/// Most quota entities the cluster keeps (each entity holds at most five values).
pub const MAX_ENTITIES: usize = 100_000;
/// Longest entity name accepted (user, client id or address).
pub const MAX_NAME_BYTES: usize = 1024;

/// Why a quota alteration or filter is refused (Kafka: INVALID_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// No entity type given.
    #[error("invalid empty client quota entity: name at least one of user, client-id or ip")]
    EmptyEntity,
    /// Not `user`, `client-id` or `ip`.
    #[error("unknown client quota entity type `{0}`: use user, client-id or ip")]
    UnknownEntityType(String),
    /// The same type twice in one entity or filter.
    #[error("entity type `{0}` appears more than once")]
    DuplicateEntityType(String),
    /// `ip` with `user` or `client-id`.
    #[error("invalid quota entity `{0}`: an ip entity cannot be combined with user or client-id")]
    IpCombined(String),
    /// A name too long.
    #[error("entity name of {0} bytes is longer than the {MAX_NAME_BYTES} allowed")]
    NameTooLong(usize),
    /// An `ip` entity that is not an IP address.
    #[error("invalid ip entity `{0}`: an IPv4 or IPv6 address (or the default)")]
    InvalidIp(String),
    /// Not a quota key Kafka knows.
    #[error(
        "invalid quota key `{0}`: use producer_byte_rate, consumer_byte_rate, request_percentage, \
         controller_mutation_rate or (for ip) connection_creation_rate"
    )]
    UnknownKey(String),
    /// A key that does not apply to the entity's type.
    #[error(
        "quota key `{key}` does not apply to entity `{entity}`: user and client-id entities take \
         producer_byte_rate, consumer_byte_rate, request_percentage or controller_mutation_rate; \
         ip entities take connection_creation_rate"
    )]
    KeyNotForEntity { key: String, entity: String },
    /// A negative, infinite or NaN value.
    #[error("invalid value {value} for quota key `{key}`: it must be a finite number, 0 or more")]
    InvalidValue { key: String, value: String },
    /// A fraction for an integer key.
    #[error("invalid value {value} for quota key `{key}`: it must be an integer")]
    NotIntegral { key: String, value: String },
    /// The same key twice for one entity.
    #[error("quota key `{key}` is altered more than once for entity `{entity}`")]
    DuplicateKey { key: String, entity: String },
    /// The same entity twice in one request.
    #[error("entity `{0}` is altered more than once in the request")]
    DuplicateEntity(String),
    /// Too many entities at once, or in the cluster.
    #[error("{count} client quota entities exceed the limit of {limit}; split the request or remove unused quotas")]
    TooManyEntities { count: usize, limit: usize },
    /// A describe filter Kafka refuses.
    #[error("invalid client quota filter: {0}")]
    InvalidFilter(String),
}

/// An entity name: a specific one, or `<default>` (null on the wire).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    /// `<default>`: every name without a specific entry.
    Default,
    /// A specific name.
    Named(String),
}

impl EntityName {
    /// `None` on the wire is the default.
    pub fn from_wire(name: Option<&str>) -> Self {
        match name {
            None => EntityName::Default,
            Some(n) => EntityName::Named(n.to_string()),
        }
    }

    /// The wire form: `None` for the default.
    pub fn wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

impl std::fmt::Display for EntityName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.wire().unwrap_or("<default>"))
    }
}

/// The entity types of Kafka's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    /// `user`: the principal's name.
    User,
    /// `client-id`: the request header's client id.
    ClientId,
    /// `ip`: the client's address.
    Ip,
}

impl EntityType {
    /// Kafka's name of the type.
    pub fn parse(name: &str) -> Result<Self, QuotaError> {
        match name {
            "user" => Ok(EntityType::User),
            "client-id" => Ok(EntityType::ClientId),
            "ip" => Ok(EntityType::Ip),
            other => Err(QuotaError::UnknownEntityType(other.to_string())),
        }
    }

    /// Kafka's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            EntityType::User => "user",
            EntityType::ClientId => "client-id",
            EntityType::Ip => "ip",
        }
    }
}

/// A quota entity: a user, a client id, both, or an ip, each named or default.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    /// `user` component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EntityName>,
    /// `client-id` component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<EntityName>,
    /// `ip` component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// The entity of (type, name) pairs as a request carries them; Kafka's
    /// checks on types (known, each once, ip alone) and names (bounded).
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Result<Self, QuotaError> {
        let mut entity = QuotaEntity::default();
        for (kind, name) in parts {
            let kind = EntityType::parse(kind)?;
            if let Some(n) = name
                && n.len() > MAX_NAME_BYTES
            {
                return Err(QuotaError::NameTooLong(n.len()));
            }
            // An ip is stored in the form connections are matched with
            // (a v4-mapped v6 address as the v4 one), so `010.0.0.1` or
            // `::ffff:10.0.0.1` cannot be accepted and never enforced.
            let canonical = match (kind, name) {
                (EntityType::Ip, Some(n)) => Some(canonical_ip(n).ok_or_else(|| QuotaError::InvalidIp(n.to_string()))?),
                (_, n) => n.map(str::to_string),
            };
            let slot = entity.slot(kind);
            if slot.is_some() {
                return Err(QuotaError::DuplicateEntityType(kind.name().to_string()));
            }
            *slot = Some(EntityName::from_wire(canonical.as_deref()));
        }
        entity.validate()?;
        Ok(entity)
    }

    fn slot(&mut self, kind: EntityType) -> &mut Option<EntityName> {
        match kind {
            EntityType::User => &mut self.user,
            EntityType::ClientId => &mut self.client_id,
            EntityType::Ip => &mut self.ip,
        }
    }

    /// The component of `kind`, if the entity has one.
    pub fn get(&self, kind: EntityType) -> Option<&EntityName> {
        match kind {
            EntityType::User => self.user.as_ref(),
            EntityType::ClientId => self.client_id.as_ref(),
            EntityType::Ip => self.ip.as_ref(),
        }
    }

    /// (type, name) of each component, in Kafka's order.
    pub fn parts(&self) -> impl Iterator<Item = (EntityType, &EntityName)> {
        [EntityType::User, EntityType::ClientId, EntityType::Ip].into_iter().filter_map(|k| Some((k, self.get(k)?)))
    }

    /// At least one component; `ip` alone.
    pub fn validate(&self) -> Result<(), QuotaError> {
        if self.user.is_none() && self.client_id.is_none() && self.ip.is_none() {
            return Err(QuotaError::EmptyEntity);
        }
        if self.ip.is_some() && (self.user.is_some() || self.client_id.is_some()) {
            return Err(QuotaError::IpCombined(self.to_string()));
        }
        Ok(())
    }
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (kind, name) in self.parts() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}={name}", kind.name())?;
        }
        Ok(())
    }
}

/// Kafka's quota keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKey {
    /// Bytes a second a producer may append (Produce).
    ProducerByteRate,
    /// Bytes a second a consumer may fetch (Fetch).
    ConsumerByteRate,
    /// Percentage of one request-handling thread's time (KIP-124).
    RequestPercentage,
    /// Partitions created or deleted a second (KIP-599).
    ControllerMutationRate,
    /// New connections a second from an ip (KIP-612).
    ConnectionCreationRate,
}

impl QuotaKey {
    /// Every key.
    pub const ALL: [QuotaKey; 5] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
        QuotaKey::ConnectionCreationRate,
    ];

    /// The key of Kafka's name.
    pub fn parse(name: &str) -> Result<Self, QuotaError> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| QuotaError::UnknownKey(name.to_string()))
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
            QuotaKey::ConnectionCreationRate => "connection_creation_rate",
        }
    }

    /// Kafka types these as integers (LONG, INT).
    fn integral(self) -> bool {
        matches!(self, QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate | QuotaKey::ConnectionCreationRate)
    }

    /// Whether the key applies to an entity with (or without) an ip component.
    fn for_ip(self) -> bool {
        self == QuotaKey::ConnectionCreationRate
    }
}

/// A quota value; compared by its bits so the image stays `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// One change of one key: set it to `Some(value)`, or remove it (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaOp {
    /// The key.
    pub key: QuotaKey,
    /// The new value; `None` removes the key.
    pub value: Option<QuotaValue>,
}

impl QuotaOp {
    /// The op of a request's (key name, value, remove); Kafka's checks on the
    /// key's name and the value, for `entity`.
    pub fn parse(entity: &QuotaEntity, key: &str, value: f64, remove: bool) -> Result<Self, QuotaError> {
        let key = QuotaKey::parse(key)?;
        let op = QuotaOp { key, value: (!remove).then_some(QuotaValue(value)) };
        op.validate(entity)?;
        Ok(op)
    }

    /// The key applies to `entity`; a value set is finite, not negative, and
    /// integral for integer keys.
    pub fn validate(&self, entity: &QuotaEntity) -> Result<(), QuotaError> {
        if self.key.for_ip() != entity.ip.is_some() {
            return Err(QuotaError::KeyNotForEntity { key: self.key.name().to_string(), entity: entity.to_string() });
        }
        let Some(QuotaValue(v)) = self.value else { return Ok(()) };
        let bad = |value: f64| QuotaError::InvalidValue { key: self.key.name().to_string(), value: value.to_string() };
        if !v.is_finite() || v < 0.0 {
            return Err(bad(v));
        }
        if self.key.integral() && (v.fract() != 0.0 || v > i64::MAX as f64) {
            return Err(QuotaError::NotIntegral { key: self.key.name().to_string(), value: v.to_string() });
        }
        Ok(())
    }
}

/// Checks one entity's alteration: a valid entity, valid ops, each key once.
pub fn validate_alteration(entity: &QuotaEntity, ops: &[QuotaOp]) -> Result<(), QuotaError> {
    entity.validate()?;
    let mut seen = Vec::with_capacity(ops.len());
    for op in ops {
        op.validate(entity)?;
        if seen.contains(&op.key) {
            return Err(QuotaError::DuplicateKey { key: op.key.name().to_string(), entity: entity.to_string() });
        }
        seen.push(op.key);
    }
    Ok(())
}

/// One entity's alteration as a request carries it — (type, name) pairs and
/// (key, value, remove) ops — checked by Kafka's rules: the entity, each op,
/// each key once. Every door that alters quotas (Kafka's AlterClientQuotas,
/// the gRPC Admin service) parses with this, before [`crate::admin::alter_client_quotas`].
pub fn parse_alteration<'a>(
    parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ops: impl IntoIterator<Item = (&'a str, f64, bool)>,
) -> Result<(QuotaEntity, Vec<QuotaOp>), QuotaError> {
    let entity = QuotaEntity::from_parts(parts)?;
    let ops = ops
        .into_iter()
        .map(|(key, value, remove)| QuotaOp::parse(&entity, key, value, remove))
        .collect::<Result<Vec<_>, _>>()?;
    validate_alteration(&entity, &ops)?;
    Ok((entity, ops))
}

/// How a describe filter component matches an entity's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// Exactly this name (Kafka's MATCH_TYPE_EXACT).
    Exact(String),
    /// The `<default>` entry (MATCH_TYPE_DEFAULT).
    Default,
    /// Any specific name, not the default (MATCH_TYPE_SPECIFIED).
    Specified,
}

impl NameMatch {
    /// Kafka's wire form: (match type, match).
    pub fn from_wire(match_type: i8, name: Option<&str>) -> Result<Self, QuotaError> {
        match (match_type, name) {
            (0, Some(n)) => Ok(NameMatch::Exact(n.to_string())),
            (0, None) => Err(QuotaError::InvalidFilter("match type EXACT needs a name to match".into())),
            (1, _) => Ok(NameMatch::Default),
            (2, _) => Ok(NameMatch::Specified),
            (other, _) => Err(QuotaError::InvalidFilter(format!("unknown match type {other}: use 0, 1 or 2"))),
        }
    }

    fn matches(&self, name: &EntityName) -> bool {
        match (self, name) {
            (NameMatch::Exact(want), EntityName::Named(n)) => want == n,
            (NameMatch::Default, EntityName::Default) => true,
            (NameMatch::Specified, EntityName::Named(_)) => true,
            _ => false,
        }
    }
}

/// One component of a describe filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterComponent {
    /// The entity type it constrains.
    pub entity_type: EntityType,
    /// How the name must match.
    pub name: NameMatch,
}

/// The values of one entity.
pub type QuotaValues = BTreeMap<QuotaKey, QuotaValue>;

/// Which entity's quota applied, for the metric tags and the rate it feeds:
/// the user and client id as far as the entity names them (the connection's
/// own names where the entity is a default), empty otherwise — Kafka's tags.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedQuota {
    /// The bound, in the key's unit per second.
    pub bound: f64,
    /// The `user` tag: the connection's user, or empty.
    pub user: String,
    /// The `client-id` tag: the request's client id, or empty.
    pub client_id: String,
}

/// Every stored quota, by entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<(QuotaEntity, QuotaValues)>", into = "Vec<(QuotaEntity, QuotaValues)>")]
pub struct ClientQuotas {
    entries: BTreeMap<QuotaEntity, QuotaValues>,
}

impl From<Vec<(QuotaEntity, QuotaValues)>> for ClientQuotas {
    fn from(list: Vec<(QuotaEntity, QuotaValues)>) -> Self {
        ClientQuotas { entries: list.into_iter().filter(|(_, v)| !v.is_empty()).collect() }
    }
}

impl From<ClientQuotas> for Vec<(QuotaEntity, QuotaValues)> {
    fn from(q: ClientQuotas) -> Self {
        q.entries.into_iter().collect()
    }
}

impl ClientQuotas {
    /// No quota at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entities with quotas.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether any entity has a value for `key`.
    pub fn has(&self, key: QuotaKey) -> bool {
        self.entries.values().any(|v| v.contains_key(&key))
    }

    /// The values of `entity`.
    pub fn get(&self, entity: &QuotaEntity) -> Option<&QuotaValues> {
        self.entries.get(entity)
    }

    /// Applies one entity's ops (already validated); an entity left without
    /// values is removed. Refuses a new entity past [`MAX_ENTITIES`].
    pub fn alter(&mut self, entity: &QuotaEntity, ops: &[QuotaOp]) -> Result<(), QuotaError> {
        validate_alteration(entity, ops)?;
        let adds = ops.iter().any(|op| op.value.is_some());
        if adds && !self.entries.contains_key(entity) && self.entries.len() >= MAX_ENTITIES {
            return Err(QuotaError::TooManyEntities { count: self.entries.len() + 1, limit: MAX_ENTITIES });
        }
        let values = self.entries.entry(entity.clone()).or_default();
        for op in ops {
            match op.value {
                Some(v) => values.insert(op.key, v),
                None => values.remove(&op.key),
            };
        }
        if values.is_empty() {
            self.entries.remove(entity);
        }
        Ok(())
    }

    /// The entities a describe filter matches (Kafka's rules): each type at
    /// most once, `ip` not with the others; every component must match; with
    /// `strict`, the entity has no other component.
    pub fn describe(
        &self,
        filter: &[FilterComponent],
        strict: bool,
    ) -> Result<Vec<(&QuotaEntity, &QuotaValues)>, QuotaError> {
        let mut types = Vec::new();
        for c in filter {
            if types.contains(&c.entity_type) {
                return Err(QuotaError::InvalidFilter(format!(
                    "entity type `{}` appears more than once",
                    c.entity_type.name()
                )));
            }
            types.push(c.entity_type);
        }
        if types.contains(&EntityType::Ip) && types.len() > 1 {
            return Err(QuotaError::InvalidFilter("an ip component cannot be combined with user or client-id".into()));
        }
        let matches = |entity: &QuotaEntity| {
            filter.iter().all(|c| entity.get(c.entity_type).is_some_and(|n| c.name.matches(n)))
                && (!strict || entity.parts().all(|(kind, _)| types.contains(&kind)))
        };
        Ok(self.entries.iter().filter(|(e, _)| matches(e)).collect())
    }

    /// The `connection_creation_rate` of connections from `ip`: its own
    /// entity's, else the default ip's.
    pub fn resolve_ip(&self, ip: &str) -> Option<f64> {
        [EntityName::Named(ip.to_string()), EntityName::Default].into_iter().find_map(|name| {
            let entity = QuotaEntity { ip: Some(name), ..Default::default() };
            Some(self.entries.get(&entity)?.get(&QuotaKey::ConnectionCreationRate)?.0)
        })
    }

    /// The quota of `key` for a connection of `user` sending `client_id`, in
    /// Kafka's precedence: user and client id, user and default client id,
    /// user, default user and client id, default user and default client id,
    /// default user, client id, default client id.
    pub fn resolve(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<ResolvedQuota> {
        use EntityName::{Default, Named};
        let named_user = || Some(Named(user.to_string()));
        let named_client = || Some(Named(client_id.to_string()));
        let candidates: [(Option<EntityName>, Option<EntityName>); 8] = [
            (named_user(), named_client()),
            (named_user(), Some(Default)),
            (named_user(), None),
            (Some(Default), named_client()),
            (Some(Default), Some(Default)),
            (Some(Default), None),
            (None, named_client()),
            (None, Some(Default)),
        ];
        candidates.into_iter().find_map(|(u, c)| {
            let (has_user, has_client) = (u.is_some(), c.is_some());
            let entity = QuotaEntity { user: u, client_id: c, ip: None };
            let value = self.entries.get(&entity)?.get(&key)?;
            Some(ResolvedQuota {
                bound: value.0,
                user: if has_user { user.to_string() } else { String::new() },
                client_id: if has_client { client_id.to_string() } else { String::new() },
            })
        })
    }
}

/// The canonical text of an IP address (v4-mapped v6 as v4), as the broker
/// matches connections; `None` when `name` is not an address.
pub fn canonical_ip(name: &str) -> Option<String> {
    name.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_canonical().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        QuotaEntity::from_parts(parts.iter().copied()).unwrap()
    }

    fn set(key: QuotaKey, v: f64) -> QuotaOp {
        QuotaOp { key, value: Some(QuotaValue(v)) }
    }

    #[test]
    fn entities_follow_kafkas_rules() {
        assert_eq!(QuotaEntity::from_parts([]), Err(QuotaError::EmptyEntity));
        assert_eq!(QuotaEntity::from_parts([("group", Some("g"))]), Err(QuotaError::UnknownEntityType("group".into())));
        assert_eq!(
            QuotaEntity::from_parts([("user", Some("a")), ("user", Some("b"))]),
            Err(QuotaError::DuplicateEntityType("user".into()))
        );
        // An ip entity is an address, kept in the form connections are matched with.
        let mapped = QuotaEntity::from_parts([("ip", Some("::ffff:10.0.0.1"))]).unwrap();
        assert_eq!(mapped.get(EntityType::Ip), Some(&EntityName::Named("10.0.0.1".to_string())));
        for bad in ["010.0.0.1", "10.0.0", "host.example"] {
            assert_eq!(
                QuotaEntity::from_parts([("ip", Some(bad))]).unwrap_err(),
                QuotaError::InvalidIp(bad.to_string())
            );
        }
        let combined = QuotaEntity::from_parts([("user", Some("a")), ("ip", Some("1.2.3.4"))]).unwrap_err();
        assert!(combined.to_string().contains("user=a,ip=1.2.3.4"), "{combined}");
        let e = entity(&[("client-id", None), ("user", Some("alice"))]);
        assert_eq!(e.to_string(), "user=alice,client-id=<default>");
    }

    #[test]
    fn ops_refuse_unknown_keys_bad_values_and_keys_of_other_entities() {
        let user = entity(&[("user", Some("alice"))]);
        let ip = entity(&[("ip", None)]);
        assert_eq!(QuotaOp::parse(&user, "bogus", 1.0, false), Err(QuotaError::UnknownKey("bogus".into())));
        let negative = QuotaOp::parse(&user, "producer_byte_rate", -5.0, false).unwrap_err();
        assert_eq!(
            negative.to_string(),
            "invalid value -5 for quota key `producer_byte_rate`: it must be a finite number, 0 or more"
        );
        assert!(matches!(QuotaOp::parse(&user, "consumer_byte_rate", 1.5, false), Err(QuotaError::NotIntegral { .. })));
        assert!(QuotaOp::parse(&user, "request_percentage", 12.5, false).is_ok());
        assert!(QuotaOp::parse(&user, "producer_byte_rate", -5.0, true).is_ok(), "a removal carries no value");
        assert!(matches!(
            QuotaOp::parse(&ip, "producer_byte_rate", 1.0, false),
            Err(QuotaError::KeyNotForEntity { .. })
        ));
        assert!(matches!(
            QuotaOp::parse(&user, "connection_creation_rate", 1.0, false),
            Err(QuotaError::KeyNotForEntity { .. })
        ));
        let twice = [set(QuotaKey::ProducerByteRate, 1.0), set(QuotaKey::ProducerByteRate, 2.0)];
        assert!(matches!(validate_alteration(&user, &twice), Err(QuotaError::DuplicateKey { .. })));
    }

    #[test]
    fn alter_sets_and_removes_and_drops_empty_entities() {
        let mut quotas = ClientQuotas::default();
        let alice = entity(&[("user", Some("alice"))]);
        quotas
            .alter(&alice, &[set(QuotaKey::ProducerByteRate, 100.0), set(QuotaKey::ConsumerByteRate, 200.0)])
            .unwrap();
        assert_eq!(quotas.get(&alice).map(|v| v.len()), Some(2));
        assert!(quotas.has(QuotaKey::ConsumerByteRate) && !quotas.has(QuotaKey::RequestPercentage));
        quotas.alter(&alice, &[QuotaOp { key: QuotaKey::ProducerByteRate, value: None }]).unwrap();
        quotas.alter(&alice, &[QuotaOp { key: QuotaKey::ConsumerByteRate, value: None }]).unwrap();
        assert!(quotas.is_empty());
        let json = serde_json::to_string(&{
            let mut q = ClientQuotas::default();
            q.alter(&alice, &[set(QuotaKey::RequestPercentage, 50.0)]).unwrap();
            q
        })
        .unwrap();
        let back: ClientQuotas = serde_json::from_str(&json).unwrap();
        assert_eq!(back.resolve(QuotaKey::RequestPercentage, "alice", "x").map(|r| r.bound), Some(50.0));
    }

    #[test]
    fn resolution_follows_kafkas_precedence() {
        let mut quotas = ClientQuotas::default();
        type Parts<'a> = &'a [(&'a str, Option<&'a str>)];
        let levels: [(Parts, f64); 8] = [
            (&[("user", Some("u")), ("client-id", Some("c"))], 1.0),
            (&[("user", Some("u")), ("client-id", None)], 2.0),
            (&[("user", Some("u"))], 3.0),
            (&[("user", None), ("client-id", Some("c"))], 4.0),
            (&[("user", None), ("client-id", None)], 5.0),
            (&[("user", None)], 6.0),
            (&[("client-id", Some("c"))], 7.0),
            (&[("client-id", None)], 8.0),
        ];
        for (parts, v) in levels {
            quotas.alter(&entity(parts), &[set(QuotaKey::ProducerByteRate, v)]).unwrap();
        }
        let tags = |r: ResolvedQuota| (r.bound, r.user, r.client_id);
        // Remove the levels one by one, most specific first: each next one applies.
        let expected_tags =
            [("u", "c"), ("u", "c"), ("u", ""), ("u", "c"), ("u", "c"), ("u", ""), ("", "c"), ("", "c")];
        for (i, (parts, v)) in levels.iter().enumerate() {
            let got = tags(quotas.resolve(QuotaKey::ProducerByteRate, "u", "c").unwrap());
            let (user, client) = expected_tags[i];
            assert_eq!(got, (*v, user.to_string(), client.to_string()), "level {}", i + 1);
            quotas.alter(&entity(parts), &[QuotaOp { key: QuotaKey::ProducerByteRate, value: None }]).unwrap();
        }
        assert_eq!(quotas.resolve(QuotaKey::ProducerByteRate, "u", "c"), None);
    }

    #[test]
    fn describe_matches_strictly_or_not() {
        let mut quotas = ClientQuotas::default();
        for parts in [
            &[("user", Some("alice"))][..],
            &[("user", Some("alice")), ("client-id", Some("app"))],
            &[("user", None)],
            &[("client-id", Some("app"))],
        ] {
            quotas.alter(&entity(parts), &[set(QuotaKey::ProducerByteRate, 1.0)]).unwrap();
        }
        let user = |name: NameMatch| FilterComponent { entity_type: EntityType::User, name };
        let names = |found: Vec<(&QuotaEntity, &QuotaValues)>| {
            found.into_iter().map(|(e, _)| e.to_string()).collect::<Vec<_>>()
        };
        let alice = [user(NameMatch::Exact("alice".into()))];
        assert_eq!(names(quotas.describe(&alice, true).unwrap()), ["user=alice"]);
        assert_eq!(names(quotas.describe(&alice, false).unwrap()), ["user=alice", "user=alice,client-id=app"]);
        assert_eq!(names(quotas.describe(&[user(NameMatch::Default)], true).unwrap()), ["user=<default>"]);
        assert_eq!(names(quotas.describe(&[user(NameMatch::Specified)], false).unwrap()).len(), 2);
        assert_eq!(names(quotas.describe(&[], false).unwrap()).len(), 4);
        let ip = FilterComponent { entity_type: EntityType::Ip, name: NameMatch::Specified };
        assert!(quotas.describe(&[user(NameMatch::Default), ip], false).is_err());
        assert!(quotas.describe(&[user(NameMatch::Default), user(NameMatch::Specified)], false).is_err());
        assert!(NameMatch::from_wire(0, None).is_err() && NameMatch::from_wire(3, None).is_err());
    }
}
