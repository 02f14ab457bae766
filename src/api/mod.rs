//! The Docker Engine API over HTTP/1.1: version negotiation, the common response
//! headers, routing to one module per resource, and error mapping.
//!
//! Handlers receive a [`Ctx`] (the request with its path stripped of any `/vX.Y`
//! prefix and its query decoded) and return `Result<Response>`; an engine error
//! becomes Docker's `{"message": …}` in [`error`].

pub mod body;
mod build;
mod containers;
mod distribution;
pub mod error;
mod exec;
mod images;
mod networks;
pub mod query;
pub mod response;
pub mod server;
pub mod stream;
mod system;
mod volumes;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::{Engine, Error, Result};
use crate::version::{API_VERSION, ApiVersion, MIN_API_VERSION};
pub use query::Query;

/// Every response.
pub type Response = hyper::Response<body::Body>;

/// Shared by every connection: the engine, and what shutdown needs to know.
pub struct ApiState {
    pub engine: Arc<Engine>,
    /// Cancelled when the daemon starts shutting down: long-lived streams end.
    pub shutdown: CancellationToken,
    /// Hijacked (upgraded) streams, which hyper no longer tracks once upgraded;
    /// shutdown waits for them up to shutdown-timeout.
    pub streams: TaskTracker,
}

/// A request body: the connection's, or none (internal requests such as the
/// watchdog's liveness probe).
pub enum ReqBody {
    Incoming(Incoming),
    Empty,
}

/// One request, as handlers see it.
pub struct Ctx {
    pub parts: Parts,
    pub body: ReqBody,
    /// The API version the client asked for (the newest when it gave none).
    pub version: ApiVersion,
    /// The decoded path without the version prefix, e.g. `/containers/json`.
    pub path: String,
    pub query: Query,
}

/// The largest JSON request body accepted (container create bodies are a few KiB).
const MAX_JSON_BODY: usize = 16 << 20;

impl Ctx {
    pub fn method(&self) -> &Method {
        &self.parts.method
    }

    /// Path segments after the version prefix: `/containers/x/json` → `["containers", "x", "json"]`.
    pub fn segments(&self) -> Vec<&str> {
        self.path.trim_start_matches('/').split('/').collect()
    }

    /// A request header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole body (bounded), for JSON requests.
    pub async fn body_bytes(&mut self) -> Result<Bytes> {
        let body = std::mem::replace(&mut self.body, ReqBody::Empty);
        match body {
            ReqBody::Empty => Ok(Bytes::new()),
            ReqBody::Incoming(inc) => http_body_util::Limited::new(inc, MAX_JSON_BODY)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| Error::invalid(format!("failed to read request body: {e}"))),
        }
    }

    /// Parses a JSON body; an empty body is `None`.
    pub async fn json_body<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>> {
        let data = self.body_bytes().await?;
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| Error::invalid(format!("invalid JSON: {e}")))
    }

    /// Takes the raw body stream (uploads: image import and load).
    pub fn take_body(&mut self) -> ReqBody {
        std::mem::replace(&mut self.body, ReqBody::Empty)
    }
}

/// Handles one request end to end: version check, routing, errors, common headers.
pub async fn handle(state: &Arc<ApiState>, req: hyper::Request<ReqBody>) -> Response {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    tracing::debug!(api_path = %raw_path, "Calling {} {}", parts.method, raw_path);
    let mut resp = match negotiate(&raw_path) {
        Err(e) => error::to_response(&e),
        Ok((version, path)) => {
            let query = Query::parse(parts.uri.query());
            let ctx = Ctx {
                parts,
                body,
                version,
                path,
                query,
            };
            match route(state, ctx).await {
                Ok(r) => r,
                Err(e) => error::to_response(&e),
            }
        }
    };
    add_common_headers(resp.headers_mut());
    resp
}

/// Splits `/v1.51/info` into (1.51, `/info`); no prefix means the newest version.
/// Out-of-range versions get Docker's 400 messages.
fn negotiate(raw_path: &str) -> Result<(ApiVersion, String)> {
    let path = query::percent_decode(raw_path);
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((API_VERSION, path));
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let candidate = &rest[..end];
    if candidate.is_empty() || !candidate.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // Not a version prefix (`/volumes` is not one): route as is.
        return Ok((API_VERSION, path));
    }
    let mut parts = candidate.split('.').map(|p| p.parse::<u16>().ok());
    let major = parts.next().flatten();
    let minor = parts.next().unwrap_or(Some(0));
    let version = match (major, minor) {
        (Some(major), Some(minor)) => ApiVersion::new(major, minor),
        _ => return Err(Error::not_found("page not found")),
    };
    if version < MIN_API_VERSION {
        return Err(Error::invalid(format!(
            "client version {candidate} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    if version > API_VERSION {
        return Err(Error::invalid(format!(
            "client version {candidate} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    Ok((version, rest[end..].to_string()))
}

fn add_common_headers(h: &mut hyper::HeaderMap) {
    static SERVER: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    let server = SERVER.get_or_init(|| {
        HeaderValue::from_str(&format!("Docker/{} (linux)", crate::version::VERSION))
            .unwrap_or(HeaderValue::from_static("Docker (linux)"))
    });
    h.insert(
        HeaderName::from_static("api-version"),
        HeaderValue::from_static(api_version_str()),
    );
    h.insert(
        HeaderName::from_static("docker-experimental"),
        HeaderValue::from_static("false"),
    );
    h.insert(
        HeaderName::from_static("ostype"),
        HeaderValue::from_static("linux"),
    );
    h.insert(hyper::header::SERVER, server.clone());
}

const fn api_version_str() -> &'static str {
    // Kept in step with version::API_VERSION by the test below.
    "1.51"
}

async fn route(state: &Arc<ApiState>, ctx: Ctx) -> Result<Response> {
    let first = ctx
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    match first {
        "_ping" | "version" | "info" | "events" | "system" => system::route(state, ctx).await,
        "images" => images::route(state, ctx).await,
        "containers" => containers::route(state, ctx).await,
        "networks" => networks::route(state, ctx).await,
        "exec" => exec::route(state, ctx).await,
        "volumes" | "plugins" => volumes::route(state, ctx).await,
        "swarm" | "nodes" | "services" | "tasks" | "secrets" | "configs" => swarm(&ctx),
        "auth" | "distribution" => distribution::route(state, ctx).await,
        "commit" if ctx.method() == Method::POST && ctx.segments().len() == 1 => {
            containers::commit(state, ctx).await
        }
        "build" => build::route(state, ctx).await,
        "session" | "grpc" => Err(not_supported(first)),
        _ => Err(page_not_found()),
    }
}

/// Swarm mode: this node is in no swarm, and answers as a Docker node outside any
/// swarm does (clients such as docker-py and compose probe these routes).
fn swarm(ctx: &Ctx) -> Result<Response> {
    let segs = ctx.segments();
    match (ctx.method(), segs.as_slice()) {
        (&Method::POST, ["swarm", "init" | "join"]) => Err(Error::not_implemented(
            "swarm mode is not supported by this daemon: it runs containers on this host only",
        )),
        (&Method::POST, ["swarm", "leave"]) => {
            Err(Error::Unavailable("This node is not part of a swarm".into()))
        }
        _ => Err(Error::Unavailable(
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".into(),
        )),
    }
}

/// Docker API areas this daemon does not serve yet: a 501 that says so, not a 404.
fn not_supported(area: &str) -> Error {
    Error::not_implemented(format!("/{area} is not supported by this daemon yet"))
}

/// Docker's answer to an unknown route.
pub fn page_not_found() -> Error {
    Error::not_found("page not found")
}

/// Answers 200 for a GET `/_ping` made inside the process: the watchdog's proof that
/// the router and the runtime serving it are alive.
pub async fn self_check(state: &Arc<ApiState>) -> std::result::Result<(), String> {
    let req = hyper::Request::get("/_ping")
        .body(ReqBody::Empty)
        .map_err(|e| e.to_string())?;
    let resp = handle(state, req).await;
    if resp.status() == StatusCode::OK {
        Ok(())
    } else {
        Err(format!("GET /_ping answered {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_negotiation() {
        assert_eq!(
            negotiate("/info").unwrap(),
            (API_VERSION, "/info".to_string())
        );
        assert_eq!(
            negotiate("/v1.40/containers/json").unwrap(),
            (ApiVersion::new(1, 40), "/containers/json".to_string())
        );
        assert_eq!(negotiate("/volumes").unwrap().1, "/volumes");
        let old = negotiate("/v1.12/containers/json").unwrap_err();
        assert_eq!(
            old.to_string(),
            "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
        let new = negotiate("/v1.99/info").unwrap_err();
        assert_eq!(
            new.to_string(),
            "client version 1.99 is too new. Maximum supported API version is 1.51"
        );
    }

    #[test]
    fn header_version_matches_constant() {
        assert_eq!(api_version_str(), API_VERSION.to_string());
    }
}
