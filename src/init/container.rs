//! The container's side: what its first process does between `clone` (already in a
//! new mount namespace and, unless shared with the host or joined, new UTS, IPC, PID
//! and network namespaces) and `exec`.
//! The steps read top to bottom in the order the kernel needs them:
//!
//! setsid → (with the systemd driver, wait to be in the scope) → join the cgroup, then a cgroup namespace → hostname → join IPC and
//! network namespaces, or `lo` up → root filesystem (proc, sys, cgroup, dev, binds)
//! → pivot_root → masked and read-only paths, read-only root → stdio → user lookup
//! → working directory → bounding set, AppArmor profile, seccomp filter (or
//! no_new_privs), user and groups, capabilities → `PATH` lookup → (the seccomp
//! filter, with no_new_privs) → exec (through the init with `--init`).
//!
//! Any failure is sent to the monitor on the close-on-exec error pipe as a
//! [`SyncMessage::Failed`] line; a successful exec closes that pipe with nothing written,
//! which is how the monitor knows the command runs.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::caps;
use super::cgroup::Hierarchy;
use super::exec::{self, ExecFailure};
use super::init_process;
use super::rootfs;
use super::security;
use super::spec::{ContainerSpec, Namespace, NetworkMode, SyncMessage};
use super::stdio::{self, ContainerStdio};
use super::sys;
use super::user;

/// Exit status recorded for a start that failed before the command could be looked up.
pub const EXIT_SETUP_FAILED: i32 = 128;

/// What the container's process gets from the monitor across `clone`.
pub struct ChildContext<'a> {
    pub spec: &'a ContainerSpec,
    /// The files to write `0` to, joining the container's cgroup in every hierarchy
    /// the clone did not already place the process in.
    pub cgroup_joins: Vec<PathBuf>,
    /// With the systemd cgroup driver: read end of a pipe the monitor writes to once
    /// systemd has moved this process into the container's scope. Nothing else may
    /// happen before (the cgroup namespace is made from the cgroup it is in).
    pub scope_ready: Option<OwnedFd>,
    /// The monitor's end of that pipe, closed here first: should the monitor die
    /// meanwhile, the read ends (EOF) instead of waiting forever.
    pub scope_go: Option<std::os::fd::RawFd>,
    /// The hierarchies, to mount inside the container.
    pub hierarchies: &'a [Hierarchy],
    pub stdio: ContainerStdio,
    /// The network namespace to join (`NetworkMode::Join`), opened by the monitor.
    pub netns: Option<OwnedFd>,
    /// The IPC namespace to join (`Namespace::Join`), opened by the monitor.
    pub ipcns: Option<OwnedFd>,
    /// Write end of the error pipe (close-on-exec).
    pub error_pipe: OwnedFd,
}

/// The namespaces the container's process is cloned into: a new mount namespace,
/// and new PID, IPC, UTS and network namespaces unless it shares or joins them (a
/// PID namespace is joined by the monitor before the clone, the others by the
/// process after it).
pub fn clone_flags(spec: &ContainerSpec) -> libc::c_int {
    let mut flags = libc::CLONE_NEWNS;
    for (ns, flag) in [
        (&spec.pid, libc::CLONE_NEWPID),
        (&spec.ipc, libc::CLONE_NEWIPC),
        (&spec.uts, libc::CLONE_NEWUTS),
    ] {
        if ns.is_private() {
            flags |= flag;
        }
    }
    if matches!(spec.network, NetworkMode::None | NetworkMode::Private) {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}

/// Runs in the cloned child; never returns.
pub fn run(ctx: ChildContext<'_>) -> ! {
    let failure = match setup_and_exec(&ctx) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    report_and_exit(failure, &ctx.error_pipe)
}

/// Sends why the command did not start to the monitor, and exits.
fn report_and_exit(failure: ExecFailure, error_pipe: &OwnedFd) -> ! {
    let msg = SyncMessage::Failed {
        message: failure.message,
        exit_code: failure.exit_code,
    };
    if let Ok(mut line) = serde_json::to_vec(&msg) {
        line.push(b'\n');
        let _ = sys::write_all(error_pipe.as_raw_fd(), &line);
    }
    sys::exit_now(1)
}

enum Never {}

fn setup_failed(e: io::Error) -> ExecFailure {
    ExecFailure {
        message: crate::store::strip_os_suffix(&e),
        exit_code: EXIT_SETUP_FAILED,
    }
}

fn setup_and_exec(ctx: &ChildContext<'_>) -> Result<Never, ExecFailure> {
    let spec = ctx.spec;
    sys::cvt(unsafe { libc::setsid() })
        .map_err(|e| setup_failed(io::Error::new(e.kind(), format!("setsid: {e}"))))?;

    if let Some(ready) = &ctx.scope_ready {
        if let Some(go) = ctx.scope_go {
            unsafe { libc::close(go) };
        }
        let mut byte = [0u8; 1];
        if !matches!(sys::read(ready.as_raw_fd(), &mut byte), Ok(1)) {
            // The monitor gave up on the start and reports why.
            sys::exit_now(1);
        }
    }
    for procs in &ctx.cgroup_joins {
        std::fs::write(procs, "0")
            .map_err(|e| setup_failed(crate::store::with_path(e, "join cgroup", procs)))?;
    }
    if !spec.cgroupns_host {
        unshare(libc::CLONE_NEWCGROUP, "cgroup").map_err(setup_failed)?;
    }

    if spec.uts.is_private() {
        set_names(spec).map_err(setup_failed)?;
    }
    if let (Namespace::Join(path), Some(ns)) = (&spec.ipc, &ctx.ipcns) {
        join(ns, libc::CLONE_NEWIPC, "IPC", path).map_err(setup_failed)?;
    }
    match (&spec.network, &ctx.netns) {
        (NetworkMode::Join(path), Some(ns)) => {
            join(ns, libc::CLONE_NEWNET, "network", path).map_err(setup_failed)?;
        }
        (NetworkMode::None | NetworkMode::Private, _) => {
            crate::net::netns::loopback_up().map_err(setup_failed)?;
        }
        _ => {}
    }

    let prepared = rootfs::prepare(spec, ctx.hierarchies).map_err(setup_failed)?;
    if let (Some(console), ContainerStdio::Tty { console_socket }) = (&prepared.console, &ctx.stdio)
    {
        sys::send_fd(console_socket.as_raw_fd(), console.master.as_raw_fd()).map_err(|e| {
            setup_failed(io::Error::new(
                e.kind(),
                format!("send the terminal to the monitor: {e}"),
            ))
        })?;
    }
    rootfs::pivot(&spec.rootfs).map_err(setup_failed)?;
    write_sysctls(&spec.sysctls).map_err(setup_failed)?;
    rootfs::restrict(&spec.masked_paths, &spec.readonly_paths).map_err(setup_failed)?;
    if spec.readonly_rootfs {
        rootfs::readonly_root().map_err(setup_failed)?;
    }

    let null = if spec.tty || spec.open_stdin {
        None
    } else {
        Some(
            sys::open(Path::new("/dev/null"), libc::O_RDONLY, 0).map_err(|e| {
                setup_failed(crate::store::with_path(e, "open", Path::new("/dev/null")))
            })?,
        )
    };
    let slave = prepared.console.as_ref().map(|c| &c.slave);
    stdio::install(&ctx.stdio, slave, null.as_ref()).map_err(setup_failed)?;
    drop(prepared);

    finish_and_exec(spec, true)
}

/// The steps a container's first process and an exec share, once the process
/// sees the container's root and has its stdio: user lookup → working directory
/// (created when missing for the container, as Docker does; an exec's must exist)
/// → bounding set, user and groups, capabilities → `PATH` lookup → exec.
fn finish_and_exec(spec: &ContainerSpec, create_cwd: bool) -> Result<Never, ExecFailure> {
    let passwd = user::read_optional(Path::new("/etc/passwd")).map_err(setup_failed)?;
    let group = user::read_optional(Path::new("/etc/group")).map_err(setup_failed)?;
    let who = user::resolve(&spec.user, passwd.as_deref(), group.as_deref()).map_err(|m| {
        ExecFailure {
            message: m,
            exit_code: EXIT_SETUP_FAILED,
        }
    })?;
    let mut who = who;
    user::add_groups(&mut who, &spec.group_add, group.as_deref()).map_err(|m| ExecFailure {
        message: m,
        exit_code: EXIT_SETUP_FAILED,
    })?;
    let env = user::with_home(&spec.env, &who.home);

    if create_cwd {
        rootfs::ensure_dir(&spec.cwd).map_err(setup_failed)?;
    }

    set_limits(spec).map_err(setup_failed)?;
    let wanted = if spec.privileged {
        caps::all_known()
    } else {
        caps::parse(&spec.capabilities).map_err(|m| ExecFailure {
            message: m,
            exit_code: EXIT_SETUP_FAILED,
        })?
    };
    let keep = caps::CapSet(wanted.0 & caps::current_bounding().0);
    caps::limit_bounding(keep).map_err(setup_failed)?;
    if let Some(profile) = &spec.apparmor_profile {
        security::apparmor_exec(profile).map_err(setup_failed)?;
    }
    // Without no_new_privs, installing the filter needs CAP_SYS_ADMIN: now, while
    // the process still has it.
    if spec.no_new_privileges {
        security::set_no_new_privileges().map_err(setup_failed)?;
    } else if let Some(filter) = &spec.seccomp {
        security::install_seccomp(filter).map_err(setup_failed)?;
    }
    switch_user(&who).map_err(setup_failed)?;
    caps::apply(keep).map_err(setup_failed)?;

    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    sys::chdir(Path::new(cwd)).map_err(|e| {
        setup_failed(io::Error::new(
            e.kind(),
            format!(
                "chdir to cwd ({cwd:?}) set in config.json failed: {}",
                crate::store::strip_os_suffix(&e)
            ),
        ))
    })?;

    let Some(name) = spec.args.first() else {
        return Err(ExecFailure {
            message: "no command specified".into(),
            exit_code: EXIT_SETUP_FAILED,
        });
    };
    let path = exec::look_path(name, exec::env_value(&env, "PATH").unwrap_or(""))?;

    unsafe { libc::umask(0o022) };
    // Nothing the monitor holds may reach the command.
    let _ = sys::cloexec_from(3);
    if spec.no_new_privileges
        && let Some(filter) = &spec.seccomp
    {
        security::install_seccomp(filter).map_err(setup_failed)?;
    }

    let exec_now = || {
        sys::reset_signals();
        exec::execve(&path, &spec.args, &env)
    };
    let err = if spec.init {
        init_process::run(spec.tty, &spec.args, exec_now)
    } else {
        if spec.tty
            && let Err(e) = stdio::set_controlling_terminal(0)
        {
            return Err(setup_failed(e));
        }
        exec_now()
    };
    Err(exec::exec_failure(&path, &err))
}

/// `--sysctl`s, under the container's own `/proc/sys` (before it is made
/// read-only).
fn write_sysctls(sysctls: &[(String, String)]) -> io::Result<()> {
    for (key, value) in sysctls {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "write sysctl key {key}: {}",
                    crate::store::strip_os_suffix(&e)
                ),
            )
        })?;
    }
    Ok(())
}

/// `--oom-score-adj` and `--ulimit`s, with runc's words when the kernel refuses.
fn set_limits(spec: &ContainerSpec) -> io::Result<()> {
    if spec.oom_score_adj != 0 {
        std::fs::write("/proc/self/oom_score_adj", spec.oom_score_adj.to_string()).map_err(
            |e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "set oom_score_adj to {}: {}",
                        spec.oom_score_adj,
                        crate::store::strip_os_suffix(&e)
                    ),
                )
            },
        )?;
    }
    for l in &spec.rlimits {
        let limit = libc::rlimit {
            rlim_cur: l.soft,
            rlim_max: l.hard,
        };
        sys::cvt(unsafe { libc::setrlimit(l.resource as _, &limit) }).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "error setting rlimit type {}: {}",
                    l.resource,
                    crate::store::strip_os_suffix(&e).to_lowercase()
                ),
            )
        })?;
    }
    Ok(())
}

/// Joins the namespace open as `ns` (found at `path`).
fn join(ns: &OwnedFd, flag: libc::c_int, kind: &str, path: &Path) -> io::Result<()> {
    sys::cvt(unsafe { libc::setns(ns.as_raw_fd(), flag) })
        .map(drop)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "join {kind} namespace {}: {}",
                    path.display(),
                    crate::store::strip_os_suffix(&e)
                ),
            )
        })
}

fn unshare(flag: libc::c_int, name: &str) -> io::Result<()> {
    sys::cvt(unsafe { libc::unshare(flag) })
        .map(drop)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "create {name} namespace: {}",
                    crate::store::strip_os_suffix(&e)
                ),
            )
        })
}

fn set_names(spec: &ContainerSpec) -> io::Result<()> {
    if !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname).map_err(|e| {
            io::Error::other(format!(
                "set hostname {:?}: {}",
                spec.hostname,
                e.desc().to_lowercase()
            ))
        })?;
    }
    if !spec.domainname.is_empty() {
        let name = &spec.domainname;
        sys::cvt(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map_err(
            |e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "set domain name {name:?}: {}",
                        crate::store::strip_os_suffix(&e)
                    ),
                )
            },
        )?;
    }
    Ok(())
}

fn switch_user(who: &user::ExecUser) -> io::Result<()> {
    let groups: Vec<libc::gid_t> = who.sgids.clone();
    sys::cvt(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) }).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("setgroups: {}", crate::store::strip_os_suffix(&e)),
        )
    })?;
    sys::cvt(unsafe { libc::setresgid(who.gid, who.gid, who.gid) }).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("setgid {}: {}", who.gid, crate::store::strip_os_suffix(&e)),
        )
    })?;
    sys::cvt(unsafe { libc::setresuid(who.uid, who.uid, who.uid) }).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("setuid {}: {}", who.uid, crate::store::strip_os_suffix(&e)),
        )
    })?;
    Ok(())
}

/// The namespaces an exec joins, in the order it joins them (the mount namespace
/// last: the other files were opened before, from the host's `/proc`).
pub const EXEC_NAMESPACES: &[(&str, libc::c_int)] = &[
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

/// What an exec's process gets from its monitor across the fork (already in the
/// container's PID namespace: the monitor joined it for its children).
pub struct ExecContext<'a> {
    pub spec: &'a ContainerSpec,
    pub cgroup_joins: Vec<PathBuf>,
    /// The container's namespaces, as [`EXEC_NAMESPACES`] lists them.
    pub namespaces: Vec<(OwnedFd, libc::c_int, &'static str)>,
    pub stdio: ContainerStdio,
    pub error_pipe: OwnedFd,
}

/// Runs in the exec's forked child; never returns.
pub fn run_exec(ctx: ExecContext<'_>) -> ! {
    let failure = match exec_setup(&ctx) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    report_and_exit(failure, &ctx.error_pipe)
}

/// setsid → cgroup → namespaces → terminal → stdio → user → capabilities →
/// working directory → `PATH` lookup → exec. The root, mounts, masked paths and
/// names are the container's, reached through its mount namespace.
fn exec_setup(ctx: &ExecContext<'_>) -> Result<Never, ExecFailure> {
    let spec = ctx.spec;
    sys::cvt(unsafe { libc::setsid() })
        .map_err(|e| setup_failed(io::Error::new(e.kind(), format!("setsid: {e}"))))?;
    for procs in &ctx.cgroup_joins {
        std::fs::write(procs, "0")
            .map_err(|e| setup_failed(crate::store::with_path(e, "join cgroup", procs)))?;
    }
    for (fd, flag, name) in &ctx.namespaces {
        sys::cvt(unsafe { libc::setns(fd.as_raw_fd(), *flag) }).map_err(|e| {
            setup_failed(io::Error::new(
                e.kind(),
                format!(
                    "join the container's {name} namespace: {}",
                    crate::store::strip_os_suffix(&e)
                ),
            ))
        })?;
    }
    let console = match &ctx.stdio {
        ContainerStdio::Tty { console_socket } => {
            let c = stdio::open_console(Path::new("/dev/pts"), spec.console_size)
                .map_err(setup_failed)?;
            sys::send_fd(console_socket.as_raw_fd(), c.master.as_raw_fd()).map_err(|e| {
                setup_failed(io::Error::new(
                    e.kind(),
                    format!("send the terminal to the monitor: {e}"),
                ))
            })?;
            Some(c)
        }
        ContainerStdio::Pipes { .. } => None,
    };
    let null = if spec.tty || spec.open_stdin {
        None
    } else {
        Some(
            sys::open(Path::new("/dev/null"), libc::O_RDONLY, 0).map_err(|e| {
                setup_failed(crate::store::with_path(e, "open", Path::new("/dev/null")))
            })?,
        )
    };
    stdio::install(
        &ctx.stdio,
        console.as_ref().map(|c| &c.slave),
        null.as_ref(),
    )
    .map_err(setup_failed)?;
    drop(console);
    finish_and_exec(spec, false)
}
