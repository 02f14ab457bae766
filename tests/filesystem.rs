//! A container's filesystem as a whole, with the real docker CLI: `docker diff`
//! (added, changed, deleted, through whiteouts and opaque directories),
//! `docker export`, and `docker commit` (the committed image runs with the changes
//! and the `--change`d config, shows in `docker history`, and keeps its ID through
//! save and load), and `docker cp` both ways, into running and stopped
//! containers, never leaving the container's root.

mod common;

use std::process::Stdio;

use common::*;

const IMG: &str = BUSYBOX_IMG;

/// The container's changes as `docker diff` prints them, sorted.
fn diff(d: &Daemon, name: &str) -> Vec<String> {
    let mut v: Vec<String> = d
        .docker_ok(&["diff", name])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// What the container does to its filesystem: adds, changes, deletes a file, and
/// deletes a directory and makes it again.
const CHANGES: &str = "rm /bin/vi; mkdir -p /tmp/newdir; echo g > /tmp/newdir/g; \
     echo changed >> /etc/group; mkdir -p /opt/a; touch /opt/a/one; rm -rf /var; mkdir -p /var/new";

#[test]
fn diff_reports_added_changed_and_deleted() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "base",
        IMG,
        "sh",
        "-c",
        "mkdir -p /var/old/keep",
    ]);
    d.docker_ok(&["commit", "base", "based:1"]);
    d.docker_ok(&[
        "run",
        "--name",
        "ch",
        "-v",
        "/data",
        "based:1",
        "sh",
        "-c",
        &format!("{CHANGES}; echo v > /data/in-volume"),
    ]);
    assert_eq!(
        diff(&d, "ch"),
        [
            "A /data",
            "A /opt",
            "A /opt/a",
            "A /opt/a/one",
            "A /tmp/newdir",
            "A /tmp/newdir/g",
            "A /var/new",
            "C /bin",
            "C /etc",
            "C /etc/group",
            "C /tmp",
            "C /var",
            "D /bin/vi",
            "D /var/old",
        ]
    );
    // Each directory comes before what is under it.
    let order = d.docker_ok(&["diff", "ch"]);
    let lines: Vec<&str> = order.lines().collect();
    let pos = |p: &str| lines.iter().position(|l| *l == p).unwrap();
    assert!(pos("C /tmp") < pos("A /tmp/newdir") && pos("A /tmp/newdir") < pos("A /tmp/newdir/g"));

    // SizeRw counts what was added or changed, not directories or deletions.
    let group: u64 = d
        .docker_ok(&["run", "--rm", "based:1", "wc", "-c", "/etc/group"])
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        field(&d, "ch", "{{.SizeRw}}").parse::<u64>().ok(),
        None,
        "SizeRw only with --size"
    );
    let size = d.docker_ok(&["inspect", "-s", "-f", "{{.SizeRw}}", "ch"]);
    assert_eq!(
        size.trim(),
        (group + "changed\n".len() as u64 + 2).to_string()
    );

    // A container that changed nothing: Docker's `null`, and no output.
    d.docker_ok(&["create", "--name", "fresh", IMG]);
    let r = d.request("GET", "/containers/fresh/changes", None);
    assert_eq!((r.status, r.text().trim()), (200, "null"));
    assert_eq!(d.docker_ok(&["diff", "fresh"]), "");
    let o = d.docker(&["diff", "nosuch"]);
    assert!(err(&o).contains("No such container: nosuch"), "{}", err(&o));
}

#[test]
fn export_is_the_root_filesystem_without_mounts() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "ex",
        "-v",
        "/data",
        IMG,
        "sh",
        "-c",
        &format!("{CHANGES}; echo v > /data/in-volume"),
    ]);
    let out = d.path("ex.tar");
    d.docker_ok(&["export", "-o", out.to_str().unwrap(), "ex"]);
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&out)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&list.stdout).to_string();
    let has = |n: &str| names.lines().any(|l| l.trim_end_matches('/') == n);
    assert!(
        has("tmp/newdir/g") && has("opt/a/one") && has("bin/sh") && has("data"),
        "{names}"
    );
    assert!(!has("bin/vi") && !has("data/in-volume"), "{names}");
    // The content is the container's.
    let o = std::process::Command::new("tar")
        .args(["-xOf", out.to_str().unwrap(), "tmp/newdir/g"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "g\n");
    // A running container too (its root stays mounted), and the event is there.
    d.docker_ok(&["run", "-d", "--name", "live", IMG, "sleep", "1000"]);
    let o = d
        .docker_cmd(&["export", "live"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(o.stdout.len() > 1 << 20, "{} bytes", o.stdout.len());
    d.docker_ok(&["exec", "live", "true"]);
    assert!(events_so_far(&d, &["event=export"], "{{.Action}}").contains("export"));
}

#[test]
fn commit_makes_an_image_with_the_changes_and_the_config() {
    let d = daemon_with_busybox();
    d.docker_ok(&["run", "--name", "cm", IMG, "sh", "-c", CHANGES]);
    let id = d.docker_ok(&[
        "commit",
        "-a",
        "Ann <ann@example.com>",
        "-m",
        "my message",
        "-c",
        "CMD [\"cat\", \"/tmp/newdir/g\"]",
        "-c",
        "ENV GREETING=hi",
        "-c",
        "WORKDIR /opt/a",
        "-c",
        "EXPOSE 8080",
        "-c",
        "LABEL purpose=test",
        "-c",
        "USER nobody",
        "cm",
        "mine:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.docker_ok(&["run", "--rm", "mine:1"]), "g\n");
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "mine:1",
            "sh",
            "-c",
            "echo $GREETING; pwd; id -u; test -e /bin/vi || echo no-vi; ls /var"
        ]),
        "hi\n/opt/a\n65534\nno-vi\nnew\n"
    );
    let f = |fmt: &str| field(&d, "mine:1", fmt);
    assert_eq!(f("{{json .Config.ExposedPorts}}"), r#"{"8080/tcp":{}}"#);
    assert_eq!(f("{{.Config.Labels.purpose}}"), "test");
    assert_eq!(f("{{.Author}}"), "Ann <ann@example.com>");
    assert_eq!(f("{{.Comment}}"), "my message");
    let parent = field(&d, IMG, "{{.Id}}");
    assert_eq!(f("{{.Parent}}"), parent);
    assert_eq!(
        f("{{len .RootFS.Layers}}"),
        (field(&d, IMG, "{{len .RootFS.Layers}}")
            .parse::<usize>()
            .unwrap()
            + 1)
        .to_string()
    );
    let history = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "mine:1",
    ]);
    assert_eq!(
        history.lines().next(),
        Some(format!("sh -c {CHANGES}|my message").as_str()),
        "{history}"
    );
    let events = events_so_far(
        &d,
        &["type=container", "event=commit"],
        "{{.Actor.Attributes.imageRef}}",
    );
    assert!(events.contains("mine:1"), "{events}");

    // save → load keeps the ID (the layer's diff ID is the digest of its tar).
    let tar = d.path("mine.tar");
    d.docker_ok(&["save", "-o", tar.to_str().unwrap(), "mine:1"]);
    d.docker_ok(&["rm", "cm"]);
    d.docker_ok(&["rmi", "mine:1"]);
    let loaded = d.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(loaded.contains("mine:1"), "{loaded}");
    assert_eq!(field(&d, "mine:1", "{{.Id}}"), id.trim());

    // A container that changed nothing commits an empty layer.
    d.docker_ok(&["create", "--name", "same", IMG]);
    d.docker_ok(&["commit", "same", "same:1"]);
    assert_eq!(
        field(&d, "same:1", "{{len .RootFS.Layers}}"),
        field(&d, IMG, "{{len .RootFS.Layers}}")
    );

    // Docker's refusals.
    let o = d.docker(&["commit", "-c", "RUN true", "same", "x:1"]);
    assert!(
        err(&o).contains("run is not a valid change command"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["commit", "nosuch", "x:1"]);
    assert!(err(&o).contains("No such container: nosuch"), "{}", err(&o));
}

#[test]
fn commit_pauses_a_running_container_by_default() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "run",
        IMG,
        "sh",
        "-c",
        "echo x > /x; sleep 1000",
    ]);
    wait_for("the file", &d, || {
        d.docker(&["exec", "run", "test", "-e", "/x"])
            .status
            .success()
    });
    d.docker_ok(&["commit", "run", "running:1"]);
    let actions = events_so_far(&d, &["container=run"], "{{.Action}}");
    let seq: Vec<&str> = actions
        .lines()
        .filter(|a| ["pause", "commit", "unpause"].contains(a))
        .collect();
    assert_eq!(seq, ["pause", "commit", "unpause"], "{actions}");
    assert_eq!(field(&d, "run", "{{.State.Status}}"), "running");
    d.docker_ok(&["commit", "--pause=false", "run", "running:2"]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "running:2", "cat", "/x"]),
        "x\n"
    );
}

#[test]
fn cp_out_of_a_running_container() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "src",
        "-v",
        "/data",
        IMG,
        "sh",
        "-c",
        "mkdir -p /tmp/d/sub; echo f > /tmp/d/sub/f; echo v > /data/v; \
         ln -s /etc/group /tmp/lnk; mkdir /x; ln -s /../../.. /x/esc; touch /tmp/ready; sleep 1000",
    ]);
    wait_for("the files", &d, || {
        d.docker(&["exec", "src", "test", "-e", "/tmp/ready"])
            .status
            .success()
    });
    let out = d.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let to = |p: &str| out.join(p).to_str().unwrap().to_string();
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();

    // A file, a directory, a volume's content, a symlink as a symlink and with -L.
    d.docker_ok(&["cp", "src:/tmp/d/sub/f", &to("f")]);
    assert_eq!(read("f"), "f\n");
    d.docker_ok(&["cp", "src:/tmp/d", &to("")]);
    assert_eq!(read("d/sub/f"), "f\n");
    d.docker_ok(&["cp", "src:/data", &to("")]);
    assert_eq!(read("data/v"), "v\n");
    d.docker_ok(&["cp", "src:/tmp/lnk", &to("")]);
    assert_eq!(
        std::fs::read_link(out.join("lnk")).unwrap(),
        std::path::Path::new("/etc/group")
    );
    d.docker_ok(&["cp", "-L", "src:/tmp/lnk", &to("followed")]);
    assert!(
        read("followed").starts_with("root:"),
        "{}",
        read("followed")
    );
    // `-`: the tar itself.
    let o = d
        .docker_cmd(&["cp", "src:/tmp/d", "-"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let mut names: Vec<String> = tar_names(&o.stdout);
    names.sort();
    assert_eq!(names, ["d", "d/sub", "d/sub/f"]);

    // The stat header of HEAD.
    let r = d.request("HEAD", "/containers/src/archive?path=/tmp/lnk", None);
    assert_eq!(r.status, 200);
    let stat = r
        .header("x-docker-container-path-stat")
        .unwrap()
        .to_string();
    let mut base64 = std::process::Command::new("base64");
    base64.arg("-d");
    let stat = String::from_utf8(with_input(base64, stat.as_bytes()).stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&stat).unwrap();
    assert_eq!(v["name"], "lnk");
    assert_eq!(v["mode"], 134218239u64);
    assert_eq!(v["linkTarget"], "/etc/group");

    // Symlinks never lead out of the container: `/x/esc` climbs to the container's
    // root, where there is no host file.
    let canary = format!("/dockerd-cp-canary-{}", std::process::id());
    std::fs::write(&canary, "HOST").unwrap();
    let o = d.docker(&["cp", &format!("src:/x/esc{canary}"), &to("canary")]);
    std::fs::remove_file(&canary).unwrap();
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!(
            "Could not find the file /x/esc{canary} in container src"
        )),
        "{}",
        err(&o)
    );
    assert!(!out.join("canary").exists());
    let o = d.docker(&["cp", "src:/nope", &to("")]);
    assert!(
        err(&o).contains("Could not find the file /nope in container src"),
        "{}",
        err(&o)
    );
}

#[test]
fn cp_into_a_running_container() {
    let d = daemon_with_busybox();
    d.docker_ok(&["volume", "create", "ro"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "dst",
        "--user",
        "nobody",
        "-v",
        "/data",
        "-v",
        "ro:/ro:ro",
        IMG,
        "sleep",
        "1000",
    ]);
    let src = d.path("src");
    std::fs::create_dir_all(src.join("dir/sub")).unwrap();
    std::fs::write(src.join("f.txt"), "one\n").unwrap();
    std::fs::write(src.join("dir/sub/g"), "two\n").unwrap();
    std::os::unix::fs::symlink("sub/g", src.join("dir/lnk")).unwrap();
    std::os::unix::fs::lchown(src.join("f.txt"), Some(4242), Some(4343)).unwrap();
    let from = |p: &str| src.join(p).to_str().unwrap().to_string();
    let sh = |cmd: &str| d.docker_ok(&["exec", "-u", "0", "dst", "sh", "-c", cmd]);

    // Into a directory, to a new name, a whole directory to a new name, into a
    // volume; the archive's owner is kept.
    d.docker_ok(&["cp", &from("f.txt"), "dst:/tmp/"]);
    d.docker_ok(&["cp", &from("f.txt"), "dst:/tmp/renamed.txt"]);
    // Again: a file replaces a file.
    d.docker_ok(&["cp", &from("f.txt"), "dst:/tmp/renamed.txt"]);
    d.docker_ok(&["cp", &from("dir"), "dst:/tmp/newdir"]);
    d.docker_ok(&["cp", &from("dir"), "dst:/data"]);
    assert_eq!(
        sh(
            "cat /tmp/f.txt /tmp/renamed.txt /tmp/newdir/sub/g /data/dir/lnk; \
            readlink /tmp/newdir/lnk; stat -c %u:%g /tmp/f.txt"
        ),
        "one\none\ntwo\ntwo\nsub/g\n4242:4343\n"
    );
    // -a: owned by the container's user.
    d.docker_ok(&["cp", "-a", &from("f.txt"), "dst:/tmp/owned.txt"]);
    assert_eq!(sh("stat -c %u:%g /tmp/owned.txt"), "65534:65534\n");
    // `-`: a tar from stdin.
    let tar = tar_of(&src, "f.txt");
    docker_with_input(&d, &["cp", "-", "dst:/tmp/newdir"], &tar);
    assert_eq!(sh("cat /tmp/newdir/f.txt"), "one\n");

    // Docker's refusals.
    let refused = |args: &[&str], what: &str| {
        let o = d.docker(args);
        assert!(!o.status.success(), "{args:?} must fail");
        assert!(err(&o).contains(what), "{args:?}: {}", err(&o));
    };
    sh("mkdir -p /tmp/isdir/f.txt");
    refused(
        &["cp", &from("f.txt"), "dst:/tmp/isdir"],
        "cannot overwrite directory \"/tmp/isdir/f.txt\" with non-directory \"/tmp/isdir\"",
    );
    refused(
        &["cp", &from("f.txt"), "dst:/ro/"],
        "mounted volume is marked read-only",
    );
    refused(
        &["cp", &from("f.txt"), "dst:/nodir/x"],
        "Could not find the file /nodir in container dst",
    );
    let r = d.request(
        "PUT",
        "/containers/dst/archive?path=/tmp/f.txt",
        Some(("application/x-tar", &tar)),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("extraction point is not a directory"));
    // An entry that climbs above the destination: refused, nothing outside.
    let evil = hostile_tar("../../evil.txt");
    let r = d.request(
        "PUT",
        "/containers/dst/archive?path=/tmp/newdir",
        Some(("application/x-tar", &evil)),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("is outside of"), "{}", r.text());
    assert_eq!(
        sh("ls /evil.txt /tmp/evil.txt 2>&1 | grep -c 'No such'"),
        "2\n"
    );
    d.docker_ok(&["rm", "-f", "dst"]);

    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "rofs",
        "--read-only",
        IMG,
        "sleep",
        "1000",
    ]);
    refused(
        &["cp", &from("f.txt"), "rofs:/tmp/"],
        "container rootfs is marked read-only",
    );
    d.docker_ok(&["rm", "-f", "rofs"]);
}

/// `tar -C dir -c what`.
fn tar_of(dir: &std::path::Path, what: &str) -> Vec<u8> {
    let o = std::process::Command::new("tar")
        .args(["-C", dir.to_str().unwrap(), "-c", what])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    o.stdout
}

/// Runs `c` with `input` on its stdin and its output captured.
fn with_input(mut c: std::process::Command, input: &[u8]) -> std::process::Output {
    let mut c = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(input).unwrap();
    }
    c.wait_with_output().unwrap()
}

/// Runs the docker CLI with `input` on its stdin; it must succeed.
fn docker_with_input(d: &Daemon, args: &[&str], input: &[u8]) {
    let o = with_input(d.docker_cmd(args), input);
    assert!(o.status.success(), "docker {args:?}: {}", err(&o));
}

/// A tar of one file named `name` (which `tar` itself would not write).
fn hostile_tar(name: &str) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(b"00000000004\0");
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut t = h.to_vec();
    let mut data = b"EVIL".to_vec();
    data.resize(512, 0);
    t.extend(data);
    t.extend([0u8; 1024]);
    t
}

#[test]
fn cp_to_and_from_a_stopped_container() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "st",
        "-v",
        "/data",
        IMG,
        "sh",
        "-c",
        "echo v > /data/v; mkdir /tmp/d; echo f > /tmp/d/f",
    ]);
    let out = d.path("stopped-out");
    std::fs::create_dir_all(&out).unwrap();
    let to = |p: &str| out.join(p).to_str().unwrap().to_string();
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    // Out of its layer, its volume and the daemon's /etc file.
    d.docker_ok(&["cp", "st:/tmp/d", &to("")]);
    d.docker_ok(&["cp", "st:/data/v", &to("v")]);
    d.docker_ok(&["cp", "st:/etc/hostname", &to("hostname")]);
    assert_eq!(read("d/f"), "f\n");
    assert_eq!(read("v"), "v\n");
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "st"]);
    assert_eq!(read("hostname").trim(), &id.trim()[..12]);
    // Into its layer and its volume; the container then sees both.
    std::fs::write(out.join("in.txt"), "in\n").unwrap();
    d.docker_ok(&["cp", &to("in.txt"), "st:/tmp/d/"]);
    d.docker_ok(&["cp", &to("in.txt"), "st:/data/in2.txt"]);
    // Nothing stays mounted in the daemon's namespace.
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", d.pid())).unwrap();
    assert!(!mounts.contains(id.trim()), "{mounts}");
    d.docker_ok(&["commit", "st", "stcopy"]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "st",
            "stcopy",
            "cat",
            "/tmp/d/in.txt",
            "/data/in2.txt"
        ]),
        "in\nin\n"
    );
    d.docker_ok(&["start", "-a", "st"]);

    // A hostile image: /etc is a symlink to /. Both ways stay in the container.
    let rootfs = d.path("hostile");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::os::unix::fs::symlink("/", rootfs.join("etc")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    docker_with_input(&d, &["import", "-", "hostile"], &tar_of(&rootfs, "."));
    d.docker_ok(&["create", "--name", "hc", "hostile", "x"]);
    let canary = format!("dockerd-cp-hostile-{}", std::process::id());
    std::fs::write(out.join(&canary), "from the host\n").unwrap();
    d.docker_ok(&["cp", &to(&canary), "hc:/etc/"]);
    assert!(!std::path::Path::new(&format!("/{canary}")).exists());
    d.docker_ok(&["cp", &format!("hc:/{canary}"), &to("back")]);
    assert_eq!(read("back"), "from the host\n");
    let o = d.docker(&["cp", "hc:/etc/passwd", &to("passwd")]);
    assert!(
        !o.status.success(),
        "the host's /etc/passwd must not be found"
    );
    assert!(!out.join("passwd").exists());
}

#[test]
fn cp_out_while_the_container_swaps_a_directory_for_a_symlink() {
    let d = daemon_with_busybox();
    let canary = format!("dockerd-cp-swap-{}", std::process::id());
    // On the host, at the container's paths: what an escape would find.
    std::fs::create_dir_all(format!("/tmp/{canary}")).unwrap();
    std::fs::write(format!("/tmp/{canary}/secret"), "HOST").unwrap();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "swap",
        IMG,
        "sh",
        "-c",
        &format!(
            "while true; do rm -rf /w; mkdir -p /w/tmp/{canary}; echo container > /w/tmp/{canary}/secret; \
             sleep 0.02; rm -rf /w; ln -s / /w; sleep 0.01; done"
        ),
    ]);
    let out = d.path("swapout");
    std::fs::create_dir_all(&out).unwrap();
    let mut copied = 0;
    for i in 0..40 {
        let dest = out.join(format!("c{i}"));
        let o = d.docker(&[
            "cp",
            &format!("swap:/w/tmp/{canary}/secret"),
            dest.to_str().unwrap(),
        ]);
        if o.status.success() {
            copied += 1;
            // The container's file, possibly caught between its creation and
            // its write; never the host's.
            let got = std::fs::read_to_string(&dest).unwrap();
            assert!(got == "container\n" || got.is_empty(), "{got:?}");
        }
        let o = d
            .docker_cmd(&["cp", "swap:/w", "-"])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        if o.status.success() {
            let names = tar_names(&o.stdout);
            assert!(
                names.iter().all(|n| n == "w" || n.starts_with("w/tmp")),
                "{names:?}"
            );
        }
    }
    // Copies into the swapping directory land in the container, never on the
    // host directory of the same path.
    let input = out.join("input");
    std::fs::write(&input, "copied in\n").unwrap();
    let mut put = 0;
    for _ in 0..40 {
        let o = d.docker(&[
            "cp",
            input.to_str().unwrap(),
            &format!("swap:/w/tmp/{canary}/"),
        ]);
        put += o.status.success() as u32;
    }
    assert!(put > 0, "no copy into the container was made");
    let host: Vec<_> = std::fs::read_dir(format!("/tmp/{canary}"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(host, ["secret"]);
    assert_eq!(
        std::fs::read_to_string(format!("/tmp/{canary}/secret")).unwrap(),
        "HOST"
    );
    std::fs::remove_dir_all(format!("/tmp/{canary}")).unwrap();
    eprintln!(
        "{copied} of 40 copies out found the container's file, {put} of 40 copies in were made"
    );
    d.docker_ok(&["rm", "-f", "swap"]);
}

/// The entry names of a tar.
fn tar_names(data: &[u8]) -> Vec<String> {
    let mut c = std::process::Command::new("tar");
    c.arg("-t");
    let o = with_input(c, data);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn commit_keeps_file_capabilities() {
    let d = daemon_with_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "caps",
        IMG,
        "cp",
        "/bin/busybox",
        "/bin/capped",
    ]);
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "caps"]);
    // `setcap cap_net_bind_service+ep`: struct vfs_cap_data, revision 2.
    let mut caps = Vec::new();
    caps.extend(0x0200_0001u32.to_le_bytes());
    caps.extend((1u32 << 10).to_le_bytes());
    caps.extend([0u8; 12]);
    let upper = d
        .data_root()
        .join(format!("overlay2/{}/diff/bin/capped", id.trim()));
    set_xattr(&upper, "security.capability", &caps);
    d.docker_ok(&["commit", "caps", "capped"]);
    let layers = d.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RootFS.Layers}}",
        "capped",
    ]);
    let layers: Vec<String> = serde_json::from_str(&layers).unwrap();
    let top = layers.last().unwrap().trim_start_matches("sha256:");
    let committed = d
        .data_root()
        .join(format!("image/layers/{top}/diff/bin/capped"));
    assert_eq!(get_xattr(&committed, "security.capability"), Some(caps));
}

fn set_xattr(p: &std::path::Path, name: &str, value: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "set {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn get_xattr(p: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and buffer.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}
