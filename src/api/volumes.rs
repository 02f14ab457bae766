//! Volumes and plugins: this daemon has neither yet. Listing and looking them up answer
//! truthfully (nothing exists); creating them is refused with a 501.

use std::sync::Arc;

use hyper::Method;
use serde_json::json;

use super::{ApiState, Ctx, Response, page_not_found, response};
use crate::engine::{Error, Result};

pub async fn route(_state: &Arc<ApiState>, ctx: Ctx) -> Result<Response> {
    let segs = ctx.segments();
    match (ctx.method().clone(), segs.as_slice()) {
        (Method::GET, ["volumes"]) => Ok(response::ok_json(
            &json!({ "Volumes": [], "Warnings": null }),
        )),
        (Method::GET, ["volumes", name]) | (Method::DELETE, ["volumes", name]) => {
            Err(Error::not_found(format!("get {name}: no such volume")))
        }
        (Method::POST, ["volumes", "prune"]) => Ok(response::ok_json(
            &json!({ "VolumesDeleted": null, "SpaceReclaimed": 0 }),
        )),
        (_, ["volumes", ..]) => Err(Error::not_implemented(
            "volumes are not supported by this daemon yet",
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
