//! AppArmor, where the host's kernel has it on: Docker's `docker-default` profile,
//! generated here and loaded with `apparmor_parser`, and the choice of profile for
//! each container (`--security-opt apparmor=…`, `unconfined` for `--privileged`).
//! The monitor puts the container's command under the profile at exec.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::engine::{Error, Result};

/// The profile containers run under unless they choose.
pub const DEFAULT_PROFILE: &str = "docker-default";

const SECURITYFS: &str = "/sys/kernel/security/apparmor";
const PROFILES_DIR: &str = "/etc/apparmor.d";

/// AppArmor on this host.
#[derive(Debug, Clone)]
pub struct AppArmor {
    /// `apparmor_parser`, where installed.
    parser: Option<PathBuf>,
    /// The daemon's own label, which may signal containers.
    daemon_label: String,
}

impl AppArmor {
    /// AppArmor is usable when the kernel has it enabled and its filesystem is
    /// there; a missing `apparmor_parser` shows at container start.
    pub fn detect() -> Option<AppArmor> {
        let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'));
        if !enabled || !Path::new(SECURITYFS).is_dir() {
            return None;
        }
        Some(AppArmor {
            parser: find_parser(),
            daemon_label: daemon_label(),
        })
    }

    /// Loads the default profile again, so that a new version's replaces the old
    /// one: once per daemon start, beside serving (`apparmor_parser` takes a
    /// while). A failure is reported here, and again at container start.
    pub fn refresh_default(&self) {
        if let Err(e) = self.load_default() {
            tracing::error!("Failed to load default apparmor profile: {e}");
        }
    }

    /// The profile the container's command is exec'd under, making sure the
    /// default one is loaded (something may have unloaded it).
    pub fn prepare(&self, chosen: Option<&str>, privileged: bool) -> Result<Option<String>> {
        let profile = profile_for(chosen, privileged);
        if profile == DEFAULT_PROFILE && !is_loaded(DEFAULT_PROFILE)? {
            self.load_default().map_err(|e| {
                Error::internal(format!(
                    "AppArmor enabled on system but the {DEFAULT_PROFILE} profile could not be loaded: {e}"
                ))
            })?;
        }
        Ok(Some(profile))
    }

    fn load_default(&self) -> std::result::Result<(), String> {
        let Some(parser) = &self.parser else {
            return Err("apparmor_parser was not found: install the apparmor package, or run containers with --security-opt apparmor=unconfined".into());
        };
        let text = default_profile(&self.daemon_label, Path::new(PROFILES_DIR));
        load(parser, &text)
    }
}

/// The profile for a container: its own choice, else `unconfined` when
/// privileged, else the default.
pub fn profile_for(chosen: Option<&str>, privileged: bool) -> String {
    match chosen {
        Some(p) if !p.is_empty() => p.to_string(),
        _ if privileged => "unconfined".to_string(),
        _ => DEFAULT_PROFILE.to_string(),
    }
}

fn find_parser() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/sbin", "/usr/sbin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join("apparmor_parser"))
        .find(|p| p.is_file())
}

/// The daemon's own label (`/proc/self/attr/current` without its mode), or
/// `unconfined`.
fn daemon_label() -> String {
    let text = std::fs::read_to_string("/proc/self/attr/apparmor/current")
        .or_else(|_| std::fs::read_to_string("/proc/self/attr/current"))
        .unwrap_or_default();
    let label = text.trim();
    let label = label.split(" (").next().unwrap_or("").trim();
    if label.is_empty() {
        "unconfined".to_string()
    } else {
        label.to_string()
    }
}

/// Whether `name` is among the kernel's loaded profiles (`name (mode)` lines).
fn is_loaded(name: &str) -> Result<bool> {
    let path = Path::new(SECURITYFS).join("profiles");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::internal(format!(
            "Could not check if {name} AppArmor profile was loaded: {}",
            crate::store::strip_os_suffix(&e)
        ))
    })?;
    Ok(text.lines().any(|l| l.split(" (").next() == Some(name)))
}

/// Loads or replaces a profile: `apparmor_parser -Kr` with the text on stdin
/// (no cache written, nothing left on disk).
fn load(parser: &Path, text: &str) -> std::result::Result<(), String> {
    let cmd = format!("{} -Kr", parser.display());
    let mut child = Command::new(parser)
        .arg("-Kr")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "running '{cmd}' failed: {}",
                crate::store::strip_os_suffix(&e)
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("running '{cmd}' failed: write the profile: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running '{cmd}' failed: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Err(format!(
        "running '{cmd}' failed with output: {}\nerror: {}",
        output.trim_end(),
        out.status
    ))
}

/// The text of `docker-default`: everything allowed but what a container must
/// not touch — writes to `/proc` outside its own processes and `sys/kernel/shm*`,
/// `/proc/sysrq-trigger` and `/proc/kcore` at all, writes under `/sys` outside the
/// cgroup tree, `/sys/firmware`, powercap and securityfs at all, mounts, `AF_ALG`
/// sockets, and ptrace or signals across the container's boundary. Includes and
/// the ABI line depend on what `dir` (`/etc/apparmor.d`) has.
pub fn default_profile(daemon_label: &str, dir: &Path) -> String {
    let has = |p: &str| dir.join(p).exists();
    let mut t = String::from("# docker-default, generated by dockerd.\n");
    if has("abi/3.0") {
        // ABI 3.0: a bare `network,` still covers unix sockets.
        t.push_str("abi <abi/3.0>,\n");
    }
    if has("tunables/global") {
        t.push_str("#include <tunables/global>\n");
    } else {
        t.push_str("@{PROC}=/proc/\n");
    }
    t.push_str(&format!(
        "\nprofile \"{DEFAULT_PROFILE}\" flags=(attach_disconnected,mediate_deleted) {{\n"
    ));
    if has("abstractions/base") {
        t.push_str("  #include <abstractions/base>\n");
    }
    let rules = [
        "network,".to_string(),
        "deny network alg,".to_string(),
        "capability,".to_string(),
        "file,".to_string(),
        "umount,".to_string(),
        "signal (receive) peer=unconfined,".to_string(),
        "signal (receive) peer=runc,".to_string(),
        "signal (receive) peer=crun,".to_string(),
        format!("signal (receive) peer=\"{daemon_label}\","),
        format!("signal (send,receive) peer=\"{DEFAULT_PROFILE}\","),
        "deny @{PROC}/* w,".to_string(),
        // Under /proc/<name>/ where the name is neither a PID nor `sys`.
        "deny @{PROC}/{[^1-9/],[^1-9/][^0-9/],[^1-9s/][^0-9y/][^0-9s/],[^1-9/][^0-9/][^0-9/][^0-9/]*}/** w,".to_string(),
        "deny @{PROC}/sys/[^k]** w,".to_string(),
        "deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,".to_string(),
        "deny @{PROC}/sysrq-trigger rwklx,".to_string(),
        "deny @{PROC}/kcore rwklx,".to_string(),
        "deny mount,".to_string(),
        "deny /sys/[^f]*/** wklx,".to_string(),
        "deny /sys/f[^s]*/** wklx,".to_string(),
        "deny /sys/fs/[^c]*/** wklx,".to_string(),
        "deny /sys/fs/c[^g]*/** wklx,".to_string(),
        "deny /sys/fs/cg[^r]*/** wklx,".to_string(),
        "deny /sys/firmware/** rwklx,".to_string(),
        "deny /sys/devices/virtual/powercap/** rwklx,".to_string(),
        "deny /sys/kernel/security/** rwklx,".to_string(),
        format!("ptrace (trace,tracedby,read,readby) peer=\"{DEFAULT_PROFILE}\","),
    ];
    for r in rules {
        t.push_str("  ");
        t.push_str(&r);
        t.push('\n');
    }
    t.push_str("}\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_follows_what_the_host_has() {
        let dir = tempfile::tempdir().unwrap();
        let bare = default_profile("unconfined", dir.path());
        assert!(bare.contains("@{PROC}=/proc/\n"));
        assert!(!bare.contains("abi <"));
        assert!(!bare.contains("#include"));
        assert!(
            bare.contains(
                "profile \"docker-default\" flags=(attach_disconnected,mediate_deleted) {"
            )
        );
        assert!(bare.contains("  deny @{PROC}/sysrq-trigger rwklx,\n"));
        assert!(bare.contains("  deny mount,\n"));
        assert!(bare.ends_with("}\n"));

        for p in ["abi", "tunables", "abstractions"] {
            std::fs::create_dir(dir.path().join(p)).unwrap();
        }
        for f in ["abi/3.0", "tunables/global", "abstractions/base"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let full = default_profile("dockerd-label", dir.path());
        assert!(full.contains("abi <abi/3.0>,\n#include <tunables/global>\n"));
        assert!(full.contains("{\n  #include <abstractions/base>\n"));
        assert!(full.contains("signal (receive) peer=\"dockerd-label\","));
    }

    #[test]
    fn profile_choice() {
        assert_eq!(profile_for(None, false), "docker-default");
        assert_eq!(profile_for(None, true), "unconfined");
        assert_eq!(profile_for(Some(""), false), "docker-default");
        assert_eq!(profile_for(Some("mine"), true), "mine");
    }
}
