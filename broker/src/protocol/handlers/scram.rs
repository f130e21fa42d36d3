//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554):
//! SCRAM users kept in the controller metadata, so
//! `kafka-configs.sh --alter --add-config 'SCRAM-SHA-512=[password=...]'
//! --entity-type users` works. The client salts the password itself; the
//! broker keeps salt, iterations, stored key and server key.
//!
//! Kafka's checks, one result per user: a known mechanism
//! (UNSUPPORTED_SASL_MECHANISM), a non-empty name, salt and salted
//! password and 4096..=16384 iterations (UNACCEPTABLE_CREDENTIAL), a user
//! named once per request (DUPLICATE_RESOURCE), deleting only what exists
//! (RESOURCE_NOT_FOUND).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};

use super::str_bytes;
use crate::auth::scram::{MAX_ITERATIONS, MIN_ITERATIONS, ScramCredential};
use crate::broker::Broker;
use crate::config::listeners::Mechanism;
use crate::protocol::errors::KafkaError;

/// Kafka's wire code of a SCRAM mechanism.
fn mechanism_of(code: i8) -> Option<Mechanism> {
    match code {
        1 => Some(Mechanism::ScramSha256),
        2 => Some(Mechanism::ScramSha512),
        _ => None,
    }
}

fn code_of(name: &str) -> i8 {
    match Mechanism::parse(name) {
        Some(Mechanism::ScramSha256) => 1,
        Some(Mechanism::ScramSha512) => 2,
        _ => 0,
    }
}

/// What one user's alterations come to: the changes, or the error.
type UserChanges = Result<(Vec<(String, String, ScramCredential)>, Vec<(String, String)>), KafkaError>;

pub async fn alter(
    broker: &Arc<Broker>,
    request: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    let mut per_user: BTreeMap<String, UserChanges> = BTreeMap::new();
    let mut seen: BTreeMap<(String, i8), usize> = BTreeMap::new();
    let unacceptable = |m: &str| Err(KafkaError::new(ResponseError::UnacceptableCredential, m));
    for d in &request.deletions {
        *seen.entry((d.name.to_string(), d.mechanism)).or_default() += 1;
    }
    for u in &request.upsertions {
        *seen.entry((u.name.to_string(), u.mechanism)).or_default() += 1;
    }
    let existing =
        |user: &str, mechanism: Mechanism| broker.metadata.read().scram_credential(user, mechanism).is_some();
    let mut note = |user: &str, mechanism: i8, change: &dyn Fn(Mechanism) -> UserChanges| {
        let entry = per_user.entry(user.to_string()).or_insert_with(|| Ok((Vec::new(), Vec::new())));
        if entry.is_err() {
            return;
        }
        let result = if user.is_empty() {
            unacceptable("Username must not be empty")
        } else if seen.get(&(user.to_string(), mechanism)).copied().unwrap_or(0) > 1 {
            Err(KafkaError::new(
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request",
            ))
        } else {
            match mechanism_of(mechanism) {
                None => Err(KafkaError::new(ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism")),
                Some(m) => change(m),
            }
        };
        match result {
            Ok((up, del)) => {
                if let Ok((ups, dels)) = entry {
                    ups.extend(up);
                    dels.extend(del);
                }
            }
            Err(e) => *entry = Err(e),
        }
    };
    for d in &request.deletions {
        let user = d.name.to_string();
        note(&user, d.mechanism, &|m| {
            if !existing(&user, m) {
                return Err(KafkaError::new(
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist",
                ));
            }
            Ok((Vec::new(), vec![(user.clone(), m.name().to_string())]))
        });
    }
    for u in &request.upsertions {
        let user = u.name.to_string();
        note(&user, u.mechanism, &|m| {
            if u.iterations < MIN_ITERATIONS {
                return unacceptable("Too few iterations");
            }
            if u.iterations > MAX_ITERATIONS {
                return unacceptable("Too many iterations");
            }
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return unacceptable("Salt and salted password must not be empty");
            }
            let credential = ScramCredential::from_salted_password(m, &u.salt, u.iterations, &u.salted_password)
                .ok_or_else(|| KafkaError::new(ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism"))?;
            Ok((vec![(user.clone(), m.name().to_string(), credential)], Vec::new()))
        });
    }
    let (mut upserts, mut deletions) = (Vec::new(), Vec::new());
    for (up, del) in per_user.values().flatten() {
        upserts.extend(up.iter().cloned());
        deletions.extend(del.iter().cloned());
    }
    let committed = if upserts.is_empty() && deletions.is_empty() {
        Ok(())
    } else {
        crate::admin::apply(broker, crate::admin::Change::AlterScramCredentials { upserts, deletions }, false)
            .await
            .map(|_| ())
            .map_err(|e| KafkaError::from(&e))
    };
    let results = per_user
        .into_iter()
        .map(|(user, outcome)| {
            let error = match (outcome, &committed) {
                (Err(e), _) => Some(e),
                (Ok(_), Err(e)) => Some(e.clone()),
                (Ok(_), Ok(())) => None,
            };
            AlterUserScramCredentialsResult::default()
                .with_user(str_bytes(user))
                .with_error_code(error.as_ref().map_or(0, KafkaError::code))
                .with_error_message(error.map(|e| str_bytes(e.message)))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

pub fn describe(
    broker: &Arc<Broker>,
    request: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    let view = broker.metadata.read();
    let all: BTreeMap<&str, Vec<(&str, i32)>> = view.scram_users().collect();
    let info = |mechanisms: &[(&str, i32)]| -> Vec<CredentialInfo> {
        mechanisms
            .iter()
            .map(|(name, iterations)| {
                CredentialInfo::default().with_mechanism(code_of(name)).with_iterations(*iterations)
            })
            .collect()
    };
    let results = match &request.users {
        // Null or empty: every user with credentials.
        None => all
            .iter()
            .map(|(user, m)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(user.to_string()))
                    .with_credential_infos(info(m))
            })
            .collect(),
        Some(users) if users.is_empty() => all
            .iter()
            .map(|(user, m)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(user.to_string()))
                    .with_credential_infos(info(m))
            })
            .collect(),
        Some(users) => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for u in users {
                *counts.entry(u.name.as_str()).or_default() += 1;
            }
            let mut out = Vec::new();
            for (user, count) in counts {
                let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user.to_string()));
                out.push(if count > 1 {
                    result.with_error_code(ResponseError::DuplicateResource.code()).with_error_message(Some(str_bytes(
                        format!(
                            "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                        ),
                    )))
                } else if let Some(m) = all.get(user) {
                    result.with_credential_infos(info(m))
                } else {
                    result.with_error_code(ResponseError::ResourceNotFound.code()).with_error_message(Some(str_bytes(
                        format!("Attempt to describe a user credential that does not exist: {user}"),
                    )))
                });
            }
            out
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
