//! The process's open-file budget, and the partitions it lets a broker host.
//!
//! A partition keeps about three files open (its active segment's `.log`,
//! `.index` and `.timeindex`), and every client connection takes one. A
//! broker asked to host more partitions than its open-file limit allows
//! fails to write them and then to start at all, so the broker registers how
//! many partition replicas it can host (`max.broker.partitions`, derived
//! from the limit unless set) and the controller refuses placements past it.
//!
//! At start the soft limit is raised to the hard one, as servers commonly do.

use crate::config::Settings;

/// Files a partition keeps open.
pub const FILES_PER_PARTITION: u64 = 3;

/// Files kept aside for everything else: the controller's log, the internal
/// plane's connections, segments being rolled, cleaned or read.
pub const RESERVED_FILES: u64 = 1024;

/// Raises the soft open-file limit to the hard one; returns the soft limit in
/// force afterwards (`None` when the platform does not say).
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(hard)) = (limit.current, limit.maximum)
        && current < hard
    {
        let raised = rustix::process::Rlimit { current: Some(hard), maximum: Some(hard) };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return Some(hard);
        }
    }
    // `None` for current means unlimited.
    Some(limit.current.unwrap_or(u64::MAX))
}

/// Partition replicas a broker can host with `open_files` open files when
/// `max_connections` clients may be connected: at least 1.
pub fn partition_budget(open_files: u64, max_connections: u64) -> u32 {
    let left = open_files.saturating_sub(RESERVED_FILES).saturating_sub(max_connections);
    (left / FILES_PER_PARTITION).clamp(1, u64::from(u32::MAX)) as u32
}

/// `max.broker.partitions` when set (above 0), otherwise what this process's
/// open-file limit allows beside `max.connections` clients.
pub fn max_broker_partitions(settings: &Settings) -> u32 {
    let set = settings.long("max.broker.partitions");
    if set > 0 {
        return u32::try_from(set).unwrap_or(u32::MAX);
    }
    let open_files = raise_open_file_limit().unwrap_or(1024);
    partition_budget(open_files, settings.long("max.connections").max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_room_for_connections_and_the_reserve() {
        assert_eq!(partition_budget(20_000, 10_000), (20_000 - 1024 - 10_000) / 3);
        assert_eq!(partition_budget(1_048_576, 10_000), ((1_048_576 - 1024 - 10_000) / 3) as u32);
        assert_eq!(partition_budget(1024, 10_000), 1, "a tiny limit still hosts one partition");
        assert_eq!(partition_budget(u64::MAX, 0), u32::MAX);
    }
}
