//! Root filesystems for containers: a writable layer over an image's layers.
//!
//! With overlayfs (`overlay2`) a container gets `<data-root>/overlay2/<id>/` with
//! `diff/` (its writes), `work/` (overlayfs scratch) and `merged/` (the mount point);
//! the image's unpacked layers are the lower directories, top first. Where overlay
//! mounts do not work (checked once, when the store opens, by mounting one in a
//! scratch directory under data-root) the `vfs` fallback copies the layers into
//! `<data-root>/vfs/<id>/merged/`, applying their whiteouts and opaque directories.
//!
//! `layer.json` in the container's directory records the image, the chain IDs it
//! pins (layers in use by a container are never garbage-collected) and the lower
//! directories in mount order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layer_store;
use super::tar_safe::OPAQUE_XATTR;
use super::{Error, ImageStore, Result, digest, lookup};

/// How container root filesystems are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// overlayfs mounts (Docker's `overlay2`).
    Overlay,
    /// Full copies (Docker's `vfs`), for hosts without overlayfs.
    Vfs,
}

impl Driver {
    /// The name Docker reports (`docker info` → Storage Driver).
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlay2",
            Driver::Vfs => "vfs",
        }
    }
}

/// `<data-root>/<driver>/<container-id>/layer.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RwRecord {
    pub container_id: String,
    pub image_id: String,
    /// The chain IDs of the image's layers (kept alive while the container exists).
    pub chain_ids: Vec<String>,
    /// Lower directories, top first (overlay only).
    #[serde(default)]
    pub lower: Vec<PathBuf>,
    pub driver: String,
}

/// Tries an overlay mount in a scratch directory under `data_root`.
pub fn detect_driver(data_root: &Path) -> Driver {
    match try_overlay(data_root) {
        Ok(()) => Driver::Overlay,
        Err(e) => {
            tracing::warn!(
                "overlay mounts do not work under {} ({e}); container root filesystems will be copies (vfs)",
                data_root.display()
            );
            Driver::Vfs
        }
    }
}

fn try_overlay(data_root: &Path) -> io::Result<()> {
    let scratch = crate::store::temp_path(&data_root.join("overlay-check"));
    fs::create_dir(&scratch)?;
    let result = (|| {
        let (lower, upper, work, merged) = (
            scratch.join("lower"),
            scratch.join("upper"),
            scratch.join("work"),
            scratch.join("merged"),
        );
        for d in [&lower, &upper, &work, &merged] {
            fs::create_dir(d)?;
        }
        // The layers' whiteouts are character devices 0/0.
        let wh = CString::new(lower.join("wh").as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: valid C string.
        if unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR | 0o600, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        mount_overlay(std::slice::from_ref(&lower), &upper, &work, &merged)?;
        let hidden = !merged.join("wh").exists();
        let _ = nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH);
        if !hidden {
            return Err(io::Error::other("overlay does not honour whiteouts"));
        }
        Ok(())
    })();
    let _ = crate::store::remove_dir_all_robust(&scratch);
    result
}

/// Reads every container's writable-layer record (both drivers' directories).
pub fn read_records(data_root: &Path) -> Result<HashMap<String, RwRecord>> {
    let mut out = HashMap::new();
    for driver in [Driver::Overlay, Driver::Vfs] {
        let dir = data_root.join(driver.name());
        crate::store::sweep_temp_files(&dir)?;
        for name in layer_store::list_dir(&dir)? {
            let p = dir.join(&name).join("layer.json");
            match fs::read(&p) {
                Ok(d) => match serde_json::from_slice::<RwRecord>(&d) {
                    Ok(r) if r.container_id == name => {
                        out.insert(name, r);
                    }
                    Ok(_) => tracing::warn!("{} names another container; ignoring it", p.display()),
                    Err(e) => tracing::warn!("ignoring {}: {e}", p.display()),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Created but never recorded: a crash in create_rw_layer.
                    layer_store::remove_tree(&dir.join(&name));
                }
                Err(e) => tracing::warn!("ignoring {}: {e}", p.display()),
            }
        }
    }
    Ok(out)
}

/// The writable layers of build steps (`COPY`, `WORKDIR`), which belong to no
/// container, are named with this prefix.
pub const BUILD_LAYER_PREFIX: &str = "build-";

fn valid_container_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid container ID {id:?}")))
    }
}

impl ImageStore {
    pub(super) fn rw_dir(&self, driver: &str, container_id: &str) -> PathBuf {
        self.data_root.join(driver).join(container_id)
    }

    pub(super) fn rw_record(&self, container_id: &str) -> Result<RwRecord> {
        self.lock().rw.get(container_id).cloned().ok_or_else(|| {
            Error::not_found(format!("no root filesystem for container {container_id}"))
        })
    }

    /// Creates the writable layer of a container over image `image_id` (over
    /// nothing when it is empty):
    /// `<data-root>/overlay2/<id>/{diff,work,merged}` plus the ordered lower
    /// directories (or, with the vfs fallback, a full copy of the image's tree).
    pub fn create_rw_layer(&self, image_id: &str, container_id: &str) -> Result<()> {
        valid_container_id(container_id)?;
        let driver = self.driver;
        let dir = self.rw_dir(driver.name(), container_id);
        // Shared: the layers must not be retired while they are copied or recorded.
        let _r = self.layer_use.read().unwrap_or_else(|p| p.into_inner());
        let (id, chain_ids, layer_dirs) = {
            let mut st = self.lock();
            if st.rw.contains_key(container_id) {
                return Err(Error::conflict(format!(
                    "root filesystem for container {container_id} already exists"
                )));
            }
            // No image: an empty root (a build step over `FROM scratch`).
            let (id, diff_ids) = if image_id.is_empty() {
                (String::new(), Vec::new())
            } else {
                let id = lookup(&st, image_id)?;
                let diff_ids = st.images[&id].json.diff_ids().to_vec();
                (id, diff_ids)
            };
            let chain_ids = digest::chain_ids(&diff_ids);
            let layer_dirs: Vec<PathBuf> =
                diff_ids.iter().map(|d| self.paths.diff_dir(d)).collect();
            // Reserve the name and pin the layers before any disk work.
            st.rw.insert(
                container_id.to_string(),
                RwRecord {
                    container_id: container_id.to_string(),
                    image_id: id.clone(),
                    chain_ids: chain_ids.clone(),
                    lower: Vec::new(),
                    driver: driver.name().to_string(),
                },
            );
            (id, chain_ids, layer_dirs)
        };
        let made = self.make_rw_dirs(driver, &dir, &layer_dirs);
        let record = made.and_then(|lower| {
            let rec = RwRecord {
                container_id: container_id.to_string(),
                image_id: id.clone(),
                chain_ids,
                lower,
                driver: driver.name().to_string(),
            };
            crate::store::write_json(&dir.join("layer.json"), &rec)?;
            Ok(rec)
        });
        let mut st = self.lock();
        match record {
            Ok(rec) => {
                st.rw.insert(container_id.to_string(), rec);
                Ok(())
            }
            Err(e) => {
                st.rw.remove(container_id);
                drop(st);
                layer_store::remove_tree(&dir);
                Err(e)
            }
        }
    }

    /// Makes the container's directories; returns the lower directories (overlay).
    fn make_rw_dirs(
        &self,
        driver: Driver,
        dir: &Path,
        layer_dirs: &[PathBuf],
    ) -> Result<Vec<PathBuf>> {
        crate::store::create_private_dir(dir.parent().unwrap_or(dir))?;
        fs::DirBuilder::new().mode(0o710).create(dir).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::conflict(format!("{} already exists", dir.display()))
            } else {
                crate::store::with_path(e, "create directory", dir).into()
            }
        })?;
        let mk = |p: PathBuf, mode: u32| -> Result<()> {
            fs::DirBuilder::new()
                .mode(mode)
                .create(&p)
                .map_err(|e| crate::store::with_path(e, "create directory", &p).into())
        };
        match driver {
            Driver::Overlay => {
                mk(dir.join("diff"), 0o755)?;
                mk(dir.join("work"), 0o700)?;
                mk(dir.join("merged"), 0o755)?;
                // Top first; a layer repeated lower in the stack adds nothing (its
                // content is already above), and empty layers add nothing at all.
                let mut seen = HashSet::new();
                let mut lower = Vec::new();
                for d in layer_dirs.iter().rev() {
                    if seen.insert(d.clone()) && !dir_is_empty(d)? {
                        lower.push(d.clone());
                    }
                }
                Ok(lower)
            }
            Driver::Vfs => {
                let merged = dir.join("merged");
                mk(merged.clone(), 0o755)?;
                for d in layer_dirs {
                    copy_layer(d, &merged)?;
                }
                Ok(Vec::new())
            }
        }
    }

    /// Where the container's root is mounted (by [`Self::mount_rw_layer`]).
    pub fn rw_root_path(&self, container_id: &str) -> Result<PathBuf> {
        let rec = self.rw_record(container_id)?;
        Ok(self.root_path(&rec, container_id))
    }

    fn root_path(&self, rec: &RwRecord, container_id: &str) -> PathBuf {
        let dir = self.rw_dir(&rec.driver, container_id);
        if rec.driver != Driver::Vfs.name() && rec.lower.is_empty() {
            // Nothing below: the writable directory is the root (as Docker does).
            return dir.join("diff");
        }
        dir.join("merged")
    }

    /// Mounts the container's root and returns its path (already mounted: same path).
    pub fn mount_rw_layer(&self, container_id: &str) -> Result<PathBuf> {
        let rec = self.rw_record(container_id)?;
        let merged = self.root_path(&rec, container_id);
        if rec.driver == Driver::Vfs.name() || rec.lower.is_empty() {
            return Ok(merged);
        }
        let dir = self.rw_dir(&rec.driver, container_id);
        if is_mountpoint(&merged, &dir)? {
            return Ok(merged);
        }
        mount_overlay(&rec.lower, &dir.join("diff"), &dir.join("work"), &merged).map_err(|e| {
            Error::internal(format!(
                "mount overlay for container {container_id} on {}: {}",
                merged.display(),
                crate::store::strip_os_suffix(&e)
            ))
        })?;
        Ok(merged)
    }

    /// Unmounts the container's root (not mounted: nothing to do). A busy mount is
    /// detached lazily.
    pub fn unmount_rw_layer(&self, container_id: &str) -> Result<()> {
        let rec = self.rw_record(container_id)?;
        if rec.driver == Driver::Vfs.name() {
            return Ok(());
        }
        let dir = self.rw_dir(&rec.driver, container_id);
        unmount(&dir.join("merged"), &dir)
    }

    /// Removes the container's writable layer (unmounting it first) and then any
    /// image layers nothing uses any more. Removing one that does not exist is not
    /// an error.
    pub fn remove_rw_layer(&self, container_id: &str) -> Result<()> {
        let rec = match self.rw_record(container_id) {
            Ok(r) => r,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let dir = self.rw_dir(&rec.driver, container_id);
        if rec.driver != Driver::Vfs.name() {
            unmount(&dir.join("merged"), &dir)?;
        }
        // The record goes first: a crash after this leaves a directory without a
        // record, which the next start removes.
        let rp = dir.join("layer.json");
        match fs::remove_file(&rp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::store::with_path(e, "remove", &rp).into()),
        }
        crate::store::remove_dir_all_robust(&dir)
            .map_err(|e| crate::store::with_path(e, "remove", &dir))?;
        let _w = self.layer_use.write().unwrap_or_else(|p| p.into_inner());
        let mut st = self.lock();
        st.rw.remove(container_id);
        let retired = self.collect_garbage(&mut st);
        drop(st);
        super::remove_retired(retired?);
        Ok(())
    }

    /// Bytes the container has written (`docker ps --size` → SizeRw): the sizes of
    /// what `docker diff` reports added or changed, directories and deletions aside
    /// and hard links once, as Docker counts them; with the vfs fallback, the size
    /// of the whole copy, as Docker reports it.
    pub fn rw_layer_size(&self, container_id: &str) -> Result<u64> {
        let rec = self.rw_record(container_id)?;
        let dir = self.rw_dir(&rec.driver, container_id);
        if rec.driver == Driver::Vfs.name() {
            return layer_store::dir_size(&dir.join("merged"));
        }
        let upper = dir.join("diff");
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        for c in self.rw_changes(container_id)? {
            if c.kind == super::rw_changes::Kind::Deleted {
                continue;
            }
            let Ok(m) = fs::symlink_metadata(upper.join(c.path.trim_start_matches('/'))) else {
                continue;
            };
            if m.is_dir() || (m.nlink() > 1 && !seen.insert((m.dev(), m.ino()))) {
                continue;
            }
            total += m.len();
        }
        Ok(total)
    }

    /// `GraphDriver.Data` of a container (`docker inspect`).
    pub fn rw_layer_graph_data(&self, container_id: &str) -> Result<BTreeMap<String, String>> {
        let rec = self.rw_record(container_id)?;
        let dir = self.rw_dir(&rec.driver, container_id);
        let mut m = BTreeMap::new();
        if rec.driver == Driver::Overlay.name() {
            if !rec.lower.is_empty() {
                m.insert("LowerDir".to_string(), join_dirs(&rec.lower));
            }
            m.insert(
                "MergedDir".to_string(),
                dir.join("merged").display().to_string(),
            );
            m.insert(
                "UpperDir".to_string(),
                dir.join("diff").display().to_string(),
            );
            m.insert(
                "WorkDir".to_string(),
                dir.join("work").display().to_string(),
            );
        }
        Ok(m)
    }

    /// Which image a container's writable layer sits on.
    pub fn rw_layer_image(&self, container_id: &str) -> Result<String> {
        Ok(self.rw_record(container_id)?.image_id)
    }
}

fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn dir_is_empty(d: &Path) -> Result<bool> {
    Ok(fs::read_dir(d)
        .map_err(|e| crate::store::with_path(e, "read directory", d))?
        .next()
        .is_none())
}

/// A mount point has another device than its parent directory.
fn is_mountpoint(path: &Path, parent: &Path) -> Result<bool> {
    let a = fs::symlink_metadata(path).map_err(|e| crate::store::with_path(e, "stat", path))?;
    let b = fs::symlink_metadata(parent).map_err(|e| crate::store::with_path(e, "stat", parent))?;
    Ok(a.dev() != b.dev())
}

fn unmount(merged: &Path, dir: &Path) -> Result<()> {
    if !merged.exists() || !is_mountpoint(merged, dir)? {
        return Ok(());
    }
    use nix::mount::{MntFlags, umount2};
    match umount2(merged, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => {
            tracing::warn!("{} is busy; detaching it lazily", merged.display());
            umount2(merged, MntFlags::MNT_DETACH)
                .map_err(|e| Error::internal(format!("unmount {}: {}", merged.display(), e.desc())))
        }
        Err(e) => Err(Error::internal(format!(
            "unmount {}: {}",
            merged.display(),
            e.desc()
        ))),
    }
}

/// Escapes a path for overlay's option syntax (`:` separates lower directories,
/// `,` options).
fn escape_opt(p: &Path) -> String {
    let s = p.display().to_string();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Mounts overlayfs: `lower` top first. Long stacks that do not fit a page of
/// mount options go through the new mount API, one `lowerdir+` at a time.
fn mount_overlay(lower: &[PathBuf], upper: &Path, work: &Path, merged: &Path) -> io::Result<()> {
    let lowers = lower
        .iter()
        .map(|p| escape_opt(p))
        .collect::<Vec<_>>()
        .join(":");
    let data = format!(
        "lowerdir={lowers},upperdir={},workdir={}",
        escape_opt(upper),
        escape_opt(work)
    );
    if data.len() + ",index=off".len() < 4000 {
        use nix::mount::{MsFlags, mount};
        let with_index = format!("{data},index=off");
        let r = mount(
            Some("overlay"),
            merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(with_index.as_str()),
        );
        match r {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EINVAL) => {
                // Older kernels do not know index=off.
                return mount(
                    Some("overlay"),
                    merged,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(data.as_str()),
                )
                .map_err(io::Error::from);
            }
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    mount_overlay_fsconfig(lower, upper, work, merged)
}

/// The new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`, Linux 6.8+ for
/// `lowerdir+`), which has no length limit on the layer list.
fn mount_overlay_fsconfig(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    merged: &Path,
) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let cs = |s: &str| CString::new(s).map_err(io::Error::other);
    let cp = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let fstype = cs("overlay")?;
    // SAFETY: raw syscalls with valid C strings; returned fds are owned below.
    let fsfd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 1 as libc::c_uint) };
    if fsfd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fsfd = unsafe { OwnedFd::from_raw_fd(fsfd as i32) };
    let set = |k: &CString, v: &CString| -> io::Result<()> {
        // SAFETY: valid fd and C strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    let lowerplus = cs("lowerdir+")?;
    for l in lower {
        set(&lowerplus, &cp(l)?)?;
    }
    set(&cs("upperdir")?, &cp(upper)?)?;
    set(&cs("workdir")?, &cp(work)?)?;
    // SAFETY: valid fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: valid fd.
    let mfd = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fsfd.as_raw_fd(),
            1 as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    if mfd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mfd = unsafe { OwnedFd::from_raw_fd(mfd as i32) };
    let empty = cs("")?;
    let target = cp(merged)?;
    // SAFETY: valid fds and C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mfd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Applies one unpacked layer onto a copied root: whiteouts delete, opaque
/// directories hide what was below, everything else is copied with its owner,
/// mode, times and xattrs; hard links within the layer stay links.
pub fn copy_layer(src: &Path, dst: &Path) -> Result<()> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    copy_dir_contents(src, dst, &mut links)
}

/// Copies the directory `src` into the existing, empty directory `dst`: every
/// entry with its owner, mode, times and xattrs (hard links stay links), and
/// `src`'s own owner, mode and times onto `dst`. Symlinks are copied, never
/// followed. Directories are made first, then files are copied by a few threads
/// at once, a directory each (creating a file is most of the cost, and it is the
/// kernel's CPU time), then the directories get their times, deepest first.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let ctx =
        |e: io::Error, op: &str, p: &Path| -> Error { crate::store::with_path(e, op, p).into() };
    let mut dirs: Vec<(PathBuf, PathBuf, fs::Metadata)> = Vec::new();
    let mut files: Vec<(PathBuf, PathBuf, fs::Metadata)> = Vec::new();
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((s, d)) = stack.pop() {
        for entry in fs::read_dir(&s).map_err(|e| ctx(e, "read directory", &s))? {
            let entry = entry.map_err(|e| ctx(e, "read directory", &s))?;
            let (es, ed) = (entry.path(), d.join(entry.file_name()));
            let m = fs::symlink_metadata(&es).map_err(|e| ctx(e, "stat", &es))?;
            if m.is_dir() {
                fs::create_dir(&ed).map_err(|e| ctx(e, "create directory", &ed))?;
                stack.push((es.clone(), ed.clone()));
                dirs.push((es, ed, m));
            } else {
                files.push((es, ed, m));
            }
        }
    }
    // Of each set of hard links, the first is copied and the others link to it.
    let mut first: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    files.retain(|(_, d, m)| {
        if m.nlink() <= 1 {
            return true;
        }
        match first.get(&(m.dev(), m.ino())) {
            Some(target) => {
                links.push((target.clone(), d.clone()));
                false
            }
            None => {
                first.insert((m.dev(), m.ino()), d.clone());
                true
            }
        }
    });
    // A thread takes a directory's files at a time: creating files in one
    // directory takes that directory's lock, so threads in the same one would wait
    // on each other.
    let mut groups: Vec<&[(PathBuf, PathBuf, fs::Metadata)]> = Vec::new();
    files.sort_by(|a, b| a.1.parent().cmp(&b.1.parent()));
    let mut rest = files.as_slice();
    while let Some((_, d, _)) = rest.first() {
        let n = rest
            .iter()
            .take_while(|(_, o, _)| o.parent() == d.parent())
            .count();
        let (group, tail) = rest.split_at(n);
        groups.push(group);
        rest = tail;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    std::thread::scope(|scope| -> Result<()> {
        let copy_some = || -> Result<()> {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(group) = groups.get(i) else {
                    return Ok(());
                };
                for (s, d, m) in group.iter() {
                    copy_entry(s, d, m)?;
                }
            }
        };
        let handles: Vec<_> = (1..workers).map(|_| scope.spawn(copy_some)).collect();
        let mut result = copy_some();
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(Error::internal("a copy thread panicked")));
            result = result.and(r);
        }
        result
    })?;
    for (target, link) in links {
        fs::hard_link(&target, &link).map_err(|e| ctx(e, "link", &link))?;
    }
    for (s, d, m) in dirs.iter().rev() {
        copy_meta(s, d, m)?;
    }
    let m = fs::symlink_metadata(src).map_err(|e| ctx(e, "stat", src))?;
    copy_meta(src, dst, &m)
}

/// One non-directory: a regular file's content, a symlink, or a device node,
/// with its metadata.
fn copy_entry(s: &Path, d: &Path, m: &fs::Metadata) -> Result<()> {
    let ctx =
        |e: io::Error, op: &str, p: &Path| -> Error { crate::store::with_path(e, op, p).into() };
    let ft = m.file_type();
    if ft.is_file() {
        fs::copy(s, d).map_err(|e| ctx(e, "copy", s))?;
    } else if ft.is_symlink() {
        let target = fs::read_link(s).map_err(|e| ctx(e, "readlink", s))?;
        std::os::unix::fs::symlink(&target, d).map_err(|e| ctx(e, "symlink", d))?;
    } else {
        let c = path_c(d)?;
        // SAFETY: valid C string.
        if unsafe {
            libc::mknod(
                c.as_ptr(),
                m.mode() as libc::mode_t,
                m.rdev() as libc::dev_t,
            )
        } != 0
        {
            return Err(ctx(io::Error::last_os_error(), "mknod", d));
        }
    }
    copy_meta(s, d, m)
}

fn copy_dir_contents(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let ctx =
        |e: io::Error, op: &str, p: &Path| -> Error { crate::store::with_path(e, op, p).into() };
    let rd = fs::read_dir(src).map_err(|e| ctx(e, "read directory", src))?;
    for entry in rd {
        let entry = entry.map_err(|e| ctx(e, "read directory", src))?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let m = fs::symlink_metadata(&s).map_err(|e| ctx(e, "stat", &s))?;
        let ft = m.file_type();
        let existing = fs::symlink_metadata(&d).ok();
        if ft.is_char_device() && m.rdev() == 0 {
            // A whiteout: the path is gone from here up.
            remove_any(&d, existing.as_ref())?;
            continue;
        }
        if ft.is_dir() {
            let opaque = get_xattr(&s, OPAQUE_XATTR).is_some_and(|v| v == b"y");
            match &existing {
                Some(e) if e.is_dir() => {
                    if opaque {
                        for child in fs::read_dir(&d).map_err(|e| ctx(e, "read directory", &d))? {
                            let child = child.map_err(|e| ctx(e, "read directory", &d))?;
                            let cm = fs::symlink_metadata(child.path()).ok();
                            remove_any(&child.path(), cm.as_ref())?;
                        }
                    }
                }
                other => {
                    remove_any(&d, other.as_ref())?;
                    fs::create_dir(&d).map_err(|e| ctx(e, "create directory", &d))?;
                }
            }
            copy_dir_contents(&s, &d, links)?;
            copy_meta(&s, &d, &m)?;
            continue;
        }
        if existing.is_some() {
            remove_any(&d, existing.as_ref())?;
        }
        if m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                fs::hard_link(first, &d).map_err(|e| ctx(e, "link", &d))?;
                continue;
            }
        }
        copy_entry(&s, &d, &m)?;
        if m.nlink() > 1 {
            links.insert((m.dev(), m.ino()), d.clone());
        }
    }
    Ok(())
}

fn remove_any(p: &Path, m: Option<&fs::Metadata>) -> Result<()> {
    let Some(m) = m else { return Ok(()) };
    let r = if m.is_dir() {
        crate::store::remove_dir_all_robust(p)
    } else {
        fs::remove_file(p)
    };
    r.map_err(|e| crate::store::with_path(e, "remove", p).into())
}

fn path_c(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::internal(format!("path {} contains a NUL byte", p.display())))
}

/// Owner, mode (not for symlinks), xattrs (but not overlay's own) and times.
fn copy_meta(src: &Path, dst: &Path, m: &fs::Metadata) -> Result<()> {
    let c = path_c(dst)?;
    let fail =
        |op: &str| -> Error { crate::store::with_path(io::Error::last_os_error(), op, dst).into() };
    // SAFETY: valid C strings and buffers throughout.
    unsafe {
        if libc::lchown(c.as_ptr(), m.uid(), m.gid()) != 0 {
            return Err(fail("chown"));
        }
        if !m.file_type().is_symlink()
            && libc::chmod(c.as_ptr(), (m.mode() & 0o7777) as libc::mode_t) != 0
        {
            return Err(fail("chmod"));
        }
    }
    for (k, v) in list_xattrs(src) {
        if k.as_bytes().starts_with(b"trusted.overlay.") {
            continue;
        }
        // SAFETY: valid C strings and buffer.
        let r = unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        if r != 0 {
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) {
                return Err(crate::store::with_path(e, "set xattr on", dst).into());
            }
        }
    }
    let times = [
        libc::timespec {
            tv_sec: m.atime() as libc::time_t,
            tv_nsec: m.atime_nsec() as _,
        },
        libc::timespec {
            tv_sec: m.mtime() as libc::time_t,
            tv_nsec: m.mtime_nsec() as _,
        },
    ];
    // SAFETY: valid C string and two-element array.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(fail("set times of"));
    }
    Ok(())
}

fn list_xattrs(p: &Path) -> Vec<(CString, Vec<u8>)> {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: valid C string and buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    names
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| {
            let k = CString::new(n).ok()?;
            let v = get_xattr_c(&c, &k)?;
            Some((k, v))
        })
        .collect()
}

/// The value of an xattr of `p` (not following a symlink), if set.
pub fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).ok()?;
    let k = CString::new(name).ok()?;
    get_xattr_c(&c, &k)
}

fn get_xattr_c(c: &CString, k: &CString) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid C strings and buffer.
    let n = unsafe { libc::lgetxattr(c.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}
