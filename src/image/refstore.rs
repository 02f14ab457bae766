//! Repository names and tags → image IDs, persisted in Docker's own format
//! (`repositories.json`: `{"Repositories": {"docker.io/library/busybox":
//! {"docker.io/library/busybox:latest": "sha256:…"}}}`), written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reference::{self, Reference};
use super::{Error, Result};

#[derive(Default, Serialize, Deserialize)]
struct OnDisk {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// The tag map: full reference string → image ID.
pub struct RefStore {
    path: PathBuf,
    refs: BTreeMap<String, (Reference, String)>,
}

impl RefStore {
    /// Reads `path` (absent means empty). Unparseable entries are dropped with a warning.
    pub fn open(path: &Path) -> Result<RefStore> {
        let mut refs = BTreeMap::new();
        match std::fs::read(path) {
            Ok(data) => {
                let disk: OnDisk = serde_json::from_slice(&data).map_err(|e| {
                    Error::internal(format!(
                        "{} is corrupt: {e}; move it away to start with no tags",
                        path.display()
                    ))
                })?;
                for (_, repo) in disk.repositories {
                    for (s, id) in repo {
                        match reference::parse_normalized(&s) {
                            Ok(r) => {
                                refs.insert(r.to_string(), (r, id));
                            }
                            Err(e) => tracing::warn!("dropping unreadable tag {s:?}: {e}"),
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::store::with_path(e, "open", path).into()),
        }
        Ok(RefStore {
            path: path.to_path_buf(),
            refs,
        })
    }

    /// The image a tag or digest reference points at.
    pub fn get(&self, r: &Reference) -> Option<&str> {
        self.refs.get(&r.to_string()).map(|(_, id)| id.as_str())
    }

    /// Every reference to `id`, sorted by full name (Docker's order).
    pub fn references(&self, id: &str) -> Vec<Reference> {
        self.refs
            .values()
            .filter(|(_, i)| i == id)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Every reference with its image ID.
    pub fn references_all(&self) -> Vec<(Reference, String)> {
        self.refs.values().cloned().collect()
    }

    /// Every tag and digest reference of the repository `name` (full form).
    pub fn by_name(&self, name: &str) -> Vec<(Reference, String)> {
        self.refs
            .values()
            .filter(|(r, _)| r.name() == name)
            .cloned()
            .collect()
    }

    /// Points `r` at `id`, replacing what it pointed at; returns the previous ID.
    pub fn add(&mut self, r: &Reference, id: &str) -> Result<Option<String>> {
        let key = r.to_string();
        if self.refs.get(&key).is_some_and(|(_, cur)| cur == id) {
            // Already so: nothing to write (as Docker's reference store).
            return Ok(None);
        }
        let prev = self.refs.insert(key.clone(), (r.clone(), id.to_string()));
        if let Err(e) = self.save() {
            match &prev {
                Some(p) => {
                    self.refs.insert(key, p.clone());
                }
                None => {
                    self.refs.remove(&key);
                }
            }
            return Err(e);
        }
        Ok(prev.map(|(_, id)| id).filter(|p| p != id))
    }

    /// Removes `r`; returns whether it existed.
    pub fn remove(&mut self, r: &Reference) -> Result<bool> {
        let key = r.to_string();
        let Some(prev) = self.refs.remove(&key) else {
            return Ok(false);
        };
        if let Err(e) = self.save() {
            self.refs.insert(key, prev);
            return Err(e);
        }
        Ok(true)
    }

    fn save(&self) -> Result<()> {
        let mut disk = OnDisk::default();
        for (key, (r, id)) in &self.refs {
            disk.repositories
                .entry(r.name())
                .or_default()
                .insert(key.clone(), id.clone());
        }
        crate::store::write_json(&self.path, &disk)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_persist_in_dockers_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("repositories.json");
        let mut s = RefStore::open(&p).unwrap();
        let r = reference::parse_normalized("busybox:latest").unwrap();
        assert_eq!(s.add(&r, "sha256:a").unwrap(), None);
        assert_eq!(s.add(&r, "sha256:b").unwrap(), Some("sha256:a".to_string()));
        let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(
            raw["Repositories"]["docker.io/library/busybox"]["docker.io/library/busybox:latest"],
            "sha256:b"
        );
        let s2 = RefStore::open(&p).unwrap();
        assert_eq!(s2.get(&r), Some("sha256:b"));
        assert_eq!(s2.references("sha256:b").len(), 1);
    }
}
