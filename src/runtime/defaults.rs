//! Docker's defaults for what a container may do, as the daemon puts them into every
//! container spec: the capability set, the masked `/proc` and `/sys` paths and the
//! read-only ones (Docker Engine's `oci/caps/defaults.go` and `oci/defaults.go`).

use std::path::Path;

/// The capabilities a container gets unless `--cap-add`/`--cap-drop` change them.
pub fn default_capabilities() -> Vec<String> {
    [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// Paths hidden from an unprivileged container. Like Docker, this includes each CPU's
/// `thermal_throttle` directory where the host has one.
pub fn default_masked_paths() -> Vec<String> {
    let mut paths: Vec<String> = [
        "/proc/acpi",
        "/proc/asound",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/sys/devices/virtual/powercap",
        "/sys/firmware",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for cpu in possible_cpus() {
        let p = format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle");
        if Path::new(&p).exists() {
            paths.push(p);
        }
    }
    paths
}

/// Paths an unprivileged container sees read-only.
pub fn default_readonly_paths() -> Vec<String> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// The CPUs in `/sys/devices/system/cpu/possible` (`0-3,8`).
fn possible_cpus() -> Vec<u32> {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map(|s| parse_cpu_list(&s))
        .unwrap_or_default()
}

fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(a.saturating_add(4096)));
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_lists() {
        let caps = default_capabilities();
        assert_eq!(caps.len(), 14);
        assert!(caps.contains(&"CAP_NET_BIND_SERVICE".to_string()));
        assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()));
        let masked = default_masked_paths();
        assert_eq!(
            masked[..3],
            ["/proc/acpi", "/proc/asound", "/proc/interrupts"]
        );
        assert!(masked.contains(&"/sys/firmware".to_string()));
        assert_eq!(default_readonly_paths().len(), 5);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8\n"), vec![0, 1, 2, 3, 8]);
        assert_eq!(parse_cpu_list("0\n"), vec![0]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
    }
}
