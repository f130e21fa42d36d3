//! Strom variants for A/B comparisons in the same run (issue 22):
//! `--strom-variant NAME=ARGS` names an extra 3-node Strom cluster whose
//! every node gets ARGS appended to its `strom-broker` command line (e.g.
//! `unary='--set replica.fetch.stream=false'`), and `--strom-args ARGS`
//! appends ARGS to the base Strom's nodes. A variant does not inherit
//! `--strom-args`: it is the stock command line plus its own ARGS.
//!
//! ARGS is split like a shell word list (whitespace, single and double
//! quotes, backslash escapes) without any expansion. The flags the harness
//! itself sets on every node (ports, data directory, node id, voters,
//! internal TLS) are refused, since a second copy would make the broker
//! refuse to start or silently move a listener the harness waits on.

use anyhow::{Result, bail};

/// Most variants in one run: each is a 3-node cluster beside the others on
/// the same machine.
pub const MAX_VARIANTS: usize = 4;

/// Longest variant name (it names directories, topics' logs and report rows).
const MAX_NAME: usize = 32;

/// Longest ARGS string.
const MAX_ARGS_CHARS: usize = 4096;

/// Flags the harness sets on every Strom node itself.
const HARNESS_FLAGS: &[&str] = &[
    "--node-id",
    "--data-dir",
    "--listen",
    "--advertise",
    "--internal-listen",
    "--internal-advertise",
    "--http-listen",
    "--voters",
    "--internal-insecure",
    "--internal-tls-ca",
    "--internal-tls-cert",
    "--internal-tls-key",
];

/// One `--strom-variant`: its name and the arguments its nodes get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StromVariant {
    pub name: String,
    pub args: Vec<String>,
}

impl StromVariant {
    /// Parses `NAME=ARGS`.
    pub fn parse(spec: &str) -> Result<StromVariant> {
        let Some((name, args)) = spec.split_once('=') else {
            bail!("--strom-variant {spec:?}: expected NAME=ARGS, e.g. unary='--set replica.fetch.stream=false'");
        };
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_NAME {
            bail!("--strom-variant {spec:?}: the name must be 1 to {MAX_NAME} characters");
        }
        if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            bail!(
                "--strom-variant {spec:?}: {bad:?} in the name {name:?}; allowed are ASCII letters, digits, '-' and '_'"
            );
        }
        let args = split_args(args).map_err(|e| anyhow::anyhow!("--strom-variant {name}: {e}"))?;
        Ok(StromVariant { name: name.to_owned(), args })
    }
}

/// Parses every `--strom-variant`, refusing repeated names and more than
/// [`MAX_VARIANTS`].
pub fn parse_all(specs: &[String]) -> Result<Vec<StromVariant>> {
    if specs.len() > MAX_VARIANTS {
        bail!(
            "--strom-variant given {} times; allowed are at most {MAX_VARIANTS} (each is a 3-node cluster)",
            specs.len()
        );
    }
    let mut all: Vec<StromVariant> = Vec::new();
    for spec in specs {
        let v = StromVariant::parse(spec)?;
        if all.iter().any(|o| o.name == v.name) {
            bail!("--strom-variant {}: the name is given twice; each variant needs its own", v.name);
        }
        all.push(v);
    }
    Ok(all)
}

/// Splits `text` into arguments like a shell word list: whitespace
/// separates, '…' and "…" quote, a backslash escapes the next character
/// (outside single quotes). No expansion of any kind. Refuses the flags
/// the harness sets itself.
pub fn split_args(text: &str) -> Result<Vec<String>> {
    if text.len() > MAX_ARGS_CHARS {
        bail!("arguments of {} characters; allowed are at most {MAX_ARGS_CHARS}", text.len());
    }
    let mut args = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    args.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => bail!("unterminated ' in {text:?}"),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => w.push(c),
                            None => bail!("a trailing \\ in {text:?}"),
                        },
                        Some(c) => w.push(c),
                        None => bail!("unterminated \" in {text:?}"),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => bail!("a trailing \\ in {text:?}"),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    args.extend(word);
    for arg in &args {
        let flag = arg.split_once('=').map_or(arg.as_str(), |(f, _)| f);
        if HARNESS_FLAGS.contains(&flag) {
            bail!(
                "{flag} is set by the harness on every node; allowed are other strom-broker arguments (e.g. --set KEY=VALUE)"
            );
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_is_a_name_and_shell_split_arguments() {
        let v = StromVariant::parse("unary=--set replica.fetch.stream=false").unwrap();
        assert_eq!(v.name, "unary");
        assert_eq!(v.args, ["--set", "replica.fetch.stream=false"]);
        let v = StromVariant::parse(r#"q=--set 'a=b c' --set "d=\"e\"" x\ y"#).unwrap();
        assert_eq!(v.args, ["--set", "a=b c", "--set", "d=\"e\"", "x y"]);
        assert_eq!(StromVariant::parse("stock=").unwrap().args, Vec::<String>::new());
    }

    #[test]
    fn bad_variants_are_refused_naming_what_is_allowed() {
        let err = |s: &str| StromVariant::parse(s).unwrap_err().to_string();
        assert!(err("no-equals").contains("expected NAME=ARGS"), "{}", err("no-equals"));
        assert!(err("=--set a=b").contains("1 to 32 characters"));
        assert!(err("a/b=x").contains("'/' in the name"), "{}", err("a/b=x"));
        assert!(err("v=--set 'a=b").contains("unterminated '"));
        assert!(err("v=--listen 127.0.0.1:1").contains("--listen is set by the harness"));
        assert!(err("v=--data-dir=/tmp").contains("--data-dir is set by the harness"));
        let twice = parse_all(&["a=".into(), "a=--set x=y".into()]).unwrap_err().to_string();
        assert!(twice.contains("given twice"), "{twice}");
        let many: Vec<String> = (0..=MAX_VARIANTS).map(|i| format!("v{i}=")).collect();
        assert!(parse_all(&many).unwrap_err().to_string().contains("at most 4"));
    }
}
