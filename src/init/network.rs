//! Undoing a container's networking when it exits, from `state_dir/network.json`
//! (see [`NetworkTeardown`]): its network proxies stop (freeing its host ports), its
//! published ports' firewall rules go, and its namespace file is unmounted, after
//! which the kernel removes its interfaces.

use std::path::Path;

use super::spec::{NETWORK_FILE, NetworkTeardown};

/// Undoes what `network.json` lists; true when all of it is gone (or there was none).
pub fn teardown(state_dir: &Path) -> bool {
    let bytes = match std::fs::read(state_dir.join(NETWORK_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(_) => return false,
    };
    let Ok(t) = serde_json::from_slice::<NetworkTeardown>(&bytes) else {
        return false;
    };
    run(&t)
}

/// The steps, in order; shared with the daemon, which runs them for a container
/// whose monitor could not.
pub fn run(t: &NetworkTeardown) -> bool {
    let mut ok = true;
    for pid in &t.proxies {
        stop_proxy(*pid);
    }
    if let Some(tools) = &t.iptables
        && !t.rules.is_empty()
        && tools.delete(&t.rules, None).is_err()
    {
        ok = false;
    }
    if let Some(ns) = &t.netns
        && crate::net::netns::remove(ns).is_err()
    {
        ok = false;
    }
    ok
}

/// Kills a network proxy and waits (briefly) until it is gone, so its sockets are
/// closed. A PID that is no longer a network proxy is left alone.
fn stop_proxy(pid: i32) {
    let Ok(fd) = crate::netproxy::pidfd(pid) else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_proxy = cmdline
        .split(|&b| b == 0)
        .any(|arg| arg == crate::netproxy::SUBCOMMAND.as_bytes());
    if !is_proxy {
        return;
    }
    use std::os::fd::AsRawFd;
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    unsafe { libc::poll(&mut pfd, 1, 2000) };
}
