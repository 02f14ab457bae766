//! The daemon under the real `systemd-socket-activate`, with a NOTIFY_SOCKET owned by
//! the test: passed sockets (unix and tcp, `fd://` and `fd://N`), READY/STATUS,
//! TLS on passed TCP sockets, the watchdog, reload on SIGHUP, a clean stop on
//! SIGTERM, and the exit when idle (`idle-timeout`) with a start again on the next
//! request.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Activated {
    child: Child,
    dir: tempfile::TempDir,
    notify: NotifySocket,
    sock: PathBuf,
}

impl Activated {
    /// Starts `systemd-socket-activate -l SOCK [extra -l] [-E …] dockerd -H HOST …`.
    fn start(host: &str, extra_listen: &[String], env: &[&str], config: &str) -> Activated {
        let dir = tempfile::Builder::new()
            .prefix("dockerd-sa")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("daemon.json"), config).unwrap();
        Self::spawn(dir, host, extra_listen, env)
    }

    /// Another activator on the same socket path, directories and configuration,
    /// once this one's daemon has exited: what systemd does when a request comes
    /// to the socket of a stopped service.
    fn again(mut self, host: &str) -> Activated {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let _ = self.child.wait();
        // systemd keeps its socket; this activator binds the path afresh.
        let _ = std::fs::remove_file(&self.sock);
        let _ = std::fs::remove_file(&self.notify.path);
        Self::spawn(dir, host, &[], &[])
    }

    fn spawn(
        dir: tempfile::TempDir,
        host: &str,
        extra_listen: &[String],
        env: &[&str],
    ) -> Activated {
        require_tool("systemd-socket-activate", "apt-get install -y systemd");
        let sock = dir.path().join("docker.sock");
        let notify = NotifySocket::new(dir.path());
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.arg("-l").arg(&sock);
        for l in extra_listen {
            cmd.arg("-l").arg(l);
        }
        cmd.arg("-E")
            .arg(format!("NOTIFY_SOCKET={}", notify.path.display()));
        for e in env {
            cmd.arg("-E").arg(e);
        }
        // The daemon makes its default bridge at start: it runs in a network
        // namespace of the test's, entered by nsenter (which execs it in the same
        // process, so LISTEN_PID still matches). The listening sockets, bound by the
        // activator, stay in the test's own namespace.
        let netns = create_netns(dir.path());
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("stderr.log"))
            .unwrap();
        cmd.arg("nsenter")
            .arg(format!("--net={}", netns.display()))
            .arg(dockerd_bin())
            .args(["-H", host])
            .args(private_state_args(dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd.spawn().unwrap();
        // The activator binds before it execs anything; wait for the socket file.
        let start = Instant::now();
        while !sock.exists() {
            assert!(
                start.elapsed() < PATIENCE,
                "systemd-socket-activate did not create {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Activated {
            child,
            dir,
            notify,
            sock,
        }
    }

    /// The docker CLI on the activated socket.
    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new(docker_cli())
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .output()
            .unwrap()
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}\n--- log ---\n{}",
            err(&o),
            self.log()
        );
        out(&o)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.path().join("docker.pid")
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn expect_notify(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.notify.wait_for(PATIENCE, pred) {
            Some(m) => m,
            None => panic!(
                "no {what} notification; seen: {:?}\n--- log ---\n{}",
                self.notify.seen,
                self.log()
            ),
        }
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        reap_leftovers(self.dir.path());
    }
}

fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

#[test]
fn fd_all_unix_answers_the_first_request_and_notifies_ready() {
    let mut a = Activated::start("fd://", &[], &[], "");
    // This first connection is what makes the activator exec the daemon.
    let r = http(&a.sock, "GET", "/_ping", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    let ready = a.expect_notify("READY=1", |m| has_line(m, "READY=1"));
    assert!(
        ready
            .lines()
            .any(|l| l == format!("MAINPID={}", a.child.id())),
        "{ready}"
    );
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=Ready")),
        "{ready}"
    );
    // Status lines before READY tell the operator what start-up is doing.
    assert!(
        a.notify.seen.iter().any(|m| m.contains("STATUS=Starting")),
        "{:?}",
        a.notify.seen
    );

    a.signal(libc::SIGTERM);
    a.expect_notify("STOPPING=1", |m| has_line(m, "STOPPING=1"));
    let status = wait_timeout(&mut a.child, PATIENCE).expect("daemon should exit");
    assert_eq!(status.code(), Some(0), "{}", a.log());
    assert!(
        !a.pidfile().exists(),
        "pidfile must be removed on clean exit"
    );
}

#[test]
fn fd_n_takes_one_tcp_socket_and_closes_the_others() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // fd 3 is the unix socket, fd 4 the TCP one.
    let mut a = Activated::start("fd://4", &[format!("127.0.0.1:{port}")], &[], "");
    let out = Command::new(docker_cli())
        .args([
            "-H",
            &format!("tcp://127.0.0.1:{port}"),
            "version",
            "--format",
            "{{.Server.Version}}",
        ])
        .env("DOCKER_CONFIG", a.dir.path().join("cli"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
    a.expect_notify("READY=1", |m| has_line(m, "READY=1"));
    // The unix socket passed as fd 3 was closed: nobody accepts there any more.
    assert!(std::os::unix::net::UnixStream::connect(&a.sock).is_err());
    a.signal(libc::SIGTERM);
    assert_eq!(
        wait_timeout(&mut a.child, PATIENCE).unwrap().code(),
        Some(0)
    );
}

#[test]
fn fd_tcp_sockets_get_tls_and_unix_ones_do_not() {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = make_certs(certs_dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A passed socket on every address is held to -H tcp://'s rule: --tlsverify.
    let mut plain = Activated::start("fd://", &[format!("0.0.0.0:{port}")], &[], "");
    // The first connection starts the daemon.
    let _first = std::os::unix::net::UnixStream::connect(&plain.sock).unwrap();
    assert_eq!(
        wait_timeout(&mut plain.child, PATIENCE).unwrap().code(),
        Some(1)
    );
    assert!(
        plain.log().contains(&format!(
            "refusing to serve the TCP socket 0.0.0.0:{port} systemd passed without --tlsverify"
        )),
        "{}",
        plain.log()
    );
    drop(plain);

    let config = format!(
        r#"{{"tlsverify": true, "tlscacert": "{}", "tlscert": "{}", "tlskey": "{}"}}"#,
        certs.ca.display(),
        certs.server_cert.display(),
        certs.server_key.display()
    );
    let mut a = Activated::start("fd://", &[format!("0.0.0.0:{port}")], &[], &config);
    let version = |host: String, cert_dir: Option<&std::path::Path>| {
        let mut cmd = Command::new(docker_cli());
        cmd.args(["-H", &host, "version", "--format", "{{.Server.APIVersion}}"])
            .env("DOCKER_CONFIG", a.dir.path().join("cli"));
        if let Some(d) = cert_dir {
            cmd.env("DOCKER_TLS_VERIFY", "1").env("DOCKER_CERT_PATH", d);
        }
        cmd.output().unwrap()
    };
    let o = version(format!("tcp://127.0.0.1:{port}"), Some(&certs.client));
    assert_eq!(out(&o).trim(), "1.51", "{}\n{}", err(&o), a.log());
    let o = version(
        format!("tcp://127.0.0.1:{port}"),
        Some(&certs.foreign_client),
    );
    assert!(!o.status.success(), "a client of another CA: {}", out(&o));
    let o = version(format!("unix://{}", a.sock.display()), None);
    assert_eq!(out(&o).trim(), "1.51", "{}", err(&o));
    a.expect_notify("READY=1", |m| has_line(m, "READY=1"));
    a.signal(libc::SIGTERM);
    assert_eq!(
        wait_timeout(&mut a.child, PATIENCE).unwrap().code(),
        Some(0)
    );
}

#[test]
fn idle_timeout_exits_cleanly_and_the_socket_starts_it_again() {
    let mut a = Activated::start("fd://", &[], &[], r#"{"idle-timeout": 2}"#);
    let tar = busybox_full_rootfs(a.dir.path());
    a.docker_ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        tar.to_str().unwrap(),
        BUSYBOX_IMG,
    ]);
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[BUSYBOX_IMG, "sleep", "300"]);
        a.docker_ok(&args);
    };
    run("plain", &[]);
    run("kept", &["--restart", "always"]);
    a.expect_notify("READY=1", |m| has_line(m, "READY=1"));
    // A container with a restart policy needs the daemon: it stays.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "the daemon exited while a container with a restart policy ran:\n{}",
        a.log()
    );
    a.docker_ok(&["rm", "-f", "kept"]);
    let pid: i32 = a
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", "plain"])
        .trim()
        .parse()
        .unwrap();

    // Idle now: a clean exit, with STOPPING=1.
    let status = wait_timeout(&mut a.child, PATIENCE).expect("the idle daemon should exit");
    assert_eq!(status.code(), Some(0), "{}", a.log());
    a.expect_notify("STOPPING=1", |m| has_line(m, "STOPPING=1"));
    assert!(
        a.log().contains("Daemon idle for 2s: exiting"),
        "{}",
        a.log()
    );
    assert_eq!(
        unsafe { libc::kill(pid, 0) },
        0,
        "the container outlives the daemon"
    );

    // The next request starts it again; it finds the container and reaches its
    // monitor.
    let a = a.again("fd://");
    let t0 = Instant::now();
    let ps = a.docker_ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    eprintln!("first request after the idle exit: {:?}", t0.elapsed());
    assert_eq!(ps.trim(), "plain running", "{}", a.log());
    assert_eq!(
        a.docker_ok(&["exec", "plain", "echo", "attached"]).trim(),
        "attached"
    );
    a.docker_ok(&["stop", "-t", "1", "plain"]);
    assert_ne!(
        unsafe { libc::kill(pid, 0) },
        0,
        "stopped through its monitor"
    );
}

#[test]
fn idle_timeout_needs_socket_activation() {
    let mut d = Daemon::builder().config(r#"{"idle-timeout": 1}"#).start();
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.child.try_wait().unwrap().is_none(), "{}", d.log());
    assert!(
        d.log()
            .contains("idle-timeout applies only to a daemon its socket starts"),
        "{}",
        d.log()
    );
}

#[test]
fn watchdog_pings_every_half_period() {
    let mut a = Activated::start("fd://", &[], &["WATCHDOG_USEC=200000"], "");
    assert_eq!(http(&a.sock, "GET", "/_ping", None).status, 200);
    a.expect_notify("READY=1", |m| has_line(m, "READY=1"));
    let start = Instant::now();
    let mut pings = 0;
    while pings < 3 && start.elapsed() < Duration::from_secs(1) {
        let left = Duration::from_secs(1).saturating_sub(start.elapsed());
        if a.notify
            .wait_for(left, |m| has_line(m, "WATCHDOG=1"))
            .is_some()
        {
            pings += 1;
        }
    }
    assert!(
        pings >= 3,
        "only {pings} WATCHDOG=1 within one second; seen {:?}",
        a.notify.seen
    );
}

#[test]
fn sighup_reloads_and_applies_debug() {
    let mut a = Activated::start("fd://", &[], &[], "{}");
    assert_eq!(http(&a.sock, "GET", "/_ping", None).status, 200);
    a.expect_notify("READY=1", |m| has_line(m, "READY=1"));
    assert_eq!(http(&a.sock, "GET", "/info", None).json()["Debug"], false);
    assert!(!a.log().contains("level=debug"));

    std::fs::write(
        a.dir.path().join("daemon.json"),
        r#"{"debug": true, "labels": ["env=test"]}"#,
    )
    .unwrap();
    a.signal(libc::SIGHUP);
    let reloading = a.expect_notify("RELOADING=1", |m| has_line(m, "RELOADING=1"));
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {reloading:?}"));
    assert!(usec.parse::<u64>().unwrap() > 0);
    a.expect_notify("READY=1 after reload", |m| has_line(m, "READY=1"));

    let info = http(&a.sock, "GET", "/info", None).json();
    assert_eq!(info["Debug"], true);
    assert_eq!(info["Labels"], serde_json::json!(["env=test"]));
    // Debug records now reach the log.
    http(&a.sock, "GET", "/version", None);
    wait_until(
        || a.log().contains("level=debug"),
        "debug records after reload",
        &a.log(),
    );

    // A broken file keeps the running configuration and still ends the reload.
    std::fs::write(a.dir.path().join("daemon.json"), "{ not json").unwrap();
    a.signal(libc::SIGHUP);
    a.expect_notify("RELOADING=1", |m| has_line(m, "RELOADING=1"));
    a.expect_notify("READY=1 after failed reload", |m| has_line(m, "READY=1"));
    assert_eq!(http(&a.sock, "GET", "/info", None).json()["Debug"], true);
    wait_until(
        || a.log().contains("Error reloading configuration"),
        "reload error logged",
        &a.log(),
    );
}

fn wait_until(cond: impl Fn() -> bool, what: &str, context: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}\n{context}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
