//! Per-broker advertised addresses of named listeners, from a file:
//! `--advertised-overrides NAME[,NAME...]=FILE`.
//!
//! Every broker of a fleet may share one config file (the operator's
//! ConfigMap) while each needs its own external address, known only after
//! it started (a node's address, a LoadBalancer's ingress). The listeners
//! named in the flag take their advertised address from `FILE`, a
//! properties file holding at most the one key `advertised.listeners`
//! (`NAME://HOST:PORT,...`, names among the flag's). A named listener the
//! file gives no address (or a missing file) is not advertised at all:
//! clients of that listener do not see this broker rather than see it at a
//! wrong address. The broker re-reads the file while it runs
//! (`crate::advertised`).
//!
//! Pure: text in, addresses or an [`OverridesError`] naming the file, the
//! line, the key, the value and what is allowed out; reading is bounded by
//! [`MAX_FILE_BYTES`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::HostPort;
use super::listeners::Listener;

/// The largest overrides file read.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The one key an overrides file may hold.
pub const KEY: &str = "advertised.listeners";

/// `--advertised-overrides`: which listeners take their address from which file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedOverrides {
    /// The listeners' names, upper case as in `listeners`.
    pub listeners: Vec<String>,
    /// The file of their addresses.
    pub file: PathBuf,
}

/// An overrides file that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverridesError {
    /// The file could not be read (other than not existing).
    #[error("cannot read advertised overrides file {file}: {reason}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A line of the file was refused.
    #[error("advertised overrides file {file}, line {line}: invalid {key} `{value}`: {expected}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The key on that line.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
}

/// Parses the flag's value `NAME[,NAME...]=FILE` against this broker's
/// listeners; the error is what is expected. The first listener (the
/// broker's default endpoint) cannot be named.
pub fn parse_flag(value: &str, listeners: &[Listener]) -> Result<AdvertisedOverrides, String> {
    let named: Vec<&str> = listeners.iter().skip(1).map(|l| l.name.as_str()).collect();
    let form = || {
        format!(
            "NAME[,NAME...]=FILE naming listeners of this broker other than the first ({}), e.g. EXTERNAL=/etc/strom-advertised/broker-0.properties",
            if named.is_empty() { "it has no other".to_string() } else { named.join(", ") }
        )
    };
    let (names, file) = value.split_once('=').ok_or_else(form)?;
    let file = file.trim();
    if file.is_empty() {
        return Err(form());
    }
    let mut out = Vec::new();
    for name in names.split(',').map(|n| n.trim().to_ascii_uppercase()) {
        if !named.contains(&name.as_str()) || out.contains(&name) {
            return Err(form());
        }
        out.push(name);
    }
    Ok(AdvertisedOverrides { listeners: out, file: PathBuf::from(file) })
}

/// Parses the text of `file`: the addresses it gives the listeners in `overridable`.
pub fn parse_file(
    file: &Path,
    text: &str,
    overridable: &[String],
) -> Result<BTreeMap<String, HostPort>, OverridesError> {
    let mut out = BTreeMap::new();
    let mut seen = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let invalid = |key: &str, value: &str, expected: String| OverridesError::Invalid {
            file: file.to_path_buf(),
            line: i + 1,
            key: key.to_string(),
            value: value.to_string(),
            expected,
        };
        let Some((key, value)) = line.split_once('=') else {
            return Err(invalid(line, "", format!("a line `{KEY}=NAME://HOST:PORT,...`")));
        };
        let (key, value) = (key.trim(), value.trim());
        if key != KEY {
            return Err(invalid(key, value, format!("the only key allowed is {KEY}")));
        }
        if seen {
            return Err(invalid(key, value, format!("{KEY} appears once")));
        }
        seen = true;
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let allowed = overridable.join(", ");
            let bad = || {
                invalid(
                    key,
                    value,
                    format!("NAME://HOST:PORT,... with NAME one of {allowed}, each once, a host and a port 1-65535"),
                )
            };
            let (name, rest) = item.split_once("://").ok_or_else(bad)?;
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = name.trim().to_ascii_uppercase();
            let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?;
            let host_ok = !host.is_empty() && host.len() <= 253 && !host.chars().any(|c| c.is_whitespace() || c == '/');
            if !overridable.contains(&name) || !host_ok || out.contains_key(&name) {
                return Err(bad());
            }
            out.insert(name, HostPort { host: host.to_string(), port });
        }
    }
    Ok(out)
}

/// Reads and parses the overrides file; a missing file gives no address.
pub fn read(overrides: &AdvertisedOverrides) -> Result<BTreeMap<String, HostPort>, OverridesError> {
    let file = &overrides.file;
    let read_err = |reason: String| OverridesError::Read { file: file.clone(), reason };
    let handle = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(read_err(e.to_string())),
    };
    let mut bytes = Vec::new();
    handle.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| read_err(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(read_err(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| read_err("not UTF-8 text".to_string()))?;
    parse_file(file, &text, &overrides.listeners)
}

/// Every listener's advertised endpoint as this broker registers it: its
/// configured address, except that a listener named in `overrides` has the
/// address `addresses` gives it, or is left out.
pub fn registered_listeners(
    listeners: &[Listener],
    overrides: Option<&AdvertisedOverrides>,
    addresses: &BTreeMap<String, HostPort>,
) -> BTreeMap<String, String> {
    listeners
        .iter()
        .filter_map(|l| match overrides {
            Some(o) if o.listeners.contains(&l.name) => addresses.get(&l.name).map(|a| (l.name.clone(), a.to_string())),
            _ => Some((l.name.clone(), l.advertised.to_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners() -> Vec<Listener> {
        let raw: BTreeMap<String, String> = [
            ("listeners", "PLAINTEXT://0.0.0.0:9092,EXTERNAL://0.0.0.0:9098,OTHER://0.0.0.0:9099"),
            ("advertised.listeners", "PLAINTEXT://pod-0.svc:9092"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT,OTHER:PLAINTEXT"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let advertise = HostPort { host: "pod-0.svc".into(), port: 9092 };
        super::super::listeners::resolve(&raw, "0.0.0.0:9092".parse().unwrap(), &advertise).unwrap()
    }

    #[test]
    fn the_flag_names_listeners_other_than_the_first_and_a_file() {
        let l = listeners();
        let o = parse_flag("external,Other=/etc/a/broker-1.properties", &l).unwrap();
        assert_eq!(o.listeners, ["EXTERNAL", "OTHER"]);
        assert_eq!(o.file, PathBuf::from("/etc/a/broker-1.properties"));
        for bad in ["EXTERNAL", "EXTERNAL=", "PLAINTEXT=/f", "NOPE=/f", "EXTERNAL,EXTERNAL=/f"] {
            let e = parse_flag(bad, &l).unwrap_err();
            assert!(e.contains("EXTERNAL, OTHER"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_file_gives_named_listeners_their_addresses() {
        let names = vec!["EXTERNAL".to_string(), "OTHER".to_string()];
        let f = Path::new("/f");
        let text = "# written by the operator\n\nadvertised.listeners = EXTERNAL://203.0.113.7:31001, other://[2001:db8::1]:9\n";
        let got = parse_file(f, text, &names).unwrap();
        assert_eq!(got["EXTERNAL"], HostPort { host: "203.0.113.7".into(), port: 31001 });
        assert_eq!(got["OTHER"], HostPort { host: "2001:db8::1".into(), port: 9 });
        assert!(parse_file(f, "advertised.listeners=\n", &names).unwrap().is_empty(), "empty: none known yet");
        assert!(parse_file(f, "", &names).unwrap().is_empty());
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_file_line_key_and_value() {
        let names = vec!["EXTERNAL".to_string()];
        let f = Path::new("/etc/a/broker-2.properties");
        let cases = [
            ("listeners=EXTERNAL://h:1", "listeners", "the only key allowed"),
            ("advertised.listeners=PLAINTEXT://h:1", "PLAINTEXT://h:1", "one of EXTERNAL"),
            ("advertised.listeners=EXTERNAL://:1", "EXTERNAL://:1", "a host"),
            ("advertised.listeners=EXTERNAL://h:0", "EXTERNAL://h:0", "port 1-65535"),
            ("advertised.listeners=EXTERNAL://h:99999", "EXTERNAL://h:99999", "port"),
            ("advertised.listeners=EXTERNAL://h:1,EXTERNAL://g:2", "EXTERNAL://g:2", "each once"),
            ("advertised.listeners=EXTERNAL://a b:1", "a b", "a host"),
            ("just words", "just words", "a line"),
        ];
        for (text, value, expected) in cases {
            let e = parse_file(f, &format!("# c\n{text}"), &names).unwrap_err().to_string();
            assert!(e.contains("/etc/a/broker-2.properties, line 2"), "{text}: {e}");
            assert!(e.contains(value) && e.contains(expected), "{text}: {e}");
        }
        let twice = "advertised.listeners=EXTERNAL://h:1\nadvertised.listeners=EXTERNAL://h:2";
        assert!(parse_file(f, twice, &names).unwrap_err().to_string().contains("appears once"));
    }

    #[test]
    fn reading_a_missing_file_gives_no_address_and_a_huge_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let o =
            AdvertisedOverrides { listeners: vec!["EXTERNAL".into()], file: dir.path().join("broker-0.properties") };
        assert!(read(&o).unwrap().is_empty());
        std::fs::write(&o.file, format!("#{}", "x".repeat(MAX_FILE_BYTES as usize))).unwrap();
        assert!(read(&o).unwrap_err().to_string().contains("larger than"));
        std::fs::write(&o.file, "advertised.listeners=EXTERNAL://ext:31001").unwrap();
        assert_eq!(read(&o).unwrap()["EXTERNAL"].to_string(), "ext:31001");
    }

    #[test]
    fn a_named_listener_without_an_address_is_not_registered() {
        let l = listeners();
        let o = parse_flag("EXTERNAL=/f", &l).unwrap();
        let none = registered_listeners(&l, Some(&o), &BTreeMap::new());
        assert_eq!(none.keys().collect::<Vec<_>>(), ["OTHER", "PLAINTEXT"]);
        assert_eq!(none["PLAINTEXT"], "pod-0.svc:9092");
        let known: BTreeMap<String, HostPort> =
            [("EXTERNAL".to_string(), HostPort { host: "ext".into(), port: 31001 })].into();
        assert_eq!(registered_listeners(&l, Some(&o), &known)["EXTERNAL"], "ext:31001");
        assert_eq!(registered_listeners(&l, None, &known)["EXTERNAL"], "pod-0.svc:9098", "no flag: as configured");
    }
}
