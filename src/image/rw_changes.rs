//! What a container changed in its root filesystem (`docker diff`), its changes as
//! a layer tar (`docker commit`), and its whole filesystem as a tar (`docker
//! export`).
//!
//! With overlay the container's upper directory holds exactly what it changed:
//! new and modified entries, whiteouts (character devices 0/0) for deletions,
//! and opaque directories (`trusted.overlay.opaque=y`) for directories deleted and
//! made again. Each entry is compared with the image's view (the lower layers,
//! with their own whiteouts and opaque directories) to tell added from modified,
//! as Docker's naive diff does. Nothing here follows a symlink: every entry is
//! read with `lstat`, and the walk stays in the layer directories.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::{self, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::rootfs::Driver;
use super::{Error, ImageStore, Result};

/// Paths the daemon makes in every container's root itself (mount points of
/// `/proc`, `/sys`, `/dev` and the daemon-written files). Docker keeps them in an
/// init layer, so they never show in `docker diff`, a commit or the size.
pub const INIT_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
];

/// How a path changed, with Docker's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

/// One entry of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute, inside the container.
    pub path: String,
    pub kind: Kind,
}

const OPAQUE: &str = "trusted.overlay.opaque";

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let name = CString::new(OPAQUE).expect("no NUL");
    let mut buf = [0u8; 4];
    // SAFETY: valid C strings and buffer; lgetxattr does not follow a final symlink.
    let n = unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), 4) };
    n == 1 && buf[0] == b'y'
}

/// A file's capabilities (`setcap`), which a committed layer keeps, as Docker's
/// does: the value of `security.capability`, if any.
fn file_capabilities(path: &Path) -> Option<Vec<u8>> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and buffer; lgetxattr does not follow a final symlink.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n > 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

/// Writes a PAX extended header with one record (`key=value`) for the next entry.
fn append_pax<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &Path,
    key: &str,
    value: &[u8],
) -> io::Result<()> {
    // The record's length counts its own digits.
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_mode(0o644);
    h.set_size(record.len() as u64);
    let base = name.file_name().unwrap_or(name.as_os_str());
    let pax_name = name
        .parent()
        .unwrap_or(Path::new(""))
        .join("PaxHeaders.0")
        .join(base);
    // Only the last 100 bytes of a long name fit; the name is informative.
    let bytes = pax_name.as_os_str().as_bytes();
    let short = &bytes[bytes.len().saturating_sub(99)..];
    h.as_mut_bytes()[..short.len()].copy_from_slice(short);
    h.set_cksum();
    tar.append(&h, record.as_slice())
}

fn lstat(p: &Path) -> Option<Metadata> {
    fs::symlink_metadata(p).ok()
}

/// The image's view of `rel` (relative, no `..`): the entry of the topmost lower
/// layer that has it, unless a whiteout, a non-directory or an opaque directory
/// above hides it; with its path in that layer.
fn lower_entry(lowers: &[PathBuf], rel: &Path) -> Option<(PathBuf, Metadata)> {
    let comps: Vec<_> = rel.components().collect();
    for layer in lowers {
        let mut at = layer.clone();
        let mut hidden_below = false;
        let mut in_layer = true;
        for c in &comps[..comps.len().saturating_sub(1)] {
            at.push(c);
            match lstat(&at) {
                None => {
                    in_layer = false;
                    break;
                }
                Some(m) if !m.is_dir() => return None,
                Some(_) => hidden_below |= is_opaque(&at),
            }
        }
        if in_layer {
            let p = layer.join(rel);
            if let Some(m) = lstat(&p) {
                return (!is_whiteout(&m)).then_some((p, m));
            }
        }
        if hidden_below {
            return None;
        }
    }
    None
}

/// The names in the image's view of directory `rel`.
fn lower_children(lowers: &[PathBuf], rel: &Path) -> BTreeSet<std::ffi::OsString> {
    let mut seen = BTreeSet::new();
    let mut names = BTreeSet::new();
    for layer in lowers {
        let dir = layer.join(rel);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if !seen.insert(name.clone()) {
                continue;
            }
            if lower_entry(lowers, &rel.join(&name)).is_some() {
                names.insert(name);
            }
        }
        if is_opaque(&dir) {
            break;
        }
    }
    names
}

/// Whether `new` differs from `old` as Docker's naive diff sees it: a directory by
/// its type, mode and owner; anything else also by size, time and device.
fn differs(old: &Metadata, new: &Metadata) -> bool {
    if old.file_type() != new.file_type()
        || old.mode() != new.mode()
        || old.uid() != new.uid()
        || old.gid() != new.gid()
        || old.rdev() != new.rdev()
    {
        return true;
    }
    if new.is_dir() {
        return false;
    }
    old.size() != new.size() || old.mtime() != new.mtime() || old.mtime_nsec() != new.mtime_nsec()
}

fn sorted_entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut v: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    v.sort_by_key(|e| e.file_name());
    Ok(v)
}

fn abs(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// Whether the directory at container path `path` (`/etc` in an image without
/// one) is there only for the daemon's own files.
fn holds_only_init_paths(dir: &Path, path: &str) -> bool {
    let prefix = format!("{path}/");
    INIT_PATHS.iter().any(|p| p.starts_with(&prefix))
        && fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().all(|e| {
                let child = format!("{prefix}{}", e.file_name().to_string_lossy());
                INIT_PATHS.contains(&child.as_str())
            })
        })
}

/// The changes under upper directory `upper`/`rel`, appended to `out`; returns
/// whether any were found.
fn walk(
    upper: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    added: bool,
    out: &mut Vec<Change>,
) -> io::Result<bool> {
    let mut any = false;
    for e in sorted_entries(&upper.join(rel))? {
        let child = rel.join(e.file_name());
        let path = abs(&child);
        if INIT_PATHS.contains(&path.as_str()) {
            continue;
        }
        let Some(meta) = lstat(&e.path()) else {
            continue;
        };
        if is_whiteout(&meta) {
            if !added {
                out.push(Change {
                    path,
                    kind: Kind::Deleted,
                });
                any = true;
            }
            continue;
        }
        let old = if added {
            None
        } else {
            lower_entry(lowers, &child)
        };
        match old {
            None if meta.is_dir() && holds_only_init_paths(&e.path(), &path) => {}
            None => {
                out.push(Change {
                    path,
                    kind: Kind::Added,
                });
                any = true;
                if meta.is_dir() {
                    walk(upper, &child, lowers, true, out)?;
                }
            }
            Some((_, old)) if meta.is_dir() && old.is_dir() => {
                let at = out.len();
                let mut changed = walk(upper, &child, lowers, false, out)?;
                if is_opaque(&e.path()) {
                    // Deleted and made again: what the image had and is gone now.
                    let now: BTreeSet<_> = sorted_entries(&e.path())?
                        .into_iter()
                        .map(|e| e.file_name())
                        .collect();
                    for name in lower_children(lowers, &child) {
                        if !now.contains(&name) {
                            out.push(Change {
                                path: abs(&child.join(&name)),
                                kind: Kind::Deleted,
                            });
                            changed = true;
                        }
                    }
                }
                if changed || differs(&old, &meta) {
                    out.insert(
                        at,
                        Change {
                            path,
                            kind: Kind::Modified,
                        },
                    );
                    any = true;
                }
            }
            Some((old_path, old)) => {
                // A file's capabilities count too, as with Docker.
                if differs(&old, &meta)
                    || (meta.is_file()
                        && file_capabilities(&old_path) != file_capabilities(&e.path()))
                {
                    out.push(Change {
                        path,
                        kind: Kind::Modified,
                    });
                    any = true;
                }
                if meta.is_dir() {
                    // A directory where the image had something else.
                    walk(upper, &child, lowers, true, out)?;
                }
            }
        }
    }
    Ok(any)
}

/// Writes the tree under `root` (entries relative to it, no root entry) to `tar`;
/// with `layer`, overlay whiteouts and opaque directories become Docker's `.wh.`
/// entries and [`INIT_PATHS`] are left out.
pub fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    layer: bool,
) -> io::Result<()> {
    let mut links = std::collections::HashMap::new();
    append_dir(tar, root, Path::new(""), layer, &mut links)
}

fn append_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    layer: bool,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    for e in sorted_entries(&root.join(rel))? {
        let child = rel.join(e.file_name());
        if layer && INIT_PATHS.contains(&abs(&child).as_str()) {
            continue;
        }
        let full = e.path();
        let Some(meta) = lstat(&full) else {
            continue;
        };
        if layer && is_whiteout(&meta) {
            let mut name = std::ffi::OsString::from(".wh.");
            name.push(e.file_name());
            let mut h = header(&meta, tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_size(0);
            tar.append_data(&mut h, rel.join(name), io::empty())?;
            continue;
        }
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut h = header(&meta, tar::EntryType::Directory);
            tar.append_data(&mut h, &child, io::empty())?;
            if layer && is_opaque(&full) {
                let mut h = header(&meta, tar::EntryType::Regular);
                h.set_mode(0o600);
                h.set_size(0);
                tar.append_data(&mut h, child.join(".wh..wh..opq"), io::empty())?;
            }
            append_dir(tar, root, &child, layer, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&full)?;
            let mut h = header(&meta, tar::EntryType::Symlink);
            tar.append_link(&mut h, &child, &target)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    let mut h = header(&meta, tar::EntryType::Link);
                    tar.append_link(&mut h, &child, first)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), child.clone());
            }
            if let Some(caps) = file_capabilities(&full) {
                append_pax(tar, &child, "SCHILY.xattr.security.capability", &caps)?;
            }
            let mut h = header(&meta, tar::EntryType::Regular);
            h.set_size(meta.len());
            let f = open_nofollow(&full)?;
            tar.append_data(&mut h, &child, f)?;
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                // Sockets are not archived, as with Docker.
                continue;
            };
            let mut h = header(&meta, kind);
            if ft.is_char_device() || ft.is_block_device() {
                h.set_device_major(libc::major(meta.rdev()))?;
                h.set_device_minor(libc::minor(meta.rdev()))?;
            }
            tar.append_data(&mut h, &child, io::empty())?;
        }
    }
    Ok(())
}

/// A pipe's read and write ends, with room for [`PIPE_SIZE`] bytes in flight.
pub(crate) fn pipe() -> io::Result<(fs::File, fs::File)> {
    use std::os::fd::AsRawFd;
    let (r, w) = crate::init::sys::pipe()?;
    // Fewer, larger hand-overs between the two threads (best effort: a smaller
    // pipe only costs time).
    // SAFETY: fcntl on a descriptor owned here.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
    Ok((fs::File::from(r), fs::File::from(w)))
}

/// How much of the layer tar is in flight between writer and unpacker.
const PIPE_SIZE: usize = 1 << 20;

fn open_nofollow(p: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
}

fn header(meta: &Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

impl ImageStore {
    /// The container's upper directory and the image's layers below it, top first.
    fn rw_layers(&self, container_id: &str) -> Result<(PathBuf, Vec<PathBuf>)> {
        let rec = self.rw_record(container_id)?;
        if rec.driver == Driver::Vfs.name() {
            return Err(Error::not_implemented(
                "this needs the overlay storage driver; the daemon runs with vfs (copies) here",
            ));
        }
        let dir = self.rw_dir(&rec.driver, container_id);
        Ok((dir.join("diff"), rec.lower))
    }

    /// `docker diff`: what the container added, modified and deleted, each directory
    /// before what is under it.
    pub fn rw_changes(&self, container_id: &str) -> Result<Vec<Change>> {
        let (upper, lowers) = self.rw_layers(container_id)?;
        let mut out = Vec::new();
        walk(&upper, Path::new(""), &lowers, false, &mut out)
            .map_err(|e| crate::store::with_path(e, "read the changes in", &upper))?;
        Ok(out)
    }

    /// The container's changes as a layer tar (`docker commit`): its upper
    /// directory with deletions as Docker's whiteout entries.
    pub fn write_rw_diff(&self, container_id: &str, out: &mut dyn Write) -> Result<()> {
        let (upper, _) = self.rw_layers(container_id)?;
        let mut tar = tar::Builder::new(out);
        append_tree(&mut tar, &upper, true)
            .and_then(|_| tar.finish())
            .map_err(|e| crate::store::with_path(e, "archive the changes in", &upper))?;
        Ok(())
    }

    /// The container's changes unpacked as a new layer (not visible until
    /// [`ImageStore::add_committed_image`]): the tar is written through a pipe into
    /// the same unpacking an image load uses, so the layer's diff ID is the digest
    /// of the tar as stored.
    pub fn prepare_rw_diff(&self, container_id: &str) -> Result<super::PreparedLayer> {
        let (reader, writer) = pipe().map_err(|e| Error::internal(format!("pipe: {e}")))?;
        std::thread::scope(|scope| {
            let written = scope.spawn(move || {
                let mut w = io::BufWriter::with_capacity(PIPE_SIZE, writer);
                self.write_rw_diff(container_id, &mut w)?;
                w.flush()
                    .map_err(|e| Error::internal(format!("archive the changes: {e}")))
            });
            let prepared = self.prepare_layer(reader);
            let written = written
                .join()
                .unwrap_or_else(|_| Err(Error::internal("archiving the changes panicked")));
            // The writer's error explains a reader's "unexpected end".
            written?;
            prepared
        })
    }

    /// What the container changed as a new layer, or `None` when it changed
    /// nothing (the image gets an empty layer then, as with Docker).
    pub fn rw_diff_layer(&self, container_id: &str) -> Result<Option<super::PreparedLayer>> {
        if self.rw_changes(container_id)?.is_empty() {
            Ok(None)
        } else {
            self.prepare_rw_diff(container_id).map(Some)
        }
    }

    /// Adds a committed image: config `raw`, the parent's layers plus `layer`.
    pub fn add_committed_image(
        &self,
        raw: &[u8],
        layer: Option<super::PreparedLayer>,
        parent: &str,
    ) -> Result<String> {
        let id = super::digest::sha256_of(raw);
        let json = super::ImageJson::parse(raw, &id)?;
        let _r = self.layer_use.read().unwrap_or_else(|p| p.into_inner());
        self.commit_image(
            raw,
            &json,
            layer.into_iter().collect(),
            Some(parent.to_string()).filter(|p| !p.is_empty()),
        )
    }

    /// The images whose parent is `parent` (`""`: images without one), with their
    /// configs: the classic builder's cache candidates.
    pub fn children_of(&self, parent: &str) -> Vec<(String, std::sync::Arc<Vec<u8>>)> {
        self.lock()
            .images
            .iter()
            .filter(|(_, e)| e.meta.parent.as_deref().unwrap_or("") == parent)
            .map(|(id, e)| (id.clone(), e.raw.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfile(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn whiteout(p: &Path) {
        crate::init::sys::mknod(p, libc::S_IFCHR | 0o600, 0).unwrap();
    }

    fn opaque(p: &Path) {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        let n = CString::new(OPAQUE).unwrap();
        assert_eq!(
            unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), b"y".as_ptr().cast(), 1, 0) },
            0
        );
    }

    #[test]
    fn changes_read_like_dockers() {
        let t = tempfile::tempdir().unwrap();
        let (low1, low2, up) = (
            t.path().join("l1"),
            t.path().join("l2"),
            t.path().join("up"),
        );
        // The image: /bin/ls, /bin/vi, /app/{a,b}, /keep/f, /gone/x (deleted by l1).
        mkfile(&low2.join("bin/ls"), "ls");
        mkfile(&low2.join("bin/vi"), "vi");
        mkfile(&low2.join("gone/x"), "x");
        mkfile(&low1.join("app/a"), "a");
        mkfile(&low1.join("app/b"), "b");
        mkfile(&low1.join("keep/f"), "f");
        whiteout(&low1.join("gone"));
        // The container: deletes /bin/vi, modifies /keep/f, adds /new/n, remakes
        // /app with a new /app/c, and its init files are ignored.
        fs::create_dir_all(up.join("bin")).unwrap();
        whiteout(&up.join("bin/vi"));
        mkfile(&up.join("keep/f"), "changed");
        mkfile(&up.join("new/n"), "n");
        mkfile(&up.join("app/c"), "c");
        opaque(&up.join("app"));
        mkfile(&up.join("etc/hostname"), "");
        fs::create_dir_all(up.join("proc")).unwrap();
        let mut out = Vec::new();
        walk(
            &up,
            Path::new(""),
            &[low1.clone(), low2.clone()],
            false,
            &mut out,
        )
        .unwrap();
        let got: Vec<(String, Kind)> = out.into_iter().map(|c| (c.path, c.kind)).collect();
        let want = [
            ("/app", Kind::Modified),
            ("/app/c", Kind::Added),
            ("/app/a", Kind::Deleted),
            ("/app/b", Kind::Deleted),
            ("/bin", Kind::Modified),
            ("/bin/vi", Kind::Deleted),
            ("/keep", Kind::Modified),
            ("/keep/f", Kind::Modified),
            ("/new", Kind::Added),
            ("/new/n", Kind::Added),
        ];
        let want: Vec<(String, Kind)> = want.iter().map(|(p, k)| (p.to_string(), *k)).collect();
        assert_eq!(got, want);
        // What a lower whiteout hides is not in the image's view.
        assert!(lower_entry(&[low1.clone(), low2.clone()], Path::new("gone/x")).is_none());
        assert!(lower_entry(&[low1, low2], Path::new("bin/ls")).is_some());

        // As a layer: whiteout entries, the opaque marker, no init files.
        let mut tar = tar::Builder::new(Vec::new());
        append_tree(&mut tar, &up, true).unwrap();
        let data = tar.into_inner().unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(&data[..]).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(
            names,
            [
                "app",
                "app/.wh..wh..opq",
                "app/c",
                "bin",
                "bin/.wh.vi",
                "etc",
                "keep",
                "keep/f",
                "new",
                "new/n"
            ]
        );
    }

    #[test]
    fn a_file_whose_capabilities_alone_changed_is_modified() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        mkfile(&low.join("bin/ping"), "ping");
        mkfile(&up.join("bin/ping"), "ping");
        // The same times as the image's copy: only the xattr differs.
        let times = fs::metadata(low.join("bin/ping"))
            .unwrap()
            .modified()
            .unwrap();
        let f = fs::File::options()
            .write(true)
            .open(up.join("bin/ping"))
            .unwrap();
        f.set_modified(times).unwrap();
        fs::set_permissions(
            up.join("bin/ping"),
            fs::metadata(low.join("bin/ping")).unwrap().permissions(),
        )
        .unwrap();
        let changes = |up: &Path| {
            let mut out = Vec::new();
            walk(
                up,
                Path::new(""),
                std::slice::from_ref(&low),
                false,
                &mut out,
            )
            .unwrap();
            out.into_iter()
                .map(|c| (c.path, c.kind))
                .collect::<Vec<_>>()
        };
        assert_eq!(changes(&up), []);
        let c = CString::new(up.join("bin/ping").as_os_str().as_bytes()).unwrap();
        let caps = [1u8, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        // SAFETY: valid C strings and buffer.
        let r = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                c"security.capability".as_ptr(),
                caps.as_ptr().cast(),
                caps.len(),
                0,
            )
        };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        assert_eq!(
            changes(&up),
            [
                ("/bin".to_string(), Kind::Modified),
                ("/bin/ping".to_string(), Kind::Modified)
            ]
        );
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for value_len in [1usize, 20, 61, 62, 63, 64, 960, 961, 962, 963, 9960, 9961] {
            // A short name, and one that needs a long-name entry of its own.
            let long = format!("{}ping", "dir/".repeat(40));
            let name = if value_len % 2 == 0 {
                "bin/ping"
            } else {
                &long
            };
            let value = vec![b'v'; value_len];
            let mut tar = tar::Builder::new(Vec::new());
            append_pax(
                &mut tar,
                Path::new(name),
                "SCHILY.xattr.security.capability",
                &value,
            )
            .unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(2);
            h.set_mode(0o755);
            tar.append_data(&mut h, name, &b"ok"[..]).unwrap();
            let data = tar.into_inner().unwrap();
            let mut a = tar::Archive::new(data.as_slice());
            let mut entries = a.entries().unwrap();
            let mut e = entries.next().unwrap().unwrap();
            assert_eq!(e.path().unwrap(), Path::new(name));
            let pax: Vec<(String, Vec<u8>)> = e
                .pax_extensions()
                .unwrap()
                .unwrap()
                .map(|x| {
                    let x = x.unwrap();
                    (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                })
                .collect();
            assert_eq!(
                pax,
                [("SCHILY.xattr.security.capability".to_string(), value)]
            );
        }
    }
}
