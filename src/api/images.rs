//! Image endpoints: `/images/create` (import), `/images/load`, `/images/get` and
//! `/images/{name}/get` (save), `/images/json`, `/images/{name}/json`,
//! `/images/{name}/history`, `/images/{name}/tag`, `DELETE /images/{name}` and
//! `/images/prune`.
//!
//! Image names may contain slashes (`team/app:1`), so the routes are matched on the
//! path's suffix, as Docker's router does with `{name:.*}`. Uploads stream from the
//! connection into a blocking reader through a bounded channel, and archives stream
//! back the same way: nothing holds a whole archive in memory.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ApiState, Ctx, ReqBody, Response, body, page_not_found, response};
use crate::engine::images::{ImageListOptions, LoadLine};
use crate::engine::registry::progress::{Progress, error_message, human_size};
use crate::engine::registry::{self, AuthConfig, PullOptions, PushOptions};
use crate::engine::{Error, Result};

pub async fn route(state: &Arc<ApiState>, mut ctx: Ctx) -> Result<Response> {
    let method = ctx.method().clone();
    let path = ctx.path.clone();
    let rest = path
        .trim_start_matches('/')
        .strip_prefix("images")
        .unwrap_or("");
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    match (method, rest) {
        (Method::GET, "json") => list(state, &ctx),
        (Method::POST, "create") => create(state, &mut ctx).await,
        (Method::POST, "load") => load(state, &mut ctx).await,
        (Method::GET, "get") => {
            let names: Vec<String> = ctx.query.get_all("names").map(str::to_string).collect();
            save(state, names).await
        }
        (Method::POST, "prune") => prune(state, &ctx).await,
        (Method::GET, "search") => Err(Error::not_implemented(
            "searching a registry is not supported by this daemon: search the registry's own site or API",
        )),
        (Method::GET, r) if r.ends_with("/json") && r.len() > 5 => {
            let name = &r[..r.len() - 5];
            Ok(response::ok_json(
                &state.engine.image_inspect(name, ctx.version)?,
            ))
        }
        (Method::GET, r) if r.ends_with("/history") && r.len() > 8 => {
            let name = &r[..r.len() - 8];
            Ok(response::ok_json(&state.engine.image_history(name)?))
        }
        (Method::GET, r) if r.ends_with("/get") && r.len() > 4 => {
            save(state, vec![r[..r.len() - 4].to_string()]).await
        }
        (Method::POST, r) if r.ends_with("/tag") && r.len() > 4 => {
            let name = &r[..r.len() - 4];
            let repo = ctx.query.get("repo").unwrap_or("");
            let tag = ctx.query.get("tag").unwrap_or("");
            state.engine.image_tag(name, repo, tag).await?;
            Ok(response::empty(StatusCode::CREATED))
        }
        (Method::POST, r) if r.ends_with("/push") && r.len() > 5 => {
            let opts = PushOptions {
                name: r[..r.len() - 5].to_string(),
                tag: ctx.query.get("tag").unwrap_or("").to_string(),
                auth: registry_auth(&ctx),
            };
            let engine = state.engine.clone();
            progress_stream(move |p| async move { engine.image_push(opts, p).await }).await
        }
        (Method::DELETE, name) if !name.is_empty() => {
            let force = ctx.query.bool("force");
            let noprune = ctx.query.bool("noprune");
            let list = state.engine.image_remove(name, force, noprune).await?;
            Ok(response::ok_json(&list))
        }
        _ => Err(page_not_found()),
    }
}

fn list(state: &Arc<ApiState>, ctx: &Ctx) -> Result<Response> {
    let filters = crate::engine::Filters::parse(ctx.query.get("filters").unwrap_or(""))?;
    let opts = ImageListOptions {
        all: ctx.query.bool("all"),
        filters,
        shared_size: ctx.query.bool("shared-size"),
    };
    Ok(response::ok_json(
        &state.engine.image_list(&opts, ctx.version)?,
    ))
}

/// `POST /images/create`: a pull (`fromImage`), or an import of the request body
/// (`fromSrc=-`); importing from a URL is refused by name.
async fn create(state: &Arc<ApiState>, ctx: &mut Ctx) -> Result<Response> {
    if let Some(img) = ctx.query.get("fromImage").filter(|s| !s.is_empty()) {
        let opts = PullOptions {
            from_image: img.to_string(),
            tag: ctx.query.get("tag").unwrap_or("").to_string(),
            platform: ctx.query.get("platform").map(str::to_string),
            auth: registry_auth(ctx),
        };
        let engine = state.engine.clone();
        return progress_stream(move |p| async move { engine.image_pull(opts, p).await }).await;
    }
    let src = ctx.query.get("fromSrc").unwrap_or("").to_string();
    if src.is_empty() {
        return Err(Error::invalid("either fromImage or fromSrc must be given"));
    }
    if src != "-" {
        return Err(Error::not_implemented(format!(
            "importing from a URL ({src}) is not supported: download the archive and import it from standard input (docker import - < FILE)"
        )));
    }
    let repo = ctx.query.get("repo").unwrap_or("").to_string();
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let message = match ctx.query.get("message").filter(|m| !m.is_empty()) {
        Some(m) => m.to_string(),
        None => format!("Imported from {src}"),
    };
    let changes: Vec<String> = ctx.query.get_all("changes").map(str::to_string).collect();
    let platform = ctx.query.get("platform").map(str::to_string);
    let reader = body_reader(ctx.take_body());
    let id = state
        .engine
        .image_import(reader, &repo, &tag, &message, changes, platform.as_deref())
        .await?;
    let mut line = serde_json::to_vec(&json!({ "status": id })).unwrap_or_default();
    line.push(b'\n');
    Ok(response::with_type(
        StatusCode::OK,
        "application/json",
        Bytes::from(line),
    ))
}

/// Credentials from `X-Registry-Auth`. Like Docker, a header that does not decode
/// means no credentials (an anonymous request), not an error.
pub fn registry_auth(ctx: &Ctx) -> AuthConfig {
    let Some(v) = ctx.header("x-registry-auth") else {
        return AuthConfig::default();
    };
    registry::auth::decode_header(v).unwrap_or_else(|e| {
        tracing::debug!("ignoring X-Registry-Auth: {e}");
        AuthConfig::default()
    })
}

/// Runs a pull or push and answers with its progress. Until the operation says
/// anything, its failure is the HTTP answer (an unknown tag is a 404, an
/// unreachable registry a 500); once the stream has begun, a failure is its last
/// message. A client that goes away cancels the operation.
pub(super) async fn progress_stream<F, Fut>(work: F) -> Result<Response>
where
    F: FnOnce(Progress) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let (ptx, mut prx) = mpsc::unbounded_channel::<Value>();
    let mut task = tokio::spawn(work(Progress::new(ptx)));
    // A client gone before the first message drops this handler: the work stops.
    let mut guard = AbortOnDrop {
        handle: task.abort_handle(),
        armed: true,
    };
    let joined = |r: std::result::Result<Result<()>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(Error::internal(format!("the operation failed: {e}"))))
    };
    let (first, mut outcome) = tokio::select! {
        biased;
        Some(m) = prx.recv() => (m, None),
        r = &mut task => {
            let r = joined(r);
            match prx.try_recv() {
                Ok(m) => (m, Some(r)),
                Err(_) => {
                    r?;
                    return Ok(response::stream("application/json", body::empty()));
                }
            }
        }
    };
    guard.armed = false;
    let (tx, body) = body::channel(64);
    tokio::spawn(async move {
        if tx.send(progress_line(&first)).await.is_err() {
            task.abort();
            return;
        }
        loop {
            tokio::select! {
                m = prx.recv() => match m {
                    Some(m) => {
                        if tx.send(progress_line(&m)).await.is_err() {
                            task.abort();
                            return;
                        }
                    }
                    None => break,
                },
                _ = tx.closed() => {
                    task.abort();
                    return;
                }
            }
        }
        let r = match outcome.take() {
            Some(r) => r,
            None => joined(task.await),
        };
        if let Err(e) = r {
            let _ = tx.send(progress_line(&error_message(&e.to_string()))).await;
        }
    });
    Ok(response::stream("application/json", body))
}

/// Aborts a task when dropped while armed.
struct AbortOnDrop {
    handle: tokio::task::AbortHandle,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.handle.abort();
        }
    }
}

/// One message of a pull or push stream, ended as Docker ends them (`\r\n`).
fn progress_line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

/// `POST /images/load`: always 200; progress, results and errors are stream lines
/// (as Docker answers).
async fn load(state: &Arc<ApiState>, ctx: &mut Ctx) -> Result<Response> {
    let quiet = ctx.query.bool_or("quiet", true);
    let reader = body_reader(ctx.take_body());
    let (tx, body) = body::channel(16);
    let engine = state.engine.clone();
    tokio::spawn(async move {
        let (ltx, mut lrx) = mpsc::unbounded_channel();
        let fut = engine.image_load(reader, quiet, ltx);
        tokio::pin!(fut);
        let result = loop {
            tokio::select! {
                Some(line) = lrx.recv() => {
                    let _ = tx.send(load_line(&line)).await;
                }
                r = &mut fut => break r,
            }
        };
        while let Ok(line) = lrx.try_recv() {
            let _ = tx.send(load_line(&line)).await;
        }
        if let Err(e) = result {
            let _ = tx.send(json_line(&error_message(&e.to_string()))).await;
        }
    });
    Ok(response::stream("application/json", body))
}

fn load_line(l: &LoadLine) -> Bytes {
    match l {
        LoadLine::Stream(s) => json_line(&json!({ "stream": s })),
        LoadLine::Progress { id, status, bytes } => json_line(&json!({
            "status": status,
            "progressDetail": { "current": bytes, "total": bytes },
            "progress": format!("[{}>]  {}/{}", "=".repeat(49), human_size(*bytes), human_size(*bytes)),
            "id": id,
        })),
    }
}

fn json_line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// `GET /images/get` and `GET /images/{name}/get`: names are resolved first (a bad
/// one is a normal error response); then the tar streams.
async fn save(state: &Arc<ApiState>, names: Vec<String>) -> Result<Response> {
    let plan = state.engine.image_save_plan(names).await?;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = crate::chunks::ChunkWriter::new(tx.clone());
        let r = engine
            .image_save_write(&plan, &mut w)
            .and_then(|_| w.flush().map_err(|e| Error::internal(e.to_string())));
        if let Err(e) = r {
            tracing::warn!("image save stopped: {e}");
            // An error frame makes hyper cut the connection: the client sees a
            // broken transfer, never a complete-looking truncated archive.
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    Ok(response::stream(
        "application/x-tar",
        crate::chunks::ChannelBody::new(rx).boxed(),
    ))
}

async fn prune(state: &Arc<ApiState>, ctx: &Ctx) -> Result<Response> {
    let filters = crate::engine::Filters::parse(ctx.query.get("filters").unwrap_or(""))?;
    Ok(response::ok_json(
        &state.engine.image_prune(&filters).await?,
    ))
}

/// How much of an abandoned upload is still read (and discarded) so the client
/// can read the answer instead of failing on a write.
const DRAIN_LIMIT: u64 = 1 << 30;

/// A blocking reader of the request body, fed by a task that pulls frames from the
/// connection into a bounded channel.
pub(crate) fn body_reader(body: ReqBody) -> Box<dyn Read + Send> {
    let ReqBody::Incoming(mut inc) = body else {
        return Box::new(io::empty());
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    tokio::spawn(async move {
        let mut receiver_gone = false;
        let mut drained = 0u64;
        while let Some(frame) = inc.frame().await {
            match frame {
                Ok(f) => {
                    let Ok(data) = f.into_data() else { continue };
                    if receiver_gone {
                        drained += data.len() as u64;
                        if drained > DRAIN_LIMIT {
                            return;
                        }
                        continue;
                    }
                    if tx.send(Ok(data)).await.is_err() {
                        receiver_gone = true;
                    }
                }
                Err(e) => {
                    let _ = tx
                        .send(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("reading the upload: {e}"),
                        )))
                        .await;
                    return;
                }
            }
        }
    });
    Box::new(crate::chunks::ChunkReader::new(rx))
}

/// `GET /system/df`: which object types were asked for (all when none were).
pub fn disk_usage(state: &Arc<ApiState>, ctx: &Ctx) -> Result<Response> {
    let types: Vec<&str> = ctx.query.get_all("type").collect();
    let all = types.is_empty() || ctx.version < crate::version::ApiVersion::new(1, 42);
    let mut want: BTreeMap<&str, bool> = ["container", "image", "volume", "build-cache"]
        .into_iter()
        .map(|k| (k, all))
        .collect();
    if !all {
        for t in types {
            match want.get_mut(t) {
                Some(w) => *w = true,
                None => return Err(Error::invalid(format!("unknown object type: {t}"))),
            }
        }
    }
    let kinds = crate::engine::images::DiskUsageKinds {
        containers: want["container"],
        images: want["image"],
        volumes: want["volume"],
        build_cache: want["build-cache"],
    };
    Ok(response::ok_json(
        &state.engine.disk_usage(kinds, ctx.version)?,
    ))
}
