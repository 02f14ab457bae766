//! Turning a container spec into a running process, via the container monitor.
//!
//! For every container the daemon re-executes its own binary as `dockerd init` (see
//! `crate::init`): the monitor owns the container's process, output, log and exit
//! status, and keeps doing so when the daemon exits or restarts. This module is the
//! daemon's side of that arrangement: it spawns a monitor with the spec, waits for its
//! one-line start report, and later talks to it over `<exec-root>/containers/<id>/
//! monitor.sock` (attach, kill, resize, wait, state). When the monitor is gone, the
//! container's `exit.json` in the same directory tells how it ended. An exec is sent
//! to its container's monitor, which forks the exec's monitor; from then on the exec
//! is reached like a container, under its own ID.
//!
//! A daemon that comes back after a restart makes a new [`Runtime`] on the same
//! exec-root and finds its running containers through the same sockets.

pub mod defaults;
pub mod scope;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::Error;
use crate::init::control;
use crate::init::spec::{
    AttachStreams, ContainerSpec, EXIT_FILE, ExitRecord, InitialAttach, MONITOR_SOCKET, Reply,
    Request, SyncMessage,
};

/// Where the daemon keeps one container's runtime state, and how it reaches monitors.
#[derive(Debug, Clone)]
pub struct Runtime {
    exec_root: PathBuf,
    /// The binary that runs `init` (the daemon's own, unless told otherwise).
    monitor_exe: PathBuf,
    /// systemd, for containers whose cgroup is a scope unit (the systemd driver).
    scopes: scope::Scopes,
}

/// A container whose command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// The command's PID in the host's PID namespace.
    pub pid: i32,
    pub monitor_pid: i32,
}

/// A container that did not start. `message` is Docker's wording (the docker CLI
/// derives `docker run`'s exit status from it); `exit_code` is what the container
/// records (127 command not found, 126 not executable, 128 other failures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    pub message: String,
    pub exit_code: i32,
}

/// What the runtime knows about a container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorState {
    Running {
        pid: i32,
    },
    Exited(ExitRecord),
    /// Neither a monitor nor an exit record: never started here, or its state is lost.
    Gone,
}

/// The exit status recorded when the monitor vanished without recording one.
pub const EXIT_MONITOR_LOST: i32 = 255;

/// First descriptor number of the initial attach streams in the monitor.
const FIRST_ATTACH_FD: RawFd = 5;
const SPEC_FD: RawFd = 3;
const SYNC_FD: RawFd = 4;

impl Runtime {
    pub fn new(exec_root: &Path) -> Self {
        Runtime {
            exec_root: exec_root.to_path_buf(),
            monitor_exe: PathBuf::from("/proc/self/exe"),
            scopes: scope::Scopes::default(),
        }
    }

    /// Uses `exe` (a `dockerd` binary) as the monitor, for a caller that is not
    /// `dockerd` itself, such as the integration tests.
    pub fn with_monitor_exe(mut self, exe: &Path) -> Self {
        self.monitor_exe = exe.to_path_buf();
        self
    }

    /// `<exec-root>/containers/<id>`: the monitor's socket and the exit record.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }

    /// Starts a monitor for `spec` and returns once the command was exec'd (or failed
    /// to start). `spec.state_dir` and `spec.initial_attach` are filled in here; the
    /// `initial_attach` streams are handed to the monitor, which serves them like
    /// attach connections from the first byte of output on.
    pub async fn start(
        &self,
        mut spec: ContainerSpec,
        initial_attach: Vec<(std::os::unix::net::UnixStream, AttachStreams)>,
    ) -> Result<Started, StartError> {
        self.prepare(&mut spec, &initial_attach)?;
        self.spawn_monitor(&spec, initial_attach).await
    }

    /// Starts an exec: `spec` names the running container's process in `exec_in`.
    /// The container's monitor forks the exec's monitor (see `Request::Exec`), which
    /// reports like one started by [`Runtime::start`] and is reached under the
    /// spec's own ID. A container monitor too old to know the request gets a monitor
    /// spawned from the daemon's binary instead.
    pub async fn start_exec(
        &self,
        container_id: &str,
        mut spec: ContainerSpec,
        initial_attach: Vec<(std::os::unix::net::UnixStream, AttachStreams)>,
    ) -> Result<Started, StartError> {
        self.prepare(&mut spec, &initial_attach)?;
        let not_running = || StartError {
            message: format!("container {container_id} is not running"),
            exit_code: 128,
        };
        let mut stream = match self.connect(container_id).await {
            Ok(s) => s,
            Err(_) => return Err(not_running()),
        };
        let (sync_r, sync_w) =
            crate::init::sys::pipe().map_err(|e| start_failure(format!("create a pipe: {e}")))?;
        let mut fds = vec![sync_w.as_raw_fd()];
        fds.extend(initial_attach.iter().map(|(s, _)| s.as_raw_fd()));
        let line = control::encode_line(&Request::Exec(Box::new(spec.clone())));
        let reply = async {
            let sent = stream
                .async_io(tokio::io::Interest::WRITABLE, || {
                    crate::init::sys::send_with_fds(stream.as_raw_fd(), &line, &fds)
                })
                .await;
            let wrote = match sent {
                Ok(n) => stream.write_all(&line[n..]).await,
                Err(e) => Err(e),
            };
            // A monitor that refused the line may have answered why before closing.
            let mut reader = BufReader::new(&mut stream);
            let mut answer = Vec::new();
            let read = reader.read_until(b'\n', &mut answer).await;
            if answer.pop() == Some(b'\n') {
                return control::decode_line::<Reply>(&answer).map(Some);
            }
            wrote?;
            read?;
            Ok(None)
        }
        .await;
        match reply {
            Ok(Some(Reply::Ok)) => {}
            Ok(Some(Reply::Error { message })) if message.starts_with(control::INVALID_MESSAGE) => {
                drop(sync_w);
                return self.spawn_monitor(&spec, initial_attach).await;
            }
            Ok(Some(Reply::Error { message })) => return Err(start_failure(message)),
            Ok(Some(other)) => {
                return Err(start_failure(format!(
                    "unexpected answer from the container monitor: {other:?}"
                )));
            }
            Ok(None) => return Err(not_running()),
            // The monitor closed on us: the container ended meanwhile.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ) =>
            {
                return Err(not_running());
            }
            Err(e) => {
                return Err(start_failure(format!(
                    "hand the exec to the container monitor: {}",
                    crate::store::strip_os_suffix(&e)
                )));
            }
        }
        drop(sync_w);
        drop(initial_attach);
        match read_sync(sync_r).await {
            Ok(Some(SyncMessage::Started { pid, monitor_pid })) => Ok(Started { pid, monitor_pid }),
            Ok(Some(SyncMessage::Failed { message, exit_code })) => {
                Err(StartError { message, exit_code })
            }
            Ok(Some(SyncMessage::Created { .. })) | Ok(None) => Err(start_failure(
                "the exec's monitor ended before starting the process".into(),
            )),
            Err(e) => Err(start_failure(format!(
                "read the exec monitor's start report: {e}"
            ))),
        }
    }

    /// The state directory (made, without a previous run's socket and record) and the
    /// attach descriptors' numbers in the monitor, filled into `spec`.
    fn prepare(
        &self,
        spec: &mut ContainerSpec,
        initial_attach: &[(std::os::unix::net::UnixStream, AttachStreams)],
    ) -> Result<(), StartError> {
        check_id(&spec.id).map_err(|e| start_failure(e.to_string()))?;
        let state_dir = self.state_dir(&spec.id);
        crate::store::create_private_dir(&state_dir).map_err(|e| start_failure(e.to_string()))?;
        for stale in [EXIT_FILE, MONITOR_SOCKET] {
            let _ = std::fs::remove_file(state_dir.join(stale));
        }
        spec.state_dir = state_dir;
        spec.initial_attach = initial_attach
            .iter()
            .enumerate()
            .map(|(i, (_, streams))| InitialAttach {
                fd: FIRST_ATTACH_FD + i as RawFd,
                streams: *streams,
            })
            .collect();
        Ok(())
    }

    /// Runs `dockerd init` for a prepared spec and waits for its start report.
    async fn spawn_monitor(
        &self,
        spec: &ContainerSpec,
        initial_attach: Vec<(std::os::unix::net::UnixStream, AttachStreams)>,
    ) -> Result<Started, StartError> {
        let fail = start_failure;
        let json = serde_json::to_vec(&spec)
            .map_err(|e| fail(format!("encode the container spec: {e}")))?;
        let spec_fd =
            spec_memfd(&json).map_err(|e| fail(format!("pass the container spec: {e}")))?;
        // The systemd driver answers the monitor once (see `SyncMessage::Created`):
        // a socket instead of a pipe.
        let (sync_r, sync_w) = if spec.systemd_scope {
            crate::init::sys::socketpair()
                .map_err(|e| fail(format!("create a socket pair: {e}")))?
        } else {
            crate::init::sys::pipe().map_err(|e| fail(format!("create a pipe: {e}")))?
        };

        let mut fds: Vec<RawFd> = vec![spec_fd.as_raw_fd(), sync_w.as_raw_fd()];
        fds.extend(initial_attach.iter().map(|(s, _)| s.as_raw_fd()));
        let cmd = self.helper_command(
            &[
                crate::init::SUBCOMMAND,
                "--spec-fd",
                &SPEC_FD.to_string(),
                "--sync-fd",
                &SYNC_FD.to_string(),
            ],
            fds,
        );
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| fail(format!("start the container monitor: {e}")))?;
        drop(spec_fd);
        drop(sync_w);
        drop(initial_attach);

        let line = if spec.systemd_scope {
            self.read_sync_creating_scope(sync_r, spec).await
        } else {
            read_sync(sync_r).await
        };
        let result = match line {
            Ok(Some(SyncMessage::Started { pid, monitor_pid })) => Ok(Started { pid, monitor_pid }),
            Ok(Some(SyncMessage::Failed { message, exit_code })) => {
                Err(StartError { message, exit_code })
            }
            Ok(Some(SyncMessage::Created { .. })) | Ok(None) | Err(_) => {
                let status = child.wait().await;
                let why = match (line, status) {
                    (Err(e), _) => format!("read its start report: {e}"),
                    (_, Ok(s)) => format!("it exited with {s}"),
                    (_, Err(e)) => e.to_string(),
                };
                return Err(fail(format!(
                    "container monitor failed before starting the container: {why}"
                )));
            }
        };
        // Reap the monitor whenever it ends; a daemon restart leaves it to init.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        result
    }

    /// The start report of a monitor under the systemd driver: first `Created`,
    /// answered once the container's scope exists (or with why it could not be
    /// made), then the report proper.
    async fn read_sync_creating_scope(
        &self,
        fd: OwnedFd,
        spec: &ContainerSpec,
    ) -> io::Result<Option<SyncMessage>> {
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true)?;
        let mut reader = BufReader::new(UnixStream::from_std(std)?);
        let mut line = Vec::new();
        let mut next =
            async |reader: &mut BufReader<UnixStream>| -> io::Result<Option<SyncMessage>> {
                line.clear();
                (&mut *reader)
                    .take(1 << 20)
                    .read_until(b'\n', &mut line)
                    .await?;
                if line.pop() != Some(b'\n') {
                    return Ok(None);
                }
                control::decode_line(&line).map(Some)
            };
        // A start that fails before the clone reports at once.
        let pid = match next(&mut reader).await? {
            Some(SyncMessage::Created { pid }) => pid,
            Some(other) => return Ok(Some(other)),
            None => return Ok(None),
        };
        let reply = match self.scopes.create(spec, pid).await {
            Ok(()) => Reply::Ok,
            Err(message) => Reply::Error { message },
        };
        reader
            .get_mut()
            .write_all(&control::encode_line(&reply))
            .await?;
        match next(&mut reader).await? {
            Some(msg) => final_report(msg),
            None => Ok(None),
        }
    }

    /// New limits for a running container's systemd scope (`docker update` under
    /// the systemd driver), beside the files [`Runtime::update_resources`] writes.
    pub async fn update_scope(
        &self,
        cgroup_path: &str,
        r: &crate::init::spec::Resources,
    ) -> Result<(), String> {
        self.scopes.update(cgroup_path, r).await
    }

    /// After a container's exit under the systemd driver: whether systemd saw it
    /// OOM-killed; its scope, if it ended failed, is cleared.
    pub async fn finish_scope(&self, cgroup_path: &str) -> bool {
        self.scopes.finish(cgroup_path).await
    }

    /// Starts a container's network proxy (`dockerd network-proxy`) with `spec` and
    /// the sockets it serves; their descriptor numbers in the spec are filled in here
    /// (`fds` in the order: the forwards, then the DNS server's UDP and TCP sockets).
    /// Returns its PID. It runs in a session of its own and outlives the daemon.
    /// Call within the daemon's runtime (a task or a blocking thread of it).
    pub fn start_proxy(
        &self,
        mut spec: crate::netproxy::ProxySpec,
        fds: Vec<OwnedFd>,
    ) -> io::Result<i32> {
        let mut next = SPEC_FD + 1;
        for f in &mut spec.forwards {
            f.fd = next;
            next += 1;
        }
        if let Some(d) = &mut spec.dns {
            d.udp_fd = next;
            d.tcp_fd = next + 1;
        }
        let json = serde_json::to_vec(&spec).map_err(io::Error::other)?;
        let spec_fd = spec_memfd(&json)?;
        let mut all: Vec<RawFd> = vec![spec_fd.as_raw_fd()];
        all.extend(fds.iter().map(|f| f.as_raw_fd()));
        let cmd = self.helper_command(
            &[
                crate::netproxy::SUBCOMMAND,
                "--spec-fd",
                &SPEC_FD.to_string(),
            ],
            all,
        );
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        drop(spec_fd);
        drop(fds);
        // Reap it whenever it ends; a daemon restart leaves it to init.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(pid)
    }

    /// `dockerd ARGS…` re-executed from the daemon's binary as a helper that outlives
    /// it: empty environment, `/` as working directory, stdio on /dev/null, `fds` on
    /// descriptors 3, 4, … and nothing else inherited, in a session of its own.
    fn helper_command(&self, args: &[&str], fds: Vec<RawFd>) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.monitor_exe);
        cmd.arg0("dockerd")
            .args(args)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Runs between fork and exec: only async-signal-safe calls.
        unsafe {
            cmd.pre_exec(move || place_fds(&fds));
        }
        cmd
    }

    /// Opens an attach stream: the request is sent and returns once the monitor has
    /// registered it, so every byte the container writes from then on reaches the
    /// stream (framed unless it has a TTY) until it exits.
    pub async fn attach(&self, id: &str, streams: AttachStreams) -> io::Result<UnixStream> {
        let mut stream = self.connect(id).await?;
        stream
            .write_all(&control::encode_line(&Request::Attach(streams)))
            .await?;
        // The acknowledgement is read byte by byte: output may follow it at once and
        // belongs to the caller.
        let mut line = Vec::new();
        loop {
            let mut byte = [0u8];
            if stream.read(&mut byte).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the container monitor closed the attach stream without answering",
                ));
            }
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
            if line.len() > 4096 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the container monitor's attach answer is too long",
                ));
            }
        }
        match control::decode_line(&line)? {
            Reply::Ok => Ok(stream),
            Reply::Error { message } => Err(io::Error::other(message)),
            other => Err(io::Error::other(format!(
                "unexpected answer from the container monitor: {other:?}"
            ))),
        }
    }

    /// Sends `signal` to the container's process (its init with `--init`).
    pub async fn kill(&self, id: &str, signal: i32) -> Result<(), Error> {
        self.simple(id, &Request::Kill { signal }).await
    }

    /// Sets the size of the container's terminal.
    pub async fn resize(&self, id: &str, height: u16, width: u16) -> Result<(), Error> {
        self.simple(id, &Request::Resize { height, width }).await
    }

    /// Waits until the container has exited and its output is delivered.
    pub async fn wait(&self, id: &str) -> ExitRecord {
        if let Ok(Some(Reply::Exited(record))) = self.request(id, &Request::Wait).await {
            return record;
        }
        self.read_exit(id).unwrap_or_else(|| ExitRecord {
            exit_code: EXIT_MONITOR_LOST,
            finished_at: crate::timefmt::rfc3339_nano(std::time::SystemTime::now()),
            oom_killed: false,
            error: Some("container monitor exited unexpectedly".into()),
            network_released: false,
        })
    }

    /// Whether the container runs, has exited, or is unknown here.
    pub async fn state(&self, id: &str) -> MonitorState {
        match self.request(id, &Request::State).await {
            Ok(Some(Reply::Running { pid })) => MonitorState::Running { pid },
            Ok(Some(Reply::Exited(record))) => MonitorState::Exited(record),
            _ => match self.read_exit(id) {
                Some(record) => MonitorState::Exited(record),
                None => MonitorState::Gone,
            },
        }
    }

    /// The PIDs (host namespace) in the container's cgroup, for `docker top`.
    pub fn pids(&self, cgroup_path: &str) -> io::Result<Vec<i32>> {
        let hierarchies = crate::init::cgroup::hierarchies()?;
        let file = crate::init::cgroup::procs_file(hierarchies, cgroup_path)?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| crate::store::with_path(e, "read", &file))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Writes new limits to a running container's cgroup (`docker update`).
    pub fn update_resources(
        &self,
        cgroup_path: &str,
        r: &crate::init::spec::Resources,
    ) -> io::Result<()> {
        let hierarchies = crate::init::cgroup::hierarchies()?;
        let cg = crate::init::cgroup::ContainerCgroup::existing(hierarchies, cgroup_path)?;
        crate::init::resources::apply(&cg, r)
    }

    /// Freezes or thaws the processes in the container's cgroup (`docker pause`).
    pub fn freeze(&self, cgroup_path: &str, frozen: bool) -> io::Result<()> {
        let hierarchies = crate::init::cgroup::hierarchies()?;
        crate::init::cgroup::freeze(hierarchies, cgroup_path, frozen)
    }

    /// Removes the container's runtime state (after it exited and was recorded).
    /// A monitor still finishing (writing `exit.json` after answering `wait`) may add
    /// a file while the directory goes; the removal is retried briefly then.
    pub fn remove_state(&self, id: &str) {
        if check_id(id).is_err() {
            return;
        }
        let dir = self.state_dir(id);
        for _ in 0..50 {
            let _ = crate::store::remove_dir_all_robust(&dir);
            if !dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// The IDs that have a state directory: containers and execs.
    pub fn state_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.exec_root.join("containers")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| check_id(id).is_ok())
            .collect()
    }

    fn read_exit(&self, id: &str) -> Option<ExitRecord> {
        let bytes = std::fs::read(self.state_dir(id).join(EXIT_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    async fn connect(&self, id: &str) -> io::Result<UnixStream> {
        check_id(id)?;
        let (addr, _dir) = control::socket_address(&self.state_dir(id))?;
        UnixStream::connect(&addr).await
    }

    /// Sends one request; `Ok(None)` when the monitor closed without answering.
    async fn request(&self, id: &str, req: &Request) -> io::Result<Option<Reply>> {
        let mut stream = self.connect(id).await?;
        stream.write_all(&control::encode_line(req)).await?;
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).await?;
        if line.last() != Some(&b'\n') {
            return Ok(None);
        }
        line.pop();
        control::decode_line(&line).map(Some)
    }

    async fn simple(&self, id: &str, req: &Request) -> Result<(), Error> {
        match self.request(id, req).await {
            Ok(Some(Reply::Ok)) => Ok(()),
            Ok(Some(Reply::Error { message })) if message.contains("is not running") => {
                Err(Error::conflict(message))
            }
            Ok(Some(Reply::Error { message })) => Err(Error::internal(message)),
            Ok(Some(other)) => Err(Error::internal(format!(
                "unexpected answer from the container monitor: {other:?}"
            ))),
            Ok(None) => Err(Error::conflict(format!("Container {id} is not running"))),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                Err(Error::conflict(format!("Container {id} is not running")))
            }
            Err(e) => Err(Error::internal(format!(
                "talk to the monitor of container {id}: {}",
                crate::store::strip_os_suffix(&e)
            ))),
        }
    }
}

/// A start that failed in the engine, not in the container's command (Docker's 128).
fn start_failure(message: String) -> StartError {
    StartError {
        message,
        exit_code: 128,
    }
}

/// A container ID names a directory: no separators, no dot names.
fn check_id(id: &str) -> io::Result<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid container ID {id:?}"),
        ));
    }
    Ok(())
}

/// The spec in an anonymous memory file, read from the start by the monitor.
fn spec_memfd(json: &[u8]) -> io::Result<OwnedFd> {
    let fd = crate::init::sys::cvt(unsafe {
        libc::memfd_create(c"container-spec".as_ptr(), libc::MFD_CLOEXEC)
    })?;
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    crate::init::sys::write_all(fd.as_raw_fd(), json)?;
    crate::init::sys::cvt(unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_SET) } as libc::c_int)?;
    Ok(fd)
}

/// In the forked child: puts `fds[i]` on descriptor `3 + i`, starts a new session, and
/// marks every other descriptor close-on-exec. Async-signal-safe.
fn place_fds(fds: &[RawFd]) -> io::Result<()> {
    use crate::init::sys::cvt;
    cvt(unsafe { libc::setsid() })?;
    let first = SPEC_FD;
    let above = first + fds.len() as RawFd;
    // Copy every source above the target range first, so no dup2 clobbers a source.
    let mut lifted = [0 as RawFd; 64];
    if fds.len() > lifted.len() {
        return Err(io::Error::from_raw_os_error(libc::EMFILE));
    }
    for (i, &fd) in fds.iter().enumerate() {
        lifted[i] = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above) })?;
    }
    for (i, &fd) in lifted[..fds.len()].iter().enumerate() {
        cvt(unsafe { libc::dup2(fd, first + i as RawFd) })?;
    }
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            above as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    Ok(())
}

async fn read_sync(fd: OwnedFd) -> io::Result<Option<SyncMessage>> {
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
    let mut bytes = Vec::new();
    pipe.take(1 << 20).read_to_end(&mut bytes).await?;
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    if line.is_empty() {
        return Ok(None);
    }
    control::decode_line(line).and_then(final_report)
}

/// A start report that ends the start: `Started` or `Failed`.
fn final_report(msg: SyncMessage) -> io::Result<Option<SyncMessage>> {
    match msg {
        SyncMessage::Created { .. } => Err(io::Error::other(
            "the monitor waits for a systemd scope it was not told to use",
        )),
        other => Ok(Some(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_plain_names() {
        assert!(check_id("abc123").is_ok());
        for bad in ["", ".", "..", "a/b", "x\0"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn state_dirs_live_under_exec_root() {
        let rt = Runtime::new(Path::new("/run/docker"));
        assert_eq!(
            rt.state_dir("abc"),
            PathBuf::from("/run/docker/containers/abc")
        );
    }
}
