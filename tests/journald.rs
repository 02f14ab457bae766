//! The journald log driver with a real systemd-journald: the fields of a container's
//! entries as journalctl shows them, `docker logs` read back through sd-journal
//! (streams, tail, since/until, timestamps, follow, lines longer than 16 KiB), logs
//! written while the daemon is killed (SIGKILL) and read back after its restart,
//! and the error on a host without journald.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SOCKET: &str = "/run/systemd/journal/socket";

/// systemd-journald for the test: the host's when it runs one, else one started
/// here (it makes its own sockets when not socket-activated), shared by the tests
/// and stopped when the last one is done.
struct Journald;

static STARTED: std::sync::Mutex<(usize, Option<Child>)> = std::sync::Mutex::new((0, None));

impl Journald {
    fn ensure() -> Journald {
        let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
        started.0 += 1;
        let answers = || UnixDatagram::unbound().unwrap().connect(SOCKET).is_ok();
        if answers() {
            return Journald;
        }
        let bin = "/lib/systemd/systemd-journald";
        if !Path::new(bin).exists() {
            panic!("{bin} is required for this test: apt-get install systemd");
        }
        let child = Command::new(bin)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        started.1 = Some(child);
        let start = Instant::now();
        while !answers() {
            assert!(
                start.elapsed() < PATIENCE,
                "systemd-journald did not open {SOCKET}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Journald
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
        started.0 -= 1;
        if started.0 == 0
            && let Some(mut c) = started.1.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The container's entries as `journalctl -o json` gives them, once there are `n`.
fn journal_entries(id: &str, n: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let o = Command::new("journalctl")
            .args([
                "-o",
                "json",
                "--all",
                "--no-pager",
                &format!("CONTAINER_ID_FULL={id}"),
            ])
            .output()
            .unwrap();
        let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if entries.len() >= n {
            return entries;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "journal has {} of {n} entries for {id}: {entries:?}",
            entries.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[test]
fn journald_driver_writes_dockers_fields_and_reads_them_back() {
    require_tool("journalctl", "apt-get install systemd");
    let _journald = Journald::ensure();
    let d = daemon_with_busybox();

    // Fields, options, priorities and a line longer than Docker's 16 KiB buffer.
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "jweb",
            "--log-driver",
            "journald",
            "--log-opt",
            "tag={{.Name}}/{{.ImageName}}",
            "--log-opt",
            "labels=tier",
            "--label",
            "tier=front",
            "--log-opt",
            "env-regex=^MY_",
            "-e",
            "MY_VAR=x",
            BUSYBOX_IMG,
            "sh",
            "-c",
            "echo out; echo err >&2; sleep 0.5; head -c 20000 /dev/zero | tr '\\0' a; echo",
        ])
        .trim()
        .to_string();
    d.docker_ok(&["wait", "jweb"]);
    let entries = journal_entries(&id, 4);
    assert_eq!(entries.len(), 4, "{entries:?}");
    let line = &entries[0];
    assert_eq!(s(&line["MESSAGE"]), "out");
    assert_eq!(s(&line["PRIORITY"]), "6");
    assert_eq!(s(&line["CONTAINER_ID"]), &id[..12]);
    assert_eq!(s(&line["CONTAINER_ID_FULL"]), id);
    assert_eq!(s(&line["CONTAINER_NAME"]), "jweb");
    let tag = format!("jweb/{BUSYBOX_IMG}");
    assert_eq!(s(&line["CONTAINER_TAG"]), tag);
    assert_eq!(s(&line["SYSLOG_IDENTIFIER"]), tag);
    assert_eq!(s(&line["IMAGE_NAME"]), BUSYBOX_IMG);
    assert_eq!(s(&line["TIER"]), "front");
    assert_eq!(s(&line["MY_VAR"]), "x");
    assert_eq!(s(&line["CONTAINER_LOG_ORDINAL"]), "1");
    assert!(line.get("CONTAINER_PARTIAL_ID").is_none());
    let stderr_line = entries.iter().find(|e| s(&e["MESSAGE"]) == "err").unwrap();
    assert_eq!(s(&stderr_line["PRIORITY"]), "3");
    let pieces: Vec<_> = entries
        .iter()
        .filter(|e| e.get("CONTAINER_PARTIAL_ID").is_some())
        .collect();
    assert_eq!(pieces.len(), 2, "{entries:?}");
    assert_eq!(s(&pieces[0]["MESSAGE"]).len(), 16384);
    assert_eq!(s(&pieces[0]["CONTAINER_PARTIAL_MESSAGE"]), "true");
    assert_eq!(s(&pieces[0]["CONTAINER_PARTIAL_LAST"]), "false");
    assert_eq!(s(&pieces[1]["MESSAGE"]).len(), 20000 - 16384);
    assert_eq!(s(&pieces[1]["CONTAINER_PARTIAL_LAST"]), "true");
    assert_eq!(s(&pieces[1]["CONTAINER_PARTIAL_ORDINAL"]), "2");
    assert_eq!(
        pieces[0]["CONTAINER_PARTIAL_ID"],
        pieces[1]["CONTAINER_PARTIAL_ID"]
    );

    // docker logs: both streams, each alone, the long line whole again.
    let o = d.docker(&["logs", "jweb"]);
    assert!(o.status.success(), "{}", err(&o));
    let long = format!("{}\n", "a".repeat(20000));
    assert_eq!(out(&o), format!("out\n{long}"));
    assert_eq!(err(&o), "err\n");
    let o = d.docker(&["logs", "--tail", "1", "jweb"]);
    assert_eq!(out(&o), &long[16384..]);
    let o = d.docker(&["logs", "-t", "--tail", "3", "jweb"]);
    let first = err(&o);
    assert!(
        first.len() > 31 && first.as_bytes()[4] == b'-' && first.ends_with("Z err\n"),
        "{first:?}"
    );

    // since/until by the entries' own times.
    let t0 = s(&line["__REALTIME_TIMESTAMP"]).parse::<u64>().unwrap();
    let since = format!("{}.{:06}", t0 / 1_000_000 + 3600, t0 % 1_000_000);
    let o = d.docker(&["logs", "--since", &since, "jweb"]);
    assert_eq!((out(&o), err(&o)), (String::new(), String::new()));
    let until = format!("{}.{:06}", t0 / 1_000_000, t0 % 1_000_000);
    let o = d.docker(&["logs", "--until", &until, "jweb"]);
    assert_eq!(out(&o), "out\n");

    // Follow: lines as they come, and the end once the container stops.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "jfollow",
        "--log-driver",
        "journald",
        BUSYBOX_IMG,
        "sh",
        "-c",
        "sleep 1; for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done",
    ]);
    let o = d.docker(&["logs", "-f", "jfollow"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "line1\nline2\nline3\nline4\nline5\n");

    // Written while the daemon is down, by the monitor, and read back after.
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "jdown",
            "--log-driver",
            "journald",
            BUSYBOX_IMG,
            "sh",
            "-c",
            "echo before; sleep 2; echo while-down; sleep 600",
        ])
        .trim()
        .to_string();
    journal_entries(&id, 1);
    // Killed, not stopped: the monitor logs on its own.
    let mut d = d;
    d.signal(libc::SIGKILL);
    d.stopped = Some(d.child.wait().unwrap());
    let entries = journal_entries(&id, 2);
    assert_eq!(s(&entries[1]["MESSAGE"]), "while-down");
    let d = d.restart();
    assert_eq!(out(&d.docker(&["logs", "jdown"])), "before\nwhile-down\n");
    d.docker_ok(&["rm", "-f", "jdown"]);
}

#[test]
fn journald_driver_is_a_daemon_default_and_checks_its_options() {
    require_tool("journalctl", "apt-get install systemd");
    let _journald = Journald::ensure();
    let d = Daemon::builder()
        .config(r#"{"log-driver": "journald", "log-opts": {"tag": "{{.Name}}"}}"#)
        .start();
    d.import_busybox(BUSYBOX_IMG);
    let id = d
        .docker_ok(&["run", "-d", "--name", "jdef", BUSYBOX_IMG, "echo", "hello"])
        .trim()
        .to_string();
    assert_eq!(
        field(
            &d,
            "jdef",
            "{{.HostConfig.LogConfig.Type}} {{json .HostConfig.LogConfig.Config}}"
        ),
        r#"journald {"tag":"{{.Name}}"}"#
    );
    let entries = journal_entries(&id, 1);
    assert_eq!(s(&entries[0]["SYSLOG_IDENTIFIER"]), "jdef");
    d.docker_ok(&["wait", "jdef"]);
    assert_eq!(out(&d.docker(&["logs", "jdef"])), "hello\n");

    let o = d.docker(&[
        "create",
        "--log-driver",
        "journald",
        "--log-opt",
        "max-size=1m",
        BUSYBOX_IMG,
    ]);
    assert!(
        err(&o).contains("unknown log opt 'max-size' for journald log driver"),
        "{}",
        err(&o)
    );
    let o = d.docker(&[
        "create",
        "--log-driver",
        "journald",
        "--log-opt",
        "labels-regex=(",
        BUSYBOX_IMG,
    ]);
    assert!(
        err(&o).contains("invalid value for log opt 'labels-regex'"),
        "{}",
        err(&o)
    );
    let o = d.docker(&[
        "run",
        "--log-driver",
        "journald",
        "--log-opt",
        "tag={{.Nope}}",
        BUSYBOX_IMG,
        "true",
    ]);
    assert!(err(&o).contains("can't evaluate field Nope"), "{}", err(&o));
}

#[test]
fn journald_driver_on_a_host_without_journald_fails_the_start() {
    let d = Daemon::builder().hide("/run/systemd/journal").start();
    d.import_busybox(BUSYBOX_IMG);
    let o = d.docker(&["run", "--log-driver", "journald", BUSYBOX_IMG, "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains(
            "failed to create task for container: failed to initialize logging driver: journald is not enabled on this host"
        ),
        "{}",
        err(&o)
    );
    // The json-file driver is unaffected.
    assert_eq!(
        d.docker_ok(&["run", "--rm", BUSYBOX_IMG, "echo", "ok"]),
        "ok\n"
    );
}
