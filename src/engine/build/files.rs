//! The steps that write files without a container: `COPY`, `ADD` and `WORKDIR`
//! work in a writable layer over the stage's current image, mounted for the step
//! and committed as its layer; and the content hashes that are their cache keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::dockerfile::Instruction;
use super::{BUILDKIT_ONLY, Builder, Stage, context, copy};
use crate::engine::registry::progress::Progress;
use crate::engine::{Error, Result};
use crate::image::PreparedLayer;
use crate::image::changes;
use crate::image::tar_safe::open_root;

impl Builder<'_> {
    /// `WORKDIR`: the directory is made (root's, 0755) when missing.
    pub(super) async fn workdir(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let env = self.expansion_env(st);
        let p = changes::expand_one(&ins.rest, &env)?;
        // Docker keeps an absolute path as written and joins a relative one.
        let wd = if p.starts_with('/') {
            p
        } else {
            st.in_workdir(&p)
        };
        st.config.working_dir = wd.clone();
        let mut probe = st.config.clone();
        let mut cmd = st.shell();
        cmd.push(format!("#(nop) WORKDIR {wd}"));
        probe.cmd = Some(cmd);
        if self.cached(st, &probe) {
            return Ok(());
        }
        let dir = wd.clone();
        let layer = self
            .in_step_root(&st.image, move |root| {
                let fd = open_root(root)?;
                copy::mkdir_all(&fd, &dir, (0, 0)).map(|_| ())
            })
            .await?;
        let created_by = probe.cmd.clone().unwrap_or_default().join(" ");
        self.commit(st, &probe, &created_by, "", layer).await
    }

    /// Runs `f` on a writable root over `image` (mounted here, no container) and
    /// returns what it changed as a layer, or `None` when it changed nothing.
    async fn in_step_root<F>(&self, image: &str, f: F) -> Result<Option<PreparedLayer>>
    where
        F: FnOnce(&std::path::Path) -> Result<()> + Send + 'static,
    {
        let images = self.engine.images.clone();
        let image = image.to_string();
        tokio::task::spawn_blocking(move || {
            // Removed when dropped, even if `f` panics.
            let layer = TempLayer {
                id: Some(step_layer(&images, &image)?),
                images: images.clone(),
            };
            let id = layer.id.as_deref().unwrap_or_default();
            let root = images.mount_rw_layer(id)?;
            let written = f(&root);
            images.unmount_rw_layer(id)?;
            written?;
            images.rw_diff_layer(id)
        })
        .await
        .map_err(|e| Error::internal(format!("build: {e}")))?
    }

    /// `COPY` and `ADD`.
    pub(super) async fn copy(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
        add: bool,
    ) -> Result<()> {
        let what = if add { "ADD" } else { "COPY" };
        if ins.flag("chmod").is_some() {
            return Err(Error::invalid(format!(
                "the --chmod option {BUILDKIT_ONLY}"
            )));
        }
        let env = self.expansion_env(st);
        let raw = match ins.json_args()? {
            Some(v) => v,
            None => ins.rest.split_whitespace().map(str::to_string).collect(),
        };
        let mut words = raw
            .iter()
            .map(|w| changes::expand_word(w, &env))
            .collect::<Result<Vec<_>>>()?;
        let dest = words.pop().unwrap_or_default();
        let chown = ins
            .flag("chown")
            .map(|c| changes::expand_word(c, &env))
            .transpose()?;
        let from = ins.flag("from").map(str::to_string);
        // ADD's URLs are downloaded on every build: their content is the key.
        let mut downloads = Vec::new();
        let mut specs = Vec::new();
        for w in &words {
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                specs.push(Spec::Local(w.clone()));
                continue;
            }
            if !add {
                return Err(Error::invalid(format!(
                    "{what} failed: source can't be a URL for COPY"
                )));
            }
            let (dir, name, hash) = self
                .download(w, &dest)
                .await
                .map_err(|e| Error::invalid(format!("{what} failed: {e}")))?;
            specs.push(Spec::Url {
                dir: dir.0.clone(),
                name,
                hash,
            });
            downloads.push(dir);
        }
        // What the sources are, and the step's content hash: from the context's
        // index (nothing is unpacked for a cache hit), or from the files of an
        // earlier stage or an image, mounted for the step.
        let (picked, hash, cleanup) = match &from {
            None => {
                let (p, h) = context_sources(&self.ctx, &specs)
                    .map_err(|e| Error::invalid(format!("{what} failed: {e}")))?;
                (p, h, None)
            }
            Some(f) => {
                let image = self.copy_source_image(f).await?;
                let images = self.engine.images.clone();
                tokio::task::spawn_blocking(move || {
                    // Removed when dropped, wherever that happens.
                    let layer = TempLayer {
                        id: Some(step_layer(&images, &image)?),
                        images: images.clone(),
                    };
                    let id = layer.id.as_deref().unwrap_or_default();
                    let (p, h) = images
                        .mount_rw_layer(id)
                        .and_then(|root| tree_sources(&root, &specs))?;
                    Ok::<_, Error>((p, h, Some(layer)))
                })
                .await
                .map_err(|e| Error::internal(format!("build: {e}")))?
                .map_err(|e| Error::invalid(format!("{what} failed: {e}")))?
            }
        };
        if picked.len() > 1 && !dest.ends_with('/') {
            return Err(Error::invalid(format!(
                "When using {what} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let chown_shown = chown
            .as_deref()
            .map(|c| format!("--chown={c}"))
            .unwrap_or_default();
        let comment = format!("#(nop) {what} {chown_shown}{hash} in {dest} ");
        let mut probe = st.config.clone();
        let mut cmd = st.shell();
        cmd.push(comment);
        probe.cmd = Some(cmd);
        if self.cached(st, &probe) {
            return Ok(());
        }
        let mut dest_abs = if dest.starts_with('/') {
            changes::clean_path(&dest)
        } else {
            st.in_workdir(&dest)
        };
        if (dest.ends_with('/') || dest.ends_with("/.") || dest == ".") && dest_abs != "/" {
            dest_abs.push('/');
        }
        let preserve = from.is_some();
        let ctx = self.ctx.clone();
        let layer = self
            .in_step_root(&st.image, move |root| {
                let ctx_dir = if picked.iter().any(|p| p.root.is_none()) {
                    Some(ctx.unpacked()?)
                } else {
                    None
                };
                let mut sources = Vec::new();
                for p in &picked {
                    let dir = p
                        .root
                        .as_ref()
                        .or(ctx_dir.as_ref())
                        .cloned()
                        .unwrap_or_default();
                    let fd = open_root(&dir)?;
                    let mut src = copy::Source::open(&fd, &p.rel)
                        .map_err(|e| Error::internal(format!("{}: {e}", p.rel)))?;
                    src.unpack = p.unpack;
                    sources.push(src);
                }
                let owner = match &chown {
                    Some(c) => Some(copy::chown_ids(root, c)?),
                    None if preserve => None,
                    None => Some((0, 0)),
                };
                let job = copy::Job {
                    sources,
                    dest: dest_abs,
                    owner,
                    dir_owner: owner.unwrap_or((0, 0)),
                    unpack_archives: add,
                };
                copy::copy_into(root, &job)
            })
            .await
            .map_err(|e| Error::invalid(format!("{what} failed: {e}")))?;
        drop(cleanup);
        drop(downloads);
        let created_by = probe.cmd.clone().unwrap_or_default().join(" ");
        self.commit(st, &probe, &created_by, "", layer).await
    }

    /// Downloads an ADD source: its directory, file name and content hash. The
    /// file is 0600 with the server's Last-Modified time, as Docker makes it.
    async fn download(&mut self, url: &str, dest: &str) -> Result<(Scratch, String, String)> {
        let dir = Scratch(
            self.engine
                .data_root
                .join("builder")
                .join(format!("download-{}", crate::engine::random_id()?)),
        );
        tokio::fs::create_dir_all(&dir.0).await?;
        let part = dir.0.join(".part");
        let mut file = tokio::fs::File::create(&part).await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let progress = Progress::new(tx);
        let fetch = self.engine.fetch_url(url, &mut file, &progress);
        let fetched = self.out.forward(rx, fetch).await?;
        drop(file);
        self.out.stream("\n");
        let from_path = url
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .splitn(4, '/')
            .nth(3)
            .and_then(|p| p.rsplit('/').next())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .map(str::to_string);
        let name = match from_path.or(fetched.disposition_name) {
            Some(n) => n,
            None if dest.ends_with('/') => {
                return Err(Error::invalid(format!(
                    "cannot determine filename for source {url}"
                )));
            }
            None => "download".to_string(),
        };
        let path = dir.0.join(&name);
        let modified = fetched.last_modified.unwrap_or(std::time::UNIX_EPOCH);
        let hash = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::PermissionsExt;
            std::fs::rename(&part, &path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(modified)?;
            tree_hash(&path, false)
        })
        .await
        .map_err(|e| Error::internal(format!("build: {e}")))??;
        Ok((dir, name, hash))
    }

    /// The image `COPY --from` reads: an earlier stage by name or index, else an
    /// image (pulled when missing).
    async fn copy_source_image(&mut self, f: &str) -> Result<String> {
        let lower = f.to_lowercase();
        if let Some((_, id)) = self
            .stages
            .iter()
            .find(|(n, _)| n.as_deref() == Some(lower.as_str()))
        {
            return Ok(id.clone());
        }
        if let Ok(i) = f.parse::<usize>() {
            let current = self.stages.len();
            return match i {
                i if i < current => Ok(self.stages[i].1.clone()),
                i if i == current => Err(Error::invalid(format!(
                    "invalid from flag value {f}: refers to current build stage"
                ))),
                _ => Err(Error::invalid(format!(
                    "invalid from flag value {f}: index out of bounds"
                ))),
            };
        }
        self.image_for(f, None)
            .await
            .map_err(|e| Error::invalid(format!("invalid from flag value {f}: {e}")))
    }
}

/// A new writable layer over `image` for a step (no container); returns its ID.
fn step_layer(images: &crate::image::ImageStore, image: &str) -> Result<String> {
    let id = format!(
        "{}{}",
        crate::image::rootfs::BUILD_LAYER_PREFIX,
        crate::engine::random_id()?
    );
    images.create_rw_layer(image, &id)?;
    Ok(id)
}

/// A step's writable layer (or the one a `COPY --from` reads), removed when
/// dropped, on a thread of its own (the drop may happen on the runtime's).
struct TempLayer {
    images: Arc<crate::image::ImageStore>,
    id: Option<String>,
}

impl Drop for TempLayer {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let images = self.images.clone();
            std::thread::spawn(move || {
                if let Err(e) = images.remove_rw_layer(&id) {
                    tracing::warn!("build: removing the step layer {id}: {e}");
                }
            });
        }
    }
}

/// A source as the instruction names it.
enum Spec {
    /// A path (or wildcard) in the sources' root.
    Local(String),
    /// A file downloaded into `dir`.
    Url {
        dir: std::path::PathBuf,
        name: String,
        hash: String,
    },
}

/// A source picked for a step: its root (`None`: the context) and its path there.
pub(super) struct Picked {
    root: Option<PathBuf>,
    rel: String,
    /// ADD may unpack it (not a download).
    unpack: bool,
}

fn not_found(rel: &str, context: bool) -> Error {
    if context {
        Error::invalid(format!(
            "file not found in build context or excluded by .dockerignore: stat {rel}: file does not exist"
        ))
    } else {
        Error::invalid(format!("stat {rel}: file does not exist"))
    }
}

/// The relative paths a word names (wildcards expanded by `matching`).
fn expand(w: &str, matching: impl FnOnce(&str) -> Result<Vec<String>>) -> Result<Vec<String>> {
    let w = w.trim_start_matches('/');
    let w = w.strip_prefix("./").unwrap_or(w);
    if context::has_wildcard(w) {
        let rels = matching(w)?;
        if rels.is_empty() {
            return Err(Error::invalid("no source files were specified"));
        }
        return Ok(rels);
    }
    if context::escapes(w) {
        return Err(Error::invalid(format!(
            "forbidden path outside the build context: {w} ()"
        )));
    }
    Ok(vec![context::key(w)])
}

/// The step's content hash from its sources' hashes.
fn combined(mut hashes: Vec<String>) -> Result<String> {
    match hashes.len() {
        0 => Err(Error::invalid("no source files were specified")),
        1 => Ok(hashes.remove(0)),
        _ => Ok(format!(
            "multi:{}",
            crate::image::digest::encoded(&crate::image::digest::sha256_of(
                hashes.join(",").as_bytes()
            ))
        )),
    }
}

/// The sources of a COPY or ADD from the context (and downloads), and the hash.
fn context_sources(ctx: &context::Context, specs: &[Spec]) -> Result<(Vec<Picked>, String)> {
    let mut picked = Vec::new();
    let mut hashes = Vec::new();
    for spec in specs {
        match spec {
            Spec::Url { dir, name, hash } => {
                picked.push(Picked {
                    root: Some(dir.clone()),
                    rel: name.clone(),
                    unpack: false,
                });
                hashes.push(hash.clone());
            }
            Spec::Local(w) => {
                for rel in expand(w, |p| Ok(ctx.matching(p)))? {
                    let (target, kind) = ctx.resolve(&rel).ok_or_else(|| not_found(&rel, true))?;
                    hashes.push(ctx.hash(&target, &kind));
                    picked.push(Picked {
                        root: None,
                        rel,
                        unpack: true,
                    });
                }
            }
        }
    }
    Ok((picked, combined(hashes)?))
}

/// The sources of a `COPY --from` in the mounted `root`, and the hash.
fn tree_sources(root: &Path, specs: &[Spec]) -> Result<(Vec<Picked>, String)> {
    // As the kernel names it: where the sources lead is read back from /proc.
    let root = &std::fs::canonicalize(root)?;
    let root_fd = open_root(root)?;
    let mut picked = Vec::new();
    let mut hashes = Vec::new();
    for spec in specs {
        let Spec::Local(w) = spec else {
            continue;
        };
        for rel in expand(w, |p| Ok(tree_matches(root, p)?))? {
            let src = copy::Source::open(&root_fd, &rel).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    not_found(&rel, false)
                } else {
                    Error::internal(format!("{rel}: {e}"))
                }
            })?;
            let target = resolved_rel(root, &src);
            hashes.push(tree_hash(&root.join(&target), src.is_dir)?);
            picked.push(Picked {
                root: Some(root.to_path_buf()),
                rel,
                unpack: true,
            });
        }
    }
    Ok((picked, combined(hashes)?))
}

/// Every path under `root` (relative, `/`-separated, sorted) that `pattern` matches.
fn tree_matches(root: &Path, pattern: &str) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in std::fs::read_dir(&dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if context::glob(pattern, &child, false) {
                out.push(child.clone());
            }
            if std::fs::symlink_metadata(root.join(&child)).is_ok_and(|m| m.is_dir()) {
                stack.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        // Off the caller's thread, which may be the runtime's.
        let dir = std::mem::take(&mut self.0);
        std::thread::spawn(move || crate::image::layer_store::remove_tree(&dir));
    }
}

/// Where a source led inside its root (its symlinks followed), relative.
fn resolved_rel(root: &std::path::Path, src: &copy::Source) -> String {
    use std::os::fd::AsRawFd;
    let own =
        std::fs::read_link(format!("/proc/self/fd/{}", src.fd.as_raw_fd())).unwrap_or_default();
    let rel = own.strip_prefix(root).unwrap_or(&own);
    context::key(&rel.to_string_lossy())
}

/// The content hash of a file or tree outside the context (`COPY --from`): names,
/// modes, owners, link targets and contents.
fn tree_hash(path: &std::path::Path, is_dir: bool) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let mut h = Sha256::new();
    let mut add = |rel: &str, p: &std::path::Path| -> std::io::Result<()> {
        let m = std::fs::symlink_metadata(p)?;
        h.update(format!("{rel}\0{:o}\0{}\0{}\0", m.mode(), m.uid(), m.gid()).as_bytes());
        if m.file_type().is_symlink() {
            h.update(std::fs::read_link(p)?.as_os_str().as_encoded_bytes());
        } else if m.is_file() {
            std::io::copy(&mut std::fs::File::open(p)?, &mut h)?;
        }
        Ok(())
    };
    if !is_dir {
        add("", path)?;
        return Ok(format!("file:{}", crate::engine::hex(&h.finalize())));
    }
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = path.join(&rel);
        let mut names: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names.into_iter().rev() {
            let child = if rel.is_empty() {
                n
            } else {
                format!("{rel}/{n}")
            };
            let p = path.join(&child);
            add(&child, &p)?;
            if std::fs::symlink_metadata(&p)?.is_dir() {
                stack.push(child);
            }
        }
    }
    Ok(format!("dir:{}", crate::engine::hex(&h.finalize())))
}
