//! Containers: the registry of every container the daemon knows, how names and IDs
//! resolve, and what each container's handle holds while the daemon runs.
//!
//! Operations live in the sibling files: `create` (validating a create request and
//! merging the image's defaults), `lifecycle` (start, stop, kill, restart, wait,
//! remove, rename, prune, exits), `inspect` (the inspect and list documents), `logs`
//! (reading json-file logs), `journald` (the journald driver's fields and reading), `spec` (the monitor's spec for a start).

pub mod archive;
pub mod create;
pub mod detach;
pub mod devices;
pub mod exec;
pub mod filesystem;
pub mod health;
pub mod inspect;
pub mod journald;
pub mod lifecycle;
pub mod logs;
pub mod names;
pub mod namespaces;
pub mod pause;
pub mod record;
pub mod resources;
pub mod restart;
pub mod settings;
pub mod spec;
pub mod stats;
pub mod update;

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::engine::{Error, Result};
use crate::init::spec::AttachStreams;
use record::Container;
use settings::HostSettings;

/// Where a container is in its life, as waiters see it.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// Increments at every exit (and failed start): `next-exit` waits for a change.
    pub exits: u64,
    pub running: bool,
    pub exit_code: i32,
    /// Set when the container's exit recorded an error.
    pub error: Option<String>,
    pub removed: bool,
}

/// What the daemon holds for one container.
pub struct Handle {
    pub id: String,
    /// `<data-root>/containers/<id>`.
    pub dir: PathBuf,
    record: Mutex<Record>,
    /// Serialises start, stop, restart, remove and rename of this container.
    pub op: tokio::sync::Mutex<()>,
    pub lifecycle: watch::Sender<Lifecycle>,
    /// Attach streams opened before the container started: the monitor's ends,
    /// handed to it at start.
    pending_attach: Mutex<Vec<(UnixStream, AttachStreams)>>,
    /// Serialises writes of `config.v2.json`.
    persist: Mutex<()>,
    /// The restart policy's backoff and pending restart.
    restart: Mutex<restart::RestartState>,
    /// The last stats sample read, for the next single stats document.
    pub last_stats: stats::LastSample,
}

/// The persisted container plus what is derived from it.
#[derive(Debug, Clone)]
pub struct Record {
    pub container: Container,
    /// HostConfig as inspect shows it.
    pub host_config: Map<String, Value>,
    pub settings: HostSettings,
}

impl Record {
    /// The container's cgroup, relative to each hierarchy's root: where it was last
    /// started.
    pub fn cgroup_path(&self) -> String {
        if self.container.cgroup_path.is_empty() {
            spec::cgroup_path(
                &self.settings,
                &self.container.id,
                "",
                crate::config::containers::CgroupDriver::Cgroupfs,
            )
            .unwrap_or_default()
        } else {
            self.container.cgroup_path.clone()
        }
    }
}

impl Handle {
    pub(crate) fn new(dir: PathBuf, record: Record) -> Arc<Handle> {
        let running = record.container.state.running;
        let exit_code = record.container.state.exit_code;
        let (tx, _) = watch::channel(Lifecycle {
            running,
            exit_code,
            ..Lifecycle::default()
        });
        Arc::new(Handle {
            id: record.container.id.clone(),
            dir,
            record: Mutex::new(record),
            op: tokio::sync::Mutex::new(()),
            lifecycle: tx,
            pending_attach: Mutex::new(Vec::new()),
            persist: Mutex::new(()),
            restart: Mutex::new(Default::default()),
            last_stats: Default::default(),
        })
    }

    pub(crate) fn restart_state(&self) -> MutexGuard<'_, restart::RestartState> {
        self.restart.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record, locked briefly (never across an await).
    pub fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> Record {
        self.record().clone()
    }

    /// Changes the record and writes `config.v2.json`, on a blocking thread (the
    /// write waits for the disk). Each write stores the record as it is when the write
    /// runs, so concurrent updates end with the newest state on disk.
    pub async fn update(self: &Arc<Self>, f: impl FnOnce(&mut Container)) -> Result<()> {
        f(&mut self.record().container);
        let h = self.clone();
        tokio::task::spawn_blocking(move || {
            let _writer = h.persist.lock().unwrap_or_else(|p| p.into_inner());
            let c = h.record().container.clone();
            record::save_state(&h.dir, &c)
        })
        .await
        .map_err(|e| Error::internal(format!("saving container state: {e}")))?
    }

    /// Changes the HostConfig and the settings read from it, and writes
    /// `hostconfig.json`, on a blocking thread.
    pub async fn update_host_config(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Map<String, Value>, &mut HostSettings),
    ) -> Result<()> {
        {
            let mut r = self.record();
            let r = &mut *r;
            f(&mut r.host_config, &mut r.settings);
        }
        let h = self.clone();
        tokio::task::spawn_blocking(move || {
            let _writer = h.persist.lock().unwrap_or_else(|p| p.into_inner());
            let hc = h.record().host_config.clone();
            record::save_host_config(&h.dir, &hc)
        })
        .await
        .map_err(|e| Error::internal(format!("saving container configuration: {e}")))?
    }

    /// Changes the record in memory only: for states about to be superseded (an
    /// exit followed at once by `--rm`'s removal).
    pub fn update_in_memory(&self, f: impl FnOnce(&mut Container)) {
        f(&mut self.record().container);
    }

    pub fn add_pending_attach(&self, stream: UnixStream, streams: AttachStreams) {
        self.pending_attach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((stream, streams));
    }

    pub fn take_pending_attach(&self) -> Vec<(UnixStream, AttachStreams)> {
        std::mem::take(
            &mut *self
                .pending_attach
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }
}

/// Every container, by ID and by name.
pub struct Containers {
    root: PathBuf,
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<String, Arc<Handle>>,
    /// `/name` → ID.
    names: HashMap<String, String>,
}

impl Containers {
    /// Loads every container under `<data-root>/containers`; directories of creates a
    /// crash interrupted are removed.
    pub fn open(data_root: &Path, default_log: &settings::LogDefaults) -> Result<Containers> {
        let root = record::containers_dir(data_root);
        crate::store::create_private_dir(&root)?;
        crate::store::sweep_temp_files(&root)?;
        let mut reg = Registry::default();
        for entry in std::fs::read_dir(&root)
            .map_err(|e| crate::store::with_path(e, "read directory", &root))?
        {
            let entry = entry?;
            let dir = entry.path();
            if !entry.file_type()?.is_dir() {
                continue;
            }
            match record::load(&dir) {
                Ok(Some((container, host_config))) => {
                    let settings = match HostSettings::from_host_config(&host_config, default_log) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::error!(container_id = %container.id, "cannot read the host configuration, skipping the container: {e}");
                            continue;
                        }
                    };
                    crate::store::sweep_temp_files(&dir)?;
                    reg.names
                        .insert(container.name.clone(), container.id.clone());
                    let id = container.id.clone();
                    reg.by_id.insert(
                        id,
                        Handle::new(
                            dir,
                            Record {
                                container,
                                host_config,
                                settings,
                            },
                        ),
                    );
                }
                Ok(None) => {
                    tracing::warn!("removing incomplete container directory {}", dir.display());
                    let _ = crate::store::remove_dir_all_robust(&dir);
                }
                Err(e) => tracing::error!("cannot load container from {}: {e}", dir.display()),
            }
        }
        Ok(Containers {
            root,
            inner: Mutex::new(reg),
        })
    }

    /// Holds the registry lock, as a wedged operation would (liveness probe tests).
    #[cfg(test)]
    pub(crate) fn hold_registry(&self) -> impl Drop + '_ {
        self.reg()
    }

    fn reg(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a full ID, a name (with or without `/`), or a unique ID prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Arc<Handle>> {
        let reg = self.reg();
        if name_or_id.is_empty() {
            return Err(Error::not_found("No such container: "));
        }
        if let Some(h) = reg.by_id.get(name_or_id) {
            return Ok(h.clone());
        }
        let with_slash = if name_or_id.starts_with('/') {
            name_or_id.to_string()
        } else {
            format!("/{name_or_id}")
        };
        if let Some(id) = reg.names.get(&with_slash) {
            if let Some(h) = reg.by_id.get(id) {
                return Ok(h.clone());
            }
        }
        if name_or_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = reg
                .by_id
                .iter()
                .filter(|(id, _)| id.starts_with(name_or_id));
            if let Some((_, h)) = found.next() {
                if found.next().is_some() {
                    return Err(Error::invalid(format!(
                        "multiple IDs found with provided prefix: {name_or_id}"
                    )));
                }
                return Ok(h.clone());
            }
        }
        Err(Error::not_found(format!("No such container: {name_or_id}")))
    }

    /// Every container.
    pub fn all(&self) -> Vec<Arc<Handle>> {
        self.reg().by_id.values().cloned().collect()
    }

    /// Reserves `name` (`/name`) for `id`; 409 with Docker's message when taken.
    pub fn reserve_name(&self, name: &str, id: &str) -> Result<()> {
        let mut reg = self.reg();
        if let Some(owner) = reg.names.get(name) {
            if owner != id {
                return Err(Error::conflict(format!(
                    "Conflict. The container name \"{name}\" is already in use by container \"{owner}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
        }
        reg.names.insert(name.to_string(), id.to_string());
        Ok(())
    }

    pub fn release_name(&self, name: &str, id: &str) {
        let mut reg = self.reg();
        if reg.names.get(name).is_some_and(|owner| owner == id) {
            reg.names.remove(name);
        }
    }

    pub fn name_taken(&self, name: &str) -> bool {
        self.reg().names.contains_key(name)
    }

    pub(crate) fn insert(&self, h: Arc<Handle>) {
        self.reg().by_id.insert(h.id.clone(), h);
    }

    pub(crate) fn remove(&self, id: &str) {
        let mut reg = self.reg();
        reg.by_id.remove(id);
        reg.names.retain(|_, owner| owner != id);
    }

    /// The containers using `image_id`, with whether each runs.
    pub fn users_of_image(&self, image_id: &str) -> Vec<(String, bool)> {
        let reg = self.reg();
        reg.by_id
            .values()
            .filter_map(|h| {
                let r = h.record();
                (r.container.image == image_id).then(|| (h.id.clone(), r.container.state.running))
            })
            .collect()
    }

    /// (all, running, stopped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let reg = self.reg();
        let running = reg
            .by_id
            .values()
            .filter(|h| h.record().container.state.running)
            .count();
        (reg.by_id.len(), running, reg.by_id.len() - running)
    }
}
