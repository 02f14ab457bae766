//! Exit when idle (`idle-timeout`): a daemon started by its socket exits cleanly
//! once, for the configured number of seconds, no client has been connected
//! (no requests, no attach or exec streams, no event streams) and nothing needs
//! it — no container with a restart policy, a health check or `--rm`, none
//! restarting, none running without live-restore. Running containers carry on
//! under their monitors; systemd keeps the socket, and the next request starts the
//! daemon again, which reattaches to them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::server::Server;
use crate::engine::Engine;

/// How often idleness is looked at.
const TICK: Duration = Duration::from_secs(1);

/// Resolves, with the timeout in seconds, once the daemon has been idle that long.
/// Never resolves for a daemon that did not come from its socket: nothing would
/// start it again.
pub async fn exit_when_idle(engine: Arc<Engine>, server: &Server, socket_activated: bool) -> u64 {
    if !socket_activated {
        if engine.config().idle_timeout > 0 {
            tracing::warn!(
                "idle-timeout applies only to a daemon its socket starts (-H fd://): this one keeps running"
            );
        }
        return std::future::pending().await;
    }
    let mut idle_since: Option<Instant> = None;
    let mut held_by = None;
    loop {
        let reloaded = engine.reloaded();
        if engine.config().idle_timeout == 0 {
            // Off: nothing to look at until a reload may turn it on.
            idle_since = None;
            reloaded.await;
            continue;
        }
        drop(reloaded);
        tokio::time::sleep(TICK).await;
        let timeout = engine.config().idle_timeout;
        if timeout == 0 || server.active() > 0 {
            idle_since = None;
            continue;
        }
        let reason = engine.keeps_daemon_alive();
        if reason != held_by {
            if let Some(r) = &reason {
                tracing::debug!("not idle: {r}");
            }
            held_by = reason.clone();
        }
        if reason.is_some() {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        // The first tick of a quiet spell counts from the tick before it.
        if since.elapsed() + TICK >= Duration::from_secs(timeout) {
            return timeout;
        }
    }
}
