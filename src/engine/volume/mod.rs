//! Volumes with Docker's `local` driver: each is a directory
//! `<data-root>/volumes/<name>/_data` that containers mount, with its labels and
//! driver options in `<name>/volume.json`. A volume with driver options (`type`,
//! `device`, `o`) is mounted on `_data` while containers use it: a tmpfs, a bind
//! of a host path, an NFS export.
//!
//! A volume is created whole or not at all: it is prepared in a temporary
//! directory and renamed into place. The containers that use a volume (running or
//! not) are its references, rebuilt at start from the containers' records; a
//! volume with references is never removed.

pub mod copyup;
pub mod mounts;
pub mod ops;
pub mod options;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::{Error, Result};

/// The label Docker puts on volumes made for a container without a name.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// The volume's metadata file inside `<name>/`.
const META_FILE: &str = "volume.json";
/// Volumes being created (a crash leaves them; they are swept at start).
const TEMP_PREFIX: &str = ".tmp-";

/// What is kept about a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    /// As given at create (`null` when none were).
    pub labels: Option<BTreeMap<String, String>>,
    /// The driver options as given at create.
    pub options: Option<BTreeMap<String, String>>,
}

impl Volume {
    /// A driver option asks for a mount on `_data` (Docker's `needsMount`).
    pub fn needs_mount(&self) -> bool {
        self.options.as_ref().is_some_and(|o| {
            o.get("type").is_some_and(|v| !v.is_empty())
                || o.get("device").is_some_and(|v| !v.is_empty())
        })
    }

    pub fn is_anonymous(&self) -> bool {
        self.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(ANONYMOUS_LABEL))
    }

    pub fn has_options(&self) -> bool {
        self.options.as_ref().is_some_and(|o| !o.is_empty())
    }
}

#[derive(Default)]
struct State {
    volumes: BTreeMap<String, Volume>,
    /// Volume → the containers that use it.
    refs: HashMap<String, BTreeSet<String>>,
    /// Volume with a mount on `_data` → the containers that need it mounted.
    active: HashMap<String, BTreeSet<String>>,
}

/// The `local` driver's volumes.
pub struct Volumes {
    root: PathBuf,
    state: Mutex<State>,
    /// Set while a prune runs (Docker refuses a second one).
    pruning: std::sync::atomic::AtomicBool,
}

/// Docker's rule for local volume names.
pub fn validate_name(name: &str) -> Result<()> {
    if name.len() == 1 {
        return Err(Error::invalid(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(ok_char);
    if !valid {
        return Err(Error::invalid(format!(
            "create {name}: {} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
            crate::init::exec::go_quote(name)
        )));
    }
    Ok(())
}

/// Docker's checks of a local volume's driver options.
pub fn validate_options(name: &str, opts: &BTreeMap<String, String>) -> Result<()> {
    let fail = |m: String| Err(Error::invalid(format!("create {name}: {m}")));
    for k in opts.keys() {
        if !["type", "o", "device", "size"].contains(&k.as_str()) {
            return fail(format!(
                "invalid option: {}",
                crate::init::exec::go_quote(k)
            ));
        }
    }
    if let Some(size) = opts.get("size") {
        let n = options::ram_in_bytes(size)
            .map_err(|e| Error::invalid(format!("create {name}: {e}")))?;
        if n > 0 {
            // Quotas need XFS project quotas under data-root; they are not set up here.
            return fail("quota size requested but no quota support".to_string());
        }
    }
    for (opt, required) in [
        ("device", &["type"][..]),
        ("type", &["device"]),
        ("o", &["device", "type"]),
    ] {
        if opts.contains_key(opt) {
            for r in required {
                if !opts.contains_key(*r) {
                    return fail(format!("missing required option: \"{r}\""));
                }
            }
        }
    }
    Ok(())
}

/// An anonymous volume's name: 64 hex digits, not all-digit in its first 12.
pub fn generate_name() -> Result<String> {
    loop {
        let id = crate::engine::random_id()?;
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

impl Volumes {
    /// Opens `<data-root>/volumes`: every directory there is a volume (as with
    /// Docker, one without metadata has no labels or options).
    pub fn open(data_root: &Path) -> Result<Volumes> {
        let root = data_root.join("volumes");
        if !root.exists() {
            std::fs::DirBuilder::new()
                .mode(0o701)
                .recursive(true)
                .create(&root)
                .map_err(|e| crate::store::with_path(e, "create", &root))?;
        }
        let mut state = State::default();
        for entry in
            std::fs::read_dir(&root).map_err(|e| crate::store::with_path(e, "read", &root))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if name.starts_with(TEMP_PREFIX) {
                let _ = crate::store::remove_dir_all_robust(&entry.path());
                continue;
            }
            let volume = match std::fs::read(entry.path().join(META_FILE)) {
                Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                    Error::internal(format!("{}: {e}", entry.path().join(META_FILE).display()))
                })?,
                Err(_) => Volume {
                    name: name.clone(),
                    driver: "local".into(),
                    labels: None,
                    options: None,
                },
            };
            let data = entry.path().join("_data");
            if !data.exists() {
                std::fs::DirBuilder::new().mode(0o755).create(&data)?;
            }
            state.volumes.insert(name, volume);
        }
        Ok(Volumes {
            root,
            state: Mutex::new(state),
            pruning: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory containers mount: `<data-root>/volumes/<name>/_data`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// Creates a volume, or returns the one of that name (`false`: not new).
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        labels: Option<BTreeMap<String, String>>,
        opts: Option<BTreeMap<String, String>>,
    ) -> Result<(Volume, bool)> {
        let driver = if driver.is_empty() { "local" } else { driver };
        let mut st = self.lock();
        if let Some(v) = st.volumes.get(name) {
            if v.driver != driver {
                return Err(Error::conflict(format!(
                    "create {name}: driver '{}' already has volume '{name}': volume name must be unique",
                    v.driver
                )));
            }
            return Ok((v.clone(), false));
        }
        if driver != "local" {
            return Err(Error::not_found(format!(
                "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        validate_name(name)?;
        if let Some(o) = &opts {
            validate_options(name, o)?;
        }
        let volume = Volume {
            name: name.to_string(),
            driver: driver.to_string(),
            labels,
            options: opts,
        };
        let dir = self.root.join(name);
        let temp = self.root.join(format!(
            "{TEMP_PREFIX}{}",
            crate::engine::hex(&crate::engine::random_bytes(8)?)
        ));
        let made = (|| -> std::io::Result<()> {
            std::fs::DirBuilder::new().mode(0o701).create(&temp)?;
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(temp.join("_data"))?;
            let meta = serde_json::to_vec(&volume).map_err(std::io::Error::other)?;
            crate::store::write_atomic_mode(&temp.join(META_FILE), &meta, 0o600)?;
            std::fs::rename(&temp, &dir)?;
            crate::store::sync_dir(&self.root)
        })();
        if let Err(e) = made {
            let _ = crate::store::remove_dir_all_robust(&temp);
            return Err(Error::internal(format!(
                "create {name}: error while creating volume root path '{}': {}",
                dir.display(),
                crate::store::strip_os_suffix(&e)
            )));
        }
        st.volumes.insert(name.to_string(), volume.clone());
        Ok((volume, true))
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        self.lock()
            .volumes
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("get {name}: no such volume")))
    }

    pub fn list(&self) -> Vec<Volume> {
        self.lock().volumes.values().cloned().collect()
    }

    /// The containers using `name`, sorted.
    pub fn refs(&self, name: &str) -> Vec<String> {
        self.lock()
            .refs
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn add_ref(&self, name: &str, container: &str) {
        self.lock()
            .refs
            .entry(name.to_string())
            .or_default()
            .insert(container.to_string());
    }

    pub fn release(&self, name: &str, container: &str) {
        let mut st = self.lock();
        if let Some(set) = st.refs.get_mut(name) {
            set.remove(container);
            if set.is_empty() {
                st.refs.remove(name);
            }
        }
    }

    /// Removes a volume no container uses. `force` only turns a missing volume into
    /// success, as with Docker. Returns whether a volume was removed.
    pub fn remove(&self, name: &str, force: bool) -> Result<bool> {
        let mut st = self.lock();
        if !st.volumes.contains_key(name) {
            return if force {
                Ok(false)
            } else {
                Err(Error::not_found(format!("get {name}: no such volume")))
            };
        }
        if let Some(refs) = st.refs.get(name).filter(|r| !r.is_empty()) {
            let list: Vec<&str> = refs.iter().map(String::as_str).collect();
            return Err(Error::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                list.join(", ")
            )));
        }
        let dir = self.root.join(name);
        let data = dir.join("_data");
        // Never delete through a mount (a bound host directory, a leftover tmpfs).
        if is_mountpoint(&data) {
            let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
            if is_mountpoint(&data) {
                return Err(Error::internal(format!(
                    "remove {name}: volume has active mounts"
                )));
            }
        }
        if dir.parent() != Some(self.root.as_path()) {
            return Err(Error::internal(format!(
                "unable to remove a directory outside of the local volume root {}: {}",
                self.root.display(),
                dir.display()
            )));
        }
        // Out of the namespace first: a crash mid-way leaves a temporary directory
        // that the next start sweeps, never half a volume.
        let doomed = self.root.join(format!(
            "{TEMP_PREFIX}{}",
            crate::engine::hex(&crate::engine::random_bytes(8)?)
        ));
        std::fs::rename(&dir, &doomed).map_err(|e| {
            Error::internal(format!(
                "remove {name}: error removing volume path '{}': {}",
                dir.display(),
                crate::store::strip_os_suffix(&e)
            ))
        })?;
        st.volumes.remove(name);
        st.active.remove(name);
        drop(st);
        if let Err(e) = crate::store::remove_dir_all_robust(&doomed) {
            tracing::warn!("removing the files of volume {name}: {e}");
        }
        Ok(true)
    }

    /// Makes the volume ready for `container` and returns the path to bind: with
    /// driver options, the first user mounts it on `_data`.
    pub fn mount(&self, name: &str, container: &str) -> Result<PathBuf> {
        let mut st = self.lock();
        let v = st
            .volumes
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("get {name}: no such volume")))?;
        let data = self.path(name);
        if v.needs_mount() {
            let users = st.active.entry(name.to_string()).or_default();
            if users.is_empty() && !is_mountpoint(&data) {
                mount_device(&v, &data)?;
            }
            users.insert(container.to_string());
        }
        Ok(data)
    }

    /// `container` no longer needs the volume; the last user unmounts it.
    pub fn unmount(&self, name: &str, container: &str) {
        let mut st = self.lock();
        let Some(users) = st.active.get_mut(name) else {
            return;
        };
        if !users.remove(container) || !users.is_empty() {
            return;
        }
        st.active.remove(name);
        let data = self.path(name);
        if let Err(e) = nix::mount::umount2(&data, nix::mount::MntFlags::empty()) {
            tracing::debug!("unmount {}: {e}; detaching it", data.display());
            if let Err(e) = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!("cannot unmount volume {name} at {}: {e}", data.display());
            }
        }
    }

    /// At start: the running containers that use volumes with mounts. A mount no
    /// running container needs any more is undone.
    pub fn restore_mounts(&self, running: &[(String, Vec<String>)]) {
        let mut st = self.lock();
        let mounted: Vec<String> = st
            .volumes
            .values()
            .filter(|v| v.needs_mount())
            .map(|v| v.name.clone())
            .collect();
        for name in mounted {
            let data = self.path(&name);
            if !is_mountpoint(&data) {
                continue;
            }
            let users: BTreeSet<String> = running
                .iter()
                .filter(|(_, vols)| vols.contains(&name))
                .map(|(c, _)| c.clone())
                .collect();
            if users.is_empty() {
                let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
            } else {
                st.active.insert(name, users);
            }
        }
    }

    /// The API's Volume object; `usage` is (size, references) for `system df`.
    pub fn to_json(&self, v: &Volume, usage: Option<(i64, i64)>) -> Value {
        let created = std::fs::metadata(self.root.join(&v.name))
            .map(|m| {
                crate::timefmt::rfc3339_nano(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.ctime().max(0) as u64),
                )
            })
            .unwrap_or_else(|_| crate::timefmt::ZERO_TIME.to_string());
        let mut out = json!({
            "CreatedAt": created,
            "Driver": v.driver,
            "Labels": v.labels,
            "Mountpoint": self.path(&v.name).display().to_string(),
            "Name": v.name,
            "Options": v.options,
            "Scope": "local",
        });
        if let Some((size, refs)) = usage {
            out["UsageData"] = json!({ "RefCount": refs, "Size": size });
        }
        out
    }

    /// Bytes in a volume: apparent sizes of everything but directories, each
    /// hard-linked file once; -1 when it cannot be read.
    pub fn size(&self, name: &str) -> i64 {
        dir_size(&self.path(name)).map_or(-1, |s| s as i64)
    }

    /// Marks a prune as running; `false` when one already is.
    pub fn begin_prune(&self) -> bool {
        !self.pruning.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    pub fn end_prune(&self) {
        self.pruning
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

fn mount_device(v: &Volume, data: &Path) -> Result<()> {
    let opts = v.options.clone().unwrap_or_default();
    let device = opts.get("device").cloned().unwrap_or_default();
    let fstype = opts.get("type").cloned().unwrap_or_default();
    let (flags, fsdata) = options::parse(opts.get("o").map(String::as_str).unwrap_or(""));
    let fail = |e: nix::Error, f: libc::c_ulong| {
        let mut what = format!("mount {device}:{}", data.display());
        if f != 0 {
            what.push_str(&format!(", flags: {f:#x}"));
        }
        if !fsdata.is_empty() {
            what.push_str(&format!(", data: {}", hide_password(&fsdata)));
        }
        Error::internal(format!(
            "error while mounting volume '{}': failed to mount local volume: {what}: {}",
            data.display(),
            crate::store::strip_os_suffix(&std::io::Error::from(e))
        ))
    };
    let main = flags & !options::PROPAGATION_MASK;
    nix::mount::mount(
        Some(device.as_str()),
        data,
        Some(fstype.as_str()).filter(|t| !t.is_empty()),
        nix::mount::MsFlags::from_bits_truncate(main),
        Some(fsdata.as_str()).filter(|d| !d.is_empty()),
    )
    .map_err(|e| fail(e, main))?;
    let propagation = flags & (options::PROPAGATION_MASK | libc::MS_REC);
    if flags & options::PROPAGATION_MASK != 0 {
        nix::mount::mount(
            None::<&str>,
            data,
            None::<&str>,
            nix::mount::MsFlags::from_bits_truncate(propagation),
            None::<&str>,
        )
        .map_err(|e| fail(e, propagation))?;
    }
    Ok(())
}

fn hide_password(data: &str) -> String {
    data.split(',')
        .map(|o| {
            if o.starts_with("password=") {
                "password=********"
            } else {
                o
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `p` is the root of a mount (its device differs from its parent's, or
/// the kernel says so for a bind within one filesystem).
pub fn is_mountpoint(p: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = p.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| crate::init::cgroup::unescape_mountinfo(m) == target)
    })
}

fn dir_size(root: &Path) -> std::io::Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let m = entry.metadata()?;
            if m.is_dir() {
                stack.push(entry.path());
            } else if m.len() > 0 && (m.nlink() <= 1 || seen.insert((m.dev(), m.ino()))) {
                total += m.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert!(validate_name("ab").is_ok());
        assert!(validate_name("my_vol.1-x").is_ok());
        assert_eq!(
            validate_name("a").unwrap_err().to_string(),
            "create a: volume name is too short, names should be at least two alphanumeric characters"
        );
        assert_eq!(
            validate_name("foo/bar").unwrap_err().to_string(),
            "create foo/bar: \"foo/bar\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
        for bad in ["..", ".x", "-x", "a/../b", "x y", ""] {
            assert!(validate_name(bad).is_err() || bad.is_empty(), "{bad}");
        }
    }

    #[test]
    fn options_are_checked_as_docker() {
        let o = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(
            validate_options(
                "v",
                &o(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")])
            )
            .is_ok()
        );
        assert_eq!(
            validate_options("v", &o(&[("foo", "bar")]))
                .unwrap_err()
                .to_string(),
            "create v: invalid option: \"foo\""
        );
        assert_eq!(
            validate_options("v", &o(&[("type", "tmpfs")]))
                .unwrap_err()
                .to_string(),
            "create v: missing required option: \"device\""
        );
        assert_eq!(
            validate_options("v", &o(&[("device", "/x")]))
                .unwrap_err()
                .to_string(),
            "create v: missing required option: \"type\""
        );
        assert_eq!(
            validate_options("v", &o(&[("size", "1g")]))
                .unwrap_err()
                .to_string(),
            "create v: quota size requested but no quota support"
        );
        assert_eq!(
            validate_options("v", &o(&[("size", "x")]))
                .unwrap_err()
                .to_string(),
            "create v: invalid size: 'x'"
        );
    }

    #[test]
    fn volumes_are_created_once_kept_and_removed_when_unused() {
        let dir = tempfile::tempdir().unwrap();
        let vols = Volumes::open(dir.path()).unwrap();
        let labels: BTreeMap<String, String> = [("a".to_string(), "b".to_string())].into();
        let (v, new) = vols
            .create("data1", "", Some(labels.clone()), None)
            .unwrap();
        assert!(new);
        assert_eq!(v.driver, "local");
        assert!(vols.path("data1").is_dir());
        let (again, new) = vols.create("data1", "local", None, None).unwrap();
        assert!(!new);
        assert_eq!(again.labels, Some(labels));
        std::fs::write(vols.path("data1").join("f"), b"12345").unwrap();
        assert_eq!(vols.size("data1"), 5);
        vols.add_ref("data1", "c1");
        let e = vols.remove("data1", true).unwrap_err();
        assert_eq!(e.to_string(), "remove data1: volume is in use - [c1]");
        drop(vols);
        // Reopened: the volume, its labels and its data are there.
        let vols = Volumes::open(dir.path()).unwrap();
        assert_eq!(vols.get("data1").unwrap().labels.unwrap()["a"], "b");
        assert_eq!(
            std::fs::read(vols.path("data1").join("f")).unwrap(),
            b"12345"
        );
        assert!(vols.remove("data1", false).unwrap());
        assert!(!dir.path().join("volumes/data1").exists());
        assert_eq!(
            vols.remove("data1", false).unwrap_err().to_string(),
            "get data1: no such volume"
        );
        assert!(!vols.remove("data1", true).unwrap());
        let e = vols.create("x1", "nfsplugin", None, None).unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        // A crash mid-create leaves only a temporary directory, swept at start.
        std::fs::create_dir(dir.path().join("volumes/.tmp-dead")).unwrap();
        drop(vols);
        let vols = Volumes::open(dir.path()).unwrap();
        assert!(!dir.path().join("volumes/.tmp-dead").exists());
        assert!(vols.list().is_empty());
    }
}
