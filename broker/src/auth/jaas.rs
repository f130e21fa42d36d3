//! Kafka's JAAS configuration line, as brokers take it in
//! `listener.name.<l>.plain.sasl.jaas.config`:
//! `<LoginModule class> <flag> key="value" key2=value2 ... ;`.
//!
//! Only the options are used (PLAIN's `user_<name>="<password>"`); the
//! class and flag are checked for shape. Pure; errors never echo values
//! (they hold passwords).

use std::collections::BTreeMap;

/// A parsed JAAS line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasLine {
    /// The login module class.
    pub module: String,
    /// `required`, `requisite`, `sufficient` or `optional`.
    pub flag: String,
    /// The options, by key.
    pub options: BTreeMap<String, String>,
}

/// Why a JAAS line was refused (without its values, which hold secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JaasError {
    /// Missing the class or flag.
    #[error("expected `<LoginModule class> required key=\"value\" ... ;`")]
    Shape,
    /// The flag is not one of JAAS's four.
    #[error("the control flag must be required, requisite, sufficient or optional")]
    Flag,
    /// An option is not `key=value` or `key="value"`.
    #[error("option {0} is not key=value or key=\"value\"")]
    Option(usize),
    /// A quoted value is not closed.
    #[error("a quoted value is not closed")]
    Unclosed,
    /// The line does not end with `;`.
    #[error("the line must end with `;`")]
    NoSemicolon,
}

/// Parses one JAAS line.
pub fn parse(line: &str) -> Result<JaasLine, JaasError> {
    let mut rest = line.trim();
    let mut word = || -> Option<String> {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let w = rest[..end].to_string();
        rest = rest[end..].trim_start();
        (!w.is_empty()).then_some(w)
    };
    let module = word().ok_or(JaasError::Shape)?;
    let flag = word().ok_or(JaasError::Shape)?;
    if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
        return Err(JaasError::Flag);
    }
    let mut options = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    let mut index = 0;
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None => return Err(JaasError::NoSemicolon),
            Some(';') => {
                chars.next();
                if chars.any(|c| !c.is_whitespace()) {
                    return Err(JaasError::Shape);
                }
                break;
            }
            Some(_) => {}
        }
        index += 1;
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() || c == ';' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return Err(JaasError::Option(index));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(JaasError::Unclosed),
                    Some('\\') => value.push(chars.next().ok_or(JaasError::Unclosed)?),
                    Some('"') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == ';' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        options.insert(key, value);
    }
    Ok(JaasLine { module, flag, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafkas_plain_line() {
        let line = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin"
               password="admin-secret" user_admin="admin-secret" user_alice="a \"quoted\"; pass" debug=true;"#,
        )
        .unwrap();
        assert_eq!(line.flag, "required");
        assert_eq!(line.options["user_alice"], "a \"quoted\"; pass");
        assert_eq!(line.options["debug"], "true");
        assert_eq!(line.options.len(), 5);
    }

    #[test]
    fn refuses_malformed_lines_without_echoing_values() {
        assert_eq!(parse("Module"), Err(JaasError::Shape));
        assert_eq!(parse("Module maybe a=b;"), Err(JaasError::Flag));
        assert_eq!(parse(r#"Module required user_a="secret"#), Err(JaasError::Unclosed));
        assert_eq!(parse("Module required a=b"), Err(JaasError::NoSemicolon));
        assert_eq!(parse("Module required =b;"), Err(JaasError::Option(1)));
        assert!(!parse(r#"Module required user_a="secret"#).unwrap_err().to_string().contains("secret"));
    }
}
