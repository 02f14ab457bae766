//! System endpoints: `/_ping`, `/version`, `/info`, `/events`, `/system/df`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, HeaderName, HeaderValue, PRAGMA};
use hyper::{Method, StatusCode};
use tokio::sync::broadcast::error::RecvError;

use super::{ApiState, Ctx, Response, body, page_not_found, response};
use crate::engine::events::{Event, now_nanos};
use crate::engine::{Error, Filters, Result};

pub async fn route(state: &Arc<ApiState>, ctx: Ctx) -> Result<Response> {
    let segs = ctx.segments();
    match (ctx.method().clone(), segs.as_slice()) {
        (Method::GET, ["_ping"]) => Ok(ping(false)),
        (Method::HEAD, ["_ping"]) => Ok(ping(true)),
        (Method::GET, ["version"]) => Ok(response::ok_json(&state.engine.version())),
        (Method::GET, ["info"]) => Ok(response::ok_json(&state.engine.info())),
        (Method::GET, ["events"]) => events(state, &ctx),
        (Method::GET, ["system", "df"]) => super::images::disk_usage(state, &ctx),
        _ => Err(page_not_found()),
    }
}

fn ping(head: bool) -> Response {
    let mut r = if head {
        let mut r = response::empty(StatusCode::OK);
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    } else {
        response::with_type(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"OK"),
        )
    };
    let h = r.headers_mut();
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    // "1": the classic builder API; BuildKit is not offered.
    h.insert(
        HeaderName::from_static("builder-version"),
        HeaderValue::from_static("1"),
    );
    h.insert(
        HeaderName::from_static("swarm"),
        HeaderValue::from_static("inactive"),
    );
    r
}

/// Filter keys `/events` accepts (Docker's list).
const EVENT_FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

fn timestamp_param(ctx: &Ctx, key: &str) -> Result<Option<i64>> {
    match ctx.query.get(key) {
        None | Some("") => Ok(None),
        Some(v) => crate::timefmt::parse_timestamp(v).map(Some).ok_or_else(|| {
            Error::invalid(format!("invalid value for {key}: {v:?} is not a timestamp"))
        }),
    }
}

/// `GET /events`: past events in the window (when `since` or `until` is given), then
/// live ones until `until`, the client leaves, or the daemon shuts down.
fn events(state: &Arc<ApiState>, ctx: &Ctx) -> Result<Response> {
    let filters = ctx.query.filters(EVENT_FILTERS)?;
    let since = timestamp_param(ctx, "since")?;
    let until = timestamp_param(ctx, "until")?;
    let (history, mut rx) = state.engine.events.subscribe();
    let (tx, body) = body::channel(64);
    let shutdown = state.shutdown.clone();
    let in_window = move |e: &Event| {
        since.is_none_or(|s| e.time_nano >= s) && until.is_none_or(|u| e.time_nano <= u)
    };
    tokio::spawn(async move {
        let send = |e: &Event, f: &Filters| -> Option<Bytes> {
            if !f.is_empty() && !e.matches(f) {
                return None;
            }
            let mut line = serde_json::to_vec(e).ok()?;
            line.push(b'\n');
            Some(Bytes::from(line))
        };
        if since.is_some() || until.is_some() {
            for e in history.iter().filter(|e| in_window(e)) {
                if let Some(line) = send(e, &filters) {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
            }
        }
        let now = now_nanos();
        let deadline = match until {
            Some(u) if u <= now => return,
            Some(u) => Some(tokio::time::Instant::now() + Duration::from_nanos((u - now) as u64)),
            None => None,
        };
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until_deadline);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = &mut until_deadline => return,
                r = rx.recv() => match r {
                    Ok(e) => {
                        if !in_window(&e) {
                            continue;
                        }
                        if let Some(line) = send(&e, &filters) {
                            if tx.send(line).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(RecvError::Lagged(n)) => tracing::warn!("events subscriber fell behind; {n} events dropped"),
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    Ok(response::stream("application/json", body))
}
