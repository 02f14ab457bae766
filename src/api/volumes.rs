//! `/volumes`: create, list, inspect, remove and prune local volumes. Plugins:
//! there are none (listing says so; installing one is refused with a 501).

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::json;

use super::{ApiState, Ctx, Response, page_not_found, response};
use crate::engine::volume::ops::CreateRequest;
use crate::engine::{Engine, Error, Result};

/// Runs a volume operation (it touches the disk) on a blocking thread.
async fn blocking<T: Send + 'static>(
    engine: &Arc<Engine>,
    op: impl FnOnce(&Engine) -> Result<T> + Send + 'static,
) -> Result<T> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || op(&engine))
        .await
        .map_err(|e| Error::internal(format!("volume operation failed: {e}")))?
}

pub async fn route(state: &Arc<ApiState>, mut ctx: Ctx) -> Result<Response> {
    let method = ctx.method().clone();
    let segs: Vec<String> = ctx.segments().iter().map(|s| s.to_string()).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let engine = &state.engine;
    match (method, segs.as_slice()) {
        (Method::GET, ["volumes"]) => {
            let filters = crate::engine::Filters::parse(ctx.query.get("filters").unwrap_or(""))?;
            Ok(response::ok_json(
                &blocking(engine, move |e| e.volume_list(&filters)).await?,
            ))
        }
        (Method::POST, ["volumes", "create"]) => {
            let req: CreateRequest = ctx.json_body().await?.unwrap_or_default();
            let v = blocking(engine, move |e| e.volume_create(req)).await?;
            Ok(response::json(StatusCode::CREATED, &v))
        }
        (Method::POST, ["volumes", "prune"]) => {
            let filters = crate::engine::Filters::parse(ctx.query.get("filters").unwrap_or(""))?;
            let version = ctx.version;
            Ok(response::ok_json(
                &blocking(engine, move |e| e.volume_prune(&filters, version)).await?,
            ))
        }
        (Method::GET, ["volumes", name]) => {
            let name = name.to_string();
            Ok(response::ok_json(
                &blocking(engine, move |e| e.volume_inspect(&name)).await?,
            ))
        }
        (Method::DELETE, ["volumes", name]) => {
            let (name, force) = (name.to_string(), ctx.query.bool("force"));
            blocking(engine, move |e| e.volume_remove(&name, force)).await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::PUT, ["volumes", _]) => Err(Error::Unavailable(
            "volume update only valid for cluster volumes, but swarm is unavailable".into(),
        )),
        (Method::GET, ["plugins"]) => Ok(response::ok_json(&json!([]))),
        (Method::GET, ["plugins", name, "json"]) => {
            Err(Error::not_found(format!("plugin \"{name}\" not found")))
        }
        (_, ["plugins", ..]) => Err(Error::not_implemented(
            "plugins are not supported by this daemon yet",
        )),
        _ => Err(page_not_found()),
    }
}
