//! Address management: which subnet a new network gets (Docker's default address
//! pools, clear of other networks and of the host's routes), and which address each
//! endpoint gets inside a network's subnet.
//!
//! Addresses are handed out serially, continuing after the last one given, so an
//! address freed by a container that just stopped is not handed out again at once:
//! the kernel tears a stopped container's namespace (and the interface that held the
//! address) down asynchronously.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use crate::engine::{Error, Result};

/// One entry of `default-address-pools`: carve `base` into subnets of `/size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    pub base: Ipv4Net,
    pub size: u8,
}

/// Docker's default pools: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn default_pools() -> Vec<AddressPool> {
    let mut pools: Vec<AddressPool> = (17..=31)
        .map(|b| AddressPool {
            base: Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap_or_default(),
            size: 16,
        })
        .collect();
    pools.push(AddressPool {
        base: Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap_or_default(),
        size: 20,
    });
    pools
}

/// Parses a CIDR as Docker does: `10.1.0.0/16` (host bits must be zero unless
/// `allow_host_bits`, as for `bip`, where the address is the gateway).
pub fn parse_cidr(s: &str, allow_host_bits: bool) -> Result<IpNet> {
    let net: IpNet = s
        .trim()
        .parse()
        .map_err(|_| Error::invalid(format!("invalid CIDR address: {s}")))?;
    if !allow_host_bits && net.trunc() != net {
        return Err(Error::invalid(format!(
            "invalid pool request: Invalid Address: {s}: the host bits of the subnet must be zero (did you mean {}?)",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Whether two subnets share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first subnet from `pools` that overlaps none of `taken`.
pub fn next_subnet(pools: &[AddressPool], taken: &[IpNet]) -> Option<Ipv4Net> {
    for pool in pools {
        let Ok(subnets) = pool.base.subnets(pool.size.max(pool.base.prefix_len())) else {
            continue;
        };
        for candidate in subnets {
            let c = IpNet::V4(candidate);
            if !taken.iter().any(|t| overlaps(t, &c)) {
                return Some(candidate);
            }
        }
    }
    None
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// The addresses of one subnet of a network and which are in use.
#[derive(Debug, Clone)]
pub struct Allocator {
    subnet: IpNet,
    /// First and last assignable address (inclusive).
    first: u128,
    last: u128,
    /// The gateway and auxiliary addresses: never assigned.
    reserved: BTreeSet<u128>,
    used: BTreeSet<u128>,
    /// Where the next search starts.
    cursor: u128,
}

impl Allocator {
    /// `range` (Docker's `IPRange`, `fixed-cidr`) narrows where addresses are assigned
    /// from; the network and broadcast addresses of an IPv4 subnet are never assigned.
    pub fn new(subnet: IpNet, range: Option<IpNet>, reserved: &[IpAddr]) -> Allocator {
        let span = range.unwrap_or(subnet);
        let mut first = to_u128(span.network());
        let mut last = to_u128(span.broadcast());
        let net_lo = to_u128(subnet.network());
        let net_hi = to_u128(subnet.broadcast());
        if first <= net_lo {
            first = net_lo + 1;
        }
        if matches!(subnet, IpNet::V4(_)) && last >= net_hi {
            last = net_hi.saturating_sub(1);
        }
        Allocator {
            subnet,
            first,
            last,
            reserved: reserved.iter().map(|ip| to_u128(*ip)).collect(),
            used: BTreeSet::new(),
            cursor: first,
        }
    }

    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    /// Marks `ip` used: a user-chosen address (`--ip`) or one restored after a restart.
    pub fn reserve(&mut self, ip: IpAddr) -> Result<()> {
        if !self.subnet.contains(&ip) {
            return Err(Error::invalid(format!(
                "no configured subnet or ip-range contain the IP address {ip}"
            )));
        }
        let v = to_u128(ip);
        if self.reserved.contains(&v) || self.used.contains(&v) {
            return Err(Error::invalid(format!(
                "Address already in use: {ip} is already assigned in network {}",
                self.subnet
            )));
        }
        self.used.insert(v);
        Ok(())
    }

    /// The next free address after the last one handed out.
    pub fn allocate(&mut self) -> Result<IpAddr> {
        if self.first > self.last {
            return Err(self.exhausted());
        }
        let span = self.last - self.first + 1;
        let mut candidate = self.cursor.clamp(self.first, self.last);
        // Bounded by the number of addresses in use, not by the size of the range.
        let mut tries: u128 = 0;
        let limit = (self.used.len() + self.reserved.len() + 1) as u128;
        while self.used.contains(&candidate) || self.reserved.contains(&candidate) {
            candidate = if candidate >= self.last {
                self.first
            } else {
                candidate + 1
            };
            tries += 1;
            if tries > limit.min(span) {
                return Err(self.exhausted());
            }
        }
        self.used.insert(candidate);
        self.cursor = if candidate >= self.last {
            self.first
        } else {
            candidate + 1
        };
        Ok(from_u128(candidate, self.subnet.network()))
    }

    pub fn release(&mut self, ip: IpAddr) {
        self.used.remove(&to_u128(ip));
    }

    pub fn in_use(&self, ip: IpAddr) -> bool {
        self.used.contains(&to_u128(ip))
    }

    fn exhausted(&self) -> Error {
        Error::invalid(format!(
            "no available IPv{} addresses on this network's address pools: {}",
            if matches!(self.subnet, IpNet::V4(_)) {
                4
            } else {
                6
            },
            self.subnet
        ))
    }
}

/// The first host address of a subnet: Docker's default gateway.
pub fn first_host(subnet: IpNet) -> IpAddr {
    from_u128(to_u128(subnet.network()) + 1, subnet.network())
}

/// Docker's MAC for an IPv4 address: `02:42` followed by the address's four bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let bad = || Error::invalid(format!("invalid MAC address: {s}"));
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (slot, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *slot = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn pools_skip_taken_subnets() {
        let pools = default_pools();
        assert_eq!(
            next_subnet(&pools, &[]).unwrap().to_string(),
            "172.17.0.0/16"
        );
        let taken = [net("172.17.0.0/16"), net("172.18.5.0/24")];
        assert_eq!(
            next_subnet(&pools, &taken).unwrap().to_string(),
            "172.19.0.0/16"
        );
        let all: Vec<IpNet> = (17..=31).map(|b| net(&format!("172.{b}.0.0/16"))).collect();
        assert_eq!(
            next_subnet(&pools, &all).unwrap().to_string(),
            "192.168.0.0/20"
        );
        let custom = [AddressPool {
            base: "10.10.0.0/16".parse().unwrap(),
            size: 24,
        }];
        assert_eq!(
            next_subnet(&custom, &[net("10.10.0.0/24")])
                .unwrap()
                .to_string(),
            "10.10.1.0/24"
        );
    }

    #[test]
    fn allocation_is_serial_and_skips_reserved() {
        let mut a = Allocator::new(net("172.17.0.0/16"), None, &["172.17.0.1".parse().unwrap()]);
        assert_eq!(a.allocate().unwrap().to_string(), "172.17.0.2");
        assert_eq!(a.allocate().unwrap().to_string(), "172.17.0.3");
        a.release("172.17.0.2".parse().unwrap());
        // Not handed out again at once.
        assert_eq!(a.allocate().unwrap().to_string(), "172.17.0.4");
        a.reserve("172.17.0.5".parse().unwrap()).unwrap();
        assert_eq!(a.allocate().unwrap().to_string(), "172.17.0.6");
        assert!(a.reserve("172.17.0.6".parse().unwrap()).is_err());
        assert!(a.reserve("10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn small_subnets_exhaust_and_wrap() {
        let mut a = Allocator::new(net("10.0.0.0/30"), None, &["10.0.0.1".parse().unwrap()]);
        assert_eq!(a.allocate().unwrap().to_string(), "10.0.0.2");
        assert!(a.allocate().is_err());
        a.release("10.0.0.2".parse().unwrap());
        assert_eq!(a.allocate().unwrap().to_string(), "10.0.0.2");
    }

    #[test]
    fn ranges_narrow_allocation() {
        let mut a = Allocator::new(
            net("10.1.0.0/16"),
            Some(net("10.1.5.0/24")),
            &["10.1.0.1".parse().unwrap()],
        );
        assert_eq!(a.allocate().unwrap().to_string(), "10.1.5.0");
        // --ip may be anywhere in the subnet.
        a.reserve("10.1.9.9".parse().unwrap()).unwrap();
        let mut v6 = Allocator::new(net("fd00:1::/64"), None, &["fd00:1::1".parse().unwrap()]);
        assert_eq!(v6.allocate().unwrap().to_string(), "fd00:1::2");
    }

    #[test]
    fn macs_and_cidrs() {
        assert_eq!(
            format_mac(mac_for("172.17.0.2".parse().unwrap())),
            "02:42:ac:11:00:02"
        );
        assert_eq!(
            parse_mac("02:42:AC:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("02:42").is_err());
        assert!(parse_cidr("10.0.0.1/8", false).is_err());
        assert_eq!(
            parse_cidr("10.0.0.1/8", true).unwrap().to_string(),
            "10.0.0.1/8"
        );
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.5.0.0/16")));
        assert!(!overlaps(&net("10.0.0.0/16"), &net("10.1.0.0/16")));
    }
}
