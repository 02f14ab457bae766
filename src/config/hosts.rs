//! `-H`/`hosts` addresses: `unix://PATH`, `tcp://HOST:PORT`, `fd://`, `fd://N`.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// The socket Docker Engine listens on when no host is configured.
pub const DEFAULT_UNIX_SOCKET: &str = "/var/run/docker.sock";

/// The port of `tcp://HOST` without one (Docker's plain-HTTP port).
pub const DEFAULT_TCP_PORT: u16 = 2375;

/// One listening address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
    },
    /// `fd://` (every passed socket) or `fd://N` (descriptor N only).
    Fd(Option<i32>),
}

impl Host {
    /// Parses one address the way Docker's `ParseHost` does, with its error wording.
    pub fn parse(raw: &str) -> Result<Host, String> {
        let s = raw.trim();
        let invalid = || format!("invalid bind address format: {raw}");
        let (proto, rest) = match s.split_once("://") {
            Some(p) => p,
            // Docker reads a bare address as TCP.
            None if !s.is_empty() => ("tcp", s),
            None => return Err(invalid()),
        };
        match proto {
            "unix" => {
                let path = if rest.is_empty() {
                    DEFAULT_UNIX_SOCKET
                } else {
                    rest
                };
                if !path.starts_with('/') {
                    return Err(format!(
                        "invalid bind address format: {raw}: the unix socket path must be absolute"
                    ));
                }
                Ok(Host::Unix(PathBuf::from(path)))
            }
            "fd" => {
                if rest.is_empty() {
                    Ok(Host::Fd(None))
                } else {
                    rest.parse::<i32>()
                        .ok()
                        .filter(|n| *n >= 3)
                        .map(|n| Host::Fd(Some(n)))
                        .ok_or_else(|| format!("invalid bind address format: {raw}: fd://N needs a descriptor number of 3 or more"))
                }
            }
            "tcp" => {
                let rest = rest.trim_end_matches('/');
                if rest.contains('/') {
                    return Err(invalid());
                }
                let (host, port) = split_host_port(rest).ok_or_else(invalid)?;
                let port = match port {
                    None | Some("") => DEFAULT_TCP_PORT,
                    Some(p) => p
                        .parse()
                        .map_err(|_| format!("invalid bind address format: {raw}: invalid port"))?,
                };
                let host = if host.is_empty() {
                    "0.0.0.0".to_string()
                } else {
                    host.to_string()
                };
                Ok(Host::Tcp { host, port })
            }
            "npipe" | "ssh" => Err(format!(
                "invalid bind address format: {raw}: {proto}:// is not supported by this daemon"
            )),
            _ => Err(format!("Invalid bind address format: {raw}")),
        }
    }

    /// For `tcp://`, the addresses the name resolves to.
    pub fn tcp_addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Host::Tcp { host, port } => {
                let h = host.trim_start_matches('[').trim_end_matches(']');
                Ok((h, *port).to_socket_addrs()?.collect())
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// `host:port`, `[v6]:port`, `host`, `[v6]` → (host, port).
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        return match after {
            "" => Some((h, None)),
            a => Some((h, Some(a.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

/// Whether every address is a loopback address (plain HTTP is allowed only there).
pub fn all_loopback(addrs: &[SocketAddr]) -> bool {
    !addrs.is_empty() && addrs.iter().all(|a| is_loopback(a.ip()))
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Host::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Host::Fd(None) => write!(f, "fd://"),
            Host::Fd(Some(n)) => write!(f, "fd://{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_forms() {
        assert_eq!(
            Host::parse("unix:///run/d.sock").unwrap(),
            Host::Unix("/run/d.sock".into())
        );
        assert_eq!(
            Host::parse("unix://").unwrap(),
            Host::Unix(DEFAULT_UNIX_SOCKET.into())
        );
        assert_eq!(Host::parse("fd://").unwrap(), Host::Fd(None));
        assert_eq!(Host::parse("fd://3").unwrap(), Host::Fd(Some(3)));
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2375").unwrap(),
            Host::Tcp {
                host: "127.0.0.1".into(),
                port: 2375
            }
        );
        assert_eq!(
            Host::parse("tcp://[::1]:99").unwrap(),
            Host::Tcp {
                host: "::1".into(),
                port: 99
            }
        );
        assert_eq!(
            Host::parse("localhost").unwrap(),
            Host::Tcp {
                host: "localhost".into(),
                port: 2375
            }
        );
        assert!(Host::parse("fd://x").is_err());
        assert!(Host::parse("unix://rel").is_err());
        assert!(Host::parse("udp://x").is_err());
        assert!(Host::parse("tcp://a:b:c").is_err());
    }

    #[test]
    fn loopback_detection() {
        let v = Host::parse("tcp://127.0.0.1:1")
            .unwrap()
            .tcp_addrs()
            .unwrap();
        assert!(all_loopback(&v));
        let v = Host::parse("tcp://0.0.0.0:1").unwrap().tcp_addrs().unwrap();
        assert!(!all_loopback(&v));
    }
}
