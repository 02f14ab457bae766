//! Namespace sharing (`--pid`, `--ipc`, `--uts`, `--userns`) end to end: the real
//! docker CLI against the built daemon.

mod common;

use common::*;

const IMG: &str = BUSYBOX_IMG;

/// The namespace a process of a running container is in (`pid:[4026…]`).
fn ns_of(d: &Daemon, name: &str, kind: &str) -> String {
    let pid = field(d, name, "{{.State.Pid}}");
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

fn failure(d: &Daemon, args: &[&str]) -> String {
    let o = d.docker(args);
    assert!(!o.status.success(), "{args:?} succeeded: {}", out(&o));
    err(&o)
}

#[test]
fn a_container_joins_the_pid_namespace_of_another() {
    let d = daemon_with_busybox();
    d.docker_ok(&["run", "-d", "--name", "donor", IMG, "sleep", "1000"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "joiner",
        "--pid",
        "container:donor",
        IMG,
        "sh",
        "-c",
        "sleep 901 & sleep 902",
    ]);
    let donor_id = field(&d, "donor", "{{.Id}}");
    assert_eq!(
        field(&d, "joiner", "{{.HostConfig.PidMode}}"),
        format!("container:{donor_id}")
    );
    assert_eq!(ns_of(&d, "joiner", "pid"), ns_of(&d, "donor", "pid"));
    // Each sees the other's processes; the donor's first process is PID 1.
    wait_for("the joiner's processes in the donor", &d, || {
        let ps = d.docker_ok(&["exec", "donor", "ps", "-o", "pid,args"]);
        ps.contains("sleep 901") && ps.contains("sleep 902")
    });
    let ps = d.docker_ok(&["exec", "joiner", "ps", "-o", "pid,args"]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sleep", "1000"]),
        "{ps}"
    );

    // The joiner's end takes its other processes with it, not the donor's.
    d.docker_ok(&["stop", "-t", "1", "joiner"]);
    let ps = d.docker_ok(&["exec", "donor", "ps", "-o", "args"]);
    assert!(!ps.contains("sleep 90"), "{ps}");
    // When the donor ends, its namespace ends with everything in it.
    d.docker_ok(&["start", "joiner"]);
    d.docker_ok(&["stop", "-t", "1", "donor"]);
    wait_for("the joiner to end with the donor's namespace", &d, || {
        field(&d, "joiner", "{{.State.Running}}") == "false"
    });

    // A donor that is not running, or does not exist: Docker's words.
    let e = failure(&d, &["start", "joiner"]);
    assert!(
        e.contains(&format!("container {donor_id} is not running")),
        "{e}"
    );
    let e = failure(&d, &["create", "--pid", "container:nosuch", IMG]);
    assert!(e.contains("No such container: nosuch"), "{e}");
}

#[test]
fn pid_host_sees_the_host_and_ends_every_process_it_started() {
    let d = daemon_with_busybox();
    let ps = d.docker_ok(&["run", "--rm", "--pid", "host", IMG, "sh", "-c", "echo $$"]);
    let pid: i32 = ps.trim().parse().unwrap();
    // Its PID is a host PID: far above 1, and not its own namespace's first.
    assert!(pid > 1, "{ps}");
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hostpid",
        "--pid",
        "host",
        IMG,
        "sh",
        "-c",
        "sleep 903 & sleep 904",
    ]);
    assert_eq!(
        ns_of(&d, "hostpid", "pid"),
        ns.display().to_string(),
        "not in the host's PID namespace"
    );
    wait_for("both sleeps on the host", &d, || {
        let all = host_commands();
        all.contains(&"sleep 903".to_string()) && all.contains(&"sleep 904".to_string())
    });
    d.docker_ok(&["stop", "-t", "1", "hostpid"]);
    // The background sleep does not outlive the container.
    wait_for("the container's processes to end", &d, || {
        !host_commands().iter().any(|c| c.starts_with("sleep 90"))
    });
}

/// Command lines of every process on the host.
fn host_commands() -> Vec<String> {
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            all.push(cmd.trim().to_string());
        }
    }
    all
}

#[test]
fn ipc_shareable_is_joined_and_private_is_not() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "shared",
        "--ipc",
        "shareable",
        IMG,
        "sleep",
        "1000",
    ]);
    d.docker_ok(&["run", "-d", "--name", "private", IMG, "sleep", "1000"]);
    assert_eq!(field(&d, "private", "{{.HostConfig.IpcMode}}"), "private");
    assert_eq!(field(&d, "shared", "{{.HostConfig.IpcMode}}"), "shareable");
    let shared_id = field(&d, "shared", "{{.Id}}");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "joiner",
        "--ipc",
        "container:shared",
        IMG,
        "sh",
        "-c",
        "echo hello > /dev/shm/note; sleep 1000",
    ]);
    assert_eq!(
        field(&d, "joiner", "{{.HostConfig.IpcMode}}"),
        format!("container:{shared_id}")
    );
    assert_eq!(ns_of(&d, "joiner", "ipc"), ns_of(&d, "shared", "ipc"));
    assert_ne!(ns_of(&d, "private", "ipc"), ns_of(&d, "shared", "ipc"));
    // One /dev/shm for both.
    wait_for("the note in the donor's /dev/shm", &d, || {
        d.docker(&["exec", "shared", "cat", "/dev/shm/note"]).stdout == b"hello\n"
    });
    // It lives on a tmpfs in the container's directory while the donor runs.
    let shm = d
        .data_root()
        .join(format!("containers/{shared_id}/mounts/shm"));
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(shm.to_str().unwrap()))
    };
    assert!(mounted());

    let private_id = field(&d, "private", "{{.Id}}");
    let e = failure(
        &d,
        &["run", "--rm", "--ipc", "container:private", IMG, "true"],
    );
    assert!(
        e.contains(&format!(
            "can't join IPC of container {private_id}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
        )),
        "{e}"
    );

    // Stopped, the donor's /dev/shm is unmounted; the joiner keeps its own view.
    d.docker_ok(&["stop", "-t", "0", "shared"]);
    assert!(!mounted(), "the shareable /dev/shm stayed mounted");
    assert_eq!(
        d.docker_ok(&["exec", "joiner", "cat", "/dev/shm/note"]),
        "hello\n"
    );
    let e = failure(
        &d,
        &["run", "--rm", "--ipc", "container:shared", IMG, "true"],
    );
    assert!(
        e.contains(&format!(
            "can't join IPC of container {shared_id}: container {shared_id} is not running"
        )),
        "{e}"
    );
    d.docker_ok(&["rm", "-f", "joiner", "shared"]);
}

#[test]
fn ipc_none_and_host() {
    let d = daemon_with_busybox();
    let dev = d.docker_ok(&["run", "--rm", "--ipc", "none", IMG, "ls", "/dev"]);
    assert!(!dev.lines().any(|l| l == "shm"), "{dev}");
    assert!(dev.lines().any(|l| l == "mqueue"), "{dev}");
    d.docker_ok(&[
        "run", "-d", "--name", "hostipc", "--ipc", "host", IMG, "sleep", "1000",
    ]);
    let own = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_eq!(ns_of(&d, "hostipc", "ipc"), own.display().to_string());
    // The host's /dev/shm, seen from inside.
    let name = format!("dockerd-test-{}", std::process::id());
    std::fs::write(format!("/dev/shm/{name}"), "from the host").unwrap();
    let seen = d.docker(&["exec", "hostipc", "cat", &format!("/dev/shm/{name}")]);
    let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    assert_eq!(out(&seen), "from the host", "{}", err(&seen));
}

#[test]
fn uts_host_keeps_the_hosts_name_and_conflicts_with_a_hostname() {
    let d = daemon_with_busybox();
    let host = nix_hostname();
    let name = d.docker_ok(&["run", "--rm", "--uts", "host", IMG, "hostname"]);
    assert_eq!(name.trim(), host);
    // Without CAP_SYS_ADMIN the container cannot rename the host.
    let o = d.docker(&["run", "--rm", "--uts", "host", IMG, "hostname", "renamed"]);
    assert!(!o.status.success());
    assert_eq!(nix_hostname(), host);
    let e = failure(
        &d,
        &["run", "--rm", "--uts", "host", "-h", "foo", IMG, "true"],
    );
    assert!(
        e.contains("conflicting options: hostname and the UTS mode"),
        "{e}"
    );
    let own = d.docker_ok(&["run", "--rm", IMG, "hostname"]);
    assert_ne!(own.trim(), host);
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn invalid_modes_get_dockers_errors() {
    let d = daemon_with_busybox();
    for (field, value, message) in [
        ("PidMode", "bogus", "invalid PID mode: bogus"),
        ("PidMode", "container:", "invalid PID mode: container:"),
        ("IpcMode", "bogus", "invalid IPC mode: bogus"),
        ("UTSMode", "container:x", "invalid UTS mode: container:x"),
        ("UsernsMode", "private", "invalid USER mode: private"),
    ] {
        let body = format!(r#"{{"Image":"{IMG}","HostConfig":{{"{field}":"{value}"}}}}"#);
        let r = d.request(
            "POST",
            "/containers/create",
            Some(("application/json", body.as_bytes())),
        );
        assert_eq!(r.status, 400, "{field}={value}: {}", r.text());
        assert_eq!(r.json()["message"], message);
    }
    // The host's user namespace is where containers run: accepted.
    d.docker_ok(&["run", "--rm", "--userns", "host", IMG, "true"]);
}
