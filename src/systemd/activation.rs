//! Socket activation (`LISTEN_PID`/`LISTEN_FDS`): the sockets systemd (or
//! `systemd-socket-activate`) opened for us, for `-H fd://` and `-H fd://N`.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// A passed listening socket, by kind.
#[derive(Debug)]
pub enum PassedSocket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// The descriptors passed to this process, not yet claimed.
#[derive(Debug, Default)]
pub struct Activated {
    fds: Vec<(RawFd, Option<OwnedFd>)>,
}

/// Takes the passed descriptors (only when `LISTEN_PID` names this process) and removes
/// every `LISTEN_*` variable from the environment.
///
/// # Safety
/// Modifies the environment: call only while the process has a single thread.
pub unsafe fn take_from_env() -> Activated {
    let listen = listenfd::ListenFd::from_env();
    let n = listen.len();
    let mut listen = listen;
    let mut fds = Vec::with_capacity(n);
    for idx in 0..n {
        // take_raw_fd marks nothing and closes nothing: the fd is ours from here on.
        if let Ok(Some(fd)) = listen.take_raw_fd(idx) {
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let _ = nix::fcntl::fcntl(
                &owned,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            fds.push((fd, Some(owned)));
        }
    }
    for var in [
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
        "LISTEN_FDS_FIRST_FD",
    ] {
        unsafe { std::env::remove_var(var) };
    }
    Activated { fds }
}

impl Activated {
    /// Descriptor numbers passed, claimed or not.
    pub fn passed(&self) -> Vec<RawFd> {
        self.fds.iter().map(|(n, _)| *n).collect()
    }

    /// Every passed socket (`fd://`).
    pub fn take_all(&mut self) -> Result<Vec<PassedSocket>, String> {
        if self.fds.is_empty() {
            return Err(no_sockets());
        }
        let mut out = Vec::new();
        for (n, slot) in &mut self.fds {
            if let Some(fd) = slot.take() {
                out.push(classify(*n, fd)?);
            }
        }
        Ok(out)
    }

    /// Descriptor `n` only (`fd://N`); the other passed sockets are closed, as Docker does.
    pub fn take(&mut self, n: RawFd) -> Result<PassedSocket, String> {
        if self.fds.is_empty() {
            return Err(no_sockets());
        }
        let passed = self.passed();
        let slot = self.fds.iter_mut().find(|(fd, _)| *fd == n);
        let fd = match slot {
            Some((_, slot)) => slot
                .take()
                .ok_or_else(|| format!("fd://{n} is named twice"))?,
            None => {
                let list: Vec<String> = passed.iter().map(|p| p.to_string()).collect();
                return Err(format!(
                    "socket activation: descriptor {n} was not passed by systemd (passed: {})",
                    list.join(", ")
                ));
            }
        };
        let sock = classify(n, fd)?;
        self.close_unclaimed();
        Ok(sock)
    }

    /// Closes every descriptor nobody claimed.
    pub fn close_unclaimed(&mut self) {
        for (_, slot) in &mut self.fds {
            slot.take();
        }
    }
}

fn no_sockets() -> String {
    "no sockets found via socket activation: make sure the service was started by systemd"
        .to_string()
}

fn classify(n: RawFd, fd: OwnedFd) -> Result<PassedSocket, String> {
    let bad = |why: &str| format!("socket activation: descriptor {n} {why}");
    let ty =
        getsockopt(&fd, sockopt::SockType).map_err(|e| bad(&format!("is not a socket: {e}")))?;
    if ty != SockType::Stream {
        return Err(bad("is not a stream socket"));
    }
    let listening = getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false);
    if !listening {
        return Err(bad("is not a listening socket"));
    }
    let addr: SockaddrStorage =
        getsockname(fd.as_raw_fd()).map_err(|e| bad(&format!("has no address: {e}")))?;
    match addr.family() {
        Some(AddressFamily::Unix) => Ok(PassedSocket::Unix(UnixListener::from(fd))),
        Some(AddressFamily::Inet) | Some(AddressFamily::Inet6) => {
            Ok(PassedSocket::Tcp(TcpListener::from(fd)))
        }
        _ => Err(bad("is neither a unix nor a tcp socket")),
    }
}
