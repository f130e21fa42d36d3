//! One broker process: started, probed, signalled, reaped.
//!
//! A [`BrokerProcess`] owns its child: output appended to the pod's log file
//! (so restarts stay visible), its pid in `DIR/pids/<pod>` while it runs (a
//! test may `kill -9` it to simulate a crash). The child is killed when the
//! handle is dropped, so a runner that unwinds leaves no broker behind.
//!
//! SIGTERM goes through the `kill` command (procps): the standard library
//! and tokio only send SIGKILL, and a signal crate is not worth a dependency
//! for one call in a test tool.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A running broker process.
#[derive(Debug)]
pub struct BrokerProcess {
    child: Child,
    pid_file: PathBuf,
}

/// The exit code Kubernetes reports for `status`: the code, or 128 + signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

impl BrokerProcess {
    /// Starts `binary args...` with output appended to `log_file` and its pid
    /// written to `pid_file`.
    pub async fn spawn(binary: &Path, args: &[String], log_file: &Path, pid_file: &Path) -> std::io::Result<Self> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_file)?;
        let mut header = log.try_clone()?;
        std::io::Write::write_all(
            &mut header,
            format!("--- strom-pod-runner: starting {} {}\n", binary.display(), args.join(" ")).as_bytes(),
        )?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // The pod's environment is what the flags say; the runner's own
            // STROM_* variables (if any) must not leak into the broker.
            .env_remove("STROM_CONFIG")
            .env_remove("STROM_NODE_ID")
            .env_remove("STROM_DATA_DIR")
            .env_remove("STROM_SET")
            .kill_on_drop(true)
            .spawn()?;
        if let Some(pid) = child.id() {
            let tmp = pid_file.with_extension("tmp");
            tokio::fs::write(&tmp, format!("{pid}\n")).await?;
            tokio::fs::rename(&tmp, pid_file).await?;
        }
        Ok(BrokerProcess { child, pid_file: pid_file.to_path_buf() })
    }

    /// The process id, until it is reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the process to exit by itself (cancel-safe).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await;
        let _ = std::fs::remove_file(&self.pid_file);
        status
    }

    /// SIGTERM, then SIGKILL after `grace`; returns how it ended.
    pub async fn stop(mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        if let Some(pid) = self.child.id() {
            let sent = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            if !matches!(sent, Ok(s) if s.success()) {
                tracing::warn!(pid, "SIGTERM could not be sent; killing");
            } else if let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await {
                let _ = std::fs::remove_file(&self.pid_file);
                return status;
            } else {
                tracing::warn!(
                    pid,
                    grace_seconds = grace.as_secs(),
                    "broker still running after its grace period; SIGKILL"
                );
            }
        }
        self.kill().await
    }

    /// SIGKILL, and reap.
    pub async fn kill(mut self) -> std::io::Result<ExitStatus> {
        let _ = self.child.start_kill();
        self.wait().await
    }
}

/// Kills brokers a previous runner of the same directory left behind (it
/// was SIGKILLed): every pid in `pids_dir` whose command line still names
/// `dir`. Returns how many were killed.
pub fn kill_leftovers(pids_dir: &Path, dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(pids_dir) else { return 0 };
    let needle = dir.display().to_string();
    let mut killed = 0;
    for entry in entries.flatten() {
        let pid = std::fs::read_to_string(entry.path()).ok().and_then(|s| s.trim().parse::<u32>().ok());
        let _ = std::fs::remove_file(entry.path());
        let Some(pid) = pid else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            tracing::warn!(pid, "killing a broker left behind by an earlier runner");
            if std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status().is_ok() {
                killed += 1;
                // Its addresses must be free before a new broker binds them.
                let deadline = std::time::Instant::now() + Duration::from_secs(3);
                while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    killed
}

/// Whether `GET http://ip:port/readyz` answers 200 within `timeout`.
pub async fn probe_ready(address: std::net::SocketAddr, timeout: Duration) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(address).await?;
        let request = format!(
            "GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nUser-Agent: strom-pod-runner\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 16];
        let mut read = 0;
        while read < head.len() {
            let n = stream.read(&mut head[read..]).await?;
            if n == 0 {
                break;
            }
            read += n;
        }
        Ok::<bool, std::io::Error>(status_is_ok(&head[..read]))
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Ok(true)))
}

/// Whether an HTTP response starts with a 200 status line.
fn status_is_ok(head: &[u8]) -> bool {
    let line = String::from_utf8_lossy(head);
    let mut parts = line.split_whitespace();
    matches!((parts.next(), parts.next()), (Some(v), Some("200")) if v.starts_with("HTTP/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_status_line_counts_as_ready() {
        assert!(status_is_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_ok(b"HTTP/1.0 200 "));
        assert!(!status_is_ok(b"HTTP/1.1 503 Service Unavailable"));
        assert!(!status_is_ok(b"HTTP/1.1 2000"));
        assert!(!status_is_ok(b""));
    }

    #[tokio::test]
    async fn probe_reads_the_status_of_a_local_http_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for answer in ["HTTP/1.1 200 OK\r\n\r\nok", "HTTP/1.1 503 Service Unavailable\r\n\r\n"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        assert!(probe_ready(address, Duration::from_secs(2)).await);
        assert!(!probe_ready(address, Duration::from_secs(2)).await);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn crashed_process_is_reaped_with_its_signal_and_pid_file_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (log, pid_file) = (dir.path().join("p.log"), dir.path().join("p.pid"));
        let args = vec!["-c".to_string(), "echo hello; exec sleep 30".to_string()];
        let mut p = BrokerProcess::spawn(Path::new("/bin/sh"), &args, &log, &pid_file).await.unwrap();
        let pid = p.pid().unwrap();
        assert_eq!(std::fs::read_to_string(&pid_file).unwrap().trim(), pid.to_string());
        std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status().unwrap();
        let status = p.wait().await.unwrap();
        assert_eq!(exit_code(status), 137);
        assert!(!pid_file.exists());

        let p = BrokerProcess::spawn(Path::new("/bin/sh"), &args, &log, &pid_file).await.unwrap();
        let status = p.stop(Duration::from_secs(5)).await.unwrap();
        assert_eq!(exit_code(status), 128 + 15);
        let log = std::fs::read_to_string(&log).unwrap();
        assert_eq!(log.matches("--- strom-pod-runner: starting").count(), 2, "{log}");
    }
}
