//! What one client may make the Kafka listener hold: connections, idle time,
//! time to send a frame, and bytes of requests read but not yet handled.
//!
//! - [`ConnectionLimits`]: per connection, from the broker settings
//!   (`socket.request.max.bytes`, `connections.max.idle.ms`,
//!   `request.frame.timeout.ms`).
//! - [`RequestMemory`]: `queued.max.request.bytes` as one pool shared by
//!   every connection (Kafka's memory pool): a frame's bytes are taken from
//!   it before its body is read and given back once its request has been
//!   handled, so partially read and queued requests never hold more than
//!   the pool, however many connections send them. A connection waits for
//!   room, within its frame's `request.frame.timeout.ms`.
//! - [`ConnectionCounts`]: `max.connections` and `max.connections.per.ip`.
//!
//! Must never: let a frame wait for more pool bytes than the pool has (a
//! frame larger than the pool takes the whole pool).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::Settings;

/// Per-connection limits, read once when the connection opens.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Largest frame accepted (`socket.request.max.bytes`).
    pub max_frame_bytes: usize,
    /// A connection with no request in flight and nothing read for this long is closed.
    pub idle: Duration,
    /// A frame whose first byte arrived must arrive whole within this.
    pub frame_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits the broker settings give.
    pub fn from_settings(settings: &Settings) -> ConnectionLimits {
        let ms = |name: &str| Duration::from_millis(settings.long(name).max(1) as u64);
        ConnectionLimits {
            max_frame_bytes: settings.long("socket.request.max.bytes").max(1) as usize,
            idle: ms("connections.max.idle.ms"),
            frame_timeout: ms("request.frame.timeout.ms"),
        }
    }
}

/// The pool bounding the bytes of requests read and not yet handled.
///
/// Not first-come first-served: a frame whose bytes are free takes them even
/// while a larger frame waits, so a small request is never held up behind a
/// large frame that may never finish (whose deadline closes it instead).
#[derive(Debug, Clone)]
pub struct RequestMemory {
    inner: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    capacity: usize,
    free: Mutex<usize>,
    released: Notify,
}

/// Bytes taken from a [`RequestMemory`]; given back when dropped.
#[derive(Debug)]
pub struct PoolPermit {
    pool: Option<Arc<Pool>>,
    bytes: usize,
}

impl Drop for PoolPermit {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            *pool.free.lock() += self.bytes;
            pool.released.notify_waiters();
        }
    }
}

impl RequestMemory {
    /// A pool of `capacity` bytes (at least one).
    pub fn new(capacity: usize) -> RequestMemory {
        let capacity = capacity.max(1);
        RequestMemory { inner: Arc::new(Pool { capacity, free: Mutex::new(capacity), released: Notify::new() }) }
    }

    /// The pool `queued.max.request.bytes` sets.
    pub fn from_settings(settings: &Settings) -> RequestMemory {
        RequestMemory::new(settings.long("queued.max.request.bytes").max(1) as usize)
    }

    /// Takes `bytes` from the pool (all of it when `bytes` exceeds it),
    /// waiting until that much is free.
    pub async fn take(&self, bytes: usize) -> PoolPermit {
        let wanted = bytes.min(self.inner.capacity);
        if wanted == 0 {
            return PoolPermit { pool: None, bytes: 0 };
        }
        loop {
            // Register for the next release before looking, so none is missed.
            let released = self.inner.released.notified();
            {
                let mut free = self.inner.free.lock();
                if *free >= wanted {
                    *free -= wanted;
                    return PoolPermit { pool: Some(self.inner.clone()), bytes: wanted };
                }
            }
            released.await;
        }
    }

    /// Bytes currently free in the pool.
    pub fn available(&self) -> usize {
        *self.inner.free.lock()
    }
}

/// Whether a connection is busy, and since when it has been quiet: a
/// connection with a request in flight is never idle.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity { in_flight: AtomicUsize::new(0), last: Mutex::new(Instant::now()) }
    }
}

impl Activity {
    /// A request was read and is on its way to be answered.
    pub fn request_read(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        *self.last.lock() = Instant::now();
    }

    /// A request was answered (or dropped).
    pub fn request_done(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        *self.last.lock() = Instant::now();
    }

    /// `None` while a request is in flight; otherwise when the connection
    /// last read a request or answered one.
    pub fn quiet_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(*self.last.lock())
    }
}

/// Open connections in total and per client address.
#[derive(Debug)]
pub struct ConnectionCounts {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefused {
    /// `max.connections` connections are open.
    #[error("max.connections ({0}) connections are open")]
    Total(usize),
    /// `max.connections.per.ip` connections are open from this address.
    #[error("max.connections.per.ip ({0}) connections are open from this address")]
    PerIp(usize),
}

/// Refusals logged at most once a second, with how many were not logged.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    /// Logs a refused connection, or counts it if one was logged in the last second.
    pub fn note(&mut self, peer: std::net::SocketAddr, refused: ConnectionRefused) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1)) {
            self.unlogged += 1;
            return;
        }
        let unlogged = std::mem::take(&mut self.unlogged);
        tracing::warn!(%peer, %refused, refused_since_last_line = unlogged, "refusing connection");
        self.last = Some(now);
    }
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl ConnectionCounts {
    /// Counts under the settings' `max.connections` and `max.connections.per.ip`.
    pub fn from_settings(settings: &Settings) -> Arc<ConnectionCounts> {
        ConnectionCounts::new(
            settings.long("max.connections").max(0) as usize,
            settings.long("max.connections.per.ip").max(0) as usize,
        )
    }

    /// Counts under the given limits.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnectionCounts> {
        Arc::new(ConnectionCounts { max_total, max_per_ip, open: Mutex::new((0, HashMap::new())) })
    }

    /// Counts a new connection from `ip`, or says which limit refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, ConnectionRefused> {
        let mut open = self.open.lock();
        if open.0 >= self.max_total {
            return Err(ConnectionRefused::Total(self.max_total));
        }
        let from_ip = open.1.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(ConnectionRefused::PerIp(self.max_per_ip));
        }
        open.0 += 1;
        open.1.insert(ip, from_ip + 1);
        Ok(ConnectionSlot { counts: self.clone(), ip })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock();
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_in_total_and_per_address_and_uncounted_on_drop() {
        let counts = ConnectionCounts::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = counts.admit(a).unwrap();
        let _a2 = counts.admit(a).unwrap();
        assert_eq!(counts.admit(a).unwrap_err(), ConnectionRefused::PerIp(2));
        let _b1 = counts.admit(b).unwrap();
        assert_eq!(counts.admit(b).unwrap_err(), ConnectionRefused::Total(3));
        drop(a1);
        let _a3 = counts.admit(a).unwrap();
    }

    #[tokio::test]
    async fn pool_bytes_come_back_when_the_permit_drops_and_oversized_frames_take_the_whole_pool() {
        let pool = RequestMemory::new(100);
        let big = pool.take(1_000).await;
        assert_eq!(pool.available(), 0);
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.take(10).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a frame must wait while the pool is full");
        drop(big);
        let small = waiting.await.unwrap();
        assert_eq!(pool.available(), 90);
        // A frame that fits goes ahead of a larger one waiting.
        let large = tokio::spawn({
            let pool = pool.clone();
            async move { pool.take(95).await }
        });
        tokio::task::yield_now().await;
        assert!(!large.is_finished());
        let tiny = pool.take(5).await;
        assert_eq!(pool.available(), 85);
        drop((tiny, small));
        drop(large.await.unwrap());
        assert_eq!(pool.available(), 100);
    }
}
