//! The systemd watchdog: `WATCHDOG=1` every half period, sent only while a liveness
//! probe passes, so a wedged daemon falls silent and systemd restarts it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::notify::{Notifier, NotifyState};

/// `WATCHDOG_USEC` when it is meant for this process (`WATCHDOG_PID` unset or ours);
/// removes both variables.
///
/// # Safety
/// Modifies the environment: call only while the process has a single thread.
pub unsafe fn period_from_env() -> Option<Duration> {
    unsafe { sd_notify::watchdog_enabled_and_unset_env() }.filter(|d| !d.is_zero())
}

/// Pings every `period / 2` while `probe` (given a deadline) returns true; stops when
/// `stop` is cancelled. A failed probe skips the ping and is logged.
pub async fn run<P, F>(notifier: Arc<Notifier>, period: Duration, stop: CancellationToken, probe: P)
where
    P: Fn(Duration) -> F,
    F: Future<Output = Result<(), String>>,
{
    let interval = period / 2;
    // The probe must answer well within the interval, or the ping comes too late.
    let deadline = (interval / 2).max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match tokio::time::timeout(deadline, probe(deadline)).await {
            Ok(Ok(())) => {
                if failing {
                    tracing::warn!("liveness probe passes again; resuming watchdog pings");
                    failing = false;
                }
                notifier.notify(&[NotifyState::Watchdog]);
            }
            Ok(Err(why)) => {
                tracing::error!("liveness probe failed, withholding watchdog ping: {why}");
                failing = true;
            }
            Err(_) => {
                tracing::error!(
                    "liveness probe did not answer within {deadline:?}, withholding watchdog ping"
                );
                failing = true;
            }
        }
    }
}
