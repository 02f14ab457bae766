//! The names containers resolve on user-defined networks: one file in exec-root,
//! rewritten (atomically) by the daemon whenever an endpoint comes or goes, and read
//! by every container's network proxy when it changes. Being a file, it keeps
//! answering while the daemon restarts.
//!
//! A container resolves, on the networks it is attached to, the other endpoints'
//! container names, network aliases, short IDs and host names (case-insensitive),
//! plus `NAME.NETWORK`, and first of all its own legacy `--link` aliases.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    /// By network ID.
    pub networks: BTreeMap<String, NetworkNames>,
    /// By container ID: what each container may resolve.
    pub containers: BTreeMap<String, ContainerNames>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkNames {
    pub name: String,
    /// Internal networks do not forward queries for other names.
    pub internal: bool,
    pub endpoints: Vec<NameEntry>,
}

/// One endpoint: the names it answers to and its addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameEntry {
    pub container: String,
    /// Lower case; the first is the container's name (used for reverse lookups).
    pub names: Vec<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerNames {
    /// IDs of the user-defined networks it is attached to.
    pub networks: Vec<String>,
    /// Legacy links on user-defined networks: alias (lower case) → container ID.
    pub links: BTreeMap<String, String>,
}

/// What a forward lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name is known here: its addresses of the asked family (possibly none).
    Found(Vec<IpAddr>),
    /// Not a name of these networks: ask the upstream servers.
    Unknown,
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Names {
    /// `name` as `container` sees it, for A (`v6` false) or AAAA (`v6` true).
    pub fn lookup(&self, container: &str, name: &str, v6: bool) -> Lookup {
        let Some(me) = self.containers.get(container) else {
            return Lookup::Unknown;
        };
        let q = normalize(name);
        if q.is_empty() {
            return Lookup::Unknown;
        }
        let pick = |e: &NameEntry| -> Option<IpAddr> {
            if v6 {
                e.ipv6.map(IpAddr::V6)
            } else {
                e.ipv4.map(IpAddr::V4)
            }
        };
        // Links first: the alias names one container, on the networks shared with it.
        if let Some(target) = me.links.get(&q) {
            let ips: Vec<IpAddr> = me
                .networks
                .iter()
                .filter_map(|n| self.networks.get(n))
                .flat_map(|n| n.endpoints.iter())
                .filter(|e| &e.container == target)
                .filter_map(pick)
                .collect();
            return Lookup::Found(ips);
        }
        let mut found = false;
        let mut ips = Vec::new();
        for net_id in &me.networks {
            let Some(net) = self.networks.get(net_id) else {
                continue;
            };
            // `name.network` names the endpoint on that network only.
            let on_this = q
                .strip_suffix(&format!(".{}", net.name.to_ascii_lowercase()))
                .map(str::to_string);
            for e in &net.endpoints {
                let hit = e
                    .names
                    .iter()
                    .any(|n| *n == q || Some(n) == on_this.as_ref());
                if hit {
                    found = true;
                    if let Some(ip) = pick(e)
                        && !ips.contains(&ip)
                    {
                        ips.push(ip);
                    }
                }
            }
        }
        if found {
            Lookup::Found(ips)
        } else {
            Lookup::Unknown
        }
    }

    /// The name for `ip` on `container`'s networks: `NAME.NETWORK`.
    pub fn reverse(&self, container: &str, ip: IpAddr) -> Option<String> {
        let me = self.containers.get(container)?;
        for net_id in &me.networks {
            let Some(net) = self.networks.get(net_id) else {
                continue;
            };
            for e in &net.endpoints {
                let matches = match ip {
                    IpAddr::V4(v) => e.ipv4 == Some(v),
                    IpAddr::V6(v) => e.ipv6 == Some(v),
                };
                if matches && let Some(first) = e.names.first() {
                    return Some(format!("{first}.{}", net.name));
                }
            }
        }
        None
    }

    /// Whether queries for other names may go to the upstream servers: the container
    /// has a network that is not internal.
    pub fn may_forward(&self, container: &str) -> bool {
        self.containers.get(container).is_some_and(|c| {
            c.networks
                .iter()
                .any(|n| self.networks.get(n).is_some_and(|n| !n.internal))
        })
    }
}

/// `4.3.2.1.in-addr.arpa` → 1.2.3.4; the IPv6 nibble form too.
pub fn parse_reverse(name: &str) -> Option<IpAddr> {
    let q = normalize(name);
    if let Some(rest) = q.strip_suffix(".in-addr.arpa") {
        let parts: Vec<u8> = rest
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u8>>>()?;
        if parts.len() != 4 {
            return None;
        }
        return Some(IpAddr::V4(Ipv4Addr::new(
            parts[3], parts[2], parts[1], parts[0],
        )));
    }
    let rest = q.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .split('.')
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 1))
        .collect::<Option<Vec<u8>>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut v: u128 = 0;
    for n in nibbles.iter().rev() {
        v = (v << 4) | *n as u128;
    }
    Some(IpAddr::V6(Ipv6Addr::from(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Names {
        let mut n = Names::default();
        n.networks.insert(
            "net1".into(),
            NetworkNames {
                name: "front".into(),
                internal: false,
                endpoints: vec![
                    NameEntry {
                        container: "c1".into(),
                        names: vec!["web".into(), "www".into(), "aaaaaaaaaaaa".into()],
                        ipv4: Some("172.18.0.2".parse().unwrap()),
                        ipv6: None,
                    },
                    NameEntry {
                        container: "c2".into(),
                        names: vec!["db".into()],
                        ipv4: Some("172.18.0.3".parse().unwrap()),
                        ipv6: Some("fd00::3".parse().unwrap()),
                    },
                ],
            },
        );
        n.networks.insert(
            "net2".into(),
            NetworkNames {
                name: "back".into(),
                internal: true,
                endpoints: vec![NameEntry {
                    container: "c3".into(),
                    names: vec!["cache".into()],
                    ipv4: Some("172.19.0.2".parse().unwrap()),
                    ipv6: None,
                }],
            },
        );
        n.containers.insert(
            "c2".into(),
            ContainerNames {
                networks: vec!["net1".into()],
                links: [("mylink".to_string(), "c1".to_string())]
                    .into_iter()
                    .collect(),
            },
        );
        n.containers.insert(
            "c3".into(),
            ContainerNames {
                networks: vec!["net2".into()],
                links: BTreeMap::new(),
            },
        );
        n
    }

    #[test]
    fn names_resolve_on_shared_networks_only() {
        let n = sample();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(
            n.lookup("c2", "WEB.", false),
            Lookup::Found(vec![ip("172.18.0.2")])
        );
        assert_eq!(
            n.lookup("c2", "aaaaaaaaaaaa", false),
            Lookup::Found(vec![ip("172.18.0.2")])
        );
        assert_eq!(
            n.lookup("c2", "web.front", false),
            Lookup::Found(vec![ip("172.18.0.2")])
        );
        assert_eq!(
            n.lookup("c2", "mylink", false),
            Lookup::Found(vec![ip("172.18.0.2")])
        );
        // Known, but without an IPv6 address: an empty answer, not a forward.
        assert_eq!(n.lookup("c2", "web", true), Lookup::Found(vec![]));
        assert_eq!(n.lookup("c2", "cache", false), Lookup::Unknown);
        assert_eq!(n.lookup("c3", "web", false), Lookup::Unknown);
        assert_eq!(n.lookup("nobody", "web", false), Lookup::Unknown);
        assert!(n.may_forward("c2"));
        assert!(!n.may_forward("c3"));
    }

    #[test]
    fn reverse_names() {
        let n = sample();
        assert_eq!(
            parse_reverse("2.0.18.172.in-addr.arpa."),
            Some("172.18.0.2".parse().unwrap())
        );
        assert_eq!(
            n.reverse("c2", "172.18.0.2".parse().unwrap()).as_deref(),
            Some("web.front")
        );
        let v6 = "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(parse_reverse(v6), Some("fd00::3".parse().unwrap()));
        assert_eq!(parse_reverse("x.in-addr.arpa"), None);
    }
}
