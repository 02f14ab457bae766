//! Volumes and mounts end to end, with the real docker CLI against the built daemon:
//! named and anonymous volumes of the `local` driver, copy-up from the image, binds,
//! tmpfs, `--mount`, `--volumes-from`, removal and prune, `system df`, events, the
//! errors Docker gives, and the safety rules (names and symlinked targets that must
//! not escape, volumes in use, data that survives a daemon killed with SIGKILL).

mod common;

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const IMG: &str = "test/busybox:1";
/// busybox plus `VOLUME /data /empty` with content, owners and modes (see [`import_volume_image`]).
const VOLIMG: &str = "test/volimg:1";
const ANON_LABEL: &str = "com.docker.volume.anonymous";
const INVALID_NAME_TAIL: &str = "includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path";

fn daemon() -> Daemon {
    let d = Daemon::start();
    d.import_busybox(IMG);
    d
}

/// One entry added on top of busybox in a test image.
enum Extra<'a> {
    Dir(&'a str, u32, u64, u64),
    File(&'a str, &'a [u8], u32, u64, u64),
    Symlink(&'a str, &'a str),
}

/// Imports busybox plus `extras` as `name`, with `changes` (`-c`) and `CMD ["sh"]`.
fn import_image(d: &Daemon, name: &str, changes: &[&str], extras: &[Extra]) {
    let base = busybox_full_rootfs(d.dir.path());
    let mut b = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(std::fs::File::open(&base).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        b.append(&h, &data[..]).unwrap();
    }
    for x in extras {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        match *x {
            Extra::Dir(path, mode, uid, gid) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(mode);
                h.set_uid(uid);
                h.set_gid(gid);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            Extra::File(path, data, mode, uid, gid) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(mode);
                h.set_uid(uid);
                h.set_gid(gid);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data).unwrap();
            }
            Extra::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    let tarball = d.path("image.tar");
    std::fs::write(&tarball, b.into_inner().unwrap()).unwrap();
    std::fs::remove_file(base).unwrap();
    let mut args = vec!["import"];
    for c in changes {
        args.push("-c");
        args.push(c);
    }
    args.push("-c");
    args.push("CMD [\"sh\"]");
    args.push(tarball.to_str().unwrap());
    args.push(name);
    d.docker_ok(&args);
    std::fs::remove_file(tarball).unwrap();
}

/// [`VOLIMG`]: `/data` (1000:1000, 0750) with a file, a subdirectory and a symlink,
/// and an empty `/empty` (123:456, 0700); both declared as VOLUMEs.
fn import_volume_image(d: &Daemon) {
    import_image(
        d,
        VOLIMG,
        &["VOLUME /data /empty"],
        &[
            Extra::Dir("data", 0o750, 1000, 1000),
            Extra::File("data/hello.txt", b"from the image\n", 0o640, 1000, 1000),
            Extra::Dir("data/sub", 0o755, 0, 0),
            Extra::File("data/sub/deep", b"deep\n", 0o644, 0, 0),
            Extra::Symlink("data/link", "hello.txt"),
            Extra::Dir("empty", 0o700, 123, 456),
        ],
    );
}

/// Where the local driver keeps a volume's data.
fn vol_path(d: &Daemon, name: &str) -> PathBuf {
    d.data_root().join("volumes").join(name).join("_data")
}

/// `docker volume ls -q` with `filters`, sorted.
fn volume_names(d: &Daemon, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["volume", "ls", "-q"];
    for f in filters {
        args.push("--filter");
        args.push(f);
    }
    let mut v: Vec<String> = d.docker_ok(&args).lines().map(str::to_string).collect();
    v.sort();
    v
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// `docker volume inspect NAME`, the one object.
fn volume(d: &Daemon, name: &str) -> Value {
    let v: Value = serde_json::from_str(&d.docker_ok(&["volume", "inspect", name])).unwrap();
    v[0].clone()
}

fn volume_exists(d: &Daemon, name: &str) -> bool {
    d.docker(&["volume", "inspect", name]).status.success()
}

/// The `Mounts` entry of a container's inspect at `dest`.
fn mount_at(c: &Value, dest: &str) -> Value {
    c["Mounts"]
        .as_array()
        .unwrap_or_else(|| panic!("no Mounts in {c}"))
        .iter()
        .find(|m| m["Destination"] == dest)
        .unwrap_or_else(|| panic!("no mount at {dest} in {}", c["Mounts"]))
        .clone()
}

/// The name of the volume mounted at `dest` in container `ctr`.
fn volume_at(d: &Daemon, ctr: &str, dest: &str) -> String {
    mount_at(&inspect(d, ctr), dest)["Name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A volume's `Mounts` entry as Docker writes it, key order included.
fn volume_mount(d: &Daemon, name: &str, dest: &str, mode: &str, rw: bool) -> String {
    format!(
        r#"{{"Type":"volume","Name":"{name}","Source":"{}","Destination":"{dest}","Driver":"local","Mode":"{mode}","RW":{rw},"Propagation":""}}"#,
        vol_path(d, name).display()
    )
}

/// A bind's `Mounts` entry as Docker writes it, key order included.
fn bind_mount(src: &Path, dest: &str, mode: &str, rw: bool, propagation: &str) -> String {
    format!(
        r#"{{"Type":"bind","Source":"{}","Destination":"{dest}","Mode":"{mode}","RW":{rw},"Propagation":"{propagation}"}}"#,
        src.display()
    )
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Runs the CLI expecting a failure whose stderr contains `msg`.
fn fails_with(d: &Daemon, args: &[&str], msg: &str) {
    let o = d.docker(args);
    assert!(!o.status.success(), "{args:?} must fail: {}", out(&o));
    assert!(
        err(&o).contains(msg),
        "{args:?}: expected {msg:?} in:\n{}",
        err(&o)
    );
}

/// Percent-encodes a query value.
fn q(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Mount points of the test's (and the daemon's) mount namespace.
fn host_mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .collect()
}

fn is_host_mount_point(p: &Path) -> bool {
    host_mount_points().iter().any(|m| Path::new(m) == p)
}

/// Mounts a small tmpfs at `p` on the host (the test runs as root).
fn host_tmpfs(p: &Path) {
    let src = std::ffi::CString::new("tmpfs").unwrap();
    let target = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let data = std::ffi::CString::new("size=1m").unwrap();
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    assert_eq!(
        rc,
        0,
        "mount tmpfs on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn host_umount(p: &Path) {
    let target = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
}

/// The options column of the `/proc/mounts` line (from a container) for `point`.
fn mount_options(proc_mounts: &str, point: &str) -> Vec<String> {
    let line = proc_mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(point))
        .unwrap_or_else(|| panic!("{point} is not mounted:\n{proc_mounts}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[2], "tmpfs", "{line}");
    fields[3].split(',').map(str::to_string).collect()
}

/// Docker's `CreatedAt`: RFC 3339 with seconds and no fraction.
fn is_rfc3339_seconds(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let stamp = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let zone = &s[19.min(s.len())..];
    stamp
        && (zone == "Z"
            || (zone.len() == 6
                && (zone.starts_with('+') || zone.starts_with('-'))
                && zone.as_bytes()[3] == b':'))
}

// ---- the volume API and `docker volume` --------------------------------------

#[test]
fn volume_create_inspect_ls_and_rm_through_the_cli() {
    let d = Daemon::start();
    assert_eq!(d.docker_ok(&["volume", "create", "myvol"]), "myvol\n");
    let v = volume(&d, "myvol");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "CreatedAt",
            "Driver",
            "Labels",
            "Mountpoint",
            "Name",
            "Options",
            "Scope"
        ],
        "{v}"
    );
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Labels"], Value::Null);
    assert_eq!(v["Options"], Value::Null);
    assert_eq!(v["Name"], "myvol");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Mountpoint"], vol_path(&d, "myvol").to_str().unwrap());
    let created = v["CreatedAt"].as_str().unwrap();
    assert!(is_rfc3339_seconds(created), "CreatedAt {created:?}");
    assert!(vol_path(&d, "myvol").is_dir());

    // Creating it again is fine and changes nothing (the new labels are ignored).
    assert_eq!(
        d.docker_ok(&["volume", "create", "--label", "x=y", "myvol"]),
        "myvol\n"
    );
    assert_eq!(volume(&d, "myvol")["Labels"], Value::Null);
    assert_eq!(volume(&d, "myvol")["CreatedAt"], created);

    // Without a name: 64 hex digits and the anonymous label beside the given ones.
    let anon = d
        .docker_ok(&["volume", "create", "--label", "team=db"])
        .trim()
        .to_string();
    assert!(is_hex64(&anon), "{anon}");
    assert_eq!(
        volume(&d, &anon)["Labels"],
        json!({"team": "db", ANON_LABEL: ""})
    );

    // The default table.
    let ls = d.docker_ok(&["volume", "ls"]);
    let rows: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["DRIVER", "VOLUME", "NAME"], "{ls}");
    let mut body: Vec<Vec<&str>> = rows[1..].to_vec();
    body.sort();
    let mut expected = vec![vec!["local", anon.as_str()], vec!["local", "myvol"]];
    expected.sort();
    assert_eq!(body, expected, "{ls}");

    // rm prints each name; the directory goes with it.
    assert_eq!(
        d.docker_ok(&["volume", "rm", "myvol", &anon]),
        format!("myvol\n{anon}\n")
    );
    assert!(!d.data_root().join("volumes/myvol").exists());
    assert!(!d.data_root().join("volumes").join(&anon).exists());
    assert_eq!(volume_names(&d, &[]), Vec::<String>::new());

    fails_with(
        &d,
        &["volume", "inspect", "nosuch"],
        "Error response from daemon: get nosuch: no such volume",
    );
    fails_with(
        &d,
        &["volume", "rm", "nosuch"],
        "Error response from daemon: get nosuch: no such volume",
    );
    // -f: a missing volume is not an error.
    d.docker_ok(&["volume", "rm", "-f", "nosuch"]);
}

#[test]
fn volume_api_answers_with_dockers_shapes_and_statuses() {
    let d = Daemon::start();
    let r = d.request(
        "POST",
        "/volumes/create",
        Some((
            "application/json",
            br#"{"Name":"apivol","Labels":{"a":"b"},"DriverOpts":{}}"#,
        )),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["Name"], "apivol");
    assert_eq!(v["Labels"], json!({"a": "b"}));
    assert_eq!(v["Options"], json!({}), "DriverOpts are echoed as given");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Mountpoint"], vol_path(&d, "apivol").to_str().unwrap());
    assert!(
        v.get("UsageData").is_none() && v.get("Status").is_none(),
        "{v}"
    );

    let r = d.request(
        "POST",
        "/volumes/create",
        Some(("application/json", br#"{"Name":"apivol2","Labels":{}}"#)),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["Labels"], json!({}));
    assert_eq!(r.json()["Options"], Value::Null);

    // An empty body makes an anonymous volume.
    let r = d.request("POST", "/volumes/create", None);
    assert_eq!(r.status, 201, "{}", r.text());
    let anon = r.json()["Name"].as_str().unwrap().to_string();
    assert!(is_hex64(&anon), "{anon}");
    assert_eq!(r.json()["Labels"], json!({ ANON_LABEL: "" }));
    assert_eq!(r.json()["Options"], Value::Null);

    // The same name again: 201 and the first volume, untouched.
    let r = d.request(
        "POST",
        "/volumes/create",
        Some((
            "application/json",
            br#"{"Name":"apivol","Labels":{"other":"1"}}"#,
        )),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["Labels"], json!({"a": "b"}));

    let r = d.request("GET", "/volumes", None);
    assert_eq!(r.status, 200);
    let list = r.json();
    let keys: Vec<&str> = list
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["Volumes", "Warnings"]);
    assert_eq!(list["Warnings"], Value::Null);
    let mut names: Vec<&str> = list["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Name"].as_str().unwrap())
        .collect();
    names.sort();
    let mut expected = vec!["apivol", "apivol2", anon.as_str()];
    expected.sort();
    assert_eq!(names, expected);

    let r = d.request("GET", "/volumes/apivol", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Labels"], json!({"a": "b"}));
    assert!(r.json().get("UsageData").is_none());

    let r = d.request("GET", "/volumes/nosuch", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "get nosuch: no such volume");
    let r = d.request("DELETE", "/volumes/nosuch", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "get nosuch: no such volume");
    let r = d.request("DELETE", "/volumes/nosuch?force=1", None);
    assert_eq!(r.status, 204, "{}", r.text());
    let r = d.request("DELETE", "/volumes/apivol", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(d.request("GET", "/volumes/apivol", None).status, 404);

    // Client errors.
    let r = d.request(
        "POST",
        "/volumes/create",
        Some(("application/json", br#"{"Name":"a"}"#)),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "create a: volume name is too short, names should be at least two alphanumeric characters"
    );
    let r = d.request(
        "GET",
        &format!("/volumes?filters={}", q(r#"{"colour":["red"]}"#)),
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "invalid filter 'colour'");
    let r = d.request(
        "GET",
        &format!("/volumes?filters={}", q(r#"{"dangling":["maybe"]}"#)),
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "invalid filter 'dangling=[maybe]'");
    let r = d.request(
        "POST",
        &format!("/volumes/prune?filters={}", q(r#"{"all":["x"]}"#)),
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "invalid filter 'all': strconv.ParseBool: parsing \"x\": invalid syntax"
    );
}

#[test]
fn volume_create_rejects_bad_names_and_options_with_dockers_messages() {
    let d = Daemon::start();
    let cases: [(&[&str], String); 8] = [
        (
            &["volume", "create", "a"],
            "Error response from daemon: create a: volume name is too short, names should be at least two alphanumeric characters".into(),
        ),
        (
            &["volume", "create", "foo/bar"],
            format!("Error response from daemon: create foo/bar: \"foo/bar\" {INVALID_NAME_TAIL}"),
        ),
        (
            &["volume", "create", "-o", "foo=bar", "x1"],
            "Error response from daemon: create x1: invalid option: \"foo\"".into(),
        ),
        (
            &["volume", "create", "-o", "type=tmpfs", "x2"],
            "Error response from daemon: create x2: missing required option: \"device\"".into(),
        ),
        (
            &["volume", "create", "-o", "device=tmpfs", "x3"],
            "Error response from daemon: create x3: missing required option: \"type\"".into(),
        ),
        (
            &["volume", "create", "-o", "o=size=1m", "x4"],
            "Error response from daemon: create x4: missing required option: \"device\"".into(),
        ),
        (
            &["volume", "create", "-o", "size=abc", "x5"],
            "Error response from daemon: create x5: invalid size: 'abc'".into(),
        ),
        (
            &["volume", "create", "-d", "nosuchdrv", "x6"],
            "create x6: error looking up volume plugin nosuchdrv: plugin \"nosuchdrv\" not found"
                .into(),
        ),
    ];
    for (args, msg) in &cases {
        fails_with(&d, args, msg);
    }
    // Nothing was created, not even a directory.
    assert_eq!(volume_names(&d, &[]), Vec::<String>::new());
    for name in ["a", "foo", "x1", "x2", "x3", "x4", "x5", "x6"] {
        assert!(
            !d.data_root().join("volumes").join(name).exists(),
            "{name} left a directory"
        );
    }
}

#[test]
fn volume_names_cannot_escape_the_volumes_directory() {
    let d = Daemon::start();
    let victim = d.data_root().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep"), "keep").unwrap();
    let tag = d
        .dir
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let outside = format!("/tmp/{tag}-escape");
    let deep = format!("../../../../../../../..{outside}");
    for name in [
        "..",
        "../victim",
        "../../escape",
        deep.as_str(),
        "/abs",
        ".hidden",
        "-dash",
        "a/../../b",
    ] {
        let body = json!({ "Name": name }).to_string();
        let r = d.request(
            "POST",
            "/volumes/create",
            Some(("application/json", body.as_bytes())),
        );
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        let msg = r.json()["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains(INVALID_NAME_TAIL) && msg.starts_with(&format!("create {name}: ")),
            "{name}: {msg}"
        );
    }
    // Encoded slashes and dots in lookups and removals reach nothing outside.
    for name in [
        "..%2Fvictim",
        "..%2F..%2Fvictim",
        "%2E%2E",
        "..%2F..%2Fdata%2Fvictim",
    ] {
        let r = d.request("GET", &format!("/volumes/{name}"), None);
        assert_ne!(r.status, 200, "GET {name}: {}", r.text());
        d.request("DELETE", &format!("/volumes/{name}?force=1"), None);
        assert!(
            victim.join("keep").exists(),
            "DELETE {name} removed data outside"
        );
    }
    assert!(!Path::new(&outside).exists(), "{outside} was created");
    let dirs: Vec<_> = std::fs::read_dir(d.data_root().join("volumes"))
        .map(|r| {
            r.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    assert!(dirs.is_empty(), "volume directories were made: {dirs:?}");
    assert_eq!(volume_names(&d, &[]), Vec::<String>::new());
}

#[test]
fn volume_ls_filters_by_name_label_dangling_and_driver() {
    let d = daemon();
    d.docker_ok(&["volume", "create", "--label", "env=prod", "alpha1"]);
    d.docker_ok(&[
        "volume", "create", "--label", "env=dev", "--label", "team=x", "alpha2",
    ]);
    d.docker_ok(&["volume", "create", "beta1"]);
    // A stopped (never started) container is a reference too.
    d.docker_ok(&["create", "--name", "user", "-v", "beta1:/b", IMG]);
    let all = sorted(&["alpha1", "alpha2", "beta1"]);
    assert_eq!(volume_names(&d, &[]), all);
    assert_eq!(
        volume_names(&d, &["name=alpha"]),
        sorted(&["alpha1", "alpha2"])
    );
    assert_eq!(
        volume_names(&d, &["name=ha2$"]),
        sorted(&["alpha2"]),
        "a regexp"
    );
    assert_eq!(
        volume_names(&d, &["name=alpha1", "name=beta1"]),
        sorted(&["alpha1", "beta1"]),
        "values of one key are ORed"
    );
    assert_eq!(
        volume_names(&d, &["label=env"]),
        sorted(&["alpha1", "alpha2"])
    );
    assert_eq!(volume_names(&d, &["label=env=prod"]), sorted(&["alpha1"]));
    assert_eq!(
        volume_names(&d, &["label=env", "label=team"]),
        sorted(&["alpha2"]),
        "every label must match"
    );
    assert_eq!(volume_names(&d, &["label=nosuch"]), Vec::<String>::new());
    assert_eq!(
        volume_names(&d, &["dangling=true"]),
        sorted(&["alpha1", "alpha2"])
    );
    assert_eq!(volume_names(&d, &["dangling=false"]), sorted(&["beta1"]));
    assert_eq!(
        volume_names(&d, &["dangling=true", "label=env=dev"]),
        sorted(&["alpha2"])
    );
    assert_eq!(volume_names(&d, &["driver=local"]), all);
    assert_eq!(volume_names(&d, &["driver=nosuch"]), Vec::<String>::new());
    fails_with(
        &d,
        &["volume", "ls", "--filter", "colour=red"],
        "invalid filter 'colour'",
    );
    fails_with(
        &d,
        &["volume", "ls", "--filter", "dangling=maybe"],
        "invalid filter 'dangling=[maybe]'",
    );
    // Once the container is gone, nothing references beta1.
    d.docker_ok(&["rm", "user"]);
    assert_eq!(volume_names(&d, &["dangling=true"]), all);
}

// ---- containers using volumes -------------------------------------------------

#[test]
fn named_volumes_share_data_and_read_only_mounts_refuse_writes() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "shared:/data",
        IMG,
        "sh",
        "-c",
        "echo hello > /data/msg",
    ]);
    // Created on first use, plainly.
    let v = volume(&d, "shared");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Labels"], Value::Null);
    assert_eq!(v["Options"], Value::Null);
    assert_eq!(
        std::fs::read_to_string(vol_path(&d, "shared").join("msg")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "shared:/data:ro",
            IMG,
            "cat",
            "/data/msg"
        ]),
        "hello\n"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "shared:/data:ro",
        IMG,
        "touch",
        "/data/x",
    ]);
    assert!(!o.status.success());
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));
    assert!(!vol_path(&d, "shared").join("x").exists());

    // What inspect says about them.
    d.docker_ok(&["create", "--name", "writer", "-v", "shared:/data", IMG]);
    d.docker_ok(&["create", "--name", "reader", "-v", "shared:/data:ro", IMG]);
    d.docker_ok(&[
        "create",
        "--name",
        "mounter",
        "--mount",
        "type=volume,src=shared,dst=/data",
        IMG,
    ]);
    d.docker_ok(&[
        "create",
        "--name",
        "mro",
        "--mount",
        "type=volume,src=shared,dst=/data,readonly",
        IMG,
    ]);
    let w = inspect(&d, "writer");
    assert_eq!(w["Mounts"].as_array().unwrap().len(), 1, "{}", w["Mounts"]);
    assert_eq!(
        compact(&mount_at(&w, "/data")),
        volume_mount(&d, "shared", "/data", "z", true)
    );
    assert_eq!(w["HostConfig"]["Binds"], json!(["shared:/data"]));
    assert_eq!(
        compact(&mount_at(&inspect(&d, "reader"), "/data")),
        volume_mount(&d, "shared", "/data", "ro", false)
    );
    assert_eq!(
        compact(&mount_at(&inspect(&d, "mounter"), "/data")),
        volume_mount(&d, "shared", "/data", "z", true)
    );
    assert_eq!(
        compact(&mount_at(&inspect(&d, "mro"), "/data")),
        volume_mount(&d, "shared", "/data", "z", false)
    );
    assert_eq!(volume_names(&d, &["dangling=false"]), sorted(&["shared"]));
}

#[test]
fn image_volumes_are_copied_up_with_their_owner_and_mode() {
    let d = daemon();
    import_volume_image(&d);
    let o = d.docker_ok(&[
        "run",
        "--name",
        "c1",
        VOLIMG,
        "sh",
        "-c",
        "stat -c '%u:%g %a' /data /empty /data/hello.txt; cat /data/hello.txt /data/sub/deep; \
         readlink /data/link; ls -A /empty | wc -l",
    ]);
    assert_eq!(
        o,
        "1000:1000 750\n123:456 700\n1000:1000 640\nfrom the image\ndeep\nhello.txt\n0\n"
    );
    let c = inspect(&d, "c1");
    assert_eq!(c["Mounts"].as_array().unwrap().len(), 2, "{}", c["Mounts"]);
    assert_eq!(c["Config"]["Volumes"], json!({"/data": {}, "/empty": {}}));
    for dest in ["/data", "/empty"] {
        let m = mount_at(&c, dest);
        let name = m["Name"].as_str().unwrap().to_string();
        assert!(is_hex64(&name), "{m}");
        // An image VOLUME has an empty Mode, unlike `-v name:/path`.
        assert_eq!(compact(&m), volume_mount(&d, &name, dest, "", true));
        let v = volume(&d, &name);
        assert_eq!(v["Labels"], json!({ ANON_LABEL: "" }));
        assert_eq!(v["Options"], Value::Null);
    }
    // The copy is in the volume on the host, owner and mode included.
    let data = vol_path(&d, &volume_at(&d, "c1", "/data"));
    assert_eq!(
        std::fs::read_to_string(data.join("hello.txt")).unwrap(),
        "from the image\n"
    );
    let md = std::fs::metadata(&data).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.permissions().mode() & 0o7777),
        (1000, 1000, 0o750)
    );
    let empty = vol_path(&d, &volume_at(&d, "c1", "/empty"));
    let md = std::fs::metadata(&empty).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.permissions().mode() & 0o7777),
        (123, 456, 0o700)
    );

    // The copy is made at create, never at start: a volume emptied in between stays empty.
    d.docker_ok(&["rm", "-v", "c1"]);
    d.docker_ok(&[
        "create",
        "--name",
        "c2",
        "-v",
        "later:/data",
        VOLIMG,
        "ls",
        "-A",
        "/data",
    ]);
    let later = vol_path(&d, "later");
    assert!(later.join("hello.txt").exists(), "copied up at create");
    for e in std::fs::read_dir(&later).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }
    d.docker_ok(&["start", "c2"]);
    assert_eq!(d.docker_ok(&["wait", "c2"]), "0\n");
    assert_eq!(d.docker_ok(&["logs", "c2"]), "");
    assert_eq!(std::fs::read_dir(&later).unwrap().count(), 0);

    // An existing but empty named volume is populated too.
    d.docker_ok(&["volume", "create", "fresh"]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "fresh:/data",
            VOLIMG,
            "sh",
            "-c",
            "cat /data/hello.txt; stat -c '%u %a' /data"
        ]),
        "from the image\n1000 750\n"
    );
}

#[test]
fn copy_up_never_overwrites_a_volume_and_nocopy_skips_it() {
    let d = daemon();
    import_volume_image(&d);
    // busybox has no /data: nothing to copy, the volume gets only what is written.
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "mine:/data",
        IMG,
        "sh",
        "-c",
        "echo mine > /data/own",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "mine:/data",
            VOLIMG,
            "sh",
            "-c",
            "ls -A /data; stat -c '%u:%g %a' /data"
        ]),
        "own\n0:0 755\n",
        "a non-empty volume is left as it is, its root included"
    );
    for spec in [
        &["-v", "nc1:/data:nocopy"][..],
        &["--mount", "type=volume,src=nc2,dst=/data,volume-nocopy"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(spec);
        args.extend_from_slice(&[
            VOLIMG,
            "sh",
            "-c",
            "ls -A /data | wc -l; stat -c '%u:%g %a' /data",
        ]);
        assert_eq!(d.docker_ok(&args), "0\n0:0 755\n", "{spec:?}");
    }
    assert_eq!(std::fs::read_dir(vol_path(&d, "nc1")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(vol_path(&d, "nc2")).unwrap().count(), 0);
    // Without nocopy the same (still empty) volume is populated.
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "nc1:/data",
            VOLIMG,
            "cat",
            "/data/sub/deep"
        ]),
        "deep\n"
    );
}

#[test]
fn rm_v_and_auto_remove_delete_anonymous_volumes_but_never_named_ones() {
    let d = daemon();
    import_volume_image(&d);
    d.docker_ok(&[
        "create",
        "--name",
        "ctr",
        "-v",
        "named1:/n",
        "-v",
        "/anon",
        "--mount",
        "type=volume,dst=/m",
        VOLIMG,
    ]);
    let c = inspect(&d, "ctr");
    assert_eq!(c["Mounts"].as_array().unwrap().len(), 5, "{}", c["Mounts"]);
    assert_eq!(
        c["Config"]["Volumes"],
        json!({"/anon": {}, "/data": {}, "/empty": {}})
    );
    let anons: Vec<String> = ["/anon", "/m", "/data", "/empty"]
        .iter()
        .map(|p| mount_at(&c, p)["Name"].as_str().unwrap().to_string())
        .collect();
    for a in &anons {
        assert!(is_hex64(a), "{a}");
    }
    // An anonymous volume through --mount gets Mode "z", one through -v an empty Mode.
    assert_eq!(
        compact(&mount_at(&c, "/m")),
        volume_mount(&d, &anons[1], "/m", "z", true)
    );
    assert_eq!(
        compact(&mount_at(&c, "/anon")),
        volume_mount(&d, &anons[0], "/anon", "", true)
    );
    let mut expected: Vec<&str> = anons.iter().map(String::as_str).collect();
    expected.push("named1");
    assert_eq!(volume_names(&d, &[]), sorted(&expected));

    d.docker_ok(&["rm", "-v", "ctr"]);
    assert_eq!(volume_names(&d, &[]), sorted(&["named1"]));
    for a in &anons {
        assert!(
            !d.data_root().join("volumes").join(a).exists(),
            "{a} left on disk"
        );
    }

    // --rm removes the anonymous volumes and keeps the named one.
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "named2:/n",
        "-v",
        "/anon2",
        IMG,
        "sh",
        "-c",
        "echo x > /anon2/f; echo y > /n/f",
    ]);
    assert_eq!(volume_names(&d, &[]), sorted(&["named1", "named2"]));
    assert_eq!(
        std::fs::read_to_string(vol_path(&d, "named2").join("f")).unwrap(),
        "y\n"
    );

    // Plain rm keeps them all.
    d.docker_ok(&["create", "--name", "keeper", "-v", "/kept", IMG]);
    let kept = volume_at(&d, "keeper", "/kept");
    d.docker_ok(&["rm", "keeper"]);
    assert_eq!(volume_names(&d, &[]), sorted(&["named1", "named2", &kept]));
    assert_eq!(
        volume_names(&d, &["dangling=true"]),
        sorted(&["named1", "named2", &kept])
    );
}

#[test]
fn a_volume_in_use_is_not_removed_even_with_force() {
    let d = daemon();
    let id = d
        .docker_ok(&["create", "--name", "user", "-v", "busy:/d", IMG])
        .trim()
        .to_string();
    let msg = format!("remove busy: volume is in use - [{id}]");
    fails_with(
        &d,
        &["volume", "rm", "busy"],
        &format!("Error response from daemon: {msg}"),
    );
    fails_with(&d, &["volume", "rm", "-f", "busy"], &msg);
    let r = d.request("DELETE", "/volumes/busy", None);
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["message"], msg.as_str());
    let r = d.request("DELETE", "/volumes/busy?force=1", None);
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["message"], msg.as_str());
    // Prune leaves it too.
    d.docker_ok(&["volume", "prune", "-af"]);
    assert!(volume_exists(&d, "busy"));

    // A running container and a second reference.
    let id2 = d
        .docker_ok(&[
            "run", "-d", "--name", "runner", "-v", "busy:/d", IMG, "sleep", "1000",
        ])
        .trim()
        .to_string();
    let o = d.docker(&["volume", "rm", "busy"]);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("remove busy: volume is in use - [") && e.contains(&id) && e.contains(&id2),
        "{e}"
    );
    d.docker_ok(&["rm", "-f", "runner"]);
    fails_with(&d, &["volume", "rm", "busy"], &msg);
    d.docker_ok(&["rm", "user"]);
    assert_eq!(d.docker_ok(&["volume", "rm", "busy"]), "busy\n");
    assert!(!d.data_root().join("volumes/busy").exists());
}

#[test]
fn prune_removes_anonymous_volumes_unless_all_is_given() {
    let d = daemon();
    // An anonymous volume left behind by a removed container, with 1000 bytes in it.
    d.docker_ok(&[
        "run",
        "--name",
        "a1",
        "-v",
        "/anon",
        IMG,
        "sh",
        "-c",
        "head -c 1000 /dev/zero > /anon/f",
    ]);
    let anon1 = volume_at(&d, "a1", "/anon");
    d.docker_ok(&["rm", "a1"]);
    let anon2 = d.docker_ok(&["volume", "create"]).trim().to_string();
    d.docker_ok(&["volume", "create", "keepnamed"]);
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "keepnamed:/d",
        IMG,
        "sh",
        "-c",
        "head -c 2000 /dev/zero > /d/f",
    ]);
    d.docker_ok(&[
        "create",
        "--name",
        "holder",
        "-v",
        "usednamed:/u",
        "-v",
        "/held",
        IMG,
    ]);
    let held = volume_at(&d, "holder", "/held");
    d.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "optvol",
    ]);
    d.docker_ok(&["volume", "create", "--label", "x=1", "lab1"]);
    d.docker_ok(&["volume", "create", "--label", "x=2", "lab2"]);
    let candidates = [
        anon1.as_str(),
        anon2.as_str(),
        "keepnamed",
        "usednamed",
        held.as_str(),
        "optvol",
        "lab1",
        "lab2",
    ];
    let deleted = |o: &str| -> Vec<String> {
        let mut v: Vec<String> = o
            .lines()
            .map(str::trim)
            .filter(|l| candidates.contains(l))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };

    let o = d.docker_ok(&["volume", "prune", "-f"]);
    assert!(o.contains("Deleted Volumes:"), "{o}");
    assert_eq!(deleted(&o), sorted(&[&anon1, &anon2]), "{o}");
    assert!(o.contains("Total reclaimed space: 1kB"), "{o}");
    assert_eq!(
        volume_names(&d, &[]),
        sorted(&["keepnamed", "usednamed", &held, "optvol", "lab1", "lab2"])
    );

    // Label filters; then --all takes the unused named ones, never those with options.
    let o = d.docker_ok(&["volume", "prune", "-af", "--filter", "label=x=1"]);
    assert_eq!(deleted(&o), sorted(&["lab1"]), "{o}");
    let o = d.docker_ok(&["volume", "prune", "-af", "--filter", "label!=x"]);
    assert_eq!(deleted(&o), sorted(&["keepnamed"]), "{o}");
    assert!(o.contains("Total reclaimed space: 2kB"), "{o}");
    let o = d.docker_ok(&["volume", "prune", "-af"]);
    assert_eq!(deleted(&o), sorted(&["lab2"]), "{o}");
    assert_eq!(
        volume_names(&d, &[]),
        sorted(&["usednamed", &held, "optvol"])
    );

    // Nothing left to prune: an empty list, not null.
    let r = d.request(
        "POST",
        &format!("/volumes/prune?filters={}", q(r#"{"all":["true"]}"#)),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"VolumesDeleted": [], "SpaceReclaimed": 0}));
    d.docker_ok(&["rm", "holder"]);
    let r = d.request("POST", "/volumes/prune", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["VolumesDeleted"], json!([held]));
    assert_eq!(volume_names(&d, &[]), sorted(&["usednamed", "optvol"]));
}

#[test]
fn system_df_reports_volume_links_and_sizes() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "--name",
        "dfc",
        "-v",
        "dfvol:/data",
        IMG,
        "sh",
        "-c",
        "head -c 12300 /dev/zero > /data/f",
    ]);
    d.docker_ok(&["volume", "create", "dfempty"]);
    d.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "dfopts",
    ]);

    let o = d.docker_ok(&["system", "df", "-v"]);
    let mut lines = o
        .lines()
        .skip_while(|l| !l.starts_with("Local Volumes space usage:"));
    assert!(lines.next().is_some(), "{o}");
    let mut section = lines.skip_while(|l| l.trim().is_empty());
    let header: Vec<&str> = section
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["VOLUME", "NAME", "LINKS", "SIZE"], "{o}");
    let mut rows: Vec<Vec<&str>> = section
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [vec!["dfempty", "0", "0B"], vec!["dfvol", "1", "12.3kB"]],
        "volumes with options are not counted:\n{o}"
    );

    let o = d.docker_ok(&["system", "df"]);
    let row: Vec<&str> = o
        .lines()
        .find(|l| l.starts_with("Local Volumes"))
        .unwrap_or_else(|| panic!("{o}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        ["Local", "Volumes", "2", "1", "12.3kB", "0B", "(0%)"],
        "{o}"
    );

    let r = d.request("GET", "/system/df", None);
    assert_eq!(r.status, 200);
    let df = r.json();
    let vols = df["Volumes"].as_array().unwrap();
    let usage = |name: &str| {
        vols.iter()
            .find(|v| v["Name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {}", df["Volumes"]))["UsageData"]
            .clone()
    };
    assert_eq!(usage("dfvol"), json!({"RefCount": 1, "Size": 12300}));
    assert_eq!(usage("dfempty"), json!({"RefCount": 0, "Size": 0}));
    assert_eq!(usage("dfvol").as_object().unwrap().len(), 2);
    assert!(
        vols.iter().all(|v| v["Name"] != "dfopts"),
        "{}",
        df["Volumes"]
    );
}

// ---- binds, tmpfs, --mount, --volumes-from ---------------------------------------

#[test]
fn binds_mount_host_directories_and_create_missing_ones() {
    let d = daemon();
    let hostdir = d.path("hostdir");
    std::fs::create_dir(&hostdir).unwrap();
    std::fs::write(hostdir.join("f"), "host\n").unwrap();
    let spec = format!("{}:/h", hostdir.display());
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            &spec,
            IMG,
            "sh",
            "-c",
            "cat /h/f; echo c > /h/c"
        ]),
        "host\n"
    );
    assert_eq!(std::fs::read_to_string(hostdir.join("c")).unwrap(), "c\n");
    let ro = format!("{}:/h:ro", hostdir.display());
    let o = d.docker(&["run", "--rm", "-v", &ro, IMG, "touch", "/h/x"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));

    // -v creates a missing host path as directories.
    let missing = d.path("missing/a/b");
    let spec_missing = format!("{}:/m", missing.display());
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &spec_missing,
        IMG,
        "sh",
        "-c",
        "echo made > /m/f",
    ]);
    assert!(missing.is_dir());
    assert_eq!(
        std::fs::read_to_string(missing.join("f")).unwrap(),
        "made\n"
    );
    // --mount does not.
    let gone = d.path("gone");
    fails_with(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={},dst=/x", gone.display()),
            IMG,
            "true",
        ],
        &format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            gone.display()
        ),
    );
    assert!(!gone.exists());

    // Inspect. rshared needs a shared host mount to start, so these are only created.
    d.docker_ok(&[
        "create",
        "--name",
        "binds",
        "-v",
        &spec,
        "-v",
        &format!("{}:/h2:ro", hostdir.display()),
        "--mount",
        &format!(
            "type=bind,src={},dst=/h3,readonly,bind-propagation=rshared",
            hostdir.display()
        ),
        IMG,
    ]);
    let c = inspect(&d, "binds");
    assert_eq!(
        compact(&mount_at(&c, "/h")),
        bind_mount(&hostdir, "/h", "", true, "rprivate")
    );
    assert_eq!(
        compact(&mount_at(&c, "/h2")),
        bind_mount(&hostdir, "/h2", "ro", false, "rprivate")
    );
    assert_eq!(
        compact(&mount_at(&c, "/h3")),
        bind_mount(&hostdir, "/h3", "", false, "rshared")
    );
    // The binds as sent (the CLI sends `-v` entries in no fixed order).
    let mut binds: Vec<String> = c["HostConfig"]["Binds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect();
    binds.sort();
    let mut want = vec![spec.clone(), format!("{}:/h2:ro", hostdir.display())];
    want.sort();
    assert_eq!(binds, want);

    // Recursive by default; bind-nonrecursive leaves out what is mounted below.
    let sub = hostdir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    host_tmpfs(&sub);
    std::fs::write(sub.join("inner"), "inner\n").unwrap();
    let o = d.docker(&["run", "--rm", "-v", &spec, IMG, "cat", "/h/sub/inner"]);
    let o2 = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!(
            "type=bind,src={},dst=/h,bind-nonrecursive=true",
            hostdir.display()
        ),
        IMG,
        "sh",
        "-c",
        "ls -A /h/sub | wc -l; cat /h/f",
    ]);
    host_umount(&sub);
    assert_eq!(out(&o), "inner\n", "{}", err(&o));
    assert!(o2.status.success(), "{}", err(&o2));
    assert_eq!(out(&o2), "0\nhost\n");
}

#[test]
fn tmpfs_mounts_enforce_their_size_and_dockers_default_options() {
    let d = daemon();
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t",
        IMG,
        "sh",
        "-c",
        "cat /proc/mounts; stat -c %a /t",
    ]);
    let opts = mount_options(&o, "/t");
    for flag in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(
            opts.iter().any(|o| o == flag),
            "{flag} missing from {opts:?}"
        );
    }
    assert_eq!(o.lines().last(), Some("1777"));
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:exec,mode=700",
        IMG,
        "sh",
        "-c",
        "cat /proc/mounts; stat -c %a /t",
    ]);
    let opts = mount_options(&o, "/t");
    assert!(!opts.iter().any(|o| o == "noexec"), "{opts:?}");
    assert!(opts.iter().any(|o| o == "nosuid"), "{opts:?}");
    assert_eq!(o.lines().last(), Some("700"));

    // 1 MiB: half of it fits, two do not.
    let fill = |mounts: &[&str], kib: &str| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(mounts);
        let count = format!("count={kib}");
        args.extend_from_slice(&[
            IMG,
            "dd",
            "if=/dev/zero",
            "of=/t/f",
            "bs=1024",
            count.as_str(),
        ]);
        d.docker(&args)
    };
    for mounts in [
        &["--tmpfs", "/t:size=1m"][..],
        &["--mount", "type=tmpfs,dst=/t,tmpfs-size=1m"],
    ] {
        let o = fill(mounts, "512");
        assert!(o.status.success(), "{mounts:?}: {}", err(&o));
        let o = fill(mounts, "2048");
        assert!(!o.status.success(), "{mounts:?}: 2 MB fit in 1 MB");
        assert!(
            err(&o).contains("No space left on device"),
            "{mounts:?}: {}",
            err(&o)
        );
    }

    // --mount: mode and size in the mount options, the same defaults.
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
        IMG,
        "sh",
        "-c",
        "cat /proc/mounts; stat -c %a /t",
    ]);
    let opts = mount_options(&o, "/t");
    for flag in ["nosuid", "nodev", "noexec", "size=1024k", "mode=1770"] {
        assert!(
            opts.iter().any(|o| o == flag),
            "{flag} missing from {opts:?}"
        );
    }
    assert_eq!(o.lines().last(), Some("1770"));
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/t,readonly",
        IMG,
        "touch",
        "/t/x",
    ]);
    assert!(!o.status.success());
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));

    // Inspect: --tmpfs is in HostConfig.Tmpfs only; --mount tmpfs is in Mounts.
    d.docker_ok(&[
        "create",
        "--name",
        "tc",
        "--tmpfs",
        "/t:size=1m",
        "--mount",
        "type=tmpfs,dst=/m,tmpfs-size=1m",
        IMG,
    ]);
    let c = inspect(&d, "tc");
    assert_eq!(c["HostConfig"]["Tmpfs"], json!({"/t": "size=1m"}));
    assert_eq!(
        c["HostConfig"]["Mounts"],
        json!([{"Type": "tmpfs", "Target": "/m", "TmpfsOptions": {"SizeBytes": 1048576}}])
    );
    assert_eq!(c["Mounts"].as_array().unwrap().len(), 1, "{}", c["Mounts"]);
    assert_eq!(
        compact(&mount_at(&c, "/m")),
        r#"{"Type":"tmpfs","Source":"","Destination":"/m","Mode":"","RW":true,"Propagation":""}"#
    );
}

#[test]
fn local_driver_options_mount_a_tmpfs_or_a_host_directory() {
    let d = daemon();
    d.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "tv",
    ]);
    assert_eq!(
        volume(&d, "tv")["Options"],
        json!({"device": "tmpfs", "o": "size=1m", "type": "tmpfs"})
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "tv:/data",
        IMG,
        "sh",
        "-c",
        "cat /proc/mounts; dd if=/dev/zero of=/data/big bs=1024 count=2048",
    ]);
    assert!(!o.status.success(), "2 MB fit in a 1 MB volume");
    let opts = mount_options(&out(&o), "/data");
    assert!(opts.iter().any(|o| o == "size=1024k"), "{opts:?}");
    assert!(err(&o).contains("No space left on device"), "{}", err(&o));
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "tv:/data",
        IMG,
        "dd",
        "if=/dev/zero",
        "of=/data/f",
        "bs=1024",
        "count=512",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    // Mounted only while in use.
    let data = vol_path(&d, "tv");
    wait_for("the tmpfs volume to be unmounted", &d, || {
        !is_host_mount_point(&data)
    });

    // A bind of a host directory.
    let hostdir = d.path("bindsrc");
    std::fs::create_dir(&hostdir).unwrap();
    std::fs::write(hostdir.join("fromhost"), "fromhost\n").unwrap();
    d.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &format!("device={}", hostdir.display()),
        "-o",
        "o=bind",
        "bv",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "bv:/data",
            IMG,
            "sh",
            "-c",
            "cat /data/fromhost; echo back > /data/back"
        ]),
        "fromhost\n"
    );
    assert_eq!(
        std::fs::read_to_string(hostdir.join("back")).unwrap(),
        "back\n"
    );
    let data = vol_path(&d, "bv");
    wait_for("the bind volume to be unmounted", &d, || {
        !is_host_mount_point(&data)
    });
    assert!(
        !data.join("back").exists(),
        "the data went to the host directory, not _data"
    );

    // The same options through --mount volume-opt, applied when the volume is created.
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=mv,dst=/data,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=1m",
        IMG,
        "sh",
        "-c",
        "cat /proc/mounts; dd if=/dev/zero of=/data/big bs=1024 count=2048",
    ]);
    assert!(!o.status.success(), "2 MB fit in a 1 MB volume");
    let opts = mount_options(&out(&o), "/data");
    assert!(opts.iter().any(|o| o == "size=1024k"), "{opts:?}");
    assert_eq!(
        volume(&d, "mv")["Options"],
        json!({"device": "tmpfs", "o": "size=1m", "type": "tmpfs"})
    );
}

#[test]
fn volumes_from_copies_mounts_and_ro_makes_them_read_only() {
    let d = daemon();
    d.docker_ok(&[
        "create", "--name", "src", "-v", "vf:/data", "-v", "/anon", IMG,
    ]);
    let anon = volume_at(&d, "src", "/anon");
    d.docker_ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        IMG,
        "sh",
        "-c",
        "echo hi > /data/f; echo there > /anon/g",
    ]);
    assert_eq!(
        std::fs::read_to_string(vol_path(&d, "vf").join("f")).unwrap(),
        "hi\n"
    );
    assert_eq!(
        std::fs::read_to_string(vol_path(&d, &anon).join("g")).unwrap(),
        "there\n"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        IMG,
        "sh",
        "-c",
        "cat /data/f /anon/g; touch /data/x",
    ]);
    assert!(!o.status.success());
    assert_eq!(out(&o), "hi\nthere\n");
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));
    // --rm of the borrowers did not take src's anonymous volume.
    assert!(volume_exists(&d, &anon));

    d.docker_ok(&["create", "--name", "rw", "--volumes-from", "src", IMG]);
    d.docker_ok(&["create", "--name", "ro", "--volumes-from", "src:ro", IMG]);
    let rw = inspect(&d, "rw");
    assert_eq!(
        rw["Mounts"].as_array().unwrap().len(),
        2,
        "{}",
        rw["Mounts"]
    );
    // The copies have an empty Mode.
    assert_eq!(
        compact(&mount_at(&rw, "/data")),
        volume_mount(&d, "vf", "/data", "", true)
    );
    assert_eq!(
        compact(&mount_at(&rw, "/anon")),
        volume_mount(&d, &anon, "/anon", "", true)
    );
    let ro = inspect(&d, "ro");
    assert_eq!(
        compact(&mount_at(&ro, "/data")),
        volume_mount(&d, "vf", "/data", "", false)
    );
    assert_eq!(
        compact(&mount_at(&ro, "/anon")),
        volume_mount(&d, &anon, "/anon", "", false)
    );
    assert_eq!(ro["HostConfig"]["VolumesFrom"], json!(["src:ro"]));

    // :rw cannot upgrade a read-only mount; -v overrides a borrowed destination.
    d.docker_ok(&["create", "--name", "src2", "-v", "vf:/r:ro", IMG]);
    d.docker_ok(&["create", "--name", "up", "--volumes-from", "src2:rw", IMG]);
    assert_eq!(
        compact(&mount_at(&inspect(&d, "up"), "/r")),
        volume_mount(&d, "vf", "/r", "", false)
    );
    d.docker_ok(&[
        "create",
        "--name",
        "ovr",
        "--volumes-from",
        "src",
        "-v",
        "other:/data",
        IMG,
    ]);
    assert_eq!(
        compact(&mount_at(&inspect(&d, "ovr"), "/data")),
        volume_mount(&d, "other", "/data", "z", true)
    );

    // A borrower holds a reference to an anonymous volume it copied: src's survives
    // src's own rm -v.
    d.docker_ok(&["rm", "-v", "src"]);
    assert!(volume_exists(&d, &anon));
    fails_with(&d, &["volume", "rm", &anon], "volume is in use");
}

#[test]
fn container_mount_specifications_are_validated_with_dockers_messages() {
    let d = daemon();
    let gone = d.path("nothing-here");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["-v".into(), "foo/bar:/x".into()],
            format!("create foo/bar: \"foo/bar\" {INVALID_NAME_TAIL}"),
        ),
        (
            vec!["--tmpfs".into(), "/t:bogus".into()],
            "invalid tmpfs option [\"bogus\"]".into(),
        ),
        (
            vec!["--tmpfs".into(), "relative".into()],
            "invalid mount path: 'relative' mount path must be absolute".into(),
        ),
        (
            vec!["--mount".into(), format!("type=bind,src={},dst=/x", gone.display())],
            format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                gone.display()
            ),
        ),
        (
            vec!["--mount".into(), "type=volume,dst=/x,readonly".into()],
            "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes".into(),
        ),
        (
            vec!["--mount".into(), "type=tmpfs,src=foo,dst=/x".into()],
            "invalid mount config for type \"tmpfs\": field Source must not be specified".into(),
        ),
        (
            vec!["--mount".into(), "type=foo,dst=/x".into()],
            "invalid mount config for type \"foo\": mount type unknown".into(),
        ),
        (
            vec!["-v".into(), "v1:/x".into(), "-v".into(), "v2:/x".into()],
            "Duplicate mount point: /x".into(),
        ),
        (
            vec!["--volumes-from".into(), "nosuch".into()],
            "No such container: nosuch".into(),
        ),
        (
            vec!["--volumes-from".into(), "nosuch:bogus".into()],
            "invalid mode: bogus".into(),
        ),
    ];
    for (flags, msg) in &cases {
        // --pull never: a 404 must not send the CLI to a registry.
        let mut args = vec!["run", "--rm", "--pull", "never"];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(&[IMG, "true"]);
        fails_with(&d, &args, msg);
    }
    assert!(!gone.exists());
    assert!(!volume_exists(&d, "foo"));
    assert!(!d.data_root().join("volumes/foo").exists());
}

// ---- safety -----------------------------------------------------------------------

#[test]
fn symlinked_mount_targets_resolve_inside_the_container() {
    let d = daemon();
    let tag = d
        .dir
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    // An existing host directory an absolute link points at, and a host path a
    // relative one climbs to.
    let hostside = d.path("hostside");
    std::fs::create_dir(&hostside).unwrap();
    std::fs::write(hostside.join("original"), "original").unwrap();
    let rel_target = format!("/tmp/{tag}-rel");
    let rel_link = format!("../../../../../../../../../../..{rel_target}");
    let hostside_s = hostside.to_str().unwrap().to_string();
    import_image(
        &d,
        "test/hostile:1",
        &["VOLUME /rel"],
        &[
            Extra::Dir("srv", 0o755, 0, 0),
            Extra::File("srv/inimage", b"in image\n", 0o644, 0, 0),
            Extra::Symlink("cfg", "/srv"),
            Extra::Symlink("abs", &hostside_s),
            Extra::Symlink("rel", &rel_link),
        ],
    );
    let hostile = "test/hostile:1";

    // A link within the image: the volume lands on its target, copied up from it.
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "cfgvol:/cfg",
        hostile,
        "sh",
        "-c",
        "echo c > /cfg/c; ls /srv",
    ]);
    assert_eq!(o, "c\ninimage\n");
    assert!(vol_path(&d, "cfgvol").join("c").exists());
    assert!(vol_path(&d, "cfgvol").join("inimage").exists());

    // An absolute link to a host directory: mounted at that path inside the root.
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "absvol:/abs",
        hostile,
        "sh",
        "-c",
        &format!("echo a > /abs/a; cat {hostside_s}/a"),
    ]);
    let abs_out = (o.status.success(), out(&o), err(&o));

    // A relative link climbing out: the image's own anonymous VOLUME on it.
    let o = d.docker(&[
        "run",
        "--name",
        "relc",
        hostile,
        "sh",
        "-c",
        &format!("echo r > /rel/r; cat {rel_target}/r"),
    ]);
    let rel_out = (o.status.success(), out(&o), err(&o));

    // A bind and a tmpfs on the links.
    let bindsrc = d.path("bindsrc");
    std::fs::create_dir(&bindsrc).unwrap();
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/rel", bindsrc.display()),
        "--tmpfs",
        "/abs",
        hostile,
        "sh",
        "-c",
        "echo b > /rel/b; echo t > /abs/t",
    ]);
    let bind_out = (o.status.success(), out(&o), err(&o));

    // Whatever happened, undo any escape before judging.
    let escaped_mounts: Vec<String> = host_mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&hostside_s) || m.starts_with(&rel_target))
        .collect();
    for m in &escaped_mounts {
        host_umount(Path::new(m));
    }
    let rel_exists = Path::new(&rel_target).exists();
    if rel_exists {
        let _ = std::fs::remove_dir_all(&rel_target);
    }
    let hostside_entries: Vec<String> = std::fs::read_dir(&hostside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();

    assert!(
        escaped_mounts.is_empty(),
        "mounted on the host: {escaped_mounts:?}"
    );
    assert!(!rel_exists, "{rel_target} was created on the host");
    assert_eq!(hostside_entries, ["original"], "written on the host");
    assert_eq!(abs_out, (true, "a\n".to_string(), String::new()));
    assert_eq!(rel_out, (true, "r\n".to_string(), String::new()));
    assert!(bind_out.0, "{}", bind_out.2);
    assert_eq!(
        std::fs::read_to_string(vol_path(&d, "absvol").join("a")).unwrap(),
        "a\n"
    );
    let anon = volume_at(&d, "relc", "/rel");
    assert_eq!(
        std::fs::read_to_string(vol_path(&d, &anon).join("r")).unwrap(),
        "r\n"
    );
    assert_eq!(std::fs::read_to_string(bindsrc.join("b")).unwrap(), "b\n");
}

#[test]
fn volumes_and_their_data_survive_a_daemon_kill() {
    let mut d = daemon();
    d.docker_ok(&["volume", "create", "--label", "keep=yes", "persist"]);
    d.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "optvol",
    ]);
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "persist:/data",
        IMG,
        "sh",
        "-c",
        "echo saved > /data/f",
    ]);
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "live",
            "-v",
            "persist:/data",
            "-v",
            "/anon",
            IMG,
            "sh",
            "-c",
            "echo live > /data/g; echo anon > /anon/h; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    let anon = volume_at(&d, "live", "/anon");
    wait_for("the container to write", &d, || {
        vol_path(&d, &anon).join("h").exists() && vol_path(&d, "persist").join("g").exists()
    });

    d.signal(libc::SIGKILL);
    let _ = wait_timeout(&mut d.child, PATIENCE);
    d.stopped = d.child.try_wait().unwrap();
    let d = d.restart();

    assert_eq!(volume_names(&d, &[]), sorted(&["persist", "optvol", &anon]));
    assert_eq!(volume(&d, "persist")["Labels"], json!({"keep": "yes"}));
    assert_eq!(
        volume(&d, "optvol")["Options"],
        json!({"device": "tmpfs", "o": "size=1m", "type": "tmpfs"})
    );
    assert_eq!(volume(&d, &anon)["Labels"], json!({ ANON_LABEL: "" }));
    // The references came back with the container.
    fails_with(
        &d,
        &["volume", "rm", "persist"],
        &format!("remove persist: volume is in use - [{id}]"),
    );
    assert_eq!(volume_names(&d, &["dangling=true"]), sorted(&["optvol"]));

    d.docker_ok(&["rm", "-f", "live"]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "persist:/data",
            "-v",
            &format!("{anon}:/a"),
            IMG,
            "cat",
            "/data/f",
            "/data/g",
            "/a/h"
        ]),
        "saved\nlive\nanon\n"
    );
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "optvol:/data",
        IMG,
        "cat",
        "/proc/mounts",
    ]);
    assert!(
        mount_options(&o, "/data").iter().any(|o| o == "size=1024k"),
        "{o}"
    );
    assert_eq!(d.docker_ok(&["volume", "rm", "persist"]), "persist\n");
    d.docker_ok(&["volume", "prune", "-f"]);
    assert_eq!(volume_names(&d, &[]), sorted(&["optvol"]));
}

// ---- events -----------------------------------------------------------------------

#[test]
fn volume_events_report_create_mount_unmount_destroy_and_prune() {
    let d = daemon();
    let since = now_secs() - 1;
    d.docker_ok(&["volume", "create", "evvol"]);
    d.docker_ok(&["volume", "create", "evvol"]);
    d.docker_ok(&["run", "--name", "evc", "-v", "evvol:/x", IMG, "true"]);
    let id = inspect(&d, "evc")["Id"].as_str().unwrap().to_string();
    d.docker_ok(&["run", "--rm", "-v", "/anon", IMG, "true"]);
    d.docker_ok(&["rm", "evc"]);
    d.docker_ok(&["volume", "rm", "evvol"]);
    let pruned = d.docker_ok(&["volume", "create"]).trim().to_string();
    d.docker_ok(&["volume", "prune", "-f"]);
    std::thread::sleep(Duration::from_millis(1100));
    let until = now_secs();
    let o = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=volume",
        "--format",
        "{{json .}}",
    ]);
    let events: Vec<Value> = o
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for e in &events {
        assert_eq!(e["Type"], "volume", "{e}");
        assert_eq!(e["scope"], "local", "{e}");
        assert!(e.get("status").is_none() && e.get("id").is_none(), "{e}");
    }
    let of = |name: &str| -> Vec<&Value> {
        events.iter().filter(|e| e["Actor"]["ID"] == name).collect()
    };
    let actions = |evs: &[&Value]| -> Vec<String> {
        evs.iter()
            .map(|e| e["Action"].as_str().unwrap().to_string())
            .collect()
    };

    let ev = of("evvol");
    assert_eq!(
        actions(&ev),
        ["create", "mount", "unmount", "destroy"],
        "{o}"
    );
    assert_eq!(ev[0]["Actor"]["Attributes"], json!({"driver": "local"}));
    assert_eq!(
        ev[1]["Actor"]["Attributes"],
        json!({
            "container": id,
            "destination": "/x",
            "driver": "local",
            "propagation": "",
            "read/write": "true",
        })
    );
    assert_eq!(
        ev[2]["Actor"]["Attributes"],
        json!({"container": id, "driver": "local"})
    );
    assert_eq!(ev[3]["Actor"]["Attributes"], json!({"driver": "local"}));

    let anon: Vec<&str> = events
        .iter()
        .filter_map(|e| e["Actor"]["ID"].as_str())
        .filter(|n| is_hex64(n) && *n != pruned)
        .collect();
    let anon = anon
        .first()
        .unwrap_or_else(|| panic!("no anonymous volume events:\n{o}"));
    let ev = of(anon);
    assert_eq!(
        actions(&ev),
        ["create", "mount", "unmount", "destroy"],
        "{o}"
    );
    assert_eq!(ev[1]["Actor"]["Attributes"]["destination"], "/anon");

    let ev = of(&pruned);
    assert_eq!(actions(&ev), ["create", "destroy"], "{o}");
    let ev = of("");
    assert_eq!(actions(&ev), ["prune"], "{o}");
    assert_eq!(ev[0]["Actor"]["Attributes"], json!({"reclaimed": "0"}));
    assert_eq!(events.len(), 11, "{o}");
}
