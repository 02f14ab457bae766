//! Network namespaces kept as files: a new namespace is bind-mounted onto a file
//! (as `ip netns add` does), so it outlives the thread that made it and any process
//! can join it by path. Work inside a namespace runs on a short-lived thread that
//! joins it, so the calling thread (and the daemon's runtime) never changes namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::netlink::context;

/// Creates a network namespace with `lo` up and binds it onto `path` (created, and
/// its directory too).
pub fn create(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::store::with_path(e, "create", dir))?;
    }
    File::create(path).map_err(|e| crate::store::with_path(e, "create", path))?;
    let target = path.to_path_buf();
    let made = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(context(
                    io::Error::last_os_error(),
                    "create a network namespace",
                ));
            }
            loopback_up()?;
            let tid = unsafe { libc::syscall(libc::SYS_gettid) };
            let own = format!("/proc/self/task/{tid}/ns/net");
            nix::mount::mount(
                Some(Path::new(&own)),
                &target,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| {
                context(
                    io::Error::from_raw_os_error(e as i32),
                    &format!("bind the network namespace to {}", target.display()),
                )
            })
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    });
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Unbinds and removes a namespace file made by [`create`]; the namespace itself ends
/// when its last process leaves. A path that is not there is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(context(
                io::Error::from_raw_os_error(e as i32),
                &format!("unmount {}", path.display()),
            ));
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::store::with_path(e, "remove", path)),
    }
}

/// Runs `f` on a thread inside the network namespace at `path` (a namespace file, or
/// `/proc/PID/ns/net`). Sockets `f` opens stay in that namespace.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let ns =
        File::open(path).map_err(|e| crate::store::with_path(e, "open network namespace", path))?;
    run_in_fd(&ns, f)
}

/// [`run_in`] with an open namespace file.
pub fn run_in_fd<T: Send>(ns: &File, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(context(
                    io::Error::last_os_error(),
                    "join the network namespace",
                ));
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}

/// Brings the loopback interface of the calling thread's network namespace up.
pub fn loopback_up() -> io::Result<()> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(context(io::Error::last_os_error(), "open a socket"));
    }
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(context(io::Error::last_os_error(), "read the flags of lo"));
    }
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(context(io::Error::last_os_error(), "bring lo up"));
    }
    Ok(())
}
