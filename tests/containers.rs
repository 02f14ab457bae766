//! `docker run` and the container lifecycle end to end: the real docker CLI against
//! the built daemon, containers run by the `dockerd init` monitor from a busybox image.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const IMG: &str = "test/busybox:1";

fn daemon() -> Daemon {
    let d = Daemon::start();
    d.import_busybox(IMG);
    d
}

#[test]
fn run_prints_and_exits_with_the_commands_status() {
    let d = daemon();
    assert_eq!(
        d.docker_ok(&["run", "--rm", IMG, "echo", "hello"]),
        "hello\n"
    );
    let o = d.docker(&["run", "--rm", IMG, "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    let o = d.docker(&["run", "--rm", IMG, "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(out(&o), "out\n");
    assert_eq!(err(&o), "err\n");
    // --rm removed every one of them.
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
}

#[test]
fn stdin_reaches_the_container() {
    let d = daemon();
    let mut c = d
        .docker_cmd(&["run", "-i", "--rm", IMG, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"x\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(out(&o), "x\n");
}

#[test]
fn large_output_arrives_complete() {
    let d = daemon();
    let o = d.docker(&["run", "--rm", IMG, "seq", "1", "200000"]);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 200_000);
    assert_eq!(lines[0], "1");
    assert_eq!(lines[199_999], "200000");
    // The same lines are in the log of a kept container.
    d.docker_ok(&["run", "--name", "big", IMG, "seq", "1", "200000"]);
    let logs = d.docker(&["logs", "big"]);
    assert_eq!(out(&logs).lines().count(), 200_000);
}

#[test]
fn process_settings_take_effect() {
    let d = daemon();
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "-w",
        "/work/dir",
        "-u",
        "65534",
        "--hostname",
        "box",
        IMG,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; hostname; echo $$",
    ]);
    assert_eq!(o, "bar\n/work/dir\n65534\nbox\n1\n");
    // Users by name, with supplementary groups from the image's /etc/group.
    let o = d.docker_ok(&["run", "--rm", "-u", "nobody", IMG, "id"]);
    assert_eq!(o, "uid=65534(nobody) gid=65534(nogroup) groups=50(staff)\n");
}

#[test]
fn the_container_is_isolated() {
    let d = daemon();
    let marker = d.path("host-only-file");
    std::fs::write(&marker, "secret").unwrap();
    let o = d.docker(&["run", "--rm", IMG, "cat", marker.to_str().unwrap()]);
    assert!(!o.status.success(), "host files must not be visible");
    let o = d.docker_ok(&["run", "--rm", IMG, "sh", "-c", "ls /proc/1/cmdline >/dev/null && echo proc; echo hi >/dev/null && echo null; cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert_eq!(
        o,
        "proc\nnull\nsh -c ls /proc/1/cmdline >/dev/null && echo proc; echo hi >/dev/null && echo null; cat /proc/1/cmdline | tr '\\0' ' ' "
    );
    let o = d.docker(&["run", "--rm", "--read-only", IMG, "touch", "/x"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMG,
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(o, "lo\n");
    // The default network gives the container an interface on the bridge.
    let o = d.docker_ok(&["run", "--rm", IMG, "ls", "/sys/class/net"]);
    assert_eq!(o, "eth0\nlo\n");
    let o = d.docker_ok(&["run", "--rm", IMG, "cat", "/proc/self/status"]);
    let caps = o.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert_eq!(
        caps.split_whitespace().nth(1),
        Some("00000000a80425fb"),
        "Docker's default capabilities"
    );
}

#[test]
fn exec_failures_exit_127_and_126_with_dockers_messages() {
    let d = daemon();
    let o = d.docker(&["run", "--rm", IMG, "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(
        err(&o).contains("exec: \"no-such-command\": executable file not found in $PATH"),
        "{}",
        err(&o)
    );
    assert!(!err(&o).contains("Error waiting"), "{}", err(&o));
    let o = d.docker(&["run", "--rm", IMG, "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    assert!(err(&o).contains("permission denied"), "{}", err(&o));
    // --rm removed them even though they never ran.
    wait_for("failed containers removed", &d, || {
        d.docker_ok(&["ps", "-aq"]).is_empty()
    });
    // Without --rm the failure is recorded.
    let o = d.docker(&["run", "--name", "bad", IMG, "no-such-command"]);
    assert_eq!(o.status.code(), Some(127));
    let v = inspect(&d, "bad");
    assert_eq!(v["State"]["ExitCode"], 127);
    assert!(
        v["State"]["Error"]
            .as_str()
            .unwrap()
            .contains("executable file not found")
    );
}

#[test]
fn detached_lifecycle() {
    let d = daemon();
    let id = d.docker_ok(&["run", "-d", "--name", "web", IMG, "sh", "-c",
        "trap 'echo got-usr1' USR1; trap 'echo bye; exit 7' TERM; echo started; while true; do sleep 0.1; done"]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    let ps = d.docker_ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(ps.starts_with(&format!("{} web Up", &id[..12])), "{ps}");
    wait_for("first log line", &d, || {
        out(&d.docker(&["logs", "web"])) == "started\n"
    });

    d.docker_ok(&["kill", "-s", "USR1", "web"]);
    wait_for("trap output", &d, || {
        out(&d.docker(&["logs", "web"])).contains("got-usr1")
    });

    let top = d.docker_ok(&["top", "web"]);
    assert!(top.lines().next().unwrap().contains("PID"), "{top}");
    assert!(top.contains("sh -c"), "{top}");

    let o = d.docker(&["rm", "web"]);
    assert!(!o.status.success());
    assert!(
        err(&o)
            .contains("container is running: stop the container before removing or force remove"),
        "{}",
        err(&o)
    );

    d.docker_ok(&["rename", "web", "web2"]);
    assert_eq!(inspect(&d, &id)["Name"], "/web2");

    // A follower sees the rest of the output and ends when the container does.
    let follower = d
        .docker_cmd(&["logs", "-f", "web2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    d.docker_ok(&["stop", "-t", "5", "web2"]);
    let o = follower.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(out(&o).ends_with("bye\n"), "{}", out(&o));

    assert_eq!(d.docker_ok(&["wait", "web2"]), "7\n");
    let v = inspect(&d, "web2");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 7);
    assert_eq!(v["State"]["Running"], false);
    assert!(v["State"]["FinishedAt"].as_str().unwrap() > v["State"]["StartedAt"].as_str().unwrap());

    d.docker_ok(&["restart", "-t", "1", "web2"]);
    assert_eq!(inspect(&d, "web2")["State"]["Running"], true);
    d.docker_ok(&["rm", "-f", "web2"]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
}

#[test]
fn stop_escalates_to_sigkill_and_wait_reports_it() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        IMG,
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    let start = Instant::now();
    d.docker_ok(&["stop", "-t", "1", "stubborn"]);
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(d.docker_ok(&["wait", "stubborn"]), "137\n");
    let o = d.docker(&["stop", "stubborn"]);
    assert!(
        o.status.success(),
        "stopping a stopped container is not an error: {}",
        err(&o)
    );
}

#[test]
fn inspect_and_list_documents() {
    let d = daemon();
    d.docker_ok(&[
        "create", "--name", "c1", "--label", "tier=web", IMG, "echo", "one two",
    ]);
    let v = inspect(&d, "c1");
    assert_eq!(v["Name"], "/c1");
    assert_eq!(v["Path"], "echo");
    assert_eq!(v["Args"], serde_json::json!(["one two"]));
    assert_eq!(v["State"]["Status"], "created");
    assert_eq!(v["Config"]["Image"], IMG);
    assert_eq!(v["Config"]["Labels"]["tier"], "web");
    // The CLI asks for the "default" network, which is "bridge".
    assert_eq!(v["HostConfig"]["NetworkMode"], "default");
    assert!(
        v["NetworkSettings"]["Networks"]["bridge"].is_object(),
        "{v}"
    );
    assert!(v["Image"].as_str().unwrap().starts_with("sha256:"));
    assert!(v["LogPath"].as_str().unwrap().ends_with("-json.log"));
    assert!(v["Config"]["Env"].as_array().is_some());
    let ps = d.docker_ok(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}|{{.Command}}|{{.Status}}|{{.Image}}",
    ]);
    assert_eq!(ps, "c1|\"echo 'one two'\"|Created|test/busybox:1\n");
    assert_eq!(
        d.docker_ok(&["ps", "-q"]),
        "",
        "created containers are not running"
    );
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "label=tier=web",
            "--format",
            "{{.Names}}"
        ]),
        "c1\n"
    );
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--format",
            "{{.Names}}"
        ]),
        ""
    );
    d.docker_ok(&["start", "-a", "c1"]);
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--filter", "exited=0", "--format", "{{.Names}}"]),
        "c1\n"
    );
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "ancestor=test/busybox:1",
            "--format",
            "{{.Names}}"
        ]),
        "c1\n"
    );
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--filter", "name=c", "--format", "{{.Names}}"]),
        "c1\n"
    );
    let info: Value =
        serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(info["Containers"], 1);
    assert_eq!(info["ContainersStopped"], 1);
    let df = d.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Containers 1"), "{df}");
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(nets, "bridge bridge\nhost host\nnone null\n");
    // The default network is a real bridge now: docker info has nothing to warn about.
    let warnings = info["Warnings"].to_string();
    assert!(!warnings.contains("bridge networking"), "{warnings}");
}

#[test]
fn names_ids_and_conflicts() {
    let d = daemon();
    let id = d
        .docker_ok(&["create", "--name", "taken", IMG])
        .trim()
        .to_string();
    let o = d.docker(&["create", "--name", "taken", IMG]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!(
            "Conflict. The container name \"/taken\" is already in use by container \"{id}\""
        )),
        "{}",
        err(&o)
    );
    let o = d.docker(&["create", "--name", "bad name", IMG]);
    assert!(
        err(&o).contains("Invalid container name (bad name)"),
        "{}",
        err(&o)
    );
    // Generated names look like Docker's.
    let generated = d.docker_ok(&["create", IMG]).trim().to_string();
    let name = inspect(&d, &generated)["Name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with('/') && name.contains('_'), "{name}");
    // Short ID prefixes resolve.
    assert_eq!(inspect(&d, &id[..6])["Id"], id.as_str());
    let o = d.docker(&["inspect", "--type", "container", "nosuch"]);
    assert!(err(&o).contains("No such container: nosuch"), "{}", err(&o));
    let r = d.request(
        "POST",
        "/v1.51/containers/create",
        Some(("application/json", br#"{"Image":"no/such:image"}"#)),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: no/such:image");
    // The image cannot go while a container uses it.
    let o = d.docker(&["rmi", IMG]);
    assert!(!o.status.success());
    assert!(err(&o).contains("container"), "{}", err(&o));
    assert_eq!(
        d.docker_ok(&["container", "prune", "-f"]).lines().next(),
        Some("Deleted Containers:")
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
}

#[test]
fn unsupported_settings_are_refused_not_ignored() {
    let d = daemon();
    for args in [
        &["--storage-opt", "size=1G"][..],
        &["--cpu-rt-runtime", "1000"],
    ] {
        let mut full = vec!["create"];
        full.extend_from_slice(args);
        full.push(IMG);
        let o = d.docker(&full);
        assert!(!o.status.success(), "{args:?} must be refused");
        assert!(
            err(&o).contains("not supported by this daemon yet"),
            "{args:?}: {}",
            err(&o)
        );
    }
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "refused creates leave nothing behind"
    );
}

#[test]
fn init_privileged_caps_and_binds() {
    let d = daemon();
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--init",
        IMG,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ]);
    let mut lines = o.lines();
    assert!(lines.next().unwrap().contains("docker-init"), "{o}");
    assert_ne!(
        lines.next(),
        Some("1"),
        "with --init the command is not PID 1"
    );
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_ADMIN",
        IMG,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(o.split_whitespace().nth(1), Some("0000000000001000"));
    // Privileged: every capability the daemon holds, nothing masked.
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--privileged",
        IMG,
        "sh",
        "-c",
        "grep CapEff /proc/self/status; head -c1 /proc/interrupts | wc -c",
    ]);
    let daemon_caps = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = daemon_caps
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(
        o.lines().next().unwrap().split_whitespace().nth(1),
        Some(bounding.as_str()),
        "{o}"
    );
    assert_eq!(
        o.lines().nth(1).map(str::trim),
        Some("1"),
        "/proc/interrupts is not masked for --privileged: {o}"
    );
    let o = d.docker_ok(&[
        "run",
        "--rm",
        IMG,
        "sh",
        "-c",
        "head -c1 /proc/interrupts | wc -c",
    ]);
    assert_eq!(
        o.trim(),
        "0",
        "/proc/interrupts is masked without --privileged"
    );
    let host_dir = d.path("shared");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("in"), "from host").unwrap();
    let bind = format!("{}:/data", host_dir.display());
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        IMG,
        "sh",
        "-c",
        "cat /data/in; echo out > /data/out",
    ]);
    assert_eq!(o, "from host");
    assert_eq!(
        std::fs::read_to_string(host_dir.join("out")).unwrap(),
        "out\n"
    );
    let ro = format!("{}:/data:ro", host_dir.display());
    assert!(
        !d.docker(&["run", "--rm", "-v", &ro, IMG, "touch", "/data/x"])
            .status
            .success()
    );
}

#[test]
fn tty_sees_a_terminal_and_resizes() {
    require_tool("script", "apt-get install -y bsdutils");
    let d = daemon();
    let cmd = format!(
        "stty rows 31 cols 97; {} -H {} run -t --rm {IMG} sh -c 'tty; stty size'",
        docker_cli(),
        d.host()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("DOCKER_CONFIG", d.path("cli"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = out(&o);
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(
        text.contains("31 97"),
        "the terminal size reaches the container: {text:?}"
    );
}

#[test]
fn events_follow_the_lifecycle() {
    let d = daemon();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    assert_eq!(
        d.docker(&["run", "--name", "ev", IMG, "sh", "-c", "exit 2"])
            .status
            .code(),
        Some(2)
    );
    d.docker_ok(&["rename", "ev", "ev2"]);
    d.docker_ok(&["rm", "ev2"]);
    std::thread::sleep(Duration::from_millis(1100));
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let o = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}",
    ]);
    let actions: Vec<&str> = o.lines().collect();
    assert_eq!(
        actions,
        vec![
            "create ", "attach ", "start ", "die 2", "rename ", "destroy "
        ],
        "{o}"
    );
}

#[test]
fn containers_survive_daemon_restarts() {
    let mut d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "long",
        IMG,
        "sh",
        "-c",
        // Runs until told to end, so no step below races its exit.
        "trap 'exit 4' USR1; for i in $(seq 1 30); do echo line$i; done; \
         while true; do sleep 0.05; done",
    ]);
    wait_for("30 lines", &d, || {
        d.docker_ok(&["logs", "long"]).contains("line30\n")
    });
    let pid = inspect(&d, "long")["State"]["Pid"].as_i64().unwrap() as i32;
    // A clean stop of the daemon leaves the container running.
    assert_eq!(d.stop().code(), Some(0));
    let mut d2 = d.restart();
    let ps = d2.docker_ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(ps, "long\n", "{}", d2.log());
    assert_eq!(inspect(&d2, "long")["State"]["Pid"], pid);
    // Now a crash: SIGKILL the daemon while the container still runs, and end the
    // container while no daemon is there to see it.
    d2.signal(libc::SIGKILL);
    let _ = wait_timeout(&mut d2.child, PATIENCE);
    d2.stopped = d2.child.try_wait().unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    let d3 = d2.restart();
    assert_eq!(d3.docker_ok(&["wait", "long"]), "4\n");
    let logs = d3.docker_ok(&["logs", "long"]);
    let expected: String = (1..=30).map(|i| format!("line{i}\n")).collect();
    assert_eq!(logs, expected);
    assert_eq!(inspect(&d3, "long")["State"]["ExitCode"], 4);
}

#[test]
fn monitors_do_not_inherit_systemd_variables() {
    let d = Daemon::builder()
        .env("NOTIFY_SOCKET", "/nonexistent/notify")
        .env("LISTEN_FDNAMES", "x")
        .start();
    d.import_busybox(IMG);
    d.docker_ok(&["run", "-d", "--name", "envcheck", IMG, "sleep", "30"]);
    let o = d.docker_ok(&["run", "--rm", IMG, "env"]);
    assert!(
        !o.contains("NOTIFY_SOCKET") && !o.contains("LISTEN_"),
        "{o}"
    );
    // The monitor process itself: find it by the container's ID in its state dir.
    let pid = inspect(&d, "envcheck")["State"]["Pid"].as_i64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let environ = std::fs::read(format!("/proc/{ppid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        !environ.contains("NOTIFY_SOCKET") && !environ.contains("LISTEN_"),
        "{environ}"
    );
    d.docker_ok(&["rm", "-f", "envcheck"]);
}

#[test]
fn runc_names_the_built_in_runtime() {
    let d = daemon();
    d.docker_ok(&[
        "create",
        "--name",
        "rc",
        "--runtime",
        "runc",
        IMG,
        "echo",
        "ran",
    ]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", "rc"]),
        "runc\n"
    );
    assert_eq!(d.docker_ok(&["start", "-a", "rc"]), "ran\n");
    let o = d.docker(&["create", "--runtime", "nosuch", IMG]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("unknown or invalid runtime name: nosuch"),
        "{}",
        err(&o)
    );
    let runtimes = d.docker_ok(&["info", "-f", "{{json .Runtimes}}"]);
    assert!(runtimes.contains("\"runc\""), "{runtimes}");
}
