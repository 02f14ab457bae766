//! Registries: `docker push`, `docker pull`, `docker login` and the implicit pull
//! of `docker run`, through the real docker CLI, against the reference registry
//! server (Debian's `docker-registry`) in three setups — plain HTTP, TLS with a
//! test CA in certs.d plus htpasswd and client certificates, and bearer tokens
//! from a token issuer the test runs — and against a scripted registry for what a
//! real one will not do on demand (drop a connection, serve wrong bytes, serve
//! slowly, speak schema 1).
//!
//! Every registry listens inside the daemon's own network namespace: nothing
//! leaves the machine.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use sha2::Digest as _;

// ---- plumbing -----------------------------------------------------------------

/// Runs `f` on a thread inside the network namespace `netns` (sockets it makes
/// stay there).
fn in_ns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = std::fs::File::open(netns).unwrap();
    std::thread::spawn(move || {
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns: {}",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap()
}

fn sha256(data: &[u8]) -> String {
    let h = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn short(digest: &str) -> &str {
    &digest[7..19]
}

/// A plain HTTP/1.1 request to `addr` inside `netns`.
fn http_to(
    netns: &Path,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let a = addr.to_string();
    let mut s = in_ns(netns, move || TcpStream::connect(a)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut BufReader::new(s), method == "HEAD")
}

/// Polls until something accepts connections on `addr` in `netns`.
fn wait_listening(netns: &Path, addr: &str, log: &dyn Fn() -> String) {
    let start = Instant::now();
    loop {
        let a = addr.to_string();
        if in_ns(netns, move || TcpStream::connect(a)).is_ok() {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "nothing listens on {addr}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to completion, panicking with its stderr on failure.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn requirements() {
    require_tool(
        "docker-registry",
        "the reference registry server: apt-get install -y docker-registry",
    );
    require_tool("openssl", "apt-get install -y openssl");
    require_tool("htpasswd", "apt-get install -y apache2-utils");
}

// ---- the reference registry ------------------------------------------------------

/// Debian's `docker-registry` (distribution 2.8) serving from a test directory.
struct Registry {
    child: Child,
    /// `127.0.0.1:5000`.
    addr: String,
    netns: PathBuf,
    dir: PathBuf,
}

impl Registry {
    /// Starts a registry on `addr` in the daemon's namespace; `http_extra` goes
    /// under `http:` (TLS), `top_extra` at the top level (auth).
    fn start(d: &Daemon, name: &str, addr: &str, http_extra: &str, top_extra: &str) -> Registry {
        requirements();
        let dir = d.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{http_extra}{top_extra}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = d
            .host_cmd(
                "docker-registry",
                &["serve", dir.join("config.yml").to_str().unwrap()],
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let r = Registry {
            child,
            addr: addr.to_string(),
            netns: d.netns.clone(),
            dir,
        };
        wait_listening(&r.netns, addr, &|| r.log());
        r
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        http_to(&self.netns, &self.addr, method, path, headers, body)
    }

    /// Uploads a blob (monolithic: POST, then PUT with the digest).
    fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let r = self.req("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
        assert_eq!(r.status, 202, "{}", r.text());
        let loc = r.header("location").unwrap().to_string();
        let path = loc
            .split_once("://")
            .map(|(_, rest)| &rest[rest.find('/').unwrap()..])
            .unwrap_or(&loc)
            .to_string();
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = self.req(
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            data,
        );
        assert_eq!(r.status, 201, "{}", r.text());
        digest
    }

    fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
        let r = self.req(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body,
        );
        assert_eq!(r.status, 201, "{}", r.text());
        sha256(body)
    }

    fn tags(&self, repo: &str) -> Vec<String> {
        let r = self.req("GET", &format!("/v2/{repo}/tags/list"), &[], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    /// The digest the registry gives the manifest of `repo:tag`.
    fn manifest_digest(&self, repo: &str, tag: &str) -> String {
        let r = self.req(
            "HEAD",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            )],
            b"",
        );
        assert_eq!(r.status, 200);
        r.header("docker-content-digest").unwrap().to_string()
    }

    fn manifest(&self, repo: &str, reference: &str) -> Value {
        let r = self.req(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            )],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- images built by hand ----------------------------------------------------------

/// A layer tar holding `files` (path, content; directories made as needed).
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// An image config for `arch` over layers with these diff IDs.
fn config_json(arch: &str, diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": { "Cmd": cmd, "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": diff_ids.iter().map(|_| json!({"created": "2026-01-01T00:00:00Z"})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A manifest of `media_type` for a config and layers (media type, digest, size).
fn manifest_json(
    media_type: &str,
    config: (&str, usize),
    layers: &[(&str, String, usize)],
) -> Vec<u8> {
    let config_type = if media_type == OCI_MANIFEST {
        "application/vnd.oci.image.config.v1+json"
    } else {
        "application/vnd.docker.container.image.v1+json"
    };
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": { "mediaType": config_type, "digest": config.0, "size": config.1 },
        "layers": layers.iter().map(|(t, d, s)| json!({"mediaType": t, "digest": d, "size": s})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Directories a pull leaves behind when it does not clean up: unpacked layers
/// in temporary directories under data-root.
fn temp_entries(d: &Daemon) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["image", "image/layers", "image/tmp", "image/distribution"] {
        if let Ok(rd) = std::fs::read_dir(d.data_root().join(sub)) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(".tmp-") || (sub == "image/tmp") {
                    out.push(format!("{sub}/{n}"));
                }
            }
        }
    }
    out
}

fn image_ids(d: &Daemon) -> Vec<String> {
    d.docker_ok(&["images", "-aq", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect()
}

// ---- plain HTTP: push, pull, digests, mounts ---------------------------------------

#[test]
fn push_and_pull_round_trip_through_a_real_registry() {
    let d = Daemon::start();
    let reg = Registry::start(&d, "reg", "127.0.0.1:5000", "", "");
    d.docker_ok(&[
        "load",
        "-i",
        fixture("multilayer-docker20.tar").to_str().unwrap(),
    ]);
    d.docker_ok(&["tag", "fixture/multilayer:1", "localhost:5000/team/multi:1"]);

    // Push: every layer uploaded, the manifest digest printed.
    let out = d.docker_ok(&["push", "localhost:5000/team/multi:1"]);
    assert!(
        out.contains("The push refers to repository [localhost:5000/team/multi]"),
        "{out}"
    );
    for diff in MULTI_DIFF_IDS {
        assert!(out.contains(&format!("{}: Pushed", short(diff))), "{out}");
    }
    let printed = out
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .unwrap_or_else(|| panic!("no digest line: {out}"));
    let (digest, size) = printed.split_once(" size: ").unwrap();
    // The registry's own view: the tag, the manifest digest and its layers.
    assert_eq!(reg.tags("team/multi"), vec!["1"]);
    assert_eq!(reg.manifest_digest("team/multi", "1"), digest);
    let m = reg.manifest("team/multi", "1");
    assert_eq!(m["mediaType"], DOCKER_MANIFEST);
    assert_eq!(m["config"]["digest"], MULTI_ID);
    assert_eq!(m["layers"].as_array().unwrap().len(), 4);
    assert_eq!(size.parse::<usize>().unwrap(), {
        let r = reg.req(
            "GET",
            "/v2/team/multi/manifests/1",
            &[("Accept", DOCKER_MANIFEST)],
            b"",
        );
        r.body.len()
    });

    // Again: nothing is uploaded twice.
    let out = d.docker_ok(&["push", "localhost:5000/team/multi:1"]);
    assert_eq!(out.matches("Layer already exists").count(), 4, "{out}");
    assert!(out.contains(&format!("1: digest: {digest}")), "{out}");

    // Pull it back into an empty store: the same image ID, with its repo digest.
    d.docker_ok(&["rmi", "fixture/multilayer:1", "localhost:5000/team/multi:1"]);
    assert!(image_ids(&d).is_empty(), "{:?}", image_ids(&d));
    let out = d.docker_ok(&["pull", "localhost:5000/team/multi:1"]);
    assert!(out.contains("1: Pulling from team/multi"), "{out}");
    assert_eq!(out.matches("Pull complete").count(), 4, "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(
        out.contains("Status: Downloaded newer image for localhost:5000/team/multi:1"),
        "{out}"
    );
    let img = inspect(&d, "localhost:5000/team/multi:1");
    assert_eq!(img["Id"], MULTI_ID);
    assert_eq!(
        img["RepoDigests"],
        json!([format!("localhost:5000/team/multi@{digest}")])
    );
    let listed = d.docker_ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    assert!(
        listed.contains(&format!("localhost:5000/team/multi 1 {digest}")),
        "{listed}"
    );
    // Whiteouts and metadata survived the trip.
    let ran = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost:5000/team/multi:1",
    ]);
    assert_eq!(ran.trim(), "hello from /app as 65534");

    // Pulling again changes nothing, in Docker's three lines.
    let out = d.docker_ok(&["pull", "localhost:5000/team/multi:1"]);
    assert!(
        out.contains("Status: Image is up to date for localhost:5000/team/multi:1"),
        "{out}"
    );
    assert!(!out.contains("Pull complete"), "{out}");

    // By digest.
    let by_digest = format!("localhost:5000/team/multi@{digest}");
    let out = d.docker_ok(&["pull", &by_digest]);
    assert!(
        out.contains(&format!("Status: Image is up to date for {by_digest}")),
        "{out}"
    );

    // Another repository of the same registry: the layers are mounted, not sent.
    d.docker_ok(&[
        "tag",
        "localhost:5000/team/multi:1",
        "localhost:5000/other/copy:v2",
    ]);
    let out = d.docker_ok(&["push", "localhost:5000/other/copy:v2"]);
    assert_eq!(out.matches("Mounted from team/multi").count(), 4, "{out}");
    assert_eq!(reg.manifest_digest("other/copy", "v2"), digest);

    // The implicit pull of `docker run`.
    // (Untagging the last tag deletes the image with its digest references.)
    d.docker_ok(&[
        "rmi",
        "localhost:5000/other/copy:v2",
        "localhost:5000/team/multi:1",
    ]);
    assert!(image_ids(&d).is_empty(), "{:?}", image_ids(&d));
    let run = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost:5000/other/copy:v2",
    ]);
    assert!(run.status.success(), "{}", err(&run));
    assert_eq!(common::out(&run).trim(), "hello from /app as 65534");
    assert!(err(&run).contains("Unable to find image 'localhost:5000/other/copy:v2' locally"));

    // /distribution: the manifest's descriptor and its platform.
    let r = d.request(
        "GET",
        "/distribution/localhost:5000/other/copy:v2/json",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["Descriptor"]["digest"], digest);
    assert_eq!(v["Descriptor"]["mediaType"], DOCKER_MANIFEST);
    assert_eq!(v["Platforms"][0]["os"], "linux");

    // Pull and push events (`--until` counts in whole seconds).
    std::thread::sleep(Duration::from_millis(1100));
    let ev = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    assert!(ev.contains("push localhost:5000/team/multi:1"), "{ev}");
    assert!(ev.contains("pull localhost:5000/other/copy:v2"), "{ev}");
    assert!(temp_entries(&d).is_empty(), "{:?}", temp_entries(&d));
}

/// Pseudo-random bytes (xorshift): data deflate cannot shrink.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn pushed_layers_of_mixed_content_are_plain_gzip_and_pull_back() {
    // A layer mixing text with data that does not compress (stored, not
    // deflated, in the pushed blob): an independent gzip decoder must read the
    // registry's blob back to exactly the layer, and the image must pull back
    // with its ID.
    require_tool("gzip", "apt-get install gzip");
    let d = Daemon::start();
    let reg = Registry::start(&d, "reg", "127.0.0.1:5000", "", "");
    let text: Vec<u8> = (0..40_000)
        .flat_map(|i| format!("line {i} of a text file in the layer\n").into_bytes())
        .collect();
    let tar = layer_tar(&[
        ("data/a.txt", &text),
        ("data/noise.bin", &noise(700_000, 42)),
        ("data/b.txt", &text[..123_457]),
        ("data/tail.bin", &noise(70_001, 7)),
    ]);
    let path = d.path("mixed.tar");
    std::fs::write(&path, &tar).unwrap();
    d.docker_ok(&["import", path.to_str().unwrap(), "localhost:5000/mix/img:1"]);
    let id = inspect(&d, "localhost:5000/mix/img:1")["Id"].clone();
    let out = d.docker_ok(&["push", "localhost:5000/mix/img:1"]);
    assert_eq!(out.matches(": Pushed").count(), 1, "{out}");

    let m = reg.manifest("mix/img", "1");
    let blob = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let r = reg.req("GET", &format!("/v2/mix/img/blobs/{blob}"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256(&r.body), blob);
    assert_eq!(m["layers"][0]["size"], r.body.len());
    // Smaller than the tar (the text compressed), bigger than the noise alone.
    assert!(
        r.body.len() < tar.len() - text.len() / 2,
        "{} of {}",
        r.body.len(),
        tar.len()
    );
    assert!(r.body.len() > 770_001, "{}", r.body.len());
    let mut gz = Command::new("gzip")
        .args(["-d", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = gz.stdin.take().unwrap();
    let body = r.body.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&body));
    let unpacked = gz.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(unpacked.status.success());
    assert!(
        unpacked.stdout == tar,
        "gzip -d gives other bytes than the layer"
    );

    d.docker_ok(&["rmi", "localhost:5000/mix/img:1"]);
    let out = d.docker_ok(&["pull", "localhost:5000/mix/img:1"]);
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(inspect(&d, "localhost:5000/mix/img:1")["Id"], id);
}

#[test]
fn a_manifest_cannot_pass_other_blobs_off_as_known_layers() {
    // The multilayer image is pushed to team/multi (its blobs verified). Another
    // repository publishes a manifest with the same layers (so a pull finds them
    // all present) but other blobs under them. Pulling it must not teach the
    // daemon that those blobs are the layers: a later push still mounts the real
    // ones.
    let d = Daemon::start();
    let reg = Registry::start(&d, "reg", "127.0.0.1:5000", "", "");
    d.docker_ok(&[
        "load",
        "-i",
        fixture("multilayer-docker20.tar").to_str().unwrap(),
    ]);
    d.docker_ok(&["tag", "fixture/multilayer:1", "localhost:5000/team/multi:1"]);
    d.docker_ok(&["push", "localhost:5000/team/multi:1"]);
    let real: Vec<Value> = reg.manifest("team/multi", "1")["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();

    let diff_ids: Vec<String> = MULTI_DIFF_IDS.iter().map(|s| s.to_string()).collect();
    let gz_layer = "application/vnd.oci.image.layer.v1.tar+gzip";
    let fakes: Vec<(&str, String, usize)> = (0..4)
        .map(|i| {
            let blob = gzip(&layer_tar(&[("planted", format!("{i}").as_bytes())]));
            (gz_layer, reg.put_blob("evil/img", &blob), blob.len())
        })
        .collect();
    let config = config_json(host_arch(), &diff_ids, &["sh"]);
    put_image(&reg, "evil/img", Some("1"), &config, &fakes);
    let out = d.docker_ok(&["pull", "localhost:5000/evil/img:1"]);
    assert_eq!(out.matches("Already exists").count(), 4, "{out}");

    d.docker_ok(&[
        "tag",
        "localhost:5000/evil/img:1",
        "localhost:5000/corp/app:1",
    ]);
    let out = d.docker_ok(&["push", "localhost:5000/corp/app:1"]);
    assert!(!out.contains("evil/img"), "{out}");
    let pushed: Vec<Value> = reg.manifest("corp/app", "1")["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(pushed, real);
}

#[test]
fn registry_errors_read_as_dockers() {
    let d = Daemon::start();
    let _reg = Registry::start(&d, "reg", "127.0.0.1:5000", "", "");
    d.import_busybox("localhost:5000/bb:1");

    let o = d.docker(&["pull", "localhost:5000/bb:nope"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(
            "manifest for localhost:5000/bb:nope not found: manifest unknown: manifest unknown"
        ),
        "{}",
        err(&o)
    );
    let r = d.request(
        "POST",
        "/images/create?fromImage=localhost%3A5000%2Fbb&tag=nope",
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text());

    // Nothing listens: an answer within seconds, in Go's words.
    let start = Instant::now();
    let o = d.docker(&["pull", "localhost:5999/bb:1"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("connect: connection refused"),
        "{}",
        err(&o)
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );

    let o = d.docker(&["push", "localhost:5000/nothing:1"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("An image does not exist locally with the tag: localhost:5000/nothing"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["push", "localhost:5000/bb:2"]);
    assert!(
        err(&o).contains("tag does not exist: localhost:5000/bb:2"),
        "{}",
        err(&o)
    );

    let o = d.docker(&["pull", "scratch"]);
    assert!(
        err(&o).contains("'scratch' is a reserved name"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["search", "busybox"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("not supported"), "{}", err(&o));
}

// ---- what registries hold: indexes, OCI, zstd, hostile layers -----------------------

/// Uploads an image for `arch` with `layers` (media type, tar, blob), its
/// manifest tagged `tag` or, with none, by digest; returns the manifest's
/// (digest, size).
fn upload_image(
    reg: &Registry,
    repo: &str,
    tag: Option<&str>,
    arch: &str,
    layers: &[(&str, Vec<u8>, Vec<u8>)],
) -> (String, usize) {
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for (media, plain, blob) in layers {
        diff_ids.push(sha256(plain));
        let d = reg.put_blob(repo, blob);
        descs.push((*media, d, blob.len()));
    }
    let config = config_json(arch, &diff_ids, &["cat", "/platform"]);
    put_image(reg, repo, tag, &config, &descs)
}

/// Uploads `config` and an OCI manifest of it and `layers` (media type, digest,
/// size: blobs already there) under `tag` or its digest; returns the manifest's
/// (digest, size).
fn put_image(
    reg: &Registry,
    repo: &str,
    tag: Option<&str>,
    config: &[u8],
    layers: &[(&str, String, usize)],
) -> (String, usize) {
    let cd = reg.put_blob(repo, config);
    let m = manifest_json(OCI_MANIFEST, (&cd, config.len()), layers);
    let md = reg.put_manifest(repo, tag.unwrap_or(&sha256(&m)), OCI_MANIFEST, &m);
    (md, m.len())
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn an_index_yields_this_platform_and_layers_may_be_zstd_or_plain() {
    let d = Daemon::start();
    let reg = Registry::start(&d, "reg", "127.0.0.1:5000", "", "");
    d.import_busybox("base");
    let here = host_arch();
    let other = if here == "amd64" { "arm64" } else { "amd64" };
    // This platform's image: busybox (gzip, pushed by the daemon), then a zstd layer
    // and an uncompressed one; the other platform's differs in its last layer.
    d.docker_ok(&["tag", "base", "localhost:5000/multi/base:1"]);
    d.docker_ok(&["push", "localhost:5000/multi/base:1"]);
    let base = reg.manifest("multi/base", "1");
    let base_layer = base["layers"][0]["digest"].as_str().unwrap().to_string();
    let base_blob = reg
        .req(
            "GET",
            &format!("/v2/multi/base/blobs/{base_layer}"),
            &[],
            b"",
        )
        .body;
    let base_plain = {
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(&base_blob[..])
            .read_to_end(&mut v)
            .unwrap();
        v
    };
    let platform_file = |name: &str| layer_tar(&[("platform", format!("{name}\n").as_bytes())]);
    let extra = layer_tar(&[("etc/extra", b"plain layer\n")]);
    let mine = upload_image(
        &reg,
        "multi/app",
        None,
        here,
        &[
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                base_plain.clone(),
                base_blob.clone(),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                platform_file(here),
                zstd(&platform_file(here)),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar",
                extra.clone(),
                extra.clone(),
            ),
        ],
    );
    let theirs = upload_image(
        &reg,
        "multi/app",
        None,
        other,
        &[
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                base_plain,
                base_blob,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                platform_file(other),
                gzip(&platform_file(other)),
            ),
        ],
    );
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            { "mediaType": OCI_MANIFEST, "digest": theirs.0, "size": theirs.1, "platform": { "architecture": other, "os": "linux" } },
            { "mediaType": OCI_MANIFEST, "digest": mine.0, "size": mine.1, "platform": { "architecture": here, "os": "linux" } },
        ],
    }))
    .unwrap();
    let index_digest = reg.put_manifest("multi/app", "latest", OCI_INDEX, &index);

    let out = d.docker_ok(&["pull", "localhost:5000/multi/app"]);
    // The base layer is already here: only two are fetched.
    assert_eq!(out.matches("Already exists").count(), 1, "{out}");
    assert_eq!(out.matches("Pull complete").count(), 2, "{out}");
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let ran = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost:5000/multi/app",
    ]);
    assert_eq!(ran.trim(), here);
    let ran = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost:5000/multi/app",
        "cat",
        "/etc/extra",
    ]);
    assert_eq!(ran.trim(), "plain layer");
    let img = inspect(&d, "localhost:5000/multi/app");
    assert_eq!(img["Architecture"], here);
    assert_eq!(
        img["RepoDigests"],
        json!([format!("localhost:5000/multi/app@{index_digest}")])
    );

    // Another platform on request.
    let out = d.docker_ok(&[
        "pull",
        "--platform",
        &format!("linux/{other}"),
        "localhost:5000/multi/app",
    ]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        inspect(&d, "localhost:5000/multi/app")["Architecture"],
        other
    );
    let o = d.docker(&[
        "pull",
        "--platform",
        "linux/s390x",
        "localhost:5000/multi/app",
    ]);
    assert!(
        err(&o).contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{}",
        err(&o)
    );

    // /distribution lists the index's platforms.
    let r = d.request("GET", "/distribution/localhost:5000/multi/app/json", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["Descriptor"]["mediaType"], OCI_INDEX);
    assert_eq!(v["Descriptor"]["digest"], index_digest);
    let archs: Vec<&str> = v["Platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, vec![other, here]);

    // A layer pulled as zstd is pushed elsewhere as the same blob, under its media type.
    d.docker_ok(&["pull", "localhost:5000/multi/app"]);
    d.docker_ok(&[
        "tag",
        "localhost:5000/multi/app",
        "localhost:5000/copy/app:1",
    ]);
    let out = d.docker_ok(&["push", "localhost:5000/copy/app:1"]);
    assert_eq!(out.matches("Mounted from multi/").count(), 3, "{out}");
    let m = reg.manifest("copy/app", "1");
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    assert_eq!(
        m["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(
        m["layers"][1]["digest"],
        reg.manifest("multi/app", &mine.0)["layers"][1]["digest"]
    );
}

/// A tar entry with any name (the tar crate refuses hostile ones).
fn raw_entry(name: &str, kind: u8, data: &[u8], link: &str) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[test]
fn hostile_layers_and_manifests_are_refused_and_leave_nothing() {
    let d = Daemon::start();
    let reg = Registry::start(&d, "reg", "127.0.0.1:5000", "", "");
    let victim = d.path("victim");
    std::fs::create_dir(&victim).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            [
                raw_entry("../../../../escaped", b'0', b"x", ""),
                vec![0; 1024],
            ]
            .concat(),
            "climbs above the layer root",
        ),
        (
            "symlink-parent",
            [
                raw_entry("link", b'2', b"", victim.to_str().unwrap()),
                raw_entry("link/planted", b'0', b"x", ""),
                vec![0; 1024],
            ]
            .concat(),
            "runs through the symlink link",
        ),
    ];
    for (name, tar, what) in &cases {
        let repo = format!("hostile/{name}");
        let layer = (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            tar.clone(),
            gzip(tar),
        );
        upload_image(&reg, &repo, Some("1"), host_arch(), &[layer]);
        let o = d.docker(&["pull", &format!("localhost:5000/{repo}:1")]);
        assert!(!o.status.success(), "{name}: {}", common::out(&o));
        assert!(
            common::out(&o).contains(what) || err(&o).contains(what),
            "{name}: {}{}",
            common::out(&o),
            err(&o)
        );
    }
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        0,
        "something was planted"
    );
    assert!(!d.path("escaped").exists() && !Path::new("/escaped").exists());
    assert!(image_ids(&d).is_empty(), "{:?}", image_ids(&d));
    wait_for("temporary layer directories to go", &d, || {
        temp_entries(&d).is_empty()
    });

    // A layer whose bytes are not its digest; a config whose layers are not the
    // manifest's; an image config of another operating system.
    let good = layer_tar(&[("f", b"data")]);
    let blob = gzip(&good);
    let wrong = reg.put_blob("hostile/mismatch", &gzip(&layer_tar(&[("f", b"other")])));
    let config = config_json(host_arch(), &[sha256(&good)], &["true"]);
    let gz_layer = "application/vnd.oci.image.layer.v1.tar+gzip";
    put_image(
        &reg,
        "hostile/mismatch",
        Some("1"),
        &config,
        &[(gz_layer, wrong, blob.len())],
    );
    let o = d.docker(&["pull", "localhost:5000/hostile/mismatch:1"]);
    assert!(!o.status.success());
    let all = format!("{}{}", common::out(&o), err(&o));
    assert!(
        all.contains("layers from manifest don't match image configuration")
            || all.contains("verification failed"),
        "{all}"
    );

    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "windows",
        "rootfs": { "type": "layers", "diff_ids": [sha256(&good)] },
    }))
    .unwrap();
    let ld = reg.put_blob("hostile/windows", &blob);
    put_image(
        &reg,
        "hostile/windows",
        Some("1"),
        &config,
        &[(gz_layer, ld, blob.len())],
    );
    let o = d.docker(&["pull", "localhost:5000/hostile/windows:1"]);
    assert!(
        format!("{}{}", common::out(&o), err(&o))
            .contains("image operating system \"windows\" cannot be used on this platform"),
        "{}{}",
        common::out(&o),
        err(&o)
    );
    assert!(image_ids(&d).is_empty(), "{:?}", image_ids(&d));
    wait_for("temporary layer directories to go", &d, || {
        temp_entries(&d).is_empty()
    });
}

// ---- a scripted registry: what a real one will not do on demand ----------------------

/// One request the scripted registry received.
struct FakeReq {
    method: String,
    path: String,
    /// Header lines, as sent.
    headers: Vec<String>,
}

/// What the scripted registry does with a blob request: `true` when the hook
/// answered (the connection then closes), `false` to serve the blob as it is.
type BlobHook = dyn Fn(&FakeReq, &[u8], &mut TcpStream) -> bool + Send + Sync;

/// A registry served by the test: an image (manifest under one or more tags, its
/// config and layers) and a hook that may take over blob requests.
struct Fake {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    netns: PathBuf,
}

struct FakeContent {
    /// tag or digest → (media type, manifest).
    manifests: Vec<(String, String, Vec<u8>)>,
    blobs: Vec<(String, Vec<u8>)>,
    /// `WWW-Authenticate` of a `/v2/` request without credentials (else 200).
    challenge: Option<String>,
}

impl Fake {
    fn start(d: &Daemon, content: FakeContent, hook: Arc<BlobHook>) -> Fake {
        let listener = in_ns(&d.netns, || TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let content = Arc::new(content);
        {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (requests, content, hook) =
                        (requests.clone(), content.clone(), hook.clone());
                    std::thread::spawn(move || serve_fake(conn, &requests, &content, &*hook));
                }
            });
        }
        Fake {
            addr,
            requests,
            stop,
            netns: d.netns.clone(),
        }
    }

    fn count(&self, needle: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(needle))
            .count()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let a = self.addr.clone();
        let _ = in_ns(&self.netns, move || TcpStream::connect(a));
    }
}

fn respond(
    s: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut h = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    s.write_all(h.as_bytes())?;
    s.write_all(body)
}

/// Serves requests on one connection until it closes (keep-alive).
fn serve_fake(
    conn: TcpStream,
    requests: &Mutex<Vec<String>>,
    content: &FakeContent,
    hook: &BlobHook,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut s = conn;
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            return; // a TLS hello, or garbage
        };
        let mut req = FakeReq {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
        };
        loop {
            let mut h = String::new();
            if std::io::BufRead::read_line(&mut reader, &mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
            req.headers.push(h.trim_end().to_string());
        }
        let authorized = req
            .headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("authorization:"));
        requests.lock().unwrap().push(format!(
            "{} {}{}",
            req.method,
            req.path,
            if authorized { " (authorized)" } else { "" }
        ));
        let head = req.method == "HEAD";
        let ok = if req.path == "/v2/"
            && !authorized
            && let Some(c) = &content.challenge
        {
            respond(
                &mut s,
                "401 Unauthorized",
                &[("WWW-Authenticate", c)],
                b"{}",
            )
        } else if req.path == "/v2/" {
            respond(
                &mut s,
                "200 OK",
                &[("Content-Type", "application/json")],
                b"{}",
            )
        } else if let Some(m) = content
            .manifests
            .iter()
            .find(|(r, _, _)| req.path.ends_with(&format!("/manifests/{r}")))
        {
            let digest = sha256(&m.2);
            let body: &[u8] = if head { b"" } else { &m.2 };
            respond(
                &mut s,
                "200 OK",
                &[("Content-Type", &m.1), ("Docker-Content-Digest", &digest)],
                body,
            )
        } else if let Some(b) = content
            .blobs
            .iter()
            .find(|(d, _)| req.path.ends_with(&format!("/blobs/{d}")))
        {
            if hook(&req, &b.1, &mut s) {
                return;
            }
            respond(
                &mut s,
                "200 OK",
                &[("Content-Type", "application/octet-stream")],
                &b.1,
            )
        } else {
            respond(
                &mut s,
                "404 Not Found",
                &[("Content-Type", "application/json")],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            )
        };
        if ok.is_err() {
            return;
        }
    }
}

/// Sends `data` as a blob response `chunk` bytes at a time, pausing `pause`
/// between chunks and counting what went out; false when the client went away.
fn trickle(
    s: &mut TcpStream,
    data: &[u8],
    chunk: usize,
    pause: Duration,
    sent: &AtomicUsize,
) -> bool {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
        data.len()
    );
    if s.write_all(head.as_bytes()).is_err() {
        return false;
    }
    for c in data.chunks(chunk) {
        if s.write_all(c).is_err() {
            return false;
        }
        sent.fetch_add(c.len(), Ordering::SeqCst);
        std::thread::sleep(pause);
    }
    true
}

/// An image for the scripted registry: one gzip layer of `size` pseudo-random
/// bytes (incompressible), tagged `tags`; returns it with the layer's digest.
fn fake_image(size: usize, tags: &[&str], seed: u8) -> (FakeContent, String) {
    let mut data = vec![0u8; size];
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let tar = layer_tar(&[("blob.bin", &data)]);
    let blob = gzip(&tar);
    let layer = sha256(&blob);
    let mut manifests = Vec::new();
    let mut blobs = vec![(layer.clone(), blob.clone())];
    for (i, tag) in tags.iter().enumerate() {
        // Each tag its own config (and image), all sharing the layer.
        let config = config_json(host_arch(), &[sha256(&tar)], &["tag", tag, &i.to_string()]);
        let cd = sha256(&config);
        let m = manifest_json(
            DOCKER_MANIFEST,
            (&cd, config.len()),
            &[(
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                layer.clone(),
                blob.len(),
            )],
        );
        manifests.push((tag.to_string(), DOCKER_MANIFEST.to_string(), m));
        blobs.push((cd, config));
    }
    (
        FakeContent {
            manifests,
            blobs,
            challenge: None,
        },
        layer,
    )
}

/// A server in the daemon's namespace that answers every request with `status`
/// and `headers`, and keeps each request's head.
fn recording_server(
    d: &Daemon,
    status: &'static str,
    headers: Vec<(String, String)>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = in_ns(&d.netns, || TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0
                    || line == "\r\n"
                {
                    break;
                }
                head.push_str(&line);
            }
            log.lock().unwrap().push(head);
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let _ = respond(&mut conn, status, &h, b"{}");
        }
    });
    (addr, seen)
}

#[test]
fn credentials_go_to_the_registry_only() {
    // The registry asks for Basic credentials and redirects the layer to a
    // storage host; that host answers with a challenge naming a token service of
    // its own. Neither may see the user's credentials.
    let d = Daemon::start();
    let (tokens, token_requests) = recording_server(&d, "500 Internal Server Error", vec![]);
    let (storage, storage_requests) = recording_server(
        &d,
        "401 Unauthorized",
        vec![(
            "WWW-Authenticate".into(),
            format!("Bearer realm=\"http://{tokens}/token\",service=\"storage\""),
        )],
    );
    let (mut content, layer) = fake_image(64 << 10, &["1"], 9);
    content.challenge = Some("Basic realm=\"fake\"".into());
    let hook: Arc<BlobHook> = {
        let (layer, storage) = (layer.clone(), storage.clone());
        Arc::new(move |req: &FakeReq, _: &[u8], s: &mut TcpStream| {
            if !req.path.ends_with(&layer) {
                return false;
            }
            let to = format!("http://{storage}/blobs/{layer}");
            let _ = respond(s, "307 Temporary Redirect", &[("Location", &to)], b"");
            true
        })
    };
    let fake = Fake::start(&d, content, hook);
    let out = d.docker_ok(&["login", &fake.addr, "-u", "alice", "-p", "s3cret"]);
    assert!(out.contains("Login Succeeded"), "{out}");

    let o = d.docker(&["pull", &format!("{}/private/img:1", fake.addr)]);
    assert!(!o.status.success(), "{}", common::out(&o));
    // The registry got the credentials with each request after its challenge...
    assert!(
        fake.count("/manifests/1 (authorized)") >= 1,
        "{:?}",
        fake.requests.lock().unwrap()
    );
    // ...the storage host got the request without them, and its token service
    // never heard from the daemon.
    let seen = storage_requests.lock().unwrap().clone();
    assert!(
        !seen.is_empty(),
        "the layer was never requested from storage"
    );
    for head in &seen {
        assert!(
            !head.to_ascii_lowercase().contains("authorization:"),
            "{head}"
        );
    }
    assert!(
        token_requests.lock().unwrap().is_empty(),
        "{:?}",
        token_requests.lock().unwrap()
    );
}

#[test]
fn an_expired_token_is_replaced_mid_pull() {
    // Tokens t1, t2, … from a token service; the registry takes t1 for the
    // manifest, then says it expired when the layer is asked for with it.
    let d = Daemon::start();
    let listener = in_ns(&d.netns, || TcpListener::bind("127.0.0.1:0")).unwrap();
    let tokens = listener.local_addr().unwrap().to_string();
    let issued = Arc::new(AtomicUsize::new(0));
    {
        let issued = issued.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0
                        || line == "\r\n"
                    {
                        break;
                    }
                }
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                let body = format!(r#"{{"token":"t{n}","expires_in":300}}"#);
                let _ = respond(
                    &mut conn,
                    "200 OK",
                    &[
                        ("Content-Type", "application/json"),
                        ("Connection", "close"),
                    ],
                    body.as_bytes(),
                );
            }
        });
    }
    let challenge = format!("Bearer realm=\"http://{tokens}/token\",service=\"fake\"");
    let (mut content, layer) = fake_image(64 << 10, &["1"], 10);
    content.challenge = Some(challenge.clone());
    let hook: Arc<BlobHook> = {
        let layer = layer.clone();
        Arc::new(move |req: &FakeReq, _: &[u8], s: &mut TcpStream| {
            let stale = req
                .headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case("authorization: Bearer t1"));
            if !req.path.ends_with(&layer) || !stale {
                return false;
            }
            let expired = format!("{challenge},error=\"invalid_token\"");
            let _ = respond(
                s,
                "401 Unauthorized",
                &[("WWW-Authenticate", &expired)],
                b"{}",
            );
            true
        })
    };
    let fake = Fake::start(&d, content, hook);
    let out = d.docker_ok(&["pull", &format!("{}/private/img:1", fake.addr)]);
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "{:?}",
        fake.requests.lock().unwrap()
    );
    assert_eq!(fake.count(&format!("/blobs/{layer} (authorized)")), 2);
}

#[test]
fn a_dropped_connection_is_retried_and_the_pull_completes() {
    let d = Daemon::start();
    let (content, layer) = fake_image(3 << 20, &["1"], 1);
    let attempts = Arc::new(AtomicUsize::new(0));
    let hook: Arc<BlobHook> = {
        let (attempts, layer) = (attempts.clone(), layer.clone());
        Arc::new(move |req, data, s| {
            if !req.path.ends_with(&layer) || attempts.fetch_add(1, Ordering::SeqCst) > 0 {
                return false;
            }
            // The first time: half the layer, then the connection drops.
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", data.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&data[..data.len() / 2]);
            let _ = s.shutdown(std::net::Shutdown::Both);
            true
        })
    };
    let fake = Fake::start(&d, content, hook);
    let name = format!("{}/drop/me:1", fake.addr);
    let out = d.docker_ok(&["pull", &name]);
    assert!(out.contains("Retrying in 5 seconds"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(
        inspect(&d, &name)["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(temp_entries(&d).is_empty(), "{:?}", temp_entries(&d));
}

/// A scripted registry whose layer `layer` trickles out (64 KiB every `pause`),
/// counting the bytes sent and noticing a client that leaves.
fn slow_registry(
    d: &Daemon,
    content: FakeContent,
    layer: &str,
    pause: Duration,
) -> (Fake, Arc<AtomicUsize>, Arc<AtomicBool>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let gone = Arc::new(AtomicBool::new(false));
    let hook: Arc<BlobHook> = {
        let (sent, gone, layer) = (sent.clone(), gone.clone(), layer.to_string());
        Arc::new(move |req, data, s| {
            if !req.path.ends_with(&layer) || req.method != "GET" {
                return false;
            }
            if !trickle(s, data, 64 << 10, pause, &sent) {
                gone.store(true, Ordering::SeqCst);
            }
            true
        })
    };
    (Fake::start(d, content, hook), sent, gone)
}

#[test]
fn two_pulls_of_one_layer_download_it_once() {
    let d = Daemon::start();
    let (content, layer) = fake_image(2 << 20, &["a", "b"], 2);
    let (fake, _, _) = slow_registry(&d, content, &layer, Duration::from_millis(40));
    let a = format!("{}/shared/img:a", fake.addr);
    let b = format!("{}/shared/img:b", fake.addr);
    let first = d
        .docker_cmd(&["pull", &a])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The second starts while the first is downloading.
    wait_for("the first download to start", &d, || {
        fake.count(&format!("GET /v2/shared/img/blobs/{layer}")) == 1
    });
    let second = d.docker(&["pull", &b]);
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", err(&first));
    assert!(second.status.success(), "{}", err(&second));
    assert!(
        common::out(&second).contains("Pull complete"),
        "{}",
        common::out(&second)
    );
    assert_eq!(
        fake.count(&format!("GET /v2/shared/img/blobs/{layer}")),
        1,
        "{:?}",
        fake.requests.lock().unwrap()
    );
    assert_ne!(inspect(&d, &a)["Id"], inspect(&d, &b)["Id"]);
    assert_eq!(inspect(&d, &a)["RootFS"], inspect(&d, &b)["RootFS"]);
    assert!(temp_entries(&d).is_empty(), "{:?}", temp_entries(&d));
}

/// A slow registry serving one 8 MiB layer, and a `docker pull` of it under way:
/// part of the layer has arrived. Returns the registry, its byte count, its
/// "client gone" flag, and the CLI.
fn slow_pull_under_way(d: &Daemon, seed: u8) -> (Fake, Arc<AtomicUsize>, Arc<AtomicBool>, Child) {
    let (content, layer) = fake_image(8 << 20, &["1"], seed);
    let (fake, sent, gone) = slow_registry(d, content, &layer, Duration::from_millis(50));
    let name = format!("{}/slow/img:1", fake.addr);
    let cli = d
        .docker_cmd(&["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("part of the layer to arrive", d, || {
        sent.load(Ordering::SeqCst) > 512 << 10
    });
    (fake, sent, gone, cli)
}

#[test]
fn a_cancelled_pull_stops_and_leaves_nothing() {
    let d = Daemon::start();
    let (_fake, sent, gone, mut cli) = slow_pull_under_way(&d, 3);
    assert!(
        !temp_entries(&d).is_empty(),
        "the layer should be unpacking into a temporary directory"
    );
    // Ctrl-C: the client goes away; the daemon stops downloading.
    cli.kill().unwrap();
    cli.wait().unwrap();
    wait_for("the daemon to drop the download", &d, || {
        gone.load(Ordering::SeqCst)
    });
    assert!(sent.load(Ordering::SeqCst) < 8 << 20);
    wait_for("the temporary layer to be removed", &d, || {
        temp_entries(&d).is_empty()
    });
    assert!(image_ids(&d).is_empty(), "{:?}", image_ids(&d));
}

#[test]
fn a_daemon_killed_mid_pull_leaves_nothing_after_restart() {
    let mut d = Daemon::start();
    let (fake, _, _, mut cli) = slow_pull_under_way(&d, 4);
    assert!(!temp_entries(&d).is_empty());
    d.signal(libc::SIGKILL);
    let status = d.child.wait().unwrap();
    d.stopped = Some(status);
    // The CLI sees its connection end.
    assert!(!cli.wait().unwrap().success());
    let d = d.restart();
    assert!(temp_entries(&d).is_empty(), "{:?}", temp_entries(&d));
    assert!(image_ids(&d).is_empty(), "{:?}", image_ids(&d));
    drop(fake);
}

#[test]
fn wrong_bytes_and_schema1_are_refused() {
    let d = Daemon::start();
    let (mut content, layer) = fake_image(1 << 20, &["1"], 5);
    // The layer's bytes changed under its digest (same length).
    for (dg, b) in content.blobs.iter_mut() {
        if *dg == layer {
            let n = b.len();
            b[n / 2] ^= 0xff;
        }
    }
    let schema1 = br#"{"schemaVersion":1,"name":"old/img","tag":"1","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]}"#;
    content.manifests.push((
        "old".into(),
        "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
        schema1.to_vec(),
    ));
    let fake = Fake::start(
        &d,
        content,
        Arc::new(|_: &FakeReq, _: &[u8], _: &mut TcpStream| false),
    );
    let o = d.docker(&["pull", &format!("{}/bad/img:1", fake.addr)]);
    assert!(!o.status.success());
    let all = format!("{}{}", common::out(&o), err(&o));
    assert!(
        all.contains(&format!(
            "filesystem layer verification failed for digest {layer}"
        )),
        "{all}"
    );
    // Verification failures are not retried.
    assert_eq!(fake.count(&format!("GET /v2/bad/img/blobs/{layer}")), 1);
    assert!(image_ids(&d).is_empty(), "{:?}", image_ids(&d));
    wait_for("the temporary layer to be removed", &d, || {
        temp_entries(&d).is_empty()
    });

    let o = d.docker(&["pull", &format!("{}/bad/img:old", fake.addr)]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Docker Image manifest version 2, schema 1 support has been removed"),
        "{}",
        err(&o)
    );
}

// ---- TLS, certs.d, htpasswd ----------------------------------------------------------

/// Gives the daemon's namespace another loopback address (a "remote" registry
/// host: loopback registries are insecure by Docker's rules, this one is not).
fn add_address(d: &Daemon, ip: &str) {
    run_ok(&mut d.host_cmd("ip", &["addr", "add", &format!("{ip}/32"), "dev", "lo"]));
}

/// A CA, and certificates it signed: one for a server at `ip`, one for a client.
fn make_pki(dir: &Path, ip: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let ossl = |args: &[&str]| {
        run_ok(Command::new("openssl").args(args).current_dir(dir));
    };
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=dockerd test CA",
    ]);
    for (name, ext) in [
        (
            "server",
            format!(
                "subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
        ),
        (
            "client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n".to_string(),
        ),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        ossl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        ossl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
}

#[test]
fn tls_with_certs_d_client_certificates_and_basic_auth() {
    requirements();
    let d = Daemon::start();
    let ip = "10.77.0.1";
    let host = format!("{ip}:5443");
    add_address(&d, ip);
    let pki = d.path("pki");
    make_pki(&pki, ip);
    let htpasswd = run_ok(Command::new("htpasswd").args(["-Bbn", "alice", "s3cret"]));
    std::fs::write(pki.join("htpasswd"), htpasswd).unwrap();
    let p = |f: &str| pki.join(f).display().to_string();
    let _reg = Registry::start(
        &d,
        "reg",
        &host,
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
            p("server.crt"),
            p("server.key"),
            p("ca.crt")
        ),
        &format!(
            "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
            p("htpasswd")
        ),
    );
    let name = format!("{host}/secure/bb:1");
    d.import_busybox(&name);

    // No CA: the server's certificate is not trusted.
    let o = d.docker(&["push", &name]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("certificate signed by unknown authority"),
        "{}",
        err(&o)
    );

    // The CA in certs.d, but no client certificate: the server refuses the handshake.
    let certs = d.path("certs.d").join(&host);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(pki.join("ca.crt"), certs.join("ca.crt")).unwrap();
    let o = d.docker(&["push", &name]);
    assert!(!o.status.success());
    assert!(!err(&o).contains("unknown authority"), "{}", err(&o));

    // A client certificate: TLS works, and the registry asks for a password.
    std::fs::copy(pki.join("client.crt"), certs.join("client.cert")).unwrap();
    std::fs::copy(pki.join("client.key"), certs.join("client.key")).unwrap();
    let o = d.docker(&["push", &name]);
    assert!(!o.status.success());
    assert!(err(&o).contains("no basic auth credentials"), "{}", err(&o));

    // docker login checks the password.
    let o = d.docker(&["login", &host, "-u", "alice", "-p", "wrong"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!(
            "login attempt to https://{host}/v2/ failed with status: 401 Unauthorized"
        )),
        "{}",
        err(&o)
    );
    let mut login = d.docker_cmd(&["login", &host, "-u", "alice", "--password-stdin"]);
    let mut child = login
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        common::out(&o).contains("Login Succeeded"),
        "{}",
        common::out(&o)
    );

    let out = d.docker_ok(&["push", &name]);
    assert!(out.contains("Pushed"), "{out}");
    d.docker_ok(&["rmi", &name]);
    let out = d.docker_ok(&["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    d.docker_ok(&["run", "--rm", "--network", "none", &name, "true"]);

    // Logged out: the registry wants credentials again.
    d.docker_ok(&["logout", &host]);
    d.docker_ok(&["rmi", &name]);
    let o = d.docker(&["pull", &name]);
    assert!(!o.status.success());
    assert!(err(&o).contains("no basic auth credentials"), "{}", err(&o));
}

// ---- bearer tokens ---------------------------------------------------------------------

/// A token issuer for distribution's `auth: token`: JWTs signed (RS256, with the
/// signing certificate in `x5c`) by a key whose certificate the registry trusts.
/// alice (password `s3cret`) gets what she asks for; anyone gets `pull` on
/// `public/*`; a login asking for an offline token gets a refresh token, which
/// later stands for alice's password.
struct TokenIssuer {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                let s = s.replace('+', " ");
                let b = s.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < b.len() {
                    if b[i] == b'%' && i + 2 < b.len() {
                        out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(b[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (dec(k), dec(v))
        })
        .collect()
}

impl TokenIssuer {
    fn start(d: &Daemon, dir: &Path, addr: &str) -> TokenIssuer {
        std::fs::create_dir_all(dir).unwrap();
        run_ok(Command::new("openssl").current_dir(dir).args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "2",
            "-subj",
            "/CN=token signer",
        ]));
        let der = Command::new("openssl")
            .current_dir(dir)
            .args(["x509", "-in", "token.crt", "-outform", "DER"])
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let key = dir.join("token.key");
        let a = addr.to_string();
        let listener = in_ns(&d.netns, move || TcpListener::bind(a)).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (log, x5c, key) = (log.clone(), x5c.clone(), key.clone());
                std::thread::spawn(move || {
                    let _ = issue(conn, &log, &x5c, &key);
                });
            }
        });
        TokenIssuer {
            addr: addr.to_string(),
            requests,
        }
    }

    fn saw(&self, needle: &str) -> bool {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains(needle))
    }
}

/// Answers one token request.
fn issue(conn: TcpStream, log: &Mutex<Vec<String>>, x5c: &str, key: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut s = conn;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut auth = None;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        std::io::BufRead::read_line(&mut reader, &mut h)?;
        if h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.to_ascii_lowercase().as_str() {
            "authorization" => auth = Some(v.trim().to_string()),
            "content-length" => length = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let query = target
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let form = if method == "POST" {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        query
    };
    let params = query_pairs(&form);
    let decoded: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    log.lock()
        .unwrap()
        .push(format!("{method} {}", decoded.join("&")));
    let get = |k: &str| {
        params
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let alice = match (&auth, get("grant_type").first().map(String::as_str)) {
        (_, Some("refresh_token")) => {
            get("refresh_token").first().map(String::as_str) == Some("refresh-alice")
        }
        (Some(a), _) => {
            let ok = a
                == &format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
                );
            if !ok {
                let body = br#"{"details":"incorrect username or password"}"#;
                return respond(
                    &mut s,
                    "401 Unauthorized",
                    &[("Content-Type", "application/json")],
                    body,
                );
            }
            true
        }
        (None, _) => false,
    };
    let scopes: Vec<String> = get("scope")
        .iter()
        .flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let access: Vec<Value> = scopes
        .iter()
        .filter_map(|sc| {
            let mut it = sc.splitn(3, ':');
            let (kind, name, actions) = (it.next()?, it.next()?, it.next()?);
            let granted: Vec<&str> = actions
                .split(',')
                .filter(|a| alice || (name.starts_with("public/") && *a == "pull"))
                .collect();
            Some(json!({ "type": kind, "name": name, "actions": granted }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({ "typ": "JWT", "alg": "RS256", "x5c": [x5c] });
    let claims = json!({
        "iss": "test-issuer",
        "sub": if alice { "alice" } else { "" },
        "aud": "test-registry",
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", log.lock().unwrap().len()),
        "access": access,
    });
    let signing = format!(
        "{}.{}",
        b64url(&serde_json::to_vec(&header).unwrap()),
        b64url(&serde_json::to_vec(&claims).unwrap())
    );
    let mut sign = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", key.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    sign.stdin.take().unwrap().write_all(signing.as_bytes())?;
    let sig = sign.wait_with_output()?.stdout;
    let token = format!("{signing}.{}", b64url(&sig));
    let mut answer = json!({ "token": token, "expires_in": 300 });
    if alice && get("offline_token").first().map(String::as_str) == Some("true") {
        answer["refresh_token"] = json!("refresh-alice");
    }
    respond(
        &mut s,
        "200 OK",
        &[("Content-Type", "application/json")],
        &serde_json::to_vec(&answer).unwrap(),
    )
}

#[test]
fn bearer_tokens_anonymous_and_logged_in() {
    requirements();
    let d = Daemon::start();
    let tokens = TokenIssuer::start(&d, &d.path("tokens"), "127.0.0.1:5002");
    let crt = d.path("tokens").join("token.crt").display().to_string();
    let _reg = Registry::start(
        &d,
        "reg",
        "127.0.0.1:5001",
        "",
        &format!(
            "auth:\n  token:\n    realm: http://{}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {crt}\n",
            tokens.addr
        ),
    );
    let private = "127.0.0.1:5001/private/bb:1";
    let public = "127.0.0.1:5001/public/bb:1";
    d.import_busybox(private);
    d.docker_ok(&["tag", private, public]);

    // Anonymous: a token without push rights.
    let o = d.docker(&["push", private]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("denied: requested access to the resource is denied"),
        "{}",
        err(&o)
    );
    assert!(
        tokens.saw("scope=repository:private/bb:push,pull"),
        "{:?}",
        tokens.requests.lock().unwrap()
    );

    // A wrong password is the token service's refusal, a 401 with its words.
    let o = d.docker(&["login", "127.0.0.1:5001", "-u", "alice", "-p", "nope"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("unauthorized: incorrect username or password"),
        "{}",
        err(&o)
    );
    let r = d.request(
        "POST",
        "/auth",
        Some((
            "application/json",
            br#"{"username":"alice","password":"nope","serveraddress":"127.0.0.1:5001"}"#,
        )),
    );
    assert_eq!(r.status, 401, "{}", r.text());

    // Login: an identity token, which the CLI keeps and sends instead of the password.
    let r = d.request(
        "POST",
        "/auth",
        Some((
            "application/json",
            br#"{"username":"alice","password":"s3cret","serveraddress":"127.0.0.1:5001"}"#,
        )),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"IdentityToken": "refresh-alice", "Status": "Login Succeeded"})
    );
    let o = d.docker(&["login", "127.0.0.1:5001", "-u", "alice", "-p", "s3cret"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(common::out(&o).contains("Login Succeeded"));
    let out = d.docker_ok(&["push", private]);
    assert!(out.contains("Pushed"), "{out}");
    assert!(
        tokens.saw("grant_type=refresh_token"),
        "{:?}",
        tokens.requests.lock().unwrap()
    );
    let out = d.docker_ok(&["push", public]);
    assert!(
        out.contains("Mounted from private/bb") || out.contains("Layer already exists"),
        "{out}"
    );
    d.docker_ok(&["rmi", private, public]);
    let out = d.docker_ok(&["pull", private]);
    assert!(out.contains("Pull complete"), "{out}");

    // Logged out: private is out of reach, public is pulled with an anonymous token.
    d.docker_ok(&["logout", "127.0.0.1:5001"]);
    d.docker_ok(&["rmi", private]);
    let o = d.docker(&["pull", private]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("pull access denied for 127.0.0.1:5001/private/bb, repository does not exist or may require 'docker login'"),
        "{}",
        err(&o)
    );
    let out = d.docker_ok(&["pull", public]);
    assert!(out.contains("Pull complete"), "{out}");
}

// ---- mirrors, proxies, limits ---------------------------------------------------------------

#[test]
fn docker_hub_names_come_from_a_mirror() {
    // The namespace has no route off the machine: were the mirror skipped, the pull
    // would fail rather than reach Docker Hub.
    let d = Daemon::builder()
        .config(r#"{"registry-mirrors": ["http://127.0.0.1:5000"]}"#)
        .start();
    let _reg = Registry::start(&d, "mirror", "127.0.0.1:5000", "", "");
    d.import_busybox("localhost:5000/library/busybox:latest");
    d.docker_ok(&["push", "localhost:5000/library/busybox:latest"]);
    d.docker_ok(&["rmi", "localhost:5000/library/busybox:latest"]);
    let out = d.docker_ok(&["pull", "busybox"]);
    assert!(
        out.contains("latest: Pulling from library/busybox"),
        "{out}"
    );
    assert!(
        out.contains("Status: Downloaded newer image for busybox:latest"),
        "{out}"
    );
    let img = inspect(&d, "busybox");
    assert!(
        img["RepoDigests"][0]
            .as_str()
            .unwrap()
            .starts_with("busybox@sha256:"),
        "{img}"
    );
    let info = d.request("GET", "/info", None).json();
    assert_eq!(
        info["RegistryConfig"]["Mirrors"],
        json!(["http://127.0.0.1:5000/"])
    );
    assert_eq!(
        info["RegistryConfig"]["IndexConfigs"]["docker.io"]["Mirrors"],
        json!(["http://127.0.0.1:5000/"])
    );
}

/// An HTTP proxy that relays each connection to the host its first request
/// names, recording that request line.
fn relay_proxy(d: &Daemon, addr: &str) -> Arc<Mutex<Vec<String>>> {
    let a = addr.to_string();
    let listener = in_ns(&d.netns, move || TcpListener::bind(a)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let netns = d.netns.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let (log, netns) = (log.clone(), netns.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                    return;
                }
                log.lock().unwrap().push(line.trim().to_string());
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let Some(hostport) = target
                    .strip_prefix("http://")
                    .and_then(|r| r.split('/').next())
                else {
                    return;
                };
                let hp = hostport.to_string();
                let Ok(mut upstream) = in_ns(&netns, move || TcpStream::connect(hp)) else {
                    return;
                };
                let _ = upstream.write_all(line.as_bytes());
                let mut up_read = upstream.try_clone().unwrap();
                let mut down = client;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_read, &mut down);
                });
                let _ = std::io::copy(&mut reader, &mut upstream);
            });
        }
    });
    seen
}

#[test]
fn registry_traffic_goes_through_the_configured_proxy() {
    let d = Daemon::builder()
        .config(r#"{"proxies": {"http-proxy": "http://127.0.0.1:3128"}, "insecure-registries": ["10.77.0.2:5000"]}"#)
        .start();
    let seen = relay_proxy(&d, "127.0.0.1:3128");
    add_address(&d, "10.77.0.2");
    let _reg = Registry::start(&d, "reg", "10.77.0.2:5000", "", "");
    d.import_busybox("10.77.0.2:5000/via/proxy:1");
    let out = d.docker_ok(&["push", "10.77.0.2:5000/via/proxy:1"]);
    assert!(out.contains("Pushed"), "{out}");
    d.docker_ok(&["rmi", "10.77.0.2:5000/via/proxy:1"]);
    d.docker_ok(&["pull", "10.77.0.2:5000/via/proxy:1"]);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET http://10.77.0.2:5000/v2/")),
        "{seen:?}"
    );
    let info = d.request("GET", "/info", None).json();
    assert_eq!(info["HttpProxy"], "http://127.0.0.1:3128");
    assert_eq!(
        info["RegistryConfig"]["IndexConfigs"]["10.77.0.2:5000"]["Secure"],
        false
    );
}

#[test]
fn downloads_wait_for_a_slot_under_max_concurrent_downloads() {
    let d = Daemon::builder()
        .config(r#"{"max-concurrent-downloads": 1}"#)
        .start();
    // Two layers: the second waits for the first.
    let (mut content, layer) = fake_image(1 << 20, &[], 6);
    let (second, _) = fake_image(1 << 20, &[], 7);
    let mut blobs = content.blobs.clone();
    blobs.extend(second.blobs.clone());
    let tar_of = |blob: &[u8]| {
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut v)
            .unwrap();
        v
    };
    let diff_ids: Vec<String> = blobs.iter().map(|(_, b)| sha256(&tar_of(b))).collect();
    let config = config_json(host_arch(), &diff_ids, &["x"]);
    let cd = sha256(&config);
    let layers: Vec<(&str, String, usize)> = blobs
        .iter()
        .map(|(dg, b)| {
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                dg.clone(),
                b.len(),
            )
        })
        .collect();
    let m = manifest_json(DOCKER_MANIFEST, (&cd, config.len()), &layers);
    content.manifests = vec![("1".into(), DOCKER_MANIFEST.into(), m)];
    content.blobs = blobs;
    content.blobs.push((cd, config));
    let (fake, _, _) = slow_registry(&d, content, &layer, Duration::from_millis(30));
    let out = d.docker_ok(&["pull", &format!("{}/two/layers:1", fake.addr)]);
    assert!(out.contains("Waiting"), "{out}");
    assert_eq!(out.matches("Pull complete").count(), 2, "{out}");
}
