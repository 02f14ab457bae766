//! `docker network create/ls/inspect/rm/prune/connect/disconnect`: the engine's side
//! of `/networks`, with Docker's documents and errors.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::ActiveEndpoint;
use super::record::{self, Network};
use crate::engine::containers::Handle;
use crate::engine::containers::record::Endpoint;
use crate::engine::containers::settings::NetMode;
use crate::engine::{Engine, Error, Filters, Result};
use crate::init::spec::{NETWORK_FILE, NetworkTeardown};

/// Filter keys `GET /networks` accepts.
pub const LIST_FILTERS: &[&str] = &["driver", "id", "label", "name", "scope", "type", "dangling"];

impl Engine {
    fn network_doc(
        &self,
        n: &Network,
        endpoints: &BTreeMap<String, ActiveEndpoint>,
        with_containers: bool,
    ) -> Value {
        let mut doc = serde_json::to_value(n).unwrap_or(Value::Null);
        let mut containers = serde_json::Map::new();
        if with_containers {
            for (cid, e) in endpoints {
                containers.insert(
                    cid.clone(),
                    json!({
                        "Name": e.name,
                        "EndpointID": e.endpoint_id,
                        "MacAddress": e.mac,
                        "IPv4Address": e.ipv4.map(|(ip, p)| format!("{ip}/{p}")).unwrap_or_default(),
                        "IPv6Address": e.ipv6.map(|(ip, p)| format!("{ip}/{p}")).unwrap_or_default(),
                    }),
                );
            }
        }
        // Docker's field order: Containers after ConfigOnly.
        if let Value::Object(m) = &mut doc {
            let mut ordered = serde_json::Map::new();
            for (k, v) in std::mem::take(m) {
                if k == "Options" {
                    ordered.insert("Containers".into(), Value::Object(containers.clone()));
                }
                ordered.insert(k, v);
            }
            *m = ordered;
        }
        doc
    }

    /// `GET /networks`.
    pub fn network_list(&self, f: &Filters) -> Result<Vec<Value>> {
        if let Some(t) = f.get("type").find(|t| *t != "custom" && *t != "builtin") {
            return Err(Error::invalid(format!("invalid filter: 'type'='{t}'")));
        }
        let dangling = f.get_bool("dangling")?;
        let mut nets = self.networks.snapshot();
        nets.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let mut out = Vec::new();
        for (n, eps) in nets {
            let builtin = n.is_predefined();
            let matches = f.exact_match("driver", &n.driver)
                && f.exact_match("scope", &n.scope)
                && (!f.contains("name") || f.get("name").any(|p| n.name.contains(p)))
                && (!f.contains("id") || f.get("id").any(|p| n.id.starts_with(p)))
                && f.match_labels("label", &n.labels)
                && f.exact_match("type", if builtin { "builtin" } else { "custom" })
                && dangling.is_none_or(|d| d == (eps.is_empty() && !builtin));
            if matches {
                out.push(self.network_doc(&n, &eps, false));
            }
        }
        Ok(out)
    }

    /// `GET /networks/{id}`.
    pub fn network_inspect(&self, name_or_id: &str) -> Result<Value> {
        let id = self.networks.resolve(name_or_id)?;
        let (n, eps) = self
            .networks
            .snapshot()
            .into_iter()
            .find(|(n, _)| n.id == id)
            .ok_or_else(|| Error::not_found(format!("network {name_or_id} not found")))?;
        Ok(self.network_doc(&n, &eps, true))
    }

    /// `POST /networks/create`: returns the new ID.
    pub async fn network_create(self: &Arc<Self>, body: Option<Value>) -> Result<String> {
        let req = record::parse_request(body)?;
        let engine = self.clone();
        let id = tokio::task::spawn_blocking(move || engine.networks.create(req))
            .await
            .map_err(|e| Error::internal(format!("network create: {e}")))??;
        let name = self.networks.with(&id, |n| Ok(n.record.name.clone()))?;
        self.network_event("create", &id, &name, None);
        Ok(id)
    }

    pub(crate) fn network_event(
        &self,
        action: &str,
        id: &str,
        name: &str,
        container: Option<&str>,
    ) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), name.to_string());
        attrs.insert("type".to_string(), "bridge".to_string());
        if let Some(c) = container {
            attrs.insert("container".to_string(), c.to_string());
        }
        self.events.emit("network", action, id, attrs);
    }

    /// `DELETE /networks/{id}`.
    pub async fn network_remove(self: &Arc<Self>, name_or_id: &str) -> Result<()> {
        let engine = self.clone();
        let target = name_or_id.to_string();
        let removed = tokio::task::spawn_blocking(move || engine.networks.remove(&target))
            .await
            .map_err(|e| Error::internal(format!("network remove: {e}")))??;
        self.network_event("destroy", &removed.id, &removed.name, None);
        Ok(())
    }

    /// `POST /networks/prune`: user-defined networks no running container uses.
    pub async fn network_prune(self: &Arc<Self>, f: &Filters) -> Result<Value> {
        let until = match f.get("until").next() {
            Some(u) => Some(crate::engine::filters::parse_until(u)?),
            None => None,
        };
        let mut deleted = Vec::new();
        for (n, eps) in self.networks.snapshot() {
            if n.is_predefined() || !eps.is_empty() {
                continue;
            }
            if !f.match_labels("label", &n.labels) {
                continue;
            }
            if f.get("label!").any(|cond| match cond.split_once('=') {
                Some((k, v)) => n.labels.get(k).is_some_and(|have| have == v),
                None => n.labels.contains_key(cond),
            }) {
                continue;
            }
            if let Some(u) = until {
                let created = crate::timefmt::parse_timestamp(&n.created).unwrap_or(0);
                if created >= u {
                    continue;
                }
            }
            match self.network_remove(&n.id).await {
                Ok(()) => deleted.push(n.name.clone()),
                Err(e) => tracing::warn!(network = %n.name, "prune: {e}"),
            }
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("reclaimed".to_string(), "0".to_string());
        self.events.emit("network", "prune", "", attrs);
        Ok(
            json!({ "NetworksDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) } }),
        )
    }

    /// A network's ID, name and driver.
    fn network_identity(&self, name_or_id: &str) -> Result<(String, String, String)> {
        let id = self.networks.resolve(name_or_id)?;
        self.networks.with(&id, |n| {
            Ok((id.clone(), n.record.name.clone(), n.record.driver.clone()))
        })
    }

    /// `POST /networks/{id}/connect`.
    pub async fn network_connect(self: &Arc<Self>, net: &str, body: Option<Value>) -> Result<()> {
        let body = body.unwrap_or(Value::Null);
        let h = self
            .containers
            .get(body.get("Container").and_then(Value::as_str).unwrap_or(""))?;
        let _op = h.op.lock().await;
        let (net_id, name, driver) = self.network_identity(net)?;
        let r = h.snapshot();
        if r.container.state.removal_in_progress {
            return Err(Error::conflict(format!(
                "Container {} is marked for removal and cannot be connected or disconnected to the network",
                h.id
            )));
        }
        match (&r.settings.network_mode, driver.as_str()) {
            (_, "host") | (NetMode::Host, _) => {
                return Err(Error::invalid(
                    "container cannot be disconnected from host network or connected to host network",
                ));
            }
            (NetMode::Container(_), _) => {
                return Err(Error::invalid(
                    "container sharing network namespace with another container or host cannot be connected to any other network",
                ));
            }
            (NetMode::None, _) | (_, "null") => {
                return Err(Error::invalid(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ));
            }
            _ => {}
        }
        if r.container
            .network_settings
            .networks
            .iter()
            .any(|e| e.network_id == net_id)
        {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {name}",
                r.container.bare_name()
            )));
        }
        let ep = self.endpoint_from_config(&net_id, body.get("EndpointConfig"))?;
        if !r.container.state.running {
            h.update(|c| c.network_settings.networks.push(ep)).await?;
            self.network_event("connect", &net_id, &name, Some(&h.id));
            return Ok(());
        }
        let engine = self.clone();
        let h2 = h.clone();
        let connected = tokio::task::spawn_blocking(move || engine.connect_running(&h2, ep))
            .await
            .map_err(|e| Error::internal(format!("network connect: {e}")))??;
        h.update(|c| c.network_settings.networks.push(connected))
            .await?;
        self.network_event("connect", &net_id, &name, Some(&h.id));
        Ok(())
    }

    /// Adds an interface on a new network to a running container. Blocking.
    fn connect_running(&self, h: &Arc<Handle>, mut ep: Endpoint) -> Result<Endpoint> {
        self.networks.wait_host_ready()?;
        let r = h.snapshot();
        let ns_path = r.container.network_settings.sandbox_key.clone();
        if ns_path.is_empty() {
            return Err(Error::invalid(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode",
            ));
        }
        let index = (0..)
            .find(|i| {
                !r.container
                    .network_settings
                    .networks
                    .iter()
                    .any(|e| e.interface == format!("eth{i}"))
            })
            .unwrap_or(0);
        let (net_id, iface, _, user_defined) = self.join_endpoint(&r, &mut ep, index)?;
        let host = match super::sandbox::add_interface(Path::new(&ns_path), &iface) {
            Ok(h) => h,
            Err(e) => {
                self.networks.remove_endpoint(&net_id, &h.id);
                return Err(Error::internal(format!(
                    "connect to network {}: {e}",
                    ep.network
                )));
            }
        };
        ep.host_interface = host;
        // A first user-defined network brings the embedded DNS server.
        let had_dns = r
            .container
            .network_settings
            .networks
            .iter()
            .any(|e| !e.dns_names.is_empty());
        if user_defined {
            self.networks.write_names()?;
            if !had_dns && let Err(e) = self.start_dns(h, &r, Path::new(&ns_path)) {
                tracing::warn!(container_id = %h.id, "cannot start the embedded DNS server: {e}");
            }
        }
        // The container's own address in its /etc/hosts.
        let line = format!("{}\t{}\n", ep.ip_address, r.container.config.hostname);
        append_in_place(Path::new(&r.container.hosts_path), &line);
        Ok(ep)
    }

    /// Starts a DNS-only network proxy for a running container that joined its first
    /// user-defined network, and points its resolv.conf at it.
    fn start_dns(
        &self,
        h: &Arc<Handle>,
        r: &crate::engine::containers::Record,
        ns_path: &Path,
    ) -> Result<()> {
        let state_dir = self.runtime.state_dir(&h.id);
        let port = if self.networks.tools.is_some() { 0 } else { 53 };
        let sockets = super::sandbox::dns_sockets(ns_path, port, port)?;
        let (up, tp) = (sockets.udp_port, sockets.tcp_port);
        if let Some(tools) = &self.networks.tools {
            let ns = std::fs::File::open(ns_path)?;
            super::firewall::add_dns_rules(tools, &ns, &super::firewall::dns_rules(up, tp))?;
        }
        let host = super::etc::host_resolv();
        let dns = super::etc::DnsSettings {
            servers: if r.settings.dns.is_empty() {
                self.networks
                    .config
                    .dns
                    .iter()
                    .map(|i| i.to_string())
                    .collect()
            } else {
                r.settings.dns.clone()
            },
            search: r.settings.dns_search.clone(),
            options: r.settings.dns_options.clone(),
        };
        let monitor_pid = monitor_pid_of(r.container.state.pid);
        let spec = crate::netproxy::ProxySpec {
            container_id: h.id.clone(),
            monitor_pid,
            forwards: Vec::new(),
            dns: Some(crate::netproxy::DnsSpec {
                udp_fd: -1,
                tcp_fd: -1,
                names_file: self.networks.names_file.clone(),
                upstream: super::etc::upstream_servers(&host, &dns),
            }),
        };
        let pid = self
            .runtime
            .start_proxy(spec, vec![sockets.udp, sockets.tcp])?;
        let path = state_dir.join(NETWORK_FILE);
        let mut t: NetworkTeardown = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        t.proxies.push(pid);
        t.dns_ports = Some((up, tp));
        self.write_teardown(&state_dir, &t)?;
        let text = super::etc::resolv_conf(&host, &dns, true);
        write_in_place(Path::new(&r.container.resolv_conf_path), &text);
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(
        self: &Arc<Self>,
        net: &str,
        body: Option<Value>,
    ) -> Result<()> {
        let body = body.unwrap_or(Value::Null);
        let h = self
            .containers
            .get(body.get("Container").and_then(Value::as_str).unwrap_or(""))?;
        let _op = h.op.lock().await;
        let (net_id, name, driver) = self.network_identity(net)?;
        let r = h.snapshot();
        if driver == "host" || r.settings.network_mode == NetMode::Host {
            return Err(Error::invalid(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        let Some(ep) = r
            .container
            .network_settings
            .networks
            .iter()
            .find(|e| e.network_id == net_id || e.network == name)
            .cloned()
        else {
            return Err(Error::invalid(if r.container.state.running {
                format!("container {} is not connected to network {name}", h.id)
            } else {
                format!("container {} is not connected to the network {name}", h.id)
            }));
        };
        if r.container.state.running && !ep.endpoint_id.is_empty() {
            let engine = self.clone();
            let (h2, ep2) = (h.clone(), ep.clone());
            tokio::task::spawn_blocking(move || engine.disconnect_running(&h2, &ep2))
                .await
                .map_err(|e| Error::internal(format!("network disconnect: {e}")))??;
        }
        h.update(|c| {
            c.network_settings
                .networks
                .retain(|e| e.network_id != ep.network_id)
        })
        .await?;
        self.network_event("disconnect", &net_id, &name, Some(&h.id));
        Ok(())
    }

    /// Removes a running container's interface on one network. Blocking.
    fn disconnect_running(&self, h: &Arc<Handle>, ep: &Endpoint) -> Result<()> {
        self.networks.wait_host_ready()?;
        if !ep.host_interface.is_empty() {
            super::sandbox::remove_interface(&ep.host_interface).map_err(|e| {
                Error::internal(format!("disconnect from network {}: {e}", ep.network))
            })?;
        }
        self.networks.remove_endpoint(&ep.network_id, &h.id);
        if !ep.dns_names.is_empty() {
            self.networks.write_names()?;
        }
        // Published ports that led to this address lead nowhere now.
        let path = self.runtime.state_dir(&h.id).join(NETWORK_FILE);
        if let Some(mut t) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<NetworkTeardown>(&b).ok())
        {
            let needle = format!("{}:", ep.ip_address);
            let target = format!("-d {}/32", ep.ip_address);
            let (gone, kept): (Vec<_>, Vec<_>) = t.rules.into_iter().partition(|r| {
                r.spec.contains(&needle)
                    || r.spec.contains(&target)
                    || r.spec.starts_with(&format!("-s {}/32", ep.ip_address))
            });
            if let Some(tools) = &t.iptables
                && !gone.is_empty()
            {
                let _ = tools.delete(&gone, None);
            }
            t.rules = kept;
            let _ = self.write_teardown(&self.runtime.state_dir(&h.id), &t);
        }
        let r = h.snapshot();
        if let Ok(text) = std::fs::read_to_string(&r.container.hosts_path) {
            let prefix = format!("{}\t", ep.ip_address);
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with(&prefix))
                .map(|l| format!("{l}\n"))
                .collect();
            write_in_place(Path::new(&r.container.hosts_path), &kept);
        }
        Ok(())
    }
}

/// The PID of the monitor of a container whose command has PID `pid` (its parent).
pub(crate) fn monitor_pid_of(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Rewrites a file a running container has bound (its inode must stay the same).
fn write_in_place(path: &Path, text: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

fn append_in_place(path: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}
