//! The daemon's state and operations, independent of HTTP: what containers, images
//! and events exist and what can be done to them. The `api` layer translates requests
//! into calls here and [`Error`]s into status codes.

pub mod build;
pub mod containers;
pub mod events;
pub mod filters;
pub mod images;
pub mod network;
pub mod registry;
pub mod security;
pub mod system;
pub mod volume;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use crate::error::{Error, Result};
pub use events::EventBus;
pub use filters::Filters;

use crate::config::Config;

/// The engine: configuration, identity, event bus and every store.
pub struct Engine {
    config: RwLock<Arc<Config>>,
    /// Woken at every reload, for whoever waits on a reloadable setting.
    reloaded: tokio::sync::Notify,
    /// The engine ID (`docker info` → ID), generated once and kept in data-root.
    pub id: String,
    /// The host name (`docker info` → Name).
    pub name: String,
    pub events: EventBus,
    /// Set while a liveness probe's lock check runs; a probe stuck on a wedged lock
    /// makes the next ones fail at once instead of piling up threads.
    probing: std::sync::atomic::AtomicBool,
    /// Set while the daemon stops its containers on shutdown (`live-restore: false`):
    /// those stops are not a user's, and no restart follows them.
    shutting_down: std::sync::atomic::AtomicBool,
    data_root: PathBuf,
    exec_root: PathBuf,
    /// Images, their layers and tags, and containers' root filesystems.
    images: Arc<crate::image::ImageStore>,
    /// Every container and its state.
    pub containers: containers::Containers,
    /// Starts containers under their monitors and talks to the monitors.
    pub runtime: crate::runtime::Runtime,
    /// Networks, their addresses and host ports.
    pub networks: network::Networks,
    /// Registry clients, transfer limits and layer downloads under way.
    registries: registry::Registries,
    /// `docker exec` processes (in memory, as Docker keeps them).
    pub execs: containers::exec::Execs,
    /// Volumes and which containers use them.
    volumes: volume::Volumes,
    /// Seccomp, AppArmor and no-new-privileges for containers.
    pub security: security::Security,
}

impl Engine {
    /// Opens (creating when needed) data-root and exec-root and loads persisted state.
    /// Runs on a blocking thread: it touches the disk.
    pub fn open(config: Config) -> Result<Engine> {
        let data_root = config.data_root.clone();
        let exec_root = config.exec_root.clone();
        crate::store::create_private_dir(&data_root)?;
        crate::store::create_private_dir(&exec_root)?;
        crate::store::sweep_temp_files(&data_root)?;
        let id = load_or_create_engine_id(&data_root)?;
        // Build contexts live only as long as their build.
        crate::image::layer_store::remove_tree(&data_root.join("builder"));
        let images = Arc::new(crate::image::ImageStore::open(&data_root)?);
        let log_defaults = containers::settings::LogDefaults {
            driver: config.log_driver.clone(),
            opts: config.log_opts.clone(),
        };
        let containers = containers::Containers::open(&data_root, &log_defaults)?;
        let volumes = volume::Volumes::open(&data_root)?;
        let runtime = crate::runtime::Runtime::new(&exec_root);
        let security = security::Security::open(
            &config.containers.seccomp_profile,
            config.containers.no_new_privileges,
        )?;
        let networks = network::Networks::open(&config.network, &data_root, &exec_root, &id)?;
        let registries = registry::Registries::new(
            &config.registry,
            registry::certs_dir(&config.config_file),
            images.root(),
        );
        let name = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let engine = Engine {
            config: RwLock::new(Arc::new(config)),
            reloaded: tokio::sync::Notify::new(),
            id,
            name,
            events: EventBus::new(),
            probing: std::sync::atomic::AtomicBool::new(false),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            data_root,
            exec_root,
            images,
            containers,
            runtime,
            networks,
            registries,
            execs: Default::default(),
            volumes,
            security,
        };
        engine.restore_networking()?;
        engine.restore_volume_refs();
        Ok(engine)
    }

    /// At start: the addresses and ports of containers recorded as running are in
    /// use, and the names file says what they answer to. The host itself is set up
    /// by [`Engine::setup_host_networking`], beside serving.
    fn restore_networking(&self) -> Result<()> {
        for h in self.containers.all() {
            let r = h.record();
            if r.container.state.running {
                self.network_restore(&r);
            }
        }
        self.networks.write_names()
    }

    /// Puts the host in order for container networking (blocking; the daemon runs it
    /// beside serving its first requests): forwarding on, bridges present (after a
    /// reboot they are gone), Docker's chains and every network's rules in place,
    /// stale rules of containers that ended unseen swept. Whatever needs networking
    /// waits for it.
    pub fn setup_host_networking(&self) {
        let t0 = std::time::Instant::now();
        let outcome = self.networks.setup_host().map_err(|e| e.to_string());
        if outcome.is_ok()
            && let Some(fw) = &self.networks.firewall
        {
            match fw.sweep(&self.networks.policies(), &self.live_port_rules()) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!("removed {n} stale firewall rules of containers that are gone")
                }
                Err(e) => tracing::warn!("cannot sweep stale firewall rules: {e}"),
            }
        }
        self.sweep_namespaces();
        match &outcome {
            Ok(()) => tracing::debug!("host networking set up in {:?}", t0.elapsed()),
            Err(e) => tracing::error!("cannot set up container networking: {e}"),
        }
        self.networks.mark_host_ready(outcome);
    }

    /// Removes namespace files no running container uses: what a start that a crash
    /// interrupted left behind (the kernel then removes their interfaces).
    fn sweep_namespaces(&self) {
        let keep: Vec<std::path::PathBuf> = self
            .containers
            .all()
            .iter()
            .filter_map(|h| {
                let r = h.record();
                let key = &r.container.network_settings.sandbox_key;
                (r.container.state.running && !key.is_empty())
                    .then(|| std::path::PathBuf::from(key))
            })
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.networks.netns_dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !keep.contains(&path) {
                tracing::info!(
                    "removing the network namespace {} of no running container",
                    path.display()
                );
                if let Err(err) = crate::net::netns::remove(&path) {
                    tracing::warn!("cannot remove {}: {err}", path.display());
                }
            }
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The configuration in force now (a snapshot; a reload swaps in a new one).
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Installs a reloaded configuration and announces it with a `daemon reload` event.
    pub fn apply_config(&self, config: Config) {
        let mut attrs = config.reload_event_attributes();
        attrs.insert("name".into(), self.name.clone());
        self.registries.apply(&config.registry);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        self.reloaded.notify_waiters();
        self.events.emit("daemon", "reload", &self.id, attrs);
    }

    /// Resolves at the next reload (`apply_config`). Made before reading the
    /// configuration, it also catches a reload in between.
    pub fn reloaded(&self) -> std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>> {
        let mut notified = Box::pin(self.reloaded.notified());
        notified.as_mut().enable();
        notified
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    pub fn exec_root(&self) -> &Path {
        &self.exec_root
    }

    /// Liveness: the engine's state locks (the container registry and every
    /// container's record, the image store) can all be taken within `deadline`. They
    /// are std mutexes, so this runs on a blocking thread; at most one probe waits.
    pub async fn probe(self: &Arc<Self>, deadline: Duration) -> bool {
        use std::sync::atomic::Ordering;
        if self.probing.swap(true, Ordering::AcqRel) {
            return false;
        }
        let engine = self.clone();
        let check = tokio::task::spawn_blocking(move || {
            let _ = engine.counts();
            engine.probing.store(false, Ordering::Release);
        });
        matches!(tokio::time::timeout(deadline, check).await, Ok(Ok(())))
    }
}

impl Engine {
    /// Object counts for `docker info`.
    pub fn counts(&self) -> system::Counts {
        let (containers, running, stopped) = self.containers.counts();
        system::Counts {
            containers,
            running,
            paused: 0,
            stopped,
            images: self.images.count(),
        }
    }

    /// The storage driver containers' root filesystems use: `overlay2` where
    /// overlay mounts work, else `vfs` (copies).
    pub fn storage_driver(&self) -> &'static str {
        self.images.driver().name()
    }

    /// Network drivers containers can use.
    pub fn network_drivers(&self) -> Vec<&'static str> {
        vec!["bridge", "host", "null"]
    }

    /// Isolation features applied to containers, in Docker's `name=…` form and
    /// order: AppArmor, the seccomp profile, a cgroup namespace of their own unless
    /// `default-cgroupns-mode` is `host`, and no-new-privileges.
    pub fn security_options(&self) -> Vec<String> {
        self.security
            .info_options(self.config().containers.cgroupns_mode == "private")
    }
}

/// Go's `strconv.ParseBool`, for option values Docker reads with it.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Docker keeps a UUID in `<data-root>/engine-id`; create it on first start.
fn load_or_create_engine_id(data_root: &Path) -> Result<String> {
    let path = data_root.join("engine-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(crate::store::with_path(e, "open", &path).into()),
    }
    let id = random_uuid()?;
    crate::store::write_atomic_mode(&path, id.as_bytes(), 0o600)?;
    Ok(id)
}

/// `n` random bytes from the kernel.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// A random 64-hex-digit ID, the form of container IDs.
pub fn random_id() -> Result<String> {
    Ok(hex(&random_bytes(32)?))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn random_uuid() -> Result<String> {
    let mut b = random_bytes(16)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_fails_while_state_is_wedged() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::load(
            &crate::cli::parse(["dockerd", "--config-file", "/dev/null"]).unwrap(),
        )
        .unwrap_or_else(|_| panic!("default config"));
        config.data_root = dir.path().join("data");
        config.exec_root = dir.path().join("exec");
        let engine = Arc::new(Engine::open(config).unwrap());
        assert!(engine.probe(Duration::from_secs(5)).await);
        let engine2 = engine.clone();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _guard = engine2.containers.hold_registry();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        held_rx.recv().unwrap();
        assert!(
            !engine.probe(Duration::from_millis(100)).await,
            "a held registry lock must fail the probe"
        );
        // The stuck check is still waiting: the next probe fails at once rather than queueing.
        assert!(!engine.probe(Duration::from_secs(5)).await);
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        let start = std::time::Instant::now();
        while !engine.probe(Duration::from_secs(5)).await {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "probe did not recover"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn engine_id_is_a_uuid_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_engine_id(dir.path()).unwrap();
        let b = load_or_create_engine_id(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
    }
}
