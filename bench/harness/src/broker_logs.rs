//! Broker logs kept past their cluster. A node's log is
//! `<cluster dir>/node-<i>.log` on both systems (Strom's stdout and stderr;
//! Kafka's log4j2 log, which `bench/kafka/run-kafka.sh` sends to stdout), so
//! it goes when a scenario deletes the cluster's directory. Before that,
//! [`keep`] copies each node's log into the run directory's
//! `logs/<cluster dir name>/` (e.g. `logs/s6-kafka-2/node-0.log`), to
//! diagnose latency stalls after the run.
//!
//! Bounded: a log over [`MAX_KEPT_BYTES`] keeps only its last whole lines,
//! under a first line saying how much was dropped. Never fails the benchmark:
//! a log that cannot be copied is a warning on stderr naming the path and the
//! error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::process::Cluster;

/// Most bytes of one node's log kept; a larger log keeps its tail.
pub const MAX_KEPT_BYTES: u64 = 20 << 20;

/// Copies every node log of `cluster` (stopped) into
/// `run_dir/logs/<name of the cluster's directory>/`, warning on stderr for
/// each log that cannot be copied.
pub fn keep(run_dir: &Path, cluster: &Cluster) {
    let Some(name) = cluster.dir.file_name() else {
        eprintln!("strom-bench: warning: not keeping the logs of {}: it has no name", cluster.dir.display());
        return;
    };
    let into = run_dir.join("logs").join(name);
    for log in cluster.log_files() {
        let Some(file) = log.file_name() else {
            eprintln!("strom-bench: warning: not keeping broker log {}: it has no file name", log.display());
            continue;
        };
        let to = into.join(file);
        let copied = std::fs::create_dir_all(&into).and_then(|()| copy_tail(log, &to, MAX_KEPT_BYTES));
        if let Err(e) = copied {
            eprintln!("strom-bench: warning: keeping broker log {} as {} failed: {e}", log.display(), to.display());
        }
    }
}

/// Copies `src` to `dst` whole if it holds at most `max_bytes`; otherwise
/// only the whole lines in its last `max_bytes`, after a first line saying
/// how many bytes were dropped. Returns whether it dropped any.
pub fn copy_tail(src: &Path, dst: &Path, max_bytes: u64) -> io::Result<bool> {
    let mut from = File::open(src)?;
    let len = from.metadata()?.len();
    let mut to = BufWriter::new(File::create(dst)?);
    let truncated = len > max_bytes;
    let start = len.saturating_sub(max_bytes);
    from.seek(SeekFrom::Start(start))?;
    // `take` holds the bound even if the file grew since its length was read.
    let mut tail = BufReader::new(from.take(max_bytes));
    if truncated {
        // Start at a line's beginning, not inside the line cut at `start`.
        let partial = tail.skip_until(b'\n')? as u64;
        let dropped = start + partial;
        writeln!(
            to,
            "[strom-bench: log truncated: the first {dropped} of {len} bytes of {} dropped, the last {} kept]",
            src.display(),
            len - dropped
        )?;
    }
    io::copy(&mut tail, &mut to)?;
    to.flush()?;
    Ok(truncated)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> io::Result<TempDir> {
            let dir = std::env::temp_dir().join(format!("strom-bench-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            Ok(TempDir(dir))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// 100 lines of 9 bytes each: `line 000\n` to `line 099\n`.
    fn numbered_lines() -> String {
        (0..100).map(|i| format!("line {i:03}\n")).collect()
    }

    #[test]
    fn log_over_the_bound_keeps_its_last_whole_lines_under_a_note() -> io::Result<()> {
        let tmp = TempDir::new("tail-truncated")?;
        let (src, dst) = (tmp.0.join("node-0.log"), tmp.0.join("kept.log"));
        std::fs::write(&src, numbered_lines())?;
        // The last 50 bytes start inside line 094; the copy starts at line 095.
        assert!(copy_tail(&src, &dst, 50)?);
        let kept = std::fs::read_to_string(&dst)?;
        let (note, rest) = kept.split_once('\n').unwrap_or_default();
        assert!(note.contains("the first 855 of 900 bytes"), "{note}");
        assert!(note.contains("the last 45 kept"), "{note}");
        assert_eq!(rest, "line 095\nline 096\nline 097\nline 098\nline 099\n");
        Ok(())
    }

    #[test]
    fn log_within_the_bound_is_copied_whole() -> io::Result<()> {
        let tmp = TempDir::new("whole")?;
        let (src, dst) = (tmp.0.join("node-0.log"), tmp.0.join("kept.log"));
        std::fs::write(&src, numbered_lines())?;
        assert!(!copy_tail(&src, &dst, 900)?);
        assert_eq!(std::fs::read_to_string(&dst)?, numbered_lines());
        Ok(())
    }
}
