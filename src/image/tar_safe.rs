//! Unpacking a layer tar into a directory without trusting the archive.
//!
//! Rules (each refusal names the entry and says why):
//! - Names are made relative to the layer root as Docker does (a leading `/` is
//!   dropped, `.` and empty components vanish); a `..` that would climb above the
//!   root is refused rather than clamped.
//! - Nothing is ever created through a symlink: every parent directory is opened
//!   component by component with `O_NOFOLLOW`, and a parent that is a symlink (or a
//!   file) refuses the entry. Symlink targets are stored as written; they resolve
//!   inside the container, never here.
//! - A hard link's target must already exist inside this layer, reached the same way.
//! - An entry that would replace a directory with a non-directory is refused.
//! - Layer whiteouts become what overlayfs understands: `.wh.NAME` is a character
//!   device 0/0 named `NAME`; `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its
//!   directory. Other `.wh..wh.` names (aufs bookkeeping) are dropped.
//! - Ownership, modes (with setuid/setgid/sticky), modification times, xattrs (except
//!   `trusted.overlay.*`, which only this code may set), device nodes and FIFOs are
//!   kept.
//!
//! While unpacking, the stream is hashed (the diff ID) and recorded for byte-exact
//! reassembly ([`super::tar_split`]).
//!
//! [`unpack_copy`] applies the same rules to `docker cp` into a container's
//! directory, with Docker's differences: `.wh.` names are plain files, an entry
//! replaces what is there unless `noOverwriteDirNonDir` forbids a directory to
//! become a non-directory or the reverse, owners may all be one user's, and a
//! relative symlink may not point above the destination.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use super::digest::Hasher;
use super::tar_split::{Seg, TarSplit};
use super::{Error, Result};

/// What unpacking a layer produced.
#[derive(Debug)]
pub struct Unpacked {
    /// `sha256:` of the uncompressed stream.
    pub diff_id: String,
    /// Length of the uncompressed stream.
    pub tar_size: u64,
    pub split: TarSplit,
    /// How many entries the stream held.
    pub entries: u64,
}

/// Extended attribute that marks an overlay directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";

/// Unpacks the (uncompressed) tar stream `input` into the existing empty directory
/// `root`. On error the directory holds a partial tree; the caller removes it.
pub fn unpack_layer<R: Read>(input: R, root: &Path) -> Result<Unpacked> {
    let state = Rc::new(RefCell::new(RecState::default()));
    let recorder = Recorder {
        inner: input,
        state: state.clone(),
    };
    let mut archive = tar::Archive::new(recorder);
    let mut x = Extractor::new(open_root(root)?, state.clone(), None);
    let count = x.extract_all(&mut archive)?;
    // The rest of the stream (end-of-archive blocks, anything after) belongs to the
    // diff ID and to the reassembled stream.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| read_error(&e, count))?;
    drop(rest);
    x.finish_dirs()?;
    drop(x);
    let st = Rc::try_unwrap(state)
        .map_err(|_| Error::internal("tar recorder still shared"))?
        .into_inner();
    let mut segs = st.segs;
    if !st.raw.is_empty() {
        segs.push(Seg::Raw(st.raw));
    }
    let tar_size = st.hasher.len();
    Ok(Unpacked {
        diff_id: st.hasher.finish(),
        tar_size,
        split: TarSplit { segs },
        entries: count,
    })
}

/// How [`unpack_copy`] writes into a container (`PUT /containers/{id}/archive`).
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// The destination as the container sees it (for messages).
    pub dest: String,
    /// Refuse to replace a directory with a non-directory, or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Every entry's owner (`copyUIDGID` with the container's user); `None` keeps
    /// the archive's.
    pub owner: Option<(u32, u32)>,
}

impl CopyOptions {
    /// The container path of entry `rel` (relative to the destination).
    fn path_of(&self, rel: &[u8]) -> String {
        let rel = String::from_utf8_lossy(rel);
        if self.dest.ends_with('/') {
            format!("{}{rel}", self.dest)
        } else {
            format!("{}/{rel}", self.dest)
        }
    }
}

/// Extracts the (uncompressed) tar stream `input` into the directory `dest` (an
/// open descriptor), as `docker cp` into a container does. Returns how many
/// entries were extracted. Like Docker's, extraction is not atomic: entries
/// written before an error stay.
pub fn unpack_copy<R: Read>(input: R, dest: OwnedFd, opts: CopyOptions) -> Result<u64> {
    let state = Rc::new(RefCell::new(RecState {
        off: true,
        ..RecState::default()
    }));
    let mut archive = tar::Archive::new(Recorder {
        inner: input,
        state: state.clone(),
    });
    let mut x = Extractor::new(dest, state, Some(opts));
    let count = x.extract_all(&mut archive)?;
    x.finish_dirs()?;
    Ok(count)
}

fn read_error(e: &io::Error, count: u64) -> Error {
    if count == 0 {
        Error::invalid(format!(
            "invalid tar archive: the input is not a tar archive ({e})"
        ))
    } else if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("entire block") {
        Error::invalid(format!(
            "invalid tar archive: unexpected end of data after {count} entries (truncated archive?)"
        ))
    } else {
        Error::invalid(format!("invalid tar archive after {count} entries: {e}"))
    }
}

/// Stream bookkeeping shared between the reader the tar parser pulls from and the
/// extractor: the hash, the position, and the bytes to replay on save.
#[derive(Default)]
struct RecState {
    /// Neither hash nor record (a copy into a container, not a layer).
    off: bool,
    hasher: Hasher,
    pos: u64,
    /// A file's content range, which is referenced instead of recorded.
    skip: Option<(u64, u64)>,
    raw: Vec<u8>,
    segs: Vec<Seg>,
}

struct Recorder<R> {
    inner: R,
    state: Rc<RefCell<RecState>>,
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let data = &buf[..n];
        let mut st = self.state.borrow_mut();
        if st.off {
            return Ok(n);
        }
        st.hasher.update(data);
        let start = st.pos;
        let end = start + n as u64;
        match st.skip {
            Some((s, e)) if start < e && end > s => {
                // Record only the parts outside the content range.
                if start < s {
                    let k = (s - start) as usize;
                    st.raw.extend_from_slice(&data[..k]);
                }
                if end > e {
                    let k = (e - start) as usize;
                    st.raw.extend_from_slice(&data[k..]);
                }
            }
            _ => st.raw.extend_from_slice(data),
        }
        st.pos = end;
        Ok(n)
    }
}

struct Extractor {
    root: Rc<OwnedFd>,
    /// Open parent directories by relative path (bounded; tar streams visit
    /// directories in order, so a small cache serves nearly every entry).
    dirs: HashMap<Vec<u8>, (Rc<OwnedFd>, bool)>,
    /// Which segment holds each regular file's content, so that a later entry that
    /// replaces the file can move its old content into the recipe first.
    file_segs: HashMap<Vec<u8>, usize>,
    /// Directory times are set last: creating entries inside changes them.
    dir_times: Vec<(Vec<u8>, Times)>,
    state: Rc<RefCell<RecState>>,
    buf: Vec<u8>,
    /// A copy into a container rather than a layer.
    copy: Option<CopyOptions>,
}

#[derive(Clone, Copy)]
struct Times {
    atime: libc::timespec,
    mtime: libc::timespec,
}

/// The metadata of one entry, gathered from its header and PAX records.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    times: Times,
    xattrs: Vec<(CString, Vec<u8>)>,
}

const MAX_CACHED_DIRS: usize = 128;

impl Extractor {
    fn new(root: OwnedFd, state: Rc<RefCell<RecState>>, copy: Option<CopyOptions>) -> Extractor {
        Extractor {
            root: Rc::new(root),
            dirs: HashMap::new(),
            file_segs: HashMap::new(),
            dir_times: Vec::new(),
            state,
            buf: vec![0u8; 256 << 10],
            copy,
        }
    }

    /// Extracts every entry of `archive`; returns how many there were.
    fn extract_all<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<u64> {
        let mut count = 0u64;
        let entries = archive
            .entries()
            .map_err(|e| Error::invalid(format!("invalid tar archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| read_error(&e, count))?;
            count += 1;
            self.extract(&mut entry)?;
        }
        Ok(count)
    }

    fn extract<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        let refuse = |why: &str| Error::invalid(format!("invalid tar entry {shown:?}: {why}"));
        let mut kind = entry.header().entry_type();
        if kind.as_byte() == 0 && raw_name.ends_with(b"/") {
            // Pre-POSIX archives mark directories with a trailing slash.
            kind = tar::EntryType::Directory;
        }
        match kind {
            tar::EntryType::XGlobalHeader => return Ok(()),
            tar::EntryType::__Nonexhaustive(b'V') => return Ok(()),
            tar::EntryType::GNUSparse => {
                return Err(refuse(
                    "sparse files are not supported; re-create the archive without --sparse",
                ));
            }
            _ => {}
        }
        let comps = normalize(&raw_name).map_err(|why| match &self.copy {
            // Docker's words for an entry that would leave the destination.
            Some(c) => Error::invalid(format!("{shown:?} is outside of {:?}", c.dest)),
            None => refuse(&why),
        })?;
        let Some((name, parents)) = comps.split_last() else {
            // The root itself ("./"): its metadata stays the layer's.
            if kind.is_dir() {
                return Ok(());
            }
            return Err(refuse("a non-directory cannot replace the layer root"));
        };
        let rel = comps.join(&b'/');
        let mut meta = self.meta(entry).map_err(|e| refuse(&e))?;
        if let Some((uid, gid)) = self.copy.as_ref().and_then(|c| c.owner) {
            meta.uid = uid;
            meta.gid = gid;
        }

        if self.copy.is_none() && name.starts_with(WHITEOUT_PREFIX) {
            let parent = self.parent(parents).map_err(|why| refuse(&why))?;
            if name.as_slice() == WHITEOUT_OPAQUE {
                return set_xattr_fd(parent.as_raw_fd(), OPAQUE_XATTR, b"y")
                    .map_err(|e| refuse(&format!("cannot mark the directory opaque: {e}")));
            }
            if name.starts_with(WHITEOUT_META_PREFIX) {
                return Ok(());
            }
            let target = &name[WHITEOUT_PREFIX.len()..];
            if target.is_empty() || target == b"." || target == b".." {
                return Err(refuse("whiteout without a name"));
            }
            let t = cstr(target).map_err(|why| refuse(&why))?;
            match mknod_at(parent.as_raw_fd(), &t, libc::S_IFCHR, 0) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    return Err(refuse("the layer both creates and whites out this path"));
                }
                Err(e) => return Err(refuse(&format!("cannot create the whiteout: {e}"))),
            }
            chown_at(parent.as_raw_fd(), &t, meta.uid, meta.gid)
                .map_err(|e| refuse(&format!("chown: {e}")))?;
            return Ok(());
        }

        let (parent, parent_setgid) = self.parent_with_mode(parents).map_err(|why| refuse(&why))?;
        let pfd = parent.as_raw_fd();
        let cname = cstr(name).map_err(|why| refuse(&why))?;
        // A new file of root's is already root's (unless the directory passes its
        // group on), and its creation mode stands unless the umask cut it or it
        // has special bits (which a chown clears): only then are chown and chmod
        // needed.
        let needs_chown = meta.uid != 0 || meta.gid != 0 || parent_setgid;
        let needs_chmod = meta.mode & 0o7000 != 0 || meta.mode & umask() != 0;

        match kind {
            tar::EntryType::Directory => {
                match mkdir_at(pfd, &cname, meta.mode & 0o777) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        // A directory again (metadata is updated below), or a
                        // non-directory a directory replaces.
                        if !self
                            .replace_existing(pfd, &cname, &rel, true)
                            .map_err(|e| refuse(&e))?
                        {
                            mkdir_at(pfd, &cname, meta.mode & 0o777)
                                .map_err(|e| refuse(&format!("mkdir: {e}")))?;
                        }
                    }
                    Err(e) => return Err(refuse(&format!("mkdir: {e}"))),
                }
                let dir = open_at(
                    pfd,
                    &cname,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                )
                .map_err(|e| refuse(&format!("open: {e}")))?;
                fchown(dir.as_raw_fd(), meta.uid, meta.gid)
                    .map_err(|e| refuse(&format!("chown: {e}")))?;
                fchmod(dir.as_raw_fd(), meta.mode).map_err(|e| refuse(&format!("chmod: {e}")))?;
                self.set_xattrs_fd(dir.as_raw_fd(), &meta.xattrs)
                    .map_err(|e| refuse(&e))?;
                // Its entries usually follow: keep it open for them.
                self.cache_dir(rel.clone(), Rc::new(dir), meta.mode & 0o2000 != 0);
                self.dir_times.push((rel, meta.times));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
                let fd = match open_at_mode(pfd, &cname, flags, meta.mode & 0o777) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        self.replace_existing(pfd, &cname, &rel, false)
                            .map_err(|e| refuse(&e))?;
                        open_at_mode(pfd, &cname, flags, meta.mode & 0o777)
                            .map_err(|e| refuse(&format!("create: {e}")))?
                    }
                    Err(e) => return Err(refuse(&format!("create: {e}"))),
                };
                let mut file = File::from(fd);
                let size = entry.size();
                // A layer's recipe references the content instead of keeping it (a
                // copy into a container keeps no recipe).
                if size > 0 && self.copy.is_none() {
                    let start = entry.raw_file_position();
                    let mut st = self.state.borrow_mut();
                    let raw = std::mem::take(&mut st.raw);
                    st.segs.push(Seg::Raw(raw));
                    st.segs.push(Seg::File {
                        path: rel.clone(),
                        size,
                    });
                    let idx = st.segs.len() - 1;
                    st.skip = Some((start, start + size));
                    drop(st);
                    self.file_segs.insert(rel.clone(), idx);
                }
                let mut copied = 0u64;
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(Error::invalid(format!(
                                "invalid tar archive: reading the content of {shown:?}: {e}"
                            )));
                        }
                    };
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n]).map_err(|e| {
                        Error::internal(format!(
                            "write {shown:?} into the layer: {}",
                            crate::store::strip_os_suffix(&e)
                        ))
                    })?;
                    copied += n as u64;
                }
                self.state.borrow_mut().skip = None;
                if copied != size {
                    return Err(Error::invalid(format!(
                        "invalid tar archive: unexpected end of data in the content of {shown:?} ({copied} of {size} bytes; truncated archive?)"
                    )));
                }
                let fd = file.as_raw_fd();
                if needs_chown {
                    fchown(fd, meta.uid, meta.gid).map_err(|e| refuse(&format!("chown: {e}")))?;
                }
                if needs_chmod {
                    fchmod(fd, meta.mode).map_err(|e| refuse(&format!("chmod: {e}")))?;
                }
                self.set_xattrs_fd(fd, &meta.xattrs)
                    .map_err(|e| refuse(&e))?;
                futimens(fd, meta.times).map_err(|e| refuse(&format!("set times: {e}")))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse("symlink without a target"))?
                    .into_owned();
                let t = cstr(&target).map_err(|why| refuse(&why))?;
                if let Some(c) = &self.copy
                    && !target.starts_with(b"/")
                {
                    // As Docker: a relative target may not climb above the
                    // destination (it resolves inside the container either way).
                    let mut joined = parents.join(&b'/');
                    joined.push(b'/');
                    joined.extend_from_slice(&target);
                    if normalize(&joined).is_err() {
                        return Err(Error::invalid(format!(
                            "invalid symlink {:?} -> {:?}",
                            c.path_of(&rel),
                            String::from_utf8_lossy(&target)
                        )));
                    }
                }
                let symlink = || -> io::Result<()> {
                    // SAFETY: valid C strings and an open directory fd.
                    if unsafe { libc::symlinkat(t.as_ptr(), pfd, cname.as_ptr()) } != 0 {
                        return Err(os_err());
                    }
                    Ok(())
                };
                match symlink() {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        self.replace_existing(pfd, &cname, &rel, false)
                            .map_err(|e| refuse(&e))?;
                        symlink().map_err(|e| refuse(&format!("symlink: {e}")))?;
                    }
                    Err(e) => return Err(refuse(&format!("symlink: {e}"))),
                }
                if needs_chown {
                    chown_at(pfd, &cname, meta.uid, meta.gid)
                        .map_err(|e| refuse(&format!("chown: {e}")))?;
                }
                self.set_xattrs_at(pfd, &cname, &meta.xattrs)
                    .map_err(|e| refuse(&e))?;
                utimens_at(pfd, &cname, meta.times)
                    .map_err(|e| refuse(&format!("set times: {e}")))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse("hard link without a target"))?
                    .into_owned();
                let tshown = String::from_utf8_lossy(&target).into_owned();
                let tcomps = normalize(&target).map_err(|why| match &self.copy {
                    Some(c) => Error::invalid(format!(
                        "invalid hardlink {:?} -> {tshown:?}",
                        c.path_of(&rel)
                    )),
                    None => refuse(&format!("hard link target {tshown:?}: {why}")),
                })?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(refuse("hard link to the layer root"));
                };
                let scope = self.scope();
                let tparent = self.existing_parent(tparents).map_err(|why| {
                    if why.ends_with("does not exist in this layer") {
                        refuse(&format!("hard link target {tshown:?} is not in {scope}"))
                    } else {
                        refuse(&format!(
                            "hard link target {tshown:?} is outside {scope}: {why}"
                        ))
                    }
                })?;
                let tc = cstr(tname).map_err(|why| refuse(&why))?;
                match lstat_at(tparent.as_raw_fd(), &tc) {
                    None => {
                        return Err(refuse(&format!(
                            "hard link target {tshown:?} is not in {scope}"
                        )));
                    }
                    Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                        return Err(refuse(&format!(
                            "hard link target {tshown:?} is a directory"
                        )));
                    }
                    Some(_) => {}
                }
                if tcomps == comps {
                    // A link to itself: the file is already there.
                    return Ok(());
                }
                let link = || -> io::Result<()> {
                    // SAFETY: valid C strings and open directory fds; flags 0 never follows.
                    if unsafe {
                        libc::linkat(tparent.as_raw_fd(), tc.as_ptr(), pfd, cname.as_ptr(), 0)
                    } != 0
                    {
                        return Err(os_err());
                    }
                    Ok(())
                };
                match link() {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        self.replace_existing(pfd, &cname, &rel, false)
                            .map_err(|e| refuse(&e))?;
                        link().map_err(|e| refuse(&format!("hard link: {e}")))?;
                    }
                    Err(e) => return Err(refuse(&format!("hard link: {e}"))),
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let fmt = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let dev = libc::makedev(major, minor);
                match mknod_at(pfd, &cname, fmt, dev) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        self.replace_existing(pfd, &cname, &rel, false)
                            .map_err(|e| refuse(&e))?;
                        mknod_at(pfd, &cname, fmt, dev)
                            .map_err(|e| refuse(&format!("mknod: {e}")))?;
                    }
                    Err(e) => return Err(refuse(&format!("mknod: {e}"))),
                }
                chown_at(pfd, &cname, meta.uid, meta.gid)
                    .map_err(|e| refuse(&format!("chown: {e}")))?;
                chmod_at(pfd, &cname, meta.mode).map_err(|e| refuse(&format!("chmod: {e}")))?;
                self.set_xattrs_at(pfd, &cname, &meta.xattrs)
                    .map_err(|e| refuse(&e))?;
                utimens_at(pfd, &cname, meta.times)
                    .map_err(|e| refuse(&format!("set times: {e}")))?;
            }
            other => {
                return Err(refuse(&format!(
                    "unsupported entry type {:?}",
                    other.as_byte() as char
                )));
            }
        }
        Ok(())
    }

    /// Deals with an existing entry at the path of a new one. A directory stays
    /// when the new entry is one too (returns true: nothing to create) and refuses
    /// a non-directory; anything else is removed, its content first moved into the
    /// recipe.
    fn replace_existing(
        &mut self,
        pfd: RawFd,
        name: &CString,
        rel: &[u8],
        new_is_dir: bool,
    ) -> std::result::Result<bool, String> {
        let Some(st) = lstat_at(pfd, name) else {
            return Ok(false);
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir && new_is_dir {
            return Ok(true);
        }
        if let Some(c) = &self.copy {
            if c.no_overwrite_dir_non_dir && is_dir != new_is_dir {
                let (old, new) = if is_dir {
                    ("directory", "non-directory")
                } else {
                    ("non-directory", "directory")
                };
                return Err(format!(
                    "cannot overwrite {old} {:?} with {new} {:?}",
                    c.path_of(rel),
                    c.dest
                ));
            }
            if is_dir {
                // Replaced whole, as Docker does; open descriptors below it go.
                self.dirs.clear();
                std::fs::remove_dir_all(std::ffi::OsStr::from_bytes(
                    proc_path(pfd, name).as_bytes(),
                ))
                .map_err(|e| format!("cannot replace the directory: {e}"))?;
                return Ok(false);
            }
        } else if is_dir {
            return Err("a later entry would replace a directory with a non-directory".to_string());
        }
        self.spill(rel, pfd, name).map_err(|e| e.to_string())?;
        unlink_at(pfd, name, false)
            .map_err(|e| format!("cannot replace the earlier entry: {e}"))?;
        Ok(false)
    }

    /// What entries are confined to, for messages.
    fn scope(&self) -> &'static str {
        if self.copy.is_some() {
            "the destination directory"
        } else {
            "this layer"
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> std::result::Result<Meta, String> {
        let h = entry.header();
        let old = h.as_old();
        // Like Go's archive/tar, an empty numeric field reads as zero.
        let uid = or_zero_if_blank(h.uid(), &old.uid).map_err(|e| format!("bad uid: {e}"))?;
        let gid = or_zero_if_blank(h.gid(), &old.gid).map_err(|e| format!("bad gid: {e}"))?;
        let uid = u32::try_from(uid).map_err(|_| format!("uid {uid} out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| format!("gid {gid} out of range"))?;
        let mode = or_zero_if_blank(h.mode().map(u64::from), &old.mode)
            .map_err(|e| format!("bad mode: {e}"))? as u32
            & 0o7777;
        let mtime_s =
            or_zero_if_blank(h.mtime(), &old.mtime).map_err(|e| format!("bad mtime: {e}"))?;
        let mut mtime = ts(mtime_s as i64, 0);
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                let Ok(key) = ext.key() else { continue };
                if key == "mtime" {
                    if let Some(t) = ext.value().ok().and_then(parse_pax_time) {
                        mtime = t;
                    }
                } else if key == "atime" {
                    atime = ext.value().ok().and_then(parse_pax_time);
                } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    if name.starts_with("trusted.overlay.") {
                        tracing::debug!(
                            "dropping xattr {name} from a layer entry: reserved for overlay"
                        );
                        continue;
                    }
                    let cname =
                        CString::new(name).map_err(|_| format!("bad xattr name {name:?}"))?;
                    xattrs.push((cname, ext.value_bytes().to_vec()));
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            times: Times {
                atime: atime.unwrap_or(mtime),
                mtime,
            },
            xattrs,
        })
    }

    /// The parent directory of an entry, creating missing directories (0755, root)
    /// as Docker does, never passing through a symlink.
    fn parent(&mut self, comps: &[Vec<u8>]) -> std::result::Result<Rc<OwnedFd>, String> {
        self.walk(comps, true).map(|(fd, _)| fd)
    }

    /// [`Self::parent`], and whether the directory has the set-group-ID bit (new
    /// entries then take its group).
    fn parent_with_mode(
        &mut self,
        comps: &[Vec<u8>],
    ) -> std::result::Result<(Rc<OwnedFd>, bool), String> {
        self.walk(comps, true)
    }

    /// Like [`Self::parent`], but only through directories that exist.
    fn existing_parent(&mut self, comps: &[Vec<u8>]) -> std::result::Result<Rc<OwnedFd>, String> {
        self.walk(comps, false).map(|(fd, _)| fd)
    }

    fn cache_dir(&mut self, key: Vec<u8>, fd: Rc<OwnedFd>, setgid: bool) {
        if self.dirs.len() >= MAX_CACHED_DIRS {
            self.dirs.clear();
        }
        self.dirs.insert(key, (fd, setgid));
    }

    fn walk(
        &mut self,
        comps: &[Vec<u8>],
        create: bool,
    ) -> std::result::Result<(Rc<OwnedFd>, bool), String> {
        if comps.is_empty() {
            return Ok((self.root.clone(), false));
        }
        let key = comps.join(&b'/');
        if let Some((fd, sgid)) = self.dirs.get(&key) {
            return Ok((fd.clone(), *sgid));
        }
        // Start from the nearest directory already open.
        let mut start = 0;
        let mut base = self.root.clone();
        for i in (1..comps.len()).rev() {
            if let Some((fd, _)) = self.dirs.get(&comps[..i].join(&b'/')) {
                base = fd.clone();
                start = i;
                break;
            }
        }
        let fd = Rc::new(walk_dirs(&base, &comps[start..], create, &comps[..start])?);
        let sgid = fstat(fd.as_raw_fd()).is_some_and(|st| st.st_mode & libc::S_ISGID != 0);
        self.cache_dir(key, fd.clone(), sgid);
        Ok((fd, sgid))
    }

    /// Before a regular file is replaced, its content moves into the recipe (its
    /// recorded reference would otherwise point at the replacement).
    fn spill(&mut self, rel: &[u8], pfd: RawFd, name: &CString) -> Result<()> {
        let Some(idx) = self.file_segs.remove(rel) else {
            return Ok(());
        };
        let fd = open_at(pfd, name, libc::O_RDONLY | libc::O_NOFOLLOW).map_err(|e| {
            Error::internal(format!("reopen {}: {e}", String::from_utf8_lossy(rel)))
        })?;
        let mut content = Vec::new();
        File::from(fd)
            .read_to_end(&mut content)
            .map_err(|e| Error::internal(format!("read {}: {e}", String::from_utf8_lossy(rel))))?;
        self.state.borrow_mut().segs[idx] = Seg::Raw(content);
        Ok(())
    }

    fn set_xattrs_fd(
        &self,
        fd: RawFd,
        xattrs: &[(CString, Vec<u8>)],
    ) -> std::result::Result<(), String> {
        for (k, v) in xattrs {
            // SAFETY: valid fd, C string and buffer.
            let r = unsafe { libc::fsetxattr(fd, k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
            xattr_result(r, k)?;
        }
        Ok(())
    }

    fn set_xattrs_at(
        &self,
        pfd: RawFd,
        name: &CString,
        xattrs: &[(CString, Vec<u8>)],
    ) -> std::result::Result<(), String> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let path = proc_path(pfd, name);
        for (k, v) in xattrs {
            // SAFETY: valid C strings and buffer; lsetxattr does not follow the last component.
            let r = unsafe {
                libc::lsetxattr(path.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0)
            };
            xattr_result(r, k)?;
        }
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<()> {
        let times = std::mem::take(&mut self.dir_times);
        for (rel, t) in times.iter().rev() {
            let comps: Vec<Vec<u8>> = rel.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
            let Some((name, parents)) = comps.split_last() else {
                continue;
            };
            let shown = String::from_utf8_lossy(rel).into_owned();
            let parent = self
                .existing_parent(parents)
                .map_err(|e| Error::internal(format!("set times of {shown}: {e}")))?;
            let pfd = parent.as_raw_fd();
            let c = cstr(name).map_err(Error::invalid)?;
            utimens_at(pfd, &c, *t)
                .map_err(|e| Error::internal(format!("set times of {shown}: {e}")))?;
        }
        Ok(())
    }
}

fn or_zero_if_blank(v: io::Result<u64>, field: &[u8]) -> io::Result<u64> {
    match v {
        Err(_) if field.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        other => other,
    }
}

fn xattr_result(r: libc::c_int, key: &CString) -> std::result::Result<(), String> {
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // Docker ignores these too: not every filesystem takes every namespace.
        Some(libc::ENOTSUP) | Some(libc::EPERM) => {
            tracing::warn!(
                "ignoring xattr {} of a layer entry: {e}",
                key.to_string_lossy()
            );
            Ok(())
        }
        _ => Err(format!(
            "set xattr {}: {}",
            key.to_string_lossy(),
            crate::store::strip_os_suffix(&e)
        )),
    }
}

/// Splits a tar name into components relative to the layer root.
pub fn normalize(name: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("path climbs above the layer root".to_string());
                }
            }
            c => {
                if c.contains(&0) {
                    return Err("name contains a NUL byte".to_string());
                }
                out.push(c.to_vec());
            }
        }
    }
    Ok(out)
}

/// Opens `comps` below `root` one directory at a time, never following a symlink.
fn walk_dirs(
    root: &OwnedFd,
    comps: &[Vec<u8>],
    create: bool,
    prefix: &[Vec<u8>],
) -> std::result::Result<OwnedFd, String> {
    let mut cur: Option<OwnedFd> = None;
    for (i, c) in comps.iter().enumerate() {
        let at = cur.as_ref().map_or(root.as_raw_fd(), |f| f.as_raw_fd());
        let cname = cstr(c)?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let shown = || {
            let mut all = prefix.to_vec();
            all.extend_from_slice(&comps[..=i]);
            String::from_utf8_lossy(&all.join(&b'/')).into_owned()
        };
        let fd = match open_at(at, &cname, flags) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                match mkdir_at(at, &cname, 0o755) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(format!("mkdir {}: {e}", shown())),
                }
                open_at(at, &cname, flags).map_err(|e| format!("open {}: {e}", shown()))?
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(format!("{} does not exist in this layer", shown()));
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                let is_link = lstat_at(at, &cname)
                    .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK);
                if is_link {
                    return Err(format!(
                        "parent path runs through the symlink {}, which is not followed",
                        shown()
                    ));
                }
                return Err(format!("parent {} is not a directory", shown()));
            }
            Err(e) => return Err(format!("open {}: {e}", shown())),
        };
        cur = Some(fd);
    }
    cur.ok_or_else(|| "empty path".to_string())
}

/// Opens a layer root directory (no symlink at the last component).
pub fn open_root(root: &Path) -> Result<OwnedFd> {
    let c = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| Error::internal(format!("path {} contains a NUL byte", root.display())))?;
    // SAFETY: valid C string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(Error::internal(
            crate::store::with_path(e, "open", root).to_string(),
        ));
    }
    // SAFETY: fd was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the regular file at relative path `rel` below `root`, never following a
/// symlink on the way.
pub fn open_file_beneath(root: &OwnedFd, rel: &[u8]) -> io::Result<File> {
    let comps = normalize(rel).map_err(io::Error::other)?;
    let Some((name, parents)) = comps.split_last() else {
        return Err(io::Error::other("empty path"));
    };
    let parent;
    let pfd = if parents.is_empty() {
        root.as_raw_fd()
    } else {
        parent = walk_dirs(root, parents, false, &[]).map_err(io::Error::other)?;
        parent.as_raw_fd()
    };
    let c = cstr(name).map_err(io::Error::other)?;
    open_at(pfd, &c, libc::O_RDONLY | libc::O_NOFOLLOW).map(File::from)
}

fn cstr(b: &[u8]) -> std::result::Result<CString, String> {
    CString::new(b).map_err(|_| "name contains a NUL byte".to_string())
}

fn os_err() -> io::Error {
    io::Error::last_os_error()
}

/// `/proc/self/fd/<dirfd>/<name>`: a path for the few calls that have no `*at` form.
fn proc_path(dirfd: RawFd, name: &CString) -> CString {
    let mut p = format!("/proc/self/fd/{dirfd}/").into_bytes();
    p.extend_from_slice(name.as_bytes());
    CString::new(p).unwrap_or_default()
}

pub(crate) fn open_at(dirfd: RawFd, name: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    open_at_mode(dirfd, name, flags, 0o600)
}

/// `openat` with the creation mode (before the umask) for `O_CREAT`.
pub(crate) fn open_at_mode(
    dirfd: RawFd,
    name: &CString,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: valid C string; the mode argument is read only with O_CREAT.
    let fd = unsafe {
        libc::openat(
            dirfd,
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(os_err());
    }
    // SAFETY: fd was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: RawFd) -> Option<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

/// The process umask, read once from `/proc/self/status` (setting it to read it
/// would race with other threads). Unknown: assume every bit, so modes are always
/// set explicitly.
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o777)
    })
}

pub(crate) fn lstat_at(dirfd: RawFd, name: &CString) -> Option<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    let r = unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    (r == 0).then_some(st)
}

fn mkdir_at(dirfd: RawFd, name: &CString, mode: u32) -> io::Result<()> {
    // SAFETY: valid C string.
    if unsafe { libc::mkdirat(dirfd, name.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(os_err());
    }
    Ok(())
}

fn mknod_at(dirfd: RawFd, name: &CString, fmt: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    // SAFETY: valid C string.
    if unsafe { libc::mknodat(dirfd, name.as_ptr(), fmt | 0o600, dev) } != 0 {
        return Err(os_err());
    }
    Ok(())
}

fn unlink_at(dirfd: RawFd, name: &CString, dir: bool) -> io::Result<()> {
    let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid C string.
    if unsafe { libc::unlinkat(dirfd, name.as_ptr(), flags) } != 0 {
        return Err(os_err());
    }
    Ok(())
}

fn chown_at(dirfd: RawFd, name: &CString, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid C string.
    if unsafe { libc::fchownat(dirfd, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(os_err());
    }
    Ok(())
}

fn chmod_at(dirfd: RawFd, name: &CString, mode: u32) -> io::Result<()> {
    // Only ever called for non-symlinks, which fchmodat does not follow anyway.
    // SAFETY: valid C string.
    if unsafe { libc::fchmodat(dirfd, name.as_ptr(), mode as libc::mode_t, 0) } != 0 {
        return Err(os_err());
    }
    Ok(())
}

fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall on an open fd.
    if unsafe { libc::fchown(fd, uid, gid) } != 0 {
        return Err(os_err());
    }
    Ok(())
}

fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on an open fd.
    if unsafe { libc::fchmod(fd, mode as libc::mode_t) } != 0 {
        return Err(os_err());
    }
    Ok(())
}

fn futimens(fd: RawFd, t: Times) -> io::Result<()> {
    let times = [t.atime, t.mtime];
    // SAFETY: valid fd and a two-element array.
    if unsafe { libc::futimens(fd, times.as_ptr()) } != 0 {
        return Err(os_err());
    }
    Ok(())
}

fn utimens_at(dirfd: RawFd, name: &CString, t: Times) -> io::Result<()> {
    let times = [t.atime, t.mtime];
    // SAFETY: valid C string and a two-element array.
    if unsafe {
        libc::utimensat(
            dirfd,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(os_err());
    }
    Ok(())
}

/// Sets an xattr on an open file or directory.
pub fn set_xattr_fd(fd: RawFd, name: &str, value: &[u8]) -> io::Result<()> {
    let k = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: valid fd, C string and buffer.
    if unsafe { libc::fsetxattr(fd, k.as_ptr(), value.as_ptr().cast(), value.len(), 0) } != 0 {
        return Err(os_err());
    }
    Ok(())
}

fn ts(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    }
}

/// PAX times: `1700000000.123456789` (fraction optional, may be negative).
fn parse_pax_time(v: &str) -> Option<libc::timespec> {
    let (neg, v) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let (s, f) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = s.parse().ok()?;
    let mut frac = f.chars().take(9).collect::<String>();
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    while frac.len() < 9 {
        frac.push('0');
    }
    let nanos: i64 = frac.parse().ok()?;
    if neg {
        if nanos == 0 {
            Some(ts(-secs, 0))
        } else {
            Some(ts(-secs - 1, 1_000_000_000 - nanos))
        }
    } else {
        Some(ts(secs, nanos))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// A tar entry with any name and link target (the tar crate's builder refuses
    /// hostile names, which these tests need).
    pub(crate) fn entry(name: &str, kind: u8, data: &[u8], link: &str, mode: u32) -> Vec<u8> {
        entry_owned(name, kind, data, link, mode, 1000, 1001)
    }

    fn entry_owned(
        name: &str,
        kind: u8,
        data: &[u8],
        link: &str,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    pub(crate) fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut t: Vec<u8> = entries.concat();
        t.extend_from_slice(&[0u8; 1024]);
        t
    }

    fn unpack(t: &[u8]) -> (tempfile::TempDir, Result<Unpacked>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let r = unpack_layer(t, &root);
        (dir, r)
    }

    fn reassembled(dir: &Path, split: &TarSplit) -> Vec<u8> {
        let mut out = Vec::new();
        split.reassemble(&dir.join("root"), &mut out).unwrap();
        out
    }

    #[test]
    fn unpacks_every_kind_and_reassembles_exactly() {
        let t = tar_of(&[
            entry("./", b'5', b"", "", 0o755),
            entry("etc/", b'5', b"", "", 0o750),
            entry(
                "etc/passwd",
                b'0',
                b"root:x:0:0::/root:/bin/sh\n",
                "",
                0o644,
            ),
            entry("/bin/busybox", b'0', &[7u8; 3000], "", 0o4755),
            entry("bin/sh", b'2', b"", "busybox", 0o777),
            entry("bin/ash", b'1', b"", "bin/busybox", 0o755),
            entry("run/fifo", b'6', b"", "", 0o600),
            entry("gone/.wh.old", b'0', b"", "", 0o644),
            entry("op/.wh..wh..opq", b'0', b"", "", 0o644),
            entry("op/.wh..wh.plnk", b'0', b"", "", 0o644),
            entry("abs", b'2', b"", "/etc/passwd", 0o777),
        ]);
        let (dir, r) = unpack(&t);
        let u = r.unwrap();
        let root = dir.path().join("root");
        assert_eq!(u.diff_id, crate::image::digest::sha256_of(&t));
        assert_eq!(u.tar_size, t.len() as u64);
        let m = std::fs::metadata(root.join("bin/busybox")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755);
        assert_eq!((m.uid(), m.gid()), (1000, 1001));
        assert_eq!(m.mtime(), 1_600_000_000);
        assert_eq!(m.nlink(), 2);
        assert_eq!(
            std::fs::read_link(root.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(
            std::fs::read_link(root.join("abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(
            std::fs::symlink_metadata(root.join("run/fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let wh = std::fs::symlink_metadata(root.join("gone/old")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!root.join("gone/.wh.old").exists());
        assert_eq!(
            crate::image::rootfs::get_xattr(&root.join("op"), OPAQUE_XATTR).as_deref(),
            Some(&b"y"[..])
        );
        assert!(!root.join("op/.wh..wh..opq").exists());
        assert!(!root.join("op/.wh..wh.plnk").exists());
        assert_eq!(
            std::fs::metadata(root.join("etc")).unwrap().mode() & 0o777,
            0o750
        );
        assert_eq!(
            std::fs::metadata(root.join("etc")).unwrap().mtime(),
            1_600_000_000
        );
        assert_eq!(reassembled(dir.path(), &u.split), t);
    }

    #[test]
    fn owners_and_modes_are_exact_whatever_the_shortcuts() {
        let t = tar_of(&[
            entry_owned("g/", b'5', b"", "", 0o2775, 0, 1001),
            entry_owned("g/root-file", b'0', b"x", "", 0o644, 0, 0),
            entry_owned("g/link", b'2', b"", "root-file", 0o777, 0, 0),
            entry_owned("open", b'0', b"x", "", 0o777, 0, 0),
            entry_owned("suid", b'0', b"x", "", 0o4755, 0, 0),
            entry_owned("users", b'0', b"x", "", 0o640, 5, 6),
        ]);
        let (dir, r) = unpack(&t);
        r.unwrap();
        let root = dir.path().join("root");
        let m = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!((m("g").mode() & 0o7777, m("g").gid()), (0o2775, 1001));
        assert_eq!((m("g/root-file").uid(), m("g/root-file").gid()), (0, 0));
        assert_eq!((m("g/link").uid(), m("g/link").gid()), (0, 0));
        assert_eq!(m("g/root-file").mode() & 0o7777, 0o644);
        assert_eq!(m("open").mode() & 0o7777, 0o777);
        assert_eq!(m("suid").mode() & 0o7777, 0o4755);
        assert_eq!(
            (
                m("users").uid(),
                m("users").gid(),
                m("users").mode() & 0o7777
            ),
            (5, 6, 0o640)
        );
    }

    #[test]
    fn a_replaced_file_still_reassembles() {
        let t = tar_of(&[
            entry("a", b'0', b"first version", "", 0o644),
            entry("a", b'0', b"second", "", 0o644),
            entry("b", b'0', b"bee", "", 0o644),
            entry("b", b'2', b"", "a", 0o777),
        ]);
        let (dir, r) = unpack(&t);
        let u = r.unwrap();
        assert_eq!(std::fs::read(dir.path().join("root/a")).unwrap(), b"second");
        assert_eq!(reassembled(dir.path(), &u.split), t);
    }

    fn refused(t: &[u8], what: &str) {
        let (dir, r) = unpack(t);
        let e = r.expect_err("must be refused").to_string();
        assert!(e.contains(what), "{e:?} should mention {what:?}");
        // Nothing escaped the layer root.
        let outside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(outside.len(), 1, "only the layer root may exist");
    }

    #[test]
    fn refuses_hostile_entries() {
        refused(
            &tar_of(&[entry("../evil", b'0', b"x", "", 0o644)]),
            "climbs above the layer root",
        );
        refused(
            &tar_of(&[entry("a/../../evil", b'0', b"x", "", 0o644)]),
            "climbs above",
        );
        refused(
            &tar_of(&[
                entry("link", b'2', b"", "..", 0o777),
                entry("link/evil", b'0', b"x", "", 0o644),
            ]),
            "symlink",
        );
        refused(
            &tar_of(&[
                entry("link", b'2', b"", "/tmp", 0o777),
                entry("link/x/evil", b'0', b"x", "", 0o644),
            ]),
            "symlink",
        );
        refused(
            &tar_of(&[entry("h", b'1', b"", "../../etc/passwd", 0o644)]),
            "climbs above",
        );
        refused(
            &tar_of(&[entry("h", b'1', b"", "/etc/passwd", 0o644)]),
            "not in this layer",
        );
        refused(
            &tar_of(&[
                entry("l", b'2', b"", "/etc", 0o777),
                entry("h", b'1', b"", "l/passwd", 0o644),
            ]),
            "symlink",
        );
        refused(
            &tar_of(&[
                entry("d/", b'5', b"", "", 0o755),
                entry("d", b'0', b"x", "", 0o644),
            ]),
            "replace a directory",
        );
        refused(
            &tar_of(&[
                entry("d/", b'5', b"", "", 0o755),
                entry("d", b'2', b"", "x", 0o777),
            ]),
            "replace a directory",
        );
        refused(
            &tar_of(&[
                entry("f", b'0', b"x", "", 0o644),
                entry("f/g", b'0', b"x", "", 0o644),
            ]),
            "not a directory",
        );
    }

    #[test]
    fn refuses_broken_streams() {
        let t = tar_of(&[entry("big", b'0', &[1u8; 5000], "", 0o644)]);
        refused(&t[..3000], "truncated");
        refused(b"this is not a tar archive at all, just some words", "tar");
        let mut garbage = vec![0x41u8; 4096];
        garbage[0] = 1;
        refused(&garbage, "invalid tar archive");
    }

    #[test]
    fn names_are_made_relative() {
        let n = |s: &str| {
            normalize(s.as_bytes()).map(|v| {
                v.iter()
                    .map(|c| String::from_utf8(c.clone()).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(n("/etc/passwd").unwrap(), vec!["etc", "passwd"]);
        assert_eq!(n("./a//b/./c/").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(n("a/../b").unwrap(), vec!["b"]);
        assert!(n("../x").is_err());
        assert!(n("a/../../x").is_err());
        assert!(n("/../x").is_err());
        assert_eq!(n("./").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time("1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1700000000, 500000000));
        let t = parse_pax_time("-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750000000));
        assert!(parse_pax_time("x").is_none());
    }
}

#[cfg(test)]
mod copy_tests {
    use super::tests::{entry, tar_of};
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn copy(t: &[u8], dir: &Path, opts: CopyOptions) -> Result<u64> {
        unpack_copy(t, open_root(dir).unwrap(), opts)
    }

    fn opts(no_overwrite: bool) -> CopyOptions {
        CopyOptions {
            dest: "/tmp/d".into(),
            no_overwrite_dir_non_dir: no_overwrite,
            owner: None,
        }
    }

    #[test]
    fn copies_replace_as_docker_unless_told_not_to() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("x/inner")).unwrap();
        std::fs::write(dir.path().join("f"), "old").unwrap();
        let t = tar_of(&[entry("x", b'0', b"file", "", 0o644)]);
        let e = copy(&t, dir.path(), opts(true)).unwrap_err().to_string();
        assert!(
            e.contains(r#"cannot overwrite directory "/tmp/d/x" with non-directory "/tmp/d""#),
            "{e}"
        );
        let t2 = tar_of(&[entry("f/", b'5', b"", "", 0o755)]);
        let e = copy(&t2, dir.path(), opts(true)).unwrap_err().to_string();
        assert!(
            e.contains(r#"cannot overwrite non-directory "/tmp/d/f" with directory "/tmp/d""#),
            "{e}"
        );
        // A file over a file is always allowed.
        let t3 = tar_of(&[entry("f", b'0', b"new", "", 0o644)]);
        copy(&t3, dir.path(), opts(true)).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"new");
        // Allowed: the directory goes, the file goes.
        copy(&t, dir.path(), opts(false)).unwrap();
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"file");
        copy(&t2, dir.path(), opts(false)).unwrap();
        assert!(dir.path().join("f").is_dir());
    }

    #[test]
    fn copies_keep_whiteout_names_and_can_take_one_owner() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[
            entry(".wh.gone", b'0', b"", "", 0o600),
            entry("sub/f", b'0', b"x", "", 0o640),
        ]);
        let o = CopyOptions {
            owner: Some((4242, 4343)),
            ..opts(true)
        };
        assert_eq!(copy(&t, dir.path(), o).unwrap(), 2);
        assert!(dir.path().join(".wh.gone").is_file());
        let m = std::fs::metadata(dir.path().join("sub/f")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (4242, 4343, 0o640));
    }

    #[test]
    fn copies_refuse_what_leaves_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[entry("../evil", b'0', b"x", "", 0o644)]);
        let e = copy(&t, dir.path(), opts(true)).unwrap_err().to_string();
        assert!(e.contains(r#""../evil" is outside of "/tmp/d""#), "{e}");
        let t = tar_of(&[entry("a/l", b'2', b"", "../../x", 0o777)]);
        let e = copy(&t, dir.path(), opts(true)).unwrap_err().to_string();
        assert!(
            e.contains(r#"invalid symlink "/tmp/d/a/l" -> "../../x""#),
            "{e}"
        );
        // Inside, or absolute (resolved in the container): kept as written.
        let t = tar_of(&[
            entry("a/in", b'2', b"", "../x", 0o777),
            entry("a/abs", b'2', b"", "/etc/passwd", 0o777),
        ]);
        copy(&t, dir.path(), opts(true)).unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join("a/abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(!dir.path().parent().unwrap().join("evil").exists());
        let t = tar_of(&[entry("h", b'1', b"", "../../etc/passwd", 0o644)]);
        let e = copy(&t, dir.path(), opts(true)).unwrap_err().to_string();
        assert!(
            e.contains(r#"invalid hardlink "/tmp/d/h" -> "../../etc/passwd""#),
            "{e}"
        );
        // A directory replaced whole goes with what is in it, never through a
        // symlink in it.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("gone")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("gone/out")).unwrap();
        copy(
            &tar_of(&[entry("gone", b'0', b"f", "", 0o644)]),
            dir.path(),
            opts(false),
        )
        .unwrap();
        assert!(outside.path().join("keep").exists());
        assert!(dir.path().join("gone").is_file());
    }
}
