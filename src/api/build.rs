//! `POST /build` (the classic builder) and `POST /build/prune`.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::Method;
use serde_json::{Value, json};

use super::images::{body_reader, progress_stream};
use super::{ApiState, Ctx, Response, response};
use crate::engine::build::BuildOptions;
use crate::engine::registry::AuthConfig;
use crate::engine::{Error, Result};

pub async fn route(state: &Arc<ApiState>, mut ctx: Ctx) -> Result<Response> {
    let segs: Vec<String> = ctx.segments().iter().map(|s| s.to_string()).collect();
    match (ctx.method().clone(), segs.as_slice()) {
        (Method::POST, [b]) if b == "build" => build(state, &mut ctx).await,
        (Method::POST, [b, p]) if b == "build" && p == "prune" => prune(state, &ctx),
        (Method::POST, [b, c]) if b == "build" && c == "cancel" => Err(Error::not_implemented(
            "/build/cancel is for BuildKit builds; the classic builder stops when the client goes away",
        )),
        _ => Err(super::page_not_found()),
    }
}

async fn build(state: &Arc<ApiState>, ctx: &mut Ctx) -> Result<Response> {
    // The body is taken first: a refused request's context is then read and
    // discarded (up to a limit) while the refusal is answered, so that a client
    // still sending it reads the answer instead of a broken pipe.
    let reader = body_reader(ctx.take_body());
    let opts = options(ctx)?;
    let engine = state.engine.clone();
    progress_stream(move |progress| async move { engine.build(opts, reader, progress).await }).await
}

/// The query, checked as Docker checks it before anything is built.
fn options(ctx: &Ctx) -> Result<BuildOptions> {
    let q = &ctx.query;
    match q.get("version").unwrap_or("") {
        "" | "1" => {}
        "2" => {
            return Err(Error::invalid(
                "BuildKit (builder version 2) is not supported by this daemon: it builds with the classic builder (DOCKER_BUILDKIT=0 docker build)",
            ));
        }
        v => return Err(Error::invalid(format!("invalid version \"{v}\""))),
    }
    match q.get("remote").unwrap_or("") {
        "" => {}
        "client-session" => {
            return Err(Error::invalid(
                "experimental session with v1 builder is no longer supported, use builder version v2 (BuildKit) instead",
            ));
        }
        r => {
            return Err(Error::not_implemented(format!(
                "remote build contexts ({r}) are not supported by this daemon: send the context as a tar, as the docker CLI does"
            )));
        }
    }
    if q.bool("squash") {
        return Err(Error::invalid(
            "squash is only supported with experimental mode",
        ));
    }
    if q.get_all("securityopt").next().is_some() {
        return Err(Error::invalid(
            "The daemon on this platform does not support setting security options on build",
        ));
    }
    if let Some(i) = q
        .get("isolation")
        .filter(|i| !i.is_empty() && !i.eq_ignore_ascii_case("default"))
    {
        return Err(Error::invalid(format!("Unsupported isolation: {i:?}")));
    }
    let json_param = |key: &str, what: &str| -> Result<Option<Value>> {
        match q.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => serde_json::from_str(v)
                .map(Some)
                .map_err(|e| Error::invalid(format!("error reading {what}: {e}"))),
        }
    };
    let build_args: BTreeMap<String, Option<String>> = json_param("buildargs", "build args")?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::invalid(format!("error reading build args: {e}")))?
        .unwrap_or_default();
    let labels: BTreeMap<String, String> = json_param("labels", "labels")?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::invalid(format!("error reading labels: {e}")))?
        .unwrap_or_default();
    if let Some(v) = json_param("cachefrom", "cache-from")?
        && v.as_array().is_some_and(|a| !a.is_empty())
    {
        return Err(Error::not_implemented(
            "--cache-from is not supported by this daemon: the cache is the images built here",
        ));
    }
    let mut host = serde_json::Map::new();
    if let Some(n) = q
        .get("networkmode")
        .filter(|n| !n.is_empty() && *n != "default")
    {
        host.insert("NetworkMode".into(), json!(n));
    }
    let hosts: Vec<&str> = q.get_all("extrahosts").collect();
    if !hosts.is_empty() {
        host.insert("ExtraHosts".into(), json!(hosts));
    }
    if let Some(s) = q.get("shmsize").filter(|s| !s.is_empty()) {
        let n: i64 = s.parse().map_err(|_| {
            Error::internal(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))
        })?;
        if n != 0 {
            host.insert("ShmSize".into(), json!(n));
        }
    }
    for (key, field) in [
        ("memory", "Memory"),
        ("memswap", "MemorySwap"),
        ("cpushares", "CpuShares"),
        ("cpuperiod", "CpuPeriod"),
        ("cpuquota", "CpuQuota"),
    ] {
        // Docker reads these as 0 when they do not parse.
        let n: i64 = q.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        if n != 0 {
            host.insert(field.into(), json!(n));
        }
    }
    for (key, field) in [
        ("cpusetcpus", "CpusetCpus"),
        ("cpusetmems", "CpusetMems"),
        ("cgroupparent", "CgroupParent"),
    ] {
        if let Some(v) = q.get(key).filter(|v| !v.is_empty()) {
            host.insert(field.into(), json!(v));
        }
    }
    if let Some(u) = json_param("ulimits", "ulimit settings")?
        && !u.is_null()
    {
        /// Docker's `units.Ulimit`, to check the shape before anything runs.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Ulimit {
            #[serde(rename = "Name")]
            _name: String,
            #[serde(rename = "Soft")]
            _soft: i64,
            #[serde(rename = "Hard")]
            _hard: i64,
        }
        serde_json::from_value::<Vec<Ulimit>>(u.clone())
            .map_err(|e| Error::invalid(format!("error reading ulimit settings: {e}")))?;
        host.insert("Ulimits".into(), u);
    }
    let mut tags = Vec::new();
    for t in q.get_all("t").filter(|t| !t.is_empty()) {
        let any = crate::image::reference::parse_any(t)?;
        let r = match any {
            crate::image::reference::AnyReference::Named(r) if r.digest.is_none() => {
                r.with_default_tag()
            }
            crate::image::reference::AnyReference::Named(_) => {
                return Err(Error::invalid("build tag cannot contain a digest"));
            }
            crate::image::reference::AnyReference::Id(_) => {
                return Err(Error::invalid(format!(
                    "invalid reference format: repository name ({t}) must not be a 64-byte hexadecimal string"
                )));
            }
        };
        if !tags.contains(&r) {
            tags.push(r);
        }
    }
    Ok(BuildOptions {
        dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
        tags,
        build_args,
        labels,
        target: q.get("target").unwrap_or("").to_string(),
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        rm: q.bool("forcerm") || q.bool_or("rm", true),
        force_rm: q.bool("forcerm"),
        quiet: q.bool("q"),
        platform: q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        host_config: host,
        auth: registry_config(ctx),
    })
}

/// `X-Registry-Config`: credentials by registry. As with Docker, one that does not
/// decode is no credentials.
fn registry_config(ctx: &Ctx) -> BTreeMap<String, AuthConfig> {
    let Some(v) = ctx.header("x-registry-config") else {
        return BTreeMap::new();
    };
    crate::engine::registry::auth::decode_base64url(v)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// `POST /build/prune`: the classic builder keeps no cache of its own (its cache
/// is the images, which `docker image prune` removes), so there is never anything
/// to delete; the filters are checked as Docker checks them.
fn prune(state: &Arc<ApiState>, ctx: &Ctx) -> Result<Response> {
    ctx.query
        .filters(&[
            "until",
            "unused-for",
            "label",
            "label!",
            "id",
            "parent",
            "type",
            "description",
            "inuse",
            "shared",
            "private",
        ])
        .map_err(|e| Error::invalid(format!("failed to prune build cache: {e}")))?;
    for key in [
        "keep-storage",
        "reserved-space",
        "max-used-space",
        "min-free-space",
    ] {
        if let Some(v) = ctx.query.get(key).filter(|v| !v.is_empty())
            && v.parse::<i64>().is_err()
        {
            return Err(Error::invalid(format!(
                "{key} is in bytes and expects an integer, got {v}"
            )));
        }
    }
    let mut attrs = BTreeMap::new();
    attrs.insert("reclaimed".to_string(), "0".to_string());
    state.engine.events.emit("builder", "prune", "", attrs);
    Ok(response::ok_json(
        &json!({"CachesDeleted": null, "SpaceReclaimed": 0}),
    ))
}
