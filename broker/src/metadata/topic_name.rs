//! Kafka's rules for topic names.
//!
//! A name is 1 to 249 characters of ASCII letters, digits, `.`, `_` and `-`,
//! and is neither `.` nor `..`. Two names that differ only by `.` versus `_`
//! collide (their metric names would be the same), so only one may exist.

use super::MetadataError;

/// Longest topic name Kafka allows.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules.
pub fn validate(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason: String| MetadataError::InvalidTopicName { name: name.to_string(), reason };
    if name.is_empty() {
        return Err(invalid("a topic name cannot be empty".into()));
    }
    if name == "." || name == ".." {
        return Err(invalid("a topic name cannot be '.' or '..'".into()));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(invalid(format!(
            "it is {} characters long and at most {MAX_TOPIC_NAME_LEN} are allowed",
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(invalid(format!("character {c:?} is not allowed; use ASCII letters, digits, '.', '_' and '-'")));
    }
    Ok(())
}

/// The name with `.` mapped to `_`: two topics with the same key collide.
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_topic_name_rules() {
        for ok in ["a", "orders.v1", "my_topic-2", &"x".repeat(249)] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "has space", "slash/no", "ü", &"x".repeat(250)] {
            assert!(validate(bad).is_err(), "{bad}");
        }
        let msg = validate("bad name").unwrap_err().to_string();
        assert!(msg.contains("' '") && msg.contains("`bad name`"), "{msg}");
    }
}
