//! One loopback `/16` per StatefulSet, for a runner that plays the kubelet of
//! any number of clusters (`--subnet-pool 127.A-127.B`).
//!
//! A pod's address depends on its StatefulSet's subnet and its ordinal
//! ([`crate::address`]); with a pool, each StatefulSet the runner meets gets
//! the lowest subnet of the pool no other set holds and no other process
//! listens in (another runner, a test's brokers), and keeps it for the
//! runner's directory's life: the assignments are written to `DIR/subnets`
//! (one `127.X SET` line each) so that a restarted runner gives every set the
//! same addresses again. Subnets are not reused within a directory, so a
//! pool of `B - A + 1` subnets serves that many StatefulSets.
//!
//! Pure: parsing, choosing and the file's text; the runner does the I/O.

use std::collections::BTreeMap;

use crate::address::Subnet;

/// A bad `--subnet-pool` or an exhausted pool.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// The flag's value is not `127.A-127.B` with A <= B.
    #[error("--subnet-pool '{0}' must be '127.A-127.B' with 0 <= A <= B <= 255 (for example 127.100-127.199)")]
    BadPool(String),
    /// Every subnet of the pool is taken (by a set, or by another process).
    #[error("no free subnet for StatefulSet {set}: all {size} subnets of --subnet-pool {pool} are taken or in use")]
    Exhausted { set: String, size: usize, pool: String },
}

/// The pool and who holds what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetPool {
    first: u8,
    last: u8,
    /// StatefulSet (`namespace/name`) → its subnet.
    assigned: BTreeMap<String, Subnet>,
}

impl std::str::FromStr for SubnetPool {
    type Err = PoolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PoolError::BadPool(s.to_string());
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let a: Subnet = a.parse().map_err(|_| bad())?;
        let b: Subnet = b.parse().map_err(|_| bad())?;
        if a.second_octet() > b.second_octet() {
            return Err(bad());
        }
        Ok(SubnetPool { first: a.second_octet(), last: b.second_octet(), assigned: BTreeMap::new() })
    }
}

impl std::fmt::Display for SubnetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "127.{}-127.{}", self.first, self.last)
    }
}

impl SubnetPool {
    /// How many StatefulSets the pool serves.
    pub fn size(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    /// The subnet of StatefulSet `set` (`namespace/name`), assigning on
    /// first sight the lowest one that no set holds and that `in_use` (some
    /// other process listens there) does not reject; `true` when it is new
    /// (to be saved).
    pub fn subnet_for(&mut self, set: &str, in_use: impl Fn(Subnet) -> bool) -> Result<(Subnet, bool), PoolError> {
        if let Some(subnet) = self.assigned.get(set) {
            return Ok((*subnet, false));
        }
        let taken: Vec<u8> = self.assigned.values().map(|s| s.second_octet()).collect();
        let free = (self.first..=self.last)
            .filter(|o| !taken.contains(o))
            .find(|o| !in_use(Subnet::new(*o)))
            .ok_or_else(|| PoolError::Exhausted { set: set.to_string(), size: self.size(), pool: self.to_string() })?;
        let subnet = Subnet::new(free);
        self.assigned.insert(set.to_string(), subnet);
        Ok((subnet, true))
    }

    /// The assignments as `DIR/subnets` holds them.
    pub fn to_text(&self) -> String {
        self.assigned.iter().map(|(set, subnet)| format!("{subnet} {set}\n")).collect()
    }

    /// Takes back the assignments of an earlier runner (`DIR/subnets`);
    /// lines that do not parse or lie outside the pool are skipped, and
    /// returned so that the caller can report them.
    pub fn restore(&mut self, text: &str) -> Vec<String> {
        let mut skipped = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let parsed = line
                .split_once(' ')
                .and_then(|(subnet, set)| Some((subnet.parse::<Subnet>().ok()?, set.trim())))
                .filter(|(subnet, set)| {
                    (self.first..=self.last).contains(&subnet.second_octet())
                        && !set.is_empty()
                        && !self.assigned.values().any(|s| s == subnet)
                });
            match parsed {
                Some((subnet, set)) => {
                    self.assigned.insert(set.to_string(), subnet);
                }
                None => skipped.push(line.to_string()),
            }
        }
        skipped
    }
}

/// The StatefulSet (`namespace/name`) of pod `<name>-<ordinal>`.
pub fn set_of(namespace: &str, pod_name: &str) -> Option<String> {
    let (set, _) = pod_name.rsplit_once('-')?;
    (!set.is_empty()).then(|| format!("{namespace}/{set}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_parse_and_name_their_mistakes() {
        let pool: SubnetPool = "127.100-127.102".parse().unwrap();
        assert_eq!((pool.size(), pool.to_string()), (3, "127.100-127.102".to_string()));
        assert_eq!("127.7-127.7".parse::<SubnetPool>().unwrap().size(), 1);
        for bad in ["", "127.100", "127.102-127.100", "10.1-10.2", "127.1-127.256", "127.a-127.2"] {
            let e = bad.parse::<SubnetPool>().unwrap_err();
            assert_eq!(e, PoolError::BadPool(bad.to_string()));
            assert!(e.to_string().contains("127.A-127.B"), "{e}");
        }
    }

    #[test]
    fn each_set_gets_its_own_subnet_and_keeps_it() {
        let free = |_| false;
        let mut pool: SubnetPool = "127.100-127.102".parse().unwrap();
        assert_eq!(pool.subnet_for("ns/a", free).unwrap(), (Subnet::new(100), true));
        // 127.101 is used by another process: skipped.
        let busy = |s: Subnet| s.second_octet() == 101;
        assert_eq!(pool.subnet_for("ns/b", busy).unwrap(), (Subnet::new(102), true));
        assert_eq!(pool.subnet_for("ns/a", busy).unwrap(), (Subnet::new(100), false));
        let e = pool.subnet_for("other/a", busy).unwrap_err();
        assert!(e.to_string().contains("other/a") && e.to_string().contains("all 3 subnets"), "{e}");
    }

    #[test]
    fn a_restarted_runner_gives_the_same_subnets() {
        let mut pool: SubnetPool = "127.100-127.110".parse().unwrap();
        pool.subnet_for("ns/a", |_| false).unwrap();
        pool.subnet_for("ns/b", |_| false).unwrap();
        let text = pool.to_text();
        let mut again: SubnetPool = "127.100-127.110".parse().unwrap();
        let skipped = again.restore(&format!("{text}garbage\n127.5 ns/outside\n127.100 ns/duplicate\n"));
        assert_eq!(skipped, vec!["garbage", "127.5 ns/outside", "127.100 ns/duplicate"]);
        assert_eq!(again.subnet_for("ns/b", |_| true).unwrap(), (Subnet::new(101), false));
        assert_eq!(again.subnet_for("ns/c", |_| false).unwrap(), (Subnet::new(102), true));
    }

    #[test]
    fn pods_name_their_set() {
        assert_eq!(set_of("ns", "demo-0").as_deref(), Some("ns/demo"));
        assert_eq!(set_of("ns", "my-demo-12").as_deref(), Some("ns/my-demo"));
        assert_eq!(set_of("ns", "loner"), None);
        assert_eq!(set_of("ns", "-1"), None);
    }
}
