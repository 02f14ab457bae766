//! Docker's copy-up: a new, empty volume mounted where the image has content
//! starts with a copy of that content, owner and mode of the directory included.

use std::path::Path;

use crate::engine::Result;

/// Copies the image's `destination` (resolved inside `rootfs`, so a symlink in the
/// image never leads out of it) into the volume directory `volume` when that is
/// empty. Returns whether anything was copied.
pub fn populate(rootfs: &Path, destination: &str, volume: &Path) -> Result<bool> {
    let src = crate::store::secure_join(rootfs, Path::new(destination))?;
    let Ok(meta) = std::fs::symlink_metadata(&src) else {
        return Ok(false);
    };
    if !meta.is_dir() {
        return Ok(false);
    }
    let empty = std::fs::read_dir(volume)
        .map_err(|e| crate::store::with_path(e, "read", volume))?
        .next()
        .is_none();
    if !empty {
        return Ok(false);
    }
    crate::image::rootfs::copy_tree(&src, volume)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    #[test]
    fn copies_into_empty_volumes_only_and_stays_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("data/sub")).unwrap();
        std::fs::write(rootfs.join("data/sub/f"), b"image").unwrap();
        std::fs::hard_link(rootfs.join("data/sub/f"), rootfs.join("data/hard")).unwrap();
        for i in 0..50 {
            std::fs::write(rootfs.join(format!("data/n{i}")), i.to_string()).unwrap();
        }
        symlink("/etc/passwd", rootfs.join("data/link")).unwrap();
        std::fs::set_permissions(rootfs.join("data"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        std::os::unix::fs::chown(rootfs.join("data"), Some(1000), Some(1000)).unwrap();
        // A symlink to a host directory resolves inside the root (to nothing here).
        symlink("/usr", rootfs.join("evil")).unwrap();

        let vol = dir.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        assert!(populate(&rootfs, "/data", &vol).unwrap());
        assert_eq!(std::fs::read(vol.join("sub/f")).unwrap(), b"image");
        assert_eq!(
            std::fs::read_link(vol.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        let m = std::fs::metadata(&vol).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o750, 1000));

        // Not empty any more: nothing is overwritten.
        std::fs::write(rootfs.join("data/sub/f"), b"changed").unwrap();
        assert!(!populate(&rootfs, "/data", &vol).unwrap());
        assert_eq!(std::fs::read(vol.join("sub/f")).unwrap(), b"image");

        let vol2 = dir.path().join("vol2");
        std::fs::create_dir(&vol2).unwrap();
        assert!(!populate(&rootfs, "/evil", &vol2).unwrap());
        assert!(!populate(&rootfs, "/missing", &vol2).unwrap());
        assert_eq!(std::fs::read_dir(&vol2).unwrap().count(), 0);
    }
}
