//! The image store: content-addressed layers and configs under `<data-root>/image/`,
//! the tag map, and the operations that bring images in (import, load), take them
//! out (save), and give containers a root filesystem.
//!
//! On disk:
//! - `configs/<id hex>` — image config documents, byte for byte as they arrived; the
//!   image ID is their SHA-256, exactly as Docker computes it.
//! - `meta/<id hex>.json` — what is local to this daemon (parent, last tag time).
//! - `layers/`, `chains/` — see [`layer_store`].
//! - `repositories.json` — tags, in Docker's format ([`refstore`]).
//! - `tmp/` — archives being loaded, staged entry by entry.
//!
//! Every metadata write is atomic (temp, fsync, rename); an image becomes visible
//! only after its layers and chain records are in place, and anything a crash leaves
//! half-made (temporary trees, layers no image or container uses) is removed when
//! the store opens. All state is also held in memory behind one mutex; disk-heavy
//! work (unpacking, copying, streaming) runs outside it.
//!
//! This module knows nothing of HTTP or of the engine; the engine turns its
//! [`Error`]s into API errors and emits events for what it reports.

pub mod blob_sources;
pub mod changes;
pub mod config;
pub mod digest;
pub mod import;
pub mod layer_store;
pub mod load;
pub mod reference;
pub mod refstore;
pub mod rootfs;
pub mod rw_changes;
pub mod save;
pub mod tar_safe;
pub mod tar_split;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use config::{History, ImageConfig, ImageJson};
pub use layer_store::PreparedLayer;
use layer_store::{ChainRecord, LayerMeta, LayerPaths};
pub use reference::Reference;
use refstore::RefStore;
pub use rootfs::Driver;

pub use crate::error::{Error, Result};

/// What the container code needs to know about an image.
#[derive(Clone, Debug)]
pub struct ImageRecord {
    /// `sha256:<hex>`.
    pub id: String,
    /// Defaults for containers (Env, Cmd, Entrypoint, WorkingDir, User, …).
    pub config: ImageConfig,
    /// Familiar `name:tag` forms, e.g. `busybox:latest`.
    pub repo_tags: Vec<String>,
    /// Layers, bottom first.
    pub diff_ids: Vec<String>,
}

/// A container that uses an image: deletion rules depend on whether it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUser {
    pub container_id: String,
    pub running: bool,
}

/// Everything the engine shows about one image (inspect, list, history, df).
#[derive(Clone, Debug)]
pub struct ImageDetails {
    pub id: String,
    pub json: ImageJson,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Parent image ID, or empty.
    pub parent: String,
    pub last_tag_time: Option<String>,
    /// Sum of the layers' sizes.
    pub size: u64,
    /// Each layer's size, bottom first (same order as the diff IDs).
    pub layer_sizes: Vec<u64>,
    /// The layers' unpacked trees, bottom first.
    pub layer_dirs: Vec<PathBuf>,
    pub chain_ids: Vec<String>,
    /// Images whose parent this is.
    pub children: usize,
}

/// Local facts about an image (`meta/<hex>.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tag_time: Option<String>,
}

struct ImageEntry {
    json: ImageJson,
    raw: Arc<Vec<u8>>,
    meta: ImageMeta,
}

struct State {
    images: BTreeMap<String, ImageEntry>,
    refs: RefStore,
    chains: HashMap<String, ChainRecord>,
    layers: HashMap<String, LayerMeta>,
    rw: HashMap<String, rootfs::RwRecord>,
}

/// One line of a remove or prune report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    /// A tag was removed from `image` (familiar form).
    Untagged { image: String, reference: String },
    /// The image `id` was deleted.
    Deleted { id: String },
    /// A layer stack position (chain ID) was deleted.
    DeletedLayer { chain_id: String, size: u64 },
}

/// The image store.
pub struct ImageStore {
    root: PathBuf,
    data_root: PathBuf,
    paths: LayerPaths,
    driver: Driver,
    state: Mutex<State>,
    /// Shared while layer trees are read from outside the state lock (save, copy);
    /// exclusive while layer trees are retired.
    layer_use: RwLock<()>,
}

impl ImageStore {
    /// Opens (creating) `<data-root>/image`, sweeps what a crash left behind, loads
    /// the state, and finds out whether overlay mounts work here.
    pub fn open(data_root: &Path) -> Result<ImageStore> {
        Self::open_with(data_root, None)
    }

    /// [`ImageStore::open`] with the driver chosen by the caller instead of
    /// detected (`Some(Driver::Vfs)` forces copies even where overlay works).
    pub fn open_with(data_root: &Path, driver: Option<Driver>) -> Result<ImageStore> {
        let root = data_root.join("image");
        let paths = LayerPaths::new(&root);
        for d in [
            &root,
            &paths.layers,
            &paths.chains,
            &root.join("configs"),
            &root.join("meta"),
            &root.join("tmp"),
            &root.join("distribution"),
        ] {
            crate::store::create_private_dir(d)?;
        }
        for d in [
            &root,
            &paths.layers,
            &paths.chains,
            &root.join("configs"),
            &root.join("meta"),
            &root.join("distribution"),
        ] {
            crate::store::sweep_temp_files(d)?;
        }
        // Staged archives are never resumed.
        for name in layer_store::list_dir(&root.join("tmp"))? {
            layer_store::remove_tree(&root.join("tmp").join(name));
        }
        let driver = driver.unwrap_or_else(|| rootfs::detect_driver(data_root));
        // Every layer, and every container's writable layer, is a tree of its own.
        let rw_root = data_root.join(driver.name());
        crate::store::create_private_dir(&rw_root)?;
        for d in [&paths.layers, &rw_root] {
            layer_store::mark_top_of_trees(d);
        }
        let refs = RefStore::open(&root.join("repositories.json"))?;
        let mut images = BTreeMap::new();
        for name in layer_store::list_dir(&root.join("configs"))? {
            if !digest::is_hex64(&name) {
                continue;
            }
            let p = root.join("configs").join(&name);
            let raw = std::fs::read(&p).map_err(|e| crate::store::with_path(e, "read", &p))?;
            let id = digest::sha256_of(&raw);
            if digest::encoded(&id) != name {
                tracing::warn!("{} does not match its digest; ignoring it", p.display());
                continue;
            }
            let json = match ImageJson::parse(&raw, &id) {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!("ignoring image {id}: {e}");
                    continue;
                }
            };
            let mp = root.join("meta").join(format!("{name}.json"));
            let meta = match std::fs::read(&mp) {
                Ok(d) => serde_json::from_slice(&d).unwrap_or_default(),
                Err(_) => ImageMeta::default(),
            };
            images.insert(
                id,
                ImageEntry {
                    json,
                    raw: Arc::new(raw),
                    meta,
                },
            );
        }
        let chains = paths
            .read_chains()?
            .into_iter()
            .map(|c| (c.chain_id.clone(), c))
            .collect();
        let layers = paths
            .read_layers()?
            .into_iter()
            .map(|l| (l.diff_id.clone(), l))
            .collect();
        let rw = rootfs::read_records(data_root)?;
        let store = ImageStore {
            root,
            data_root: data_root.to_path_buf(),
            paths,
            driver,
            state: Mutex::new(State {
                images,
                refs,
                chains,
                layers,
                rw,
            }),
            layer_use: RwLock::new(()),
        };
        // The writable layers of build steps a crash interrupted serve nothing.
        let leftovers: Vec<String> = store
            .lock()
            .rw
            .keys()
            .filter(|k| k.starts_with(rootfs::BUILD_LAYER_PREFIX))
            .cloned()
            .collect();
        for id in leftovers {
            if let Err(e) = store.remove_rw_layer(&id) {
                tracing::warn!("removing the build step layer {id}: {e}");
            }
        }
        store.check_consistency()?;
        Ok(store)
    }

    /// Drops images whose layers are missing, then removes what nothing uses.
    fn check_consistency(&self) -> Result<()> {
        let _w = self.layer_use.write().unwrap_or_else(|p| p.into_inner());
        let mut st = self.lock();
        let broken: Vec<String> = st
            .images
            .iter()
            .filter(|(_, e)| {
                digest::chain_ids(e.json.diff_ids())
                    .iter()
                    .any(|c| match st.chains.get(c) {
                        None => true,
                        Some(rec) => !st.layers.contains_key(&rec.diff_id),
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in broken {
            tracing::warn!("image {id} has missing layers (interrupted load?); removing it");
            self.delete_image_files(&mut st, &id)?;
        }
        let dangling_tags: Vec<Reference> = st
            .refs
            .references_all()
            .into_iter()
            .filter(|(_, id)| !st.images.contains_key(id))
            .map(|(r, _)| r)
            .collect();
        for r in dangling_tags {
            st.refs.remove(&r)?;
        }
        let retired = self.collect_garbage(&mut st)?;
        drop(st);
        remove_retired(retired);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `<data-root>/image`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The storage driver in use: overlay mounts, or copies when they do not work.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// How many images there are (`docker info` → Images).
    pub fn count(&self) -> usize {
        self.lock().images.len()
    }

    /// Finds an image by full ID, ID prefix, `name`, `name:tag`, or the fully
    /// qualified forms the CLI sends. Unknown: `No such image: NAME`.
    pub fn resolve(&self, name_or_id: &str) -> Result<ImageRecord> {
        let st = self.lock();
        let id = lookup(&st, name_or_id)?;
        let e = &st.images[&id];
        Ok(ImageRecord {
            id: id.clone(),
            config: e.json.config.clone().unwrap_or_default(),
            repo_tags: tags_of(&st, &id),
            diff_ids: e.json.diff_ids().to_vec(),
        })
    }

    /// The full view of one image.
    pub fn details(&self, name_or_id: &str) -> Result<ImageDetails> {
        let st = self.lock();
        let id = lookup(&st, name_or_id)?;
        Ok(self.details_of(&st, &id))
    }

    /// Every image.
    pub fn list(&self) -> Vec<ImageDetails> {
        let st = self.lock();
        st.images
            .keys()
            .map(|id| self.details_of(&st, id))
            .collect()
    }

    /// The raw config document of an image.
    pub fn config_bytes(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        self.lock().images.get(id).map(|e| e.raw.clone())
    }

    fn details_of(&self, st: &State, id: &str) -> ImageDetails {
        let e = &st.images[id];
        let diff_ids = e.json.diff_ids();
        let layer_sizes: Vec<u64> = diff_ids
            .iter()
            .map(|d| st.layers.get(d).map_or(0, |l| l.size))
            .collect();
        let mut repo_tags = Vec::new();
        let mut repo_digests = Vec::new();
        for r in st.refs.references(id) {
            if r.digest.is_some() {
                repo_digests.push(r.familiar_string());
            } else {
                repo_tags.push(r.familiar_string());
            }
        }
        ImageDetails {
            id: id.to_string(),
            json: e.json.clone(),
            repo_tags,
            repo_digests,
            parent: e.meta.parent.clone().unwrap_or_default(),
            last_tag_time: e.meta.last_tag_time.clone(),
            size: layer_sizes.iter().sum(),
            layer_sizes,
            layer_dirs: diff_ids.iter().map(|d| self.paths.diff_dir(d)).collect(),
            chain_ids: digest::chain_ids(diff_ids),
            children: children_of(st, id).len(),
        }
    }

    /// Total size of every layer (`docker system df` → LayersSize).
    pub fn layers_size(&self) -> u64 {
        self.lock().layers.values().map(|l| l.size).sum()
    }

    /// The size of each layer stack position, by chain ID.
    pub fn chain_sizes(&self) -> HashMap<String, u64> {
        let st = self.lock();
        st.chains
            .values()
            .map(|c| {
                (
                    c.chain_id.clone(),
                    st.layers.get(&c.diff_id).map_or(0, |l| l.size),
                )
            })
            .collect()
    }

    /// Tags `name_or_id` as `target` (moving the tag if it pointed elsewhere).
    /// Returns the image ID.
    pub fn tag(&self, name_or_id: &str, target: &Reference) -> Result<String> {
        if target.familiar_name() == digest::SHA256 {
            return Err(Error::invalid(
                "refusing to create an ambiguous tag using digest algorithm as name",
            ));
        }
        let mut st = self.lock();
        let id = lookup(&st, name_or_id)?;
        self.add_tag(&mut st, &id, target)?;
        Ok(id)
    }

    /// Points a tag at an image and records the time; returns the image the tag
    /// pointed at before, if another.
    fn add_tag(&self, st: &mut State, id: &str, target: &Reference) -> Result<Option<String>> {
        if target.digest.is_some() {
            return Err(Error::invalid(
                "refusing to create a tag with a digest reference",
            ));
        }
        let prev = st.refs.add(target, id)?;
        let now = crate::timefmt::rfc3339_nano(SystemTime::now());
        if let Some(e) = st.images.get_mut(id) {
            let mut meta = e.meta.clone();
            meta.last_tag_time = Some(now);
            crate::store::write_json(&self.meta_path(id), &meta)?;
            e.meta = meta;
        }
        Ok(prev)
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.root
            .join("meta")
            .join(format!("{}.json", digest::encoded(id)))
    }

    fn config_path(&self, id: &str) -> PathBuf {
        self.root.join("configs").join(digest::encoded(id))
    }

    /// Unpacks a layer from its uncompressed tar stream into a temporary directory,
    /// measuring its diff ID; nothing is visible until [`ImageStore::add_image`].
    pub fn prepare_layer<R: std::io::Read>(&self, input: R) -> Result<PreparedLayer> {
        self.paths.prepare(input)
    }

    /// Adds the image whose config is `raw`, with `prepared` layers (the others
    /// must be in the store), and points `refs` at it. Returns the image ID and
    /// whether any reference is new or moved.
    pub fn add_image(
        &self,
        raw: &[u8],
        prepared: Vec<PreparedLayer>,
        refs: &[Reference],
    ) -> Result<(String, bool)> {
        let id = digest::sha256_of(raw);
        let json = ImageJson::parse(raw, &id)?;
        let _r = self.layer_use.read().unwrap_or_else(|p| p.into_inner());
        self.commit_image(raw, &json, prepared, None)?;
        let mut changed = false;
        let mut st = self.lock();
        for r in refs {
            let before = st.refs.get(r).map(str::to_string);
            if before.as_deref() != Some(id.as_str()) {
                st.refs.add(r, &id)?;
                changed = true;
            }
        }
        Ok((id, changed))
    }

    /// The uncompressed tar stream of layer `diff_id`, reassembled byte for byte
    /// (checked against the diff ID as it goes); returns its length.
    pub fn write_layer_tar(&self, diff_id: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        let _r = self.layer_use.read().unwrap_or_else(|p| p.into_inner());
        let split = tar_split::TarSplit::read_from(&self.paths.tar_split(diff_id))?;
        let mut hw = digest::HashingWriter::new(out);
        split.reassemble(&self.paths.diff_dir(diff_id), &mut hw)?;
        let (_, got, len) = hw.finish();
        if got != diff_id {
            return Err(Error::internal(format!(
                "layer {diff_id} no longer matches its digest (its files were changed on disk)"
            )));
        }
        Ok(len)
    }

    /// Every tag and digest reference of the repository `name` (full form, e.g.
    /// `localhost:5000/team/app`), with the image each names.
    pub fn repository_refs(&self, name: &str) -> Vec<(Reference, String)> {
        self.lock().refs.by_name(name)
    }

    /// Points the digest reference `r` (`name@sha256:…`) at image `id`.
    pub fn add_digest_ref(&self, r: &Reference, id: &str) -> Result<()> {
        if r.digest.is_none() || r.tag.is_some() {
            return Err(Error::invalid(format!("{r} is not a digest reference")));
        }
        let mut st = self.lock();
        if !st.images.contains_key(id) {
            return Err(Error::not_found(format!("No such image: {id}")));
        }
        st.refs.add(r, id)?;
        Ok(())
    }

    /// The size of layer `diff_id`'s tar stream.
    pub fn layer_tar_size(&self, diff_id: &str) -> Option<u64> {
        self.lock().layers.get(diff_id).map(|l| l.tar_size)
    }

    /// Makes an image visible: its prepared layers, chain records, config and meta,
    /// in that order, so that a crash never leaves an image without its layers.
    /// Returns the image ID. Existing images and layers are reused.
    fn commit_image(
        &self,
        raw: &[u8],
        json: &ImageJson,
        prepared: Vec<PreparedLayer>,
        parent: Option<String>,
    ) -> Result<String> {
        let id = digest::sha256_of(raw);
        let mut st = self.lock();
        for p in prepared {
            let meta = p.meta.clone();
            let known = st.layers.contains_key(&meta.diff_id);
            // A layer already stored is discarded (in the background) by commit.
            self.paths.commit(p)?;
            if !known {
                st.layers.insert(meta.diff_id.clone(), meta);
            }
        }
        let diff_ids = json.diff_ids();
        let mut parent_chain: Option<String> = None;
        for d in diff_ids {
            let chain = digest::chain_id(parent_chain.as_deref(), d);
            if !st.layers.contains_key(d) {
                // Another request removed a layer this one counted on finding.
                return Err(Error::conflict(format!(
                    "layer {d} of image {id} was removed while the image was being added; try again"
                )));
            }
            if !st.chains.contains_key(&chain) {
                let rec = ChainRecord {
                    chain_id: chain.clone(),
                    diff_id: d.clone(),
                    parent: parent_chain.clone(),
                };
                self.paths.write_chain(&rec)?;
                st.chains.insert(chain.clone(), rec);
            }
            parent_chain = Some(chain);
        }
        if let Some(e) = st.images.get_mut(&id) {
            if parent.is_some() && e.meta.parent.is_none() {
                let mut meta = e.meta.clone();
                meta.parent = parent;
                crate::store::write_json(&self.meta_path(&id), &meta)?;
                e.meta = meta;
            }
            return Ok(id);
        }
        let meta = ImageMeta {
            parent,
            last_tag_time: None,
        };
        crate::store::write_json(&self.meta_path(&id), &meta)?;
        crate::store::write_atomic_mode(&self.config_path(&id), raw, 0o600)?;
        st.images.insert(
            id.clone(),
            ImageEntry {
                json: json.clone(),
                raw: Arc::new(raw.to_vec()),
                meta,
            },
        );
        Ok(id)
    }

    /// Removes an image's config and meta files and its entry.
    fn delete_image_files(&self, st: &mut State, id: &str) -> Result<()> {
        for p in [self.config_path(id), self.meta_path(id)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(crate::store::with_path(e, "remove", &p).into()),
            }
        }
        st.images.remove(id);
        Ok(())
    }

    /// Removes chain records and layers that no image and no container uses.
    /// Layer trees are renamed aside (returned, for deletion outside the lock).
    /// Requires `layer_use` held exclusively.
    fn collect_garbage(&self, st: &mut State) -> Result<Vec<(PathBuf, String)>> {
        let mut used: HashSet<String> = HashSet::new();
        for e in st.images.values() {
            used.extend(digest::chain_ids(e.json.diff_ids()));
        }
        for r in st.rw.values() {
            used.extend(r.chain_ids.iter().cloned());
        }
        let dead: Vec<String> = st
            .chains
            .keys()
            .filter(|c| !used.contains(*c))
            .cloned()
            .collect();
        for c in &dead {
            self.paths.remove_chain(c)?;
            st.chains.remove(c);
        }
        let used_diffs: HashSet<&String> = st.chains.values().map(|c| &c.diff_id).collect();
        let dead_layers: Vec<String> = st
            .layers
            .keys()
            .filter(|d| !used_diffs.contains(d))
            .cloned()
            .collect();
        let mut retired = Vec::new();
        for d in dead_layers {
            if let Some(dir) = self.paths.retire_layer(&d)? {
                retired.push((dir, d.clone()));
            }
            st.layers.remove(&d);
        }
        // Trees on disk that no metadata knows (a crash between rename and record).
        for name in layer_store::list_dir(&self.paths.layers)? {
            if digest::is_hex64(&name) && !st.layers.contains_key(&format!("sha256:{name}")) {
                if let Some(dir) = self.paths.retire_layer(&format!("sha256:{name}"))? {
                    retired.push((dir, name));
                }
            }
        }
        Ok(retired)
    }

    /// `docker rmi`: Docker's untag-versus-delete rules (moby's `ImageDelete`).
    /// `noprune` keeps untagged parents; `users` names the containers using an
    /// image ID (a running one is a hard conflict, a stopped one needs `force`).
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
        users: &dyn Fn(&str) -> Vec<ImageUser>,
    ) -> Result<Vec<Removed>> {
        let _w = self.layer_use.write().unwrap_or_else(|p| p.into_inner());
        let mut st = self.lock();
        let mut records = Vec::new();
        let result = self.remove_locked(&mut st, name, force, !noprune, users, &mut records);
        let retired = self.collect_garbage(&mut st);
        drop(st);
        remove_retired(retired?);
        result?;
        Ok(records)
    }

    fn remove_locked(
        &self,
        st: &mut State,
        name: &str,
        force: bool,
        prune: bool,
        users: &dyn Fn(&str) -> Vec<ImageUser>,
        records: &mut Vec<Removed>,
    ) -> Result<()> {
        let id = lookup(st, name)?;
        let mut repo_refs = st.refs.references(&id);
        let mut removed_repository_ref = false;
        if !is_id_prefix(&id, name) {
            // A repository reference: untag it first.
            if !force && is_single_reference(&repo_refs) {
                if let Some(u) = users(&id).first() {
                    return Err(Error::conflict(format!(
                        "conflict: unable to remove repository reference {name:?} (must force) - container {} is using its referenced image {}",
                        digest::short(&u.container_id),
                        digest::short(&id)
                    )));
                }
            }
            let parsed = reference::parse_normalized(name)?.with_default_tag();
            st.refs.remove(&parsed)?;
            records.push(Removed::Untagged {
                image: id.clone(),
                reference: parsed.familiar_string(),
            });
            repo_refs = st.refs.references(&id);
            if parsed.digest.is_none() {
                let same_repo_tag = repo_refs
                    .iter()
                    .any(|r| r.digest.is_none() && r.name() == parsed.name());
                if !same_repo_tag {
                    let mut remaining = Vec::new();
                    for r in repo_refs {
                        if r.digest.is_some() && r.name() == parsed.name() {
                            st.refs.remove(&r)?;
                            records.push(Removed::Untagged {
                                image: id.clone(),
                                reference: r.familiar_string(),
                            });
                        } else {
                            remaining.push(r);
                        }
                    }
                    repo_refs = remaining;
                }
            }
            if !repo_refs.is_empty() {
                return Ok(());
            }
            removed_repository_ref = true;
        } else if is_single_reference(&repo_refs) {
            // An ID with at most one tag (per repository): remove the tags too.
            let mask = if force {
                Conflicts::HARD
            } else {
                Conflicts::HARD | Conflicts::STOPPED
            };
            if let Some(c) = check_conflict(st, &id, mask, users) {
                return Err(c.into_error(&id));
            }
            for r in repo_refs {
                st.refs.remove(&r)?;
                records.push(Removed::Untagged {
                    image: id.clone(),
                    reference: r.familiar_string(),
                });
            }
        }
        self.delete_helper(
            st,
            &id,
            records,
            force,
            prune,
            removed_repository_ref,
            users,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_helper(
        &self,
        st: &mut State,
        id: &str,
        records: &mut Vec<Removed>,
        force: bool,
        prune: bool,
        quiet: bool,
        users: &dyn Fn(&str) -> Vec<ImageUser>,
    ) -> Result<()> {
        let mask = if force {
            Conflicts::HARD
        } else {
            Conflicts::HARD | Conflicts::SOFT
        };
        if let Some(c) = check_conflict(st, id, mask, users) {
            let dangling = st.refs.references(id).is_empty() && children_of(st, id).is_empty();
            if quiet && (!dangling || c.used) {
                return Ok(());
            }
            return Err(c.into_error(id));
        }
        let parent = st.images.get(id).and_then(|e| e.meta.parent.clone());
        for r in st.refs.references(id) {
            st.refs.remove(&r)?;
            records.push(Removed::Untagged {
                image: id.to_string(),
                reference: r.familiar_string(),
            });
        }
        let chains = st
            .images
            .get(id)
            .map(|e| digest::chain_ids(e.json.diff_ids()))
            .unwrap_or_default();
        self.delete_image_files(st, id)?;
        records.push(Removed::Deleted { id: id.to_string() });
        // Chains this image alone used go with it, top first (Docker's order).
        let mut used: HashSet<String> = HashSet::new();
        for e in st.images.values() {
            used.extend(digest::chain_ids(e.json.diff_ids()));
        }
        for r in st.rw.values() {
            used.extend(r.chain_ids.iter().cloned());
        }
        for c in chains.iter().rev() {
            if !used.contains(c) && st.chains.contains_key(c) {
                let size = st
                    .chains
                    .get(c)
                    .and_then(|rec| st.layers.get(&rec.diff_id))
                    .map_or(0, |l| l.size);
                records.push(Removed::DeletedLayer {
                    chain_id: c.clone(),
                    size,
                });
            }
        }
        match parent {
            Some(p) if prune && st.images.contains_key(&p) => {
                self.delete_helper(st, &p, records, false, true, true, users)
            }
            _ => Ok(()),
        }
    }

    /// Deletes unused images for `docker image prune`: `select` picks candidates
    /// (given each image's details); images in use or (when `dangling_only`) tagged
    /// are kept. Returns the removal records and the bytes reclaimed.
    pub fn prune(
        &self,
        dangling_only: bool,
        select: &dyn Fn(&ImageDetails) -> bool,
        users: &dyn Fn(&str) -> Vec<ImageUser>,
    ) -> Result<(Vec<Removed>, u64)> {
        let candidates: Vec<ImageDetails> = self
            .list()
            .into_iter()
            .filter(|d| !dangling_only || d.repo_tags.is_empty())
            .filter(|d| !(d.repo_tags.is_empty() && d.repo_digests.is_empty() && d.children > 0))
            .filter(|d| select(d))
            .collect();
        let mut all = Vec::new();
        for d in candidates {
            let refs: Vec<String> = {
                let st = self.lock();
                if !st.images.contains_key(&d.id) {
                    continue;
                }
                st.refs
                    .references(&d.id)
                    .iter()
                    .map(|r| r.to_string())
                    .collect()
            };
            // Untagged: by ID. Otherwise each reference (with `dangling_only`, only
            // digest references are left: tagged images were not candidates).
            let targets = if refs.is_empty() {
                vec![digest::encoded(&d.id).to_string()]
            } else {
                refs
            };
            for t in targets {
                match self.remove(&t, false, false, users) {
                    Ok(r) => all.extend(r),
                    Err(Error::Conflict(_)) | Err(Error::NotFound(_)) => {}
                    Err(e) => tracing::warn!("failed to prune image {t}: {e}"),
                }
            }
        }
        let reclaimed = all
            .iter()
            .map(|r| match r {
                Removed::DeletedLayer { size, .. } => *size,
                _ => 0,
            })
            .sum();
        Ok((all, reclaimed))
    }
}

/// Deletes retired layer trees (outside the state lock: they can be large).
fn remove_retired(retired: Vec<(PathBuf, String)>) {
    for (dir, _) in retired {
        layer_store::remove_tree(&dir);
    }
}

/// Which kinds of conflict prevent a deletion (Docker's conflict masks).
#[derive(Clone, Copy)]
struct Conflicts(u8);

impl Conflicts {
    const CHILD: Conflicts = Conflicts(1);
    const RUNNING: Conflicts = Conflicts(2);
    const ACTIVE_REF: Conflicts = Conflicts(4);
    const STOPPED: Conflicts = Conflicts(8);
    const HARD: Conflicts = Conflicts(1 | 2);
    const SOFT: Conflicts = Conflicts(4 | 8);

    fn has(self, other: Conflicts) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Conflicts {
    type Output = Conflicts;
    fn bitor(self, o: Conflicts) -> Conflicts {
        Conflicts(self.0 | o.0)
    }
}

struct Conflict {
    hard: bool,
    used: bool,
    message: String,
}

impl Conflict {
    fn into_error(self, id: &str) -> Error {
        let force = if self.hard {
            "cannot be forced"
        } else {
            "must be forced"
        };
        Error::conflict(format!(
            "conflict: unable to delete {} ({force}) - {}",
            digest::short(id),
            self.message
        ))
    }
}

fn check_conflict(
    st: &State,
    id: &str,
    mask: Conflicts,
    users: &dyn Fn(&str) -> Vec<ImageUser>,
) -> Option<Conflict> {
    if mask.has(Conflicts::CHILD) && !children_of(st, id).is_empty() {
        return Some(Conflict {
            hard: true,
            used: false,
            message: "image has dependent child images".to_string(),
        });
    }
    let u = users(id);
    if mask.has(Conflicts::RUNNING) {
        if let Some(r) = u.iter().find(|u| u.running) {
            return Some(Conflict {
                hard: true,
                used: true,
                message: format!(
                    "image is being used by running container {}",
                    digest::short(&r.container_id)
                ),
            });
        }
    }
    if mask.has(Conflicts::ACTIVE_REF) && !st.refs.references(id).is_empty() {
        return Some(Conflict {
            hard: false,
            used: false,
            message: "image is referenced in multiple repositories".to_string(),
        });
    }
    if mask.has(Conflicts::STOPPED) {
        if let Some(s) = u.iter().find(|u| !u.running) {
            return Some(Conflict {
                hard: false,
                used: true,
                message: format!(
                    "image is being used by stopped container {}",
                    digest::short(&s.container_id)
                ),
            });
        }
    }
    None
}

/// Docker's `isSingleReference`: all references in one repository, at most one tag.
fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut single: Option<&Reference> = None;
    let mut canonical: HashSet<String> = HashSet::new();
    for r in refs {
        if r.digest.is_some() {
            canonical.insert(r.name());
        } else if single.is_none() {
            single = Some(r);
        } else {
            return false;
        }
    }
    let single = single.unwrap_or(&refs[0]);
    canonical.len() == 1 && canonical.contains(&single.name())
}

/// Whether `name` is (a prefix of) the image ID, with or without `sha256:`.
fn is_id_prefix(id: &str, name: &str) -> bool {
    id.starts_with(name) || digest::encoded(id).starts_with(name)
}

fn children_of(st: &State, id: &str) -> Vec<String> {
    st.images
        .iter()
        .filter(|(_, e)| e.meta.parent.as_deref() == Some(id))
        .map(|(i, _)| i.clone())
        .collect()
}

fn tags_of(st: &State, id: &str) -> Vec<String> {
    st.refs
        .references(id)
        .into_iter()
        .filter(|r| r.digest.is_none())
        .map(|r| r.familiar_string())
        .collect()
}

/// Docker's `GetImage`: a full ID, a tag, then an ID prefix.
fn lookup(st: &State, name: &str) -> Result<String> {
    let not_found = |shown: &str| Error::not_found(format!("No such image: {shown}"));
    match reference::parse_any(name)? {
        reference::AnyReference::Id(id) => {
            if st.images.contains_key(&id) {
                Ok(id)
            } else {
                Err(not_found(&id))
            }
        }
        reference::AnyReference::Named(r) => {
            let tagged = r.clone().with_default_tag();
            if let Some(id) = st.refs.get(&tagged) {
                if st.images.contains_key(id) {
                    return Ok(id.to_string());
                }
            }
            if let Some(id) = search_prefix(st, name) {
                return Ok(id);
            }
            Err(not_found(&tagged.familiar_string()))
        }
    }
}

/// A unique image whose ID starts with `prefix` (hex, optionally after `sha256:`).
fn search_prefix(st: &State, prefix: &str) -> Option<String> {
    let hex = prefix.strip_prefix("sha256:").unwrap_or(prefix);
    if hex.is_empty()
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut hits = st
        .images
        .keys()
        .filter(|id| digest::encoded(id).starts_with(hex));
    let first = hits.next()?;
    if hits.next().is_some() {
        return None;
    }
    Some(first.clone())
}
