//! Restart policies end to end: the real docker CLI against the built daemon.

mod common;

use std::time::Duration;

use common::*;

const IMG: &str = BUSYBOX_IMG;

#[test]
fn on_failure_restarts_exactly_n_times_with_growing_gaps() {
    let d = daemon_with_busybox();
    let marks = d.path("marks");
    std::fs::create_dir(&marks).unwrap();
    let bind = format!("{}:/marks", marks.display());
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "f2",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "-v",
        &bind,
        IMG,
        "sh",
        "-c",
        "cut -d' ' -f1 /proc/uptime >> /marks/starts; exit 3",
    ]);
    wait_for("three runs, then stopped", &d, || {
        field(&d, "f2", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
    });
    // No third restart comes.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        field(
            &d,
            "f2",
            "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}"
        ),
        "exited 2 3"
    );
    let starts: Vec<f64> = std::fs::read_to_string(marks.join("starts"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 3, "{starts:?}");
    // Docker's backoff: 100 ms, then 200 ms (at least; the run itself adds to it;
    // /proc/uptime counts hundredths).
    let (g1, g2) = (starts[1] - starts[0], starts[2] - starts[1]);
    assert!(g1 >= 0.08, "first gap {g1}");
    assert!(g2 >= 0.18, "second gap {g2}");
    // A start by a client begins again from zero.
    d.docker_ok(&["start", "f2"]);
    wait_for("three more runs", &d, || {
        std::fs::read_to_string(marks.join("starts"))
            .unwrap()
            .lines()
            .count()
            == 6
            && field(&d, "f2", "{{.State.Status}}") == "exited"
    });
    assert_eq!(field(&d, "f2", "{{.RestartCount}}"), "2");
    // A clean exit is not a failure.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--network",
        "none",
        "--restart",
        "on-failure",
        IMG,
        "true",
    ]);
    wait_for("ok exited", &d, || {
        field(&d, "ok", "{{.State.Status}}") == "exited"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        field(&d, "ok", "{{.RestartCount}} {{.State.Status}}"),
        "0 exited"
    );
}

#[test]
fn always_survives_the_kill_of_its_process_and_stop_ends_it() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "al",
        "--network",
        "none",
        "--restart",
        "always",
        IMG,
        "sleep",
        "1000",
    ]);
    let pid: i32 = field(&d, "al", "{{.State.Pid}}").parse().unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_for("a restart", &d, || {
        field(&d, "al", "{{.State.Status}} {{.RestartCount}}") == "running 1"
            && field(&d, "al", "{{.State.Pid}}") != pid.to_string()
    });
    // `docker stop` ends it for good (no restart after the exit it causes).
    d.docker_ok(&["stop", "-t", "1", "al"]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        field(&d, "al", "{{.State.Status}} {{.RestartCount}}"),
        "exited 1"
    );
    // So does `docker kill`.
    d.docker_ok(&["start", "al"]);
    assert_eq!(field(&d, "al", "{{.RestartCount}}"), "0");
    d.docker_ok(&["kill", "al"]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(field(&d, "al", "{{.State.Status}}"), "exited");
}

#[test]
fn a_restarting_container_reports_it_and_stop_calls_it_off() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "crash",
        "--network",
        "none",
        "--restart",
        "always",
        IMG,
        "sh",
        "-c",
        "exit 1",
    ]);
    // The backoff grows until the container spends most of its time waiting: from
    // the sixth restart on, 3.2 s and more, time enough for the checks below.
    wait_for("a long wait to restart", &d, || {
        let s = field(&d, "crash", "{{.State.Restarting}} {{.RestartCount}}");
        let (restarting, count) = s.split_once(' ').unwrap();
        restarting == "true" && count.parse::<i64>().unwrap() >= 6
    });
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("crash Restarting (1) "), "{ps}");
    assert_eq!(
        field(&d, "crash", "{{.State.Status}} {{.State.Running}}"),
        "restarting true"
    );
    let o = d.docker(&["exec", "crash", "true"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("is restarting, wait until the container is running"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["rm", "crash"]);
    assert!(
        err(&o).contains(
            "container is restarting: stop the container before removing or force remove"
        ),
        "{}",
        err(&o)
    );
    // `docker wait` (not-running) of a restarting container ends at its next exit,
    // or, as here (the next restart is seconds away), at the stop that calls the
    // policy off.
    let mut waiter = d
        .docker_cmd(&["wait", "crash"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    d.docker_ok(&["stop", "crash"]);
    let w = wait_timeout(&mut waiter, PATIENCE).expect("docker wait ends with the stop");
    assert!(w.success());
    let mut code = String::new();
    std::io::Read::read_to_string(&mut waiter.stdout.take().unwrap(), &mut code).unwrap();
    assert_eq!(code, "1\n");
    let count = field(&d, "crash", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        field(&d, "crash", "{{.State.Status}} {{.RestartCount}}"),
        format!("exited {count}")
    );
    // A restarting container can be removed by force.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "crash2",
        "--network",
        "none",
        "--restart",
        "always",
        IMG,
        "false",
    ]);
    wait_for("restarting", &d, || {
        field(&d, "crash2", "{{.State.Restarting}}") == "true"
    });
    d.docker_ok(&["rm", "-f", "crash2"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.docker(&["inspect", "crash2"]).status.code() == Some(1));
}

#[test]
fn policies_are_checked_with_dockers_messages() {
    let d = daemon_with_busybox();
    let o = d.docker(&["create", "--restart", "always:3", IMG]);
    assert!(
        err(&o).contains("maximum retry count can only be used with 'on-failure'"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["create", "--restart", "sometimes", IMG]);
    assert!(!o.status.success());
    let body = br#"{"Image":"test/busybox:1","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#;
    let r = d.request(
        "POST",
        "/containers/create",
        Some(("application/json", body)),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text()
            .contains("can't create 'AutoRemove' container with restart policy")
    );
    let body = br#"{"Image":"test/busybox:1","HostConfig":{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":-1}}}"#;
    let r = d.request(
        "POST",
        "/containers/create",
        Some(("application/json", body)),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("maximum retry count cannot be negative"));
    d.docker_ok(&["create", "--name", "pol", "--restart", "on-failure:5", IMG]);
    assert_eq!(
        field(
            &d,
            "pol",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:5"
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]).lines().count(), 1);
}

/// `docker update --restart` on running and stopped containers: applied to the next
/// exit, kept across a daemon restart, refused for `--rm` containers, and resource
/// fields this daemon does not apply yet are refused, never ignored.
#[test]
fn update_changes_the_policy_of_running_and_stopped_containers() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "up",
        "--network",
        "none",
        IMG,
        "sleep",
        "1000",
    ]);
    d.docker_ok(&["update", "--restart", "always", "up"]);
    assert_eq!(
        field(&d, "up", "{{.HostConfig.RestartPolicy.Name}}"),
        "always"
    );
    // The running container's next exit restarts it.
    let pid: i32 = field(&d, "up", "{{.State.Pid}}").parse().unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_for("the restart the updated policy asks for", &d, || {
        field(&d, "up", "{{.State.Status}} {{.RestartCount}}") == "running 1"
    });
    let events = events_so_far(&d, &["event=update"], "{{.Actor.Attributes.name}}");
    assert_eq!(events.trim(), "up");

    // Stopped: on-failure:2 is recorded, and kept by a daemon restart.
    d.docker_ok(&["stop", "-t", "1", "up"]);
    d.docker_ok(&["update", "--restart", "on-failure:2", "up"]);
    let d = d.restart();
    assert_eq!(
        field(
            &d,
            "up",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:2"
    );

    let o = d.docker(&["update", "--restart", "bogus", "up"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("unknown policy 'bogus'"), "{}", err(&o));
    let o = d.docker(&["update", "--restart", "always", "nosuch"]);
    assert!(err(&o).contains("No such container: nosuch"), "{}", err(&o));

    d.docker_ok(&["create", "--rm", "--name", "gone", IMG]);
    let id = field(&d, "gone", "{{.Id}}");
    let r = d.request(
        "POST",
        "/containers/gone/update",
        Some((
            "application/json",
            br#"{"RestartPolicy":{"Name":"always"}}"#,
        )),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        format!(
            "Cannot update container {id}: Restart policy cannot be updated because AutoRemove is enabled for the container"
        )
    );

    // A refused part refuses the whole update: nothing changed. (As with Docker, a
    // memory limit on a container without one needs --memory-swap with it.)
    let o = d.docker(&["update", "--memory", "64m", "--restart", "no", "up"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Memory limit should be smaller than already set memoryswap limit"),
        "{}",
        err(&o)
    );
    assert_eq!(
        field(&d, "up", "{{.HostConfig.RestartPolicy.Name}}"),
        "on-failure"
    );
}

#[test]
fn policies_bring_containers_back_with_the_daemon_with_busybox() {
    let d = daemon_with_busybox();
    for (name, policy) in [("al", "always"), ("us", "unless-stopped"), ("no", "no")] {
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--restart",
            policy,
            IMG,
            "sleep",
            "1000",
        ]);
    }
    // On the default bridge: its start waits for the host's networking, which the
    // daemon sets up beside serving.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "br",
        "--restart",
        "always",
        IMG,
        "sleep",
        "1000",
    ]);
    // Stopped by the user: `always` comes back with the daemon, `unless-stopped` not.
    d.docker_ok(&["stop", "-t", "0", "al", "us", "br"]);
    let d = d.restart();
    wait_for("al and br back", &d, || {
        field(&d, "al", "{{.State.Status}}") == "running"
            && field(&d, "br", "{{.State.Status}}") == "running"
    });
    assert!(!field(&d, "br", "{{.NetworkSettings.IPAddress}}").is_empty());
    assert_eq!(field(&d, "us", "{{.State.Status}}"), "exited");
    // A "reboot": the daemon stops, every monitor and container process dies and
    // exec-root is emptied; the daemon's next start brings back the containers whose
    // policy asks for it.
    d.docker_ok(&["start", "us"]);
    let pids: Vec<i32> = ["al", "us", "no", "br"]
        .iter()
        .map(|n| field(&d, n, "{{.State.Pid}}").parse().unwrap())
        .collect();
    let mut d = d;
    d.stop();
    for pid in &pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let ppid: i32 = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        unsafe {
            libc::kill(ppid, libc::SIGKILL);
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    // A reboot also ends every mount there (network namespace files).
    let root = d.exec_root();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut mounts: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(root.to_str().unwrap()))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let c = std::ffi::CString::new(m).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        if e.path().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        } else {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let d = d.restart();
    wait_for("al, us and br back", &d, || {
        field(&d, "al", "{{.State.Status}}") == "running"
            && field(&d, "us", "{{.State.Status}}") == "running"
            && field(&d, "br", "{{.State.Status}}") == "running"
    });
    assert_eq!(field(&d, "no", "{{.State.Status}}"), "exited");
    for (i, n) in ["al", "us"].iter().enumerate() {
        assert_ne!(field(&d, n, "{{.State.Pid}}"), pids[i].to_string());
    }
}

#[test]
fn live_restore_false_stops_containers_and_policies_bring_them_back() {
    let d = Daemon::builder()
        .config(r#"{"live-restore": false}"#)
        .start();
    d.import_busybox(IMG);
    assert_eq!(
        d.docker_ok(&["info", "-f", "{{.LiveRestoreEnabled}}"]),
        "false\n"
    );
    let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    for (name, policy) in [("al", "always"), ("no", "no")] {
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--restart",
            policy,
            IMG,
            "sh",
            "-c",
            script,
        ]);
    }
    let pids: Vec<i32> = ["al", "no"]
        .iter()
        .map(|n| field(&d, n, "{{.State.Pid}}").parse().unwrap())
        .collect();
    let mut d = d;
    assert_eq!(d.stop().code(), Some(0));
    for pid in &pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "container process {pid} outlived the daemon"
        );
    }
    let d = d.restart();
    wait_for("al back", &d, || {
        field(&d, "al", "{{.State.Status}}") == "running"
    });
    assert_eq!(
        field(&d, "no", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    assert_eq!(field(&d, "al", "{{.RestartCount}}"), "0");
}

#[test]
fn live_restore_is_the_default() {
    let d = Daemon::start();
    assert_eq!(
        d.docker_ok(&["info", "-f", "{{.LiveRestoreEnabled}}"]),
        "true\n"
    );
}

/// A restart that was pending (in its backoff) when the daemon was killed happens
/// when the daemon comes back: the container is not left "restarting" forever.
#[test]
fn a_restart_pending_when_the_daemon_dies_happens_at_its_next_start() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fl",
        "--network",
        "none",
        "--restart",
        "always",
        IMG,
        "false",
    ]);
    // Failing at once, its backoff doubles from 100 ms: after five restarts the next
    // one is seconds away, so the daemon dies while it is pending.
    wait_for("a long pending restart", &d, || {
        let s = field(&d, "fl", "{{.State.Restarting}} {{.RestartCount}}");
        let mut parts = s.split(' ');
        parts.next() == Some("true") && parts.next().unwrap().parse::<i64>().unwrap() >= 5
    });
    let started = field(&d, "fl", "{{.State.StartedAt}}");
    d.signal(libc::SIGKILL);
    let d = d.restart();
    wait_for("the pending restart to happen", &d, || {
        field(&d, "fl", "{{.State.StartedAt}}") != started
    });
    // And the policy goes on from there.
    let count: i64 = field(&d, "fl", "{{.RestartCount}}").parse().unwrap();
    wait_for("the policy to keep restarting it", &d, || {
        field(&d, "fl", "{{.RestartCount}}").parse::<i64>().unwrap() > count
    });
    d.docker_ok(&["stop", "fl"]);
    assert_eq!(field(&d, "fl", "{{.State.Status}}"), "exited");
}
