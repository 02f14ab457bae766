//! Opening the API listeners for `-H`/`hosts`, before the runtime starts: sockets
//! passed by systemd, unix sockets we create (0660, group from `-G`), and TCP: on
//! any address with `--tlsverify` (clients must show a certificate of the CA), on
//! loopback only without it. TLS itself wraps each TCP connection when served.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::config::Host;
use crate::config::hosts::all_loopback;
use crate::config::tls::TlsConfig;
use crate::systemd::Activated;
use crate::systemd::activation::PassedSocket;

/// The group `-G` defaults to; only a missing default group is forgiven.
const DEFAULT_GROUP: &str = "docker";

/// An opened listener and what to call it in logs.
pub struct Opened {
    pub socket: PassedSocket,
    pub describe: String,
    /// A unix socket file this daemon created (removed again on exit).
    pub created: Option<PathBuf>,
}

/// Opens every host. Errors are worded for the operator.
pub fn open_all(
    hosts: &[Host],
    group: &str,
    activated: &mut Activated,
    tls: Option<&TlsConfig>,
) -> Result<Vec<Opened>, String> {
    let mut out = Vec::new();
    let mut used_fds = false;
    for host in hosts {
        match host {
            Host::Fd(None) => {
                used_fds = true;
                for s in activated.take_all()? {
                    check_passed(&s, tls)?;
                    let describe = describe_passed(&s);
                    out.push(Opened {
                        socket: s,
                        describe,
                        created: None,
                    });
                }
            }
            Host::Fd(Some(n)) => {
                used_fds = true;
                let s = activated.take(*n)?;
                check_passed(&s, tls)?;
                let describe = describe_passed(&s);
                out.push(Opened {
                    socket: s,
                    describe,
                    created: None,
                });
            }
            Host::Unix(path) => {
                let l = open_unix(path, group)?;
                out.push(Opened {
                    socket: PassedSocket::Unix(l),
                    describe: path.display().to_string(),
                    created: Some(path.clone()),
                });
            }
            Host::Tcp { .. } => {
                let addrs = host
                    .tcp_addrs()
                    .map_err(|e| format!("failed to resolve {host}: {e}"))?;
                check_tcp(&addrs, &format!("listen on {host}"), tls)?;
                let l = std::net::TcpListener::bind(&addrs[..]).map_err(|e| {
                    format!(
                        "failed to listen on {host}: {}",
                        crate::store::strip_os_suffix(&e)
                    )
                })?;
                out.push(Opened {
                    socket: PassedSocket::Tcp(l),
                    describe: host.to_string(),
                    created: None,
                });
            }
        }
    }
    if !used_fds {
        // Sockets passed but not asked for: close them rather than leak them.
        activated.close_unclaimed();
    }
    Ok(out)
}

/// Plain HTTP, and TLS without client certificates, only on loopback: anyone who
/// reaches the API is root on the host. `what` says what is refused.
fn check_tcp(
    addrs: &[std::net::SocketAddr],
    what: &str,
    tls: Option<&TlsConfig>,
) -> Result<(), String> {
    let verified = tls.is_some_and(|t| t.verify);
    if !verified && !all_loopback(addrs) {
        return Err(format!(
            "refusing to {what} without --tlsverify: Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network. \
             Use --tlsverify with --tlscacert, --tlscert and --tlskey, or listen on a loopback address (tcp://127.0.0.1:2375) or a unix socket"
        ));
    }
    let bare: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let bare = bare.join(", ");
    match tls {
        None => tracing::warn!(
            "API is accessible on http://{bare} without encryption. Access to the remote API is equivalent to root access on the host."
        ),
        Some(t) if !t.verify => tracing::warn!(
            "API is accessible on https://{bare} without client certificates (--tlsverify=false): anyone who can reach it has root access on the host."
        ),
        Some(_) => {}
    }
    Ok(())
}

/// A TCP socket systemd passed is held to the rules of `-H tcp://`.
fn check_passed(s: &PassedSocket, tls: Option<&TlsConfig>) -> Result<(), String> {
    match s {
        PassedSocket::Tcp(l) => {
            let addr = l
                .local_addr()
                .map_err(|e| format!("failed to read the address of a passed socket: {e}"))?;
            check_tcp(
                &[addr],
                &format!("serve the TCP socket {addr} systemd passed"),
                tls,
            )
        }
        PassedSocket::Unix(_) => Ok(()),
    }
}

fn describe_passed(s: &PassedSocket) -> String {
    match s {
        PassedSocket::Unix(l) => l
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_else(|| "a unix socket from systemd".to_string()),
        PassedSocket::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
    }
}

/// Binds a unix socket: parent directory created, a stale socket replaced, mode 0660,
/// group `group` (a missing default group is a warning).
fn open_unix(path: &Path, group: &str) -> Result<UnixListener, String> {
    let fail = |what: &str, e: std::io::Error| {
        format!(
            "failed to {what} {}: {}",
            path.display(),
            crate::store::strip_os_suffix(&e)
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of", e))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| fail("remove stale socket", e))?
        }
        Ok(_) => {
            return Err(format!(
                "cannot listen on {}: it exists and is not a socket",
                path.display()
            ));
        }
        Err(_) => {}
    }
    let gid = match lookup_gid(group) {
        Some(gid) => Some(gid),
        None if group == DEFAULT_GROUP => {
            tracing::warn!(
                "could not change group {} to {group}: group {group} not found",
                path.display()
            );
            None
        }
        None => {
            return Err(format!(
                "group {group} not found: cannot give it {}",
                path.display()
            ));
        }
    };
    // The socket is born unreadable (umask) and opened up only once its group is set,
    // so nobody outside the group can connect in between. Single-threaded here.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| fail("listen on", e))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(
            path,
            Some(0).filter(|_| nix::unistd::geteuid().is_root()),
            Some(gid),
        )
        .map_err(|e| fail("change the group of", e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| fail("set the mode of", e))?;
    Ok(listener)
}

/// A group name, or a numeric GID as Docker also accepts.
fn lookup_gid(group: &str) -> Option<u32> {
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Some(g.gid.as_raw()),
        _ => group.parse().ok(),
    }
}
