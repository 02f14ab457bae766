//! Health checks through the real docker CLI: starting → healthy → unhealthy,
//! timeouts, the image's check and `--no-healthcheck`, `docker ps` and events.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn health(d: &Daemon, name: &str) -> Value {
    inspect(d, name)["State"]["Health"].clone()
}

#[test]
fn health_goes_starting_healthy_unhealthy_with_events() {
    let d = Daemon::start();
    d.import_busybox("bb:1");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "h1",
        "--network",
        "none",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "--health-start-period",
        "60s",
        "--health-start-interval",
        "200ms",
        "bb:1",
        "sleep",
        "1000",
    ]);
    // Failures inside the start period do not count: still starting.
    assert_eq!(health(&d, "h1")["Status"], "starting");
    wait_for("two failed probes", &d, || {
        health(&d, "h1")["Log"].as_array().map_or(0, |l| l.len()) >= 2
    });
    let h = health(&d, "h1");
    assert_eq!(h["Status"], "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    assert_eq!(h["Log"][0]["ExitCode"], 1);
    assert!(
        h["Log"][0]["Output"].as_str().unwrap().contains("/tmp/ok"),
        "{h}"
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.trim().ends_with("(health: starting)"), "{ps}");

    d.docker_ok(&["exec", "h1", "touch", "/tmp/ok"]);
    wait_for("healthy", &d, || health(&d, "h1")["Status"] == "healthy");
    let ps = d.docker_ok(&[
        "ps",
        "--filter",
        "health=healthy",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(
        ps.starts_with("h1 Up ") && ps.trim().ends_with("(healthy)"),
        "{ps}"
    );
    assert_eq!(
        d.docker_ok(&["ps", "-q", "--filter", "health=unhealthy"]),
        ""
    );

    // Once healthy the start period is over: two failures make it unhealthy.
    d.docker_ok(&["exec", "h1", "rm", "/tmp/ok"]);
    wait_for("unhealthy", &d, || {
        health(&d, "h1")["Status"] == "unhealthy"
    });
    let h = health(&d, "h1");
    assert_eq!(h["FailingStreak"], 2, "{h}");
    assert!(h["Log"].as_array().unwrap().len() <= 5, "{h}");

    std::thread::sleep(Duration::from_millis(1100));
    let ev = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(
        ev.lines().collect::<Vec<_>>(),
        ["health_status: healthy", "health_status: unhealthy"],
        "{ev}"
    );

    // Probing stops with the container.
    d.docker_ok(&["stop", "-t", "1", "h1"]);
    let n = health(&d, "h1")["Log"].as_array().map_or(0, |l| l.len());
    let last = health(&d, "h1")["Log"][n.saturating_sub(1)]["Start"].clone();
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(health(&d, "h1")["Log"][n.saturating_sub(1)]["Start"], last);
}

#[test]
fn a_probe_that_takes_too_long_is_killed_and_fails() {
    let d = Daemon::start();
    d.import_busybox("bb:1");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--network",
        "none",
        "--health-cmd",
        "sleep 30",
        "--health-timeout",
        "300ms",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1",
        "bb:1",
        "sleep",
        "1000",
    ]);
    wait_for("unhealthy", &d, || {
        health(&d, "slow")["Status"] == "unhealthy"
    });
    let h = health(&d, "slow");
    assert_eq!(h["Log"][0]["ExitCode"], -1, "{h}");
    assert_eq!(
        h["Log"][0]["Output"], "Health check exceeded timeout (300ms)",
        "{h}"
    );
    // The timed-out probe's process was killed.
    wait_for("the probe's sleep to be gone", &d, || {
        !d.docker_ok(&["top", "slow"]).contains("sleep 30")
    });
}

#[test]
fn the_images_check_runs_unless_disabled() {
    let d = Daemon::start();
    let tar = busybox_full_rootfs(d.dir.path());
    d.docker_ok(&[
        "import",
        "-c",
        "HEALTHCHECK --interval=300ms CMD true",
        "-c",
        "CMD [\"sleep\", \"1000\"]",
        tar.to_str().unwrap(),
        "checked:1",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "on",
        "--network",
        "none",
        "checked:1",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "off",
        "--network",
        "none",
        "--no-healthcheck",
        "checked:1",
    ]);
    wait_for("healthy", &d, || health(&d, "on")["Status"] == "healthy");
    assert_eq!(health(&d, "off"), Value::Null);
    assert_eq!(
        inspect(&d, "off")["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    let ps = d.docker_ok(&["ps", "--filter", "health=none", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "off");
}

#[test]
fn probing_resumes_after_a_daemon_restart() {
    let d = Daemon::start();
    d.import_busybox("bb:1");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--network",
        "none",
        "--health-cmd",
        "true",
        "--health-interval",
        "300ms",
        "bb:1",
        "sleep",
        "1000",
    ]);
    wait_for("healthy", &d, || health(&d, "hc")["Status"] == "healthy");
    let d = d.restart();
    let before = health(&d, "hc")["Log"].as_array().map_or(0, |l| l.len());
    wait_for("new probes after the restart", &d, || {
        let h = health(&d, "hc");
        h["Status"] == "healthy" && h["Log"].as_array().map_or(0, |l| l.len()) > before.min(4)
    });
}

#[test]
fn probes_are_not_kept_as_execs() {
    let d = Daemon::start();
    d.import_busybox("bb:1");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "pr",
        "--network",
        "none",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "bb:1",
        "sleep",
        "1000",
    ]);
    wait_for("three probes", &d, || {
        health(&d, "pr")["Log"].as_array().map_or(0, |l| l.len()) >= 3
    });
    std::thread::sleep(Duration::from_millis(1100));
    let ids = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "event=exec_create",
        "--format",
        "{{index .Actor.Attributes \"execID\"}}",
    ]);
    let ids: Vec<&str> = ids.lines().collect();
    assert!(ids.len() >= 3, "{ids:?}");
    // The first probes ended long ago: the daemon no longer holds their execs.
    for id in &ids[..2] {
        let r = d.request("GET", &format!("/exec/{id}/json"), None);
        assert_eq!(r.status, 404, "{}", r.text());
    }
}
