//! The life of a container: start, stop, kill, restart, exits, wait, remove, rename,
//! resize, top, prune, and picking up running containers after a daemon restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{Handle, Lifecycle, spec};
use crate::engine::{Engine, Error, Filters, Result};
use crate::init::spec::ExitRecord;
use crate::runtime::MonitorState;

/// Docker's default seconds between the stop signal and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// `wait` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::invalid(format!("invalid condition: \"{other}\""))),
        }
    }
}

/// The outcome of a wait.
#[derive(Debug, Clone)]
pub struct WaitOutcome {
    pub status_code: i64,
    pub error: Option<String>,
}

/// `SIGTERM`, `TERM`, `term`, `15` → 15.
pub fn parse_signal(s: &str) -> Result<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::invalid(format!("Invalid signal: {s}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            if let Some(rt) = name.strip_prefix("RTMIN") {
                let off: i32 = if rt.is_empty() {
                    0
                } else {
                    rt.trim_start_matches('+')
                        .parse()
                        .map_err(|_| Error::invalid(format!("Invalid signal: {s}")))?
                };
                return Ok(libc::SIGRTMIN() + off);
            }
            return Err(Error::invalid(format!("Invalid signal: {s}")));
        }
    };
    Ok(n)
}

impl Engine {
    /// Why the daemon must keep running although no client is connected, if it
    /// must: a running container with a restart policy, a health check or `--rm`
    /// (its restart, probes and removal are the daemon's work), one restarting, or
    /// any running container when `live-restore` is off (an exit would stop it).
    /// Plain running containers need nothing: their monitors carry on.
    pub fn keeps_daemon_alive(&self) -> Option<String> {
        let live_restore = self.config().live_restore;
        self.containers.all().iter().find_map(|h| {
            let r = h.record();
            let (c, s) = (&r.container, &r.settings);
            let why = if c.state.restarting {
                "is restarting"
            } else if !c.state.running {
                return None;
            } else if !s.restart_policy.is_none() {
                "has a restart policy"
            } else if c.state.health.is_some() {
                "has a health check"
            } else if s.auto_remove {
                "is to be removed when it exits (--rm)"
            } else if !live_restore {
                "runs, and live-restore is off"
            } else {
                return None;
            };
            Some(format!("container {} {why}", &h.id[..12]))
        })
    }

    /// Picks up containers recorded as running: reattaches to live monitors, records
    /// the exits of those that finished while the daemon was away.
    pub async fn restore_containers(self: &Arc<Self>) {
        // Taken before any health probe (an exec) of this daemon can start.
        let runtime_states = self.runtime.state_ids();
        let mut by_policy = Vec::new();
        for h in self.containers.all() {
            if h.record().container.state.restarting {
                // The daemon went away while a restart was pending: start it now.
                by_policy.push(h.clone());
                continue;
            }
            if !h.record().container.state.running {
                let (ran, auto_remove, wants_restart) = {
                    let r = h.record();
                    let c = &r.container;
                    let wants = r.settings.restart_policy.wants_restart(
                        c.state.exit_code,
                        c.has_been_manually_stopped,
                        c.restart_count,
                    );
                    (c.has_been_started_before, r.settings.auto_remove, wants)
                };
                let _op = h.op.lock().await;
                if ran && auto_remove {
                    // A `--rm` container whose removal a crash interrupted.
                    if let Err(e) = self.remove_locked(&h, true, true).await {
                        tracing::warn!(container_id = %h.id, "failed to remove an exited --rm container: {e}");
                    }
                } else if ran && wants_restart {
                    // Its restart policy brings it back with the daemon (after a
                    // reboot, or an exit while the daemon was stopped).
                    h.reset_restart();
                    by_policy.push(h.clone());
                }
                continue;
            }
            match self.runtime.state(&h.id).await {
                MonitorState::Running { pid } => {
                    tracing::info!(container_id = %h.id, "reattached to running container (pid {pid})");
                    let (engine, r) = (self.clone(), h.snapshot());
                    let _ = tokio::task::spawn_blocking(move || {
                        engine.network_reattach(
                            &r,
                            crate::engine::network::manage::monitor_pid_of(pid),
                        )
                    })
                    .await;
                    self.watch_exit(h.clone());
                    self.start_health(&h);
                }
                MonitorState::Exited(rec) => {
                    tracing::info!(container_id = %h.id, "container exited while the daemon was away (exit code {})", rec.exit_code);
                    self.on_exit(&h, rec).await;
                }
                MonitorState::Gone => {
                    let rec = ExitRecord {
                        exit_code: 255,
                        finished_at: crate::timefmt::rfc3339_nano(SystemTime::now()),
                        oom_killed: false,
                        error: Some(
                            "the container's monitor is gone (host rebooted or monitor killed)"
                                .to_string(),
                        ),
                        network_released: false,
                    };
                    tracing::warn!(container_id = %h.id, "container monitor is gone; marking the container exited");
                    self.on_exit(&h, rec).await;
                }
            }
        }
        self.start_by_policy(by_policy);
        self.sweep_exec_state(runtime_states);
    }

    /// The starts the daemon makes at its own start, in the background: the daemon
    /// serves (and sets up host networking, which a start may wait for) meanwhile.
    /// Containers that join another's namespaces start after the others.
    fn start_by_policy(self: &Arc<Self>, handles: Vec<Arc<Handle>>) {
        if handles.is_empty() {
            return;
        }
        let (joiners, donors): (Vec<_>, Vec<_>) = handles.into_iter().partition(|h| {
            let s = &h.record().settings;
            s.pid_mode.target().is_some()
                || s.ipc_mode.target().is_some()
                || matches!(s.network_mode, super::settings::NetMode::Container(_))
        });
        let engine = self.clone();
        tokio::spawn(async move {
            let mut first = tokio::task::JoinSet::new();
            for h in donors {
                first.spawn(engine.clone().start_for_policy(h));
            }
            while first.join_next().await.is_some() {}
            for h in joiners {
                engine.clone().start_for_policy(h).await;
            }
        });
    }

    async fn start_for_policy(self: Arc<Self>, h: Arc<Handle>) {
        tracing::info!(container_id = %h.id, "starting the container (restart policy)");
        let _op = h.op.lock().await;
        if let Err(e) = self.start_locked(&h).await {
            tracing::warn!(container_id = %h.id, "failed to restart the container: {e}");
        }
    }

    /// `POST /containers/{id}/start`.
    pub async fn container_start(self: &Arc<Self>, name: &str) -> Result<()> {
        let h = self.containers.get(name)?;
        let _op = h.op.lock().await;
        if h.record().container.state.restarting {
            return Err(Error::NotModified("container is already running".into()));
        }
        if !h.record().container.state.running {
            h.reset_restart();
        }
        self.start_locked(&h).await
    }

    pub(super) async fn start_locked(self: &Arc<Self>, h: &Arc<Handle>) -> Result<()> {
        let r = h.snapshot();
        if r.container.state.removal_in_progress || h.lifecycle.borrow().removed {
            return Err(Error::conflict(
                "container is marked for removal and cannot be started",
            ));
        }
        if r.container.state.running && !r.container.state.restarting {
            return Err(Error::NotModified("container is already running".into()));
        }
        let id = h.id.clone();
        let engine = self.clone();
        let dir = h.dir.clone();
        let state_dir = self.runtime.state_dir(&h.id);
        let t0 = std::time::Instant::now();
        let record = r.clone();
        let sd = state_dir.clone();
        let namespaces = match self.namespace_setup(h, &r) {
            Ok(n) => n,
            Err(e) => {
                // Docker's own words reach the client, unwrapped.
                let _ = self.start_failed(h, e.to_string(), 128, false).await;
                return Err(e);
            }
        };
        let prepared = tokio::task::spawn_blocking(move || -> Result<_> {
            let rootfs = engine.images.mount_rw_layer(&id)?;
            let volumes = engine.container_volume_mounts(&record, true)?;
            let mounted = t0.elapsed();
            let net = engine.network_setup(&record, &dir, &sd);
            tracing::debug!(container_id = %id, "start: root filesystem and volumes mounted in {mounted:?}, networking set up in {:?}", t0.elapsed() - mounted);
            Ok((rootfs, volumes, net))
        })
        .await
        .map_err(|e| Error::internal(format!("start: {e}")))?;
        let (rootfs, volumes, net) = match prepared {
            Ok(p) => p,
            Err(e) => return Err(self.start_failed(h, e.to_string(), 128, false).await),
        };
        let mut net = match net {
            Ok(n) => n,
            Err(e) => {
                let message = e.to_string();
                let _ = self.start_failed(h, message, 128, false).await;
                return Err(e);
            }
        };
        let pending = h.take_pending_attach();
        let spec = spec::build(
            &r,
            &self.config().containers,
            rootfs,
            volumes,
            state_dir.clone(),
            &net,
            namespaces,
        )
        .and_then(|mut spec| {
            let s = &r.settings;
            self.security
                .confine(&mut spec, &s.security, s.privileged)?;
            Ok(spec)
        });
        let spec = match spec {
            Ok(s) => s,
            Err(e) => {
                self.abort_network(h, net).await;
                return Err(self.start_failed(h, e.to_string(), 128, false).await);
            }
        };
        let t1 = std::time::Instant::now();
        let cgroup_path = spec.cgroup_path.clone();
        let started = self.runtime.start(spec, pending).await;
        tracing::debug!(container_id = %h.id, "start: monitor spawned, namespaces and mounts set up, command exec'd in {:?}", t1.elapsed());
        match started {
            Ok(started) => {
                let engine = self.clone();
                let sd = state_dir.clone();
                let monitor_pid = started.monitor_pid;
                net = tokio::task::spawn_blocking(move || {
                    engine.network_started(&mut net, monitor_pid, &sd);
                    net
                })
                .await
                .map_err(|e| Error::internal(format!("start: {e}")))?;
                let now = crate::timefmt::rfc3339_nano(SystemTime::now());
                h.update(|c| {
                    c.state.running = true;
                    c.state.restarting = false;
                    c.state.pid = started.pid;
                    c.state.exit_code = 0;
                    c.state.error.clear();
                    c.state.oom_killed = false;
                    c.state.started_at = now;
                    c.has_been_started_before = true;
                    c.has_been_manually_stopped = false;
                    c.network_settings.networks = net.endpoints.clone();
                    c.network_settings.endpoints_kept = true;
                    c.network_settings.ports = net.ports.clone();
                    c.network_settings.sandbox_key = net.sandbox_key.clone();
                    c.cgroup_path = cgroup_path;
                })
                .await?;
                h.lifecycle.send_modify(|l| {
                    l.running = true;
                    l.error = None;
                });
                for ep in &net.endpoints {
                    self.network_event("connect", &ep.network_id, &ep.network, Some(&h.id));
                }
                let attrs = self.container_attributes(&h.record().container);
                self.events.emit("container", "start", &h.id, attrs);
                tracing::debug!(container_id = %h.id, "container started (pid {})", started.pid);
                self.watch_exit(h.clone());
                self.start_health(h);
                Ok(())
            }
            Err(e) => {
                self.abort_network(h, net).await;
                Err(self.start_failed(h, e.message, e.exit_code, true).await)
            }
        }
    }

    /// Undoes the networking of a start that failed.
    async fn abort_network(
        self: &Arc<Self>,
        h: &Arc<Handle>,
        net: crate::engine::network::attach::Setup,
    ) {
        let engine = self.clone();
        let id = h.id.clone();
        let _ = tokio::task::spawn_blocking(move || engine.network_abort(&id, net)).await;
    }

    /// Records a failed start as Docker does (exit code, error), cleans up, and
    /// removes the container when it was created with `--rm`.
    async fn start_failed(
        self: &Arc<Self>,
        h: &Arc<Handle>,
        message: String,
        exit_code: i32,
        from_runtime: bool,
    ) -> Error {
        let _ = h
            .update(|c| {
                c.state.exit_code = exit_code;
                c.state.error = message.clone();
                c.state.running = false;
                c.state.restarting = false;
            })
            .await;
        let id = h.id.clone();
        let engine = self.clone();
        let record = h.snapshot();
        let handle = h.clone();
        let _ = tokio::task::spawn_blocking(move || {
            engine.release_shm(&handle);
            engine.container_volumes_stopped(&record, false);
            engine.images.unmount_rw_layer(&id)
        })
        .await;
        if from_runtime {
            self.remove_runtime_state(&h.id).await;
        }
        // The start request reports the failure; waiters see only the exit code, as
        // with Docker (an error here would make the CLI print a second message).
        h.lifecycle.send_modify(|l| {
            l.exits += 1;
            l.running = false;
            l.exit_code = exit_code;
            l.error = None;
        });
        if h.record().settings.auto_remove {
            if let Err(e) = self.remove_locked(h, true, true).await {
                tracing::error!(container_id = %h.id, "can't remove container: {e}");
            }
        }
        let lower = message.to_ascii_lowercase();
        if exit_code == 126
            || exit_code == 127
            || lower.contains("executable file not found")
            || lower.contains("no such file or directory")
            || lower.contains("permission denied")
        {
            Error::invalid(format!("failed to create task for container: {message}"))
        } else {
            Error::internal(format!("failed to create task for container: {message}"))
        }
    }

    /// Waits for the monitor to report the exit, then records it.
    fn watch_exit(self: &Arc<Self>, h: Arc<Handle>) {
        let engine = self.clone();
        tokio::spawn(async move {
            let rec = engine.runtime.wait(&h.id).await;
            engine.on_exit(&h, rec).await;
        });
    }

    /// Records an exit: state, unmount, `die` event, waiters, `--rm`.
    async fn on_exit(self: &Arc<Self>, h: &Arc<Handle>, mut rec: ExitRecord) {
        self.execs.remove_container(&h.id);
        let cgroup_path = h.record().cgroup_path();
        if cgroup_path.ends_with(".scope") && self.runtime.finish_scope(&cgroup_path).await {
            rec.oom_killed = true;
        }
        let mut started_at = String::new();
        let auto_remove = h.record().settings.auto_remove;
        let before = h.snapshot();
        let ended = before.clone();
        let record_exit = |c: &mut super::record::Container| {
            started_at = c.state.started_at.clone();
            for e in &mut c.network_settings.networks {
                e.clear_runtime();
            }
            c.network_settings.ports.clear();
            c.network_settings.sandbox_key.clear();
            c.state.running = false;
            c.state.paused = false;
            c.state.pid = 0;
            c.state.exit_code = rec.exit_code;
            c.state.finished_at = rec.finished_at.clone();
            c.state.oom_killed = rec.oom_killed;
            c.state.error = rec.error.clone().unwrap_or_default();
        };
        // A `--rm` container is removed right after; its exit need not reach the disk
        // (a crash in between is handled at start: stopped `--rm` containers are removed).
        let saved = if auto_remove {
            h.update_in_memory(record_exit);
            Ok(())
        } else {
            h.update(record_exit).await
        };
        if let Err(e) = saved {
            tracing::error!(container_id = %h.id, "failed to record the container's exit: {e}");
        }
        let id = h.id.clone();
        let engine = self.clone();
        let t0 = std::time::Instant::now();
        let state_dir = self.runtime.state_dir(&h.id);
        let released = rec.network_released;
        let handle = h.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || {
            engine.network_stopped(&before, &state_dir, released);
            engine.release_shm(&handle);
            engine.container_volumes_stopped(&before, true);
            engine.images.unmount_rw_layer(&id)
        })
        .await
        {
            tracing::warn!(container_id = %h.id, "failed to unmount the container's root filesystem: {e}");
        }
        self.remove_runtime_state(&h.id).await;
        tracing::debug!(container_id = %h.id, "exit: code {} recorded, root filesystem unmounted in {:?}", rec.exit_code, t0.elapsed());
        if rec.oom_killed {
            let attrs = self.container_attributes(&h.record().container);
            self.events.emit("container", "oom", &h.id, attrs);
        }
        let mut attrs = self.container_attributes(&h.record().container);
        attrs.insert("exitCode".into(), rec.exit_code.to_string());
        let started = crate::timefmt::parse_timestamp(&started_at).unwrap_or(0);
        let finished = crate::timefmt::parse_timestamp(&rec.finished_at).unwrap_or(0);
        attrs.insert(
            "execDuration".into(),
            ((finished - started).max(0) / 1_000_000_000).to_string(),
        );
        self.events.emit("container", "die", &h.id, attrs);
        for ep in &ended.container.network_settings.networks {
            if !ep.endpoint_id.is_empty() {
                self.network_event("disconnect", &ep.network_id, &ep.network, Some(&h.id));
            }
        }
        // A container its policy restarts stays "running" for `not-running` waiters,
        // as with Docker.
        let restarting = !auto_remove && {
            let ran = Duration::from_nanos((finished - started).max(0) as u64);
            self.schedule_restart(h, rec.exit_code, ran).await
        };
        h.lifecycle.send_modify(|l| {
            l.exits += 1;
            l.running = restarting;
            l.exit_code = rec.exit_code;
            l.error = rec.error.clone();
        });
        if auto_remove {
            let engine = self.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let _op = h.op.lock().await;
                if h.lifecycle.borrow().removed || h.record().container.state.running {
                    return;
                }
                if let Err(e) = engine.remove_locked(&h, true, true).await {
                    tracing::error!(container_id = %h.id, "failed to remove container after it exited: {e}");
                }
            });
        }
    }

    /// Sends `signal` and emits the `kill` event.
    /// A paused container is thawed after the signal, so that its process can
    /// handle it, as Docker does: with an `unpause` for any signal but SIGKILL; after
    /// SIGKILL, whose process a frozen cgroup would keep, silently (it ends).
    async fn signal(self: &Arc<Self>, h: &Arc<Handle>, signal: i32) -> Result<()> {
        self.runtime.kill(&h.id, signal).await?;
        let mut attrs = self.container_attributes(&h.record().container);
        attrs.insert("signal".into(), signal.to_string());
        self.events.emit("container", "kill", &h.id, attrs);
        if h.record().container.state.paused {
            if signal == libc::SIGKILL {
                self.unfreeze_for_kill(h).await;
            } else {
                self.thaw(h).await?;
            }
        }
        Ok(())
    }

    /// Waits until the exit count passes `after`, at most `limit`.
    async fn wait_exit_after(
        h: &Handle,
        mut rx: watch::Receiver<Lifecycle>,
        after: u64,
        limit: Option<Duration>,
    ) -> bool {
        let wait = rx.wait_for(|l| l.exits > after || l.removed);
        let done = match limit {
            None => wait.await.is_ok(),
            Some(d) => matches!(tokio::time::timeout(d, wait).await, Ok(Ok(_))),
        };
        done || !h.record().container.state.running
    }

    /// `POST /containers/{id}/stop`.
    pub async fn container_stop(
        self: &Arc<Self>,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let h = self.containers.get(name)?;
        let _op = h.op.lock().await;
        if !h.record().container.state.running {
            return Err(Error::NotModified("container is already stopped".into()));
        }
        self.stop_locked(&h, timeout, signal).await
    }

    async fn stop_locked(
        self: &Arc<Self>,
        h: &Arc<Handle>,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let r = h.snapshot();
        let sig =
            match signal
                .filter(|s| !s.is_empty())
                .or(r.container.config.stop_signal.as_deref())
            {
                Some(s) => parse_signal(s)?,
                None => libc::SIGTERM,
            };
        let secs = timeout
            .or(r.container.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        if r.container.state.restarting {
            // Nothing runs: the pending restart is called off.
            self.end_restarting(h).await?;
            h.update(|c| c.has_been_manually_stopped = true).await?;
            let attrs = self.container_attributes(&h.record().container);
            self.events.emit("container", "stop", &h.id, attrs);
            return Ok(());
        }
        let rx = h.lifecycle.subscribe();
        let before = rx.borrow().exits;
        if !self.is_shutting_down() {
            h.cancel_restart();
            h.update(|c| c.has_been_manually_stopped = true).await?;
        }
        if let Err(e) = self.signal(h, sig).await {
            if h.record().container.state.running {
                return Err(e);
            }
        }
        let limit = (secs >= 0).then(|| Duration::from_secs(secs as u64));
        if !Self::wait_exit_after(h, rx.clone(), before, limit).await {
            tracing::info!(container_id = %h.id, "Container failed to exit within {secs}s of signal {sig} - using the force");
            let _ = self.signal(h, libc::SIGKILL).await;
            if !Self::wait_exit_after(h, rx, before, Some(Duration::from_secs(30))).await {
                return Err(Error::internal(format!(
                    "container {} did not exit after SIGKILL",
                    h.id
                )));
            }
        }
        let attrs = self.container_attributes(&h.record().container);
        self.events.emit("container", "stop", &h.id, attrs);
        Ok(())
    }

    /// Daemon shutdown with `live-restore: false`: every running container is
    /// stopped with its stop signal and timeout, all at once, within `limit`; they
    /// are not marked as stopped by a user, so their restart policies bring them
    /// back at the next start.
    pub async fn shutdown_containers(self: &Arc<Self>, limit: Option<Duration>) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Release);
        let mut stops = tokio::task::JoinSet::new();
        for h in self.containers.all() {
            if !h.record().container.state.running {
                continue;
            }
            let engine = self.clone();
            stops.spawn(async move {
                let _op = h.op.lock().await;
                if h.record().container.state.running
                    && let Err(e) = engine.stop_locked(&h, None, None).await
                {
                    tracing::warn!(container_id = %h.id, "stopping the container at shutdown: {e}");
                }
            });
        }
        let all = async { while stops.join_next().await.is_some() {} };
        match limit {
            Some(d) => {
                if tokio::time::timeout(d, all).await.is_err() {
                    tracing::warn!("shutdown-timeout reached while stopping containers");
                }
            }
            None => all.await,
        }
    }

    /// `POST /containers/{id}/kill`.
    pub async fn container_kill(self: &Arc<Self>, name: &str, signal: Option<&str>) -> Result<()> {
        let h = self.containers.get(name).map_err(|e| match e {
            Error::NotFound(m) => Error::NotFound(format!("cannot kill container: {name}: {m}")),
            other => other,
        })?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => libc::SIGKILL,
        };
        if !h.record().container.state.running {
            return Err(Error::conflict(format!(
                "cannot kill container: {name}: container {} is not running",
                h.id
            )));
        }
        if h.record().container.state.restarting {
            return Err(Error::conflict(format!(
                "cannot kill container: {name}: Container {} is restarting, wait until the container is running",
                h.id
            )));
        }
        // As Docker: SIGKILL, or the stop signal (any signal when none is set),
        // calls off the restart policy for this exit; any kill counts as a stop.
        let stop_signal = h.record().container.config.stop_signal.clone();
        let ends = sig == libc::SIGKILL
            || stop_signal
                .as_deref()
                .filter(|s| !s.is_empty())
                .is_none_or(|s| parse_signal(s).is_ok_and(|s| s == sig));
        if ends {
            h.cancel_restart();
        }
        let _ = h.update(|c| c.has_been_manually_stopped = true).await;
        let rx = h.lifecycle.subscribe();
        let before = rx.borrow().exits;
        self.signal(&h, sig).await.map_err(|e| match e {
            Error::Conflict(m) => Error::conflict(format!("cannot kill container: {name}: {m}")),
            other => other,
        })?;
        if sig == libc::SIGKILL {
            // Docker returns from a SIGKILL once the container is gone.
            Self::wait_exit_after(&h, rx, before, Some(Duration::from_secs(30))).await;
        }
        Ok(())
    }

    /// `POST /containers/{id}/restart`.
    pub async fn container_restart(
        self: &Arc<Self>,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let h = self.containers.get(name)?;
        let _op = h.op.lock().await;
        if h.record().container.state.running {
            self.stop_locked(&h, timeout, signal).await?;
        }
        h.reset_restart();
        self.start_locked(&h).await?;
        let attrs = self.container_attributes(&h.record().container);
        self.events.emit("container", "restart", &h.id, attrs);
        Ok(())
    }

    /// Registers a wait and returns the future that resolves at the condition. The
    /// registration happens before this returns, so an exit right after is not missed.
    pub fn container_wait(
        self: &Arc<Self>,
        name: &str,
        condition: WaitCondition,
    ) -> Result<impl std::future::Future<Output = WaitOutcome> + Send + 'static> {
        let h = self.containers.get(name)?;
        let mut rx = h.lifecycle.subscribe();
        let now = rx.borrow().clone();
        // Running or not as waiters see it: the record says "stopped" a moment before
        // the exit code reaches the lifecycle, and a waiter must not answer in between.
        let running = now.running;
        Ok(async move {
            let outcome = |l: &Lifecycle| WaitOutcome {
                status_code: l.exit_code as i64,
                error: l.error.clone(),
            };
            match condition {
                WaitCondition::NotRunning if !running => outcome(&now),
                // Running (or restarting) now: until its next exit, even one its
                // restart policy follows with a restart, as Docker's waiters.
                WaitCondition::NotRunning | WaitCondition::NextExit => {
                    match rx.wait_for(|l| l.exits > now.exits || l.removed).await {
                        Ok(l) => outcome(&l),
                        Err(_) => outcome(&now),
                    }
                }
                WaitCondition::Removed => match rx.wait_for(|l| l.removed).await {
                    Ok(l) => outcome(&l),
                    Err(_) => outcome(&now),
                },
            }
        })
    }

    /// `DELETE /containers/{id}`.
    pub async fn container_remove(
        self: &Arc<Self>,
        name: &str,
        force: bool,
        remove_volumes: bool,
    ) -> Result<()> {
        let h = self.containers.get(name)?;
        let _op = h.op.lock().await;
        if h.lifecycle.borrow().removed {
            return Ok(());
        }
        if h.record().container.state.running && !force {
            let what = if h.record().container.state.restarting {
                "restarting"
            } else {
                "running"
            };
            return Err(Error::conflict(format!(
                "cannot remove container \"{name}\": container is {what}: stop the container before removing or force remove"
            )));
        }
        self.remove_locked(&h, force, remove_volumes).await
    }

    async fn remove_locked(
        self: &Arc<Self>,
        h: &Arc<Handle>,
        force: bool,
        remove_volumes: bool,
    ) -> Result<()> {
        h.cancel_restart();
        if h.record().container.state.restarting {
            self.end_restarting(h).await?;
        }
        if h.record().container.state.running {
            if !force {
                return Err(Error::conflict("container is running"));
            }
            let rx = h.lifecycle.subscribe();
            let before = rx.borrow().exits;
            let _ = self.signal(h, libc::SIGKILL).await;
            if !Self::wait_exit_after(h, rx, before, Some(Duration::from_secs(30))).await {
                return Err(Error::internal(format!(
                    "could not kill container {}",
                    h.id
                )));
            }
        }
        h.update_in_memory(|c| c.state.removal_in_progress = true);
        let id = h.id.clone();
        let dir = h.dir.clone();
        let engine = self.clone();
        let t0 = std::time::Instant::now();
        let handle = h.clone();
        let removed = tokio::task::spawn_blocking(move || -> Result<()> {
            // Never delete through a mount a crash may have left.
            engine.release_shm(&handle);
            engine.images.remove_rw_layer(&id)?;
            crate::store::remove_dir_all_robust(&dir)?;
            Ok(())
        })
        .await
        .map_err(|e| Error::internal(format!("remove: {e}")))?;
        if let Err(e) = removed {
            let _ = h
                .update(|c| {
                    c.state.removal_in_progress = false;
                    c.state.dead = true;
                })
                .await;
            return Err(Error::internal(format!(
                "unable to remove filesystem for {}: {e}",
                h.id
            )));
        }
        self.remove_runtime_state(&h.id).await;
        let points = h.record().container.mount_points.clone();
        let engine = self.clone();
        let id = h.id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            engine.release_container_volumes(&id, &points, remove_volumes)
        })
        .await;
        self.containers.remove(&h.id);
        tracing::debug!(container_id = %h.id, "remove: layer and files removed in {:?}", t0.elapsed());
        let attrs = self.container_attributes(&h.record().container);
        self.events.emit("container", "destroy", &h.id, attrs);
        h.lifecycle.send_modify(|l| l.removed = true);
        Ok(())
    }

    /// `POST /containers/{id}/rename`.
    pub async fn container_rename(self: &Arc<Self>, name: &str, new_name: &str) -> Result<()> {
        if new_name.is_empty() {
            return Err(Error::invalid("Neither old nor new names may be empty"));
        }
        let h = self.containers.get(name)?;
        let _op = h.op.lock().await;
        let new = super::names::validate(new_name)?;
        let old = h.record().container.name.clone();
        if old == new {
            return Err(Error::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        self.containers.reserve_name(&new, &h.id)?;
        if let Err(e) = h.update(|c| c.name = new.clone()).await {
            self.containers.release_name(&new, &h.id);
            return Err(e);
        }
        self.containers.release_name(&old, &h.id);
        let r = h.snapshot();
        if r.container.state.running {
            let renamed = self.network_renamed(&r);
            if !renamed.is_empty() {
                h.update(|c| {
                    for (net, names) in &renamed {
                        if let Some(e) = c
                            .network_settings
                            .networks
                            .iter_mut()
                            .find(|e| &e.network_id == net)
                        {
                            e.dns_names = names.clone();
                        }
                    }
                })
                .await?;
            }
        }
        let mut attrs = self.container_attributes(&h.record().container);
        attrs.insert("oldName".into(), old);
        self.events.emit("container", "rename", &h.id, attrs);
        Ok(())
    }

    /// `POST /containers/{id}/resize`.
    pub async fn container_resize(
        self: &Arc<Self>,
        name: &str,
        height: u16,
        width: u16,
    ) -> Result<()> {
        let h = self.containers.get(name)?;
        if !h.record().container.state.running {
            return Err(Error::conflict(format!(
                "container {} is not running",
                h.id
            )));
        }
        if let Err(e) = self.runtime.resize(&h.id, height, width).await {
            if !h.record().container.state.running {
                return Err(Error::conflict(format!(
                    "container {} is not running",
                    h.id
                )));
            }
            return Err(e);
        }
        let mut attrs = self.container_attributes(&h.record().container);
        attrs.insert("height".into(), height.to_string());
        attrs.insert("width".into(), width.to_string());
        self.events.emit("container", "resize", &h.id, attrs);
        Ok(())
    }

    /// `GET /containers/{id}/top`: `ps` on the host, rows of the container's processes.
    pub async fn container_top(
        self: &Arc<Self>,
        name: &str,
        ps_args: &str,
    ) -> Result<serde_json::Value> {
        let h = self.containers.get(name)?;
        if !h.record().container.state.running {
            return Err(Error::conflict(format!(
                "container {} is not running",
                h.id
            )));
        }
        let path = h.record().cgroup_path();
        let pids = self.runtime.pids(&path)?;
        let args: Vec<String> = if ps_args.trim().is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.split_whitespace().map(str::to_string).collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .env_clear()
            .env("PATH", spec::DEFAULT_PATH)
            .output()
            .await
            .map_err(|e| Error::internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(Error::internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let top = parse_ps(&text, &pids)?;
        let attrs = self.container_attributes(&h.record().container);
        self.events.emit("container", "top", &h.id, attrs);
        Ok(top)
    }

    /// `POST /containers/prune`.
    pub async fn container_prune(self: &Arc<Self>, filters: &Filters) -> Result<serde_json::Value> {
        let until = match filters.get("until").next() {
            Some(u) => Some(crate::engine::filters::parse_until(u)?),
            None => None,
        };
        let mut deleted = Vec::new();
        let mut reclaimed: u64 = 0;
        for h in self.containers.all() {
            let r = h.snapshot();
            if r.container.state.running {
                continue;
            }
            if !filters.match_labels("label", &r.container.config.labels) {
                continue;
            }
            if filters
                .get("label!")
                .any(|cond| label_matches(cond, &r.container.config.labels))
            {
                continue;
            }
            if let Some(u) = until {
                let created = crate::timefmt::parse_timestamp(&r.container.created).unwrap_or(0);
                if created >= u {
                    continue;
                }
            }
            let size = self.images.rw_layer_size(&h.id).unwrap_or(0);
            let _op = h.op.lock().await;
            if h.record().container.state.running || h.lifecycle.borrow().removed {
                continue;
            }
            match self.remove_locked(&h, false, false).await {
                Ok(()) => {
                    deleted.push(h.id.clone());
                    reclaimed += size;
                }
                Err(e) => tracing::warn!(container_id = %h.id, "prune: {e}"),
            }
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("reclaimed".to_string(), reclaimed.to_string());
        self.events.emit("container", "prune", "", attrs);
        Ok(
            serde_json::json!({ "ContainersDeleted": if deleted.is_empty() { serde_json::Value::Null } else { deleted.into() }, "SpaceReclaimed": reclaimed }),
        )
    }
}

fn label_matches(cond: &str, labels: &BTreeMap<String, String>) -> bool {
    match cond.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(cond),
    }
}

/// Keeps the `ps` rows whose PID column is one of `pids`.
pub fn parse_ps(output: &str, pids: &[i32]) -> Result<serde_json::Value> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<String> = header.split_whitespace().map(str::to_string).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::invalid("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) may contain spaces.
        let mut row: Vec<String> = fields[..titles.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row.push(fields[titles.len() - 1..].join(" "));
        processes.push(row);
    }
    Ok(serde_json::json!({ "Titles": titles, "Processes": processes }))
}

impl Engine {
    /// Removes a container's runtime state directory; the monitor may still be writing
    /// its last file, so this retries briefly, on a blocking thread.
    async fn remove_runtime_state(self: &Arc<Self>, id: &str) {
        let (engine, id) = (self.clone(), id.to_string());
        let _ = tokio::task::spawn_blocking(move || engine.runtime.remove_state(&id)).await;
    }

    /// The container's end of an attach: the monitor's socket when it runs; otherwise
    /// one end of a socket pair whose other end is handed to the monitor at the next
    /// start, so that nothing the container writes first is lost.
    pub async fn container_attach(
        &self,
        h: &Arc<Handle>,
        streams: crate::init::spec::AttachStreams,
    ) -> Result<tokio::net::UnixStream> {
        if h.record().container.state.paused {
            return Err(Error::conflict(format!(
                "container {} is paused, unpause the container before attach",
                h.id
            )));
        }
        if h.record().container.state.running {
            match self.runtime.attach(&h.id, streams).await {
                Ok(s) => return Ok(s),
                Err(e) if h.record().container.state.running => {
                    return Err(Error::internal(format!(
                        "attach to container {}: {e}",
                        h.id
                    )));
                }
                Err(_) => {}
            }
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        h.add_pending_attach(theirs, streams);
        Ok(tokio::net::UnixStream::from_std(ours)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("usr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn ps_rows_are_filtered_by_pid() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init\nroot 42 1 0 10:00 ? 00:00:00 sleep 300\n";
        let v = parse_ps(out, &[42]).unwrap();
        assert_eq!(
            v["Processes"],
            serde_json::json!([[
                "root",
                "42",
                "1",
                "0",
                "10:00",
                "?",
                "00:00:00",
                "sleep 300"
            ]])
        );
    }

    #[test]
    fn wait_conditions() {
        assert_eq!(
            WaitCondition::parse(None).unwrap(),
            WaitCondition::NotRunning
        );
        assert_eq!(
            WaitCondition::parse(Some("removed")).unwrap(),
            WaitCondition::Removed
        );
        assert!(WaitCondition::parse(Some("bogus")).is_err());
    }
}
