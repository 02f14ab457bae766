//! A small HTTP load client: a fixed number of clients, each sending `GET PATH` and
//! waiting for the answer before the next one, for a fixed time. Prints requests per
//! second as JSON. Used by `bench/compare.sh`.
//!
//! TARGET is a unix socket path (the Engine API: keep-alive connections), or
//! `tcp://HOST:PORT` (a published port: one connection per request, as HTTP/1.0
//! clients of a server that closes each connection do).
//!
//! The client runs every connection on one thread (an event loop), so that it takes
//! as little of the machine as possible from the daemon it measures.
//!
//! `cargo run --release --example loadclient -- TARGET PATH [--connections N] [--seconds S]`

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: loadclient TARGET PATH [--connections N] [--seconds S]";
    let sock = args.next().expect(usage);
    let path = args.next().expect(usage);
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
            other => panic!("unknown argument {other}; {usage}"),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tcp = sock.strip_prefix("tcp://").map(str::to_string);
    let request = if tcp.is_some() {
        format!(
            "GET {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: loadclient\r\nConnection: close\r\n\r\n"
        )
    } else {
        format!("GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: loadclient\r\n\r\n")
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let (done, errors) = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (sock, request, tcp) = (sock.clone(), request.clone(), tcp.clone());
            tasks.push(tokio::spawn(async move {
                match tcp {
                    Some(addr) => one_per_request(&addr, request.as_bytes(), deadline).await,
                    None => connection(&sock, request.as_bytes(), deadline).await,
                }
            }));
        }
        let mut done = 0u64;
        let mut errors = 0u64;
        for t in tasks {
            let (d, e) = t.await.expect("connection task");
            done += d;
            errors += e;
        }
        (done, errors)
    });
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"path\":\"{path}\",\"connections\":{conns},\"seconds\":{elapsed:.3},\"requests\":{done},\"errors\":{errors},\"rps\":{:.1}}}",
        done as f64 / elapsed
    );
}

/// One keep-alive connection: request, full response, repeat until `deadline`.
async fn connection(sock: &str, request: &[u8], deadline: Instant) -> (u64, u64) {
    let mut s = UnixStream::connect(sock).await.expect("connect");
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let (mut done, mut errors) = (0, 0);
    while Instant::now() < deadline {
        s.write_all(request).await.expect("write");
        match read_response(&mut s, &mut buf).await {
            Some(200) => done += 1,
            Some(_) => errors += 1,
            None => return (done, errors + 1),
        }
    }
    (done, errors)
}

/// A new TCP connection for each request, until `deadline`.
async fn one_per_request(addr: &str, request: &[u8], deadline: Instant) -> (u64, u64) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let (mut done, mut errors) = (0, 0);
    while Instant::now() < deadline {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            errors += 1;
            continue;
        };
        let _ = s.set_nodelay(true);
        buf.clear();
        if s.write_all(request).await.is_err() {
            errors += 1;
            continue;
        }
        match read_response(&mut s, &mut buf).await {
            Some(200) => done += 1,
            _ => errors += 1,
        }
    }
    (done, errors)
}

/// Reads one response into `buf` (leftover bytes of the next one stay), returning its status.
async fn read_response<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> Option<u16> {
    loop {
        if let Some((status, len)) = parse(buf) {
            buf.drain(..len);
            return Some(status);
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A complete response at the start of `buf`: (status, total length).
fn parse(buf: &[u8]) -> Option<(u16, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut len = 0usize;
    let mut chunked = false;
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    if !chunked {
        return (buf.len() >= head_end + len).then_some((status, head_end + len));
    }
    let mut pos = head_end;
    loop {
        let line_end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
        let size = usize::from_str_radix(std::str::from_utf8(&buf[pos..line_end]).ok()?.trim(), 16)
            .ok()?;
        pos = line_end + 2 + size + 2;
        if buf.len() < pos {
            return None;
        }
        if size == 0 {
            return Some((status, pos));
        }
    }
}
