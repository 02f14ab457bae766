//! Published ports: parsing `PortBindings` and `ExposedPorts` with Docker's rules,
//! choosing host ports (fixed, a range, or ephemeral from the kernel's local port
//! range, handed out in order), and holding each host port with a socket of our own
//! so that nothing else can take it while the container runs. The sockets go to the
//! container's network proxy, which serves loopback connections through them.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use crate::engine::{Error, Result};

/// `tcp` or `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A container port: `80/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub number: u16,
    pub proto: Proto,
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.number, self.proto.as_str())
    }
}

/// Parses `80`, `80/tcp`, `53/udp`.
pub fn parse_port(key: &str) -> Result<Port> {
    let invalid = || Error::invalid(format!("invalid port specification: \"{key}\""));
    let (num, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" | "" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => {
            return Err(Error::not_implemented(format!(
                "SCTP ports are not supported by this daemon yet: {key}"
            )));
        }
        _ => return Err(invalid()),
    };
    let number: u16 = num.parse().map_err(|_| invalid())?;
    if number == 0 {
        return Err(invalid());
    }
    Ok(Port { number, proto })
}

/// What a binding asks for on the host side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPort {
    Ephemeral,
    Fixed(u16),
    Range(u16, u16),
}

pub fn parse_host_port(s: &str) -> Result<HostPort> {
    let invalid = || Error::invalid(format!("invalid port specification: \"{s}\""));
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(HostPort::Ephemeral);
    }
    match s.split_once('-') {
        Some((a, b)) => {
            let a: u16 = a.parse().map_err(|_| invalid())?;
            let b: u16 = b.parse().map_err(|_| invalid())?;
            if a == 0 || b < a {
                return Err(invalid());
            }
            Ok(if a == b {
                HostPort::Fixed(a)
            } else {
                HostPort::Range(a, b)
            })
        }
        None => Ok(HostPort::Fixed(s.parse().map_err(|_| invalid())?)),
    }
}

/// One entry of `PortBindings` (and of `NetworkSettings.Ports`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    #[serde(rename = "HostIp", default)]
    pub host_ip: String,
    #[serde(rename = "HostPort", default)]
    pub host_port: String,
}

/// Validated `PortBindings`.
pub type PortBindings = BTreeMap<String, Vec<PortBinding>>;

/// Reads `HostConfig.PortBindings`, checking every key and host port as Docker does
/// at create time.
pub fn parse_bindings(v: Option<&serde_json::Value>) -> Result<PortBindings> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(PortBindings::new());
    };
    let map: BTreeMap<String, Option<Vec<PortBinding>>> = serde_json::from_value(v.clone())
        .map_err(|e| Error::invalid(format!("invalid PortBindings: {e}")))?;
    let mut out = PortBindings::new();
    for (key, bindings) in map {
        let port = parse_port(&key)?;
        let bindings = bindings.unwrap_or_default();
        for b in &bindings {
            parse_host_port(&b.host_port)?;
            if !b.host_ip.is_empty() && b.host_ip.parse::<IpAddr>().is_err() {
                return Err(Error::invalid(format!(
                    "invalid host IP address in port binding for {key}: \"{}\"",
                    b.host_ip
                )));
            }
        }
        out.insert(port.to_string(), bindings);
    }
    Ok(out)
}

/// A host port to bind for one container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub port: Port,
    pub host_ip: IpAddr,
    pub host_port: HostPort,
}

/// Expands bindings (and `-P` over the exposed ports) into what to bind. An empty
/// host address means `default_ip`, plus `::` when that is `0.0.0.0` and the host
/// has IPv6 (Docker publishes on both).
pub fn requests(
    bindings: &PortBindings,
    exposed: &[Port],
    publish_all: bool,
    default_ip: IpAddr,
    ipv6_host: bool,
) -> Result<Vec<Vec<Request>>> {
    let mut all: BTreeMap<Port, Vec<PortBinding>> = BTreeMap::new();
    for (key, list) in bindings {
        all.insert(parse_port(key)?, list.clone());
    }
    if publish_all {
        for p in exposed {
            let entry = all.entry(*p).or_default();
            if entry.is_empty() {
                entry.push(PortBinding::default());
            }
        }
    }
    let mut out = Vec::new();
    for (port, list) in all {
        for b in list {
            let host_port = parse_host_port(&b.host_port)?;
            // One group: the addresses of one binding share a host port.
            let mut group = Vec::new();
            if b.host_ip.is_empty() {
                group.push(Request {
                    port,
                    host_ip: default_ip,
                    host_port,
                });
                if default_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) && ipv6_host {
                    group.push(Request {
                        port,
                        host_ip: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                        host_port,
                    });
                }
            } else {
                let ip: IpAddr = b.host_ip.parse().map_err(|_| {
                    Error::invalid(format!("invalid host IP address: \"{}\"", b.host_ip))
                })?;
                group.push(Request {
                    port,
                    host_ip: ip,
                    host_port,
                });
            }
            out.push(group);
        }
    }
    Ok(out)
}

/// A host port held for a container.
#[derive(Debug)]
pub struct Bound {
    pub port: Port,
    pub host_ip: IpAddr,
    pub host_port: u16,
    /// Listening (TCP, with the proxy) or bound (UDP, or TCP without the proxy).
    pub socket: OwnedFd,
}

/// Which host ports the daemon's containers hold, and where the next ephemeral
/// port search starts.
#[derive(Debug)]
pub struct PortAllocator {
    in_use: BTreeSet<(Proto, IpAddr, u16)>,
    next: BTreeMap<Proto, u16>,
    range: (u16, u16),
}

impl Default for PortAllocator {
    fn default() -> Self {
        PortAllocator::new(ephemeral_range())
    }
}

/// The kernel's local port range, used as is (Docker's default since 20.10.22).
pub fn ephemeral_range() -> (u16, u16) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .filter_map(|v| v.parse::<u16>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) if a > 0 && a <= b => (a, b),
        _ => (49153, 65535),
    }
}

fn conflicts(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

impl PortAllocator {
    pub fn new(range: (u16, u16)) -> Self {
        PortAllocator {
            in_use: BTreeSet::new(),
            next: BTreeMap::new(),
            range,
        }
    }

    fn taken(&self, proto: Proto, ip: IpAddr, port: u16) -> bool {
        self.in_use.iter().any(|(p, i, n)| {
            *p == proto && *n == port && i.is_ipv4() == ip.is_ipv4() && conflicts(*i, ip)
        })
    }

    /// Records ports of a container found running at start.
    pub fn mark(&mut self, proto: Proto, ip: IpAddr, port: u16) {
        self.in_use.insert((proto, ip, port));
    }

    pub fn release(&mut self, proto: Proto, ip: IpAddr, port: u16) {
        self.in_use.remove(&(proto, ip, port));
    }

    /// Binds one group of requests (the addresses of one binding) on one host port.
    /// `listen`: TCP sockets listen (the proxy serves them).
    pub fn bind_group(
        &mut self,
        group: &[Request],
        listen: bool,
    ) -> std::result::Result<Vec<Bound>, String> {
        let Some(first) = group.first() else {
            return Ok(Vec::new());
        };
        let proto = first.port.proto;
        let candidates: Vec<u16> = match first.host_port {
            HostPort::Fixed(p) => vec![p],
            HostPort::Range(a, b) => (a..=b).collect(),
            HostPort::Ephemeral => {
                let (lo, hi) = self.range;
                let start = self.next.get(&proto).copied().unwrap_or(lo).clamp(lo, hi);
                (start..=hi).chain(lo..start).collect()
            }
        };
        let explicit = matches!(first.host_port, HostPort::Fixed(_));
        let mut last_error = String::new();
        'ports: for port in candidates {
            if let Some(r) = group.iter().find(|r| self.taken(proto, r.host_ip, port)) {
                last_error = format!(
                    "Bind for {}:{port} failed: port is already allocated",
                    display_ip(r.host_ip)
                );
                if explicit {
                    return Err(last_error);
                }
                continue;
            }
            let mut bound = Vec::new();
            for r in group {
                match bind(proto, r.host_ip, port, listen) {
                    Ok(fd) => bound.push(Bound {
                        port: r.port,
                        host_ip: r.host_ip,
                        host_port: port,
                        socket: fd,
                    }),
                    Err(e) => {
                        last_error = format!(
                            "failed to bind host port for {}:{port}:{}/{}: {}",
                            display_ip(r.host_ip),
                            r.port.number,
                            proto.as_str(),
                            crate::store::strip_os_suffix(&e).to_lowercase()
                        );
                        if explicit || e.kind() != io::ErrorKind::AddrInUse {
                            return Err(last_error);
                        }
                        continue 'ports;
                    }
                }
            }
            for b in &bound {
                self.in_use.insert((proto, b.host_ip, b.host_port));
            }
            if matches!(first.host_port, HostPort::Ephemeral) {
                let (lo, hi) = self.range;
                self.next
                    .insert(proto, if port >= hi { lo } else { port + 1 });
            }
            return Ok(bound);
        }
        if last_error.is_empty() {
            last_error = "no free host port in the requested range".into();
        }
        Err(last_error)
    }
}

/// `0.0.0.0`, or `::` as Docker prints it in `Bind for :::8080`.
pub fn display_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v) if v.is_unspecified() => "::".into(),
        other => other.to_string(),
    }
}

/// A socket bound to `ip:port` (IPv6 sockets are IPv6 only, so `::` and `0.0.0.0`
/// are held separately, as Docker does).
pub fn bind(proto: Proto, ip: IpAddr, port: u16, listen: bool) -> io::Result<OwnedFd> {
    let domain = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let ty = match proto {
        Proto::Tcp => libc::SOCK_STREAM,
        Proto::Udp => libc::SOCK_DGRAM,
    };
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let set = |level, name| unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if proto == Proto::Tcp {
        set(libc::SOL_SOCKET, libc::SO_REUSEADDR);
    }
    if ip.is_ipv6() {
        set(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY);
    }
    let addr = socket2_addr(SocketAddr::new(ip, port));
    let rc = unsafe { libc::bind(sock.as_raw_fd(), addr.0.as_ptr().cast(), addr.1) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if proto == Proto::Tcp && listen && unsafe { libc::listen(sock.as_raw_fd(), 1024) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// A `sockaddr` for `addr`, as bytes and length.
fn socket2_addr(addr: SocketAddr) -> (Vec<u8>, libc::socklen_t) {
    match addr {
        SocketAddr::V4(a) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    (&sa as *const libc::sockaddr_in).cast::<u8>(),
                    std::mem::size_of::<libc::sockaddr_in>(),
                )
            }
            .to_vec();
            (
                bytes,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    (&sa as *const libc::sockaddr_in6).cast::<u8>(),
                    std::mem::size_of::<libc::sockaddr_in6>(),
                )
            }
            .to_vec();
            (
                bytes,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// Whether the host can listen on IPv6 (`::`).
pub fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// `NetworkSettings.Ports`: every exposed or published port, with its bindings
/// (`null` for an exposed port that is not published).
pub fn port_map(
    exposed: &[Port],
    bound: &[(Port, IpAddr, u16)],
) -> BTreeMap<String, Option<Vec<PortBinding>>> {
    let mut out: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    for p in exposed {
        out.entry(p.to_string()).or_insert(None);
    }
    for (p, ip, host_port) in bound {
        out.entry(p.to_string())
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: display_ip(*ip),
                host_port: host_port.to_string(),
            });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(parse_port("80").unwrap().to_string(), "80/tcp");
        assert_eq!(parse_port("53/udp").unwrap().proto, Proto::Udp);
        assert!(parse_port("x/tcp").is_err());
        assert!(parse_port("80/foo").is_err());
        assert!(matches!(
            parse_port("80/sctp"),
            Err(Error::NotImplemented(_))
        ));
        assert_eq!(parse_host_port("").unwrap(), HostPort::Ephemeral);
        assert_eq!(
            parse_host_port("8000-8002").unwrap(),
            HostPort::Range(8000, 8002)
        );
        assert!(parse_host_port("99999").is_err());
        assert!(parse_host_port("9-1").is_err());
    }

    #[test]
    fn requests_expand_defaults_and_publish_all() {
        let b: PortBindings = [(
            "80/tcp".to_string(),
            vec![PortBinding {
                host_ip: String::new(),
                host_port: "8080".into(),
            }],
        )]
        .into_iter()
        .collect();
        let exposed = [parse_port("80").unwrap(), parse_port("53/udp").unwrap()];
        let r = requests(&b, &exposed, true, "0.0.0.0".parse().unwrap(), true).unwrap();
        assert_eq!(r.len(), 2);
        let (web, dns): (Vec<_>, Vec<_>) = r.into_iter().partition(|g| g[0].port.number == 80);
        assert_eq!(web[0].len(), 2);
        assert_eq!(web[0][1].host_ip.to_string(), "::");
        assert_eq!(dns[0][0].host_port, HostPort::Ephemeral);
    }

    #[test]
    fn allocation_detects_conflicts_and_walks_the_range() {
        let mut a = PortAllocator::new((40100, 40120));
        let group = |p: HostPort| {
            vec![Request {
                port: parse_port("80").unwrap(),
                host_ip: "127.0.0.1".parse().unwrap(),
                host_port: p,
            }]
        };
        let first = a.bind_group(&group(HostPort::Ephemeral), true).unwrap();
        let second = a.bind_group(&group(HostPort::Ephemeral), true).unwrap();
        assert_ne!(first[0].host_port, second[0].host_port);
        let err = a
            .bind_group(&group(HostPort::Fixed(first[0].host_port)), true)
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "Bind for 127.0.0.1:{} failed: port is already allocated",
                first[0].host_port
            )
        );
        // Someone else's socket on a port.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = other.local_addr().unwrap().port();
        let err = a
            .bind_group(&group(HostPort::Fixed(port)), true)
            .unwrap_err();
        assert!(err.contains("address already in use"), "{err}");
        a.release(Proto::Tcp, "127.0.0.1".parse().unwrap(), first[0].host_port);
        drop(first);
    }

    #[test]
    fn port_maps_list_exposed_and_bound() {
        let m = port_map(
            &[parse_port("443").unwrap()],
            &[(parse_port("80").unwrap(), "0.0.0.0".parse().unwrap(), 8080)],
        );
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"443/tcp":null,"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}]}"#
        );
    }
}
