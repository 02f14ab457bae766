//! What `docker version` and `docker info` report: facts about this daemon and the
//! host it runs on, gathered from the kernel, never made up.

use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::Engine;
use crate::config::{BUILTIN_RUNTIME, LOG_DRIVERS};
use crate::version::{API_VERSION, GIT_COMMIT, MIN_API_VERSION, VERSION};

/// Facts about the host that do not change while the daemon runs.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub kernel_version: String,
    pub operating_system: String,
    pub os_version: String,
    /// `uname -m`, as Docker reports it (`x86_64`).
    pub architecture: String,
    /// Go's GOARCH spelling (`amd64`), used by `/version` and image configs.
    pub goarch: &'static str,
    pub ncpu: usize,
    pub mem_total: u64,
    pub cgroup_version: &'static str,
}

/// The host facts, read once.
pub fn host_facts() -> &'static HostFacts {
    static FACTS: OnceLock<HostFacts> = OnceLock::new();
    FACTS.get_or_init(|| {
        let uts = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let os_field = |k: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(|v| v.trim_matches('"').to_string())
        };
        HostFacts {
            kernel_version: field(|u| u.release()),
            operating_system: os_field("PRETTY_NAME").unwrap_or_else(|| "Linux".to_string()),
            os_version: os_field("VERSION_ID").unwrap_or_default(),
            architecture: field(|u| u.machine()),
            goarch: goarch(),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            mem_total: mem_total(),
            cgroup_version: if is_cgroup2_unified() { "2" } else { "1" },
        }
    })
}

/// GOARCH of the machine this binary was built for.
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

fn mem_total() -> u64 {
    nix::sys::sysinfo::sysinfo()
        .map(|i| i.ram_total())
        .unwrap_or(0)
}

/// True when /sys/fs/cgroup is the unified (v2-only) hierarchy. Hybrid hosts, with
/// v1 controllers and a v2 tree under /sys/fs/cgroup/unified, count as v1, as Docker does.
pub fn is_cgroup2_unified() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Name of the filesystem holding `path`, as Docker's "Backing Filesystem".
pub fn backing_filesystem(path: &Path) -> &'static str {
    use nix::sys::statfs::*;
    let Ok(s) = statfs(path) else {
        return "unknown";
    };
    let t = s.filesystem_type();
    if t == EXT4_SUPER_MAGIC {
        "extfs"
    } else if t == TMPFS_MAGIC {
        "tmpfs"
    } else if t == BTRFS_SUPER_MAGIC {
        "btrfs"
    } else if t == XFS_SUPER_MAGIC {
        "xfs"
    } else if t == OVERLAYFS_SUPER_MAGIC {
        "overlayfs"
    } else {
        "unknown"
    }
}

/// Counts reported by `docker info` and `docker system df`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub containers: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
    pub images: usize,
}

impl Engine {
    /// `GET /version`.
    pub fn version(&self) -> Value {
        let h = host_facts();
        let details = json!({
            "ApiVersion": API_VERSION.to_string(),
            "Arch": h.goarch,
            "BuildTime": "",
            "Experimental": "false",
            "GitCommit": GIT_COMMIT,
            "GoVersion": "",
            "KernelVersion": h.kernel_version,
            "MinAPIVersion": MIN_API_VERSION.to_string(),
            "Os": "linux",
        });
        json!({
            "Platform": { "Name": "dockerd, systemd-native" },
            "Components": [ { "Name": "Engine", "Version": VERSION, "Details": details } ],
            "Version": VERSION,
            "ApiVersion": API_VERSION.to_string(),
            "MinAPIVersion": MIN_API_VERSION.to_string(),
            "GitCommit": GIT_COMMIT,
            "GoVersion": "",
            "Os": "linux",
            "Arch": h.goarch,
            "KernelVersion": h.kernel_version,
            "BuildTime": "",
        })
    }

    /// `GET /info`.
    pub fn info(&self) -> Value {
        let h = host_facts();
        let config = self.config();
        let counts = self.counts();
        let mut runtimes = serde_json::Map::new();
        for name in std::iter::once(&BUILTIN_RUNTIME).chain(crate::config::BUILTIN_RUNTIME_ALIASES)
        {
            runtimes.insert(
                name.to_string(),
                json!({ "path": "/proc/self/exe", "runtimeArgs": ["init"] }),
            );
        }
        for (name, rt) in &config.runtimes {
            runtimes.insert(
                name.clone(),
                serde_json::to_value(rt).unwrap_or(Value::Null),
            );
        }
        let support = crate::init::resources::host_support();
        let mut warnings = Vec::new();
        for (ok, what) in [
            (support.memory, "memory limit"),
            (support.swap, "swap limit"),
            (support.cpu_cfs, "cpu cfs quota"),
            (support.cpu_cfs, "cpu cfs period"),
            (support.cpu_shares, "cpu shares"),
            (support.cpuset, "cpuset"),
        ] {
            if !ok {
                warnings.push(format!("WARNING: No {what} support"));
            }
        }
        for host in &config.hosts {
            if let crate::config::Host::Tcp { .. } = host {
                let bare = host.to_string();
                let bare = bare.trim_start_matches("tcp://");
                match &config.tls {
                    None => warnings.push(format!(
                        "WARNING: API is accessible on http://{bare} without encryption."
                    )),
                    Some(t) if !t.verify => warnings.push(format!(
                        "WARNING: API is accessible on https://{bare} without TLS client verification."
                    )),
                    Some(_) => {}
                }
            }
        }
        if self.security.seccomp_available() && config.containers.seccomp_profile != "builtin" {
            warnings.push("WARNING: daemon is not using the default seccomp profile".to_string());
        }
        if crate::net::sysctl("net/ipv4/ip_forward").is_ok_and(|v| v != "1") {
            warnings.push("WARNING: IPv4 forwarding is disabled".to_string());
        }
        if crate::net::sysctl("net/bridge/bridge-nf-call-iptables").is_ok_and(|v| v != "1") {
            warnings.push("WARNING: bridge-nf-call-iptables is disabled".to_string());
        }
        if crate::net::sysctl("net/bridge/bridge-nf-call-ip6tables").is_ok_and(|v| v != "1") {
            warnings.push("WARNING: bridge-nf-call-ip6tables is disabled".to_string());
        }
        let driver = self.storage_driver();
        json!({
            "ID": self.id,
            "Containers": counts.containers,
            "ContainersRunning": counts.running,
            "ContainersPaused": counts.paused,
            "ContainersStopped": counts.stopped,
            "Images": counts.images,
            "Driver": driver,
            "DriverStatus": [
                ["Backing Filesystem", backing_filesystem(self.data_root())],
                ["Supports d_type", "true"],
            ],
            "DockerRootDir": self.data_root().display().to_string(),
            "Plugins": {
                "Volume": [],
                "Network": self.network_drivers(),
                "Authorization": null,
                "Log": LOG_DRIVERS,
            },
            // What this host's cgroups can limit (kernel memory limits are never
            // applied, as with Docker's runc).
            "MemoryLimit": support.memory,
            "SwapLimit": support.swap,
            "KernelMemoryTCP": false,
            "CpuCfsPeriod": support.cpu_cfs,
            "CpuCfsQuota": support.cpu_cfs,
            "CPUShares": support.cpu_shares,
            "CPUSet": support.cpuset,
            "PidsLimit": support.pids,
            "IPv4Forwarding": std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|s| s.trim() == "1").unwrap_or(false),
            "OomKillDisable": support.oom_kill_disable,
            "Debug": config.debug,
            "NFd": count_dir("/proc/self/fd"),
            "NGoroutines": count_dir("/proc/self/task"),
            "SystemTime": crate::timefmt::rfc3339_nano(SystemTime::now()),
            "LoggingDriver": config.log_driver,
            "CgroupDriver": config.containers.cgroup_driver.name(),
            "CgroupVersion": h.cgroup_version,
            "NEventsListener": self.events.listeners(),
            "KernelVersion": h.kernel_version,
            "OperatingSystem": h.operating_system,
            "OSVersion": h.os_version,
            "OSType": "linux",
            "Architecture": h.architecture,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": super::registry::info(&config.registry),
            "NCPU": h.ncpu,
            "MemTotal": h.mem_total,
            "GenericResources": null,
            "HttpProxy": super::registry::masked_proxy(config.registry.http_proxy.as_deref()),
            "HttpsProxy": super::registry::masked_proxy(config.registry.https_proxy.as_deref()),
            "NoProxy": config.registry.no_proxy.clone().unwrap_or_default(),
            "Name": self.name,
            "Labels": config.labels,
            "ExperimentalBuild": false,
            "ServerVersion": VERSION,
            "Runtimes": runtimes,
            "DefaultRuntime": config.default_runtime,
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": false,
                "Error": "",
                "RemoteManagers": null
            },
            "LiveRestoreEnabled": config.live_restore,
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": { "ID": "" },
            "RuncCommit": { "ID": "" },
            "InitCommit": { "ID": "" },
            "SecurityOptions": self.security_options(),
            "CDISpecDirs": [],
            "Warnings": warnings,
        })
    }
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}
