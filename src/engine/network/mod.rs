//! Container networking: the networks (the default bridge `bridge`, `host`, `none`
//! and user-defined bridge networks), their addresses, their bridges and firewall
//! rules on the host, and which container endpoints are on which network.
//!
//! | file | job |
//! | --- | --- |
//! | `mod.rs` | the registry: load, look up, addresses and active endpoints, the names file |
//! | `record.rs` | a network as stored and inspected; validating a create request |
//! | `ipam.rs` | subnets for new networks, addresses inside a subnet, MACs |
//! | `bridge.rs` | bridge devices on the host |
//! | `firewall.rs` | Docker's iptables chains and rules |
//! | `ports.rs` | published ports: parsing, host port choice, holding the host sockets |
//! | `sandbox.rs` | a container's namespace, its interfaces and DNS sockets |
//! | `manage.rs` | `docker network create/ls/inspect/rm/prune/connect/disconnect` |
//! | `endpoints.rs` | a new container's endpoints, checked at create |
//! | `attach.rs` | a container's networking at start and at exit |
//! | `restore.rs` | running containers' networking when the daemon comes back |
//! | `etc.rs` | the `/etc/hosts` and `/etc/resolv.conf` containers get |
//!
//! What must outlive the daemon does: bridges and rules stay in the kernel, each
//! running container's namespace is a file under exec-root, its published ports and
//! DNS answers are served by its network proxy (`crate::netproxy`), and the names it
//! resolves are in `<exec-root>/network/names.json`. At start the daemon rebuilds its
//! view (addresses and ports in use) from the running containers' records.

pub mod attach;
pub mod bridge;
pub mod endpoints;
pub mod etc;
pub mod firewall;
pub mod ipam;
pub mod manage;
pub mod ports;
pub mod record;
pub mod restore;
pub mod sandbox;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::config::NetworkConfig;
use crate::engine::{Error, Result};
use crate::netproxy::names::{ContainerNames, NameEntry, Names, NetworkNames};
use firewall::{BridgePolicy, Firewall};
use ipam::Allocator;
use ports::PortAllocator;
use record::{BridgeParams, Ipam, IpamConfig, Network};

/// A container's place on one network while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveEndpoint {
    /// The container's name, without the slash.
    pub name: String,
    pub endpoint_id: String,
    pub mac: String,
    pub ipv4: Option<(Ipv4Addr, u8)>,
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// Names other containers resolve it by (user-defined networks only).
    pub dns_names: Vec<String>,
    /// Legacy links on this network: alias → container ID.
    pub links: BTreeMap<String, String>,
}

/// One network and its state.
#[derive(Debug)]
pub struct Net {
    pub record: Network,
    /// The subnet was given by the user (`--ip` needs that).
    pub user_subnet: bool,
    /// For bridge networks.
    pub bridge: Option<BridgeParams>,
    alloc4: Option<Allocator>,
    alloc6: Option<Allocator>,
    /// By container ID.
    pub endpoints: BTreeMap<String, ActiveEndpoint>,
}

impl Net {
    fn new(record: Network, user_subnet: bool, bridge: Option<BridgeParams>) -> Net {
        let alloc = |s: &record::Subnet| {
            let mut reserved = s.aux.clone();
            reserved.push(s.gateway);
            Allocator::new(s.net, s.range, &reserved)
        };
        let alloc4 = bridge.as_ref().map(|b| alloc(&b.v4));
        let alloc6 = bridge.as_ref().and_then(|b| b.v6.as_ref().map(alloc));
        Net {
            record,
            user_subnet,
            bridge,
            alloc4,
            alloc6,
            endpoints: BTreeMap::new(),
        }
    }

    /// A user-defined network (not `bridge`, `host` or `none`).
    pub fn user_defined(&self) -> bool {
        !self.record.is_predefined()
    }

    /// Takes an address: `wanted` (`--ip`) or the next free one.
    pub fn allocate_v4(&mut self, wanted: Option<Ipv4Addr>) -> Result<(Ipv4Addr, u8)> {
        let a = self.alloc4.as_mut().ok_or_else(|| {
            Error::invalid(format!("network {} has no IPv4 subnet", self.record.name))
        })?;
        let ip = match wanted {
            Some(ip) => {
                a.reserve(IpAddr::V4(ip))?;
                IpAddr::V4(ip)
            }
            None => a.allocate()?,
        };
        let prefix = a.subnet().prefix_len();
        match ip {
            IpAddr::V4(v) => Ok((v, prefix)),
            IpAddr::V6(_) => Err(Error::internal("IPv4 allocator gave an IPv6 address")),
        }
    }

    pub fn allocate_v6(&mut self, wanted: Option<Ipv6Addr>) -> Result<Option<(Ipv6Addr, u8)>> {
        let Some(a) = self.alloc6.as_mut() else {
            return Ok(None);
        };
        let ip = match wanted {
            Some(ip) => {
                a.reserve(IpAddr::V6(ip))?;
                IpAddr::V6(ip)
            }
            None => a.allocate()?,
        };
        let prefix = a.subnet().prefix_len();
        match ip {
            IpAddr::V6(v) => Ok(Some((v, prefix))),
            IpAddr::V4(_) => Err(Error::internal("IPv6 allocator gave an IPv4 address")),
        }
    }

    pub fn release(&mut self, v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) {
        if let (Some(a), Some(ip)) = (self.alloc4.as_mut(), v4) {
            a.release(IpAddr::V4(ip));
        }
        if let (Some(a), Some(ip)) = (self.alloc6.as_mut(), v6) {
            a.release(IpAddr::V6(ip));
        }
    }

    fn policy(&self) -> Option<BridgePolicy> {
        let b = self.bridge.as_ref()?;
        Some(BridgePolicy {
            bridge: b.iface.clone(),
            subnet: b.v4_subnet(),
            internal: b.internal,
            icc: b.icc,
            masquerade: b.masquerade,
        })
    }
}

/// Every network, the host ports in use, and the firewall.
pub struct Networks {
    /// `<data-root>/network/networks`: one JSON file per user-defined network.
    dir: PathBuf,
    /// `<exec-root>/network/names.json`.
    pub names_file: PathBuf,
    /// `<exec-root>/netns`: containers' namespace files.
    pub netns_dir: PathBuf,
    /// The networking settings the daemon started with (they need a restart).
    pub config: NetworkConfig,
    /// `None` with `iptables: false`.
    pub firewall: Option<Firewall>,
    /// The iptables tools, when installed (the DNS redirection inside containers
    /// uses them even with `iptables: false`).
    pub tools: Option<crate::net::iptables::Tools>,
    /// Whether the host can listen on IPv6.
    pub ipv6_host: bool,
    inner: Mutex<Registry>,
    /// The outcome of [`Networks::setup_host`], once it ran: the daemon answers
    /// requests while its bridges and rules are being put in place, and what needs
    /// them waits here.
    host_ready: Mutex<Option<std::result::Result<(), String>>>,
    host_ready_cv: Condvar,
}

#[derive(Debug, Default)]
struct Registry {
    /// By network ID.
    nets: BTreeMap<String, Net>,
    pub ports: PortAllocator,
}

/// The stable ID of a built-in network, derived from the engine ID.
pub fn builtin_id(engine_id: &str, name: &str) -> String {
    let mut h = Sha256::new();
    h.update(engine_id.as_bytes());
    h.update(b"/network/");
    h.update(name.as_bytes());
    crate::engine::hex(&h.finalize())
}

fn predefined(name: &str, id: String, driver: &str) -> Network {
    Network {
        name: name.to_string(),
        id,
        created: crate::timefmt::ZERO_TIME.to_string(),
        scope: "local".into(),
        driver: driver.to_string(),
        enable_ipv4: driver == "bridge",
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            options: None,
            config: Vec::new(),
        },
        internal: false,
        attachable: false,
        ingress: false,
        config_from: record::ConfigFrom::default(),
        config_only: false,
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
    }
}

impl Networks {
    /// Loads the networks, makes the default bridge's record from the configuration,
    /// and finds the iptables tools. Nothing on the host changes yet: see
    /// [`Networks::setup_host`].
    pub fn open(
        config: &NetworkConfig,
        data_root: &Path,
        exec_root: &Path,
        engine_id: &str,
    ) -> Result<Networks> {
        let dir = data_root.join("network").join("networks");
        crate::store::create_private_dir(&dir)?;
        crate::store::sweep_temp_files(&dir)?;
        let tools = crate::net::iptables::Tools::find(false);
        let firewall = if config.iptables {
            let tools = tools.clone().ok_or_else(|| {
                Error::internal(
                    "iptables is enabled but the iptables commands (iptables, iptables-save, iptables-restore) were not found: install the iptables package, or set \"iptables\": false in daemon.json",
                )
            })?;
            Some(Firewall {
                tools,
                userland_proxy: config.userland_proxy,
            })
        } else {
            None
        };
        let mut reg = Registry::default();
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| crate::store::with_path(e, "read directory", &dir))?
        {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let loaded = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<record::Stored>(&b).map_err(|e| e.to_string())
                });
            let (n, user_subnet) = match loaded {
                Ok(s) => (s.network, s.user_subnet),
                Err(e) => {
                    tracing::error!(
                        "cannot load network from {}: {e}; skipping it",
                        path.display()
                    );
                    continue;
                }
            };
            let params = match record::bridge_params(&n, 0, config.default_binding_ip) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(network = %n.name, "cannot use network: {e}; skipping it");
                    continue;
                }
            };
            reg.nets
                .insert(n.id.clone(), Net::new(n, user_subnet, Some(params)));
        }
        for (name, driver) in [("host", "host"), ("none", "null")] {
            let id = builtin_id(engine_id, name);
            reg.nets.insert(
                id.clone(),
                Net::new(predefined(name, id, driver), false, None),
            );
        }
        if let Some(iface) = &config.bridge {
            let taken: Vec<IpNet> = reg
                .nets
                .values()
                .filter_map(|n| n.bridge.as_ref())
                .map(|b| b.v4.net)
                .collect();
            let net = default_bridge(config, iface, builtin_id(engine_id, "bridge"), &taken)?;
            let params = record::bridge_params(&net, config.mtu, config.default_binding_ip)?;
            reg.nets
                .insert(net.id.clone(), Net::new(net, false, Some(params)));
        }
        Ok(Networks {
            dir,
            names_file: exec_root.join("network").join("names.json"),
            netns_dir: exec_root.join("netns"),
            config: config.clone(),
            firewall,
            tools,
            ipv6_host: ports::ipv6_available(),
            inner: Mutex::new(reg),
            host_ready: Mutex::new(None),
            host_ready_cv: Condvar::new(),
        })
    }

    /// Records the outcome of the host's setup and wakes what waits for it.
    pub fn mark_host_ready(&self, outcome: std::result::Result<(), String>) {
        *self.host_ready.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.host_ready_cv.notify_all();
    }

    /// Waits (blocking) until the host's bridges and rules are in place.
    pub fn wait_host_ready(&self) -> Result<()> {
        let limit = Duration::from_secs(120);
        let guard = self.host_ready.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .host_ready_cv
            .wait_timeout_while(guard, limit, |r| r.is_none())
            .unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Error::internal(format!(
                "container networking is not available: setting up the host failed: {e}"
            ))),
            None => Err(Error::internal(
                "container networking is not available yet: the host's bridges and firewall rules are still being set up",
            )),
        }
    }

    fn reg(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the host in line: forwarding on, every bridge present with its
    /// addresses, Docker's chains and every network's rules in place.
    pub fn setup_host(&self) -> Result<()> {
        let (params, policies): (Vec<BridgeParams>, Vec<BridgePolicy>) = {
            let reg = self.reg();
            let params: Vec<BridgeParams> =
                reg.nets.values().filter_map(|n| n.bridge.clone()).collect();
            let policies = reg.nets.values().filter_map(Net::policy).collect();
            (params, policies)
        };
        if self.config.ip_forward {
            crate::net::set_sysctl("net/ipv4/ip_forward", "1")
                .map_err(|e| Error::internal(format!("enable IP forwarding: {e}")))?;
            if params.iter().any(|p| p.v6.is_some()) {
                let _ = crate::net::set_sysctl("net/ipv6/conf/all/forwarding", "1");
            }
        }
        for p in &params {
            self.setup_bridge(p)?;
        }
        if let Some(fw) = &self.firewall {
            fw.ensure(&policies)
                .map_err(|e| Error::internal(format!("set up the firewall: {e}")))?;
        }
        Ok(())
    }

    /// One bridge and the sysctls it needs.
    fn setup_bridge(&self, p: &BridgeParams) -> Result<()> {
        bridge::ensure(p)
            .map_err(|e| Error::internal(format!("set up bridge {}: {e}", p.iface)))?;
        if !self.config.userland_proxy {
            crate::net::set_sysctl(&format!("net/ipv4/conf/{}/route_localnet", p.iface), "1")
                .map_err(|e| Error::internal(e.to_string()))?;
        }
        if !p.icc && self.firewall.is_some() {
            crate::net::set_sysctl("net/bridge/bridge-nf-call-iptables", "1").map_err(|e| {
                Error::internal(format!(
                    "cannot restrict inter-container communication: please ensure that br_netfilter kernel module is loaded: {e}"
                ))
            })?;
        }
        if p.v6.is_some() && self.config.ip_forward {
            let _ = crate::net::set_sysctl("net/ipv6/conf/all/forwarding", "1");
        }
        Ok(())
    }

    /// Resolves a name, full ID or unique ID prefix to a network ID (Docker's order:
    /// full ID, then name, then prefix).
    pub fn resolve(&self, name_or_id: &str) -> Result<String> {
        let reg = self.reg();
        resolve_in(&reg, name_or_id)
    }

    /// Runs `f` on a network, found by name or ID.
    pub fn with<T>(&self, name_or_id: &str, f: impl FnOnce(&mut Net) -> Result<T>) -> Result<T> {
        let mut reg = self.reg();
        let id = resolve_in(&reg, name_or_id)?;
        let net = reg
            .nets
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(format!("network {name_or_id} not found")))?;
        f(net)
    }

    /// Runs `f` on a network found by ID, or by name when no network has that ID
    /// (a record written before the network was re-created).
    pub fn with_id_or_name<T>(
        &self,
        id: &str,
        name: &str,
        f: impl FnOnce(&mut Net) -> Result<T>,
    ) -> Result<T> {
        let mut reg = self.reg();
        let key = if reg.nets.contains_key(id) {
            id.to_string()
        } else {
            reg.nets
                .values()
                .find(|n| n.record.name == name)
                .map(|n| n.record.id.clone())
                .ok_or_else(|| Error::not_found(format!("network {name} not found")))?
        };
        let net = reg
            .nets
            .get_mut(&key)
            .ok_or_else(|| Error::not_found(format!("network {name} not found")))?;
        f(net)
    }

    /// A copy of every network's record with its active endpoints.
    pub fn snapshot(&self) -> Vec<(Network, BTreeMap<String, ActiveEndpoint>)> {
        self.reg()
            .nets
            .values()
            .map(|n| (n.record.clone(), n.endpoints.clone()))
            .collect()
    }

    /// The subnets in use by networks, and the host's routes.
    fn taken_subnets(reg: &Registry) -> Vec<IpNet> {
        let ours: Vec<String> = reg
            .nets
            .values()
            .filter_map(|n| n.bridge.as_ref().map(|b| b.iface.clone()))
            .collect();
        let mut taken: Vec<IpNet> = reg
            .nets
            .values()
            .filter_map(|n| n.bridge.as_ref())
            .flat_map(|b| std::iter::once(b.v4.net).chain(b.v6.as_ref().map(|s| s.net)))
            .collect();
        match bridge::host_routes(&ours) {
            Ok(routes) => taken.extend(routes),
            Err(e) => tracing::warn!("cannot read the host's routes: {e}"),
        }
        taken
    }

    /// Creates a user-defined network: validated, stored, its bridge made and its
    /// rules installed. Returns the new network's ID.
    pub fn create(&self, req: record::CreateRequest) -> Result<String> {
        self.wait_host_ready()?;
        let id = crate::engine::random_id()?;
        let created = crate::timefmt::rfc3339_nano(std::time::SystemTime::now());
        let mut reg = self.reg();
        let name = req.name.trim();
        if record::PREDEFINED.contains(&name) {
            return Err(Error::Forbidden(format!(
                "operation is not permitted on predefined {name} network "
            )));
        }
        if reg.nets.values().any(|n| n.record.name == name) {
            return Err(Error::conflict(format!(
                "network with name {} already exists",
                req.name.trim()
            )));
        }
        let taken = Self::taken_subnets(&reg);
        let pools = self.config.pools();
        let (net, user_subnet) = record::from_request(req, id.clone(), created, &pools, &taken)?;
        let params = record::bridge_params(&net, 0, self.config.default_binding_ip)?;
        if reg
            .nets
            .values()
            .filter_map(|n| n.bridge.as_ref())
            .any(|b| b.iface == params.iface)
        {
            return Err(Error::conflict(format!(
                "bridge name {} is already used by another network",
                params.iface
            )));
        }
        let path = self.dir.join(format!("{id}.json"));
        crate::store::write_json(
            &path,
            &record::Stored {
                network: net.clone(),
                user_subnet,
            },
        )?;
        let n = Net::new(net, user_subnet, Some(params.clone()));
        let policy = n.policy();
        let made = (|| -> Result<()> {
            if self.config.ip_forward && params.v6.is_some() {
                let _ = crate::net::set_sysctl("net/ipv6/conf/all/forwarding", "1");
            }
            self.setup_bridge(&params)?;
            if let (Some(fw), Some(p)) = (&self.firewall, &policy) {
                let all: Vec<BridgePolicy> = reg
                    .nets
                    .values()
                    .filter_map(Net::policy)
                    .chain(std::iter::once(p.clone()))
                    .collect();
                fw.ensure(&all).map_err(|e| {
                    Error::internal(format!("set up the firewall for the network: {e}"))
                })?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            if let (Some(fw), Some(p)) = (&self.firewall, &policy) {
                let _ = fw.remove_bridge(p);
            }
            let _ = bridge::remove(&params.iface);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        reg.nets.insert(id.clone(), n);
        Ok(id)
    }

    /// Removes a user-defined network with no running containers.
    pub fn remove(&self, name_or_id: &str) -> Result<Network> {
        self.wait_host_ready()?;
        let mut reg = self.reg();
        let id = resolve_in(&reg, name_or_id)?;
        let Some(net) = reg.nets.get(&id) else {
            return Err(Error::not_found(format!("network {name_or_id} not found")));
        };
        if !net.user_defined() {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                net.record.name
            )));
        }
        if !net.endpoints.is_empty() {
            let eps: Vec<String> = net
                .endpoints
                .iter()
                .map(|(cid, e)| format!("name:{:?} id:{:?}", e.name, &cid[..12.min(cid.len())]))
                .collect();
            // 409, as the issue asks (Docker itself answers 403), with Docker's words.
            return Err(Error::conflict(format!(
                "error while removing network: network {} has active endpoints ({})",
                net.record.name,
                eps.join(", ")
            )));
        }
        let policy = net.policy();
        let iface = net.bridge.as_ref().map(|b| b.iface.clone());
        if let (Some(fw), Some(p)) = (&self.firewall, &policy) {
            fw.remove_bridge(p).map_err(|e| {
                Error::internal(format!("remove the network's firewall rules: {e}"))
            })?;
        }
        if let Some(iface) = iface {
            bridge::remove(&iface)
                .map_err(|e| Error::internal(format!("remove bridge {iface}: {e}")))?;
        }
        let path = self.dir.join(format!("{id}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::store::with_path(e, "remove", &path).into()),
        }
        let _ = crate::store::sync_dir(&self.dir);
        Ok(reg
            .nets
            .remove(&id)
            .map(|n| n.record)
            .unwrap_or_else(|| predefined("", id, "")))
    }

    /// Records a running container's endpoint (at start, connect, or when the daemon
    /// comes back). Addresses must already be taken with `allocate_*`.
    pub fn add_endpoint(&self, net_id: &str, container: &str, ep: ActiveEndpoint) {
        if let Some(n) = self.reg().nets.get_mut(net_id) {
            n.endpoints.insert(container.to_string(), ep);
        }
    }

    /// Forgets a container's endpoint and frees its addresses.
    pub fn remove_endpoint(&self, net_id: &str, container: &str) {
        let mut reg = self.reg();
        if let Some(n) = reg.nets.get_mut(net_id)
            && let Some(ep) = n.endpoints.remove(container)
        {
            n.release(ep.ipv4.map(|a| a.0), ep.ipv6.map(|a| a.0));
        }
    }

    /// Binds host ports for a container.
    pub fn bind_ports(
        &self,
        groups: &[Vec<ports::Request>],
        listen: bool,
    ) -> std::result::Result<Vec<ports::Bound>, String> {
        let mut reg = self.reg();
        let mut all = Vec::new();
        for g in groups {
            match reg.ports.bind_group(g, listen) {
                Ok(b) => all.extend(b),
                Err(e) => {
                    for b in &all {
                        reg.ports.release(b.port.proto, b.host_ip, b.host_port);
                    }
                    return Err(e);
                }
            }
        }
        Ok(all)
    }

    /// Marks host ports in use (a running container found at start).
    pub fn mark_ports(&self, list: &[(ports::Proto, IpAddr, u16)]) {
        let mut reg = self.reg();
        for (proto, ip, port) in list {
            reg.ports.mark(*proto, *ip, *port);
        }
    }

    pub fn release_ports(&self, list: &[(ports::Proto, IpAddr, u16)]) {
        let mut reg = self.reg();
        for (proto, ip, port) in list {
            reg.ports.release(*proto, *ip, *port);
        }
    }

    /// Every bridge network's firewall policy (for a sweep of stale rules).
    pub fn policies(&self) -> Vec<BridgePolicy> {
        self.reg().nets.values().filter_map(Net::policy).collect()
    }

    /// Rewrites the names file from the active endpoints of user-defined networks.
    /// Each container's proxy re-reads it when it changes.
    pub fn write_names(&self) -> Result<()> {
        let names = {
            let reg = self.reg();
            let mut names = Names::default();
            for n in reg
                .nets
                .values()
                .filter(|n| n.user_defined() && n.record.is_bridge())
            {
                let mut entries = Vec::new();
                for (cid, ep) in &n.endpoints {
                    entries.push(NameEntry {
                        container: cid.clone(),
                        names: ep
                            .dns_names
                            .iter()
                            .map(|s| s.to_ascii_lowercase())
                            .collect(),
                        ipv4: ep.ipv4.map(|a| a.0),
                        ipv6: ep.ipv6.map(|a| a.0),
                    });
                    let c = names
                        .containers
                        .entry(cid.clone())
                        .or_insert_with(ContainerNames::default);
                    c.networks.push(n.record.id.clone());
                    for (alias, target) in &ep.links {
                        c.links.insert(alias.to_ascii_lowercase(), target.clone());
                    }
                }
                names.networks.insert(
                    n.record.id.clone(),
                    NetworkNames {
                        name: n.record.name.clone(),
                        internal: n.record.internal,
                        endpoints: entries,
                    },
                );
            }
            names
        };
        if let Some(dir) = self.names_file.parent() {
            crate::store::create_private_dir(dir)?;
        }
        let bytes = serde_json::to_vec(&names)
            .map_err(|e| Error::internal(format!("encode the names file: {e}")))?;
        // Runtime state, rebuilt at every start: replaced atomically, not flushed.
        crate::store::write_replace(&self.names_file, &bytes, 0o644)?;
        Ok(())
    }

    /// The gateway of the default bridge (what `host-gateway` means by default).
    pub fn default_gateway(&self) -> Option<IpAddr> {
        self.reg()
            .nets
            .values()
            .find(|n| n.record.name == "bridge")
            .and_then(|n| n.bridge.as_ref())
            .map(|b| b.v4.gateway)
    }
}

fn resolve_in(reg: &Registry, name_or_id: &str) -> Result<String> {
    if name_or_id.is_empty() {
        return Err(Error::not_found("network  not found"));
    }
    if reg.nets.contains_key(name_or_id) {
        return Ok(name_or_id.to_string());
    }
    let by_name: Vec<&String> = reg
        .nets
        .iter()
        .filter(|(_, n)| n.record.name == name_or_id)
        .map(|(id, _)| id)
        .collect();
    match by_name.len() {
        1 => return Ok(by_name[0].clone()),
        n if n > 1 => {
            return Err(Error::invalid(format!(
                "network {name_or_id} is ambiguous ({n} matches found based on name)"
            )));
        }
        _ => {}
    }
    let by_prefix: Vec<&String> = reg
        .nets
        .keys()
        .filter(|id| id.starts_with(name_or_id))
        .collect();
    match by_prefix.len() {
        1 => Ok(by_prefix[0].clone()),
        0 => Err(Error::not_found(format!("network {name_or_id} not found"))),
        n => Err(Error::invalid(format!(
            "network {name_or_id} is ambiguous ({n} matches found based on ID prefix)"
        ))),
    }
}

/// The default bridge's record: `bip` if given, else the address the interface has
/// already, else the first default pool clear of the host's routes.
fn default_bridge(
    config: &NetworkConfig,
    iface: &str,
    id: String,
    taken: &[IpNet],
) -> Result<Network> {
    let (subnet, gateway) = match config.bip {
        Some(bip) => (bip.trunc(), bip.addr()),
        None => {
            let existing = bridge::existing_v4(iface).ok().flatten();
            match existing {
                Some((ip, prefix)) => {
                    let net = IpNet::new(IpAddr::V4(ip), prefix)
                        .map_err(|e| Error::internal(e.to_string()))?;
                    (net.trunc(), IpAddr::V4(ip))
                }
                None => {
                    let mut all = taken.to_vec();
                    match bridge::host_routes(&[iface.to_string()]) {
                        Ok(routes) => all.extend(routes),
                        Err(e) => tracing::warn!("cannot read the host's routes: {e}"),
                    }
                    let subnet = ipam::next_subnet(&config.pools(), &all).ok_or_else(|| {
                        Error::internal(
                            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the default bridge",
                        )
                    })?;
                    let net = IpNet::V4(subnet);
                    (net, ipam::first_host(net))
                }
            }
        }
    };
    let mut ipam_config = IpamConfig {
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        ..IpamConfig::default()
    };
    if let Some(fixed) = config.fixed_cidr {
        if !subnet.contains(&IpNet::V4(fixed)) {
            return Err(Error::internal(format!(
                "fixed-cidr {fixed} is not inside the default bridge's subnet {subnet}"
            )));
        }
        ipam_config.ip_range = fixed.to_string();
    }
    let mut n = predefined("bridge", id, "bridge");
    n.ipam.config = vec![ipam_config];
    let opt = |k: &str, v: String| (k.to_string(), v);
    n.options = [
        opt(record::OPT_DEFAULT_BRIDGE, "true".into()),
        opt(record::OPT_ICC, config.icc.to_string()),
        opt(record::OPT_MASQUERADE, config.ip_masq.to_string()),
        opt(
            record::OPT_HOST_BINDING,
            config.default_binding_ip.to_string(),
        ),
        opt(record::OPT_BRIDGE_NAME, iface.to_string()),
        opt(
            record::OPT_MTU,
            if config.mtu == 0 { 1500 } else { config.mtu }.to_string(),
        ),
    ]
    .into_iter()
    .collect();
    Ok(n)
}
