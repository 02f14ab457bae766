//! `docker pause` / `docker unpause`: the container's processes frozen and thawed
//! with the cgroup freezer (v1 `freezer.state`, v2 `cgroup.freeze`).
//!
//! A paused container is still running (`State.Running` and `State.Paused`, status
//! `paused`, `Up 2 minutes (Paused)`). As with Docker, exec into it is refused, a
//! signal other than SIGKILL thaws it so the process can handle the signal (a
//! `docker stop` then proceeds as usual), and SIGKILL ends it (the cgroup is
//! thawed behind it, as runc does, without an `unpause`).

use std::sync::Arc;

use super::Handle;
use crate::engine::{Engine, Error, Result};

impl Engine {
    /// `POST /containers/{id}/pause`.
    pub async fn container_pause(self: &Arc<Self>, name: &str) -> Result<()> {
        let h = self.containers.get(name)?;
        let _op = h.op.lock().await;
        let s = h.record().container.state.clone();
        if !s.running {
            return Err(Error::conflict(format!(
                "Container {} is not running",
                h.id
            )));
        }
        if s.paused {
            return Err(Error::conflict(format!(
                "Container {} is already paused",
                h.id
            )));
        }
        if s.restarting {
            return Err(Error::conflict(format!(
                "Container {} is restarting, wait until the container is running",
                h.id
            )));
        }
        self.freeze(&h, true)
            .await
            .map_err(|e| Error::internal(format!("Cannot pause container {}: {e}", h.id)))?;
        h.update(|c| c.state.paused = true).await?;
        let attrs = self.container_attributes(&h.record().container);
        self.events.emit("container", "pause", &h.id, attrs);
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn container_unpause(self: &Arc<Self>, name: &str) -> Result<()> {
        let h = self.containers.get(name)?;
        let _op = h.op.lock().await;
        let s = h.record().container.state.clone();
        if !s.paused {
            return Err(Error::conflict(format!("Container {} is not paused", h.id)));
        }
        if !s.running {
            return Err(Error::conflict(format!(
                "Container {} is not running",
                h.id
            )));
        }
        self.thaw(&h).await
    }

    /// Thaws a paused container: state, `unpause` event.
    pub(super) async fn thaw(self: &Arc<Self>, h: &Arc<Handle>) -> Result<()> {
        self.freeze(h, false)
            .await
            .map_err(|e| Error::internal(format!("Cannot unpause container {}: {e}", h.id)))?;
        h.update(|c| c.state.paused = false).await?;
        let attrs = self.container_attributes(&h.record().container);
        self.events.emit("container", "unpause", &h.id, attrs);
        Ok(())
    }

    /// Lets a SIGKILL sent to a paused container take effect (a frozen process
    /// would keep it pending); the exit then records the container as not paused.
    pub(super) async fn unfreeze_for_kill(self: &Arc<Self>, h: &Arc<Handle>) {
        if let Err(e) = self.freeze(h, false).await {
            tracing::warn!(container_id = %h.id, "failed to thaw the killed container: {e}");
        }
    }

    async fn freeze(self: &Arc<Self>, h: &Handle, frozen: bool) -> std::io::Result<()> {
        let engine = self.clone();
        let path = h.record().cgroup_path();
        tokio::task::spawn_blocking(move || engine.runtime.freeze(&path, frozen))
            .await
            .map_err(std::io::Error::other)?
    }
}
