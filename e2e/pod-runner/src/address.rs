//! Deterministic pod addresses and the rewriting of pod DNS names into them.
//!
//! There is no cluster DNS or pod network here: every pod of the runner's
//! StatefulSet gets a loopback address computed from its ordinal alone,
//! `127.X.<ordinal / 200>.<ordinal % 200 + 10>` inside the runner's `/16`
//! subnet `127.X`, so that a test can compute a broker's address without
//! asking anyone, and a pod recreated under the same name gets the same one.
//! Each broker binds its own address with the standard ports.
//!
//! Invariant: the address depends on the ordinal only, so one runner (one
//! subnet) serves one StatefulSet. Pure functions; nothing here does I/O.

use std::net::Ipv4Addr;

/// Ordinals per third octet: `.10` to `.209` in each `/24`.
const PER_OCTET: u32 = 200;
/// The fourth octet of ordinal 0 (skips `.0`, `.1` and a few more).
const FIRST_HOST: u32 = 10;

/// An invalid `--subnet` value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("subnet '{0}' must be '127.X' with X in 0..=255 (for example 127.42)")]
pub struct SubnetError(String);

/// The runner's `/16` of loopback addresses, `127.X`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    second_octet: u8,
}

impl std::str::FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.trim().strip_prefix("127.").ok_or_else(|| SubnetError(s.to_string()))?;
        let rest = rest.strip_suffix(".0.0/16").unwrap_or(rest);
        let second_octet = rest.parse::<u8>().map_err(|_| SubnetError(s.to_string()))?;
        Ok(Subnet { second_octet })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "127.{}", self.second_octet)
    }
}

impl Subnet {
    /// The subnet `127.<second_octet>`.
    pub const fn new(second_octet: u8) -> Subnet {
        Subnet { second_octet }
    }

    /// X of `127.X`.
    pub const fn second_octet(&self) -> u8 {
        self.second_octet
    }

    /// Highest ordinal that still has an address (256 `/24`s of 200).
    pub const MAX_ORDINAL: u32 = 256 * PER_OCTET - 1;

    /// The address of the pod with `ordinal`, or `None` past [`Self::MAX_ORDINAL`].
    pub fn pod_ip(&self, ordinal: u32) -> Option<Ipv4Addr> {
        let third = u8::try_from(ordinal / PER_OCTET).ok()?;
        // ordinal % 200 + 10 <= 209: always fits.
        let fourth = u8::try_from(ordinal % PER_OCTET + FIRST_HOST).ok()?;
        Some(Ipv4Addr::new(127, self.second_octet, third, fourth))
    }
}

/// The ordinal of a StatefulSet pod name, `<set>-<ordinal>`.
pub fn ordinal_of(pod_name: &str) -> Option<u32> {
    let (set, ordinal) = pod_name.rsplit_once('-')?;
    if set.is_empty() || ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ordinal.parse().ok()
}

/// The address a pod's stable DNS name stands for: `host` must be
/// `<set>-<ordinal>.<service>.<namespace>.svc` (optionally followed by
/// `.cluster.local` or another cluster domain).
pub fn resolve_pod_host(subnet: Subnet, host: &str) -> Option<Ipv4Addr> {
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    if labels.len() < 4 || labels[3] != "svc" || labels[1].is_empty() || labels[2].is_empty() {
        return None;
    }
    subnet.pod_ip(ordinal_of(labels[0])?)
}

/// Rewrites `host:port` when `host` is a pod DNS name (see [`resolve_pod_host`]).
pub fn rewrite_address(subnet: Subnet, address: &str) -> String {
    match address.rsplit_once(':') {
        Some((host, port)) => match resolve_pod_host(subnet, host) {
            Some(ip) => format!("{ip}:{port}"),
            None => address.to_string(),
        },
        None => address.to_string(),
    }
}

/// Rewrites every pod DNS name in a voter list, `ID@HOST:PORT,...`, into
/// its pod's address; entries in any other shape are kept as they are.
pub fn rewrite_voters(subnet: Subnet, voters: &str) -> String {
    voters
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|voter| match voter.split_once('@') {
            Some((id, address)) => format!("{id}@{}", rewrite_address(subnet, address)),
            None => voter.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet() -> Subnet {
        "127.42".parse().unwrap()
    }

    #[test]
    fn subnet_parses_short_and_cidr_forms_and_rejects_others() {
        assert_eq!(subnet().to_string(), "127.42");
        assert_eq!("127.42.0.0/16".parse::<Subnet>(), Ok(subnet()));
        for bad in ["10.1", "127.256", "127.", "127.x", "128.1"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pod_ip_is_ordinal_divided_into_blocks_of_two_hundred() {
        let s = subnet();
        assert_eq!(s.pod_ip(0), Some(Ipv4Addr::new(127, 42, 0, 10)));
        assert_eq!(s.pod_ip(2), Some(Ipv4Addr::new(127, 42, 0, 12)));
        assert_eq!(s.pod_ip(199), Some(Ipv4Addr::new(127, 42, 0, 209)));
        assert_eq!(s.pod_ip(200), Some(Ipv4Addr::new(127, 42, 1, 10)));
        assert_eq!(s.pod_ip(Subnet::MAX_ORDINAL), Some(Ipv4Addr::new(127, 42, 255, 209)));
        assert_eq!(s.pod_ip(Subnet::MAX_ORDINAL + 1), None);
    }

    #[test]
    fn ordinal_is_the_numeric_suffix_of_the_pod_name() {
        assert_eq!(ordinal_of("kafka-0"), Some(0));
        assert_eq!(ordinal_of("my-kafka-12"), Some(12));
        assert_eq!(ordinal_of("kafka"), None);
        assert_eq!(ordinal_of("kafka-"), None);
        assert_eq!(ordinal_of("-3"), None);
        assert_eq!(ordinal_of("kafka-1a"), None);
        assert_eq!(ordinal_of("kafka-99999999999999999999"), None);
    }

    #[test]
    fn pod_dns_names_resolve_and_other_hosts_do_not() {
        let s = subnet();
        assert_eq!(resolve_pod_host(s, "demo-1.demo-brokers.ns.svc"), Some(Ipv4Addr::new(127, 42, 0, 11)));
        assert_eq!(
            resolve_pod_host(s, "demo-201.demo-brokers.ns.svc.cluster.local."),
            Some(Ipv4Addr::new(127, 42, 1, 11))
        );
        assert_eq!(resolve_pod_host(s, "demo-bootstrap.ns.svc"), None);
        assert_eq!(resolve_pod_host(s, "localhost"), None);
        assert_eq!(resolve_pod_host(s, "127.0.0.1"), None);
        assert_eq!(resolve_pod_host(s, "demo-1.demo-brokers.ns.example"), None);
    }

    #[test]
    fn voters_with_pod_dns_names_are_rewritten_to_pod_ips() {
        let voters =
            "0@demo-0.demo-brokers.ns.svc:9093,1@demo-1.demo-brokers.ns.svc:9093, 2@demo-2.demo-brokers.ns.svc:9093";
        assert_eq!(rewrite_voters(subnet(), voters), "0@127.42.0.10:9093,1@127.42.0.11:9093,2@127.42.0.12:9093");
        assert_eq!(rewrite_voters(subnet(), "0@10.1.2.3:9093,junk"), "0@10.1.2.3:9093,junk");
        assert_eq!(rewrite_address(subnet(), "demo-0.demo-brokers.ns.svc:9092"), "127.42.0.10:9092");
        assert_eq!(rewrite_address(subnet(), "no-port"), "no-port");
    }
}
