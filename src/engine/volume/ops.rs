//! The engine's volume operations: the `/volumes` endpoints, and what containers
//! do with volumes and mounts from create (references, anonymous volumes,
//! copy-up) through start and exit (mounts, events) to removal.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::mounts::{self, MountPoint, MountType, Parsed};
use super::{ANONYMOUS_LABEL, Volume, options};
use crate::engine::containers::Record;
use crate::engine::{Engine, Error, Filters, Result};
use crate::init::spec::{Mount, Tmpfs};
use crate::version::ApiVersion;

/// `POST /volumes/create`'s body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl Engine {
    fn volume_event(&self, action: &str, v: &Volume, extra: &[(&str, String)]) {
        let mut attrs = BTreeMap::from([("driver".to_string(), v.driver.clone())]);
        for (k, val) in extra {
            attrs.insert(k.to_string(), val.clone());
        }
        self.events.emit("volume", action, &v.name, attrs);
    }

    /// Creates (or finds) a volume; emits `create` only for a new one.
    fn volume_create_inner(
        &self,
        name: &str,
        driver: &str,
        labels: Option<BTreeMap<String, String>>,
        opts: Option<BTreeMap<String, String>>,
    ) -> Result<Volume> {
        let (v, created) = self.volumes.create(name, driver, labels, opts)?;
        if created {
            self.volume_event("create", &v, &[]);
        }
        Ok(v)
    }

    /// `POST /volumes/create`: an empty name makes an anonymous volume.
    pub fn volume_create(&self, req: CreateRequest) -> Result<Value> {
        let (name, labels) = if req.name.is_empty() {
            let mut labels = req.labels.unwrap_or_default();
            labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
            (super::generate_name()?, Some(labels))
        } else {
            (req.name, req.labels)
        };
        let v = self.volume_create_inner(&name, &req.driver, labels, req.driver_opts)?;
        Ok(self.volumes.to_json(&v, None))
    }

    /// `GET /volumes/{name}`.
    pub fn volume_inspect(&self, name: &str) -> Result<Value> {
        let v = self.volumes.get(name)?;
        Ok(self.volumes.to_json(&v, None))
    }

    /// `GET /volumes` with filters `name`, `label`, `dangling`, `driver`.
    pub fn volume_list(&self, filters: &Filters) -> Result<Value> {
        filters.validate(&["dangling", "name", "driver", "label"])?;
        let mut dangling = None;
        for d in filters.get("dangling") {
            dangling = Some(match d.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(Error::invalid(format!("invalid filter 'dangling=[{d}]'"))),
            });
        }
        let mut names = Vec::new();
        for n in filters.get("name") {
            let re = regex_lite::Regex::new(n).ok();
            names.push((n.to_string(), re));
        }
        let volumes: Vec<Value> = self
            .volumes
            .list()
            .into_iter()
            .filter(|v| filters.match_any("driver", std::iter::once(v.driver.as_str())))
            .filter(|v| {
                names.is_empty()
                    || names.iter().any(|(n, re)| {
                        *n == v.name || re.as_ref().is_some_and(|r| r.is_match(&v.name))
                    })
            })
            .filter(|v| {
                !filters.contains("label")
                    || filters.match_labels("label", v.labels.as_ref().unwrap_or(&BTreeMap::new()))
            })
            .filter(|v| dangling.is_none_or(|d| self.volumes.refs(&v.name).is_empty() == d))
            .map(|v| self.volumes.to_json(&v, None))
            .collect();
        Ok(json!({ "Volumes": volumes, "Warnings": null }))
    }

    /// `DELETE /volumes/{name}`.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let v = self.volumes.get(name).ok();
        if self.volumes.remove(name, force)?
            && let Some(v) = v
        {
            self.volume_event("destroy", &v, &[]);
        }
        Ok(())
    }

    /// `POST /volumes/prune`: unused local volumes without driver options;
    /// anonymous ones only unless `all=true` (or the client predates API 1.42).
    pub fn volume_prune(&self, filters: &Filters, version: ApiVersion) -> Result<Value> {
        filters.validate(&["label", "label!", "all"])?;
        let alls: Vec<&str> = filters.get("all").collect();
        let mut all = version < ApiVersion::new(1, 42);
        match alls.as_slice() {
            [] => {}
            [one] => {
                all = crate::engine::parse_go_bool(one).ok_or_else(|| {
                    Error::invalid(format!(
                        "invalid filter 'all': strconv.ParseBool: parsing \"{one}\": invalid syntax"
                    ))
                })?;
            }
            many => {
                return Err(Error::invalid(format!(
                    "invalid filter 'all=[{}]': only one value is expected",
                    many.join(" ")
                )));
            }
        }
        if !self.volumes.begin_prune() {
            return Err(Error::conflict("a prune operation is already running"));
        }
        let no_labels = BTreeMap::new();
        let mut deleted = Vec::new();
        let mut reclaimed: u64 = 0;
        for v in self.volumes.list() {
            let labels = v.labels.as_ref().unwrap_or(&no_labels);
            let candidate = v.driver == "local"
                && !v.has_options()
                && (all || v.is_anonymous())
                && self.volumes.refs(&v.name).is_empty()
                && filters.match_labels("label", labels)
                && (!filters.contains("label!") || !filters.match_labels("label!", labels));
            if !candidate {
                continue;
            }
            let size = self.volumes.size(&v.name).max(0) as u64;
            match self.volumes.remove(&v.name, false) {
                Ok(_) => {
                    self.volume_event("destroy", &v, &[]);
                    reclaimed += size;
                    deleted.push(v.name.clone());
                }
                Err(e) => tracing::warn!("prune: cannot remove volume {}: {e}", v.name),
            }
        }
        self.volumes.end_prune();
        self.events.emit(
            "volume",
            "prune",
            "",
            BTreeMap::from([("reclaimed".to_string(), reclaimed.to_string())]),
        );
        Ok(json!({ "VolumesDeleted": deleted, "SpaceReclaimed": reclaimed }))
    }

    /// The volume part of `GET /system/df`: local volumes without driver options,
    /// with their size and how many containers use them.
    pub fn volumes_disk_usage(&self) -> Vec<Value> {
        self.volumes
            .list()
            .into_iter()
            .filter(|v| v.driver == "local" && !v.has_options())
            .map(|v| {
                let refs = self.volumes.refs(&v.name).len() as i64;
                let size = self.volumes.size(&v.name);
                self.volumes.to_json(&v, Some((size, refs)))
            })
            .collect()
    }

    /// At start: which containers use which volumes, from their records.
    pub(crate) fn restore_volume_refs(&self) {
        let mut running = Vec::new();
        for h in self.containers.all() {
            let r = h.record();
            let vols: Vec<String> = r
                .container
                .mount_points
                .iter()
                .filter(|m| m.kind == MountType::Volume)
                .map(|m| m.name.clone())
                .collect();
            for v in &vols {
                self.volumes.add_ref(v, &r.container.id);
            }
            if r.container.state.running {
                running.push((r.container.id.clone(), vols));
            }
        }
        self.volumes.restore_mounts(&running);
    }

    /// At create: the container's mount points from `VolumesFrom`, `Binds`,
    /// `Mounts` and its `Config.Volumes` (the image's `VOLUME`s and `-v /path`),
    /// with the volumes they name created (or referenced) and new ones filled from
    /// the image. On failure nothing is left referenced and anonymous volumes made
    /// here are removed.
    pub(crate) fn container_mounts_at_create(
        &self,
        id: &str,
        host_config: &Map<String, Value>,
        config_volumes: &[String],
        tmpfs: &[(String, String)],
    ) -> Result<Vec<MountPoint>> {
        let parsed = self.parse_container_mounts(host_config, config_volumes, tmpfs)?;
        let mut points: Vec<MountPoint> = Vec::new();
        let result = (|| -> Result<()> {
            for p in parsed {
                let mut point = p.point;
                if point.kind == MountType::Volume {
                    if point.name.is_empty() {
                        point.name = super::generate_name()?;
                        let labels = BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]);
                        self.volume_create_inner(&point.name, &point.driver, Some(labels), None)?;
                    } else {
                        self.volume_create_inner(
                            &point.name,
                            &point.driver,
                            p.labels,
                            p.driver_opts,
                        )?;
                    }
                    self.volumes.add_ref(&point.name, id);
                }
                points.push(point);
            }
            self.copy_up(id, &points, config_volumes)
        })();
        if let Err(e) = result {
            self.release_container_volumes(id, &points, true);
            return Err(e);
        }
        Ok(points)
    }

    /// Parses and checks every mount of a create request (nothing is created yet).
    fn parse_container_mounts(
        &self,
        hc: &Map<String, Value>,
        config_volumes: &[String],
        tmpfs: &[(String, String)],
    ) -> Result<Vec<Parsed>> {
        let volume_driver = hc.get("VolumeDriver").and_then(Value::as_str).unwrap_or("");
        let data_root = self.data_root.clone();
        let mut out: Vec<Parsed> = Vec::new();
        // VolumesFrom first; Binds and Mounts at the same destination replace them.
        for spec in
            crate::engine::containers::settings::strings(hc.get("VolumesFrom"), "VolumesFrom")?
        {
            let (source, readonly) = mounts::parse_volumes_from(&spec)?;
            let h = self
                .containers
                .get(&source)
                .map_err(|e| Error::invalid(e.to_string()))?;
            for m in &h.record().container.mount_points {
                let mut copy = m.clone();
                copy.rw = m.rw && !readonly;
                copy.mode = String::new();
                copy.copy_data = false;
                out.retain(|o| o.point.destination != copy.destination);
                out.push(Parsed {
                    point: copy,
                    labels: None,
                    driver_opts: None,
                });
            }
        }
        let from_count = out.len();
        let tmpfs_dests: Vec<String> = tmpfs.iter().map(|(d, _)| mounts::clean(d)).collect();
        let taken = |out: &[Parsed], dest: &str| {
            out[from_count..]
                .iter()
                .any(|o| o.point.destination == dest)
        };
        for raw in crate::engine::containers::settings::strings(hc.get("Binds"), "Binds")? {
            let mut p = mounts::parse_bind(&raw, volume_driver)?;
            let dest = p.point.destination.clone();
            if taken(&out, &dest) || tmpfs_dests.contains(&dest) {
                return Err(Error::invalid(format!("Duplicate mount point: {dest}")));
            }
            let given = p
                .point
                .mode
                .split(',')
                .any(|o| options::PROPAGATIONS.contains(&o));
            mounts::check_bind_in_data_root(&mut p.point, given, &data_root)?;
            out.retain(|o| o.point.destination != dest);
            out.push(p);
        }
        if let Some(list) = hc.get("Mounts").and_then(Value::as_array) {
            for m in list {
                let mut p = mounts::parse_mount(m)?;
                let dest = p.point.destination.clone();
                if taken(&out, &dest) {
                    let target = m.get("Target").and_then(Value::as_str).unwrap_or(&dest);
                    return Err(Error::invalid(format!("Duplicate mount point: {target}")));
                }
                let given = m
                    .pointer("/BindOptions/Propagation")
                    .and_then(Value::as_str)
                    .is_some_and(|p| !p.is_empty());
                mounts::check_bind_in_data_root(&mut p.point, given, &data_root)?;
                out.retain(|o| o.point.destination != dest);
                out.push(p);
            }
        }
        for raw in config_volumes {
            if !raw.starts_with('/') {
                return Err(Error::invalid(format!(
                    "invalid mount path: '{raw}' mount path must be absolute"
                )));
            }
            let dest = mounts::clean(raw);
            if dest == "/" {
                return Err(Error::invalid(
                    "invalid specification: destination can't be '/'",
                ));
            }
            if out.iter().any(|o| o.point.destination == dest) || tmpfs_dests.contains(&dest) {
                continue;
            }
            let driver = if volume_driver.is_empty() {
                "local"
            } else {
                volume_driver
            };
            out.push(Parsed {
                point: MountPoint {
                    driver: driver.to_string(),
                    anonymous: true,
                    copy_data: true,
                    ..MountPoint::new(MountType::Volume, dest, true)
                },
                labels: None,
                driver_opts: None,
            });
        }
        Ok(out)
    }

    /// Fills new, empty volumes from the image and refuses an image `VOLUME` over
    /// a file, with the container's root mounted for the time it takes.
    fn copy_up(&self, id: &str, points: &[MountPoint], config_volumes: &[String]) -> Result<()> {
        let wanted: Vec<&MountPoint> = points
            .iter()
            .filter(|p| p.kind == MountType::Volume && p.copy_data)
            .filter(|p| {
                std::fs::read_dir(self.volumes.path(&p.name)).is_ok_and(|mut d| d.next().is_none())
                    || self.volumes.get(&p.name).is_ok_and(|v| v.needs_mount())
            })
            .collect();
        if wanted.is_empty() && config_volumes.is_empty() {
            return Ok(());
        }
        let rootfs = self.images.mount_rw_layer(id)?;
        let result = (|| -> Result<()> {
            for raw in config_volumes {
                let dest = mounts::clean(raw);
                if points.iter().any(|p| p.destination == dest && !p.anonymous) {
                    continue;
                }
                let path = crate::store::secure_join(&rootfs, std::path::Path::new(&dest))?;
                if std::fs::metadata(&path).is_ok_and(|m| !m.is_dir()) {
                    return Err(Error::internal(format!(
                        "cannot mount volume over existing file, file exists {}",
                        path.display()
                    )));
                }
            }
            for p in wanted {
                let volume = self.volumes.mount(&p.name, id)?;
                let copied = super::copyup::populate(&rootfs, &p.destination, &volume);
                self.volumes.unmount(&p.name, id);
                copied?;
            }
            Ok(())
        })();
        if let Err(e) = self.images.unmount_rw_layer(id) {
            tracing::warn!(container_id = %id, "unmount the root after copy-up: {e}");
        }
        result
    }

    /// At removal (or a failed create): the container's references go; with
    /// `remove_anonymous` (`rm -v`, `--rm`) its anonymous volumes go too, unless
    /// another container still uses them.
    pub(crate) fn release_container_volumes(
        &self,
        id: &str,
        points: &[MountPoint],
        remove_anonymous: bool,
    ) {
        for p in points.iter().filter(|p| p.kind == MountType::Volume) {
            self.volumes.release(&p.name, id);
            if remove_anonymous && p.anonymous {
                match self.volume_remove(&p.name, true) {
                    Ok(()) | Err(Error::Conflict(_)) => {}
                    Err(e) => {
                        tracing::warn!(container_id = %id, "cannot remove volume {}: {e}", p.name)
                    }
                }
            }
        }
    }

    /// At start: what the monitor mounts for the container's mount points and
    /// `--tmpfs` entries; volumes with driver options are mounted now. `events`
    /// emits the volumes' `mount` events.
    pub(crate) fn container_volume_mounts(&self, r: &Record, events: bool) -> Result<Vec<Mount>> {
        let id = &r.container.id;
        let mut out = Vec::new();
        let tmpfs_dests: Vec<String> = r
            .settings
            .tmpfs
            .iter()
            .map(|(d, _)| mounts::clean(d))
            .collect();
        let mut mounted: Vec<&MountPoint> = Vec::new();
        let result = (|| -> Result<()> {
            for p in &r.container.mount_points {
                if tmpfs_dests.contains(&p.destination) {
                    continue;
                }
                let mut m = Mount {
                    destination: p.destination.clone(),
                    readonly: !p.rw,
                    propagation: propagation_flags(&p.propagation),
                    non_recursive: p.non_recursive,
                    ..Default::default()
                };
                match p.kind {
                    MountType::Volume => {
                        m.source = self.volumes.mount(&p.name, id)?;
                        mounted.push(p);
                    }
                    MountType::Bind => {
                        m.source = p.source.clone().into();
                        if p.create_source && std::fs::symlink_metadata(&m.source).is_err() {
                            use std::os::unix::fs::DirBuilderExt;
                            std::fs::DirBuilder::new()
                                .recursive(true)
                                .mode(0o755)
                                .create(&m.source)
                                .map_err(|e| {
                                    Error::internal(format!(
                                        "error while creating mount source path '{}': {}",
                                        p.source,
                                        crate::store::strip_os_suffix(&e)
                                    ))
                                })?;
                        }
                    }
                    MountType::Tmpfs => {
                        m.tmpfs = Some(tmpfs_mount(&p.tmpfs_data, &mut m.propagation)?)
                    }
                }
                out.push(m);
            }
            for (dest, opts) in &r.settings.tmpfs {
                let mut m = Mount {
                    destination: mounts::clean(dest),
                    ..Default::default()
                };
                m.tmpfs = Some(tmpfs_mount(opts, &mut m.propagation)?);
                out.push(m);
            }
            Ok(())
        })();
        if let Err(e) = result {
            for p in mounted {
                self.volumes.unmount(&p.name, id);
            }
            return Err(e);
        }
        if !events {
            return Ok(out);
        }
        for p in mounted {
            if let Ok(v) = self.volumes.get(&p.name) {
                self.volume_event(
                    "mount",
                    &v,
                    &[
                        ("container", id.clone()),
                        ("destination", p.destination.clone()),
                        ("read/write", p.rw.to_string()),
                        ("propagation", p.propagation.clone()),
                    ],
                );
            }
        }
        Ok(out)
    }

    /// After the container stopped (or failed to start): volumes with driver
    /// options are unmounted by their last user; `events` emits `unmount`.
    pub(crate) fn container_volumes_stopped(&self, r: &Record, events: bool) {
        let id = &r.container.id;
        for p in r
            .container
            .mount_points
            .iter()
            .filter(|p| p.kind == MountType::Volume)
        {
            self.volumes.unmount(&p.name, id);
            if events && let Ok(v) = self.volumes.get(&p.name) {
                self.volume_event("unmount", &v, &[("container", id.clone())]);
            }
        }
    }

    /// `Mounts` in inspect and in the container list.
    pub fn mounts_json(&self, points: &[MountPoint]) -> Value {
        Value::Array(
            points
                .iter()
                .map(|p| {
                    let mut m = Map::new();
                    m.insert("Type".into(), json!(p.kind.as_str()));
                    if !p.name.is_empty() {
                        m.insert("Name".into(), json!(p.name));
                    }
                    let source = match p.kind {
                        MountType::Volume => self.volumes.path(&p.name).display().to_string(),
                        _ => p.source.clone(),
                    };
                    m.insert("Source".into(), json!(source));
                    m.insert("Destination".into(), json!(p.destination));
                    if !p.driver.is_empty() {
                        m.insert("Driver".into(), json!(p.driver));
                    }
                    m.insert("Mode".into(), json!(p.mode));
                    m.insert("RW".into(), json!(p.rw));
                    m.insert("Propagation".into(), json!(p.propagation));
                    Value::Object(m)
                })
                .collect(),
        )
    }
}

/// `rprivate` → `MS_PRIVATE | MS_REC`; empty → 0.
fn propagation_flags(p: &str) -> u64 {
    if p.is_empty() {
        return 0;
    }
    options::parse(p).0
}

/// A tmpfs's flags and data from its options, Docker's defaults included; the
/// propagation goes to `propagation`.
fn tmpfs_mount(given: &str, propagation: &mut u64) -> Result<Tmpfs> {
    let merged = options::tmpfs(given).map_err(Error::invalid)?;
    let (flags, data) = options::parse(&merged);
    let prop = flags & (options::PROPAGATION_MASK | libc::MS_REC);
    *propagation = prop;
    Ok(Tmpfs {
        flags: flags & !prop,
        data,
    })
}
