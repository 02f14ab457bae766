//! `RUN`: the command in a container of the stage's current image, its output
//! streamed as it comes, its changes committed as the step's layer.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::dockerfile::Instruction;
use super::{BUILDKIT_ONLY, BUILTIN_ARGS, Builder, Stage, short};
use crate::engine::containers::lifecycle::WaitCondition;
use crate::engine::{Engine, Error, Result};
use crate::image::changes;

impl Builder<'_> {
    /// `RUN`: the command in a container of the current image; its changes are
    /// the step's layer.
    pub(super) async fn run(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        if ins.flag("mount").is_some() {
            return Err(Error::invalid(format!(
                "the --mount option {BUILDKIT_ONLY}"
            )));
        }
        let cmd = match ins.json_args()? {
            Some(v) => v,
            None => {
                let mut c = st.shell();
                c.push(ins.rest.clone());
                c
            }
        };
        // The arguments the command sees: those no ENV of the same name shadows.
        let shadowed = changes::env_map(&st.config);
        let args: Vec<(String, String)> = self
            .stage_args(st)
            .into_iter()
            .filter(|(k, _)| !shadowed.contains_key(k))
            .collect();
        let mut save = cmd.clone();
        if !args.is_empty() {
            // In the history and the cache key: all but the proxy arguments not
            // declared with ARG, as `K=V` sorted.
            let mut declared: Vec<String> = args
                .iter()
                .filter(|(k, _)| st.args.contains_key(k) || !BUILTIN_ARGS.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            declared.sort();
            let mut prefixed = vec![format!("|{}", declared.len())];
            prefixed.extend(declared);
            prefixed.extend(save);
            save = prefixed;
        }
        let mut probe = st.config.clone();
        probe.cmd = Some(save.clone());
        probe.entrypoint = None;
        if self.cached(st, &probe) {
            return Ok(());
        }
        if st.image.is_empty() {
            return Err(Error::invalid(format!(
                "The command '{}' cannot run: the stage has no files yet (FROM scratch)",
                cmd.join(" ")
            )));
        }
        let mut env = st.config.env.clone().unwrap_or_default();
        env.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
        let mut host = self.opts.host_config.clone();
        host.insert("LogConfig".into(), json!({"Type": "none"}));
        let mut body = serde_json::Map::new();
        body.insert("Image".into(), json!(st.image));
        body.insert("Cmd".into(), json!(cmd));
        body.insert("Entrypoint".into(), json!([""]));
        body.insert("Env".into(), json!(env));
        body.insert("WorkingDir".into(), json!(st.config.working_dir));
        body.insert("User".into(), json!(st.config.user));
        body.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
        body.insert("AttachStdout".into(), json!(true));
        body.insert("AttachStderr".into(), json!(true));
        body.insert("HostConfig".into(), Value::Object(host));
        let engine = self.engine.clone();
        let created = engine.container_create(Value::Object(body), None).await?;
        let id = created.id;
        for w in created.warnings {
            self.out.stream(format!(" ---> [Warning] {w}\n"));
        }
        let mut guard = Intermediate {
            engine: engine.clone(),
            id: id.clone(),
            armed: true,
        };
        self.out
            .stream(format!(" ---> Running in {}\n", short(&id)));
        let outcome = self.run_container(&id).await;
        let keep_on_failure = !self.opts.force_rm;
        let code = match outcome {
            Ok(code) => code,
            Err(e) => {
                guard.armed = !keep_on_failure;
                if !keep_on_failure {
                    self.remove_intermediate(&mut guard).await;
                }
                return Err(e);
            }
        };
        if code != 0 {
            if !keep_on_failure {
                self.remove_intermediate(&mut guard).await;
            }
            guard.armed = false;
            self.exit_code = Some(code);
            return Err(Error::internal(format!(
                "The command '{}' returned a non-zero code: {code}",
                cmd.join(" ")
            )));
        }
        let images = engine.images.clone();
        let cid = id.clone();
        let layer = tokio::task::spawn_blocking(move || images.rw_diff_layer(&cid))
            .await
            .map_err(|e| Error::internal(format!("build: {e}")))??;
        let created_by = save.join(" ");
        let committed = self.commit(st, &probe, &created_by, &id, layer).await;
        if self.opts.rm || self.opts.force_rm {
            self.remove_intermediate(&mut guard).await;
        }
        guard.armed = false;
        committed
    }

    /// Starts the container with its output attached; returns its exit code.
    async fn run_container(&mut self, id: &str) -> Result<i64> {
        let engine = self.engine.clone();
        let h = engine.containers.get(id)?;
        let mut attach = engine
            .container_attach(
                &h,
                crate::init::spec::AttachStreams {
                    stdin: false,
                    stdout: true,
                    stderr: true,
                },
            )
            .await?;
        let wait = engine.container_wait(id, WaitCondition::NextExit)?;
        engine.container_start(id).await?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 32 * 1024];
        loop {
            let n = attach.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            while buf.len() >= 8 {
                let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
                if buf.len() < 8 + len {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[8..8 + len]).into_owned();
                if buf[0] == 2 {
                    self.out.stream(format!("\u{1b}[91m{text}\u{1b}[0m"));
                } else {
                    self.out.stream(text);
                }
                buf.drain(..8 + len);
            }
        }
        let outcome = wait.await;
        if let Some(e) = outcome.error.filter(|e| !e.is_empty()) {
            return Err(Error::internal(e));
        }
        Ok(outcome.status_code)
    }

    async fn remove_intermediate(&mut self, guard: &mut Intermediate) {
        guard.armed = false;
        match self.engine.container_remove(&guard.id, true, true).await {
            Ok(()) => self.out.stream(format!(
                "Removing intermediate container {}\n",
                short(&guard.id)
            )),
            Err(e) => self.out.stream(format!(
                "Error removing intermediate container {}: {e}\n",
                short(&guard.id)
            )),
        }
    }
}

/// A container of a RUN step, removed if the build is dropped (the client went
/// away) before the step has dealt with it.
struct Intermediate {
    engine: Arc<Engine>,
    id: String,
    armed: bool,
}

impl Drop for Intermediate {
    fn drop(&mut self) {
        if self.armed {
            let (engine, id) = (self.engine.clone(), self.id.clone());
            tokio::spawn(async move {
                let _ = engine.container_remove(&id, true, true).await;
            });
        }
    }
}
