//! Byte-exact reassembly of a layer's tar stream from its unpacked files.
//!
//! A layer's diff ID is the SHA-256 of its uncompressed tar stream, so `docker save`
//! must write that very stream back or the archive will not load anywhere. While a
//! layer is unpacked, every byte of the stream that is not a regular file's content
//! (headers, PAX records, padding, the end-of-archive blocks) is recorded verbatim,
//! and each file's content is recorded as a reference to the unpacked file. Saving
//! replays the records, reading contents from the layer directory. The idea is the
//! one Docker calls "tar-split"; the on-disk format here is this daemon's own:
//! zstd over a sequence of `0 len bytes` (raw) and `1 pathlen path size` (file) records.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::tar_safe;
use super::{Error, Result};

const MAGIC: &[u8] = b"dockerd-tar-split-1\n";

/// One piece of the original stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// Bytes reproduced verbatim.
    Raw(Vec<u8>),
    /// `size` bytes read from the unpacked file at `path` (relative to the layer root).
    File { path: Vec<u8>, size: u64 },
}

/// The recipe for a layer's tar stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TarSplit {
    pub segs: Vec<Seg>,
}

impl TarSplit {
    /// Length of the reassembled stream.
    pub fn stream_len(&self) -> u64 {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::Raw(b) => b.len() as u64,
                Seg::File { size, .. } => *size,
            })
            .sum()
    }

    /// Writes the recipe (compressed) to `w`.
    pub fn write_to<W: Write>(&self, w: W) -> io::Result<()> {
        let mut z = zstd::Encoder::new(w, 3)?;
        z.write_all(MAGIC)?;
        for s in &self.segs {
            match s {
                Seg::Raw(b) => {
                    z.write_all(&[0])?;
                    z.write_all(&(b.len() as u64).to_le_bytes())?;
                    z.write_all(b)?;
                }
                Seg::File { path, size } => {
                    z.write_all(&[1])?;
                    z.write_all(&(path.len() as u32).to_le_bytes())?;
                    z.write_all(path)?;
                    z.write_all(&size.to_le_bytes())?;
                }
            }
        }
        z.finish()?.flush()
    }

    /// Reads a recipe written by [`TarSplit::write_to`].
    pub fn read_from(path: &Path) -> Result<TarSplit> {
        let corrupt = |what: &str| {
            Error::internal(format!(
                "layer metadata {} is corrupt ({what}); remove the image and load it again",
                path.display()
            ))
        };
        let f = File::open(path)
            .map_err(|e| Error::internal(crate::store::with_path(e, "open", path).to_string()))?;
        let mut z = BufReader::new(zstd::Decoder::new(f).map_err(|e| corrupt(&e.to_string()))?);
        let mut magic = vec![0u8; MAGIC.len()];
        z.read_exact(&mut magic)
            .map_err(|_| corrupt("short header"))?;
        if magic != MAGIC {
            return Err(corrupt("unknown format"));
        }
        let mut segs = Vec::new();
        loop {
            let mut tag = [0u8; 1];
            match z.read(&mut tag) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(corrupt(&e.to_string())),
            }
            let read_u64 = |z: &mut BufReader<_>| -> Result<u64> {
                let mut b = [0u8; 8];
                z.read_exact(&mut b).map_err(|_| corrupt("truncated"))?;
                Ok(u64::from_le_bytes(b))
            };
            match tag[0] {
                0 => {
                    let len = read_u64(&mut z)?;
                    let mut b = Vec::new();
                    (&mut z)
                        .take(len)
                        .read_to_end(&mut b)
                        .map_err(|_| corrupt("truncated"))?;
                    if b.len() as u64 != len {
                        return Err(corrupt("truncated"));
                    }
                    segs.push(Seg::Raw(b));
                }
                1 => {
                    let mut l = [0u8; 4];
                    z.read_exact(&mut l).map_err(|_| corrupt("truncated"))?;
                    let mut p = vec![0u8; u32::from_le_bytes(l) as usize];
                    z.read_exact(&mut p).map_err(|_| corrupt("truncated"))?;
                    let size = read_u64(&mut z)?;
                    segs.push(Seg::File { path: p, size });
                }
                _ => return Err(corrupt("unknown record")),
            }
        }
        Ok(TarSplit { segs })
    }

    /// Writes the original stream to `out`, reading file contents below `root`.
    /// A file that no longer has its recorded size fails the whole stream: the
    /// result would not match the layer's diff ID.
    pub fn reassemble<W: Write>(&self, root: &Path, out: &mut W) -> Result<()> {
        let root_fd = tar_safe::open_root(root)?;
        let mut buf = vec![0u8; 256 << 10];
        for s in &self.segs {
            match s {
                Seg::Raw(b) => out.write_all(b).map_err(write_err)?,
                Seg::File { path, size } => {
                    let shown = || String::from_utf8_lossy(path).into_owned();
                    let f = tar_safe::open_file_beneath(&root_fd, path).map_err(|e| {
                        Error::internal(format!(
                            "layer {}: cannot read {}: {e}",
                            root.display(),
                            shown()
                        ))
                    })?;
                    let mut r = f.take(*size);
                    let mut copied = 0u64;
                    loop {
                        let n = r.read(&mut buf).map_err(|e| {
                            Error::internal(format!(
                                "read {}: {e}",
                                Path::new(OsStr::from_bytes(path)).display()
                            ))
                        })?;
                        if n == 0 {
                            break;
                        }
                        out.write_all(&buf[..n]).map_err(write_err)?;
                        copied += n as u64;
                    }
                    if copied != *size {
                        return Err(Error::internal(format!(
                            "layer {}: {} changed size since it was unpacked ({copied} of {size} bytes)",
                            root.display(),
                            shown()
                        )));
                    }
                }
            }
        }
        out.flush().map_err(write_err)
    }

    /// Saves the recipe next to the layer (write + fsync; the caller renames the
    /// whole layer directory into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        let f = File::create(path)
            .map_err(|e| Error::internal(crate::store::with_path(e, "create", path).to_string()))?;
        let mut w = BufWriter::new(f);
        self.write_to(&mut w)
            .and_then(|_| w.into_inner().map_err(|e| e.into_error()))
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::internal(crate::store::with_path(e, "write", path).to_string()))
    }
}

fn write_err(e: io::Error) -> Error {
    Error::internal(format!(
        "write tar stream: {}",
        crate::store::strip_os_suffix(&e)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TarSplit {
            segs: vec![
                Seg::Raw(vec![1, 2, 3]),
                Seg::File {
                    path: b"a/b".to_vec(),
                    size: 5,
                },
                Seg::Raw(vec![0; 1024]),
            ],
        };
        let p = dir.path().join("ts");
        ts.save(&p).unwrap();
        assert_eq!(TarSplit::read_from(&p).unwrap(), ts);
        assert_eq!(ts.stream_len(), 3 + 5 + 1024);
    }
}
