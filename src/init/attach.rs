//! Attach streams: Docker's multiplexed framing and the per-connection output queue.
//!
//! Without a TTY every chunk of output travels as a frame with Docker's 8-byte header
//! `[stream, 0, 0, 0, len_be32]` (1 = stdout, 2 = stderr), the format `docker attach`
//! and the API's hijacked streams use. With a TTY the terminal's bytes go unframed, as
//! Docker sends them.

use std::io;
use std::os::fd::RawFd;

use super::logfile::Stream;
use super::sys;

/// Docker's stream byte in the frame header.
pub fn stream_id(stream: Stream) -> u8 {
    match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    }
}

/// The 8-byte header of one frame carrying `len` bytes of `stream`.
pub fn frame_header(stream: Stream, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [stream_id(stream), 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Bytes waiting to be written to a non-blocking descriptor.
#[derive(Debug, Default)]
pub struct OutQueue {
    data: Vec<u8>,
    pos: usize,
}

impl OutQueue {
    pub fn len(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// Queues `chunk` of `stream` as a frame, or raw when `raw` (TTY).
    pub fn push_output(&mut self, stream: Stream, chunk: &[u8], raw: bool) {
        if !raw {
            self.push(&frame_header(stream, chunk.len()));
        }
        self.push(chunk);
    }

    /// Writes as much as the descriptor takes without blocking. Returns how many bytes
    /// went out; `WouldBlock` is not an error.
    pub fn flush_to(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut total = 0;
        while self.pos < self.data.len() {
            match sys::write(fd, &self.data[self.pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pos += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
        } else if self.pos > 1 << 20 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
        Ok(total)
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn header_matches_dockers_stdcopy() {
        assert_eq!(frame_header(Stream::Stdout, 5), [1, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(
            frame_header(Stream::Stderr, 0x0102_0304),
            [2, 0, 0, 0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn queue_frames_or_passes_raw_bytes() {
        let mut q = OutQueue::default();
        q.push_output(Stream::Stderr, b"oops", false);
        q.push_output(Stream::Stdout, b"tty", true);
        assert_eq!(q.len(), 8 + 4 + 3);
        let (r, w) = sys::pipe().unwrap();
        assert_eq!(q.flush_to(w.as_raw_fd()).unwrap(), 15);
        assert!(q.is_empty());
        let mut buf = [0u8; 32];
        let n = sys::read(r.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"\x02\0\0\0\0\0\0\x04oopstty");
    }

    #[test]
    fn a_full_descriptor_keeps_the_rest_queued() {
        let (_r, w) = sys::pipe().unwrap();
        sys::set_nonblocking(w.as_raw_fd(), true).unwrap();
        let mut q = OutQueue::default();
        q.push(&vec![7u8; 1 << 20]);
        let n = q.flush_to(w.as_raw_fd()).unwrap();
        assert!(n > 0 && n < 1 << 20);
        assert_eq!(q.len(), (1 << 20) - n);
    }
}
