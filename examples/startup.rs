//! Start-up benchmark: how long from exec to `READY=1` and to the first answered
//! `/_ping`, and the daemon's idle resident memory, over repeated cold starts with
//! empty state.
//!
//! `cargo run --release --example startup -- [--runs N] [--dockerd PATH]`

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let mut runs = 20;
    let mut bin = default_bin();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--dockerd" => bin = args.next().expect("--dockerd PATH"),
            _ => panic!("usage: startup [--runs N] [--dockerd PATH]"),
        }
    }
    let mut ready = Vec::new();
    let mut ping = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        let (r, p, m) = one_run(&bin);
        ready.push(r);
        ping.push(p);
        rss.push(m);
    }
    println!("dockerd start-up, {runs} cold starts with empty state ({bin})");
    report("exec → READY=1 (ms)", &mut ready);
    report("exec → first /_ping answered (ms)", &mut ping);
    report("idle RSS after start (MiB)", &mut rss);
}

fn default_bin() -> String {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/examples/startup → target/<profile>/dockerd
    exe.parent()
        .and_then(Path::parent)
        .unwrap()
        .join("dockerd")
        .display()
        .to_string()
}

fn one_run(bin: &str) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, "").unwrap();
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("--pidfile")
        .arg(dir.path().join("pid"))
        .arg("--config-file")
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 1024];
    let ready = loop {
        let n = notify.recv(&mut buf).expect("no READY=1 within 10s");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break t0.elapsed();
        }
    };
    let pinged = loop {
        if let Ok(mut s) = UnixStream::connect(&sock) {
            s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut resp = String::new();
            s.read_to_string(&mut resp).unwrap();
            assert!(resp.ends_with("OK"), "{resp}");
            break t0.elapsed();
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    (ms(ready), ms(pinged), rss_kib / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, v: &mut [f64]) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    println!(
        "  {what:<38} min {:>7.2}  median {:>7.2}  max {:>7.2}",
        v[0],
        median,
        v[v.len() - 1]
    );
}
