//! Health checks: the container's `Healthcheck` (from its image, overridden by
//! the create request) probed as execs with Docker's timing rules, the result in
//! `State.Health`, `health_status` events on changes.
//!
//! The probe loop is a daemon task per running container: it starts with the
//! container (and again when a restarted daemon finds the container running,
//! as Docker does, from `starting`) and ends with it. Probe results stay in
//! memory (Docker keeps them in its in-memory replica too); they reach the disk
//! with the container's next save.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::Handle;
use super::exec::ExecConfig;
use crate::engine::{Engine, Error, Result};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 3;
/// Probe results kept in `State.Health.Log`.
const MAX_LOG: usize = 5;
/// Output kept of each probe.
const MAX_OUTPUT: usize = 4096;

/// `State.Health`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

/// One probe's result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// A container's health check, with Docker's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

impl Check {
    /// The check `Healthcheck` describes; `None` for none (absent, empty or `NONE`).
    pub fn from_config(v: Option<&Value>) -> Option<Check> {
        let v = v?;
        let test: Vec<String> = v
            .get("Test")?
            .as_array()?
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        let cmd = match test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            _ => return None,
        };
        let dur = |k: &str, default: Duration| match v.get(k).and_then(Value::as_i64) {
            Some(n) if n > 0 => Duration::from_nanos(n as u64),
            _ => default,
        };
        Some(Check {
            cmd,
            interval: dur("Interval", DEFAULT_INTERVAL),
            timeout: dur("Timeout", DEFAULT_TIMEOUT),
            start_period: dur("StartPeriod", Duration::ZERO),
            start_interval: dur("StartInterval", DEFAULT_START_INTERVAL),
            retries: match v.get("Retries").and_then(Value::as_i64) {
                Some(n) if n > 0 => n as u32,
                _ => DEFAULT_RETRIES,
            },
        })
    }
}

/// Docker's validation of a create request's `Healthcheck`.
pub fn validate(v: &Value) -> Result<()> {
    for (k, name) in [
        ("Interval", "Interval"),
        ("Timeout", "Timeout"),
        ("StartPeriod", "StartPeriod"),
        ("StartInterval", "StartInterval"),
    ] {
        if let Some(n) = v.get(k).and_then(Value::as_i64)
            && n != 0
            && n < 1_000_000
        {
            return Err(Error::invalid(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if v.get("Retries")
        .and_then(Value::as_i64)
        .is_some_and(|n| n < 0)
    {
        return Err(Error::invalid("Retries in Healthcheck cannot be negative"));
    }
    Ok(())
}

/// The container's health check: the request's fields over the image's, as
/// Docker merges them (`Test` and every zero duration or count from the image).
pub fn merge(container: Option<&Value>, image: Option<&Value>) -> Option<Value> {
    let Some(c) = container else {
        return image.cloned();
    };
    let Some(i) = image else {
        return Some(c.clone());
    };
    let mut out = c.clone();
    let map = out.as_object_mut()?;
    let empty_test = c
        .get("Test")
        .and_then(Value::as_array)
        .is_none_or(|t| t.is_empty());
    if empty_test && let Some(t) = i.get("Test") {
        map.insert("Test".into(), t.clone());
    }
    for k in [
        "Interval",
        "Timeout",
        "StartPeriod",
        "StartInterval",
        "Retries",
    ] {
        let zero = c.get(k).and_then(Value::as_i64).unwrap_or(0) == 0;
        if zero && let Some(v) = i.get(k) {
            map.insert(k.into(), v.clone());
        }
    }
    Some(out)
}

/// Go's `time.Duration.String()` for the whole milliseconds and seconds a probe
/// timeout is given in: `30s`, `1.5s`, `500ms`, `2m0s`.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let s = format!("{secs}");
        return format!("{s}s");
    }
    let m = d.as_secs() / 60;
    let rest = secs - (m * 60) as f64;
    format!("{m}m{rest}s")
}

impl Engine {
    /// Starts probing `h` if it has a health check: status `starting`.
    pub(crate) fn start_health(self: &Arc<Self>, h: &Arc<Handle>) {
        let check = Check::from_config(h.record().container.config.healthcheck.as_ref());
        let Some(check) = check else {
            h.update_in_memory(|c| c.state.health = None);
            return;
        };
        h.update_in_memory(|c| {
            let log = c.state.health.take().map(|h| h.log).unwrap_or_default();
            c.state.health = Some(Health {
                status: "starting".into(),
                failing_streak: 0,
                log,
            });
        });
        let engine = self.clone();
        let h = h.clone();
        tokio::spawn(async move { engine.probe_loop(h, check).await });
    }

    async fn probe_loop(self: Arc<Self>, h: Arc<Handle>, check: Check) {
        let mut lifecycle = h.lifecycle.subscribe();
        let exits = lifecycle.borrow().exits;
        let started = Instant::now();
        loop {
            let starting = h
                .record()
                .container
                .state
                .health
                .as_ref()
                .is_some_and(|x| x.status == "starting");
            let wait = if starting && started.elapsed() < check.start_period {
                check.start_interval
            } else {
                check.interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = lifecycle.wait_for(|l| l.exits != exits || !l.running || l.removed) => return,
            }
            {
                let l = lifecycle.borrow();
                if l.exits != exits || !l.running || l.removed {
                    return;
                }
            }
            // A paused container is not probed (an exec into it is refused).
            if h.record().container.state.paused {
                continue;
            }
            let probe_start = Instant::now();
            let result = self.health_probe(&h, &check).await;
            let in_start_period = probe_start.duration_since(started) < check.start_period;
            let Some(probe) = result else {
                // The container is going away.
                return;
            };
            self.record_probe(&h, &check, probe, in_start_period);
        }
    }

    /// Runs the check's command once; `None` when it could not run because the
    /// container stopped.
    async fn health_probe(self: &Arc<Self>, h: &Arc<Handle>, check: &Check) -> Option<Probe> {
        let start = crate::timefmt::rfc3339_nano(SystemTime::now());
        let done = |exit_code: i32, output: String| Probe {
            start: start.clone(),
            end: crate::timefmt::rfc3339_nano(SystemTime::now()),
            exit_code,
            output,
        };
        let config = ExecConfig {
            cmd: check.cmd.clone(),
            attach_stdout: true,
            attach_stderr: true,
            ..Default::default()
        };
        let id = match self.exec_create(&h.id, config) {
            Ok(id) => id,
            Err(_) => return None,
        };
        // A probe's exec is not kept once it ended (Docker's probes are not either).
        let _forget = Forget(self.clone(), id.clone());
        let started = match self.exec_start(&id, true).await {
            Ok(s) => s,
            Err(e) => {
                if !h.record().container.state.running {
                    return None;
                }
                return Some(done(-1, e.to_string()));
            }
        };
        let exec = started.exec.clone();
        let mut stream = started.stream?;
        let read = async {
            let mut raw = Vec::new();
            let _ = (&mut stream)
                .take(4 * MAX_OUTPUT as u64 + 64)
                .read_to_end(&mut raw)
                .await;
            let code = exec.exited().await;
            (code, raw)
        };
        match tokio::time::timeout(check.timeout, read).await {
            Ok((code, raw)) => Some(done(code, demux_text(&raw))),
            Err(_) => {
                let _ = self.runtime.kill(&id, libc::SIGKILL).await;
                Some(done(
                    -1,
                    format!(
                        "Health check exceeded timeout ({})",
                        go_duration(check.timeout)
                    ),
                ))
            }
        }
    }

    fn record_probe(&self, h: &Arc<Handle>, check: &Check, probe: Probe, in_start_period: bool) {
        let mut changed = None;
        h.update_in_memory(|c| {
            let Some(health) = c.state.health.as_mut() else {
                return;
            };
            let before = health.status.clone();
            if probe.exit_code == 0 {
                health.failing_streak = 0;
                health.status = "healthy".into();
            } else if !(health.status == "starting" && in_start_period) {
                health.failing_streak += 1;
                if health.failing_streak >= check.retries {
                    health.status = "unhealthy".into();
                }
            }
            health.log.push(probe);
            let excess = health.log.len().saturating_sub(MAX_LOG);
            health.log.drain(..excess);
            if health.status != before {
                changed = Some(health.status.clone());
            }
        });
        if let Some(status) = changed {
            let attrs = self.container_attributes(&h.record().container);
            self.events.emit(
                "container",
                &format!("health_status: {status}"),
                &h.id,
                attrs,
            );
        }
    }
}

/// Removes a probe's exec from the daemon's list when dropped.
struct Forget(Arc<Engine>, String);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.execs.remove(&self.1);
    }
}

/// The text of a multiplexed stream (stdout and stderr in order), at most
/// [`MAX_OUTPUT`] bytes.
fn demux_text(mut raw: &[u8]) -> String {
    let mut out = Vec::new();
    while raw.len() >= 8 {
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        let end = (8 + len).min(raw.len());
        out.extend_from_slice(&raw[8..end]);
        raw = &raw[end..];
    }
    out.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_read_as_docker_reads_them() {
        let c = Check::from_config(Some(
            &json!({"Test": ["CMD-SHELL", "curl -f x"], "Interval": 2_000_000_000i64}),
        ))
        .unwrap();
        assert_eq!(c.cmd, ["/bin/sh", "-c", "curl -f x"]);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.retries, 3);
        assert!(Check::from_config(Some(&json!({"Test": ["NONE"]}))).is_none());
        assert!(Check::from_config(Some(&json!({}))).is_none());
        let c =
            Check::from_config(Some(&json!({"Test": ["CMD", "true", "x"], "Retries": 1}))).unwrap();
        assert_eq!(
            (c.cmd, c.retries),
            (vec!["true".to_string(), "x".into()], 1)
        );
    }

    #[test]
    fn the_request_overrides_the_image_field_by_field() {
        let image = json!({"Test": ["CMD", "a"], "Interval": 5, "Retries": 2});
        let merged = merge(Some(&json!({"Interval": 7})), Some(&image)).unwrap();
        assert_eq!(
            merged,
            json!({"Test": ["CMD", "a"], "Interval": 7, "Retries": 2})
        );
        let none = merge(Some(&json!({"Test": ["NONE"]})), Some(&image)).unwrap();
        assert_eq!(none["Test"], json!(["NONE"]));
        assert!(validate(&json!({"Interval": 5})).is_err());
        assert!(validate(&json!({"Retries": -1})).is_err());
        assert!(validate(&json!({"Interval": 1_000_000})).is_ok());
    }

    #[test]
    fn timeouts_print_as_go_durations() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
    }
}
