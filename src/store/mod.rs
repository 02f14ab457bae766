//! Crash-safe files under data-root.
//!
//! Every metadata write in the daemon goes through [`write_atomic`]: the bytes go to a
//! temporary file in the same directory, are fsynced, and the file is renamed over the
//! target, then the directory is fsynced. A crash at any instant leaves either the old
//! or the new content, never a torn file. Temporary files carry [`TEMP_PREFIX`] so that
//! [`sweep_temp_files`] can remove the orphans a crash leaves behind.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every temporary file or directory this module (or a caller using
/// [`temp_path`]) creates; nothing else in data-root starts with it.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Writes `data` to `path` so that readers (and a crash) see the old or the new
/// content, never a mix. The file gets mode `mode` (before umask).
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_of(path)?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| with_path(e, "write", path))
}

/// Replaces `path` atomically (temp file + rename) without waiting for the disk: for
/// files derived from other state and rewritten before every use, where a crash may
/// lose the write but must never leave a half-written file in place.
pub fn write_replace(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| with_path(e, "write", path))
}

/// [`write_atomic_mode`] with mode 0600: metadata is the daemon's own business.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o600)
}

/// Serializes `value` as JSON and writes it with [`write_atomic`].
pub fn write_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_atomic(path, &data)
}

/// A sibling path of `target` for a temporary file or directory, unique within this
/// process and across processes (pid + counter).
pub fn temp_path(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp_name = format!("{TEMP_PREFIX}{}-{n}-{name}", std::process::id());
    match target.parent() {
        Some(p) => p.join(tmp_name),
        None => PathBuf::from(tmp_name),
    }
}

/// Flushes a directory's entries (a rename or a new file in it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes the temporary files and directories a crash left in `dir` (not recursive:
/// each store sweeps the directories it writes into). Returns how many were removed.
pub fn sweep_temp_files(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(with_path(e, "read directory", dir)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let res = if entry.file_type()?.is_dir() {
            remove_dir_all_robust(&path)
        } else {
            fs::remove_file(&path)
        };
        match res {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!(
                "could not remove leftover temporary file {}: {e}",
                path.display()
            ),
        }
    }
    Ok(removed)
}

/// `remove_dir_all` that also copes with read-only directories inside the tree
/// (image layers keep the modes their archive gave them).
pub fn remove_dir_all_robust(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(first) => {
            make_tree_writable(path);
            fs::remove_dir_all(path).map_err(|_| first)
        }
    }
}

fn make_tree_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            make_tree_writable(&entry.path());
        }
    }
}

/// Creates `dir` and its parents with mode 0700 for the new ones.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| with_path(e, "create directory", dir))
}

fn parent_of(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => Ok(Path::new(".")),
    }
}

/// Adds the operation and path to an I/O error, the way Go's `*PathError` reads:
/// `open /var/lib/docker/engine-id: permission denied`.
pub fn with_path(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{op} {}: {}", path.display(), strip_os_suffix(&e)),
    )
}

/// `No such file or directory (os error 2)` → `no such file or directory`, as Go prints it.
pub fn strip_os_suffix(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if e.raw_os_error().is_some() => c.to_lowercase().chain(chars).collect(),
        _ => s,
    }
}

/// Resolves `unsafe_path` as if `root` were `/`: `..` stops at the root and symlinks
/// are followed inside it. The result need not exist.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> io::Result<PathBuf> {
    let mut queue: VecDeque<OsString> = components(unsafe_path);
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = queue.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = root.join(&resolved).join(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "too many symlinks resolving {} in {}",
                            unsafe_path.display(),
                            root.display()
                        ),
                    ));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in components(&target).into_iter().rev() {
                    queue.push_front(c);
                }
            }
            _ => resolved.push(part),
        }
    }
    Ok(root.join(resolved))
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink as ln;

    #[test]
    fn secure_join_keeps_symlinks_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("real/etc")).unwrap();
        ln("/real/etc", root.join("etc")).unwrap();
        ln("../../../../../../host", root.join("escape")).unwrap();
        ln("/", root.join("slash")).unwrap();
        ln("loop2", root.join("loop1")).unwrap();
        ln("loop1", root.join("loop2")).unwrap();

        assert_eq!(
            secure_join(root, Path::new("/etc/hosts")).unwrap(),
            root.join("real/etc/hosts")
        );
        assert_eq!(
            secure_join(root, Path::new("/escape/x")).unwrap(),
            root.join("host/x")
        );
        assert_eq!(
            secure_join(root, Path::new("/../../etc")).unwrap(),
            root.join("real/etc")
        );
        assert_eq!(
            secure_join(root, Path::new("/slash/proc")).unwrap(),
            root.join("proc")
        );
        assert!(secure_join(root, Path::new("/loop1")).is_err());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn sweep_removes_only_temp_entries() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("keep"), b"x").unwrap();
        fs::write(temp_path(&dir.path().join("a")), b"x").unwrap();
        fs::create_dir(temp_path(&dir.path().join("b"))).unwrap();
        assert_eq!(sweep_temp_files(dir.path()).unwrap(), 2);
        assert!(dir.path().join("keep").exists());
    }

    #[test]
    fn path_errors_read_like_go() {
        let e = fs::read("/nonexistent/x").unwrap_err();
        let e = with_path(e, "open", Path::new("/nonexistent/x"));
        assert_eq!(
            e.to_string(),
            "open /nonexistent/x: no such file or directory"
        );
    }
}
