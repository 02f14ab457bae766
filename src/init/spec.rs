//! The contract between the daemon (`runtime`) and the container monitor (`init`).
//!
//! # Start
//! The daemon runs `/proc/self/exe init --spec-fd 3 --sync-fd 4` in a new session with
//! stdio on /dev/null and an empty environment. Descriptor 3 holds one [`ContainerSpec`]
//! as JSON (read to EOF). Descriptors listed in [`ContainerSpec::initial_attach`] are
//! already-connected attach streams (see below), so output produced before the daemon
//! could connect is never lost.
//!
//! The monitor writes exactly one [`SyncMessage`] line to descriptor 4 and closes it:
//! `Started` once the container's command was exec'd (or `Failed` if setup or exec
//! failed, with Docker's wording and exit status 126/127 where exec failed). After a
//! `Failed` the monitor has cleaned up and exits.
//!
//! # Control socket
//! While the container runs, the monitor listens on `state_dir/monitor.sock` (stream).
//! Each connection starts with one [`Request`] JSON line:
//! - `Attach`: the monitor answers one `Ok` [`Reply`] line once the connection is
//!   registered; from then on it sends output frames in Docker's multiplexed
//!   format (8-byte header `[stream, 0, 0, 0, len_be32]`, stream 1 = stdout, 2 = stderr)
//!   for the selected streams — with a TTY it sends the raw terminal bytes unframed,
//!   exactly what Docker's attach carries, so the daemon can splice the connection
//!   to its client unchanged in both cases — and reads raw stdin
//!   bytes from the connection if `stdin` is set. When the client shuts down its write
//!   side, the container's stdin is closed if the spec has `stdin_once`. When the
//!   container exits, the monitor sends all remaining output, then closes the connection.
//! - `Kill`, `Resize`: one [`Reply`] line, then close.
//! - `Wait`: the [`Reply`] line (`Exited`) is sent when the container has exited and its
//!   output is fully written to the log and attached clients.
//! - `State`: one [`Reply`] line.
//! - `Exec`: a process to run in the container (a spec with `exec_in` set to the
//!   container's PID). Descriptors come with the line's first bytes (SCM_RIGHTS): the
//!   sync descriptor, then one attach stream per `initial_attach` entry, in order. The
//!   monitor forks an exec monitor — a copy of itself that reports on that sync
//!   descriptor exactly as a monitor the daemon starts does, and serves the exec on
//!   its own `monitor.sock` in the spec's state directory — and answers `Ok`, or
//!   `Error` when nothing was forked. An exec so costs a fork of a small process,
//!   not a new monitor from the daemon's binary, and like the container it outlives
//!   the daemon.
//!
//! # Exit
//! When the container's process exits, the monitor drains its output, closes attach
//! connections (their output is complete), answers waiters, writes [`ExitRecord`] to
//! `state_dir/exit.json` (crash-safe), removes the container's cgroup, removes
//! `monitor.sock`, and exits 0. Waiters are answered before the (fsync'd, so slow)
//! write because a daemon that got the answer records it itself; `exit.json` is for a
//! daemon that was absent. It is in place before the socket stops accepting: a
//! request that gets no answer finds the record there. An exec's monitor writes no
//! record when a waiter got the answer: a daemon that comes back knows no exec IDs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the monitor needs to run one container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container's 64-hex ID.
    pub id: String,
    /// The assembled root filesystem (the daemon has mounted it already).
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    /// The command: Entrypoint + Cmd as the daemon resolved them. `args[0]` is looked up
    /// in the container's `PATH` (from `env`) when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=value` entries, complete (the daemon adds PATH and HOSTNAME defaults).
    pub env: Vec<String>,
    /// Working directory inside the container; created when missing, as Docker does.
    pub cwd: String,
    /// `User` as the client gave it: empty (root), `uid`, `uid:gid`, `name`,
    /// `name:group`; names are looked up in the container's /etc/passwd and /etc/group.
    pub user: String,
    pub hostname: String,
    pub domainname: String,
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub open_stdin: bool,
    /// Close stdin when the first attached client that wrote stdin detaches.
    pub stdin_once: bool,
    /// Initial terminal size (height, width) for a TTY.
    pub console_size: Option<(u16, u16)>,
    pub network: NetworkMode,
    /// The PID namespace (`--pid`): a new one, the host's, or another container's.
    #[serde(default, skip_serializing_if = "Namespace::is_private")]
    pub pid: Namespace,
    /// The IPC namespace (`--ipc`).
    #[serde(default, skip_serializing_if = "Namespace::is_private")]
    pub ipc: Namespace,
    /// The UTS namespace (`--uts`): in the host's, the hostname is left alone.
    #[serde(default, skip_serializing_if = "Namespace::is_private")]
    pub uts: Namespace,
    /// What `/dev/shm` is.
    #[serde(default)]
    pub shm: Shm,
    /// All capabilities, no masked paths, all devices (`--privileged`).
    pub privileged: bool,
    /// The capability set the command runs with, e.g. `CAP_CHOWN` (already resolved
    /// from Docker's defaults, CapAdd and CapDrop).
    pub capabilities: Vec<String>,
    /// Paths hidden from the container (`/proc/kcore`, …): a directory gets an empty
    /// read-only tmpfs, a file gets /dev/null bound over it.
    pub masked_paths: Vec<String>,
    /// Paths made read-only (`/proc/sys`, …).
    pub readonly_paths: Vec<String>,
    /// Extra mounts after the root is in place (the daemon-written /etc/hostname,
    /// /etc/hosts, /etc/resolv.conf binds).
    pub mounts: Vec<Mount>,
    /// Run a minimal init as PID 1 that reaps zombies and forwards signals (`--init`).
    pub init: bool,
    /// The container's cgroup, relative to each hierarchy's root, e.g. `docker/<id>`.
    pub cgroup_path: String,
    pub log: LogSpec,
    /// Runtime state directory (under exec-root): `monitor.sock`, `exit.json`.
    pub state_dir: PathBuf,
    /// Already-connected attach streams inherited by the monitor: each behaves like a
    /// control-socket connection that sent `Attach` with these options.
    pub initial_attach: Vec<InitialAttach>,
    /// Exec mode (`docker exec`): instead of creating a container, run `args` in
    /// the running one whose first process has this PID (in the host's PID
    /// namespace), in its namespaces and cgroup. The root filesystem, mounts,
    /// names and network are the container's; `state_dir` is the exec's own, and
    /// the exit leaves the container's cgroup and networking alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_in: Option<i32>,
    /// The systemd cgroup driver: the container's cgroup (`cgroup_path`, a
    /// `docker-<id>.scope` below a slice) is a transient scope unit the daemon asks
    /// systemd for, once the process exists (see [`SyncMessage::Created`]); the
    /// monitor then configures it as its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub systemd_scope: bool,
    /// Limits written to the container's cgroup before its process starts.
    #[serde(default)]
    pub resources: Resources,
    /// `/proc/self/oom_score_adj` of the command (`--oom-score-adj`).
    #[serde(default)]
    pub oom_score_adj: i32,
    /// `--ulimit`s set before exec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    /// `--group-add`: supplementary groups by name or number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// `--sysctl`s written under the container's `/proc/sys` (namespaced ones only,
    /// checked by the daemon).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<(String, String)>,
    /// `--device`: nodes made in the container's `/dev` (or elsewhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceNode>,
    /// Device cgroup rules allowed beside Docker's defaults, in the cgroup v1 text
    /// form (`c 240:0 rw`): `--device`'s and `--device-cgroup-rule`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_rules: Vec<String>,
    /// `--cgroupns host`: the container stays in the host's cgroup namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cgroupns_host: bool,
    /// The seccomp filter the command runs under, compiled by the daemon (see
    /// `engine::security::seccomp`), one [`PackedSockFilter`] per instruction; none
    /// is unconfined. An exec gets its container's, this and the two below, from the
    /// container's monitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Vec<PackedSockFilter>>,
    /// `no_new_privs`: setuid binaries and file capabilities no longer raise the
    /// command's privileges.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_new_privileges: bool,
    /// The AppArmor profile the command is exec'd under (already loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
}

/// One seccomp filter instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A [`SockFilter`] as the spec carries it: `code << 48 | jt << 40 | jf << 32 | k`.
pub type PackedSockFilter = u64;

impl SockFilter {
    pub fn pack(self) -> PackedSockFilter {
        (u64::from(self.code) << 48)
            | (u64::from(self.jt) << 40)
            | (u64::from(self.jf) << 32)
            | u64::from(self.k)
    }

    pub fn unpack(p: PackedSockFilter) -> SockFilter {
        SockFilter {
            code: (p >> 48) as u16,
            jt: (p >> 40) as u8,
            jf: (p >> 32) as u8,
            k: p as u32,
        }
    }
}

/// A device node to make in the container, as the host has it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceNode {
    /// Where, inside the container.
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    pub major: u32,
    pub minor: u32,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Cgroup limits, as Docker's HostConfig gives them; 0 (or empty, or `None`) leaves
/// a setting as the kernel has it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Resources {
    /// `memory.limit_in_bytes` / `memory.max`, in bytes.
    pub memory: i64,
    /// Memory plus swap (`-1`: unlimited swap).
    pub memory_swap: i64,
    /// Soft limit (`memory.soft_limit_in_bytes` / `memory.low`).
    pub memory_reservation: i64,
    /// 0–100 (v1 only).
    pub memory_swappiness: Option<i64>,
    /// v1 only.
    pub oom_kill_disable: bool,
    pub cpu_shares: i64,
    /// CFS period and quota in µs (`--cpus` arrives as these).
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// `pids.max`; -1 is unlimited.
    pub pids_limit: i64,
    /// 10–1000.
    pub blkio_weight: u16,
    /// Per-device throttles: (major, minor, bytes or operations per second).
    pub device_read_bps: Vec<(u64, u64, u64)>,
    pub device_write_bps: Vec<(u64, u64, u64)>,
    pub device_read_iops: Vec<(u64, u64, u64)>,
    pub device_write_iops: Vec<(u64, u64, u64)>,
}

/// One resource limit (`RLIMIT_NOFILE` …) by its number.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// The network namespace arrangement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The host's network namespace.
    Host,
    /// A new network namespace with only `lo`, up.
    None,
    /// A new network namespace of the container's own, with only `lo` (the
    /// monitor's tests use it; the daemon prepares namespaces and uses `Join`).
    Private,
    /// The network namespace at this path: one the daemon made and configured
    /// (a bind-mounted namespace file), or another container's (`/proc/PID/ns/net`).
    Join(PathBuf),
}

/// A namespace other than the network's: the container's own, the host's, or one
/// to join.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    /// A new namespace of the container's own.
    #[default]
    Private,
    /// The host's (the monitor's) namespace.
    Host,
    /// The namespace at this path (another container's `/proc/PID/ns/…`).
    Join(PathBuf),
}

impl Namespace {
    pub fn is_private(&self) -> bool {
        *self == Namespace::Private
    }
}

/// The container's `/dev/shm`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Shm {
    /// A tmpfs of its own of this many bytes, mounted inside the container.
    Private(u64),
    /// No `/dev/shm` at all (`--ipc none`).
    None,
    /// A bind of this host directory: the host's `/dev/shm` or the tmpfs the
    /// daemon mounted for a shareable IPC namespace.
    Bind(PathBuf),
}

/// Docker's default `/dev/shm` size, 64 MiB.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

impl Default for Shm {
    fn default() -> Self {
        Shm::Private(DEFAULT_SHM_SIZE)
    }
}

/// A mount made inside the container: a bind of a host path (a file, a directory,
/// a volume's directory), or a new tmpfs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mount {
    /// The host path bound (empty for a tmpfs).
    pub source: PathBuf,
    /// Absolute path inside the container, resolved inside its root; created (file
    /// or directory, like the source) when missing.
    pub destination: String,
    pub readonly: bool,
    /// A tmpfs rather than a bind: its mount flags and data (`size=64m,mode=1777`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Tmpfs>,
    /// Bind the source alone, without the mounts below it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_recursive: bool,
    /// Propagation flags (`MS_PRIVATE | MS_REC`, …) applied once mounted; 0 keeps
    /// what the container's root has (slave).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub propagation: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// How a tmpfs is mounted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tmpfs {
    /// `MS_*` flags (`MS_NOSUID | MS_NODEV | MS_NOEXEC`, `MS_RDONLY`, …).
    pub flags: u64,
    pub data: String,
}

/// How container output is logged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogSpec {
    /// `json-file`, `journald` or `none`.
    pub driver: String,
    /// The json-file log (`<data-root>/containers/<id>/<id>-json.log`).
    pub path: PathBuf,
    /// Rotate when the file would exceed this many bytes.
    pub max_size: Option<u64>,
    /// Files kept when rotating (`<path>.1` … `<path>.N-1`); at least 1.
    pub max_file: u32,
    /// journald: the fields every entry carries (`CONTAINER_ID`, …, the `labels` and
    /// `env` attributes), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal_fields: Vec<(String, String)>,
}

/// An inherited attach stream.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitialAttach {
    pub fd: i32,
    pub streams: AttachStreams,
}

/// Which streams an attach connection carries.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// The one line the monitor writes to the sync descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyncMessage {
    /// With `systemd_scope`: the container's process exists (`pid`, in the host's
    /// PID namespace) and waits; the daemon puts it in the container's scope unit
    /// and answers on the same descriptor with a [`Reply`] line (`Ok`, or `Error`
    /// to give up the start).
    Created { pid: i32 },
    /// The command was exec'd; `pid` is its PID in the host's PID namespace.
    Started { pid: i32, monitor_pid: i32 },
    /// Nothing runs. `message` is Docker's wording (`exec: "x": executable file not
    /// found in $PATH`); `exit_code` is what the container records (127 not found,
    /// 126 not executable, 128 other setup failures).
    Failed { message: String, exit_code: i32 },
}

/// The first line of a control-socket connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Attach(AttachStreams),
    Kill { signal: i32 },
    Resize { height: u16, width: u16 },
    Wait,
    State,
    Exec(Box<ContainerSpec>),
}

/// The monitor's answer to a non-attach request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok,
    Error { message: String },
    Running { pid: i32 },
    Exited(ExitRecord),
}

/// How the container ended; also the content of `exit.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    /// The exit status, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// RFC 3339 with nanoseconds (Go's `RFC3339Nano`).
    pub finished_at: String,
    pub oom_killed: bool,
    /// Set when the monitor itself failed while the container ran.
    pub error: Option<String>,
    /// The monitor undid everything in `network.json` (or there was nothing).
    #[serde(default)]
    pub network_released: bool,
}

/// `state_dir/network.json`, written by the daemon before the start (and again when
/// it changes): what the monitor undoes when the container exits, before it answers
/// waiters, so a container's published ports end exactly when it does, whether or
/// not the daemon is there.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkTeardown {
    /// The container's namespace file (unmounted and removed: the kernel then
    /// removes its interfaces).
    pub netns: Option<PathBuf>,
    /// The iptables tools and the rules to delete (published ports).
    pub iptables: Option<crate::net::iptables::Tools>,
    pub rules: Vec<crate::net::iptables::Rule>,
    /// The container's network proxies (their host ports are freed when they end).
    pub proxies: Vec<i32>,
    /// The ports (UDP, TCP) its embedded DNS server listens on at 127.0.0.11, where
    /// its redirection rules send queries: a proxy started again takes them again.
    #[serde(default)]
    pub dns_ports: Option<(u16, u16)>,
}

/// Names of the files in `state_dir`.
pub const MONITOR_SOCKET: &str = "monitor.sock";
pub const EXIT_FILE: &str = "exit.json";
pub const NETWORK_FILE: &str = "network.json";
