//! Byte chunks handed from async tasks to blocking readers: a request body read
//! from the connection, a blob streaming from a registry. The channel is bounded,
//! so a slow reader holds the sender back instead of buffering without limit.

use std::io::{self, Read, Write};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

/// A blocking [`Read`] of the chunks sent on a channel; an `Err` chunk is the
/// reader's error, and the channel closing is the end of the stream.
pub struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
    /// With [`ChunkReader::until_complete`]: set by the sender once everything was
    /// sent; a channel closed without it is a cut stream, not its end.
    complete: Option<Arc<AtomicBool>>,
}

impl ChunkReader {
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> ChunkReader {
        ChunkReader {
            rx,
            cur: Bytes::new(),
            complete: None,
        }
    }

    /// A reader whose stream ends well only if `complete` is set before the
    /// channel closes (a sender dropped half-way, say by a cancelled task, makes
    /// the reader fail).
    pub fn until_complete(
        rx: mpsc::Receiver<io::Result<Bytes>>,
        complete: Arc<AtomicBool>,
    ) -> ChunkReader {
        ChunkReader {
            complete: Some(complete),
            ..ChunkReader::new(rx)
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => match &self.complete {
                    Some(c) if !c.load(Ordering::Acquire) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the stream was cut short",
                        ));
                    }
                    _ => return Ok(0),
                },
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// How much a [`ChunkWriter`] gathers before it sends.
pub const CHUNK: usize = 256 << 10;

/// A blocking [`Write`] that sends what it is given as chunks of [`CHUNK`] bytes
/// (call `flush` at the end); the receiver going away is a `BrokenPipe` error.
pub struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    pub fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChunkWriter {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the receiver went away"))
    }
}

/// A response or request body fed by a channel of chunks; an `Err` chunk fails
/// the body (the peer then sees a broken transfer, never a short complete one).
pub struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl ChannelBody {
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> ChannelBody {
        ChannelBody { rx }
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|c| c.map(|r| r.map(hyper::body::Frame::data)))
    }
}
