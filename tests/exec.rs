//! `docker exec` through the real docker CLI and the raw API: output and exit
//! codes, options, stdin, a terminal, Docker's errors, and an exec outliving a
//! daemon restart.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

fn running(d: &Daemon, name: &str) {
    d.import_busybox("bb:1");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "bb:1",
        "sleep",
        "1000",
    ]);
}

#[test]
fn exec_runs_commands_in_the_container_as_docker_does() {
    let d = Daemon::start();
    running(&d, "c1");
    let host = inspect(&d, "c1")["Config"]["Hostname"]
        .as_str()
        .unwrap()
        .to_string();

    // Output, exit code, the container's host name and PID namespace.
    let o = d.docker(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "hostname; echo $$; echo oops >&2; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", err(&o));
    let out = common::out(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(host.as_str()));
    let pid: i32 = lines.next().unwrap().parse().unwrap();
    assert!(pid > 1 && pid < 1000, "{pid}");
    assert_eq!(err(&o), "oops\n");

    // -e, -w, -u.
    let out = d.docker_ok(&[
        "exec",
        "-e",
        "FOO=bar",
        "-w",
        "/etc",
        "-u",
        "nobody",
        "c1",
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u)",
    ]);
    assert_eq!(out, "bar /etc 65534\n");

    // -i with piped stdin, closed at its end.
    let mut child = d
        .docker_cmd(&["exec", "-i", "c1", "sh", "-c", "wc -c; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[b'x'; 100_000])
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        common::out(&o).split_whitespace().collect::<Vec<_>>(),
        ["100000", "done"]
    );

    // A command that is not there: Docker's message and 126.
    let o = d.docker(&["exec", "c1", "no-such-command"]);
    assert_eq!(o.status.code(), Some(126));
    assert!(
        common::out(&o).contains(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"no-such-command\": executable file not found in $PATH: unknown"
        ),
        "{}",
        common::out(&o)
    );

    // A terminal under `script`.
    let o = std::process::Command::new("script")
        .args([
            "-qec",
            &format!(
                "stty rows 30 cols 100; {} -H {} exec -it c1 sh -c 'tty; stty size'",
                docker_cli(),
                d.host()
            ),
            "/dev/null",
        ])
        .env("DOCKER_CONFIG", d.path("docker-config"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("30 100"), "{text:?}");

    // Detached: the process runs (docker top sees it) while the client is gone.
    d.docker_ok(&["exec", "-d", "c1", "sleep", "777"]);
    wait_for("the detached exec to show in top", &d, || {
        d.docker_ok(&["top", "c1"]).contains("sleep 777")
    });

    // The API: inspect after the end; an unknown ID; a stopped container.
    let r = d.request(
        "POST",
        "/containers/c1/exec",
        Some(("application/json", br#"{"Cmd":["sh","-c","exit 3"]}"#)),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["Id"].as_str().unwrap().to_string();
    let r = d.request(
        "POST",
        &format!("/exec/{id}/start"),
        Some(("application/json", br#"{"Detach":true}"#)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for("the exec to end", &d, || {
        d.request("GET", &format!("/exec/{id}/json"), None).json()["Running"] == false
    });
    let v = d.request("GET", &format!("/exec/{id}/json"), None).json();
    assert_eq!(v["ExitCode"], 3);
    assert_eq!(v["ProcessConfig"]["entrypoint"], "sh");
    let r = d.request(
        "POST",
        &format!("/exec/{id}/start"),
        Some(("application/json", b"{}")),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let r = d.request("GET", "/exec/nope/json", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such exec instance: nope");

    d.docker_ok(&["stop", "-t", "1", "c1"]);
    let o = d.docker(&["exec", "c1", "true"]);
    assert!(!o.status.success());
    let full = inspect(&d, "c1")["Id"].as_str().unwrap().to_string();
    assert!(
        err(&o).contains(&format!("container {full} is not running")),
        "{}",
        err(&o)
    );
}

#[test]
fn an_exec_outlives_a_daemon_killed_and_restarted() {
    let mut d = Daemon::start();
    running(&d, "c1");
    // An attached exec that waits for a signal file, then writes its result.
    let mut attached = d
        .docker_cmd(&[
            "exec",
            "c1",
            "sh",
            "-c",
            "echo waiting; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo finished > /tmp/result",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    std::io::Read::read_exact(attached.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"waiting\n");
    let r = d.request(
        "POST",
        "/containers/c1/exec",
        Some(("application/json", br#"{"Cmd":["true"]}"#)),
    );
    let old_exec = r.json()["Id"].as_str().unwrap().to_string();

    d.signal(libc::SIGKILL);
    d.stopped = Some(d.child.wait().unwrap());
    let _ = attached.wait();
    let d = d.restart();

    // The container runs on, and so does the exec's process: it finishes when told.
    assert_eq!(inspect(&d, "c1")["State"]["Running"], true);
    d.docker_ok(&["exec", "c1", "touch", "/tmp/go"]);
    wait_for("the exec started before the restart to finish", &d, || {
        d.docker(&["exec", "c1", "cat", "/tmp/result"]).stdout == b"finished\n"
    });
    assert_eq!(inspect(&d, "c1")["State"]["Running"], true);
    // Execs are known to the daemon that made them only, as with Docker Engine.
    let r = d.request("GET", &format!("/exec/{old_exec}/json"), None);
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn exec_into_an_init_container_and_inspect_lists_running_execs() {
    let d = Daemon::start();
    d.import_busybox("bb:1");
    d.docker_ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        "i1",
        "--network",
        "none",
        "bb:1",
        "sleep",
        "1000",
    ]);
    let out = d.docker_ok(&[
        "exec",
        "i1",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ]);
    let pid: i32 = out.lines().nth(1).unwrap().parse().unwrap();
    assert!(pid > 2, "{pid}");
    d.docker_ok(&["exec", "-d", "i1", "sleep", "555"]);
    wait_for("the exec in ExecIDs", &d, || {
        inspect(&d, "i1")["ExecIDs"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
}
