//! The registry part of the configuration, with Docker's keys and flags:
//! `insecure-registries`, `registry-mirrors`, `max-concurrent-downloads`,
//! `max-concurrent-uploads`, `max-download-attempts` and `proxies`.

use serde_json::Value;

use super::{ConfigError, FileReader};
use crate::cli::Flags;

/// Registry settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registries reached over plain HTTP or unverified TLS: `host:port`, `host`, or
    /// a CIDR of addresses.
    pub insecure_registries: Vec<String>,
    /// Mirrors of Docker Hub, tried first for its images (`https://mirror.example`).
    pub mirrors: Vec<String>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    pub max_download_attempts: usize,
    /// `proxies`: explicit proxies for registry traffic (else the environment's).
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl Default for RegistryConfig {
    /// Docker's defaults: no insecure registries or mirrors, 3 concurrent downloads,
    /// 5 uploads, 5 attempts per download, proxies from the environment.
    fn default() -> RegistryConfig {
        RegistryConfig {
            insecure_registries: Vec::new(),
            mirrors: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            max_download_attempts: 5,
            http_proxy: None,
            https_proxy: None,
            no_proxy: None,
        }
    }
}

/// daemon.json keys this file reads, with the clap ids of their flags.
pub const KEYS: &[(&str, &str, bool)] = &[
    ("insecure-registries", "insecure_registries", true),
    ("registry-mirrors", "registry_mirrors", true),
    ("max-concurrent-downloads", "max_concurrent_downloads", true),
    ("max-concurrent-uploads", "max_concurrent_uploads", true),
    ("max-download-attempts", "max_download_attempts", true),
    ("proxies", "proxies", false),
];

pub(crate) fn from_parts(r: &FileReader<'_>, f: &Flags) -> Result<RegistryConfig, ConfigError> {
    let count = |k: &str, flag: i64, min: i64| -> Result<usize, ConfigError> {
        let v = match r.get(k) {
            Some(v) => v.as_i64().ok_or_else(|| r.bad(k, "an integer"))?,
            None => flag,
        };
        if v < min {
            let what = k.replace('-', " ");
            return Err(ConfigError(format!("invalid {what}: {v}")));
        }
        Ok(v as usize)
    };
    let insecure_registries = r.strings("insecure-registries", &f.insecure_registries)?;
    for i in &insecure_registries {
        check_insecure(i)?;
    }
    let mirrors = r
        .strings("registry-mirrors", &f.registry_mirrors)?
        .into_iter()
        .map(|m| normalize_mirror(&m))
        .collect::<Result<Vec<_>, _>>()?;
    let (http_proxy, https_proxy, no_proxy) = match r.get("proxies") {
        Some(Value::Object(m)) => {
            let get = |k: &str| -> Result<Option<String>, ConfigError> {
                match m.get(k) {
                    None => Ok(None),
                    Some(Value::String(s)) if s.is_empty() => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(r.bad("proxies", "string values")),
                }
            };
            for k in m.keys() {
                if !["http-proxy", "https-proxy", "no-proxy"].contains(&k.as_str()) {
                    return Err(ConfigError(format!(
                        "invalid proxies configuration: unknown key \"{k}\" (use http-proxy, https-proxy, no-proxy)"
                    )));
                }
            }
            (get("http-proxy")?, get("https-proxy")?, get("no-proxy")?)
        }
        Some(_) => return Err(r.bad("proxies", "an object")),
        None => {
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
            (opt(&f.http_proxy), opt(&f.https_proxy), opt(&f.no_proxy))
        }
    };
    for p in [&http_proxy, &https_proxy].into_iter().flatten() {
        if reqwest::Url::parse(p).is_err() {
            return Err(ConfigError(format!("invalid proxy URL {p:?}")));
        }
    }
    Ok(RegistryConfig {
        insecure_registries,
        mirrors,
        max_concurrent_downloads: count("max-concurrent-downloads", f.max_concurrent_downloads, 0)?,
        max_concurrent_uploads: count("max-concurrent-uploads", f.max_concurrent_uploads, 0)?,
        max_download_attempts: count("max-download-attempts", f.max_download_attempts, 1)?,
        http_proxy,
        https_proxy,
        no_proxy,
    })
}

/// `host`, `host:port`, or a CIDR.
fn check_insecure(s: &str) -> Result<(), ConfigError> {
    let bad = || {
        ConfigError(format!(
            "insecure registry {s} is not valid: use HOST, HOST:PORT or a CIDR"
        ))
    };
    if s.contains("://") {
        return Err(ConfigError(format!(
            "insecure registry {s} should not contain '://'"
        )));
    }
    if s.contains('/') {
        return s.parse::<ipnet::IpNet>().map(drop).map_err(|_| bad());
    }
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    Ok(())
}

/// A mirror URL, as Docker keeps it: scheme and host, a trailing slash.
fn normalize_mirror(m: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(m.trim())
        .map_err(|_| ConfigError(format!("invalid mirror: \"{m}\" is not a valid URI")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ConfigError(format!(
            "invalid mirror: unsupported scheme \"{}\" in \"{m}\"",
            url.scheme()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError(format!(
            "invalid mirror: query or fragment at end of the URI \"{m}\""
        )));
    }
    let mut s = url.to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(args: &[&str], json: &str) -> Result<RegistryConfig, ConfigError> {
        crate::config::parse_section(args, json, from_parts)
    }

    #[test]
    fn defaults_are_dockers() {
        let c = reg(&[], "{}").unwrap();
        assert_eq!(
            (
                c.max_concurrent_downloads,
                c.max_concurrent_uploads,
                c.max_download_attempts
            ),
            (3, 5, 5)
        );
        assert!(c.mirrors.is_empty() && c.insecure_registries.is_empty());
    }

    #[test]
    fn values_are_checked() {
        let c = reg(
            &[
                "--insecure-registry",
                "10.0.0.0/8",
                "--registry-mirror",
                "https://m.example",
            ],
            r#"{"proxies": {"https-proxy": "http://proxy:3128", "no-proxy": "localhost"}}"#,
        )
        .unwrap();
        assert_eq!(c.mirrors, vec!["https://m.example/"]);
        assert_eq!(c.https_proxy.as_deref(), Some("http://proxy:3128"));
        assert!(reg(&[], r#"{"registry-mirrors": ["ftp://x"]}"#).is_err());
        assert!(reg(&[], r#"{"insecure-registries": ["http://x:5000"]}"#).is_err());
        assert!(reg(&[], r#"{"max-download-attempts": 0}"#).is_err());
        assert!(reg(&[], r#"{"proxies": {"ftp-proxy": "x"}}"#).is_err());
    }

    #[test]
    fn proxies_in_the_file_conflict_with_the_proxy_flags() {
        let map: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"proxies": {"http-proxy": "http://p:3128"}}"#).unwrap();
        let path = std::path::Path::new("daemon.json");
        let plain = crate::cli::parse(["dockerd"]).unwrap();
        let c = crate::config::Config::from_parts(&plain, &map, path).unwrap();
        assert_eq!(c.registry.http_proxy.as_deref(), Some("http://p:3128"));
        let both = crate::cli::parse(["dockerd", "--http-proxy", "http://q:1"]).unwrap();
        let e = crate::config::Config::from_parts(&both, &map, path).unwrap_err();
        assert!(
            e.to_string()
                .contains("specified both as a flag and in the configuration file: proxies"),
            "{e}"
        );
    }
}
