//! The registry client: `docker pull`, `docker push`, `docker login` and
//! `GET /distribution/{name}/json` against registries that speak the OCI
//! distribution API (Docker Hub, the reference `registry`, and the rest).
//!
//! [`client`] talks HTTP (endpoints, TLS, proxies, authentication); [`manifest`]
//! reads manifests; [`download`] fetches layers: each blob streams from the
//! connection through its digest, its decompressor and the unpacker at once, on a
//! blocking thread, while other layers do the same; a blob two pulls need is
//! fetched once. [`pull`], [`push`] and [`login`] are the operations, and
//! [`progress`] the JSON messages they report in.
//!
//! Nothing a pull fetches is visible until it is complete and verified: layers
//! unpack into temporary directories that the image store adopts only when the
//! whole image commits, and sweeps away at start after a crash.

pub mod auth;
pub mod client;
mod download;
pub mod fetch;
mod gzip;
mod inspect;
mod login;
pub mod manifest;
pub mod progress;
mod pull;
mod push;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Semaphore;

use crate::config::RegistryConfig;
use crate::image::blob_sources::BlobSources;

pub use auth::AuthConfig;
pub use pull::PullOptions;
pub use push::PushOptions;

/// Where `certs.d` is: beside the configuration file (`/etc/docker/certs.d` for
/// `/etc/docker/daemon.json`), as Docker keeps it in `/etc/docker`.
pub fn certs_dir(config_file: &std::path::Path) -> PathBuf {
    config_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("/etc/docker"))
        .join("certs.d")
}

/// `docker info`'s `RegistryConfig`: the insecure CIDRs (the configured ones,
/// then loopback), the registries named insecure, and Docker Hub with its mirrors.
pub fn info(config: &RegistryConfig) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut cidrs: Vec<String> = config
        .insecure_registries
        .iter()
        .filter(|i| i.parse::<ipnet::IpNet>().is_ok())
        .cloned()
        .collect();
    cidrs.extend(["::1/128".to_string(), "127.0.0.0/8".to_string()]);
    let mut index = Map::new();
    for name in config
        .insecure_registries
        .iter()
        .filter(|i| i.parse::<ipnet::IpNet>().is_err())
    {
        index.insert(
            name.clone(),
            json!({ "Name": name, "Mirrors": [], "Secure": false, "Official": false }),
        );
    }
    index.insert(
        "docker.io".into(),
        json!({ "Name": "docker.io", "Mirrors": config.mirrors, "Secure": true, "Official": true }),
    );
    json!({
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": Value::Object(index),
        "Mirrors": if config.mirrors.is_empty() { Value::Null } else { json!(config.mirrors) },
    })
}

/// A proxy URL for display, its credentials masked as Docker masks them.
pub fn masked_proxy(url: Option<&str>) -> String {
    let Some(u) = url else {
        return String::new();
    };
    match reqwest::Url::parse(u) {
        Ok(mut p) if !p.username().is_empty() || p.password().is_some() => {
            let _ = p.set_username("xxxxx");
            let _ = p.set_password(Some("xxxxx"));
            p.to_string()
        }
        _ => u.to_string(),
    }
}

/// Shared state of every registry operation.
pub struct Registries {
    clients: Arc<client::Clients>,
    downloads: Limit,
    uploads: Limit,
    /// Layer downloads under way, by blob digest: a second pull of the same blob
    /// joins the first.
    inflight: Mutex<HashMap<String, Weak<download::Shared>>>,
    /// Which registry blobs each layer is known as.
    pub sources: Arc<BlobSources>,
    /// Pulled images commit one at a time, so that a layer two pulls shared is
    /// adopted by the first and found in the store by the second.
    commit: tokio::sync::Mutex<()>,
}

impl Registries {
    pub fn new(
        config: &RegistryConfig,
        certs_dir: PathBuf,
        image_root: &std::path::Path,
    ) -> Registries {
        Registries {
            clients: Arc::new(client::Clients::new(certs_dir)),
            downloads: Limit::new(config.max_concurrent_downloads),
            uploads: Limit::new(config.max_concurrent_uploads),
            inflight: Mutex::new(HashMap::new()),
            sources: Arc::new(BlobSources::new(image_root)),
            commit: tokio::sync::Mutex::new(()),
        }
    }

    /// Applies reloaded concurrency limits.
    pub fn apply(&self, config: &RegistryConfig) {
        self.downloads.resize(config.max_concurrent_downloads);
        self.uploads.resize(config.max_concurrent_uploads);
    }
}

/// A concurrency limit that a reload can change while transfers hold permits.
struct Limit {
    sem: Arc<Semaphore>,
    size: Mutex<usize>,
}

impl Limit {
    fn new(n: usize) -> Limit {
        Limit {
            sem: Arc::new(Semaphore::new(n.max(1))),
            size: Mutex::new(n.max(1)),
        }
    }

    fn resize(&self, n: usize) {
        let n = n.max(1);
        let mut size = self.size.lock().unwrap_or_else(|p| p.into_inner());
        if n > *size {
            self.sem.add_permits(n - *size);
        } else if n < *size {
            // Permits in use are taken back as their transfers end.
            let sem = self.sem.clone();
            let k = (*size - n) as u32;
            tokio::spawn(async move {
                if let Ok(p) = sem.acquire_many_owned(k).await {
                    p.forget();
                }
            });
        }
        *size = n;
    }
}
