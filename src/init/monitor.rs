//! The monitor's own process: it starts the container and then serves it until it
//! exits, in one thread around one `poll(2)`.
//!
//! Start: cgroup, log file, control socket and stdio are made first, then the
//! container's process is cloned into its namespaces (see `container`). The monitor
//! learns that the command was exec'd when the close-on-exec error pipe reaches EOF
//! with nothing written, and only then reports `Started` on the sync descriptor.
//!
//! Loop: container output is read as it comes, cut into json-file log lines and sent
//! to attached clients (the monitor stops reading while a client has more than
//! [`ATTACH_BACKLOG`] bytes queued, so a slow client slows the container instead of
//! losing output); stdin from attached clients is queued to the container; control
//! requests are answered. When the process exits (SIGCHLD on a signalfd), everything
//! still in the pipes is drained, attached clients get the rest, `exit.json` is
//! written, waiters are answered, the cgroup is removed and the monitor exits.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::attach::OutQueue;
use super::cgroup::{self, ContainerCgroup};
use super::container::{self, ChildContext, EXIT_SETUP_FAILED};
use super::control;
use super::logfile::{Entry, LineSplitter, Stream};
use super::logger::Logger;
use super::spec::{
    AttachStreams, ContainerSpec, EXIT_FILE, ExitRecord, Namespace, Reply, Request, SyncMessage,
};
use super::stdio::{self, MonitorStdio};
use super::sys::{self, Exit};

/// Output queued for one attached client before the monitor stops reading the
/// container's output until that client catches up.
pub const ATTACH_BACKLOG: usize = 1 << 20;
/// Stdin queued for the container before the monitor stops reading clients' stdin.
const STDIN_BACKLOG: usize = 1 << 20;
/// After the container exited, how long an attached client may make no progress
/// reading the rest of the output before it is dropped (Docker waits 2 s).
const FLUSH_STALL: Duration = Duration::from_secs(2);
/// Largest request line accepted on the control socket (an `Exec` carries a whole
/// spec, environment included).
const MAX_REQUEST: usize = 1 << 20;
const READ_CHUNK: usize = 32 * 1024;

/// Starts and serves the container; returns the monitor's exit status.
pub fn run(
    spec: ContainerSpec,
    sync: OwnedFd,
    initial_attach: Vec<(OwnedFd, AttachStreams)>,
) -> u8 {
    serve_started(start(&spec, &sync), spec, sync, initial_attach)
}

/// Reports how the start went and, when it did, serves the process to its end.
fn serve_started(
    started: Result<Running, StartFailure>,
    spec: ContainerSpec,
    sync: OwnedFd,
    initial_attach: Vec<(OwnedFd, AttachStreams)>,
) -> u8 {
    match started {
        Ok(running) => {
            let monitor_pid = std::process::id() as i32;
            report(
                &sync,
                &SyncMessage::Started {
                    pid: running.pid,
                    monitor_pid,
                },
            );
            drop(sync);
            let mut ev = EventLoop::new(spec, running, initial_attach);
            ev.serve();
            0
        }
        Err(failure) => {
            report(
                &sync,
                &SyncMessage::Failed {
                    message: failure.message,
                    exit_code: failure.exit_code,
                },
            );
            1
        }
    }
}

fn report(sync: &OwnedFd, msg: &SyncMessage) {
    // The daemon may be gone; the container's fate no longer depends on it.
    let _ = sys::write_all(sync.as_raw_fd(), &control::encode_line(msg));
}

/// Why the container did not start.
struct StartFailure {
    message: String,
    exit_code: i32,
}

impl StartFailure {
    fn setup(message: impl Into<String>) -> Self {
        StartFailure {
            message: message.into(),
            exit_code: EXIT_SETUP_FAILED,
        }
    }
}

/// A started container, as the event loop takes it over.
struct Running {
    pid: i32,
    sigfd: OwnedFd,
    listener: UnixListener,
    socket_path: PathBuf,
    _socket_dir: Option<std::fs::File>,
    cgroup: ContainerCgroup,
    log: Option<Logger>,
    stdio: MonitorStdio,
    /// The terminal's master, with `-t`.
    master: Option<OwnedFd>,
}

/// Undoes what the start made when a later step fails.
struct StartCleanup {
    cgroup: Option<ContainerCgroup>,
    socket: Option<PathBuf>,
}

impl Drop for StartCleanup {
    fn drop(&mut self) {
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
        if let Some(cg) = &self.cgroup {
            cg.remove();
        }
    }
}

fn start(spec: &ContainerSpec, sync: &OwnedFd) -> Result<Running, StartFailure> {
    if let Some(target) = spec.exec_in {
        let namespaces = ExecNamespaces::open(spec, target)?;
        return start_exec(spec, namespaces, None);
    }
    if !spec.rootfs.is_absolute() || !spec.rootfs.is_dir() {
        return Err(StartFailure::setup(format!(
            "the container's root filesystem {:?} is not a directory",
            spec.rootfs.display()
        )));
    }
    sys::block_signals(&[libc::SIGCHLD])
        .map_err(|e| StartFailure::setup(format!("block SIGCHLD: {e}")))?;
    let sigfd = sys::signalfd(&[libc::SIGCHLD])
        .map_err(|e| StartFailure::setup(format!("create signalfd: {e}")))?;

    let hierarchies = cgroup::detect().map_err(|e| StartFailure::setup(e.to_string()))?;
    let mut cleanup = StartCleanup {
        cgroup: None,
        socket: None,
    };
    // With the systemd driver the cgroup is the scope systemd makes after the clone.
    let mut cg = None;
    if !spec.systemd_scope {
        cg = Some(setup_cgroup(spec, &hierarchies)?);
        cleanup.cgroup = cg.clone();
    }

    let log = Logger::open(&spec.log).map_err(|e| StartFailure::setup(e.to_string()))?;

    let (listener, real_socket, socket_dir) = control_socket(spec)?;
    cleanup.socket = Some(real_socket.clone());

    let (mon_stdio, ctr_stdio) = stdio::create(spec.tty, spec.open_stdin)
        .map_err(|e| StartFailure::setup(format!("create the container's stdio: {e}")))?;
    let (err_r, err_w) =
        sys::pipe().map_err(|e| StartFailure::setup(format!("create a pipe: {e}")))?;

    let netns = match &spec.network {
        super::spec::NetworkMode::Join(path) => {
            Some(sys::open(path, libc::O_RDONLY, 0).map_err(|e| {
                StartFailure::setup(format!(
                    "open network namespace {}: {}",
                    path.display(),
                    crate::store::strip_os_suffix(&e)
                ))
            })?)
        }
        _ => None,
    };
    let ipcns = match &spec.ipc {
        Namespace::Join(path) => Some(open_namespace(path, "IPC")?),
        _ => None,
    };
    // A PID namespace cannot be entered by a running process, only by its
    // children: the monitor points its children's at the one to join for the
    // clone, then back at its own.
    let pid_join = match &spec.pid {
        Namespace::Join(path) => {
            let own = open_namespace(Path::new("/proc/self/ns/pid"), "PID")?;
            let target = open_namespace(path, "PID")?;
            set_children_pidns(&target, path)?;
            Some(own)
        }
        _ => None,
    };
    let flags = container::clone_flags(spec);
    let unified = cg
        .as_ref()
        .and_then(|cg| cg.unified_dir())
        .and_then(|d| sys::open(d, libc::O_RDONLY | libc::O_DIRECTORY, 0).ok());
    let (scope_ready, scope_go) = if spec.systemd_scope {
        let (r, w) = sys::pipe().map_err(|e| StartFailure::setup(format!("create a pipe: {e}")))?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let mut cloned = Err(io::Error::from_raw_os_error(libc::ENOSYS));
    let mut into_cgroup = false;
    if let Some(dir) = &unified {
        cloned = sys::clone_into_cgroup(flags, dir.as_raw_fd());
        into_cgroup = cloned.is_ok();
    }
    if let Err(e) = &cloned
        && matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EOPNOTSUPP)
        )
    {
        cloned = sys::clone_process(flags);
    }
    if let (Ok(Some(_)) | Err(_), Some(own)) = (&cloned, &pid_join) {
        set_children_pidns(own, Path::new("/proc/self/ns/pid"))?;
    }
    let pid = match cloned {
        Err(e) => {
            return Err(StartFailure::setup(format!(
                "create the container's namespaces: {}",
                crate::store::strip_os_suffix(&e)
            )));
        }
        Ok(None) => container::run(ChildContext {
            spec,
            cgroup_joins: cg
                .as_ref()
                .map(|cg| cg.join_files(into_cgroup))
                .unwrap_or_default(),
            scope_ready,
            scope_go: scope_go.as_ref().map(|fd| fd.as_raw_fd()),
            hierarchies: &hierarchies,
            stdio: ctr_stdio,
            netns,
            ipcns,
            error_pipe: err_w,
        }),
        Ok(Some(pid)) => pid,
    };
    drop(unified);
    drop(scope_ready);
    let cg = match (cg, scope_go) {
        (Some(cg), _) => cg,
        (None, go) => {
            let cg = join_scope(spec, &hierarchies, sync, pid).inspect_err(|_| {
                let _ = sys::kill(pid, libc::SIGKILL);
                wait_blocking(pid);
            })?;
            // The scope's cgroup is systemd's to remove, once it is empty.
            if let Some(go) = go {
                let _ = sys::write_all(go.as_raw_fd(), b"g");
            }
            cg
        }
    };
    drop(ctr_stdio);
    drop(err_w);

    finish_start(
        spec,
        pid,
        sigfd,
        listener,
        real_socket,
        socket_dir,
        cg,
        log,
        mon_stdio,
        err_r,
        cleanup,
    )
}

/// The container's cgroup made (or, for a scope, found) and configured: device
/// rules, then the limits.
fn setup_cgroup(
    spec: &ContainerSpec,
    hierarchies: &[cgroup::Hierarchy],
) -> Result<ContainerCgroup, StartFailure> {
    let cg = ContainerCgroup::create(
        hierarchies,
        &spec.cgroup_path,
        spec.privileged,
        &spec.device_rules,
    )
    .map_err(|e| StartFailure::setup(crate::store::strip_os_suffix(&e)))?;
    super::resources::apply(&cg, &spec.resources).map_err(|e| {
        StartFailure::setup(format!(
            "error setting cgroup config: {}",
            crate::store::strip_os_suffix(&e)
        ))
    })?;
    Ok(cg)
}

/// The systemd driver's step: tells the daemon the process `pid` exists, waits
/// until it has systemd put it in the container's scope, then configures the
/// scope's cgroup as the monitor's own.
fn join_scope(
    spec: &ContainerSpec,
    hierarchies: &[cgroup::Hierarchy],
    sync: &OwnedFd,
    pid: i32,
) -> Result<ContainerCgroup, StartFailure> {
    sys::write_all(
        sync.as_raw_fd(),
        &control::encode_line(&SyncMessage::Created { pid }),
    )
    .map_err(|e| StartFailure::setup(format!("report to the daemon: {e}")))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_REQUEST {
        match sys::read(sync.as_raw_fd(), &mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            _ => {
                return Err(StartFailure::setup(
                    "the daemon went away while creating the container's systemd scope",
                ));
            }
        }
    }
    match control::decode_line::<Reply>(&line) {
        Ok(Reply::Ok) => setup_cgroup(spec, hierarchies),
        Ok(Reply::Error { message }) => Err(StartFailure::setup(message)),
        _ => Err(StartFailure::setup(
            "unexpected answer from the daemon about the container's systemd scope",
        )),
    }
}

fn open_namespace(path: &Path, kind: &str) -> Result<OwnedFd, StartFailure> {
    sys::open(path, libc::O_RDONLY, 0).map_err(|e| {
        StartFailure::setup(format!(
            "open {kind} namespace {}: {}",
            path.display(),
            crate::store::strip_os_suffix(&e)
        ))
    })
}

/// Points the PID namespace the monitor's next children are created in at `ns`.
fn set_children_pidns(ns: &OwnedFd, path: &Path) -> Result<(), StartFailure> {
    sys::cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWPID) })
        .map(drop)
        .map_err(|e| {
            StartFailure::setup(format!(
                "join PID namespace {}: {}",
                path.display(),
                crate::store::strip_os_suffix(&e)
            ))
        })
}

/// After the fork: the terminal's master (with a TTY), then the error pipe tells
/// whether the command was exec'd.
#[allow(clippy::too_many_arguments)]
fn finish_start(
    spec: &ContainerSpec,
    pid: i32,
    sigfd: OwnedFd,
    listener: UnixListener,
    real_socket: PathBuf,
    socket_dir: Option<std::fs::File>,
    cg: ContainerCgroup,
    log: Option<Logger>,
    mon_stdio: MonitorStdio,
    err_r: OwnedFd,
    cleanup: StartCleanup,
) -> Result<Running, StartFailure> {
    let master = match &mon_stdio {
        MonitorStdio::Tty { console_socket } => sys::recv_fd(console_socket.as_raw_fd())
            .map_err(|e| StartFailure::setup(format!("receive the container's terminal: {e}")))?,
        MonitorStdio::Pipes { .. } => None,
    };
    let errors = sys::read_to_end(err_r.as_raw_fd())
        .map_err(|e| StartFailure::setup(format!("read the container's start status: {e}")))?;
    if !errors.is_empty() || (spec.tty && master.is_none()) {
        wait_blocking(pid);
        let line = errors.split(|&b| b == b'\n').next().unwrap_or(&[]);
        return Err(match control::decode_line::<SyncMessage>(line) {
            Ok(SyncMessage::Failed { message, exit_code }) => StartFailure { message, exit_code },
            _ => StartFailure::setup("the container's process failed before starting the command"),
        });
    }
    std::mem::forget(cleanup);
    Ok(Running {
        pid,
        sigfd,
        listener,
        socket_path: real_socket,
        _socket_dir: socket_dir,
        cgroup: cg,
        log,
        stdio: mon_stdio,
        master,
    })
}

/// The namespaces of a running container's first process, opened for an exec.
struct ExecNamespaces {
    pid: OwnedFd,
    /// As [`container::EXEC_NAMESPACES`] lists them.
    others: Vec<(OwnedFd, libc::c_int, &'static str)>,
}

impl ExecNamespaces {
    /// Opens them from `/proc/<target>/ns`. The container's monitor does this before
    /// it forks an exec's, while `target` cannot have been reaped (and its number
    /// reused) yet.
    fn open(spec: &ContainerSpec, target: i32) -> Result<ExecNamespaces, StartFailure> {
        let gone = || StartFailure {
            message: format!("container {} is not running", spec.id),
            exit_code: EXIT_SETUP_FAILED,
        };
        let ns_file = |name: &str| PathBuf::from(format!("/proc/{target}/ns/{name}"));
        let pid = sys::open(&ns_file("pid"), libc::O_RDONLY, 0).map_err(|_| gone())?;
        let mut others = Vec::new();
        for (name, flag) in container::EXEC_NAMESPACES {
            let fd = sys::open(&ns_file(name), libc::O_RDONLY, 0).map_err(|_| gone())?;
            others.push((fd, *flag, *name));
        }
        Ok(ExecNamespaces { pid, others })
    }

    fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        std::iter::once(self.pid.as_raw_fd())
            .chain(self.others.iter().map(|(fd, _, _)| fd.as_raw_fd()))
    }
}

/// Exec mode: the process joins the running container whose namespaces are
/// `namespaces`. The monitor joins the container's PID namespace for its children
/// (its own PID stays the host's), forks the process into the container's cgroup
/// (`cgroup` when the container's monitor forked this one and so knows it), and the
/// process joins the other namespaces itself.
fn start_exec(
    spec: &ContainerSpec,
    namespaces: ExecNamespaces,
    cgroup: Option<ContainerCgroup>,
) -> Result<Running, StartFailure> {
    sys::block_signals(&[libc::SIGCHLD])
        .map_err(|e| StartFailure::setup(format!("block SIGCHLD: {e}")))?;
    let sigfd = sys::signalfd(&[libc::SIGCHLD])
        .map_err(|e| StartFailure::setup(format!("create signalfd: {e}")))?;
    let ExecNamespaces {
        pid: pidns,
        others: namespaces,
    } = namespaces;
    sys::cvt(unsafe { libc::setns(pidns.as_raw_fd(), libc::CLONE_NEWPID) }).map_err(|e| {
        StartFailure::setup(format!(
            "join the container's pid namespace: {}",
            crate::store::strip_os_suffix(&e)
        ))
    })?;
    drop(pidns);

    let cg = match cgroup {
        Some(cg) => cg,
        None => {
            let hierarchies = cgroup::detect().map_err(|e| StartFailure::setup(e.to_string()))?;
            ContainerCgroup::existing(&hierarchies, &spec.cgroup_path)
                .map_err(|e| StartFailure::setup(e.to_string()))?
        }
    };

    let (listener, real_socket, socket_dir) = control_socket(spec)?;
    let cleanup = StartCleanup {
        cgroup: None,
        socket: Some(real_socket.clone()),
    };

    let (mon_stdio, ctr_stdio) = stdio::create(spec.tty, spec.open_stdin)
        .map_err(|e| StartFailure::setup(format!("create the exec's stdio: {e}")))?;
    let (err_r, err_w) =
        sys::pipe().map_err(|e| StartFailure::setup(format!("create a pipe: {e}")))?;
    let unified = cg
        .unified_dir()
        .and_then(|d| sys::open(d, libc::O_RDONLY | libc::O_DIRECTORY, 0).ok());
    let mut cloned = Err(io::Error::from_raw_os_error(libc::ENOSYS));
    let mut into_cgroup = false;
    if let Some(dir) = &unified {
        cloned = sys::clone_into_cgroup(0, dir.as_raw_fd());
        into_cgroup = cloned.is_ok();
    }
    if cloned.is_err() {
        cloned = sys::clone_process(0);
    }
    let pid = match cloned {
        Err(e) => {
            return Err(StartFailure::setup(format!(
                "start the exec's process: {}",
                crate::store::strip_os_suffix(&e)
            )));
        }
        Ok(None) => container::run_exec(container::ExecContext {
            spec,
            cgroup_joins: cg.join_files(into_cgroup),
            namespaces,
            stdio: ctr_stdio,
            error_pipe: err_w,
        }),
        Ok(Some(pid)) => pid,
    };
    drop(unified);
    drop(ctr_stdio);
    drop(err_w);
    drop(namespaces);
    finish_start(
        spec,
        pid,
        sigfd,
        listener,
        real_socket,
        socket_dir,
        cg,
        None,
        mon_stdio,
        err_r,
        cleanup,
    )
}

/// The control socket in the state directory, listening and non-blocking: the
/// listener, its real path, and the directory kept open for a long path.
fn control_socket(
    spec: &ContainerSpec,
) -> Result<(UnixListener, PathBuf, Option<std::fs::File>), StartFailure> {
    let (socket_path, socket_dir) =
        control::socket_address(&spec.state_dir).map_err(|e| StartFailure::setup(e.to_string()))?;
    let real_socket = spec.state_dir.join(super::spec::MONITOR_SOCKET);
    let _ = std::fs::remove_file(&real_socket);
    let listener = UnixListener::bind(&socket_path).map_err(|e| {
        StartFailure::setup(crate::store::with_path(e, "listen on", &real_socket).to_string())
    })?;
    if let Err(e) = listener.set_nonblocking(true) {
        let _ = std::fs::remove_file(&real_socket);
        return Err(StartFailure::setup(format!(
            "set the control socket non-blocking: {e}"
        )));
    }
    Ok((listener, real_socket, socket_dir))
}

fn wait_blocking(pid: i32) {
    let mut status = 0;
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

/// One stream of container output. Slots stay in place (indices are poll tokens);
/// a closed one has no descriptor.
struct Output {
    fd: Option<OwnedFd>,
    stream: Stream,
    splitter: LineSplitter,
}

/// The container's stdin, fed from attached clients.
struct Stdin {
    fd: OwnedFd,
    queue: OutQueue,
    close_when_empty: bool,
}

enum Role {
    /// The request line has not arrived yet.
    Pending(Vec<u8>),
    Attach(AttachStreams),
    /// `Wait`: answered at exit.
    Waiting,
    /// A reply is queued; close once it is written.
    Replied,
}

struct Conn {
    /// `None` once closed; pruned after each round of events.
    fd: Option<OwnedFd>,
    role: Role,
    out: OutQueue,
    /// The peer may still send (stdin or its request).
    reading: bool,
    /// Descriptors that came with the request line.
    fds: Vec<OwnedFd>,
}

#[derive(Clone, Copy)]
enum Token {
    Signal,
    Listener,
    Output(usize),
    Stdin,
    Conn(usize),
    OomWatch,
}

struct EventLoop {
    spec: ContainerSpec,
    pid: i32,
    sigfd: OwnedFd,
    listener: Option<UnixListener>,
    socket_path: PathBuf,
    _socket_dir: Option<std::fs::File>,
    cgroup: ContainerCgroup,
    log: Option<Logger>,
    log_error: Option<String>,
    master: Option<OwnedFd>,
    outputs: Vec<Output>,
    /// Reused buffer for reading output.
    read_buf: Vec<u8>,
    stdin: Option<Stdin>,
    conns: Vec<Conn>,
    /// Exit status and time, once the process was reaped.
    exited: Option<(Exit, SystemTime)>,
    /// Whether the OOM killer was seen to kill in the cgroup (while it ran, or when
    /// the process was reaped): systemd may remove a scope's cgroup as soon as it
    /// empties, before the exit is recorded.
    oom_seen: bool,
    /// With the systemd driver: wakes the loop when the cgroup's `memory.events`
    /// changes, so that an OOM kill is seen while the scope's cgroup exists.
    oom_watch: Option<OwnedFd>,
    /// Last time an attached client took output after the exit.
    last_progress: Instant,
}

impl EventLoop {
    fn new(spec: ContainerSpec, r: Running, initial: Vec<(OwnedFd, AttachStreams)>) -> Self {
        let mut outputs = Vec::new();
        let mut stdin = None;
        match r.stdio {
            MonitorStdio::Pipes {
                stdin: s,
                stdout,
                stderr,
            } => {
                outputs.push(Output {
                    fd: Some(stdout),
                    stream: Stream::Stdout,
                    splitter: LineSplitter::default(),
                });
                outputs.push(Output {
                    fd: Some(stderr),
                    stream: Stream::Stderr,
                    splitter: LineSplitter::default(),
                });
                stdin = s.map(|fd| Stdin {
                    fd,
                    queue: OutQueue::default(),
                    close_when_empty: false,
                });
            }
            MonitorStdio::Tty { .. } => {
                if let Some(m) = &r.master {
                    if let Ok(out) = dup(m.as_raw_fd()) {
                        outputs.push(Output {
                            fd: Some(out),
                            stream: Stream::Stdout,
                            splitter: LineSplitter::default(),
                        });
                    }
                    if spec.open_stdin
                        && let Ok(fd) = dup(m.as_raw_fd())
                    {
                        stdin = Some(Stdin {
                            fd,
                            queue: OutQueue::default(),
                            close_when_empty: false,
                        });
                    }
                }
            }
        }
        for fd in outputs.iter().filter_map(|o| o.fd.as_ref()) {
            let _ = sys::set_nonblocking(fd.as_raw_fd(), true);
        }
        if let Some(s) = &stdin {
            let _ = sys::set_nonblocking(s.fd.as_raw_fd(), true);
        }
        let conns = initial
            .into_iter()
            .map(|(fd, streams)| {
                let _ = sys::set_nonblocking(fd.as_raw_fd(), true);
                Conn {
                    fd: Some(fd),
                    role: Role::Attach(streams),
                    out: OutQueue::default(),
                    reading: true,
                    fds: Vec::new(),
                }
            })
            .collect();
        let oom_watch = if spec.systemd_scope && spec.exec_in.is_none() {
            r.cgroup.watch_oom()
        } else {
            None
        };
        EventLoop {
            spec,
            pid: r.pid,
            sigfd: r.sigfd,
            listener: Some(r.listener),
            socket_path: r.socket_path,
            _socket_dir: r._socket_dir,
            cgroup: r.cgroup,
            log: r.log,
            log_error: None,
            master: r.master,
            outputs,
            read_buf: Vec::new(),
            stdin,
            conns,
            exited: None,
            oom_seen: false,
            oom_watch,
            last_progress: Instant::now(),
        }
    }

    fn serve(&mut self) {
        loop {
            let finishing = self.exited.is_some();
            if finishing && self.attach_flushed() {
                break;
            }
            if finishing && self.last_progress.elapsed() >= FLUSH_STALL {
                break;
            }
            let (mut pfds, tokens) = self.poll_set();
            let timeout = if finishing {
                FLUSH_STALL
                    .saturating_sub(self.last_progress.elapsed())
                    .as_millis() as i32
                    + 1
            } else {
                -1
            };
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // poll itself failing leaves nothing to wait with; finish up.
                break;
            }
            for (pfd, token) in pfds.iter().zip(tokens) {
                if pfd.revents != 0 {
                    self.handle(token, pfd.revents);
                }
            }
            self.conns.retain(|c| c.fd.is_some());
            self.flush_log();
        }
        self.finish();
    }

    fn attach_backlogged(&self) -> bool {
        self.conns
            .iter()
            .any(|c| matches!(c.role, Role::Attach(_)) && c.out.len() > ATTACH_BACKLOG)
    }

    fn attach_flushed(&self) -> bool {
        self.conns
            .iter()
            .all(|c| !matches!(c.role, Role::Attach(_)) || c.out.is_empty())
    }

    fn poll_set(&self) -> (Vec<libc::pollfd>, Vec<Token>) {
        let mut pfds = Vec::with_capacity(8 + self.conns.len());
        let mut tokens = Vec::with_capacity(pfds.capacity());
        let mut add = |fd: RawFd, events: libc::c_short, t: Token| {
            pfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            tokens.push(t);
        };
        add(self.sigfd.as_raw_fd(), libc::POLLIN, Token::Signal);
        if let Some(w) = &self.oom_watch {
            add(w.as_raw_fd(), libc::POLLIN, Token::OomWatch);
        }
        if let Some(l) = &self.listener {
            add(l.as_raw_fd(), libc::POLLIN, Token::Listener);
        }
        if self.exited.is_none() && !self.attach_backlogged() {
            for (i, o) in self.outputs.iter().enumerate() {
                if let Some(fd) = &o.fd {
                    add(fd.as_raw_fd(), libc::POLLIN, Token::Output(i));
                }
            }
        }
        if let Some(s) = &self.stdin
            && !s.queue.is_empty()
        {
            add(s.fd.as_raw_fd(), libc::POLLOUT, Token::Stdin);
        }
        let stdin_full = self
            .stdin
            .as_ref()
            .is_some_and(|s| s.queue.len() > STDIN_BACKLOG);
        for (i, c) in self.conns.iter().enumerate() {
            let Some(fd) = &c.fd else {
                continue;
            };
            let mut ev = 0;
            if c.reading && !(stdin_full && matches!(c.role, Role::Attach(s) if s.stdin)) {
                ev |= libc::POLLIN;
            }
            if !c.out.is_empty() {
                ev |= libc::POLLOUT;
            }
            add(fd.as_raw_fd(), ev, Token::Conn(i));
        }
        (pfds, tokens)
    }

    fn handle(&mut self, token: Token, revents: libc::c_short) {
        match token {
            Token::Signal => {
                sys::drain_signalfd(self.sigfd.as_raw_fd());
                self.reap();
            }
            Token::Listener => self.accept(),
            Token::OomWatch => {
                if let Some(w) = &self.oom_watch {
                    let mut buf = [0u8; 1024];
                    while matches!(sys::read(w.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
                }
                if self.cgroup.oom_killed() {
                    self.oom_seen = true;
                    self.oom_watch = None;
                }
            }
            Token::Output(i) => {
                self.read_output(i, false);
            }
            Token::Stdin => self.flush_stdin(),
            Token::Conn(i) => self.handle_conn(i, revents),
        }
    }

    fn reap(&mut self) {
        let mut ended = false;
        while let Ok(Some((pid, exit))) = sys::reap(-1) {
            if pid == self.pid && self.exited.is_none() {
                self.exited = Some((exit, SystemTime::now()));
                self.oom_seen |= self.spec.exec_in.is_none() && self.cgroup.oom_killed();
                ended = true;
            }
        }
        // Without a PID namespace of its own, the end of the first process does not
        // end the others: they go with it, as with Docker, before the output is
        // drained (its writers are then gone).
        if ended && self.spec.exec_in.is_none() && !self.spec.pid.is_private() {
            self.cgroup.kill_all();
            while let Ok(Some(_)) = sys::reap(-1) {}
        }
        if self.exited.is_some() {
            self.drain_outputs();
            self.last_progress = Instant::now();
        }
    }

    /// Reads one chunk (or, when `drain`, everything available) of output `i`.
    /// Returns false once the output is closed.
    fn read_output(&mut self, i: usize, drain: bool) -> bool {
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.resize(READ_CHUNK, 0);
        let open = loop {
            let Some((fd, stream)) = self
                .outputs
                .get(i)
                .and_then(|o| Some((o.fd.as_ref()?.as_raw_fd(), o.stream)))
            else {
                break false;
            };
            match sys::read(fd, &mut buf) {
                Ok(0) => {
                    self.close_output(i);
                    break false;
                }
                Ok(n) => {
                    self.deliver(i, stream, &buf[..n]);
                    if !drain {
                        break true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                // EIO: the terminal's last slave descriptor closed.
                Err(_) => {
                    self.close_output(i);
                    break false;
                }
            }
        };
        self.read_buf = buf;
        open
    }

    fn deliver(&mut self, i: usize, stream: Stream, chunk: &[u8]) {
        let raw = self.spec.tty;
        for c in &mut self.conns {
            if let Role::Attach(s) = c.role {
                let wanted = match stream {
                    Stream::Stdout => s.stdout,
                    Stream::Stderr => s.stderr,
                };
                if wanted {
                    c.out.push_output(stream, chunk, raw);
                }
            }
        }
        let out = &mut self.outputs[i];
        if let Some(log) = &mut self.log {
            let mut now = SystemTime::now;
            let mut result = Ok(());
            out.splitter.push(chunk, &mut now, &mut |e: Entry<'_>| {
                if result.is_ok() {
                    result = log.write(&e, stream);
                }
            });
            if let Err(e) = result {
                self.log_failed(e);
            }
        }
    }

    fn close_output(&mut self, i: usize) {
        let Some(out) = self.outputs.get_mut(i) else {
            return;
        };
        if out.fd.take().is_none() {
            return;
        }
        if let Some(log) = &mut self.log {
            let mut now = SystemTime::now;
            let mut result = Ok(());
            let stream = out.stream;
            out.splitter.finish(&mut now, &mut |e: Entry<'_>| {
                if result.is_ok() {
                    result = log.write(&e, stream);
                }
            });
            if let Err(e) = result {
                self.log_failed(e);
            }
        }
    }

    /// After the exit: everything the pipes still hold goes out.
    fn drain_outputs(&mut self) {
        for i in 0..self.outputs.len() {
            // Every writer died with the namespace: what would block is the end.
            if self.read_output(i, true) {
                self.close_output(i);
            }
        }
        self.flush_log();
        // The terminal and stdin are of no use once the process is gone.
        self.stdin = None;
        self.master = None;
    }

    fn log_failed(&mut self, e: io::Error) {
        if self.log_error.is_none() {
            self.log_error = Some(format!("writing the container's log failed: {e}"));
        }
        self.log = None;
    }

    fn flush_log(&mut self) {
        if let Some(log) = &mut self.log
            && let Err(e) = log.flush()
        {
            self.log_failed(e);
        }
    }

    fn flush_stdin(&mut self) {
        let Some(s) = &mut self.stdin else {
            return;
        };
        match s.queue.flush_to(s.fd.as_raw_fd()) {
            Ok(_) => {
                if s.queue.is_empty() && s.close_when_empty {
                    self.stdin = None;
                }
            }
            // The command closed its stdin: what is queued has nowhere to go.
            Err(_) => self.stdin = None,
        }
    }

    fn feed_stdin(&mut self, data: &[u8]) {
        if let Some(s) = &mut self.stdin
            && !s.close_when_empty
        {
            s.queue.push(data);
            self.flush_stdin();
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            let fd = unsafe {
                libc::accept4(
                    listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                return;
            }
            self.conns.push(Conn {
                fd: Some(unsafe { OwnedFd::from_raw_fd(fd) }),
                role: Role::Pending(Vec::new()),
                out: OutQueue::default(),
                reading: true,
                fds: Vec::new(),
            });
        }
    }

    fn handle_conn(&mut self, i: usize, revents: libc::c_short) {
        let Some(fd) = self.conns[i].fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        if revents & libc::POLLOUT != 0 {
            let c = &mut self.conns[i];
            match c.out.flush_to(fd) {
                Ok(n) => {
                    if n > 0 {
                        self.last_progress = Instant::now();
                    }
                    if c.out.is_empty() && matches!(c.role, Role::Replied) {
                        self.drop_conn(i);
                        return;
                    }
                }
                Err(_) => {
                    self.drop_conn(i);
                    return;
                }
            }
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 && self.conns[i].reading {
            self.read_conn(i);
        } else if revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            // Gone in both directions and nothing left to read from it.
            self.drop_conn(i);
        }
    }

    /// Closes a connection; `serve` prunes it after the round of events.
    fn drop_conn(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.out.clear();
        c.reading = false;
        c.fd = None;
    }

    fn read_conn(&mut self, i: usize) {
        let mut buf = [0u8; 16 * 1024];
        let Some(fd) = self.conns[i].fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        let read = match self.conns[i].role {
            // Only a request line may bring descriptors.
            Role::Pending(_) if self.conns[i].fds.len() < sys::MAX_FDS_PER_MESSAGE => {
                sys::recv_with_fds(fd, &mut buf, &mut self.conns[i].fds)
            }
            _ => sys::read(fd, &mut buf),
        };
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        let role = std::mem::replace(&mut self.conns[i].role, Role::Replied);
        match role {
            Role::Pending(mut pending) => {
                if n == 0 {
                    self.drop_conn(i);
                    return;
                }
                pending.extend_from_slice(&buf[..n]);
                match pending.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        let rest = pending[nl + 1..].to_vec();
                        let req = control::decode_line::<Request>(&pending[..nl]);
                        self.request(i, req, &rest);
                    }
                    None if pending.len() > MAX_REQUEST => {
                        self.reply(
                            i,
                            &Reply::Error {
                                message: "request line too long".into(),
                            },
                        );
                    }
                    None => self.conns[i].role = Role::Pending(pending),
                }
            }
            Role::Attach(s) => {
                self.conns[i].role = Role::Attach(s);
                if n == 0 {
                    self.conns[i].reading = false;
                    if s.stdin && self.spec.stdin_once && !self.spec.tty {
                        if let Some(stdin) = &mut self.stdin {
                            stdin.close_when_empty = true;
                        }
                        self.flush_stdin();
                    }
                } else if s.stdin {
                    self.feed_stdin(&buf[..n]);
                }
            }
            other => {
                self.conns[i].role = other;
                if n == 0 {
                    self.conns[i].reading = false;
                    if matches!(self.conns[i].role, Role::Waiting) {
                        // A waiter that hung up no longer needs an answer.
                        self.drop_conn(i);
                    }
                }
            }
        }
    }

    fn request(&mut self, i: usize, req: io::Result<Request>, rest: &[u8]) {
        // Descriptors are for an `Exec` only; any others close here.
        let fds = std::mem::take(&mut self.conns[i].fds);
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                self.reply(
                    i,
                    &Reply::Error {
                        message: e.to_string(),
                    },
                );
                return;
            }
        };
        match req {
            Request::Attach(streams) => {
                // Registered before anything else is read: the acknowledgement tells
                // the client that no later output can miss it.
                self.conns[i].role = Role::Attach(streams);
                self.conns[i].out.push(&control::encode_line(&Reply::Ok));
                if streams.stdin && !rest.is_empty() {
                    self.feed_stdin(rest);
                }
            }
            Request::Kill { signal } => {
                let reply = if self.exited.is_some() {
                    Reply::Error {
                        message: format!("Container {} is not running", self.spec.id),
                    }
                } else {
                    match sys::kill(self.pid, signal) {
                        Ok(()) => Reply::Ok,
                        Err(e) => Reply::Error {
                            message: format!(
                                "kill container process {} with signal {signal}: {}",
                                self.pid,
                                crate::store::strip_os_suffix(&e)
                            ),
                        },
                    }
                };
                self.reply(i, &reply);
            }
            Request::Resize { height, width } => {
                let reply = match &self.master {
                    Some(m) => match sys::set_winsize(m.as_raw_fd(), height, width) {
                        Ok(()) => Reply::Ok,
                        Err(e) => Reply::Error {
                            message: format!(
                                "resize the terminal: {}",
                                crate::store::strip_os_suffix(&e)
                            ),
                        },
                    },
                    None if self.exited.is_some() => Reply::Error {
                        message: format!("Container {} is not running", self.spec.id),
                    },
                    None => Reply::Error {
                        message: format!(
                            "container {} has no terminal to resize (it was not started with a TTY)",
                            self.spec.id
                        ),
                    },
                };
                self.reply(i, &reply);
            }
            Request::Wait => {
                self.conns[i].role = Role::Waiting;
            }
            Request::State => {
                let reply = match self.exited {
                    None => Reply::Running { pid: self.pid },
                    Some(_) => Reply::Exited(self.record()),
                };
                self.reply(i, &reply);
            }
            Request::Exec(spec) => {
                let reply = self.fork_exec(*spec, fds);
                self.reply(i, &reply);
            }
        }
    }

    /// Forks the monitor of an exec into this container (see [`Request::Exec`]). The
    /// exec runs under the container's own seccomp filter, `no_new_privs` and
    /// AppArmor profile, those it started with, whatever the daemon's settings now.
    fn fork_exec(&self, mut spec: ContainerSpec, fds: Vec<OwnedFd>) -> Reply {
        spec.seccomp = self.spec.seccomp.clone();
        spec.no_new_privileges = self.spec.no_new_privileges;
        spec.apparmor_profile = self.spec.apparmor_profile.clone();
        let error = |message: String| Reply::Error { message };
        if self.spec.exec_in.is_some() {
            return error("an exec is started by its container's monitor".into());
        }
        if self.exited.is_some() {
            return error(format!("container {} is not running", self.spec.id));
        }
        if spec.exec_in != Some(self.pid) {
            return error(format!(
                "the exec does not name the process of container {}",
                self.spec.id
            ));
        }
        let mut fds = fds.into_iter();
        let Some(sync) = fds.next() else {
            return error("the exec request came without its sync descriptor".into());
        };
        let attach: Vec<(OwnedFd, AttachStreams)> = fds
            .by_ref()
            .zip(spec.initial_attach.iter().map(|a| a.streams))
            .collect();
        if attach.len() != spec.initial_attach.len() {
            return error("the exec request came without its attach streams".into());
        }
        let namespaces = match ExecNamespaces::open(&spec, self.pid) {
            Ok(n) => n,
            Err(failure) => return error(failure.message),
        };
        match sys::clone_process(0) {
            Ok(None) => exec_monitor(spec, sync, attach, namespaces, self.cgroup.clone()),
            // The parent's copies close here; the child is reaped with the others.
            Ok(Some(_)) => Reply::Ok,
            Err(e) => error(format!(
                "start the exec's monitor: {}",
                crate::store::strip_os_suffix(&e)
            )),
        }
    }

    fn reply(&mut self, i: usize, reply: &Reply) {
        let c = &mut self.conns[i];
        c.role = Role::Replied;
        c.reading = false;
        c.out.push(&control::encode_line(reply));
        let done = match &c.fd {
            Some(fd) => c.out.flush_to(fd.as_raw_fd()).is_err() || c.out.is_empty(),
            None => true,
        };
        if done {
            self.drop_conn(i);
        }
    }

    fn record(&self) -> ExitRecord {
        let (exit, time) = self.exited.unwrap_or((Exit::Code(255), SystemTime::now()));
        ExitRecord {
            exit_code: exit.status(),
            finished_at: crate::timefmt::rfc3339_nano(time),
            oom_killed: false,
            error: self.log_error.clone(),
            network_released: false,
        }
    }

    /// The container is gone and its output delivered: answer, record, clean up.
    fn finish(&mut self) {
        self.flush_log();
        self.log = None;
        // Before anyone hears of the exit: a restart must find the container's host
        // ports free and its rules gone.
        let exec = self.spec.exec_in.is_some();
        // An exec leaves the container's networking and cgroup to the container.
        let network_released = !exec && super::network::teardown(&self.spec.state_dir);
        let mut record = self.record();
        record.oom_killed = !exec && (self.oom_seen || self.cgroup.oom_killed());
        record.network_released = network_released;

        // Attached clients have all the output: closing tells them it ended.
        self.conns.retain(|c| !matches!(c.role, Role::Attach(_)));
        // Requests that arrived but were not read yet still get an answer.
        for i in 0..self.conns.len() {
            if matches!(self.conns[i].role, Role::Pending(_)) && self.conns[i].reading {
                self.read_conn(i);
            }
        }
        let answer = control::encode_line(&Reply::Exited(record.clone()));
        let mut told = false;
        for c in &mut self.conns {
            let waiting = matches!(c.role, Role::Waiting);
            if waiting {
                c.out.push(&answer);
                c.role = Role::Replied;
            }
            if let Some(fd) = &c.fd {
                let _ = c.out.flush_to(fd.as_raw_fd());
                told |= waiting && c.out.is_empty();
            }
        }
        self.conns.retain(|c| !matches!(c.role, Role::Replied));

        // Nobody is left to tell when this fails: a daemon that comes back finds no
        // record and reports the container's end as unknown. An exec's end told to
        // a waiter needs no record: a daemon that comes back knows no exec IDs.
        if !(exec && told) {
            let _ = crate::store::write_json(&self.spec.state_dir.join(EXIT_FILE), &record);
        }
        // Only now may a request go unanswered: its sender finds the record.
        self.conns.clear();
        self.listener = None;
        // A cgroup the kernel still holds is harmless and reused by the next start.
        // A scope's is systemd's: it removes it when the scope ends.
        if !exec && !self.spec.systemd_scope {
            let _ = self.cgroup.remove();
        }
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// The forked exec monitor: it keeps only the exec's descriptors, leaves the
/// container monitor's session, runs the exec like a monitor the daemon started, and
/// exits without unwinding into the container monitor's state it still has a copy of.
fn exec_monitor(
    spec: ContainerSpec,
    sync: OwnedFd,
    attach: Vec<(OwnedFd, AttachStreams)>,
    namespaces: ExecNamespaces,
    cgroup: ContainerCgroup,
) -> ! {
    let mut keep = vec![sync.as_raw_fd()];
    keep.extend(attach.iter().map(|(fd, _)| fd.as_raw_fd()));
    keep.extend(namespaces.fds());
    sys::close_all_except(&keep);
    super::detach_from_daemon();
    // A panic must not unwind into the container monitor's state this copy holds.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let started = start_exec(&spec, namespaces, Some(cgroup));
        serve_started(started, spec, sync, attach)
    }))
    .unwrap_or(super::EXIT_MONITOR_FAILED);
    sys::exit_now(code.into())
}

fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    let n = sys::cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}
