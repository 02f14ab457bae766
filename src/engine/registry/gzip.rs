//! The gzip stream of a pushed layer.
//!
//! Layers mix text and binaries that compress with data that does not: files
//! that are already compressed (archives, images, packed binaries) or random.
//! deflate spends most of its time searching such data for matches it never
//! finds, so the layer is cut into 64 KiB chunks and a chunk whose bytes are
//! spread almost evenly over all 256 values (order-0 entropy above 7.9 bits a
//! byte) is written as stored deflate blocks; the rest is compressed. The result
//! is one ordinary gzip member any decoder reads, and it depends on the layer's
//! bytes alone: the same layer gives the same blob on every push.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The unit of the compress-or-store decision.
const CHUNK: usize = 64 << 10;
/// The largest stored deflate block.
const STORED_MAX: usize = 0xffff;
/// Above this entropy (bits per byte) a chunk is stored, not compressed.
const STORED_ENTROPY: f64 = 7.9;
/// gzip header: deflate, no flags, mtime 0, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A gzip encoder writing into `out`; [`LayerGzip::finish`] ends the stream.
pub struct LayerGzip<W: Write> {
    out: W,
    deflate: Compress,
    crc: Crc,
    /// Input not yet making up a whole chunk.
    pending: Vec<u8>,
    /// Compressed output, written to `out` after each call into deflate.
    buf: Vec<u8>,
    header_written: bool,
    /// deflate has input since it was last reset.
    fed: bool,
    /// The last block written was a stored one of ours (deflate was flushed).
    storing: bool,
}

impl<W: Write> LayerGzip<W> {
    pub fn new(out: W, level: u32) -> Self {
        LayerGzip {
            out,
            deflate: Compress::new(Compression::new(level), false),
            crc: Crc::new(),
            pending: Vec::with_capacity(CHUNK),
            buf: Vec::with_capacity(CHUNK + 1024),
            header_written: false,
            fed: false,
            storing: false,
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.out.write_all(&HEADER)?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Ends the deflate stream, writes the gzip trailer and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header()?;
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.chunk(&rest)?;
        }
        if self.storing {
            // An empty final stored block ends the stream.
            self.out.write_all(&[1, 0, 0, 0xff, 0xff])?;
        } else {
            self.run(&[], FlushCompress::Finish)?;
        }
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.out)
    }

    fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.header()?;
        self.crc.update(data);
        if incompressible(data) {
            if self.fed && !self.storing {
                // Byte-align deflate's output so raw blocks can follow.
                self.run(&[], FlushCompress::Sync)?;
            }
            self.storing = true;
            for block in data.chunks(STORED_MAX) {
                let len = block.len() as u16;
                let mut head = [0u8; 5];
                head[1..3].copy_from_slice(&len.to_le_bytes());
                head[3..5].copy_from_slice(&(!len).to_le_bytes());
                self.out.write_all(&head)?;
                self.out.write_all(block)?;
            }
            return Ok(());
        }
        if self.storing {
            // deflate's window must not reach back over the stored bytes it never saw.
            self.deflate.reset();
            self.fed = false;
            self.storing = false;
        }
        self.fed = true;
        self.run(data, FlushCompress::None)
    }

    /// Feeds `input` to deflate with `flush`, writing out what it produces.
    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            self.buf.clear();
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, &mut self.buf, flush)
                .map_err(io::Error::other)?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            self.out.write_all(&self.buf)?;
            let room_left = self.buf.len() < self.buf.capacity();
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                FlushCompress::None => input.is_empty(),
                _ => input.is_empty() && room_left,
            };
            if done {
                return Ok(());
            }
        }
    }
}

impl<W: Write> Write for LayerGzip<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        if !self.pending.is_empty() {
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < CHUNK {
                return Ok(n);
            }
            let full = std::mem::take(&mut self.pending);
            self.chunk(&full)?;
            self.pending = full;
            self.pending.clear();
        }
        while data.len() >= CHUNK {
            self.chunk(&data[..CHUNK])?;
            data = &data[CHUNK..];
        }
        self.pending.extend_from_slice(data);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Whether `data`'s byte values are spread so evenly that deflate would gain
/// (next to) nothing.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    bits > STORED_ENTROPY
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn text(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        let mut i = 0;
        while v.len() < n {
            v.extend_from_slice(format!("line {i} of a layer's text, lorem ipsum\n").as_bytes());
            i += 1;
        }
        v.truncate(n);
        v
    }

    fn gzip(parts: &[&[u8]], write_size: usize) -> Vec<u8> {
        let mut gz = LayerGzip::new(Vec::new(), 3);
        for p in parts {
            for piece in p.chunks(write_size.max(1)) {
                gz.write_all(piece).unwrap();
            }
        }
        gz.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        // A single-member decoder: the stream must be exactly one gzip member.
        let mut out = Vec::new();
        let mut d = flate2::read::GzDecoder::new(data);
        d.read_to_end(&mut out).unwrap();
        let rest = d.into_inner();
        assert!(
            rest.is_empty(),
            "{} bytes after the gzip member",
            rest.len()
        );
        out
    }

    #[test]
    fn mixed_content_round_trips_whatever_the_write_sizes() {
        let (r1, t1, r2) = (random(300_000, 7), text(200_003), random(70_001, 9));
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![],
            vec![&t1],
            vec![&r1],
            vec![&r1, &t1, &r2],
            vec![&t1, &r1, &t1, &r2, &t1],
            vec![&r2[..10]],
        ];
        for parts in &cases {
            let whole: Vec<u8> = parts.concat();
            for size in [1000, 4096, CHUNK, 1 << 20] {
                assert_eq!(
                    gunzip(&gzip(parts, size)),
                    whole,
                    "parts of {:?}, writes of {size}",
                    parts.iter().map(|p| p.len()).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn random_data_is_stored_and_text_compressed() {
        let r = random(1 << 20, 3);
        let out = gzip(&[&r], CHUNK);
        // Stored: 5 bytes of block header per 64 KiB block, plus header and trailer.
        assert!(out.len() < r.len() + 200, "{} for {}", out.len(), r.len());
        assert!(out.len() >= r.len());
        let t = text(1 << 20);
        assert!(gzip(&[&t], CHUNK).len() < t.len() / 4);
    }

    #[test]
    fn the_same_input_gives_the_same_stream() {
        let (r, t) = (random(500_000, 5), text(300_000));
        assert_eq!(gzip(&[&t, &r, &t], 1000), gzip(&[&t, &r, &t], 1 << 20));
    }

    #[test]
    fn gzip_tool_accepts_the_stream() {
        let (r, t) = (random(400_000, 11), text(400_000));
        let data = gzip(&[&t, &r, &t], CHUNK);
        let mut child = std::process::Command::new("gzip")
            .args(["-d", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip(1) from Debian's gzip package");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, [t.clone(), r, t].concat());
    }
}
