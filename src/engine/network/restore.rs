//! A container's networking when the daemon comes back: the addresses, ports and
//! names of running containers are marked in use again, a network proxy that is gone
//! is started again, and the live containers' rules are told from stale ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::attach::held_ports;
use super::ports;
use super::{ActiveEndpoint, sandbox};
use crate::engine::containers::Record;
use crate::engine::{Engine, Error, Result};
use crate::init::spec::{NETWORK_FILE, NetworkTeardown};
use crate::netproxy::{DnsSpec, Forward, ProxySpec};

impl Engine {
    /// At daemon start: the addresses, ports and names of a container recorded as
    /// running are in use.
    pub fn network_restore(&self, r: &Record) {
        let ns = &r.container.network_settings;
        for ep in &ns.networks {
            if ep.endpoint_id.is_empty() {
                continue;
            }
            let v4 = ep.ip_address.parse::<Ipv4Addr>().ok();
            let v6 = ep.ipv6_address.parse::<Ipv6Addr>().ok();
            let links = self.endpoint_links(ep);
            let restored = self
                .networks
                .with_id_or_name(&ep.network_id, &ep.network, |n| {
                    if let Some(ip) = v4 {
                        n.allocate_v4(Some(ip))?;
                    }
                    if let Some(ip) = v6 {
                        let _ = n.allocate_v6(Some(ip));
                    }
                    n.endpoints.insert(
                        r.container.id.clone(),
                        ActiveEndpoint {
                            name: r.container.bare_name().to_string(),
                            endpoint_id: ep.endpoint_id.clone(),
                            mac: ep.mac_address.clone(),
                            ipv4: v4.map(|ip| (ip, ep.ip_prefix_len)),
                            ipv6: v6.map(|ip| (ip, ep.ipv6_prefix_len)),
                            dns_names: ep.dns_names.clone(),
                            links,
                        },
                    );
                    Ok(())
                });
            if let Err(e) = restored {
                tracing::warn!(container_id = %r.container.id, network = %ep.network, "cannot restore the container's endpoint: {e}");
            }
        }
        self.networks.mark_ports(&held_ports(&ns.ports));
    }

    /// A running container was renamed: its endpoints answer to the new name.
    pub fn network_renamed(&self, r: &Record) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for ep in &r.container.network_settings.networks {
            if ep.dns_names.is_empty() {
                continue;
            }
            let names = Self::dns_names(r, ep, true);
            let _ = self.networks.with(&ep.network_id, |n| {
                if let Some(a) = n.endpoints.get_mut(&r.container.id) {
                    a.name = r.container.bare_name().to_string();
                    a.dns_names = names.clone();
                }
                Ok(())
            });
            out.push((ep.network_id.clone(), names));
        }
        if !out.is_empty() {
            let _ = self.networks.write_names();
        }
        out
    }

    /// A running container found at start whose network proxy is gone (it was
    /// killed, or a crash came between the container's start and the proxy's) gets
    /// a new one, on its same host ports and DNS ports. Blocking; call within the
    /// runtime (it spawns the proxy's reaper).
    pub fn network_reattach(&self, r: &Record, monitor_pid: i32) {
        let state_dir = self.runtime.state_dir(&r.container.id);
        let path = state_dir.join(NETWORK_FILE);
        let Some(mut t) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<NetworkTeardown>(&b).ok())
        else {
            return;
        };
        let alive = t.proxies.iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.split(|&b| b == 0)
                    .any(|a| a == crate::netproxy::SUBCOMMAND.as_bytes())
            })
        });
        let ns = &r.container.network_settings;
        let published = ns.ports.values().flatten().any(|b| !b.is_empty());
        if alive || (!published && t.dns_ports.is_none()) {
            return;
        }
        match self.respawn_proxy(r, &mut t, monitor_pid) {
            Ok(pid) => {
                tracing::info!(container_id = %r.container.id, "started the container's network proxy again (pid {pid})");
                t.proxies = vec![pid];
                if let Err(e) = self.write_teardown(&state_dir, &t) {
                    tracing::warn!(container_id = %r.container.id, "cannot record the container's network proxy: {e}");
                }
            }
            Err(e) => {
                tracing::error!(container_id = %r.container.id, "cannot start the container's network proxy again: {e}")
            }
        }
    }

    fn respawn_proxy(&self, r: &Record, t: &mut NetworkTeardown, monitor_pid: i32) -> Result<i32> {
        let c = &r.container;
        let ns = &c.network_settings;
        let target = ns
            .networks
            .first()
            .and_then(|e| e.ip_address.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| Error::internal("the container has no address"))?;
        let userland = self.networks.config.userland_proxy;
        let mut forwards = Vec::new();
        let mut fds = Vec::new();
        for (proto, ip, port) in held_ports(&ns.ports) {
            let container_port = ns
                .ports
                .iter()
                .find(|(_, bs)| bs.iter().flatten().any(|b| b.host_port == port.to_string()))
                .and_then(|(k, _)| ports::parse_port(k).ok())
                .map(|p| p.number)
                .unwrap_or(port);
            let socket = ports::bind(proto, ip, port, userland).map_err(|e| {
                Error::internal(format!("bind {}:{port}: {e}", ports::display_ip(ip)))
            })?;
            forwards.push(Forward {
                fd: -1,
                proto: if userland {
                    proto.as_str().to_string()
                } else {
                    "hold".into()
                },
                target: SocketAddr::new(IpAddr::V4(target), container_port),
            });
            fds.push(socket);
        }
        let mut dns = None;
        if let Some((udp_port, tcp_port)) = t.dns_ports {
            let ns_path = Path::new(&ns.sandbox_key);
            let sockets = sandbox::dns_sockets(ns_path, udp_port, tcp_port)?;
            fds.push(sockets.udp);
            fds.push(sockets.tcp);
            let host = super::etc::host_resolv();
            dns = Some(DnsSpec {
                udp_fd: -1,
                tcp_fd: -1,
                names_file: self.networks.names_file.clone(),
                upstream: super::etc::upstream_servers(&host, &self.dns_settings(&r.settings)),
            });
        }
        let spec = ProxySpec {
            container_id: c.id.clone(),
            monitor_pid,
            forwards,
            dns,
        };
        Ok(self.runtime.start_proxy(spec, fds)?)
    }

    /// The firewall rules of every running container's published ports (to tell
    /// stale rules from live ones).
    pub fn live_port_rules(&self) -> Vec<crate::net::iptables::Rule> {
        let mut out = Vec::new();
        for h in self.containers.all() {
            let r = h.record();
            if !r.container.state.running {
                continue;
            }
            let Ok(bytes) = std::fs::read(self.runtime.state_dir(&h.id).join(NETWORK_FILE)) else {
                continue;
            };
            if let Ok(t) = serde_json::from_slice::<NetworkTeardown>(&bytes) {
                out.extend(t.rules);
            }
        }
        out
    }
}
