//! `docker exec`: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked),
//! `POST /exec/{id}/resize`, `GET /exec/{id}/json`.

use std::sync::Arc;

use hyper::header::UPGRADE;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{ApiState, Ctx, Response, page_not_found, response};
use crate::engine::containers::detach;
use crate::engine::containers::exec::ExecConfig;
use crate::engine::{Error, Result};

pub async fn route(state: &Arc<ApiState>, mut ctx: Ctx) -> Result<Response> {
    let segs: Vec<String> = ctx.segments().iter().map(|s| s.to_string()).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let engine = &state.engine;
    match (ctx.method().clone(), segs.as_slice()) {
        (Method::POST, ["containers", id, "exec"]) => {
            let body: Value = ctx.json_body().await?.unwrap_or(Value::Null);
            let config = exec_config(&body)?;
            let exec_id = engine.exec_create(id, config)?;
            Ok(response::json(
                StatusCode::CREATED,
                &json!({ "Id": exec_id }),
            ))
        }
        (Method::POST, ["exec", id, "start"]) => {
            let body: Value = ctx.json_body().await?.unwrap_or(Value::Null);
            start(state, id, body, ctx).await
        }
        (Method::POST, ["exec", id, "resize"]) => {
            let (h, w) = super::containers::resize_dims(&ctx)?;
            engine.exec_resize(id, h, w).await?;
            Ok(response::empty(StatusCode::OK))
        }
        (Method::GET, ["exec", id, "json"]) => Ok(response::ok_json(&engine.exec_inspect(id)?)),
        (_, ["exec", id, ..]) => {
            engine.execs.get(id)?;
            Err(page_not_found())
        }
        _ => Err(page_not_found()),
    }
}

/// The create body, with Docker's field names.
fn exec_config(v: &Value) -> Result<ExecConfig> {
    let strings = |k: &str| crate::engine::containers::settings::strings(v.get(k), k);
    let string = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    Ok(ExecConfig {
        cmd: strings("Cmd")?,
        env: strings("Env")?,
        working_dir: string("WorkingDir"),
        user: string("User"),
        privileged: flag("Privileged"),
        tty: flag("Tty"),
        attach_stdin: flag("AttachStdin"),
        attach_stdout: flag("AttachStdout"),
        attach_stderr: flag("AttachStderr"),
        detach_keys: string("DetachKeys"),
        console_size: console_size(v.get("ConsoleSize")),
    })
}

fn console_size(v: Option<&Value>) -> Option<(u16, u16)> {
    let a = v?.as_array()?;
    let h = u16::try_from(a.first()?.as_u64()?).ok()?;
    let w = u16::try_from(a.get(1)?.as_u64()?).ok()?;
    (h > 0 && w > 0).then_some((h, w))
}

/// `POST /exec/{id}/start`: detached, the process starts and the answer is 200;
/// attached, the connection is upgraded first and the process's stdio joined to
/// it. A command that cannot start is reported in the stream (and its exec gets
/// exit code 126), as Docker does, so the CLI prints it and exits 126.
async fn start(state: &Arc<ApiState>, id: &str, body: Value, ctx: Ctx) -> Result<Response> {
    let engine = state.engine.clone();
    let exec = engine.execs.get(id)?;
    let detach = body.get("Detach").and_then(Value::as_bool).unwrap_or(false);
    if detach {
        engine.exec_start(id, false).await?;
        return Ok(response::empty(StatusCode::OK));
    }
    engine.exec_check_startable(id)?;
    if ctx.parts.headers.get(UPGRADE).is_none() {
        return Err(Error::invalid(
            "exec start needs a connection upgrade: send \"Connection: Upgrade\" and \"Upgrade: tcp\"",
        ));
    }
    let tty = exec.config.tty;
    let stdin = exec.config.attach_stdin;
    // Checked when the exec was created.
    let detach_keys =
        detach::parse(&exec.config.detach_keys).unwrap_or_else(|_| detach::DEFAULT.to_vec());
    let id = id.to_string();
    let req = hyper::Request::from_parts(ctx.parts, ());
    state.streams.spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("exec upgrade failed: {e}");
                return;
            }
        };
        let (client_rd, mut client_wr) = tokio::io::split(TokioIo::new(upgraded));
        match engine.exec_start(&id, true).await {
            Ok(started) => {
                let Some(monitor) = started.stream else {
                    return;
                };
                let exec = started.exec;
                // The CLI asks for the exit code once the stream ends: it is known
                // by then.
                let exited = async move {
                    exec.exited().await;
                };
                super::containers::join_streams(
                    client_rd,
                    client_wr,
                    monitor,
                    stdin,
                    tty,
                    detach_keys,
                    exited,
                )
                .await;
            }
            Err(e) => {
                // Docker writes it on stdout (a stdout frame without a TTY).
                let text = format!("{e}\r\n");
                let out = if tty {
                    bytes::Bytes::from(text)
                } else {
                    super::stream::frame(1, text.as_bytes())
                };
                let _ = client_wr.write_all(&out).await;
                let _ = client_wr.shutdown().await;
            }
        }
    });
    Ok(super::containers::upgraded(tty))
}
