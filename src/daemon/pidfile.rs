//! The pidfile: refuses to start a second daemon on the same state, and disappears on
//! a clean exit.

use std::path::{Path, PathBuf};

/// A pidfile this process wrote; [`PidFile::remove`] deletes it.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Creates `path` (and its directory) holding our PID, unless it names a live
    /// process other than us.
    pub fn create(path: &Path) -> Result<PidFile, String> {
        let fail = |why: String| {
            format!(
                "failed to start daemon, ensure docker is not running or delete {}: {why}",
                path.display()
            )
        };
        if let Ok(content) = std::fs::read_to_string(path) {
            if let Ok(pid) = content.trim().parse::<i32>() {
                let alive = pid > 0
                    && pid != std::process::id() as i32
                    && Path::new(&format!("/proc/{pid}")).exists();
                if alive {
                    return Err(fail(format!("process with PID {pid} is still running")));
                }
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(crate::store::with_path(e, "mkdir", dir).to_string()))?;
        }
        let data = format!("{}", std::process::id());
        crate::store::write_atomic_mode(path, data.as_bytes(), 0o644)
            .map_err(|e| fail(e.to_string()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }

    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("failed to remove pidfile {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_pid_is_refused_stale_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run/docker.pid");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "1").unwrap();
        let err = PidFile::create(&p).unwrap_err();
        assert!(
            err.ends_with("process with PID 1 is still running"),
            "{err}"
        );
        std::fs::write(&p, "999999999").unwrap();
        let f = PidFile::create(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            std::process::id().to_string()
        );
        f.remove();
        assert!(!p.exists());
    }
}
