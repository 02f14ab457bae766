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
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ApiState, Ctx, ReqBody, Response, body, page_not_found, response};
use crate::engine::images::{ImageListOptions, LoadLine};
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
            "searching a registry is not supported: this daemon has no registry access",
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
        (Method::POST, r) if r.ends_with("/push") && r.len() > 5 => Err(Error::not_implemented(
            "pushing images is not supported: this daemon has no registry access; use docker save to move images",
        )),
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

/// `POST /images/create`: import from the request body; pulls and URLs are refused
/// by name.
async fn create(state: &Arc<ApiState>, ctx: &mut Ctx) -> Result<Response> {
    if let Some(img) = ctx.query.get("fromImage").filter(|s| !s.is_empty()) {
        return Err(Error::not_implemented(format!(
            "pulling images is not supported: this daemon cannot reach a registry to pull {img}; bring the image with docker load (an archive from docker save) or docker import (a root filesystem tarball)"
        )));
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

/// Docker's `{"errorDetail":{"message":…},"error":…}`.
fn error_message(msg: &str) -> Value {
    json!({ "errorDetail": { "message": msg }, "error": msg })
}

fn json_line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// Go's `units.HumanSize`: decimal units, `%.4g`.
fn human_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let int_digits = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as usize) + 1
    };
    let mut s = format!("{:.*}", 4usize.saturating_sub(int_digits), v);
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[i])
}

/// `GET /images/get` and `GET /images/{name}/get`: names are resolved first (a bad
/// one is a normal error response); then the tar streams.
async fn save(state: &Arc<ApiState>, names: Vec<String>) -> Result<Response> {
    let plan = state.engine.image_save_plan(names).await?;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
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
        FallibleBody { rx }.boxed(),
    ))
}

const CHUNK: usize = 256 << 10;

/// A blocking writer that feeds a response body in chunks.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// A response body whose stream can fail.
struct FallibleBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl HttpBody for FallibleBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
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
fn body_reader(body: ReqBody) -> Box<dyn Read + Send> {
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
    Box::new(ChannelReader {
        rx,
        cur: Bytes::new(),
    })
}

struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_go() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(2_129_920), "2.13MB");
        assert_eq!(human_size(12_345), "12.35kB");
    }
}
