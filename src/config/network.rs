//! The networking part of the configuration, with Docker's keys and flags: the
//! default bridge (`bridge`, `bip`, `fixed-cidr`, `mtu`), the subnets new networks
//! get (`default-address-pools`), the firewall and forwarding switches (`iptables`,
//! `ip-forward`, `ip-masq`, `icc`, `userland-proxy`), the default binding address
//! (`ip`), `host-gateway-ip`, and the DNS settings containers get (`dns`,
//! `dns-search`, `dns-opts`).

use std::net::IpAddr;

use serde_json::Value;

use super::{ConfigError, FileReader};
use crate::cli::Flags;

/// An entry of `default-address-pools`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPoolConfig {
    pub base: ipnet::Ipv4Net,
    pub size: u8,
}

/// Networking settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The default bridge's interface (`docker0`); `None` when `bridge` is `none`.
    pub bridge: Option<String>,
    /// The default bridge's address and subnet (`192.168.1.5/24`: gateway .5).
    pub bip: Option<ipnet::IpNet>,
    /// Where the default bridge hands out addresses, inside its subnet.
    pub fixed_cidr: Option<ipnet::Ipv4Net>,
    /// Subnets for new networks; empty means Docker's defaults.
    pub default_address_pools: Vec<AddressPoolConfig>,
    /// MTU of the default bridge's interfaces (0: the kernel's default, 1500).
    pub mtu: u32,
    pub iptables: bool,
    pub ip_forward: bool,
    pub ip_masq: bool,
    pub icc: bool,
    pub userland_proxy: bool,
    /// The host address published ports bind to by default (`ip`, `0.0.0.0`).
    pub default_binding_ip: IpAddr,
    /// What `host-gateway` in `--add-host` stands for (default: the bridge's gateway).
    pub host_gateway_ip: Option<IpAddr>,
    pub dns: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub dns_opts: Vec<String>,
}

/// daemon.json keys this file reads, with the clap ids of their flags.
pub const KEYS: &[(&str, &str)] = &[
    ("bridge", "bridge"),
    ("bip", "bip"),
    ("fixed-cidr", "fixed_cidr"),
    ("default-address-pools", "default_address_pools"),
    ("mtu", "mtu"),
    ("iptables", "iptables"),
    ("ip-forward", "ip_forward"),
    ("ip-masq", "ip_masq"),
    ("icc", "icc"),
    ("userland-proxy", "userland_proxy"),
    ("ip", "ip"),
    ("host-gateway-ip", "host_gateway_ip"),
    ("dns", "dns"),
    ("dns-search", "dns_search"),
    ("dns-opts", "dns_opts"),
];

/// Builds the networking settings from the file (when it has a key) or the flags.
pub(crate) fn from_parts(r: &FileReader<'_>, f: &Flags) -> Result<NetworkConfig, ConfigError> {
    let bad = |k: &str, want: &str| r.bad(k, want);
    let string = |k: &str, flag: &str| r.string(k, flag);
    let boolean = |k: &str, flag: bool| r.boolean(k, flag);
    let strings = |k: &str, flag: &[String]| r.strings(k, flag);
    let file = r;

    let bridge_name = string("bridge", &f.bridge)?;
    let bip_text = string("bip", &f.bip)?;
    if !bridge_name.is_empty() && !bip_text.is_empty() {
        return Err(ConfigError(
            "You specified -b & --bip, mutually exclusive options. Please specify only one".into(),
        ));
    }
    let bridge = match bridge_name.as_str() {
        "none" => None,
        "" => Some("docker0".to_string()),
        name => {
            check_interface_name(name)?;
            Some(name.to_string())
        }
    };
    let bip = if bip_text.is_empty() {
        None
    } else {
        let net: ipnet::IpNet = bip_text
            .parse()
            .map_err(|_| ConfigError(format!("invalid bip \"{bip_text}\": expected an address with a prefix length, such as 192.168.1.5/24")))?;
        if !net.addr().is_ipv4() {
            return Err(ConfigError(format!(
                "invalid bip \"{bip_text}\": expected an IPv4 address"
            )));
        }
        Some(net)
    };
    let fixed_text = string("fixed-cidr", &f.fixed_cidr)?;
    let fixed_cidr = if fixed_text.is_empty() {
        None
    } else {
        Some(
            fixed_text
                .parse::<ipnet::Ipv4Net>()
                .map_err(|_| ConfigError(format!("invalid fixed-cidr \"{fixed_text}\": expected an IPv4 subnet such as 172.17.1.0/24")))?
                .trunc(),
        )
    };

    let default_address_pools = match file.get("default-address-pools") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| {
                let base = p.get("base").and_then(Value::as_str).ok_or_else(|| {
                    bad(
                        "default-address-pools",
                        "objects with \"base\" and \"size\"",
                    )
                })?;
                let size = p.get("size").and_then(Value::as_u64).ok_or_else(|| {
                    bad(
                        "default-address-pools",
                        "objects with \"base\" and \"size\"",
                    )
                })?;
                address_pool(base, size)
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("default-address-pools", "a list")),
        None => f
            .default_address_pools
            .iter()
            .map(|spec| {
                let mut base = None;
                let mut size = None;
                for part in spec.split(',') {
                    match part.split_once('=') {
                        Some(("base", v)) => base = Some(v.to_string()),
                        Some(("size", v)) => size = v.parse::<u64>().ok(),
                        _ => {
                            return Err(ConfigError(format!(
                                "invalid --default-address-pool \"{spec}\": use base=CIDR,size=N"
                            )));
                        }
                    }
                }
                match (base, size) {
                    (Some(b), Some(s)) => address_pool(&b, s),
                    _ => Err(ConfigError(format!(
                        "invalid --default-address-pool \"{spec}\": use base=CIDR,size=N"
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
    };

    let mtu = match file.get("mtu") {
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad("mtu", "a positive integer"))?,
        None => f.mtu,
    };
    if mtu != 0 && !(68..=65535).contains(&mtu) {
        return Err(ConfigError(format!(
            "invalid MTU {mtu}: it must be between 68 and 65535"
        )));
    }

    let iptables = boolean("iptables", f.iptables)?;
    let ip_forward = boolean("ip-forward", f.ip_forward)?;
    let ip_masq = boolean("ip-masq", f.ip_masq)?;
    let icc = boolean("icc", f.icc)?;
    let userland_proxy = boolean("userland-proxy", f.userland_proxy)?;
    if !iptables && !icc {
        return Err(ConfigError(
            "You specified --iptables=false with --icc=false. ICC=false uses iptables to function. Please set --icc or --iptables to true.".into(),
        ));
    }
    if !iptables && ip_masq {
        return Err(ConfigError(
            "You specified --iptables=false with --ip-masq=true. IP masquerading uses iptables to function. Please set --ip-masq to false or --iptables to true.".into(),
        ));
    }

    let ip_text = string("ip", &f.ip)?;
    let default_binding_ip: IpAddr = ip_text
        .parse()
        .map_err(|_| ConfigError(format!("invalid ip \"{ip_text}\": expected an IP address")))?;
    let hg_text = string("host-gateway-ip", &f.host_gateway_ip)?;
    let host_gateway_ip = if hg_text.is_empty() {
        None
    } else {
        Some(hg_text.parse().map_err(|_| {
            ConfigError(format!(
                "invalid host-gateway-ip \"{hg_text}\": expected an IP address"
            ))
        })?)
    };

    let dns = strings("dns", &f.dns)?
        .iter()
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| ConfigError(format!("{s} is not an ip address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dns_search = strings("dns-search", &f.dns_search)?;
    for d in &dns_search {
        check_search_domain(d).map_err(ConfigError)?;
    }
    let dns_opts = strings("dns-opts", &f.dns_opts)?;

    Ok(NetworkConfig {
        bridge,
        bip,
        fixed_cidr,
        default_address_pools,
        mtu,
        iptables,
        ip_forward,
        ip_masq,
        icc,
        userland_proxy,
        default_binding_ip,
        host_gateway_ip,
        dns,
        dns_search,
        dns_opts,
    })
}

fn address_pool(base: &str, size: u64) -> Result<AddressPoolConfig, ConfigError> {
    let net: ipnet::Ipv4Net = base.parse().map_err(|_| {
        ConfigError(format!(
            "invalid default address pool base \"{base}\": expected an IPv4 subnet such as 10.10.0.0/16"
        ))
    })?;
    if size > 32 || (size as u8) < net.prefix_len() {
        return Err(ConfigError(format!(
            "invalid default address pool {base} size {size}: the size must be a prefix length between {} and 32",
            net.prefix_len()
        )));
    }
    Ok(AddressPoolConfig {
        base: net.trunc(),
        size: size as u8,
    })
}

fn check_interface_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "invalid bridge name \"{name}\": an interface name has 1 to 15 characters, without '/', ':' or spaces"
        )))
    }
}

/// Docker's check of a DNS search domain.
pub fn check_search_domain(d: &str) -> Result<(), String> {
    if d == "." {
        return Ok(());
    }
    let valid = !d.is_empty()
        && d.len() <= 255
        && !d.starts_with('.')
        && d.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!("{d} is not a valid domain"))
    }
}

impl NetworkConfig {
    /// The pools new networks take subnets from.
    pub fn pools(&self) -> Vec<crate::engine::network::ipam::AddressPool> {
        if self.default_address_pools.is_empty() {
            return crate::engine::network::ipam::default_pools();
        }
        self.default_address_pools
            .iter()
            .map(|p| crate::engine::network::ipam::AddressPool {
                base: p.base,
                size: p.size,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(args: &[&str], json: &str) -> Result<NetworkConfig, ConfigError> {
        crate::config::parse_section(args, json, from_parts)
    }

    #[test]
    fn defaults_are_dockers() {
        let c = net(&[], "{}").unwrap();
        assert_eq!(c.bridge.as_deref(), Some("docker0"));
        assert!(c.iptables && c.ip_forward && c.ip_masq && c.icc && c.userland_proxy);
        assert_eq!(c.default_binding_ip.to_string(), "0.0.0.0");
        assert_eq!(c.pools()[0].base.to_string(), "172.17.0.0/16");
    }

    #[test]
    fn flags_and_file() {
        let c = net(
            &[
                "--iptables=false",
                "--ip-masq=false",
                "--bip",
                "10.9.0.1/24",
            ],
            "{}",
        )
        .unwrap();
        assert!(!c.iptables);
        assert_eq!(c.bip.unwrap().to_string(), "10.9.0.1/24");
        let c = net(
            &[],
            r#"{"bridge":"none","default-address-pools":[{"base":"10.10.0.0/16","size":24}],"dns":["10.0.0.53"],"mtu":1400}"#,
        )
        .unwrap();
        assert!(c.bridge.is_none());
        assert_eq!(c.pools()[0].size, 24);
        assert_eq!(c.mtu, 1400);
        let c = net(
            &["--default-address-pool", "base=10.20.0.0/16,size=24"],
            "{}",
        )
        .unwrap();
        assert_eq!(c.default_address_pools[0].base.to_string(), "10.20.0.0/16");
    }

    #[test]
    fn conflicts_in_dockers_words() {
        let e = net(&["-b", "br1", "--bip", "10.0.0.1/24"], "{}").unwrap_err();
        assert!(e.0.contains("mutually exclusive"));
        let e = net(&[], r#"{"iptables":false}"#).unwrap_err();
        assert!(e.0.contains("IP masquerading uses iptables"), "{}", e.0);
        assert!(net(&[], r#"{"iptables":false,"ip-masq":false,"icc":false}"#).is_err());
        assert!(net(&[], r#"{"dns":["not-an-ip"]}"#).is_err());
        assert!(
            net(
                &[],
                r#"{"default-address-pools":[{"base":"10.0.0.0/16","size":8}]}"#
            )
            .is_err()
        );
        assert!(net(&[], r#"{"mtu":10}"#).is_err());
        assert!(net(&[], r#"{"dns-search":["-bad..domain"]}"#).is_err());
    }
}
