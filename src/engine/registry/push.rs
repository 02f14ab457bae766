//! `docker push` (`POST /images/{name}/push`): for each tag, the layers (top-most
//! first, up to `max-concurrent-uploads` at once), then the config, then the
//! manifest.
//!
//! A layer the registry already holds is not sent again: when this daemon knows
//! the layer as a blob of the same repository (it was pulled from or pushed there)
//! a `HEAD` confirms it ("Layer already exists"); when it knows it from another
//! repository of the registry, a cross-repository mount asks the registry to link
//! it ("Mounted from …"). So a pulled layer is pushed as the very blob it came
//! from. Otherwise the layer's tar stream is reassembled from the store, gzipped
//! and uploaded in one streaming `PATCH`, hashed as it goes, and closed with the
//! `PUT` that names its digest.
//!
//! Everything after "The push refers to repository" is reported in the stream.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::json;
use tokio::task::JoinSet;

use super::auth::{self, AuthConfig};
use super::client::{self, Failure, Session};
use super::gzip;
use super::manifest;
use super::progress::Progress;
use crate::engine::{Engine, Error, Result};
use crate::image::blob_sources::{BlobSource, BlobSources};
use crate::image::reference::{self, Reference};
use crate::image::{ImageJson, ImageStore, digest};

/// Attempts per layer upload (Docker's fixed number).
const UPLOAD_ATTEMPTS: u32 = 5;
/// gzip level of uploaded layers (see [`gzip`] for what is not compressed).
const GZIP_LEVEL: u32 = 3;

/// What `POST /images/{name}/push` asks for.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    pub name: String,
    /// Empty: every tag of the repository.
    pub tag: String,
    pub auth: AuthConfig,
}

/// Where the layers of one push go.
#[derive(Clone)]
struct Target {
    session: Session,
    registry: String,
    repository: String,
    images: Arc<ImageStore>,
    sources: Arc<BlobSources>,
    progress: Progress,
}

impl Engine {
    /// Pushes `opts`, reporting on `progress`.
    pub async fn image_push(&self, opts: PushOptions, progress: Progress) -> Result<()> {
        let r = reference::parse_normalized(&opts.name)?;
        if r.digest.is_some() {
            return Err(Error::invalid("cannot push a digest reference"));
        }
        let r = if opts.tag.is_empty() {
            r
        } else {
            Reference { tag: None, ..r }.with_tag(&opts.tag)?
        };
        let config = self.config().registry.clone();
        let endpoints: Vec<_> = client::endpoints(&r.domain, &config)
            .await?
            .into_iter()
            .filter(|e| !e.mirror)
            .collect();
        for ep in &endpoints {
            // A broken certs.d directory is the request's error.
            self.registries.clients.client(ep, &config)?;
        }
        progress.status(&format!("The push refers to repository [{}]", r.name()));

        let tags = self.tags_to_push(&r)?;
        let mut last = None;
        let mut session = None;
        for ep in &endpoints {
            match Session::open(
                &self.registries.clients,
                &config,
                ep.clone(),
                &r.path,
                opts.auth.clone(),
                true,
            )
            .await
            {
                Ok(s) => {
                    session = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(session) = session else {
            return Err(last.unwrap_or_else(|| Error::internal("no registry endpoint to push to")));
        };
        let target = Target {
            session,
            registry: r.domain.clone(),
            repository: r.path.clone(),
            images: self.images.clone(),
            sources: self.registries.sources.clone(),
            progress: progress.clone(),
        };
        for (tag_ref, id) in tags {
            self.push_tag(&target, &tag_ref, &id).await?;
            let mut labels = self.labels_of(&id).unwrap_or_default();
            labels.insert("name".into(), tag_ref.familiar_name());
            self.events
                .emit("image", "push", &tag_ref.familiar_string(), labels);
        }
        Ok(())
    }

    /// The tags a push sends: the one named, or every tag of the repository.
    fn tags_to_push(&self, r: &Reference) -> Result<Vec<(Reference, String)>> {
        let all = self.images.repository_refs(&r.name());
        let missing = || {
            Error::not_found(format!(
                "An image does not exist locally with the tag: {}",
                r.familiar_name()
            ))
        };
        if all.is_empty() {
            return Err(missing());
        }
        if r.tag.is_some() {
            return match all.iter().find(|(x, _)| x == r) {
                Some(found) => Ok(vec![found.clone()]),
                None => Err(Error::not_found(format!(
                    "tag does not exist: {}",
                    r.familiar_string()
                ))),
            };
        }
        let tagged: Vec<_> = all.into_iter().filter(|(x, _)| x.tag.is_some()).collect();
        if tagged.is_empty() {
            return Err(Error::not_found(format!(
                "no tags to push for {}",
                r.familiar_name()
            )));
        }
        Ok(tagged)
    }

    async fn push_tag(&self, t: &Target, tag_ref: &Reference, id: &str) -> Result<()> {
        let raw = self
            .images
            .config_bytes(id)
            .ok_or_else(|| Error::not_found(format!("No such image: {id}")))?;
        let json = ImageJson::parse(&raw, id)?;
        let diff_ids = json.diff_ids().to_vec();
        let mut order: Vec<&String> = Vec::new();
        for d in diff_ids.iter().rev() {
            if !order.contains(&d) {
                order.push(d);
            }
        }
        for d in &order {
            t.progress.layer(digest::short(d), "Preparing");
        }
        let mut uploads = JoinSet::new();
        for d in order {
            let t = t.clone();
            let d = d.clone();
            let slots = self.registries.uploads.sem.clone();
            uploads.spawn(async move {
                let short = digest::short(&d).to_string();
                let _slot = match slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        t.progress.layer(&short, "Waiting");
                        slots
                            .acquire_owned()
                            .await
                            .map_err(|_| Error::internal("the upload slots are gone"))?
                    }
                };
                let desc = push_layer_with_retries(&t, &d).await?;
                Ok::<_, Error>((d, desc))
            });
        }
        let mut pushed: Vec<(String, BlobSource)> = Vec::new();
        while let Some(done) = uploads.join_next().await {
            pushed.push(done.map_err(|e| Error::internal(format!("layer upload: {e}")))??);
        }
        let layers: Vec<BlobSource> = diff_ids
            .iter()
            .map(|d| {
                pushed
                    .iter()
                    .find(|(x, _)| x == d)
                    .map(|(_, s)| s.clone())
                    .ok_or_else(|| Error::internal(format!("layer {d} was not pushed")))
            })
            .collect::<Result<_>>()?;

        let mut session = t.session.clone();
        push_config(&mut session, id, &raw).await?;
        let (media_type, body) = manifest_for(id, raw.len(), &layers);
        let tag = tag_ref.tag.clone().unwrap_or_default();
        let url = session.url(&format!("manifests/{tag}"))?;
        let resp = session
            .send(Method::PUT, url, |rb| {
                rb.header(CONTENT_TYPE, media_type).body(body.clone())
            })
            .await?;
        if !resp.status().is_success() {
            let f = Failure::of(resp).await;
            return Err(push_error(&f));
        }
        let manifest_digest = digest::sha256_of(&body);
        t.progress.status(&format!(
            "{tag}: digest: {manifest_digest} size: {}",
            body.len()
        ));
        t.progress.aux(json!({
            "Tag": tag,
            "Digest": manifest_digest,
            "Size": body.len(),
        }));
        let digest_ref = Reference {
            tag: None,
            digest: Some(manifest_digest),
            ..tag_ref.clone()
        };
        let images = self.images.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || images.add_digest_ref(&digest_ref, &id))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        Ok(())
    }
}

/// The manifest of the pushed image: Docker's schema 2, or an OCI manifest when a
/// layer is known only under an OCI media type (zstd, say). Indented as Docker
/// writes it.
fn manifest_for(
    config_digest: &str,
    config_size: usize,
    layers: &[BlobSource],
) -> (&'static str, Vec<u8>) {
    let oci = layers
        .iter()
        .any(|l| l.media_type.starts_with("application/vnd.oci."));
    let (media_type, config_type) = if oci {
        (manifest::OCI_MANIFEST, manifest::OCI_CONFIG)
    } else {
        (manifest::DOCKER_MANIFEST, manifest::DOCKER_CONFIG)
    };
    let layer_type = |t: &str| -> String {
        match (oci, t) {
            (true, manifest::DOCKER_LAYER_GZIP) | (true, "") => manifest::OCI_LAYER_GZIP.into(),
            (false, "") => manifest::DOCKER_LAYER_GZIP.into(),
            (_, t) => t.to_string(),
        }
    };
    let doc = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": { "mediaType": config_type, "size": config_size, "digest": config_digest },
        "layers": layers.iter().map(|l| json!({
            "mediaType": layer_type(&l.media_type),
            "size": l.size,
            "digest": l.digest,
        })).collect::<Vec<_>>(),
    });
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&doc, &mut ser).unwrap_or_default();
    (media_type, out)
}

/// A registry's refusal of a push, in Docker's words.
fn push_error(f: &Failure) -> Error {
    match f.code.as_str() {
        "UNAUTHORIZED" => Error::Unauthorized(f.text.clone()),
        "DENIED" => Error::Forbidden(f.text.clone()),
        _ => Error::internal(f.text.clone()),
    }
}

/// Pushes the config blob unless the registry has it.
async fn push_config(session: &mut Session, id: &str, raw: &[u8]) -> Result<()> {
    if blob_exists(session, id).await? {
        return Ok(());
    }
    let location = start_upload(session, None).await?.location;
    let url = with_digest(&location, id)?;
    let body = raw.to_vec();
    let resp = session
        .send(Method::PUT, url, |rb| {
            rb.header(CONTENT_TYPE, "application/octet-stream")
                .body(body.clone())
        })
        .await?;
    if !resp.status().is_success() {
        return Err(push_error(&Failure::of(resp).await));
    }
    Ok(())
}

/// Whether the repository has the blob `digest` (`HEAD …/blobs/<digest>`).
async fn blob_exists(session: &mut Session, digest: &str) -> Result<bool> {
    let url = session.url(&format!("blobs/{digest}"))?;
    let resp = session.send(Method::HEAD, url, |rb| rb).await?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(push_error(&Failure::of(resp).await)),
    }
}

/// What `POST …/blobs/uploads/` answered.
struct Started {
    /// 201: the mount succeeded.
    mounted: bool,
    location: Url,
}

/// Starts an upload, or asks for a mount of `mount = (digest, from repository)`.
async fn start_upload(session: &mut Session, mount: Option<(&str, &str)>) -> Result<Started> {
    let mut url = session.url("blobs/uploads/")?;
    if let Some((digest, from)) = mount {
        url.query_pairs_mut()
            .append_pair("from", from)
            .append_pair("mount", digest);
    }
    let resp = session.send(Method::POST, url.clone(), |rb| rb).await?;
    let status = resp.status();
    if status != StatusCode::CREATED && status != StatusCode::ACCEPTED {
        return Err(push_error(&Failure::of(resp).await));
    }
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::internal("the registry started an upload without a Location"))?;
    let location = url
        .join(location)
        .map_err(|e| Error::internal(format!("invalid upload location {location:?}: {e}")))?;
    Ok(Started {
        mounted: status == StatusCode::CREATED,
        location,
    })
}

/// `location` with `digest=<digest>` added to its query.
fn with_digest(location: &Url, digest: &str) -> Result<Url> {
    let mut u = location.clone();
    u.query_pairs_mut().append_pair("digest", digest);
    Ok(u)
}

/// Pushes one layer, retrying a failed transfer after Docker's delays.
async fn push_layer_with_retries(t: &Target, diff_id: &str) -> Result<BlobSource> {
    let short = digest::short(diff_id).to_string();
    let mut attempt = 1;
    loop {
        match push_layer(t, diff_id, &short).await {
            Ok(src) => return Ok(src),
            Err(e) if attempt < UPLOAD_ATTEMPTS && retryable(&e) => {
                tracing::info!("upload of layer {diff_id} failed (attempt {attempt}): {e}");
                for secs in (1..=u64::from(attempt) * 5).rev() {
                    let s = if secs == 1 { "" } else { "s" };
                    t.progress
                        .layer(&short, &format!("Retrying in {secs} second{s}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Transfers that broke may work again; refusals will not.
fn retryable(e: &Error) -> bool {
    matches!(e, Error::Internal(_))
}

async fn push_layer(t: &Target, diff_id: &str, short: &str) -> Result<BlobSource> {
    let mut session = t.session.clone();
    let known: Vec<BlobSource> = t
        .sources
        .get(diff_id)
        .into_iter()
        .filter(|s| s.registry == t.registry)
        .collect();
    // Does this repository already have one of the layer's blobs? (Its own
    // record first, then up to two more blobs known elsewhere on the registry.)
    let mut candidates: Vec<&BlobSource> = Vec::new();
    for s in known
        .iter()
        .filter(|s| s.repository == t.repository)
        .chain(known.iter().filter(|s| s.repository != t.repository))
    {
        if !candidates.iter().any(|c| c.digest == s.digest) {
            candidates.push(s);
        }
    }
    for s in candidates.into_iter().take(3) {
        if blob_exists(&mut session, &s.digest).await? {
            let found = BlobSource {
                repository: t.repository.clone(),
                ..s.clone()
            };
            record(t, diff_id, &found);
            t.progress.layer(short, "Layer already exists");
            return Ok(found);
        }
    }
    // Then a mount from a repository it is known in.
    let mut pending = None;
    for s in known
        .iter()
        .filter(|s| s.repository != t.repository)
        .take(3)
    {
        session
            .add_scope(auth::repository_scope(&s.repository, false))
            .await?;
        match start_upload(&mut session, Some((&s.digest, &s.repository))).await {
            Ok(Started { mounted: true, .. }) => {
                let mounted = BlobSource {
                    repository: t.repository.clone(),
                    ..s.clone()
                };
                record(t, diff_id, &mounted);
                t.progress
                    .layer(short, &format!("Mounted from {}", s.repository));
                return Ok(mounted);
            }
            Ok(started) => {
                pending = Some(started.location);
                break;
            }
            Err(e) => tracing::debug!("mount of {} from {} refused: {e}", s.digest, s.repository),
        }
    }
    let location = match pending {
        Some(l) => l,
        None => start_upload(&mut session, None).await?.location,
    };
    let src = upload(t, &mut session, location, diff_id, short).await?;
    record(t, diff_id, &src);
    t.progress.layer(short, "Pushed");
    Ok(src)
}

fn record(t: &Target, diff_id: &str, src: &BlobSource) {
    if let Err(e) = t.sources.add(diff_id, src.clone()) {
        tracing::warn!("cannot record the registry blob of layer {diff_id}: {e}");
    }
}

/// Streams the layer, gzipped, in one `PATCH`, then closes the upload with its
/// digest.
async fn upload(
    t: &Target,
    session: &mut Session,
    location: Url,
    diff_id: &str,
    short: &str,
) -> Result<BlobSource> {
    let total = t.images.layer_tar_size(diff_id).unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let images = t.images.clone();
    let progress = t.progress.clone();
    let (d, id) = (diff_id.to_string(), short.to_string());
    let writer = tokio::task::spawn_blocking(move || {
        let sink = crate::chunks::ChunkWriter::new(tx.clone());
        let hashing = digest::HashingWriter::new(sink);
        let gz = gzip::LayerGzip::new(hashing, GZIP_LEVEL);
        let mut counted = Counting {
            inner: gz,
            n: 0,
            total,
            last: Instant::now(),
            progress,
            id,
        };
        let r = (|| -> Result<(String, u64)> {
            images.write_layer_tar(&d, &mut counted)?;
            counted.report();
            let hashing = counted.inner.finish()?;
            let (mut sink, digest, len) = hashing.finish();
            sink.flush()?;
            Ok((digest, len))
        })();
        if let Err(e) = &r {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        r
    });
    // The body can be sent once: no retry inside `send` (a 401 here is an error).
    let body = std::sync::Mutex::new(Some(reqwest::Body::wrap(crate::chunks::ChannelBody::new(
        rx,
    ))));
    let resp = session
        .send(Method::PATCH, location, |rb| {
            let b = body.lock().unwrap_or_else(|p| p.into_inner()).take();
            let rb = rb.header(CONTENT_TYPE, "application/octet-stream");
            match b {
                Some(b) => rb.body(b),
                None => rb,
            }
        })
        .await;
    let written = writer
        .await
        .map_err(|e| Error::internal(format!("compressing layer {diff_id}: {e}")))?;
    let resp = resp?;
    let (blob_digest, size) = written?;
    if resp.status() != StatusCode::ACCEPTED && resp.status() != StatusCode::NO_CONTENT {
        return Err(push_error(&Failure::of(resp).await));
    }
    let next = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::internal("the registry accepted the layer without a Location"))?
        .to_string();
    let next = resp
        .url()
        .join(&next)
        .map_err(|e| Error::internal(format!("invalid upload location {next:?}: {e}")))?;
    let url = with_digest(&next, &blob_digest)?;
    let resp = session.send(Method::PUT, url, |rb| rb).await?;
    if !resp.status().is_success() {
        return Err(push_error(&Failure::of(resp).await));
    }
    Ok(BlobSource {
        digest: blob_digest,
        media_type: manifest::DOCKER_LAYER_GZIP.to_string(),
        size,
        registry: t.registry.clone(),
        repository: t.repository.clone(),
    })
}

/// Counts the uncompressed bytes of an upload and reports `Pushing` progress
/// (at most every 100 ms).
struct Counting<W: Write> {
    inner: W,
    n: u64,
    total: u64,
    last: Instant,
    progress: Progress,
    id: String,
}

impl<W: Write> Counting<W> {
    fn report(&mut self) {
        self.progress.bytes(&self.id, "Pushing", self.n, self.total);
        self.last = Instant::now();
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        if self.last.elapsed() >= Duration::from_millis(100) {
            self.report();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_docker_schema2_unless_a_layer_is_oci() {
        let l = |t: &str| BlobSource {
            digest: format!("sha256:{}", "c".repeat(64)),
            media_type: t.into(),
            size: 5,
            registry: "r".into(),
            repository: "p".into(),
        };
        let id = format!("sha256:{}", "d".repeat(64));
        let (t, body) = manifest_for(&id, 10, &[l(manifest::DOCKER_LAYER_GZIP)]);
        assert_eq!(t, manifest::DOCKER_MANIFEST);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["config"]["mediaType"], manifest::DOCKER_CONFIG);
        assert!(String::from_utf8_lossy(&body).contains("\n   \"schemaVersion\": 2"));
        let (t, body) = manifest_for(
            &id,
            10,
            &[l(manifest::DOCKER_LAYER_GZIP), l(manifest::OCI_LAYER_ZSTD)],
        );
        assert_eq!(t, manifest::OCI_MANIFEST);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["layers"][0]["mediaType"], manifest::OCI_LAYER_GZIP);
        assert_eq!(v["layers"][1]["mediaType"], manifest::OCI_LAYER_ZSTD);
    }
}
