//! Test harness: runs the built `dockerd` on private sockets and directories, and
//! talks to it with raw HTTP and with the real docker CLI.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn dockerd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dockerd")
}

/// The real docker CLI; a missing one fails the test with instructions.
pub fn docker_cli() -> &'static str {
    const CLI: &str = "/usr/local/bin/docker";
    if !Path::new(CLI).exists() {
        panic!(
            "the docker CLI is required at {CLI}: install the docker CLI 28.x client (no engine needed)"
        );
    }
    CLI
}

/// Fails with an install hint when `tool` is not on PATH.
pub fn require_tool(tool: &str, hint: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        panic!("{tool} is required for this test: {hint}");
    }
}

/// Generous limit for anything that should take milliseconds (slow shared CI machines).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A command's stdout as text.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr as text.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `docker inspect NAME`, the one object.
pub fn inspect(d: &Daemon, name: &str) -> serde_json::Value {
    let s = d.docker_ok(&["inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    v[0].clone()
}

/// The busybox image most container tests use, as [`Daemon::import_busybox`] makes it.
pub const BUSYBOX_IMG: &str = "test/busybox:1";

/// A daemon with [`BUSYBOX_IMG`] imported.
pub fn daemon_with_busybox() -> Daemon {
    let d = Daemon::start();
    d.import_busybox(BUSYBOX_IMG);
    d
}

/// `docker inspect -f FORMAT NAME`, trimmed.
pub fn field(d: &Daemon, name: &str, format: &str) -> String {
    d.docker_ok(&["inspect", "-f", format, name])
        .trim()
        .to_string()
}

/// What `docker events --since 0 --until 0s` reports with these `--filter`s, in
/// `format`. `--until` counts in whole seconds: the current one passes first.
pub fn events_so_far(d: &Daemon, filters: &[&str], format: &str) -> String {
    std::thread::sleep(Duration::from_millis(1100));
    let mut args = vec![
        "events", "--since", "0", "--until", "0s", "--format", format,
    ];
    for f in filters {
        args.extend(["--filter", f]);
    }
    d.docker_ok(&args)
}

/// Polls `cond` until it holds; fails with the daemon's log after [`PATIENCE`].
pub fn wait_for(what: &str, d: &Daemon, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request (Connection: close) on a unix socket and reads the whole response.
pub fn http(sock: &Path, method: &str, path: &str, body: Option<(&str, &[u8])>) -> HttpResponse {
    let mut s = connect_retry(sock);
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n");
    if let Some((ctype, data)) = body {
        req.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
            data.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some((_, data)) = body {
        s.write_all(data).unwrap();
    }
    read_response(&mut BufReader::new(s), method == "HEAD")
}

/// Reads one HTTP/1.1 response (Content-Length, chunked, or until EOF).
pub fn read_response<R: BufRead>(r: &mut R, head: bool) -> HttpResponse {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if head || status == 204 || status == 304 {
        // no body
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                let mut crlf = String::new();
                let _ = r.read_line(&mut crlf);
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        r.read_exact(&mut body).unwrap();
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn connect_retry(sock: &Path) -> UnixStream {
    let start = Instant::now();
    loop {
        match UnixStream::connect(sock) {
            Ok(s) => return s,
            Err(e) if start.elapsed() > PATIENCE => {
                panic!("cannot connect to {}: {e}", sock.display())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The flags that keep a test daemon's state in `dir`: data-root, exec-root, pidfile
/// and `dir/daemon.json` as its configuration file.
pub fn private_state_args(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args = Vec::new();
    for (flag, name) in [
        ("--data-root", "data"),
        ("--exec-root", "exec"),
        ("--pidfile", "docker.pid"),
        ("--config-file", "daemon.json"),
    ] {
        args.push(flag.into());
        args.push(dir.join(name).into_os_string());
    }
    args
}

/// A network namespace of the test's own, bound to a file: the daemon runs in it
/// (its "host"), so its bridges, firewall rules and published ports never touch the
/// machine's own.
pub fn create_netns(dir: &Path) -> PathBuf {
    let path = dir.join("host.netns");
    if !path.exists() {
        dockerd::net::netns::create(&path)
            .unwrap_or_else(|e| panic!("cannot create a network namespace for the test: {e}"));
    }
    path
}

/// Makes `cmd` start in a private mount namespace with an empty tmpfs on each of
/// `dirs`.
pub fn hide_paths(cmd: &mut Command, dirs: &[PathBuf]) {
    use std::os::unix::process::CommandExt;
    let dirs: Vec<std::ffi::CString> = dirs
        .iter()
        .map(|d| {
            std::fs::create_dir_all(d).unwrap();
            std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).unwrap()
        })
        .collect();
    unsafe {
        cmd.pre_exec(move || {
            let none = std::ptr::null();
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    none,
                    c"/".as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for d in &dirs {
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    d.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Makes `cmd` start in the network namespace at `netns` (only the network
/// namespace: mounts and everything else stay the test's).
pub fn in_netns(cmd: &mut Command, netns: &Path) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let ns = std::fs::File::open(netns).unwrap();
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A daemon with private state and its own network namespace, stopped on drop.
pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub stopped: Option<ExitStatus>,
    /// The network namespace it runs in.
    pub netns: PathBuf,
    args: Vec<String>,
}

/// How to start a [`Daemon`].
pub struct DaemonBuilder {
    args: Vec<String>,
    config: Option<String>,
    env: Vec<(String, String)>,
    wait: bool,
    hidden: Vec<PathBuf>,
}

impl Default for DaemonBuilder {
    fn default() -> Self {
        DaemonBuilder {
            args: Vec::new(),
            config: Some(String::new()),
            env: Vec::new(),
            wait: true,
            hidden: Vec::new(),
        }
    }
}

impl DaemonBuilder {
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }
    /// daemon.json content (default: an empty file).
    pub fn config(mut self, json: &str) -> Self {
        self.config = Some(json.to_string());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
    /// Runs the daemon in a mount namespace of its own where `dir` is an empty
    /// tmpfs (made first if missing), e.g. to take a host service's socket away.
    pub fn hide(mut self, dir: &str) -> Self {
        self.hidden.push(PathBuf::from(dir));
        self
    }
    /// Do not wait for the socket to answer.
    pub fn no_wait(mut self) -> Self {
        self.wait = false;
        self
    }

    pub fn start(self) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("dockerd-test")
            .tempdir()
            .unwrap();
        let sock = dir.path().join("docker.sock");
        let config = dir.path().join("daemon.json");
        std::fs::write(&config, self.config.unwrap_or_default()).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let netns = create_netns(dir.path());
        let mut cmd = Command::new(dockerd_bin());
        cmd.arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(private_state_args(dir.path()))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        in_netns(&mut cmd, &netns);
        if !self.hidden.is_empty() {
            hide_paths(&mut cmd, &self.hidden);
        }
        let child = cmd.spawn().unwrap();
        let mut d = Daemon {
            child,
            dir,
            sock,
            stopped: None,
            netns,
            args: self.args.clone(),
        };
        if self.wait {
            d.wait_ready();
        }
        d
    }
}

impl Daemon {
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    pub fn start() -> Daemon {
        DaemonBuilder::default().start()
    }

    /// Waits until `/_ping` answers; panics with the daemon's log if it exits first.
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("dockerd exited early ({status}):\n{}", self.log());
            }
            if UnixStream::connect(&self.sock).is_ok() {
                let r = http(&self.sock, "GET", "/_ping", None);
                assert_eq!(r.status, 200);
                return;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "dockerd did not answer within {PATIENCE:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn data_root(&self) -> PathBuf {
        self.path("data")
    }

    pub fn exec_root(&self) -> PathBuf {
        self.path("exec")
    }

    pub fn pidfile(&self) -> PathBuf {
        self.path("docker.pid")
    }

    pub fn config_file(&self) -> PathBuf {
        self.path("daemon.json")
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn request(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> HttpResponse {
        http(&self.sock, method, path, body)
    }

    /// Runs the docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args).output().unwrap()
    }

    /// A docker CLI command against this daemon, to customise (stdin, env) before running.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(docker_cli());
        c.arg("-H").arg(self.host()).args(args);
        c.env("DOCKER_CONFIG", self.path("docker-config"));
        c.env_remove("DOCKER_HOST")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT");
        c
    }

    /// Runs the docker CLI and returns stdout, panicking with stderr on failure.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}): {}\n--- daemon log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A command that runs in the daemon's network namespace (its "host").
    pub fn host_cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args);
        in_netns(&mut c, &self.netns);
        c
    }

    /// An HTTP GET from the daemon's host (busybox wget, bounded by `timeout`):
    /// the body, or `None` when it failed.
    pub fn http_get_from_host(&self, url: &str) -> Option<String> {
        let out = self
            .host_cmd("timeout", &["5", "/bin/busybox", "wget", "-q", "-O-", url])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `iptables-save` in the daemon's namespace.
    pub fn iptables_save(&self) -> String {
        let out = self.host_cmd("iptables-save", &[]).output().unwrap();
        assert!(
            out.status.success(),
            "iptables-save failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGTERM and wait for exit.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(s) = self.stopped {
            return s;
        }
        self.signal(libc::SIGTERM);
        let s = wait_timeout(&mut self.child, PATIENCE).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("dockerd did not stop within {PATIENCE:?}:\n{}", self.log())
        });
        self.stopped = Some(s);
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.stopped.is_none() {
            self.signal(libc::SIGTERM);
            if wait_timeout(&mut self.child, Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        reap_leftovers(self.dir.path());
    }
}

/// Containers outlive their daemon by design; a test that ends (or fails) with some
/// still running must not leave them, or their mounts, behind. Container processes
/// are found by their cgroups (`docker/<id>` for the IDs under the test's
/// data-root): from outside their mount namespace their root reads as `/`. Monitors
/// are found by the files they hold under the test's directory; network proxies end
/// with their monitors.
pub fn reap_leftovers(dir: &Path) {
    let mut victims = Vec::new();
    let ids: Vec<String> = std::fs::read_dir(dir.join("data").join("containers"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut cgroup_dirs = Vec::new();
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in hierarchies.flatten() {
            for id in &ids {
                cgroup_dirs.push(h.path().join("docker").join(id));
            }
        }
    }
    for id in &ids {
        cgroup_dirs.push(Path::new("/sys/fs/cgroup/docker").join(id));
    }
    for cg in &cgroup_dirs {
        if let Ok(procs) = std::fs::read_to_string(cg.join("cgroup.procs")) {
            victims.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == std::process::id() as i32 {
                continue;
            }
            let holds = std::fs::read_dir(p.path().join("fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(dir)))
            });
            let rooted =
                std::fs::read_link(p.path().join("root")).is_ok_and(|r| r.starts_with(dir));
            if holds || rooted {
                victims.push(pid);
            }
        }
    }
    for pid in &victims {
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    if !victims.is_empty() {
        // Their monitors record the exits and unmount nothing themselves; give them a moment.
        std::thread::sleep(Duration::from_millis(300));
        for cg in &cgroup_dirs {
            let _ = std::fs::remove_dir(cg);
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    points.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in points {
        if let Ok(c) = std::ffi::CString::new(m) {
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Waits for a child at most `limit`.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A bound `NOTIFY_SOCKET` that collects sd_notify datagrams.
pub struct NotifySocket {
    pub path: PathBuf,
    sock: UnixDatagram,
    pub seen: Vec<String>,
}

impl NotifySocket {
    pub fn new(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            path,
            sock,
            seen: Vec::new(),
        }
    }

    /// Receives datagrams until one satisfies `pred` (returning it) or `limit` passes.
    pub fn wait_for(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        loop {
            let left = limit.checked_sub(start.elapsed())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(msg.clone());
                    if pred(&msg) {
                        return Some(msg);
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

/// A root filesystem tarball from Debian's busybox-static with every applet, an
/// /etc/passwd (root, nobody) and /etc/group (root, nogroup, staff with nobody).
pub fn busybox_full_rootfs(dir: &Path) -> PathBuf {
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "/bin/busybox is required for test images: apt-get install -y busybox-static"
    );
    let root = dir.join("busybox-root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy(bb, root.join("bin/busybox")).unwrap();
    let list = Command::new(bb).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nstaff:x:50:nobody\nnogroup:x:65534:\n",
    )
    .unwrap();
    let tarball = dir.join("busybox-full.tar");
    let f = std::fs::File::create(&tarball).unwrap();
    let mut b = tar::Builder::new(f);
    b.follow_symlinks(false);
    b.append_dir_all(".", &root).unwrap();
    b.into_inner().unwrap().flush().unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    tarball
}

impl Daemon {
    /// Imports a busybox image as `name` (with `CMD ["sh"]`).
    pub fn import_busybox(&self, name: &str) {
        let tar = busybox_full_rootfs(self.dir.path());
        self.docker_ok(&["import", "-c", "CMD [\"sh\"]", tar.to_str().unwrap(), name]);
        std::fs::remove_file(tar).unwrap();
    }
}

impl Daemon {
    /// Starts a new daemon on the same socket, directories and configuration (after
    /// this one stopped or died), taking over the temporary directory.
    pub fn restart(mut self) -> Daemon {
        if self.stopped.is_none() {
            self.stop();
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let sock = self.sock.clone();
        let stderr = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("stderr.log"))
            .unwrap();
        let netns = self.netns.clone();
        let args = self.args.clone();
        let mut cmd = Command::new(dockerd_bin());
        cmd.arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(private_state_args(dir.path()))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        in_netns(&mut cmd, &netns);
        let child = cmd.spawn().unwrap();
        let mut d = Daemon {
            child,
            dir,
            sock,
            stopped: None,
            netns,
            args,
        };
        d.wait_ready();
        d
    }
}

// ---- image fixtures (shared/fixtures/images, made by real engines) -------------

/// Image ID of `busybox-docker20.tar` as Docker gives it.
pub const BUSYBOX_ID: &str =
    "sha256:62ff1febd85635a022b76464af8af6a86b412b4f44052cc2b8fc0edc27185128";
/// Image ID of `multilayer-docker20.tar` as Docker gives it.
pub const MULTI_ID: &str =
    "sha256:4eebb71bc72256934124052437fb1ec4e5b206c25c48fd9f6efd25db1d504f08";
/// Diff IDs of the multi-layer fixture, bottom first (the first is busybox's).
pub const MULTI_DIFF_IDS: [&str; 4] = [
    "sha256:0fc1a132cc13dfc4b75a03e9651721b4430c86f1c2d91321a64fbaadbe971288",
    "sha256:be518f4b132e5efa6bb55da3270a1464515ffae5211a89209b47d6231e7ff751",
    "sha256:40faa605c69478ac6b04a503e9e352b223698587da7a77408dce6e5750881a4e",
    "sha256:dbdad45452ab95fbea3e9fcacdf18c36300d533b7138ada06febf9c437521fba",
];

/// A fixture archive from shared/fixtures/images beside the repository.
pub fn fixture(name: &str) -> PathBuf {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/images")
        .join(name);
    let p = if beside.exists() {
        beside
    } else {
        Path::new("/work/shared/fixtures/images").join(name)
    };
    assert!(
        p.exists(),
        "fixture {name} is missing: it lives in shared/fixtures/images beside the repository"
    );
    p
}

/// The fixture in the legacy layout: the same archive without its manifest.json,
/// leaving `repositories` and the v1 `<id>/json` + `<id>/layer.tar` chain.
pub fn legacy_fixture(name: &str) -> Vec<u8> {
    let mut legacy = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(std::fs::File::open(fixture(name)).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("manifest.json") {
            continue;
        }
        let h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        legacy.append(&h, &data[..]).unwrap();
    }
    legacy.into_inner().unwrap()
}

/// `tests/data/<name>.c`, built static into the daemon's test directory (busybox
/// lacks what some tests need to run inside a container).
pub fn static_c_binary(d: &Daemon, name: &str) -> PathBuf {
    require_tool("gcc", "apt-get install -y gcc libc6-dev");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}.c"));
    let bin = d.path(name);
    let o = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "gcc -static failed (apt-get install -y libc6-dev): {}",
        err(&o)
    );
    bin
}

/// Certificates for TLS tests, made with `openssl` in `dir`: a CA, a server
/// certificate for 127.0.0.1 and localhost, and client directories in the docker
/// CLI's layout (`ca.pem`, `cert.pem`, `key.pem`) — one signed by the CA, one by
/// another CA, and one with no client certificate at all.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client: PathBuf,
    pub foreign_client: PathBuf,
    pub no_client: PathBuf,
}

pub fn make_certs(dir: &Path) -> Certs {
    require_tool("openssl", "apt-get install -y openssl");
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", err(&o));
    };
    let ca = |name: &str| {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.pem"),
        ]);
    };
    let signed = |name: &str, ca: &str, ext: &str| {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}-cert.pem"),
        ]);
    };
    ca("ca");
    ca("other-ca");
    signed(
        "server",
        "ca",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    signed("client", "ca", "extendedKeyUsage=clientAuth\n");
    signed("foreign", "other-ca", "extendedKeyUsage=clientAuth\n");
    let client_dir = |name: &str, from: Option<&str>| {
        let d = dir.join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::copy(dir.join("ca.pem"), d.join("ca.pem")).unwrap();
        if let Some(from) = from {
            std::fs::copy(dir.join(format!("{from}-cert.pem")), d.join("cert.pem")).unwrap();
            std::fs::copy(dir.join(format!("{from}-key.pem")), d.join("key.pem")).unwrap();
        }
        d
    };
    Certs {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server-cert.pem"),
        server_key: dir.join("server-key.pem"),
        client: client_dir("client-dir", Some("client")),
        foreign_client: client_dir("foreign-dir", Some("foreign")),
        no_client: client_dir("no-client-dir", None),
    }
}
