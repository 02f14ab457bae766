//! Resource settings of a HostConfig (`-m`, `--memory-swap`, `--cpus`,
//! `--pids-limit`, `--blkio-weight`, `--ulimit`, `--sysctl`, `--shm-size`,
//! `--oom-score-adj`, …): read and checked with Docker's rules and words, with the
//! warnings Docker gives when the host cannot apply a setting (which is then
//! dropped, as Docker drops it).

use std::os::unix::fs::MetadataExt;

use serde_json::{Map, Value};

use super::namespaces::IpcMode;
use super::settings::NetMode;
use crate::config::containers::RLIMITS;
use crate::engine::{Error, Result};
use crate::init::resources::Support;
use crate::init::spec::{DEFAULT_SHM_SIZE, Resources, Rlimit};

/// Docker's smallest memory limit and reservation.
const MIN_MEMORY: i64 = 6 << 20;

/// The HostConfig fields read here (all applied).
pub const FIELDS: &[&str] = &[
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "MemorySwappiness",
    "OomKillDisable",
    "KernelMemory",
    "KernelMemoryTCP",
    "NanoCpus",
    "CpuPeriod",
    "CpuQuota",
    "CpuShares",
    "CpusetCpus",
    "CpusetMems",
    "CpuPercent",
    "CpuCount",
    "PidsLimit",
    "BlkioWeight",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "OomScoreAdj",
    "ShmSize",
    "Ulimits",
    "Sysctls",
];

/// What a container's process gets beyond its cgroup limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub resources: Resources,
    pub oom_score_adj: i32,
    pub rlimits: Vec<Rlimit>,
    pub sysctls: Vec<(String, String)>,
    /// `/dev/shm`'s size in bytes.
    pub shm_size: u64,
}

fn int(hc: &Map<String, Value>, k: &str) -> Result<i64> {
    match hc.get(k) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| Error::invalid(format!("{k} must be an integer"))),
    }
}

fn text<'a>(hc: &'a Map<String, Value>, k: &str) -> &'a str {
    hc.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Reads the limits; `update` applies `docker update`'s rules (no memory-swap
/// without memory check, a non-positive PIDs limit is "unlimited"). What depends on
/// the host's CPUs and the daemon's own limits is checked by [`check_host`].
pub fn read(
    hc: &Map<String, Value>,
    support: &Support,
    net: &NetMode,
    ipc: &IpcMode,
    update: bool,
) -> Result<(Limits, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut r = Resources::default();
    let mut warn = |w: &str| warnings.push(w.to_string());

    // Memory.
    r.memory = int(hc, "Memory")?;
    r.memory_swap = int(hc, "MemorySwap")?;
    if r.memory != 0 && r.memory < MIN_MEMORY {
        return Err(Error::invalid("Minimum memory limit allowed is 6MB"));
    }
    if r.memory > 0 && !support.memory {
        warn(
            "Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.",
        );
        r.memory = 0;
        r.memory_swap = -1;
    }
    if r.memory > 0 && r.memory_swap != -1 && !support.swap {
        warn(
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.",
        );
        r.memory_swap = -1;
    }
    if r.memory > 0 && r.memory_swap > 0 && r.memory_swap < r.memory {
        return Err(Error::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if r.memory == 0 && r.memory_swap > 0 && !update {
        return Err(Error::invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    // As much swap as memory unless told otherwise, as Docker sets it at create.
    if r.memory > 0 && r.memory_swap == 0 && !update {
        r.memory_swap = 2 * r.memory;
    }
    r.memory_swappiness = match hc.get("MemorySwappiness").and_then(Value::as_i64) {
        None | Some(-1) => None,
        Some(_) if !support.swappiness => {
            warn(
                "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.",
            );
            None
        }
        Some(s) if !(0..=100).contains(&s) => {
            return Err(Error::invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
        s => s,
    };
    r.memory_reservation = int(hc, "MemoryReservation")?;
    if r.memory_reservation > 0 && !support.memory_reservation {
        warn(
            "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.",
        );
        r.memory_reservation = 0;
    }
    if r.memory_reservation > 0 && r.memory_reservation < MIN_MEMORY {
        return Err(Error::invalid("Minimum memory reservation allowed is 6MB"));
    }
    if r.memory > 0 && r.memory_reservation > 0 && r.memory < r.memory_reservation {
        return Err(Error::invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if int(hc, "KernelMemory")? > 0 || int(hc, "KernelMemoryTCP")? > 0 {
        warn(
            "Specifying a kernel memory limit is deprecated and will be removed in a future release.",
        );
        warn(
            "Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.",
        );
    }
    if hc.get("OomKillDisable").and_then(Value::as_bool) == Some(true) {
        if support.oom_kill_disable {
            r.oom_kill_disable = true;
        } else {
            warn("Your kernel does not support OomKillDisable. OomKillDisable discarded.");
        }
        if r.memory == 0 && r.oom_kill_disable {
            warn(
                "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.",
            );
        }
    }

    // PIDs.
    let pids = int(hc, "PidsLimit")?;
    r.pids_limit = match pids {
        0 => 0,
        n if n < 0 && !update => 0,
        n if n < 0 => -1,
        n => n,
    };
    if r.pids_limit != 0 && !support.pids {
        if r.pids_limit > 0 {
            warn(
                "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.",
            );
        }
        r.pids_limit = 0;
    }

    // CPU.
    let nano = int(hc, "NanoCpus")?;
    r.cpu_period = int(hc, "CpuPeriod")?;
    r.cpu_quota = int(hc, "CpuQuota")?;
    if nano > 0 && r.cpu_period > 0 {
        return Err(Error::invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if nano > 0 && r.cpu_quota > 0 {
        return Err(Error::invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if nano > 0 && !support.cpu_cfs {
        return Err(Error::invalid(
            "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted",
        ));
    }
    if nano < 0 {
        let ncpu = crate::engine::system::host_facts().ncpu;
        return Err(Error::invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    if nano > 0 {
        r.cpu_period = 100_000;
        r.cpu_quota = nano * 100_000 / 1_000_000_000;
    }
    r.cpu_shares = int(hc, "CpuShares")?;
    if r.cpu_shares > 0 && !support.cpu_shares {
        warn(
            "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
        );
        r.cpu_shares = 0;
    }
    if r.cpu_shares < 0 {
        return Err(Error::invalid(format!(
            "invalid CPU shares {}: must be 2 or more",
            r.cpu_shares
        )));
    }
    if (r.cpu_period != 0 || r.cpu_quota != 0) && !support.cpu_cfs {
        warn("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.");
        r.cpu_period = 0;
        r.cpu_quota = 0;
    }
    if r.cpu_period != 0 && !(1000..=1_000_000).contains(&r.cpu_period) {
        return Err(Error::invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if r.cpu_quota > 0 && r.cpu_quota < 1000 {
        return Err(Error::invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    if int(hc, "CpuPercent")? > 0 {
        warn("linux does not support CPU percent. Percent discarded.");
    }
    for (field, what) in [("CpusetCpus", "cpus"), ("CpusetMems", "mems")] {
        let v = text(hc, field);
        if v.is_empty() {
            continue;
        }
        if !support.cpuset {
            warn(
                "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.",
            );
            continue;
        }
        parse_list(v)
            .map_err(|e| Error::invalid(format!("Invalid value {v} for cpuset {what}: {e}")))?;
        if what == "cpus" {
            r.cpuset_cpus = v.to_string();
        } else {
            r.cpuset_mems = v.to_string();
        }
    }

    // Block I/O.
    let weight = int(hc, "BlkioWeight")?;
    if weight > 0 && !support.blkio_weight {
        warn(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
        );
    } else if weight > 0 {
        if !(10..=1000).contains(&weight) {
            return Err(Error::invalid("Range of blkio weight is from 10 to 1000"));
        }
        r.blkio_weight = weight as u16;
    }
    for (field, list, unsupported) in [
        (
            "BlkioDeviceReadBps",
            &mut r.device_read_bps,
            "Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded.",
        ),
        (
            "BlkioDeviceWriteBps",
            &mut r.device_write_bps,
            "Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded.",
        ),
        (
            "BlkioDeviceReadIOps",
            &mut r.device_read_iops,
            "Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded.",
        ),
        (
            "BlkioDeviceWriteIOps",
            &mut r.device_write_iops,
            "Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded.",
        ),
    ] {
        let Some(Value::Array(entries)) = hc.get(field) else {
            continue;
        };
        if entries.is_empty() {
            continue;
        }
        if !support.blkio_throttle {
            warn(unsupported);
            continue;
        }
        for e in entries {
            let path = e.get("Path").and_then(Value::as_str).unwrap_or("");
            let rate = e.get("Rate").and_then(Value::as_u64).unwrap_or(0);
            let meta = std::fs::metadata(path).map_err(|err| {
                Error::invalid(format!("error getting device info for {path:?}: {err}"))
            })?;
            let rdev = meta.rdev();
            list.push((libc::major(rdev) as u64, libc::minor(rdev) as u64, rate));
        }
    }

    // The process.
    let oom_score_adj = int(hc, "OomScoreAdj")?;
    if !(-1000..=1000).contains(&oom_score_adj) {
        return Err(Error::invalid(format!(
            "Invalid value {oom_score_adj}, range for oom score adj is [-1000, 1000]"
        )));
    }
    let shm = int(hc, "ShmSize")?;
    if shm < 0 {
        return Err(Error::invalid("SHM size can not be less than 0"));
    }
    let shm_size = if shm == 0 {
        DEFAULT_SHM_SIZE
    } else {
        shm as u64
    };
    let rlimits = read_ulimits(hc.get("Ulimits"))?;
    let sysctls = read_sysctls(hc.get("Sysctls"), net, ipc)?;

    Ok((
        Limits {
            resources: r,
            oom_score_adj: oom_score_adj as i32,
            rlimits,
            sysctls,
            shm_size,
        },
        warnings,
    ))
}

/// The checks that depend on this host and this daemon (made at create and update,
/// not when a container is loaded): the CPUs there are, the cpusets available, and
/// hard limits above the daemon's own, which only CAP_SYS_RESOURCE may raise.
pub fn check_host(hc: &Map<String, Value>, limits: &Limits, ncpu: usize) -> Result<()> {
    if int(hc, "NanoCpus")? > ncpu as i64 * 1_000_000_000 {
        return Err(Error::invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    let r = &limits.resources;
    for (v, file, noun) in [
        (&r.cpuset_cpus, "cpuset.cpus", "CPUs"),
        (&r.cpuset_mems, "cpuset.mems", "memory nodes"),
    ] {
        if v.is_empty() {
            continue;
        }
        if let Some(avail) = host_list(file)
            && let (Ok(have), Ok(wanted)) = (parse_list(&avail), parse_list(v))
            && !wanted.iter().all(|c| have.contains(c))
        {
            return Err(Error::invalid(format!(
                "Requested {noun} are not available - requested {v}, available: {avail}"
            )));
        }
    }
    check_rlimits(&limits.rlimits)
}

/// Hard limits above the daemon's own, which only CAP_SYS_RESOURCE may raise, are
/// refused with a clear error rather than failing in the container's setup.
pub fn check_rlimits(rlimits: &[Rlimit]) -> Result<()> {
    for l in rlimits {
        let mut own = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if unsafe { libc::getrlimit(l.resource as _, &mut own) } == 0
            && l.hard > own.rlim_max
            && !has_sys_resource()
        {
            let name = RLIMITS
                .iter()
                .find(|(_, r)| *r == l.resource)
                .map_or("?", |(n, _)| n);
            return Err(Error::invalid(format!(
                "ulimit {name}: hard limit {} is above the daemon's own hard limit {}, and raising it needs CAP_SYS_RESOURCE, which the daemon does not have",
                l.hard, own.rlim_max
            )));
        }
    }
    Ok(())
}

/// The root cpuset's CPUs or memory nodes (v1 `cpuset.cpus`, v2
/// `cpuset.cpus.effective`).
fn host_list(file: &str) -> Option<String> {
    for path in [
        format!("/sys/fs/cgroup/cpuset/{file}"),
        format!("/sys/fs/cgroup/{file}.effective"),
    ] {
        if let Ok(s) = std::fs::read_to_string(&path) {
            let s = s.trim().to_string();
            if !s.is_empty() {
                return Some(s);
            }
        }
    }
    None
}

/// `0-2,5` → [0, 1, 2, 5], with Docker's errors.
fn parse_list(v: &str) -> std::result::Result<Vec<u32>, String> {
    const MAX: u32 = 8192;
    let mut out = Vec::new();
    for part in v.split(',') {
        let bad = || format!("invalid format: {v}");
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                a.parse::<u32>().map_err(|_| bad())?,
                b.parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if hi < lo {
            return Err(bad());
        }
        if hi > MAX {
            return Err(format!("value of out range, maximum is {MAX}"));
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

/// `[{"Name":"nofile","Soft":100,"Hard":200}]`.
fn read_ulimits(v: Option<&Value>) -> Result<Vec<Rlimit>> {
    let Some(Value::Array(list)) = v else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for u in list {
        let name = u.get("Name").and_then(Value::as_str).unwrap_or("");
        let soft = u.get("Soft").and_then(Value::as_i64).unwrap_or(0);
        let hard = u.get("Hard").and_then(Value::as_i64).unwrap_or(0);
        let Some(&(_, resource)) = RLIMITS.iter().find(|(n, _)| *n == name) else {
            return Err(Error::invalid(format!(
                "wrong rlimit value: RLIMIT_{}",
                name.to_uppercase()
            )));
        };
        // -1 is unlimited, as the CLI writes it.
        let val = |n: i64| if n < 0 { libc::RLIM_INFINITY } else { n as u64 };
        let (soft, hard) = (val(soft), val(hard));
        if soft > hard {
            return Err(Error::invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        out.push(Rlimit {
            resource,
            soft,
            hard,
        });
    }
    Ok(out)
}

/// Whether this process holds CAP_SYS_RESOURCE (bit 24 of its effective set).
fn has_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// The IPC sysctls a container's own IPC namespace has.
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// `--sysctl`s: only those of a namespace the container has of its own, with
/// runc's words for the others.
fn read_sysctls(v: Option<&Value>, net: &NetMode, ipc: &IpcMode) -> Result<Vec<(String, String)>> {
    let Some(Value::Object(map)) = v else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (key, value) in map {
        let value = value.as_str().unwrap_or_default().to_string();
        if key.contains("..") || key.contains('/') {
            return Err(Error::invalid(format!("invalid sysctl name {key:?}")));
        }
        if IPC_SYSCTLS.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            if *ipc == IpcMode::Host {
                return Err(Error::invalid(format!(
                    "sysctl {key:?} is not allowed in the hosts ipc namespace"
                )));
            }
        } else if key.starts_with("net.") {
            if matches!(net, NetMode::Host | NetMode::Container(_)) {
                return Err(Error::invalid(format!(
                    "sysctl {key:?} not allowed in host network namespace"
                )));
            }
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            return Err(Error::invalid(format!(
                "sysctl {key:?} is not allowed as it conflicts with the OCI \"hostname\" field"
            )));
        } else {
            return Err(Error::invalid(format!(
                "sysctl {key:?} is not in a separate kernel namespace"
            )));
        }
        out.push((key.clone(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all() -> Support {
        Support {
            memory: true,
            swap: true,
            memory_reservation: true,
            swappiness: true,
            oom_kill_disable: true,
            kernel_memory: true,
            cpu_shares: true,
            cpu_cfs: true,
            cpuset: true,
            pids: true,
            blkio_weight: true,
            blkio_throttle: true,
            v2: false,
        }
    }

    fn read_json(v: Value, support: &Support) -> Result<(Limits, Vec<String>)> {
        let Value::Object(hc) = v else { unreachable!() };
        let (l, w) = read(&hc, support, &NetMode::Default, &IpcMode::Private, false)?;
        check_host(&hc, &l, 2)?;
        Ok((l, w))
    }

    fn error(v: Value) -> String {
        read_json(v, &all()).unwrap_err().to_string()
    }

    #[test]
    fn dockers_checks_and_words() {
        assert_eq!(
            error(json!({"Memory": 1024})),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(
            error(json!({"Memory": 64 << 20, "MemorySwap": 32 << 20})),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert_eq!(
            error(json!({"MemorySwap": 64 << 20})),
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        );
        assert_eq!(
            error(json!({"Memory": 64 << 20, "MemoryReservation": 128 << 20})),
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        );
        assert_eq!(
            error(json!({"NanoCpus": 100_000_000_000i64})),
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
        );
        assert_eq!(
            error(json!({"NanoCpus": 1_000_000_000, "CpuQuota": 5000})),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
        );
        assert_eq!(
            error(json!({"CpuPeriod": 10})),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        );
        assert_eq!(
            error(json!({"BlkioWeight": 5})),
            "Range of blkio weight is from 10 to 1000"
        );
        assert_eq!(
            error(json!({"OomScoreAdj": 2000})),
            "Invalid value 2000, range for oom score adj is [-1000, 1000]"
        );
        assert_eq!(
            error(json!({"ShmSize": -1})),
            "SHM size can not be less than 0"
        );
        assert_eq!(
            error(json!({"CpusetCpus": "abc"})),
            "Invalid value abc for cpuset cpus: invalid format: abc"
        );
        assert_eq!(
            error(json!({"Sysctls": {"kernel.foo": "1"}})),
            "sysctl \"kernel.foo\" is not in a separate kernel namespace"
        );
        assert_eq!(
            error(json!({"Ulimits": [{"Name": "foo", "Soft": 1, "Hard": 1}]})),
            "wrong rlimit value: RLIMIT_FOO"
        );
    }

    #[test]
    fn cpus_become_a_cfs_quota_and_unsupported_settings_warn() {
        let (l, w) = read_json(
            json!({"NanoCpus": 1_500_000_000, "PidsLimit": 100, "Memory": 64 << 20}),
            &all(),
        )
        .unwrap();
        assert_eq!(
            (l.resources.cpu_period, l.resources.cpu_quota),
            (100_000, 150_000)
        );
        assert_eq!(l.resources.pids_limit, 100);
        assert_eq!(l.shm_size, DEFAULT_SHM_SIZE);
        assert!(w.is_empty(), "{w:?}");
        let none = Support::default();
        let (l, w) = read_json(json!({"Memory": 64 << 20, "PidsLimit": 5}), &none).unwrap();
        assert_eq!(l.resources.memory, 0);
        assert_eq!(l.resources.pids_limit, 0);
        assert_eq!(w.len(), 2, "{w:?}");
        let (_, w) = read_json(json!({"KernelMemory": 64 << 20}), &all()).unwrap();
        assert!(w[0].starts_with("Specifying a kernel memory limit is deprecated"));
    }

    #[test]
    fn sysctls_need_a_namespace_of_the_containers_own() {
        let Value::Object(hc) = json!({"Sysctls": {"net.ipv4.ip_forward": "1"}}) else {
            unreachable!()
        };
        let e = read(&hc, &all(), &NetMode::Host, &IpcMode::Private, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"
        );
        let (l, _) = read(&hc, &all(), &NetMode::Default, &IpcMode::Private, false).unwrap();
        assert_eq!(l.sysctls, vec![("net.ipv4.ip_forward".into(), "1".into())]);
        let Value::Object(hc) = json!({"Sysctls": {"kernel.shmmax": "1"}}) else {
            unreachable!()
        };
        let e = read(&hc, &all(), &NetMode::Default, &IpcMode::Host, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sysctl \"kernel.shmmax\" is not allowed in the hosts ipc namespace"
        );
    }
}
