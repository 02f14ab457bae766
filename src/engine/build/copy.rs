//! `COPY` and `ADD` into a step's root filesystem, with Docker's rules: a
//! directory's contents (not the directory) land in the destination; a file lands
//! in the destination when it ends in `/` or is a directory there, else it becomes
//! the destination; missing parents are made (0755, owned by `--chown` or root);
//! `ADD` unpacks a local archive into the destination.
//!
//! Every path is resolved by the kernel inside its root (`openat2` with
//! `RESOLVE_IN_ROOT`): the context's symlinks cannot reach the host, and the image's
//! symlinks (`/bin` → `usr/bin`) lead where they lead inside the image. Entries are
//! written by the extractor `docker cp` uses, from the destination's descriptor.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::engine::containers::archive::open_in_root;
use crate::engine::{Error, Result};
use crate::image::tar_safe::{self, CopyOptions};

/// One source, resolved in its root.
pub struct Source {
    /// `O_PATH` descriptor of what the source leads to (a top-level symlink
    /// followed inside its root).
    pub fd: OwnedFd,
    /// The name it is copied under (the source's own base name).
    pub name: String,
    pub is_dir: bool,
    /// Its type and mode bits.
    meta: fs::Metadata,
    /// ADD: unpack it if it is a local archive (never a download).
    pub unpack: bool,
}

impl Source {
    /// Resolves `rel` (relative to `root`, already checked not to climb out).
    pub fn open(root: &OwnedFd, rel: &str) -> io::Result<Source> {
        let fd = open_in_root(root.as_raw_fd(), rel.as_bytes(), libc::O_PATH)?;
        let meta = fs::metadata(proc_path(&fd))?;
        let name = Path::new(rel)
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        Ok(Source {
            fd,
            name,
            is_dir: meta.is_dir(),
            meta,
            unpack: true,
        })
    }

    fn path(&self) -> PathBuf {
        proc_path(&self.fd)
    }
}

fn proc_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// What one COPY or ADD step writes.
pub struct Job {
    pub sources: Vec<Source>,
    /// Absolute and cleaned, keeping a trailing `/`.
    pub dest: String,
    /// Owner of everything written; `None` keeps the sources' owners.
    pub owner: Option<(u32, u32)>,
    /// Owner of the parent directories made for the destination.
    pub dir_owner: (u32, u32),
    /// ADD: local archives are unpacked (each [`Source`] says whether it may be).
    pub unpack_archives: bool,
}

/// Performs `job` in the root filesystem at `root`.
pub fn copy_into(root: &Path, job: &Job) -> Result<()> {
    let root_fd = tar_safe::open_root(root)?;
    let dest_says_dir = job.dest.ends_with('/');
    for src in &job.sources {
        if src.is_dir {
            let dir = mkdir_all(&root_fd, &job.dest, job.dir_owner)?;
            let path = src.path();
            write_tar(dir, &job.dest, job.owner, |tar| {
                crate::image::rw_changes::append_tree(tar, &path, false)
            })?;
            continue;
        }
        if job.unpack_archives && src.unpack && src.meta.is_file() && is_archive(&src.path())? {
            let dir = mkdir_all(&root_fd, &job.dest, job.dir_owner)?;
            let file = fs::File::open(src.path())?;
            let (_, plain) = crate::image::layer_store::decompress(file, "the archive")?;
            tar_safe::unpack_copy(
                plain,
                dir,
                CopyOptions {
                    dest: job.dest.clone(),
                    no_overwrite_dir_non_dir: false,
                    owner: None,
                },
            )?;
            continue;
        }
        let into_dir = dest_says_dir || is_dir_in_root(&root_fd, &job.dest);
        let (dir, name) = if into_dir {
            (job.dest.clone(), src.name.clone())
        } else {
            let trimmed = job.dest.trim_end_matches('/');
            let (parent, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
            (format!("{parent}/"), name.to_string())
        };
        let dirfd = mkdir_all(&root_fd, &dir, job.dir_owner)?;
        let path = src.path();
        let meta = &src.meta;
        write_tar(dirfd, &dir, job.owner, |tar| {
            let mut h = tar::Header::new_gnu();
            h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
            if meta.is_file() {
                h.set_size(meta.len());
                tar.append_data(&mut h, &name, fs::File::open(&path)?)
            } else {
                // A FIFO or a device node is copied as such, never opened.
                use std::os::unix::fs::MetadataExt;
                h.set_size(0);
                let rdev = meta.rdev();
                h.set_device_major(libc::major(rdev))?;
                h.set_device_minor(libc::minor(rdev))?;
                tar.append_data(&mut h, &name, io::empty())
            }
        })?;
    }
    Ok(())
}

/// Writes a tar made by `fill` through a pipe into the extractor at `dir`.
fn write_tar(
    dir: OwnedFd,
    dest: &str,
    owner: Option<(u32, u32)>,
    fill: impl FnOnce(&mut tar::Builder<io::BufWriter<fs::File>>) -> io::Result<()> + Send,
) -> Result<()> {
    let (reader, writer) = crate::image::rw_changes::pipe()?;
    std::thread::scope(|scope| {
        let written = scope.spawn(move || -> io::Result<()> {
            let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, writer));
            tar.follow_symlinks(false);
            fill(&mut tar)?;
            tar.into_inner()?.flush()
        });
        let unpacked = tar_safe::unpack_copy(
            io::BufReader::new(reader),
            dir,
            CopyOptions {
                dest: dest.to_string(),
                no_overwrite_dir_non_dir: false,
                owner,
            },
        );
        let written = written
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("archiving the sources panicked")));
        // The extractor's error first: the writer's is then only a broken pipe.
        unpacked?;
        written.map_err(|e| Error::internal(format!("copy: {e}")))
    })
}

/// Whether `path` is a directory inside the root (symlinks followed inside it).
pub fn is_dir_in_root(root: &OwnedFd, path: &str) -> bool {
    open_in_root(
        root.as_raw_fd(),
        path.as_bytes(),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .is_ok()
}

/// `mkdir -p` inside the root; directories made get mode 0755 and `owner`.
/// Returns the directory, open for the extractor.
pub fn mkdir_all(root: &OwnedFd, path: &str, owner: (u32, u32)) -> Result<OwnedFd> {
    let mut cur = String::from("/");
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let next = format!("{cur}{comp}");
        match open_in_root(
            root.as_raw_fd(),
            next.as_bytes(),
            libc::O_PATH | libc::O_DIRECTORY,
        ) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = open_in_root(
                    root.as_raw_fd(),
                    cur.as_bytes(),
                    libc::O_PATH | libc::O_DIRECTORY,
                )?;
                let name = std::ffi::CString::new(comp)
                    .map_err(|_| Error::invalid(format!("invalid path {path:?}")))?;
                // SAFETY: valid descriptor and C string.
                if unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
                    return Err(io::Error::last_os_error().into());
                }
                // SAFETY: as above; the new directory is not followed.
                let r = unsafe {
                    libc::fchownat(
                        parent.as_raw_fd(),
                        name.as_ptr(),
                        owner.0,
                        owner.1,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if r != 0 {
                    return Err(io::Error::last_os_error().into());
                }
                // SAFETY: as above (mkdirat applied the umask).
                unsafe {
                    libc::fchmodat(parent.as_raw_fd(), name.as_ptr(), 0o755, 0);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(Error::invalid(format!(
                    "Cannot mkdir: {next} is not a directory"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        cur = format!("{next}/");
    }
    Ok(open_in_root(
        root.as_raw_fd(),
        path.as_bytes(),
        libc::O_RDONLY | libc::O_DIRECTORY,
    )?)
}

/// Docker's test for ADD: a plain or compressed file whose first tar header reads.
/// A file compressed in a way the daemon does not read (xz, bzip2) is an error
/// that says so, not a file copied as it is.
fn is_archive(path: &Path) -> Result<bool> {
    let f = fs::File::open(path)?;
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let (_, mut plain) = crate::image::layer_store::decompress(f, &name)?;
    let mut block = [0u8; 512];
    if plain.read_exact(&mut block).is_err() {
        return Ok(false);
    }
    let h = tar::Header::from_byte_slice(&block);
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    Ok(h.cksum().is_ok_and(|c| c == sum) && block.iter().any(|&b| b != 0))
}

/// A user's IDs from the image's `/etc/passwd` and `/etc/group`, Docker's way for
/// `--chown`: `user[:group]`, names or numbers; a name alone is also the group.
pub fn chown_ids(root: &Path, spec: &str) -> Result<(u32, u32)> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() > 2 {
        return Err(Error::invalid(format!(
            "invalid chown string format: {spec}"
        )));
    }
    let user = parts[0];
    let group = parts.get(1).copied().unwrap_or(user);
    let root_fd = tar_safe::open_root(root)?;
    let read = |p: &str| -> String {
        open_in_root(root_fd.as_raw_fd(), p.as_bytes(), libc::O_RDONLY)
            .ok()
            .and_then(|fd| {
                let mut s = String::new();
                fs::File::from(fd).read_to_string(&mut s).ok().map(|_| s)
            })
            .unwrap_or_default()
    };
    let lookup = |db: &str, name: &str, what: &str| -> Result<u32> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        read(db)
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[0] == name)
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| {
                let id = if what == "user" { "uid" } else { "gid" };
                Error::invalid(format!(
                    "unable to convert uid/gid chown string to host mapping: can't find {id} for {what} {name}: no such {what}: {name}"
                ))
            })
    };
    Ok((
        lookup("/etc/passwd", user, "user")?,
        lookup("/etc/group", group, "group")?,
    ))
}
