//! The documents clients read about containers: `GET /containers/{id}/json`
//! (inspect) and `GET /containers/json` (list, with Docker's filters and status text).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Value, json};

use super::record::Endpoint;
use super::settings::NetMode;
use super::{Handle, Record};
use crate::engine::{Engine, Error, Filters, Result};

/// Filter keys `GET /containers/json` accepts.
pub const LIST_FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// Options of `GET /containers/json`.
#[derive(Debug, Default)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<usize>,
    pub size: bool,
    pub filters: Filters,
}

/// One entry of `GET /containers/json`, serialized directly (lists can be long and
/// are asked for often).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    pub id: String,
    pub names: [String; 1],
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    pub ports: Vec<PortSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub state: &'static str,
    pub status: String,
    pub host_config: HostConfigSummary,
    pub network_settings: NetworkSettingsSummary,
    pub mounts: Value,
}

#[derive(Debug, Serialize)]
pub struct HostConfigSummary {
    #[serde(rename = "NetworkMode")]
    pub network_mode: String,
}

#[derive(Debug, Serialize)]
pub struct NetworkSettingsSummary {
    #[serde(rename = "Networks")]
    pub networks: serde_json::Map<String, Value>,
}

/// A port in `docker ps`: published (`IP`, `PublicPort`) or only exposed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortSummary {
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub private_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: String,
}

/// Go's `units.HumanDuration`, as in `Up 5 seconds`.
pub fn human_duration(secs: f64) -> String {
    let seconds = secs as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (secs / 3600.0) as i64 / 24 / 365)
}

fn seconds_since(rfc3339: &str) -> f64 {
    let then = crate::timefmt::parse_timestamp(rfc3339).unwrap_or(0);
    let now = crate::timefmt::to_nanos(SystemTime::now());
    ((now - then).max(0)) as f64 / 1e9
}

/// Docker's `State.String()`: `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`.
pub fn status_text(r: &Record) -> String {
    let s = &r.container.state;
    if s.restarting {
        return format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human_duration(seconds_since(&s.finished_at))
        );
    }
    if s.running {
        let up = human_duration(seconds_since(&s.started_at));
        return match &s.health {
            _ if s.paused => format!("Up {up} (Paused)"),
            Some(h) if h.status == "starting" => format!("Up {up} (health: starting)"),
            Some(h) => format!("Up {up} ({})", h.status),
            None => format!("Up {up}"),
        };
    }
    if s.removal_in_progress {
        return "Removal In Progress".into();
    }
    if s.dead {
        return "Dead".into();
    }
    if s.started_at == crate::timefmt::ZERO_TIME {
        return "Created".into();
    }
    if s.finished_at == crate::timefmt::ZERO_TIME {
        return String::new();
    }
    format!(
        "Exited ({}) {} ago",
        s.exit_code,
        human_duration(seconds_since(&s.finished_at))
    )
}

/// `ps`'s COMMAND: the path and arguments, arguments with spaces in single quotes.
pub fn command_text(r: &Record) -> String {
    let c = &r.container;
    if c.args.is_empty() {
        return c.path.clone();
    }
    let args: Vec<String> = c
        .args
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect();
    format!("{} {}", c.path, args.join(" "))
}

fn unix_seconds(rfc3339: &str) -> i64 {
    crate::timefmt::parse_timestamp(rfc3339)
        .unwrap_or(0)
        .div_euclid(1_000_000_000)
}

impl Engine {
    /// An endpoint as inspect and list show it (`EndpointSettings`).
    fn endpoint_json(ep: &Endpoint) -> Value {
        let or_null = |v: &[String]| if v.is_empty() { Value::Null } else { json!(v) };
        json!({
            "IPAMConfig": ep.ipam_config, "Links": or_null(&ep.links), "Aliases": or_null(&ep.aliases),
            "MacAddress": if ep.mac_address.is_empty() { ep.mac_config.clone() } else { ep.mac_address.clone() },
            "DriverOpts": null, "GwPriority": 0, "NetworkID": ep.network_id, "EndpointID": ep.endpoint_id,
            "Gateway": ep.gateway, "IPAddress": ep.ip_address, "IPPrefixLen": ep.ip_prefix_len,
            "IPv6Gateway": ep.ipv6_gateway, "GlobalIPv6Address": ep.ipv6_address,
            "GlobalIPv6PrefixLen": ep.ipv6_prefix_len, "DNSNames": or_null(&ep.dns_names),
        })
    }

    /// The container's endpoints by network name (`host` and `none` as Docker shows
    /// them; none for `container:NAME`).
    fn endpoints_json(&self, r: &Record) -> serde_json::Map<String, Value> {
        let mut networks = serde_json::Map::new();
        let builtin = match &r.settings.network_mode {
            NetMode::Host => Some("host"),
            NetMode::None => Some("none"),
            NetMode::Container(_) => return networks,
            _ => None,
        };
        if let Some(name) = builtin {
            let ep = Endpoint {
                network: name.to_string(),
                network_id: self.networks.resolve(name).unwrap_or_default(),
                ..Endpoint::default()
            };
            networks.insert(name.to_string(), Self::endpoint_json(&ep));
            return networks;
        }
        for ep in &r.container.network_settings.networks {
            networks.insert(ep.network.clone(), Self::endpoint_json(ep));
        }
        networks
    }

    fn network_settings(&self, r: &Record) -> Value {
        let ns = &r.container.network_settings;
        let running = r.container.state.running;
        let bridge = ns.networks.iter().find(|e| e.network == "bridge");
        let top = |f: fn(&Endpoint) -> Value, zero: Value| bridge.map(f).unwrap_or(zero);
        let sandbox_id = if running && !ns.sandbox_key.is_empty() {
            r.container.id.clone()
        } else {
            String::new()
        };
        let sandbox_key = if !running {
            String::new()
        } else if !ns.sandbox_key.is_empty() {
            ns.sandbox_key.clone()
        } else if !matches!(r.settings.network_mode, NetMode::Host) {
            format!("/proc/{}/ns/net", r.container.state.pid)
        } else {
            String::new()
        };
        let exposed_only = || -> serde_json::Map<String, Value> {
            r.container
                .config
                .exposed_ports
                .iter()
                .flat_map(|m| m.keys())
                .map(|k| (k.clone(), Value::Null))
                .collect()
        };
        let ports = if running && !ns.ports.is_empty() {
            json!(ns.ports)
        } else if running {
            Value::Object(exposed_only())
        } else {
            json!({})
        };
        json!({
            "Bridge": "", "SandboxID": sandbox_id, "SandboxKey": sandbox_key, "Ports": ports, "HairpinMode": false,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": top(|e| json!(e.endpoint_id), json!("")),
            "Gateway": top(|e| json!(e.gateway), json!("")),
            "GlobalIPv6Address": top(|e| json!(e.ipv6_address), json!("")),
            "GlobalIPv6PrefixLen": top(|e| json!(e.ipv6_prefix_len), json!(0)),
            "IPAddress": top(|e| json!(e.ip_address), json!("")),
            "IPPrefixLen": top(|e| json!(e.ip_prefix_len), json!(0)),
            "IPv6Gateway": top(|e| json!(e.ipv6_gateway), json!("")),
            "MacAddress": top(|e| json!(e.mac_address), json!("")),
            "Networks": self.endpoints_json(r),
        })
    }

    /// `GET /containers/{id}/json`.
    pub fn container_inspect(&self, name: &str, size: bool) -> Result<Value> {
        let h = self.containers.get(name)?;
        let r = h.snapshot();
        let c = &r.container;
        let s = &c.state;
        let exec_ids = {
            let ids = self.execs.of_container(&c.id);
            if ids.is_empty() {
                Value::Null
            } else {
                json!(ids)
            }
        };
        let mut doc = json!({
            "Id": c.id,
            "Created": c.created,
            "Path": c.path,
            "Args": c.args,
            "State": {
                "Status": c.status(),
                "Running": s.running,
                "Paused": s.paused,
                "Restarting": s.restarting,
                "OOMKilled": s.oom_killed,
                "Dead": s.dead,
                "Pid": s.pid,
                "ExitCode": s.exit_code,
                "Error": s.error,
                "StartedAt": s.started_at,
                "FinishedAt": s.finished_at,
            },
            "Image": c.image,
            "ResolvConfPath": c.resolv_conf_path,
            "HostnamePath": c.hostname_path,
            "HostsPath": c.hosts_path,
            "LogPath": c.log_path,
            "Name": c.name,
            "RestartCount": c.restart_count,
            "Driver": c.driver,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": self.security.apparmor_profile(&r.settings.security, r.settings.privileged),
            "ExecIDs": exec_ids,
            "HostConfig": r.host_config,
            "GraphDriver": { "Name": c.driver, "Data": self.images.rw_layer_graph_data(&c.id).ok() },
            "Mounts": self.mounts_json(&r.container.mount_points),
            "Config": c.config,
            "NetworkSettings": self.network_settings(&r),
        });
        if let Some(h) = &s.health {
            doc["State"]["Health"] = json!(h);
        }
        if size {
            let rw = self.images.rw_layer_size(&c.id).unwrap_or(0);
            doc["SizeRw"] = json!(rw);
            doc["SizeRootFs"] =
                json!(rw + self.images.details(&c.image).map(|d| d.size).unwrap_or(0));
        }
        Ok(doc)
    }

    /// `GET /containers/json`: newest first.
    pub fn container_list(&self, opts: &ListOptions) -> Result<Vec<Summary>> {
        let f = &opts.filters;
        for st in f.get("status") {
            if !STATUSES.contains(&st) {
                return Err(Error::invalid(format!("Invalid filter 'status={st}'")));
            }
        }
        let mut exited_codes = Vec::new();
        for e in f.get("exited") {
            exited_codes.push(
                e.parse::<i32>()
                    .map_err(|_| Error::invalid(format!("invalid filter 'exited={e}'")))?,
            );
        }
        let name_patterns: Vec<regex_lite::Regex> = f
            .get("name")
            .map(|p| {
                regex_lite::Regex::new(p)
                    .map_err(|e| Error::invalid(format!("invalid filter 'name={p}': {e}")))
            })
            .collect::<Result<_>>()?;
        let ancestors: Vec<String> = f
            .get("ancestor")
            .filter_map(|a| self.images.resolve(a).ok().map(|i| i.id))
            .collect();
        let created_of = |name: &str| -> Result<i64> {
            let h = self.containers.get(name)?;
            let created = h.record().container.created.clone();
            Ok(crate::timefmt::parse_timestamp(&created).unwrap_or(0))
        };
        let before = f.get("before").next().map(created_of).transpose()?;
        let since = f.get("since").next().map(created_of).transpose()?;
        if let Some(v) = f.get("is-task").next() {
            if v != "true" && v != "false" {
                return Err(Error::invalid(format!("Invalid filter 'is-task={v}'")));
            }
        }

        let mut handles: Vec<(i64, Arc<Handle>)> = self
            .containers
            .all()
            .into_iter()
            .map(|h| {
                let created =
                    crate::timefmt::parse_timestamp(&h.record().container.created).unwrap_or(0);
                (created, h)
            })
            .collect();
        handles.sort_by_key(|(created, _)| std::cmp::Reverse(*created));
        let show_all = opts.all
            || opts.limit.is_some_and(|l| l > 0)
            || f.contains("status")
            || f.contains("exited");

        let mut out = Vec::new();
        for (created, h) in handles {
            let r = h.record();
            let c = &r.container;
            let status = c.status();
            if !show_all && !c.state.running {
                continue;
            }
            if !f.exact_match("status", status) {
                continue;
            }
            if f.contains("id") && !f.get("id").any(|p| c.id.starts_with(p)) {
                continue;
            }
            if !name_patterns.is_empty() && !name_patterns.iter().any(|re| re.is_match(&c.name)) {
                continue;
            }
            if !f.match_labels("label", &c.config.labels) {
                continue;
            }
            if f.contains("ancestor") && !ancestors.contains(&c.image) {
                continue;
            }
            if !exited_codes.is_empty()
                && (status != "exited" || !exited_codes.contains(&c.state.exit_code))
            {
                continue;
            }
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            if f.contains("network") {
                let eps = &c.network_settings.networks;
                let mode = r.settings.network_mode.network().map(str::to_string);
                let hit = f.get("network").any(|want| {
                    eps.iter()
                        .any(|e| e.network == want || e.network_id.starts_with(want))
                        || (eps.is_empty() && mode.as_deref() == Some(want))
                        || match &r.settings.network_mode {
                            NetMode::Host => want == "host",
                            NetMode::None => want == "none",
                            _ => false,
                        }
                });
                if !hit {
                    continue;
                }
            }
            if f.contains("publish")
                && !f.get("publish").any(|p| {
                    port_filter_matches(p, r.settings.port_bindings.keys().map(String::as_str))
                })
            {
                continue;
            }
            if f.contains("expose")
                && !f.get("expose").any(|p| {
                    port_filter_matches(
                        p,
                        c.config
                            .exposed_ports
                            .iter()
                            .flat_map(|m| m.keys().map(String::as_str)),
                    )
                })
            {
                continue;
            }
            if f.contains("health") {
                let status = c
                    .state
                    .health
                    .as_ref()
                    .map_or("none", |h| h.status.as_str());
                if !f.get("health").any(|h| h == status) {
                    continue;
                }
            }
            // No container is a swarm task: that filter matches only its "none" form.
            if f.contains("is-task") && f.get("is-task").any(|v| v == "true") {
                continue;
            }
            // `volume`: a mount's destination, or its volume's name (a bind's source).
            if f.contains("volume")
                && !f.get("volume").any(|v| {
                    c.mount_points.iter().any(|m| {
                        m.destination == v
                            || if m.name.is_empty() {
                                m.source == v
                            } else {
                                m.name == v
                            }
                    })
                })
            {
                continue;
            }
            if f.contains("isolation")
                && !f.get("isolation").any(|i| i == "default" || i.is_empty())
            {
                continue;
            }
            let (size_rw, size_root_fs) = if opts.size {
                let rw = self.images.rw_layer_size(&c.id).unwrap_or(0);
                let image = self.images.details(&c.image).map(|d| d.size).unwrap_or(0);
                (Some(rw), Some(rw + image))
            } else {
                (None, None)
            };
            let network_mode = r
                .host_config
                .get("NetworkMode")
                .and_then(Value::as_str)
                .unwrap_or("bridge")
                .to_string();
            let networks = self.endpoints_json(&r);
            let ports = port_summaries(&r);
            let entry = Summary {
                id: c.id.clone(),
                names: [c.name.clone()],
                image: c.config.image.clone(),
                image_id: c.image.clone(),
                command: command_text(&r),
                created: unix_seconds(&c.created),
                ports,
                size_rw,
                size_root_fs,
                labels: c.config.labels.clone(),
                state: status,
                status: status_text(&r),
                host_config: HostConfigSummary { network_mode },
                network_settings: NetworkSettingsSummary { networks },
                mounts: self.mounts_json(&r.container.mount_points),
            };
            out.push(entry);
            if opts.limit.is_some_and(|l| l > 0 && out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }
}

/// `docker ps`'s ports: each binding of a running container, then ports only exposed.
fn port_summaries(r: &Record) -> Vec<PortSummary> {
    let c = &r.container;
    let mut out = Vec::new();
    if !c.state.running {
        return out;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (key, bindings) in &c.network_settings.ports {
        let Ok(p) = crate::engine::network::ports::parse_port(key) else {
            continue;
        };
        seen.insert(key.clone());
        match bindings {
            Some(list) if !list.is_empty() => {
                for b in list {
                    out.push(PortSummary {
                        ip: Some(b.host_ip.clone()),
                        private_port: p.number,
                        public_port: b.host_port.parse().ok(),
                        kind: p.proto.as_str().to_string(),
                    });
                }
            }
            _ => out.push(PortSummary {
                ip: None,
                private_port: p.number,
                public_port: None,
                kind: p.proto.as_str().to_string(),
            }),
        }
    }
    for key in c.config.exposed_ports.iter().flat_map(|m| m.keys()) {
        if seen.contains(key) {
            continue;
        }
        if let Ok(p) = crate::engine::network::ports::parse_port(key) {
            out.push(PortSummary {
                ip: None,
                private_port: p.number,
                public_port: None,
                kind: p.proto.as_str().to_string(),
            });
        }
    }
    out
}

/// The `publish` and `expose` filters: `80`, `80/udp`, `8000-8080/tcp`.
fn port_filter_matches<'a>(filter: &str, ports: impl Iterator<Item = &'a str>) -> bool {
    let (range, proto) = filter.split_once('/').unwrap_or((filter, "tcp"));
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().ok(), b.parse::<u16>().ok()),
        None => (range.parse::<u16>().ok(), range.parse::<u16>().ok()),
    };
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return false;
    };
    ports
        .filter_map(|k| crate::engine::network::ports::parse_port(k).ok())
        .any(|p| p.proto.as_str() == proto && (lo..=hi).contains(&p.number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_filters() {
        assert!(port_filter_matches("80", ["80/tcp"].into_iter()));
        assert!(!port_filter_matches("80/udp", ["80/tcp"].into_iter()));
        assert!(port_filter_matches(
            "8000-8080/tcp",
            ["8000/tcp", "9000/tcp"].into_iter()
        ));
        assert!(!port_filter_matches("x", ["80/tcp"].into_iter()));
    }

    #[test]
    fn human_durations_like_go_units() {
        assert_eq!(human_duration(0.3), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(59.0), "59 seconds");
        assert_eq!(human_duration(61.0), "About a minute");
        assert_eq!(human_duration(600.0), "10 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(5.0 * 3600.0), "5 hours");
        assert_eq!(human_duration(3.0 * 86400.0), "3 days");
    }
}
