//! The systemd cgroup driver's part of a start: the container's cgroup is a transient
//! `docker-<id>.scope` unit below its slice, which systemd creates around the
//! container's first process once the monitor has cloned it (the monitor waits, see
//! `SyncMessage::Created`). The limits go to systemd as unit properties, so that
//! `systemctl status` shows them and systemd keeps them on a daemon-reload; the
//! monitor writes the same values to the cgroup's files, as with cgroupfs.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::init::spec::{ContainerSpec, Resources};
use crate::systemd::units::{self, Manager, Property};

/// The connection to systemd, made on first use and made again after a failure.
#[derive(Default, Clone)]
pub struct Scopes {
    manager: Arc<Mutex<Option<Manager>>>,
}

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scopes")
    }
}

/// A scope's unit and slice from the container's cgroup path
/// (`system.slice/docker-<id>.scope` → `docker-<id>.scope` in `system.slice`).
pub fn unit_and_slice(cgroup_path: &str) -> (String, String) {
    let path = cgroup_path.trim_matches('/');
    let (parent, unit) = path.rsplit_once('/').unwrap_or(("", path));
    let slice = parent.rsplit('/').next().unwrap_or("");
    let slice = if slice.is_empty() { "-.slice" } else { slice };
    (unit.to_string(), slice.to_string())
}

/// The limits as systemd unit properties (cgroup v2 names), converted as the
/// monitor converts them for the cgroup's files.
pub fn properties(r: &Resources) -> Result<Vec<Property>, String> {
    let infinity = u64::MAX;
    // Docker's -1 is systemd's infinity.
    let limit = |v: i64| if v < 0 { infinity } else { v as u64 };
    let mut out = Vec::new();
    if r.memory != 0 {
        out.push(Property::u64("MemoryMax", limit(r.memory)));
    }
    if r.memory_reservation > 0 {
        out.push(Property::u64("MemoryLow", r.memory_reservation as u64));
    }
    if r.memory_swap < 0 {
        out.push(Property::u64("MemorySwapMax", infinity));
    } else if r.memory_swap > 0 && r.memory > 0 {
        out.push(Property::u64(
            "MemorySwapMax",
            (r.memory_swap - r.memory).max(0) as u64,
        ));
    }
    if r.cpu_shares > 0 {
        out.push(Property::u64(
            "CPUWeight",
            crate::init::resources::cpu_weight(r.cpu_shares).clamp(1, 10000) as u64,
        ));
    }
    if r.cpu_period > 0 {
        out.push(Property::u64("CPUQuotaPeriodUSec", r.cpu_period as u64));
    }
    if r.cpu_quota > 0 {
        if let Some(per_sec) = units::cpu_quota_per_sec_usec(r.cpu_quota, r.cpu_period as u64) {
            out.push(Property::u64("CPUQuotaPerSecUSec", per_sec));
        }
    } else if r.cpu_quota < 0 {
        out.push(Property::u64("CPUQuotaPerSecUSec", infinity));
    }
    if r.pids_limit != 0 {
        out.push(Property::u64("TasksMax", limit(r.pids_limit)));
    }
    if r.blkio_weight != 0 {
        out.push(Property::u64(
            "IOWeight",
            crate::init::resources::io_weight(r.blkio_weight),
        ));
    }
    for (name, limits) in [
        ("IOReadBandwidthMax", &r.device_read_bps),
        ("IOWriteBandwidthMax", &r.device_write_bps),
        ("IOReadIOPSMax", &r.device_read_iops),
        ("IOWriteIOPSMax", &r.device_write_iops),
    ] {
        if !limits.is_empty() {
            let by_path = limits
                .iter()
                .map(|(major, minor, rate)| (format!("/dev/block/{major}:{minor}"), *rate))
                .collect();
            out.push(Property::path_limits(name, by_path));
        }
    }
    if !r.cpuset_cpus.is_empty() {
        let mask = units::cpuset_mask(&r.cpuset_cpus).map_err(|e| e.to_string())?;
        out.push(Property::bytes("AllowedCPUs", mask));
    }
    if !r.cpuset_mems.is_empty() {
        let mask = units::cpuset_mask(&r.cpuset_mems).map_err(|e| e.to_string())?;
        out.push(Property::bytes("AllowedMemoryNodes", mask));
    }
    Ok(out)
}

impl Scopes {
    /// The connection, made when there is none.
    async fn manager(&self) -> Result<Manager, String> {
        let mut m = self.manager.lock().await;
        if let Some(m) = &*m {
            return Ok(m.clone());
        }
        let made = Manager::connect().await.map_err(|e| e.to_string())?;
        *m = Some(made.clone());
        Ok(made)
    }

    /// Forgets the connection after a failure, so the next call makes a new one (a
    /// systemd re-exec, for one, closes it).
    async fn forget(&self) {
        *self.manager.lock().await = None;
    }

    /// The connection for another try after `failed`: a call that failed as a call
    /// is tried once more on a new connection, since one systemd closed (a re-exec)
    /// fails every call; a job that failed or timed out is not tried again.
    async fn retry_after(&self, failed: &units::Error) -> Option<Manager> {
        if failed.0.starts_with("error creating systemd unit") || failed.0.starts_with("Timeout") {
            return None;
        }
        self.forget().await;
        self.manager().await.ok()
    }

    /// Creates the container's scope around its first process `pid`, with its limits.
    pub async fn create(&self, spec: &ContainerSpec, pid: i32) -> Result<(), String> {
        let (unit, slice) = unit_and_slice(&spec.cgroup_path);
        let props = properties(&spec.resources)?;
        let description = format!("libcontainer container {}", spec.id);
        let pids = [pid as u32];
        let manager = self.manager().await?;
        let Err(first) = manager
            .start_transient_scope(&unit, &slice, &pids, &description, props.clone())
            .await
        else {
            return Ok(());
        };
        let Some(manager) = self.retry_after(&first).await else {
            return Err(first.to_string());
        };
        manager
            .start_transient_scope(&unit, &slice, &pids, &description, props)
            .await
            .map_err(|e| e.to_string())
    }

    /// New limits for a running container's scope (`docker update`).
    pub async fn update(&self, cgroup_path: &str, r: &Resources) -> Result<(), String> {
        let (unit, _) = unit_and_slice(cgroup_path);
        let props = properties(r)?;
        if props.is_empty() {
            return Ok(());
        }
        let manager = self.manager().await?;
        let Err(first) = manager.set_unit_properties(&unit, props.clone()).await else {
            return Ok(());
        };
        let Some(manager) = self.retry_after(&first).await else {
            return Err(first.to_string());
        };
        manager
            .set_unit_properties(&unit, props)
            .await
            .map_err(|e| e.to_string())
    }

    /// After the container's exit: whether systemd saw the OOM killer end it (the
    /// scope failed with `oom-kill`: systemd reads the cgroup's OOM count before it
    /// removes the cgroup, which the monitor cannot always do), and then lets systemd
    /// forget a failed scope, so that nothing of it lingers in `systemctl --failed`.
    pub async fn finish(&self, cgroup_path: &str) -> bool {
        let (unit, _) = unit_and_slice(cgroup_path);
        let Ok(manager) = self.manager().await else {
            return false;
        };
        let oom = match manager.unit_result(&unit).await {
            Ok(result) => result.as_deref() == Some("oom-kill"),
            Err(e) => {
                tracing::debug!("read how the container's scope {unit} ended: {e}");
                self.forget().await;
                false
            }
        };
        if let Err(e) = manager.reset_failed(&unit).await {
            tracing::debug!("reset the container's scope {unit}: {e}");
        }
        oom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_slices_from_cgroup_paths() {
        assert_eq!(
            unit_and_slice("system.slice/docker-abc.scope"),
            ("docker-abc.scope".into(), "system.slice".into())
        );
        assert_eq!(
            unit_and_slice("/a.slice/a-b.slice/docker-abc.scope"),
            ("docker-abc.scope".into(), "a-b.slice".into())
        );
        assert_eq!(
            unit_and_slice("docker-abc.scope"),
            ("docker-abc.scope".into(), "-.slice".into())
        );
    }

    #[test]
    fn limits_become_systemd_properties() {
        let r = Resources {
            memory: 64 << 20,
            memory_swap: 128 << 20,
            memory_reservation: 32 << 20,
            cpu_shares: 512,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            pids_limit: 50,
            cpuset_cpus: "0-1".into(),
            blkio_weight: 500,
            device_read_bps: vec![(8, 0, 1 << 20)],
            ..Default::default()
        };
        let props = properties(&r).unwrap();
        let names: Vec<_> = props.iter().map(|p| p.name().to_string()).collect();
        assert_eq!(
            names,
            [
                "MemoryMax",
                "MemoryLow",
                "MemorySwapMax",
                "CPUWeight",
                "CPUQuotaPeriodUSec",
                "CPUQuotaPerSecUSec",
                "TasksMax",
                "IOWeight",
                "IOReadBandwidthMax",
                "AllowedCPUs"
            ]
        );
        let unlimited = Resources {
            memory: -1,
            memory_swap: -1,
            pids_limit: -1,
            ..Default::default()
        };
        assert_eq!(properties(&unlimited).unwrap().len(), 3);
        assert!(properties(&Resources::default()).unwrap().is_empty());
        let bad = Resources {
            cpuset_cpus: "x".into(),
            ..Default::default()
        };
        assert!(properties(&bad).is_err());
    }
}
