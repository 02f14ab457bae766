//! Daemon logging: natively into the journal when systemd runs us, logrus-compatible
//! text or JSON on stderr otherwise; the level can change at runtime (SIGHUP).
//!
//! Structured fields use snake_case names (`container_id`, `image_id`, `api_path`);
//! the journal shows them as `CONTAINER_ID`, `IMAGE_ID`, `API_PATH`, and the text
//! format as `container_id=…`.

mod logrus;

use std::os::fd::AsFd;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{Registry, reload};

use crate::config::{LogFormat, LogLevel};

pub use logrus::LogrusLayer;

/// Changes the log level of the running daemon.
#[derive(Clone)]
pub struct LogHandle {
    filter: reload::Handle<LevelFilter, Registry>,
}

impl LogHandle {
    pub fn set_level(&self, level: LogLevel) {
        let _ = self.filter.modify(|f| *f = to_filter(level));
    }
}

/// Where the daemon's records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journal,
    Stderr(LogFormat),
}

fn to_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        // tracing has no "fatal": fatal conditions are logged at ERROR and exit.
        LogLevel::Error | LogLevel::Fatal => LevelFilter::ERROR,
    }
}

/// True when stderr is the journal's stream (systemd sets `JOURNAL_STREAM` to the
/// `device:inode` of the stream it connected to stdout/stderr).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let value = value.to_string_lossy();
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
}

/// Installs the global subscriber. Prefers the journal when `prefer_journal` and its
/// socket answers; falls back to stderr in `format`. Returns the handle for level
/// changes and the sink chosen.
pub fn init(level: LogLevel, format: LogFormat, prefer_journal: bool) -> (LogHandle, Sink) {
    let (filter, handle) = reload::Layer::new(to_filter(level));
    let journal = if prefer_journal {
        journald_layer()
    } else {
        None
    };
    let sink = if journal.is_some() {
        Sink::Journal
    } else {
        Sink::Stderr(format)
    };
    let logrus = match sink {
        Sink::Journal => None,
        Sink::Stderr(f) => Some(LogrusLayer::new(f)),
    };
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(logrus);
    let _ = tracing::subscriber::set_global_default(subscriber);
    (LogHandle { filter: handle }, sink)
}

fn journald_layer() -> Option<tracing_journald::Layer> {
    use tracing_journald::{Priority, PriorityMappings};
    let layer = tracing_journald::Layer::new().ok()?;
    Some(
        layer
            .with_syslog_identifier("dockerd".to_string())
            .with_field_prefix(None)
            // syslog's own meaning: info is 6, debug is 7.
            .with_priority_mappings(PriorityMappings {
                error: Priority::Error,
                warn: Priority::Warning,
                info: Priority::Informational,
                debug: Priority::Debug,
                trace: Priority::Debug,
            }),
    )
}
