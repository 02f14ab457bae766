//! `--device` and `--device-cgroup-rule`: host device nodes made in the container,
//! and the device cgroup rules that let the container use them.
//!
//! The HostConfig is checked at create; the host's nodes are looked up at each
//! start (a device may come and go between starts), as Docker does, with Docker's
//! error when one is missing.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::engine::{Error, Result};
use crate::init::spec::DeviceNode;

/// One `--device HOST[:CONTAINER[:PERMISSIONS]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    /// Some of `rwm`.
    pub permissions: String,
}

/// `HostConfig.Devices` and `HostConfig.DeviceCgroupRules`, checked.
pub fn read(hc: &Map<String, Value>) -> Result<(Vec<DeviceMapping>, Vec<String>)> {
    let mut mappings = Vec::new();
    if let Some(Value::Array(list)) = hc.get("Devices") {
        for d in list {
            let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let path_on_host = field("PathOnHost");
            if path_on_host.is_empty() {
                return Err(Error::invalid("Devices: PathOnHost is empty"));
            }
            let mut path_in_container = field("PathInContainer");
            if path_in_container.is_empty() {
                path_in_container = path_on_host.clone();
            }
            if !path_in_container.starts_with('/') {
                return Err(Error::invalid(format!(
                    "bad format for path: {path_in_container}"
                )));
            }
            let mut permissions = field("CgroupPermissions");
            if permissions.is_empty() {
                permissions = "rwm".to_string();
            }
            if !valid_mode(&permissions) {
                return Err(Error::invalid(format!("bad mode specified: {permissions}")));
            }
            mappings.push(DeviceMapping {
                path_on_host,
                path_in_container,
                permissions,
            });
        }
    }
    let rules = super::settings::strings(hc.get("DeviceCgroupRules"), "DeviceCgroupRules")?
        .into_iter()
        .map(|r| cgroup_rule(&r))
        .collect::<Result<Vec<_>>>()?;
    Ok((mappings, rules))
}

/// `r`, `w` and `m`, each at most once.
fn valid_mode(mode: &str) -> bool {
    !mode.is_empty()
        && mode.len() <= 3
        && mode.chars().all(|c| "rwm".contains(c))
        && mode
            .chars()
            .enumerate()
            .all(|(i, c)| !mode[i + 1..].contains(c))
}

/// A `--device-cgroup-rule` in Docker's form, `TYPE MAJOR:MINOR ACCESS` with single
/// spaces (`c 42:* rmw`); `a` alone is `a *:* rwm`.
fn cgroup_rule(rule: &str) -> Result<String> {
    if rule == "a" {
        return Ok("a *:* rwm".to_string());
    }
    let invalid = || Error::invalid(format!("invalid device cgroup rule format: '{rule}'"));
    let parts: Vec<&str> = rule.split(' ').collect();
    let [kind, numbers, access] = parts[..] else {
        return Err(invalid());
    };
    let number = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let (major, minor) = numbers.split_once(':').ok_or_else(invalid)?;
    let access_ok = (1..=3).contains(&access.len()) && access.chars().all(|c| "rwm".contains(c));
    if !["a", "b", "c"].contains(&kind) || !number(major) || !number(minor) || !access_ok {
        return Err(invalid());
    }
    for n in [major, minor] {
        if n != "*" && n.parse::<u32>().is_err() {
            return Err(Error::invalid(format!(
                "invalid major value in device cgroup rule format: '{rule}'"
            )));
        }
    }
    Ok(rule.to_string())
}

/// The nodes to make in the container and the cgroup rules for them (each mapped
/// node with its permissions, then the `--device-cgroup-rule`s).
pub fn resolve(
    mappings: &[DeviceMapping],
    rules: &[String],
) -> Result<(Vec<DeviceNode>, Vec<String>)> {
    let mut nodes = Vec::new();
    let mut out_rules = Vec::new();
    for m in mappings {
        for node in devices_from_path(m)? {
            out_rules.push(format!(
                "{} {}:{} {}",
                node.kind, node.major, node.minor, m.permissions
            ));
            nodes.push(node);
        }
    }
    out_rules.extend(rules.iter().cloned());
    Ok((nodes, out_rules))
}

/// The node at the mapping's host path (a symlink is followed), or every node
/// under it when it is a directory.
fn devices_from_path(m: &DeviceMapping) -> Result<Vec<DeviceNode>> {
    let fail = |what: &str| {
        Error::internal(format!(
            "error gathering device information while adding custom device {:?}: {what}",
            m.path_on_host
        ))
    };
    let host = Path::new(&m.path_on_host);
    let resolved = match std::fs::symlink_metadata(host) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(host).map_err(|e| fail(&crate::store::strip_os_suffix(&e)))?
        }
        _ => host.to_path_buf(),
    };
    let meta =
        std::fs::metadata(&resolved).map_err(|e| fail(&crate::store::strip_os_suffix(&e)))?;
    if let Some(node) = node_of(&meta, &m.path_in_container) {
        return Ok(vec![node]);
    }
    if !meta.is_dir() {
        return Err(fail("not a device node"));
    }
    let mut nodes = Vec::new();
    walk(&resolved, Path::new(&m.path_in_container), &mut nodes);
    Ok(nodes)
}

/// Every device node under `dir` (symlinks are not followed), at the same place
/// under `dest`.
fn walk(dir: &Path, dest: &Path, nodes: &mut Vec<DeviceNode>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let target: PathBuf = dest.join(entry.file_name());
        if meta.is_dir() {
            walk(&entry.path(), &target, nodes);
        } else if let Some(node) = node_of(&meta, &target.to_string_lossy()) {
            nodes.push(node);
        }
    }
}

fn node_of(meta: &std::fs::Metadata, path: &str) -> Option<DeviceNode> {
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(DeviceNode {
        path: path.to_string(),
        kind,
        major: libc::major(rdev),
        minor: libc::minor(rdev),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn mappings_and_rules_are_checked_with_dockers_words() {
        let (m, r) = read(&hc(
            r#"{"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "", "CgroupPermissions": ""}],
                "DeviceCgroupRules": ["c 1:3 mr", "a", "b *:* m"]}"#,
        ))
        .unwrap();
        assert_eq!(m[0].path_in_container, "/dev/null");
        assert_eq!(m[0].permissions, "rwm");
        assert_eq!(r, ["c 1:3 mr", "a *:* rwm", "b *:* m"]);

        for (json, want) in [
            (
                r#"{"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rx"}]}"#,
                "bad mode specified: rx",
            ),
            (
                r#"{"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rr"}]}"#,
                "bad mode specified: rr",
            ),
            (
                r#"{"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "dev/x"}]}"#,
                "bad format for path: dev/x",
            ),
            (
                r#"{"DeviceCgroupRules": ["c 1:1  rwm"]}"#,
                "invalid device cgroup rule format: 'c 1:1  rwm'",
            ),
            (
                r#"{"DeviceCgroupRules": ["x 1:1 r"]}"#,
                "invalid device cgroup rule format",
            ),
            (
                r#"{"DeviceCgroupRules": ["c 1:1 rwx"]}"#,
                "invalid device cgroup rule format",
            ),
            (
                r#"{"DeviceCgroupRules": ["c 99999999999:1 r"]}"#,
                "invalid major value",
            ),
        ] {
            let e = read(&hc(json)).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn host_nodes_are_looked_up_as_docker_does() {
        let map = |host: &str, dest: &str| DeviceMapping {
            path_on_host: host.into(),
            path_in_container: dest.into(),
            permissions: "rw".into(),
        };
        let (nodes, rules) =
            resolve(&[map("/dev/null", "/dev/mine")], &["c 9:* m".into()]).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(
            (
                nodes[0].path.as_str(),
                nodes[0].kind,
                nodes[0].major,
                nodes[0].minor
            ),
            ("/dev/mine", 'c', 1, 3)
        );
        assert_eq!(rules, ["c 1:3 rw", "c 9:* m"]);

        let e = resolve(&[map("/dev/no-such-device", "/dev/x")], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "error gathering device information while adding custom device \"/dev/no-such-device\": no such file or directory"
        );
        let e = resolve(&[map("/etc/hostname", "/dev/x")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.ends_with(": not a device node"), "{e}");

        // A directory maps each node under it (and skips everything else).
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("plain"), "x").unwrap();
        crate::init::sys::mknod(
            &dir.path().join("sub/zero"),
            libc::S_IFCHR | 0o640,
            libc::makedev(1, 5),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("sub/zero"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let (nodes, _) = resolve(&[map(&dir.path().to_string_lossy(), "/dev/set")], &[]).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].path, "/dev/set/sub/zero");
        assert_eq!(nodes[0].mode, 0o640);
    }
}
