//! A container's networking at start and at exit:
//!
//! - at start ([`Engine::network_setup`]), its namespace is made, each endpoint gets
//!   addresses and an interface, its ports are published (host sockets held, DNAT
//!   rules), its embedded DNS server's sockets are opened, and its `/etc/hosts` and
//!   `/etc/resolv.conf` are written; `network.json` in its state directory lists
//!   what its monitor undoes at exit;
//! - once its command runs, its network proxy starts ([`Engine::network_started`]);
//! - at exit ([`Engine::network_stopped`]), addresses and ports are freed (and, when
//!   the monitor could not, its namespace and rules removed).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::etc::{DnsSettings, Hosts};
use super::firewall::{self, PortRule};
use super::ports::{self, Port, Proto};
use super::{ActiveEndpoint, ipam, sandbox};
use crate::engine::containers::Record;
use crate::engine::containers::record::Endpoint;
use crate::engine::containers::settings::{HostSettings, NetMode};
use crate::engine::{Engine, Error, Result};
use crate::init::spec::{NETWORK_FILE, NetworkMode, NetworkTeardown};
use crate::netproxy::{DnsSpec, Forward, ProxySpec};

/// A container's networking prepared for its start.
pub struct Setup {
    /// How the monitor joins it.
    pub mode: NetworkMode,
    /// `hostname`, `hosts`, `resolv.conf` to bind into the container.
    pub etc: [PathBuf; 3],
    /// `container:NAME` takes that container's host name.
    pub hostname: Option<(String, String)>,
    /// Environment of legacy links (`DB_PORT_5432_TCP=…`).
    pub link_env: Vec<String>,
    /// What the monitor undoes at exit (`network.json`).
    pub teardown: NetworkTeardown,
    /// The proxy to start once the command runs, with its sockets.
    proxy: Option<(ProxySpec, Vec<OwnedFd>)>,
    /// The endpoints with what they got.
    pub endpoints: Vec<Endpoint>,
    /// `NetworkSettings.Ports`.
    pub ports: BTreeMap<String, Option<Vec<ports::PortBinding>>>,
    pub sandbox_key: String,
    /// Host ports held, and endpoints registered (undone if the start fails).
    held: Vec<(Proto, IpAddr, u16)>,
    registered: Vec<String>,
}

impl Engine {
    /// Prepares a container's networking for its start (blocking: netlink, iptables).
    pub fn network_setup(&self, r: &Record, dir: &Path, state_dir: &Path) -> Result<Setup> {
        let c = &r.container;
        let s = &r.settings;
        let etc = [
            dir.join("hostname"),
            dir.join("hosts"),
            dir.join("resolv.conf"),
        ];
        let mut setup = Setup {
            mode: NetworkMode::None,
            etc: etc.clone(),
            hostname: None,
            link_env: Vec::new(),
            teardown: NetworkTeardown::default(),
            proxy: None,
            endpoints: c.network_settings.networks.clone(),
            ports: BTreeMap::new(),
            sandbox_key: String::new(),
            held: Vec::new(),
            registered: Vec::new(),
        };
        for e in &mut setup.endpoints {
            e.clear_runtime();
        }
        let hostname = &c.config.hostname;
        let domainname = &c.config.domainname;
        crate::store::write_replace(&etc[0], format!("{hostname}\n").as_bytes(), 0o644)?;
        let gateway = self
            .networks
            .config
            .host_gateway_ip
            .or_else(|| self.networks.default_gateway());
        let mut hosts = Hosts {
            hostname: hostname.clone(),
            domainname: domainname.clone(),
            ..Hosts::default()
        };
        for e in &s.extra_hosts {
            hosts
                .extra
                .push(super::etc::parse_extra_host(e, gateway).map_err(Error::invalid)?);
        }
        let dns = self.dns_settings(s);
        let host_resolv = super::etc::host_resolv();

        match &s.network_mode {
            NetMode::Host => {
                setup.mode = NetworkMode::Host;
                let mut text = std::fs::read_to_string("/etc/hosts")
                    .unwrap_or_else(|_| super::etc::HOSTS_DEFAULTS.to_string());
                for (name, ip) in &hosts.extra {
                    text.push_str(&format!("{ip}\t{name}\n"));
                }
                crate::store::write_replace(&etc[1], text.as_bytes(), 0o644)?;
                let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                crate::store::write_replace(&etc[2], resolv.as_bytes(), 0o644)?;
                return Ok(setup);
            }
            NetMode::Container(target) => {
                let t = self.containers.get(target)?;
                let tr = t.snapshot();
                if !tr.container.state.running {
                    return Err(Error::conflict(format!(
                        "cannot join network of a non running container: {target}"
                    )));
                }
                if t.id == c.id {
                    return Err(Error::invalid("cannot join own network"));
                }
                setup.mode = NetworkMode::Join(PathBuf::from(format!(
                    "/proc/{}/ns/net",
                    tr.container.state.pid
                )));
                setup.etc = [
                    PathBuf::from(&tr.container.hostname_path),
                    PathBuf::from(&tr.container.hosts_path),
                    PathBuf::from(&tr.container.resolv_conf_path),
                ];
                setup.hostname = Some((
                    tr.container.config.hostname.clone(),
                    tr.container.config.domainname.clone(),
                ));
                return Ok(setup);
            }
            _ => {}
        }
        if !c.network_settings.endpoints_kept
            && setup.endpoints.is_empty()
            && let Some(primary) = s.network_mode.network()
            && let Ok(id) = self.networks.resolve(primary)
        {
            // A record from before its endpoints were kept.
            setup.endpoints.push(Endpoint {
                network: primary.to_string(),
                network_id: id,
                ..Endpoint::default()
            });
        }
        if !setup.endpoints.is_empty() {
            self.networks.wait_host_ready()?;
        }
        if setup.endpoints.is_empty() {
            // `none`, or the default network with `bridge: none`.
            setup.mode = NetworkMode::None;
            crate::store::write_replace(&etc[1], hosts.render().as_bytes(), 0o644)?;
            let resolv = super::etc::resolv_conf(&host_resolv, &dns, false);
            crate::store::write_replace(&etc[2], resolv.as_bytes(), 0o644)?;
            return Ok(setup);
        }
        match self.network_setup_bridged(r, state_dir, &mut setup, &mut hosts, &dns, &host_resolv) {
            Ok(()) => Ok(setup),
            Err(e) => {
                self.network_abort(&c.id, setup);
                Err(e)
            }
        }
    }

    pub(super) fn dns_settings(&self, s: &HostSettings) -> DnsSettings {
        let cfg = &self.networks.config;
        DnsSettings {
            servers: if s.dns.is_empty() {
                cfg.dns.iter().map(|ip| ip.to_string()).collect()
            } else {
                s.dns.clone()
            },
            search: if s.dns_search.is_empty() {
                cfg.dns_search.clone()
            } else {
                s.dns_search.clone()
            },
            options: if s.dns_options.is_empty() {
                cfg.dns_opts.clone()
            } else {
                s.dns_options.clone()
            },
        }
    }

    fn network_setup_bridged(
        &self,
        r: &Record,
        state_dir: &Path,
        setup: &mut Setup,
        hosts: &mut Hosts,
        dns: &DnsSettings,
        host_resolv: &super::etc::Resolv,
    ) -> Result<()> {
        let c = &r.container;
        let s = &r.settings;
        // Addresses, and the endpoints registered on their networks.
        let mut ifaces = Vec::new();
        let mut embedded_dns = false;
        for (i, ep) in setup.endpoints.iter_mut().enumerate() {
            let (net_id, iface, params, user_defined) = self.join_endpoint(r, ep, i)?;
            setup.registered.push(net_id);
            embedded_dns |= user_defined;
            ifaces.push((iface, params, user_defined));
        }

        // Bridges someone removed since the daemon set them up come back.
        let mut checked: Vec<&str> = Vec::new();
        for (_, params, _) in &ifaces {
            if checked.contains(&params.iface.as_str()) {
                continue;
            }
            checked.push(&params.iface);
            let present = crate::net::netlink::Netlink::open()
                .and_then(|mut nl| nl.link(&params.iface))
                .map(|l| l.is_some())
                .unwrap_or(true);
            if !present {
                tracing::warn!("bridge {} is gone; making it again", params.iface);
                super::bridge::ensure(params)
                    .map_err(|e| Error::internal(format!("set up bridge {}: {e}", params.iface)))?;
            }
        }

        // The namespace and its interfaces.
        let ns_path = self.networks.netns_dir.join(&c.id[..12.min(c.id.len())]);
        let _ = crate::net::netns::remove(&ns_path);
        crate::net::netns::create(&ns_path).map_err(|e| {
            Error::internal(format!("create the container's network namespace: {e}"))
        })?;
        setup.teardown.netns = Some(ns_path.clone());
        setup.sandbox_key = ns_path.display().to_string();
        setup.mode = NetworkMode::Join(ns_path.clone());
        for (i, (iface, _, _)) in ifaces.iter().enumerate() {
            let host = sandbox::add_interface(&ns_path, iface).map_err(|e| {
                Error::internal(format!(
                    "failed to set up container networking: connect to network {}: {e}",
                    setup.endpoints[i].network
                ))
            })?;
            setup.endpoints[i].host_interface = host;
        }
        for ep in &setup.endpoints {
            if let Ok(ip) = ep.ip_address.parse::<IpAddr>() {
                hosts.own.push(ip);
            }
            if let Ok(ip) = ep.ipv6_address.parse::<IpAddr>() {
                hosts.own.push(ip);
            }
        }

        // Legacy links (default bridge).
        if !s.links.is_empty() && !embedded_dns {
            self.legacy_links(r, hosts, &mut setup.link_env)?;
        }

        // Published ports, on the first network.
        let (primary, params, _) = &ifaces[0];
        let exposed: Vec<Port> = c
            .config
            .exposed_ports
            .as_ref()
            .map(|m| m.keys().filter_map(|k| ports::parse_port(k).ok()).collect())
            .unwrap_or_default();
        let requests = ports::requests(
            &s.port_bindings,
            &exposed,
            s.publish_all,
            params.host_binding_ipv4,
            self.networks.ipv6_host,
        )?;
        let userland = self.networks.config.userland_proxy;
        let bound = self.networks.bind_ports(&requests, userland).map_err(|e| {
            Error::internal(format!(
                "failed to set up container networking: driver failed programming external connectivity on endpoint {} ({}): {e}",
                c.bare_name(),
                setup.endpoints[0].endpoint_id
            ))
        })?;
        setup.held = bound
            .iter()
            .map(|b| (b.port.proto, b.host_ip, b.host_port))
            .collect();
        let mut bound_list = Vec::new();
        let mut rules = Vec::new();
        let mut forwards = Vec::new();
        let mut fds = Vec::new();
        for b in bound {
            bound_list.push((b.port, b.host_ip, b.host_port));
            if let IpAddr::V4(host_ip) = b.host_ip
                && self.networks.firewall.is_some()
            {
                rules.extend(firewall::port_rules(
                    &PortRule {
                        bridge: params.iface.clone(),
                        proto: b.port.proto.as_str().to_string(),
                        host_ip: Some(host_ip),
                        host_port: b.host_port,
                        container_ip: primary.ipv4.0,
                        container_port: b.port.number,
                    },
                    userland,
                ));
            }
            forwards.push(Forward {
                fd: -1,
                // Without the userland proxy the kernel translates even loopback
                // traffic: the proxy only holds the port.
                proto: if userland {
                    b.port.proto.as_str().to_string()
                } else {
                    "hold".to_string()
                },
                target: SocketAddr::new(IpAddr::V4(primary.ipv4.0), b.port.number),
            });
            fds.push(b.socket);
        }
        setup.ports = ports::port_map(&exposed, &bound_list);
        if let Some(fw) = &self.networks.firewall
            && !rules.is_empty()
        {
            setup.teardown.iptables = Some(fw.tools.clone());
            fw.add_ports(&rules).map_err(|e| {
                Error::internal(format!(
                    "failed to set up container networking: driver failed programming external connectivity on endpoint {} ({}): {e}",
                    c.bare_name(),
                    setup.endpoints[0].endpoint_id
                ))
            })?;
            setup.teardown.rules = rules;
        }

        // The embedded DNS server, on user-defined networks.
        let mut dns_spec = None;
        if embedded_dns {
            let port = if self.networks.tools.is_some() { 0 } else { 53 };
            let sockets = sandbox::dns_sockets(&ns_path, port, port)
                .map_err(|e| Error::internal(format!("start the embedded DNS server: {e}")))?;
            let (udp_port, tcp_port) = (sockets.udp_port, sockets.tcp_port);
            setup.teardown.dns_ports = Some((udp_port, tcp_port));
            if let Some(tools) = &self.networks.tools {
                let ns = std::fs::File::open(&ns_path)?;
                firewall::add_dns_rules(tools, &ns, &firewall::dns_rules(udp_port, tcp_port))
                    .map_err(|e| {
                        Error::internal(format!("redirect the container's DNS queries: {e}"))
                    })?;
            }
            dns_spec = Some(DnsSpec {
                udp_fd: -1,
                tcp_fd: -1,
                names_file: self.networks.names_file.clone(),
                upstream: super::etc::upstream_servers(host_resolv, dns),
            });
            fds.push(sockets.udp);
            fds.push(sockets.tcp);
        }
        if !forwards.is_empty() || dns_spec.is_some() {
            setup.proxy = Some((
                ProxySpec {
                    container_id: c.id.clone(),
                    monitor_pid: 0,
                    forwards,
                    dns: dns_spec,
                },
                fds,
            ));
        }

        crate::store::write_replace(&setup.etc[1], hosts.render().as_bytes(), 0o644)?;
        let resolv = super::etc::resolv_conf(host_resolv, dns, embedded_dns);
        crate::store::write_replace(&setup.etc[2], resolv.as_bytes(), 0o644)?;
        self.write_teardown(state_dir, &setup.teardown)?;
        if embedded_dns {
            self.networks.write_names()?;
        }
        Ok(())
    }

    /// Takes addresses for `ep` (its `--ip`, or the next free ones) on its network,
    /// fills in what the endpoint gets, and registers it as active there. Returns the
    /// network's ID, the interface to make (`eth{index}`; the first carries the
    /// default routes), the network's bridge, and whether it is user-defined.
    pub(super) fn join_endpoint(
        &self,
        r: &Record,
        ep: &mut Endpoint,
        index: usize,
    ) -> Result<(String, sandbox::Iface, super::record::BridgeParams, bool)> {
        let c = &r.container;
        let wanted4 = ep
            .ipam_config
            .as_ref()
            .and_then(|a| a.ipv4_address.parse::<Ipv4Addr>().ok());
        let wanted6 = ep
            .ipam_config
            .as_ref()
            .and_then(|a| a.ipv6_address.parse::<Ipv6Addr>().ok());
        let links = self.endpoint_links(ep);
        let endpoint_id = crate::engine::random_id()?;
        let (want_id, want_name) = (ep.network_id.clone(), ep.network.clone());
        self.networks.with_id_or_name(&want_id, &want_name, |n| {
            let params = n.bridge.clone().ok_or_else(|| {
                Error::invalid(format!(
                    "network {} cannot be joined by containers",
                    n.record.name
                ))
            })?;
            let v4 = n.allocate_v4(wanted4)?;
            let v6 = match n.allocate_v6(wanted6) {
                Ok(v) => v,
                Err(e) => {
                    n.release(Some(v4.0), None);
                    return Err(e);
                }
            };
            let mac = match ep.mac_config.as_str() {
                "" => ipam::mac_for(v4.0),
                m => match ipam::parse_mac(m) {
                    Ok(mac) => mac,
                    Err(e) => {
                        n.release(Some(v4.0), v6.map(|a| a.0));
                        return Err(e);
                    }
                },
            };
            let user_defined = n.user_defined();
            ep.network = n.record.name.clone();
            ep.network_id = n.record.id.clone();
            ep.endpoint_id = endpoint_id.clone();
            ep.interface = format!("eth{index}");
            ep.ip_address = v4.0.to_string();
            ep.ip_prefix_len = v4.1;
            ep.gateway = params.v4.gateway.to_string();
            if let (Some((ip6, p6)), Some(sub6)) = (v6, &params.v6) {
                ep.ipv6_address = ip6.to_string();
                ep.ipv6_prefix_len = p6;
                ep.ipv6_gateway = sub6.gateway.to_string();
            }
            ep.mac_address = ipam::format_mac(mac);
            ep.dns_names = Self::dns_names(r, ep, user_defined);
            n.endpoints.insert(
                c.id.clone(),
                ActiveEndpoint {
                    name: c.bare_name().to_string(),
                    endpoint_id: endpoint_id.clone(),
                    mac: ep.mac_address.clone(),
                    ipv4: Some(v4),
                    ipv6: v6,
                    dns_names: ep.dns_names.clone(),
                    links,
                },
            );
            let gateway4 = match params.v4.gateway {
                IpAddr::V4(g) => g,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            };
            let gateway6 = params.v6.as_ref().and_then(|s| match s.gateway {
                IpAddr::V6(g) => Some(g),
                IpAddr::V4(_) => None,
            });
            let iface = sandbox::Iface {
                bridge: params.iface.clone(),
                name: format!("eth{index}"),
                mac,
                ipv4: v4,
                ipv6: v6,
                gateway4,
                gateway6,
                mtu: params.mtu,
                default_route: index == 0,
            };
            Ok((n.record.id.clone(), iface, params, user_defined))
        })
    }

    /// Legacy `--link` on the default bridge: hosts lines and environment.
    fn legacy_links(&self, r: &Record, hosts: &mut Hosts, env: &mut Vec<String>) -> Result<()> {
        let me = r.container.bare_name().to_string();
        for (name, alias) in &r.settings.links {
            let t = self.containers.get(name)?;
            let tr = t.snapshot();
            let tc = &tr.container;
            if !tc.state.running {
                return Err(Error::invalid(format!(
                    "Cannot link to a non running container: {} AS /{me}/{alias}",
                    tc.name
                )));
            }
            let Some(ep) = tc
                .network_settings
                .networks
                .iter()
                .find(|e| e.network == "bridge")
            else {
                return Err(Error::invalid(format!(
                    "Cannot link to {}, as it does not belong to the default network",
                    tc.name
                )));
            };
            let Ok(ip) = ep.ip_address.parse::<IpAddr>() else {
                continue;
            };
            let mut names = vec![alias.clone(), tc.config.hostname.clone()];
            if alias != tc.bare_name() {
                names.push(tc.bare_name().to_string());
            }
            names.dedup();
            hosts.links.push((ip, names.join(" ")));
            let prefix = alias.to_ascii_uppercase().replace('-', "_");
            let mut ports: Vec<Port> = tc
                .config
                .exposed_ports
                .as_ref()
                .map(|m| m.keys().filter_map(|k| ports::parse_port(k).ok()).collect())
                .unwrap_or_default();
            ports.sort_by_key(|p| (p.proto, p.number));
            if let Some(p) = ports.first() {
                env.push(format!(
                    "{prefix}_PORT={}://{ip}:{}",
                    p.proto.as_str(),
                    p.number
                ));
            }
            for p in &ports {
                let base = format!(
                    "{prefix}_PORT_{}_{}",
                    p.number,
                    p.proto.as_str().to_ascii_uppercase()
                );
                env.push(format!("{base}={}://{ip}:{}", p.proto.as_str(), p.number));
                env.push(format!("{base}_ADDR={ip}"));
                env.push(format!("{base}_PORT={}", p.number));
                env.push(format!("{base}_PROTO={}", p.proto.as_str()));
            }
            env.push(format!("{prefix}_NAME=/{me}/{alias}"));
            for e in &tc.config.env {
                if let Some((k, v)) = e.split_once('=')
                    && k != "HOME"
                    && k != "PATH"
                {
                    env.push(format!("{prefix}_ENV_{k}={v}"));
                }
            }
        }
        Ok(())
    }

    /// Writes `network.json` for the monitor. It is replaced atomically (a crash
    /// of the daemon leaves the old or the new file, never a torn one) but not
    /// flushed: it is runtime state in exec-root, which a reboot clears along with
    /// everything it describes.
    pub(super) fn write_teardown(&self, state_dir: &Path, t: &NetworkTeardown) -> Result<()> {
        crate::store::create_private_dir(state_dir)?;
        let bytes = serde_json::to_vec(t)
            .map_err(|e| Error::internal(format!("encode network.json: {e}")))?;
        crate::store::write_replace(&state_dir.join(NETWORK_FILE), &bytes, 0o600)?;
        Ok(())
    }

    /// The command runs: start its network proxy and record its PID for the monitor.
    /// Call within the runtime (it spawns the proxy's reaper).
    pub fn network_started(&self, setup: &mut Setup, monitor_pid: i32, state_dir: &Path) {
        let Some((mut spec, fds)) = setup.proxy.take() else {
            return;
        };
        spec.monitor_pid = monitor_pid;
        match self.runtime.start_proxy(spec, fds) {
            Ok(pid) if pid > 0 => {
                setup.teardown.proxies.push(pid);
                if let Err(e) = self.write_teardown(state_dir, &setup.teardown) {
                    tracing::warn!("cannot record the container's network proxy: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!("cannot start the container's network proxy: {e}"),
        }
    }

    /// Undoes a setup whose container did not start.
    pub fn network_abort(&self, container_id: &str, setup: Setup) {
        crate::init::network::run(&setup.teardown);
        for ep in &setup.endpoints {
            if !ep.host_interface.is_empty() {
                let _ = sandbox::remove_interface(&ep.host_interface);
            }
        }
        for net_id in &setup.registered {
            self.networks.remove_endpoint(net_id, container_id);
        }
        self.networks.release_ports(&setup.held);
        if !setup.registered.is_empty() {
            let _ = self.networks.write_names();
        }
    }

    /// The container exited: free its addresses and ports, and (when its monitor
    /// could not) remove its namespace, rules and proxies. Blocking.
    pub fn network_stopped(&self, r: &Record, state_dir: &Path, released: bool) {
        if !released {
            if let Ok(bytes) = std::fs::read(state_dir.join(NETWORK_FILE))
                && let Ok(t) = serde_json::from_slice::<NetworkTeardown>(&bytes)
            {
                crate::init::network::run(&t);
            }
            let key = &r.container.network_settings.sandbox_key;
            if !key.is_empty() {
                let _ = crate::net::netns::remove(Path::new(key));
            }
        }
        let ns = &r.container.network_settings;
        let mut any = false;
        for ep in &ns.networks {
            if !ep.endpoint_id.is_empty() {
                self.networks
                    .remove_endpoint(&ep.network_id, &r.container.id);
                any = true;
            }
        }
        self.networks.release_ports(&held_ports(&ns.ports));
        if any {
            let _ = self.networks.write_names();
        }
    }
}

/// The host ports a `NetworkSettings.Ports` map holds.
pub fn held_ports(
    map: &BTreeMap<String, Option<Vec<ports::PortBinding>>>,
) -> Vec<(Proto, IpAddr, u16)> {
    let mut out = Vec::new();
    for (key, bindings) in map {
        let Ok(port) = ports::parse_port(key) else {
            continue;
        };
        for b in bindings.iter().flatten() {
            let ip = if b.host_ip == "::" {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                match b.host_ip.parse() {
                    Ok(ip) => ip,
                    Err(_) => continue,
                }
            };
            if let Ok(p) = b.host_port.parse() {
                out.push((port.proto, ip, p));
            }
        }
    }
    out
}
