//! The networks containers can join: `bridge` (until bridge networking exists: a
//! private network namespace with only loopback), `host` and `none`. Enough for
//! `docker network ls` and `docker network inspect`, and honest about what `bridge` is.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Engine, Error, Result};

/// (name, driver) of the built-in networks.
const NETWORKS: &[(&str, &str)] = &[("bridge", "bridge"), ("host", "host"), ("none", "null")];

/// The built-in networks' IDs: stable 64-hex IDs derived from the engine ID, so they
/// stay the same across restarts.
pub fn network_ids(engine_id: &str) -> Vec<(&'static str, String)> {
    NETWORKS
        .iter()
        .map(|(name, _)| {
            let mut h = Sha256::new();
            h.update(engine_id.as_bytes());
            h.update(b"/network/");
            h.update(name.as_bytes());
            (*name, super::hex(&h.finalize()))
        })
        .collect()
}

impl Engine {
    /// The ID of a built-in network (empty for an unknown name).
    pub fn network_id(&self, name: &str) -> &str {
        self.network_ids
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, id)| id.as_str())
    }

    fn network_doc(&self, name: &str, driver: &str, with_containers: bool) -> Value {
        let mut containers = serde_json::Map::new();
        if with_containers {
            for h in self.containers.all() {
                let r = h.record();
                if r.settings.network_name == name && r.container.state.running {
                    containers.insert(
                        h.id.clone(),
                        json!({ "Name": r.container.bare_name(), "EndpointID": "", "MacAddress": "", "IPv4Address": "", "IPv6Address": "" }),
                    );
                }
            }
        }
        let mut options = serde_json::Map::new();
        if name == "bridge" {
            options.insert(
                "io.dockerd.network.note".into(),
                json!("bridge networking is not available yet: each container gets a private network namespace with only the loopback interface"),
            );
        }
        json!({
            "Name": name,
            "Id": self.network_id(name),
            "Created": crate::timefmt::ZERO_TIME,
            "Scope": "local",
            "Driver": driver,
            "EnableIPv4": name == "bridge",
            "EnableIPv6": false,
            "IPAM": { "Driver": "default", "Options": null, "Config": [] },
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": { "Network": "" },
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": {},
        })
    }

    /// `GET /networks`.
    pub fn networks(&self) -> Vec<Value> {
        NETWORKS
            .iter()
            .map(|(n, d)| self.network_doc(n, d, false))
            .collect()
    }

    /// `GET /networks/{id}`: by name, full ID or ID prefix.
    pub fn network(&self, name_or_id: &str) -> Result<Value> {
        for (n, d) in NETWORKS {
            let id = self.network_id(n);
            if *n == name_or_id
                || id == name_or_id
                || (name_or_id.len() >= 3 && id.starts_with(name_or_id))
            {
                return Ok(self.network_doc(n, d, true));
            }
        }
        Err(Error::not_found(format!("network {name_or_id} not found")))
    }
}
