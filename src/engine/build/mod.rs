//! `docker build` with the classic builder: a Dockerfile and a context tar become
//! an image, one image per instruction, each the parent of the next, so that a
//! rebuild finds every step it has already made (`---> Using cache`).
//!
//! Steps:
//! - `RUN` runs the command in a container of the current image (on the build's
//!   network, output streamed live) and commits the container's changes;
//! - `COPY`, `ADD` and `WORKDIR` write into a writable layer over the current
//!   image, which is committed without any container;
//! - every other instruction only changes the config: its image has an empty
//!   layer and is written directly.
//!
//! The cache is the image store: a step's image is reused when an image whose
//! parent is the current image was made by the same instruction with the same
//! config (for `COPY`/`ADD`, the same content hashes; for `RUN`, the same build
//! arguments). The parent links are on disk, so the cache survives restarts.

pub mod context;
pub mod copy;
pub mod dockerfile;
mod files;
mod run;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::engine::containers::filesystem::{CommittedConfig, committed_config};
use crate::engine::registry::auth::AuthConfig;
use crate::engine::registry::progress::Progress;
use crate::engine::{Engine, Error, Result};
use crate::image::changes;
use crate::image::{ImageConfig, PreparedLayer, Reference};
use context::Context;
use dockerfile::{Dockerfile, Instruction};

/// What `POST /build` asks for.
#[derive(Debug, Default)]
pub struct BuildOptions {
    /// The Dockerfile's path in the context (`""`: `Dockerfile`).
    pub dockerfile: String,
    pub tags: Vec<Reference>,
    /// `--build-arg`: `None` for a name given without a value.
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: String,
    pub no_cache: bool,
    pub pull: bool,
    /// Remove intermediate containers after a successful step.
    pub rm: bool,
    /// Remove them even after a failed one.
    pub force_rm: bool,
    pub quiet: bool,
    pub platform: Option<String>,
    /// HostConfig fields of the RUN containers (network, hosts, shm, resources).
    pub host_config: serde_json::Map<String, Value>,
    /// `X-Registry-Config`: credentials by registry, for pulls of base images.
    pub auth: BTreeMap<String, AuthConfig>,
}

/// Build arguments every stage may use without declaring them.
const BUILTIN_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const BUILDKIT_ONLY: &str = "requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled";

/// The builder's output: sent as it comes, or kept until the end with `-q`.
struct Out {
    progress: Progress,
    quiet: bool,
    held: Vec<Value>,
}

impl Out {
    fn send(&mut self, v: Value) {
        if self.quiet {
            self.held.push(v);
        } else {
            self.progress.send(v);
        }
    }

    fn stream(&mut self, s: impl Into<String>) {
        self.send(json!({ "stream": s.into() }));
    }

    /// Runs `work`, passing on what it reports on `rx` as it comes.
    async fn forward<T>(
        &mut self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        let done = loop {
            tokio::select! {
                Some(v) = rx.recv() => self.send(v),
                r = &mut work => break r,
            }
        };
        while let Ok(v) = rx.try_recv() {
            self.send(v);
        }
        done
    }

    /// Whatever `-q` held back, once the build has failed.
    fn release(&mut self) {
        for v in std::mem::take(&mut self.held) {
            self.progress.send(v);
        }
    }
}

/// The state of the stage being built.
struct Stage {
    /// The current image (`""`: a `FROM scratch` stage before its first step).
    image: String,
    /// Its config document.
    parent: Value,
    /// The config the next image gets.
    config: ImageConfig,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, Option<String>>,
    cmd_set: bool,
    author: String,
    /// A step missed the cache: no later step of the stage looks.
    busted: bool,
}

impl Stage {
    /// A relative path joined to the working directory (cleaned).
    fn in_workdir(&self, rel: &str) -> String {
        let base = if self.config.working_dir.is_empty() {
            "/"
        } else {
            &self.config.working_dir
        };
        changes::clean_path(&format!("{base}/{rel}"))
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }
}

struct Builder<'a> {
    engine: &'a Arc<Engine>,
    opts: &'a BuildOptions,
    ctx: Arc<Context>,
    out: Out,
    step: usize,
    total: usize,
    /// Values of the ARGs before the first FROM.
    meta: BTreeMap<String, String>,
    /// Every ARG name declared anywhere (the rest were "not consumed").
    declared: HashSet<String>,
    /// Finished stages: name and image.
    stages: Vec<(Option<String>, String)>,
    /// The exit code of a failed RUN (the CLI exits with it).
    exit_code: Option<i64>,
    /// The Dockerfile's escape character.
    escape: char,
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

impl Engine {
    /// `POST /build`: builds from the context tar in `input`, reporting on
    /// `progress`. Errors before the first step are returned (an HTTP error);
    /// later ones end the stream as Docker's error message.
    pub async fn build(
        self: &Arc<Self>,
        opts: BuildOptions,
        input: Box<dyn Read + Send>,
        progress: Progress,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        let builder_dir = self.data_root.join("builder");
        let name = if opts.dockerfile.is_empty() {
            "Dockerfile"
        } else {
            &opts.dockerfile
        };
        let keep = vec![
            ".dockerignore".to_string(),
            "dockerfile".to_string(),
            context::key(name),
        ];
        let dockerfile = opts.dockerfile.clone();
        let (ctx, text) = tokio::task::spawn_blocking(move || {
            let mut ctx = context::receive(input, &builder_dir, &keep)?;
            let text = ctx.take_dockerfile(&dockerfile)?;
            Ok::<_, Error>((ctx, text))
        })
        .await
        .map_err(|e| Error::internal(format!("build: {e}")))??;
        tracing::debug!("build: context received in {:?}", t0.elapsed());
        let mut df = dockerfile::parse(&text, name)?;
        if !opts.target.is_empty() {
            let t = opts.target.to_lowercase();
            let Some(i) = df
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.as_str()))
            else {
                return Err(Error::invalid(format!(
                    "failed to reach build target {} in Dockerfile",
                    opts.target
                )));
            };
            df.stages.truncate(i + 1);
        }
        let total = df.meta_args.len()
            + df.stages
                .iter()
                .map(|s| 1 + s.commands.len())
                .sum::<usize>()
            + opts.labels.len();
        let mut b = Builder {
            engine: self,
            opts: &opts,
            ctx: Arc::new(ctx),
            out: Out {
                progress: progress.clone(),
                quiet: opts.quiet,
                held: Vec::new(),
            },
            step: 0,
            total,
            meta: BTreeMap::new(),
            declared: HashSet::new(),
            stages: Vec::new(),
            exit_code: None,
            escape: df.escape,
        };
        let built = b.run_all(&df).await;
        tracing::debug!("build: steps done in {:?}", t0.elapsed());
        let Builder {
            ctx,
            mut out,
            exit_code,
            ..
        } = b;
        drop(ctx);
        match built {
            Ok(id) => {
                if opts.quiet {
                    progress.send(json!({ "stream": format!("{id}\n") }));
                }
                Ok(())
            }
            Err(e) => {
                out.release();
                match exit_code {
                    Some(code) => {
                        let msg = e.to_string();
                        progress.send(json!({
                            "errorDetail": {"code": code, "message": msg},
                            "error": msg,
                        }));
                        Ok(())
                    }
                    None => Err(e),
                }
            }
        }
    }
}

impl Builder<'_> {
    async fn run_all(&mut self, df: &Dockerfile) -> Result<String> {
        if !df.warnings.is_empty() {
            let text = df.warnings.join("\n") + "\n";
            self.out.stream(format!("\u{1b}[91m{text}\u{1b}[0m"));
        }
        if let Some(s) = &df.syntax {
            self.out.stream(format!(
                "\u{1b}[91m[WARNING]: the syntax directive ({s}) is ignored: the classic builder reads the Dockerfile itself\n\u{1b}[0m"
            ));
        }
        for ins in &df.meta_args {
            self.header(ins);
            for (name, default) in arg_words(&ins.rest, self.escape)? {
                let env = self.meta_env();
                let name = changes::expand_word(&name, &env)?;
                let default = default
                    .map(|d| changes::expand_word(&d, &env))
                    .transpose()?;
                self.declared.insert(name.clone());
                if let Some(v) = self.provided(&name).or(default) {
                    self.meta.insert(name, v);
                } else {
                    self.meta.remove(&name);
                }
            }
        }
        let mut last = String::new();
        for (i, stage) in df.stages.iter().enumerate() {
            let mut st = self.from(stage).await?;
            for ins in &stage.commands {
                self.header(ins);
                self.dispatch(&mut st, ins).await?;
                self.out.stream(format!(" ---> {}\n", short(&st.image)));
            }
            if i + 1 == df.stages.len() {
                for (k, v) in &self.opts.labels {
                    self.step += 1;
                    let (step, total) = (self.step, self.total);
                    self.out
                        .stream(format!("Step {step}/{total} : LABEL {k}={v}"));
                    self.out.stream("\n");
                    st.config
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k.clone(), v.clone());
                    self.commit_config(&mut st, format!("LABEL {k}={v}"))
                        .await?;
                    self.out.stream(format!(" ---> {}\n", short(&st.image)));
                }
            }
            if st.image.is_empty() {
                return Err(Error::invalid(
                    "No image was generated. Is your Dockerfile empty?",
                ));
            }
            self.out.send(json!({ "aux": { "ID": st.image } }));
            self.stages.push((stage.name.clone(), st.image.clone()));
            last = st.image;
        }
        if last.is_empty() {
            return Err(Error::invalid(
                "No image was generated. Is your Dockerfile empty?",
            ));
        }
        let unused: Vec<&str> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.declared.contains(*k) && !BUILTIN_ARGS.contains(&k.as_str()))
            .map(String::as_str)
            .collect();
        if !unused.is_empty() {
            self.out.stream(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused.join(" ")
            ));
        }
        self.out
            .stream(format!("Successfully built {}\n", short(&last)));
        for tag in &self.opts.tags {
            self.engine.images.tag(&last, tag)?;
            let labels = self.engine.labels_of(&last);
            let shown = tag.familiar_string();
            self.engine
                .image_event("tag", &last, &shown, labels.as_ref());
            self.out.stream(format!("Successfully tagged {shown}\n"));
        }
        Ok(last)
    }

    fn header(&mut self, ins: &Instruction) {
        self.step += 1;
        let (step, total) = (self.step, self.total);
        self.out
            .stream(format!("Step {step}/{total} : {}", ins.original));
        self.out.stream("\n");
    }

    /// A `--build-arg` value given with one.
    fn provided(&self, name: &str) -> Option<String> {
        self.opts.build_args.get(name).cloned().flatten()
    }

    fn meta_env(&self) -> changes::Vars {
        let mut env = self.meta.clone();
        for k in BUILTIN_ARGS {
            if let Some(v) = self.provided(k) {
                env.entry(k.to_string()).or_insert(v);
            }
        }
        self.vars(env)
    }

    fn vars(&self, map: BTreeMap<String, String>) -> changes::Vars {
        changes::Vars {
            map,
            escape: self.escape,
        }
    }

    /// Build arguments visible in the stage: declared ones with a value, and the
    /// proxy arguments given to the build.
    fn stage_args(&self, st: &Stage) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = st
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for k in BUILTIN_ARGS {
            if let Some(v) = self.provided(k) {
                out.entry(k.to_string()).or_insert(v);
            }
        }
        out
    }

    /// The environment words are expanded with: the config's, then the arguments
    /// it does not shadow.
    fn expansion_env(&self, st: &Stage) -> changes::Vars {
        let mut env = changes::env_map(&st.config);
        for (k, v) in self.stage_args(st) {
            env.entry(k).or_insert(v);
        }
        self.vars(env)
    }

    /// `FROM`: the base image (pulled when missing, or always with `--pull`), the
    /// stage's starting config, and the base's ONBUILD triggers.
    async fn from(&mut self, stage: &dockerfile::Stage) -> Result<Stage> {
        self.header(&stage.from);
        let env = self.meta_env();
        let base = changes::expand_word(&stage.base, &env)?;
        if base.is_empty() {
            return Err(Error::invalid(format!(
                "base name ({}) should not be blank",
                stage.base
            )));
        }
        let platform = stage
            .platform
            .as_deref()
            .map(|p| changes::expand_word(p, &env))
            .transpose()?
            .or_else(|| self.opts.platform.clone());
        let previous = self
            .stages
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref() == Some(base.to_lowercase().as_str()))
            .map(|(_, id)| id.clone());
        let image = match previous {
            Some(id) => id,
            None if base.eq_ignore_ascii_case("scratch") => String::new(),
            None => self.image_for(&base, platform.as_deref()).await?,
        };
        let (parent, mut config) = if image.is_empty() {
            (
                json!({"architecture": crate::engine::system::goarch(), "os": "linux"}),
                ImageConfig::default(),
            )
        } else {
            let raw = self
                .engine
                .images
                .config_bytes(&image)
                .ok_or_else(|| Error::not_found(format!("No such image: {image}")))?;
            let v: Value = serde_json::from_slice(&raw)
                .map_err(|e| Error::internal(format!("the config of {image}: {e}")))?;
            let config = v
                .get("config")
                .cloned()
                .filter(|c| !c.is_null())
                .map(serde_json::from_value::<ImageConfig>)
                .transpose()
                .map_err(|e| Error::internal(format!("the config of {image}: {e}")))?
                .unwrap_or_default();
            (v, config)
        };
        let triggers = config.on_build.take().unwrap_or_default();
        if !changes::env_map(&config).contains_key("PATH") {
            config
                .env
                .get_or_insert_with(Vec::new)
                .push(DEFAULT_PATH.into());
        }
        let mut st = Stage {
            image,
            parent,
            config,
            args: BTreeMap::new(),
            cmd_set: false,
            author: String::new(),
            busted: false,
        };
        if !triggers.is_empty() {
            let s = if triggers.len() > 1 { "s" } else { "" };
            self.out
                .stream(format!("# Executing {} build trigger{s}\n", triggers.len()));
            for t in &triggers {
                let ins = dockerfile::trigger(t)?;
                self.dispatch(&mut st, &ins).await?;
            }
        }
        self.out.stream(format!(" ---> {}\n", short(&st.image)));
        Ok(st)
    }

    /// A local image, pulled first when missing (or always with `--pull`).
    async fn image_for(&mut self, name: &str, platform: Option<&str>) -> Result<String> {
        let reference = match crate::image::reference::parse_any(name)? {
            crate::image::reference::AnyReference::Named(r) => r,
            // An image ID names a local image; there is nothing to pull.
            crate::image::reference::AnyReference::Id(_) => {
                return Ok(self.engine.images.resolve(name)?.id);
            }
        };
        let arch = crate::engine::system::goarch();
        let wanted = platform
            .map(|p| {
                crate::image::import::Platform::parse(&p.to_lowercase(), arch)
                    .map_err(|e| Error::invalid(format!("failed to parse platform {p}: {e}")))
            })
            .transpose()?;
        // A local image of another platform is as good as missing (as Docker does).
        let local = |engine: &Engine| -> Result<std::result::Result<String, String>> {
            let d = engine.images.details(name)?;
            let actual = format!("{}/{}", d.json.os(), d.json.architecture);
            Ok(match &wanted {
                Some(w) if w.architecture != d.json.architecture || w.os != d.json.os() => {
                    Err(actual)
                }
                _ => Ok(d.id),
            })
        };
        if !self.opts.pull
            && let Ok(Ok(id)) = local(self.engine)
        {
            return Ok(id);
        }
        let auth = self
            .opts
            .auth
            .iter()
            .find(|(k, _)| registry_key_matches(k, &reference.domain))
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let pull = self.engine.image_pull(
            crate::engine::registry::PullOptions {
                from_image: name.to_string(),
                tag: String::new(),
                platform: platform.map(str::to_string),
                auth,
            },
            Progress::new(tx),
        );
        self.out.forward(rx, pull).await?;
        local(self.engine)?.map_err(|actual| {
            Error::not_found(format!(
                "image with reference {name} was found but does not match the specified platform: wanted {}, actual: {actual}",
                platform.unwrap_or_default()
            ))
        })
    }

    async fn dispatch(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let env = self.expansion_env(st);
        match ins.keyword.as_str() {
            "run" => return self.run(st, ins).await,
            "copy" => return self.copy(st, ins, false).await,
            "add" => return self.copy(st, ins, true).await,
            "workdir" => return self.workdir(st, ins).await,
            _ => {}
        }
        let comment = match ins.keyword.as_str() {
            "env" => {
                let pairs = changes::name_values(&ins.rest, "ENV", &env)?;
                for (k, v) in &pairs {
                    changes::set_env(&mut st.config, k, v);
                }
                format!("ENV {}", kv_words(&pairs))
            }
            "label" => {
                let pairs = changes::name_values(&ins.rest, "LABEL", &env)?;
                let labels = st.config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in &pairs {
                    labels.insert(k.clone(), v.clone());
                }
                format!("LABEL {}", kv_words(&pairs))
            }
            "maintainer" => {
                st.author = ins.rest.trim().to_string();
                format!("MAINTAINER {}", st.author)
            }
            "arg" => {
                let mut shown = Vec::new();
                for (name, default) in arg_words(&ins.rest, self.escape)? {
                    let name = changes::expand_word(&name, &env)?;
                    let default = default
                        .map(|d| changes::expand_word(&d, &env))
                        .transpose()?;
                    if name.is_empty() {
                        return Err(Error::invalid("ARG names can not be blank"));
                    }
                    shown.push(match &default {
                        Some(d) => format!("{name}={d}"),
                        None => name.clone(),
                    });
                    let value = self
                        .provided(&name)
                        .or(default)
                        .or_else(|| self.meta.get(&name).cloned());
                    self.declared.insert(name.clone());
                    st.args.insert(name, value);
                }
                format!("ARG {}", shown.join(" "))
            }
            "cmd" => {
                let cmd = command(st, ins)?;
                // Set by a CMD with arguments, never cleared in the stage.
                let given = match ins.json_args()? {
                    Some(v) => !v.is_empty(),
                    None => !ins.rest.trim().is_empty(),
                };
                st.cmd_set |= given;
                let shown = go_quoted(&cmd);
                st.config.cmd = Some(cmd);
                format!("CMD {shown}")
            }
            "entrypoint" => {
                let ep = command(st, ins)?;
                let shown = go_quoted(&ep);
                st.config.entrypoint = if ep.is_empty() { None } else { Some(ep) };
                if !st.cmd_set {
                    st.config.cmd = None;
                }
                format!("ENTRYPOINT {shown}")
            }
            "expose" => {
                let mut raw: Vec<String> = changes::raw_words(&ins.rest, self.escape)?;
                raw.sort();
                // Each word may expand to several (`EXPOSE $PORTS`).
                let mut words = Vec::new();
                for w in &raw {
                    let expanded = changes::expand_word(w, &env)?;
                    words.extend(expanded.split_whitespace().map(str::to_string));
                }
                let ports = st.config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for w in &words {
                    for p in changes::parse_port_spec(w)? {
                        ports.insert(p, json!({}));
                    }
                }
                format!("EXPOSE {}", words.join(" "))
            }
            "volume" => {
                let list = match ins.json_args()? {
                    Some(v) => v
                        .iter()
                        .map(|w| changes::expand_word(w, &env))
                        .collect::<Result<Vec<_>>>()?,
                    None => changes::words(&ins.rest, &env)?,
                };
                let vols = st.config.volumes.get_or_insert_with(BTreeMap::new);
                for v in &list {
                    if v.trim().is_empty() {
                        return Err(Error::invalid(
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    vols.insert(v.trim().to_string(), json!({}));
                }
                format!("VOLUME [{}]", list.join(" "))
            }
            "user" => {
                st.config.user = changes::expand_one(&ins.rest, &env)?;
                format!("USER {}", st.config.user)
            }
            "stopsignal" => {
                let s = changes::expand_one(&ins.rest, &env)?;
                crate::engine::containers::lifecycle::parse_signal(&s)
                    .map_err(|_| Error::invalid(format!("Invalid signal: {s}")))?;
                st.config.stop_signal = s.clone();
                format!("STOPSIGNAL {s}")
            }
            "shell" => {
                let shell = ins.json_args()?.unwrap_or_default();
                let comment = format!("SHELL [{}]", shell.join(" "));
                st.config.shell = Some(shell);
                comment
            }
            "healthcheck" => {
                let h = changes::healthcheck(&dockerfile::healthcheck_text(ins))?;
                if let Some(old) = &st.config.healthcheck
                    && old
                        .get("Test")
                        .and_then(|t| t.get(0))
                        .and_then(Value::as_str)
                        != Some("NONE")
                {
                    let test: Vec<String> = old
                        .get("Test")
                        .and_then(|t| serde_json::from_value(t.clone()).ok())
                        .unwrap_or_default();
                    self.out.stream(format!(
                        "Note: overriding previous HEALTHCHECK: [{}]\n",
                        test.join(" ")
                    ));
                }
                let comment = format!("HEALTHCHECK {}", health_comment(&h));
                st.config.healthcheck = Some(h);
                comment
            }
            "onbuild" => {
                // The instruction as written, run when a child build starts here.
                let trigger = ins.rest.trim().to_string();
                st.config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(trigger.clone());
                format!("ONBUILD {trigger}")
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown instruction: {}",
                    other.to_uppercase()
                )));
            }
        };
        self.commit_config(st, comment).await
    }

    /// A step that changes only the config: an image with an empty layer.
    async fn commit_config(&mut self, st: &mut Stage, comment: String) -> Result<()> {
        let mut probe = st.config.clone();
        let mut cmd = st.shell();
        cmd.push("#(nop) ".into());
        cmd.push(comment);
        probe.cmd = Some(cmd);
        if self.cached(st, &probe) {
            return Ok(());
        }
        let created_by = probe.cmd.clone().unwrap_or_default().join(" ");
        self.commit(st, &probe, &created_by, "", None).await
    }

    /// Looks the step up in the cache; on a hit the stage moves to that image.
    fn cached(&mut self, st: &mut Stage, probe: &ImageConfig) -> bool {
        if self.opts.no_cache || st.busted {
            st.busted = true;
            return false;
        }
        let want = cache_key(probe);
        let mut best: Option<(String, i64, Value)> = None;
        for (id, raw) in self.engine.images.children_of(&st.image) {
            let Ok(v) = serde_json::from_slice::<Value>(&raw) else {
                continue;
            };
            let Some(cc) = v
                .get("container_config")
                .cloned()
                .and_then(|c| serde_json::from_value::<ImageConfig>(c).ok())
            else {
                continue;
            };
            if cache_key(&cc) != want {
                continue;
            }
            let created = v
                .get("created")
                .and_then(Value::as_str)
                .and_then(crate::timefmt::parse_timestamp)
                .unwrap_or(0);
            if best.as_ref().is_none_or(|(_, c, _)| created > *c) {
                best = Some((id, created, v));
            }
        }
        match best {
            Some((id, _, v)) => {
                self.out.stream(" ---> Using cache\n");
                st.image = id;
                st.parent = v;
                true
            }
            None => {
                st.busted = true;
                false
            }
        }
    }

    /// Writes the step's image: the current config, one history entry more, and
    /// the layer if there is one; it becomes the stage's current image.
    async fn commit(
        &mut self,
        st: &mut Stage,
        probe: &ImageConfig,
        created_by: &str,
        container_id: &str,
        layer: Option<PreparedLayer>,
    ) -> Result<()> {
        let created = crate::timefmt::rfc3339_nano(std::time::SystemTime::now());
        let diff_id = layer.as_ref().map(|l| l.meta.diff_id.clone());
        let raw = committed_config(&CommittedConfig {
            parent: &st.parent,
            config: &st.config,
            container_id,
            container_config: crate::image::config::config_json(probe, true),
            created: &created,
            author: &st.author,
            comment: "",
            created_by,
            diff_id: diff_id.as_deref(),
        });
        let images = self.engine.images.clone();
        let parent = st.image.clone();
        let raw2 = raw.clone();
        let id =
            tokio::task::spawn_blocking(move || images.add_committed_image(&raw2, layer, &parent))
                .await
                .map_err(|e| Error::internal(format!("build: {e}")))??;
        st.parent =
            serde_json::from_slice(&raw).map_err(|e| Error::internal(format!("build: {e}")))?;
        st.image = id;
        Ok(())
    }
}

/// `ARG a=1 b`: names with optional defaults, quotes kept for expansion.
fn arg_words(rest: &str, escape: char) -> Result<Vec<(String, Option<String>)>> {
    Ok(changes::raw_words(rest, escape)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect())
}

fn kv_words(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// CMD/ENTRYPOINT: the exec form, or the shell form under the stage's shell.
fn command(st: &Stage, ins: &Instruction) -> Result<Vec<String>> {
    Ok(match ins.json_args()? {
        Some(v) => v,
        None => {
            let mut c = st.shell();
            c.push(ins.rest.trim().to_string());
            c
        }
    })
}

/// Go's `%q` of a string slice: `["/bin/sh" "-c" "x"]`.
fn go_quoted(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// Go's `%q` of Docker's `*HealthConfig`, as the history shows it.
fn health_comment(h: &Value) -> String {
    let test: Vec<String> = h
        .get("Test")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default();
    let dur = |k: &str| go_duration(h.get(k).and_then(Value::as_i64).unwrap_or(0));
    let retries = h.get("Retries").and_then(Value::as_i64).unwrap_or(0);
    format!(
        "&{{{} {:?} {:?} {:?} '\\x{:02x}'}}",
        go_quoted(&test),
        dur("Interval"),
        dur("Timeout"),
        dur("StartPeriod"),
        retries
    )
}

/// Go's `time.Duration.String()` for whole and fractional seconds.
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ns;
    let h = rest / 3_600_000_000_000;
    rest %= 3_600_000_000_000;
    let m = rest / 60_000_000_000;
    rest %= 60_000_000_000;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let secs = rest as f64 / 1e9;
    let s = format!("{secs:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    out.push_str(&format!("{s}s"));
    out
}

/// The part of a config the cache compares (empty and missing are the same).
fn cache_key(c: &ImageConfig) -> Value {
    let mut v = crate::image::config::config_json(c, false);
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| match x {
            Value::Null => false,
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            Value::String(s) => !s.is_empty(),
            _ => true,
        });
        for k in ["ExposedPorts", "Volumes"] {
            if let Some(Value::Object(o)) = m.get_mut(k) {
                for x in o.values_mut() {
                    *x = json!({});
                }
            }
        }
    }
    v
}

/// Whether an `X-Registry-Config` key names the registry `domain`.
fn registry_key_matches(key: &str, domain: &str) -> bool {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    host == domain
        || (domain == "docker.io" && matches!(host, "index.docker.io" | "registry-1.docker.io"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_strings_as_docker_writes_them() {
        assert_eq!(
            go_quoted(&["/bin/sh".into(), "-c".into(), "echo \"x\"".into()]),
            r#"["/bin/sh" "-c" "echo \"x\""]"#
        );
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        let h =
            json!({"Test": ["CMD-SHELL", "curl x"], "Interval": 30_000_000_000i64, "Retries": 3});
        assert_eq!(
            health_comment(&h),
            r#"&{["CMD-SHELL" "curl x"] "30s" "0s" "0s" '\x03'}"#
        );
        assert!(registry_key_matches(
            "https://index.docker.io/v1/",
            "docker.io"
        ));
        assert!(registry_key_matches("localhost:5000", "localhost:5000"));
    }

    #[test]
    fn cache_key_ignores_empty_fields() {
        let mut a = ImageConfig::default();
        let mut b = ImageConfig {
            env: Some(Vec::new()),
            labels: Some(BTreeMap::new()),
            ..ImageConfig::default()
        };
        assert_eq!(cache_key(&a), cache_key(&b));
        a.cmd = Some(vec!["x".into()]);
        assert_ne!(cache_key(&a), cache_key(&b));
        b.cmd = Some(vec!["x".into()]);
        assert_eq!(cache_key(&a), cache_key(&b));
    }
}
