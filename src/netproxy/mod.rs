//! `dockerd network-proxy`: a container's network helper, re-executed from the
//! daemon's own binary like the container monitor and, like it, independent of the
//! daemon, so that a container's published ports and names keep working while the
//! daemon is stopped, restarted or crashed.
//!
//! One runs for each container that publishes ports or is on a user-defined network:
//! - it serves the container's published ports on the host (the userland proxy:
//!   loopback connections, which the kernel's DNAT does not translate), on listening
//!   sockets the daemon bound and handed over, so the host port was reserved before
//!   the container started;
//! - it is the container's embedded DNS server, on sockets the daemon opened inside
//!   the container's network namespace (127.0.0.11, redirected from port 53), with
//!   the names from `names.json` in exec-root.
//!
//! It ends when the container's monitor ends (it watches a pidfd of the monitor), or
//! on SIGTERM. The daemon starts it as `dockerd network-proxy --spec-fd 3` with a
//! [`ProxySpec`] on descriptor 3 and the sockets on the descriptors the spec names.

pub mod dns;
pub mod forward;
pub mod names;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The argv[1] that selects the proxy.
pub const SUBCOMMAND: &str = "network-proxy";

/// Everything the proxy needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProxySpec {
    pub container_id: String,
    /// The container's monitor: the proxy ends with it.
    pub monitor_pid: i32,
    pub forwards: Vec<Forward>,
    pub dns: Option<DnsSpec>,
}

/// A published port: a host socket (inherited descriptor) and where to relay.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Forward {
    pub fd: RawFd,
    /// `tcp` (a listening socket), `udp` (a bound socket), or `hold` (a socket kept
    /// open only to reserve the host port, with `userland-proxy: false`).
    pub proto: String,
    pub target: SocketAddr,
}

/// The embedded DNS server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DnsSpec {
    /// UDP and TCP sockets inside the container's namespace.
    pub udp_fd: RawFd,
    pub tcp_fd: RawFd,
    pub names_file: PathBuf,
    pub upstream: Vec<SocketAddr>,
}

/// Entry point for `dockerd network-proxy ARGS…`; returns the exit status.
pub fn main(args: &[OsString]) -> u8 {
    let spec_fd = crate::init::flag_fd(args, "--spec-fd");
    let Some(spec_fd) = spec_fd else {
        eprintln!(
            "dockerd network-proxy: no spec descriptor: this subcommand is started by the daemon for each container and is not meant to be run by hand"
        );
        return 125;
    };
    let spec_file = unsafe { OwnedFd::from_raw_fd(spec_fd) };
    let spec: ProxySpec = match crate::init::sys::read_to_end(spec_file.as_raw_fd())
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dockerd network-proxy: invalid spec: {e}");
            return 125;
        }
    };
    drop(spec_file);
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dockerd network-proxy: {e}");
            return 125;
        }
    };
    runtime.block_on(serve(spec));
    0
}

/// Serves until the monitor ends or SIGTERM arrives.
async fn serve(spec: ProxySpec) {
    let monitor = match pidfd(spec.monitor_pid) {
        Ok(fd) => fd,
        // Already gone: the container has ended.
        Err(_) => return,
    };
    // Host ports held for the kernel's translation, not served here.
    let mut held = Vec::new();
    for f in &spec.forwards {
        let fd = unsafe { OwnedFd::from_raw_fd(f.fd) };
        let _ = crate::init::sys::set_nonblocking(fd.as_raw_fd(), true);
        match f.proto.as_str() {
            "hold" => held.push(fd),
            "tcp" => {
                let std = std::net::TcpListener::from(fd);
                if let Ok(l) = tokio::net::TcpListener::from_std(std) {
                    tokio::spawn(forward::tcp(l, f.target));
                }
            }
            _ => {
                let std = std::net::UdpSocket::from(fd);
                if let Ok(s) = tokio::net::UdpSocket::from_std(std) {
                    tokio::spawn(forward::udp(s, f.target));
                }
            }
        }
    }
    if let Some(d) = &spec.dns {
        let resolver = Arc::new(dns::Resolver::new(
            spec.container_id.clone(),
            d.names_file.clone(),
            d.upstream.clone(),
        ));
        let udp = unsafe { OwnedFd::from_raw_fd(d.udp_fd) };
        let tcp = unsafe { OwnedFd::from_raw_fd(d.tcp_fd) };
        let _ = crate::init::sys::set_nonblocking(udp.as_raw_fd(), true);
        let _ = crate::init::sys::set_nonblocking(tcp.as_raw_fd(), true);
        if let Ok(s) = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(udp)) {
            tokio::spawn(dns::serve_udp(s, resolver.clone()));
        }
        if let Ok(l) = tokio::net::TcpListener::from_std(std::net::TcpListener::from(tcp)) {
            tokio::spawn(dns::serve_tcp(l, resolver));
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ended = async {
        // SAFETY: the pidfd is owned here and stays open as long as the AsyncFd.
        match unsafe { tokio::io::unix::AsyncFd::register(monitor) } {
            Ok(fd) => {
                let _ = fd.readable().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ended => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    drop(held);
}

/// A pidfd for `pid`: readable once the process has exited.
pub fn pidfd(pid: i32) -> std::io::Result<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
