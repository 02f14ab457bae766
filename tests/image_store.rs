//! The image store as a library, on the real fixture archives: IDs exactly as
//! Docker computes them, byte-exact save, and both root filesystem drivers.
//! (The daemon-level behaviour, through the docker CLI, is in `tests/images.rs`.)

use std::fs::File;
use std::path::Path;

mod common;

use common::{BUSYBOX_ID, MULTI_DIFF_IDS, MULTI_ID, fixture, legacy_fixture};
use dockerd::image::load::{LoadMsg, LoadOptions};
use dockerd::image::{Driver, ImageStore};

fn opts() -> LoadOptions {
    LoadOptions {
        quiet: true,
        host_arch: "amd64".to_string(),
    }
}

fn load(store: &ImageStore, name: &str) -> Vec<String> {
    let mut lines = Vec::new();
    store
        .load(File::open(fixture(name)).unwrap(), &opts(), &mut |m| {
            if let LoadMsg::Line(l) = m {
                lines.push(l)
            }
        })
        .unwrap();
    lines
}

#[test]
fn fixtures_load_with_dockers_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let lines = load(&store, "busybox-docker20.tar");
    assert_eq!(lines, vec!["Loaded image: fixture/busybox:1.35\n"]);
    let r = store.resolve("fixture/busybox:1.35").unwrap();
    assert_eq!(r.id, BUSYBOX_ID);
    assert_eq!(r.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(r.repo_tags, vec!["fixture/busybox:1.35"]);
    assert_eq!(store.resolve("62ff1febd856").unwrap().id, BUSYBOX_ID);
    assert_eq!(
        store.resolve("docker.io/fixture/busybox:1.35").unwrap().id,
        BUSYBOX_ID
    );
    let e = store.resolve("fixture/busybox").unwrap_err().to_string();
    assert_eq!(e, "No such image: fixture/busybox:latest");

    load(&store, "multilayer-docker20.tar");
    let m = store.resolve("fixture/multilayer:1").unwrap();
    assert_eq!(m.id, MULTI_ID);
    assert_eq!(m.diff_ids, MULTI_DIFF_IDS);

    let lines = load(&store, "multilayer-oci-podman.tar");
    assert_eq!(
        lines,
        vec!["Loaded image: localhost/fixture/multilayer:1\n"]
    );
    let p = store.resolve("localhost/fixture/multilayer:1").unwrap();
    assert_eq!(p.diff_ids, MULTI_DIFF_IDS);
}

#[test]
fn save_is_byte_exact_and_loads_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    load(&store, "multilayer-docker20.tar");
    let plan = store
        .plan_save(&["fixture/multilayer:1".to_string()])
        .unwrap();
    let mut archive = Vec::new();
    store.write_save(&plan, &mut archive).unwrap();

    let dir2 = tempfile::tempdir().unwrap();
    let store2 = ImageStore::open(dir2.path()).unwrap();
    let mut lines = Vec::new();
    store2
        .load(&archive[..], &opts(), &mut |m| {
            if let LoadMsg::Line(l) = m {
                lines.push(l)
            }
        })
        .unwrap();
    assert_eq!(lines, vec!["Loaded image: fixture/multilayer:1\n"]);
    assert_eq!(store2.resolve("fixture/multilayer:1").unwrap().id, MULTI_ID);
}

fn check_multilayer_root(root: &Path) {
    assert_eq!(
        std::fs::read_to_string(root.join("app/two.txt")).unwrap(),
        "layer two\n"
    );
    assert!(!root.join("app/deleted.txt").exists());
    assert!(std::fs::symlink_metadata(root.join("bin/vi")).is_err());
    assert!(root.join("bin/sh").exists() || std::fs::symlink_metadata(root.join("bin/sh")).is_ok());
    let mut opaque: Vec<String> = std::fs::read_dir(root.join("opaque"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    opaque.sort();
    assert_eq!(opaque, vec!["b"]);
}

#[test]
fn rootfs_with_overlay_and_with_copies() {
    for driver in [Driver::Overlay, Driver::Vfs] {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open_with(dir.path(), Some(driver)).unwrap();
        load(&store, "multilayer-docker20.tar");
        store.create_rw_layer("fixture/multilayer:1", "c1").unwrap();
        let root = store.mount_rw_layer("c1").unwrap();
        assert_eq!(
            store.mount_rw_layer("c1").unwrap(),
            root,
            "mount is idempotent"
        );
        check_multilayer_root(&root);
        std::fs::write(root.join("new.txt"), b"12345").unwrap();
        let size = store.rw_layer_size("c1").unwrap();
        match driver {
            Driver::Overlay => assert_eq!(size, 5),
            Driver::Vfs => assert!(size > 1_000_000, "vfs counts the whole copy: {size}"),
        }
        store.unmount_rw_layer("c1").unwrap();
        store.unmount_rw_layer("c1").unwrap();
        // An image whose container still exists keeps its layers, even once untagged.
        store
            .remove("fixture/multilayer:1", true, false, &|_| Vec::new())
            .unwrap();
        let root = store.mount_rw_layer("c1").unwrap();
        check_multilayer_root(&root);
        store.unmount_rw_layer("c1").unwrap();
        store.remove_rw_layer("c1").unwrap();
        store.remove_rw_layer("c1").unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path().join("image/layers"))
            .unwrap()
            .collect();
        assert!(
            left.is_empty(),
            "layers of removed images go once no container uses them"
        );
    }
}

#[test]
fn removal_follows_dockers_rules_for_images_in_use() {
    use dockerd::image::{ImageUser, Removed};
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    load(&store, "busybox-docker20.tar");
    let ctr = "1234abcd5678ef901234abcd5678ef901234abcd5678ef901234abcd5678ef90";
    let stopped = |id: &str| {
        if id == BUSYBOX_ID {
            vec![ImageUser {
                container_id: ctr.to_string(),
                running: false,
            }]
        } else {
            Vec::new()
        }
    };
    let running = |id: &str| {
        if id == BUSYBOX_ID {
            vec![ImageUser {
                container_id: ctr.to_string(),
                running: true,
            }]
        } else {
            Vec::new()
        }
    };
    let err = |r: dockerd::image::Result<Vec<Removed>>| match r {
        Err(dockerd::image::Error::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    };
    assert_eq!(
        err(store.remove("fixture/busybox:1.35", false, false, &stopped)),
        "conflict: unable to remove repository reference \"fixture/busybox:1.35\" (must force) - container 1234abcd5678 is using its referenced image 62ff1febd856"
    );
    assert_eq!(
        err(store.remove("62ff1febd856", false, false, &stopped)),
        "conflict: unable to delete 62ff1febd856 (must be forced) - image is being used by stopped container 1234abcd5678"
    );
    assert_eq!(
        err(store.remove("62ff1febd856", true, false, &running)),
        "conflict: unable to delete 62ff1febd856 (cannot be forced) - image is being used by running container 1234abcd5678"
    );
    // A second tag: either tag can go while the container uses the image.
    store
        .tag(
            "fixture/busybox:1.35",
            &dockerd::image::reference::parse_normalized("other/bb:2").unwrap(),
        )
        .unwrap();
    assert_eq!(
        err(store.remove("62ff1febd856", false, false, &|_| Vec::new())),
        "conflict: unable to delete 62ff1febd856 (must be forced) - image is referenced in multiple repositories"
    );
    let r = store.remove("other/bb:2", false, false, &stopped).unwrap();
    assert_eq!(
        r,
        vec![Removed::Untagged {
            image: BUSYBOX_ID.to_string(),
            reference: "other/bb:2".to_string()
        }]
    );
    // Forced by ID with a stopped container: untag and delete, layer included.
    let r = store.remove(BUSYBOX_ID, true, false, &stopped).unwrap();
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(
        r[0],
        Removed::Untagged {
            image: BUSYBOX_ID.to_string(),
            reference: "fixture/busybox:1.35".to_string()
        }
    );
    assert_eq!(
        r[1],
        Removed::Deleted {
            id: BUSYBOX_ID.to_string()
        }
    );
    assert!(
        matches!(&r[2], Removed::DeletedLayer { chain_id, .. } if chain_id == MULTI_DIFF_IDS[0])
    );
    assert!(store.resolve(BUSYBOX_ID).is_err());
}

#[test]
fn a_restart_keeps_images_and_sweeps_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ImageStore::open(dir.path()).unwrap();
        load(&store, "multilayer-docker20.tar");
    }
    // What a crash mid-load leaves: a half-unpacked layer and a staged archive.
    let tmp_layer = dir.path().join("image/layers/.tmp-1-0-layer");
    std::fs::create_dir_all(tmp_layer.join("diff/x")).unwrap();
    let staged = dir.path().join("image/tmp/.tmp-1-0-load");
    std::fs::create_dir_all(&staged).unwrap();
    // And a layer no image uses (committed just before a crash).
    let orphan = dir.path().join("image/layers").join("a".repeat(64));
    std::fs::create_dir_all(orphan.join("diff")).unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    assert_eq!(store.resolve("fixture/multilayer:1").unwrap().id, MULTI_ID);
    assert!(!tmp_layer.exists() && !staged.exists() && !orphan.exists());
    let root_left: Vec<_> = std::fs::read_dir(dir.path().join("image/layers"))
        .unwrap()
        .collect();
    assert_eq!(root_left.len(), 4);
}

/// A tar archive of `(name, bytes)` files.
fn tar_files(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn sha256(data: &[u8]) -> String {
    dockerd::image::digest::sha256_of(data)
}

#[test]
fn deep_images_mount_past_the_mount_option_limit() {
    // 60 distinct layers: their lower directories do not fit one page of mount
    // options, so the mount goes through the new mount API.
    let layers: Vec<Vec<u8>> = (0..60)
        .map(|i| tar_files(&[(&format!("layer{i:02}.txt"), format!("{i}\n").as_bytes())]))
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap();
    let mut files: Vec<(String, Vec<u8>)> = vec![("config.json".into(), config)];
    let names: Vec<String> = (0..60).map(|i| format!("l{i}.tar")).collect();
    for (n, l) in names.iter().zip(&layers) {
        files.push((n.clone(), l.clone()));
    }
    let manifest = serde_json::to_vec(&serde_json::json!([
        { "Config": "config.json", "RepoTags": ["deep:1"], "Layers": names }
    ]))
    .unwrap();
    files.push(("manifest.json".into(), manifest));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let archive = tar_files(&refs);

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open_with(dir.path(), Some(Driver::Overlay)).unwrap();
    store.load(&archive[..], &opts(), &mut |_| {}).unwrap();
    store.create_rw_layer("deep:1", "deep").unwrap();
    let root = store.mount_rw_layer("deep").unwrap();
    for i in 0..60 {
        assert_eq!(
            std::fs::read_to_string(root.join(format!("layer{i:02}.txt"))).unwrap(),
            format!("{i}\n")
        );
    }
    store.remove_rw_layer("deep").unwrap();
}

#[test]
fn oci_layouts_with_zstd_layers_and_legacy_archives_load() {
    // OCI layout, zstd layer, nested in a multi-platform index.
    let layer = tar_files(&[("hello.txt", b"hi\n")]);
    let zst = zstd::encode_all(&layer[..], 3).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": { "Cmd": ["cat", "/hello.txt"] },
        "rootfs": { "type": "layers", "diff_ids": [sha256(&layer)] },
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": sha256(&zst), "size": zst.len() }],
    }))
    .unwrap();
    let inner = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", "1".repeat(64)), "size": 1,
              "platform": { "architecture": "arm64", "os": "linux" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(&manifest), "size": manifest.len(),
              "platform": { "architecture": "amd64", "os": "linux" } },
        ],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha256(&inner), "size": inner.len(),
                        "annotations": { "io.containerd.image.name": "docker.io/library/zstd:1", "org.opencontainers.image.ref.name": "1" } }],
    }))
    .unwrap();
    let blob = |d: &[u8]| format!("blobs/sha256/{}", &sha256(d)[7..]);
    let (bc, bm, bi, bz) = (blob(&config), blob(&manifest), blob(&inner), blob(&zst));
    let archive = tar_files(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
        (&bc, &config),
        (&bm, &manifest),
        (&bi, &inner),
        (&bz, &zst),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut lines = Vec::new();
    store
        .load(&archive[..], &opts(), &mut |m| {
            if let LoadMsg::Line(l) = m {
                lines.push(l)
            }
        })
        .unwrap();
    assert_eq!(lines, vec!["Loaded image: zstd:1\n"]);
    let r = store.resolve("zstd:1").unwrap();
    assert_eq!(r.id, sha256(&config));
    assert_eq!(r.diff_ids, vec![sha256(&layer)]);

    // The legacy layout: the Docker 20 fixtures without their manifest.json. The
    // expected IDs are what Docker Engine 20.10.24 reported after `docker load` of
    // these same archives: the image config is rebuilt from the v1 `json` files, so
    // the multi-layer image gets a different ID than from its manifest form.
    store
        .load(
            &legacy_fixture("busybox-docker20.tar")[..],
            &opts(),
            &mut |_| {},
        )
        .unwrap();
    let r = store.resolve("fixture/busybox:1.35").unwrap();
    assert_eq!(
        r.id,
        "sha256:62ff1febd85635a022b76464af8af6a86b412b4f44052cc2b8fc0edc27185128"
    );
    assert_eq!(r.diff_ids, vec![MULTI_DIFF_IDS[0]]);
    assert_eq!(r.config.cmd, Some(vec!["sh".to_string()]));
    store
        .load(
            &legacy_fixture("multilayer-docker20.tar")[..],
            &opts(),
            &mut |_| {},
        )
        .unwrap();
    let r = store.resolve("fixture/multilayer:1").unwrap();
    assert_eq!(
        r.id,
        "sha256:d51e099b0fa6e773ee0b16266df3b4797356c6fee5ac5d28754a0535baa891b0"
    );
    assert_eq!(r.diff_ids, MULTI_DIFF_IDS.to_vec());
}
