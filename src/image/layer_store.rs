//! Layers on disk: each distinct layer unpacked once under
//! `image/layers/<diff-id hex>/` (`diff/` the tree overlayfs stacks, `tar-split.zst`
//! the recipe for its exact tar stream, `layer.json` its sizes), and a chain record
//! per stack position under `image/chains/<chain-id hex>.json` linking a chain ID to
//! its layer and parent chain.
//!
//! An unpacked tree depends only on its own tar (whiteouts are stored in overlay
//! form, not applied), so stacks that share a diff ID share the directory. A layer
//! is unpacked into a temporary directory beside the others, flushed to disk with
//! `syncfs`, and renamed into place only when complete; a crash leaves a temporary
//! directory that the next start sweeps away.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::digest;
use super::tar_safe;
use super::{Error, Result};

/// `layer.json`: what the store knows about a layer without walking it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerMeta {
    pub diff_id: String,
    /// Bytes of the unpacked files (hard links counted once), as Docker's `DiffSize`.
    pub size: u64,
    /// Length of the uncompressed tar stream.
    pub tar_size: u64,
}

/// `chains/<hex>.json`: one position in a layer stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRecord {
    pub chain_id: String,
    pub diff_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// Where layers and chains live.
#[derive(Clone, Debug)]
pub struct LayerPaths {
    pub layers: PathBuf,
    pub chains: PathBuf,
}

impl LayerPaths {
    pub fn new(image_root: &Path) -> LayerPaths {
        LayerPaths {
            layers: image_root.join("layers"),
            chains: image_root.join("chains"),
        }
    }

    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.layers.join(digest::encoded(diff_id))
    }

    /// The unpacked tree of a layer: an overlay lower directory.
    pub fn diff_dir(&self, diff_id: &str) -> PathBuf {
        self.layer_dir(diff_id).join("diff")
    }

    pub fn tar_split(&self, diff_id: &str) -> PathBuf {
        self.layer_dir(diff_id).join("tar-split.zst")
    }

    pub fn chain_file(&self, chain_id: &str) -> PathBuf {
        self.chains
            .join(format!("{}.json", digest::encoded(chain_id)))
    }

    /// Reads every committed layer's metadata.
    pub fn read_layers(&self) -> Result<Vec<LayerMeta>> {
        let mut out = Vec::new();
        for name in list_dir(&self.layers)? {
            if !digest::is_hex64(&name) {
                continue;
            }
            let p = self.layers.join(&name).join("layer.json");
            match fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|d| serde_json::from_slice::<LayerMeta>(&d).map_err(|e| e.to_string()))
            {
                Ok(m) if digest::encoded(&m.diff_id) == name => out.push(m),
                Ok(_) => tracing::warn!("{} names another layer; ignoring it", p.display()),
                Err(e) => tracing::warn!("ignoring layer {name}: {}: {e}", p.display()),
            }
        }
        Ok(out)
    }

    /// Reads every chain record.
    pub fn read_chains(&self) -> Result<Vec<ChainRecord>> {
        let mut out = Vec::new();
        for name in list_dir(&self.chains)? {
            let Some(hex) = name.strip_suffix(".json") else {
                continue;
            };
            let p = self.chains.join(&name);
            match fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|d| serde_json::from_slice::<ChainRecord>(&d).map_err(|e| e.to_string()))
            {
                Ok(c) if digest::encoded(&c.chain_id) == hex => out.push(c),
                Ok(_) => tracing::warn!("{} names another chain; ignoring it", p.display()),
                Err(e) => tracing::warn!("ignoring chain record {}: {e}", p.display()),
            }
        }
        Ok(out)
    }

    /// Unpacks an uncompressed layer stream into a new temporary directory.
    pub fn prepare<R: Read>(&self, input: R) -> Result<PreparedLayer> {
        let tmp = crate::store::temp_path(&self.layers.join("layer"));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(|e| crate::store::with_path(e, "create directory", &tmp))?;
        let mut prepared = PreparedLayer {
            dir: tmp,
            meta: LayerMeta {
                diff_id: String::new(),
                size: 0,
                tar_size: 0,
            },
            keep: false,
        };
        let diff = prepared.dir.join("diff");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&diff)
            .map_err(|e| crate::store::with_path(e, "create directory", &diff))?;
        let started = std::time::Instant::now();
        // What is already dirty on the filesystem (a committed container's own
        // writes, say) is flushed while the layer unpacks, so that the flush below
        // has mostly the layer's own data left to write.
        let dir = prepared.dir.clone();
        let early = std::thread::Builder::new()
            .name("early-flush".into())
            .spawn(move || syncfs(&dir))
            .ok();
        let unpacked = tar_safe::unpack_layer(input, &diff);
        if let Some(early) = early {
            let _ = early.join();
        }
        let unpacked = unpacked?;
        let unpacked_at = started.elapsed();
        prepared.meta = LayerMeta {
            diff_id: unpacked.diff_id.clone(),
            size: dir_size(&diff)?,
            tar_size: unpacked.tar_size,
        };
        unpacked.split.save(&prepared.dir.join("tar-split.zst"))?;
        crate::store::write_json(&prepared.dir.join("layer.json"), &prepared.meta)?;
        let recorded_at = started.elapsed();
        // One flush for the whole tree: a crash after the rename below must not
        // leave a layer whose files are still only in the page cache.
        syncfs(&prepared.dir)?;
        tracing::debug!(
            diff_id = %prepared.meta.diff_id,
            entries = unpacked.entries,
            bytes = unpacked.tar_size,
            "layer unpacked in {:?}, measured and recorded in {:?}, flushed in {:?}",
            unpacked_at,
            recorded_at - unpacked_at,
            started.elapsed() - recorded_at
        );
        Ok(prepared)
    }

    /// Makes a prepared layer visible under its diff ID. When the layer already
    /// exists (another load committed it first) the prepared copy is discarded.
    pub fn commit(&self, mut prepared: PreparedLayer) -> Result<()> {
        let target = self.layer_dir(&prepared.meta.diff_id);
        if target.exists() {
            prepared.discard_in_background();
            return Ok(());
        }
        fs::rename(&prepared.dir, &target)
            .map_err(|e| crate::store::with_path(e, "rename", &prepared.dir))?;
        prepared.keep = true;
        crate::store::sync_dir(&self.layers)?;
        Ok(())
    }

    /// Writes a chain record (crash-safe).
    pub fn write_chain(&self, c: &ChainRecord) -> Result<()> {
        crate::store::write_json(&self.chain_file(&c.chain_id), c)?;
        Ok(())
    }

    /// Removes a chain record.
    pub fn remove_chain(&self, chain_id: &str) -> Result<()> {
        let p = self.chain_file(chain_id);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(crate::store::with_path(e, "remove", &p).into()),
        }
    }

    /// Takes a layer out of the store: renamed aside at once (so it is gone even if
    /// the daemon dies now), deleted by the caller later with [`remove_tree`].
    pub fn retire_layer(&self, diff_id: &str) -> Result<Option<PathBuf>> {
        let dir = self.layer_dir(diff_id);
        let aside = crate::store::temp_path(&self.layers.join("removed"));
        match fs::rename(&dir, &aside) {
            Ok(()) => Ok(Some(aside)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::store::with_path(e, "rename", &dir).into()),
        }
    }
}

/// A layer unpacked into a temporary directory; removed on drop unless committed.
pub struct PreparedLayer {
    dir: PathBuf,
    pub meta: LayerMeta,
    keep: bool,
}

impl PreparedLayer {
    /// Drops a copy that turned out to be redundant, deleting it on another thread:
    /// a large tree takes a while and nobody needs to wait for it (the name is a
    /// temporary one, swept at start should the daemon die first).
    fn discard_in_background(mut self) {
        self.keep = true;
        let dir = std::mem::take(&mut self.dir);
        let spawned = std::thread::Builder::new()
            .name("layer-cleanup".into())
            .spawn({
                let dir = dir.clone();
                move || remove_tree(&dir)
            });
        if spawned.is_err() {
            remove_tree(&dir);
        }
    }
}

impl Drop for PreparedLayer {
    fn drop(&mut self) {
        if !self.keep {
            remove_tree(&self.dir);
        }
    }
}

/// Deletes a directory tree, logging (not failing) on error: used for temporary
/// and retired trees, which the next start sweeps again.
pub fn remove_tree(dir: &Path) {
    if let Err(e) = crate::store::remove_dir_all_robust(dir) {
        tracing::warn!("could not remove {}: {e}", dir.display());
    }
}

/// Names in a directory (absent directory: none).
pub fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::store::with_path(e, "read directory", dir).into()),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| crate::store::with_path(e, "read directory", dir))?;
        if let Ok(name) = e.file_name().into_string() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Docker's `directory.Size`: the sizes of everything but directories, each inode
/// once.
pub fn dir_size(dir: &Path) -> Result<u64> {
    fn walk(dir: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) -> io::Result<()> {
        for e in fs::read_dir(dir)? {
            let e = e?;
            let m = e.metadata()?;
            if m.is_dir() {
                walk(&e.path(), seen, total)?;
                continue;
            }
            if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            *total += m.size();
        }
        Ok(())
    }
    let mut total = 0;
    walk(dir, &mut HashSet::new(), &mut total)
        .map_err(|e| crate::store::with_path(e, "measure", dir))?;
    Ok(total)
}

/// Tells ext4's inode allocator that each directory made in `dir` is the top of
/// a tree of its own (`chattr +T`), so that a new layer is spread to a block group
/// with free inodes instead of the group of the layers removed before it. Without
/// a journal, ext4 skips every inode freed in the last minutes when it allocates
/// one, and a layer unpacked where another was just removed scanned past them for
/// each file: several times slower. Other filesystems ignore the hint (or lack
/// the flag): nothing is lost then.
pub fn mark_top_of_trees(dir: &Path) {
    /// `FS_TOPDIR_FL` of `FS_IOC_GETFLAGS`/`FS_IOC_SETFLAGS`.
    const TOPDIR: libc::c_int = 0x0002_0000;
    let Ok(f) = fs::File::open(dir) else {
        return;
    };
    let mut flags: libc::c_int = 0;
    // SAFETY: the ioctls read and write one int through a valid pointer.
    unsafe {
        if libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) != 0 {
            return;
        }
        if flags & TOPDIR == 0 {
            flags |= TOPDIR;
            if libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) != 0 {
                tracing::debug!(
                    "cannot mark {} as a top of trees: {}",
                    dir.display(),
                    io::Error::last_os_error()
                );
            }
        }
    }
}

/// Flushes the filesystem holding `path`.
pub fn syncfs(path: &Path) -> Result<()> {
    let f = fs::File::open(path).map_err(|e| crate::store::with_path(e, "open", path))?;
    // SAFETY: plain syscall on an open fd.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        let e = io::Error::last_os_error();
        return Err(crate::store::with_path(e, "sync filesystem of", path).into());
    }
    Ok(())
}

/// How a stream is compressed, judged by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

/// Detects the compression of `r` and returns a reader of the uncompressed bytes.
/// xz and bzip2 are recognized and refused by name.
pub fn decompress<'a, R: Read + 'a>(
    mut r: R,
    what: &str,
) -> Result<(Compression, Box<dyn Read + 'a>)> {
    let mut head = Vec::with_capacity(6);
    while head.len() < 6 {
        let mut b = [0u8; 6];
        let want = 6 - head.len();
        match r.read(&mut b[..want]) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::invalid(format!("read {what}: {e}"))),
        }
    }
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else {
        Compression::None
    };
    let whole = io::Cursor::new(head).chain(r);
    let out: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(256 << 10, whole),
        )),
        Compression::Zstd => Box::new(
            zstd::Decoder::new(whole)
                .map_err(|e| Error::invalid(format!("read {what}: zstd: {e}")))?,
        ),
        Compression::Xz | Compression::Bzip2 => {
            let name = if kind == Compression::Xz {
                "xz"
            } else {
                "bzip2"
            };
            return Err(Error::invalid(format!(
                "{what} is {name}-compressed, which this daemon does not read; decompress it or use gzip or zstd"
            )));
        }
    };
    Ok((kind, out))
}
