//! A container's network namespace and what goes into it: the namespace file under
//! `<exec-root>/netns/`, one veth pair per network (`vethXXXXXXX` on the host,
//! enslaved to the network's bridge; `ethN` inside with the container's addresses,
//! and the default route through the first network's gateway), and the sockets of
//! its embedded DNS server at 127.0.0.11.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::net::netlink::{Netlink, context};
use crate::net::netns;

/// One interface to make in a container's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// The bridge the host end joins.
    pub bridge: String,
    /// `eth0`, `eth1`, …
    pub name: String,
    pub mac: [u8; 6],
    pub ipv4: (Ipv4Addr, u8),
    pub ipv6: Option<(Ipv6Addr, u8)>,
    pub gateway4: Ipv4Addr,
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: u32,
    /// Carries the default routes.
    pub default_route: bool,
}

/// A veth name like Docker's: `veth` and seven hex digits.
fn veth_name() -> io::Result<String> {
    let b = crate::engine::random_bytes(4).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(format!("veth{}", &crate::engine::hex(&b)[..7]))
}

/// Makes `iface` in the namespace at `netns`; returns the host end's name.
pub fn add_interface(netns_path: &Path, iface: &Iface) -> io::Result<String> {
    let mut nl = Netlink::open()?;
    let bridge = nl
        .link(&iface.bridge)?
        .ok_or_else(|| io::Error::other(format!("bridge {} does not exist", iface.bridge)))?;
    let ns = File::open(netns_path)
        .map_err(|e| crate::store::with_path(e, "open network namespace", netns_path))?;
    let mtu = (iface.mtu != 0).then_some(iface.mtu);
    let mut host = veth_name()?;
    let mut tries = 0;
    loop {
        match nl.create_veth(&host, &iface.name, ns.as_fd(), Some(iface.mac), mtu) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 5 => {
                // A name taken on the host (or `ethN` inside, which is a real error).
                if nl.link(&host)?.is_none() {
                    return Err(e);
                }
                tries += 1;
                host = veth_name()?;
            }
            Err(e) => return Err(e),
        }
    }
    let configured = (|| -> io::Result<()> {
        let link = nl
            .link(&host)?
            .ok_or_else(|| io::Error::other(format!("veth {host} vanished")))?;
        nl.set_up(link.index, Some(bridge.index))?;
        netns::run_in_fd(&ns, || {
            let mut inner = Netlink::open()?;
            let link = inner.link(&iface.name)?.ok_or_else(|| {
                io::Error::other(format!(
                    "{} did not arrive in the container's namespace",
                    iface.name
                ))
            })?;
            inner.add_address(link.index, IpAddr::V4(iface.ipv4.0), iface.ipv4.1)?;
            if let Some((v6, prefix)) = iface.ipv6 {
                // The container must not wait for duplicate address detection.
                let key = format!("net/ipv6/conf/{}/accept_dad", iface.name);
                let _ = crate::net::set_sysctl(&key, "0");
                inner.add_address(link.index, IpAddr::V6(v6), prefix)?;
            }
            inner.set_up(link.index, None)?;
            if iface.default_route {
                inner.add_default_route(IpAddr::V4(iface.gateway4), link.index)?;
                if let (Some(gw6), Some(_)) = (iface.gateway6, iface.ipv6) {
                    inner.add_default_route(IpAddr::V6(gw6), link.index)?;
                }
            }
            Ok(())
        })
    })();
    if let Err(e) = configured {
        let _ = nl.delete_link(&host);
        return Err(e);
    }
    Ok(host)
}

/// Deletes an interface by its host end (the container's end goes with it).
pub fn remove_interface(host: &str) -> io::Result<()> {
    Netlink::open()?.delete_link(host).map(drop)
}

/// The embedded DNS server's sockets, inside a container's namespace.
pub struct DnsSockets {
    pub udp: OwnedFd,
    /// Listening.
    pub tcp: OwnedFd,
    pub udp_port: u16,
    pub tcp_port: u16,
}

/// Opens the embedded DNS server's sockets on 127.0.0.11 in the namespace at
/// `netns_path`, on the given ports (0: any, reached through the DNS redirection
/// rules; a proxy started again takes the ports the rules already name).
pub fn dns_sockets(netns_path: &Path, udp_port: u16, tcp_port: u16) -> io::Result<DnsSockets> {
    netns::run_in(netns_path, || {
        let udp = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 11], udp_port)))
            .map_err(|e| context(e, "bind the DNS server's UDP socket at 127.0.0.11"))?;
        let tcp = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 11], tcp_port)))
            .map_err(|e| context(e, "bind the DNS server's TCP socket at 127.0.0.11"))?;
        Ok(DnsSockets {
            udp_port: udp.local_addr()?.port(),
            tcp_port: tcp.local_addr()?.port(),
            udp: OwnedFd::from(udp),
            tcp: OwnedFd::from(tcp),
        })
    })
}
