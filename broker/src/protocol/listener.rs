//! A named Kafka listener as connections use it: its name (for the
//! addresses Metadata answers with), its TLS acceptor configuration and
//! principal mapping rules, and its SASL mechanisms.

use std::sync::Arc;

use anyhow::Context;

use crate::auth::principal_rules::Rule;
use crate::config::listeners::{ClientAuth, Listener, ListenerSasl, SecurityProtocol};
use strom_tls::listener::{ListenerTls, ListenerTlsFiles};

/// A listener's runtime state, shared by its connections.
#[derive(Debug)]
pub struct ClientListener {
    /// The listener's name (`PLAINTEXT`, `EXTERNAL`, ...).
    pub name: Arc<str>,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// TLS, for SSL and SASL_SSL.
    pub tls: Option<Arc<ListenerTls>>,
    /// `ssl.principal.mapping.rules`.
    pub principal_rules: Vec<Rule>,
    /// SASL, for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<Arc<ListenerSasl>>,
    /// `connections.max.reauth.ms`: how long a SASL session lasts (0: for ever).
    pub max_reauth_ms: i64,
}

impl ClientListener {
    /// The runtime state of `config`; fails when its TLS files do not load.
    pub fn new(config: &Listener) -> anyhow::Result<Arc<ClientListener>> {
        let (tls, principal_rules) = match &config.tls {
            None => (None, Vec::new()),
            Some(t) => {
                let files = ListenerTlsFiles {
                    keystore: t.keystore.clone(),
                    keystore_format: t.keystore_format.clone(),
                    truststore: t.truststore.clone(),
                    truststore_format: t.truststore_format.clone(),
                    client_auth: match t.client_auth {
                        ClientAuth::None => strom_tls::listener::ClientAuth::None,
                        ClientAuth::Requested => strom_tls::listener::ClientAuth::Requested,
                        ClientAuth::Required => strom_tls::listener::ClientAuth::Required,
                    },
                    tls12: t.tls12,
                    tls13: t.tls13,
                };
                let tls = ListenerTls::load(files).with_context(|| format!("listener {}", config.name))?;
                (Some(tls), t.principal_rules.clone())
            }
        };
        Ok(Arc::new(ClientListener {
            name: Arc::from(config.name.as_str()),
            protocol: config.protocol,
            tls,
            principal_rules,
            sasl: config.sasl.clone().map(Arc::new),
            max_reauth_ms: config.max_reauth_ms,
        }))
    }
}
