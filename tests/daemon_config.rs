//! The daemon's command line, daemon.json handling, pidfile and stderr logging, run
//! through the built binary.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(dockerd_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(dir: &std::path::Path, json: &str) -> String {
    let p = dir.join("daemon.json");
    std::fs::write(&p, json).unwrap();
    p.display().to_string()
}

#[test]
fn bad_flag_prints_problem_and_usage_and_exits_1() {
    let (code, _, err) = run(&["--no-such-flag"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
    assert!(err.contains("Usage: dockerd"), "{err}");
}

#[test]
fn version_flag_prints_version() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!(
            "Docker version {}, build ",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    let (code, out2, _) = run(&["-v"]);
    assert_eq!(code, 0);
    assert_eq!(out, out2);
}

#[test]
fn help_lists_docker_flags_and_hides_init() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--host",
        "--config-file",
        "--data-root",
        "--exec-root",
        "--pidfile",
        "--debug",
        "--log-level",
        "--log-format",
        "--group",
        "--shutdown-timeout",
        "--validate",
        "--version",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}:\n{out}");
    }
    assert!(!out.contains("init"), "init must stay hidden:\n{out}");
}

#[test]
fn init_without_spec_descriptor_fails_with_125() {
    let (code, _, err) = run(&["init"]);
    assert_eq!(code, 125);
    assert!(err.contains("no container spec descriptor"), "{err}");
    // A descriptor number that is not open is the same failure.
    let (code, _, err) = run(&["init", "--spec-fd", "77"]);
    assert_eq!(code, 125, "{err}");
}

#[test]
fn flag_and_file_conflict_is_refused_before_any_socket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), r#"{"hosts": ["unix:///x"]}"#);
    let sock = dir.path().join("d.sock");
    let (code, _, err) = run(&["--config-file", &cfg, "-H", "fd://", "--validate"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the following directives are specified both as a flag and in the configuration file: hosts: (from flag: [fd://], from file: [unix:///x])"),
        "{err}"
    );
    let host = format!("unix://{}", sock.display());
    let (code, _, _) = run(&["--config-file", &cfg, "-H", &host]);
    assert_eq!(code, 1);
    assert!(
        !sock.exists(),
        "a config error must exit before creating sockets"
    );
}

#[test]
fn unknown_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), r#"{"foo": 1, "debug": true}"#);
    let (code, _, err) = run(&["--config-file", &cfg, "--validate"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the following directives don't match any configuration option: foo"),
        "{err}"
    );
}

#[test]
fn invalid_json_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "{\n  \"debug\": true\n  \"labels\": []\n}\n");
    let (code, _, err) = run(&["--config-file", &cfg, "--validate"]);
    assert_eq!(code, 1);
    assert!(err.contains(&cfg), "{err}");
    assert!(err.contains("invalid JSON at line 3 column 3"), "{err}");
}

#[test]
fn validate_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        r#"{"debug": true, "labels": ["a=b"], "log-driver": "json-file", "log-opts": {"max-size": "10m"},
            "shutdown-timeout": 5, "live-restore": true, "runtimes": {"crun": {"path": "/usr/bin/crun"}},
            "default-runtime": "crun", "hosts": ["unix:///tmp/x.sock"], "data-root": "/tmp/x", "exec-root": "/tmp/y",
            "pidfile": "/tmp/z.pid", "log-level": "warn", "log-format": "json", "group": "docker"}"#,
    );
    let (code, out, err) = run(&["--config-file", &cfg, "--validate"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "configuration OK");
}

#[test]
fn missing_explicit_config_file_is_an_error() {
    let (code, _, err) = run(&["--config-file", "/nonexistent/daemon.json", "--validate"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("open /nonexistent/daemon.json: no such file or directory"),
        "{err}"
    );
}

#[test]
fn fd_without_passed_sockets_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let pid = dir.path().join("pid");
    let (code, _, err) = run(&[
        "--config-file",
        &cfg,
        "-H",
        "fd://",
        "--pidfile",
        pid.to_str().unwrap(),
        "--data-root",
        dir.path().join("data").to_str().unwrap(),
        "--exec-root",
        dir.path().join("exec").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "no sockets found via socket activation: make sure the service was started by systemd"
        ),
        "{err}"
    );
    assert!(!pid.exists(), "a failed start leaves no pidfile");
}

#[test]
fn live_pidfile_refuses_a_second_daemon() {
    let d = Daemon::start();
    let out = Command::new(dockerd_bin())
        .args(["-H", &format!("unix://{}", d.path("other.sock").display())])
        .args(["--pidfile", d.pidfile().to_str().unwrap()])
        .args(["--config-file", d.config_file().to_str().unwrap()])
        .args([
            "--data-root",
            d.path("data2").to_str().unwrap(),
            "--exec-root",
            d.path("exec2").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "failed to start daemon, ensure docker is not running or delete {}: process with PID {} is still running",
            d.pidfile().display(),
            d.pid()
        )),
        "{err}"
    );
    assert!(!d.path("other.sock").exists());
}

#[test]
fn text_log_lines_look_like_logrus() {
    let mut d = Daemon::start();
    assert_eq!(d.stop().code(), Some(0));
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("Daemon has completed initialization"))
        .unwrap_or_else(|| panic!("no initialization line:\n{log}"));
    // time="2026-11-27T20:37:19.165023981Z" level=info msg="Daemon has completed initialization"
    let rest = line.strip_prefix("time=\"").expect(line);
    let (ts, rest) = rest.split_at(30);
    assert_eq!(
        rest, "\" level=info msg=\"Daemon has completed initialization\"",
        "{line}"
    );
    let b = ts.as_bytes();
    assert!(
        b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[29] == b'Z',
        "{ts}"
    );
    assert!(
        ts[20..29].bytes().all(|c| c.is_ascii_digit()),
        "nine-digit nanoseconds: {ts}"
    );
}

#[test]
fn json_log_format() {
    let mut d = Daemon::builder().arg("--log-format").arg("json").start();
    d.stop();
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("completed initialization"))
        .expect(&log);
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "info");
    assert_eq!(v["msg"], "Daemon has completed initialization");
    assert_eq!(v["time"].as_str().unwrap().len(), 30);
}

#[test]
fn unix_socket_is_0660_and_a_stale_one_is_replaced() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let d = Daemon::start();
    let meta = std::fs::metadata(&d.sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    // A socket left behind by a crashed daemon does not stop the next one.
    let stale = d.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let mut d2 = Daemon::builder()
        .arg("-H")
        .arg(&format!("unix://{}", stale.display()))
        .start();
    let r = http(&stale, "GET", "/_ping", None);
    assert_eq!(r.status, 200);
    assert_eq!(d2.stop().code(), Some(0));
}

#[test]
fn a_named_group_that_does_not_exist_is_an_error() {
    let mut d = Daemon::builder()
        .arg("-G")
        .arg("no-such-group-here")
        .no_wait()
        .start();
    let status = wait_timeout(&mut d.child, PATIENCE).expect("daemon should exit");
    d.stopped = Some(status);
    assert_eq!(status.code(), Some(1));
    assert!(
        d.log().contains("group no-such-group-here not found"),
        "{}",
        d.log()
    );
}

#[test]
fn tcp_is_refused_off_loopback_and_warned_on_loopback() {
    let mut d = Daemon::builder()
        .arg("-H")
        .arg("tcp://0.0.0.0:23750")
        .no_wait()
        .start();
    let status = wait_timeout(&mut d.child, PATIENCE).expect("daemon should exit");
    d.stopped = Some(status);
    assert_eq!(status.code(), Some(1));
    assert!(
        d.log()
            .contains("refusing to listen on tcp://0.0.0.0:23750 without --tlsverify"),
        "{}",
        d.log()
    );

    let port = free_port();
    let mut d = Daemon::builder()
        .arg("-H")
        .arg(&format!("tcp://127.0.0.1:{port}"))
        .start();
    assert!(d.log().contains("without encryption"), "{}", d.log());
    // The daemon's loopback is that of its network namespace.
    let mut cli = std::process::Command::new(docker_cli());
    cli.args([
        "-H",
        &format!("tcp://127.0.0.1:{port}"),
        "version",
        "--format",
        "{{.Server.APIVersion}}",
    ])
    .env("DOCKER_CONFIG", d.path("docker-config"));
    in_netns(&mut cli, &d.netns);
    let out = cli.output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1.51",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.stop().code(), Some(0));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
