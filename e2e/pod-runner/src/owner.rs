//! The owner watchdog: a runner started by a test exits when the test does.
//!
//! With `STROM_POD_RUNNER_OWNER=<pid>`, the runner checks every second that
//! the process is still there, comparing its start time (field 22 of
//! `/proc/<pid>/stat`) too, so a reused pid does not keep it alive. Tests get
//! SIGKILLed; this is how their brokers still go away.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The start time of process `pid`, in clock ticks since boot.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); field 22 is the 20th from there.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Cancels `shutdown` once process `pid` (started at `started`) is gone.
pub async fn watch_owner(pid: u32, started: u64, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if start_time(pid) != Some(started) {
            tracing::warn!(owner = pid, "owner process is gone; stopping");
            shutdown.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable_and_a_missing_process_has_none() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert_eq!(start_time(me), start_time(me));
        assert_eq!(start_time(u32::MAX), None);
    }
}
