//! Container lifecycle corners, checked against what Docker Engine does: detach keys
//! (the CLI under a terminal, the config file, the attach API), attach to stopped
//! and exited containers, runtime names, stop signals and timeouts, `kill` of a
//! container that is not running, and the conditions of `POST /containers/{id}/wait`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const IMG: &str = BUSYBOX_IMG;

/// What the terminal tests run: a raw, silent terminal, so every typed byte reaches
/// `cat` at once and nothing is echoed.
const RAW_CAT: &str = "stty raw -echo; cat > /tmp/typed";

fn full_id(d: &Daemon, name: &str) -> String {
    field(d, name, "{{.Id}}")
}

/// How many `cat` processes `docker top` lists in `name` (0 while it does not run).
fn cats(d: &Daemon, name: &str) -> usize {
    let o = d.docker(&["top", name]);
    if !o.status.success() {
        return 0;
    }
    out(&o)
        .lines()
        .filter(|l| l.trim_end().ends_with(" cat"))
        .count()
}

/// What `cat` has written to /tmp/typed in `name` so far.
fn typed(d: &Daemon, name: &str) -> Vec<u8> {
    d.docker(&["exec", name, "cat", "/tmp/typed"]).stdout
}

/// The docker CLI with `args`, under `script` so that it has a terminal; its
/// keyboard is the returned child's stdin.
fn under_terminal(d: &Daemon, docker_config: &Path, args: &str) -> Child {
    require_tool("script", "apt-get install -y bsdutils");
    Command::new("script")
        .args([
            "-qec",
            &format!("{} -H {} {args}", docker_cli(), d.host()),
            "/dev/null",
        ])
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (generously) for the CLI under `script` to end, the keyboard still
/// connected; its exit status and everything it printed.
fn client_ends(mut client: Child, keys: ChildStdin, what: &str) -> (ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = client.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the client did not {what}");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(keys);
    let mut said = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    (status, said)
}

/// Types `bytes` and waits until /tmp/typed in `name` holds `expect`.
fn type_and_see(d: &Daemon, keys: &mut ChildStdin, name: &str, bytes: &[u8], expect: &[u8]) {
    keys.write_all(bytes).unwrap();
    keys.flush().unwrap();
    wait_for("the typed bytes to reach the container", d, || {
        typed(d, name) == expect
    });
}

/// Opens `POST path` with the `Upgrade: tcp` handshake the docker CLI and docker-py
/// use; the response head and the connection.
fn hijack(d: &Daemon, path: &str) -> (String, UnixStream) {
    let mut conn = UnixStream::connect(&d.sock).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), conn)
}

/// Splits a multiplexed attach stream into (stdout, stderr).
fn demux(mut raw: &[u8]) -> (String, String) {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while !raw.is_empty() {
        assert!(raw.len() >= 8, "a truncated frame header: {raw:?}");
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        assert!(raw.len() >= 8 + len, "a truncated frame: {raw:?}");
        match raw[0] {
            1 => stdout.extend_from_slice(&raw[8..8 + len]),
            2 => stderr.extend_from_slice(&raw[8..8 + len]),
            other => panic!("a frame of stream {other}: {raw:?}"),
        }
        raw = &raw[8 + len..];
    }
    (
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// `docker run -it` takes Docker's default detach keys, ctrl-p ctrl-q: the CLI ends
/// (status 0, without a word, as with Docker Engine) and the container runs on; a
/// ctrl-p that no ctrl-q follows reaches the process.
#[test]
fn run_it_detaches_on_ctrl_p_ctrl_q_and_the_container_runs_on() {
    let d = daemon_with_busybox();
    let mut client = under_terminal(
        &d,
        &d.path("docker-config"),
        &format!("run -it --name lc-run --network none {IMG} sh -c '{RAW_CAT}'"),
    );
    let mut keys = client.stdin.take().unwrap();
    wait_for("the container to run cat", &d, || cats(&d, "lc-run") == 1);
    type_and_see(&d, &mut keys, "lc-run", b"a\x10b", b"a\x10b");
    keys.write_all(b"\x10\x11").unwrap();
    keys.flush().unwrap();
    let (status, said) = client_ends(client, keys, "detach");
    assert_eq!(status.code(), Some(0), "{said:?}");
    assert!(!said.contains("read escape sequence"), "{said:?}");
    assert_eq!(field(&d, "lc-run", "{{.State.Status}}"), "running");
    assert_eq!(cats(&d, "lc-run"), 1);
    assert_eq!(typed(&d, "lc-run"), b"a\x10b");
}

/// `docker attach --detach-keys ctrl-x,x`: a broken-off start of the sequence goes
/// through to the process, the whole one detaches; the CLI says "read escape
/// sequence" and ends with status 1 (as with Docker Engine) and the container runs on.
#[test]
fn attach_detaches_with_its_detach_keys_and_the_container_runs_on() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-dit",
        "--name",
        "lc-att",
        "--network",
        "none",
        IMG,
        "sh",
        "-c",
        RAW_CAT,
    ]);
    wait_for("the container to run cat", &d, || cats(&d, "lc-att") == 1);
    let mut client = under_terminal(
        &d,
        &d.path("docker-config"),
        "attach --detach-keys ctrl-x,x lc-att",
    );
    let mut keys = client.stdin.take().unwrap();
    type_and_see(&d, &mut keys, "lc-att", b"a\x18b", b"a\x18b");
    keys.write_all(b"\x18x").unwrap();
    keys.flush().unwrap();
    let (status, said) = client_ends(client, keys, "detach");
    assert_eq!(status.code(), Some(1), "{said:?}");
    assert!(said.contains("read escape sequence"), "{said:?}");
    assert_eq!(field(&d, "lc-att", "{{.State.Status}}"), "running");
    assert_eq!(cats(&d, "lc-att"), 1);
    assert_eq!(typed(&d, "lc-att"), b"a\x18b");
}

/// `docker start -ai` takes the detach keys of the client's config file
/// (`detachKeys` in $DOCKER_CONFIG/config.json): ctrl-p ctrl-q are then ordinary
/// bytes, ctrl-x x detaches (status 0, as with Docker Engine).
#[test]
fn start_ai_detaches_with_the_keys_of_the_client_config_file() {
    let d = daemon_with_busybox();
    let config = d.path("keys-config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"detachKeys": "ctrl-x,x"}"#).unwrap();
    d.docker_ok(&[
        "create",
        "-it",
        "--name",
        "lc-start",
        "--network",
        "none",
        IMG,
        "sh",
        "-c",
        RAW_CAT,
    ]);
    let mut client = under_terminal(&d, &config, "start -ai lc-start");
    let mut keys = client.stdin.take().unwrap();
    wait_for("the container to run cat", &d, || cats(&d, "lc-start") == 1);
    type_and_see(&d, &mut keys, "lc-start", b"a", b"a");
    type_and_see(&d, &mut keys, "lc-start", b"\x10\x11b", b"a\x10\x11b");
    keys.write_all(b"\x18x").unwrap();
    keys.flush().unwrap();
    let (status, said) = client_ends(client, keys, "detach");
    assert_eq!(status.code(), Some(0), "{said:?}");
    assert!(!said.contains("read escape sequence"), "{said:?}");
    assert_eq!(field(&d, "lc-start", "{{.State.Status}}"), "running");
    assert_eq!(cats(&d, "lc-start"), 1);
    assert_eq!(typed(&d, "lc-start"), b"a\x10\x11b");
}

/// The attach API watches `detachKeys` itself (for clients that send every byte, as
/// docker-py does): the daemon ends the stream at the sequence, the process never
/// sees it and runs on.
#[test]
fn attach_api_ends_the_stream_at_its_detach_keys() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-dit",
        "--name",
        "lc-raw",
        "--network",
        "none",
        IMG,
        "sh",
        "-c",
        RAW_CAT,
    ]);
    wait_for("the container to run cat", &d, || cats(&d, "lc-raw") == 1);
    let (head, mut conn) = hijack(
        &d,
        "/containers/lc-raw/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x,x",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    conn.write_all(b"p\x18q").unwrap();
    wait_for("the typed bytes to arrive", &d, || {
        typed(&d, "lc-raw") == b"p\x18q"
    });
    conn.write_all(b"\x18x").unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest)
        .expect("the daemon ends the stream at the detach keys");
    assert_eq!(field(&d, "lc-raw", "{{.State.Status}}"), "running");
    assert_eq!(cats(&d, "lc-raw"), 1);
    assert_eq!(typed(&d, "lc-raw"), b"p\x18q");
}

/// The body of a response whose head `hijack` read: by its Content-Length, or to
/// the end of the connection.
fn body_after(head: &str, conn: &mut UnixStream) -> String {
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            conn.read_exact(&mut body).unwrap();
        }
        None => {
            conn.read_to_end(&mut body).unwrap();
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

fn sleeper(d: &Daemon, name: &str) {
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        IMG,
        "sleep",
        "1000",
    ]);
}

/// Invalid `detachKeys` on `POST /containers/{id}/attach`: Docker's 400 "Invalid
/// detach keys (…) provided"; the CLI reports that the upgrade failed; the
/// container is left alone.
#[test]
fn attach_api_refuses_invalid_detach_keys() {
    let d = daemon_with_busybox();
    sleeper(&d, "lc-keys");
    for keys in ["ctrl-P", "ctrl-", "abc"] {
        let (head, mut conn) = hijack(
            &d,
            &format!("/containers/lc-keys/attach?stream=1&stdin=1&stdout=1&detachKeys={keys}"),
        );
        assert!(head.starts_with("HTTP/1.1 400"), "{keys}: {head}");
        let body = body_after(&head, &mut conn);
        assert!(
            body.contains(&format!("Invalid detach keys ({keys}) provided")),
            "{keys}: {body}"
        );
    }
    let o = d.docker(&["attach", "--no-stdin", "--detach-keys", "ctrl-P", "lc-keys"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("unable to upgrade to tcp, received 400"),
        "{}",
        err(&o)
    );
    assert_eq!(field(&d, "lc-keys", "{{.State.Status}}"), "running");
}

/// Docker reports an attach that fails (here: invalid detach keys) on the
/// connection it took over: plain text and CRLF, `Content-Type:
/// application/vnd.docker.raw-stream`, not a JSON error document.
#[test]
fn attach_api_errors_are_plain_text_as_dockers() {
    let d = daemon_with_busybox();
    sleeper(&d, "lc-keys-text");
    let (head, mut conn) = hijack(
        &d,
        "/containers/lc-keys-text/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-P",
    );
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/vnd.docker.raw-stream\r\n"),
        "{head}"
    );
    assert_eq!(
        body_after(&head, &mut conn),
        "Invalid detach keys (ctrl-P) provided\r\n"
    );
}

/// `POST /containers/{id}/attach?logs=1&stream=0` on an exited container replays its
/// output and ends (docker-py's `attach(stream=False, logs=True)`, which sends the
/// upgrade handshake): only the streams asked for, raw under a TTY.
#[test]
fn attach_with_logs_and_no_stream_replays_an_exited_containers_output() {
    let d = daemon_with_busybox();
    d.docker(&[
        "run",
        "--name",
        "lc-done",
        "--network",
        "none",
        IMG,
        "sh",
        "-c",
        "echo out1; echo err1 >&2; echo out2",
    ]);
    assert_eq!(field(&d, "lc-done", "{{.State.Status}}"), "exited");

    // As docker-py asks: the upgrade handshake, then the replay, then the end.
    let (head, mut conn) = hijack(
        &d,
        "/containers/lc-done/attach?logs=1&stream=0&stdout=1&stderr=1",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    assert_eq!(
        demux(&raw),
        ("out1\nout2\n".to_string(), "err1\n".to_string())
    );

    // Only the streams asked for.
    assert_eq!(
        replay(&d, "lc-done", "stdout=1"),
        ("out1\nout2\n".to_string(), String::new())
    );
    assert_eq!(
        replay(&d, "lc-done", "stderr=1"),
        (String::new(), "err1\n".to_string())
    );
    assert_eq!(replay(&d, "lc-done", ""), (String::new(), String::new()));

    // Under a TTY the replay is the terminal's raw bytes.
    d.docker(&[
        "run",
        "-t",
        "--name",
        "lc-done-tty",
        "--network",
        "none",
        IMG,
        "sh",
        "-c",
        "echo out1; echo err1 >&2",
    ]);
    let (head, mut conn) = hijack(
        &d,
        "/containers/lc-done-tty/attach?logs=1&stream=0&stdout=1&stderr=1",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    assert_eq!(String::from_utf8_lossy(&raw), "out1\r\nerr1\r\n");
}

/// The replay of `logs=1&stream=0&{streams}` through the upgrade handshake, demultiplexed.
fn replay(d: &Daemon, name: &str, streams: &str) -> (String, String) {
    let (head, mut conn) = hijack(
        d,
        &format!("/containers/{name}/attach?logs=1&stream=0&{streams}"),
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{streams}: {head}");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    demux(&raw)
}

/// Docker does not insist on the upgrade handshake for attach: without it the
/// answer is a plain `200 OK` (raw-stream) and the connection carries the stream.
#[test]
fn attach_without_the_upgrade_handshake_answers_200() {
    let d = daemon_with_busybox();
    d.docker(&[
        "run",
        "--name",
        "lc-plain",
        "--network",
        "none",
        IMG,
        "sh",
        "-c",
        "echo out1; echo err1 >&2; echo out2",
    ]);
    let r = d.request(
        "POST",
        "/containers/lc-plain/attach?logs=1&stream=0&stdout=1&stderr=1",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.docker.raw-stream")
    );
    assert_eq!(
        demux(&r.body),
        ("out1\nout2\n".to_string(), "err1\n".to_string())
    );
}

/// `docker attach` of a created or exited container: the CLI's error, status 1.
#[test]
fn attach_to_a_stopped_container_is_refused() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "create",
        "--name",
        "lc-created",
        "--network",
        "none",
        IMG,
        "true",
    ]);
    d.docker_ok(&[
        "run",
        "--name",
        "lc-exited",
        "--network",
        "none",
        IMG,
        "true",
    ]);
    for name in ["lc-created", "lc-exited"] {
        let o = d.docker(&["attach", name]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", err(&o));
        assert!(
            err(&o).contains("You cannot attach to a stopped container, start it first"),
            "{name}: {}",
            err(&o)
        );
    }
}

/// `--runtime runc` runs the container and inspect says so; `docker info` lists
/// runc; an unknown name is Docker's 400 "unknown or invalid runtime name".
#[test]
fn runtime_runc_runs_and_unknown_names_are_refused() {
    let d = daemon_with_busybox();
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            "none",
            IMG,
            "echo",
            "ran"
        ]),
        "ran\n"
    );
    d.docker_ok(&[
        "create",
        "--name",
        "lc-runc",
        "--runtime",
        "runc",
        IMG,
        "true",
    ]);
    assert_eq!(field(&d, "lc-runc", "{{.HostConfig.Runtime}}"), "runc");

    let runtimes: Value =
        serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .Runtimes}}"])).unwrap();
    assert!(runtimes.get("runc").is_some(), "{runtimes}");

    let o = d.docker(&["run", "--runtime", "nosuch", IMG, "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains("unknown or invalid runtime name: nosuch"),
        "{}",
        err(&o)
    );
    let r = d.request(
        "POST",
        "/containers/create?name=lc-nosuch",
        Some((
            "application/json",
            format!(r#"{{"Image":"{IMG}","HostConfig":{{"Runtime":"nosuch"}}}}"#).as_bytes(),
        )),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "unknown or invalid runtime name: nosuch"
    );
    assert!(!d.docker(&["inspect", "lc-nosuch"]).status.success());
}

/// Docker's default runtime is runc (`DefaultRuntime`), which a container created
/// without `--runtime` records; `docker info` also lists containerd's name for it,
/// io.containerd.runc.v2, which `--runtime` takes too.
#[test]
fn runc_is_the_default_runtime() {
    let d = daemon_with_busybox();
    d.docker_ok(&["create", "--name", "lc-default-rt", IMG, "true"]);
    assert_eq!(
        field(&d, "lc-default-rt", "{{.HostConfig.Runtime}}"),
        "runc"
    );
    assert_eq!(
        d.docker_ok(&["info", "--format", "{{.DefaultRuntime}}"])
            .trim(),
        "runc"
    );
    let runtimes: Value =
        serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .Runtimes}}"])).unwrap();
    assert!(
        runtimes.get("io.containerd.runc.v2").is_some(),
        "{runtimes}"
    );
    d.docker_ok(&[
        "create",
        "--name",
        "lc-v2-rt",
        "--runtime",
        "io.containerd.runc.v2",
        IMG,
        "true",
    ]);
    assert_eq!(
        field(&d, "lc-v2-rt", "{{.HostConfig.Runtime}}"),
        "io.containerd.runc.v2"
    );
}

/// The script of the stop-signal tests: each signal ends it with its own status
/// (SIGUSR1 10, SIGUSR2 12, SIGTERM 15), once it said "ready".
const TRAPS: &str = "trap 'exit 10' USR1; trap 'exit 12' USR2; trap 'exit 15' TERM; \
                     echo ready; while true; do sleep 0.1; done";

/// Starts `name` and waits for its traps to be set (its `run`-th "ready").
fn start_ready(d: &Daemon, name: &str, run: usize) {
    d.docker_ok(&["start", name]);
    wait_for("the traps to be set", d, || {
        out(&d.docker(&["logs", name])).matches("ready").count() == run
    });
}

/// `--stop-signal` and `--stop-timeout` are recorded as given; `docker stop` sends
/// the container's stop signal, `docker stop -s` another one, `docker kill -s` what
/// it is told.
#[test]
fn stop_signal_from_create_is_what_stop_sends() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "create",
        "--name",
        "lc-sig",
        "--network",
        "none",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "3",
        IMG,
        "sh",
        "-c",
        TRAPS,
    ]);
    let v = inspect(&d, "lc-sig");
    assert_eq!(v["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(v["Config"]["StopTimeout"], 3);

    start_ready(&d, "lc-sig", 1);
    assert_eq!(d.docker_ok(&["stop", "lc-sig"]), "lc-sig\n");
    assert_eq!(d.docker_ok(&["wait", "lc-sig"]), "10\n");

    start_ready(&d, "lc-sig", 2);
    d.docker_ok(&["stop", "-s", "SIGUSR2", "lc-sig"]);
    assert_eq!(d.docker_ok(&["wait", "lc-sig"]), "12\n");

    // `docker kill -s` sends what it is told, whatever the stop signal.
    start_ready(&d, "lc-sig", 3);
    d.docker_ok(&["kill", "-s", "TERM", "lc-sig"]);
    assert_eq!(d.docker_ok(&["wait", "lc-sig"]), "15\n");
}

/// A stop signal is kept as given (a number too); one that is no signal is
/// Docker's 400 "Invalid signal: NAME" at create.
#[test]
fn an_unknown_stop_signal_is_refused_at_create() {
    let d = daemon_with_busybox();
    d.docker_ok(&["create", "--name", "lc-sig-num", "--stop-signal", "12", IMG]);
    assert_eq!(field(&d, "lc-sig-num", "{{.Config.StopSignal}}"), "12");
    let o = d.docker(&[
        "create",
        "--name",
        "lc-sig-bad",
        "--stop-signal",
        "NOSUCH",
        IMG,
    ]);
    assert!(!o.status.success());
    assert!(err(&o).contains("Invalid signal: NOSUCH"), "{}", err(&o));
    assert!(!d.docker(&["inspect", "lc-sig-bad"]).status.success());
    let r = d.request(
        "POST",
        "/containers/create",
        Some((
            "application/json",
            format!(r#"{{"Image":"{IMG}","StopSignal":"SIGNOPE"}}"#).as_bytes(),
        )),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["message"], "Invalid signal: SIGNOPE");
}

/// `--stop-timeout` replaces the default 10 s grace of `docker stop`: well past ten
/// seconds, a container that ignores the signal still runs and the stop still waits.
#[test]
fn stop_timeout_from_create_replaces_the_default_grace() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "lc-slow",
        "--network",
        "none",
        "--stop-timeout",
        "600",
        IMG,
        "sh",
        "-c",
        "trap 'echo term' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    wait_for("the trap to be set", &d, || {
        out(&d.docker(&["logs", "lc-slow"])).contains("ready")
    });
    let mut stop = d
        .docker_cmd(&["stop", "lc-slow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("SIGTERM to arrive", &d, || {
        out(&d.docker(&["logs", "lc-slow"])).contains("term")
    });
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        stop.try_wait().unwrap().is_none(),
        "docker stop ended before the container's stop timeout"
    );
    assert_eq!(field(&d, "lc-slow", "{{.State.Status}}"), "running");
    d.docker_ok(&["kill", "lc-slow"]);
    let status = wait_timeout(&mut stop, PATIENCE).expect("docker stop ends with the kill");
    assert!(status.success());
    assert_eq!(field(&d, "lc-slow", "{{.State.ExitCode}}"), "137");
}

/// The busybox fixture with `StopSignal` in its image config, as `docker save`
/// would write it.
fn image_with_stop_signal(dir: &Path, tag: &str, signal: &str) -> PathBuf {
    use sha2::Digest;
    let mut files: Vec<(tar::Header, Vec<u8>)> = Vec::new();
    let mut a = tar::Archive::new(std::fs::File::open(fixture("busybox-docker20.tar")).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.push((e.header().clone(), data));
    }
    let name = |h: &tar::Header| h.path().unwrap().to_string_lossy().into_owned();
    let manifest_at = files
        .iter()
        .position(|(h, _)| name(h) == "manifest.json")
        .unwrap();
    let mut manifest: Value = serde_json::from_slice(&files[manifest_at].1).unwrap();
    let config_name = manifest[0]["Config"].as_str().unwrap().to_string();
    let config_at = files
        .iter()
        .position(|(h, _)| name(h) == config_name)
        .unwrap();
    let mut config: Value = serde_json::from_slice(&files[config_at].1).unwrap();
    config["config"]["StopSignal"] = Value::from(signal);
    let config = serde_json::to_vec(&config).unwrap();
    let digest: String = sha2::Sha256::digest(&config)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    manifest[0]["Config"] = Value::from(format!("{digest}.json"));
    manifest[0]["RepoTags"] = serde_json::json!([tag]);

    let manifest = serde_json::to_vec(&manifest).unwrap();
    let path = dir.join("stopsignal-image.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (i, (h, data)) in files.iter().enumerate() {
        let mut h = h.clone();
        let data: &[u8] = if i == manifest_at {
            &manifest
        } else if i == config_at {
            h.set_path(format!("{digest}.json")).unwrap();
            &config
        } else if name(&h) == "repositories" {
            continue;
        } else {
            data
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
    path
}

/// An image's `StopSignal` is its containers' default (what `docker stop` sends,
/// what inspect shows); `--stop-signal` overrides it.
#[test]
fn an_images_stop_signal_is_its_containers_default() {
    let d = Daemon::start();
    let tar = image_with_stop_signal(d.dir.path(), "lc/stopsig:1", "SIGUSR1");
    d.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(
        d.docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.StopSignal}}",
            "lc/stopsig:1"
        ])
        .trim(),
        "SIGUSR1"
    );
    d.docker_ok(&[
        "create",
        "--name",
        "lc-img-sig",
        "--network",
        "none",
        "lc/stopsig:1",
        "sh",
        "-c",
        TRAPS,
    ]);
    assert_eq!(field(&d, "lc-img-sig", "{{.Config.StopSignal}}"), "SIGUSR1");
    start_ready(&d, "lc-img-sig", 1);
    d.docker_ok(&["stop", "lc-img-sig"]);
    assert_eq!(d.docker_ok(&["wait", "lc-img-sig"]), "10\n");

    d.docker_ok(&[
        "create",
        "--name",
        "lc-img-sig2",
        "--network",
        "none",
        "--stop-signal",
        "SIGUSR2",
        "lc/stopsig:1",
        "sh",
        "-c",
        TRAPS,
    ]);
    assert_eq!(
        field(&d, "lc-img-sig2", "{{.Config.StopSignal}}"),
        "SIGUSR2"
    );
    start_ready(&d, "lc-img-sig2", 1);
    d.docker_ok(&["stop", "lc-img-sig2"]);
    assert_eq!(d.docker_ok(&["wait", "lc-img-sig2"]), "12\n");
}

/// `docker import --change` takes what `docker commit --change` takes, and
/// STOPSIGNAL is not among them: Docker's error.
#[test]
fn import_refuses_a_stopsignal_change() {
    let d = Daemon::start();
    let tar = busybox_full_rootfs(d.dir.path());
    let o = d.docker(&[
        "import",
        "--change",
        "STOPSIGNAL SIGUSR1",
        tar.to_str().unwrap(),
        "lc/imported:1",
    ]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(
        err(&o).contains("stopsignal is not a valid change command"),
        "{}",
        err(&o)
    );
}

/// `docker kill` of a container that is not running (created, exited): Docker's 409
/// "cannot kill container: NAME: container ID is not running"; an unknown one 404.
#[test]
fn kill_of_a_container_that_is_not_running_is_a_conflict() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "create",
        "--name",
        "lc-kc",
        "--network",
        "none",
        IMG,
        "true",
    ]);
    d.docker_ok(&["run", "--name", "lc-ke", "--network", "none", IMG, "true"]);
    for name in ["lc-kc", "lc-ke"] {
        let id = full_id(&d, name);
        // Docker 20.10 capitalises "Cannot" and "Container"; Docker 28 does not.
        let expected = format!("cannot kill container: {name}: container {id} is not running");
        let o = d.docker(&["kill", name]);
        assert_eq!(o.status.code(), Some(1), "{}", err(&o));
        assert!(
            err(&o)
                .to_lowercase()
                .contains(&format!("error response from daemon: {expected}")),
            "{}",
            err(&o)
        );
        let r = d.request("POST", &format!("/containers/{name}/kill"), None);
        assert_eq!(r.status, 409, "{}", r.text());
        let msg = r.json()["message"].as_str().unwrap().to_string();
        assert!(msg.eq_ignore_ascii_case(&expected), "{msg}");
        assert_eq!(
            field(&d, name, "{{.State.Status}}"),
            if name == "lc-kc" { "created" } else { "exited" }
        );
    }
}

/// `docker kill` of an unknown container: 404, and Docker 28 puts "cannot kill
/// container: NAME: " before "No such container: NAME", as for every kill error.
#[test]
fn kill_of_an_unknown_container_says_it_cannot_kill_it() {
    let d = Daemon::start();
    let r = d.request("POST", "/containers/lc-nosuch/kill", None);
    assert_eq!(r.status, 404, "{}", r.text());
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.eq_ignore_ascii_case("cannot kill container: lc-nosuch: No such container: lc-nosuch"),
        "{msg}"
    );
    let o = d.docker(&["kill", "lc-nosuch"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).to_lowercase().contains(
            "error response from daemon: cannot kill container: lc-nosuch: no such container: lc-nosuch"
        ),
        "{}",
        err(&o)
    );
}

/// A `POST /containers/{id}/wait` whose response head has arrived: Docker sends the
/// head once the waiter is registered, the body when the condition is met.
struct Waiter {
    reader: BufReader<UnixStream>,
    status: u16,
    headers: Vec<(String, String)>,
    what: String,
}

impl Waiter {
    fn new(d: &Daemon, name: &str, condition: &str) -> Waiter {
        let what = format!("wait?condition={condition} on {name}");
        let mut s = UnixStream::connect(&d.sock).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            s,
            "POST /containers/{name}/wait?condition={condition} HTTP/1.1\r\nHost: docker\r\n\
             Connection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap_or_else(|e| {
            panic!("{what}: no response head ({e}); Docker sends it before it waits")
        });
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Waiter {
            reader,
            status,
            headers,
            what,
        }
    }

    /// Whether no byte of the body has come yet.
    fn pending(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        use std::os::fd::AsRawFd;
        let mut byte = [0u8];
        let fd = self.reader.get_ref().as_raw_fd();
        let n = unsafe {
            libc::recv(
                fd,
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    }

    /// The body (waiting for it at most [`PATIENCE`]).
    fn body(mut self) -> Value {
        let header = |n: &str| {
            self.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
        let mut body = Vec::new();
        let what = self.what.clone();
        let got =
            |r: std::io::Result<usize>| r.unwrap_or_else(|e| panic!("{what}: no result ({e})"));
        if chunked {
            loop {
                let mut size = String::new();
                got(self.reader.read_line(&mut size));
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let mut chunk = vec![0; n + 2];
                got(self.reader.read_exact(&mut chunk).map(|()| 0));
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            got(self.reader.read_exact(&mut body).map(|()| 0));
        } else {
            got(self.reader.read_to_end(&mut body));
        }
        assert_eq!(
            self.status,
            200,
            "{what}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(&body))
        })
    }

    /// The exit status the body reports (and no error).
    fn status_code(self) -> i64 {
        let what = self.what.clone();
        let v = self.body();
        assert!(v["Error"].is_null(), "{what}: {v}");
        v["StatusCode"]
            .as_i64()
            .unwrap_or_else(|| panic!("{what}: {v}"))
    }
}

/// The conditions of `POST /containers/{id}/wait`: an unknown one is a 400;
/// `not-running` answers at once for a container that does not run; `next-exit`
/// waits for the next exit even of a created container; `removed` for the removal.
#[test]
fn wait_conditions_on_a_created_container() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "create",
        "--name",
        "lc-wc",
        "--network",
        "none",
        IMG,
        "sh",
        "-c",
        "exit 5",
    ]);
    // Docker 28 refuses an unknown condition (20.10 took it for not-running).
    let r = d.request("POST", "/containers/lc-wc/wait?condition=bogus", None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["message"], "invalid condition: \"bogus\"");
    let r = d.request("POST", "/containers/lc-nosuch/wait", None);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["message"], "No such container: lc-nosuch");

    assert_eq!(Waiter::new(&d, "lc-wc", "not-running").status_code(), 0);
    let mut next = Waiter::new(&d, "lc-wc", "next-exit");
    let mut removed = Waiter::new(&d, "lc-wc", "removed");
    assert!(next.pending(), "next-exit answered before any exit");
    d.docker_ok(&["start", "lc-wc"]);
    assert_eq!(next.status_code(), 5);
    assert_eq!(d.docker_ok(&["wait", "lc-wc"]), "5\n");
    assert!(removed.pending(), "removed answered before the removal");
    d.docker_ok(&["rm", "lc-wc"]);
    assert_eq!(removed.status_code(), 5);
}

/// Under `--restart on-failure:1`, Docker's `not-running` and `next-exit` waiters
/// that came while the container ran both answer at its first exit (the restart
/// that follows does not hold them back); the final state is the second exit's;
/// `removed` waits through all of it.
#[test]
fn wait_conditions_with_a_restart_policy() {
    let d = daemon_with_busybox();
    // The first run waits for /go and exits 3; the restart finds /ran and exits 4.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "lc-wr",
        "--network",
        "none",
        "--restart",
        "on-failure:1",
        IMG,
        "sh",
        "-c",
        "while [ ! -e /go ]; do sleep 0.1; done; \
         if [ -e /ran ]; then exit 4; fi; touch /ran; exit 3",
    ]);
    let mut removed = Waiter::new(&d, "lc-wr", "removed");
    let next = Waiter::new(&d, "lc-wr", "next-exit");
    let not_running = Waiter::new(&d, "lc-wr", "not-running");
    d.docker_ok(&["exec", "lc-wr", "touch", "/go"]);
    assert_eq!(next.status_code(), 3);
    wait_for("the restart to run and end", &d, || {
        field(&d, "lc-wr", "{{.State.Status}} {{.RestartCount}}") == "exited 1"
    });
    assert_eq!(field(&d, "lc-wr", "{{.State.ExitCode}}"), "4");
    assert_eq!(Waiter::new(&d, "lc-wr", "not-running").status_code(), 4);
    assert_eq!(d.docker_ok(&["wait", "lc-wr"]), "4\n");

    // next-exit on the exited container waits for the next run's exit.
    let mut next = Waiter::new(&d, "lc-wr", "next-exit");
    assert!(next.pending(), "next-exit answered before any exit");
    d.docker_ok(&["start", "lc-wr"]);
    assert_eq!(next.status_code(), 4);
    wait_for("the policy's restart to end", &d, || {
        field(&d, "lc-wr", "{{.State.Status}} {{.RestartCount}}") == "exited 1"
    });

    assert!(removed.pending(), "removed answered before the removal");
    d.docker_ok(&["rm", "lc-wr"]);
    assert_eq!(removed.status_code(), 4);

    // The not-running waiter that came during the first run answered at its exit.
    assert_eq!(
        not_running.status_code(),
        3,
        "Docker answers at the first exit"
    );
}
