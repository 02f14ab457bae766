//! Namespace sharing (`--pid`, `--ipc`, `--uts`, `--userns`): the modes a create
//! request names, checked with Docker's words, and what a start makes of them —
//! the namespaces the monitor joins and the container's `/dev/shm`.
//!
//! A shareable IPC namespace (`--ipc shareable`) has its `/dev/shm` on a tmpfs the
//! daemon mounts at `<data-root>/containers/<id>/mounts/shm`, as Docker does, so
//! that containers joining it (`--ipc container:X`) bind the same one. It is
//! unmounted when the container stops.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Handle, Record};
use crate::engine::{Engine, Error, Result};
use crate::init::spec::{Namespace, Shm};

/// `HostConfig.PidMode`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PidMode {
    #[default]
    Private,
    Host,
    /// `container:X`: the PID namespace of another container (by ID once created).
    Container(String),
}

/// `HostConfig.IpcMode`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IpcMode {
    /// The default (`private`, or empty).
    #[default]
    Private,
    /// Private, and others may join it.
    Shareable,
    Host,
    /// Private, without `/dev/shm`.
    None,
    Container(String),
}

/// `container:X` → `Some("X")`; `container:` alone is invalid (`None` with `Err`).
fn container_target(mode: &str) -> Option<std::result::Result<&str, ()>> {
    mode.strip_prefix("container:")
        .map(|t| if t.is_empty() { Err(()) } else { Ok(t) })
}

impl PidMode {
    pub fn parse(mode: &str) -> Result<PidMode> {
        let invalid = || Error::invalid(format!("invalid PID mode: {mode}"));
        Ok(match mode {
            "" => PidMode::Private,
            "host" => PidMode::Host,
            m => match container_target(m) {
                Some(Ok(t)) => PidMode::Container(t.to_string()),
                _ => return Err(invalid()),
            },
        })
    }

    pub fn target(&self) -> Option<&str> {
        match self {
            PidMode::Container(t) => Some(t),
            _ => None,
        }
    }
}

impl IpcMode {
    pub fn parse(mode: &str) -> Result<IpcMode> {
        let invalid = || Error::invalid(format!("invalid IPC mode: {mode}"));
        Ok(match mode {
            "" | "private" => IpcMode::Private,
            "shareable" => IpcMode::Shareable,
            "host" => IpcMode::Host,
            "none" => IpcMode::None,
            m => match container_target(m) {
                Some(Ok(t)) => IpcMode::Container(t.to_string()),
                _ => return Err(invalid()),
            },
        })
    }

    pub fn target(&self) -> Option<&str> {
        match self {
            IpcMode::Container(t) => Some(t),
            _ => None,
        }
    }

    /// How inspect shows it (Docker records the default as `private`).
    pub fn as_str(&self) -> String {
        match self {
            IpcMode::Private => "private".into(),
            IpcMode::Shareable => "shareable".into(),
            IpcMode::Host => "host".into(),
            IpcMode::None => "none".into(),
            IpcMode::Container(t) => format!("container:{t}"),
        }
    }
}

/// `HostConfig.UTSMode`: true for `host`.
pub fn parse_uts(mode: &str) -> Result<bool> {
    match mode {
        "" => Ok(false),
        "host" => Ok(true),
        m => Err(Error::invalid(format!("invalid UTS mode: {m}"))),
    }
}

/// `HostConfig.UsernsMode`: containers run in the host's user namespace (this
/// daemon has no user-namespace remapping), which is what `host` asks for.
pub fn check_userns(mode: &str) -> Result<()> {
    match mode {
        "" | "host" => Ok(()),
        m => Err(Error::invalid(format!("invalid USER mode: {m}"))),
    }
}

/// What the monitor is told about a container's namespaces and `/dev/shm`.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub pid: Namespace,
    pub ipc: Namespace,
    pub uts: Namespace,
    pub shm: Shm,
}

/// The host directory a shareable IPC namespace's `/dev/shm` is mounted on.
pub fn shm_path(container_dir: &Path) -> PathBuf {
    container_dir.join("mounts").join("shm")
}

impl Engine {
    /// The namespaces a starting container joins or shares, checked against the
    /// containers they belong to; mounts its shareable `/dev/shm`.
    pub(super) fn namespace_setup(&self, h: &Handle, r: &Record) -> Result<Setup> {
        let s = &r.settings;
        let mut setup = Setup {
            uts: if s.uts_host {
                Namespace::Host
            } else {
                Namespace::Private
            },
            ..Setup::default()
        };
        match &s.pid_mode {
            PidMode::Private => {}
            PidMode::Host => setup.pid = Namespace::Host,
            PidMode::Container(target) => {
                let (_, pid) = self
                    .running_donor(target, &h.id, |id| format!("container {id} is not running"))?;
                setup.pid = Namespace::Join(PathBuf::from(format!("/proc/{pid}/ns/pid")));
            }
        }
        match &s.ipc_mode {
            IpcMode::Private => {}
            IpcMode::None => setup.shm = Shm::None,
            IpcMode::Host => {
                if !Path::new("/dev/shm").is_dir() {
                    return Err(Error::internal(
                        "/dev/shm is not mounted, but must be for --ipc=host",
                    ));
                }
                setup.ipc = Namespace::Host;
                setup.shm = Shm::Bind(PathBuf::from("/dev/shm"));
            }
            IpcMode::Shareable => {
                setup.shm = Shm::Bind(mount_shm(&h.dir, s.limits.shm_size)?);
            }
            IpcMode::Container(target) => {
                let (donor, pid) = self.running_donor(target, &h.id, |id| {
                    format!("can't join IPC of container {id}: container {id} is not running")
                })?;
                let shm = match &donor.record().settings.ipc_mode {
                    IpcMode::Shareable => shm_path(&donor.dir),
                    IpcMode::Host => PathBuf::from("/dev/shm"),
                    _ => {
                        return Err(Error::conflict(format!(
                            "can't join IPC of container {}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)",
                            donor.id
                        )));
                    }
                };
                setup.ipc = Namespace::Join(PathBuf::from(format!("/proc/{pid}/ns/ipc")));
                setup.shm = Shm::Bind(shm);
            }
        }
        Ok(setup)
    }

    /// The container whose namespace is joined, running (not restarting), and the
    /// PID of its first process.
    fn running_donor(
        &self,
        target: &str,
        own_id: &str,
        not_running: impl Fn(&str) -> String,
    ) -> Result<(Arc<Handle>, i32)> {
        let donor = self.containers.get(target)?;
        if donor.id == own_id {
            return Err(Error::invalid("cannot join own namespace"));
        }
        let c = donor.record().container.clone();
        if !c.state.running || c.state.restarting || c.state.pid <= 0 {
            return Err(Error::conflict(not_running(&donor.id)));
        }
        Ok((donor, c.state.pid))
    }

    /// Unmounts a stopped container's shareable `/dev/shm` (containers that joined
    /// it keep theirs until they stop).
    pub(super) fn release_shm(&self, h: &Handle) {
        if h.record().settings.ipc_mode == IpcMode::Shareable {
            let path = shm_path(&h.dir);
            if crate::engine::volume::is_mountpoint(&path)
                && let Err(e) = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH)
            {
                tracing::warn!(container_id = %h.id, "failed to unmount {}: {e}", path.display());
            }
        }
    }
}

/// Mounts the tmpfs of a shareable `/dev/shm` (once: a daemon that comes back
/// finds it mounted).
fn mount_shm(container_dir: &Path, size: u64) -> Result<PathBuf> {
    let path = shm_path(container_dir);
    if crate::engine::volume::is_mountpoint(&path) {
        return Ok(path);
    }
    std::fs::create_dir_all(&path)
        .map_err(|e| Error::internal(format!("create {}: {e}", path.display())))?;
    let data = format!("mode=1777,size={size}");
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some("shm"),
        &path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(data.as_str()),
    )
    .map_err(|e| Error::internal(format!("mounting shm tmpfs: {e}")))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_docker_checks_them() {
        assert_eq!(PidMode::parse("").unwrap(), PidMode::Private);
        assert_eq!(PidMode::parse("host").unwrap(), PidMode::Host);
        assert_eq!(
            PidMode::parse("container:db").unwrap(),
            PidMode::Container("db".into())
        );
        for bad in ["private", "container:", "bogus"] {
            let e = PidMode::parse(bad).unwrap_err().to_string();
            assert_eq!(e, format!("invalid PID mode: {bad}"));
        }
        for (mode, want) in [
            ("", IpcMode::Private),
            ("private", IpcMode::Private),
            ("shareable", IpcMode::Shareable),
            ("host", IpcMode::Host),
            ("none", IpcMode::None),
            ("container:x1", IpcMode::Container("x1".into())),
        ] {
            assert_eq!(IpcMode::parse(mode).unwrap(), want);
        }
        assert_eq!(
            IpcMode::parse("container:").unwrap_err().to_string(),
            "invalid IPC mode: container:"
        );
        assert_eq!(IpcMode::Private.as_str(), "private");
        assert!(parse_uts("host").unwrap());
        assert!(!parse_uts("").unwrap());
        assert_eq!(
            parse_uts("container:x").unwrap_err().to_string(),
            "invalid UTS mode: container:x"
        );
        assert!(check_userns("host").is_ok());
        assert_eq!(
            check_userns("private").unwrap_err().to_string(),
            "invalid USER mode: private"
        );
    }
}
