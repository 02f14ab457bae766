//! The daemon's life, from argv to exit: the steps that must happen while the process
//! has one thread (flags, config, environment, pidfile, listeners), then the runtime:
//! serve, notify systemd, feed the watchdog, reload on SIGHUP, drain on SIGTERM.

mod idle;
mod listeners;
mod pidfile;
mod tls;

use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::server::{Listener, Server};
use crate::api::{self, ApiState};
use crate::cli::{self, Parsed};
use crate::config::Config;
use crate::engine::Engine;
use crate::logging::{self, LogHandle};
use crate::systemd::activation::PassedSocket;
use crate::systemd::notify::NotifyState;
use crate::systemd::{Notifier, activation, watchdog};
use pidfile::PidFile;

/// Runs the daemon; returns the process exit status.
pub fn run(args: Vec<OsString>) -> u8 {
    let parsed = match cli::parse(args) {
        Ok(p) => p,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            let _ = e.print();
            return code;
        }
    };
    if parsed.flags.version {
        println!(
            "Docker version {}, build {}",
            crate::version::VERSION,
            crate::version::GIT_COMMIT
        );
        return 0;
    }
    let config = match Config::load(&parsed) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if parsed.flags.validate {
        println!("configuration OK");
        return 0;
    }

    // Single-threaded from here until the runtime is built: the environment is still
    // ours to read and scrub.
    let prefer_journal = logging::stderr_is_journal();
    let (log, sink) = logging::init(
        config.effective_log_level(),
        config.log_format,
        prefer_journal,
    );
    // SAFETY: no other thread exists yet.
    let (mut activated, notifier, watchdog_period) = unsafe {
        let activated = activation::take_from_env();
        let notifier = Notifier::from_env().unwrap_or_else(|e| {
            tracing::warn!(
                "cannot connect to NOTIFY_SOCKET, systemd will not hear from this daemon: {e}"
            );
            Notifier::default()
        });
        let wd = watchdog::period_from_env();
        std::env::remove_var("JOURNAL_STREAM");
        (activated, notifier, wd)
    };
    tracing::debug!(?sink, "logging configured");
    let notifier = Arc::new(notifier);
    notifier.status("Starting: opening listeners");

    let pidfile = match PidFile::create(&config.pidfile) {
        Ok(p) => p,
        Err(e) => return fail_start(&notifier, &e),
    };
    let tls = match config.tls.as_ref().map(tls::server_config).transpose() {
        Ok(t) => t,
        Err(e) => {
            pidfile.remove();
            return fail_start(&notifier, &e);
        }
    };
    let opened = match listeners::open_all(
        &config.hosts,
        &config.group,
        &mut activated,
        config.tls.as_ref(),
    ) {
        Ok(o) => o,
        Err(e) => {
            pidfile.remove();
            return fail_start(&notifier, &e);
        }
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(128)
        .thread_name("dockerd")
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            pidfile.remove();
            return fail_start(&notifier, &format!("failed to start the runtime: {e}"));
        }
    };
    let ctx = DaemonCtx {
        parsed,
        log,
        notifier,
        watchdog_period,
        tls,
    };
    let code = runtime.block_on(serve(ctx, config, opened, &pidfile));
    // Blocking tasks (a stuck disk, say) must not hold the exit hostage.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

fn fail_start(notifier: &Notifier, msg: &str) -> u8 {
    tracing::error!("{msg}");
    notifier.notify(&[NotifyState::Status(&format!("Failed to start: {msg}"))]);
    let _ = std::io::stderr().flush();
    1
}

/// The start time asked of systemd while containers are restored.
const RESTORE_TIME: Duration = Duration::from_secs(60);

struct DaemonCtx {
    parsed: Parsed,
    log: LogHandle,
    notifier: Arc<Notifier>,
    watchdog_period: Option<Duration>,
    /// TLS for TCP listeners.
    tls: Option<Arc<rustls::ServerConfig>>,
}

async fn serve(
    ctx: DaemonCtx,
    config: Config,
    opened: Vec<listeners::Opened>,
    pidfile: &PidFile,
) -> u8 {
    let DaemonCtx {
        parsed,
        log,
        notifier,
        watchdog_period,
        tls,
    } = ctx;
    // Signals first, so a SIGTERM during start-up is not lost to the default action.
    let (mut sigterm, mut sigint, mut sighup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => return fail_start(&notifier, "failed to install signal handlers"),
    };

    notifier.status("Starting: loading state");
    let created_sockets: Vec<_> = opened.iter().filter_map(|o| o.created.clone()).collect();
    let engine = match tokio::task::spawn_blocking(move || Engine::open(config)).await {
        Ok(Ok(e)) => Arc::new(e),
        Ok(Err(e)) => {
            pidfile.remove();
            return fail_start(&notifier, &format!("failed to load state: {e}"));
        }
        Err(e) => {
            pidfile.remove();
            return fail_start(&notifier, &format!("failed to load state: {e}"));
        }
    };

    let containers = engine.containers.all().len();
    if containers > 0 {
        // Reattaching to many containers (a daemon started again after an idle
        // exit, or a host full of them) may take longer than the unit's start
        // timeout allows: ask for time, a minute from now.
        notifier.notify(&[
            NotifyState::ExtendTimeoutUsec(RESTORE_TIME.as_micros() as u32),
            NotifyState::Status(&format!(
                "Starting: reattaching to running containers ({containers} known)"
            )),
        ]);
    } else {
        notifier.status("Starting: reattaching to running containers");
    }
    engine.restore_containers().await;

    let state = Arc::new(ApiState {
        engine: engine.clone(),
        shutdown: CancellationToken::new(),
        streams: TaskTracker::new(),
    });
    let mut api_listeners = Vec::new();
    let mut described = Vec::new();
    for o in opened {
        let l = match o.socket {
            PassedSocket::Unix(l) => Listener::from_std_unix(l),
            PassedSocket::Tcp(l) => Listener::from_std_tcp(l, tls.clone()),
        };
        match l {
            Ok(l) => api_listeners.push(l),
            Err(e) => {
                pidfile.remove();
                return fail_start(
                    &notifier,
                    &format!("failed to serve on {}: {e}", o.describe),
                );
            }
        }
        described.push(o.describe);
    }
    let server = Server::new(state.clone());
    server.spawn(api_listeners);
    for d in &described {
        tracing::info!("API listen on {d}");
    }
    tracing::info!("Daemon has completed initialization");
    let ready_status = ready_status(&engine, &described);
    notifier.notify(&[
        NotifyState::Ready,
        NotifyState::MainPid(std::process::id()),
        NotifyState::Status(&ready_status),
    ]);
    // Bridges and firewall rules are put in place beside serving; what needs them
    // (a container's start, a network's creation) waits for them.
    let host_setup = engine.clone();
    tokio::task::spawn_blocking(move || host_setup.setup_host_networking());
    // So is AppArmor's profile (a container start loads it itself if it is missing).
    let profiles = engine.clone();
    tokio::task::spawn_blocking(move || profiles.security.refresh_apparmor());

    let watchdog_stop = CancellationToken::new();
    if let Some(period) = watchdog_period {
        tracing::info!(
            "systemd watchdog enabled: pinging every {:?} while the daemon answers",
            period / 2
        );
        let probe_state = state.clone();
        tokio::spawn(watchdog::run(
            notifier.clone(),
            period,
            watchdog_stop.clone(),
            move |deadline| {
                let state = probe_state.clone();
                async move {
                    api::self_check(&state).await?;
                    if state.engine.probe(deadline).await {
                        Ok(())
                    } else {
                        Err("the engine's state locks (containers, images) could not be taken in time".to_string())
                    }
                }
            },
        ));
    }

    // Main loop: reloads until the first stop signal, or an idle exit.
    let socket_activated = engine
        .config()
        .hosts
        .iter()
        .any(|h| matches!(h, crate::config::Host::Fd(_)));
    let idle = idle::exit_when_idle(engine.clone(), &server, socket_activated);
    tokio::pin!(idle);
    let stop = loop {
        tokio::select! {
            _ = sigterm.recv() => break Ok(libc::SIGTERM),
            _ = sigint.recv() => break Ok(libc::SIGINT),
            secs = &mut idle => break Err(secs),
            _ = sighup.recv() => reload(&parsed, &engine, &log, &notifier, &described),
        }
    };

    let stopping = match stop {
        Ok(signal) => {
            tracing::info!("Processing signal '{}'", signal_name(signal));
            "Stopping: finishing requests".to_string()
        }
        Err(secs) => {
            tracing::info!(
                "Daemon idle for {secs}s: exiting; containers keep running, and the next request on the socket starts the daemon again"
            );
            format!("Stopping: idle for {secs}s")
        }
    };
    notifier.notify(&[NotifyState::Stopping, NotifyState::Status(&stopping)]);
    watchdog_stop.cancel();
    state.shutdown.cancel();
    let timeout = engine.config().shutdown_timeout;
    let limit = (timeout >= 0).then(|| Duration::from_secs(timeout as u64));
    if !engine.config().live_restore {
        notifier.notify(&[NotifyState::Status("Stopping: stopping containers")]);
        engine.shutdown_containers(limit).await;
    }
    let drain = server.drain(limit);
    tokio::pin!(drain);
    // Two more stop signals force the exit, as Docker's third signal does.
    let mut extra = 0;
    let left = loop {
        tokio::select! {
            n = &mut drain => break n,
            s = next_stop_signal(&mut sigterm, &mut sigint) => {
                extra += 1;
                if extra >= 2 {
                    tracing::warn!("Forcing daemon shutdown on signal '{}'", signal_name(s));
                    let _ = std::io::stderr().flush();
                    std::process::exit(128 + s);
                }
                tracing::info!("Received signal '{}' again; one more forces exit", signal_name(s));
            }
            _ = sighup.recv() => tracing::info!("ignoring SIGHUP: the daemon is shutting down"),
        }
    };
    if left > 0 {
        tracing::warn!(
            "shutdown-timeout reached with {left} connections or streams still open; closing them"
        );
    }
    for path in created_sockets {
        let _ = std::fs::remove_file(path);
    }
    pidfile.remove();
    tracing::info!("Daemon shutdown complete");
    0
}

async fn next_stop_signal(
    sigterm: &mut tokio::signal::unix::Signal,
    sigint: &mut tokio::signal::unix::Signal,
) -> i32 {
    tokio::select! {
        _ = sigterm.recv() => libc::SIGTERM,
        _ = sigint.recv() => libc::SIGINT,
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGTERM => "terminated",
        libc::SIGINT => "interrupt",
        _ => "signal",
    }
}

fn ready_status(engine: &Engine, listeners: &[String]) -> String {
    let c = engine.counts();
    format!(
        "Ready: listening on {}; {} containers running, {} images",
        listeners.join(", "),
        c.running,
        c.images
    )
}

/// SIGHUP: `RELOADING=1`, re-read daemon.json, apply what may change, `READY=1`.
fn reload(
    parsed: &Parsed,
    engine: &Engine,
    log: &LogHandle,
    notifier: &Notifier,
    listeners: &[String],
) {
    let monotonic = NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0));
    notifier.notify(&[
        NotifyState::Reloading,
        monotonic,
        NotifyState::Status("Reloading configuration"),
    ]);
    let current = engine.config();
    match current.reload(parsed) {
        Ok(r) => {
            log.set_level(r.config.effective_log_level());
            for c in &r.changes {
                tracing::info!("Reloaded configuration: {c}");
            }
            if r.changes.is_empty() {
                tracing::info!("Reloaded configuration: nothing changed");
            }
            for k in &r.ignored {
                tracing::warn!(
                    "configuration key \"{k}\" changed, but takes effect only when the daemon restarts"
                );
            }
            engine.apply_config(r.config);
        }
        Err(e) => tracing::error!("Error reloading configuration, keeping the current one: {e}"),
    }
    let status = ready_status(engine, listeners);
    notifier.notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}
