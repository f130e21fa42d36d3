//! Regex subscriptions (`SubscribedTopicRegex`, KIP-848): compiling a
//! member's pattern under size bounds and resolving it against topic names.
//!
//! Kafka compiles the pattern with RE2J and keeps the topics whose whole name
//! matches; the `regex` crate is the same RE2 family (linear time, no
//! backreferences or look-around), so the same patterns mean the same thing
//! and a pattern RE2 refuses is refused here too. A pattern is at most
//! [`MAX_PATTERN_BYTES`] long and its compiled program at most
//! [`MAX_COMPILED_BYTES`], so a member cannot make the coordinator build a
//! huge automaton; a refused pattern is INVALID_REGULAR_EXPRESSION with the
//! reason. Resolution keeps only the topics the member may describe (the
//! caller's predicate: its ACLs), as Kafka does.

use std::collections::{BTreeMap, BTreeSet};

use regex::{Regex, RegexBuilder};

use super::ConsumerGroupError;
use super::assignor::TopicMeta;

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// The largest compiled program accepted, in bytes (the `regex` crate's size limit).
pub const MAX_COMPILED_BYTES: usize = 256 * 1024;

/// Compiles `pattern` as a whole-name matcher, or says why it cannot.
pub fn compile(pattern: &str) -> Result<Regex, ConsumerGroupError> {
    let invalid = |why: String| ConsumerGroupError::InvalidRegularExpression { pattern: pattern.to_string(), why };
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(invalid(format!("it is {} bytes long, more than the {MAX_PATTERN_BYTES} allowed", pattern.len())));
    }
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(MAX_COMPILED_BYTES)
        .dfa_size_limit(MAX_COMPILED_BYTES)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                invalid(format!("its compiled form exceeds the {limit}-byte limit; use a simpler pattern"))
            }
            other => invalid(other.to_string()),
        })
}

/// The topics of `metadata` whose whole name `regex` matches and that `may_describe` allows.
pub fn resolve(
    regex: &Regex,
    metadata: &BTreeMap<String, TopicMeta>,
    may_describe: &dyn Fn(&str) -> bool,
) -> BTreeSet<String> {
    metadata.keys().filter(|t| regex.is_match(t) && may_describe(t)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn md(names: &[&str]) -> BTreeMap<String, TopicMeta> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), TopicMeta { id: Uuid::from_u128(i as u128 + 1), partitions: 1 }))
            .collect()
    }

    #[test]
    fn a_pattern_matches_whole_names_only_and_only_describable_topics() {
        let r = compile("pay.*").expect("valid");
        let topics = md(&["payments", "pay", "repay", "payments-dlq", "orders"]);
        let all = resolve(&r, &topics, &|_| true);
        assert_eq!(all, ["pay", "payments", "payments-dlq"].map(String::from).into());
        let some = resolve(&r, &topics, &|t| t != "payments-dlq");
        assert_eq!(some, ["pay", "payments"].map(String::from).into());
        let alternation = compile("a|b").expect("valid");
        assert_eq!(resolve(&alternation, &md(&["a", "b", "ab"]), &|_| true), ["a", "b"].map(String::from).into());
    }

    #[test]
    fn bad_long_or_huge_patterns_are_refused_with_the_reason() {
        let unclosed = compile("pay(").expect_err("unclosed group");
        assert!(matches!(&unclosed, ConsumerGroupError::InvalidRegularExpression { pattern, .. } if pattern == "pay("));
        assert!(unclosed.to_string().contains("\"pay(\""), "{unclosed}");
        let backref = compile("(a)\\1").expect_err("RE2 has no backreferences");
        assert!(backref.to_string().contains("backreference") || backref.to_string().contains("escape"), "{backref}");
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        let e = compile(&long).expect_err("too long");
        assert!(e.to_string().contains("1025 bytes"), "{e}");
        let huge = compile("\\w{1000}\\w{1000}").expect_err("compiled too big");
        assert!(e.to_string().contains("allowed") && huge.to_string().contains("limit"), "{huge}");
    }
}
