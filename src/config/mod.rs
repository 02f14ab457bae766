//! The daemon's configuration: flags merged over daemon.json, validated, and the subset
//! a SIGHUP may change without a restart.
//!
//! Every error here is a [`ConfigError`] whose text is what the operator sees on stderr
//! before the daemon exits 1, always before any socket is touched.

pub mod containers;
pub mod file;
pub mod hosts;
pub mod network;
pub mod registry;
pub mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::Parsed;
pub use containers::ContainerDefaults;
pub use hosts::Host;
pub use network::NetworkConfig;
pub use registry::RegistryConfig;

pub use crate::cli::{BUILTIN_RUNTIME, BUILTIN_RUNTIME_ALIASES, is_builtin_runtime};

/// A configuration problem, worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Log verbosity, as logrus names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "fatal" | "panic" => LogLevel::Fatal,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        }
    }
}

/// Daemon log output format on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// An additional OCI runtime declared in `runtimes` or with `--add-runtime`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuntimeConfig {
    pub path: String,
    #[serde(rename = "runtimeArgs", skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub config_file: PathBuf,
    pub hosts: Vec<Host>,
    /// TLS on TCP listeners (`--tls`, `--tlsverify`); none is plain HTTP.
    pub tls: Option<tls::TlsConfig>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    pub debug: bool,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub group: String,
    /// The group was chosen by the operator (a missing group is then an error).
    pub group_explicit: bool,
    /// Seconds to wait for containers and streams on shutdown; -1 waits forever.
    pub shutdown_timeout: i64,
    /// Seconds of idleness after which a socket-activated daemon exits; 0 never.
    pub idle_timeout: u64,
    pub labels: Vec<String>,
    pub log_driver: String,
    pub log_opts: BTreeMap<String, String>,
    pub default_runtime: String,
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    pub live_restore: bool,
    pub network: NetworkConfig,
    pub registry: RegistryConfig,
    pub containers: ContainerDefaults,
}

/// Log drivers containers can use.
pub const LOG_DRIVERS: &[&str] = &["json-file", "journald", "none"];

/// Options the json-file driver takes.
pub const JSON_FILE_OPTS: &[&str] = &["max-size", "max-file"];

/// Options the journald driver takes.
pub const JOURNALD_OPTS: &[&str] = &["tag", "labels", "labels-regex", "env", "env-regex"];

/// Checks one `--log-opt` of `driver`, with Docker's words for what is wrong.
pub fn check_log_opt(driver: &str, key: &str, value: &str) -> Result<(), String> {
    let accepted: &[&str] = match driver {
        "json-file" => JSON_FILE_OPTS,
        "journald" => JOURNALD_OPTS,
        _ => &[],
    };
    if !accepted.contains(&key) {
        return Err(format!("unknown log opt '{key}' for {driver} log driver"));
    }
    let ok = match key {
        "max-size" => parse_size(value).is_some(),
        "max-file" => value.parse::<u32>().is_ok_and(|n| n >= 1),
        "labels-regex" | "env-regex" => {
            return regex_lite::Regex::new(value)
                .map(drop)
                .map_err(|e| format!("invalid value for log opt '{key}': {e}"));
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value for log opt '{key}': {value}"))
    }
}

impl Config {
    /// Flags merged over the configuration file, then validated.
    pub fn load(flags: &Parsed) -> Result<Config, ConfigError> {
        let path = &flags.flags.config_file;
        let file = file::read(path, flags.is_explicit("config_file"))?;
        Self::from_parts(flags, &file, path)
    }

    /// Merges and validates already-read file content (`load` without the I/O).
    pub fn from_parts(
        flags: &Parsed,
        file: &Map<String, Value>,
        path: &Path,
    ) -> Result<Config, ConfigError> {
        file::check_unknown(file, path)?;
        file::check_conflicts(file, flags, path)?;
        let f = &flags.flags;
        let in_file = |k: &str| file.get(k);
        let prefix = format!(
            "unable to configure the Docker daemon with file {}",
            path.display()
        );
        let reader = FileReader {
            file,
            prefix: &prefix,
        };
        let bad = |k: &str, want: &str| reader.bad(k, want);
        let string = |k: &str, flag: &str| reader.string(k, flag);
        let boolean = |k: &str, flag: bool| reader.boolean(k, flag);
        let strings = |k: &str, flag: &[String]| reader.strings(k, flag);

        let host_strings = strings("hosts", &f.hosts)?;
        let mut hosts = Vec::new();
        for h in &host_strings {
            hosts.push(Host::parse(h).map_err(ConfigError)?);
        }
        if hosts.is_empty() {
            hosts.push(Host::Unix(PathBuf::from(hosts::DEFAULT_UNIX_SOCKET)));
        }

        let level_str = string("log-level", &f.log_level)?;
        let log_level = LogLevel::parse(&level_str)
            .ok_or_else(|| ConfigError(format!("unable to parse logging level: {level_str}")))?;
        let format_str = string("log-format", &f.log_format)?;
        let log_format = match format_str.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError(format!(
                    "unsupported log format \"{other}\": supported formats are text and json"
                )));
            }
        };

        let shutdown_timeout = match in_file("shutdown-timeout") {
            Some(v) => v
                .as_i64()
                .ok_or_else(|| bad("shutdown-timeout", "an integer"))?,
            None => f.shutdown_timeout,
        };
        if shutdown_timeout < -1 {
            return Err(ConfigError(format!(
                "invalid shutdown-timeout {shutdown_timeout}: use a number of seconds, or -1 to wait without limit"
            )));
        }

        let labels = strings("labels", &f.labels)?;
        for l in &labels {
            match l.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => {
                    return Err(ConfigError(format!(
                        "failed to validate label '{l}': labels must be key=value"
                    )));
                }
            }
        }

        let log_driver = string("log-driver", &f.log_driver)?;
        if !LOG_DRIVERS.contains(&log_driver.as_str()) {
            return Err(ConfigError(format!(
                "logging driver \"{log_driver}\" is not supported by this daemon yet (available: {})",
                LOG_DRIVERS.join(", ")
            )));
        }
        let log_opts = match in_file("log-opts") {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| bad("log-opts", "string values"))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?,
            Some(_) => return Err(bad("log-opts", "an object of strings")),
            None => parse_key_values(&f.log_opts, "log-opt")?,
        };
        validate_log_opts(&log_driver, &log_opts)?;

        let runtimes = match in_file("runtimes") {
            Some(Value::Object(m)) => {
                let mut out = BTreeMap::new();
                for (name, spec) in m {
                    let path = spec.get("path").and_then(Value::as_str).ok_or_else(|| {
                        ConfigError(format!("{prefix}: runtime \"{name}\" needs a \"path\""))
                    })?;
                    let args = match spec.get("runtimeArgs") {
                        None => Vec::new(),
                        Some(Value::Array(a)) => a
                            .iter()
                            .map(|v| {
                                v.as_str()
                                    .map(str::to_string)
                                    .ok_or_else(|| bad("runtimes", "runtimeArgs as strings"))
                            })
                            .collect::<Result<_, _>>()?,
                        Some(_) => return Err(bad("runtimes", "runtimeArgs as a list")),
                    };
                    out.insert(
                        name.clone(),
                        RuntimeConfig {
                            path: path.to_string(),
                            args,
                        },
                    );
                }
                out
            }
            Some(_) => return Err(bad("runtimes", "an object")),
            None => {
                let mut out = BTreeMap::new();
                for r in &f.add_runtimes {
                    let (name, path) = r
                        .split_once('=')
                        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                        .ok_or_else(|| {
                            ConfigError(format!(
                                "invalid runtime \"{r}\": use --add-runtime name=path"
                            ))
                        })?;
                    out.insert(
                        name.to_string(),
                        RuntimeConfig {
                            path: path.to_string(),
                            args: Vec::new(),
                        },
                    );
                }
                out
            }
        };
        for reserved in std::iter::once(&BUILTIN_RUNTIME).chain(BUILTIN_RUNTIME_ALIASES) {
            if runtimes.contains_key(*reserved) {
                return Err(ConfigError(format!(
                    "runtime name '{reserved}' is reserved for the built-in runtime"
                )));
            }
        }
        let default_runtime = string("default-runtime", &f.default_runtime)?;
        if !is_builtin_runtime(&default_runtime) && !runtimes.contains_key(&default_runtime) {
            return Err(ConfigError(format!(
                "specified default runtime '{default_runtime}' does not exist"
            )));
        }

        let cwd_abs = |p: PathBuf| -> PathBuf {
            if p.is_absolute() {
                p
            } else {
                std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
            }
        };
        let path_of = |k: &str, flag: &Path| -> Result<PathBuf, ConfigError> {
            let s = string(k, &flag.to_string_lossy())?;
            if s.is_empty() {
                return Err(ConfigError(format!("{prefix}: \"{k}\" must not be empty")));
            }
            Ok(cwd_abs(PathBuf::from(s)))
        };

        Ok(Config {
            config_file: path.to_path_buf(),
            hosts,
            tls: tls::from_parts(&reader, flags)?,
            data_root: path_of("data-root", &f.data_root)?,
            exec_root: path_of("exec-root", &f.exec_root)?,
            pidfile: path_of("pidfile", &f.pidfile)?,
            debug: boolean("debug", f.debug)?,
            log_level,
            log_format,
            group: string("group", &f.group)?,
            group_explicit: in_file("group").is_some() || flags.is_explicit("group"),
            shutdown_timeout,
            idle_timeout: match in_file("idle-timeout") {
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| bad("idle-timeout", "a number of seconds (0: never)"))?,
                None => f.idle_timeout,
            },
            labels,
            log_driver,
            log_opts,
            default_runtime,
            runtimes,
            // Containers outlive the daemon under their monitors: that is the default
            // here, and `"live-restore": false` asks for Docker Engine's default.
            live_restore: boolean("live-restore", true)?,
            network: network::from_parts(&reader, f)?,
            registry: registry::from_parts(&reader, f)?,
            containers: containers::from_parts(&reader, f)?,
        })
    }

    /// The level the logger should run at: `debug` wins over `log-level`.
    pub fn effective_log_level(&self) -> LogLevel {
        if self.debug {
            LogLevel::Debug
        } else {
            self.log_level
        }
    }

    /// Labels as a map (`key=value` entries; the last one wins).
    pub fn label_map(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Re-reads daemon.json for a reload: returns the configuration to run with
    /// (reloadable keys from the file, everything else unchanged) and a description
    /// of each applied change; keys that need a restart are reported in `ignored`.
    pub fn reload(&self, flags: &Parsed) -> Result<Reloaded, ConfigError> {
        let fresh = Config::load(flags)?;
        let mut next = self.clone();
        let mut changes = Vec::new();
        let mut ignored = Vec::new();
        macro_rules! field {
            ($key:literal, $field:ident, reload) => {
                if fresh.$field != self.$field {
                    changes.push(format!("{}: {:?} -> {:?}", $key, self.$field, fresh.$field));
                    next.$field = fresh.$field.clone();
                }
            };
            ($key:literal, $field:ident, restart) => {
                if fresh.$field != self.$field {
                    ignored.push($key.to_string());
                }
            };
        }
        field!("debug", debug, reload);
        field!("log-level", log_level, reload);
        field!("shutdown-timeout", shutdown_timeout, reload);
        field!("idle-timeout", idle_timeout, reload);
        field!("labels", labels, reload);
        field!("default-runtime", default_runtime, reload);
        field!("runtimes", runtimes, reload);
        field!("hosts", hosts, restart);
        field!("tls", tls, restart);
        field!("data-root", data_root, restart);
        field!("exec-root", exec_root, restart);
        field!("pidfile", pidfile, restart);
        field!("log-format", log_format, restart);
        field!("group", group, restart);
        field!("log-driver", log_driver, restart);
        field!("log-opts", log_opts, restart);
        field!("live-restore", live_restore, restart);
        let (old, new) = (&self.containers, &fresh.containers);
        for (key, changed) in [
            ("default-ulimits", old.ulimits != new.ulimits),
            ("default-shm-size", old.shm_size != new.shm_size),
            ("cgroup-parent", old.cgroup_parent != new.cgroup_parent),
            (
                "default-cgroupns-mode",
                old.cgroupns_mode != new.cgroupns_mode,
            ),
            (
                "seccomp-profile",
                old.seccomp_profile != new.seccomp_profile,
            ),
            (
                "no-new-privileges",
                old.no_new_privileges != new.no_new_privileges,
            ),
        ] {
            if changed {
                ignored.push(key.to_string());
            }
        }
        let (old, new) = (&self.registry, &fresh.registry);
        if old.insecure_registries != new.insecure_registries {
            changes.push(format!(
                "insecure-registries: {:?} -> {:?}",
                old.insecure_registries, new.insecure_registries
            ));
            next.registry.insecure_registries = new.insecure_registries.clone();
        }
        if old.mirrors != new.mirrors {
            changes.push(format!(
                "registry-mirrors: {:?} -> {:?}",
                old.mirrors, new.mirrors
            ));
            next.registry.mirrors = new.mirrors.clone();
        }
        for (key, a, b, slot) in [
            (
                "max-concurrent-downloads",
                old.max_concurrent_downloads,
                new.max_concurrent_downloads,
                &mut next.registry.max_concurrent_downloads,
            ),
            (
                "max-concurrent-uploads",
                old.max_concurrent_uploads,
                new.max_concurrent_uploads,
                &mut next.registry.max_concurrent_uploads,
            ),
            (
                "max-download-attempts",
                old.max_download_attempts,
                new.max_download_attempts,
                &mut next.registry.max_download_attempts,
            ),
        ] {
            if a != b {
                changes.push(format!("{key}: {a} -> {b}"));
                *slot = b;
            }
        }
        if (&old.http_proxy, &old.https_proxy, &old.no_proxy)
            != (&new.http_proxy, &new.https_proxy, &new.no_proxy)
        {
            ignored.push("proxies".to_string());
        }
        if fresh.network != self.network {
            for (key, _) in network::KEYS {
                if network_key_changed(&self.network, &fresh.network, key) {
                    ignored.push(key.to_string());
                }
            }
        }
        Ok(Reloaded {
            config: next,
            changes,
            ignored,
        })
    }

    /// The attributes of the `daemon reload` event, as Docker reports them.
    pub fn reload_event_attributes(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert("debug".into(), self.debug.to_string());
        a.insert("log-level".into(), self.log_level.as_str().into());
        a.insert(
            "labels".into(),
            serde_json::to_string(&self.labels).unwrap_or_default(),
        );
        a.insert("shutdown-timeout".into(), self.shutdown_timeout.to_string());
        a.insert("default-runtime".into(), self.default_runtime.clone());
        let mut names: Vec<&str> = self.runtimes.keys().map(String::as_str).collect();
        names.push(BUILTIN_RUNTIME);
        names.extend(BUILTIN_RUNTIME_ALIASES);
        names.sort();
        a.insert("runtimes".into(), names.join(" "));
        a.insert("live-restore".into(), self.live_restore.to_string());
        a
    }
}

/// Whether the daemon.json key `key` differs between two network configurations.
fn network_key_changed(a: &NetworkConfig, b: &NetworkConfig, key: &str) -> bool {
    match key {
        "bridge" => a.bridge != b.bridge,
        "bip" => a.bip != b.bip,
        "fixed-cidr" => a.fixed_cidr != b.fixed_cidr,
        "default-address-pools" => a.default_address_pools != b.default_address_pools,
        "mtu" => a.mtu != b.mtu,
        "iptables" => a.iptables != b.iptables,
        "ip-forward" => a.ip_forward != b.ip_forward,
        "ip-masq" => a.ip_masq != b.ip_masq,
        "icc" => a.icc != b.icc,
        "userland-proxy" => a.userland_proxy != b.userland_proxy,
        "ip" => a.default_binding_ip != b.default_binding_ip,
        "host-gateway-ip" => a.host_gateway_ip != b.host_gateway_ip,
        "dns" => a.dns != b.dns,
        "dns-search" => a.dns_search != b.dns_search,
        "dns-opts" => a.dns_opts != b.dns_opts,
        _ => false,
    }
}

/// Typed values from daemon.json, or the flag's when the file does not have the key.
pub(crate) struct FileReader<'a> {
    file: &'a Map<String, Value>,
    /// `unable to configure the Docker daemon with file PATH`.
    prefix: &'a str,
}

/// For the section tests: runs a section's `from_parts` on dockerd's `args` and
/// the daemon.json text `json`.
#[cfg(test)]
pub(crate) fn parse_section<T>(
    args: &[&str],
    json: &str,
    from_parts: fn(&FileReader<'_>, &crate::cli::Flags) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let mut argv = vec!["dockerd"];
    argv.extend_from_slice(args);
    let parsed = crate::cli::parse(argv).unwrap();
    let map: Map<String, Value> = serde_json::from_str(json).unwrap();
    let reader = FileReader {
        file: &map,
        prefix: "p",
    };
    from_parts(&reader, &parsed.flags)
}

impl FileReader<'_> {
    fn get(&self, k: &str) -> Option<&Value> {
        self.file.get(k)
    }

    fn bad(&self, k: &str, want: &str) -> ConfigError {
        ConfigError(format!(
            "{}: invalid value for \"{k}\": expected {want}",
            self.prefix
        ))
    }

    fn string(&self, k: &str, flag: &str) -> Result<String, ConfigError> {
        match self.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.bad(k, "a string")),
            None => Ok(flag.to_string()),
        }
    }

    fn boolean(&self, k: &str, flag: bool) -> Result<bool, ConfigError> {
        match self.get(k) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.bad(k, "true or false")),
            None => Ok(flag),
        }
    }

    fn strings(&self, k: &str, flag: &[String]) -> Result<Vec<String>, ConfigError> {
        match self.get(k) {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.bad(k, "a list of strings"))
                })
                .collect(),
            Some(_) => Err(self.bad(k, "a list of strings")),
            None => Ok(flag.to_vec()),
        }
    }
}

/// Result of [`Config::reload`].
#[derive(Debug)]
pub struct Reloaded {
    pub config: Config,
    pub changes: Vec<String>,
    pub ignored: Vec<String>,
}

fn parse_key_values(items: &[String], flag: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    items
        .iter()
        .map(|i| {
            i.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| ConfigError(format!("invalid --{flag} \"{i}\": use key=value")))
        })
        .collect()
}

fn validate_log_opts(driver: &str, opts: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (k, v) in opts {
        check_log_opt(driver, k, v).map_err(ConfigError)?;
    }
    Ok(())
}

/// `10m`, `1g`, `512k`, `100` → bytes (binary units, as Docker's `RAMInBytes`).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits_end = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;

    fn cfg(args: &[&str], json: &str) -> Result<Config, ConfigError> {
        let mut argv = vec!["dockerd"];
        argv.extend_from_slice(args);
        let parsed = cli::parse(argv).unwrap();
        let map = file::parse(json.as_bytes()).map_err(ConfigError)?;
        Config::from_parts(&parsed, &map, Path::new("/etc/docker/daemon.json"))
    }

    #[test]
    fn flag_and_file_conflict_in_dockers_words() {
        let err = cfg(&["-H", "fd://"], r#"{"hosts":["unix:///x"]}"#).unwrap_err();
        assert_eq!(
            err.0,
            "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives are \
             specified both as a flag and in the configuration file: hosts: (from flag: [fd://], from file: [unix:///x])"
        );
    }

    #[test]
    fn unknown_keys_are_listed() {
        let err = cfg(&[], r#"{"foo":1,"debug":true,"bar":2}"#).unwrap_err();
        assert!(
            err.0.ends_with(
                "the following directives don't match any configuration option: foo, bar"
            ),
            "{}",
            err.0
        );
    }

    #[test]
    fn file_fills_in_and_flags_default() {
        let c = cfg(
            &[],
            r#"{"debug":true,"labels":["a=b"],"shutdown-timeout":3}"#,
        )
        .unwrap();
        assert!(c.debug);
        assert_eq!(c.effective_log_level(), LogLevel::Debug);
        assert_eq!(c.shutdown_timeout, 3);
        assert_eq!(c.hosts, vec![Host::Unix("/var/run/docker.sock".into())]);
        assert!(!c.group_explicit);
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(cfg(&[], r#"{"debug":"yes"}"#).is_err());
        assert!(cfg(&[], r#"{"log-level":"loud"}"#).is_err());
        assert!(cfg(&[], r#"{"labels":["novalue"]}"#).is_err());
        assert!(cfg(&[], r#"{"default-runtime":"crun"}"#).is_err());
        assert!(cfg(&[], r#"{"log-driver":"syslog"}"#).is_err());
        assert!(cfg(&[], r#"{"log-opts":{"max-size":"10m","colour":"x"}}"#).is_err());
        assert!(
            cfg(
                &[],
                r#"{"runtimes":{"crun":{"path":"/usr/bin/crun"}},"default-runtime":"crun"}"#
            )
            .is_ok()
        );
        assert!(cfg(&[], r#"{"hosts":["udp://x"]}"#).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("x"), None);
    }
}
