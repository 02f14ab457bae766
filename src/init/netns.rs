//! The container's own network namespace: a new namespace has only `lo`, and it is
//! down; Docker's containers (`--network none` included) see it up.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::sys;

/// Brings the loopback interface of the current network namespace up.
pub fn loopback_up() -> io::Result<()> {
    let fd =
        sys::cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
            .map_err(|e| context(e, "open a socket"))?;
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    sys::cvt(unsafe { libc::ioctl(sys::raw(&sock), libc::SIOCGIFFLAGS, &mut req) })
        .map_err(|e| context(e, "read the flags of lo"))?;
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    sys::cvt(unsafe { libc::ioctl(sys::raw(&sock), libc::SIOCSIFFLAGS, &req) })
        .map_err(|e| context(e, "bring lo up"))?;
    Ok(())
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{what}: {}", crate::store::strip_os_suffix(&e)),
    )
}
