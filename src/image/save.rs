//! `docker save`: the archive Docker 25+ writes — an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…` holding configs, manifests and
//! uncompressed layers) that is also a docker-archive (`manifest.json`,
//! `repositories`), so both old and new engines load it.
//!
//! Layers are reassembled byte for byte from their tar-split recipes and streamed
//! straight into the output; every size is known in advance, so nothing is staged.
//! A layer whose files changed on disk (its digest no longer matches) aborts the
//! stream rather than produce an archive that would not load.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use super::digest::{self, HashingWriter};
use super::reference::{self, AnyReference, Reference};
use super::tar_split::TarSplit;
use super::{Error, ImageStore, Result, lookup, search_prefix};

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// What a save will write, resolved up front (so a bad name is an HTTP error,
/// not a broken stream).
#[derive(Clone, Debug)]
pub struct SavePlan {
    /// Images in the order first named, each with the tags to record.
    pub images: Vec<(String, Vec<Reference>)>,
}

impl ImageStore {
    /// Resolves the names of `docker save`: a tag saves that tag, a bare name every
    /// tag of the repository, an ID (or prefix) the image without a name.
    pub fn plan_save(&self, names: &[String]) -> Result<SavePlan> {
        let st = self.lock();
        let mut images: Vec<(String, Vec<Reference>)> = Vec::new();
        let mut add = |id: String, r: Option<Reference>| {
            let pos = match images.iter().position(|(i, _)| *i == id) {
                Some(p) => p,
                None => {
                    images.push((id, Vec::new()));
                    images.len() - 1
                }
            };
            if let Some(r) = r {
                if r.digest.is_none() && !images[pos].1.contains(&r) {
                    images[pos].1.push(r);
                }
            }
        };
        for name in names {
            match reference::parse_any(name)? {
                AnyReference::Id(id) => {
                    if !st.images.contains_key(&id) {
                        return Err(Error::not_found(format!("No such image: {id}")));
                    }
                    add(id, None);
                }
                AnyReference::Named(r) => {
                    if r.familiar_name() == digest::SHA256 {
                        let id = search_prefix(&st, name)
                            .ok_or_else(|| Error::not_found(format!("No such image: {name}")))?;
                        add(id, None);
                    } else if r.is_name_only() {
                        let mut refs = st.refs.by_name(&r.name());
                        refs.sort_by_key(|a| a.0.to_string());
                        if refs.is_empty() {
                            let id = search_prefix(&st, name).ok_or_else(|| {
                                Error::not_found(format!("No such image: {name}"))
                            })?;
                            add(id, None);
                        }
                        for (tr, id) in refs {
                            if st.images.contains_key(&id) {
                                add(id, Some(tr));
                            }
                        }
                    } else {
                        let id = st
                            .refs
                            .get(&r)
                            .filter(|id| st.images.contains_key(*id))
                            .map(str::to_string);
                        match id {
                            Some(id) => add(id, Some(r)),
                            None => {
                                // Docker's words for a tag that does not exist.
                                lookup(&st, name)?;
                                return Err(Error::not_found("reference does not exist"));
                            }
                        }
                    }
                }
            }
        }
        if images.is_empty() {
            return Err(Error::invalid("no images to save"));
        }
        Ok(SavePlan { images })
    }

    /// Writes the archive for `plan` to `out`.
    pub fn write_save<W: Write>(&self, plan: &SavePlan, out: W) -> Result<()> {
        // Layers stay put while they are read.
        let _r = self.layer_use.read().unwrap_or_else(|p| p.into_inner());
        struct Img {
            id: String,
            raw: std::sync::Arc<Vec<u8>>,
            diff_ids: Vec<String>,
            tags: Vec<Reference>,
            created: i64,
            parent: Option<String>,
        }
        let mut imgs = Vec::new();
        let mut layer_sizes: BTreeMap<String, u64> = BTreeMap::new();
        {
            let st = self.lock();
            for (id, tags) in &plan.images {
                let e = st
                    .images
                    .get(id)
                    .ok_or_else(|| Error::not_found(format!("No such image: {id}")))?;
                for d in e.json.diff_ids() {
                    let l = st.layers.get(d).ok_or_else(|| {
                        Error::internal(format!(
                            "layer {d} of image {id} is missing from the store"
                        ))
                    })?;
                    layer_sizes.insert(d.clone(), l.tar_size);
                }
                if e.json.diff_ids().is_empty() {
                    return Err(Error::invalid(format!(
                        "cannot save image {id}: it has no layers (empty export - not implemented)"
                    )));
                }
                imgs.push(Img {
                    id: id.clone(),
                    raw: e.raw.clone(),
                    diff_ids: e.json.diff_ids().to_vec(),
                    tags: tags.clone(),
                    created: e
                        .json
                        .created_nanos()
                        .unwrap_or(0)
                        .div_euclid(1_000_000_000),
                    parent: e.meta.parent.clone(),
                });
            }
        }
        // Blobs: configs, manifests, layers (by digest); then the index files.
        let mut blobs: BTreeMap<String, BlobSrc> = BTreeMap::new();
        let mut manifest_json: Vec<Value> = Vec::new();
        let mut index_manifests: Vec<Value> = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let ids: HashSet<&str> = imgs.iter().map(|i| i.id.as_str()).collect();
        for img in &imgs {
            blobs.insert(
                digest::encoded(&img.id).to_string(),
                BlobSrc::Bytes(img.raw.to_vec(), img.created),
            );
            let layers: Vec<Value> = img
                .diff_ids
                .iter()
                .map(|d| json!({ "mediaType": MT_LAYER, "digest": d, "size": layer_sizes[d] }))
                .collect();
            for d in &img.diff_ids {
                blobs.insert(
                    digest::encoded(d).to_string(),
                    BlobSrc::Layer(d.clone(), layer_sizes[d], img.created),
                );
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": { "mediaType": MT_CONFIG, "digest": img.id, "size": img.raw.len() },
                "layers": layers,
            });
            let mbytes = serde_json::to_vec(&manifest).unwrap_or_default();
            let mdigest = digest::sha256_of(&mbytes);
            let msize = mbytes.len();
            blobs.insert(
                digest::encoded(&mdigest).to_string(),
                BlobSrc::Bytes(mbytes, 0),
            );
            let mut repo_tags = Vec::new();
            for t in &img.tags {
                let tag = t
                    .tag
                    .clone()
                    .unwrap_or_else(|| reference::DEFAULT_TAG.to_string());
                repositories.entry(t.familiar_name()).or_default().insert(
                    tag.clone(),
                    digest::encoded(img.diff_ids.last().map_or("", String::as_str)).to_string(),
                );
                repo_tags.push(Value::String(t.familiar_string()));
                let mut ann = Map::new();
                ann.insert("io.containerd.image.name".into(), json!(t.to_string()));
                ann.insert("org.opencontainers.image.ref.name".into(), json!(tag));
                index_manifests.push(json!({
                    "mediaType": MT_MANIFEST, "digest": mdigest, "size": msize, "annotations": ann,
                }));
            }
            if img.tags.is_empty() {
                index_manifests
                    .push(json!({ "mediaType": MT_MANIFEST, "digest": mdigest, "size": msize }));
            }
            let mut item = Map::new();
            item.insert(
                "Config".into(),
                json!(format!("blobs/sha256/{}", digest::encoded(&img.id))),
            );
            item.insert(
                "RepoTags".into(),
                if repo_tags.is_empty() {
                    Value::Null
                } else {
                    Value::Array(repo_tags)
                },
            );
            item.insert(
                "Layers".into(),
                json!(
                    img.diff_ids
                        .iter()
                        .map(|d| format!("blobs/sha256/{}", digest::encoded(d)))
                        .collect::<Vec<_>>()
                ),
            );
            if let Some(p) = img.parent.as_ref().filter(|p| ids.contains(p.as_str())) {
                item.insert("Parent".into(), json!(p));
            }
            manifest_json.push(Value::Object(item));
        }
        let mut w = TarOut::new(out);
        w.dir("blobs/", 0)?;
        w.dir("blobs/sha256/", 0)?;
        for (hex, src) in &blobs {
            let name = format!("blobs/sha256/{hex}");
            match src {
                BlobSrc::Bytes(b, mtime) => w.file(&name, b, *mtime)?,
                BlobSrc::Layer(d, size, mtime) => {
                    self.write_layer(&mut w, &name, d, *size, *mtime)?
                }
            }
        }
        let index =
            json!({ "schemaVersion": 2, "mediaType": MT_INDEX, "manifests": index_manifests });
        w.file(
            "index.json",
            &serde_json::to_vec(&index).unwrap_or_default(),
            0,
        )?;
        let mut mj = serde_json::to_vec(&manifest_json).unwrap_or_default();
        mj.push(b'\n');
        w.file("manifest.json", &mj, 0)?;
        w.file("oci-layout", br#"{"imageLayoutVersion": "1.0.0"}"#, 0)?;
        if !repositories.is_empty() {
            let mut r = serde_json::to_vec(&repositories).unwrap_or_default();
            r.push(b'\n');
            w.file("repositories", &r, 0)?;
        }
        w.finish()
    }

    fn write_layer<W: Write>(
        &self,
        w: &mut TarOut<W>,
        name: &str,
        diff_id: &str,
        size: u64,
        mtime: i64,
    ) -> Result<()> {
        let split = TarSplit::read_from(&self.paths.tar_split(diff_id))?;
        if split.stream_len() != size {
            return Err(Error::internal(format!(
                "layer {diff_id}: its recipe describes {} bytes, not {size}; the layer store is damaged",
                split.stream_len()
            )));
        }
        w.header(name, size, 0o644, mtime, tar::EntryType::Regular)?;
        let mut hw = HashingWriter::new(&mut w.out);
        split.reassemble(&self.paths.diff_dir(diff_id), &mut hw)?;
        let (_, got, len) = hw.finish();
        if got != diff_id || len != size {
            return Err(Error::internal(format!(
                "layer {diff_id} no longer matches its digest (its files were changed on disk); the archive would not load"
            )));
        }
        w.pad(size)
    }
}

enum BlobSrc {
    /// Bytes and their mtime.
    Bytes(Vec<u8>, i64),
    /// A layer by diff ID, its tar size and mtime.
    Layer(String, u64, i64),
}

/// A minimal tar writer: ustar headers, content, padding, the end blocks.
struct TarOut<W: Write> {
    out: W,
}

impl<W: Write> TarOut<W> {
    fn new(out: W) -> Self {
        TarOut { out }
    }

    fn header(
        &mut self,
        name: &str,
        size: u64,
        mode: u32,
        mtime: i64,
        kind: tar::EntryType,
    ) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(|e| Error::internal(format!("tar header for {name}: {e}")))?;
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(mtime.max(0) as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(kind);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(out_err)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (512 - (size % 512) as usize) % 512;
        self.out.write_all(&[0u8; 512][..rem]).map_err(out_err)
    }

    fn dir(&mut self, name: &str, mtime: i64) -> Result<()> {
        self.header(name, 0, 0o755, mtime, tar::EntryType::Directory)
    }

    fn file(&mut self, name: &str, data: &[u8], mtime: i64) -> Result<()> {
        self.header(
            name,
            data.len() as u64,
            0o644,
            mtime,
            tar::EntryType::Regular,
        )?;
        self.out.write_all(data).map_err(out_err)?;
        self.pad(data.len() as u64)
    }

    fn finish(mut self) -> Result<()> {
        self.out.write_all(&[0u8; 1024]).map_err(out_err)?;
        self.out.flush().map_err(out_err)
    }
}

fn out_err(e: io::Error) -> Error {
    Error::internal(format!(
        "write archive: {}",
        crate::store::strip_os_suffix(&e)
    ))
}
