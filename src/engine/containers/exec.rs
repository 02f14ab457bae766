//! `docker exec`: processes started in a running container.
//!
//! An exec is created (`POST /containers/{id}/exec`), then started once. Its
//! process runs under a monitor of its own, forked by the container's monitor (exec
//! mode: the container's namespaces and cgroup), which owns its stdio and records
//! its exit in `<exec-root>/containers/<exec ID>`, so the process goes on when the
//! daemon restarts. What the daemon knows of an
//! exec lives in memory, as in Docker Engine: after a restart its ID is unknown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::spec;
use crate::engine::{Engine, Error, Result};
use crate::init::spec::{AttachStreams, ContainerSpec, LogSpec, Namespace, NetworkMode, Shm};

/// What `POST /containers/{id}/exec` asks for.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub privileged: bool,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: String,
    pub console_size: Option<(u16, u16)>,
}

#[derive(Debug, Clone, Default)]
struct ExecState {
    started: bool,
    running: bool,
    pid: i32,
    exit_code: Option<i32>,
}

impl ExecState {
    /// Docker's refusal of a second start.
    fn check_not_started(&self, id: &str) -> Result<()> {
        if self.running {
            return Err(Error::conflict(format!(
                "Error: Exec command {id} is already running"
            )));
        }
        if self.started {
            return Err(Error::conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        Ok(())
    }
}

/// One exec.
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    state: Mutex<ExecState>,
    /// The exit code, once the process ended.
    exited: watch::Sender<Option<i32>>,
}

impl Exec {
    fn state(&self) -> ExecState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, f: impl FnOnce(&mut ExecState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Waits until the process ended; its exit code.
    pub async fn exited(&self) -> i32 {
        let mut rx = self.exited.subscribe();
        loop {
            if let Some(code) = *rx.borrow_and_update() {
                return code;
            }
            if rx.changed().await.is_err() {
                return self.state().exit_code.unwrap_or(-1);
            }
        }
    }
}

/// The daemon's execs, by ID.
#[derive(Default)]
pub struct Execs {
    all: Mutex<HashMap<String, Arc<Exec>>>,
}

impl Execs {
    pub fn get(&self, id: &str) -> Result<Arc<Exec>> {
        self.all
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {id}")))
    }

    fn insert(&self, e: Arc<Exec>) {
        self.all
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(e.id.clone(), e);
    }

    /// Forgets an exec (a health probe once it ended).
    pub fn remove(&self, id: &str) {
        self.all
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Forgets a container's execs once it stopped, as Docker does.
    pub fn remove_container(&self, container_id: &str) {
        self.all
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| e.container_id != container_id);
    }

    /// The IDs of a container's execs (`ExecIDs` in inspect).
    pub fn of_container(&self, container_id: &str) -> Vec<String> {
        self.all
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.container_id == container_id && e.state().running)
            .map(|e| e.id.clone())
            .collect()
    }
}

/// How a started exec is reached: the stream of an attached start.
pub struct Started {
    pub exec: Arc<Exec>,
    pub stream: Option<tokio::net::UnixStream>,
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, name: &str, config: ExecConfig) -> Result<String> {
        let h = self.containers.get(name)?;
        if config.cmd.is_empty() {
            return Err(Error::invalid("No exec command specified"));
        }
        if !h.record().container.state.running {
            return Err(Error::conflict(format!(
                "container {} is not running",
                h.id
            )));
        }
        if h.record().container.state.restarting {
            return Err(Error::conflict(format!(
                "Container {} is restarting, wait until the container is running",
                h.id
            )));
        }
        if h.record().container.state.paused {
            return Err(Error::conflict(format!(
                "Container {name} is paused, unpause the container before exec"
            )));
        }
        if super::detach::parse(&config.detach_keys).is_err() {
            return Err(Error::invalid(format!(
                "Invalid escape keys ({}) provided",
                config.detach_keys
            )));
        }
        let id = crate::engine::random_id()?;
        let (exited, _) = watch::channel(None);
        self.execs.insert(Arc::new(Exec {
            id: id.clone(),
            container_id: h.id.clone(),
            config,
            state: Mutex::new(ExecState::default()),
            exited,
        }));
        let mut attrs = self.container_attributes(&h.record().container);
        attrs.insert("execID".into(), id.clone());
        let action = format!("exec_create: {}", exec_line(&self.execs.get(&id)?.config));
        self.events.emit("container", &action, &h.id, attrs);
        Ok(id)
    }

    /// `POST /exec/{id}/start`: starts the process; with `attach`, also returns the
    /// stream of its stdio (frames without a TTY, raw with one).
    pub async fn exec_start(self: &Arc<Self>, id: &str, attach: bool) -> Result<Started> {
        self.exec_check_startable(id)?;
        let exec = self.execs.get(id)?;
        {
            let mut s = exec.state.lock().unwrap_or_else(|p| p.into_inner());
            s.check_not_started(id)?;
            s.started = true;
        }
        let h = self.containers.get(&exec.container_id)?;
        let r = h.snapshot();
        if !r.container.state.running {
            return Err(Error::conflict(format!(
                "container {} is not running",
                h.id
            )));
        }
        let spec = exec_spec(&r, &exec, r.container.state.pid, &self.config().containers)?;
        let mut initial = Vec::new();
        let mut ours = None;
        if attach {
            let (a, b) = std::os::unix::net::UnixStream::pair()?;
            a.set_nonblocking(true)?;
            ours = Some(tokio::net::UnixStream::from_std(a)?);
            let c = &exec.config;
            initial.push((
                b,
                AttachStreams {
                    stdin: c.attach_stdin,
                    stdout: c.attach_stdout,
                    stderr: c.attach_stderr,
                },
            ));
        }
        let mut attrs = self.container_attributes(&r.container);
        attrs.insert("execID".into(), id.to_string());
        match self.runtime.start_exec(&h.id, spec, initial).await {
            Ok(started) => {
                exec.set(|s| {
                    s.running = true;
                    s.pid = started.pid;
                });
                self.events.emit(
                    "container",
                    &format!("exec_start: {}", exec_line(&exec.config)),
                    &h.id,
                    attrs.clone(),
                );
                let engine = self.clone();
                let e = exec.clone();
                tokio::spawn(async move {
                    let record = engine.runtime.wait(&e.id).await;
                    e.set(|s| {
                        s.running = false;
                        s.exit_code = Some(record.exit_code);
                    });
                    engine.runtime.remove_state(&e.id);
                    let mut attrs = attrs;
                    attrs.insert("exitCode".into(), record.exit_code.to_string());
                    engine
                        .events
                        .emit("container", "exec_die", &e.container_id, attrs);
                    e.exited.send_replace(Some(record.exit_code));
                });
                Ok(Started { exec, stream: ours })
            }
            Err(failure) => {
                // Docker's 126 for a command that cannot run, whatever the reason.
                exec.set(|s| s.exit_code = Some(126));
                exec.exited.send_replace(Some(126));
                self.runtime.remove_state(id);
                Err(Error::internal(format!(
                    "OCI runtime exec failed: exec failed: unable to start container process: {}: unknown",
                    failure.message
                )))
            }
        }
    }

    /// The state directories of execs a previous daemon started, among `state_ids`
    /// (the runtime's, listed at start before any exec of this daemon): their IDs went
    /// with it, so each goes once its process has ended — at once for those that
    /// ended while no daemon ran.
    pub fn sweep_exec_state(self: &Arc<Self>, state_ids: Vec<String>) {
        let known: std::collections::HashSet<String> =
            self.containers.all().iter().map(|h| h.id.clone()).collect();
        for id in state_ids {
            if known.contains(&id) || self.execs.get(&id).is_ok() {
                continue;
            }
            let engine = self.clone();
            tokio::spawn(async move {
                let record = engine.runtime.wait(&id).await;
                tracing::debug!(exec_id = %id, "exec of a previous daemon ended (exit code {})", record.exit_code);
                engine.runtime.remove_state(&id);
            });
        }
    }

    /// Docker's refusals of a start, checked before a connection is upgraded: an
    /// unknown exec (404), one started before, or a container no longer running
    /// (409).
    pub fn exec_check_startable(&self, id: &str) -> Result<()> {
        let exec = self.execs.get(id)?;
        exec.state().check_not_started(id)?;
        let h = self.containers.get(&exec.container_id)?;
        if !h.record().container.state.running {
            return Err(Error::conflict(format!(
                "container {} is not running",
                h.id
            )));
        }
        Ok(())
    }

    /// `POST /exec/{id}/resize`.
    pub async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let exec = self.execs.get(id)?;
        if !exec.state().running {
            return Err(Error::conflict(format!("Exec {id} is not running")));
        }
        self.runtime.resize(id, height, width).await
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<Value> {
        let exec = self.execs.get(id)?;
        let s = exec.state();
        let c = &exec.config;
        let (entrypoint, arguments) = match c.cmd.split_first() {
            Some((first, rest)) => (first.clone(), rest.to_vec()),
            None => (String::new(), Vec::new()),
        };
        Ok(json!({
            "ID": exec.id,
            "Running": s.running,
            "ExitCode": s.exit_code,
            "ProcessConfig": {
                "tty": c.tty,
                "entrypoint": entrypoint,
                "arguments": arguments,
                "privileged": c.privileged,
                "user": c.user,
            },
            "OpenStdin": c.attach_stdin,
            "OpenStderr": c.attach_stderr,
            "OpenStdout": c.attach_stdout,
            "CanRemove": false,
            "ContainerID": exec.container_id,
            "DetachKeys": c.detach_keys,
            "Pid": s.pid,
        }))
    }
}

/// `sh -c echo hi`, as Docker's exec events name the command.
fn exec_line(c: &ExecConfig) -> String {
    c.cmd.join(" ")
}

/// The monitor's spec for an exec in the container of `r`, whose first process is
/// `pid`: the container's environment, user, working directory and capabilities,
/// each overridden by the exec's own.
fn exec_spec(
    r: &super::Record,
    exec: &Exec,
    pid: i32,
    defaults: &crate::config::ContainerDefaults,
) -> Result<ContainerSpec> {
    let c = &r.container;
    let s = &r.settings;
    let e = &exec.config;
    let mut env = spec::process_env(&c.config.hostname, e.tty, &c.config.env);
    spec::merge_env(&mut env, &e.env);
    let cwd = [&e.working_dir, &c.config.working_dir]
        .into_iter()
        .find(|w| !w.is_empty())
        .cloned()
        .unwrap_or_else(|| "/".to_string());
    let privileged = e.privileged || s.privileged;
    Ok(ContainerSpec {
        id: exec.id.clone(),
        rootfs: PathBuf::from("/"),
        readonly_rootfs: false,
        args: e.cmd.clone(),
        env,
        cwd,
        user: if e.user.is_empty() {
            c.config.user.clone()
        } else {
            e.user.clone()
        },
        hostname: c.config.hostname.clone(),
        domainname: String::new(),
        tty: e.tty,
        open_stdin: e.attach_stdin,
        stdin_once: true,
        console_size: e.console_size,
        network: NetworkMode::Host,
        pid: Namespace::Private,
        ipc: Namespace::Private,
        uts: Namespace::Private,
        shm: Shm::default(),
        privileged,
        capabilities: spec::capabilities(privileged, &s.cap_add, &s.cap_drop)?,
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
        mounts: Vec::new(),
        init: false,
        cgroup_path: r.cgroup_path(),
        log: LogSpec {
            driver: "none".into(),
            path: PathBuf::new(),
            max_size: None,
            max_file: 1,
            journal_fields: Vec::new(),
        },
        state_dir: PathBuf::new(),
        initial_attach: Vec::new(),
        exec_in: Some(pid),
        systemd_scope: false,
        resources: Default::default(),
        oom_score_adj: s.limits.oom_score_adj,
        rlimits: spec::rlimits(s, defaults)?,
        group_add: s.group_add.clone(),
        sysctls: Vec::new(),
        devices: Vec::new(),
        device_rules: Vec::new(),
        cgroupns_host: s.cgroupns_host,
        // The container's own, filled in by its monitor.
        seccomp: None,
        no_new_privileges: false,
        apparmor_profile: None,
    })
}
