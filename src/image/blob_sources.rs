//! Where a layer is known to exist as a registry blob: for each diff ID, the
//! compressed blobs it was pulled from or pushed as, with their registry and
//! repository (`image/distribution/<diff-id hex>.json`). A push consults it to
//! answer "Layer already exists" or to mount the blob from another repository
//! instead of uploading it again, and so pushes a pulled layer as the very blob it
//! came from.
//!
//! What it records is a fact about content (this tar stream, compressed, is that
//! blob), so entries stay true after the layer is removed and is pulled again.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{Result, digest};

/// At most this many sources are kept per layer (the newest).
const KEEP: usize = 16;

/// One place a layer's blob lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSource {
    /// The compressed blob's digest.
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    /// `localhost:5000`, `docker.io`.
    pub registry: String,
    /// The repository path: `library/busybox`.
    pub repository: String,
}

/// The per-layer source files.
pub struct BlobSources {
    dir: PathBuf,
    /// Serializes read-modify-write of a file.
    lock: Mutex<()>,
}

impl BlobSources {
    pub fn new(image_root: &std::path::Path) -> BlobSources {
        BlobSources {
            dir: image_root.join("distribution"),
            lock: Mutex::new(()),
        }
    }

    fn path(&self, diff_id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", digest::encoded(diff_id)))
    }

    /// The sources of `diff_id`, newest first (none when nothing is recorded or
    /// the file is unreadable: the push then uploads).
    pub fn get(&self, diff_id: &str) -> Vec<BlobSource> {
        std::fs::read(self.path(diff_id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records that `diff_id` is the blob `src` (crash-safe; the newest first).
    pub fn add(&self, diff_id: &str, src: BlobSource) -> Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.get(diff_id);
        if all.first() == Some(&src) {
            return Ok(());
        }
        all.retain(|s| s != &src);
        all.insert(0, src);
        all.truncate(KEEP);
        crate::store::create_private_dir(&self.dir)?;
        crate::store::write_json(&self.path(diff_id), &all)?;
        Ok(())
    }

    /// The blob digest `diff_id` has in `registry`/`repository`, if known.
    pub fn find(&self, diff_id: &str, registry: &str, repository: &str) -> Option<BlobSource> {
        self.get(diff_id)
            .into_iter()
            .find(|s| s.registry == registry && s.repository == repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_persist_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobSources::new(dir.path());
        let diff = format!("sha256:{}", "a".repeat(64));
        assert!(s.get(&diff).is_empty());
        let src = |repo: &str| BlobSource {
            digest: format!("sha256:{}", "b".repeat(64)),
            media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
            size: 10,
            registry: "localhost:5000".into(),
            repository: repo.into(),
        };
        s.add(&diff, src("a")).unwrap();
        s.add(&diff, src("b")).unwrap();
        s.add(&diff, src("a")).unwrap();
        let got = s.get(&diff);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].repository, "a");
        assert_eq!(
            s.find(&diff, "localhost:5000", "b").unwrap().repository,
            "b"
        );
        assert!(s.find(&diff, "other:5000", "b").is_none());
    }
}
