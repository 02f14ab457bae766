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
fn open_in_root(root: RawFd, path: &[u8], flags: i32) -> io::Result<OwnedFd> {
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
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
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

impl Engine {
    /// The root of a running container (`None`: it is not running).
    fn archive_root(&self, name: &str) -> Result<(String, OwnedFd)> {
        let h = self.containers.get(name)?;
        let r = h.record();
        let s = &r.container.state;
        if !s.running || s.pid <= 0 {
            return Err(Error::not_implemented(
                "copying from a container that is not running is not supported by this daemon yet",
            ));
        }
        let root =
            root_of(s.pid).map_err(|e| Error::internal(format!("the container's root: {e}")))?;
        Ok((h.id.clone(), root))
    }

    /// `HEAD /containers/{id}/archive?path=P`.
    pub fn archive_stat(&self, name: &str, path: &str) -> Result<PathStat> {
        if path.is_empty() {
            return Err(Error::invalid("bad parameter: path cannot be empty"));
        }
        let (_, root) = self.archive_root(name)?;
        resolve(&root, path)
            .map(|r| r.stat)
            .map_err(|e| not_found_or(e, path, name))
    }

    /// `GET /containers/{id}/archive?path=P`: the stat, and a writer of the tar.
    pub fn archive_get(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(
        PathStat,
        impl FnOnce(&mut dyn Write) -> io::Result<()> + Send + use<>,
    )> {
        if path.is_empty() {
            return Err(Error::invalid("bad parameter: path cannot be empty"));
        }
        let (_, root) = self.archive_root(name)?;
        let r = resolve(&root, path).map_err(|e| not_found_or(e, path, name))?;
        let stat = r.stat.clone();
        let rebase = if path.ends_with("/.") || path == "." {
            ".".to_string()
        } else if stat.name == "/" {
            "/".to_string()
        } else {
            stat.name.clone()
        };
        let write = move |out: &mut dyn Write| -> io::Result<()> {
            let mut tar = tar::Builder::new(out);
            tar.mode(tar::HeaderMode::Complete);
            let mut links = std::collections::HashMap::new();
            append_entry(&mut tar, &r.fd, &r.st, &PathBuf::from(&rebase), &mut links)?;
            tar.finish()
        };
        Ok((stat, write))
    }
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
