//! `--client-sasl-ssl`: Kafka clients over SASL_SSL with SCRAM-SHA-512 on
//! the single brokers of scenarios 1 and 4, beside the plaintext runs.
//!
//! Both systems get the same material and the same settings: one server
//! certificate from `strom-broker certs` (a CA and an ECDSA P-256
//! certificate with IP SAN 127.0.0.1), put into one PEM key store that both
//! brokers read, and the listener settings of
//! [`crate::process::sasl_ssl_settings`]. Each broker keeps its PLAINTEXT
//! listener, through which the harness sets up: the SCRAM user is created on
//! both with Kafka's own `kafka-configs.sh` (ConfigCommand, i.e.
//! AlterUserScramCredentials) exactly as an operator would, then checked by
//! describing it over the SASL_SSL listener with the clients' config file
//! (so the first measured run does not race the credential's propagation).
//!
//! The Java tools take that config file (`--command-config`:
//! `security.protocol=SASL_SSL`, `sasl.mechanism=SCRAM-SHA-512`, the JAAS
//! line, the CA as a PEM trust store; hostname verification stays on).
//! librdkafka is left out: the harness's rdkafka is built without SSL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::java_tools::JavaTools;
use crate::process::{Cluster, Programs, SCRAM_MECHANISM, write_certs};

/// The SCRAM user the Java tools authenticate as.
pub const SCRAM_USER: &str = "strom-bench";

/// How often creating the user is checked over SASL_SSL before giving up.
const DESCRIBE_ATTEMPTS: u32 = 10;

/// Which listener of a broker a run's clients use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Plaintext,
    SaslSsl,
}

impl Listener {
    /// The listeners round `round` uses, in order: only PLAINTEXT without
    /// `sasl_ssl`; else both, alternating which goes first (as
    /// [`crate::process::System::order`]), so neither always runs on the
    /// warmer broker.
    pub fn order(round: usize, sasl_ssl: bool) -> Vec<Listener> {
        match (sasl_ssl, round % 2) {
            (false, _) => vec![Listener::Plaintext],
            (true, 0) => vec![Listener::Plaintext, Listener::SaslSsl],
            (true, _) => vec![Listener::SaslSsl, Listener::Plaintext],
        }
    }
}

/// The SASL_SSL material of a run, shared by both systems' brokers.
#[derive(Debug)]
pub struct SaslSsl {
    /// The brokers' PEM key store: the private key, then the certificate.
    pub keystore: PathBuf,
    /// The Java clients' config file.
    pub client_config: PathBuf,
    password: String,
}

impl SaslSsl {
    /// Writes the certificate material (`ca.pem`, `broker-0.pem`,
    /// `broker-0-key.pem`), the key store and the clients'
    /// config file (with a fresh random password) into `dir`.
    pub fn prepare(programs: &Programs, dir: &Path) -> Result<SaslSsl> {
        write_certs(programs, dir, 1)?;
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let keystore = dir.join("keystore.pem");
        std::fs::write(&keystore, read("broker-0-key.pem")? + &read("broker-0.pem")?)
            .with_context(|| format!("writing {}", keystore.display()))?;
        let password = random_password()?;
        let client_config = dir.join("client-sasl-ssl.properties");
        std::fs::write(&client_config, client_properties(&password, &dir.join("ca.pem")))
            .with_context(|| format!("writing {}", client_config.display()))?;
        Ok(SaslSsl { keystore, client_config, password })
    }

    /// Creates the SCRAM user on `cluster` through its PLAINTEXT listener
    /// with `kafka-configs.sh --alter --add-config SCRAM-SHA-512=[...]`, then
    /// waits until its SASL_SSL listener authenticates that user (describing
    /// the user over it with the clients' config).
    pub fn add_user(&self, tools: &JavaTools, cluster: &Cluster) -> Result<()> {
        let secure =
            cluster.sasl_ssl_bootstrap().with_context(|| format!("{} has no SASL_SSL listener", cluster.name()))?;
        let alter = tools
            .config_command(&strings(&[
                "--bootstrap-server",
                &cluster.bootstrap(),
                "--alter",
                "--add-config",
                &format!("{SCRAM_MECHANISM}=[password={}]", self.password),
                "--entity-type",
                "users",
                "--entity-name",
                SCRAM_USER,
            ]))
            .with_context(|| format!("creating SCRAM user {SCRAM_USER} on {}", cluster.name()))?;
        if !alter.contains(&format!("Completed updating config for user {SCRAM_USER}")) {
            bail!("kafka-configs.sh on {} did not confirm the user {SCRAM_USER}: {}", cluster.name(), alter.trim());
        }
        let describe = strings(&[
            "--bootstrap-server",
            &secure,
            "--command-config",
            &self.client_config.display().to_string(),
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            SCRAM_USER,
        ]);
        let mut last = String::new();
        for _ in 0..DESCRIBE_ATTEMPTS {
            match tools.config_command(&describe) {
                Ok(out) if out.contains(SCRAM_MECHANISM) => return Ok(()),
                Ok(out) => last = out.trim().to_owned(),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        bail!(
            "{}: user {SCRAM_USER} not usable over SASL_SSL ({secure}) after {DESCRIBE_ATTEMPTS} attempts: {last}",
            cluster.name()
        )
    }
}

/// The report's note on how the SASL_SSL runs are set up.
pub fn setup_note() -> String {
    let settings = crate::process::sasl_ssl_settings(Path::new("<run dir>/sasl-ssl/keystore.pem"))
        .iter()
        .map(|(k, v)| format!("`{k}={v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "`--client-sasl-ssl`: each system's broker also serves clients on a second listener, SASL_SSL with {SCRAM_MECHANISM} only (settings on both: {settings}; the same key store: a CA and an ECDSA P-256 certificate with IP SAN 127.0.0.1 from `strom-broker certs`; each side's default TLS versions and cipher suites; no client certificates). The SCRAM user was created on both through the PLAINTEXT listener with `kafka-configs.sh --alter --add-config '{SCRAM_MECHANISM}=[password=...]' --entity-type users` (4096 iterations, the tool's default), then described over SASL_SSL before the first run. Every round runs the Java tool over both listeners of the same broker, alternating which goes first; its client config: `security.protocol=SASL_SSL`, `sasl.mechanism={SCRAM_MECHANISM}`, the ScramLoginModule JAAS line, the CA as a PEM trust store, hostname verification on. librdkafka runs plaintext only (the harness's rdkafka has no SSL). The Strom/Kafka table is the plaintext runs'; the table after it compares both listeners (SASL_SSL/plain per system, Strom SASL_SSL/Kafka SASL_SSL)"
    )
}

/// Scenario 4's note when scenario 1's has told how SASL_SSL is set up.
pub const S4_NOTE: &str = "`--client-sasl-ssl`: ConsumerPerformance also reads the backlog over the SASL_SSL listener of the same broker (set up as scenario 1 says), in a fresh group each run, alternating which listener goes first; the table after the Strom/Kafka one compares both listeners";

/// The Java clients' config for the SASL_SSL listener.
fn client_properties(password: &str, ca: &Path) -> String {
    format!(
        "security.protocol=SASL_SSL\n\
         sasl.mechanism={SCRAM_MECHANISM}\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{SCRAM_USER}\" password=\"{password}\";\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={}\n",
        ca.display()
    )
}

/// 32 hex digits from the kernel's random source: a password only this run knows.
fn random_password() -> Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the SCRAM password")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate_which_listener_goes_first() {
        assert_eq!(Listener::order(0, false), [Listener::Plaintext]);
        assert_eq!(Listener::order(1, false), [Listener::Plaintext]);
        assert_eq!(Listener::order(0, true), [Listener::Plaintext, Listener::SaslSsl]);
        assert_eq!(Listener::order(1, true), [Listener::SaslSsl, Listener::Plaintext]);
    }

    #[test]
    fn client_config_names_the_mechanism_user_and_trust_store() {
        let text = client_properties("0123abcd", Path::new("/tmp/x/ca.pem"));
        assert!(text.contains("security.protocol=SASL_SSL\n"), "{text}");
        assert!(text.contains("sasl.mechanism=SCRAM-SHA-512\n"), "{text}");
        assert!(text.contains("username=\"strom-bench\" password=\"0123abcd\";\n"), "{text}");
        assert!(text.contains("ssl.truststore.type=PEM\nssl.truststore.location=/tmp/x/ca.pem\n"), "{text}");
    }

    #[test]
    fn passwords_are_fresh_hex() -> Result<()> {
        let (a, b) = (random_password()?, random_password()?);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        Ok(())
    }
}
