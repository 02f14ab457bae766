//! The HostConfig settings this daemon honours, read from the client's HostConfig,
//! and the refusal of every setting it does not honour yet.
//!
//! A create request may carry any of Docker's ~80 HostConfig fields. The docker CLI
//! sends all of them, mostly at their zero values. A field at its zero value is fine;
//! a field this daemon implements is applied; anything else is refused with a 501 that
//! names the field, so that nothing a user asked for is silently ignored.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::namespaces::{self, IpcMode, PidMode};
use crate::engine::network::ports::{self, PortBindings};
use crate::engine::{Error, Result};

/// HostConfig fields that are applied.
const SUPPORTED: &[&str] = &[
    "AutoRemove",
    "Init",
    "ReadonlyRootfs",
    "NetworkMode",
    "Privileged",
    "CapAdd",
    "CapDrop",
    "ConsoleSize",
    "LogConfig",
    "RestartPolicy",
    "Binds",
    "Mounts",
    "Tmpfs",
    "VolumesFrom",
    "VolumeDriver",
    "ContainerIDFile",
    "Runtime",
    "PortBindings",
    "PublishAllPorts",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "Links",
    "PidMode",
    "IpcMode",
    "UTSMode",
    "UsernsMode",
    "GroupAdd",
    "CgroupParent",
    "CgroupnsMode",
    "Devices",
    "DeviceCgroupRules",
    "SecurityOpt",
];

/// Whether HostConfig field `k` is applied.
fn supported(k: &str) -> bool {
    SUPPORTED.contains(&k) || super::resources::FIELDS.contains(&k)
}

/// The logging drivers Docker Engine has; those this daemon lacks are refused with
/// a 501, any other name with Docker's error for an unknown driver.
const DOCKER_LOG_DRIVERS: &[&str] = &[
    "json-file",
    "none",
    "local",
    "journald",
    "syslog",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
];

/// How a container is networked (`HostConfig.NetworkMode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// `default` (or empty): the default bridge.
    Default,
    /// A network by name or ID: `bridge` or a user-defined one.
    Network(String),
    Host,
    None,
    /// `container:NAME`: the network namespace of another container.
    Container(String),
}

impl NetMode {
    pub fn parse(mode: &str) -> Result<NetMode> {
        Ok(match mode {
            "" | "default" => NetMode::Default,
            "host" => NetMode::Host,
            "none" => NetMode::None,
            m if m.starts_with("container:") => {
                let target = &m["container:".len()..];
                if target.is_empty() {
                    return Err(Error::invalid(
                        "invalid network mode: invalid container format container:<name|id>",
                    ));
                }
                NetMode::Container(target.to_string())
            }
            other => NetMode::Network(other.to_string()),
        })
    }

    /// The network it names, for the modes that name one.
    pub fn network(&self) -> Option<&str> {
        match self {
            NetMode::Default => Some("bridge"),
            NetMode::Network(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the container gets a namespace with interfaces of its own.
    pub fn bridged(&self) -> bool {
        matches!(self, NetMode::Default | NetMode::Network(_))
    }
}

/// Daemon-wide logging defaults (`log-driver`, `log-opts`).
#[derive(Debug, Clone, Default)]
pub struct LogDefaults {
    pub driver: String,
    pub opts: BTreeMap<String, String>,
}

/// The settings applied to a container.
#[derive(Debug, Clone)]
pub struct HostSettings {
    pub auto_remove: bool,
    pub init: bool,
    pub readonly_rootfs: bool,
    pub network_mode: NetMode,
    /// `-p`: container port (`80/tcp`) → host bindings.
    pub port_bindings: PortBindings,
    /// `-P`.
    pub publish_all: bool,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--add-host` entries as given (`name:ip`).
    pub extra_hosts: Vec<String>,
    /// Legacy `--link`s: (container, alias).
    pub links: Vec<(String, String)>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub console_size: Option<(u16, u16)>,
    pub log_driver: String,
    pub log_opts: BTreeMap<String, String>,
    /// `--tmpfs`: container path → mount options.
    pub tmpfs: Vec<(String, String)>,
    pub restart_policy: super::restart::Policy,
    pub pid_mode: PidMode,
    pub ipc_mode: IpcMode,
    /// `--uts host`.
    pub uts_host: bool,
    /// `--cgroup-parent`: the cgroup the container's goes under (empty: `docker`).
    pub cgroup_parent: String,
    /// `--group-add`: names (looked up in the container at start) or IDs.
    pub group_add: Vec<String>,
    /// `--cgroupns host`.
    pub cgroupns_host: bool,
    /// `--device`s.
    pub devices: Vec<super::devices::DeviceMapping>,
    /// `--device-cgroup-rule`s, checked.
    pub device_cgroup_rules: Vec<String>,
    /// Cgroup limits, ulimits, sysctls, `/dev/shm` size, OOM score.
    pub limits: super::resources::Limits,
    /// `--security-opt`: seccomp, AppArmor, no-new-privileges.
    pub security: crate::engine::security::SecurityOpts,
    /// Docker's warnings for settings this host cannot apply (dropped).
    pub warnings: Vec<String>,
}

/// True for JSON zero values: null, false, 0, "", [], {}.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Zero, or a value Docker treats as "unset" for this field.
pub(super) fn is_unset(key: &str, v: &Value) -> bool {
    if is_zero(v) {
        return true;
    }
    match key {
        "MemorySwappiness" => v.as_i64() == Some(-1),
        // Docker's default /dev/shm size, which the monitor mounts.
        "ShmSize" => v.as_i64() == Some(64 << 20),
        "Isolation" => v.as_str() == Some("default"),
        // ConsoleSize [0, 0] and similar all-zero lists.
        _ => v.as_array().is_some_and(|a| a.iter().all(is_zero)),
    }
}

pub(super) fn not_supported(field: &str) -> Error {
    Error::not_implemented(format!(
        "the container setting {field} is not supported by this daemon yet; remove it from the request"
    ))
}

pub fn strings(v: Option<&Value>, field: &str) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::invalid(format!("{field} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(Error::invalid(format!("{field} must be a list of strings"))),
    }
}

impl HostSettings {
    /// Reads (and validates) a HostConfig. Used at create time and again when the
    /// daemon loads a container from disk.
    pub fn from_host_config(
        hc: &Map<String, Value>,
        log_defaults: &LogDefaults,
    ) -> Result<HostSettings> {
        for (k, v) in hc {
            if !supported(k) && !is_unset(k, v) {
                return Err(not_supported(&format!("HostConfig.{k}")));
            }
        }
        let flag = |k: &str| hc.get(k).and_then(Value::as_bool).unwrap_or(false);

        let mode = hc.get("NetworkMode").and_then(Value::as_str).unwrap_or("");
        let network_mode = NetMode::parse(mode)?;
        let port_bindings = ports::parse_bindings(hc.get("PortBindings"))?;
        let dns = strings(hc.get("Dns"), "Dns")?;
        for d in &dns {
            if d.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::invalid(format!("{d} is not an ip address")));
            }
        }
        let dns_search = strings(hc.get("DnsSearch"), "DnsSearch")?;
        for d in &dns_search {
            crate::config::network::check_search_domain(d).map_err(Error::invalid)?;
        }
        let dns_options = strings(hc.get("DnsOptions"), "DnsOptions")?;
        let extra_hosts = strings(hc.get("ExtraHosts"), "ExtraHosts")?;
        for e in &extra_hosts {
            // host-gateway is checked at start, where the gateway is known.
            crate::engine::network::etc::parse_extra_host(
                e,
                Some(std::net::IpAddr::from([0, 0, 0, 0])),
            )
            .map_err(Error::invalid)?;
        }
        let mut links = Vec::new();
        for l in strings(hc.get("Links"), "Links")? {
            links.push(parse_link(&l)?);
        }

        let console_size = match hc.get("ConsoleSize").and_then(Value::as_array) {
            Some(a) if a.len() == 2 => {
                let h = a[0].as_u64().unwrap_or(0) as u16;
                let w = a[1].as_u64().unwrap_or(0) as u16;
                (h > 0 && w > 0).then_some((h, w))
            }
            _ => None,
        };

        let (log_driver, log_opts) = match hc.get("LogConfig") {
            Some(Value::Object(lc)) => {
                let ty = lc.get("Type").and_then(Value::as_str).unwrap_or("");
                let opts: BTreeMap<String, String> = match lc.get("Config") {
                    Some(Value::Object(m)) => m
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect(),
                    _ => BTreeMap::new(),
                };
                if ty.is_empty() {
                    let opts = if opts.is_empty() {
                        log_defaults.opts.clone()
                    } else {
                        opts
                    };
                    (log_defaults.driver.clone(), opts)
                } else {
                    (ty.to_string(), opts)
                }
            }
            _ => (log_defaults.driver.clone(), log_defaults.opts.clone()),
        };
        if !DOCKER_LOG_DRIVERS.contains(&log_driver.as_str()) {
            return Err(Error::invalid(format!(
                "logger: no log driver named '{log_driver}' is registered"
            )));
        }
        if !crate::config::LOG_DRIVERS.contains(&log_driver.as_str()) {
            return Err(Error::not_implemented(format!(
                "logging driver \"{log_driver}\" is not supported by this daemon yet (available: {})",
                crate::config::LOG_DRIVERS.join(", ")
            )));
        }
        for (k, v) in &log_opts {
            crate::config::check_log_opt(&log_driver, k, v).map_err(Error::invalid)?;
        }

        let restart_policy = super::restart::Policy::from_host_config(hc.get("RestartPolicy"))?;
        if flag("AutoRemove") && !restart_policy.is_none() {
            return Err(Error::invalid(
                "can't create 'AutoRemove' container with restart policy",
            ));
        }

        match hc.get("Runtime").and_then(Value::as_str).unwrap_or("") {
            "" => {}
            rt if crate::config::is_builtin_runtime(rt) => {}
            other => return Err(runtime_not_supported(other)),
        }

        let cap_add = strings(hc.get("CapAdd"), "CapAdd")?;
        let cap_drop = strings(hc.get("CapDrop"), "CapDrop")?;
        for c in cap_add.iter().chain(&cap_drop) {
            super::spec::normalize_capability(c)?;
        }

        let mut tmpfs = Vec::new();
        if let Some(Value::Object(m)) = hc.get("Tmpfs") {
            for (dest, opts) in m {
                let opts = opts.as_str().unwrap_or_default();
                crate::engine::volume::mounts::check_tmpfs(dest, opts)?;
                tmpfs.push((dest.clone(), opts.to_string()));
            }
        }
        match hc.get("VolumeDriver").and_then(Value::as_str).unwrap_or("") {
            "" | "local" => {}
            d => {
                return Err(Error::not_found(format!(
                    "error looking up volume plugin {d}: plugin \"{d}\" not found"
                )));
            }
        }

        let mode_of = |k: &str| hc.get(k).and_then(Value::as_str).unwrap_or("");
        let pid_mode = PidMode::parse(mode_of("PidMode"))?;
        let ipc_mode = IpcMode::parse(mode_of("IpcMode"))?;
        let uts_host = namespaces::parse_uts(mode_of("UTSMode"))?;
        namespaces::check_userns(mode_of("UsernsMode"))?;
        let cgroupns_host = match mode_of("CgroupnsMode") {
            "" | "private" => false,
            "host" => true,
            other => {
                return Err(Error::invalid(format!(
                    "invalid cgroup namespace mode: {other}"
                )));
            }
        };
        let security = crate::engine::security::SecurityOpts::parse(&strings(
            hc.get("SecurityOpt"),
            "SecurityOpt",
        )?)?;
        let (devices, device_cgroup_rules) = super::devices::read(hc)?;
        let (limits, warnings) = super::resources::read(
            hc,
            &crate::init::resources::host_support(),
            &network_mode,
            &ipc_mode,
            false,
        )?;

        Ok(HostSettings {
            auto_remove: flag("AutoRemove"),
            init: flag("Init"),
            readonly_rootfs: flag("ReadonlyRootfs"),
            network_mode,
            port_bindings,
            publish_all: flag("PublishAllPorts"),
            dns,
            dns_search,
            dns_options,
            extra_hosts,
            links,
            privileged: flag("Privileged"),
            cap_add,
            cap_drop,
            console_size,
            log_driver,
            log_opts,
            tmpfs,
            restart_policy,
            pid_mode,
            ipc_mode,
            uts_host,
            cgroup_parent: cgroup_parent(hc)?,
            group_add: strings(hc.get("GroupAdd"), "GroupAdd")?,
            cgroupns_host,
            devices,
            device_cgroup_rules,
            limits,
            security,
            warnings,
        })
    }
}

/// `HostConfig.CgroupParent`: a path of plain names below each hierarchy's root.
fn cgroup_parent(hc: &Map<String, Value>) -> Result<String> {
    let parent = hc.get("CgroupParent").and_then(Value::as_str).unwrap_or("");
    crate::config::containers::check_cgroup_parent(parent)
        .map_err(|e| Error::invalid(format!("invalid cgroup parent {e}")))?;
    Ok(parent.to_string())
}

/// `name:alias`, `name` (alias = name), and the `/name:/parent/alias` form inspect
/// shows (a record written by this daemon).
fn parse_link(spec: &str) -> Result<(String, String)> {
    let (name, alias) = spec.split_once(':').unwrap_or((spec, spec));
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if name.is_empty() || alias.is_empty() {
        return Err(Error::invalid(format!(
            "invalid link specification: {spec:?}"
        )));
    }
    Ok((name.to_string(), alias.to_string()))
}

/// Containers run only under the built-in runtime so far.
pub fn runtime_not_supported(name: &str) -> Error {
    Error::not_implemented(format!(
        "runtime \"{name}\" is not supported yet: containers run with the built-in runtime \"{}\"",
        crate::config::BUILTIN_RUNTIME
    ))
}

/// The container's HostConfig as inspect shows it: Docker's defaults with the
/// client's values on top.
pub fn complete_host_config(
    given: &Map<String, Value>,
    settings: &HostSettings,
) -> Map<String, Value> {
    let mut hc = default_host_config();
    for (k, v) in given {
        hc.insert(k.clone(), v.clone());
    }
    let mode = given
        .get("NetworkMode")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or(match settings.network_mode {
            NetMode::Default => "bridge",
            _ => "",
        });
    hc.insert("NetworkMode".into(), json!(mode));
    hc.insert("IpcMode".into(), json!(settings.ipc_mode.as_str()));
    hc.insert(
        "LogConfig".into(),
        json!({ "Type": settings.log_driver, "Config": settings.log_opts }),
    );
    hc
}

fn default_host_config() -> Map<String, Value> {
    let v = json!({
        "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": "bridge", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null, "ConsoleSize": [0, 0], "CapAdd": null,
        "CapDrop": null, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null,
        "GroupAdd": null, "IpcMode": "private", "Cgroup": "", "Links": null, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": false, "PublishAllPorts": false, "ReadonlyRootfs": false, "SecurityOpt": null,
        "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864, "Runtime": crate::config::BUILTIN_RUNTIME,
        "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null,
        "DeviceRequests": null, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": null,
        "OomKillDisable": null, "PidsLimit": null, "Ulimits": [], "CpuCount": 0, "CpuPercent": 0,
        "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": null, "ReadonlyPaths": null,
        "Init": null
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Refuses Config (not HostConfig) fields that ask for something not done yet.
pub fn check_config_fields(body: &Map<String, Value>) -> Result<()> {
    if let Some(v) = body.get("Healthcheck")
        && !v.is_null()
    {
        super::health::validate(v)?;
    }
    if body.get("NetworkDisabled").and_then(Value::as_bool) == Some(true) {
        return Err(not_supported("NetworkDisabled"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(body: &str) -> Map<String, Value> {
        serde_json::from_str(body).unwrap()
    }

    fn defaults() -> LogDefaults {
        LogDefaults {
            driver: "json-file".into(),
            opts: BTreeMap::new(),
        }
    }

    #[test]
    fn cli_defaults_are_accepted() {
        let body: Value =
            serde_json::from_str(include_str!("../../../tests/data/create-body.json")).unwrap();
        let m = body["HostConfig"].as_object().unwrap();
        let s = HostSettings::from_host_config(m, &defaults()).unwrap();
        assert!(s.auto_remove);
        assert_eq!(s.network_mode, NetMode::Default);
        assert_eq!(s.log_driver, "json-file");
        assert!(check_config_fields(body.as_object().unwrap()).is_ok());
    }

    #[test]
    fn unsupported_settings_are_refused_by_name() {
        let e =
            HostSettings::from_host_config(&hc(r#"{"StorageOpt": {"size": "1G"}}"#), &defaults())
                .unwrap_err();
        assert!(matches!(e, Error::NotImplemented(_)));
        assert!(e.to_string().contains("HostConfig.StorageOpt"), "{e}");
        assert!(
            HostSettings::from_host_config(
                &hc(r#"{"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}"#),
                &defaults()
            )
            .is_ok()
        );
        assert!(
            HostSettings::from_host_config(
                &hc(r#"{"PortBindings": {"80/tcp": [{"HostPort": "80800"}]}}"#),
                &defaults()
            )
            .is_err()
        );
        assert!(
            HostSettings::from_host_config(&hc(r#"{"ExtraHosts": ["nocolon"]}"#), &defaults())
                .is_err()
        );
        assert!(HostSettings::from_host_config(&hc(r#"{"Dns": ["x"]}"#), &defaults()).is_err());
        assert!(
            HostSettings::from_host_config(
                &hc(r#"{"RestartPolicy": {"Name": "always"}, "AutoRemove": true}"#),
                &defaults()
            )
            .is_err()
        );
        assert_eq!(
            HostSettings::from_host_config(&hc(r#"{"NetworkMode": "mynet"}"#), &defaults())
                .unwrap()
                .network_mode,
            NetMode::Network("mynet".into())
        );
        assert!(
            HostSettings::from_host_config(&hc(r#"{"NetworkMode": "container:"}"#), &defaults())
                .is_err()
        );
        assert_eq!(
            parse_link("/db:/web/mydb").unwrap(),
            ("db".into(), "mydb".into())
        );
        assert_eq!(parse_link("db").unwrap(), ("db".into(), "db".into()));
        assert!(matches!(
            HostSettings::from_host_config(
                &hc(r#"{"LogConfig": {"Type": "syslog"}}"#),
                &defaults()
            ),
            Err(Error::NotImplemented(_))
        ));
        assert_eq!(
            HostSettings::from_host_config(&hc(r#"{"LogConfig": {"Type": "x"}}"#), &defaults())
                .unwrap_err()
                .to_string(),
            "logger: no log driver named 'x' is registered"
        );
        assert!(
            HostSettings::from_host_config(
                &hc(r#"{"MemorySwappiness": -1, "ConsoleSize": [0,0]}"#),
                &defaults()
            )
            .is_ok()
        );
    }
}
