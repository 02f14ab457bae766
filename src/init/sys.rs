//! Checked wrappers around the raw system calls of the monitor and the container's
//! setup: each returns `io::Result` and retries `EINTR`, so the callers read as a list
//! of steps. Nothing here decides policy; that lives in the modules that call these.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `-1` → the thread's `errno` as an `io::Error`.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Repeats `f` while it fails with `EINTR`.
pub fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A path as a C string; a NUL byte inside is an `InvalidInput` error naming the path.
pub fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {:?} contains a NUL byte", path.display()),
        )
    })
}

/// A string as a C string (NUL bytes are an error).
pub fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} contains a NUL byte"),
        )
    })
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| {
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
}

pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    retry(|| {
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
}

/// Writes all of `buf` to a blocking descriptor.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = write(fd, buf)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Reads a blocking descriptor to EOF.
pub fn read_to_end(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = read(fd, &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec stream socket pair.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    if new != flags {
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) })?;
    }
    Ok(())
}

/// Whether `fd` names an open descriptor.
pub fn fd_is_open(fd: RawFd) -> bool {
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
}

/// `dup2(src, dst)`; the new descriptor is not close-on-exec.
pub fn dup2(src: RawFd, dst: RawFd) -> io::Result<()> {
    if src == dst {
        return set_cloexec(dst, false);
    }
    retry(|| cvt(unsafe { libc::dup2(src, dst) })).map(drop)
}

/// Marks every descriptor from `first` up close-on-exec, so nothing the monitor holds
/// leaks into the container's command.
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk /proc/self/fd instead.
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let name = entry?.file_name();
        if let Ok(fd) = name.to_string_lossy().parse::<RawFd>()
            && fd >= first
        {
            let _ = set_cloexec(fd, true);
        }
    }
    Ok(())
}

/// Closes every descriptor from `first` up.
pub fn close_from(first: RawFd) {
    close_range(first, RawFd::MAX);
}

/// Closes every descriptor from 3 up except those in `keep`.
pub fn close_all_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut next = 3;
    for fd in keep {
        if fd > next {
            close_range(next, fd - 1);
        }
        next = fd + 1;
    }
    close_from(next);
}

/// Closes descriptors `first..=last`.
fn close_range(first: RawFd, last: RawFd) {
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0,
        )
    };
    if r != 0 {
        for fd in first..=last.min(1023) {
            unsafe { libc::close(fd) };
        }
    }
}

/// `mount(2)`. `None` arguments are passed as NULL.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cpath).transpose()?;
    let target = cpath(target)?;
    let fstype = fstype.map(cstring).transpose()?;
    let data = data.map(cstring).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    cvt(unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    })
    .map(drop)
}

/// Makes the mount at `target` and every mount below it read-only
/// (`mount_setattr(2)` with `AT_RECURSIVE`, Linux 5.12 and later).
pub fn make_readonly_recursive(target: &Path) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let path = cpath(target)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid C string and a mount_attr of the size passed.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Lazily detaches the mount at `target`.
pub fn umount_detach(target: &Path) -> io::Result<()> {
    let target = cpath(target)?;
    cvt(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) }).map(drop)
}

/// `pivot_root(".", ".")`: the old root ends up stacked on the new one, ready to be
/// detached; no directory for the old root is needed in the container's tree.
pub fn pivot_root_here() -> io::Result<()> {
    let dot = c".";
    cvt_long(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) }).map(drop)
}

pub fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let p = cpath(path)?;
    cvt(unsafe { libc::mknod(p.as_ptr(), mode, dev) }).map(drop)
}

pub fn chdir(path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    cvt(unsafe { libc::chdir(p.as_ptr()) }).map(drop)
}

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Like [`clone_process`], but the child starts in the cgroup v2 directory `cgroup`
/// (`CLONE_INTO_CGROUP`, Linux 5.7). `Err` with `ENOSYS`, `E2BIG` or `EINVAL` means
/// the kernel cannot do that; the caller falls back to [`clone_process`].
pub fn clone_into_cgroup(flags: libc::c_int, cgroup: RawFd) -> io::Result<Option<libc::pid_t>> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: flags as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // With no stack given, the child runs on a copy of the parent's, as with fork(2).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid as libc::pid_t)),
    }
}

/// Creates a process like `fork(2)`, in the new namespaces named by `flags`
/// (`CLONE_NEW*`). Returns the child's PID in the parent, `None` in the child.
///
/// The monitor is single-threaded, so the child may keep using the allocator.
pub fn clone_process(flags: libc::c_int) -> io::Result<Option<libc::pid_t>> {
    // With a NULL stack, clone(2) behaves like fork(2): the child runs on a copy of
    // the parent's stack. x86_64 and aarch64 share the argument order used here.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid as libc::pid_t)),
    }
}

pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    cvt(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// How a process ended, as `waitpid(2)` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The status Docker records: the exit code, or 128 + the signal number.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Reaps one exited child (`pid` or any with -1) without blocking.
pub fn reap(pid: libc::pid_t) -> io::Result<Option<(libc::pid_t, Exit)>> {
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Ok(None);
        }
        if libc::WIFEXITED(status) {
            return Ok(Some((r, Exit::Code(libc::WEXITSTATUS(status)))));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(Some((r, Exit::Signal(libc::WTERMSIG(status)))));
        }
        // Stopped or continued: not an exit; keep looking.
    }
}

/// Sets a terminal's window size; the kernel sends SIGWINCH to its foreground group.
pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// Opens `path` with `flags | O_CLOEXEC`.
pub fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let p = cpath(path)?;
    let fd = retry(|| {
        cvt(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Leaves the process at once, without running destructors or atexit handlers (the
/// only safe way out of a forked child that shares buffers with its parent).
pub fn exit_now(code: i32) -> ! {
    unsafe { libc::_exit(code) }
}

/// Resets the signal mask and the dispositions the monitor changed, so the command
/// starts with the defaults a process expects (Rust's runtime ignores SIGPIPE).
pub fn reset_signals() {
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Blocks `signals` for the calling thread and returns the previous mask.
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        cvt(libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old))?;
        Ok(old)
    }
}

/// A close-on-exec, non-blocking signalfd for `signals` (which must be blocked).
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        let fd = cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Empties a non-blocking signalfd; returns the signal numbers read.
pub fn drain_signalfd(fd: RawFd) -> Vec<i32> {
    let mut out = Vec::new();
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    loop {
        let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n != size as isize {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return out;
        }
        out.push(info.ssi_signo as i32);
    }
}

/// Sends one descriptor over a unix socket (SCM_RIGHTS) with a one-byte payload.
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    send_with_fds(sock, &[0u8], &[fd]).map(drop)
}

/// Sends `data` with `fds` attached to its first byte (SCM_RIGHTS); returns how many
/// bytes went (the descriptors went with the first of them).
pub fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let iov = [io::IoSlice::new(data)];
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let cmsgs = if fds.is_empty() { &[][..] } else { &cmsgs[..] };
    retry(|| {
        sendmsg::<()>(sock, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None).map_err(io::Error::from)
    })
}

/// Most descriptors [`recv_with_fds`] takes with one read.
pub const MAX_FDS_PER_MESSAGE: usize = 16;

/// Reads into `buf` like `read(2)`, appending the descriptors that came with the
/// bytes (close-on-exec) to `fds`. More than [`MAX_FDS_PER_MESSAGE`] in one message
/// is an error, after every descriptor the kernel did pass was taken (and so closes).
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    // u64s keep the control buffer aligned for `cmsghdr`.
    let mut control = [0u64; 2 + MAX_FDS_PER_MESSAGE / 2];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = retry(|| {
        let r = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    })?;
    // Owned at once, so none leaks whatever happens next.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let len = (*c).cmsg_len as usize - (data as usize - c as usize);
                let data = data.cast::<RawFd>();
                for k in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(k))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more file descriptors than expected came with a message",
        ));
    }
    Ok(n)
}

/// Receives one descriptor sent by [`send_fd`]; `None` when the peer closed first.
pub fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut fds = Vec::new();
    let n = recv_with_fds(sock, &mut byte, &mut fds)?;
    // Every descriptor received is owned here, so extra ones are closed, not leaked.
    match fds.into_iter().next() {
        Some(fd) => Ok(Some(fd)),
        None if n == 0 => Ok(None),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected a file descriptor on the console socket",
        )),
    }
}

/// `prctl(2)` with one argument.
pub fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    cvt(unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
}

/// Sets the calling process's name (`/proc/self/comm`, 15 bytes at most).
pub fn set_process_name(name: &CStr) {
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// The raw descriptor of anything that has one (shorthand for call sites).
pub fn raw(fd: &impl AsRawFd) -> RawFd {
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_come_with_their_bytes_and_too_many_are_all_closed() {
        let (a, b) = socketpair().unwrap();
        let (p, q) = pipe().unwrap();
        let sent =
            send_with_fds(a.as_raw_fd(), b"line\n", &[p.as_raw_fd(), q.as_raw_fd()]).unwrap();
        assert_eq!(sent, 5);
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        let n = recv_with_fds(b.as_raw_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"line\n");
        assert_eq!(fds.len(), 2);
        // The received write end works: a byte written there comes out of `p`.
        write_all(fds[1].as_raw_fd(), b"x").unwrap();
        let mut one = [0u8; 1];
        assert_eq!(read(p.as_raw_fd(), &mut one).unwrap(), 1);
        drop(fds);

        // More than a message may carry: an error, and every copy of the pipe's
        // write end that came is closed (the read end then sees EOF, not EAGAIN).
        let many: Vec<RawFd> = vec![q.as_raw_fd(); MAX_FDS_PER_MESSAGE + 4];
        send_with_fds(a.as_raw_fd(), b"y", &many).unwrap();
        drop(q);
        let mut fds = Vec::new();
        assert!(recv_with_fds(b.as_raw_fd(), &mut buf, &mut fds).is_err());
        assert_eq!(fds.len(), MAX_FDS_PER_MESSAGE);
        drop(fds);
        set_nonblocking(p.as_raw_fd(), true).unwrap();
        assert_eq!(read(p.as_raw_fd(), &mut one).unwrap(), 0);
    }

    #[test]
    fn close_all_except_keeps_only_what_it_is_told() {
        let (p, q) = pipe().unwrap();
        let (r, s) = pipe().unwrap();
        // Run in a child: the test process's other descriptors must stay.
        match clone_process(0).unwrap() {
            None => {
                close_all_except(&[q.as_raw_fd(), r.as_raw_fd()]);
                let open = |fd: &OwnedFd| fd_is_open(fd.as_raw_fd());
                let ok = !open(&p) && open(&q) && open(&r) && !open(&s);
                exit_now(if ok { 0 } else { 1 });
            }
            Some(pid) => {
                drop((p, s));
                let mut status = 0;
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "{status}"
                );
            }
        }
    }
}
