//! The last restrictions a container's process takes on before exec: the
//! `no_new_privs` bit, the AppArmor profile for the exec, and the seccomp filter
//! the daemon compiled.
//!
//! Installing a filter needs `no_new_privs` or `CAP_SYS_ADMIN`. So, as runc does,
//! a process without `no_new_privs` installs it while it still holds its
//! capabilities (the filter must then let the last steps through, which Docker's
//! profiles do), and one with it installs it as late as possible, just before exec.

use std::io;

use super::spec::{PackedSockFilter, SockFilter};
use super::sys;

/// Sets `no_new_privs`: from here on, exec never raises privileges.
pub fn set_no_new_privileges() -> io::Result<()> {
    sys::cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
        .map(drop)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("set no_new_privs: {}", crate::store::strip_os_suffix(&e)),
            )
        })
}

/// Installs the filter on the calling thread; the process is single-threaded
/// here, and children inherit it.
pub fn install_seccomp(packed: &[PackedSockFilter]) -> io::Result<()> {
    let insns: Vec<libc::sock_filter> = packed
        .iter()
        .map(|p| {
            let f = SockFilter::unpack(*p);
            libc::sock_filter {
                code: f.code,
                jt: f.jt,
                jf: f.jf,
                k: f.k,
            }
        })
        .collect();
    let len = u16::try_from(insns.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp filter too long"))?;
    let prog = libc::sock_fprog {
        len,
        filter: insns.as_ptr().cast_mut(),
    };
    sys::cvt(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        ) as libc::c_int
    })
    .map(drop)
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "error loading seccomp filter into kernel: loading seccomp filter: {}",
                crate::store::strip_os_suffix(&e).to_lowercase()
            ),
        )
    })
}

/// Asks AppArmor to put the next exec under `profile`. A profile that is not
/// loaded makes the kernel answer `ENOENT`.
pub fn apparmor_exec(profile: &str) -> io::Result<()> {
    // Kernels with stacked LSMs have AppArmor's own directory; older ones only the
    // shared file.
    let path = if std::path::Path::new("/proc/self/attr/apparmor").is_dir() {
        "/proc/self/attr/apparmor/exec"
    } else {
        "/proc/self/attr/exec"
    };
    std::fs::write(path, format!("exec {profile}")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "apparmor failed to apply profile {profile:?}: write {path}: {}",
                crate::store::strip_os_suffix(&e).to_lowercase()
            ),
        )
    })
}
