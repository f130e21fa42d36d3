//! The process's open-file budget, and the partitions it lets a broker host.
//!
//! A partition keeps about three files open (its active segment's `.log`,
//! `.index` and `.timeindex`), and every client connection takes one. A
//! broker asked to host more partitions than its open-file limit allows
//! fails to write them and then to start at all, so the broker registers how
//! many partition replicas it can host (`max.broker.partitions`, derived
//! from the limit unless set) and the controller refuses placements past it.
//!
//! At start (`main`) the soft limit is raised to the hard one, as servers
//! commonly do.

use crate::config::Settings;

/// Files a partition keeps open, plus a share for the connections and
/// segment reads that come with it.
pub const FILES_PER_PARTITION: u64 = 4;

/// The derived limit never goes below this: the broker's own internal
/// topics (`__consumer_offsets`, 50 partitions) must always fit.
pub const MIN_DERIVED_PARTITIONS: u32 = 100;

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

/// The soft open-file limit in force (`u64::MAX` when unlimited).
pub fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Segment files the log may keep open (`log.open.files.max`): as set
/// (above 0), otherwise half of `open_files`, so the other half is left for
/// client and internal connections, index writes, checkpoints and the
/// controller's log.
pub fn log_file_budget(settings: &Settings, open_files: u64) -> usize {
    let set = settings.long("log.open.files.max");
    if set > 0 {
        return usize::try_from(set).unwrap_or(usize::MAX);
    }
    usize::try_from(open_files / 2).unwrap_or(usize::MAX)
}

/// Partition replicas a broker can host with `open_files` open files: at
/// least [`MIN_DERIVED_PARTITIONS`].
pub fn partition_budget(open_files: u64) -> u32 {
    let left = open_files.saturating_sub(RESERVED_FILES);
    (left / FILES_PER_PARTITION).clamp(u64::from(MIN_DERIVED_PARTITIONS), u64::from(u32::MAX)) as u32
}

/// `max.broker.partitions` when set (above 0), otherwise what this process's
/// open-file limit allows (read, not raised: `main` raised it at start).
pub fn max_broker_partitions(settings: &Settings) -> u32 {
    let set = settings.long("max.broker.partitions");
    if set > 0 {
        return u32::try_from(set).unwrap_or(u32::MAX);
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let budget = partition_budget(limit.current.unwrap_or(u64::MAX));
    if budget == MIN_DERIVED_PARTITIONS {
        tracing::warn!(
            open_files = ?limit.current,
            "the open-file limit is low; this broker will host at most {MIN_DERIVED_PARTITIONS} partition replicas \
             (raise `ulimit -n` or set max.broker.partitions)"
        );
    }
    budget
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_reserve_and_never_drops_below_the_internal_topics() {
        assert_eq!(partition_budget(20_000), (20_000 - 1024) / 4);
        assert_eq!(partition_budget(1_048_576), ((1_048_576 - 1024) / 4) as u32);
        assert_eq!(partition_budget(1024), MIN_DERIVED_PARTITIONS, "a tiny limit still hosts the internal topics");
        assert_eq!(partition_budget(u64::MAX), u32::MAX);
    }
}
