//! `POST /containers/{id}/update` (`docker update`): changes to a container's
//! HostConfig after create, on running and stopped containers, persisted.
//!
//! The body is Docker's `UpdateConfig`: the resource fields plus `RestartPolicy`.
//! Clients send every field, mostly at zero, and zero means "leave as it is". The
//! restart policy is applied; a resource field with a value is refused with a 501
//! naming it, so that nothing asked for is silently ignored.

use std::sync::Arc;

use serde_json::{Value, json};

use super::restart::Policy;
use super::settings;
use crate::engine::{Engine, Error, Result};

impl Engine {
    /// Applies an update.
    pub async fn container_update(self: &Arc<Self>, name: &str, body: Value) -> Result<()> {
        let h = self.containers.get(name)?;
        let Value::Object(body) = body else {
            return Err(Error::invalid(
                "invalid JSON: the update config must be an object",
            ));
        };
        for (k, v) in &body {
            if k != "RestartPolicy" && !settings::is_unset(k, v) {
                return Err(settings::not_supported(k));
            }
        }
        let _op = h.op.lock().await;
        let given = body.get("RestartPolicy");
        let name_given = given
            .and_then(|rp| rp.get("Name"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if name_given {
            let policy = Policy::from_host_config(given)?;
            if h.record().settings.auto_remove && !policy.is_none() {
                return Err(Error::conflict(format!(
                    "Cannot update container {}: Restart policy cannot be updated because AutoRemove is enabled for the container",
                    h.id
                )));
            }
            let stored = json!({
                "Name": given.and_then(|rp| rp.get("Name")).cloned().unwrap_or_default(),
                "MaximumRetryCount": match policy {
                    Policy::OnFailure(n) => n,
                    _ => 0,
                },
            });
            h.update_host_config(|hc, s| {
                hc.insert("RestartPolicy".into(), stored);
                s.restart_policy = policy;
            })
            .await?;
        }
        let attrs = self.container_attributes(&h.record().container);
        self.events.emit("container", "update", &h.id, attrs);
        Ok(())
    }
}
