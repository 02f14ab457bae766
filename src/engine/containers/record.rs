//! What the daemon keeps about a container, in the files Docker Engine uses:
//! `<data-root>/containers/<id>/config.v2.json` (the container and its state) and
//! `hostconfig.json` (the HostConfig as the client sent it, with defaults filled in).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::engine::{Error, Result};

/// JSON `null` reads as the type's default (Go clients send `null` for empty lists).
pub fn nullable<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub use crate::image::config::str_slice;

/// The container configuration (`Config` in create and inspect).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    #[serde(default, deserialize_with = "nullable")]
    pub hostname: String,
    #[serde(default, deserialize_with = "nullable")]
    pub domainname: String,
    #[serde(default, deserialize_with = "nullable")]
    pub user: String,
    #[serde(default, deserialize_with = "nullable")]
    pub attach_stdin: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub attach_stdout: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub attach_stderr: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tty: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub open_stdin: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub stdin_once: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub image: String,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, deserialize_with = "nullable")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub on_build: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// The container's state, as `State` in inspect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub removal_in_progress: bool,
    pub dead: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    /// With a health check: its status and last probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::Health>,
}

impl Default for State {
    fn default() -> Self {
        State {
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            removal_in_progress: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: crate::timefmt::ZERO_TIME.to_string(),
            finished_at: crate::timefmt::ZERO_TIME.to_string(),
            health: None,
        }
    }
}

impl State {
    /// Docker's one-word status: created, running, paused, restarting, removing, exited, dead.
    pub fn status(&self, started_before: bool) -> &'static str {
        if self.running {
            if self.paused {
                "paused"
            } else if self.restarting {
                "restarting"
            } else {
                "running"
            }
        } else if self.removal_in_progress {
            "removing"
        } else if self.dead {
            "dead"
        } else if !started_before && self.started_at == crate::timefmt::ZERO_TIME {
            "created"
        } else {
            "exited"
        }
    }
}

/// The persisted container (`config.v2.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    #[serde(rename = "ID")]
    pub id: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: Config,
    /// The image ID (`sha256:…`).
    pub image: String,
    /// `/name`.
    pub name: String,
    pub state: State,
    pub log_path: String,
    pub restart_count: i64,
    pub driver: String,
    pub has_been_started_before: bool,
    pub has_been_manually_stopped: bool,
    pub hostname_path: String,
    pub hosts_path: String,
    pub resolv_conf_path: String,
    /// Warnings given at create time, kept for the record.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The networks it joins and, while it runs, what it got on them.
    #[serde(default)]
    pub network_settings: NetworkSettings,
    /// What it mounts (binds, volumes, tmpfs), fixed at create.
    #[serde(default)]
    pub mount_points: Vec<crate::engine::volume::mounts::MountPoint>,
    /// The cgroup it was last started in, relative to each hierarchy's root (the
    /// daemon's `cgroup-parent` may change between daemon runs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroup_path: String,
}

/// A container's networking: its endpoints (in the order joined: the first is
/// `eth0` and carries the default route) and, while it runs, its published ports and
/// namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    #[serde(default)]
    pub networks: Vec<Endpoint>,
    /// `NetworkSettings.Ports` while running: container port → host bindings.
    #[serde(default)]
    pub ports: BTreeMap<String, Option<Vec<crate::engine::network::ports::PortBinding>>>,
    /// The namespace file while running (empty otherwise).
    #[serde(default)]
    pub sandbox_key: String,
    /// `networks` is what the container joins (records written before endpoints
    /// were kept have none: their network mode names their one network).
    #[serde(default)]
    pub endpoints_kept: bool,
}

impl NetworkSettings {
    pub fn endpoint(&self, network: &str) -> Option<&Endpoint> {
        self.networks.iter().find(|e| e.network == network)
    }
}

/// Addresses a container asked for on one network (`--ip`, `--ip6`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIpamConfig {
    #[serde(
        rename = "IPv4Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_address: String,
    #[serde(
        rename = "IPv6Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_address: String,
}

/// A container on one network: what it asked for, and what it got while it runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    /// The network's name.
    pub network: String,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "IPAMConfig", default)]
    pub ipam_config: Option<EndpointIpamConfig>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Legacy links on a user-defined network, as given (`name:alias`).
    #[serde(default)]
    pub links: Vec<String>,
    /// `--mac-address`.
    #[serde(default)]
    pub mac_config: String,
    #[serde(default)]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(rename = "EndpointID", default)]
    pub endpoint_id: String,
    /// `eth0`…, and the host end of its veth pair.
    #[serde(default)]
    pub interface: String,
    #[serde(default)]
    pub host_interface: String,
    #[serde(rename = "IPAddress", default)]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen", default)]
    pub ip_prefix_len: u8,
    #[serde(default)]
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address", default)]
    pub ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen", default)]
    pub ipv6_prefix_len: u8,
    #[serde(rename = "IPv6Gateway", default)]
    pub ipv6_gateway: String,
    #[serde(default)]
    pub mac_address: String,
    #[serde(rename = "DNSNames", default)]
    pub dns_names: Vec<String>,
}

impl Endpoint {
    /// Forgets what the endpoint got when its container stopped.
    pub fn clear_runtime(&mut self) {
        self.endpoint_id.clear();
        self.interface.clear();
        self.host_interface.clear();
        self.ip_address.clear();
        self.ip_prefix_len = 0;
        self.gateway.clear();
        self.ipv6_address.clear();
        self.ipv6_prefix_len = 0;
        self.ipv6_gateway.clear();
        self.mac_address.clear();
        self.dns_names.clear();
    }
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// The name without its leading slash.
    pub fn bare_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }

    pub fn status(&self) -> &'static str {
        self.state.status(self.has_been_started_before)
    }
}

/// The file names inside a container's directory.
pub const CONFIG_FILE: &str = "config.v2.json";
pub const HOSTCONFIG_FILE: &str = "hostconfig.json";

/// Writes both files crash-safely (each is replaced atomically).
pub fn save(dir: &Path, c: &Container, host_config: &Map<String, Value>) -> Result<()> {
    crate::store::write_json(&dir.join(HOSTCONFIG_FILE), host_config)?;
    crate::store::write_json(&dir.join(CONFIG_FILE), c)?;
    Ok(())
}

/// Writes `hostconfig.json` only (`docker update`).
pub fn save_host_config(dir: &Path, host_config: &Map<String, Value>) -> Result<()> {
    crate::store::write_json(&dir.join(HOSTCONFIG_FILE), host_config)?;
    Ok(())
}

/// Writes `config.v2.json` only (state changes).
pub fn save_state(dir: &Path, c: &Container) -> Result<()> {
    crate::store::write_json(&dir.join(CONFIG_FILE), c)?;
    Ok(())
}

/// Reads a container's files; `None` for a directory that is not a complete container
/// (a create interrupted by a crash), which the caller removes.
pub fn load(dir: &Path) -> Result<Option<(Container, Map<String, Value>)>> {
    let read = |name: &str| -> Result<Option<Vec<u8>>> {
        match std::fs::read(dir.join(name)) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::store::with_path(e, "open", &dir.join(name)).into()),
        }
    };
    let (Some(cfg), Some(hc)) = (read(CONFIG_FILE)?, read(HOSTCONFIG_FILE)?) else {
        return Ok(None);
    };
    let mut c: Container = serde_json::from_slice(&cfg)
        .map_err(|e| Error::internal(format!("{}: {e}", dir.join(CONFIG_FILE).display())))?;
    let hc: Map<String, Value> = serde_json::from_slice(&hc)
        .map_err(|e| Error::internal(format!("{}: {e}", dir.join(HOSTCONFIG_FILE).display())))?;
    if c.mount_points.is_empty() {
        // Written before mount points were kept: binds of host paths were all
        // there was.
        for b in crate::engine::containers::settings::strings(hc.get("Binds"), "Binds")? {
            c.mount_points
                .push(crate::engine::volume::mounts::parse_bind(&b, "")?.point);
        }
    }
    Ok(Some((c, hc)))
}

/// `<data-root>/containers`.
pub fn containers_dir(data_root: &Path) -> PathBuf {
    data_root.join("containers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_accepts_cli_body_and_nulls() {
        let body = include_str!("../../../tests/data/create-body.json");
        let v: Value = serde_json::from_str(body).unwrap();
        let c: Config = serde_json::from_value(v).unwrap();
        assert_eq!(c.cmd, Some(vec!["echo".to_string(), "hi".to_string()]));
        assert!(c.env.is_empty());
        assert!(c.entrypoint.is_none());
        let c: Config =
            serde_json::from_str(r#"{"Cmd":"echo hi","Entrypoint":null,"Labels":null}"#).unwrap();
        assert_eq!(c.cmd, Some(vec!["echo hi".to_string()]));
    }

    #[test]
    fn status_words() {
        let mut s = State::default();
        assert_eq!(s.status(false), "created");
        s.running = true;
        assert_eq!(s.status(true), "running");
        s.running = false;
        assert_eq!(s.status(true), "exited");
    }
}
