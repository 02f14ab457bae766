//! Network endpoints: list and inspect the built-in networks; creating and removing
//! networks is not supported yet.

use std::sync::Arc;

use hyper::Method;

use super::{ApiState, Ctx, Response, page_not_found, response};
use crate::engine::{Error, Result};

pub async fn route(state: &Arc<ApiState>, ctx: Ctx) -> Result<Response> {
    let segs = ctx.segments();
    match (ctx.method().clone(), segs.as_slice()) {
        (Method::GET, ["networks"]) => {
            let filters = ctx
                .query
                .filters(&["driver", "id", "label", "name", "scope", "type", "dangling"])?;
            let list: Vec<_> = state
                .engine
                .networks()
                .into_iter()
                .filter(|n| {
                    let s = |k: &str| n[k].as_str().unwrap_or("").to_string();
                    filters.exact_match("driver", &s("Driver"))
                        && filters.exact_match("scope", &s("Scope"))
                        && (!filters.contains("name")
                            || filters.get("name").any(|p| s("Name").contains(p)))
                        && (!filters.contains("id")
                            || filters.get("id").any(|p| s("Id").starts_with(p)))
                        && filters.exact_match("type", "builtin")
                        && !filters.contains("label")
                })
                .collect();
            Ok(response::ok_json(&list))
        }
        (Method::GET, ["networks", id]) => Ok(response::ok_json(&state.engine.network(id)?)),
        (Method::POST, ["networks", "create"]) => Err(Error::not_implemented(
            "creating networks is not supported by this daemon yet",
        )),
        (Method::POST, ["networks", "prune"]) => Ok(response::ok_json(
            &serde_json::json!({ "NetworksDeleted": null }),
        )),
        (Method::DELETE, ["networks", id]) => {
            state.engine.network(id)?;
            Err(Error::Forbidden(format!(
                "{id} is a pre-defined network and cannot be removed"
            )))
        }
        (Method::POST, ["networks", id, "connect" | "disconnect"]) => {
            state.engine.network(id)?;
            Err(Error::not_implemented(
                "connecting containers to networks is not supported by this daemon yet",
            ))
        }
        _ => Err(page_not_found()),
    }
}
