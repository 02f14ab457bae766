//! Images through the real docker CLI and the HTTP API: load of archives made by
//! real engines (fixtures), save and load back, import of a busybox root
//! filesystem, the image commands, events, and hostile archives.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{BUSYBOX_ID, Daemon, MULTI_DIFF_IDS, MULTI_ID};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixture(name: &str) -> String {
    common::fixture(name).display().to_string()
}

fn sha256(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A busybox root filesystem tarball made from Debian's busybox-static.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "/bin/busybox is required to build a root filesystem: apt-get install -y busybox-static"
    );
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy(bb, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "echo", "id", "vi"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let tarball = dir.join("busybox-rootfs.tar");
    let f = std::fs::File::create(&tarball).unwrap();
    let mut b = tar::Builder::new(f);
    b.follow_symlinks(false);
    b.append_dir_all(".", &root).unwrap();
    b.into_inner().unwrap().flush().unwrap();
    tarball
}

/// Runs the CLI with `input` on stdin.
fn docker_stdin(d: &Daemon, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut c = d.docker_cmd(args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn inspect(d: &Daemon, name: &str) -> Value {
    let out = d.docker_ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

#[test]
fn fixtures_load_with_the_ids_docker_gives_them() {
    let d = Daemon::start();
    let out = d.docker_ok(&["load", "-i", &fixture("busybox-docker20.tar")]);
    assert_eq!(out, "Loaded image: fixture/busybox:1.35\n");
    let out = d.docker_ok(&["load", "-i", &fixture("multilayer-docker20.tar")]);
    assert_eq!(out, "Loaded image: fixture/multilayer:1\n");
    let out = d.docker_ok(&["load", "-i", &fixture("multilayer-oci-podman.tar")]);
    assert_eq!(out, "Loaded image: localhost/fixture/multilayer:1\n");

    let b = inspect(&d, "fixture/busybox:1.35");
    assert_eq!(b["Id"], BUSYBOX_ID);
    assert_eq!(b["RepoTags"], serde_json::json!(["fixture/busybox:1.35"]));
    assert_eq!(b["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(
        b["RootFS"]["Layers"],
        serde_json::json!([MULTI_DIFF_IDS[0]])
    );
    let m = inspect(&d, "fixture/multilayer:1");
    assert_eq!(m["Id"], MULTI_ID);
    assert_eq!(m["RootFS"]["Layers"], serde_json::json!(MULTI_DIFF_IDS));
    assert_eq!(m["Config"]["WorkingDir"], "/app");
    assert_eq!(m["Config"]["User"], "65534");
    let p = inspect(&d, "localhost/fixture/multilayer:1");
    assert_eq!(p["RootFS"]["Layers"], serde_json::json!(MULTI_DIFF_IDS));

    let ids = d.docker_ok(&["images", "--no-trunc", "-q"]);
    assert!(ids.contains(BUSYBOX_ID) && ids.contains(MULTI_ID), "{ids}");
    // Loading again changes nothing.
    let out = d.docker_ok(&["load", "-i", &fixture("busybox-docker20.tar")]);
    assert_eq!(out, "Loaded image: fixture/busybox:1.35\n");
    let info = d.docker_ok(&["info", "--format", "{{.Images}} {{.Driver}}"]);
    assert_eq!(info.trim(), "3 overlay2");
}

#[test]
fn names_resolve_in_every_form_the_cli_sends() {
    let d = Daemon::start();
    d.docker_ok(&["load", "-i", &fixture("busybox-docker20.tar")]);
    d.docker_ok(&["tag", "fixture/busybox:1.35", "busybox"]);
    for name in [
        BUSYBOX_ID,
        &BUSYBOX_ID[7..],
        "62ff1febd856",
        "sha256:62ff1febd856",
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        "library/busybox",
        "fixture/busybox:1.35",
        "docker.io/fixture/busybox:1.35",
    ] {
        assert_eq!(inspect(&d, name)["Id"], BUSYBOX_ID, "resolving {name}");
    }
    let r = d.request("GET", "/v1.51/images/nosuch/json", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: nosuch:latest");
    let r = d.request("GET", "/v1.51/images/fixture/busybox/json", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: fixture/busybox:latest");
    let r = d.request("GET", "/v1.51/images/Busybox/json", None);
    assert_eq!(r.status, 400);
    let out = d.docker(&["image", "inspect", "nosuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such image: nosuch:latest"));
}

/// Mounts the image's layers (as inspect reports them) read-only with overlayfs.
struct LowerMount(PathBuf);

impl Drop for LowerMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn multilayer_root_has_its_whiteouts_applied() {
    let d = Daemon::start();
    d.docker_ok(&["load", "-i", &fixture("multilayer-docker20.tar")]);
    let m = inspect(&d, "fixture/multilayer:1");
    assert_eq!(m["GraphDriver"]["Name"], "overlay2");
    let data = &m["GraphDriver"]["Data"];
    let lowers = format!(
        "{}:{}",
        data["UpperDir"].as_str().unwrap(),
        data["LowerDir"].as_str().unwrap()
    );
    assert_eq!(lowers.split(':').count(), 4);
    let merged = d.path("merged");
    std::fs::create_dir(&merged).unwrap();
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(format!("lowerdir={lowers}").as_str()),
    )
    .expect("overlay mount of the image's layers");
    let _m = LowerMount(merged.clone());
    assert_eq!(
        std::fs::read_to_string(merged.join("app/two.txt")).unwrap(),
        "layer two\n"
    );
    assert!(std::fs::symlink_metadata(merged.join("app/deleted.txt")).is_err());
    assert!(std::fs::symlink_metadata(merged.join("bin/vi")).is_err());
    assert!(std::fs::symlink_metadata(merged.join("bin/sh")).is_ok());
    let opaque: BTreeSet<String> = std::fs::read_dir(merged.join("opaque"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(opaque, BTreeSet::from(["b".to_string()]));
}

#[test]
fn save_then_rmi_then_load_restores_the_same_image() {
    let d = Daemon::start();
    d.docker_ok(&["load", "-i", &fixture("multilayer-docker20.tar")]);
    let archive = d.path("saved.tar");
    d.docker_ok(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "fixture/multilayer:1",
    ]);

    // The archive: OCI layout and docker-archive in one, every blob its digest.
    let mut files = std::collections::BTreeMap::new();
    let mut a = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        files.insert(name, data);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        manifest[0]["Config"],
        format!("blobs/sha256/{}", &MULTI_ID[7..])
    );
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["fixture/multilayer:1"])
    );
    let layers: Vec<String> = MULTI_DIFF_IDS
        .iter()
        .map(|d| format!("blobs/sha256/{}", &d[7..]))
        .collect();
    assert_eq!(manifest[0]["Layers"], serde_json::json!(layers));
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let desc = &index["manifests"][0];
    assert_eq!(
        desc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        desc["annotations"]["io.containerd.image.name"],
        "docker.io/fixture/multilayer:1"
    );
    assert_eq!(
        desc["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    let oci_manifest_name = format!("blobs/sha256/{}", &desc["digest"].as_str().unwrap()[7..]);
    let oci_manifest: Value = serde_json::from_slice(&files[&oci_manifest_name]).unwrap();
    assert_eq!(oci_manifest["config"]["digest"], MULTI_ID);
    assert_eq!(oci_manifest["layers"].as_array().unwrap().len(), 4);
    assert!(files.contains_key("oci-layout"));
    let repositories: Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert_eq!(
        repositories["fixture/multilayer"]["1"],
        &MULTI_DIFF_IDS[3][7..]
    );
    for (name, data) in &files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            if !hex.is_empty() {
                assert_eq!(
                    sha256(data),
                    format!("sha256:{hex}"),
                    "{name} must hold what its name says"
                );
            }
        }
    }

    let out = d.docker_ok(&["rmi", "fixture/multilayer:1"]);
    assert!(out.contains("Untagged: fixture/multilayer:1"), "{out}");
    assert!(out.contains(&format!("Deleted: {MULTI_ID}")), "{out}");
    assert!(d.docker_ok(&["images", "-q"]).trim().is_empty());
    let out = d.docker_ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: fixture/multilayer:1\n");
    assert_eq!(inspect(&d, "fixture/multilayer:1")["Id"], MULTI_ID);

    // By ID: no name in the archive, and it loads as an untagged image elsewhere.
    let by_id = d.path("by-id.tar");
    d.docker_ok(&["save", "-o", by_id.to_str().unwrap(), &MULTI_ID[7..19]]);
    let other = Daemon::start();
    let out = other.docker_ok(&["load", "-i", by_id.to_str().unwrap()]);
    assert_eq!(out, format!("Loaded image ID: {MULTI_ID}\n"));
    let r = d.request("GET", "/v1.51/images/get?names=nosuch:1", None);
    assert_eq!(r.status, 404);
}

#[test]
fn legacy_archives_load_with_dockers_ids_and_parent_chain() {
    // The multi-layer fixture without manifest.json: only `repositories` and the v1
    // `<id>/json` + `<id>/layer.tar` chain. Every ID below is what Docker Engine
    // 20.10.24 shows after `docker load` of this same archive (`docker images -a`,
    // `docker history`): one image per v1 entry, chained by Parent.
    let legacy = common::legacy_fixture("multilayer-docker20.tar");
    let d = Daemon::start();
    let o = docker_stdin(&d, &["load"], &legacy);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Loaded image: fixture/multilayer:1\n"
    );
    let chain = [
        "sha256:d51e099b0fa6e773ee0b16266df3b4797356c6fee5ac5d28754a0535baa891b0",
        "sha256:fb962a89de398f8fcfb38796878cd0863cc4f42d8995543a958d301968dcb2d8",
        "sha256:f9e6b3f8e2c1168bdee1791f519573925ab070f331544b5bc69c3b7fb51739b6",
        "sha256:a8c49b4f7edd4ef084314d3f0cf9d75d627ea04d0c054c5832da5ede92adce23",
    ];
    let history = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Size}}",
        "fixture/multilayer:1",
    ]);
    let expected: String = chain
        .iter()
        .zip(["2B", "2B", "15B", "1.99MB"])
        .map(|(id, size)| format!("{id} {size}\n"))
        .collect();
    assert_eq!(history, expected);
    let m = inspect(&d, "fixture/multilayer:1");
    assert_eq!(m["Parent"], chain[1]);
    assert_eq!(m["RootFS"]["Layers"], serde_json::json!(MULTI_DIFF_IDS));
    // Intermediate images are listed with -a only, as Docker does.
    let all: BTreeSet<String> = d
        .docker_ok(&["images", "-a", "--no-trunc", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(all, chain.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        d.docker_ok(&["images", "--no-trunc", "-q"]),
        format!("{}\n", chain[0])
    );
}

#[test]
fn loading_a_tag_that_points_elsewhere_moves_it() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let tarball = busybox_rootfs(dir.path());
    let old = d.docker_ok(&["import", tarball.to_str().unwrap(), "fixture/busybox:1.35"]);
    let old = old.trim();
    let out = d.docker_ok(&["load", "-i", &fixture("busybox-docker20.tar")]);
    assert_eq!(
        out,
        format!(
            "The image fixture/busybox:1.35 already exists, renaming the old one with ID {old} to empty string\nLoaded image: fixture/busybox:1.35\n"
        )
    );
    let dangling = d.docker_ok(&["images", "--no-trunc", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling.trim(), old);
}

#[test]
fn import_and_the_image_commands() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let tarball = busybox_rootfs(dir.path());
    let t = tarball.to_str().unwrap();
    let id = d.docker_ok(&[
        "import",
        "-c",
        r#"CMD ["sh"]"#,
        "-c",
        "ENV A=1",
        "-c",
        "LABEL purpose=test",
        t,
        "bb:1",
    ]);
    let id = id.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let i = inspect(&d, "bb:1");
    assert_eq!(i["Id"], id);
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(i["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(i["Config"]["Labels"]["purpose"], "test");
    assert_eq!(i["Comment"], "Imported from -");
    assert_eq!(i["Os"], "linux");
    assert_eq!(i["Architecture"], dockerd::engine::system::goarch());
    assert_eq!(i["RepoTags"], serde_json::json!(["bb:1"]));
    assert!(i["Size"].as_u64().unwrap() > 500_000);
    assert!(
        i["Metadata"]["LastTagTime"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );

    // From stdin, with a message, gzip-compressed.
    let raw = std::fs::read(&tarball).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let out = docker_stdin(&d, &["import", "-m", "from a pipe", "-", "bb:gz"], &gz);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(inspect(&d, "bb:gz")["Comment"], "from a pipe");
    // Same files, so the same layer as the plain import.
    assert_eq!(inspect(&d, "bb:gz")["RootFS"], i["RootFS"]);
    let zst = zstd::encode_all(&raw[..], 1).unwrap();
    let out = docker_stdin(&d, &["import", "-", "bb:zst"], &zst);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(inspect(&d, "bb:zst")["RootFS"], i["RootFS"]);

    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let names: BTreeSet<&str> = images.lines().collect();
    assert_eq!(names, BTreeSet::from(["bb:1", "bb:gz", "bb:zst"]));
    let labelled = d.docker_ok(&["images", "-q", "--filter", "label=purpose=test"]);
    assert_eq!(labelled.trim(), &id[7..19]);
    let by_ref = d.docker_ok(&[
        "images",
        "--format",
        "{{.Tag}}",
        "--filter",
        "reference=bb:g*",
    ]);
    assert_eq!(by_ref.trim(), "gz");

    let since: BTreeSet<String> = d
        .docker_ok(&["images", "--format", "{{.Tag}}", "--filter", "since=bb:1"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(since, BTreeSet::from(["gz".to_string(), "zst".to_string()]));
    let before = d.docker_ok(&["images", "--format", "{{.Tag}}", "--filter", "before=bb:gz"]);
    assert_eq!(before.trim(), "1");
    let list = d.request("GET", "/v1.51/images/json", None).json();
    let item = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["RepoTags"] == serde_json::json!(["bb:1"]))
        .unwrap()
        .clone();
    assert_eq!(item["Id"], id);
    assert_eq!(item["Containers"], 0);
    assert_eq!(item["SharedSize"], -1);
    assert_eq!(item["ParentId"], "");
    assert_eq!(item["RepoDigests"], serde_json::json!([]));
    assert_eq!(item["Labels"]["purpose"], "test");
    assert!(item["Created"].as_i64().unwrap() > 1_700_000_000);
    let old = d.request("GET", "/v1.40/images/json", None).json();
    assert_eq!(old[0]["Containers"], -1);
    assert!(old[0]["VirtualSize"].is_u64());

    d.docker_ok(&["tag", "bb:1", "other/name:x"]);
    assert_eq!(inspect(&d, "other/name:x")["Id"], id);
    let history = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.Comment}}",
        "bb:1",
    ]);
    assert_eq!(history.trim(), format!("{id}|Imported from -"));

    // Untag while another tag remains; then delete.
    let out = d.docker_ok(&["rmi", "other/name:x"]);
    assert_eq!(out.trim(), "Untagged: other/name:x");
    let out = d.docker_ok(&["rmi", "bb:1"]);
    assert!(
        out.contains("Untagged: bb:1") && out.contains(&format!("Deleted: {id}")),
        "{out}"
    );
    let out = d.docker(&["rmi", "bb:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such image: bb:1"));

    // A dangling image: re-import over a tag, then prune it.
    let first = d.docker_ok(&["import", t, "bb:again"]);
    d.docker_ok(&["import", "-c", "USER 1", t, "bb:again"]);
    let pruned = d.docker_ok(&["image", "prune", "-f"]);
    assert!(
        pruned.contains(&format!("deleted: {}", first.trim())),
        "{pruned}"
    );
    assert!(
        d.docker_ok(&["images", "-q", "-f", "dangling=true"])
            .trim()
            .is_empty()
    );

    let df: Value =
        serde_json::from_slice(&d.request("GET", "/v1.51/system/df", None).body).unwrap();
    assert_eq!(df["Images"].as_array().unwrap().len(), 3);
    assert!(df["LayersSize"].as_u64().unwrap() > 500_000);
    assert_eq!(df["Containers"], serde_json::json!([]));
    assert_eq!(df["Volumes"], serde_json::json!([]));
    assert_eq!(df["BuildCache"], serde_json::json!([]));
    let out = d.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(out.lines().any(|l| l == "Images 3"), "{out}");

    let bad = d.docker(&["import", "-c", "RUN rm -rf /", t, "bad"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("run is not a valid change command"));
    let r = d.request("GET", "/v1.51/images/search?term=busybox", None);
    assert_eq!(r.status, 501);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("searching a registry is not supported")
    );
    let r = d.request(
        "POST",
        "/v1.51/images/create?fromSrc=http%3A%2F%2Fexample.com%2Fx.tar",
        None,
    );
    assert_eq!(r.status, 501);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("importing from a URL")
    );
}

#[test]
fn image_operations_are_events() {
    let d = Daemon::start();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let dir = tempfile::tempdir().unwrap();
    let tarball = busybox_rootfs(dir.path());
    d.docker_ok(&["import", tarball.to_str().unwrap(), "ev:1"]);
    d.docker_ok(&["load", "-i", &fixture("busybox-docker20.tar")]);
    d.docker_ok(&["tag", "ev:1", "ev:2"]);
    let saved = d.path("s.tar");
    d.docker_ok(&["save", "-o", saved.to_str().unwrap(), "ev:2"]);
    d.docker_ok(&["rmi", "ev:2"]);
    d.docker_ok(&["rmi", "ev:1"]);
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let out = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let actions: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        actions,
        vec![
            "tag", "import", "load", "tag", "save", "untag", "untag", "delete"
        ],
        "{out}"
    );
    assert!(out.lines().any(|l| l == "tag ev:2"), "{out}");
}

// ---- hostile archives ----

/// A tar entry with any name (the tar crate's builder refuses hostile ones).
fn entry(name: &str, kind: u8, data: &[u8], link: &str) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_size(data.len() as u64);
    h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
    h.set_mtime(1_600_000_000);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut t = entries.concat();
    t.extend_from_slice(&[0u8; 1024]);
    t
}

/// A docker-archive holding one image with `layer` as its only layer; the config
/// names `diff_id` (the layer's real digest unless a test lies).
fn docker_archive(layer: &[u8], diff_id: &str, layer_name: &str) -> Vec<u8> {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    }))
    .unwrap();
    let config_name = format!("{}.json", &sha256(&config)[7..]);
    let manifest = serde_json::to_vec(&serde_json::json!([
        { "Config": config_name, "RepoTags": ["hostile:1"], "Layers": [layer_name] }
    ]))
    .unwrap();
    let mut entries = vec![entry(&config_name, b'0', &config, "")];
    if !layer.is_empty() {
        entries.push(entry(layer_name, b'0', layer, ""));
    }
    entries.push(entry("manifest.json", b'0', &manifest, ""));
    tar_of(&entries)
}

/// Every path under the data root.
fn snapshot(root: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// Imports `tar` (expecting a 400 naming `what`) and loads it as a layer of an
/// image archive (expecting an error line naming `what`); the data root must be
/// unchanged after each.
fn refused_everywhere(d: &Daemon, name: &str, tar: &[u8], what: &str) {
    let before = snapshot(&d.data_root());
    let r = d.request(
        "POST",
        "/v1.51/images/create?fromSrc=-&repo=hostile",
        Some(("application/x-tar", tar)),
    );
    assert_eq!(
        r.status,
        400,
        "{name}: import must be refused: {}",
        r.text()
    );
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains(what),
        "{name}: import error {msg:?} should mention {what:?}"
    );
    assert_eq!(
        snapshot(&d.data_root()),
        before,
        "{name}: import left something behind"
    );

    let archive = docker_archive(tar, &sha256(tar), "layer.tar");
    let r = d.request(
        "POST",
        "/v1.51/images/load?quiet=1",
        Some(("application/x-tar", &archive)),
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let err = last["errorDetail"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: load must fail: {text}"));
    assert!(
        err.contains(what),
        "{name}: load error {err:?} should mention {what:?}"
    );
    assert_eq!(last["error"], err);
    assert_eq!(
        snapshot(&d.data_root()),
        before,
        "{name}: load left something behind"
    );
}

#[test]
fn hostile_layers_are_refused_and_leave_nothing() {
    let d = Daemon::start();
    let victim = d.path("victim");
    std::fs::create_dir(&victim).unwrap();
    let v = victim.display().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            tar_of(&[entry("../../../../escaped", b'0', b"x", "")]),
            "climbs above the layer root",
        ),
        (
            "inner dotdot",
            tar_of(&[entry("a/../../escaped", b'0', b"x", "")]),
            "climbs above the layer root",
        ),
        (
            "symlink parent",
            tar_of(&[
                entry("link", b'2', b"", &v),
                entry("link/planted", b'0', b"x", ""),
            ]),
            "runs through the symlink link",
        ),
        (
            "relative symlink parent",
            tar_of(&[
                entry("up", b'2', b"", "../../.."),
                entry("up/planted", b'0', b"x", ""),
            ]),
            "symlink",
        ),
        (
            "hard link out",
            tar_of(&[entry("h", b'1', b"", "../../../etc/passwd")]),
            "climbs above",
        ),
        (
            "hard link absent",
            tar_of(&[entry("h", b'1', b"", "/etc/passwd")]),
            "not in this layer",
        ),
        (
            "hard link via symlink",
            tar_of(&[
                entry("l", b'2', b"", "/etc"),
                entry("h", b'1', b"", "l/passwd"),
            ]),
            "symlink",
        ),
        (
            "dir replaced by file",
            tar_of(&[
                entry("d/", b'5', b"", ""),
                entry("d/f", b'0', b"1", ""),
                entry("d", b'0', b"x", ""),
            ]),
            "replace a directory",
        ),
        (
            "not a tar",
            b"this is plainly not a tar archive\n".repeat(40),
            "not a tar archive",
        ),
        (
            "truncated",
            tar_of(&[entry("big", b'0', &[7u8; 10_000], "")])[..4096].to_vec(),
            "truncated",
        ),
    ];
    for (name, t, what) in &cases {
        refused_everywhere(&d, name, t, what);
    }
    assert!(
        std::fs::read_dir(&victim).unwrap().next().is_none(),
        "nothing was planted outside"
    );

    // A leading slash is dropped, as Docker does, and symlink targets stay as written.
    let ok = tar_of(&[
        entry("/etc/abs.txt", b'0', b"fine", ""),
        entry("to-host", b'2', b"", "/etc/passwd"),
    ]);
    let r = d.request(
        "POST",
        "/v1.51/images/create?fromSrc=-&repo=fine",
        Some(("application/x-tar", &ok)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let upper = inspect(&d, "fine")["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(Path::new(&upper).join("etc/abs.txt")).unwrap(),
        "fine"
    );
    assert_eq!(
        std::fs::read_link(Path::new(&upper).join("to-host")).unwrap(),
        Path::new("/etc/passwd")
    );
}

#[test]
fn broken_image_archives_are_refused_and_leave_nothing() {
    let d = Daemon::start();
    let layer = tar_of(&[entry("f", b'0', b"content", "")]);
    let good_diff = sha256(&layer);
    let load = |archive: &[u8]| -> String {
        let r = d.request(
            "POST",
            "/v1.51/images/load?quiet=1",
            Some(("application/x-tar", archive)),
        );
        assert_eq!(r.status, 200);
        let text = r.text();
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        last["errorDetail"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("must fail: {text}"))
    };
    let before = snapshot(&d.data_root());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "missing layer",
            docker_archive(&[], &good_diff, "nope/layer.tar"),
            "nope/layer.tar, which is not in the archive",
        ),
        (
            "wrong diff id",
            docker_archive(&layer, &sha256(b"other"), "layer.tar"),
            "invalid diffID for layer 0",
        ),
        (
            "blob digest",
            docker_archive(
                &layer,
                &good_diff,
                &format!("blobs/sha256/{}", "0".repeat(64)),
            ),
            "does not match its digest",
        ),
        (
            "no manifest",
            tar_of(&[entry("hello.txt", b'0', b"hi", "")]),
            "no manifest.json",
        ),
        (
            "null manifest",
            tar_of(&[entry("manifest.json", b'0', b"null", "")]),
            "manifest cannot be null",
        ),
        (
            "outer dotdot",
            tar_of(&[entry("../manifest.json", b'0', b"[]", "")]),
            "climbs above",
        ),
        (
            "outer not a tar",
            b"garbage".repeat(200),
            "not a tar archive",
        ),
        (
            "outer truncated",
            docker_archive(&layer, &good_diff, "layer.tar")[..1500].to_vec(),
            "truncated",
        ),
    ];
    for (name, archive, what) in &cases {
        let err = load(archive);
        assert!(
            err.contains(what),
            "{name}: {err:?} should mention {what:?}"
        );
        assert_eq!(
            snapshot(&d.data_root()),
            before,
            "{name}: left something behind"
        );
    }
    // A CLI user sees the message and a failure.
    let bad = d.path("bad.tar");
    std::fs::write(&bad, &cases[1].1).unwrap();
    let out = d.docker(&["load", "-i", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid diffID"));
    // And the same archive with the right diff ID loads.
    let fine = docker_archive(&layer, &good_diff, "layer.tar");
    let r = d.request(
        "POST",
        "/v1.51/images/load?quiet=1",
        Some(("application/x-tar", &fine)),
    );
    assert!(r.text().contains("Loaded image: hostile:1"), "{}", r.text());
}
