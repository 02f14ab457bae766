//! `docker pull` (`POST /images/create?fromImage=…`): resolve the reference to a
//! manifest (narrowing a list or index to this platform), fetch and verify the
//! image config, download the layers the store lacks (in parallel, shared with
//! other pulls), and commit the image with its tag and digest references in one
//! step. Progress is Docker's message stream.
//!
//! Errors before `Pulling from` (the registry unreachable, the tag unknown,
//! credentials refused) are the request's HTTP error; later ones are the stream's
//! last message. Endpoints are tried in order (mirrors, HTTPS, plain HTTP for an
//! insecure registry): one that cannot be reached gives way to the next, and so
//! does a mirror that fails in any way before the pull starts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, header::ACCEPT, header::CONTENT_TYPE};
use tokio::task::JoinSet;

use super::auth::AuthConfig;
use super::client::{self, Endpoint, Failure, Session, read_limited};
use super::download::{Phase, Shared};
use super::manifest::{self, Descriptor, Fetched, ImageManifest};
use super::progress::Progress;
use crate::config::RegistryConfig;
use crate::engine::{Engine, Error, Result};
use crate::image::blob_sources::BlobSource;
use crate::image::import::Platform;
use crate::image::reference::{self, Reference};
use crate::image::{ImageJson, digest};

/// Largest manifest accepted (as Docker: 4 MiB).
const MANIFEST_LIMIT: usize = 4 << 20;
/// Largest image config accepted.
const CONFIG_LIMIT: usize = 8 << 20;

/// What `POST /images/create?fromImage=…` asks for.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    pub from_image: String,
    /// A tag or a digest; empty pulls every tag when `from_image` names neither.
    pub tag: String,
    /// `os[/arch[/variant]]`; the host's platform when absent.
    pub platform: Option<String>,
    pub auth: AuthConfig,
}

/// The parsed request.
pub(super) struct Request {
    reference: Reference,
    platform: Platform,
    /// `--platform` was given (a single-platform image of another platform is
    /// then pulled with a warning).
    explicit_platform: bool,
    auth: AuthConfig,
    pub config: RegistryConfig,
}

impl Request {
    /// A request for `reference` on this host's platform.
    pub fn new(reference: Reference, auth: AuthConfig, config: RegistryConfig) -> Request {
        Request {
            reference,
            platform: Platform::linux(crate::engine::system::goarch()),
            explicit_platform: false,
            auth,
            config,
        }
    }
}

/// Docker's reading of `fromImage` and `tag`.
pub fn pull_reference(from_image: &str, tag: &str) -> Result<Reference> {
    let from = from_image.trim_end_matches(':');
    let r = reference::parse_normalized(from)?;
    if r.path == "library/scratch" && r.domain == reference::DEFAULT_DOMAIN {
        return Err(Error::Forbidden("'scratch' is a reserved name".into()));
    }
    if tag.is_empty() {
        return Ok(r);
    }
    let bare = Reference {
        tag: None,
        digest: None,
        ..r
    };
    if let Some(hex) = tag.strip_prefix("sha256:") {
        if !digest::is_hex64(hex) {
            return Err(Error::invalid(format!("invalid digest format: {tag}")));
        }
        return Ok(Reference {
            digest: Some(tag.to_string()),
            ..bare
        });
    }
    bare.with_tag(tag)
}

/// Where one pull stands after its manifest is fetched.
pub(super) struct Resolved {
    pub session: Session,
    /// The digest of what the reference names (a list's, for a list).
    pub digest: String,
    /// Its media type and length.
    pub media_type: String,
    pub size: usize,
    pub document: Fetched,
}

/// Why resolving on one endpoint failed, and whether the next may be tried.
pub(super) struct ResolveError {
    pub error: Error,
    /// The endpoint could not be reached at all (or is a mirror): try the next.
    pub fallback: bool,
}

impl Engine {
    /// Pulls `opts`, reporting on `progress`. A refusal of credentials is a 500,
    /// as Docker answers it: the docker CLI meets a 401 from a pull by prompting
    /// for a login, which a script or a pipe cannot answer.
    pub async fn image_pull(&self, opts: PullOptions, progress: Progress) -> Result<()> {
        self.pull_inner(opts, progress).await.map_err(|e| match e {
            Error::Unauthorized(m) => Error::Internal(m),
            e => e,
        })
    }

    async fn pull_inner(&self, opts: PullOptions, progress: Progress) -> Result<()> {
        let reference = pull_reference(&opts.from_image, &opts.tag)?;
        let arch = crate::engine::system::goarch();
        let (platform, explicit_platform) = match opts.platform.as_deref().filter(|p| !p.is_empty())
        {
            Some(p) => (Platform::parse(&p.to_lowercase(), arch)?, true),
            None => (Platform::linux(arch), false),
        };
        let req = Request {
            reference,
            platform,
            explicit_platform,
            auth: opts.auth,
            config: self.config().registry.clone(),
        };
        let endpoints = client::endpoints(&req.reference.domain, &req.config).await?;
        let r = &req.reference;
        let mut changed = false;
        if r.is_name_only() {
            let tags = self.list_tags(&endpoints, &req).await?;
            for tag in tags {
                let one = r.with_tag(&tag)?;
                changed |= self
                    .pull_reference(&endpoints, &req, &one, &progress)
                    .await?;
            }
        } else {
            changed = self.pull_reference(&endpoints, &req, r, &progress).await?;
        }
        let shown = r.familiar_string();
        progress.status(&if changed {
            format!("Status: Downloaded newer image for {shown}")
        } else {
            format!("Status: Image is up to date for {shown}")
        });
        let id = self
            .images
            .resolve(&r.to_string())
            .map(|i| i.id)
            .unwrap_or_default();
        let mut labels = self.labels_of(&id).unwrap_or_default();
        labels.insert("name".into(), r.familiar_name());
        self.events.emit("image", "pull", &shown, labels);
        Ok(())
    }

    /// Every tag of the repository (`docker pull --all-tags`).
    async fn list_tags(&self, endpoints: &[Endpoint], req: &Request) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let r = &req.reference;
        let mut last = None;
        for ep in endpoints {
            let mut session = match self.open_session(ep, req, false).await {
                Ok(s) => s,
                Err(e) if e.fallback => {
                    last = Some(e.error);
                    continue;
                }
                Err(e) => return Err(e.error),
            };
            let url = session.url("tags/list")?;
            let resp = match session.send(Method::GET, url, |rb| rb).await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            if !resp.status().is_success() {
                let f = Failure::of(resp).await;
                if ep.mirror {
                    last = Some(Error::internal(f.text));
                    continue;
                }
                return Err(translate(&f, r));
            }
            let body = read_limited(resp, MANIFEST_LIMIT).await?;
            let tags: Tags = serde_json::from_slice(&body)
                .map_err(|e| Error::internal(format!("invalid tag list from the registry: {e}")))?;
            let mut tags = tags.tags.unwrap_or_default();
            tags.sort();
            tags.retain(|t| reference::valid_tag(t));
            return Ok(tags);
        }
        Err(last.unwrap_or_else(|| Error::internal("no registry endpoint to pull from")))
    }

    async fn open_session(
        &self,
        ep: &Endpoint,
        req: &Request,
        push: bool,
    ) -> std::result::Result<Session, ResolveError> {
        Session::open(
            &self.registries.clients,
            &req.config,
            ep.clone(),
            &req.reference.path,
            req.auth.clone(),
            push,
        )
        .await
        .map_err(|error| ResolveError {
            fallback: ep.mirror || matches!(error, Error::Internal(_)),
            error,
        })
    }

    /// Pulls one tag or digest; returns whether anything changed (layers
    /// downloaded, a reference moved).
    async fn pull_reference(
        &self,
        endpoints: &[Endpoint],
        req: &Request,
        r: &Reference,
        progress: &Progress,
    ) -> Result<bool> {
        let mut last = None;
        for ep in endpoints {
            match self.resolve(ep, req, r).await {
                Ok(resolved) => return self.pull_resolved(req, r, resolved, progress).await,
                Err(e) if e.fallback => {
                    tracing::debug!(
                        "pull of {r} from {}: {}; trying the next endpoint",
                        ep.url,
                        e.error
                    );
                    last = Some(e.error);
                }
                Err(e) => return Err(e.error),
            }
        }
        Err(last.unwrap_or_else(|| Error::internal("no registry endpoint to pull from")))
    }

    /// Fetches the manifest `r` names from `ep`.
    pub(super) async fn resolve(
        &self,
        ep: &Endpoint,
        req: &Request,
        r: &Reference,
    ) -> std::result::Result<Resolved, ResolveError> {
        let mut session = self.open_session(ep, req, false).await?;
        let fail = |error: Error, fallback: bool| ResolveError {
            error,
            fallback: fallback || ep.mirror,
        };
        let wanted = r
            .digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_default();
        let (bytes, content_type) = fetch_manifest(&mut session, &wanted, r)
            .await
            .map_err(|(e, transport)| fail(e, transport))?;
        let digest = digest::sha256_of(&bytes);
        if let Some(want) = &r.digest
            && *want != digest
        {
            return Err(fail(
                Error::internal(format!("manifest verification failed for digest {want}")),
                false,
            ));
        }
        let document =
            manifest::parse(&bytes, &content_type, &r.to_string()).map_err(|e| fail(e, false))?;
        let declared = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .filter(|m| !m.is_empty());
        let media_type = declared.unwrap_or_else(|| {
            content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        });
        Ok(Resolved {
            session,
            digest,
            media_type,
            size: bytes.len(),
            document,
        })
    }

    /// Everything after the manifest: the stream has begun.
    async fn pull_resolved(
        &self,
        req: &Request,
        r: &Reference,
        resolved: Resolved,
        progress: &Progress,
    ) -> Result<bool> {
        let Resolved {
            mut session,
            digest: top_digest,
            document,
            ..
        } = resolved;
        let id_for = match &r.tag {
            Some(t) if r.digest.is_none() => t.clone(),
            _ => r.to_string(),
        };
        progress.id_status(&id_for, &format!("Pulling from {}", r.path));
        let (image, single) = match document {
            Fetched::Image(m) => (*m, true),
            Fetched::Index(index) => {
                let entry = manifest::select(&index, &req.platform)?;
                let (bytes, ct) = fetch_manifest(&mut session, &entry.digest, r)
                    .await
                    .map_err(|(e, _)| e)?;
                if digest::sha256_of(&bytes) != entry.digest {
                    return Err(Error::internal(format!(
                        "manifest verification failed for digest {}",
                        entry.digest
                    )));
                }
                match manifest::parse(&bytes, &ct, &r.to_string())? {
                    Fetched::Image(m) => (*m, false),
                    Fetched::Index(_) => {
                        return Err(Error::invalid(format!(
                            "the manifest list of {} names another list for {}; nested lists are not supported",
                            r.familiar_string(),
                            entry.digest
                        )));
                    }
                }
            }
        };
        check_manifest(&image)?;
        let raw = fetch_config(&mut session, &image.config).await?;
        let json = checked_config(&raw, &image)?;
        if req.explicit_platform && single {
            let p = &req.platform;
            if json.os() != p.os
                || json.architecture != p.architecture
                || (!p.variant.is_empty() && json.variant != p.variant)
            {
                progress.status(&format!(
                    "WARNING: image with reference {} was found but its platform ({}) does not match the specified platform ({})",
                    r.familiar_string(),
                    platform_string(json.os(), &json.architecture, &json.variant),
                    platform_string(&p.os, &p.architecture, &p.variant),
                ));
            }
        }
        let image_id = image.config.digest.clone();
        let diff_ids = json.diff_ids().to_vec();

        // Layers the store lacks, each downloaded once however often it appears.
        let attempts = req.config.max_download_attempts;
        let mut needed: Vec<(String, Arc<Shared>)> = Vec::new();
        // (diff ID, blob digest) pairs this pull verified by downloading them.
        let mut downloaded: HashSet<(String, String)> = HashSet::new();
        let mut watchers = JoinSet::new();
        let present = self.images.config_bytes(&image_id).is_some()
            && diff_ids.iter().all(|d| self.images.has_layer(d));
        if !present {
            let mut announced = HashSet::new();
            for (desc, diff_id) in image.layers.iter().zip(&diff_ids) {
                let short = digest::short(&desc.digest).to_string();
                if !announced.insert(desc.digest.clone()) {
                    continue;
                }
                if self.images.has_layer(diff_id) {
                    progress.layer(&short, "Already exists");
                    continue;
                }
                progress.layer(&short, "Pulling fs layer");
                let shared = self
                    .registries
                    .download(desc, &session, &self.images, attempts);
                needed.push((diff_id.clone(), shared.clone()));
                downloaded.insert((diff_id.clone(), desc.digest.clone()));
                watchers.spawn(watch_layer(
                    short,
                    shared,
                    diff_id.clone(),
                    progress.clone(),
                ));
            }
        }
        while let Some(done) = watchers.join_next().await {
            done.map_err(|e| Error::internal(format!("layer download: {e}")))??;
        }

        // Commit: adopt the unpacked layers and add the image and its references.
        let mut refs = Vec::new();
        if r.digest.is_none() {
            refs.push(r.clone());
        }
        refs.push(Reference {
            tag: None,
            digest: Some(top_digest.clone()),
            ..r.clone()
        });
        let _one_at_a_time = self.registries.commit.lock().await;
        let mut prepared = Vec::new();
        for (diff_id, shared) in &needed {
            let slot = shared
                .layer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            match slot {
                Some(p) => prepared.push(p),
                None if self.images.has_layer(diff_id) => {}
                None => {
                    return Err(Error::conflict(format!(
                        "layer {diff_id} was removed while the image was being pulled; try again"
                    )));
                }
            }
        }
        let images = self.images.clone();
        let sources: Vec<(String, BlobSource)> = image
            .layers
            .iter()
            .zip(&diff_ids)
            .map(|(d, diff_id)| {
                (
                    diff_id.clone(),
                    BlobSource {
                        digest: d.digest.clone(),
                        media_type: d.media_type.clone(),
                        size: u64::try_from(d.size).unwrap_or(0),
                        registry: r.domain.clone(),
                        repository: r.path.clone(),
                    },
                )
            })
            .collect();
        let engine_sources = self.registries.sources.clone();
        let (_, changed) = tokio::task::spawn_blocking(move || {
            let out = images.add_image(&raw, prepared, &refs)?;
            for (diff_id, src) in sources {
                // A layer that was already here is recorded as this blob only when
                // the pair was verified before: the manifest's word alone does not
                // make a blob the layer (a push would send it as one).
                let verified = downloaded.contains(&(diff_id.clone(), src.digest.clone()))
                    || engine_sources
                        .get(&diff_id)
                        .iter()
                        .any(|s| s.digest == src.digest);
                if !verified {
                    continue;
                }
                if let Err(e) = engine_sources.add(&diff_id, src) {
                    tracing::warn!("cannot record the registry source of layer {diff_id}: {e}");
                }
            }
            Ok::<_, Error>(out)
        })
        .await
        .map_err(|e| Error::internal(format!("committing the pulled image: {e}")))??;
        progress.status(&format!("Digest: {top_digest}"));
        Ok(changed || !needed.is_empty())
    }
}

/// GETs a manifest by tag or digest. The error says whether the registry could not
/// be reached (`true`: another endpoint may serve).
async fn fetch_manifest(
    session: &mut Session,
    wanted: &str,
    r: &Reference,
) -> std::result::Result<(bytes::Bytes, String), (Error, bool)> {
    let url = session
        .url(&format!("manifests/{wanted}"))
        .map_err(|e| (e, false))?;
    let accept = manifest::accept_header();
    let resp = session
        .send(Method::GET, url.clone(), |rb| {
            rb.header(ACCEPT, accept.as_str())
        })
        .await
        .map_err(|e| (e, true))?;
    if !resp.status().is_success() {
        let f = Failure::of(resp).await;
        return Err((translate(&f, r), false));
    }
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = read_limited(resp, MANIFEST_LIMIT)
        .await
        .map_err(|e| (e, false))?;
    Ok((bytes, ct))
}

/// Docker's `translatePullError`: registry error codes in the words users know.
fn translate(f: &Failure, r: &Reference) -> Error {
    match f.code.as_str() {
        "DENIED" => Error::not_found(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': {f}",
            r.familiar_name()
        )),
        "MANIFEST_UNKNOWN" => Error::not_found(format!(
            "manifest for {} not found: {f}",
            r.familiar_string()
        )),
        "NAME_UNKNOWN" => {
            Error::not_found(format!("repository {} not found: {f}", r.familiar_name()))
        }
        "UNAUTHORIZED" => Error::Unauthorized(f.text.clone()),
        _ if f.status == StatusCode::NOT_FOUND => Error::not_found(f.text.clone()),
        _ => Error::internal(f.text.clone()),
    }
}

/// Refuses what this daemon does not unpack, before anything is downloaded.
fn check_manifest(m: &ImageManifest) -> Result<()> {
    match m.config.media_type.as_str() {
        manifest::DOCKER_CONFIG | manifest::OCI_CONFIG | "" => {}
        other => {
            return Err(Error::invalid(format!(
                "unsupported media type {other} (the image config of this manifest is not a container image)"
            )));
        }
    }
    if m.layers.is_empty() {
        return Err(Error::invalid("the manifest has no layers"));
    }
    for l in &m.layers {
        manifest::check_layer_type(&l.media_type)?;
        digest::parse(&l.digest)
            .map_err(|e| Error::invalid(format!("invalid layer digest: {e}")))?;
    }
    digest::parse(&m.config.digest)
        .map_err(|e| Error::invalid(format!("invalid config digest: {e}")))?;
    Ok(())
}

/// GETs the image config and checks it against its digest (a few quick retries
/// for a connection that drops).
pub(super) async fn fetch_config(session: &mut Session, desc: &Descriptor) -> Result<Vec<u8>> {
    let url = session.url(&format!("blobs/{}", desc.digest))?;
    let mut last = String::new();
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 << (attempt - 1))).await;
        }
        let resp = match session.send(Method::GET, url.clone(), |rb| rb).await {
            Ok(r) => r,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        if !resp.status().is_success() {
            let f = Failure::of(resp).await;
            last = f.text.clone();
            if f.status.is_server_error() {
                continue;
            }
            break;
        }
        let body = match read_limited(resp, CONFIG_LIMIT).await {
            Ok(b) => b,
            Err(e @ Error::InvalidParameter(_)) => {
                return Err(Error::invalid(format!(
                    "error pulling image configuration: {e}"
                )));
            }
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        if digest::sha256_of(&body) != desc.digest {
            return Err(Error::invalid(format!(
                "error pulling image configuration: image config verification failed for digest {}",
                desc.digest
            )));
        }
        return Ok(body.to_vec());
    }
    Err(Error::internal(format!(
        "error pulling image configuration: download failed after attempts=5: {last}"
    )))
}

/// The config must be a Linux image whose layers are the manifest's.
fn checked_config(raw: &[u8], m: &ImageManifest) -> Result<ImageJson> {
    let json = ImageJson::parse(raw, &m.config.digest)?;
    let Some(rootfs) = &json.rootfs else {
        return Err(Error::invalid("invalid rootfs in image configuration"));
    };
    if rootfs.kind != "layers" {
        return Err(Error::invalid("invalid rootfs in image configuration"));
    }
    if json.os() != "linux" {
        return Err(Error::invalid(format!(
            "image operating system \"{}\" cannot be used on this platform",
            json.os()
        )));
    }
    if json.diff_ids().len() != m.layers.len() {
        return Err(Error::invalid(
            "layers from manifest don't match image configuration",
        ));
    }
    for d in json.diff_ids() {
        digest::parse(d)
            .map_err(|e| Error::invalid(format!("invalid diff ID in image configuration: {e}")))?;
    }
    Ok(json)
}

fn platform_string(os: &str, arch: &str, variant: &str) -> String {
    if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    }
}

/// Reports one layer's download as its [`Phase`] changes, until it is done.
async fn watch_layer(
    id: String,
    shared: Arc<Shared>,
    expected: String,
    progress: Progress,
) -> Result<()> {
    let mut rx = shared.phase.clone();
    let mut total = 0;
    loop {
        let phase = rx.borrow_and_update().clone();
        match phase {
            Phase::Queued => {}
            Phase::Waiting => progress.layer(&id, "Waiting"),
            Phase::Downloading { current, total: t } => {
                total = t;
                progress.bytes(&id, "Downloading", current, t);
            }
            Phase::Retrying { secs } => {
                let s = if secs == 1 { "" } else { "s" };
                progress.layer(&id, &format!("Retrying in {secs} second{s}"));
            }
            Phase::Done { diff_id } => {
                if diff_id != expected {
                    return Err(Error::invalid(
                        "layers from manifest don't match image configuration",
                    ));
                }
                progress.layer(&id, "Verifying Checksum");
                progress.layer(&id, "Download complete");
                progress.bytes(&id, "Extracting", total, total);
                progress.layer(&id, "Pull complete");
                return Ok(());
            }
            Phase::Failed(msg) => return Err(Error::internal(msg)),
        }
        if rx.changed().await.is_err() {
            let last = rx.borrow().clone();
            if matches!(last, Phase::Done { .. } | Phase::Failed(_)) {
                continue;
            }
            return Err(Error::internal(format!(
                "the download of layer {id} stopped"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_as_docker_reads_them() {
        let r = pull_reference("docker.io/library/busybox", "latest").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = pull_reference("localhost:5000/a/b:", "1.0").unwrap();
        assert_eq!(r.to_string(), "localhost:5000/a/b:1.0");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = pull_reference("busybox", &d).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert!(r.tag.is_none());
        assert!(pull_reference("busybox", "").unwrap().is_name_only());
        let e = pull_reference("scratch", "latest").unwrap_err();
        assert_eq!(e.to_string(), "'scratch' is a reserved name");
        assert!(pull_reference("busybox", "sha256:zz").is_err());
        assert!(pull_reference("Busybox", "latest").is_err());
    }
}
