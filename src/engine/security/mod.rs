//! What confines a container beyond its namespaces and capabilities: the seccomp
//! filter, the AppArmor profile and `no_new_privs`, chosen from the container's
//! `SecurityOpt` and the daemon's defaults (`seccomp-profile`, `no-new-privileges`)
//! the way Docker chooses them.
//!
//! Filters are compiled here, in the daemon, once per profile and capability set;
//! the monitor only installs the instructions it is given.

pub mod apparmor;
pub mod seccomp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::{Error, Result};
use crate::init::spec::ContainerSpec;

/// A container's `SecurityOpt`, read as Docker reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    /// `no-new-privileges[=bool]`; unset takes the daemon's default.
    pub no_new_privileges: Option<bool>,
    /// `seccomp=unconfined`, `seccomp=builtin`, or a profile's JSON (the docker CLI
    /// sends the content of `seccomp=FILE`).
    pub seccomp: Option<String>,
    /// `apparmor=PROFILE` or `apparmor=unconfined`.
    pub apparmor: Option<String>,
}

/// What `writable-cgroups=true` gets: the container's cgroup files stay read-only.
const WRITABLE_CGROUPS: &str = "writable-cgroups is not supported by this daemon: a container's cgroup filesystem is read-only";

impl SecurityOpts {
    /// Docker's parsing: `no-new-privileges` alone, `key=value` (or the old
    /// `key:value`), keys `label`, `apparmor`, `seccomp`, `no-new-privileges`.
    /// `label=…` is accepted and has no effect, as with Docker on a host without
    /// SELinux.
    pub fn parse(opts: &[String]) -> Result<SecurityOpts> {
        let mut out = SecurityOpts::default();
        for opt in opts {
            if opt == "no-new-privileges" {
                out.no_new_privileges = Some(true);
                continue;
            }
            if opt == "disable" {
                continue;
            }
            if opt == "writable-cgroups" {
                return Err(Error::not_implemented(WRITABLE_CGROUPS));
            }
            let split = if opt.contains('=') {
                opt.split_once('=')
            } else {
                opt.split_once(':')
            };
            let Some((k, v)) = split else {
                return Err(Error::invalid(format!("invalid --security-opt 1: {opt:?}")));
            };
            match k {
                "label" => {}
                // An empty value is the default, as with Docker.
                "apparmor" => out.apparmor = Some(v.to_string()).filter(|v| !v.is_empty()),
                "seccomp" => out.seccomp = Some(v.to_string()).filter(|v| !v.is_empty()),
                "writable-cgroups" => match crate::engine::parse_go_bool(v) {
                    Some(false) => {}
                    Some(true) => return Err(Error::not_implemented(WRITABLE_CGROUPS)),
                    None => {
                        return Err(Error::invalid(format!("invalid --security-opt 2: {opt:?}")));
                    }
                },
                "no-new-privileges" => {
                    let b = crate::engine::parse_go_bool(v).ok_or_else(|| {
                        Error::invalid(format!("invalid --security-opt 2: {opt:?}"))
                    })?;
                    out.no_new_privileges = Some(b);
                }
                _ => return Err(Error::invalid(format!("invalid --security-opt 2: {opt:?}"))),
            }
        }
        Ok(out)
    }
}

/// The daemon's seccomp default (`seccomp-profile`).
#[derive(Debug, Clone)]
pub enum DaemonSeccomp {
    Builtin,
    Unconfined,
    /// A profile file, read and checked at start.
    File {
        path: String,
        profile: Arc<seccomp::Profile>,
    },
}

/// Which profile a filter comes from, for the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    Builtin,
    Daemon,
}

/// The daemon's security defaults and its compiled filters.
pub struct Security {
    seccomp: DaemonSeccomp,
    no_new_privileges: bool,
    /// Whether the kernel has seccomp filters.
    kernel_seccomp: bool,
    kernel: (u32, u32),
    apparmor: Option<apparmor::AppArmor>,
    filters: Mutex<Filters>,
}

/// Compiled filters by profile and capability set.
type Filters = HashMap<(Source, Vec<String>), Arc<[u64]>>;

impl Security {
    /// Reads the daemon's profile (`seccomp-profile`: `builtin`, `unconfined` or a
    /// path) and finds out what the host supports.
    pub fn open(seccomp_profile: &str, no_new_privileges: bool) -> Result<Security> {
        let seccomp = match seccomp_profile {
            "" | "builtin" => DaemonSeccomp::Builtin,
            "unconfined" => DaemonSeccomp::Unconfined,
            path => {
                let bytes = std::fs::read(path).map_err(|e| {
                    Error::invalid(format!(
                        "opening seccomp profile ({path}) failed: {}",
                        crate::store::strip_os_suffix(&e)
                    ))
                })?;
                let profile = seccomp::parse(&bytes)
                    .map_err(|e| Error::invalid(format!("seccomp profile ({path}): {e}")))?;
                DaemonSeccomp::File {
                    path: path.to_string(),
                    profile: Arc::new(profile),
                }
            }
        };
        if !seccomp::supported() {
            tracing::warn!(
                "seccomp filters are built for x86_64 only: containers on this architecture run without a seccomp profile"
            );
        }
        let kernel = seccomp::kernel_version(&crate::engine::system::host_facts().kernel_version)
            .unwrap_or((0, 0));
        Ok(Security {
            seccomp,
            no_new_privileges,
            kernel_seccomp: seccomp::kernel_supports_filters(),
            kernel,
            apparmor: apparmor::AppArmor::detect(),
            filters: Mutex::new(HashMap::new()),
        })
    }

    /// Loads AppArmor's default profile afresh, where the host has AppArmor. Slow
    /// (it runs `apparmor_parser`): for a blocking thread, after start-up.
    pub fn refresh_apparmor(&self) {
        if let Some(a) = &self.apparmor {
            a.refresh_default();
        }
    }

    /// Whether containers can get seccomp filters here.
    pub fn seccomp_available(&self) -> bool {
        self.kernel_seccomp && seccomp::supported()
    }

    /// `docker info` → `SecurityOptions`, in Docker's order: AppArmor, the seccomp
    /// profile, `cgroupns` (containers get a cgroup namespace of their own), and
    /// no-new-privileges.
    pub fn info_options(&self, cgroupns: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.apparmor.is_some() {
            out.push("name=apparmor".to_string());
        }
        if self.seccomp_available() {
            let profile = match &self.seccomp {
                DaemonSeccomp::Builtin => "builtin",
                DaemonSeccomp::Unconfined => "unconfined",
                DaemonSeccomp::File { path, .. } => path.as_str(),
            };
            out.push(format!("name=seccomp,profile={profile}"));
        }
        if cgroupns {
            out.push("name=cgroupns".to_string());
        }
        if self.no_new_privileges {
            out.push("name=no-new-privileges".to_string());
        }
        out
    }

    /// The AppArmor profile inspect shows for a container (`AppArmorProfile`): empty
    /// where the host has no AppArmor.
    pub fn apparmor_profile(&self, opts: &SecurityOpts, privileged: bool) -> String {
        match &self.apparmor {
            None => String::new(),
            Some(_) => apparmor::profile_for(opts.apparmor.as_deref(), privileged),
        }
    }

    /// Fills in the spec's seccomp filter (for the capabilities the spec has),
    /// `no_new_privs` and AppArmor profile for a container's start. (An exec gets
    /// its container's, from the container's monitor.)
    pub fn confine(
        &self,
        spec: &mut ContainerSpec,
        opts: &SecurityOpts,
        privileged: bool,
    ) -> Result<()> {
        spec.no_new_privileges = opts.no_new_privileges.unwrap_or(self.no_new_privileges);
        let filter = self.filter(opts, privileged, &spec.capabilities)?;
        spec.seccomp = filter.map(|f| f.to_vec());
        spec.apparmor_profile = match &self.apparmor {
            Some(a) => a.prepare(opts.apparmor.as_deref(), privileged)?,
            None => match opts.apparmor.as_deref() {
                None | Some("unconfined") => None,
                Some(p) => {
                    return Err(Error::invalid(format!(
                        "cannot apply the AppArmor profile {p:?}: AppArmor is not enabled on this host"
                    )));
                }
            },
        };
        Ok(())
    }

    fn filter(
        &self,
        opts: &SecurityOpts,
        privileged: bool,
        caps: &[String],
    ) -> Result<Option<Arc<[u64]>>> {
        // A privileged container runs unconfined unless it names a profile.
        let choice = opts.seccomp.as_deref();
        if choice == Some("unconfined") || (privileged && choice.is_none()) {
            return Ok(None);
        }
        if !self.seccomp_available() {
            if choice.is_some_and(|c| c != "builtin") {
                return Err(Error::invalid(
                    "seccomp is not enabled in your kernel, cannot run a custom seccomp profile",
                ));
            }
            return Ok(None);
        }
        let target = seccomp::Target {
            caps,
            kernel: self.kernel,
        };
        let (source, profile) = match (choice, &self.seccomp) {
            (Some("builtin"), _) | (None, DaemonSeccomp::Builtin) => {
                (Source::Builtin, seccomp::builtin())
            }
            (None, DaemonSeccomp::Unconfined) => return Ok(None),
            (None, DaemonSeccomp::File { profile, .. }) => (Source::Daemon, profile.as_ref()),
            (Some(json), _) => {
                // A container's own profile: compiled for it alone.
                let p = seccomp::parse(json.as_bytes()).map_err(Error::invalid)?;
                if p.is_empty() {
                    return Ok(None);
                }
                let f = seccomp::compile(&p, &target).map_err(Error::invalid)?;
                return Ok(Some(f.into()));
            }
        };
        if profile.is_empty() {
            return Ok(None);
        }
        let key = (source, caps.to_vec());
        if let Some(f) = self.lock().get(&key) {
            return Ok(Some(f.clone()));
        }
        let f: Arc<[u64]> = seccomp::compile(profile, &target)
            .map_err(Error::invalid)?
            .into();
        self.lock().insert(key, f.clone());
        Ok(Some(f))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Filters> {
        self.filters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<SecurityOpts> {
        SecurityOpts::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn security_opts_as_docker_reads_them() {
        let o = parse(&["no-new-privileges", "seccomp=unconfined", "label=disable"]).unwrap();
        assert_eq!(o.no_new_privileges, Some(true));
        assert_eq!(o.seccomp.as_deref(), Some("unconfined"));
        let o = parse(&["no-new-privileges=false", "apparmor:custom"]).unwrap();
        assert_eq!(o.no_new_privileges, Some(false));
        assert_eq!(o.apparmor.as_deref(), Some("custom"));
        let e = parse(&["nope"]).unwrap_err();
        assert_eq!(e.to_string(), "invalid --security-opt 1: \"nope\"");
        let e = parse(&["foo=bar"]).unwrap_err();
        assert_eq!(e.to_string(), "invalid --security-opt 2: \"foo=bar\"");
        assert_eq!(
            parse(&["seccomp=", "apparmor="]).unwrap(),
            SecurityOpts::default()
        );
        assert!(parse(&["writable-cgroups=false"]).is_ok());
        let e = parse(&["writable-cgroups"]).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = parse(&["no-new-privileges=maybe"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --security-opt 2: \"no-new-privileges=maybe\""
        );
    }
}
