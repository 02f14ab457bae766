//! Bridge devices on the host: made when a network is created or the daemon starts
//! (after a reboot they are gone), with the gateway addresses, up; removed with their
//! network. Also the host's routes, which new subnets keep clear of.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::record::BridgeParams;
use crate::net::netlink::Netlink;

/// Makes the bridge exist, with its gateway addresses, up.
pub fn ensure(p: &BridgeParams) -> io::Result<()> {
    let mut nl = Netlink::open()?;
    let link = match nl.link(&p.iface)? {
        Some(l) if l.kind != "bridge" => {
            return Err(io::Error::other(format!(
                "the interface {} exists and is not a bridge",
                p.iface
            )));
        }
        Some(l) => l,
        None => {
            nl.create_bridge(&p.iface, (p.mtu != 0).then_some(p.mtu))?;
            nl.link(&p.iface)?.ok_or_else(|| {
                io::Error::other(format!("bridge {} vanished after it was made", p.iface))
            })?
        }
    };
    nl.add_address(link.index, p.v4.gateway, p.v4.net.prefix_len())?;
    if let Some(v6) = &p.v6 {
        let _ = crate::net::set_sysctl(&format!("net/ipv6/conf/{}/accept_ra", p.iface), "0");
        nl.add_address(link.index, v6.gateway, v6.net.prefix_len())?;
    }
    nl.set_up(link.index, None)
}

/// Deletes the bridge device (its ports are detached by the kernel).
pub fn remove(iface: &str) -> io::Result<()> {
    Netlink::open()?.delete_link(iface).map(drop)
}

/// The IPv4 address an existing interface has (for a default bridge that exists
/// already, as Docker reuses it).
pub fn existing_v4(iface: &str) -> io::Result<Option<(Ipv4Addr, u8)>> {
    let mut nl = Netlink::open()?;
    let Some(link) = nl.link(iface)? else {
        return Ok(None);
    };
    Ok(nl
        .addresses(Some(link.index))?
        .into_iter()
        .find_map(|(_, ip, prefix)| match ip {
            IpAddr::V4(v4) => Some((v4, prefix)),
            IpAddr::V6(_) => None,
        }))
}

/// The destinations of the host's IPv4 routes, except default routes and those of
/// the interfaces named in `ignore` (the daemon's own bridges).
pub fn host_routes(ignore: &[String]) -> io::Result<Vec<IpNet>> {
    let mut nl = Netlink::open()?;
    let links = nl.links()?;
    let ignored: Vec<u32> = links
        .iter()
        .filter(|l| ignore.contains(&l.name))
        .map(|l| l.index)
        .collect();
    Ok(nl
        .routes_v4()?
        .into_iter()
        .filter(|r| r.prefix > 0)
        .filter(|r| r.oif.is_none_or(|i| !ignored.contains(&i)))
        .filter_map(|r| IpNet::new(r.destination, r.prefix).ok())
        .map(|n| n.trunc())
        .collect())
}
