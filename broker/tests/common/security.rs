//! The certificates and listeners of the client-security tests: a test CA
//! with a broker keystore, a client certificate it signed and one from
//! another CA; and a broker with PLAINTEXT, SASL_PLAINTEXT (PLAIN, SCRAM),
//! SASL_SSL (SCRAM-SHA-512) and SSL (required client certificates)
//! listeners; and an OAuth identity provider's signing key ([`Issuer`]).

use std::net::{IpAddr, Ipv4Addr};

use strom_broker::tls::certs::{Ca, PemPair};

use super::BrokerProcess;

/// The certificates of a test: a CA, the broker's keystore, a client
/// certificate the CA signed and one signed by another CA.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("a temp dir for certificates");
        let ca = Ca::generate("strom test CA").expect("a CA");
        let rogue = Ca::generate("someone else's CA").expect("a second CA");
        let ip = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let broker = ca.issue_named("broker-0", Some("Strom"), &["localhost".to_string()], &ip).expect("broker cert");
        let client = ca.issue_named("alice", Some("Acme"), &[], &[]).expect("client cert");
        let stranger = rogue.issue_named("mallory", Some("Acme"), &[], &[]).expect("rogue client cert");
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).expect("write a PEM file");
        write("ca.pem", ca.pem().cert.clone());
        write("keystore.pem", format!("{}{}", broker.key, broker.cert));
        for (name, pair) in [("client", &client), ("stranger", &stranger)] {
            write(&format!("{name}.pem"), pair.cert.clone());
            write(&format!("{name}-key.pem"), pair.key.clone());
            write(&format!("{name}-keystore.pem"), format!("{}{}", pair.key, pair.cert));
        }
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    pub fn pair(&self, name: &str) -> PemPair {
        let read = |f: String| std::fs::read_to_string(self.dir.path().join(f)).expect("read a PEM file");
        PemPair { cert: read(format!("{name}.pem")), key: read(format!("{name}-key.pem")) }
    }
}

/// The broker settings of the four listeners the tests use: PLAINTEXT on
/// the harness's port (advertised as 127.0.0.1), SASL_PLAINTEXT (PLAIN and
/// SCRAM), SASL_SSL (SCRAM-SHA-512) and SSL with required client
/// certificates, the last three advertised as `localhost` on the broker's
/// extra ports 0, 1 and 2 ([`BrokerProcess::extra_ports`]).
pub fn settings(pki: &Pki) -> Vec<String> {
    let (sasl, sasl_ssl, ssl) = ("{PORT_0}", "{PORT_1}", "{PORT_2}");
    vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{{KAFKA_PORT}},SASL://127.0.0.1:{sasl},SECURE://127.0.0.1:{sasl_ssl},MTLS://127.0.0.1:{ssl}"),
        format!("advertised.listeners=PLAINTEXT://127.0.0.1:{{KAFKA_PORT}},SASL://localhost:{sasl},SECURE://localhost:{sasl_ssl},MTLS://localhost:{ssl}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT,SECURE:SASL_SSL,MTLS:SSL".to_string(),
        "listener.name.sasl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256".to_string(),
        r#"listener.name.sasl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="bob-secret";"#.to_string(),
        "listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512".to_string(),
        format!("ssl.keystore.location={}", pki.path("keystore.pem")),
        format!("listener.name.mtls.ssl.truststore.location={}", pki.path("ca.pem")),
        "listener.name.mtls.ssl.client.auth=required".to_string(),
        "listener.name.mtls.ssl.principal.mapping.rules=RULE:^CN=([^,]*),O=Acme$/$1/L,DEFAULT".to_string(),
        "auto.create.topics.enable=true".to_string(),
    ]
}

/// A broker with [`settings`]; the SASL_PLAINTEXT, SASL_SSL and SSL ports.
pub fn start(pki: &Pki) -> (BrokerProcess, [u16; 3]) {
    let settings = settings(pki);
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start_with(&refs);
    let ports = broker.extra_ports();
    (broker, ports)
}

/// An ES256 signing key and its JWKS file, as an identity provider publishes it.
pub struct Issuer {
    pair: ring::signature::EcdsaKeyPair,
}

impl Issuer {
    pub fn new() -> Issuer {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("a key");
        Issuer {
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("a key"),
        }
    }

    pub fn jwks(&self) -> String {
        use base64::Engine;
        use ring::signature::KeyPair;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let point = self.pair.public_key().as_ref();
        serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..65])}]})
        .to_string()
    }

    /// A JWT for `sub`, expiring `expires_in` seconds from now (negative: already expired).
    pub fn token(&self, sub: &str, expires_in: i64) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("the clock").as_secs() as i64;
        let header = b64.encode(r#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#);
        let claims = serde_json::json!({"sub": sub, "iss": "https://idp.test", "aud": ["kafka"], "iat": now, "exp": now + expires_in});
        let input = format!("{header}.{}", b64.encode(claims.to_string()));
        let sig = self.pair.sign(&ring::rand::SystemRandom::new(), input.as_bytes()).expect("sign");
        format!("{input}.{}", b64.encode(sig.as_ref()))
    }
}
