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
//!   room (holding no pool bytes meanwhile) up to `connections.max.idle.ms`,
//!   then has `request.frame.timeout.ms` to deliver the frame's body.
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
/// Kafka's memory pool: a frame is admitted while any byte is free and may
/// take the pool below zero, so a frame never waits for more room than the
/// pool has, and small frames cannot starve a large one; the bytes held stay
/// under the pool plus one frame. Waiters are woken one at a time, each
/// passing the wake on while room is left.
#[derive(Debug, Clone)]
pub struct RequestMemory {
    inner: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    capacity: i64,
    free: Mutex<i64>,
    released: Notify,
}

/// Bytes taken from a [`RequestMemory`]; given back when dropped.
#[derive(Debug)]
pub struct PoolPermit {
    pool: Option<Arc<Pool>>,
    bytes: i64,
}

impl Drop for PoolPermit {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let free = {
                let mut free = pool.free.lock();
                *free += self.bytes;
                *free
            };
            if free > 0 {
                pool.released.notify_one();
            }
        }
    }
}

impl RequestMemory {
    /// A pool of `capacity` bytes (at least one).
    pub fn new(capacity: usize) -> RequestMemory {
        let capacity = i64::try_from(capacity).unwrap_or(i64::MAX).max(1);
        RequestMemory { inner: Arc::new(Pool { capacity, free: Mutex::new(capacity), released: Notify::new() }) }
    }

    /// The pool `queued.max.request.bytes` sets.
    pub fn from_settings(settings: &Settings) -> RequestMemory {
        RequestMemory::new(settings.long("queued.max.request.bytes").max(1) as usize)
    }

    /// Takes `bytes` from the pool, waiting while none is free.
    pub async fn take(&self, bytes: usize) -> PoolPermit {
        let wanted = i64::try_from(bytes).unwrap_or(i64::MAX).min(self.inner.capacity);
        if wanted == 0 {
            return PoolPermit { pool: None, bytes: 0 };
        }
        loop {
            {
                let mut free = self.inner.free.lock();
                if *free > 0 {
                    *free -= wanted;
                    if *free > 0 {
                        self.inner.released.notify_one(); // room for the next waiter too
                    }
                    return PoolPermit { pool: Some(self.inner.clone()), bytes: wanted };
                }
            }
            // A release between the check and here leaves a stored wake.
            self.inner.released.notified().await;
        }
    }

    /// Bytes currently free in the pool (negative while a frame took more than was free).
    pub fn available(&self) -> i64 {
        *self.inner.free.lock()
    }
}

/// Whether a connection is busy, and since when it has been quiet: a
/// connection with a request in flight is never idle.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
    done: Notify,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity { in_flight: AtomicUsize::new(0), last: Mutex::new(Instant::now()), done: Notify::new() }
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
        self.done.notify_waiters();
    }

    /// Completes at the next [`Activity::request_done`] after this call;
    /// take it before checking, so none is missed.
    pub fn handled(&self) -> tokio::sync::futures::Notified<'_> {
        self.done.notified()
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
    async fn the_pool_admits_while_any_byte_is_free_and_gives_bytes_back_on_drop() {
        let pool = RequestMemory::new(100);
        let first = pool.take(60).await;
        let second = pool.take(60).await; // 40 were free: admitted, the pool goes below zero
        assert_eq!(pool.available(), -20);
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.take(10).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a frame waits while nothing is free");
        drop(first);
        let third = waiting.await.unwrap();
        assert_eq!(pool.available(), 30);
        // A frame larger than the pool takes the whole pool, no more.
        drop((second, third));
        assert_eq!(pool.available(), 100);
        let huge = pool.take(1_000).await;
        assert_eq!(pool.available(), 0);
        drop(huge);
        assert_eq!(pool.available(), 100);
    }

    #[tokio::test]
    async fn every_waiter_is_woken_as_room_comes_back() {
        let pool = RequestMemory::new(10);
        let all = pool.take(10).await;
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.take(1).await })
            })
            .collect();
        tokio::task::yield_now().await;
        drop(all);
        let permits: Vec<_> = futures::future::join_all(waiters).await.into_iter().map(|p| p.unwrap()).collect();
        assert_eq!(pool.available(), 5);
        drop(permits);
        assert_eq!(pool.available(), 10);
    }
}
