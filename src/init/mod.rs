//! `dockerd init`: the container monitor, re-executed from the daemon's own binary.
//!
//! The daemon starts it with the container's spec on an inherited descriptor named by
//! `--spec-fd N`. Run by hand (or without that descriptor) it refuses with exit 125,
//! the status Docker uses for failures of the engine itself.

pub mod spec;

use std::ffi::OsString;

/// The argv[1] that selects the monitor.
pub const SUBCOMMAND: &str = "init";

/// Exit status when the monitor cannot do its job (Docker's 125).
pub const EXIT_MONITOR_FAILED: u8 = 125;

/// Entry point for `dockerd init ARGS…`; returns the exit status.
pub fn main(args: &[OsString]) -> u8 {
    let fd = parse_spec_fd(args);
    match fd {
        Some(fd) if fd_is_open(fd) => {
            eprintln!("dockerd init: the container monitor is not available in this build");
            EXIT_MONITOR_FAILED
        }
        _ => {
            eprintln!(
                "dockerd init: no container spec descriptor: this subcommand is started by the daemon \
                 for each container (with --spec-fd N) and is not meant to be run by hand"
            );
            EXIT_MONITOR_FAILED
        }
    }
}

fn parse_spec_fd(args: &[OsString]) -> Option<i32> {
    let mut it = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        if a == "--spec-fd" {
            return it.next()?.parse().ok();
        }
        if let Some(v) = a.strip_prefix("--spec-fd=") {
            return v.parse().ok();
        }
    }
    None
}

fn fd_is_open(fd: i32) -> bool {
    fd >= 0
        && nix::fcntl::fcntl(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_GETFD,
        )
        .is_ok()
}
