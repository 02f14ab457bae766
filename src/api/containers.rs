//! Container endpoints: create, list, inspect, start, stop, kill, restart, wait,
//! attach (hijacked), logs, resize, rename, top, prune, remove, changes, export,
//! archive (`docker cp` both ways).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::{self, MULTIPLEXED, RAW};
use super::{ApiState, Ctx, Response, body, page_not_found, response};
use crate::engine::containers::detach;
use crate::engine::containers::inspect::{LIST_FILTERS, ListOptions};
use crate::engine::containers::lifecycle::WaitCondition;
use crate::engine::containers::logs::LogOptions;
use crate::engine::containers::stats;
use crate::engine::{Error, Result};
use crate::init::spec::AttachStreams;

pub async fn route(state: &Arc<ApiState>, ctx: Ctx) -> Result<Response> {
    let segs: Vec<String> = ctx.segments().iter().map(|s| s.to_string()).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let engine = &state.engine;
    let m = ctx.method().clone();
    match (m, segs.as_slice()) {
        (Method::POST, ["containers", "create"]) => create(state, ctx).await,
        (Method::GET, ["containers", "json"]) => list(state, &ctx).await,
        (Method::POST, ["containers", "prune"]) => {
            let filters = ctx.query.filters(&["label", "label!", "until"])?;
            Ok(response::ok_json(&engine.container_prune(&filters).await?))
        }
        (Method::GET, ["containers", id, "json"]) => {
            if ctx.query.bool("size") {
                // Sizes walk the container's layer on disk: off the runtime thread.
                let (engine, id) = (engine.clone(), id.to_string());
                let doc = tokio::task::spawn_blocking(move || engine.container_inspect(&id, true))
                    .await
                    .map_err(|e| Error::internal(e.to_string()))??;
                Ok(response::ok_json(&doc))
            } else {
                Ok(response::ok_json(&engine.container_inspect(id, false)?))
            }
        }
        (Method::POST, ["containers", id, "start"]) => {
            engine.container_start(id).await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["containers", id, "stop"]) => {
            engine
                .container_stop(id, ctx.query.int("t")?, ctx.query.get("signal"))
                .await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["containers", id, "restart"]) => {
            engine
                .container_restart(id, ctx.query.int("t")?, ctx.query.get("signal"))
                .await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["containers", id, "kill"]) => {
            engine.container_kill(id, ctx.query.get("signal")).await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["containers", id, "wait"]) => wait(state, id, &ctx),
        (Method::POST, ["containers", id, "attach"]) => attach(state, id, ctx).await,
        (Method::GET, ["containers", id, "logs"]) => logs(state, id, &ctx),
        (Method::POST, ["containers", id, "resize"]) => {
            let (h, w) = resize_dims(&ctx)?;
            engine.container_resize(id, h, w).await?;
            Ok(response::empty(StatusCode::OK))
        }
        (Method::POST, ["containers", id, "rename"]) => {
            engine
                .container_rename(id, ctx.query.get("name").unwrap_or(""))
                .await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::GET, ["containers", id, "top"]) => Ok(response::ok_json(
            &engine
                .container_top(id, ctx.query.get("ps_args").unwrap_or(""))
                .await?,
        )),
        (Method::DELETE, ["containers", id]) => {
            engine
                .container_remove(id, ctx.query.bool("force"), ctx.query.bool("v"))
                .await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["containers", _, "exec"]) => super::exec::route(state, ctx).await,
        (Method::GET, ["containers", id, "stats"]) => stats(state, id, &ctx).await,
        (Method::POST, ["containers", id, "pause"]) => {
            engine.container_pause(id).await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["containers", id, "unpause"]) => {
            engine.container_unpause(id).await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["containers", id, "update"]) => {
            let id = id.to_string();
            let mut ctx = ctx;
            let body = ctx
                .json_body()
                .await?
                .ok_or_else(|| Error::invalid("the update config cannot be empty"))?;
            let warnings = engine.container_update(&id, body).await?;
            let warnings = (!warnings.is_empty()).then_some(warnings);
            Ok(response::ok_json(&json!({ "Warnings": warnings })))
        }
        (Method::GET, ["containers", id, "changes"]) => {
            Ok(response::ok_json(&engine.container_changes(id).await?))
        }
        (Method::GET, ["containers", id, "export"]) => export(state, id),
        (Method::HEAD, ["containers", id, "archive"]) => {
            let stat = engine
                .archive_stat(id, ctx.query.get("path").unwrap_or(""))
                .await?;
            let mut r = response::empty(StatusCode::OK);
            r.headers_mut()
                .insert(PATH_STAT, header_value(&stat.header())?);
            Ok(r)
        }
        (Method::GET, ["containers", id, "archive"]) => archive_get(state, id, &ctx).await,
        (Method::PUT, ["containers", id, "archive"]) => {
            let id = id.to_string();
            let mut ctx = ctx;
            let path = ctx.query.get("path").unwrap_or("").to_string();
            let no_overwrite = ctx.query.bool("noOverwriteDirNonDir");
            let copy_uid_gid = ctx.query.bool("copyUIDGID");
            let input = super::images::body_reader(ctx.take_body());
            engine
                .archive_put(&id, &path, no_overwrite, copy_uid_gid, input)
                .await?;
            Ok(response::empty(StatusCode::OK))
        }
        (_, ["containers", id, what]) => {
            // Known Docker endpoints this daemon does not do yet get a clear 501.
            let known = ["checkpoints"];
            if known.contains(what) {
                engine.containers.get(id)?;
                Err(Error::not_implemented(format!(
                    "{what} is not supported by this daemon yet"
                )))
            } else {
                Err(page_not_found())
            }
        }
        _ => Err(page_not_found()),
    }
}

/// The header `HEAD` and `GET /containers/{id}/archive` describe the path with.
const PATH_STAT: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-docker-container-path-stat");

fn header_value(v: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(v).map_err(|e| Error::internal(e.to_string()))
}

/// `GET /containers/{id}/archive?path=P`: the path as a tar, streamed; an error
/// midway cuts the connection.
async fn archive_get(state: &Arc<ApiState>, id: &str, ctx: &Ctx) -> Result<Response> {
    let engine = state.engine.clone();
    let h = engine.containers.get(id)?;
    let path = ctx.query.get("path").unwrap_or("").to_string();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel();
    let e = engine.clone();
    let name = id.to_string();
    tokio::spawn(async move {
        let w = crate::chunks::ChunkWriter::new(tx.clone());
        if let Err(err) = e.archive_get(&name, &path, Box::new(w), stat_tx).await {
            tracing::warn!(container = %name, "copy from the container stopped: {err}");
            let _ = tx.send(Err(std::io::Error::other(err.to_string()))).await;
        }
    });
    let stat = stat_rx
        .await
        .map_err(|_| Error::internal("the copy ended before it started"))??;
    let attrs = engine.container_attributes(&h.record().container);
    engine
        .events
        .emit("container", "archive-path", &h.id, attrs);
    let mut r = response::stream(
        "application/x-tar",
        crate::chunks::ChannelBody::new(rx).boxed(),
    );
    r.headers_mut()
        .insert(PATH_STAT, header_value(&stat.header())?);
    Ok(r)
}

/// `GET /containers/{id}/export`: the tar streams as it is written; an error
/// midway cuts the connection, so that the client never takes a truncated archive
/// for a complete one.
fn export(state: &Arc<ApiState>, id: &str) -> Result<Response> {
    let engine = state.engine.clone();
    let id = engine.containers.get(id)?.id.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::spawn(async move {
        let w = crate::chunks::ChunkWriter::new(tx.clone());
        if let Err(e) = engine.container_export(&id, Box::new(w)).await {
            tracing::warn!(container_id = %id, "export stopped: {e}");
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    Ok(response::stream(
        "application/x-tar",
        crate::chunks::ChannelBody::new(rx).boxed(),
    ))
}

/// `POST /commit`.
pub async fn commit(state: &Arc<ApiState>, mut ctx: Ctx) -> Result<Response> {
    let q = &ctx.query;
    let text = |k: &str| q.get(k).unwrap_or("").to_string();
    let mut opts = crate::engine::containers::filesystem::CommitOptions {
        container: text("container"),
        repo: text("repo"),
        tag: text("tag"),
        comment: text("comment"),
        author: text("author"),
        pause: q.bool_or("pause", true),
        changes: q.get_all("changes").map(str::to_string).collect(),
        config: None,
    };
    let content_type = ctx.header("content-type").unwrap_or("").to_string();
    let body = ctx.body_bytes().await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        if !content_type.starts_with("application/json") {
            return Err(Error::invalid(format!(
                "Content-Type specified ({content_type}) must be 'application/json'"
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::invalid(format!("invalid JSON: {e}")))?;
        opts.config = (!v.is_null()).then_some(v);
    }
    let id = state.engine.container_commit(opts).await?;
    Ok(response::json(StatusCode::CREATED, &json!({ "Id": id })))
}

async fn create(state: &Arc<ApiState>, mut ctx: Ctx) -> Result<Response> {
    let body: serde_json::Value = ctx
        .json_body()
        .await?
        .ok_or_else(|| Error::invalid("config cannot be empty in order to create a container"))?;
    if let Some(p) = ctx.query.get("platform").filter(|p| !p.is_empty()) {
        let os = p.split('/').next().unwrap_or("");
        if os != "linux" {
            return Err(Error::invalid(format!(
                "platform {p} is not supported by this daemon (only linux)"
            )));
        }
    }
    let name = ctx.query.get("name").map(str::to_string);
    let created = state.engine.container_create(body, name).await?;
    Ok(response::json(
        StatusCode::CREATED,
        &json!({ "Id": created.id, "Warnings": created.warnings }),
    ))
}

async fn list(state: &Arc<ApiState>, ctx: &Ctx) -> Result<Response> {
    let opts = ListOptions {
        all: ctx.query.bool("all"),
        limit: ctx
            .query
            .int("limit")?
            .filter(|l| *l > 0)
            .map(|l| l as usize),
        size: ctx.query.bool("size"),
        filters: ctx.query.filters(LIST_FILTERS)?,
    };
    if opts.size {
        // Sizes walk every container's layer on disk: off the runtime thread.
        let engine = state.engine.clone();
        let list = tokio::task::spawn_blocking(move || engine.container_list(&opts))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        return Ok(response::ok_json(&list));
    }
    Ok(response::ok_json(&state.engine.container_list(&opts)?))
}

/// `POST /containers/{id}/wait`: headers go out at once (the CLI waits for them before
/// it starts the container); the body when the condition is met.
fn wait(state: &Arc<ApiState>, id: &str, ctx: &Ctx) -> Result<Response> {
    let condition = WaitCondition::parse(ctx.query.get("condition"))?;
    let fut = state.engine.container_wait(id, condition)?;
    let (tx, body) = body::channel(1);
    tokio::spawn(async move {
        tokio::select! {
            outcome = fut => {
                let error = outcome.error.map(|m| json!({ "Message": m }));
                let mut doc = serde_json::to_vec(&json!({ "StatusCode": outcome.status_code, "Error": error })).unwrap_or_default();
                doc.push(b'\n');
                let _ = tx.send(Bytes::from(doc)).await;
            }
            _ = tx.closed() => {}
        }
    });
    Ok(response::stream("application/json", body))
}

fn timestamp(ctx: &Ctx, key: &str) -> Result<Option<i64>> {
    match ctx.query.get(key) {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => crate::timefmt::parse_timestamp(v).map(Some).ok_or_else(|| {
            Error::invalid(format!(
                "invalid value for \"{key}\": {v:?} is not a timestamp"
            ))
        }),
    }
}

/// `GET /containers/{id}/logs`.
fn logs(state: &Arc<ApiState>, id: &str, ctx: &Ctx) -> Result<Response> {
    let q = &ctx.query;
    let tail = match q.get("tail") {
        None | Some("") | Some("all") => None,
        Some(n) => n.parse::<i64>().ok().and_then(|n| usize::try_from(n).ok()),
    };
    let opts = LogOptions {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since: timestamp(ctx, "since")?,
        until: timestamp(ctx, "until")?,
        tail,
        follow: q.bool("follow"),
    };
    if !opts.stdout && !opts.stderr {
        return Err(Error::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let timestamps = q.bool("timestamps");
    let (tty, mut rx) = state.engine.container_logs(id, opts)?;
    let (tx, body) = body::channel(64);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let entry = tokio::select! {
                e = rx.recv() => e,
                _ = shutdown.cancelled() => None,
            };
            let Some(e) = entry else { break };
            let mut payload = Vec::with_capacity(e.data.len() + 32);
            if timestamps {
                // Docker prints log timestamps with nine fractional digits.
                let ts = crate::timefmt::rfc3339_fixed(crate::timefmt::from_nanos(e.time_nanos));
                payload.extend_from_slice(ts.as_bytes());
                payload.push(b' ');
            }
            payload.extend_from_slice(&e.data);
            let chunk = if tty {
                Bytes::from(payload)
            } else {
                stream::frame(e.stream, &payload)
            };
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    Ok(response::stream(if tty { RAW } else { MULTIPLEXED }, body))
}

/// `GET /containers/{id}/stats`: with `stream` (the default) a document a second,
/// each with the one before as its `precpu_stats`; else one document, of a fresh
/// sample measured (for CPU %) from the last one read if that is recent, else from
/// one [`STATS_WINDOW`] before; with `one-shot`, of a first sample at once.
async fn stats(state: &Arc<ApiState>, id: &str, ctx: &Ctx) -> Result<Response> {
    let stream = ctx.query.bool_or("stream", true);
    let one_shot =
        ctx.version >= crate::version::ApiVersion::new(1, 41) && ctx.query.bool("one-shot");
    if stream && one_shot {
        return Err(Error::invalid("cannot have stream=true and one-shot=true"));
    }
    let engine = state.engine.clone();
    let h = engine.containers.get(id)?;
    let (name, full_id) = (h.record().container.name.clone(), h.id.clone());
    if !stream {
        let pid = h.record().container.state.pid;
        // The sample before: a recent one kept from an earlier read (waiting only
        // for the rest of MIN_WINDOW), else one read now and STATS_WINDOW before
        // the document's.
        let before = match h.last_stats.recent(pid) {
            _ if one_shot => None,
            Some((age, kept)) => {
                tokio::time::sleep(MIN_WINDOW.saturating_sub(age)).await;
                Some(kept)
            }
            None => match sample(&engine, &full_id).await? {
                Some(first) => {
                    tokio::time::sleep(STATS_WINDOW).await;
                    Some(first)
                }
                None => None,
            },
        };
        let doc = match sample(&engine, &full_id).await? {
            Some(now) => stats::document(&name, &full_id, Some(&now), before.as_ref()),
            None => stats::document(&name, &full_id, None, None),
        };
        return Ok(response::ok_json(&doc));
    }
    let (tx, body) = body::channel(4);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut before: Option<stats::Sample> = None;
        loop {
            let now = match sample(&engine, &full_id).await {
                Ok(s) => s,
                // Removed meanwhile.
                Err(_) => return,
            };
            let doc = stats::document(&name, &full_id, now.as_ref(), before.as_ref());
            let mut line = serde_json::to_vec(&doc).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
            before = now;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    });
    Ok(response::stream("application/json", body))
}

/// The interval a single stats document (`stream=false`, `docker stats
/// --no-stream`) measures CPU use over when no recent sample is kept. Docker
/// takes a second; a quarter of one keeps the CPU % within a few percent (the
/// host's counters tick every 10 ms) and answers four times sooner.
const STATS_WINDOW: Duration = Duration::from_millis(250);

/// The shortest interval a document measures over, when an earlier read left a
/// sample (up to [`stats::REUSE_WITHIN`] old) to measure from.
const MIN_WINDOW: Duration = Duration::from_millis(100);

/// One stats sample, read off the runtime threads.
async fn sample(engine: &Arc<crate::engine::Engine>, id: &str) -> Result<Option<stats::Sample>> {
    let (engine, id) = (engine.clone(), id.to_string());
    tokio::task::spawn_blocking(move || engine.stats_sample(&id))
        .await
        .map_err(|e| Error::internal(e.to_string()))?
}

/// Joins a hijacked client connection to a monitor's attach stream until the
/// output ends (then `before_close` runs, and the client's side is closed) or the
/// client types `detach_keys` (with a TTY, as Docker).
pub(crate) async fn join_streams<R, W>(
    mut client_rd: R,
    mut client_wr: W,
    monitor: tokio::net::UnixStream,
    stdin: bool,
    tty: bool,
    detach_keys: Vec<u8>,
    before_close: impl std::future::Future<Output = ()>,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (mut mon_rd, mut mon_wr) = monitor.into_split();
    // The monitor already speaks what the client expects: frames without a TTY,
    // raw bytes with one.
    let to_client = async {
        let _ = tokio::io::copy(&mut mon_rd, &mut client_wr).await;
        before_close.await;
        let _ = client_wr.flush().await;
        let _ = client_wr.shutdown().await;
    };
    let to_monitor = async {
        let mut buf = vec![0u8; 32 * 1024];
        let mut watcher = tty.then(|| detach::Watcher::new(detach_keys));
        let mut pass = Vec::with_capacity(buf.len());
        loop {
            let n = match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !stdin {
                continue;
            }
            pass.clear();
            let detached = match &mut watcher {
                Some(w) => w.filter(&buf[..n], &mut pass),
                None => {
                    pass.extend_from_slice(&buf[..n]);
                    false
                }
            };
            if mon_wr.write_all(&pass).await.is_err() {
                break;
            }
            if detached {
                return true;
            }
        }
        // What the watcher held back was not the sequence after all.
        if let Some(w) = &watcher
            && !w.held().is_empty()
        {
            let _ = mon_wr.write_all(w.held()).await;
        }
        // The client closed its side: the container's stdin ends (with StdinOnce).
        let _ = mon_wr.shutdown().await;
        false
    };
    tokio::pin!(to_client);
    tokio::pin!(to_monitor);
    tokio::select! {
        _ = &mut to_client => {}
        detached = &mut to_monitor => {
            if !detached {
                // Keep delivering output after the client half-closed.
                to_client.await;
            }
        }
    }
}

/// The `h` and `w` of a resize request (containers and execs).
pub(crate) fn resize_dims(ctx: &Ctx) -> Result<(u16, u16)> {
    let dim = |k: &str| -> Result<u16> {
        let v = ctx.query.get(k).unwrap_or("");
        v.parse().map_err(|_| {
            Error::invalid(format!(
                "invalid resize {} {v:?}",
                if k == "h" { "height" } else { "width" }
            ))
        })
    };
    Ok((dim("h")?, dim("w")?))
}

/// `POST /containers/{id}/attach`: answers `101 UPGRADED`, then joins the client's
/// connection to the container's stdio through its monitor. Without the upgrade
/// (docker-py's `attach(stream=False)`), the answer is `200` with the output as its
/// body. Errors are plain text with their status, as Docker writes them on the
/// connection it took over.
async fn attach(state: &Arc<ApiState>, id: &str, ctx: Ctx) -> Result<Response> {
    match attach_streams(state, id, ctx).await {
        Ok(r) => Ok(r),
        Err(e) => {
            let mut r = response::with_type(
                super::error::status_of(&e),
                RAW,
                Bytes::from(format!("{e}\r\n")),
            );
            r.headers_mut()
                .insert(hyper::header::CONNECTION, "close".parse().unwrap());
            Ok(r)
        }
    }
}

async fn attach_streams(state: &Arc<ApiState>, id: &str, ctx: Ctx) -> Result<Response> {
    let q = &ctx.query;
    let upgrade = ctx.parts.headers.get(UPGRADE).is_some();
    let streams = AttachStreams {
        // Without the upgrade the client has no way to send.
        stdin: upgrade && q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
    };
    let want_stream = q.bool("stream");
    let want_logs = q.bool("logs");
    let keys = q.get("detachKeys").unwrap_or("");
    let detach_keys = detach::parse(keys)
        .map_err(|_| Error::invalid(format!("Invalid detach keys ({keys}) provided")))?;
    let engine = state.engine.clone();
    let h = engine.containers.get(id)?;
    let tty = h.record().container.config.tty;

    let logs_rx = if want_logs {
        let opts = LogOptions {
            stdout: streams.stdout,
            stderr: streams.stderr,
            ..Default::default()
        };
        if opts.stdout || opts.stderr {
            Some(engine.container_logs(id, opts)?.1)
        } else {
            None
        }
    } else {
        None
    };
    let target = if want_stream {
        Some(engine.container_attach(&h, streams).await?)
    } else {
        None
    };

    let attrs = engine.container_attributes(&h.record().container);
    engine.events.emit("container", "attach", &h.id, attrs);

    if !upgrade {
        let (tx, body) = body::channel(64);
        let shutdown = state.shutdown.clone();
        state.streams.spawn(async move {
            if let Some(mut rx) = logs_rx {
                while let Some(e) = rx.recv().await {
                    if tx.send(attach_chunk(tty, e)).await.is_err() {
                        return;
                    }
                }
            }
            let Some(mut monitor) = target else { return };
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = tokio::select! {
                    n = monitor.read(&mut buf) => n,
                    _ = shutdown.cancelled() => return,
                };
                match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        return Ok(response::stream(RAW, body));
    }

    let req = hyper::Request::from_parts(ctx.parts, ());
    state.streams.spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("attach upgrade failed: {e}");
                return;
            }
        };
        let client = TokioIo::new(upgraded);
        let (client_rd, mut client_wr) = tokio::io::split(client);
        if let Some(mut rx) = logs_rx {
            while let Some(e) = rx.recv().await {
                if client_wr.write_all(&attach_chunk(tty, e)).await.is_err() {
                    return;
                }
            }
        }
        let Some(monitor) = target else {
            let _ = client_wr.shutdown().await;
            return;
        };
        join_streams(
            client_rd,
            client_wr,
            monitor,
            streams.stdin,
            tty,
            detach_keys,
            async {},
        )
        .await;
    });

    Ok(upgraded(tty))
}

/// A replayed log entry as attach carries it: raw with a TTY, a frame without.
fn attach_chunk(tty: bool, e: crate::engine::containers::logs::LogEntry) -> Bytes {
    if tty {
        Bytes::from(e.data)
    } else {
        stream::frame(e.stream, &e.data)
    }
}

/// `101 UPGRADED` for a hijacked attach or exec stream: raw with a TTY, multiplexed
/// frames without.
pub(crate) fn upgraded(tty: bool) -> Response {
    let mut resp = response::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if tty { RAW } else { MULTIPLEXED }),
    );
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("tcp"));
    resp
}
