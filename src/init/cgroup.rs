//! The container's control groups, on cgroup v1, v2 and hybrid hosts.
//!
//! The hierarchies are found in `/proc/self/mountinfo`: every v1 hierarchy (one or more
//! controllers, or a named one such as `name=systemd`) and the v2 unified one (at
//! `/sys/fs/cgroup` on a v2 host, `/sys/fs/cgroup/unified` on a hybrid one). The monitor
//! creates `<mount>/<cgroup_path>` in each, sets up v1 `cpuset` (a new cpuset has no
//! CPUs until given some) and the v1 `devices` whitelist Docker uses, and the container's
//! first process joins them all before anything else. At exit the directories are
//! removed; the parents (`docker/`) stay, as in Docker.
//!
//! On a v2-only host, which has no devices controller, the same device rules are
//! enforced by an eBPF program (see `devices`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::store::with_path;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A v1 hierarchy; `options` is what mounting it again needs (`memory`,
    /// `cpu,cpuacct`, `none,name=systemd`).
    V1 { controllers: Vec<String> },
    /// The v2 unified hierarchy.
    V2,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        matches!(&self.kind, Kind::V1 { controllers } if controllers.iter().any(|c| c == controller))
    }

    /// Options to mount this hierarchy inside the container.
    pub fn mount_options(&self) -> Option<String> {
        match &self.kind {
            Kind::V2 => None,
            Kind::V1 { controllers } => {
                if controllers.iter().all(|c| c.starts_with("name=")) {
                    Some(format!("none,{}", controllers.join(",")))
                } else {
                    Some(controllers.join(","))
                }
            }
        }
    }
}

const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The cgroup hierarchies in `mountinfo` (the text of `/proc/self/mountinfo`), each
/// once, in mount order.
pub fn parse_mountinfo(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(mount_point), Some(fstype)) = (left.get(4), right.first()) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
        let kind = match *fstype {
            "cgroup2" => Kind::V2,
            "cgroup" => {
                let opts = right.get(2).copied().unwrap_or("");
                let controllers: Vec<String> = opts
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                    .map(String::from)
                    .collect();
                if controllers.is_empty() {
                    continue;
                }
                Kind::V1 { controllers }
            }
            _ => continue,
        };
        if !out.iter().any(|h| h.kind == kind) {
            out.push(Hierarchy { mount_point, kind });
        }
    }
    out
}

/// `\040` and friends in mountinfo paths.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The hierarchies mounted on this host.
pub fn detect() -> io::Result<Vec<Hierarchy>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(path).map_err(|e| with_path(e, "read", path))?;
    Ok(parse_mountinfo(&text))
}

/// [`detect`], once per process: for the daemon, whose mount table grows with every
/// running container (so reading it is not cheap) while the cgroup mounts stay.
pub fn hierarchies() -> io::Result<&'static [Hierarchy]> {
    static FOUND: std::sync::OnceLock<Vec<Hierarchy>> = std::sync::OnceLock::new();
    if let Some(h) = FOUND.get() {
        return Ok(h);
    }
    let found = detect()?;
    Ok(FOUND.get_or_init(|| found))
}

/// `docker/<id>` or `/docker/<id>` → the relative path, refusing `..` and empty parts.
pub fn relative_path(cgroup_path: &str) -> io::Result<PathBuf> {
    let trimmed = cgroup_path.trim_start_matches('/');
    let bad = trimmed.is_empty()
        || trimmed
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid cgroup path {cgroup_path:?}: expected a relative path such as docker/<id>"
            ),
        ));
    }
    Ok(PathBuf::from(trimmed))
}

/// The file listing the processes of `cgroup_path` (for `docker top`): from a v1
/// hierarchy with a controller every container joins, else the unified one.
pub fn procs_file(hierarchies: &[Hierarchy], cgroup_path: &str) -> io::Result<PathBuf> {
    let rel = relative_path(cgroup_path)?;
    let pick = ["pids", "memory", "cpu", "devices", "freezer"]
        .iter()
        .find_map(|c| hierarchies.iter().find(|h| h.has(c)))
        .or_else(|| hierarchies.iter().find(|h| h.kind == Kind::V2))
        .or_else(|| hierarchies.first())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup hierarchy is mounted"))?;
    Ok(pick.mount_point.join(rel).join("cgroup.procs"))
}

/// Freezes (`docker pause`) or thaws the processes of `cgroup_path`: with the v1
/// freezer where the host has one, else with the v2 `cgroup.freeze`; returns once
/// the kernel reports the new state (a freeze waits for every task to stop).
pub fn freeze(hierarchies: &[Hierarchy], cgroup_path: &str, frozen: bool) -> io::Result<()> {
    let rel = relative_path(cgroup_path)?;
    let (file, value, state_file, done): (PathBuf, &str, PathBuf, &str) =
        if let Some(h) = hierarchies.iter().find(|h| h.has("freezer")) {
            let dir = h.mount_point.join(&rel);
            let (value, done) = if frozen {
                ("FROZEN", "FROZEN")
            } else {
                ("THAWED", "THAWED")
            };
            (
                dir.join("freezer.state"),
                value,
                dir.join("freezer.state"),
                done,
            )
        } else if let Some(h) = hierarchies.iter().find(|h| h.kind == Kind::V2) {
            let dir = h.mount_point.join(&rel);
            let (value, done) = if frozen {
                ("1", "frozen 1")
            } else {
                ("0", "frozen 0")
            };
            (
                dir.join("cgroup.freeze"),
                value,
                dir.join("cgroup.events"),
                done,
            )
        } else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this host has no cgroup freezer",
            ));
        };
    // A v1 freeze can stay FREEZING while a task is busy in the kernel: asking
    // again nudges it, as runc does.
    for _ in 0..1000 {
        write(&file, value)?;
        let state =
            fs::read_to_string(&state_file).map_err(|e| with_path(e, "read", &state_file))?;
        if state.lines().any(|l| l.trim() == done) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{} did not reach {done:?}", state_file.display()),
    ))
}

/// Docker's default device rules: nothing but the standard nodes, the container's
/// ptys and creating (not using) any node.
pub const DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// The container's directory in every hierarchy.
#[derive(Debug, Clone)]
pub struct ContainerCgroup {
    pub dirs: Vec<(Hierarchy, PathBuf)>,
}

impl ContainerCgroup {
    /// Creates (or reuses) `<mount>/<cgroup_path>` in each hierarchy and configures it.
    pub fn create(
        hierarchies: &[Hierarchy],
        cgroup_path: &str,
        privileged: bool,
        extra_device_rules: &[String],
    ) -> io::Result<ContainerCgroup> {
        let rel = relative_path(cgroup_path)?;
        let v1_devices = hierarchies.iter().any(|h| h.has("devices"));
        let mut dirs = Vec::new();
        for h in hierarchies {
            let dir = h.mount_point.join(&rel);
            let created = create_levels(&h.mount_point, &rel)?;
            dirs.push((h.clone(), dir.clone()));
            if h.has("cpuset") {
                // Every level, not only new ones: a parent made by another tool may
                // have been left without CPUs, which would make joining fail.
                let mut level = h.mount_point.clone();
                for part in rel.components() {
                    level.push(part);
                    init_cpuset(&level)?;
                }
            }
            if h.kind == Kind::V2 {
                for level in &created {
                    if let Some(parent) = level.parent() {
                        enable_controllers(parent);
                    }
                }
                // A v2-only host has no devices controller: a program enforces the
                // same rules.
                if !privileged && !v1_devices {
                    attach_device_program(&dir, extra_device_rules)?;
                }
            }
            if h.has("devices") {
                if privileged {
                    write(&dir.join("devices.allow"), "a *:* rwm")?;
                } else {
                    write(&dir.join("devices.deny"), "a")?;
                    for rule in DEFAULT_DEVICE_RULES
                        .iter()
                        .copied()
                        .chain(extra_device_rules.iter().map(String::as_str))
                    {
                        write(&dir.join("devices.allow"), rule)?;
                    }
                }
            }
        }
        Ok(ContainerCgroup { dirs })
    }

    /// The directories of a container's cgroup that exists already (an exec joins
    /// it); nothing is created or configured.
    pub fn existing(hierarchies: &[Hierarchy], cgroup_path: &str) -> io::Result<ContainerCgroup> {
        let rel = relative_path(cgroup_path)?;
        let mut dirs = Vec::new();
        for h in hierarchies {
            let dir = h.mount_point.join(&rel);
            if !dir.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("the container's cgroup {} is gone", dir.display()),
                ));
            }
            dirs.push((h.clone(), dir));
        }
        Ok(ContainerCgroup { dirs })
    }

    /// The container's directory in the unified (v2) hierarchy, if there is one: the
    /// container's process is cloned straight into it (`CLONE_INTO_CGROUP`).
    pub fn unified_dir(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| h.kind == Kind::V2)
            .map(|(_, d)| d.as_path())
    }

    /// The files the container's first process writes `0` to, joining its cgroup in
    /// every hierarchy (`unified_joined`: the clone already placed it in the v2 one).
    ///
    /// On v1 it writes to `tasks`, which moves only the calling thread (the process
    /// has no other): moving a whole thread group through `cgroup.procs` takes the
    /// kernel's global threadgroup lock and waits for an RCU grace period, several
    /// milliseconds of every container start.
    pub fn join_files(&self, unified_joined: bool) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .filter_map(|(h, d)| match h.kind {
                Kind::V1 { .. } => Some(d.join("tasks")),
                Kind::V2 if unified_joined => None,
                Kind::V2 => Some(d.join("cgroup.procs")),
            })
            .collect()
    }

    /// An inotify descriptor (non-blocking) that becomes readable when the v2
    /// `memory.events` file changes: the OOM killer counts its kills there the
    /// moment it acts, before the cgroup may be gone. `None` without one.
    pub fn watch_oom(&self) -> Option<std::os::fd::OwnedFd> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let events = self.unified_dir()?.join("memory.events");
        let path = std::ffi::CString::new(events.as_os_str().as_bytes()).ok()?;
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let wd = unsafe {
            libc::inotify_add_watch(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                path.as_ptr(),
                libc::IN_MODIFY,
            )
        };
        (wd >= 0).then_some(fd)
    }

    /// Whether the kernel's OOM killer killed a process of the container.
    pub fn oom_killed(&self) -> bool {
        self.dirs.iter().any(|(h, d)| {
            let file = match &h.kind {
                Kind::V1 { .. } if h.has("memory") => d.join("memory.oom_control"),
                Kind::V2 => d.join("memory.events"),
                _ => return false,
            };
            fs::read_to_string(file)
                .map(|text| oom_kill_count(&text) > 0)
                .unwrap_or(false)
        })
    }

    /// Kills every process left in the container's cgroup, and waits (a second at
    /// most) until the kernel has them all out of it.
    pub fn kill_all(&self) {
        for _ in 0..100 {
            let mut left = false;
            for (_, dir) in &self.dirs {
                let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) else {
                    continue;
                };
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // Gone already (ESRCH), or dead and waiting for its parent to
                    // reap it, is what was wanted.
                    if !is_zombie(pid) && unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                        left = true;
                    }
                }
            }
            if !left {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Removes the container's directories; a directory whose last processes are
    /// still being torn down by the kernel is retried briefly. Returns what could
    /// not be removed.
    pub fn remove(&self) -> Vec<io::Error> {
        let mut errors = Vec::new();
        for (_, dir) in &self.dirs {
            let mut delay = std::time::Duration::from_millis(1);
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && delay.as_millis() < 512 => {
                        std::thread::sleep(delay);
                        delay *= 2;
                    }
                    Err(e) => {
                        errors.push(with_path(e, "remove cgroup", dir));
                        break;
                    }
                }
            }
        }
        errors
    }
}

/// Whether the process has ended and only waits to be reaped (state `Z`).
fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

fn attach_device_program(dir: &Path, extra: &[String]) -> io::Result<()> {
    let rules = DEFAULT_DEVICE_RULES
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .map(super::devices::parse_rule)
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    let fd = super::sys::open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| with_path(e, "open cgroup", dir))?;
    super::devices::attach(std::os::fd::AsRawFd::as_raw_fd(&fd), &rules)
        .map_err(|e| io::Error::new(e.kind(), format!("{} (cgroup {})", e, dir.display())))
}

/// `oom_kill N` in `memory.oom_control` (v1) or `memory.events` (v2).
fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Creates each missing level of `rel` under `root`; returns the new directories,
/// outermost first.
fn create_levels(root: &Path, rel: &Path) -> io::Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    let mut dir = root.to_path_buf();
    for part in rel.components() {
        dir.push(part);
        match fs::create_dir(&dir) {
            Ok(()) => created.push(dir.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(with_path(e, "create cgroup", &dir)),
        }
    }
    Ok(created)
}

/// Gives a new v1 cpuset the CPUs and memory nodes of its parent.
fn init_cpuset(dir: &Path) -> io::Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mine = fs::read_to_string(dir.join(file)).unwrap_or_default();
        if !mine.trim().is_empty() {
            continue;
        }
        let theirs = fs::read_to_string(parent.join(file))
            .map_err(|e| with_path(e, "read", &parent.join(file)))?;
        write(&dir.join(file), theirs.trim())?;
    }
    Ok(())
}

/// Lets the children of a v2 cgroup use the controllers it has (best effort: the
/// container runs without them, as it would on a host that delegates none).
fn enable_controllers(dir: &Path) {
    let Ok(available) = fs::read_to_string(dir.join("cgroup.controllers")) else {
        return;
    };
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let wanted: Vec<String> = available
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if !wanted.is_empty() {
        let _ = fs::write(dir.join("cgroup.subtree_control"), wanted.join(" "));
    }
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| with_path(e, &format!("write {value:?} to"), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,relatime shared:8 - tmpfs tmpfs rw,mode=755
27 26 0:25 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
28 26 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
29 26 0:27 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory
30 26 0:28 / /sys/fs/cgroup/systemd rw,relatime shared:12 - cgroup cgroup rw,xattr,name=systemd
31 26 0:29 / /sys/fs/cgroup/unified rw,relatime shared:13 - cgroup2 cgroup2 rw,nsdelegate
32 26 0:27 / /mnt/mem\\040copy rw,relatime shared:11 - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_mountinfo_yields_each_hierarchy_once() {
        let h = parse_mountinfo(HYBRID);
        let names: Vec<_> = h.iter().map(|h| h.mount_point.clone()).collect();
        assert_eq!(
            names,
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
                PathBuf::from("/sys/fs/cgroup/memory"),
                PathBuf::from("/sys/fs/cgroup/systemd"),
                PathBuf::from("/sys/fs/cgroup/unified"),
            ]
        );
        assert_eq!(h[1].mount_options().as_deref(), Some("cpu,cpuacct"));
        assert_eq!(h[3].mount_options().as_deref(), Some("none,name=systemd"));
        assert_eq!(h[4].kind, Kind::V2);
        assert_eq!(h[4].mount_options(), None);
    }

    #[test]
    fn unified_only_host() {
        let h = parse_mountinfo(
            "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
        );
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].kind, Kind::V2);
        assert_eq!(
            procs_file(&h, "docker/abc").unwrap(),
            PathBuf::from("/sys/fs/cgroup/docker/abc/cgroup.procs")
        );
    }

    #[test]
    fn procs_file_prefers_a_v1_controller() {
        let h = parse_mountinfo(HYBRID);
        assert_eq!(
            procs_file(&h, "/docker/abc").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/docker/abc/cgroup.procs")
        );
    }

    #[test]
    fn cgroup_paths_must_stay_inside_the_hierarchy() {
        assert_eq!(
            relative_path("/docker/x").unwrap(),
            PathBuf::from("docker/x")
        );
        for bad in ["", "/", "docker/../x", "a//b", "./a"] {
            assert!(relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn oom_kill_counter() {
        assert_eq!(
            oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            oom_kill_count("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
            0
        );
        assert_eq!(oom_kill_count(""), 0);
    }

    #[test]
    fn escaped_mount_points() {
        assert_eq!(unescape_mountinfo("/a\\040b\\011c"), "/a b\tc");
        assert_eq!(unescape_mountinfo("/plain\\"), "/plain\\");
    }
}
