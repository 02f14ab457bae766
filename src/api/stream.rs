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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_is_dockers() {
        let f = frame(1, b"hello\n");
        assert_eq!(&f[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        assert_eq!(&f[8..], b"hello\n");
        assert_eq!(frame(2, b"")[0], 2);
    }
}
