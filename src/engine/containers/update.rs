//! `POST /containers/{id}/update` (`docker update`): changes to a container's
//! limits and restart policy after create, on running, paused and stopped
//! containers, persisted.
//!
//! The body is Docker's `UpdateConfig`: the resource fields plus `RestartPolicy`.
//! Clients send every field, mostly at zero, and zero means "leave as it is". The
//! fields given replace the container's; the whole is checked again with Docker's
//! rules, and a running container's cgroup gets the new limits at once. Fields
//! `docker update` cannot change are refused with a 501 naming them, so that
//! nothing asked for is silently ignored.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::restart::Policy;
use super::{resources, settings};
use crate::engine::{Engine, Error, Result};

/// The resource fields an update changes.
const UPDATABLE: &[&str] = &[
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "KernelMemory",
    "NanoCpus",
    "CpuPeriod",
    "CpuQuota",
    "CpuShares",
    "CpusetCpus",
    "CpusetMems",
    "PidsLimit",
    "BlkioWeight",
];

impl Engine {
    /// Applies an update; returns Docker's warnings.
    pub async fn container_update(
        self: &Arc<Self>,
        name: &str,
        body: Value,
    ) -> Result<Vec<String>> {
        let h = self.containers.get(name)?;
        let Value::Object(body) = body else {
            return Err(Error::invalid(
                "invalid JSON: the update config must be an object",
            ));
        };
        let mut changes = Map::new();
        for (k, v) in &body {
            if k == "RestartPolicy" || settings::is_unset(k, v) {
                continue;
            }
            if !UPDATABLE.contains(&k.as_str()) {
                return Err(settings::not_supported(k));
            }
            changes.insert(k.clone(), v.clone());
        }
        let _op = h.op.lock().await;
        let mut warnings = Vec::new();

        let given = body.get("RestartPolicy");
        let name_given = given
            .and_then(|rp| rp.get("Name"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let policy = if name_given {
            let policy = Policy::from_host_config(given)?;
            if h.record().settings.auto_remove && !policy.is_none() {
                return Err(Error::conflict(format!(
                    "Cannot update container {}: Restart policy cannot be updated because AutoRemove is enabled for the container",
                    h.id
                )));
            }
            Some(policy)
        } else {
            None
        };

        let merged = if changes.is_empty() {
            None
        } else {
            let record = h.snapshot();
            let (merged, w) = self.merge_limits(&record, &changes)?;
            warnings = w;
            Some(merged)
        };

        // A running (or paused) container's cgroup first: what the kernel refuses
        // leaves the record as it was.
        let (live, net, ipc) = {
            let r = h.record();
            let s = &r.container.state;
            (
                s.running && !s.restarting,
                r.settings.network_mode.clone(),
                r.settings.ipc_mode.clone(),
            )
        };
        if let Some((_, limits)) = &merged
            && live
        {
            let (update_only, _) = resources::read(
                &changes,
                &crate::init::resources::host_support(),
                &net,
                &ipc,
                true,
            )?;
            let mut r = update_only.resources;
            // The swap the container has stays in step with a new memory limit.
            if r.memory > 0 && r.memory_swap == 0 {
                r.memory_swap = limits.resources.memory_swap;
            }
            let engine = self.clone();
            let path = h.record().cgroup_path();
            if path.ends_with(".scope") {
                self.runtime.update_scope(&path, &r).await.map_err(|e| {
                    Error::internal(format!("Cannot update container {}: {e}", h.id))
                })?;
            }
            tokio::task::spawn_blocking(move || engine.runtime.update_resources(&path, &r))
                .await
                .map_err(|e| Error::internal(e.to_string()))?
                .map_err(|e| {
                    Error::internal(format!(
                        "Cannot update container {}: {}",
                        h.id,
                        crate::store::strip_os_suffix(&e)
                    ))
                })?;
        }

        if policy.is_some() || merged.is_some() {
            let stored_policy = policy.map(|p| {
                json!({
                    "Name": given.and_then(|rp| rp.get("Name")).cloned().unwrap_or_default(),
                    "MaximumRetryCount": match p {
                        Policy::OnFailure(n) => n,
                        _ => 0,
                    },
                })
            });
            h.update_host_config(|hc, s| {
                if let (Some(p), Some(v)) = (policy, stored_policy) {
                    hc.insert("RestartPolicy".into(), v);
                    s.restart_policy = p;
                }
                if let Some((fields, limits)) = merged {
                    for (k, v) in fields {
                        hc.insert(k, v);
                    }
                    s.limits = limits;
                }
            })
            .await?;
        }
        let attrs = self.container_attributes(&h.record().container);
        self.events.emit("container", "update", &h.id, attrs);
        Ok(warnings)
    }

    /// The container's HostConfig fields after the update, and the limits they make,
    /// checked as Docker checks an update.
    #[allow(clippy::type_complexity)]
    fn merge_limits(
        &self,
        r: &super::Record,
        changes: &Map<String, Value>,
    ) -> Result<((Map<String, Value>, resources::Limits), Vec<String>)> {
        let current = |k: &str| r.host_config.get(k).and_then(Value::as_i64).unwrap_or(0);
        let changed = |k: &str| changes.get(k).and_then(Value::as_i64).unwrap_or(0);
        let conflict =
            |m: &str| Error::conflict(format!("Cannot update container {}: {m}", r.container.id));
        if changed("NanoCpus") > 0 && current("CpuPeriod") > 0 {
            return Err(conflict(
                "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
            ));
        }
        if changed("NanoCpus") > 0 && current("CpuQuota") > 0 {
            return Err(conflict(
                "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
            ));
        }
        if changed("CpuPeriod") > 0 && current("NanoCpus") > 0 {
            return Err(conflict(
                "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
            ));
        }
        if changed("CpuQuota") > 0 && current("NanoCpus") > 0 {
            return Err(conflict(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
            ));
        }
        // As Docker: also for a container without a memory limit (no swap limit
        // recorded), so such a container needs --memory-swap with --memory.
        if changed("Memory") != 0
            && changed("MemorySwap") == 0
            && changed("Memory") > current("MemorySwap")
        {
            return Err(conflict(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
            ));
        }
        let mut fields = Map::new();
        for (k, v) in changes {
            // A non-positive PIDs limit is no limit.
            let v = if k == "PidsLimit" && v.as_i64().is_some_and(|n| n <= 0) {
                Value::Null
            } else {
                v.clone()
            };
            fields.insert(k.clone(), v);
        }
        let mut hc = r.host_config.clone();
        for (k, v) in &fields {
            hc.insert(k.clone(), v.clone());
        }
        let (limits, warnings) = resources::read(
            &hc,
            &crate::init::resources::host_support(),
            &r.settings.network_mode,
            &r.settings.ipc_mode,
            true,
        )?;
        resources::check_host(&hc, &limits, crate::engine::system::host_facts().ncpu)?;
        Ok(((fields, limits), warnings))
    }
}
