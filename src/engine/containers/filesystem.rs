//! A container's filesystem as a whole: `docker diff` (what it changed) and
//! `docker export` (all of it as a tar).

use std::io::Write;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::engine::{Engine, Error, Result};
use crate::image::ImageConfig;

impl Engine {
    /// `GET /containers/{id}/changes`: Docker's list (`null` when nothing changed).
    pub async fn container_changes(&self, name: &str) -> Result<Value> {
        let h = self.containers.get(name)?;
        let images = self.images.clone();
        let id = h.id.clone();
        let changes = tokio::task::spawn_blocking(move || images.rw_changes(&id))
            .await
            .map_err(|e| Error::internal(format!("changes: {e}")))??;
        if changes.is_empty() {
            return Ok(Value::Null);
        }
        Ok(Value::Array(
            changes
                .into_iter()
                .map(|c| json!({"Path": c.path, "Kind": c.kind as u8}))
                .collect(),
        ))
    }

    /// `GET /containers/{id}/export`: writes the container's root filesystem (its
    /// image and its changes; not its volumes and binds) as a tar to `out`. Start,
    /// stop and removal wait meanwhile; a stopped container's root is mounted for
    /// the copy and unmounted after it.
    pub async fn container_export(
        self: &Arc<Self>,
        name: &str,
        out: Box<dyn Write + Send>,
    ) -> Result<()> {
        let h = self.containers.get(name)?;
        let _op = h.op.lock().await;
        if h.record().container.state.removal_in_progress {
            return Err(Error::conflict(format!(
                "You cannot export container {} which is being removed",
                h.id
            )));
        }
        let running = h.record().container.state.running;
        let images = self.images.clone();
        let id = h.id.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = out;
            let root = images.mount_rw_layer(&id)?;
            let mut tar = tar::Builder::new(&mut out);
            let written = crate::image::rw_changes::append_tree(&mut tar, &root, false)
                .and_then(|_| tar.finish());
            drop(tar);
            let flushed = written.and_then(|_| out.flush());
            if !running {
                images.unmount_rw_layer(&id)?;
            }
            flushed.map_err(|e| Error::internal(format!("export of container {id}: {e}")))
        })
        .await
        .map_err(|e| Error::internal(format!("export: {e}")))??;
        let attrs = self.container_attributes(&h.record().container);
        self.events.emit("container", "export", &h.id, attrs);
        Ok(())
    }
}

/// What `POST /commit` asks for.
#[derive(Debug, Default)]
pub struct CommitOptions {
    pub container: String,
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    /// Freeze a running container while its changes are read (the default).
    pub pause: bool,
    /// Dockerfile instructions applied to the config (`--change`).
    pub changes: Vec<String>,
    /// A container config to start from instead of the container's.
    pub config: Option<Value>,
}

impl Engine {
    /// `POST /commit`: a new image of the container's image plus its changes as a
    /// layer, with the container's config (or the given one, completed from the
    /// container's) and the changes applied. Returns the image ID.
    pub async fn container_commit(self: &Arc<Self>, o: CommitOptions) -> Result<String> {
        if o.container.is_empty() {
            return Err(Error::invalid("invalid name or ID supplied: \"\""));
        }
        let h = self.containers.get(&o.container)?;
        let reference = crate::image::reference::repo_tag(&o.repo, &o.tag)?;
        let r = h.snapshot();
        if r.container.state.removal_in_progress {
            return Err(Error::conflict(format!(
                "You cannot commit container {} which is being removed",
                h.id
            )));
        }
        let container_config = serde_json::to_value(&r.container.config)
            .map_err(|e| Error::internal(e.to_string()))?;
        let own: ImageConfig = serde_json::from_value(container_config.clone())
            .map_err(|e| Error::internal(format!("the container's config: {e}")))?;
        let mut config: ImageConfig = match &o.config {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| Error::invalid(format!("invalid config: {e}")))?,
            None => own.clone(),
        };
        crate::image::changes::apply(&mut config, &o.changes)?;
        merge_config(&mut config, &own);

        let s = &r.container.state;
        let pause = o.pause && s.running && !s.paused;
        if pause {
            self.container_pause(&h.id).await?;
        }
        // Paused (when asked) until the image is made, tagged and announced, as
        // with Docker.
        let made = self
            .commit_paused(&h, &r, &o, &config, container_config, reference)
            .await;
        if pause {
            self.container_unpause(&h.id).await?;
        }
        made
    }

    async fn commit_paused(
        &self,
        h: &super::Handle,
        r: &super::Record,
        o: &CommitOptions,
        config: &ImageConfig,
        container_config: Value,
        reference: Option<crate::image::Reference>,
    ) -> Result<String> {
        let images = self.images.clone();
        let id = h.id.clone();
        let layer = tokio::task::spawn_blocking(move || images.rw_diff_layer(&id))
            .await
            .map_err(|e| Error::internal(format!("commit: {e}")))??;

        let parent = &r.container.image;
        let parent_raw = self
            .images
            .config_bytes(parent)
            .ok_or_else(|| Error::not_found(format!("No such image: {parent}")))?;
        let parent_json: Value = serde_json::from_slice(&parent_raw)
            .map_err(|e| Error::internal(format!("the config of image {parent}: {e}")))?;
        let created = crate::timefmt::rfc3339_nano(std::time::SystemTime::now());
        let cmd = r.container.config.cmd.clone().unwrap_or_default().join(" ");
        let raw = committed_config(&CommittedConfig {
            parent: &parent_json,
            config,
            container_id: &h.id,
            container_config,
            created: &created,
            author: &o.author,
            comment: &o.comment,
            created_by: &cmd,
            diff_id: layer.as_ref().map(|l| l.meta.diff_id.as_str()),
        });
        let images = self.images.clone();
        let parent_id = parent.clone();
        let image_id = tokio::task::spawn_blocking(move || {
            images.add_committed_image(&raw, layer, &parent_id)
        })
        .await
        .map_err(|e| Error::internal(format!("commit: {e}")))??;

        let labels = self.labels_of(&image_id);
        let mut image_ref = String::new();
        if let Some(reference) = &reference {
            self.images.tag(&image_id, reference)?;
            image_ref = reference.familiar_string();
            self.image_event("tag", &image_id, &image_ref, labels.as_ref());
        }
        let mut attrs = self.container_attributes(&h.record().container);
        attrs.insert("comment".into(), o.comment.clone());
        attrs.insert("imageID".into(), image_id.clone());
        attrs.insert("imageRef".into(), image_ref);
        self.events.emit("container", "commit", &h.id, attrs);
        Ok(image_id)
    }
}

/// Docker's completion of a commit config from the container's (`merge` in
/// daemon/commit.go): empty user, working directory and stop signal, missing
/// ports, volumes, labels and environment variables, a missing health check, and
/// the command when there is no entrypoint.
fn merge_config(c: &mut ImageConfig, own: &ImageConfig) {
    for (field, from) in [
        (&mut c.user, &own.user),
        (&mut c.working_dir, &own.working_dir),
        (&mut c.stop_signal, &own.stop_signal),
    ] {
        if field.is_empty() {
            field.clone_from(from);
        }
    }
    for (field, from) in [
        (&mut c.exposed_ports, &own.exposed_ports),
        (&mut c.volumes, &own.volumes),
    ] {
        if let Some(from) = from {
            let to = field.get_or_insert_with(Default::default);
            for (k, v) in from {
                to.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if let Some(from) = &own.labels {
        let to = c.labels.get_or_insert_with(Default::default);
        for (k, v) in from {
            to.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(from) = &own.env {
        let to = c.env.get_or_insert_with(Vec::new);
        for e in from {
            let key = e.split('=').next().unwrap_or(e);
            if !to.iter().any(|x| x.split('=').next() == Some(key)) {
                to.push(e.clone());
            }
        }
    }
    if c.healthcheck.is_none() {
        c.healthcheck.clone_from(&own.healthcheck);
    }
    if c.entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if c.cmd.as_ref().is_none_or(Vec::is_empty) {
            c.cmd.clone_from(&own.cmd);
        }
        if c.entrypoint.is_none() {
            c.entrypoint.clone_from(&own.entrypoint);
        }
    }
}

pub(crate) struct CommittedConfig<'a> {
    pub parent: &'a Value,
    pub config: &'a ImageConfig,
    pub container_id: &'a str,
    pub container_config: Value,
    pub created: &'a str,
    pub author: &'a str,
    pub comment: &'a str,
    pub created_by: &'a str,
    /// The new layer's; `None` when the container changed nothing.
    pub diff_id: Option<&'a str>,
}

/// The image config Docker writes for a commit: the parent's platform, layers and
/// history, one history entry more, and the new config; keys in Go's map order.
pub(crate) fn committed_config(c: &CommittedConfig<'_>) -> Vec<u8> {
    let mut top = serde_json::Map::new();
    for k in ["architecture", "os", "os.version", "variant"] {
        if let Some(v) = c.parent.get(k) {
            top.insert(k.to_string(), v.clone());
        }
    }
    if !c.author.is_empty() {
        top.insert("author".into(), json!(c.author));
    }
    top.insert(
        "config".into(),
        crate::image::config::config_json(c.config, true),
    );
    top.insert("container".into(), json!(c.container_id));
    top.insert("container_config".into(), c.container_config.clone());
    top.insert("created".into(), json!(c.created));
    top.insert("docker_version".into(), json!(crate::version::VERSION));
    let mut history: Vec<Value> = c
        .parent
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut entry = serde_json::Map::new();
    entry.insert("created".into(), json!(c.created));
    if !c.author.is_empty() {
        entry.insert("author".into(), json!(c.author));
    }
    if !c.created_by.is_empty() {
        entry.insert("created_by".into(), json!(c.created_by));
    }
    if !c.comment.is_empty() {
        entry.insert("comment".into(), json!(c.comment));
    }
    if c.diff_id.is_none() {
        entry.insert("empty_layer".into(), json!(true));
    }
    history.push(Value::Object(entry));
    top.insert("history".into(), Value::Array(history));
    let mut diff_ids: Vec<Value> = c
        .parent
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(d) = c.diff_id {
        diff_ids.push(json!(d));
    }
    top.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    top.sort_keys();
    serde_json::to_vec(&Value::Object(top)).unwrap_or_default()
}
