//! Scraping a broker's `/metrics` and `/readyz`, and reading the scrape.
//!
//! [`Scrape::parse`] is strict: every line must be a `# HELP`, a `# TYPE` or
//! a sample the `prometheus-parse` crate understands, with a numeric value,
//! well-formed labels, a family declared by a `# TYPE` line before it, and no
//! series twice. The parsed samples come from the crate as well.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use prometheus_parse::{LineInfo, SampleType, Value};

/// Status code and body of `GET path` at `addr`, or `None` when the broker
/// does not answer (not listening yet, connection closed early).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    // axum answers small bodies with Content-Length; a chunked body is de-chunked here.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// One parsed `/metrics` answer.
#[derive(Debug)]
pub struct Scrape {
    /// The text as served.
    pub text: String,
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    /// Scrapes `/metrics` at `addr` and parses it; panics when the broker
    /// does not answer 200 or the text is not valid exposition format.
    pub fn fetch(addr: SocketAddr) -> Scrape {
        let (status, body) = http_get(addr, "/metrics").unwrap_or_else(|| panic!("GET /metrics at {addr} failed"));
        assert_eq!(status, 200, "GET /metrics at {addr}: {body}");
        Scrape::parse(&body).unwrap_or_else(|e| panic!("/metrics at {addr} is not valid Prometheus text: {e}\n{body}"))
    }

    /// Parses exposition text strictly (see the module doc).
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut families: HashMap<String, SampleType> = HashMap::new();
        let mut series = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let at = |what: &str| format!("line {}: {what}: `{line}`", n + 1);
            match LineInfo::parse(line) {
                LineInfo::Empty | LineInfo::Doc { .. } => {}
                LineInfo::Type { metric_name, metric_alias, sample_type } => {
                    let family = metric_alias.unwrap_or(metric_name);
                    if families.insert(family, sample_type).is_some() {
                        return Err(at("family typed twice"));
                    }
                }
                LineInfo::Sample { metric_name, labels, value, timestamp } => {
                    if timestamp.is_some() {
                        return Err(at("unexpected timestamp"));
                    }
                    if value.parse::<f64>().is_err() && !["+Inf", "-Inf", "NaN"].contains(&value) {
                        return Err(at("value is not a number"));
                    }
                    let labels = parse_labels(labels.unwrap_or("")).map_err(|e| at(&e))?;
                    if !declared(&families, metric_name) {
                        return Err(at("sample of a family without a # TYPE line before it"));
                    }
                    if !series.insert((metric_name.to_string(), labels)) {
                        return Err(at("series appears twice"));
                    }
                }
                LineInfo::Ignored
                    if line.starts_with('#') && !line.starts_with("# HELP") && !line.starts_with("# TYPE") => {}
                LineInfo::Ignored => return Err(at("not a HELP, TYPE or sample line")),
            }
        }
        let samples = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .map_err(|e| format!("prometheus-parse: {e}"))?
            .samples;
        Ok(Scrape { text: text.to_string(), samples })
    }

    /// Whether a sample line of `name` (a family or a histogram's
    /// `_bucket`, `_sum`, `_count`) is in the scrape.
    pub fn has_series_named(&self, name: &str) -> bool {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .any(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
    }

    /// The value of the counter or gauge `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
        self.samples.iter().find_map(|s| {
            let have: BTreeMap<&str, &str> = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if s.metric != name || have != wanted {
                return None;
            }
            match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            }
        })
    }

    /// As [`Scrape::value`], 0 when the series is absent (a counter not yet moved).
    pub fn value_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// The sum of every series of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
            .sum()
    }
}

fn declared(families: &HashMap<String, SampleType>, name: &str) -> bool {
    if families.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|family| matches!(families.get(family), Some(SampleType::Histogram | SampleType::Summary)))
    })
}

/// Parses the inside of `{...}`: `name="value"` pairs separated by commas,
/// values with `\\`, `\"` and `\n` escapes.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(format!("bad label name `{name}`"));
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            return Err(format!("label `{name}` is not followed by =\""));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => return Err(format!("bad escape {other:?} in label `{name}`")),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err(format!("unterminated value of label `{name}`")),
            }
        }
        if labels.insert(name.clone(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        match chars.next() {
            None => {}
            Some(',') => {}
            Some(c) => return Err(format!("`{c}` after label `{name}`")),
        }
    }
    Ok(labels)
}

/// Metric names (identifiers starting with `strom_`) in the PromQL `expr`
/// and query fields of a Grafana dashboard.
pub fn dashboard_metric_names(dashboard: &serde_json::Value) -> BTreeSet<String> {
    fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "query" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    exprs(dashboard, &mut found);
    let mut names = BTreeSet::new();
    for expr in found {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("strom_") {
            let tail = &rest[at..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}
