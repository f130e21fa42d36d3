//! The process's open-file budget, and the partitions a broker can host.
//!
//! Open files: at start (`main`) the soft limit is raised to the hard one,
//! as servers commonly do, and half of it is given to the log's segment
//! files (`log.open.files.max`; the log opens them on demand through a
//! bounded cache, see `log::file_cache`), the other half left for client and
//! internal connections, index writes, checkpoints and the controller. So
//! the number of partitions no longer bounds the files a broker keeps open.
//!
//! Partitions: what bounds them now is memory — each hosted replica costs
//! resident memory while idle (its log's segments and index entries, replica
//! and metadata state). The broker registers how many partition replicas it
//! can host (`max.broker.partitions`, derived from the memory it may use
//! unless set) and the controller refuses placements past it.

use crate::config::Settings;

/// Resident memory one idle hosted partition replica costs, rounded up from
/// the figure measured by `broker/tests/many_partitions.rs` (20,000
/// partitions on one broker; see docs/CONFIGURATION.md).
pub const BYTES_PER_PARTITION: u64 = 32 * 1024;

/// Share of the memory the derived limit lets idle partitions take: a
/// quarter, leaving the rest for the page cache, requests in flight, fetch
/// buffers and the metadata image.
pub const MEMORY_SHARE_DIVISOR: u64 = 4;

/// The derived limit never goes below this: the broker's own internal
/// topics (`__consumer_offsets`, 50 partitions) must always fit.
pub const MIN_DERIVED_PARTITIONS: u32 = 100;

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

/// Partition replicas a broker can host with `memory_bytes` of memory: a
/// quarter of it at [`BYTES_PER_PARTITION`] each, at least
/// [`MIN_DERIVED_PARTITIONS`].
pub fn partition_budget(memory_bytes: u64) -> u32 {
    let share = memory_bytes / MEMORY_SHARE_DIVISOR;
    (share / BYTES_PER_PARTITION).clamp(u64::from(MIN_DERIVED_PARTITIONS), u64::from(u32::MAX)) as u32
}

/// The memory this process may use: the machine's (`MemTotal` in
/// /proc/meminfo) or its cgroup's limit (v2 `memory.max`, v1
/// `memory.limit_in_bytes`), whichever is smaller; `None` when neither can be read.
pub fn memory_limit() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| mem_total(&text));
    let cgroup = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|text| text.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// `max.broker.partitions` when set (above 0), otherwise what this broker's
/// memory allows (see [`partition_budget`]).
pub fn max_broker_partitions(settings: &Settings) -> u32 {
    let set = settings.long("max.broker.partitions");
    if set > 0 {
        return u32::try_from(set).unwrap_or(u32::MAX);
    }
    let Some(memory) = memory_limit() else {
        tracing::warn!(
            "cannot read this machine's memory (/proc/meminfo, cgroup); this broker will host at most \
             {MIN_DERIVED_PARTITIONS} partition replicas (set max.broker.partitions)"
        );
        return MIN_DERIVED_PARTITIONS;
    };
    let budget = partition_budget(memory);
    tracing::info!(memory, max_broker_partitions = budget, "partition replicas this broker can host");
    budget
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_limit_is_a_share_of_memory_and_never_drops_below_the_internal_topics() {
        const GIB: u64 = 1 << 30;
        assert_eq!(partition_budget(24 * GIB), (6 * GIB / BYTES_PER_PARTITION) as u32);
        assert_eq!(partition_budget(GIB), (GIB / 4 / BYTES_PER_PARTITION) as u32);
        assert_eq!(partition_budget(8 << 20), MIN_DERIVED_PARTITIONS, "a tiny machine still hosts the internal topics");
        assert_eq!(partition_budget(u64::MAX), u32::MAX);
    }

    #[test]
    fn mem_total_is_read_in_bytes() {
        assert_eq!(mem_total("MemTotal:       24683664 kB\nMemFree: 1 kB\n"), Some(24_683_664 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn the_log_gets_half_the_open_file_limit_unless_set() {
        let mut settings = Settings::broker_defaults();
        assert_eq!(log_file_budget(&settings, 4096), 2048);
        settings.set("log.open.files.max", "500").unwrap();
        assert_eq!(log_file_budget(&settings, 4096), 500);
    }
}
