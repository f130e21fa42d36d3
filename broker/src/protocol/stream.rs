//! A client connection's byte stream, plain TCP or TLS, split into a
//! reading and a writing half.
//!
//! The plain halves are tokio's own TCP halves, so the plaintext path is
//! what it was: responses go out with `send(2)` and fetched batches with
//! `sendfile(2)` straight from their segment files. Under TLS the records
//! must be encrypted, so a fetched file range is read into memory and
//! written through the TLS stream (kernel TLS offload, which would keep
//! `sendfile`, is a later step).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::server::TlsStream;

use super::outgoing::{Chunk, Outgoing};

/// A TLS client stream.
pub type Tls = TlsStream<TcpStream>;

/// The reading half of a client connection.
pub enum ConnReader {
    /// Plain TCP.
    Plain(OwnedReadHalf),
    /// TLS (buffered, so the end of the stream can be watched for without
    /// consuming the next request).
    Tls(BufReader<ReadHalf<Tls>>),
}

/// The writing half of a client connection.
pub enum ConnWriter {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS.
    Tls(WriteHalf<Tls>),
}

/// Splits a plain connection.
pub fn split_plain(stream: TcpStream) -> (ConnReader, ConnWriter) {
    let (r, w) = stream.into_split();
    (ConnReader::Plain(r), ConnWriter::Plain(w))
}

/// Splits a TLS connection.
pub fn split_tls(stream: Tls) -> (ConnReader, ConnWriter) {
    let (r, w) = tokio::io::split(stream);
    (ConnReader::Tls(BufReader::new(r)), ConnWriter::Tls(w))
}

impl ConnReader {
    /// Waits until the client sends a byte (`true`) or closes the
    /// connection (`false`), consuming nothing.
    pub async fn wait_readable(&mut self) -> bool {
        match self {
            ConnReader::Plain(r) => {
                let mut probe = [0u8; 1];
                matches!(r.peek(&mut probe).await, Ok(n) if n > 0)
            }
            ConnReader::Tls(r) => matches!(r.fill_buf().await, Ok(b) if !b.is_empty()),
        }
    }
}

impl AsyncRead for ConnReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnReader::Plain(r) => Pin::new(r).poll_read(cx, buf),
            ConnReader::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

/// Bytes of a fetched file range read and encrypted at a time under TLS.
const TLS_FILE_CHUNK: usize = 256 * 1024;

impl ConnWriter {
    /// Writes one response frame.
    pub async fn write(&mut self, frame: &Outgoing) -> io::Result<()> {
        match self {
            ConnWriter::Plain(w) => frame.write_to(w.as_ref()).await,
            ConnWriter::Tls(w) => {
                for chunk in frame.chunks() {
                    match chunk {
                        Chunk::Bytes(bytes) => w.write_all(bytes).await?,
                        Chunk::File(records) => {
                            let mut offset = records.position();
                            let end = offset + records.len() as u64;
                            while offset < end {
                                let len = ((end - offset) as usize).min(TLS_FILE_CHUNK);
                                let records = records.clone();
                                let read = tokio::task::spawn_blocking(move || {
                                    use std::os::unix::fs::FileExt;
                                    let mut buf = vec![0u8; len];
                                    records.file().read_exact_at(&mut buf, offset).map(|()| buf)
                                })
                                .await
                                .map_err(io::Error::other)??;
                                w.write_all(&read).await?;
                                offset += len as u64;
                            }
                        }
                    }
                }
                w.flush().await
            }
        }
    }

    /// Ends the connection's sending side.
    pub async fn shutdown(&mut self) {
        let _ = match self {
            ConnWriter::Plain(w) => w.shutdown().await,
            ConnWriter::Tls(w) => w.shutdown().await,
        };
    }
}
