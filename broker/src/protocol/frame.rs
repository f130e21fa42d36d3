//! Length-prefixed framing: a 4-byte big-endian size, then that many bytes.
//!
//! Invariants: never allocates more than `max_frame_bytes` for one frame; a
//! larger or negative size is an error before any body byte is read; a
//! frame's bytes are taken from the request memory pool before its body is
//! read; a frame begun must arrive whole (its pool bytes taken included)
//! within the frame timeout of its first byte, and a
//! connection quiet for the idle timeout between frames ends.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::timeout_at;

use super::limits::{ConnectionLimits, PoolPermit, RequestMemory};

/// Why a frame could not be read; every case closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The size prefix exceeds `socket.request.max.bytes`.
    #[error("request frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i32, max: usize },
    /// The size prefix is negative.
    #[error("request frame has a negative size ({0})")]
    NegativeSize(i32),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed after {read} of {expected} bytes of a frame")]
    Truncated { read: usize, expected: usize },
    /// A frame begun did not arrive whole in time.
    #[error(
        "request frame incomplete after request.frame.timeout.ms ({timeout:?}): {read} of {expected} bytes arrived"
    )]
    Timeout { timeout: Duration, read: usize, expected: usize },
    /// Nothing was sent or answered on the connection for `connections.max.idle.ms`.
    #[error("connection idle for connections.max.idle.ms ({0:?})")]
    Idle(Duration),
    /// A socket error.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The `strom_bad_requests_total` stage this error is counted under.
    pub fn stage(&self) -> &'static str {
        match self {
            FrameError::Timeout { .. } => "frame_timeout",
            FrameError::Idle(_) => "idle",
            _ => "frame",
        }
    }
}

/// Reads one frame with no time limits and a pool of its own; `Ok(None)`
/// when the peer closed cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_frame_bytes: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let forever = Duration::from_secs(365 * 24 * 3600);
    let limits = ConnectionLimits { max_frame_bytes, idle: forever, frame_timeout: forever };
    let pool = RequestMemory::new(max_frame_bytes);
    Ok(read_frame_within(reader, &limits, &pool, || None).await?.map(|(frame, _)| frame))
}

/// Reads one frame under `limits`, with its bytes taken from `memory` (the
/// returned permit gives them back when dropped). `quiet_since` says whether
/// the connection may be idle now (`None` while a request is in flight) and
/// since when. `Ok(None)` when the peer closed cleanly between frames.
pub async fn read_frame_within<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: &ConnectionLimits,
    memory: &RequestMemory,
    quiet_since: impl Fn() -> Option<Instant>,
) -> Result<Option<(BytesMut, PoolPermit)>, FrameError> {
    let mut size_buf = [0u8; 4];
    // Between frames: wait for the first byte while the connection is busy
    // or has been quiet for less than the idle timeout.
    let mut got = loop {
        let quiet = quiet_since();
        let idle_at = quiet.unwrap_or_else(Instant::now) + limits.idle;
        match timeout_at(idle_at.into(), reader.read(&mut size_buf)).await {
            Ok(n) => break n?,
            Err(_) => {
                if let Some(since) = quiet_since()
                    && since.elapsed() >= limits.idle
                {
                    return Err(FrameError::Idle(limits.idle));
                }
            }
        }
    };
    if got == 0 {
        return Ok(None);
    }
    let size_deadline = Instant::now() + limits.frame_timeout;
    let late = |read, expected| FrameError::Timeout { timeout: limits.frame_timeout, read, expected };
    while got < 4 {
        let n =
            timeout_at(size_deadline.into(), reader.read(&mut size_buf[got..])).await.map_err(|_| late(got, 4))??;
        if n == 0 {
            return Err(FrameError::Truncated { read: got, expected: 4 });
        }
        got += n;
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    if size as usize > limits.max_frame_bytes {
        return Err(FrameError::TooLarge { size, max: limits.max_frame_bytes });
    }
    let expected = size as usize;
    // Waiting for room in the pool is the broker's delay, not the client's:
    // it does not count against the frame (a well-behaved client whose small
    // request queues behind frames that never finish must not be closed for
    // them). A waiting connection holds no pool bytes; once admitted, the
    // body has the whole timeout, so frames that hold the pool without
    // finishing are closed in time for those behind.
    // The wait is bounded all the same, by connections.max.idle.ms: a
    // connection queued that long is closed like an idle one.
    let permit = timeout_at((Instant::now() + limits.idle).into(), memory.take(expected))
        .await
        .map_err(|_| FrameError::Idle(limits.idle))?;
    let deadline = Instant::now() + limits.frame_timeout;
    // Read into uninitialised capacity: zeroing a produce request's bytes
    // only to overwrite them cost ~5 % of the broker's CPU at full speed.
    let mut body = BytesMut::with_capacity(expected);
    while body.len() < expected {
        let left = (expected - body.len()) as u64;
        let mut rest = (&mut *reader).take(left);
        let read = timeout_at(deadline.into(), rest.read_buf(&mut body)).await;
        let n = read.map_err(|_| late(4 + body.len(), 4 + expected))??;
        if n == 0 {
            return Err(FrameError::Truncated { read: body.len(), expected });
        }
    }
    Ok(Some((body, permit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_consecutive_frames_then_clean_eof() {
        let mut input: &[u8] = &[0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0];
        assert_eq!(&read_frame(&mut input, 10).await.unwrap().unwrap()[..], b"hi");
        assert_eq!(read_frame(&mut input, 10).await.unwrap().unwrap().len(), 0);
        assert!(read_frame(&mut input, 10).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_negative_and_truncated_frames_are_errors() {
        let mut big: &[u8] = &[0, 0, 1, 0];
        assert!(matches!(read_frame(&mut big, 255).await, Err(FrameError::TooLarge { size: 256, max: 255 })));
        let mut neg: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut neg, 255).await, Err(FrameError::NegativeSize(-1))));
        let mut short: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(matches!(read_frame(&mut short, 255).await, Err(FrameError::Truncated { read: 2, expected: 5 })));
        let mut short_size: &[u8] = &[0, 0];
        assert!(matches!(read_frame(&mut short_size, 255).await, Err(FrameError::Truncated { read: 2, expected: 4 })));
    }

    #[tokio::test]
    async fn waiting_for_pool_room_does_not_count_against_the_frame_timeout() {
        let limits = ConnectionLimits {
            max_frame_bytes: 100,
            idle: Duration::from_secs(60),
            frame_timeout: Duration::from_millis(50),
        };
        let pool = RequestMemory::new(10);
        let held = pool.take(10).await;
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        let mut input: &[u8] = &[0, 0, 0, 2, b'o', b'k'];
        let read = read_frame_within(&mut input, &limits, &pool, || None).await;
        let (frame, _permit) = read.expect("a whole frame that only waited for room is read").expect("a frame");
        assert_eq!(&frame[..], b"ok");
        release.await.expect("release task");
    }
}
