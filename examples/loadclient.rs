//! A small HTTP load client for the Engine API over a unix socket: a fixed number of
//! keep-alive connections, each sending `GET PATH` back to back for a fixed time.
//! Prints requests per second. Used by `bench/compare.sh`.
//!
//! `cargo run --release --example loadclient -- SOCKET PATH [--connections N] [--seconds S]`

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let sock = args
        .next()
        .expect("usage: loadclient SOCKET PATH [--connections N] [--seconds S]");
    let path = args
        .next()
        .expect("usage: loadclient SOCKET PATH [--connections N] [--seconds S]");
    let mut conns = 8usize;
    let mut secs = 5.0f64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--connections" => {
                conns = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--connections N")
            }
            "--seconds" => {
                secs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds S")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let request = format!("GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: loadclient\r\n\r\n");
    let start = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (sock, request, stop, done, errors) = (
                sock.clone(),
                request.clone(),
                stop.clone(),
                done.clone(),
                errors.clone(),
            );
            std::thread::spawn(move || {
                let mut stream = UnixStream::connect(&sock).expect("connect");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                while !stop.load(Ordering::Relaxed) {
                    stream.write_all(request.as_bytes()).expect("write");
                    match read_response(&mut reader) {
                        Ok(200) => done.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{{\"path\":\"{path}\",\"connections\":{conns},\"seconds\":{elapsed:.3},\"requests\":{n},\"errors\":{},\"rps\":{:.1}}}",
        errors.load(Ordering::Relaxed),
        n as f64 / elapsed
    );
}

/// Reads one response, returning its status.
fn read_response<R: BufRead>(r: &mut R) -> std::io::Result<u16> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut buf = vec![0; n + 2];
            r.read_exact(&mut buf)?;
            if n == 0 {
                break;
            }
        }
    } else if let Some(n) = len {
        let mut buf = vec![0; n];
        r.read_exact(&mut buf)?;
    }
    Ok(status)
}
