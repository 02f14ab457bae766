//! Kernel networking primitives shared by the daemon's networks (`engine::network`),
//! the container monitor (`init`, which tears a container's network down when it
//! exits) and the container's network proxy (`netproxy`): rtnetlink, network
//! namespaces, iptables batches and sysctls. Nothing here knows about containers.

pub mod iptables;
pub mod netlink;
pub mod netns;

use std::io;
use std::path::Path;

/// Writes a sysctl under `/proc/sys` (`net/ipv4/ip_forward`); unchanged values are
/// not rewritten.
pub fn set_sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = Path::new("/proc/sys").join(key);
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|e| crate::store::with_path(e, "write", &path))
}

/// Reads a sysctl under `/proc/sys`.
pub fn sysctl(key: &str) -> io::Result<String> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::read_to_string(&path)
        .map(|v| v.trim().to_string())
        .map_err(|e| crate::store::with_path(e, "read", &path))
}
