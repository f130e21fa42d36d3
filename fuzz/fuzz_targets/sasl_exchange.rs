//! Fuzzes the SASL exchange a client drives before it is authenticated:
//! any sequence of tokens, for any mechanism, must be answered, refused or
//! failed — never panic, never authenticate without the password.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strom_broker::auth::sasl::{AuthStep, SaslSession};
use strom_broker::auth::scram::{self, ScramCredential};
use strom_broker::config::listeners::{ListenerSasl, Mechanism};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let _ = scram::parse_client_first(rest);
    let _ = scram::parse_client_final(rest);
    let mechanism = match choice % 3 {
        0 => "PLAIN",
        1 => "SCRAM-SHA-256",
        _ => "SCRAM-SHA-512",
    };
    let config = ListenerSasl {
        mechanisms: vec![Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512],
        plain_users: BTreeMap::from([("alice".to_string(), "not-in-the-corpus-7c1f".to_string())]),
        oauth: None,
    };
    let mut session = SaslSession::new(Arc::new(config), choice & 0x40 != 0);
    if session.handshake(mechanism, choice & 0x80 != 0).is_err() {
        return;
    }
    let credential = |_: &str, m: Mechanism| {
        ScramCredential::from_salted_password(m, b"salt", scram::MIN_ITERATIONS, b"salted-not-in-the-corpus")
    };
    // Tokens are separated by 0xff bytes.
    for token in rest.split(|b| *b == 0xff) {
        match session.authenticate(token, credential, |b| {
 b.fill(0x5a);
 true
 }) {
            AuthStep::Continue(_) => {}
            AuthStep::Done { .. } => {
                // PLAIN carries the password itself; a SCRAM proof cannot be guessed.
                let password: &[u8] = b"not-in-the-corpus-7c1f";
                assert!(
                    mechanism == "PLAIN" && token.ends_with(password),
                    "authenticated without the password"
                );
                return;
            }
            AuthStep::Failed { .. } | AuthStep::IllegalState => return,
        }
    }
});
