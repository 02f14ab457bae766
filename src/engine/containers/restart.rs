//! Restart policies (`--restart no|always|unless-stopped|on-failure[:N]`) with Docker's
//! semantics: after an exit the container is started again after a backoff that
//! starts at 100 ms and doubles up to a minute, back to 100 ms once a run lasted
//! 10 s. `docker stop` (and a removal) cancels a pending restart; the daemon does
//! the restarting whether or not a client is connected.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::Handle;
use crate::engine::{Engine, Error, Result};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the backoff.
const RESET_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    No,
    Always,
    UnlessStopped,
    /// Restart after a non-zero exit, at most this many times (0: no limit).
    OnFailure(i64),
}

impl Policy {
    /// `HostConfig.RestartPolicy`, checked as Docker checks it.
    pub fn from_host_config(v: Option<&Value>) -> Result<Policy> {
        let Some(Value::Object(rp)) = v else {
            return Ok(Policy::No);
        };
        let name = rp.get("Name").and_then(Value::as_str).unwrap_or("");
        let max = rp
            .get("MaximumRetryCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let no_count = |p: Policy| {
            if max == 0 {
                return Ok(p);
            }
            let mut msg =
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                    .to_string();
            if max < 0 {
                msg.push_str(" and cannot be negative");
            }
            Err(Error::invalid(msg))
        };
        match name {
            // Clients before API 1.44 send an empty name for "no".
            "" => Ok(Policy::No),
            "no" => no_count(Policy::No),
            "always" => no_count(Policy::Always),
            "unless-stopped" => no_count(Policy::UnlessStopped),
            "on-failure" if max < 0 => Err(Error::invalid(
                "invalid restart policy: maximum retry count cannot be negative",
            )),
            "on-failure" => Ok(Policy::OnFailure(max)),
            other => Err(Error::invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            ))),
        }
    }

    pub fn is_none(self) -> bool {
        self == Policy::No
    }

    /// Whether a container that ended with `exit_code` after `restart_count`
    /// restarts is started again.
    pub fn wants_restart(self, exit_code: i32, manually_stopped: bool, restart_count: i64) -> bool {
        match self {
            Policy::No => false,
            Policy::Always => true,
            Policy::UnlessStopped => !manually_stopped,
            Policy::OnFailure(max) => exit_code != 0 && (max == 0 || restart_count < max),
        }
    }
}

/// A container's restart state, in memory as Docker keeps it.
#[derive(Default)]
pub struct RestartState {
    /// The last backoff (zero: none yet).
    delay: Duration,
    /// Set by `docker stop` and removal; cleared by a start.
    canceled: bool,
    /// The pending restart's task.
    pending: Option<tokio::task::AbortHandle>,
}

impl RestartState {
    /// The next backoff after a run of `ran`.
    fn next_delay(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.delay = Duration::ZERO;
        }
        self.delay = if self.delay.is_zero() {
            FIRST_DELAY
        } else {
            (self.delay * 2).min(MAX_DELAY)
        };
        self.delay
    }
}

impl Handle {
    /// Cancels a pending restart and keeps later exits from scheduling one, until
    /// the next start. Returns whether a restart was pending.
    pub fn cancel_restart(&self) -> bool {
        let mut r = self.restart_state();
        r.canceled = true;
        r.pending.take().map(|p| p.abort()).is_some()
    }

    /// A start by a client (or by the daemon at its own start): restarts may be
    /// scheduled again, with a fresh backoff, and `RestartCount` starts over.
    pub fn reset_restart(&self) {
        {
            let mut r = self.restart_state();
            if let Some(p) = r.pending.take() {
                p.abort();
            }
            *r = RestartState::default();
        }
        self.update_in_memory(|c| c.restart_count = 0);
    }
}

impl Engine {
    /// After an exit: schedules the restart the policy asks for, recording the
    /// container as restarting. Returns whether one was scheduled.
    pub(super) async fn schedule_restart(
        self: &Arc<Self>,
        h: &Arc<Handle>,
        exit_code: i32,
        ran: Duration,
    ) -> bool {
        let (policy, manually_stopped, count) = {
            let r = h.record();
            (
                r.settings.restart_policy,
                r.container.has_been_manually_stopped,
                r.container.restart_count,
            )
        };
        if policy.is_none() || h.lifecycle.borrow().removed || self.is_shutting_down() {
            return false;
        }
        let delay = {
            let mut st = h.restart_state();
            if st.canceled || !policy.wants_restart(exit_code, manually_stopped, count) {
                return false;
            }
            st.next_delay(ran)
        };
        if let Err(e) = h
            .update(|c| {
                c.restart_count += 1;
                c.state.restarting = true;
                c.state.running = true;
            })
            .await
        {
            tracing::error!(container_id = %h.id, "cannot record the restart: {e}");
        }
        tracing::info!(container_id = %h.id, "restarting the container in {delay:?} (restart policy)");
        let engine = self.clone();
        let handle = h.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _op = handle.op.lock().await;
            if !handle.record().container.state.restarting || handle.lifecycle.borrow().removed {
                return;
            }
            handle.restart_state().pending = None;
            if let Err(e) = engine.start_locked(&handle).await {
                tracing::error!(container_id = %handle.id, "restart failed: {e}");
            }
        });
        h.restart_state().pending = Some(task.abort_handle());
        true
    }

    /// Ends a pending restart without starting: the container is stopped.
    pub(super) async fn end_restarting(&self, h: &Arc<Handle>) -> Result<()> {
        h.cancel_restart();
        let saved = h
            .update(|c| {
                c.state.restarting = false;
                c.state.running = false;
            })
            .await;
        // Waiters for the next exit are answered (with the last exit's code), as
        // Docker's stop of a restarting container does.
        h.lifecycle.send_modify(|l| {
            l.running = false;
            l.exits += 1;
        });
        saved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_are_read_and_checked_as_docker() {
        let p = |v: Value| Policy::from_host_config(Some(&v));
        assert_eq!(p(json!({"Name": "always"})).unwrap(), Policy::Always);
        assert_eq!(
            p(json!({"Name": "on-failure", "MaximumRetryCount": 3})).unwrap(),
            Policy::OnFailure(3)
        );
        assert_eq!(
            p(json!({"Name": "", "MaximumRetryCount": 5})).unwrap(),
            Policy::No
        );
        assert_eq!(
            p(json!({"Name": "always", "MaximumRetryCount": 2}))
                .unwrap_err()
                .to_string(),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        );
        assert_eq!(
            p(json!({"Name": "on-failure", "MaximumRetryCount": -1}))
                .unwrap_err()
                .to_string(),
            "invalid restart policy: maximum retry count cannot be negative"
        );
        assert!(
            p(json!({"Name": "sometimes"}))
                .unwrap_err()
                .to_string()
                .contains("unknown policy 'sometimes'")
        );
    }

    #[test]
    fn decisions_and_backoff_follow_docker() {
        assert!(Policy::Always.wants_restart(0, true, 100));
        assert!(!Policy::UnlessStopped.wants_restart(1, true, 0));
        assert!(Policy::UnlessStopped.wants_restart(0, false, 0));
        assert!(!Policy::OnFailure(2).wants_restart(0, false, 0));
        assert!(Policy::OnFailure(2).wants_restart(1, false, 1));
        assert!(!Policy::OnFailure(2).wants_restart(1, false, 2));
        assert!(Policy::OnFailure(0).wants_restart(1, false, 1000));
        let mut s = RestartState::default();
        let short = Duration::from_millis(5);
        let delays: Vec<u64> = (0..12)
            .map(|_| s.next_delay(short).as_millis() as u64)
            .collect();
        assert_eq!(&delays[..4], &[100, 200, 400, 800]);
        assert_eq!(delays[11], 60_000);
        assert_eq!(s.next_delay(Duration::from_secs(10)), FIRST_DELAY);
    }
}
