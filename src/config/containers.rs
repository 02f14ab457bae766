//! What containers get when they do not choose, with Docker's keys and flags:
//! `default-ulimits`, `default-shm-size`, `cgroup-parent`,
//! `default-cgroupns-mode`, `seccomp-profile`, `no-new-privileges`, and the cgroup
//! driver (`exec-opts: ["native.cgroupdriver=…"]`).

use serde_json::Value;

use super::{ConfigError, FileReader};
use crate::cli::Flags;

/// The resource limits `--ulimit` and `default-ulimits` may name.
pub const RLIMITS: &[(&str, u32)] = &[
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

/// One default ulimit; -1 is unlimited, as in a container's `Ulimits`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// Who makes containers' cgroups: the daemon's monitor, as directories
/// (`cgroupfs`), or systemd, as a transient `docker-<id>.scope` unit (`systemd`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CgroupDriver {
    #[default]
    Cgroupfs,
    Systemd,
}

impl CgroupDriver {
    /// The name `docker info` shows.
    pub fn name(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        }
    }
}

/// Whether the host runs cgroup v2 alone (the unified hierarchy at /sys/fs/cgroup).
pub fn cgroup_v2_only() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Whether systemd is PID 1 (its `sd_booted()` test).
pub fn systemd_booted() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// The driver `exec-opts` asks for, or Docker's default: systemd when systemd is
/// PID 1 on a cgroup v2 host, cgroupfs otherwise.
fn cgroup_driver(exec_opts: &[String]) -> Result<CgroupDriver, ConfigError> {
    let mut asked = None;
    for opt in exec_opts {
        let Some((key, value)) = opt.split_once('=') else {
            return Err(ConfigError(format!(
                "invalid exec-opt ({opt}): must be formatted 'opt=value'"
            )));
        };
        let key = key.trim().to_ascii_lowercase();
        match key.as_str() {
            "native.cgroupdriver" => {
                asked = match value.trim() {
                    "" => None,
                    "cgroupfs" => Some(CgroupDriver::Cgroupfs),
                    "systemd" => Some(CgroupDriver::Systemd),
                    "none" => {
                        return Err(ConfigError(
                            "native.cgroupdriver option none is internally used and cannot be specified manually".into(),
                        ));
                    }
                    other => {
                        return Err(ConfigError(format!(
                            "native.cgroupdriver option {other} not supported"
                        )));
                    }
                }
            }
            _ => return Err(ConfigError(format!("unknown option: '{key}'"))),
        }
    }
    let v2 = cgroup_v2_only();
    match asked {
        Some(CgroupDriver::Systemd) if !systemd_booted() => Err(ConfigError(
            "systemd cgroup flag passed, but systemd support for managing cgroups is not available: systemd is not running as PID 1 here; use native.cgroupdriver=cgroupfs".into(),
        )),
        Some(CgroupDriver::Systemd) if !v2 => Err(ConfigError(
            "native.cgroupdriver=systemd needs a host with cgroup v2 alone (the unified hierarchy at /sys/fs/cgroup): use native.cgroupdriver=cgroupfs here".into(),
        )),
        Some(d) => Ok(d),
        None if v2 && systemd_booted() => Ok(CgroupDriver::Systemd),
        None => Ok(CgroupDriver::Cgroupfs),
    }
}

/// A systemd slice name, as Docker requires it for `--cgroup-parent` with the
/// systemd driver.
pub fn check_slice(parent: &str) -> Result<(), String> {
    if parent.len() <= 6 || !parent.ends_with(".slice") || parent.contains('/') {
        return Err(
            "cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\""
                .into(),
        );
    }
    Ok(())
}

/// Container defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerDefaults {
    /// Who makes the containers' cgroups.
    pub cgroup_driver: CgroupDriver,
    /// Applied at start to every container whose `Ulimits` does not name them.
    pub ulimits: Vec<Ulimit>,
    /// `/dev/shm` size in bytes for containers created without `--shm-size`.
    pub shm_size: u64,
    /// The cgroup containers without `--cgroup-parent` go under (empty: `docker`).
    pub cgroup_parent: String,
    /// `private` or `host`, for containers created without `--cgroupns`.
    pub cgroupns_mode: String,
    /// `builtin`, `unconfined`, or the path of a profile in Docker's format.
    pub seccomp_profile: String,
    /// Containers get `no_new_privs` unless they say otherwise.
    pub no_new_privileges: bool,
}

impl Default for ContainerDefaults {
    fn default() -> Self {
        ContainerDefaults {
            cgroup_driver: CgroupDriver::Cgroupfs,
            ulimits: Vec::new(),
            shm_size: 64 << 20,
            cgroup_parent: String::new(),
            cgroupns_mode: "private".to_string(),
            seccomp_profile: "builtin".to_string(),
            no_new_privileges: false,
        }
    }
}

pub(crate) fn from_parts(r: &FileReader<'_>, f: &Flags) -> Result<ContainerDefaults, ConfigError> {
    let ulimits = match r.get("default-ulimits") {
        Some(Value::Object(m)) => {
            let mut out = Vec::new();
            for (key, u) in m {
                let Value::Object(u) = u else {
                    return Err(r.bad(
                        "default-ulimits",
                        "an object of {\"Name\", \"Soft\", \"Hard\"}",
                    ));
                };
                let name = match u.get("Name") {
                    None => key.as_str(),
                    Some(Value::String(s)) => s.as_str(),
                    Some(_) => return Err(r.bad("default-ulimits", "a string Name")),
                };
                let limit = |k: &str| -> Result<i64, ConfigError> {
                    match u.get(k) {
                        None => Ok(0),
                        Some(v) => v.as_i64().ok_or_else(|| {
                            r.bad("default-ulimits", "integer Soft and Hard values")
                        }),
                    }
                };
                out.push(ulimit(name, limit("Soft")?, limit("Hard")?)?);
            }
            out
        }
        Some(_) => return Err(r.bad("default-ulimits", "an object")),
        None => f
            .default_ulimits
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<_, _>>()?,
    };

    let shm_text = match r.get("default-shm-size") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(r.bad("default-shm-size", "a size such as \"64M\"")),
        None => f.default_shm_size.clone(),
    };
    let shm_size = super::parse_size(&shm_text)
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ConfigError(format!(
                "invalid default-shm-size \"{shm_text}\": use a size greater than 0, such as 64M"
            ))
        })?;

    let cgroup_driver = cgroup_driver(&r.strings("exec-opts", &f.exec_opts)?)?;
    let cgroup_parent = r.string("cgroup-parent", &f.cgroup_parent)?;
    match cgroup_driver {
        CgroupDriver::Cgroupfs => check_cgroup_parent(&cgroup_parent)
            .map_err(|e| ConfigError(format!("invalid cgroup-parent {e}")))?,
        CgroupDriver::Systemd if !cgroup_parent.is_empty() => {
            check_slice(&cgroup_parent).map_err(ConfigError)?
        }
        CgroupDriver::Systemd => {}
    }

    let cgroupns_mode = r.string("default-cgroupns-mode", &f.default_cgroupns_mode)?;
    if !["private", "host"].contains(&cgroupns_mode.as_str()) {
        return Err(ConfigError(format!(
            "default cgroup namespace mode (\"{cgroupns_mode}\") is invalid: use \"private\" or \"host\""
        )));
    }

    let seccomp_profile = r.string("seccomp-profile", &f.seccomp_profile)?;
    if seccomp_profile.is_empty() {
        return Err(ConfigError(
            "seccomp-profile must not be empty: use \"builtin\", \"unconfined\" or the path of a profile"
                .into(),
        ));
    }

    Ok(ContainerDefaults {
        cgroup_driver,
        ulimits,
        shm_size,
        cgroup_parent,
        cgroupns_mode,
        seccomp_profile,
        no_new_privileges: r.boolean("no-new-privileges", f.no_new_privileges)?,
    })
}

/// A cgroup parent (`--cgroup-parent`, daemon or container): a path of plain names
/// below each hierarchy's root. The error names the value and says why.
pub fn check_cgroup_parent(parent: &str) -> Result<(), String> {
    let trimmed = parent.trim_matches('/');
    if !trimmed.is_empty()
        && trimmed
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "{parent:?}: a path of names below the cgroup root, without \"..\""
        ));
    }
    Ok(())
}

/// `nofile=1024:4096` or `nofile=1024` (soft and hard the same), as `--ulimit` takes it.
fn parse_ulimit(text: &str) -> Result<Ulimit, ConfigError> {
    let bad = || ConfigError(format!("invalid ulimit argument: {text}"));
    let (name, limits) = text.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    ulimit(name, num(soft)?, num(hard)?)
}

fn ulimit(name: &str, soft: i64, hard: i64) -> Result<Ulimit, ConfigError> {
    if !RLIMITS.iter().any(|(n, _)| *n == name) {
        return Err(ConfigError(format!("invalid ulimit type: {name}")));
    }
    let unlimited = |n: i64| if n < 0 { u64::MAX } else { n as u64 };
    if unlimited(soft) > unlimited(hard) {
        return Err(ConfigError(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(args: &[&str], json: &str) -> Result<ContainerDefaults, ConfigError> {
        crate::config::parse_section(args, json, from_parts)
    }

    #[test]
    fn dockers_defaults() {
        let mut expected = ContainerDefaults::default();
        if cgroup_v2_only() && systemd_booted() {
            expected.cgroup_driver = CgroupDriver::Systemd;
        }
        assert_eq!(defaults(&[], "{}").unwrap(), expected);
    }

    #[test]
    fn cgroup_driver_from_exec_opts() {
        let driver = |args: &[&str], json: &str| defaults(args, json).map(|d| d.cgroup_driver);
        assert_eq!(
            driver(&["--exec-opt", "native.cgroupdriver=cgroupfs"], "{}").unwrap(),
            CgroupDriver::Cgroupfs
        );
        assert_eq!(
            driver(&[], r#"{"exec-opts": ["Native.CgroupDriver = cgroupfs"]}"#).unwrap(),
            CgroupDriver::Cgroupfs
        );
        let err = |args: &[&str], json: &str| driver(args, json).unwrap_err().to_string();
        assert!(
            err(&["--exec-opt", "native.cgroupdriver=none"], "{}")
                .contains("native.cgroupdriver option none is internally used")
        );
        assert!(
            err(&["--exec-opt", "native.cgroupdriver=x"], "{}")
                .contains("native.cgroupdriver option x not supported")
        );
        assert!(
            err(&["--exec-opt", "native.umask=normal"], "{}")
                .contains("unknown option: 'native.umask'")
        );
        assert!(err(&["--exec-opt", "novalue"], "{}").contains("must be formatted 'opt=value'"));
        if cgroup_v2_only() && systemd_booted() {
            assert_eq!(
                driver(&["--exec-opt", "native.cgroupdriver=systemd"], "{}").unwrap(),
                CgroupDriver::Systemd
            );
            assert!(
                err(
                    &[
                        "--exec-opt",
                        "native.cgroupdriver=systemd",
                        "--cgroup-parent",
                        "/ci"
                    ],
                    "{}"
                )
                .contains("should be a valid slice named as \"xxx.slice\"")
            );
        } else if !systemd_booted() {
            assert!(
                err(&["--exec-opt", "native.cgroupdriver=systemd"], "{}")
                    .contains("systemd support for managing cgroups is not available")
            );
        } else {
            assert!(
                err(&["--exec-opt", "native.cgroupdriver=systemd"], "{}")
                    .contains("needs a host with cgroup v2 alone")
            );
        }
        assert!(check_slice("ci.slice").is_ok());
        for bad in ["/ci", ".slice", "a/b.slice", "ci"] {
            assert!(check_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn from_flags_and_from_the_file() {
        let d = defaults(
            &[
                "--default-ulimit",
                "nofile=100:200",
                "--default-ulimit",
                "nproc=50",
                "--default-shm-size",
                "128m",
                "--cgroup-parent",
                "/ci",
                "--default-cgroupns-mode",
                "host",
            ],
            "{}",
        )
        .unwrap();
        assert_eq!(
            d.ulimits,
            vec![
                Ulimit {
                    name: "nofile".into(),
                    soft: 100,
                    hard: 200
                },
                Ulimit {
                    name: "nproc".into(),
                    soft: 50,
                    hard: 50
                }
            ]
        );
        assert_eq!(d.shm_size, 128 << 20);
        assert_eq!(d.cgroup_parent, "/ci");
        assert_eq!(d.cgroupns_mode, "host");

        let d = defaults(
            &[],
            r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 10, "Hard": 20}},
                "default-shm-size": "1G", "cgroup-parent": "ci", "default-cgroupns-mode": "private"}"#,
        )
        .unwrap();
        assert_eq!(d.ulimits[0].hard, 20);
        assert_eq!(d.shm_size, 1 << 30);
    }

    #[test]
    fn bad_values_are_refused() {
        for (args, json, want) in [
            (
                vec!["--default-ulimit", "nofile"],
                "{}",
                "invalid ulimit argument",
            ),
            (
                vec!["--default-ulimit", "files=1"],
                "{}",
                "invalid ulimit type: files",
            ),
            (vec!["--default-ulimit", "nofile=5:4"], "{}", "5 > 4"),
            (
                vec![],
                r#"{"default-shm-size": "lots"}"#,
                "invalid default-shm-size",
            ),
            (
                vec![],
                r#"{"default-shm-size": "0"}"#,
                "invalid default-shm-size",
            ),
            (vec![], r#"{"cgroup-parent": "a/../b"}"#, "\"..\""),
            (
                vec![],
                r#"{"default-cgroupns-mode": "shared"}"#,
                "is invalid",
            ),
            (vec![], r#"{"default-ulimits": []}"#, "expected an object"),
        ] {
            let e = defaults(&args, json).unwrap_err().0;
            assert!(e.contains(want), "{args:?} {json}: {e}");
        }
    }
}
