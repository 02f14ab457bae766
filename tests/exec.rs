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
    // Their state goes when they end: only the container's directory stays.
    let c1 = inspect(&d, "c1")["Id"].as_str().unwrap().to_string();
    let states = d.exec_root().join("containers");
    wait_for("the ended exec's state to be removed", &d, || {
        let left: Vec<String> = std::fs::read_dir(&states)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left == [c1.clone()]
    });
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

#[test]
fn detach_keys_leave_the_exec_running_and_never_reach_it() {
    let d = Daemon::start();
    running(&d, "c1");
    let o = d.docker(&["exec", "--detach-keys", "ctrl-P", "c1", "true"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Invalid escape keys (ctrl-P) provided"),
        "{}",
        err(&o)
    );

    // The daemon watches an exec's terminal input for the keys (for clients that
    // send everything through, as docker-py does). The exec's terminal is raw, so
    // every byte reaches `cat` at once — except the detach sequence.
    let r = d.request(
        "POST",
        "/containers/c1/exec",
        Some((
            "application/json",
            br#"{"Cmd":["sh","-c","stty raw -echo; cat > /tmp/raw"],"AttachStdin":true,
                 "AttachStdout":true,"Tty":true,"DetachKeys":"ctrl-x,x"}"#,
        )),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let exec_id = r.json()["Id"].as_str().unwrap().to_string();
    let sock = d.host().strip_prefix("unix://").unwrap().to_string();
    let mut conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let body = br#"{"Detach":false,"Tty":true}"#;
    write!(
        conn,
        "POST /exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n\
         Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(body).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        std::io::Read::read_exact(&mut conn, &mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    wait_for("the exec to run cat", &d, || cats(&d) == 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    conn.write_all(b"p\x18q").unwrap();
    wait_for("the typed bytes to arrive", &d, || {
        d.docker(&["exec", "c1", "cat", "/tmp/raw"]).stdout == b"p\x18q"
    });
    conn.write_all(b"\x18x").unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut conn, &mut rest).expect("the daemon ends the stream");
    let r = d.request("GET", &format!("/exec/{exec_id}/json"), None);
    assert_eq!(r.json()["Running"], true, "{}", r.text());
    assert_eq!(
        d.docker(&["exec", "c1", "cat", "/tmp/raw"]).stdout,
        b"p\x18q"
    );

    // The docker CLI watches for them itself, and says so as it does with Docker
    // Engine (exit status 1); the process runs on.
    let mut client = std::process::Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} -H {} exec -it --detach-keys ctrl-x,x c1 sh -c 'stty raw -echo; cat > /tmp/typed'",
                docker_cli(),
                d.host()
            ),
            "/dev/null",
        ])
        .env("DOCKER_CONFIG", d.path("docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the exec to run a second cat", &d, || cats(&d) == 2);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut keys = client.stdin.take().unwrap();
    // A broken-off start of the sequence goes through; the whole one detaches.
    keys.write_all(b"a\x18b").unwrap();
    wait_for("the typed bytes to arrive", &d, || {
        d.docker(&["exec", "c1", "cat", "/tmp/typed"]).stdout == b"a\x18b"
    });
    keys.write_all(b"\x18x").unwrap();
    keys.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = client.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the client did not detach"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(keys);
    let mut said = String::new();
    std::io::Read::read_to_string(client.stdout.as_mut().unwrap(), &mut said).unwrap();
    assert_eq!(status.code(), Some(1), "{said:?}");
    assert!(said.contains("read escape sequence"), "{said:?}");
    assert_eq!(cats(&d), 2);
    assert_eq!(
        d.docker(&["exec", "c1", "cat", "/tmp/typed"]).stdout,
        b"a\x18b"
    );
}

/// How many `cat` processes `docker top` lists in c1.
fn cats(d: &Daemon) -> usize {
    d.docker_ok(&["top", "c1"])
        .lines()
        .filter(|l| l.trim_end().ends_with(" cat"))
        .count()
}
