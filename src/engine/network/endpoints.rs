//! `docker create`'s networking: a new container's endpoints, worked out from
//! `HostConfig.NetworkMode` and `NetworkingConfig` (one network per endpoint, the
//! primary first) and checked with Docker's rules and messages; and what an
//! endpoint answers to (`DNSNames`, endpoint links).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::ipam;
use crate::engine::containers::Record;
use crate::engine::containers::record::{Endpoint, EndpointIpamConfig};
use crate::engine::containers::settings::{HostSettings, NetMode};
use crate::engine::{Engine, Error, Result};

/// `invalid config for network NAME: invalid endpoint settings:\nWHY`.
fn endpoint_error(network: &str, why: &str) -> Error {
    Error::invalid(format!(
        "invalid config for network {network}: invalid endpoint settings:\n{why}"
    ))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What the create request asked of the container's networking.
pub struct CreateNetworking<'a> {
    pub settings: &'a HostSettings,
    /// `NetworkingConfig` of the request.
    pub networking: Option<&'a Value>,
    /// `Config.MacAddress` (before API 1.44).
    pub legacy_mac: Option<&'a str>,
    /// `Config.Hostname` was given.
    pub hostname_given: bool,
    /// `Config.ExposedPorts` was given (before the image's are merged).
    pub exposed_given: bool,
}

impl Engine {
    /// Works out and checks a new container's endpoints; returns them and warnings.
    /// A missing network is a bad request here, not a 404: the CLI takes a 404 from
    /// create for a missing image and would try to pull it.
    pub fn network_endpoints_for_create(
        &self,
        c: &CreateNetworking<'_>,
    ) -> Result<(Vec<Endpoint>, Vec<String>)> {
        self.endpoints_for_create(c).map_err(|e| match e {
            Error::NotFound(m) => Error::invalid(m),
            other => other,
        })
    }

    fn endpoints_for_create(
        &self,
        c: &CreateNetworking<'_>,
    ) -> Result<(Vec<Endpoint>, Vec<String>)> {
        let s = c.settings;
        let mut warnings = Vec::new();
        let has_ports = !s.port_bindings.is_empty() || s.publish_all;
        let mut endpoint_configs: Vec<(String, Value)> = c
            .networking
            .and_then(|n| n.get("EndpointsConfig"))
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mode = match &s.network_mode {
            NetMode::Network(name) => match self.networks.resolve(name) {
                Ok(id) => {
                    let driver = self.networks.with(&id, |n| Ok(n.record.driver.clone()))?;
                    match driver.as_str() {
                        "host" => NetMode::Host,
                        "null" => NetMode::None,
                        _ => s.network_mode.clone(),
                    }
                }
                Err(e) => return Err(e),
            },
            other => other.clone(),
        };
        match &mode {
            NetMode::Container(_) => {
                let checks = [
                    (
                        c.hostname_given,
                        "conflicting options: hostname and the network mode",
                    ),
                    (
                        !s.links.is_empty(),
                        "conflicting options: container type network can't be used with links. This would result in undefined behavior",
                    ),
                    (
                        !s.dns.is_empty(),
                        "conflicting options: dns and the network mode",
                    ),
                    (
                        !s.extra_hosts.is_empty(),
                        "conflicting options: custom host-to-IP mapping and the network mode",
                    ),
                    (
                        c.legacy_mac.is_some_and(|m| !m.is_empty()),
                        "conflicting options: mac-address and the network mode",
                    ),
                    (
                        has_ports,
                        "conflicting options: port publishing and the container type network mode",
                    ),
                    (
                        c.exposed_given,
                        "conflicting options: port exposing and the container type network mode",
                    ),
                ];
                if let Some((_, msg)) = checks.iter().find(|(bad, _)| *bad) {
                    return Err(Error::invalid(*msg));
                }
                return Ok((Vec::new(), warnings));
            }
            NetMode::Host => {
                if !s.links.is_empty() {
                    return Err(Error::invalid(
                        "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
                    ));
                }
                if c.legacy_mac.is_some_and(|m| !m.is_empty()) {
                    return Err(Error::invalid(
                        "conflicting options: mac-address and the network mode",
                    ));
                }
                if has_ports {
                    warnings
                        .push("Published ports are discarded when using host network mode".into());
                }
                return Ok((Vec::new(), warnings));
            }
            NetMode::None => {
                if endpoint_configs.len() > 1 {
                    return Err(Error::invalid(
                        "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                    ));
                }
                return Ok((Vec::new(), warnings));
            }
            NetMode::Default | NetMode::Network(_) => {}
        }
        let primary_name = mode.network().unwrap_or("bridge").to_string();
        if primary_name == "bridge" && self.networks.resolve("bridge").is_err() {
            // `bridge: none`: the default network is no network.
            return Ok((Vec::new(), warnings));
        }
        let primary_id = self.networks.resolve(&primary_name)?;
        // The primary network's entry may be keyed by name, ID or `default`.
        let primary_key = endpoint_configs.iter().position(|(k, _)| {
            k == "default"
                || *k == primary_name
                || self.networks.resolve(k).ok().as_deref() == Some(primary_id.as_str())
        });
        let primary_cfg = primary_key.map(|i| endpoint_configs.remove(i).1);
        let mut endpoints = Vec::new();
        let mut first = self.endpoint_from_config(&primary_id, primary_cfg.as_ref())?;
        if first.mac_config.is_empty()
            && let Some(m) = c.legacy_mac.filter(|m| !m.is_empty())
        {
            ipam::parse_mac(m)?;
            first.mac_config = m.to_string();
        }
        let user_defined = self.networks.with(&primary_id, |n| Ok(n.user_defined()))?;
        if user_defined {
            for (name, alias) in &s.links {
                let link = format!("{name}:{alias}");
                if !first.links.contains(&link) {
                    first.links.push(link);
                }
            }
        } else {
            for (name, alias) in &s.links {
                self.containers.get(name).map_err(|_| {
                    Error::not_found(format!(
                        "could not get container for {name}: No such container: {name}"
                    ))
                })?;
                let _ = alias;
            }
        }
        endpoints.push(first);
        for (key, cfg) in endpoint_configs {
            let id = self.networks.resolve(&key)?;
            let driver = self.networks.with(&id, |n| Ok(n.record.driver.clone()))?;
            if driver != "bridge" {
                return Err(Error::invalid(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ));
            }
            if endpoints.iter().any(|e: &Endpoint| e.network_id == id) {
                continue;
            }
            endpoints.push(self.endpoint_from_config(&id, Some(&cfg))?);
        }
        Ok((endpoints, warnings))
    }

    /// An endpoint on network `net_id` from `EndpointSettings` (create or connect).
    pub(crate) fn endpoint_from_config(
        &self,
        net_id: &str,
        cfg: Option<&Value>,
    ) -> Result<Endpoint> {
        let (name, user_defined, user_subnet, has_v6, subnet4) =
            self.networks.with(net_id, |n| {
                Ok((
                    n.record.name.clone(),
                    n.user_defined(),
                    n.user_subnet,
                    n.bridge.as_ref().is_some_and(|b| b.v6.is_some()),
                    n.bridge
                        .as_ref()
                        .map(|b| (b.v4.net, b.v6.as_ref().map(|s| s.net))),
                ))
            })?;
        let mut ep = Endpoint {
            network: name.clone(),
            network_id: net_id.to_string(),
            ..Endpoint::default()
        };
        let Some(cfg) = cfg.filter(|c| c.is_object()) else {
            return Ok(ep);
        };
        ep.aliases = strings(cfg.get("Aliases"));
        if !ep.aliases.is_empty() && !user_defined {
            return Err(endpoint_error(
                &name,
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        ep.links = strings(cfg.get("Links"));
        if !ep.links.is_empty() && !user_defined {
            return Err(endpoint_error(
                &name,
                "links on an endpoint are supported only on user defined networks: use --link",
            ));
        }
        if let Some(ipam_cfg) = cfg.get("IPAMConfig").filter(|v| v.is_object()) {
            let v4 = ipam_cfg
                .get("IPv4Address")
                .and_then(Value::as_str)
                .unwrap_or("");
            let v6 = ipam_cfg
                .get("IPv6Address")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !strings(ipam_cfg.get("LinkLocalIPs")).is_empty() {
                return Err(Error::not_implemented(
                    "link-local addresses (--link-local-ip) are not supported by this daemon yet",
                ));
            }
            if !v4.is_empty() || !v6.is_empty() {
                if !user_defined {
                    return Err(endpoint_error(
                        &name,
                        "user specified IP address is supported on user defined networks only",
                    ));
                }
                if !user_subnet {
                    return Err(endpoint_error(
                        &name,
                        "user specified IP address is supported only when connecting to networks with user configured subnets",
                    ));
                }
            }
            if !v4.is_empty() {
                let ip: Ipv4Addr = v4
                    .parse()
                    .map_err(|_| endpoint_error(&name, &format!("invalid IPv4 address: {v4}")))?;
                if !subnet4.is_some_and(|(n, _)| n.contains(&IpAddr::V4(ip))) {
                    return Err(endpoint_error(
                        &name,
                        &format!("no configured subnet or ip-range contain the IP address {ip}"),
                    ));
                }
            }
            if !v6.is_empty() {
                let ip: Ipv6Addr = v6
                    .parse()
                    .map_err(|_| endpoint_error(&name, &format!("invalid IPv6 address: {v6}")))?;
                if !has_v6
                    || !subnet4
                        .and_then(|(_, s6)| s6)
                        .is_some_and(|n| n.contains(&IpAddr::V6(ip)))
                {
                    return Err(endpoint_error(
                        &name,
                        &format!("no configured subnet or ip-range contain the IP address {ip}"),
                    ));
                }
            }
            if !v4.is_empty() || !v6.is_empty() {
                ep.ipam_config = Some(EndpointIpamConfig {
                    ipv4_address: v4.to_string(),
                    ipv6_address: v6.to_string(),
                });
            }
        }
        if let Some(mac) = cfg
            .get("MacAddress")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            ipam::parse_mac(mac).map_err(|e| endpoint_error(&name, &e.to_string()))?;
            ep.mac_config = mac.to_string();
        }
        if cfg
            .get("DriverOpts")
            .and_then(Value::as_object)
            .is_some_and(|o| !o.is_empty())
        {
            return Err(Error::not_implemented(
                "endpoint driver options (--driver-opt) are not supported by this daemon yet",
            ));
        }
        if cfg
            .get("GwPriority")
            .and_then(Value::as_i64)
            .is_some_and(|p| p != 0)
        {
            return Err(Error::not_implemented(
                "gateway priorities (--network gw-priority=…) are not supported by this daemon yet: the first network carries the default route",
            ));
        }
        Ok(ep)
    }

    /// The names a container's endpoint answers to on a user-defined network:
    /// its name, aliases, short ID and host name (Docker's `DNSNames`).
    pub(crate) fn dns_names(r: &Record, ep: &Endpoint, user_defined: bool) -> Vec<String> {
        if !user_defined {
            return Vec::new();
        }
        let c = &r.container;
        let mut out = vec![c.bare_name().to_string()];
        out.extend(ep.aliases.iter().cloned());
        out.push(c.short_id().to_string());
        out.push(c.config.hostname.clone());
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|n| !n.is_empty() && seen.insert(n.clone()));
        out
    }

    /// Endpoint links (`name:alias`) resolved to container IDs.
    pub(super) fn endpoint_links(&self, ep: &Endpoint) -> BTreeMap<String, String> {
        ep.links
            .iter()
            .filter_map(|l| {
                let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
                let target = self.containers.get(name.trim_start_matches('/')).ok()?;
                Some((
                    alias.rsplit('/').next().unwrap_or(alias).to_string(),
                    target.id.clone(),
                ))
            })
            .collect()
    }
}
