//! Cgroup limits (`-m`, `--cpus`, `--pids-limit`, …): written to the container's
//! cgroup by its monitor before the process starts, and again by the daemon for
//! `docker update`; and what the host supports, for Docker's warnings and `docker
//! info`.
//!
//! Each setting goes to the v1 hierarchy that has its controller, else to the v2
//! (unified) directory when that has the controller's files. The v2 values follow
//! runc's conversions: `cpu.weight = 1 + (shares - 2) × 9999 / 262142`,
//! `cpu.max = "quota period"`, `memory.swap.max = swap - memory`, `memory.low` for
//! the reservation, `io.weight = 1 + (weight - 10) × 9999 / 990` (or the raw weight
//! in `io.bfq.weight`), `io.max` for the device throttles. v1's swappiness and
//! oom-kill-disable have no v2 counterpart (the daemon warns and drops them).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::cgroup::{ContainerCgroup, Hierarchy, Kind};
use super::spec::Resources;
use crate::store::with_path;

/// Writes the limits `r` sets (the zero values are left alone).
pub fn apply(cg: &ContainerCgroup, r: &Resources) -> io::Result<()> {
    for (h, dir) in &cg.dirs {
        match &h.kind {
            Kind::V1 { controllers } => {
                let has = |c: &str| controllers.iter().any(|x| x == c);
                if has("memory") {
                    v1_memory(dir, r)?;
                }
                if has("cpu") {
                    v1_cpu(dir, r)?;
                }
                if has("cpuset") {
                    cpuset(dir, r)?;
                }
                if has("pids") && r.pids_limit != 0 {
                    write(&dir.join("pids.max"), &pids(r.pids_limit))?;
                }
                if has("blkio") {
                    v1_blkio(dir, r)?;
                }
            }
            Kind::V2 => v2(dir, r)?,
        }
    }
    Ok(())
}

fn pids(limit: i64) -> String {
    if limit < 0 {
        "max".into()
    } else {
        limit.to_string()
    }
}

fn v1_memory(dir: &Path, r: &Resources) -> io::Result<()> {
    let limit = dir.join("memory.limit_in_bytes");
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let swap = r.memory_swap != 0 && memsw.exists();
    if r.memory != 0 && swap {
        // The kernel keeps memory ≤ memory+swap at every step: raise the larger
        // one first.
        let current: i64 = fs::read_to_string(&memsw)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(i64::MAX);
        if r.memory_swap == -1 || current < r.memory_swap {
            write(&memsw, &r.memory_swap.to_string())?;
            write_memory_limit(&limit, r.memory)?;
        } else {
            write_memory_limit(&limit, r.memory)?;
            write(&memsw, &r.memory_swap.to_string())?;
        }
    } else if r.memory != 0 {
        write_memory_limit(&limit, r.memory)?;
    } else if swap {
        write(&memsw, &r.memory_swap.to_string())?;
    }
    if r.memory_reservation != 0 {
        write(
            &dir.join("memory.soft_limit_in_bytes"),
            &r.memory_reservation.to_string(),
        )?;
    }
    if let Some(s) = r.memory_swappiness {
        write(&dir.join("memory.swappiness"), &s.to_string())?;
    }
    if r.oom_kill_disable {
        write(&dir.join("memory.oom_control"), "1")?;
    }
    Ok(())
}

/// A limit below what the container uses already is refused by the kernel (EBUSY).
fn write_memory_limit(file: &Path, bytes: i64) -> io::Result<()> {
    match fs::write(file, bytes.to_string()) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let read = |name: &str| {
                fs::read_to_string(file.with_file_name(name))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default()
            };
            Err(io::Error::other(format!(
                "unable to set memory limit to {bytes} (current usage: {}, peak usage: {})",
                read("memory.usage_in_bytes"),
                read("memory.max_usage_in_bytes")
            )))
        }
        other => other.map_err(|e| with_path(e, &format!("write {bytes:?} to"), file)),
    }
}

fn v1_cpu(dir: &Path, r: &Resources) -> io::Result<()> {
    if r.cpu_shares != 0 {
        let file = dir.join("cpu.shares");
        write(&file, &r.cpu_shares.to_string())?;
        // The kernel clamps what it cannot take; say so as runc does.
        let got: i64 = fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(r.cpu_shares);
        if got != r.cpu_shares {
            let which = if r.cpu_shares > got {
                "maximum"
            } else {
                "minimum"
            };
            return Err(io::Error::other(format!(
                "the {which} allowed cpu-shares is {got}"
            )));
        }
    }
    let period = dir.join("cpu.cfs_period_us");
    let quota = dir.join("cpu.cfs_quota_us");
    let mut period_pending = false;
    if r.cpu_period != 0 {
        // A period below the current quota's needs the quota first.
        if fs::write(&period, r.cpu_period.to_string()).is_err() {
            period_pending = true;
        }
    }
    if r.cpu_quota != 0 {
        write(&quota, &r.cpu_quota.to_string())?;
    }
    if period_pending {
        write(&period, &r.cpu_period.to_string())?;
    }
    Ok(())
}

fn cpuset(dir: &Path, r: &Resources) -> io::Result<()> {
    if !r.cpuset_cpus.is_empty() {
        write(&dir.join("cpuset.cpus"), &r.cpuset_cpus)?;
    }
    if !r.cpuset_mems.is_empty() {
        write(&dir.join("cpuset.mems"), &r.cpuset_mems)?;
    }
    Ok(())
}

fn v1_blkio(dir: &Path, r: &Resources) -> io::Result<()> {
    if r.blkio_weight != 0 {
        let plain = dir.join("blkio.weight");
        let file = if plain.exists() {
            plain
        } else {
            dir.join("blkio.bfq.weight")
        };
        write(&file, &r.blkio_weight.to_string())?;
    }
    for (name, list) in [
        ("blkio.throttle.read_bps_device", &r.device_read_bps),
        ("blkio.throttle.write_bps_device", &r.device_write_bps),
        ("blkio.throttle.read_iops_device", &r.device_read_iops),
        ("blkio.throttle.write_iops_device", &r.device_write_iops),
    ] {
        for (major, minor, rate) in list {
            write(&dir.join(name), &format!("{major}:{minor} {rate}"))?;
        }
    }
    Ok(())
}

fn v2(dir: &Path, r: &Resources) -> io::Result<()> {
    let has = |file: &str| dir.join(file).exists();
    if has("memory.max") {
        if r.memory_swap != 0 && has("memory.swap.max") {
            let swap = if r.memory_swap < 0 {
                "max".to_string()
            } else if r.memory > 0 {
                (r.memory_swap - r.memory).max(0).to_string()
            } else {
                return Err(io::Error::other(
                    "unable to set swap limit without memory limit",
                ));
            };
            write(&dir.join("memory.swap.max"), &swap)?;
        }
        if r.memory != 0 {
            let v = if r.memory < 0 {
                "max".to_string()
            } else {
                r.memory.to_string()
            };
            match fs::write(dir.join("memory.max"), &v) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return Err(io::Error::other(format!(
                        "unable to set memory limit to {v}: the container uses more"
                    )));
                }
                other => {
                    other.map_err(|e| with_path(e, &format!("write {v:?} to"), dir))?;
                }
            }
        }
        if r.memory_reservation != 0 {
            write(&dir.join("memory.low"), &r.memory_reservation.to_string())?;
        }
    }
    if has("cpu.weight") {
        if r.cpu_shares != 0 {
            write(
                &dir.join("cpu.weight"),
                &cpu_weight(r.cpu_shares).to_string(),
            )?;
        }
        if r.cpu_quota != 0 || r.cpu_period != 0 {
            let quota = if r.cpu_quota > 0 {
                r.cpu_quota.to_string()
            } else {
                "max".to_string()
            };
            let period = if r.cpu_period != 0 {
                r.cpu_period
            } else {
                100_000
            };
            write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
        }
    }
    if has("cpuset.cpus") {
        cpuset(dir, r)?;
    }
    if has("pids.max") && r.pids_limit != 0 {
        write(&dir.join("pids.max"), &pids(r.pids_limit))?;
    }
    if r.blkio_weight != 0 {
        if has("io.bfq.weight") {
            write(&dir.join("io.bfq.weight"), &r.blkio_weight.to_string())?;
        } else if has("io.weight") {
            write(
                &dir.join("io.weight"),
                &io_weight(r.blkio_weight).to_string(),
            )?;
        }
    }
    if has("io.max") {
        for (key, list) in [
            ("rbps", &r.device_read_bps),
            ("wbps", &r.device_write_bps),
            ("riops", &r.device_read_iops),
            ("wiops", &r.device_write_iops),
        ] {
            for (major, minor, rate) in list {
                write(
                    &dir.join("io.max"),
                    &format!("{major}:{minor} {key}={rate}"),
                )?;
            }
        }
    }
    Ok(())
}

/// runc's conversion of v1 CPU shares (2–262144) to a v2 weight (1–10000).
pub fn cpu_weight(shares: i64) -> i64 {
    1 + ((shares - 2) * 9999) / 262142
}

/// runc's conversion of a v1 block I/O weight (10–1000) to a v2 `io.weight`.
pub fn io_weight(weight: u16) -> u64 {
    1 + (weight as u64 - 10) * 9999 / 990
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| with_path(e, &format!("write {value:?} to"), path))
}

/// What the host's cgroups can limit, as Docker's `sysinfo` finds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Support {
    pub memory: bool,
    pub swap: bool,
    pub memory_reservation: bool,
    pub swappiness: bool,
    pub oom_kill_disable: bool,
    pub kernel_memory: bool,
    pub cpu_shares: bool,
    pub cpu_cfs: bool,
    pub cpuset: bool,
    pub pids: bool,
    pub blkio_weight: bool,
    pub blkio_throttle: bool,
    /// The host is cgroup v2 only.
    pub v2: bool,
}

impl Support {
    /// Reads the hierarchies' root directories.
    pub fn detect(hierarchies: &[Hierarchy]) -> Support {
        let mut s = Support::default();
        let v1 = |c: &str| {
            hierarchies.iter().find_map(|h| match &h.kind {
                Kind::V1 { controllers } if controllers.iter().any(|x| x == c) => {
                    Some(h.mount_point.clone())
                }
                _ => None,
            })
        };
        let at =
            |root: &Option<PathBuf>, f: &str| root.as_ref().is_some_and(|r| r.join(f).exists());
        let memory = v1("memory");
        let cpu = v1("cpu");
        let blkio = v1("blkio");
        s.memory = memory.is_some();
        s.swap = at(&memory, "memory.memsw.limit_in_bytes");
        s.memory_reservation = at(&memory, "memory.soft_limit_in_bytes");
        s.swappiness = at(&memory, "memory.swappiness");
        s.oom_kill_disable = at(&memory, "memory.oom_control");
        s.kernel_memory = at(&memory, "memory.kmem.limit_in_bytes");
        s.cpu_shares = at(&cpu, "cpu.shares");
        s.cpu_cfs = at(&cpu, "cpu.cfs_quota_us");
        s.cpuset = v1("cpuset").is_some();
        s.pids = v1("pids").is_some();
        s.blkio_weight = at(&blkio, "blkio.weight") || at(&blkio, "blkio.bfq.weight");
        s.blkio_throttle = at(&blkio, "blkio.throttle.read_bps_device");
        let only_v2 = hierarchies.iter().all(|h| h.kind == Kind::V2);
        if let Some(unified) = hierarchies.iter().find(|h| h.kind == Kind::V2) {
            s.v2 = only_v2;
            let controllers = fs::read_to_string(unified.mount_point.join("cgroup.controllers"))
                .unwrap_or_default();
            let on = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if on("memory") && !s.memory {
                s.memory = true;
                s.memory_reservation = true;
                // Swap accounting shows as memory.swap.* files on the children.
                s.swap = swap_accounting(&unified.mount_point);
            }
            if on("cpu") && !s.cpu_shares {
                s.cpu_shares = true;
                s.cpu_cfs = true;
            }
            if on("cpuset") {
                s.cpuset = true;
            }
            if on("pids") {
                s.pids = true;
            }
            if on("io") && !s.blkio_weight {
                s.blkio_weight = true;
                s.blkio_throttle = true;
            }
        }
        s
    }
}

/// What this host supports, found once.
pub fn host_support() -> Support {
    static SUPPORT: std::sync::OnceLock<Support> = std::sync::OnceLock::new();
    *SUPPORT.get_or_init(|| {
        super::cgroup::detect()
            .map(|h| Support::detect(&h))
            .unwrap_or_default()
    })
}

/// Whether any v2 cgroup under `root` has `memory.swap.max` (swap accounting is on).
fn swap_accounting(root: &Path) -> bool {
    let Ok(entries) = fs::read_dir(root) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| e.path().join("memory.swap.max").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_conversions_are_runcs() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262144), 10000);
        assert_eq!(io_weight(10), 1);
        assert_eq!(io_weight(500), 4950);
        assert_eq!(io_weight(1000), 10000);
    }

    #[test]
    fn limits_land_in_v1_and_v2_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mem = tmp.path().join("memory");
        let cpu = tmp.path().join("cpu");
        let unified = tmp.path().join("unified");
        for d in [&mem, &cpu, &unified] {
            fs::create_dir_all(d).unwrap();
        }
        for f in ["memory.limit_in_bytes", "memory.soft_limit_in_bytes"] {
            fs::write(mem.join(f), "9223372036854771712").unwrap();
        }
        for f in ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"] {
            fs::write(cpu.join(f), "").unwrap();
        }
        for f in [
            "memory.max",
            "memory.low",
            "cpu.weight",
            "cpu.max",
            "pids.max",
        ] {
            fs::write(unified.join(f), "").unwrap();
        }
        let v1 = |c: &str| Hierarchy {
            mount_point: tmp.path().join(c),
            kind: Kind::V1 {
                controllers: vec![c.to_string()],
            },
        };
        let cg = ContainerCgroup {
            dirs: vec![
                (v1("memory"), mem.clone()),
                (v1("cpu"), cpu.clone()),
                (
                    Hierarchy {
                        mount_point: unified.clone(),
                        kind: Kind::V2,
                    },
                    unified.clone(),
                ),
            ],
        };
        let r = Resources {
            memory: 64 << 20,
            memory_reservation: 32 << 20,
            cpu_shares: 512,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            pids_limit: 100,
            ..Resources::default()
        };
        apply(&cg, &r).unwrap();
        let read = |p: PathBuf| fs::read_to_string(p).unwrap();
        assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(mem.join("memory.soft_limit_in_bytes")), "33554432");
        assert_eq!(read(cpu.join("cpu.shares")), "512");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(unified.join("memory.max")), "67108864");
        assert_eq!(read(unified.join("memory.low")), "33554432");
        assert_eq!(read(unified.join("cpu.weight")), "20");
        assert_eq!(read(unified.join("cpu.max")), "50000 100000");
        assert_eq!(read(unified.join("pids.max")), "100");
    }
}
