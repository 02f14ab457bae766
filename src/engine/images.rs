//! Engine operations on images: the documents `docker images`, `docker image
//! inspect`, `docker history` and `docker system df` show, tagging and Docker's
//! untag-versus-delete rules, pruning, import/load/save, and the image events.
//!
//! The store ([`crate::image::ImageStore`]) does the disk work; this module decides
//! what clients see, applies filters and API-version differences, and asks the
//! container side which images are in use ([`Engine::image_users`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

use super::{Engine, Error, Filters, Result};
use crate::image::import::{ImportOptions, Platform};
use crate::image::load::{LoadMsg, LoadOptions};
use crate::image::save::SavePlan;
use crate::image::{self, ImageDetails, ImageStore, ImageUser, Removed, reference};
use crate::version::ApiVersion;

/// Filter keys `GET /images/json` accepts.
const LIST_FILTERS: &[&str] = &["dangling", "label", "before", "since", "reference", "until"];
/// Filter keys `POST /images/prune` accepts.
const PRUNE_FILTERS: &[&str] = &["dangling", "label", "label!", "until"];

/// `GET /images/json` options.
#[derive(Clone, Debug, Default)]
pub struct ImageListOptions {
    pub all: bool,
    pub filters: Filters,
    pub shared_size: bool,
}

/// One image event line to emit after a load.
#[derive(Clone, Debug)]
pub enum LoadLine {
    /// Text for the `stream` field.
    Stream(String),
    /// A finished layer (`Loading layer` with its size), when not quiet.
    Progress {
        id: String,
        status: String,
        bytes: u64,
    },
}

/// Which parts of `GET /system/df` were asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskUsageKinds {
    pub containers: bool,
    pub images: bool,
    pub volumes: bool,
    pub build_cache: bool,
}

/// Guards `POST /images/prune` against running twice at once (Docker's rule).
static PRUNE_RUNNING: AtomicBool = AtomicBool::new(false);

impl Engine {
    /// The image store.
    pub fn images(&self) -> &Arc<ImageStore> {
        &self.images
    }

    /// Containers that use an image (by image ID), and whether each runs. Image
    /// deletion and the Containers counts ask this.
    pub fn image_users(&self, image_id: &str) -> Vec<ImageUser> {
        self.containers
            .users_of_image(image_id)
            .into_iter()
            .map(|(container_id, running)| ImageUser {
                container_id,
                running,
            })
            .collect()
    }

    /// The ID of a container using the image, if any.
    pub fn image_in_use(&self, image_id: &str) -> Option<String> {
        self.image_users(image_id)
            .into_iter()
            .next()
            .map(|u| u.container_id)
    }

    /// Emits an image event the way Docker does: the image ID as actor, its labels
    /// (while it exists) and `name` as attributes.
    pub(crate) fn image_event(
        &self,
        action: &str,
        id: &str,
        name: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) {
        let mut attrs: BTreeMap<String, String> = labels.cloned().unwrap_or_default();
        attrs.insert("name".to_string(), name.to_string());
        self.events.emit("image", action, id, attrs);
    }

    pub(crate) fn labels_of(&self, id: &str) -> Option<BTreeMap<String, String>> {
        self.images
            .details(id)
            .ok()
            .and_then(|d| d.json.config.and_then(|c| c.labels))
    }

    /// `GET /images/json`.
    pub fn image_list(&self, opts: &ImageListOptions, version: ApiVersion) -> Result<Vec<Value>> {
        let f = &opts.filters;
        f.validate(LIST_FILTERS)?;
        let dangling_only = f.get_bool("dangling")?.unwrap_or(false);
        let mut before: Option<i64> = None;
        for v in f.get("before") {
            let d = self.images.details(v)?;
            if let Some(c) = d.json.created_nanos() {
                before = Some(before.map_or(c, |b: i64| b.min(c)));
            }
        }
        for v in f.get("until") {
            let t = super::filters::parse_until(v)?;
            before = Some(before.map_or(t, |b: i64| b.min(t)));
        }
        let mut since: Option<i64> = None;
        for v in f.get("since") {
            let d = self.images.details(v)?;
            if let Some(c) = d.json.created_nanos() {
                since = Some(since.map_or(c, |s: i64| s.max(c)));
            }
        }
        let all = self.images.list();
        let mut out: Vec<(i64, Value)> = Vec::new();
        let shared = opts
            .shared_size
            .then(|| shared_sizes(&all, &self.images.chain_sizes()));
        for d in &all {
            if dangling_only && d.children > 0 {
                continue;
            }
            let created = d.json.created_nanos();
            if before.is_some_and(|b| created.is_none_or(|c| c >= b)) {
                continue;
            }
            if since.is_some_and(|s| created.is_none_or(|c| c <= s)) {
                continue;
            }
            let labels = d.json.config.as_ref().and_then(|c| c.labels.clone());
            if f.contains("label")
                && !f.match_labels("label", labels.as_ref().unwrap_or(&BTreeMap::new()))
            {
                continue;
            }
            let (mut tags, mut digests) = (d.repo_tags.clone(), d.repo_digests.clone());
            if f.contains("reference") {
                let keep = |s: &String| -> Result<bool> {
                    let r = reference::parse_normalized(s)?;
                    for p in f.get("reference") {
                        if reference::familiar_match(p, &r)? {
                            return Ok(true);
                        }
                    }
                    Ok(false)
                };
                tags = filter_ok(tags, keep)?;
                digests = filter_ok(digests, keep)?;
            }
            if tags.is_empty() && digests.is_empty() {
                if opts.all || d.children == 0 {
                    if f.contains("dangling") && !dangling_only {
                        continue;
                    }
                    if f.contains("reference") {
                        continue;
                    }
                } else {
                    continue;
                }
            } else if dangling_only && !tags.is_empty() {
                continue;
            }
            let containers = if version < ApiVersion::new(1, 51) {
                -1
            } else {
                self.image_users(&d.id).len() as i64
            };
            let secs = created.unwrap_or(0).div_euclid(1_000_000_000);
            let shared_size = shared
                .as_ref()
                .map_or(-1, |s| s.get(&d.id).copied().unwrap_or(0) as i64);
            let mut v = json!({
                "Containers": containers,
                "Created": secs,
                "Id": d.id,
                "Labels": labels,
                "ParentId": d.parent,
                "RepoDigests": digests,
                "RepoTags": tags,
                "SharedSize": shared_size,
                "Size": d.size,
            });
            if version < ApiVersion::new(1, 43) && tags.is_empty() && digests.is_empty() {
                v["RepoTags"] = json!(["<none>:<none>"]);
                v["RepoDigests"] = json!(["<none>@<none>"]);
            }
            if version < ApiVersion::new(1, 44) {
                v["VirtualSize"] = json!(d.size);
            }
            out.push((created.unwrap_or(0), v));
        }
        out.sort_by_key(|b| std::cmp::Reverse(b.0));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    /// `GET /images/{name}/json`.
    pub fn image_inspect(&self, name: &str, version: ApiVersion) -> Result<Value> {
        let d = self.images.details(name)?;
        let j = &d.json;
        let comment = if j.comment.is_empty() {
            j.history
                .last()
                .map(|h| h.comment.clone())
                .unwrap_or_default()
        } else {
            j.comment.clone()
        };
        let mut v = Map::new();
        v.insert("Id".into(), json!(d.id));
        v.insert("RepoTags".into(), json!(d.repo_tags));
        v.insert("RepoDigests".into(), json!(d.repo_digests));
        v.insert("Parent".into(), json!(d.parent));
        v.insert("Comment".into(), json!(comment));
        match &j.created {
            Some(c) => {
                v.insert("Created".into(), json!(c));
            }
            None if version < ApiVersion::new(1, 44) => {
                v.insert("Created".into(), json!(crate::timefmt::ZERO_TIME));
            }
            None => {}
        }
        if version < ApiVersion::new(1, 45) {
            if !j.container.is_empty() {
                v.insert("Container".into(), json!(j.container));
            }
            if let Some(cc) = &j.container_config {
                v.insert("ContainerConfig".into(), cc.clone());
            }
        }
        v.insert("DockerVersion".into(), json!(j.docker_version));
        v.insert("Author".into(), json!(j.author));
        v.insert("Config".into(), inspect_config(j.config.as_ref(), version));
        v.insert("Architecture".into(), json!(j.architecture));
        if !j.variant.is_empty() {
            v.insert("Variant".into(), json!(j.variant));
        }
        v.insert("Os".into(), json!(j.os()));
        if !j.os_version.is_empty() {
            v.insert("OsVersion".into(), json!(j.os_version));
        }
        v.insert("Size".into(), json!(d.size));
        if version < ApiVersion::new(1, 44) {
            v.insert("VirtualSize".into(), json!(d.size));
        }
        v.insert("GraphDriver".into(), self.image_graph_driver(&d));
        let mut rootfs = Map::new();
        let kind = j
            .rootfs
            .as_ref()
            .map(|r| r.kind.clone())
            .unwrap_or_default();
        if !kind.is_empty() {
            rootfs.insert("Type".into(), json!(kind));
        }
        if !j.diff_ids().is_empty() {
            rootfs.insert("Layers".into(), json!(j.diff_ids()));
        }
        v.insert("RootFS".into(), Value::Object(rootfs));
        v.insert(
            "Metadata".into(),
            json!({ "LastTagTime": d.last_tag_time.clone().unwrap_or_else(|| crate::timefmt::ZERO_TIME.to_string()) }),
        );
        Ok(Value::Object(v))
    }

    /// `GraphDriver` of an image: its top layer as Docker's overlay2 reports it.
    fn image_graph_driver(&self, d: &ImageDetails) -> Value {
        let driver = self.images.driver();
        if driver != image::Driver::Overlay || d.layer_dirs.is_empty() {
            return json!({ "Data": null, "Name": driver.name() });
        }
        let top = &d.layer_dirs[d.layer_dirs.len() - 1];
        let layer = top.parent().unwrap_or(top);
        let mut data = Map::new();
        if d.layer_dirs.len() > 1 {
            let lower: Vec<String> = d.layer_dirs[..d.layer_dirs.len() - 1]
                .iter()
                .rev()
                .map(|p| p.display().to_string())
                .collect();
            data.insert("LowerDir".into(), json!(lower.join(":")));
        }
        data.insert(
            "MergedDir".into(),
            json!(layer.join("merged").display().to_string()),
        );
        data.insert("UpperDir".into(), json!(top.display().to_string()));
        data.insert(
            "WorkDir".into(),
            json!(layer.join("work").display().to_string()),
        );
        json!({ "Data": data, "Name": driver.name() })
    }

    /// `GET /images/{name}/history`: newest first, as Docker walks it.
    pub fn image_history(&self, name: &str) -> Result<Vec<Value>> {
        let d = self.images.details(name)?;
        let mut layer = 0usize;
        let mut out = Vec::new();
        for h in &d.json.history {
            let mut size = 0u64;
            if !h.empty_layer {
                if layer >= d.layer_sizes.len() {
                    return Err(Error::internal(
                        "too many non-empty layers in History section",
                    ));
                }
                size = d.layer_sizes[layer];
                layer += 1;
            }
            let created = h
                .created
                .as_deref()
                .and_then(crate::timefmt::parse_timestamp)
                .map_or(0, |n| n.div_euclid(1_000_000_000));
            out.push(json!({
                "Comment": h.comment,
                "Created": created,
                "CreatedBy": h.created_by,
                "Id": "<missing>",
                "Size": size,
                "Tags": null,
            }));
        }
        out.reverse();
        // IDs and tags come from walking the parent chain, one image per entry from
        // the newest; entries past the last known parent stay `<missing>`.
        let mut image = Some(d);
        for entry in &mut out {
            let Some(d) = image.take() else {
                break;
            };
            entry["Id"] = json!(d.id);
            entry["Tags"] = if d.repo_tags.is_empty() {
                Value::Null
            } else {
                json!(d.repo_tags)
            };
            if !d.parent.is_empty() {
                image = self.images.details(&d.parent).ok();
            }
        }
        Ok(out)
    }

    /// `POST /images/{name}/tag`.
    pub async fn image_tag(&self, name: &str, repo: &str, tag: &str) -> Result<()> {
        let target = reference::repo_tag(repo, tag)?.ok_or_else(|| {
            Error::invalid(
                "invalid reference format: repository name must have at least one component",
            )
        })?;
        let images = self.images.clone();
        let name_owned = name.to_string();
        let t = target.clone();
        let id = tokio::task::spawn_blocking(move || images.tag(&name_owned, &t))
            .await
            .map_err(join_err)??;
        let labels = self.labels_of(&id);
        self.image_event("tag", &id, &target.familiar_string(), labels.as_ref());
        Ok(())
    }

    /// `DELETE /images/{name}`.
    pub async fn image_remove(
        self: &Arc<Self>,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<Value>> {
        if name.trim().is_empty() {
            return Err(Error::invalid("image name cannot be blank"));
        }
        let labels = self
            .images
            .details(name)
            .ok()
            .and_then(|d| d.json.config.and_then(|c| c.labels));
        let engine = self.clone();
        let name_owned = name.to_string();
        let records = tokio::task::spawn_blocking(move || {
            let users = |id: &str| engine.image_users(id);
            engine.images.remove(&name_owned, force, noprune, &users)
        })
        .await
        .map_err(join_err)??;
        Ok(self.removal_report(&records, labels.as_ref()))
    }

    /// Emits the events for removal records and renders them as Docker's
    /// `[{"Untagged": …}, {"Deleted": …}]`.
    fn removal_report(
        &self,
        records: &[Removed],
        labels: Option<&BTreeMap<String, String>>,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        for r in records {
            match r {
                Removed::Untagged { image, reference } => {
                    self.image_event("untag", image, image, labels);
                    out.push(json!({ "Untagged": reference }));
                }
                Removed::Deleted { id } => {
                    self.image_event("delete", id, id, None);
                    out.push(json!({ "Deleted": id }));
                }
                Removed::DeletedLayer { chain_id, .. } => out.push(json!({ "Deleted": chain_id })),
            }
        }
        out
    }

    /// `POST /images/prune`.
    pub async fn image_prune(self: &Arc<Self>, filters: &Filters) -> Result<Value> {
        filters.validate(PRUNE_FILTERS)?;
        if PRUNE_RUNNING.swap(true, Ordering::SeqCst) {
            return Err(Error::conflict("a prune operation is already running"));
        }
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                PRUNE_RUNNING.store(false, Ordering::SeqCst);
            }
        }
        let _reset = Reset;
        let dangling_only = filters.get_bool("dangling")?.unwrap_or(true);
        let until: Vec<&str> = filters.get("until").collect();
        if until.len() > 1 {
            return Err(Error::invalid("more than one until filter specified"));
        }
        let until = until
            .first()
            .map(|u| super::filters::parse_until(u))
            .transpose()?;
        let f = filters.clone();
        let engine = self.clone();
        let (records, reclaimed) = tokio::task::spawn_blocking(move || {
            let select = |d: &ImageDetails| -> bool {
                if let Some(u) = until {
                    if d.json.created_nanos().is_none_or(|c| c > u) {
                        return false;
                    }
                }
                let empty = BTreeMap::new();
                let labels = d
                    .json
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .unwrap_or(&empty);
                if !f.match_labels("label", labels) {
                    return false;
                }
                if f.contains("label!") && f.get("label!").any(|c| label_cond(c, labels)) {
                    return false;
                }
                true
            };
            let users = |id: &str| engine.image_users(id);
            engine.images.prune(dangling_only, &select, &users)
        })
        .await
        .map_err(join_err)??;
        let deleted = self.removal_report(&records, None);
        let mut attrs = BTreeMap::new();
        attrs.insert("reclaimed".to_string(), reclaimed.to_string());
        self.events.emit("image", "prune", "", attrs);
        Ok(json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) },
            "SpaceReclaimed": reclaimed,
        }))
    }

    /// The image part of `GET /system/df`: `(LayersSize, Images)`.
    pub fn images_disk_usage(&self, version: ApiVersion) -> Result<(u64, Vec<Value>)> {
        let opts = ImageListOptions {
            all: false,
            filters: Filters::default(),
            shared_size: true,
        };
        let list = self.image_list(&opts, version.max(ApiVersion::new(1, 51)))?;
        Ok((self.images.layers_size(), list))
    }

    /// `GET /system/df`. Each part is `null` unless asked for; there is no build
    /// cache.
    pub fn disk_usage(&self, kinds: DiskUsageKinds, version: ApiVersion) -> Result<Value> {
        let mut doc = Map::new();
        if kinds.images {
            let (layers, images) = self.images_disk_usage(version)?;
            doc.insert("LayersSize".into(), json!(layers));
            doc.insert("Images".into(), Value::Array(images));
        } else {
            doc.insert("LayersSize".into(), json!(0));
            doc.insert("Images".into(), Value::Null);
        }
        let empty_or_null = |want: bool| if want { json!([]) } else { Value::Null };
        if kinds.containers {
            let opts = super::containers::inspect::ListOptions {
                all: true,
                size: true,
                ..Default::default()
            };
            let list = serde_json::to_value(self.container_list(&opts)?)
                .map_err(|e| Error::internal(e.to_string()))?;
            doc.insert("Containers".into(), list);
        } else {
            doc.insert("Containers".into(), Value::Null);
        }
        doc.insert(
            "Volumes".into(),
            if kinds.volumes {
                Value::Array(self.volumes_disk_usage())
            } else {
                Value::Null
            },
        );
        doc.insert("BuildCache".into(), empty_or_null(kinds.build_cache));
        Ok(Value::Object(doc))
    }

    /// `POST /images/create?fromSrc=-`: imports the tarball read from `body` (a
    /// blocking reader; this runs it on a blocking thread). Returns the image ID.
    pub async fn image_import(
        &self,
        body: Box<dyn Read + Send>,
        repo: &str,
        tag: &str,
        message: &str,
        changes: Vec<String>,
        platform: Option<&str>,
    ) -> Result<String> {
        let reference = reference::repo_tag(repo, tag)?;
        let arch = super::system::goarch();
        let platform = match platform.filter(|p| !p.is_empty()) {
            Some(p) => Platform::parse(p, arch)?,
            None => Platform::linux(arch),
        };
        let opts = ImportOptions {
            reference: reference.clone(),
            message: message.to_string(),
            changes,
            platform,
        };
        let images = self.images.clone();
        let imported = tokio::task::spawn_blocking(move || images.import(body, &opts))
            .await
            .map_err(join_err)??;
        let labels = self.labels_of(&imported.id);
        if let Some(r) = &reference {
            self.image_event("tag", &imported.id, &r.familiar_string(), labels.as_ref());
        }
        self.image_event("import", &imported.id, &imported.id, labels.as_ref());
        Ok(imported.id)
    }

    /// `POST /images/load`: loads the archive read from `body`, sending stream
    /// lines to `out` as they happen. Events are emitted per image.
    pub async fn image_load(
        &self,
        body: Box<dyn Read + Send>,
        quiet: bool,
        out: tokio::sync::mpsc::UnboundedSender<LoadLine>,
    ) -> Result<()> {
        let images = self.images.clone();
        let opts = LoadOptions {
            quiet,
            host_arch: super::system::goarch().to_string(),
        };
        let loaded = tokio::task::spawn_blocking(move || {
            images.load(body, &opts, &mut |m| {
                let line = match m {
                    LoadMsg::Line(s) => LoadLine::Stream(s),
                    LoadMsg::Progress { id, status, bytes } => {
                        LoadLine::Progress { id, status, bytes }
                    }
                };
                let _ = out.send(line);
            })
        })
        .await
        .map_err(join_err)??;
        for l in loaded {
            let labels = self.labels_of(&l.id);
            self.image_event("load", &l.id, &l.id, labels.as_ref());
        }
        Ok(())
    }

    /// Resolves the names of `docker save` (errors here are HTTP errors).
    pub async fn image_save_plan(&self, names: Vec<String>) -> Result<SavePlan> {
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || images.plan_save(&names))
            .await
            .map_err(join_err)?
    }

    /// Writes the archive of a resolved save to `out` (blocking; call it on a
    /// blocking thread) and emits the `save` events.
    pub fn image_save_write(&self, plan: &SavePlan, out: impl Write) -> Result<()> {
        self.images.write_save(plan, out)?;
        for (id, _) in &plan.images {
            let labels = self.labels_of(id);
            self.image_event("save", id, id, labels.as_ref());
        }
        Ok(())
    }
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::internal(format!("image task failed: {e}"))
}

fn filter_ok(v: Vec<String>, keep: impl Fn(&String) -> Result<bool>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for s in v {
        if keep(&s)? {
            out.push(s);
        }
    }
    Ok(out)
}

fn label_cond(cond: &str, labels: &BTreeMap<String, String>) -> bool {
    match cond.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(cond),
    }
}

/// Size of each image's layers that other images share (`shared-size=1`).
fn shared_sizes(all: &[ImageDetails], chain_sizes: &HashMap<String, u64>) -> HashMap<String, u64> {
    let mut refs: HashMap<&str, usize> = HashMap::new();
    for d in all {
        for c in &d.chain_ids {
            *refs.entry(c.as_str()).or_default() += 1;
        }
    }
    all.iter()
        .map(|d| {
            let s = d
                .chain_ids
                .iter()
                .filter(|c| refs.get(c.as_str()).copied().unwrap_or(0) > 1)
                .map(|c| chain_sizes.get(c).copied().unwrap_or(0))
                .sum();
            (d.id.clone(), s)
        })
        .collect()
}

/// The image `Config` for inspect: the fields Docker 28 prints at this API version.
fn inspect_config(c: Option<&image::ImageConfig>, version: ApiVersion) -> Value {
    let default = image::ImageConfig::default();
    image::config::config_json(c.unwrap_or(&default), version < ApiVersion::new(1, 50))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_config_keeps_1_51_fields() {
        let v = inspect_config(None, ApiVersion::new(1, 51));
        for k in [
            "Cmd",
            "Entrypoint",
            "Env",
            "Labels",
            "OnBuild",
            "User",
            "Volumes",
            "WorkingDir",
        ] {
            assert!(v.get(k).is_some(), "{k} missing");
        }
        assert!(v.get("Hostname").is_none());
        let old = inspect_config(None, ApiVersion::new(1, 49));
        assert_eq!(old["Hostname"], "");
    }
}
