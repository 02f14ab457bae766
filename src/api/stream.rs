//! Docker's stream framing for attach and logs without a TTY: each chunk is an 8-byte
//! header (`[stream, 0, 0, 0, length as big-endian u32]`) and the payload; stream 1 is
//! stdout, 2 stderr. With a TTY the payload goes out raw.

use bytes::{BufMut, Bytes, BytesMut};

/// Content type of a multiplexed stream (API 1.42+).
pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";
/// Content type of a raw (TTY) stream.
pub const RAW: &str = "application/vnd.docker.raw-stream";

/// One multiplexed frame.
pub fn frame(stream: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + payload.len());
    b.put_u8(stream);
    b.put_bytes(0, 3);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
}

/// Splits a byte stream of frames back into (stream, payload), keeping a partial
/// frame for the next call.
#[derive(Default)]
pub struct Deframer {
    buf: BytesMut,
}

impl Deframer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<(u8, Bytes)> {
        if self.buf.len() < 8 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return None;
        }
        let stream = self.buf[0];
        let mut f = self.buf.split_to(8 + len);
        let payload = f.split_off(8).freeze();
        Some((stream, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_splits() {
        let mut all = Vec::new();
        all.extend_from_slice(&frame(1, b"hello\n"));
        all.extend_from_slice(&frame(2, b"oops\n"));
        assert_eq!(&all[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        let mut d = Deframer::default();
        d.push(&all[..5]);
        assert!(d.next_frame().is_none());
        d.push(&all[5..]);
        assert_eq!(d.next_frame().unwrap(), (1, Bytes::from_static(b"hello\n")));
        assert_eq!(d.next_frame().unwrap(), (2, Bytes::from_static(b"oops\n")));
        assert!(d.next_frame().is_none());
    }
}
