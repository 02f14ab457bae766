//! `dockerd init`: the container monitor, re-executed from the daemon's own binary.
//!
//! The daemon starts it as `dockerd init --spec-fd 3 --sync-fd 4` with the container's
//! [`spec::ContainerSpec`] on the spec descriptor; the monitor answers on the sync
//! descriptor and then serves the container until it exits (see [`spec`] for the
//! whole contract). Run by hand (or without that descriptor) it refuses with exit 125,
//! the status Docker uses for failures of the engine itself.
//!
//! The monitor is single-threaded by design: it forks (clones) the container's
//! process, which is only safe without other threads.
//!
//! | file | job |
//! | --- | --- |
//! | `monitor.rs` | start sequence and the event loop (output, log, attach, control, exit) |
//! | `container.rs` | the container's process, from clone to exec |
//! | `rootfs.rs` | mounts, pivot_root, masked and read-only paths |
//! | `cgroup.rs`, `devices.rs` | cgroup v1/v2/hybrid directories, device rules (v1 text, v2 eBPF), cpuset, removal |
//! | `stdio.rs`, `attach.rs` | pipes and terminal, attach framing |
//! | `logger.rs`, `logfile.rs`, `journald.rs` | the container's log: json-file, or journald's native protocol |
//! | `user.rs`, `caps.rs`, `exec.rs` | user lookup, capabilities, PATH lookup and exec errors |
//! | `init_process.rs` | the `--init` PID 1 |
//! | `network.rs` | undoing the container's networking when it exits |
//! | `sys.rs`, `control.rs` | syscall wrappers, control socket framing |

pub mod attach;
pub mod caps;
pub mod cgroup;
pub mod container;
pub mod control;
pub mod devices;
pub mod exec;
pub mod init_process;
pub mod journald;
pub mod logfile;
pub mod logger;
pub mod monitor;
pub mod network;
pub mod resources;
pub mod rootfs;
pub mod security;
pub mod spec;
pub mod stdio;
pub mod sys;
pub mod user;

use std::ffi::OsString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use spec::{ContainerSpec, SyncMessage};

/// The argv[1] that selects the monitor.
pub const SUBCOMMAND: &str = "init";

/// Exit status when the monitor cannot do its job (Docker's 125).
pub const EXIT_MONITOR_FAILED: u8 = 125;

/// Entry point for `dockerd init ARGS…`; returns the exit status.
pub fn main(args: &[OsString]) -> u8 {
    let spec_fd = flag_value(args, "--spec-fd").filter(|&fd| fd > 2 && sys::fd_is_open(fd));
    let Some(spec_fd) = spec_fd else {
        eprintln!(
            "dockerd init: no container spec descriptor: this subcommand is started by the daemon \
             for each container (with --spec-fd N) and is not meant to be run by hand"
        );
        return EXIT_MONITOR_FAILED;
    };
    let spec_file = unsafe { OwnedFd::from_raw_fd(spec_fd) };
    let sync = flag_value(args, "--sync-fd")
        .filter(|&fd| fd > 2 && fd != spec_fd && sys::fd_is_open(fd))
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let Some(sync) = sync else {
        eprintln!(
            "dockerd init: no sync descriptor (--sync-fd N): the daemon could not learn whether the container started"
        );
        return EXIT_MONITOR_FAILED;
    };
    let _ = sys::set_cloexec(sys::raw(&sync), true);

    let spec = read_spec(&spec_file);
    drop(spec_file);
    let spec = match spec {
        Ok(s) => s,
        Err(message) => {
            let failed = SyncMessage::Failed {
                message,
                exit_code: container::EXIT_SETUP_FAILED,
            };
            let _ = sys::write_all(sys::raw(&sync), &control::encode_line(&failed));
            return EXIT_MONITOR_FAILED;
        }
    };

    detach_from_daemon();
    let initial_attach = spec
        .initial_attach
        .iter()
        .filter(|a| a.fd > 2 && sys::fd_is_open(a.fd))
        .map(|a| {
            let _ = sys::set_cloexec(a.fd, true);
            (unsafe { OwnedFd::from_raw_fd(a.fd) }, a.streams)
        })
        .collect();
    monitor::run(spec, sync, initial_attach)
}

/// The monitor outlives the daemon: its own session, deaf to the hangup and broken
/// pipes a departing daemon causes.
pub(crate) fn detach_from_daemon() {
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

fn read_spec(fd: &OwnedFd) -> Result<ContainerSpec, String> {
    let bytes =
        sys::read_to_end(sys::raw(fd)).map_err(|e| format!("read the container spec: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid container spec: {e}"))
}

/// The descriptor passed as `NAME N` or `NAME=N`, when it is open and not stdio.
pub fn flag_fd(args: &[OsString], name: &str) -> Option<RawFd> {
    flag_value(args, name).filter(|&fd| fd > 2 && sys::fd_is_open(fd))
}

fn flag_value(args: &[OsString], name: &str) -> Option<RawFd> {
    let mut it = args.iter().map(|a| a.to_string_lossy());
    let prefix = format!("{name}=");
    while let Some(a) = it.next() {
        if a == name {
            return it.next()?.parse().ok();
        }
        if let Some(v) = a.strip_prefix(&prefix) {
            return v.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_both_forms() {
        let args: Vec<OsString> = ["--spec-fd", "3", "--sync-fd=4"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(flag_value(&args, "--spec-fd"), Some(3));
        assert_eq!(flag_value(&args, "--sync-fd"), Some(4));
        assert_eq!(flag_value(&args, "--other"), None);
    }
}
