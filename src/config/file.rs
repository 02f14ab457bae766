//! Reading daemon.json: JSON errors with file, line and column; unknown keys; and
//! keys given both as a flag and in the file, all in Docker Engine's words.

use std::path::Path;

use serde_json::{Map, Value};

use super::ConfigError;
use crate::cli::Parsed;

/// A daemon.json key and the clap id of the flag that sets the same thing.
pub struct Key {
    pub json: &'static str,
    pub flag: &'static str,
    /// Applied by SIGHUP without a restart.
    pub reloadable: bool,
}

/// Every key daemon.json may hold, in the order conflicts are reported.
pub const KEYS: &[Key] = &[
    Key {
        json: "hosts",
        flag: "hosts",
        reloadable: false,
    },
    Key {
        json: "tls",
        flag: "tls",
        reloadable: false,
    },
    Key {
        json: "tlsverify",
        flag: "tlsverify",
        reloadable: false,
    },
    Key {
        json: "tlscacert",
        flag: "tlscacert",
        reloadable: false,
    },
    Key {
        json: "tlscert",
        flag: "tlscert",
        reloadable: false,
    },
    Key {
        json: "tlskey",
        flag: "tlskey",
        reloadable: false,
    },
    Key {
        json: "data-root",
        flag: "data_root",
        reloadable: false,
    },
    Key {
        json: "exec-root",
        flag: "exec_root",
        reloadable: false,
    },
    Key {
        json: "pidfile",
        flag: "pidfile",
        reloadable: false,
    },
    Key {
        json: "debug",
        flag: "debug",
        reloadable: true,
    },
    Key {
        json: "log-level",
        flag: "log_level",
        reloadable: true,
    },
    Key {
        json: "log-format",
        flag: "log_format",
        reloadable: false,
    },
    Key {
        json: "group",
        flag: "group",
        reloadable: false,
    },
    Key {
        json: "shutdown-timeout",
        flag: "shutdown_timeout",
        reloadable: true,
    },
    Key {
        json: "idle-timeout",
        flag: "idle_timeout",
        reloadable: true,
    },
    Key {
        json: "labels",
        flag: "labels",
        reloadable: true,
    },
    Key {
        json: "log-driver",
        flag: "log_driver",
        reloadable: false,
    },
    Key {
        json: "log-opts",
        flag: "log_opts",
        reloadable: false,
    },
    Key {
        json: "default-runtime",
        flag: "default_runtime",
        reloadable: true,
    },
    Key {
        json: "runtimes",
        flag: "add_runtimes",
        reloadable: true,
    },
    Key {
        json: "live-restore",
        flag: "live_restore",
        reloadable: false,
    },
    Key {
        json: "default-ulimits",
        flag: "default_ulimits",
        reloadable: false,
    },
    Key {
        json: "default-shm-size",
        flag: "default_shm_size",
        reloadable: false,
    },
    Key {
        json: "exec-opts",
        flag: "exec_opts",
        reloadable: false,
    },
    Key {
        json: "cgroup-parent",
        flag: "cgroup_parent",
        reloadable: false,
    },
    Key {
        json: "default-cgroupns-mode",
        flag: "default_cgroupns_mode",
        reloadable: false,
    },
    Key {
        json: "seccomp-profile",
        flag: "seccomp_profile",
        reloadable: false,
    },
    Key {
        json: "no-new-privileges",
        flag: "no_new_privileges",
        reloadable: false,
    },
    Key {
        json: "bridge",
        flag: "bridge",
        reloadable: false,
    },
    Key {
        json: "bip",
        flag: "bip",
        reloadable: false,
    },
    Key {
        json: "fixed-cidr",
        flag: "fixed_cidr",
        reloadable: false,
    },
    Key {
        json: "default-address-pools",
        flag: "default_address_pools",
        reloadable: false,
    },
    Key {
        json: "mtu",
        flag: "mtu",
        reloadable: false,
    },
    Key {
        json: "iptables",
        flag: "iptables",
        reloadable: false,
    },
    Key {
        json: "ip-forward",
        flag: "ip_forward",
        reloadable: false,
    },
    Key {
        json: "ip-masq",
        flag: "ip_masq",
        reloadable: false,
    },
    Key {
        json: "icc",
        flag: "icc",
        reloadable: false,
    },
    Key {
        json: "userland-proxy",
        flag: "userland_proxy",
        reloadable: false,
    },
    Key {
        json: "ip",
        flag: "ip",
        reloadable: false,
    },
    Key {
        json: "host-gateway-ip",
        flag: "host_gateway_ip",
        reloadable: false,
    },
    Key {
        json: "dns",
        flag: "dns",
        reloadable: false,
    },
    Key {
        json: "dns-search",
        flag: "dns_search",
        reloadable: false,
    },
    Key {
        json: "dns-opts",
        flag: "dns_opts",
        reloadable: false,
    },
    Key {
        json: "insecure-registries",
        flag: "insecure_registries",
        reloadable: true,
    },
    Key {
        json: "registry-mirrors",
        flag: "registry_mirrors",
        reloadable: true,
    },
    Key {
        json: "max-concurrent-downloads",
        flag: "max_concurrent_downloads",
        reloadable: true,
    },
    Key {
        json: "max-concurrent-uploads",
        flag: "max_concurrent_uploads",
        reloadable: true,
    },
    Key {
        json: "max-download-attempts",
        flag: "max_download_attempts",
        reloadable: true,
    },
    Key {
        json: "proxies",
        flag: "proxies",
        reloadable: false,
    },
];

/// The file's top-level object, in file order. A missing default file is an empty one.
pub fn read(path: &Path, explicit: bool) -> Result<Map<String, Value>, ConfigError> {
    let fail = |msg: String| {
        ConfigError(format!(
            "unable to configure the Docker daemon with file {}: {msg}",
            path.display()
        ))
    };
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(Map::new()),
        Err(e) => {
            return Err(fail(format!(
                "open {}: {}",
                path.display(),
                crate::store::strip_os_suffix(&e)
            )));
        }
    };
    parse(&data).map_err(fail)
}

/// Parses daemon.json content; an empty or all-blank file is an empty configuration.
pub fn parse(data: &[u8]) -> Result<Map<String, Value>, String> {
    let text = std::str::from_utf8(data)
        .map_err(|e| format!("invalid JSON: the file is not UTF-8 ({e})"))?;
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_str(text).map_err(json_error)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("invalid JSON: the configuration must be a JSON object".to_string()),
    }
}

/// `invalid JSON at line 3 column 5: expected ',' or '}' after an object entry`.
fn json_error(e: serde_json::Error) -> String {
    let full = e.to_string();
    let what = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => &full,
    };
    format!(
        "invalid JSON at line {} column {}: {}",
        e.line(),
        e.column(),
        what.replace('`', "'")
    )
}

/// Errors on keys that match no option, listing them all as Docker does.
pub fn check_unknown(map: &Map<String, Value>, path: &Path) -> Result<(), ConfigError> {
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !KEYS.iter().any(|key| key.json == *k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ConfigError(format!(
        "unable to configure the Docker daemon with file {}: the following directives don't match any configuration option: {}",
        path.display(),
        unknown.join(", ")
    )))
}

/// Errors on keys set both in the file and by an explicit flag.
pub fn check_conflicts(
    map: &Map<String, Value>,
    flags: &Parsed,
    path: &Path,
) -> Result<(), ConfigError> {
    let mut conflicts = Vec::new();
    for key in KEYS {
        if let Some(file_value) = map.get(key.json) {
            if flags.is_explicit(key.flag) {
                conflicts.push(format!(
                    "{}: (from flag: {}, from file: {})",
                    key.json,
                    flag_value_go(key.flag, flags),
                    go_value(file_value)
                ));
            }
        }
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(ConfigError(format!(
        "unable to configure the Docker daemon with file {}: the following directives are specified both as a flag and in the configuration file: {}",
        path.display(),
        conflicts.join(", ")
    )))
}

/// A flag's value printed the way Go's `%v` prints it in Docker's message.
fn flag_value_go(id: &str, parsed: &Parsed) -> String {
    let f = &parsed.flags;
    let list = |v: &[String]| format!("[{}]", v.join(" "));
    match id {
        "hosts" => list(&f.hosts),
        "data_root" => f.data_root.display().to_string(),
        "exec_root" => f.exec_root.display().to_string(),
        "pidfile" => f.pidfile.display().to_string(),
        "debug" => f.debug.to_string(),
        "log_level" => f.log_level.clone(),
        "log_format" => f.log_format.clone(),
        "group" => f.group.clone(),
        "shutdown_timeout" => f.shutdown_timeout.to_string(),
        "labels" => list(&f.labels),
        "log_driver" => f.log_driver.clone(),
        "log_opts" => format!(
            "map[{}]",
            f.log_opts
                .iter()
                .map(|o| o.replacen('=', ":", 1))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "default_runtime" => f.default_runtime.clone(),
        "add_runtimes" => list(&f.add_runtimes),
        "live_restore" => f.live_restore.to_string(),
        "default_ulimits" => format!(
            "map[{}]",
            f.default_ulimits
                .iter()
                .map(|u| u.replacen('=', ":", 1))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "default_shm_size" => f.default_shm_size.clone(),
        "exec_opts" => list(&f.exec_opts),
        "cgroup_parent" => f.cgroup_parent.clone(),
        "default_cgroupns_mode" => f.default_cgroupns_mode.clone(),
        "seccomp_profile" => f.seccomp_profile.clone(),
        "no_new_privileges" => f.no_new_privileges.to_string(),
        "tls" => f.tls.to_string(),
        "tlsverify" => f.tlsverify.to_string(),
        "tlscacert" => f.tlscacert.clone(),
        "tlscert" => f.tlscert.clone(),
        "tlskey" => f.tlskey.clone(),
        "idle_timeout" => f.idle_timeout.to_string(),
        "bridge" => f.bridge.clone(),
        "bip" => f.bip.clone(),
        "fixed_cidr" => f.fixed_cidr.clone(),
        "default_address_pools" => list(&f.default_address_pools),
        "mtu" => f.mtu.to_string(),
        "iptables" => f.iptables.to_string(),
        "ip_forward" => f.ip_forward.to_string(),
        "ip_masq" => f.ip_masq.to_string(),
        "icc" => f.icc.to_string(),
        "userland_proxy" => f.userland_proxy.to_string(),
        "ip" => f.ip.clone(),
        "host_gateway_ip" => f.host_gateway_ip.clone(),
        "dns" => list(&f.dns),
        "dns_search" => list(&f.dns_search),
        "dns_opts" => list(&f.dns_opts),
        "insecure_registries" => list(&f.insecure_registries),
        "registry_mirrors" => list(&f.registry_mirrors),
        "max_concurrent_downloads" => f.max_concurrent_downloads.to_string(),
        "max_concurrent_uploads" => f.max_concurrent_uploads.to_string(),
        "max_download_attempts" => f.max_download_attempts.to_string(),
        "proxies" => format!(
            "map[http-proxy:{} https-proxy:{} no-proxy:{}]",
            f.http_proxy, f.https_proxy, f.no_proxy
        ),
        _ => String::new(),
    }
}

/// A JSON value printed the way Go's `%v` prints the decoded `interface{}`.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_value(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_line_and_column() {
        let err = parse(b"{\n  \"debug\": true\n  \"x\": 1\n}").unwrap_err();
        assert!(
            err.starts_with("invalid JSON at line 3 column 3: "),
            "{err}"
        );
    }

    #[test]
    fn blank_file_is_empty_config() {
        assert!(parse(b"  \n").unwrap().is_empty());
        assert!(parse(b"[]").is_err());
    }

    #[test]
    fn go_formatting() {
        let v: Value = serde_json::from_str(r#"["unix:///x", "fd://"]"#).unwrap();
        assert_eq!(go_value(&v), "[unix:///x fd://]");
        let v: Value = serde_json::from_str(r#"{"b":"2","a":"1"}"#).unwrap();
        assert_eq!(go_value(&v), "map[a:1 b:2]");
    }
}
