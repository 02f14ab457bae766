//! `docker load`: image archives from any engine.
//!
//! Three layouts are read:
//! - docker-archive (`manifest.json` naming configs and layer files, as every Docker
//!   since 1.10 writes, and Podman's `docker-archive`),
//! - the legacy layout (`repositories` + `<v1 id>/json` + `<v1 id>/layer.tar`),
//! - OCI image layout (`index.json` + `blobs/sha256/…`, e.g. `podman save --format
//!   oci-archive`).
//!
//! The archive (itself optionally compressed) streams to disk under
//! `image/tmp/` entry by entry, each hashed on the way; nothing of it is trusted:
//! entry names are checked like layer entries, links resolve only inside the
//! archive, blobs must match their digests, and layers must unpack to the diff IDs
//! their configs name. All images of an archive are prepared (layers unpacked into
//! temporary directories and verified) before any is committed, so a bad archive
//! leaves nothing behind.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::ImageJson;
use super::digest::{self, Hasher};
use super::layer_store::{self, PreparedLayer};
use super::reference::{self, Reference};
use super::tar_safe;
use super::{Error, ImageStore, Result};

/// Largest JSON document (manifest, index, config) read into memory.
const MAX_JSON: u64 = 64 << 20;

/// What a load tells the client as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadMsg {
    /// A line for the `stream` field (`Loaded image: busybox:latest\n`).
    Line(String),
    /// A finished step for a layer (shown as a progress bar when not quiet).
    Progress {
        id: String,
        status: String,
        bytes: u64,
    },
}

/// One image the load brought in.
#[derive(Clone, Debug)]
pub struct LoadedImage {
    pub id: String,
    /// Familiar `name:tag` forms.
    pub tags: Vec<String>,
}

/// Options for [`ImageStore::load`].
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub quiet: bool,
    /// Go's name for the host architecture, to pick from multi-platform indexes.
    pub host_arch: String,
}

/// An archive entry, staged.
#[derive(Clone, Debug)]
enum Staged {
    File { path: PathBuf, digest: String },
    Symlink(String),
    Link(String),
}

/// The archive's entries on disk, by normalized name.
struct Staging {
    dir: PathBuf,
    entries: HashMap<String, Staged>,
}

impl Drop for Staging {
    fn drop(&mut self) {
        layer_store::remove_tree(&self.dir);
    }
}

/// A resolved archive file.
struct Blob<'a> {
    path: &'a Path,
    digest: &'a str,
}

impl Staging {
    fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Follows symlinks and hard links inside the archive to a file.
    fn resolve(&self, name: &str, named_by: &str) -> Result<Blob<'_>> {
        let mut cur = normalize_name(name).map_err(|why| {
            Error::invalid(format!("invalid archive: {named_by} names {name:?}: {why}"))
        })?;
        for _ in 0..32 {
            match self.entries.get(&cur) {
                None => {
                    return Err(Error::invalid(format!(
                        "invalid archive: {named_by} names {name}, which is not in the archive"
                    )));
                }
                Some(Staged::File { path, digest }) => {
                    return Ok(Blob { path, digest });
                }
                Some(Staged::Link(t)) => cur = t.clone(),
                Some(Staged::Symlink(t)) => {
                    let base = match cur.rfind('/') {
                        Some(i) if !t.starts_with('/') => format!("{}/{t}", &cur[..i]),
                        _ => t.clone(),
                    };
                    cur = normalize_name(&base).map_err(|why| {
                        Error::invalid(format!("invalid archive: symlink {cur:?} -> {t:?}: {why}"))
                    })?;
                }
            }
        }
        Err(Error::invalid(format!(
            "invalid archive: too many levels of links resolving {name}"
        )))
    }

    /// Reads a (small) archive file whole, checking `blobs/sha256/<hex>` names.
    fn read(&self, name: &str, named_by: &str) -> Result<Vec<u8>> {
        let b = self.resolve(name, named_by)?;
        check_blob_name(name, b.digest)?;
        let f = File::open(b.path).map_err(|e| crate::store::with_path(e, "open", b.path))?;
        let mut data = Vec::new();
        f.take(MAX_JSON + 1)
            .read_to_end(&mut data)
            .map_err(|e| crate::store::with_path(e, "read", b.path))?;
        if data.len() as u64 > MAX_JSON {
            return Err(Error::invalid(format!(
                "invalid archive: {name} is larger than {} MiB",
                MAX_JSON >> 20
            )));
        }
        Ok(data)
    }
}

/// `blobs/sha256/<hex>` must hold content with that digest.
fn check_blob_name(name: &str, actual: &str) -> Result<()> {
    let n = normalize_name(name).unwrap_or_default();
    if let Some(hex) = n.strip_prefix("blobs/sha256/") {
        if digest::is_hex64(hex) && digest::encoded(actual) != hex {
            return Err(Error::invalid(format!(
                "invalid archive: {n} does not match its digest: its content hashes to {actual}"
            )));
        }
    }
    Ok(())
}

fn normalize_name(name: &str) -> std::result::Result<String, String> {
    let comps = tar_safe::normalize(name.as_bytes())
        .map_err(|why| why.replace("layer root", "archive root"))?;
    let parts: Vec<String> = comps
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    Ok(parts.join("/"))
}

/// One image to bring in.
struct Plan {
    raw: Vec<u8>,
    json: ImageJson,
    /// Where each layer's data is (archive name), bottom first.
    layers: Vec<String>,
    tags: Vec<Reference>,
    parent: Option<String>,
    /// What names it in the archive (for messages).
    source: String,
}

#[derive(Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Option<Vec<String>>,
    #[serde(rename = "Parent", default)]
    parent: Option<String>,
}

#[derive(Deserialize, Clone, Debug)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    platform: Option<OciPlatform>,
}

#[derive(Deserialize, Clone, Debug)]
struct OciPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

impl ImageStore {
    /// Loads every image in the archive read from `input`.
    pub fn load<R: Read>(
        &self,
        input: R,
        opts: &LoadOptions,
        out: &mut dyn FnMut(LoadMsg),
    ) -> Result<Vec<LoadedImage>> {
        let (_, plain) = layer_store::decompress(input, "the image archive")?;
        let staging = self.stage(plain)?;
        if staging.has("manifest.json") {
            let plans = docker_archive_plans(&staging)?;
            self.load_plans(&staging, plans, opts, out, true)
        } else if staging.has("index.json") {
            let plans = oci_plans(&staging, &opts.host_arch)?;
            self.load_plans(&staging, plans, opts, out, true)
        } else if staging.has("repositories") {
            self.load_legacy(&staging, opts, out)
        } else {
            Err(Error::invalid(
                "invalid archive: it has no manifest.json, index.json or repositories file; is it an image archive made by docker save? (a root filesystem tarball goes to docker import)",
            ))
        }
    }

    /// Streams the archive into `image/tmp/`, one file per entry, hashing each.
    fn stage<R: Read>(&self, input: R) -> Result<Staging> {
        let dir = crate::store::temp_path(&self.root.join("tmp").join("load"));
        crate::store::create_private_dir(&dir)?;
        let mut staging = Staging {
            dir,
            entries: HashMap::new(),
        };
        let mut archive = tar::Archive::new(input);
        let entries = archive
            .entries()
            .map_err(|e| Error::invalid(format!("invalid archive: {e}")))?;
        let mut buf = vec![0u8; 256 << 10];
        let mut n = 0u64;
        for entry in entries {
            let mut entry = entry.map_err(|e| archive_read_error(&e, n))?;
            n += 1;
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = normalize_name(&raw_name).map_err(|why| {
                Error::invalid(format!("invalid archive entry {raw_name:?}: {why}"))
            })?;
            if name.is_empty() {
                continue;
            }
            let kind = entry.header().entry_type();
            let staged = match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let path = staging.dir.join(n.to_string());
                    let mut f = File::create(&path)
                        .map_err(|e| crate::store::with_path(e, "create", &path))?;
                    let mut h = Hasher::new();
                    loop {
                        let k = match entry.read(&mut buf) {
                            Ok(k) => k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(archive_read_error(&e, n)),
                        };
                        if k == 0 {
                            break;
                        }
                        h.update(&buf[..k]);
                        f.write_all(&buf[..k])
                            .map_err(|e| crate::store::with_path(e, "write", &path))?;
                    }
                    if h.len() != entry.size() {
                        return Err(Error::invalid(format!(
                            "invalid archive: unexpected end of data in {name} (truncated archive?)"
                        )));
                    }
                    Staged::File {
                        path,
                        digest: h.finish(),
                    }
                }
                tar::EntryType::Symlink => {
                    let t = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    Staged::Symlink(t)
                }
                tar::EntryType::Link => {
                    let t = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let t = normalize_name(&t).map_err(|why| {
                        Error::invalid(format!(
                            "invalid archive entry {raw_name:?}: link target: {why}"
                        ))
                    })?;
                    Staged::Link(t)
                }
                _ => continue,
            };
            staging.entries.insert(name, staged);
        }
        Ok(staging)
    }

    /// Prepares every plan's layers, then commits the images and their tags.
    fn load_plans(
        &self,
        staging: &Staging,
        plans: Vec<Plan>,
        opts: &LoadOptions,
        out: &mut dyn FnMut(LoadMsg),
        docker_messages: bool,
    ) -> Result<Vec<LoadedImage>> {
        let mut prepared: HashMap<String, PreparedLayer> = HashMap::new();
        for p in &plans {
            let mut parent: Option<String> = None;
            for (i, d) in p.json.diff_ids().iter().enumerate() {
                let chain = digest::chain_id(parent.as_deref(), d);
                parent = Some(chain.clone());
                if prepared.contains_key(d) || self.has_layer(d) {
                    continue;
                }
                let layer = self.prepare_from_archive(staging, &p.layers[i], &p.source, i, d)?;
                if !opts.quiet {
                    out(LoadMsg::Progress {
                        id: digest::short(d).to_string(),
                        status: "Loading layer".to_string(),
                        bytes: layer.meta.tar_size,
                    });
                }
                prepared.insert(d.clone(), layer);
            }
        }
        let mut loaded = Vec::new();
        let mut ids_text = String::new();
        let mut last_tag_count = 0;
        for p in plans {
            let layers: Vec<PreparedLayer> = p
                .json
                .diff_ids()
                .iter()
                .filter_map(|d| prepared.remove(d))
                .collect();
            let id = self.commit_image(&p.raw, &p.json, layers, p.parent.clone())?;
            ids_text.push_str(&format!("Loaded image ID: {id}\n"));
            let mut tags = Vec::new();
            for r in &p.tags {
                let mut st = self.lock();
                let prev = st.refs.get(r).map(str::to_string);
                st.refs.add(r, &id)?;
                drop(st);
                if let Some(prev) = prev.filter(|prev| *prev != id) {
                    out(LoadMsg::Line(format!(
                        "The image {} already exists, renaming the old one with ID {prev} to empty string\n",
                        r.familiar_string()
                    )));
                }
                out(LoadMsg::Line(format!(
                    "Loaded image: {}\n",
                    r.familiar_string()
                )));
                tags.push(r.familiar_string());
            }
            last_tag_count = tags.len();
            loaded.push(LoadedImage { id, tags });
        }
        // Docker prints the IDs when the last image had no tags.
        if docker_messages && last_tag_count == 0 && !ids_text.is_empty() {
            for line in ids_text.lines() {
                out(LoadMsg::Line(format!("{line}\n")));
            }
        }
        Ok(loaded)
    }

    /// Whether the store has the layer `diff_id`.
    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.lock().layers.contains_key(diff_id)
    }

    /// Unpacks one layer file of the archive and checks it against its diff ID.
    fn prepare_from_archive(
        &self,
        staging: &Staging,
        name: &str,
        source: &str,
        index: usize,
        expected: &str,
    ) -> Result<PreparedLayer> {
        let blob = staging.resolve(name, source)?;
        check_blob_name(name, blob.digest)?;
        let f = File::open(blob.path).map_err(|e| crate::store::with_path(e, "open", blob.path))?;
        let what = format!("layer {name}");
        let (_, plain) = layer_store::decompress(f, &what)?;
        let layer = self.paths.prepare(plain).map_err(|e| match e {
            Error::InvalidParameter(m) => Error::invalid(format!("{what}: {m}")),
            other => other,
        })?;
        if layer.meta.diff_id != expected {
            return Err(Error::invalid(format!(
                "invalid diffID for layer {index}: expected {expected:?}, got {:?}",
                layer.meta.diff_id
            )));
        }
        Ok(layer)
    }
}

fn archive_read_error(e: &io::Error, count: u64) -> Error {
    if count == 0 {
        Error::invalid(format!(
            "invalid archive: the input is not a tar archive ({e})"
        ))
    } else if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("entire block") {
        Error::invalid(format!(
            "invalid archive: unexpected end of data after {count} entries (truncated archive?)"
        ))
    } else {
        Error::invalid(format!("invalid archive after {count} entries: {e}"))
    }
}

/// Checks a config and its layer list; the config must be a Linux image with rootfs.
fn checked_config(raw: &[u8], what: &str, layer_count: usize) -> Result<ImageJson> {
    let json = ImageJson::parse(raw, what)?;
    if json.rootfs.is_none() {
        return Err(Error::invalid(format!(
            "invalid image JSON in {what}, no RootFS key"
        )));
    }
    if json.os() != "linux" {
        return Err(Error::invalid(format!(
            "cannot load {} image on linux",
            json.os()
        )));
    }
    if json.diff_ids().len() != layer_count {
        return Err(Error::invalid(format!(
            "invalid manifest, layers length mismatch: expected {layer_count}, got {}",
            json.diff_ids().len()
        )));
    }
    for d in json.diff_ids() {
        digest::parse(d).map_err(|e| Error::invalid(format!("{what}: diff ID {e}")))?;
    }
    Ok(json)
}

fn docker_archive_plans(staging: &Staging) -> Result<Vec<Plan>> {
    let data = staging.read("manifest.json", "the archive")?;
    let manifest: Option<Vec<ManifestItem>> = serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(format!("invalid archive: manifest.json: {e}")))?;
    let manifest = manifest.ok_or_else(|| {
        Error::invalid("invalid manifest, manifest cannot be null (but can be [])")
    })?;
    let mut plans = Vec::new();
    for m in manifest {
        let raw = staging.read(&m.config, "manifest.json")?;
        let layers = m.layers.unwrap_or_default();
        let json = checked_config(&raw, &m.config, layers.len())?;
        let mut tags = Vec::new();
        for t in m.repo_tags.unwrap_or_default() {
            let r = reference::parse_normalized(&t)?;
            if r.tag.is_none() || r.digest.is_some() {
                return Err(Error::invalid(format!("invalid tag {t:?}")));
            }
            tags.push(r);
        }
        let parent = m.parent.filter(|p| digest::parse(p).is_ok());
        plans.push(Plan {
            raw,
            json,
            layers,
            tags,
            parent,
            source: "manifest.json".to_string(),
        });
    }
    // A parent is kept only when it is another image of the same archive.
    let ids: Vec<String> = plans.iter().map(|p| digest::sha256_of(&p.raw)).collect();
    for p in &mut plans {
        if p.parent.as_ref().is_some_and(|par| !ids.contains(par)) {
            p.parent = None;
        }
    }
    Ok(plans)
}

fn blob_name(d: &str) -> Result<String> {
    let hex = digest::parse(d)?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// Reads a blob named by a descriptor and checks its digest (and size when given).
fn read_descriptor(staging: &Staging, d: &Descriptor, named_by: &str) -> Result<Vec<u8>> {
    let name = blob_name(&d.digest)
        .map_err(|e| Error::invalid(format!("invalid archive: {named_by}: {e}")))?;
    let data = staging.read(&name, named_by)?;
    if d.size > 0 && data.len() as i64 != d.size {
        return Err(Error::invalid(format!(
            "invalid archive: {name} has {} bytes, {named_by} says {}",
            data.len(),
            d.size
        )));
    }
    Ok(data)
}

fn oci_plans(staging: &Staging, host_arch: &str) -> Result<Vec<Plan>> {
    let data = staging.read("index.json", "the archive")?;
    let index: OciIndex = serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(format!("invalid archive: index.json: {e}")))?;
    let mut plans = Vec::new();
    for desc in index.manifests {
        let name = oci_name(&desc);
        let manifest_desc = pick_manifest(staging, desc, host_arch, 0)?;
        let data = read_descriptor(staging, &manifest_desc, "index.json")?;
        let m: OciManifest = serde_json::from_slice(&data).map_err(|e| {
            Error::invalid(format!(
                "invalid archive: manifest {}: {e}",
                manifest_desc.digest
            ))
        })?;
        let what = format!("manifest {}", manifest_desc.digest);
        let raw = read_descriptor(staging, &m.config, &what)?;
        let json = checked_config(&raw, &blob_name(&m.config.digest)?, m.layers.len())?;
        let mut layers = Vec::new();
        for l in &m.layers {
            let foreign =
                l.media_type.contains("nondistributable") || l.media_type.contains("foreign");
            if foreign && !staging.has(&blob_name(&l.digest)?) {
                return Err(Error::invalid(format!(
                    "invalid archive: foreign layer {} is not in the archive (it would have to be downloaded)",
                    l.digest
                )));
            }
            layers.push(blob_name(&l.digest)?);
        }
        let mut seen = std::collections::HashSet::new();
        for (l, name) in m.layers.iter().zip(&layers) {
            if seen.insert(name.clone()) {
                let b = staging.resolve(name, &what)?;
                if b.digest != l.digest {
                    return Err(Error::invalid(format!(
                        "invalid archive: {name} does not match its digest: its content hashes to {}",
                        b.digest
                    )));
                }
            }
        }
        plans.push(Plan {
            raw,
            json,
            layers,
            tags: name.into_iter().collect(),
            parent: None,
            source: what,
        });
    }
    Ok(plans)
}

/// The image name an index entry carries, if any.
fn oci_name(d: &Descriptor) -> Option<Reference> {
    let a = d.annotations.as_ref()?;
    if let Some(n) = a.get("io.containerd.image.name") {
        if let Ok(r) = reference::parse_normalized(n) {
            if r.digest.is_none() {
                return Some(r.with_default_tag());
            }
        }
    }
    // By the OCI spec `ref.name` is a tag, but several tools store a full name.
    let n = a.get("org.opencontainers.image.ref.name")?;
    if !(n.contains('/') || n.contains(':')) {
        return None;
    }
    let r = reference::parse_normalized(n).ok()?;
    (r.tag.is_some() && r.digest.is_none()).then_some(r)
}

/// Descends nested indexes to the manifest for this host.
fn pick_manifest(
    staging: &Staging,
    d: Descriptor,
    host_arch: &str,
    depth: u32,
) -> Result<Descriptor> {
    if !INDEX_TYPES.contains(&d.media_type.as_str()) {
        return Ok(d);
    }
    if depth > 4 {
        return Err(Error::invalid(
            "invalid archive: image indexes nested too deeply",
        ));
    }
    let data = read_descriptor(staging, &d, "index.json")?;
    let idx: OciIndex = serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(format!("invalid archive: index {}: {e}", d.digest)))?;
    let candidates: Vec<Descriptor> = idx
        .manifests
        .into_iter()
        .filter(|m| staging.has(&blob_name(&m.digest).unwrap_or_default()))
        .collect();
    let chosen = candidates
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == host_arch)
        })
        .or_else(|| candidates.iter().find(|m| m.platform.is_none()))
        .cloned()
        .ok_or_else(|| {
            Error::invalid(format!(
                "invalid archive: index {} has no manifest for linux/{host_arch} in the archive",
                d.digest
            ))
        })?;
    pick_manifest(staging, chosen, host_arch, depth + 1)
}

impl ImageStore {
    /// The pre-1.10 layout: one directory per v1 image, chained by `parent`.
    fn load_legacy(
        &self,
        staging: &Staging,
        opts: &LoadOptions,
        out: &mut dyn FnMut(LoadMsg),
    ) -> Result<Vec<LoadedImage>> {
        let repos_raw = staging.read("repositories", "the archive")?;
        let repos: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_slice(&repos_raw)
            .map_err(|e| Error::invalid(format!("invalid archive: repositories: {e}")))?;
        let mut v1_ids: Vec<String> = staging
            .entries
            .keys()
            .filter_map(|k| k.strip_suffix("/json"))
            .filter(|k| !k.contains('/'))
            .map(str::to_string)
            .collect();
        v1_ids.sort();
        let mut built: HashMap<String, LegacyImage> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for v1 in &v1_ids {
            legacy_build(staging, v1, &mut built, &mut order, 0)?;
        }
        let mut plans = Vec::new();
        for v1 in &order {
            let li = &built[v1];
            let json = ImageJson::parse(&li.raw, &format!("{v1}/json"))?;
            let parent = li.parent.as_ref().map(|p| digest::sha256_of(&built[p].raw));
            let mut layers: Vec<String> = li
                .parent
                .as_ref()
                .map_or(Vec::new(), |p| built[p].layers.clone());
            layers.push(format!("{v1}/layer.tar"));
            plans.push(Plan {
                raw: li.raw.clone(),
                json,
                layers,
                tags: Vec::new(),
                parent,
                source: format!("{v1}/json"),
            });
        }
        for (name, tags) in &repos {
            for (tag, v1) in tags {
                let idx = order
                    .iter()
                    .position(|o| o == v1)
                    .ok_or_else(|| Error::invalid(format!("invalid target ID: {v1}")))?;
                let r = reference::parse_normalized(name)?.with_tag(tag)?;
                plans[idx].tags.push(r);
            }
        }
        self.load_plans(staging, plans, opts, out, false)
    }
}

struct LegacyImage {
    raw: Vec<u8>,
    parent: Option<String>,
    /// Layer files of this image's stack, bottom first.
    layers: Vec<String>,
    diff_ids: Vec<String>,
    history: Vec<Value>,
}

/// Builds (parents first) the config Docker makes from a v1 image.
fn legacy_build(
    staging: &Staging,
    v1: &str,
    built: &mut HashMap<String, LegacyImage>,
    order: &mut Vec<String>,
    depth: u32,
) -> Result<()> {
    if built.contains_key(v1) {
        return Ok(());
    }
    if depth > 500 {
        return Err(Error::invalid(
            "invalid archive: v1 image parents form a loop",
        ));
    }
    let what = format!("{v1}/json");
    let v1_raw = staging.read(&what, "the archive")?;
    let v1_json: Map<String, Value> = serde_json::from_slice(&v1_raw)
        .map_err(|e| Error::invalid(format!("invalid archive: {what}: {e}")))?;
    if let Some(os) = v1_json.get("os").and_then(Value::as_str) {
        if !os.is_empty() && os != "linux" {
            return Err(Error::invalid(format!("cannot load {os} image on linux")));
        }
    }
    let parent = v1_json
        .get("parent")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    if let Some(p) = &parent {
        legacy_build(staging, p, built, order, depth + 1)?;
    }
    let (mut diff_ids, mut history, mut layers) = match &parent {
        Some(p) => {
            let pi = &built[p];
            (pi.diff_ids.clone(), pi.history.clone(), pi.layers.clone())
        }
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let layer_name = format!("{v1}/layer.tar");
    let blob = staging.resolve(&layer_name, &what)?;
    // The diff ID is the digest of the uncompressed layer; v1 layers are plain tars,
    // but gzip ones are decompressed to measure.
    let diff_id = uncompressed_digest(blob.path, blob.digest)?;
    diff_ids.push(diff_id);
    layers.push(layer_name);
    history.push(legacy_history(&v1_json));
    let mut c = v1_json.clone();
    for k in ["id", "parent", "Size", "parent_id", "layer_id", "throwaway"] {
        c.remove(k);
    }
    c.insert(
        "rootfs".into(),
        serde_json::json!({ "type": "layers", "diff_ids": diff_ids }),
    );
    c.insert("history".into(), Value::Array(history.clone()));
    let mut sorted: Vec<(String, Value)> = c.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let raw = go_json(&Value::Object(sorted.into_iter().collect()));
    built.insert(
        v1.to_string(),
        LegacyImage {
            raw,
            parent,
            layers,
            diff_ids,
            history,
        },
    );
    order.push(v1.to_string());
    Ok(())
}

fn uncompressed_digest(path: &Path, raw_digest: &str) -> Result<String> {
    let f = File::open(path).map_err(|e| crate::store::with_path(e, "open", path))?;
    let (kind, plain) = layer_store::decompress(f, "a v1 layer")?;
    if kind == layer_store::Compression::None {
        return Ok(raw_digest.to_string());
    }
    let (d, _) = digest::HashingReader::new(plain)
        .finish()
        .map_err(|e| Error::invalid(format!("read a v1 layer: {e}")))?;
    Ok(d)
}

/// Docker's `HistoryFromConfig`.
fn legacy_history(v1: &Map<String, Value>) -> Value {
    let mut h = Map::new();
    if let Some(c) = v1.get("created").and_then(Value::as_str) {
        let c = match crate::timefmt::parse_timestamp(c) {
            Some(n) if c.ends_with('Z') => {
                crate::timefmt::rfc3339_nano(crate::timefmt::from_nanos(n))
            }
            _ => c.to_string(),
        };
        h.insert("created".into(), Value::String(c));
    }
    if let Some(a) = v1
        .get("author")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        h.insert("author".into(), Value::String(a.to_string()));
    }
    let created_by = v1
        .get("container_config")
        .and_then(|c| c.get("Cmd"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if !created_by.is_empty() {
        h.insert("created_by".into(), Value::String(created_by));
    }
    if let Some(c) = v1
        .get("comment")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    {
        h.insert("comment".into(), Value::String(c.to_string()));
    }
    Value::Object(h)
}

/// Compact JSON with Go's HTML-safe escaping (`<`, `>`, `&`, U+2028, U+2029).
fn go_json(v: &Value) -> Vec<u8> {
    let s = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_names_from_annotations() {
        let d = |k: &str, v: &str| Descriptor {
            media_type: String::new(),
            digest: String::new(),
            size: 0,
            annotations: Some([(k.to_string(), v.to_string())].into_iter().collect()),
            platform: None,
        };
        let n = oci_name(&d(
            "org.opencontainers.image.ref.name",
            "localhost/fixture/multilayer:1",
        ))
        .unwrap();
        assert_eq!(n.familiar_string(), "localhost/fixture/multilayer:1");
        assert!(oci_name(&d("org.opencontainers.image.ref.name", "latest")).is_none());
        let n = oci_name(&d(
            "io.containerd.image.name",
            "docker.io/library/busybox:latest",
        ))
        .unwrap();
        assert_eq!(n.familiar_string(), "busybox:latest");
    }

    #[test]
    fn go_json_escapes_html() {
        let v = serde_json::json!({"a": "x && y <z>"});
        assert_eq!(
            go_json(&v),
            br#"{"a":"x \u0026\u0026 y \u003cz\u003e"}"#.to_vec()
        );
    }

    #[test]
    fn blob_names_must_match_content() {
        let d = digest::sha256_of(b"x");
        let name = format!("blobs/sha256/{}", digest::encoded(&d));
        assert!(check_blob_name(&name, &d).is_ok());
        assert!(check_blob_name(&name, &digest::sha256_of(b"y")).is_err());
        assert!(check_blob_name("abc/layer.tar", &d).is_ok());
    }
}
