//! A network as the daemon keeps it and as `docker network inspect` shows it
//! (Docker's `NetworkResource` without its `Containers`), the validation of
//! `POST /networks/create` into one, and the bridge parameters derived from it.
//!
//! User-defined networks are stored one file each in `<data-root>/network/networks/`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ipam;
use crate::engine::containers::record::nullable;
use crate::engine::{Error, Result};

/// Bridge driver options this daemon applies.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
const KNOWN_OPTIONS: &[&str] = &[
    OPT_BRIDGE_NAME,
    OPT_ICC,
    OPT_MASQUERADE,
    OPT_HOST_BINDING,
    OPT_MTU,
    OPT_DEFAULT_BRIDGE,
];

/// The names no user-defined network may take.
pub const PREDEFINED: &[&str] = &["bridge", "host", "none", "default"];

/// One subnet of a network's IPAM configuration, as Docker reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    pub options: Option<BTreeMap<String, String>>,
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigFrom {
    pub network: String,
}

/// A network (Docker's `NetworkResource` field order, without `Containers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigFrom,
    pub config_only: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

impl Network {
    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// The default bridge, or `host` / `none`.
    pub fn is_predefined(&self) -> bool {
        PREDEFINED.contains(&self.name.as_str())
    }
}

/// A network file: the network and what inspect does not show.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub network: Network,
    /// The IPv4 subnet was given in the create request.
    #[serde(default)]
    pub user_subnet: bool,
}

/// One subnet of a bridge network, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub net: IpNet,
    pub range: Option<IpNet>,
    pub gateway: IpAddr,
    pub aux: Vec<IpAddr>,
}

/// What a bridge network is made of on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeParams {
    pub iface: String,
    pub mtu: u32,
    pub icc: bool,
    pub masquerade: bool,
    pub host_binding_ipv4: IpAddr,
    pub v4: Subnet,
    pub v6: Option<Subnet>,
    pub internal: bool,
}

impl BridgeParams {
    pub fn v4_subnet(&self) -> Ipv4Net {
        match self.v4.net {
            IpNet::V4(n) => n,
            IpNet::V6(_) => Ipv4Net::default(),
        }
    }
}

/// The body of `POST /networks/create`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub driver: String,
    #[serde(default, deserialize_with = "nullable")]
    pub scope: String,
    #[serde(rename = "EnableIPv4", default)]
    pub enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6", default)]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM", default)]
    pub ipam: Option<IpamRequest>,
    #[serde(default, deserialize_with = "nullable")]
    pub internal: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub attachable: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub ingress: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub config_only: bool,
    #[serde(default)]
    pub config_from: Option<ConfigFrom>,
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Deprecated, ignored from API 1.44 on: names are always unique.
    #[serde(default)]
    pub check_duplicate: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub driver: String,
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub config: Vec<IpamConfigRequest>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfigRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub subnet: String,
    #[serde(rename = "IPRange", default, deserialize_with = "nullable")]
    pub ip_range: String,
    #[serde(default, deserialize_with = "nullable")]
    pub gateway: String,
    #[serde(default, deserialize_with = "nullable")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

fn config_error(errors: Vec<String>) -> Error {
    if errors.len() == 1 {
        Error::invalid(format!("invalid network config:\n{}", errors[0]))
    } else {
        Error::invalid(format!(
            "invalid network config:\n{}",
            errors
                .iter()
                .map(|e| format!("* {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

/// Checks one subnet entry of a create request (Docker's `ValidateIPAM` wording).
fn validate_config(c: &IpamConfigRequest, errors: &mut Vec<String>) -> Option<(IpNet, bool)> {
    let subnet: IpNet = match c.subnet.parse() {
        Ok(n) => n,
        Err(_) => {
            errors.push(format!(
                "invalid subnet {}: invalid CIDR block notation",
                c.subnet
            ));
            return None;
        }
    };
    if subnet.trunc() != subnet {
        errors.push(format!(
            "invalid subnet {}: it should be {}",
            c.subnet,
            subnet.trunc()
        ));
        return None;
    }
    let v6 = matches!(subnet, IpNet::V6(_));
    if !c.ip_range.is_empty() {
        match c.ip_range.parse::<IpNet>() {
            Err(_) => errors.push(format!(
                "invalid ip-range {}: invalid CIDR block notation",
                c.ip_range
            )),
            Ok(r) if matches!(r, IpNet::V6(_)) != v6 => errors.push(format!(
                "invalid ip-range {}: parent subnet is an IPv{} block",
                c.ip_range,
                if v6 { 6 } else { 4 }
            )),
            Ok(r) if r.prefix_len() < subnet.prefix_len() => errors.push(format!(
                "invalid ip-range {}: CIDR block is bigger than its parent subnet {}",
                c.ip_range, subnet
            )),
            Ok(r) if r.trunc() != r => errors.push(format!(
                "invalid ip-range {}: it should be {}",
                c.ip_range,
                r.trunc()
            )),
            Ok(r) if !subnet.contains(&r) => errors.push(format!(
                "invalid ip-range {}: parent subnet {} doesn't contain ip-range",
                c.ip_range, subnet
            )),
            Ok(_) => {}
        }
    }
    if !c.gateway.is_empty() {
        match c.gateway.parse::<IpAddr>() {
            Err(_) => errors.push(format!("invalid gateway {}: invalid address", c.gateway)),
            Ok(g) if !subnet.contains(&g) => errors.push(format!(
                "invalid gateway {}: parent subnet {} doesn't contain this address",
                c.gateway, subnet
            )),
            Ok(_) => {}
        }
    }
    for (name, addr) in &c.auxiliary_addresses {
        match addr.parse::<IpAddr>() {
            Err(_) => errors.push(format!(
                "invalid auxiliary address {name}: invalid address"
            )),
            Ok(a) if !subnet.contains(&a) => errors.push(format!(
                "invalid auxiliary address {name}: parent subnet {subnet} doesn't contain this address"
            )),
            Ok(_) => {}
        }
    }
    Some((subnet, v6))
}

/// Validates a create request into the network to store, and whether the request
/// chose its IPv4 subnet. `taken_subnets` are the subnets of existing networks and
/// the host's routes; `pools` are where a subnet comes from when the request names
/// none.
pub fn from_request(
    req: CreateRequest,
    id: String,
    created: String,
    pools: &[ipam::AddressPool],
    taken_subnets: &[IpNet],
) -> Result<(Network, bool)> {
    let name = req.name.trim().to_string();
    if name.is_empty() {
        return Err(Error::invalid("network name must not be empty"));
    }
    if PREDEFINED.contains(&name.as_str()) {
        return Err(Error::Forbidden(format!(
            "operation is not permitted on predefined {name} network "
        )));
    }
    let driver = if req.driver.is_empty() {
        "bridge".to_string()
    } else {
        req.driver.clone()
    };
    match driver.as_str() {
        "bridge" => {}
        "host" | "null" => {
            return Err(Error::Forbidden(format!(
                "only one instance of \"{driver}\" network is allowed"
            )));
        }
        "overlay" => return Err(not_swarm()),
        "macvlan" | "ipvlan" => {
            return Err(Error::not_implemented(format!(
                "the {driver} network driver is not supported by this daemon yet: create a bridge network instead"
            )));
        }
        other => return Err(Error::not_found(format!("plugin \"{other}\" not found"))),
    }
    match req.scope.as_str() {
        "" | "local" => {}
        "swarm" | "global" => return Err(not_swarm()),
        other => {
            return Err(Error::invalid(format!(
                "invalid network scope \"{other}\": use \"local\""
            )));
        }
    }
    if req.ingress {
        return Err(not_swarm());
    }
    if req.config_only
        || req
            .config_from
            .as_ref()
            .is_some_and(|c| !c.network.is_empty())
    {
        return Err(Error::not_implemented(
            "config-only networks (--config-only, --config-from) are not supported by this daemon yet",
        ));
    }
    if req.enable_ipv4 == Some(false) {
        return Err(Error::not_implemented(
            "IPv6-only networks (EnableIPv4 false) are not supported by this daemon yet",
        ));
    }
    for k in req.options.keys() {
        if k.starts_with("com.docker.network.") && !KNOWN_OPTIONS.contains(&k.as_str()) {
            return Err(Error::not_implemented(format!(
                "network option {k} is not supported by this daemon yet"
            )));
        }
    }
    let ipam_req = req.ipam.clone().unwrap_or_default();
    match ipam_req.driver.as_str() {
        "" | "default" => {}
        other => {
            return Err(Error::not_found(format!("plugin \"{other}\" not found")));
        }
    }

    let mut errors = Vec::new();
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for c in &ipam_req.config {
        if let Some((subnet, is_v6)) = validate_config(c, &mut errors) {
            if is_v6 { &mut v6 } else { &mut v4 }.push((subnet, c.clone()));
        }
    }
    if !errors.is_empty() {
        return Err(config_error(errors));
    }
    if v4.len() > 1 || v6.len() > 1 {
        return Err(Error::not_implemented(
            "more than one subnet per address family on one network is not supported by this daemon yet",
        ));
    }
    let enable_ipv6 = req.enable_ipv6.unwrap_or(false);
    if !v6.is_empty() && !enable_ipv6 {
        return Err(Error::invalid(
            "an IPv6 subnet was given, but IPv6 is not enabled on this network: add --ipv6",
        ));
    }

    let user_subnet = !v4.is_empty();
    let given = |(subnet, c): (IpNet, IpamConfigRequest)| -> Result<IpamConfig> {
        if taken_subnets.iter().any(|t| ipam::overlaps(t, &subnet)) {
            return Err(Error::Forbidden(
                "Pool overlaps with other one on this address space".into(),
            ));
        }
        Ok(IpamConfig {
            subnet: c.subnet,
            ip_range: c.ip_range,
            gateway: c.gateway,
            auxiliary_addresses: c.auxiliary_addresses,
        })
    };
    let chosen = |subnet: IpNet| IpamConfig {
        subnet: subnet.to_string(),
        gateway: ipam::first_host(subnet).to_string(),
        ..IpamConfig::default()
    };
    let mut config = vec![match v4.pop() {
        Some(v) => given(v)?,
        None => chosen(IpNet::V4(
            ipam::next_subnet(pools, taken_subnets).ok_or_else(|| {
                Error::invalid("all predefined address pools have been fully subnetted")
            })?,
        )),
    }];
    if enable_ipv6 {
        config.push(match v6.pop() {
            Some(v) => given(v)?,
            None => chosen(IpNet::V6(unique_local_subnet()?)),
        });
    }

    let network = Network {
        name,
        id,
        created,
        scope: "local".into(),
        driver,
        enable_ipv4: true,
        enable_ipv6,
        ipam: Ipam {
            driver: "default".into(),
            options: Some(ipam_req.options),
            config,
        },
        internal: req.internal,
        attachable: req.attachable,
        ingress: false,
        config_from: ConfigFrom::default(),
        config_only: false,
        options: req.options,
        labels: req.labels,
    };
    // The options must make a valid bridge.
    bridge_params(&network, 0, IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
    Ok((network, user_subnet))
}

/// A random unique local /64 (`fdXX:XXXX:XXXX:XXXX::/64`) for an IPv6 network
/// created without a subnet.
fn unique_local_subnet() -> Result<Ipv6Net> {
    let r = crate::engine::random_bytes(7)?;
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..8].copy_from_slice(&r);
    Ok(Ipv6Net::new(octets.into(), 64).unwrap_or_default())
}

fn not_swarm() -> Error {
    Error::Forbidden(
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".into(),
    )
}

fn bool_option(opts: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool> {
    match opts.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(default),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => Ok(true),
            "false" | "0" | "f" => Ok(false),
            _ => Err(Error::invalid(format!(
                "invalid value for {key}: \"{v}\" (expected true or false)"
            ))),
        },
    }
}

fn subnet_of(c: &IpamConfig) -> Result<Subnet> {
    let net: IpNet = c
        .subnet
        .parse()
        .map_err(|_| Error::internal(format!("stored subnet {:?} is not a CIDR", c.subnet)))?;
    let range = if c.ip_range.is_empty() {
        None
    } else {
        Some(c.ip_range.parse().map_err(|_| {
            Error::internal(format!("stored ip-range {:?} is not a CIDR", c.ip_range))
        })?)
    };
    let gateway = if c.gateway.is_empty() {
        ipam::first_host(net.trunc())
    } else {
        c.gateway.parse().map_err(|_| {
            Error::internal(format!("stored gateway {:?} is not an address", c.gateway))
        })?
    };
    let aux = c
        .auxiliary_addresses
        .values()
        .filter_map(|a| a.parse().ok())
        .collect();
    Ok(Subnet {
        net: net.trunc(),
        range,
        gateway,
        aux,
    })
}

/// The bridge a network makes: its interface name (`br-` and 12 hex digits of the
/// ID unless named), MTU, and subnets. `default_mtu` and `default_binding` come from
/// the daemon's configuration.
pub fn bridge_params(
    n: &Network,
    default_mtu: u32,
    default_binding: IpAddr,
) -> Result<BridgeParams> {
    let opts = &n.options;
    let iface = match opts.get(OPT_BRIDGE_NAME).filter(|s| !s.is_empty()) {
        Some(name) => {
            if name.len() > 15 || name.contains(['/', ':', ' ']) {
                return Err(Error::invalid(format!(
                    "invalid bridge name \"{name}\": an interface name has 1 to 15 characters, without '/', ':' or spaces"
                )));
            }
            name.clone()
        }
        None => format!("br-{}", &n.id[..12.min(n.id.len())]),
    };
    let mtu = match opts.get(OPT_MTU).filter(|s| !s.is_empty()) {
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|m| (68..=65535).contains(m))
            .ok_or_else(|| Error::invalid(format!("invalid MTU for {OPT_MTU}: {v}")))?,
        None => default_mtu,
    };
    let host_binding_ipv4 = match opts.get(OPT_HOST_BINDING).filter(|s| !s.is_empty()) {
        Some(v) => v
            .parse()
            .map_err(|_| Error::invalid(format!("invalid address for {OPT_HOST_BINDING}: {v}")))?,
        None => default_binding,
    };
    let mut v4 = None;
    let mut v6 = None;
    for c in &n.ipam.config {
        let s = subnet_of(c)?;
        match s.net {
            IpNet::V4(_) => v4 = Some(s),
            IpNet::V6(_) => v6 = Some(s),
        }
    }
    let v4 = v4.ok_or_else(|| Error::internal(format!("network {} has no IPv4 subnet", n.name)))?;
    Ok(BridgeParams {
        iface,
        mtu,
        icc: bool_option(opts, OPT_ICC, true)?,
        masquerade: bool_option(opts, OPT_MASQUERADE, true)?,
        host_binding_ipv4,
        v4,
        v6: if n.enable_ipv6 { v6 } else { None },
        internal: n.internal,
    })
}

/// A create request's body, parsed with Docker's error for bad JSON.
pub fn parse_request(body: Option<Value>) -> Result<CreateRequest> {
    let v = body.ok_or_else(|| Error::invalid("invalid JSON: the request body is empty"))?;
    serde_json::from_value(v).map_err(|e| Error::invalid(format!("invalid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> CreateRequest {
        serde_json::from_str(json).unwrap()
    }

    fn create(json: &str, taken: &[&str]) -> Result<Network> {
        let taken: Vec<IpNet> = taken.iter().map(|t| t.parse().unwrap()).collect();
        from_request(
            req(json),
            "ab".repeat(32),
            "now".into(),
            &ipam::default_pools(),
            &taken,
        )
        .map(|(n, _)| n)
    }

    #[test]
    fn default_subnet_comes_from_the_pools() {
        let n = create(r#"{"Name":"n1"}"#, &["172.17.0.0/16"]).unwrap();
        assert_eq!(n.ipam.config[0].subnet, "172.18.0.0/16");
        assert_eq!(n.ipam.config[0].gateway, "172.18.0.1");
        let p = bridge_params(&n, 0, "0.0.0.0".parse().unwrap()).unwrap();
        assert_eq!(p.iface, "br-abababababab");
        assert!(p.icc && p.masquerade);
    }

    #[test]
    fn user_subnets_are_kept_as_given() {
        let n = create(
            r#"{"Name":"n1","IPAM":{"Config":[{"Subnet":"10.5.0.0/16","IPRange":"10.5.1.0/24"}]},"Options":{"com.docker.network.bridge.name":"mybr"}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(n.ipam.config[0].gateway, "");
        let p = bridge_params(&n, 0, "0.0.0.0".parse().unwrap()).unwrap();
        assert_eq!(p.v4.gateway.to_string(), "10.5.0.1");
        assert_eq!(p.iface, "mybr");
    }

    #[test]
    fn bad_requests_get_dockers_errors() {
        let e = create(
            r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"10.0.0.0/24","Gateway":"10.1.0.1"}]}}"#,
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid network config:\ninvalid gateway 10.1.0.1: parent subnet 10.0.0.0/24 doesn't contain this address"
        );
        let e = create(
            r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"10.0.0.1/24"}]}}"#,
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid network config:\ninvalid subnet 10.0.0.1/24: it should be 10.0.0.0/24"
        );
        let e = create(
            r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"10.0.0.0/16"}]}}"#,
            &["10.0.5.0/24"],
        )
        .unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)));
        assert_eq!(
            e.to_string(),
            "Pool overlaps with other one on this address space"
        );
        let e = create(r#"{"Name":"n","Driver":"foo"}"#, &[]).unwrap_err();
        assert_eq!(e.to_string(), "plugin \"foo\" not found");
        let e = create(r#"{"Name":"bridge"}"#, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "operation is not permitted on predefined bridge network "
        );
        assert!(matches!(
            create(r#"{"Name":"n","Driver":"macvlan"}"#, &[]),
            Err(Error::NotImplemented(_))
        ));
        assert!(matches!(
            create(
                r#"{"Name":"n","Options":{"com.docker.network.bridge.inhibit_ipv4":"true"}}"#,
                &[]
            ),
            Err(Error::NotImplemented(_))
        ));
        let e = create(
            r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"bogus"},{"Subnet":"10.0.0.0/24","IPRange":"10.1.0.0/24"}]}}"#,
            &[],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid network config:\n* invalid subnet bogus"),
            "{e}"
        );
    }

    #[test]
    fn ipv6_networks() {
        let n = create(
            r#"{"Name":"n","EnableIPv6":true,"IPAM":{"Config":[{"Subnet":"fd00:1::/64"}]}}"#,
            &[],
        )
        .unwrap();
        let p = bridge_params(&n, 0, "0.0.0.0".parse().unwrap()).unwrap();
        assert_eq!(p.v6.unwrap().gateway.to_string(), "fd00:1::1");
        let n = create(r#"{"Name":"n","EnableIPv6":true}"#, &[]).unwrap();
        assert!(n.ipam.config[1].subnet.starts_with("fd"));
        assert!(
            create(
                r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"fd00:1::/64"}]}}"#,
                &[]
            )
            .is_err()
        );
    }
}
