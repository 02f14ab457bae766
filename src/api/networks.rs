//! `/networks`: list, inspect, create, remove, prune, connect and disconnect.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ApiState, Ctx, Response, page_not_found, response};
use crate::engine::Result;
use crate::engine::network::manage::LIST_FILTERS;

pub async fn route(state: &Arc<ApiState>, mut ctx: Ctx) -> Result<Response> {
    let method = ctx.method().clone();
    let segs: Vec<String> = ctx.segments().iter().map(|s| s.to_string()).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let engine = &state.engine;
    match (method, segs.as_slice()) {
        (Method::GET, ["networks"]) => {
            let filters = ctx.query.filters(LIST_FILTERS)?;
            Ok(response::ok_json(&engine.network_list(&filters)?))
        }
        (Method::GET, ["networks", id]) => {
            let doc = engine.network_inspect(id)?;
            if let Some(scope) = ctx.query.get("scope").filter(|s| !s.is_empty())
                && doc.get("Scope").and_then(Value::as_str) != Some(scope)
            {
                return Err(crate::engine::Error::not_found(format!(
                    "network {id} not found"
                )));
            }
            Ok(response::ok_json(&doc))
        }
        (Method::POST, ["networks", "create"]) => {
            let body: Option<Value> = ctx.json_body().await?;
            let id = engine.network_create(body).await?;
            Ok(response::json(
                StatusCode::CREATED,
                &json!({ "Id": id, "Warning": "" }),
            ))
        }
        (Method::POST, ["networks", "prune"]) => {
            let filters = ctx.query.filters(&["until", "label", "label!"])?;
            Ok(response::ok_json(&engine.network_prune(&filters).await?))
        }
        (Method::DELETE, ["networks", id]) => {
            engine.network_remove(id).await?;
            Ok(response::empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["networks", id, "connect"]) => {
            let id = id.to_string();
            let body: Option<Value> = ctx.json_body().await?;
            engine.network_connect(&id, body).await?;
            Ok(response::empty(StatusCode::OK))
        }
        (Method::POST, ["networks", id, "disconnect"]) => {
            let id = id.to_string();
            let body: Option<Value> = ctx.json_body().await?;
            engine.network_disconnect(&id, body).await?;
            Ok(response::empty(StatusCode::OK))
        }
        _ => Err(page_not_found()),
    }
}
