//! `GET /distribution/{name}/json` (`docker buildx imagetools`-style lookups,
//! compose's digest pinning): what a registry holds for a reference, without
//! pulling it — the manifest's descriptor and the platforms it serves.

use serde_json::{Value, json};

use super::auth::AuthConfig;
use super::client;
use super::manifest::{self, Fetched};
use crate::engine::{Engine, Error, Result};
use crate::image::reference;

impl Engine {
    /// The descriptor and platforms of what `name` names in its registry.
    pub async fn distribution_inspect(&self, name: &str, auth: AuthConfig) -> Result<Value> {
        let r = reference::parse_normalized(name)?.with_default_tag();
        let req = super::pull::Request::new(r.clone(), auth, self.config().registry.clone());
        let endpoints = client::endpoints(&r.domain, &req.config).await?;
        let mut last = None;
        for ep in &endpoints {
            let resolved = match self.resolve(ep, &req, &r).await {
                Ok(x) => x,
                Err(e) if e.fallback => {
                    last = Some(e.error);
                    continue;
                }
                Err(e) => return Err(e.error),
            };
            let descriptor = json!({
                "mediaType": resolved.media_type,
                "digest": resolved.digest,
                "size": resolved.size,
            });
            let platforms = match &resolved.document {
                Fetched::Index(index) => Value::Array(
                    index
                        .manifests
                        .iter()
                        .map(|d| {
                            serde_json::to_value(d.platform.clone().unwrap_or_default())
                                .unwrap_or(Value::Null)
                        })
                        .collect(),
                ),
                Fetched::Image(m) if resolved.media_type == manifest::DOCKER_MANIFEST => {
                    let mut session = resolved.session.clone();
                    let raw = super::pull::fetch_config(&mut session, &m.config).await?;
                    let cfg: Value = serde_json::from_slice(&raw)
                        .map_err(|e| Error::internal(format!("invalid image config: {e}")))?;
                    let field =
                        |k: &str| cfg.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let (os, arch) = (field("os"), field("architecture"));
                    if os.is_empty() && arch.is_empty() {
                        Value::Array(vec![])
                    } else {
                        let mut p = json!({ "architecture": arch, "os": os });
                        for (k, out) in [("os.version", "os.version"), ("variant", "variant")] {
                            let v = field(k);
                            if !v.is_empty() {
                                p[out] = json!(v);
                            }
                        }
                        Value::Array(vec![p])
                    }
                }
                Fetched::Image(_) => Value::Null,
            };
            return Ok(json!({ "Descriptor": descriptor, "Platforms": platforms }));
        }
        Err(last.unwrap_or_else(|| Error::internal("no registry endpoint to ask")))
    }
}
