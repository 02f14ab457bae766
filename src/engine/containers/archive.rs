//! `docker cp` out of a container: `HEAD` and `GET /containers/{id}/archive`.
//!
//! Every path is resolved inside the container's root by the kernel
//! (`openat2` with `RESOLVE_IN_ROOT`): an absolute symlink, a relative one, or a
//! chain of `..` ends at the container's root, never above it. The root of a
//! running container is its processes' own (`/proc/PID/root`), so its volumes,
//! binds and the daemon-written files are seen as the container sees them. The
//! copy walks directories through descriptors only (`openat` with `O_NOFOLLOW`,
//! `fstatat` without following): a directory swapped for a symlink while the copy
//! runs is archived as a symlink, never followed. Nothing from the container's
//! filesystem is ever run.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use std::sync::Arc;

use super::Record;
use crate::engine::{Engine, Error, Result};

/// Go's `os.FileMode` type bits, as the path-stat header carries them.
const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_DEVICE: u32 = 1 << 26;
const GO_NAMED_PIPE: u32 = 1 << 25;
const GO_SOCKET: u32 = 1 << 24;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_CHAR_DEVICE: u32 = 1 << 21;
const GO_STICKY: u32 = 1 << 20;

/// What `X-Docker-Container-Path-Stat` describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits.
    pub mode: u32,
    pub mtime: String,
    /// For a symlink: where it leads, resolved inside the container, absolute.
    pub link_target: String,
}

impl PathStat {
    /// The header value: base64 of Docker's JSON.
    pub fn header(&self) -> String {
        use base64::Engine as _;
        let doc = json!({
            "name": self.name,
            "size": self.size,
            "mode": self.mode,
            "mtime": self.mtime,
            "linkTarget": self.link_target,
        });
        base64::engine::general_purpose::STANDARD.encode(doc.to_string())
    }
}

/// `st_mode` as Go's `os.FileMode`.
fn go_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => GO_DIR,
        libc::S_IFLNK => GO_SYMLINK,
        libc::S_IFBLK => GO_DEVICE,
        libc::S_IFCHR => GO_DEVICE | GO_CHAR_DEVICE,
        libc::S_IFIFO => GO_NAMED_PIPE,
        libc::S_IFSOCK => GO_SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= GO_SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= GO_SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= GO_STICKY;
    }
    m
}

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `openat2(dir, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
pub(crate) fn open_in_root(root: RawFd, path: &[u8], flags: i32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // `struct open_how` of the kernel's ABI.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid C string and struct; the size is the struct's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let empty = c"";
    // SAFETY: valid descriptor, empty path with AT_EMPTY_PATH.
    let r = unsafe {
        libc::fstatat(
            fd,
            empty.as_ptr(),
            &mut st,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn fstatat(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and C string.
    if unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn readlinkat(dir: RawFd, name: &CStr) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: valid descriptor, C string and buffer of the given length.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsStr::from_bytes(&buf)))
}

fn openat(dir: RawFd, name: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and C string.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The requested path split as Docker splits it: the parent to resolve, and the
/// final name (`""` when the path ends in `/`, `.` for `/.`), which is not followed
/// unless empty.
fn split(path: &str) -> (String, String) {
    let p = clean(path);
    if p.ends_with('/') {
        return (p, String::new());
    }
    match p.rsplit_once('/') {
        Some(("", name)) => ("/".to_string(), name.to_string()),
        Some((parent, name)) => (parent.to_string(), name.to_string()),
        None => ("/".to_string(), p),
    }
}

/// `path` made absolute and cleaned as Go's `filepath.Join("/", path)` cleans it
/// (`.` dropped, `..` taken back, never above `/`), keeping a trailing `/` or `/.`,
/// as Docker does before it resolves anything: no `..` is left for a lookup.
fn clean(path: &str) -> String {
    let mut out = crate::image::changes::clean_path(path);
    if path.ends_with("/.") || path == "." {
        out = if out == "/" {
            "/.".into()
        } else {
            format!("{out}/.")
        };
    } else if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

/// A path inside a container, resolved.
pub struct Resolved {
    /// `O_PATH` descriptor of the entry itself (a symlink stays a symlink).
    pub fd: OwnedFd,
    pub stat: PathStat,
    st: libc::stat,
}

/// The container's root directory, as its processes see it.
fn root_of(pid: i32) -> io::Result<OwnedFd> {
    crate::init::sys::open(
        Path::new(&format!("/proc/{pid}/root")),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
}

/// Resolves `path` in the container whose root is `root`, as Docker's archive
/// endpoints do: the final component is not followed unless the path ends in `/`.
pub fn resolve(root: &OwnedFd, path: &str) -> io::Result<Resolved> {
    let (parent, name) = split(path);
    let (fd, st) = if name.is_empty() || name == "." {
        let fd = open_in_root(root.as_raw_fd(), parent.as_bytes(), libc::O_PATH)?;
        let st = fstat(fd.as_raw_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        (fd, st)
    } else {
        let dir = open_in_root(
            root.as_raw_fd(),
            parent.as_bytes(),
            libc::O_PATH | libc::O_DIRECTORY,
        )?;
        let fd = openat(dir.as_raw_fd(), &cstr(name.as_bytes())?, libc::O_PATH)?;
        let st = fstat(fd.as_raw_fd())?;
        (fd, st)
    };
    let display_name = match name.as_str() {
        "" => Path::new(&parent)
            .file_name()
            .map_or("/".to_string(), |n| n.to_string_lossy().into_owned()),
        n => n.to_string(),
    };
    let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        resolved_path(root, path)?
    } else {
        String::new()
    };
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
    Ok(Resolved {
        stat: PathStat {
            name: display_name,
            size: st.st_size,
            mode: go_mode(st.st_mode),
            mtime: crate::timefmt::rfc3339_nano(mtime),
            link_target,
        },
        fd,
        st,
    })
}

/// Where `path` leads inside the container (every symlink followed, inside the
/// root), as an absolute container path.
fn resolved_path(root: &OwnedFd, path: &str) -> io::Result<String> {
    let fd = open_in_root(root.as_raw_fd(), path.as_bytes(), libc::O_PATH)?;
    let own = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    let base = std::fs::read_link(format!("/proc/self/fd/{}", root.as_raw_fd()))?;
    let rel = own.strip_prefix(&base).unwrap_or(&own);
    Ok(format!("/{}", rel.display()).replace("//", "/"))
}

/// Where a copy works from: the root of a running container as its processes
/// see it, or a stopped container's root filesystem with its mounts.
enum Root {
    Running(OwnedFd),
    Stopped(Box<Record>),
}

impl Engine {
    /// Runs `job` with the container's root directory (an `O_PATH` descriptor) in
    /// a thread of its own. A running container's root is its processes' own
    /// (`/proc/PID/root`). A stopped one's is set up for the job, as Docker does,
    /// in a private mount namespace of the job's thread: its root filesystem, its
    /// volumes and binds, and the daemon's `/etc` files from its last start, all
    /// gone with the thread; start, stop and removal wait meanwhile. The job runs
    /// to its end even if the request that asked for it goes away.
    async fn in_root<T, F>(self: &Arc<Self>, name: &str, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&OwnedFd) -> Result<T> + Send + 'static,
    {
        let h = self.containers.get(name)?;
        let engine = self.clone();
        tokio::spawn(async move {
            let first = engine.copy_root(&h)?;
            if let Root::Running(fd) = first {
                return run_blocking(move || job(&fd)).await;
            }
            let _op = h.op.lock().await;
            let r = match engine.copy_root(&h)? {
                // Started while this waited.
                Root::Running(fd) => return run_blocking(move || job(&fd)).await,
                Root::Stopped(r) => r,
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            let e = engine.clone();
            let record = r.clone();
            std::thread::Builder::new()
                .name("copy".into())
                .spawn(move || {
                    let _ = tx.send(e.in_stopped_root(&record, job));
                })
                .map_err(|e| Error::internal(format!("copy: {e}")))?;
            let out = rx
                .await
                .map_err(|_| Error::internal("copy: the copy thread ended without an answer"));
            // Volumes with driver options were mounted (in the daemon's namespace)
            // for the copy.
            engine.container_volumes_stopped(&r, false);
            out?
        })
        .await
        .map_err(|e| Error::internal(format!("copy: {e}")))?
    }

    /// Where a copy in container `h` works from now. A running container's root
    /// is checked to be its own (the root of its writable layer), not that of a
    /// process that took the PID of one that just exited.
    fn copy_root(&self, h: &super::Handle) -> Result<Root> {
        let r = h.snapshot();
        let s = &r.container.state;
        if !(s.running && s.pid > 0) {
            return Ok(Root::Stopped(Box::new(r)));
        }
        let gone = || Error::conflict(format!("container {} is stopping; try again", h.id));
        let fd = root_of(s.pid).map_err(|_| gone())?;
        let own = self.images.rw_root_path(&h.id)?;
        let own = std::fs::metadata(&own)
            .map_err(|e| Error::internal(format!("{}: {e}", own.display())))?;
        let st = fstat(fd.as_raw_fd()).map_err(|_| gone())?;
        use std::os::unix::fs::MetadataExt;
        if (st.st_dev, st.st_ino) != (own.dev(), own.ino()) {
            return Err(gone());
        }
        Ok(Root::Running(fd))
    }

    /// The body of a stopped container's copy thread: the thread gets a private
    /// mount namespace, in which the container's root and mounts are set up.
    fn in_stopped_root<T>(&self, r: &Record, job: impl FnOnce(&OwnedFd) -> Result<T>) -> Result<T> {
        let c = &r.container;
        let mut mounts = self.container_volume_mounts(r, false)?;
        mounts.retain(|m| m.tmpfs.is_none());
        for (path, dest) in [
            (&c.hostname_path, "/etc/hostname"),
            (&c.hosts_path, "/etc/hosts"),
            (&c.resolv_conf_path, "/etc/resolv.conf"),
        ] {
            if !mounts.iter().any(|m| m.destination == dest) {
                mounts.push(crate::init::spec::Mount {
                    source: path.into(),
                    destination: dest.to_string(),
                    ..Default::default()
                });
            }
        }
        mounts.sort_by_key(|m| m.destination.split('/').filter(|c| !c.is_empty()).count());
        let setup = |e: &dyn std::fmt::Display| {
            Error::internal(format!("mount the root of container {}: {e}", c.id))
        };
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| setup(&e))?;
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| setup(&e))?;
        let root = self.images.mount_rw_layer(&c.id)?;
        let fd = crate::init::sys::open(&root, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| setup(&e))?;
        for m in &mounts {
            bind_in_root(&fd, m).map_err(|e| {
                setup(&format_args!(
                    "bind {} to {}: {e}",
                    m.source.display(),
                    m.destination
                ))
            })?;
        }
        job(&fd)
    }

    /// `HEAD /containers/{id}/archive?path=P`.
    pub async fn archive_stat(self: &Arc<Self>, name: &str, path: &str) -> Result<PathStat> {
        if path.is_empty() {
            return Err(Error::invalid("bad parameter: path cannot be empty"));
        }
        let (name, path) = (name.to_string(), path.to_string());
        self.in_root(&name.clone(), move |root| {
            resolve(root, &path)
                .map(|r| r.stat)
                .map_err(|e| not_found_or(e, &path, &name))
        })
        .await
    }

    /// `GET /containers/{id}/archive?path=P`: sends the path's stat (or the error
    /// that stops the copy before it starts) on `stat`, then writes the tar to
    /// `out`. An error after the stat is returned.
    pub async fn archive_get(
        self: &Arc<Self>,
        name: &str,
        path: &str,
        out: Box<dyn Write + Send>,
        stat: tokio::sync::oneshot::Sender<Result<PathStat>>,
    ) -> Result<()> {
        if path.is_empty() {
            let _ = stat.send(Err(Error::invalid("bad parameter: path cannot be empty")));
            return Ok(());
        }
        let slot = Arc::new(std::sync::Mutex::new(Some(stat)));
        let answer = slot.clone();
        let (name, path) = (name.to_string(), path.to_string());
        let done = self
            .in_root(&name.clone(), move |root| {
                let r = resolve(root, &path).map_err(|e| not_found_or(e, &path, &name))?;
                let rebase = if path.ends_with("/.") || path == "." {
                    ".".to_string()
                } else if r.stat.name == "/" {
                    "/".to_string()
                } else {
                    r.stat.name.clone()
                };
                if let Some(tx) = answer.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    let _ = tx.send(Ok(r.stat.clone()));
                }
                let mut tar = tar::Builder::new(out);
                tar.mode(tar::HeaderMode::Complete);
                let mut links = std::collections::HashMap::new();
                append_entry(&mut tar, &r.fd, &r.st, &PathBuf::from(&rebase), &mut links)
                    .and_then(|_| tar.into_inner())
                    .and_then(|mut out| out.flush())
                    .map_err(|e| Error::internal(format!("copy of {path}: {e}")))
            })
            .await;
        match done {
            Err(e) => match slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(tx) => {
                    let _ = tx.send(Err(e));
                    Ok(())
                }
                None => Err(e),
            },
            Ok(()) => Ok(()),
        }
    }

    /// `PUT /containers/{id}/archive?path=P`: extracts the tar `input` (plain or
    /// compressed) into the directory P of the container, as `docker cp` into a
    /// container.
    pub async fn archive_put(
        self: &Arc<Self>,
        name: &str,
        path: &str,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
        input: Box<dyn io::Read + Send>,
    ) -> Result<()> {
        if path.is_empty() {
            return Err(Error::invalid("bad parameter: path cannot be empty"));
        }
        let h = self.containers.get(name)?;
        let r = h.snapshot();
        let (name, path) = (name.to_string(), path.to_string());
        self.in_root(&name.clone(), move |root| {
            let dest = open_in_root(root.as_raw_fd(), clean(&path).as_bytes(), libc::O_PATH)
                .map_err(|e| not_found_or(e, &path, &name))?;
            let st = fstat(dest.as_raw_fd()).map_err(|e| not_found_or(e, &path, &name))?;
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(Error::invalid("extraction point is not a directory"));
            }
            let inside = resolved_path(root, &clean(&path))
                .map_err(|e| Error::internal(format!("{path}: {e}")))?;
            if let Some(why) = read_only_at(&r, &inside) {
                return Err(Error::invalid(why));
            }
            let owner = match &r.container.config.user {
                u if copy_uid_gid && !u.is_empty() => Some(user_ids(root, u)?),
                _ => None,
            };
            let dest = reopen(&dest, libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(|e| Error::internal(format!("{path}: {e}")))?;
            let (_, plain) = crate::image::layer_store::decompress(input, "the archive")?;
            let opts = crate::image::tar_safe::CopyOptions {
                dest: inside,
                no_overwrite_dir_non_dir,
                owner,
            };
            // Whatever stops the extraction is Docker's 500, with its message.
            crate::image::tar_safe::unpack_copy(plain, dest, opts)
                .map_err(|e| Error::internal(e.to_string()))?;
            Ok(())
        })
        .await?;
        let attrs = self.container_attributes(&h.record().container);
        self.events
            .emit("container", "extract-to-dir", &h.id, attrs);
        Ok(())
    }
}

/// Runs a blocking job off the async threads.
async fn run_blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| Error::internal(format!("copy: {e}")))?
}

/// Binds `m.source` over its destination inside `root` (read-only when the mount
/// is), in the calling thread's mount namespace. The destination is resolved by
/// the kernel inside the root and mounted on through its descriptor, so nothing
/// the container's files point at can redirect the mount; a destination that does
/// not exist, or is not of the source's kind, is left alone (it is made at start).
fn bind_in_root(root: &OwnedFd, m: &crate::init::spec::Mount) -> io::Result<()> {
    let Ok(source) = std::fs::metadata(&m.source) else {
        return Ok(());
    };
    let target = match open_in_root(root.as_raw_fd(), m.destination.as_bytes(), libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let st = fstat(target.as_raw_fd())?;
    if (st.st_mode & libc::S_IFMT == libc::S_IFDIR) != source.is_dir() {
        return Ok(());
    }
    let on = |fd: &OwnedFd| PathBuf::from(format!("/proc/thread-self/fd/{}", fd.as_raw_fd()));
    crate::init::sys::mount(
        Some(&m.source),
        &on(&target),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    if m.readonly {
        // The new mount, reached the same way.
        let mounted = open_in_root(root.as_raw_fd(), m.destination.as_bytes(), libc::O_PATH)?;
        crate::init::sys::mount(
            None,
            &on(&mounted),
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

/// Docker's refusal of a copy into `inside` (a resolved container path) when it
/// is on a read-only mount, or on a read-only root outside any mount.
fn read_only_at(r: &Record, inside: &str) -> Option<&'static str> {
    let under = |dest: &str| {
        let d = dest.trim_end_matches('/');
        inside == d || d.is_empty() || inside.starts_with(&format!("{d}/"))
    };
    let volume = r
        .container
        .mount_points
        .iter()
        .filter(|m| under(&m.destination))
        .max_by_key(|m| m.destination.len());
    match volume {
        Some(m) if !m.rw => Some("mounted volume is marked read-only"),
        Some(_) => None,
        None if r.settings.readonly_rootfs => Some("container rootfs is marked read-only"),
        None => None,
    }
}

/// The uid and gid of `user` (`name`, `uid`, `name:group`, …) by the container's
/// own `/etc/passwd` and `/etc/group`, read inside its root.
fn user_ids(root: &OwnedFd, user: &str) -> Result<(u32, u32)> {
    let read = |path: &str| -> Result<Option<String>> {
        const LIMIT: u64 = 16 << 20;
        // Opened for reading only once known to be a regular file: a device or
        // a FIFO put there is never opened.
        let fd = match open_in_root(root.as_raw_fd(), path.as_bytes(), libc::O_PATH) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::internal(format!("{path}: {e}"))),
        };
        let st = fstat(fd.as_raw_fd()).map_err(|e| Error::internal(format!("{path}: {e}")))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::invalid(format!(
                "{path} in the container is not a regular file"
            )));
        }
        let fd = reopen(&fd, libc::O_RDONLY | libc::O_NONBLOCK)
            .map_err(|e| Error::internal(format!("{path}: {e}")))?;
        let mut text = String::new();
        io::Read::read_to_string(&mut io::Read::take(File::from(fd), LIMIT), &mut text)
            .map_err(|e| Error::internal(format!("{path}: {e}")))?;
        Ok(Some(text))
    };
    let passwd = read("/etc/passwd")?;
    let group = read("/etc/group")?;
    let who =
        crate::init::user::resolve(user, passwd.as_deref(), group.as_deref()).map_err(|e| {
            Error::invalid(format!("failed to look up user {user:?} in container: {e}"))
        })?;
    Ok((who.uid, who.gid))
}

fn not_found_or(e: io::Error, path: &str, name: &str) -> Error {
    if e.raw_os_error() == Some(libc::ENOENT) {
        Error::not_found(format!(
            "Could not find the file {path} in container {name}"
        ))
    } else {
        Error::internal(format!("{path}: {}", crate::store::strip_os_suffix(&e)))
    }
}

/// Appends the entry `fd` (an `O_PATH` descriptor, `st` its stat) as `name`, and
/// for a directory everything under it, through descriptors only.
fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    fd: &OwnedFd,
    st: &libc::stat,
    name: &Path,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut h, name, io::empty())?;
            let dir = openat(fd.as_raw_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY)?;
            let mut names = list(&dir)?;
            names.sort();
            for child in names {
                let c = cstr(child.as_bytes())?;
                let Ok(cst) = fstatat(dir.as_raw_fd(), &c) else {
                    continue;
                };
                let Ok(cfd) = openat(dir.as_raw_fd(), &c, libc::O_PATH) else {
                    continue;
                };
                // Swapped between the two calls: take what is there now.
                let cst2 = fstat(cfd.as_raw_fd())?;
                let cst = if cst2.st_ino == cst.st_ino { cst } else { cst2 };
                append_entry(tar, &cfd, &cst, &name.join(&child), links)?;
            }
        }
        libc::S_IFLNK => {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = readlinkat(fd.as_raw_fd(), c"")?;
            tar.append_link(&mut h, name, target)?;
        }
        libc::S_IFREG => {
            let key = (st.st_dev, st.st_ino);
            if st.st_nlink > 1 {
                if let Some(first) = links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    return tar.append_link(&mut h, name, first);
                }
                links.insert(key, name.to_path_buf());
            }
            // Reopened through the O_PATH descriptor: the same inode, readable (a
            // FIFO swapped in would not block: it is not this inode).
            let file = File::from(reopen(fd, libc::O_RDONLY | libc::O_NONBLOCK)?);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            tar.append_data(&mut h, name, file)?;
        }
        kind => {
            let t = match kind {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                libc::S_IFIFO => tar::EntryType::Fifo,
                _ => return Ok(()),
            };
            h.set_entry_type(t);
            if matches!(kind, libc::S_IFCHR | libc::S_IFBLK) {
                h.set_device_major(libc::major(st.st_rdev))?;
                h.set_device_minor(libc::minor(st.st_rdev))?;
            }
            tar.append_data(&mut h, name, io::empty())?;
        }
    }
    Ok(())
}

/// A new descriptor of the inode an `O_PATH` descriptor refers to.
fn reopen(fd: &OwnedFd, flags: i32) -> io::Result<OwnedFd> {
    crate::init::sys::open(
        Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())),
        flags,
        0,
    )
}

/// The names in directory `dir` (without `.` and `..`).
fn list(dir: &OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    let dup = nix::unistd::dup(dir).map_err(io::Error::from)?;
    let d = nix::dir::Dir::from_fd(dup).map_err(io::Error::from)?;
    let mut out = Vec::new();
    for e in d {
        let e = e.map_err(io::Error::from)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_gos() {
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 420);
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), 2147484141);
        assert_eq!(go_mode(libc::S_IFDIR | 0o1777), 2148532735);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), 134218239);
        assert_eq!(go_mode(libc::S_IFIFO | 0o644), 33554852);
    }

    #[test]
    fn paths_split_as_dockers() {
        assert_eq!(split("/etc/hostname"), ("/etc".into(), "hostname".into()));
        assert_eq!(split("etc/hostname"), ("/etc".into(), "hostname".into()));
        assert_eq!(split("/etc/"), ("/etc/".into(), "".into()));
        assert_eq!(split("/etc/."), ("/etc".into(), ".".into()));
        assert_eq!(split("/"), ("/".into(), "".into()));
        assert_eq!(split("/x"), ("/".into(), "x".into()));
        // No `..` is left to look up, and nothing climbs above `/`.
        assert_eq!(split("/.."), ("/".into(), "".into()));
        assert_eq!(split("/etc/.."), ("/".into(), "".into()));
        assert_eq!(
            split("../../etc/hostname"),
            ("/etc".into(), "hostname".into())
        );
        assert_eq!(split("/a/../b/./c/"), ("/b/c/".into(), "".into()));
        assert_eq!(split("/."), ("/".into(), ".".into()));
    }

    #[test]
    fn resolution_stays_in_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "inside").unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("etc/dots")).unwrap();
        let fd = File::open(&root).unwrap();
        let rootfd = OwnedFd::from(fd);
        // An absolute symlink and a `..` chain both end at the container's root.
        let r = resolve(&rootfd, "/up/etc/hostname").unwrap();
        assert_eq!(r.stat.size, 6);
        let r = resolve(&rootfd, "/etc/dots/hostname").unwrap();
        assert_eq!(r.stat.size, 6);
        let l = resolve(&rootfd, "/up").unwrap();
        assert_eq!(l.stat.link_target, "/");
        assert_eq!(l.stat.mode & GO_SYMLINK, GO_SYMLINK);
        assert_eq!(
            resolve(&rootfd, "/nope").err().unwrap().raw_os_error(),
            Some(libc::ENOENT)
        );
    }
}
