//! `GET /containers/{id}/stats` (`docker stats`): Docker's stats document, read
//! from the container's cgroup files (v1 controllers or v2) and its network
//! namespace's interface counters, so that the CLI's CPU %, MEM USAGE / LIMIT,
//! NET I/O, BLOCK I/O and PIDS columns are right.
//!
//! One sample is `read` plus `cpu_stats`, `memory_stats`, `blkio_stats`,
//! `pids_stats` and `networks`; a document pairs it with the sample before
//! (`precpu_stats`, `preread`), from which the CLI computes CPU %.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};

use crate::engine::{Engine, Result};
use crate::init::cgroup::{self, Kind};

/// One reading of a container's counters.
#[derive(Debug, Clone)]
pub struct Sample {
    pub read: String,
    pub cpu: Value,
    pub memory: Value,
    pub blkio: Value,
    pub pids: Value,
    pub networks: Option<Value>,
}

/// The last sample read of a container (with the PID it was read for: counters
/// start again with each run), so that a single document (`stream=false`) can
/// pair a fresh sample with a recent one instead of waiting for a second.
#[derive(Debug, Default)]
pub struct LastSample(Mutex<Option<(Instant, i32, Sample)>>);

/// How old a kept sample may be and still serve as `precpu_stats`: the CPU % is
/// then the average over that time (Docker's streamed documents are a second
/// apart).
pub const REUSE_WITHIN: Duration = Duration::from_secs(10);

impl LastSample {
    pub fn store(&self, pid: i32, sample: &Sample) {
        *self.0.lock().unwrap() = Some((Instant::now(), pid, sample.clone()));
    }

    /// The kept sample of the run with this PID and its age, if it is recent.
    pub fn recent(&self, pid: i32) -> Option<(Duration, Sample)> {
        let kept = self.0.lock().unwrap();
        let (at, kept_pid, sample) = kept.as_ref()?;
        let age = at.elapsed();
        (*kept_pid == pid && age <= REUSE_WITHIN).then(|| (age, sample.clone()))
    }
}

/// The zero CPU document Docker sends where there is no earlier sample.
fn empty_cpu() -> Value {
    json!({
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

fn empty_blkio() -> Value {
    let mut m = Map::new();
    for k in BLKIO_KEYS {
        m.insert(k.to_string(), Value::Null);
    }
    Value::Object(m)
}

const BLKIO_KEYS: [&str; 8] = [
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
];

/// A document: `sample` with `before` as its `precpu_stats` (none: zeros), or the
/// empty document of a container that is not running.
pub fn document(name: &str, id: &str, sample: Option<&Sample>, before: Option<&Sample>) -> Value {
    let zero_time = crate::timefmt::ZERO_TIME;
    let mut doc = json!({
        "read": sample.map_or(zero_time, |s| s.read.as_str()),
        "preread": before.map_or(zero_time, |s| s.read.as_str()),
        "pids_stats": sample.map_or(json!({}), |s| s.pids.clone()),
        "blkio_stats": sample.map_or_else(empty_blkio, |s| s.blkio.clone()),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": sample.map_or_else(empty_cpu, |s| s.cpu.clone()),
        "precpu_stats": before.map_or_else(empty_cpu, |s| s.cpu.clone()),
        "memory_stats": sample.map_or(json!({}), |s| s.memory.clone()),
        "name": name,
        "id": id,
    });
    if let Some(n) = sample.and_then(|s| s.networks.clone()) {
        doc["networks"] = n;
    }
    doc
}

impl Engine {
    /// Reads the counters of a running container; `None` when it is not running.
    pub fn stats_sample(&self, name: &str) -> Result<Option<Sample>> {
        let h = self.containers.get(name)?;
        let (running, pid, bridged) = {
            let r = h.record();
            let s = &r.container.state;
            (
                s.running && !s.restarting,
                s.pid,
                r.settings.network_mode.bridged()
                    || r.settings.network_mode == super::settings::NetMode::None,
            )
        };
        if !running {
            return Ok(None);
        }
        let hierarchies = cgroup::hierarchies()?;
        let path = h.record().cgroup_path();
        let rel = cgroup::relative_path(&path)?;
        let dir_of = |controller: &str| -> Option<PathBuf> {
            hierarchies.iter().find_map(|hy| match &hy.kind {
                Kind::V1 { controllers } if controllers.iter().any(|c| c == controller) => {
                    Some(hy.mount_point.join(&rel))
                }
                _ => None,
            })
        };
        let unified = hierarchies
            .iter()
            .find(|hy| hy.kind == Kind::V2)
            .map(|hy| hy.mount_point.join(&rel));
        let read = crate::timefmt::rfc3339_nano(SystemTime::now());
        let ncpu = crate::engine::system::host_facts().ncpu;
        let mem_total = crate::engine::system::host_facts().mem_total;

        let cpu = match (dir_of("cpuacct"), &unified) {
            (Some(d), _) => v1_cpu(&d, dir_of("cpu").as_deref(), ncpu),
            (None, Some(u)) => v2_cpu(u, ncpu),
            _ => empty_cpu(),
        };
        let memory = match (dir_of("memory"), &unified) {
            (Some(d), _) => v1_memory(&d, mem_total),
            (None, Some(u)) if u.join("memory.current").exists() => v2_memory(u, mem_total),
            _ => json!({}),
        };
        let pids_dir = dir_of("pids").or_else(|| unified.clone());
        let pids = pids_dir.map_or(json!({}), |d| {
            let mut p = Map::new();
            if let Some(n) = read_u64(&d.join("pids.current")) {
                p.insert("current".into(), n.into());
            }
            if let Some(n) = read_u64(&d.join("pids.max")).filter(|n| *n > 0) {
                p.insert("limit".into(), n.into());
            }
            Value::Object(p)
        });
        let blkio = match (dir_of("blkio"), &unified) {
            (Some(d), _) => v1_blkio(&d),
            (None, Some(u)) => v2_blkio(u),
            _ => empty_blkio(),
        };
        // A namespace of its own: its interfaces, but `lo`.
        let networks = bridged
            .then(|| fs::read_to_string(format!("/proc/{pid}/net/dev")).ok())
            .flatten()
            .map(|text| net_dev(&text))
            .filter(|n| n.as_object().is_some_and(|m| !m.is_empty()));
        let sample = Sample {
            read,
            cpu,
            memory,
            blkio,
            pids,
            networks,
        };
        h.last_stats.store(pid, &sample);
        Ok(Some(sample))
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// `key value` lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`).
fn key_values(p: &Path) -> Vec<(String, u64)> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn lookup(kv: &[(String, u64)], k: &str) -> u64 {
    kv.iter().find(|(x, _)| x == k).map_or(0, |(_, v)| *v)
}

/// All CPU time of the host in nanoseconds (`/proc/stat`'s first line, in clock
/// ticks of 1/100 s), as Docker computes `system_cpu_usage`.
fn system_cpu_usage() -> u64 {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    ticks * 1_000_000_000 / 100
}

fn v1_cpu(acct: &Path, cpu: Option<&Path>, ncpu: usize) -> Value {
    let total = read_u64(&acct.join("cpuacct.usage")).unwrap_or(0);
    let percpu: Vec<u64> = fs::read_to_string(acct.join("cpuacct.usage_percpu"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    // user and system in clock ticks (1/100 s).
    let stat = key_values(&acct.join("cpuacct.stat"));
    let throttle = cpu
        .map(|c| key_values(&c.join("cpu.stat")))
        .unwrap_or_default();
    let mut usage = json!({
        "total_usage": total,
        "usage_in_kernelmode": lookup(&stat, "system") * 10_000_000,
        "usage_in_usermode": lookup(&stat, "user") * 10_000_000,
    });
    if !percpu.is_empty() {
        usage["percpu_usage"] = json!(percpu);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": system_cpu_usage(),
        "online_cpus": ncpu,
        "throttling_data": {
            "periods": lookup(&throttle, "nr_periods"),
            "throttled_periods": lookup(&throttle, "nr_throttled"),
            "throttled_time": lookup(&throttle, "throttled_time"),
        },
    })
}

fn v2_cpu(dir: &Path, ncpu: usize) -> Value {
    let stat = key_values(&dir.join("cpu.stat"));
    json!({
        "cpu_usage": {
            "total_usage": lookup(&stat, "usage_usec") * 1000,
            "usage_in_kernelmode": lookup(&stat, "system_usec") * 1000,
            "usage_in_usermode": lookup(&stat, "user_usec") * 1000,
        },
        "system_cpu_usage": system_cpu_usage(),
        "online_cpus": ncpu,
        "throttling_data": {
            "periods": lookup(&stat, "nr_periods"),
            "throttled_periods": lookup(&stat, "nr_throttled"),
            "throttled_time": lookup(&stat, "throttled_usec") * 1000,
        },
    })
}

/// The keys of v1's `memory.stat` Docker reports.
const V1_MEMORY_KEYS: &[&str] = &[
    "cache",
    "rss",
    "rss_huge",
    "mapped_file",
    "dirty",
    "writeback",
    "pgpgin",
    "pgpgout",
    "pgfault",
    "pgmajfault",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
];

fn v1_memory(dir: &Path, mem_total: u64) -> Value {
    let stat = key_values(&dir.join("memory.stat"));
    let mut stats = Map::new();
    for k in V1_MEMORY_KEYS {
        stats.insert(k.to_string(), lookup(&stat, k).into());
        if !k.starts_with("hierarchical") {
            let total = format!("total_{k}");
            stats.insert(total.clone(), lookup(&stat, &total).into());
        }
    }
    let limit = read_u64(&dir.join("memory.limit_in_bytes"))
        .unwrap_or(mem_total)
        .min(mem_total);
    let mut m = json!({
        "usage": read_u64(&dir.join("memory.usage_in_bytes")).unwrap_or(0),
        "max_usage": read_u64(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0),
        "stats": stats,
        "limit": limit,
    });
    if let Some(f) = read_u64(&dir.join("memory.failcnt")).filter(|f| *f > 0) {
        m["failcnt"] = f.into();
    }
    m
}

fn v2_memory(dir: &Path, mem_total: u64) -> Value {
    let stats: Map<String, Value> = key_values(&dir.join("memory.stat"))
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    let limit = read_u64(&dir.join("memory.max"))
        .unwrap_or(mem_total)
        .min(mem_total);
    let events = key_values(&dir.join("memory.events"));
    let mut m = json!({
        "usage": read_u64(&dir.join("memory.current")).unwrap_or(0),
        "stats": stats,
        "limit": limit,
    });
    if lookup(&events, "oom") > 0 {
        m["failcnt"] = lookup(&events, "oom").into();
    }
    m
}

/// `maj:min Op value` lines; the device-less total line is left out.
fn blkio_entries(p: &Path) -> Vec<Value> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let dev = parts.next()?;
            let (major, minor) = dev.split_once(':')?;
            let (op, value) = match (parts.next(), parts.next()) {
                (Some(op), Some(v)) => (op, v),
                // `blkio.sectors_recursive` and `time_recursive` have no op.
                (Some(v), None) => ("", v),
                _ => return None,
            };
            Some(json!({
                "major": major.parse::<u64>().ok()?,
                "minor": minor.parse::<u64>().ok()?,
                "op": op,
                "value": value.parse::<u64>().ok()?,
            }))
        })
        .collect()
}

fn v1_blkio(dir: &Path) -> Value {
    let mut bytes = blkio_entries(&dir.join("blkio.io_service_bytes_recursive"));
    let mut ios = blkio_entries(&dir.join("blkio.io_serviced_recursive"));
    if bytes.is_empty() && ios.is_empty() {
        bytes = blkio_entries(&dir.join("blkio.throttle.io_service_bytes"));
        ios = blkio_entries(&dir.join("blkio.throttle.io_serviced"));
    }
    json!({
        "io_service_bytes_recursive": bytes,
        "io_serviced_recursive": ios,
        "io_queue_recursive": blkio_entries(&dir.join("blkio.io_queued_recursive")),
        "io_service_time_recursive": blkio_entries(&dir.join("blkio.io_service_time_recursive")),
        "io_wait_time_recursive": blkio_entries(&dir.join("blkio.io_wait_time_recursive")),
        "io_merged_recursive": blkio_entries(&dir.join("blkio.io_merged_recursive")),
        "io_time_recursive": blkio_entries(&dir.join("blkio.time_recursive")),
        "sectors_recursive": blkio_entries(&dir.join("blkio.sectors_recursive")),
    })
}

/// v2's `io.stat`: read and written bytes per device, as Docker reports them.
fn v2_blkio(dir: &Path) -> Value {
    let mut entries = Vec::new();
    for line in fs::read_to_string(dir.join("io.stat"))
        .unwrap_or_default()
        .lines()
    {
        let mut parts = line.split_whitespace();
        let Some((major, minor)) = parts.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        let kv: Vec<(&str, u64)> = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        let get = |k: &str| kv.iter().find(|(x, _)| *x == k).map_or(0, |(_, v)| *v);
        entries.push(json!({"major": major, "minor": minor, "op": "read", "value": get("rbytes")}));
        entries
            .push(json!({"major": major, "minor": minor, "op": "write", "value": get("wbytes")}));
    }
    let mut doc = empty_blkio();
    if !entries.is_empty() {
        doc["io_service_bytes_recursive"] = json!(entries);
    }
    doc
}

/// `/proc/PID/net/dev` of the container's namespace: each interface's counters
/// but the loopback's.
fn net_dev(text: &str) -> Value {
    let mut m = Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let n: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if n.len() < 12 {
            continue;
        }
        m.insert(
            name.to_string(),
            json!({
                "rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                "tx_bytes": n[8], "tx_packets": n[9], "tx_errors": n[10], "tx_dropped": n[11],
            }),
        );
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_counters_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:     656       8    0    1    0     0          0         0       42       1    0    0    0     0       0          0
";
        let n = net_dev(text);
        assert_eq!(n.as_object().unwrap().len(), 1);
        assert_eq!(n["eth0"]["rx_bytes"], 656);
        assert_eq!(n["eth0"]["rx_dropped"], 1);
        assert_eq!(n["eth0"]["tx_bytes"], 42);
    }

    #[test]
    fn a_stopped_containers_document_is_dockers_empty_one() {
        let d = document("/x", "id", None, None);
        assert_eq!(d["read"], "0001-01-01T00:00:00Z");
        assert_eq!(d["cpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert!(d["blkio_stats"]["io_service_bytes_recursive"].is_null());
        assert_eq!(d["memory_stats"], json!({}));
        assert!(d.get("networks").is_none());
    }
}
