//! The container's filesystem view, built inside its new mount namespace in the
//! order the kernel needs: the host's mounts stop propagating in (`/` rslave), the
//! root becomes a mount point of its own, `/proc`, `/sys`, `/sys/fs/cgroup` and a fresh
//! `/dev` go in, then the spec's binds (`/etc/hostname`, `/etc/hosts`,
//! `/etc/resolv.conf`), then `pivot_root` drops the host's tree, and finally the masked
//! and read-only paths and a read-only root are applied from inside.
//!
//! Nothing of the container runs yet while this happens, but its image is untrusted:
//! every path inside the root is resolved with [`secure_join`], so a symlink in the
//! image cannot point a mount or a new directory at the host.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::cgroup::{Hierarchy, Kind};
use super::spec::{ContainerSpec, DeviceNode, Mount, Shm};
use super::stdio::{self, Console};
use super::sys;
use crate::store::strip_os_suffix;

const MS_NOSUID: libc::c_ulong = libc::MS_NOSUID;
const MS_NODEV: libc::c_ulong = libc::MS_NODEV;
const MS_NOEXEC: libc::c_ulong = libc::MS_NOEXEC;
const MS_RDONLY: libc::c_ulong = libc::MS_RDONLY;

pub use crate::store::secure_join;

/// A failed step, worded for the client: `mount proc to /proc: operation not permitted`.
fn step(what: impl std::fmt::Display, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {}", strip_os_suffix(&e)))
}

fn mkdir_all(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| step(format_args!("create directory {}", path.display()), e))
}

/// Resolves `inside` (a container path) under `root` and creates it as a directory.
fn dir_in_root(root: &Path, inside: &str) -> io::Result<PathBuf> {
    let p = secure_join(root, Path::new(inside))?;
    mkdir_all(&p)?;
    Ok(p)
}

/// What [`prepare`] made that later steps need.
pub struct Prepared {
    pub console: Option<Console>,
}

/// Everything before `pivot_root`. `cgroups` are the hierarchies the container joined
/// (mounted read-only at `/sys/fs/cgroup` inside its cgroup namespace).
pub fn prepare(spec: &ContainerSpec, cgroups: &[Hierarchy]) -> io::Result<Prepared> {
    let root = spec.rootfs.as_path();
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .map_err(|e| step("make / a slave mount", e))?;
    sys::mount(Some(root), root, None, libc::MS_BIND | libc::MS_REC, None)
        .map_err(|e| step(format_args!("bind mount the root {}", root.display()), e))?;

    let proc_dir = dir_in_root(root, "/proc")?;
    sys::mount(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        MS_NOSUID | MS_NOEXEC | MS_NODEV,
        None,
    )
    .map_err(|e| step("mount proc to /proc", e))?;

    let ro = if spec.privileged { 0 } else { MS_RDONLY };
    let sys_dir = dir_in_root(root, "/sys")?;
    sys::mount(
        Some(Path::new("sysfs")),
        &sys_dir,
        Some("sysfs"),
        MS_NOSUID | MS_NOEXEC | MS_NODEV | ro,
        None,
    )
    .map_err(|e| step("mount sysfs to /sys", e))?;
    mount_cgroups(root, cgroups, ro)?;

    let console = mount_dev(spec)?;
    for m in &spec.mounts {
        match &m.tmpfs {
            Some(t) => tmpfs(root, m, t)?,
            None => bind(root, m)?,
        }
        if m.propagation != 0 {
            let target = secure_join(root, Path::new(&m.destination))?;
            sys::mount(None, &target, None, m.propagation as libc::c_ulong, None)
                .map_err(|e| step(format_args!("set the propagation of {}", m.destination), e))?;
        }
    }
    Ok(Prepared { console })
}

/// `/sys/fs/cgroup`: the unified hierarchy directly on a v2 host; otherwise a tmpfs
/// holding each hierarchy under its host name (`memory`, `cpu,cpuacct`, `unified`).
fn mount_cgroups(root: &Path, cgroups: &[Hierarchy], ro: libc::c_ulong) -> io::Result<()> {
    let base = Path::new("/sys/fs/cgroup");
    let target = secure_join(root, base)?;
    let flags = MS_NOSUID | MS_NOEXEC | MS_NODEV;
    let mount_one = |h: &Hierarchy, at: &Path| -> io::Result<()> {
        let (fstype, opts) = match h.kind {
            Kind::V2 => ("cgroup2", None),
            Kind::V1 { .. } => ("cgroup", h.mount_options()),
        };
        sys::mount(
            Some(Path::new(fstype)),
            at,
            Some(fstype),
            flags | ro,
            opts.as_deref(),
        )
        .map_err(|e| {
            step(
                format_args!("mount {fstype} to {}", h.mount_point.display()),
                e,
            )
        })
    };
    if let Some(unified) = cgroups.iter().find(|h| h.mount_point == base) {
        return mount_one(unified, &target);
    }
    let nested: Vec<(&Hierarchy, &Path)> = cgroups
        .iter()
        .filter_map(|h| Some((h, h.mount_point.strip_prefix(base).ok()?)))
        .filter(|(_, rel)| rel.components().count() == 1)
        .collect();
    if nested.is_empty() {
        return Ok(());
    }
    sys::mount(
        Some(Path::new("tmpfs")),
        &target,
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )
    .map_err(|e| step("mount tmpfs to /sys/fs/cgroup", e))?;
    for (h, rel) in nested {
        let at = target.join(rel);
        mkdir_all(&at)?;
        mount_one(h, &at)?;
    }
    if ro != 0 {
        sys::mount(
            None,
            &target,
            None,
            libc::MS_REMOUNT | flags | ro,
            Some("mode=755"),
        )
        .map_err(|e| step("remount /sys/fs/cgroup read-only", e))?;
    }
    Ok(())
}

/// The standard device nodes every container gets (name, major, minor).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// A fresh `/dev`: tmpfs with the standard nodes, its own devpts, shm, mqueue, the
/// `/proc/self/fd` links and, with a terminal, `/dev/console`.
fn mount_dev(spec: &ContainerSpec) -> io::Result<Option<Console>> {
    let root = spec.rootfs.as_path();
    let dev = dir_in_root(root, "/dev")?;
    sys::mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MS_NOSUID | libc::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| step("mount tmpfs to /dev", e))?;
    for &(name, major, minor) in DEVICES {
        make_node(
            &dev.join(name),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )?;
    }
    if spec.privileged {
        copy_host_devices(Path::new("/dev"), &dev)?;
    }
    for node in &spec.devices {
        add_device(root, node)?;
    }

    let pts = dev.join("pts");
    mkdir_all(&pts)?;
    sys::mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MS_NOSUID | MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(|e| step("mount devpts to /dev/pts", e))?;
    symlink("pts/ptmx", &dev.join("ptmx"))?;

    let shm = dev.join("shm");
    match &spec.shm {
        Shm::Private(size) => {
            mkdir_all(&shm)?;
            let data = if size % 1024 == 0 {
                format!("mode=1777,size={}k", size / 1024)
            } else {
                format!("mode=1777,size={size}")
            };
            sys::mount(
                Some(Path::new("shm")),
                &shm,
                Some("tmpfs"),
                MS_NOSUID | MS_NOEXEC | MS_NODEV,
                Some(&data),
            )
            .map_err(|e| step("mount shm to /dev/shm", e))?;
        }
        Shm::Bind(source) => {
            mkdir_all(&shm)?;
            sys::mount(Some(source), &shm, None, libc::MS_BIND, None)
                .map_err(|e| step(format_args!("bind {} to /dev/shm", source.display()), e))?;
        }
        Shm::None => {}
    }
    let mqueue = dev.join("mqueue");
    mkdir_all(&mqueue)?;
    sys::mount(
        Some(Path::new("mqueue")),
        &mqueue,
        Some("mqueue"),
        MS_NOSUID | MS_NOEXEC | MS_NODEV,
        None,
    )
    .map_err(|e| step("mount mqueue to /dev/mqueue", e))?;

    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("/proc/kcore", "core"),
    ] {
        symlink(target, &dev.join(name))?;
    }

    if !spec.tty {
        return Ok(None);
    }
    let console = stdio::open_console(&pts, spec.console_size)?;
    let console_path = dev.join("console");
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&console_path)
        .map_err(|e| step("create /dev/console", e))?;
    sys::mount(
        Some(&console.slave_path),
        &console_path,
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(|e| step("bind mount the terminal to /dev/console", e))?;
    Ok(Some(console))
}

fn make_node(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    sys::mknod(path, mode, dev).map_err(|e| step(format_args!("mknod {}", path.display()), e))?;
    // mknod honours the umask; the nodes must be 0666 (or the host's mode).
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| step(format_args!("chmod {}", path.display()), e))
}

/// A `--device` node at its path in the container, with the host node's mode and
/// owner; a node already there (one of the standard ones) is left as it is.
fn add_device(root: &Path, node: &DeviceNode) -> io::Result<()> {
    let target = secure_join(root, Path::new(&node.path))?;
    if let Some(parent) = target.parent() {
        mkdir_all(parent)?;
    }
    if fs::symlink_metadata(&target).is_ok() {
        return Ok(());
    }
    let kind = if node.kind == 'b' {
        libc::S_IFBLK
    } else {
        libc::S_IFCHR
    };
    make_node(
        &target,
        kind | node.mode,
        libc::makedev(node.major, node.minor),
    )?;
    std::os::unix::fs::lchown(&target, Some(node.uid), Some(node.gid))
        .map_err(|e| step(format_args!("chown {}", node.path), e))
}

fn symlink(target: &str, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
        .map_err(|e| step(format_args!("symlink {} to {target}", link.display()), e))
}

/// `--privileged`: every device node of the host, with its mode and owner.
fn copy_host_devices(host: &Path, dev: &Path) -> io::Result<()> {
    const SKIP: &[&str] = &[
        "pts", "shm", "fd", "mqueue", "console", "ptmx", ".lxc", ".udev",
    ];
    let Ok(entries) = fs::read_dir(host) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if SKIP.iter().any(|s| name.as_bytes() == s.as_bytes()) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let ft = meta.file_type();
        let target = dev.join(&name);
        if ft.is_dir() {
            mkdir_all(&target)?;
            copy_host_devices(&entry.path(), &target)?;
        } else if (ft.is_char_device() || ft.is_block_device()) && !target.exists() {
            make_node(&target, meta.mode(), meta.rdev())?;
            let _ = std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()));
        }
    }
    Ok(())
}

/// One of the spec's binds; the destination is created like the source when missing.
pub(crate) fn bind(root: &Path, m: &Mount) -> io::Result<()> {
    let meta = fs::metadata(&m.source)
        .map_err(|e| step(format_args!("bind mount source {}", m.source.display()), e))?;
    let target = secure_join(root, Path::new(&m.destination))?;
    if meta.is_dir() {
        mkdir_all(&target)?;
    } else {
        if let Some(parent) = target.parent() {
            mkdir_all(parent)?;
        }
        if fs::symlink_metadata(&target).is_err() {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&target)
                .map_err(|e| step(format_args!("create mount point {}", m.destination), e))?;
        }
    }
    let recursive = if m.non_recursive { 0 } else { libc::MS_REC };
    sys::mount(
        Some(&m.source),
        &target,
        None,
        libc::MS_BIND | recursive,
        None,
    )
    .map_err(|e| {
        step(
            format_args!("bind mount {} to {}", m.source.display(), m.destination),
            e,
        )
    })?;
    if m.readonly {
        // Read-only all the way down where the kernel can (as Docker's `rro`), else
        // the bind itself.
        let recursive = !m.non_recursive && sys::make_readonly_recursive(&target).is_ok();
        if !recursive {
            remount_readonly(&target)
                .map_err(|e| step(format_args!("make {} read-only", m.destination), e))?;
        }
    }
    Ok(())
}

/// A new tmpfs at the spec's destination (a directory, created when missing).
fn tmpfs(root: &Path, m: &Mount, t: &super::spec::Tmpfs) -> io::Result<()> {
    let target = dir_in_root(root, &m.destination)?;
    let mut flags = t.flags as libc::c_ulong;
    if m.readonly {
        flags |= MS_RDONLY;
    }
    sys::mount(
        Some(Path::new("tmpfs")),
        &target,
        Some("tmpfs"),
        flags,
        Some(&t.data),
    )
    .map_err(|e| step(format_args!("mount tmpfs to {}", m.destination), e))
}

/// Remounts the mount at `path` read-only, keeping its nosuid/nodev/noexec flags.
fn remount_readonly(path: &Path) -> io::Result<()> {
    let c = sys::cpath(path)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe { libc::statvfs(c.as_ptr(), &mut st) })?;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | MS_RDONLY;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, MS_NOSUID),
        (libc::ST_NODEV, MS_NODEV),
        (libc::ST_NOEXEC, MS_NOEXEC),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    sys::mount(None, path, None, flags, None)
}

/// Makes `root` the process's `/` and detaches the host's tree.
pub fn pivot(root: &Path) -> io::Result<()> {
    let old_root = sys::open(Path::new("/"), libc::O_DIRECTORY | libc::O_RDONLY, 0)
        .map_err(|e| step("open /", e))?;
    let new_root = sys::open(root, libc::O_DIRECTORY | libc::O_RDONLY, 0)
        .map_err(|e| step(format_args!("open {}", root.display()), e))?;
    fchdir(&new_root).map_err(|e| step(format_args!("chdir {}", root.display()), e))?;
    sys::pivot_root_here().map_err(|e| step(format_args!("pivot_root {}", root.display()), e))?;
    // The old root is stacked on the new one; unmount it from where it is.
    fchdir(&old_root).map_err(|e| step("chdir to the old root", e))?;
    sys::mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .map_err(|e| step("make the old root a slave mount", e))?;
    sys::umount_detach(Path::new(".")).map_err(|e| step("unmount the old root", e))?;
    sys::chdir(Path::new("/")).map_err(|e| step("chdir /", e))
}

fn fchdir(fd: &OwnedFd) -> io::Result<()> {
    sys::cvt(unsafe { libc::fchdir(fd.as_raw_fd()) }).map(drop)
}

/// After pivot_root: hides `masked` paths (a read-only empty tmpfs on a directory,
/// `/dev/null` on a file) and makes `readonly` paths read-only. Missing paths are
/// skipped, as Docker does.
pub fn restrict(masked: &[String], readonly: &[String]) -> io::Result<()> {
    for p in masked {
        let path = Path::new(p);
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(step(format_args!("mask {p}"), e)),
        };
        let res = if meta.is_dir() {
            sys::mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MS_RDONLY,
                None,
            )
        } else {
            sys::mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                libc::MS_BIND,
                None,
            )
        };
        res.map_err(|e| step(format_args!("mask {p}"), e))?;
    }
    for p in readonly {
        let path = Path::new(p);
        match sys::mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(step(format_args!("make {p} read-only"), e)),
        }
        remount_readonly(path).map_err(|e| step(format_args!("make {p} read-only"), e))?;
    }
    Ok(())
}

/// `--read-only`: the root mount itself becomes read-only (`/dev`, `/proc`, the binds
/// and other mounts keep their own flags).
pub fn readonly_root() -> io::Result<()> {
    remount_readonly(Path::new("/")).map_err(|e| step("make the root read-only", e))
}

/// The working directory, created (as root, before the user changes) when missing.
pub fn ensure_dir(cwd: &str) -> io::Result<()> {
    let path = Path::new(if cwd.is_empty() { "/" } else { cwd });
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("Cannot mkdir: {} is not a directory", path.display()),
        )),
        Err(_) => mkdir_all(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_dir_creates_and_refuses_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        ensure_dir(d.to_str().unwrap()).unwrap();
        assert!(d.is_dir());
        let f = dir.path().join("file");
        fs::write(&f, b"").unwrap();
        let err = ensure_dir(f.to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}
