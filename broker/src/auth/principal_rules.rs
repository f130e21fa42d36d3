//! `ssl.principal.mapping.rules`: how a client certificate's subject
//! becomes a principal name, Kafka's way.
//!
//! The rules are tried in order; the first whose pattern matches the whole
//! subject DN (as RFC 2253 prints it, `CN=alice,OU=eng,O=Acme`) gives the
//! name: `RULE:<pattern>/<replacement>/[L|U]` replaces the pattern's
//! matches (`$1` names a group) and optionally lower- or upper-cases the
//! result; `DEFAULT` gives the DN unchanged. No rule matching gives the DN.
//! Pure.

use regex::Regex;

/// One mapping rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// The DN unchanged.
    Default,
    /// `RULE:pattern/replacement/[LU]`.
    Replace {
        /// The pattern, anchored to match the whole DN.
        whole: Regex,
        /// The pattern as written, for replacing.
        pattern: Regex,
        /// The replacement, `$1` naming a group.
        replacement: String,
        /// `L`, `U` or none.
        case: Case,
    },
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        match (self, other) {
            (Rule::Default, Rule::Default) => true,
            (
                Rule::Replace { pattern: a, replacement: ra, case: ca, .. },
                Rule::Replace { pattern: b, replacement: rb, case: cb, .. },
            ) => a.as_str() == b.as_str() && ra == rb && ca == cb,
            _ => false,
        }
    }
}

impl Eq for Rule {}

/// The case change of a rule's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// As replaced.
    Keep,
    /// `/L`: lower case.
    Lower,
    /// `/U`: upper case.
    Upper,
}

/// A rule list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Neither `DEFAULT` nor `RULE:...`.
    #[error("rule {0} must be DEFAULT or RULE:<pattern>/<replacement>/[L|U]")]
    Shape(usize),
    /// The pattern is not a regular expression.
    #[error("rule {index}: pattern does not compile: {reason}")]
    Pattern { index: usize, reason: String },
}

/// Parses a comma-separated list of rules (`DEFAULT` when empty).
pub fn parse(text: &str) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let index = rules.len() + 1;
        if let Some(after) = rest.strip_prefix("DEFAULT") {
            rules.push(Rule::Default);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("RULE:") {
            let (pattern, after) = until_slash(after).ok_or(RuleError::Shape(index))?;
            let (replacement, after) = until_slash(after).ok_or(RuleError::Shape(index))?;
            let (case, after) = match after.chars().next() {
                Some('L') => (Case::Lower, &after[1..]),
                Some('U') => (Case::Upper, &after[1..]),
                _ => (Case::Keep, after),
            };
            let compile = |p: &str| Regex::new(p).map_err(|e| RuleError::Pattern { index, reason: e.to_string() });
            rules.push(Rule::Replace {
                whole: compile(&format!("^(?:{pattern})$"))?,
                pattern: compile(&pattern)?,
                replacement,
                case,
            });
            rest = after;
        } else {
            return Err(RuleError::Shape(index));
        }
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(RuleError::Shape(index + 1)),
        }
    }
    if rules.is_empty() {
        rules.push(Rule::Default);
    }
    Ok(rules)
}

/// Text up to the next unescaped `/` (`\/` becomes `/`, other escapes
/// stay for the regex) and what follows it.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, next) = chars.next()?;
                if next != '/' {
                    out.push('\\');
                }
                out.push(next);
            }
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// The principal name `dn` maps to under `rules`.
pub fn apply(rules: &[Rule], dn: &str) -> String {
    for rule in rules {
        match rule {
            Rule::Default => return dn.to_string(),
            Rule::Replace { whole, pattern, replacement, case } => {
                if !whole.is_match(dn) {
                    continue;
                }
                let replaced = pattern.replace_all(dn, replacement.as_str()).into_owned();
                return match case {
                    Case::Keep => replaced,
                    Case::Lower => replaced.to_lowercase(),
                    Case::Upper => replaced.to_uppercase(),
                };
            }
        }
    }
    dn.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_the_dn() {
        let rules = parse("DEFAULT").unwrap();
        assert_eq!(apply(&rules, "CN=alice,O=Acme"), "CN=alice,O=Acme");
        assert_eq!(parse("").unwrap(), vec![Rule::Default]);
    }

    #[test]
    fn rules_apply_in_order_and_fall_back_to_default() {
        let rules =
            parse(r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=([^,]*),O=(.*)$/$1@$2/U, DEFAULT").unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(apply(&rules, "CN=Kafka-App,OU=ServiceUsers,O=Acme"), "kafka-app");
        assert_eq!(apply(&rules, "CN=bob,O=acme"), "BOB@ACME");
        assert_eq!(apply(&rules, "C=US"), "C=US");
    }

    #[test]
    fn escaped_slashes_and_bad_rules() {
        let rules = parse(r"RULE:^CN=(.*)\/x$/$1\/y/").unwrap();
        assert_eq!(apply(&rules, "CN=a/x"), "a/y");
        assert_eq!(parse("RULE:abc"), Err(RuleError::Shape(1)));
        assert_eq!(parse("DEFAULT junk"), Err(RuleError::Shape(2)));
        assert!(matches!(parse("RULE:(/x/"), Err(RuleError::Pattern { index: 1, .. })));
    }
}
