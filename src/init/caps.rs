//! Linux capabilities of the container's command.
//!
//! Docker runs a command with its capability list in the bounding, effective and
//! permitted sets, an empty inheritable set and no ambient capabilities. The kernel
//! then gives a root command exactly its bounding set on exec, and a non-root command
//! none, as in Docker. Capabilities this host's bounding set lacks (this monitor cannot
//! grant what it does not hold) are left out instead of failing the start.

use std::io;

use super::sys;

/// Capability names in kernel order (`CAP_CHOWN` is 0).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A set of capabilities as a bit mask (bit n = capability n).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }
}

/// The number of a capability named `CAP_CHOWN`, `chown` or `CAP_chown`.
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// Parses the spec's capability list; every name must be known.
pub fn parse(names: &[String]) -> Result<CapSet, String> {
    let mut set = 0u64;
    for name in names {
        match number(name) {
            Some(n) => set |= 1 << n,
            None => return Err(format!("unknown capability {name:?}")),
        }
    }
    Ok(CapSet(set))
}

/// Every capability this kernel knows.
pub fn all_known() -> CapSet {
    let mut bits = 0u64;
    for cap in 0..64 {
        match bounding_has(cap) {
            Some(_) => bits |= 1 << cap,
            None => break,
        }
    }
    CapSet(bits)
}

/// `Some(in the bounding set)`, or `None` when the kernel does not know `cap`.
fn bounding_has(cap: u32) -> Option<bool> {
    let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
    if r < 0 { None } else { Some(r == 1) }
}

/// The calling process's bounding set.
pub fn current_bounding() -> CapSet {
    let mut bits = 0u64;
    for cap in 0..64 {
        match bounding_has(cap) {
            Some(true) => bits |= 1 << cap,
            Some(false) => {}
            None => break,
        }
    }
    CapSet(bits)
}

/// Step one, before the user changes: drop everything outside `keep` from the
/// bounding set and keep the permitted set across the coming setuid.
pub fn limit_bounding(keep: CapSet) -> io::Result<()> {
    for cap in 0..64 {
        match bounding_has(cap) {
            None => break,
            Some(false) => {}
            Some(true) if keep.contains(cap) => {}
            Some(true) => sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "drop capability {} from the bounding set: {}",
                        name(cap),
                        crate::store::strip_os_suffix(&e)
                    ),
                )
            })?,
        }
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 1)
}

/// Step two, after the user changed: effective and permitted become `caps`,
/// inheritable and ambient become empty.
pub fn apply(caps: CapSet) -> io::Result<()> {
    sys::prctl(libc::PR_SET_KEEPCAPS, 0)?;
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let lo = caps.0 as u32;
    let hi = (caps.0 >> 32) as u32;
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    sys::cvt(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } as libc::c_int)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("set capabilities: {}", crate::store::strip_os_suffix(&e)),
            )
        })?;
    // Kernels without ambient capabilities (before 4.3) have none to clear.
    let _ = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Ok(())
}

fn name(cap: u32) -> String {
    NAMES
        .get(cap as usize)
        .map(|n| format!("CAP_{n}"))
        .unwrap_or_else(|| format!("capability {cap}"))
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_kernel_numbers() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("net_raw"), Some(13));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_MKNOD"), Some(27));
        assert_eq!(number("CAP_AUDIT_WRITE"), Some(29));
        assert_eq!(number("CAP_SETFCAP"), Some(31));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_NOPE"), None);
    }

    #[test]
    fn parse_builds_the_mask_and_names_unknown_entries() {
        let set = parse(&["CAP_CHOWN".into(), "CAP_KILL".into()]).unwrap();
        assert_eq!(set, CapSet(1 | 1 << 5));
        assert!(set.contains(5) && !set.contains(1));
        assert_eq!(
            parse(&["CAP_FLY".into()]).unwrap_err(),
            "unknown capability \"CAP_FLY\""
        );
    }

    #[test]
    fn the_kernel_knows_the_classic_capabilities() {
        let all = all_known();
        assert!(all.contains(0) && all.contains(37), "{all:?}");
        assert_eq!(current_bounding().0 & !all.0, 0);
    }
}
