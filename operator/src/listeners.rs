//! The brokers' Kafka listeners as broker settings: the default listener on
//! 9092 (`spec.listeners.authentication`) and `spec.listeners.additional`.
//!
//! Every TLS listener serves one certificate of the cluster CA shared by the
//! brokers (`listener.keystore.pem` in `<cluster>-broker-certs`, DNS SANs
//! for every pod, the headless and the bootstrap Service): the broker
//! config file is one file for all pods, so a per-broker path cannot be
//! named in it. Client certificates (`authentication: tls`) are checked
//! against the clients CA's certificate (`clients-ca.crt` in the same
//! Secret; the clients CA's key never reaches a broker) and the principal
//! is the certificate's CN.
//!
//! With `spec.listeners.external` the brokers have one more listener,
//! [`EXTERNAL_LISTENER`] on [`EXTERNAL_LISTENER_PORT`], of the default
//! listener's protocol: the external Services target it, and each broker
//! advertises it at its own external address (`crate::advertised`), so
//! clients outside the cluster follow leaders while clients inside keep
//! the pod DNS names of 9092.
//!
//! Pure: the spec in, settings and ports out. With no additional or
//! external listener the settings are exactly those of earlier releases
//! (no rolling restart on upgrade).

use std::collections::BTreeMap;

use strom_crds::{KafkaClusterSpec, KafkaListener, KafkaListenerAuthenticationType, ListenerAuthenticationType};

use crate::builders::{KAFKA_PORT, TLS_DIR};
pub use strom_crds::EXTERNAL_LISTENER_PORT;

/// The brokers' external listener's name (an additional listener's name
/// has no `_`, so none can take it).
pub const EXTERNAL_LISTENER: &str = "K8S_EXTERNAL";
/// The Service and container port name of the external listener.
pub const EXTERNAL_PORT_NAME: &str = "external";

/// Key in `<cluster>-broker-certs` of the listeners' PEM keystore (key, then certificate).
pub const LISTENER_KEYSTORE: &str = "listener.keystore.pem";
/// Key in `<cluster>-broker-certs` of the clients CA's certificate (trust bundle).
pub const CLIENTS_CA_CERT: &str = "clients-ca.crt";
/// A client certificate's principal: its CN (the clients CA issues `CN=<user>` only).
pub const PRINCIPAL_RULES: &str = "RULE:^CN=(.*)$/$1/,DEFAULT";

/// Whether any listener serves TLS (so the brokers need the listener keystore).
pub fn any_tls(spec: &KafkaClusterSpec) -> bool {
    spec.listeners.additional.iter().any(|l| l.tls)
}

/// Kafka's security protocol of an additional listener.
pub fn protocol(listener: &KafkaListener) -> &'static str {
    use KafkaListenerAuthenticationType::{OAuth, ScramSha512};
    match (listener.tls, listener.auth()) {
        (false, ScramSha512 | OAuth) => "SASL_PLAINTEXT",
        (true, ScramSha512 | OAuth) => "SASL_SSL",
        (false, _) => "PLAINTEXT",
        (true, _) => "SSL",
    }
}

/// The default listener's name (its protocol, as in earlier releases).
fn default_name(spec: &KafkaClusterSpec) -> &'static str {
    match spec.listeners.authentication.as_ref().map(|a| a.r#type) {
        Some(ListenerAuthenticationType::ScramSha512) => "SASL_PLAINTEXT",
        None => "PLAINTEXT",
    }
}

/// The broker settings of every listener.
pub fn listener_settings(spec: &KafkaClusterSpec) -> BTreeMap<String, String> {
    let mut settings = BTreeMap::new();
    let default = default_name(spec);
    if spec.listeners.authentication.is_some() {
        settings.insert("sasl.enabled.mechanisms".to_string(), "SCRAM-SHA-512".to_string());
    }
    if spec.listeners.additional.is_empty() && spec.listeners.external.is_none() {
        if spec.listeners.authentication.is_some() {
            settings.insert("listeners".to_string(), format!("{default}://0.0.0.0:{KAFKA_PORT}"));
        }
        return settings;
    }
    let mut listeners = vec![format!("{default}://0.0.0.0:{KAFKA_PORT}")];
    let mut map = vec![format!("{default}:{default}")];
    if spec.listeners.external.is_some() {
        listeners.push(format!("{EXTERNAL_LISTENER}://0.0.0.0:{EXTERNAL_LISTENER_PORT}"));
        map.push(format!("{EXTERNAL_LISTENER}:{default}"));
    }
    for l in &spec.listeners.additional {
        let name = l.name.to_ascii_uppercase();
        listeners.push(format!("{name}://0.0.0.0:{}", l.port));
        map.push(format!("{name}:{}", protocol(l)));
        let mut set = |key: &str, value: String| {
            settings.insert(format!("listener.name.{}.{key}", l.name), value);
        };
        if l.tls {
            set("ssl.keystore.type", "PEM".into());
            set("ssl.keystore.location", format!("{TLS_DIR}/{LISTENER_KEYSTORE}"));
        }
        match l.auth() {
            KafkaListenerAuthenticationType::ScramSha512 => set("sasl.enabled.mechanisms", "SCRAM-SHA-512".into()),
            KafkaListenerAuthenticationType::Tls => {
                set("ssl.client.auth", "required".into());
                set("ssl.truststore.type", "PEM".into());
                set("ssl.truststore.location", format!("{TLS_DIR}/{CLIENTS_CA_CERT}"));
                set("ssl.principal.mapping.rules", PRINCIPAL_RULES.into());
            }
            KafkaListenerAuthenticationType::OAuth => {
                for (key, value) in oauth_settings(l) {
                    set(key, value);
                }
            }
            KafkaListenerAuthenticationType::None => {}
        }
    }
    settings.insert("listeners".to_string(), listeners.join(","));
    settings.insert("listener.security.protocol.map".to_string(), map.join(","));
    settings
}

/// The JAAS login module line of an OAUTHBEARER listener (carries the
/// key set endpoint's trust store, as Kafka's does).
const OAUTH_LOGIN_MODULE: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required";

/// Where the broker pods see `authentication.jwksCaSecret` of listener `name`.
pub fn oauth_ca_dir(name: &str) -> String {
    format!("/etc/strom-oauth/{name}")
}

/// The volume showing listener `name`'s `jwksCaSecret` (at most 63 characters:
/// names are at most 11).
pub fn oauth_ca_volume(name: &str) -> String {
    format!("oauth-ca-{name}")
}

/// The OAUTHBEARER settings of an `oauth` listener, without the
/// `listener.name.<name>.` prefix: JWTs of `issuer` whose signature the key
/// set at `jwksUri` verifies; `audience` checked when set; the principal
/// from `principalClaim` (default `sub`).
fn oauth_settings(l: &KafkaListener) -> Vec<(&'static str, String)> {
    let Some(auth) = &l.authentication else { return Vec::new() };
    let mut settings = vec![
        ("sasl.enabled.mechanisms", "OAUTHBEARER".to_string()),
        ("sasl.oauthbearer.expected.issuer", auth.issuer.clone().unwrap_or_default()),
        ("sasl.oauthbearer.jwks.endpoint.url", auth.jwks_uri.clone().unwrap_or_default()),
        ("sasl.oauthbearer.sub.claim.name", auth.principal_claim.clone().unwrap_or_else(|| "sub".to_string())),
    ];
    if let Some(audience) = &auth.audience {
        settings.push(("sasl.oauthbearer.expected.audience", audience.clone()));
    }
    if let Some(ca) = &auth.jwks_ca_secret {
        // The key is a file name (letters, digits, `-._`: validated), so it
        // cannot close the quoted option.
        let path = format!("{}/{}", oauth_ca_dir(&l.name), ca.key);
        settings.push((
            "oauthbearer.sasl.jaas.config",
            format!("{OAUTH_LOGIN_MODULE} ssl.truststore.type=\"PEM\" ssl.truststore.location=\"{path}\";"),
        ));
    }
    settings
}

/// The Secrets the brokers mount for `oauth` listeners' `jwksCaSecret`:
/// (volume, Secret, mount path).
pub fn oauth_ca_mounts(spec: &KafkaClusterSpec) -> Vec<(String, String, String)> {
    let with_ca = spec.listeners.additional.iter().filter(|l| l.auth() == KafkaListenerAuthenticationType::OAuth);
    with_ca
        .filter_map(|l| {
            let secret = l.authentication.as_ref()?.jwks_ca_secret.as_ref()?;
            Some((oauth_ca_volume(&l.name), secret.name.clone(), oauth_ca_dir(&l.name)))
        })
        .collect()
}

/// The Service and container ports of the external listener
/// ([`EXTERNAL_PORT_NAME`], when `listeners.external` is set) and of the
/// additional listeners (`l-<name>`); a container port name has at most 15
/// characters.
pub fn additional_ports(spec: &KafkaClusterSpec) -> Vec<(String, i32)> {
    let external = spec.listeners.external.as_ref().map(|_| (EXTERNAL_PORT_NAME.to_string(), EXTERNAL_LISTENER_PORT));
    external.into_iter().chain(spec.listeners.additional.iter().map(|l| (format!("l-{}", l.name), l.port))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> KafkaClusterSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn without_additional_listeners_the_settings_are_unchanged() {
        assert!(listener_settings(&spec(serde_json::json!({}))).is_empty());
        let scram =
            listener_settings(&spec(serde_json::json!({"listeners": {"authentication": {"type": "scram-sha-512"}}})));
        assert_eq!(scram["listeners"], "SASL_PLAINTEXT://0.0.0.0:9092");
        assert_eq!(scram["sasl.enabled.mechanisms"], "SCRAM-SHA-512");
        assert_eq!(scram.len(), 2);
    }

    #[test]
    fn tls_scram_and_mtls_listeners_render_protocols_keystores_and_client_auth() {
        let s = spec(serde_json::json!({"listeners": {"additional": [
            {"name": "scram", "port": 9095, "tls": true, "authentication": {"type": "scram-sha-512"}},
            {"name": "mtls", "port": 9096, "tls": true, "authentication": {"type": "tls"}},
            {"name": "plain", "port": 9097},
        ]}}));
        let settings = listener_settings(&s);
        assert_eq!(
            settings["listeners"],
            "PLAINTEXT://0.0.0.0:9092,SCRAM://0.0.0.0:9095,MTLS://0.0.0.0:9096,PLAIN://0.0.0.0:9097"
        );
        assert_eq!(
            settings["listener.security.protocol.map"],
            "PLAINTEXT:PLAINTEXT,SCRAM:SASL_SSL,MTLS:SSL,PLAIN:PLAINTEXT"
        );
        let keystore = format!("{TLS_DIR}/{LISTENER_KEYSTORE}");
        assert_eq!(settings["listener.name.scram.ssl.keystore.location"], keystore);
        assert_eq!(settings["listener.name.scram.sasl.enabled.mechanisms"], "SCRAM-SHA-512");
        assert!(!settings.contains_key("listener.name.scram.ssl.client.auth"));
        assert_eq!(settings["listener.name.mtls.ssl.keystore.location"], keystore);
        assert_eq!(settings["listener.name.mtls.ssl.client.auth"], "required");
        assert_eq!(settings["listener.name.mtls.ssl.truststore.location"], format!("{TLS_DIR}/{CLIENTS_CA_CERT}"));
        assert_eq!(settings["listener.name.mtls.ssl.principal.mapping.rules"], PRINCIPAL_RULES);
        assert!(!settings.keys().any(|k| k.starts_with("listener.name.plain.")), "a plain listener needs nothing");
        assert!(any_tls(&s));
        assert_eq!(additional_ports(&s)[1], ("l-mtls".to_string(), 9096));
    }

    #[test]
    fn an_oauth_listener_renders_the_brokers_oauthbearer_settings() {
        let s = spec(serde_json::json!({"listeners": {"additional": [
            {"name": "oauth", "port": 9097, "tls": true, "authentication": {"type": "oauth",
                "issuer": "https://idp.example", "jwksUri": "https://idp.example/keys", "audience": "kafka",
                "principalClaim": "preferred_username", "jwksCaSecret": {"name": "idp-ca", "key": "ca.pem"}}},
            {"name": "bare", "port": 9098, "authentication": {"type": "oauth",
                "issuer": "https://idp.example", "jwksUri": "https://idp.example/keys"}},
        ]}}));
        let settings = listener_settings(&s);
        assert_eq!(
            settings["listener.security.protocol.map"],
            "PLAINTEXT:PLAINTEXT,OAUTH:SASL_SSL,BARE:SASL_PLAINTEXT"
        );
        let get = |k: &str| settings.get(k).map(String::as_str);
        assert_eq!(get("listener.name.oauth.sasl.enabled.mechanisms"), Some("OAUTHBEARER"));
        assert_eq!(get("listener.name.oauth.sasl.oauthbearer.expected.issuer"), Some("https://idp.example"));
        assert_eq!(get("listener.name.oauth.sasl.oauthbearer.jwks.endpoint.url"), Some("https://idp.example/keys"));
        assert_eq!(get("listener.name.oauth.sasl.oauthbearer.expected.audience"), Some("kafka"));
        assert_eq!(get("listener.name.oauth.sasl.oauthbearer.sub.claim.name"), Some("preferred_username"));
        assert_eq!(
            get("listener.name.oauth.oauthbearer.sasl.jaas.config"),
            Some(
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                 ssl.truststore.type=\"PEM\" ssl.truststore.location=\"/etc/strom-oauth/oauth/ca.pem\";"
            )
        );
        assert_eq!(get("listener.name.bare.sasl.oauthbearer.sub.claim.name"), Some("sub"));
        assert_eq!(get("listener.name.bare.sasl.oauthbearer.expected.audience"), None, "no audience: not checked");
        assert_eq!(get("listener.name.bare.oauthbearer.sasl.jaas.config"), None, "the system's roots");
        assert_eq!(
            oauth_ca_mounts(&s),
            vec![("oauth-ca-oauth".to_string(), "idp-ca".to_string(), "/etc/strom-oauth/oauth".to_string())]
        );
    }

    #[test]
    fn an_external_listener_is_a_second_listener_of_the_default_protocol() {
        let s = spec(serde_json::json!({"listeners": {
            "authentication": {"type": "scram-sha-512"},
            "external": {"type": "LoadBalancer"},
            "additional": [{"name": "tls", "port": 9095, "tls": true}],
        }}));
        let settings = listener_settings(&s);
        assert_eq!(
            settings["listeners"],
            "SASL_PLAINTEXT://0.0.0.0:9092,K8S_EXTERNAL://0.0.0.0:9099,TLS://0.0.0.0:9095"
        );
        assert_eq!(
            settings["listener.security.protocol.map"],
            "SASL_PLAINTEXT:SASL_PLAINTEXT,K8S_EXTERNAL:SASL_PLAINTEXT,TLS:SSL"
        );
        assert_eq!(additional_ports(&s), [("external".to_string(), 9099), ("l-tls".to_string(), 9095)]);
        let plain = listener_settings(&spec(serde_json::json!({"listeners": {"external": {"type": "NodePort"}}})));
        assert_eq!(plain["listeners"], "PLAINTEXT://0.0.0.0:9092,K8S_EXTERNAL://0.0.0.0:9099");
        assert_eq!(plain["listener.security.protocol.map"], "PLAINTEXT:PLAINTEXT,K8S_EXTERNAL:PLAINTEXT");
    }

    #[test]
    fn the_scram_default_listener_keeps_its_name_beside_additional_ones() {
        let s = spec(serde_json::json!({"listeners": {
            "authentication": {"type": "scram-sha-512"},
            "additional": [{"name": "tls", "port": 9095, "tls": true}],
        }}));
        let settings = listener_settings(&s);
        assert_eq!(settings["listeners"], "SASL_PLAINTEXT://0.0.0.0:9092,TLS://0.0.0.0:9095");
        assert_eq!(settings["listener.security.protocol.map"], "SASL_PLAINTEXT:SASL_PLAINTEXT,TLS:SSL");
        assert_eq!(settings["sasl.enabled.mechanisms"], "SCRAM-SHA-512");
    }
}
