//! Content digests the way Docker spells and computes them: `sha256:<64 hex>` of the
//! exact bytes, hashed while they stream past (never read twice), and the chain ID
//! that names a stack of layers.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use super::{Error, Result};

/// The only algorithm image IDs, diff IDs and chain IDs use here (as in Docker).
pub const SHA256: &str = "sha256";

/// `sha256:` + lower-case hex of `data`'s SHA-256.
pub fn sha256_of(data: &[u8]) -> String {
    format!("{SHA256}:{}", hex(&Sha256::digest(data)))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// True for 64 lower-case hex digits (an encoded SHA-256).
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks `sha256:<64 hex>` and returns the hex part.
pub fn parse(digest: &str) -> Result<&str> {
    match digest.split_once(':') {
        Some((SHA256, hex)) if is_hex64(hex) => Ok(hex),
        Some((alg, _)) if alg != SHA256 => Err(Error::invalid(format!(
            "unsupported digest algorithm {alg:?} in {digest:?}: only sha256 is supported"
        ))),
        _ => Err(Error::invalid(format!("invalid digest {digest:?}"))),
    }
}

/// The hex part of a digest that is known to be well formed (IDs this store made).
pub fn encoded(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The first 12 hex digits: Docker's short ID (`stringid.TruncateID`).
pub fn short(digest: &str) -> &str {
    let e = encoded(digest);
    &e[..e.len().min(12)]
}

/// The chain ID of a layer stack: the first layer's diff ID, then
/// `sha256(parent_chain + " " + diff_id)` for each layer above it.
pub fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_string(),
        Some(p) => sha256_of(format!("{p} {diff_id}").as_bytes()),
    }
}

/// The chain IDs of every prefix of `diff_ids`, bottom first.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id(out.last().map(String::as_str), d);
        out.push(next);
    }
    out
}

/// A running SHA-256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `sha256:<hex>` of everything hashed.
    pub fn finish(self) -> String {
        format!("{SHA256}:{}", hex(&self.inner.finalize()))
    }
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Reads the rest of the stream (hashing it) and returns digest and length.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let len = self.hasher.len();
        Ok((self.hasher.finish(), len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The writer back, with the digest and length of what was written.
    pub fn finish(self) -> (W, String, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_known_bytes() {
        assert_eq!(
            sha256_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Hasher::new();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), sha256_of(b"abc"));
    }

    #[test]
    fn chain_ids_follow_docker() {
        // The multilayer fixture's first two diff IDs and Docker's chain ID for them.
        let a = "sha256:0fc1a132cc13dfc4b75a03e9651721b4430c86f1c2d91321a64fbaadbe971288";
        let b = "sha256:be518f4b132e5efa6bb55da3270a1464515ffae5211a89209b47d6231e7ff751";
        let ids = chain_ids(&[a.to_string(), b.to_string()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], sha256_of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn parse_checks_form() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse(&ok).unwrap(), "a".repeat(64));
        assert!(parse("sha256:abc").is_err());
        assert!(parse(&format!("sha512:{}", "a".repeat(64))).is_err());
        assert!(parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert_eq!(short(&ok), "aaaaaaaaaaaa");
    }
}
