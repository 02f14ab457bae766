//! The Engine API's system endpoints through raw HTTP and the real docker CLI:
//! headers, version negotiation, `/_ping`, `/version`, `/info`, `/events`, and how
//! shutdown treats open connections.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn every_response_carries_dockers_headers() {
    let d = Daemon::start();
    for path in ["/_ping", "/v1.51/version", "/nope", "/v1.12/info"] {
        let r = d.request("GET", path, None);
        assert_eq!(r.header("Api-Version"), Some("1.51"), "{path}");
        assert_eq!(r.header("Ostype"), Some("linux"), "{path}");
        assert_eq!(r.header("Docker-Experimental"), Some("false"), "{path}");
        assert_eq!(
            r.header("Server"),
            Some(format!("Docker/{} (linux)", env!("CARGO_PKG_VERSION")).as_str()),
            "{path}"
        );
    }
}

#[test]
fn ping_get_and_head() {
    let d = Daemon::start();
    for (method, body) in [("GET", "OK"), ("HEAD", "")] {
        let r = d.request(method, "/_ping", None);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), body);
        assert_eq!(
            r.header("Cache-Control"),
            Some("no-cache, no-store, must-revalidate")
        );
        assert_eq!(r.header("Pragma"), Some("no-cache"));
        assert_eq!(r.header("Swarm"), Some("inactive"));
        assert!(r.header("Builder-Version").is_some());
    }
    assert_eq!(d.request("GET", "/v1.24/_ping", None).status, 200);
}

#[test]
fn unknown_route_is_page_not_found() {
    let d = Daemon::start();
    let r = d.request("GET", "/v1.51/no/such/route", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json()["message"], "page not found");
}

#[test]
fn version_negotiation_refuses_old_and_new_clients() {
    let d = Daemon::start();
    let r = d.request("GET", "/v1.12/containers/json", None);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
    );
    let r = d.request("GET", "/v1.99/info", None);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "client version 1.99 is too new. Maximum supported API version is 1.51"
    );

    // The CLI pinned to an old version shows the daemon's message.
    let out = d
        .docker_cmd(&["version"])
        .env("DOCKER_API_VERSION", "1.12")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client version 1.12 is too old"), "{err}");
    // An older supported version works.
    let out = d
        .docker_cmd(&["version", "--format", "{{.Server.APIVersion}}"])
        .env("DOCKER_API_VERSION", "1.40")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_version_shows_this_daemon() {
    let d = Daemon::start();
    let out = d.docker_ok(&["version", "--format", "{{json .Server}}"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["ApiVersion"], "1.51");
    assert_eq!(v["MinAPIVersion"], "1.24");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Components"][0]["Name"], "Engine");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(v["KernelVersion"], kernel.trim());
}

#[test]
fn docker_info_reports_real_values() {
    let d = Daemon::builder()
        .config(r#"{"labels": ["site=lab"], "live-restore": true}"#)
        .start();
    let out = d.docker_ok(&["info", "--format", "{{json .}}"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let engine_id = std::fs::read_to_string(d.data_root().join("engine-id")).unwrap();
    assert_eq!(v["ID"], engine_id.trim());
    assert_eq!(v["DockerRootDir"], d.data_root().display().to_string());
    assert_eq!(v["Containers"], 0);
    assert_eq!(v["Images"], 0);
    assert_eq!(v["OSType"], "linux");
    assert_eq!(v["LoggingDriver"], "json-file");
    assert_eq!(v["CgroupDriver"], "cgroupfs");
    assert!(v["CgroupVersion"] == "1" || v["CgroupVersion"] == "2");
    assert_eq!(v["Labels"], serde_json::json!(["site=lab"]));
    assert_eq!(v["LiveRestoreEnabled"], true);
    assert_eq!(v["ServerVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        v["NCPU"].as_u64().unwrap() as usize,
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(v["MemTotal"].as_u64().unwrap() > 0);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(v["Name"], hostname.trim());
    assert_eq!(v["DefaultRuntime"], "runc");
    assert!(v["Runtimes"]["runc"].is_object());
    assert!(v["SecurityOptions"].is_array());
    assert_eq!(v["Architecture"], std::env::consts::ARCH);
    // The ID stays the same across restarts.
    let text = d.docker_ok(&["info"]);
    assert!(
        text.contains(&format!("Docker Root Dir: {}", d.data_root().display())),
        "{text}"
    );
}

#[test]
fn docker_events_replays_a_window_and_follows_reloads() {
    let d = Daemon::start();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    d.signal(libc::SIGHUP);
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    std::thread::sleep(Duration::from_millis(1100));
    let out = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &now.to_string(),
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}}",
    ]);
    let engine_id = std::fs::read_to_string(d.data_root().join("engine-id")).unwrap();
    assert!(
        out.contains(&format!("daemon reload {}", engine_id.trim())),
        "events: {out:?}\n{}",
        d.log()
    );
    assert!(start.elapsed() < PATIENCE);

    // A filter that matches nothing gives nothing.
    let out = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &now.to_string(),
        "--filter",
        "type=image",
    ]);
    assert_eq!(out.trim(), "");

    // Live: a stream opened now sees the next reload.
    let mut child = d
        .docker_cmd(&[
            "events",
            "--filter",
            "type=daemon",
            "--format",
            "{{.Action}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Reload until the stream has certainly subscribed and seen one.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(Ok(l)) = lines.next() {
            let _ = tx.send(l);
        }
    });
    let got = loop {
        d.signal(libc::SIGHUP);
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            break l;
        }
        assert!(start.elapsed() < PATIENCE, "no live reload event");
    };
    assert_eq!(got, "reload");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn events_rejects_bad_parameters() {
    let d = Daemon::start();
    let r = d.request("GET", "/events?since=yesterday", None);
    assert_eq!(r.status, 400);
    let r = d.request(
        "GET",
        "/events?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D",
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "invalid filter 'colour'");
}

#[test]
fn shutdown_ends_event_streams_and_exits_cleanly() {
    let mut d = Daemon::start();
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(d.stop().code(), Some(0), "{}", d.log());
    assert!(!d.pidfile().exists());
}

#[test]
fn third_stop_signal_forces_exit() {
    let mut d = Daemon::builder()
        .config(r#"{"shutdown-timeout": 600}"#)
        .start();
    // A request whose head never completes keeps the connection busy during the drain.
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    d.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the drain should wait for the open request\n{}",
        d.log()
    );
    d.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(100));
    d.signal(libc::SIGTERM);
    let status = wait_timeout(&mut d.child, PATIENCE).expect("forced exit");
    d.stopped = Some(status);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{}", d.log());
    drop(s);
}
