//! Named Kafka listeners and their security settings, resolved Kafka's way.
//!
//! `listeners` (`NAME://HOST:PORT,...`) names the sockets to bind,
//! `advertised.listeners` what clients are told for each,
//! `listener.security.protocol.map` (`NAME:PROTOCOL,...`) the protocol of
//! each name (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL). A setting of one
//! listener is `listener.name.<name>.<setting>` (name in lower case), which
//! wins over the unprefixed `<setting>`: `ssl.keystore.location`,
//! `sasl.enabled.mechanisms`, `plain.sasl.jaas.config`, ...
//!
//! Without `listeners`, the broker has one PLAINTEXT listener named
//! `PLAINTEXT` on `--listen`, advertised as `--advertise` (the flags of
//! earlier releases keep working).
//!
//! Pure: a map of setting names to values in, validated [`Listener`]s or a
//! [`ListenerError`] naming the setting, the value and what is allowed out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use strom_tls::listener::StoreFormat;

use super::HostPort;
use crate::auth::jaas;
use crate::auth::principal_rules::{self, Rule};

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(s: &str) -> Option<SecurityProtocol> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    /// Whether connections start with a TLS handshake.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Asked for; a client without one is still served (as ANONYMOUS, or by SASL).
    Requested,
    /// A client without a trusted certificate is refused.
    Required,
}

/// SASL mechanisms Strom serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// RFC 5802/7677 with SHA-256.
    ScramSha256,
    /// RFC 5802 with SHA-512.
    ScramSha512,
    /// RFC 7628 with JWTs (KIP-255, KIP-768).
    OAuthBearer,
}

impl Mechanism {
    /// Kafka's name of the mechanism.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism named `name` (case as Kafka writes it).
    pub fn parse(name: &str) -> Option<Mechanism> {
        [Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512, Mechanism::OAuthBearer]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// The TLS settings of an SSL or SASL_SSL listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// `ssl.keystore.location`: the private key and the certificate chain
    /// (leaf first).
    pub keystore: PathBuf,
    /// `ssl.keystore.type` (PEM or PKCS12) with `ssl.keystore.password`.
    pub keystore_format: StoreFormat,
    /// `ssl.truststore.location`: CA certificates that sign client
    /// certificates; needed unless `ssl.client.auth=none`.
    pub truststore: Option<PathBuf>,
    /// `ssl.truststore.type` (PEM or PKCS12) with `ssl.truststore.password`.
    pub truststore_format: StoreFormat,
    /// `ssl.client.auth`.
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3.
    pub tls12: bool,
    /// Whether TLSv1.3 is enabled.
    pub tls13: bool,
    /// `ssl.principal.mapping.rules`.
    pub principal_rules: Vec<Rule>,
}

/// The SASL settings of a SASL listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSasl {
    /// `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN's users and passwords, from the `user_<name>="<password>"`
    /// options of `plain.sasl.jaas.config`.
    pub plain_users: BTreeMap<String, String>,
    /// OAUTHBEARER's token validation, when it is enabled.
    pub oauth: Option<crate::auth::oauth::OAuthConfig>,
}

/// One named listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its name, upper case as in `listeners`.
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// Where it binds.
    pub bind: SocketAddr,
    /// What clients are told.
    pub advertised: HostPort,
    /// TLS settings (SSL, SASL_SSL).
    pub tls: Option<ListenerTls>,
    /// SASL settings (SASL_PLAINTEXT, SASL_SSL).
    pub sasl: Option<ListenerSasl>,
    /// `connections.max.reauth.ms`: 0 (no re-authentication required) or
    /// the longest a SASL session lasts.
    pub max_reauth_ms: i64,
}

/// A listener setting that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting} `{value}`: {expected}")]
pub struct ListenerError {
    /// The setting's name.
    pub setting: String,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub expected: String,
}

fn err(setting: &str, value: &str, expected: impl Into<String>) -> ListenerError {
    ListenerError { setting: setting.to_string(), value: value.to_string(), expected: expected.into() }
}

/// Whether `name` is a listener or client-security setting this module
/// reads (so it is not looked up in the general settings table).
pub fn is_listener_setting(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "inter.broker.listener.name",
        "connections.max.reauth.ms",
        "plain.sasl.jaas.config",
        "sasl.jaas.config",
    ];
    // A broker setting of its own (`sasl.server.max.receive.size`, ...) is
    // not a listener's, whatever its prefix.
    if strom_settings::find(strom_settings::BROKER_SETTINGS, name).is_some() {
        return false;
    }
    EXACT.contains(&name)
        || name.starts_with("ssl.")
        || name.starts_with("sasl.")
        || name.starts_with("listener.name.")
        || name.ends_with(".sasl.jaas.config")
}

/// The settings of one listener that Strom reads, with their defaults.
const PER_LISTENER: &[(&str, &str)] = &[
    ("ssl.keystore.type", "PEM"),
    ("ssl.keystore.location", ""),
    ("ssl.keystore.password", ""),
    ("ssl.key.password", ""),
    ("ssl.truststore.type", "PEM"),
    ("ssl.truststore.location", ""),
    ("ssl.truststore.password", ""),
    ("ssl.client.auth", "none"),
    ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3"),
    ("ssl.protocol", "TLSv1.3"),
    ("ssl.principal.mapping.rules", "DEFAULT"),
    ("ssl.endpoint.identification.algorithm", "https"),
    ("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512"),
    ("plain.sasl.jaas.config", ""),
    ("scram-sha-256.sasl.jaas.config", ""),
    ("scram-sha-512.sasl.jaas.config", ""),
    ("connections.max.reauth.ms", "0"),
    ("oauthbearer.sasl.jaas.config", ""),
    ("sasl.oauthbearer.jwks.endpoint.url", ""),
    ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "3600000"),
    ("sasl.oauthbearer.expected.issuer", ""),
    ("sasl.oauthbearer.expected.audience", ""),
    ("sasl.oauthbearer.sub.claim.name", "sub"),
    ("sasl.oauthbearer.clock.skew.seconds", "30"),
];

/// Resolves the listeners from the security settings in `raw` (names for
/// which [`is_listener_setting`] holds) and the `--listen`/`--advertise`
/// flags' values.
pub fn resolve(
    raw: &BTreeMap<String, String>,
    listen: SocketAddr,
    advertise: &HostPort,
) -> Result<Vec<Listener>, ListenerError> {
    check_names(raw)?;
    let protocols = protocol_map(raw)?;
    let Some(spec) = raw.get("listeners").filter(|v| !v.trim().is_empty()) else {
        check_prefixes(raw, &["PLAINTEXT"])?;
        let protocol = SecurityProtocol::Plaintext;
        return Ok(vec![Listener {
            name: "PLAINTEXT".to_string(),
            protocol,
            bind: listen,
            advertised: advertise.clone(),
            tls: None,
            sasl: None,
            max_reauth_ms: 0,
        }]);
    };
    let bound = parse_endpoints("listeners", spec)?;
    check_prefixes(raw, &bound.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())?;
    let advertised = match raw.get("advertised.listeners").filter(|v| !v.trim().is_empty()) {
        Some(v) => parse_endpoints("advertised.listeners", v)?,
        None => Vec::new(),
    };
    for (name, _) in &advertised {
        if !bound.iter().any(|(n, _)| n == name) {
            return Err(err(
                "advertised.listeners",
                raw.get("advertised.listeners").map(String::as_str).unwrap_or(""),
                format!("names listener {name}, which `listeners` does not define"),
            ));
        }
    }
    let mut listeners = Vec::new();
    for (name, (host, port)) in &bound {
        let protocol = match protocols.get(name) {
            Some(p) => *p,
            None => {
                return Err(err(
                    "listener.security.protocol.map",
                    raw.get("listener.security.protocol.map").map(String::as_str).unwrap_or(""),
                    format!(
                        "no protocol for listener {name}; map it, e.g. {name}:SASL_SSL (protocols: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
                    ),
                ));
            }
        };
        let bind_host = if host.is_empty() { "0.0.0.0" } else { host.as_str() };
        let bind: SocketAddr = format!("{bind_host}:{port}")
            .parse()
            .or_else(|_| format!("[{bind_host}]:{port}").parse())
            .map_err(|_| err("listeners", spec, format!("listener {name}: bind to an IP address (or leave the host empty for all), e.g. {name}://0.0.0.0:{port}")))?;
        let advertised = match advertised.iter().find(|(n, _)| n == name) {
            Some((_, (h, p))) if !h.is_empty() => HostPort { host: h.clone(), port: *p },
            _ if !host.is_empty() && !bind.ip().is_unspecified() => HostPort { host: host.clone(), port: *port },
            _ => HostPort { host: advertise.host.clone(), port: *port },
        };
        let get = |key: &str| listener_value(raw, name, key);
        let tls = if protocol.tls() { Some(resolve_tls(name, &get)?) } else { None };
        let sasl = if protocol.sasl() { Some(resolve_sasl(name, &get)?) } else { None };
        let reauth = get("connections.max.reauth.ms");
        let max_reauth_ms = reauth.1.trim().parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            err(&reauth.0, &reauth.1, "an integer >= 0 (milliseconds; 0 turns re-authentication off)")
        })?;
        listeners.push(Listener { name: name.clone(), protocol, bind, advertised, tls, sasl, max_reauth_ms });
    }
    Ok(listeners)
}

/// Refuses a listener-prefixed setting Strom does not know, so a typo does
/// not pass silently.
fn check_names(raw: &BTreeMap<String, String>) -> Result<(), ListenerError> {
    let known = |key: &str| PER_LISTENER.iter().any(|(k, _)| *k == key);
    for (name, value) in raw {
        let key = match name.strip_prefix("listener.name.") {
            Some(rest) => match rest.split_once('.') {
                Some((_, key)) => key,
                None => return Err(err(name, value, "listener.name.<listener>.<setting>")),
            },
            None => name.as_str(),
        };
        let top = matches!(
            key,
            "listeners" | "advertised.listeners" | "listener.security.protocol.map" | "inter.broker.listener.name"
        );
        let top_level = top && !name.starts_with("listener.name.");
        if !top_level && !known(key) {
            let all: Vec<&str> = PER_LISTENER.iter().map(|(k, _)| *k).collect();
            return Err(err(name, value, format!("not a listener setting Strom knows; known: {}", all.join(", "))));
        }
    }
    Ok(())
}

/// Refuses `listener.name.<x>.<setting>` unless `<x>` is the lower-case
/// name of a listener defined here: such a setting would otherwise be
/// ignored, and an ignored `ssl.client.auth=required` fails open.
fn check_prefixes(raw: &BTreeMap<String, String>, listeners: &[&str]) -> Result<(), ListenerError> {
    for (name, value) in raw {
        let Some((listener, _)) = name.strip_prefix("listener.name.").and_then(|rest| rest.split_once('.')) else {
            continue;
        };
        if !listeners.iter().any(|l| l.to_ascii_lowercase() == listener) {
            let known: Vec<String> = listeners.iter().map(|l| l.to_ascii_lowercase()).collect();
            return Err(err(
                name,
                value,
                format!(
                    "listener.name.<listener>.<setting> with <listener> one of this broker's listeners in lower case: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A listener's value of `key` and the name it was found under:
/// `listener.name.<name>.<key>` first, then `<key>`, then the default.
fn listener_value(raw: &BTreeMap<String, String>, listener: &str, key: &str) -> (String, String) {
    let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
    if let Some(v) = raw.get(&prefixed) {
        return (prefixed, v.clone());
    }
    if let Some(v) = raw.get(key) {
        return (key.to_string(), v.clone());
    }
    let default = PER_LISTENER.iter().find(|(k, _)| *k == key).map(|(_, d)| *d).unwrap_or("");
    (prefixed, default.to_string())
}

fn protocol_map(raw: &BTreeMap<String, String>) -> Result<BTreeMap<String, SecurityProtocol>, ListenerError> {
    let mut map: BTreeMap<String, SecurityProtocol> = [
        ("PLAINTEXT", SecurityProtocol::Plaintext),
        ("SSL", SecurityProtocol::Ssl),
        ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
        ("SASL_SSL", SecurityProtocol::SaslSsl),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), p))
    .collect();
    if let Some(value) = raw.get("listener.security.protocol.map").filter(|v| !v.trim().is_empty()) {
        map.clear();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || {
                err(
                    "listener.security.protocol.map",
                    value,
                    "NAME:PROTOCOL,... with protocols PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, e.g. INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL",
                )
            };
            let (name, protocol) = item.split_once(':').ok_or_else(bad)?;
            map.insert(name.trim().to_ascii_uppercase(), SecurityProtocol::parse(protocol).ok_or_else(bad)?);
        }
    }
    Ok(map)
}

/// `NAME://HOST:PORT,...` into (upper-case name, (host, port)), each name once.
/// A listener's name with its host and port, as `listeners` names them.
type Endpoint = (String, (String, u16));

fn parse_endpoints(setting: &str, value: &str) -> Result<Vec<Endpoint>, ListenerError> {
    let mut out: Vec<Endpoint> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad =
            || err(setting, value, "NAME://HOST:PORT,... e.g. INTERNAL://:9092,EXTERNAL://broker.example.com:9095");
        let (name, rest) = item.split_once("://").ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port: u16 = port.parse().map_err(|_| bad())?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(bad());
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(err(setting, value, format!("listener {name} appears twice; each name may appear once")));
        }
        out.push((name, (host, port)));
    }
    if out.is_empty() {
        return Err(err(setting, value, "at least one NAME://HOST:PORT"));
    }
    Ok(out)
}

fn resolve_tls(name: &str, get: &impl Fn(&str) -> (String, String)) -> Result<ListenerTls, ListenerError> {
    let keystore_format = store_format(get, "ssl.keystore")?;
    let truststore_format = store_format(get, "ssl.truststore")?;
    let (k, v) = get("ssl.key.password");
    match &keystore_format {
        _ if v.is_empty() => {}
        StoreFormat::Pkcs12 { password } if *password == v => {}
        StoreFormat::Pkcs12 { .. } => {
            return Err(err(
                &k,
                "<hidden>",
                "empty or ssl.keystore.password: a PKCS#12 key opens with its store's password",
            ));
        }
        StoreFormat::Pem => return Err(err(&k, "<hidden>", "empty: Strom reads unencrypted PEM private keys only")),
    }
    let (k, keystore) = get("ssl.keystore.location");
    if keystore.trim().is_empty() {
        return Err(err(
            &k,
            "",
            format!("listener {name} uses TLS: a PEM file holding its private key and certificate chain"),
        ));
    }
    let (k, auth) = get("ssl.client.auth");
    let client_auth = match auth.trim().to_ascii_lowercase().as_str() {
        "none" => ClientAuth::None,
        "requested" => ClientAuth::Requested,
        "required" => ClientAuth::Required,
        _ => return Err(err(&k, &auth, "none, requested or required")),
    };
    let (tk, truststore) = get("ssl.truststore.location");
    let truststore = Some(truststore.trim()).filter(|t| !t.is_empty()).map(PathBuf::from);
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(err(
            &tk,
            "",
            format!("{k}={auth} needs a PEM file of the CA certificates that sign client certificates"),
        ));
    }
    let (k, protocols) = get("ssl.enabled.protocols");
    let (mut tls12, mut tls13) = (false, false);
    for p in protocols.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match p {
            "TLSv1.2" => tls12 = true,
            "TLSv1.3" => tls13 = true,
            _ => return Err(err(&k, &protocols, "a list of TLSv1.2 and TLSv1.3")),
        }
    }
    if !tls12 && !tls13 {
        return Err(err(&k, &protocols, "a list of TLSv1.2 and TLSv1.3"));
    }
    let (k, rules) = get("ssl.principal.mapping.rules");
    let principal_rules = principal_rules::parse(&rules).map_err(|e| err(&k, &rules, e.to_string()))?;
    Ok(ListenerTls {
        keystore: PathBuf::from(keystore.trim()),
        keystore_format,
        truststore,
        truststore_format,
        client_auth,
        tls12,
        tls13,
        principal_rules,
    })
}

/// `<prefix>.type` and `<prefix>.password` (`ssl.keystore` or `ssl.truststore`).
fn store_format(get: &impl Fn(&str) -> (String, String), prefix: &str) -> Result<StoreFormat, ListenerError> {
    let (tk, kind) = get(&format!("{prefix}.type"));
    let (pk, password) = get(&format!("{prefix}.password"));
    match kind.trim().to_ascii_uppercase().as_str() {
        "PEM" if password.is_empty() => Ok(StoreFormat::Pem),
        "PEM" => Err(err(&pk, "<hidden>", format!("empty with {tk}=PEM (PEM stores have no password)"))),
        "PKCS12" if password.is_empty() => {
            Err(err(&pk, "", format!("the store's password: {tk}=PKCS12 stores are encrypted with one")))
        }
        "PKCS12" => Ok(StoreFormat::Pkcs12 { password }),
        _ => Err(err(
            &tk,
            &kind,
            "PEM or PKCS12 (JKS is not read: convert it with keytool -importkeystore -deststoretype PKCS12)",
        )),
    }
}

fn resolve_sasl(name: &str, get: &impl Fn(&str) -> (String, String)) -> Result<ListenerSasl, ListenerError> {
    let (k, list) = get("sasl.enabled.mechanisms");
    let mut mechanisms = Vec::new();
    for m in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mechanism = Mechanism::parse(m).ok_or_else(|| {
            err(&k, &list, format!("{m} is not served; a list of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER"))
        })?;
        if !mechanisms.contains(&mechanism) {
            mechanisms.push(mechanism);
        }
    }
    if mechanisms.is_empty() {
        return Err(err(
            &k,
            &list,
            format!("listener {name} uses SASL: at least one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
        ));
    }
    let mut plain_users = BTreeMap::new();
    let (jk, jaas_line) = get("plain.sasl.jaas.config");
    if !jaas_line.trim().is_empty() {
        let parsed = jaas::parse(&jaas_line).map_err(|e| err(&jk, "<hidden>", e.to_string()))?;
        for (option, value) in parsed.options {
            if let Some(user) = option.strip_prefix("user_") {
                plain_users.insert(user.to_string(), value);
            }
        }
    }
    if mechanisms.contains(&Mechanism::Plain) && plain_users.is_empty() {
        return Err(err(
            &jk,
            "",
            "PLAIN is enabled: give its users, e.g. org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";",
        ));
    }
    let oauth = if mechanisms.contains(&Mechanism::OAuthBearer) { Some(resolve_oauth(get)?) } else { None };
    Ok(ListenerSasl { mechanisms, plain_users, oauth })
}

fn resolve_oauth(get: &impl Fn(&str) -> (String, String)) -> Result<crate::auth::oauth::OAuthConfig, ListenerError> {
    let jwks = resolve_jwks(get)?;
    let (k, skew) = get("sasl.oauthbearer.clock.skew.seconds");
    let clock_skew_s =
        skew.trim().parse::<i64>().ok().filter(|s| *s >= 0).ok_or_else(|| err(&k, &skew, "an integer >= 0"))?;
    let issuer = Some(get("sasl.oauthbearer.expected.issuer").1.trim().to_string()).filter(|s| !s.is_empty());
    let audience = get("sasl.oauthbearer.expected.audience")
        .1
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(crate::auth::oauth::OAuthConfig {
        jwks,
        issuer,
        audience,
        sub_claim: get("sasl.oauthbearer.sub.claim.name").1.trim().to_string(),
        clock_skew_s,
    })
}

/// The default of a per-listener setting (empty when it has none).
#[cfg(test)]
fn per_listener_default(name: &str) -> String {
    PER_LISTENER.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()).unwrap_or_default()
}

/// Where OAUTHBEARER's key set comes from: a local file (a path or
/// `file://`), or an HTTPS endpoint fetched every
/// `sasl.oauthbearer.jwks.endpoint.refresh.ms`, trusting the PEM CAs of the
/// `ssl.truststore.location` option of `oauthbearer.sasl.jaas.config` (as
/// Kafka takes them) or else the system's roots.
fn resolve_jwks(get: &impl Fn(&str) -> (String, String)) -> Result<crate::auth::jwks::JwksSource, ListenerError> {
    use crate::auth::jwks::JwksSource;
    let (k, url) = get("sasl.oauthbearer.jwks.endpoint.url");
    let url = url.trim();
    if url.starts_with("https://") {
        let (rk, refresh) = get("sasl.oauthbearer.jwks.endpoint.refresh.ms");
        let refresh_ms = refresh
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms >= 1000)
            .ok_or_else(|| err(&rk, &refresh, "an integer >= 1000 (milliseconds)"))?;
        let (jk, line) = get("oauthbearer.sasl.jaas.config");
        let mut trust = None;
        if !line.trim().is_empty() {
            let parsed = jaas::parse(&line).map_err(|e| err(&jk, "<hidden>", e.to_string()))?;
            for (option, value) in parsed.options {
                match option.as_str() {
                    "ssl.truststore.location" => trust = Some(PathBuf::from(value)),
                    "ssl.truststore.type" if !value.eq_ignore_ascii_case("PEM") => {
                        return Err(err(&jk, &value, "ssl.truststore.type: PEM (the only store type Strom reads)"));
                    }
                    _ => {}
                }
            }
        }
        return Ok(JwksSource::Https {
            url: url.to_string(),
            trust,
            refresh: std::time::Duration::from_millis(refresh_ms),
        });
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    if path.is_empty() || path.contains("://") {
        return Err(err(
            &k,
            url,
            "OAUTHBEARER is enabled: a local JWKS file (a path or file:///path) or an https:// endpoint",
        ));
    }
    Ok(JwksSource::File(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oauthbearer_key_set_comes_from_a_file_or_an_https_endpoint() {
        use crate::auth::jwks::JwksSource;
        let jwks = |pairs: &[(&str, &str)]| {
            let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            resolve_jwks(&|name: &str| {
                (name.to_string(), map.get(name).cloned().unwrap_or_else(|| per_listener_default(name)))
            })
        };
        assert_eq!(
            jwks(&[("sasl.oauthbearer.jwks.endpoint.url", "file:///etc/jwks.json")]),
            Ok(JwksSource::File("/etc/jwks.json".into()))
        );
        let line = r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ssl.truststore.location="/ca.pem";"#;
        assert_eq!(
            jwks(&[("sasl.oauthbearer.jwks.endpoint.url", "https://idp/keys"), ("oauthbearer.sasl.jaas.config", line)]),
            Ok(JwksSource::Https {
                url: "https://idp/keys".to_string(),
                trust: Some("/ca.pem".into()),
                refresh: std::time::Duration::from_secs(3600),
            })
        );
        for (pairs, says) in [
            (&[("sasl.oauthbearer.jwks.endpoint.url", "http://idp/keys")][..], "https://"),
            (&[("sasl.oauthbearer.jwks.endpoint.url", "")][..], "a local JWKS file"),
            (
                &[
                    ("sasl.oauthbearer.jwks.endpoint.url", "https://idp/keys"),
                    ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "10"),
                ][..],
                ">= 1000",
            ),
        ] {
            let e = jwks(pairs).unwrap_err();
            assert!(e.to_string().contains(says), "{pairs:?}: {e}");
        }
    }

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn flags() -> (SocketAddr, HostPort) {
        ("0.0.0.0:9092".parse().unwrap(), HostPort { host: "broker-0".into(), port: 9092 })
    }

    #[test]
    fn without_listeners_the_flags_make_one_plaintext_listener() {
        let (listen, advertise) = flags();
        let l = resolve(&raw(&[]), listen, &advertise).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "PLAINTEXT");
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].advertised.to_string(), "broker-0:9092");
    }

    #[test]
    fn named_listeners_take_protocols_advertised_addresses_and_prefixed_settings() {
        let (listen, advertise) = flags();
        let l = resolve(
            &raw(&[
                ("listeners", "INTERNAL://:9092,EXTERNAL://0.0.0.0:9095"),
                ("advertised.listeners", "EXTERNAL://kafka.example.com:443"),
                ("listener.security.protocol.map", "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL"),
                ("listener.name.external.ssl.keystore.location", "/tls/keystore.pem"),
                ("listener.name.external.sasl.enabled.mechanisms", "SCRAM-SHA-512,PLAIN"),
                (
                    "listener.name.external.plain.sasl.jaas.config",
                    r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="a;b";"#,
                ),
            ]),
            listen,
            &advertise,
        )
        .unwrap();
        assert_eq!(l[0].name, "INTERNAL");
        assert_eq!(l[0].advertised.to_string(), "broker-0:9092", "no advertised entry: the --advertise host");
        assert_eq!(l[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[1].bind.to_string(), "0.0.0.0:9095");
        assert_eq!(l[1].advertised.to_string(), "kafka.example.com:443");
        assert_eq!(l[1].tls.as_ref().unwrap().keystore, PathBuf::from("/tls/keystore.pem"));
        let sasl = l[1].sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanisms, vec![Mechanism::ScramSha512, Mechanism::Plain]);
        assert_eq!(sasl.plain_users.get("alice").map(String::as_str), Some("a;b"));
    }

    #[test]
    fn bad_listener_settings_name_the_setting_and_what_is_allowed() {
        let (listen, advertise) = flags();
        let e = resolve(&raw(&[("listeners", "FOO://:9092")]), listen, &advertise).unwrap_err();
        assert!(e.to_string().contains("no protocol for listener FOO"), "{e}");
        let e = resolve(&raw(&[("listeners", "SSL://:9093")]), listen, &advertise).unwrap_err();
        assert!(e.to_string().contains("ssl.keystore.location"), "{e}");
        let e = resolve(&raw(&[("listeners", "PLAINTEXT://:9092,PLAINTEXT://:9093")]), listen, &advertise).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        assert!(!is_listener_setting("sasl.server.max.receive.size"), "a broker setting despite its prefix");
        assert!(is_listener_setting("sasl.enabled.mechanisms"));
        let e = resolve(&raw(&[("listener.name.x.ssl.keystore.locaton", "/a")]), listen, &advertise).unwrap_err();
        assert!(e.to_string().contains("not a listener setting"), "{e}");
        // A setting for a listener that does not exist (or not in lower
        // case) would be ignored: refused, so `required` cannot fail open.
        for prefix in ["listener.name.EXTERNAL.ssl.client.auth", "listener.name.extrnal.ssl.client.auth"] {
            let e = resolve(
                &raw(&[
                    ("listeners", "EXTERNAL://:9093"),
                    ("listener.security.protocol.map", "EXTERNAL:SSL"),
                    ("ssl.keystore.location", "/k.pem"),
                    (prefix, "required"),
                ]),
                listen,
                &advertise,
            )
            .unwrap_err();
            assert!(e.to_string().contains("one of this broker's listeners in lower case: external"), "{e}");
        }
        let e = resolve(
            &raw(&[("listeners", "SASL_PLAINTEXT://:9092"), ("sasl.enabled.mechanisms", "PLAIN")]),
            listen,
            &advertise,
        )
        .unwrap_err();
        assert!(e.to_string().contains("user_alice"), "{e}");
        let e = resolve(
            &raw(&[("listeners", "SSL://:9093"), ("ssl.keystore.location", "/k.pem"), ("ssl.client.auth", "required")]),
            listen,
            &advertise,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ssl.truststore.location"), "{e}");
    }

    #[test]
    fn pkcs12_stores_need_their_password_and_pem_stores_none() {
        let (listen, advertise) = flags();
        let ssl = |extra: &[(&str, &str)]| {
            let mut all = vec![("listeners", "SSL://:9093"), ("ssl.keystore.location", "/k.p12")];
            all.extend_from_slice(extra);
            resolve(&raw(&all), listen, &advertise)
        };
        let l = ssl(&[
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.password", "secret-1"),
            ("ssl.key.password", "secret-1"),
            ("ssl.truststore.type", "pkcs12"),
            ("ssl.truststore.password", "secret-2"),
        ])
        .unwrap();
        let tls = l[0].tls.as_ref().unwrap();
        assert_eq!(tls.keystore_format, StoreFormat::Pkcs12 { password: "secret-1".into() });
        assert_eq!(tls.truststore_format, StoreFormat::Pkcs12 { password: "secret-2".into() });
        assert!(!format!("{l:?}").contains("secret-"), "passwords are never printed");

        let e = ssl(&[("ssl.keystore.type", "PKCS12")]).unwrap_err().to_string();
        assert!(e.contains("ssl.keystore.password"), "{e}");
        let e = ssl(&[("ssl.keystore.password", "x")]).unwrap_err().to_string();
        assert!(e.contains("ssl.keystore.password") && !e.contains("`x`"), "{e}");
        let e = ssl(&[("ssl.keystore.type", "JKS")]).unwrap_err().to_string();
        assert!(e.contains("PEM or PKCS12") && e.contains("keytool"), "{e}");
        let e = ssl(&[("ssl.keystore.type", "PKCS12"), ("ssl.keystore.password", "a"), ("ssl.key.password", "b")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ssl.key.password") && !e.contains("`b`"), "{e}");
    }
}
