//! The container monitor end to end: the built `dockerd` binary runs real containers
//! (namespaces, cgroups, pivot_root) from a busybox root filesystem, driven through
//! the daemon's `runtime::Runtime`. Needs root and Debian's `busybox-static`.

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockerd::init::spec::{
    AttachStreams, ContainerSpec, ExitRecord, LogSpec, Mount, Namespace, NetworkMode, Shm,
};
use dockerd::runtime::{MonitorState, Runtime, StartError, Started, defaults};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const BUSYBOX: &str = "/bin/busybox";
/// Generous limit for anything a test waits on (a slow, busy machine).
const PATIENCE: Duration = Duration::from_secs(60);

fn dockerd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_dockerd"))
}

/// A root filesystem, state and log directories for one container.
struct Env {
    tmp: tempfile::TempDir,
    rootfs: PathBuf,
    runtime: Runtime,
    /// Cgroups of the containers started here: whatever still runs in them when the
    /// test ends (a failed assertion) is killed, so no container outlives its test.
    cgroups: std::sync::Mutex<Vec<String>>,
}

impl Env {
    fn new() -> Env {
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is missing: install it with `apt-get install -y busybox-static`"
        );
        assert!(
            nix::unistd::geteuid().is_root(),
            "the monitor tests create namespaces and cgroups: run them as root"
        );
        let tmp = tempfile::Builder::new()
            .prefix("monitor-test-")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        build_rootfs(&rootfs);
        let runtime = Runtime::new(&tmp.path().join("exec")).with_monitor_exe(dockerd());
        Env {
            tmp,
            rootfs,
            runtime,
            cgroups: Default::default(),
        }
    }

    fn spec(&self, args: &[&str]) -> ContainerSpec {
        let id = random_id();
        ContainerSpec {
            id: id.clone(),
            rootfs: self.rootfs.clone(),
            readonly_rootfs: false,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                format!("HOSTNAME={}", &id[..12]),
            ],
            cwd: "/".into(),
            user: String::new(),
            hostname: id[..12].to_string(),
            domainname: String::new(),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            console_size: None,
            network: NetworkMode::None,
            pid: Namespace::Private,
            ipc: Namespace::Private,
            uts: Namespace::Private,
            shm: Shm::default(),
            privileged: false,
            capabilities: defaults::default_capabilities(),
            masked_paths: defaults::default_masked_paths(),
            readonly_paths: defaults::default_readonly_paths(),
            mounts: Vec::new(),
            init: false,
            cgroup_path: format!("dockerd-monitor-test/{id}"),
            log: LogSpec {
                driver: "json-file".into(),
                path: self.tmp.path().join(format!("{id}-json.log")),
                max_size: None,
                max_file: 1,
                journal_fields: Vec::new(),
            },
            state_dir: PathBuf::new(),
            initial_attach: Vec::new(),
            exec_in: None,
            systemd_scope: false,
            resources: Default::default(),
            oom_score_adj: 0,
            rlimits: Vec::new(),
            group_add: Vec::new(),
            sysctls: Vec::new(),
            devices: Vec::new(),
            device_rules: Vec::new(),
            cgroupns_host: false,
            seccomp: None,
            no_new_privileges: false,
            apparmor_profile: None,
        }
    }

    /// Starts `spec` with an initial attach of stdout and stderr (and stdin when the
    /// spec keeps it open); returns the client end.
    /// A spec whose command runs `script` under `sh -c` with the host directory
    /// returned (created empty) bound at `/trigger`: the test creates files there to
    /// tell the container when to go on.
    fn spec_with_trigger(&self, script: &str) -> (ContainerSpec, PathBuf) {
        let trigger = self.tmp.path().join("trigger");
        std::fs::create_dir(&trigger).unwrap();
        let mut spec = self.spec(&["sh", "-c", script]);
        spec.mounts.push(Mount {
            source: trigger.clone(),
            destination: "/trigger".into(),
            readonly: true,
            ..Default::default()
        });
        (spec, trigger)
    }

    async fn start(&self, spec: ContainerSpec) -> Result<(Started, UnixStream), StartError> {
        self.start_in(None, spec).await
    }

    /// Starts `spec` as a container, or with `container` as an exec handed to that
    /// container's monitor.
    async fn start_in(
        &self,
        container: Option<&str>,
        spec: ContainerSpec,
    ) -> Result<(Started, UnixStream), StartError> {
        let streams = AttachStreams {
            stdin: spec.open_stdin,
            stdout: true,
            stderr: true,
        };
        let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        mine.set_nonblocking(true).unwrap();
        self.cgroups.lock().unwrap().push(spec.cgroup_path.clone());
        let attach = vec![(theirs, streams)];
        let started = match container {
            None => self.runtime.start(spec, attach).await?,
            Some(c) => self.runtime.start_exec(c, spec, attach).await?,
        };
        Ok((started, UnixStream::from_std(mine).unwrap()))
    }

    /// Runs `spec` to its end: exit record and demultiplexed output.
    async fn run(&self, spec: ContainerSpec) -> Outcome {
        self.run_in(None, spec).await
    }

    async fn run_in(&self, container: Option<&str>, spec: ContainerSpec) -> Outcome {
        let id = spec.id.clone();
        let log = spec.log.path.clone();
        let (started, mut conn) = self
            .start_in(container, spec)
            .await
            .expect("container starts");
        let raw = read_to_end(&mut conn).await;
        let (stdout, stderr) = demux(&raw);
        let record = tokio::time::timeout(PATIENCE, self.runtime.wait(&id))
            .await
            .expect("wait returns");
        Outcome {
            id,
            started,
            record,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            log,
        }
    }

    /// Waits until the monitor of `id` is gone (its socket is removed last).
    async fn monitor_gone(&self, id: &str) {
        let sock = self.runtime.state_dir(id).join("monitor.sock");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while sock.exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "monitor of {id} did not exit"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Env {
    /// The tests' parent cgroup goes once no test uses it (best effort: the last test
    /// to finish removes it).
    fn drop(&mut self) {
        for cgroup in self
            .cgroups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for pid in self.runtime.pids(cgroup).unwrap_or_default() {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if let Ok(hierarchies) = dockerd::init::cgroup::detect() {
            for h in hierarchies {
                let _ = std::fs::remove_dir(h.mount_point.join("dockerd-monitor-test"));
            }
        }
    }
}

struct Outcome {
    id: String,
    started: Started,
    record: ExitRecord,
    stdout: String,
    stderr: String,
    log: PathBuf,
}

fn build_rootfs(root: &Path) {
    for d in [
        "bin",
        "etc",
        "tmp",
        "root",
        "proc",
        "sys",
        "dev",
        "home/nobody",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nstaff:x:50:nobody\nnogroup:x:65534:\n",
    )
    .unwrap();
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn read_to_end(conn: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, conn.read_to_end(&mut out))
        .await
        .expect("attach stream ends")
        .expect("attach stream reads");
    out
}

/// Reads until `needle` has appeared in the output; returns what was read.
async fn read_until(conn: &mut UnixStream, needle: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while !String::from_utf8_lossy(&out).contains(needle) {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "stream ended before {needle:?}: {:?}",
                String::from_utf8_lossy(&out)
            );
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&out)));
    out
}

/// Splits Docker's multiplexed stream into (stdout, stderr).
fn demux(mut raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while !raw.is_empty() {
        assert!(raw.len() >= 8, "truncated frame header");
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        let body = &raw[8..8 + len];
        match raw[0] {
            1 => out.extend_from_slice(body),
            2 => err.extend_from_slice(body),
            s => panic!("unexpected stream {s}"),
        }
        raw = &raw[8 + len..];
    }
    (out, err)
}

fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn mounts_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn echo_reaches_the_log_and_the_attached_client() {
    let env = Env::new();
    let o = env.run(env.spec(&["echo", "hello"])).await;
    assert_eq!(o.record.exit_code, 0);
    assert_eq!(o.record.error, None);
    assert_eq!(o.stdout, "hello\n");
    assert_eq!(o.stderr, "");
    let lines = log_lines(&o.log);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["log"], "hello\n");
    assert_eq!(lines[0]["stream"], "stdout");
    let time = lines[0]["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() >= 20, "{time}");
    let raw = std::fs::read_to_string(&o.log).unwrap();
    assert!(
        raw.starts_with("{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\""),
        "{raw}"
    );
    assert!(o.started.pid > 1 && o.started.monitor_pid > 1);
    assert_ne!(o.started.pid, o.started.monitor_pid);
    env.monitor_gone(&o.id).await;
    // Gone monitor: the daemon learns the end from exit.json.
    match env.runtime.state(&o.id).await {
        MonitorState::Exited(r) => assert_eq!(r, o.record),
        other => panic!("expected Exited, got {other:?}"),
    }
    assert_eq!(env.runtime.wait(&o.id).await, o.record);
    env.runtime.remove_state(&o.id);
    assert_eq!(env.runtime.state(&o.id).await, MonitorState::Gone);
    let lost = env.runtime.wait(&o.id).await;
    assert_eq!(lost.exit_code, 255);
    assert_eq!(
        lost.error.as_deref(),
        Some("container monitor exited unexpectedly")
    );
}

#[tokio::test]
async fn exit_code_and_separate_streams() {
    let env = Env::new();
    let o = env
        .run(env.spec(&["sh", "-c", "echo out; echo err >&2; echo out2; exit 3"]))
        .await;
    assert_eq!(o.record.exit_code, 3);
    assert_eq!(o.stdout, "out\nout2\n");
    assert_eq!(o.stderr, "err\n");
    let lines = log_lines(&o.log);
    let streams: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["stream"].as_str().unwrap(), l["log"].as_str().unwrap()))
        .collect();
    assert!(streams.contains(&("stderr", "err\n")), "{streams:?}");
    assert_eq!(streams.iter().filter(|s| s.0 == "stdout").count(), 2);
}

#[tokio::test]
async fn stdin_from_the_initial_attach_reaches_the_command() {
    let env = Env::new();
    let mut spec = env.spec(&["sh", "-c", "cat; echo done"]);
    spec.open_stdin = true;
    spec.stdin_once = true;
    let id = spec.id.clone();
    let (_, mut conn) = env.start(spec).await.unwrap();
    conn.write_all(b"ping\npong\n").await.unwrap();
    conn.shutdown().await.unwrap();
    let (out, _) = demux(&read_to_end(&mut conn).await);
    assert_eq!(String::from_utf8_lossy(&out), "ping\npong\ndone\n");
    assert_eq!(env.runtime.wait(&id).await.exit_code, 0);
}

#[tokio::test]
async fn two_hundred_thousand_lines_all_arrive() {
    let env = Env::new();
    let o = env.run(env.spec(&["seq", "1", "200000"])).await;
    assert_eq!(o.record.exit_code, 0);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 200_000);
    assert_eq!(lines[0], "1");
    assert_eq!(lines[199_999], "200000");
    let text = std::fs::read_to_string(&o.log).unwrap();
    assert_eq!(text.lines().count(), 200_000);
    assert!(
        text.ends_with("\"log\":\"200000\\n\",\"stream\":\"stdout\",\"time\":\"")
            || text
                .lines()
                .last()
                .unwrap()
                .contains("\"log\":\"200000\\n\"")
    );
}

#[tokio::test]
async fn long_lines_are_logged_in_16k_pieces() {
    let env = Env::new();
    let o = env
        .run(env.spec(&[
            "sh",
            "-c",
            "head -c 40000 /dev/zero | tr '\\0' a; echo; printf tail",
        ]))
        .await;
    assert_eq!(o.stdout.len(), 40_000 + 1 + 4);
    let lines = log_lines(&o.log);
    let logs: Vec<&str> = lines.iter().map(|l| l["log"].as_str().unwrap()).collect();
    assert_eq!(
        logs.len(),
        4,
        "{:?}",
        logs.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    assert_eq!(logs[0].len(), 16 * 1024);
    assert_eq!(logs[1].len(), 16 * 1024);
    assert_eq!(logs[2], format!("{}\n", "a".repeat(40_000 - 32 * 1024)));
    assert_eq!(logs[3], "tail");
    // The pieces of one line share its first piece's time.
    assert_eq!(lines[0]["time"], lines[2]["time"]);
}

#[tokio::test]
async fn env_cwd_user_and_hostname_apply() {
    let env = Env::new();
    let mut spec = env.spec(&[
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g; id -G; hostname; echo $HOME; grep CapEff /proc/self/status",
    ]);
    spec.env.push("FOO=bar baz".into());
    spec.cwd = "/work/dir".into();
    spec.user = "65534".into();
    spec.hostname = "box1".into();
    let o = env.run(spec).await;
    assert_eq!(o.record.exit_code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "bar baz",
            "/work/dir",
            "65534",
            "65534",
            "65534 50",
            "box1",
            "/home/nobody",
            "CapEff:\t0000000000000000",
        ]
    );
    assert!(env.rootfs.join("work/dir").is_dir());
}

#[tokio::test]
async fn root_gets_dockers_default_capabilities() {
    let env = Env::new();
    let o = env
        .run(env.spec(&["sh", "-c", "grep ^Cap /proc/self/status"]))
        .await;
    assert!(
        o.stdout.contains("CapEff:\t00000000a80425fb"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("CapBnd:\t00000000a80425fb"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("CapInh:\t0000000000000000"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("CapAmb:\t0000000000000000"),
        "{}",
        o.stdout
    );
}

#[tokio::test]
async fn the_container_sees_only_its_own_world() {
    let env = Env::new();
    let script = "echo pid=$$; \
        test -e /usr/local/bin/docker && echo host-visible || echo host-hidden; \
        ls /proc | grep -c '^[0-9]'; \
        echo data > /dev/null && echo null-ok; \
        head -c 4 /dev/zero | wc -c; \
        test -c /dev/urandom && test -c /dev/full && test -c /dev/tty && echo devices-ok; \
        ls /sys/class/net; \
        cat /proc/timer_list | wc -c; ls /sys/firmware /proc/acpi | wc -l; \
        (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null || echo proc-sys-ro; \
        cat /proc/self/cgroup | head -1; \
        ls /dev/shm /dev/mqueue /dev/pts >/dev/null && echo dev-mounts-ok";
    let o = env.run(env.spec(&["sh", "-c", script])).await;
    assert_eq!(o.record.exit_code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "pid=1", "{}", o.stderr);
    assert_eq!(lines[1], "host-hidden");
    // sh, ls and grep at most: only the container's processes.
    assert!(lines[2].parse::<u32>().unwrap() <= 3, "{}", lines[2]);
    assert_eq!(lines[3], "null-ok");
    assert_eq!(lines[4], "4");
    assert_eq!(lines[5], "devices-ok");
    assert_eq!(lines[6], "lo");
    // Masked: an empty file, empty directories.
    assert_eq!(lines[7], "0", "{}", o.stderr);
    assert_eq!(
        lines[8], "3",
        "only ls's headers and a blank line: {}",
        o.stdout
    );
    assert_eq!(lines[9], "proc-sys-ro");
    assert!(
        lines[10].ends_with(":/"),
        "own cgroup namespace: {}",
        lines[10]
    );
    assert_eq!(lines[11], "dev-mounts-ok");
    env.monitor_gone(&o.id).await;
    assert_eq!(mounts_mentioning(&env.rootfs), Vec::<String>::new());
}

#[tokio::test]
async fn network_none_has_only_loopback_and_it_is_up() {
    let env = Env::new();
    let o = env
        .run(env.spec(&[
            "sh",
            "-c",
            "tail -n +3 /proc/net/dev | cut -d: -f1; echo ---; ifconfig",
        ]))
        .await;
    let (ifaces, ifconfig) = o.stdout.split_once("---\n").unwrap();
    let ifaces: Vec<&str> = ifaces.lines().map(str::trim).collect();
    assert_eq!(ifaces, ["lo"], "{}", o.stdout);
    assert!(ifconfig.contains("UP LOOPBACK RUNNING"), "{}", o.stdout);
}

#[tokio::test]
async fn readonly_rootfs_refuses_writes() {
    let env = Env::new();
    let mut spec = env.spec(&[
        "sh",
        "-c",
        "touch /newfile; echo rc=$?; touch /dev/shm/x && echo shm-writable",
    ]);
    spec.readonly_rootfs = true;
    let o = env.run(spec).await;
    assert!(o.stdout.contains("rc=1"), "{}", o.stdout);
    assert!(o.stdout.contains("shm-writable"), "{}", o.stdout);
    assert!(o.stderr.contains("Read-only file system"), "{}", o.stderr);
    assert!(!env.rootfs.join("newfile").exists());
}

#[tokio::test]
async fn binds_from_the_spec_are_mounted() {
    let env = Env::new();
    let hosts = env.tmp.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let mut spec = env.spec(&[
        "sh",
        "-c",
        "cat /etc/hosts; echo x >> /etc/hosts || echo ro",
    ]);
    spec.mounts.push(Mount {
        source: hosts.clone(),
        destination: "/etc/hosts".into(),
        readonly: true,
        ..Default::default()
    });
    let o = env.run(spec).await;
    assert_eq!(o.stdout, "127.0.0.1 localhost\nro\n");
    assert_eq!(
        std::fs::read_to_string(&hosts).unwrap(),
        "127.0.0.1 localhost\n"
    );
}

#[tokio::test]
async fn kill_delivers_a_signal_the_command_traps() {
    let env = Env::new();
    let spec = env.spec(&[
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 7' USR1; echo ready; while true; do sleep 0.05; done",
    ]);
    let id = spec.id.clone();
    let (_, mut conn) = env.start(spec).await.unwrap();
    let mut raw = read_until(&mut conn, "ready").await;
    env.runtime.kill(&id, libc::SIGUSR1).await.unwrap();
    raw.extend(read_to_end(&mut conn).await);
    let (out, _) = demux(&raw);
    assert_eq!(String::from_utf8_lossy(&out), "ready\ngot-usr1\n");
    assert_eq!(env.runtime.wait(&id).await.exit_code, 7);
    env.monitor_gone(&id).await;
    let err = env.runtime.kill(&id, libc::SIGKILL).await.unwrap_err();
    assert_eq!(err.to_string(), format!("Container {id} is not running"));
}

#[tokio::test]
async fn signals_end_the_container_with_128_plus_signo() {
    let env = Env::new();
    // With --init the command is not PID 1, so SIGTERM's default action applies.
    let mut spec = env.spec(&["sleep", "1000"]);
    spec.init = true;
    let id = spec.id.clone();
    let (_, _conn) = env.start(spec).await.unwrap();
    env.runtime.kill(&id, libc::SIGTERM).await.unwrap();
    assert_eq!(env.runtime.wait(&id).await.exit_code, 143);

    let spec = env.spec(&["sleep", "1000"]);
    let id = spec.id.clone();
    let (_, _conn) = env.start(spec).await.unwrap();
    env.runtime.kill(&id, libc::SIGKILL).await.unwrap();
    assert_eq!(env.runtime.wait(&id).await.exit_code, 137);
}

#[tokio::test]
async fn init_is_pid_1_and_reaps_orphans() {
    let env = Env::new();
    let script = "cat /proc/1/comm; tr '\\0' ' ' < /proc/1/cmdline; echo; echo pid=$$; \
        (sleep 0.05 &); (sleep 0.05 &); sleep 0.5; \
        for f in /proc/[0-9]*/stat; do read l < $f 2>/dev/null; case \"$l\" in *') Z '*) echo zombie;; esac; done; \
        echo end";
    let mut spec = env.spec(&["sh", "-c", script]);
    spec.init = true;
    let o = env.run(spec).await;
    assert_eq!(o.record.exit_code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "docker-init");
    // As much of `/sbin/docker-init -- sh -c …` as the monitor's argument space holds.
    assert!(
        lines[1].starts_with("/sbin/docker-init -- sh -c"),
        "{}",
        lines[1]
    );
    assert_ne!(lines[2], "pid=1");
    assert_eq!(lines[3..], ["end"], "{}", o.stdout);
}

#[tokio::test]
async fn tty_is_a_terminal_and_resize_reaches_it() {
    let env = Env::new();
    for init in [false, true] {
        let mut spec = env.spec(&[
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo is-a-tty; tty; echo ctty > /dev/tty; stty size; \
             read x; stty size",
        ]);
        spec.tty = true;
        spec.open_stdin = true;
        spec.init = init;
        spec.console_size = Some((24, 80));
        let id = spec.id.clone();
        let (_, mut conn) = env.start(spec).await.unwrap();
        let mut raw = read_until(&mut conn, "24 80").await;
        env.runtime.resize(&id, 30, 100).await.unwrap();
        conn.write_all(b"go\n").await.unwrap();
        raw.extend(read_to_end(&mut conn).await);
        // A TTY's output is raw (no frames), with the terminal's CRLF line ends.
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("is-a-tty\r\n"), "init {init}: {text:?}");
        assert!(text.contains("/dev/pts/0\r\n"), "init {init}: {text:?}");
        assert!(text.contains("ctty\r\n"), "init {init}: {text:?}");
        assert!(text.contains("24 80\r\n"), "init {init}: {text:?}");
        assert!(text.contains("30 100\r\n"), "init {init}: {text:?}");
        assert_eq!(env.runtime.wait(&id).await.exit_code, 0);
        let err = env.runtime.resize(&id, 1, 1).await.unwrap_err();
        assert!(err.to_string().contains("is not running"), "{err}");
    }
}

#[tokio::test]
async fn exec_failures_use_dockers_words_and_codes() {
    let env = Env::new();
    for (cmd, message, code) in [
        (
            "nosuch",
            "exec: \"nosuch\": executable file not found in $PATH",
            127,
        ),
        (
            "/nope",
            "exec: \"/nope\": stat /nope: no such file or directory",
            127,
        ),
        (
            "/etc/passwd",
            "exec: \"/etc/passwd\": permission denied",
            126,
        ),
    ] {
        let spec = env.spec(&[cmd]);
        let id = spec.id.clone();
        let cgroup = PathBuf::from("/sys/fs/cgroup/memory").join(&spec.cgroup_path);
        let err = env.start(spec).await.expect_err("start fails");
        assert_eq!(err.message, message);
        assert_eq!(err.exit_code, code);
        // Nothing is left behind.
        assert!(!cgroup.exists(), "{} remains", cgroup.display());
        assert!(!env.runtime.state_dir(&id).join("monitor.sock").exists());
        assert_eq!(env.runtime.state(&id).await, MonitorState::Gone);
    }
    let mut spec = env.spec(&["true"]);
    spec.user = "ghost".into();
    let err = env.start(spec).await.expect_err("start fails");
    assert_eq!(
        err.message,
        "unable to find user ghost: no matching entries in passwd file"
    );
    assert_eq!(mounts_mentioning(&env.rootfs), Vec::<String>::new());
}

#[tokio::test]
async fn a_new_runtime_finds_running_containers_and_their_exit() {
    let env = Env::new();
    let (spec, trigger) = env.spec_with_trigger(
        "while ! test -e /trigger/go; do sleep 0.02; done; echo finishing; exit 5",
    );
    let id = spec.id.clone();
    let cgroup_path = spec.cgroup_path.clone();
    let (started, conn) = env.start(spec).await.unwrap();
    drop(conn);

    // The daemon goes away and comes back: only the exec-root is shared.
    let exec_root = env.tmp.path().join("exec");
    let again = Runtime::new(&exec_root).with_monitor_exe(dockerd());
    assert_eq!(
        again.state(&id).await,
        MonitorState::Running { pid: started.pid }
    );
    // The container's cgroup holds its process.
    assert!(again.pids(&cgroup_path).unwrap().contains(&started.pid));
    for h in ["memory", "pids", "cpuset", "devices", "systemd", "unified"] {
        let dir = Path::new("/sys/fs/cgroup").join(h).join(&cgroup_path);
        if Path::new("/sys/fs/cgroup").join(h).exists() {
            assert!(dir.is_dir(), "{} missing", dir.display());
        }
    }
    let devices = Path::new("/sys/fs/cgroup/devices").join(&cgroup_path);
    if devices.exists() {
        let list = std::fs::read_to_string(devices.join("devices.list")).unwrap();
        assert!(
            list.contains("c 1:3 rwm") && !list.contains("a *:* rwm"),
            "{list}"
        );
    }
    let mut attach = again
        .attach(
            &id,
            AttachStreams {
                stdin: false,
                stdout: true,
                stderr: true,
            },
        )
        .await
        .unwrap();
    std::fs::File::create(trigger.join("go"))
        .unwrap()
        .flush()
        .unwrap();
    let record = tokio::time::timeout(PATIENCE, again.wait(&id))
        .await
        .unwrap();
    assert_eq!(record.exit_code, 5);
    let (out, _) = demux(&read_to_end(&mut attach).await);
    assert_eq!(String::from_utf8_lossy(&out), "finishing\n");
    env.monitor_gone(&id).await;
    for h in ["memory", "pids", "cpuset", "devices", "systemd", "unified"] {
        let dir = Path::new("/sys/fs/cgroup").join(h).join(&cgroup_path);
        assert!(!dir.exists(), "{} remains", dir.display());
    }
    assert_eq!(mounts_mentioning(&env.rootfs), Vec::<String>::new());
}

#[tokio::test]
async fn output_written_right_after_attach_returns_reaches_the_stream() {
    // The container answers each trigger file at once (a busy loop, no sleep), so a
    // stream the monitor had not registered yet when `attach` returned misses it.
    let env = Env::new();
    let (spec, trigger) = env.spec_with_trigger("i=0; while [ $i -lt 30 ]; do while ! [ -e /trigger/$i ]; do :; done; echo line$i; i=$((i+1)); done");
    let id = spec.id.clone();
    let (_, conn) = env.start(spec).await.unwrap();
    drop(conn);
    let streams = AttachStreams {
        stdin: false,
        stdout: true,
        stderr: false,
    };
    for i in 0..30 {
        let mut attach = env.runtime.attach(&id, streams).await.unwrap();
        std::fs::File::create(trigger.join(i.to_string())).unwrap();
        let raw = read_until(&mut attach, &format!("line{i}\n")).await;
        let (out, _) = demux(&raw);
        assert_eq!(String::from_utf8_lossy(&out), format!("line{i}\n"));
    }
    assert_eq!(env.runtime.wait(&id).await.exit_code, 0);
    env.monitor_gone(&id).await;
}

#[test]
fn the_monitor_refuses_to_run_by_hand() {
    let out = std::process::Command::new(dockerd())
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not meant to be run by hand"), "{err}");
    let out = std::process::Command::new(dockerd())
        .args(["init", "--spec-fd", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
}

#[tokio::test]
async fn privileged_containers_get_every_capability_and_device() {
    let env = Env::new();
    let mut spec = env.spec(&[
        "sh",
        "-c",
        "grep ^CapEff /proc/self/status; ls /dev | grep -c .; touch /sys/fs/cgroup/memory/x 2>/dev/null; \
         grep -c ' /sys rw,' /proc/self/mountinfo",
    ]);
    spec.privileged = true;
    spec.masked_paths.clear();
    spec.readonly_paths.clear();
    let o = env.run(spec).await;
    assert_eq!(o.record.exit_code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    // Everything this host's bounding set holds.
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bnd = host
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t"))
        .unwrap();
    assert_eq!(lines[0], format!("CapEff:\t{host_bnd}"));
    let host_devices = std::fs::read_dir("/dev").unwrap().count();
    let seen: usize = lines[1].parse().unwrap();
    assert!(
        seen > 20 && seen + 20 > host_devices / 2,
        "{seen} of {host_devices}"
    );
    assert_eq!(lines[2], "1", "sysfs is writable: {}", o.stdout);
}

#[tokio::test]
async fn the_none_log_driver_writes_nothing_and_the_monitor_outlives_a_hangup() {
    let env = Env::new();
    let (mut spec, trigger) =
        env.spec_with_trigger("echo quiet; while ! test -e /trigger/go; do sleep 0.02; done");
    spec.log.driver = "none".into();
    let id = spec.id.clone();
    let log = spec.log.path.clone();
    let (started, mut conn) = env.start(spec).await.unwrap();
    read_until(&mut conn, "quiet").await;
    // The monitor leads its own session and ignores the hangup a dying daemon sends.
    let sid = unsafe { libc::getsid(started.monitor_pid) };
    assert_eq!(sid, started.monitor_pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(started.monitor_pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert_eq!(
        env.runtime.state(&id).await,
        MonitorState::Running { pid: started.pid }
    );
    std::fs::write(trigger.join("go"), b"").unwrap();
    assert_eq!(env.runtime.wait(&id).await.exit_code, 0);
    assert!(!log.exists());
}

/// The eBPF device program (used on v2-only hosts) works in this kernel: a process in
/// a cgroup with it attached may open /dev/null but not /dev/kmsg.
#[test]
fn the_device_program_enforces_the_default_rules() {
    let hierarchies = dockerd::init::cgroup::detect().unwrap();
    let unified = hierarchies
        .iter()
        .find(|h| h.kind == dockerd::init::cgroup::Kind::V2)
        .expect("a cgroup v2 hierarchy is mounted (hybrid or unified host)");
    let dir = unified
        .mount_point
        .join("dockerd-monitor-test")
        .join(format!("bpf-{}", &random_id()[..12]));
    std::fs::create_dir_all(&dir).unwrap();
    let rules: Vec<_> = dockerd::init::cgroup::DEFAULT_DEVICE_RULES
        .iter()
        .map(|r| dockerd::init::devices::parse_rule(r).unwrap())
        .collect();
    let fd = std::fs::File::open(&dir).unwrap();
    dockerd::init::devices::attach(std::os::fd::AsRawFd::as_raw_fd(&fd), &rules).unwrap();
    let procs = dir.join("cgroup.procs");
    let mut cmd = std::process::Command::new(BUSYBOX);
    cmd.args([
        "sh",
        "-c",
        "exec 3</dev/null && echo null-ok; (exec 4</dev/kmsg) 2>/dev/null && echo kmsg-ok || echo kmsg-denied",
    ]);
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || std::fs::write(&procs, "0"));
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "null-ok\nkmsg-denied\n"
    );
}

#[tokio::test]
async fn a_deep_exec_root_still_reaches_the_monitor() {
    let mut env = Env::new();
    // <exec-root>/containers/<64 hex>/monitor.sock is longer than a socket address.
    let deep = env.tmp.path().join("x".repeat(60));
    env.runtime = Runtime::new(&deep).with_monitor_exe(dockerd());
    let mut spec = env.spec(&["sh", "-c", "read line; echo got $line"]);
    spec.open_stdin = true;
    let id = spec.id.clone();
    assert!(
        env.runtime
            .state_dir(&id)
            .join("monitor.sock")
            .as_os_str()
            .len()
            > 108
    );
    let (started, _initial) = env.start(spec).await.unwrap();
    assert_eq!(
        env.runtime.state(&id).await,
        MonitorState::Running { pid: started.pid }
    );
    let mut attach = env
        .runtime
        .attach(
            &id,
            AttachStreams {
                stdin: true,
                stdout: true,
                stderr: false,
            },
        )
        .await
        .unwrap();
    attach.write_all(b"deep\n").await.unwrap();
    let (out, _) = demux(&read_to_end(&mut attach).await);
    assert_eq!(String::from_utf8_lossy(&out), "got deep\n");
    assert_eq!(env.runtime.wait(&id).await.exit_code, 0);
}

#[tokio::test]
async fn an_exec_runs_inside_the_running_container_and_leaves_it_alone() {
    let env = Env::new();
    let (spec, trigger) =
        env.spec_with_trigger("while [ ! -e /trigger/stop ]; do sleep 0.05; done; exit 7");
    let (ctr_id, hostname, cgroup) = (
        spec.id.clone(),
        spec.hostname.clone(),
        spec.cgroup_path.clone(),
    );
    let (started, _conn) = env.start(spec).await.expect("container starts");

    // In the container: its PID namespace (PID 1 is its shell), host name, root
    // (the trigger mount), cgroup; capabilities of the container.
    let mut exec = env.spec(&[
        "sh",
        "-c",
        "echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline); echo host=$(hostname); \
         ls /trigger >/dev/null && echo root=ok; echo cg=$(cat /proc/self/cgroup | wc -l); \
         echo self=$$; echo err >&2; exit 3",
    ]);
    exec.exec_in = Some(started.pid);
    exec.cgroup_path = cgroup.clone();
    let out = env.run_in(Some(&ctr_id), exec).await;
    assert_eq!(out.record.exit_code, 3, "{out:?}", out = out.stderr);
    assert_ne!(out.started.monitor_pid, started.monitor_pid);
    assert!(out.stdout.contains("pid1=sh -c while"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("host={hostname}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("root=ok"), "{}", out.stdout);
    let pid: i32 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("self="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        pid > 1 && pid < 100,
        "a PID of the container's namespace: {pid}"
    );
    assert_eq!(out.stderr, "err\n");
    // The exec ran in the container's cgroup, and that cgroup is still there.
    assert!(env.runtime.pids(&cgroup).unwrap().contains(&started.pid));

    // A command that is not there: Docker's message and 127, nothing started.
    let mut missing = env.spec(&["no-such-command"]);
    missing.exec_in = Some(started.pid);
    missing.cgroup_path = cgroup.clone();
    let err = env
        .start_in(Some(&ctr_id), missing)
        .await
        .expect_err("no such command");
    assert_eq!(err.exit_code, 127);
    assert!(
        err.message
            .contains("exec: \"no-such-command\": executable file not found in $PATH"),
        "{}",
        err.message
    );

    // The container goes on, and ends as it would have.
    std::fs::write(trigger.join("stop"), "").unwrap();
    let record = tokio::time::timeout(PATIENCE, env.runtime.wait(&ctr_id))
        .await
        .expect("wait returns");
    assert_eq!(record.exit_code, 7);

    // No exec into a container that ended.
    let mut late = env.spec(&["true"]);
    late.exec_in = Some(started.pid);
    late.cgroup_path = cgroup;
    let err = env
        .start_in(Some(&ctr_id), late)
        .await
        .expect_err("the container is gone");
    assert!(err.message.contains("is not running"), "{}", err.message);
}

/// The PPid of `pid`, from /proc.
fn parent_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))?
        .trim()
        .parse()
        .ok()
}

#[tokio::test]
async fn an_exec_with_a_terminal_gets_one_of_the_container_and_resizes() {
    let env = Env::new();
    let (spec, trigger) =
        env.spec_with_trigger("while [ ! -e /trigger/stop ]; do sleep 0.05; done");
    let (ctr_id, cgroup) = (spec.id.clone(), spec.cgroup_path.clone());
    let (started, _conn) = env.start(spec).await.expect("container starts");

    let mut exec = env.spec(&["sh", "-c", "tty; stty size; read x; stty size; echo got $x"]);
    exec.exec_in = Some(started.pid);
    exec.cgroup_path = cgroup;
    exec.tty = true;
    exec.open_stdin = true;
    exec.console_size = Some((24, 80));
    let exec_id = exec.id.clone();
    let (exec_started, mut conn) = env
        .start_in(Some(&ctr_id), exec)
        .await
        .expect("exec starts");
    let mut raw = read_until(&mut conn, "24 80").await;
    assert_eq!(
        parent_of(exec_started.monitor_pid),
        Some(started.monitor_pid),
        "the container's monitor forked the exec's"
    );
    env.runtime.resize(&exec_id, 30, 100).await.unwrap();
    conn.write_all(b"go\n").await.unwrap();
    raw.extend(read_to_end(&mut conn).await);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("30 100\r\n"), "{text:?}");
    assert!(text.contains("got go\r\n"), "{text:?}");
    let record = tokio::time::timeout(PATIENCE, env.runtime.wait(&exec_id))
        .await
        .expect("wait returns");
    assert_eq!(record.exit_code, 0);

    std::fs::write(trigger.join("stop"), "").unwrap();
    let record = tokio::time::timeout(PATIENCE, env.runtime.wait(&ctr_id))
        .await
        .expect("wait returns");
    assert_eq!(record.exit_code, 0);
}

#[tokio::test]
async fn a_monitor_that_does_not_know_execs_gets_one_spawned_for_them() {
    let env = Env::new();
    let (spec, trigger) =
        env.spec_with_trigger("while [ ! -e /trigger/stop ]; do sleep 0.05; done");
    let (ctr_id, cgroup) = (spec.id.clone(), spec.cgroup_path.clone());
    let (started, _conn) = env.start(spec).await.expect("container starts");

    // A monitor from before exec requests existed answers one as any line it cannot
    // read; this one stands in for it, in front of the running container.
    let old_id = random_id();
    let dir = env.runtime.state_dir(&old_id);
    std::fs::create_dir_all(&dir).unwrap();
    let (addr, _keep) = dockerd::init::control::socket_address(&dir).unwrap();
    let listener = tokio::net::UnixListener::bind(addr).unwrap();
    let old_monitor = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        let mut reader = tokio::io::BufReader::new(conn);
        let mut line = Vec::new();
        tokio::io::AsyncBufReadExt::read_until(&mut reader, b'\n', &mut line)
            .await
            .unwrap();
        assert!(
            line.starts_with(b"{\"exec\":"),
            "{:?}",
            String::from_utf8_lossy(&line)
        );
        reader
            .get_mut()
            .write_all(
                b"{\"error\":{\"message\":\"invalid message on the container monitor's socket: \
                  unknown variant `exec`\"}}\n",
            )
            .await
            .unwrap();
    });

    let mut exec = env.spec(&["sh", "-c", "echo ran in $(tr '\\0' ' ' < /proc/1/cmdline)"]);
    exec.exec_in = Some(started.pid);
    exec.cgroup_path = cgroup;
    let out = env.run_in(Some(&old_id), exec).await;
    old_monitor.await.unwrap();
    assert_eq!(out.record.exit_code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("ran in sh -c while"),
        "{}",
        out.stdout
    );

    std::fs::write(trigger.join("stop"), "").unwrap();
    let record = tokio::time::timeout(PATIENCE, env.runtime.wait(&ctr_id))
        .await
        .expect("wait returns");
    assert_eq!(record.exit_code, 0);
}
