//! Seccomp: Docker's profile format, its default profile, and a compiler from a
//! profile to the classic BPF program the kernel runs on every system call.
//!
//! The compiler is this crate's own rather than libseccomp's: the daemon needs
//! only Docker's profile semantics and the x86_64 and i386 numbering, a filter is
//! built in microseconds from data compiled into the binary, the packages need no
//! C library at build or run time, and the monitor installs the instructions with
//! one system call.

pub mod bpf;
mod default;
mod profile;
mod syscalls;

pub use default::builtin;
pub use profile::{Profile, Target, compile, kernel_version, parse, supported};

/// Whether the kernel has seccomp filters: `prctl(PR_SET_SECCOMP,
/// SECCOMP_MODE_FILTER, NULL)` fails with `EFAULT` where it does, `EINVAL` where it
/// does not (the way Docker probes).
pub fn kernel_supports_filters() -> bool {
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            std::ptr::null::<libc::c_void>(),
            0,
            0,
        )
    };
    r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
}
