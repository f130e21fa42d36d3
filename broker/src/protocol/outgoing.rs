//! Response frames on their way to a socket: bytes in memory, and record
//! batches that stay in their segment files until the kernel sends them.
//!
//! Most responses are one buffer. A fetch response is the encoded fields
//! with a hole at each partition's records, filled from the segment file by
//! `sendfile(2)`: the record bytes go from the page cache to the socket with
//! no copy through the broker (what Kafka does with `FileChannel.transferTo`).
//! Chunks before the last are sent with `MSG_MORE` so the kernel can pack a
//! small header with the records behind it despite `TCP_NODELAY`.
//!
//! `sendfile` of records not in the page cache would read the disk on the
//! runtime thread. Before each file range goes out, its first and last
//! pages are probed with `preadv2(RWF_NOWAIT)`, which reads only what the
//! page cache holds; when either is missing, the range is read on the
//! blocking pool first (into a scratch buffer, dropped; at most four such
//! reads at once), so the `sendfile` behind it finds it cached. A range
//! cached at both ends but missing pages in between (evicted out of order)
//! can still make one `sendfile` wait; pages are read and evicted in runs,
//! so this is rare.
//!
//! A segment file that turns out shorter than its range (truncated since
//! the fetch located it) is an error: the connection closes and the client
//! retries, rather than receiving a frame with a wrong length.

use std::io;

use bytes::Bytes;
use rustix::net::SendFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::log::FileRecords;

/// One piece of a response frame.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A range of a segment file.
    File(FileRecords),
}

impl Chunk {
    /// Bytes in the chunk.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(f) => f.len(),
        }
    }

    /// Whether the chunk has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A whole response frame (size prefix included), in order.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    chunks: Vec<Chunk>,
}

impl From<Bytes> for Outgoing {
    fn from(bytes: Bytes) -> Self {
        Outgoing { chunks: vec![Chunk::Bytes(bytes)] }
    }
}

impl Outgoing {
    /// A frame of these chunks, in order; empty chunks are dropped.
    pub fn from_chunks(chunks: Vec<Chunk>) -> Self {
        Outgoing { chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect() }
    }

    /// Bytes in the frame.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }

    /// Whether the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// Writes the whole frame to `stream`, waiting for it to be writable as
    /// needed. The stream must not be written to by anyone else meanwhile.
    pub async fn write_to(&self, stream: &TcpStream) -> io::Result<()> {
        for (i, chunk) in self.chunks.iter().enumerate() {
            let flags = if i + 1 < self.chunks.len() { SendFlags::MORE } else { SendFlags::empty() };
            match chunk {
                Chunk::Bytes(bytes) => send_bytes(stream, bytes, flags).await?,
                Chunk::File(file) => send_file(stream, file).await?,
            }
        }
        Ok(())
    }
}

async fn send_bytes(stream: &TcpStream, bytes: &[u8], flags: SendFlags) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        let n = when_writable(stream, || Ok(rustix::net::send(stream, &bytes[sent..], flags | SendFlags::NOSIGNAL)?))
            .await?;
        sent += n;
    }
    Ok(())
}

async fn send_file(stream: &TcpStream, records: &FileRecords) -> io::Result<()> {
    if !cached(records) {
        // Closed never: the semaphore is static and never closed.
        let _turn = COLD_READS.acquire().await.map_err(io::Error::other)?;
        let warm = records.clone();
        tokio::task::spawn_blocking(move || read_through(&warm)).await.map_err(io::Error::other)??;
    }
    let mut offset = records.position();
    let end = offset + records.len() as u64;
    while offset < end {
        let left = (end - offset) as usize;
        let n = when_writable(stream, || Ok(rustix::fs::sendfile(stream, records.file(), Some(&mut offset), left)?))
            .await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ends before byte {end} of a fetch response's records (truncated since the fetch read it)",
                    records.path().display()
                ),
            ));
        }
    }
    Ok(())
}

/// Cold ranges read in at once, across the broker's connections: consumers
/// catching up on old data must not take every blocking-pool thread (the
/// leader's reads for followers run there too) or hold a read buffer each.
static COLD_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Whether the first and last pages of `records`' range are in the page
/// cache: a one-byte `RWF_NOWAIT` read of each, which never waits for the
/// disk and fails with EAGAIN when the page is not cached. A file system
/// that cannot tell (EOPNOTSUPP) or any other error counts as cached: the
/// `sendfile` then does what it did before this check, and reports errors.
fn cached(records: &FileRecords) -> bool {
    let (start, len) = (records.position(), records.len() as u64);
    if len == 0 {
        return true;
    }
    let mut byte = [0u8; 1];
    [start, start + len - 1].into_iter().all(|at| {
        let mut bufs = [io::IoSliceMut::new(&mut byte)];
        let probe = rustix::io::preadv2(records.file(), &mut bufs, at, rustix::io::ReadWriteFlags::NOWAIT);
        probe != Err(rustix::io::Errno::AGAIN)
    })
}

/// Reads `records`' range into a scratch buffer and drops it, leaving the
/// pages in the page cache. Blocking file I/O: run on the blocking pool.
fn read_through(records: &FileRecords) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const STEP: usize = 256 * 1024;
    let (mut at, end) = (records.position(), records.position() + records.len() as u64);
    let mut buf = vec![0u8; STEP.min(records.len())];
    while at < end {
        let want = ((end - at) as usize).min(buf.len());
        let n = records.file().read_at(&mut buf[..want], at)?;
        if n == 0 {
            // Shorter than its range: send_file reports it.
            return Ok(());
        }
        at += n as u64;
    }
    Ok(())
}

/// Runs a non-blocking socket operation once the socket is writable,
/// again after every spurious wake-up.
async fn when_writable<R>(stream: &TcpStream, mut op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
    loop {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, &mut op) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::Arc;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    async fn connected_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, Arc<std::fs::File>, PathBuf) {
        // Beside the test binary, on the build's disk: pages of a tmpfs
        // (a TMPDIR may be one) cannot be evicted, which one test needs.
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
        let path = dir.path().join("00000000000000000000.log");
        std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        (dir, file, path)
    }

    /// A frame larger than the socket buffers: the writer must wait for the
    /// reader again and again, in the bytes and in the file range.
    #[tokio::test]
    async fn writes_bytes_and_file_ranges_in_order_through_a_full_socket() {
        let contents: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, file, path) = file_with(&contents);
        let head = Bytes::from(vec![1u8; 3_000_000]);
        let tail = Bytes::from_static(b"tail");
        let range = FileRecords::new(file, path, 1_000, 6_000_000, 0);
        let frame = Outgoing::from_chunks(vec![
            Chunk::Bytes(head.clone()),
            Chunk::Bytes(Bytes::new()),
            Chunk::File(range),
            Chunk::Bytes(tail.clone()),
        ]);
        assert_eq!(frame.chunks().len(), 3, "the empty chunk is dropped");
        let (server, mut client) = connected_pair().await;
        let expected: Vec<u8> = [&head[..], &contents[1_000..6_001_000], &tail[..]].concat();
        assert_eq!(frame.len(), expected.len());
        let writer = tokio::spawn(async move { frame.write_to(&server).await });
        let mut received = vec![0u8; expected.len()];
        client.read_exact(&mut received).await.unwrap();
        writer.await.unwrap().unwrap();
        assert!(received == expected, "the frame arrives whole and in order");
    }

    /// A range evicted from the page cache is seen as such and read back
    /// in before it is sent (the sendfile then does not read the disk on
    /// the runtime thread); what arrives is the file's bytes either way.
    #[tokio::test]
    async fn a_range_not_in_the_page_cache_is_read_in_before_it_is_sent() {
        let contents: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
        let (_dir, file, path) = file_with(&contents);
        file.sync_all().unwrap();
        rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let range = FileRecords::new(file.clone(), path.clone(), 4096, 1_500_000, 0);
        assert!(!cached(&range), "evicted pages are not taken for cached");
        read_through(&range).unwrap();
        assert!(cached(&range), "read in, both ends are cached");

        rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        assert!(!cached(&range));
        let frame = Outgoing::from_chunks(vec![Chunk::File(range.clone())]);
        let (server, mut client) = connected_pair().await;
        let writer = tokio::spawn(async move { frame.write_to(&server).await });
        let mut received = vec![0u8; 1_500_000];
        client.read_exact(&mut received).await.unwrap();
        writer.await.unwrap().unwrap();
        assert!(received[..] == contents[4096..4096 + 1_500_000], "the range arrives whole");
        assert!(cached(&range), "sending read it in");
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_range_is_an_error_not_other_bytes() {
        let (_dir, file, path) = file_with(&[5u8; 100]);
        let frame = Outgoing::from_chunks(vec![
            Chunk::Bytes(Bytes::from_static(b"head")),
            Chunk::File(FileRecords::new(file, path, 40, 100, 0)),
        ]);
        let (server, mut client) = connected_pair().await;
        let error = frame.write_to(&server).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(error.to_string().contains("00000000000000000000.log ends before byte 140"), "{error}");
        drop(server);
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received.len(), 4 + 60, "only the bytes that exist were sent");
    }
}
