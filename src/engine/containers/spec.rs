//! Turning a container's record into the monitor's [`ContainerSpec`]: the command and
//! environment as Docker composes them, capabilities, masked paths, the
//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` the daemon writes, and mounts.

use std::path::{Path, PathBuf};

use crate::config::containers::{CgroupDriver, RLIMITS};
use crate::engine::{Error, Result};
use crate::init::spec::{ContainerSpec, LogSpec, Mount, Rlimit, Shm};

use super::Record;
use super::settings::NetMode;

/// Every Linux capability, by number (`CAP_CHOWN` is 0).
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN` → `CAP_NET_ADMIN`; `ALL` stays `ALL`.
pub fn normalize_capability(name: &str) -> Result<String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::invalid(format!("unknown capability: \"{full}\"")))
    }
}

/// The capabilities this daemon itself may hand out (its bounding set): a container
/// cannot get more than the daemon has.
fn daemon_bounding_set() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX);
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// Docker's rules: privileged gets everything; otherwise the defaults, minus CapDrop
/// (`ALL` drops every default), plus CapAdd (`ALL` adds everything).
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Result<Vec<String>> {
    let available = daemon_bounding_set();
    if privileged {
        return Ok(available.iter().map(|c| c.to_string()).collect());
    }
    let add: Vec<String> = add
        .iter()
        .map(|c| normalize_capability(c))
        .collect::<Result<_>>()?;
    let drop: Vec<String> = drop
        .iter()
        .map(|c| normalize_capability(c))
        .collect::<Result<_>>()?;
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        crate::runtime::defaults::default_capabilities()
            .into_iter()
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if add.iter().any(|c| c == "ALL") {
        caps = available.iter().map(|c| c.to_string()).collect();
    } else {
        for c in add {
            if !available.contains(&c.as_str()) {
                return Err(Error::invalid(format!(
                    "capability {c} cannot be granted: this daemon does not hold it itself"
                )));
            }
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    caps.retain(|c| available.contains(&c.as_str()));
    Ok(caps)
}

/// Docker's default `PATH` for containers whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process environment: Docker's PATH, HOSTNAME and (with a TTY) TERM, then the
/// container's own variables, later ones replacing earlier ones by name.
pub fn process_env(hostname: &str, tty: bool, env: &[String]) -> Vec<String> {
    let mut out = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        out.push("TERM=xterm".to_string());
    }
    merge_env(&mut out, env);
    out
}

/// Replaces or appends `KEY=value` entries (a bare `KEY` replaces too).
pub fn merge_env(base: &mut Vec<String>, overrides: &[String]) {
    for e in overrides {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        match base
            .iter_mut()
            .find(|b| b.split_once('=').map_or(b.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = e.clone(),
            None => base.push(e.clone()),
        }
    }
}

/// The container's sysctls: for a network namespace of its own, Docker's defaults
/// (any user may ping and bind any port there, where the kernel has the keys),
/// then the user's.
fn sysctls(s: &super::settings::HostSettings) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if matches!(
        s.network_mode,
        NetMode::Default | NetMode::Network(_) | NetMode::None
    ) {
        for (key, value) in [
            ("net.ipv4.ping_group_range", "0 2147483647"),
            ("net.ipv4.ip_unprivileged_port_start", "0"),
        ] {
            let given = s.limits.sysctls.iter().any(|(k, _)| k == key);
            let exists = Path::new("/proc/sys").join(key.replace('.', "/")).exists();
            if !given && exists {
                out.push((key.to_string(), value.to_string()));
            }
        }
    }
    out.extend(s.limits.sysctls.iter().cloned());
    out
}

/// The container's cgroup, relative to each hierarchy's root. With cgroupfs:
/// `<parent>/<id>`, the parent its `--cgroup-parent`, else the daemon's
/// `cgroup-parent`, else `docker`, as Docker's cgroupfs driver places it. With
/// systemd: the scope `docker-<id>.scope` in that slice (default `system.slice`),
/// at the slice's path (`a-b.slice` is `a.slice/a-b.slice`).
pub fn cgroup_path(
    s: &super::settings::HostSettings,
    id: &str,
    daemon_parent: &str,
    driver: CgroupDriver,
) -> Result<String> {
    let own = s.cgroup_parent.trim_matches('/');
    let parent = if own.is_empty() {
        daemon_parent.trim_matches('/')
    } else {
        own
    };
    Ok(match driver {
        CgroupDriver::Cgroupfs if parent.is_empty() => format!("docker/{id}"),
        CgroupDriver::Cgroupfs => format!("{parent}/{id}"),
        CgroupDriver::Systemd => {
            let slice = if parent.is_empty() {
                "system.slice"
            } else {
                crate::config::containers::check_slice(parent).map_err(Error::invalid)?;
                parent
            };
            let dir = crate::systemd::units::expand_slice(slice)
                .map_err(|e| Error::invalid(e.to_string()))?;
            let scope = crate::systemd::units::scope_name(id);
            match dir.trim_matches('/') {
                "" => scope,
                dir => format!("{dir}/{scope}"),
            }
        }
    })
}

/// The container's ulimits: its own, then the daemon's `default-ulimits` it does
/// not name, checked against the daemon's own hard limits.
pub fn rlimits(
    s: &super::settings::HostSettings,
    defaults: &crate::config::ContainerDefaults,
) -> Result<Vec<Rlimit>> {
    let mut out = s.limits.rlimits.clone();
    let mut added = Vec::new();
    for u in &defaults.ulimits {
        let Some(&(_, resource)) = RLIMITS.iter().find(|(n, _)| *n == u.name) else {
            continue;
        };
        if out.iter().any(|l| l.resource == resource) {
            continue;
        }
        let val = |n: i64| if n < 0 { libc::RLIM_INFINITY } else { n as u64 };
        added.push(Rlimit {
            resource,
            soft: val(u.soft),
            hard: val(u.hard),
        });
    }
    super::resources::check_rlimits(&added)?;
    out.extend(added);
    Ok(out)
}

/// Builds the monitor's spec from the record, the mounted root and the container's
/// own mounts (binds, volumes, tmpfs). The runtime fills in the initial attach
/// streams.
pub fn build(
    r: &Record,
    defaults: &crate::config::ContainerDefaults,
    rootfs: PathBuf,
    volume_mounts: Vec<Mount>,
    state_dir: PathBuf,
    net: &crate::engine::network::attach::Setup,
    namespaces: super::namespaces::Setup,
) -> Result<ContainerSpec> {
    let c = &r.container;
    let s = &r.settings;
    let mut args = vec![c.path.clone()];
    args.extend(c.args.iter().cloned());
    let mut mounts = Vec::new();
    for (path, dest) in net
        .etc
        .iter()
        .zip(["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"])
    {
        // A mount of the user's own at that path replaces the daemon's file.
        if volume_mounts.iter().any(|m| m.destination == dest) {
            continue;
        }
        mounts.push(Mount {
            source: path.clone(),
            destination: dest.to_string(),
            readonly: s.readonly_rootfs,
            ..Default::default()
        });
    }
    mounts.extend(volume_mounts);
    // Parents before children (`/data` before `/data/cache`), as Docker orders them.
    mounts.sort_by_key(|m| m.destination.split('/').filter(|c| !c.is_empty()).count());
    let (masked_paths, readonly_paths) = if s.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            crate::runtime::defaults::default_masked_paths(),
            crate::runtime::defaults::default_readonly_paths(),
        )
    };
    let (hostname, domainname) = net
        .hostname
        .clone()
        .unwrap_or_else(|| (c.config.hostname.clone(), c.config.domainname.clone()));
    let max_size = s
        .log_opts
        .get("max-size")
        .and_then(|v| crate::config::parse_size(v));
    let max_file = s
        .log_opts
        .get("max-file")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let (devices, device_rules) = super::devices::resolve(&s.devices, &s.device_cgroup_rules)?;
    Ok(ContainerSpec {
        id: c.id.clone(),
        rootfs,
        readonly_rootfs: s.readonly_rootfs,
        args,
        env: {
            let mut env = process_env(&hostname, c.config.tty, &net.link_env);
            merge_env(&mut env, &c.config.env);
            env
        },
        cwd: if c.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            c.config.working_dir.clone()
        },
        user: c.config.user.clone(),
        hostname,
        domainname,
        tty: c.config.tty,
        open_stdin: c.config.open_stdin,
        stdin_once: c.config.stdin_once,
        console_size: s.console_size,
        network: net.mode.clone(),
        pid: namespaces.pid,
        ipc: namespaces.ipc,
        uts: namespaces.uts,
        shm: match namespaces.shm {
            Shm::Private(_) => Shm::Private(s.limits.shm_size),
            other => other,
        },
        privileged: s.privileged,
        capabilities: capabilities(s.privileged, &s.cap_add, &s.cap_drop)?,
        masked_paths,
        readonly_paths,
        mounts,
        init: s.init,
        cgroup_path: cgroup_path(s, &c.id, &defaults.cgroup_parent, defaults.cgroup_driver)?,
        systemd_scope: defaults.cgroup_driver == CgroupDriver::Systemd,
        log: LogSpec {
            driver: s.log_driver.clone(),
            path: PathBuf::from(&c.log_path),
            max_size,
            max_file,
            journal_fields: if s.log_driver == "journald" {
                super::journald::fields(c, &s.log_opts)?
            } else {
                Vec::new()
            },
        },
        state_dir,
        initial_attach: Vec::new(),
        exec_in: None,
        resources: s.limits.resources.clone(),
        oom_score_adj: s.limits.oom_score_adj,
        rlimits: rlimits(s, defaults)?,
        group_add: s.group_add.clone(),
        sysctls: sysctls(s),
        devices,
        device_rules,
        cgroupns_host: s.cgroupns_host,
        // Filled in by `Security::confine`.
        seccomp: None,
        no_new_privileges: false,
        apparmor_profile: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names() {
        assert_eq!(normalize_capability("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert_eq!(normalize_capability("CAP_KILL").unwrap(), "CAP_KILL");
        assert!(normalize_capability("CAP_FLY").is_err());
    }

    #[test]
    fn env_composition_follows_docker() {
        let env = process_env("abc", true, &["PATH=/bin".into(), "A=1".into()]);
        assert_eq!(env, vec!["PATH=/bin", "HOSTNAME=abc", "TERM=xterm", "A=1"]);
    }

    #[test]
    fn drop_all_then_add() {
        let caps = capabilities(false, &["NET_ADMIN".into()], &["ALL".into()]).unwrap();
        assert_eq!(caps, vec!["CAP_NET_ADMIN"]);
    }
}
