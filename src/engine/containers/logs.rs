//! `docker logs`: reading the json-file log the monitor writes (journald's entries
//! are read in `journald`)
//! (`{"log":"…","stream":"stdout","time":"…"}` per line, rotated to `.1`, `.2`, …),
//! with `since`, `until`, `tail`, and `follow` until the container stops.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::engine::{Engine, Error, Result};

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    /// Nanoseconds since the epoch.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// The last N lines; `None` for all.
    pub tail: Option<usize>,
    pub follow: bool,
}

/// One log record.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// 1 stdout, 2 stderr (the multiplexed stream numbers).
    pub stream: u8,
    /// As written in the file (RFC 3339 with nanoseconds).
    pub time: String,
    pub time_nanos: i64,
    pub data: Vec<u8>,
}

#[derive(Deserialize)]
struct JsonLine {
    log: String,
    stream: String,
    time: String,
}

fn parse_line(line: &[u8]) -> Option<LogEntry> {
    let l: JsonLine = serde_json::from_slice(line).ok()?;
    let stream = match l.stream.as_str() {
        "stdout" => 1,
        "stderr" => 2,
        _ => return None,
    };
    let time_nanos = crate::timefmt::parse_timestamp(&l.time).unwrap_or(0);
    Some(LogEntry {
        stream,
        time: l.time,
        time_nanos,
        data: l.log.into_bytes(),
    })
}

impl LogOptions {
    pub(super) fn wants(&self, e: &LogEntry) -> bool {
        (if e.stream == 1 {
            self.stdout
        } else {
            self.stderr
        }) && self.since.is_none_or(|s| e.time_nanos >= s)
            && self.until.is_none_or(|u| e.time_nanos <= u)
    }
}

/// The log files, oldest first: `path.N`, …, `path.1`, `path`.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for n in 1.. {
        let p = PathBuf::from(format!("{}.{n}", path.display()));
        if !p.exists() {
            break;
        }
        rotated.push(p);
    }
    rotated.reverse();
    rotated.push(path.to_path_buf());
    rotated
}

impl Engine {
    /// Starts reading a container's log. Returns whether the container has a TTY (the
    /// output is then raw, not multiplexed) and the entries as they are read.
    pub fn container_logs(
        self: &Arc<Self>,
        name: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<LogEntry>)> {
        if !opts.stdout && !opts.stderr {
            return Err(Error::invalid("You must choose at least one stream"));
        }
        let h = self.containers.get(name)?;
        let r = h.snapshot();
        if r.container.state.removal_in_progress || r.container.state.dead {
            return Err(Error::conflict(
                "can not get logs from container which is dead or marked for removal",
            ));
        }
        let tty = r.container.config.tty;
        enum Source {
            JsonFile(PathBuf),
            Journal(String),
        }
        let source = match r.settings.log_driver.as_str() {
            "json-file" => Source::JsonFile(PathBuf::from(&r.container.log_path)),
            "journald" => {
                crate::systemd::journal::available().map_err(|e| Error::internal(e.to_string()))?;
                Source::Journal(r.container.id.clone())
            }
            _ => {
                return Err(Error::not_implemented(
                    "configured logging driver does not support reading",
                ));
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let lifecycle = h.lifecycle.subscribe();
        tokio::task::spawn_blocking(move || {
            let running = still_running(&lifecycle);
            match &source {
                Source::JsonFile(path) => {
                    if let Err(e) = read_logs(path, &opts, &tx, &running) {
                        tracing::debug!("log reader for {} ended: {e}", path.display());
                    }
                }
                Source::Journal(id) => {
                    if let Err(e) = super::journald::read(id, &opts, &tx, &running) {
                        tracing::warn!("reading the journal for container {id}: {e}");
                    }
                }
            }
        });
        Ok((tty, rx))
    }
}

/// Whether the container still runs the process that ran when reading began: a
/// follow ends with it.
fn still_running(
    lifecycle: &tokio::sync::watch::Receiver<super::Lifecycle>,
) -> impl Fn() -> bool + '_ {
    let start_exits = lifecycle.borrow().exits;
    move || {
        let l = lifecycle.borrow();
        l.running && l.exits == start_exits && !l.removed
    }
}

/// Reads (and follows) the log on a blocking thread, sending entries into `tx`.
fn read_logs(
    path: &Path,
    opts: &LogOptions,
    tx: &mpsc::Sender<LogEntry>,
    running: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    let send = |e: LogEntry| tx.blocking_send(e).is_ok();
    // Follow only while the container runs (it was running when we started).
    let follow = opts.follow && running();

    // Past entries: whole files, keeping only the tail when asked.
    let files = log_files(path);
    let mut tail: std::collections::VecDeque<LogEntry> = std::collections::VecDeque::new();
    let mut current: Option<(BufReader<File>, u64)> = None;
    for (i, f) in files.iter().enumerate() {
        let Ok(file) = File::open(f) else { continue };
        let ino = file.metadata()?.ino();
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if !line.ends_with(b"\n") {
                // A line being written right now: re-read it when following.
                let back = line.len() as i64;
                reader.seek(SeekFrom::Current(-back))?;
                break;
            }
            if let Some(e) = parse_line(&line) {
                if !opts.wants(&e) {
                    continue;
                }
                match opts.tail {
                    Some(0) => {}
                    Some(n) => {
                        if tail.len() == n {
                            tail.pop_front();
                        }
                        tail.push_back(e);
                    }
                    None => {
                        if !send(e) {
                            return Ok(());
                        }
                    }
                }
            }
        }
        if i == files.len() - 1 {
            current = Some((reader, ino));
        }
    }
    for e in tail.drain(..) {
        if !send(e) {
            return Ok(());
        }
    }
    if !follow {
        return Ok(());
    }

    // Follow: read what is appended, switch files on rotation, stop once the
    // container has stopped and everything it wrote was sent.
    let mut line = Vec::new();
    loop {
        let stopped = !running();
        let mut progressed = false;
        if let Some((reader, ino)) = current.as_mut() {
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 {
                    break;
                }
                if !line.ends_with(b"\n") {
                    reader.seek(SeekFrom::Current(-(n as i64)))?;
                    break;
                }
                progressed = true;
                if let Some(e) = parse_line(&line) {
                    if opts.until.is_some_and(|u| e.time_nanos > u) {
                        return Ok(());
                    }
                    if opts.wants(&e) && !send(e) {
                        return Ok(());
                    }
                }
            }
            // Rotated: the name now points at a new file; continue there.
            if let Ok(m) = std::fs::metadata(path) {
                if m.ino() != *ino {
                    if let Ok(f) = File::open(path) {
                        let new_ino = f.metadata()?.ino();
                        current = Some((BufReader::new(f), new_ino));
                        continue;
                    }
                }
            }
        } else if let Ok(f) = File::open(path) {
            let ino = f.metadata()?.ino();
            current = Some((BufReader::new(f), ino));
            continue;
        }
        if stopped {
            return Ok(());
        }
        if tx.is_closed() {
            return Ok(());
        }
        if opts
            .until
            .is_some_and(|u| crate::engine::events::now_nanos() > u)
        {
            return Ok(());
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_json_lines() {
        let e = parse_line(
            br#"{"log":"hi\n","stream":"stderr","time":"2026-11-27T20:37:19.165023981Z"}"#,
        )
        .unwrap();
        assert_eq!(e.stream, 2);
        assert_eq!(e.data, b"hi\n");
        assert!(e.time_nanos > 0);
        assert!(parse_line(b"garbage").is_none());
    }

    #[test]
    fn reads_rotated_files_in_order_with_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let line = |s: &str| {
            format!(
                "{{\"log\":\"{s}\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-27T20:37:19.1Z\"}}\n"
            )
        };
        std::fs::write(format!("{}.1", p.display()), line("one") + &line("two")).unwrap();
        std::fs::write(&p, line("three")).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (_wtx, wrx) = tokio::sync::watch::channel(super::super::Lifecycle::default());
        let opts = LogOptions {
            stdout: true,
            stderr: true,
            tail: Some(2),
            ..Default::default()
        };
        read_logs(&p, &opts, &tx, &still_running(&wrx)).unwrap();
        drop(tx);
        let mut got = Vec::new();
        while let Ok(e) = rx.try_recv() {
            got.push(String::from_utf8(e.data).unwrap());
        }
        assert_eq!(got, vec!["two\n", "three\n"]);
    }
}
