//! Registry endpoints outside `/images`: `POST /auth` (`docker login`) and
//! `GET /distribution/{name}/json`.

use std::sync::Arc;

use hyper::Method;
use serde_json::json;

use super::images::registry_auth;
use super::{ApiState, Ctx, Response, page_not_found, response};
use crate::engine::registry::AuthConfig;
use crate::engine::{Error, Result};

pub async fn route(state: &Arc<ApiState>, mut ctx: Ctx) -> Result<Response> {
    let method = ctx.method().clone();
    let path = ctx.path.trim_start_matches('/').to_string();
    match (method, path.as_str()) {
        (Method::POST, "auth") => {
            let creds: AuthConfig = ctx.json_body().await?.ok_or_else(|| {
                Error::invalid("the login request has no body: send the credentials as JSON")
            })?;
            let done = state.engine.registry_login(creds).await?;
            Ok(response::ok_json(&json!({
                "IdentityToken": done.identity_token,
                "Status": "Login Succeeded",
            })))
        }
        (Method::GET, p) if p.starts_with("distribution/") && p.ends_with("/json") => {
            let name = &p["distribution/".len()..p.len() - "/json".len()];
            if name.is_empty() {
                return Err(page_not_found());
            }
            let auth = registry_auth(&ctx);
            Ok(response::ok_json(
                &state.engine.distribution_inspect(name, auth).await?,
            ))
        }
        _ => Err(page_not_found()),
    }
}
